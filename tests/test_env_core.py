"""The batched functional core: sampling, reset, step, episode ends, parity with the parts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from gate_books import ENV_RISK
from hypothesis import given, settings
from hypothesis import strategies as st

from allocgym.compiled.env import reason_summary
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


def _splitmix64(x: int) -> int:
    """The splitmix64 finaliser on Python integers, written out from its definition."""
    mask = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_start_bars_are_splitmix_of_key_then_episode(params):
    """start = lo + mix(mix(key) + episode) mod n_starts, in wrap-around uint64 arithmetic
    (keys near 2**64 included): the draw a seed gets never depends on numpy's integer
    promotion."""
    keys = [0, 1, 12345, 2**63 - 1]
    episodes = [0, 1, 7, 2**64 - 1]
    got = core.start_bars(params, core.seed_keys(keys), np.array(episodes, np.uint64))
    mask = (1 << 64) - 1
    expected = [
        params.lo + _splitmix64((_splitmix64(k) + e) & mask) % params.n_starts
        for k, e in zip(keys, episodes, strict=True)
    ]
    assert got.tolist() == expected and got.dtype == np.int64
    # plain Python ints for the episode counters give the same draws
    assert core.start_bars(params, core.seed_keys(keys), episodes).tolist() == expected


def test_seed_keys_refuse_negative_seeds_naming_them():
    keys = core.seed_keys([0, 5, 2**63 - 1])
    assert keys.dtype == np.uint64 and keys.tolist() == [0, 5, 2**63 - 1]
    with pytest.raises(ConfigError, match=r"seeds must be >= 0, got \[-1, -2, -3\]$"):
        core.seed_keys([4, -1, 0, -2, -3, -4])


def test_marks_forward_fill_and_are_zero_before_the_first_price():
    nan = np.nan
    close = np.array([[nan, 10.0], [2.0, nan], [nan, nan], [3.0, 11.0], [nan, 12.0]])
    marks = core._marks(close)
    assert marks.tolist() == [[0.0, 10.0], [2.0, 10.0], [2.0, 10.0], [3.0, 11.0], [3.0, 12.0]]
    assert marks.dtype == np.float64 and not marks.flags.writeable
    assert core._marks(np.array([[1, 2], [3, 4]])).dtype == np.float64


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


def test_params_wire_the_configured_parts_together(market):
    """A fresh build (not the shared fixture): the gates and execution read the params'
    own limits and cost model, the bar tables are the market's, and the episode windows
    are counted by hand."""
    md = market
    p = EnvParams.from_config(md, _cfg())
    assert p.gates.limits is p.limits and p.gates.cost_model is p.cost_model
    assert p.execution.limits is p.limits
    assert np.array_equal(p.spread_bps, market.spread_bps)
    assert p.delisted is None and p.factor_loadings is None
    # bars lo .. stop - 1: an episode of 40 steps fits at starts lo .. stop - 41
    assert p.n_starts == (market.n_days - 1) - p.lo - 40 + 1
    assert core.resolve_split(md, p.cfg) == Split("all", 0, market.n_days)
    one_step = EnvParams.from_config(md, _cfg(), split=(500, 502))
    assert (one_step.lo, one_step.n_starts) == (500, 1)
    with pytest.raises(ConfigError, match=r"use a longer split or shorter windows$"):
        EnvParams.from_config(md, _cfg(), split=(500, 501))


def test_factor_exposures_in_the_observation_are_the_books_loadings(market):
    """``features.factor_exposures = k``: the observation carries ``B_t^T w`` for the first
    k factors of the trailing factor model, at reset (flat: zeros) and after each step."""
    cfg = config_from_dict(
        {"env": {"split": "all", "episode_length": 40}, "features": {"factor_exposures": 2}}
    )
    p = EnvParams.from_config(market, cfg)
    assert p.factor_loadings is not None and p.feature_builder.n_exposures == 2
    rng = np.random.default_rng(13)
    t = np.array([p.lo + 5, p.lo + 90])
    w = rng.uniform(0.0, 0.2, (2, p.n_assets))
    got = core.book_exposures(p, t, w)
    by_hand = np.stack([p.factor_loadings[t[b]].T @ w[b] for b in range(2)])
    assert np.allclose(got, by_hand, rtol=1e-12, atol=1e-15)
    state, obs = core.reset(p, core.seed_keys([0, 1]), start=t)
    flat = np.zeros((2, p.n_assets))
    expected = p.feature_builder.observation(
        p.features.take(t), flat, np.zeros(2), np.ones(2), exposures=np.zeros((2, 2))
    )
    assert np.array_equal(obs, expected)
    res = core.step(p, state, _random_actions(rng, p, 2))
    exposures = core.book_exposures(p, t + 1, res.info["weights"])
    assert np.abs(exposures).sum() > 0
    expected = p.feature_builder.observation(
        p.features.take(t + 1),
        res.info["weights"],
        res.info["drawdown"],
        res.state.cash / res.state.equity,
        exposures=exposures,
    )
    assert np.allclose(res.obs, expected, rtol=1e-6, atol=1e-7)


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
    last = params.split.stop - 2  # the last bar an episode can start at (one step left)
    for bad in (params.lo - 1, last + 1):
        with pytest.raises(ConfigError, match=rf"\[{bad}\] outside {params.lo}\.\.{last} "):
            core.reset(params, core.seed_keys([0]), start=np.array([bad]))
    state, _ = core.reset(params, core.seed_keys([0, 1]), start=np.array([params.lo, last]))
    assert state.t.tolist() == [params.lo, last] and state.start.tolist() == [params.lo, last]
    with pytest.raises(ConfigError) as err:
        core.reset(params, core.seed_keys(np.arange(5)), start=np.full(5, last + 1))
    assert f"[{last + 1}, {last + 1}, {last + 1}] outside" in str(err.value)  # first three


def test_reset_takes_plain_ints_and_scalars_like_uint64_arrays(params):
    """Keys are uint64 (the splitmix arithmetic wraps): Python ints and scalars are read
    as uint64, a scalar as a batch of one."""
    ref, ref_obs = core.reset(params, np.array([7, 8], np.uint64))
    state, obs = core.reset(params, [7, 8])
    assert state.key.dtype == np.uint64 and state.episode.dtype == np.uint64
    assert np.array_equal(state.t, ref.t) and np.array_equal(obs, ref_obs)
    one, _ = core.reset(params, 7, start=params.lo + 3)
    assert one.t.tolist() == [params.lo + 3] and one.key.tolist() == [7]
    again, _ = core.reset(params, [7, 8], episode=[0, 0])
    assert again.episode.dtype == np.uint64 and np.array_equal(again.t, ref.t)
    state, _ = core.reset(params, [7], start=[params.lo + 1])
    assert state.t.dtype == np.int64
    assert state.reason_totals.dtype == np.int64 and state.regime_totals.dtype == np.int64
    assert state.working.dtype == bool and state.realized.shape == (1, 0)  # ex-ante CVaR


# ------------------------------------------------------------------------------ step


def _symbol_counts(reasons: np.ndarray) -> np.ndarray:
    """The env's per-code symbol counts (``info["reason_counts"]``) of symbol reasons alone."""
    reasons = np.asarray(reasons, dtype=np.int64)
    bits = np.array([int(c).bit_length() - 1 for c in REASON_CODES], dtype=np.int64)
    return reason_summary(reasons, np.zeros(reasons.shape[0], np.int64), bits, 0)[0]


