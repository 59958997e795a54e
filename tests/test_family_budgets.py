"""Per-family budgets of the STRATEGY_CAP gate: base budget, regime multiplier and tilt,
capacity factor, then the hard clips; the per-family trace against the approved book."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from gate_books import calm_context

from allocgym import evaluation as ev
from allocgym.config import config_from_dict
from allocgym.costs import CostModel
from allocgym.data import MarketData, load_market, synthetic
from allocgym.envs import EnvParams, core
from allocgym.errors import ConfigError, GateConfigError
from allocgym.intents import STRATEGY_FAMILIES
from allocgym.regime import UNKNOWN_REGIME, regime_code
from allocgym.risk import GateContext, ReasonCode, RiskGateChain, RiskLimits, check_invariants
from allocgym.risk.gates.strategy import capacity_factor
from allocgym.risk.inputs import read_inputs

R = ReasonCode
FREE = CostModel(commission_bps=0.0, spread_mult=0.0, impact_k=0.0)
# Limits loose enough that only the strategy budgets (or the limit under test) bind.
LOOSE: dict[str, Any] = dict(
    max_symbol_weight=1.0,
    max_gross=10.0,
    max_net=10.0,
    max_sector_gross=10.0,
    max_turnover=100.0,
    max_participation=1e6,
    slippage_budget_bps=1e6,
)
HIGH_VOL = regime_code("high_volatility")


def limits(**kw: Any) -> RiskLimits:
    return RiskLimits(**{**LOOSE, **kw})


def ctx(n_assets: int = 4, regime: int = UNKNOWN_REGIME, **kw: Any) -> GateContext:
    return calm_context(1, n_assets, regime=np.array([regime], dtype=np.int64), **kw)


def run(lim: RiskLimits, c: GateContext) -> Any:
    assert c.strategy_weights is not None
    proposed = np.asarray(c.strategy_weights).sum(axis=1)
    res = RiskGateChain(lim, FREE).apply(proposed, c)
    report = check_invariants(res, c, lim, FREE)
    assert report.n_breaches == 0, report.messages
    return res


def family_gross(res: Any, c: GateContext) -> np.ndarray:
    return np.abs(res.strategy_scale[:, :, None] * c.strategy_weights).sum(axis=2)


def test_regime_multiplier_scales_each_family_base_budget():
    """'base risk budget per strategy family.' / 'regime multipliers adjust base budgets.' /
    'final hard clipping by gross/net/notional limits.'

    The m = 0.6 example: families propose 0.45 (trend), 0.20 (mean reversion) and 0.076
    (defensive), 0.726 in all, in a high-volatility regime (budget multiplier 0.6). With
    base budgets 0.4 / 0.2 / 0.3 the scaled budgets are 0.24 / 0.12 / 0.18, so the book
    is 0.24 + 0.12 + 0.076 = 0.436: within the scaled budgets, where a gross cap alone
    (max_gross x m = 0.6) would have let 0.6 through.
    """
    lim = limits(
        strategy_budgets={"trend": 0.4, "mean_reversion": 0.2, "defensive": 0.3},
        regime_budget_multipliers={"high_volatility": 0.6},
        max_gross=1.0,
    )
    sw = np.zeros((1, 3, 4))
    sw[0, 0, :2] = [0.30, 0.15]  # trend 0.45
    sw[0, 1, 2] = 0.20  # mean reversion 0.20
    sw[0, 2, 3] = 0.076  # defensive 0.076
    c = ctx(regime=HIGH_VOL, strategy_weights=sw)
    res = run(lim, c)
    scaled = np.array([0.4 * 0.6, 0.2 * 0.6, 0.3 * 0.6])
    assert family_gross(res, c)[0] == pytest.approx([0.24, 0.12, 0.076], rel=1e-12)
    gross = np.abs(res.approved).sum()
    assert gross == pytest.approx(0.436, rel=1e-12)
    assert gross <= scaled.sum()
    assert res.approved[0] == pytest.approx([0.16, 0.08, 0.12, 0.076], rel=1e-12)
    assert res.portfolio_reasons[0] & int(R.STRATEGY_CAP)
    assert not res.portfolio_reasons[0] & int(R.GROSS_CAP)
    trace = res.strategy_budget
    assert trace.base[0].tolist() == [0.4, 0.2, 0.3]
    assert trace.regime[0] == pytest.approx(scaled, rel=1e-15)
    assert np.array_equal(trace.capacity, trace.regime)  # no capacity references
    assert trace.proposed[0] == pytest.approx([0.45, 0.20, 0.076], rel=1e-15)
    assert trace.approved[0] == pytest.approx([0.24, 0.12, 0.076], rel=1e-12)
    # the same proposal in a regime without a multiplier: only trend is over its 0.4
    res = run(lim, ctx(regime=regime_code("trend"), strategy_weights=sw))
    assert res.strategy_budget.approved[0] == pytest.approx([0.4, 0.1, 0.076], rel=1e-12)


def test_family_lines_follow_the_final_book():
    """'per-strategy budget utilization trace.' / 'final hard clipping by gross/net/notional
    limits.'

    A gross cap of 0.3 (after the strategy stage) halves the 0.6 book; the approved line
    of each family halves with it: 0.2 and 0.1 of the 0.3 book. Name 1 is held by both
    families (0.1 trend, 0.1 defensive): its approved 0.1 splits 0.05 / 0.05.
    """
    lim = limits(max_gross=0.3)
    sw = np.zeros((1, 3, 4))
    sw[0, 0, :2] = [0.3, 0.1]
    sw[0, 2, 1:3] = [0.1, 0.1]
    c = ctx(strategy_weights=sw)
    res = run(lim, c)
    assert res.approved[0] == pytest.approx([0.15, 0.1, 0.05, 0.0], rel=1e-12)
    trace = res.strategy_budget
    assert trace.proposed[0] == pytest.approx([0.4, 0.0, 0.2], rel=1e-15)
    assert trace.approved[0] == pytest.approx([0.2, 0.0, 0.1], rel=1e-12)
    assert trace.approved.sum() == pytest.approx(np.abs(res.approved).sum(), rel=1e-12)


def test_a_position_no_family_holds_is_split_by_family_gross():
    """'per-strategy budget utilization trace.': a held position the turnover ceiling keeps
    (no family proposes it) is attributed in proportion to the families' gross."""
    lim = limits(max_turnover=0.1)
    sw = np.zeros((1, 3, 4))
    sw[0, 0, 0] = 0.3
    sw[0, 1, 1] = 0.1
    cur = np.array([[0.0, 0.0, 0.0, 0.2]])
    c = ctx(strategy_weights=sw, current_weights=cur)
    res = run(lim, c)
    # the trade (0.3, 0.1, 0, -0.2), L1 0.6, scaled to 0.1: x 1/6
    assert res.approved[0] == pytest.approx([0.05, 0.1 / 6, 0.0, 0.2 - 0.2 / 6], rel=1e-12)
    held = 0.2 - 0.2 / 6
    expected = [0.05 + held * 0.75, 0.1 / 6 + held * 0.25, 0.0]
    assert res.strategy_budget.approved[0] == pytest.approx(expected, rel=1e-12)
    assert res.strategy_budget.approved.sum() == pytest.approx(np.abs(res.approved).sum())


