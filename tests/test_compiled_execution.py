"""Execution's compiled kernels (lot rounding, increase scaling and the exposure checks):
hand-computed books, and random books against a plain-Python reference, bit for bit."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from allocgym import compiled

# ---------------------------------------------------------------- plain-Python reference


def _row_sum(values: list[float]) -> float:
    """numpy's sum of one row (pairwise order), the order the kernels reproduce."""
    return float(np.sum(np.array(values, dtype=np.float64)))


def _sector_sums(values: list[float], ids: list[int], n_sectors: int) -> list[float]:
    sums = [0.0] * n_sectors
    for x, s in zip(values, ids, strict=True):
        if s >= 0:
            sums[s] += x
    return sums


def _in_lots(x: float, lot: float, unit: bool) -> float:
    r = x if unit else x / lot
    near = float(np.rint(r))
    return near if abs(r - near) <= max(abs(r), 1.0) * 1e-13 else r


def _snap_ref(x: float, lot: float, unit: bool) -> float:
    """``x`` set to its whole number of lots when within float dust of it, else ``x``."""
    lots = _in_lots(x, lot, unit)
    if lots == float(np.rint(lots)):
        return lots if unit else lots * lot
    return x


def _drift_ref(a, c, price_ok, bands, threshold, sym, port) -> tuple[np.ndarray, ...]:
    n_envs, n_assets = a.shape
    moving = np.zeros((n_envs, n_assets), dtype=bool)
    name_drift = np.zeros((n_envs, n_assets), dtype=bool)
    l1 = np.zeros(n_envs, dtype=bool)
    row_bits = np.zeros(n_envs, dtype=np.int64)
    for b in range(n_envs):
        drift = [float(a[b, i] - c[b, i]) if price_ok[b, i] else 0.0 for i in range(n_assets)]
        moving[b] = [d != 0.0 for d in drift]
        name_drift[b] = [abs(d) > bands[i] for i, d in enumerate(drift)]
        l1[b] = _row_sum([abs(d) for d in drift]) > threshold
        bits = int(port[b])
        for i in range(n_assets):
            bits |= int(sym[b, i])
        row_bits[b] = bits
    return moving, name_drift, l1, row_bits


def _round_one(cur: float, tgt: float, lot: float, forced: bool, unit: bool) -> float:
    if forced:  # toward zero, on the lattice cur + k lot
        s = 0.0 if tgt == 0.0 else math.copysign(1.0, tgt)
        x = s * cur
        k = np.floor(_in_lots(abs(tgt) - x, lot, unit))
        v = x + (k if unit else k * lot)
        over = v - abs(tgt) * (1 + 1e-13)
        if over > 0.0:  # past the target: by x's float dust the target, else a lot lower
            lower = min(v - (1.0 if unit else lot), abs(tgt))
            v = abs(tgt) if over <= 4 * 2.0**-52 * abs(x) else lower
        return 0.0 if s == 0.0 or v <= 0.0 else s * v
    k = np.trunc(_in_lots(tgt - cur, lot, unit))
    return 0.0 if tgt == 0.0 else cur + (k if unit else k * lot)


def _round_open(q_cur, q_tgt, lot, forced, unit):
    """``compiled.round_and_check`` with one share per weight unit and limits far away
    (nothing is scaled): its positions are the lot rounding alone."""
    b, n = q_cur.shape
    far = np.full(b, 1e300)
    q, w, scaled, _ = compiled.round_and_check(
        q_tgt, q_cur, forced, np.ones((b, n), bool), q_cur, np.ones((b, n)), lot, unit,
        far, np.full((b, 1), 1e300), far, np.full((b, n), -1e300), np.full((b, n), 1e300),
        far, np.full((b, 1), 1e300), far, None, None, np.zeros(n, np.int64),
    )  # fmt: skip
    assert not scaled.any()
    assert np.array_equal(w, q)  # one share per unit of weight: the weight is q
    return q


@pytest.mark.parametrize("unit", [False, True])
def test_lot_rounding_matches_its_definition_bit_for_bit(unit: bool) -> None:
    rng = np.random.default_rng(7)
    b, n = 64, 12
    lot = np.ones(n) if unit else rng.choice([1.0, 10.0, 100.0, 0.5], n)
    q_cur = np.round(rng.normal(0, 500, (b, n)) / lot) * lot
    q_tgt = rng.normal(0, 500, (b, n))
    q_tgt[:, 0] = 0.0
    q_tgt[:, 1] = q_cur[:, 1] + 3 * lot[1] * (1 + 1e-15)  # float dust on a whole order
    # positions far above a small target: the snap past it, and the anchor's float dust
    q_cur[:, 2] = np.round(rng.uniform(1e9, 1e12, b) / lot[2]) * lot[2]
    q_tgt[:, 2] = np.round(rng.uniform(1, 50, b)) * lot[2] * (1 - rng.choice([0, 1e-12], b))
    q_cur[:, 3] = rng.uniform(1e3, 1e5, b)
    q_tgt[:, 3] = np.round(rng.uniform(1, 50, b)) * lot[3]
    forced = rng.random((b, n)) < 0.3
    forced[:, 2:4] = True
    for f in (forced, None):
        got = _round_open(q_cur, q_tgt, lot, f, unit)
        fz = np.zeros((b, n), bool) if f is None else f
        want = np.vectorize(_round_one)(q_cur, q_tgt, lot, fz, unit)
        assert got.tobytes() == want.tobytes()  # the sign of a zero too
        if f is not None:  # forced: never past the target beyond its own dust
            assert (np.abs(got[:, 2:4]) <= np.abs(q_tgt[:, 2:4]) * (1 + 1e-13)).all()


def _weight_one(q: float, q_cur: float, c: float, spw: float, change: bool) -> float:
    if change and q != q_cur:
        return 0.0 if q == 0.0 else q / spw
    return c


