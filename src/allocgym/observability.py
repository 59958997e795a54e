"""Audit trail and Prometheus metrics of allocation decisions.

Audit log
---------
``AuditLog`` is an append-only JSONL file, one line per decision (seed 000's
``selection_audit.json`` made tamper-evident). Each line is the canonical JSON (sorted keys,
no whitespace, ASCII) of::

    {"seq": n, "prev_hash": <hash of line n-1>, "record": {...}, "hash": <sha256>}

where ``hash`` is the sha256 (hex) of the canonical JSON of the same object without
``hash``, and line 0's ``prev_hash`` is 64 zeros. Changing, inserting, deleting or
reordering any line breaks the chain at that line; ``verify`` names it. (Dropping lines
from the *end* leaves a valid shorter chain: keep ``AuditLog.head`` elsewhere to detect
that.)

Floats are written with Python's shortest round-trip ``repr`` (so ``json.loads`` gives the
identical bits back, ``-0.0`` and subnormals included); NaN and infinities, which JSON
lacks, are written as ``{"$float": "nan" | "inf" | "-inf"}``. Numpy arrays become nested
lists. ``replay`` re-runs each record's ``input`` through a decision function and checks
that the canonical bytes of its output equal those of the stored ``output``.

``decision_record`` builds the standard record: request id, timestamp, config hash, input
and its hash, regime label and score, active constraints (``ReasonCode`` names that acted,
plus optional effective limits), proposed and approved weights, reason codes by name, and
the output that ``replay`` checks.

Metrics
-------
``Metrics`` owns a dedicated ``CollectorRegistry`` with seed 001's metric names
(``allocator_active_strategies``, ``allocator_gross_exposure``, ``allocator_net_exposure``,
``allocator_reject_total{reason}``, ``capacity_utilization_ratio{symbol}``,
``strategy_pnl_contribution{strategy_id}``) and ``allocator_decision_latency_seconds``.
``observe_decision`` updates all of them from one decision. Reason labels are
``ReasonCode`` names, pre-registered at 0, so no rejection is ever ``unknown``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from allocgym.errors import AllocgymError
from allocgym.risk import GateContext, GateResult, ReasonCode

if TYPE_CHECKING:
    from allocgym.execution import ExecutionResult
    from allocgym.risk import RiskLimits

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first record of every chain."""

REASON_NAMES: tuple[str, ...] = tuple(str(code.name) for code in ReasonCode)
"""Every single-bit ``ReasonCode`` name, in bit order (the ``reason`` label values)."""

_REASON_BITS = np.array([int(code) for code in ReasonCode], dtype=np.int64)
_LATENCY_BUCKETS = (
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25,
    0.5, 1.0,
)  # fmt: skip


