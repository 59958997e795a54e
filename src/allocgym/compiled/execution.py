"""Execution: the exposure references of lot-rounded books (:func:`exposure_refs`), their
rounding and limit checks (:func:`round_and_check`), and one decision's plan
(:func:`plan_orders`: drift, triggers, bands, references, rounding and checks in one call)
and orders (:func:`order_result`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, types

from allocgym.compiled._base import (
    B1,
    B2,
    F1,
    F2,
    I1,
    L2,
    kernel,
    maximum,
    minimum,
    pairwise_sum,
    ready,
    sector_sums,
)

_SNAP = 1e-13
"""Relative distance to a whole number of lots below which a quantity is that number."""

_ANCHOR_DUST = 4.0 * np.finfo(np.float64).eps
"""Relative float error of a lattice point ``cur + k lot`` computed from ``cur`` (the
rounding of ``cur`` itself and of ``k lot``, each at most half an ulp of ``|cur|``)."""


@njit(cache=True, error_model="numpy", inline="always")
def _snap_one(x, lot, unit):  # pragma: no cover
    """``x`` set to its whole number of lots when within float dust of it, else ``x``; a
    position is never read as 0 (under float dust of a lot it is still held, and only an
    order can close it: read as 0, a zero target had left it in the book)."""
    lots = _in_lots(x, lot, unit)
    if lots == np.rint(lots) and lots != 0.0:
        return lots if unit else lots * lot
    return x


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
    is none: never past ``tgt`` beyond its own dust; ``tgt`` itself where the point is
    past it by the float dust of ``cur`` only, or where ``|cur|``'s float spacing reaches a
    lot. ``unit``: every lot is 1 (no division)."""
    if forced:
        # toward zero: the lattice point cur + k lot in [0, tgt] closest to tgt
        s = np.sign(tgt)
        x = s * cur
        k = np.floor(_in_lots(abs(tgt) - x, lot, unit))
        v = x + (k if unit else k * lot)
        over = v - abs(tgt) * (1.0 + _SNAP)
        if over > 0.0:
            # Past the target: the snap is relative to the order, which dwarfs the target
            # when a position far above its cap is cut to it (a notional cap of 1000 had
            # held 1000.01): one lot lower, or the target itself where |cur|'s float
            # spacing reaches a lot. Past it by no more than the float dust of the
            # lattice's anchor cur (and of k lot, as large): the target itself, on the
            # lattice up to that dust (a lot lower would drop a whole lot for dust).
            if over <= _ANCHOR_DUST * abs(x):
                v = abs(tgt)
            else:
                v = min(v - (1.0 if unit else lot), abs(tgt))
        return 0.0 if (s == 0.0 or v <= 0.0) else s * v
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


# --------------------------------------------------------------------- execution


@njit(cache=True, error_model="numpy")
def _drift_rows(
    approved, current, price_ok, bands, l1_threshold, sym, port,
    moving, name_drift, l1, row_bits,
):  # fmt: skip  # pragma: no cover
    """The drift of ``approved`` from ``current`` (0 where not ``price_ok``), written:
    ``moving`` a non-zero drift; ``name_drift`` ``|drift| > bands`` (n_assets,); ``l1``
    (n_envs,) ``sum |drift| > l1_threshold``, summed as numpy sums a row; ``row_bits``
    (n_envs,) the OR of each row of ``sym`` and of ``port``."""
    n_envs, n_assets = approved.shape
    abs_d = np.empty(n_assets)
    for b in range(n_envs):
        bits = port[b]
        for a in range(n_assets):
            d = approved[b, a] - current[b, a] if price_ok[b, a] else 0.0
            moving[b, a] = d != 0.0
            abs_d[a] = abs(d)
            name_drift[b, a] = abs_d[a] > bands[a]
            bits |= sym[b, a]
        l1[b] = 0.0 + pairwise_sum(abs_d, 0, n_assets) > l1_threshold
        row_bits[b] = bits


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
    """``ok[b]``: row ``b`` of ``w`` passes the exposure checks (:func:`round_and_check`'s ``ok``). One call
    for all rows: a call per row would pay its array arguments' reference counts."""
    buf = np.empty(w.shape[1])
    sums = np.empty(sector_tol.shape[1])
    for b in range(w.shape[0]):
        ok[b] = _passes_row(
            w, b, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, has_beta, ids, buf, sums
        )