def _ratio(room: float, need: float) -> float:
    if need > room and need > 0.0:
        return min(max(room / need, 0.0), 1.0)
    return 1.0


def _passes_ref(w, b, lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, ids) -> bool:
    row = [float(x) for x in w[b]]
    if any(not (lo[b][a] <= x <= hi[b][a]) for a, x in enumerate(row)):
        return False
    absw = [abs(x) for x in row]
    if not _row_sum(absw) <= gross_tol[b]:
        return False
    sums = _sector_sums(absw, ids, len(sector_tol[b]))
    if any(not s <= tol for s, tol in zip(sums, sector_tol[b], strict=True)):
        return False
    if not abs(_row_sum(row)) <= net_tol[b]:
        return False
    if betas is not None:
        return abs(_row_sum([bt * x for bt, x in zip(betas[b], row, strict=True)])) <= beta_tol[b]
    return True


def _round_and_check_ref(k: dict) -> tuple[np.ndarray, ...]:
    """One row and one name at a time: round, scale the increasing orders, check."""
    target, c = k["target"], k["current"]
    n_envs, n_assets = target.shape
    ids = [int(s) for s in k["sector_ids"]]
    n_sectors = k["sector"].shape[1]
    q = np.zeros((n_envs, n_assets))
    w = np.zeros((n_envs, n_assets))
    scaled = np.zeros((n_envs, n_assets), dtype=bool)
    ok = np.zeros(n_envs, dtype=bool)
    forced = k["forced"]
    for b in range(n_envs):
        inc = []
        for a in range(n_assets):
            fz = forced is not None and bool(forced[b, a])
            cur, spw, ch = k["q_cur"][b, a], k["shares_per_w"][b, a], bool(k["change"][b, a])
            q[b, a] = _round_one(cur, target[b, a] * spw, k["lot"][a], fz, k["unit"]) if ch else cur
            w[b, a] = _weight_one(q[b, a], cur, c[b, a], spw, ch)
            inc.append(ch and abs(w[b, a]) > abs(c[b, a]) and not fz)
        base = [abs(c[b, a]) if inc[a] else abs(w[b, a]) for a in range(n_assets)]
        need = [abs(target[b, a]) - abs(c[b, a]) if inc[a] else 0.0 for a in range(n_assets)]
        base_s, need_s = _sector_sums(base, ids, n_sectors), _sector_sums(need, ids, n_sectors)
        lam_s = [_ratio(k["sector"][b, s] - base_s[s], need_s[s]) for s in range(n_sectors)]
        one_signed = all(x >= 0 and y >= 0 for x, y in zip(c[b], target[b], strict=True)) or all(
            x <= 0 and y <= 0 for x, y in zip(c[b], target[b], strict=True)
        )
        ref_g = min(k["gross"][b], k["net"][b]) if one_signed else k["gross"][b]
        lam_g = _ratio(ref_g - _row_sum(base), _row_sum(need))
        for a in range(n_assets):
            lam = lam_g if ids[a] < 0 else min(lam_g, lam_s[ids[a]])
            if inc[a] and lam < 1.0:
                scaled[b, a] = True
                cur, spw = k["q_cur"][b, a], k["shares_per_w"][b, a]
                tgt = (c[b, a] + lam * (target[b, a] - c[b, a])) * spw
                q[b, a] = _round_one(cur, tgt, k["lot"][a], False, k["unit"])
                w[b, a] = _weight_one(q[b, a], cur, c[b, a], spw, True)
        ok[b] = _passes_ref(
            w, b, k["lo"], k["hi"], k["gross_tol"], k["sector_tol"], k["net_tol"], k["betas"],
            k["beta_tol"], ids,
        )  # fmt: skip
    return q, w, scaled, ok


_CHECK_KEYS = ("lo", "hi", "gross_tol", "sector_tol", "net_tol", "betas", "beta_tol", "sector_ids")


def _check_args(k: dict) -> list:
    return [k[name] for name in _CHECK_KEYS]


def _passes(w: np.ndarray, *checks: Any) -> np.ndarray:
    """``round_and_check``'s ``ok`` of the books ``w`` with nothing trading (every name
    stays at ``w``, nothing is scaled): the exposure checks alone."""
    n, m = w.shape
    n_sectors = checks[3].shape[1]
    return compiled.round_and_check(
        w, w, None, np.zeros(w.shape, dtype=bool), w, np.ones(w.shape), np.ones(m), True,
        np.zeros(n), np.zeros((n, n_sectors)), np.zeros(n), *checks,
    )[3]  # fmt: skip


def _call(k: dict) -> tuple[np.ndarray, ...]:
    return compiled.round_and_check(
        k["target"], k["current"], k["forced"], k["change"], k["q_cur"], k["shares_per_w"],
        k["lot"], k["unit"], k["gross"], k["sector"], k["net"], *_check_args(k),
    )  # fmt: skip


# ---------------------------------------------------------------- hand-computed books


def _book(current, target, lot, sector_ids, gross, net, sector, **kw) -> dict:
    """64 shares per unit weight (weights in 1/64ths are exact), every name trading."""
    c, t = np.array([current], float), np.array([target], float)
    lo, hi = np.minimum(c, t), np.maximum(c, t)
    k = {
        "target": t,
        "current": c,
        "forced": None,
        "change": c != t,
        "q_cur": c * 64.0,
        "shares_per_w": np.full(c.shape, 64.0),
        "lot": np.array(lot, float),
        "unit": False,
        "gross": np.array([gross]),
        "sector": np.array([sector], float),
        "net": np.array([net]),
        "lo": lo,
        "hi": hi,
        "gross_tol": np.array([gross]),
        "sector_tol": np.array([sector], float),
        "net_tol": np.array([net]),
        "betas": None,
        "beta_tol": None,
        "sector_ids": np.array(sector_ids, dtype=np.int64),
    }
    k.update(kw)
    return k


