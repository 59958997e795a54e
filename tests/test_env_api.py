"""API tests: gymnasium / SB3 checkers, registration, seeding, VecEnv == B single envs."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

from allocgym.config import config_from_dict
from allocgym.data import MarketData, synthetic
from allocgym.envs import (
    ENV_ID,
    INFO_KEYS,
    REASON_NAMES,
    EnvParams,
    PortfolioEnv,
    PortfolioVecEnv,
)
from allocgym.envs.core import current_weights
from allocgym.envs.vec_env import portfolio_keys
from allocgym.errors import ConfigError

MODES = ("weights", "budgets")


def _cfg(mode="weights", **env):
    return config_from_dict(
        {"env": {"split": "all", "episode_length": 7, "action_mode": mode, **env}}
    )


@pytest.fixture(scope="module")
def market() -> MarketData:
    return synthetic(n_assets=6, n_days=420, seed=3, n_sectors=3)


@pytest.fixture(scope="module", params=MODES)
def params(request, market) -> EnvParams:
    return EnvParams.from_config(market, _cfg(request.param))


@pytest.mark.parametrize("mode", MODES)
def test_gymnasium_check_env_without_warnings(market, mode):
    env = gym.make(ENV_ID, market=market, cfg=_cfg(mode))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped)


@pytest.mark.parametrize("mode", MODES)
def test_sb3_check_env_without_warnings(market, mode):
    env = PortfolioEnv(market, _cfg(mode))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env, warn=True)


def test_make_uses_the_registry_and_spaces_follow_the_action_spec(market):
    env = gym.make(ENV_ID, market=market, cfg=_cfg("weights"))
    assert env.spec is not None and env.spec.id == ENV_ID
    u = env.unwrapped
    assert isinstance(u, PortfolioEnv)
    assert u.action_space.shape == (7,) and u.action_space.dtype == np.float32
    assert u.observation_space.shape == (u.params.obs_dim,)
    assert np.isfinite(u.observation_space.low).all()
    budgets = PortfolioEnv(market, _cfg("budgets"))
    assert budgets.action_space.shape == (4,)
    ls = PortfolioEnv(
        market, config_from_dict({"env": {"split": "all"}, "risk": {"long_only": False}})
    )
    assert ls.action_space.shape == (6,)
    layout = u.layout()
    assert layout["observation"]["obs_dim"] == u.params.obs_dim
    assert layout["action"]["action_dim"] == 7


def _rollout(env: PortfolioEnv, seed: int, actions: np.ndarray):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    rewards, ends = [], []
    for a in actions:
        obs, r, te, tr, _info = env.step(a)
        out.append(obs)
        rewards.append(r)
        ends.append((te, tr))
        if te or tr:
            obs, _ = env.reset()
            out.append(obs)
    return np.array(out), np.array(rewards), ends


def test_same_seed_same_trajectory(params):
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (20, params.action_spec.action_dim)).astype(np.float32)
    a = _rollout(PortfolioEnv.from_params(params), 5, acts)
    b = _rollout(PortfolioEnv.from_params(params), 5, acts)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    c = _rollout(PortfolioEnv.from_params(params), 6, acts)
    assert not np.array_equal(a[0][0], c[0][0])


def test_vec_env_equals_separate_single_envs(params):
    """Portfolio i of PortfolioVecEnv(seed=s) is PortfolioEnv reset with the key
    portfolio_keys(s, n)[i], exactly."""
    b, seed, n_steps = 5, 100, 25
    rng = np.random.default_rng(1)
    acts = rng.uniform(-1, 1, (n_steps, b, params.action_spec.action_dim)).astype(np.float32)
    vec = PortfolioVecEnv(params=params, n_envs=b, seed=seed)
    keys = portfolio_keys(seed, b)
    assert [int(k) for k in keys] == list(vec.seeds())
    singles = [PortfolioEnv.from_params(params) for _ in range(b)]
    obs = vec.reset()
    ref = np.stack([e.reset(seed=int(keys[i]))[0] for i, e in enumerate(singles)])
    assert np.array_equal(obs, ref)
    n_done = 0
    for k in range(n_steps):
        obs, rew, done, infos = vec.step(acts[k])
        for i, e in enumerate(singles):
            o, r, te, tr, info = e.step(acts[k, i])
            assert rew[i] == np.float32(r)
            assert vec.last_info["reward"][i] == r
            assert done[i] == (te or tr)
            if te or tr:
                n_done += 1
                assert np.array_equal(infos[i]["terminal_observation"], o)
                assert infos[i]["TimeLimit.truncated"] == (tr and not te)
                assert infos[i]["episode_metrics"] == info["episode_metrics"]
                o, _ = e.reset()
            else:
                assert infos[i] == {}
            assert np.array_equal(obs[i], o)
    assert n_done >= b * 3


def test_vec_env_equals_sb3_dummy_vec_env(params):
    """SB3's seed(s) on PortfolioVecEnv gives the hashed keys; a DummyVecEnv of PortfolioEnvs
    reset with those keys then steps identically (autoresets included)."""
    b = 3
    rng = np.random.default_rng(2)
    vec = PortfolioVecEnv(params=params, n_envs=b)
    keys = vec.seed(42)
    assert keys == [int(k) for k in portfolio_keys(42, b)]
    assert keys != [42, 43, 44]  # not SB3's seed + i
    dummy = DummyVecEnv([lambda: PortfolioEnv.from_params(params) for _ in range(b)])
    first = np.stack([e.reset(seed=k)[0] for e, k in zip(dummy.envs, keys, strict=True)])
    assert np.array_equal(vec.reset(), first)
    assert np.array_equal(PortfolioVecEnv(params=params, n_envs=b, seed=42).reset(), first)
    for _ in range(16):
        a = rng.uniform(-1, 1, (b, params.action_spec.action_dim)).astype(np.float32)
        o1, r1, d1, i1 = vec.step(a)
        o2, r2, d2, i2 = dummy.step(a)
        assert np.array_equal(o1, o2) and np.array_equal(r1, r2) and np.array_equal(d1, d2)
        for x, y in zip(i1, i2, strict=True):
            if "terminal_observation" in y:
                assert np.array_equal(x["terminal_observation"], y["terminal_observation"])
                assert x["TimeLimit.truncated"] == y["TimeLimit.truncated"]


def test_training_seeds_share_no_episode_stream(params):
    """Seed 1's portfolios draw none of seed 0's start-bar streams (with seed + i keys,
    seed 1's portfolio i replayed seed 0's portfolio i + 1)."""
    from allocgym.envs import core

    b, n_episodes = 8, 12
    assert params.n_starts > 100  # a shared 12-episode stream cannot happen by chance

    def streams(vec: PortfolioVecEnv) -> set[tuple[int, ...]]:
        keys = np.asarray(vec.seeds(), dtype=np.uint64)
        ep = np.arange(n_episodes, dtype=np.uint64)
        out = {tuple(core.start_bars(params, np.full(n_episodes, k), ep).tolist()) for k in keys}
        assert len(out) == b
        return out

    v0 = PortfolioVecEnv(params=params, n_envs=b, seed=0)
    v1 = PortfolioVecEnv(params=params, n_envs=b, seed=1)
    s0, s1 = streams(v0), streams(v1)
    assert not s0 & s1
    # the streams are what reset() and the autoresets draw
    start0 = v0.reset()
    assert v0.state is not None
    firsts = {s[0] for s in s0}
    assert set(v0.state.start.tolist()) <= firsts and start0.shape[0] == b
    # SB3's seed() (what PPO(seed=s) calls) derives the same keys
    sb3 = PortfolioVecEnv(params=params, n_envs=b)
    assert sb3.seed(1) == list(v1.seeds())
    with pytest.raises(ConfigError, match="must be >= 0"):
        portfolio_keys(-1, 2)
    assert np.array_equal(portfolio_keys(7, 3), portfolio_keys(7, 5)[:3])


def test_vec_env_api_and_batched_info(params):
    vec = PortfolioVecEnv(params=params, n_envs=4, seed=0)
    assert vec.get_attr("render_mode") == [None] * 4
    assert vec.get_attr("params", indices=[1, 2]) == [params, params]
    vec.set_attr("note", "x")
    assert vec.get_attr("note", 0) == ["x"]
    assert (
        vec.env_method("layout", indices=[0])[0]["action"]["action_dim"]
        == params.action_spec.action_dim
    )
    assert vec.env_is_wrapped(gym.Wrapper) == [False] * 4
    assert vec.has_attr("params") and not vec.has_attr("nope")
    obs = vec.reset()
    assert obs.shape == (4, params.obs_dim) and obs.dtype == np.float32
    a = np.zeros((4, params.action_spec.action_dim), np.float32)
    _, rew, done, infos = vec.step(a)
    assert rew.dtype == np.float32 and done.dtype == bool and len(infos) == 4
    info = vec.last_info
    for key in INFO_KEYS:
        if key in ("budgets", "strategy_contributions", "strategy_scale"):
            assert (key in info) == (params.action_spec.mode == "budgets")
            continue
        assert info[key].shape[0] == 4, key
    assert info["reason_counts"].shape == (4, len(REASON_NAMES))
    assert vec.last_decision is not None
    vec.close()
    assert vec.closed


def test_vec_env_per_portfolio_attributes_follow_the_sb3_contract(params):
    """get_attr / env_method give one value per index; per-portfolio state is each
    portfolio's own and equals the matching ``PortfolioEnv`` stepped alongside."""
    vec = PortfolioVecEnv(params=params, n_envs=4, seed=3)
    assert vec.get_attr("state") == [None] * 4
    vec.reset()
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (4, params.action_spec.action_dim)).astype(np.float32)
    vec.step(actions)
    keys = vec.seeds()
    assert vec.get_attr("key") == keys and len(set(keys)) == 4
    assert vec.get_attr("episode", indices=[2]) == [0]
    rows = [3, 0, 3]
    states = vec.get_attr("state", indices=rows)
    weights = vec.env_method("current_weights", indices=rows)
    infos = vec.get_attr("last_info", indices=rows)
    assert len(states) == len(weights) == len(infos) == len(rows)
    batch_weights = current_weights(params, vec.state)
    for i, state, w, info in zip(rows, states, weights, infos, strict=True):
        single = PortfolioEnv.from_params(params)
        single.reset(seed=keys[i])
        single.step(actions[i])
        assert state.n_envs == 1
        for name in ("t", "equity", "cash", "shares", "key", "episode"):
            assert np.array_equal(getattr(state, name), getattr(single.state, name)), name
            assert np.array_equal(getattr(state, name)[0], getattr(vec.state, name)[i]), name
        assert np.array_equal(w, batch_weights[i])
        assert np.array_equal(info["reward"], vec.last_info["reward"][i])
    # portfolios differ, so a repeated shared value would fail here
    assert not np.array_equal(weights[0], weights[1])
    # shared attributes: the same object for every index, called per index for methods
    assert vec.get_attr("params", indices=[0, 1]) == [params, params]
    layouts = vec.env_method("layout", indices=[1, 2])
    assert layouts[0] == layouts[1] and layouts[0] is not layouts[1]
    # batch-wide names have no per-portfolio meaning
    with pytest.raises(AttributeError, match=r"use PortfolioVecEnv\.last_decision directly"):
        vec.get_attr("last_decision")
    with pytest.raises(AttributeError, match=r"use PortfolioVecEnv\.reset directly"):
        vec.env_method("reset", indices=[0])
    assert not vec.has_attr("last_decision")
    with pytest.raises(ConfigError, match="read-only"):
        vec.set_attr("state", None)
    with pytest.raises(ConfigError, match=r"shared by all portfolios.*indices=None"):
        vec.set_attr("note", "x", indices=[0, 1])
    vec.set_attr("note", "x", indices=[0, 1, 2, 3])
    assert vec.get_attr("note", indices=2) == ["x"]
    with pytest.raises(ConfigError, match="portfolio index 4 is out of range"):
        vec.get_attr("key", indices=[4])


