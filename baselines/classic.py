"""Classic allocators: 1/N, inverse volatility, minimum variance, maximum Sharpe,
fractional Kelly and the regime-switch heuristic, plus the helpers every
optimisation-based baseline shares (covariance estimate, active mask, PSD factor, exact
projection onto a box-constrained simplex, cvxpy status mapping).

Each allocator follows the :class:`allocgym.allocator.Allocator` protocol: a ``name`` and
``allocate(ctx) -> (n_envs, n_assets)`` from a past-only context. Fitted state lives in
attributes ending in ``_``. Pure functions (``min_variance_weights`` ...) hold the maths;
the allocator classes only estimate inputs from ``ctx.returns`` and call them.

Conventions
-----------
* Returns are simple decimal per-bar returns; every estimate is per bar (no annualising).
* An asset is *active* in a window when its return volatility exceeds ``MIN_VOL``
  (``MarketData.returns`` is 0 where untradable, so a name untradable for the whole window
  has zero volatility). Inactive assets always get weight 0.
* The allocators read the ``baselines.classic`` section (``allocgym.config.ClassicConfig``);
  its ``long_only`` and ``max_weight`` (a bound on ``|w_i|``) come from the ``risk``
  section when left unset. The pure functions also run without bounds (the unconstrained
  closed forms).
* Weights of the fully-invested allocators sum to 1; Kelly and the regime heuristic may
  hold cash (``1 - sum(w)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from allocgym.allocator import AllocationContext, context_returns
from allocgym.config import ClassicConfig, KellyConfig, RegimeSwitchConfig
from allocgym.errors import ConfigError, Infeasible, SolverFailed
from allocgym.estimates import estimate_covariance
from allocgym.regime import REGIME_LABELS

if TYPE_CHECKING:
    import cvxpy as cp

    from allocgym.config import BaselinesConfig

__all__ = [
    "MIN_VOL",
    "EqualWeight",
    "FractionalKelly",
    "InverseVolatility",
    "MaximumSharpe",
    "MinimumVariance",
    "RegimeSwitch",
    "active_mask",
    "inverse_volatility_weights",
    "kelly_weights",
    "max_sharpe_weights",
    "mean_variance_weights",
    "min_variance_weights",
    "project_box_simplex",
    "psd_factor",
    "regime_switch_weights",
    "scenario_inputs",
    "weight_bounds",
]

_P = TypeVar("_P")


TREND = REGIME_LABELS.index("trend")
MEAN_REVERSION = REGIME_LABELS.index("mean_reversion")
HIGH_VOLATILITY = REGIME_LABELS.index("high_volatility")
UNCERTAIN = REGIME_LABELS.index("uncertain")

MIN_VOL = 1e-8
"""Per-bar volatility at or below which an asset is inactive in the window (a numerical
floor of the methods, not a setting)."""


# ----------------------------------------------------------------------------- estimates


def active_mask(returns: np.ndarray, min_vol: float = MIN_VOL) -> np.ndarray:
    """Assets whose per-bar return volatility over the window exceeds ``min_vol``.

    Parameters
    ----------
    returns : ndarray, shape (..., lookback, n_assets)
    min_vol : float
        Volatility floor (decimal per bar); names at or below it are inactive.

    Returns
    -------
    ndarray of bool, shape (..., n_assets)
    """
    return np.std(returns, axis=-2, ddof=1) > min_vol


def psd_factor(cov: np.ndarray) -> np.ndarray:
    """A square factor ``F`` with ``F @ F.T == cov`` (Cholesky, eigen-clipped if singular).

    Parameters
    ----------
    cov : ndarray, shape (n_assets, n_assets)
        Symmetric positive semi-definite matrix.

    Returns
    -------
    ndarray, shape (n_assets, n_assets)
    """
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
        return vecs * np.sqrt(np.clip(vals, 0.0, None))


def sanitize_covariance(cov: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rescale a covariance to unit mean active variance and decouple inactive assets.

    Optimisers are invariant to a positive scaling of the covariance, and solver tolerances
    behave far better at unit scale than at daily-variance scale (~1e-4). Inactive rows and
    columns are set to those of the identity so that closed forms and factorisations stay
    well defined; their weights are forced to 0 elsewhere.

    Parameters
    ----------
    cov : ndarray, shape (..., n_assets, n_assets)
    active : ndarray of bool, shape (..., n_assets)

    Returns
    -------
    scaled : ndarray, shape (..., n_assets, n_assets)
    scale : ndarray, shape (...)
        ``cov = scale * scaled`` on the active block.
    """
    var = np.diagonal(cov, axis1=-2, axis2=-1)
    n_act = np.maximum(active.sum(axis=-1), 1)
    scale = np.where(active, var, 0.0).sum(axis=-1) / n_act
    scale = np.where(scale > 0, scale, 1.0)
    pair = active[..., :, None] & active[..., None, :]
    eye = np.broadcast_to(np.eye(cov.shape[-1]), cov.shape)
    scaled = np.where(pair, cov / scale[..., None, None], eye)
    return scaled, scale


