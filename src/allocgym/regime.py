"""Causal regime model: ``(label, confidence)`` per bar from data up to and including t.

Labels are integer codes into ``REGIME_LABELS``; ``UNKNOWN_REGIME`` (-1) stands for a label
the runtime does not know (seed 001's default regime ``neutral`` among them), which the
risk gates map to the default multipliers.

``RegimeModel`` reads three statistics from trailing windows, all of them decimal simple
returns:

- **volatility percentile**: realized volatility of the benchmark over ``vol_window`` bars
  (population std), ranked (mid-rank) against its own last ``vol_lookback`` values, the
  current one included, so the percentile is in ``(0, 1)``;
- **trend strength**: t-statistic of the benchmark's mean return over ``trend_window``
  bars, ``mean / (std / sqrt(L))`` with ``ddof=1`` (signed; its magnitude is what counts,
  a falling market trends too);
- **mean reversion**: lag-1 autocorrelation of each asset's residual return
  ``r_i - r_bench`` over ``mr_window`` bars, averaged over the assets whose raw returns
  moved in the window. Residuals strip the (serially uncorrelated) market factor, so
  idiosyncratic mean reversion that the benchmark averages away stays visible.

Decision rule, in this order: ``high_volatility`` if the volatility percentile is at or
above ``high_vol_percentile``; otherwise ``mean_reversion`` if the mean autocorrelation is
at or below ``mr_threshold`` (< 0); otherwise ``trend`` if ``|t| >= trend_threshold``;
otherwise ``uncertain``. Mean reversion is tested before trend because its statistic is
the sharper of the two (a cross-sectional average; the trend t-stat of one series is noisy).

Confidence, in ``[0, 1]``: a label that fires scores ``0.5`` at its threshold, rising with
the margin (volatility: ``0.5 + 0.5 (p - p_hv) / (1 - p_hv)``; trend and mean reversion:
``1 - 0.5 exp(-(z - 1))`` with ``z`` the statistic in units of its threshold).
``uncertain`` scores ``0.5 (1 - max(z_trend, z_mr))``, at most 0.5, and exactly 0 in the
warm-up (bars before ``required_history - 1``).

Barbell state (seed 000): ``CRISIS`` when the volatility percentile is at or above
``crisis_percentile``, ``QUIET`` below ``quiet_percentile``, ``NORMAL`` otherwise (and in the
warm-up).

Bit identity: ``classify`` on any trailing window and ``path`` at the same bar give the same
bits, because both evaluate every statistic with the same per-window reductions over the
last (contiguous) axis; only which windows are built differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from allocgym.config import RegimeConfig
from allocgym.errors import DataError

if TYPE_CHECKING:
    from allocgym.data import MarketData

REGIME_LABELS: tuple[str, ...] = ("trend", "mean_reversion", "high_volatility", "uncertain")
UNKNOWN_REGIME: int = -1
BARBELL_STATES: tuple[str, ...] = ("QUIET", "NORMAL", "CRISIS")

TREND: int = 0
MEAN_REVERSION: int = 1
HIGH_VOLATILITY: int = 2
UNCERTAIN: int = 3
QUIET: int = 0
NORMAL: int = 1
CRISIS: int = 2

_PATH_CHUNK = 256
"""Bars per chunk in ``RegimeModel.path`` (bounds the (chunk, window, n_assets) copies)."""


def regime_code(label: str) -> int:
    """Integer code of a regime label; unknown labels map to ``UNKNOWN_REGIME``."""
    try:
        return REGIME_LABELS.index(label)
    except ValueError:
        return UNKNOWN_REGIME


@dataclass(frozen=True, eq=False)
class RegimeState:
    """Regime per portfolio (``classify``) or per bar (``path``).

    Attributes
    ----------
    labels : ndarray of int8, shape (n_envs,) or (n_days,)
        Codes into ``REGIME_LABELS`` (never ``UNKNOWN_REGIME``).
    confidence : ndarray of float64, same shape
        Confidence of the label in ``[0, 1]`` (0 in the warm-up).
    barbell : ndarray of int8, same shape
        Codes into ``BARBELL_STATES``.
    vol_percentile : ndarray of float64, same shape
        Mid-rank percentile in ``(0, 1)`` of the benchmark's realized volatility against
        its own trailing history; 0.5 (no information) in the warm-up.
    trend_tstat : ndarray of float64, same shape
        t-statistic of the benchmark mean return over ``trend_window`` (0 in the warm-up).
    mr_autocorr : ndarray of float64, same shape
        Mean lag-1 autocorrelation of residual asset returns over ``mr_window`` (0 in the
        warm-up).
    """

    labels: np.ndarray
    confidence: np.ndarray
    barbell: np.ndarray
    vol_percentile: np.ndarray
    trend_tstat: np.ndarray
    mr_autocorr: np.ndarray

    def label_names(self) -> list[str]:
        """Labels as strings (for reports and logs; the core uses the codes)."""
        return [REGIME_LABELS[int(c)] for c in np.ravel(self.labels)]


@dataclass(frozen=True)
class RegimeParams:
    """Typed thresholds of ``RegimeModel`` (see ``RegimeConfig`` for each field)."""

    vol_window: int
    vol_lookback: int
    high_vol_percentile: float
    trend_window: int
    trend_threshold: float
    mr_window: int
    mr_threshold: float
    crisis_percentile: float
    quiet_percentile: float

    @classmethod
    def from_config(cls, cfg: RegimeConfig) -> RegimeParams:
        """Build params from the ``regime`` config section (validated by pydantic)."""
        return cls(
            vol_window=cfg.vol_window,
            vol_lookback=cfg.vol_lookback,
            high_vol_percentile=cfg.high_vol_percentile,
            trend_window=cfg.trend_window,
            trend_threshold=cfg.trend_threshold,
            mr_window=cfg.mr_window,
            mr_threshold=cfg.mr_threshold,
            crisis_percentile=cfg.crisis_percentile,
            quiet_percentile=cfg.quiet_percentile,
        )


# ---------------------------------------------------------------------------- per-window
# Each helper reduces over the LAST axis of a C-contiguous array of windows, so a window
# gives the same bits whatever batch it sits in (classify: one window; path: many).


def _windows(x: np.ndarray, width: int) -> np.ndarray:
    """Contiguous trailing windows along axis 1: (K, T, ...) -> (K, T - width + 1, ..., width)."""
    return np.ascontiguousarray(sliding_window_view(x, width, axis=1))


def _realized_vol(w: np.ndarray) -> np.ndarray:
    """Population std over the last axis (decimal per bar)."""
    return w.std(axis=-1)


def _tstat(w: np.ndarray) -> np.ndarray:
    """t-statistic of the mean over the last axis; 0 where the std is 0."""
    n = w.shape[-1]
    mean = w.mean(axis=-1)
    sd = w.std(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean * np.sqrt(n) / sd
    return np.where(sd > 0.0, t, 0.0)


def _lag1_autocorr(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lag-1 autocorrelation over the last axis and its validity (non-zero variance)."""
    d = w - w.mean(axis=-1, keepdims=True)
    den = (d * d).sum(axis=-1)
    num = (d[..., 1:] * d[..., :-1]).sum(axis=-1)
    valid = den > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ac = num / den
    return np.where(valid, ac, 0.0), valid


