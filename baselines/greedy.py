"""Greedy top-K rotation with hysteresis ("cut low performer / buy better /
rotate green to better"), vectorised over portfolios.

Rules, applied to a long-only top-K book (per portfolio, ``rank`` is 1-based in the order
of a stable sort by ``(-z, symbol index)``, so ties go to the lower symbol index):

1. **CUT**: a held name with ``rank > K_sell`` and ``z < z_cut`` goes to 0. A short
   position (``w_cur < 0``) is closed and coded CUT as well (the book is long-only).
2. **HOLD**: every other held name keeps its current weight (hysteresis: a name bought in
   the top ``K_buy`` is only cut once it falls below ``K_sell`` *and* ``z_cut``).
3. **BUY**: candidates are unheld names with ``rank <= K_buy`` and ``z > z_keep``; in rank
   order they fill the free slots ``K - held`` at the target weight ``budget / K``.
4. **ROTATE**: the remaining candidates, best first, are paired with the held names,
   weakest first (worst rank first). Pair ``(out, in)`` rotates when
   ``z_in - z_out >= delta_z_min`` and its utility exceeds ``tau_utility``, where the
   utility is the change of the QP's objective ``z'w - gamma ||C (w - w_cur)||_1``
   from the swap: ``z_in w_t - z_out w_out - gamma (C_in w_t + C_out w_out)``. Both
   names are coded ROTATE (the outgoing one ends at 0, the incoming one at ``w_t``).

Cost: one stable argsort per portfolio, O(N log N); everything else is O(N).

Before these rules :class:`GreedyRotation` applies, per decision:

- **Scores**: risk-scaled z-scores merged across horizons. For each horizon ``h`` of
  ``score_horizons`` the momentum ``sum(log(1 + r))`` over the last ``h`` bars is divided
  by ``sigma sqrt(h)`` (``sigma`` the daily volatility over ``vol_window`` bars) and
  standardised across the names with a full window; the merged score is the
  ``horizon_weights``-weighted mean of the horizons' z-scores, standardised again (so the
  ``z_keep`` / ``z_cut`` thresholds keep their unit). With no horizons the context's
  ``scores`` are used as given.
- **Exits** (held names, forced out before the rules; never bought back in the same
  decision): the ATR exit (:data:`GreedyCode.ATR_EXIT`) cuts a name whose price has fallen
  from its highest close since entry by at least ``atr_multiple`` ATRs; the dead-money
  timeout (:data:`GreedyCode.DEAD_MONEY`) cuts a name held ``dead_money_bars`` bars or
  more whose return since entry is at or below ``dead_money_min_return`` (no progress).
  The ATR is the mean absolute close-to-close return over ``atr_window`` bars (the bars
  carry closes only), scaled by ``sqrt(dt)`` to the allocator's decision interval ``dt``
  (bars since its previous decision): the exit is checked once per decision.
- **Liquidity filter** (:data:`GreedyCode.ILLIQUID`): a name whose average daily traded
  notional is below ``min_adv_notional`` or whose quoted spread is above
  ``max_spread_bps`` is never bought (a held one is kept: selling it is a trade too).
- **Correlation cap** (:data:`GreedyCode.CORRELATED`): with ``max_pair_correlation`` set,
  candidates are screened in rank order; one whose return correlation (``corr_window``
  bars) with a kept name or an already admitted candidate exceeds the cap is not bought.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import TYPE_CHECKING, Any

import numpy as np

from allocgym.config import GreedyConfig
from allocgym.errors import DataError

if TYPE_CHECKING:
    from allocgym.allocator import AllocationContext

__all__ = [
    "EXIT_REASONS",
    "GreedyCode",
    "GreedyResult",
    "GreedyRotation",
    "greedy_rotation",
    "merged_zscores",
]


class GreedyCode(IntFlag):
    """Per-symbol decision of the greedy engine (stable bits)."""

    NONE = 0
    """Not held and not bought."""
    HOLD = 1
    """Held and kept at its current weight (inside the hysteresis band)."""
    CUT = 2
    """Held and cut to 0 (rank > K_sell and z < z_cut), or a short closed."""
    BUY = 4
    """Bought into a free slot at budget / K."""
    ROTATE = 8
    """Part of a rotation: sold to 0 (weight 0) or bought at budget / K."""
    ATR_EXIT = 16
    """Held and cut by the ATR exit (fell ``atr_multiple`` ATRs from its high since entry)."""
    DEAD_MONEY = 32
    """Held and cut by the dead-money timeout (held too long without progress)."""
    ILLIQUID = 64
    """Not bought: ADV below ``min_adv_notional`` or spread above ``max_spread_bps``."""
    CORRELATED = 128
    """Not bought: correlation with a held or admitted name above ``max_pair_correlation``."""


EXIT_REASONS: dict[int, str] = {
    GreedyCode.CUT: "cut",
    GreedyCode.ROTATE: "rotated_out",
    GreedyCode.ATR_EXIT: "atr_exit",
    GreedyCode.DEAD_MONEY: "dead_money",
}
"""Exit reason written to the selection audit for each code of a name sold to 0."""


@dataclass(frozen=True)
class GreedyResult:
    """Output of :func:`greedy_rotation`.

    Attributes
    ----------
    weights : ndarray, shape (n_envs, n_assets)
    codes : ndarray of int64, shape (n_envs, n_assets)
        :class:`GreedyCode` bits per symbol.
    ranks : ndarray of int64, shape (n_envs, n_assets)
        1-based rank by ``(-z, symbol index)``.
    """

    weights: np.ndarray
    codes: np.ndarray
    ranks: np.ndarray


def _ranking(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(score, order, ranks)`` of each row of ``z``: NaN scored -inf (no score ranks
    last), names sorted best first (stable: equal scores keep symbol-index order), and each
    name's 1-based rank."""
    score = np.where(np.isnan(z), -np.inf, z)
    order = np.argsort(-score, axis=1, kind="stable")
    ranks = np.empty(score.shape, dtype=np.int64)
    ranks[np.arange(score.shape[0])[:, None], order] = np.arange(1, score.shape[1] + 1)
    return score, order, ranks