def test_vec_env_step_proposed_and_wrappers(market):
    params = EnvParams.from_config(market, _cfg("weights"))
    vec = VecNormalize(VecMonitor(PortfolioVecEnv(params=params, n_envs=3, seed=0)))
    vec.reset()
    for _ in range(7):
        _, _, done, infos = vec.step(np.zeros((3, 7), np.float32))
    assert done.all()  # 7-step episodes
    assert all("episode" in i and "episode_metrics" in i for i in infos)
    raw = PortfolioVecEnv(params=params, n_envs=2, seed=0)
    raw.reset()
    w = np.full((2, 6), 1 / 6)
    _, rew, _, _ = raw.step_proposed(w)
    assert np.array_equal(raw.last_info["proposed"], w)
    assert np.isfinite(rew).all()


@pytest.mark.slow
def test_ppo_learns_a_few_steps(market):
    from stable_baselines3 import PPO

    params = EnvParams.from_config(market, _cfg("weights"))
    vec = PortfolioVecEnv(params=params, n_envs=4, seed=0)
    model = PPO("MlpPolicy", vec, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=128)
    assert model.num_timesteps >= 128


def test_step_after_end_needs_reset_and_render(market):
    env = PortfolioEnv(market, _cfg("weights", episode_length=1), render_mode="ansi")
    with pytest.raises(ResetNeeded):
        env.step(np.zeros(7, np.float32))
    env.reset(seed=0)
    text = env.render()
    assert isinstance(text, str) and "equity" in text
    _, _, _, tr, info = env.step(np.zeros(7, np.float32))
    assert tr and "episode_metrics" in info
    with pytest.raises(ResetNeeded):
        env.step(np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="render_mode"):
        PortfolioEnv(market, _cfg(), render_mode="human")


