"""The hard limits' gates, book by book, each gate in the registry's order.

The kernel reproduces the numpy gates it replaced operation for operation: a row sum in
numpy's pairwise order, a sector sum in ``np.bincount``'s, the chain's tolerance test
``value <= ((limit + mag) * rtol + limit) + atol`` (NaN is outside), and the removed
amount a gate records is the pairwise row sum of ``|before - after|``. Each row is gated
on its own, so its result does not depend on the batch it is in.

The row loop makes only each gate's plain comparison (a value within its limit is inside
the tolerance too); the gate proper is an out-of-line call made where that fails. Inlined
into the loop, the gates' many array arguments made every row about twice as slow.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from allocgym.compiled._base import F1, F2, I1, kernel, maximum, pairwise_sum, ready, sector_sums

GATES = (
    "LONG_ONLY",
    "SYMBOL_CAP",
    "SYMBOL_NOTIONAL_CAP",
    "SECTOR_CAP",
    "NET_CAP",
    "BETA_LIMIT",
    "GROSS_CAP",
    "NOTIONAL_CAP",
)
"""The ``ReasonCode`` names of the gates the kernel runs, in the order it runs them: the
bit ``1 << k`` of ``run`` turns gate ``GATES[k]`` on, and ``bits[k]`` / ``rows[k]`` are
its reason bit and its ``Trace.clip`` row."""

_LONG_ONLY, _SYMBOL, _SYMBOL_NOTIONAL, _SECTOR, _NET, _BETA, _GROSS, _NOTIONAL = range(8)

_L2W = types.Array(types.int64, 2, "A")
_I1W = types.Array(types.int64, 1, "A")
_F2W = types.Array(types.float64, 2, "A")


@njit(cache=True, error_model="numpy", inline="always")
def _inside(value, limit, mag, rtol, atol):  # pragma: no cover
    """``is_inside``: ``value`` at most ``limit`` within the tolerance (NaN is outside)."""
    return value <= limit or value <= ((limit + mag) * rtol + limit) + atol


@njit(cache=True, error_model="numpy", inline="always")
def _signed_inside(size, cap, terms, rtol, atol, buf):  # pragma: no cover
    """The net and beta test: ``size = |sum(terms)|`` within ``cap``, the tolerance on the
    sum of ``|terms|`` (summed only when ``size`` is above ``cap``)."""
    return size <= cap or size <= (_gross(terms, buf) + cap) * rtol + (cap + atol)


@njit(cache=True, error_model="numpy", inline="always")
def _any_over(x, limit):  # pragma: no cover
    """Some ``|x|`` above ``limit`` (or NaN): the gate must look closer."""
    hit = False
    for a in range(x.size):
        hit |= not (abs(x[a]) <= limit)
    return hit


@njit(cache=True, error_model="numpy", inline="always")
def _any_short(x):  # pragma: no cover
    """Some ``x`` below 0."""
    hit = False
    for a in range(x.size):
        hit |= x[a] < 0.0
    return hit


@njit(cache=True, error_model="numpy", inline="always")
def _gross(x, buf):  # pragma: no cover
    """``sum |x|`` in numpy's order (``buf``: scratch)."""
    for a in range(x.size):
        buf[a] = abs(x[a])
    return 0.0 + pairwise_sum(buf, 0, x.size)


@njit(cache=True, error_model="numpy")
def _record(before, x, changed, r, bit, row, portfolio, sym, port, clip, buf):  # pragma: no cover
    """``Trace.record`` of one row: ``bit`` on the ``changed`` names (and on the
    portfolio), the L1 of ``before - x`` added to clip row ``row``; False if none changed."""
    m = x.size
    hit = False
    for a in range(m):
        if changed[a]:
            sym[r, a] |= bit
            hit = True
        buf[a] = abs(before[a] - x[a])
    if not hit:
        return False
    if portfolio:
        port[r] |= bit
    clip[row, r] += 0.0 + pairwise_sum(buf, 0, m)
    return True


@njit(cache=True, error_model="numpy")
def _long_only(x, before, changed):  # pragma: no cover
    """LONG_ONLY: negative weights to 0."""
    for a in range(x.size):
        before[a] = x[a]
        changed[a] = x[a] < 0.0
        if changed[a]:
            x[a] = 0.0


