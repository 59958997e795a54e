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
    ClassicParams,
    project_box_simplex,
    scenario_inputs,
    solve_problem,
)
from allocgym.config import ParetoConfig
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
    mu = r.mean(axis=0)
    prob = problem or ParetoProblem(n_scen, n, p.alpha)
    active = hi > lo
    equal = np.where(active, 1.0, 0.0) / max(int(active.sum()), 1)
    ref = _objectives(equal[None], r, mu, c, cur, p.alpha)[0]
    s_ret = max(float(np.max(np.abs(mu))), 1e-12)
    s_cvar = max(abs(float(ref[1])), 1e-12)
    s_dd = max(float(ref[2]), 1e-12)
    s_cost = max(float(np.max(c)), 1e-12)
    prob.R.value = r
    prob.cost.value = c
    prob.w_cur.value = cur
    prob.lo.value = lo
    prob.hi.value = hi
    caps = [_NO_CAP if x is None else float(x) for x in (p.max_drawdown, p.max_cost)]

    def solve(primary_return: bool, cvar_cap: float) -> np.ndarray:
        rho_r, rho_c = (1.0, TIE_BREAK) if primary_return else (TIE_BREAK, 1.0)
        prob.mu_obj.value = rho_r * mu / s_ret
        prob.rho.value = np.array([rho_c / s_cvar, TIE_BREAK / s_dd])
        prob.cost_obj.value = TIE_BREAK * c / s_cost
        prob.eps.value = np.array([cvar_cap, *caps])
        what = "pareto (ε-constraint LP)"
        if session is not None:
            w = session.solve(what)
        else:
            solve_problem(prob.problem, _solver(solver), what)
            w = np.asarray(prob.w.value, float)
        return project_box_simplex(w, lo, hi)

    session = _HighsSession(prob) if hot_start and _solver(solver) == "HIGHS" else None

    w_min = solve(False, _NO_CAP)
    w_max = solve(True, _NO_CAP)
    anchors = _objectives(np.stack([w_min, w_max]), r, mu, c, cur, p.alpha)
    c_lo, c_hi = float(anchors[0, 1]), float(anchors[1, 1])
    weights = [w_min]
    # a front with no CVaR range is its two ends (the interior caps would all coincide)
    spread = c_hi - c_lo > 1e-9 * max(1.0, abs(c_lo))
    for j in range(1, p.n_points - 1 if spread else 1):
        level = c_lo + (c_hi - c_lo) * j / (p.n_points - 1)
        weights.append(solve(True, max(level, c_lo) + 1e-12))
    weights.append(w_max)
    w_all = np.stack(weights)
    obj_all = _objectives(w_all, r, mu, c, cur, p.alpha)
    keep = _non_dominated(obj_all)
    w_kept, obj = w_all[keep], obj_all[keep]
    target = float(ref[1]) if p.cvar_target is None else float(p.cvar_target)
    ok = obj[:, 1] <= target * (1.0 + 1e-9)
    if ok.any():
        chosen = int(np.flatnonzero(ok)[np.argmax(obj[ok, 0])])
    else:
        chosen = int(np.argmin(obj[:, 1]))
    return ParetoFront(w_kept, obj, chosen, target, bool(ok.any()), w_all.shape[0], p.alpha)


class ParetoAllocator:
    """The multi-objective Pareto allocator (see the module doc), one front per portfolio.

    Parameters
    ----------
    params : ClassicParams, optional
        Weight bounds and solver shared with the classic allocators.
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
        self, params: ClassicParams | None = None, pareto: ParetoConfig | None = None
    ) -> None:
        self.params = params or ClassicParams()
        self.pareto = pareto or ParetoConfig()
        self._problems: dict[tuple[int, int], ParetoProblem] = {}

    @classmethod
    def from_config(cls, section: BaselinesConfig) -> ParetoAllocator:
        """Build from ``cfg.baselines`` (``classic`` bounds and the ``pareto`` sub-section)."""
        return cls(ClassicParams.from_config(section), section.pareto)

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