def test_reason_counts_by_hand():
    sym = int(ReasonCode.SYMBOL_CAP)
    gross = int(ReasonCode.GROSS_CAP)
    band = int(ReasonCode.NO_TRADE_BAND)
    reasons = np.array([[sym | gross, gross, 0], [band, 0, sym | band]], dtype=np.int64)
    counts = _symbol_counts(reasons)
    k = {n: i for i, n in enumerate(REASON_NAMES)}
    assert counts.shape == (2, len(REASON_CODES))
    assert counts[0, k["SYMBOL_CAP"]] == 1 and counts[0, k["GROSS_CAP"]] == 2
    assert counts[1, k["NO_TRADE_BAND"]] == 2 and counts[1, k["SYMBOL_CAP"]] == 1
    assert counts.sum() == 6
    assert REASON_NAMES[-4:] == (
        "LOT_ROUNDING",
        "FACTOR_CAP",
        "SYMBOL_TURNOVER_CAP",
        "SYMBOL_SLIPPAGE_BUDGET",
    )


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
        # the next observation: the book marked at t + 1, its drawdown and cash fraction
        weights = new.shares * p1 / new.equity[:, None]
        assert np.allclose(info["weights"], weights, rtol=1e-12, atol=1e-15)
        assert np.array_equal(info["gross"], np.abs(info["weights"]).sum(1))
        assert np.array_equal(info["net"], info["weights"].sum(1))
        expected_obs = params.feature_builder.observation(
            params.features.take(t + 1),
            info["weights"],
            1.0 - new.equity / new.peak,
            new.cash / new.equity,
        )
        assert np.allclose(res.obs, expected_obs, rtol=1e-6, atol=1e-7)
        assert np.array_equal(info["regime"], params.features.regime[t])
        assert np.array_equal(info["regime_confidence"], params.features.regime_confidence[t])
        assert np.array_equal(info["target"], res.decision.execution.target_weights)
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
    # the per-episode return buffers restart at zero for the done rows only
    assert not new.returns[done].any()
    assert np.array_equal(new.returns[~done], before.returns[~done])
    assert before.returns[done].any()
    same, none = core.autoreset(params, new, np.zeros(4, bool))
    assert same is new and none.shape == (0, params.obs_dim) and none.dtype == np.float32


