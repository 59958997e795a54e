"""Evaluation: the full-split walk through the env core, metrics, DSR trials (ledger or seeds),
paired Sharpe tests, regime risk diagnostics, the evaluate CLI."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from tiny_configs import TINY
from typer.testing import CliRunner

from allocgym import evaluation as ev
from allocgym import measures
from allocgym import stats as sst
from allocgym.allocator import AllocationContext
from allocgym.config import AllocgymConfig, EvaluationConfig, load_config, write_run_metadata
from allocgym.data import MarketData, load_market
from allocgym.envs import core
from allocgym.errors import ConfigError, DataError, Infeasible
from allocgym.ledger import TrialsLedger


@pytest.fixture(scope="module")
def tiny_params(eval_market: MarketData, eval_cfg: AllocgymConfig):
    return ev.evaluation_params(eval_market, eval_cfg)


def make_untrained_run(run_dir: Path, cfg: AllocgymConfig, market: MarketData) -> Path:
    """A run directory with an untrained PPO model in final/ (what `train` writes, minus training)."""
    from allocgym.agents.train import build_model, make_train_env
    from allocgym.envs import build_params

    params = build_params(market, cfg, "train")
    _, _, env, _ = make_train_env(cfg, params)
    model = build_model(cfg, env, params)
    write_run_metadata(run_dir, cfg)
    (run_dir / "final").mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "final" / "model.zip")
    return run_dir


class FixedWeights:
    """Allocator proposing the same weights every time; counts its calls."""

    def __init__(self, w: np.ndarray, name: str = "fixed") -> None:
        self.w = np.asarray(w, dtype=np.float64)
        self.name = name
        self.calls = 0
        self.contexts: list[AllocationContext] = []

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        self.calls += 1
        self.contexts.append(ctx)
        return np.broadcast_to(self.w, (ctx.n_envs, ctx.n_assets)).copy()


class Failing:
    name = "failing"

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        raise Infeasible("constraints admit no solution (test)")


class ConstantPolicy:
    """Policy emitting one fixed action (weights action mode)."""

    def __init__(self, action: np.ndarray, name: str = "const_agent") -> None:
        self.action = np.asarray(action, dtype=np.float32)
        self.name = name
        self.group = "const"
        self.seed = 7

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.action, (obs.shape[0], self.action.size)).copy()


# ----------------------------------------------------------------------------- the walk


def test_walk_covers_the_split_from_its_first_tradable_bar(tiny_params) -> None:
    bt = ev.run_allocator(FixedWeights(np.full(6, 1 / 6)), params=tiny_params)
    sp = tiny_params.split
    assert bt.bars[0] == tiny_params.lo == sp.start  # the test split starts after the warm-up
    assert bt.bars[-1] == sp.stop - 2  # last decision fills at the split's last bar
    assert bt.n_steps == sp.stop - 1 - sp.start == 193
    assert np.all(np.diff(bt.bars) == 1)
    assert np.array_equal(bt.dates, tiny_params.market.dates[bt.bars + 1])
    assert bt.split == "test"


def test_accounting_identity_and_equity(tiny_params) -> None:
    bt = ev.run_allocator(FixedWeights(np.full(6, 1 / 6)), params=tiny_params)
    # equity compounds the net returns from the starting equity
    eq0 = tiny_params.cfg.env.initial_equity
    assert np.allclose(bt.equity, eq0 * np.cumprod(1.0 + bt.returns), rtol=1e-12)
    # 1 + R = (1 + sum_i w_i r_i)(1 - c): held book times price returns, then the fill cost
    gross = bt.asset_pnl.sum(axis=1)
    assert np.allclose(1.0 + bt.returns, (1.0 + gross) * (1.0 - bt.costs), atol=1e-13)
    assert np.allclose(bt.asset_pnl.sum(axis=1) + bt.cost_pnl, bt.returns, atol=1e-15)
    assert np.all(bt.cost_pnl <= 1e-15) and bt.costs.sum() > 0
    assert int(bt.invariant_breaches.sum()) == 0
    # the book each step's P&L is made of is the one before its fill (cash at step 0),
    # not the book after it (what attribution and the VaR backtest once priced)
    p = tiny_params.market.close
    r = p[bt.bars + 1] / p[bt.bars] - 1.0
    assert np.all(bt.held[0] == 0.0)
    np.testing.assert_allclose(bt.held * r, bt.asset_pnl, rtol=0, atol=1e-15)
    assert not np.allclose(bt.weights * r, bt.asset_pnl, rtol=0, atol=1e-6)


def test_walk_is_the_env_core_bit_for_bit(tiny_params) -> None:
    """Replaying the recorded proposals through core.step_proposed gives identical returns."""
    bt = ev.run_allocator(ev.build_baselines(tiny_params.cfg, ["hrp"])["hrp"], params=tiny_params)
    state, _ = core.reset(tiny_params, core.seed_keys([0]), start=np.array([tiny_params.lo]))
    rets = []
    for k in range(bt.n_steps):
        res = core.step_proposed(tiny_params, state, bt.proposed[k][None, :])
        rets.append(res.info["equity"][0] / state.equity[0] - 1.0)
        state = res.state
    assert np.array_equal(np.array(rets), bt.returns)


def test_batched_walk_equals_single_walks(tiny_params) -> None:
    """Every recorded array of a portfolio is the same bits whatever is walked beside it
    (Ray chunks the allocators: its report must be the serial one)."""
    rng = np.random.default_rng(3)
    others = [FixedWeights(rng.dirichlet(np.ones(6)) * 0.9, f"r{i}") for i in range(6)]
    b = FixedWeights(np.array([0.13, 0.07, 0.21, 0.11, 0.17, 0.19]), "tilted")
    batch = ev.run_allocators([FixedWeights(np.full(6, 1 / 6), "ew"), b, *others],
                              params=tiny_params)  # fmt: skip
    alone = ev.run_allocator(FixedWeights(b.w, "tilted"), params=tiny_params)
    assert [x.name for x in batch[:2]] == ["ew", "tilted"]
    for key in ("returns", "equity", "weights", "proposed", "approved", "trades", "costs",
                "turnover", "asset_pnl", "cost_pnl", "allocator_cut", "overlay_cut"):  # fmt: skip
        assert np.array_equal(getattr(batch[1], key), getattr(alone, key), equal_nan=True), key


def test_baselines_rebalance_on_schedule_and_hold_in_between(tiny_params) -> None:
    alloc = FixedWeights(np.full(6, 1 / 6))
    bt = ev.run_allocator(alloc, params=tiny_params)
    every = tiny_params.cfg.baselines.rebalance_every
    assert alloc.calls == math.ceil(bt.n_steps / every)
    # between rebalances (once the target is reached) the proposal is the drifted book:
    # the book after the previous fill, marked at the decision bar
    k = every + 2
    assert np.allclose(bt.proposed[k], bt.weights[k - 1], rtol=0, atol=1e-12)
    assert not np.allclose(bt.proposed[k], bt.proposed[k - 1], rtol=0, atol=1e-9)  # it drifts
    assert not np.allclose(bt.proposed[k], alloc.w)  # it drifted away from 1/6
    ctx = alloc.contexts[1]
    assert ctx.returns.shape == (1, tiny_params.cfg.baselines.lookback, 6)
    assert ctx.t[0] == bt.bars[every]
    assert ctx.scores is not None and ctx.costs is not None and ctx.betas is not None
    assert np.all(ctx.costs > 0)
    # the last row of the window is the decision bar itself (past-only, nothing later)
    assert np.array_equal(ctx.returns[0, -1], tiny_params.returns[bt.bars[every]])


def test_rebalance_cut_by_turnover_cap_keeps_working(tiny_params) -> None:
    """From cash, a full investment exceeds the 0.5 turnover ceiling: it completes next bar.

    Two turnovers: the *capped* one is the gate's ``L1(approved - current book)`` at the
    decision bar's prices (at most ``risk.max_turnover``); the *realised* one
    (``Backtest.turnover``) is the lot-rounded order valued at the fill bar's prices over
    the pre-trade equity there, so it moves with the price change and the rounding.
    """
    bt = ev.run_allocator(FixedWeights(np.full(6, 0.1)), params=tiny_params)
    cap = tiny_params.limits.max_turnover
    assert cap == 0.5
    current = np.vstack([np.zeros(6), bt.weights[:-1]])  # the book at each decision bar
    capped = np.abs(bt.approved - current).sum(axis=1)
    assert np.all(capped <= cap + 1e-12)
    # from cash: 0.6 proposed, scaled to 0.5, i.e. 0.5 / 6 of equity in each name
    assert np.allclose(bt.approved[0], 0.5 / 6, rtol=0, atol=1e-15)
    # realised by hand: whole shares rounded towards the current position (down, from
    # cash) at the decision price, valued at the fill price
    t, equity = bt.bars[0], bt.initial_equity
    prices = tiny_params.prices
    shares = np.floor(0.5 / 6 * equity / prices[t])
    realised = (shares * prices[t + 1]).sum() / equity
    assert bt.turnover[0] == pytest.approx(realised, rel=1e-14, abs=0)
    assert bt.turnover[1] > 0.05  # still trading towards the target after the rebalance bar
    assert np.abs(bt.weights[3] - 0.1).max() < 0.01


def test_failing_allocator_holds_its_book_and_is_counted(tiny_params) -> None:
    bt = ev.run_allocator(Failing(), params=tiny_params)
    assert bt.allocator_errors == math.ceil(bt.n_steps / tiny_params.cfg.baselines.rebalance_every)
    assert np.all(bt.weights == 0.0) and np.all(bt.returns == 0.0)


def test_policy_actions_go_through_the_action_spec(tiny_params) -> None:
    spec = tiny_params.action_spec
    action = np.linspace(-1, 1, spec.shape[0]).astype(np.float32)
    bt = ev.run_allocator(ConstantPolicy(action), params=tiny_params)
    expected = spec.to_weights(action[None, :])[0]
    assert bt.kind == "agent" and bt.group == "const" and bt.seed == 7
    assert np.allclose(bt.proposed, expected[None, :], atol=0)


def test_equity_scale_multiplies_the_starting_equity(tiny_params) -> None:
    w = np.full(6, 1 / 6)
    base, big = ev.run_allocators(
        [FixedWeights(w, "x1"), FixedWeights(w, "x100")], params=tiny_params, equity_scales=[1, 100]
    )
    assert big.initial_equity == 100 * base.initial_equity
    # from cash the first fill only pays costs: equity = initial equity x (1 - cost fraction)
    for bt in (base, big):
        assert bt.equity[0] == pytest.approx(bt.initial_equity * (1 - bt.costs[0]), rel=1e-14)
    assert big.costs[0] > base.costs[0] > 0
    assert big.costs.sum() > base.costs.sum()  # square-root impact grows with size
    with pytest.raises(ConfigError, match="equity_scales"):
        ev.run_allocators([FixedWeights(w)], params=tiny_params, equity_scales=[1, 2])
    with pytest.raises(ConfigError, match="finite and > 0"):
        ev.run_allocators([FixedWeights(w)], params=tiny_params, equity_scales=[0.0])


def test_not_an_allocator_is_refused(tiny_params) -> None:
    with pytest.raises(ConfigError, match="neither an Allocator"):
        ev.run_allocators([object()], params=tiny_params)  # type: ignore[list-item]


def _count_allocate(alloc, calls: list[AllocationContext]) -> None:
    """Record every context ``alloc.allocate`` is called with (an instance attribute)."""
    inner = alloc.allocate

    def allocate(ctx: AllocationContext) -> np.ndarray:
        calls.append(ctx)
        return inner(ctx)

    alloc.allocate = allocate


def test_baseline_sb3_agent_and_frozen_policy_walk_one_path(
    eval_cfg: AllocgymConfig, eval_market: MarketData, tiny_params, tmp_path: Path
) -> None:
    """One walk, one protocol: each is an Allocator whose allocate(ctx) the walk calls on
    its schedule; the agents read the env's own observation from the context."""
    from allocgym.agents import SB3PolicyAllocator
    from allocgym.agents.export import export_model
    from allocgym.agents.train import build_model, make_train_env
    from allocgym.allocator import Allocator, PolicyAllocator
    from allocgym.envs import build_params
    from allocgym.serving.bundle import FrozenPolicy

    train_params = build_params(eval_market, eval_cfg, "train")
    _, _, env, vn = make_train_env(eval_cfg, train_params)
    model = build_model(eval_cfg, env, train_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = export_model(
            model, vn, eval_cfg, tmp_path / "bundle", market=eval_market, n_recorded=64,
            n_random=64,
        )  # fmt: skip
    spec = tiny_params.action_spec
    baseline = ev.build_baselines(eval_cfg, ["equal_weight"])["equal_weight"]
    agent = SB3PolicyAllocator(model, vn, spec, name="sb3")
    frozen = ev.FrozenAgent(FrozenPolicy.load(bundle.path), spec)
    for alloc in (baseline, agent, frozen):
        assert isinstance(alloc, Allocator)
    assert isinstance(agent, PolicyAllocator) and isinstance(frozen, PolicyAllocator)
    assert not isinstance(baseline, PolicyAllocator)
    seen: dict[str, list[AllocationContext]] = {"baseline": [], "sb3": [], "frozen": []}
    for key, alloc in zip(seen, (baseline, agent, frozen), strict=True):
        _count_allocate(alloc, seen[key])

    bts = ev.run_allocators([baseline, agent, frozen], params=tiny_params)
    assert [bt.kind for bt in bts] == ["baseline", "agent", "agent"]
    n_steps = bts[0].n_steps
    every = eval_cfg.baselines.rebalance_every
    assert len(seen["baseline"]) == math.ceil(n_steps / every)
    assert len(seen["sb3"]) == len(seen["frozen"]) == n_steps  # env.decision_interval = 1
    # the first context holds the env's reset observation, bit for bit
    _, obs0 = core.reset(tiny_params, core.seed_keys([0]), start=np.array([tiny_params.lo]))
    first = seen["sb3"][0]
    assert first.observation is not None and np.array_equal(first.observation, obs0)
    assert seen["baseline"][0].observation is not None  # every context carries it
    # the SB3 policy and its ONNX export propose the same books (float32 graph tolerance)
    assert np.allclose(bts[1].proposed, bts[2].proposed, atol=1e-5)
    assert np.abs(bts[1].proposed - bts[0].proposed).max() > 1e-3  # not the baseline's book


def test_an_agent_refuses_a_context_without_observation(tiny_params) -> None:
    from allocgym.envs.context import allocation_context

    state, obs = core.reset(tiny_params, core.seed_keys([0]), start=np.array([tiny_params.lo]))
    spec = tiny_params.action_spec
    action = np.linspace(-1, 1, spec.action_dim).astype(np.float32)
    agent = ev.BoundPolicy(ConstantPolicy(action), spec)
    with pytest.raises(ConfigError, match="context has none"):
        agent.allocate(allocation_context(tiny_params, state, 5))
    w = agent.allocate(allocation_context(tiny_params, state, 5, observation=obs))
    assert np.array_equal(w, spec.to_weights(action[None, :]))


def test_an_agent_with_another_action_map_is_refused(tiny_params) -> None:
    from dataclasses import replace

    spec = tiny_params.action_spec
    other = replace(spec, logit_scale=2 * spec.logit_scale)
    agent = ev.BoundPolicy(ConstantPolicy(np.zeros(spec.action_dim, np.float32)), other)
    with pytest.raises(ConfigError, match="maps actions with"):
        ev.run_allocators([agent], params=tiny_params)
    assert ev.run_allocator(ev.BoundPolicy(agent.policy, spec), params=tiny_params).n_steps > 0


@pytest.mark.parametrize(
    "extra",
    [[], ["risk.long_only=false"], ["env.action_mode=tilt"], ["env.action_mode=budgets"]],
    ids=["weights", "long_short", "tilt", "budgets"],
)
def test_action_proposal_is_the_env_action_map(eval_market: MarketData, extra) -> None:
    """``action_proposal`` on a context gives the bits of ``core.propose`` on the state,
    a non-finite action row included."""
    from allocgym.allocator import action_proposal
    from allocgym.envs.context import allocation_context

    cfg = load_config(None, [*TINY, *extra])
    params = ev.evaluation_params(eval_market, cfg)
    starts = params.lo + np.array([0, 17, 40])
    state, obs = core.reset(params, core.seed_keys([0, 1, 2]), start=starts)
    rng = np.random.default_rng(3)
    actions = rng.uniform(-1.5, 1.5, (3, params.action_spec.action_dim)).astype(np.float32)
    actions[1, 0] = np.nan
    ctx = allocation_context(params, state, 5, observation=obs)
    got = action_proposal(params.action_spec, actions, ctx)
    want = core.propose(params, state, actions)
    for mine, env_map in zip(got, want, strict=True):
        assert (mine is None) == (env_map is None)
        if mine is not None:
            assert np.array_equal(mine, env_map, equal_nan=True)
    assert np.isnan(got[0][1]).any() and np.isfinite(got[0][[0, 2]]).all()


LEVERAGED = [
    *TINY,
    "risk.long_only=false",
    "risk.max_gross=40",
    "risk.max_net=40",
    "risk.max_symbol_weight=20",
    "risk.max_sector_gross=40",
    "risk.max_turnover=100",
    "risk.max_participation=1000000",
    "risk.slippage_budget_bps=1000000",
]
"""Long/short with gates loose enough for 30x gross: a book that can lose all its equity."""


class Blowup:
    """Test-only allocator that peeks ahead: 15x long the next 5 bars' worst symbol and 15x
    short the best one (it must lose everything quickly)."""

    name = "blowup"

    def __init__(self, returns: np.ndarray) -> None:
        self.r = returns

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        assert ctx.t is not None
        t = int(ctx.t[0])
        future = np.prod(1.0 + self.r[t + 1 : t + 6], axis=0)
        w = np.zeros((1, ctx.n_assets))
        w[0, np.argmin(future)], w[0, np.argmax(future)] = 15.0, -15.0
        return w


def test_a_wiped_out_book_is_frozen_and_the_others_keep_walking() -> None:
    cfg = load_config(None, LEVERAGED)
    market = load_market(cfg.data)
    params = ev.evaluation_params(market, cfg)
    with pytest.warns(RuntimeWarning, match=r"\['blowup'\] reached 0.*frozen"):
        dead, ew = ev.run_allocators(
            [Blowup(market.returns), FixedWeights(np.full(6, 1 / 6), "ew")], params=params
        )
    k = dead.wiped_out_at
    assert k is not None and 0 < k < dead.n_steps - 10 and ew.wiped_out_at is None
    # 1/N walks the whole split, bit-identical to walking alone
    alone = ev.run_allocator(FixedWeights(np.full(6, 1 / 6), "ew"), params=params)
    assert ew.n_steps == dead.n_steps == 193
    assert np.array_equal(ew.returns, alone.returns) and np.array_equal(ew.weights, alone.weights)
    # the dead book: equity <= 0 after fill k, nothing happens afterwards
    assert dead.equity[k] <= 0.0 < dead.equity[k - 1]
    assert np.all(dead.equity[k:] == dead.equity[k])
    after = slice(k + 1, None)
    assert np.all(dead.returns[after] == 0.0) and np.all(dead.costs[after] == 0.0)
    assert np.all(dead.trades[after] == 0.0) and np.all(dead.side[after] == 0)
    assert np.all(dead.weights[k:] == 0.0) and np.all(dead.reason_counts[after] == 0)
    assert np.all(dead.turnover[after] == 0.0) and np.all(dead.asset_pnl[after] == 0.0)
    # before the wipe-out the record is the accounting identity as usual
    live = slice(0, k + 1)
    assert np.allclose(dead.asset_pnl[live].sum(1) + dead.cost_pnl[live], dead.returns[live])
    m = ev.backtest_metrics(dead)
    assert m["wiped_out_at"] == str(dead.dates[k])[:10] and m["n_bars"] == 193
    assert ev.backtest_metrics(ew)["wiped_out_at"] is None


def test_walk_is_not_cut_by_the_training_drawdown_kill(
    eval_cfg: AllocgymConfig, eval_market: MarketData, tiny_params
) -> None:
    """A 2% training-time kill would flatten 1/N at its first 2% drawdown and keep it flat
    (the drawdown is measured against the old peak); evaluation walks ignore it."""
    env = eval_cfg.env.model_copy(update={"drawdown_kill": 0.02})
    params = ev.evaluation_params(eval_market, eval_cfg.model_copy(update={"env": env}))
    assert params.cfg.env.drawdown_kill == ev.WALK_DRAWDOWN_KILL == 1.0
    assert tiny_params.cfg.env.drawdown_kill == 1.0
    bt = ev.run_allocator(FixedWeights(np.full(6, 1 / 6)), params=params)
    assert float(measures.max_drawdown(bt.returns)) > 0.02  # the kill would have fired
    assert "KILL_SWITCH" not in ev.backtest_metrics(bt)["interventions"]
    assert np.abs(bt.weights[-20:]).sum(axis=1).min() > 0.2  # invested to the end (a kill: 0)
    ref = ev.run_allocator(FixedWeights(np.full(6, 1 / 6)), params=tiny_params)
    assert np.array_equal(bt.returns, ref.returns)


# ----------------------------------------------------------------------------- metrics


def test_metrics_are_measures_of_the_return_series(tiny_params) -> None:
    bt = ev.run_allocator(ev.build_baselines(tiny_params.cfg, ["qp"])["qp"], params=tiny_params)
    m = ev.backtest_metrics(bt)
    r = bt.returns
    assert m["ann_return"] == pytest.approx(float(measures.annualized_return(r)), rel=1e-12)
    assert m["sharpe"] == pytest.approx(float(measures.sharpe_ratio(r)), rel=1e-12)
    assert m["sortino"] == pytest.approx(float(measures.sortino_ratio(r)), rel=1e-12)
    assert m["max_drawdown"] == pytest.approx(float(measures.max_drawdown(r)), rel=1e-12)
    assert m["cvar"] == pytest.approx(float(measures.cvar(r, 0.95)), rel=1e-12)
    assert m["turnover"] == pytest.approx(bt.turnover.mean() * 252, rel=1e-12)
    assert m["costs"] == pytest.approx(bt.costs.sum(), rel=1e-12)
    invested = np.abs(bt.weights).sum(axis=1) > 0
    assert m["hhi"] == pytest.approx(float(np.mean(measures.herfindahl(bt.weights[invested]))))
    # interventions: per-code symbol counts from the env's reason_counts
    total = bt.reason_counts.sum(axis=0)
    for name, count in m["interventions"].items():
        assert count == total[list(bt.reason_names).index(name)]
    # per-regime rows partition the bars
    assert sum(x["n_bars"] for x in m["regimes"].values()) == bt.n_steps
    # attribution adds up to the summed daily net returns
    att = m["attribution"]
    assert sum(att["assets"].values()) + att["costs"] == pytest.approx(r.sum(), abs=1e-12)
    assert att["strategies"] == {"qp": pytest.approx(sum(att["assets"].values()))}


def test_hand_computed_metrics_of_a_known_series() -> None:
    """Three bars, hand-computed: returns +10%, -10%, +5%."""
    n = 3
    bt = ev.Backtest(
        name="hand", kind="baseline", group="hand", seed=None, symbols=("A",),
        dates=np.array(["2020-01-02", "2020-01-03", "2020-01-06"], "datetime64[ns]"),
        bars=np.arange(n), returns=np.array([0.10, -0.10, 0.05]),
        equity=np.array([110.0, 99.0, 103.95]), weights=np.ones((n, 1)),
        proposed=np.ones((n, 1)), approved=np.ones((n, 1)),
        symbol_reasons=np.zeros((n, 1), np.int64), portfolio_reasons=np.zeros(n, np.int64),
        reason_counts=np.zeros((n, len(core.REASON_NAMES)), np.int64),
        reason_names=tuple(core.REASON_NAMES), side=np.zeros((n, 1), np.int8),
        trades=np.zeros((n, 1)), costs=np.array([0.001, 0.0, 0.0]),
        turnover=np.array([1.0, 0.0, 0.0]), intervention=np.zeros(n),
        regime=np.array([0, 0, 2], np.int8), asset_pnl=np.array([[0.10], [-0.10], [0.05]]),
        cost_pnl=np.zeros(n), strategy_pnl=None, strategy_names=(),
        invariant_breaches=np.zeros(n, np.int64), invariant_messages=(), allocator_errors=0,
        initial_equity=100.0, equity_scale=1.0, split="test",
    )  # fmt: skip
    m = ev.backtest_metrics(bt)
    assert m["total_return"] == pytest.approx(1.1 * 0.9 * 1.05 - 1)  # 3.95%
    assert m["max_drawdown"] == pytest.approx(0.10)  # 110 -> 99
    assert m["turnover"] == pytest.approx(252 / 3)  # 1.0 traded over 3 bars
    assert m["costs"] == pytest.approx(0.001)
    assert m["costs_annual"] == pytest.approx(0.001 * 252 / 3)
    assert m["hhi"] == pytest.approx(1.0)
    assert m["regimes"]["trend"]["n_bars"] == 2 and m["regimes"]["high_volatility"]["n_bars"] == 1
    assert m["regimes"]["trend"]["fraction"] == pytest.approx(2 / 3)
    mean, sd = np.mean([0.1, -0.1, 0.05]), np.std([0.1, -0.1, 0.05], ddof=1)
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(252))