@njit(cache=True, error_model="numpy", inline="always")
def _passes_row(
    w, b, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, has_beta, ids, buf, sums
):  # pragma: no cover
    """Row ``b`` of ``w`` passes the exposure checks (``buf``, ``sums``:
    scratch of n_assets and n_sectors)."""
    n_assets = w.shape[1]
    for a in range(n_assets):
        if not (w[b, a] >= lo[b, a] and w[b, a] <= hi[b, a]):
            return False
    for a in range(n_assets):
        buf[a] = abs(w[b, a])
    if not (0.0 + pairwise_sum(buf, 0, n_assets) <= gross_tol[b]):
        return False
    sector_sums(buf, ids, sums)
    sectors_ok = True
    for k in range(sums.size):
        sectors_ok &= sums[k] <= sector_tol[b, k]
    if not sectors_ok:
        return False
    for a in range(n_assets):
        buf[a] = w[b, a]
    if not (abs(0.0 + pairwise_sum(buf, 0, n_assets)) <= net_tol[b]):
        return False
    if has_beta:
        for a in range(n_assets):
            buf[a] = betas[b, a] * w[b, a]
        if not (abs(0.0 + pairwise_sum(buf, 0, n_assets)) <= beta_tol[b]):
            return False
    return True


_CHECKS = (F2, F2, F1, F2, F1, F2, F1, types.boolean, I1)
"""Signature of the check arguments: lo, hi, gross_tol, sector_tol, net_tol, betas,
beta_tol, has_beta, sector ids."""


@kernel(F2, F2, B2, types.boolean, B2, F2, F2, F1, types.boolean, F1, F2, F1, *_CHECKS)
def _round_and_check(
    target, current, forced, has_forced, change, q_cur, shares_per_w, lot, unit,
    gross, sector, net, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, has_beta, ids,
):  # fmt: skip  # pragma: no cover
    n_envs, n_assets = target.shape
    q = np.empty((n_envs, n_assets))
    w = np.empty((n_envs, n_assets))
    scaled = np.zeros((n_envs, n_assets), dtype=np.bool_)
    ok = np.empty(n_envs, dtype=np.bool_)
    _round_rows(
        target, current, forced, has_forced, change, q_cur, shares_per_w, lot, unit, gross,
        sector, net, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, has_beta, ids,
        q, w, scaled, ok,
    )  # fmt: skip
    return q, w, scaled, ok


@njit(cache=True, error_model="numpy")
def _round_rows(
    target, current, forced, has_forced, change, q_cur, shares_per_w, lot, unit, gross,
    sector, net, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, has_beta, ids,
    q, w, scaled, ok,
):  # fmt: skip  # pragma: no cover
    """The outputs of :func:`round_and_check` written into ``q``, ``w``, ``scaled`` (all
    False on entry) and ``ok``."""
    n_envs, n_assets = target.shape
    n_sectors = sector.shape[1]
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
            base_g = 0.0 + pairwise_sum(base, 0, n_assets)
            need_g = 0.0 + pairwise_sum(need, 0, n_assets)
            sector_sums(base, ids, base_s)
            sector_sums(need, ids, need_s)
            over_any = False
            for s in range(n_sectors):
                room = sector[b, s] - base_s[s]
                over = need_s[s] > room
                lam_s[s] = _room_ratio(room, need_s[s], over)
                over_any |= over
            tight_ref = minimum(gross[b], net[b])
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
                    lam = lam_g if ids[a] < 0 else minimum(lam_g, lam_s[ids[a]])
                    if lam < 1.0:
                        # scaled down and rounded again (toward the current position)
                        scaled[b, a] = True
                        cur, c, spw = q_cur[b, a], current[b, a], shares_per_w[b, a]
                        q_tgt = (c + lam * (target[b, a] - c)) * spw
                        qa = _round_lot(cur, q_tgt, lot[a], False, unit)
                        q[b, a] = qa
                        w[b, a] = _lot_weight(qa, cur, c, spw, True)
    _passes_rows(w, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, has_beta, ids, ok)


_NO_BETAS = np.zeros((1, 1))
_NO_BETA_TOL = np.zeros(1)


