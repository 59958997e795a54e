"""DCC-GARCH: arch parity of the univariate stage, parameter recovery on a simulated DCC
process, likelihoods against hand-written references, streaming parity, PD forecasts."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from allocgym import dcc
from allocgym.baselines.qp import risk_sqrt
from allocgym.config import ClassicConfig, QPConfig, config_from_dict
from allocgym.errors import ConfigError, DataError
from allocgym.estimates import COVARIANCE_METHODS, estimate_covariance

A_TRUE, B_TRUE = 0.05, 0.90
ALPHA_TRUE = np.array([0.05, 0.08, 0.12, 0.06])
BETA_TRUE = np.array([0.93, 0.90, 0.85, 0.90])
OMEGA_TRUE = np.array([2e-6, 3e-6, 4e-6, 5e-6])
QBAR_TRUE = np.array(
    [[1.0, 0.5, 0.3, 0.2], [0.5, 1.0, 0.4, 0.3], [0.3, 0.4, 1.0, 0.5], [0.2, 0.3, 0.5, 1.0]]
)


def _simulated(n_obs: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return dcc.simulate_dcc(
        n_obs, OMEGA_TRUE, ALPHA_TRUE, BETA_TRUE, A_TRUE, B_TRUE, QBAR_TRUE, rng
    )


@pytest.fixture(scope="module")
def simulated() -> np.ndarray:
    return _simulated(3000, seed=11)


def test_garch_fits_equal_arch(simulated: np.ndarray) -> None:
    """Same model as arch_model(e, mean='Zero', vol='GARCH'): same optimum (to the optimiser's
    tolerance), never a lower likelihood, identical variance recursion."""
    from arch import arch_model

    x = simulated[:1500]
    ours = dcc.garch11_fit(x)
    e = x - x.mean(axis=0)
    for i in range(x.shape[1]):
        # arch's optimiser needs percent-scaled data; the fit is scale-equivariant
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = arch_model(100 * e[:, i], mean="Zero", vol="GARCH", p=1, q=1, rescale=False)
            res = ref.fit(disp="off")
        omega, alpha, beta = res.params.to_numpy()
        assert abs(ours.alpha[i] - alpha) < 1e-3
        assert abs(ours.beta[i] - beta) < 2e-3
        assert ours.omega[i] * 1e4 == pytest.approx(omega, rel=2e-2)
        ll_ours = ours.loglik[i] - x.shape[0] * math.log(100.0)  # in percent units
        assert ll_ours >= res.loglikelihood - 1e-6
        fixed = ref.fix([ours.omega[i] * 1e4, ours.alpha[i], ours.beta[i]])
        assert fixed.loglikelihood == pytest.approx(ll_ours, rel=1e-10)
        s2 = dcc.garch11_variance(
            100 * e[:, i : i + 1], ours.omega[i : i + 1] * 1e4, ours.alpha[i : i + 1],
            ours.beta[i : i + 1],
        )[:, 0]  # fmt: skip
        assert np.allclose(s2, fixed.conditional_volatility**2, rtol=1e-12, atol=0)


@pytest.mark.parametrize("likelihood", ["full", "composite"])
def test_recovers_simulated_dcc_parameters(simulated: np.ndarray, likelihood: str) -> None:
    """Stated tolerances on 3000 bars of a simulated DCC(1,1) with GARCH(1,1) margins:
    |a - 0.05| <= 0.02, |b - 0.90| <= 0.05, each GARCH alpha within 0.04 and beta within
    0.06, the correlation target within 0.12 (worst over seeds 0-9: 0.011, 0.019, 0.025,
    0.027, 0.096)."""
    model = dcc.DCCGarch(likelihood).fit(simulated)
    p = model.params_
    assert p.likelihood == likelihood
    assert abs(p.a - A_TRUE) <= 0.02, p.a
    assert abs(p.b - B_TRUE) <= 0.05, p.b
    assert np.max(np.abs(p.garch.alpha - ALPHA_TRUE)) <= 0.04, p.garch.alpha
    assert np.max(np.abs(p.garch.beta - BETA_TRUE)) <= 0.06, p.garch.beta
    corr = p.qbar / np.sqrt(np.outer(np.diag(p.qbar), np.diag(p.qbar)))
    assert np.max(np.abs(corr - QBAR_TRUE)) <= 0.12


def test_full_likelihood_equals_multivariate_normal_reference() -> None:
    """The correlation-stage likelihood equals a plain loop over bars with scipy's
    multivariate normal (log N(z; 0, R_t) - log N(z; 0, I))."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((40, 3))
    a, b = 0.07, 0.85
    qbar = z.T @ z / z.shape[0]
    q, ref = qbar.copy(), 0.0
    for t in range(z.shape[0]):
        if t > 0:
            q = (1 - a - b) * qbar + a * np.outer(z[t - 1], z[t - 1]) + b * q
        d = 1 / np.sqrt(np.diag(q))
        r = q * np.outer(d, d)
        ref += multivariate_normal(np.zeros(3), r).logpdf(z[t])
        ref -= multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z[t])
    assert dcc.dcc_loglik(z, a, b, "full") == pytest.approx(ref, rel=1e-12)
    # with two assets the composite likelihood (one pair) is the full one
    assert dcc.dcc_loglik(z[:, :2], a, b, "composite") == pytest.approx(
        dcc.dcc_loglik(z[:, :2], a, b, "full"), rel=1e-12
    )