def test_a_rotation_rounded_over_gross_scales_the_buy_back_to_the_cap() -> None:
    """Sell name 0 (4-share lots) from 32 to 15 shares, buy 17 of name 1 (1-share lots):
    the sell stops at 16 (4 lots), so gross would be 0.25 + 17/64 > 0.5. The buy is
    scaled by (0.5 - 0.25) / (17/64) = 16/17 to 16 shares: gross exactly 0.5."""
    k = _book([0.5, 0.0], [15 / 64, 17 / 64], [4.0, 1.0], [0, 1], 0.5, 0.5, [1.0, 1.0])
    q, w, scaled, ok = _call(k)
    assert q.tolist() == [[16.0, 16.0]]
    assert w.tolist() == [[0.25, 0.25]]
    assert scaled.tolist() == [[False, True]] and ok.tolist() == [True]
    # without the scaling the book would fail the gross check
    assert _passes(np.array([[0.25, 17 / 64]]), *_check_args(k)).tolist() == [False]


def test_a_sector_cap_scales_only_its_own_names() -> None:
    """Same rotation, gross room to spare, name 1's sector capped at 0.1875 (12/64):
    lambda = 0.1875 / (17/64) = 12/17, so 12 shares."""
    k = _book([0.5, 0.0], [15 / 64, 17 / 64], [4.0, 1.0], [0, 1], 1.0, 1.0, [1.0, 0.1875])
    q, w, scaled, ok = _call(k)
    assert q.tolist() == [[16.0, 12.0]] and w.tolist() == [[0.25, 0.1875]]
    assert scaled.tolist() == [[False, True]] and ok.tolist() == [True]


def test_a_mixed_book_is_capped_by_gross_not_net() -> None:
    """A short name makes the book two-signed: the net reference (0.25) does not cap the
    gross, and gross 0.25 + 17/64 + 0.25 = 49/64 stays under 0.8: nothing scaled."""
    k = _book(
        [0.5, 0.0, -0.25], [15 / 64, 17 / 64, -0.25], [4.0, 1.0, 1.0], [0, 1, -1], 0.8, 0.25,
        [1.0, 1.0],
        net_tol=np.array([1.0]),
    )  # fmt: skip
    q, _, scaled, ok = _call(k)
    assert q.tolist() == [[16.0, 17.0, -16.0]]
    assert not scaled.any() and ok.tolist() == [True]
    # all long, the same net reference of 0.25 caps the gross: the buy scales to zero
    k = _book([0.5, 0.0], [15 / 64, 17 / 64], [4.0, 1.0], [0, 1], 0.8, 0.25, [1.0, 1.0])
    q, _, scaled, _ = _call(k)
    assert q.tolist() == [[16.0, 0.0]] and scaled.tolist() == [[False, True]]


def test_forced_names_round_toward_zero_and_orders_under_a_lot_stay() -> None:
    """Lots of 10 at 64 shares per unit weight: the forced name 0 wants 19.2 shares from 40
    (toward zero on its lattice 40 - 10 k: 10), name 1 wants 6.4 more (zero whole lots: it
    stays), name 2 closes exactly, name 3 does not trade (change False)."""
    c = [40 / 64, 0.5, 0.25, 0.125]
    t = [0.3, 0.6, 0.0, 0.5]
    k = _book(c, t, [10.0] * 4, [-1, -1, -1, -1], 4.0, 4.0, [0.0])
    k["forced"] = np.array([[True, False, False, False]])
    k["change"] = np.array([[True, True, True, False]])
    k["lo"], k["hi"] = np.full((1, 4), -1.0), np.full((1, 4), 1.0)
    q, w, scaled, ok = _call(k)
    assert q.tolist() == [[10.0, 32.0, 0.0, 8.0]]
    assert w.tolist() == [[10 / 64, 0.5, 0.0, 0.125]]
    assert not scaled.any() and ok.tolist() == [True]


def test_each_check_fails_alone_and_a_book_at_its_bound_passes() -> None:
    w = np.array([[0.5, -0.25, 0.125]])
    ids = np.array([0, 0, -1], dtype=np.int64)  # name 2 is in no sector
    base = {
        "lo": w.copy(),
        "hi": w.copy(),  # every name exactly at both bounds
        "gross_tol": np.array([0.875]),
        "sector_tol": np.array([[0.75]]),  # |0.5| + |-0.25|; name 2 counts nowhere
        "net_tol": np.array([0.375]),
        "betas": np.array([[1.0, 2.0, 4.0]]),
        "beta_tol": np.array([0.5]),  # 0.5 - 0.5 + 0.5
        "sector_ids": ids,
    }
    assert _passes(w, *_check_args(base)).tolist() == [True]
    up, down = np.array([[0.0, 1.0, 0.0]]), np.array([[0.0, 0.0, -1.0]])
    below = {  # each bound one ulp inside the book
        "lo": np.where(up > 0, np.nextafter(w, 1.0), w),
        "hi": np.where(down < 0, np.nextafter(w, -1.0), w),
        "gross_tol": np.nextafter(base["gross_tol"], 0.0),
        "sector_tol": np.nextafter(base["sector_tol"], 0.0),
        "net_tol": np.nextafter(base["net_tol"], 0.0),
        "beta_tol": np.nextafter(base["beta_tol"], 0.0),
    }
    for name, value in below.items():
        assert _passes(w, *_check_args({**base, name: value})).tolist() == [False]
    # without betas the beta reference is not read
    no_beta = {**base, "betas": None, "beta_tol": below["beta_tol"]}
    assert _passes(w, *_check_args(no_beta)).tolist() == [True]


