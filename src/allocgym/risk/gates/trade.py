"""Trade limits on the move from the (de-risked) current book: participation, turnover,
slippage budget, then the re-feasibility repair."""

from __future__ import annotations

import numpy as np

from allocgym.costs import CostModel, _cost_terms
from allocgym.risk.codes import ReasonCode
from allocgym.risk.context import Bounds
from allocgym.risk.gates.registry import LimitTables, coupled_ok, coupled_violations
from allocgym.risk.inputs import Inputs
from allocgym.risk.kernels import (
    GATE_ROW,
    Trace,
    all_below,
    is_inside,
    is_over,
    or_bits,
    solve_cost_scale,
)
from allocgym.risk.refeasible import bisect_scale


def _mark(
    trace: Trace, code: ReasonCode, rows: np.ndarray, moved: np.ndarray, removed: np.ndarray
) -> None:
    """Code a trade scale: the portfolios ``rows``, their traded names, the L1 removed."""
    trace.port[rows] |= int(code)
    trace.sym[rows[:, None] & moved] |= int(code)
    trace.clip[GATE_ROW[code]] += np.where(rows, removed, 0.0)


def trade_limits(
    base: np.ndarray,
    target: np.ndarray,
    dec: Bounds,
    pcap: np.ndarray,
    x: Inputs,
    trace: Trace,
    tables: LimitTables,
    cost_model: CostModel,
) -> np.ndarray:
    """PARTICIPATION_CAP, TURNOVER_CAP and SLIPPAGE_BUDGET on the trade ``base -> target``,
    then the re-feasibility repair of the coupled limits the per-symbol clips broke."""
    d = target - base
    a = np.abs(d)
    inside = None if all_below(a, pcap) else is_inside(a, pcap, a)
    clipped = inside is not None and not inside.all()
    clip = d1 = None
    if clipped:
        clip = ~inside
        d1 = np.where(clip, np.copysign(pcap, d), d)
        or_bits(trace.sym, int(ReasonCode.PARTICIPATION_CAP), clip)
        trace.clip[GATE_ROW[ReasonCode.PARTICIPATION_CAP]] += np.abs(d - d1).sum(axis=1)
        a = np.abs(d1)
    else:
        d1 = d
    moved = None
    l1 = a.sum(axis=1)

    turnover = tables.bound[ReasonCode.TURNOVER_CAP]
    over_t = None if all_below(l1, turnover) else is_over(l1, turnover, l1)
    turned = over_t is not None and bool(over_t.any())
    s_turn = None
    trade = d1
    if turned:
        s_turn = np.where(over_t, turnover / np.where(over_t, l1, 1.0), 1.0)
        moved = d1 != 0
        _mark(trace, ReasonCode.TURNOVER_CAP, over_t, moved, (1.0 - s_turn) * l1)
        trade = d1 * s_turn[:, None]  # (without the cap the scale is 1: d1 itself)

    linear, impact = _cost_terms(trade, x.equity[:, None], x.adv, x.vol, x.spread, cost_model)
    cost = (linear + impact).sum(axis=1)
    budget = tables.bound[ReasonCode.SLIPPAGE_BUDGET]
    over_s = None if all_below(cost, budget) else is_over(cost, budget, cost)
    slipped = over_s is not None and bool(over_s.any())
    s_slip = None
    if slipped:
        s_slip = np.ones_like(cost)
        s_slip[over_s] = solve_cost_scale(
            linear.sum(axis=1)[over_s], impact.sum(axis=1)[over_s], budget
        )
        removed = (1.0 - s_slip) * l1 if s_turn is None else s_turn * (1.0 - s_slip) * l1
        if moved is None:
            moved = d1 != 0
        _mark(trace, ReasonCode.SLIPPAGE_BUDGET, over_s, moved, removed)
    if not (clipped or turned or slipped):
        return target  # nothing clipped or scaled: the target passed the hard gates
    if s_turn is None:
        scale = np.ones_like(cost) if s_slip is None else s_slip
    else:
        scale = s_turn if s_slip is None else s_turn * s_slip

    # Untouched symbols of an unscaled trade keep the target bit for bit.
    keep = (scale == 1.0)[:, None]
    if clip is not None:
        keep = keep & ~clip
    if keep.all():
        return target
    book = np.where(keep, target, base + scale[:, None] * d1)

    violations = coupled_violations(book, dec)
    broken = np.zeros(book.shape[0], dtype=bool)
    for _, rows in violations:
        broken |= rows
    if not broken.any():
        return book
    # Per-symbol clipping left the segment base -> target, and a coupled limit broke.
    # Two feasible repairs, the one closer to the target wins: (a) keep the clipped
    # trades and scale the free ones (when the clipped trades alone are feasible),
    # (b) scale the whole trade (always feasible: base is, and the limits are convex).
    idx = np.flatnonzero(broken)
    sub = dec.take(idx)
    b0, step = base[idx], scale[idx, None] * d1[idx]
    whole = b0 + bisect_scale(b0, step, sub)[:, None] * step
    clip_idx = np.zeros(step.shape, dtype=bool) if clip is None else clip[idx]
    fixed = np.where(clip_idx, step, 0.0)
    start = b0 + fixed
    free = step - fixed
    start_ok = coupled_ok(start, sub) & clip_idx.any(axis=1)
    new = whole
    if start_ok.any():
        partial = start + bisect_scale(start, free, sub)[:, None] * free
        goal = target[idx]
        closer = np.abs(partial - goal).sum(axis=1) <= np.abs(whole - goal).sum(axis=1)
        new = np.where((start_ok & closer)[:, None], partial, whole)
    # Code the first limit (gate order) each portfolio broke at the full trade.
    first = np.zeros(idx.size, dtype=np.int64)
    for code, rows in violations:
        first = np.where((first == 0) & rows[idx], int(code), first)
    changed = new != book[idx]
    trace.sym[idx] |= np.where(changed, first[:, None], 0)
    trace.port[idx] |= first
    removed = np.abs(book[idx] - new).sum(axis=1)
    for code, _ in violations:
        trace.clip[GATE_ROW[code], idx] += np.where(first == int(code), removed, 0.0)
    book = book.copy()
    book[idx] = new
    return book
