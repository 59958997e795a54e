"""Request and response schemas of the production allocator (pydantic, OpenAPI-ready).

``DecisionRequest`` carries seed 001's allocation inputs: account (equity, cash, buying
power, peak equity), positions in shares, the recent market history of every symbol
(closes, volumes, spreads, tradable flags; benchmark returns), optional regime and
strategy-intent overrides, kill / reduce-only flags, a request id and a timestamp.

History arrays are rows oldest to newest, the last row being the decision bar, columns in
the order of ``symbols``. Each may be sent as nested JSON lists or, exactly and compactly,
as ``{"dtype": "<f8", "shape": [L, N], "b64": <base64 of the little-endian bytes>}``
(``"|b1"`` for the boolean ``tradable``); the audit log stores them that way so a
replay sees identical bits. Type errors (not numbers, ragged rows, wrong rank) fail
validation (HTTP 422); values that parse but cannot be traded on (NaN, non-positive
prices, unknown or missing symbols, short history, stale timestamps) are answered by a
coded reject :class:`Decision`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)

DECISION_SCHEMA = "allocgym.decision/1"
"""Version tag of :class:`Decision`."""

_MAX_ELEMENTS = 50_000_000
_DTYPES = {"<f8": np.dtype("<f8"), "|b1": np.dtype("|b1"), "<i8": np.dtype("<i8")}


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """Exact, compact JSON form of an array (base64 of its bytes): bool stays ``'|b1'``,
    integers become ``'<i8'``, everything else ``'<f8'``."""
    arr = np.ascontiguousarray(a)
    if arr.dtype == np.bool_:
        code = "|b1"
    elif arr.dtype.kind in "iu":
        arr = np.ascontiguousarray(arr, dtype="<i8")
        code = "<i8"
    else:
        arr = np.ascontiguousarray(arr, dtype="<f8")
        code = "<f8"
    return {
        "dtype": code,
        "shape": list(arr.shape),
        "b64": base64.b64encode(arr.tobytes()).decode(),
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


def _array_validator(ndim: int, kind: Literal["f", "b"]) -> Callable[[Any], np.ndarray]:
    dims = "(L, n_symbols)" if ndim == 2 else "(L,)" if ndim == 1 else f"{ndim}-d"

    def validate(value: Any) -> np.ndarray:
        if isinstance(value, dict):
            a = decode_array(value)
        elif isinstance(value, np.ndarray):
            a = value
        elif isinstance(value, list | tuple):
            try:
                a = np.asarray(value, dtype=np.float64) if kind == "f" else np.asarray(value)
            except (ValueError, TypeError) as err:
                raise ValueError(f"not a rectangular array of numbers ({err})") from None
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
        return a

    return validate


def _array_json_schema(ndim: int, item: str) -> dict[str, Any]:
    inner: dict[str, Any] = {"type": item}
    for _ in range(ndim):
        inner = {"type": "array", "items": inner}
    encoded = {
        "type": "object",
        "properties": {
            "dtype": {"type": "string", "enum": ["<f8" if item == "number" else "|b1"]},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "b64": {"type": "string", "contentEncoding": "base64"},
        },
        "required": ["dtype", "shape", "b64"],
    }
    return {"anyOf": [inner, encoded]}


def _to_list(a: np.ndarray) -> list[Any]:
    return a.tolist()


FloatMatrix = Annotated[
    np.ndarray,
    PlainValidator(_array_validator(2, "f")),
    PlainSerializer(_to_list, return_type=list),
    WithJsonSchema(_array_json_schema(2, "number")),
]
FloatVector = Annotated[
    np.ndarray,
    PlainValidator(_array_validator(1, "f")),
    PlainSerializer(_to_list, return_type=list),
    WithJsonSchema(_array_json_schema(1, "number")),
]
BoolMatrix = Annotated[
    np.ndarray,
    PlainValidator(_array_validator(2, "b")),
    PlainSerializer(_to_list, return_type=list),
    WithJsonSchema(_array_json_schema(2, "boolean")),
]


class RegimeOverride(BaseModel):
    """A regime context supplied by the caller (seed 001's regime label and confidence)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1, max_length=64)
    """Regime label; ``REGIME_LABELS`` get their multipliers, any other label (e.g.
    seed 001's ``neutral``) gets the default multipliers."""
    confidence: float = 1.0
    """Confidence in [0, 1] (reported; the gates use the label)."""


class DecisionRequest(BaseModel):
    """One allocation request (seed 001's allocation inputs).

    Shapes: ``L`` bars of history (``L >= FeatureBuilder.history`` of the bundle, at most
    ``serving.max_history_bars``), ``N`` = number of ``symbols``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    request_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
    """Caller's id; a repeated id gets the stored decision back (idempotency)."""
    timestamp: dt.datetime
    """Time of the decision bar's data (ISO 8601; naive = UTC); older than
    ``serving.max_staleness_s`` is rejected (STALE_INPUT)."""
    symbols: list[str] = Field(min_length=1)
    """Column order of every history array; must be exactly the bundle's symbols (any order)."""
    equity: float
    """Account equity in currency (> 0)."""
    cash: float
    """Cash in currency (may be negative on margin)."""
    buying_power: float
    """Buying power in currency (>= 0; validated and recorded)."""
    peak_equity: float | None = None
    """Running peak of equity for the drawdown feature; default = equity (no drawdown)."""
    positions: dict[str, float] = Field(default_factory=dict)
    """Shares held per symbol (signed); symbols not listed hold 0."""
    close: FloatMatrix
    """Close prices (L, N), > 0."""
    volume: FloatMatrix
    """Shares traded per bar (L, N), >= 0."""
    spread_bps: FloatMatrix
    """Quoted spread in bps (L, N), >= 0."""
    benchmark_returns: FloatVector
    """Benchmark simple returns (L,), row-aligned with ``close`` (row 0 may be 0)."""
    tradable: BoolMatrix | None = None
    """Tradable flags (L, N); default all true."""
    regime: RegimeOverride | None = None
    """Regime context; overrides the model's (see ``serving.regime_source``)."""
    strategy_intents: dict[str, FloatVector] | None = None
    """Per strategy family (``STRATEGY_FAMILIES``), intents (N,) in [-1, 1] replacing the
    FeatureBuilder's in the budgets-mode aggregation (ignored in weights mode)."""
    kill_switch: bool = False
    """Flatten everything now (always wins)."""
    reduce_only: bool = False
    """Only reduce positions in this decision."""

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
        )
        scalars = self.model_dump(mode="json", exclude=set(arrays))
        h.update(json.dumps(scalars, sort_keys=True, separators=(",", ":")).encode())
        for name in arrays[:5]:
            a = getattr(self, name)
            h.update(f"|{name}:{None if a is None else (a.dtype.str, a.shape)}".encode())
            if a is not None:
                h.update(np.ascontiguousarray(a).tobytes())
        for fam, v in sorted((self.strategy_intents or {}).items()):
            h.update(f"|intent:{fam}:{v.dtype.str}:{v.shape}".encode())
            h.update(np.ascontiguousarray(v).tobytes())
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
            mode="json", exclude={*self.ARRAY_FIELDS, "strategy_intents", "timestamp"}
        )
        out["timestamp"] = self.timestamp.isoformat()
        for name in self.ARRAY_FIELDS:
            a = getattr(self, name)
            out[name] = None if a is None else store(a)
        out["strategy_intents"] = (
            None
            if self.strategy_intents is None
            else {k: store(v) for k, v in self.strategy_intents.items()}
        )
        return out


