"""Compiled (numba) kernels of the step: the ex-ante CVaR, the cost model (per symbol,
and summed per portfolio at the fill), lot rounding and the reason-bit counts.

Each kernel is the only implementation of its computation; the numpy modules call it
through a thin wrapper that converts the inputs. Every kernel is compiled for one
signature of read-only, any-layout arrays (a C-contiguous, a strided and a broadcast
input all use it), so the set of machine code is fixed and :func:`warm_up` compiles all
of it. Compiled code is cached on disk beside this module (``cache=True``): later
processes load it instead of compiling it (``allocgym bench env`` reports the seconds).

Elementwise kernels use the same float operations in the same order as the numpy
formulas they replaced, and the fill cost sums in numpy's pairwise order, so their
results are bit-identical; the CVaR kernel sums in a fixed sequential order
(documented on :func:`scenario_cvar`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, types

_F1 = types.Array(types.float64, 1, "A", readonly=True)
_F2 = types.Array(types.float64, 2, "A", readonly=True)
_I1 = types.Array(types.int64, 1, "A", readonly=True)
_B2 = types.Array(types.boolean, 2, "A", readonly=True)
_L2 = types.Array(types.int64, 2, "A", readonly=True)

_SNAP = 1e-13
"""Relative distance to a whole number of lots below which a quantity is that number."""

_KERNELS: list[tuple[Any, tuple[Any, ...]]] = []
_compile_seconds: float | None = None


def _kernel(*signature: Any) -> Callable[[Callable[..., Any]], Any]:
    """``njit`` a kernel, registered for :func:`warm_up` with its one signature.

    ``error_model="numpy"``: a float division by zero gives inf/NaN as in numpy instead of
    raising.
    """

    def wrap(fn: Callable[..., Any]) -> Any:
        compiled = njit(cache=True, error_model="numpy", nogil=True)(fn)
        _KERNELS.append((compiled, tuple(signature)))
        return compiled

    return wrap


def warm_up() -> float:
    """Compile (or load from the disk cache) every kernel; seconds spent.

    Called once per process before the first kernel call (the wrappers do it); serving
    calls it at load so that the first decision is as fast as the rest. Later calls
    return 0.0. After it, a kernel never compiles again: a call whose inputs do not
    convert to the kernel's signature raises ``TypeError``.
    """
    global _compile_seconds
    if _compile_seconds is not None:
        return 0.0
    start = time.perf_counter()
    for kernel, signature in _KERNELS:
        kernel.compile(signature)
        kernel.disable_compile()
    _compile_seconds = time.perf_counter() - start
    return _compile_seconds


def compile_seconds() -> float | None:
    """Seconds the process's :func:`warm_up` took (``None`` before it ran)."""
    return _compile_seconds


def _ready() -> None:
    if _compile_seconds is None:
        warm_up()


# --------------------------------------------------------------------- ex-ante CVaR


@_kernel(_F2, _I1, _F2, types.int64, types.float64, types.float64, types.int64)
def _scenario_cvar(returns, first, weights, window, alpha, k, i):  # pragma: no cover
    n_envs, n_assets = weights.shape
    out = np.empty(n_envs)
    smallest = np.empty(i + 1)
    scen = np.empty(window)
    for b in range(n_envs):
        row0 = first[b]
        # Every scenario sums over the assets in order. Four scenarios advance together
        # (independent sums: no wait on one long chain of additions; same bits).
        j = 0
        while j + 4 <= window:
            s0 = s1 = s2 = s3 = 0.0
            for a in range(n_assets):
                w = weights[b, a]
                s0 += returns[row0 + j, a] * w
                s1 += returns[row0 + j + 1, a] * w
                s2 += returns[row0 + j + 2, a] * w
                s3 += returns[row0 + j + 3, a] * w
            scen[j], scen[j + 1], scen[j + 2], scen[j + 3] = s0, s1, s2, s3
            j += 4
        while j < window:
            s0 = 0.0
            for a in range(n_assets):
                s0 += returns[row0 + j, a] * weights[b, a]
            scen[j] = s0
            j += 1
        found = 0
        has_nan = False
        worst = np.inf
        for j in range(window):
            s = scen[j]
            if s != s:
                has_nan = True
                break
            if alpha == 1.0:
                worst = min(worst, s)
                continue
            # keep the i + 1 smallest scenarios sorted ascending (insertion)
            if found <= i:
                pos = found
                found += 1
            elif s < smallest[i]:
                pos = i
            else:
                continue
            while pos > 0 and smallest[pos - 1] > s:
                smallest[pos] = smallest[pos - 1]
                pos -= 1
            smallest[pos] = s
        if has_nan:
            out[b] = np.nan
        elif alpha == 1.0:
            out[b] = -worst
        else:
            tail = 0.0
            for m in range(i):
                tail += smallest[m]
            out[b] = -tail / k + smallest[i] * (i / k - 1.0)
    return out


