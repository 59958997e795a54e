"""Request and response schemas of the production allocator (pydantic, OpenAPI-ready).

``DecisionRequest`` carries the allocation inputs: account (equity, cash, buying
power, peak equity), positions in shares, the recent market history of every symbol
(closes, volumes, spreads, tradable flags; benchmark returns), optional regime and
strategy-intent overrides, kill / reduce-only flags, a request id, an optional account
id and a timestamp.

History arrays are rows oldest to newest, the last row being the decision bar, columns in
the order of ``symbols``. Each may be sent as nested JSON lists or, exactly and compactly,
as ``{"dtype": "<f8", "shape": [L, N], "b64": <base64 of the little-endian bytes>}``
(``"|b1"`` for the boolean ``tradable``); the audit log stores them that way so a
replay sees identical bits. Types are strict (a boolean is ``true``/``false`` only, a
number is a JSON number, never a string or a boolean). Type and shape errors (not numbers,
ragged rows, wrong rank, a malformed symbol) fail validation (HTTP 422 naming the field);
values that parse but cannot be traded on (NaN, non-positive prices, a non-positive
equity, magnitudes outside the physical ranges of ``allocgym.ranges``, unknown, missing
or repeated symbols, short history, stale timestamps) are answered by a coded reject
:class:`Decision`. :func:`served_request_model` is the
request the HTTP service parses: the same fields with the served bundle's shapes (``N``
columns, at most ``serving.max_history_bars`` rows), so its JSON Schema states every
constraint that validation enforces.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    create_model,
)

from allocgym.errors import BundleError
from allocgym.ranges import RANGES
from allocgym.risk.context import Fill

DECISION_SCHEMA = "allocgym.decision/1"
"""Version tag of :class:`Decision`."""

_MAX_ELEMENTS = 50_000_000
_setattr = object.__setattr__  # past BaseModel.__setattr__, as model_construct sets
_DTYPES = {"<f8": np.dtype("<f8"), "|b1": np.dtype("|b1"), "<i8": np.dtype("<i8")}


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """Exact, compact JSON form of an array (base64 of its bytes): bool stays ``'|b1'``,
    integers become ``'<i8'``, everything else ``'<f8'``."""
    arr = np.asarray(a)
    kind = arr.dtype.kind
    code = "|b1" if kind == "b" else "<i8" if kind in "iu" else "<f8"
    arr = np.ascontiguousarray(arr, dtype=_DTYPES[code])  # no copy when it already is
    return {
        "dtype": code,
        "shape": list(arr.shape),
        "b64": binascii.b2a_base64(arr.tobytes(), newline=False).decode("ascii"),
    }


def decode_array(obj: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_array`: a read-only array over the decoded raw bytes.

    Raises
    ------
    ValueError
        Unknown dtype, bad shape or base64, or a byte count that does not fit the shape.
    """
    if set(obj) != {"dtype", "shape", "b64"}:
        raise ValueError("an encoded array has exactly the keys dtype, shape, b64")
    if not isinstance(obj["b64"], str):
        raise ValueError("encoded array b64 must be a string")
    try:
        raw = base64.b64decode(obj["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("encoded array b64 is not valid base64") from None
    return array_from_bytes(raw, obj["dtype"], obj["shape"])


def array_from_bytes(raw: bytes, dtype: Any, shape: Any) -> np.ndarray:
    """A read-only ``'<f8'`` / ``'<i8'`` / ``'|b1'`` array of ``shape`` over ``raw`` (checked).

    Raises
    ------
    ValueError
        Unknown dtype, bad shape, too many elements or a byte count that does not fit.
    """
    dt_ = _DTYPES.get(dtype) if isinstance(dtype, str) else None
    if dt_ is None:
        raise ValueError(f"encoded array dtype {dtype!r}: use '<f8', '<i8' or '|b1'")
    if not isinstance(shape, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise ValueError(f"encoded array shape {shape!r}: a list of non-negative ints")
    size = math.prod(shape)
    if size > _MAX_ELEMENTS:
        raise ValueError(f"encoded array has {size} elements, more than {_MAX_ELEMENTS}")
    if len(raw) != size * dt_.itemsize:
        raise ValueError(
            f"encoded array holds {len(raw)} bytes, shape {shape} of {dtype} needs "
            f"{size * dt_.itemsize}"
        )
    return np.frombuffer(raw, dtype=dt_).reshape(shape)


SYMBOL_PATTERN = r"^[A-Za-z0-9^][A-Za-z0-9._:/^=+-]*$"
"""What a symbol looks like on the wire: an ASCII ticker (``AAPL``, ``BRK.B``, ``BF-B``,
``^GSPC``, ``EUR/USD``, ``ES=F``), no whitespace."""
SYMBOL_MAX_LENGTH = 32

Symbol = Annotated[
    str, StringConstraints(min_length=1, max_length=SYMBOL_MAX_LENGTH, pattern=SYMBOL_PATTERN)
]
"""One symbol (:data:`SYMBOL_PATTERN`, at most :data:`SYMBOL_MAX_LENGTH` characters)."""

_ROW_CHECKS: dict[tuple[int, str], TypeAdapter[Any]] = {
    (1, "f"): TypeAdapter(list[StrictFloat]),
    (2, "f"): TypeAdapter(list[list[StrictFloat]]),
    (2, "b"): TypeAdapter(list[list[StrictBool]]),
    (1, "b"): TypeAdapter(list[StrictBool]),
}
"""Element types of the nested-list form, checked strictly (a JSON ``true`` is not 1.0, a
string ``"1.5"`` is not a number, ``null`` is not NaN)."""


def _strict_elements(value: Any, ndim: int, kind: str) -> Any:
    try:
        return _ROW_CHECKS[ndim, kind].validate_python(value)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = "".join(f"[{p}]" for p in first["loc"])
        raise ValueError(f"element {where}: {first['msg']}") from None


def _array_validator(
    ndim: int,
    kind: Literal["f", "b"],
    rows: tuple[int, int] | None = None,
    cols: int | None = None,
) -> Callable[[Any], np.ndarray]:
    """Validator of an array field: nested lists (strict element types), the encoded
    form (:func:`decode_array`) or an ndarray; ``rows`` bounds the first axis, ``cols``
    fixes the last one."""
    dims = "(L, n_symbols)" if ndim == 2 else "(L,)" if ndim == 1 else f"{ndim}-d"

    def validate(value: Any) -> np.ndarray:
        if isinstance(value, dict):
            a = decode_array(value)
        elif isinstance(value, np.ndarray):
            a = value
        elif isinstance(value, list | tuple):
            rows_ = _strict_elements(value, ndim, kind)
            try:
                a = np.asarray(rows_, dtype=np.float64 if kind == "f" else np.bool_)
            except (ValueError, TypeError):
                raise ValueError("rows of different lengths: send a rectangular array") from None
        else:
            raise ValueError(f"expected an array {dims}, got {type(value).__name__}")
        if kind == "f":
            if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
                raise ValueError(f"expected numbers, got dtype {a.dtype}")
            a = a.astype(np.float64, copy=False)
        elif a.dtype != np.bool_:
            raise ValueError(f"expected booleans (true/false), got dtype {a.dtype}")
        if a.ndim != ndim:
            raise ValueError(f"expected shape {dims}, got {a.shape}")
        if rows is not None and not rows[0] <= a.shape[0] <= rows[1]:
            raise ValueError(f"expected {rows[0]} to {rows[1]} rows, got {a.shape[0]}")
        if cols is not None and a.shape[-1] != cols:
            what = "columns (one per symbol)" if ndim == 2 else "values (one per symbol)"
            raise ValueError(f"expected {cols} {what}, got {a.shape[-1]}")
        return a

    return validate


def _array_json_schema(
    ndim: int, item: str, rows: tuple[int, int] | None = None, cols: int | None = None
) -> dict[str, Any]:
    """JSON Schema of the nested-list form; the encoded form (exact, but its byte count
    cannot be tied to its shape in JSON Schema) is described under ``x-encoded-array``."""
    lo, hi = rows if rows is not None else (1, None)
    inner: dict[str, Any] = {"type": item}
    for depth in range(ndim):
        inner = {"type": "array", "items": inner}
        if depth == 0 and cols is not None:
            inner |= {"minItems": cols, "maxItems": cols}
        elif depth == ndim - 1:
            inner |= {"minItems": lo} | ({} if hi is None else {"maxItems": hi})
        else:
            inner |= {"minItems": 1}
    codes = ["<f8", "<i8"] if item == "number" else ["|b1"]
    inner["x-encoded-array"] = {
        "description": "Also accepted: the exact form {dtype, shape, b64}, b64 = base64 of the "
        "little-endian bytes of an array of that dtype and this shape.",
        "type": "object",
        "properties": {
            "dtype": {"type": "string", "enum": codes},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "b64": {"type": "string", "contentEncoding": "base64"},
        },
        "required": ["dtype", "shape", "b64"],
        "additionalProperties": False,
    }
    return inner


def _to_list(a: np.ndarray) -> list[Any]:
    return a.tolist()


def array_type(
    ndim: int,
    kind: Literal["f", "b"],
    rows: tuple[int, int] | None = None,
    cols: int | None = None,
) -> Any:
    """An ndarray field type: validator, list serializer and JSON Schema from one spec."""
    return Annotated[
        np.ndarray,
        PlainValidator(_array_validator(ndim, kind, rows, cols)),
        PlainSerializer(_to_list, return_type=list),
        WithJsonSchema(
            _array_json_schema(ndim, "number" if kind == "f" else "boolean", rows, cols)
        ),
    ]


FloatMatrix = array_type(2, "f")
FloatVector = array_type(1, "f")
BoolMatrix = array_type(2, "b")

_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?"
)
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt](?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d+)?"
    r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
)


