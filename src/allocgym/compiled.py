"""Compiled (numba) kernels of the step: the ex-ante CVaR, the cost model (per symbol,
and summed per portfolio at the fill), execution's drift masks, lot rounding and exposure
checks, and the reason-bit counts.

Each kernel is the only implementation of its computation; the numpy modules call it
through a thin wrapper that converts the inputs. Every kernel is compiled for one
signature of read-only, any-layout arrays (a C-contiguous, a strided and a broadcast
input all use it), so the set of machine code is fixed and :func:`warm_up` compiles all
of it. Compiled code is cached on disk beside this module (``cache=True``): later
processes load it instead of compiling it (``allocgym bench env`` reports the seconds).

Elementwise kernels use the same float operations in the same order as the numpy
formulas they replaced, row sums (the fill cost, execution's drift and exposures) follow
numpy's pairwise order and sector sums ``np.bincount``'s, so their results are
bit-identical; the CVaR kernel sums in a fixed sequential order (documented on
:func:`scenario_cvar`).
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
_B1 = types.Array(types.boolean, 1, "A", readonly=True)
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
    parts = (trade, equity, adv, vol, spread)
    shape = np.broadcast_shapes(*(x.shape for x in parts))
    scalars = (float(spread_mult), float(commission_bps) / 1e4, float(impact_k))
    if len(shape) == 2:  # the gates' and the fill's call: views only, nothing reshaped
        args = [x if x.shape == shape else np.broadcast_to(x, shape) for x in parts]
        return _cost_terms(*args, *scalars)
    flat = (math.prod(shape[:-1]), shape[-1]) if shape else (1, 1)
    args = [np.broadcast_to(x, shape).reshape(flat) for x in parts]
    linear, impact = _cost_terms(*args, *scalars)
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


@njit(cache=True, error_model="numpy", inline="always")
def _round_lot(cur, tgt, lot, forced, unit):  # pragma: no cover
    """Final position of one order from ``cur`` toward ``tgt``: unless ``forced``, the
    current position plus the order truncated to whole lots (an order never exceeds the
    approved one; a zero target closes exactly); where ``forced`` (a reduce-only trade),
    the lattice point ``cur + k lot`` in ``[0, tgt]`` closest to ``tgt``, or 0 when there
    is none. ``unit``: every lot is 1 (no division)."""
    if forced:
        # toward zero: the lattice point cur + k lot in [0, tgt] closest to tgt
        s = np.sign(tgt)
        x = s * cur
        k = np.floor(_in_lots(abs(tgt) - x, lot, unit))
        v = x + (k if unit else k * lot)
        return 0.0 if (s == 0.0 or v < 0.0) else s * v
    # toward the current position: the order truncated to whole lots
    k = np.trunc(_in_lots(tgt - cur, lot, unit))
    return 0.0 if tgt == 0.0 else cur + (k if unit else k * lot)


@njit(cache=True, error_model="numpy", inline="always")
def _lot_weight(q, q_cur, current, shares_per_w, change):  # pragma: no cover
    """Weight of one final position: ``q / shares_per_w`` where the name trades
    (``change`` and a new quantity; exactly 0 when closed), the current weight elsewhere."""
    if change and q != q_cur:
        return 0.0 if q == 0.0 else q / shares_per_w
    return current


_NO_FORCED = np.zeros((1, 1), dtype=bool)


def snap_whole_lots(q: np.ndarray, lot: np.ndarray, unit: bool) -> np.ndarray:
    """``q`` (n_envs, n_assets) with entries within float dust of a whole number of lots
    (``lot``, (n_assets,)) set to it exactly; the others unchanged, bit for bit."""
    _ready()
    return _snap_lots(q, lot, bool(unit))


# --------------------------------------------------------------------- execution


@_kernel(_F2, _F2, _B2, types.boolean, _F1, types.float64, _L2, _I1)
def _drift_masks(
    approved, current, price_ok, every_ok, bands, l1_threshold, sym, port
):  # pragma: no cover
    n_envs, n_assets = approved.shape
    moving = np.empty((n_envs, n_assets), dtype=np.bool_)
    name_drift = np.empty((n_envs, n_assets), dtype=np.bool_)
    l1 = np.empty(n_envs, dtype=np.bool_)
    row_bits = np.empty(n_envs, dtype=np.int64)
    abs_d = np.empty(n_assets)
    for b in range(n_envs):
        bits = port[b]
        for a in range(n_assets):
            d = approved[b, a] - current[b, a] if every_ok or price_ok[b, a] else 0.0
            moving[b, a] = d != 0.0
            abs_d[a] = abs(d)
            name_drift[b, a] = abs_d[a] > bands[a]
            bits |= sym[b, a]
        l1[b] = 0.0 + _pairwise_sum(abs_d, 0, n_assets) > l1_threshold
        row_bits[b] = bits
    return moving, name_drift, l1, row_bits


def drift_masks(
    approved: np.ndarray,
    current: np.ndarray,
    price_ok: np.ndarray,
    every_ok: bool,
    bands: np.ndarray,
    l1_threshold: float,
    sym: np.ndarray,
    port: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Drift of ``approved`` from ``current`` (n_envs, n_assets; 0 where not ``price_ok``,
    unread when ``every_ok``): (moving, name_drift, l1, row_bits).

    ``moving``: a non-zero drift; ``name_drift``: ``|drift| > bands`` (n_assets,);
    ``l1`` (n_envs,): ``sum |drift| > l1_threshold``, summed as numpy sums a row;
    ``row_bits`` (n_envs,) int64: the OR of each row of ``sym`` and of ``port``.
    """
    _ready()
    return _drift_masks(
        approved, current, price_ok, bool(every_ok), bands, float(l1_threshold), sym, port
    )


