"""Mean-variance QP allocator with an L1 trade cost: a cvxpy problem built once, re-solved by setting parameters.

Objective (one portfolio, weights ``w`` as fractions of equity)::

    maximize  z'w - lambda w'Sigma w - gamma ||C (w - w_cur)||_1 - kappa CVaR_beta(-R w)

subject to the constraint groups of :data:`CONSTRAINT_GROUPS` (budget, per-name cap,
long-only, gross, net, turnover, per-name turnover, beta, sector caps). ``Sigma`` enters
through a square-root factor ``Sigma = G'G + diag(d)`` so the problem is DPP: ``G`` and
``d`` are :class:`cvxpy.Parameter` values, ``lambda`` is folded into them, ``gamma`` into the
cost vector. Below ``factor_min_assets`` assets ``G`` is the (upper) Cholesky factor of
``Sigma`` (``d = 0``); from there on it is a statistical factor model ``B F B' + D`` with
``G = F^{1/2} B'`` the top ``n_factors`` principal components and ``D`` the residual
diagonal, so ``diag`` of the model equals ``diag(Sigma)``.

The CVaR term is Rockafellar–Uryasev over the trailing return rows as scenarios:
``CVaR = min_a a + sum_s max(0, -r_s'w - a) / ((1 - beta) S)``.

Solver statuses become :class:`~allocgym.errors.Infeasible` (the message names an
irreducible set of constraint groups found by LP feasibility probes) or
:class:`~allocgym.errors.SolverFailed`. :meth:`QPAllocator.allocate` never raises on
those: it walks a fallback chain (primary solver with fast settings, the same solver with
accurate settings, a second solver, HRP, the current book) and records every step in
``fallback_chain_``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cvxpy as cp
import numpy as np
import scipy.linalg
import scipy.sparse as sps

from allocgym import estimates
from allocgym.baselines.classic import project_box_simplex
from allocgym.baselines.hrp import HRP
from allocgym.config import QPConfig
from allocgym.errors import DataError, Infeasible, OptimizationError, SolverFailed
from allocgym.measures import cvar

if TYPE_CHECKING:
    from allocgym.allocator import AllocationContext
    from allocgym.config import RiskConfig

CONSTRAINT_GROUPS: tuple[str, ...] = (
    "budget",
    "per_name_cap",
    "long_only",
    "gross",
    "net",
    "turnover",
    "turnover_per_name",
    "beta",
    "sector",
    "frozen",
)
"""Constraint groups, in the order the infeasibility probe reports them. ``frozen`` pins
names without return variance in the window (untradable) at their current weight."""

_BOUND_GROUPS = ("per_name_cap", "long_only", "turnover_per_name", "frozen")
"""Groups that the re-solved problem folds into per-asset bound parameters."""

_CONFIG_KEY = {
    "budget": "baselines.qp.budget / budget_equality",
    "per_name_cap": "baselines.qp.per_name_cap",
    "long_only": "baselines.qp.long_only",
    "gross": "baselines.qp.max_gross",
    "net": "baselines.qp.max_net",
    "turnover": "baselines.qp.max_turnover",
    "turnover_per_name": "baselines.qp.max_turnover_per_name",
    "beta": "baselines.qp.beta_tolerance",
    "sector": "baselines.qp.sector_cap",
    "frozen": "the data window (names with zero variance are frozen)",
}

# Clarabel without iterative refinement is ~1.5x faster on these KKT systems; every
# solution is checked against the constraints anyway, and on failure the chain retries
# Clarabel with its accurate defaults (``_ACCURATE_OPTS``) before the second solver.
_SOLVER_OPTS: dict[str, dict[str, Any]] = {
    "CLARABEL": {"iterative_refinement_enable": False},
    "OSQP": {"eps_abs": 1e-9, "eps_rel": 1e-9, "polish": True, "max_iter": 200_000},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
    "ECOS": {},
    "HIGHS": {},
}
_ACCURATE_OPTS: dict[str, dict[str, Any]] = {"CLARABEL": {}}

__all__ = [
    "CONSTRAINT_GROUPS",
    "QPAllocator",
    "QPInputs",
    "QPProblem",
    "RiskSqrt",
    "constraint_limits",
    "diagnose_infeasible",
    "pair_correlations",
    "qp_objective",
    "qp_violations",
    "risk_sqrt",
]


# ----------------------------------------------------------------------------- limits


def constraint_limits(params: QPConfig) -> dict[str, str]:
    """Human-readable limit of each enabled constraint group (for error messages).

    Parameters
    ----------
    params : QPConfig
        A section with its limits resolved (:meth:`QPConfig.resolved`).
    """
    rel = "==" if params.budget_equality else "<="
    out = {
        "budget": f"sum w {rel} {params.budget:g}",
        "per_name_cap": f"|w_i| <= {params.per_name_cap:g}",
    }
    if params.long_only:
        out["long_only"] = "w_i >= 0"
    optional = {  # group -> (its limit, None when disabled; the constraint's text)
        "gross": (params.max_gross, "sum |w_i| <= {:g}"),
        "net": (params.max_net, "|sum w_i| <= {:g}"),
        "turnover": (params.max_turnover, "sum |w_i - w_cur,i| <= {:g}"),
        "turnover_per_name": (params.max_turnover_per_name, "|w_i - w_cur,i| <= {:g}"),
        "beta": (params.beta_tolerance, "|beta'w| <= {:g}"),
        "sector": (params.sector_cap, "sum_(i in sector) |w_i| <= {:g}"),
    }
    out.update({group: text.format(v) for group, (v, text) in optional.items() if v is not None})
    return out


# ----------------------------------------------------------------------------- risk model


@dataclass(frozen=True)
class RiskSqrt:
    """Square-root form of a risk matrix: ``Sigma = factors' factors + diag(resid)``.

    Attributes
    ----------
    factors : ndarray, shape (n_factors, n_assets)
        ``G``; the upper Cholesky factor (n_factors = n_assets) in the dense form.
    resid : ndarray, shape (n_assets,)
        Non-negative residual variances ``D`` (zeros in the dense form).
    factor_form : bool
        True for the factor model (the QP then carries the ``D`` term).
    """

    factors: np.ndarray
    resid: np.ndarray
    factor_form: bool = False

    def matrix(self) -> np.ndarray:
        """``Sigma``, shape (n_assets, n_assets)."""
        return self.factors.T @ self.factors + np.diag(self.resid)


def _sqrt_data(x: np.ndarray, params: QPConfig) -> tuple[np.ndarray, np.ndarray]:
    """``A`` (n_obs, n_assets) and diagonal ``s`` (n_assets,) with ``Sigma = A'A + diag(s)``.

    Uses :mod:`allocgym.estimates` for the shrinkage intensity and the EWMA weights, so the
    matrix equals ``estimates.sample_covariance`` / ``ledoit_wolf`` / ``ewma_covariance``;
    for ``dcc_garch`` ``A`` is a square root (``A'A = Sigma``) of the DCC-GARCH forecast.
    """
    n_obs, n_assets = x.shape
    if params.covariance == "dcc_garch":
        cov = estimates.estimate_covariance(x, "dcc_garch")
        vals, vecs = np.linalg.eigh(cov)
        a, s = (vecs * np.sqrt(np.clip(vals, 0.0, None))).T, np.zeros(n_assets)
    elif params.covariance == "sample":
        xc = x - x.mean(axis=0)
        a, s = xc / np.sqrt(n_obs - 1), np.zeros(n_assets)
    elif params.covariance == "ledoit_wolf":
        xc = x - x.mean(axis=0)
        shrink = float(estimates.ledoit_wolf_shrinkage(xc, assume_centered=True))
        # as estimates.ledoit_wolf: a constant column (no traded window) is left out
        live = (xc * xc).sum(axis=0) > 0.0
        mu = float((xc * xc).sum()) / (n_obs * max(int(live.sum()), 1))
        a, s = xc * np.sqrt((1.0 - shrink) / n_obs), np.where(live, shrink * mu, 0.0)
    else:
        wts = estimates.ewma_weights(n_obs, params.halflife)
        xc = x - wts @ x
        a, s = xc * np.sqrt(wts)[:, None], np.zeros(n_assets)
    if params.risk_model == "correlation":
        var = (a * a).sum(axis=0) + s
        std = np.sqrt(np.where(var > 0, var, 1.0))
        a, s = a / std, np.where(var > 0, s / (std * std), 1.0)
    return a, s


def risk_sqrt(returns: np.ndarray, params: QPConfig, factor_form: bool | None = None) -> RiskSqrt:
    """Square-root risk model of one return window.

    Parameters
    ----------
    returns : ndarray, shape (n_obs, n_assets)
    params : QPConfig
        ``covariance``, ``risk_model``, ``n_factors`` and ``factor_min_assets`` are used.
    factor_form : bool, optional
        Force the factor (True) or dense (False) form; default: factor form from
        ``factor_min_assets`` assets on.

    Returns
    -------
    RiskSqrt
        Unscaled (``lambda`` is applied by :class:`QPProblem`). A zero-variance asset gets
        zero risk in the covariance model and unit risk in the correlation model.
    """
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise DataError(
            f"QP risk model needs returns of shape (n_obs >= 2, n_assets); got {x.shape}."
        )
    n_obs, n_assets = x.shape
    if factor_form is None:
        factor_form = n_assets >= params.factor_min_assets
    a, s = _sqrt_data(x, params)
    n_obs = a.shape[0]  # rows of A: n_assets for the DCC-GARCH factor
    if factor_form:
        k = min(params.n_factors, n_assets, n_obs)
        # Only the top k eigenpairs are needed (LAPACK evr subset: ~2x faster than a full
        # eigh); work on the smaller Gram matrix.
        if n_obs <= n_assets:
            gram = a @ a.T
            lam, u = scipy.linalg.eigh(gram, subset_by_index=[n_obs - k, n_obs - 1], driver="evr")
            g = u[:, ::-1].T @ a
        else:
            gram = a.T @ a
            lam, v = scipy.linalg.eigh(
                gram, subset_by_index=[n_assets - k, n_assets - 1], driver="evr"
            )
            g = np.sqrt(np.clip(lam[::-1], 0.0, None))[:, None] * v[:, ::-1].T
        resid = np.clip((a * a).sum(axis=0) - (g * g).sum(axis=0), 0.0, None) + s
        return RiskSqrt(np.ascontiguousarray(g), resid, factor_form=True)
    sigma = a.T @ a + np.diag(s)
    try:
        g = np.linalg.cholesky(sigma).T
    except np.linalg.LinAlgError:
        lam, v = np.linalg.eigh(sigma)
        g = np.sqrt(np.clip(lam, 0.0, None))[:, None] * v.T
    return RiskSqrt(np.ascontiguousarray(g), np.zeros(n_assets))


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class QPInputs:
    """Everything one re-solve needs (one portfolio).

    Attributes
    ----------
    z : ndarray, shape (n_assets,)
        Risk-scaled scores.
    w_cur : ndarray, shape (n_assets,)
        Current book (fractions of equity).
    costs : ndarray, shape (n_assets,)
        Cost per unit of weight traded (decimal), ``C`` in the objective.
    risk : RiskSqrt
        ``Sigma`` in square-root form (unscaled).
    betas : ndarray, shape (n_assets,), optional
        Needed when the beta constraint is enabled.
    scenarios : ndarray, shape (n_scenarios, n_assets), optional
        Return scenarios for the CVaR term.
    frozen : ndarray of bool, shape (n_assets,), optional
        Names that may not trade (their weight stays ``w_cur``).
    excluded : ndarray of bool, shape (n_assets,), optional
        Names pinned to weight 0 (the pairwise-correlation cap's exclusions).
    """

    z: np.ndarray
    w_cur: np.ndarray
    costs: np.ndarray
    risk: RiskSqrt
    betas: np.ndarray | None = None
    scenarios: np.ndarray | None = None
    frozen: np.ndarray | None = None
    excluded: np.ndarray | None = None

    def bounds(self, params: QPConfig) -> tuple[np.ndarray, np.ndarray]:
        """Per-asset bounds ``(lower, upper)`` implied by the cap, long-only, per-name
        turnover and frozen names, shape (n_assets,) each (lower > upper = infeasible)."""
        n = self.w_cur.size
        lower = np.full(n, 0.0 if params.long_only else -params.per_name_cap)
        upper = np.full(n, params.per_name_cap)
        if params.max_turnover_per_name is not None:
            lower = np.maximum(lower, self.w_cur - params.max_turnover_per_name)
            upper = np.minimum(upper, self.w_cur + params.max_turnover_per_name)
        if self.frozen is not None:
            # pinned at w_cur, still inside the cap: a frozen name outside it is infeasible
            lower = np.where(self.frozen, np.maximum(lower, self.w_cur), lower)
            upper = np.where(self.frozen, np.minimum(upper, self.w_cur), upper)
        if self.excluded is not None:
            lower = np.where(self.excluded, 0.0, lower)
            upper = np.where(self.excluded, 0.0, upper)
        return lower, upper


def qp_objective(w: np.ndarray, inputs: QPInputs, params: QPConfig) -> float:
    """Objective value of ``w`` (numpy, independent of cvxpy)."""
    g, d = inputs.risk.factors, inputs.risk.resid
    gw = g @ w
    risk = float(gw @ gw + (d * w) @ w)
    val = float(inputs.z @ w) - params.lambda_risk * risk
    val -= params.gamma_cost * float(inputs.costs @ np.abs(w - inputs.w_cur))
    if params.cvar_weight > 0 and inputs.scenarios is not None:
        # measures.cvar is the minimum of the Rockafellar-Uryasev function (same CVaR)
        val -= params.cvar_weight * float(cvar(inputs.scenarios @ w, params.cvar_beta))
    return val


def qp_violations(
    w: np.ndarray, inputs: QPInputs, params: QPConfig, sector_ids: np.ndarray
) -> dict[str, float]:
    """Largest violation of each enabled constraint group (0 when satisfied).

    Returns
    -------
    dict
        Group name -> max(0, lhs - limit) in weight units.
    """
    out: dict[str, float] = {}
    total = float(w.sum())
    out["budget"] = (
        abs(total - params.budget) if params.budget_equality else max(0.0, total - params.budget)
    )
    out["per_name_cap"] = max(0.0, float(np.abs(w).max()) - params.per_name_cap)
    if params.long_only:
        out["long_only"] = max(0.0, float(-w.min()))
    if params.max_gross is not None:
        out["gross"] = max(0.0, float(np.abs(w).sum()) - params.max_gross)
    if params.max_net is not None:
        out["net"] = max(0.0, abs(total) - params.max_net)
    trade = np.abs(w - inputs.w_cur)
    if params.max_turnover is not None:
        out["turnover"] = max(0.0, float(trade.sum()) - params.max_turnover)
    if params.max_turnover_per_name is not None:
        out["turnover_per_name"] = max(0.0, float(trade.max()) - params.max_turnover_per_name)
    if params.beta_tolerance is not None and inputs.betas is not None:
        out["beta"] = max(0.0, abs(float(inputs.betas @ w)) - params.beta_tolerance)
    has_sector = sector_ids >= 0  # NO_SECTOR names are in no sector
    if params.sector_cap is not None and has_sector.any():
        sector_gross = np.bincount(sector_ids[has_sector], weights=np.abs(w[has_sector]))
        out["sector"] = max(0.0, float(sector_gross.max()) - params.sector_cap)
    if inputs.frozen is not None and inputs.frozen.any():
        out["frozen"] = float(trade[inputs.frozen].max())
    return out


# ----------------------------------------------------------------------------- problem


def _sector_matrix(sector_ids: np.ndarray) -> sps.csr_matrix:
    """(n_sectors, n_assets) membership; names with ``NO_SECTOR`` (-1) are in no row."""
    n = sector_ids.size
    cols = np.flatnonzero(sector_ids >= 0)
    n_sectors = int(sector_ids[cols].max()) + 1 if cols.size else 0
    return sps.csr_matrix((np.ones(cols.size), (sector_ids[cols], cols)), shape=(n_sectors, n))


def _constraints(
    params: QPConfig,
    groups: tuple[str, ...],
    w: cp.Variable,
    w_cur: Any,
    betas: Any,
    sector_ids: np.ndarray,
    trade_abs: cp.Variable | None,
    frozen: np.ndarray | None = None,
) -> list[cp.Constraint]:
    """cvxpy constraints of the named groups (shared by the QP and the feasibility probe)."""
    cons: list[cp.Constraint] = []
    if "frozen" in groups and frozen is not None and frozen.any():
        idx = np.flatnonzero(frozen)
        cons.append(w[idx] == np.asarray(w_cur)[idx])
    if params.long_only:
        absw = w
    else:
        absw = cp.Variable(w.shape[0], name="abs_w")
        cons += [absw >= w, absw >= -w]
    total = cp.sum(w)
    if "budget" in groups:
        cons.append(total == params.budget if params.budget_equality else total <= params.budget)
    if "per_name_cap" in groups:
        cons.append(w <= params.per_name_cap)
        if not params.long_only:
            cons.append(w >= -params.per_name_cap)
    if "long_only" in groups and params.long_only:
        cons.append(w >= 0)
    if "gross" in groups and params.max_gross is not None:
        cons.append(cp.sum(absw) <= params.max_gross)
    if "net" in groups and params.max_net is not None:
        cons += [total <= params.max_net, total >= -params.max_net]
    need_trade = any(
        g in groups and getattr(params, k) is not None
        for g, k in (("turnover", "max_turnover"), ("turnover_per_name", "max_turnover_per_name"))
    )
    if need_trade or trade_abs is not None:
        if trade_abs is None:
            trade_abs = cp.Variable(w.shape[0], name="abs_trade")
        cons += [trade_abs >= w - w_cur, trade_abs >= w_cur - w]
        if "turnover" in groups and params.max_turnover is not None:
            cons.append(cp.sum(trade_abs) <= params.max_turnover)
        if "turnover_per_name" in groups and params.max_turnover_per_name is not None:
            cons.append(trade_abs <= params.max_turnover_per_name)
    if "beta" in groups and params.beta_tolerance is not None:
        exposure = betas @ w
        cons += [exposure <= params.beta_tolerance, exposure >= -params.beta_tolerance]
    if "sector" in groups and params.sector_cap is not None and (sector_ids >= 0).any():
        cons.append(_sector_matrix(sector_ids) @ absw <= params.sector_cap)
    return cons


class QPProblem:
    """The QP of one universe, built once; :meth:`solve` only sets parameter values.

    Parameters
    ----------
    params : QPConfig
    sector_ids : ndarray of int, shape (n_assets,)
    n_factors : int
        Rows of ``G``: ``n_assets`` for the dense (Cholesky) form.
    factor_form : bool
        Adds the residual diagonal term ``sum_squares(sqrt(lambda d) * w)``.
    n_scenarios : int
        CVaR scenarios (0 leaves the term out).
    """

    def __init__(
        self,
        params: QPConfig,
        sector_ids: np.ndarray,
        n_factors: int,
        factor_form: bool,
        n_scenarios: int = 0,
    ) -> None:
        n = int(sector_ids.size)
        self.params = params
        self.sector_ids = np.asarray(sector_ids, dtype=np.intp)
        self.n_assets = n
        self.factor_form = factor_form
        self.n_scenarios = n_scenarios
        self.w = cp.Variable(n, name="w")
        self.z = cp.Parameter(n, name="z")
        self.w_cur = cp.Parameter(n, name="w_cur")
        self.cost = cp.Parameter(n, nonneg=True, name="gamma_cost")
        self.g = cp.Parameter((n_factors, n), name="sqrt_lambda_G")
        self.betas = cp.Parameter(n, name="betas") if params.beta_tolerance is not None else None
        trade_abs = cp.Variable(n, name="abs_trade")
        objective = self.z @ self.w - cp.sum_squares(self.g @ self.w) - self.cost @ trade_abs
        self.d = None
        if factor_form:
            self.d = cp.Parameter(n, nonneg=True, name="sqrt_lambda_D")
            objective = objective - cp.sum_squares(cp.multiply(self.d, self.w))
        # Cap, long-only, per-name turnover and frozen names are one pair of bound rows
        # whose values are set per solve (fewer rows, and frozen names need no rebuild).
        self.lower = cp.Parameter(n, name="lower")
        self.upper = cp.Parameter(n, name="upper")
        groups = tuple(g for g in CONSTRAINT_GROUPS if g not in _BOUND_GROUPS)
        cons = _constraints(
            params, groups, self.w, self.w_cur, self.betas, self.sector_ids, trade_abs
        )
        cons += [self.w >= self.lower, self.w <= self.upper]
        self.scenarios = None
        if n_scenarios > 0:
            self.scenarios = cp.Parameter((n_scenarios, n), name="scenarios")
            var_level = cp.Variable(name="var_level")
            excess = cp.Variable(n_scenarios, nonneg=True, name="excess_loss")
            cons.append(excess >= -self.scenarios @ self.w - var_level)
            cvar_term = var_level + cp.sum(excess) / ((1.0 - params.cvar_beta) * n_scenarios)
            objective = objective - params.cvar_weight * cvar_term
        self.problem = cp.Problem(cp.Maximize(objective), cons)
        assert self.problem.is_dpp(), "QP must be DPP so re-solves skip canonicalisation"
        self.n_solves = 0

    def set_inputs(self, inputs: QPInputs) -> None:
        """Set every parameter value from ``inputs`` (lambda and gamma folded in)."""
        p = self.params
        self.z.value = inputs.z
        self.w_cur.value = inputs.w_cur
        self.lower.value, self.upper.value = inputs.bounds(p)
        self.cost.value = p.gamma_cost * inputs.costs
        root = np.sqrt(p.lambda_risk)
        self.g.value = root * inputs.risk.factors
        if self.d is not None:
            self.d.value = root * np.sqrt(inputs.risk.resid)
        if self.betas is not None:
            if inputs.betas is None:
                raise DataError(
                    "QP beta constraint is enabled (baselines.qp.beta_tolerance) but no betas "
                    "were given; pass ctx.betas or ctx.benchmark_returns, or disable it."
                )
            self.betas.value = inputs.betas
        if self.scenarios is not None:
            if inputs.scenarios is None or inputs.scenarios.shape[0] != self.n_scenarios:
                raise DataError(f"QP CVaR term needs {self.n_scenarios} scenario rows of returns.")
            self.scenarios.value = inputs.scenarios

    def solve(
        self, inputs: QPInputs, solver: str, opts: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Set values and solve; raise on anything but a verified optimum.

        ``opts`` are solver settings (default: the fast settings of ``_SOLVER_OPTS``).

        Returns
        -------
        w : ndarray, shape (n_assets,)
        info : dict
            ``status``, ``objective`` (numpy re-evaluation), ``solve_time`` (s),
            ``violations`` (per group).

        Raises
        ------
        Infeasible
            The solver proved infeasibility; the message names the constraint groups.
        SolverFailed
            Any other non-optimal outcome, or an optimum violating a constraint by > 1e-6.
        """
        self.set_inputs(inputs)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                settings = _SOLVER_OPTS.get(solver, {}) if opts is None else opts
                # no warm start: the same bits whatever was solved before
                self.problem.solve(solver=solver, warm_start=False, **settings)
        except cp.error.SolverError as err:
            raise SolverFailed(
                f"QP solver {solver} failed on {self.n_assets} assets: {err}. "
                "Try another baselines.qp.solver or loosen the constraints."
            ) from err
        elapsed = time.perf_counter() - start
        self.n_solves += 1
        status = self.problem.status
        if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            groups = diagnose_infeasible(self.params, inputs, self.sector_ids)
            if not groups:
                raise SolverFailed(
                    f"QP solver {solver} reported {status} but every constraint group is "
                    "jointly feasible in an LP probe: numerical trouble; try another solver."
                )
            raise Infeasible(_infeasible_message(self.params, groups, self.n_assets))
        w = self.w.value
        if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or w is None:
            raise SolverFailed(
                f"QP solver {solver} stopped with status {status!r} on {self.n_assets} assets; "
                "try another baselines.qp.solver."
            )
        w = np.asarray(w, dtype=np.float64).copy()
        viol = qp_violations(w, inputs, self.params, self.sector_ids)
        worst = max(viol, key=viol.__getitem__)
        if viol[worst] > 1e-6:
            raise SolverFailed(
                f"QP solver {solver} returned {status!r} but constraint group {worst!r} "
                f"({constraint_limits(self.params).get(worst, '')}) is violated by {viol[worst]:.3g}; "
                "try another baselines.qp.solver."
            )
        # Snap the solver's tolerance (a -3e-11 long-only name, 1e-10 over the cap or the
        # budget) onto the bounds and the budget exactly, as the other optimisers do: the
        # gates would clip that dust and code it as the QP's own breach.
        lower, upper = inputs.bounds(self.params)
        if self.params.budget_equality or w.sum() > self.params.budget:
            w = project_box_simplex(w, lower, upper, self.params.budget)
        else:
            w = np.clip(w, lower, upper)
        info = {
            "status": status,
            "objective": qp_objective(w, inputs, self.params),
            "solve_time": elapsed,
            "violations": viol,
        }
        return w, info


def _infeasible_message(params: QPConfig, groups: list[str], n_assets: int) -> str:
    limits = {
        **constraint_limits(params),
        "frozen": "w_i == w_cur,i for names with zero return variance",
    }
    parts = "; ".join(f"{g} ({limits.get(g, '')})" for g in groups)
    keys = ", ".join(_CONFIG_KEY[g] for g in groups)
    return (
        f"QP infeasible on {n_assets} assets: constraint groups [{', '.join(groups)}] cannot "
        f"hold together: {parts}. Relax one of {keys}."
    )


def _probe_feasible(
    params: QPConfig, groups: tuple[str, ...], inputs: QPInputs, sector_ids: np.ndarray
) -> bool:
    w = cp.Variable(inputs.z.size)
    cons = _constraints(
        params, groups, w, inputs.w_cur, inputs.betas, sector_ids, None, inputs.frozen
    )
    prob = cp.Problem(cp.Minimize(0), cons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for solver in ("HIGHS", "CLARABEL"):
            try:
                prob.solve(solver=solver)
            except cp.error.SolverError:
                continue
            if prob.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
                return True
            if prob.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
                return False
    return True


def diagnose_infeasible(params: QPConfig, inputs: QPInputs, sector_ids: np.ndarray) -> list[str]:
    """An irreducible infeasible set of constraint groups (deletion filter over LP probes).

    Starting from every enabled group, each group is dropped in turn and kept out when the
    rest is still infeasible. What remains is infeasible, and removing any one of its
    groups makes it feasible. Empty when all groups together are feasible.

    Returns
    -------
    list of str
        Group names from :data:`CONSTRAINT_GROUPS`.
    """
    enabled = [g for g in CONSTRAINT_GROUPS if g in constraint_limits(params)]
    if params.beta_tolerance is not None and inputs.betas is None:
        enabled.remove("beta")
    if inputs.frozen is not None and inputs.frozen.any():
        enabled.append("frozen")
    if _probe_feasible(params, tuple(enabled), inputs, sector_ids):
        return []
    core = list(enabled)
    for g in enabled:
        trial = tuple(x for x in core if x != g)
        if not _probe_feasible(params, trial, inputs, sector_ids):
            core = list(trial)
    return core


# ----------------------------------------------------------------------------- allocator


@dataclass
class _Cache:
    key: tuple = ()
    problem: QPProblem | None = None
    extra: dict[str, QPProblem] = field(default_factory=dict)


class QPAllocator:
    """The QP as an :class:`~allocgym.allocator.Allocator`.

    Parameters
    ----------
    params : QPConfig, optional
        The ``baselines.qp`` section; limits left unset (None) take the default ``risk``
        section's values (:meth:`QPConfig.resolved`).
    hrp : HRP, optional
        The HRP fallback (default settings when omitted).

    Attributes
    ----------
    weights_ : ndarray, shape (n_envs, n_assets)
        Weights of the last :meth:`allocate` call.
    source_ : list of str
        Per portfolio, what produced its weights: ``"qp:<SOLVER>"``,
        ``"qp:<SOLVER>:accurate"`` (retry with accurate settings), ``"hrp"`` or
        ``"current_book"``.
    fallback_chain_ : list of list of (str, str)
        Per portfolio, every step tried, in order, with its outcome (``"optimal"``,
        ``"infeasible: ..."``, ``"failed: ..."``, ``"skipped: ..."``, ``"ok"``).
    objective_ : ndarray, shape (n_envs,)
        Objective of the QP solution (NaN where a fallback produced the weights).
    solve_time_ : ndarray, shape (n_envs,)
        Seconds spent in cvxpy's solve for the accepted QP solution (NaN otherwise).
    inputs_ : list of QPInputs
        The inputs each portfolio was solved with (for audit and reference solves).
    factor_form_ : bool
        Whether the last call used the factor form.
    """

    name = "qp"

    def __init__(self, params: QPConfig | None = None, hrp: HRP | None = None) -> None:
        self.params = (params or QPConfig()).resolved()
        self.hrp = hrp or HRP()
        self._cache = _Cache()
        self._warned: set[int] = set()  # universe sizes whose budget cannot be met

    @classmethod
    def from_config(
        cls, cfg: QPConfig, hrp: HRP | None = None, risk: RiskConfig | None = None
    ) -> QPAllocator:
        """From ``baselines.qp``; with ``risk`` its unset limits come from that section
        (:meth:`QPConfig.within`), else from the default one.

        Raises
        ------
        ConfigError
            A limit set looser than the ``risk`` one.
        """
        return cls(cfg if risk is None else cfg.within(risk), hrp=hrp)

    @property
    def primary_source(self) -> str:
        """``source_`` of an ordinary solve (every other value is a fallback stage)."""
        return f"qp:{self.params.solver}"

    # -- problem cache --------------------------------------------------------------

    def problem_for(
        self, sector_ids: np.ndarray, inputs: QPInputs, solver: str | None = None
    ) -> QPProblem:
        """The cached :class:`QPProblem` for this universe and input layout.

        Built on first use and rebuilt only when the universe, the risk-model form, the
        number of factors or the number of CVaR scenarios changes. Every other ``solver``
        label (a second solver, or ``"<SOLVER>:accurate"``) gets its own copy: cvxpy keeps
        the solver object, and its settings, per problem.
        """
        p = self.params
        n = int(sector_ids.size)
        factor_form = inputs.risk.factor_form
        k = int(inputs.risk.factors.shape[0])
        n_scen = (
            int(inputs.scenarios.shape[0])
            if p.cvar_weight > 0 and inputs.scenarios is not None
            else 0
        )
        key = (n, sector_ids.tobytes(), factor_form, k, n_scen)
        if self._cache.key != key:
            self._cache = _Cache(key=key)
        if solver is None or solver == p.solver:
            if self._cache.problem is None:
                self._cache.problem = QPProblem(p, sector_ids, k, factor_form, n_scen)
            return self._cache.problem
        if solver not in self._cache.extra:
            self._cache.extra[solver] = QPProblem(p, sector_ids, k, factor_form, n_scen)
        return self._cache.extra[solver]

    def inputs_from(self, ctx: AllocationContext, env: int) -> QPInputs:
        """Build one portfolio's :class:`QPInputs` from an allocation context."""
        p = self.params
        x = np.asarray(ctx.returns[env], dtype=np.float64)
        n_obs, n = x.shape
        z = np.zeros(n) if ctx.scores is None else np.asarray(ctx.scores[env], dtype=np.float64)
        z = np.where(np.isfinite(z), z, 0.0)
        costs = (
            np.full(n, p.default_cost)
            if ctx.costs is None
            else np.asarray(ctx.costs[env], dtype=np.float64)
        )
        betas = None
        if p.beta_tolerance is not None:
            if ctx.betas is not None:
                betas = np.asarray(ctx.betas[env], dtype=np.float64)
            elif ctx.benchmark_returns is not None:
                betas = _betas(x, np.asarray(ctx.benchmark_returns[env], dtype=np.float64))
        scenarios = x[-min(p.cvar_scenarios, n_obs) :] if p.cvar_weight > 0 else None
        # No return variance in the window = untradable (returns are 0 there): frozen.
        flat = ~(x.std(axis=0) > 0)
        return QPInputs(
            frozen=flat if flat.any() else None,
            z=z,
            w_cur=np.asarray(ctx.current_weights[env], dtype=np.float64),
            costs=costs,
            risk=risk_sqrt(x, p),
            betas=betas,
            scenarios=scenarios,
        )

    def solve(
        self, inputs: QPInputs, sector_ids: np.ndarray, solver: str | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Solve one portfolio with one solver (no fallback); raises Infeasible / SolverFailed."""
        solver = solver or self.params.solver
        problem = self.problem_for(np.asarray(sector_ids, dtype=np.intp), inputs, solver)
        return problem.solve(inputs, solver)

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """QP weights per portfolio, with the fallback chain on failure.

        Each portfolio is an independent re-solve of the same cached problem.

        Returns
        -------
        ndarray, shape (ctx.n_envs, ctx.n_assets)
        """
        p = self.params
        sector_ids = np.asarray(ctx.sector_ids, dtype=np.intp)
        n_envs, _, n = np.shape(ctx.returns)
        if p.budget_equality and p.budget > n * p.per_name_cap and n not in self._warned:
            self._warned.add(n)
            warnings.warn(
                f"qp: budget {p.budget:g} needs more than {n} names x per-name cap "
                f"{p.per_name_cap:g} = {n * p.per_name_cap:g} can hold, so every solve is "
                "infeasible and served by the fallback (HRP): lower baselines.qp.budget, "
                "set baselines.qp.budget_equality=false or raise the cap (risk.max_symbol_weight)",
                UserWarning,
                stacklevel=2,
            )
        out = np.zeros((n_envs, n))
        self.source_ = []
        self.fallback_chain_ = []
        self.objective_ = np.full(n_envs, np.nan)
        self.solve_time_ = np.full(n_envs, np.nan)
        self.inputs_ = []
        self.factor_form_ = n >= p.factor_min_assets
        # (step label, solver, settings): fast primary, accurate primary, second solver
        steps: list[tuple[str, str, dict[str, Any] | None]] = [(f"qp:{p.solver}", p.solver, None)]
        if p.solver in _ACCURATE_OPTS:
            steps.append((f"qp:{p.solver}:accurate", p.solver, _ACCURATE_OPTS[p.solver]))
        if p.fallback_solver and p.fallback_solver != p.solver:
            steps.append((f"qp:{p.fallback_solver}", p.fallback_solver, None))
        self.excluded_ = np.zeros((n_envs, n), dtype=bool)
        for e in range(n_envs):
            chain: list[tuple[str, str]] = []
            inputs = self.inputs_from(ctx, e)
            solved = self._solve_chain(inputs, sector_ids, steps, chain)
            if solved is not None and p.max_pair_correlation is not None:
                inputs, solved = self._correlation_cap(
                    ctx.returns[e], inputs, solved, sector_ids, steps, chain
                )
            self.inputs_.append(inputs)
            if solved is None:
                w = self._fallback(ctx, e, chain)
            else:
                w, label, info = solved
                self.source_.append(label)
                self.objective_[e] = info["objective"]
                self.solve_time_[e] = info["solve_time"]
                if inputs.excluded is not None:
                    self.excluded_[e] = inputs.excluded
            out[e] = w
            self.fallback_chain_.append(chain)
        self.weights_ = out
        return out

    def _solve_chain(
        self,
        inputs: QPInputs,
        sector_ids: np.ndarray,
        steps: list[tuple[str, str, dict[str, Any] | None]],
        chain: list[tuple[str, str]],
    ) -> tuple[np.ndarray, str, dict[str, Any]] | None:
        infeasible = False
        for label, solver, opts in steps:
            if infeasible:
                chain.append((label, "skipped: infeasible (another solver cannot help)"))
                continue
            problem = self.problem_for(sector_ids, inputs, label.removeprefix("qp:"))
            try:
                w, info = problem.solve(inputs, solver, opts)
            except Infeasible as err:
                infeasible = True
                chain.append((label, f"infeasible: {err}"))
                continue
            except (SolverFailed, DataError) as err:
                chain.append((label, f"failed: {err}"))
                continue
            chain.append((label, str(info["status"])))
            return w, label, info
        return None

    def _correlation_cap(
        self,
        returns: np.ndarray,
        inputs: QPInputs,
        solved: tuple[np.ndarray, str, dict[str, Any]],
        sector_ids: np.ndarray,
        steps: list[tuple[str, str, dict[str, Any] | None]],
        chain: list[tuple[str, str]],
    ) -> tuple[QPInputs, tuple[np.ndarray, str, dict[str, Any]]]:
        """Iterative exclusion: while two held names correlate above the cap, pin the one
        with the smaller |weight| (the later one when they are within 1e-6) to 0 and
        re-solve. A re-solve that fails keeps the last solution, which breaks the cap: it
        is recorded in the chain and labelled ``<label>:correlation_cap_failed``, a
        fallback stage the evaluation counts."""
        cap = self.params.max_pair_correlation
        assert cap is not None
        corr = pair_correlations(np.asarray(returns, dtype=np.float64))
        excluded = np.zeros(corr.shape[0], dtype=bool)
        while True:
            w = solved[0]
            held = np.abs(w) > _HELD
            pairs = np.where(held[:, None] & held[None, :], corr, -np.inf)
            np.fill_diagonal(pairs, -np.inf)
            i, j = np.unravel_index(int(np.argmax(pairs)), pairs.shape)
            if not pairs[i, j] > cap:
                return inputs, solved
            wi, wj = abs(w[i]), abs(w[j])
            if abs(wi - wj) <= _HELD:  # a tie (e.g. both at the cap): the later name
                drop = int(max(i, j))
            else:
                drop = int(i) if wi < wj else int(j)
            excluded[drop] = True
            trial = QPInputs(**{**inputs.__dict__, "excluded": excluded.copy()})
            sub: list[tuple[str, str]] = []
            again = self._solve_chain(trial, sector_ids, steps, sub)
            what = f"exclude name {drop} (correlation {pairs[i, j]:.3f} > {cap:g})"
            if again is None:
                chain.append(("correlation_cap", f"failed: {what}; kept the previous book"))
                return inputs, (solved[0], f"{solved[1]}:correlation_cap_failed", solved[2])
            chain.append(("correlation_cap", what))
            chain.extend(sub)
            inputs, solved = trial, again

    def _fallback(
        self, ctx: AllocationContext, env: int, chain: list[tuple[str, str]]
    ) -> np.ndarray:
        x = np.asarray(ctx.returns[env], dtype=np.float64)
        ok = x.std(axis=0) > 0
        try:
            if not ok.any():
                raise DataError("no asset has positive variance in the window")
            w = np.zeros(x.shape[1])
            w[ok] = self.hrp.fit(x if ok.all() else x[:, ok]).weights_ * self.params.budget
            chain.append(("hrp", "ok"))
            self.source_.append("hrp")
            return w
        except (OptimizationError, DataError) as err:
            chain.append(("hrp", f"failed: {err}"))
        chain.append(("current_book", "ok"))
        self.source_.append("current_book")
        return np.asarray(ctx.current_weights[env], dtype=np.float64).copy()


_HELD = 1e-6
"""|weight| above which a name counts as held (the correlation cap's scope)."""


def pair_correlations(returns: np.ndarray) -> np.ndarray:
    """Pearson correlations of a window's columns, shape (n_assets, n_assets); 0 for a
    column without variance (it is never held anyway)."""
    x = returns - returns.mean(axis=0)
    sd = np.sqrt((x**2).sum(axis=0))
    z = np.divide(x, sd, out=np.zeros_like(x), where=sd > 0)
    return z.T @ z


def _betas(returns: np.ndarray, bench: np.ndarray) -> np.ndarray:
    """OLS betas of each asset on the benchmark over the window, shape (n_assets,)."""
    b = bench - bench.mean()
    var = float(b @ b)
    if var <= 0:
        return np.zeros(returns.shape[1])
    return (returns - returns.mean(axis=0)).T @ b / var