def _datetime_text(pattern: re.Pattern[str], what: str) -> Callable[[Any], Any]:
    """Admit datetimes and strings of ``pattern`` only: no Unix-time numbers or digit
    strings read as seconds since 1970."""

    def check(value: Any) -> Any:
        if isinstance(value, dt.datetime) or (isinstance(value, str) and pattern.fullmatch(value)):
            return value
        raise ValueError(f"expected {what}, got {value!r:.80}")

    return check


Timestamp = Annotated[
    dt.datetime,
    BeforeValidator(
        _datetime_text(_ISO_DATETIME, "an ISO 8601 date-time such as 2024-05-01T20:00:00Z")
    ),
]
RFC3339Timestamp = Annotated[
    dt.datetime,
    BeforeValidator(
        _datetime_text(_RFC3339, "an RFC 3339 date-time with an offset, e.g. 2024-05-01T20:00:00Z")
    ),
]

SymbolNumbers = Annotated[
    dict[Symbol, StrictFloat],
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {
                "type": "string",
                "minLength": 1,
                "maxLength": SYMBOL_MAX_LENGTH,
                "pattern": SYMBOL_PATTERN,
            },
            "additionalProperties": {"type": "number"},
        }
    ),
]
"""A number per symbol (positions, a held target), the key pattern stated in the schema."""


