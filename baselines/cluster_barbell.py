"""Cluster-aware barbell allocator.

Per portfolio, from the trailing return window only:

1. **Clusters.** Hierarchical clustering (scipy ``linkage``) of the correlation distance
   ``sqrt(0.5 (1 - rho))`` of the active assets, cut into ``n_clusters`` clusters
   (``fcluster(..., "maxclust")``) or at a ``distance_threshold``. Cluster labels are
   renumbered 0..K-1 in order of each cluster's first asset, so they are deterministic.
2. **Layer 2, within a cluster.** ``w_i ∝ h * IV_i + (1 - h) * AR_i`` with ``h = 0.5`` by
   default, where ``IV`` is inverse volatility normalised to sum to 1 over the cluster and
   ``AR`` the (average) alpha rank within the cluster (1 = worst) normalised the same way.
   Each cluster becomes one return series ``R_c = R[:, members] @ w_c``.
3. **Barbell.** Clusters are ranked by alpha (the mean alpha of their members). The top
   ``sleeve_size`` (5) clusters form the aggressor sleeve and are *excluded* from the core
   optimisation: no cluster is in both (zero overlap). The sleeve is split equally across
   its clusters. Sleeve / core fractions come from the barbell state: QUIET 15/85,
   NORMAL 10/90, CRISIS 5/95.
4. **Layer 1, across core clusters.** A cvxpy problem over cluster weights ``x`` (fractions
   of the core, ``x >= 0``, ``sum x = 1``) with the cluster cap ``core_fraction * x_c <=
   cluster_cap`` (25% of equity), and a CVaR fragility penalty on the risk measure
   ``rho(x) = sigma(x) + lambda * sum_c x_c CVaR_c`` (cluster CVaRs from
   :func:`allocgym.measures.cvar`; ``sigma`` and CVaR are both in return units):

   * ``min_var``: ``min rho(x)`` (with ``lambda = 0`` this is minimum variance),
   * ``max_sharpe``: ``max mu'x / rho(x)`` (Charnes–Cooper transform; fragility-adjusted
     Sharpe). When no feasible ``x`` has a positive expected return it falls back to
     ``min_var`` and the audit records it.

5. **Reporting.** Gross and net exposure per cluster, a lead asset per cluster (best
   cumulative return over ``lead_window``), and a selection audit per portfolio (regime
   score, barbell state, active constraints, clusters, sleeve, lead assets): evaluation
   writes one record per rebalance into the run's ``selection_audit.json``.

Few clusters (documented behaviour)
-----------------------------------
Let ``K`` be the number of clusters and ``min_core = ceil(max core fraction / cluster_cap)``
(4 with the defaults: 95% cannot sit in fewer than 4 clusters capped at 25%). The sleeve
takes ``n_sleeve = max(1, min(sleeve_size, K - min_core))`` clusters when ``K >= 2`` and
none when ``K == 1``; the rest is the core. So K >= 9: 5 sleeve clusters; K = 6: 2; K = 2..5:
1. The sleeve fraction is therefore exact for every ``K >= 2``. When the core has too few
clusters to hold its fraction under the cap (``n_core * cluster_cap < core_fraction``), every
core cluster is set to the cap and the shortfall stays in cash (``core_cash`` in the audit).

Barbell state
-------------
The regime model's barbell state (``RegimeState.barbell``) sets the sleeve fraction: every
caller passes it as ``AllocationContext.barbell`` (``allocgym.envs.context`` fills it for
evaluation walks and training-time validation), or explicitly as
``allocate(ctx, barbell_state=...)``. A context without it is refused (``DataError``): the
allocator has no second, label-based notion of the barbell state.

Long-only: gross and net per cluster coincide; both are reported as the seed asks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cvxpy as cp
import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from scipy.stats import rankdata

from allocgym.allocator import AllocationContext, context_returns
from allocgym.baselines.classic import (
    MIN_VOL,
    max_linear_over_box_simplex,
    project_box_simplex,
    psd_factor,
    solve_problem,
)
from allocgym.config import BarbellConfig
from allocgym.errors import ConfigError, DataError
from allocgym.estimates import (
    correlation_distance,
    cov_to_corr,
    estimate_covariance,
)
from allocgym.measures import cvar
from allocgym.regime import BARBELL_STATES, REGIME_LABELS

if TYPE_CHECKING:
    from allocgym.config import BaselinesConfig

__all__ = [
    "CRISIS",
    "NORMAL",
    "QUIET",
    "ClusterBarbell",
    "cluster_assets",
    "intra_cluster_weights",
    "n_sleeve_clusters",
]

QUIET, NORMAL, CRISIS = (BARBELL_STATES.index(s) for s in ("QUIET", "NORMAL", "CRISIS"))
_TOL = 1e-7  # a cluster within this of a bound counts as an active constraint


# ----------------------------------------------------------------------------- pure pieces


def cluster_assets(
    distance: np.ndarray,
    method: str = "ward",
    n_clusters: int | None = 10,
    distance_threshold: float | None = None,
) -> np.ndarray:
    """Hierarchical clusters of a distance matrix, labelled 0..K-1 by first member.

    Parameters
    ----------
    distance : ndarray, shape (n, n)
        Symmetric, zero diagonal (correlation distance).
    method : {"single", "complete", "average", "ward"}
    n_clusters : int or None
        ``maxclust`` cut (at most this many clusters).
    distance_threshold : float or None
        ``distance`` cut height, used when ``n_clusters`` is None.

    Returns
    -------
    ndarray of int, shape (n,)
    """
    n = distance.shape[0]
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    z = linkage(squareform(distance, checks=False), method=method)
    if n_clusters is not None:
        raw = fcluster(z, t=n_clusters, criterion="maxclust")
    else:
        raw = fcluster(z, t=distance_threshold, criterion="distance")
    _, first = np.unique(raw, return_index=True)
    order = raw[np.sort(first)]
    remap = {int(c): i for i, c in enumerate(order)}
    return np.array([remap[int(c)] for c in raw], dtype=np.int64)


def intra_cluster_weights(
    vol: np.ndarray, alpha: np.ndarray, labels: np.ndarray, hybrid_weight: float = 0.5
) -> np.ndarray:
    """Layer-2 weights: ``h * IV + (1 - h) * AR`` per cluster, each cluster summing to 1.

    Parameters
    ----------
    vol : ndarray, shape (n,)
        Per-bar volatility (> 0).
    alpha : ndarray, shape (n,)
        Alpha scores (higher is better).
    labels : ndarray of int, shape (n,)
        Cluster label of each asset.
    hybrid_weight : float
        h, the inverse-volatility share.

    Returns
    -------
    ndarray, shape (n,)
    """
    w = np.zeros(labels.shape[0])
    for c in np.unique(labels):
        m = labels == c
        iv = 1.0 / vol[m]
        ar = rankdata(alpha[m], method="average")
        w[m] = hybrid_weight * iv / iv.sum() + (1.0 - hybrid_weight) * ar / ar.sum()
    return w


def n_sleeve_clusters(n_clusters: int, sleeve_size: int, min_core: int) -> int:
    """Number of sleeve clusters given K clusters (see the module docstring).

    ``0`` when ``K == 1``; otherwise ``max(1, min(sleeve_size, K - min_core))``.
    """
    if n_clusters <= 1:
        return 0
    return max(1, min(sleeve_size, n_clusters - min_core))


# ----------------------------------------------------------------------------- layer 1


class _Layer1Problem:
    """Layer-1 cvxpy problem for ``n`` core clusters (built once per (objective, n))."""

    def __init__(self, n: int, objective: str) -> None:
        self.F = cp.Parameter((n, n))
        self.pen = cp.Parameter(n, nonneg=True)
        self.cap = cp.Parameter(n, nonneg=True)
        self.objective = objective
        if objective == "min_var":
            self.x = cp.Variable(n, nonneg=True)
            risk = cp.norm(self.F.T @ self.x, 2) + self.pen @ self.x
            cons = [cp.sum(self.x) == 1, self.x <= self.cap]
        else:
            self.mu = cp.Parameter(n)
            self.x = cp.Variable(n, nonneg=True)  # y of Charnes–Cooper
            self.k = cp.Variable(nonneg=True)
            risk = cp.norm(self.F.T @ self.x, 2) + self.pen @ self.x
            cons = [self.mu @ self.x == 1, cp.sum(self.x) == self.k, self.x <= self.cap * self.k]
        self.problem = cp.Problem(cp.Minimize(risk), cons)
        assert self.problem.is_dcp(dpp=True)


def _layer1(
    cluster_returns: np.ndarray,
    cap: np.ndarray,
    params: BarbellConfig,
    cache: dict[tuple[str, int], _Layer1Problem],
) -> tuple[np.ndarray, dict[str, Any]]:
    """Core cluster weights (fractions of the core, each at most its ``cap``, summing to 1
    unless the caps cannot hold the core) and audit facts."""
    n = cluster_returns.shape[1]
    info: dict[str, Any] = {"objective_used": params.objective, "fallback": None}
    if cap.sum() <= 1.0 + 1e-12:
        info["objective_used"] = "cap_bound"
        return cap * min(1.0, 1.0 / cap.sum()), info
    cov = estimate_covariance(cluster_returns, params.covariance, params.halflife)
    c_var = np.asarray(cvar(cluster_returns.T, params.cvar_alpha), float)
    mu = cluster_returns.mean(axis=0)
    info["cluster_cvar"] = c_var.tolist()
    s = float(np.mean(np.diag(cov))) or 1.0
    # sigma(x) and lambda * CVaR'x are both return units; dividing both by sqrt(s) rescales
    # the objective to unit size without moving its minimiser.
    pen = params.fragility_weight * np.maximum(c_var, 0.0) / math.sqrt(s)
    lo = np.zeros(n)
    objective = params.objective
    if objective == "max_sharpe" and max_linear_over_box_simplex(mu, lo, cap) <= 0:
        objective = "min_var"
        info["objective_used"] = "min_var"
        info["fallback"] = "max_sharpe -> min_var: no feasible core mix has a positive mean"
    key = (objective, n)
    if key not in cache:
        cache[key] = _Layer1Problem(n, objective)
    prob = cache[key]
    prob.F.value = psd_factor(cov / s)
    prob.pen.value = pen
    prob.cap.value = cap
    if objective == "max_sharpe":
        prob.mu.value = mu / np.max(np.abs(mu))
    solve_problem(prob.problem, params.solver, f"cluster barbell layer 1 ({objective}, cap)")
    x = np.asarray(prob.x.value, float)
    if objective == "max_sharpe":
        x = x / float(prob.k.value)
    info["solver_status"] = prob.problem.status
    return project_box_simplex(x, lo, cap), info


# ----------------------------------------------------------------------------- allocator


class ClusterBarbell:
    """Two-layer cluster-aware barbell allocator (long-only).

    Parameters
    ----------
    params : BarbellConfig, optional
        The ``baselines.barbell`` section; the defaults when omitted.

    Attributes
    ----------
    clusters_ : ndarray of int, shape (n_envs, n_assets)
        Cluster label per asset (-1 for inactive assets).
    n_clusters_ : ndarray of int, shape (n_envs,)
    sleeve_clusters_ : list of tuple of int
        Per portfolio, the aggressor-sleeve cluster labels, best alpha first.
    core_clusters_ : list of tuple of int
        Per portfolio, the core cluster labels (disjoint from the sleeve).
    lead_assets_ : list of tuple of int
        Per portfolio, the lead asset (column index) of each cluster, by label.
    lead_mask_ : ndarray of bool, shape (n_envs, n_assets)
    cluster_gross_, cluster_net_ : list of ndarray, shape (K_b,)
        Per portfolio, sum |w| and sum w over each cluster's members (fractions of equity).
    cluster_alpha_ : list of ndarray, shape (K_b,)
        Mean member alpha of each cluster (the sleeve ranking).
    intra_weights_ : ndarray, shape (n_envs, n_assets)
        Layer-2 weights (each cluster sums to 1).
    barbell_state_ : ndarray of int8, shape (n_envs,)
        Codes into ``BARBELL_STATES``.
    sleeve_fraction_ : ndarray, shape (n_envs,)
        Fraction of equity in the sleeve.
    weights_ : ndarray, shape (n_envs, n_assets)
    audit_ : list of dict
        Per portfolio, the JSON-serialisable selection audit.
    """

    name = "cluster_barbell"

    def __init__(self, params: BarbellConfig | None = None) -> None:
        self.params = (params or BarbellConfig()).resolved()
        self._cache: dict[tuple[str, int], _Layer1Problem] = {}

    @classmethod
    def from_config(cls, section: BaselinesConfig) -> ClusterBarbell:
        """Build from ``cfg.baselines``."""
        return cls(section.barbell)

    def _states(
        self, ctx: AllocationContext, barbell_state: np.ndarray | Sequence[str] | str | None
    ) -> tuple[np.ndarray, bool]:
        """Barbell state codes (n_envs,) and whether they were passed explicitly."""
        explicit = barbell_state is not None
        if barbell_state is None:
            if ctx.barbell is None:
                raise DataError(
                    f"{self.name}: the context has no barbell state (ctx.barbell is None): build "
                    "it with allocgym.envs.context.allocation_context, which carries the regime "
                    "model's state, or pass barbell_state= (QUIET, NORMAL, CRISIS or codes)"
                )
            barbell_state = ctx.barbell
        if isinstance(barbell_state, str):
            barbell_state = [barbell_state] * ctx.n_envs
        arr = np.asarray(barbell_state)
        if arr.dtype.kind in "US":
            bad = sorted({s for s in arr.tolist() if s not in BARBELL_STATES})
            if bad:
                raise ConfigError(f"barbell_state {bad} unknown: use one of {BARBELL_STATES}")
            arr = np.array([BARBELL_STATES.index(s) for s in arr.tolist()])
        arr = np.broadcast_to(arr.astype(np.int64), (ctx.n_envs,))
        if ((arr < 0) | (arr >= len(BARBELL_STATES))).any():
            raise ConfigError(
                f"barbell_state codes {np.unique(arr).tolist()}: must index {BARBELL_STATES}"
            )
        return arr.astype(np.int8), explicit

    def allocate(
        self,
        ctx: AllocationContext,
        barbell_state: np.ndarray | Sequence[str] | str | None = None,
    ) -> np.ndarray:
        """Barbell weights, shape (n_envs, n_assets); ``1 - sum(w)`` is cash (0 unless the
        core is cap-bound).

        Parameters
        ----------
        ctx : AllocationContext
        barbell_state : ndarray of int (n_envs,), str or sequence of str, optional
            Explicit barbell states; default ``ctx.barbell`` (the regime model's).

        Raises
        ------
        DataError
            Neither ``barbell_state`` nor ``ctx.barbell`` is given.
        """
        p = self.params
        r = context_returns(ctx, self.name)
        n_envs, n = ctx.n_envs, ctx.n_assets
        states, explicit = self._states(ctx, barbell_state)
        vol = np.std(r, axis=1, ddof=1)
        active = vol > MIN_VOL
        cov = estimate_covariance(r, p.covariance, p.halflife)
        dist = correlation_distance(cov_to_corr(cov))
        alpha = self._alpha(ctx, r, vol)
        lw = min(p.lead_window, r.shape[1])
        lead_perf = np.prod(1.0 + r[:, -lw:, :], axis=1) - 1.0

        self.clusters_ = np.full((n_envs, n), -1, dtype=np.int64)
        self.n_clusters_ = np.zeros(n_envs, dtype=np.int64)
        self.intra_weights_ = np.zeros((n_envs, n))
        self.lead_mask_ = np.zeros((n_envs, n), dtype=bool)
        self.sleeve_clusters_: list[tuple[int, ...]] = []
        self.core_clusters_: list[tuple[int, ...]] = []
        self.lead_assets_: list[tuple[int, ...]] = []
        self.cluster_gross_: list[np.ndarray] = []
        self.cluster_net_: list[np.ndarray] = []
        self.cluster_alpha_: list[np.ndarray] = []
        self.audit_: list[dict[str, Any]] = []
        self.barbell_state_ = states
        self.sleeve_fraction_ = np.zeros(n_envs)
        out = np.zeros((n_envs, n))
        for b in range(n_envs):
            out[b] = self._one(b, ctx, r[b], active[b], vol[b], dist[b], alpha[b],
                               lead_perf[b], int(states[b]), explicit)  # fmt: skip
        self.weights_ = out
        return out

    def _alpha(self, ctx: AllocationContext, r: np.ndarray, vol: np.ndarray) -> np.ndarray:
        if ctx.scores is not None:
            s = np.asarray(ctx.scores, float)
            if s.shape != vol.shape:
                raise DataError(
                    f"{self.name}: ctx.scores has shape {s.shape}; expected (n_envs, n_assets) "
                    f"= {vol.shape}"
                )
        else:
            # Risk-adjusted momentum: log growth over the window / (sigma * sqrt(window)).
            aw = min(self.params.alpha_window, r.shape[1])
            win = r[:, -aw:, :]
            sd = np.std(win, axis=1, ddof=1) * math.sqrt(aw)
            growth = np.log1p(np.maximum(win, -1.0 + 1e-12)).sum(axis=1)
            s = np.divide(growth, sd, out=np.zeros_like(growth), where=sd > 0)
        # Non-finite scores rank last.
        finite = np.isfinite(s)
        floor = np.where(finite, s, np.inf).min(axis=1, keepdims=True)
        floor = np.where(np.isfinite(floor), floor - 1.0, 0.0)
        return np.where(finite, s, floor)

    def _one(
        self,
        b: int,
        ctx: AllocationContext,
        r: np.ndarray,
        active: np.ndarray,
        vol: np.ndarray,
        dist: np.ndarray,
        alpha: np.ndarray,
        lead_perf: np.ndarray,
        state: int,
        explicit: bool,
    ) -> np.ndarray:
        p = self.params
        n = r.shape[1]
        w = np.zeros(n)
        sleeve_frac = p.sleeve_fractions[state]
        code = int(np.asarray(ctx.regime)[b])
        conf = float(np.asarray(ctx.regime_confidence)[b])
        audit: dict[str, Any] = {
            "regime": REGIME_LABELS[code] if 0 <= code < len(REGIME_LABELS) else "unknown",
            "regime_confidence": conf,
            # Score of the regime evidence behind the state: the regime model's confidence,
            # or 1 for a state given explicitly.
            "regime_score": 1.0 if explicit else conf,
            "barbell_state": BARBELL_STATES[state],
            "state_source": "explicit" if explicit else "regime_model",
            "sleeve_fraction_target": sleeve_frac,
            "objective": p.objective,
        }
        idx = np.flatnonzero(active)
        if idx.size == 0:
            audit.update(n_clusters=0, active_constraints=["no_active_assets"], fallback="cash")
            self._record(b, np.zeros(0, int), (), (), (), np.zeros(0), audit)
            return w
        labels = cluster_assets(
            dist[np.ix_(idx, idx)], p.linkage, p.n_clusters, p.distance_threshold
        )
        k = int(labels.max()) + 1
        intra = intra_cluster_weights(vol[idx], alpha[idx], labels, p.hybrid_weight)
        members = [idx[labels == c] for c in range(k)]
        self.clusters_[b, idx] = labels
        self.n_clusters_[b] = k
        self.intra_weights_[b, idx] = intra
        cl_alpha = np.array([alpha[m].mean() for m in members])
        leads = tuple(int(m[np.argmax(lead_perf[m])]) for m in members)
        self.lead_mask_[b, list(leads)] = True

        n_sleeve = n_sleeve_clusters(k, p.sleeve_size, p.min_core)
        ranked = np.lexsort((np.arange(k), -cl_alpha))  # best alpha first, ties by label
        sleeve = tuple(int(c) for c in ranked[:n_sleeve])
        core = tuple(sorted(int(c) for c in ranked[n_sleeve:]))
        assert not set(sleeve) & set(core)
        if n_sleeve == 0:
            sleeve_frac = 0.0
        core_frac = 1.0 - sleeve_frac
        constraints = [f"sleeve_fraction={sleeve_frac:g}"]

        # A cluster holds at most the cluster cap, and at most the name cap over its
        # largest layer-2 weight (equity fractions).
        assert p.max_weight is not None  # resolved at construction
        holds = np.array(
            [min(p.cluster_cap, p.max_weight / intra[labels == c].max()) for c in range(k)]
        )

        # Sleeve: split equally across its clusters, layer-2 weights inside each.
        for c in sleeve:
            m = members[c]
            w[m] = min(sleeve_frac / n_sleeve, holds[c]) * intra[labels == c]
            if holds[c] < sleeve_frac / n_sleeve - _TOL:
                constraints.append(f"symbol_cap:{c}")

        # Core: layer 1 across the core clusters only (sleeve excluded: zero overlap).
        cap_rel = holds[list(core)] / core_frac
        ivec = np.zeros((n, k))
        ivec[idx, labels] = intra
        cluster_r = r @ ivec[:, list(core)]
        x, info = _layer1(cluster_r, cap_rel, p, self._cache)
        invested = core_frac * float(x.sum())
        for j, c in enumerate(core):
            w[members[c]] = core_frac * x[j] * intra[labels == c]
            if x[j] >= cap_rel[j] - _TOL:
                by_name = holds[c] < p.cluster_cap - _TOL
                constraints.append(f"{'symbol_cap' if by_name else 'cluster_cap'}:{c}")
            elif x[j] <= _TOL:
                constraints.append(f"long_only:{c}")
        if info["objective_used"] == "cap_bound":
            constraints.append("core_cap_shortfall")
        audit.update(
            n_clusters=k,
            n_sleeve=n_sleeve,
            sleeve_clusters=list(sleeve),
            core_clusters=list(core),
            cluster_alpha=cl_alpha.tolist(),
            core_weights=(core_frac * x).tolist(),
            sleeve_fraction=float(w[np.concatenate([members[c] for c in sleeve])].sum())
            if sleeve
            else 0.0,
            core_fraction=core_frac,
            core_invested=invested,
            core_cash=max(core_frac - invested, 0.0),
            active_constraints=constraints,
            lead_assets=[ctx.symbols[i] for i in leads],
            clusters=[[ctx.symbols[i] for i in m] for m in members],
            **info,
        )
        self._record(b, labels, sleeve, core, leads, w, audit, members)
        self.sleeve_fraction_[b] = audit["sleeve_fraction"]
        return w

    def _record(
        self,
        b: int,
        labels: np.ndarray,
        sleeve: tuple[int, ...],
        core: tuple[int, ...],
        leads: tuple[int, ...],
        w: np.ndarray,
        audit: dict[str, Any],
        members: list[np.ndarray] | None = None,
    ) -> None:
        members = members or []
        gross = np.array([np.abs(w[m]).sum() for m in members])
        net = np.array([w[m].sum() for m in members])
        audit["cluster_gross"] = gross.tolist()
        audit["cluster_net"] = net.tolist()
        self.sleeve_clusters_.append(sleeve)
        self.core_clusters_.append(core)
        self.lead_assets_.append(leads)
        self.cluster_gross_.append(gross)
        self.cluster_net_.append(net)
        self.cluster_alpha_.append(np.asarray(audit.get("cluster_alpha", []), float))
        self.audit_.append(audit)

    def selection_audit(self) -> dict[str, Any]:
        """Selection audit of the last ``allocate`` call (JSON-serialisable)."""
        return {
            "allocator": self.name,
            "params": self.params.model_dump(mode="json"),
            "portfolios": self.audit_,
        }

    def selection_records(self) -> list[dict[str, Any]]:
        """Per portfolio of the last ``allocate`` call, its selection-audit record (regime
        score, barbell state, active constraints, clusters, sleeve and core clusters, lead
        assets); evaluation writes one per rebalance into ``selection_audit.json``."""
        return [dict(a) for a in self.audit_]

    def write_selection_audit(self, path: str | Path) -> Path:
        """Write :meth:`selection_audit` as JSON (``selection_audit.json`` by convention)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.selection_audit(), indent=2, sort_keys=True) + "\n")
        return out
