"""Market data: the immutable ``MarketData`` type, its loaders, validation and splits.

Arrays are float64, time-first: ``close[t, i]`` is the close of symbol ``i`` at bar ``t``.
A symbol not yet listed has NaN closes in a leading stretch and ``tradable`` False there.
``window(t)`` is the past-only view used by everything that makes decisions at bar ``t``.

Sources: ``load_sp500`` (skfolio's bundled real S&P 500 sample), ``from_prices`` (wide
close prices or long OHLCV frames), ``from_csv``, ``from_parquet`` and the seeded
regime-switching ``synthetic`` generator; ``load_market`` dispatches on
``DataConfig.source``. Fields a source lacks are filled with documented defaults and
listed in ``MarketData.defaulted``:

- ``volume``: ``default_adv_notional / close`` (a constant traded notional per symbol);
- ``spread_bps``: ``default_spread_vol_mult`` x trailing 21-bar volatility of log returns
  in bps, clamped to ``[spread_floor_bps, spread_cap_bps]``;
- ``sectors``: ``"unknown"`` for every symbol;
- ``benchmark_returns``: the equal-weighted mean of the simple returns of the symbols
  listed at both ends of each bar.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from allocgym.config import DataConfig, SplitConfig, SyntheticConfig, load_yaml
from allocgym.errors import ConfigError, DataError, DataWarning
from allocgym.ranges import RANGES

if TYPE_CHECKING:
    from rich.console import RenderableType

    from allocgym.factors import FactorReturns

# GICS sectors of the 20 symbols in skfolio's S&P 500 sample. Source: S&P Dow Jones
# Indices' GICS classification as listed for S&P 500 constituents (Dec 2022); RRC (Range
# Resources) left the index in 2016 and keeps its GICS sector, Energy.
SP500_SECTORS: dict[str, str] = {
    "AAPL": "Information Technology",
    "AMD": "Information Technology",
    "BAC": "Financials",
    "BBY": "Consumer Discretionary",
    "CVX": "Energy",
    "GE": "Industrials",
    "HD": "Consumer Discretionary",
    "JNJ": "Health Care",
    "JPM": "Financials",
    "KO": "Consumer Staples",
    "LLY": "Health Care",
    "MRK": "Health Care",
    "MSFT": "Information Technology",
    "PEP": "Consumer Staples",
    "PFE": "Health Care",
    "PG": "Consumer Staples",
    "RRC": "Energy",
    "UNH": "Health Care",
    "WMT": "Consumer Staples",
    "XOM": "Energy",
}

# Names of the synthetic generator's true regimes, indexed by ``MarketData.regimes``.
SYNTHETIC_REGIMES: tuple[str, ...] = ("calm_trend", "mean_reverting", "high_vol_crash")

UNKNOWN_SECTOR = "unknown"
"""Sector label of symbols whose source gives none."""

NO_SECTOR = -1
"""``MarketData.sector_ids`` value of a symbol without a sector (label ``UNKNOWN_SECTOR``):
the per-sector gross cap does not apply to it (a missing sector is not one big sector)."""

DEFAULT_MOVE_BOUND = 0.5
"""|simple return| in one bar above which a move is listed as suspicious (``DataWarning``)
unless ``data.max_abs_return`` sets the bound (then such moves are refused)."""

_VOL_WINDOW = 21  # bars of the spread proxy's trailing volatility
_SHOW = 5  # offending symbols/dates quoted per error message


def simple_returns(close: np.ndarray, tradable: np.ndarray) -> np.ndarray:
    """Close-to-close simple returns along axis 0, 0 at row 0 and where a symbol is not
    tradable (or not finite) at either end.

    Parameters
    ----------
    close : ndarray, shape (n_days, n_assets)
    tradable : ndarray of bool, shape (n_days, n_assets)

    Returns
    -------
    ndarray, shape (n_days, n_assets)
        Row t depends on rows t-1 and t only, so a window gives the full series' bits.
    """
    c = np.asarray(close, dtype=np.float64)
    r = np.zeros_like(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        r[1:] = c[1:] / c[:-1] - 1.0
    r[~np.isfinite(r)] = 0.0
    r[1:][~(tradable[1:] & tradable[:-1])] = 0.0
    return r


TRADED_SHARE = 0.9
"""Share of a window's bars a symbol must have traded on (:func:`traded_window`)."""


def traded_window(returns: np.ndarray, tradable: np.ndarray) -> np.ndarray:
    """A window of :func:`simple_returns`, ``(..., L, N)``, with the column of every symbol
    that did not trade through it set to 0: not tradable on its last bar, or on fewer than
    ``TRADED_SHARE`` of its ``L + 1`` bars (``tradable`` ``(..., L + 1, N)``: the bar
    before the first return, then the window's).

    An allocator's estimators then see no variance and leave the symbol out, instead of
    reading the zeros before a listing or after a delisting as riskless observations
    (a name listed 20 bars ago had had an inverse-volatility weight of 0.17 among 20
    alike): a symbol enters once it has traded on nine tenths of its window. A halt over
    less than a tenth of the window leaves it in, wherever the halt falls, its halted
    bars' returns 0 (a one-bar halt had taken the symbol out of every allocator for a
    whole window; a market-wide one, every symbol, and HRP had raised).
    """
    t = np.asarray(tradable, dtype=bool)
    keep = t[..., -1:, :] & (t.mean(axis=-2, keepdims=True) >= TRADED_SHARE)
    return np.where(keep, returns, 0.0)


TRADING_DAYS = 252
"""Trading days a year: the bars a year of a daily calendar."""


def bars_per_year(dates: Any) -> float:
    """Bars a year of a bar calendar, the annualisation its returns need.

    ``TRADING_DAYS`` for daily bars (one bar a day), ``TRADING_DAYS`` x the bars of a
    full day for intraday bars (the most common count a day, the larger on a tie, so a
    walk's cut first and last days and half sessions do not lower it: 5-minute bars of a
    6.5-hour session give 19,656), and 365.25 over the median gap in days for sparser bars
    (weekly: 52.2). Fewer than two bars: daily.
    """
    days = np.asarray(dates, dtype="datetime64[ns]").astype("datetime64[D]")
    if days.size < 2:
        return float(TRADING_DAYS)
    counts, days_with = np.unique(np.unique(days, return_counts=True)[1], return_counts=True)
    per_day = int(counts[days_with == days_with.max()].max())
    if per_day > 1:
        return float(TRADING_DAYS * per_day)
    gap = float(np.median(np.diff(days).astype(np.float64)))
    # a weekend or holiday gap is still a daily bar
    return float(TRADING_DAYS) if gap < 5.0 else 365.25 / gap


def _frozen(a: Any, dtype: Any) -> np.ndarray:
    # C order whatever the source (pandas hands over column-major arrays): every reader
    # gathers bars (rows), and numpy's ``take`` copies a whole non-C table to gather.
    out = np.array(a, dtype=dtype, copy=True, order="C")
    out.flags.writeable = False
    return out


_FIRST_DAY, _LAST_DAY = np.datetime64("1678-01-01", "D"), np.datetime64("2261-12-31", "D")
"""The days ``datetime64[ns]`` holds (numpy wraps a later one around without a word)."""


def _dates(value: Any) -> np.ndarray:
    """``value`` as datetime64[ns]: numbers and days outside ``_FIRST_DAY..._LAST_DAY``
    refused (a cast would read 0, 1, 2 as nanoseconds after 1970)."""
    raw = np.asarray(value)
    if raw.dtype.kind in "biufc":
        raise DataError(
            f"MarketData dates are numbers ({raw.dtype}), not dates: pass datetime64 values "
            "or date strings such as 2020-01-31"
        )
    try:
        parsed = raw if raw.dtype.kind == "M" else np.asarray(raw, dtype="datetime64")
    except (TypeError, ValueError) as err:
        raise DataError(f"MarketData dates are not dates ({err}): pass datetime64") from None
    days = parsed.astype("datetime64[D]")  # a coarser unit cannot overflow
    outside = ~np.isnat(days) & ((days < _FIRST_DAY) | (days > _LAST_DAY))
    if outside.any():
        raise DataError(
            f"MarketData date {days[outside][0]} (row {int(np.flatnonzero(outside)[0])}) is "
            f"outside {_FIRST_DAY}..{_LAST_DAY}, the days a datetime64[ns] holds: check the "
            "dates' unit and century"
        )
    return parsed.astype("datetime64[ns]")


def _index_dates(index: pd.DatetimeIndex) -> np.ndarray:
    """A frame's dates in their own unit (naive UTC), for :func:`_dates` to range-check:
    a cast to nanoseconds here would wrap a year such as 0202 or 2300 around unseen."""
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.to_numpy()


def _flags(value: Any, what: str) -> np.ndarray:
    """True/False ``value``: booleans, or integers that are all 0 or 1; anything else (NaN,
    0.5, text) refused instead of cast (``bool(nan)`` is True)."""
    raw = np.asarray(value)
    if raw.dtype.kind == "b":
        return raw
    if raw.dtype.kind in "iu" and np.isin(raw, (0, 1)).all():
        return raw.astype(bool)
    values = " with values other than 0 and 1" if raw.dtype.kind in "iuf" else ""
    raise DataError(f"{what} has dtype {raw.dtype}{values}: pass True/False per cell")


def _regime_path(value: Any) -> np.ndarray:
    """Regime codes as integers ``0..len(SYNTHETIC_REGIMES) - 1`` (an int8 cast would
    wrap 300 to 44 and cut 1.7 to 1)."""
    raw = np.asarray(value)
    n = len(SYNTHETIC_REGIMES)
    if raw.dtype.kind not in "iu" or (raw.size and (raw.min() < 0 or raw.max() >= n)):
        raise DataError(
            f"MarketData.regimes must be integer regime codes 0..{n - 1} "
            f"({', '.join(SYNTHETIC_REGIMES)}); got dtype {raw.dtype}"
            + (f", values {raw.min()}..{raw.max()}" if raw.size and raw.dtype.kind in "iuf" else "")
        )
    return raw


_CSV_NA = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip
"""pandas' default missing-value words (``read_csv``'s ``na_values``), kept for the columns
that are not symbols."""


def _bar_index(value: Any, where: str) -> int:
    """A bar number as an int; 2.7 or '3' refused (int() would truncate or parse them)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{where}({value!r}): a bar is a whole number (an int)")
    return int(value)


def _missing(value: Any) -> bool:
    """None or a float NaN (what pandas leaves in an empty cell)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _day(d: np.datetime64 | pd.Timestamp) -> str:
    return str(np.datetime_as_string(np.datetime64(d, "ns"), unit="D"))


def _stamp(d: np.datetime64 | pd.Timestamp) -> str:
    """A bar's date, with its time of day when it has one (which of a day's bars)."""
    t = pd.Timestamp(d)
    return _day(d) if t == t.normalize() else t.isoformat(sep=" ")