# ----------------------------------------------------------------------------- DSR


def _psr_by_formula(returns: np.ndarray, sr0: float) -> float:
    """PSR written out from Bailey & López de Prado (2012), independent of allocgym.stats.

    ``Phi((SR - SR0) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))``: per-period SR
    (mean over ddof=1 std), biased skewness ``g3`` and Pearson kurtosis ``g4``.
    """
    r = np.asarray(returns, dtype=np.float64)
    n = r.size
    dev = r - r.mean()
    sr = r.mean() / math.sqrt((dev**2).sum() / (n - 1))
    m2 = (dev**2).mean()
    g3 = (dev**3).mean() / m2**1.5
    g4 = (dev**4).mean() / m2**2
    z = (sr - sr0) * math.sqrt(n - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def _sr0_by_formula(trial_returns: list[np.ndarray], n_trials: int) -> float:
    """``SR0 = sqrt(V) ((1 - g) Z(1 - 1/N) + g Z(1 - 1/(N e)))`` (2014, eq. 2), V the ddof=1
    variance of the trials' per-period Sharpe ratios, written out from the formula."""
    srs = [r.mean() / r.std(ddof=1) for r in trial_returns]
    mean = sum(srs) / len(srs)
    v = sum((s - mean) ** 2 for s in srs) / (len(srs) - 1)
    z = NormalDist().inv_cdf
    g = 0.5772156649015329  # Euler-Mascheroni
    return math.sqrt(v) * ((1 - g) * z(1 - 1 / n_trials) + g * z(1 - 1 / (n_trials * math.e)))


def _invest(params, a: float) -> np.ndarray:
    """Long-only weights action: equal asset logits ``a``, cash logit ``-a`` (a > 0 invests more)."""
    n = params.action_spec.shape[0]
    return np.r_[np.full(n - 1, a), -a].astype(np.float32)


def _agents_and_baselines(tiny_params) -> list[ev.Backtest]:
    pols = []
    for i, a in enumerate((0.0, 0.5, -0.5)):
        pol = ConstantPolicy(_invest(tiny_params, a), f"p{i}")
        pol.seed = i
        pols.append(pol)
    tilted = np.array([0.1, 0.0, 0.2, 0.0, 0.1, 0.0])
    return ev.run_allocators(
        [*pols, FixedWeights(np.full(6, 1 / 6), "ew"), FixedWeights(tilted, "tilted")],
        params=tiny_params,
    )


def test_baselines_do_not_move_the_dsr_bar(tiny_params) -> None:
    bts = _agents_and_baselines(tiny_params)
    agents_only = ev.summarize(bts[:3])
    with_baselines = ev.summarize(bts)
    assert with_baselines.dsr["n_trials"] == agents_only.dsr["n_trials"] == 3
    assert with_baselines.dsr["sr0"] == agents_only.dsr["sr0"]
    for name in ("p0", "p1", "p2"):
        assert with_baselines.metrics[name]["dsr"] == agents_only.metrics[name]["dsr"]
    assert "ew" not in with_baselines.dsr["trial_names"]
    # a baseline's DSR is its PSR against the agents' bar (the formula written out here)
    sr0 = _sr0_by_formula([bt.returns for bt in bts[:3]], 3)
    assert agents_only.dsr["sr0"] == pytest.approx(sr0, rel=1e-12)
    assert with_baselines.metrics["ew"]["dsr"] == pytest.approx(
        _psr_by_formula(bts[3].returns, sr0), rel=1e-12
    )
    only_baselines = ev.summarize(bts[3:])
    assert only_baselines.dsr["n_trials"] == 0 and only_baselines.dsr["sr0"] == 0.0
    assert only_baselines.dsr["source"] == "none"
    assert only_baselines.metrics["ew"]["dsr"] == only_baselines.metrics["ew"]["psr"]


def test_explicit_dsr_trials_need_the_agent_seeds_variance(tiny_params) -> None:
    bts = _agents_and_baselines(tiny_params)
    e = EvaluationConfig(dsr_trials=50)
    res = ev.summarize(bts, e)
    assert res.dsr["n_trials"] == 50 and res.metrics["ew"]["dsr_trials"] == 50
    sr0 = _sr0_by_formula([bt.returns for bt in bts[:3]], 50)
    assert res.dsr["sr0"] == pytest.approx(sr0, rel=1e-12)
    assert res.metrics["ew"]["dsr"] == pytest.approx(
        _psr_by_formula(bts[3].returns, sr0), rel=1e-12
    )
    assert res.dsr["sr0"] > ev.summarize(bts).dsr["sr0"]  # 50 trials raise the bar over 3
    # one agent seed beside baselines: no trial variance to estimate -> an error, not SR0 = 0
    with pytest.raises(ConfigError, match=r"dsr_trials = 50 needs the variance.*only 1 of"):
        ev.summarize([bts[0], *bts[3:]], e)
    with pytest.raises(ConfigError, match="only 0 of the 0 agent backtests"):
        ev.summarize(bts[3:], e)


def test_summarize_groups_seeds_and_counts_trials(tiny_params) -> None:
    pols = [
        ConstantPolicy(_invest(tiny_params, a), f"p{i}") for i, a in enumerate((0.0, 0.5, -0.5))
    ]
    for i, p in enumerate(pols):
        p.seed = i
    bts = ev.run_allocators([*pols, FixedWeights(np.full(6, 1 / 6))], params=tiny_params)
    res = ev.summarize(bts)
    # the trials are the three agent seeds; the 1/N baseline is a benchmark, not a trial
    assert res.dsr["n_trials"] == 3 and res.dsr["trial_names"] == ["p0", "p1", "p2"]
    # no ledger: the seeds stand in, flagged as weak
    assert res.dsr["source"] == "agent seeds" and res.dsr["weak"] and res.dsr["ledger"] is None
    assert res.metrics["p0"]["dsr_source"] == "agent seeds"
    sr0 = _sr0_by_formula([bt.returns for bt in bts[:3]], 3)
    assert res.dsr["sr0"] == pytest.approx(sr0, rel=1e-12)
    assert res.dsr["sr0"] > 0
    for bt in bts:
        assert res.metrics[bt.name]["dsr"] == pytest.approx(
            _psr_by_formula(bt.returns, sr0), rel=1e-12
        )
    g = res.groups["const"]
    assert g["n_seeds"] == 3 and g["seeds"] == [0, 1, 2]
    sharpes = [res.metrics[f"p{i}"]["sharpe"] for i in range(3)]
    assert g["sharpe"]["mean"] == pytest.approx(np.mean(sharpes))
    assert g["sharpe"]["std"] == pytest.approx(np.std(sharpes, ddof=1))
    rows = res.table()
    assert rows[-1]["allocator"].startswith("const (mean ± std, 3 seeds)")
    assert rows[-1]["sharpe"] == (g["sharpe"]["mean"], g["sharpe"]["std"])
    assert res.primary.name == "p0"


# ----------------------------------------------------------------------------- DSR ledger

Z_08 = 0.8416212335729143
"""Standard normal quantile at 1 - 1/5."""
Z_1_5E = 1.4496656592240222
"""Standard normal quantile at 1 - 1/(5 e)."""


def _write_study_ledger(path: Path) -> TrialsLedger:
    """4 completed trials (annualised val Sharpe 0.5, 1.0, 1.5, 2.0), 1 stopped, 1 failed."""
    led = TrialsLedger(path)
    for seed, sharpe in enumerate((0.5, 1.0, 1.5, 2.0)):
        led.append({"config_hash": f"cfg{seed}", "seed": seed, "run_dir": f"r{seed}",
                    "status": "completed", "metrics": {"val_sharpe": sharpe}})  # fmt: skip
    led.append({"config_hash": "cfg4", "seed": 4, "run_dir": "r4", "status": "stopped"})
    led.append({"config_hash": "cfg5", "seed": 5, "run_dir": "r5", "status": "failed"})
    return led


def test_dsr_reads_trials_and_sharpe_variance_from_a_ledger(tiny_params, tmp_path: Path) -> None:
    """N = completed + stopped = 5; V from the completed Sharpes, in per-period units.

    Annualised Sharpes 0.5, 1.0, 1.5, 2.0: mean 1.25, squared deviations 0.5625, 0.0625,
    0.0625, 0.5625, sum 1.25, ddof=1 variance 1.25 / 3; per period (daily) / 252.
    SR_0 = sqrt(V) ((1 - g) Z(1 - 1/5) + g Z(1 - 1/(5 e))).
    """
    _write_study_ledger(tmp_path / "trials.jsonl")
    bts = _agents_and_baselines(tiny_params)
    res = ev.summarize(bts, ledger=tmp_path / "trials.jsonl")
    v_daily = 1.25 / 3 / 252
    g = 0.5772156649015329  # Euler-Mascheroni
    sr0 = math.sqrt(v_daily) * ((1 - g) * Z_08 + g * Z_1_5E)
    d = res.dsr
    assert d["source"] == "ledger" and not d["weak"] and d["n_trials"] == 5
    assert d["ledger"] == str(tmp_path / "trials.jsonl") and d["note"] == ""
    assert d["n_trial_sharpes"] == 4
    assert d["sharpe_variance"] == pytest.approx(v_daily, rel=1e-12)
    assert d["sharpe_variance_annual"] == pytest.approx(1.25 / 3, rel=1e-12)
    assert d["sr0"] == pytest.approx(sr0, rel=1e-12)
    assert d["sr0_annual"] == pytest.approx(sr0 * math.sqrt(252), rel=1e-12)
    for bt in bts:
        m = res.metrics[bt.name]
        assert m["dsr"] == pytest.approx(_psr_by_formula(bt.returns, sr0), rel=1e-12)
        assert m["dsr_trials"] == 5 and m["dsr_source"] == "ledger"
    # the ledger's 5 trials set a higher bar than the 3 near-identical seeds
    assert d["sr0"] > ev.summarize(bts).dsr["sr0"]
    # evaluation.dsr_trials still overrides N, with the ledger's variance, and says so
    over = ev.summarize(bts, EvaluationConfig(dsr_trials=50), ledger=tmp_path)
    assert over.dsr["n_trials"] == 50 and over.dsr["source"] == "ledger"
    # standard normal quantiles: Z(1 - 1/50) = 2.05374891, Z(1 - 1/(50 e)) = 2.43931395
    sr0_50 = math.sqrt(v_daily) * ((1 - g) * 2.0537489106318225 + g * 2.4393139538578947)
    assert over.dsr["sr0"] == pytest.approx(sr0_50, rel=1e-12)
    assert "N = 50 from evaluation.dsr_trials (ledger: 5)" in over.dsr["note"]


def test_a_ledger_too_small_for_a_variance_falls_back_to_the_seeds(
    tiny_params, tmp_path: Path
) -> None:
    led = TrialsLedger(tmp_path / "trials.jsonl")
    led.append({"config_hash": "c", "seed": 0, "run_dir": "r", "status": "completed",
                "metrics": {"val_sharpe": 1.0}})  # fmt: skip
    bts = _agents_and_baselines(tiny_params)
    res = ev.summarize(bts, ledger=led)
    seeds_only = ev.summarize(bts)
    assert res.dsr["source"] == "agent seeds" and res.dsr["weak"]
    assert res.dsr["sr0"] == seeds_only.dsr["sr0"] and res.dsr["n_trials"] == 3
    assert "holds 1 completed trial(s)" in res.dsr["note"] and "seeds stand in" in res.dsr["note"]


def test_a_ledger_listing_fewer_trials_than_agents_evaluated_is_raised_to_them(
    tiny_params, tmp_path: Path
) -> None:
    led = TrialsLedger(tmp_path / "trials.jsonl")
    for s, sharpe in enumerate((0.4, 0.9)):
        led.append({"config_hash": "c", "seed": s, "run_dir": f"r{s}", "status": "completed",
                    "metrics": {"val_sharpe": sharpe}})  # fmt: skip
    res = ev.summarize(_agents_and_baselines(tiny_params), ledger=led)
    assert res.dsr["source"] == "ledger" and res.dsr["n_trials"] == 3  # 3 agents evaluated
    assert "the ledger lists 2 trials but 3 agents were evaluated" in res.dsr["note"]


def test_evaluated_runs_missing_from_the_ledger_count_as_trials(
    tiny_params, tmp_path: Path
) -> None:
    """A run killed after validation scored it (kill -9: no ledger line) can still be
    evaluated; it is a trial all the same, so N counts it and the note names it."""
    from allocgym.ledger import new_run_id

    led = _write_study_ledger(tmp_path / "trials.jsonl")
    recorded, killed = tmp_path / "recorded", tmp_path / "killed"
    led.append({"config_hash": "cfg6", "seed": 6, "run_dir": str(recorded), "status":
                "completed", "metrics": {"val_sharpe": 1.2}, "run_id": new_run_id(recorded)})  # fmt: skip
    new_run_id(killed)
    bts = _agents_and_baselines(tiny_params)
    base = ev.summarize(bts, ledger=led, runs=[recorded])
    assert base.dsr["n_trials"] == 6 and "not in the ledger" not in base.dsr["note"]
    res = ev.summarize(bts, ledger=led, runs=[recorded, killed])
    assert res.dsr["n_trials"] == 7 and res.dsr["sr0"] > base.dsr["sr0"]
    assert f"1 evaluated run(s) are not in the ledger (['{killed}'])" in res.dsr["note"]
    assert "counted in N" in res.dsr["note"]
    # a run without a run id (trained before they existed) cannot be matched for sure:
    # its ledger line may name it relative to another working directory
    assert led.unrecorded([recorded, killed, tmp_path / "r1"]) == [str(killed)]


# ----------------------------------------------------------------------------- paired tests


def test_summary_pairs_every_allocator_with_1n_hrp_and_the_best_baseline(tiny_params) -> None:
    from dataclasses import replace

    bts = _agents_and_baselines(tiny_params)
    # rename the two fixed books so that they play 1/N and HRP
    bts = [*bts[:3], replace(bts[3], name="equal_weight"), replace(bts[4], name="hrp")]
    e = EvaluationConfig(bootstrap={"n_boot": 300, "mean_block": 10, "alpha": 0.2, "seed": 3})
    res = ev.summarize(bts, e)
    pt = res.paired
    assert (pt["n_boot"], pt["mean_block"], pt["alpha"], pt["seed"]) == (300, 10.0, 0.2, 3)
    assert pt["level"] == pytest.approx(0.8)

    def single(a: np.ndarray, b: np.ndarray) -> dict:
        return sst.paired_sharpe_difference(
            a, b, mean_block=10, n_boot=300, alpha=0.2, seed=3
        ).to_dict()

    by_name = {bt.name: bt for bt in bts}
    sharpe = {n: res.metrics[n]["sharpe"] for n in ("equal_weight", "hrp")}
    best, second = sorted(sharpe, key=lambda n: -sharpe[n])
    assert pt["best_baseline"] == best
    for name in ("p0", "p1", "p2", "equal_weight", "hrp"):
        row = pt["rows"][name]
        for key, ref in (("equal_weight", "equal_weight"), ("hrp", "hrp")):
            if name == ref:  # never against itself
                assert key not in row
            else:
                assert row[key] == {
                    "reference": ref,
                    **single(by_name[name].returns, by_name[ref].returns),
                }
        # the best baseline other than the row itself
        want = second if name == best else best
        assert row["best_baseline"]["reference"] == want
    # the seed group's pooled portfolio: the seeds' returns averaged bar by bar
    label = "const (pooled, 3 seeds)"
    assert pt["pooled"] == {label: ["p0", "p1", "p2"]}
    pooled = np.mean([bt.returns for bt in bts[:3]], axis=0)
    assert pt["rows"][label]["equal_weight"] == {
        "reference": "equal_weight",
        **single(pooled, by_name["equal_weight"].returns),
    }
    assert pt["skipped"] == {}
    # results.json carries them
    assert res.to_json()["paired_tests"] is pt


def test_paired_tests_skip_series_over_other_bars(tiny_params) -> None:
    from dataclasses import replace

    bts = _agents_and_baselines(tiny_params)
    short = replace(bts[1], name="short", dates=bts[1].dates[1:], returns=bts[1].returns[1:])
    res = ev.paired_tests([bts[0], replace(bts[3], name="equal_weight"), short])
    assert res["skipped"] == {"short": "walked other bars than 'p0'"}
    assert set(res["rows"]) == {"p0"} and res["rows"]["p0"]["equal_weight"]["n_obs"] == 193


# ----------------------------------------------------------------------------- regime risk


def _hand_backtest(proposed: np.ndarray, weights: np.ndarray, bars: np.ndarray,
                   regime: np.ndarray) -> ev.Backtest:  # fmt: skip
    n, a = weights.shape
    return ev.Backtest(
        name="hand", kind="agent", group="hand", seed=0, symbols=tuple(f"S{i}" for i in range(a)),
        dates=np.arange(n).astype("datetime64[D]").astype("datetime64[ns]"), bars=bars,
        returns=np.zeros(n), equity=np.ones(n), weights=weights, proposed=proposed,
        approved=weights, symbol_reasons=np.zeros((n, a), np.int64),
        portfolio_reasons=np.zeros(n, np.int64),
        reason_counts=np.zeros((n, len(core.REASON_NAMES)), np.int64),
        reason_names=tuple(core.REASON_NAMES), side=np.zeros((n, a), np.int8),
        trades=np.zeros((n, a)), costs=np.zeros(n), turnover=np.zeros(n), intervention=np.zeros(n),
        regime=regime.astype(np.int8), asset_pnl=np.zeros((n, a)), cost_pnl=np.zeros(n),
        strategy_pnl=None, strategy_names=(), invariant_breaches=np.zeros(n, np.int64),
        invariant_messages=(), allocator_errors=0, initial_equity=1.0, equity_scale=1.0,
        split="test",
    )  # fmt: skip


def test_regime_diagnostics_hand_computed() -> None:
    """Two assets, window 2, decisions at bars 1, 2, 3 (regimes trend, trend, high_volatility).

    Asset returns: bar 0 (0, 0), bar 1 (+1 %, -2 %), bar 2 (+3 %, +1 %), bar 3 (-1 %, +2 %).
    Step 0, bar 1, scenarios bars 0..1: proposed (1, 0) -> (0, +1 %); held (.5, 0) -> (0, .5 %).
    Step 1, bar 2, bars 1..2: both (.5, .5) -> (-.5 %, +2 %).
    Step 2, bar 3, bars 2..3: proposal NaN (skipped); held (0, 1) -> (+1 %, +2 %).
    sd of two scenarios = |x1 - x0| / sqrt(2); CVaR95 of two = minus the worse one.
    """
    returns = np.array([[0.0, 0.0], [0.01, -0.02], [0.03, 0.01], [-0.01, 0.02]])
    proposed = np.array([[1.0, 0.0], [0.5, 0.5], [np.nan, 0.0]])
    held = np.array([[0.5, 0.0], [0.5, 0.5], [0.0, 1.0]])
    bt = _hand_backtest(proposed, held, np.array([1, 2, 3]), np.array([0, 0, 2]))
    out = ev.regime_diagnostics(bt, returns, 2)
    assert list(out) == ["trend", "high_volatility"]
    ann = math.sqrt(252) / math.sqrt(2)
    trend, hv = out["trend"], out["high_volatility"]
    assert trend["n_bars"] == 2 and trend["fraction"] == pytest.approx(2 / 3)
    assert trend["proposed_gross"] == pytest.approx(1.0)
    assert trend["held_gross"] == pytest.approx(0.75)
    assert trend["proposed_volatility"] == pytest.approx((0.01 + 0.025) / 2 * ann)
    assert trend["held_volatility"] == pytest.approx((0.005 + 0.025) / 2 * ann)
    assert trend["proposed_cvar"] == pytest.approx((0.0 + 0.005) / 2)
    assert trend["held_cvar"] == pytest.approx((0.0 + 0.005) / 2)
    assert trend["nan_proposals"] == 0
    assert hv["n_bars"] == 1 and hv["nan_proposals"] == 1
    assert math.isnan(hv["proposed_gross"]) and math.isnan(hv["proposed_cvar"])
    assert hv["held_gross"] == pytest.approx(1.0)
    assert hv["held_volatility"] == pytest.approx(0.01 * ann)
    assert hv["held_cvar"] == pytest.approx(-0.01)  # both scenarios gain
    with pytest.raises(DataError, match=r"needs bars 4\.\.3"):
        ev.regime_diagnostics(bt, returns, 5)
    with pytest.raises(DataError, match=r"shape \(4, 3\) for 'hand' with 2 assets"):
        ev.regime_diagnostics(bt, np.zeros((4, 3)), 2)
    with pytest.raises(ConfigError, match="window = 1"):
        ev.regime_diagnostics(bt, returns, 1)


def test_evaluate_reports_regime_risk_over_the_env_cvar_window(tiny_params) -> None:
    res = ev.evaluate([FixedWeights(np.full(6, 1 / 6), "equal_weight")], params=tiny_params)
    bt = res.backtests[0]
    window = tiny_params.cfg.env.cvar_window
    assert res.meta["risk_window"] == window
    assert res.regime_risk["equal_weight"] == ev.regime_diagnostics(
        bt, tiny_params.returns, window, alpha=0.95
    )
    assert sum(x["fraction"] for x in res.regime_risk["equal_weight"].values()) == pytest.approx(1)
    assert res.to_json()["regime_risk"] is res.regime_risk


# ----------------------------------------------------------------------------- names


def test_baseline_names_resolve_all_and_aliases() -> None:
    assert ev.baseline_names("all") == ev.ALL_BASELINES
    assert ev.baseline_names("1/N, hrp,barbell,min_var,hrp") == (
        "equal_weight", "hrp", "cluster_barbell", "min_variance",
    )  # fmt: skip
    assert ev.baseline_names("none") == ()
    assert ev.baseline_names(None) == ()
    with pytest.raises(ConfigError, match="unknown"):
        ev.baseline_names("hrp,nonsense")
    with pytest.raises(ConfigError, match="baseline None is a NoneType"):
        ev.baseline_names([None])  # type: ignore[list-item]


def test_build_baselines_reads_one_string_as_names(eval_cfg: AllocgymConfig) -> None:
    assert list(ev.build_baselines(eval_cfg, "hrp")) == ["hrp"]  # not 'h', 'r', 'p'
    assert list(ev.build_baselines(eval_cfg, "hrp, 1/n")) == ["hrp", "equal_weight"]


def test_every_registered_baseline_builds(eval_cfg: AllocgymConfig) -> None:
    built = ev.build_baselines(eval_cfg, ["all", "engine"])
    assert set(built) == {*ev.ALL_BASELINES, "engine"}
    for name, alloc in built.items():
        assert isinstance(alloc, ev.Allocator), name


# ----------------------------------------------------------------------------- the CLI


def test_evaluate_cli_table_matches_metrics_recomputed_from_saved_returns(
    tmp_path: Path, eval_cfg: AllocgymConfig, eval_market: MarketData
) -> None:
    """Acceptance: `allocgym evaluate` on a tiny synthetic run; the table in results.json
    equals the metrics recomputed from the return series saved beside it."""
    from allocgym.cli import app

    run = make_untrained_run(tmp_path / "run", eval_cfg, eval_market)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(
            app, ["evaluate", "--run", str(run), "--baselines", "1/n,hrp,min_var"]
        )
    assert res.exit_code == 0, res.output
    assert "ppo_seed0" in res.output and "equal_weight" in res.output
    data = json.loads((run / "results.json").read_text())
    assert set(data["series"]) == {"ppo_seed0", "equal_weight", "hrp", "min_variance"}
    table = {row["allocator"]: row for row in data["table"]}
    for name, series in data["series"].items():
        r = np.asarray(series["returns"])
        assert len(r) == 193
        row = table[name]
        assert row["ann_return"] == pytest.approx(float(measures.annualized_return(r)), rel=1e-9)
        assert row["ann_volatility"] == pytest.approx(
            float(measures.annualized_volatility(r)), rel=1e-9
        )
        assert row["sharpe"] == pytest.approx(float(measures.sharpe_ratio(r)), rel=1e-9)
        assert row["sortino"] == pytest.approx(float(measures.sortino_ratio(r)), rel=1e-9)
        assert row["max_drawdown"] == pytest.approx(float(measures.max_drawdown(r)), rel=1e-9)
        assert row["calmar"] == pytest.approx(float(measures.calmar_ratio(r)), rel=1e-9)
        assert row["cvar"] == pytest.approx(float(measures.cvar(r, 0.95)), rel=1e-9)
        assert row["invariant_breaches"] == 0
        eq = np.asarray(series["equity"])
        assert eq == pytest.approx(1e6 * np.cumprod(1 + r), rel=1e-9)
        assert row["dsr"] == data["metrics"][name]["dsr"]
    assert data["dsr"]["n_trials"] == 1  # one agent seed; the three baselines are no trials
    assert data["dsr"]["trial_names"] == ["ppo_seed0"] and data["dsr"]["sr0"] == 0.0
    assert data["dsr"]["source"] == "agent seeds" and data["dsr"]["weak"] is True
    tests = data["paired_tests"]["rows"]["ppo_seed0"]
    assert tests["equal_weight"]["reference"] == "equal_weight" and "p_value" in tests["hrp"]
    assert set(data["regime_risk"]) == set(data["series"])
    assert data["meta"]["split"] == "test" and data["meta"]["runs"] == {"0": str(run)}
    assert data["meta"]["drawdown_kill"] == 1.0 and data["meta"]["wiped_out"] == {}
    assert (run / "report.html").is_file() and (run / "plots" / "equity.png").is_file()


def test_evaluate_run_takes_absolute_and_relative_run_paths_together(
    tmp_path: Path, eval_cfg: AllocgymConfig, eval_market: MarketData, monkeypatch
) -> None:
    """One --run absolute and one relative had crashed in os.path.commonpath."""
    a = make_untrained_run(tmp_path / "study" / "a", eval_cfg, eval_market)
    seed1 = eval_cfg.model_copy(update={"train": eval_cfg.train.model_copy(update={"seed": 1})})
    make_untrained_run(tmp_path / "study" / "b", seed1, eval_market)
    monkeypatch.chdir(tmp_path / "study")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ev.evaluate_run([a, "b"], baselines="none", market=eval_market)
    assert res.meta["run_dir"] == str((tmp_path / "study").resolve())
    assert len(res.meta["runs"]) == 2


def test_evaluate_run_takes_the_dsr_trials_from_the_study_ledger(
    tmp_path: Path, eval_cfg: AllocgymConfig, eval_market: MarketData
) -> None:
    """trials.jsonl in the run's parent (the study directory) is found; a configured one wins."""
    from allocgym.ledger import new_run_id

    run = make_untrained_run(tmp_path / "study" / "run", eval_cfg, eval_market)
    new_run_id(run)  # as a training's fresh start writes it (no ledger line: killed)
    _write_study_ledger(tmp_path / "study" / "trials.jsonl")
    other = TrialsLedger(tmp_path / "elsewhere.jsonl")
    for s, sharpe in enumerate((0.1, 0.3, 0.2)):
        other.append({"config_hash": "c", "seed": s, "run_dir": f"r{s}", "status": "completed",
                      "metrics": {"val_sharpe": sharpe}})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = ev.evaluate_run(run, baselines="1/n", market=eval_market)
        configured = ev.evaluate_run(
            run, baselines="1/n", market=eval_market,
            overrides=[f"evaluation.trials_ledger={other.path}"],
        )  # fmt: skip
    # the evaluated run is in neither ledger (as if killed before it recorded itself)
    assert found.dsr["source"] == "ledger" and found.dsr["n_trials"] == 5 + 1
    assert "1 evaluated run(s) are not in the ledger" in found.dsr["note"]
    assert found.meta["trials_ledger"] == str(tmp_path / "study" / "trials.jsonl")
    assert configured.dsr["n_trials"] == 3 + 1
    assert configured.dsr["sharpe_variance_annual"] == pytest.approx(0.01)  # var(.1, .3, .2)
    assert configured.meta["trials_ledger"] == str(other.path)


def test_find_agent_runs_seed_folders_and_errors(
    tmp_path: Path, eval_cfg: AllocgymConfig, eval_market: MarketData
) -> None:
    for s in (3, 1):
        cfg = load_config(None, [*TINY, f"train.seed={s}"])
        make_untrained_run(tmp_path / f"seed_{s:03d}", cfg, eval_market)
    runs = ev.find_agent_runs(tmp_path)
    assert [s for s, _ in runs] == [1, 3]
    assert [s for s, _ in ev.find_agent_runs(tmp_path, [3])] == [3]
    with pytest.raises(ConfigError, match="seeds \\[2\\] not found"):
        ev.find_agent_runs(tmp_path, [2])
    with pytest.raises(ConfigError, match="no trained run"):
        ev.find_agent_runs(tmp_path / "nothing")
    cfg = ev.run_config(runs)
    assert cfg.train.seed == 1


def test_budgets_mode_attributes_pnl_to_strategy_families(
    eval_cfg: AllocgymConfig, eval_market: MarketData
) -> None:
    cfg = eval_cfg.model_copy(
        update={"env": eval_cfg.env.model_copy(update={"action_mode": "budgets"})}
    )
    params = ev.evaluation_params(eval_market, cfg)
    assert params.action_spec.mode == "budgets"
    pol = ConstantPolicy(np.array([1.0, -1.0, 0.5, -1.0], np.float32), "budget_agent")
    agent, base = ev.run_allocators([pol, FixedWeights(np.full(6, 0.1))], params=params)
    assert agent.strategy_names == ("trend", "mean_reversion", "defensive")
    assert agent.strategy_pnl is not None and agent.strategy_pnl.shape == (agent.n_steps, 3)
    assert base.strategy_pnl is None  # baselines propose weights: one strategy
    m = ev.backtest_metrics(agent)
    strat = m["attribution"]["strategies"]
    assert set(strat) == {"trend", "mean_reversion", "defensive", "unattributed"}
    assert sum(strat.values()) == pytest.approx(sum(m["attribution"]["assets"].values()), abs=1e-12)
    # the first bar holds no book yet, so nothing is attributed there
    assert np.all(agent.strategy_pnl[0] == 0.0)
    assert np.abs(agent.strategy_pnl).sum() > 0
    # per-strategy budget trace: softmax(3 * action) budgets, trend capped by STRATEGY_CAP
    z = np.exp(3.0 * np.array([1.0, -1.0, 0.5, -1.0]))
    budgets = z / z.sum()  # trend 0.80, mean reversion 0.002, defensive 0.18, cash 0.002
    trace = agent.strategy_gross
    assert trace is not None and trace.shape == (agent.n_steps, 3) and base.strategy_gross is None
    steps = agent.strategy_budget
    assert steps is not None and steps.shape == (agent.n_steps, 3, 3)
    assert np.all(steps[:, :, 0] == cfg.risk.max_strategy_contribution)  # base budgets
    assert np.array_equal(steps[:, :, 2], steps[:, :, 1])  # no capacity references set
    assert budgets[0] > steps[:, 0, 2].max()  # trend always above its budget: scaled
    assert np.all(trace[:, 0] <= steps[:, 0, 2] + 1e-12)
    # the family lines are the approved book's gross, split over the families
    assert np.allclose(trace.sum(1), np.abs(agent.approved).sum(1), rtol=1e-12, atol=1e-15)
    assert m["strategy_gross"] == {
        s: pytest.approx(float(v)) for s, v in zip(agent.strategy_names, trace.mean(0), strict=True)
    }
    assert "strategy_gross" in agent.arrays() and "strategy_gross" not in base.arrays()


def test_evaluation_train_seeds_key() -> None:
    """The quickstart's training seeds are ``evaluation.train_seeds``; ``seeds`` is unknown."""
    from allocgym.config import config_from_dict

    assert config_from_dict({"evaluation": {"train_seeds": [0, 2]}}).evaluation.train_seeds == (
        0,
        2,
    )
    assert load_config(None, ["evaluation.train_seeds=[1,3]"]).evaluation.train_seeds == (1, 3)
    with pytest.raises(ConfigError, match=r"unknown key 'evaluation\.seeds'"):
        config_from_dict({"evaluation": {"seeds": [0]}})


def test_baselines_cli_prints_the_table(tmp_path: Path) -> None:
    from allocgym.cli import app

    sets = [x for item in TINY for x in ("--set", item)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(
            app, ["baselines", "--only", "hrp,1/n", "--out", str(tmp_path), *sets]
        )
    assert res.exit_code == 0, res.output
    assert "hrp" in res.output and "equal_weight" in res.output and "Sharpe" in res.output
    data = json.loads((tmp_path / "results.json").read_text())
    assert list(data["series"]) == ["hrp", "equal_weight"]


def test_a_bad_factor_file_is_refused_before_the_walk(
    eval_cfg: AllocgymConfig, eval_market: MarketData, tmp_path: Path
) -> None:
    """The factor file is read before any allocator walks the split, so a file without
    the market's dates costs seconds, not a whole backtest."""
    from allocgym.baselines.registry import build_baselines
    from allocgym.config import config_from_dict
    from allocgym.errors import DataError
    from allocgym.evaluation import evaluate

    bad = tmp_path / "factors.csv"
    bad.write_text("date,MKT\n1990-01-02,0.01\n")
    tree = eval_cfg.model_dump(mode="json")
    tree["data"]["factors"] = str(bad)
    cfg = config_from_dict(tree)
    walked: list[int] = []

    def runner(allocators, params, progress):
        walked.append(len(allocators))
        raise AssertionError("walked before the factor file was read")

    with pytest.raises(DataError, match="has no row for"):
        evaluate(
            list(build_baselines(cfg, "equal_weight").values()),
            eval_market, cfg, "test", runner=runner,
        )  # fmt: skip
    assert walked == []


# ----------------------------------------------------------------------------- annualisation


def _stamps(days: int, per_day: int, first: int = 0, last: int | None = None) -> np.ndarray:
    """``per_day`` 5-minute bars from 09:30 on ``days`` business days, the first day cut to
    start at bar ``first`` and the last to end before bar ``last``."""
    import pandas as pd

    out = [d + pd.Timedelta(hours=9, minutes=30 + 5 * i)
           for d in pd.bdate_range("2024-01-02", periods=days) for i in range(per_day)]  # fmt: skip
    stop = None if last is None else len(out) - per_day + last
    return np.array(out[first:stop], dtype="datetime64[ns]")


def test_bars_per_year_reads_the_calendar() -> None:
    from allocgym.data import bars_per_year

    daily = np.arange("2020-01-01", "2021-01-01", dtype="datetime64[D]")
    business = daily[np.is_busday(daily)]
    assert bars_per_year(business) == 252.0 == bars_per_year(daily) == bars_per_year(daily[:1])
    # a walk's cut first and last days and a half session do not lower a full day's 78
    cut = _stamps(5, 78, first=60, last=12)
    assert bars_per_year(cut) == 252.0 * 78
    half = np.concatenate([_stamps(3, 78), _stamps(1, 42) + np.timedelta64(7, "D")])
    assert bars_per_year(half) == 252.0 * 78
    weekly = daily[::7]
    assert bars_per_year(weekly) == pytest.approx(365.25 / 7)


def test_intraday_walk_is_annualised_with_its_own_bars_per_year() -> None:
    """5-minute bars: ``auto`` annualises with 252 x 78 bars (the 252 of daily bars
    understated the volatility 8.8x); a number set by hand is kept, with a warning."""
    import dataclasses

    rng = np.random.default_rng(3)
    n = 3 * 78
    r = rng.normal(2e-5, 1e-3, n)
    bt = _hand_backtest(np.zeros((n, 1)), np.ones((n, 1)), np.arange(1, n + 1), np.zeros(n))
    bt = dataclasses.replace(bt, dates=_stamps(3, 78), returns=r, turnover=np.full(n, 0.01))
    ppy = 252.0 * 78
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = ev.summarize([bt])
    m = res.metrics["hand"]
    assert res.meta["periods_per_year"] == ppy
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(ppy), rel=1e-12)
    assert m["ann_volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(ppy), rel=1e-12)
    assert m["turnover"] == pytest.approx(0.01 * ppy, rel=1e-12)
    with pytest.warns(
        Warning, match=r"periods_per_year = 252 annualises bars that come about 19656"
    ):
        by_hand = ev.summarize([bt], EvaluationConfig(periods_per_year=252))
    assert by_hand.meta["periods_per_year"] == 252.0
    assert by_hand.metrics["hand"]["sharpe"] == pytest.approx(m["sharpe"] / math.sqrt(78))


def test_equity_plot_starts_on_the_walks_first_bar_and_shows_a_wipe_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A book wiped out below 0 keeps a linear axis (a log one had dropped every point at
    or below 0, so the curve just stopped), its wipe-out marked; the curve's first point is
    the walk's first bar (it had been the first fill's date minus a calendar day)."""
    import dataclasses

    from allocgym import plots

    figs: list = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig) or path)
    n = 6
    bt = _hand_backtest(np.zeros((n, 1)), np.ones((n, 1)), np.arange(1, n + 1), np.zeros(n))
    equity = np.array([1.1, 0.9, -0.2, -0.2, -0.2, -0.2])
    bt = dataclasses.replace(bt, equity=equity, returns=np.zeros(n), wiped_out_at=2)
    res = ev.summarize([bt])
    res.meta["walk_start"] = "1969-12-29T00:00:00"
    plots.plot_equity(res, tmp_path / "equity.png")
    ax = figs[0].axes[0]
    assert ax.get_yscale() == "linear"
    x, y = ax.get_lines()[0].get_data()
    assert np.array_equal(y, np.concatenate([[1.0], equity]))
    assert np.datetime64(_matplotlib_date(x[0]), "D") == np.datetime64("1969-12-29")
    assert any("wiped out" in t.get_text() for t in ax.texts)


def _matplotlib_date(value: object) -> np.datetime64:
    """A line's x value (a datetime64 or matplotlib's day number) as datetime64."""
    import matplotlib.dates as mdates

    if isinstance(value, np.datetime64):
        return value
    return np.datetime64(mdates.num2date(float(value)).replace(tzinfo=None))