def test_sector_sums_add_in_name_order() -> None:
    """(0.1 + 0.2) + 0.3 is 0.6000000000000001, (0.3 + 0.2) + 0.1 is 0.6: in name order
    the sector is one ulp over a cap of 0.6."""
    ids = np.zeros(3, dtype=np.int64)
    k = {
        "lo": np.full((2, 3), -1.0),
        "hi": np.full((2, 3), 1.0),
        "gross_tol": np.full(2, 2.0),
        "sector_tol": np.full((2, 1), 0.6),
        "net_tol": np.full(2, 2.0),
        "betas": None,
        "beta_tol": None,
        "sector_ids": ids,
    }
    w = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    assert _passes(w, *_check_args(k)).tolist() == [False, True]


@pytest.mark.parametrize("n_assets", [3, 8, 20, 129, 300])
def test_row_sums_are_numpys_bit_for_bit(n_assets: int) -> None:
    """Gross, net and beta references set to numpy's sums exactly pass, one ulp lower fail."""
    rng = np.random.default_rng(n_assets)
    w = rng.normal(0.0, 0.1, (4, n_assets))
    betas = rng.uniform(0.5, 1.5, (4, n_assets))
    exact = {
        "lo": np.full(w.shape, -1.0),
        "hi": np.full(w.shape, 1.0),
        "gross_tol": np.abs(w).sum(axis=1),
        "sector_tol": np.full((4, 1), 1e9),
        "net_tol": np.abs(w.sum(axis=1)),
        "betas": betas,
        "beta_tol": np.abs((betas * w).sum(axis=1)),
        "sector_ids": np.zeros(n_assets, dtype=np.int64),
    }
    assert _passes(w, *_check_args(exact)).all()
    for name in ("gross_tol", "net_tol", "beta_tol"):
        tight = {**exact, name: np.nextafter(exact[name], 0.0)}
        assert not _passes(w, *_check_args(tight)).any()


# ---------------------------------------------------------------- random books


def _random_books(seed: int, n_envs: int, n_assets: int, unit: bool) -> dict:
    rng = np.random.default_rng(seed)
    shape = (n_envs, n_assets)
    lot = np.ones(n_assets) if unit else rng.choice([1.0, 10.0, 100.0, 0.5], n_assets)
    spw = rng.uniform(50.0, 5000.0, shape)
    q_cur = np.round(rng.normal(0.0, 0.1, shape) * spw / lot) * lot
    c = q_cur / spw
    target = np.where(rng.random(shape) < 0.2, 0.0, c + rng.normal(0.0, 0.05, shape))
    # long-only rows (one-signed) beside mixed ones
    long_rows = rng.random(n_envs) < 0.4
    c, target = (
        np.where(long_rows[:, None], np.abs(c), c),
        np.where(long_rows[:, None], np.abs(target), target),
    )
    q_cur = c * spw
    n_sectors = 3
    ids = rng.integers(-1, n_sectors, n_assets).astype(np.int64)
    abs_t = np.abs(target)
    sector_t = np.zeros((n_envs, n_sectors))
    for a in range(n_assets):
        if ids[a] >= 0:
            sector_t[:, ids[a]] += abs_t[:, a]
    # references around the target's exposures: some rows need scaling, some not
    gross = abs_t.sum(axis=1) * rng.uniform(0.9, 1.05, n_envs)
    net = np.abs(target.sum(axis=1)) * rng.uniform(0.9, 1.5, n_envs)
    sector = sector_t * rng.uniform(0.9, 1.05, (n_envs, n_sectors))
    forced = rng.random(shape) < 0.15 if seed % 3 else None
    other = c if forced is None else np.where(forced, 0.0, c)  # a forced name may close
    lo, hi = np.minimum(other, target), np.maximum(other, target)
    hi[0, 0] = lo[0, 0] = target[0, 0]  # a name exactly at its bound
    betas = rng.uniform(0.5, 1.5, shape) if seed % 2 else None
    return {
        "target": target,
        "current": c,
        "forced": forced,
        "change": (target != c) & (rng.random(shape) < 0.9),
        "q_cur": q_cur,
        "shares_per_w": spw,
        "lot": lot,
        "unit": unit,
        "gross": gross,
        "sector": sector,
        "net": net,
        "lo": lo - 1e-12,
        "hi": hi + 1e-12,
        "gross_tol": gross + 1e-12,
        "sector_tol": sector + 1e-12,
        "net_tol": net + 1e-12,
        "betas": betas,
        "beta_tol": None if betas is None else np.abs((betas * target).sum(axis=1)) * 1.01,
        "sector_ids": ids,
    }


@pytest.mark.parametrize("n_assets", [1, 5, 20, 130])
@pytest.mark.parametrize("seed", range(6))
def test_round_and_check_is_the_reference_bit_for_bit(seed: int, n_assets: int) -> None:
    k = _random_books(seed, 40, n_assets, unit=seed % 4 == 0)
    got, want = _call(k), _round_and_check_ref(k)
    for g, x in zip(got, want, strict=True):
        assert g.dtype == x.dtype and np.array_equal(g, x)
    _, w, _, ok = got
    assert np.array_equal(_passes(w, *_check_args(k)), ok)
    if n_assets >= 5:  # the random books exercise every branch
        assert got[2].any() and ok.any() and not ok.all()


@pytest.mark.parametrize("n_envs", [1, 3])
def test_rows_do_not_depend_on_the_batch(n_envs: int) -> None:
    """B = 1 and B = 3 batches of differing rows give each row's own result."""
    k = _random_books(11, n_envs, 20, unit=False)
    batch = _call(k)
    for b in range(n_envs):
        one = {
            key: (v[b : b + 1] if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == n_envs
                  and key not in ("lot", "sector_ids") else v)
            for key, v in k.items()
        }  # fmt: skip
        for g, x in zip(_call(one), batch, strict=True):
            assert np.array_equal(g[0], x[b])