@dataclass(frozen=True, eq=False)
class MarketData:
    """Immutable daily market data for ``n_assets`` symbols over ``n_days`` bars.

    Constructing one copies the arrays into read-only float64/bool arrays and checks
    shapes and content (vectorised, see :func:`validate`); the minimum history is checked
    by the loaders. Views from :meth:`window` and :meth:`rows` share the parent's
    read-only arrays and skip the checks.

    Attributes
    ----------
    dates : ndarray of datetime64[ns], shape (n_days,)
        Strictly increasing bar dates.
    symbols : tuple of str, length n_assets
    close : ndarray, shape (n_days, n_assets)
        Close prices (> 0); NaN only in a leading not-yet-listed stretch and a trailing
        delisted stretch (after the symbol's last price: not tradable, a position is
        closed at the last price, see ``delisted``).
    volume : ndarray, shape (n_days, n_assets)
        Shares traded per bar (>= 0).
    spread_bps : ndarray, shape (n_days, n_assets)
        Quoted bid-ask spread in bps of price (>= 0).
    sectors : tuple of str, length n_assets
        Sector label per symbol; ``UNKNOWN_SECTOR`` = none (no sector cap applies).
    benchmark_returns : ndarray, shape (n_days,)
        Simple returns of the benchmark; row 0 is 0.
    tradable : ndarray of bool, shape (n_days, n_assets)
        False where the symbol is not listed (and wherever a source says so).
    defaulted : tuple of str
        Fields filled with documented defaults because the source lacks them.
    regimes : ndarray of int8, shape (n_days,), or None
        True regime path (synthetic data only), indices into ``SYNTHETIC_REGIMES``.
    name : str
        Human-readable source name.
    """

    dates: np.ndarray
    symbols: tuple[str, ...]
    close: np.ndarray
    volume: np.ndarray
    spread_bps: np.ndarray
    sectors: tuple[str, ...]
    benchmark_returns: np.ndarray
    tradable: np.ndarray
    defaulted: tuple[str, ...] = ()
    regimes: np.ndarray | None = None
    name: str = "custom"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "dates", _frozen(_dates(self.dates), "datetime64[ns]"))
        set_(self, "symbols", tuple(str(s) for s in self.symbols))
        set_(self, "sectors", tuple(str(s) for s in self.sectors))
        set_(self, "defaulted", tuple(str(s) for s in self.defaulted))
        for name in ("close", "volume", "spread_bps", "benchmark_returns"):
            try:
                set_(self, name, _frozen(getattr(self, name), np.float64))
            except (TypeError, ValueError) as err:
                raise DataError(f"MarketData.{name} is not numeric ({err})") from None
        set_(self, "tradable", _frozen(_flags(self.tradable, "MarketData.tradable"), bool))
        if self.regimes is not None:
            set_(self, "regimes", _frozen(_regime_path(self.regimes), np.int8))
        _check_shapes(self)
        _check_content(self)

    @classmethod
    def _view(cls, **fields: Any) -> MarketData:
        """Build from arrays already frozen and checked (slices of a checked instance)."""
        obj = object.__new__(cls)
        for name, value in fields.items():
            object.__setattr__(obj, name, value)
        object.__setattr__(obj, "_cache", {})
        return obj

    # ------------------------------------------------------------------ shape helpers
    @property
    def n_days(self) -> int:
        return int(self.close.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self.close.shape[1])

    @cached_property
    def sector_names(self) -> tuple[str, ...]:
        """Distinct sector labels in sorted order (``sector_ids`` index into it), without
        ``UNKNOWN_SECTOR``."""
        return tuple(sorted(set(self.sectors) - {UNKNOWN_SECTOR}))

    @cached_property
    def sector_ids(self) -> np.ndarray:
        """Integer sector id per symbol, shape (n_assets,); ``NO_SECTOR`` (-1) for a symbol
        without a sector (``UNKNOWN_SECTOR``), which no sector cap applies to."""
        lookup = {s: i for i, s in enumerate(self.sector_names)}
        ids = [lookup.get(s, NO_SECTOR) for s in self.sectors]
        return _frozen(np.array(ids, dtype=np.int64), np.int64)

    @property
    def unsectored(self) -> tuple[str, ...]:
        """Symbols without a sector (the sector cap does not apply to them)."""
        return tuple(s for s, sec in zip(self.symbols, self.sectors, strict=True)
                     if sec == UNKNOWN_SECTOR)  # fmt: skip

    @cached_property
    def last_price(self) -> np.ndarray:
        """Bar of each symbol's last price, shape (n_assets,) int64 (``n_days - 1`` for a
        symbol priced to the end; a smaller value: the symbol was delisted after it)."""
        finite = np.isfinite(self.close)
        last = self.n_days - 1 - np.argmax(finite[::-1], axis=0)
        return _frozen(np.where(finite.any(axis=0), last, -1), np.int64)

    @cached_property
    def delisted(self) -> np.ndarray:
        """(n_days, n_assets) bool: True on the bars after a symbol's last price (it is
        not tradable there, and a position in it is closed at its last price)."""
        rows = np.arange(self.n_days)[:, None]
        return _frozen((rows > self.last_price[None, :]) & (self.last_price >= 0), bool)

    @cached_property
    def returns(self) -> np.ndarray:
        """Simple close-to-close returns, shape (n_days, n_assets); 0 where not tradable
        at either end and at row 0."""
        return _frozen(simple_returns(self.close, self.tradable), np.float64)

    # ------------------------------------------------------------------ views
    def window(self, t: int) -> MarketData:
        """Past-only view: rows ``0..t`` inclusive. Nothing after bar ``t`` is reachable."""
        t = _bar_index(t, "window")
        if not 0 <= t < self.n_days:
            raise IndexError(f"window({t}) outside 0..{self.n_days - 1}")
        return self.rows(0, t + 1)

    def rows(self, start: int, stop: int) -> MarketData:
        """Rows ``start..stop-1`` as a new ``MarketData`` sharing this one's arrays.

        The benchmark row ``start`` is kept as is; ``returns`` is recomputed from the rows
        in the view (so its row 0 is 0). For views that start at 0 it equals the parent's
        first rows and is taken from it.
        """
        start, stop = _bar_index(start, "rows"), _bar_index(stop, "rows")
        if not 0 <= start < stop <= self.n_days:
            raise IndexError(f"rows({start}, {stop}) outside 0 <= start < stop <= {self.n_days}")
        sl = slice(start, stop)
        view = MarketData._view(
            dates=self.dates[sl],
            symbols=self.symbols,
            close=self.close[sl],
            volume=self.volume[sl],
            spread_bps=self.spread_bps[sl],
            sectors=self.sectors,
            benchmark_returns=self.benchmark_returns[sl],
            tradable=self.tradable[sl],
            defaulted=self.defaulted,
            regimes=None if self.regimes is None else self.regimes[sl],
            name=self.name,
        )
        cached = self.__dict__
        if start == 0:
            # A causal row-wise computation: a prefix view has the same values.
            if "returns" in cached:
                view.__dict__["returns"] = cached["returns"][sl]
        for key in ("sector_names", "sector_ids"):
            if key in cached:
                view.__dict__[key] = cached[key]
        return view

    def index_of(self, date: str | np.datetime64 | pd.Timestamp) -> int:
        """Index of the last bar on or before ``date``."""
        d = np.datetime64(pd.Timestamp(date), "ns")
        i = int(np.searchsorted(self.dates, d, side="right")) - 1
        if i < 0:
            raise DataError(f"date {date} is before the first bar {_day(self.dates[0])}")
        return i


# ---------------------------------------------------------------------------- validation


def _cells(md: MarketData, mask: np.ndarray, values: np.ndarray | None = None) -> str:
    """'SYM at 2001-01-02, 2001-01-03 (+4 more); ...' for the True cells of a (T, N) mask."""
    cols = np.flatnonzero(mask.any(axis=0))
    parts = []
    for j in cols[:_SHOW]:
        rows = np.flatnonzero(mask[:, j])
        shown = []
        for i in rows[:3]:
            v = "" if values is None else f" ({values[i, j]:g})"
            shown.append(f"{_stamp(md.dates[i])}{v}")
        more = f" (+{rows.size - 3} more)" if rows.size > 3 else ""
        parts.append(f"{md.symbols[j]} at {', '.join(shown)}{more}")
    if cols.size > _SHOW:
        parts.append(f"+{cols.size - _SHOW} more symbols")
    return "; ".join(parts)


def _check_shapes(md: MarketData) -> None:
    if md.close.ndim != 2:
        raise DataError(
            f"close must be 2-D (n_days, n_assets), got shape {md.close.shape}: "
            "pass one column per symbol"
        )
    t, n = md.close.shape
    for name in ("volume", "spread_bps", "tradable"):
        shape = getattr(md, name).shape
        if shape != (t, n):
            raise DataError(f"{name} has shape {shape}, close has {(t, n)}: align them")
    if md.dates.shape != (t,):
        raise DataError(f"dates has shape {md.dates.shape}, expected ({t},): one date per row")
    if md.benchmark_returns.shape != (t,):
        raise DataError(
            f"benchmark_returns has shape {md.benchmark_returns.shape}, expected ({t},): "
            "one benchmark return per row"
        )
    if len(md.symbols) != n or len(md.sectors) != n:
        raise DataError(
            f"{len(md.symbols)} symbols / {len(md.sectors)} sectors for {n} columns: "
            "give one symbol and one sector per column"
        )
    if md.regimes is not None and md.regimes.shape != (t,):
        raise DataError(
            f"regimes has shape {md.regimes.shape}, expected ({t},): give one regime "
            "code per bar or regimes=None"
        )
    if t == 0 or n == 0:
        raise DataError(f"market {md.name!r} is empty (shape {(t, n)}): load at least one row")


def _check_content(md: MarketData) -> None:
    """Vectorised content checks (everything but the minimum history and empty columns)."""
    dates = md.dates
    if np.isnat(dates).any():
        i = int(np.flatnonzero(np.isnat(dates))[0])
        raise DataError(f"missing date (NaT) at row {i}: every row needs a date")
    # compared as dates: an int64 difference overflows across more than 292 years
    same, back = dates[1:] == dates[:-1], dates[1:] < dates[:-1]
    if same.any():
        rows = np.flatnonzero(same)
        shown = ", ".join(f"{_stamp(dates[i])} (rows {i}, {i + 1})" for i in rows[:_SHOW])
        raise DataError(
            f"duplicate dates in {md.name!r}: {shown}: keep one row per date "
            "(e.g. df[~df.index.duplicated(keep='last')])"
        )
    if back.any():
        rows = np.flatnonzero(back)
        shown = ", ".join(
            f"{_stamp(dates[i + 1])} after {_stamp(dates[i])} (row {i + 1})" for i in rows[:_SHOW]
        )
        raise DataError(
            f"dates in {md.name!r} are not sorted: {shown}: sort by date (df.sort_index())"
        )
    dup = pd.Index(md.symbols).duplicated()
    if dup.any():
        names = sorted({md.symbols[j] for j in np.flatnonzero(dup)})
        raise DataError(f"duplicate symbols {names}: give each column a unique symbol")
    folded = pd.Index([str(sym).casefold() for sym in md.symbols])
    if folded.has_duplicates:
        clash = [
            # ascii(): look-alikes casefold merges (KELVIN SIGN and K) print apart
            [sym if str(sym).isascii() else ascii(sym) for sym in md.symbols
             if str(sym).casefold() == key]
            for key in dict.fromkeys(folded[folded.duplicated()])
        ]  # fmt: skip
        raise DataError(
            f"symbols that differ only in letter case: {clash[:_SHOW]}: one stock's ticker "
            "written two ways (a vendor's change of case mid-file, or a column repeated) "
            "would be counted twice or delisted and listed again; write each ticker one way"
        )

    close = md.close
    finite = np.isfinite(close)
    bad = np.isinf(close) | (finite & (close <= 0.0))
    if bad.any():
        raise DataError(
            f"non-positive or infinite close prices: {_cells(md, bad, close)}: "
            "prices must be finite and > 0 (NaN before a symbol's first price, and after "
            "its last for a delisting): correct them, or write NaN where there is no price"
        )
    price = RANGES["price"]
    huge = finite & price.outside(np.where(finite, close, 1.0))
    if huge.any():
        raise DataError(
            f"close prices outside {price}: {_cells(md, huge, close)}: no share trades at "
            "such a price (serving refuses it too); check the data's units and values"
        )
    listed = np.logical_or.accumulate(finite, axis=0)
    # A trailing stretch after the last price is a delisting (accepted); a hole is not.
    priced_later = np.logical_or.accumulate(finite[::-1], axis=0)[::-1]
    gaps = listed & ~finite & priced_later
    if gaps.any():
        raise DataError(
            f"NaN close between two prices: {_cells(md, gaps)}: only a leading "
            "not-yet-listed stretch and a trailing delisted stretch may be NaN; "
            "forward-fill the gaps (df.ffill()) or drop those dates"
        )
    for name in ("volume", "spread_bps"):
        a = getattr(md, name)
        neg = a < 0.0
        if neg.any():
            raise DataError(f"negative {name}: {_cells(md, neg, a)}: {name} must be >= 0")
        missing = finite & ~np.isfinite(a)
        if missing.any():
            raise DataError(
                f"{name} missing or infinite where a close exists: {_cells(md, missing, a)}: "
                f"fill {name} (or drop the column so documented defaults are used)"
            )
        bounds = RANGES[name]
        over = np.isfinite(a) & (a > bounds.high)
        if over.any() and name not in md.defaulted:  # a default is derived, not a unit error
            raise DataError(
                f"{name} above {bounds.high:g} {bounds.unit}: {_cells(md, over, a)}: "
                f"{bounds.what} outside {bounds} (serving refuses it too); check the units"
            )
    odd = md.tradable & ~finite
    if odd.any():
        raise DataError(
            f"tradable is True without a close price: {_cells(md, odd)}: "
            "a symbol can only trade where it has a price"
        )
    bench = md.benchmark_returns
    rng = RANGES["benchmark_return"]
    bad_b = rng.outside(bench)  # serving's range for a given benchmark
    # The equal-weight default only needs a log: a bar past 10 is a move of the closes,
    # which the move check names by symbol (a x1000 unit error in one of four symbols
    # lifts the mean to 250). Only a benchmark that is that mean counts as derived.
    if "benchmark_returns" in md.defaulted and np.array_equal(
        bench[1:], _equal_weight_returns(close)[1:]
    ):
        bad_b = ~np.isfinite(bench) | (bench <= rng.low)
    if bad_b.any():
        rows = np.flatnonzero(bad_b)
        shown = ", ".join(f"{_day(dates[i])} ({bench[i]:g})" for i in rows[:_SHOW])
        raise DataError(
            f"benchmark returns outside the {rng.what} range {rng}: {shown} (serving "
            "refuses them too): fill the benchmark's gaps, check its prices (returns are "
            "fractions: 0.12 for 12 %) or leave the benchmark out (equal-weight default)"
        )