def test_capacity_factor_by_hand_and_clamped():
    """'capacity scaling adjusts by spread/volatility/liquidity.'

    One family holds names 0 and 1 with contributions 0.3 and 0.1 (weights 3/4, 1/4):
    spread 4 and 12 bps -> 6 (reference 3: ratio 0.5); volatility 0.01 and 0.03 ->
    0.015 (reference 0.03: ratio 2); ADV / equity 2 and 6 -> 3 (reference 2: ratio 1.5).
    Product 1.5 inside [0, 2]. Name 2 is not tradable and left out of the averages.
    """
    refs = dict(
        strategy_capacity_spread_bps=3.0,
        strategy_capacity_volatility=0.03,
        strategy_capacity_adv_to_equity=2.0,
    )
    sw = np.zeros((1, 1, 4))
    sw[0, 0, :3] = [0.3, 0.1, 0.5]
    market = dict(
        spread_bps=np.array([[4.0, 12.0, 500.0, 5.0]]),
        volatility=np.array([[0.01, 0.03, 0.5, 0.02]]),
        adv_notional=np.array([[2e6, 6e6, 1.0, 1e9]]),
        tradable=np.array([[True, True, False, True]]),
    )

    def factor(**kw: Any) -> float:
        lim = limits(**{**refs, **kw})
        c = ctx(strategy_weights=sw, **market)
        x = read_inputs(sw.sum(axis=1), c, lim)
        return float(capacity_factor(x.strategy, x, lim)[0, 0])

    assert factor() == pytest.approx(0.5 * 2.0 * 1.5, rel=1e-12)
    # each ratio clamped, then the product: 0.5 x 1.2 x 1.2 under a 1.2 ceiling
    assert factor(max_multiplier=1.2) == pytest.approx(0.72, rel=1e-12)
    # a floor of 0.9: 0.9 x 1 x 1 under a 1.0 ceiling
    assert factor(min_multiplier=0.9, max_multiplier=1.0) == pytest.approx(0.9, rel=1e-12)
    # each reference alone
    assert factor(strategy_capacity_volatility=None, strategy_capacity_adv_to_equity=None) == (
        pytest.approx(0.5, rel=1e-12)
    )
    assert factor(strategy_capacity_spread_bps=None, strategy_capacity_volatility=None) == (
        pytest.approx(1.5, rel=1e-12)
    )
    assert factor(**{k: None for k in refs}) == 1.0

    # Through the chain: the tradable part 0.4 (trend) against 0.6 x 1.5 = 0.9 is
    # inside; the spread alone (x 0.5: 0.3) scales the family, gross 0.9 -> 0.3.
    c = ctx(strategy_weights=sw, **market)
    res = run(limits(**refs), c)
    assert res.strategy_budget.capacity[0, 0] == pytest.approx(0.9, rel=1e-12)
    assert res.strategy_scale[0, 0] == 1.0
    lim = limits(strategy_capacity_spread_bps=3.0)
    res = run(lim, c)
    assert res.strategy_budget.regime[0, 0] == 0.6
    assert res.strategy_budget.capacity[0, 0] == pytest.approx(0.3, rel=1e-12)
    assert res.strategy_scale[0, 0] == pytest.approx(0.3 / 0.9, rel=1e-12)
    assert res.portfolio_reasons[0] & int(R.STRATEGY_CAP)


