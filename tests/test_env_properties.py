"""Properties of the environment: no lookahead, every knob matters, skill pays, gates hold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocgym.config import AllocgymConfig, EnvConfig, config_from_dict
from allocgym.data import MarketData, synthetic
from allocgym.envs import REASON_NAMES, EnvParams, core
from allocgym.risk import ReasonCode, check_invariants


def _cfg(tree: dict | None = None, **env) -> AllocgymConfig:
    tree = dict(tree or {})
    tree["env"] = {"split": "all", "episode_length": 60, **tree.get("env", {}), **env}
    return config_from_dict(tree)


@pytest.fixture(scope="module")
def market() -> MarketData:
    return synthetic(n_assets=12, n_days=700, seed=21, n_sectors=4)


def _perturb_after(md: MarketData, t: int, seed: int = 0) -> MarketData:
    """Every price, volume, spread and benchmark return after bar ``t`` changed."""
    rng = np.random.default_rng(seed)
    tail = md.n_days - t - 1
    close = md.close.copy()
    close[t + 1 :] *= np.exp(rng.normal(0, 0.05, (tail, md.n_assets)))
    volume = md.volume.copy()
    volume[t + 1 :] *= rng.uniform(0.2, 5.0, (tail, md.n_assets))
    spread = md.spread_bps.copy()
    spread[t + 1 :] *= rng.uniform(0.5, 3.0, (tail, md.n_assets))
    bench = md.benchmark_returns.copy()
    bench[t + 1 :] += rng.normal(0, 0.02, tail)
    return MarketData(
        dates=md.dates,
        symbols=md.symbols,
        close=close,
        volume=volume,
        spread_bps=spread,
        sectors=md.sectors,
        benchmark_returns=bench,
        tradable=md.tradable,
        name=md.name + "+perturbed",
    )


def _assert_no_lookahead(md: MarketData, cfg: AllocgymConfig, split: tuple[int, int], t: int):
    p_a = EnvParams.from_config(md, cfg, split)
    p_b = EnvParams.from_config(_perturb_after(md, t), cfg, split)
    start = np.array([t - 12, t - 5, t])
    rng = np.random.default_rng(0)
    sa, oa = core.reset(p_a, core.seed_keys([0, 1, 2]), start=start)
    sb, ob = core.reset(p_b, core.seed_keys([0, 1, 2]), start=start)
    assert np.array_equal(oa, ob)
    checked = 0
    for _ in range(13):
        action = rng.uniform(-1, 1, (3, p_a.action_spec.action_dim))
        ra = core.step(p_a, sa, action)
        rb = core.step(p_b, sb, action)
        at_or_before = sa.t <= t  # decision bars that only saw data up to t
        assert np.array_equal(ra.info["approved"][at_or_before], rb.info["approved"][at_or_before])
        assert np.array_equal(
            ra.info["symbol_reasons"][at_or_before], rb.info["symbol_reasons"][at_or_before]
        )
        # the orders are sized at p_t with triggers from data up to t
        assert np.array_equal(
            ra.info["delta_qty"][at_or_before], rb.info["delta_qty"][at_or_before]
        )
        before = ra.state.t <= t  # observations of bars up to t
        assert np.array_equal(ra.obs[before], rb.obs[before])
        checked += int(at_or_before.sum())
        sa, sb = ra.state, rb.state
        keep = sa.t <= t
        if not keep.any():
            break
    assert checked >= 3 + 6 + 13 - 2  # every portfolio reached bar t
    # and the perturbation does matter afterwards
    assert not np.array_equal(p_a.features.asset[t + 1], p_b.features.asset[t + 1])


@pytest.mark.parametrize("mode", ["weights", "budgets"])
def test_no_lookahead_synthetic(market, mode):
    _assert_no_lookahead(market, _cfg(action_mode=mode), (0, 700), t=450)


def test_no_lookahead_real_sp500(sp500):
    t = sp500.index_of("2008-09-15")
    _assert_no_lookahead(sp500, _cfg(), (t - 400, t + 100), t=t)


# ------------------------------------------------------------------------------ knobs


def _rollout(params: EnvParams, n_envs=8, n_steps=40, seed=0, proposed=None):
    rng = np.random.default_rng(seed)
    state, _ = core.reset(params, core.seed_keys(np.arange(n_envs)))
    out = {"reward": [], "log_growth": [], "cost": [], "terminated": [], "truncated": []}
    for _ in range(n_steps):
        if proposed is None:
            a = rng.uniform(-1, 1, (n_envs, params.action_spec.action_dim))
            res = core.step(params, state, a)
        else:
            res = core.step_proposed(params, state, proposed(params, state))
        for k in ("reward", "log_growth", "cost"):
            out[k].append(res.info[k])
        out["terminated"].append(res.terminated)
        out["truncated"].append(res.truncated)
        state, _ = core.autoreset(params, res.state, res.terminated | res.truncated)
    return {k: np.array(v) for k, v in out.items()}


def test_doubling_cost_rate_lowers_net_growth(market):
    base = {"risk": {"slippage_budget_bps": 1e4}, "costs": {"commission_bps": 2.0}}
    dbl = {
        "risk": {"slippage_budget_bps": 1e4},
        "costs": {"commission_bps": 4.0, "spread_mult": 2.0, "impact_k": 0.2},
    }
    a = _rollout(EnvParams.from_config(market, _cfg(base)))
    b = _rollout(EnvParams.from_config(market, _cfg(dbl)))
    # the first trade is identical, so its cost doubles exactly
    assert np.allclose(b["cost"][0], 2 * a["cost"][0], rtol=1e-12)
    assert np.all(b["log_growth"].sum(0) < a["log_growth"].sum(0))


def _tail_book(params: EnvParams, state) -> np.ndarray:
    """All-in the most volatile name (a high-tail-risk book), within a loose cap."""
    vol = params.features.volatility[state.t]
    w = np.zeros_like(vol)
    w[np.arange(len(w)), vol.argmax(1)] = 1.0
    return w


def test_raising_cvar_weight_lowers_reward_of_a_tail_risk_book(market):
    loose = {"risk": {"max_symbol_weight": 1.0, "max_sector_gross": 1.0, "max_turnover": 2.0,
                      "max_participation": 1.0, "slippage_budget_bps": 1e4}}  # fmt: skip
    lo = EnvParams.from_config(market, _cfg(loose, cvar_weight=0.1))
    hi = EnvParams.from_config(market, _cfg(loose, cvar_weight=2.0))
    a = _rollout(lo, proposed=_tail_book, n_steps=20)
    b = _rollout(hi, proposed=_tail_book, n_steps=20)
    assert np.all(b["reward"] < a["reward"])
    assert np.allclose(a["log_growth"], b["log_growth"], rtol=0, atol=0)
    # and the tail book pays more CVaR penalty than the 1/N book
    ew = _rollout(hi, proposed=lambda p, s: np.full((s.n_envs, p.n_assets), 1 / p.n_assets))
    assert (b["reward"] - b["log_growth"]).mean() < (ew["reward"] - ew["log_growth"]).mean()


def test_tighter_symbol_cap_shows_in_approved_weights_and_reason_counts(market):
    k = REASON_NAMES.index("SYMBOL_CAP")
    wide = EnvParams.from_config(market, _cfg({"risk": {"max_symbol_weight": 0.5}}))
    tight = EnvParams.from_config(market, _cfg({"risk": {"max_symbol_weight": 0.04}}))
    ew = np.full((4, 12), 1 / 12)  # 0.083 each
    for params, capped in ((wide, False), (tight, True)):
        state, _ = core.reset(params, core.seed_keys(np.arange(4)))
        res = core.step_proposed(params, state, ew)
        approved, counts = res.info["approved"], res.info["reason_counts"]
        cap = 0.04 * params.limits.capacity_multiplier(res.info["regime"].astype(np.int64))
        if capped:
            assert np.all(approved <= cap[:, None] + 1e-12)
            assert np.all(counts[:, k] == 12)
            assert np.all(res.info["symbol_reasons"] & int(ReasonCode.SYMBOL_CAP))
        else:
            assert np.all(counts[:, k] == 0)


_ALT = {
    "split": "train",
    "episode_length": 3,
    "initial_equity": 2.0e4,
    "cvar_alpha": 0.7,
    "cvar_window": 30,
    "cvar_mode": "realized",
    "cvar_weight": 3.0,
    "intervention_weight": 1.0,
    "turnover_weight": 1.0,
    "drawdown_weight": 5.0,
    "drawdown_kill": 0.001,
    "logit_scale": 0.5,
    "action_mode": "budgets",
    "audit_path": "audit.jsonl",
    "decision_interval": 3,
}
_TILT = {"action_mode": "tilt"}
"""The tilt knobs are compared between two tilt-mode envs."""
_ALT_TILT = {"tilt_prior": "inverse_volatility", "tilt_scale": 2.0, "tilt_gross_scale": 0.2}


@pytest.mark.parametrize("field", sorted(EnvConfig.model_fields))
def test_every_env_knob_changes_the_rollout(market, field, tmp_path, monkeypatch):
    assert field in {**_ALT, **_ALT_TILT}, f"EnvConfig.{field} has no knob test: add one"
    if field == "audit_path":  # a shell option: the env writes the file
        from allocgym.envs import PortfolioEnv

        monkeypatch.chdir(tmp_path)
        env = PortfolioEnv(market, _cfg(audit_path=_ALT[field]))
        env.reset(seed=0)
        env.step(env.action_space.sample())
        assert len((tmp_path / _ALT[field]).read_text().splitlines()) == 1
        return
    base_env = {"cvar_weight": 0.5, "turnover_weight": 0.1, "drawdown_weight": 0.1}
    tree = {
        "data": {
            "splits": {
                "train_end": "2002-01-31",
                "validation_end": "2002-04-30",
                "min_split_bars": 21,
            }
        }
    }
    if field in _ALT_TILT:
        base_env, value = {**base_env, **_TILT}, _ALT_TILT[field]
    else:
        value = _ALT[field]
    base = EnvParams.from_config(market, _cfg(tree, **base_env))
    alt = EnvParams.from_config(market, _cfg(tree, **{**base_env, field: value}))
    # every knob, action_mode and split included, must change what the env does: the
    # rollouts are compared, not the configs (random actions of each mode's own width)
    a, b = _rollout(base, n_steps=12), _rollout(alt, n_steps=12)
    assert any(not np.array_equal(a[k], b[k]) for k in a), f"EnvConfig.{field} is ignored"


# ------------------------------------------------------------------------------ oracle


def test_oracle_beats_equal_weight_and_random_loses_to_it():
    market = synthetic(n_assets=20, n_days=900, seed=8, n_sectors=4)
    params = EnvParams.from_config(market, _cfg(episode_length=200))
    r = market.returns

    def oracle(p, s):  # knows the return the new book earns (t+1 -> t+2)
        nxt = r[np.minimum(s.t + 2, market.n_days - 1)]
        w = np.zeros_like(nxt)
        top = np.argsort(-nxt, axis=1)[:, :10]
        np.put_along_axis(w, top, 0.1, axis=1)
        return w

    def equal(p, s):
        return np.full((s.n_envs, p.n_assets), 1 / p.n_assets)

    kw = {"n_envs": 16, "n_steps": 200}
    g_oracle = _rollout(params, proposed=oracle, **kw)["log_growth"].sum(0)
    g_equal = _rollout(params, proposed=equal, **kw)["log_growth"].sum(0)
    g_random = _rollout(params, **kw)["log_growth"].sum(0)
    assert g_oracle.mean() > g_equal.mean() + 0.5  # > 60% more growth in 200 bars
    assert np.all(g_oracle > g_equal)
    assert g_random.mean() < g_equal.mean() - 0.02  # churn costs more than luck pays


# ------------------------------------------------------------------------------ gates


def _invariant_rollout(market, mode, n_envs, n_steps, seed):
    cfg = _cfg(action_mode=mode, episode_length=50)
    params = EnvParams.from_config(market, cfg)
    rng = np.random.default_rng(seed)
    state, _ = core.reset(params, core.seed_keys(np.arange(n_envs) + seed))
    breaches, decisions = 0, 0
    for k in range(n_steps):
        a = rng.uniform(-1, 1, (n_envs, params.action_spec.action_dim)) * rng.uniform(0.2, 4.0)
        if k % 17 == 3:
            a[0] = np.nan  # invalid input must be coded, not crash
        res = core.step(params, state, a)
        rep = check_invariants(
            res.decision.gate, res.decision.context, params.limits, params.cost_model
        )
        assert rep.n_breaches == 0, rep.messages[:5]
        breaches += rep.n_breaches
        decisions += n_envs
        state, _ = core.autoreset(params, res.state, res.terminated | res.truncated)
    return breaches, decisions


@pytest.mark.parametrize("mode", ["weights", "budgets"])
def test_gates_hold_inside_the_env_short(market, mode):
    breaches, decisions = _invariant_rollout(market, mode, 16, 60, seed=1)
    assert breaches == 0 and decisions == 960


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["weights", "budgets"])
def test_gates_hold_inside_the_env_long_random_rollouts(mode):
    for seed in range(3):
        md = synthetic(n_assets=24, n_days=1500, seed=100 + seed, n_sectors=5)
        breaches, decisions = _invariant_rollout(md, mode, 64, 400, seed=seed)
        assert breaches == 0 and decisions == 64 * 400


@pytest.mark.slow
def test_gates_hold_long_short(market):
    cfg = _cfg({"risk": {"long_only": False, "beta_tolerance": 0.3, "max_net": 0.5}})
    params = EnvParams.from_config(market, cfg)
    rng = np.random.default_rng(9)
    state, _ = core.reset(params, core.seed_keys(np.arange(32)))
    for _ in range(300):
        res = core.step(params, state, rng.uniform(-1, 1, (32, params.action_spec.action_dim)))
        rep = check_invariants(
            res.decision.gate, res.decision.context, params.limits, params.cost_model
        )
        assert rep.n_breaches == 0, rep.messages[:5]
        state, _ = core.autoreset(params, res.state, res.terminated | res.truncated)


@settings(deadline=None, max_examples=25)
@given(
    st.integers(0, 2**31),
    st.lists(st.floats(0.0, 1.0), min_size=12, max_size=12),
    st.floats(0.0, 1.5),
)
def test_any_proposal_keeps_books_consistent(market_seed, raw, scale):
    market = _PROP_MARKET
    params = _PROP_PARAMS
    w = np.array(raw) * scale
    state, _ = core.reset(params, core.seed_keys([market_seed % 1000, 7]))
    for _ in range(3):
        res = core.step_proposed(params, state, np.stack([w, w[::-1]]))
        new = res.state
        p1 = params.prices[state.t + 1]
        assert np.allclose(new.equity, new.cash + (new.shares * p1).sum(1), rtol=1e-12)
        assert np.all(res.info["approved"] <= params.limits.max_symbol_weight * (1 + 1e-9))
        assert np.all(res.info["cost"] >= 0) and np.all(np.isfinite(res.reward))
        assert np.all((res.obs >= params.obs_low) & (res.obs <= params.obs_high))
        state = new
    assert market.n_assets == 12


_PROP_MARKET = synthetic(n_assets=12, n_days=500, seed=4, n_sectors=4)
_PROP_PARAMS = EnvParams.from_config(_PROP_MARKET, _cfg(episode_length=100))