@njit(cache=True, inline="always")
def _sector_sums(x, ids, out):  # pragma: no cover
    """``out[s]``: the sum of ``x`` over the names of sector ``s``, added in name order
    from 0.0 as ``np.bincount`` adds them; a name without a sector (id < 0) adds nowhere."""
    out[:] = 0.0
    for a in range(x.size):
        if ids[a] >= 0:
            out[ids[a]] += x[a]


@njit(cache=True, inline="always")
def _maximum(x, y):  # pragma: no cover
    """``np.maximum`` of two floats, its operation exactly: NaN when either is (Python's
    ``max`` keeps the first argument against a NaN second)."""
    return x if (x >= y or x != x) else y


@njit(cache=True, inline="always")
def _minimum(x, y):  # pragma: no cover
    """``np.minimum`` of two floats, its operation exactly: NaN when either is."""
    return x if (x <= y or x != x) else y


@njit(cache=True, error_model="numpy", inline="always")
def _room_ratio(room, need, over):  # pragma: no cover
    """``room / need`` clipped to [0, 1] where ``over`` and ``need > 0``, else 1."""
    if not (over and need > 0.0):
        return 1.0
    x = room / need
    return 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)


@njit(cache=True, error_model="numpy")
def _passes_rows(
    w, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, has_beta, ids, ok
):  # pragma: no cover
    """``ok[b]``: row ``b`` of ``w`` passes the checks of :func:`check_books`. One call
    for all rows: a call per row would pay its array arguments' reference counts."""
    n_envs, n_assets = w.shape
    buf = np.empty(n_assets)
    sums = np.empty(sector_tol.shape[1])
    for b in range(n_envs):
        ok[b] = False
        for a in range(n_assets):
            if not (w[b, a] >= lo[b, a] and w[b, a] <= hi[b, a]):
                break
        else:
            for a in range(n_assets):
                buf[a] = abs(w[b, a])
            if not (0.0 + _pairwise_sum(buf, 0, n_assets) <= gross_tol[b]):
                continue
            _sector_sums(buf, ids, sums)
            sectors_ok = True
            for k in range(sums.size):
                sectors_ok &= sums[k] <= sector_tol[b, k]
            if not sectors_ok:
                continue
            for a in range(n_assets):
                buf[a] = w[b, a]
            if not (abs(0.0 + _pairwise_sum(buf, 0, n_assets)) <= net_tol[b]):
                continue
            if has_beta:
                for a in range(n_assets):
                    buf[a] = betas[b, a] * w[b, a]
                if not (abs(0.0 + _pairwise_sum(buf, 0, n_assets)) <= beta_tol[b]):
                    continue
            ok[b] = True


_CHECKS = (_F2, _F2, _F1, _F2, _F1, _F2, _F1, types.boolean, _I1)
"""Signature of the check arguments: lo, hi, gross_tol, sector_tol, net_tol, betas,
beta_tol, has_beta, sector ids."""