class RegimeOverride(BaseModel):
    """A regime context supplied by the caller (a regime label and its confidence)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    label: str = Field(min_length=1, max_length=64)
    """Regime label; ``REGIME_LABELS`` get their multipliers, any other label (e.g.
    ``neutral``) gets the default multipliers."""
    confidence: StrictFloat = 1.0
    """Confidence in [0, 1] (reported; the gates use the label); outside: a coded
    INVALID_INPUT reject."""


def _physical(name: str) -> Any:
    """A finite ``StrictFloat`` inside the physical range ``name`` (``allocgym.ranges``)."""
    rng = RANGES[name]
    return Field(allow_inf_nan=False, ge=rng.low, le=rng.high)


class RecentFill(BaseModel):
    """A fill already executed in the current bar: it has used up part of the bar's
    capacity (participation and turnover, per symbol and portfolio-wide)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    symbol: Symbol
    """The symbol traded (one of the bundle's)."""
    qty: StrictFloat = _physical("position")
    """Signed quantity in shares (a buy > 0, a sell < 0), finite, magnitude at most 1e15."""
    price: StrictFloat = _physical("price")
    """Fill price per share, finite, in [1e-8, 1e15]."""
    time: Timestamp
    """When it executed (ISO 8601; naive = UTC; over HTTP RFC 3339 with an offset): in the
    bar being decided, at or after the decision bar's timestamp and not after the
    decision."""

    def record(self) -> Fill:
        """The fill as the gates' ``allocgym.risk.Fill``."""
        return Fill(self.symbol, self.qty, self.price, self.time)


def served_fill_model(symbols: Sequence[str]) -> type[RecentFill]:
    """The :class:`RecentFill` the HTTP service parses: ``symbol`` one of the bundle's
    ``symbols`` (an enum in its JSON Schema), ``time`` in RFC 3339."""
    base = RecentFill.model_fields
    return create_model(
        "RecentFill",
        __base__=RecentFill,
        __doc__=RecentFill.__doc__,
        __module__=__name__,
        symbol=(Literal[tuple(symbols)], Field(description=base["symbol"].description)),
        time=(RFC3339Timestamp, Field(description=base["time"].description)),
    )


INTENT_VECTOR_FIELDS: tuple[str, ...] = ("strategy_intents", "strategy_confidence")
"""Request fields holding one (N,) vector per strategy family."""


def _hash_intent_vectors(h: Any, request: BaseModel) -> None:
    """Feed every per-family vector of ``request`` to ``h`` by its exact bytes."""
    for name in INTENT_VECTOR_FIELDS:
        tag = "intent" if name == "strategy_intents" else name
        for fam, v in sorted((getattr(request, name, None) or {}).items()):
            h.update(f"|{tag}:{fam}:{v.dtype.str}:{v.shape}".encode())
            h.update(np.ascontiguousarray(v).tobytes())