def _cut(
    held: np.ndarray, ranks: np.ndarray, score: np.ndarray, params: GreedyConfig
) -> np.ndarray:
    """Rule 1's cut of a held name: ranked past ``K_sell`` and scored below ``z_cut``."""
    return held & (ranks > params.K_sell) & (score < params.z_cut)


def greedy_rotation(
    z: np.ndarray,
    w_cur: np.ndarray,
    costs: np.ndarray,
    params: GreedyConfig,
    exits: np.ndarray | None = None,
    blocked: np.ndarray | None = None,
) -> GreedyResult:
    """Apply the greedy top-K rules to a batch of books.

    Parameters
    ----------
    z : ndarray, shape (n_envs, n_assets)
        Risk-scaled scores; NaN means "no score" (ranked last, never bought).
    w_cur : ndarray, shape (n_envs, n_assets)
        Current weights (fractions of equity).
    costs : ndarray, shape (n_envs, n_assets)
        Cost per unit of weight traded (decimal).
    params : GreedyConfig
    exits : ndarray of int64, shape (n_envs, n_assets), optional
        Forced exits: a held name with a non-zero entry (its :class:`GreedyCode`, e.g.
        ``ATR_EXIT``) is cut to 0 with that code before the rules and is not bought back.
    blocked : ndarray of int64, shape (n_envs, n_assets), optional
        Names that may not be bought (non-zero entry: ``ILLIQUID`` / ``CORRELATED``); an
        unheld blocked name keeps that code, a held one is left to the rules.

    Returns
    -------
    GreedyResult
    """
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    w_cur = np.atleast_2d(np.asarray(w_cur, dtype=np.float64))
    costs = np.broadcast_to(np.asarray(costs, dtype=np.float64), z.shape)
    if z.shape != w_cur.shape:
        raise DataError(f"greedy: scores shape {z.shape} != current weights shape {w_cur.shape}.")
    n_envs, n = z.shape
    if n == 0:
        empty = np.zeros((n_envs, 0), dtype=np.int64)
        return GreedyResult(weights=np.zeros((n_envs, 0)), codes=empty, ranks=empty.copy())
    rows = np.arange(n_envs)[:, None]
    score, order, ranks = _ranking(z)

    # Rules 1 and 2: forced exits and cuts; every other held name is kept.
    held = w_cur > 0
    short = w_cur < 0
    forced = np.zeros((n_envs, n), dtype=np.int64) if exits is None else np.asarray(exits)
    no_buy = np.zeros((n_envs, n), dtype=np.int64) if blocked is None else np.asarray(blocked)
    exited = held & (forced != 0)
    cut = _cut(held, ranks, score, params) | short
    kept = held & ~cut & ~exited
    free = np.maximum(params.K - kept.sum(axis=1), 0)

    # Rule 3: candidates fill the free slots in rank order; the rest may rotate in.
    candidate = ~held & ~short & (no_buy == 0) & (ranks <= params.K_buy) & (score > params.z_keep)
    candidate_sorted = candidate[rows, order]
    candidate_num = np.cumsum(candidate_sorted, axis=1)
    buy_sorted = candidate_sorted & (candidate_num <= free[:, None])
    w_t = params.budget / params.K
    leftover_sorted = candidate_sorted & ~buy_sorted
    rotation = _rotations(
        score, w_cur, costs, params, order, kept, leftover_sorted, candidate_num, free
    )

    weights = np.where(kept, w_cur, 0.0)
    codes = np.zeros((n_envs, n), dtype=np.int64)
    codes[kept] = GreedyCode.HOLD
    codes[cut & ~exited] = GreedyCode.CUT
    codes[exited] = forced[exited]
    unheld_blocked = ~held & ~short & (no_buy != 0)
    codes[unheld_blocked] = no_buy[unheld_blocked]
    buy_env, buy_pos = np.nonzero(buy_sorted)
    buy_sym = order[buy_env, buy_pos]
    weights[buy_env, buy_sym] = w_t
    codes[buy_env, buy_sym] = GreedyCode.BUY
    rot_env, sym_in, sym_out = rotation
    weights[rot_env, sym_out] = 0.0
    weights[rot_env, sym_in] = w_t
    codes[rot_env, sym_out] = GreedyCode.ROTATE
    codes[rot_env, sym_in] = GreedyCode.ROTATE
    return GreedyResult(weights=weights, codes=codes, ranks=ranks)