@njit(cache=True, error_model="numpy")
def _clip_names(x, cap, rtol, atol, before, changed):  # pragma: no cover
    """SYMBOL_CAP, SYMBOL_NOTIONAL_CAP: clip ``|x|`` to ``cap``; True if a name was over."""
    hit = False
    for a in range(x.size):
        v = abs(x[a])
        before[a] = x[a]
        changed[a] = not _inside(v, cap, v, rtol, atol)
        if changed[a]:
            x[a] = math.copysign(cap, x[a])
            hit = True
    return hit


@njit(cache=True, error_model="numpy")
def _sector(x, cap, ids, sums, scale, rtol, atol, before, changed):  # pragma: no cover
    """SECTOR_CAP: scale each sector over ``cap`` down to it (``sums``: the sectors'
    gross); True if one was over."""
    hit = False
    for s in range(sums.size):
        scale[s] = 1.0
        if not _inside(sums[s], cap, sums[s], rtol, atol):
            scale[s] = cap / sums[s]
            hit = True
    if hit:
        for a in range(x.size):
            before[a] = x[a]
            if ids[a] >= 0:
                x[a] = x[a] * scale[ids[a]]
            changed[a] = before[a] != x[a]
    return hit


@njit(cache=True, error_model="numpy")
def _scale_side(x, terms, cap, rtol, atol, before, changed, buf):  # pragma: no cover
    """NET_CAP, BETA_LIMIT: bring ``|sum(terms)|`` inside ``cap`` by shrinking the names
    on the side carrying the excess (``terms``: ``x`` itself for the net, each name read
    before it is scaled; ``beta * x`` for the beta); True if over. Shrinking names toward zero keeps the symbol, sector,
    gross and notional limits."""
    m = x.size
    total = 0.0 + pairwise_sum(terms, 0, m)
    if _signed_inside(abs(total), cap, terms, rtol, atol, buf):
        return False
    # Each side summed directly: deriving it from the total would cancel catastrophically.
    for a in range(m):
        buf[a] = maximum(terms[a], 0.0)
    pos = 0.0 + pairwise_sum(buf, 0, m)
    for a in range(m):
        buf[a] = maximum(-terms[a], 0.0)
    neg = 0.0 + pairwise_sum(buf, 0, m)
    high = total > 0
    factor = (cap + neg) / pos if high else (cap + pos) / neg
    for a in range(m):
        before[a] = x[a]
        if (terms[a] if high else -terms[a]) > 0:
            x[a] = x[a] * factor
        changed[a] = before[a] != x[a]
    return True


@njit(cache=True, error_model="numpy")
def _beta_limit(
    x, terms, beta_tol, net_cap, rtol, atol, r, bits, rows, sym, port, clip, before, changed, buf
):  # pragma: no cover
    """BETA_LIMIT (``terms = beta * x``), then the net re-fitted by a uniform scale, which
    keeps the beta; True if a weight changed."""
    if not _scale_side(x, terms, beta_tol, rtol, atol, before, changed, buf):
        return False
    touched = _record(before, x, changed, r, bits[_BETA], rows[_BETA], True, sym, port, clip, buf)
    total = 0.0 + pairwise_sum(x, 0, x.size)
    if not _signed_inside(abs(total), net_cap, x, rtol, atol, buf):
        _scale_book(x, net_cap, abs(total), before, changed)
        touched |= _record(
            before, x, changed, r, bits[_NET], rows[_NET], True, sym, port, clip, buf
        )
    return touched


@njit(cache=True, error_model="numpy")
def _scale_book(x, limit, mag, before, changed):  # pragma: no cover
    """Scale the whole row by ``limit / mag`` (uniform: keeps every other limit)."""
    factor = limit / mag
    for a in range(x.size):
        before[a] = x[a]
        x[a] = x[a] * factor
        changed[a] = before[a] != x[a]


@njit(cache=True, error_model="numpy")
def _scale_gross(x, limit, rtol, atol, before, changed, buf):  # pragma: no cover
    """GROSS_CAP, NOTIONAL_CAP: scale the row down to the gross ``limit``; True if over."""
    gross = _gross(x, buf)
    if _inside(gross, limit, gross, rtol, atol):
        return False
    _scale_book(x, limit, gross, before, changed)
    return True