class AuditChainError(AllocgymError, ValueError):
    """An audit log line is malformed or breaks the hash chain.

    Attributes
    ----------
    line : int
        1-based line number of the first bad line.
    """

    def __init__(self, path: Path, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(
            f"audit log {str(path)!r} line {line}: {reason}; the log was modified after it "
            "was written: restore it from a trusted copy"
        )


# ----------------------------------------------------------------------------- canonical JSON


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to JSON-ready Python values, losslessly.

    Mappings (string keys), sequences, numpy arrays and scalars, bools, ints, strings and
    ``None`` are converted recursively; non-finite floats become ``{"$float": ...}``.

    Raises
    ------
    TypeError
        For values JSON cannot hold (name the type; convert it before logging).
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isfinite(obj):
            return float(obj)
        return {"$float": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"audit record key {key!r} is {type(key).__name__}: use str keys")
            out[key] = to_jsonable(value)
        return out
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    raise TypeError(
        f"cannot write {type(obj).__name__} to the audit log: convert it to numbers, strings, "
        "lists or dicts first"
    )


def from_jsonable(obj: Any) -> Any:
    """Inverse of ``to_jsonable`` for parsed JSON (``{"$float": ...}`` back to floats)."""
    if isinstance(obj, dict):
        if len(obj) == 1 and "$float" in obj:
            return float(obj["$float"])
        return {k: from_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_jsonable(v) for v in obj]
    return obj


def canonical_json(obj: Any) -> bytes:
    """Canonical bytes: sorted keys, no whitespace, ASCII, shortest round-trip floats."""
    return json.dumps(
        to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def sha256_hex(obj: Any) -> str:
    """sha256 (hex) of ``canonical_json(obj)``: the input hash of a decision."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def reason_names(mask: int) -> list[str]:
    """Names of the ``ReasonCode`` bits set in ``mask``, in bit order."""
    m = int(mask)
    return [name for name, bit in zip(REASON_NAMES, _REASON_BITS.tolist(), strict=True) if m & bit]


# ----------------------------------------------------------------------------- audit log


@dataclass(frozen=True)
class ChainReport:
    """Result of ``AuditLog.verify``.

    Attributes
    ----------
    ok : bool
    n_records : int
        Records verified (all of them when ``ok``; those before the bad line otherwise).
    head : str
        Hash of the last good record (``GENESIS_HASH`` for an empty log).
    bad_line : int or None
        1-based number of the first bad line.
    reason : str
    """

    ok: bool
    n_records: int
    head: str
    bad_line: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class ReplayReport:
    """Result of ``replay``: which records' outputs were reproduced byte for byte.

    Attributes
    ----------
    n_records : int
    n_reproduced : int
    mismatches : list of (int, str)
        (1-based line, request id) of each record whose output differed.
    """

    n_records: int
    n_reproduced: int
    mismatches: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every record was reproduced."""
        return not self.mismatches and self.n_reproduced == self.n_records


class AuditLog:
    """Append-only, hash-chained JSONL audit log (one line per decision).

    Parameters
    ----------
    path : str or Path
        The JSONL file (created on the first append; an existing file is continued after
        checking its last line).
    fsync : bool
        ``os.fsync`` after every append (durable across power loss, slower).
    """

    def __init__(self, path: str | Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._head, self._n = self._read_tail()

    @property
    def head(self) -> str:
        """Hash of the last record (``GENESIS_HASH`` when empty)."""
        return self._head

    def __len__(self) -> int:
        return self._n

    def append(self, record: Mapping[str, Any]) -> str:
        """Append one record; returns its hash (the new ``head``)."""
        payload = to_jsonable(record)
        with self._lock:
            entry = {"seq": self._n, "prev_hash": self._head, "record": payload}
            digest = hashlib.sha256(canonical_json(entry)).hexdigest()
            line = canonical_json({**entry, "hash": digest}) + b"\n"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as fh:
                fh.write(line)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
            self._head, self._n = digest, self._n + 1
        return digest

    def entries(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Parsed lines ``(line_number, entry)``, unchecked (use ``verify`` first)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            for i, raw in enumerate(fh, start=1):
                yield i, json.loads(raw)

    def records(self) -> Iterator[dict[str, Any]]:
        """Decoded records (non-finite floats restored), in order, unchecked."""
        for _, entry in self.entries():
            yield from_jsonable(entry["record"])

    def verify(self, *, raise_error: bool = True) -> ChainReport:
        """Check the whole file (see ``verify_log``)."""
        return verify_log(self.path, raise_error=raise_error)

    def _read_tail(self) -> tuple[str, int]:
        """Head hash and record count of an existing log (its last line is checked)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return GENESIS_HASH, 0
        last = _last_line(self.path)
        try:
            entry = json.loads(last)
            seq, digest = int(entry["seq"]), str(entry["hash"])
            body = {k: entry[k] for k in ("seq", "prev_hash", "record")}
        except (ValueError, KeyError, TypeError):
            raise AuditChainError(self.path, -1, "last line is not a chain entry") from None
        if not last.endswith(b"\n") or hashlib.sha256(canonical_json(body)).hexdigest() != digest:
            raise AuditChainError(self.path, seq + 1, "last line is torn or its hash is wrong")
        return digest, seq + 1


def verify_log(path: str | Path, *, raise_error: bool = True) -> ChainReport:
    """Check every line of an audit log: canonical encoding, sequence number, link to the
    previous record's hash and its own hash.

    Parameters
    ----------
    path : str or Path
        The JSONL file (a missing file is an empty, valid chain).
    raise_error : bool
        Raise at the first bad line (default) or return a report saying where it broke.

    Raises
    ------
    AuditChainError
        At the first bad line (its 1-based number in ``.line``), when ``raise_error``.
    """
    path = Path(path)
    prev, n = GENESIS_HASH, 0
    if path.exists():
        with open(path, "rb") as fh:
            for i, raw in enumerate(fh, start=1):
                reason = _check_line(raw, n, prev)
                if reason:
                    if raise_error:
                        raise AuditChainError(path, i, reason)
                    return ChainReport(False, n, prev, i, reason)
                prev, n = json.loads(raw)["hash"], n + 1
    return ChainReport(True, n, prev)


def _check_line(raw: bytes, seq: int, prev: str) -> str:
    """Why ``raw`` is not entry ``seq`` chained to ``prev`` ('' when it is)."""
    if not raw.endswith(b"\n"):
        return "line is not terminated (torn write)"
    try:
        entry = json.loads(raw)
    except ValueError as err:
        return f"not JSON ({err.msg})"
    if not isinstance(entry, dict) or set(entry) != {"seq", "prev_hash", "record", "hash"}:
        return "not a chain entry (keys must be seq, prev_hash, record, hash)"
    if canonical_json(entry) + b"\n" != raw:
        return "bytes differ from the canonical encoding"
    if entry["seq"] != seq:
        return f"seq {entry['seq']!r}, expected {seq} (line inserted, deleted or moved)"
    if entry["prev_hash"] != prev:
        return "prev_hash does not match the previous record's hash (chain broken)"
    body = {k: entry[k] for k in ("seq", "prev_hash", "record")}
    if hashlib.sha256(canonical_json(body)).hexdigest() != entry["hash"]:
        return "hash does not match the record (record modified)"
    return ""


def _last_line(path: Path, block: int = 1 << 16) -> bytes:
    """Last line of a file (with its newline, if any), reading backwards in blocks."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        pos, buf = end, b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
            cut = buf.rfind(b"\n", 0, len(buf) - 1)
            if cut >= 0:
                return buf[cut + 1 :]
        return buf


def decision_record(
    *,
    request_id: str,
    timestamp: str,
    config_hash: str,
    inputs: Mapping[str, Any],
    output: Mapping[str, Any],
    gate: GateResult,
    regime: str,
    regime_score: float,
    symbols: Sequence[str] | None = None,
    limits: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The standard audit record of one decision (batch of ``n_envs`` portfolios).

    Parameters
    ----------
    request_id, timestamp : str
        Caller's identifiers (the timestamp is data: replay does not re-read a clock).
    config_hash : str
        ``allocgym.config.config_hash`` of the configuration in force.
    inputs : mapping
        Everything the decision function needs to recompute ``output`` (``replay`` feeds it
        back); hashed into ``input_hash``.
    output : mapping
        What the decision function returned (checked byte for byte by ``replay``).
    gate : GateResult
        Proposed and approved weights and the reason masks.
    regime : str
        Regime label; ``regime_score`` its confidence in [0, 1].
    symbols : sequence of str, optional
        Names of the asset axis (reasons are keyed by them; indices otherwise).
    limits : mapping, optional
        Effective limit values in force (e.g. regime-scaled caps), logged as part of the
        active constraints.
    """
    sym = np.asarray(gate.symbol_reasons, dtype=np.int64)
    port = np.asarray(gate.portfolio_reasons, dtype=np.int64)
    names = list(symbols) if symbols is not None else [str(i) for i in range(sym.shape[1])]
    acting = int(np.bitwise_or.reduce(np.concatenate([sym.ravel(), port.ravel(), [0]])))
    reasons = [
        {names[j]: reason_names(int(row[j])) for j in np.flatnonzero(row)} for row in sym
    ]  # one small dict per portfolio (audit path, not the hot path)
    return {
        "request_id": str(request_id),
        "timestamp": str(timestamp),
        "config_hash": str(config_hash),
        "input_hash": sha256_hex(inputs),
        "input": to_jsonable(inputs),
        "output": to_jsonable(output),
        "regime": {"label": str(regime), "score": float(regime_score)},
        "active_constraints": {
            "codes": reason_names(acting),
            "limits": to_jsonable(dict(limits or {})),
        },
        "proposed": to_jsonable(np.asarray(gate.proposed, dtype=np.float64)),
        "approved": to_jsonable(np.asarray(gate.approved, dtype=np.float64)),
        "reasons": reasons,
        "portfolio_reasons": [reason_names(int(m)) for m in port],
    }


def replay(
    path: str | Path, decide_fn: Callable[[dict[str, Any]], Mapping[str, Any]]
) -> ReplayReport:
    """Re-run every record's ``input`` through ``decide_fn`` and compare outputs bytewise.

    The chain is verified first (``AuditChainError`` if broken). A record is reproduced
    when ``canonical_json(decide_fn(input))`` equals ``canonical_json(record["output"])``.

    Parameters
    ----------
    path : str or Path
        An ``AuditLog`` file whose records carry ``input`` and ``output``.
    decide_fn : callable
        Receives the decoded input (lists for arrays, floats restored) and returns the
        decision output.
    """
    verify_log(path)
    log = AuditLog(path)
    n, good, bad = 0, 0, []
    for line, entry in log.entries():
        record = entry["record"]
        n += 1
        got = canonical_json(decide_fn(from_jsonable(record["input"])))
        if got == canonical_json(record["output"]):
            good += 1
        else:
            bad.append((line, str(record.get("request_id", ""))))
    return ReplayReport(n, good, bad)


# ----------------------------------------------------------------------------- metrics


class Metrics:
    """Prometheus metrics of the allocator in a dedicated ``CollectorRegistry``.

    Parameters
    ----------
    registry : CollectorRegistry, optional
        Registry to register into (a fresh one by default, so several ``Metrics`` never
        collide and the process-global registry is untouched).
    latency_buckets : sequence of float
        Histogram buckets of ``allocator_decision_latency_seconds`` (seconds).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        latency_buckets: Sequence[float] = _LATENCY_BUCKETS,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.active_strategies = Gauge(
            "allocator_active_strategies", "Strategy families with a non-zero budget.", registry=r
        )
        self.gross_exposure = Gauge(
            "allocator_gross_exposure",
            "Gross exposure sum |w| of the book (fraction of equity).",
            registry=r,
        )
        self.net_exposure = Gauge(
            "allocator_net_exposure",
            "Net exposure sum w of the book (fraction of equity).",
            registry=r,
        )
        self.reject_total = Counter(
            "allocator_reject_total",
            "Clips and rejections by ReasonCode name (per portfolio and symbol).",
            ["reason"],
            registry=r,
        )
        self.capacity_utilization = Gauge(
            "capacity_utilization_ratio",
            "Per-symbol use of capacity: max(|w| / symbol cap, trade / participation cap).",
            ["symbol"],
            registry=r,
        )
        self.strategy_pnl = Gauge(
            "strategy_pnl_contribution",
            "Per-strategy PnL contribution of the last bar (fraction of equity).",
            ["strategy_id"],
            registry=r,
        )
        self.decision_latency = Histogram(
            "allocator_decision_latency_seconds",
            "Wall time of one allocation decision.",
            buckets=tuple(latency_buckets),
            registry=r,
        )
        for name in REASON_NAMES:  # every reason visible at 0: nothing is 'unknown'
            self.reject_total.labels(reason=name)

    def observe_decision(
        self,
        gate: GateResult,
        ctx: GateContext,
        *,
        execution: ExecutionResult | None = None,
        latency_s: float | None = None,
        limits: RiskLimits | None = None,
        symbols: Sequence[str] | None = None,
        strategy_pnl: Mapping[str, float] | None = None,
        active_strategies: int | None = None,
        env: int = 0,
    ) -> None:
        """Update every metric from one decision.

        Parameters
        ----------
        gate : GateResult
            Gate output; its reasons feed ``allocator_reject_total`` (all portfolios).
        ctx : GateContext
            Context of the decision (current book, equity, ADV, regime, strategies).
        execution : ExecutionResult, optional
            When given, exposures are those of the book held after execution and its
            reasons (``NO_TRADE_BAND`` included) are counted instead of the gate's.
        latency_s : float, optional
            Decision wall time in seconds.
        limits : RiskLimits, optional
            Needed for ``capacity_utilization_ratio`` (symbol cap and participation cap,
            both times the regime capacity multiplier).
        symbols : sequence of str, optional
            Symbol label values (asset indices otherwise).
        strategy_pnl : mapping of str to float, optional
            PnL contribution per strategy id.
        active_strategies : int, optional
            Overrides the count derived from ``ctx.strategy_weights``.
        env : int
            Portfolio whose exposures and capacity are reported (0 for a single decision).
        """
        sym = np.asarray(gate.symbol_reasons if execution is None else execution.reasons, np.int64)
        port = np.asarray(
            gate.portfolio_reasons if execution is None else execution.portfolio_reasons, np.int64
        )
        book = np.asarray(
            gate.approved if execution is None else execution.target_weights, np.float64
        )
        # one count per (portfolio, symbol) carrying a bit; portfolio-level bits that no
        # symbol of the portfolio carries count once per portfolio
        sym_bits = (sym[..., None] & _REASON_BITS) != 0  # (n_envs, n_assets, n_codes)
        per_symbol = sym_bits.sum(axis=(0, 1))
        port_only = (((port[:, None] & _REASON_BITS) != 0) & ~sym_bits.any(axis=1)).sum(axis=0)
        for name, count in zip(REASON_NAMES, (per_symbol + port_only).tolist(), strict=True):
            if count:
                self.reject_total.labels(reason=name).inc(count)

        w = book[env]
        self.gross_exposure.set(float(np.abs(w).sum()))
        self.net_exposure.set(float(w.sum()))
        if active_strategies is None and ctx.strategy_weights is not None:
            contrib = np.abs(np.asarray(ctx.strategy_weights, np.float64)[env]).sum(axis=-1)
            if gate.strategy_scale is not None:
                contrib = contrib * np.asarray(gate.strategy_scale, np.float64)[env]
            active_strategies = int((contrib > 0).sum())
        if active_strategies is not None:
            self.active_strategies.set(int(active_strategies))
        if latency_s is not None:
            self.decision_latency.observe(float(latency_s))
        for sid, pnl in (strategy_pnl or {}).items():
            self.strategy_pnl.labels(strategy_id=str(sid)).set(float(pnl))
        if limits is not None:
            names = list(symbols) if symbols is not None else [str(i) for i in range(w.shape[0])]
            util = capacity_utilization(gate, ctx, limits, book=book)[env]
            for name, u in zip(names, util.tolist(), strict=True):
                self.capacity_utilization.labels(symbol=name).set(u)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)


def capacity_utilization(
    gate: GateResult, ctx: GateContext, limits: RiskLimits, *, book: np.ndarray | None = None
) -> np.ndarray:
    """Per-symbol capacity use, shape (n_envs, n_assets): the larger of ``|w_i|`` over the
    symbol cap and ``|w_i - w_cur,i| * equity`` over the participation cap (fraction of
    ADV), both caps times the regime capacity multiplier. 1.0 = at the limit."""
    w = np.asarray(gate.approved if book is None else book, dtype=np.float64)
    n_envs = w.shape[0]
    regime = np.broadcast_to(np.asarray(ctx.regime, dtype=np.int64), (n_envs,))
    capacity = np.broadcast_to(
        np.asarray(limits.capacity_multiplier(regime), np.float64), (n_envs,)
    )
    equity = np.broadcast_to(np.asarray(ctx.equity, dtype=np.float64), (n_envs,))[:, None]
    sym_cap = limits.max_symbol_weight * capacity[:, None]
    trade = np.abs(w - np.asarray(ctx.current_weights, dtype=np.float64)) * equity
    part_cap = (
        limits.max_participation * capacity[:, None] * np.asarray(ctx.adv_notional, np.float64)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        u_w = np.where(sym_cap > 0, np.abs(w) / sym_cap, np.where(w == 0, 0.0, np.inf))
        u_p = np.where(part_cap > 0, trade / part_cap, np.where(trade == 0, 0.0, np.inf))
    return np.maximum(u_w, u_p)