def test_autoreset_clears_the_realized_cvar_window(market):
    p = EnvParams.from_config(market, _cfg(cvar_mode="realized", cvar_window=20))
    rng = np.random.default_rng(9)
    state, _ = core.reset(p, core.seed_keys(np.arange(2)))
    assert state.realized.shape == (2, 20)
    for _ in range(3):
        state = core.step(p, state, _random_actions(rng, p, 2)).state
    assert state.realized[:, :3].all()
    new, _ = core.autoreset(p, state, np.array([True, False]))
    assert not new.realized[0].any() and np.array_equal(new.realized[1], state.realized[1])


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


def test_take_and_put_leave_the_original_state_alone(params):
    """``put`` returns new arrays for the per-portfolio state and writes only the shared
    episode buffers (``returns``, ``realized``) in place, as a step does."""
    rng = np.random.default_rng(17)
    state, _ = core.reset(params, core.seed_keys([0, 1, 2]))
    state = core.step(params, state, _random_actions(rng, params, 3)).state
    before = state.copy()
    rows = np.array([0, 2])
    part = core.step(params, state.take(rows), _random_actions(rng, params, 2)).state
    merged = state.put(rows, part)
    for name in ("t", "steps", "shares", "cash", "equity", "totals", "held"):
        assert np.array_equal(getattr(state, name), getattr(before, name)), name
        assert np.array_equal(getattr(merged, name)[rows], getattr(part, name)), name
        assert np.array_equal(getattr(merged, name)[1], getattr(before, name)[1]), name
    assert merged.returns is state.returns  # the shared buffer itself


def test_a_non_finite_budgets_action_is_invalid_input_for_its_row_only(market):
    """A NaN in one portfolio's budgets action: that row proposes NaN (the gates code it
    INVALID_INPUT and keep its book), the other rows are netted from their budgets as usual."""
    from allocgym.risk import ReasonCode

    p = EnvParams.from_config(market, _cfg(action_mode="budgets"))
    rng = np.random.default_rng(18)
    state, _ = core.reset(p, core.seed_keys([0, 1]))
    action = _random_actions(rng, p, 2)
    clean_w, clean_budgets, clean_contrib = core.propose(p, state, action)
    action[0, 0] = np.nan
    w, budgets, contrib = core.propose(p, state, action)
    assert np.isnan(w[0]).all() and np.array_equal(w[1], clean_w[1])
    assert np.array_equal(contrib[1], clean_contrib[1])
    assert np.isnan(budgets[0]).any() and np.array_equal(budgets[1], clean_budgets[1])
    # the bad row's contributions are the all-cash ones: nothing
    assert not contrib[0].any()
    res = core.step(p, state, action)
    assert res.info["portfolio_reasons"][0] & int(ReasonCode.INVALID_INPUT)
    assert not res.info["portfolio_reasons"][1] & int(ReasonCode.INVALID_INPUT)


