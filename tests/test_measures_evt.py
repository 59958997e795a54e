"""EVT tails: the GPD fit against scipy, VaR / ES against known GPD quantiles, the
threshold rule, batch and NaN policy; the Gaussian VaR by hand."""

from __future__ import annotations

import math
import warnings

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


# ------------------------------------------------------------- edges found by mutation testing


def test_profile_likelihood_is_scipys_gpd_log_likelihood() -> None:
    """At ``theta = expm1(s) / ymax`` the profile holds ``xi = mean(log1p(theta y))``,
    ``beta = xi / theta`` and the full GPD log-likelihood there, row by row."""
    y = genpareto.rvs(0.2, scale=0.01, size=(2, 50), random_state=np.random.default_rng(3))
    ymax = y.max(axis=-1)
    s = np.array([-0.5, 0.7])
    ll, xi, scale = m._gpd_profile(y, ymax, s)
    for i in range(2):
        theta = math.expm1(s[i]) / ymax[i]
        xi_hand = float(np.mean(np.log1p(theta * y[i])))
        assert xi[i] == pytest.approx(xi_hand, rel=1e-14)
        assert scale[i] == pytest.approx(xi_hand / theta, rel=1e-14)
        full = float(genpareto.logpdf(y[i], xi_hand, scale=xi_hand / theta).sum())
        assert ll[i] == pytest.approx(full, rel=1e-10)


def test_profile_at_theta_zero_is_the_exponential_fit() -> None:
    """``theta = 0`` is the exponential limit: ``xi = 0``, ``beta = mean(y)`` and the
    log-likelihood ``-n (log mean(y) + 1)``, without a 0/0 warning."""
    y = np.array([[0.1, 0.2, 0.6], [1.0, 3.0, 2.0]])
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        ll, xi, scale = m._gpd_profile(y, y.max(axis=-1), np.zeros(2))
    np.testing.assert_array_equal(xi, [0.0, 0.0])
    np.testing.assert_allclose(scale, [0.3, 2.0], rtol=1e-15)
    np.testing.assert_allclose(ll, [-3 * (math.log(0.3) + 1), -3 * (math.log(2.0) + 1)], rtol=1e-14)


def test_profile_excludes_xi_at_or_below_minus_one_and_a_zero_scale() -> None:
    """Equal excesses give ``xi = log1p(expm1(s)) = s``: the likelihood is unbounded for
    ``xi <= -1``, so those points score ``-inf``; so does a zero scale (all-zero excesses),
    without a log(0) warning."""
    ones = np.ones((3, 20))
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        ll, xi, _ = m._gpd_profile(ones, np.ones(3), np.array([-1.0, -1.5, -5.0]))
        assert xi[0] == -1.0
        np.testing.assert_array_equal(ll, [-np.inf] * 3)
        ll0, _, scale0 = m._gpd_profile(np.zeros((1, 5)), np.ones(1), np.array([0.5]))
    assert scale0[0] == 0.0 and ll0[0] == -np.inf
    # just inside the admissible region the likelihood is finite
    assert np.isfinite(m._gpd_profile(ones[:1], np.ones(1), np.array([-0.5]))[0][0])


def test_a_likelihood_rising_at_the_edge_of_the_search_returns_the_edge_point() -> None:
    """Excesses spread over 12 decades push the maximum to the largest ``theta`` searched
    (``s = 12``): the fit is exactly that grid point, and no point of a dense scan of the
    search range has a higher scipy likelihood. A second, ordinary row keeps its own fit."""
    edge = 10.0 ** np.linspace(-12, 0, 20)
    ordinary = genpareto.rvs(0.2, scale=1.0, size=20, random_state=np.random.default_rng(4))
    xi, beta = m.gpd_fit(np.stack([edge, ordinary]))
    _, xi_edge, beta_edge = m._gpd_profile(edge[None], np.ones(1), np.array([12.0]))
    assert xi[0] == xi_edge[0] and beta[0] == beta_edge[0]
    xi_1, beta_1 = m.gpd_fit(ordinary)
    assert xi[1] == pytest.approx(float(xi_1), rel=1e-12)
    assert beta[1] == pytest.approx(float(beta_1), rel=1e-12)
    best = float(genpareto.logpdf(edge, xi[0], scale=beta[0]).sum())
    for theta in np.expm1(np.linspace(-10.0, 12.0, 440)):
        shape = float(np.mean(np.log1p(theta * edge)))
        if shape > -1.0:
            scan = float(genpareto.logpdf(edge, shape, scale=shape / theta).sum())
            assert scan <= best + 1e-9


