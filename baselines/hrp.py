"""Hierarchical Risk Parity (López de Prado, 2016).

Three steps: a linkage tree over the correlation distance ``sqrt(0.5 (1 - rho))``
(scipy: single, ward, average, complete), quasi-diagonalisation (the dendrogram's
left-to-right leaf order, no optimal leaf ordering), and recursive bisection of that order
into halves, splitting each parent's weight in inverse proportion to the variance of the
halves' inverse-variance portfolios. Per-asset min/max weight bounds clamp every split.

Conventions match skfolio's ``HierarchicalRiskParity`` (risk measure variance, Pearson
distance of the returns, ``np.cov`` covariance, positional bisection ``n // 2``, the same
bound clamping), so both give the same weights to ~1e-15. The bisection here is
vectorised by tree level: every level costs O(n_assets^2) block sums, no pandas and no
Python loop over clusters.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.cluster.hierarchy as sch
from scipy.spatial.distance import squareform

from allocgym import estimates
from allocgym.allocator import context_returns
from allocgym.config import HRPConfig
from allocgym.errors import DataError, Infeasible
from allocgym.estimates import estimate_covariance

if TYPE_CHECKING:
    from allocgym.allocator import AllocationContext

LinkageMethod = Literal["single", "ward", "average", "complete"]
LINKAGE_METHODS: tuple[str, ...] = ("single", "ward", "average", "complete")

__all__ = [
    "HRP",
    "LINKAGE_METHODS",
    "check_weight_bounds",
    "hrp_tree",
    "leaf_order",
    "recursive_bisection",
]


def hrp_tree(distance: np.ndarray, method: LinkageMethod = "ward") -> tuple[np.ndarray, np.ndarray]:
    """Linkage tree and quasi-diagonal leaf order of a distance matrix.

    Parameters
    ----------
    distance : ndarray, shape (n_assets, n_assets)
        Symmetric distances (the diagonal is ignored).
    method : {"single", "ward", "average", "complete"}

    Returns
    -------
    linkage : ndarray, shape (n_assets - 1, 4)
        scipy linkage matrix (no optimal leaf ordering).
    order : ndarray of int, shape (n_assets,)
        Leaves left to right: the quasi-diagonalisation permutation.
    """
    n = distance.shape[0]
    if n < 2:
        return np.empty((0, 4)), np.arange(n)
    condensed = squareform(distance, checks=False)
    linkage = sch.linkage(condensed, method=method, optimal_ordering=False)
    return linkage, leaf_order(linkage)


def leaf_order(linkage: np.ndarray) -> np.ndarray:
    """Left-to-right leaf order of a scipy linkage tree (same as ``sch.leaves_list``).

    Vectorised by pointer jumping: a node's position is the sum, over the node and its
    ancestors, of the size of the left sibling of every right child on the path. Doubling
    the parent pointers resolves all paths in ``ceil(log2(depth))`` numpy passes, so a
    chained (single-linkage) tree of depth ``n_assets`` costs ``O(n log n)``.

    Parameters
    ----------
    linkage : ndarray, shape (n_assets - 1, 4)

    Returns
    -------
    ndarray of int, shape (n_assets,)
    """
    n = linkage.shape[0] + 1
    if n == 1:
        return np.zeros(1, dtype=np.intp)
    n_nodes = 2 * n - 1
    children = linkage[:, :2].astype(np.intp)
    size = np.ones(n_nodes + 1)
    size[n:n_nodes] = linkage[:, 3]
    # Node n_nodes is a sentinel above the root: offset 0, points to itself.
    parent = np.full(n_nodes + 1, n_nodes, dtype=np.intp)
    internal = np.arange(n, n_nodes, dtype=np.intp)
    parent[children[:, 0]] = internal
    parent[children[:, 1]] = internal
    offset = np.zeros(n_nodes + 1)
    offset[children[:, 1]] = size[children[:, 0]]
    while True:
        up = parent[parent]
        offset += offset[parent]
        if (up == parent).all():
            break
        parent = up
    order = np.empty(n, dtype=np.intp)
    order[offset[:n].astype(np.intp)] = np.arange(n, dtype=np.intp)
    return order


def check_weight_bounds(min_weights: np.ndarray, max_weights: np.ndarray) -> None:
    """Refuse per-asset bounds that no fully invested long-only book can meet.

    Raises
    ------
    Infeasible
        When ``sum(min) > 1``, ``sum(max) < 1``, a bound lies outside [0, 1] or min > max.
    """
    tol = 1e-8
    if (min_weights < 0).any() or (max_weights > 1).any() or (min_weights > max_weights).any():
        raise Infeasible(
            "HRP weight bounds need 0 <= min_weight <= max_weight <= 1 per asset; got min "
            f"{min_weights.min():.4g}..{min_weights.max():.4g}, max {max_weights.min():.4g}.."
            f"{max_weights.max():.4g}."
        )
    if min_weights.sum() > 1 + tol:
        raise Infeasible(
            f"HRP min weights sum to {min_weights.sum():.6g} > 1 over {min_weights.size} assets; "
            "lower baselines.hrp.min_weight."
        )
    if max_weights.sum() < 1 - tol:
        raise Infeasible(
            f"HRP max weights sum to {max_weights.sum():.6g} < 1 over {max_weights.size} assets; "
            "raise baselines.hrp.max_weight."
        )


def recursive_bisection(
    cov: np.ndarray,
    order: np.ndarray,
    min_weights: np.ndarray | None = None,
    max_weights: np.ndarray | None = None,
) -> np.ndarray:
    """HRP recursive bisection, vectorised over the clusters of each tree level.

    The order is split positionally (left half ``n // 2``); each split gives the left half
    ``alpha = 1 - v_L / (v_L + v_R)`` of the parent's weight, with ``v`` the variance of
    the half's inverse-variance portfolio, then clamps ``alpha`` so both halves can still
    meet their bounds.

    Parameters
    ----------
    cov : ndarray, shape (n_assets, n_assets)
        Covariance (positive diagonal).
    order : ndarray of int, shape (n_assets,)
        Quasi-diagonal order (a permutation of ``range(n_assets)``).
    min_weights, max_weights : ndarray, shape (n_assets,), optional
        Per-asset bounds (defaults 0 and 1).

    Returns
    -------
    ndarray, shape (n_assets,)
        Long-only weights summing to 1, in the original asset order.
    """
    n = order.size
    weights = np.empty(n)
    if n == 0:
        return weights
    if n == 1:
        weights[:] = 1.0
        return weights
    bounded = min_weights is not None or max_weights is not None
    if bounded:
        lo = np.zeros(n) if min_weights is None else np.asarray(min_weights, dtype=np.float64)
        hi = np.ones(n) if max_weights is None else np.asarray(max_weights, dtype=np.float64)
        check_weight_bounds(lo, hi)
        lo_o, hi_o = lo[order], hi[order]
    so = cov[np.ix_(order, order)]
    inv_var = 1.0 / np.diag(so)
    # Block sums of diag(u) S diag(u) give each segment's unnormalised IVP variance.
    scaled = so * inv_var[:, None] * inv_var[None, :]
    seg_w = np.ones(1)
    for starts, split_idx, left, repeats in _bisection_plan(n):
        rows = np.add.reduceat(scaled, starts, axis=0)
        quad = np.add.reduceat(rows, starts, axis=1).diagonal()
        norm = np.add.reduceat(inv_var, starts)
        var = quad / (norm * norm)
        v_left, v_right = var[left], var[left + 1]
        alpha = 1 - v_left / (v_left + v_right)
        parent = seg_w[split_idx]
        if bounded:
            sum_hi = np.add.reduceat(hi_o, starts)
            sum_lo = np.add.reduceat(lo_o, starts)
            alpha = np.minimum(sum_hi[left] / parent, np.maximum(sum_lo[left] / parent, alpha))
            alpha = 1 - np.minimum(
                sum_hi[left + 1] / parent, np.maximum(sum_lo[left + 1] / parent, 1 - alpha)
            )
        seg_w = np.repeat(seg_w, repeats)
        seg_w[left] = parent * alpha
        seg_w[left + 1] = parent * (1 - alpha)
    weights[order] = seg_w
    return weights


@lru_cache(maxsize=128)
def _bisection_plan(n: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]:
    """Segment layout of every bisection level: it depends on ``n`` only, so it is cached.

    Each level is ``(starts, split_idx, left, repeats)``: the start of every segment after
    the split, the parent segments that split, the index of each split's left child (its
    right child follows it), and how many children each parent segment has.
    """
    levels = []
    starts = np.zeros(1, dtype=np.intp)
    lengths = np.full(1, n, dtype=np.intp)
    while (lengths > 1).any():
        split = lengths > 1
        split_idx = np.flatnonzero(split)
        mids = starts[split_idx] + lengths[split_idx] // 2
        starts = np.insert(starts, split_idx + 1, mids)
        lengths = np.diff(np.append(starts, n))
        left = split_idx + np.arange(split_idx.size)
        repeats = np.where(split, 2, 1)
        level = (starts, split_idx, left, repeats)
        for a in level:
            a.setflags(write=False)
        levels.append(level)
    return tuple(levels)


class HRP:
    """Hierarchical Risk Parity allocator (long-only, fully invested, bounded).

    Parameters
    ----------
    params : HRPConfig, optional
        Linkage method, covariance estimator and weight bounds (validated by the
        section); the defaults when omitted.

    Attributes
    ----------
    weights_ : ndarray, shape (n_assets,)
        Weights of the last :meth:`fit`.
    covariance_ : ndarray, shape (n_assets, n_assets)
    distance_ : ndarray, shape (n_assets, n_assets)
    linkage_ : ndarray, shape (n_assets - 1, 4)
    order_ : ndarray of int, shape (n_assets,)
        Quasi-diagonal order of the last fit.
    allocation_ : ndarray, shape (n_envs, n_assets)
        Weights of the last :meth:`allocate` call.
    active_ : ndarray of bool, shape (n_envs, n_assets)
        Assets with positive variance in each window of the last :meth:`allocate` (the
        others get weight 0).
    """

    name = "hrp"

    def __init__(self, params: HRPConfig | None = None) -> None:
        self.params = params or HRPConfig()

    @classmethod
    def from_config(cls, cfg: HRPConfig) -> HRP:
        return cls(cfg)

    def fit(self, returns: np.ndarray) -> HRP:
        """Fit on one return window.

        Parameters
        ----------
        returns : ndarray, shape (n_obs, n_assets)
            Simple returns; every asset needs positive variance.

        Returns
        -------
        HRP
            ``self``, with ``weights_``, ``covariance_``, ``distance_``, ``linkage_`` and
            ``order_`` set.
        """
        x = np.asarray(returns, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise DataError(
                f"HRP.fit needs returns of shape (n_obs >= 2, n_assets); got {x.shape}."
            )
        p = self.params
        cov = estimate_covariance(x, p.covariance, p.halflife)
        var = np.diag(cov)
        if not (var > 0).all():
            bad = np.flatnonzero(~(var > 0))
            raise DataError(
                f"HRP needs positive variance for every asset; assets {bad.tolist()} have "
                f"variance {var[bad].tolist()}. Drop them or use allocate(), which skips them."
            )
        if p.distance_source == "returns" and p.covariance != "sample":
            corr = estimates.cov_to_corr(estimates.sample_covariance(x))
        else:
            corr = estimates.cov_to_corr(cov)
        distance = estimates.correlation_distance(corr)
        linkage, order = hrp_tree(distance, p.linkage_method)
        n = x.shape[1]
        lo = np.full(n, p.min_weight) if p.min_weight > 0 else None
        hi = np.full(n, p.max_weight) if p.max_weight < 1 else None
        self.weights_ = recursive_bisection(cov, order, lo, hi)
        self.covariance_ = cov
        self.distance_ = distance
        self.linkage_ = linkage
        self.order_ = order
        return self

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """HRP weights for each portfolio's return window.

        Each portfolio is an independent optimisation (its own tree), so this loops over
        ``n_envs``. Assets with zero variance in a window (untradable) get weight 0, and a
        window where every asset has zero variance (a market-wide halt) an all-cash row,
        as the other allocators give it.

        Parameters
        ----------
        ctx : AllocationContext
            Uses ``ctx.returns`` (n_envs, lookback, n_assets).

        Returns
        -------
        ndarray, shape (n_envs, n_assets)
        """
        returns = context_returns(ctx, "HRP")  # NaN is refused, not a zero-variance asset
        n_envs, _, n_assets = returns.shape
        out = np.zeros((n_envs, n_assets))
        active = np.zeros((n_envs, n_assets), dtype=bool)
        for e in range(n_envs):
            x = returns[e]
            ok = x.std(axis=0) > 0
            active[e] = ok
            if not ok.any():
                continue
            self.fit(x[:, ok] if not ok.all() else x)
            out[e, ok] = self.weights_
        self.allocation_ = out
        self.active_ = active
        return out
