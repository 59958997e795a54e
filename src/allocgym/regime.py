"""Causal regime model: ``(label, confidence)`` per bar from data up to and including t.

Labels are integer codes into ``REGIME_LABELS``; ``UNKNOWN_REGIME`` (-1) stands for a label
the runtime does not know (the trading allocator's default label ``neutral`` among them), which the
risk gates map to the default multipliers.

Statistics
----------
At every bar ``s`` the model reads four statistics from trailing windows ending at ``s``
(decimal simple returns throughout):

- **volatility percentile** ``pct``: realized volatility of the benchmark over
  ``vol_window`` bars (population std), ranked (mid-rank) against its own last
  ``vol_lookback`` values, the current one included, so ``pct`` is in ``(0, 1)``;
- **volatility level** ``lvl``: the same volatility annualised (times
  ``sqrt(periods_per_year)``) and placed on a linear ramp between two absolute levels,
  ``clip((vol_ann - vol_level_low) / (vol_level_high - vol_level_low), 0, 1)``;
- **trend strength**: t-statistic of the benchmark's mean return over ``trend_window``
  bars, ``mean / (std / sqrt(L))`` with ``ddof=1`` (signed; its magnitude is what counts,
  a falling market trends too);
- **mean reversion**: lag-1 autocorrelation of each asset's residual return
  ``r_i - r_bench`` over ``mr_window`` bars, averaged over the assets whose raw returns
  moved in the window. Residuals strip the (serially uncorrelated) market factor, so
  idiosyncratic mean reversion that the benchmark averages away stays visible.

The **volatility stress** blends the two volatility views,
``stress = (1 - vol_level_weight) * pct + vol_level_weight * lvl``, in ``[0, 1]``. The
percentile alone fires on the top fifth of every year, calm or not (it ranks a year
against itself); the absolute level keeps a calm year's local peaks (2017: below 10%
annualised, ``lvl = 0``, so ``stress <= 0.5``) out of ``high_volatility``.

Raw rule (one bar)
------------------
In ``z`` units (statistic over its threshold: ``z_trend = |t| / trend_threshold``,
``z_mr = autocorr / mr_threshold``), a label *enters* at a bar when

- ``high_volatility``: ``stress >= high_vol_stress``;
- ``mean_reversion``: ``z_mr >= 1``;
- ``trend``: ``z_trend >= 1``;
- ``uncertain``: always,

and is *held* (exit not yet fired) while ``stress >= high_vol_stress - stress_band``,
``z_mr >= exit_fraction``, ``z_trend >= exit_fraction`` (``uncertain``: always). The raw
label of a bar is the first entering label in the order above (the previous release's
whole rule, with ``stress`` in place of the percentile).

Hysteresis (the label)
----------------------
A state machine walks the bars with ``(label, dwell, pending, streak)``. At each bar the
*target* is the first label in the order above that enters, or is the current label and
is held: a label of higher priority pre-empts, the current label stays while its exit has
not fired, otherwise the raw rule decides. The target is *adopted* only when

- it has been the target (differing from the current label) for ``confirm_bars``
  consecutive bars, and
- the current label has been held at least ``min_dwell`` bars;

adopting resets ``dwell`` to 1. The machine is path-dependent, so the label at bar ``t``
is **defined** as the machine run over the ``memory`` bars ``t - memory + 1 .. t``,
starting just before them in ``uncertain``, free to switch (as if held ``min_dwell``
bars) with nothing pending. Every bar's label then depends only on a fixed trailing
window, which ``classify`` (one window per portfolio) and ``path`` (all bars at once:
``memory`` vector steps over every starting bar, no loop over bars) evaluate identically.
Starting from ``uncertain`` (never sticky) rather than from a raw label lets runs begun
on different bars agree quickly: with the default 29 bars the labels equal those of a
600-bar memory on all but 3 of the 7,443 bars of the S&P 500 sample where both exist
(at most 0.6% of the bars of ``synthetic`` seeds 0-9), and the S&P 500 test split has
the same label changes.

Confidence, in ``[0, 1]``, from the statistics at ``t``: ``high_volatility`` scores
``0.5 + 0.5 (stress - high_vol_stress) / (1 - high_vol_stress)``; trend and mean reversion
``1 - 0.5 exp(-(z - 1))``; both are 0.5 at their entry threshold and lower for a label that
is only held. ``uncertain`` scores ``0.5 (1 - max(z_trend, z_mr))``, at most 0.5. All are
clipped to ``[0, 1]``; 0 in the warm-up.

Barbell state
-------------
The same machine (same ``memory``, ``min_dwell`` and ``confirm_bars``, starting in
``NORMAL``) on the stress alone: ``CRISIS`` enters at ``stress >= crisis_stress`` and is
held while ``stress >= crisis_stress - stress_band``; ``QUIET`` enters at
``stress < quiet_stress`` and is held while ``stress < quiet_stress + stress_band``;
``NORMAL`` is the default (and the warm-up state). ``CRISIS`` pre-empts ``QUIET``. With
``crisis_stress`` above ``high_vol_stress`` CRISIS is the deeper end of
``high_volatility``; with the default weights QUIET needs ``pct + lvl < 0.7`` (any
year below 10% annualised vol, once its percentile is under 0.7).

History and warm-up
-------------------
The statistics need ``stat_history = max(vol_lookback + vol_window - 1, trend_window,
mr_window)`` bars (272 with the defaults) and the hysteresis ``memory - 1`` more:
``required_history = stat_history + memory - 1`` (300 with the defaults, 28 more than
the raw rule; the serving request carries that much return history). Bars before
``required_history - 1`` are ``uncertain`` with confidence 0, barbell ``NORMAL``,
percentile and stress 0.5.

Bit identity: ``classify`` on any trailing window and ``path`` at the same bar give the
same bits. Every statistic is the same per-window reduction over the last (contiguous)
axis, the stress uses exactly rounded IEEE arithmetic only, the machine is integer logic,
and transcendental functions (``exp``) run on contiguous 1-D arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from math import sqrt
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from allocgym.config import RegimeConfig
from allocgym.errors import DataError
from allocgym.estimates import varies

if TYPE_CHECKING:
    from rich.console import RenderableType

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

LABEL_PRIORITY: tuple[int, ...] = (HIGH_VOLATILITY, MEAN_REVERSION, TREND, UNCERTAIN)
"""Label codes in the order the rule tests them (the last one always enters)."""
BARBELL_PRIORITY: tuple[int, ...] = (CRISIS, QUIET, NORMAL)
"""Barbell codes in the order the rule tests them (the last one always enters)."""

_PATH_CHUNK = 256
"""Windows per chunk of the mean-reversion statistic (bounds the (chunk, window, n_assets)
copies in ``path`` and ``classify``)."""
_LOOP_RUNS = 4
"""Runs up to which ``hysteresis`` loops in Python instead of stepping numpy vectors."""


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
        Codes into ``REGIME_LABELS`` after hysteresis (never ``UNKNOWN_REGIME``).
    confidence : ndarray of float64, same shape
        Confidence of the label in ``[0, 1]`` (0 in the warm-up).
    barbell : ndarray of int8, same shape
        Codes into ``BARBELL_STATES`` after hysteresis.
    raw_labels : ndarray of int8, same shape
        The raw rule's label at the bar alone (no hysteresis); ``uncertain`` in the warm-up.
    vol_percentile : ndarray of float64, same shape
        Mid-rank percentile in ``(0, 1)`` of the benchmark's realized volatility against
        its own trailing history; 0.5 (no information) in the warm-up.
    vol_stress : ndarray of float64, same shape
        Blend of the percentile and the absolute volatility level, in ``[0, 1]``; 0.5 in
        the warm-up.
    trend_tstat : ndarray of float64, same shape
        t-statistic of the benchmark mean return over ``trend_window`` (0 in the warm-up).
    mr_autocorr : ndarray of float64, same shape
        Mean lag-1 autocorrelation of residual asset returns over ``mr_window`` (0 in the
        warm-up).
    """

    labels: np.ndarray
    confidence: np.ndarray
    barbell: np.ndarray
    raw_labels: np.ndarray
    vol_percentile: np.ndarray
    vol_stress: np.ndarray
    trend_tstat: np.ndarray
    mr_autocorr: np.ndarray