def test_drawdown_at_exactly_the_kill_level_engages_the_kill_switch(params):
    """``drawdown >= env.drawdown_kill`` engages the switch for the next decision: at the
    level itself, not only beyond it."""
    import dataclasses

    state, _ = core.reset(params, core.seed_keys([0, 1]))
    kill = params.cfg.env.drawdown_kill
    # all cash (nothing moves with the market), the peak set so the drawdown is exactly
    # the kill level in row 0 and just under it in row 1
    eq = state.equity.copy()
    peak = np.array([eq[0] / (1.0 - kill), eq[1] / (1.0 - (kill - 1e-9))])
    state = dataclasses.replace(state, peak=peak)
    res = core.step_proposed(params, state, np.zeros((2, params.n_assets)))  # stay in cash
    assert not res.info["delta_qty"].any()
    assert res.info["drawdown"][0] == kill > res.info["drawdown"][1]
    assert res.state.kill.tolist() == [True, False]


def test_an_insolvent_portfolio_trades_nothing(params):
    """A book worth nothing before the trade (cash below minus the held value) places no
    order and pays no cost; the solvent rows of the batch trade as usual."""
    import dataclasses

    rng = np.random.default_rng(14)
    state, _ = core.reset(params, core.seed_keys([0, 1]))
    broke = dataclasses.replace(state, cash=np.array([-1.0, state.cash[1]]))
    res = core.step(params, broke, _random_actions(rng, params, 2))
    assert not res.info["delta_qty"][0].any() and res.info["cost"][0] == 0.0
    assert res.info["delta_qty"][1].any() and res.info["cost"][1] > 0.0
    assert res.terminated[0] and not res.terminated[1]
    assert res.info["drawdown"][0] == 1.0 and not res.info["weights"][0].any()


def test_finish_interval_of_a_batch_equals_each_portfolio_alone(market):
    """With ``decision_interval = 3`` one portfolio truncates at the split's end in the
    middle of an interval while the other holds on: the batch's transition (observation,
    summed reward, bars stepped, state) equals each portfolio's own."""
    p = EnvParams.from_config(market, _cfg(decision_interval=3, episode_length=30))
    last = p.split.stop - 2
    starts = np.array([last - 1, p.lo + 10])  # row 0 has two bars left, row 1 plenty
    rng = np.random.default_rng(15)
    action = _random_actions(rng, p, 2)
    state, _ = core.reset(p, core.seed_keys([4, 5]), start=starts)
    batch = core.finish_interval(p, core.step(p, state, action))
    assert batch.info["bars"].dtype == np.int64 and batch.info["bars"].tolist() == [2, 3]
    assert batch.truncated.tolist() == [True, False]
    assert batch.decision is not None and batch.info["reward"] is batch.reward
    for row in (0, 1):
        alone, _ = core.reset(p, core.seed_keys([4 + row]), start=starts[row : row + 1])
        one = core.finish_interval(p, core.step(p, alone, action[row : row + 1]))
        assert np.array_equal(batch.obs[row], one.obs[0])
        assert batch.reward[row] == one.reward[0]
        assert batch.info["bars"][row] == one.info["bars"][0]
        assert batch.terminated[row] == one.terminated[0]
        for name in ("t", "steps", "shares", "cash", "equity", "held"):
            assert np.array_equal(getattr(batch.state, name)[row], getattr(one.state, name)[0])