@kernel(
    F2, F2, B1, B2, types.boolean, F2, types.boolean, I1, types.int64, types.boolean,
    F1, types.float64, types.float64, types.float64, types.float64,
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
    _refs_rows(
        approved, current, forced, forced_names, has_forced_names, betas, has_beta, ids,
        bounded, gross_limit, sector_cap, net_cap, beta_cap, tol, lo, hi, gross, sector, net, beta,
    )  # fmt: skip
    return lo, hi, gross, sector, net, gross + tol, sector + tol, net + tol, beta + tol


@njit(cache=True, error_model="numpy")
def _refs_rows(
    approved, current, forced, forced_names, has_forced_names, betas, has_beta, ids,
    bounded, gross_limit, sector_cap, net_cap, beta_cap, tol, lo, hi, gross, sector, net, beta,
):  # fmt: skip  # pragma: no cover
    """The references of :func:`exposure_refs` written into ``lo`` ... ``beta`` (gross,
    sector, net and beta without the ``+ tol``)."""
    n_envs, n_assets = approved.shape
    n_sectors = sector.shape[1]
    _exposure_rows(approved, betas, has_beta, ids, gross, sector, net, beta)
    if bounded:
        for b in range(n_envs):
            gross[b] = maximum(gross[b], gross_limit[b])
            net[b] = maximum(net[b], net_cap)
            beta[b] = maximum(beta[b], beta_cap)
            for s in range(n_sectors):
                sector[b, s] = maximum(sector[b, s], sector_cap)
    elif not forced.all():  # the current book's exposures count where not forced
        own_g, own_n, own_b = np.empty(n_envs), np.empty(n_envs), np.empty(n_envs)
        own_s = np.empty((n_envs, n_sectors))
        _exposure_rows(current, betas, has_beta, ids, own_g, own_s, own_n, own_b)
        for b in range(n_envs):
            if not forced[b]:
                gross[b] = maximum(gross[b], own_g[b])
                net[b] = maximum(net[b], own_n[b])
                beta[b] = maximum(beta[b], own_b[b])
                for s in range(n_sectors):
                    sector[b, s] = maximum(sector[b, s], own_s[b, s])
    for b in range(n_envs):
        for a in range(n_assets):
            w, other = approved[b, a], current[b, a]
            if has_forced_names and forced_names[b, a]:
                other = 0.0
            lo[b, a] = minimum(w, other) - tol
            hi[b, a] = maximum(w, other) + tol


@njit(cache=True, error_model="numpy")
def _exposure_rows(w, betas, has_beta, ids, gross, sector, net, beta):  # pragma: no cover
    """Per row of ``w``: gross, sector gross, ``|net|`` and ``|beta^T w|`` (0.0 without
    betas) into the output arrays (all rows in one call, as :func:`_passes_rows`)."""
    n_envs, n_assets = w.shape
    buf = np.empty(n_assets)
    for b in range(n_envs):
        for a in range(n_assets):
            buf[a] = abs(w[b, a])
        gross[b] = 0.0 + pairwise_sum(buf, 0, n_assets)
        sector_sums(buf, ids, sector[b])
        for a in range(n_assets):
            buf[a] = w[b, a]
        net[b] = abs(0.0 + pairwise_sum(buf, 0, n_assets))
        beta[b] = 0.0
        if has_beta:
            for a in range(n_assets):
                buf[a] = betas[b, a] * w[b, a]
            beta[b] = abs(0.0 + pairwise_sum(buf, 0, n_assets))


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
    ``sector_ids`` as in :func:`round_and_check`), ``|net|`` and ``|beta^T w|`` (``None``
    without ``betas``) of ``approved``, raised to ``limits`` = (gross limit (n_envs,),
    sector cap, net cap, beta cap) when given, else to the current book's exposures
    except in ``forced`` (n_envs,) rows. ``*_tol``: the same plus ``tol``.
    """
    ready()
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
    ``ok`` (n_envs,): each book ``w`` stays inside its references: ``lo <= w <= hi``
    name by name; ``sum |w| <= gross_tol``, ``|sum w| <= net_tol`` and, unless ``betas``
    or ``beta_tol`` is ``None``, ``|sum betas w| <= beta_tol``; each sector's gross
    ``<= sector_tol``. ``sector_ids`` (n_assets,) in ``[0, n_sectors)``, or negative for a
    name in no sector.
    ``gross``, ``net`` (n_envs,), ``sector`` (n_envs, n_sectors); the sums are numpy's
    pairwise and bincount sums, bit for bit.
    """
    ready()
    has_forced = forced is not None
    args = _check_args(lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, sector_ids)
    return _round_and_check(
        target, current, forced if has_forced else _NO_FORCED, has_forced, change, q_cur,
        shares_per_w, lot, bool(unit), gross, sector, net, *args,
    )  # fmt: skip


