"""Risk budgeting, Black–Litterman, min-CVaR and fractional Kelly against skfolio.

Both sides get the same inputs: skfolio's own empirical estimates (``EmpiricalPrior``: the
sample mean and the ``ddof=1`` sample covariance) of the bundled S&P 500 sample's daily
returns are passed to allocgym's functions, and the scenarios of the CVaR problem are the
returns themselves. The models coincide term by term:

- risk budgeting: long-only, fully invested, relative variance contributions equal to the
  budgets (skfolio ``RiskBudgeting`` with ``RiskMeasure.VARIANCE``);
- Black–Litterman: equal-weight equilibrium prior ``pi = delta Σ w``, He–Litterman view
  uncertainty ``diag(P τΣ P')``, posterior covariance ``Σ + τΣ - τΣP'(PτΣP' + Ω)⁻¹PτΣ``
  (skfolio ``BlackLitterman`` over ``EquilibriumMu``), then ``max mu'w - (delta/2) w'Σw``
  with ``sum w = 1`` and ``0 <= w <= cap`` (``MeanRisk``, utility, ``risk_aversion =
  delta/2``);
- min-CVaR: the Rockafellar–Uryasev LP, ``sum w = 1``, ``0 <= w <= 1`` (``MeanRisk`` with
  ``RiskMeasure.CVAR``, ``cvar_beta = alpha``);
- fractional Kelly: ``max mu'w - (1/(2f)) w'Σw``, ``0 <= w <= cap``, ``sum w <= G`` (cash
  allowed; ``MeanRisk``, utility, ``risk_aversion = 1/(2f)``, ``budget=None``,
  ``max_budget=G``; long-only, so ``sum |w| = sum w``).

Tolerances, and why they are not zero (measured on the two windows of ``WINDOWS``):

- Black–Litterman posterior (closed form on both sides): ``rtol = 1e-12`` on ``pi``, ``mu``
  and ``Σ_BL`` (measured: bit-identical ``pi`` and ``mu``, 4e-19 absolute on ``Σ_BL``).
- Weights of the conic solves (risk budgeting, Black–Litterman, Kelly): ``atol = 1e-5``.
  skfolio solves them with Clarabel, here at gap and feasibility tolerance 1e-10 (its
  defaults leave up to 1.2e-5 on the Black–Litterman weights); the measured gaps are at
  most 4.5e-7 (risk budgeting), 2.6e-6 (Black–Litterman) and 1.8e-6 (Kelly). Risk
  budgeting is solved here by Newton to 1e-10 on every risk contribution, so that gap is
  skfolio's: its contributions miss the budgets by up to 4.9e-7. The objective values
  agree to ``rtol = 1e-7``: ours is never worse than skfolio's by more (measured 8e-9,
  both solvers stop at their own tolerances).
- Min-CVaR (a linear program; HiGHS here, Clarabel in skfolio): weights ``atol = 1e-6``
  (measured 6e-8), CVaR ``rtol = 1e-8`` (measured 1.2e-10).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from skfolio import RiskMeasure
from skfolio.measures import cvar as skfolio_cvar
from skfolio.moments import EquilibriumMu
from skfolio.optimization import MeanRisk, ObjectiveFunction
from skfolio.optimization import RiskBudgeting as SkfolioRiskBudgeting
from skfolio.prior import BlackLitterman as SkfolioBlackLitterman
from skfolio.prior import EmpiricalPrior

from allocgym.baselines.black_litterman import black_litterman_posterior
from allocgym.baselines.classic import kelly_weights, mean_variance_weights
from allocgym.baselines.cvar import min_cvar_weights
from allocgym.baselines.risk_budgeting import risk_budget_weights, risk_contributions
from allocgym.data import load_sp500
from allocgym.measures import cvar

WINDOWS = {"2019-2022": slice(-1000, None), "2008-2010": slice(-3750, -3000)}
"""Daily-return windows of the sample: the last 1000 bars, and one through the 2008 crisis."""

SOLVER_PARAMS = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
"""Clarabel tolerances of skfolio's conic solves (its defaults are 1e-8)."""

WEIGHT_ATOL = 1e-5
OBJECTIVE_RTOL = 1e-7


@pytest.fixture(scope="module", params=sorted(WINDOWS))
def returns(request: pytest.FixtureRequest) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        market = load_sp500()
    window = np.asarray(market.returns[WINDOWS[request.param]], dtype=np.float64)
    assert np.isfinite(window).all() and window.shape[1] == 20
    return pd.DataFrame(window, columns=list(market.symbols))