@_kernel(_F2, *_CHECKS)
def _check_books(
    w, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, has_beta, ids
):  # pragma: no cover
    ok = np.empty(w.shape[0], dtype=np.bool_)
    _passes_rows(w, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, has_beta, ids, ok)
    return ok


@_kernel(_F2, _F2, _B2, types.boolean, _B2, _F2, _F2, _F1, types.boolean, _F1, _F2, _F1, *_CHECKS)
def _round_and_check(
    target, current, forced, has_forced, change, q_cur, shares_per_w, lot, unit,
    gross, sector, net, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, has_beta, ids,
):  # fmt: skip  # pragma: no cover
    n_envs, n_assets = target.shape
    n_sectors = sector.shape[1]
    q = np.empty((n_envs, n_assets))
    w = np.empty((n_envs, n_assets))
    scaled = np.zeros((n_envs, n_assets), dtype=np.bool_)
    ok = np.empty(n_envs, dtype=np.bool_)
    inc = np.empty(n_assets, dtype=np.bool_)
    base = np.empty(n_assets)
    need = np.empty(n_assets)
    base_s = np.empty(n_sectors)
    need_s = np.empty(n_sectors)
    lam_s = np.empty(n_sectors)
    for b in range(n_envs):
        any_inc = False
        for a in range(n_assets):
            cur, c, trades = q_cur[b, a], current[b, a], change[b, a]
            fz = has_forced and forced[b, a]
            qa = cur
            if trades:
                qa = _round_lot(cur, target[b, a] * shares_per_w[b, a], lot[a], fz, unit)
            wa = _lot_weight(qa, cur, c, shares_per_w[b, a], trades)
            q[b, a], w[b, a] = qa, wa
            # an exposure-increasing order (a forced name only ever shrinks)
            inc[a] = trades and abs(wa) > abs(c) and not fz
            any_inc |= inc[a]
        if any_inc:
            # The room left under gross and each sector's gross, and the need of the
            # increasing orders (|c| -> |target|); the others count at |w|.
            for a in range(n_assets):
                abs_c = abs(current[b, a])
                if inc[a]:
                    base[a], need[a] = abs_c, abs(target[b, a]) - abs_c
                else:
                    base[a], need[a] = abs(w[b, a]), 0.0
            base_g = 0.0 + _pairwise_sum(base, 0, n_assets)
            need_g = 0.0 + _pairwise_sum(need, 0, n_assets)
            _sector_sums(base, ids, base_s)
            _sector_sums(need, ids, need_s)
            over_any = False
            for s in range(n_sectors):
                room = sector[b, s] - base_s[s]
                over = need_s[s] > room
                lam_s[s] = _room_ratio(room, need_s[s], over)
                over_any |= over
            tight_ref = _minimum(gross[b], net[b])
            if over_any or need_g > tight_ref - base_g:
                # all long (or all short): |net| is the gross, its reference caps it too
                long_only = short_only = True
                for a in range(n_assets):
                    c, t = current[b, a], target[b, a]
                    long_only &= c >= 0.0 and t >= 0.0
                    short_only &= c <= 0.0 and t <= 0.0
                room_g = (tight_ref if long_only or short_only else gross[b]) - base_g
                lam_g = _room_ratio(room_g, need_g, need_g > room_g)
                for a in range(n_assets):
                    if not inc[a]:
                        continue
                    lam = lam_g if ids[a] < 0 else _minimum(lam_g, lam_s[ids[a]])
                    if lam < 1.0:
                        # scaled down and rounded again (toward the current position)
                        scaled[b, a] = True
                        cur, c, spw = q_cur[b, a], current[b, a], shares_per_w[b, a]
                        q_tgt = (c + lam * (target[b, a] - c)) * spw
                        qa = _round_lot(cur, q_tgt, lot[a], False, unit)
                        q[b, a] = qa
                        w[b, a] = _lot_weight(qa, cur, c, spw, True)
    _passes_rows(w, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, has_beta, ids, ok)
    return q, w, scaled, ok


_NO_BETAS = np.zeros((1, 1))
_NO_BETA_TOL = np.zeros(1)


