"""The gate chain's compiled input scan, participation cap and trade measures: hand-made
edge cases, and random inputs against the numpy formulas they replaced, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from allocgym.compiled.trade import (
    forced_derisk,
    participation_cap,
    scan_inputs,
    strategy_scale,
    trade_measures,
)
from allocgym.costs import CostModel, cost_terms
from allocgym.risk.kernels import ATOL, BIG, RTOL, is_over

_LOW = np.array([1.0, 1e-6, 0.0, 0.0, 0.0])
_HIGH = np.array([1e12, 1e6, 1e15, np.finfo(np.float64).max, 1e4])


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def _market(rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, ...]:
    return (
        rng.uniform(10.0, 500.0, (n, m)),
        np.exp(rng.uniform(np.log(1e5), np.log(1e10), (n, m))),
        rng.uniform(0.0, 0.05, (n, m)),
        rng.uniform(0.0, 30.0, (n, m)),
    )


def test_scan_inputs_hand_cases() -> None:
    raw = np.array([[0.1, -0.0, 2e150], [np.nan, np.inf, -np.inf], [0.2, 0.3, -0.1]])
    book = np.array([[0.1, -3e150, -0.0], [0.0, 0.0, 0.0], [np.nan, 0.1, 0.1]])
    equity = np.array([1e6, 1e6, 1e6])
    prices, adv, vol, spread = (np.full((3, 3), v) for v in (100.0, 1e8, 0.02, 5.0))
    prices[0, 1] = np.nan  # unusable: NaN price
    adv[2, 0] = 2e15  # unusable: ADV above its range
    tradable = np.ones((3, 3), dtype=bool)
    tradable[1, 2] = False
    rows_ok = np.array([True, True, True])
    p, c, eq, bad_p, bad_r, usable, any_p, any_r, all_usable = scan_inputs(
        raw, book, equity, prices, adv, vol, spread, tradable, rows_ok, _LOW, _HIGH, BIG
    )
    assert _bits(p) == _bits(np.array([[0.1, -0.0, BIG], [0.0, BIG, -BIG], [0.2, 0.3, -0.1]]))
    # row 2's book is not finite: an unreadable row (0 book, equity 1)
    assert _bits(c) == _bits(np.array([[0.1, -BIG, -0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert eq.tolist() == [1e6, 1e6, 1.0]
    assert bad_p.tolist() == [False, True, False]
    assert bad_r.tolist() == [False, False, True]
    expected = np.ones((3, 3), dtype=bool)
    expected[0, 1] = expected[1, 2] = expected[2, 0] = False
    assert (usable == expected).all()
    assert any_p and any_r and not all_usable


@pytest.mark.parametrize("bad", ["equity_low", "equity_nan", "rows_ok"])
def test_scan_inputs_unreadable_rows(bad: str) -> None:
    raw = np.full((2, 4), 0.1)
    book = np.full((2, 4), 0.2)
    equity = np.array([1e6, 1e6])
    rows_ok = np.array([True, True])
    if bad == "equity_low":
        equity[1] = 0.5
    elif bad == "equity_nan":
        equity[1] = np.nan
    else:
        rows_ok[1] = False
    market = (np.full((2, 4), v) for v in (100.0, 1e8, 0.02, 5.0))
    _, c, eq, _, bad_r, _, any_p, any_r, all_usable = scan_inputs(
        raw, book, equity, *market, np.ones((2, 4), dtype=bool), rows_ok, _LOW, _HIGH, BIG
    )
    assert bad_r.tolist() == [False, True]
    assert c.tolist() == [[0.2] * 4, [0.0] * 4]
    assert eq.tolist() == [1e6, 1.0]
    assert not any_p and any_r and all_usable


def test_scan_inputs_broadcast_views() -> None:
    """Broadcast (zero-stride) inputs read like the full arrays."""
    rng = np.random.default_rng(3)
    raw, book = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    row = rng.uniform(1.0, 2.0, 6)
    full = np.tile(row, (4, 1))
    view = np.broadcast_to(row, (4, 6))
    args = (np.full(4, 1e6),)
    tail = (np.ones((4, 6), dtype=bool), np.ones(4, dtype=bool), _LOW, _HIGH, BIG)
    a = scan_inputs(raw, book, *args, full, full, full, full, *tail)
    b = scan_inputs(raw, book, *args, view, view, view, view, *tail)
    for x, y in zip(a, b, strict=True):
        assert _bits(np.asarray(x)) == _bits(np.asarray(y))


def test_participation_cap_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    n, m = 9, 7
    adv = np.exp(rng.uniform(0.0, 20.0, (n, m)))
    adv[0, 0] = 0.0
    equity = rng.uniform(1e5, 1e8, n)
    bound = rng.uniform(0.01, 0.2, 5)  # per regime slot
    capacity = np.array([1.0, 0.5, 0.0, 2.0, 1.0])  # slot 2 closes trading
    slot = np.array([0, 1, 2, 3, 4, 0, 1, 3, 4])
    tradable = rng.random((n, m)) < 0.8
    for all_tradable in (False, True):
        can = (adv > 0) & (capacity[slot] > 0)[:, None]
        if not all_tradable:
            can &= tradable
        want = adv / equity[:, None]
        want *= bound[slot][:, None]
        want[~can] = 0.0
        got = participation_cap(adv, equity, bound, capacity, slot, tradable, all_tradable)
        assert _bits(got) == _bits(want)
        assert got[2].tolist() == [0.0] * m


def _measures_numpy(d1, turnover, budget, equity, adv, vol, spread, model):
    """The numpy formulas of the portfolio trade limits (TURNOVER_CAP, SLIPPAGE_BUDGET)."""
    l1 = np.abs(d1).sum(axis=1)
    over_t = is_over(l1, turnover, l1)
    s_turn = np.where(over_t, turnover / np.where(over_t, l1, 1.0), 1.0)
    trade = d1 * s_turn[:, None]
    linear, impact = cost_terms(trade, equity, adv, vol, spread, model)
    cost = (linear + impact).sum(axis=1)
    sums = (linear.sum(axis=1), impact.sum(axis=1))
    return l1, s_turn, over_t, sums, is_over(cost, budget, cost)


@pytest.mark.parametrize("m", [3, 20, 300])
def test_trade_measures_matches_numpy(m: int) -> None:
    """Random trades at and around both limits, the row sums long enough (300) to take
    numpy's pairwise split."""
    rng = np.random.default_rng(m)
    n = 64
    model = CostModel()
    d1 = rng.normal(0.0, 1.0, (n, m)) * rng.uniform(0.0, 1.5 / m, (n, 1))
    d1[rng.random((n, m)) < 0.2] = 0.0
    d1[5] = 0.0
    d1[6, 0] = np.nan
    _, adv, vol, spread = _market(rng, n, m)
    equity = rng.uniform(1e5, 1e8, n)
    turnover = rng.uniform(0.0, 1.0, n)
    turnover[7] = np.abs(d1[7]).sum()  # exactly at the cap: inside
    budget = 5e-4
    l1, s_turn, over_t, lin_sum, imp_sum, over_s, any_t, any_s = trade_measures(
        d1, turnover, budget, equity, adv, vol, spread,
        model.spread_mult, model.commission_bps, model.impact_k, RTOL, ATOL,
    )  # fmt: skip
    want = _measures_numpy(d1, turnover, budget, equity, adv, vol, spread, model)
    w_l1, w_s, w_over_t, (w_linear, w_impact), w_over_s = want
    assert _bits(l1) == _bits(w_l1)
    assert _bits(s_turn) == _bits(w_s)
    assert (over_t == w_over_t).all() and any_t == bool(w_over_t.any())
    assert (over_s == w_over_s).all() and any_s == bool(w_over_s.any())
    assert _bits(lin_sum) == _bits(w_linear)
    assert _bits(imp_sum) == _bits(w_impact)
    assert not over_t[7] and over_t[6] and over_s[6]  # at the cap; a NaN trade
    assert l1[5] == 0.0 and s_turn[5] == 1.0 and not over_s[5]  # no trade
    assert 0 < over_t.sum() < n and 0 < over_s.sum() < n