def test_drawdown_kill_flattens_then_terminates():
    market = _crash_market(-0.4)
    cfg = config_from_dict(
        {"risk": ENV_RISK, "env": {"split": "all", "episode_length": 8, "drawdown_kill": 0.2}}
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
            "risk": {**ENV_RISK, "long_only": False, "max_net": 1.0},
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


def test_episode_metrics_equal_the_step_infos_by_hand(params):
    """Every episode summary is the per-step info accumulated: sums, means per step, the
    reason-code counts and the fraction of steps in each regime."""
    rng = np.random.default_rng(8)
    state, _ = core.reset(params, core.seed_keys(np.arange(3)))
    start = state.t.copy()
    infos = []
    for _ in range(7):
        res = core.step(params, state, _random_actions(rng, params, 3))
        infos.append(res.info)
        state = res.state
    # row 1 restarts: its episode has 0 steps, the others 7 (two length groups, 0 first)
    state, _ = core.autoreset(params, state, np.array([False, True, False]))
    metrics = core.episode_metrics(params, state, np.array([2, 1, 0]))
    assert [m["n_steps"] for m in metrics] == [7, 0, 7]

    def total(key: str, row: int) -> float:
        acc = 0.0
        for info in infos:
            acc = acc + info[key][row]
        return acc

    for m, row in ((metrics[0], 2), (metrics[2], 0)):
        assert m["start"] == start[row] and m["end"] == start[row] + 7
        assert m["costs"] == total("cost", row)
        assert m["turnover"] == total("turnover", row) / 7
        assert m["mean_gross"] == total("gross", row) / 7
        assert m["mean_net"] == total("net", row) / 7
        assert m["mean_intervention"] == total("intervention", row) / 7
        assert m["reward"] == total("reward", row)
        assert np.isfinite(m["sharpe"]) and np.isfinite(m["cvar"])
        counts = sum(info["reason_counts"][row] for info in infos)
        assert m["interventions"] == {
            core.REASON_NAMES[k]: int(c) for k, c in enumerate(counts) if c
        }
        regimes = [int(info["regime"][row]) for info in infos]
        assert m["regime_mix"] == {
            label: regimes.count(k) / 7 for k, label in enumerate(core.REGIME_LABELS)
        }
        assert m["total_return"] == state.equity[row] / params.cfg.env.initial_equity - 1.0
    fresh = metrics[1]
    assert fresh["start"] == fresh["end"] == state.t[1]
    assert np.isnan(fresh["sharpe"]) and np.isnan(fresh["cvar"])
    assert fresh["turnover"] == fresh["costs"] == fresh["reward"] == 0.0
    assert fresh["total_return"] == 0.0 and fresh["interventions"] == {}
    assert core.episode_metrics(params, state, np.array([], np.int64)) == []


def test_audit_record_holds_what_a_replay_needs(params):
    """One audit record per batched step: the decision bar and date of every portfolio,
    the book the gates saw, the orders and rewards, and one regime label (or ``mixed``)."""
    from allocgym.config import config_hash
    from allocgym.observability import sha256_hex, to_jsonable

    rng = np.random.default_rng(12)
    state, _ = core.reset(params, core.seed_keys([0, 1]))
    state = core.step(params, state, _random_actions(rng, params, 2)).state
    res = core.step(params, state, _random_actions(rng, params, 2))
    rec = core.audit_record(params, res, 5)
    t = res.info["t"]
    dates = [str(np.datetime_as_string(params.market.dates[b], unit="D")) for b in t]
    assert rec["request_id"] == "env-step-5" and rec["timestamp"] == dates[0]
    assert rec["config_hash"] == config_hash(params.cfg)
    inputs = rec["input"]
    assert inputs["t"] == t.tolist() and inputs["dates"] == dates
    assert inputs["equity"] == state.equity.tolist()
    assert inputs["current_weights"] == to_jsonable(res.decision.context.current_weights)
    assert inputs["proposed"] == to_jsonable(res.info["proposed"])
    assert inputs["regime"] == res.info["regime"].tolist()
    assert rec["input_hash"] == sha256_hex(
        {
            "t": t,
            "dates": dates,
            "equity": res.decision.context.equity,
            "current_weights": res.decision.context.current_weights,
            "proposed": res.info["proposed"],
            "regime": res.info["regime"],
        }
    )
    out = rec["output"]
    for key in ("delta_qty", "cost", "reward"):
        assert out[key] == to_jsonable(res.info[key])
    assert out["terminated"] == res.terminated.tolist()
    assert out["truncated"] == res.truncated.tolist()
    labels = np.unique(res.info["regime"])
    label = core.REGIME_LABELS[int(labels[0])] if labels.size == 1 else "mixed"
    assert rec["regime"] == {
        "label": label,
        "score": float(np.mean(res.info["regime_confidence"])),
    }
    assert rec["approved"] == to_jsonable(res.decision.gate.approved)
    assert len(rec["reasons"]) == 2  # one entry per portfolio, keyed by symbol
    for row, reasons in zip(res.decision.gate.symbol_reasons, rec["reasons"], strict=True):
        assert set(reasons) == {params.market.symbols[j] for j in np.flatnonzero(row)}


def test_audit_record_regime_is_mixed_across_regimes(market):
    p = EnvParams.from_config(market, _cfg())
    regime = p.features.regime
    # two start bars whose decision bars carry different regime codes
    bars = np.arange(p.lo, p.split.stop - 2)
    first = bars[0]
    other = bars[regime[bars] != regime[first]][0]
    state, _ = core.reset(p, core.seed_keys([0, 1]), start=np.array([first, other]))
    res = core.step(p, state, np.zeros((2, p.action_spec.action_dim), np.float32))
    assert core.audit_record(p, res, 0)["regime"]["label"] == "mixed"
    state, _ = core.reset(p, core.seed_keys([0, 1]), start=np.array([first, first]))
    res = core.step(p, state, np.zeros((2, p.action_spec.action_dim), np.float32))
    label = core.audit_record(p, res, 0)["regime"]["label"]
    assert label == core.REGIME_LABELS[int(regime[first])]


def test_layout_names_the_observation_action_and_codes(params, market):
    layout = core.check_layout(params)
    assert layout["observation"] == params.feature_builder.layout(params.n_assets)
    assert layout["action"] == params.action_spec.layout()
    assert layout["symbols"] == list(market.symbols)
    assert layout["reason_names"] == list(REASON_NAMES)
    assert layout["regime_labels"] == list(core.REGIME_LABELS)
    assert layout["strategy_families"] == ["trend", "mean_reversion", "defensive"]


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 600), st.integers(1, 8), st.integers(0, 2**31))
def test_reason_counts_match_a_bit_loop(n_assets, n_envs, seed):
    rng = np.random.default_rng(seed)
    top = max(int(c) for c in REASON_CODES) * 2
    r = rng.integers(0, top, (n_envs, n_assets)) * (rng.random((n_envs, n_assets)) < 0.6)
    bits = np.array([int(c).bit_length() - 1 for c in REASON_CODES])
    ref = ((r[:, :, None] >> bits) & 1).sum(axis=1)
    assert np.array_equal(_symbol_counts(r), ref)


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