def test_regime_tilts_by_hand():
    """'trend regime: favor trend strategies, reduce mean-reversion weight.' /
    'mean-reversion regime: reverse above bias.' / 'high-volatility regime: reduce gross
    exposure and tighten participation caps.' / 'uncertain regime: move toward defensive
    baseline weights.'

    Defaults: base 0.6 each; trend halves mean reversion (0.6, 0.3, 0.6), mean reversion
    halves trend (0.3, 0.6, 0.6); high volatility: multiplier 0.6 (0.36 each); uncertain:
    multiplier 0.8 and 0.75 on trend and mean reversion (0.36, 0.36, 0.48), so the
    defensive family keeps the largest budget. Every family proposes 0.5.
    """
    lim = limits()
    sw = np.zeros((1, 3, 3))
    sw[0, [0, 1, 2], [0, 1, 2]] = 0.5
    expected = {
        "trend": [0.5, 0.3, 0.5],
        "mean_reversion": [0.3, 0.5, 0.5],
        "high_volatility": [0.36, 0.36, 0.36],
        "uncertain": [0.36, 0.36, 0.48],
        "neutral": [0.5, 0.5, 0.5],  # an unknown label: no tilt, multiplier 1
    }
    for label, families in expected.items():
        c = ctx(n_assets=3, regime=regime_code(label), strategy_weights=sw)
        res = run(lim, c)
        assert family_gross(res, c)[0] == pytest.approx(families, rel=1e-12), label
        assert res.strategy_budget.approved[0] == pytest.approx(families, rel=1e-12), label

    # A configured table; tilts are clamped like the runtime flags' multipliers.
    lim = limits(
        regime_strategy_tilts={"trend": {"trend": 3.0, "defensive": 0.25}},
        max_multiplier=1.5,
    )
    table = lim.tables.bound[R.STRATEGY_CAP]
    assert table[regime_code("trend")] == pytest.approx([0.9, 0.6, 0.15], rel=1e-15)
    assert table[regime_code("mean_reversion")].tolist() == [0.6, 0.6, 0.6]
    assert lim.to_dict()["regime_strategy_tilts"]["trend"] == {
        "trend": 1.5, "mean_reversion": 1.0, "defensive": 0.25,
    }  # fmt: skip
    assert RiskLimits(**lim.to_dict()) == lim  # the manifest's round trip


