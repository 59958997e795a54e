"""Risk budgeting / equal risk contribution (risk parity) with user budgets.

The long-only risk-budgeting portfolio for budgets ``b`` (``b_i > 0``, ``sum b = 1``) is the
normalised minimiser of the strictly convex log-barrier problem (Spinu 2013; Roncalli)::

    min_y  0.5 y'Σy - sum_i b_i log(y_i),   y > 0        then   w = y / sum(y)

whose first-order condition ``y_i (Σy)_i = b_i`` says that asset ``i`` contributes exactly
``b_i`` of the variance ``y'Σy = sum b = 1``. It is solved by a damped Newton method,
batched over portfolios (one ``(n_envs, n, n)`` linear solve per iteration, no loop over
``n_envs``), and stopped when every risk contribution is within ``tol`` of its budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from allocgym.allocator import AllocationContext, context_returns
from allocgym.baselines.classic import (
    MIN_VOL,
    active_mask,
)
from allocgym.config import ClassicConfig, RiskBudgetConfig
from allocgym.errors import ConfigError, SolverFailed
from allocgym.estimates import estimate_covariance

if TYPE_CHECKING:
    from allocgym.config import BaselinesConfig

__all__ = ["RiskBudgeting", "budget_vector", "risk_budget_weights", "risk_contributions"]


def risk_contributions(weights: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Relative risk contributions ``w_i (Σw)_i / (w'Σw)`` (they sum to 1).

    Parameters
    ----------
    weights : ndarray, shape (..., n_assets)
    cov : ndarray, shape (..., n_assets, n_assets)

    Returns
    -------
    ndarray, shape (..., n_assets)
        Zero rows where the portfolio variance is 0.
    """
    w = np.asarray(weights, float)
    sw = (np.asarray(cov, float) @ w[..., None])[..., 0]
    rc = w * sw
    var = rc.sum(axis=-1, keepdims=True)
    return np.divide(rc, var, out=np.zeros_like(rc), where=var > 0)


