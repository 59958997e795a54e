"""Trade limits on the move from the (de-risked) current book.

Per symbol first: ``PARTICIPATION_CAP``, ``SYMBOL_TURNOVER_CAP`` and
``SYMBOL_SLIPPAGE_BUDGET`` clip the trade of each symbol that fails them, with that
limit's own code, and leave every other symbol's trade as it is. Then the portfolio-wide
``TURNOVER_CAP`` and ``SLIPPAGE_BUDGET`` scale the whole (clipped) trade by one common
factor, and the re-feasibility repair restores the coupled hard limits a per-symbol clip
broke. Fills already executed in the bar (``GateContext.recent_fills``) count against the
participation and turnover limits: the room left for the new trade is the limit less what
traded, never below zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from allocgym.compiled.trade import trade_measures
from allocgym.costs import CostModel, cost_terms
from allocgym.errors import RequestError
from allocgym.ranges import RANGES
from allocgym.risk.codes import ReasonCode
from allocgym.risk.context import Bounds
from allocgym.risk.gates.registry import LimitTables, coupled_ok, coupled_violations
from allocgym.risk.inputs import Inputs, as_batch
from allocgym.risk.kernels import (
    ATOL,
    GATE_ROW,
    RTOL,
    Trace,
    all_below,
    is_inside,
    is_over,
    or_bits,
    solve_cost_scale,
)
from allocgym.risk.refeasible import bisect_scale


def filled_weights(recent_fills: Any, x: Inputs) -> np.ndarray | None:
    """The bar's recent fills (``GateContext.recent_fills``, currency) as weights (n, N):
    notional over equity, 0 in unreadable rows; ``None`` without fills.

    Raises
    ------
    RequestError
        A shape that does not broadcast to (n_envs, n_assets), or a notional that is not
        finite or lies outside ``[0, 1e15]``.
    """
    if recent_fills is None:
        return None
    notional = as_batch("recent_fills", recent_fills, x.p.shape, np.float64)
    bad = RANGES["adv_notional"].outside(notional)
    if bad.any():
        raise RequestError(
            f"GateContext.recent_fills has {float(notional[bad][0])!r} at {np.argwhere(bad)[0].tolist()}: "
            f"pass the notional traded per symbol in the bar, in {RANGES['adv_notional']}"
        )
    filled = notional / x.equity[:, None]
    return np.where(x.bad_row[:, None], 0.0, filled) if x.any_bad_row else filled


def _room(cap: Any, used: np.ndarray | None) -> Any:
    """What the bar's fills ``used`` leave of ``cap`` (never below 0)."""
    return cap if used is None else np.maximum(cap - used, 0.0)


def _mark(
    trace: Trace, code: ReasonCode, rows: np.ndarray, moved: np.ndarray, removed: np.ndarray
) -> None:
    """Code a trade scale: the portfolios ``rows``, their traded names, the L1 removed."""
    bit = int(code)
    or_bits(trace.port, bit, rows)
    or_bits(trace.sym, bit, rows[:, None] & moved)
    trace.clip[GATE_ROW[code]] += np.where(rows, removed, 0.0)


def _code_symbols(
    trace: Trace, code: ReasonCode, over: np.ndarray, before: np.ndarray, after: np.ndarray
) -> None:
    """Code the symbols ``over`` whose trade went ``before -> after`` and count the L1."""
    or_bits(trace.sym, int(code), over)
    trace.clip[GATE_ROW[code]] += np.abs(before - after).sum(axis=1)


def _clip_symbols(
    d: np.ndarray, cap: Any, code: ReasonCode, trace: Trace
) -> tuple[np.ndarray, np.ndarray | None]:
    """Clip each symbol's trade to ``|d_i| <= cap_i``: (the trade, the symbols clipped or
    ``None``)."""
    a = np.abs(d)
    if all_below(a, cap):
        return d, None
    over = ~is_inside(a, cap, a)
    if not over.any():
        return d, None
    clipped = np.where(over, np.copysign(cap, d), d)
    _code_symbols(trace, code, over, d, clipped)
    return clipped, over


def _scale_symbols(
    d: np.ndarray, budget: np.ndarray, x: Inputs, trace: Trace, cost_model: CostModel
) -> tuple[np.ndarray, np.ndarray | None]:
    """Scale each symbol's trade so its expected cost fits ``budget`` (n, 1): (the trade,
    the symbols scaled or ``None``)."""
    linear, impact = cost_terms(d, x.equity, x.adv, x.vol, x.spread, cost_model)
    cost = linear + impact
    if all_below(cost, budget):
        return d, None
    budgets = np.broadcast_to(budget, cost.shape)
    over = is_over(cost, budgets, cost) | (cost == np.inf)
    if not over.any():
        return d, None
    scale = np.ones_like(cost)
    scale[over] = solve_cost_scale(linear[over], impact[over], budgets[over])
    scaled = d * scale
    _code_symbols(trace, ReasonCode.SYMBOL_SLIPPAGE_BUDGET, over, d, scaled)
    return scaled, over