class DecisionRequest(BaseModel):
    """One allocation request: account, positions, market history and overrides.

    Shapes: ``L`` bars of history (``L >= FrozenAllocator.history`` of the bundle, at most
    ``serving.max_history_bars``), ``N`` = number of ``symbols``. Types are strict: no
    boolean, string or null is read as a number, no number or string as a boolean.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, use_attribute_docstrings=True
    )

    request_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
    """Caller's id; a repeated id gets the stored decision back (idempotency)."""
    account_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$"
    )
    """The account decided for; the per-strategy P&L metric attributes each account's P&L
    since its own previous decision. Requests without one are one unnamed account: set it
    when one service decides for several accounts."""
    timestamp: Timestamp
    """Time of the decision bar's data (ISO 8601; naive = UTC; over HTTP RFC 3339 with an
    offset); older than ``serving.max_staleness_s`` is rejected (STALE_INPUT)."""
    symbols: list[Symbol] = Field(min_length=1)
    """Column order of every history array; must be exactly the bundle's symbols (any
    order; unknown, missing or repeated symbols: a coded INVALID_INPUT reject)."""
    equity: StrictFloat
    """Account equity in currency, in [1e-6, 1e15] (else a coded INVALID_INPUT reject)."""
    cash: StrictFloat
    """Cash in currency (may be negative on margin), in [-1e15, 1e15]."""
    buying_power: StrictFloat
    """Buying power in currency, in [0, 1e15] (else a coded INVALID_INPUT reject;
    recorded)."""
    peak_equity: StrictFloat | None = None
    """Running peak of equity for the drawdown feature, in [1e-6, 1e15]; default = equity
    (no drawdown)."""
    positions: SymbolNumbers = Field(default_factory=dict)
    """Shares held per symbol (signed, magnitude at most 1e15); symbols not listed hold 0."""
    close: FloatMatrix
    """Close prices (L, N), in [1e-8, 1e15] (else a coded INVALID_INPUT reject)."""
    volume: FloatMatrix
    """Shares traded per bar (L, N), in [0, 1e15], with volume x close at most 1e15."""
    spread_bps: FloatMatrix
    """Quoted spread in bps (L, N), in [0, 1e4]."""
    benchmark_returns: FloatVector
    """Benchmark simple returns (L,), row-aligned with ``close`` (row 0 may be 0), in (-1, 10]."""
    tradable: BoolMatrix | None = None
    """Tradable flags (L, N); default all true."""
    regime: RegimeOverride | None = None
    """Regime context; overrides the model's (see ``serving.regime_source``)."""
    strategy_intents: dict[str, FloatVector] | None = None
    """Per strategy family (``STRATEGY_FAMILIES``), intents (N,) in [-1, 1] replacing the
    FeatureBuilder's in the budgets-mode aggregation (ignored in weights mode); a family
    left out keeps the FeatureBuilder's intents."""
    strategy_confidence: dict[str, FloatVector] | None = None
    """Per strategy family, the confidence (N,) in [0, 1] of each of its intents: the
    aggregator weights a family's intents by it before normalising them to the family's
    budget (a confidence of 0 ignores the intent). Default 1 (unweighted); only for
    families given in ``strategy_intents``."""
    strategy_horizons: dict[str, StrictInt] | None = None
    """Per strategy family, its horizon in bars (>= 1); default the bundle's horizon of
    that family (the look-back its FeatureBuilder signal is built for)."""
    strategy_intent_age: dict[str, StrictInt] | None = None
    """Per strategy family, bars since its intents were issued (>= 0, default 0). An intent
    older than its horizon is dropped or decays, halving every further horizon
    (``intents.stale_rule`` of the bundle's configuration); its share of the family's
    budget stays in cash."""
    recent_fills: list[RecentFill] | None = None
    """Fills already executed in the bar being decided (``positions`` already include
    them). Their notional, ``|qty x price|`` per fill, counts against the bar's capacity:
    the participation cap and the per-symbol turnover ceiling of each symbol and the
    portfolio's turnover ceiling leave the new trade only the room the fills did not use.
    Over HTTP a fill of a symbol outside the bundle or a non-finite or out-of-range
    quantity or price does not match the schema (422 naming the fill's field); a fill
    whose time lies outside the bar (before the decision bar's timestamp, or after the
    decision beyond ``serving.max_future_skew_s``) is a coded INVALID_INPUT reject naming
    the fill and the value (in-process, so is an unknown symbol)."""
    kill_switch: StrictBool = False
    """Flatten everything now (always wins)."""
    reduce_only: StrictBool = False
    """Only reduce positions in this decision."""
    scheduled: StrictBool = True
    """Whether this bar is a scheduled execution window. Read only by a bundle with
    ``execution.scheduled_only``, which trades off its windows on a risk override alone
    (vol spike, spread blowout, kill switch): send false on the bars between them, as the
    env's schedule (``t % execution.schedule_every``) does."""
    hold_target: SymbolNumbers | Literal["current"] | None = None
    """A bar between two decisions of a bundle with ``decision_interval`` > 1: the model
    is not called, and the gates and execution run on this proposal, as on the env's held
    bars. Send the last decision's ``proposed_weights`` (by symbol; a symbol left out
    proposes 0) while its response said ``working`` (a per-decision trade limit still
    cuts it short: the env keeps trading towards it), else ``"current"`` (the drifted
    book, which the gates may still bring back inside the limits). Weights and tilt
    modes only (a budgets-mode bundle decides every bar); the kill switch and a disabled
    allocator take precedence. A non-finite weight or an unknown symbol is a coded
    INVALID_INPUT reject."""

    def digest(self) -> str:
        """sha256 of the request's content (arrays by their exact bytes, shape and dtype)."""
        h = hashlib.sha256()
        arrays = (
            "close",
            "volume",
            "spread_bps",
            "benchmark_returns",
            "tradable",
            "strategy_intents",
            "strategy_confidence",
        )
        scalars = self.model_dump(mode="json", exclude=set(arrays))
        h.update(json.dumps(scalars, sort_keys=True, separators=(",", ":")).encode())
        for name in arrays[:5]:
            a = getattr(self, name)
            h.update(f"|{name}:{None if a is None else (a.dtype.str, a.shape)}".encode())
            if a is not None:
                h.update(np.ascontiguousarray(a).tobytes())
        _hash_intent_vectors(h, self)
        return h.hexdigest()

    ARRAY_FIELDS: ClassVar[tuple[str, ...]] = (
        "close", "volume", "spread_bps", "benchmark_returns", "tradable",
    )  # fmt: skip

    def to_audit(
        self, store: Callable[[np.ndarray], dict[str, Any]] = encode_array
    ) -> dict[str, Any]:
        """JSON-ready dict with every array passed through ``store``.

        The default embeds arrays exactly (base64, :func:`encode_array`);
        ``allocgym.serving.service.ArrayStore.put`` stores them content-addressed next to
        the audit log and returns a reference instead.
        """
        out = self.model_dump(
            mode="json",
            exclude={*self.ARRAY_FIELDS, *INTENT_VECTOR_FIELDS, "timestamp"},
        )
        out["timestamp"] = self.timestamp.isoformat()
        for name in self.ARRAY_FIELDS:
            a = getattr(self, name)
            out[name] = None if a is None else store(a)
        for name in INTENT_VECTOR_FIELDS:
            vectors = getattr(self, name)
            out[name] = None if vectors is None else {k: store(v) for k, v in vectors.items()}
        return out


