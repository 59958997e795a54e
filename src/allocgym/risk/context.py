"""What the gates read and write: ``GateContext`` (inputs) and its one builder
``bar_gate_context``, ``GateResult`` (outputs), the cached sector map, and the
per-decision ``Bounds`` of the hard limits with the ``Book`` the gates reshape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from allocgym.data import NO_SECTOR
from allocgym.errors import RequestError
from allocgym.ranges import RANGES

if TYPE_CHECKING:
    pass


@dataclass(frozen=True, eq=False)
class GateContext:
    """Everything the gates know about the decision, batched over ``n_envs`` portfolios.

    Attributes
    ----------
    current_weights : ndarray, shape (n_envs, n_assets)
        Book before the decision, signed fractions of equity.
    equity : ndarray, shape (n_envs,)
        Equity in currency (> 0; a non-finite or non-positive equity, like a non-finite
        current book, makes the portfolio unreadable: approved flat, ``INVALID_INPUT``).
    prices : ndarray, shape (n_envs, n_assets)
        Last prices (> 0 where tradable).
    adv_notional : ndarray, shape (n_envs, n_assets)
        Average daily traded notional in currency.
    volatility : ndarray, shape (n_envs, n_assets)
        Daily return volatility (decimal).
    spread_bps : ndarray, shape (n_envs, n_assets)
        Quoted spread in bps.
    sector_ids : ndarray of int, shape (n_assets,)
        Sector of each name, ``0..n_sectors-1``; ``NO_SECTOR`` (-1) = the data has no
        sector for the name, and the sector cap does not apply to it.
    regime : ndarray of int, shape (n_envs,)
        Codes into ``REGIME_LABELS``; -1 = unknown label (default multipliers).
    tradable : ndarray of bool, shape (n_envs, n_assets)
        A symbol whose price (<= 0 or non-finite), ADV, volatility or spread (negative or
        non-finite) is unusable is treated as not tradable as well.
    betas : ndarray, shape (n_envs, n_assets), optional
        Betas to the benchmark (needed when the beta gate is on; a non-finite beta or
        one above 1e6 in magnitude makes the portfolio unreadable: approved flat).
    kill_switch : ndarray of bool, shape (n_envs,), optional
        Per-decision kill flag, OR-ed with ``RiskLimits.kill_switch``.
    reduce_only : ndarray of bool, shape (n_envs,), optional
        Per-decision reduce-only flag, OR-ed with ``RiskLimits.reduce_only``.
    strategy_weights : ndarray, shape (n_envs, n_strategies, n_assets), optional
        Each strategy family's contribution to the proposal (budgets mode); the
        STRATEGY_CAP gate scales families whose gross contribution exceeds the cap.
    factor_loadings : ndarray, shape (n_envs, n_assets, n_factors), optional
        Factor loadings ``B`` of each portfolio's universe (one (n_assets, n_factors)
        matrix is broadcast to every portfolio); needed when the factor gate is on
        (``risk.max_factor_exposure``), ignored otherwise. A non-finite loading or one
        above 1e6 in magnitude makes the portfolio unreadable: approved flat.
    recent_fills : ndarray, shape (n_envs, n_assets), optional
        Notional (currency, >= 0) already traded in each symbol in the current bar, before
        this decision: ``sum |qty x price|`` of the bar's fills (:func:`fill_notional`
        builds it from ``Fill`` records). The current book already holds these fills;
        they count against the bar's participation and turnover limits (portfolio-wide
        and per symbol), so the room left for the new trade shrinks by what traded.
        ``None``: nothing traded yet.
    """

    current_weights: np.ndarray
    equity: np.ndarray
    prices: np.ndarray
    adv_notional: np.ndarray
    volatility: np.ndarray
    spread_bps: np.ndarray
    sector_ids: np.ndarray
    regime: np.ndarray
    tradable: np.ndarray
    betas: np.ndarray | None = None
    kill_switch: np.ndarray | None = None
    reduce_only: np.ndarray | None = None
    strategy_weights: np.ndarray | None = None
    factor_loadings: np.ndarray | None = None
    recent_fills: np.ndarray | None = None

    def rows(self, idx: np.ndarray, regime: np.ndarray | None = None) -> GateContext:
        """The context of portfolios ``idx`` only (fields given for the whole batch are
        selected, broadcast ones kept); ``regime``: other regime codes for them."""
        n = np.asarray(self.current_weights).shape[0]

        def take(value: Any, batch_ndim: int = 1) -> Any:
            if value is None:
                return None
            arr = np.asarray(value)
            batched = arr.ndim >= batch_ndim and arr.shape[0] == n
            return arr[idx] if arr.ndim and batched else value

        picked = {
            f.name: take(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("sector_ids", "regime", "factor_loadings", "recent_fills")
        }
        # one (n_assets, n_factors) matrix is shared, even when n_assets == n_envs
        picked["factor_loadings"] = take(self.factor_loadings, batch_ndim=3)
        picked["recent_fills"] = take(self.recent_fills, batch_ndim=2)
        codes = take(self.regime) if regime is None else regime
        return GateContext(sector_ids=self.sector_ids, regime=codes, **picked)


class BarFeatures(Protocol):
    """The features a decision's gates read (``allocgym.features.MarketFeatures``), one
    row per bar (or per portfolio)."""

    adv_notional: np.ndarray
    volatility: np.ndarray
    betas: np.ndarray
    regime: np.ndarray


def bar_gate_context(
    shares: np.ndarray,
    equity: np.ndarray,
    prices: np.ndarray,
    spread_bps: np.ndarray,
    tradable: np.ndarray,
    features: BarFeatures,
    sector_ids: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    regime: np.ndarray | None = None,
    kill_switch: np.ndarray | None = None,
    reduce_only: np.ndarray | None = None,
    strategy_weights: np.ndarray | None = None,
    factor_loadings: np.ndarray | None = None,
    recent_fills: np.ndarray | None = None,
) -> GateContext:
    """The ``GateContext`` of decisions at one bar: the one builder of the environment,
    the baselines' backtests and the serving path, so the gates see the same inputs in
    all of them.

    Parameters
    ----------
    shares : ndarray, shape (n_envs, n_assets)
        Held quantities; the book is ``shares x prices / equity``.
    equity : ndarray, shape (n_envs,)
    prices, spread_bps, tradable : ndarray, shape (n_envs, n_assets) or (n_assets,)
        Market data at the bar (data up to and including it).
    features : BarFeatures
        ADV notional, volatility, betas and regime codes per row.
    sector_ids : ndarray of int, shape (n_assets,)
    rows : ndarray of int, shape (n_envs,), optional
        The feature row of each portfolio (its bar); ``None``: ``features`` has one row
        per portfolio already.
    regime : ndarray of int, shape (n_envs,), optional
        Regime codes to gate with (an override); ``None``: the features' codes.
    kill_switch, reduce_only, strategy_weights : optional
        As in ``GateContext``.
    factor_loadings : ndarray, shape (n_rows, n_assets, n_factors), optional
        Loadings per feature row (taken at ``rows`` like the features); ``None`` when the
        factor gate is off.
    recent_fills : ndarray, shape (n_envs, n_assets), optional
        Notional already traded per symbol in the bar (``GateContext.recent_fills``).
    """

    def at(table: np.ndarray) -> np.ndarray:
        return table if rows is None else table.take(rows, axis=0)

    codes = at(features.regime).astype(np.int64) if regime is None else regime
    return GateContext(
        current_weights=shares * prices / equity[:, None],
        equity=equity,
        prices=prices,
        adv_notional=at(features.adv_notional),
        volatility=at(features.volatility),
        spread_bps=spread_bps,
        sector_ids=sector_ids,
        regime=codes,
        tradable=tradable,
        betas=at(features.betas),
        kill_switch=kill_switch,
        reduce_only=reduce_only,
        strategy_weights=strategy_weights,
        factor_loadings=None if factor_loadings is None else at(factor_loadings),
        recent_fills=recent_fills,
    )


class Fill(NamedTuple):
    """One fill already executed in the current bar (an input of ``fill_notional``)."""

    symbol: str
    qty: float
    """Signed quantity in shares (a buy > 0, a sell < 0)."""
    price: float
    """Fill price per share (currency)."""
    time: dt.datetime
    """When it executed (naive = UTC)."""


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)


def fill_notional(
    fills: Sequence[Fill],
    symbols: Sequence[str],
    bar_start: dt.datetime,
    bar_end: dt.datetime | None = None,
) -> np.ndarray:
    """Notional already traded per symbol in the current bar: ``sum |qty x price|`` over
    each symbol's fills (a buy and a sell both use up the bar's volume), the
    ``GateContext.recent_fills`` row of one portfolio.

    Parameters
    ----------
    fills : sequence of Fill
    symbols : sequence of str
        The universe, in column order.
    bar_start : datetime
        Start of the current bar (the decision bar's timestamp; naive = UTC): an earlier
        fill belongs to another bar.
    bar_end : datetime, optional
        Latest time a fill of the bar can have (e.g. the decision's clock); ``None``: no
        upper bound.

    Returns
    -------
    ndarray, shape (n_assets,)
        Currency; 0 for symbols without fills.

    Raises
    ------
    RequestError
        A fill of a symbol outside ``symbols``, a non-finite quantity or one beyond the
        physical position range, a price that is non-finite or outside the price range,
        or a time outside ``[bar_start, bar_end]``, or a symbol whose fills trade more
        notional than the ADV range holds; the message names the fill and value.
    """
    column = {s: j for j, s in enumerate(symbols)}
    start = _utc(bar_start)
    end = None if bar_end is None else _utc(bar_end)
    notional = np.zeros(len(column))
    for k, fill in enumerate(fills):
        where = f"recent_fills[{k}] ({fill.symbol!r})"
        j = column.get(fill.symbol)
        if j is None:
            raise RequestError(
                f"{where}: symbol {fill.symbol!r} is not in the universe: send fills of "
                f"{list(symbols)[:5]}{'...' if len(column) > 5 else ''} only"
            )
        if RANGES["position"].outside(fill.qty):
            raise RequestError(
                f"{where}: qty = {fill.qty!r} must be finite shares in {RANGES['position']}"
            )
        if RANGES["price"].outside(fill.price):
            raise RequestError(
                f"{where}: price = {fill.price!r} must be a finite price in {RANGES['price']}"
            )
        when = _utc(fill.time)
        if when < start or (end is not None and when > end):
            bound = f"[{start.isoformat()}, {'...' if end is None else end.isoformat()}]"
            raise RequestError(
                f"{where}: time {when.isoformat()} is outside the current bar {bound}: send "
                "only fills executed in the bar being decided"
            )
        notional[j] += abs(fill.qty * fill.price)
        if RANGES["adv_notional"].outside(notional[j]):
            raise RequestError(
                f"{where}: the fills of {fill.symbol!r} reach a notional of {notional[j]:.6g}, "
                f"outside {RANGES['adv_notional']}: no bar trades that much; check qty "
                "and price"
            )
    return notional


@dataclass(frozen=True, eq=False)
class GateResult:
    """Output of ``RiskGateChain.apply``.

    Attributes
    ----------
    approved : ndarray, shape (n_envs, n_assets)
        Approved weights; every hard invariant holds.
    symbol_reasons : ndarray of int64, shape (n_envs, n_assets)
        ``ReasonCode`` bitmask per symbol.
    portfolio_reasons : ndarray of int64, shape (n_envs,)
        ``ReasonCode`` bitmask per portfolio (OR of portfolio-level gates that acted).
    clipped : dict of str to ndarray, shape (n_envs,)
        L1 weight removed by each gate, keyed by the gate's ``ReasonCode`` name (one
        entry per code in ``GATE_CODES``, zeros where the gate did not act; the
        ``FACTOR_CAP`` entry only while the factor limit is on). Entries
        beyond +-1e150 count as 1e150 and NaN as 0; ``FORCED_DERISK`` holds the L1 of the
        move that brought the current book back inside the hard limits.
    proposed : ndarray, shape (n_envs, n_assets)
        The proposal as received (NaN/inf included), for audit.
    strategy_scale : ndarray, shape (n_envs, n_strategies), optional
        Scale applied to each strategy family by STRATEGY_CAP (budgets mode).
    strategy_budget : StrategyBudgetTrace, optional
        Each family's budget, step by step, and its share of the approved book (budgets
        mode; ``None`` without strategy contributions).
    """

    approved: np.ndarray
    symbol_reasons: np.ndarray
    portfolio_reasons: np.ndarray
    clipped: dict[str, np.ndarray]
    proposed: np.ndarray
    strategy_scale: np.ndarray | None = None
    strategy_budget: StrategyBudgetTrace | None = None


@dataclass(frozen=True, eq=False)
class StrategyBudgetTrace:
    """The per-strategy budget trace of a batch of decisions (budgets mode): each family's
    budget as the design builds it, base -> regime -> capacity, then what the approved
    book holds of it. Every array has shape (n_envs, n_strategies), fractions of equity.

    Attributes
    ----------
    base : ndarray
        The configured base budget (``risk.strategy_budgets``).
    regime : ndarray
        ``base x regime budget multiplier x regime tilt`` of the decision's regime.
    capacity : ndarray
        ``regime x capacity factor`` (spread, volatility, liquidity of the family's names):
        the budget ``STRATEGY_CAP`` enforces on the family's gross contribution.
    proposed : ndarray
        The family's gross contribution as proposed.
    approved : ndarray
        The approved (final) book attributed to the families: each name's ``|w_i|`` split
        in proportion to the families' ``|contribution|`` in it after ``STRATEGY_CAP``;
        a name no family holds (a position the trade limits kept) is split in proportion
        to the families' gross. The lines sum to the approved book's gross, except where
        no family holds anything (a rejected proposal, every budget in cash): the book
        is then attributed to no family and the lines are 0.
    """

    base: np.ndarray
    regime: np.ndarray
    capacity: np.ndarray
    proposed: np.ndarray
    approved: np.ndarray


class SectorMap:
    """Validated sector ids of a universe and their bincount bins per batch size (both
    static across decisions, so cached per membership).

    Names with the id ``NO_SECTOR`` (-1: the data has no sector for them) are summed into
    one extra bin that no limit reads, so the sector cap does not apply to them.
    """

    __slots__ = ("_bins", "_slot", "exempt", "ids", "n", "width")

    def __init__(self, ids: np.ndarray, n: int) -> None:
        self.ids = ids  # (n_assets,) int64, read-only; NO_SECTOR for names without one
        self.n = n
        self.exempt = bool(ids.size and ids.min() < 0)
        self.width = n + 1 if self.exempt else n  # bins per row (the last: no sector)
        self._slot = np.where(ids < 0, n, ids) if self.exempt else ids
        self._bins: dict[int, np.ndarray] = {}

    def bins(self, n_rows: int) -> np.ndarray:
        """Flat bins of an (n_rows, n_assets) array: ``row * width + sector``
        (cached for a few batch sizes)."""
        idx = self._bins.get(n_rows)
        if idx is None:
            idx = (np.arange(n_rows)[:, None] * self.width + self._slot[None, :]).ravel()
            idx.flags.writeable = False
            if len(self._bins) >= _BINS_CACHED:
                self._bins.clear()
            self._bins[n_rows] = idx
        return idx

    def sums(self, aw: np.ndarray) -> np.ndarray:
        """Per-sector sums of ``aw = |w|``, (n, n_sectors); bincount sums in a fixed order
        (no BLAS), so a row's bits do not depend on the batch it is in. Names without a
        sector are in no column."""
        n = aw.shape[0]
        sums = np.bincount(self.bins(n), weights=aw.ravel(), minlength=n * self.width)
        sums = sums.reshape(n, self.width)
        return sums[:, : self.n] if self.exempt else sums

    def spread(self, values: np.ndarray, fill: float = 1.0) -> np.ndarray:
        """Per-sector ``values`` (n, n_sectors) spread to their names (n, n_assets); names
        without a sector get ``fill``."""
        if not self.exempt:
            return values[:, self.ids]
        padded = np.concatenate([values, np.full((values.shape[0], 1), fill)], axis=1)
        return padded[:, self._slot]


MAX_SECTOR_ID = 65_535
"""Largest sector id the gates take (ids are 0..n_sectors-1)."""

_SECTOR_MAPS: dict[bytes, SectorMap] = {}
_BINS_CACHED = 8  # batch sizes whose bins a sector map keeps


def sector_map(sector_ids: Any, n_assets: int) -> SectorMap:
    """The (cached) sector map of ``sector_ids``, shape (n_assets,), validated.

    Raises
    ------
    RequestError
        Ids that are not integers of shape (n_assets,), below ``NO_SECTOR`` or above
        ``MAX_SECTOR_ID``.
    """
    ids = np.asarray(sector_ids)
    if ids.shape != (n_assets,) or ids.dtype.kind not in "iu":
        raise RequestError(
            f"GateContext.sector_ids has shape {ids.shape} dtype {ids.dtype}; "
            f"expected ({n_assets},) integers"
        )
    key = ids.dtype.str.encode() + ids.tobytes()
    hit = _SECTOR_MAPS.get(key)
    if hit is None:
        if n_assets and ids.min() < NO_SECTOR:
            raise RequestError(
                f"GateContext.sector_ids has ids below {NO_SECTOR}: use 0..n_sectors-1, or "
                f"{NO_SECTOR} (NO_SECTOR) for a name without a sector"
            )
        if n_assets and ids.max() > MAX_SECTOR_ID:
            # the gates keep a column per id up to the largest: 2**40 would not fit
            raise RequestError(
                f"GateContext.sector_ids has id {int(ids.max())}, above {MAX_SECTOR_ID}: "
                "number the sectors 0..n_sectors-1"
            )
        own = ids.astype(np.int64)
        own.flags.writeable = False
        hit = SectorMap(own, max(int(own.max()) + 1, 0) if own.size else 1)
        if len(_SECTOR_MAPS) >= 64:
            _SECTOR_MAPS.clear()
        _SECTOR_MAPS[key] = hit
    return hit


@dataclass(eq=False, slots=True)  # not frozen: a frozen __init__ is slow
class Bounds:
    """The hard limits of one batch of decisions in weight units (regime multipliers and
    equity applied), built from the registry's tables (``gates.registry.portfolio_bounds``).

    A bound that is off is ``None`` (``betas`` is ``None`` without a beta limit,
    ``loadings`` without a factor limit).
    """

    cap_pct: np.ndarray  # (n, 1): max_symbol_weight x capacity
    cap_notional: np.ndarray | None  # (n, 1): max_symbol_notional x capacity / equity
    sector_cap: float
    sectors: SectorMap
    net_cap: float
    betas: np.ndarray | None  # (n, N)
    beta_tol: float
    gross_cap: np.ndarray  # (n,): max_gross x budget
    notional_cap: np.ndarray | None  # (n,): max_gross_notional / equity
    long_only: bool
    loadings: np.ndarray | None = None  # (n, N, k): factor loadings B
    factor_cap: float = 0.0  # max_factor_exposure, applied to every factor

    def take(self, rows: np.ndarray | slice) -> Bounds:
        """These limits for rows ``rows`` (an index array, or a slice: views)."""
        cap_notional, betas = self.cap_notional, self.betas
        notional_cap, loadings = self.notional_cap, self.loadings
        return Bounds(
            cap_pct=self.cap_pct[rows],
            cap_notional=None if cap_notional is None else cap_notional[rows],
            sector_cap=self.sector_cap,
            sectors=self.sectors,
            net_cap=self.net_cap,
            betas=None if betas is None else betas[rows],
            beta_tol=self.beta_tol,
            gross_cap=self.gross_cap[rows],
            notional_cap=None if notional_cap is None else notional_cap[rows],
            long_only=self.long_only,
            loadings=None if loadings is None else loadings[rows],
            factor_cap=self.factor_cap,
        )

    def exposures(self, w: np.ndarray) -> np.ndarray:
        """(n, k) factor exposures ``B^T w`` per portfolio (elementwise products summed over
        the names: no BLAS, so a row's bits do not depend on its batch)."""
        assert self.loadings is not None
        return (self.loadings * w[:, :, None]).sum(axis=1)

    def gross_limit(self) -> np.ndarray:
        """(n,) the tighter of the gross cap and the gross notional cap per portfolio."""
        if self.notional_cap is None:
            return self.gross_cap
        return np.minimum(self.gross_cap, self.notional_cap)


class Book:
    """A batch of books ``w`` (n, N) as the hard gates reshape it, with ``|w|`` and the
    gross computed once and reused until a gate changes ``w``."""

    __slots__ = ("_aw", "_gross", "w")

    def __init__(self, w: np.ndarray) -> None:
        self.w = w
        self._aw: np.ndarray | None = None
        self._gross: np.ndarray | None = None

    @property
    def aw(self) -> np.ndarray:
        """``|w|``."""
        if self._aw is None:
            self._aw = np.abs(self.w)
        return self._aw

    @property
    def gross(self) -> np.ndarray:
        """``|w|.sum(axis=1)``, shape (n,)."""
        if self._gross is None:
            self._gross = self.aw.sum(axis=1)
        return self._gross

    def update(self, w: np.ndarray, aw: np.ndarray | None = None) -> None:
        """Replace the books (``aw``: their ``|w|`` when the caller has it)."""
        if w is not self.w:
            self.w, self._aw, self._gross = w, aw, None