def test_strategy_scale_matches_numpy() -> None:
    tiny = float(np.finfo(np.float64).tiny)
    gross = np.array([[0.2, 0.5, np.inf], [1e308, 0.3 * (1 + 1e-13), 0.0]])
    budget = np.array([[0.3, 0.25, 0.4], [1e-10, 0.3, 0.1]])
    scale, any_over = strategy_scale(gross, budget, RTOL, ATOL, tiny)
    over = is_over(gross, budget, gross) | ~np.isfinite(gross)
    want = np.where(over, budget / np.where(over, gross, 1.0), 1.0)
    want[want < tiny] = 0.0
    assert _bits(scale) == _bits(want)
    # inside; scaled; infinite gross; subnormal scale -> 0; within the tolerance; empty
    assert scale.tolist() == [[1.0, 0.5, 0.0], [0.0, 1.0, 1.0]]
    assert any_over
    assert not strategy_scale(gross[:, :1] * 0.0, budget[:, :1], RTOL, ATOL, tiny)[1]


def test_forced_derisk_bits_and_removed() -> None:
    bit = 1 << 5
    current = np.array([[0.2, -0.1, 0.0], [0.1, 0.1, 0.1], [0.0, 0.0, 0.0]])
    derisked = np.array([[0.15, -0.1, 0.0], [0.1, 0.1, 0.1], [0.0, 0.0, 0.0]])
    bad_row = np.array([False, False, True])
    sym = np.zeros((6, 3), dtype=np.int64)
    port = np.zeros(6, dtype=np.int64)
    sym[0, 0], port[0] = 1, 1  # the de-risk's own code on row 0
    sym[4, 2], port[4] = 2, 2  # a decision's code on row 1
    any_forced, sym_out, port_out, removed = forced_derisk(
        current, derisked, bad_row, sym, port, bit
    )
    assert any_forced
    assert sym_out.tolist() == [[1 | bit, 0, 0], [0, 0, 2], [0, 0, 0]]
    assert port_out.tolist() == [1 | bit, 2, 0]
    assert _bits(removed) == _bits(np.abs(current - derisked).sum(axis=1))
    assert not forced_derisk(current, current, bad_row, sym, port, bit)[0]