# --------------------------------------------------------------------- one decision


@njit(cache=True, error_model="numpy", inline="always")
def _any_at_least(x, row, threshold):  # pragma: no cover
    """Some entry of row ``row`` of ``x`` is at or above ``threshold``; a NaN counts as 0
    (it fires only on a threshold <= 0)."""
    for k in range(x.shape[1]):
        v = x[row, k]
        if v >= threshold or (v != v and threshold <= 0.0):
            return True
    return False


@njit(cache=True, error_model="numpy")
def _price_rows(
    approved, current, prices, tradable, equity, price_ok, shares_per_w
):  # pragma: no cover
    """``price_ok`` (tradable, finite positive price and equity) and ``shares_per_w``
    (equity / price, 0 without a finite positive price and equity; a halted name keeps
    it, so its held position reads back as shares) written; returns (every weight finite,
    the largest |weight|)."""
    finite = True
    w_max = 0.0
    for b in range(approved.shape[0]):
        for a in range(approved.shape[1]):
            w, c, p = approved[b, a], current[b, a], prices[b, a]
            finite &= np.isfinite(w) and np.isfinite(c)
            w_max = max(w_max, abs(w), abs(c))
            priced = np.isfinite(p) and p > 0.0 and equity[b] > 0.0
            price_ok[b, a] = tradable[b, a] and priced
            shares_per_w[b, a] = equity[b] / p if priced else 0.0
    return finite, w_max


@njit(cache=True, error_model="numpy")
def _band_rows(
    sym, moving, name_drift, l1, row_bits, kill, has_kill, kill_all, scheduled,
    has_schedule, vol_ratio, vol_spike_ratio, spread_ratio, spread_blowout_ratio,
    scheduled_only, inside, names_out, has_names_out, bits,
    flags, forced, forced_names, suppress,
):  # fmt: skip  # pragma: no cover
    """The trigger ``flags``, ``forced`` rows, ``forced_names`` and the names a band
    ``suppress``es, written (see :func:`plan_orders`)."""
    kill_code, forced_codes = bits[0], bits[1]
    n_envs, n_assets = moving.shape
    for b in range(n_envs):
        killed = kill_all or (has_kill and kill[b]) or (row_bits[b] & kill_code) != 0
        outside = not inside[b]
        forced[b] = (row_bits[b] & forced_codes) != 0 or killed or outside
        any_named = False
        for a in range(n_assets):
            named = (sym[b, a] & forced_codes) != 0
            named |= has_names_out and outside and names_out[b, a]
            forced_names[b, a] = named
            any_named |= named
        # a forced row with no forced name cannot tell which names bring it back inside
        if killed or (forced[b] and not any_named):
            forced_names[b, :] = True
        window = not has_schedule or scheduled[b]
        vol_spike = _any_at_least(vol_ratio, b, vol_spike_ratio)
        spread_blow = _any_at_least(spread_ratio, b, spread_blowout_ratio)
        override = vol_spike or spread_blow or killed
        full = l1[b] or override
        allowed = True
        if scheduled_only:
            allowed = window or override
            full = full and allowed
        any_drift = False
        for a in range(n_assets):
            any_drift |= name_drift[b, a]
            # Only the forced names skip their bands: one name drifting over a cap must
            # not make the whole book trade (the band check still lifts a band that
            # would leave a portfolio limit broken).
            suppress[b, a] = (
                moving[b, a]
                and not (allowed and name_drift[b, a])
                and not full
                and not forced_names[b, a]
            )
        row = 0
        for k, fired in enumerate(
            (any_drift, l1[b], window, vol_spike, spread_blow, killed, forced[b])
        ):
            if fired:
                row |= bits[2 + k]
        flags[b] = row