def _rotations(
    score: np.ndarray,
    w_cur: np.ndarray,
    costs: np.ndarray,
    params: GreedyConfig,
    order: np.ndarray,
    kept: np.ndarray,
    leftover_sorted: np.ndarray,
    candidate_num: np.ndarray,
    free: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rule 4: the rotations that pass the score-gap and utility tests.

    The m-th leftover candidate (``leftover_sorted``, in rank order: best first; the
    ``free`` candidates numbered before it by ``candidate_num`` were bought) is paired
    with the m-th weakest kept name. Returns the portfolio row, the incoming and the
    outgoing symbol of each rotation, each shape (n_rotations,).
    """
    n_envs, n = score.shape
    rows = np.arange(n_envs)[:, None]
    order_rev = order[:, ::-1]
    kept_rev = kept[rows, order_rev]
    kept_num = np.cumsum(kept_rev, axis=1)
    n_candidates = candidate_num[:, -1]
    n_pairs = np.minimum(n_candidates - np.minimum(n_candidates, free), kept_num[:, -1])
    in_sym = np.full((n_envs, n), -1, dtype=np.intp)
    out_sym = np.full((n_envs, n), -1, dtype=np.intp)
    env, pos = np.nonzero(leftover_sorted)
    in_sym[env, candidate_num[env, pos] - free[env] - 1] = order[env, pos]
    env, pos = np.nonzero(kept_rev)
    out_sym[env, kept_num[env, pos] - 1] = order_rev[env, pos]

    w_t = params.budget / params.K
    pair_ok = np.arange(n)[None, :] < n_pairs[:, None]
    env, pair = np.nonzero(pair_ok)
    j_in, j_out = in_sym[env, pair], out_sym[env, pair]
    z_in, z_out = score[env, j_in], score[env, j_out]
    w_out = w_cur[env, j_out]
    utility = (
        z_in * w_t
        - z_out * w_out
        - params.gamma_cost * (costs[env, j_in] * w_t + costs[env, j_out] * w_out)
    )
    rotate = (z_in - z_out >= params.delta_z_min) & (utility > params.tau_utility)
    return env[rotate], j_in[rotate], j_out[rotate]


def merged_zscores(returns: np.ndarray, params: GreedyConfig) -> np.ndarray:
    """Risk-scaled momentum z-scores merged across ``params.score_horizons``.

    Parameters
    ----------
    returns : ndarray, shape (n_envs, lookback, n_assets)
        Simple returns, the last row being the decision bar; NaN = no price.
    params : GreedyConfig

    Returns
    -------
    ndarray, shape (n_envs, n_assets)
        The ``horizon_weights``-weighted mean of each horizon's cross-sectional z-score of
        ``sum(log(1 + r)) / (sigma sqrt(h))``, standardised again; NaN for a name without a
        full window of every horizon (never bought, ranked last).

    Raises
    ------
    DataError
        The returns are shorter than the longest horizon or ``vol_window``.
    """
    r = np.asarray(returns, dtype=np.float64)
    need = max(*params.score_horizons, params.vol_window)
    if r.ndim != 3 or r.shape[1] < need:
        raise DataError(
            f"greedy scores need {need} bars of returns (score_horizons "
            f"{list(params.score_horizons)}, vol_window {params.vol_window}); the context "
            f"has {r.shape[1] if r.ndim == 3 else r.shape}: raise baselines.lookback or "
            "shorten the horizons."
        )
    with np.errstate(invalid="ignore"):
        logr = np.log1p(r)
    sigma = np.std(logr[:, -params.vol_window :], axis=1, ddof=1)
    sigma = np.where(sigma > 0, sigma, np.nan)
    weights = np.asarray(params.horizon_weights, dtype=np.float64)
    merged = np.zeros(r.shape[::2])
    for h, weight in zip(params.score_horizons, weights / weights.sum(), strict=True):
        momentum = logr[:, -h:].sum(axis=1) / (sigma * np.sqrt(h))
        merged = merged + weight * _standardise(momentum)
    return _standardise(merged)


def _standardise(x: np.ndarray) -> np.ndarray:
    """Cross-sectional z-score over the finite entries of each row (NaN stays NaN)."""
    ok = np.isfinite(x)
    n = np.maximum(ok.sum(axis=1, keepdims=True), 1)
    mean = np.where(ok, x, 0.0).sum(axis=1, keepdims=True) / n
    dev = np.where(ok, x - mean, 0.0)
    sd = np.sqrt((dev * dev).sum(axis=1, keepdims=True) / n)
    z = np.divide(dev, sd, out=np.zeros_like(dev), where=sd > 0)
    return np.where(ok, z, np.nan)


class GreedyRotation:
    """The greedy rotation engine as an :class:`~allocgym.allocator.Allocator`.

    The ATR exit and the dead-money timeout need each held name's entry bar, its return
    since entry and its high since entry; the engine keeps them per portfolio row between
    calls, updated from the returns of the bars since its previous decision. Names it
    finds held without an entry (the first decision, or a fill it did not propose) enter
    at the current bar. The state restarts when the batch size or the symbols change, or a
    decision bar is not after the previous one (a new walk); call :meth:`reset` to restart
    it explicitly.

    Parameters
    ----------
    params : GreedyConfig, optional

    Attributes
    ----------
    weights_ : ndarray, shape (n_envs, n_assets)
        Weights of the last :meth:`allocate` call.
    codes_ : ndarray of int64, shape (n_envs, n_assets)
        :class:`GreedyCode` bits of the last call.
    ranks_ : ndarray of int64, shape (n_envs, n_assets)
    scores_ : ndarray, shape (n_envs, n_assets)
        The z-scores the last call ranked on.
    """

    name = "greedy"
    keeps_state = True
    """Entries and bars held are kept per portfolio row across calls: a Rebalancer asks
    for all of this allocator's rows in one call (``allocgym.envs.context``)."""

    def __init__(self, params: GreedyConfig | None = None) -> None:
        self.params = params or GreedyConfig()
        self.reset()

    @classmethod
    def from_config(cls, cfg: GreedyConfig) -> GreedyRotation:
        return cls(cfg)

    def reset(self) -> None:
        """Forget every entry (the next decision starts a new walk)."""
        self._last_t: np.ndarray | None = None
        self._symbols: tuple[str, ...] = ()
        self._entry_t = np.zeros((0, 0), dtype=np.int64)
        self._since_entry = np.zeros((0, 0))  # log return since entry
        self._high = np.zeros((0, 0))  # highest log return since entry
        self._symbols_seen: tuple[str, ...] = ()
        self._held_before = np.zeros((0, 0), dtype=bool)

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Greedy top-K weights from the context's returns (or ``ctx.scores`` when
        ``score_horizons`` is empty), ``ctx.current_weights`` and ``ctx.costs``.

        Returns
        -------
        ndarray, shape (ctx.n_envs, ctx.n_assets)
        """
        p = self.params
        if p.score_horizons:
            z = merged_zscores(ctx.returns, p)
        elif ctx.scores is None:
            raise DataError(
                "greedy rotation with no score_horizons needs ctx.scores (alpha z-scores); "
                "build the context with scores from allocgym.features.alpha_scores or set "
                "baselines.greedy.score_horizons."
            )
        else:
            z = np.asarray(ctx.scores, dtype=np.float64)
        costs = (
            ctx.costs
            if ctx.costs is not None
            else np.full(ctx.current_weights.shape, p.default_cost)
        )
        w_cur = np.asarray(ctx.current_weights, dtype=np.float64)
        exits = self._exits(ctx, w_cur > 0)
        blocked = self._illiquid(ctx)
        if p.max_pair_correlation is not None:
            blocked = blocked | self._correlated(ctx, z, w_cur, exits, blocked)
        result = greedy_rotation(z, w_cur, costs, p, exits=exits, blocked=blocked)
        self._enter(ctx, result.weights > 0)
        self.weights_, self.codes_, self.ranks_, self.scores_ = (
            result.weights, result.codes, result.ranks, z,
        )  # fmt: skip
        self._symbols_seen = ctx.symbols
        self._held_before = w_cur > 0
        return result.weights

    def _bars(self, ctx: AllocationContext) -> np.ndarray:
        if ctx.t is not None:
            return np.asarray(ctx.t, dtype=np.int64)
        # Without bar indices each call counts as the next bar.
        last = -1 if self._last_t is None else int(self._last_t.max())
        return np.full(ctx.n_envs, last + 1, dtype=np.int64)

    def _exits(self, ctx: AllocationContext, held: np.ndarray) -> np.ndarray:
        """ATR and dead-money exit codes of the held names, after updating their paths."""
        p = self.params
        t = self._bars(ctx)
        n_envs, n = held.shape
        fresh = (
            self._last_t is None
            or self._last_t.shape != (n_envs,)
            or self._symbols != tuple(ctx.symbols)
            or bool((t <= self._last_t).any())
        )
        if fresh:
            self._entry_t = np.full((n_envs, n), -1, dtype=np.int64)
            self._since_entry = np.zeros((n_envs, n))
            self._high = np.zeros((n_envs, n))
            dt = np.ones(n_envs, dtype=np.int64)
        else:
            assert self._last_t is not None
            dt = t - self._last_t
            self._advance(np.asarray(ctx.returns, dtype=np.float64), dt)
        self._symbols = tuple(ctx.symbols)
        self._last_t = t.copy()
        # Held names without an entry enter now; names no longer held are forgotten.
        new = held & (self._entry_t < 0)
        self._entry_t[new] = np.broadcast_to(t[:, None], held.shape)[new]
        gone = ~held
        self._entry_t[gone] = -1
        self._since_entry[gone | new] = 0.0
        self._high[gone | new] = 0.0

        exits = np.zeros((n_envs, n), dtype=np.int64)
        if p.dead_money_bars is not None:
            age = t[:, None] - self._entry_t
            stale = held & (age >= p.dead_money_bars)
            no_progress = np.expm1(self._since_entry) <= p.dead_money_min_return
            exits[stale & no_progress] = GreedyCode.DEAD_MONEY
        if p.atr_multiple is not None:
            moves = np.abs(np.asarray(ctx.returns, dtype=np.float64)[:, -p.atr_window :])
            seen = np.isfinite(moves)
            n_seen = np.maximum(seen.sum(axis=1), 1)
            atr = np.where(seen, moves, 0.0).sum(axis=1) / n_seen * np.sqrt(dt)[:, None]
            with np.errstate(invalid="ignore"):
                stop = np.log1p(-np.minimum(p.atr_multiple * atr, 1.0 - 1e-12))
                # no range (a window of zero returns, e.g. a halt) is no stop: a stop of 0
                # had cut every held name at its high
                hit = held & (atr > 0.0) & (self._since_entry - self._high <= stop)
            exits[hit] = GreedyCode.ATR_EXIT
        return exits

    def _advance(self, returns: np.ndarray, dt: np.ndarray) -> None:
        """Add the bars since the previous decision to every entry's path."""
        lookback = returns.shape[1]
        if int(dt.max()) > lookback:
            raise DataError(
                f"greedy: {int(dt.max())} bars since the previous decision but the context "
                f"carries {lookback}: raise baselines.lookback to at least "
                "baselines.rebalance_every."
            )
        with np.errstate(invalid="ignore"):
            logr = np.nan_to_num(np.log1p(returns), nan=0.0)
        for row, k in enumerate(dt):
            path = self._since_entry[row] + np.cumsum(logr[row, lookback - int(k) :], axis=0)
            self._high[row] = np.maximum(self._high[row], path.max(axis=0))
            self._since_entry[row] = path[-1]

    def _enter(self, ctx: AllocationContext, target: np.ndarray) -> None:
        """Names bought now enter at this bar. Names sold leave at the next decision that
        finds them gone from the book (:meth:`_exits`), not now: a sale the gates held
        back (a halt, a turnover cap) keeps its entry, its clock and its path, where
        forgetting it here had restarted its entry at the next decision."""
        assert self._last_t is not None  # set by _exits earlier in the same call
        t = self._last_t
        new = target & (self._entry_t < 0)
        self._entry_t[new] = np.broadcast_to(t[:, None], target.shape)[new]
        self._since_entry[new] = 0.0
        self._high[new] = 0.0

    def _illiquid(self, ctx: AllocationContext) -> np.ndarray:
        """ILLIQUID codes: ADV below the floor or spread above the cap."""
        p = self.params
        out = np.zeros(ctx.current_weights.shape, dtype=np.int64)
        checks = (
            ("adv_notional", p.min_adv_notional > 0, "min_adv_notional"),
            ("spread_bps", p.max_spread_bps is not None, "max_spread_bps"),
        )
        for attr, active, key in checks:
            if active and getattr(ctx, attr) is None:
                raise DataError(
                    f"greedy liquidity filter: baselines.greedy.{key} is set but the "
                    f"context has no {attr}; build it with "
                    f"allocgym.envs.context.allocation_context or disable the filter "
                    f"({key}: {'0' if key == 'min_adv_notional' else 'null'})."
                )
        if p.min_adv_notional > 0:
            adv = np.asarray(ctx.adv_notional, dtype=np.float64)
            out[~(adv >= p.min_adv_notional)] = GreedyCode.ILLIQUID
        if p.max_spread_bps is not None:
            spread = np.asarray(ctx.spread_bps, dtype=np.float64)
            out[~(spread <= p.max_spread_bps)] = GreedyCode.ILLIQUID
        return out

    def _correlated(
        self,
        ctx: AllocationContext,
        z: np.ndarray,
        w_cur: np.ndarray,
        exits: np.ndarray,
        blocked: np.ndarray,
    ) -> np.ndarray:
        """CORRELATED codes: candidates screened in rank order against the book."""
        p = self.params
        assert p.max_pair_correlation is not None
        returns = np.asarray(ctx.returns, dtype=np.float64)[:, -p.corr_window :]
        out = np.zeros(w_cur.shape, dtype=np.int64)
        score, ranked, ranks = _ranking(z)
        # screened against the names this decision keeps: not the ones it cuts or exits
        kept = (w_cur > 0) & (exits == 0) & ~_cut(w_cur > 0, ranks, score, p)
        for row in range(w_cur.shape[0]):
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = np.corrcoef(np.nan_to_num(returns[row]), rowvar=False)
            corr = np.nan_to_num(np.atleast_2d(corr), nan=0.0)
            book = list(np.flatnonzero(kept[row]))
            for j in ranked[row, : p.K_buy]:
                if w_cur[row, j] != 0 or blocked[row, j] or not score[row, j] > p.z_keep:
                    continue
                if book and corr[j, book].max() > p.max_pair_correlation:
                    out[row, j] = GreedyCode.CORRELATED
                elif len(book) < p.K:
                    book.append(j)
        return out

    def selection_records(self) -> list[dict[str, Any]]:
        """Per portfolio of the last :meth:`allocate` call, the names selected and exited.

        Each record is the allocator's decision, before the gates and the fill: a name
        the gates keep (a halt, a trade limit) or an order cancelled at the fill still
        shows as exited, a buy that did not fill as selected (the walk's weights say what
        was held). ``selected`` (names bought or rotated in), ``exited`` (name -> reason:
        ``cut``, ``rotated_out``, ``atr_exit``, ``dead_money``), ``blocked`` (name ->
        ``illiquid`` / ``correlated``, candidates the filters kept out) and ``held`` (the
        names of its target book).
        """
        records = []
        symbols = self._symbols_seen
        for row in range(self.codes_.shape[0]):
            codes, w, before = self.codes_[row], self.weights_[row], self._held_before[row]
            selected = [symbols[j] for j in np.flatnonzero((w > 0) & ~before)]
            exited = {
                symbols[j]: EXIT_REASONS.get(int(codes[j]), "cut")
                for j in np.flatnonzero(before & (w == 0))
            }
            blocked = {
                symbols[j]: "illiquid" if codes[j] == GreedyCode.ILLIQUID else "correlated"
                for j in np.flatnonzero(
                    ~before & ((codes == GreedyCode.ILLIQUID) | (codes == GreedyCode.CORRELATED))
                )
                if self.ranks_[row, j] <= self.params.K_buy
            }
            records.append(
                {
                    "selected": selected,
                    "exited": exited,
                    "blocked": blocked,
                    "held": [symbols[j] for j in np.flatnonzero(w > 0)],
                }
            )
        return records
