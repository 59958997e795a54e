"""Multi-objective Pareto allocator: expected return, CVaR, drawdown and liquidity cost.

Four objectives of a fully invested book ``w`` on the trailing window's scenario returns
``R`` (shape ``(n_scenarios, n_assets)``, oldest first, equally likely), all per bar and
in decimal units:

* **expected return** ``mu'w`` with ``mu`` the window's mean return (maximised);
* **CVaR** at ``alpha`` of the scenario P&L ``R w`` (Rockafellar–Uryasev; equal to
  :func:`allocgym.measures.cvar`);
* **drawdown proxy**: the largest peak-to-trough fall of the cumulated (summed, not
  compounded) scenario P&L, starting from 0 (:func:`drawdown_proxy`; an LP through a
  running-peak variable, Chekhlov, Uryasev & Zabarankin 2005);
* **expected liquidity cost** ``sum_i c_i |w_i - w_cur,i|`` of trading from the current
  book, ``c`` the context's expected cost per unit of weight traded.

The front is traced by ε-constraints in **one** cvxpy problem, built once per window shape
with ``Parameter``s (DPP: each point only sets values)::

    max  rho_r mu'w / s_r - rho_c CVaR / s_c - rho_d DD / s_d - rho_l cost / s_l
    s.t. CVaR <= eps_c,  DD <= eps_d,  cost <= eps_l,  sum(w) = 1,  lower <= w <= upper

with each objective scaled by its value ``s`` for the equal-weight book. The first point
minimises CVaR (``rho = (tau, 1, tau, tau)``), the last maximises return
(``rho = (1, tau, tau, tau)``, no CVaR cap); the ``n_points - 2`` between maximise return
under CVaR caps evenly spaced between the two. ``eps_d`` and ``eps_l`` are the configured
drawdown and cost caps (none by default). The small weights ``tau`` (:data:`TIE_BREAK`)
make every solution Pareto-optimal in all four objectives, not only weakly (the augmented
ε-constraint method); points that are nevertheless dominated or duplicated after
evaluation are dropped.

**Choice rule.** The traded point is the front point with the highest expected return
whose CVaR is at most the target (``cvar_target``; by default the CVaR of the
equal-weight book on the same scenarios: "the best return without more tail risk than
1/N"). When no point meets it the minimum-CVaR point is traded and the rebalance is
recorded as the fallback stage ``pareto:min_cvar`` (shown in the report).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cvxpy as cp
import numpy as np

from allocgym.allocator import AllocationContext
from allocgym.baselines.classic import (
    project_box_simplex,
    scenario_inputs,
    solve_problem,
)
from allocgym.config import ClassicConfig, ParetoConfig
from allocgym.errors import Infeasible, SolverFailed
from allocgym.measures import cvar

if TYPE_CHECKING:
    from allocgym.config import BaselinesConfig

__all__ = [
    "OBJECTIVES",
    "TIE_BREAK",
    "ParetoAllocator",
    "ParetoFront",
    "ParetoProblem",
    "drawdown_proxy",
    "pareto_front",
]

OBJECTIVES: tuple[str, ...] = ("expected_return", "cvar", "drawdown", "cost")
"""Objective names in the order of ``ParetoFront.objectives`` columns."""

TIE_BREAK = 1e-3
"""Weight ``tau`` of the secondary objectives (relative to the scaled primary one)."""

_NO_CAP = 1e3
_DOMINANCE_TOL = 1e-9


def drawdown_proxy(pnl: np.ndarray) -> np.ndarray:
    """Largest fall of the cumulated P&L path from its running peak (the peak starts at 0).

    Parameters
    ----------
    pnl : ndarray, shape (..., n_scenarios)
        Per-bar portfolio returns in time order.

    Returns
    -------
    ndarray, shape (...)
        ``max_s (max(0, max_{j<=s} P_j) - P_s)`` with ``P = cumsum(pnl)``; >= 0.
    """
    path = np.cumsum(np.asarray(pnl, dtype=np.float64), axis=-1)
    peak = np.maximum(np.maximum.accumulate(path, axis=-1), 0.0)
    return np.max(peak - path, axis=-1)


@dataclass(frozen=True)
class ParetoFront:
    """One traced front (the points kept after the dominance filter).

    Attributes
    ----------
    weights : ndarray, shape (n_kept, n_assets)
    objectives : ndarray, shape (n_kept, 4)
        Columns :data:`OBJECTIVES`: expected return (per bar), CVaR, drawdown proxy,
        cost (fractions), evaluated on the scenarios in numpy.
    chosen : int
        Row traded by the choice rule.
    target : float
        CVaR target of the choice rule.
    target_met : bool
        False when no point met the target (the minimum-CVaR point was traded).
    n_solved : int
        Points solved before duplicates and dominated points were dropped.
    alpha : float
        CVaR confidence level.
    """

    weights: np.ndarray
    objectives: np.ndarray
    chosen: int
    target: float
    target_met: bool
    n_solved: int
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (the report's ``pareto_fronts`` entry)."""
        return {
            "objectives": list(OBJECTIVES),
            "points": self.objectives.tolist(),
            "weights": self.weights.tolist(),
            "chosen": self.chosen,
            "cvar_target": self.target,
            "target_met": self.target_met,
            "n_solved": self.n_solved,
            "alpha": self.alpha,
        }


