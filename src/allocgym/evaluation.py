"""Out-of-sample evaluation: every allocator walks the same split through the same env.

One function, :func:`run_allocators` (and its single-allocator form :func:`run_allocator`),
backtests agents and baselines through the environment's functional core
(``allocgym.envs.core``): the same ``RiskGateChain``, ``ExecutionPolicy``, fills at the next
bar's close and ``allocgym.costs`` cost model as training. ``allocgym evaluate``,
``allocgym baselines``, ``allocgym promote`` and the capacity stress scenario all call it.

The walk
--------
Deterministic, no random episodes: one portfolio per allocator starts all in cash at the
split's first tradable decision bar (``EnvParams.lo``: the split start, or later when the
feature / CVaR warm-up needs it) and steps bar by bar to the split's last bar. All
portfolios of one call are stepped together as one batch (``n_envs`` = number of
allocators), so the gates, execution and accounting run once per bar for all of them.

Two training-time episode ends do not apply to a walk (:func:`evaluation_params`): the
episode length is the split's, and the drawdown kill is off (``env.drawdown_kill = 1.0``),
so a deep drawdown is measured, not cut short. A portfolio whose equity reaches 0 is
frozen after that fill (no trades, zero returns, ``Backtest.wiped_out_at``) and leaves the
batch; the others keep walking.

Every allocator, agent or baseline, goes through one path: at each decision bar it sees
an ``AllocationContext`` built from the env's arrays at bar ``t``
(``allocgym.envs.context.allocation_context``: trailing returns, current book, regime,
confidence and barbell state, alpha scores, betas, linear cost rates, benchmark returns,
and the env's observation) and answers ``allocate(ctx)``; ``allocgym.envs.context.Rebalancer``
applies the rebalancing rule, the one the training-time validation uses too. An
allocator re-optimises at the first bar and every ``rebalance_every`` bars; in between it
proposes its *current, drifted* book (buy and hold), so it trades only when the gates
force it (e.g. a drifted position above its cap is clipped, coded
``SYMBOL_CAP``/``FORCED_DERISK``).

- **Agents** (:class:`~allocgym.allocator.PolicyAllocator`, e.g.
  :class:`~allocgym.agents.SB3PolicyAllocator` or a frozen policy) act on the context's
  observation every ``env.decision_interval`` bars; the action goes through the env's
  ``ActionSpec`` exactly as in training (``allocgym.allocator.action_proposal``). A bare
  policy (any object with ``name`` and ``act(obs) -> actions``) is wrapped in one.
- **Baselines** (any other :class:`~allocgym.allocator.Allocator`) re-optimise every
  ``cfg.baselines.rebalance_every`` bars. A baseline whose optimiser fails
  (``OptimizationError``) keeps its book for that rebalance; the failures are counted in
  ``Backtest.allocator_errors``.

Accounting identity (checked by the tests): with ``w_t`` the held book at bar ``t`` and
``r_{t+1}`` the price return of each symbol, ``1 + R = (1 + sum_i w_t,i r_t+1,i) (1 - c)``
where ``c`` is the fill cost as a fraction of pre-trade equity. ``Backtest.asset_pnl`` holds
``w_t,i r_t+1,i`` and ``Backtest.cost_pnl`` the rest, so their sum is the net return
exactly. In ``budgets`` action mode each asset's P&L is split over the strategy families in
proportion to their (STRATEGY_CAP-scaled) contributions at the decision that last traded
the asset (``Backtest.strategy_pnl``); in ``weights`` mode an allocator is one strategy.

Metrics come from :mod:`allocgym.measures`, the statistics from :mod:`allocgym.stats`:
the PSR and the Deflated Sharpe Ratio (Bailey & López de Prado, 2012/2014), whose trials
are read from the study's trials ledger (:mod:`allocgym.ledger`) when there is one, else
the agent seeds evaluated together (a weak stand-in), never the baselines
(:func:`dsr_trial_set`); and paired stationary-bootstrap Sharpe tests of every allocator
against 1/N, HRP and the best baseline (:func:`paired_tests`). :func:`regime_diagnostics`
sets the ex-ante risk of the proposed book beside the held one, per regime.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from allocgym import measures
from allocgym.actions import ActionSpec
from allocgym.allocator import Allocator, PolicyAllocator, primary_source_of
from allocgym.baselines.registry import (
    ALL_BASELINES,
    BASELINE_ALIASES,
    baseline_names,
    build_baselines,
)
from allocgym.config import (
    AllocgymConfig,
    EnvConfig,
    EvaluationConfig,
    FactorModelConfig,
    RiskConfig,
    check_out_of_sample,
    in_sample_reason,
)
from allocgym.data import MarketData, bars_per_year, load_market
from allocgym.envs.context import Rebalancer, allocation_context, window_bars
from allocgym.errors import ConfigError, DataError, DataWarning
from allocgym.factors import FactorReturns, factor_attribution, factor_models
from allocgym.ledger import (
    TrialsLedger,
    check_unseen_bars,
    find_ledger,
    market_fingerprint,
    read_run_data,
)
from allocgym.ledger import selection_key as run_selection_key
from allocgym.observability import strategy_shares
from allocgym.regime import REGIME_LABELS
from allocgym.risk import GATE_CODES, check_invariants
from allocgym.stats import (
    expected_max_sharpe,
    paired_sharpe_differences,
    probabilistic_sharpe_ratio,
    sharpe_moments,
    trial_sharpe_variance,
)
from allocgym.var_backtest import backtest_var

if TYPE_CHECKING:
    from allocgym.envs.core import EnvParams, EnvState, StepResult

__all__ = [
    "ALL_BASELINES",
    "BASELINE_ALIASES",
    "PAIRED_REFERENCES",
    "Backtest",
    "BoundPolicy",
    "DSRTrials",
    "EvaluationResult",
    "Policy",
    "allocation_context",
    "backtest_metrics",
    "baseline_names",
    "build_baselines",
    "dashboard_data",
    "dsr_summary",
    "dsr_trial_set",
    "evaluate",
    "evaluate_run",
    "evaluation_params",
    "find_agent_runs",
    "load_policies",
    "paired_tests",
    "regime_diagnostics",
    "risk_budget_utilisation",
    "run_allocator",
    "run_allocators",
    "study_ledger",
]

WALK_DRAWDOWN_KILL = 1.0
"""``env.drawdown_kill`` of evaluation walks: the training-time kill switch is off."""

GATE_REASON_NAMES: tuple[str, ...] = tuple(str(c.name) for c in GATE_CODES)
"""Reason codes emitted by the risk gates (interventions); execution's NO_TRADE_BAND is
reported beside them but is not a gate intervention."""

# ----------------------------------------------------------------------------- policies


@runtime_checkable
class Policy(Protocol):
    """A bare policy acting on the env's observation; evaluation walks it as a
    :class:`BoundPolicy` (the env's action map around its actions)."""

    name: str

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions in the ``ActionSpec`` Box, shape (n_envs, action_dim), from observations
        (n_envs, obs_dim)."""
        ...


class BoundPolicy(PolicyAllocator):
    """A bare :class:`Policy` as an agent allocator, with the env's action map.

    Parameters
    ----------
    policy : Policy
        Answers ``act(obs)``; its ``name``, ``group``, ``seed`` and ``reset`` (recurrent
        policies) are used as they are.
    action_spec : ActionSpec
        The env's action map (``EnvParams.action_spec``).
    """

    def __init__(self, policy: Policy, action_spec: ActionSpec) -> None:
        self.policy = policy
        self.name = str(getattr(policy, "name", type(policy).__name__))
        self.action_spec = action_spec

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(self.policy.act(obs))

    def reset(self) -> None:
        """Start a new episode: a recurrent policy forgets its state."""
        reset = getattr(self.policy, "reset", None)
        if callable(reset):
            reset()


# ----------------------------------------------------------------------------- params


def evaluation_params(market: MarketData, cfg: AllocgymConfig, split: Any = None) -> EnvParams:
    """``EnvParams`` for a full-split walk (``split`` default ``cfg.evaluation.split``).

    Two env settings differ from training, both so that one walk covers every bar of the
    split: the episode length is the split's length, and the training-time drawdown kill
    is off (``drawdown_kill = 1.0``: the kill switch engages only once equity is gone).
    In training the kill ends an episode; in a walk it would flatten the book and, since
    the drawdown is measured against the old peak, keep it flat for the rest of the split.
    Features, gates, execution, costs and rewards are the training env's.
    """
    from allocgym.envs.core import EnvParams, resolve_split

    sp = resolve_split(market, cfg, cfg.evaluation.split if split is None else split)
    env = cfg.env.model_copy(
        update={"episode_length": max(sp.n_bars, 1), "drawdown_kill": WALK_DRAWDOWN_KILL}
    )
    return EnvParams.from_config(market, cfg.model_copy(update={"env": env}), sp)


# ----------------------------------------------------------------------------- backtest


@dataclass(frozen=True, eq=False)
class Backtest:
    """Per-bar record of one allocator's walk over a split.

    Step ``k`` is the decision at bar ``bars[k]`` and its fill and return over
    ``(bars[k], bars[k] + 1]``; ``dates[k]`` is the date of bar ``bars[k] + 1``.

    Attributes
    ----------
    name : str
        Row label (``ppo_seed0``, ``hrp`` ...).
    kind : {"agent", "baseline"}
    group : str
        Agents of one configuration trained with several seeds share a group (mean ± std).
    seed : int or None
    symbols : tuple of str
    dates : ndarray of datetime64[ns], shape (n_steps,)
    bars : ndarray of int64, shape (n_steps,)
    returns : ndarray, shape (n_steps,)
        Net simple returns after costs.
    equity : ndarray, shape (n_steps,)
        Equity after each fill, currency.
    weights : ndarray, shape (n_steps, n_assets)
        Book after each fill (before the next bar's drift).
    proposed, approved : ndarray, shape (n_steps, n_assets)
        The allocator's proposal and what the gates approved.
    symbol_reasons : ndarray of int64, shape (n_steps, n_assets)
        ``ReasonCode`` bits (gates | execution).
    portfolio_reasons : ndarray of int64, shape (n_steps,)
    reason_counts : ndarray of int64, shape (n_steps, len(REASON_NAMES))
        Symbols carrying each code (``allocgym.envs.core.REASON_NAMES`` order).
    reason_names : tuple of str
    side : ndarray of int8, shape (n_steps, n_assets)
        Sign of the shares traded at the fill (+1 BUY, -1 SELL, 0 none).
    trades : ndarray, shape (n_steps, n_assets)
        Signed traded weight at the fill (notional over pre-trade equity).
    costs, turnover, intervention : ndarray, shape (n_steps,)
        Fill cost (fraction of pre-trade equity), realised turnover (traded L1 weight at
        the fill's prices, lot-rounded: it can sit slightly above ``risk.max_turnover``,
        which caps the L1 at the decision bar's prices), L1 proposed -> approved.
    regime : ndarray of int8, shape (n_steps,)
        Regime code at the decision bar (``REGIME_LABELS``).
    asset_pnl : ndarray, shape (n_steps, n_assets)
        ``w_t,i * r_t+1,i``: each symbol's contribution to the return.
    cost_pnl : ndarray, shape (n_steps,)
        ``returns - asset_pnl.sum(1)``: the (negative) contribution of costs.
    strategy_pnl : ndarray, shape (n_steps, n_strategies), or None
        Per-family part of ``asset_pnl.sum(1)`` (``budgets`` mode only).
    strategy_names : tuple of str
    invariant_breaches : ndarray of int64, shape (n_steps,)
        1 where ``check_invariants`` found a breach at that decision (must be all 0).
    invariant_messages : tuple of str
        First messages of the breaches (for the report).
    allocator_errors : int
        Rebalances where the allocator raised ``OptimizationError`` (book kept).
    rebalance_sources : dict of str to int
        Baselines: rebalances by the stage that produced the weights
        (``allocgym.allocator.source_of``; ``BOOK_KEPT`` where the allocator raised).
        Empty for agents.
    primary_source : str or None
        The stage of an ordinary rebalance (every other stage is a fallback); None for
        agents.
    allocator_cut, overlay_cut : ndarray, shape (n_steps,), or None
        The gates' intervention split in two (L1 weights): ``allocator_cut`` = what the
        gates take off the proposal at the default regime multipliers (the proposal
        breaks a limit by itself), ``overlay_cut`` = what the regime multipliers take off
        on top (``max(0, intervention - allocator_cut)``: the regime overlay cutting
        gross or capacity in high-volatility / uncertain regimes).
    selection_audit : list of dict
        Allocators that select names (cluster barbell, greedy rotation): one record per
        rebalance (``Rebalancer.selections``), written to ``selection_audit.json``; empty
        for the others.
    initial_equity : float
        Starting equity (``cfg.env.initial_equity * equity_scale``), currency.
    equity_scale : float
        Multiple of the configured equity (capacity stress scenarios use 10, 100).
    split : str
    wiped_out_at : int or None
        Step whose fill left equity at or below 0 (``dates[wiped_out_at]``), or None. The
        book is frozen from then on: no trades, zero returns and weights, equity held at
        its last value; the other allocators of the walk keep going.
    strategy_gross : ndarray, shape (n_steps, n_strategies), or None
        Per-family gross of each decision's approved book (``budgets`` mode only,
        fractions of equity): the ``approved`` line of the gates' per-strategy budget
        trace (``GateResult.strategy_budget``), each name's ``|w_i|`` split over the
        families in proportion to their contributions after ``STRATEGY_CAP``, so the
        lines sum to the approved book's gross.
    strategy_budget : ndarray, shape (n_steps, n_strategies, 3), or None
        Each family's budget at each decision, step by step (``STRATEGY_BUDGET_STEPS``:
        base, x regime multiplier and tilt, x capacity factor = the budget
        ``STRATEGY_CAP`` enforced); ``budgets`` mode only.
    """

    name: str
    kind: str
    group: str
    seed: int | None
    symbols: tuple[str, ...]
    dates: np.ndarray
    bars: np.ndarray
    returns: np.ndarray
    equity: np.ndarray
    weights: np.ndarray
    proposed: np.ndarray
    approved: np.ndarray
    symbol_reasons: np.ndarray
    portfolio_reasons: np.ndarray
    reason_counts: np.ndarray
    reason_names: tuple[str, ...]
    side: np.ndarray
    trades: np.ndarray
    costs: np.ndarray
    turnover: np.ndarray
    intervention: np.ndarray
    regime: np.ndarray
    asset_pnl: np.ndarray
    cost_pnl: np.ndarray
    strategy_pnl: np.ndarray | None
    strategy_names: tuple[str, ...]
    invariant_breaches: np.ndarray
    invariant_messages: tuple[str, ...]
    allocator_errors: int
    initial_equity: float
    equity_scale: float
    split: str
    wiped_out_at: int | None = None
    strategy_gross: np.ndarray | None = None
    strategy_budget: np.ndarray | None = None
    rebalance_sources: dict[str, int] = field(default_factory=dict)
    primary_source: str | None = None
    allocator_cut: np.ndarray | None = None
    overlay_cut: np.ndarray | None = None
    selection_audit: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_steps(self) -> int:
        return int(self.returns.shape[0])

    @property
    def held(self) -> np.ndarray:
        """The book held over each step's bar ``(bars[k], bars[k] + 1]``, shape (n_steps,
        n_assets): the one ``asset_pnl`` is made of (``asset_pnl = held * r``), all cash at
        step 0, then the book after the previous step's fill (the fill is at bar
        ``t + 1``'s price: ``weights[k]`` earns from the next step on)."""
        out = np.zeros_like(self.weights)
        out[1:] = self.weights[:-1]
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Per-bar arrays keyed ``<field>`` (for ``np.savez``)."""
        keys = ("dates", "bars", "returns", "equity", "weights", "proposed", "approved",
                "symbol_reasons", "portfolio_reasons", "reason_counts", "side", "trades", "costs",
                "turnover", "intervention", "regime", "asset_pnl", "cost_pnl",
                "invariant_breaches", "allocator_cut", "overlay_cut")  # fmt: skip
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        if self.strategy_pnl is not None:
            out["strategy_pnl"] = self.strategy_pnl
        if self.strategy_gross is not None:
            out["strategy_gross"] = self.strategy_gross
        if self.strategy_budget is not None:
            out["strategy_budget"] = self.strategy_budget
        return out


STRATEGY_BUDGET_STEPS: tuple[str, ...] = ("base", "regime", "capacity")
"""The steps of ``Backtest.strategy_budget`` (last axis): the base budget, x the regime
budget multiplier and tilt, x the capacity factor (the budget ``STRATEGY_CAP`` enforced)."""


@dataclass
class _Member:
    obj: Allocator
    name: str
    kind: str
    group: str
    seed: int | None
    scale: float


def _is_agent(obj: Any) -> bool:
    """A :class:`PolicyAllocator` or a bare policy (walked as a :class:`BoundPolicy`)."""
    return isinstance(obj, PolicyAllocator) or not isinstance(obj, Allocator)


def _as_member(obj: Any, scale: float, action_spec: ActionSpec) -> _Member:
    """The walk's view of one allocator: a bare policy is bound to the env's action map."""
    allocator = obj
    if not isinstance(obj, Allocator):
        if not hasattr(obj, "act"):
            raise ConfigError(
                f"{type(obj).__name__} is neither an Allocator (name, allocate(ctx)) nor a "
                "policy (name, act(obs)): wrap it in one of them"
            )
        allocator = BoundPolicy(obj, action_spec)
    is_agent = _is_agent(obj)
    if is_agent and (
        allocator.action_spec is None or allocator.action_spec.layout() != action_spec.layout()
    ):
        raise ConfigError(
            f"agent {allocator.name!r} maps actions with "
            f"{None if allocator.action_spec is None else allocator.action_spec.layout()}, the "
            f"evaluation env with {action_spec.layout()}: pass action_spec=params.action_spec "
            "(or evaluate the agent with its own config)"
        )
    name = str(getattr(obj, "name", type(obj).__name__))
    group = str(getattr(obj, "group", name))
    seed = getattr(obj, "seed", None)
    return _Member(allocator, name, "agent" if is_agent else "baseline", group,
                   None if seed is None else int(seed), float(scale))  # fmt: skip


def run_allocator(
    allocator: Allocator | Policy,
    market: MarketData | None = None,
    cfg: AllocgymConfig | None = None,
    split: Any = None,
    *,
    params: EnvParams | None = None,
    equity_scale: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> Backtest:
    """Backtest one allocator over a whole split (see :func:`run_allocators`)."""
    return run_allocators(
        [allocator], market, cfg, split, params=params, equity_scales=[equity_scale],
        progress=progress,
    )[0]  # fmt: skip


def run_allocators(
    allocators: Sequence[Allocator | Policy],
    market: MarketData | None = None,
    cfg: AllocgymConfig | None = None,
    split: Any = None,
    *,
    params: EnvParams | None = None,
    equity_scales: Sequence[float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Backtest]:
    """Backtest allocators side by side over a whole split, one portfolio each.

    Parameters
    ----------
    allocators : sequence of Allocator or Policy
        Baselines and agents (``allocate(ctx)``; a bare policy's ``act(obs)`` is bound to
        the env's action map); optional attributes ``group`` and ``seed`` label agent seeds
        in the report.
    market : MarketData, optional
        Default ``load_market(cfg.data)`` (ignored when ``params`` is given).
    cfg : AllocgymConfig, optional
        Default ``AllocgymConfig()`` (ignored when ``params`` is given).
    split : str, Split or (start, stop), optional
        Default ``cfg.evaluation.split``.
    params : EnvParams, optional
        Prebuilt :func:`evaluation_params` (share the feature precomputation).
    equity_scales : sequence of float, optional
        Starting equity of each portfolio as a multiple of ``cfg.env.initial_equity``
        (capacity stress); default 1 for all.
    progress : callable, optional
        ``progress(steps_done, steps_total)`` after every bar.

    Returns
    -------
    list of Backtest
        In the order of ``allocators``.
    """
    if params is None:
        cfg = cfg or AllocgymConfig()
        market = load_market(cfg.data) if market is None else market
        params = evaluation_params(market, cfg, split)
    scales = [1.0] * len(allocators) if equity_scales is None else list(equity_scales)
    if len(scales) != len(allocators):
        raise ConfigError(
            f"equity_scales has {len(scales)} entries for {len(allocators)} allocators: give "
            "one per allocator"
        )
    if any(not (math.isfinite(s) and s > 0) for s in scales):
        raise ConfigError(f"equity_scales {scales}: every multiple must be finite and > 0")
    members = [
        _as_member(a, s, params.action_spec) for a, s in zip(allocators, scales, strict=True)
    ]
    if not members:
        return []
    budgets = params.action_spec.mode == "budgets"
    # Budget-mode agents' proposals carry per-family contributions (the STRATEGY_CAP
    # input) that baselines' proposals lack, so the two kinds walk separately.
    groups = [
        [i for i, m in enumerate(members) if m.kind == "agent"] if budgets else [],
        [i for i, m in enumerate(members) if not (budgets and m.kind == "agent")],
    ]
    out: list[Backtest | None] = [None] * len(members)
    walks = [g for g in groups if g]
    total = _n_steps(params) * len(walks)
    for j, rows in enumerate(walks):
        offset = j * _n_steps(params)

        def step_progress(k: int, n: int, offset: int = offset) -> None:
            if progress is not None:
                progress(offset + k, total)

        with _single_thread_torch(any(members[i].kind == "agent" for i in rows)):
            results = _walk(params, [members[i] for i in rows], step_progress)
        for i, bt in zip(rows, results, strict=True):
            out[i] = bt
    return [bt for bt in out if bt is not None]


@contextlib.contextmanager
def _single_thread_torch(active: bool) -> Iterator[None]:
    """One torch thread while policies act on one observation per bar.

    Batch-1 inference gains nothing from intra-op threads, and on a busy machine the
    thread pool's synchronisation costs 10-30x the forward pass itself.
    """
    import sys

    torch = sys.modules.get("torch") if active else None
    if torch is None:
        yield
        return
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _n_steps(params: EnvParams) -> int:
    return int(params.split.stop - 1 - params.lo)


def _walk(
    params: EnvParams, members: list[_Member], progress: Callable[[int, int], None]
) -> list[Backtest]:
    """One batched walk of ``members`` over the split (all agents or all proposers).

    A portfolio whose equity reaches 0 leaves the batch after that step: its record is
    frozen (no trades, zero returns, ``Backtest.wiped_out_at``) while the others walk on.
    """
    from allocgym.envs import core

    cfg = params.cfg
    b, n = len(members), params.n_assets
    n_steps = _n_steps(params)
    budgets_walk = params.action_spec.mode == "budgets" and all(m.kind == "agent" for m in members)
    record = _WalkRecord(params, b, n_steps, strategies=budgets_walk)

    state, obs = core.reset(params, core.seed_keys(np.arange(b)), start=np.full(b, params.lo))
    scale = np.array([m.scale for m in members])
    state = replace(state, cash=state.cash * scale, equity=state.equity * scale,
                    peak=state.peak * scale)  # fmt: skip
    for m in members:
        reset = getattr(m.obj, "reset", None) if m.kind == "agent" else None
        if callable(reset):
            reset()  # recurrent policies start a new episode
    # Agents decide every env.decision_interval bars (as in training), baselines every
    # baselines.rebalance_every bars; both hold their book in between.
    rebalancer = Rebalancer(
        [m.obj for m in members],
        rebalance_every=[
            params.decision_interval if m.kind == "agent" else cfg.baselines.rebalance_every
            for m in members
        ],
        lookback=cfg.baselines.lookback,
        windows=window_bars(params.market.dates, cfg.schedule),
    )
    live = np.arange(b)  # batch rows still stepped; ``state`` and ``obs`` hold only these

    for k in range(n_steps):
        if live.size == 0:
            progress(k + 1, n_steps)
            continue
        proposed = rebalancer.propose(params, state, np.zeros((live.size, n)), live, obs)
        contributions = budgets = None
        if rebalancer.contributions is not None and rebalancer.budgets is not None:
            contributions, budgets = rebalancer.contributions[live], rebalancer.budgets[live]
            # a held (drifted) book between decisions: no family parts behind it
            drifting = rebalancer.drifting[live]
            if drifting.any():
                contributions = np.where(drifting[:, None, None], 0.0, contributions)
        elif budgets_walk:
            # before its first decision (a walk starting outside a window) a budgets agent
            # holds cash: no family parts, the whole budget in cash
            contributions = np.zeros((live.size, record.n_strategies, n))
            budgets = np.zeros((live.size, record.n_strategies + 1))
            budgets[:, -1] = 1.0
        res = core.step_proposed(params, state, proposed, contributions, budgets)
        rebalancer.after_step(res.info["portfolio_reasons"], res.info["symbol_reasons"], live)
        record.step(k, live, state, res)
        state, obs = res.state, res.obs
        progress(k + 1, n_steps)
        dead = state.equity <= 0.0
        if dead.any():  # a wiped-out book cannot be marked further: freeze it, walk the rest
            gone = live[dead]
            record.wipe_out(k, gone)
            warnings.warn(
                f"evaluation: equity of {[members[i].name for i in gone]} reached 0 at bar "
                f"{int(record.bars[k]) + 1}; frozen from then on (no trades, zero returns), "
                "the other allocators keep walking",
                RuntimeWarning,
                stacklevel=3,
            )
            live = live[~dead]
            state, obs = state.take(~dead), obs[~dead]
    return record.backtests(members, rebalancer)


class _WalkRecord:
    """The per-bar arrays of one batched walk, filled as it steps (rows = portfolios)."""

    def __init__(self, params: EnvParams, b: int, n_steps: int, *, strategies: bool) -> None:
        from allocgym.envs import core
        from allocgym.intents import STRATEGY_FAMILIES

        n, n_codes, n_strat = params.n_assets, len(core.REASON_CODES), len(STRATEGY_FAMILIES)
        self.params = params
        self.n_strategies = n_strat
        self.check = bool(params.cfg.evaluation.check_invariants)
        self.arrays = {
            "returns": np.zeros((b, n_steps)),
            "equity": np.zeros((b, n_steps)),
            "costs": np.zeros((b, n_steps)),
            "turnover": np.zeros((b, n_steps)),
            "intervention": np.zeros((b, n_steps)),
            "allocator_cut": np.zeros((b, n_steps)),
            "overlay_cut": np.zeros((b, n_steps)),
            "cost_pnl": np.zeros((b, n_steps)),
            "portfolio_reasons": np.zeros((b, n_steps), np.int64),
            "invariant_breaches": np.zeros((b, n_steps), np.int64),
            "weights": np.zeros((b, n_steps, n)),
            "proposed": np.zeros((b, n_steps, n)),
            "approved": np.zeros((b, n_steps, n)),
            "asset_pnl": np.zeros((b, n_steps, n)),
            "symbol_reasons": np.zeros((b, n_steps, n), np.int64),
            "side": np.zeros((b, n_steps, n), np.int8),
            "trades": np.zeros((b, n_steps, n)),
            "reason_counts": np.zeros((b, n_steps, n_codes), np.int64),
        }
        self.bars = params.lo + np.arange(n_steps, dtype=np.int64)
        self.strategy_pnl = np.zeros((b, n_steps, n_strat)) if strategies else None
        self.strategy_gross = np.zeros((b, n_steps, n_strat)) if strategies else None
        n_budget = len(STRATEGY_BUDGET_STEPS)
        self.strategy_budget = np.zeros((b, n_steps, n_strat, n_budget)) if strategies else None
        self.last_share = np.zeros((b, n_strat, n))
        self.messages: list[list[str]] = [[] for _ in range(b)]
        self.wiped = np.full(b, -1, np.int64)

    def step(self, k: int, live: np.ndarray, state: EnvState, res: StepResult) -> None:
        """Record step ``k`` of the portfolios ``live`` (``state`` before it, ``res`` its
        result)."""
        params, rec = self.params, self.arrays
        dec, info = res.decision, res.info
        t = int(self.bars[k])
        # Attribution: held book at t times each symbol's price return over (t, t+1].
        p0, p1 = params.prices[t], params.prices[t + 1]
        r_px = np.divide(p1, p0, out=np.ones_like(p1), where=p0 > 0) - 1.0
        a_pnl = dec.context.current_weights * r_px[None, :]
        # a row-wise sum, not a BLAS product, whose rounding depends on the batch's shape:
        # the record must not change with the other portfolios walked beside it (Ray chunks)
        value_pre = state.cash + (state.shares * p1).sum(axis=1)
        net = info["equity"] / state.equity - 1.0
        self._strategy_step(k, live, res, a_pnl)
        if self.check:
            self._invariants_step(k, live, res)

        rec["returns"][live, k] = net
        rec["equity"][live, k] = info["equity"]
        rec["costs"][live, k] = info["cost"]
        rec["turnover"][live, k] = info["turnover"]
        rec["intervention"][live, k] = info["intervention"]
        base = _default_regime_approved(params, dec)
        own = _l1_cut(base, dec.proposed, info["intervention"])
        rec["allocator_cut"][live, k] = own
        rec["overlay_cut"][live, k] = np.maximum(info["intervention"] - own, 0.0)
        rec["cost_pnl"][live, k] = net - a_pnl.sum(axis=1)
        rec["portfolio_reasons"][live, k] = info["portfolio_reasons"]
        rec["weights"][live, k] = info["weights"]
        rec["proposed"][live, k] = np.where(np.isfinite(dec.proposed), dec.proposed, np.nan)
        rec["approved"][live, k] = info["approved"]
        rec["asset_pnl"][live, k] = a_pnl
        rec["symbol_reasons"][live, k] = info["symbol_reasons"]
        rec["side"][live, k] = np.sign(info["delta_qty"]).astype(np.int8)
        pos = value_pre > 0
        rec["trades"][live, k] = info["delta_qty"] * p1 / np.where(pos, value_pre, 1.0)[:, None]
        rec["reason_counts"][live, k] = info["reason_counts"]

    def _strategy_step(
        self, k: int, live: np.ndarray, res: StepResult, asset_pnl: np.ndarray
    ) -> None:
        """Budgets mode: split each asset's P&L over the families in proportion to their
        contributions at the decision that last traded it; record the budget trace."""
        if self.strategy_pnl is None or self.strategy_gross is None or self.strategy_budget is None:
            return
        info = res.info
        share_prev = self.last_share[live]
        self.strategy_pnl[live, k] = np.einsum("bsn,bn->bs", share_prev, asset_pnl)
        parts = info["strategy_contributions"] * info["strategy_scale"][:, :, None]
        budget = res.decision.gate.strategy_budget
        self.strategy_gross[live, k] = budget.approved
        self.strategy_budget[live, k] = np.stack(
            [budget.base, budget.regime, budget.capacity], axis=-1
        )
        share = strategy_shares(parts)  # the served P&L metric's rule
        # as StrategyPnL.update: a traded symbol left without an owner keeps its owners
        traded = (res.decision.execution.delta_qty != 0.0) & (share != 0.0).any(axis=1)
        self.last_share[live] = np.where(traded[:, None, :], share, share_prev)

    def _invariants_step(self, k: int, live: np.ndarray, res: StepResult) -> None:
        """Count the decisions ``check_invariants`` finds in breach; keep a few messages."""
        dec, params = res.decision, self.params
        report = check_invariants(dec.gate, dec.context, params.limits, params.cost_model)
        if not report.n_breaches:
            return
        self.arrays["invariant_breaches"][live, k] = report.breached.astype(np.int64)
        for j in np.flatnonzero(report.breached):
            messages = self.messages[int(live[j])]
            tag = f"portfolio {j}:"
            mine = [m for m in report.messages if m.startswith(tag)]
            if len(messages) < 20:
                bar = int(self.bars[k])
                messages.extend(f"bar {bar}: {m[len(tag) :].strip()}" for m in mine[:5])

    def wipe_out(self, k: int, gone: np.ndarray) -> None:
        """The portfolios ``gone`` reached zero equity at step ``k``: freeze their books."""
        self.wiped[gone] = k
        self.arrays["weights"][gone, k] = 0.0  # weights of a book worth <= 0 are undefined

    def backtests(self, members: list[_Member], rebalancer: Rebalancer) -> list[Backtest]:
        """One :class:`Backtest` per member, in order."""
        from allocgym.envs import core
        from allocgym.intents import STRATEGY_FAMILIES

        params, rec, wiped = self.params, self.arrays, self.wiped
        for i in np.flatnonzero(wiped >= 0):
            rec["equity"][i, wiped[i] + 1 :] = rec["equity"][i, wiped[i]]
        dates = params.market.dates[self.bars + 1]
        regime = params.features.regime[self.bars].astype(np.int8)
        eq0 = float(params.cfg.env.initial_equity)
        strategy_pnl, gross_trace = self.strategy_pnl, self.strategy_gross
        budget_trace = self.strategy_budget
        out: list[Backtest] = []
        for i, m in enumerate(members):
            out.append(
                Backtest(
                    name=m.name,
                    kind=m.kind,
                    group=m.group,
                    seed=m.seed,
                    symbols=tuple(params.market.symbols),
                    dates=dates,
                    bars=self.bars.copy(),
                    regime=regime.copy(),
                    reason_names=tuple(core.REASON_NAMES),
                    strategy_pnl=None if strategy_pnl is None else strategy_pnl[i],
                    strategy_names=tuple(STRATEGY_FAMILIES) if strategy_pnl is not None else (),
                    invariant_messages=tuple(self.messages[i]),
                    allocator_errors=int(rebalancer.errors[i]),
                    rebalance_sources=dict(rebalancer.sources[i]) if m.kind == "baseline" else {},
                    primary_source=primary_source_of(m.obj) if m.kind == "baseline" else None,
                    selection_audit=list(rebalancer.selections[i]),
                    initial_equity=eq0 * m.scale,
                    equity_scale=m.scale,
                    split=params.split.name,
                    wiped_out_at=int(wiped[i]) if wiped[i] >= 0 else None,
                    strategy_gross=None if gross_trace is None else gross_trace[i],
                    strategy_budget=None if budget_trace is None else budget_trace[i],
                    **{key: arr[i] for key, arr in rec.items()},
                )
            )
        return out


def _default_regime_approved(params: EnvParams, dec: Any) -> np.ndarray:
    """The gates' approved book at the default regime multipliers (code -1), for the
    rows whose regime has other multipliers; the approved book elsewhere. Shape (n, N).

    The difference to the approved book is what the regime overlay took off.
    """
    ctx = dec.context
    lim = params.limits
    codes = np.asarray(ctx.regime, dtype=np.int64)
    other = (lim.budget_multiplier(codes) != lim.default_budget_multiplier) | (
        lim.capacity_multiplier(codes) != lim.default_capacity_multiplier
    )
    approved = dec.gate.approved
    if not other.any():
        return approved
    rows = np.flatnonzero(other)
    sub = ctx.rows(rows, regime=np.full(rows.size, -1, dtype=np.int64))
    out = approved.copy()
    out[rows] = params.gates.apply(dec.proposed[rows], sub).approved
    return out


def _l1_cut(approved: np.ndarray, proposed: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``|approved - proposed|_1`` per row; a non-finite proposal counts as ``total``."""
    diff = np.abs(approved - proposed).sum(axis=1)
    return np.where(np.isfinite(diff), diff, total)


# ----------------------------------------------------------------------------- metrics


def _f(x: Any) -> float:
    return float(np.asarray(x))


def _regime_metrics(bt: Backtest, ppy: float) -> dict[str, dict[str, float]]:
    """Per regime label seen in ``bt``: bars, share of bars, annualised return, volatility
    and Sharpe over those bars (``ppy``: periods per year)."""
    regimes: dict[str, dict[str, float]] = {}
    for code, label in enumerate(REGIME_LABELS):
        in_regime = bt.regime == code
        n_bars = int(in_regime.sum())
        if n_bars == 0:
            continue
        regime_returns = bt.returns[in_regime]
        regimes[label] = {
            "n_bars": n_bars,
            "fraction": n_bars / max(bt.n_steps, 1),
            "ann_return": _f(measures.annualized_return(regime_returns, ppy)),
            "ann_volatility": _f(measures.annualized_volatility(regime_returns, ppy)),
            "sharpe": _f(measures.sharpe_ratio(regime_returns, periods_per_year=ppy)),
        }
    return regimes


def _attribution(bt: Backtest) -> dict[str, Any]:
    """Summed daily return contributions: per asset, of the costs, and per strategy family
    (the remainder ``unattributed``; in ``weights`` mode the allocator is one strategy)."""
    asset = bt.asset_pnl.sum(axis=0)
    if bt.strategy_pnl is not None:
        strategies = {
            s: float(v) for s, v in zip(bt.strategy_names, bt.strategy_pnl.sum(0), strict=True)
        }
        strategies["unattributed"] = float(asset.sum() - bt.strategy_pnl.sum())
    else:
        strategies = {bt.name: float(asset.sum())}
    return {
        "assets": {s: float(v) for s, v in zip(bt.symbols, asset, strict=True)},
        "costs": float(bt.cost_pnl.sum()),
        "strategies": strategies,
    }


def annualisation(ecfg: EvaluationConfig, dates: Any) -> float:
    """Bars a year behind every annualised figure of a walk over ``dates``:
    ``ecfg.periods_per_year``, or with ``auto`` the dates' own
    (:func:`allocgym.data.bars_per_year`)."""
    ppy = ecfg.periods_per_year
    return bars_per_year(dates) if ppy == "auto" else float(ppy)


def with_annualisation(ecfg: EvaluationConfig, dates: Any) -> EvaluationConfig:
    """``ecfg`` with ``periods_per_year`` a number (:func:`annualisation` of ``dates``):
    for series that carry no dates of their own (a study's stitched returns)."""
    return ecfg.model_copy(update={"periods_per_year": annualisation(ecfg, dates)})


def _checked_annualisation(ecfg: EvaluationConfig, dates: Any) -> float:
    """:func:`annualisation`, with a warning when a number set by hand is more than 2x off
    the bars' own rate (252 on 5-minute bars understates every annualised figure)."""
    ppy, own = annualisation(ecfg, dates), bars_per_year(dates)
    if not 0.5 <= ppy / own <= 2.0:
        warnings.warn(
            f"evaluation.periods_per_year = {ppy:g} annualises bars that come about "
            f"{own:.6g} a year (their median spacing): the annualised return, volatility, "
            "Sharpe, turnover and costs are off by that ratio; set it to auto (or to the "
            "bars a year you mean)",
            DataWarning,
            stacklevel=3,
        )
    return ppy


def backtest_metrics(bt: Backtest, ecfg: EvaluationConfig | None = None) -> dict[str, Any]:
    """Metrics of one backtest, every risk/return number from :mod:`allocgym.measures`.

    Returns
    -------
    dict
        ``ann_return``, ``ann_volatility``, ``sharpe``, ``sortino``, ``max_drawdown``,
        ``calmar``, ``cvar`` (at ``ecfg.cvar_alpha``), ``total_return``, ``hit_rate``,
        ``turnover`` (mean traded L1 per bar x periods per year), ``costs`` (sum of fill
        costs, fractions of equity), ``costs_annual``, ``hhi`` (mean Herfindahl of the held
        book over invested bars), ``max_weight`` (largest held |w|), ``mean_gross``,
        ``interventions`` (reason name -> symbol-bars carrying it, non-zero only),
        ``gate_interventions`` (sum over gate codes), ``decisions_intervened`` (bars where
        the gates changed the proposal), ``invariant_breaches`` (bars with a breach),
        ``allocator_errors``, ``allocator_bars`` / ``overlay_bars`` (share of decisions
        where the gates cut the proposal at the default regime multipliers / where the
        regime overlay cut it further) and ``allocator_l1`` / ``overlay_l1`` (mean L1 cut
        per decision), ``rebalances`` (baseline re-optimisations), ``sources`` (stage ->
        rebalances), ``fallback`` (fallback stage -> share of rebalances),
        ``fallback_share`` (all fallback stages), ``fallback_flag`` (share > 0.5),
        ``regimes`` (label -> n_bars, fraction, ann_return,
        ann_volatility, sharpe), ``attribution`` (``assets``: symbol -> summed daily
        contribution; ``costs``; ``strategies``: family -> summed contribution, or the
        allocator's name in ``weights`` mode), ``strategy_gross`` (``budgets`` mode:
        family -> mean gross of the approved book attributed to it per decision),
        ``strategy_budget`` (``budgets`` mode: family -> mean ``base``, ``regime`` and
        ``capacity`` budget and ``approved`` gross per decision),
        ``wiped_out_at`` (date of the fill that left equity <= 0, or None), ``n_bars``,
        ``start`` / ``end`` dates.
    """
    e = ecfg or EvaluationConfig()
    ppy = annualisation(e, bt.dates)
    r = bt.returns
    n = bt.n_steps
    regimes = _regime_metrics(bt, ppy)
    attribution = _attribution(bt)
    invested = np.abs(bt.weights).sum(axis=1) > 0
    hhi = measures.herfindahl(bt.weights[invested]) if invested.any() else np.array([np.nan])
    counts = bt.reason_counts.sum(axis=0)
    interventions = {name: int(c) for name, c in zip(bt.reason_names, counts, strict=True) if c}
    gate_total = int(sum(v for k, v in interventions.items() if k in GATE_REASON_NAMES))
    with np.errstate(divide="ignore", invalid="ignore"):
        out: dict[str, Any] = {
            "name": bt.name,
            "kind": bt.kind,
            "group": bt.group,
            "seed": bt.seed,
            "equity_scale": bt.equity_scale,
            "n_bars": n,
            "start": str(bt.dates[0])[:10] if n else "",
            "end": str(bt.dates[-1])[:10] if n else "",
            "ann_return": _f(measures.annualized_return(r, ppy)),
            "ann_volatility": _f(measures.annualized_volatility(r, ppy)),
            "sharpe": _f(measures.sharpe_ratio(r, periods_per_year=ppy)),
            "sortino": _f(measures.sortino_ratio(r, periods_per_year=ppy)),
            "max_drawdown": _f(measures.max_drawdown(r)),
            "calmar": _f(measures.calmar_ratio(r, ppy)),
            "cvar": _f(measures.cvar(r, e.cvar_alpha)),
            "total_return": float(np.prod(1.0 + r) - 1.0),
            "hit_rate": _f(measures.hit_rate(r)),
            "turnover": float(np.mean(bt.turnover) * ppy) if n else float("nan"),
            "costs": float(np.sum(bt.costs)),
            "costs_annual": float(np.sum(bt.costs) * ppy / n) if n else float("nan"),
            "hhi": float(np.nanmean(hhi)) if np.isfinite(hhi).any() else float("nan"),
            "max_weight": float(np.abs(bt.weights).max()) if n else float("nan"),
            "mean_gross": float(np.abs(bt.weights).sum(axis=1).mean()) if n else float("nan"),
            "interventions": interventions,
            "gate_interventions": gate_total,
            "decisions_intervened": int((bt.intervention > 1e-9).sum()),
            "invariant_breaches": int(bt.invariant_breaches.sum()),
            "allocator_errors": bt.allocator_errors,
            **_gate_split(bt),
            **fallback_shares(bt.rebalance_sources, bt.primary_source),
            "wiped_out_at": None
            if bt.wiped_out_at is None
            else str(bt.dates[bt.wiped_out_at])[:10],
            "regimes": regimes,
            "attribution": attribution,
        }
    if bt.strategy_gross is not None and n:
        out["strategy_gross"] = {
            s: float(v)
            for s, v in zip(bt.strategy_names, bt.strategy_gross.mean(axis=0), strict=True)
        }
    if bt.strategy_budget is not None and bt.strategy_gross is not None and n:
        steps = bt.strategy_budget.mean(axis=0)
        approved = bt.strategy_gross.mean(axis=0)
        out["strategy_budget"] = {
            s: {
                **{step: float(v) for step, v in zip(STRATEGY_BUDGET_STEPS, steps[j], strict=True)},
                "approved": float(approved[j]),
            }
            for j, s in enumerate(bt.strategy_names)
        }
    return out


FALLBACK_FLAG_SHARE = 0.5
"""An allocator served by fallback stages on more than this share of its rebalances is
flagged in the report (its row is mostly another allocator's book)."""


def fallback_shares(sources: dict[str, int], primary: str | None) -> dict[str, Any]:
    """Share of rebalances served by each fallback stage.

    Parameters
    ----------
    sources : dict of str to int
        Rebalances by the stage that produced the weights (``Backtest.rebalance_sources``).
    primary : str or None
        The ordinary stage; every other stage is a fallback.

    Returns
    -------
    dict
        ``rebalances`` (total), ``sources`` (a copy), ``fallback`` (stage -> share of
        rebalances, fallback stages only), ``fallback_share`` (their sum, 0 without
        rebalances) and ``fallback_flag`` (``fallback_share > FALLBACK_FLAG_SHARE``).

    Examples
    --------
    >>> fallback_shares({"qp:CLARABEL": 1, "hrp": 3}, "qp:CLARABEL")["fallback"]
    {'hrp': 0.75}
    """
    total = int(sum(sources.values()))
    fb = {k: v / total for k, v in sorted(sources.items()) if k != primary and total}
    share = float(sum(fb.values()))
    return {
        "rebalances": total,
        "sources": dict(sources),
        "fallback": fb,
        "fallback_share": share,
        "fallback_flag": share > FALLBACK_FLAG_SHARE,
    }


def _gate_split(bt: Backtest) -> dict[str, float]:
    """Shares of decisions (and mean L1 cuts) by the allocator and by the regime overlay."""
    n = bt.n_steps
    if not n or bt.allocator_cut is None or bt.overlay_cut is None:
        nan = float("nan")
        return {"allocator_bars": nan, "overlay_bars": nan, "allocator_l1": nan,
                "overlay_l1": nan}  # fmt: skip
    return {
        "allocator_bars": float(np.mean(bt.allocator_cut > _CUT_EPS)),
        "overlay_bars": float(np.mean(bt.overlay_cut > _CUT_EPS)),
        "allocator_l1": float(np.mean(bt.allocator_cut)),
        "overlay_l1": float(np.mean(bt.overlay_cut)),
    }


_CUT_EPS = 1e-9
"""L1 weight below which a gate cut is float dust, not an intervention."""

TABLE_METRICS: tuple[str, ...] = (
    "ann_return", "ann_volatility", "sharpe", "sortino", "max_drawdown", "calmar", "cvar",
    "turnover", "costs", "allocator_bars", "overlay_bars", "invariant_breaches", "hhi",
    "psr", "dsr",
)  # fmt: skip
"""Columns of the metrics table (``EvaluationResult.table``)."""

_CHUNK_STEPS = 256
"""Decision bars whose scenario windows are gathered at once in :func:`regime_diagnostics`."""


def regime_diagnostics(
    bt: Backtest,
    returns: np.ndarray,
    window: int,
    *,
    periods_per_year: float = 252.0,
    alpha: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """Ex-ante risk of the proposed and of the held book, per regime.

    At each step ``k`` both books are priced on the same scenarios: the asset returns of
    the ``window`` bars ending at the decision bar ``t = bt.bars[k]`` (rows
    ``t - window + 1 .. t``, known at ``t``; the env's ex-ante CVaR uses the same rows).
    A proposal holding a NaN (rare: a policy's output) is left out of the proposed-book
    means and counted.

    Parameters
    ----------
    bt : Backtest
        Its ``proposed``, ``weights`` (held book after the fill), ``bars`` and ``regime``.
    returns : ndarray, shape (n_days, n_assets)
        Decimal simple asset returns; row ``t`` is the return over ``(t - 1, t]``
        (``MarketData.returns``).
    window : int
        Scenario bars (>= 2), e.g. ``cfg.env.cvar_window``.
    periods_per_year : float
        Annualisation of the volatility.
    alpha : float
        CVaR confidence level (``allocgym.measures.cvar``).

    Returns
    -------
    dict of str to dict
        Per regime label present in ``bt.regime`` (``REGIME_LABELS`` order): ``n_bars``,
        ``fraction`` (share of the walk's bars), ``proposed_gross`` / ``held_gross`` (mean
        sum of |w|), ``proposed_volatility`` / ``held_volatility`` (mean annualised
        ex-ante volatility), ``proposed_cvar`` / ``held_cvar`` (mean ex-ante one-bar CVaR
        at ``alpha``, a positive loss fraction), ``nan_proposals`` (steps left out of the
        proposed means). A proposed mean over no step is NaN.

    Raises
    ------
    DataError
        ``returns`` is not (n_days, n_assets) for the backtest's assets, or a decision bar
        has fewer than ``window`` bars of history or lies past the data.
    ConfigError
        ``window < 2``.
    """
    r = np.asarray(returns, dtype=np.float64)
    n_assets = len(bt.symbols)
    if r.ndim != 2 or r.shape[1] != n_assets:
        raise DataError(
            f"returns have shape {r.shape} for {bt.name!r} with {n_assets} assets: pass "
            "the market's (n_days, n_assets) returns"
        )
    if int(window) != window or window < 2:
        raise ConfigError(f"window = {window!r}: ex-ante risk needs at least 2 scenario bars")
    window = int(window)
    bars = np.asarray(bt.bars, dtype=np.int64)
    if bars.size and (bars.min() < window - 1 or bars.max() >= r.shape[0]):
        raise DataError(
            f"{bt.name!r} decides at bars {int(bars.min())}..{int(bars.max())}, but a "
            f"{window}-bar window needs bars {window - 1}..{r.shape[0] - 1}: pass a smaller "
            "window or the returns of the market the walk ran on"
        )
    finite_proposal = np.isfinite(bt.proposed).all(axis=1)
    proposed = np.where(finite_proposal[:, None], bt.proposed, 0.0)
    risk = _ex_ante_risk(r, bars, window, proposed, bt.weights, periods_per_year, alpha)

    def mean(x: np.ndarray) -> float:
        return float(np.mean(x)) if x.size else float("nan")

    gross_p = np.abs(proposed).sum(axis=1)
    gross_h = np.abs(bt.weights).sum(axis=1)
    out: dict[str, dict[str, Any]] = {}
    for code, label in enumerate(REGIME_LABELS):
        sel = bt.regime == code
        k = int(sel.sum())
        if k == 0:
            continue
        good = sel & finite_proposal
        out[label] = {
            "n_bars": k,
            "fraction": k / max(bars.size, 1),
            "proposed_gross": mean(gross_p[good]),
            "held_gross": mean(gross_h[sel]),
            "proposed_volatility": mean(risk["p_vol"][good]),
            "held_volatility": mean(risk["h_vol"][sel]),
            "proposed_cvar": mean(risk["p_cvar"][good]),
            "held_cvar": mean(risk["h_cvar"][sel]),
            "nan_proposals": int((sel & ~finite_proposal).sum()),
        }
    return out


def _ex_ante_risk(
    returns: np.ndarray,
    bars: np.ndarray,
    window: int,
    proposed: np.ndarray,
    held: np.ndarray,
    periods_per_year: float,
    alpha: float,
) -> dict[str, np.ndarray]:
    """Ex-ante volatility and CVaR of two books per step, on the same scenarios.

    Parameters
    ----------
    returns : ndarray, shape (n_days, n_assets)
    bars : ndarray of int, shape (n_steps,)
        Decision bars, each ``>= window - 1``.
    window : int
        Scenario bars ending at each decision bar.
    proposed, held : ndarray, shape (n_steps, n_assets)
        Finite books.
    periods_per_year : float
    alpha : float

    Returns
    -------
    dict of str to ndarray, shape (n_steps,)
        ``p_vol``, ``p_cvar`` (proposed) and ``h_vol``, ``h_cvar`` (held).
    """
    views = sliding_window_view(returns, window, axis=0)  # row j: bars j .. j + window - 1
    n_steps = bars.size
    risk = {key: np.full(n_steps, np.nan) for key in ("p_vol", "p_cvar", "h_vol", "h_cvar")}
    for lo in range(0, n_steps, _CHUNK_STEPS):
        sl = slice(lo, min(lo + _CHUNK_STEPS, n_steps))
        scenarios = views[bars[sl] - window + 1]  # (k, n_assets, window)
        for tag, book in (("p", proposed[sl]), ("h", held[sl])):
            pnl = np.einsum("knw,kn->kw", scenarios, book)
            risk[f"{tag}_vol"][sl] = measures.annualized_volatility(pnl, periods_per_year)
            risk[f"{tag}_cvar"][sl] = measures.cvar(pnl, alpha)
    return risk


PAIRED_REFERENCES: tuple[str, ...] = ("equal_weight", "hrp")
"""Baselines every allocator is tested against (besides the best baseline by Sharpe)."""


def _agent_groups(backtests: Sequence[Backtest]) -> dict[str, list[Backtest]]:
    """Agent backtests by group, in order of appearance."""
    by_group: dict[str, list[Backtest]] = {}
    for bt in backtests:
        if bt.kind == "agent":
            by_group.setdefault(bt.group, []).append(bt)
    return by_group


def pooled_label(group: str, n_seeds: int) -> str:
    """Row label of a seed group's pooled portfolio in the paired tests."""
    return f"{group} (pooled, {n_seeds} seeds)"


def paired_tests(
    backtests: Sequence[Backtest], ecfg: EvaluationConfig | None = None
) -> dict[str, Any]:
    """Paired bootstrap Sharpe tests of every allocator against 1/N, HRP and the best baseline.

    Rows are the backtests and, per agent group with several seeds, the pooled portfolio
    (the seeds' returns averaged bar by bar: capital split equally over the seeds). Each
    row is tested against ``equal_weight`` and ``hrp`` when they were walked, and against
    the baseline with the highest Sharpe ratio other than itself, by
    :func:`allocgym.stats.paired_sharpe_differences` with ``ecfg.bootstrap`` (one set of
    resampled indices for all series). Series over other bars than the first backtest's,
    or holding a non-finite return, are not tested and listed in ``skipped``.

    Returns
    -------
    dict
        ``method``, ``mean_block``, ``n_boot``, ``alpha``, ``level``, ``seed``,
        ``periods_per_year``; ``best_baseline`` (name or None); ``rows``: label ->
        {``equal_weight`` | ``hrp`` | ``best_baseline``: ``SharpeDifference.to_dict()`` plus
        ``reference`` (baseline name)}; ``pooled``: label -> member names; ``skipped``:
        label -> reason.
    """
    e = ecfg or EvaluationConfig()
    b = e.bootstrap
    ppy = annualisation(e, backtests[0].dates if backtests else ())
    out: dict[str, Any] = {
        "method": "paired stationary bootstrap (Politis & Romano, 1994) of the annualised "
        "Sharpe difference: both series resampled with the same blocks of geometric length; "
        "percentile interval; one-sided p-value of H0 diff <= 0 with the +1 correction",
        "mean_block": float(b.mean_block),
        "n_boot": int(b.n_boot),
        "alpha": float(b.alpha),
        "level": 1.0 - float(b.alpha),
        "seed": int(b.seed),
        "periods_per_year": ppy,
        "best_baseline": None,
        "rows": {},
        "pooled": {},
        "skipped": {},
    }
    if not backtests:
        return out
    dates = backtests[0].dates
    labels: list[str] = []
    series: list[np.ndarray] = []
    for bt in backtests:
        if bt.n_steps != len(dates) or not np.array_equal(bt.dates, dates):
            out["skipped"][bt.name] = f"walked other bars than {backtests[0].name!r}"
        elif not np.isfinite(bt.returns).all():
            out["skipped"][bt.name] = "non-finite returns"
        else:
            labels.append(bt.name)
            series.append(bt.returns)
    for g, members in _agent_groups(backtests).items():
        kept = [m for m in members if m.name in labels]
        if len(members) >= 2 and len(kept) == len(members):
            label = pooled_label(g, len(members))
            labels.append(label)
            series.append(np.mean([m.returns for m in members], axis=0))
            out["pooled"][label] = [m.name for m in members]
    if len(dates) < 2:
        out["skipped"].update({label: "fewer than 2 bars" for label in labels})
        return out
    row = {label: i for i, label in enumerate(labels)}
    baselines = [bt.name for bt in backtests if bt.kind == "baseline" and bt.name in row]
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = {n: float(measures.sharpe_ratio(series[row[n]], periods_per_year=ppy))
                  for n in baselines}  # fmt: skip
    ranked = sorted((n for n in baselines if math.isfinite(sharpe[n])), key=lambda n: -sharpe[n])
    out["best_baseline"] = ranked[0] if ranked else None
    jobs: list[tuple[str, str, str]] = []  # (row label, column key, reference name)
    for label in labels:
        for ref in PAIRED_REFERENCES:
            if ref in row and ref != label:
                jobs.append((label, ref, ref))
        best = next((n for n in ranked if n != label), None)
        if best is not None:
            jobs.append((label, "best_baseline", best))
    if not jobs:
        return out
    results = paired_sharpe_differences(
        np.stack(series), [(row[a], row[ref]) for a, _, ref in jobs], mean_block=b.mean_block,
        n_boot=b.n_boot, alpha=b.alpha, seed=b.seed, periods_per_year=ppy, names=labels,
    )  # fmt: skip
    for (label, key, ref), res in zip(jobs, results, strict=True):
        out["rows"].setdefault(label, {})[key] = {"reference": ref, **res.to_dict()}
    return out


# ----------------------------------------------------------------------------- results


@dataclass
class EvaluationResult:
    """Backtests of one evaluation, their metrics and the seed aggregates.

    Attributes
    ----------
    backtests : list of Backtest
    metrics : dict of str to dict
        :func:`backtest_metrics` per backtest name, plus ``dsr``, ``psr``.
    groups : dict of str to dict
        Per agent group with several seeds: ``n_seeds``, ``seeds``, and for every table
        metric ``{"mean": ..., "std": ...}`` (std with ddof=1).
    dsr : dict
        ``n_trials``, ``sr0`` (per period), ``sr0_annual``, ``trial_names`` (the agents
        evaluated), ``source`` (``ledger``, ``agent seeds`` or ``none``), ``weak``,
        ``sharpe_variance`` (per period) and ``sharpe_variance_annual`` of the trials'
        Sharpe ratios, ``n_trial_sharpes``, ``ledger`` (path or None), ``ledger_left_out``
        and ``ledger_unkeyed`` (its trials of another selection key, left out, and without
        a key, counted), ``n_selections``, ``note``, ``method`` (:func:`dsr_summary`).
    meta : dict
        Split, dates, config hash, run directory, market name.
    dashboard : dict
        :func:`dashboard_data` of the primary allocator.
    paired : dict
        :func:`paired_tests`: bootstrap Sharpe differences against 1/N, HRP and the best
        baseline.
    regime_risk : dict of str to dict
        :func:`regime_diagnostics` per backtest name (empty without the asset returns).
    benchmark : dict
        :func:`benchmark_summary`: the benchmark's own metrics and return series (empty
        without benchmark returns); every backtest's ``active_return``,
        ``tracking_error`` and ``information_ratio`` are in ``metrics``.
    var_backtest : dict of str to dict
        :func:`allocgym.var_backtest.backtest_var` per backtest name: out-of-sample
        breaches of the held book's historical, Gaussian and EVT VaR with Kupiec and
        Christoffersen tests (empty without the asset returns).
    pareto_fronts : dict of str to dict
        Per allocator that traces one (``pareto``): the front of its last rebalance, as
        its ``front_`` attribute (objectives per point and the chosen point).
    factor_attribution : dict of str to dict
        :func:`allocgym.factors.factor_attribution` per backtest name: its market return
        split into factor contributions and a specific part, per step and in total
        (empty without the asset returns).
    diagnostics : dict of str to dict
        Per backtest name: ``risk_budget`` (:func:`risk_budget_utilisation`),
        ``effective_factors`` (the book's mean effective number of principal-component
        factors, its diversification score) and ``var_coverage`` (VaR method -> share of
        forecasts not breached, from ``var_backtest``).
    """

    backtests: list[Backtest]
    metrics: dict[str, dict[str, Any]]
    groups: dict[str, dict[str, Any]]
    dsr: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    dashboard: dict[str, Any] = field(default_factory=dict)
    paired: dict[str, Any] = field(default_factory=dict)
    regime_risk: dict[str, dict[str, Any]] = field(default_factory=dict)
    benchmark: dict[str, Any] = field(default_factory=dict)
    var_backtest: dict[str, dict[str, Any]] = field(default_factory=dict)
    pareto_fronts: dict[str, dict[str, Any]] = field(default_factory=dict)
    factor_attribution: dict[str, dict[str, Any]] = field(default_factory=dict)
    diagnostics: dict[str, dict[str, Any]] = field(default_factory=dict)

    def backtest(self, name: str) -> Backtest:
        """The backtest called ``name``."""
        for bt in self.backtests:
            if bt.name == name:
                return bt
        raise KeyError(f"no backtest {name!r}; have {[b.name for b in self.backtests]}")

    @property
    def primary(self) -> Backtest:
        """The report's main allocator: the first agent (lowest seed), else the first row."""
        agents = [b for b in self.backtests if b.kind == "agent"]
        if agents:
            return sorted(agents, key=lambda b: (b.group, -1 if b.seed is None else b.seed))[0]
        return self.backtests[0]

    def table(self) -> list[dict[str, Any]]:
        """Rows of the metrics table: per backtest, then ``<group> (mean ± std)`` rows.

        Group rows hold ``(mean, std)`` tuples; other rows plain floats.
        """
        rows: list[dict[str, Any]] = []
        for bt in self.backtests:
            m = self.metrics[bt.name]
            rows.append({"allocator": bt.name, **{k: m.get(k) for k in TABLE_METRICS}})
        for g, agg in self.groups.items():
            label = f"{g} (mean ± std, {agg['n_seeds']} seeds)"
            rows.append(
                {"allocator": label, **{k: (agg[k]["mean"], agg[k]["std"]) for k in TABLE_METRICS}}
            )
        return rows

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable summary (``results.json``), return series included."""
        return {
            "meta": self.meta,
            "metrics": self.metrics,
            "groups": self.groups,
            "dsr": self.dsr,
            "paired_tests": self.paired,
            "regime_risk": self.regime_risk,
            "benchmark": self.benchmark,
            "var_backtest": self.var_backtest,
            "pareto_fronts": self.pareto_fronts,
            "factor_attribution": {
                name: {
                    **{
                        k: v
                        for k, v in fa.items()
                        if k not in ("per_period", "specific", "market_return")
                    },
                    "per_period": np.asarray(fa["per_period"]).tolist(),
                    "specific": np.asarray(fa["specific"]).tolist(),
                }
                for name, fa in self.factor_attribution.items()
            },
            "diagnostics": self.diagnostics,
            "dashboard": self.dashboard,
            "table_metrics": list(TABLE_METRICS),
            "series": {
                bt.name: {
                    "dates": [str(d)[:10] for d in bt.dates],
                    "returns": bt.returns.tolist(),
                    "equity": bt.equity.tolist(),
                }
                for bt in self.backtests
            },
        }


@dataclass(frozen=True, eq=False)
class DSRTrials:
    """The trials a Deflated Sharpe Ratio deflates by (:func:`dsr_trial_set`).

    Attributes
    ----------
    n_trials : int
        ``N``.
    sr0 : float
        Per-period ``SR_0``: expected maximum Sharpe ratio of ``N`` skill-less trials.
    sharpe_variance : float
        Variance (ddof=1) of the trials' per-period Sharpe ratios, pooled within the
        selections when there are several (NaN when unknown).
    n_sharpes : int
        Finite trial Sharpe ratios behind ``sharpe_variance`` (with several selections,
        those of a selection of one add nothing to it).
    source : {"ledger", "agent seeds", "none"}
    weak : bool
        True unless the ledger was used and its trials are not all seeds of one
        configuration: seeds differ by training noise only and leave out every
        configuration tried before, so ``SR_0`` is too low.
    trials : list of Backtest
        The agent backtests of this evaluation.
    ledger : str or None
        The ledger file read.
    note : str
        Why the ledger was not used, which of its trials were left out or counted without
        a selection key, how several selections were counted, or that ``N`` was
        overridden ('' when none of these).
    ledger_left_out : int
        Trials of the ledger left out: another market, split or validation split.
    ledger_unkeyed : int
        Trials of the ledger recorded without a selection key, counted.
    n_selections : int
        Selection problems (selection keys) of a ledger read without a key (a walk-forward
        study's folds; 1 for a keyed read or without a ledger): with several, ``N`` is
        the most trials of one, and ``V`` pooled within them when one has 2 scored trials
        (the note says which).
    """

    n_trials: int
    sr0: float
    sharpe_variance: float
    n_sharpes: int
    source: str
    weak: bool
    trials: list[Backtest]
    ledger: str | None
    note: str
    ledger_left_out: int = 0
    ledger_unkeyed: int = 0
    n_selections: int = 1


ONE_CONFIGURATION = (
    "weak: the ledger's trials are the seeds of one configuration (per selection), so V is "
    "training noise and the configurations tried before are not counted; record their runs "
    "in the ledger (evaluation.dsr_trials sets N only: the set stays weak)"
)
"""The note of a DSR whose ledger trials are seeds of one configuration
(:meth:`allocgym.ledger.TrialsLedger.one_configuration`)."""


def dsr_trial_set(
    backtests: Sequence[Backtest],
    ecfg: EvaluationConfig | None = None,
    ledger: TrialsLedger | str | Path | None = None,
    selection_key: str | None = None,
    runs: Sequence[str | Path] = (),
) -> DSRTrials:
    """Trials of the Deflated Sharpe Ratio: the study's ledger, else the agent seeds.

    The ledger's trials are those of the evaluated runs' ``selection_key``
    (:func:`allocgym.ledger.selection_key`: same market, splits and validation split);
    the note says how many others it holds (left out) and how many were recorded without
    a key (counted). With at least 2 such completed trials with a finite validation Sharpe
    ratio, ``N`` is their ``n_trials`` (at least the number of agents evaluated) and ``V``
    the variance of their Sharpe ratios, converted to per-period units
    (``SR_annual / sqrt(periods_per_year)``) like the Sharpe ratio being deflated.

    Read without a key (a walk-forward study's stitched series), a ledger of several
    selections (keys) is several selection problems, each on its own data: ``N`` is the
    most trials of one (plus the unkeyed ones, which could belong to any) and ``V`` the
    pooled variance within the selections (:func:`allocgym.stats.trial_sharpe_variance`;
    the unkeyed trials left out), or, when no selection has 2 scored trials, the
    variance across all of them (conservative: it includes the differences between
    their data).

    Ledger trials that are the seeds of one configuration (each selection's runs share
    one :func:`allocgym.ledger.configuration_id`) are flagged weak: their spread is
    training noise and the configurations tried before are not among them
    (:data:`ONE_CONFIGURATION`). Without 2 scored ledger trials the agent backtests
    evaluated together stand in (every seed and configuration; baselines are benchmarks,
    never trials), flagged as weak. ``ecfg.dsr_trials``, when set, overrides ``N``
    whatever the source.

    Parameters
    ----------
    backtests : sequence of Backtest
    ecfg : EvaluationConfig, optional
    ledger : TrialsLedger, path or None
        The study's ``trials.jsonl`` (or its directory).
    selection_key : str, optional
        The evaluated runs' selection key; None reads every trial of the ledger (by
        selection, as above).
    runs : sequence of paths
        The run directories of the agents evaluated: those the ledger does not name
        (killed before they could record themselves) are trials too, added to ``N`` with
        a note.

    Returns
    -------
    DSRTrials

    Raises
    ------
    ConfigError
        ``ecfg.dsr_trials`` is set but no ledger supplies the trials' Sharpe ratios and
        fewer than 2 agent backtests have a finite one, so their variance is unknown.
    DataError
        A corrupt ledger line.
    """
    e = ecfg or EvaluationConfig()
    trials = [bt for bt in backtests if bt.kind == "agent"]
    sharpes = [sharpe_moments(bt.returns)[0] for bt in trials]
    n_trials, source, notes = len(trials), "agent seeds" if trials else "none", []
    led = None
    scope = {"left_out": 0, "unkeyed": 0}
    groups: list[str] | None = None  # the ledger's selection of each Sharpe ratio
    selections = 1
    if isinstance(ledger, TrialsLedger):
        led = ledger if selection_key is None else TrialsLedger(ledger.path, selection_key)
    elif ledger is not None:
        led = TrialsLedger(ledger, selection_key)
    if led is not None:
        scope = led.selection_counts()
        if scope["left_out"]:
            notes.append(
                f"{scope['left_out']} trial(s) of the ledger left out: another market, split "
                "or validation split (selection_key)"
            )
        if scope["unkeyed"]:
            notes.append(
                f"{scope['unkeyed']} trial(s) of the ledger carry no selection_key and are "
                "counted: remove their lines if they belong to another market or split"
            )
        ledger_sharpes, keys = led.scored_trials(per_period=True)
        per_key = led.trials_per_key() if led.selection_key is None else {}
        unkeyed = per_key.pop("", 0)
        # Several selection problems (a walk-forward study's folds, read without a key):
        # each chose among its own trials on its own data, so N is the most trials of one,
        # and V the spread within each, not the differences between their data.
        several = len(per_key) > 1
        selections = max(1, len(per_key))
        if ledger_sharpes.size >= 2 and several:
            source = "ledger"
            n_trials = max(per_key.values()) + unkeyed
            scored = [(sr, k) for sr, k in zip(ledger_sharpes.tolist(), keys, strict=True) if k]
            pooled = [sr for sr, _ in scored], [k for _, k in scored]
            if trial_sharpe_variance(*pooled) >= 0.0:
                sharpes, groups = pooled
                notes.append(
                    f"{selections} selections in the ledger (selection_key): N = the most "
                    "trials of one, V = the variance of the trials' Sharpe ratios within each"
                )
            else:
                sharpes = ledger_sharpes.tolist()
                notes.append(
                    f"{selections} selections in the ledger (selection_key), none with 2 "
                    "scored trials: N = the most trials of one, V across all of them (it "
                    "then includes the differences between their data: SR_0 is conservative)"
                )
            if unkeyed:
                scope["unkeyed"] = unkeyed
                notes.append(
                    f"{unkeyed} trial(s) of the ledger carry no selection_key: counted in "
                    "the N of every selection"
                    + (", left out of V (their selection is unknown)" if groups else "")
                )
            # (no check against the agents evaluated: their backtests carry no key)
        elif ledger_sharpes.size >= 2:
            sharpes, source = ledger_sharpes.tolist(), "ledger"
            n_trials = led.n_trials
            if n_trials < len(trials):
                notes.append(
                    f"the ledger lists {n_trials} trials but {len(trials)} agents were "
                    f"evaluated: N = {len(trials)} (record every run in the ledger)"
                )
                n_trials = len(trials)
        else:
            notes.append(
                f"ledger {str(led.path)!r} holds {ledger_sharpes.size} completed trial(s)"
                f"{'' if led.selection_key is None else ' of this market and split'} with a "
                "finite val_sharpe, 2 are needed for their variance: the agent seeds stand in"
            )
    missing = led.unrecorded(runs) if led is not None else []
    if missing:
        counted = source == "ledger" and e.dsr_trials is None
        if counted:
            n_trials += len(missing)
        notes.append(
            f"{len(missing)} evaluated run(s) are not in the ledger ({missing[:3]}): killed "
            "before they could record themselves; "
            + ("counted in N" if counted else "the ledger's N may be short")
        )
    seeds_only = source == "ledger" and led is not None and led.one_configuration()
    if seeds_only:
        notes.append(ONE_CONFIGURATION)
    evaluations = led.most_evaluations() if source == "ledger" and led is not None else 0
    if evaluations > 1:
        notes.append(
            f"each trial's val_sharpe is the best of up to {evaluations} validation runs of "
            "its checkpoints (train.eval_freq); N counts runs, not those checkpoints, so "
            "SR_0 understates the selection: read the DSR as an upper bound"
        )
    finite = [s for s in sharpes if math.isfinite(s)]
    if e.dsr_trials is not None:
        if len(finite) < 2:
            raise ConfigError(
                f"evaluation.dsr_trials = {e.dsr_trials} needs the variance of the trials' "
                f"Sharpe ratios, estimated from the agent seeds evaluated together, but only "
                f"{len(finite)} of the {len(trials)} agent backtests ({[bt.name for bt in trials]}) "
                "have a finite Sharpe ratio: evaluate at least 2 agent seeds that trade, "
                "record the study's trials in a trials.jsonl ledger, or unset "
                "evaluation.dsr_trials"
            )
        notes.append(f"N = {e.dsr_trials} from evaluation.dsr_trials ({source}: {n_trials})")
        n_trials = int(e.dsr_trials)
    return DSRTrials(
        n_trials=n_trials,
        sr0=expected_max_sharpe(sharpes, n_trials, groups),
        sharpe_variance=trial_sharpe_variance(sharpes, groups),
        n_sharpes=len(finite),
        source=source,
        weak=source != "ledger" or seeds_only,
        trials=trials,
        ledger=None if led is None else str(led.path),
        note="; ".join(notes),
        ledger_left_out=scope["left_out"],
        ledger_unkeyed=scope["unkeyed"],
        n_selections=selections,
    )


def _seed_groups(
    backtests: Sequence[Backtest], metrics: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per agent group of at least two seeds: its seeds and members, and the mean and
    std (ddof = 1) over the seeds of every ``TABLE_METRICS`` column."""
    groups: dict[str, dict[str, Any]] = {}
    for g, members in _agent_groups(backtests).items():
        if len(members) < 2:
            continue
        agg: dict[str, Any] = {
            "n_seeds": len(members),
            "seeds": [m.seed for m in members],
            "members": [m.name for m in members],
        }
        for key in TABLE_METRICS:
            vals = np.array([metrics[m.name][key] for m in members], dtype=np.float64)
            agg[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1))}
        groups[g] = agg
    return groups


def dsr_summary(ts: DSRTrials, ppy: float) -> dict[str, Any]:
    """The DSR's trial set for the report: N, ``SR_0`` (per period and annualised with
    ``ppy``), where the trials came from and the method in words."""
    return {
        "n_trials": ts.n_trials,
        "sr0": ts.sr0,
        "sr0_annual": ts.sr0 * math.sqrt(ppy),
        "trial_names": [bt.name for bt in ts.trials],
        "source": ts.source,
        "weak": ts.weak,
        "sharpe_variance": ts.sharpe_variance,
        "sharpe_variance_annual": ts.sharpe_variance * ppy,
        "n_trial_sharpes": ts.n_sharpes,
        "ledger": ts.ledger,
        "ledger_left_out": ts.ledger_left_out,
        "ledger_unkeyed": ts.ledger_unkeyed,
        "n_selections": ts.n_selections,
        "note": ts.note,
        "method": "Bailey & Lopez de Prado (2014): PSR against the expected maximum Sharpe "
        "of N skill-less trials, with per-period Sharpe ratios throughout; the trials are "
        "every configuration trained in the study on the same market, splits and validation "
        "split (trials ledger: N = completed and stopped "
        "trials, variance of the completed trials' validation Sharpe ratios; a ledger of "
        "several such selections, as a walk-forward study's folds: N = the most trials of "
        "one, variance pooled within each; weak when the trials are the seeds of one "
        "configuration), or, without a "
        "ledger, the agent seeds evaluated together (weak: it misses the configurations "
        "tried before); evaluation.dsr_trials overrides N; baselines are benchmarks, not "
        "trials",
    }


def _market_risk(
    backtests: Sequence[Backtest],
    asset_returns: np.ndarray | None,
    risk_window: int | None,
    e: EvaluationConfig,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[str, Any]]:
    """Regime diagnostics and VaR backtest of every backtest on the walk's market returns
    (none without them), and the meta entries they add."""
    regime_risk: dict[str, dict[str, Any]] = {}
    var_bt: dict[str, dict[str, Any]] = {}
    meta: dict[str, Any] = {}
    if asset_returns is None:
        return regime_risk, var_bt, meta
    window = EnvConfig().cvar_window if risk_window is None else int(risk_window)
    regime_risk = {
        bt.name: regime_diagnostics(
            bt,
            asset_returns,
            window,
            periods_per_year=annualisation(e, bt.dates),
            alpha=e.cvar_alpha,
        )
        for bt in backtests
    }
    meta.update(risk_window=window, cvar_alpha=float(e.cvar_alpha))
    var_bt = {
        bt.name: backtest_var(bt, asset_returns, e.var_window, e.var_alpha) for bt in backtests
    }
    return regime_risk, var_bt, meta


def summarize(
    backtests: Sequence[Backtest],
    ecfg: EvaluationConfig | None = None,
    *,
    ledger: TrialsLedger | str | Path | None = None,
    asset_returns: np.ndarray | None = None,
    risk_window: int | None = None,
    benchmark_returns: np.ndarray | None = None,
    benchmark_name: str = "benchmark",
    factors: FactorReturns | None = None,
    factor_model: FactorModelConfig | None = None,
    factor_window: int = 252,
    risk: RiskConfig | None = None,
    selection_key: str | None = None,
    runs: Sequence[str | Path] = (),
) -> EvaluationResult:
    """Metrics, PSR and DSR of every backtest, seed stats, paired tests, regime risk, the
    VaR backtest (``ecfg.var_alpha``, ``ecfg.var_window``), the factor attribution, the
    risk diagnostics and the comparison with the benchmark.

    Every row's DSR is its PSR against the same ``SR_0`` of :func:`dsr_trial_set` (the
    ledger's trials, else the agent backtests; baselines are no trials). The paired
    bootstrap tests are :func:`paired_tests`.

    Parameters
    ----------
    backtests : sequence of Backtest
        Unique names.
    ecfg : EvaluationConfig, optional
    ledger : TrialsLedger, path or None
        The study's trials ledger (the DSR's trials).
    selection_key : str, optional
        The evaluated runs' :func:`allocgym.ledger.selection_key`: the ledger's trials of
        another one are left out of the DSR (None reads them all, by selection: see
        :func:`dsr_trial_set`).
    runs : sequence of paths
        The agents' run directories: those the ledger lacks count as trials
        (:func:`dsr_trial_set`).
    asset_returns : ndarray, shape (n_days, n_assets), optional
        The walk's market returns: :func:`regime_diagnostics` and
        :func:`allocgym.var_backtest.backtest_var` per backtest when given.
    risk_window : int, optional
        Scenario bars of the regime diagnostics (default ``EnvConfig().cvar_window``).
    benchmark_returns : ndarray, shape (n_steps,), optional
        The benchmark's simple return over each step of the walk (bar ``bars[k] + 1``:
        ``MarketData.benchmark_returns[bt.bars + 1]``): :func:`active_metrics` per
        backtest and :func:`benchmark_summary`.
    benchmark_name : str
        Label of the benchmark in the report.
    factors : FactorReturns, optional
        User factor returns aligned to the market (``allocgym.data.load_factor_returns``);
        None = statistical (PCA) factors.
    factor_model : FactorModelConfig, optional
        PCA rule and refit interval of the attribution (default settings).
    factor_window : int
        Trailing bars of each factor fit (``factor_model.window`` overrides it).
    risk : RiskConfig, optional
        The gates' limits: the budgets of :func:`risk_budget_utilisation` (default
        ``RiskConfig()``).
    """
    e = ecfg or EvaluationConfig()
    ppy = _checked_annualisation(e, backtests[0].dates if backtests else ())
    metrics = {bt.name: backtest_metrics(bt, e) for bt in backtests}
    bench: dict[str, Any] = {}
    if benchmark_returns is not None and backtests:
        b = np.asarray(benchmark_returns, dtype=np.float64)
        bench = benchmark_summary(b, backtests[0].dates, e, benchmark_name)
        for bt in backtests:
            if bt.n_steps == b.shape[0]:
                metrics[bt.name].update(active_metrics(bt.returns, b, annualisation(e, bt.dates)))
    if len(metrics) != len(backtests):
        raise ConfigError(
            f"backtest names must be unique, got {[bt.name for bt in backtests]}: rename them"
        )
    ts = dsr_trial_set(backtests, e, ledger, selection_key, runs)
    for bt in backtests:
        sr, skew, kurt, n = sharpe_moments(bt.returns)
        metrics[bt.name]["dsr"] = probabilistic_sharpe_ratio(sr, n, skew, kurt, ts.sr0)
        metrics[bt.name]["psr"] = probabilistic_sharpe_ratio(sr, n, skew, kurt, 0.0)
        metrics[bt.name]["dsr_trials"] = ts.n_trials
        metrics[bt.name]["dsr_source"] = ts.source
    groups = _seed_groups(backtests, metrics)
    dsr = dsr_summary(ts, ppy)
    regime_risk, var_bt, meta = _market_risk(backtests, asset_returns, risk_window, e)
    meta["periods_per_year"] = ppy
    attribution, diagnostics = _factor_diagnostics(
        backtests, asset_returns, factors, factor_model or FactorModelConfig(), factor_window,
        risk or RiskConfig(), var_bt, meta,
    )  # fmt: skip
    return EvaluationResult(
        list(backtests), metrics, groups, dsr, meta=meta, paired=paired_tests(backtests, e),
        regime_risk=regime_risk, benchmark=bench, var_backtest=var_bt,
        factor_attribution=attribution, diagnostics=diagnostics,
    )  # fmt: skip


def risk_budget_utilisation(bt: Backtest, risk: RiskConfig) -> dict[str, Any]:
    """Used risk over its budget, per strategy family and in total (mean and peak).

    The budgets the gates enforce are gross-exposure budgets, so risk is measured in the
    same unit: in total the held book's gross ``sum |w|`` over ``risk.max_gross`` (the
    budget before the regime multiplier, so a regime cut shows as utilisation below 1);
    per strategy family (``budgets`` action mode only) its share of the approved book
    (``Backtest.strategy_gross``) over the budget ``STRATEGY_CAP`` enforced at that
    decision (base x regime multiplier x tilt x capacity factor; decisions with a zero
    budget left out).

    Returns
    -------
    dict
        ``total``: ``{"mean", "max"}``; ``families``: family -> ``{"mean", "max"}`` (empty
        outside ``budgets`` mode).
    """
    gross = np.abs(bt.weights).sum(axis=1) / float(risk.max_gross)
    out: dict[str, Any] = {
        "total": {
            "mean": float(gross.mean()) if bt.n_steps else float("nan"),
            "max": float(gross.max()) if bt.n_steps else float("nan"),
        },
        "families": {},
    }
    if bt.strategy_gross is not None and bt.strategy_budget is not None and bt.n_steps:
        budget = bt.strategy_budget[:, :, STRATEGY_BUDGET_STEPS.index("capacity")]
        for j, name in enumerate(bt.strategy_names):
            live = budget[:, j] > 0.0
            used = bt.strategy_gross[live, j] / budget[live, j]
            out["families"][name] = {
                "mean": float(used.mean()) if used.size else float("nan"),
                "max": float(used.max()) if used.size else float("nan"),
            }
    return out


def _factor_diagnostics(
    backtests: Sequence[Backtest], asset_returns: np.ndarray | None,
    factors: FactorReturns | None, fm: FactorModelConfig, window: int, risk: RiskConfig,
    var_bt: dict[str, dict[str, Any]], meta: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:  # fmt: skip
    attribution: dict[str, dict[str, Any]] = {}
    diagnostics: dict[str, dict[str, Any]] = {}
    window = int(fm.window or window)
    models: dict[bytes, Any] = {}
    for bt in backtests:
        entry: dict[str, Any] = {"risk_budget": risk_budget_utilisation(bt, risk)}
        vb = var_bt.get(bt.name)
        if vb is not None:
            entry["var_coverage"] = {
                m: 1.0 - float(vb[m]["rate"]) if vb[m]["n_obs"] else float("nan")
                for m in ("historical", "gaussian", "evt")
            }
            entry["var_alpha"] = float(vb["alpha"])
        if asset_returns is not None and bt.n_steps:
            key = np.asarray(bt.bars, dtype=np.int64).tobytes()
            if key not in models:
                models[key] = factor_models(
                    asset_returns, bt.bars, window, factors=factors,
                    variance_threshold=fm.variance_threshold, max_factors=fm.max_factors,
                    refit_every=fm.refit_every,
                )  # fmt: skip
            fa = factor_attribution(bt.held, bt.asset_pnl, models[key])
            fa["costs"] = float(bt.cost_pnl.sum())
            attribution[bt.name] = fa
            entry["effective_factors"] = fa["effective_factors"]
        diagnostics[bt.name] = entry
    if models:
        first = next(iter(models.values()))
        meta.update(
            factor_source="user" if factors is not None else "pca",
            factor_window=window,
            factor_refit_every=int(fm.refit_every),
            universe_effective_factors=float(np.nanmean(first.universe_effective)),
        )
    return attribution, diagnostics


def active_metrics(
    returns: np.ndarray, benchmark: np.ndarray, periods_per_year: float = 252.0
) -> dict[str, float]:
    """Performance against a benchmark over the same bars.

    Parameters
    ----------
    returns, benchmark : ndarray, shape (n_steps,)
        Simple decimal returns per bar of the portfolio and of the benchmark.
    periods_per_year : float

    Returns
    -------
    dict
        ``active_return``: annualised return minus the benchmark's (geometric, decimal);
        ``tracking_error``: ``std(r - b, ddof=1) * sqrt(periods_per_year)``;
        ``information_ratio``: ``mean(r - b) / std(r - b, ddof=1) * sqrt(periods_per_year)``
        (NaN with fewer than 2 bars or a zero tracking error).
    """
    r = np.asarray(returns, dtype=np.float64)
    b = np.asarray(benchmark, dtype=np.float64)
    active = r - b
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "active_return": _f(measures.annualized_return(r, periods_per_year))
            - _f(measures.annualized_return(b, periods_per_year)),
            "tracking_error": _f(measures.annualized_volatility(active, periods_per_year)),
            "information_ratio": _f(
                measures.sharpe_ratio(active, periods_per_year=periods_per_year)
            ),
        }


def benchmark_summary(
    returns: np.ndarray, dates: np.ndarray, ecfg: EvaluationConfig, name: str
) -> dict[str, Any]:
    """The benchmark's metrics over the walk and its return series (for the report)."""
    ppy = annualisation(ecfg, dates)
    r = np.asarray(returns, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "name": name,
            "ann_return": _f(measures.annualized_return(r, ppy)),
            "ann_volatility": _f(measures.annualized_volatility(r, ppy)),
            "sharpe": _f(measures.sharpe_ratio(r, periods_per_year=ppy)),
            "max_drawdown": _f(measures.max_drawdown(r)),
            "total_return": float(np.prod(1.0 + r) - 1.0),
            "dates": [str(d)[:10] for d in dates],
            "returns": r.tolist(),
        }


def dashboard_data(bt: Backtest, params: EnvParams) -> dict[str, Any]:
    """The cluster dashboard's view of a backtest's final book.

    Clusters are cut, as the cluster barbell does, from the correlation distance of the
    trailing ``cfg.baselines.lookback`` returns up to the last bar (``barbell`` settings:
    covariance estimator, linkage, number of clusters); each cluster's *lead asset* is its
    member with the best cumulative return over ``barbell.lead_window`` bars. The latest
    rebalancing signals are the trades of the last bar that traded.

    Returns
    -------
    dict
        ``allocator``, ``date``; ``clusters``: list of {id, members, gross, net, lead};
        ``assets``: list of {symbol, weight, cluster, lead, signal (BUY/SELL/HOLD), trade};
        ``signal_date``, ``symbol_cap``, ``cluster_cap``, ``lead_window``.
    """
    from allocgym.baselines.cluster_barbell import cluster_assets
    from allocgym.estimates import correlation_distance, cov_to_corr, estimate_covariance

    cfg = params.cfg
    bb = cfg.baselines.barbell
    n = params.n_assets
    symbols = tuple(params.market.symbols)
    if bt.n_steps == 0:
        return {"date": "", "clusters": [], "assets": [], "signal_date": ""}
    end = int(bt.bars[-1]) + 1
    look = int(min(cfg.baselines.lookback, end + 1))
    r = params.returns[end - look + 1 : end + 1]
    active = np.std(r, axis=0, ddof=1) > 1e-8
    labels = np.full(n, -1, dtype=np.int64)
    idx = np.flatnonzero(active)
    if idx.size:
        cov = estimate_covariance(r[:, idx], bb.covariance, bb.halflife)
        dist = correlation_distance(cov_to_corr(cov))
        labels[idx] = cluster_assets(dist, bb.linkage, bb.n_clusters, bb.distance_threshold)
    lw = int(min(bb.lead_window, look))
    perf = np.prod(1.0 + r[-lw:], axis=0) - 1.0
    w = bt.weights[-1]
    clusters: list[dict[str, Any]] = []
    lead = np.zeros(n, dtype=bool)
    for c in range(int(labels.max()) + 1 if idx.size else 0):
        members = np.flatnonzero(labels == c)
        best = int(members[np.argmax(perf[members])])
        lead[best] = True
        clusters.append(
            {
                "id": c,
                "members": [symbols[i] for i in members],
                "gross": float(np.abs(w[members]).sum()),
                "net": float(w[members].sum()),
                "lead": symbols[best],
            }
        )
    traded = np.flatnonzero(np.abs(bt.trades).sum(axis=1) > 0)
    k = int(traded[-1]) if traded.size else -1
    trade = bt.trades[k] if k >= 0 else np.zeros(n)
    assets = [
        {
            "symbol": symbols[i],
            "weight": float(w[i]),
            "cluster": int(labels[i]),
            "lead": bool(lead[i]),
            "trade": float(trade[i]),
            "signal": "BUY" if trade[i] > 0 else "SELL" if trade[i] < 0 else "HOLD",
        }
        for i in range(n)
    ]
    return {
        "allocator": bt.name,
        "date": str(params.market.dates[end])[:10],
        "signal_date": str(bt.dates[k])[:10] if k >= 0 else "",
        "clusters": clusters,
        "assets": assets,
        "symbol_cap": float(cfg.risk.max_symbol_weight),
        "cluster_cap": float(bb.cluster_cap),
        "lead_window": lw,
    }


def evaluate(
    allocators: Sequence[Allocator | Policy],
    market: MarketData | None = None,
    cfg: AllocgymConfig | None = None,
    split: Any = None,
    *,
    params: EnvParams | None = None,
    progress: Callable[[int, int], None] | None = None,
    ledger: TrialsLedger | str | Path | None = None,
    runner: Callable[..., list[Backtest]] | None = None,
) -> EvaluationResult:
    """Backtest ``allocators`` together (:func:`run_allocators`) and summarise them.

    ``ledger`` (default ``cfg.evaluation.trials_ledger``) is the study's trials ledger
    the DSR reads its trials from (:func:`dsr_trial_set`): those of the selection key of
    ``cfg`` on this market (:func:`allocgym.ledger.selection_key`).
    ``runner(allocators, params, progress)`` walks them instead of :func:`run_allocators`
    in this process (e.g. :class:`allocgym.distributed.RayRunAllocators`: chunks of them
    as Ray tasks); it returns the backtests in the order of ``allocators``.

    Agents (trained with ``cfg``) are walked only on a split out of sample for them
    (:func:`allocgym.config.check_out_of_sample`, ``ConfigError`` otherwise); baselines
    walk any split, and ``meta["in_sample"]`` says when it overlaps the config's training
    or model-selection split (None when out of sample).
    """
    cfg = cfg or (params.cfg if params is not None else AllocgymConfig())
    if params is None:
        market = load_market(cfg.data) if market is None else market
        params = evaluation_params(market, cfg, split)
    if any(_is_agent(a) for a in allocators):
        check_out_of_sample(cfg, params.split.name)
    market = params.market
    factors = None
    if cfg.data.factors is not None:
        # read before the walk: a bad factor file is refused in seconds, not after it
        from allocgym.data import load_factor_returns

        factors = load_factor_returns(cfg.data.factors, market)
    if runner is None:
        bts = run_allocators(allocators, params=params, progress=progress)
    else:
        bts = runner(allocators, params, progress)
    ledger = cfg.evaluation.trials_ledger if ledger is None else ledger
    key = None if ledger is None else run_selection_key(cfg, market_fingerprint(market))
    bench = market.benchmark_returns[bts[0].bars + 1] if bts else None
    result = summarize(
        bts, cfg.evaluation, ledger=ledger, asset_returns=params.returns,
        risk_window=cfg.env.cvar_window, benchmark_returns=bench,
        benchmark_name=benchmark_label(market), factors=factors,
        factor_model=cfg.baselines.factor_model, factor_window=cfg.baselines.lookback,
        risk=cfg.risk, selection_key=key,
        runs=[a.source for a in allocators if getattr(a, "source", None)],
    )  # fmt: skip
    result.dashboard = dashboard_data(result.primary, params) if bts else {}
    for a, bt in zip(allocators, bts, strict=True):
        front = getattr(a, "front_", None)
        if isinstance(front, dict):
            front = dict(front)
            if "bar" in front:
                front["date"] = str(params.market.dates[front["bar"]])[:10]
            result.pareto_fronts[bt.name] = front
    if bts and bts[0].n_steps:
        result.meta.update(
            start=str(bts[0].dates[0])[:10],
            end=str(bts[0].dates[-1])[:10],
            n_bars=bts[0].n_steps,
            # the bar the walk starts on (from cash): the equity curves' first point
            walk_start=str(params.market.dates[bts[0].bars[0]]),
        )
    sp = params.split
    from allocgym.config import config_hash

    result.meta.update(
        split=sp.name,
        in_sample=in_sample_reason(cfg, sp.name),
        cvar_alpha=float(cfg.evaluation.cvar_alpha),  # the report's CVaR column label
        split_bars=[int(sp.start), int(sp.stop)],
        first_decision_bar=int(params.lo),
        market=params.market.name,
        n_assets=params.n_assets,
        symbols=list(params.market.symbols),
        config_hash=config_hash(cfg),
        rebalance_every=int(cfg.baselines.rebalance_every),
        decision_interval=int(params.decision_interval),
        drawdown_kill=float(params.cfg.env.drawdown_kill),
        wiped_out={
            bt.name: str(bt.dates[bt.wiped_out_at])[:10]
            for bt in bts
            if bt.wiped_out_at is not None
        },
        initial_equity=float(cfg.env.initial_equity),
        action_mode=params.action_spec.mode,
        data_notes=data_notes(market, cfg),
    )
    return result


def benchmark_label(market: MarketData) -> str:
    """The benchmark's name in the report: the S&P 500 index for the bundled sample, the
    equal-weighted mean of the asset returns when the source had none."""
    if "benchmark_returns" in market.defaulted:
        return "equal-weighted mean of the assets (the data has no benchmark)"
    if market.name == "sp500":
        return "S&P 500 index"
    if market.regimes is not None:  # the synthetic generator's benchmark
        return "equal-weighted mean of the assets (synthetic data)"
    return "benchmark"


def data_notes(market: MarketData, cfg: AllocgymConfig) -> list[str]:
    """What the run's results rest on that the user did not choose: limits that do not
    apply (no sectors), splits from fractions, defaulted fields (shown in the report)."""
    from allocgym.data import sector_cap_note, split_note

    notes = [sector_cap_note(market)]
    with contextlib.suppress(DataError):
        notes.append(split_note(market, cfg.data.splits))
    if market.defaulted:
        notes.append("fields filled with documented defaults: " + ", ".join(market.defaulted))
    return [n for n in notes if n]


# ----------------------------------------------------------------------------- runs


def find_agent_runs(
    path: str | Path, seeds: Iterable[int] | None = None
) -> list[tuple[int | None, Path]]:
    """Training runs under ``path``: the run itself, or its ``seed_<k>`` sub-runs.

    Parameters
    ----------
    path : path
        A run directory (``config.yaml`` and ``best/`` or ``final/``) or a folder of
        ``seed_*`` runs (``allocgym quickstart --seeds``).
    seeds : iterable of int, optional
        Keep only these training seeds.

    Returns
    -------
    list of (seed, Path)
        Sorted by seed.

    Raises
    ------
    ConfigError
        No run found, or a requested seed missing.
    """
    root = Path(path)

    def is_run(p: Path) -> bool:
        return (p / "config.yaml").is_file() and any(
            (p / w / "model.zip").is_file() for w in ("best", "final")
        )

    found: list[tuple[int | None, Path]] = []
    if is_run(root):
        from allocgym.agents import load_run_config

        found.append((int(load_run_config(root).train.seed), root))
    else:
        for sub in sorted(root.glob("seed_*")):
            if is_run(sub):
                from allocgym.agents import load_run_config

                found.append((int(load_run_config(sub).train.seed), sub))
    if not found:
        raise ConfigError(
            f"{str(root)!r} holds no trained run (config.yaml with best/ or final/model.zip) "
            "and no seed_*/ runs: pass a directory written by `allocgym train` or "
            "`allocgym quickstart`"
        )
    if seeds is not None:
        want = [int(s) for s in seeds]
        have = {s for s, _ in found}
        missing = [s for s in want if s not in have]
        if missing:
            raise ConfigError(
                f"seeds {missing} not found under {str(root)!r} (have {sorted(have)}): pass "
                "--seeds from those"
            )
        found = [(s, p) for s, p in found if s in want]
    return sorted(found, key=lambda sp: -1 if sp[0] is None else sp[0])


def load_policies(
    runs: Sequence[tuple[int | None, Path]], params: EnvParams, which: str = "best"
) -> list[PolicyAllocator]:
    """``SB3PolicyAllocator`` per run, labelled ``<algo>_seed<k>`` in group ``<algo>``.

    ``which = "best"`` falls back to ``final`` for a run without a best model.
    """
    from allocgym.agents import SB3PolicyAllocator, load_agent

    out: list[PolicyAllocator] = []
    for seed, path in runs:
        w = which if (path / which / "model.zip").is_file() else "final"
        step = checkpoint_step(path, w)
        model, vn, run_cfg = load_agent(path, w, device="cpu")
        algo = run_cfg.train.algo
        pol = SB3PolicyAllocator(model, vn, params.action_spec, name=f"{algo}_seed{seed}")
        if pol.obs_dim != params.obs_dim:
            raise ConfigError(
                f"run {str(path)!r} was trained on observations of size {pol.obs_dim}, the "
                f"evaluation env has {params.obs_dim}: evaluate it with its own config"
            )
        pol.group = algo  # type: ignore[attr-defined]
        pol.seed = seed  # type: ignore[attr-defined]
        pol.source = str(path)  # type: ignore[attr-defined]
        pol.checkpoint = w  # type: ignore[attr-defined]
        pol.checkpoint_step = step  # type: ignore[attr-defined]
        out.append(pol)
    return out


def checkpoint_step(run: str | Path, which: str) -> int | None:
    """Training step of a run's ``best`` or ``final`` model, from ``train_summary.json``
    (``best_step`` / ``num_timesteps``); None when the run has no summary."""
    import json

    path = Path(run) / "train_summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    value = summary.get("best_step" if which == "best" else "num_timesteps")
    return None if value is None else int(value)


def expand_run_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Run directories from paths and glob patterns (``runs/ppo-*``), in order, unique.

    Raises
    ------
    ConfigError
        A path that does not exist, or a pattern that matches nothing.
    """
    import glob

    items = [paths] if isinstance(paths, str | Path) else list(paths)
    out: list[Path] = []
    for item in items:
        text = str(item)
        if any(ch in text for ch in "*?["):
            found = [Path(p) for p in sorted(glob.glob(text)) if Path(p).is_dir()]
            if not found:
                raise ConfigError(f"--run {text!r} matches no directory: check the pattern")
        else:
            if not Path(text).is_dir():
                raise ConfigError(
                    f"run directory {text!r} does not exist: pass a directory written by "
                    "`allocgym train`, `allocgym quickstart` or `allocgym export`"
                )
            found = [Path(text)]
        out += [p for p in found if p not in out]
    if not out:
        raise ConfigError("no run directory given: pass --run DIR (repeatable, or a glob)")
    return out


def find_runs(
    paths: str | Path | Sequence[str | Path], seeds: Iterable[int] | None = None
) -> list[tuple[int | None, Path]]:
    """:func:`find_agent_runs` over several run directories (or glob patterns): the
    separately trained seeds of one configuration. Two runs with one seed are refused."""
    roots = expand_run_paths(paths)
    found: list[tuple[int | None, Path]] = []
    for root in roots:
        found += find_agent_runs(root)
    wanted = None if seeds is None else {int(s) for s in seeds}
    seen: dict[int | None, Path] = {}
    for seed, path in found:
        if seed in seen and (wanted is None or seed in wanted):
            raise ConfigError(
                f"runs {str(seen[seed])!r} and {str(path)!r} were both trained with seed "
                f"{seed}: evaluate them separately, or pick other seeds with --seeds"
            )
        seen[seed] = path
    if seeds is not None:
        want = [int(s) for s in seeds]
        missing = [s for s in want if s not in seen]
        if missing:
            raise ConfigError(
                f"seeds {missing} not found under {[str(r) for r in roots]} (have "
                f"{sorted(s for s in seen if s is not None)}): pass --seeds from those"
            )
        found = [(s, p) for s, p in found if s in want]
    return sorted(found, key=lambda sp: -1 if sp[0] is None else sp[0])


def run_config(
    runs: Sequence[tuple[int | None, Path]], overrides: Sequence[str] = ()
) -> AllocgymConfig:
    """The config the runs were trained with (the first seed's), with overrides.

    Raises ``ConfigError`` when the seeds' configs differ beyond ``train.seed``.
    """
    from allocgym.agents import load_run_config

    cfgs = [load_run_config(p, list(overrides)) for _, p in runs]
    base = cfgs[0]

    def key(c: AllocgymConfig) -> dict[str, Any]:
        d = c.model_dump(mode="json")
        d["train"].pop("seed", None)
        return d

    for (_, p), c in zip(runs[1:], cfgs[1:], strict=True):
        if key(c) != key(base):
            raise ConfigError(
                f"run {str(p)!r} was trained with a different config than {str(runs[0][1])!r} "
                "(beyond train.seed): evaluate the runs separately"
            )
    return base


def prepare_run(
    run_dir: str | Path | Sequence[str | Path],
    *,
    seeds: Iterable[int] | None = None,
    overrides: Sequence[str] = (),
) -> tuple[AllocgymConfig, list[tuple[int | None, Path]], list[Any]]:
    """The config, the runs and (frozen bundle only) the policies :func:`evaluate_run`
    evaluates; raises before any backtest when a directory holds no run."""
    roots = expand_run_paths(run_dir)
    if len(roots) == 1 and (roots[0] / "manifest.json").is_file():
        if seeds is not None:
            raise ConfigError(
                f"{str(roots[0])!r} is a frozen bundle, one policy: seeds select among a "
                "study's training runs; drop --seeds"
            )
        cfg, policies = _frozen_policies(roots[0], overrides)
        return cfg, [(None, roots[0])], policies
    runs = find_runs(roots, seeds)
    return run_config(runs, overrides), runs, []


def study_ledger(cfg: AllocgymConfig, run_dir: str | Path) -> str | Path | None:
    """The trials ledger of a run's DSR: ``cfg.evaluation.trials_ledger``, else
    ``trials.jsonl`` in ``run_dir``, its parent or its grandparent
    (:func:`allocgym.ledger.find_ledger`), else None (the agent seeds stand in)."""
    return cfg.evaluation.trials_ledger or find_ledger(run_dir)


def check_policies_unseen(policies: Sequence[Any], params: EnvParams) -> None:
    """Refuse to report ``params``' split for an agent that trained or was selected on any
    of its bars (a run's ``data.json``, a bundle's ``run.data``;
    :func:`allocgym.ledger.check_unseen_bars`).

    Raises
    ------
    ConfigError
    """
    for pol in policies:
        frozen, source = getattr(pol, "policy", None), getattr(pol, "source", None)
        if frozen is None and source is None:
            continue  # an agent from neither a run directory nor a bundle: no record
        record, what = (
            (read_run_data(source), f"run {source!r}")
            if frozen is None
            else (frozen.manifest.get("run", {}).get("data"), f"bundle {str(frozen.path)!r}")
        )
        split = params.split
        check_unseen_bars(record, params.market, split.start, split.stop, what)


def evaluate_run(
    run_dir: str | Path | Sequence[str | Path],
    *,
    split: str | None = None,
    baselines: str | Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
    overrides: Sequence[str] = (),
    market: MarketData | None = None,
    progress: Callable[[int, int], None] | None = None,
    ledger: TrialsLedger | str | Path | None = None,
    runner: Callable[..., list[Backtest]] | None = None,
) -> EvaluationResult:
    """Evaluate the agent(s) of a run directory against baselines on one split.

    Parameters
    ----------
    run_dir : path, or sequence of paths and glob patterns
        A training run, a folder of ``seed_*`` runs, several of them (separately trained
        seeds of one configuration), or a frozen policy directory (``manifest.json``;
        evaluated through ``allocgym.serving``).
    split : str, optional
        Default ``cfg.evaluation.split`` (``test``); it must be out of sample for the
        agents (:func:`allocgym.config.check_out_of_sample`).
    baselines : str or iterable of str, optional
        Default ``cfg.evaluation.baselines``.
    seeds : iterable of int, optional
        Training seeds to include (default every seed found).
    overrides : sequence of str
        ``a.b=value`` overrides applied to the run's config (e.g. ``evaluation.*``).
    market : MarketData, optional
        Default ``load_market(cfg.data)``.
    progress : callable, optional
        ``progress(done, total)`` per bar.
    ledger : TrialsLedger or path, optional
        The study's trials ledger for the DSR; default ``cfg.evaluation.trials_ledger``,
        else, for a bundle, the one found from the training run its manifest names
        (:func:`allocgym.ledger.find_ledger`: in the run folder, its parent or its
        grandparent), else the one found so from ``run_dir``, else none (the agent seeds
        stand in).
    runner : callable, optional
        Walks the allocators instead of this process (see :func:`evaluate`).
    """
    cfg, runs, policies = prepare_run(run_dir, seeds=seeds, overrides=overrides)
    roots = expand_run_paths(run_dir)
    # resolved: commonpath refuses a mix of absolute and relative paths
    root = roots[0] if len(roots) == 1 else Path(os.path.commonpath([r.resolve() for r in roots]))
    market = load_market(cfg.data) if market is None else market
    params = evaluation_params(market, cfg, split)
    if not policies:
        policies = load_policies(runs, params, cfg.evaluation.agent_model)
    check_policies_unseen(policies, params)
    names = baseline_names(list(cfg.evaluation.baselines) if baselines is None else baselines)
    allocs: list[Any] = [*policies, *build_baselines(cfg, names).values()]
    if ledger is None:
        ledger = cfg.evaluation.trials_ledger
    for p in policies if ledger is None else ():
        # a bundle: the ledger of the training run its manifest names, wherever the bundle
        # was copied (beside another study's ledger, that one would judge its run)
        trained = getattr(p, "source", None) if isinstance(p, FrozenAgent) else None
        ledger = None if trained is None else find_ledger(trained)
        if ledger is not None:
            break
    if ledger is None:
        ledger = study_ledger(cfg, root)
    result = evaluate(
        allocs, cfg=cfg, params=params, progress=progress, ledger=ledger, runner=runner
    )
    result.meta.update(
        run_dir=str(root),
        trials_ledger=result.dsr["ledger"],
        runs={str(s): str(p) for s, p in runs},
        baselines=list(names),
        agent_model=cfg.evaluation.agent_model,
        checkpoints={
            str(p.name): {
                "run": str(getattr(p, "source", root)),
                "model": getattr(p, "checkpoint", "frozen"),
                "step": getattr(p, "checkpoint_step", None),
            }
            for p in policies
        },
    )
    return result


class FrozenAgent(PolicyAllocator):
    """A frozen ONNX policy (``allocgym.serving``) as an agent :class:`Allocator`.

    The graph's actor output goes through the env's ``ActionSpec`` like an SB3 agent's
    action (the export's parity test ties the graph's own action map to it).

    Parameters
    ----------
    policy : FrozenPolicy
        A loaded bundle.
    action_spec : ActionSpec
        The env's action map for the bundle's config (``EnvParams.action_spec``).
    """

    def __init__(self, policy: Any, action_spec: ActionSpec) -> None:
        self.policy = policy
        self.action_spec = action_spec
        self.name = str(policy.name)
        self.group = "frozen"
        self.seed: int | None = None
        self.obs_dim = int(policy.obs_dim)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions (n_envs, action_dim) of the frozen actor."""
        return np.asarray(self.policy.actions(obs), dtype=np.float32)

    def __reduce__(self) -> tuple[Any, ...]:
        # An ONNX session does not pickle: a Ray worker reloads the bundle from its folder.
        return (_load_frozen_agent, (str(self.policy.path), self.action_spec))


def _load_frozen_agent(path: str, action_spec: ActionSpec) -> FrozenAgent:
    from allocgym.serving.bundle import FrozenPolicy

    return FrozenAgent(FrozenPolicy.load(path), action_spec)


def _frozen_policies(root: Path, overrides: Sequence[str]) -> tuple[AllocgymConfig, list[Any]]:
    """Config (from the manifest) and policy of a frozen policy directory."""
    from allocgym.config import config_from_dict
    from allocgym.intents import STRATEGY_FAMILIES
    from allocgym.serving.bundle import FrozenPolicy

    policy = FrozenPolicy.load(root)
    cfg = config_from_dict(policy.manifest["config"], list(overrides))
    spec = ActionSpec.from_config(cfg, len(policy.symbols), len(STRATEGY_FAMILIES))
    agent = FrozenAgent(policy, spec)
    # the training run the bundle was exported from, and which of its checkpoints
    run = policy.manifest.get("run") or {}
    if run.get("run_dir"):
        agent.source = str(run["run_dir"])  # type: ignore[attr-defined]
    agent.checkpoint = str(run.get("which", "frozen"))  # type: ignore[attr-defined]
    agent.checkpoint_step = run.get("step")  # type: ignore[attr-defined]
    return cfg, [agent]