def test_bad_budget_and_tilt_tables_are_refused():
    """Names that could never apply, and negative values, are refused with the fix."""
    with pytest.raises(GateConfigError, match=r"strategy_budgets names \['momentum'\]"):
        RiskLimits(strategy_budgets={"momentum": 0.3})
    with pytest.raises(GateConfigError, match=r"label\(s\) \['bull'\]"):
        RiskLimits(regime_strategy_tilts={"bull": {"trend": 1.2}})
    with pytest.raises(GateConfigError, match=r"regime_strategy_tilts\['trend'\] names"):
        RiskLimits(regime_strategy_tilts={"trend": {"carry": 1.2}})
    with pytest.raises(ConfigError, match=r"strategy_budgets\['trend'\] = -0.1"):
        config_from_dict({"risk": {"strategy_budgets": {"trend": -0.1}}})
    with pytest.raises(ConfigError, match=r"regime_strategy_tilts\['trend'\]\['trend'\] = -1"):
        config_from_dict({"risk": {"regime_strategy_tilts": {"trend": {"trend": -1.0}}}})
    # the defaults leave weights mode and a family-free decision untouched
    assert RiskLimits().strategy_budgets == (0.6,) * len(STRATEGY_FAMILIES)


def test_high_volatility_tightens_participation_caps():
    """'high-volatility regime: reduce gross exposure and tighten participation caps.'

    Defaults: capacity multiplier 0.5 in high volatility. ADV = equity = 1e6 and
    max_participation 0.1 allow a 0.1 trade per name; in high volatility 0.05.
    """
    lim = limits(max_participation=0.1)
    adv = np.full((1, 4), 1e6)
    proposed = np.array([[0.08, 0.0, 0.0, 0.0]])
    for label, allowed in (("trend", 0.08), ("high_volatility", 0.05)):
        c = ctx(regime=regime_code(label), adv_notional=adv)
        res = RiskGateChain(lim, FREE).apply(proposed, c)
        assert check_invariants(res, c, lim, FREE).n_breaches == 0
        assert res.approved[0, 0] == pytest.approx(allowed, rel=1e-12), label
        assert bool(res.symbol_reasons[0, 0] & int(R.PARTICIPATION_CAP)) == (allowed < 0.08)
    # and the gross: max_gross 1 x 0.6 in high volatility
    lim = limits(max_gross=1.0)
    c = ctx(regime=HIGH_VOL)
    res = RiskGateChain(lim, FREE).apply(np.full((1, 4), 0.25), c)
    assert np.abs(res.approved).sum() == pytest.approx(0.6, rel=1e-12)


# ----------------------------------------------------------------------------- rollouts


def _rollout(market: MarketData, cfg_dict: dict[str, Any], n_envs: int, n_steps: int, seed: int):
    cfg = config_from_dict(cfg_dict)
    params = EnvParams.from_config(market, cfg)
    rng = np.random.default_rng(seed)
    state, _ = core.reset(params, core.seed_keys(np.arange(n_envs)))
    for _ in range(n_steps):
        action = rng.uniform(-1, 1, (n_envs, params.action_spec.action_dim)).astype(np.float32)
        res = core.step(params, state, action)
        yield params, res
        state = res.state


