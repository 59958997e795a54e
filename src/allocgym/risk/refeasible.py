"""Re-feasibility: bisection back inside the coupled limits, and holding non-tradable names."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from allocgym.risk.codes import ReasonCode
from allocgym.risk.context import Bounds
from allocgym.risk.gates.registry import (
    coupled_ok,
    coupled_violations,
    hard_gates,
    hard_ok,
    names_outside,
)
from allocgym.risk.inputs import Inputs
from allocgym.risk.kernels import (
    BISECT_ITERS,
    GATE_ROW,
    Trace,
    or_bits,
    reduce_only,
    rows_any,
)


def bisect_scale(start: np.ndarray, step: np.ndarray, lim: Bounds) -> np.ndarray:
    """Largest ``s`` in [0, 1] (to float resolution) with ``start + s * step`` feasible.

    ``start`` must be feasible. Along a segment the feasible set of each convex limit is
    an interval ``[0, s_k]`` and ``s = min_k s_k``; a limit holding at both ends holds all
    along. Linear limits (net, beta, each factor exposure) have ``s_k`` in closed form;
    the piecewise-linear ones (sector, gross, notional) are bisected below that bound
    where they bind. Each row is bounded only by the limits its own end breaks, so a
    row's result does not depend on the other rows of the call.
    """
    n = start.shape[0]
    end = {code: rows for code, rows in coupled_violations(start + step, lim) if rows.any()}
    broken = frozenset(end)
    if not broken:
        return np.ones(n)
    hi = np.ones(n)
    linear = [(ReasonCode.NET_CAP, start, step, lim.net_cap)]
    if lim.betas is not None:
        linear.append((ReasonCode.BETA_LIMIT, lim.betas * start, lim.betas * step, lim.beta_tol))
    if lim.loadings is not None:
        # one signed sum per factor: (n, N, k) terms summed over the names
        linear.append(
            (
                ReasonCode.FACTOR_CAP,
                lim.loadings * start[:, :, None],
                lim.loadings * step[:, :, None],
                lim.factor_cap,
            )
        )
    for code, t0, dt, cap in linear:
        if code in broken:
            a, d = t0.sum(axis=1), dt.sum(axis=1)
            s_k = np.where(d > 0, (cap - a) / d, np.where(d < 0, (-cap - a) / d, 1.0))
            s_k = np.clip(np.nan_to_num(s_k, nan=0.0), 0.0, 1.0)
            s_k = s_k if s_k.ndim == 1 else s_k.min(axis=1)
            # only the rows whose end breaks the limit: the bound has no tolerance, so a
            # row ending on its cap would otherwise be cut where it is gated alone it is
            # not (a portfolio's book must not depend on the others in its batch)
            hi = np.minimum(hi, np.where(end[code], s_k, 1.0))
    ok_hi = coupled_ok(start + hi[:, None] * step, lim, broken)
    if ok_hi.all():
        return hi
    if ok_hi.any():
        rows = np.flatnonzero(~ok_hi)
        sub, s0, d0, top = lim.take(rows), start[rows], step[rows], hi[rows]
    else:
        rows, sub, s0, d0, top = None, lim, start, step, hi
    lo = np.zeros(top.shape[0])
    for _ in range(BISECT_ITERS):
        mid = 0.5 * (lo + top)
        w = mid[:, None] * d0
        w += s0  # s0 + mid * d0
        ok = coupled_ok(w, sub, broken)
        lo = np.where(ok, mid, lo)
        top = np.where(ok, top, mid)
    if rows is None:
        return lo
    hi[rows] = lo
    return hi


def pinned_shrink(w: np.ndarray, tradable: np.ndarray, lim: Bounds) -> np.ndarray:
    """Per-name factors in [0, 1] for the tradable part ``T`` of ``w`` (the rest, ``F``,
    held) so that ``F + factor * T`` meets the coupled limits, in closed form: each
    sector's tradable names by the largest factor that fits the sector cap, then all of
    them by the largest common factor that fits gross, notional, net, beta and every
    factor exposure (a signed limit ``|f + s d| <= cap`` bounds ``s`` by its larger
    root). Where ``F`` alone breaks
    a limit no factor fits, and the bound clipped to [0, 1] gives the closest book found
    (a sector over its cap sells all of its tradable names; names whose sum offsets a
    held excess are kept, and names whose sum is 0 to float dust do not move the limit).
    Shape of ``w``.
    """
    held = np.where(tradable, 0.0, w)
    free = np.where(tradable, w, 0.0)

    def upper(room: np.ndarray, need: np.ndarray) -> np.ndarray:
        fit = room / np.where(need > 0, need, 1.0)
        return np.clip(np.where(need > 0, fit, np.where(room >= 0, 1.0, 0.0)), 0.0, 1.0)

    fs, ts = lim.sectors.sums(np.abs(held)), lim.sectors.sums(np.abs(free))
    per_name = lim.sectors.spread(upper(lim.sector_cap - fs, ts))
    free = free * per_name
    fg, tg = np.abs(held).sum(axis=1), np.abs(free).sum(axis=1)
    hi = upper(lim.gross_cap - fg, tg)
    if lim.notional_cap is not None:
        hi = np.minimum(hi, upper(lim.notional_cap - fg, tg))
    # (held value, tradable value, the tradable terms' absolute sum, cap) per signed limit
    signed = [(held.sum(axis=1), free.sum(axis=1), np.abs(free).sum(axis=1), lim.net_cap)]
    if lim.betas is not None:
        bf = lim.betas * free
        bh = (lim.betas * held).sum(axis=1)
        signed.append((bh, bf.sum(axis=1), np.abs(bf).sum(axis=1), lim.beta_tol))
    if lim.loadings is not None:
        lf = lim.loadings * free[:, :, None]
        lh = lim.exposures(held)
        signed.append((lh, lf.sum(axis=1), np.abs(lf).sum(axis=1), lim.factor_cap))
    for f, d, size, cap in signed:
        # A tradable sum within float dust of 0 does not move the limit: any factor is as
        # close as any other, so it keeps the names (the dust's sign must not decide).
        moves = np.abs(d) > 1e-12 * size
        safe = np.where(moves, d, 1.0)
        up = np.maximum((cap - f) / safe, (-cap - f) / safe)
        bound = np.where(moves, up, 1.0)
        hi = np.minimum(hi, bound if bound.ndim == 1 else bound.min(axis=1))
    hi = np.clip(np.nan_to_num(hi, nan=0.0), 0.0, 1.0)
    return np.nan_to_num(per_name, nan=0.0) * hi[:, None]


def _feasible(w: np.ndarray, b: Bounds, tradable: np.ndarray) -> np.ndarray:
    """(n,) bool: ``w`` inside every hard limit but a held name's own symbol-level one,
    which no trade can change (a halted name over its cap, e.g. after the cap shrank)."""
    return coupled_ok(w, b) & ~rows_any(names_outside(w, b) & tradable)


def pin_untradable(
    approved: np.ndarray,
    c_in: np.ndarray,
    x: Inputs,
    dec: Bounds,
    trace: Trace,
    proposal: np.ndarray,
    from_current: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, Trace]],
    before: Trace,
) -> np.ndarray:
    """Hold every non-tradable weight at the current one; fit the tradable names.

    The hard gates scale whole books (sectors, gross, net, beta), non-tradable names
    included, but execution cannot move those. In a portfolio where they moved, they
    are put back (``NOT_TRADABLE``) and the portfolio limits are met by the tradable
    names alone. A held name's own symbol-level excess (over a cap that shrank under
    it) counts against no book: no trade can change it, and the portfolio is coded
    ``NOT_TRADABLE`` while it lasts.

    From a base book inside the limits (the de-risked current book with the held names
    put back; else the current book with its tradable names clipped to their caps and
    shrunk per sector, then by a common factor: ``pinned_shrink``) toward the pinned
    approved book, as far as the limits allow (``bisect_scale``; the trade only shrinks,
    so the trade limits hold). The changed tradable names carry the first limit the
    pinned book broke.

    Where no base is inside (the held names break a limit), ``proposal`` (the proposal
    with the held names at the current weights), reduce-only where that is on, as the
    trade limits pass it from the current book (``from_current``: that book and the
    trade limits' trace, each row alone), is approved where it is inside the limits:
    the tradable names can hedge a held name's net or beta. Those rows carry the codes
    of ``before`` (the trace before the hard gates), the reduce-only and trade limits'
    codes, and the portfolio's ``FORCED_DERISK``. Else the pinned approved book is
    approved where it is inside. The chain stays idempotent: its own output, gated from
    itself, is such a proposal with no trade. Where neither is inside (the held names
    break a portfolio limit the tradable names cannot bring the book inside), the
    portfolio keeps the shrunk current book (``pinned_shrink``: the tradable names of a
    sector, then all of them, scaled as a group: a group whose sum adds to a held name's
    excess is sold, one whose sum offsets it kept), with the proposal's sales from it
    where that fits, else the hard gates' repair of it (held names put back) where that
    fits, coded ``NOT_TRADABLE`` unless one of those brought it inside. It is a fixed
    point too, and only sells.
    """
    moved = ~x.tradable & (approved != x.c)
    rows = rows_any(moved)
    if x.any_killed or x.any_bad_row:
        rows &= ~(x.killed | x.bad_row)  # flattened (and coded) by the caller
    if not rows.any():
        return approved
    nt_bit = int(ReasonCode.NOT_TRADABLE)
    out = approved.copy()
    idx = np.flatnonzero(rows)
    sub = dec.take(idx)
    c, t, a = x.c[idx], x.tradable[idx], approved[idx]
    pinned = np.where(t, a, c)
    base = np.where(t, c_in[idx], c)
    ok = hard_ok(base, sub)
    if not ok.all():
        # The current book, its tradable names clipped to their caps, then shrunk
        # (reduce-only; a factor within float dust of 1 is 1, so a
        # portfolio that cannot get inside keeps its book: the chain stays idempotent).
        cap = sub.cap_pct if sub.cap_notional is None else np.minimum(sub.cap_pct, sub.cap_notional)
        low = 0.0 if sub.long_only else -cap
        clipped = np.where(t, np.clip(c, low, cap), c)
        f = pinned_shrink(clipped, t, sub)
        f = np.where(f >= 1.0 - 1e-12, 1.0, f)
        shrunk = np.where(t, f * clipped, clipped)
        base = np.where(ok[:, None], base, shrunk)
        ok = hard_ok(base, sub)
    if not ok.all():
        # No base is inside: the held names break a limit. The proposal, as the trade
        # limits pass it, where it fits; else the pinned approved book, where it fits.
        done = _approve_as_proposed(idx[~ok], out, proposal, x, dec, trace, from_current, before)
        if done.any():
            keep = np.ones(idx.size, dtype=bool)
            keep[np.flatnonzero(~ok)[done]] = False
            if not keep.any():
                return out
            r = np.flatnonzero(keep)
            idx, sub, c, t, a = idx[r], sub.take(r), c[r], t[r], a[r]
            pinned, base, ok = pinned[r], base[r], ok[r]
        fits = ~ok & _feasible(pinned, sub, t)
        base = np.where(fits[:, None], pinned, base)
        ok |= fits
        if not ok.all():
            # No book fits (the held names break a limit; the current book is then
            # outside too): the shrunk current book, with the proposal's sales from it
            # or the gates' repair of it where they fit (``_keep_shrunk``); a fixed point
            # (the chain stays idempotent) and a pure reduction, as a forced de-risk may be.
            r = np.flatnonzero(~ok)
            out[idx[r]] = _keep_shrunk(idx[r], base[r], sub.take(r), proposal, x, trace, before)
            if not ok.any():
                return out
            r = np.flatnonzero(ok)
            idx, sub, c, t, a = idx[r], sub.take(r), c[r], t[r], a[r]
            pinned, base = pinned[r], base[r]
    lam = bisect_scale(base, pinned - base, sub)
    new = np.where((lam == 1.0)[:, None], pinned, base + lam[:, None] * (pinned - base))

    sym, port = trace.sym[idx], trace.port[idx]
    or_bits(sym, nt_bit, moved[idx])
    trace.clip[GATE_ROW[ReasonCode.NOT_TRADABLE], idx] += np.abs(np.where(t, 0.0, a - c)).sum(
        axis=1
    )
    changed = t & (new != a)
    first = np.zeros(idx.size, dtype=np.int64)
    # The book the bisection saw at its end (float dust apart from ``pinned``); a move
    # with no limit broken beyond dust is put down to the held names.
    violations = coupled_violations(base + (pinned - base), sub)
    for code, broke in violations:
        first = np.where((first == 0) & broke, int(code), first)
    first = np.where(first != 0, first, nt_bit)
    sym |= np.where(changed, first[:, None], 0)
    port |= np.where(rows_any(changed), first, 0)
    # the held names constrain the portfolio: one stays over its own cap
    port |= np.where(rows_any(names_outside(new, sub) & ~t), nt_bit, 0)
    removed = np.abs(np.where(changed, a - new, 0.0)).sum(axis=1)
    for code, _ in violations:
        trace.clip[GATE_ROW[code], idx] += np.where(first & int(code), removed, 0.0)
    trace.sym[idx], trace.port[idx] = sym, port
    out[idx] = new
    return out


def _approve_as_proposed(
    idx: np.ndarray,
    out: np.ndarray,
    proposal: np.ndarray,
    x: Inputs,
    dec: Bounds,
    trace: Trace,
    from_current: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, Trace]],
    before: Trace,
) -> np.ndarray:
    """Approve ``proposal`` as the trade limits pass it in the rows ``idx`` where that
    fits (see :func:`pin_untradable`), writing them into ``out`` and ``trace``; which
    of ``idx`` were approved."""
    book = proposal[idx]
    c = x.c[idx]
    cut = Trace(*book.shape)
    if x.any_reduce:
        reduced = reduce_only(book, c, x.reduce[idx])
        cut.record(ReasonCode.REDUCE_ONLY, book, reduced, portfolio=False)
        book = reduced
    book, limited = from_current(idx, book)
    t = x.tradable[idx]
    fits = _feasible(book, dec.take(idx), t)  # its held names did not trade
    if not fits.any():
        return fits
    ok, k = idx[fits], np.flatnonzero(fits)
    p = book[k]
    out[ok] = p
    # Coded as the proposal was traded: the forced de-risk moved nothing (only the
    # portfolio's FORCED_DERISK stays: the current book is outside the limits).
    fd = int(ReasonCode.FORCED_DERISK)
    held_over = rows_any(names_outside(p, dec.take(ok)) & ~x.tradable[ok])
    nt = np.where(held_over, int(ReasonCode.NOT_TRADABLE), 0)
    trace.sym[ok] = before.sym[ok] | cut.sym[k] | limited.sym[k]
    trace.port[ok] = before.port[ok] | limited.port[k] | (trace.port[ok] & fd) | nt
    trace.clip[:, ok] = before.clip[:, ok] + cut.clip[:, k] + limited.clip[:, k]
    return fits


def _keep_shrunk(
    rows: np.ndarray,
    kept: np.ndarray,
    b: Bounds,
    proposal: np.ndarray,
    x: Inputs,
    trace: Trace,
    before: Trace,
) -> np.ndarray:
    """The book of the ``rows`` no book fits (see :func:`pin_untradable`): ``kept`` (the
    shrunk current book) with the proposal's sales from it where that fits, else the
    hard gates' repair of it with the held names put back where that fits, and its
    codes, written into ``trace``: those of ``before`` (the trace before the hard gates),
    ``NOT_TRADABLE`` on every name it keeps away from the proposal and on the portfolio
    (unless it is inside now),
    ``FORCED_DERISK`` on the names it moved from the current book (and that amount)."""
    p, t = proposal[rows], x.tradable[rows]
    sold = reduce_only(p, kept, np.ones(rows.size, dtype=bool))
    fits = _feasible(sold, b, t)
    kept = np.where(fits[:, None], sold, kept)
    if not fits.all():
        # The hard gates' own repair of the kept book, the held names put back: what
        # the chain finds when it gates the kept book again, so that it is found now
        # (the result stays a fixed point). The gates only shrink: a reduction still.
        gated = np.where(t, hard_gates(kept, b, Trace(*kept.shape)), kept)
        good = ~fits & _feasible(gated, b, t)
        kept = np.where(good[:, None], gated, kept)
        fits |= good
    c = x.c[rows]
    nt, fd = int(ReasonCode.NOT_TRADABLE), int(ReasonCode.FORCED_DERISK)
    held_back, moved = kept != p, kept != c
    trace.sym[rows] = before.sym[rows] | np.where(held_back, nt, 0) | np.where(moved, fd, 0)
    # the held names constrain the portfolio unless it is inside now
    outside = ~fits | rows_any(names_outside(kept, b) & ~x.tradable[rows])
    trace.port[rows] = before.port[rows] | np.where(outside, nt, 0) | (trace.port[rows] & fd)
    clip = before.clip[:, rows].copy()
    clip[GATE_ROW[ReasonCode.NOT_TRADABLE]] += np.abs(kept - p).sum(axis=1)
    clip[GATE_ROW[ReasonCode.FORCED_DERISK]] = np.abs(kept - c).sum(axis=1)
    trace.clip[:, rows] = clip
    return kept