def test_any_input_layout_uses_the_one_signature() -> None:
    """Strided, read-only and broadcast inputs run the compiled signature (no TypeError)."""
    k = _random_books(5, 8, 10, unit=False)
    wide = np.repeat(k["target"], 2, axis=1)
    ro = k["current"].copy()
    ro.flags.writeable = False
    variants = {
        "target": wide[:, ::2],
        "current": ro,
        "lot": np.broadcast_to(np.array(10.0), (10,)),
    }
    k2 = {**k, **variants}
    k2["q_cur"] = k2["current"] * k2["shares_per_w"]
    want = _round_and_check_ref(k2)
    for g, x in zip(_call(k2), want, strict=True):
        assert np.array_equal(g, x)


# ---------------------------------------------------------------- exposure references


def _exposures_ref(w, b, betas, ids, n_sectors) -> tuple[float, list[float], float, float]:
    row = [float(x) for x in w[b]]
    absw = [abs(x) for x in row]
    beta = 0.0
    if betas is not None:
        beta = abs(_row_sum([bt * x for bt, x in zip(betas[b], row, strict=True)]))
    return _row_sum(absw), _sector_sums(absw, ids, n_sectors), abs(_row_sum(row)), beta


def _refs_ref(a, c, forced, forced_names, betas, ids, n_sectors, limits, tol):
    n_envs, n_assets = a.shape
    lo, hi = np.zeros(a.shape), np.zeros(a.shape)
    gross, net, beta = np.zeros(n_envs), np.zeros(n_envs), np.zeros(n_envs)
    sector = np.zeros((n_envs, n_sectors))
    for b in range(n_envs):
        g, s, n, bt = _exposures_ref(a, b, betas, ids, n_sectors)
        if limits is not None:
            g_lim, s_cap, n_cap, b_cap = limits
            g, s, n, bt = (
                max(g, g_lim[b]),
                [max(x, s_cap) for x in s],
                max(n, n_cap),
                max(bt, b_cap),
            )
        elif not forced[b]:
            g2, s2, n2, bt2 = _exposures_ref(c, b, betas, ids, n_sectors)
            g, s, n, bt = (
                max(g, g2),
                [max(x, y) for x, y in zip(s, s2, strict=True)],
                max(n, n2),
                max(bt, bt2),
            )
        gross[b], sector[b], net[b], beta[b] = g, s, n, bt
        for i in range(n_assets):
            other = 0.0 if forced_names is not None and forced_names[b, i] else c[b, i]
            lo[b, i], hi[b, i] = min(a[b, i], other) - tol, max(a[b, i], other) + tol
    beta_tol = None if betas is None else beta + tol
    return lo, hi, gross, sector, net, gross + tol, sector + tol, net + tol, beta_tol


def test_exposure_refs_by_hand() -> None:
    """Approved (0.5, -0.25, 0.125), current (0.25, -0.5, 0.125), names 0 and 1 in sector 0:
    gross 0.875, sector 0.75, |net| 0.375 (current: 0.875, 0.75, 0.125); forced name 1
    may close (lo -0.25, hi 0)."""
    a = np.array([[0.5, -0.25, 0.125]] * 2)
    c = np.array([[0.25, -0.5, 0.125]] * 2)
    ids = np.array([0, 0, -1], dtype=np.int64)
    fz = np.array([[False, True, False]] * 2)
    forced = np.array([False, True])
    lo, hi, gross, sector, net, gross_tol, _, _, beta_tol = compiled.exposure_refs(
        a, c, forced, fz, None, ids, 1, None, 0.0
    )
    assert lo.tolist() == [[0.25, -0.25, 0.125]] * 2 and hi.tolist() == [[0.5, 0.0, 0.125]] * 2
    assert gross.tolist() == [0.875, 0.875] and sector.tolist() == [[0.75], [0.75]]
    assert net.tolist() == [0.375, 0.375] and gross_tol.tolist() == gross.tolist()
    assert beta_tol is None
    # the current book's exposure counts in the unforced row: a larger net of 0.5
    c2 = np.array([[0.25, 0.25, 0.0]] * 2)
    net2 = compiled.exposure_refs(a, c2, forced, None, None, ids, 1, None, 0.0)[4]
    assert net2.tolist() == [0.5, 0.375]
    # with limits: each exposure raised to its cap
    limits = (np.array([2.0, 0.5]), 1.0, 0.25, 0.75)
    betas = np.ones((2, 3))
    out = compiled.exposure_refs(a, c, forced, None, betas, ids, 1, limits, 1e-12)
    assert out[2].tolist() == [2.0, 0.875] and out[3].tolist() == [[1.0], [1.0]]
    assert out[4].tolist() == [0.375, 0.375] and out[8].tolist() == [0.75 + 1e-12] * 2


def test_a_nan_limit_or_weight_gives_nan_references_as_numpy_would() -> None:
    """A NaN gross limit (a notional cap over a NaN equity) or a NaN current weight makes
    the reference NaN, as ``np.maximum`` / ``np.minimum`` did: the book then fails its
    checks instead of passing against the other operand (Python's max/min would keep it)."""
    a = np.array([[0.5, -0.25]])
    c = np.array([[0.25, np.nan]])
    ids = np.array([0, -1], dtype=np.int64)
    out = compiled.exposure_refs(
        a, c, np.array([False]), None, None, ids, 1, (np.array([np.nan]), 1.0, 1.0, 1.0), 0.0
    )
    assert np.isnan(out[2][0])  # gross: max(0.75, NaN)
    assert np.isnan(out[0][0, 1]) and np.isnan(out[1][0, 1])  # lo/hi of (-0.25, NaN)
    assert out[0][0, 0] == 0.25 and out[1][0, 0] == 0.5


