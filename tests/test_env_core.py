"""The batched functional core: sampling, reset, step, episode ends, parity with the parts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocgym.config import AllocgymConfig, config_from_dict
from allocgym.costs import expected_cost
from allocgym.data import MarketData, Split, synthetic
from allocgym.envs import REASON_CODES, REASON_NAMES, EnvParams, core
from allocgym.errors import ConfigError
from allocgym.execution import ExecutionParams, Triggers, trigger_inputs
from allocgym.intents import IntentAggregator
from allocgym.risk import ReasonCode


def _cfg(**env) -> AllocgymConfig:
    return config_from_dict({"env": {"split": "all", "episode_length": 40, **env}})


@pytest.fixture(scope="module")
def market() -> MarketData:
    return synthetic(n_assets=8, n_days=700, seed=11, n_sectors=4)


@pytest.fixture(scope="module")
def params(market) -> EnvParams:
    return EnvParams.from_config(market, _cfg())


def _random_actions(rng, params, b):
    return rng.uniform(-1, 1, (b, params.action_spec.action_dim)).astype(np.float32)


# ------------------------------------------------------------------------------ sampling


def test_start_bars_inside_split_and_batch_equals_singles(params):
    keys = core.seed_keys(np.arange(200))
    eps = np.arange(200, dtype=np.uint64) % 3
    starts = core.start_bars(params, keys, eps)
    assert starts.min() >= params.lo
    assert starts.max() <= params.lo + params.n_starts - 1
    assert starts.max() + params.episode_length <= params.split.stop - 1
    singles = [core.start_bars(params, keys[i : i + 1], eps[i : i + 1])[0] for i in range(200)]
    assert np.array_equal(starts, singles)
    # different episodes of one key draw different windows (not a constant)
    one = core.start_bars(params, np.zeros(50, np.uint64), np.arange(50, dtype=np.uint64))
    assert np.unique(one).size > 25


def test_lo_respects_feature_history_and_cvar_window(market):
    p = EnvParams.from_config(market, _cfg(cvar_window=400))
    assert p.lo == 400
    p = EnvParams.from_config(market, _cfg())
    assert p.lo == p.feature_builder.history - 1
    p = EnvParams.from_config(market, _cfg(), split=(500, 700))
    assert p.lo == 500 and p.split == Split("custom", 500, 700)
    with pytest.raises(ConfigError, match="no step after the warm-up"):
        EnvParams.from_config(market, _cfg(), split=(0, 200))
    with pytest.raises(ConfigError, match="split = 'nope'"):
        EnvParams.from_config(market, _cfg(), split="nope")


def test_named_splits_come_from_walk_forward_splits(sp500):
    from allocgym.data import walk_forward_splits

    cfg = config_from_dict({"env": {"split": "validation"}})
    p = EnvParams.from_config(sp500, cfg, split="test")
    assert p.split == walk_forward_splits(sp500, cfg.data.splits)["test"]
    assert p.lo == p.split.start


# ------------------------------------------------------------------------------ reset


def test_reset_is_all_cash_with_the_builders_observation(params):
    keys = core.seed_keys([3, 4, 5])
    state, obs = core.reset(params, keys)
    eq0 = params.cfg.env.initial_equity
    assert np.array_equal(state.cash, [eq0] * 3) and np.array_equal(state.equity, [eq0] * 3)
    assert not state.shares.any()
    assert np.array_equal(state.t, core.start_bars(params, keys, np.zeros(3, np.uint64)))
    expected = params.feature_builder.observation(
        params.features.take(state.t), np.zeros((3, params.n_assets)), np.zeros(3), np.ones(3)
    )
    assert obs.dtype == np.float32
    assert np.array_equal(obs, expected)
    assert np.all(obs >= params.obs_low) and np.all(obs <= params.obs_high)


def test_reset_observation_equals_the_serving_compute_path(params, market):
    """One feature implementation: env observation == FeatureBuilder.compute on the window."""
    t = params.lo + 17
    _state, obs = core.reset(params, core.seed_keys([0]), start=np.array([t]))
    h = params.feature_builder.history
    sl = slice(t - h + 1, t + 1)
    feats = params.feature_builder.compute(
        market.close[sl][None],
        market.benchmark_returns[sl][None],
        market.volume[sl][None],
        market.spread_bps[sl][None],
        market.tradable[sl][None],
    )
    served = params.feature_builder.observation(feats, np.zeros((1, 8)), np.zeros(1), np.ones(1))
    assert np.array_equal(obs, served)


def test_explicit_start_is_checked(params):
    with pytest.raises(ConfigError, match="outside"):
        core.reset(params, core.seed_keys([0]), start=np.array([params.lo - 1]))


# ------------------------------------------------------------------------------ step


def test_reason_counts_by_hand():
    sym = int(ReasonCode.SYMBOL_CAP)
    gross = int(ReasonCode.GROSS_CAP)
    band = int(ReasonCode.NO_TRADE_BAND)
    reasons = np.array([[sym | gross, gross, 0], [band, 0, sym | band]], dtype=np.int64)
    counts = core.reason_counts(reasons)
    k = {n: i for i, n in enumerate(REASON_NAMES)}
    assert counts.shape == (2, len(REASON_CODES))
    assert counts[0, k["SYMBOL_CAP"]] == 1 and counts[0, k["GROSS_CAP"]] == 2
    assert counts[1, k["NO_TRADE_BAND"]] == 2 and counts[1, k["SYMBOL_CAP"]] == 1
    assert counts.sum() == 6
    assert REASON_NAMES[-2:] == ("LOT_ROUNDING", "FACTOR_CAP")


def test_step_accounting_identities(params):
    rng = np.random.default_rng(0)
    state, _ = core.reset(params, core.seed_keys(np.arange(16)))
    for _ in range(30):
        t = state.t.copy()
        res = core.step(params, state, _random_actions(rng, params, 16))
        new = res.state
        info = res.info
        p1 = params.prices[t + 1]
        # marks: equity = cash + shares . p_{t+1}; shares moved by exactly the orders
        assert np.allclose(new.equity, new.cash + (new.shares * p1).sum(1), rtol=1e-12)
        assert np.array_equal(new.shares, state.shares + info["delta_qty"])
        assert np.array_equal(new.t, t + 1) and np.array_equal(info["t"], t)
        # cost: the cost model on the traded weights at the fill bar
        value_pre = state.cash + (state.shares * p1).sum(1)
        trade = info["delta_qty"] * p1 / value_pre[:, None]
        cost = expected_cost(
            trade,
            value_pre,
            params.features.adv_notional[t + 1],
            params.features.volatility[t + 1],
            params.spread_bps[t + 1],
            params.cost_model,
        ).sum(1)
        assert np.array_equal(info["cost"], cost)
        assert np.allclose(new.equity, value_pre * (1 - cost), rtol=1e-12)
        assert np.array_equal(res.reward, info["reward"])
        assert np.allclose(np.exp(info["log_growth"]), new.equity / state.equity, rtol=1e-12)
        assert np.all(new.peak >= new.equity)
        assert res.obs.shape == (16, params.obs_dim) and res.obs.dtype == np.float32
        done = res.terminated | res.truncated
        state, _ = core.autoreset(params, new, done)


def test_gates_and_execution_are_called_not_reimplemented(params):
    """Parity: the env's approved book and orders are RiskGateChain / ExecutionPolicy output."""
    rng = np.random.default_rng(1)
    state, _ = core.reset(params, core.seed_keys(np.arange(6)))
    state = core.step(params, state, _random_actions(rng, params, 6)).state
    action = _random_actions(rng, params, 6)
    res = core.step(params, state, action)
    proposed = params.action_spec.to_weights(action)
    ctx = core.gate_context(params, state)
    gate = params.gates.apply(proposed, ctx)
    trig = params.triggers
    t = state.t
    at_t = Triggers(trig.scheduled[t], trig.vol_ratio[t], trig.spread_ratio[t])
    ex = params.execution.apply(gate, ctx, at_t)
    assert np.array_equal(res.info["proposed"], proposed)
    assert np.array_equal(res.info["approved"], gate.approved)
    assert np.array_equal(res.info["symbol_reasons"], ex.reasons)
    assert np.array_equal(res.info["delta_qty"], ex.delta_qty)
    # the context is data at t only
    assert np.array_equal(ctx.prices, params.prices[t])
    assert np.array_equal(ctx.volatility, params.features.volatility[t])
    assert np.array_equal(ctx.regime, params.features.regime[t])