@kernel(
    F2, types.int64, I1, I1, F1, F1, types.float64, I1, types.int64, types.float64,
    F2, types.float64, F1, F1, types.float64, types.float64, _L2W, _I1W, _F2W,
)  # fmt: skip
def _hard_gates(
    w, run, bits, rows, cap_pct, cap_notional, sector_cap, sector_ids, n_sectors, net_cap,
    betas, beta_tol, gross_cap, notional_cap, rtol, atol, sym, port, clip,
):  # pragma: no cover  # fmt: skip
    n, m = w.shape
    out = np.empty((n, m))
    before = np.empty(m)
    changed = np.empty(m, dtype=np.bool_)
    buf = np.empty(m)
    terms = np.empty(m)
    sums = np.empty(n_sectors)
    scale = np.empty(n_sectors)
    touched = False
    for r in range(n):
        x = out[r]
        for a in range(m):
            x[a] = w[r, a]
        # Each gate: its plain comparison, the gate where that fails, what it changed.
        if run & (1 << _LONG_ONLY) and _any_short(x):
            _long_only(x, before, changed)
            k = _LONG_ONLY
            touched |= _record(before, x, changed, r, bits[k], rows[k], False, sym, port, clip, buf)
        for k in (_SYMBOL, _SYMBOL_NOTIONAL):
            cap = cap_pct[r] if k == _SYMBOL else cap_notional[r]
            if run & (1 << k) and _any_over(x, cap):
                if _clip_names(x, cap, rtol, atol, before, changed):
                    touched |= _record(
                        before, x, changed, r, bits[k], rows[k], False, sym, port, clip, buf
                    )
        if run & (1 << _SECTOR):
            for a in range(m):
                buf[a] = abs(x[a])
            sector_sums(buf, sector_ids, sums)
            if _any_over(sums, sector_cap) and _sector(
                x, sector_cap, sector_ids, sums, scale, rtol, atol, before, changed
            ):
                k = _SECTOR
                touched |= _record(
                    before, x, changed, r, bits[k], rows[k], True, sym, port, clip, buf
                )
        if run & (1 << _NET) and not abs(0.0 + pairwise_sum(x, 0, m)) <= net_cap:
            if _scale_side(x, x, net_cap, rtol, atol, before, changed, buf):
                k = _NET
                touched |= _record(
                    before, x, changed, r, bits[k], rows[k], True, sym, port, clip, buf
                )
        if run & (1 << _BETA):
            for a in range(m):
                terms[a] = betas[r, a] * x[a]
            if not abs(0.0 + pairwise_sum(terms, 0, m)) <= beta_tol:
                touched |= _beta_limit(
                    x, terms, beta_tol, net_cap, rtol, atol, r, bits, rows, sym, port, clip,
                    before, changed, buf,
                )  # fmt: skip
        for k in (_GROSS, _NOTIONAL):
            limit = gross_cap[r] if k == _GROSS else notional_cap[r]
            if run & (1 << k) and not _gross(x, buf) <= limit:
                if _scale_gross(x, limit, rtol, atol, before, changed, buf):
                    touched |= _record(
                        before, x, changed, r, bits[k], rows[k], True, sym, port, clip, buf
                    )
    return out, touched