def served_request_model(symbols: Sequence[str], max_history_bars: int) -> type[DecisionRequest]:
    """The :class:`DecisionRequest` that the HTTP service parses for one bundle.

    The same fields with the bundle's shapes: exactly ``N = len(symbols)`` symbols, every
    matrix ``N`` columns wide and 1 to ``max_history_bars`` rows long, intent vectors of
    length ``N``, and a timestamp in RFC 3339 with an offset. Its JSON Schema therefore
    states every rule validation enforces; what it cannot state (arrays of different
    lengths, too short a history, unknown symbols, values out of range) is decided by the
    allocator as a coded reject.

    Parameters
    ----------
    symbols : sequence of str
        The bundle's symbols.
    max_history_bars : int
        ``serving.max_history_bars``.

    Raises
    ------
    BundleError
        A bundle symbol does not match :data:`SYMBOL_PATTERN` (no request could name it).
    """
    pattern = re.compile(SYMBOL_PATTERN)
    odd = [s for s in symbols if not (pattern.match(s) and len(s) <= SYMBOL_MAX_LENGTH)]
    if odd:
        raise BundleError(
            f"bundle symbols {odd[:5]} do not match {SYMBOL_PATTERN} (at most "
            f"{SYMBOL_MAX_LENGTH} characters): rename them in the data and re-export"
        )
    n = len(symbols)
    rows = (1, int(max_history_bars))
    base = DecisionRequest.model_fields

    def described(name: str, **kw: Any) -> Any:
        return Field(description=base[name].description, **kw)

    return create_model(
        "DecisionRequest",
        __base__=DecisionRequest,
        __doc__=DecisionRequest.__doc__,
        __module__=__name__,
        timestamp=(RFC3339Timestamp, described("timestamp")),
        symbols=(list[Symbol], described("symbols", min_length=n, max_length=n)),
        close=(array_type(2, "f", rows, n), described("close")),
        volume=(array_type(2, "f", rows, n), described("volume")),
        spread_bps=(array_type(2, "f", rows, n), described("spread_bps")),
        benchmark_returns=(array_type(1, "f", rows), described("benchmark_returns")),
        tradable=(array_type(2, "b", rows, n) | None, described("tradable", default=None)),
        strategy_intents=(
            dict[str, array_type(1, "f", cols=n)] | None,  # type: ignore[valid-type]
            described("strategy_intents", default=None),
        ),
        strategy_confidence=(
            dict[str, array_type(1, "f", cols=n)] | None,  # type: ignore[valid-type]
            described("strategy_confidence", default=None),
        ),
        recent_fills=(
            list[served_fill_model(symbols)] | None,  # type: ignore[misc]
            described("recent_fills", default=None),
        ),
    )