def test_an_order_filling_on_a_halted_bar_is_cancelled_and_the_weight_held():
    """Decided at bar 500 (asset 2 tradable), filled at 501 (asset 2 halted): asset 2's
    order is cancelled (``info["cancelled"]``), so its weight only drifts with the price;
    the others trade."""
    m0 = synthetic(n_assets=4, n_days=700, seed=3)
    tradable = m0.tradable.copy()
    tradable[501:504, 2] = False
    m = MarketData(dates=m0.dates, symbols=m0.symbols, close=m0.close, volume=m0.volume,
                   spread_bps=m0.spread_bps, sectors=m0.sectors,
                   benchmark_returns=m0.benchmark_returns, tradable=tradable)  # fmt: skip
    p = EnvParams.from_config(m, config_from_dict({"env": {"split": "all"}}))
    state, _ = core.reset(p, core.seed_keys([0]), start=np.array([499]))
    state = core.step_proposed(p, state, np.array([[0.1, 0.1, 0.1, 0.1]])).state
    shares = state.shares.copy()
    res = core.step_proposed(p, state, np.array([[0.1, 0.3, 0.02, 0.1]]))
    dq = res.info["delta_qty"][0]
    assert dq[2] == 0.0 and dq[1] > 0.0  # the halted sell is not filled, the buy is
    assert res.decision.execution.delta_qty[0, 2] < 0.0  # the sell was ordered
    assert res.info["cancelled"][0].tolist() == [False, False, True, False]
    assert res.state.shares[0, 2] == shares[0, 2]
    moved = p.prices[501, 2] / p.prices[500, 2]
    w_before = shares[0, 2] * p.prices[500, 2] / state.equity[0]
    assert res.info["weights"][0, 2] == pytest.approx(
        w_before * moved * state.equity[0] / res.state.equity[0], rel=1e-12
    )