def test_family_lines_sum_to_the_approved_gross_on_an_env_rollout():
    """'per-strategy budget utilization trace.': in budgets mode the family lines of every
    decision sum to the approved book's gross."""
    market = synthetic(n_assets=8, n_days=700, seed=11, n_sectors=4)
    cfg = {"env": {"split": "all", "episode_length": 40, "action_mode": "budgets"}}
    checked = 0
    for _, res in _rollout(market, cfg, n_envs=6, n_steps=40, seed=4):
        gate = res.decision.gate
        trace = gate.strategy_budget
        assert trace is not None and trace.approved.shape == (6, 3)
        held = trace.proposed.sum(axis=1) > 0
        gross = np.abs(gate.approved).sum(axis=1)
        assert np.allclose(trace.approved.sum(axis=1)[held], gross[held], rtol=1e-12, atol=0)
        assert np.all(family_gross(gate, res.decision.context) <= trace.capacity + 1e-12)
        checked += int(held.sum())
    assert checked == 6 * 40


def test_sp500_budgets_rollout_has_no_invariant_breaches(sp500: MarketData):
    """'no limit breach at post-risk stage.': a budgets-mode rollout of the S&P 500 sample
    with every capacity reference set (the capacity factor binds) breaks no invariant."""
    cfg: dict[str, Any] = {"env": {"split": "validation", "action_mode": "budgets"}}
    params = EnvParams.from_config(sp500, config_from_dict(cfg))
    window = slice(params.lo, params.split.stop)
    equity = float(params.cfg.env.initial_equity)
    cfg["risk"] = {
        "strategy_capacity_spread_bps": float(np.nanmedian(sp500.spread_bps[window])),
        "strategy_capacity_volatility": float(np.nanmedian(params.features.volatility[window])),
        "strategy_capacity_adv_to_equity": float(
            np.nanmedian(params.features.adv_notional[window]) / equity
        ),
        "max_multiplier": 1.0,
    }
    capped = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for p, res in _rollout(sp500, cfg, n_envs=8, n_steps=120, seed=7):
            gate, context = res.decision.gate, res.decision.context
            report = check_invariants(gate, context, p.limits, p.cost_model)
            assert report.n_breaches == 0, report.messages[:5]
            trace = gate.strategy_budget
            capped += int((trace.capacity < trace.regime - 1e-12).sum())
    assert capped > 0  # the capacity factor cut some family's budget


class _ConstantBudgets:
    """A policy giving one fixed budgets-mode action."""

    name, group, seed = "budget_agent", "const", 0

    def __init__(self, action: list[float]) -> None:
        self.action = np.asarray(action, dtype=np.float32)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.action, (obs.shape[0], self.action.size)).copy()


def test_evaluation_surfaces_the_family_trace():
    """'per-strategy budget utilization trace.': evaluation keeps the budget steps and the
    approved lines, and measures each family's use against the budget it was held to."""
    cfg = config_from_dict(
        {
            "data": {
                "source": "synthetic",
                "synthetic": {"n_assets": 6, "n_days": 720, "seed": 5, "n_sectors": 3},
                "splits": {"train_end": "2001-06-29", "validation_end": "2001-12-31"},
            },
            "env": {"action_mode": "budgets"},
            "risk": {"strategy_budgets": {"trend": 0.3}},
        }
    )
    market = load_market(cfg.data)
    params = ev.evaluation_params(market, cfg)
    (bt,) = ev.run_allocators([_ConstantBudgets([1.0, -1.0, 0.5, -1.0])], params=params)
    assert bt.strategy_budget is not None and bt.strategy_gross is not None
    assert np.all(bt.strategy_budget[:, :, 0] == [0.3, 0.6, 0.6])
    assert np.allclose(bt.strategy_gross.sum(1), np.abs(bt.approved).sum(1), rtol=1e-12, atol=0)
    m = ev.backtest_metrics(bt)
    assert m["strategy_budget"]["trend"]["base"] == pytest.approx(0.3, rel=1e-12)
    assert m["strategy_budget"]["trend"]["approved"] == pytest.approx(
        bt.strategy_gross[:, 0].mean()
    )
    used = ev.risk_budget_utilisation(bt, cfg.risk)["families"]["trend"]
    budget = bt.strategy_budget[:, 0, 2]
    expected = bt.strategy_gross[budget > 0, 0] / budget[budget > 0]
    assert used == {"mean": pytest.approx(expected.mean()), "max": pytest.approx(expected.max())}