@pytest.mark.parametrize("n_assets", [1, 20, 130])
@pytest.mark.parametrize("bounded", [False, True])
def test_exposure_refs_are_the_reference_bit_for_bit(n_assets: int, bounded: bool) -> None:
    rng = np.random.default_rng(n_assets + 7 * bounded)
    n_envs, n_sectors = 25, 4
    a = rng.normal(0.0, 0.1, (n_envs, n_assets))
    c = rng.normal(0.0, 0.1, (n_envs, n_assets))
    ids = rng.integers(-1, n_sectors, n_assets).astype(np.int64)
    forced = rng.random(n_envs) < 0.3
    limits = None
    if bounded:  # caps around the books' exposures: some bind, some not
        gross_limit = np.abs(a).sum(axis=1) * rng.uniform(0.8, 1.2, n_envs)
        limits = (gross_limit, 0.3, 0.05, 0.1)
    for fz, betas in ((None, None), (rng.random(a.shape) < 0.2, rng.uniform(0, 2, a.shape))):
        args = (a, c, forced, fz, betas, ids, n_sectors, limits, 1e-12)
        got, want = compiled.exposure_refs(*args), _refs_ref(*args)
        for g, x in zip(got, want, strict=True):
            assert (g is None and x is None) or (g.dtype == x.dtype and np.array_equal(g, x))


# ---------------------------------------------------------------- one decision

_KILL, _FORCED_CODES = 1 << 3, (1 << 2) | (1 << 3)
_PLAN_BITS = np.array([_KILL, _FORCED_CODES, *(1 << k for k in range(20, 27))], dtype=np.int64)
_RESULT_BITS = np.array([1 << 30, 1 << 31, 1 << 40, 1 << 41, 1 << 42], dtype=np.int64)


def _plan_ref(k: dict) -> tuple:
    """``plan_orders`` composed of the drift and snap references, the exposure kernels and
    numpy."""
    a, c, n_envs = k["approved"], k["current"], k["approved"].shape[0]
    kill_rows, kill_all, scheduled, vol, vol_at, spread, spread_at, sched_only = k["triggers"]
    priced = np.isfinite(k["prices"]) & (k["prices"] > 0) & (k["equity"][:, None] > 0)
    price_ok = k["tradable"] & priced
    with np.errstate(divide="ignore", invalid="ignore"):  # a halted name keeps its shares
        spw = np.where(priced, k["equity"][:, None] / k["prices"], 0.0)
    moving, name_drift, l1, row_bits = _drift_ref(
        a, c, price_ok, k["bands"], k["l1"], k["sym"], k["port"]
    )
    none = np.zeros(n_envs, dtype=bool)
    kill = ((row_bits & _KILL) != 0) | (none if kill_rows is None else kill_rows) | kill_all
    window = np.ones(n_envs, dtype=bool) if scheduled is None else scheduled

    def fires(x, at):
        return none if x is None else (np.nan_to_num(x, nan=0.0) >= at).any(axis=1)

    vol_spike, spread_blow = fires(vol, vol_at), fires(spread, spread_at)
    outside = ~k["inside"]
    forced = ((row_bits & _FORCED_CODES) != 0) | kill | outside
    fz = (k["sym"] & _FORCED_CODES) != 0
    if k["names_out"] is not None:
        fz |= k["names_out"] & outside[:, None]
    fz |= (kill | (forced & ~fz.any(axis=1)))[:, None]
    override = vol_spike | spread_blow | kill
    allowed = window | override if sched_only else np.ones(n_envs, dtype=bool)
    full = (l1 | override) & allowed
    suppress = moving & ~(allowed[:, None] & name_drift) & ~full[:, None] & ~fz
    betas = k["betas"]
    if betas is not None and k["limits"] is not None and k["limits"][3] == np.inf:
        w_max = max(np.abs(a).max(initial=0.0), np.abs(c).max(initial=0.0))
        if np.abs(betas).max(initial=0.0) * w_max * 4.0 * max(1, a.shape[1]) < 1e300:
            betas = None
    refs = compiled.exposure_refs(
        a, c, forced, fz, betas, k["ids"], k["n_sectors"], k["limits"], k["tol"]
    )
    lo, hi, gross, sector, net, gross_tol, sector_tol, net_tol, beta_tol = refs
    target = np.where(suppress, c, a)
    checks = (lo, hi, gross_tol, sector_tol, net_tol, betas, beta_tol, k["ids"])
    band_ok = _passes(target, *checks) | ~suppress.any(axis=1)
    q_cur = np.vectorize(_snap_ref)(c * spw, k["lot"], k["unit"])
    change = (target != c) & price_ok
    held = compiled.round_and_check(
        target, c, fz, change, q_cur, spw, k["lot"], k["unit"], gross, sector, net, *checks
    )
    fired = (name_drift.any(axis=1), l1, window, vol_spike, spread_blow, kill, forced)
    flags = sum(np.where(f, bit, 0) for f, bit in zip(fired, _PLAN_BITS[2:], strict=True))
    settled = bool(band_ok.all() and held[3].all())
    finite = bool(np.isfinite(a).all() and np.isfinite(c).all())
    return (finite, betas is not None, settled, flags, fz, spw, q_cur, suppress, band_ok,
            target, change, *held)  # fmt: skip


