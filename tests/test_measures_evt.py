"""EVT tails: the GPD fit against scipy, VaR / ES against known GPD quantiles, the
threshold rule, batch and NaN policy; the Gaussian VaR by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import genpareto, norm

from allocgym import measures as m


@pytest.mark.parametrize("xi", [-0.2, 0.1, 0.3])
def test_gpd_fit_matches_scipy_mle(xi: float) -> None:
    y = genpareto.rvs(xi, scale=0.01, size=300, random_state=np.random.default_rng(7))
    ours_xi, ours_beta = m.gpd_fit(y)
    c, loc, scale = genpareto.fit(y, floc=0)
    assert loc == 0

    def ll(shape: float, sc: float) -> float:
        return float(genpareto.logpdf(y, shape, scale=sc).sum())

    # never a worse likelihood than scipy's optimiser, and the same optimum
    assert ll(float(ours_xi), float(ours_beta)) >= ll(c, scale) - 1e-9
    assert float(ours_xi) == pytest.approx(c, abs=2e-3)
    assert float(ours_beta) == pytest.approx(scale, rel=2e-3)


def test_gpd_fit_batch_rows_equal_single_fits_and_edge_rows() -> None:
    y = genpareto.rvs(0.2, scale=1.0, size=(4, 60), random_state=np.random.default_rng(8))
    xi, beta = m.gpd_fit(y)
    for i in range(4):
        a, b = m.gpd_fit(y[i])
        assert xi[i] == pytest.approx(float(a), rel=1e-12) and beta[i] == pytest.approx(float(b))
    y2 = np.vstack([y[:2], np.zeros(60), np.full(60, np.nan)])
    xi2, beta2 = m.gpd_fit(y2)
    assert xi2[2] == 0.0 and beta2[2] == 0.0  # no excess at all
    assert np.isnan(xi2[3]) and np.isnan(beta2[3])
    with pytest.raises(ValueError, match=">= 0"):
        m.gpd_fit(-y)


def _tail_sample(n: int, u: float, xi: float, beta: float) -> np.ndarray:
    """Returns whose worst 10% of losses are u + exact GPD quantiles (a 'perfect' sample)."""
    k = n // 10
    tail = u + genpareto.ppf((np.arange(k) + 0.5) / k, xi, scale=beta)
    body = np.linspace(-0.03, u, n - k)  # losses up to the threshold, the largest = u
    return -np.concatenate([tail, body])


def test_evt_var_and_cvar_recover_known_gpd_quantiles() -> None:
    """On a sample whose tail is an exact GPD(xi=0.25, beta=0.01) beyond u = 0.02 (10% of
    the observations), the 99% and 99.5% VaR and ES are those of the GPD within 1%
    (measured: 0.14% / 0.28% for VaR, 0.5% / 0.7% for ES)."""
    xi, beta, u, n = 0.25, 0.01, 0.02, 4000
    r = _tail_sample(n, u, xi, beta)
    for alpha in (0.99, 0.995):
        p_tail = (1.0 - alpha) / 0.10
        true_var = u + genpareto.ppf(1.0 - p_tail, xi, scale=beta)
        true_es = (true_var + beta - xi * u) / (1.0 - xi)
        assert float(m.evt_var(r, alpha)) == pytest.approx(true_var, rel=0.01)
        assert float(m.evt_cvar(r, alpha)) == pytest.approx(true_es, rel=0.01)


def test_evt_var_is_the_gpd_quantile_of_its_own_fit_and_es_its_tail_mean() -> None:
    """The threshold rule (k = floor(0.1 n), u = the (k+1)-th largest loss) and the POT
    formula, checked against scipy's GPD quantile and a numerical tail integral."""
    rng = np.random.default_rng(9)
    r = rng.standard_t(4, 1000) * 0.01
    losses = np.sort(-r)[::-1]
    k = 100
    u = losses[k]
    xi, beta = m.gpd_fit(losses[:k] - u)
    xi, beta = float(xi), float(beta)
    alpha = 0.99
    q = lambda a: u + genpareto.ppf(1.0 - (1.0 - a) * 1000 / k, xi, scale=beta)  # noqa: E731
    assert float(m.evt_var(r, alpha)) == pytest.approx(q(alpha), rel=1e-12)
    es = quad(q, alpha, 1.0, limit=200)[0] / (1.0 - alpha)  # ES = mean of VaR_p, p > alpha
    assert float(m.evt_cvar(r, alpha)) == pytest.approx(es, rel=1e-6)
    # tail_fraction moves the threshold: a different fit, a different number
    assert float(m.evt_var(r, alpha, tail_fraction=0.05)) != float(m.evt_var(r, alpha))


def test_evt_batch_nan_and_errors() -> None:
    rng = np.random.default_rng(10)
    r = rng.standard_t(5, (3, 500)) * 0.01
    v = m.evt_var(r, 0.99)
    assert v.shape == (3,)
    for i in range(3):
        assert v[i] == pytest.approx(float(m.evt_var(r[i], 0.99)), rel=1e-12)
    r[1, 5] = np.nan
    assert np.isnan(m.evt_var(r, 0.99)[1]) and np.isnan(m.evt_cvar(r, 0.99)[1])
    with pytest.raises(ValueError, match="exceedances"):
        m.evt_var(r[0, :50], 0.99)
    with pytest.raises(ValueError, match="not in the tail"):
        m.evt_var(r[0], 0.85)
    # a heavy tail without a mean: ES is infinite
    heavy = -genpareto.rvs(1.5, size=2000, random_state=np.random.default_rng(1))
    assert math.isinf(float(m.evt_cvar(heavy, 0.99)))


def test_gaussian_var_by_hand() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0])
    mean, sd = 0.005, np.std(r, ddof=1)
    assert float(m.gaussian_var(r, 0.99)) == pytest.approx(-(mean + sd * norm.ppf(0.01)))
    assert np.isnan(m.gaussian_var(r[:1], 0.99))