class ParetoProblem:
    """The ε-constraint LP for a fixed (n_scenarios, n_assets, alpha), built once.

    The scenario P&L ``pnl = R w`` and its running sum are variables, so the dense
    scenario matrix enters once and the drawdown rows stay sparse.
    """

    def __init__(self, n_scenarios: int, n_assets: int, alpha: float) -> None:
        s, n = n_scenarios, n_assets
        self.R = cp.Parameter((s, n))
        self.mu_obj = cp.Parameter(n)  # rho_r * mu / s_r
        self.cost = cp.Parameter(n, nonneg=True)
        self.cost_obj = cp.Parameter(n, nonneg=True)  # rho_l * cost / s_l
        self.w_cur = cp.Parameter(n)
        self.lo = cp.Parameter(n)
        self.hi = cp.Parameter(n)
        self.eps = cp.Parameter(3, nonneg=True)  # caps on CVaR, drawdown, cost
        self.rho = cp.Parameter(2, nonneg=True)  # weights of CVaR / s_c and DD / s_d
        self.w = cp.Variable(n)
        pnl = cp.Variable(s)
        path = cp.Variable(s)
        v = cp.Variable()
        u = cp.Variable(s, nonneg=True)
        peak = cp.Variable(s, nonneg=True)
        dd = cp.Variable()
        trade = cp.Variable(n, nonneg=True)
        cvar_expr = v + cp.sum(u) / ((1.0 - alpha) * s)
        constraints = [
            pnl == self.R @ self.w,
            path[0] == pnl[0],
            path[1:] == path[:-1] + pnl[1:],
            u >= -pnl - v,
            peak >= path,
            peak[1:] >= peak[:-1],
            dd >= peak - path,
            trade >= self.w - self.w_cur,
            trade >= self.w_cur - self.w,
            cp.sum(self.w) == 1,
            self.w >= self.lo,
            self.w <= self.hi,
            cvar_expr <= self.eps[0],
            dd <= self.eps[1],
            self.cost @ trade <= self.eps[2],
        ]
        objective = (
            self.mu_obj @ self.w
            - self.rho[0] * cvar_expr
            - self.rho[1] * dd
            - self.cost_obj @ trade
        )
        self.problem = cp.Problem(cp.Maximize(objective), constraints)
        assert self.problem.is_dcp(dpp=True)