def _percentile(history: np.ndarray) -> np.ndarray:
    """Mid-rank of the last value of ``history`` (..., L) among all L values, in (0, 1)."""
    cur = history[..., -1:]
    less = (history < cur).sum(axis=-1)
    equal = (history == cur).sum(axis=-1)
    return (less + 0.5 * equal) / history.shape[-1]


# ---------------------------------------------------------------------------- model


class RegimeModel:
    """Causal, deterministic regime classifier (see the module docstring for the rule).

    Parameters
    ----------
    cfg : RegimeConfig
        Windows and thresholds.

    Attributes
    ----------
    params : RegimeParams
    required_history : int
        Bars of returns a decision needs: ``max(vol_lookback + vol_window - 1,
        trend_window, mr_window)``.
    """

    def __init__(self, cfg: RegimeConfig | None = None) -> None:
        self.params = RegimeParams.from_config(cfg or RegimeConfig())
        p = self.params
        self.required_history: int = max(
            p.vol_lookback + p.vol_window - 1, p.trend_window, p.mr_window
        )

    # ------------------------------------------------------------------ public API
    def classify(self, asset_returns: np.ndarray, bench_returns: np.ndarray) -> RegimeState:
        """Regime at the last bar of each window.

        Parameters
        ----------
        asset_returns : ndarray, shape (n_envs, L, n_assets)
            Simple returns, the last row being the decision bar; ``L >= required_history``
            (only the last ``required_history`` rows are read).
        bench_returns : ndarray, shape (n_envs, L)
            Simple benchmark returns over the same bars.

        Returns
        -------
        RegimeState
            Fields of shape (n_envs,).
        """
        a = np.asarray(asset_returns, dtype=np.float64)
        b = np.asarray(bench_returns, dtype=np.float64)
        h = self.required_history
        if a.ndim != 3 or b.ndim != 2 or a.shape[:2] != b.shape:
            raise DataError(
                f"RegimeModel.classify: asset_returns {a.shape} must be (n_envs, L, n_assets) "
                f"and bench_returns {b.shape} (n_envs, L) with the same n_envs and L"
            )
        if b.shape[1] < h:
            raise DataError(
                f"RegimeModel.classify: window of {b.shape[1]} bars < required_history {h}: "
                "pass a longer window"
            )
        if not (np.isfinite(a[:, -h:]).all() and np.isfinite(b[:, -h:]).all()):
            raise DataError(
                "RegimeModel.classify: non-finite returns in the window: use 0 for untradable "
                "bars (MarketData.returns does)"
            )
        p = self.params
        a = a[:, -h:]
        b = b[:, -h:]
        # Only the windows ending at the last bar are built (one per statistic).
        vol_hist = _realized_vol(
            _windows(b[:, h - (p.vol_lookback + p.vol_window - 1) :], p.vol_window)
        )
        trend = _tstat(np.ascontiguousarray(b[:, h - p.trend_window :]))
        resid = a[:, h - p.mr_window :, :] - b[:, h - p.mr_window :, None]
        raw = a[:, h - p.mr_window :, :]
        mr = self._mean_autocorr(
            np.ascontiguousarray(resid.transpose(0, 2, 1)),
            np.ascontiguousarray(raw.transpose(0, 2, 1)),
        )
        return self._decide(_percentile(vol_hist), trend, mr)

    def path(self, market: MarketData) -> RegimeState:
        """Regime at every bar of ``market`` (causal: bar t reads rows <= t only).

        Bars before ``required_history - 1`` are ``uncertain`` with confidence 0, barbell
        ``NORMAL`` and volatility percentile 0.5.

        Returns
        -------
        RegimeState
            Fields of shape (n_days,); identical bits to ``classify`` at every bar.
        """
        return self.path_from_returns(market.returns, market.benchmark_returns)

    def path_from_returns(
        self, asset_returns: np.ndarray, bench_returns: np.ndarray
    ) -> RegimeState:
        """``path`` on raw arrays: asset returns (n_days, n_assets), benchmark (n_days,)."""
        a = np.asarray(asset_returns, dtype=np.float64)
        b = np.asarray(bench_returns, dtype=np.float64)
        if a.ndim != 2 or b.shape != (a.shape[0],):
            raise DataError(
                f"RegimeModel.path: asset returns {a.shape} must be (n_days, n_assets) and "
                f"benchmark {b.shape} (n_days,)"
            )
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            raise DataError("RegimeModel.path: non-finite returns: use 0 for untradable bars")
        p = self.params
        n_days, h = a.shape[0], self.required_history
        labels = np.full(n_days, UNCERTAIN, dtype=np.int8)
        conf = np.zeros(n_days)
        barbell = np.full(n_days, NORMAL, dtype=np.int8)
        pct = np.full(n_days, 0.5)
        trend = np.zeros(n_days)
        mr = np.zeros(n_days)
        if n_days < h:
            return RegimeState(labels, conf, barbell, pct, trend, mr)

        # Realized vol at every bar (one contiguous vol_window-row per bar, as in classify),
        # then the percentile of each bar's vol against its trailing vol_lookback values.
        vols = _realized_vol(_windows(b[None, :], p.vol_window))[0]  # bar s = vol_window-1+j
        first = h - 1
        hist = _windows(
            vols[None, first - (p.vol_window - 1) - (p.vol_lookback - 1) :], p.vol_lookback
        )[0]
        pct[first:] = _percentile(hist)
        trend[first:] = _tstat(_windows(b[None, first - p.trend_window + 1 :], p.trend_window))[0]

        resid_t = np.ascontiguousarray((a - b[:, None]).T)  # (n_assets, n_days)
        raw_t = np.ascontiguousarray(a.T)
        start = first - p.mr_window + 1
        for c0 in range(start, n_days - p.mr_window + 1, _PATH_CHUNK):  # chunks bound memory
            c1 = min(c0 + _PATH_CHUNK, n_days - p.mr_window + 1)
            sl = slice(c0, c1 + p.mr_window - 1)
            # (n_assets, n_win, mr_window) -> (n_win, n_assets, mr_window), contiguous rows
            rw = sliding_window_view(resid_t[:, sl], p.mr_window, axis=1).transpose(1, 0, 2)
            ow = sliding_window_view(raw_t[:, sl], p.mr_window, axis=1).transpose(1, 0, 2)
            bar0 = c0 + p.mr_window - 1
            mr[bar0 : bar0 + (c1 - c0)] = self._mean_autocorr(
                np.ascontiguousarray(rw), np.ascontiguousarray(ow)
            )
        state = self._decide(pct[first:], trend[first:], mr[first:])
        labels[first:] = state.labels
        conf[first:] = state.confidence
        barbell[first:] = state.barbell
        return RegimeState(labels, conf, barbell, pct, trend, mr)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _mean_autocorr(resid: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Mean residual lag-1 autocorrelation over assets whose raw returns moved.

        ``resid``, ``raw``: (K, n_assets, mr_window) contiguous. Returns (K,).
        """
        ac, _ = _lag1_autocorr(resid)
        moved = raw.std(axis=-1) > 0.0
        ac = np.where(moved, ac, 0.0)
        n = moved.sum(axis=-1)
        total = ac.sum(axis=-1)
        return np.where(n > 0, total / np.maximum(n, 1), 0.0)

    def _decide(self, pct: np.ndarray, trend: np.ndarray, mr: np.ndarray) -> RegimeState:
        p = self.params
        hv = pct >= p.high_vol_percentile
        z_mr = mr / p.mr_threshold
        z_tr = np.abs(trend) / p.trend_threshold
        is_mr = ~hv & (z_mr >= 1.0)
        is_tr = ~hv & ~is_mr & (z_tr >= 1.0)
        labels = np.select([hv, is_mr, is_tr], [HIGH_VOLATILITY, MEAN_REVERSION, TREND], UNCERTAIN)
        conf_hv = 0.5 + 0.5 * (pct - p.high_vol_percentile) / (1.0 - p.high_vol_percentile)
        conf_mr = 1.0 - 0.5 * np.exp(-(z_mr - 1.0))
        conf_tr = 1.0 - 0.5 * np.exp(-(z_tr - 1.0))
        conf_unc = 0.5 * (1.0 - np.clip(np.maximum(z_mr, z_tr), 0.0, 1.0))
        conf = np.select([hv, is_mr, is_tr], [conf_hv, conf_mr, conf_tr], conf_unc)
        barbell = np.where(
            pct >= p.crisis_percentile, CRISIS, np.where(pct < p.quiet_percentile, QUIET, NORMAL)
        )
        return RegimeState(
            labels=labels.astype(np.int8),
            confidence=np.clip(conf, 0.0, 1.0),
            barbell=barbell.astype(np.int8),
            vol_percentile=pct,
            trend_tstat=trend,
            mr_autocorr=mr,
        )


def balanced_accuracy(truth: np.ndarray, predicted: np.ndarray, mapping: dict[int, int]) -> float:
    """Mean per-class recall of ``predicted`` regime codes against true codes.

    Parameters
    ----------
    truth : ndarray of int, shape (n_days,)
        True class codes (e.g. ``MarketData.regimes``).
    predicted : ndarray of int, shape (n_days,)
        Predicted ``REGIME_LABELS`` codes; ``uncertain`` counts as wrong.
    mapping : dict of int to int
        True class code -> the regime code that is correct for it.

    Returns
    -------
    float
        Balanced accuracy over the true classes present (chance = 1 / n_classes).
    """
    truth = np.asarray(truth)
    predicted = np.asarray(predicted)
    recalls = [
        float(np.mean(predicted[truth == k] == v)) for k, v in mapping.items() if (truth == k).any()
    ]
    return float(np.mean(recalls)) if recalls else float("nan")


SYNTHETIC_TO_REGIME: dict[int, int] = {0: TREND, 1: MEAN_REVERSION, 2: HIGH_VOLATILITY}
"""True synthetic regime (``allocgym.data.SYNTHETIC_REGIMES``) -> the correct label code."""