@dataclass(frozen=True)
class RegimeParams:
    """Typed thresholds of ``RegimeModel`` (see ``RegimeConfig`` for each field)."""

    vol_window: int
    vol_lookback: int
    vol_level_low: float
    vol_level_high: float
    vol_level_weight: float
    periods_per_year: float
    high_vol_stress: float
    trend_window: int
    trend_threshold: float
    mr_window: int
    mr_threshold: float
    stress_band: float
    exit_fraction: float
    min_dwell: int
    confirm_bars: int
    memory: int
    crisis_stress: float
    quiet_stress: float

    @classmethod
    def from_config(cls, cfg: RegimeConfig) -> RegimeParams:
        """Build params from the ``regime`` config section (validated by pydantic)."""
        return cls(**{name: getattr(cfg, name) for name in cls.__dataclass_fields__})


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
    # a constant series (a cash-like benchmark) has no t-statistic: its sd is rounding
    return np.where(varies(sd * sd * (n - 1), mean, n), t, 0.0)


def _lag1_autocorr(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lag-1 autocorrelation over the last axis and its validity (non-zero variance)."""
    mean = w.mean(axis=-1, keepdims=True)
    d = w - mean
    den = (d * d).sum(axis=-1)
    num = (d[..., 1:] * d[..., :-1]).sum(axis=-1)
    valid = varies(den, mean[..., 0], w.shape[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        ac = num / den
    return np.where(valid, ac, 0.0), valid


def _percentile(history: np.ndarray) -> np.ndarray:
    """Mid-rank of the last value of ``history`` (..., L) among all L values, in (0, 1)."""
    cur = history[..., -1:]
    less = (history < cur).sum(axis=-1)
    equal = (history == cur).sum(axis=-1)
    return (less + 0.5 * equal) / history.shape[-1]


def _mean_autocorr(resid: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Mean residual lag-1 autocorrelation over the assets whose raw returns moved.

    ``resid``, ``raw``: (..., n_assets, mr_window) contiguous. Returns (...).
    """
    ac, _ = _lag1_autocorr(resid)
    moved = varies(raw.var(axis=-1) * raw.shape[-1], raw.mean(axis=-1), raw.shape[-1])
    ac = np.where(moved, ac, 0.0)
    n = moved.sum(axis=-1)
    total = ac.sum(axis=-1)
    return np.where(n > 0, total / np.maximum(n, 1), 0.0)


# ---------------------------------------------------------------------------- hysteresis


def hysteresis(
    enter: np.ndarray, hold: np.ndarray, min_dwell: int, confirm_bars: int
) -> np.ndarray:
    """Final state of the regime state machine run along the last axis of each row.

    Parameters
    ----------
    enter, hold : ndarray of bool, shape (n_states, K, memory)
        Per state (in priority order), per run and per bar (oldest first): the state's
        entry condition, and its hold condition (exit not fired; implied by ``enter``).
        The last state is the default and must enter at every bar.
    min_dwell : int
        Bars the current state must have been held before another one is adopted.
    confirm_bars : int
        Consecutive bars a new state must be the target before it is adopted.

    Returns
    -------
    ndarray of int64, shape (K,)
        Index (into the first axis) of each run's state after its last bar. A run starts
        before its first bar in the default state, free to switch, nothing pending.

    Notes
    -----
    At each bar the target is the first state that enters, or the current state if it
    holds and no state before it enters; ``streak`` counts the consecutive bars the same
    non-current target has been seen. Integer and boolean logic only, so every batch of
    runs gives the same states. Up to ``_LOOP_RUNS`` runs (the serving path's one window)
    step in a Python loop, which is cheaper there than ``memory`` rounds of numpy calls;
    more runs step as vectors over all runs at once. The tests hold the two equal.
    """
    n_states, n_runs, memory = enter.shape
    if n_runs <= _LOOP_RUNS:
        return np.array(
            [
                _hysteresis_run(enter[:, k].T.tolist(), hold[:, k].T.tolist(), min_dwell,
                                confirm_bars)
                for k in range(n_runs)
            ],
            dtype=np.int64,
        )  # fmt: skip
    runs = np.arange(n_runs)
    state = np.full(n_runs, n_states - 1)
    dwell = np.full(n_runs, min_dwell)
    pending = state.copy()
    streak = np.zeros(n_runs, dtype=np.int64)
    for j in range(memory):  # memory steps over all runs at once, not a loop over bars
        eligible = enter[:, :, j].copy()
        eligible[state, runs] |= hold[state, runs, j]
        target = np.argmax(eligible, axis=0)
        streak = np.where(target == state, 0, np.where(target == pending, streak + 1, 1))
        pending = target
        adopt = (target != state) & (dwell >= min_dwell) & (streak >= confirm_bars)
        state = np.where(adopt, target, state)
        dwell = np.where(adopt, 1, np.minimum(dwell + 1, min_dwell))
    return state


def _hysteresis_run(
    enter: list[list[bool]], hold: list[list[bool]], min_dwell: int, confirm_bars: int
) -> int:
    """``hysteresis`` for one run; ``enter``/``hold`` per bar (oldest first), per state."""
    state = pending = len(enter[0]) - 1
    dwell, streak = min_dwell, 0
    for enters, holds in zip(enter, hold, strict=True):
        first = enters.index(True)
        target = state if holds[state] and state < first else first
        streak = 0 if target == state else (streak + 1 if target == pending else 1)
        pending = target
        if target != state and dwell >= min_dwell and streak >= confirm_bars:
            state, dwell = target, 1
        else:
            dwell = min(dwell + 1, min_dwell)
    return state


# ---------------------------------------------------------------------------- model


class RegimeModel:
    """Causal, deterministic regime classifier (see the module docstring for the rule).

    Parameters
    ----------
    cfg : RegimeConfig
        Windows, thresholds and hysteresis.

    Attributes
    ----------
    params : RegimeParams
    stat_history : int
        Bars of returns one bar's statistics need: ``max(vol_lookback + vol_window - 1,
        trend_window, mr_window)`` (272 with the defaults).
    required_history : int
        Bars of returns a decision needs: ``stat_history + memory - 1`` (300 with the
        defaults).
    """

    def __init__(self, cfg: RegimeConfig | None = None) -> None:
        self.params = RegimeParams.from_config(cfg or RegimeConfig())
        p = self.params
        self.stat_history: int = max(p.vol_lookback + p.vol_window - 1, p.trend_window, p.mr_window)
        self.required_history: int = self.stat_history + p.memory - 1

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
        m = p.memory
        a = a[:, -h:]
        b = b[:, -h:]
        # Statistics at the last `memory` bars of each window (rows h - m .. h - 1).
        vols = _realized_vol(_windows(b, p.vol_window))  # row vol_window - 1 + j
        v0 = h - m - (p.vol_window - 1)
        pct = _percentile(_windows(vols[:, v0 - (p.vol_lookback - 1) :], p.vol_lookback))
        trend = _tstat(_windows(b[:, h - m - p.trend_window + 1 :], p.trend_window))
        rows = slice(h - m - p.mr_window + 1, None)
        resid_t = np.ascontiguousarray((a[:, rows] - b[:, rows, None]).transpose(0, 2, 1))
        raw_t = np.ascontiguousarray(a[:, rows].transpose(0, 2, 1))
        mr = np.empty((a.shape[0], m))
        step = max(1, _PATH_CHUNK // m)
        for k0 in range(0, a.shape[0], step):  # chunks bound the (k, m, n_assets, L) copies
            k1 = min(k0 + step, a.shape[0])
            rw = sliding_window_view(resid_t[k0:k1], p.mr_window, axis=2).transpose(0, 2, 1, 3)
            ow = sliding_window_view(raw_t[k0:k1], p.mr_window, axis=2).transpose(0, 2, 1, 3)
            mr[k0:k1] = _mean_autocorr(np.ascontiguousarray(rw), np.ascontiguousarray(ow))
        return self._decide(pct, vols[:, v0:], trend, mr)

    def path(self, market: MarketData) -> RegimeState:
        """Regime at every bar of ``market`` (causal: bar t reads rows <= t only).

        Bars before ``required_history - 1`` are ``uncertain`` with confidence 0, barbell
        ``NORMAL``, volatility percentile and stress 0.5.

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
        out = RegimeState(
            labels=np.full(n_days, UNCERTAIN, dtype=np.int8),
            confidence=np.zeros(n_days),
            barbell=np.full(n_days, NORMAL, dtype=np.int8),
            raw_labels=np.full(n_days, UNCERTAIN, dtype=np.int8),
            vol_percentile=np.full(n_days, 0.5),
            vol_stress=np.full(n_days, 0.5),
            trend_tstat=np.zeros(n_days),
            mr_autocorr=np.zeros(n_days),
        )
        if n_days < h:
            return out

        # Statistics at every bar from the first with a full stat_history window (as in
        # classify: one contiguous window per bar and statistic).
        first = self.stat_history - 1
        n_stat = n_days - first
        vols = _realized_vol(_windows(b[None, :], p.vol_window))[0]  # bar vol_window-1+j
        v0 = first - (p.vol_window - 1)
        pct = _percentile(_windows(vols[None, v0 - (p.vol_lookback - 1) :], p.vol_lookback))[0]
        trend = _tstat(_windows(b[None, first - p.trend_window + 1 :], p.trend_window))[0]
        mr = np.empty(n_stat)
        resid_t = np.ascontiguousarray((a - b[:, None]).T)  # (n_assets, n_days)
        raw_t = np.ascontiguousarray(a.T)
        start = first - p.mr_window + 1
        for c0 in range(start, n_days - p.mr_window + 1, _PATH_CHUNK):  # chunks bound memory
            c1 = min(c0 + _PATH_CHUNK, n_days - p.mr_window + 1)
            sl = slice(c0, c1 + p.mr_window - 1)
            # (n_assets, n_win, mr_window) -> (n_win, n_assets, mr_window), contiguous rows
            rw = sliding_window_view(resid_t[:, sl], p.mr_window, axis=1).transpose(1, 0, 2)
            ow = sliding_window_view(raw_t[:, sl], p.mr_window, axis=1).transpose(1, 0, 2)
            mr[c0 - start : c1 - start] = _mean_autocorr(
                np.ascontiguousarray(rw), np.ascontiguousarray(ow)
            )

        # Bar t (>= h - 1) reads the statistics of bars t - memory + 1 .. t: window views.
        def trailing(x: np.ndarray) -> np.ndarray:
            return sliding_window_view(x, p.memory)

        state = self._decide(trailing(pct), trailing(vols[v0:]), trailing(trend), trailing(mr))
        for name in out.__dataclass_fields__:
            getattr(out, name)[h - 1 :] = getattr(state, name)
        return out

    def summarize(
        self, state: RegimeState, dates: np.ndarray, start: int = 0, stop: int | None = None
    ) -> dict[str, Any]:
        """Per calendar year and overall: label and barbell shares, label changes, run lengths.

        Parameters
        ----------
        state : RegimeState
            ``path`` of a market, fields of shape (n_days,).
        dates : ndarray of datetime64, shape (n_days,)
            The market's bar dates.
        start, stop : int
            Bars ``start .. stop - 1`` to describe (a split's range); bars before
            ``required_history - 1`` (the warm-up, always ``uncertain``) are left out.

        Returns
        -------
        dict
            JSON-serialisable: ``start``/``end`` (ISO dates), ``bars``, ``warmup_bars`` (left
            out), ``flips`` (label changes between consecutive bars), ``flips_per_year``
            (``flips * periods_per_year / (bars - 1)``), ``barbell_flips``, ``median_run``
            (bars; the runs cut by the range's ends count as they are), ``labels`` /
            ``barbell_states`` (names, share over the range) and ``years``: one dict per
            calendar year with ``year``, ``bars``, ``labels``, ``barbell_states`` (shares),
            ``flips`` and ``barbell_flips`` (a change counts in the year of its later bar).
        """
        n_days = state.labels.shape[0]
        stop = n_days if stop is None else int(stop)
        lo = max(int(start), self.required_history - 1)
        if not 0 <= start < stop <= n_days or dates.shape != (n_days,) or lo >= stop:
            raise DataError(
                f"RegimeModel.summarize: bars [{start}, {stop}) of {n_days} (dates "
                f"{dates.shape}) leave no bar after the {self.required_history - 1}-bar "
                "warm-up: pick a later or longer range (or more data)"
            )
        labels = state.labels[lo:stop].astype(np.int64)
        barbell = state.barbell[lo:stop].astype(np.int64)
        years = dates[lo:stop].astype("datetime64[Y]").astype(np.int64) + 1970
        changed = np.r_[False, labels[1:] != labels[:-1]]
        b_changed = np.r_[False, barbell[1:] != barbell[:-1]]
        runs = np.diff(np.r_[np.flatnonzero(np.r_[True, changed[1:]]), labels.size])

        def shares(codes: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
            counts = np.bincount(codes, minlength=len(names))
            return {name: float(c / codes.size) for name, c in zip(names, counts, strict=True)}

        per_year = [
            {
                "year": int(y),
                "bars": int((years == y).sum()),
                "labels": shares(labels[years == y], REGIME_LABELS),
                "barbell_states": shares(barbell[years == y], BARBELL_STATES),
                "flips": int(changed[years == y].sum()),
                "barbell_flips": int(b_changed[years == y].sum()),
            }
            for y in np.unique(years)
        ]
        n = labels.size
        per_bar = self.params.periods_per_year / max(n - 1, 1)
        return {
            "start": str(dates[lo].astype("datetime64[D]")),
            "end": str(dates[stop - 1].astype("datetime64[D]")),
            "bars": n,
            "warmup_bars": lo - int(start),
            "flips": int(changed.sum()),
            "flips_per_year": float(changed.sum() * per_bar),
            "barbell_flips": int(b_changed.sum()),
            "barbell_flips_per_year": float(b_changed.sum() * per_bar),
            "median_run": float(np.median(runs)),
            "labels": shares(labels, REGIME_LABELS),
            "barbell_states": shares(barbell, BARBELL_STATES),
            "years": per_year,
        }

    # ------------------------------------------------------------------ internals
    def vol_stress(self, pct: np.ndarray, vol: np.ndarray) -> np.ndarray:
        """Blend of the volatility percentile and the absolute level, in ``[0, 1]``.

        Parameters
        ----------
        pct : ndarray
            Volatility percentile in ``(0, 1)``.
        vol : ndarray, same shape
            Realized volatility per bar (decimal, not annualised).

        Returns
        -------
        ndarray, same shape
            ``(1 - w) pct + w clip((vol sqrt(ppy) - low) / (high - low), 0, 1)``.
        """
        p = self.params
        # Exactly rounded operations only (no log/exp): the same bits in any array layout.
        level = np.clip(
            (vol * sqrt(p.periods_per_year) - p.vol_level_low)
            / (p.vol_level_high - p.vol_level_low),
            0.0,
            1.0,
        )
        return (1.0 - p.vol_level_weight) * pct + p.vol_level_weight * level

    def _decide(
        self, pct: np.ndarray, vol: np.ndarray, trend: np.ndarray, mr: np.ndarray
    ) -> RegimeState:
        """State after each run of statistics: every input has shape (K, memory), oldest first."""
        p = self.params
        stress = self.vol_stress(pct, vol)
        z_mr = mr / p.mr_threshold
        z_tr = np.abs(trend) / p.trend_threshold
        always = np.ones(stress.shape, dtype=bool)
        enter = np.stack([stress >= p.high_vol_stress, z_mr >= 1.0, z_tr >= 1.0, always])
        hold = np.stack(
            [
                stress >= p.high_vol_stress - p.stress_band,
                z_mr >= p.exit_fraction,
                z_tr >= p.exit_fraction,
                always,
            ]
        )
        label_idx = hysteresis(enter, hold, p.min_dwell, p.confirm_bars)
        b_enter = np.stack([stress >= p.crisis_stress, stress < p.quiet_stress, always])
        b_hold = np.stack(
            [
                stress >= p.crisis_stress - p.stress_band,
                stress < p.quiet_stress + p.stress_band,
                always,
            ]
        )
        barbell_idx = hysteresis(b_enter, b_hold, p.min_dwell, p.confirm_bars)

        priority = np.array(LABEL_PRIORITY, dtype=np.int8)
        labels = priority[label_idx]
        raw = priority[np.argmax(enter[:, :, -1], axis=0)]
        # Confidence from the last bar; contiguous 1-D copies so exp sees the same layout.
        s_t, zmr_t, ztr_t = (np.ascontiguousarray(x[:, -1]) for x in (stress, z_mr, z_tr))
        conf_hv = 0.5 + 0.5 * (s_t - p.high_vol_stress) / (1.0 - p.high_vol_stress)
        conf_mr = 1.0 - 0.5 * np.exp(-(zmr_t - 1.0))
        conf_tr = 1.0 - 0.5 * np.exp(-(ztr_t - 1.0))
        conf_unc = 0.5 * (1.0 - np.clip(np.maximum(zmr_t, ztr_t), 0.0, 1.0))
        conf = np.select(
            [labels == HIGH_VOLATILITY, labels == MEAN_REVERSION, labels == TREND],
            [conf_hv, conf_mr, conf_tr],
            conf_unc,
        )
        return RegimeState(
            labels=labels,
            confidence=np.clip(conf, 0.0, 1.0),
            barbell=np.array(BARBELL_PRIORITY, dtype=np.int8)[barbell_idx],
            raw_labels=raw,
            vol_percentile=np.ascontiguousarray(pct[:, -1]),
            vol_stress=s_t,
            trend_tstat=np.ascontiguousarray(trend[:, -1]),
            mr_autocorr=np.ascontiguousarray(mr[:, -1]),
        )


class RegimeStream:
    """The regime model bar by bar: each update computes the new bar's statistics once.

    ``path`` and ``classify`` recompute the statistics of the last ``memory`` bars on
    every call; a stream keeps them (the last ``vol_lookback`` volatilities and the last
    ``memory`` rows of percentile, volatility, trend and mean reversion) and adds one row
    per bar: the volatility and trend over the trailing benchmark windows and the mean
    residual autocorrelation over ``mr_window`` bars of every asset, O(mr_window *
    n_assets) per bar, then the hysteresis over the held ``memory`` rows. Every statistic
    is the same per-window reduction ``path`` applies, so the state after bar t has the
    bits of ``path`` at t (and of ``classify`` on the window ending at t).

    Parameters
    ----------
    model : RegimeModel
    """

    def __init__(self, model: RegimeModel) -> None:
        self.model = model
        p = model.params
        self._vols: list[float] = []
        self._rows: list[tuple[float, float, float, float]] = []  # (pct, vol, trend, mr)
        self._bench_needed = max(p.vol_window, p.trend_window, p.mr_window)
        self.state: RegimeState = _warmup_state()

    @property
    def returns_needed(self) -> int:
        """Trailing rows ``update`` reads: ``max(vol_window, trend_window, mr_window)``."""
        return self._bench_needed

    def update(self, asset_returns: np.ndarray, bench_returns: np.ndarray) -> RegimeState:
        """Add the bar that ends the given windows; returns the regime at that bar.

        Parameters
        ----------
        asset_returns : ndarray, shape (L, n_assets)
            Simple returns of the held bars, the last row being the new bar (0 where not
            tradable, as ``MarketData.returns``).
        bench_returns : ndarray, shape (L,)
            Benchmark simple returns of the same bars. Until ``L`` reaches a statistic's
            window that statistic is not formed (the bars of ``path``'s warm-up).

        Returns
        -------
        RegimeState
            Fields of shape (1,); the warm-up state until ``memory`` rows of statistics
            are held (bar ``required_history - 1`` of a stream begun at a series' start).
        """
        p = self.model.params
        b = np.asarray(bench_returns, dtype=np.float64)
        a = np.asarray(asset_returns, dtype=np.float64)
        length = b.shape[0]
        if length >= p.vol_window:
            self._vols.append(
                float(_realized_vol(_windows(b[None, -p.vol_window :], p.vol_window))[0, 0])
            )
            del self._vols[: -p.vol_lookback]
        if len(self._vols) < p.vol_lookback or length < max(p.trend_window, p.mr_window):
            return self.state
        pct = _percentile(np.array(self._vols)[None])[0]
        trend = _tstat(_windows(b[None, -p.trend_window :], p.trend_window))[0, 0]
        tail = slice(length - p.mr_window, None)
        resid = np.ascontiguousarray((a[tail] - b[tail, None]).T)[None]
        raw = np.ascontiguousarray(a[tail].T)[None]
        mr = _mean_autocorr(resid, raw)[0]
        self._rows.append((float(pct), self._vols[-1], float(trend), float(mr)))
        del self._rows[: -p.memory]
        if len(self._rows) == p.memory:
            cols = np.array(self._rows).T  # (4, memory), oldest first
            self.state = self.model._decide(*(np.ascontiguousarray(c)[None] for c in cols))
        return self.state


def _warmup_state() -> RegimeState:
    """The state of a bar before ``required_history - 1`` (as ``path``'s first bars)."""
    return RegimeState(
        labels=np.full(1, UNCERTAIN, dtype=np.int8),
        confidence=np.zeros(1),
        barbell=np.full(1, NORMAL, dtype=np.int8),
        raw_labels=np.full(1, UNCERTAIN, dtype=np.int8),
        vol_percentile=np.full(1, 0.5),
        vol_stress=np.full(1, 0.5),
        trend_tstat=np.zeros(1),
        mr_autocorr=np.zeros(1),
    )


# ---------------------------------------------------------------------------- summaries


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


def render_summary(info: Mapping[str, Any]) -> RenderableType:
    """Rich rendering of ``RegimeModel.summarize``'s dict (used by ``allocgym regime``)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def pct(x: float) -> str:
        return f"{100 * x:.0f}"

    # short headers so the table fits an 80-column terminal or log file
    short = {"trend": "trend", "mean_reversion": "mrev", "high_volatility": "hvol",
             "uncertain": "unc", "QUIET": "QUIET", "NORMAL": "NORM", "CRISIS": "CRIS"}  # fmt: skip
    table = Table(
        title="per calendar year (label shares in %; mrev = mean_reversion, hvol = "
        "high_volatility, unc = uncertain; barbell QUIET / NORMAL / CRISIS; flips and "
        "bbfl: label and barbell changes)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    table.add_column("year", justify="left")
    table.add_column("bars", justify="right")
    for name in (*REGIME_LABELS, *BARBELL_STATES):
        table.add_column(short.get(name, name), justify="right")
    table.add_column("flips", justify="right")
    table.add_column("bbfl", justify="right")
    for row in info["years"]:
        table.add_row(
            str(row["year"]),
            str(row["bars"]),
            *(pct(row["labels"][name]) for name in REGIME_LABELS),
            *(pct(row["barbell_states"][name]) for name in BARBELL_STATES),
            str(row["flips"]),
            str(row["barbell_flips"]),
        )
    table.add_row(
        "all",
        str(info["bars"]),
        *(pct(info["labels"][name]) for name in REGIME_LABELS),
        *(pct(info["barbell_states"][name]) for name in BARBELL_STATES),
        str(info["flips"]),
        str(info["barbell_flips"]),
        style="bold",
    )
    lines = [
        Text(
            f"regime labels {info['start']}..{info['end']}: {info['bars']} bars "
            f"({info['warmup_bars']} warm-up bars left out)",
            style="bold",
        ),
        Text(
            f"label flips per year: {info['flips_per_year']:.2f}, median run "
            f"{info['median_run']:g} bars; barbell flips per year: "
            f"{info['barbell_flips_per_year']:.2f}"
        ),
    ]
    return Group(*lines, table)