def scenario_cvar(
    returns: np.ndarray, first: np.ndarray, weights: np.ndarray, window: int, alpha: float
) -> np.ndarray:
    """Ex-ante historical CVaR of each book over its own window of past returns.

    ``scen[b, j] = sum_a returns[first[b] + j, a] * weights[b, a]`` for ``j < window``,
    and the CVaR of each row of ``scen`` as :func:`allocgym.measures.cvar` defines it
    (fractional weight on the boundary scenario; NaN when a scenario is NaN). The sums
    run sequentially (assets in order; the ``i`` worst scenarios from the worst up), so
    a row's result does not depend on the batch it is in; they may differ from numpy's
    pairwise / SIMD sums in the last bits (a few ulp of the sum of the absolute terms).

    Parameters
    ----------
    returns : ndarray, shape (n_bars, n_assets)
        Simple returns per bar.
    first : ndarray of int, shape (n_envs,)
        First bar of each window (``t - window + 1``); the caller keeps the window inside
        ``returns``.
    weights : ndarray, shape (n_envs, n_assets)
    window : int
        Scenarios per book (>= 1).
    alpha : float
        Confidence level in [0, 1].

    Returns
    -------
    ndarray, shape (n_envs,)
        CVaR as a positive loss.
    """
    if window < 1:
        raise ValueError(f"scenario_cvar: window = {window}; use at least one scenario bar")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"scenario_cvar: alpha = {alpha!r}; use a confidence level in [0, 1]")
    _ready()
    k = (1.0 - alpha) * window
    i = 0 if alpha == 1.0 else max(0, int(np.ceil(k) - 1))
    return _scenario_cvar(
        np.asarray(returns, dtype=np.float64),
        np.asarray(first, dtype=np.int64),
        np.asarray(weights, dtype=np.float64),
        int(window),
        float(alpha),
        float(k),
        i,
    )


# --------------------------------------------------------------------- cost model


@njit(cache=True, error_model="numpy", inline="always")
def _cost_pair(
    trade, equity, adv, vol, spread, spread_mult, commission, impact_k
):  # pragma: no cover
    """(linear, impact) cost of one trade: the formula of ``allocgym.costs.cost_terms``."""
    a = abs(trade)
    if a == 0.0:
        return 0.0, 0.0
    rate = spread * spread_mult
    rate /= 2e4
    rate += commission
    coef = vol * impact_k
    if coef == 0.0:
        return a * rate, 0.0
    return a * rate, math.sqrt(a * equity / adv) * (a * coef)


@_kernel(_F2, _F2, _F2, _F2, _F2, types.float64, types.float64, types.float64)
def _cost_terms(
    trade, equity, adv, vol, spread, spread_mult, commission, impact_k
):  # pragma: no cover
    n_rows, n_cols = trade.shape
    linear = np.empty((n_rows, n_cols))
    impact = np.empty((n_rows, n_cols))
    for r in range(n_rows):
        for c in range(n_cols):
            linear[r, c], impact[r, c] = _cost_pair(
                trade[r, c], equity[r, c], adv[r, c], vol[r, c], spread[r, c],
                spread_mult, commission, impact_k,
            )  # fmt: skip
    return linear, impact


