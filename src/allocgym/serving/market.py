"""Streaming market state: the service's rolling window of one universe, fed bar by bar.

``POST /v1/bars`` hands each new bar (closes, volumes, spreads, tradable flags and the
benchmark return, every symbol at once) to :meth:`MarketState.apply`, which

- refuses, with a code and without changing anything, a bar that is out of order
  (older than the latest held and not held), that leaves a gap (its ``previous`` is not
  the latest held bar), that reuses a held timestamp with other values (a conflict) or
  whose values are outside their physical ranges; a bar identical to a held one is a
  replay (idempotent by timestamp);
- appends it to a bounded window of ``window_bars`` rows (the longest trailing window
  any part of a decision reads: features, regime, HRP fallback, execution triggers,
  ex-ante CVaR), with the bar's simple return, validity and traded notional formed once;
- updates the regime state (``RegimeStream``: the new bar's statistics only) and forms
  the features of the new bar (``FeatureBuilder.compute_bar``).

What is incremental and what is not: returns, notional, the regime statistics and the
regime's hysteresis are O(n_assets) or O(window * n_assets) work on the new bar only.
The window reductions of the features (EWMA volatility, momentum sums, z-score,
autocorrelation, beta, ADV) are recomputed over the held rows at every bar: a running
sum updated by adding the new term and subtracting the oldest one rounds differently
from the batch ``FeatureBuilder``'s fresh sum, and the features must equal it bit for
bit. Each is a fixed-length reduction (at most ``window_bars`` rows), so a bar costs the
same whatever the history before it.

:meth:`MarketState.request` turns an account request into the stateless
``DecisionRequest`` over the held window: the decision, its audit record and its replay
are those of that request, so the streaming and the stateless paths agree bit for bit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict
from typing import Any, Literal, get_args

import numpy as np

from allocgym.errors import RequestError
from allocgym.features import bar_series
from allocgym.ranges import RANGES, PhysicalRangeError, check_physical
from allocgym.regime import RegimeStream
from allocgym.serving.allocator import FrozenAllocator, HeldBar
from allocgym.serving.schemas import (
    MARKET_FIELDS,
    Bar,
    BarAck,
    BarCode,
    DecisionRequest,
    trusted,
)

BAR_CODES: tuple[str, ...] = get_args(BarCode)
"""Why a bar is refused: older than the latest held bar, a gap before it, another bar
under a held timestamp, values that cannot be traded on."""


class BarRefused(RequestError):
    """A bar that is not applied; ``code`` is one of :data:`BAR_CODES`."""

    def __init__(self, code: BarCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _aware(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)


class _Rows:
    """The last ``rows`` rows of a series as one C-contiguous view.

    Rows go into a buffer twice as long; when it is full the last ``rows - 1`` move to
    its start (one copy every ``rows`` bars), so an append costs O(n_assets) on average
    and the window never needs gathering.
    """

    def __init__(self, rows: int, tail: tuple[int, ...], dtype: Any) -> None:
        self.rows = rows
        self._buf = np.zeros((2 * rows, *tail), dtype=dtype)
        self._end = 0

    def push(self, row: Any) -> None:
        if self._end == self._buf.shape[0]:
            keep = self.rows - 1
            self._buf[:keep] = self._buf[self._end - keep : self._end]
            self._end = keep
        self._buf[self._end] = row
        self._end += 1

    def view(self) -> np.ndarray:
        return self._buf[max(0, self._end - self.rows) : self._end]


class MarketState:
    """The rolling market window of one served universe, updated one bar at a time.

    Not thread-safe: the service applies bars and decides on one worker.

    Parameters
    ----------
    allocator : FrozenAllocator
        Gives the universe (symbols, in the bundle's order), the feature builder and the
        windows a decision reads.
    window_bars : int, optional
        Rows held; default and minimum: the longest trailing window a decision reads.

    Attributes
    ----------
    window_bars : int
    latest : datetime or None
        Timestamp of the latest bar held.
    held : HeldBar or None
        Features and execution trigger inputs at the latest bar, once ``ready``.
    window_sha256 : str
        sha256 of the held window's arrays (close, volume, spread, benchmark, tradable).
    """

    def __init__(self, allocator: FrozenAllocator, window_bars: int | None = None) -> None:
        needed = allocator.history
        if window_bars is not None and window_bars < needed:
            raise RequestError(
                f"window_bars = {window_bars} is below the {needed} bars a decision reads: "
                f"leave it unset or pass at least {needed}"
            )
        self.window_bars = int(needed if window_bars is None else window_bars)
        self.symbols = allocator.symbols
        self.history = allocator.history
        self._allocator = allocator
        self._fb = allocator.feature_builder
        n, rows = len(self.symbols), self.window_bars
        self._close = _Rows(rows, (n,), np.float64)
        self._volume = _Rows(rows, (n,), np.float64)
        self._spread = _Rows(rows, (n,), np.float64)
        self._tradable = _Rows(rows, (n,), np.bool_)
        self._bench = _Rows(rows, (), np.float64)
        self._returns = _Rows(rows, (n,), np.float64)
        self._valid = _Rows(rows, (n,), np.bool_)
        self._notional = _Rows(rows, (n,), np.float64)
        self._regime = RegimeStream(self._fb.regime)
        self._held: OrderedDict[dt.datetime, str] = OrderedDict()  # timestamp -> bar digest
        self.latest: dt.datetime | None = None
        self.held: HeldBar | None = None
        self.window_sha256 = hashlib.sha256(b"").hexdigest()
        self._frozen: dict[str, np.ndarray] | None = None

    @property
    def bars_held(self) -> int:
        return int(self._bench.view().shape[0])

    @property
    def ready(self) -> bool:
        """Whether the window holds the ``history`` bars a decision needs."""
        return self.bars_held >= self.history

    # ------------------------------------------------------------------ bars
    def _ordered(self, bar: Bar) -> tuple[np.ndarray, ...]:
        """The bar's vectors in the bundle's order, range-checked."""
        syms = bar.symbols
        if sorted(syms) != sorted(self.symbols) or len(set(syms)) != len(syms):
            extra = sorted(set(syms) - set(self.symbols))[:5]
            missing = sorted(set(self.symbols) - set(syms))[:5]
            repeated = sorted({s for s in syms if syms.count(s) > 1})[:5]
            raise BarRefused(
                "bar_invalid",
                f"bar symbols must be the bundle's {len(self.symbols)} symbols once each "
                f"(unknown {extra}, missing {missing}, repeated {repeated}): send every "
                "symbol of the universe once",
            )
        n = len(syms)
        vectors = {"close": bar.close, "volume": bar.volume, "spread_bps": bar.spread_bps}
        if bar.tradable is not None:
            vectors["tradable"] = bar.tradable
        for name, v in vectors.items():
            if v.shape != (n,):
                raise BarRefused(
                    "bar_invalid", f"{name} has shape {v.shape}, expected ({n},): one per symbol"
                )
        for range_name, field, values in (
            ("price", "close", bar.close),
            ("volume", "volume", bar.volume),
            ("spread_bps", "spread_bps", bar.spread_bps),
            ("adv_notional", "volume x close", bar.volume * bar.close),
        ):
            try:
                check_physical(range_name, values, field)
            except PhysicalRangeError as err:
                # named by its symbol: a position in the bar as sent means little to a feed
                i = int(np.flatnonzero(RANGES[range_name].outside(values))[0])
                hint = ""
                if range_name == "price" and not np.isfinite(values[i]):
                    hint = (
                        "; a name without a price (not yet listed, delisted, halted) takes a "
                        "stand-in close (its last price) with tradable false and volume 0"
                    )
                raise BarRefused("bar_invalid", f"{err} (symbol {syms[i]!r}){hint}") from None
        try:
            check_physical("benchmark_return", bar.benchmark_return)
        except PhysicalRangeError as err:
            raise BarRefused("bar_invalid", str(err)) from None
        where = {s: i for i, s in enumerate(syms)}
        perm = np.array([where[s] for s in self.symbols])
        tradable = np.ones(n, bool) if bar.tradable is None else bar.tradable
        return bar.close[perm], bar.volume[perm], bar.spread_bps[perm], tradable[perm]

    def apply(self, bar: Bar) -> Literal["applied", "replay"]:
        """Apply one bar, or recognise a replay of a held one (nothing changes).

        Raises
        ------
        BarRefused
            ``bar_out_of_order``, ``bar_gap``, ``bar_conflict`` or ``bar_invalid`` (bad
            values, or a timestamp past the server clock by more than
            ``serving.max_future_skew_s``); nothing changed.
        """
        close, volume, spread, tradable = self._ordered(bar)
        bench = float(bar.benchmark_return)
        ts = _aware(bar.timestamp)
        # of the instant and the values: the same bar sent with another UTC offset, or a
        # -0.0 for a 0.0, is a replay, not a conflict
        try:
            utc = ts.astimezone(dt.UTC)
        except OverflowError:  # valid RFC 3339, but its UTC instant is not a datetime
            raise BarRefused(
                "bar_invalid",
                f"bar timestamp {ts.isoformat()} is outside the representable range of "
                "instants: send the bar's real time",
            ) from None
        h = hashlib.sha256(utc.isoformat().encode())
        for a in (close, volume, spread, tradable, np.array([bench])):
            h.update(np.ascontiguousarray(a if a.dtype == bool else a + 0.0).tobytes())
        digest = h.hexdigest()
        if ts in self._held:
            if self._held[ts] == digest:
                return "replay"
            raise BarRefused(
                "bar_conflict",
                f"bar {ts.isoformat()} is held with other values: a bar is applied once; "
                "to correct past data, restart the service and POST the corrected bars "
                "oldest first (the first with previous null)",
            )
        if self.latest is not None:
            if ts < self.latest:
                raise BarRefused(
                    "bar_out_of_order",
                    f"bar {ts.isoformat()} is older than the latest bar held "
                    f"({self.latest.isoformat()}): send bars in time order",
                )
            previous = None if bar.previous is None else _aware(bar.previous)
            if previous != self.latest:
                given = "none" if previous is None else previous.isoformat()
                raise BarRefused(
                    "bar_gap",
                    f"bar {ts.isoformat()} follows {given}, but the latest bar held is "
                    f"{self.latest.isoformat()}: send the missing bars first (previous = "
                    "the latest held bar)",
                )
        ahead = (ts - self._allocator.now()).total_seconds()
        limit = self._allocator.serving.max_future_skew_s
        if ahead > limit:
            # held, it would refuse every real bar after it (older) until a restart, and
            # no decision may be made on it
            raise BarRefused(
                "bar_invalid",
                f"bar {ts.isoformat()} is {ahead:.0f} s ahead of the server clock (limit "
                f"serving.max_future_skew_s = {limit:g}): check the feed's clock",
            )
        self._push(ts, digest, close, volume, spread, tradable, bench)
        return "applied"

    def _push(
        self,
        ts: dt.datetime,
        digest: str,
        close: np.ndarray,
        volume: np.ndarray,
        spread: np.ndarray,
        tradable: np.ndarray,
        bench: float,
    ) -> None:
        if self.bars_held:
            prev_close, prev_tradable = self._close.view()[-1], self._tradable.view()[-1]
        else:  # the first bar has no return (as row 0 of MarketData.returns)
            prev_close, prev_tradable = close, np.zeros_like(tradable)
        r, valid, notional = bar_series(prev_close, close, prev_tradable, tradable, volume)
        for rows, row in (
            (self._close, close),
            (self._volume, volume),
            (self._spread, spread),
            (self._tradable, tradable),
            (self._bench, bench),
            (self._returns, r),
            (self._valid, valid),
            (self._notional, notional),
        ):
            rows.push(row)
        self._held[ts] = digest
        while len(self._held) > self.window_bars:
            self._held.popitem(last=False)
        self.latest = ts
        returns, bench_rows = self._returns.view(), self._bench.view()
        need = self._regime.returns_needed
        regime = self._regime.update(returns[-need:], bench_rows[-need:])
        self.held = None
        if self.ready:
            features = self._fb.compute_bar(
                returns,
                self._valid.view(),
                bench_rows,
                self._close.view(),
                self._notional.view(),
                spread,
                tradable,
                regime,
            )
            close_w, tradable_w = self._close.view(), self._tradable.view()
            triggers = self._allocator.triggers(
                close_w[None], tradable_w[None], self._spread.view()[None]
            )
            self.held = HeldBar(features, triggers)
        self._frozen = None
        h = hashlib.sha256()
        for name, a in self.window().items():
            h.update(f"|{name}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
        self.window_sha256 = h.hexdigest()

    def ack(self, bar: Bar) -> BarAck:
        """:meth:`apply` answered as a :class:`BarAck` (a refusal is coded, never raised)."""
        try:
            status, code, message = self.apply(bar), None, ""
        except BarRefused as err:
            status, code, message = "refused", err.code, str(err)
        return BarAck(
            status=status,
            code=code,
            message=message,
            timestamp=_aware(bar.timestamp).isoformat(),
            latest=None if self.latest is None else self.latest.isoformat(),
            bars_held=self.bars_held,
            window_bars=self.window_bars,
            ready=self.ready,
            window_sha256=self.window_sha256,
        )

    # ------------------------------------------------------------------ decisions
    def window(self) -> dict[str, np.ndarray]:
        """The held window as ``DecisionRequest`` arrays (views, oldest row first)."""
        return {
            "close": self._close.view(),
            "volume": self._volume.view(),
            "spread_bps": self._spread.view(),
            "benchmark_returns": self._bench.view(),
            "tradable": self._tradable.view(),
        }

    def frozen_window(self) -> dict[str, np.ndarray]:
        """A read-only copy of :meth:`window`, made once per bar (requests keep it)."""
        if self._frozen is None:
            self._frozen = {k: v.copy() for k, v in self.window().items()}
            for a in self._frozen.values():
                a.flags.writeable = False
        return self._frozen

    def request(self, account: Any) -> DecisionRequest:
        """The stateless request an account request stands for: its account fields over
        the held window, timestamped with the latest bar (the named bar is checked by
        ``FrozenAllocator.trace(bar=...)``).

        Built without validating again: the account fields are the account request's,
        validated as :class:`DecisionRequest`'s own, and the window's arrays passed its
        checks as their bars arrived."""
        fields = {
            name: getattr(account, name)
            for name in DecisionRequest.model_fields
            if name not in MARKET_FIELDS
        }
        latest = self.latest if self.latest is not None else _aware(account.bar)
        return trusted(
            DecisionRequest,
            **fields,
            timestamp=latest,
            symbols=list(self.symbols),
            **self.frozen_window(),
        )
