"""Physical ranges of the money, price and size inputs of a decision, declared once.

The gates work in weights (fractions of equity) with a relative float tolerance and a tiny
absolute floor. Magnitudes no account or market can have break that arithmetic quietly: at
an equity of 1e300 the absolute floor times the equity is a whole currency unit, and the
approved book breaches the gross-notional cap by that much. Such inputs are refused, not
half-handled: every value below must be finite and inside its range.

=================  ===================  ==========================================
name               range                what
=================  ===================  ==========================================
equity             [1e-6, 1e15]         account equity (currency)
peak_equity        [1e-6, 1e15]         running peak of equity (currency)
cash               [-1e15, 1e15]        cash, negative on margin (currency)
buying_power       [0, 1e15]            buying power (currency)
price              [1e-8, 1e15]         close price per share (currency)
volume             [0, 1e15]            shares traded per bar
adv_notional       [0, 1e15]            traded notional per bar, volume x close
spread_bps         [0, 1e4]             quoted spread (basis points; 1e4 = 100%)
position           [-1e15, 1e15]        shares held (signed)
notional_cap       [1e-6, 1e15]         per-symbol or gross notional cap (currency)
benchmark_return   (-1, 10]             benchmark simple return per bar (fraction)
=================  ===================  ==========================================

A benchmark return of -1 has no log; the bound of 10 (+1000 % in one bar) keeps its
squares and products in the estimators finite (1e200 had overflowed them with warnings
only).

:func:`check_physical` is the one validation function: the production allocator calls it
on every request (a value outside is answered ``INVALID_INPUT``: detail ``out_of_range``
in the market arrays, ``account`` or ``positions`` in the account's fields)
and the configuration on its notional caps. The risk gates read the same table for
in-process callers: a portfolio whose equity is outside its range is unreadable (approved
flat, ``INVALID_INPUT``) and a symbol whose price, ADV notional or spread is outside is not
traded, exactly as if the value were NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from allocgym.errors import AllocgymError

MAX_MAGNITUDE = 1e15
"""Largest magnitude of any money, price or size input (1e15: about ten times the world's
yearly GDP, and small enough that the gates' absolute float tolerance stays far below one
currency unit)."""


@dataclass(frozen=True)
class PhysicalRange:
    """The closed interval ``[low, high]`` a finite input must lie in.

    Attributes
    ----------
    name : str
        Key in :data:`RANGES`.
    low, high : float
    unit : str
        Unit of the value (``currency``, ``shares``, ``bps``).
    what : str
        The quantity, in words.
    """

    name: str
    low: float
    high: float
    unit: str
    what: str
    low_open: bool = False
    """``low`` itself is outside: the interval is ``(low, high]``."""

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}] {self.unit}"

    def inside(self, x: float) -> bool:
        """Whether the scalar ``x`` is finite and inside (NaN fails every comparison)."""
        return (x > self.low if self.low_open else x >= self.low) and x <= self.high

    def outside(self, values: Any) -> np.ndarray:
        """Boolean mask of the values that are NaN, infinite or outside the interval."""
        v = np.asarray(values, dtype=np.float64)
        above = v > self.low if self.low_open else v >= self.low
        return ~(above & (v <= self.high))


def _r(
    name: str, low: float, high: float, unit: str, what: str, low_open: bool = False
) -> tuple[str, PhysicalRange]:
    return name, PhysicalRange(name, low, high, unit, what, low_open)


RANGES: Mapping[str, PhysicalRange] = MappingProxyType(
    dict(
        [
            _r("equity", 1e-6, MAX_MAGNITUDE, "currency", "account equity"),
            _r("peak_equity", 1e-6, MAX_MAGNITUDE, "currency", "running peak of equity"),
            _r("cash", -MAX_MAGNITUDE, MAX_MAGNITUDE, "currency", "cash"),
            _r("buying_power", 0.0, MAX_MAGNITUDE, "currency", "buying power"),
            _r("price", 1e-8, MAX_MAGNITUDE, "currency", "close price per share"),
            _r("volume", 0.0, MAX_MAGNITUDE, "shares", "shares traded per bar"),
            _r("adv_notional", 0.0, MAX_MAGNITUDE, "currency", "traded notional per bar"),
            _r("spread_bps", 0.0, 1e4, "bps", "quoted spread"),
            _r("position", -MAX_MAGNITUDE, MAX_MAGNITUDE, "shares", "shares held"),
            _r("notional_cap", 1e-6, MAX_MAGNITUDE, "currency", "notional cap"),
            _r("benchmark_return", -1.0, 10.0, "fraction", "benchmark simple return", True),
        ]
    )
)
"""Every documented range by name (the table of the module docstring)."""


class PhysicalRangeError(AllocgymError, ValueError):
    """An input is NaN, infinite or outside its documented physical range.

    Attributes
    ----------
    field : str
        Where the value came from (e.g. ``equity``, ``close[271, 3]``).
    value : float
        The first offending value.
    range : PhysicalRange
    """

    def __init__(self, field: str, value: float, rng: PhysicalRange) -> None:
        self.field, self.value, self.range = field, value, rng
        super().__init__(
            f"{field} = {value!r} is outside the {rng.what} range {rng}: send a finite value "
            "inside it (check the units and the scaling of the feed)"
        )


def check_physical(name: str, values: Any, field: str | None = None) -> None:
    """Refuse ``values`` unless every one is finite and inside ``RANGES[name]``.

    Parameters
    ----------
    name : str
        A key of :data:`RANGES`.
    values : float or array_like
        A scalar or an array of any shape.
    field : str, optional
        Name to report (default ``name``); array positions are appended as ``[i, j]``.

    Raises
    ------
    PhysicalRangeError
        Naming the first offending value, its position and the range.
    KeyError
        ``name`` is not a declared range.
    """
    rng = RANGES[name]
    if isinstance(values, float | int) or np.ndim(values) == 0:
        x = float(values)
        if not rng.inside(x):
            raise PhysicalRangeError(field or name, x, rng)
        return
    arr = np.asarray(values, dtype=np.float64)
    # min and max (NaN propagates into both) are the cheap check on the request path; the
    # mask is built only to name the offending entry
    if arr.size == 0 or (rng.inside(float(arr.min())) and rng.inside(float(arr.max()))):
        return
    where = tuple(int(i) for i in np.argwhere(rng.outside(arr))[0])
    label = f"{field or name}[{', '.join(map(str, where))}]"
    raise PhysicalRangeError(label, float(arr[where]), rng)