def test_step_equals_step_proposed_with_the_action_map(params):
    rng = np.random.default_rng(2)
    state, _ = core.reset(params, core.seed_keys(np.arange(4)))
    action = _random_actions(rng, params, 4)
    a = core.step(params, state.copy(), action)
    b = core.step_proposed(params, state.copy(), params.action_spec.to_weights(action))
    assert np.array_equal(a.obs, b.obs) and np.array_equal(a.reward, b.reward)


def test_budgets_mode_nets_intents_through_the_aggregator(market):
    p = EnvParams.from_config(market, _cfg(action_mode="budgets"))
    rng = np.random.default_rng(3)
    state, _ = core.reset(p, core.seed_keys(np.arange(5)))
    action = _random_actions(rng, p, 5)
    res = core.step(p, state, action)
    budgets = p.action_spec.to_budgets(action)
    w, contrib = IntentAggregator(long_only=True).aggregate(budgets, p.features.intents[state.t])
    assert np.array_equal(res.info["proposed"], w)
    assert np.array_equal(res.info["strategy_contributions"], contrib)
    assert np.array_equal(res.info["budgets"], budgets)
    assert res.info["strategy_scale"].shape == (5, 3)
    assert np.array_equal(res.decision.context.strategy_weights, contrib)
    # NaN actions become a NaN proposal the gates code INVALID_INPUT (no exception)
    bad = action.copy()
    bad[0, 0] = np.nan
    res = core.step(p, state.copy(), bad)
    assert res.info["portfolio_reasons"][0] & int(ReasonCode.INVALID_INPUT)
    assert np.isfinite(res.reward).all()


