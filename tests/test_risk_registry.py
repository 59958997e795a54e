"""The registry of limits: one boundary-table row and one invariant check per entry, the
bound tables by hand, and the chain and the execution policy reading the same bounds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from gate_books import FREE, LOOSE, calm_context

from allocgym.compiled.gates import GATES
from allocgym.config import RiskConfig
from allocgym.costs import CostModel
from allocgym.execution import ExecutionParams, ExecutionPolicy, TriggerFlag
from allocgym.risk import GateContext, ReasonCode, RiskGateChain, RiskLimits, check_invariants
from allocgym.risk.checks import HARD_CHECKS, STRATEGY_CHECKS, TRADE_CHECKS
from allocgym.risk.gates.registry import HARD_LIMITS, LIMITS, LimitTables

R = ReasonCode
EPS = 1e-9
COMMISSION = CostModel(commission_bps=1.0, spread_mult=0.0, impact_k=0.0)


def limits(**kw: Any) -> RiskLimits:
    return RiskLimits(**{**LOOSE, **kw})


def ctx(**kw: Any) -> GateContext:
    return calm_context(1, 4, **kw)


def run(lim: RiskLimits, p: Any, c: GateContext, cost: CostModel = FREE):
    res = RiskGateChain(lim, cost, debug=True).apply(np.atleast_2d(np.asarray(p, float)), c)
    report = check_invariants(res, c, lim, cost)
    assert report.n_breaches == 0, report.messages
    return res


def _strategy_setup(f: float) -> tuple[list[float], GateContext]:
    sw = np.array([[[0.25 * f, 0.25 * f, 0.0, 0.0], [0.0, 0.0, 0.125, 0.125]]])
    return list(sw.sum(axis=1)[0]), ctx(strategy_weights=sw)


@dataclasses.dataclass(frozen=True)
class Row:
    """One boundary case: ``setup(f)`` gives the proposal and context, ``f = 1`` puts the
    measured quantity exactly at ``limit``; above it ``code`` acts on ``touched``."""

    limits: RiskLimits
    setup: Callable[[float], tuple[list[float], GateContext]]
    code: ReasonCode
    touched: list[int]
    measure: Callable[[np.ndarray, np.ndarray], float]
    limit: float
    cost: CostModel = FREE


def fixed(c: GateContext, prop: Callable[[float], list[float]]) -> Callable:
    return lambda f: (prop(f), c)


SECTORS = ctx(sector_ids=np.array([0, 0, 1, 1]))
BETAS = [2.0, 1.0, 0.5, 0.0]
LOADINGS = np.array([[1.0, 0.0], [0.5, 0.0], [0.0, 1.0], [0.0, 1.0]])  # (n_assets, n_factors)
BOUNDARY: dict[str, Row] = {
    "STRATEGY_CAP": Row(
        limits(max_strategy_contribution=0.5), _strategy_setup, R.STRATEGY_CAP, [0, 1],
        lambda w, c: abs(w[0]) + abs(w[1]), 0.5,
    ),
    "LONG_ONLY": Row(
        limits(long_only=True), fixed(ctx(), lambda f: [0.1 * (1.0 - f), 0.1, 0.0, 0.0]),
        R.LONG_ONLY, [0], lambda w, c: -w[0], 0.0,
    ),
    "SYMBOL_CAP": Row(
        limits(max_symbol_weight=0.25), fixed(ctx(), lambda f: [0.25 * f, 0.1, -0.2, 0.0]),
        R.SYMBOL_CAP, [0], lambda w, c: abs(w[0]), 0.25,
    ),
    "SYMBOL_CAP_short": Row(
        limits(max_symbol_weight=0.25), fixed(ctx(), lambda f: [0.1, -0.25 * f, 0.0, 0.0]),
        R.SYMBOL_CAP, [1], lambda w, c: -w[1], 0.25,  # the clipped short stays a short
    ),
    "SYMBOL_NOTIONAL_CAP": Row(
        limits(max_symbol_notional=250_000.0), fixed(ctx(), lambda f: [0.1, 0.25 * f, 0, 0]),
        R.SYMBOL_NOTIONAL_CAP, [1], lambda w, c: abs(w[1]) * 1e6, 250_000.0,
    ),
    "SECTOR_CAP": Row(
        limits(max_sector_gross=0.5), fixed(SECTORS, lambda f: [0.25 * f, -0.25 * f, 0.125, 0]),
        R.SECTOR_CAP, [0, 1], lambda w, c: abs(w[0]) + abs(w[1]), 0.5,
    ),
    "NET_CAP": Row(
        limits(max_net=0.5), fixed(ctx(), lambda f: [0.5 * f, 0.5 * f, 0.25 * f, -0.75 * f]),
        R.NET_CAP, [0, 1, 2], lambda w, c: abs(w.sum()), 0.5,  # only the long side scales
    ),
    "BETA_LIMIT": Row(
        limits(beta_tolerance=0.5),
        fixed(ctx(betas=np.array([BETAS])), lambda f: [0.125 * f, 0.25 * f, 0.0, 0.5]),
        R.BETA_LIMIT, [0, 1], lambda w, c: abs(np.dot(BETAS, w)), 0.5,  # zero beta: untouched
    ),
    "GROSS_CAP": Row(
        limits(max_gross=1.0), fixed(ctx(), lambda f: [0.25 * f, 0.25 * f, -0.25 * f, 0.25 * f]),
        R.GROSS_CAP, [0, 1, 2, 3], lambda w, c: np.abs(w).sum(), 1.0,
    ),
    "NOTIONAL_CAP": Row(
        limits(max_gross_notional=500_000.0),
        fixed(ctx(), lambda f: [0.25 * f, 0.125 * f, -0.125 * f, 0.0]),
        R.NOTIONAL_CAP, [0, 1, 2], lambda w, c: np.abs(w).sum() * 1e6, 500_000.0,
    ),
    "FACTOR_CAP": Row(  # factor 0 binds (0.25 + 0.5 x 0.5); factor 1 (0.125) stays inside
        limits(max_factor_exposure=0.5),
        fixed(ctx(factor_loadings=LOADINGS[None]), lambda f: [0.25 * f, 0.5 * f, 0.125, 0.0]),
        R.FACTOR_CAP, [0, 1, 2], lambda w, c: np.abs(LOADINGS.T @ w).max(), 0.5,
    ),
    "PARTICIPATION_CAP": Row(  # cap = 0.1 x ADV 1e6 / equity 1e6 = 0.1 weight
        limits(max_participation=0.1),
        fixed(ctx(adv_notional=np.full((1, 4), 1.0e6)), lambda f: [0.1 * f, 0.05, 0.0, 0.0]),
        R.PARTICIPATION_CAP, [0], lambda w, c: abs(w[0]), 0.1,
    ),
    "SYMBOL_TURNOVER_CAP": Row(  # per symbol, from a held position: |w_0 - 0.25| <= 0.125
        limits(max_symbol_turnover=0.125),
        fixed(
            ctx(current_weights=np.array([[0.25, 0.0, 0.0, 0.0]])),
            lambda f: [0.25 + 0.125 * f, 0.0625, -0.0625, 0.0],
        ),
        R.SYMBOL_TURNOVER_CAP, [0], lambda w, c: abs(w[0] - c[0]), 0.125,
    ),
    "SYMBOL_SLIPPAGE_BUDGET": Row(  # commission only: cost_i = 1e-4 x |dw_i|, 0.25 bps each
        limits(symbol_slippage_budget_bps=0.25),
        fixed(ctx(), lambda f: [0.25 * f, 0.125, -0.125, 0.0]),
        R.SYMBOL_SLIPPAGE_BUDGET, [0], lambda w, c: 1e-4 * abs(w[0] - c[0]), 0.25e-4,
        COMMISSION,
    ),
    "TURNOVER_CAP": Row(
        limits(max_turnover=0.5),
        fixed(
            ctx(current_weights=np.array([[0.25, 0.0, 0.0, 0.0]])),
            lambda f: [0.25 + 0.125 * f, 0.125 * f, -0.125 * f, 0.125 * f],
        ),
        R.TURNOVER_CAP, [0, 1, 2, 3], lambda w, c: np.abs(w - c).sum(), 0.5,
    ),
    "SLIPPAGE_BUDGET": Row(  # commission only: cost = 1e-4 x L1 traded, budget 1 bps
        limits(slippage_budget_bps=1.0),
        fixed(ctx(), lambda f: [0.25 * f, -0.25 * f, 0.25 * f, 0.25 * f]),
        R.SLIPPAGE_BUDGET, [0, 1, 2, 3], lambda w, c: 1e-4 * np.abs(w - c).sum(), 1e-4,
        COMMISSION,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BOUNDARY))
def test_boundary_table(name):
    row = BOUNDARY[name]
    prop, c = row.setup(1.0)
    cur = c.current_weights[0]
    res = run(row.limits, [prop], c, row.cost)
    assert np.array_equal(res.approved, [prop]), "exactly at the limit must pass unchanged"
    assert not res.symbol_reasons.any() and not res.portfolio_reasons.any()

    prop, c = row.setup(1.0 - EPS)
    res = run(row.limits, [prop], c, row.cost)
    assert np.array_equal(res.approved, [prop]), "just below the limit must pass unchanged"
    assert not res.symbol_reasons.any()

    prop, c = row.setup(1.0 + EPS)
    above = np.array([prop])
    res = run(row.limits, above, c, row.cost)
    w = res.approved[0]
    assert row.measure(w, cur) <= row.limit * (1 + 1e-12)
    assert row.measure(w, cur) == pytest.approx(row.limit, rel=1e-11, abs=1e-300)
    for i in range(4):
        has = bool(res.symbol_reasons[0, i] & int(row.code))
        assert has == (i in row.touched), (i, int(res.symbol_reasons[0, i]))
        if i not in row.touched:
            assert w[i] == above[0, i]
    level = next(s.level for s in LIMITS if s.code == row.code)
    assert bool(res.portfolio_reasons[0] & int(row.code)) == (level != "symbol")
    assert res.clipped[row.code.name][0] == pytest.approx(np.abs(above - w).sum(), rel=1e-9)


def test_every_registry_entry_has_an_invariant_check_and_a_boundary_row():
    codes = [s.code for s in LIMITS]
    assert len(set(codes)) == len(codes), "a limit is declared twice"
    checks = {"hard": HARD_CHECKS, "trade": TRADE_CHECKS, "strategy": STRATEGY_CHECKS}
    rows = {row.code for row in BOUNDARY.values()}
    for entry in LIMITS:
        assert entry.code in checks[entry.stage], f"{entry.code.name}: no invariant check"
        assert entry.code in rows, f"{entry.code.name}: no boundary-table row"
        assert entry.field in RiskConfig.model_fields, entry.field
    assert set().union(*checks.values()) == set(codes), "a check without a registry entry"
    compiled = [ReasonCode[name] for name in GATES]
    for entry in HARD_LIMITS:  # the chain's own measure and gate: compiled, or in Python
        in_python = (entry.gate is not None, entry.inside is not None)
        assert in_python == ((entry.code not in compiled),) * 2, entry.code.name
    # the kernel runs first: its gates, in its order, are the registry's first hard limits
    python = [s.code for s in HARD_LIMITS if s.gate is not None]
    assert [s.code for s in HARD_LIMITS] == compiled + python


def test_registry_order_is_the_gate_order():
    from allocgym.risk import GATE_CODES

    hard = [s.code for s in LIMITS if s.stage == "hard"]
    assert hard == [c for c in GATE_CODES if c in hard]
    assert [s.stage for s in LIMITS] == sorted(
        (s.stage for s in LIMITS), key=["strategy", "hard", "trade"].index
    )


def test_bound_tables_by_hand():
    lim = RiskLimits(
        max_symbol_weight=0.1,
        max_symbol_notional=2e5,
        max_gross=1.5,
        max_net=0.4,
        slippage_budget_bps=25.0,
        regime_budget_multipliers=(1.0, 0.9, 0.5, 3.0),  # 3.0 is clamped to 2.0
        regime_capacity_multipliers=(1.0, 1.0, 0.5, 1.0),
        default_budget_multiplier=0.8,
        default_capacity_multiplier=0.25,
    )
    b = LimitTables.build(lim).bound
    assert b[R.SYMBOL_CAP].tolist() == [0.1, 0.1, 0.05, 0.1, 0.025]
    assert b[R.SYMBOL_NOTIONAL_CAP].tolist() == [2e5, 2e5, 1e5, 2e5, 5e4]
    assert b[R.GROSS_CAP].tolist() == pytest.approx([1.5, 1.35, 0.75, 3.0, 1.2], rel=1e-15)
    assert b[R.PARTICIPATION_CAP].tolist() == [0.1, 0.1, 0.05, 0.1, 0.025]
    assert b[R.NET_CAP] == 0.4 and b[R.SLIPPAGE_BUDGET] == 0.0025
    assert b[R.NOTIONAL_CAP] is None and b[R.BETA_LIMIT] is None and b[R.LONG_ONLY] is None
    assert b[R.FACTOR_CAP] is None


def test_execution_reads_the_registry_bounds():
    """A current book over the regime-scaled gross cap is forced in execution exactly when
    the chain sees it outside: both read the registry's bounds."""
    lim = limits(max_gross=1.0, regime_budget_multipliers=(1.0, 1.0, 0.5, 1.0))
    policy = ExecutionPolicy(ExecutionParams(name_drift_threshold=0.5), lim)
    book = np.array([[0.2, 0.2, 0.2, 0.2]])  # gross 0.8: inside at 1.0, outside at 0.5
    for regime, forced in ((0, False), (2, True)):
        c = ctx(current_weights=book, regime=np.array([regime]))
        gate = run(lim, book, c)
        assert bool(gate.portfolio_reasons[0] & int(R.FORCED_DERISK)) == forced
        out = policy.apply(gate, c)
        assert bool(out.trigger_flags[0] & int(TriggerFlag.FORCED)) == forced
        expected = book * (0.5 / 0.8) if forced else book
        assert out.target_weights == pytest.approx(expected, rel=1e-12)


def test_no_risk_module_over_about_500_lines() -> None:
    """The decision core's layout: each module of ``allocgym.risk`` stays readable."""
    from pathlib import Path

    import allocgym.risk

    root = Path(allocgym.risk.__file__).parent
    sizes = {
        p.relative_to(root).as_posix(): len(p.read_text().splitlines()) for p in root.rglob("*.py")
    }
    assert len(sizes) >= 15, sizes
    too_long = {name: n for name, n in sizes.items() if n > 550}
    assert not too_long, f"split these modules (about 500 lines at most): {too_long}"