@kernel(
    F2, F2, F2, B2, F1, F1, types.float64, L2, I1, B1, types.boolean, types.boolean, B1,
    types.boolean, F2, types.float64, F2, types.float64, types.boolean, B1, B2,
    types.boolean, F2, types.boolean, I1, types.int64, types.boolean, F1, types.float64,
    types.float64, types.float64, types.float64, F1, types.boolean, I1,
)  # fmt: skip
def _plan_orders(
    approved, current, prices, tradable, equity, bands, l1_threshold, sym, port, kill,
    has_kill, kill_all, scheduled, has_schedule, vol_ratio, vol_spike_ratio, spread_ratio,
    spread_blowout_ratio, scheduled_only, inside, names_out, has_names_out, betas,
    has_betas, ids, n_sectors, bounded, gross_limit, sector_cap, net_cap, beta_cap, tol,
    lot, unit, bits,
):  # fmt: skip  # pragma: no cover
    n_envs, n_assets = approved.shape
    price_ok = np.empty((n_envs, n_assets), dtype=np.bool_)
    shares_per_w = np.empty((n_envs, n_assets))
    finite, w_max = _price_rows(approved, current, prices, tradable, equity, price_ok, shares_per_w)
    moving = np.empty((n_envs, n_assets), dtype=np.bool_)
    name_drift = np.empty((n_envs, n_assets), dtype=np.bool_)
    l1 = np.empty(n_envs, dtype=np.bool_)
    row_bits = np.empty(n_envs, dtype=np.int64)
    _drift_rows(
        approved, current, price_ok, bands, l1_threshold, sym, port,
        moving, name_drift, l1, row_bits,
    )  # fmt: skip
    flags = np.empty(n_envs, dtype=np.int64)
    forced = np.empty(n_envs, dtype=np.bool_)
    forced_names = np.empty((n_envs, n_assets), dtype=np.bool_)
    suppress = np.empty((n_envs, n_assets), dtype=np.bool_)
    _band_rows(
        sym, moving, name_drift, l1, row_bits, kill, has_kill, kill_all, scheduled,
        has_schedule, vol_ratio, vol_spike_ratio, spread_ratio, spread_blowout_ratio,
        scheduled_only, inside, names_out, has_names_out, bits,
        flags, forced, forced_names, suppress,
    )  # fmt: skip
    has_beta = has_betas
    if has_betas and bounded and beta_cap == np.inf:
        # With no beta limit a beta check fails only on a NaN sum (infinities of both
        # signs); books here stay within a few times max(|approved|, |current|) per name,
        # so a product bound far below the float range proves none arises: skipped.
        b_max = 0.0
        for b in range(betas.shape[0]):
            for a in range(betas.shape[1]):
                b_max = max(b_max, abs(betas[b, a]))
        has_beta = not (b_max * w_max * 4.0 * max(1, n_assets) < 1e300)
    lo = np.empty((n_envs, n_assets))
    hi = np.empty((n_envs, n_assets))
    gross, net, beta = np.empty(n_envs), np.empty(n_envs), np.empty(n_envs)
    sector = np.empty((n_envs, n_sectors))
    _refs_rows(
        approved, current, forced, forced_names, True, betas, has_beta, ids, bounded,
        gross_limit, sector_cap, net_cap, beta_cap, tol, lo, hi, gross, sector, net, beta,
    )  # fmt: skip
    gross_tol, sector_tol, net_tol, beta_tol = gross + tol, sector + tol, net + tol, beta + tol
    target = np.empty((n_envs, n_assets))
    q_cur = np.empty((n_envs, n_assets))
    change = np.empty((n_envs, n_assets), dtype=np.bool_)
    band_ok = np.empty(n_envs, dtype=np.bool_)
    buf = np.empty(n_assets)
    sums = np.empty(n_sectors)
    for b in range(n_envs):
        any_suppress = False
        for a in range(n_assets):
            c = current[b, a]
            t = c if suppress[b, a] else approved[b, a]
            target[b, a] = t
            q_cur[b, a] = _snap_one(c * shares_per_w[b, a], lot[a], unit)
            change[b, a] = t != c and price_ok[b, a]
            any_suppress |= suppress[b, a]
        band_ok[b] = not any_suppress or _passes_row(
            target, b, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, has_beta, ids,
            buf, sums,
        )  # fmt: skip
    q = np.empty((n_envs, n_assets))
    w = np.empty((n_envs, n_assets))
    scaled = np.zeros((n_envs, n_assets), dtype=np.bool_)
    ok = np.empty(n_envs, dtype=np.bool_)
    _round_rows(
        target, current, forced_names, True, change, q_cur, shares_per_w, lot, unit, gross,
        sector, net, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, has_beta, ids,
        q, w, scaled, ok,
    )  # fmt: skip
    settled = True
    for b in range(n_envs):
        settled &= band_ok[b] and ok[b]
    return (
        finite, has_beta, settled, flags, forced_names, shares_per_w, q_cur,
        suppress, band_ok, target, change, q, w, scaled, ok,
    )  # fmt: skip