@_kernel(
    _F2, _F2, _B1, _B2, types.boolean, _F2, types.boolean, _I1, types.int64, types.boolean,
    _F1, types.float64, types.float64, types.float64, types.float64,
)  # fmt: skip
def _exposure_refs(
    approved, current, forced, forced_names, has_forced_names, betas, has_beta, ids,
    n_sectors, bounded, gross_limit, sector_cap, net_cap, beta_cap, tol,
):  # fmt: skip  # pragma: no cover
    n_envs, n_assets = approved.shape
    lo = np.empty((n_envs, n_assets))
    hi = np.empty((n_envs, n_assets))
    gross, net, beta = np.empty(n_envs), np.empty(n_envs), np.empty(n_envs)
    sector = np.empty((n_envs, n_sectors))
    _exposure_rows(approved, betas, has_beta, ids, gross, sector, net, beta)
    if bounded:
        for b in range(n_envs):
            gross[b] = _maximum(gross[b], gross_limit[b])
            net[b] = _maximum(net[b], net_cap)
            beta[b] = _maximum(beta[b], beta_cap)
            for s in range(n_sectors):
                sector[b, s] = _maximum(sector[b, s], sector_cap)
    elif not forced.all():  # the current book's exposures count where not forced
        own_g, own_n, own_b = np.empty(n_envs), np.empty(n_envs), np.empty(n_envs)
        own_s = np.empty((n_envs, n_sectors))
        _exposure_rows(current, betas, has_beta, ids, own_g, own_s, own_n, own_b)
        for b in range(n_envs):
            if not forced[b]:
                gross[b] = _maximum(gross[b], own_g[b])
                net[b] = _maximum(net[b], own_n[b])
                beta[b] = _maximum(beta[b], own_b[b])
                for s in range(n_sectors):
                    sector[b, s] = _maximum(sector[b, s], own_s[b, s])
    for b in range(n_envs):
        for a in range(n_assets):
            w, other = approved[b, a], current[b, a]
            if has_forced_names and forced_names[b, a]:
                other = 0.0
            lo[b, a] = _minimum(w, other) - tol
            hi[b, a] = _maximum(w, other) + tol
    return lo, hi, gross, sector, net, gross + tol, sector + tol, net + tol, beta + tol


@njit(cache=True, error_model="numpy")
def _exposure_rows(w, betas, has_beta, ids, gross, sector, net, beta):  # pragma: no cover
    """Per row of ``w``: gross, sector gross, ``|net|`` and ``|beta^T w|`` (0.0 without
    betas) into the output arrays (all rows in one call, as :func:`_passes_rows`)."""
    n_envs, n_assets = w.shape
    buf = np.empty(n_assets)
    for b in range(n_envs):
        for a in range(n_assets):
            buf[a] = abs(w[b, a])
        gross[b] = 0.0 + _pairwise_sum(buf, 0, n_assets)
        _sector_sums(buf, ids, sector[b])
        for a in range(n_assets):
            buf[a] = w[b, a]
        net[b] = abs(0.0 + _pairwise_sum(buf, 0, n_assets))
        beta[b] = 0.0
        if has_beta:
            for a in range(n_assets):
                buf[a] = betas[b, a] * w[b, a]
            beta[b] = abs(0.0 + _pairwise_sum(buf, 0, n_assets))


def exposure_refs(
    approved: np.ndarray,
    current: np.ndarray,
    forced: np.ndarray,
    forced_names: np.ndarray | None,
    betas: np.ndarray | None,
    sector_ids: np.ndarray,
    n_sectors: int,
    limits: tuple[np.ndarray, float, float, float] | None,
    tol: float,
) -> tuple[np.ndarray, ...]:
    """Exposure references of lot-rounded books (execution's ``_Refs``):
    (lo, hi, gross, sector, net, gross_tol, sector_tol, net_tol, beta_tol).

    ``lo``/``hi`` (n_envs, n_assets): the lower/higher of ``approved`` and ``current``
    (0 for ``forced_names``), minus/plus ``tol``. Gross, sector gross (n_envs, n_sectors;
    ``sector_ids`` as in :func:`check_books`), ``|net|`` and ``|beta^T w|`` (``None``
    without ``betas``) of ``approved``, raised to ``limits`` = (gross limit (n_envs,),
    sector cap, net cap, beta cap) when given, else to the current book's exposures
    except in ``forced`` (n_envs,) rows. ``*_tol``: the same plus ``tol``.
    """
    _ready()
    bounded = limits is not None
    gross_limit, sector_cap, net_cap, beta_cap = limits if bounded else (_NO_BETA_TOL, 0, 0, 0)
    out = _exposure_refs(
        approved, current, forced, _NO_FORCED if forced_names is None else forced_names,
        forced_names is not None, _NO_BETAS if betas is None else betas, betas is not None,
        sector_ids, int(n_sectors), bounded, gross_limit, float(sector_cap), float(net_cap),
        float(beta_cap), float(tol),
    )  # fmt: skip
    return out if betas is not None else (*out[:-1], None)


