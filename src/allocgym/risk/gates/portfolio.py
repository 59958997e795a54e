"""The factor-exposure limit's measure and gate, which run in Python after the compiled
gates (``allocgym.compiled.gates``): its exposures are sums over the middle axis of
(n, N, k) loadings, whose order numpy's iterator picks by shape (pairwise for one factor,
sequential for several), so a kernel would not reproduce them bit for bit. Its gate
scales the whole book, which keeps every limit before it in the registry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from allocgym.risk.codes import ReasonCode
from allocgym.risk.context import Book, Bounds
from allocgym.risk.kernels import (
    Trace,
    all_below,
    all_of,
    is_inside,
    is_over,
    replace_rows,
    rows_all,
    rows_any,
    subset_rows,
)


def scale_rows(
    w: np.ndarray, value: np.ndarray, cap: Any, over: np.ndarray, code: ReasonCode, trace: Trace
) -> np.ndarray:
    """Scale whole rows where ``over`` by ``cap / value`` (uniform: keeps every other limit)."""
    if not over.any():
        return w
    rows = subset_rows(over)
    if rows is None:
        block = w * (cap / value)[:, None]
        if not over.all():
            block = np.where(over[:, None], block, w)
        trace.record(code, w, block, portfolio=True)
        return block
    limit = cap[rows] if isinstance(cap, np.ndarray) else cap
    block = w[rows] * (limit / value[rows])[:, None]
    trace.record(code, w[rows], block, portfolio=True, rows=rows)
    return replace_rows(w, rows, block)


# ----------------------------------------------------------------------------- measures


def factor_exposure(book: Book, b: Bounds) -> tuple[np.ndarray, np.ndarray]:
    """The terms ``B_ik w_i`` (n, N, k) and ``|B^T w|`` per factor (n, k); the sum of the
    absolute terms over the names is the exposure's tolerance."""
    terms = b.loadings * book.w[:, :, None]
    return terms, np.abs(terms.sum(axis=1))


def factor_inside(book: Book, b: Bounds) -> np.ndarray | None:
    """Portfolios with every ``|(B^T w)_k|`` within ``max_factor_exposure`` (``None``: off)."""
    if b.loadings is None:
        return None
    terms, exposure = factor_exposure(book, b)
    below = exposure <= b.factor_cap
    if not all_of(below):
        below = is_inside(exposure, b.factor_cap, np.abs(terms).sum(axis=1))
    return rows_all(below)


# ----------------------------------------------------------------------------- gates


def factor_gate(book: Book, b: Bounds, trace: Trace) -> None:
    """FACTOR_CAP: scale the whole book by ``cap / max_k |(B^T w)_k|``, so the largest
    factor exposure equals the cap. Exposures are linear in ``w``, so the uniform scale
    fits every factor at once and, shrinking every name, keeps every limit before it."""
    if b.loadings is None:
        return
    terms, exposure = factor_exposure(book, b)
    if all_below(exposure, b.factor_cap):
        return
    over = rows_any(is_over(exposure, b.factor_cap, np.abs(terms).sum(axis=1)))
    largest = exposure.max(axis=1)
    book.update(scale_rows(book.w, largest, b.factor_cap, over, ReasonCode.FACTOR_CAP, trace))