def validate(md: MarketData, min_history: int = 2) -> None:
    """Check a market completely and refuse bad data with a ``DataError``.

    Checks shapes, strictly increasing dates, unique symbols, prices (finite and > 0, NaN
    only in a leading not-yet-listed stretch or after the last price: a delisting),
    volume and spread (>= 0, finite where a
    price exists), the tradable mask, the benchmark, that every symbol has at least one
    price, and that there are at least ``min_history`` rows. Messages name the offending
    dates/symbols and the fix.

    Parameters
    ----------
    md : MarketData
    min_history : int
        Fewest rows accepted (``DataConfig.min_history`` in the loaders).
    """
    _check_shapes(md)
    _check_content(md)
    never = ~np.isfinite(md.close).any(axis=0)
    if never.any():
        names = [md.symbols[j] for j in np.flatnonzero(never)]
        raise DataError(f"symbols {names} have no prices at all: drop those columns")
    if md.n_days < min_history:
        raise DataError(
            f"market {md.name!r} has {md.n_days} rows ({_day(md.dates[0])}.."
            f"{_day(md.dates[-1])}), fewer than min_history={min_history}: load a longer "
            "history or lower data.min_history"
        )


# ---------------------------------------------------------------------------- defaults


def _default_volume(close: np.ndarray, adv_notional: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        vol = adv_notional / close
    return np.where(np.isfinite(vol), vol, 0.0)


def _default_spread(close: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """Spread proxy from trailing (causal) 21-bar volatility of log returns, in bps."""
    with np.errstate(invalid="ignore", divide="ignore"):
        logr = np.diff(np.log(close), axis=0, prepend=np.nan)
    vol = pd.DataFrame(logr).rolling(_VOL_WINDOW, min_periods=2).std().to_numpy()
    spread = cfg.default_spread_vol_mult * vol * 1e4
    spread = np.where(np.isfinite(spread), spread, cfg.spread_cap_bps)
    return np.clip(spread, cfg.spread_floor_bps, cfg.spread_cap_bps)


def _equal_weight_returns(close: np.ndarray) -> np.ndarray:
    """Equal-weighted mean simple return of the symbols priced at t-1 and t, shape (T,)."""
    out = np.zeros(close.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        r = close[1:] / close[:-1] - 1.0
    ok = np.isfinite(r)
    count = ok.sum(axis=1)
    total = np.where(ok, r, 0.0).sum(axis=1)
    np.divide(total, count, out=out[1:], where=count > 0)
    return out


def _describe_defaults(fields: Sequence[str], cfg: DataConfig) -> str:
    text = {
        "volume": f"volume = ADV notional {cfg.default_adv_notional:.3g} / close",
        "spread_bps": (
            f"spread = {cfg.default_spread_vol_mult} x trailing {_VOL_WINDOW}-bar volatility "
            f"clamped to [{cfg.spread_floor_bps}, {cfg.spread_cap_bps}] bps"
        ),
        "sectors": f"sector = {UNKNOWN_SECTOR!r}",
        "benchmark_returns": "benchmark = equal-weighted mean of the asset returns",
    }
    return "; ".join(text[f] for f in fields)


def _assemble(
    *,
    dates: np.ndarray,
    symbols: Sequence[str],
    close: np.ndarray,
    volume: np.ndarray | None,
    spread_bps: np.ndarray | None,
    sectors: Mapping[str, str] | Sequence[str] | None,
    benchmark_returns: np.ndarray | None,
    cfg: DataConfig,
    min_history: int,
    name: str,
    source: str,
) -> MarketData:
    """Fill missing fields with the documented defaults, warn, build and validate."""
    defaulted: list[str] = []
    listed = np.isfinite(close)
    if volume is None:
        volume = _default_volume(close, cfg.default_adv_notional)
        defaulted.append("volume")
    else:
        volume = np.where(listed, volume, np.nan_to_num(volume, nan=0.0))
    if spread_bps is None:
        spread_bps = _default_spread(close, cfg)
        defaulted.append("spread_bps")
    else:
        spread_bps = np.where(listed, spread_bps, np.nan_to_num(spread_bps, nan=0.0))
    if sectors is None:
        sector_list = [UNKNOWN_SECTOR] * len(symbols)
        defaulted.append("sectors")
    elif isinstance(sectors, Mapping):
        empty = [str(sym) for sym in symbols if sym in sectors and _missing(sectors[sym])]
        if empty:
            raise DataError(
                f"symbols {empty[:_SHOW]} map to no sector (None or NaN): give each one, or "
                "leave them out of the mapping (they are exempt from the sector cap)"
            )
        sector_list = [str(sectors.get(s, UNKNOWN_SECTOR)) for s in symbols]
    else:
        empty = [str(sym) for sym, sec in zip(symbols, sectors, strict=False) if _missing(sec)]
        if empty:
            raise DataError(
                f"symbols {empty[:_SHOW]} have no sector (None or NaN): give each one, or use "
                "a mapping that leaves them out (they are exempt from the sector cap)"
            )
        sector_list = [str(s) for s in sectors]
    if benchmark_returns is None:
        benchmark_returns = _equal_weight_returns(close)
        defaulted.append("benchmark_returns")
    if defaulted:
        warnings.warn(
            f"{source} has no {', '.join(defaulted)}: using documented defaults "
            f"({_describe_defaults(defaulted, cfg)})",
            DataWarning,
            stacklevel=3,
        )
    md = MarketData(
        dates=dates,
        symbols=tuple(symbols),
        close=close,
        volume=volume,
        spread_bps=spread_bps,
        sectors=tuple(sector_list),
        benchmark_returns=benchmark_returns,
        tradable=listed,
        defaulted=tuple(defaulted),
        name=name,
    )
    validate(md, min_history)
    check_moves(md, cfg)
    return md


# ---------------------------------------------------------------------------- sanity


@dataclass(frozen=True)
class Move:
    """A one-bar close-to-close move beyond the bound, or one the size of a stock split
    (:func:`large_moves`).

    Attributes
    ----------
    symbol, date : str
        The symbol and the ISO date of the bar the move ends on.
    ret : float
        Simple return of the bar (decimal: 999.0 = x1000).
    reverts_on : str or None
        Date of a later bar (within ``_REVERT_BARS``) whose price is back within 10 % of
        the price before the move: a spike or a level jump that reverts (a data error
        more often than a market move).
    split : str or None
        The split ratio (``"2:1"``, ``"1:10"`` for a reverse split) whose price ratio the
        move is within ``SPLIT_TOLERANCE`` of: prices not adjusted for a split.
    """

    symbol: str
    date: str
    ret: float
    reverts_on: str | None
    split: str | None = None

    def describe(self) -> str:
        what = f"reverts on {self.reverts_on}" if self.reverts_on else "does not revert"
        if self.split:
            what += f", the size of an unadjusted {self.split} split"
        return f"{self.symbol} {self.date} {self.ret:+.1%} ({what})"


_REVERT_BARS = 63  # bars after a large move searched for the price's return

SPLITS: tuple[tuple[str, float], ...] = tuple(
    (f"{new}:{old}", old / new)
    for new, old in ((2, 1), (3, 1), (3, 2), (4, 1), (5, 1), (10, 1), (1, 2), (1, 3), (1, 10))
)
"""Common split ratios ``new:old`` shares and the price ratio each leaves unadjusted."""

SPLIT_TOLERANCE = 0.01
"""Relative distance of a bar's price ratio from a split's within which the move is
listed as split-sized, whatever the bound: a 2:1 split on a day the stock rose 0.2 % is
-49.9 %, inside a 50 % bound. 1 % lists no real move of the bundled S&P 500 sample beside
its one unadjusted split (RRC, 1990-04-10, 3:1)."""


def large_moves(md: MarketData, bound: float = DEFAULT_MOVE_BOUND) -> list[Move]:
    """One-bar moves with ``|r| > bound`` (simple close-to-close returns while listed) or
    the size of a split (``Move.split``: within ``SPLIT_TOLERANCE`` of a ratio in
    ``SPLITS``), in date then symbol order, each flagged when the price comes back
    (``Move.reverts_on``).

    Parameters
    ----------
    md : MarketData
    bound : float
        Decimal return bound (0.5 = 50 % in one bar).
    """
    r = md.returns
    ratio = 1.0 + r
    split = np.full(r.shape, -1)
    for k, (_, price_ratio) in enumerate(SPLITS):
        split[np.abs(ratio / price_ratio - 1.0) <= SPLIT_TOLERANCE] = k
    hits = np.argwhere((np.abs(r) > bound) | (split >= 0))
    out: list[Move] = []
    for t, j in hits[np.lexsort((hits[:, 1], hits[:, 0]))]:
        before = md.close[t - 1, j]
        later = md.close[t + 1 : t + 1 + _REVERT_BARS, j]
        back = np.flatnonzero(np.isfinite(later) & (np.abs(later / before - 1.0) <= 0.1))
        # A return that undoes an earlier listed move is that move's reversal, not a new one.
        if out and any(m.symbol == md.symbols[j] and m.reverts_on == _day(md.dates[t])
                       for m in out):  # fmt: skip
            continue
        out.append(
            Move(
                symbol=md.symbols[j],
                date=_day(md.dates[t]),
                ret=float(r[t, j]),
                reverts_on=_day(md.dates[t + 1 + back[0]]) if back.size else None,
                split=SPLITS[split[t, j]][0] if split[t, j] >= 0 else None,
            )
        )
    return out


def check_moves(md: MarketData, cfg: DataConfig | None = None) -> list[Move]:
    """List one-bar moves beyond the bound or the size of a split as a ``DataWarning``, or
    refuse those beyond the bound.

    The bound is ``cfg.max_abs_return`` when set (moves beyond it raise ``DataError``),
    else ``DEFAULT_MOVE_BOUND`` (moves beyond it are listed in a warning and kept).
    Split-sized moves inside the bound are listed in the warning either way (a real
    -49 % day looks like a 2:1 split: only the data's owner can tell).

    Returns
    -------
    list of Move
        The moves found (empty when none).
    """
    strict = cfg is not None and cfg.max_abs_return is not None
    bound = float(cfg.max_abs_return) if strict else DEFAULT_MOVE_BOUND  # type: ignore[union-attr]
    moves = large_moves(md, bound)
    beyond = [m for m in moves if abs(m.ret) > bound]
    if strict and beyond:
        raise DataError(
            f"{len(beyond)} one-bar move(s) beyond data.max_abs_return = {bound:g} in "
            f"{md.name!r}: {_moves(beyond)}: correct the prices (a split or a unit change), "
            "or raise data.max_abs_return"
        )
    sized = [m for m in moves if abs(m.ret) <= bound]
    found = [
        f"{len(ms)} one-bar move(s) {what}: {_moves(ms)}"
        for ms, what in ((beyond, f"beyond {bound:.0%}"), (sized, "the size of a stock split"))
        if ms
    ]
    if found:
        refuse = "" if strict else ", or set data.max_abs_return to refuse moves beyond it"
        warnings.warn(
            f"{'; '.join(found)} in {md.name!r}: check the prices (adjust them for splits){refuse}",
            DataWarning,
            stacklevel=3,
        )
    return moves


def _moves(moves: list[Move]) -> str:
    """Up to ten moves described, with the count of the rest."""
    more = f" (+{len(moves) - 10} more)" if len(moves) > 10 else ""
    return "; ".join(m.describe() for m in moves[:10]) + more


def load_sectors(source: str | Path | Mapping[str, Any]) -> dict[str, str]:
    """Read a symbol -> sector map: a CSV file with columns ``symbol,sector``, a YAML file
    holding a mapping, or a mapping.

    Raises
    ------
    DataError
        Missing or unreadable file, wrong columns, a symbol listed twice with different
        sectors, or an empty sector.
    """
    if isinstance(source, Mapping):
        pairs = [(None if k is None else str(k), v) for k, v in source.items()]
        where = "data.sectors"
    else:
        p = Path(source)
        where = f"sector file {str(p)!r}"
        if not p.is_file():
            raise DataError(
                f"{where} does not exist: pass an existing CSV (symbol,sector) or YAML "
                "mapping (--sectors FILE or data.sectors)"
            )
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"{where} could not be read ({err}): save it as UTF-8 text") from None
        if p.suffix.lower() in (".yaml", ".yml", ".json"):
            import yaml

            try:
                loaded = load_yaml(text)
            except yaml.YAMLError as err:
                raise DataError(
                    f"{where} is not valid YAML ({' '.join(str(err).split())}): fix its syntax"
                ) from None
            if not isinstance(loaded, Mapping):
                raise DataError(
                    f"{where} must hold a mapping 'SYMBOL: sector' at the top level, "
                    f"got {type(loaded).__name__}"
                )
            # YAML reads ON, NO, 0005 or 1e3 unquoted as True, False, 5, 1000.0
            odd = [k for k in loaded if not isinstance(k, str)]
            if odd:
                raise DataError(
                    f"{where}: YAML read symbols as {odd[:_SHOW]}, not text (unquoted, ON "
                    "and NO read as True and False, 0005 as 5): quote them, e.g. 'ON': Energy"
                )
            pairs = list(loaded.items())
        else:
            import io

            try:
                # only an empty cell is missing: NA, NULL or None are tickers too
                df = pd.read_csv(
                    io.StringIO(text), dtype=str, skipinitialspace=True,
                    keep_default_na=False, na_values=[""],
                )  # fmt: skip
            except (ValueError, pd.errors.ParserError) as err:
                raise DataError(f"{where} could not be read as CSV ({err})") from None
            cols = {str(c).strip().lower(): c for c in df.columns}
            if "symbol" not in cols or "sector" not in cols:
                raise DataError(
                    f"{where} has columns {list(df.columns)}: give a header 'symbol,sector' "
                    "and one row per symbol"
                )
            symbols = df[cols["symbol"]].str.strip()  # a blank cell stays NaN: refused below
            pairs = list(zip(symbols, df[cols["sector"]], strict=True))
    out: dict[str, str] = {}
    for sym, sec in pairs:
        if not isinstance(sym, str) or not sym.strip():
            raise DataError(f"{where}: a row has no symbol (sector {sec!r}): give it its symbol")
        if _missing(sec) or not str(sec).strip():
            raise DataError(f"{where}: symbol {sym!r} has an empty sector: give it one")
        if not isinstance(sec, str | int | float) or isinstance(sec, bool):
            raise DataError(
                f"{where}: symbol {sym!r} has sector {sec!r}, a {type(sec).__name__}: give "
                "one sector name per symbol"
            )
        label = str(sec).strip()
        if label in _CSV_NA:  # what a spreadsheet writes for a lookup that found nothing
            raise DataError(
                f"{where}: symbol {sym!r} has sector {label!r}, a missing-value word: give "
                "it its sector, or leave the symbol out (it is then exempt from the sector cap)"
            )
        if out.get(sym, label) != label:
            raise DataError(
                f"{where}: symbol {sym!r} is listed with sectors {out[sym]!r} and {label!r}: "
                "keep one row per symbol"
            )
        out[sym] = label
    return out


def with_sectors(md: MarketData, sectors: Mapping[str, str]) -> MarketData:
    """``md`` with its sectors replaced from a symbol -> sector map (symbols missing from
    it get ``UNKNOWN_SECTOR``: no sector cap applies to them; extra symbols are ignored)."""
    labels = tuple(str(sectors.get(s, UNKNOWN_SECTOR)) for s in md.symbols)
    defaulted = tuple(f for f in md.defaulted if f != "sectors")
    if all(label == UNKNOWN_SECTOR for label in labels):
        defaulted = (*defaulted, "sectors")
    return MarketData(
        dates=md.dates, symbols=md.symbols, close=md.close, volume=md.volume,
        spread_bps=md.spread_bps, sectors=labels, benchmark_returns=md.benchmark_returns,
        tradable=md.tradable, defaulted=defaulted, regimes=md.regimes, name=md.name,
    )  # fmt: skip


def sector_cap_note(md: MarketData) -> str | None:
    """The line that says the sector cap does not apply to some symbols (None: it applies
    to all). Shown by ``data info`` and at the start of every run."""
    missing = md.unsectored
    if not missing:
        return None
    shown = ", ".join(missing[:8]) + (f" (+{len(missing) - 8} more)" if len(missing) > 8 else "")
    scope = "all" if len(missing) == md.n_assets else f"{len(missing)} of {md.n_assets}"
    return (
        f"sector cap inactive for {scope} symbols ({shown}): the data gives them no sector, "
        "so risk.max_sector_gross does not apply to them; pass --sectors FILE (CSV "
        "symbol,sector or a YAML mapping) or set data.sectors to enforce it"
    )


def load_factor_returns(path: str | Path, market: MarketData) -> FactorReturns:
    """Read user factor returns (``--factors FILE``) and align them to ``market``'s dates.

    The CSV has a ``date`` column and one column per factor of simple per-bar returns in
    decimals (0.01 = 1 %), each row the return over the bar ending at that date. Every
    market date from the second on needs a row; rows for other dates are ignored. Row 0
    of the result is 0, like ``MarketData.returns``.

    Raises
    ------
    DataError
        Missing file, no ``date`` or no factor column, an unparsable date, a duplicated
        date, a non-numeric or non-finite value, a value that looks like a percentage
        (|x| >= 1), or a market date without a row; the message names the value and the
        fix.
    """
    from allocgym.factors import FactorReturns

    p = Path(path)
    where = f"factor file {str(p)!r}"
    if not p.is_file():
        raise DataError(
            f"{where} does not exist: pass an existing CSV (date,factor1,...) with --factors"
        )
    _refuse_duplicate_columns(p, "factor")  # pandas would rename MKT, MKT to MKT.1
    try:
        df = pd.read_csv(p, dtype=str, skipinitialspace=True)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{where} could not be read as CSV ({err})") from None
    cols = {str(c).strip().lower(): c for c in df.columns}
    if "date" not in cols:
        raise DataError(
            f"{where} has columns {list(df.columns)}: give a header 'date,<factor>,...'"
        )
    names = tuple(str(c).strip() for c in df.columns if c != cols["date"])
    if not names:
        raise DataError(f"{where} has no factor column: add at least one after 'date'")
    # one format for the whole column: per-value guessing would read 01/08 and 13/08 in
    # opposite day/month orders without a word
    dates = _to_datetime_index(df[cols["date"]].astype(str).str.strip(), f"{where} 'date' column")
    day = pd.Series(dates.normalize())
    dup = day.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"{where}: date {_day(day.iloc[i])} appears more than once: keep one row per date"
        )
    values = np.empty((len(df), len(names)))
    for j, c in enumerate(c for c in df.columns if c != cols["date"]):
        col = pd.to_numeric(df[c].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(col)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{where}: factor {names[j]!r} on {_day(day.iloc[i])} is {df[c].iloc[i]!r}, "
                "not a finite number: fill it with the factor's return (0 if it did not "
                "trade)"
            )
        big = np.abs(col) >= 1.0
        if big.any():
            i = int(np.flatnonzero(big)[0])
            raise DataError(
                f"{where}: factor {names[j]!r} on {_day(day.iloc[i])} is {col[i]:g}, a "
                "one-bar return of 100 % or more: give decimal returns (divide percentages "
                "by 100)"
            )
        values[:, j] = col
    frame = pd.DataFrame(values, index=pd.DatetimeIndex(day), columns=list(names))
    wanted = pd.DatetimeIndex(pd.to_datetime(market.dates)).normalize()
    if wanted.has_duplicates:
        day = wanted[wanted.duplicated()][0]
        raise DataError(
            f"{where} holds one return per day, but the market has "
            f"{int((wanted == day).sum())} bars on {_day(day)}: a day's factor return on "
            "each of its bars would show every bar the rest of that day; factors need a "
            "daily market (drop data.factors for intraday bars)"
        )
    missing = wanted[1:].difference(frame.index)
    if len(missing):
        raise DataError(
            f"{where} has no row for {len(missing)} market date(s), first {_day(missing[0])} "
            f"(the market runs {_day(wanted[0])}..{_day(wanted[-1])}): add those rows or "
            "trim the market to the factors' dates (data.splits)"
        )
    aligned = np.array(frame.reindex(wanted).to_numpy(dtype=np.float64))
    aligned[0] = 0.0
    return FactorReturns(names, aligned)


# ---------------------------------------------------------------------------- loaders


def load_sp500(
    cfg: DataConfig | None = None, *, sectors: Mapping[str, str] | None = None
) -> MarketData:
    """The real S&P 500 sample bundled with skfolio: 20 stocks, daily 1990-01-02..2022-12-28.

    The benchmark is the S&P 500 index. The sample has no volume or spread: volume is
    ``cfg.default_adv_notional / close`` (constant traded notional) and the spread is
    ``cfg.default_spread_vol_mult`` times trailing 21-day volatility, clamped to
    ``[spread_floor_bps, spread_cap_bps]``. A ``UserWarning`` says so, and
    ``MarketData.defaulted`` lists both fields. Sectors are GICS (``SP500_SECTORS``)
    unless ``sectors`` (symbol -> sector) replaces them.
    """
    from skfolio.datasets import load_sp500_dataset, load_sp500_index

    cfg = cfg or DataConfig()
    prices = load_sp500_dataset()
    index = load_sp500_index().iloc[:, 0]
    if not index.index.equals(prices.index):
        raise DataError("skfolio's S&P 500 index and price dates differ: reinstall skfolio")
    bench = index.to_numpy(dtype=np.float64)
    bench_ret = np.zeros_like(bench)
    bench_ret[1:] = bench[1:] / bench[:-1] - 1.0
    symbols = tuple(str(c) for c in prices.columns)
    return _assemble(
        dates=prices.index.to_numpy(dtype="datetime64[ns]"),
        symbols=symbols,
        close=prices.to_numpy(dtype=np.float64),
        volume=None,
        spread_bps=None,
        sectors=SP500_SECTORS if sectors is None else sectors,
        benchmark_returns=bench_ret,
        cfg=cfg,
        min_history=cfg.min_history,
        name="sp500",
        source="S&P 500 sample",
    )


_LONG_REQUIRED = ("date", "symbol", "close")


_LONG_OPTIONAL = ("open", "high", "low", "volume", "spread_bps", "sector")

_LONG_TEXT = ("symbol", "sector")
"""Long-format columns read as text (never as numbers or booleans)."""


def _is_long(df: pd.DataFrame) -> bool:
    # a 'symbol' column makes a long file (a misspelt 'close' is then named as missing,
    # not read as a wide file whose 'symbol' column is a price)
    return "symbol" in {str(c).strip().lower() for c in df.columns}


_FIELD_NAMES = frozenset({"close", "adj close", "adj_close", "volume", "spread_bps"})
"""Column names of price fields that are no ticker: a wide frame's columns are symbols,
never these (open, high and low are left out: OPEN and LOW trade on Nasdaq and NYSE)."""


_OHL = ("open", "high", "low")


def _refuse_field_columns(df: pd.DataFrame, name: str) -> None:
    """A wide frame holds one symbol per column: refuse (field, ticker) columns and
    columns named like a price field (an OHLCV file of one stock read as five symbols)."""
    if isinstance(df.columns, pd.MultiIndex):
        raise DataError(
            f"{name} has columns on {df.columns.nlevels} levels (e.g. {df.columns[0]!r}): a "
            "wide frame holds one close-price column per symbol; select the closes first "
            "(df['Close'] of a yfinance download)"
        )
    named = [c for c in df.columns if str(c).strip().lower() in ("ticker", "tickers", "symbols")]
    if named:
        raise DataError(
            f"{name} has a column {named[0]!r}: long OHLCV rows name their symbol in a column "
            "called 'symbol'; rename it (a wide file holds one close-price column per symbol)"
        )
    if any(str(c).strip().lower() in _FIELD_NAMES for c in df.columns):
        fields = [c for c in df.columns if str(c).strip().lower() in {*_FIELD_NAMES, *_OHL}]
        raise DataError(
            f"{name} has columns {fields[:_SHOW]}, price fields, not symbols: a wide file "
            "holds one close-price column per symbol; for OHLCV rows add a 'symbol' column "
            "(the long format: date, symbol, close[, volume, ...])"
        )


def _to_datetime_index(values: Any, what: str) -> pd.DatetimeIndex:
    arr = np.asarray(values)
    if arr.dtype.kind in "biufc":
        first = arr.flat[0].item() if arr.size else None
        raise DataError(
            f"{what} holds numbers ({arr.dtype}, the first {first!r}), not dates: write dates "
            "as YYYY-MM-DD (20200131 is a number); a frame whose dates sit in a column has "
            "row numbers as its index: make the date column the index"
        )
    try:
        with warnings.catch_warnings():
            # pandas warns when it falls back to per-element parsing; failures still raise.
            warnings.simplefilter("ignore", UserWarning)
            try:
                idx = pd.DatetimeIndex(pd.to_datetime(values))
            except ValueError:
                # ISO 8601 in several spellings (a time on some rows) is still unambiguous
                idx = pd.DatetimeIndex(pd.to_datetime(values, format="ISO8601"))
    except (TypeError, ValueError) as err:
        raise DataError(_date_error(values, what, err)) from None
    _refuse_ambiguous_day_month(values, idx, what)
    if idx.tz is not None:
        # the local wall time: a bar's date is the exchange's calendar day (Tokyo's
        # midnight is the previous day in UTC)
        offset = idx[0].utcoffset()
        local = idx.tz_localize(None)
        if offset and (local != local.normalize()).any():
            warnings.warn(
                f"{what} carries UTC offset {idx[0].strftime('%z')} ({idx[0].isoformat()}): "
                f"bars keep their local wall time ({local[0].time()}), and clock windows read "
                "bar times in schedule.bar_timezone (default UTC): unless it is already the "
                "zone of that offset (e.g. Asia/Tokyo for +0900), set it, or write the "
                "stamps in UTC",
                DataWarning,
                stacklevel=2,
            )
        idx = local
    return idx


def _refuse_ambiguous_day_month(values: Any, parsed: pd.DatetimeIndex, what: str) -> None:
    """Text dates whose month and day read both ways (no day above 12: monthly data dated
    on the 1st, 01/02/2000 ...) are refused: pandas reads them month first, and ten years
    of d/m/Y months would load as twelve days of January each year."""
    first = next(iter(values), None) if len(values) else None
    fmt = guess_datetime_format(first.strip()) if isinstance(first, str) else None
    if fmt is None or "%m" not in fmt or "%d" not in fmt:
        return  # not text (dates already), or no day and month to confuse
    if max(fmt.find("%Y"), fmt.find("%y")) < max(fmt.find("%m"), fmt.find("%d")):
        return  # year first (ISO 8601): month before day by convention
    swapped = fmt.replace("%m", "\0").replace("%d", "%m").replace("\0", "%d")
    raw = pd.Series(np.asarray(values, dtype=object)).str.strip()
    try:
        other = pd.DatetimeIndex(pd.to_datetime(raw, format=swapped))
    except (TypeError, ValueError):
        return  # a day above 12 somewhere: the order is settled
    if not other.equals(parsed):
        raise DataError(
            f"{what}: dates such as {first.strip()!r} read both as month/day ({fmt}) and "
            f"as day/month ({swapped}), and no day is above 12 to tell: write the dates as "
            "YYYY-MM-DD (ISO 8601)"
        )


def _date_error(values: Any, what: str, err: Exception) -> str:
    """Where the dates stop parsing: pandas reads every value in the format it guesses
    from the first, and its own message gives neither the row nor a fix a user can apply."""
    raw = pd.Series(np.asarray(values, dtype=object)).astype(str).str.strip()
    fix = "write every date as YYYY-MM-DD (ISO 8601)"
    try:  # every value is ISO 8601 alone, only not together: offsets that differ
        pd.to_datetime(raw, format="ISO8601", utc=True)
        return (
            f"{what} mixes UTC offsets, or dates with and without one (the first date is "
            f"{raw.iloc[0]!r}): write every date in UTC (Z) or without an offset (a "
            "local calendar day)"
        )
    except ValueError:
        pass
    fmt = guess_datetime_format(raw.iloc[0]) if len(raw) else None
    if fmt is None:
        return f"{what}: the first date {raw.iloc[0]!r} is not a date: {fix}"
    try:
        parsed = pd.to_datetime(raw, format=fmt, errors="coerce")
    except ValueError:
        return f"{what} could not be parsed as dates ({err}): {fix}"
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if not bad.size:
        return f"{what} could not be parsed as dates ({err}): {fix}"
    i = int(bad[0])
    return (
        f"{what}: value {i + 1} ({raw.iloc[i]!r}, line {i + 2} of a CSV with a header row) "
        f"does not match the format {fmt} of the first date {raw.iloc[0]!r}"
        f"{'' if bad.size == 1 else f' ({bad.size} values do not)'}: {fix}"
    )


def _numeric(df: pd.DataFrame, what: str) -> np.ndarray:
    where = [
        j
        for j, dtype in enumerate(df.dtypes)
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
    ]
    bad = [str(df.columns[j]) for j in where]
    if bad:
        first = ""
        col = df.iloc[:, where[0]]  # by position: a name may stand twice
        if not pd.api.types.is_bool_dtype(col.dtype):
            # the first cell that is not a number, so the fix starts where the file breaks
            parsed = pd.to_numeric(col, errors="coerce")
            cells = np.flatnonzero(parsed.isna().to_numpy() & col.notna().to_numpy())
            if cells.size:
                i = int(cells[0])
                at = _day(df.index[i]) if isinstance(df.index, pd.DatetimeIndex) else i + 1
                first = f"; the first, {bad[0]} on {at}, is {col.iloc[i]!r}"
        raise DataError(
            f"{what} columns {bad[:_SHOW]} are not numeric (text or true/false){first}: "
            "remove them or convert them to numbers (pd.to_numeric)"
        )
    return df.to_numpy(dtype=np.float64, na_value=np.nan)


def _aligned(
    frame: pd.DataFrame, close: pd.DataFrame, what: str, benchmark: str | None = None
) -> np.ndarray:
    if not frame.index.equals(close.index):
        raise DataError(
            f"{what} has {len(frame.index)} dates, close has {len(close.index)} (or they "
            f"differ): give {what} the same date index as the prices"
        )
    missing = [str(c) for c in close.columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} lacks symbols {missing[:_SHOW]}: one column per symbol")
    extra = [str(c) for c in frame.columns if c not in close.columns and c != benchmark]
    if extra:  # a misspelt symbol's column is not dropped without a word
        raise DataError(
            f"{what} has columns {extra[:_SHOW]} that are not symbols of the prices: one "
            "column per price symbol (rename or drop them)"
        )
    return _numeric(frame[list(close.columns)], what)


def _benchmark_from_prices(series: pd.Series, index: pd.DatetimeIndex) -> np.ndarray:
    if isinstance(series, pd.DataFrame):
        if series.shape[1] != 1:
            raise DataError(
                f"benchmark is a frame of {series.shape[1]} columns: pass one price Series"
            )
        series = series.iloc[:, 0]
    series = series.copy()
    series.index = _to_datetime_index(series.index, "benchmark index")
    if not series.index.equals(index):
        missing = index.difference(series.index)
        extra = series.index.difference(index)
        if missing.size or extra.size:
            shown = ", ".join(_stamp(d) for d in missing[:_SHOW]) or "none"
            more = ", ".join(_stamp(d) for d in extra[:_SHOW]) or "none"
            how = f"missing: {shown}; not price dates: {more}"
        else:
            how = "the same dates in another order or repeated"
        raise DataError(
            f"benchmark dates differ from the price dates ({how}): give the benchmark one "
            "price on every price date, in date order"
        )
    try:
        px = series.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"benchmark prices are not numeric ({err})") from None
    bad = ~np.isfinite(px) | (px <= 0)
    if bad.any():
        shown = ", ".join(_day(index[i]) for i in np.flatnonzero(bad)[:_SHOW])
        raise DataError(f"benchmark prices missing or <= 0 at {shown}: fill them (ffill)")
    out = np.zeros(px.size)
    out[1:] = px[1:] / px[:-1] - 1.0
    return out