def test_truncation_at_episode_length_and_split_end(market):
    p = EnvParams.from_config(market, _cfg(episode_length=5))
    state, _ = core.reset(p, core.seed_keys([0]))
    zero = np.zeros((1, p.action_spec.action_dim), np.float32)
    for k in range(5):
        res = core.step(p, state, zero)
        assert res.truncated[0] == (k == 4) and not res.terminated[0]
        state = res.state
    assert state.steps[0] == 5
    # a start 3 bars before the split's last bar truncates after 3 steps (end of data)
    last = p.split.stop - 1
    state, _ = core.reset(p, core.seed_keys([0]), start=np.array([last - 3]))
    for k in range(3):
        res = core.step(p, state, zero)
        state = res.state
        assert res.truncated[0] == (k == 2)
    assert state.t[0] == last


def test_autoreset_touches_only_done_rows(params):
    rng = np.random.default_rng(4)
    state, _ = core.reset(params, core.seed_keys(np.arange(4)))
    state = core.step(params, state, _random_actions(rng, params, 4)).state
    before = state.copy()
    done = np.array([False, True, False, True])
    new, obs = core.autoreset(params, state, done)
    assert obs.shape == (2, params.obs_dim)
    for name in ("t", "shares", "cash", "equity", "steps", "episode"):
        a, b = getattr(new, name), getattr(before, name)
        assert np.array_equal(a[~done], b[~done])
    assert np.array_equal(new.episode[done], before.episode[done] + 1)
    assert np.array_equal(new.steps[done], [0, 0])
    assert np.array_equal(new.t[done], core.start_bars(params, new.key[done], new.episode[done]))
    assert not new.shares[done].any()


