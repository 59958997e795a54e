"""Minimum-CVaR portfolio: the Rockafellar–Uryasev linear program on historical scenarios.

For scenario returns ``R`` (shape ``(n_scenarios, n_assets)``, equally likely) and
confidence ``alpha``::

    min_{w, v, u}  v + 1 / ((1 - alpha) n_scenarios) * sum(u)
    s.t.           u >= -R w - v,  u >= 0,  sum(w) = 1,  lower <= w <= upper

At the optimum ``v`` is a VaR and the objective equals the historical CVaR of ``R w`` as
defined by :func:`allocgym.measures.cvar` (skfolio's definition), so no portfolio feasible
under the same bounds has a lower scenario CVaR. The LP is built once per shape with cvxpy
``Parameter``s; each portfolio only sets values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cvxpy as cp
import numpy as np

from allocgym.allocator import AllocationContext
from allocgym.baselines.classic import (
    project_box_simplex,
    scenario_inputs,
    solve_problem,
)
from allocgym.config import ClassicConfig, MinCVaRConfig
from allocgym.errors import ConfigError
from allocgym.measures import cvar

if TYPE_CHECKING:
    from allocgym.config import BaselinesConfig

__all__ = ["MinimumCVaR", "min_cvar_weights"]


class _MinCVaRProblem:
    """Rockafellar–Uryasev LP for a fixed (n_scenarios, n_assets, alpha)."""

    def __init__(self, n_scenarios: int, n_assets: int, alpha: float) -> None:
        self.R = cp.Parameter((n_scenarios, n_assets))
        self.lo = cp.Parameter(n_assets)
        self.hi = cp.Parameter(n_assets)
        self.w = cp.Variable(n_assets)
        self.v = cp.Variable()
        self.u = cp.Variable(n_scenarios, nonneg=True)
        k = 1.0 / ((1.0 - alpha) * n_scenarios)
        self.problem = cp.Problem(
            cp.Minimize(self.v + k * cp.sum(self.u)),
            [
                self.u >= -self.R @ self.w - self.v,
                cp.sum(self.w) == 1,
                self.w >= self.lo,
                self.w <= self.hi,
            ],
        )
        assert self.problem.is_dcp(dpp=True)

    def solve(
        self, scenarios: np.ndarray, lo: np.ndarray, hi: np.ndarray, solver: str | None
    ) -> np.ndarray:
        self.R.value = scenarios
        self.lo.value = lo
        self.hi.value = hi
        solve_problem(self.problem, solver, "min-CVaR (budget, bounds)")
        return project_box_simplex(np.asarray(self.w.value, float), lo, hi)


def _lp_solver(solver: str | None) -> str | None:
    # HiGHS returns vertex solutions of LPs (exact up to its feasibility tolerance).
    if solver is None and "HIGHS" in cp.installed_solvers():
        return "HIGHS"
    return solver


def min_cvar_weights(
    scenarios: np.ndarray,
    alpha: float = 0.95,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    solver: str | None = None,
) -> np.ndarray:
    """Fully-invested weights minimising historical CVaR at level ``alpha``.

    Parameters
    ----------
    scenarios : ndarray, shape (n_scenarios, n_assets)
        Equally likely scenario returns (decimal, per bar).
    alpha : float
        Confidence level in (0, 1).
    lower, upper : ndarray, shape (n_assets,), optional
        Bounds; default long-only ``0 <= w <= 1``.
    solver : str, optional
        cvxpy solver (default HiGHS when installed).

    Returns
    -------
    ndarray, shape (n_assets,)
    """
    r = np.asarray(scenarios, float)
    t, n = r.shape
    if not (0 < alpha < 1):
        raise ConfigError(f"min-CVaR alpha = {alpha}: must be in (0, 1)")
    lo = np.zeros(n) if lower is None else np.clip(np.asarray(lower, float), -10.0, 10.0)
    hi = np.ones(n) if upper is None else np.clip(np.asarray(upper, float), -10.0, 10.0)
    return _MinCVaRProblem(t, n, alpha).solve(r, lo, hi, _lp_solver(solver))


class MinimumCVaR:
    """Minimum historical CVaR over the trailing return window (one LP per portfolio).

    Parameters
    ----------
    params : ClassicConfig, optional
        Covariance-free settings shared with the classic allocators (bounds, solver;
        limits left unset take the default ``risk`` values).
    cvar : MinCVaRConfig, optional
        CVaR confidence level and scenario window; the defaults when omitted.

    Attributes
    ----------
    active_ : ndarray of bool, shape (n_envs, n_assets)
    weights_ : ndarray, shape (n_envs, n_assets)
    cvar_ : ndarray, shape (n_envs,)
        Historical CVaR (positive loss) of ``weights_`` on the scenarios used.
    """

    name = "min_cvar"

    def __init__(
        self, params: ClassicConfig | None = None, cvar: MinCVaRConfig | None = None
    ) -> None:
        self.params = (params or ClassicConfig()).resolved()
        self.cvar = cvar or MinCVaRConfig()
        self._problems: dict[tuple[int, int], _MinCVaRProblem] = {}

    @classmethod
    def from_config(cls, section: BaselinesConfig) -> MinimumCVaR:
        """Build from ``cfg.baselines`` (``classic`` and ``min_cvar`` sub-sections)."""
        return cls(section.classic, section.min_cvar)

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Minimum-CVaR weights, shape (n_envs, n_assets), rows summing to 1."""
        p = self.params
        r, active, lo, hi = scenario_inputs(ctx, self.name, p, self.cvar.window)
        key = (r.shape[1], r.shape[2])
        if key not in self._problems:
            self._problems[key] = _MinCVaRProblem(*key, self.cvar.alpha)
        prob = self._problems[key]
        out = np.zeros((ctx.n_envs, ctx.n_assets))
        for b in np.flatnonzero(active.any(axis=-1)):
            out[b] = prob.solve(r[b], lo[b], hi[b], _lp_solver(p.solver))
        self.active_ = active
        self.weights_ = out
        self.cvar_ = np.asarray(cvar(np.einsum("btn,bn->bt", r, out), self.cvar.alpha))
        return out