def _random_decision(seed: int, n_envs: int, n_assets: int) -> dict:
    rng = np.random.default_rng(seed)
    shape = (n_envs, n_assets)
    c = rng.normal(0.0, 0.05, shape)
    a = np.where(rng.random(shape) < 0.3, c, c + rng.normal(0.0, 0.01, shape))
    prices = rng.uniform(5.0, 500.0, shape)
    prices[rng.random(shape) < 0.05] = np.nan
    equity = rng.uniform(1e5, 1e7, n_envs)
    equity[0] = 0.0  # no valid price in row 0
    n_sectors = 3
    sym = rng.choice([0, 1, 1 << 2, 1 << 3], shape, p=[0.85, 0.05, 0.05, 0.05]).astype(np.int64)
    sym[1:5] = 0  # rows 1-4 not coded
    opt = seed % 3
    # caps around the approved book: rounding and bands bind in some rows
    limits = (np.abs(a).sum(axis=1) * 1.01, 0.4, 0.05, np.inf if seed % 3 else 0.1)
    return {
        "approved": a,
        "current": c,
        "prices": prices,
        "tradable": rng.random(shape) < 0.95,
        "equity": equity,
        "bands": rng.uniform(0.0, 0.01, n_assets),
        "l1": 0.05 if seed % 2 else 1.0,
        "sym": sym,
        "port": rng.choice([0, 1, 1 << 3], n_envs, p=[0.8, 0.1, 0.1]).astype(np.int64),
        "triggers": (
            None if opt == 0 else rng.random(n_envs) < 0.1,
            seed == 5,
            None if opt == 1 else rng.random(n_envs) < 0.5,
            None if opt == 2 else np.where(rng.random((n_envs, 2)) < 0.1, np.nan, 1.0),
            1.5 if seed % 4 else 0.0,  # a threshold of 0 fires on a NaN reading
            rng.uniform(0.0, 4.0, (n_envs, 1)),
            3.0,
            seed % 2 == 1,
        ),
        "inside": rng.random(n_envs) < 0.8,
        "names_out": rng.random(shape) < 0.1 if opt else None,
        "betas": rng.uniform(0.0, 2.0, shape) if seed % 4 < 2 else None,
        "ids": rng.integers(-1, n_sectors, n_assets).astype(np.int64),
        "n_sectors": n_sectors,
        "limits": limits if seed % 2 == 0 else None,
        "tol": 1e-12,
        "lot": rng.choice([1.0, 10.0], n_assets) if seed % 3 else np.ones(n_assets),
        "unit": seed % 3 == 0,
    }


def _plan_call(k: dict) -> tuple:
    return compiled.execution.plan_orders(
        k["approved"], k["current"], k["prices"], k["tradable"], k["equity"], k["bands"],
        k["l1"], k["sym"], k["port"], k["triggers"], k["inside"], k["names_out"], k["betas"],
        k["ids"], k["n_sectors"], k["limits"], k["tol"], k["lot"], k["unit"], _PLAN_BITS,
    )  # fmt: skip


@pytest.mark.parametrize("n_assets", [1, 20, 130])
@pytest.mark.parametrize("seed", range(8))
def test_plan_orders_is_its_building_blocks_bit_for_bit(seed: int, n_assets: int) -> None:
    k = _random_decision(seed, 30, n_assets)
    got, want = _plan_call(k), _plan_ref(k)
    for i, (g, x) in enumerate(zip(got, want, strict=True)):
        if isinstance(x, bool):
            assert g is x or g == x, i
        else:
            assert np.asarray(g).dtype == np.asarray(x).dtype and np.array_equal(g, x), i


def test_the_random_decisions_reach_every_branch() -> None:
    seen = dict.fromkeys(("suppress", "lifted", "scaled", "failed", "beta_dropped"), False)
    flags = 0
    for seed in range(8):
        out = _plan_call(_random_decision(seed, 30, 20))
        flags |= int(np.bitwise_or.reduce(out[3]))
        seen["suppress"] |= bool(out[7].any())
        seen["lifted"] |= not out[8].all()
        seen["scaled"] |= bool(out[13].any())
        seen["failed"] |= not out[14].all()
        seen["beta_dropped"] |= seed % 4 < 2 and not out[1]
    assert all(seen.values()), seen
    assert flags == int(np.bitwise_or.reduce(_PLAN_BITS[2:]))


def test_plan_orders_flags_non_finite_books() -> None:
    k = _random_decision(2, 4, 5)
    k["current"] = k["current"].copy()
    k["current"][1, 2] = np.inf
    assert _plan_call(k)[0] is False


_NAME_DRIFT, _L1_DRIFT, _WINDOW, _, _, _KILLED, _FORCED_ROW = (int(x) for x in _PLAN_BITS[2:])


def _plain_decision(a, c, tradable, bands, l1, sym, port) -> dict:
    """A decision with one share per unit of weight, no trigger but drift and the codes,
    no limits and unit lots."""
    n_envs, n_assets = a.shape
    return {
        "approved": a,
        "current": c,
        "prices": np.ones(a.shape),
        "tradable": tradable,
        "equity": np.ones(n_envs),
        "bands": bands,
        "l1": l1,
        "sym": sym,
        "port": port,
        "triggers": (None, False, None, None, 0.0, None, 0.0, False),
        "inside": np.ones(n_envs, dtype=bool),
        "names_out": None,
        "betas": None,
        "ids": np.full(n_assets, -1, dtype=np.int64),
        "n_sectors": 1,
        "limits": None,
        "tol": 0.0,
        "lot": np.ones(n_assets),
        "unit": True,
    }


