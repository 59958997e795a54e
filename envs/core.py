"""Batched functional core of the portfolio environment.

``EnvParams`` holds everything that does not change during a run: the market, the
precomputed per-bar arrays (features, regime, volatility, ADV, betas, strategy intents)
and the gate / execution / cost objects. ``EnvState`` holds the books of ``n_envs``
portfolios. ``reset`` and ``step`` advance all of them with one set of calls (numpy, and
the compiled kernels of ``allocgym.compiled`` for the fill, marking and scoring); there is
no Python loop over portfolios or assets.

One step, for every portfolio at its own decision bar ``t``:

1. action -> proposed weights (``ActionSpec.to_weights``), or budgets -> strategy intents
   netted by ``IntentAggregator`` (``budgets`` mode; contributions go to the gates);
2. ``RiskGateChain.apply`` with a ``GateContext`` built from data at ``t`` only (``p_t``,
   ADV_t, vol_t, spread_t, regime_t, betas_t) -> approved weights + reason codes; the
   kill switch is engaged when the drawdown at ``t`` reached ``EnvConfig.drawdown_kill``;
3. ``ExecutionPolicy.apply`` -> lot-rounded order quantities (shares) sized at ``p_t``,
   with the schedule and the vol-spike / spread-blowout triggers of
   ``execution.trigger_inputs`` on the windows ending at ``t`` (precomputed per bar);
4. fill at bar ``t + 1``'s close ``p_{t+1}``: ``cash -= q * p_{t+1} + cost`` where the cost
   is ``allocgym.costs.expected_cost`` of the traded weights (notional over the pre-trade
   equity ``V^-_{t+1} = cash + shares . p_{t+1}``) with ADV, volatility and spread of bar
   ``t + 1``;
5. reward ``log(V_{t+1} / V_t)`` minus the configured penalties (CVaR of the approved
   book, L1 gate intervention, turnover, drawdown);
6. the observation at ``t + 1`` (``FeatureBuilder.observation``); the book then drifts
   with prices until the next fill.

Episode sampling is counter-based: the start bar of episode ``k`` of a portfolio with key
``s`` is ``lo + mix(mix(s) + k) % n_starts`` (splitmix64), so a batch of ``B`` portfolios
with keys ``s_0..s_{B-1}`` draws exactly what ``B`` single environments with those seeds
draw, in any order of resets.

States are linear: ``step`` returns a new ``EnvState`` that shares the per-episode return
buffers with the old one (they are written in place), so step a state once, or
``copy()`` it first to branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from allocgym import measures
from allocgym.actions import ActionSpec
from allocgym.compiled import step as compiled_step
from allocgym.compiled.env import reason_summary
from allocgym.config import AllocgymConfig
from allocgym.costs import CostModel
from allocgym.data import MarketData, Split, walk_forward_splits
from allocgym.errors import ConfigError, DataError
from allocgym.execution import (
    TRADE_LIMITS,
    ExecutionParams,
    ExecutionPolicy,
    ExecutionResult,
    Triggers,
    hold_rule,
    still_working,
    trigger_inputs,
)
from allocgym.features import (
    FeatureBuilder,
    MarketFeatures,
    dcc_mean_correlation,
    factor_loading_table,
)
from allocgym.intents import STRATEGY_FAMILIES, IntentAggregator
from allocgym.regime import REGIME_LABELS, RegimeModel
from allocgym.risk import (
    GateContext,
    GateResult,
    ReasonCode,
    RiskGateChain,
    RiskLimits,
    bar_gate_context,
)

REASON_CODES: tuple[ReasonCode, ...] = tuple(sorted((c for c in ReasonCode if c), key=int))
"""Every single-bit ``ReasonCode`` in bit order: the columns of ``info["reason_counts"]``
(the same layout with every optional gate on or off)."""

_REASON_BITS = np.array([int(c).bit_length() - 1 for c in REASON_CODES], dtype=np.int64)

REASON_NAMES: tuple[str, ...] = tuple(str(c.name) for c in REASON_CODES)
"""Names of ``REASON_CODES`` (``info["reason_counts"][:, k]`` counts ``REASON_NAMES[k]``)."""

_MIN_GROWTH = 1e-12
"""Floor of V_{t+1} / V_t inside the log so a wiped-out book gives a finite reward."""

SplitArg = str | Split | tuple[int, int] | None


# ------------------------------------------------------------------------------- params


@dataclass(frozen=True, eq=False)
class EnvParams:
    """Everything fixed during a run; built once by :meth:`from_config`.

    Per-bar arrays have a leading axis ``n_days`` (bars of the whole market, so that
    windows may reach before the split's first bar: the past is known at decision time).

    Attributes
    ----------
    market : MarketData
    cfg : AllocgymConfig
    action_spec : ActionSpec
    feature_builder : FeatureBuilder
    features : MarketFeatures
        ``FeatureBuilder.precompute(market)``: observation parts, EWMA volatility, betas,
        ADV, intents and regime of every bar.
    prices : ndarray, shape (n_days, n_assets)
        Close prices forward-filled (0 before a symbol's first price): the marks.
    returns : ndarray, shape (n_days, n_assets)
        ``market.returns`` (CVaR scenarios).
    spread_bps : ndarray, shape (n_days, n_assets)
        Quoted spread (NaN replaced by 0 where the symbol is not listed).
    tradable : ndarray of bool, shape (n_days, n_assets)
    sector_ids : ndarray of int64, shape (n_assets,)
    limits : RiskLimits
    cost_model : CostModel
    gates : RiskGateChain
    execution : ExecutionPolicy
    aggregator : IntentAggregator
    split : Split
        Bars episodes run in; decisions at ``lo .. stop - 2``, fills up to ``stop - 1``.
    lo : int
        First decision bar: ``max(split.start, history - 1, cvar_window)``.
    n_starts : int
        Number of possible start bars (``lo .. lo + n_starts - 1``).
    obs_low, obs_high : ndarray of float32, shape (obs_dim,)
        ``FeatureBuilder.observation_bounds``: the observation Box.
    triggers : Triggers
        ``execution.trigger_inputs`` at every bar: ``scheduled``, ``vol_ratio`` and
        ``spread_ratio``, shape (n_days,).
    prior_weights : ndarray, shape (n_days, n_assets), or None
        ``tilt`` mode: the prior allocator's proposal at every decision bar of the split
        (``env.tilt_prior`` on the past-only ``AllocationContext`` of an all-cash book at
        that bar; zeros outside the split). None in the other modes.
    delisted : ndarray of bool, shape (n_days, n_assets), or None
        ``market.delisted``: bars after a symbol's last price. A position still held there
        is closed at the last price (its shares become cash at the mark, no cost) after
        the fill of the first such bar. None when no symbol is delisted.
    factor_loadings : ndarray, shape (n_days, n_assets, n_factors), or None
        With ``risk.max_factor_exposure`` set: the PCA loadings of the trailing
        ``baselines.factor_model`` window at every bar (``features.factor_loading_table``, fitted
        once here, never per step), the ``GateContext.factor_loadings`` of the factor
        gate. None when the limit is off.
    """

    market: MarketData
    cfg: AllocgymConfig
    action_spec: ActionSpec
    feature_builder: FeatureBuilder
    features: MarketFeatures
    prices: np.ndarray
    returns: np.ndarray
    spread_bps: np.ndarray
    tradable: np.ndarray
    sector_ids: np.ndarray
    limits: RiskLimits
    cost_model: CostModel
    gates: RiskGateChain
    execution: ExecutionPolicy
    aggregator: IntentAggregator
    split: Split
    lo: int
    n_starts: int
    obs_low: np.ndarray = field(repr=False)
    obs_high: np.ndarray = field(repr=False)
    triggers: Triggers = field(repr=False)
    prior_weights: np.ndarray | None = field(default=None, repr=False)
    delisted: np.ndarray | None = field(default=None, repr=False)
    factor_loadings: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_config(
        cls, market: MarketData, cfg: AllocgymConfig, split: SplitArg = None
    ) -> EnvParams:
        """Precompute every per-bar array and build the gate, execution and cost objects.

        Parameters
        ----------
        market : MarketData
        cfg : AllocgymConfig
        split : str, Split, (start, stop) or None
            ``"train"``, ``"validation"``, ``"test"`` (``walk_forward_splits`` of
            ``cfg.data.splits``), ``"all"`` (every bar), an explicit ``Split`` or bar range,
            or None for ``cfg.env.split``.

        Raises
        ------
        ConfigError
            The split is too short for one step after the feature and CVaR warm-up.
        """
        env = cfg.env
        sp = resolve_split(market, cfg, split)
        regime = RegimeModel(cfg.regime)
        fb = FeatureBuilder(cfg.features, regime)
        feats = fb.precompute(market)
        lo = max(sp.start, fb.history - 1, env.cvar_window)
        if cfg.features.mean_correlation and cfg.features.correlation_model == "dcc_garch":
            # fitted on the bars before this split's first decision bar, filtered forward
            fb.set_mean_correlation(
                feats, dcc_mean_correlation(market.returns, lo, cfg.features.dcc_fit_bars)
            )
        last = sp.stop - 1  # last bar a fill can happen at
        if last - lo < 1:
            raise ConfigError(
                f"split {sp.name!r} bars [{sp.start}, {sp.stop}) of {market.name!r} leave no "
                f"step after the warm-up (first decision bar {lo}: features need "
                f"{fb.history} bars, env.cvar_window = {env.cvar_window}): use a longer "
                "split or shorter windows"
            )
        n_starts = max(1, last - lo - env.episode_length + 1)
        limits = RiskLimits.from_config(cfg.risk)
        cost_model = CostModel.from_config(cfg.costs)
        exec_params = ExecutionParams.from_config(cfg.execution)
        prices = _marks(market.close)
        spread = np.where(np.isfinite(market.spread_bps), market.spread_bps, 0.0)
        low, high = fb.observation_bounds(market.n_assets)
        params = cls(
            market=market,
            cfg=cfg,
            action_spec=ActionSpec.from_config(cfg, market.n_assets, len(STRATEGY_FAMILIES)),
            feature_builder=fb,
            features=feats,
            prices=prices,
            returns=market.returns,
            spread_bps=_readonly(spread),
            tradable=market.tradable,
            sector_ids=market.sector_ids,
            limits=limits,
            cost_model=cost_model,
            gates=RiskGateChain(limits, cost_model),
            execution=ExecutionPolicy(exec_params, limits),
            aggregator=IntentAggregator.from_config(cfg.risk),
            split=sp,
            lo=lo,
            n_starts=n_starts,
            obs_low=low,
            obs_high=high,
            triggers=_trigger_path(market.returns, spread, market.tradable, exec_params),
            delisted=market.delisted if market.delisted.any() else None,
            factor_loadings=_factor_loadings(market, cfg),
        )
        if env.action_mode != "tilt":
            return params
        return replace(params, prior_weights=_readonly(prior_table(params)))

    @property
    def n_assets(self) -> int:
        return self.market.n_assets

    @property
    def n_strategies(self) -> int:
        return len(STRATEGY_FAMILIES)

    @property
    def obs_dim(self) -> int:
        return int(self.obs_low.shape[0])

    @property
    def episode_length(self) -> int:
        return int(self.cfg.env.episode_length)

    @property
    def decision_interval(self) -> int:
        return int(self.cfg.env.decision_interval)


_PRIOR_CHUNK = 512
"""Decision bars per ``allocate`` call when the tilt prior's table is built."""


def prior_table(params: EnvParams) -> np.ndarray:
    """The ``tilt`` prior's proposal at every decision bar of the split, (n_days, n_assets).

    Each row is ``env.tilt_prior``'s ``allocate`` on the ``AllocationContext`` of an
    all-cash book at that bar with ``baselines.lookback`` bars of history, exactly what
    the baselines' rebalancing rule asks it at a rebalance (the named priors do not read
    the current book). Bars outside ``lo .. split.stop - 2`` are zeros.
    """
    from allocgym.baselines.registry import build_baselines
    from allocgym.envs.context import allocation_context, window_groups

    cfg = params.cfg
    prior = build_baselines(cfg, [cfg.env.tilt_prior])[cfg.env.tilt_prior]
    table = np.zeros((params.market.n_days, params.n_assets))
    bars = np.arange(params.lo, params.split.stop - 1, dtype=np.int64)
    for c0 in range(0, bars.size, _PRIOR_CHUNK):
        chunk = bars[c0 : c0 + _PRIOR_CHUNK]
        state, _ = reset(params, seed_keys(np.zeros(chunk.size, np.int64)), start=chunk)
        for rows in window_groups(chunk, cfg.baselines.lookback):
            ctx = allocation_context(params, state, cfg.baselines.lookback, rows)
            table[chunk[rows]] = np.asarray(prior.allocate(ctx), dtype=np.float64)
    return table


def _trigger_path(
    returns: np.ndarray,
    spread_bps: np.ndarray,
    tradable: np.ndarray,
    params: ExecutionParams,
    chunk_bytes: int = 2**25,
) -> Triggers:
    """``execution.trigger_inputs`` at every bar (windows ending at the bar), shape (n_days,).

    Bars without a full window get ratio 1 (no override). Computed in chunks of bars so
    the (chunk, window, n_assets) copies stay near ``chunk_bytes``.
    """
    n_days, n_assets = returns.shape
    lv, ls = params.vol_long_window, params.spread_window
    first = max(lv, ls) - 1
    vol_ratio = np.ones(n_days)
    spread_ratio = np.ones(n_days)
    bars = np.arange(n_days)
    scheduled = (bars % params.schedule_every) == 0
    sw = np.lib.stride_tricks.sliding_window_view
    r_win = sw(returns, lv, axis=0).transpose(0, 2, 1)  # row k: bars k .. k + lv - 1
    s_win = sw(spread_bps, ls, axis=0).transpose(0, 2, 1)
    t_win = sw(tradable, lv, axis=0).transpose(0, 2, 1)
    step = max(1, chunk_bytes // (8 * lv * n_assets))
    for t0 in range(first, n_days, step):
        t1 = min(n_days, t0 + step)
        rows = slice(t0 - lv + 1, t1 - lv + 1)
        trig = trigger_inputs(
            r_win[rows], s_win[t0 - ls + 1 : t1 - ls + 1], params, tradable=t_win[rows]
        )
        vol_ratio[t0:t1] = trig.vol_ratio
        spread_ratio[t0:t1] = trig.spread_ratio
    return Triggers(
        scheduled=_readonly(scheduled),
        vol_ratio=_readonly(vol_ratio),
        spread_ratio=_readonly(spread_ratio),
    )


def _factor_loadings(market: MarketData, cfg: AllocgymConfig) -> np.ndarray | None:
    """The factor loadings at every bar for the factor gate and the exposure features
    (None while both are off)."""
    observed = cfg.features.factor_exposures
    if cfg.risk.max_factor_exposure is None and not observed:
        return None
    fm = cfg.baselines.factor_model
    window = cfg.baselines.lookback if fm.window is None else fm.window
    table = factor_loading_table(market.returns, window, fm.variance_threshold, fm.max_factors)
    if observed > table.shape[2]:
        raise ConfigError(
            f"features.factor_exposures = {observed} but the factor model keeps at most "
            f"{table.shape[2]} factors (baselines.factor_model.max_factors = "
            f"{fm.max_factors}, {market.n_assets} assets): lower it or raise max_factors"
        )
    return table


def book_exposures(params: EnvParams, t: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The books' factor exposures ``B_t^T w``, (n_envs, n_factors), for the observation
    (None when ``features.factor_exposures`` is 0)."""
    if not params.feature_builder.n_exposures:
        return None
    loadings = _at(params.factor_loadings, t)
    return (loadings * weights[:, :, None]).sum(axis=1)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _marks(close: np.ndarray) -> np.ndarray:
    """Forward-filled closes; 0 before a symbol's first price (no position can exist there)."""
    c = np.asarray(close, dtype=np.float64)
    ok = np.isfinite(c)
    idx = np.where(ok, np.arange(c.shape[0])[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    filled = c[idx, np.arange(c.shape[1])[None, :]]
    return _readonly(np.where(np.isfinite(filled), filled, 0.0))


def resolve_split(market: MarketData, cfg: AllocgymConfig, split: SplitArg = None) -> Split:
    """The bar range episodes are drawn from (see ``EnvParams.from_config``)."""
    if split is None:
        split = cfg.env.split
    if isinstance(split, Split):
        sp = split
    elif isinstance(split, tuple):
        sp = Split("custom", int(split[0]), int(split[1]))
    elif split == "all":
        sp = Split("all", 0, market.n_days)
    elif split in ("train", "validation", "test"):
        sp = walk_forward_splits(market, cfg.data.splits)[split]
    else:
        raise ConfigError(
            f"split = {split!r}: use 'train', 'validation', 'test', 'all', a Split or a "
            "(start, stop) bar range"
        )
    if sp.stop > market.n_days:
        raise DataError(f"split {sp.name!r} ends at bar {sp.stop} > n_days {market.n_days}")
    return sp


# ------------------------------------------------------------------------------- state


@dataclass(frozen=True, eq=False)
class EnvState:
    """Books of ``n_envs`` portfolios (all arrays batch-first).

    Attributes
    ----------
    t : ndarray of int64, shape (n_envs,)
        Decision bar (the last bar whose data the portfolio has seen).
    start : ndarray of int64, shape (n_envs,)
        First decision bar of the episode.
    steps : ndarray of int64, shape (n_envs,)
        Steps taken in the episode.
    key, episode : ndarray of uint64, shape (n_envs,)
        Seed of each portfolio and its episode counter (start bars derive from both).
    shares : ndarray, shape (n_envs, n_assets)
        Position in shares.
    cash : ndarray, shape (n_envs,)
        Cash in currency.
    equity : ndarray, shape (n_envs,)
        Mark-to-market equity at ``t`` (``cash + shares . p_t``).
    peak : ndarray, shape (n_envs,)
        Running maximum of equity in the episode.
    kill : ndarray of bool, shape (n_envs,)
        Drawdown reached the kill threshold: the next decision flattens and terminates.
    returns : ndarray, shape (n_envs, episode_length)
        Net simple returns of the episode's steps (columns ``< steps`` are filled); shared
        with successor states and written in place.
    realized : ndarray, shape (n_envs, cvar_window)
        Ring buffer of the last portfolio returns (``cvar_mode = realized``; zeros = the
        cash the portfolio held before the episode); shared and written in place.
    totals : ndarray, shape (n_envs, 7)
        Episode sums: cost (fraction of equity), turnover, gross, net, intervention L1,
        log growth, reward.
    reason_totals : ndarray of int64, shape (n_envs, len(REASON_CODES))
        Episode sums of ``info["reason_counts"]``.
    regime_totals : ndarray of int64, shape (n_envs, len(REGIME_LABELS))
        Steps spent in each regime.
    held : ndarray, shape (n_envs, n_assets)
        Target of the last decision (``env.decision_interval``: proposed again on the
        bars in between while ``working``).
    working : ndarray of bool, shape (n_envs,)
        The last target was cut short by a per-decision trade limit and is still being
        traded towards.
    """

    t: np.ndarray
    start: np.ndarray
    steps: np.ndarray
    key: np.ndarray
    episode: np.ndarray
    shares: np.ndarray
    cash: np.ndarray
    equity: np.ndarray
    peak: np.ndarray
    kill: np.ndarray
    returns: np.ndarray
    realized: np.ndarray
    totals: np.ndarray
    reason_totals: np.ndarray
    regime_totals: np.ndarray
    held: np.ndarray
    working: np.ndarray

    @property
    def n_envs(self) -> int:
        return int(self.t.shape[0])

    def copy(self) -> EnvState:
        """Deep copy (to branch a trajectory)."""
        return EnvState(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def take(self, rows: np.ndarray) -> EnvState:
        """The portfolios ``rows`` (bool mask or indices) as a new state with own buffers."""
        return EnvState(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def put(self, rows: np.ndarray, part: EnvState) -> EnvState:
        """This state with the portfolios ``rows`` replaced by ``part`` (a stepped ``take``).

        The shared episode buffers (``returns``, ``realized``) are written in place, as a
        step writes them; every other array is new.
        """
        new = {}
        for f in fields(self):
            arr = getattr(self, f.name)
            if f.name not in _SHARED:
                arr = arr.copy()
            arr[rows] = getattr(part, f.name)
            new[f.name] = arr
        return EnvState(**new)


_SHARED = ("returns", "realized")
"""``EnvState`` buffers shared by successive states and written in place by ``step``."""


_TOTALS = ("cost", "turnover", "gross", "net", "intervention", "log_growth", "reward")

_NET_RETURN = compiled_step.BOOK_ROWS.index("net_return")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, elementwise on uint64 (wrap-around arithmetic)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def start_bars(params: EnvParams, key: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """Start bar of episode ``episode`` for portfolios with seeds ``key``, shape (n_envs,)."""
    k = np.asarray(key, dtype=np.uint64)
    e = np.asarray(episode, dtype=np.uint64)
    u = _mix(_mix(k) + e)
    return params.lo + (u % np.uint64(params.n_starts)).astype(np.int64)


def seed_keys(seeds: np.ndarray | list[int]) -> np.ndarray:
    """Non-negative integer seeds as uint64 keys."""
    s = np.asarray(seeds, dtype=np.int64)
    if (s < 0).any():
        raise ConfigError(f"seeds must be >= 0, got {s[s < 0][:3].tolist()}")
    return s.astype(np.uint64)


# ------------------------------------------------------------------------------- reset


def reset(
    params: EnvParams,
    key: np.ndarray,
    episode: np.ndarray | None = None,
    start: np.ndarray | None = None,
) -> tuple[EnvState, np.ndarray]:
    """Fresh all-cash portfolios at their episode start bars.

    Parameters
    ----------
    params : EnvParams
    key : ndarray of uint64, shape (n_envs,)
        Per-portfolio seeds (``seed_keys``).
    episode : ndarray of uint64, shape (n_envs,), optional
        Episode counters (default 0).
    start : ndarray of int, shape (n_envs,), optional
        Explicit start bars (must lie in ``lo .. split.stop - 2``); default drawn from
        ``key`` and ``episode``.

    Returns
    -------
    state : EnvState
    obs : ndarray of float32, shape (n_envs, obs_dim)
    """
    key = np.asarray(key, dtype=np.uint64).reshape(-1)
    b = key.shape[0]
    episode = np.zeros(b, np.uint64) if episode is None else np.asarray(episode, np.uint64)
    if start is None:
        t0 = start_bars(params, key, episode)
    else:
        t0 = np.asarray(start, dtype=np.int64).reshape(-1)
        bad = (t0 < params.lo) | (t0 > params.split.stop - 2)
        if bad.any():
            raise ConfigError(
                f"start bars {t0[bad][:3].tolist()} outside {params.lo}..{params.split.stop - 2} "
                f"(split {params.split.name!r} after the warm-up): pick bars inside it"
            )
    n = params.n_assets
    eq0 = float(params.cfg.env.initial_equity)
    env = params.cfg.env
    state = EnvState(
        t=t0.copy(),
        start=t0.copy(),
        steps=np.zeros(b, np.int64),
        key=key.copy(),
        episode=episode.copy(),
        shares=np.zeros((b, n)),
        cash=np.full(b, eq0),
        equity=np.full(b, eq0),
        peak=np.full(b, eq0),
        kill=np.zeros(b, bool),
        returns=np.zeros((b, env.episode_length)),
        realized=np.zeros((b, env.cvar_window if env.cvar_mode == "realized" else 0)),
        totals=np.zeros((b, len(_TOTALS))),
        reason_totals=np.zeros((b, len(REASON_CODES)), np.int64),
        regime_totals=np.zeros((b, len(REGIME_LABELS)), np.int64),
        held=np.zeros((b, n)),
        working=np.zeros(b, bool),
    )
    flat = np.zeros((b, n))
    obs = params.feature_builder.observation(
        params.features.take(t0),
        flat,
        np.zeros(b),
        np.ones(b),
        exposures=book_exposures(params, t0, flat),
    )
    return state, obs


def autoreset(params: EnvParams, state: EnvState, done: np.ndarray) -> tuple[EnvState, np.ndarray]:
    """Start the next episode (counter + 1) for the portfolios where ``done``.

    Returns the new state and the reset observations of the ``done`` rows only, shape
    (n_done, obs_dim). Rows not done are untouched (same values, new arrays).
    """
    idx = np.flatnonzero(done)
    if idx.size == 0:
        return state, np.empty((0, params.obs_dim), np.float32)
    fresh, obs = reset(params, state.key[idx], state.episode[idx] + np.uint64(1))
    new = {}
    for f in fields(state):
        name = f.name
        if name in ("returns", "realized"):
            arr = getattr(state, name)  # shared buffers: clear the rows in place
            arr[idx] = 0.0
            new[name] = arr
        else:
            arr = getattr(state, name).copy()
            arr[idx] = getattr(fresh, name)
            new[name] = arr
    return EnvState(**new), obs


# ------------------------------------------------------------------------------- decide


@dataclass(frozen=True, eq=False)
class Decision:
    """What the gates and the execution policy decided at each portfolio's bar ``t``.

    Attributes
    ----------
    proposed : ndarray, shape (n_envs, n_assets)
    context : GateContext
    gate : GateResult
    execution : ExecutionResult
    budgets : ndarray, shape (n_envs, n_strategies + 1), or None
        Strategy budgets (``budgets`` mode).
    contributions : ndarray, shape (n_envs, n_strategies, n_assets), or None
        Per-family contributions to the proposal (``budgets`` mode).
    due : ndarray of bool, shape (n_envs,), or None
        Portfolios whose proposal is a new decision (None: all of them); the others
        proposed their held book or their unfinished target (:func:`hold_rule`).
    """

    proposed: np.ndarray
    context: GateContext
    gate: GateResult
    execution: ExecutionResult
    budgets: np.ndarray | None = None
    contributions: np.ndarray | None = None
    due: np.ndarray | None = None


def current_weights(params: EnvParams, state: EnvState) -> np.ndarray:
    """Book at each portfolio's bar ``t`` as signed fractions of equity, (n_envs, n_assets)."""
    p = _at(params.prices, state.t)
    return state.shares * p / state.equity[:, None]


def _at(table: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Rows ``t`` of a per-bar table (``take``: the values of ``table[t]``, faster)."""
    return table.take(t, axis=0)


def gate_context(
    params: EnvParams, state: EnvState, strategy_weights: np.ndarray | None = None
) -> GateContext:
    """``GateContext`` at each portfolio's bar ``t`` (data up to and including ``t``)."""
    t = state.t
    return bar_gate_context(
        state.shares,
        state.equity,
        _at(params.prices, t),
        _at(params.spread_bps, t),
        _at(params.tradable, t),
        params.features,
        params.sector_ids,
        rows=t,
        kill_switch=state.kill,
        strategy_weights=strategy_weights,
        factor_loadings=params.factor_loadings,
    )


def action_weights(params: EnvParams, t: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Proposed weights of ``weights``- or ``tilt``-mode actions at decision bars ``t``.

    Parameters
    ----------
    t : ndarray of int, shape (n_envs,)
    action : array_like, shape (n_envs, action_dim)

    Returns
    -------
    ndarray, shape (n_envs, n_assets)
    """
    spec = params.action_spec
    if spec.mode == "weights":
        return spec.to_weights(action)
    if spec.mode == "tilt":
        assert params.prior_weights is not None  # built by EnvParams.from_config in tilt mode
        return spec.to_tilted(action, _at(params.prior_weights, np.asarray(t)))
    raise ConfigError(
        "action_weights: budgets-mode actions are netted from strategy intents: use propose"
    )


def propose(
    params: EnvParams, state: EnvState, action: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Map a batch of actions to proposed weights.

    Returns
    -------
    proposed : ndarray, shape (n_envs, n_assets)
    budgets : ndarray, shape (n_envs, n_strategies + 1), or None
    contributions : ndarray, shape (n_envs, n_strategies, n_assets), or None
    """
    spec = params.action_spec
    if spec.mode != "budgets":
        return action_weights(params, state.t, action), None, None
    budgets = spec.to_budgets(action)
    ok = np.isfinite(budgets).all(axis=1)
    if ok.all():
        w, contrib = params.aggregator.aggregate(budgets, _at(params.features.intents, state.t))
        return w, budgets, contrib
    # A non-finite action becomes a NaN proposal the gates code INVALID_INPUT.
    cash_only = np.zeros_like(budgets)
    cash_only[:, -1] = 1.0
    safe = np.where(ok[:, None], budgets, cash_only)
    w, contrib = params.aggregator.aggregate(safe, _at(params.features.intents, state.t))
    w = np.where(ok[:, None], w, np.nan)
    return w, budgets, contrib


def decide(
    params: EnvParams,
    state: EnvState,
    proposed: np.ndarray,
    contributions: np.ndarray | None = None,
    budgets: np.ndarray | None = None,
    due: np.ndarray | None = None,
) -> Decision:
    """Run the gates and the execution policy on a proposal at each portfolio's bar ``t``."""
    ctx = gate_context(params, state, contributions)
    gate = params.gates.apply(proposed, ctx)
    trig = params.triggers
    t = state.t
    at_t = Triggers(
        scheduled=_at(trig.scheduled, t),
        vol_ratio=_at(trig.vol_ratio, t),
        spread_ratio=_at(trig.spread_ratio, t),
    )
    ex = params.execution.apply(gate, ctx, at_t)
    return Decision(proposed, ctx, gate, ex, budgets, contributions, due)


# ------------------------------------------------------------------------------- step


@dataclass(frozen=True, eq=False)
class StepResult:
    """Output of :func:`step` (no auto-reset: see :func:`autoreset`).

    Attributes
    ----------
    state : EnvState
        State after the step (decision bar ``t + 1``).
    obs : ndarray of float32, shape (n_envs, obs_dim)
        Observation at ``t + 1``.
    reward : ndarray, shape (n_envs,)
    terminated, truncated : ndarray of bool, shape (n_envs,)
    info : dict of str to ndarray
        Batched per-step info (see ``INFO_KEYS``).
    decision : Decision
    """

    state: EnvState
    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    info: dict[str, np.ndarray]
    decision: Decision


INFO_KEYS: dict[str, str] = {
    "t": "(n_envs,) int64: decision bar of the step",
    "proposed": "(n_envs, n_assets): proposed weights",
    "approved": "(n_envs, n_assets): weights approved by the gates",
    "target": "(n_envs, n_assets): book after the lot-rounded orders (execution)",
    "weights": "(n_envs, n_assets): book after the fill at t + 1",
    "delta_qty": "(n_envs, n_assets): shares traded at t + 1",
    "cancelled": "(n_envs, n_assets) bool: orders of the decision not filled at t + 1 (the "
    "symbol halted there or delisted, no volume over the ADV window, or a book worth nothing)",
    "symbol_reasons": "(n_envs, n_assets) int64: ReasonCode bits (gates | execution)",
    "portfolio_reasons": "(n_envs,) int64: portfolio-level ReasonCode bits (gates | execution)",
    "reason_counts": "(n_envs, len(REASON_CODES)) int64: symbols carrying each code",
    "cost": "(n_envs,): fill cost as a fraction of pre-trade equity",
    "turnover": "(n_envs,): sum |traded weight| at the fill",
    "equity": "(n_envs,): equity after the fill, currency",
    "drawdown": "(n_envs,): drawdown after the fill, positive fraction",
    "gross": "(n_envs,): sum |w| after the fill",
    "net": "(n_envs,): sum w after the fill",
    "regime": "(n_envs,) int8: regime code at t (REGIME_LABELS)",
    "regime_confidence": "(n_envs,)",
    "kill_switch": "(n_envs,) bool: kill switch engaged for this decision",
    "log_growth": "(n_envs,): log(V_{t+1} / V_t), net of costs",
    "cvar": "(n_envs,): CVaR (positive loss) of the configured mode",
    "intervention": "(n_envs,): L1 distance proposed -> approved",
    "cvar_penalty": "(n_envs,): cvar_weight * cvar",
    "intervention_penalty": "(n_envs,): intervention_weight * intervention",
    "turnover_penalty": "(n_envs,): turnover_weight * turnover",
    "drawdown_penalty": "(n_envs,): drawdown_weight * drawdown",
    "reward": "(n_envs,): log_growth minus the four penalties",
    "budgets": "(n_envs, n_strategies + 1): strategy budgets (budgets mode only)",
    "strategy_contributions": "(n_envs, n_strategies, n_assets): per-family proposal (budgets mode only)",
    "strategy_scale": "(n_envs, n_strategies): STRATEGY_CAP scale per family (budgets mode only)",
}
"""Keys of ``StepResult.info`` with their shapes."""


def step(params: EnvParams, state: EnvState, action: np.ndarray) -> StepResult:
    """Advance every portfolio by one bar with a batch of agent actions.

    Parameters
    ----------
    params : EnvParams
    state : EnvState
        No portfolio may be past the end of its episode (``autoreset`` first).
    action : array_like, shape (n_envs, action_dim)
        Read only for the portfolios due for a decision (``steps`` a multiple of
        ``env.decision_interval``); the others follow :func:`hold_rule`.

    Returns
    -------
    StepResult
    """
    fresh, budgets, contrib = propose(params, state, action)
    every = params.decision_interval
    if every == 1:
        return step_proposed(params, state, fresh, contrib, budgets)
    due = state.steps % every == 0
    proposed = hold_rule(due, fresh, state.held, state.working, current_weights(params, state))
    return step_proposed(params, state, proposed, contrib, budgets, due=due)


def due_for_decision(params: EnvParams, state: EnvState) -> np.ndarray:
    """Portfolios whose next step reads the agent's action, shape (n_envs,) bool."""
    return state.steps % params.decision_interval == 0


def finish_interval(params: EnvParams, first: StepResult) -> StepResult:
    """Step the held bars after a decision until each portfolio is due again or done.

    With ``env.decision_interval = k`` an agent acts every k bars; the training shells
    give it one transition per decision: the observation at the next decision bar and
    the sum of the per-bar rewards in between (the bars follow :func:`hold_rule`).

    Parameters
    ----------
    first : StepResult
        The step at the decision bar (:func:`step` with the agent's actions).

    Returns
    -------
    StepResult
        Final state, observation and episode flags; ``reward`` and ``info["reward"]``
        summed over the bars; ``info["bars"]`` (n_envs,) int64 bars stepped; every other
        info key and ``decision`` are those of the decision bar.
    """
    if params.decision_interval == 1:
        return first
    state = first.state
    obs = first.obs.copy()
    reward = first.reward.copy()
    terminated, truncated = first.terminated.copy(), first.truncated.copy()
    bars = np.ones(state.n_envs, np.int64)
    idle = np.zeros((state.n_envs, params.action_spec.action_dim))  # read by no due portfolio
    while True:
        pending = ~(terminated | truncated) & ~due_for_decision(params, state)
        if not pending.any():
            break
        if pending.all():
            res = step(params, state, idle)
            state = res.state
        else:
            rows = np.flatnonzero(pending)
            res = step(params, state.take(rows), idle[rows])
            state = state.put(rows, res.state)
        obs[pending] = res.obs
        reward[pending] += res.reward
        terminated[pending] = res.terminated
        truncated[pending] = res.truncated
        bars[pending] += 1
    info = dict(first.info)
    info["reward"] = reward
    info["bars"] = bars
    return StepResult(state, obs, reward, terminated, truncated, info, first.decision)


def step_proposed(
    params: EnvParams,
    state: EnvState,
    proposed: np.ndarray,
    contributions: np.ndarray | None = None,
    budgets: np.ndarray | None = None,
    due: np.ndarray | None = None,
) -> StepResult:
    """Advance every portfolio by one bar with proposed weights (bypassing ``ActionSpec``).

    Baselines and evaluation use this entry point; ``step`` maps actions and calls it.

    Parameters
    ----------
    proposed : ndarray, shape (n_envs, n_assets)
        Proposed weights, signed fractions of equity.
    contributions : ndarray, shape (n_envs, n_strategies, n_assets), optional
        Per-family parts of the proposal (STRATEGY_CAP gate).
    budgets : ndarray, shape (n_envs, n_strategies + 1), optional
        Reported in info only.
    due : ndarray of bool, shape (n_envs,), optional
        Portfolios whose proposal is a new decision (default all): the others keep their
        held target in the state (:func:`hold_rule`).
    """
    proposed = np.asarray(proposed, dtype=np.float64)
    dec = decide(params, state, proposed, contributions, budgets, due)
    return _advance(params, state, dec)


def _penalised_reward(
    params: EnvParams,
    state: EnvState,
    t1: np.ndarray,
    book: np.ndarray,
    cvar: np.ndarray,
    log_growth: np.ndarray,
    counts: np.ndarray,
    regime: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """The reward: log growth less the CVaR, intervention, turnover and drawdown penalties;
    with it the episode's sums and end (:func:`allocgym.compiled.step.score`).

    ``book`` is :func:`~allocgym.compiled.step.fill_and_mark`'s, ``cvar`` its ex-ante
    CVaR row; the step's net return goes into the episode's return buffer (and the
    realized-CVaR window) in place. Returns the ``SCORE_ROWS`` array (the four penalties
    and ``reward``) and ``cvar``; the ``totals``, ``reason_totals`` and ``regime_totals``
    after the step; ``steps + 1``; the ``END_ROWS`` flags.
    """
    env = params.cfg.env
    if env.cvar_mode == "realized":
        rows, net_ret = np.arange(state.n_envs), book[_NET_RETURN]
        state.realized[rows, state.steps % env.cvar_window] = net_ret
        cvar = np.asarray(measures.cvar(state.realized, env.cvar_alpha), dtype=np.float64)
        cvar = cvar.reshape(rows.shape)
    penalty_weights = (
        env.cvar_weight, env.intervention_weight, env.turnover_weight, env.drawdown_weight
    )  # fmt: skip
    scored, totals, steps1, ends = compiled_step.score(
        book, log_growth, cvar, state.returns, state.kill, state.steps, t1,
        (state.totals, state.reason_totals, state.regime_totals), counts, regime,
        penalty_weights, env.episode_length, params.split.stop - 1, env.drawdown_kill,
    )  # fmt: skip
    return scored, cvar, totals, steps1, ends


def _step_info(
    params: EnvParams, state: EnvState, dec: Decision, marked: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``StepResult.info`` (``INFO_KEYS``) from the decision and the ``marked`` step: the
    filled and marked book, the ``regime`` at ``t``, the reason counts and the reward
    terms, under their info keys."""
    info: dict[str, np.ndarray] = {
        "t": state.t,
        "proposed": dec.proposed,
        "approved": dec.gate.approved,
        "target": dec.execution.target_weights,
        "weights": marked["weights"],
        "delta_qty": marked["delta_qty"],
        "cancelled": marked["cancelled"],
        "symbol_reasons": dec.execution.reasons,
        "portfolio_reasons": dec.execution.portfolio_reasons,
        "reason_counts": marked["reason_counts"],
        "cost": marked["cost"],
        "turnover": marked["turnover"],
        "equity": marked["equity"],
        "drawdown": marked["drawdown"],
        "gross": marked["gross"],
        "net": marked["net"],
        "regime": marked["regime"],
        "regime_confidence": _at(params.features.regime_confidence, state.t),
        "kill_switch": state.kill,
        "log_growth": marked["log_growth"],
        "cvar": marked["cvar"],
        "intervention": marked["intervention"],
        "cvar_penalty": marked["cvar_penalty"],
        "intervention_penalty": marked["intervention_penalty"],
        "turnover_penalty": marked["turnover_penalty"],
        "drawdown_penalty": marked["drawdown_penalty"],
        "reward": marked["reward"],
    }
    if dec.budgets is not None:
        info["budgets"] = dec.budgets
        info["strategy_contributions"] = dec.contributions
        scale = dec.gate.strategy_scale
        info["strategy_scale"] = (
            np.ones((state.n_envs, params.n_strategies)) if scale is None else scale
        )
    return info


def _advance(params: EnvParams, state: EnvState, dec: Decision) -> StepResult:
    """Fill the decision at ``t + 1``, mark the book, score the step and end episodes.

    The fill, the mark and the reward terms run as compiled kernels
    (``allocgym.compiled.step``); only the log of the growth stays with numpy (its SIMD
    log rounds differently from the C library's).
    """
    env = params.cfg.env
    feats = params.features
    model = params.cost_model
    t, t1 = state.t, state.t + 1
    gate, ex = dec.gate, dec.execution
    delta_qty, shares, weights, book = compiled_step.fill_and_mark(
        params.prices, t1, state.shares, state.cash, ex.delta_qty, params.tradable,
        feats.adv_notional, feats.volatility, params.spread_bps,
        (model.spread_mult, model.commission_bps, model.impact_k), params.delisted,
        state.equity, state.peak, gate.approved, dec.proposed, _MIN_GROWTH, params.returns,
        (env.cvar_window, env.cvar_alpha) if env.cvar_mode == "ex_ante" else None,
    )  # fmt: skip
    (cost, cash, equity, peak, growth, _, drawdown, cash_frac, turnover, intervention,
     gross, net, cvar) = book  # fmt: skip
    log_growth = np.log(growth)
    # the reason counts of info and whether a trade limit cut the decision short, one pass
    counts, cut = reason_summary(
        np.asarray(ex.reasons, dtype=np.int64),
        np.asarray(gate.portfolio_reasons, dtype=np.int64),
        _REASON_BITS,
        TRADE_LIMITS,
    )
    regime = _at(feats.regime, t)
    scored, cvar, (totals, reason_totals, regime_totals), steps1, ends = _penalised_reward(
        params, state, t1, book, cvar, log_growth, counts, regime
    )
    cvar_penalty, intervention_penalty, turnover_penalty, drawdown_penalty, reward = scored
    terminated, truncated, kill_next = ends

    new_state = EnvState(
        t=t1,
        start=state.start,
        steps=steps1,
        key=state.key,
        episode=state.episode,
        shares=shares,
        cash=cash,
        equity=equity,
        peak=peak,
        kill=kill_next,
        returns=state.returns,
        realized=state.realized,
        totals=totals,
        reason_totals=reason_totals,
        regime_totals=regime_totals,
        held=dec.proposed
        if dec.due is None
        else np.where(dec.due[:, None], dec.proposed, state.held),
        working=still_working(dec.due, state.working, cut),
    )
    # bar t + 1's rows of the precomputed table; the book's gross and net are reused
    obs = params.feature_builder.observation(
        feats,
        weights,
        drawdown,
        cash_frac,
        t1,
        gross=gross,
        net=net,
        exposures=book_exposures(params, t1, weights),
    )
    marked = {
        "weights": weights,
        "delta_qty": delta_qty,
        "cancelled": (ex.delta_qty != 0.0) & (delta_qty == 0.0),
        "cost": cost,
        "equity": equity,
        "drawdown": drawdown,
        "gross": gross,
        "net": net,
        "regime": regime,
        "turnover": turnover,
        "intervention": intervention,
        "log_growth": log_growth,
        "reason_counts": counts,
        "cvar": cvar,
        "cvar_penalty": cvar_penalty,
        "intervention_penalty": intervention_penalty,
        "turnover_penalty": turnover_penalty,
        "drawdown_penalty": drawdown_penalty,
        "reward": reward,
    }
    info = _step_info(params, state, dec, marked)
    return StepResult(new_state, obs, reward, terminated, truncated, info, dec)


# ------------------------------------------------------------------------------- metrics


def episode_metrics(params: EnvParams, state: EnvState, idx: np.ndarray) -> list[dict[str, Any]]:
    """Summary of the episodes of portfolios ``idx`` (call before ``autoreset``).

    Returns one dict per index with: ``n_steps``, ``start`` / ``end`` (bars), ``total_return``,
    ``sharpe``, ``cvar`` (of the step returns at ``cvar_alpha``), ``max_drawdown``
    (``allocgym.measures`` on the net step returns), ``turnover`` (mean per step),
    ``costs`` (sum of per-step cost fractions), ``mean_gross``, ``mean_net``,
    ``mean_intervention``, ``reward`` (sum), ``interventions`` (reason name -> symbol count,
    non-zero codes only) and ``regime_mix`` (label -> fraction of steps).
    """
    idx = np.asarray(idx, dtype=np.int64)
    out: list[dict[str, Any]] = [{} for _ in range(idx.size)]
    if idx.size == 0:
        return out
    alpha = params.cfg.env.cvar_alpha
    lengths = state.steps[idx]
    stats: dict[str, np.ndarray] = {
        k: np.full(idx.size, np.nan) for k in ("sharpe", "cvar", "max_drawdown", "total_return")
    }
    for n in np.unique(lengths):  # one group per distinct episode length (usually one)
        sel = np.flatnonzero(lengths == n)
        if n == 0:
            continue
        r = state.returns[idx[sel], :n]
        with np.errstate(divide="ignore", invalid="ignore"):
            stats["sharpe"][sel] = measures.sharpe_ratio(r)
        stats["cvar"][sel] = measures.cvar(r, alpha)
        stats["max_drawdown"][sel] = measures.max_drawdown(r)
    eq0 = float(params.cfg.env.initial_equity)
    stats["total_return"] = state.equity[idx] / eq0 - 1.0
    tot = state.totals[idx]
    steps = np.maximum(lengths, 1)
    for j, i in enumerate(idx):
        m: dict[str, Any] = {
            "n_steps": int(lengths[j]),
            "start": int(state.start[i]),
            "end": int(state.t[i]),
            "total_return": float(stats["total_return"][j]),
            "sharpe": float(stats["sharpe"][j]),
            "cvar": float(stats["cvar"][j]),
            "max_drawdown": float(stats["max_drawdown"][j]),
            "turnover": float(tot[j, 1] / steps[j]),
            "costs": float(tot[j, 0]),
            "mean_gross": float(tot[j, 2] / steps[j]),
            "mean_net": float(tot[j, 3] / steps[j]),
            "mean_intervention": float(tot[j, 4] / steps[j]),
            "reward": float(tot[j, 6]),
            "interventions": {
                REASON_NAMES[k]: int(c) for k, c in enumerate(state.reason_totals[i]) if c
            },
            "regime_mix": {
                REGIME_LABELS[k]: float(c / steps[j]) for k, c in enumerate(state.regime_totals[i])
            },
        }
        out[j] = m
    return out


def audit_record(params: EnvParams, res: StepResult, step_index: int) -> dict[str, Any]:
    """Audit record of one batched step (``allocgym.observability.decision_record``).

    The record holds, for every portfolio, the decision bar and date, the regime code,
    equity, proposal, approved weights and reasons (from the gate result) and, as the
    output, the orders, fill costs and rewards. One record per step, whatever ``n_envs``.
    """
    from allocgym.config import config_hash
    from allocgym.observability import decision_record

    info = res.info
    t = info["t"]
    labels = np.unique(info["regime"])
    regime = REGIME_LABELS[int(labels[0])] if labels.size == 1 else "mixed"
    dates = np.datetime_as_string(params.market.dates[t], unit="D")
    return decision_record(
        request_id=f"env-step-{step_index}",
        timestamp=str(dates[0]),
        config_hash=config_hash(params.cfg),
        inputs={
            "t": t,
            "dates": dates.tolist(),
            "equity": res.decision.context.equity,
            "current_weights": res.decision.context.current_weights,
            "proposed": info["proposed"],
            "regime": info["regime"],
        },
        output={
            "delta_qty": info["delta_qty"],
            "cost": info["cost"],
            "reward": info["reward"],
            "terminated": res.terminated,
            "truncated": res.truncated,
        },
        gate=res.decision.gate,
        regime=regime,
        regime_score=float(np.mean(info["regime_confidence"])),
        symbols=params.market.symbols,
    )


def check_layout(params: EnvParams) -> dict[str, Any]:
    """Observation and action layout as plain data (for manifests and the agents)."""
    layout = params.feature_builder.layout(params.n_assets)
    return {
        "observation": layout,
        "action": params.action_spec.layout(),
        "symbols": list(params.market.symbols),
        "reason_names": list(REASON_NAMES),
        "regime_labels": list(REGIME_LABELS),
        "strategy_families": list(STRATEGY_FAMILIES),
    }