def risk_budget_weights(
    cov: np.ndarray,
    budgets: np.ndarray | None = None,
    active: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> np.ndarray:
    """Long-only weights whose relative risk contributions equal ``budgets``.

    Parameters
    ----------
    cov : ndarray, shape (..., n_assets, n_assets)
        Covariance (any positive scale; per-bar units are fine).
    budgets : ndarray, shape (n_assets,) or (..., n_assets), optional
        Non-negative risk budgets; ``None`` means equal risk contribution. They are
        renormalised to sum to 1 over the included assets (active and ``budget > 0``);
        assets with budget 0 get weight 0.
    active : ndarray of bool, shape (..., n_assets), optional
        Assets allowed in the portfolio (default: all).
    tol : float
        Stop when ``max_i |RC_i - b_i| <= tol`` (relative contributions).
    max_iter : int
        Newton iterations before :class:`SolverFailed` is raised.

    Returns
    -------
    ndarray, shape (..., n_assets)
        Weights summing to 1 (rows with no included asset are all zero).
    """
    cov = np.asarray(cov, float)
    lead, n = cov.shape[:-2], cov.shape[-1]
    S = cov.reshape(-1, n, n)
    n_b = S.shape[0]
    act = np.ones((n_b, n), bool) if active is None else np.broadcast_to(active, (*lead, n))
    act = np.asarray(act, bool).reshape(n_b, n)
    b = np.ones(n) if budgets is None else np.asarray(budgets, float)
    if (b < 0).any() or not np.isfinite(b).all():
        raise ConfigError(f"risk budgets {b}: must be finite and >= 0")
    b = np.broadcast_to(b, (*lead, n)).reshape(n_b, n)
    incl = act & (b > 0) & (np.diagonal(S, axis1=-2, axis2=-1) > 0)
    tot = np.where(incl, b, 0.0).sum(axis=-1, keepdims=True)
    bud = np.where(incl, b / np.where(tot > 0, tot, 1.0), 1.0)

    # Unit mean variance on the included block; excluded assets become decoupled unit
    # coordinates (identity rows) with budget 1, so they never influence the others.
    var = np.diagonal(S, axis1=-2, axis2=-1)
    scale = np.where(incl, var, 0.0).sum(-1) / np.maximum(incl.sum(-1), 1)
    scale = np.where(scale > 0, scale, 1.0)
    pair = incl[:, :, None] & incl[:, None, :]
    A = np.where(pair, S / scale[:, None, None], np.eye(n))

    def f(y: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            val = 0.5 * np.einsum("bi,bij,bj->b", y, A, y) - (bud * np.log(y)).sum(-1)
        return np.where((y > 0).all(-1), val, np.inf)

    y = 1.0 / np.sqrt(np.diagonal(A, axis1=-2, axis2=-1))
    y = y / np.sqrt(np.einsum("bi,bij,bj->b", y, A, y))[:, None]
    eye = np.eye(n)
    for _ in range(max_iter):
        Ay = np.einsum("bij,bj->bi", A, y)
        g = Ay - bud / y
        # y_i g_i = y_i (Ay)_i - b_i is the risk-contribution residual itself.
        resid = np.abs(y * g).max(-1)
        done = resid <= 0.25 * tol
        if done.all():
            break
        H = A + eye * (bud / y**2)[:, :, None]
        d = -np.linalg.solve(H, g[..., None])[..., 0]
        slope = (g * d).sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(d < 0, -y / d, np.inf).min(-1)
        t = np.minimum(1.0, 0.99 * ratio)
        f0 = f(y)
        for _ in range(60):
            cand = y + t[:, None] * d
            ok = f(cand) <= f0 + 1e-4 * t * slope
            # Close to the optimum rounding hides the decrease: take the step as is.
            # (the Newton decrement is below the resolution of f: quadratic region).
            ok |= (-slope < 1e-12 * np.maximum(1.0, np.abs(f0))) & (cand > 0).all(-1)
            if ok.all():
                break
            t = np.where(ok, t, 0.5 * t)
        # a converged row stays put: its weights do not depend on the other rows of the
        # batch (the env solves every bar of a split at once, serving one)
        y = np.where(done[:, None], y, y + t[:, None] * d)
    else:
        raise SolverFailed(
            f"risk budgeting: Newton did not reach tol {tol} in {max_iter} iterations "
            f"(max residual {resid.max():.3g}); the covariance may be singular on the "
            "included assets: use a shrunk (ledoit_wolf) covariance"
        )
    w = np.where(incl, y, 0.0)
    s = w.sum(-1, keepdims=True)
    w = np.divide(w, s, out=np.zeros_like(w), where=s > 0)
    return w.reshape((*lead, n))


def budget_vector(
    budgets: Mapping[str, float] | None, symbols: tuple[str, ...]
) -> np.ndarray | None:
    """Risk budgets aligned to ``symbols``, shape (n_assets,); ``None`` (equal risk) stays None.

    Parameters
    ----------
    budgets : mapping of str to float, optional
        Symbol -> risk budget (``baselines.risk_budget.budgets``); unlisted symbols get 0.
    symbols : tuple of str

    Raises
    ------
    ConfigError
        A budget names a symbol outside the universe.
    """
    if budgets is None:
        return None
    unknown = sorted(set(budgets) - set(symbols))
    if unknown:
        raise ConfigError(
            f"risk budgets name symbols {unknown} that are not in the universe; "
            "remove them or fix their spelling"
        )
    return np.array([float(budgets.get(s, 0.0)) for s in symbols])


class RiskBudgeting:
    """Risk parity (equal risk contribution) or user risk budgets, long-only.

    Parameters
    ----------
    params : ClassicConfig, optional
        Covariance estimator. Its ``max_weight`` is not applied: the weights are the exact
        risk-budget solution (a cap would break the budgets), which the gates cap.
    budget : RiskBudgetConfig, optional
        The risk budgets; equal risk contribution when omitted.

    Attributes
    ----------
    cov_ : ndarray, shape (n_envs, n_assets, n_assets)
    active_ : ndarray of bool, shape (n_envs, n_assets)
    weights_ : ndarray, shape (n_envs, n_assets)
    risk_contributions_ : ndarray, shape (n_envs, n_assets)
        Relative risk contributions of ``weights_`` under ``cov_``.
    """

    name = "risk_budgeting"

    def __init__(
        self, params: ClassicConfig | None = None, budget: RiskBudgetConfig | None = None
    ) -> None:
        self.params = (params or ClassicConfig()).resolved()
        self.budget = budget or RiskBudgetConfig()

    @classmethod
    def from_config(cls, section: BaselinesConfig) -> RiskBudgeting:
        """Build from ``cfg.baselines`` (``classic`` and ``risk_budget`` sub-sections)."""
        return cls(section.classic, section.risk_budget)

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Risk-budget weights, shape (n_envs, n_assets), rows summing to 1."""
        r = context_returns(ctx, self.name)
        p = self.params
        self.active_ = active_mask(r, MIN_VOL)
        self.cov_ = estimate_covariance(r, p.covariance, p.halflife)
        w = risk_budget_weights(
            self.cov_, budget_vector(self.budget.budgets, ctx.symbols), self.active_
        )
        self.weights_ = w
        self.risk_contributions_ = risk_contributions(w, self.cov_)
        return w