def weight_bounds(
    active: np.ndarray,
    long_only: bool = True,
    max_weight: float | None = None,
    total: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-asset bounds ``lower <= w <= upper``; inactive assets are pinned to 0.

    Parameters
    ----------
    active : ndarray of bool, shape (..., n_assets)
    long_only : bool
    max_weight : float or None
        Bound on ``|w_i|``; ``None`` means 1 when long-only, unbounded otherwise.
    total : float or None
        Budget ``sum(w)`` of a fully invested long-only allocator: where fewer than
        ``total / max_weight`` names are active, the bound is raised to
        ``total / n_active`` so that the budget stays reachable (the risk gates then cap
        the book). None: no budget.

    Returns
    -------
    lower, upper : ndarray, shape (..., n_assets)
    """
    cap = math.inf if max_weight is None else float(max_weight)
    hi: float | np.ndarray = 1.0 if (long_only and max_weight is None) else cap
    if total is not None and long_only and max_weight is not None:
        n_active = np.maximum(np.asarray(active).sum(axis=-1, keepdims=True), 1)
        hi = np.maximum(cap, float(total) / n_active)
    lo = 0.0 if long_only else -cap
    return np.where(active, lo, 0.0), np.where(active, hi, 0.0)


def project_box_simplex(
    x: np.ndarray, lower: np.ndarray, upper: np.ndarray, total: float | np.ndarray = 1.0
) -> np.ndarray:
    """Euclidean projection of each row onto ``{lower <= w <= upper, sum(w) = total}``.

    Solved exactly by bisection on the shift ``tau`` in ``clip(x - tau, lower, upper)``;
    used to remove solver tolerance from optimiser output so that bounds hold exactly.

    Parameters
    ----------
    x, lower, upper : ndarray, shape (..., n)
        Finite ``lower``/``upper`` with ``lower <= upper``.
    total : float or ndarray, shape (...)

    Returns
    -------
    ndarray, shape (..., n)

    Raises
    ------
    Infeasible
        If ``sum(lower) > total`` or ``sum(upper) < total`` for some row.
    """
    x, lower, upper = np.broadcast_arrays(
        np.asarray(x, float), np.asarray(lower, float), np.asarray(upper, float)
    )
    total = np.broadcast_to(np.asarray(total, float), x.shape[:-1])
    slack = 1e-12 * np.maximum(1.0, np.abs(total))
    if (lower.sum(axis=-1) > total + slack).any() or (upper.sum(axis=-1) < total - slack).any():
        raise Infeasible(
            f"weight bounds cannot sum to the budget {total.ravel()[:3]}: sum(lower) = "
            f"{lower.sum(axis=-1).ravel()[:3]}, sum(upper) = {upper.sum(axis=-1).ravel()[:3]}; "
            "raise max_weight or allow more active assets"
        )
    lo_t = (x - upper).min(axis=-1) - 1.0
    hi_t = (x - lower).max(axis=-1) + 1.0
    # 200 halvings take any interval well below one ulp of tau.
    for _ in range(200):
        mid = 0.5 * (lo_t + hi_t)
        s = np.clip(x - mid[..., None], lower, upper).sum(axis=-1)
        above = s > total
        lo_t = np.where(above, mid, lo_t)
        hi_t = np.where(above, hi_t, mid)
        if (hi_t - lo_t <= 4 * np.finfo(float).eps * np.maximum(1.0, np.abs(mid))).all():
            break
    return np.clip(x - 0.5 * (lo_t + hi_t)[..., None], lower, upper)


def solve_problem(problem: cp.Problem, solver: str | None, what: str) -> None:
    """Solve a cvxpy problem; map statuses to ``Infeasible`` / ``SolverFailed``.

    Parameters
    ----------
    problem : cvxpy.Problem
    solver : str or None
        cvxpy solver name; ``None`` means CLARABEL (interior point: robust on the dense,
        degenerate problems here, where cvxpy's default QP choice OSQP can stall).
    what : str
        Name of the allocator and its constraint set, quoted in error messages.
    """
    import cvxpy as cp  # imported where a problem is solved: 1/N and inverse vol need none

    try:
        # No warm start: identical inputs must give identical weights whatever was solved
        # before with the same cached problem.
        problem.solve(solver=solver or "CLARABEL", warm_start=False)
    except cp.error.SolverError as err:
        raise SolverFailed(
            f"{what}: solver {solver or 'CLARABEL'} failed ({err}); "
            "try another solver (e.g. CLARABEL, SCS)"
        ) from err
    status = problem.status
    if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        raise Infeasible(f"{what}: the constraint set is infeasible ({status}); relax the bounds")
    if status in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE):
        raise SolverFailed(f"{what}: the objective is unbounded ({status}); add weight bounds")
    if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise SolverFailed(f"{what}: solver stopped with status {status!r}; try another solver")


def max_linear_over_box_simplex(
    mu: np.ndarray, lower: np.ndarray, upper: np.ndarray, total: float = 1.0
) -> float:
    """``max mu @ w`` over ``{lower <= w <= upper, sum(w) = total}`` (greedy, exact).

    Starts at ``lower`` and fills the remaining budget in decreasing order of ``mu``.

    Parameters
    ----------
    mu, lower, upper : ndarray, shape (n,)
    total : float

    Returns
    -------
    float
    """
    w = lower.astype(float).copy()
    left = total - w.sum()
    for i in np.argsort(-mu, kind="stable"):
        if left <= 0:
            break
        add = min(upper[i] - w[i], left)
        w[i] += add
        left -= add
    return float(mu @ w)


def scenario_inputs(
    ctx: AllocationContext, who: str, params: ClassicConfig, window: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inputs of the scenario-based allocators (minimum CVaR, the Pareto front).

    Returns ``(r, active, lo, hi)``: the returns of the last ``window`` bars (all when
    ``None``) as scenarios (n_envs, n_bars, n_assets), the active names, and the weight
    bounds made finite for cvxpy (``_finite_bounds``).
    """
    r = context_returns(ctx, who)
    if window is not None:
        r = r[:, -window:, :]
    active = active_mask(r, MIN_VOL)
    lo, hi = weight_bounds(active, params.long_only, params.max_weight, 1.0)
    return (r, active, *_finite_bounds(lo, hi))


class _CovAllocator:
    """Shared shell: validate the context, estimate active mask and covariance."""

    name: str = "classic"

    def __init__(self, params: ClassicConfig | None = None) -> None:
        self.params = (params or ClassicConfig()).resolved()
        self._problems: dict[tuple[str, int], object] = {}

    @classmethod
    def from_config(cls, section: BaselinesConfig) -> _CovAllocator:
        """Build from ``cfg.baselines`` (its ``classic`` sub-section)."""
        return cls(section.classic)

    def _estimate(self, ctx: AllocationContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = context_returns(ctx, self.name)
        active = active_mask(r, MIN_VOL)
        cov = estimate_covariance(r, self.params.covariance, self.params.halflife)
        self.active_ = active
        self.cov_ = cov
        return r, active, cov

    def _problem(self, key: tuple[str, int], build: Callable[[int], _P]) -> _P:
        # cvxpy problems are built once per shape with Parameters; later calls set values.
        if key not in self._problems:
            self._problems[key] = build(key[1])
        return self._problems[key]  # type: ignore[return-value]


# ----------------------------------------------------------------------------- 1/N, inverse vol


def inverse_volatility_weights(vol: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Weights proportional to ``1 / vol`` over active assets, summing to 1.

    Parameters
    ----------
    vol : ndarray, shape (..., n_assets)
        Per-bar volatility (decimal).
    active : ndarray of bool, shape (..., n_assets)

    Returns
    -------
    ndarray, shape (..., n_assets)
        Zero rows where no asset is active.
    """
    iv = np.where(active, 1.0 / np.where(active, vol, 1.0), 0.0)
    s = iv.sum(axis=-1, keepdims=True)
    return np.divide(iv, s, out=np.zeros_like(iv), where=s > 0)


class EqualWeight:
    """1/N over the assets active in the window (vectorised over ``n_envs``).

    Attributes
    ----------
    active_ : ndarray of bool, shape (n_envs, n_assets)
    """

    name = "equal_weight"

    def __init__(self, min_vol: float = MIN_VOL) -> None:
        self.min_vol = float(min_vol)

    @classmethod
    def from_config(cls, section: BaselinesConfig) -> EqualWeight:
        """Build from ``cfg.baselines`` (nothing to configure)."""
        return cls()

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Equal weights, shape (n_envs, n_assets), rows summing to 1."""
        r = context_returns(ctx, self.name)
        self.active_ = active_mask(r, self.min_vol)
        a = self.active_.astype(np.float64)
        n = a.sum(axis=-1, keepdims=True)
        return np.divide(a, n, out=np.zeros_like(a), where=n > 0)


class InverseVolatility:
    """Weights ∝ 1/σ_i with σ_i the sample volatility of the window (vectorised).

    Attributes
    ----------
    vol_ : ndarray, shape (n_envs, n_assets)
        Per-bar volatility (ddof 1).
    active_ : ndarray of bool, shape (n_envs, n_assets)
    """

    name = "inverse_volatility"

    def __init__(self, min_vol: float = MIN_VOL) -> None:
        self.min_vol = float(min_vol)

    @classmethod
    def from_config(cls, section: BaselinesConfig) -> InverseVolatility:
        """Build from ``cfg.baselines`` (nothing to configure)."""
        return cls()

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Inverse-volatility weights, shape (n_envs, n_assets), rows summing to 1."""
        r = context_returns(ctx, self.name)
        self.vol_ = np.std(r, axis=1, ddof=1)
        self.active_ = self.vol_ > self.min_vol
        return inverse_volatility_weights(self.vol_, self.active_)


# ----------------------------------------------------------------------------- minimum variance


class _MinVarProblem:
    """min ||F' w||² s.t. sum(w) = 1, lower <= w <= upper (built once per n)."""

    def __init__(self, n: int) -> None:
        import cvxpy as cp

        self.F = cp.Parameter((n, n))
        self.lo = cp.Parameter(n)
        self.hi = cp.Parameter(n)
        self.w = cp.Variable(n)
        self.problem = cp.Problem(
            cp.Minimize(cp.sum_squares(self.F.T @ self.w)),
            [cp.sum(self.w) == 1, self.w >= self.lo, self.w <= self.hi],
        )
        assert self.problem.is_dcp(dpp=True)

    def solve(
        self, cov: np.ndarray, lo: np.ndarray, hi: np.ndarray, solver: str | None
    ) -> np.ndarray:
        self.F.value = psd_factor(cov)
        self.lo.value = lo
        self.hi.value = hi
        solve_problem(self.problem, solver, "min-variance (budget, bounds)")
        return project_box_simplex(np.asarray(self.w.value, float), lo, hi)


def _finite_bounds(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # cvxpy Parameters must be finite; |w| <= 10 is far outside any budget-1 portfolio of
    # interest yet keeps the problem bounded.
    return np.clip(lo, -10.0, 10.0), np.clip(hi, -10.0, 10.0)


def min_variance_weights(
    cov: np.ndarray,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    solver: str | None = None,
) -> np.ndarray:
    """Fully-invested minimum-variance weights.

    Without bounds (``lower``/``upper`` both ``None``) the closed form
    ``Σ⁻¹1 / (1'Σ⁻¹1)`` is used; otherwise a cvxpy QP.

    Parameters
    ----------
    cov : ndarray, shape (n_assets, n_assets)
        Positive definite for the closed form.
    lower, upper : ndarray, shape (n_assets,), optional
    solver : str, optional

    Returns
    -------
    ndarray, shape (n_assets,)
    """
    cov = np.asarray(cov, float)
    if lower is None and upper is None:
        x = np.linalg.solve(cov, np.ones(cov.shape[-1]))
        return x / x.sum()
    n = cov.shape[-1]
    lo = np.full(n, -np.inf) if lower is None else np.asarray(lower, float)
    hi = np.full(n, np.inf) if upper is None else np.asarray(upper, float)
    lo, hi = _finite_bounds(lo, hi)
    scale = np.mean(np.diag(cov)) or 1.0
    return _MinVarProblem(n).solve(cov / scale, lo, hi, solver)


class MinimumVariance(_CovAllocator):
    """Minimum-variance portfolio, ``min w'Σw`` s.t. ``sum(w) = 1`` and bounds.

    A cached cvxpy QP per portfolio inside the configured weight bounds (the unbounded
    closed form is :func:`min_variance_weights` without bounds).

    Attributes
    ----------
    cov_ : ndarray, shape (n_envs, n_assets, n_assets)
    active_ : ndarray of bool, shape (n_envs, n_assets)
    weights_ : ndarray, shape (n_envs, n_assets)
    """

    name = "min_variance"

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Minimum-variance weights, shape (n_envs, n_assets), rows summing to 1."""
        _, active, cov = self._estimate(ctx)
        p = self.params
        scaled, _ = sanitize_covariance(cov, active)
        lo, hi = _finite_bounds(*weight_bounds(active, p.long_only, p.max_weight, 1.0))
        prob = self._problem(("mv", ctx.n_assets), _MinVarProblem)
        w = np.zeros((ctx.n_envs, ctx.n_assets))
        for b in np.flatnonzero(active.any(axis=-1)):
            w[b] = prob.solve(scaled[b], lo[b], hi[b], p.solver)
        self.weights_ = w
        return w


# ----------------------------------------------------------------------------- maximum Sharpe


class _MaxSharpeProblem:
    """Charnes–Cooper form: min ||F'y||² s.t. mu'y = 1, sum(y) = k, lo k <= y <= hi k."""

    def __init__(self, n: int) -> None:
        import cvxpy as cp

        self.F = cp.Parameter((n, n))
        self.mu = cp.Parameter(n)
        self.lo = cp.Parameter(n)
        self.hi = cp.Parameter(n)
        self.y = cp.Variable(n)
        self.k = cp.Variable(nonneg=True)
        self.problem = cp.Problem(
            cp.Minimize(cp.sum_squares(self.F.T @ self.y)),
            [
                self.mu @ self.y == 1,
                cp.sum(self.y) == self.k,
                self.y >= self.lo * self.k,
                self.y <= self.hi * self.k,
            ],
        )
        assert self.problem.is_dcp(dpp=True)

    def solve(
        self, cov: np.ndarray, mu: np.ndarray, lo: np.ndarray, hi: np.ndarray, solver: str | None
    ) -> np.ndarray:
        self.F.value = psd_factor(cov)
        self.mu.value = mu / np.max(np.abs(mu))
        self.lo.value = lo
        self.hi.value = hi
        solve_problem(self.problem, solver, "max-Sharpe (budget, bounds)")
        k = float(self.k.value)
        if not k > 0:
            raise SolverFailed(f"max-Sharpe: Charnes–Cooper scale k = {k}; try another solver")
        return project_box_simplex(np.asarray(self.y.value, float) / k, lo, hi)


def max_sharpe_weights(
    mu: np.ndarray,
    cov: np.ndarray,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    solver: str | None = None,
    _problem: _MaxSharpeProblem | None = None,
) -> np.ndarray | None:
    """Fully-invested maximum-Sharpe (tangency) weights, ``max mu'w / sqrt(w'Σw)``.

    Unbounded: closed form ``Σ⁻¹mu / (1'Σ⁻¹mu)``. Bounded: Charnes–Cooper QP.

    Parameters
    ----------
    mu : ndarray, shape (n_assets,)
        Expected excess returns per bar.
    cov : ndarray, shape (n_assets, n_assets)
    lower, upper : ndarray, shape (n_assets,), optional
    solver : str, optional

    Returns
    -------
    ndarray, shape (n_assets,) or None
        ``None`` when no feasible portfolio has a positive expected excess return (the
        maximum Sharpe ratio is then not attained on the tangency branch).
    """
    mu = np.asarray(mu, float)
    cov = np.asarray(cov, float)
    if lower is None and upper is None:
        x = np.linalg.solve(cov, mu)
        s = x.sum()
        return x / s if s > 0 else None
    n = mu.shape[0]
    lo = np.full(n, -np.inf) if lower is None else np.asarray(lower, float)
    hi = np.full(n, np.inf) if upper is None else np.asarray(upper, float)
    lo, hi = _finite_bounds(lo, hi)
    if max_linear_over_box_simplex(mu, lo, hi) <= 0:
        return None
    scale = np.mean(np.diag(cov)) or 1.0
    return (_problem or _MaxSharpeProblem(n)).solve(cov / scale, mu, lo, hi, solver)


class MaximumSharpe(_CovAllocator):
    """Tangency portfolio from the historical mean excess return and the covariance.

    When no feasible portfolio has a positive expected excess return, the portfolio falls
    back to minimum variance and ``fallback_`` records it.

    Attributes
    ----------
    mu_ : ndarray, shape (n_envs, n_assets)
        Mean excess return per bar.
    cov_, active_, weights_ : see :class:`MinimumVariance`
    fallback_ : ndarray of bool, shape (n_envs,)
    source_ : list of str
        Per portfolio, ``"max_sharpe"`` or ``"min_variance"`` (the fallback).
    """

    name = "max_sharpe"
    primary_source = "max_sharpe"

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Maximum-Sharpe weights, shape (n_envs, n_assets), rows summing to 1."""
        r, active, cov = self._estimate(ctx)
        p = self.params
        mu = np.where(active, r.mean(axis=1) - p.risk_free_per_bar, 0.0)
        self.mu_ = mu
        scaled, _ = sanitize_covariance(cov, active)
        out = np.zeros((ctx.n_envs, ctx.n_assets))
        fallback = np.zeros(ctx.n_envs, dtype=bool)
        lo, hi = _finite_bounds(*weight_bounds(active, p.long_only, p.max_weight, 1.0))
        for b in np.flatnonzero(active.any(axis=-1)):
            prob = self._problem(("ms", ctx.n_assets), _MaxSharpeProblem)
            w = max_sharpe_weights(mu[b], scaled[b], lo[b], hi[b], p.solver, _problem=prob)
            if w is None:
                fallback[b] = True
                mvp = self._problem(("mv", ctx.n_assets), _MinVarProblem)
                w = mvp.solve(scaled[b], lo[b], hi[b], p.solver)
            out[b] = w
        self.fallback_ = fallback
        self.source_ = ["min_variance" if f else "max_sharpe" for f in fallback]
        self.weights_ = out
        return out


# ----------------------------------------------------------------------------- mean-variance


class _MeanVarianceProblem:
    """max mu'w - (δ/2)||F'w||² s.t. sum(w) = 1, lo <= w <= hi."""

    def __init__(self, n: int) -> None:
        import cvxpy as cp

        # F carries sqrt(δ/2) so the problem stays DPP (no parameter times parameter).
        self.F = cp.Parameter((n, n))
        self.mu = cp.Parameter(n)
        self.lo = cp.Parameter(n)
        self.hi = cp.Parameter(n)
        self.w = cp.Variable(n)
        self.problem = cp.Problem(
            cp.Maximize(self.mu @ self.w - cp.sum_squares(self.F.T @ self.w)),
            [cp.sum(self.w) == 1, self.w >= self.lo, self.w <= self.hi],
        )
        assert self.problem.is_dcp(dpp=True)

    def solve(
        self,
        mu: np.ndarray,
        cov: np.ndarray,
        risk_aversion: float,
        lo: np.ndarray,
        hi: np.ndarray,
        solver: str | None,
    ) -> np.ndarray:
        # Dividing the whole objective by s = mean variance leaves the argmin unchanged and
        # brings it to unit scale for the solver's tolerances.
        s = np.mean(np.diag(cov)) or 1.0
        self.F.value = psd_factor(cov / s) * np.sqrt(0.5 * risk_aversion)
        self.mu.value = mu / s
        self.lo.value = lo
        self.hi.value = hi
        solve_problem(self.problem, solver, "mean-variance (budget, bounds)")
        return project_box_simplex(np.asarray(self.w.value, float), lo, hi)


def mean_variance_weights(
    mu: np.ndarray,
    cov: np.ndarray,
    risk_aversion: float,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    solver: str | None = None,
    _problem: _MeanVarianceProblem | None = None,
) -> np.ndarray:
    """Fully-invested mean-variance weights, ``max mu'w - (δ/2) w'Σw`` s.t. ``sum(w) = 1``.

    Unbounded closed form: ``w = Σ⁻¹(mu - γ1)/δ`` with ``γ = (1'Σ⁻¹mu - δ) / 1'Σ⁻¹1``.

    Parameters
    ----------
    mu : ndarray, shape (n_assets,)
        Expected returns per bar.
    cov : ndarray, shape (n_assets, n_assets)
    risk_aversion : float
        δ > 0.
    lower, upper : ndarray, shape (n_assets,), optional
    solver : str, optional

    Returns
    -------
    ndarray, shape (n_assets,)
    """
    mu = np.asarray(mu, float)
    cov = np.asarray(cov, float)
    if not risk_aversion > 0:
        raise ConfigError(f"risk_aversion = {risk_aversion}: must be > 0")
    if lower is None and upper is None:
        a = np.linalg.solve(cov, mu)
        c = np.linalg.solve(cov, np.ones_like(mu))
        gamma = (a.sum() - risk_aversion) / c.sum()
        return (a - gamma * c) / risk_aversion
    n = mu.shape[0]
    lo = np.full(n, -np.inf) if lower is None else np.asarray(lower, float)
    hi = np.full(n, np.inf) if upper is None else np.asarray(upper, float)
    lo, hi = _finite_bounds(lo, hi)
    return (_problem or _MeanVarianceProblem(n)).solve(mu, cov, risk_aversion, lo, hi, solver)


# ----------------------------------------------------------------------------- fractional Kelly


class _KellyProblem:
    """max mu'w - (1/(2f))||F'w||² s.t. ||w||₁ <= G, lo <= w <= hi (cash allowed)."""

    def __init__(self, n: int) -> None:
        import cvxpy as cp

        # F carries sqrt(1/(2f)) so the problem stays DPP (no parameter times parameter).
        self.F = cp.Parameter((n, n))
        self.mu = cp.Parameter(n)
        self.gross = cp.Parameter(nonneg=True)
        self.lo = cp.Parameter(n)
        self.hi = cp.Parameter(n)
        self.w = cp.Variable(n)
        self.problem = cp.Problem(
            cp.Maximize(self.mu @ self.w - cp.sum_squares(self.F.T @ self.w)),
            [cp.norm1(self.w) <= self.gross, self.w >= self.lo, self.w <= self.hi],
        )
        assert self.problem.is_dcp(dpp=True)


def kelly_weights(
    mu: np.ndarray,
    cov: np.ndarray,
    fraction: float = 0.5,
    max_weight: float = 0.25,
    max_gross: float = 1.0,
    long_only: bool = True,
    solver: str | None = None,
    active: np.ndarray | None = None,
    _problem: _KellyProblem | None = None,
) -> np.ndarray:
    """Capped fractional Kelly weights.

    Maximises the quadratic growth approximation ``mu'w - (1/(2f)) w'Σw`` (whose
    unconstrained optimum is ``f Σ⁻¹mu``, i.e. ``f`` times full Kelly) subject to
    ``|w_i| <= max_weight``, ``sum|w_i| <= max_gross`` and ``w >= 0`` when long-only. The
    rest, ``1 - sum(w)``, is cash.

    Parameters
    ----------
    mu : ndarray, shape (n_assets,)
        Expected excess returns per bar.
    cov : ndarray, shape (n_assets, n_assets)
        Per-bar covariance.
    fraction : float
        Kelly fraction f in (0, 1].
    max_weight, max_gross : float
        Caps on ``|w_i|`` and ``sum|w_i|``.
    long_only : bool
    solver : str, optional
    active : ndarray of bool, shape (n_assets,), optional
        Inactive assets are pinned to 0.

    Returns
    -------
    ndarray, shape (n_assets,)
    """
    mu = np.asarray(mu, float)
    cov = np.asarray(cov, float)
    n = mu.shape[0]
    act = np.ones(n, bool) if active is None else np.asarray(active, bool)
    lo, hi = weight_bounds(act, long_only, max_weight)
    prob = _problem or _KellyProblem(n)
    # Scaling mu and Σ by 1/s leaves f Σ⁻¹mu, hence the argmax, unchanged.
    s = np.mean(np.diag(cov)[act]) if act.any() else 1.0
    s = s if s > 0 else 1.0
    prob.F.value = psd_factor(cov / s) * np.sqrt(1.0 / (2.0 * fraction))
    prob.mu.value = mu / s
    prob.gross.value = max_gross
    prob.lo.value = lo
    prob.hi.value = hi
    solve_problem(prob.problem, solver, "fractional Kelly (max_weight, max_gross)")
    w = np.clip(np.asarray(prob.w.value, float), lo, hi)
    g = np.abs(w).sum()
    if g > max_gross:
        w *= max_gross / g
    # Solver noise around zero is not a position.
    w[np.abs(w) < 1e-10] = 0.0
    return w


class FractionalKelly(_CovAllocator):
    """Capped fractional Kelly on historical mean excess returns (may hold cash).

    Parameters
    ----------
    params : ClassicConfig, optional
        Covariance estimator, long-only flag, risk-free rate and solver (limits left unset
        take the default ``risk`` values, :meth:`ClassicConfig.resolved`).
    kelly : KellyConfig, optional
        Kelly fraction and caps; a cap left unset (None) takes the default ``risk``
        limit it shadows (``max_symbol_weight``, ``max_gross``), as in the config.

    Attributes
    ----------
    mu_ : ndarray, shape (n_envs, n_assets)
    cov_, active_, weights_ : see :class:`MinimumVariance`
    """

    name = "fractional_kelly"

    def __init__(self, params: ClassicConfig | None = None, kelly: KellyConfig | None = None):
        super().__init__(params)
        self.kelly = (kelly or KellyConfig()).resolved()

    @classmethod
    def from_config(cls, section: BaselinesConfig) -> FractionalKelly:
        """Build from ``cfg.baselines`` (``classic`` and ``kelly`` sub-sections; caps
        left unset take the default ``risk`` values)."""
        return cls(section.classic, section.kelly)

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Kelly weights, shape (n_envs, n_assets); ``1 - sum(w)`` is cash."""
        r, active, cov = self._estimate(ctx)
        p, k = self.params, self.kelly
        mu = np.where(active, r.mean(axis=1) - p.risk_free_per_bar, 0.0)
        self.mu_ = mu
        prob = self._problem(("kelly", ctx.n_assets), _KellyProblem)
        scaled, scale = sanitize_covariance(cov, active)
        out = np.zeros((ctx.n_envs, ctx.n_assets))
        for b in np.flatnonzero(active.any(axis=-1)):
            out[b] = kelly_weights(
                mu[b], scaled[b] * scale[b], k.fraction, k.max_weight, k.max_gross,
                p.long_only, p.solver, active[b], _problem=prob,
            )  # fmt: skip
        self.weights_ = out
        return out


# ----------------------------------------------------------------------------- regime switch


def regime_switch_weights(
    vol: np.ndarray,
    momentum: np.ndarray,
    active: np.ndarray,
    regime: np.ndarray,
    confidence: np.ndarray,
    params: RegimeSwitchConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regime rules applied to inverse-volatility base weights (vectorised).

    * ``trend``: ``w ∝ base * (1 + c * tilt * s)`` with ``s`` the centred momentum rank in
      [-1, 1] (best = +1) and ``c`` the regime confidence: favour trend/momentum names.
    * ``mean_reversion``: the same with ``-s``: the bias reversed (favour recent losers).
    * ``high_volatility``: defensive base weights at gross ``high_vol_gross``.
    * ``uncertain`` / unknown: defensive base weights at gross ``uncertain_gross``.

    Parameters
    ----------
    vol, momentum : ndarray, shape (n_envs, n_assets)
    active : ndarray of bool, shape (n_envs, n_assets)
    regime : ndarray of int, shape (n_envs,)
        Codes into ``REGIME_LABELS`` (-1 unknown).
    confidence : ndarray, shape (n_envs,)
        Regime confidence, clipped to [0, 1].
    params : RegimeSwitchConfig

    Returns
    -------
    weights : ndarray, shape (n_envs, n_assets)
    direction : ndarray of int, shape (n_envs,)
        +1 momentum tilt, -1 reversal tilt, 0 defensive.
    gross : ndarray, shape (n_envs,)
    """
    base = inverse_volatility_weights(vol, active)
    m = np.where(active, momentum, np.inf)
    # Ordinal ranks among active names (ties: lower index first), inactive ranked last.
    order = np.argsort(m, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(m.shape[-1])[None, :], axis=-1)
    n_act = active.sum(axis=-1, keepdims=True)
    s = np.where(n_act > 1, 2.0 * ranks / np.maximum(n_act - 1, 1) - 1.0, 0.0)
    s = np.where(active, s, 0.0)
    regime = np.asarray(regime)
    direction = np.where(regime == TREND, 1, np.where(regime == MEAN_REVERSION, -1, 0))
    gross = np.where(
        direction != 0,
        1.0,
        np.where(regime == HIGH_VOLATILITY, params.high_vol_gross, params.uncertain_gross),
    )
    c = np.clip(np.nan_to_num(np.asarray(confidence, float), nan=0.0), 0.0, 1.0)
    raw = base * (1.0 + (direction * c * params.tilt)[:, None] * s)
    tot = raw.sum(axis=-1, keepdims=True)
    w = np.divide(raw, tot, out=np.zeros_like(raw), where=tot > 0) * gross[:, None]
    return w, direction, gross


class RegimeSwitch:
    """Regime-switch heuristic from ``ctx.regime`` and ``ctx.regime_confidence``.

    Parameters
    ----------
    params : RegimeSwitchConfig, optional
        Momentum window, tilt and regime grosses; the defaults when omitted.

    Attributes
    ----------
    direction_ : ndarray of int, shape (n_envs,)
        +1 favour momentum (trend), -1 reversed (mean reversion), 0 defensive.
    gross_ : ndarray, shape (n_envs,)
    momentum_, vol_ : ndarray, shape (n_envs, n_assets)
    """

    name = "regime_switch"

    def __init__(self, params: RegimeSwitchConfig | None = None) -> None:
        self.params = params or RegimeSwitchConfig()

    @classmethod
    def from_config(cls, section: BaselinesConfig) -> RegimeSwitch:
        """Build from ``cfg.baselines`` (its ``regime_switch`` sub-section)."""
        return cls(section.regime_switch)

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Regime-tilted weights, shape (n_envs, n_assets); ``1 - sum(w)`` is cash."""
        r = context_returns(ctx, self.name)
        p = self.params
        self.vol_ = np.std(r, axis=1, ddof=1)
        active = self.vol_ > MIN_VOL
        win = r[:, -min(p.momentum_window, r.shape[1]) :, :]
        self.momentum_ = np.log1p(np.maximum(win, -1.0 + 1e-12)).sum(axis=1)
        w, self.direction_, self.gross_ = regime_switch_weights(
            self.vol_, self.momentum_, active, ctx.regime, ctx.regime_confidence, p
        )
        return w
