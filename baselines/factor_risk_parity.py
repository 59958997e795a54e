"""Factor risk parity: equal risk contribution across statistical factors, long-only.

Formulation (per portfolio, on the trailing window's returns):

1. **Factor model.** Principal components of the window covariance
   (:func:`allocgym.factors.pca_factors`, the documented rule for ``k``): loadings ``B``
   ``(n_assets, k)``, factor covariance ``F = diag(lambda_1 .. lambda_k)`` and specific
   variances ``D``.
2. **Target exposures.** The factor exposures ``y* > 0`` with equal risk contributions
   ``y_j (F y)_j = y' F y / k`` (risk budgeting on ``F``: the Newton solver of
   :func:`allocgym.baselines.risk_budgeting.risk_budget_weights`). Any positive multiple
   ``c y*`` has the same contributions. The specific risk is **not** a budget line: the
   budgets are over the factors only.
3. **Exact stage.** Among fully invested books inside the weight bounds whose exposures are
   a multiple of the target (``B' w = c y*``, ``c >= 0``), take the one with the least
   specific variance ``w' D w`` (a QP). Its factor risk contributions are equal.
4. **Nearest stage.** Long-only bounds often make step 3 infeasible (minor components need
   exposures a long book cannot reach). Then the book minimises
   ``sum_j (RC_j(w) - 1/k)^2`` over the same bounds (SLSQP, started from the equal-weight
   book): the closest long book in factor-risk shares. Such rebalances are recorded as the
   fallback stage ``factor_risk_parity:nearest`` and counted in the report.

User-provided factor returns (``--factors FILE``) drive the factor attribution; this
allocator builds its factors from the window's own returns, so it needs no extra data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cvxpy as cp
import numpy as np
from scipy.optimize import minimize

from allocgym.allocator import AllocationContext, context_returns
from allocgym.baselines.classic import (
    MIN_VOL,
    active_mask,
    project_box_simplex,
    weight_bounds,
)
from allocgym.baselines.risk_budgeting import risk_budget_weights, risk_contributions
from allocgym.config import ClassicConfig, FactorModelConfig
from allocgym.factors import pca_factors, portfolio_exposures

if TYPE_CHECKING:
    from allocgym.config import BaselinesConfig

__all__ = [
    "FactorRiskParity",
    "FactorRiskParityResult",
    "factor_risk_parity_weights",
]


@dataclass(frozen=True)
class FactorRiskParityResult:
    """One portfolio's solution.

    Attributes
    ----------
    weights : ndarray, shape (n_assets,)
    target : ndarray, shape (n_factors,)
        Equal-risk factor exposures ``y*`` (summing to 1).
    risk_contributions : ndarray, shape (n_factors,)
        Relative factor risk contributions of ``weights``.
    exact : bool
        True when the exact stage solved (contributions equal).
    """

    weights: np.ndarray
    target: np.ndarray
    risk_contributions: np.ndarray
    exact: bool


def _exact(
    loadings: np.ndarray, target: np.ndarray, specific: np.ndarray, lo: np.ndarray,
    hi: np.ndarray, solver: str | None,
) -> np.ndarray | None:  # fmt: skip
    n = loadings.shape[0]
    w = cp.Variable(n)
    c = cp.Variable(nonneg=True)
    scale = max(float(specific.max()), 1e-12)
    # a small ridge keeps the QP strictly convex when specific variances vanish
    objective = cp.sum_squares(cp.multiply(np.sqrt(specific / scale + 1e-6), w))
    constraints = [loadings.T @ w == c * target, cp.sum(w) == 1, w >= lo, w <= hi]
    problem = cp.Problem(cp.Minimize(objective), constraints)
    try:
        problem.solve(solver=solver or cp.CLARABEL)
    except cp.error.SolverError:
        return None
    if problem.status != cp.OPTIMAL or w.value is None:
        return None
    return np.asarray(w.value, dtype=np.float64)


def _nearest(
    loadings: np.ndarray, factor_cov: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    k = loadings.shape[1]
    active = hi > lo
    start = project_box_simplex(np.where(active, 1.0, 0.0) / max(int(active.sum()), 1), lo, hi)

    def gap(w: np.ndarray) -> float:
        rc = risk_contributions(loadings.T @ w, factor_cov)
        return float(((rc - 1.0 / k) ** 2).sum())

    res = minimize(
        gap,
        start,
        method="SLSQP",
        bounds=list(zip(lo, hi, strict=True)),
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
        options={"ftol": 1e-12, "maxiter": 200},
    )
    w = project_box_simplex(np.asarray(res.x, dtype=np.float64), lo, hi)
    # SLSQP never returns a point worse than where it started (or it is not used)
    return w if gap(w) <= gap(start) else start


def factor_risk_parity_weights(
    loadings: np.ndarray,
    factor_cov: np.ndarray,
    specific_var: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    solver: str | None = None,
) -> FactorRiskParityResult:
    """Fully invested weights with equal factor risk contributions (module doc, steps 2-4).

    Parameters
    ----------
    loadings : ndarray, shape (n_assets, n_factors)
    factor_cov : ndarray, shape (n_factors, n_factors)
        Positive definite on the factors.
    specific_var : ndarray, shape (n_assets,)
    lower, upper : ndarray, shape (n_assets,)
        Weight bounds (``sum(w) = 1``).
    solver : str, optional
        cvxpy solver of the exact stage (default CLARABEL).

    Returns
    -------
    FactorRiskParityResult
    """
    b = np.asarray(loadings, dtype=np.float64)
    f = np.atleast_2d(np.asarray(factor_cov, dtype=np.float64))
    d = np.clip(np.asarray(specific_var, dtype=np.float64), 0.0, None)
    lo, hi = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    target = risk_budget_weights(f)
    w = _exact(b, target, d, lo, hi, solver)
    exact = w is not None
    if w is None:
        w = _nearest(b, f, lo, hi)
    else:
        w = project_box_simplex(w, lo, hi)
    rc = risk_contributions(portfolio_exposures(b, w), f)
    return FactorRiskParityResult(w, target, rc, exact)


class FactorRiskParity:
    """The factor risk parity allocator (module doc), one solve per portfolio.

    Parameters
    ----------
    params : ClassicConfig, optional
        Weight bounds and solver shared with the classic allocators (limits left unset
        take the default ``risk`` values).
    factors : FactorModelConfig, optional
        The factor rule: trailing window, variance share and most factors kept.

    Attributes
    ----------
    active_ : ndarray of bool, shape (n_envs, n_assets)
    results_ : list of FactorRiskParityResult or None
        Per portfolio of the last call (None where no asset was active).
    source_ : list of str
        ``factor_risk_parity`` (exact) or ``factor_risk_parity:nearest`` per portfolio.
    """

    name = "factor_risk_parity"
    primary_source = "factor_risk_parity"

    def __init__(
        self,
        params: ClassicConfig | None = None,
        factors: FactorModelConfig | None = None,
    ) -> None:
        self.params = (params or ClassicConfig()).resolved()
        self.factors = factors or FactorModelConfig()

    @classmethod
    def from_config(cls, section: BaselinesConfig) -> FactorRiskParity:
        """Build from ``cfg.baselines`` (``classic`` bounds, ``factor_model`` rule)."""
        return cls(section.classic, section.factor_model)

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Factor-risk-parity weights, shape (n_envs, n_assets), rows summing to 1."""
        r = context_returns(ctx, self.name)
        if self.factors.window is not None:
            r = r[:, -self.factors.window :, :]
        p = self.params
        active = active_mask(r, MIN_VOL)
        lo, hi = weight_bounds(active, p.long_only, p.max_weight, 1.0)
        lo, hi = np.clip(lo, -10.0, 10.0), np.clip(hi, -10.0, 10.0)
        out = np.zeros((ctx.n_envs, ctx.n_assets))
        results: list[FactorRiskParityResult | None] = [None] * ctx.n_envs
        sources = [self.primary_source] * ctx.n_envs
        for e in np.flatnonzero(active.any(axis=-1)):
            cols = np.flatnonzero(active[e])
            model = pca_factors(
                r[e][:, cols], self.factors.variance_threshold, self.factors.max_factors
            )
            res = factor_risk_parity_weights(
                model.loadings, model.factor_cov, model.specific_var, lo[e, cols], hi[e, cols],
                p.solver,
            )  # fmt: skip
            out[e, cols] = res.weights
            results[e] = res
            if not res.exact:
                sources[e] = f"{self.name}:nearest"
        self.active_ = active
        self.results_ = results
        self.source_ = sources
        return out
