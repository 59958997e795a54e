"""The gate chain's own arithmetic: the input scan (validation masks and sanitised books
of a decision), the participation cap, the forced de-risk's bits, the turnover and cost
measures of a trade, and the strategy families' scales.

Each kernel does the float operations of the numpy formula it replaced in the same order
(row sums in numpy's pairwise order), so its results are bit-identical."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import types

from allocgym.compiled._base import B1, B2, F1, F2, I1, L2, kernel, pairwise_sum, ready
from allocgym.compiled.cost import cost_pair


@kernel(F2, F2, F1, F2, F2, F2, F2, B2, B1, F1, F1, types.float64)
def _scan_inputs(
    raw, book, equity, prices, adv, vol, spread, tradable, rows_ok, low, high, big
):  # pragma: no cover
    n_envs, n_assets = raw.shape
    proposal = np.empty((n_envs, n_assets))
    current = np.empty((n_envs, n_assets))
    usable = np.empty((n_envs, n_assets), dtype=np.bool_)
    equity_out = np.empty(n_envs)
    bad_proposal = np.empty(n_envs, dtype=np.bool_)
    bad_row = np.empty(n_envs, dtype=np.bool_)
    all_usable = True
    any_bad_proposal = any_bad_row = False
    for b in range(n_envs):
        eq = equity[b]
        good = rows_ok[b] and eq >= low[0] and eq <= high[0]
        finite = True
        for a in range(n_assets):
            p = raw[b, a]
            finite &= np.isfinite(p)
            # nan_to_num (NaN -> 0, +-inf -> +-BIG), then clipped to +-BIG
            proposal[b, a] = 0.0 if p != p else (big if p > big else (-big if p < -big else p))
            good &= np.isfinite(book[b, a])
            ok = (
                tradable[b, a]
                and prices[b, a] >= low[1] and prices[b, a] <= high[1]
                and adv[b, a] >= low[2] and adv[b, a] <= high[2]
                and vol[b, a] >= low[3] and vol[b, a] <= high[3]
                and spread[b, a] >= low[4] and spread[b, a] <= high[4]
            )  # fmt: skip
            usable[b, a] = ok
            all_usable &= ok
        bad_proposal[b] = not finite
        bad_row[b] = not good
        any_bad_proposal |= not finite
        any_bad_row |= not good
        equity_out[b] = eq if good else 1.0
        for a in range(n_assets):
            c = book[b, a] if good else 0.0
            current[b, a] = big if c > big else (-big if c < -big else c)
    return (
        proposal, current, equity_out, bad_proposal, bad_row, usable,
        any_bad_proposal, any_bad_row, all_usable,
    )  # fmt: skip


def scan_inputs(
    raw: np.ndarray,
    book: np.ndarray,
    equity: np.ndarray,
    prices: np.ndarray,
    adv: np.ndarray,
    vol: np.ndarray,
    spread: np.ndarray,
    tradable: np.ndarray,
    rows_ok: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    big: float,
) -> tuple[Any, ...]:
    """One pass over a decision's (n_envs, n_assets) inputs.

    ``low`` / ``high`` (5,): the usable range of the equity, price, ADV, volatility and
    spread (NaN is outside every range). A row is readable where ``rows_ok`` (n_envs,),
    its equity is in range and its book finite. Returns (the proposal with NaN -> 0 and
    clipped to ``+-big``, the book clipped to ``+-big`` and 0 in unreadable rows, the
    equity with 1.0 in those rows, bad_proposal (a non-finite entry), bad_row, usable
    (tradable and every market field in range), then whether any proposal is bad, whether
    any row is, whether every symbol is usable).
    """
    ready()
    return _scan_inputs(
        raw, book, equity, prices, adv, vol, spread, tradable, rows_ok, low, high, float(big)
    )


@kernel(F2, F1, F1, F1, I1, B2, types.boolean)
def _participation_cap(
    adv, equity, bound, capacity, slot, tradable, all_tradable
):  # pragma: no cover
    n_envs, n_assets = adv.shape
    cap = np.empty((n_envs, n_assets))
    for b in range(n_envs):
        row_bound = bound[slot[b]]
        row_open = capacity[slot[b]] > 0.0
        for a in range(n_assets):
            can = row_open and adv[b, a] > 0.0 and (all_tradable or tradable[b, a])
            # zero where nothing may trade (never 0 * inf)
            cap[b, a] = adv[b, a] / equity[b] * row_bound if can else 0.0
    return cap


def participation_cap(
    adv: np.ndarray,
    equity: np.ndarray,
    bound: np.ndarray,
    capacity: np.ndarray,
    slot: np.ndarray,
    tradable: np.ndarray,
    all_tradable: bool,
) -> np.ndarray:
    """The participation cap in weights (n_envs, n_assets): ``adv / equity * bound`` with
    the bound and the capacity multiplier of each row's regime slot (``bound[slot]``,
    ``capacity[slot]``; ``equity``, ``slot``: (n_envs,)), 0 where the ADV or the capacity
    is not > 0 or the symbol not ``tradable`` (unread when ``all_tradable``)."""
    ready()
    return _participation_cap(adv, equity, bound, capacity, slot, tradable, bool(all_tradable))


@kernel(
    F2, F1, types.float64, F1, F2, F2, F2,
    types.float64, types.float64, types.float64, types.float64, types.float64,
)  # fmt: skip
def _trade_measures(
    trade, turnover, budget, equity, adv, vol, spread, spread_mult, commission, impact_k, rtol, atol
):  # pragma: no cover
    n_envs, n_assets = trade.shape
    l1 = np.empty(n_envs)
    s_turn = np.empty(n_envs)
    over_t = np.empty(n_envs, dtype=np.bool_)
    linear_sum = np.empty(n_envs)
    impact_sum = np.empty(n_envs)
    over_s = np.empty(n_envs, dtype=np.bool_)
    any_t = any_s = False
    buf = np.empty(n_assets)
    lin = np.empty(n_assets)
    imp = np.empty(n_assets)
    for b in range(n_envs):
        for a in range(n_assets):
            buf[a] = abs(trade[b, a])
        total = 0.0 + pairwise_sum(buf, 0, n_assets)
        room = turnover[b]
        over = not total <= ((room + total) * rtol + room) + atol
        scale = room / total if over else 1.0
        for a in range(n_assets):
            lin[a], imp[a] = cost_pair(
                trade[b, a] * scale, equity[b], adv[b, a], vol[b, a], spread[b, a],
                spread_mult, commission, impact_k,
            )  # fmt: skip
            buf[a] = lin[a] + imp[a]
        c = 0.0 + pairwise_sum(buf, 0, n_assets)
        l1[b], s_turn[b], over_t[b] = total, scale, over
        over_s[b] = c == np.inf or not c <= ((budget + c) * rtol + budget) + atol
        any_t |= over
        any_s |= over_s[b]
        linear_sum[b] = 0.0 + pairwise_sum(lin, 0, n_assets)
        impact_sum[b] = 0.0 + pairwise_sum(imp, 0, n_assets)
    return l1, s_turn, over_t, linear_sum, impact_sum, over_s, any_t, any_s


def trade_measures(
    trade: np.ndarray,
    turnover: np.ndarray,
    budget: float,
    equity: np.ndarray,
    adv: np.ndarray,
    vol: np.ndarray,
    spread: np.ndarray,
    spread_mult: float,
    commission_bps: float,
    impact_k: float,
    rtol: float,
    atol: float,
) -> tuple[Any, ...]:
    """The turnover and slippage-budget measures of ``trade`` (n_envs, n_assets).

    Per row: ``l1 = sum |trade|``; ``over_t``: ``l1`` over the ``turnover`` room (n_envs,)
    beyond the chain's tolerance, and then ``s_turn = turnover / l1`` (else 1); the cost
    model's linear and impact cost of ``trade * s_turn`` (equity (n_envs,)) summed, and
    ``over_s``: their sum per name, summed, over ``budget``. "Over" is ``not value <=
    (limit + value) * rtol + limit + atol`` (``risk.kernels.is_over``). Row sums as numpy
    sums a row. Returns (l1, s_turn, over_t, linear_sum, impact_sum, over_s), each
    (n_envs,), then whether any ``over_t``, whether any ``over_s``.
    """
    ready()
    return _trade_measures(
        trade, turnover, float(budget), equity, adv, vol, spread,
        float(spread_mult), float(commission_bps) / 1e4, float(impact_k),
        float(rtol), float(atol),
    )  # fmt: skip


@kernel(F2, F2, B1, L2, I1, types.int64)
def _forced_derisk(current, derisked, bad_row, sym, port, bit):  # pragma: no cover
    n_envs, n_assets = current.shape
    sym_out = np.empty((n_envs, n_assets), dtype=np.int64)
    port_out = np.empty(n_envs, dtype=np.int64)
    removed = np.empty(n_envs)
    buf = np.empty(n_assets)
    any_forced = False
    for b in range(n_envs):
        moved_any = False
        for a in range(n_assets):
            moved = derisked[b, a] != current[b, a]
            moved_any |= moved
            sym_out[b, a] = sym[n_envs + b, a] | sym[b, a] | (bit if moved else 0)
            buf[a] = abs(current[b, a] - derisked[b, a])
        forced = moved_any and not bad_row[b]
        any_forced |= forced
        port_out[b] = port[n_envs + b] | port[b] | (bit if forced else 0)
        removed[b] = 0.0 + pairwise_sum(buf, 0, n_assets)
    return any_forced, sym_out, port_out, removed


def forced_derisk(
    current: np.ndarray,
    derisked: np.ndarray,
    bad_row: np.ndarray,
    sym: np.ndarray,
    port: np.ndarray,
    bit: int,
) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray]:
    """The forced de-risk of the current books ``current`` (n_envs, n_assets) that the
    hard gates moved to ``derisked``: (whether any readable row (``~bad_row``) moved, the
    symbol bits, the portfolio bits, the L1 moved (n_envs,)).

    ``sym`` (2 n_envs, n_assets) and ``port`` (2 n_envs,) hold the bits of the current
    books' rows, then of the decisions' rows; the bits returned are their OR per
    decision, with ``bit`` on every moved symbol and every moved readable row.
    """
    ready()
    return _forced_derisk(current, derisked, bad_row, sym, port, int(bit))


# ------------------------------------------------------------------ strategy families


@kernel(F2, F2, types.float64, types.float64, types.float64)
def _strategy_scale(gross, budget, rtol, atol, tiny):  # pragma: no cover
    n_envs, n_families = gross.shape
    scale = np.empty((n_envs, n_families))
    any_over = False
    for b in range(n_envs):
        for k in range(n_families):
            g, cap = gross[b, k], budget[b, k]
            over = not g <= ((cap + g) * rtol + cap) + atol or not np.isfinite(g)
            s = cap / g if over else 1.0
            scale[b, k] = s if s >= tiny else 0.0
            any_over |= over
    return scale, any_over


def strategy_scale(
    gross: np.ndarray, budget: np.ndarray, rtol: float, atol: float, tiny: float
) -> tuple[np.ndarray, bool]:
    """Each family's scale (n_envs, n_strategies): ``budget / gross`` where the gross is
    not finite or over the budget beyond the tolerance (``risk.kernels.is_over`` with
    ``rtol``, ``atol``), else 1; a scale below ``tiny`` is 0. With whether any was over."""
    ready()
    return _strategy_scale(gross, budget, float(rtol), float(atol), float(tiny))
