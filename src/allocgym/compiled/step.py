"""The env step after the decision, one pass per portfolio: the fill at the next bar, the
marked book and the reward terms (:func:`fill_and_mark`); the reward, the episode's sums
and its end (:func:`score`); the book's slots of the observation (:func:`write_book`).

Row sums follow numpy's pairwise order and every float operation that of the numpy
statement of the formula, so results equal it bit for bit (the ex-ante CVaR sums in the
sequential order :func:`allocgym.compiled.cvar.row_cvar` documents). The log of the growth
is left to the caller: numpy's SIMD log rounds differently from the C library's.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types

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
)
from allocgym.compiled.cost import cost_pair
from allocgym.compiled.cvar import cvar_order, row_cvar

BOOK_ROWS = (
    "cost",
    "cash",
    "equity",
    "peak",
    "growth",
    "net_return",
    "drawdown",
    "cash_fraction",
    "turnover",
    "intervention",
    "gross",
    "net",
    "cvar",
)
"""Rows of the per-portfolio values :func:`fill_and_mark` returns, in this order."""

SCORE_ROWS = (
    "cvar_penalty",
    "intervention_penalty",
    "turnover_penalty",
    "drawdown_penalty",
    "reward",
)
"""Rows of the reward terms :func:`score` returns, in this order."""

END_ROWS = ("terminated", "truncated", "kill")
"""Rows of the episode flags :func:`score` returns, in this order."""

_COST, _CASH, _EQUITY, _PEAK, _GROWTH, _NET_RET, _DRAWDOWN, _CASH_FRAC = range(8)
_TURNOVER, _INTERVENTION, _GROSS, _NET, _CVAR = range(8, 13)

_NO_DELISTING = np.zeros((0, 0), dtype=bool)
_OBS = types.Array(types.float32, 2, "C")
_BUFFER = types.Array(types.float64, 2, "A")
_REGIMES = types.Array(types.int8, 1, "A", readonly=True)


@kernel(
    F2, I1, F2, F1, F2, B2, F2, F2, F2, types.float64, types.float64, types.float64,
    B2, types.boolean, F1, F1, F2, F2, types.float64,
    F2, types.int64, types.float64, types.float64, types.int64, types.boolean,
)  # fmt: skip
def _fill_and_mark(
    prices,
    t1,
    shares0,
    cash0,
    delta_qty,
    tradable,
    adv,
    vol,
    spread,
    spread_mult,
    commission,
    impact_k,
    delisted,
    has_delisted,
    equity0,
    peak0,
    approved,
    proposed,
    min_growth,
    returns,
    window,
    alpha,
    k,
    i,
    ex_ante,
):  # pragma: no cover
    n_envs, n_assets = shares0.shape
    dq = np.empty((n_envs, n_assets))
    shares = np.empty((n_envs, n_assets))
    weights = np.empty((n_envs, n_assets))
    book = np.empty((13, n_envs))
    gone_value = np.zeros(n_envs)
    held = np.empty(n_assets)
    notional = np.empty(n_assets)
    per_name = np.empty(n_assets)
    traded = np.empty(n_assets)
    smallest = np.empty(i + 1)
    scen = np.empty(window)
    any_gone = False
    # the fill (numpy's order: value before the trade, then notional, cost and cash)
    for b in range(n_envs):
        t = t1[b]
        for a in range(n_assets):
            held[a] = shares0[b, a] * prices[t, a]
        value_pre = cash0[b] + pairwise_sum(held, 0, n_assets)
        # a portfolio worth nothing before the trade trades nothing
        solvent = value_pre > 0.0
        eq_pre = value_pre if solvent else 1.0
        for a in range(n_assets):
            # an order in a symbol halted (or delisted) at the fill bar does not fill, nor
            # one with no traded volume over the ADV window to fill against (its impact
            # cost would be infinite: the gates passed it on the decision bar's ADV)
            q = delta_qty[b, a] if solvent and tradable[t, a] and adv[t, a] > 0.0 else 0.0
            dq[b, a] = q
            notional[a] = q * prices[t, a]
            trade_w = notional[a] / eq_pre
            traded[a] = abs(trade_w)
            linear, impact = cost_pair(
                trade_w, eq_pre, adv[t, a], vol[t, a], spread[t, a],
                spread_mult, commission, impact_k,
            )  # fmt: skip
            per_name[a] = linear + impact
            shares[b, a] = shares0[b, a] + q
        cost_frac = 0.0 + pairwise_sum(per_name, 0, n_assets)
        book[_COST, b] = cost_frac
        book[_TURNOVER, b] = pairwise_sum(traded, 0, n_assets)
        book[_CASH, b] = cash0[b] - pairwise_sum(notional, 0, n_assets) - cost_frac * eq_pre
        if has_delisted:
            # a symbol without prices from t + 1 on: its position becomes cash at the last price
            row_gone = False
            for a in range(n_assets):
                gone = delisted[t, a] and shares[b, a] != 0.0
                held[a] = shares[b, a] * prices[t, a] if gone else 0.0
                if gone:
                    shares[b, a] = 0.0
                    row_gone = True
            if row_gone:
                gone_value[b] = pairwise_sum(held, 0, n_assets)
                any_gone = True
    # the batch's delisted value joins every cash (+ 0.0 where nothing went: numpy's bits)
    if any_gone:
        for b in range(n_envs):
            book[_CASH, b] = book[_CASH, b] + gone_value[b]
    # marking, reward terms
    for b in range(n_envs):
        t = t1[b]
        cash = book[_CASH, b]
        for a in range(n_assets):
            held[a] = shares[b, a] * prices[t, a]
        equity = cash + pairwise_sum(held, 0, n_assets)
        peak = maximum(peak0[b], equity)
        growth = equity / equity0[b]
        book[_EQUITY, b] = equity
        book[_PEAK, b] = peak
        book[_NET_RET, b] = growth - 1.0
        book[_GROWTH, b] = maximum(growth, min_growth)
        if equity > 0.0:
            marked = equity
            book[_CASH_FRAC, b] = cash / equity
            book[_DRAWDOWN, b] = 1.0 - equity / peak
        else:  # a book worth nothing: marked at 1, no cash fraction, fully drawn down
            marked = 1.0
            book[_CASH_FRAC, b] = 0.0
            book[_DRAWDOWN, b] = 1.0
        for a in range(n_assets):
            w = held[a] / marked
            weights[b, a] = w
            traded[a] = abs(w)
        book[_GROSS, b] = pairwise_sum(traded, 0, n_assets)
        book[_NET, b] = pairwise_sum(weights[b], 0, n_assets)
        for a in range(n_assets):
            traded[a] = abs(approved[b, a] - proposed[b, a])
        diff = pairwise_sum(traded, 0, n_assets)
        if not math.isfinite(diff):  # an invalid proposal: the whole approved book
            for a in range(n_assets):
                traded[a] = abs(approved[b, a])
            diff = pairwise_sum(traded, 0, n_assets)
        book[_INTERVENTION, b] = diff
        if ex_ante:
            # scenarios: the last `window` bars up to t applied to the approved book
            book[_CVAR, b] = row_cvar(
                returns, t - window, approved, b, window, alpha, k, i, smallest, scen
            )
        else:
            book[_CVAR, b] = np.nan
    return dq, shares, weights, book


@kernel(
    F2, F1, F1, _BUFFER, B1, I1, I1, F2, L2, L2, L2, _REGIMES, types.float64,
    types.float64, types.float64, types.float64, types.int64, types.int64, types.float64,
)  # fmt: skip
def _score(
    book,
    log_growth,
    cvar,
    returns,
    kill,
    steps,
    t1,
    totals0,
    reason_totals0,
    regime_totals0,
    counts,
    regime,
    cvar_weight,
    intervention_weight,
    turnover_weight,
    drawdown_weight,
    episode_length,
    last_bar,
    drawdown_kill,
):  # pragma: no cover
    n_envs = book.shape[1]
    scored = np.empty((5, n_envs))
    totals = np.empty((n_envs, 7))
    reason_totals = np.empty(reason_totals0.shape, dtype=np.int64)
    regime_totals = np.empty(regime_totals0.shape, dtype=np.int64)
    steps1 = np.empty(n_envs, dtype=np.int64)
    ends = np.empty((3, n_envs), dtype=np.bool_)
    for b in range(n_envs):
        if not 0 <= steps[b] < returns.shape[1]:
            raise IndexError("score: a portfolio is past the end of its episode (reset it)")
        returns[b, steps[b]] = book[_NET_RET, b]
        cvar_pen = cvar_weight * cvar[b]
        intervention_pen = intervention_weight * book[_INTERVENTION, b]
        turnover_pen = turnover_weight * book[_TURNOVER, b]
        drawdown_pen = drawdown_weight * book[_DRAWDOWN, b]
        reward = log_growth[b] - cvar_pen - intervention_pen - turnover_pen - drawdown_pen
        scored[0, b], scored[1, b], scored[2, b] = cvar_pen, intervention_pen, turnover_pen
        scored[3, b], scored[4, b] = drawdown_pen, reward
        step_terms = (
            book[_COST, b], book[_TURNOVER, b], book[_GROSS, b], book[_NET, b],
            book[_INTERVENTION, b], log_growth[b], reward,
        )  # fmt: skip
        for c in range(7):
            totals[b, c] = totals0[b, c] + step_terms[c]
        for c in range(counts.shape[1]):
            reason_totals[b, c] = reason_totals0[b, c] + counts[b, c]
        for c in range(regime_totals0.shape[1]):
            regime_totals[b, c] = regime_totals0[b, c] + (regime[b] == c)
        steps1[b] = steps[b] + 1
        terminated = kill[b] or not book[_EQUITY, b] > 0.0
        ends[0, b] = terminated
        ends[1, b] = not terminated and (steps1[b] >= episode_length or t1[b] >= last_bar)
        ends[2, b] = book[_DRAWDOWN, b] >= drawdown_kill
    return scored, totals, reason_totals, regime_totals, steps1, ends


def fill_and_mark(
    prices: np.ndarray,
    t1: np.ndarray,
    shares: np.ndarray,
    cash: np.ndarray,
    delta_qty: np.ndarray,
    tradable: np.ndarray,
    adv_notional: np.ndarray,
    volatility: np.ndarray,
    spread_bps: np.ndarray,
    cost: tuple[float, float, float],
    delisted: np.ndarray | None,
    equity: np.ndarray,
    peak: np.ndarray,
    approved: np.ndarray,
    proposed: np.ndarray,
    min_growth: float,
    returns: np.ndarray,
    cvar: tuple[int, float] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fill each portfolio's orders at bar ``t1``, mark the book there and measure the
    step's reward terms.

    The fill: ``delta_qty`` trades at ``prices[t1]`` unless the book is worth nothing
    before it (``cash + shares . p <= 0``, then nothing trades) or the symbol is not
    tradable at ``t1`` (halted or delisted: its order is cancelled, not carried to a later
    bar; the next decision sees the book it holds); the cost is
    ``costs.expected_cost`` of the traded weights (notional over that pre-trade value)
    with the bar's ADV, volatility and spread; a delisted symbol's position becomes cash.
    The mark: equity, peak, growth over the last equity, drawdown, weights and cash
    fraction (a book worth nothing is marked at 1: weights are its holdings, cash fraction
    0, drawdown 1).

    Parameters
    ----------
    prices, adv_notional, volatility, spread_bps : ndarray, shape (n_bars, n_assets)
        Per-bar tables (marks; the cost model's inputs).
    t1 : ndarray of int64, shape (n_envs,)
        Fill bar of each portfolio.
    shares, delta_qty : ndarray, shape (n_envs, n_assets)
        Position before the fill and the order, in shares.
    tradable : ndarray of bool, shape (n_bars, n_assets)
        Whether each symbol can trade at each bar.
    cash, equity, peak : ndarray, shape (n_envs,)
        Cash before the fill, equity at the last bar, running peak.
    cost : (spread_mult, commission_bps, impact_k)
        The cost model.
    delisted : ndarray of bool, shape (n_bars, n_assets), or None
        Symbols without prices from that bar on.
    approved, proposed : ndarray, shape (n_envs, n_assets)
        Gate output and input (intervention ``sum |approved - proposed|``, or
        ``sum |approved|`` where that is not finite).
    min_growth : float
        Floor of the growth (the caller takes its log).
    returns : ndarray, shape (n_bars, n_assets)
        Simple returns, for the ex-ante CVaR.
    cvar : (window, alpha) or None
        The ex-ante CVaR of the approved book over the ``window`` bars up to ``t1 - 1``
        at level ``alpha`` (:func:`allocgym.compiled.cvar.row_cvar`); None: the row of NaN.

    Returns
    -------
    delta_qty, shares, weights : ndarray, shape (n_envs, n_assets)
        Shares traded (0 where the order was cancelled), position after the fill, weights
        after the fill.
    book : ndarray, shape (len(BOOK_ROWS), n_envs)
        The per-portfolio values named by ``BOOK_ROWS`` (``growth`` floored).
    """
    ready()
    window, alpha = cvar if cvar is not None else (1, 1.0)
    k, i = cvar_order(window, alpha)
    has_delisted = delisted is not None
    return _fill_and_mark(
        prices, t1, shares, cash, delta_qty, tradable, adv_notional, volatility, spread_bps,
        float(cost[0]), float(cost[1]) / 1e4, float(cost[2]),
        delisted if has_delisted else _NO_DELISTING, has_delisted, equity, peak,
        approved, proposed, float(min_growth), returns, int(window), float(alpha), k, i,
        cvar is not None,
    )  # fmt: skip