def symbol_limits(
    d: np.ndarray,
    pcap: np.ndarray,
    x: Inputs,
    trace: Trace,
    tables: LimitTables,
    cost_model: CostModel,
    filled: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """PARTICIPATION_CAP, SYMBOL_TURNOVER_CAP, SYMBOL_SLIPPAGE_BUDGET on the trade ``d``
    (n, N), in that order: (the clipped trade, the symbols any of them clipped or
    ``None``). A symbol inside every limit keeps its trade bit for bit."""
    d, clip = _clip_symbols(d, _room(pcap, filled), ReasonCode.PARTICIPATION_CAP, trace)
    turnover = tables.bound[ReasonCode.SYMBOL_TURNOVER_CAP]
    if turnover is not None:
        cap = _room(turnover[x.slot][:, None], filled)
        d, over = _clip_symbols(d, cap, ReasonCode.SYMBOL_TURNOVER_CAP, trace)
        clip = over if clip is None else clip if over is None else clip | over
    budget = tables.bound[ReasonCode.SYMBOL_SLIPPAGE_BUDGET]
    if budget is not None:
        d, over = _scale_symbols(d, budget[x.slot][:, None], x, trace, cost_model)
        clip = over if clip is None else clip if over is None else clip | over
    return d, clip


def portfolio_scale(
    d1: np.ndarray,
    x: Inputs,
    trace: Trace,
    tables: LimitTables,
    cost_model: CostModel,
    filled: np.ndarray | None,
) -> np.ndarray | None:
    """TURNOVER_CAP then SLIPPAGE_BUDGET on the (per-symbol clipped) trade ``d1``: the
    common scale of each portfolio's trade, (n,), or ``None`` when neither acts."""
    n = d1.shape[0]
    bound = tables.bound[ReasonCode.TURNOVER_CAP]
    turnover = np.full(n, bound) if filled is None else _room(bound, filled.sum(axis=1))
    budget = tables.bound[ReasonCode.SLIPPAGE_BUDGET]
    l1, s_turn, over_t, linear, impact, over_s, turned, slipped = trade_measures(
        d1, turnover, budget, x.equity, x.adv, x.vol, x.spread,
        cost_model.spread_mult, cost_model.commission_bps, cost_model.impact_k, RTOL, ATOL,
    )  # fmt: skip
    if not slipped:
        if not turned:
            return None
        moved = d1 != 0
        _mark(trace, ReasonCode.TURNOVER_CAP, over_t, moved, (1.0 - s_turn) * l1)
        return s_turn
    s_slip = np.ones(n)
    s_slip[over_s] = solve_cost_scale(linear[over_s], impact[over_s], budget)
    moved = d1 != 0
    if not turned:
        _mark(trace, ReasonCode.SLIPPAGE_BUDGET, over_s, moved, (1.0 - s_slip) * l1)
        return s_slip
    _mark(trace, ReasonCode.TURNOVER_CAP, over_t, moved, (1.0 - s_turn) * l1)
    _mark(trace, ReasonCode.SLIPPAGE_BUDGET, over_s, moved, s_turn * (1.0 - s_slip) * l1)
    return s_turn * s_slip


def trade_limits(
    base: np.ndarray,
    target: np.ndarray,
    dec: Bounds,
    pcap: np.ndarray,
    x: Inputs,
    trace: Trace,
    tables: LimitTables,
    cost_model: CostModel,
    filled: np.ndarray | None = None,
    repair: bool = True,
) -> np.ndarray:
    """Every trade limit on the trade ``base -> target``, then (``repair``) the
    re-feasibility repair of the coupled limits the per-symbol clips broke.

    ``pcap`` (n, N) is the participation cap in weights; ``filled`` (n, N) what the bar's
    fills already traded, in weights (:func:`filled_weights`), or ``None``. Without the
    repair each portfolio's result is its own trade's alone (the repair needs a feasible
    ``base``).
    """
    d = target - base
    d1, clip = symbol_limits(d, pcap, x, trace, tables, cost_model, filled)
    scale = portfolio_scale(d1, x, trace, tables, cost_model, filled)
    if scale is None:
        if clip is None:
            return target  # nothing clipped or scaled: the target passed the hard gates
        scale = np.ones(d.shape[0])

    # Untouched symbols of an unscaled trade keep the target bit for bit.
    keep = (scale == 1.0)[:, None]
    if clip is not None:
        keep = keep & ~clip
    if keep.all():
        return target
    book = np.where(keep, target, base + scale[:, None] * d1)
    if not repair:
        return book
    return _refeasible(book, base, target, scale, d1, clip, dec, trace)


def _refeasible(
    book: np.ndarray,
    base: np.ndarray,
    target: np.ndarray,
    scale: np.ndarray,
    d1: np.ndarray,
    clip: np.ndarray | None,
    dec: Bounds,
    trace: Trace,
) -> np.ndarray:
    """Repair the coupled hard limits ``book`` (the clipped and scaled trade) breaks.

    Per-symbol clipping left the segment base -> target, and a coupled limit broke. Two
    feasible repairs, the one closer to the target wins: (a) keep the clipped trades and
    scale the free ones (when the clipped trades alone are feasible), (b) scale the whole
    trade (always feasible: base is, and the limits are convex).
    """
    violations = coupled_violations(book, dec)
    broken = np.zeros(book.shape[0], dtype=bool)
    for _, rows in violations:
        broken |= rows
    if not broken.any():
        return book
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