@njit(cache=True, inline="always")
def _block_sum(x, lo, n):  # pragma: no cover
    """numpy's sum of ``x[lo:lo + n]`` for ``n <= 128``: eight running sums, then the rest."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += x[lo + i]
        return res
    r0, r1, r2, r3 = x[lo], x[lo + 1], x[lo + 2], x[lo + 3]
    r4, r5, r6, r7 = x[lo + 4], x[lo + 5], x[lo + 6], x[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += x[lo + i]
        r1 += x[lo + i + 1]
        r2 += x[lo + i + 2]
        r3 += x[lo + i + 3]
        r4 += x[lo + i + 4]
        r5 += x[lo + i + 5]
        r6 += x[lo + i + 6]
        r7 += x[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += x[lo + i]
        i += 1
    return res


@njit(cache=True)
def _pairwise_sum(x, lo, n):  # pragma: no cover
    """``x[lo:lo + n].sum()`` in numpy's order, bit for bit: blocks of at most 128 summed
    by :func:`_block_sum`, longer runs split in halves (rounded down to a multiple of 8)
    and the halves added. The split tree is walked with an explicit stack (numba does
    not cache recursive functions)."""
    if n <= 128:
        return _block_sum(x, lo, n)
    s_lo = np.empty(64, np.int64)
    s_n = np.empty(64, np.int64)
    s_left = np.empty(64)
    s_stage = np.empty(64, np.int64)  # 0 left to do, 1 left pending, 2 right to do, 3 right pending
    top = 0
    s_lo[0], s_n[0], s_stage[0] = lo, n, 0
    while True:
        start, size = s_lo[top], s_n[top]
        half = size // 2
        half -= half % 8
        if s_stage[top] == 0:
            if half <= 128:
                s_left[top] = _block_sum(x, start, half)
                s_stage[top] = 2
            else:
                s_stage[top] = 1
                top += 1
                s_lo[top], s_n[top], s_stage[top] = start, half, 0
            continue
        rest = size - half
        if rest > 128:
            s_stage[top] = 3
            top += 1
            s_lo[top], s_n[top], s_stage[top] = start + half, rest, 0
            continue
        val = s_left[top] + _block_sum(x, start + half, rest)
        while True:  # hand the finished sum up the stack
            top -= 1
            if top < 0:
                return val
            if s_stage[top] == 1:
                s_left[top] = val
                s_stage[top] = 2
                break
            val = s_left[top] + val


@_kernel(_F2, _F1, _F2, _F2, _F2, _I1, types.float64, types.float64, types.float64)
def _fill_cost(
    trade, equity, adv, vol, spread, rows, spread_mult, commission, impact_k
):  # pragma: no cover
    n_envs, n_assets = trade.shape
    out = np.empty(n_envs)
    per_name = np.empty(n_assets)
    for b in range(n_envs):
        t = rows[b]
        for a in range(n_assets):
            linear, impact = _cost_pair(
                trade[b, a], equity[b], adv[t, a], vol[t, a], spread[t, a],
                spread_mult, commission, impact_k,
            )  # fmt: skip
            per_name[a] = linear + impact
        out[b] = 0.0 + _pairwise_sum(per_name, 0, n_assets)
    return out


def cost_terms(
    trade: np.ndarray,
    equity: np.ndarray,
    adv: np.ndarray,
    vol: np.ndarray,
    spread: np.ndarray,
    spread_mult: float,
    commission_bps: float,
    impact_k: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Linear and impact cost per entry of float64 inputs of one broadcast shape.

    ``allocgym.costs.cost_terms`` documents the formula; this is its arithmetic (a zero
    trade or a zero impact coefficient costs exactly 0; a square root of a negative or
    NaN participation gives NaN).
    """
    _ready()
    shape = np.broadcast_shapes(trade.shape, equity.shape, adv.shape, vol.shape, spread.shape)
    flat = (math.prod(shape[:-1]), shape[-1]) if shape else (1, 1)
    args = [np.broadcast_to(x, shape).reshape(flat) for x in (trade, equity, adv, vol, spread)]
    linear, impact = _cost_terms(
        *args, float(spread_mult), float(commission_bps) / 1e4, float(impact_k)
    )
    return linear.reshape(shape), impact.reshape(shape)


# --------------------------------------------------------------------- lot rounding


@_kernel(_F2, _F1, types.boolean)
def _snap_lots(q, lot, unit):  # pragma: no cover
    out = np.empty(q.shape)
    for r in range(q.shape[0]):
        for c in range(q.shape[1]):
            x = q[r, c]
            lots = _in_lots(x, lot[c], unit)
            if lots == np.rint(lots):
                out[r, c] = lots if unit else lots * lot[c]
            else:
                out[r, c] = x
    return out


@njit(cache=True, error_model="numpy", inline="always")
def _in_lots(x, lot, unit):  # pragma: no cover
    """Quantity in lots, snapped to the nearest whole number when within float dust."""
    r = x if unit else x / lot
    near = np.rint(r)
    if abs(r - near) <= max(abs(r), 1.0) * _SNAP:
        return near
    return r


@_kernel(_F2, _F2, _F1, _B2, types.boolean, types.boolean)
def _round_lots(q_cur, q_tgt, lot, forced, has_forced, unit):  # pragma: no cover
    out = np.empty(q_cur.shape)
    for r in range(q_cur.shape[0]):
        for c in range(q_cur.shape[1]):
            cur = q_cur[r, c]
            tgt = q_tgt[r, c]
            if has_forced and forced[r, c]:
                # toward zero: the lattice point cur + k lot in [0, tgt] closest to tgt
                s = np.sign(tgt)
                x = s * cur
                k = np.floor(_in_lots(abs(tgt) - x, lot[c], unit))
                v = x + (k if unit else k * lot[c])
                out[r, c] = 0.0 if (s == 0.0 or v < 0.0) else s * v
            else:
                # toward the current position: the order truncated to whole lots
                k = np.trunc(_in_lots(tgt - cur, lot[c], unit))
                out[r, c] = 0.0 if tgt == 0.0 else cur + (k if unit else k * lot[c])
    return out