def from_prices(
    df: pd.DataFrame,
    *,
    benchmark: pd.Series | str | None = None,
    volume: pd.DataFrame | None = None,
    spread_bps: pd.DataFrame | None = None,
    sectors: Mapping[str, str] | Sequence[str] | None = None,
    cfg: DataConfig | None = None,
    min_history: int | None = None,
    name: str = "prices",
) -> MarketData:
    """Build a validated ``MarketData`` from a wide close-price frame or long OHLCV rows.

    Wide: a ``DatetimeIndex`` (or date-like index) and one column of close prices per
    symbol; NaN only before a symbol's first price. Optional ``volume`` / ``spread_bps``
    frames have the same index and columns. Long (detected by ``symbol`` and ``close``
    columns): columns ``date, symbol, close`` and optionally ``open, high, low, volume,
    spread_bps, sector`` (open/high/low are accepted and not used); rows are pivoted by
    date (sorted) and symbol (order of first appearance); one row per (date, symbol).

    Missing fields get the module's documented defaults, are listed in
    ``MarketData.defaulted`` and announced in a ``UserWarning``.

    Parameters
    ----------
    df : DataFrame
        Wide close prices or long OHLCV rows.
    benchmark : Series or str, optional
        Benchmark *prices* on the same dates, or the name of a wide column holding them
        (removed from the symbols). Default: equal-weighted mean of the asset returns.
    volume, spread_bps : DataFrame, optional
        Wide shares traded / spread in bps (wide input only).
    sectors : mapping symbol -> sector, or sequence in column order, optional
        Default ``"unknown"`` for every symbol.
    cfg : DataConfig, optional
        Default-fill parameters and ``min_history`` (default ``DataConfig()``).
    min_history : int, optional
        Overrides ``cfg.min_history``.
    name : str
        Name shown in summaries and errors.

    Raises
    ------
    DataError
        When validation fails (message names the dates/symbols and the fix).
    """
    cfg = cfg or DataConfig()
    if min_history is not None and (
        isinstance(min_history, bool)
        or not isinstance(min_history, int | np.integer)
        or min_history < 1
    ):
        raise DataError(f"min_history = {min_history!r}: pass a whole number of bars >= 1")
    min_rows = cfg.min_history if min_history is None else int(min_history)
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"from_prices needs a pandas DataFrame, got {type(df).__name__}")
    if len(df.index) == 0:
        raise DataError(
            f"{name} has no rows (columns {list(df.columns)[:_SHOW]}): give one row per date"
        )
    if isinstance(sectors, str):
        raise DataError(
            f"sectors={sectors!r} is one string: give one sector per symbol (a list) or a "
            "symbol -> sector mapping"
        )
    if _is_long(df):
        if volume is not None or spread_bps is not None:
            raise DataError(
                "long OHLCV input carries volume/spread_bps as columns: do not pass them "
                "as separate frames"
            )
        return _from_long(df, benchmark, sectors, cfg, min_rows, name)
    _refuse_field_columns(df, name)
    close = df.copy()
    # a header written "date, AAA, BBB" must not make the symbol " AAA" (no sector map,
    # benchmark name or serving request would match it)
    close.columns = [str(c).strip() for c in close.columns]
    # pandas names a column with a blank header 'Unnamed: <position>'
    blank = [c for c in close.columns if c.startswith("Unnamed: ") or not c.strip()]
    if blank:
        raise DataError(
            f"{name} has column(s) without a header ({', '.join(blank)}): put each column's "
            "symbol in the header row, or drop the column"
        )
    close.index = _to_datetime_index(close.index, f"{name} index")
    bench_ret = None
    if isinstance(benchmark, str):
        if benchmark not in close.columns:
            raise DataError(
                f"benchmark column {benchmark!r} not in {list(close.columns)[:_SHOW]}...: "
                "name an existing column"
            )
        bench_ret = _benchmark_from_prices(close.pop(benchmark), close.index)
    elif benchmark is not None:
        bench_ret = _benchmark_from_prices(benchmark, close.index)
    # a wide benchmark column may stand in the volume / spread frames too: not a symbol
    bench_col = benchmark if isinstance(benchmark, str) else None
    vol = None if volume is None else _aligned(_with_dates(volume), close, "volume", bench_col)
    spr = (
        None
        if spread_bps is None
        else _aligned(_with_dates(spread_bps), close, "spread_bps", bench_col)
    )
    if sectors is not None and not isinstance(sectors, Mapping) and len(sectors) != close.shape[1]:
        raise DataError(
            f"{len(sectors)} sectors for {close.shape[1]} symbols: give one per column "
            "or a symbol -> sector mapping"
        )
    return _assemble(
        dates=_index_dates(close.index),
        symbols=tuple(close.columns),
        close=_numeric(close, "close"),
        volume=vol,
        spread_bps=spr,
        sectors=sectors,
        benchmark_returns=bench_ret,
        cfg=cfg,
        min_history=min_rows,
        name=name,
        source=name,
    )