_NO_RATIOS = np.zeros((1, 0))
_NO_ROWS = np.zeros(1, dtype=bool)


def plan_orders(
    approved: np.ndarray,
    current: np.ndarray,
    prices: np.ndarray,
    tradable: np.ndarray,
    equity: np.ndarray,
    bands: np.ndarray,
    l1_threshold: float,
    sym: np.ndarray,
    port: np.ndarray,
    triggers: tuple[Any, ...],
    inside: np.ndarray,
    names_out: np.ndarray | None,
    betas: np.ndarray | None,
    sector_ids: np.ndarray,
    n_sectors: int,
    limits: tuple[np.ndarray, float, float, float] | None,
    tol: float,
    lot: np.ndarray,
    unit: bool,
    bits: np.ndarray,
) -> tuple[Any, ...]:
    """Execution's banded target of one decision, lot-rounded and checked.

    Inputs (n_envs, n_assets) unless said: the ``approved`` and ``current`` books,
    ``prices`` and ``tradable``, ``equity`` (n_envs,), the name bands ``bands``
    (n_assets,), the L1 band ``l1_threshold``, the gate reasons ``sym`` and ``port``
    (n_envs,); ``triggers`` = (kill, kill_all, scheduled, vol_ratio, vol_spike_ratio,
    spread_ratio, spread_blowout_ratio, scheduled_only): kill switches (n_envs,) bool or
    ``None``, kill_all bool, the scheduled windows (n_envs,) bool or ``None`` (every bar),
    the ratios (n_envs, k) or ``None`` (never fire) with their thresholds; ``inside``
    (n_envs,): the current book is inside the hard limits, ``names_out`` its names over
    their caps (read in rows not ``inside``; ``None``: none); ``betas`` (``None``: no beta
    checks); ``sector_ids``/``n_sectors``, ``limits`` and ``tol`` as in
    :func:`exposure_refs`; ``lot`` (n_assets,) the lot sizes (``unit``: all 1); ``bits``
    int64: the KILL_SWITCH and the forced reason codes, then the trigger flags
    NAME_DRIFT, PORTFOLIO_DRIFT, SCHEDULED, VOL_SPIKE, SPREAD_BLOWOUT, KILL_SWITCH, FORCED.

    A name has a valid price where tradable with a finite positive price and equity; its
    drift is ``approved - current`` there, 0 elsewhere; it moves where that is non-zero
    and is past its band where ``|drift| > bands``; a row is past the L1 band where
    ``sum |drift| > l1_threshold`` (numpy's row sum). A row is killed by a kill switch or a
    KILL_SWITCH code, forced when killed, coded forced or not ``inside``; its forced names
    are the coded ones and ``names_out``, all of them when killed or when none is. An
    override is a killed row or a ratio at or above its threshold (a NaN counts as 0). A
    moving name is suppressed unless past its band (and, with ``scheduled_only``, in a
    window or on an override), in a row past the L1 band or on an override (with
    ``scheduled_only``: and in a window), or forced. Without a beta limit (beta cap
    ``inf`` in ``limits``) the beta checks are dropped when ``max|betas| * max(|approved|,
    |current|) * 4 * n_assets < 1e300``: no beta sum can then overflow into NaN.

    Returns (finite, has_beta, settled, flags, forced_names, shares_per_w, q_cur,
    suppress, band_ok, target, change, q, w, scaled, ok): ``finite`` every approved and
    current weight is finite; ``has_beta`` the beta checks apply; ``settled`` every
    ``band_ok`` and ``ok``; ``flags`` (n_envs,) the trigger flags; ``shares_per_w``
    equity / price (0 without a finite positive price); ``q_cur`` the current position
    ``current * shares_per_w``, set to its whole number of lots where within float dust
    (relative 1e-13) of it; ``target`` the current weight where suppressed, else the
    approved; ``band_ok`` (n_envs,) False where a suppressed row's target fails the
    exposure checks of :func:`round_and_check` against the references of
    :func:`exposure_refs` (with the forced rows and names); ``change`` the target differs from the current weight at a valid
    price; (q, w, scaled, ok) :func:`round_and_check` of ``target`` toward zero for the
    forced names, against the same references.
    """
    ready()
    kill, kill_all, scheduled, vol, vol_at, spread, spread_at, scheduled_only = triggers
    bounded = limits is not None
    gross_limit, sector_cap, net_cap, beta_cap = limits if bounded else (_NO_BETA_TOL, 0, 0, 0)
    return _plan_orders(
        approved, current, prices, tradable, equity, bands, float(l1_threshold), sym, port,
        _NO_ROWS if kill is None else kill, kill is not None, bool(kill_all),
        _NO_ROWS if scheduled is None else scheduled, scheduled is not None,
        _NO_RATIOS if vol is None else vol, float(vol_at),
        _NO_RATIOS if spread is None else spread, float(spread_at), bool(scheduled_only),
        inside, _NO_FORCED if names_out is None else names_out, names_out is not None,
        _NO_BETAS if betas is None else betas, betas is not None, sector_ids, int(n_sectors),
        bounded, gross_limit, float(sector_cap), float(net_cap), float(beta_cap), float(tol),
        lot, bool(unit), bits,
    )  # fmt: skip


