"""Cost model: commission, half-spread and square-root impact against hand-computed values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocgym.config import CostConfig
from allocgym.costs import CostModel, cost_terms, expected_cost
from allocgym.errors import ConfigError, DataError

# One symbol: trade 1 % of equity, equity 1e6, ADV 1e8 (participation 1e-4), sigma 2 %,
# spread 10 bps.
EQ = np.array([1.0e6])
ADV = np.array([[1.0e8]])
VOL = np.array([[0.02]])
SPREAD = np.array([[10.0]])
TRADE = np.array([[0.01]])
COMMISSION = 0.01 * 1.0 / 1e4  # 1 bps on 1 % of equity = 1e-6
HALF_SPREAD = 0.01 * 10.0 / 2e4  # half of 10 bps on 1 % = 5e-6
IMPACT = 0.01 * 0.1 * 0.02 * math.sqrt(0.01 * 1e6 / 1e8)  # 0.01 * 0.002 * 0.01 = 2e-7


def _cost(model: CostModel, trade=TRADE, eq=EQ, adv=ADV, vol=VOL, spread=SPREAD) -> np.ndarray:
    return expected_cost(trade, eq, adv, vol, spread, model)


def test_commission_alone_by_hand():
    c = _cost(CostModel(commission_bps=1.0, spread_mult=0.0, impact_k=0.0))
    assert c.shape == (1, 1)
    assert c[0, 0] == pytest.approx(1e-6, rel=1e-14)
    assert c[0, 0] == pytest.approx(COMMISSION, rel=1e-14)


def test_half_spread_alone_by_hand():
    c = _cost(CostModel(commission_bps=0.0, spread_mult=1.0, impact_k=0.0))
    assert c[0, 0] == pytest.approx(5e-6, rel=1e-14)
    # spread_mult scales the half-spread linearly
    c2 = _cost(CostModel(commission_bps=0.0, spread_mult=2.0, impact_k=0.0))
    assert c2[0, 0] == pytest.approx(1e-5, rel=1e-14)


def test_sqrt_impact_alone_by_hand():
    c = _cost(CostModel(commission_bps=0.0, spread_mult=0.0, impact_k=0.1))
    assert c[0, 0] == pytest.approx(2e-7, rel=1e-12)
    assert c[0, 0] == pytest.approx(IMPACT, rel=1e-12)


def test_all_terms_together_by_hand():
    c = _cost(CostModel(commission_bps=1.0, spread_mult=1.0, impact_k=0.1))
    assert c[0, 0] == pytest.approx(1e-6 + 5e-6 + 2e-7, rel=1e-12)
    linear, impact = cost_terms(TRADE, EQ, ADV, VOL, SPREAD, CostModel())
    assert linear[0, 0] == pytest.approx(6e-6, rel=1e-12)
    assert impact[0, 0] == pytest.approx(2e-7, rel=1e-12)
    assert np.array_equal(linear + impact, c)


def test_sells_cost_the_same_as_buys():
    m = CostModel()
    assert np.array_equal(_cost(m, trade=-TRADE), _cost(m, trade=TRADE))


def test_zero_trade_costs_exactly_zero_even_with_degenerate_market_data():
    m = CostModel()
    trade = np.array([[0.0, -0.0, 0.0]])
    c = expected_cost(
        trade,
        np.array([1e6]),
        np.array([[0.0, 1e8, 1e8]]),  # ADV = 0
        np.array([[0.02, 0.0, 0.02]]),
        np.array([[10.0, 10.0, np.nan]]),  # unknown spread
        m,
    )
    assert np.array_equal(c, np.zeros((1, 3)))


def test_scaling_behaviour():
    lin_model = CostModel(commission_bps=3.0, spread_mult=1.0, impact_k=0.0)
    imp_model = CostModel(commission_bps=0.0, spread_mult=0.0, impact_k=0.3)
    base_lin = _cost(lin_model)[0, 0]
    base_imp = _cost(imp_model)[0, 0]
    # 4x the trade: linear part x4, impact part x4^1.5 = x8
    assert _cost(lin_model, trade=4 * TRADE)[0, 0] == pytest.approx(4 * base_lin, rel=1e-13)
    assert _cost(imp_model, trade=4 * TRADE)[0, 0] == pytest.approx(8 * base_imp, rel=1e-13)
    # Equity and ADV scaled together: same participation, same cost
    same = _cost(imp_model, eq=EQ * 10, adv=ADV * 10)[0, 0]
    assert same == pytest.approx(base_imp, rel=1e-13)
    # 4x equity (same weights = 4x the shares): impact x2, linear unchanged
    assert _cost(imp_model, eq=EQ * 4)[0, 0] == pytest.approx(2 * base_imp, rel=1e-13)
    assert _cost(lin_model, eq=EQ * 4)[0, 0] == pytest.approx(base_lin, rel=1e-13)
    # impact proportional to sigma and to k
    assert _cost(imp_model, vol=VOL * 3)[0, 0] == pytest.approx(3 * base_imp, rel=1e-13)


def test_batch_broadcasting_equity_per_portfolio():
    m = CostModel(commission_bps=0.0, spread_mult=0.0, impact_k=0.1)
    trade = np.array([[0.01, 0.02], [0.01, 0.0]])
    eq = np.array([1e6, 4e6])
    c = expected_cost(trade, eq, np.full((2, 2), 1e8), np.full((2, 2), 0.02), np.zeros((2, 2)), m)
    assert c.shape == (2, 2)
    assert c[0, 0] == pytest.approx(2e-7, rel=1e-12)
    assert c[0, 1] == pytest.approx(2e-7 * 2**1.5, rel=1e-12)
    assert c[1, 0] == pytest.approx(4e-7, rel=1e-12)  # 4x equity -> 2x impact
    assert c[1, 1] == 0.0


def test_nonzero_trade_against_zero_adv_is_infinite_and_nan_trade_is_nan():
    m = CostModel()
    c = expected_cost(np.array([[0.01, np.nan]]), 1e6, np.array([[0.0, 1e8]]), VOL, SPREAD, m)
    assert c[0, 0] == math.inf
    assert math.isnan(c[0, 1])


@pytest.mark.parametrize(
    ("adv", "vol", "spread", "equity", "match"),
    [
        (-1e7, 0.02, 10.0, 1e6, r"adv_notional has -10000000.0: must be >= 0"),
        (1e8, -0.02, 10.0, 1e6, r"volatility has -0.02"),
        (1e8, 0.02, -50.0, 1e6, r"spread_bps has -50.0"),  # a rebate, not a cost
        (1e8, 0.02, 10.0, 0.0, r"equity 0.0 must be > 0"),  # no impact at all
    ],
)
def test_negative_market_data_and_empty_equity_are_refused(adv, vol, spread, equity, match):
    with pytest.raises(DataError, match=match):
        cost_terms(np.array([[0.01]]), equity, np.array([[adv]]), np.array([[vol]]),
                   np.array([[spread]]), CostModel())  # fmt: skip


def test_from_config_and_validation():
    m = CostModel.from_config(CostConfig(commission_bps=2.0, spread_mult=0.5, impact_k=0.2))
    assert m == CostModel(commission_bps=2.0, spread_mult=0.5, impact_k=0.2)
    with pytest.raises(ConfigError, match="commission_bps"):
        CostModel(commission_bps=-1.0)
    with pytest.raises(ConfigError, match="impact_k"):
        CostModel(impact_k=math.nan)


@settings(deadline=None, max_examples=60)
@given(
    a=st.floats(0.0, 2.0),
    b=st.floats(0.0, 2.0),
    spread=st.floats(0.0, 100.0),
    vol=st.floats(0.0, 0.2),
    adv=st.floats(1e3, 1e10),
)
def test_cost_is_monotone_in_trade_size(a, b, spread, vol, adv):
    m = CostModel(commission_bps=1.0, spread_mult=1.0, impact_k=0.5)
    small, large = min(a, b), max(a, b)
    trade = np.array([[small, large]])
    c = expected_cost(
        trade, 1e6, np.full((1, 2), adv), np.full((1, 2), vol), np.full((1, 2), spread), m
    )
    assert c[0, 0] <= c[0, 1]
    assert c[0, 0] >= 0.0


@pytest.mark.parametrize(
    ("impact_k", "vol"), [(0.0, 0.02), (0.1, 0.0), (0.0, 0.0)], ids=["no_k", "no_vol", "both"]
)
def test_zero_impact_with_zero_adv_is_the_linear_cost_by_hand(impact_k: float, vol: float) -> None:
    """With no impact coefficient (k = 0 or sigma = 0) the participation |dw| V / ADV is
    undefined at ADV = 0, yet the cost is finite: commission + half spread, by hand."""
    model = CostModel(commission_bps=2.0, spread_mult=1.0, impact_k=impact_k)
    trade = np.array([[0.1, -0.05, 0.0]])
    adv = np.zeros((1, 3))
    cost = expected_cost(trade, 1e6, adv, np.full((1, 3), vol), np.full((1, 3), 10.0), model)
    per_unit = 2.0 / 1e4 + 10.0 / 2e4  # 7 bps
    assert np.all(np.isfinite(cost))
    np.testing.assert_allclose(cost, [[0.1 * per_unit, 0.05 * per_unit, 0.0]], rtol=1e-15)


def test_float32_inputs_are_priced_in_float64():
    """The inputs are converted to float64 before any arithmetic: float32 market data gives
    exactly the cost of the same (exactly upcast) values in float64, not a float32 rounding."""
    model = CostModel(commission_bps=1.0, spread_mult=1.0, impact_k=0.1)
    args32 = [np.asarray(x, dtype=np.float32) for x in (TRADE, EQ, ADV, VOL, SPREAD)]
    args64 = [x.astype(np.float64) for x in args32]
    linear32, impact32 = cost_terms(*args32, model)
    linear64, impact64 = cost_terms(*args64, model)
    assert linear32.dtype == impact32.dtype == np.float64
    assert np.array_equal(linear32, linear64)
    assert np.array_equal(impact32, impact64)


@pytest.mark.parametrize("full", ["trade", "equity", "adv", "vol", "spread"])
def test_one_batched_input_broadcasts_both_terms_to_n_envs_by_n_assets(full: str) -> None:
    """Any one input may carry the (n_envs, n_assets) shape while the others are a single
    row (or a scalar equity): both halves come back at full shape with per-cell hand values."""
    model = CostModel(commission_bps=1.0, spread_mult=1.0, impact_k=0.1)
    args = {"trade": TRADE, "equity": 1.0e6, "adv": ADV, "vol": VOL, "spread": SPREAD}
    if full == "equity":
        args["equity"] = np.full(3, 1.0e6)
    else:
        args[full] = np.repeat(args[full], 3, axis=0)
    linear, impact = cost_terms(
        args["trade"], args["equity"], args["adv"], args["vol"], args["spread"], model
    )
    assert linear.shape == impact.shape == (3, 1)
    np.testing.assert_allclose(linear, np.full((3, 1), COMMISSION + HALF_SPREAD), rtol=1e-15)
    np.testing.assert_allclose(impact, np.full((3, 1), IMPACT), rtol=1e-15)


def test_degenerate_market_data_raises_no_floating_point_warning():
    """ADV = 0 (x/0 and 0/0) and a tiny ADV (overflow) are priced without a RuntimeWarning:
    a nonzero trade costs +inf, a zero trade exactly 0."""
    model = CostModel(commission_bps=1.0, spread_mult=1.0, impact_k=0.1)
    trade = np.array([[0.01, 0.0, 1.0]])
    adv = np.array([[0.0, 0.0, 1e-303]])  # 1e6 / 1e-303 overflows to inf
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        cost = expected_cost(trade, 1e6, adv, np.full((1, 3), 0.02), np.full((1, 3), 10.0), model)
    assert cost[0, 0] == math.inf
    assert cost[0, 1] == 0.0
    assert cost[0, 2] == math.inf


@pytest.mark.parametrize("bad", [True, "1.0", None])
def test_non_numeric_parameter_is_refused_with_the_fix(bad: object) -> None:
    with pytest.raises(
        ConfigError, match=r"CostModel\.impact_k = .*must be a number; set costs\.impact_k"
    ):
        CostModel(impact_k=bad)  # type: ignore[arg-type]