class StrategyBudget(BaseModel):
    """One line of the per-strategy budget utilisation trace (fractions of equity)."""

    strategy: str
    """Strategy family, ``cash``, or ``policy`` in weights mode (the policy's whole book)."""
    budget: float
    """Budget the policy gave it (weights mode: the proposal's net exposure)."""
    proposed_gross: float
    """Gross exposure it proposed."""
    approved_gross: float
    """Gross exposure after STRATEGY_CAP (weights mode: after every gate)."""
    cap: float | None
    """Its cap (max_strategy_contribution; weights mode: max_gross x budget multiplier)."""
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
    history_length, shape, non_finite, non_positive_price, negative_value, stale,
    future_timestamp, account, positions, regime, intents, internal_error."""
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
    target_delta_qty: list[float] | None
    """Signed order quantity in shares (whole lots, except exact close-outs)."""
    target_qty: list[float] | None
    """Position in shares after the orders."""
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
        out = self.model_dump(
            mode="json", exclude={"latency", "reasons", *self.VECTOR_FIELDS, "reason_mask"}
        )
        for name in self.VECTOR_FIELDS:
            v = getattr(self, name)
            out[name] = None if v is None else encode_array(np.asarray(v, dtype=np.float64))
        m = self.reason_mask
        out["reason_mask"] = None if m is None else encode_array(np.asarray(m, dtype=np.int64))
        return out