@kernel(L2, I1, I1, B2, B1, F2, B2, F2, F2, F2, B2, B1, I1)
def _order_result(
    sym, port, flags, suppress, band_ok, target, change, q_cur, q, w, scaled, ok, bits
):  # pragma: no cover
    n_envs, n_assets = w.shape
    band, lot_code, lifted_flag, scaled_flag, fallback_flag = (
        bits[0],
        bits[1],
        bits[2],
        bits[3],
        bits[4],
    )
    delta = np.empty((n_envs, n_assets))
    side = np.empty((n_envs, n_assets), dtype=np.int8)
    reasons = np.empty((n_envs, n_assets), dtype=np.int64)
    port_out = np.empty(n_envs, dtype=np.int64)
    traded = np.empty(n_envs, dtype=np.bool_)
    flags_out = np.empty(n_envs, dtype=np.int64)
    for b in range(n_envs):
        row, any_order, any_scaled = port[b], False, False
        for a in range(n_assets):
            r = sym[b, a]
            if suppress[b, a]:
                r |= band
                row |= band
            if change[b, a] and w[b, a] != target[b, a]:
                r |= lot_code
                row |= lot_code
            reasons[b, a] = r
            d = q[b, a] - q_cur[b, a] if change[b, a] else 0.0
            delta[b, a] = d
            side[b, a] = 1 if d > 0.0 else (-1 if d < 0.0 else 0)
            any_order |= d != 0.0
            any_scaled |= scaled[b, a]
        port_out[b], traded[b] = row, any_order
        f = flags[b]
        if not band_ok[b]:
            f |= lifted_flag
        if any_scaled and ok[b]:
            f |= scaled_flag
        if not ok[b]:
            f |= fallback_flag
        flags_out[b] = f
    return delta, side, reasons, port_out, traded, flags_out


def order_result(
    sym: np.ndarray,
    port: np.ndarray,
    flags: np.ndarray,
    suppress: np.ndarray,
    band_ok: np.ndarray,
    target: np.ndarray,
    change: np.ndarray,
    q_cur: np.ndarray,
    q: np.ndarray,
    w: np.ndarray,
    scaled: np.ndarray,
    ok: np.ndarray,
    bits: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The orders of a rounded book and their codes: (delta, side, reasons, port_out,
    traded, flags).

    ``delta`` (n_envs, n_assets): ``q - q_cur`` where ``change``, else 0; ``side`` int8 its
    sign (0 for 0 and NaN); ``traded`` (n_envs,): some ``delta != 0``. ``reasons``: ``sym``
    OR ``bits[0]`` (no-trade band) where ``suppress`` OR ``bits[1]`` (lot rounding) where
    ``change`` and ``w != target``; ``port_out``: ``port`` OR the row's band and lot
    bits. ``flags`` OR ``bits[2]`` (band lifted) where not ``band_ok``, ``bits[3]``
    (rounding scaled) where some name is ``scaled`` in an ``ok`` row, ``bits[4]``
    (fallback) where not ``ok``.
    """
    ready()
    return _order_result(
        sym, port, flags, suppress, band_ok, target, change, q_cur, q, w, scaled, ok, bits
    )
