"""Physical input ranges: one table, one check, refused as INVALID_INPUT by the allocator;
inside the ranges no approved book breaches the gross-notional cap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gate_books import calm_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_serving_support import (
    ENABLED,
    bar_clock,
    fixed_clock,
    patient,
    small_market,
    untrained_bundle,
)

from allocgym.costs import CostModel
from allocgym.errors import GateConfigError
from allocgym.ranges import MAX_MAGNITUDE, RANGES, PhysicalRangeError, check_physical
from allocgym.risk import GateContext, RiskGateChain, RiskLimits, check_invariants
from allocgym.serving import DecisionService, FrozenAllocator, FrozenPolicy, request_from_market

T = 400


@pytest.fixture(scope="module")
def alloc() -> FrozenAllocator:
    policy = FrozenPolicy.load(untrained_bundle())
    return FrozenAllocator(policy, environ=ENABLED, serving=patient(policy))


def _decide(alloc: FrozenAllocator, **update: object):
    req = request_from_market(small_market(), T, history=alloc.history, request_id="x")
    return alloc.trace(req.model_copy(update=update), now=bar_clock(small_market(), T)).decision


# ----------------------------------------------------------------------------- the table


def test_every_range_is_finite_ordered_and_at_most_1e15() -> None:
    assert set(RANGES) == {
        "equity", "peak_equity", "cash", "buying_power", "price", "volume", "adv_notional",
        "spread_bps", "position", "notional_cap", "benchmark_return",
    }  # fmt: skip
    for name, rng in RANGES.items():
        assert rng.name == name
        assert math.isfinite(rng.low) and math.isfinite(rng.high) and rng.low < rng.high
        assert max(abs(rng.low), abs(rng.high)) <= MAX_MAGNITUDE
    for name in ("equity", "peak_equity", "price", "notional_cap"):
        assert RANGES[name].low > 0


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf, -math.inf, 1e300, 1.0000001e15])
def test_check_physical_refuses_naming_value_and_range(value: float) -> None:
    with pytest.raises(PhysicalRangeError) as err:
        check_physical("equity", value)
    msg = str(err.value)
    assert f"equity = {value!r}" in msg and "[1e-06, 1e+15] currency" in msg
    assert err.value.field == "equity" and err.value.range is RANGES["equity"]


def test_check_physical_names_the_first_bad_array_position() -> None:
    prices = np.full((3, 4), 10.0)
    check_physical("price", prices)  # in range: no error
    prices[1, 2], prices[2, 0] = 2e15, math.nan
    with pytest.raises(PhysicalRangeError, match=r"close\[1, 2\] = 2000000000000000\.0"):
        check_physical("price", prices, "close")
    prices[1, 2] = 10.0
    with pytest.raises(PhysicalRangeError, match=r"close\[2, 0\] = nan"):
        check_physical("price", prices, "close")


def test_bounds_are_inclusive_unless_open() -> None:
    for rng in RANGES.values():
        if rng.low_open:
            with pytest.raises(PhysicalRangeError, match=r"range \(-1, 10\] fraction"):
                check_physical(rng.name, rng.low)
            with pytest.raises(PhysicalRangeError):
                check_physical(rng.name, np.full(3, rng.low))
            check_physical(rng.name, np.nextafter(rng.low, np.inf))
        else:
            check_physical(rng.name, rng.low)
        check_physical(rng.name, rng.high)
        with pytest.raises(PhysicalRangeError):
            check_physical(rng.name, np.nextafter(rng.high, np.inf))
        with pytest.raises(PhysicalRangeError):
            check_physical(rng.name, np.nextafter(rng.low, -np.inf))


# ----------------------------------------------------------------------------- the allocator


def test_an_in_range_request_is_decided(alloc: FrozenAllocator) -> None:
    assert _decide(alloc, equity=1e15, cash=1e15, buying_power=1e15).status == "ok"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("equity", 1e300),
        ("equity", 0.0),
        ("equity", -5.0),
        ("equity", math.nan),
        ("equity", math.inf),
        ("cash", 1e16),
        ("buying_power", -1.0),
        ("peak_equity", 1e300),
    ],
)
def test_account_outside_its_range_is_invalid_input(
    alloc: FrozenAllocator, field: str, value: float
) -> None:
    d = _decide(alloc, **{field: value})
    assert d.status == "rejected" and d.approved_weights is None
    assert d.reject is not None and d.reject.code == "INVALID_INPUT"
    assert d.reject.detail == "account" and d.reject.field == field
    assert f"{field} = {value!r}" in d.reject.message and str(RANGES[field]) in d.reject.message


def test_market_magnitudes_outside_their_range_are_invalid_input(alloc: FrozenAllocator) -> None:
    req = request_from_market(small_market(), T, history=alloc.history, request_id="m")
    volume = np.full_like(req.volume, 1e6)
    spread = req.spread_bps.copy()
    spread[-1, 0] = 2e4
    cases = [
        ({"close": req.close * 1e14}, "close", "close["),  # prices near 1e16
        # prices near 1e12 and 1e6 shares are each in range; their notional is not
        ({"close": req.close * 1e10, "volume": volume}, "volume", "volume x close["),
        ({"spread_bps": spread}, "spread_bps", f"spread_bps[{spread.shape[0] - 1}, 0] = 20000.0"),
    ]
    for update, field, named in cases:
        d = alloc.trace(req.model_copy(update=update), now=bar_clock(small_market(), T)).decision
        assert d.status == "rejected" and d.reject is not None, field
        assert (d.reject.code, d.reject.detail, d.reject.field) == (
            "INVALID_INPUT",
            "out_of_range",
            field,
        )
        assert named in d.reject.message, d.reject.message


def test_position_outside_its_range_is_invalid_input(alloc: FrozenAllocator) -> None:
    sym = alloc.symbols[0]
    d = _decide(alloc, positions={sym: -2e15})
    assert d.reject is not None and (d.reject.detail, d.reject.field) == ("positions", "positions")
    assert f"positions.{sym} = -2000000000000000.0" in d.reject.message


def test_positions_are_placed_by_symbol_and_the_first_bad_one_is_named(
    alloc: FrozenAllocator,
) -> None:
    """A valid book lands in the bundle's symbol order whatever the key order (its weights
    are shares x close / equity, by hand); the first bad entry after valid ones is named:
    a symbol outside the universe, then a value."""
    s = alloc.symbols
    req = request_from_market(small_market(), T, history=alloc.history, request_id="x")
    book = {s[2]: 30.0, s[0]: -10.0}
    d = alloc.trace(
        req.model_copy(update={"positions": book}), now=bar_clock(small_market(), T)
    ).decision
    assert d.status == "ok"
    close = req.close[-1]
    want = [0.0] * len(s)
    want[0], want[2] = -10.0 * close[0] / req.equity, 30.0 * close[2] / req.equity
    assert d.current_weights == want
    d = _decide(alloc, positions={s[0]: 1.0, "NOT_A_SYMBOL": 2.0})
    assert d.reject is not None and (d.reject.detail, d.reject.field) == (
        "unknown_symbol",
        "positions",
    )
    assert "'NOT_A_SYMBOL'" in d.reject.message
    # without the kill switch the reject sends no targets (as audit logs replay it);
    # under it the positions it can read are closed all the same
    assert d.target_delta_qty is None and d.target_qty is None
    d = _decide(alloc, positions={s[0]: 1.0, s[3]: -4.0, "NOT_A_SYMBOL": 2.0}, kill_switch=True)
    assert d.status == "rejected" and d.target_qty == [0] * len(s)
    assert d.target_delta_qty[0] == -1.0 and d.target_delta_qty[3] == 4.0
    d = _decide(alloc, positions={s[0]: 1.0, s[1]: float("nan"), s[2]: 2e15})
    assert d.reject is not None and d.reject.field == "positions"
    assert f"positions.{s[1]}" in d.reject.message


def test_service_answers_equity_1e300_as_invalid_input() -> None:
    policy = FrozenPolicy.load(untrained_bundle())
    clock = fixed_clock(bar_clock(small_market(), T))
    alloc = FrozenAllocator(policy, environ=ENABLED, serving=patient(policy), clock=clock)
    service = DecisionService(alloc)
    req = request_from_market(small_market(), T, history=alloc.history, request_id="big")
    res = service.decide(req.model_copy(update={"equity": 1e300}))
    assert res.status == "rejected"
    assert b'"code":"INVALID_INPUT"' in res.body and b"equity = 1e+300" in res.body
    exposition = service.metrics.exposition().decode()
    assert 'code="INVALID_INPUT",detail="account"} 1.0' in exposition


def test_notional_cap_outside_its_range_refuses_to_load() -> None:
    policy = FrozenPolicy.load(untrained_bundle())
    env = {**ENABLED, "TRADING_ALLOCATOR_MAX_SYMBOL_NOTIONAL": "1e300"}
    with pytest.raises(GateConfigError, match=r"risk\.max_symbol_notional = 1e\+300"):
        FrozenAllocator(policy, environ=env, serving=patient(policy))


# ----------------------------------------------------------------------------- property


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(
    log_equity=st.floats(math.log10(RANGES["equity"].low), 15.0),
    log_cap=st.floats(math.log10(RANGES["notional_cap"].low), 15.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_no_in_range_input_breaches_the_gross_notional_cap(
    log_equity: float, log_cap: float, seed: int
) -> None:
    """Equity and the gross-notional cap anywhere in their ranges (twelve and more decades
    apart), proposals up to 1e150: the approved gross notional never exceeds the cap beyond
    float rounding (a relative 1e-9), measured in currency."""
    equity = min(10.0**log_equity, RANGES["equity"].high)
    cap = min(10.0**log_cap, RANGES["notional_cap"].high)
    rng = np.random.default_rng(seed)
    n, m = 64, 8
    scale = rng.choice([1e-3, 1.0, 3.0, 1e6, 1e150], size=(n, 1))
    proposed = rng.uniform(-1.0, 1.0, (n, m)) * scale
    lim = RiskLimits(
        max_symbol_weight=1.0, max_gross=3.0, max_net=3.0, max_sector_gross=3.0,
        long_only=False, max_gross_notional=cap, max_turnover=10.0, max_participation=1.0,
        slippage_budget_bps=1e4,
    )  # fmt: skip
    ctx = GateContext(
        current_weights=np.zeros((n, m)),
        equity=np.full(n, equity),
        prices=rng.uniform(RANGES["price"].low, 1e4, (n, m)),
        adv_notional=np.full((n, m), RANGES["adv_notional"].high),
        volatility=np.full((n, m), 0.02),
        spread_bps=np.full((n, m), 5.0),
        sector_ids=np.arange(m) % 3,
        regime=np.zeros(n, dtype=np.int64),
        tradable=np.ones((n, m), dtype=bool),
    )
    cost = CostModel(commission_bps=1.0, spread_mult=1.0, impact_k=0.1)
    res = RiskGateChain(lim, cost).apply(proposed, ctx)
    gross_notional = np.abs(res.approved).sum(axis=1) * equity
    assert (gross_notional <= cap * (1 + 1e-9)).all(), (gross_notional.max() - cap, equity, cap)
    assert check_invariants(res, ctx, lim, cost).n_breaches == 0


# ----------------------------------------------------------------------------- gate layer


def _one_row_ctx(m: int = 3, **kw: object) -> GateContext:
    return calm_context(1, m, **kw)


@pytest.mark.parametrize("equity", [1e300, 2e15, 1e-7, 0.0, -1.0, math.nan, math.inf])
def test_the_gates_treat_equity_outside_its_range_as_unreadable(equity: float) -> None:
    """In-process callers reach the gates without the service's checks: an equity outside
    [1e-6, 1e15] makes the portfolio unreadable (approved flat, ``INVALID_INPUT``) like a
    NaN one, instead of being half-handled (at 1e300 the gross-notional cap leaked one unit)."""
    from allocgym.risk import ReasonCode

    lim = RiskLimits(max_symbol_weight=0.5, max_gross_notional=1e6)
    ctx = _one_row_ctx(equity=np.array([equity]))
    res = RiskGateChain(lim, CostModel()).apply(np.full((1, 3), 0.3), ctx)
    assert np.array_equal(res.approved, np.zeros((1, 3)))
    assert res.portfolio_reasons[0] & int(ReasonCode.INVALID_INPUT)
    assert check_invariants(res, ctx, lim, CostModel()).n_breaches == 0


def test_the_gates_do_not_trade_a_symbol_whose_price_adv_or_spread_is_out_of_range() -> None:
    """A price above 1e15 (or below 1e-8), an ADV notional above 1e15 or a spread above
    1e4 bps makes that symbol unusable: its weight stays where it is (here 0)."""
    lim = RiskLimits(max_symbol_weight=0.5)
    ctx = _one_row_ctx(
        m=4,
        prices=np.array([[100.0, 1e16, 1e-9, 100.0]]),
        adv_notional=np.array([[1e9, 1e9, 1e9, 2e15]]),
    )
    res = RiskGateChain(lim, CostModel()).apply(np.full((1, 4), 0.2), ctx)
    assert res.approved[0, 0] == 0.2
    assert np.array_equal(res.approved[0, 1:], np.zeros(3))
    spread = _one_row_ctx(spread_bps=np.array([[5.0, 2e4, 5.0]]))
    res = RiskGateChain(lim, CostModel()).apply(np.full((1, 3), 0.2), spread)
    assert res.approved[0, 1] == 0.0 and res.approved[0, 0] == 0.2
    assert check_invariants(res, spread, lim, CostModel()).n_breaches == 0


@pytest.mark.parametrize("cap", ["max_symbol_notional", "max_gross_notional"])
def test_a_configured_notional_cap_outside_its_range_is_refused(cap: str) -> None:
    """The config refuses a notional cap above 1e15 (the runtime flags already did)."""
    from allocgym.config import config_from_dict
    from allocgym.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"risk\.{cap} = 1e\+300"):
        config_from_dict({"risk": {cap: 1e300}})
    assert getattr(config_from_dict({"risk": {cap: 1e15}}).risk, cap) == 1e15