@kernel(
    F2, types.int64, F1, F1, types.float64, I1, types.int64, types.float64, F2, types.float64,
    F1, F1, types.float64, types.float64,
)  # fmt: skip
def _measures(
    w, run, cap_pct, cap_notional, sector_cap, sector_ids, n_sectors, net_cap, betas,
    beta_tol, gross_cap, notional_cap, rtol, atol,
):  # pragma: no cover  # fmt: skip
    n, m = w.shape
    ok = np.empty(n, dtype=np.bool_)
    inside = np.ones((n, len(GATES)), dtype=np.bool_)
    names_out = np.zeros((n, m), dtype=np.bool_)
    buf = np.empty(m)
    terms = np.empty(m)
    sums = np.empty(n_sectors)
    for r in range(n):
        x = w[r]
        for k in (_LONG_ONLY, _SYMBOL, _SYMBOL_NOTIONAL):
            if run & (1 << k):
                cap = cap_pct[r] if k == _SYMBOL else cap_notional[r]
                for a in range(m):
                    v = abs(x[a])
                    out = not x[a] >= 0.0 if k == _LONG_ONLY else not _inside(v, cap, v, rtol, atol)
                    names_out[r, a] |= out
                    inside[r, k] &= not out
        if run & (1 << _SECTOR):
            for a in range(m):
                buf[a] = abs(x[a])
            sector_sums(buf, sector_ids, sums)
            for s in range(n_sectors):
                inside[r, _SECTOR] &= _inside(sums[s], sector_cap, sums[s], rtol, atol)
        if run & (1 << _NET):
            size = abs(0.0 + pairwise_sum(x, 0, m))
            inside[r, _NET] = _signed_inside(size, net_cap, x, rtol, atol, buf)
        if run & (1 << _BETA):
            for a in range(m):
                terms[a] = betas[r, a] * x[a]
            size = abs(0.0 + pairwise_sum(terms, 0, m))
            inside[r, _BETA] = _signed_inside(size, beta_tol, terms, rtol, atol, buf)
        if run & ((1 << _GROSS) | (1 << _NOTIONAL)):
            gross = _gross(x, buf)
            for k in (_GROSS, _NOTIONAL):
                if run & (1 << k):
                    limit = gross_cap[r] if k == _GROSS else notional_cap[r]
                    inside[r, k] = _inside(gross, limit, gross, rtol, atol)
        ok[r] = True
        for k in range(len(GATES)):
            ok[r] &= inside[r, k]
    return ok, inside, names_out


def hard_gates(
    w: np.ndarray,
    run: int,
    bits: np.ndarray,
    rows: np.ndarray,
    cap_pct: np.ndarray,
    cap_notional: np.ndarray,
    sector_cap: float,
    sector_ids: np.ndarray,
    n_sectors: int,
    net_cap: float,
    betas: np.ndarray,
    beta_tol: float,
    gross_cap: np.ndarray,
    notional_cap: np.ndarray,
    rtol: float,
    atol: float,
    sym: np.ndarray,
    port: np.ndarray,
    clip: np.ndarray,
) -> tuple[np.ndarray, bool]:
    """The gates of ``GATES`` that ``run`` turns on over the books ``w`` (n, N); returns
    the gated books (a new array) and whether a gate changed a weight.

    ``bits``, ``rows`` (len(GATES),): each gate's reason bit and ``clip`` row. Bounds per
    row: ``cap_pct``, ``cap_notional`` (n,) per name, ``gross_cap``, ``notional_cap``
    (n,); ``sector_ids`` (N,) in ``0..n_sectors-1`` or -1 (no sector, no cap); ``betas``
    (n, N). A bound of a gate that is off is not read. ``rtol``, ``atol``: the chain's
    tolerance. The trace ``sym`` (n, N), ``port`` (n,) and ``clip`` (n_codes, n) are
    updated in place as ``Trace.record`` does.
    """
    ready()
    return _hard_gates(
        w, run, bits, rows, cap_pct, cap_notional, sector_cap, sector_ids, n_sectors,
        net_cap, betas, beta_tol, gross_cap, notional_cap, rtol, atol, sym, port, clip,
    )  # fmt: skip


def measures(
    w: np.ndarray,
    run: int,
    cap_pct: np.ndarray,
    cap_notional: np.ndarray,
    sector_cap: float,
    sector_ids: np.ndarray,
    n_sectors: int,
    net_cap: float,
    betas: np.ndarray,
    beta_tol: float,
    gross_cap: np.ndarray,
    notional_cap: np.ndarray,
    rtol: float,
    atol: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The measures of the gates of ``GATES`` that ``run`` turns on (arguments as in
    :func:`hard_gates`): (ok (n,), inside (n, len(GATES)), names_out (n, N)), all bool.

    ``inside[:, k]``: the books inside gate ``k``'s limit (True where it is off); ``ok``:
    inside every one; ``names_out``: the names outside a symbol-level limit.
    """
    ready()
    return _measures(
        w, run, cap_pct, cap_notional, sector_cap, sector_ids, n_sectors, net_cap, betas,
        beta_tol, gross_cap, notional_cap, rtol, atol,
    )  # fmt: skip