def test_gpd_fit_input_checks_and_a_single_excess() -> None:
    shape_msg = r"^excesses must have a non-empty last axis: pass shape \(\.\.\., n_exceed\)$"
    with pytest.raises(ValueError, match=shape_msg):
        m.gpd_fit(0.5)
    with pytest.raises(ValueError, match=shape_msg):
        m.gpd_fit(np.zeros((2, 0)))
    with pytest.raises(ValueError, match=r"^excesses must be >= 0 \(losses minus the threshold\)$"):
        m.gpd_fit([0.1, -0.2])
    xi, beta = m.gpd_fit([0.5])  # one exceedance is a (poor) sample, not an error
    assert np.isfinite(xi) and beta > 0


def test_float32_excesses_are_fitted_in_float64() -> None:
    y = genpareto.rvs(0.1, scale=0.01, size=40, random_state=np.random.default_rng(5))
    y32 = y.astype(np.float32)
    xi, beta = m.gpd_fit(y32)
    xi64, beta64 = m.gpd_fit(y32.astype(np.float64))
    assert xi.dtype == beta.dtype == np.float64
    assert xi == xi64 and beta == beta64


def test_evt_quantile_at_xi_zero_is_the_exponential_tail() -> None:
    """``xi = 0``: ``u - beta log p_ratio`` by hand, without the 0/0 of the general
    formula; a tiny ``xi`` agrees with the limit."""
    u, beta = np.array([0.02]), np.array([0.01])
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        q0 = m._evt_quantile(u, np.array([0.0]), beta, 0.1)
    assert q0[0] == pytest.approx(0.02 + 0.01 * math.log(10.0), rel=1e-15)
    q_tiny = m._evt_quantile(u, np.array([1e-9]), beta, 0.1)
    assert q_tiny[0] == pytest.approx(q0[0], rel=1e-8)


def test_evt_var_of_a_flat_tail_is_the_threshold() -> None:
    """The 11 largest losses all equal 5 %: every excess is 0, the fit is (0, 0) and the
    VaR and ES are the threshold itself, with no floating-point warning."""
    r = np.concatenate([np.full(11, -0.05), np.linspace(-0.04, 0.03, 89)])
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        assert float(m.evt_var(r, 0.99)) == 0.05
        assert float(m.evt_cvar(r, 0.99)) == 0.05


def test_evt_defaults_are_99_percent_and_a_10_percent_tail() -> None:
    r = np.random.default_rng(11).standard_t(4, 1000) * 0.01
    assert m.evt_var(r) == m.evt_var(r, 0.99, 0.10)
    assert m.evt_cvar(r) == m.evt_cvar(r, 0.99, 0.10)


def test_threshold_rule_edges() -> None:
    r = np.random.default_rng(12).standard_t(4, 100) * 0.01
    # k = 10 exceedances is enough
    assert np.isfinite(m.evt_var(r, 0.99, 0.10))
    # 0.29 * 100 = 28.999999999999996 in floating point: still k = 29, u the 30th loss
    u, _, _, share, _ = m._pot(r, 0.99, 0.29)
    assert share == 0.29 and u == np.sort(-r)[::-1][29]
    with pytest.raises(
        ValueError,
        match=r"^50 observations leave 5 exceedances at tail_fraction = 0\.1; a generalised "
        r"Pareto fit needs >= 10: pass >= 100 observations or a larger tail_fraction$",
    ):
        m.evt_var(r[:50], 0.99, 0.1)
    # 1 - alpha equal to the tail share k / n = 10 / 40 is not beyond the threshold
    with pytest.raises(
        ValueError,
        match=r"^alpha = 0\.75 is not in the tail: the threshold leaves 0\.25 of the "
        r"observations beyond it, so 1 - alpha must be smaller; raise alpha or "
        r"tail_fraction, or use var\(\)$",
    ):
        m.evt_var(r[:40], 0.75, 0.25)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.5])
def test_evt_refuses_alpha_outside_the_open_unit_interval(alpha: float) -> None:
    r = np.random.default_rng(13).standard_t(4, 200) * 0.01
    with pytest.raises(ValueError, match=r"^alpha = .* must lie in \(0, 1\) \(e\.g\. 0\.99\)$"):
        m.evt_var(r, alpha)


@pytest.mark.parametrize("tail_fraction", [0.0, 1.0, 1.5])
def test_evt_refuses_a_tail_fraction_outside_the_open_unit_interval(tail_fraction: float) -> None:
    r = np.random.default_rng(14).standard_t(4, 200) * 0.01
    with pytest.raises(
        ValueError, match=r"^tail_fraction = .* must lie in \(0, 1\) \(e\.g\. 0\.1\)$"
    ):
        m.evt_var(r, 0.99, tail_fraction)


def test_a_nan_row_leaves_the_other_rows_of_a_batch_alone() -> None:
    r = np.random.default_rng(15).standard_t(5, (3, 300)) * 0.01
    clean = [float(m.evt_var(r[i], 0.99)) for i in range(3)]
    r[1, 7] = np.nan
    v = m.evt_var(r, 0.99)
    assert np.isnan(v[1])
    assert v[0] == pytest.approx(clean[0], rel=1e-12) and v[2] == pytest.approx(clean[2], rel=1e-12)