def _crash_market(crash: float, n_warm: int = 320) -> MarketData:
    """Two assets: a calm random walk, then asset A moves by ``crash`` in one bar."""
    rng = np.random.default_rng(7)
    logp = np.cumsum(rng.normal(0, 0.005, (n_warm, 2)), axis=0)
    close = 100 * np.exp(logp)
    tail = np.repeat(close[-1:], 10, axis=0)
    tail[2:, 0] *= 1 + crash
    close = np.vstack([close, tail])
    n = close.shape[0]
    return MarketData(
        dates=pd.bdate_range("2001-01-01", periods=n).to_numpy(dtype="datetime64[ns]"),
        symbols=("A", "B"),
        close=close,
        volume=np.full((n, 2), 1e9),
        spread_bps=np.full((n, 2), 5.0),
        sectors=("s0", "s1"),
        benchmark_returns=np.r_[0.0, (close[1:] / close[:-1] - 1).mean(1)],
        tradable=np.ones((n, 2), dtype=bool),
    )


_LOOSE = {
    "max_symbol_weight": 1.0,
    "max_gross": 1.0,
    "max_sector_gross": 1.0,
    "max_turnover": 2.0,
    "max_participation": 1.0,
    "slippage_budget_bps": 1000.0,
    "regime_budget_multipliers": {},
    "regime_capacity_multipliers": {},
}


def test_drawdown_kill_flattens_then_terminates():
    market = _crash_market(-0.4)
    cfg = config_from_dict(
        {"risk": _LOOSE, "env": {"split": "all", "episode_length": 8, "drawdown_kill": 0.2}}
    )
    p = EnvParams.from_config(market, cfg)
    start = market.n_days - 10
    state, _ = core.reset(p, core.seed_keys([0]), start=np.array([start]))
    all_in = np.array([[1.0, 0.0]])
    res = core.step_proposed(p, state, all_in)  # fill at start+1
    assert not res.state.kill[0]
    res = core.step_proposed(p, res.state, all_in)  # A falls 40% into start+2
    assert res.info["drawdown"][0] > 0.2 and res.state.kill[0]
    assert not res.terminated[0]
    res = core.step_proposed(p, res.state, all_in)  # this decision runs with the kill switch
    assert res.terminated[0] and not res.truncated[0]
    assert res.info["kill_switch"][0]
    assert np.array_equal(res.info["approved"][0], [0.0, 0.0])
    assert np.all(res.info["symbol_reasons"][0] & int(ReasonCode.KILL_SWITCH))
    assert np.abs(res.state.shares[0]).max() == 0.0


def test_equity_at_or_below_zero_terminates():
    market = _crash_market(3.0)  # A quadruples: a 100% short loses 300%
    cfg = config_from_dict(
        {
            "risk": {**_LOOSE, "long_only": False, "max_net": 1.0},
            "env": {"split": "all", "episode_length": 8, "drawdown_kill": 1.0},
        }
    )
    p = EnvParams.from_config(market, cfg)
    state, _ = core.reset(p, core.seed_keys([0]), start=np.array([market.n_days - 10]))
    short = np.array([[-1.0, 0.0]])
    res = core.step_proposed(p, state, short)
    assert not res.terminated[0]
    res = core.step_proposed(p, res.state, short)
    assert res.info["equity"][0] <= 0.0
    assert res.terminated[0]
    assert np.isfinite(res.reward[0]) and res.reward[0] < -20  # log floor, not -inf
    assert res.obs.shape == (1, p.obs_dim)


