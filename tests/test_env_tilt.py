"""The tilt action mode and the decision interval: hand-computed maps, a zero action that
is its prior bit for bit, and decisions every k bars with the baselines' hold rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tiny_configs import TINY_DATA

from allocgym import evaluation as ev
from allocgym.actions import ActionSpec
from allocgym.agents.validation import run_episodes
from allocgym.config import AllocgymConfig, load_config
from allocgym.data import MarketData, load_market
from allocgym.envs import PortfolioEnv, PortfolioVecEnv, build_params, core
from allocgym.errors import ConfigError

TINY = [
    *TINY_DATA,
    "baselines.rebalance_every=5",
    "env.episode_length=40",
    "risk.max_sector_gross=1.0",
]


def _cfg(*extra: str) -> AllocgymConfig:
    return load_config(None, [*TINY, *extra])


@pytest.fixture(scope="module")
def market() -> MarketData:
    return load_market(_cfg().data)


def _spec(**kw) -> ActionSpec:
    base = dict(mode="tilt", n_assets=2, n_strategies=0, long_only=True, logit_scale=3.0,
                max_symbol_weight=1.0, max_gross=1.0, tilt_scale=math.log(2.0),
                tilt_gross_scale=math.log(2.0))  # fmt: skip
    return ActionSpec(**{**base, **kw})


# ----------------------------------------------------------------------------- the map


def test_tilt_map_by_hand() -> None:
    spec = _spec()
    assert spec.shape == (3,)
    prior = np.array([[0.5, 0.5]])
    # tilt 1 on the first name doubles it: u = (1.0, 0.5), renormalised to gross 1
    w = spec.to_tilted(np.array([[1.0, 0.0, 0.0]]), prior)
    np.testing.assert_allclose(w, [[2 / 3, 1 / 3]], rtol=1e-15)
    # gross head -1 halves the gross: e^(ln2 * -1) = 0.5
    w = spec.to_tilted(np.array([[1.0, 0.0, -1.0]]), prior)
    np.testing.assert_allclose(w, [[1 / 3, 1 / 6]], rtol=1e-15)
    # gross head +1 would double it, but the gross is capped at max(prior gross, max_gross)
    w = spec.to_tilted(np.array([[0.0, 0.0, 1.0]]), prior)
    np.testing.assert_allclose(w, prior, rtol=1e-15)
    # a long/short prior: tilts scale magnitudes, signs stay
    w = _spec(max_gross=2.0).to_tilted(np.array([[0.0, 1.0, 1.0]]), np.array([[0.5, -0.5]]))
    np.testing.assert_allclose(w, [[2 / 3, -4 / 3]], rtol=1e-15)
    # an all-cash prior stays cash whatever the action
    assert spec.to_tilted(np.ones((1, 3)), np.zeros((1, 2))).tolist() == [[0.0, 0.0]]


def test_zero_action_is_the_prior_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    spec = _spec(n_assets=7, max_gross=1.5, tilt_scale=1.3, tilt_gross_scale=0.7)
    prior = rng.dirichlet(np.ones(7), size=50) * rng.uniform(0.1, 1.4, (50, 1))
    prior[::3] *= np.where(rng.random((17, 7)) < 0.3, -1.0, 1.0)  # some long/short books
    out = spec.to_tilted(np.zeros((50, 8)), prior)
    assert np.array_equal(out, prior)


def test_tilt_refuses_a_prior_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="one prior book per action row"):
        _spec().to_tilted(np.zeros((2, 3)), np.zeros((1, 2)))


def test_tilt_layout_names_its_scales() -> None:
    lay = _spec().layout()
    assert lay["mode"] == "tilt" and lay["tilt_scale"] == math.log(2.0)


# ----------------------------------------------------------------------------- the env


class ZeroPolicy:
    """An agent that always answers the zero action."""

    def __init__(self, dim: int, name: str = "zero") -> None:
        self.dim, self.name, self.calls = dim, name, 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.zeros((obs.shape[0], self.dim), np.float32)


@pytest.mark.parametrize(
    "prior", ["equal_weight", "inverse_volatility", "hrp", "risk_budgeting"]
)  # risk budgeting: its Newton rows had kept stepping past convergence in a batch
def test_tilt_zero_action_reproduces_the_prior_backtest(market, prior) -> None:
    """Agent in tilt mode with a zero action, deciding every rebalance_every bars, walks
    exactly the prior's backtest through the same gates: identical bits everywhere."""
    cfg = _cfg("env.action_mode=tilt", f"env.tilt_prior={prior}", "env.decision_interval=5")
    params = ev.evaluation_params(market, cfg, "test")
    prior_alloc = ev.build_baselines(cfg, [prior])[prior]
    agent = ZeroPolicy(params.action_spec.action_dim)
    bt_agent, bt_prior = ev.run_allocators([agent, prior_alloc], params=params)
    assert bt_agent.kind == "agent" and bt_prior.kind == "baseline"
    for key in ("returns", "equity", "weights", "proposed", "approved", "trades", "costs"):
        assert np.array_equal(getattr(bt_agent, key), getattr(bt_prior, key)), key
    assert agent.calls == -(-bt_agent.n_steps // 5)  # asked on decision bars only
    assert bt_prior.turnover.sum() > 0


def test_tilt_zero_action_is_the_prior_when_the_lookback_outreaches_the_split_start() -> None:
    """baselines.lookback 500 on a split starting at bar 300: each early bar has its own,
    shorter window, in the prior table as in the prior's backtest (one batched context
    had clamped every bar of its chunk to the earliest bar's 301)."""
    from allocgym.data import synthetic

    cfg = load_config(None, ["env.split=all", "env.action_mode=tilt", "env.decision_interval=5",
                             "env.tilt_prior=inverse_volatility", "baselines.rebalance_every=5",
                             "baselines.lookback=500", "risk.max_symbol_weight=0.5",
                             "risk.max_sector_gross=1.0"])  # fmt: skip
    params = ev.evaluation_params(synthetic(4, 700, 3), cfg, "all")
    assert params.lo + 1 < 500
    prior = ev.build_baselines(cfg, ["inverse_volatility"])["inverse_volatility"]
    agent = ZeroPolicy(params.action_spec.action_dim)
    bt_agent, bt_prior = ev.run_allocators([agent, prior], params=params)
    for key in ("equity", "proposed", "approved"):
        assert np.array_equal(getattr(bt_agent, key), getattr(bt_prior, key)), key
    # and the prior's backtest is the same alone as beside the agent
    alone = ev.run_allocator(prior, params=params)
    assert np.array_equal(alone.proposed, bt_prior.proposed)


def test_window_groups_put_each_short_history_bar_on_its_own() -> None:
    from allocgym.envs.context import window_groups

    got = window_groups(np.array([600, 10, 520, 10, 3, 499]), 500)
    assert [g.tolist() for g in got] == [[0, 2, 5], [4], [1, 3]]
    assert [g.tolist() for g in window_groups(np.array([3, 4]), 500)] == [[0], [1]]
    assert [g.tolist() for g in window_groups(np.array([700]), 500)] == [[0]]


def test_decision_interval_holds_the_book_between_decisions(market) -> None:
    """Between decisions the proposal is the drifted book: no trades unless a limit cut
    the last target short."""
    cfg = _cfg("env.decision_interval=4", "risk.max_turnover=5.0")
    params = build_params(market, cfg, "train")
    state, _ = core.reset(params, core.seed_keys(np.arange(3)))
    rng = np.random.default_rng(1)
    for k in range(12):
        a = rng.uniform(-1, 1, (3, params.action_spec.action_dim))
        res = core.step(params, state, a)
        if k % 4 == 0:
            assert np.array_equal(res.info["proposed"], params.action_spec.to_weights(a))
        else:
            current = core.current_weights(params, state)
            assert np.array_equal(res.info["proposed"], current)
            # only a gate (e.g. a cap the drift crossed) makes a held book trade
            traded = np.any(res.info["delta_qty"] != 0, axis=1)
            clipped = np.any(res.info["approved"] != current, axis=1)
            assert np.all(clipped[traded])
        state = res.state


def test_a_held_target_cut_by_a_trade_limit_keeps_being_proposed(market) -> None:
    cfg = _cfg("env.decision_interval=10", "risk.max_turnover=0.2")
    params = build_params(market, cfg, "train")
    state, _ = core.reset(params, core.seed_keys([0]))
    a = np.zeros((1, params.action_spec.action_dim))
    res = core.step(params, state, a)  # from cash to a full book: 0.2 turnover per bar
    target = res.info["proposed"].copy()
    assert res.state.working.tolist() == [True]
    res = core.step(params, res.state, np.ones_like(a))  # not due: the action is not read
    assert np.array_equal(res.info["proposed"], target)


@pytest.mark.parametrize(
    "limit",
    [
        "risk.max_participation=1e-4",  # per symbol: the bits are on the names only
        "risk.max_symbol_turnover=0.02",
    ],
)
def test_a_target_cut_by_a_per_symbol_trade_limit_keeps_being_proposed(market, limit) -> None:
    """A per-symbol trade limit (participation, per-symbol turnover) clips single names,
    not the portfolio, and still leaves the target for the next bars to reach."""
    cfg = _cfg("env.decision_interval=10", "risk.max_turnover=5.0", limit)
    params = build_params(market, cfg, "train")
    state, _ = core.reset(params, core.seed_keys([0]))
    a = np.zeros((1, params.action_spec.action_dim))
    res = core.step(params, state, a)
    target = res.info["proposed"].copy()
    assert res.info["portfolio_reasons"][0] & core.TRADE_LIMITS == 0
    assert (res.info["symbol_reasons"][0] & core.TRADE_LIMITS).any()
    assert res.state.working.tolist() == [True]
    res = core.step(params, res.state, np.ones_like(a))  # not due: the action is not read
    assert np.array_equal(res.info["proposed"], target)
    assert np.abs(res.info["delta_qty"]).sum() > 0  # still trading towards it


def test_vec_env_steps_one_decision_at_a_time(market) -> None:
    """One VecEnv step = decision_interval bars; the reward is the sum of the bars'
    rewards of the same portfolio stepped bar by bar."""
    cfg = _cfg("env.decision_interval=5")
    params = build_params(market, cfg, "train")
    vec = PortfolioVecEnv(params=params, n_envs=2, seed=3)
    vec.reset()
    rng = np.random.default_rng(2)
    a = rng.uniform(-1, 1, (2, params.action_spec.action_dim)).astype(np.float32)
    state0 = vec.state.copy()
    _, reward, done, _ = vec.step(a)
    assert vec.last_info["bars"].tolist() == [5, 5] and not done.any()
    assert np.array_equal(vec.state.t, state0.t + 5)
    state, total = state0, np.zeros(2)
    for _ in range(5):
        res = core.step(params, state, a)
        total += res.reward
        state = res.state
    np.testing.assert_allclose(reward, total.astype(np.float32), rtol=1e-6)
    assert np.array_equal(vec.state.shares, state.shares)


def test_gym_env_steps_one_decision_and_ends_mid_interval(market) -> None:
    """An episode whose length is not a multiple of the interval ends on its last bar."""
    cfg = _cfg("env.decision_interval=6", "env.episode_length=15", "env.split=all")
    env = PortfolioEnv(market, cfg)
    env.reset(seed=0)
    bars, done = [], False
    while not done:
        _, _, term, trunc, info = env.step(env.action_space.sample())
        bars.append(int(info["bars"]))
        done = term or trunc
    assert bars == [6, 6, 3] and trunc


def test_validation_with_interval_and_tilt_runs(market) -> None:
    cfg = _cfg("env.action_mode=tilt", "env.decision_interval=5")
    params = build_params(market, cfg, "validation")
    zero = ZeroPolicy(params.action_spec.action_dim)
    (em,) = run_episodes(params, 1, act=lambda obs, start: zero.act(obs))
    assert em["n_steps"] > 5 and zero.calls == -(-em["n_steps"] // 5)


def test_budgets_mode_refuses_an_interval() -> None:
    with pytest.raises(ConfigError, match="decision_interval"):
        _cfg("env.action_mode=budgets", "env.decision_interval=2")