class _HighsSession:
    """Re-solves of one front with HiGHS kept warm (the previous point's basis).

    cvxpy canonicalises the DPP problem for the current parameter values
    (``get_problem_data``: the same matrices its own HiGHS interface passes); the first
    point builds the HiGHS model, later points change only the objective and the row
    bounds and hot-start the simplex from the last basis. Within a front the sequence of
    points is fixed, so results stay deterministic; each front starts cold.
    """

    def __init__(self, prob: ParetoProblem) -> None:
        import highspy

        self._hp = highspy
        self.prob = prob
        self.h: Any = None

    def _data(self) -> tuple[np.ndarray, Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        data, _, _ = self.prob.problem.get_problem_data(cp.HIGHS)
        inf = self._hp.kHighsInf
        dims = data["dims"]
        n_eq, n_leq = int(dims.zero), int(dims.nonneg)
        b = np.asarray(data["b"], dtype=np.float64)
        lower = np.concatenate([b[:n_eq], np.full(n_leq, -inf)])
        n_col = data["A"].shape[1]
        lb, ub = data.get("lower_bounds"), data.get("upper_bounds")
        col_lo = np.full(n_col, -inf) if lb is None else np.asarray(lb, float)
        col_hi = np.full(n_col, inf) if ub is None else np.asarray(ub, float)
        offset = data["param_prob"].var_id_to_col[self.prob.w.id]
        self._w_cols = slice(offset, offset + self.prob.w.size)
        return np.asarray(data["c"], float), data["A"].tocsc(), lower, b, col_lo, col_hi

    def solve(self, what: str) -> np.ndarray:
        hp = self._hp
        c, a, row_lo, row_hi, col_lo, col_hi = self._data()
        if self.h is None:
            model = hp.HighsModel()
            lp = model.lp_
            lp.num_col_, lp.num_row_ = a.shape[1], a.shape[0]
            lp.offset_ = 0.0
            lp.col_cost_ = c
            lp.col_lower_, lp.col_upper_ = col_lo, col_hi
            lp.row_lower_, lp.row_upper_ = row_lo, row_hi
            lp.a_matrix_.format_ = hp.MatrixFormat.kColwise
            lp.a_matrix_.start_ = a.indptr
            lp.a_matrix_.index_ = a.indices
            lp.a_matrix_.value_ = a.data
            self.h = hp.Highs()
            self.h.setOptionValue("log_to_console", False)
            self.h.setOptionValue("output_flag", False)
            self.h.passModel(model)
        else:
            cols = np.arange(a.shape[1], dtype=np.int32)
            rows = np.arange(a.shape[0], dtype=np.int32)
            self.h.changeColsCost(cols.size, cols, c)
            self.h.changeRowsBounds(rows.size, rows, row_lo, row_hi)
        self.h.run()
        status = self.h.getModelStatus()
        if status == hp.HighsModelStatus.kInfeasible:
            raise Infeasible(f"{what}: the constraint set is infeasible; relax the caps")
        if status != hp.HighsModelStatus.kOptimal:
            raise SolverFailed(
                f"{what}: HiGHS stopped with status {self.h.modelStatusToString(status)}; "
                "set baselines.classic.solver (e.g. CLARABEL)"
            )
        return np.asarray(self.h.getSolution().col_value, dtype=np.float64)[self._w_cols]


def _solver(solver: str | None) -> str | None:
    # The front is a sequence of LPs: HiGHS returns vertex solutions, fast and exact.
    if solver is None and "HIGHS" in cp.installed_solvers():
        return "HIGHS"
    return solver


def _objectives(
    w: np.ndarray, scenarios: np.ndarray, mu: np.ndarray, costs: np.ndarray, w_cur: np.ndarray,
    alpha: float,
) -> np.ndarray:  # fmt: skip
    pnl = w @ scenarios.T  # (k, n_scenarios)
    return np.stack(
        [
            w @ mu,
            np.asarray(cvar(pnl, alpha)),
            drawdown_proxy(pnl),
            np.abs(w - w_cur) @ costs,
        ],
        axis=-1,
    )


def _non_dominated(obj: np.ndarray) -> np.ndarray:
    """Indices of rows not dominated (return maximised, the rest minimised), first of ties."""
    signed = obj * np.array([-1.0, 1.0, 1.0, 1.0])  # all minimised
    scale = np.maximum(np.abs(signed).max(axis=0), 1e-300)
    x = signed / scale
    keep = []
    for i in range(x.shape[0]):
        no_worse = (x <= x[i] + _DOMINANCE_TOL).all(axis=1)
        better = (x < x[i] - _DOMINANCE_TOL).any(axis=1)
        same = (np.abs(x - x[i]) <= _DOMINANCE_TOL).all(axis=1)
        if (no_worse & better).any() or (same[:i]).any():
            continue
        keep.append(i)
    return np.array(keep, dtype=np.int64)


def pareto_front(
    scenarios: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    params: ParetoConfig | None = None,
    *,
    w_cur: np.ndarray | None = None,
    costs: np.ndarray | None = None,
    solver: str | None = None,
    hot_start: bool = True,
    problem: ParetoProblem | None = None,
) -> ParetoFront:
    """Trace the Pareto front of one portfolio and pick the point to trade.

    Parameters
    ----------
    scenarios : ndarray, shape (n_scenarios, n_assets)
        Scenario returns in time order (the window's rows); their mean is ``mu``.
    lower, upper : ndarray, shape (n_assets,)
        Weight bounds (``sum(w) = 1``).
    params : ParetoConfig, optional
        Front settings; the defaults when omitted.
    w_cur : ndarray, shape (n_assets,), optional
        Current book (default cash: zeros).
    costs : ndarray, shape (n_assets,), optional
        Expected cost per unit of weight traded (default ``params.default_cost``).
    solver : str, optional
        cvxpy solver (default HiGHS when installed, else CLARABEL).
    hot_start : bool, default True
        With HiGHS, keep one HiGHS model along the front and hot-start each point from
        the previous basis; False solves every point through ``cvxpy.Problem.solve``.
    problem : ParetoProblem, optional
        The problem built for ``(n_scenarios, n_assets, alpha)``; reuse it across calls
        (built here when not given).

    Returns
    -------
    ParetoFront

    Raises
    ------
    Infeasible
        The bounds and caps admit no book (e.g. ``max_cost`` below the cost of reaching a
        fully invested book).
    """
    p = params or ParetoConfig()
    r = np.asarray(scenarios, dtype=np.float64)
    n_scen, n = r.shape
    lo, hi = np.asarray(lower, float), np.asarray(upper, float)
    cur = np.zeros(n) if w_cur is None else np.asarray(w_cur, float)
    c = np.full(n, p.default_cost) if costs is None else np.asarray(costs, float)
    prob = problem or ParetoProblem(n_scen, n, p.alpha)
    front = _FrontSolver(prob, r, lo, hi, cur, c, p, solver, hot_start)
    w_all = front.trace(p.n_points)
    obj_all = front.objectives(w_all)
    keep = _non_dominated(obj_all)
    w_kept, obj = w_all[keep], obj_all[keep]
    target = float(front.reference[1]) if p.cvar_target is None else float(p.cvar_target)
    chosen, met = _choose(obj, target)
    return ParetoFront(w_kept, obj, chosen, target, met, w_all.shape[0], p.alpha)


class _FrontSolver:
    """One portfolio's ε-constraint LP with its data set: solves points of the front.

    Each objective is scaled to unit size for the solver: the return by ``max |mu|``, CVaR,
    drawdown and cost by their equal-weight values (``reference``) and the largest cost.
    """

    def __init__(
        self, prob: ParetoProblem, scenarios: np.ndarray, lo: np.ndarray, hi: np.ndarray,
        w_cur: np.ndarray, costs: np.ndarray, params: ParetoConfig, solver: str | None,
        hot_start: bool,
    ) -> None:  # fmt: skip
        self.prob, self.scenarios, self.lo, self.hi = prob, scenarios, lo, hi
        self.w_cur, self.costs, self.alpha, self.solver = w_cur, costs, params.alpha, solver
        self.mu = scenarios.mean(axis=0)
        active = hi > lo
        equal = np.where(active, 1.0, 0.0) / max(int(active.sum()), 1)
        self.reference = self.objectives(equal[None])[0]
        self.scale_return = max(float(np.max(np.abs(self.mu))), 1e-12)
        self.scale_cvar = max(abs(float(self.reference[1])), 1e-12)
        self.scale_drawdown = max(float(self.reference[2]), 1e-12)
        self.scale_cost = max(float(np.max(costs)), 1e-12)
        prob.R.value = scenarios
        prob.cost.value = costs
        prob.w_cur.value = w_cur
        prob.lo.value = lo
        prob.hi.value = hi
        self.caps = [
            _NO_CAP if x is None else float(x) for x in (params.max_drawdown, params.max_cost)
        ]
        # HiGHS reads the problem data set above when it builds its model
        self.session = _HighsSession(prob) if hot_start and _solver(solver) == "HIGHS" else None

    def objectives(self, w: np.ndarray) -> np.ndarray:
        """The four objectives of each row of ``w`` on the scenarios, shape (k, 4)."""
        return _objectives(w, self.scenarios, self.mu, self.costs, self.w_cur, self.alpha)

    def point(self, primary_return: bool, cvar_cap: float) -> np.ndarray:
        """The book maximising return (or minimising CVaR) with CVaR at most ``cvar_cap``."""
        prob = self.prob
        rho_r, rho_c = (1.0, TIE_BREAK) if primary_return else (TIE_BREAK, 1.0)
        prob.mu_obj.value = rho_r * self.mu / self.scale_return
        prob.rho.value = np.array([rho_c / self.scale_cvar, TIE_BREAK / self.scale_drawdown])
        prob.cost_obj.value = TIE_BREAK * self.costs / self.scale_cost
        prob.eps.value = np.array([cvar_cap, *self.caps])
        what = "pareto (ε-constraint LP)"
        if self.session is not None:
            w = self.session.solve(what)
        else:
            solve_problem(prob.problem, _solver(self.solver), what)
            w = np.asarray(prob.w.value, float)
        return project_box_simplex(w, self.lo, self.hi)

    def trace(self, n_points: int) -> np.ndarray:
        """The minimum-CVaR end, ``n_points - 2`` CVaR levels evenly between the two ends
        and the maximum-return end, shape (n_points, n_assets); just the two ends when the
        front has no CVaR range (the interior caps would all coincide)."""
        w_min = self.point(False, _NO_CAP)
        w_max = self.point(True, _NO_CAP)
        anchors = self.objectives(np.stack([w_min, w_max]))
        c_lo, c_hi = float(anchors[0, 1]), float(anchors[1, 1])
        weights = [w_min]
        spread = c_hi - c_lo > 1e-9 * max(1.0, abs(c_lo))
        for j in range(1, n_points - 1 if spread else 1):
            level = c_lo + (c_hi - c_lo) * j / (n_points - 1)
            weights.append(self.point(True, max(level, c_lo) + 1e-12))
        weights.append(w_max)
        return np.stack(weights)


def _choose(objectives: np.ndarray, target: float) -> tuple[int, bool]:
    """The choice rule: the highest-return point with CVaR at most ``target`` (and True),
    else the minimum-CVaR point (and False)."""
    ok = objectives[:, 1] <= target * (1.0 + 1e-9)
    if ok.any():
        return int(np.flatnonzero(ok)[np.argmax(objectives[ok, 0])]), True
    return int(np.argmin(objectives[:, 1])), False


class ParetoAllocator:
    """The multi-objective Pareto allocator (see the module doc), one front per portfolio.

    Parameters
    ----------
    params : ClassicConfig, optional
        Weight bounds and solver shared with the classic allocators (limits left unset
        take the default ``risk`` values).
    pareto : ParetoConfig, optional
        Front resolution, CVaR level and target, caps; the defaults when omitted.

    Attributes
    ----------
    active_ : ndarray of bool, shape (n_envs, n_assets)
    fronts_ : list of ParetoFront or None
        Per portfolio of the last call (None where no asset was active).
    front_ : dict
        ``ParetoFront.to_dict()`` of the last portfolio's front, with ``bar`` (decision
        bar) when the context has it: what the report plots.
    source_ : list of str
        ``pareto`` (target met) or ``pareto:min_cvar`` (no point met the CVaR target) per
        portfolio.
    """

    name = "pareto"
    primary_source = "pareto"

    def __init__(
        self, params: ClassicConfig | None = None, pareto: ParetoConfig | None = None
    ) -> None:
        self.params = (params or ClassicConfig()).resolved()
        self.pareto = pareto or ParetoConfig()
        self._problems: dict[tuple[int, int], ParetoProblem] = {}

    @classmethod
    def from_config(cls, section: BaselinesConfig) -> ParetoAllocator:
        """Build from ``cfg.baselines`` (``classic`` bounds and the ``pareto`` sub-section)."""
        return cls(section.classic, section.pareto)

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Weights of each portfolio's chosen front point, shape (n_envs, n_assets)."""
        p = self.params
        r, active, lo, hi = scenario_inputs(ctx, self.name, p, self.pareto.window)
        key = (r.shape[1], r.shape[2])
        if key not in self._problems:
            self._problems[key] = ParetoProblem(*key, self.pareto.alpha)
        out = np.zeros((ctx.n_envs, ctx.n_assets))
        fronts: list[ParetoFront | None] = [None] * ctx.n_envs
        sources = [self.primary_source] * ctx.n_envs
        for b in np.flatnonzero(active.any(axis=-1)):
            front = pareto_front(
                r[b], lo[b], hi[b], self.pareto,
                w_cur=ctx.current_weights[b],
                costs=None if ctx.costs is None else ctx.costs[b],
                solver=p.solver, problem=self._problems[key],
            )  # fmt: skip
            out[b] = front.weights[front.chosen]
            fronts[b] = front
            if not front.target_met:
                sources[b] = "pareto:min_cvar"
            self.front_ = front.to_dict()
            if ctx.t is not None:
                self.front_["bar"] = int(ctx.t[b])
        self.active_ = active
        self.fronts_ = fronts
        self.source_ = sources
        return out