MARKET_FIELDS: tuple[str, ...] = ("timestamp", "symbols", *DecisionRequest.ARRAY_FIELDS)
"""The :class:`DecisionRequest` fields the streaming market state supplies; every other
field is the account's and travels in :class:`AccountRequest`."""


BarCode = Literal["bar_out_of_order", "bar_gap", "bar_conflict", "bar_invalid"]
"""Why a bar is refused (:class:`BarAck`)."""


class Bar(BaseModel):
    """One new bar for every symbol of the served universe (``POST /v1/bars``).

    ``previous`` names the bar this one follows, so a missing bar is seen without a
    trading calendar: a bar whose ``previous`` is not the latest held bar is refused as a
    gap. A bar with a held timestamp is a replay when identical, a conflict otherwise; an
    older one is refused as out of order. Values are checked against the physical ranges
    of ``allocgym.ranges`` before the bar is applied.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, use_attribute_docstrings=True
    )

    timestamp: Timestamp
    """Time of the bar (ISO 8601; naive = UTC; over HTTP RFC 3339 with an offset)."""
    previous: Timestamp | None = None
    """Timestamp of the bar this one follows; required once the service holds a bar."""
    symbols: list[Symbol] = Field(min_length=1)
    """Order of the per-symbol vectors; exactly the bundle's symbols, any order."""
    close: FloatVector
    """Close price per symbol, in [1e-8, 1e15]."""
    volume: FloatVector
    """Shares traded in the bar, in [0, 1e15]."""
    spread_bps: FloatVector
    """Quoted spread in bps, in [0, 1e4]."""
    tradable: array_type(1, "b") | None = None  # type: ignore[valid-type]
    """Tradable flag per symbol; default all true."""
    benchmark_return: StrictFloat
    """Benchmark simple return into this bar, in (-1, 10]."""


class BarAck(BaseModel):
    """The answer to a bar: applied, a replay of a bar already held, or refused with a code.

    A refusal is a 200 like a coded reject decision: the bar was understood and the
    service's answer is not to apply it.
    """

    status: Literal["applied", "replay", "refused"]
    """``replay``: the same bar was applied before; ``refused``: see ``code`` (nothing
    changed in either case)."""
    code: BarCode | None
    """Why a bar was refused: older than the latest held bar and not held, its
    ``previous`` is not the latest held bar, another bar under a held timestamp, or values
    outside their physical ranges (None unless refused)."""
    message: str
    """What was wrong and the fix ("" unless refused)."""
    timestamp: str
    """The bar's timestamp (ISO 8601)."""
    latest: str | None
    """The latest bar held (ISO 8601; None before the first); decisions name it."""
    bars_held: int
    """Bars in the rolling window (at most ``window_bars``)."""
    window_bars: int
    """The window's bound."""
    ready: bool
    """Whether enough bars are held to decide (``bars_held >= history``)."""
    window_sha256: str
    """sha256 of the held window's arrays (what a decision on the latest bar reads)."""


def _account_fields(base: type[DecisionRequest]) -> dict[str, Any]:
    return {
        name: (info.annotation, info)
        for name, info in base.model_fields.items()
        if name not in MARKET_FIELDS
    }


class _AccountBase(BaseModel):
    """A decision on the held market state: the account only, and the bar it decides on.

    The fields besides ``bar`` are :class:`DecisionRequest`'s account fields, unchanged
    (built from them, so the two never drift); the market history comes from the
    service's rolling window, which must end at ``bar``.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, use_attribute_docstrings=True
    )

    bar: Timestamp
    """Timestamp of the bar decided on: the latest bar the service holds (else a coded
    reject: STALE_INPUT ``bar_not_latest`` for an older bar, INVALID_INPUT
    ``bar_not_held`` for one the service has not received)."""

    def digest(self) -> str:
        """sha256 of the request's content (intent vectors by their exact bytes)."""
        scalars = self.model_dump(mode="json", exclude={*INTENT_VECTOR_FIELDS, "bar"})
        scalars["bar"] = self.bar.isoformat()
        h = hashlib.sha256(json.dumps(scalars, sort_keys=True, separators=(",", ":")).encode())
        _hash_intent_vectors(h, self)
        return h.hexdigest()


def _with_account_fields(
    name: str, base: type[DecisionRequest], bar_type: Any
) -> type[_AccountBase]:
    return create_model(
        name,
        __base__=_AccountBase,
        __doc__=_AccountBase.__doc__,
        __module__=__name__,
        bar=(bar_type, Field(description=_AccountBase.model_fields["bar"].description)),
        **_account_fields(base),
    )


