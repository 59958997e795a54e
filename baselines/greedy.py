"""Greedy top-K rotation with hysteresis ("cut low performer / buy better /
rotate green to better"), vectorised over portfolios.

Rules, applied to a long-only top-K book (per portfolio, ``rank`` is 1-based in the order
of a stable sort by ``(-z, symbol index)``, so ties go to the lower symbol index):

1. **CUT**: a held name with ``rank > K_sell`` and ``z < z_cut`` goes to 0. A short
   position (``w_cur < 0``) is closed and coded CUT as well (the book is long-only).
2. **HOLD**: every other held name keeps its current weight (hysteresis: a name bought in
   the top ``K_buy`` is only cut once it falls below ``K_sell`` *and* ``z_cut``).
3. **BUY**: candidates are unheld names with ``rank <= K_buy`` and ``z > z_keep``; in rank
   order they fill the free slots ``K - held`` at the target weight ``budget / K``.
4. **ROTATE**: the remaining candidates, best first, are paired with the held names,
   weakest first (worst rank first). Pair ``(out, in)`` rotates when
   ``z_in - z_out >= delta_z_min`` and its utility exceeds ``tau_utility``, where the
   utility is the change of the QP's objective ``z'w - gamma ||C (w - w_cur)||_1``
   from the swap: ``z_in w_t - z_out w_out - gamma (C_in w_t + C_out w_out)``. Both
   names are coded ROTATE (the outgoing one ends at 0, the incoming one at ``w_t``).

Cost: one stable argsort per portfolio, O(N log N); everything else is O(N).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import TYPE_CHECKING

import numpy as np

from allocgym.errors import ConfigError, DataError

if TYPE_CHECKING:
    from allocgym.allocator import AllocationContext
    from allocgym.config import GreedyConfig

__all__ = ["GreedyCode", "GreedyParams", "GreedyResult", "GreedyRotation", "greedy_rotation"]


class GreedyCode(IntFlag):
    """Per-symbol decision of the greedy engine (stable bits)."""

    NONE = 0
    """Not held and not bought."""
    HOLD = 1
    """Held and kept at its current weight (inside the hysteresis band)."""
    CUT = 2
    """Held and cut to 0 (rank > K_sell and z < z_cut), or a short closed."""
    BUY = 4
    """Bought into a free slot at budget / K."""
    ROTATE = 8
    """Part of a rotation: sold to 0 (weight 0) or bought at budget / K."""


@dataclass(frozen=True)
class GreedyParams:
    """Rotation thresholds; field meanings in :class:`allocgym.config.GreedyConfig`."""

    K: int = 20
    K_buy: int = 18
    K_sell: int = 24
    z_keep: float = 0.8
    z_cut: float = 0.2
    delta_z_min: float = 0.25
    tau_utility: float = 0.0
    gamma_cost: float = 0.05
    budget: float = 1.0
    default_cost: float = 0.001

    def __post_init__(self) -> None:
        if not 1 <= self.K_buy <= self.K <= self.K_sell:
            raise ConfigError(
                f"greedy needs 1 <= K_buy <= K <= K_sell; got K_buy={self.K_buy}, K={self.K}, "
                f"K_sell={self.K_sell}. Set baselines.greedy.K_* accordingly."
            )
        if self.z_cut > self.z_keep:
            raise ConfigError(
                f"greedy z_cut={self.z_cut} > z_keep={self.z_keep} inverts the hysteresis band; "
                "set baselines.greedy.z_cut <= z_keep."
            )
        if not (self.budget > 0 and self.delta_z_min >= 0 and self.gamma_cost >= 0):
            raise ConfigError(
                f"greedy budget must be > 0, delta_z_min and gamma_cost >= 0; got {self.budget}, "
                f"{self.delta_z_min}, {self.gamma_cost}."
            )

    @property
    def target_weight(self) -> float:
        """Weight of a bought name, ``budget / K``."""
        return self.budget / self.K

    @classmethod
    def from_config(cls, cfg: GreedyConfig) -> GreedyParams:
        return cls(**cfg.model_dump())


@dataclass(frozen=True)
class GreedyResult:
    """Output of :func:`greedy_rotation`.

    Attributes
    ----------
    weights : ndarray, shape (n_envs, n_assets)
    codes : ndarray of int64, shape (n_envs, n_assets)
        :class:`GreedyCode` bits per symbol.
    ranks : ndarray of int64, shape (n_envs, n_assets)
        1-based rank by ``(-z, symbol index)``.
    """

    weights: np.ndarray
    codes: np.ndarray
    ranks: np.ndarray


def greedy_rotation(
    z: np.ndarray, w_cur: np.ndarray, costs: np.ndarray, params: GreedyParams
) -> GreedyResult:
    """Apply the greedy top-K rules to a batch of books.

    Parameters
    ----------
    z : ndarray, shape (n_envs, n_assets)
        Risk-scaled scores; NaN means "no score" (ranked last, never bought).
    w_cur : ndarray, shape (n_envs, n_assets)
        Current weights (fractions of equity).
    costs : ndarray, shape (n_envs, n_assets)
        Cost per unit of weight traded (decimal).
    params : GreedyParams

    Returns
    -------
    GreedyResult
    """
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    w_cur = np.atleast_2d(np.asarray(w_cur, dtype=np.float64))
    costs = np.broadcast_to(np.asarray(costs, dtype=np.float64), z.shape)
    if z.shape != w_cur.shape:
        raise DataError(f"greedy: scores shape {z.shape} != current weights shape {w_cur.shape}.")
    n_envs, n = z.shape
    if n == 0:
        empty = np.zeros((n_envs, 0), dtype=np.int64)
        return GreedyResult(weights=np.zeros((n_envs, 0)), codes=empty, ranks=empty.copy())
    rows = np.arange(n_envs)[:, None]
    zz = np.where(np.isnan(z), -np.inf, z)
    # Stable sort of -z: equal scores keep symbol-index order.
    order = np.argsort(-zz, axis=1, kind="stable")
    ranks = np.empty((n_envs, n), dtype=np.int64)
    ranks[rows, order] = np.arange(1, n + 1)

    held = w_cur > 0
    short = w_cur < 0
    cut = (held & (ranks > params.K_sell) & (zz < params.z_cut)) | short
    kept = held & ~cut
    n_kept = kept.sum(axis=1)
    free = np.maximum(params.K - n_kept, 0)

    cand = ~held & ~short & (ranks <= params.K_buy) & (zz > params.z_keep)
    cand_sorted = cand[rows, order]
    cand_num = np.cumsum(cand_sorted, axis=1)
    buy_sorted = cand_sorted & (cand_num <= free[:, None])
    rot_sorted = cand_sorted & ~buy_sorted

    # Rotation pairs: m-th leftover candidate (best first) with m-th weakest kept name.
    order_rev = order[:, ::-1]
    kept_rev = kept[rows, order_rev]
    kept_num = np.cumsum(kept_rev, axis=1)
    n_cand = cand_num[:, -1]
    n_pairs = np.minimum(n_cand - np.minimum(n_cand, free), n_kept)
    in_sym = np.full((n_envs, n), -1, dtype=np.intp)
    out_sym = np.full((n_envs, n), -1, dtype=np.intp)
    rb, rp = np.nonzero(rot_sorted)
    in_sym[rb, cand_num[rb, rp] - free[rb] - 1] = order[rb, rp]
    kb, kp = np.nonzero(kept_rev)
    out_sym[kb, kept_num[kb, kp] - 1] = order_rev[kb, kp]

    w_t = params.target_weight
    pair_ok = np.arange(in_sym.shape[1])[None, :] < n_pairs[:, None]
    pb, pm = np.nonzero(pair_ok)
    j_in, j_out = in_sym[pb, pm], out_sym[pb, pm]
    z_in, z_out = zz[pb, j_in], zz[pb, j_out]
    w_out = w_cur[pb, j_out]
    utility = (
        z_in * w_t
        - z_out * w_out
        - params.gamma_cost * (costs[pb, j_in] * w_t + costs[pb, j_out] * w_out)
    )
    rotate = (z_in - z_out >= params.delta_z_min) & (utility > params.tau_utility)
    rb2, j_in, j_out = pb[rotate], j_in[rotate], j_out[rotate]

    weights = np.where(kept, w_cur, 0.0)
    codes = np.zeros((n_envs, n), dtype=np.int64)
    codes[kept] = GreedyCode.HOLD
    codes[cut] = GreedyCode.CUT
    bb, bp = np.nonzero(buy_sorted)
    buy_sym = order[bb, bp]
    weights[bb, buy_sym] = w_t
    codes[bb, buy_sym] = GreedyCode.BUY
    weights[rb2, j_out] = 0.0
    weights[rb2, j_in] = w_t
    codes[rb2, j_out] = GreedyCode.ROTATE
    codes[rb2, j_in] = GreedyCode.ROTATE
    return GreedyResult(weights=weights, codes=codes, ranks=ranks)


class GreedyRotation:
    """The greedy rotation engine as an :class:`~allocgym.allocator.Allocator`.

    Parameters
    ----------
    params : GreedyParams, optional

    Attributes
    ----------
    weights_ : ndarray, shape (n_envs, n_assets)
        Weights of the last :meth:`allocate` call.
    codes_ : ndarray of int64, shape (n_envs, n_assets)
        :class:`GreedyCode` bits of the last call.
    ranks_ : ndarray of int64, shape (n_envs, n_assets)
    """

    name = "greedy"

    def __init__(self, params: GreedyParams | None = None) -> None:
        self.params = params or GreedyParams()

    @classmethod
    def from_config(cls, cfg: GreedyConfig) -> GreedyRotation:
        return cls(GreedyParams.from_config(cfg))

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Greedy top-K weights from ``ctx.scores``, ``ctx.current_weights``, ``ctx.costs``.

        Returns
        -------
        ndarray, shape (ctx.n_envs, ctx.n_assets)
        """
        if ctx.scores is None:
            raise DataError(
                "greedy rotation needs ctx.scores (alpha z-scores); build the context with "
                "scores from allocgym.features.alpha_scores."
            )
        costs = (
            ctx.costs
            if ctx.costs is not None
            else np.full(ctx.current_weights.shape, self.params.default_cost)
        )
        res = greedy_rotation(ctx.scores, ctx.current_weights, costs, self.params)
        self.weights_, self.codes_, self.ranks_ = res.weights, res.codes, res.ranks
        return res.weights