def test_streaming_update_equals_refit_recursion(simulated: np.ndarray) -> None:
    """fit on bars 0..T-1 then update() bar by bar equals the closed-form Q and the GARCH
    recursion run over the longer window with the same parameters (naive loop reference)."""
    x = simulated[:600]
    model = dcc.DCCGarch().fit(x[:500])
    p = model.params_
    for t in range(500, 600):
        cov = model.update(x[t])
    g = p.garch
    e = x - g.mu
    s2 = np.empty_like(e)
    s2_t = dcc.garch11_variance(e[:500], g.omega, g.alpha, g.beta)
    s2[:500] = s2_t
    for t in range(500, 600):  # plain loop of the GARCH recursion
        s2[t] = g.omega + g.alpha * e[t - 1] ** 2 + g.beta * s2[t - 1]
    s2_next = g.omega + g.alpha * e[-1] ** 2 + g.beta * s2[-1]
    z = e / np.sqrt(s2)
    q = dcc.dcc_q_forecast(z, p.qbar, p.a, p.b)
    assert np.allclose(model.state_.sigma2, s2_next, rtol=1e-10, atol=0)
    assert np.allclose(model.state_.q, q, rtol=1e-10, atol=1e-14)
    assert model.n_updates_ == 100
    assert np.allclose(cov, dcc.DCCState(s2_next, q).covariance(), rtol=1e-10, atol=1e-18)


def test_q_forecast_equals_plain_recursion() -> None:
    rng = np.random.default_rng(4)
    z = rng.standard_normal((30, 3))
    qbar = z.T @ z / 30
    a, b = 0.1, 0.8
    q = qbar.copy()
    for t in range(1, 31):
        q = (1 - a - b) * qbar + a * np.outer(z[t - 1], z[t - 1]) + b * q
    assert np.allclose(dcc.dcc_q_forecast(z, qbar, a, b), q, rtol=1e-13, atol=1e-15)


def test_forecasts_positive_definite_and_inactive_assets_zero(simulated: np.ndarray) -> None:
    x = np.stack([simulated[:300], simulated[300:600]])  # a batch of two windows
    x[1, :, 2] = 0.0  # untradable for the whole window
    cov = estimate_covariance(x, "dcc_garch")
    assert cov.shape == (2, 4, 4)
    assert np.linalg.eigvalsh(cov[0]).min() > 0
    assert np.allclose(cov, np.swapaxes(cov, -1, -2), rtol=0, atol=0)
    assert np.all(cov[1, 2] == 0) and np.all(cov[1, :, 2] == 0)
    sub = cov[1][np.ix_([0, 1, 3], [0, 1, 3])]
    assert np.linalg.eigvalsh(sub).min() > 0
    # same fit as the estimator on that window (reductions may round differently by layout)
    assert np.allclose(cov[0], dcc.DCCGarch().fit(x[0]).covariance_, rtol=1e-6, atol=0)
    model = dcc.DCCGarch().fit(simulated[:300])
    for t in range(300, 400):
        assert np.linalg.eigvalsh(model.update(simulated[t])).min() > 0


def test_wide_universe_uses_composite_likelihood() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((200, dcc.FULL_LIKELIHOOD_MAX_ASSETS + 1)) * 0.01
    model = dcc.DCCGarch().fit(x)
    assert model.params_.likelihood == "composite"
    assert dcc.DCCGarch().fit(x[:, :3]).params_.likelihood == "full"


def test_bad_input_refused_with_the_fix() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((100, 3)) * 0.01
    with pytest.raises(DataError, match="constant"):
        dcc.DCCGarch().fit(np.column_stack([x, np.zeros(100)]))
    with pytest.raises(DataError, match="at least 30 bars"):
        dcc.DCCGarch().fit(x[:10])
    with pytest.raises(DataError, match="NaN"):
        dcc.DCCGarch().fit(np.where(x > 0.02, np.nan, x))
    with pytest.raises(DataError, match="likelihood"):
        dcc.DCCGarch("exact")  # type: ignore[arg-type]
    model = dcc.DCCGarch().fit(x)
    with pytest.raises(DataError, match="one bar of 3"):
        model.update(np.zeros(4))


def test_selectable_wherever_a_covariance_is(simulated: np.ndarray) -> None:
    """Config covariance fields, the classic allocators and the QP risk model take it."""
    assert "dcc_garch" in COVARIANCE_METHODS
    cfg = config_from_dict(
        {"baselines": {"classic": {"covariance": "dcc_garch"}, "qp": {"covariance": "dcc_garch"},
                       "hrp": {"covariance": "dcc_garch"}, "barbell": {"covariance": "dcc_garch"}}}
    )  # fmt: skip
    assert cfg.baselines.hrp.covariance == "dcc_garch"
    with pytest.raises(ConfigError):
        config_from_dict({"baselines": {"classic": {"covariance": "dcc"}}})
    assert ClassicConfig(covariance="dcc_garch").covariance == "dcc_garch"
    x = simulated[:250]
    params = QPConfig(covariance="dcc_garch", risk_model="covariance")
    sigma = risk_sqrt(x, params).matrix()
    assert np.allclose(sigma, estimate_covariance(x, "dcc_garch"), rtol=1e-9, atol=1e-15)
