"""What an allocator sees and when it trades: one context builder, one rebalancing rule.

Evaluation's full-split walks (``allocgym.evaluation``) run every allocator, agents and
baselines alike, through this module, and the training-time validation episodes
(``allocgym.agents.validation``) run baselines through it, so the 1/N or HRP curve logged
during training is the same strategy as the row of the final evaluation table.

- :func:`allocation_context` builds the past-only ``AllocationContext`` of each portfolio
  at its decision bar ``t`` from the ``EnvParams`` arrays: trailing returns, the current
  (drifted) book, regime label and confidence, the regime model's barbell state, alpha
  scores, betas, linear cost rates, benchmark returns and ``t``; and, for agents, the
  env's observation, the tilt prior's book (``tilt`` mode) and the strategy intents
  (``budgets`` mode).
- :class:`Rebalancer` is the rebalancing rule: an allocator re-optimises at its episode's
  first decision and every ``rebalance_every`` decisions after it (an agent: every
  ``env.decision_interval`` bars); in between it proposes its current, drifted book (buy
  and hold), except that a rebalance cut short by a per-decision trade limit (turnover,
  participation, slippage budget) keeps proposing its target until a decision is no
  longer limited. This is the env's own rule for agents (``allocgym.execution.hold_rule``
  and ``next_working``). An allocator raising ``OptimizationError`` keeps its book for
  that rebalance and the failure is counted. With clock-time windows
  (:func:`window_bars`, ``schedule.windows``) an allocator re-optimises only at the bars
  inside a window instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from allocgym.allocator import BOOK_KEPT, AllocationContext, Allocator, source_of
from allocgym.costs import cost_terms
from allocgym.data import traded_window
from allocgym.envs import core
from allocgym.envs.core import EnvParams, EnvState
from allocgym.errors import ConfigError, OptimizationError
from allocgym.execution import TRADE_LIMITS, hold_rule, next_working
from allocgym.features import alpha_scores

if TYPE_CHECKING:
    from allocgym.config import ScheduleConfig

__all__ = ["TRADE_LIMITS", "Rebalancer", "allocation_context", "take_context", "window_bars"]


def _minutes(clock: str) -> int:
    hh, mm = clock.strip().split(":")
    return 60 * int(hh) + int(mm)


def window_bars(dates: np.ndarray, schedule: ScheduleConfig) -> np.ndarray | None:
    """Bars inside the clock-time trading windows, or None where windows do not apply.

    A window ``"HH:MM"`` marks the first bar of each exchange day at or after that time; a
    window ``"HH:MM-HH:MM"`` marks every bar from its start (inclusive) to its end
    (exclusive). Times are in ``schedule.exchange_timezone``; naive bar timestamps are read
    in ``schedule.bar_timezone``.

    Parameters
    ----------
    dates : ndarray of datetime64, shape (n_days,)
        Bar timestamps (``MarketData.dates``).
    schedule : ScheduleConfig

    Returns
    -------
    ndarray of bool, shape (n_days,), or None
        None when no windows are configured, or when every bar is at midnight (daily
        bars carry no time of day: the windows are ignored with a warning).
    """
    if not schedule.windows:
        return None
    stamps = pd.DatetimeIndex(np.asarray(dates, dtype="datetime64[ns]"))
    if (stamps == stamps.normalize()).all():
        warnings.warn(
            f"schedule.windows {list(schedule.windows)} ignored: the bars are daily (no time "
            "of day), so every decision keeps the baselines.rebalance_every rule; clock "
            "windows apply to intraday bars",
            UserWarning,
            stacklevel=2,
        )
        return None
    local = stamps.tz_localize(schedule.bar_timezone).tz_convert(schedule.exchange_timezone)
    minute = np.asarray(local.hour * 60 + local.minute)
    day = np.asarray(local.normalize().asi8)
    out = np.zeros(len(stamps), dtype=bool)
    for w in schedule.windows:
        if "-" in w:
            start, end = (_minutes(x) for x in w.split("-"))
            out |= (minute >= start) & (minute < end)
            continue
        at = minute >= _minutes(w)
        # First bar of each day at or after the time: at, and not at on the previous bar
        # of the same day.
        prev_same_day = np.r_[False, day[1:] == day[:-1]]
        prev_at = np.r_[False, at[:-1]]
        out |= at & ~(prev_same_day & prev_at)
    return out


def window_groups(t: np.ndarray, lookback: int) -> list[np.ndarray]:
    """Positions of ``t`` grouped so that each group's bars have the same history window,
    ``min(lookback, t + 1)`` bars: those with the full ``lookback`` together, each bar with
    fewer on its own (one :func:`allocation_context` clamps every row to its earliest)."""
    t = np.asarray(t, dtype=np.int64)
    short = t + 1 < lookback
    groups = [np.flatnonzero(short & (t == bar)) for bar in np.unique(t[short])]
    return [np.flatnonzero(~short), *groups] if not short.all() else groups


def allocation_context(
    params: EnvParams,
    state: EnvState,
    lookback: int,
    rows: np.ndarray | None = None,
    observation: np.ndarray | None = None,
) -> AllocationContext:
    """Past-only ``AllocationContext`` at each portfolio's decision bar, from env arrays.

    Parameters
    ----------
    params : EnvParams
    state : EnvState
        Portfolios at their decision bars ``state.t``.
    lookback : int
        Trailing bars of returns (clamped to the bars before the earliest selected ``t``:
        select rows of one :func:`window_groups` group for each row's own window).
    rows : ndarray of int, optional
        Portfolios of ``state`` to include (default all), in this order.
    observation : ndarray of float32, shape (state.n_envs, obs_dim), optional
        The env's observation of every portfolio of ``state`` (what ``core.reset`` /
        ``core.step`` returned with it); the context carries the selected rows.

    Returns
    -------
    AllocationContext
        ``returns`` (n, lookback, n_assets) with bar ``t`` last, 0 for a symbol that did
        not trade on every bar of its window (``allocgym.data.traded_window``);
        ``current_weights`` the
        held book marked at ``p_t``; ``regime`` / ``regime_confidence`` / ``barbell`` the
        regime model's label, confidence and barbell state at ``t``; ``scores`` from
        ``allocgym.features.alpha_scores``; ``betas`` the env's betas; ``costs`` the linear
        cost rate per unit of weight traded (commission + ``spread_mult`` x half-spread,
        ``allocgym.costs.cost_terms``; the impact part depends on the trade size);
        ``benchmark_returns`` (n, lookback); ``t`` (n,); ``adv_notional`` and
        ``spread_bps`` (n, n_assets) at ``t``; ``observation`` (n, obs_dim)
        when given; ``prior_weights`` the tilt prior's book at ``t`` (``tilt`` mode) and
        ``intents`` the strategy intents at ``t`` (``budgets`` mode), else None.
    """
    idx = np.arange(state.n_envs) if rows is None else np.asarray(rows, dtype=np.int64)
    t = state.t[idx]
    n_back = int(min(lookback, int(t.min()) + 1))
    win = t[:, None] + np.arange(-n_back + 1, 1)[None, :]
    feats = params.features.take(t)
    equity = state.equity[idx]
    linear, _ = cost_terms(
        np.ones((idx.size, params.n_assets)), equity, feats.adv_notional, feats.volatility,
        params.spread_bps[t], params.cost_model,
    )  # fmt: skip
    tradable = params.market.tradable
    return AllocationContext(
        returns=traded_window(
            params.returns[win], tradable[np.concatenate([np.maximum(win[:, :1] - 1, 0), win], 1)]
        ),
        current_weights=core.current_weights(params, state)[idx],
        symbols=params.market.symbols,
        sector_ids=params.sector_ids,
        regime=feats.regime.astype(np.int64),
        regime_confidence=feats.regime_confidence,
        scores=alpha_scores(feats),
        betas=feats.betas,
        costs=linear,
        benchmark_returns=params.market.benchmark_returns[win],
        t=t.copy(),
        barbell=feats.barbell.astype(np.int64),
        observation=None if observation is None else np.asarray(observation)[idx],
        prior_weights=None if params.prior_weights is None else params.prior_weights[t],
        intents=feats.intents if params.action_spec.mode == "budgets" else None,
        adv_notional=feats.adv_notional,
        spread_bps=params.spread_bps[t],
    )


def take_context(ctx: AllocationContext, rows: np.ndarray | Sequence[int]) -> AllocationContext:
    """Rows ``rows`` of a batched context as a context of ``len(rows)`` portfolios."""
    sel = np.asarray(rows, dtype=np.int64)

    def take(x: np.ndarray | None) -> np.ndarray | None:
        return None if x is None else x[sel]

    return AllocationContext(
        returns=ctx.returns[sel],
        current_weights=ctx.current_weights[sel],
        symbols=ctx.symbols,
        sector_ids=ctx.sector_ids,
        regime=ctx.regime[sel],
        regime_confidence=ctx.regime_confidence[sel],
        scores=take(ctx.scores),
        betas=take(ctx.betas),
        costs=take(ctx.costs),
        benchmark_returns=take(ctx.benchmark_returns),
        t=take(ctx.t),
        barbell=take(ctx.barbell),
        observation=take(ctx.observation),
        prior_weights=take(ctx.prior_weights),
        intents=take(ctx.intents),
        adv_notional=take(ctx.adv_notional),
        spread_bps=take(ctx.spread_bps),
    )


class Rebalancer:
    """The baselines' rebalancing rule for the portfolios of one batch.

    Parameters
    ----------
    allocators : sequence of Allocator or None, length n_envs
        The allocator of each portfolio; ``None`` marks a portfolio whose proposal comes
        from elsewhere (the training-time validation's agent) and is left alone.
        Portfolios sharing one allocator object are asked together in one ``allocate``
        call per history window: a portfolio with fewer than ``lookback`` bars behind it
        gets its own call with its own window, unless the allocator ``keeps_state`` per
        portfolio (greedy rotation's exits), which gets one call, every row clamped to
        the shortest window.
    rebalance_every : int or sequence of int (length n_envs)
        Decisions between re-optimisations (counted from each episode's first decision,
        ``EnvState.steps``), for all portfolios or per portfolio.
    lookback : int
        Trailing bars of returns in the context.
    windows : ndarray of bool, shape (n_days,), optional
        Clock-time trading windows per bar (:func:`window_bars`): when given, a portfolio
        re-optimises exactly at the bars inside a window and ``rebalance_every`` is not
        used.

    Attributes
    ----------
    rebalance_every : ndarray of int64, shape (n_envs,)
    held : ndarray, shape (n_envs, n_assets)
        Last target of each allocator portfolio.
    working : ndarray of bool, shape (n_envs,)
        Portfolios still trading towards their target.
    errors : ndarray of int64, shape (n_envs,)
        Rebalances where the allocator raised ``OptimizationError`` (the book was kept).
    sources : list of dict of str to int, length n_envs
        Per portfolio, rebalances by the stage that produced the weights: the allocator's
        ``source_`` entry when it has a fallback chain (``allocgym.allocator.source_of``),
        its name otherwise, and ``BOOK_KEPT`` where it raised.
    contributions, budgets : ndarray or None
        ``budgets``-mode agents (``PolicyAllocator.contributions_`` / ``budgets_``): the
        per-family contributions ``(n_envs, n_strategies, n_assets)`` and budgets
        ``(n_envs, n_strategies + 1)`` of each portfolio's last target; None until an
        allocator reports them.
    drifting : ndarray of bool, shape (n_envs,)
        Portfolios whose last :meth:`propose` is their current, drifted book (not due, not
        trading towards a target): the last target's ``contributions`` do not stand
        behind it, so a budgets-mode walk passes none (the strategy cap would cut the
        held book again).
    selections : list of list of dict, length n_envs
        Per portfolio, one selection-audit record per rebalance of an allocator that
        selects names (one with a ``selection_records()`` method: the cluster barbell,
        greedy rotation): ``bar``, ``date`` and the allocator's record for that portfolio.

    Notes
    -----
    Per decision: call :meth:`propose` before the env step and :meth:`after_step` with the
    step's ``portfolio_reasons`` after it. A batch call that raises ``OptimizationError``
    is retried portfolio by portfolio so that only the failing ones keep their book.
    """

    def __init__(
        self,
        allocators: Sequence[Allocator | None],
        *,
        rebalance_every: int | Sequence[int],
        lookback: int,
        windows: np.ndarray | None = None,
    ) -> None:
        self.allocators = list(allocators)
        n = len(self.allocators)
        every = np.broadcast_to(np.asarray(rebalance_every, dtype=np.int64), (n,)).copy()
        look = int(lookback)
        if (every < 1).any() or look < 1:
            raise ConfigError(
                f"Rebalancer rebalance_every = {every.tolist()}, lookback = {look}: both must "
                "be >= 1"
            )
        self.rebalance_every = every
        self.lookback = look
        self.windows = None if windows is None else np.asarray(windows, dtype=bool)
        self._mask = np.array([a is not None for a in self.allocators], dtype=bool)
        self.held: np.ndarray | None = None
        self.working = np.zeros(n, dtype=bool)
        self.errors = np.zeros(n, dtype=np.int64)
        self.sources: list[dict[str, int]] = [{} for _ in range(n)]
        self.contributions: np.ndarray | None = None
        self.budgets: np.ndarray | None = None
        self.drifting = np.zeros(n, dtype=bool)
        self.selections: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        self._dates: np.ndarray | None = None

    def _count(self, row: int, source: str) -> None:
        self.sources[row][source] = self.sources[row].get(source, 0) + 1

    @property
    def n_envs(self) -> int:
        return len(self.allocators)

    def _rows(self, state: EnvState, rows: np.ndarray | Sequence[int] | None) -> np.ndarray:
        idx = np.arange(self.n_envs) if rows is None else np.asarray(rows, dtype=np.int64)
        if idx.shape != (state.n_envs,):
            raise ConfigError(
                f"Rebalancer: {state.n_envs} portfolios in the state but rows has shape "
                f"{idx.shape}: pass the batch row of every portfolio of the state"
            )
        return idx

    def propose(
        self,
        params: EnvParams,
        state: EnvState,
        proposed: np.ndarray,
        rows: np.ndarray | Sequence[int] | None = None,
        observation: np.ndarray | None = None,
    ) -> np.ndarray:
        """Proposals with the allocator portfolios filled in by the rule.

        Parameters
        ----------
        params : EnvParams
        state : EnvState
            The portfolios about to be stepped.
        proposed : ndarray, shape (state.n_envs, n_assets)
            Proposals of the other (agent) portfolios; baseline rows are overwritten.
        rows : ndarray of int, shape (state.n_envs,), optional
            Batch row of each portfolio of ``state`` (default ``0 .. n_envs - 1``): a
            caller that stops stepping some portfolios passes the rows it still steps.
        observation : ndarray of float32, shape (state.n_envs, obs_dim), optional
            The env's observation of each portfolio of ``state`` (needed by agents).

        Returns
        -------
        ndarray, shape (state.n_envs, n_assets)
            A new array.
        """
        idx = self._rows(state, rows)
        out = np.array(proposed, dtype=np.float64, copy=True)
        if self.held is None:
            self.held = np.zeros((self.n_envs, params.n_assets))
        self._dates = params.market.dates
        base = self._mask[idx]
        if not base.any():
            return out
        if self.windows is None:
            is_due = base & (state.steps % self.rebalance_every[idx] == 0)
        else:
            is_due = base & self.windows[state.t]
        due = np.flatnonzero(is_due)
        fresh = self.held[idx]
        for rows in self._calls(due, state.t[due], idx):
            ctx = allocation_context(params, state, self.lookback, rows, observation)
            groups: dict[int, list[int]] = {}
            for pos, j in enumerate(rows):
                groups.setdefault(id(self.allocators[idx[j]]), []).append(pos)
            for pos in groups.values():
                alloc = self.allocators[idx[rows[pos[0]]]]
                assert alloc is not None
                fresh[rows[pos]] = self._allocate(alloc, ctx, pos, idx[rows[pos]])
        rule = hold_rule(
            is_due, fresh, fresh, self.working[idx], core.current_weights(params, state)
        )
        # proposing the drifted book: no strategy stands behind it this bar
        self.drifting[idx] = base & ~is_due & ~self.working[idx]
        self.held[idx[base]] = fresh[base]
        self.working[idx[due]] = True
        out[base] = rule[base]
        return out

    def _calls(self, due: np.ndarray, t: np.ndarray, idx: np.ndarray) -> list[np.ndarray]:
        """The due rows in groups of one context each: every row's own history window
        (:func:`window_groups`), except that an allocator keeping state per portfolio
        (``keeps_state``) gets all its rows in one call, clamped to the earliest's window."""
        windows = window_groups(t, self.lookback)
        if len(windows) <= 1:
            return [due[w] for w in windows]
        stateful = np.array(
            [getattr(self.allocators[idx[j]], "keeps_state", False) for j in due], dtype=bool
        )
        calls = [due[w[~stateful[w]]] for w in windows] + [due[stateful]]
        return [rows for rows in calls if rows.size]

    def _allocate(
        self, alloc: Allocator, ctx: AllocationContext, pos: list[int], batch_rows: np.ndarray
    ) -> np.ndarray:
        """Targets of context rows ``pos``; a failing row keeps its current book."""
        sub = take_context(ctx, pos)
        n = sub.n_assets
        try:
            out = np.asarray(alloc.allocate(sub), dtype=np.float64).reshape(len(pos), n)
        except OptimizationError:
            if len(pos) == 1:
                self.errors[batch_rows] += 1
                self._count(int(batch_rows[0]), BOOK_KEPT)
                return sub.current_weights.copy()
        else:
            for k, row in enumerate(batch_rows):
                self._count(int(row), source_of(alloc, k))
            self._keep_strategy_parts(alloc, batch_rows)
            self._keep_selections(alloc, sub, batch_rows)
            return out
        out = np.empty((len(pos), n))
        for k in range(len(pos)):
            one = take_context(sub, [k])
            try:
                out[k] = np.asarray(alloc.allocate(one), dtype=np.float64).reshape(n)
            except OptimizationError:
                self.errors[batch_rows[k]] += 1
                self._count(int(batch_rows[k]), BOOK_KEPT)
                out[k] = one.current_weights[0]
            else:
                self._count(int(batch_rows[k]), source_of(alloc, 0))
                self._keep_strategy_parts(alloc, batch_rows[k : k + 1])
                self._keep_selections(alloc, one, batch_rows[k : k + 1])
        return out

    def _keep_selections(
        self, alloc: Allocator, ctx: AllocationContext, batch_rows: np.ndarray
    ) -> None:
        """Append the selection-audit record of each row of a successful rebalance."""
        records = getattr(alloc, "selection_records", None)
        made = records() if callable(records) else None
        if made is None:  # no selection, or not this time (the engine's QP)
            return
        assert ctx.t is not None  # allocation_context always sets t
        for k, (row, rec) in enumerate(zip(batch_rows, made, strict=True)):
            bar = int(ctx.t[k])
            date = None if self._dates is None else str(self._dates[bar])[:19]
            self.selections[int(row)].append({"bar": bar, "date": date, **rec})

    def _keep_strategy_parts(self, alloc: Allocator, batch_rows: np.ndarray) -> None:
        """Keep the budgets and contributions a budgets-mode agent reported for its rows."""
        contributions = getattr(alloc, "contributions_", None)
        budgets = getattr(alloc, "budgets_", None)
        if contributions is None or budgets is None:
            return
        if self.contributions is None or self.budgets is None:
            self.contributions = np.zeros((self.n_envs, *contributions.shape[1:]))
            self.budgets = np.zeros((self.n_envs, budgets.shape[1]))
        self.contributions[batch_rows] = contributions
        self.budgets[batch_rows] = budgets

    def after_step(
        self,
        portfolio_reasons: np.ndarray,
        symbol_reasons: np.ndarray,
        rows: np.ndarray | Sequence[int] | None = None,
    ) -> None:
        """Keep working only where this decision was cut by a trade limit.

        Parameters
        ----------
        portfolio_reasons : ndarray of int64, shape (n,)
            ``info["portfolio_reasons"]`` of the step.
        symbol_reasons : ndarray of int64, shape (n, n_assets)
            ``info["symbol_reasons"]`` of the step (per-symbol trade limits).
        rows : ndarray of int, shape (n,), optional
            Batch rows of the stepped portfolios (as passed to :meth:`propose`).
        """
        idx = np.arange(self.n_envs) if rows is None else np.asarray(rows, dtype=np.int64)
        self.working[idx] &= next_working(
            None, self.working[idx], portfolio_reasons, symbol_reasons
        )