def _check_args(
    lo: np.ndarray,
    hi: np.ndarray,
    gross_tol: np.ndarray,
    sector_tol: np.ndarray,
    net_tol: np.ndarray,
    betas: np.ndarray | None,
    beta_tol: np.ndarray | None,
    sector_ids: np.ndarray,
) -> tuple[Any, ...]:
    """The check arguments of the kernels (unused stand-in arrays and ``has_beta`` False
    without betas)."""
    if betas is None or beta_tol is None:
        return lo, hi, gross_tol, sector_tol, net_tol, _NO_BETAS, _NO_BETA_TOL, False, sector_ids
    return lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, True, sector_ids


def check_books(
    w: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    gross_tol: np.ndarray,
    sector_tol: np.ndarray,
    net_tol: np.ndarray,
    betas: np.ndarray | None,
    beta_tol: np.ndarray | None,
    sector_ids: np.ndarray,
) -> np.ndarray:
    """(n_envs,) bool: each book ``w`` (n_envs, n_assets) stays inside its references.

    ``lo <= w <= hi`` name by name (n_envs, n_assets); ``sum |w| <= gross_tol``,
    ``|sum w| <= net_tol`` and, unless ``betas`` or ``beta_tol`` is ``None``,
    ``|sum betas w| <= beta_tol`` (each (n_envs,)); the sum of ``|w|`` over the names of
    each sector ``<= sector_tol`` (n_envs, n_sectors). ``sector_ids`` (n_assets,) int64
    in ``[0, n_sectors)``, or negative for a name in no sector. Row sums are numpy's
    (pairwise) sums of a C-ordered row and sector sums ``np.bincount``'s, bit for bit.
    """
    _ready()
    args = _check_args(lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, sector_ids)
    return _check_books(w, *args)


def round_and_check(
    target: np.ndarray,
    current: np.ndarray,
    forced: np.ndarray | None,
    change: np.ndarray,
    q_cur: np.ndarray,
    shares_per_w: np.ndarray,
    lot: np.ndarray,
    unit: bool,
    gross: np.ndarray,
    sector: np.ndarray,
    net: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    gross_tol: np.ndarray,
    sector_tol: np.ndarray,
    net_tol: np.ndarray,
    betas: np.ndarray | None,
    beta_tol: np.ndarray | None,
    sector_ids: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lot-round the books ``target`` and check them: (q, w, scaled, ok).

    Where ``change`` (n_envs, n_assets) the position ``q_cur`` moves toward
    ``target * shares_per_w`` rounded to whole lots (``_round_lot``: toward zero where
    ``forced``; ``None``: nowhere), elsewhere it stays; ``w`` is its weight
    (``_lot_weight``). An *increasing* order (``|w| > |current|``, not forced) is
    then scaled so that gross and each sector's gross stay at or below ``gross`` and
    ``sector`` (``min(gross, net)`` for gross in a row whose current and target weights
    are all >= 0 or all <= 0): the name ends at most at ``|c| + lam (|target| - |c|)``,
    ``lam`` the smaller of the room/need ratios of gross and of its sector, each in
    [0, 1] (1 where nothing is over), with the others at ``|w|``. A name with
    ``lam < 1`` is ``scaled`` and rounded again from ``c + lam (target - c)``.
    ``ok`` (n_envs,): :func:`check_books` of ``w`` with the remaining arguments.
    ``gross``, ``net`` (n_envs,), ``sector`` (n_envs, n_sectors); the sums are numpy's
    pairwise and bincount sums, bit for bit.
    """
    _ready()
    has_forced = forced is not None
    args = _check_args(lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, sector_ids)
    return _round_and_check(
        target, current, forced if has_forced else _NO_FORCED, has_forced, change, q_cur,
        shares_per_w, lot, bool(unit), gross, sector, net, *args,
    )  # fmt: skip


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
