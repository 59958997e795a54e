"""Point-in-time observation features: one ``FeatureBuilder`` for the env and for serving.

Everything at bar ``t`` is computed from fixed-length trailing windows ending at ``t``
(rows ``t - history + 1 .. t``) and nothing else: no full-sample statistic, no running
state. ``compute`` takes a batch of windows ``(K, L, N)``; ``precompute`` slides the same
computation over a whole ``MarketData`` in bounded-memory chunks. Every reduction runs
along the time axis of contiguous ``(K, m, N)`` arrays (elementwise products, then
``.sum(axis=1)``), so a bar's numbers do not depend on where its window came from:
``precompute(market)`` row ``t`` is **bit-identical** to ``compute`` on the window ending
at ``t`` (the serving path calls ``compute`` with ``K = 1``). Simple returns are built
with exactly rounded IEEE operations only (identical bits to ``MarketData.returns``), so
``precompute`` may form them once over the series; the regime columns come from
``RegimeModel.path``, which is bit-identical to ``RegimeModel.classify`` on each window
(the regime model's contract, re-checked by the parity tests here).

Usage::

    fb = FeatureBuilder(cfg.features, RegimeModel(cfg.regime))
    feats = fb.precompute(market)                       # env / backtests: every bar
    obs = fb.observation(feats, w, drawdown, cash, rows=t)  # t: (n_envs,) bar indices
    sigma, beta, adv = feats.volatility[t], feats.betas[t], feats.adv_notional[t]
    one = fb.compute(close_w, bench_w, volume_w, spread_w, tradable_w)  # serving, K = 1

The gates, the cost model and the allocators take ``volatility``, ``betas``,
``adv_notional``, ``alpha_scores`` and ``intents`` from ``MarketFeatures`` so that the env
and the production path use the same numbers.

Observation layout (``FeatureBuilder.layout``; float32, shape ``(n_envs, obs_dim)``)::

    obs = [asset 0 features | asset 1 features | ... | asset N-1 features | globals]
    obs_dim = n_assets * n_asset_features + n_global_features

Asset features, in order (``W = window``, ``H`` = momentum horizons, ``c = clip``):

==========================  =========================================================  ==========
name                        definition (log returns ``x``, daily EWMA vol ``sigma``)    range
==========================  =========================================================  ==========
``ret_lag0..ret_lag{W-1}``  ``x_{t-j} / sigma`` (lag 0 = the return into bar t)          [-c, c]
``ewma_vol``                ``sigma * sqrt(252)`` (annualised)                         [0, c]
``mom_{h}`` for h in H      ``sum of x over h bars / (sigma * sqrt(h))``                [-c, c]
``mr_zscore``               ``(log p_t - mean log p) / std log p`` over zscore_window  [-c, c]
                            (0 unless the symbol traded on every bar of the window,
                            and 0 for a flat price)
``intent_trend``            ``allocgym.intents`` trend intent                          [-1, 1]
``conf_trend``              its confidence                                             [0, 1]
``intent_mean_reversion``   mean-reversion intent                                      [-1, 1]
``conf_mean_reversion``     its confidence                                             [0, 1]
``intent_defensive``        defensive low-volatility intent                            [0, 1]
``conf_defensive``          its confidence                                             [0, 1]
``beta``                    OLS beta of simple returns to the benchmark (beta_window)  [-c, c]
``log_adv_rel``             ``log(ADV / median ADV of the tradables that traded)``;    [-c, c]
                            0 if not tradable, ``-c`` if no traded notional
``spread``                  ``spread_bps / 100`` at bar t                              [0, c]
``tradable``                1 if the symbol is tradable at bar t, else 0               [0, 1]
``weight``                  current weight (added at step time by ``observation``)     [-c, c]
==========================  =========================================================  ==========

Global features: ``regime_trend``, ``regime_mean_reversion``, ``regime_high_volatility``,
``regime_uncertain`` (one-hot of ``RegimeModel.classify`` on the same window), then
``regime_confidence`` [0, 1], and at step time ``gross`` [0, c], ``net`` [-c, c],
``drawdown`` [0, 1] (positive fraction below the running peak) and ``cash`` [-c, c].
With ``features.mean_correlation`` on (off by default; the observation is then unchanged),
one more global follows them: ``mean_correlation`` [-1, 1], the mean pairwise EWMA
correlation of the universe on the same window as ``ewma_vol`` (see
``FeatureBuilder._mean_correlation``); it costs O(ewma_window x n_assets) per bar. With
``features.factor_exposures = k > 0`` (0 by default), ``k`` step-time globals come last:
``factor_exposure_1..k`` [-c, c], the current book's exposures ``B^T w`` to the first ``k``
PCA factors of the bar (the env's per-bar loadings, ``factor_loading_table``; passed to
``observation`` as ``exposures``).

Normalisation uses only the window: returns and momentum are scaled by the symbol's own
trailing EWMA volatility (floored at ``vol_floor``), ADV by the same bar's cross-sectional
median; then everything is clipped. Returns into bars where a symbol is not tradable (at
either end) are 0 and excluded from the EWMA volatility; a symbol with no valid return in
the EWMA window gets the cross-sectional median volatility.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from allocgym.compiled.step import write_book
from allocgym.config import FeatureConfig
from allocgym.errors import ConfigError, DataError
from allocgym.estimates import varies
from allocgym.intents import STRATEGY_FAMILIES, IntentParams, strategy_intents
from allocgym.regime import REGIME_LABELS

if TYPE_CHECKING:
    from allocgym.data import MarketData
    from allocgym.regime import RegimeModel, RegimeState

PERIODS_PER_YEAR = 252
"""Bars per year used to annualise the volatility feature."""

LAYOUT_SCHEMA = "allocgym.features/1"
"""Version tag of ``FeatureBuilder.layout`` (bump when names, order or meaning change)."""

STEP_ASSET_FEATURES: tuple[str, ...] = ("weight",)
"""Per-asset features ``observation`` adds at step time (the rest come from the market)."""

STEP_GLOBAL_FEATURES: tuple[str, ...] = ("gross", "net", "drawdown", "cash")
"""Global features ``observation`` adds at step time."""

_N_MARKET_GLOBALS = len(REGIME_LABELS) + 1
_ROW_FREE = ("horizons", "n_market_asset_features")
_UNCERTAIN = REGIME_LABELS.index("uncertain")
_NORMAL_BARBELL = 1
_CHUNK_BYTES = 32 * 2**20


@dataclass(frozen=True, eq=False)
class MarketFeatures:
    """Market part of the observation and the numbers the gates and costs use, per bar.

    Leading axis ``K``: the windows given to ``compute``, the bars of ``precompute`` or
    the portfolios of ``take``. Rows with ``valid`` False (bars before a full history)
    hold NaN features and regime ``uncertain`` with confidence 0.

    Attributes
    ----------
    template : ndarray of float32, shape (K, obs_dim)
        The observation with the market features in place and the step-time slots
        (``weight``, ``gross``, ``net``, ``drawdown``, ``cash``) at 0; ``observation``
        copies it and fills those slots. ``asset`` and ``market_globals`` are views of it.
    n_market_asset_features : int
        Per-asset market features (``n_asset_features - 1``).
    volatility : ndarray, shape (K, n_assets)
        Daily EWMA volatility of log returns (decimal, floored at ``vol_floor``); the
        ``GateContext.volatility`` the gates and the cost model use.
    betas : ndarray, shape (K, n_assets)
        Unclipped betas to the benchmark (``GateContext.betas``).
    adv_notional : ndarray, shape (K, n_assets)
        Mean traded notional (volume * close) over the last ``adv_window`` bars, currency.
    momentum : ndarray, shape (K, n_assets)
        Mean risk-adjusted momentum over the horizons (input of ``alpha_scores``).
    intents : ndarray, shape (K, n_strategies, n_assets)
        Strategy intents (``allocgym.intents``), ``STRATEGY_FAMILIES`` order.
    intent_confidence : ndarray, shape (K, n_strategies, n_assets)
    horizons : ndarray of int64, shape (n_strategies,)
        Horizon of each strategy family in bars.
    regime : ndarray of int8, shape (K,)
        Codes into ``REGIME_LABELS``.
    regime_confidence : ndarray, shape (K,)
    barbell : ndarray of int8, shape (K,)
        Codes into ``BARBELL_STATES``.
    tradable : ndarray of bool, shape (K, n_assets)
        Tradable at the bar.
    valid : ndarray of bool, shape (K,)
        The row had a full history window.
    """

    template: np.ndarray
    n_market_asset_features: int
    volatility: np.ndarray
    betas: np.ndarray
    adv_notional: np.ndarray
    momentum: np.ndarray
    intents: np.ndarray
    intent_confidence: np.ndarray
    horizons: np.ndarray
    regime: np.ndarray
    regime_confidence: np.ndarray
    barbell: np.ndarray
    tradable: np.ndarray
    valid: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.template.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self.volatility.shape[1])

    @property
    def asset(self) -> np.ndarray:
        """Per-asset market features, float32 view of shape (K, n_assets,
        n_market_asset_features) (observation order, step-time ``weight`` excluded)."""
        k, n = self.n_rows, self.n_assets
        n_feats = self.n_market_asset_features + len(STEP_ASSET_FEATURES)
        asset_block = self.template[:, : n * n_feats].reshape(k, n, n_feats)
        return asset_block[:, :, : self.n_market_asset_features]

    @property
    def market_globals(self) -> np.ndarray:
        """Regime one-hot (4) and regime confidence, float32 view of shape (K, 5)."""
        start = self.n_assets * (self.n_market_asset_features + len(STEP_ASSET_FEATURES))
        return self.template[:, start : start + _N_MARKET_GLOBALS]

    def take(self, rows: np.ndarray | int) -> MarketFeatures:
        """Rows ``rows`` (e.g. each portfolio's bar index, shape (n_envs,)) as a new batch."""
        idx = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        kw = {
            f.name: getattr(self, f.name) if f.name in _ROW_FREE else getattr(self, f.name)[idx]
            for f in fields(self)
        }
        return MarketFeatures(**kw)


def alpha_scores(feats: MarketFeatures) -> np.ndarray:
    """Risk-scaled, cross-sectionally standardised alpha scores (``AllocationContext.scores``).

    The mean risk-adjusted momentum (``feats.momentum``: sum of log returns over each
    horizon divided by ``sigma * sqrt(h)``, averaged over horizons) standardised across
    the symbols tradable at the bar: ``(m_i - mean) / std``. Non-tradable symbols and bars
    with zero dispersion get 0.

    Parameters
    ----------
    feats : MarketFeatures
        Leading axis ``n_envs`` (e.g. ``precomputed.take(t)``).

    Returns
    -------
    ndarray, shape (n_envs, n_assets)
    """
    tradable = feats.tradable
    momentum = np.where(tradable, feats.momentum, 0.0)
    count = np.maximum(tradable.sum(axis=-1), 1)[:, None]
    mean = momentum.sum(axis=-1, keepdims=True) / count
    dev = np.where(tradable, momentum - mean, 0.0)
    sum_sq = (dev * dev).sum(axis=-1, keepdims=True)
    sd = np.sqrt(sum_sq / count)
    ok = varies(sum_sq, mean, count)
    return np.divide(dev, sd, out=np.zeros_like(dev), where=ok)


def _pair_returns(
    c_prev: np.ndarray, c_next: np.ndarray, t_prev: np.ndarray, t_next: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Simple returns and their validity, elementwise (``MarketData.returns`` semantics).

    Only exactly rounded IEEE operations, so the result does not depend on the array an
    element sits in: returns of a whole series and of a window agree bit for bit.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = c_next / c_prev
    valid = np.isfinite(ratio) & t_prev & t_next
    return np.where(valid, ratio - 1.0, 0.0), valid


def bar_series(
    close_prev: np.ndarray,
    close_t: np.ndarray,
    tradable_prev: np.ndarray,
    tradable_t: np.ndarray,
    volume_t: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One bar's simple return, its validity and its traded notional, shape (n_assets,).

    What ``precompute`` forms over a whole series and ``FeatureBuilder.compute_bar``
    reads from the streaming market state, elementwise and exactly rounded, so a bar's
    values do not depend on the series around it.
    """
    r, valid = _pair_returns(close_prev, close_t, tradable_prev, tradable_t)
    return r, valid, _finite_or_zero(volume_t * close_t)


def _masked_median(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median of ``x`` over ``mask`` along the last axis of (K, N), shape (K,); NaN where empty."""
    k, n = x.shape
    ascending = np.sort(np.where(mask, x, np.inf), axis=-1)  # masked out last
    count = np.count_nonzero(mask, axis=-1)
    rows = np.arange(k)
    lower = ascending[rows, np.maximum(count - 1, 0) // 2]
    upper = ascending[rows, np.minimum(count // 2, n - 1)]
    return np.where(count > 0, 0.5 * (lower + upper), np.nan)


def _finite_or_zero(x: np.ndarray) -> np.ndarray:
    """``x`` with NaN/inf replaced by 0 (missing volume or price: no traded notional)."""
    return np.where(np.isfinite(x), x, 0.0)


def _clip(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``np.clip`` without its Python-level dispatch (it dominates at K = 1)."""
    return np.minimum(np.maximum(x, lo), hi)


_ABOVE_MINUS_ONE = float(np.nextafter(-1.0, 0.0))


def _beta(r: np.ndarray, rb: np.ndarray, window: int) -> np.ndarray:
    """Beta (K, N) of the simple returns ``r`` (K, m, N) to the benchmark's ``rb`` (K, m)
    over the last ``window`` bars (0 when the benchmark has no variance)."""
    m = r.shape[1]
    r_win, rb_win = r[:, m - window :], rb[:, m - window :]
    mean_b = rb_win.sum(axis=1) / window
    bench_dev = rb_win - mean_b[:, None]
    cov = ((r_win - (r_win.sum(axis=1) / window)[:, None, :]) * bench_dev[:, :, None]).sum(axis=1)
    var = (bench_dev * bench_dev).sum(axis=1)
    ok = np.broadcast_to(varies(var, mean_b, window)[:, None], cov.shape)
    return np.divide(cov, var[:, None], out=np.zeros_like(cov), where=ok)


class FeatureBuilder:
    """Builds observations from trailing market windows.

    Parameters
    ----------
    cfg : FeatureConfig
        Windows, clip range and volatility floor (see its fields).
    regime : RegimeModel
        The regime model whose ``classify`` supplies the regime one-hot and confidence.

    Raises
    ------
    ConfigError
        ``cfg.history`` is set below the bars the features and the regime model need.

    Attributes
    ----------
    history : int
        Bars every window must hold (``L >= history``); the first bar with features is
        ``history - 1``.
    asset_feature_names, global_feature_names : tuple of str
        Observation names in order (step-time names included, see module docstring).
    n_asset_features, n_global_features : int
    intent_params : IntentParams
    """

    def __init__(self, cfg: FeatureConfig, regime: RegimeModel) -> None:
        self.cfg = cfg
        self.regime = regime
        self.intent_params = IntentParams.from_config(cfg)
        self._horizons = tuple(int(h) for h in cfg.momentum_horizons)
        # Returns each part needs; the regime model reads the last required_history ones.
        self._n_feat_returns = max(
            cfg.window, cfg.ewma_window, max(self._horizons), cfg.zscore_window + 1, cfg.beta_window
        )
        self._n_regime_returns = int(regime.required_history)
        self._n_returns = max(self._n_feat_returns, self._n_regime_returns)
        needed = max(self._n_returns + 1, cfg.adv_window, cfg.zscore_window)
        if cfg.history is not None and cfg.history < needed:
            raise ConfigError(
                f"features.history = {cfg.history} is too short: the features and the regime "
                f"model need {needed} bars; set features.history >= {needed} or leave it unset"
            )
        self.history = int(cfg.history if cfg.history is not None else needed)

        decay = 0.5 ** (1.0 / cfg.ewma_halflife)
        # EWMA weights oldest first, so they line up with the time axis of a window.
        self._ewma_w = (decay ** np.arange(cfg.ewma_window - 1, -1, -1, dtype=np.float64))[
            None, :, None
        ]
        self._inv_sqrt_h = (1.0 / np.sqrt(np.array(self._horizons, dtype=np.float64)))[
            None, :, None
        ]
        self._label_codes = np.arange(len(REGIME_LABELS))

        w = cfg.window
        self.market_asset_feature_names: tuple[str, ...] = (
            *(f"ret_lag{j}" for j in range(w)),
            "ewma_vol",
            *(f"mom_{h}" for h in self._horizons),
            "mr_zscore",
            *(f"{p}_{s}" for s in STRATEGY_FAMILIES for p in ("intent", "conf")),
            "beta",
            "log_adv_rel",
            "spread",
            "tradable",
        )
        self.market_global_feature_names: tuple[str, ...] = (
            *(f"regime_{label}" for label in REGIME_LABELS),
            "regime_confidence",
        )
        self.asset_feature_names = self.market_asset_feature_names + STEP_ASSET_FEATURES
        # The optional globals go after the step-time ones: every other slot keeps its
        # place whether they are on or off.
        optional = ("mean_correlation",) if cfg.mean_correlation else ()
        self.n_exposures = int(cfg.factor_exposures)
        exposures = tuple(f"factor_exposure_{j + 1}" for j in range(self.n_exposures))
        self.global_feature_names = (
            self.market_global_feature_names + STEP_GLOBAL_FEATURES + optional + exposures
        )
        # slot of mean_correlation from the end of the observation
        self._mean_corr_back = 1 + self.n_exposures
        self.n_asset_features = len(self.asset_feature_names)
        self.n_global_features = len(self.global_feature_names)

        clip = float(cfg.clip)
        symmetric, positive = (-clip, clip), (0.0, clip)
        unit, signed_unit = (0.0, 1.0), (-1.0, 1.0)
        bounds: dict[str, tuple[float, float]] = dict.fromkeys(self.asset_feature_names, symmetric)
        bounds.update(ewma_vol=positive, spread=positive, tradable=unit, intent_defensive=unit)
        bounds.update({f"conf_{s}": unit for s in STRATEGY_FAMILIES})
        bounds.update(intent_trend=signed_unit, intent_mean_reversion=signed_unit)
        global_bounds: dict[str, tuple[float, float]] = dict.fromkeys(
            self.global_feature_names, unit
        )
        global_bounds.update(gross=positive, net=symmetric, cash=symmetric)
        if cfg.mean_correlation:
            global_bounds.update(mean_correlation=signed_unit)
        global_bounds.update(dict.fromkeys(exposures, symmetric))
        self._asset_bounds = np.array([bounds[name] for name in self.asset_feature_names]).T
        self._global_bounds = np.array(
            [global_bounds[name] for name in self.global_feature_names]
        ).T
        self._bounds = {**bounds, **global_bounds}

    # ------------------------------------------------------------------ layout
    def obs_dim(self, n_assets: int) -> int:
        """Observation length for ``n_assets`` symbols."""
        return int(n_assets) * self.n_asset_features + self.n_global_features

    def layout(self, n_assets: int) -> dict[str, Any]:
        """The observation layout as JSON-ready data (for the ONNX manifest).

        ``obs[:, i * n_asset_features + f]`` is asset ``i``'s feature
        ``asset_feature_names[f]``; ``obs[:, n_assets * n_asset_features + g]`` is global
        ``global_feature_names[g]``. ``json.loads(json.dumps(layout))`` equals the layout.
        """
        cfg = self.cfg
        return {
            "schema": LAYOUT_SCHEMA,
            "dtype": "float32",
            "order": "asset_major_then_global",
            "n_assets": int(n_assets),
            "n_asset_features": self.n_asset_features,
            "n_global_features": self.n_global_features,
            "obs_dim": self.obs_dim(n_assets),
            "asset_feature_names": list(self.asset_feature_names),
            "global_feature_names": list(self.global_feature_names),
            "step_time_features": {
                "asset": list(STEP_ASSET_FEATURES),
                "global": list(STEP_GLOBAL_FEATURES),
            },
            "bounds": {k: [float(v[0]), float(v[1])] for k, v in self._bounds.items()},
            "history": self.history,
            "windows": {
                "window": cfg.window,
                "ewma_halflife": float(cfg.ewma_halflife),
                "ewma_window": cfg.ewma_window,
                "momentum_horizons": list(self._horizons),
                "zscore_window": cfg.zscore_window,
                "beta_window": cfg.beta_window,
                "adv_window": cfg.adv_window,
                "regime_returns": self._n_regime_returns,
            },
            "clip": float(cfg.clip),
            "vol_floor": float(cfg.vol_floor),
            "periods_per_year": PERIODS_PER_YEAR,
            "regime_labels": list(REGIME_LABELS),
            "strategy_families": list(STRATEGY_FAMILIES),
            "strategy_horizons": [int(h) for h in self.intent_params.horizons],
            "inputs": {
                "close": "(K, L, n_assets) close prices, last row = bar t, L >= history",
                "bench": "(K, L) benchmark simple returns, row-aligned with close",
                "volume": "(K, L, n_assets) shares traded per bar",
                "spread": "(K, L, n_assets) quoted spread in bps",
                "tradable": "(K, L, n_assets) bool",
            },
        }

    def observation_names(self, symbols: Sequence[str]) -> list[str]:
        """Every observation slot's name in order: ``"{symbol}.{feature}"``, then globals."""
        return [f"{sym}.{name}" for sym in symbols for name in self.asset_feature_names] + list(
            self.global_feature_names
        )

    def observation_bounds(self, n_assets: int) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` float32 arrays of shape (obs_dim,): every observation lies inside."""
        n = int(n_assets)
        low = np.r_[np.tile(self._asset_bounds[0], n), self._global_bounds[0]]
        high = np.r_[np.tile(self._asset_bounds[1], n), self._global_bounds[1]]
        return low.astype(np.float32), high.astype(np.float32)

    # ------------------------------------------------------------------ compute
    def compute(
        self,
        close_window: np.ndarray,
        bench_window: np.ndarray,
        volume_window: np.ndarray,
        spread_window: np.ndarray,
        tradable_window: np.ndarray,
    ) -> MarketFeatures:
        """Features at the last bar of each of ``K`` trailing windows.

        Parameters
        ----------
        close_window : ndarray, shape (K, L, n_assets)
            Close prices, rows oldest to newest, the last row being bar t; ``L >= history``
            (only the last ``history`` rows are read).
        bench_window : ndarray, shape (K, L)
            Benchmark simple returns, row-aligned with ``close_window``.
        volume_window : ndarray, shape (K, L, n_assets)
            Shares traded per bar.
        spread_window : ndarray, shape (K, L, n_assets)
            Quoted spread in bps.
        tradable_window : ndarray of bool, shape (K, L, n_assets)

        Returns
        -------
        MarketFeatures
            Leading axis ``K``; bit-identical to ``precompute`` at the same bars.

        Raises
        ------
        DataError
            Shapes disagree or the windows are shorter than ``history``.
        """
        # C order matters: reductions along time must see the asset axis innermost, or
        # numpy switches to pairwise summation and the bits depend on the memory layout.
        close = np.ascontiguousarray(close_window, dtype=np.float64)
        bench = np.ascontiguousarray(bench_window, dtype=np.float64)
        volume = np.ascontiguousarray(volume_window, dtype=np.float64)
        spread = np.ascontiguousarray(spread_window, dtype=np.float64)
        tradable = np.ascontiguousarray(tradable_window, dtype=bool)
        if close.ndim != 3:
            raise DataError(
                f"close_window has shape {close.shape}: expected (K, L, n_assets); "
                "add a leading axis for a single window"
            )
        k, length, _ = close.shape
        for name, arr in (("volume", volume), ("spread", spread), ("tradable", tradable)):
            if arr.shape != close.shape:
                raise DataError(
                    f"{name}_window has shape {arr.shape}, close_window {close.shape}: align them"
                )
        if bench.shape != (k, length):
            raise DataError(f"bench_window has shape {bench.shape}, expected {(k, length)}")
        if length < self.history:
            raise DataError(
                f"windows hold {length} bars, the features need history = {self.history}: "
                f"pass the last {self.history} bars (or more)"
            )
        m = self._n_returns
        r, valid = _pair_returns(
            close[:, -m - 1 : -1], close[:, -m:], tradable[:, -m - 1 : -1], tradable[:, -m:]
        )
        adv_window, zscore_window = self.cfg.adv_window, self.cfg.zscore_window
        return self._core(
            r,
            valid,
            np.ascontiguousarray(bench[:, -m:]),
            np.ascontiguousarray(close[:, -zscore_window:]),
            _finite_or_zero(volume[:, -adv_window:] * close[:, -adv_window:]),
            spread[:, -1],
            tradable[:, -1],
        )

    @property
    def n_feature_returns(self) -> int:
        """Trailing returns the market features read (the regime model reads its own)."""
        return self._n_feat_returns

    def compute_bar(
        self,
        returns: np.ndarray,
        valid: np.ndarray,
        bench: np.ndarray,
        close: np.ndarray,
        notional: np.ndarray,
        spread_t: np.ndarray,
        tradable_t: np.ndarray,
        regime: RegimeState,
    ) -> MarketFeatures:
        """Features at one bar from per-bar series already formed (the streaming state).

        The streaming market state forms each bar's simple return, its validity and its
        traded notional once, when the bar arrives, and keeps the regime model's state
        (``RegimeStream``); this applies the window reductions to the trailing rows, the
        arithmetic of ``precompute``, so the result has its bits at the same bar.

        Parameters
        ----------
        returns, valid : ndarray, shape (L, n_assets)
            Simple returns into each bar (0 where not valid) and their validity, as
            ``MarketData.returns``; ``L >= n_feature_returns``.
        bench : ndarray, shape (L,)
            Benchmark simple returns of the same bars.
        close : ndarray, shape (L_z, n_assets)
            Closes, ``L_z >= zscore_window``.
        notional : ndarray, shape (L_a, n_assets)
            ``volume * close`` with non-finite values as 0, ``L_a >= adv_window``.
        spread_t : ndarray, shape (n_assets,)
            Spread in bps at the bar.
        tradable_t : ndarray of bool, shape (n_assets,)
        regime : RegimeState
            The regime at the bar, fields of shape (1,).

        Returns
        -------
        MarketFeatures
            Leading axis 1.
        """
        m = self._n_feat_returns
        adv_window, zscore_window = self.cfg.adv_window, self.cfg.zscore_window
        return self._core(
            np.ascontiguousarray(returns[-m:], dtype=np.float64)[None],
            np.ascontiguousarray(valid[-m:], dtype=bool)[None],
            np.ascontiguousarray(bench[-m:], dtype=np.float64)[None],
            np.ascontiguousarray(close[-zscore_window:], dtype=np.float64)[None],
            np.ascontiguousarray(notional[-adv_window:], dtype=np.float64)[None],
            np.ascontiguousarray(spread_t, dtype=np.float64)[None],
            np.ascontiguousarray(tradable_t, dtype=bool)[None],
            (regime.labels, regime.confidence, regime.barbell),
        )

    def precompute(self, market: MarketData, *, chunk_bytes: int = _CHUNK_BYTES) -> MarketFeatures:
        """Features at every bar of ``market`` (leading axis = ``market.n_days``).

        Row ``t`` is bit-identical to ``compute`` on the windows ending at ``t``; rows
        ``t < history - 1`` are not ``valid``. Windows are materialised in chunks of about
        ``chunk_bytes`` per array, so memory stays bounded for large universes.
        """
        close = np.ascontiguousarray(market.close)
        tradable = np.ascontiguousarray(market.tradable)
        bench = np.ascontiguousarray(market.benchmark_returns)
        n_days, n_assets = close.shape
        adv_window, zscore_window = self.cfg.adv_window, self.cfg.zscore_window
        r_full = np.zeros_like(close)
        valid_full = np.zeros(close.shape, dtype=bool)
        r_full[1:], valid_full[1:] = _pair_returns(
            close[:-1], close[1:], tradable[:-1], tradable[1:]
        )
        notional = _finite_or_zero(np.ascontiguousarray(market.volume) * close)

        out = self._empty(n_days, n_assets)
        first = self.history - 1
        if n_days <= first:
            return out
        # The regime model's path gives the same bits as its classify on every window
        # (its contract; the parity tests check it) without building 272-bar windows.
        regime = self.regime.path_from_returns(r_full, bench)
        # Only the feature returns are windowed here; window for bar t is index t - m + 1.
        m = self._n_feat_returns
        windows = np.lib.stride_tricks.sliding_window_view
        r_win, valid_win = windows(r_full, m, axis=0), windows(valid_full, m, axis=0)
        bench_win = windows(bench, m)
        close_win = windows(close, zscore_window, axis=0)
        notional_win = windows(notional, adv_window, axis=0)
        step = max(1, int(chunk_bytes) // (m * n_assets * 8))
        for start in range(first, n_days, step):
            stop = min(n_days, start + step)
            returns_rows = slice(start - m + 1, stop - m + 1)
            close_rows = slice(start - zscore_window + 1, stop - zscore_window + 1)
            adv_rows = slice(start - adv_window + 1, stop - adv_window + 1)
            part = self._core(
                np.ascontiguousarray(r_win[returns_rows].transpose(0, 2, 1)),
                np.ascontiguousarray(valid_win[returns_rows].transpose(0, 2, 1)),
                np.ascontiguousarray(bench_win[returns_rows]),
                np.ascontiguousarray(close_win[close_rows].transpose(0, 2, 1)),
                np.ascontiguousarray(notional_win[adv_rows].transpose(0, 2, 1)),
                np.ascontiguousarray(market.spread_bps[start:stop]),
                tradable[start:stop],
                (
                    regime.labels[start:stop],
                    regime.confidence[start:stop],
                    regime.barbell[start:stop],
                ),
            )
            for f in fields(out):
                if f.name not in _ROW_FREE:
                    getattr(out, f.name)[start:stop] = getattr(part, f.name)
        return out

    def _empty(self, n_rows: int, n_assets: int) -> MarketFeatures:
        n_families, n = len(STRATEGY_FAMILIES), n_assets
        per_asset = np.full((n_rows, n), np.nan)
        return MarketFeatures(
            template=np.full((n_rows, self.obs_dim(n)), np.nan, np.float32),
            n_market_asset_features=len(self.market_asset_feature_names),
            volatility=per_asset,
            betas=per_asset.copy(),
            adv_notional=per_asset.copy(),
            momentum=per_asset.copy(),
            intents=np.full((n_rows, n_families, n), np.nan),
            intent_confidence=np.full((n_rows, n_families, n), np.nan),
            horizons=self.intent_params.horizons,
            regime=np.full(n_rows, _UNCERTAIN, np.int8),
            regime_confidence=np.zeros(n_rows),
            barbell=np.full(n_rows, _NORMAL_BARBELL, np.int8),
            tradable=np.zeros((n_rows, n), dtype=bool),
            valid=np.zeros(n_rows, dtype=bool),
        )

    def _core(
        self,
        r: np.ndarray,
        valid: np.ndarray,
        rb: np.ndarray,
        close_z: np.ndarray,
        notional: np.ndarray,
        spread_t: np.ndarray,
        tradable_t: np.ndarray,
        regime: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> MarketFeatures:
        """Shared arithmetic of ``compute`` and ``precompute``.

        ``r``/``valid`` (K, m, N) simple returns and validity, ``rb`` (K, m) benchmark
        returns, ``close_z`` (K, zscore_window, N), ``notional`` (K, adv_window, N),
        ``spread_t``/``tradable_t`` (K, N) at the bar; all C-contiguous, time on axis 1.
        ``regime`` = (labels, confidence, barbell), each (K,), is classified from the last
        ``required_history`` rows of ``r``/``rb`` when not given.
        """
        cfg = self.cfg
        clip, floor = float(cfg.clip), float(cfg.vol_floor)
        k, m, n = r.shape
        # log returns, (K, n_feat_returns, N); a return that rounds to -1 (a price falling
        # from 1e9 to 1e-8) is floored just above it: its log is finite
        x = np.log1p(np.maximum(r[:, m - self._n_feat_returns :], _ABOVE_MINUS_ONE))
        sigma, x_ewma, has_vol = self._ewma_volatility(x, valid)
        inv_sigma = 1.0 / sigma
        lags, mom = self._scaled_returns(x, inv_sigma)
        # the z-score's window must be traded throughout: a bar before a listing (NaN in
        # MarketData, a stand-in price in a served bar) or a halt leaves it undefined
        span = min(cfg.zscore_window - 1, m)
        traded = valid[:, m - span :].all(axis=1)
        zscore, autocorr = self._mean_reversion(x, close_z, traded)
        beta = _beta(r, rb, cfg.beta_window)
        adv, rel_adv, spread = self._capacity(notional, spread_t, tradable_t)
        med_vol = _masked_median(sigma, tradable_t)
        med_vol = np.where(np.isfinite(med_vol), med_vol, floor)
        strategy = strategy_intents(
            mom, zscore, autocorr, sigma, med_vol, tradable_t, self.intent_params
        )
        if regime is None:
            first = m - self._n_regime_returns
            state = self.regime.classify(r[:, first:], rb[:, first:])
            regime = (state.labels, state.confidence, state.barbell)
        labels = np.asarray(regime[0], dtype=np.int8)
        regime_confidence = np.asarray(regime[1], dtype=np.float64)

        # The observation template: per-asset blocks in ``market_asset_feature_names``
        # order, then the regime one-hot and confidence (step-time slots stay 0).
        n_feats = self.n_asset_features
        template = np.zeros((k, n * n_feats + self.n_global_features), dtype=np.float32)
        asset = np.reshape(template[:, : n * n_feats], (k, n, n_feats), copy=False)
        w, n_horizons = cfg.window, len(self._horizons)
        asset[:, :, :w] = lags.transpose(0, 2, 1)
        asset[:, :, w] = np.minimum(sigma * np.sqrt(PERIODS_PER_YEAR), clip)
        asset[:, :, w + 1 : w + 1 + n_horizons] = mom.transpose(0, 2, 1)
        col = w + 1 + n_horizons
        asset[:, :, col] = zscore
        n_families = len(STRATEGY_FAMILIES)
        asset[:, :, col + 1 : col + 1 + 2 * n_families : 2] = strategy.intents.transpose(0, 2, 1)
        asset[:, :, col + 2 : col + 2 + 2 * n_families : 2] = strategy.confidence.transpose(0, 2, 1)
        col += 1 + 2 * n_families
        asset[:, :, col] = _clip(beta, -clip, clip)
        asset[:, :, col + 1] = rel_adv
        asset[:, :, col + 2] = spread
        asset[:, :, col + 3] = tradable_t
        template[:, n * n_feats : n * n_feats + len(REGIME_LABELS)] = (
            labels[:, None] == self._label_codes
        )
        template[:, n * n_feats + len(REGIME_LABELS)] = regime_confidence
        if cfg.mean_correlation:
            template[:, -self._mean_corr_back] = self._mean_correlation(x_ewma, inv_sigma, has_vol)
        return MarketFeatures(
            template=template,
            n_market_asset_features=len(self.market_asset_feature_names),
            volatility=sigma,
            betas=beta,
            adv_notional=adv,
            momentum=mom.sum(axis=1) / n_horizons,
            intents=strategy.intents,
            intent_confidence=strategy.confidence,
            horizons=strategy.horizons,
            regime=labels,
            regime_confidence=regime_confidence,
            barbell=np.asarray(regime[2], dtype=np.int8),
            tradable=np.array(tradable_t, dtype=bool),
            valid=np.ones(k, dtype=bool),
        )

    def _ewma_volatility(
        self, x: np.ndarray, valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """EWMA volatility (K, N) of each name's valid log returns ``x`` over
        ``ewma_window``; a name without one takes the cross-sectional median (else
        ``vol_floor``), and every value is floored at ``vol_floor``.

        Returns the volatility, the window's log returns (K, ewma_window, N) and which
        names had valid returns in it (K, N).
        """
        floor = float(self.cfg.vol_floor)
        window = self.cfg.ewma_window
        x_ewma = x[:, x.shape[1] - window :]
        weights = self._ewma_w * valid[:, valid.shape[1] - window :]
        weight_sum = weights.sum(axis=1)
        has_vol = weight_sum > 0.0
        if has_vol.all():
            sigma = np.sqrt((weights * x_ewma * x_ewma).sum(axis=1) / weight_sum)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                sigma = np.sqrt((weights * x_ewma * x_ewma).sum(axis=1) / weight_sum)
            median = _masked_median(sigma, has_vol)
            sigma = np.where(has_vol, sigma, np.where(np.isfinite(median), median, floor)[:, None])
        return np.maximum(sigma, floor), x_ewma, has_vol

    def _scaled_returns(
        self, x: np.ndarray, inv_sigma: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Volatility-scaled, clipped lagged returns (K, window, N), newest first, and
        momentum per horizon (K, n_horizons, N): the horizon's log return over
        ``sigma sqrt(h)``."""
        clip = float(self.cfg.clip)
        n_feat = x.shape[1]
        k, _, n = x.shape
        lags = _clip(x[:, n_feat - self.cfg.window :][:, ::-1] * inv_sigma[:, None, :], -clip, clip)
        mom = np.empty((k, len(self._horizons), n))
        for i, h in enumerate(self._horizons):
            mom[:, i] = x[:, n_feat - h :].sum(axis=1)
        return lags, _clip(mom * inv_sigma[:, None, :] * self._inv_sqrt_h, -clip, clip)

    def _mean_reversion(
        self, x: np.ndarray, close_z: np.ndarray, traded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean-reversion signals over ``zscore_window``, each (K, N): the clipped z-score
        of the last log price (0 where undefined or not ``traded`` throughout the window)
        and the uncentred lag-1 autocorrelation of the log returns ``x``,
        ``sum x_t x_{t-1} / sum x_t^2`` (0 when every return is 0)."""
        clip = float(self.cfg.clip)
        window = self.cfg.zscore_window
        with np.errstate(invalid="ignore", divide="ignore"):
            log_price = np.log(close_z)
            mean = log_price.sum(axis=1) / window
            dev = log_price - mean[:, None, :]
            sum_sq = (dev * dev).sum(axis=1)
            zscore = dev[:, -1] / np.sqrt(sum_sq / window)
        # a flat price has no z-score (its deviations are rounding: z had read +-1)
        defined = traded & np.isfinite(zscore) & varies(sum_sq, mean, window)
        zscore = _clip(np.where(defined, zscore, 0.0), -clip, clip)
        n_feat = x.shape[1]
        x_now, x_prev = x[:, n_feat - window :], x[:, n_feat - window - 1 : n_feat - 1]
        sum_sq = (x_now * x_now).sum(axis=1)
        autocorr = np.divide(
            (x_now * x_prev).sum(axis=1), sum_sq, out=np.zeros_like(sum_sq), where=sum_sq > 0.0
        )
        return zscore, _clip(autocorr, -1.0, 1.0)

    def _capacity(
        self, notional: np.ndarray, spread_t: np.ndarray, tradable_t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Capacity features, each (K, N): the average daily traded notional over
        ``adv_window``, its clipped log ratio to the tradable cross-section's median
        (``-clip`` with no volume), and the spread in bps / 100 clipped to [0, clip]."""
        clip = float(self.cfg.clip)
        adv = notional.sum(axis=1) / self.cfg.adv_window
        adv_ok = tradable_t & (adv > 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel_adv = np.log(adv / _masked_median(adv, adv_ok)[:, None])
        rel_adv = np.where(adv_ok, _clip(rel_adv, -clip, clip), np.where(adv > 0.0, 0.0, -clip))
        spread = spread_t / 100.0
        spread = _clip(np.where(np.isfinite(spread), spread, clip), 0.0, clip)
        return adv, rel_adv, spread

    def set_mean_correlation(self, feats: MarketFeatures, values: np.ndarray) -> None:
        """Write ``values`` (K,) into the ``mean_correlation`` slot of ``feats.template``
        (the env's ``dcc_garch`` estimator replaces the EWMA one this way)."""
        if not self.cfg.mean_correlation:
            raise ConfigError("features.mean_correlation is off: there is no slot to set")
        feats.template[:, -self._mean_corr_back] = values

    def _mean_correlation(
        self, xe: np.ndarray, inv_sigma: np.ndarray, have: np.ndarray
    ) -> np.ndarray:
        """Mean pairwise EWMA correlation of the names with an EWMA volatility, (K,).

        With ``z = x / sigma`` (log returns over the EWMA window, scaled by each name's
        EWMA volatility) and ``zbar_t`` their cross-sectional mean over the ``n`` names,
        the EWMA variance ``V`` of ``zbar`` is ``(1 + (n - 1) rho) / n``, so
        ``rho = (n V - 1) / (n - 1)``: O(ewma_window x n_assets), no N x N matrix. It is
        the mean off-diagonal entry of the EWMA correlation matrix exactly when every name
        traded through the window above the volatility floor; clipped to [-1, 1], 0 with
        fewer than 2 names. Sums run in a fixed order (a loop over names, then over
        bars), so a bar's value does not depend on its batch.
        """
        k, e, n = xe.shape
        z = xe * (inv_sigma * have)[:, None, :]
        zsum = np.zeros((k, e))
        for i in range(n):
            zsum += z[:, :, i]
        count = have.sum(axis=1)
        zbar = zsum / np.maximum(count, 1)[:, None]
        weights = self._ewma_w[0, :, 0]
        acc = np.zeros(k)
        for t in range(e):
            acc += weights[t] * zbar[:, t] * zbar[:, t]
        var = acc / weights.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = (count * var - 1.0) / (count - 1.0)
        return np.where(count >= 2, _clip(rho, -1.0, 1.0), 0.0)

    # ------------------------------------------------------------------ observation
    def observation(
        self,
        feats: MarketFeatures,
        weights: np.ndarray,
        drawdown: np.ndarray,
        cash: np.ndarray,
        rows: np.ndarray | None = None,
        exposures: np.ndarray | None = None,
        *,
        gross: np.ndarray | None = None,
        net: np.ndarray | None = None,
    ) -> np.ndarray:
        """The float32 observation: market features at t plus the portfolio state.

        Parameters
        ----------
        feats : MarketFeatures
            ``compute`` output (leading axis ``n_envs``), or with ``rows`` any table such
            as ``precompute(market)``.
        weights : ndarray, shape (n_envs, n_assets)
            Current book, signed fractions of equity.
        drawdown : ndarray, shape (n_envs,)
            Drawdown from the running equity peak, positive fraction.
        cash : ndarray, shape (n_envs,)
            Cash as a fraction of equity.
        rows : ndarray of int, shape (n_envs,), optional
            Row of ``feats`` for each portfolio (its bar index for a precomputed table);
            same result as ``observation(feats.take(rows), ...)`` without gathering the
            fields the observation does not use.
        exposures : ndarray, shape (n_envs, n_factors), optional
            The book's factor exposures ``B^T w`` (needed, and only read, with
            ``features.factor_exposures = k > 0``: its first ``k`` columns, zero-padded).
        gross, net : ndarray of float64, shape (n_envs,), optional
            The book's ``|w|.sum(axis=1)`` and ``w.sum(axis=1)`` when the caller holds
            them already (the env step); computed from ``weights`` otherwise. They must
            equal those sums bit for bit, or the observation differs from the served one.

        Returns
        -------
        ndarray of float32, shape (n_envs, obs_dim)
            Layout in ``layout``; step-time parts are clipped to their bounds.
        """
        clip = float(self.cfg.clip)
        if rows is None:
            out = feats.template.copy()
        else:
            out = feats.template.take(np.asarray(rows, dtype=np.int64), axis=0)
        k, n = out.shape[0], feats.n_assets
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (k, n):
            raise DataError(f"weights have shape {w.shape}, features {(k, n)}: align them")
        n_feats = self.n_asset_features
        book = {
            "drawdown": np.asarray(drawdown, dtype=np.float64),
            "cash": np.asarray(cash, dtype=np.float64),
            "gross": np.abs(w).sum(axis=1) if gross is None else gross,
            "net": w.sum(axis=1) if net is None else net,
        }
        for name, values in book.items():  # the kernel reads one value per book
            if values.shape != (k,):
                raise DataError(
                    f"{name} has shape {values.shape}, the weights {(k, n)}: give one "
                    f"{name} per book, shape ({k},)"
                )
        write_book(
            out,
            w,
            book["gross"],
            book["net"],
            book["drawdown"],
            book["cash"],
            clip,
            n_feats,
            n * n_feats + _N_MARKET_GLOBALS,
        )
        if self.n_exposures:
            if exposures is None:
                raise DataError(
                    f"features.factor_exposures = {self.n_exposures} but no exposures were "
                    "passed: give observation the book's B^T w, or set it to 0"
                )
            book_exposures = np.asarray(exposures, dtype=np.float64)[:, : self.n_exposures]
            first = out.shape[1] - self.n_exposures
            out[:, first : first + book_exposures.shape[1]] = _clip(book_exposures, -clip, clip)
        return out


def factor_loading_table(
    returns: np.ndarray,
    window: int,
    variance_threshold: float = 0.6,
    max_factors: int = 5,
) -> np.ndarray:
    """Point-in-time PCA factor loadings at every bar: the ``GateContext.factor_loadings``
    of the env's factor-exposure limit.

    Row ``t`` holds the loadings of :func:`allocgym.factors.pca_factors` fitted on the
    returns of rows ``max(1, t - window + 1) .. t`` (row 0 is no return), the number of
    factors chosen by its variance rule; columns beyond a bar's count are 0 (no exposure,
    so no limit there), as are the bars with fewer than 3 returns. One eigendecomposition
    of an (n_assets, n_assets) covariance per bar, computed once per market: about
    ``n_days x (window x n_assets^2 + n_assets^3)`` flops (about 1 s of CPU for the 20-name,
    8,313-bar S&P sample with a 252-bar window).

    Parameters
    ----------
    returns : ndarray, shape (n_days, n_assets)
        Simple returns, 0 where not tradable (``MarketData.returns``).
    window : int
        Trailing bars of each fit (>= 3).
    variance_threshold, max_factors : float, int
        The rule of :func:`allocgym.factors.select_n_factors`.

    Returns
    -------
    ndarray, shape (n_days, n_assets, max_factors)
        Read-only.
    """
    from allocgym.factors import pca_factors

    if window < 3:
        raise ConfigError(f"factor window = {window}: needs at least 3 bars")
    r = np.asarray(returns, dtype=np.float64)
    n_days, n_assets = r.shape
    k_max = min(int(max_factors), n_assets)
    out = np.zeros((n_days, n_assets, k_max))
    for t in range(3, n_days):
        model = pca_factors(r[max(1, t - window + 1) : t + 1], variance_threshold, k_max)
        out[t, :, : model.n_factors] = model.loadings
    out.flags.writeable = False
    return out


def dcc_mean_correlation(returns: np.ndarray, first_bar: int, fit_bars: int) -> np.ndarray:
    """Mean pairwise DCC-GARCH correlation at every bar from ``first_bar`` on, shape (n_days,).

    The model (``allocgym.dcc``) is fitted once on the at most ``fit_bars`` bars before
    ``first_bar`` (bar 0, whose return is undefined, left out), then filtered forward one
    bar at a time: the value at bar ``t`` is the mean off-diagonal entry of the correlation
    forecast for bar ``t + 1`` given the returns up to bar ``t``, what a decision at bar
    ``t`` knows. Bars before ``first_bar`` are 0 (no decision reads them). A missing
    (non-finite) return counts as 0. Reproducible to about 1e-10, not bit for bit: the
    fit's matrix products can round differently for the same numbers at another memory
    address, and the likelihood optimiser carries that into the parameters.

    Raises
    ------
    ConfigError
        Fewer than 250 bars precede ``first_bar``, or fewer than 2 assets.
    """
    from allocgym.dcc import DCCGarch, dcc_update

    r = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    n_days, n = r.shape
    start = max(1, first_bar - fit_bars)
    if first_bar - start < 250 or n < 2:
        raise ConfigError(
            f"features.correlation_model = 'dcc_garch' needs at least 250 bars before the "
            f"first decision bar {first_bar} and 2 assets (got {first_bar - start} bars, "
            f"{n} assets): use a later split or correlation_model = 'ewma'"
        )
    model = DCCGarch().fit(r[start:first_bar])
    params, state = model.params_, model.state_
    out = np.zeros(n_days)
    for t in range(first_bar, n_days):
        state = dcc_update(state, params, r[t])
        corr = state.correlation()
        out[t] = (corr.sum() - n) / (n * (n - 1))
    return out