def test_reset_options_start_and_seed_sequence(params):
    env = PortfolioEnv.from_params(params)
    _, info = env.reset(seed=1, options={"start": params.lo + 3})
    assert info["t"] == params.lo + 3
    _, i0 = env.reset(seed=9)
    _, i1 = env.reset()
    _, j0 = env.reset(seed=9)
    _, j1 = env.reset()
    assert (i0["t"], i1["t"]) == (j0["t"], j1["t"])
    assert (i0["episode"], i1["episode"]) == (0, 1)


def test_audit_log_one_chained_record_per_step(market, tmp_path):
    from allocgym.observability import verify_log

    path = tmp_path / "audit.jsonl"
    params = EnvParams.from_config(market, _cfg("weights", audit_path=str(path)))
    vec = PortfolioVecEnv(params=params, n_envs=3, seed=0)
    vec.reset()
    approved = []
    for _ in range(4):
        vec.step(np.zeros((3, 7), np.float32))
        approved.append(vec.last_info["approved"])
    report = verify_log(path)
    assert report.ok and report.n_records == 4
    records = [json.loads(line)["record"] for line in path.read_text().splitlines()]
    for rec, appr in zip(records, approved, strict=True):
        assert np.array_equal(np.array(rec["approved"]), appr)  # floats round-trip exactly
        assert len(rec["input"]["t"]) == 3
    single = PortfolioEnv.from_params(params)
    single.reset(seed=0)
    single.step(np.zeros(7, np.float32))
    assert verify_log(path).n_records == 5  # the same chain continues