AccountRequest = _with_account_fields("AccountRequest", DecisionRequest, Timestamp)
"""A decision on the held market state: ``bar`` and the account fields of
:class:`DecisionRequest` (the docstring above)."""


def served_account_model(symbols: Sequence[str], max_history_bars: int) -> type[_AccountBase]:
    """The :class:`AccountRequest` the HTTP service parses: the account fields of
    :func:`served_request_model` (intent vectors of length ``N``), ``bar`` in RFC 3339."""
    return _with_account_fields(
        "AccountRequest", served_request_model(symbols, max_history_bars), RFC3339Timestamp
    )


def served_bar_model(symbols: Sequence[str]) -> type[Bar]:
    """The :class:`Bar` the HTTP service parses: vectors of ``N = len(symbols)`` values,
    timestamps in RFC 3339."""
    n = len(symbols)
    base = Bar.model_fields

    def described(name: str, **kw: Any) -> Any:
        return Field(description=base[name].description, **kw)

    return create_model(
        "Bar",
        __base__=Bar,
        __doc__=Bar.__doc__,
        __module__=__name__,
        timestamp=(RFC3339Timestamp, described("timestamp")),
        previous=(RFC3339Timestamp | None, described("previous", default=None)),
        symbols=(list[Symbol], described("symbols", min_length=n, max_length=n)),
        close=(array_type(1, "f", cols=n), described("close")),
        volume=(array_type(1, "f", cols=n), described("volume")),
        spread_bps=(array_type(1, "f", cols=n), described("spread_bps")),
        tradable=(array_type(1, "b", cols=n) | None, described("tradable", default=None)),
    )


_Model = TypeVar("_Model", bound=BaseModel)


def trusted(cls: type[_Model], /, **values: Any) -> _Model:
    """``cls.model_construct(**values)`` for values that name every field of ``cls``
    and are already valid (what the serving path computed or validated itself): the same
    instance, without ``model_construct``'s per-field alias and default lookups (about
    half its cost; a decision builds several models). ``cls`` has no post-init hook.

    Raises
    ------
    KeyError
        A field of ``cls`` is missing from ``values``, or a value names no field.
    """
    names = cls.model_fields
    if len(names) != len(values) or not names.keys() <= values.keys():
        missing, unknown = sorted(names.keys() - values.keys()), sorted(values.keys() - names)
        raise KeyError(
            f"trusted({cls.__name__}): missing fields {missing}, unknown fields {unknown}: "
            "give every field by name (or build it with model_validate)"
        )
    fields = {name: values[name] for name in names}
    m = cls.__new__(cls)
    _setattr(m, "__dict__", fields)
    _setattr(m, "__pydantic_fields_set__", set(fields))
    _setattr(m, "__pydantic_extra__", None)
    _setattr(m, "__pydantic_private__", None)
    return m


class StrategyBudget(BaseModel):
    """One line of the per-strategy budget utilisation trace (fractions of equity)."""

    strategy: str
    """Strategy family, ``cash``, or ``policy`` in weights mode (the policy's whole book)."""
    budget: float
    """Budget the policy gave it (weights mode: the proposal's net exposure)."""
    proposed_gross: float
    """Gross exposure it proposed."""
    approved_gross: float
    """Gross exposure of the approved book held for it (each name's ``|w_i|`` split over
    the families in proportion to their contributions after STRATEGY_CAP; the family lines
    sum to the approved book's gross; weights mode: the whole approved book)."""
    base_cap: float | None = None
    """Budgets mode: its configured base budget (``risk.strategy_budgets``)."""
    regime_cap: float | None = None
    """Budgets mode: ``base_cap`` x the regime budget multiplier x the regime's tilt."""
    cap: float | None
    """The cap it was held to. Budgets mode: ``regime_cap`` x the capacity factor (spread,
    volatility, liquidity), the budget STRATEGY_CAP enforces; weights mode: max_gross x the
    regime budget multiplier."""
    utilization: float | None
    """approved_gross / cap."""


class RegimeInfo(BaseModel):
    """Regime used by the gates."""

    label: str
    code: int
    """Code into ``REGIME_LABELS``; -1 for a label outside them (default multipliers)."""
    confidence: float
    source: Literal["model", "request", "default"]
    barbell: str | None
    """QUIET / NORMAL / CRISIS from the regime model (None when features were not computed)."""
    budget_multiplier: float
    capacity_multiplier: float


class ModelInfo(BaseModel):
    """Which frozen policy decided."""

    model_id: str
    sha256: str
    config_hash: str
    mode: str


class FallbackInfo(BaseModel):
    """Why the defensive allocation was used."""

    kind: Literal["hold", "hrp"]
    """Defensive allocation that was proposed to the gates."""
    cause: Literal["exception", "nan", "deadline", "bad_output", "prior", "disabled"]
    message: str


