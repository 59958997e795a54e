"""Measures against hand-computed answers, batch/NaN behaviour, and skfolio on the S&P 500."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import skfolio.measures as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from allocgym import measures as m
from allocgym.data import MarketData

# wealth 1.1, 1.045, 1.0659, 0.95931, 0.9880893; mean exactly 0
R = np.array([0.1, -0.05, 0.02, -0.1, 0.03])
# mean 0.01, sample std sqrt(0.0008 / 3); one loss of 1%
R2 = np.array([0.01, 0.03, -0.01, 0.01])
# ten evenly spaced returns from -5% to +4%
R10 = np.array([-0.05, -0.04, -0.03, -0.02, -0.01, 0.0, 0.01, 0.02, 0.03, 0.04])


def test_annualized_return_hand() -> None:
    # periods_per_year = n_steps: the annual return is the total return.
    assert m.annualized_return(R, periods_per_year=5) == pytest.approx(0.9880893 - 1.0, abs=1e-15)
    assert m.annualized_return(R, periods_per_year=10) == pytest.approx(
        0.9880893**2 - 1.0, abs=1e-15
    )
    assert m.annualized_return([0.01] * 252) == pytest.approx(1.01**252 - 1.0, rel=1e-12)
    assert m.annualized_return([0.5, -1.0, 0.2]) == -1.0  # wealth wiped out
    assert m.annualized_return([0.5, -1.5, 0.2]) == -1.0  # below zero (a short squeeze)


def test_annualized_volatility_hand() -> None:
    # squared deviations from mean 0: 0.01 + 0.0025 + 0.0004 + 0.01 + 0.0009 = 0.0238
    expected = math.sqrt(0.0238 / 4) * math.sqrt(252)
    assert m.annualized_volatility(R) == pytest.approx(expected, rel=1e-13)
    assert math.isnan(m.annualized_volatility([0.01]))


def test_sharpe_hand() -> None:
    per_period = 0.01 / math.sqrt(0.0008 / 3)  # = sqrt(3/8)
    assert per_period == pytest.approx(math.sqrt(3 / 8))
    assert m.sharpe_ratio(R2) == pytest.approx(per_period * math.sqrt(252), rel=1e-13)
    assert m.sharpe_ratio(R2, periods_per_year=1) == pytest.approx(math.sqrt(3 / 8), rel=1e-13)
    assert m.sharpe_ratio(R2, risk_free=0.01) == pytest.approx(0.0, abs=1e-12)
    assert m.sharpe_ratio([0.01, 0.01, 0.01]) == np.inf
    # ten of them: numpy's mean of the constant rounds, its std was 1.8e-18 (Sharpe 8.7e16)
    assert m.sharpe_ratio(np.full(10, 0.01)) == np.inf
    assert m.sharpe_ratio(np.full((2, 10), -0.01)).tolist() == [-np.inf, -np.inf]
    assert m.annualized_volatility(np.full(10, 0.01)) == 0.0


def test_sortino_hand() -> None:
    # downside deviation sqrt(0.01**2 / 4) = 0.005 -> 0.01 / 0.005 = 2 per period
    assert m.sortino_ratio(R2, periods_per_year=1) == pytest.approx(2.0, rel=1e-13)
    assert m.sortino_ratio(R2) == pytest.approx(2.0 * math.sqrt(252), rel=1e-13)
    # target 0.01: excess mean 0
    assert m.sortino_ratio(R2, target=0.01) == pytest.approx(0.0, abs=1e-12)
    assert m.sortino_ratio([0.01, 0.02]) == np.inf


def test_max_drawdown_and_calmar_hand() -> None:
    # peak 1.1 after step 1, trough 0.95931 after step 4: 1 - 0.95931 / 1.1 = 0.1279
    assert m.max_drawdown(R) == pytest.approx(0.1279, abs=1e-15)
    np.testing.assert_allclose(
        m.drawdowns(R), [0.0, 0.05, 1 - 1.0659 / 1.1, 0.1279, 1 - 0.9880893 / 1.1], atol=1e-15
    )
    assert m.max_drawdown([-0.1, 0.05]) == pytest.approx(0.1)  # the initial wealth is a peak
    assert m.max_drawdown([0.01, 0.02]) == 0.0
    assert m.calmar_ratio(R, periods_per_year=5) == pytest.approx(
        (0.9880893 - 1) / 0.1279, rel=1e-12
    )
    assert m.calmar_ratio([0.01, 0.02]) == np.inf


@pytest.mark.parametrize(
    ("alpha", "var", "cvar"),
    [
        (0.8, 0.03, 0.045),  # k = 2: VaR = 3rd largest loss, CVaR = mean of the 2 worst
        (0.85, 0.04, (0.05 + 0.5 * 0.04) / 1.5),  # k = 1.5: half weight on the 2nd worst
        (0.95, 0.05, 0.05),  # k = 0.5 < 1: the worst loss
        (1.0, 0.05, 0.05),
        (0.0, -0.04, 0.005),  # CVaR at 0 is minus the mean (-0.005)
        (0.5, 0.0, 0.03),  # k = 5: mean of the 5 worst
    ],
)
def test_var_cvar_hand(alpha: float, var: float, cvar: float) -> None:
    shuffled = np.random.default_rng(0).permutation(R10)
    assert m.var(shuffled, alpha) == pytest.approx(var, abs=1e-15)
    assert m.cvar(shuffled, alpha) == pytest.approx(cvar, abs=1e-15)
    assert m.cvar(shuffled, alpha) == pytest.approx(sm.cvar(shuffled, alpha), abs=1e-16)
    assert m.var(shuffled, alpha) == pytest.approx(sm.value_at_risk(shuffled, alpha), abs=1e-16)


def test_turnover_hand() -> None:
    path = np.array([[0.5, 0.5], [0.6, 0.4], [0.6, 0.4], [0.0, 1.0]])
    assert m.turnover(path) == pytest.approx((0.2 + 0.0 + 1.2) / 3)
    assert m.turnover(path, initial=np.zeros(2)) == pytest.approx((1.0 + 0.2 + 0.0 + 1.2) / 4)
    assert math.isnan(m.turnover(path[:1]))
    batch = np.stack([path, path[::-1]])
    np.testing.assert_allclose(m.turnover(batch), [1.4 / 3, 1.4 / 3])
    with pytest.raises(ValueError, match="n_steps, n_assets"):
        m.turnover(np.ones(3))


def test_herfindahl_hand() -> None:
    assert m.herfindahl([0.5, 0.5]) == pytest.approx(0.5)
    assert m.herfindahl([0.25, 0.25, 0.5]) == pytest.approx(0.375)
    assert m.herfindahl([0.1, 0.1, 0.2]) == pytest.approx(0.375)  # gross-invariant
    assert m.herfindahl([0.2, -0.2]) == pytest.approx(0.5)  # sign-invariant
    assert m.herfindahl([1.0, 0.0, 0.0]) == 1.0
    assert math.isnan(m.herfindahl([0.0, 0.0]))
    w = np.array([0.25, 0.25, 0.5])
    assert 1.0 / m.herfindahl(w) == pytest.approx(sm.effective_number_assets(w))


def test_hit_rate_hand() -> None:
    assert m.hit_rate(R) == pytest.approx(0.6)
    assert m.hit_rate([0.0, 0.01, -0.01, 0.02]) == 0.5  # zero is a miss


FUNCS = [
    m.annualized_return, m.annualized_volatility, m.sharpe_ratio, m.sortino_ratio,
    m.max_drawdown, m.calmar_ratio, m.var, m.cvar, m.hit_rate,
]  # fmt: skip


@pytest.mark.parametrize("fn", FUNCS, ids=lambda f: f.__name__)
def test_batch_axes_and_nan_policy(fn) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0.0005, 0.01, (3, 4, 50))
    out = fn(x)
    assert out.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert out[i, j] == pytest.approx(fn(x[i, j]), rel=1e-12, abs=1e-15)
    assert np.ndim(fn(x[0, 0])) == 0
    y = x.copy()
    y[1, 2, 10] = np.nan
    out_nan = fn(y)
    assert np.isnan(out_nan[1, 2])  # NaN propagates to its own row only
    mask = np.ones((3, 4), dtype=bool)
    mask[1, 2] = False
    np.testing.assert_array_equal(out_nan[mask], out[mask])
    assert np.all(np.isnan(fn(np.empty((2, 0)))))


def test_bad_arguments_refused() -> None:
    with pytest.raises(ValueError, match=r"alpha = 1.5 must lie in \[0, 1\]"):
        m.cvar(R, 1.5)
    with pytest.raises(ValueError, match=r"periods_per_year = 0 must be finite and > 0"):
        m.sharpe_ratio(R, periods_per_year=0)
    with pytest.raises(ValueError, match="time axis"):
        m.cvar(0.1)


returns_2d = arrays(
    np.float64, st.tuples(st.integers(1, 4), st.integers(1, 60)),
    elements=st.floats(-0.5, 0.5, allow_nan=False, width=64),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    r=returns_2d, alpha=st.floats(0.0, 1.0), shift=st.floats(-0.1, 0.1), scale=st.floats(0.1, 3.0)
)
def test_cvar_properties(r: np.ndarray, alpha: float, shift: float, scale: float) -> None:
    c = m.cvar(r, alpha)
    np.testing.assert_allclose(c, sm.cvar(r.T, alpha), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        m.var(r, alpha), sm.value_at_risk(r.T, alpha), rtol=1e-12, atol=1e-15
    )
    assert np.all(c >= m.var(r, alpha) - 1e-12)  # CVaR dominates VaR
    assert np.all(c <= -r.min(axis=-1) + 1e-12)  # and never exceeds the worst loss
    np.testing.assert_allclose(m.cvar(r + shift, alpha), c - shift, atol=1e-12)  # translation
    np.testing.assert_allclose(m.cvar(scale * r, alpha), scale * c, atol=1e-12)  # homogeneity
    perm = np.random.default_rng(0).permutation(r.shape[-1])
    np.testing.assert_allclose(m.cvar(r[:, perm], alpha), c, atol=1e-15)
    dd = m.max_drawdown(r)
    # wealth stays > 0 for returns > -1, but 1 - W rounds to 1.0 once W < eps / 2
    assert np.all((dd >= 0.0) & (dd <= 1.0))


# ----------------------------------------------------------------------------- skfolio


@pytest.fixture(scope="module")
def sp_returns(sp500: MarketData) -> np.ndarray:
    """Asset returns (n_steps, n_assets) of the S&P sample, the first (zero) row dropped."""
    return sp500.returns[1:]


def test_returns_match_skfolio_preprocessing(sp_returns: np.ndarray) -> None:
    from skfolio.datasets import load_sp500_dataset
    from skfolio.preprocessing import prices_to_returns

    np.testing.assert_allclose(
        sp_returns, prices_to_returns(load_sp500_dataset()).to_numpy(), rtol=1e-14
    )


@pytest.mark.parametrize("alpha", [0.9, 0.95, 0.99])
def test_cvar_var_equal_skfolio_on_sp500(sp_returns: np.ndarray, alpha: float) -> None:
    np.testing.assert_allclose(m.cvar(sp_returns.T, alpha), sm.cvar(sp_returns, alpha), rtol=1e-14)
    np.testing.assert_allclose(
        m.var(sp_returns.T, alpha), sm.value_at_risk(sp_returns, alpha), rtol=1e-14
    )


def test_max_drawdown_equals_skfolio_on_sp500(sp_returns: np.ndarray) -> None:
    expected = sm.max_drawdown(sm.get_drawdowns(sp_returns, compounded=True))
    np.testing.assert_allclose(m.max_drawdown(sp_returns.T), expected, rtol=1e-13)
    assert np.all(m.max_drawdown(sp_returns.T) > 0.3)  # every stock fell > 30% at least once


def test_sharpe_equals_skfolio_on_sp500(sp_returns: np.ndarray) -> None:
    from skfolio import Portfolio

    expected = sm.mean(sp_returns) / sm.standard_deviation(sp_returns) * np.sqrt(252)
    np.testing.assert_allclose(m.sharpe_ratio(sp_returns.T), expected, rtol=1e-13)
    w = np.full(sp_returns.shape[1], 1.0 / sp_returns.shape[1])
    port = Portfolio(X=sp_returns, weights=w, compounded=True)
    assert m.sharpe_ratio(port.returns) == pytest.approx(port.annualized_sharpe_ratio, rel=1e-13)
    assert m.max_drawdown(port.returns) == pytest.approx(port.max_drawdown, rel=1e-13)
    assert m.cvar(port.returns) == pytest.approx(port.cvar, rel=1e-13)
    assert m.annualized_volatility(port.returns) == pytest.approx(
        port.annualized_standard_deviation, rel=1e-13
    )


# ------------------------------------------------------------- edges found by mutation testing


def test_two_steps_are_enough_for_the_dispersion_measures() -> None:
    r = [0.01, 0.03]  # mean 0.02; deviations +-0.01, sample variance 0.0002 / 1
    sd = math.sqrt(0.0002)
    assert m.annualized_volatility(r) == pytest.approx(sd * math.sqrt(252), rel=1e-13)
    assert m.sharpe_ratio(r) == pytest.approx(0.02 / sd * math.sqrt(252), rel=1e-13)
    z01 = -2.3263478740408408  # the 1 % quantile of the standard normal
    assert m.gaussian_var(r, 0.99) == pytest.approx(-(0.02 + sd * z01), rel=1e-13)


def test_one_step_is_enough_for_hit_rate_and_sortino() -> None:
    assert m.hit_rate([0.01]) == 1.0
    assert m.hit_rate([-0.01]) == 0.0
    # mean excess -1 %, downside deviation sqrt(0.01 ** 2) = 1 %
    assert m.sortino_ratio([-0.01]) == pytest.approx(-math.sqrt(252), rel=1e-14)


def test_turnover_of_a_single_trade_step_by_hand() -> None:
    # |0.5 - 0.2| + |0.1 - 0.3| = 0.5; one period alone has no trade step
    assert m.turnover([[0.2, 0.3], [0.5, 0.1]]) == pytest.approx(0.5, abs=1e-15)
    assert np.isnan(m.turnover([[0.2, 0.3]]))


def test_defaults_are_daily_bars_and_a_99_percent_gaussian_var() -> None:
    # R: final wealth 0.9880893 over 5 steps; worst drawdown 1 - 0.95931 / 1.1
    annual = 0.9880893 ** (252 / 5) - 1.0
    assert m.calmar_ratio(R) == pytest.approx(annual / (1.0 - 0.95931 / 1.1), rel=1e-12)
    sd = math.sqrt(0.0238 / 4)  # mean exactly 0
    assert m.gaussian_var(R) == pytest.approx(sd * 2.3263478740408408, rel=1e-13)


_ROW_MEASURES = {
    "annualized_return": m.annualized_return,
    "annualized_volatility": m.annualized_volatility,
    "sharpe_ratio": m.sharpe_ratio,
    "sortino_ratio": m.sortino_ratio,
    "max_drawdown": m.max_drawdown,
    "calmar_ratio": m.calmar_ratio,
    "hit_rate": m.hit_rate,
    "var_worst": lambda r: m.var(r, 1.0),
    "var_80": lambda r: m.var(r, 0.8),
    "cvar_worst": lambda r: m.cvar(r, 1.0),
    "cvar_80": lambda r: m.cvar(r, 0.8),
    "gaussian_var": lambda r: m.gaussian_var(r, 0.99),
}


@pytest.mark.parametrize("name", list(_ROW_MEASURES))
def test_each_row_of_a_batch_is_measured_on_its_own(name: str) -> None:
    measure = _ROW_MEASURES[name]
    batch = np.stack([R, -R, 0.5 * R + 0.01])  # different means, spreads and worst losses
    out = measure(batch)
    assert out.shape == (3,)
    for i in range(3):
        assert out[i] == pytest.approx(float(measure(batch[i])), rel=1e-14, abs=1e-16)
    assert len({float(v) for v in out}) > 1  # the rows really differ


def test_batched_herfindahl_and_turnover_by_hand() -> None:
    w = np.array([[0.5, 0.5, 0.0], [0.2, -0.3, 0.5], [0.0, 0.0, 0.0]])
    # (0.25 + 0.25) / 1 ** 2 and (0.04 + 0.09 + 0.25) / 1 ** 2; an all-cash book is NaN
    h = m.herfindahl(w)
    assert h.shape == (3,)
    np.testing.assert_allclose(h[:2], [0.5, 0.38], rtol=1e-15)
    assert np.isnan(h[2])
    path = np.array([[[0.2, 0.3], [0.5, 0.1]], [[0.1, 0.1], [0.1, 0.1]]])
    # from cash: row 0 trades 0.5 then 0.5, row 1 trades 0.2 then 0
    np.testing.assert_allclose(m.turnover(path, initial=np.zeros(2)), [0.5, 0.1], rtol=1e-15)
    # a per-row initial book: row 0 starts at its first weights (0 then 0.5)
    start = np.array([[0.2, 0.3], [0.0, 0.0]])
    np.testing.assert_allclose(m.turnover(path, initial=start), [0.25, 0.1], rtol=1e-15)
    np.testing.assert_allclose(m.turnover(path), [0.5, 0.0], rtol=1e-15)
    one_period = m.turnover(path[:, :1])
    assert one_period.shape == (2,) and np.isnan(one_period).all()


def test_an_empty_time_axis_gives_one_nan_per_row() -> None:
    for measure in (m.annualized_return, m.max_drawdown, m.hit_rate, m.var, m.cvar):
        out = measure(np.zeros((3, 0)))
        assert out.shape == (3,) and np.isnan(out).all()


def test_degenerate_inputs_give_ieee_answers_without_floating_point_warnings() -> None:
    flat_up = [0.25, 0.25, 0.25]  # zero volatility, positive mean, no loss, no drawdown
    zero = [0.0, 0.0, 0.0]
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        assert m.sharpe_ratio(flat_up) == math.inf  # 0.25 / 0
        assert math.isnan(m.sharpe_ratio(zero))  # 0 / 0
        assert m.sortino_ratio(flat_up) == math.inf
        assert math.isnan(m.sortino_ratio(zero))
        assert m.calmar_ratio(flat_up) == math.inf
        assert math.isnan(m.calmar_ratio(zero))
        assert math.isnan(m.herfindahl([0.0, 0.0]))


def test_float32_input_is_measured_in_float64() -> None:
    r32 = R.astype(np.float32)
    for measure in (m.annualized_return, m.sharpe_ratio, m.max_drawdown, m.cvar, m.var):
        out = measure(r32)
        assert out.dtype == np.float64
        assert out == measure(r32.astype(np.float64))
    w32 = np.array([[0.2, 0.3], [0.5, 0.1], [0.1, 0.7]], dtype=np.float32)
    assert m.turnover(w32).dtype == np.float64
    assert m.turnover(w32) == m.turnover(w32.astype(np.float64))


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.5])
def test_gaussian_var_refuses_alpha_outside_the_open_unit_interval(alpha: float) -> None:
    with pytest.raises(ValueError, match=r"^alpha = .* must lie in \(0, 1\) \(e\.g\. 0\.99\)$"):
        m.gaussian_var(R, alpha)


def test_a_scalar_has_no_time_axis() -> None:
    with pytest.raises(
        ValueError, match=r"^returns must have a time axis: pass shape \(\.\.\., n_steps\)$"
    ):
        m.sharpe_ratio(0.01)
