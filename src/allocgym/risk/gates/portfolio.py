"""Portfolio-level hard limits: sector gross, net, beta, gross, gross notional and factor
exposure.

Each limit has a measure (``*_inside``: which portfolios are inside, (n,) bool, ``None``
when the limit is off) and a gate that scales the portfolios outside back to the bound in
a way that keeps every limit before it in the registry: a sector, the dominant side (net),
the side carrying the excess beta, or the whole book (gross, notional, factor exposure).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from allocgym.risk.codes import ReasonCode
from allocgym.risk.context import Book, Bounds
from allocgym.risk.kernels import (
    ATOL,
    RTOL,
    Trace,
    all_below,
    all_of,
    is_inside,
    is_over,
    replace_rows,
    rows_all,
    rows_any,
    signed_excess,
    subset_rows,
    within,
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


def scale_side(
    w: np.ndarray,
    terms: np.ndarray,
    cap: float,
    code: ReasonCode,
    trace: Trace,
    abs_sum: np.ndarray | None = None,
) -> np.ndarray:
    """Bring ``|sum(terms)|`` inside ``cap`` by shrinking only the side carrying the excess.

    ``terms`` are the per-symbol contributions (``w`` for net, ``beta * w`` for beta).
    Shrinking symbols toward zero keeps the symbol, sector, gross and notional limits.
    Only the rows over the limit change (large batches compute only those).
    """
    total = terms.sum(axis=1)
    size = np.abs(total)
    if all_below(size, cap):  # the tolerance only widens +-cap
        return w
    mag = np.abs(terms).sum(axis=1) if abs_sum is None else abs_sum
    over = ~(size <= (mag + cap) * RTOL + (cap + ATOL))
    if not over.any():
        return w
    rows = subset_rows(over)
    t, wr, tot = (terms, w, total) if rows is None else (terms[rows], w[rows], total[rows])
    # Each side summed directly: deriving it from the total would cancel catastrophically.
    mt = -t
    pos = np.maximum(t, 0.0).sum(axis=1)
    neg = np.maximum(mt, 0.0).sum(axis=1)
    high = tot > 0
    # high: (cap + neg) / pos on the positive side, else (cap + pos) / neg on the negative
    factor = (cap + np.where(high, neg, pos)) / np.where(high, pos, neg)
    side = np.where(high[:, None], t, mt) > 0
    if rows is None and not over.all():
        side &= over[:, None]
    block = np.where(side, wr * factor[:, None], wr)
    trace.record(code, wr, block, portfolio=True, rows=rows)
    return block if rows is None else replace_rows(w, rows, block)


# ----------------------------------------------------------------------------- measures


def sector_inside(book: Book, b: Bounds) -> np.ndarray:
    """Portfolios whose every sector's gross is within ``max_sector_gross``."""
    sg = b.sectors.sums(book.aw)
    return rows_all(within(sg, b.sector_cap))


def net_inside(book: Book, b: Bounds) -> np.ndarray:
    """Portfolios with ``|sum w|`` within ``max_net`` (tolerance on the gross)."""
    net = np.abs(book.w.sum(axis=1))
    below = net <= b.net_cap  # the tolerance only widens the cap
    if all_of(below):
        return below
    return net <= (book.gross + b.net_cap) * RTOL + (b.net_cap + ATOL)


def beta_inside(book: Book, b: Bounds) -> np.ndarray | None:
    """Portfolios with ``|beta^T w|`` within ``beta_tolerance`` (``None`` when off)."""
    if b.betas is None:
        return None
    terms = b.betas * book.w
    beta = np.abs(terms.sum(axis=1))
    below = beta <= b.beta_tol
    if all_of(below):
        return below
    return beta <= (np.abs(terms).sum(axis=1) + b.beta_tol) * RTOL + (b.beta_tol + ATOL)


def gross_inside(book: Book, b: Bounds) -> np.ndarray:
    """Portfolios with ``sum |w|`` within ``max_gross x budget``."""
    return within(book.gross, b.gross_cap)


def notional_inside(book: Book, b: Bounds) -> np.ndarray | None:
    """Portfolios with ``sum |w| x equity`` within ``max_gross_notional`` (``None``: off)."""
    if b.notional_cap is None:
        return None
    return within(book.gross, b.notional_cap)


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


def sector_gate(book: Book, b: Bounds, trace: Trace) -> None:
    """SECTOR_CAP: scale each sector over its cap down to it."""
    sg = b.sectors.sums(book.aw)
    if all_below(sg, b.sector_cap):
        return
    inside = is_inside(sg, b.sector_cap, sg)
    if inside.all():
        return
    w = book.w
    over = ~inside
    rows = subset_rows(rows_any(over))
    # a row without a sector over has scale 1 everywhere: w * 1.0 is w, bit for bit
    o, g, wr = (over, sg, w) if rows is None else (over[rows], sg[rows], w[rows])
    scale = np.where(o, b.sector_cap / np.where(o, g, 1.0), 1.0)
    block = wr * b.sectors.spread(scale)
    trace.record(ReasonCode.SECTOR_CAP, wr, block, portfolio=True, rows=rows)
    book.update(block if rows is None else replace_rows(w, rows, block))


def net_gate(book: Book, b: Bounds, trace: Trace) -> None:
    """NET_CAP: shrink the dominant side until ``|sum w|`` fits."""
    book.update(scale_side(book.w, book.w, b.net_cap, ReasonCode.NET_CAP, trace, book.gross))


def beta_gate(book: Book, b: Bounds, trace: Trace) -> None:
    """BETA_LIMIT: shrink the side carrying the excess beta; the net is then re-fitted by a
    uniform scale (which keeps the beta)."""
    if b.betas is None:
        return
    w = book.w
    fixed = scale_side(w, b.betas * w, b.beta_tol, ReasonCode.BETA_LIMIT, trace)
    if fixed is not w:
        net, over = signed_excess(fixed, b.net_cap)
        fixed = scale_rows(fixed, np.abs(net), b.net_cap, over, ReasonCode.NET_CAP, trace)
    book.update(fixed)


def gross_gate(book: Book, b: Bounds, trace: Trace) -> None:
    """GROSS_CAP: scale the whole book down to ``max_gross x budget``."""
    gross = book.gross
    if not all_below(gross, b.gross_cap):
        over = is_over(gross, b.gross_cap, gross)
        book.update(scale_rows(book.w, gross, b.gross_cap, over, ReasonCode.GROSS_CAP, trace))


def notional_gate(book: Book, b: Bounds, trace: Trace) -> None:
    """NOTIONAL_CAP: scale the whole book down to ``max_gross_notional / equity``."""
    if b.notional_cap is None:
        return
    gross = book.gross
    if not all_below(gross, b.notional_cap):
        over = is_over(gross, b.notional_cap, gross)
        code = ReasonCode.NOTIONAL_CAP
        book.update(scale_rows(book.w, gross, b.notional_cap, over, code, trace))


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