def test_batch_rows_equal_single_portfolio_steps_at_larger_batch():
    """Bit-identical rows for a larger batch and universe (no batch-size dependent maths)."""
    from allocgym.envs import core

    md = synthetic(n_assets=30, n_days=500, seed=9, n_sectors=5)
    p = EnvParams.from_config(md, _cfg("weights", episode_length=50))
    b = 40
    keys = core.seed_keys(np.arange(b))
    batch, _ = core.reset(p, keys)
    singles = [core.reset(p, keys[i : i + 1])[0] for i in range(b)]
    rng = np.random.default_rng(3)
    for _ in range(6):
        a = rng.uniform(-1, 1, (b, p.action_spec.action_dim))
        rb = core.step(p, batch, a)
        for i in range(b):
            r1 = core.step(p, singles[i], a[i : i + 1])
            assert np.array_equal(r1.obs[0], rb.obs[i])
            assert r1.reward[0] == rb.reward[i]
            assert np.array_equal(r1.info["delta_qty"][0], rb.info["delta_qty"][i])
            singles[i] = r1.state
        batch = rb.state


def test_bench_env_reports_medians_and_ratios(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scripted round times (3 rounds of 2 steps each; medians differ from the means):
    every cell follows by hand from the median round, the steps per round and the
    reference's rate."""
    from scripted_clock import ScriptedClock

    import allocgym.bench
    from allocgym.bench.env import run

    clock = ScriptedClock(
        [
            *(0.010, 0.040, 0.020),  # pandas reference: median 0.020 s per 2 steps
            *(0.004, 0.002, 0.009),  # PortfolioEnv: 0.004
            *(0.001, 0.006, 0.002),  # PortfolioVecEnv, 1 env: 0.002
            *(0.012, 0.004, 0.006),  # PortfolioVecEnv, 4 envs: 0.006
        ]
    )
    monkeypatch.setattr(allocgym.bench, "time", clock)
    rows = run(n_assets=(5,), n_envs=(1, 4), n_days=400, steps=2, repeat=3, ref_steps=2)
    assert clock.unused == 0
    want = [  # env, n_envs, ms per step, portfolio-steps/s, x pandas
        ("pandas reference", 1, 10.0, 100.0, 1.0),
        ("PortfolioEnv", 1, 2.0, 500.0, 5.0),
        ("PortfolioVecEnv", 1, 1.0, 1000.0, 10.0),
        ("PortfolioVecEnv", 4, 3.0, 4000 / 3, 40 / 3),
    ]
    assert [list(r) for r in rows] == [
        ["n_assets", "env", "n_envs", "ms_per_step", "portfolio_steps_per_s", "x_pandas"]
    ] * 4
    for row, (env, n_envs, ms, rate, ratio) in zip(rows, want, strict=True):
        assert (row["n_assets"], row["env"], row["n_envs"]) == (5, env, n_envs)
        got = (row["ms_per_step"], row["portfolio_steps_per_s"], row["x_pandas"])
        assert got == pytest.approx((ms, rate, ratio), rel=1e-12)


def test_bench_env_rounds_take_a_new_action_each_step() -> None:
    """Timed rounds cycle through the pool of actions (a fixed action lets the book settle
    and the step trade little), the gymnasium round resetting at an episode's end."""
    from allocgym.bench.env import ACTION_POOL, _batch_round, _episode_round

    class Recorder:
        def __init__(self) -> None:
            self.seen: list[list[float]] = []
            self.resets = 0

        def step(self, action: np.ndarray) -> tuple[None, float, bool, bool, dict]:
            self.seen.append(action.tolist())
            return None, 0.0, len(self.seen) == 3, False, {}

        def reset(self) -> None:
            self.resets += 1

    actions = np.arange(ACTION_POOL * 2.0).reshape(ACTION_POOL, 2)
    n = 2 * ACTION_POOL + 1
    for round_fn in (_batch_round, _episode_round):
        env = Recorder()
        round_fn(env, actions, n)
        assert env.seen == [actions[i % ACTION_POOL].tolist() for i in range(n)]
    assert env.resets == 1


def test_bad_actions_and_reset_arguments_are_refused_by_name() -> None:
    """A scalar action (an IndexError once), text or booleans as actions (cast once), an
    unknown or fractional reset option, a seed outside 0..2**63-1: each refused with the
    value and what the env takes."""
    env = PortfolioEnv(synthetic(n_assets=4, n_days=1200, seed=0), config_from_dict({}))
    env.reset(seed=0)
    shape = env.action_space.shape
    with pytest.raises(ValueError, match=rf"action has shape \(\), expected \({shape[0]},\)"):
        env.step(np.float32(0.0))
    for bad in (np.full(shape, "0"), np.ones(shape, bool), np.ones(shape, complex)):
        with pytest.raises(ValueError, match=f"action has dtype {bad.dtype}: pass numbers"):
            env.step(bad)
    with pytest.raises(ConfigError, match=r"reset options \['strat'\] are unknown"):
        env.reset(seed=0, options={"strat": 5})
    with pytest.raises(ConfigError, match=r"start = 100.7 is not a whole bar index"):
        env.reset(seed=0, options={"start": 100.7})
    for seed in (-1, 2**63, 2**64 - 1, 1.5):
        with pytest.raises(ConfigError, match=r"reset seed = .*: pass an int in 0..2\*\*63-1"):
            env.reset(seed=seed)
    env.reset(seed=2**63 - 1)  # the largest key
    _, info = env.reset(seed=0, options={"start": np.int64(300)})
    assert info["t"] == 300
    with pytest.raises(ConfigError, match=r"n_envs = 2.5: need a whole number"):
        PortfolioVecEnv(env.params.market, env.params.cfg, n_envs=2.5)
    vec = PortfolioVecEnv(env.params.market, env.params.cfg, n_envs=3, seed=0)
    vec.reset()
    with pytest.raises(ValueError, match=r"actions have shape \(2, \d+\): PortfolioVecEnv steps 3"):
        vec.step(np.zeros((2, shape[0]), np.float32))