def score(
    book: np.ndarray,
    log_growth: np.ndarray,
    cvar: np.ndarray,
    returns: np.ndarray,
    kill: np.ndarray,
    steps: np.ndarray,
    t1: np.ndarray,
    totals: tuple[np.ndarray, np.ndarray, np.ndarray],
    reason_counts: np.ndarray,
    regime: np.ndarray,
    weights: tuple[float, float, float, float],
    episode_length: int,
    last_bar: int,
    drawdown_kill: float,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    """The penalties, the reward, the episode's sums and the episode end of a step.

    ``reward = log_growth - cvar_weight * cvar - intervention_weight * intervention -
    turnover_weight * turnover - drawdown_weight * drawdown``. The episode's sums add the
    step's cost, turnover, gross, net, intervention, log growth and reward, its reason
    counts and a step in its regime; its net return goes into ``returns[b, steps[b]]``
    (in place). A portfolio terminates when its kill switch was engaged or its equity is
    not positive, else is truncated at ``steps + 1 >= episode_length`` or
    ``t1 >= last_bar``; its kill switch engages for the next decision at
    ``drawdown >= drawdown_kill``.

    Parameters
    ----------
    book : ndarray, shape (len(BOOK_ROWS), n_envs)
        From :func:`fill_and_mark`.
    log_growth, cvar : ndarray, shape (n_envs,)
    returns : ndarray, shape (n_envs, episode_length), writable
        The episode's net returns.
    kill : ndarray of bool, shape (n_envs,)
        Kill switch engaged for this step.
    steps, t1 : ndarray of int64, shape (n_envs,)
        Steps taken before the step; decision bar after it.
    totals : (totals, reason_totals, regime_totals)
        Episode sums before the step: shapes (n_envs, 7), (n_envs, n_codes) and
        (n_envs, n_regimes) int64.
    reason_counts : ndarray of int64, shape (n_envs, n_codes)
    regime : ndarray of int8, shape (n_envs,)
        Regime code of the step (a column of ``regime_totals``).
    weights : (cvar, intervention, turnover, drawdown) penalty weights

    Returns
    -------
    scored : ndarray, shape (len(SCORE_ROWS), n_envs)
    totals : (totals, reason_totals, regime_totals) after the step
    steps1 : ndarray of int64, shape (n_envs,)
        ``steps + 1``.
    ends : ndarray of bool, shape (len(END_ROWS), n_envs)
    """
    ready()
    scored, sums, reason_sums, regime_sums, steps1, ends = _score(
        book, log_growth, cvar, returns, kill, steps, t1, *totals, reason_counts, regime,
        *map(float, weights), int(episode_length), int(last_bar), float(drawdown_kill),
    )  # fmt: skip
    return scored, (sums, reason_sums, regime_sums), steps1, ends


@kernel(_OBS, F2, F1, F1, F1, F1, types.float64, types.int64, types.int64)
def _write_book(
    out, weights, gross, net, drawdown, cash, clip, n_feats, book_col
):  # pragma: no cover
    n_envs, n_assets = weights.shape
    for b in range(n_envs):
        # each asset block ends with its weight slot
        for a in range(n_assets):
            w = minimum(maximum(weights[b, a], -clip), clip)
            out[b, (a + 1) * n_feats - 1] = np.float32(w)
        out[b, book_col] = np.float32(minimum(maximum(gross[b], -clip), clip))
        out[b, book_col + 1] = np.float32(minimum(maximum(net[b], -clip), clip))
        out[b, book_col + 2] = np.float32(minimum(maximum(drawdown[b], 0.0), 1.0))
        out[b, book_col + 3] = np.float32(minimum(maximum(cash[b], -clip), clip))


def write_book(
    out: np.ndarray,
    weights: np.ndarray,
    gross: np.ndarray,
    net: np.ndarray,
    drawdown: np.ndarray,
    cash: np.ndarray,
    clip: float,
    n_asset_features: int,
    book_col: int,
) -> None:
    """Write the book's slots of observations ``out`` in place: each asset block's last
    slot its weight, and ``gross, net, drawdown, cash`` from column ``book_col`` on, each
    clipped to ``[-clip, clip]`` (the drawdown to ``[0, 1]``) in float64, then rounded to
    float32.

    Parameters
    ----------
    out : ndarray of float32, shape (n_envs, obs_dim), C-contiguous
    weights : ndarray, shape (n_envs, n_assets)
    gross, net, drawdown, cash : ndarray, shape (n_envs,)
    """
    ready()
    _write_book(
        out, weights, gross, net, drawdown, cash, float(clip), int(n_asset_features),
        int(book_col),
    )  # fmt: skip