@pytest.fixture(scope="module")
def moments(returns: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    distribution = EmpiricalPrior().fit(returns).return_distribution_
    return distribution.mu, distribution.covariance


def test_risk_budgeting_matches_skfolio(
    returns: pd.DataFrame, moments: tuple[np.ndarray, np.ndarray]
) -> None:
    _, cov = moments
    n_assets = returns.shape[1]
    budgets = np.linspace(1.0, 3.0, n_assets)
    budgets /= budgets.sum()
    reference = (
        SkfolioRiskBudgeting(
            risk_measure=RiskMeasure.VARIANCE, risk_budget=budgets, solver_params=SOLVER_PARAMS
        )
        .fit(returns)
        .weights_
    )
    ours = risk_budget_weights(cov, budgets)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=WEIGHT_ATOL)
    assert np.abs(risk_contributions(ours, cov) - budgets).max() <= 1e-10
    assert np.abs(risk_contributions(reference, cov) - budgets).max() <= WEIGHT_ATOL


def test_black_litterman_matches_skfolio(
    returns: pd.DataFrame, moments: tuple[np.ndarray, np.ndarray]
) -> None:
    _, cov = moments
    symbols = list(returns.columns)
    n_assets = len(symbols)
    delta, tau, cap = 2.5, 0.05, 0.2
    views = [f"{symbols[0]} == 0.0008", f"{symbols[1]} - {symbols[2]} == 0.0002"]
    picking = np.zeros((2, n_assets))
    picking[0, 0] = 1.0
    picking[1, 1], picking[1, 2] = 1.0, -1.0
    view_returns = np.array([0.0008, 0.0002])

    def skfolio_prior() -> SkfolioBlackLitterman:
        equilibrium = EmpiricalPrior(mu_estimator=EquilibriumMu(risk_aversion=delta))
        return SkfolioBlackLitterman(views=views, tau=tau, prior_estimator=equilibrium)

    fitted = skfolio_prior().fit(returns)
    np.testing.assert_array_equal(fitted.picking_matrix_, picking)
    pi, mu, cov_post = black_litterman_posterior(
        cov, np.full(n_assets, 1.0 / n_assets), picking, view_returns, None, tau, delta
    )
    np.testing.assert_allclose(pi, fitted.prior_estimator_.return_distribution_.mu, rtol=1e-12)
    np.testing.assert_allclose(mu, fitted.return_distribution_.mu, rtol=1e-12)
    np.testing.assert_allclose(cov_post, fitted.return_distribution_.covariance, rtol=1e-12)
    # the views moved the posterior: a check that the views reached both sides
    assert np.abs(mu - pi).max() > 1e-5

    reference = (
        MeanRisk(
            objective_function=ObjectiveFunction.MAXIMIZE_UTILITY,
            risk_measure=RiskMeasure.VARIANCE,
            risk_aversion=delta / 2,
            max_weights=cap,
            prior_estimator=skfolio_prior(),
            solver_params=SOLVER_PARAMS,
        )
        .fit(returns)
        .weights_
    )
    ours = mean_variance_weights(mu, cov_post, delta, np.zeros(n_assets), np.full(n_assets, cap))
    np.testing.assert_allclose(ours, reference, rtol=0, atol=WEIGHT_ATOL)

    def utility(weights: np.ndarray) -> float:
        return float(mu @ weights - delta / 2 * weights @ cov_post @ weights)

    assert utility(ours) >= utility(reference) - OBJECTIVE_RTOL * abs(utility(reference))


def test_min_cvar_matches_skfolio(returns: pd.DataFrame) -> None:
    alpha = 0.95
    scenarios = returns.to_numpy()
    reference = MeanRisk(risk_measure=RiskMeasure.CVAR, cvar_beta=alpha).fit(returns).weights_
    ours = min_cvar_weights(scenarios, alpha)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)
    ours_cvar = cvar(scenarios @ ours, alpha)
    np.testing.assert_allclose(ours_cvar, skfolio_cvar(scenarios @ ours, beta=alpha), rtol=1e-12)
    np.testing.assert_allclose(ours_cvar, skfolio_cvar(scenarios @ reference, alpha), rtol=1e-8)


def test_fractional_kelly_matches_skfolio(
    returns: pd.DataFrame, moments: tuple[np.ndarray, np.ndarray]
) -> None:
    mu, cov = moments
    fraction, cap, gross = 0.5, 0.25, 1.0
    reference = (
        MeanRisk(
            objective_function=ObjectiveFunction.MAXIMIZE_UTILITY,
            risk_measure=RiskMeasure.VARIANCE,
            risk_aversion=1.0 / (2.0 * fraction),
            budget=None,
            max_budget=gross,
            max_weights=cap,
            solver_params=SOLVER_PARAMS,
        )
        .fit(returns)
        .weights_
    )
    ours = kelly_weights(mu, cov, fraction, max_weight=cap, max_gross=gross)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=WEIGHT_ATOL)

    def growth(weights: np.ndarray) -> float:
        return float(mu @ weights - weights @ cov @ weights / (2.0 * fraction))

    assert growth(ours) >= growth(reference) - OBJECTIVE_RTOL * abs(growth(reference))