def test_episode_metrics_use_the_measures(params):
    from allocgym import measures

    rng = np.random.default_rng(5)
    state, _ = core.reset(params, core.seed_keys(np.arange(3)))
    rets = []
    for _ in range(10):
        res = core.step(params, state, _random_actions(rng, params, 3))
        rets.append(res.state.equity / state.equity - 1)
        state = res.state
    m = core.episode_metrics(params, state, np.array([0, 2]))
    r = np.array(rets).T
    assert m[0]["n_steps"] == 10
    assert m[1]["sharpe"] == pytest.approx(measures.sharpe_ratio(r[2]), rel=1e-12)
    assert m[0]["cvar"] == pytest.approx(measures.cvar(r[0], 0.95), rel=1e-12)
    assert m[0]["max_drawdown"] == pytest.approx(measures.max_drawdown(r[0]), rel=1e-12)
    assert sum(m[0]["regime_mix"].values()) == pytest.approx(1.0)
    assert m[0]["total_return"] == pytest.approx(np.prod(1 + r[0]) - 1, rel=1e-9)
    assert set(m[0]) >= {"turnover", "costs", "interventions", "mean_gross", "mean_net"}


def test_scenario_returns_paths_agree_bit_for_bit(params, monkeypatch, market):
    rng = np.random.default_rng(6)
    t = rng.integers(params.lo, params.split.stop - 1, 50)
    w = rng.uniform(0, 0.2, (50, params.n_assets))
    block = core.scenario_returns(params, t, w)
    monkeypatch.setattr(core, "_GATHER_MAX_ASSETS", 0)
    rows = core.scenario_returns(params, t, w)
    assert np.array_equal(block, rows)
    single = np.concatenate(
        [core.scenario_returns(params, t[i : i + 1], w[i : i + 1]) for i in range(50)]
    )
    assert np.array_equal(single, rows)
    wl = params.cfg.env.cvar_window
    by_hand = market.returns[t[3] - wl + 1 : t[3] + 1] @ w[3]
    assert np.allclose(rows[3], by_hand, rtol=1e-12, atol=1e-17)


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 600), st.integers(1, 8), st.integers(0, 2**31))
def test_reason_counts_match_a_bit_loop(n_assets, n_envs, seed):
    rng = np.random.default_rng(seed)
    top = max(int(c) for c in REASON_CODES) * 2
    r = rng.integers(0, top, (n_envs, n_assets)) * (rng.random((n_envs, n_assets)) < 0.6)
    bits = np.array([int(c).bit_length() - 1 for c in REASON_CODES])
    ref = ((r[:, :, None] >> bits) & 1).sum(axis=1)
    assert np.array_equal(core.reason_counts(r), ref)


def test_trigger_inputs_are_the_execution_modules_on_trailing_windows(params, market):
    ep = ExecutionParams.from_config(params.cfg.execution)
    for t in (params.lo, params.lo + 33, params.split.stop - 2):
        r = market.returns[t - ep.vol_long_window + 1 : t + 1][None]
        s = params.spread_bps[t - ep.spread_window + 1 : t + 1][None]
        direct = trigger_inputs(r, s, ep, t)
        assert params.triggers.vol_ratio[t] == direct.vol_ratio[0]
        assert params.triggers.spread_ratio[t] == direct.spread_ratio[0]
        assert params.triggers.scheduled[t] == direct.scheduled[0]


def test_scheduled_only_execution_trades_on_schedule(market):
    cfg = config_from_dict(
        {
            "env": {"split": "all", "episode_length": 40},
            "execution": {"scheduled_only": True, "schedule_every": 5, "vol_spike_ratio": 1e6,
                          "spread_blowout_ratio": 1e6},
        }
    )  # fmt: skip
    p = EnvParams.from_config(market, cfg)
    rng = np.random.default_rng(8)
    state, _ = core.reset(p, core.seed_keys(np.arange(8)))
    traded_off_schedule = 0
    traded_on_schedule = 0
    for _ in range(15):
        res = core.step(p, state, _random_actions(rng, p, 8))
        traded = np.abs(res.info["delta_qty"]).sum(1) > 0
        on = state.t % 5 == 0
        forced = res.info["portfolio_reasons"] & int(
            ReasonCode.FORCED_DERISK | ReasonCode.KILL_SWITCH
        )
        traded_off_schedule += int((traded & ~on & (forced == 0)).sum())
        traded_on_schedule += int((traded & on).sum())
        state = res.state
    assert traded_off_schedule == 0
    assert traded_on_schedule > 0