def _with_dates(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.columns = [str(c).strip() for c in out.columns]
    out.index = _to_datetime_index(out.index, "index")
    return out


def _from_long(
    df: pd.DataFrame,
    benchmark: pd.Series | str | None,
    sectors: Mapping[str, str] | Sequence[str] | None,
    cfg: DataConfig,
    min_rows: int,
    name: str,
) -> MarketData:
    rows = df.rename(columns=lambda c: str(c).strip().lower())
    twice = sorted(set(rows.columns[rows.columns.duplicated()]))
    if twice:
        raise DataError(
            f"long OHLCV data has columns {twice} twice (headers are read case- and "
            "space-insensitively, e.g. 'close' and 'Close'): keep one of each"
        )
    missing = [c for c in _LONG_REQUIRED if c not in rows.columns]
    unknown = [c for c in rows.columns if c not in (*_LONG_REQUIRED, *_LONG_OPTIONAL)]
    if missing:
        raise DataError(
            f"long OHLCV data lacks columns {missing} (its columns: {list(rows.columns)}): "
            f"need date, symbol, close (and optionally {', '.join(_LONG_OPTIONAL)})"
        )
    if unknown:
        warnings.warn(
            f"{name}: columns {unknown} are not read (a long file's columns: "
            f"{', '.join((*_LONG_REQUIRED, *_LONG_OPTIONAL))}): check their spelling",
            DataWarning,
            stacklevel=3,
        )
    if isinstance(benchmark, str):
        raise DataError("benchmark as a column name needs wide prices: pass a price Series")
    rows = rows.copy()
    rows["date"] = _to_datetime_index(rows["date"], f"{name} 'date' column")
    if rows["symbol"].isna().any():
        i = int(np.flatnonzero(rows["symbol"].isna().to_numpy())[0])
        raise DataError(
            f"{name}: row {i + 1} has no symbol: give every row its symbol, or drop the row"
        )
    rows["symbol"] = rows["symbol"].astype(str).str.strip()
    dup = rows.duplicated(subset=["date", "symbol"])
    if dup.any():
        shown = ", ".join(
            f"{_stamp(d)} {s}"
            for d, s in rows.loc[dup, ["date", "symbol"]].head(_SHOW).itertuples(index=False)
        )
        raise DataError(
            f"duplicate (date, symbol) rows in {name!r}: {shown}: keep one row per date "
            "and symbol (df.drop_duplicates(['date', 'symbol'], keep='last'))"
        )
    symbols = [str(s) for s in pd.unique(rows["symbol"])]
    _refuse_mixed_stamps(rows, name)

    def wide(col: str) -> pd.DataFrame:
        return rows.pivot(index="date", columns="symbol", values=col).reindex(columns=symbols)

    close = wide("close")
    vol = _numeric(wide("volume"), "volume") if "volume" in rows.columns else None
    spr = _numeric(wide("spread_bps"), "spread_bps") if "spread_bps" in rows.columns else None
    if sectors is None and "sector" in rows.columns:
        # " Energy" and "Energy" are one sector (as load_sectors reads them); blank: none
        # (cleaned per distinct label, then gathered: a row-wise strip of a long file's
        # millions of cells cost seconds)
        codes, labels = pd.factorize(rows["sector"])
        clean = np.array([str(v).strip() for v in labels] + [""], dtype=object)
        words = np.flatnonzero(np.isin(clean, _CSV_NA) & (clean != ""))
        if words.size:
            i = int(np.flatnonzero(codes == words[0])[0])
            raise DataError(
                f"{name}: symbol {rows['symbol'].iloc[i]!r} has sector {clean[words[0]]!r}, "
                "a missing-value word: give it its sector, or leave the cell empty (the "
                "symbol is then exempt from the sector cap)"
            )
        clean[clean == ""] = np.nan  # blank or missing (code -1: the appended "")
        rows["sector"] = clean[codes]
        per = rows.groupby("symbol", sort=False)["sector"].nunique(dropna=True)
        if (per > 1).any():
            raise DataError(
                f"symbols {list(per.index[per > 1])[:_SHOW]} have more than one sector: "
                "give each symbol one sector"
            )
        first = rows.dropna(subset=["sector"]).groupby("symbol", sort=False)["sector"].first()
        sectors = {s: str(first.get(s, UNKNOWN_SECTOR)) for s in symbols}
    bench_ret = None if benchmark is None else _benchmark_from_prices(benchmark, close.index)
    return _assemble(
        dates=_index_dates(close.index),
        symbols=symbols,
        close=_numeric(close, "close"),
        volume=vol,
        spread_bps=spr,
        sectors=sectors,
        benchmark_returns=bench_ret,
        cfg=cfg,
        min_history=min_rows,
        name=name,
        source=name,
    )


def _refuse_mixed_stamps(rows: pd.DataFrame, name: str) -> None:
    """Daily rows stamped at one time of day per symbol, but not the same one (AAA at the
    date, BBB at 16:00): pivoted, they would read as NaN holes, and forward-filling them
    would double the bars."""
    ns = rows["date"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    at = ns % (86_400 * 10**9)  # the time of day, ns
    if not at.any():
        return  # daily stamps: nothing to compare
    per = pd.Series(at).groupby(rows["symbol"].to_numpy(), sort=False).agg(["nunique", "first"])
    if len(per) > 1 and (per["nunique"] == 1).all() and per["first"].nunique() > 1:
        shown = ", ".join(
            f"{sym} at {str(pd.Timedelta(int(t), 'ns')).split(' days ')[-1][:8]}"
            for sym, t in per["first"].items()
        )
        raise DataError(
            f"{name}: symbols are stamped at different times of day ({shown[:200]}): a bar "
            "has one stamp for every symbol; write each day's rows with the same stamp "
            "(e.g. the date alone)"
        )


def _existing(path: str | Path, kind: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{kind} file {str(p)!r} does not exist: pass an existing file (data.path)")
    return p


def from_csv(path: str | Path, **kwargs: Any) -> MarketData:
    """Load wide close prices (first column = dates) or long OHLCV rows from a CSV file.

    Long format is detected by a ``symbol`` column. Keyword arguments go to
    :func:`from_prices` (``benchmark``, ``sectors``, ``cfg``, ``min_history``, ``name``).
    """
    p = _existing(path, "CSV")
    kwargs.setdefault("name", p.stem)
    try:
        head = pd.read_csv(p, nrows=0)
        if _is_long(head):
            # pandas' missing-value words hold in every column but the symbols': NA
            # (National Bank of Canada), NULL or None are tickers, only an empty cell is none
            # and symbols and sectors as text: 0005 stays 0005 (not 5), TRUE not True, and
            # a sector #N/A is refused (as load_sectors does), not read as no sector
            text = [c for c in head.columns if str(c).strip().lower() in _LONG_TEXT]
            na = {c: ("",) if c in text else _CSV_NA for c in head.columns}
            df = pd.read_csv(p, keep_default_na=False, na_values=na)
            # a column read as numbers or booleans is read again as text (dtype=str for
            # the whole file costs twice the read)
            retext = [c for c in text if not pd.api.types.is_string_dtype(df[c])]
            if retext:
                again = pd.read_csv(
                    p, usecols=retext, keep_default_na=False, na_values=na, dtype=str
                )
                df[retext] = again[retext]
        else:
            _refuse_duplicate_columns(p)
            df = pd.read_csv(p, index_col=0)
    except DataError:
        raise
    except (ValueError, pd.errors.ParserError) as err:
        raise DataError(
            f"CSV file {str(p)!r} could not be read ({err}): check its format"
        ) from None
    return from_prices(df, **kwargs)


def _refuse_duplicate_columns(p: Path, kind: str = "symbol") -> None:
    """pandas renames a repeated column ``AAA`` to ``AAA.1``: refuse the file instead."""
    import csv

    with p.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), [])
    names = [h.strip() for h in header[1:]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(
            f"CSV file {str(p)!r} has duplicate {kind} columns {dup[:_SHOW]}: give each "
            f"{kind} one column (drop or rename the repeats)"
        )


def from_parquet(path: str | Path, **kwargs: Any) -> MarketData:
    """Load wide close prices (date index or ``date`` column) or long OHLCV from Parquet.

    Keyword arguments go to :func:`from_prices`.
    """
    p = _existing(path, "Parquet")
    kwargs.setdefault("name", p.stem)
    try:
        df = pd.read_parquet(p)
    except (OSError, ValueError) as err:
        raise DataError(f"Parquet file {str(p)!r} could not be read ({err})") from None
    levels = {str(n).strip().lower() for n in df.index.names}
    if isinstance(df.index, pd.MultiIndex) and {"date", "symbol"} <= levels:
        df = df.reset_index()  # long rows stored indexed by (date, symbol)
    cols = {str(c).strip().lower(): c for c in df.columns}
    named_date = str(df.index.name).strip().lower() == "date"
    if _is_long(df):
        if "date" not in cols and (named_date or isinstance(df.index, pd.DatetimeIndex)):
            # a long frame stored with its dates as the index
            df = df.reset_index(names="date")
    elif "date" in cols and not isinstance(df.index, pd.DatetimeIndex):
        df = df.set_index(cols["date"])
    elif isinstance(df.index, pd.RangeIndex) and not named_date:
        raise DataError(
            f"Parquet file {str(p)!r} has neither dates as its index nor a 'date' column "
            "(its index is row numbers): store the dates as the index or a 'date' column"
        )
    # any other index holds the dates in some type (text, datetime.date): parsed as dates
    return from_prices(df, **kwargs)


SOURCES: tuple[str, ...] = get_args(DataConfig.model_fields["source"].annotation)
"""Market sources ``load_market`` knows (the values ``DataConfig.source`` accepts)."""


def load_market(cfg: DataConfig | None = None) -> MarketData:
    """Load and validate the market ``cfg.source`` names (one of :data:`SOURCES`).

    Every source is checked against ``cfg.min_history``; ``cfg.sectors`` (a file or a
    mapping) replaces the source's sectors. A ``DataWarning`` names the symbols without a
    sector (the sector cap does not apply to them).

    Raises
    ------
    ConfigError
        ``cfg.source`` is not one of :data:`SOURCES` (a config built without validation,
        e.g. by ``model_copy(update=...)``).
    """
    cfg = cfg or DataConfig()
    sectors = None if cfg.sectors is None else load_sectors(cfg.sectors)
    if cfg.source == "sp500":
        md = load_sp500(cfg, sectors=sectors)
    elif cfg.reads_file:
        assert cfg.path is not None  # DataConfig refuses csv/parquet without a path
        loader = from_csv if cfg.source == "csv" else from_parquet
        md = loader(cfg.path, cfg=cfg, sectors=sectors)
    elif cfg.source == "synthetic":
        md = synthetic_from_config(cfg.synthetic)
        if sectors is not None:
            md = with_sectors(md, sectors)
        validate(md, cfg.min_history)
    else:
        raise ConfigError(
            f"data.source = {cfg.source!r} is not a known market source: set it to one of "
            f"{', '.join(SOURCES)}"
        )
    note = sector_cap_note(md)
    if note:
        warnings.warn(note, DataWarning, stacklevel=2)
    days, per_day = np.unique(md.dates.astype("datetime64[D]"), return_counts=True)
    if np.median(per_day) == 1 and per_day.max() > 1:
        many = per_day > 1
        shown = [f"{_day(d)} ({c} bars)" for d, c in zip(days[many], per_day[many], strict=True)]
        warnings.warn(
            f"{len(shown)} day(s) of a daily file hold more than one bar: "
            f"{', '.join(shown[:_SHOW])}; each is a bar of its own (and bars "
            "are annualised at 252 a year): drop the extra rows, or give every day its "
            "intraday bars",
            DataWarning,
            stacklevel=2,
        )
    last = md.last_price
    ended = [j for j in range(md.n_assets) if 0 <= last[j] < md.n_days - 1]
    if ended:
        # a delisting closes positions at the last price: say so in every run, since a
        # feed that only lags looks the same
        shown = ", ".join(f"{md.symbols[j]} {_day(md.dates[last[j]])}" for j in ended[:_SHOW])
        more = f" (+{len(ended) - _SHOW} more)" if len(ended) > _SHOW else ""
        warnings.warn(
            f"{len(ended)} symbol(s) have no price after a date before the data's last bar "
            f"and are treated as delisted (not tradable after it, a position closed at its "
            f"last price): {shown}{more}; if the feed only lags, end the file at its last "
            "complete bar",
            DataWarning,
            stacklevel=2,
        )
    if cfg.path and not cfg.reads_file:
        warnings.warn(
            f"data.path={cfg.path!r} is ignored: data.source={cfg.source!r} reads no file",
            DataWarning,
            stacklevel=2,
        )
    extra = [] if sectors is None else sorted(set(sectors) - set(md.symbols))
    if extra:
        shown = ", ".join(extra[:8]) + (f" (+{len(extra) - 8} more)" if len(extra) > 8 else "")
        warnings.warn(
            f"the sector map names {len(extra)} symbol(s) the data does not hold ({shown}): "
            "they are ignored; check their spelling against the data's symbols",
            DataWarning,
            stacklevel=2,
        )
    return md


def synthetic(
    n_assets: int = 20,
    n_days: int = 2520,
    seed: int = 0,
    *,
    n_sectors: int = 4,
    signal_strength: float = 0.0,
) -> MarketData:
    """Seeded regime-switching market with volumes, spreads and the true regime path.

    Three regimes (``SYNTHETIC_REGIMES``) switch by a sticky Markov chain:

    - ``calm_trend``: positive drift, low volatility, moderate correlation; with
      ``signal_strength`` > 0 every asset also gets a drift drawn at each entry into the
      regime and held for the whole spell (a momentum signal an agent can learn);
    - ``mean_reverting``: no drift, idiosyncratic returns with negative lag-1
      autocorrelation (stronger with ``signal_strength``);
    - ``high_vol_crash``: negative drift, high volatility, high correlation, wider spreads.

    Returns are a one-factor model (market loading 0.7..1.3 per asset) plus idiosyncratic
    noise. The benchmark is the equal-weighted mean of the asset returns. Dates are
    business days from 2000-01-03. Same arguments, identical data.
    """
    if n_assets < 1 or n_days < 2:
        raise DataError(f"synthetic needs n_assets >= 1 and n_days >= 2, got {n_assets}, {n_days}")
    rng = np.random.default_rng(seed)
    stay = np.array([0.985, 0.98, 0.96])
    trans = np.array([[0.0, 0.7, 0.3], [0.7, 0.0, 0.3], [0.5, 0.5, 0.0]])
    mkt_drift = np.array([0.0006, 0.0, -0.0015])
    mkt_vol = np.array([0.007, 0.011, 0.028])
    idio_vol = np.array([0.009, 0.014, 0.02])
    phi = np.array([0.0, -min(0.9, 0.25 + 0.5 * signal_strength), 0.0])
    spread_scale = np.array([1.0, 1.3, 3.0])
    volume_scale = np.array([1.0, 1.1, 1.8])

    regimes = np.empty(n_days, dtype=np.int8)
    u_stay = rng.random(n_days)
    u_next = rng.random(n_days)
    k = 0
    for t in range(n_days):  # the Markov chain is sequential by nature
        if t > 0 and u_stay[t] > stay[k]:
            k = int(np.searchsorted(np.cumsum(trans[k]), u_next[t]))
        regimes[t] = k

    loadings = rng.uniform(0.7, 1.3, n_assets)
    f = mkt_drift[regimes] + mkt_vol[regimes] * rng.standard_normal(n_days)
    noise = idio_vol[regimes][:, None] * rng.standard_normal((n_days, n_assets))
    spell_start = np.r_[True, regimes[1:] != regimes[:-1]]
    spell_drift = rng.normal(0.0, 0.002 * signal_strength, (n_days, n_assets))
    idio = np.empty((n_days, n_assets))
    drift = np.zeros(n_assets)
    prev = np.zeros(n_assets)
    for t in range(n_days):  # AR(1) recursion and per-spell drifts are sequential
        if spell_start[t]:
            drift = spell_drift[t] if regimes[t] == 0 else np.zeros(n_assets)
        prev = phi[regimes[t]] * prev + noise[t]
        idio[t] = prev + drift
    # A -95% floor keeps prices positive; the benchmark is built from the same returns.
    rets = np.clip(loadings[None, :] * f[:, None] + idio, -0.95, None)
    rets[0] = 0.0
    close = 100.0 * np.exp(np.cumsum(np.log1p(rets), axis=0))

    base_shares = rng.lognormal(np.log(2e6), 0.5, n_assets)
    volume = (
        base_shares * volume_scale[regimes][:, None] * rng.lognormal(0.0, 0.2, (n_days, n_assets))
    )
    base_spread = rng.uniform(2.0, 10.0, n_assets)
    spread = (
        base_spread * spread_scale[regimes][:, None] * rng.lognormal(0.0, 0.1, (n_days, n_assets))
    )
    dates = pd.bdate_range("2000-01-03", periods=n_days).to_numpy(dtype="datetime64[ns]")
    return MarketData(
        dates=dates,
        symbols=tuple(f"S{i:03d}" for i in range(n_assets)),
        close=close,
        volume=volume,
        spread_bps=spread,
        sectors=tuple(f"sector_{i % n_sectors}" for i in range(n_assets)),
        benchmark_returns=np.r_[0.0, rets[1:].mean(axis=1)],
        tradable=np.ones((n_days, n_assets), dtype=bool),
        regimes=regimes,
        name=f"synthetic(seed={seed})",
    )


def synthetic_from_config(cfg: SyntheticConfig) -> MarketData:
    """``synthetic`` with the parameters of a ``SyntheticConfig``."""
    return synthetic(
        cfg.n_assets,
        cfg.n_days,
        cfg.seed,
        n_sectors=cfg.n_sectors,
        signal_strength=cfg.signal_strength,
    )


# ---------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class Split:
    """A contiguous range of bars ``start..stop-1`` of one market (``market.rows(start, stop)``).

    Attributes
    ----------
    name : str
        ``train``, ``validation``, ``test`` or ``fold<k>_train`` / ``fold<k>_test``.
    start, stop : int
        Bar indices, ``0 <= start < stop``.
    """

    name: str
    start: int
    stop: int
    basis: str = "dates"
    """``dates`` (``data.splits`` dates), ``fractions`` (``data.splits.fractions``, the
    dates did not fit the data) or ``custom``."""

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.stop:
            raise DataError(
                f"split {self.name!r} [{self.start}, {self.stop}) is empty or negative: "
                "need 0 <= start < stop"
            )

    @property
    def n_bars(self) -> int:
        """Number of bars in the split."""
        return self.stop - self.start

    def __len__(self) -> int:
        return self.n_bars

    @property
    def slice(self) -> slice:
        """``slice(start, stop)`` for indexing (T, ...) arrays."""
        return slice(self.start, self.stop)

    def describe(self, market: MarketData) -> str:
        """``'train: 1990-01-02..2010-12-31 (5291 bars)'``."""
        first, last = _day(market.dates[self.start]), _day(market.dates[self.stop - 1])
        return f"{self.name}: {first}..{last} ({self.n_bars} bars)"


def _split_date(value: str, key: str) -> np.datetime64:
    """The day ``value``, clipped to the days a bar can have (``_FIRST_DAY..._LAST_DAY``:
    a later day is after every bar; a cast to nanoseconds would wrap it around)."""
    try:
        day = np.datetime64(pd.Timestamp(value).to_datetime64(), "D")
    except (TypeError, ValueError) as err:
        raise DataError(
            f"data.splits.{key} = {value!r} is not a date ({err}): use YYYY-MM-DD"
        ) from None
    if np.isnat(day):
        raise DataError(f"data.splits.{key} = {value!r} is not a date: use YYYY-MM-DD")
    return min(max(day, _FIRST_DAY), _LAST_DAY)


def _bar_after(market: MarketData, value: str, key: str) -> int:
    """Index of the first bar after the day ``value``: bars stamped later that day
    (intraday, or daily at the close) stay on or before it."""
    next_day = (_split_date(value, key) + 1).astype(market.dates.dtype)
    return int(np.searchsorted(market.dates, next_day, side="left"))


def _make_split(market: MarketData, name: str, start: int, stop: int, cfg: SplitConfig) -> Split:
    if start >= stop:
        raise DataError(
            f"{name} split is empty for {market.name!r} ({_day(market.dates[0])}.."
            f"{_day(market.dates[-1])}, {market.n_days} bars) with train_end={cfg.train_end}, "
            f"validation_end={cfg.validation_end}, embargo_days={cfg.embargo_days}: set "
            "data.splits.train_end / validation_end inside the data's dates"
        )
    return Split(name, start, stop)


def walk_forward_splits(market: MarketData, cfg: SplitConfig | None = None) -> dict[str, Split]:
    """Train / validation / test bar ranges that fit the data, with an embargo before each
    later split.

    By date (:func:`date_splits`) when ``cfg``'s dates leave every split non-empty, or
    ``cfg.test_end`` is set (the walk-forward study); otherwise by ``cfg.fractions`` of
    the bars (:func:`fraction_splits`, ``Split.basis == "fractions"``;
    :func:`split_note` says so). Every split must have at least ``cfg.min_split_bars`` bars.

    Raises
    ------
    DataError
        A split shorter than ``cfg.min_split_bars`` (the message gives the numbers), or
        empty dates with ``cfg.test_end`` set.
    """
    cfg = cfg or SplitConfig()
    try:
        splits = date_splits(market, cfg)
    except DataError:
        if cfg.test_end is not None:
            raise
        splits = fraction_splits(market, cfg)
    short = {k: sp.n_bars for k, sp in splits.items() if sp.n_bars < cfg.min_split_bars}
    if short:
        how = (
            f"train_end={cfg.train_end}, validation_end={cfg.validation_end}"
            if splits["train"].basis == "dates"
            else f"fractions {list(cfg.fractions)}"
        )
        shown = ", ".join(f"{k} {n} bars" for k, n in short.items())
        raise DataError(
            f"{shown} of {market.name!r} ({market.n_days} bars, {_day(market.dates[0])}.."
            f"{_day(market.dates[-1])}; {how}, embargo_days={cfg.embargo_days}) "
            f"< data.splits.min_split_bars={cfg.min_split_bars}: use more data, move "
            "data.splits.train_end / validation_end, or lower data.splits.min_split_bars"
        )
    return splits


def fraction_splits(market: MarketData, cfg: SplitConfig | None = None) -> dict[str, Split]:
    """Train / validation / test from ``cfg.fractions`` of the bars (rounded to whole bars),
    less ``cfg.embargo_days`` bars at the start of validation and of test.

    Example: 1000 bars, (0.6, 0.15, 0.25), embargo 5: train 0..599, validation 605..749,
    test 755..999.

    Raises
    ------
    DataError
        When a split would be empty.
    """
    cfg = cfg or SplitConfig()
    n = market.n_days
    t_end = round(cfg.fractions[0] * n)
    v_end = round((cfg.fractions[0] + cfg.fractions[1]) * n)
    emb = cfg.embargo_days
    bounds = {"train": (0, t_end), "validation": (t_end + emb, v_end), "test": (v_end + emb, n)}
    for name, (a, b) in bounds.items():
        if a >= b:
            raise DataError(
                f"{name} split is empty for {market.name!r} ({n} bars) with fractions "
                f"{list(cfg.fractions)} and embargo_days={emb}: use more data or a smaller "
                "embargo"
            )
    return {k: Split(k, a, b, "fractions") for k, (a, b) in bounds.items()}


def split_note(market: MarketData, cfg: SplitConfig | None = None) -> str | None:
    """A line saying the splits come from fractions because the dates do not fit the data
    (None when the dates are used). Shown by ``data info`` and at the start of a run."""
    cfg = cfg or SplitConfig()
    splits = walk_forward_splits(market, cfg)
    if splits["train"].basis != "fractions":
        return None
    shares = "/".join(f"{100 * f:g}" for f in cfg.fractions)
    return (
        f"data.splits dates (train_end {cfg.train_end}, validation_end {cfg.validation_end}) "
        f"do not fit the data ({_day(market.dates[0])}..{_day(market.dates[-1])}): splits "
        f"are {shares} % of the bars with a {cfg.embargo_days}-bar embargo ("
        + "; ".join(sp.describe(market) for sp in splits.values())
        + "); set data.splits.train_end / validation_end to choose dates"
    )


def date_splits(market: MarketData, cfg: SplitConfig | None = None) -> dict[str, Split]:
    """Train / validation / test bar ranges by date, with an embargo before each later split.

    ``train`` holds bars dated on or before ``cfg.train_end``; ``validation`` the bars
    after it up to ``cfg.validation_end``; ``test`` the rest (up to ``cfg.test_end``
    when set). The first
    ``cfg.embargo_days`` bars of validation and of test are dropped, so a split never
    starts right after the previous one ends. With the defaults on the S&P 500 sample:
    train 1990-01-02..2010-12-31, validation 2011 (after 5 embargo bars)..2014-12-31,
    test 2015 (after 5 embargo bars)..2022-12-28.

    Returns
    -------
    dict
        ``{"train": Split, "validation": Split, "test": Split}`` in time order.

    Raises
    ------
    DataError
        When a split would be empty (dates outside the data).
    """
    cfg = cfg or SplitConfig()
    t_end = _bar_after(market, cfg.train_end, "train_end")
    v_end = _bar_after(market, cfg.validation_end, "validation_end")
    end = market.n_days if cfg.test_end is None else _bar_after(market, cfg.test_end, "test_end")
    emb = cfg.embargo_days
    return {
        "train": _make_split(market, "train", 0, t_end, cfg),
        "validation": _make_split(market, "validation", t_end + emb, v_end, cfg),
        "test": _make_split(market, "test", v_end + emb, end, cfg),
    }


# ---------------------------------------------------------------------------- summary


def summary(md: MarketData, splits: SplitConfig | None = None) -> dict[str, Any]:
    """Plain-data description of a market (JSON-serialisable).

    With ``splits`` (``data.splits``) it also holds ``splits`` (the walk-forward splits'
    descriptions, or the reason they are refused) and ``split_basis`` (``dates`` or
    ``fractions``).

    Keys: ``name``, ``n_symbols``, ``symbols``, ``rows``, ``start``, ``end`` (ISO dates),
    ``defaulted`` (fields filled with defaults), ``sectors`` (symbol -> sector),
    ``sector_counts``, ``missing_cells`` / ``missing_fraction`` (NaN closes),
    ``missing`` (symbol -> ``first_date``, ``leading_nan`` rows, ``untradable`` rows) and
    ``regimes`` (regime -> bars, synthetic data only, else None), ``delisted`` (symbol ->
    date of its last price, for symbols whose prices stop before the last bar) and
    ``unsectored`` (symbols without a sector: the sector cap does not apply to them).
    """
    finite = np.isfinite(md.close)
    first = np.argmax(finite, axis=0)  # leading NaN rows = index of the first price
    has_any = finite.any(axis=0)
    untradable = (~md.tradable).sum(axis=0)
    missing = {
        s: {
            "first_date": _day(md.dates[first[j]]) if has_any[j] else None,
            "leading_nan": int(first[j]) if has_any[j] else md.n_days,
            "untradable": int(untradable[j]),
        }
        for j, s in enumerate(md.symbols)
    }
    counts: dict[str, int] = {}
    for s in md.sectors:
        counts[s] = counts.get(s, 0) + 1
    regimes = None
    if md.regimes is not None:
        codes = np.bincount(md.regimes.astype(np.int64), minlength=len(SYNTHETIC_REGIMES))
        regimes = {
            (SYNTHETIC_REGIMES[i] if i < len(SYNTHETIC_REGIMES) else str(i)): int(c)
            for i, c in enumerate(codes)
        }
    n_missing = int((~finite).sum())
    last = md.last_price
    delisted = {
        s: _day(md.dates[last[j]]) for j, s in enumerate(md.symbols) if 0 <= last[j] < md.n_days - 1
    }
    split_info: dict[str, Any] = {}
    if splits is not None:
        try:
            sp = walk_forward_splits(md, splits)
        except DataError as err:
            split_info = {"splits": [f"refused: {err}"], "split_basis": None}
        else:
            split_info = {
                "splits": [x.describe(md) for x in sp.values()],
                "split_basis": sp["train"].basis,
            }
    return {
        "name": md.name,
        "n_symbols": md.n_assets,
        "symbols": list(md.symbols),
        "rows": md.n_days,
        "start": _day(md.dates[0]),
        "end": _day(md.dates[-1]),
        "defaulted": list(md.defaulted),
        "sectors": dict(zip(md.symbols, md.sectors, strict=True)),
        "sector_counts": dict(sorted(counts.items())),
        "missing_cells": n_missing,
        "missing_fraction": n_missing / finite.size,
        "missing": missing,
        "regimes": regimes,
        "delisted": delisted,
        "unsectored": list(md.unsectored),
        **split_info,
    }


def render_summary(info: Mapping[str, Any]) -> RenderableType:
    """Rich rendering of :func:`summary`'s dict (used by ``allocgym data info``)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    defaulted = ", ".join(info["defaulted"]) or "none"
    lines = [
        Text(f"market: {info['name']}", style="bold"),
        Text(f"{info['n_symbols']} symbols, {info['rows']} rows, {info['start']}..{info['end']}"),
        Text(f"defaulted fields: {defaulted}"),
        Text(
            f"missing closes: {info['missing_cells']} cells "
            f"({100 * info['missing_fraction']:.2f}%: before a symbol's listing or after "
            "its delisting)"
        ),
        Text("sectors: " + ", ".join(f"{k} ({v})" for k, v in info["sector_counts"].items())),
    ]
    if info.get("unsectored"):
        n_un = len(info["unsectored"])
        scope = "all symbols" if n_un == info["n_symbols"] else f"{n_un} symbols"
        lines.append(
            Text(
                f"sector cap: inactive for {scope} without a sector (pass --sectors FILE: "
                "CSV symbol,sector or a YAML mapping, or set data.sectors)",
                style="yellow",
            )
        )
    if info.get("delisted"):
        lines.append(
            Text(
                "delisted (not tradable after their last price, positions closed at it): "
                + ", ".join(f"{k} {v}" for k, v in info["delisted"].items())
            )
        )
    if info.get("splits"):
        basis = info.get("split_basis")
        how = {"dates": "by data.splits dates", "fractions": "by data.splits.fractions "
               "(the dates do not fit the data)"}.get(basis or "", "")  # fmt: skip
        lines.append(Text(f"walk-forward splits {how}:".replace("  ", " ")))
        lines.extend(Text(f"  {line}") for line in info["splits"])
    if info.get("regimes"):
        lines.append(
            Text(
                "true regimes (bars): " + ", ".join(f"{k} {v}" for k, v in info["regimes"].items())
            )
        )
    table = Table(title="symbols", title_justify="left")
    for col, justify in (("symbol", "left"), ("sector", "left"), ("first date", "left"),
                         ("leading NaN", "right"), ("untradable", "right")):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for sym, miss in info["missing"].items():
        table.add_row(
            sym,
            info["sectors"][sym],
            str(miss["first_date"]),
            str(miss["leading_nan"]),
            str(miss["untradable"]),
        )
    return Group(*lines, table)