@_kernel(_F2, _F2, _F2, _F2, _B2)
def _lot_weights(q_fin, q_cur, current, shares_per_w, change):  # pragma: no cover
    out = np.empty(q_fin.shape)
    for r in range(q_fin.shape[0]):
        for c in range(q_fin.shape[1]):
            q = q_fin[r, c]
            if change[r, c] and q != q_cur[r, c]:
                out[r, c] = 0.0 if q == 0.0 else q / shares_per_w[r, c]
            else:
                out[r, c] = current[r, c]
    return out


_NO_FORCED = np.zeros((1, 1), dtype=bool)


def snap_whole_lots(q: np.ndarray, lot: np.ndarray, unit: bool) -> np.ndarray:
    """``q`` (n_envs, n_assets) with entries within float dust of a whole number of lots
    (``lot``, (n_assets,)) set to it exactly; the others unchanged, bit for bit."""
    _ready()
    return _snap_lots(q, lot, bool(unit))


def round_lots(
    q_cur: np.ndarray, q_tgt: np.ndarray, lot: np.ndarray, forced: np.ndarray | None, unit: bool
) -> np.ndarray:
    """Final positions (n_envs, n_assets) of orders from ``q_cur`` towards ``q_tgt``.

    Elsewhere than ``forced``: the current position plus the order truncated to whole
    lots (an order never exceeds the approved one); a zero target closes the position
    exactly. Where ``forced`` (a reduce-only trade): the position on the lattice
    ``q_cur + k lot`` in ``[0, q_tgt]`` closest to ``q_tgt`` (so ``|q| <= |q_tgt|`` with
    the same sign), or 0 when there is none. ``lot``: (n_assets,); ``unit``: every lot
    is 1 (whole shares; no division).
    """
    _ready()
    if forced is None:
        return _round_lots(q_cur, q_tgt, lot, _NO_FORCED, False, bool(unit))
    return _round_lots(q_cur, q_tgt, lot, forced, True, bool(unit))


def lot_weights(
    q_fin: np.ndarray,
    q_cur: np.ndarray,
    current: np.ndarray,
    shares_per_w: np.ndarray,
    change: np.ndarray,
) -> np.ndarray:
    """Weights of the final positions: ``q_fin / shares_per_w`` where a name trades
    (``change`` and a new quantity; exactly 0 when closed), the current weight elsewhere."""
    _ready()
    return _lot_weights(q_fin, q_cur, current, shares_per_w, change)


# --------------------------------------------------------------------- reason counts


_DEBRUIJN = 0x03F79D71B4CB0A89
"""De Bruijn constant: ``(low_bit * _DEBRUIJN) >> 58`` differs for each of the 64 bits."""
_DEBRUIJN_POS = np.zeros(64, dtype=np.int64)
for _pos in range(64):
    _DEBRUIJN_POS[((1 << _pos) * _DEBRUIJN % (1 << 64)) >> 58] = _pos


@_kernel(_L2, _I1, types.int64, _I1)
def _count_bits(reasons, column, n_cols, debruijn_pos):  # pragma: no cover
    n_envs, n_assets = reasons.shape
    out = np.zeros((n_envs, n_cols), dtype=np.int64)
    for b in range(n_envs):
        for a in range(n_assets):
            r = np.uint64(reasons[b, a])
            while r != 0:  # one pass per set bit (most entries carry one or two)
                low = r & (~r + np.uint64(1))
                col = column[debruijn_pos[(low * np.uint64(_DEBRUIJN)) >> np.uint64(58)]]
                if col >= 0:
                    out[b, col] += 1
                r ^= low
    return out


def count_bits(reasons: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Per row of ``reasons`` (n_envs, n_assets) int64, how many entries have bit
    ``bits[k]`` set (distinct positions, 0 = least significant): (n_envs, len(bits))."""
    _ready()
    column = np.full(64, -1, dtype=np.int64)
    column[np.asarray(bits, dtype=np.int64)] = np.arange(len(bits))
    return _count_bits(reasons, column, len(bits), _DEBRUIJN_POS)


def fill_cost(
    trade: np.ndarray,
    equity: np.ndarray,
    adv: np.ndarray,
    vol: np.ndarray,
    spread: np.ndarray,
    rows: np.ndarray,
    spread_mult: float,
    commission_bps: float,
    impact_k: float,
) -> np.ndarray:
    """Total cost per portfolio of ``trade`` (n_envs, n_assets) at equity (n_envs,), with
    each portfolio's market row ``rows[b]`` of the per-bar tables ``adv``, ``vol`` and
    ``spread`` (n_bars, n_assets): ``expected_cost(...).sum(axis=1)`` with the same bits,
    without gathering the rows."""
    _ready()
    return _fill_cost(
        trade, equity, adv, vol, spread, np.asarray(rows, dtype=np.int64),
        float(spread_mult), float(commission_bps) / 1e4, float(impact_k),
    )  # fmt: skip