def test_drift_and_codes_by_hand() -> None:
    """Drifts 0.25, 0 and -0.125 (name 2 has no price: no drift), bands 0.25 and 0.0625:
    name 0 moves but is not past its band (0.25 is not above 0.25), nor is the L1 drift
    0.25 above a threshold of 0.25, so it is suppressed. The same book in three rows whose
    codes differ: row 1's portfolio code is a kill switch, row 2's name 1 a forced code;
    each reaches its row's flags."""
    a = np.array([[0.5, 0.25, 0.0]] * 3)
    c = np.array([[0.25, 0.25, 0.125]] * 3)
    tradable = np.array([[True, True, False]] * 3)
    bands = np.array([0.25, 0.0625, 0.0625])
    sym = np.array([[1, 0, 0], [1, 0, 0], [1, 1 << 2, 0]], dtype=np.int64)
    port = np.array([0, _KILL, 0], dtype=np.int64)
    out = _plan_call(_plain_decision(a, c, tradable, bands, 0.25, sym, port))
    flags, forced_names, suppress = out[3], out[4], out[7]
    assert flags.tolist() == [_WINDOW, _WINDOW | _KILLED | _FORCED_ROW, _WINDOW | _FORCED_ROW]
    assert forced_names.tolist() == [[False] * 3, [True] * 3, [False, True, False]]
    # a killed row trades every name; a forced name skips its band
    assert suppress.tolist() == [[True, False, False], [False] * 3, [True, False, False]]
    # every price valid: name 2 drifts too, past its band, and L1 0.375 is above 0.25
    out = _plan_call(
        _plain_decision(a[:1], c[:1], np.ones((1, 3), bool), bands, 0.25, sym[:1], port[:1])
    )
    assert out[3].tolist() == [_NAME_DRIFT | _L1_DRIFT | _WINDOW]
    assert out[7].tolist() == [[False] * 3]
    # under an L1 band of 0.5 only name 2, past its own band, escapes suppression
    out = _plan_call(
        _plain_decision(a[:1], c[:1], np.ones((1, 3), bool), bands, 0.5, sym[:1], port[:1])
    )
    assert out[3].tolist() == [_NAME_DRIFT | _WINDOW]
    assert out[7].tolist() == [[True, False, False]]


@pytest.mark.parametrize("n_assets", [1, 20, 130])
def test_the_l1_band_sums_the_drift_as_numpy_does(n_assets: int) -> None:
    """An L1 band exactly at a row's numpy (pairwise) sum of |drift| does not fire, one ulp
    below it does; a name without a valid price drifts by 0."""
    rng = np.random.default_rng(n_assets)
    n_envs = 30
    c = rng.normal(0.0, 0.1, (n_envs, n_assets))
    a = c + rng.normal(0.0, 0.01, c.shape)
    tradable = rng.random(c.shape) < 0.9
    bands = rng.uniform(0.0, 0.01, n_assets)
    zeros = np.zeros(c.shape, dtype=np.int64)
    l1_sums = np.abs(np.where(tradable, a - c, 0.0)).sum(axis=1)
    for b in range(n_envs):
        for threshold in (l1_sums[b], np.nextafter(l1_sums[b], 0.0)):
            k = _plain_decision(a, c, tradable, bands, threshold, zeros, zeros[:, 0])
            fired = (_plan_call(k)[3] & _L1_DRIFT) != 0
            assert np.array_equal(fired, l1_sums > threshold), (b, threshold)


@pytest.mark.parametrize("unit", [False, True])
def test_plan_orders_snaps_float_dust_on_current_positions_to_whole_lots(unit: bool) -> None:
    """One share per unit of weight: ``q_cur`` is the current book, each position within
    float dust (relative 1e-13) of a whole number of lots set to it exactly, the others
    (one 1e-12 off, a NaN) unchanged."""
    rng = np.random.default_rng(7)
    b, n = 64, 12
    lot = np.ones(n) if unit else rng.choice([1.0, 10.0, 100.0, 0.5], n)
    whole = np.round(rng.normal(0, 500, (b, n)) / lot) * lot + 3 * lot
    c = rng.normal(0, 500, (b, n))
    c[:, 1] = whole[:, 1] * (1 + 1e-14)  # float dust on a whole position
    c[:, 2] = whole[:, 2] * (1 + 1e-12)  # more than dust
    c[3, 3] = np.nan
    zeros = np.zeros((b, n), dtype=np.int64)
    k = _plain_decision(c, c, np.ones((b, n), bool), np.zeros(n), 1.0, zeros, zeros[:, 0])
    k["lot"], k["unit"] = lot, unit
    q_cur = _plan_call(k)[6]
    assert np.array_equal(q_cur[:, 1], whole[:, 1]) and not np.array_equal(c[:, 1], whole[:, 1])
    assert np.array_equal(q_cur[:, 2:], c[:, 2:], equal_nan=True)
    assert np.array_equal(q_cur, np.vectorize(_snap_ref)(c, lot, unit), equal_nan=True)


def test_order_result_by_hand() -> None:
    """Row 0: name 0 suppressed, name 1 bought 3 shares and rounded off its target, name 2
    sold to close, the row failing its checks. Row 1: its band lifted and a name scaled in
    a passing row, no order."""
    sym = np.array([[1, 0, 0], [0, 2, 0]], dtype=np.int64)
    port = np.array([4, 0], dtype=np.int64)
    suppress = np.array([[True, False, False], [False, False, False]])
    band_ok = np.array([True, False])
    flags = np.array([8, 0], dtype=np.int64)
    change = np.array([[False, True, True], [False, True, False]])
    target = np.array([[0.1, 0.2, 0.0], [0.0, 0.5, 0.0]])
    w = np.array([[0.1, 0.19, 0.0], [0.0, 0.5, 0.0]])
    q = np.array([[10.0, 13.0, 0.0], [0.0, 7.0, 0.0]])
    q_cur = np.array([[10.0, 10.0, 4.0], [0.0, 7.0, 0.0]])
    scaled = np.array([[False, False, False], [False, True, False]])
    ok = np.array([False, True])
    delta, side, reasons, port_out, traded, flags_out = compiled.execution.order_result(
        sym, port, flags, suppress, band_ok, target, change, q_cur, q, w, scaled, ok,
        _RESULT_BITS,
    )  # fmt: skip
    band, lot, lifted, scaled_bit, fallback = (int(x) for x in _RESULT_BITS)
    assert delta.tolist() == [[0.0, 3.0, -4.0], [0.0, 0.0, 0.0]]
    assert side.dtype == np.int8 and side.tolist() == [[0, 1, -1], [0, 0, 0]]
    assert reasons.tolist() == [[1 | band, lot, 0], [0, 2, 0]]
    assert port_out.tolist() == [4 | band | lot, 0]
    assert traded.tolist() == [True, False]
    assert flags_out.tolist() == [8 | fallback, lifted | scaled_bit]
