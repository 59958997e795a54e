"""Per-symbol capacity budgets (turnover ceiling and expected-slippage budget per symbol)
and the bar's recent fills counted against participation and turnover, all by hand.

The allocator design's capacity controls: "Enforce by symbol: participation cap. expected
slippage budget. turnover ceiling. concentration cap. If symbol fails capacity checks:
clip or reject allocation, persist reason for analytics." Its allocation inputs include
"open positions and recent fills".
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pytest
from gate_books import FREE, calm_context
from gate_books import LOOSE as REGISTRY_LOOSE
from test_execution import executed_as_gate
from test_risk_registry import COMMISSION

from allocgym.costs import CostModel, expected_cost
from allocgym.errors import RequestError
from allocgym.execution import ExecutionParams, ExecutionPolicy, TriggerFlag
from allocgym.regime import REGIME_LABELS
from allocgym.risk import (
    Fill,
    GateContext,
    GateResult,
    ReasonCode,
    RiskGateChain,
    RiskLimits,
    check_invariants,
    fill_notional,
)
from allocgym.risk.gates.registry import LimitTables

R = ReasonCode
E = 1.0e6  # equity
# Loose enough that only the limit under test binds; capacity halved in high volatility.
LOOSE: dict[str, Any] = {**REGISTRY_LOOSE, "regime_capacity_multipliers": (1.0, 1.0, 0.5, 1.0)}
IMPACT = CostModel(commission_bps=0.0, spread_mult=0.0, impact_k=1.0)
HIGH_VOL = REGIME_LABELS.index("high_volatility")


def limits(**kw: Any) -> RiskLimits:
    return RiskLimits(**{**LOOSE, **kw})


def ctx(n: int = 1, m: int = 4, **kw: Any) -> GateContext:
    # ADV notional 1e6 (not the calm 1e9): participation binds at trade sizes of 1e5
    return calm_context(n, m, **{"adv_notional": np.full((n, m), 1.0e6), **kw})


def run(lim: RiskLimits, p: Any, c: GateContext, cost: CostModel = FREE) -> GateResult:
    res = RiskGateChain(lim, cost, debug=True).apply(np.atleast_2d(np.asarray(p, float)), c)
    report = check_invariants(res, c, lim, cost)
    assert report.n_breaches == 0, report.messages
    return res


def coded(res: GateResult, code: ReasonCode) -> list[bool]:
    return [bool(v & int(code)) for v in res.symbol_reasons[0]]


# ----------------------------------------------------------------------------- the limits


def test_symbol_turnover_clips_only_the_symbol_over_it():
    """Capacity controls, "Enforce by symbol: ... turnover ceiling": |0.08 - 0| > 0.05 clips
    symbol 0 to 0.05 with its own code; the other trades (0.03, -0.02) are untouched, bit
    for bit."""
    res = run(limits(max_symbol_turnover=0.05), [[0.08, 0.03, -0.02, 0.0]], ctx())
    assert res.approved[0].tolist() == [0.05, 0.03, -0.02, 0.0]
    assert coded(res, R.SYMBOL_TURNOVER_CAP) == [True, False, False, False]
    assert res.portfolio_reasons[0] == 0  # a per-symbol limit: no portfolio bit
    assert res.clipped["SYMBOL_TURNOVER_CAP"][0] == pytest.approx(0.03, rel=1e-12)


def test_symbol_turnover_from_a_held_position_and_under_the_capacity_multiplier():
    """Regime model, "high-volatility regime: ... tighten participation caps": the
    per-symbol capacity limits take the regime capacity multiplier like the participation
    cap (0.5 here), so the ceiling 0.1 becomes 0.05: a sell from 0.30 to 0.10 stops at
    0.25."""
    c = ctx(current_weights=np.array([[0.30, 0.10, 0.0, 0.0]]))
    lim = limits(max_symbol_turnover=0.1)
    calm = run(lim, [[0.10, 0.15, 0.0, 0.0]], c)
    assert calm.approved[0] == pytest.approx([0.20, 0.15, 0.0, 0.0], rel=1e-12)
    stressed = ctx(current_weights=c.current_weights, regime=np.array([HIGH_VOL]))
    res = run(lim, [[0.10, 0.15, 0.0, 0.0]], stressed)
    assert res.approved[0] == pytest.approx([0.25, 0.15, 0.0, 0.0], rel=1e-12)
    assert coded(res, R.SYMBOL_TURNOVER_CAP) == [True, False, False, False]


def test_symbol_slippage_budget_commission_only():
    """Capacity controls, "Enforce by symbol: ... expected slippage budget": at 1 bps
    commission a trade of 0.08 costs 0.08 bps of equity, over a 0.05 bps budget; the trade
    is scaled to 0.05 (cost 0.05 bps), the others (0.04 and 0.02 bps) keep their trades."""
    lim = limits(symbol_slippage_budget_bps=0.05)
    res = run(lim, [[0.08, 0.04, -0.02, 0.0]], ctx(), COMMISSION)
    w = res.approved[0]
    assert w[0] == pytest.approx(0.05, rel=1e-12)
    assert w[1:].tolist() == [0.04, -0.02, 0.0]
    assert coded(res, R.SYMBOL_SLIPPAGE_BUDGET) == [True, False, False, False]
    assert res.portfolio_reasons[0] == 0


def test_symbol_slippage_budget_on_the_concave_impact_curve():
    """Impact only (k = 1, vol 0.02, ADV = equity): cost_i = 0.02 |dw_i|^1.5; a 1 bps budget
    allows |dw| = (1e-4 / 0.02)^(2/3) = 0.0292402 in symbol 0 (asked: 0.1). Symbol 1 (0.02,
    cost 0.57 bps) is untouched. In high volatility the budget halves: (0.5e-4 /
    0.02)^(2/3) = 0.0184202, and symbol 1 (over 0.5 bps) is scaled as well."""
    lim = limits(symbol_slippage_budget_bps=1.0)
    res = run(lim, [[0.1, 0.02, 0.0, 0.0]], ctx(), IMPACT)
    assert res.approved[0, 0] == pytest.approx(0.02924017738, rel=1e-9)
    assert res.approved[0, 1] == 0.02
    assert coded(res, R.SYMBOL_SLIPPAGE_BUDGET) == [True, False, False, False]
    stressed = run(lim, [[0.1, 0.02, 0.0, 0.0]], ctx(regime=np.array([HIGH_VOL])), IMPACT)
    assert stressed.approved[0, :2] == pytest.approx([0.01842015749] * 2, rel=1e-9)
    assert coded(stressed, R.SYMBOL_SLIPPAGE_BUDGET) == [True, True, False, False]


def test_each_limit_codes_the_symbols_it_clipped():
    """Participation 0.1 (ADV = equity), symbol turnover 0.06, symbol slippage 0.04 bps at
    1 bps commission (|dw| <= 0.04): symbol 0 (0.2) hits all three in turn, symbol 1 (0.07)
    the turnover and slippage ones, symbol 2 (0.05) the slippage one, symbol 3 none."""
    lim = limits(max_participation=0.1, max_symbol_turnover=0.06, symbol_slippage_budget_bps=0.04)
    res = run(lim, [[0.2, 0.07, 0.05, 0.03]], ctx(), COMMISSION)
    assert res.approved[0] == pytest.approx([0.04, 0.04, 0.04, 0.03], rel=1e-12)
    assert coded(res, R.PARTICIPATION_CAP) == [True, False, False, False]
    assert coded(res, R.SYMBOL_TURNOVER_CAP) == [True, True, False, False]
    assert coded(res, R.SYMBOL_SLIPPAGE_BUDGET) == [True, True, True, False]
    assert res.approved[0, 3] == 0.03  # untouched bit for bit
    clipped = {k: res.clipped[k][0] for k in (
        "PARTICIPATION_CAP", "SYMBOL_TURNOVER_CAP", "SYMBOL_SLIPPAGE_BUDGET")}  # fmt: skip
    assert clipped == pytest.approx(
        {"PARTICIPATION_CAP": 0.1, "SYMBOL_TURNOVER_CAP": 0.05, "SYMBOL_SLIPPAGE_BUDGET": 0.05},
        rel=1e-9,
    )


def test_limits_off_by_default_and_clipped_entries_only_while_on():
    """Both limits default to ``None``: the defaults leave every decision as it was, and
    ``GateResult.clipped`` carries their entries only while they are on."""
    assert RiskLimits().max_symbol_turnover is None
    assert RiskLimits().symbol_slippage_budget_bps is None
    res = run(limits(), [[0.9, -0.5, 0.0, 0.0]], ctx(), COMMISSION)
    assert res.approved[0].tolist() == [0.9, -0.5, 0.0, 0.0]
    assert "SYMBOL_TURNOVER_CAP" not in res.clipped
    assert "SYMBOL_SLIPPAGE_BUDGET" not in res.clipped
    on = run(limits(max_symbol_turnover=1.0, symbol_slippage_budget_bps=1e3), [[0.1] * 4], ctx())
    assert on.clipped["SYMBOL_TURNOVER_CAP"][0] == 0.0
    assert on.clipped["SYMBOL_SLIPPAGE_BUDGET"][0] == 0.0


def test_bound_tables_by_hand():
    """The registry's bounds per regime slot: value x capacity multiplier (trend,
    mean_reversion, high_volatility, uncertain, then unknown codes at the default 0.25),
    bps as fractions of equity."""
    lim = limits(
        max_symbol_turnover=0.2, symbol_slippage_budget_bps=4.0, default_capacity_multiplier=0.25
    )
    b = LimitTables.build(lim).bound
    assert b[R.SYMBOL_TURNOVER_CAP].tolist() == [0.2, 0.2, 0.1, 0.2, 0.05]
    assert b[R.SYMBOL_SLIPPAGE_BUDGET].tolist() == pytest.approx(
        [4e-4, 4e-4, 2e-4, 4e-4, 1e-4], rel=1e-15
    )


def test_clipping_that_breaks_a_coupled_limit_is_repaired():
    """A rotation at the gross cap whose sell is cut by the symbol turnover ceiling 0.3
    (0.5 -> 0.2 frees 0.3): buying 0.25 of two names in full would break the gross cap, so
    the clipped sell is kept and the buys share what it frees, 0.15 each (closer to the
    target than scaling the whole trade, which here is no trade at all)."""
    c = ctx(current_weights=np.array([[0.5, 0.0, 0.5, 0.0]]))
    res = run(limits(max_gross=1.0, max_symbol_turnover=0.3), [[0.0, 0.25, 0.5, 0.25]], c)
    w = res.approved[0]
    assert w == pytest.approx([0.2, 0.15, 0.5, 0.15], rel=1e-9)
    assert np.abs(w).sum() <= 1.0 * (1 + 3e-12)
    assert coded(res, R.SYMBOL_TURNOVER_CAP)[0]
    assert res.portfolio_reasons[0] & int(R.GROSS_CAP)


# ----------------------------------------------------------------------------- invariants


def _forged(res: GateResult, approved: list[float]) -> GateResult:
    """``res`` with another approved book (its codes kept)."""
    return GateResult(
        approved=np.array([approved]),
        symbol_reasons=res.symbol_reasons,
        portfolio_reasons=res.portfolio_reasons,
        clipped=res.clipped,
        proposed=res.proposed,
    )


def test_invariant_checker_flags_a_per_symbol_breach():
    """The checker measures the per-symbol limits with its own code: a book whose symbol 0
    trades 0.06 (ceiling 0.05) or costs 0.06 bps (budget 0.05 bps) is a breach."""
    c = ctx()
    for lim in (limits(max_symbol_turnover=0.05), limits(symbol_slippage_budget_bps=0.05)):
        res = run(lim, [[0.08, 0.03, 0.0, 0.0]], c, COMMISSION)
        report = check_invariants(_forged(res, [0.06, 0.03, 0.0, 0.0]), c, lim, COMMISSION)
        assert report.n_breaches == 1
        assert "trade limits breached" in report.messages[0]


# ----------------------------------------------------------------------------- recent fills


def test_recent_fills_shrink_the_participation_room():
    """Allocation inputs, "open positions and recent fills": with ADV = equity and a 0.1
    participation cap, 40,000 already traded in symbol 0 (a buy of 300 and a sell of 100
    shares at 100) leaves 0.06 of room: the 0.08 trade is clipped to 0.06; symbol 1 (no
    fills, 0.05) is untouched."""
    t0 = dt.datetime(2024, 5, 1, 14, 30, tzinfo=dt.UTC)
    fills = [Fill("A", 300.0, 100.0, t0), Fill("A", -100.0, 100.0, t0 + dt.timedelta(minutes=5))]
    notional = fill_notional(fills, ["A", "B", "C", "D"], bar_start=t0)
    assert notional.tolist() == [40_000.0, 0.0, 0.0, 0.0]
    c = ctx(current_weights=np.array([[0.02, 0.0, 0.0, 0.0]]), recent_fills=notional[None])
    res = run(limits(max_participation=0.1), [[0.10, 0.05, 0.0, 0.0]], c)
    assert res.approved[0] == pytest.approx([0.08, 0.05, 0.0, 0.0], rel=1e-12)
    assert coded(res, R.PARTICIPATION_CAP) == [True, False, False, False]
    without = run(limits(max_participation=0.1), [[0.10, 0.05, 0.0, 0.0]], ctx(
        current_weights=c.current_weights))  # fmt: skip
    assert without.approved[0].tolist() == [0.10, 0.05, 0.0, 0.0]


def test_recent_fills_shrink_the_symbol_and_portfolio_turnover_room():
    """Symbol turnover ceiling 0.05: fills of 0.1, 0.02 and 0.08 leave symbols 0 and 2 no
    room and symbol 1 0.03. Then fills of 0.02, 0.02, 0 and 0.06 (total 0.1) leave 0.03,
    0.03, 0.05, 0: the trade (0.05, 0.04, -0.01, 0) is clipped to (0.03, 0.03, -0.01, 0),
    L1 0.07. The portfolio turnover room is max_turnover - 0.1: at 0.5 and at 0.17 (room
    0.07, exactly at the limit) nothing more happens; at 0.135 (room 0.035) the whole
    clipped trade is scaled by 0.035 / 0.07."""
    notional = np.array([[100_000.0, 20_000.0, 80_000.0, 0.0]])
    c = ctx(recent_fills=notional)
    lim = limits(max_symbol_turnover=0.05, max_participation=1.0)
    res = run(lim.replace(max_turnover=0.5), [[0.1, 0.04, 0.05, 0.0]], c)
    # symbol 0: 0.1 already traded leaves no room under the 0.05 ceiling
    assert res.approved[0] == pytest.approx([0.0, 0.03, 0.0, 0.0], abs=1e-15)
    assert coded(res, R.SYMBOL_TURNOVER_CAP) == [True, True, True, False]

    c2 = ctx(recent_fills=np.array([[20_000.0, 20_000.0, 0.0, 60_000.0]]))
    for ceiling in (0.5, 0.17):
        res = run(lim.replace(max_turnover=ceiling), [[0.05, 0.04, -0.01, 0.0]], c2)
        assert res.approved[0] == pytest.approx([0.03, 0.03, -0.01, 0.0], rel=1e-12)
        assert coded(res, R.SYMBOL_TURNOVER_CAP) == [True, True, False, False]
        assert not res.portfolio_reasons[0] & int(R.TURNOVER_CAP)
    res = run(lim.replace(max_turnover=0.135), [[0.05, 0.04, -0.01, 0.0]], c2)
    s = 0.035 / 0.07  # room 0.135 - 0.1 over the clipped trade's L1
    assert res.approved[0] == pytest.approx(s * np.array([0.03, 0.03, -0.01, 0.0]), rel=1e-12)
    assert res.portfolio_reasons[0] & int(R.TURNOVER_CAP)


def test_fills_that_used_the_whole_room_stop_the_symbol():
    """Fills of 150,000 in symbol 0 are over its 0.1 participation cap already: no room
    is left, the trade in symbol 0 is refused (coded), the book keeps its position."""
    c = ctx(current_weights=np.array([[0.15, 0.0, 0.0, 0.0]]),
            recent_fills=np.array([[150_000.0, 0.0, 0.0, 0.0]]))  # fmt: skip
    res = run(limits(max_participation=0.1), [[0.25, 0.05, 0.0, 0.0]], c)
    assert res.approved[0].tolist() == [0.15, 0.05, 0.0, 0.0]
    assert coded(res, R.PARTICIPATION_CAP) == [True, False, False, False]


def test_the_checker_counts_the_fills():
    """A book the chain approved without the fills breaks the participation limit once the
    same fills are in the context: the checker reads them itself."""
    lim = limits(max_participation=0.1)
    plain = run(lim, [[0.10, 0.0, 0.0, 0.0]], ctx())
    filled = ctx(recent_fills=np.array([[50_000.0, 0.0, 0.0, 0.0]]))
    assert not check_invariants(plain, filled, lim, FREE).ok


def test_recent_fills_broadcast_and_batch_rows():
    """One (n_assets,) row is broadcast to every portfolio; ``GateContext.rows`` keeps it."""
    c = ctx(2, recent_fills=np.array([40_000.0, 0.0, 0.0, 0.0]))
    res = run(limits(max_participation=0.1), [[0.1, 0.0, 0.0, 0.0], [0.05, 0.0, 0.0, 0.0]], c)
    assert res.approved[:, 0] == pytest.approx([0.06, 0.05], rel=1e-12)
    assert c.rows(np.array([1])).recent_fills.tolist() == [40_000.0, 0.0, 0.0, 0.0]
    batched = ctx(2, recent_fills=np.array([[1.0, 0, 0, 0], [2.0, 0, 0, 0]]))
    assert batched.rows(np.array([1])).recent_fills.tolist() == [[2.0, 0, 0, 0]]


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf, 1e16])
def test_bad_recent_fills_are_refused(bad: float):
    """A negative, non-finite or unphysical notional is refused with the value named."""
    c = ctx(recent_fills=np.array([[0.0, bad, 0.0, 0.0]]))
    with pytest.raises(RequestError, match=r"recent_fills has .* at \[0, 1\]"):
        RiskGateChain(limits()).apply(np.zeros((1, 4)), c)


def test_fill_records_are_validated():
    """A fill of an unknown symbol, a non-finite quantity or price, or a time outside the
    bar is refused, naming the fill and the value."""
    t0 = dt.datetime(2024, 5, 1, 14, 30)
    syms = ["A", "B"]
    cases = [
        (Fill("Z", 1.0, 10.0, t0), "symbol 'Z' is not in the universe"),
        (Fill("A", float("nan"), 10.0, t0), "qty = nan"),
        (Fill("A", 1.0, float("inf"), t0), "price = inf"),
        (Fill("A", 1.0, 0.0, t0), "price = 0.0"),
        (Fill("B", 1.0, 10.0, t0 - dt.timedelta(seconds=1)), "outside the current bar"),
        (Fill("B", 1.0, 10.0, t0 + dt.timedelta(hours=2)), "outside the current bar"),
    ]
    for fill, message in cases:
        with pytest.raises(RequestError, match=r"recent_fills\[1\]") as err:
            fill_notional([Fill("A", 1.0, 10.0, t0), fill], syms, t0, t0 + dt.timedelta(hours=1))
        assert message in str(err.value)


# ----------------------------------------------------------------------------- execution


def _random_case(seed: int, n_envs: int = 64) -> tuple[RiskLimits, GateContext, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 6
    lim = RiskLimits(
        max_symbol_weight=0.4,
        max_gross=1.5,
        long_only=False,
        max_net=1.0,
        max_sector_gross=1.0,
        max_participation=float(rng.uniform(0.02, 0.2)),
        max_symbol_turnover=float(rng.uniform(0.02, 0.1)),
        symbol_slippage_budget_bps=float(rng.uniform(0.05, 0.5)),
    )
    equity = rng.uniform(2e5, 2e6, n_envs)
    c = GateContext(
        current_weights=rng.normal(0.0, 0.08, (n_envs, n)),
        equity=equity,
        prices=rng.uniform(5.0, 400.0, (n_envs, n)),
        adv_notional=rng.uniform(1e5, 1e7, (n_envs, n)),
        volatility=rng.uniform(0.005, 0.05, (n_envs, n)),
        spread_bps=rng.uniform(1.0, 20.0, (n_envs, n)),
        sector_ids=np.arange(n) % 3,
        regime=rng.integers(-1, 4, n_envs),
        tradable=np.ones((n_envs, n), dtype=bool),
        recent_fills=rng.uniform(0.0, 0.03, (n_envs, n)) * equity[:, None],
    )
    return lim, c, c.current_weights + rng.normal(0.0, 0.1, (n_envs, n))


@pytest.mark.parametrize("seed", range(4))
def test_execution_after_lot_rounding_stays_inside(seed: int):
    """Execution rounds every order toward the current position (never past the approved
    trade), so after lot rounding the per-symbol turnover, the per-symbol slippage and the
    fills-reduced participation and turnover rooms still hold (the checker on the held
    book), with lots large enough that most orders are rounded."""
    lim, c, proposal = _random_case(seed)
    cost = CostModel()
    gate = RiskGateChain(lim, cost, debug=True).apply(proposal, c)
    for code in (R.SYMBOL_TURNOVER_CAP, R.SYMBOL_SLIPPAGE_BUDGET, R.PARTICIPATION_CAP):
        assert (gate.symbol_reasons & int(code)).any(), f"{code.name} never bound"
    ex = ExecutionPolicy(ExecutionParams(lot_size=25.0, name_drift_threshold=0.0), lim).apply(
        gate, c
    )
    assert (ex.reasons & int(R.LOT_ROUNDING)).any()
    report = check_invariants(executed_as_gate(ex, gate), c, lim, cost)
    assert report.ok, report.messages[:5]
    # and by hand, where no forced de-risk rounds toward zero: each name's held trade is
    # no larger than the approved one, and its expected cost within the symbol's budget
    calm = (ex.trigger_flags & int(TriggerFlag.FORCED)) == 0
    assert calm.sum() > len(calm) // 2
    trade = np.abs(ex.target_weights - c.current_weights)[calm]
    assert (trade <= np.abs(gate.approved - c.current_weights)[calm] + 1e-12).all()
    market = (c.adv_notional[calm], c.volatility[calm], c.spread_bps[calm])
    per_symbol = expected_cost(trade, c.equity[calm], *market, cost)
    budget = lim.symbol_slippage_budget_bps / 1e4 * lim.capacity_multiplier(c.regime[calm])
    assert (per_symbol <= budget[:, None] * (1 + 1e-9)).all()


# ----------------------------------------------------------------------------- serving

T = 400  # decision bar of the served tests (2001-07-16T00:00Z; the clock is 1 h later)


@pytest.fixture(scope="module")
def served() -> tuple[Any, Any]:
    from test_serving_support import ENABLED, bar_clock, patient, small_market, untrained_bundle

    from allocgym.serving import FrozenAllocator, FrozenPolicy

    policy = FrozenPolicy.load(untrained_bundle("weights"))
    market = small_market()
    clock = bar_clock(market, T)
    alloc = FrozenAllocator(policy, environ=ENABLED, serving=patient(policy), clock=lambda: clock)
    return alloc, market


def _request(served: tuple[Any, Any], rid: str, fills: list[dict[str, Any]] | None) -> Any:
    from allocgym.serving.allocator import request_from_market
    from allocgym.serving.schemas import RecentFill

    alloc, market = served
    req = request_from_market(market, T, history=alloc.history, request_id=rid)
    recent = None if fills is None else [RecentFill.model_validate(f) for f in fills]
    return req.model_copy(update={"recent_fills": recent})


def _fill(symbol: str, qty: float, price: float, minutes: float) -> dict[str, Any]:
    bar = dt.datetime(2001, 7, 16, tzinfo=dt.UTC)
    return {
        "symbol": symbol,
        "qty": qty,
        "price": price,
        "time": bar + dt.timedelta(minutes=minutes),
    }


def test_served_recent_fills_reach_the_gates(served):
    """Allocation inputs, "open positions and recent fills": the request's fills become the
    gates' traded notional per bundle symbol (S003: |-200 x 25| + |100 x 26| = 7,600;
    S001: 50 x 40 = 2,000), and fills that used up every symbol's participation and the
    turnover ceiling leave no room: the book stays where it is (all cash), every name the
    policy wanted to buy coded PARTICIPATION_CAP."""
    alloc, _ = served
    fills = [_fill("S003", -200.0, 25.0, 5), _fill("S001", 50.0, 40.0, 10),
             _fill("S003", 100.0, 26.0, 30)]  # fmt: skip
    tr = alloc.trace(_request(served, "fills-1", fills))
    assert tr.decision.status == "ok", tr.decision.reject
    assert tr.context.recent_fills.tolist() == [[0.0, 2000.0, 0.0, 7600.0, 0.0, 0.0]]

    used_up = [_fill(s, 1e10, 100.0, 1) for s in alloc.symbols]  # 1e12 each: 1e6 x equity
    tr = alloc.trace(_request(served, "fills-2", used_up))
    d = tr.decision
    assert d.status == "ok"
    assert d.approved_weights == [0.0] * alloc.n_assets
    assert d.target_delta_qty == [0] * alloc.n_assets
    wanted = [w > 0 for w in d.proposed_weights]
    assert any(wanted)
    assert [("PARTICIPATION_CAP" in r) for r in d.reasons] == wanted


@pytest.mark.parametrize(
    ("fill", "message"),
    [
        (_fill("S002", 1.0, 10.0, -1), "is outside the current bar"),  # before the bar
        (_fill("S002", 1.0, 10.0, 24 * 60), "is outside the current bar"),  # after the clock
        (_fill("ZZZ", 1.0, 10.0, 5), "symbol 'ZZZ' is not in the universe"),
    ],
)
def test_served_fill_outside_the_bar_is_a_coded_reject(served, fill, message):
    """In-process a fill outside the bar (or of another universe) is a coded INVALID_INPUT
    reject of ``recent_fills`` that names the fill and the value; the book is held."""
    alloc, _ = served
    d = alloc.trace(
        _request(
            served,
            f"bad-{fill['symbol']}-{fill['time']:%d%H%M}",
            [_fill("S000", 1.0, 10.0, 1), fill],
        )
    )
    assert d.decision.status == "rejected"
    reject = d.decision.reject
    assert reject is not None and reject.code == "INVALID_INPUT"
    assert reject.field == "recent_fills" and reject.detail == "recent_fills"
    assert reject.message.startswith("recent_fills[1]") and message in reject.message


def test_http_refuses_malformed_fills_with_a_422(served):
    """Over HTTP the request schema states the fill's rules (a bundle symbol, a finite
    quantity and a price in range): a body breaking one is a 422 whose message names the
    fill's field; a well-formed fill outside the bar is decided as a coded reject."""
    import httpx

    from allocgym.serving.http import ServerThread, create_app
    from allocgym.serving.service import DecisionService

    alloc, _ = served
    good = json.loads(_request(served, "http-0", None).model_dump_json())

    def body(rid: str, fill: dict[str, Any]) -> bytes:
        return json.dumps(good | {"request_id": rid, "recent_fills": [fill]}).encode()

    ok_fill = {"symbol": "S001", "qty": 10.0, "price": 40.0, "time": "2001-07-16T00:30:00Z"}
    cases = {
        "recent_fills.0.symbol": ok_fill | {"symbol": "ZZZ"},
        "recent_fills.0.qty": ok_fill | {"qty": 1e16},
        "recent_fills.0.price": ok_fill | {"price": 0.0},
        "recent_fills.0.time": ok_fill | {"time": "2001-07-16T00:30:00"},  # no offset
    }
    headers = {"content-type": "application/json"}
    with (
        ServerThread(create_app(DecisionService(alloc))) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as c,
    ):
        r = c.post("/v1/decide", content=body("http-1", ok_fill), headers=headers)
        assert r.status_code == 200 and r.json()["status"] == "ok", r.text
        for k, (field, fill) in enumerate(cases.items()):
            r = c.post("/v1/decide", content=body(f"http-bad-{k}", fill), headers=headers)
            assert r.status_code == 422, (field, r.text)
            assert r.json()["message"].startswith(field), r.json()["message"]
        early = ok_fill | {"time": "2001-07-15T23:59:00Z"}
        r = c.post("/v1/decide", content=body("http-early", early), headers=headers)
        assert r.status_code == 200 and r.json()["status"] == "rejected"
        assert r.json()["reject"]["field"] == "recent_fills"
        assert "2001-07-15T23:59:00+00:00" in r.json()["reject"]["message"]


def test_served_fills_are_audited_and_replayed(served, tmp_path):
    """The fills travel in the audited request: replaying the log re-decides with them and
    reproduces the decision byte for byte."""
    from allocgym.serving.service import DecisionService, replay_audit

    alloc, _ = served
    service = DecisionService(alloc, audit_log=tmp_path / "audit.jsonl")
    fills = [_fill(s, 1e10, 100.0, 1) for s in alloc.symbols]
    res = service.decide(_request(served, "audit-1", fills))
    assert json.loads(res.body)["approved_weights"] == [0.0] * alloc.n_assets
    report = replay_audit(tmp_path / "audit.jsonl", alloc)
    assert report.n_records == report.n_reproduced == 1, report.mismatches
