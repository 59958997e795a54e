"""Symbol-level hard limits: long-only, the per-symbol cap and the per-symbol notional cap.

Each limit has a measure (``*_names_inside``: which names are inside, (n, N) bool, ``None``
when the limit is off) and a gate that clips the names outside back to the bound.
"""

from __future__ import annotations

import numpy as np

from allocgym.risk.codes import ReasonCode
from allocgym.risk.context import Book, Bounds
from allocgym.risk.kernels import Trace, all_below, is_inside, within


def clip_abs(
    w: np.ndarray, aw: np.ndarray, cap: np.ndarray, code: ReasonCode, trace: Trace
) -> tuple[np.ndarray, np.ndarray]:
    """Clip ``|w|`` to ``cap`` (``aw = |w|``); returns the new ``w`` and ``|w|``."""
    if all_below(aw, cap):
        return w, aw
    inside = is_inside(aw, cap, aw)
    if inside.all():
        return w, aw
    over = ~inside
    out = np.where(over, np.copysign(cap, w), w)
    # Exactly the clipped entries change: |w| > cap > |copysign(cap, w)| there.
    trace.record(code, w, out, portfolio=False, changed=over)
    return out, np.abs(out)


# ----------------------------------------------------------------------------- measures


def long_only_names_inside(book: Book, b: Bounds) -> np.ndarray | None:
    """Names that are not short (``None`` without the long-only limit)."""
    return book.w >= 0 if b.long_only else None


def symbol_cap_names_inside(book: Book, b: Bounds) -> np.ndarray:
    """Names with ``|w_i|`` within ``max_symbol_weight x capacity``."""
    return within(book.aw, b.cap_pct)


def symbol_notional_names_inside(book: Book, b: Bounds) -> np.ndarray | None:
    """Names with ``|w_i| x equity`` within ``max_symbol_notional x capacity``."""
    if b.cap_notional is None:
        return None
    return within(book.aw, b.cap_notional)


# ----------------------------------------------------------------------------- gates


def long_only_gate(book: Book, b: Bounds, trace: Trace) -> None:
    """LONG_ONLY: negative weights to 0."""
    if not b.long_only:
        return
    w = book.w
    neg = w < 0
    if neg.any():
        out = np.where(neg, 0.0, w)
        trace.record(ReasonCode.LONG_ONLY, w, out, portfolio=False, changed=neg)
        book.update(out)


def symbol_cap_gate(book: Book, b: Bounds, trace: Trace) -> None:
    """SYMBOL_CAP: clip ``|w_i|`` to the per-symbol cap."""
    book.update(*clip_abs(book.w, book.aw, b.cap_pct, ReasonCode.SYMBOL_CAP, trace))


def symbol_notional_gate(book: Book, b: Bounds, trace: Trace) -> None:
    """SYMBOL_NOTIONAL_CAP: clip ``|w_i|`` to the per-symbol notional cap."""
    if b.cap_notional is not None:
        code = ReasonCode.SYMBOL_NOTIONAL_CAP
        book.update(*clip_abs(book.w, book.aw, b.cap_notional, code, trace))
