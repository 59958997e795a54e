"""The ``Allocator`` protocol: every baseline, the SB3 policy wrapper and ``FrozenPolicy``
turn a past-only ``AllocationContext`` into proposed weights ``(n_envs, n_assets)``.

Evaluation runs any Allocator through the same environment, gates and costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class AllocationContext:
    """What an allocator may see at bar t (data up to and including t only).

    Attributes
    ----------
    returns : ndarray, shape (n_envs, lookback, n_assets)
        Simple returns of the trailing ``lookback`` bars, the last row being bar t.
    current_weights : ndarray, shape (n_envs, n_assets)
        Book before this decision, as signed fractions of equity.
    symbols : tuple of str
    sector_ids : ndarray of int, shape (n_assets,)
    regime : ndarray of int, shape (n_envs,)
        Codes into ``allocgym.regime.REGIME_LABELS`` (-1 unknown).
    regime_confidence : ndarray, shape (n_envs,)
    scores : ndarray, shape (n_envs, n_assets), optional
        Alpha z-scores (risk-scaled, cross-sectionally standardised) at bar t.
    betas : ndarray, shape (n_envs, n_assets), optional
        Betas to the benchmark at bar t.
    costs : ndarray, shape (n_envs, n_assets), optional
        Expected cost per unit of weight traded (decimal fraction of traded notional).
    benchmark_returns : ndarray, shape (n_envs, lookback), optional
    t : ndarray of int, shape (n_envs,), optional
        Bar index of each portfolio (for allocators that rebalance on a schedule).
    barbell : ndarray of int, shape (n_envs,), optional
        The regime model's barbell state, codes into ``allocgym.regime.BARBELL_STATES``.
    """

    returns: np.ndarray
    current_weights: np.ndarray
    symbols: tuple[str, ...]
    sector_ids: np.ndarray
    regime: np.ndarray
    regime_confidence: np.ndarray
    scores: np.ndarray | None = None
    betas: np.ndarray | None = None
    costs: np.ndarray | None = None
    benchmark_returns: np.ndarray | None = None
    t: np.ndarray | None = None
    barbell: np.ndarray | None = None

    @property
    def n_envs(self) -> int:
        return int(self.current_weights.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self.current_weights.shape[1])


@runtime_checkable
class Allocator(Protocol):
    """Maps a context to proposed weights; the risk gates decide what is approved."""

    name: str

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Proposed weights, shape (ctx.n_envs, ctx.n_assets), float64."""
        ...


BOOK_KEPT = "book kept (error)"
"""Fallback stage of a rebalance where the allocator raised ``OptimizationError``: the
evaluation keeps the current book."""


def source_of(allocator: object, row: int) -> str:
    """The stage that produced row ``row`` of an allocator's last ``allocate`` call.

    An allocator with a fallback chain records, per portfolio of its last call, the stage
    that produced the weights in ``source_`` (a list of str) and names its ordinary stage
    in ``primary_source`` (e.g. the QP: ``"qp:CLARABEL"``, then ``"qp:CLARABEL:accurate"``,
    ``"qp:SCS"``, ``"hrp"``, ``"current_book"``). Any other allocator has one stage: its
    ``name``.
    """
    sources = getattr(allocator, "source_", None)
    if isinstance(sources, list | tuple) and 0 <= row < len(sources):
        return str(sources[row])
    return str(getattr(allocator, "primary_source", getattr(allocator, "name", "allocate")))


def primary_source_of(allocator: object) -> str:
    """The stage of an allocator's ordinary (non-fallback) call (see :func:`source_of`)."""
    return str(getattr(allocator, "primary_source", getattr(allocator, "name", "allocate")))
