"""One allocation-context builder and one rebalancing rule for evaluation and validation."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from allocgym import evaluation as ev
from allocgym import measures
from allocgym.agents.validation import run_episodes
from allocgym.allocator import AllocationContext
from allocgym.baselines.classic import EqualWeight
from allocgym.baselines.cluster_barbell import ClusterBarbell
from allocgym.config import AllocgymConfig, load_config
from allocgym.data import MarketData, load_market
from allocgym.envs import EnvParams, build_params, core
from allocgym.envs.context import (
    TRADE_LIMITS,
    Rebalancer,
    allocation_context,
    take_context,
)
from allocgym.errors import ConfigError, Infeasible
from allocgym.features import alpha_scores
from allocgym.risk import ReasonCode

TINY = [
    "data.source=synthetic",
    "data.synthetic.n_assets=6",
    "data.synthetic.n_days=520",
    "data.synthetic.n_sectors=3",
    "data.synthetic.seed=5",
    "data.splits.train_end=2001-01-31",
    "data.splits.validation_end=2001-06-29",
    "baselines.lookback=126",
    "baselines.rebalance_every=5",
    "env.episode_length=40",
]


@pytest.fixture(scope="module")
def cfg() -> AllocgymConfig:
    return load_config(None, TINY)


@pytest.fixture(scope="module")
def market(cfg: AllocgymConfig) -> MarketData:
    return load_market(cfg.data)


@pytest.fixture(scope="module")
def params(market: MarketData, cfg: AllocgymConfig) -> EnvParams:
    return build_params(market, cfg, "all")


class Recorder:
    """Allocator proposing fixed weights; keeps every context it was given."""

    def __init__(self, w: np.ndarray, name: str = "rec") -> None:
        self.w = np.asarray(w, dtype=np.float64)
        self.name = name
        self.contexts: list[AllocationContext] = []

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        self.contexts.append(ctx)
        return np.broadcast_to(self.w, (ctx.n_envs, ctx.n_assets)).copy()


class FailOnRow:
    """Raises ``Infeasible`` whenever the context holds a portfolio at bar ``bad_t``."""

    name = "fail_on_row"

    def __init__(self, bad_t: int) -> None:
        self.bad_t = bad_t
        self.calls: list[int] = []

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        assert ctx.t is not None
        self.calls.append(ctx.n_envs)
        if (ctx.t == self.bad_t).any():
            raise Infeasible("no solution at this bar (test)")
        return np.full((ctx.n_envs, ctx.n_assets), 0.1)


# ----------------------------------------------------------------------------- context


def test_context_is_past_only_and_complete(params: EnvParams) -> None:
    """Every field comes from the env arrays at the decision bar t (nothing later)."""
    t0 = np.array([params.lo + 3, params.lo + 40, params.lo + 7])
    state, _ = core.reset(params, core.seed_keys([0, 1, 2]), start=t0)
    ctx = allocation_context(params, state, lookback=50)
    feats = params.features
    assert ctx.returns.shape == (3, 50, 6)
    for i, t in enumerate(t0):
        assert np.array_equal(ctx.returns[i], params.returns[t - 49 : t + 1])
        assert np.array_equal(
            ctx.benchmark_returns[i], params.market.benchmark_returns[t - 49 : t + 1]
        )  # type: ignore[index]
    assert np.array_equal(ctx.t, t0)
    assert np.array_equal(ctx.regime, feats.regime[t0].astype(np.int64))
    assert np.array_equal(ctx.regime_confidence, feats.regime_confidence[t0])
    assert ctx.barbell is not None and np.array_equal(ctx.barbell, feats.barbell[t0])
    assert ctx.scores is not None
    assert np.array_equal(ctx.scores, alpha_scores(feats.take(t0)))
    assert ctx.betas is not None and np.array_equal(ctx.betas, feats.betas[t0])
    # linear cost rate per unit traded: commission + spread_mult x half-spread (no impact)
    cm = params.cost_model
    rate = cm.commission_bps / 1e4 + cm.spread_mult * params.spread_bps[t0] / 2e4
    assert ctx.costs is not None and np.allclose(ctx.costs, rate, rtol=1e-12, atol=0)
    assert np.array_equal(ctx.current_weights, np.zeros((3, 6)))  # all cash at reset


def test_a_symbol_enters_the_context_once_its_window_has_traded(
    market: MarketData, cfg: AllocgymConfig
) -> None:
    """Symbol 5 lists at bar 400: until it has traded on nine tenths of the 51 bars of its
    50-bar window (from bar 445: 46 of them), its returns column is 0 (no variance, so
    the baselines leave it out), not 49 zeros and one real return read as a riskless name
    (inverse volatility had given such a name the largest weight). Symbol 4, delisted
    after bar 450, leaves at once."""
    import dataclasses

    from allocgym.baselines.classic import InverseVolatility

    close = market.close.copy()
    close[:400, 5] = np.nan
    close[451:, 4] = np.nan
    late = dataclasses.replace(market, close=close, tradable=market.tradable & np.isfinite(close))
    params = build_params(late, cfg, "all")
    t0 = np.array([401, 420, 444, 445, 451, 460])
    state, _ = core.reset(params, core.seed_keys(range(6)), start=t0)
    ctx = allocation_context(params, state, lookback=50)
    listed = [bool(np.any(ctx.returns[i, :, 5])) for i in range(6)]
    present = [bool(np.any(ctx.returns[i, :, 4])) for i in range(6)]
    assert listed == [False, False, False, True, True, True]  # 444: 45 of 51 bars traded
    assert present == [True, True, True, True, False, False]  # gone on its first NaN bar
    for i in range(6):  # the other names keep their returns bit for bit
        t = t0[i]
        assert np.array_equal(ctx.returns[i, :, :4], params.returns[t - 49 : t + 1, :4])
    w = InverseVolatility().allocate(ctx)
    assert (w[:3, 5] == 0.0).all() and (w[3:, 5] > 0.0).all() and (w[4:, 4] == 0.0).all()


def test_context_rows_and_take_context(params: EnvParams) -> None:
    t0 = np.array([params.lo + 10, params.lo + 20, params.lo + 30])
    state, _ = core.reset(params, core.seed_keys([0, 1, 2]), start=t0)
    full = allocation_context(params, state, lookback=30)
    sub = allocation_context(params, state, lookback=30, rows=np.array([2, 0]))
    assert np.array_equal(sub.t, [t0[2], t0[0]])
    again = take_context(full, [2, 0])
    for name in ("returns", "current_weights", "regime", "regime_confidence", "scores",
                 "betas", "costs", "benchmark_returns", "t", "barbell"):  # fmt: skip
        assert np.array_equal(getattr(sub, name), getattr(again, name)), name


def test_lookback_is_clamped_to_the_available_history(params: EnvParams) -> None:
    state, _ = core.reset(params, core.seed_keys([0]), start=np.array([params.lo]))
    ctx = allocation_context(params, state, lookback=10_000)
    assert ctx.returns.shape[1] == params.lo + 1


# ----------------------------------------------------------------------------- rule


def test_rebalancer_schedule_hold_and_drift(params: EnvParams) -> None:
    """Re-optimise at steps 0, 5, 10 ...; propose the drifted book in between."""
    target = np.full(6, 0.05)  # 0.3 gross from cash: under every per-decision trade limit
    alloc = Recorder(target)
    rule = Rebalancer([alloc, None], rebalance_every=5, lookback=60)
    state, _ = core.reset(params, core.seed_keys([0, 1]), start=np.full(2, params.lo))
    agent_w = np.array([0.05, 0.0, 0.0, 0.0, 0.0, 0.05])
    for k in range(12):
        proposed = rule.propose(params, state, np.tile(agent_w, (2, 1)))
        assert np.array_equal(proposed[1], agent_w)  # the agent row is left alone
        if k % 5 == 0:
            assert np.array_equal(proposed[0], target)
        else:  # buy and hold: the book after the last fill, marked at this bar
            assert np.array_equal(proposed[0], core.current_weights(params, state)[0])
            assert not np.array_equal(proposed[0], target)
        res = core.step_proposed(params, state, proposed)
        assert res.info["portfolio_reasons"][0] & TRADE_LIMITS == 0
        rule.after_step(res.info["portfolio_reasons"], res.info["symbol_reasons"])
        state = res.state
    assert [c.t[0] for c in alloc.contexts] == [params.lo, params.lo + 5, params.lo + 10]  # type: ignore[index]
    assert all(c.n_envs == 1 for c in alloc.contexts)
    assert rule.errors.tolist() == [0, 0]


def test_rebalancer_keeps_working_while_a_trade_limit_binds(params: EnvParams) -> None:
    rule = Rebalancer([Recorder(np.full(6, 0.1))], rebalance_every=50, lookback=60)
    state, _ = core.reset(params, core.seed_keys([0]), start=np.array([params.lo]))
    rule.propose(params, state, np.zeros((1, 6)))
    assert rule.working.tolist() == [True]
    quiet = np.zeros((1, 6), np.int64)
    rule.after_step(np.array([int(ReasonCode.TURNOVER_CAP)]), quiet)
    assert rule.working.tolist() == [True]
    assert rule.propose(params, state, np.zeros((1, 6)))[0].tolist() == [0.1] * 6
    # a per-symbol trade limit on one name keeps the portfolio working too
    for code in ("PARTICIPATION_CAP", "SYMBOL_TURNOVER_CAP", "SYMBOL_SLIPPAGE_BUDGET"):
        one_name = quiet.copy()
        one_name[0, 3] = int(ReasonCode[code])
        rule.after_step(np.zeros(1, np.int64), one_name)
        assert rule.working.tolist() == [True], code
    symbol_cap = np.full((1, 6), int(ReasonCode.SYMBOL_CAP))
    rule.after_step(np.array([int(ReasonCode.SYMBOL_CAP)]), symbol_cap)  # not a trade limit
    assert rule.working.tolist() == [False]
    assert TRADE_LIMITS & int(ReasonCode.SYMBOL_CAP) == 0


def test_rebalancer_isolates_a_failing_row_of_a_shared_allocator(params: EnvParams) -> None:
    """One allocator for three rows: one batch call; on failure only the bad row keeps its book."""
    t0 = np.array([params.lo, params.lo + 1, params.lo + 2])
    alloc = FailOnRow(bad_t=int(t0[1]))
    rule = Rebalancer([alloc] * 3, rebalance_every=5, lookback=30)
    state, _ = core.reset(params, core.seed_keys([0, 1, 2]), start=t0)
    out = rule.propose(params, state, np.zeros((3, 6)))
    assert alloc.calls == [3, 1, 1, 1]  # the batch call failed, then row by row
    assert np.array_equal(out[[0, 2]], np.full((2, 6), 0.1))
    assert np.array_equal(out[1], np.zeros(6))  # kept its (cash) book
    assert rule.errors.tolist() == [0, 1, 0]


def test_rebalancer_gives_each_short_history_row_its_window_unless_the_allocator_keeps_state(
    params: EnvParams,
) -> None:
    """Rows at bars with fewer than ``lookback`` bars behind them: a stateless allocator is
    asked once per window (each row's own history); one that keeps per-row state (greedy)
    once for all its rows, clamped to the shortest window."""
    lo = params.lo
    starts = np.array([lo, lo + 150, lo + 1, lo + 200])  # lookback 400 > lo + 1
    assert lo + 1 < 400 <= lo + 151
    free, kept = Recorder(np.full(6, 0.1), "free"), Recorder(np.full(6, 0.1), "kept")
    kept.keeps_state = True  # type: ignore[attr-defined]
    state, _ = core.reset(params, core.seed_keys(np.arange(4)), start=starts)
    Rebalancer([free, free, kept, kept], rebalance_every=5, lookback=400).propose(
        params, state, np.zeros((4, 6))
    )
    assert [c.t.tolist() for c in free.contexts] == [[lo + 150], [lo]]
    assert [c.returns.shape[1] for c in free.contexts] == [400, lo + 1]
    ((only,),) = [kept.contexts]
    assert only.t.tolist() == [lo + 1, lo + 200] and only.returns.shape[1] == lo + 2


def test_rebalancer_rows_map_a_shrunk_state_to_the_batch(params: EnvParams) -> None:
    a, b = Recorder(np.full(6, 0.1), "a"), Recorder(np.full(6, 0.05), "b")
    rule = Rebalancer([a, b, None], rebalance_every=3, lookback=30)
    state, _ = core.reset(params, core.seed_keys([0]), start=np.array([params.lo]))
    out = rule.propose(params, state, np.zeros((1, 6)), rows=[1])
    assert np.array_equal(out[0], np.full(6, 0.05)) and not a.contexts
    assert rule.working.tolist() == [False, True, False]
    with pytest.raises(ConfigError, match="rows has shape"):
        rule.propose(params, state, np.zeros((1, 6)), rows=[0, 1])
    with pytest.raises(ConfigError, match=">= 1"):
        Rebalancer([a], rebalance_every=0, lookback=30)


# ----------------------------------------------------------------------------- parity


def test_validation_baseline_is_the_evaluation_row(market: MarketData, cfg: AllocgymConfig) -> None:
    """On the evaluation params (one full-split episode starting at lo), the training-time
    validation of a baseline is evaluation's backtest of it: same returns, costs, turnover."""
    params = ev.evaluation_params(market, cfg, "test")
    assert params.n_starts == 1  # the only episode is the walk
    every, look = cfg.baselines.rebalance_every, cfg.baselines.lookback
    for alloc in (EqualWeight(), ev.build_baselines(cfg, ["hrp"])["hrp"]):
        bt = ev.run_allocator(alloc, params=params)
        (em,) = run_episodes(params, 1, allocator=alloc, rebalance_every=every, lookback=look)
        assert em["start"] == bt.bars[0] and em["n_steps"] == bt.n_steps
        assert em["sharpe"] == pytest.approx(float(measures.sharpe_ratio(bt.returns)), rel=1e-12)
        assert em["total_return"] == pytest.approx(bt.equity[-1] / 1e6 - 1.0, rel=1e-12)
        assert em["costs"] == pytest.approx(bt.costs.sum(), rel=1e-12)
        assert em["turnover"] == pytest.approx(bt.turnover.mean(), rel=1e-12)
        counts = bt.reason_counts.sum(axis=0)
        assert em["interventions"] == {
            name: int(c) for name, c in zip(bt.reason_names, counts, strict=True) if c
        }


def test_validation_contexts_carry_scores_costs_and_barbell(params: EnvParams) -> None:
    alloc = Recorder(np.full(6, 1 / 6))
    run_episodes(params, 3, allocator=alloc, rebalance_every=10, lookback=60)
    ctx = alloc.contexts[0]
    assert ctx.n_envs == 3  # one allocator: the rows are asked together
    assert ctx.scores is not None and ctx.costs is not None and ctx.betas is not None
    assert ctx.barbell is not None and ctx.benchmark_returns is not None
    # 40-step episodes, re-optimised at steps 0, 10, 20, 30
    assert len(alloc.contexts) == 4


def test_cluster_barbell_runs_in_validation_with_the_regime_models_state(
    params: EnvParams,
) -> None:
    alloc = ClusterBarbell.from_config(params.cfg.baselines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out: list[dict[str, Any]] = run_episodes(
            params, 2, allocator=alloc, rebalance_every=20, lookback=126
        )
    assert len(out) == 2 and all(np.isfinite(m["total_return"]) for m in out)
    assert all(a["state_source"] == "regime_model" for a in alloc.audit_)


def test_a_short_halt_keeps_a_symbol_in_the_context_and_a_long_one_takes_it_out(
    market: MarketData, cfg: AllocgymConfig
) -> None:
    """A one-bar halt of symbol 2 at bar 430 and of every symbol at bar 440: a window
    holding them keeps the symbols (the halted bars' returns 0), one ending on the halt
    bar leaves them out (HRP gives it an all-cash row; it had raised); a halt over more
    than a tenth of the window (symbol 3, bars 400..409 of a 50-bar window: its 51 flags
    include the bar before the first return) takes the symbol out until the window holds
    less of it."""
    import dataclasses

    from allocgym.baselines.hrp import HRP

    tradable = market.tradable.copy()
    tradable[430, 2] = False
    tradable[440, :] = False
    tradable[400:410, 3] = False
    halted = dataclasses.replace(market, tradable=tradable)
    params = build_params(halted, cfg, "all")
    t0 = np.array([430, 431, 439, 440, 441, 458, 460, 480, 490])
    state, _ = core.reset(params, core.seed_keys(range(9)), start=t0)
    ctx = allocation_context(params, state, lookback=50)
    kept = np.array([[bool(np.any(ctx.returns[i, :, j])) for j in range(6)] for i in range(9)])
    # a halt on a window's first bar does not bring the symbol's exit back (480, 490)
    assert kept[:, 2].tolist() == [False, True, True, False, True, True, True, True, True]
    # 430..441: traded on 40 or 41 of 51 bars; 458: 48 of 51
    assert kept[:, 3].tolist() == [False] * 5 + [True] * 4
    assert kept[:, 0].tolist() == [True, True, True, False, True, True, True, True, True]
    for i in (1, 4):  # a kept symbol's window is the market's returns, halted bars 0
        t = t0[i]
        assert np.array_equal(ctx.returns[i, :, 2], params.returns[t - 49 : t + 1, 2])
    w = HRP().allocate(ctx)
    assert (w[3] == 0.0).all() and np.allclose(np.delete(w, 3, axis=0).sum(axis=1), 1.0)