class RejectInfo(BaseModel):
    """Why a request was rejected (no new allocation; the book is held)."""

    code: Literal["INVALID_INPUT", "STALE_INPUT"]
    """``ReasonCode`` name."""
    detail: str
    """Machine-readable cause: unknown_symbol, missing_symbol, duplicate_symbol,
    history_length, shape, non_finite, non_positive_price, negative_value, out_of_range,
    stale, future_timestamp, account, positions, regime, intents, recent_fills,
    internal_error."""
    field: str | None
    message: str


class Latency(BaseModel):
    """Wall time of the decision stages in microseconds (not part of the audited output)."""

    total_us: float
    validate_us: float
    features_us: float
    model_us: float
    gates_us: float
    execution_us: float


class Decision(BaseModel):
    """The allocator's answer: orders, approved book, codes, budgets, regime, model.

    Per-symbol lists follow ``symbols`` (the bundle's order). ``status``: ``ok`` (policy
    proposal), ``fallback`` (model failed: defensive allocation, MODEL_FALLBACK),
    ``disabled`` (TRADING_ALLOCATOR_ENABLED false: defensive baseline,
    ALLOCATOR_DISABLED), ``killed`` (kill switch: flat), ``rejected`` (bad input: no new
    allocation, ``target_delta_qty`` all 0 or, with the kill switch on, closing every
    position).
    """

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal["allocgym.decision/1"] = DECISION_SCHEMA
    request_id: str
    status: Literal["ok", "fallback", "disabled", "killed", "rejected"]
    timestamp: str
    """The request's timestamp (ISO 8601)."""
    decided_at: str
    """Server clock at the decision (ISO 8601, UTC)."""
    symbols: list[str]
    target_weights: list[float] | None
    """Book held after the lot-rounded orders, fractions of equity."""
    target_delta_qty: list[int | float] | None
    """Signed order quantity in shares: exact whole lots (JSON integers when the lot size
    is a whole number of shares); a close-out is exactly minus the held quantity."""
    target_qty: list[int | float] | None
    """Position in shares after the orders (integers when whole)."""
    approved_weights: list[float] | None
    """Weights approved by the risk gates (before execution bands and lots)."""
    proposed_weights: list[float] | None
    """What was proposed to the gates (policy, aggregated budgets or fallback)."""
    current_weights: list[float] | None
    reasons: list[list[str]] | None
    """ReasonCode names per symbol (gates, execution and serving codes)."""
    reason_mask: list[int] | None
    """The same codes as int64 bitmasks."""
    portfolio_reasons: list[str]
    budgets: list[StrategyBudget]
    regime: RegimeInfo | None
    model: ModelInfo
    fallback: FallbackInfo | None = None
    reject: RejectInfo | None = None
    gross_exposure: float | None
    net_exposure: float | None
    latency: Latency | None = None
    hold: bool = False
    """The proposal was the request's ``hold_target`` (the model was not called; false
    when the kill switch or a disabled allocator decided instead)."""
    working: bool | None = None
    """A per-decision trade limit (turnover, participation, slippage budget) cut this
    decision short of its proposal: on the bars before the next decision, send
    ``hold_target`` = ``proposed_weights`` (the env's held target). Only a policy
    decision (``status`` ok: the model's proposal or an honoured hold) can be working;
    a fallback, disabled or killed book is not held on (None when rejected)."""

    VECTOR_FIELDS: ClassVar[tuple[str, ...]] = (
        "target_weights", "target_delta_qty", "target_qty", "approved_weights",
        "proposed_weights", "current_weights",
    )  # fmt: skip

    def audit_output(self) -> dict[str, Any]:
        """The decision as the audit log stores (and ``replay`` re-checks) it.

        No latency; per-symbol vectors as exact base64 arrays (:func:`encode_array`:
        float64 weights and quantities, int64 ``reason_mask``), the per-symbol reason
        names left out (they are ``reason_mask`` decoded); everything else as in the JSON
        response. Compact, so that logging a 500-symbol decision stays cheap.
        """
        out = self.model_dump(mode="json", exclude=_AUDIT_EXCLUDED)
        for name in self.VECTOR_FIELDS:
            v = getattr(self, name)
            out[name] = None if v is None else encode_array(np.asarray(v, dtype=np.float64))
        m = self.reason_mask
        out["reason_mask"] = None if m is None else encode_array(np.asarray(m, dtype=np.int64))
        return out


# the fields ``Decision.audit_output`` writes itself or leaves out (read-only)
# ``hold`` and ``working`` follow from the request and the reason codes: left out, so
# that logs written before them still replay byte for byte
_AUDIT_EXCLUDED: set[str] = {
    "latency", "reasons", *Decision.VECTOR_FIELDS, "reason_mask", "hold", "working",
}  # fmt: skip
