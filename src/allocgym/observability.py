"""Audit trail and Prometheus metrics of allocation decisions.

Audit log
---------
``AuditLog`` is an append-only JSONL file, one line per decision (the cluster
barbell's selection audit made tamper-evident). Each line is the canonical JSON (sorted keys,
no whitespace, ASCII) of::

    {"seq": n, "prev_hash": <hash of line n-1>, "record": {...}, "hash": <sha256>}

where ``hash`` is the sha256 (hex) of the canonical JSON of the same object without
``hash``, and line 0's ``prev_hash`` is 64 zeros. Changing, inserting, deleting or
reordering any line breaks the chain at that line; ``verify`` names it. Dropping lines
from the *end*, or deleting one and recomputing the chain, leaves a valid chain: the
anchor catches those. One writer holds the log (``<log>.lock``; a second process is
refused) and anchors the chain head in ``<log>.head`` (record count, last hash, byte
offset; optionally HMAC-signed), atomically, at open, every ``anchor_every`` records and
at close; ``verify_log`` checks the log against it, and reopening verifies the log from
the anchored record on.

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
``Metrics`` owns a dedicated ``CollectorRegistry`` with the trading allocator's metrics
(``allocator_active_strategies``, ``allocator_gross_exposure_ratio``,
``allocator_net_exposure_ratio``, ``allocator_reject_total{reason}``,
``allocator_capacity_utilization_ratio{symbol}``,
``allocator_strategy_pnl_contribution_currency{strategy_id}``) and
``allocator_decision_latency_seconds``, named by Prometheus' conventions: the
``allocator_`` prefix, fractions end in ``_ratio``, the unit last, counters in ``_total``
(:data:`METRIC_RENAMES` maps the first release's names to these). ``observe_decision``
updates all of them from one decision. Reason labels are ``ReasonCode`` names,
pre-registered at 0, so no rejection is ever ``unknown``. :class:`StrategyPnL` keeps the
per-account state that attributes realised P&L to strategies.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import hashlib
import hmac
import json
import marshal
import math
import os
import shlex
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from allocgym.compiled.env import reason_summary
from allocgym.errors import AllocgymError
from allocgym.risk import GateContext, GateResult, ReasonCode

if TYPE_CHECKING:
    from allocgym.execution import ExecutionResult
    from allocgym.risk import RiskLimits

AUDIT_KEY_ENV = "ALLOCGYM_AUDIT_KEY"
"""Environment variable holding the HMAC key of audit anchors (``allocgym serve``,
``allocgym audit verify``)."""

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


TORN_LINE = "line is not terminated (torn write)"
"""``ChainReport.reason`` of an unterminated line: a crash mid-write, or, as the last line
of a log whose writer is running, a record still being written."""


class AuditLogRefused(AllocgymError, ValueError):
    """A writer will not continue an audit log as it is (its head file is missing, or its
    signature state disagrees with the key): not proof of tampering, a decision for
    whoever runs the log (the message names the ways forward)."""


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
    if isinstance(obj, Canonical):
        return to_jsonable(obj.value)
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


_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
"""What ``to_jsonable`` writes as ``{"$float": text}``: only these are read back as floats
(a client's map keyed ``$float`` holds numbers, and stays a map)."""


def from_jsonable(obj: Any) -> Any:
    """Inverse of ``to_jsonable`` for parsed JSON (``{"$float": ...}`` back to floats)."""
    if isinstance(obj, dict):
        if len(obj) == 1 and isinstance(obj.get("$float"), str) and obj["$float"] in _NON_FINITE:
            return _NON_FINITE[obj["$float"]]
        return {k: from_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_jsonable(v) for v in obj]
    return obj


def _check_keys(obj: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> None:
    """Raise ``to_jsonable``'s TypeError for a non-str key in ``obj``'s dicts (json's
    encoder would write an int or float key as a string without a word; other mappings
    go through ``to_jsonable``, which checks their keys itself).

    orjson walks the structure first, in Rust, and refuses any non-str dict key; only
    when it refuses (a non-str key, or something else it cannot write, e.g. an int over
    64 bits) does the Python walk run, to raise the message or let a valid value pass.
    The Python walk alone was half an audit append."""
    try:
        orjson.dumps(obj, default=_opaque)
        return
    except orjson.JSONEncodeError:
        pass
    _walk_keys(obj)


def _opaque(value: Any) -> None:
    """orjson's ``default``: a value it cannot write (numpy, other mappings) is not walked
    here; ``to_jsonable`` converts it, and checks its keys, when it is encoded. A tuple
    subclass (a namedtuple) is walked: json's encoder writes it as a list, keys and all."""
    if isinstance(value, tuple):
        _walk_keys(value)
    return None


def _walk_keys(obj: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> None:
    is_dict = isinstance(obj, dict)
    for key, value in obj.items() if is_dict else enumerate(obj):
        if is_dict and not isinstance(key, str):
            raise TypeError(f"audit record key {key!r} is {type(key).__name__}: use str keys")
        if isinstance(value, dict | list | tuple):  # concrete types: no ABC check per value
            _walk_keys(value)


# json's C encoder writes str, int, float, bool, None, lists, tuples and dicts itself and
# hands everything else (numpy arrays and scalars, other mappings) to ``to_jsonable``.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=to_jsonable
)


class Canonical:
    """``value`` with its canonical JSON ``raw`` computed once; ``value`` must not change
    afterwards.

    ``canonical_json`` writes ``raw`` where it meets one as a value of the top-level dict
    (and as the whole object) instead of encoding ``value`` again: a decision's input is
    encoded for its hash and logged with the same bytes, and a log entry embeds its
    record's bytes. Anywhere else it stands for ``value``. (Not a dataclass: orjson would
    walk its value again when checking the keys of a tree that holds it.)
    """

    __slots__ = ("raw", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.raw = canonical_json(value)


def canonical_json(obj: Any) -> bytes:
    """Canonical bytes: sorted keys, no whitespace, ASCII, shortest round-trip floats.

    Byte for byte ``json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"),
    allow_nan=False)``, without converting the plain values one by one first (that walk
    was most of an audit append's cost); :class:`Canonical` values of a dict's top level
    are written from their bytes.
    """
    if type(obj) is Canonical:
        return obj.raw
    if type(obj) is dict and any(type(v) is Canonical for v in obj.values()):
        _check_keys(obj)
        return _spliced(obj)
    fast = _as_json_writes(obj)
    if fast is not None:
        return fast
    if isinstance(obj, dict | list | tuple):
        _check_keys(obj)
    return _json_encoded(obj)


# orjson refuses (no ``default``) what json's encoder hands to ``to_jsonable``: numpy
# values, datetimes, dataclasses and str/int/dict/list subclasses
_ORJSON = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


# Floats in the formats the fast path below admits (no ``e-``, no ``0.0000``): large
# exponents, the largest float, 2**53, long fractions. orjson before 3.11.7 wrote ``1e16``
# where json writes ``1e+16``; an orjson that writes any of these otherwise than json
# leaves every record to json's encoder (slower, the same hashes).
_FLOAT_PROBE = [
    1e16, 1.6e16, -1.5e300, 1e22, 1.7976931348623157e308, 9007199254740992.0,
    123456789.123, 0.1, 0.0001, -0.5, 1e15, 12345678901234567890.0,
]  # fmt: skip


def _orjson_writes_json_floats(dumps: Callable[[Any], bytes] = orjson.dumps) -> bool:
    """Whether ``dumps`` (orjson's) writes :data:`_FLOAT_PROBE` as json does."""
    return dumps(_FLOAT_PROBE) == json.dumps(_FLOAT_PROBE, separators=(",", ":")).encode()


_ORJSON_AGREES = _orjson_writes_json_floats()


def _as_json_writes(obj: Any) -> bytes | None:
    """orjson's bytes for ``obj`` where they are provably json's, else None (about 4x
    faster than json's C encoder on a 20-asset audit record, the checks included).

    The two write the same bytes except: a float under 1e-4 in magnitude (json ``1e-05``
    and ``2.5e-07``, orjson ``0.00001`` and ``2.5e-7``; the same digits everywhere else,
    20M random floats compared), non-ASCII text and DEL (json escapes them), NaN and
    infinities (orjson writes ``null``), and what is not a builtin type: UUIDs, Enum
    members (orjson writes their value, json refuses a plain Enum and writes an int
    Enum's int) and other subclasses. The first two show in the bytes (``e-``,
    ``0.0000``, a byte over 0x7e: these can also come from text, which only costs the
    fast path); NaN and infinities do not read back as the value (nor does a tuple,
    which takes the json path too); ``marshal`` refuses the rest.
    """
    if not _ORJSON_AGREES:
        return None
    try:
        # marshal refuses the types outside the builtins and their subclasses (an Enum
        # member, a namedtuple), but for those that expose a byte buffer: orjson writes
        # an Enum as its value, and a member whose ``__eq__`` agrees with that value
        # would pass the read-back (left: a bytes Enum with such an ``__eq__``)
        marshal.dumps(obj)
        out = orjson.dumps(obj, option=_ORJSON)
    except (ValueError, orjson.JSONEncodeError):
        return None
    if not out.isascii() or b"\x7f" in out or b"e-" in out or b"0.0000" in out:
        return None
    return out if orjson.loads(out) == obj else None


def _encoded(obj: Any) -> bytes:
    fast = _as_json_writes(obj)
    return fast if fast is not None else _json_encoded(obj)


def _json_encoded(obj: Any) -> bytes:
    try:
        text = _ENCODER.encode(obj)
    except ValueError:  # a non-finite float: the full conversion writes {"$float": ...}
        text = _ENCODER.encode(to_jsonable(obj))
    return text.encode("ascii")


def _spliced(obj: dict[str, Any]) -> bytes:
    """``obj`` (str keys, checked) in sorted key order: each run of plain values encoded
    as one dict, each ``Canonical`` value written from its bytes."""
    parts: list[bytes] = []
    run: dict[str, Any] = {}
    for key in sorted(obj):
        value = obj[key]
        if type(value) is Canonical:
            if run:
                parts.append(_encoded(run)[1:-1])
                run = {}
            parts.append(_ENCODER.encode(key).encode("ascii") + b":" + value.raw)
        else:
            run[key] = value
    if run:
        parts.append(_encoded(run)[1:-1])
    return b"{" + b",".join(parts) + b"}"


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
        1-based number of the first bad line (the first missing one when records were
        cut from the end; 0 for the head file itself).
    reason : str
    anchor : Anchor or None
        The head file the log was checked against (None: not checked or none).
    """

    ok: bool
    n_records: int
    head: str
    bad_line: int | None = None
    reason: str = ""
    anchor: Anchor | None = None


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


class AuditLogLockedError(AllocgymError, RuntimeError):
    """Another process is writing the audit log (one writer per file)."""


def anchor_path(path: str | Path) -> Path:
    """The head file that anchors an audit log: ``<log>.head`` beside the file itself
    (a symbolic link's target, where its writer keeps it)."""
    p = Path(os.path.realpath(path))
    return p.with_name(p.name + ".head")


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@dataclass(frozen=True)
class Anchor:
    """The anchored chain head: ``n_records`` records, the last with hash ``head``, ending
    at byte ``offset`` of the log.

    Attributes
    ----------
    n_records : int
    head : str
        Hash of record ``n_records - 1`` (``GENESIS_HASH`` when 0).
    offset : int
        Size in bytes of the log's first ``n_records`` lines.
    anchored_at : str
        UTC time the head file was written (ISO 8601).
    signed : bool
        The head file carries an HMAC-SHA256 (checked when a key is given).
    """

    n_records: int
    head: str
    offset: int
    anchored_at: str
    signed: bool = False


MIN_KEY_BYTES = 16
"""The shortest audit key taken: an empty or short HMAC key is guessable."""


def _anchor_mac(body: Mapping[str, Any], key: bytes) -> str:
    # every signed write and check of a head file comes here: the one key check
    if not isinstance(key, bytes | bytearray):
        raise TypeError(
            f"audit key is {type(key).__name__}: pass bytes (e.g. key.encode() or the "
            "contents of --audit-key-file)"
        )
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"audit key has {len(key)} bytes: use at least {MIN_KEY_BYTES} (e.g. "
            "secrets.token_bytes(32))"
        )
    return hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()


def write_anchor(path: str | Path, anchor: Anchor, key: bytes | None = None) -> None:
    """Write the head file of the log at ``path`` atomically (temp file, fsync, rename).

    With ``key``, the head file carries an HMAC-SHA256 of its content: whoever rewrites the
    log and recomputes the chain cannot write a matching anchor without the key.
    """
    target = anchor_path(path)
    body: dict[str, Any] = {
        "version": 1,
        "n_records": anchor.n_records,
        "head": anchor.head,
        "offset": anchor.offset,
        "anchored_at": anchor.anchored_at,
    }
    if key is not None:
        body["hmac"] = _anchor_mac(body, key)
    atomic_write(target, canonical_json(body) + b"\n")


def atomic_write(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` so that a crash leaves the old file or the new one:
    a temp file, fsync, rename, then fsync of the folder (the rename itself survives)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    sync_path(target.parent)


def sync_path(path: str | Path) -> None:
    """``fsync`` a file, or a folder's entries, by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_anchor(path: str | Path, key: bytes | None = None) -> Anchor | None:
    """The anchor of the log at ``path`` (None when it has no head file).

    Raises
    ------
    AuditChainError
        The head file is malformed, or ``key`` is given and its HMAC is missing or wrong.
    """
    log_path = Path(path)
    target = anchor_path(log_path)
    if not target.exists():
        return None

    def bad(reason: str) -> AuditChainError:
        return AuditChainError(log_path, 0, f"head file {str(target)!r}: {reason}")

    try:
        body = json.loads(target.read_bytes())
        fields = {k: body[k] for k in ("version", "n_records", "head", "offset", "anchored_at")}
        n, offset, head = int(fields["n_records"]), int(fields["offset"]), str(fields["head"])
    except (ValueError, KeyError, TypeError):
        raise bad("not an anchor (keys version, n_records, head, offset, anchored_at)") from None
    if fields["version"] != 1 or n < 0 or offset < 0 or set(body) - {*fields, "hmac"}:
        raise bad("not a version 1 anchor")
    mac = body.get("hmac")
    if key is not None:
        if mac is None:
            raise bad("not signed, but a key was given: it was replaced by an unsigned one")
        if not hmac.compare_digest(str(mac), _anchor_mac(fields, key)):
            raise bad("HMAC does not match: it was forged or the key is wrong")
    return Anchor(n, head, offset, str(fields["anchored_at"]), signed=mac is not None)


class _Writer:
    """The one writer of a log file in this process (shared by its ``AuditLog`` handles)."""

    def __init__(
        self,
        path: Path,
        fsync: bool,
        anchor_every: int,
        key: bytes | None,
        adopt: bool = False,
        cut_torn_tail: bool = False,
    ) -> None:
        self.path, self.fsync, self.anchor_every, self.key = path, fsync, anchor_every, key
        # run before each sync of the log (files its records point at: durable first);
        # weak: a dropped service's store is not kept alive by the log it shared
        self.presync: list[weakref.WeakMethod] = []
        self.mutex = threading.Lock()
        self.handles = 0
        self.closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        # Two locks, in this order: <log>.lock (which names the holder; what writers before
        # this version lock, so one of them running beside this one is refused too), then
        # the log itself (its inode: neither a deleted <log>.lock nor a second name of the
        # file, a hard link, lets a second writer in). Both opened for writing: NFS emulates
        # flock with write locks. A log this open created is removed if the open fails once
        # both locks are held (never one another writer holds).
        created = False
        self._lock_fds: list[int] = []
        try:
            for target in (_lock_path(path), path):
                if target == path:
                    created = not path.exists()  # under <log>.lock: no writer of this name
                fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o666)  # as umask allows
                self._lock_fds.append(fd)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    created = False
                    raise _locked(path, self._lock_fds[0], first=target != path) from None
                except OSError as err:
                    created = False
                    raise OSError(
                        err.errno,
                        f"audit log {str(path)!r}: its file system refused the writer's lock "
                        f"on {str(target)!r} ({err.strerror}): put the log on a local disk, or "
                        "on NFS mount it with lock support",
                    ) from None
            os.ftruncate(self._lock_fds[0], 0)
            os.pwrite(self._lock_fds[0], f"{os.getpid()}\n".encode(), 0)
            if cut_torn_tail:
                _cut_torn_tail(path, key)
            self.head, self.n, self.size = _open_chain(path, key, adopt)
        except BaseException:
            if created and path.exists() and path.stat().st_size == 0:
                path.unlink()
            self._unlock()
            raise
        # unbuffered, held open for the writer's lifetime: a failed write leaves no bytes
        # behind in a buffer to reach the file with the next record
        self._fh = open(path, "ab", buffering=0)
        self.broken: str | None = None
        self.anchored = -1
        try:
            self.write_anchor()
        except BaseException:
            self._fh.close()
            self._unlock()
            raise

    def _presync(self) -> None:
        for ref in list(self.presync):
            sync = ref()
            if sync is None:  # its owner was dropped
                self.presync.remove(ref)
            else:
                sync()

    def _unlock(self) -> None:
        """Close the lock descriptors, which releases the locks."""
        while self._lock_fds:
            os.close(self._lock_fds.pop())

    def append(self, payload: Any) -> str:
        with _Held(self.mutex):
            if self.closed:
                raise ValueError(f"audit log {str(self.path)!r} is closed: open a new AuditLog")
            if self.broken is not None:
                raise OSError(
                    f"audit log {str(self.path)!r} could not be cut back after a failed write "
                    f"({self.broken}): no record is appended; repair it before a restart (cut "
                    "it back to its last whole line: opening the log refuses a torn one)"
                )
            # canonical_json({"seq": n, "prev_hash": head, "record": payload}), its three
            # keys written in sorted order around the record's bytes (cheaper than
            # splicing a Canonical record)
            entry = b"".join(
                (
                    b'{"prev_hash":',
                    _ENCODER.encode(self.head).encode("ascii"),
                    b',"record":',
                    canonical_json(payload),
                    b',"seq":',
                    str(self.n).encode("ascii"),
                    b"}",
                )
            )
            digest = hashlib.sha256(entry).hexdigest()
            # The line is the entry with its hash added; "hash" sorts before the entry's
            # keys, so it goes first and the rest is the hashed bytes unchanged.
            line = b'{"hash":"' + digest.encode("ascii") + b'",' + entry[1:] + b"\n"
            fd = self._fh.fileno()
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                if self.fsync:
                    self._presync()
                    os.fsync(fd)
            except BaseException:
                # a disk full or a size limit: cut the partial line so the file ends at
                # its last whole record and the next append continues the chain
                try:
                    os.ftruncate(fd, self.size)
                except OSError as err:
                    self.broken = str(err)
                raise
            self.head, self.n, self.size = digest, self.n + 1, self.size + len(line)
            if self.n - self.anchored >= self.anchor_every:
                try:
                    self._anchor_locked()
                except OSError as err:  # the record is stored; the next append anchors
                    warnings.warn(
                        f"audit log {str(self.path)!r}: the head file was not written "
                        f"({err}); retried with the next record",
                        RuntimeWarning,
                        stacklevel=2,
                    )
        return digest

    def write_anchor(self) -> None:
        with _Held(self.mutex):
            if not self.closed:
                self._anchor_locked()

    def _anchor_locked(self) -> None:
        if self.anchored == self.n:
            return
        self._presync()
        if not self.fsync:
            os.fsync(self._fh.fileno())  # the anchored records are on disk before the anchor
        now = dt.datetime.now(dt.UTC).isoformat()
        write_anchor(self.path, Anchor(self.n, self.head, self.size, now), self.key)
        self.anchored = self.n

    def release(self) -> None:
        if getattr(_HELD, "depth", 0):
            # a handle's finalizer, run by the garbage collector inside this thread's own
            # section of the registry or of a writer: released when that section ends
            _DEFERRED.append(self)
            return
        # under the registry lock: a new writer of this file cannot start while it closes
        with _Held(_WRITERS_LOCK, self.mutex):
            self.handles -= 1
            if self.handles > 0 or self.closed:
                return
            if _WRITERS.get(self.path) is self:
                del _WRITERS[self.path]
            try:
                self._anchor_locked()
            finally:
                self.closed = True
                self._fh.close()
                self._unlock()


_WRITERS: dict[Path, _Writer] = {}
_WRITERS_LOCK = threading.Lock()
_HELD = threading.local()  # depth: how many _Held sections this thread is inside
_DEFERRED: list[_Writer] = []


class _Held:
    """Hold ``locks`` (in order) and count the section in this thread's ``_HELD.depth``.

    The garbage collector runs a collected ``AuditLog``'s finalizer (its writer's
    ``release``) at any allocation, also inside a section that holds the registry lock
    or that writer's mutex, which ``release`` takes: taking it again in the same thread
    deadlocked (a test suite hung in ``AuditLog.__init__``). Inside a section ``release``
    only queues the writer; the thread's outermost section releases the queue once its
    locks are free."""

    __slots__ = ("locks",)

    def __init__(self, *locks: threading.Lock) -> None:
        self.locks = locks

    def __enter__(self) -> None:
        _HELD.depth = getattr(_HELD, "depth", 0) + 1
        taken = 0
        try:
            for lock in self.locks:
                lock.acquire()
                taken += 1
        except BaseException:
            for lock in reversed(self.locks[:taken]):
                lock.release()
            _HELD.depth -= 1
            raise

    def __exit__(self, *exc: object) -> None:
        for lock in reversed(self.locks):
            lock.release()
        _HELD.depth -= 1
        while not _HELD.depth and _DEFERRED:
            writer = _DEFERRED.pop()
            try:
                writer.release()
            except OSError as err:  # the section's own outcome stands; the log says why
                warnings.warn(
                    f"audit log {str(writer.path)!r}: closing a collected handle failed "
                    f"({err}); its head file may be behind until the log is reopened",
                    RuntimeWarning,
                    stacklevel=2,
                )


def _open_chain(path: Path, key: bytes | None, adopt: bool = False) -> tuple[str, int, int]:
    """Head hash, record count and byte size of an existing log, verified from its anchor.

    A writer never re-anchors what it cannot vouch for: a log with records and no head
    file (whose end may have been cut with the head), a signed head without the key (the
    new head would be unsigned) or an unsigned head with a key is refused
    (:class:`AuditLogRefused`) unless ``adopt`` (:func:`adopt_log`: the whole chain
    verified, a missing or unsigned head replaced)."""
    adopt_cmd = f"`allocgym audit anchor {path}{'' if key is None else ' --key-file ...'}`"
    anchor = read_anchor(path)
    if anchor is not None and anchor.signed:
        if key is None:
            option = "--key-file" if adopt else "serve --audit-key-file"
            raise AuditLogRefused(
                f"audit log {str(path)!r}: its head file is HMAC-signed and no key was "
                f"given: pass the key ({option}, or {AUDIT_KEY_ENV}) so that the anchor "
                "stays signed; without the key, move the log aside and start a new one"
            )
        read_anchor(path, key)  # a signed head is checked, and replaced only with its key
    elif anchor is not None and key is not None and not adopt:
        raise AuditLogRefused(
            f"audit log {str(path)!r}: a key was given but its head file is unsigned (the "
            "log was written without a key, or its head was replaced by an unsigned one): "
            "if this log was ever written with a key, the head is forged (a writer never "
            "replaces a signed head with an unsigned one) and records may have been cut: do "
            "not sign it. Otherwise verify it without the key (`allocgym audit verify "
            f"{path}` with no --key-file and {AUDIT_KEY_ENV} unset), compare its record count "
            "with a copy kept off the host (the allocator_audit_records metric), then sign "
            f"it with {adopt_cmd}"
        )
    size = path.stat().st_size if path.exists() else 0
    if anchor is None or adopt:
        try:
            report = verify_log(path, anchor=False)
        except AuditChainError as err:
            if err.reason != TORN_LINE:
                raise
            if anchor is not None:  # past the anchored records: a crash mid-write
                raise _torn_tail(path, err.line, anchor) from None
            # no head file: nothing bounds the cut, and a crash leaves none (the head is
            # written before the first record): records may have been cut with it
            raise AuditLogRefused(
                f"audit log {str(path)!r} has no head file {str(anchor_path(path))!r} and "
                f"its line {err.line} is cut: records cut from the end together with the "
                "head would look like this. Move the log aside and start a new one, or "
                "review it against a copy kept off the host"
            ) from None
        if report.n_records and anchor is None and not adopt:
            raise AuditLogRefused(
                f"audit log {str(path)!r} holds {report.n_records} records but its head "
                f"file {str(anchor_path(path))!r} is missing: records cut from the end "
                "together with it would not show. Move the log aside and start a new one, "
                f"or review it and adopt it as it is with {adopt_cmd}"
            )
        if anchor is None or anchor.n_records == 0:
            return report.head, report.n_records, size
    if size < anchor.offset:
        raise AuditChainError(
            path,
            anchor.n_records,
            f"the log holds {size} bytes, its anchor covers {anchor.offset} ({anchor.n_records} "
            "records): it was truncated or deleted",
        )
    if not path.exists():  # an anchor of 0 records: nothing was lost
        return GENESIS_HASH, 0, 0
    with open(path, "rb") as fh:
        prev = GENESIS_HASH
        if anchor.n_records:
            last = _last_line(path, end=anchor.offset)
            reason = _check_line(last, anchor.n_records - 1, None)
            if not reason and json.loads(last)["hash"] != anchor.head:
                reason = "hash differs from the anchored head (records rewritten)"
            if reason:
                raise AuditChainError(
                    path,
                    anchor.n_records,
                    f"the anchored record (ending at byte {anchor.offset}) is not intact "
                    f"({reason}): lines up to it were changed",
                )
            prev = anchor.head
        fh.seek(anchor.offset)
        n = anchor.n_records
        for i, raw in enumerate(fh, start=anchor.n_records + 1):
            reason = _check_line(raw, n, prev)
            if reason == TORN_LINE:  # only the last line lacks its newline
                raise _torn_tail(path, i, anchor)
            if reason:
                raise AuditChainError(path, i, reason)
            prev, n = json.loads(raw)["hash"], n + 1
    return prev, n, size


def _locked(path: Path, lock_fd: int, first: bool) -> AuditLogLockedError:
    """The refusal of a writer whose lock is held: ``first``, on ``<log>.lock`` (its
    holder's pid is in it); else on the log file itself (a hard-linked name, or a
    deleted ``<log>.lock``: that file's pid may not be the holder's)."""
    owner = os.pread(lock_fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
    where = str(_lock_path(path))
    if first:
        holder = f"another process (pid {owner}, named in {where!r})"
    else:
        holder = (
            f"another writer holding the log file itself (through another name of the same "
            f"file, a hard link, or after {where!r} was deleted; that file names pid {owner})"
        )
    return AuditLogLockedError(
        f"audit log {str(path)!r} is being written by {holder}: one writer per log; stop "
        "that process or give this one its own --audit-log"
    )


def _torn_tail(path: Path, line: int, anchor: Anchor) -> AuditLogRefused:
    """The refusal of an anchored log whose last line (``line``) has no newline."""
    key = " --key-file ..." if anchor.signed else ""
    return AuditLogRefused(
        f"audit log {str(path)!r} line {line}: the last line is cut "
        f"({len(_last_line(path))} bytes without a newline): a crash while its record was "
        "written (its decision unanswered; without --audit-fsync a power loss can also cut "
        "an answered one). Cut it with `allocgym audit anchor "
        f"{shlex.quote(str(path))} --cut-torn-tail{key}`, or restore the log from a trusted "
        "copy"
    )


def _cut_torn_tail(path: Path, key: bytes | None) -> None:
    """Cut an unterminated last line past the anchored records (a crash mid-write), after
    the head file's signature is checked (a refused run changes nothing). Anchored bytes
    are never cut, nor anything of a log without a head file."""
    if not path.is_file():
        return
    size = path.stat().st_size
    last = _last_line(path)
    if not last or last.endswith(b"\n"):
        return
    keep = size - len(last)
    anchor = read_anchor(path, key)
    if anchor is not None and anchor.signed and key is None:
        raise AuditLogRefused(
            f"audit log {str(path)!r}: its head file is HMAC-signed and no key was given: "
            f"pass the key (--key-file, or {AUDIT_KEY_ENV}) to cut its torn last line"
        )
    if anchor is None:
        raise AuditLogRefused(
            f"audit log {str(path)!r} has no head file: nothing bounds the cut of its last "
            "line (records cut from the end with the head would look the same); review it "
            "against a copy kept off the host"
        )
    if keep < anchor.offset:
        raise AuditChainError(
            path, anchor.n_records, f"the anchored records end at byte {anchor.offset}, the "
            f"log's last whole line at {keep}: it was truncated"
        )  # fmt: skip
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        os.fsync(fh.fileno())


class AuditLog:
    """Append-only, hash-chained JSONL audit log (one line per decision) with one writer
    and an anchored head.

    Opening takes the log's writer locks (``fcntl.flock`` on ``<log>.lock``, then on the
    log file itself): a second process is refused with :class:`AuditLogLockedError`; within one process every
    ``AuditLog`` of a file shares one writer, so their appends chain. An existing log is
    verified from its anchor on; one the writer cannot vouch for is refused with
    :class:`AuditLogRefused` (records but no head file, a signed head without ``key``, an
    unsigned head with one: :func:`adopt_log` adopts it after review). The anchor, the head
    file ``<log>.head`` (record count, last hash, byte offset; HMAC-signed with ``key``),
    is written atomically at open, every ``anchor_every`` records and at :meth:`close`
    (or interpreter exit): ``verify_log`` then detects truncation, deleted records and a
    recomputed chain up to the last anchor.

    Parameters
    ----------
    path : str or Path
        The JSONL file (created at open).
    fsync : bool
        ``os.fsync`` after every append (durable across power loss, slower); the log is
        synced before every anchor in any case.
    anchor_every : int
        Records between two anchors (>= 1): records written after the last anchor are not
        covered until the next one or the close.
    key : bytes, optional
        HMAC key of the anchor.

    Raises
    ------
    AuditChainError
        The log does not match its chain or its anchor.
    AuditLogRefused
        A log the writer cannot vouch for (see above).
    AuditLogLockedError
        Another process writes the log.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fsync: bool = False,
        anchor_every: int = 100,
        key: bytes | None = None,
    ) -> None:
        if isinstance(anchor_every, bool) or not isinstance(anchor_every, int) or anchor_every < 1:
            raise ValueError(f"anchor_every = {anchor_every!r}: use an integer >= 1")
        self.path = Path(path)
        real = Path(os.path.realpath(self.path))
        with _Held(_WRITERS_LOCK):
            writer = _WRITERS.get(real)
            if writer is None:
                writer = _Writer(real, fsync, anchor_every, key)
                _WRITERS[real] = writer
            elif (writer.fsync, writer.anchor_every, writer.key) != (fsync, anchor_every, key):
                # one writer per file: a handle asking for other settings would get the
                # first handle's silently (an unsigned head where a key was given)
                raise ValueError(
                    f"audit log {str(self.path)!r} is open in this process with fsync="
                    f"{writer.fsync}, anchor_every={writer.anchor_every} and "
                    f"{'a' if writer.key is not None else 'no'} key; this handle asks for "
                    f"fsync={fsync}, anchor_every={anchor_every} and "
                    f"{'a' if key is not None else 'no'} key (or another key): open it with "
                    "the same settings, or close the other handle first"
                )
            writer.handles += 1
        self._writer = writer
        self._release = weakref.finalize(self, writer.release)

    @property
    def head(self) -> str:
        """Hash of the last record (``GENESIS_HASH`` when empty)."""
        return self._writer.head

    def __len__(self) -> int:
        return self._writer.n

    def append(self, record: Mapping[str, Any]) -> str:
        """Append one record; returns its hash (the new ``head``)."""
        if not self._release.alive:
            raise ValueError(f"audit log {str(self.path)!r} was closed: open a new AuditLog")
        return self._writer.append(record)

    def anchor(self) -> None:
        """Write the head file now (e.g. at a service's shutdown)."""
        self._writer.write_anchor()

    def before_sync(self, sync: Callable[[], None]) -> None:
        """Run ``sync`` (a bound method, held weakly: it runs while its object lives)
        before every sync of the log to disk (before each anchor; after every record with
        ``fsync``): files the records point at are durable first."""
        with _Held(self._writer.mutex):
            self._writer.presync.append(weakref.WeakMethod(sync))  # type: ignore[arg-type]

    def close(self) -> None:
        """Release this handle; the last one anchors the head and drops the writer lock."""
        self._release()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def entries(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Parsed lines ``(line_number, entry)``, unchecked (use ``verify`` first)."""
        return read_entries(self.path)

    def records(self) -> Iterator[dict[str, Any]]:
        """Decoded records (non-finite floats restored), in order, unchecked."""
        for _, entry in self.entries():
            yield from_jsonable(entry["record"])

    def verify(self, *, raise_error: bool = True) -> ChainReport:
        """Check the whole file against its anchor (see ``verify_log``)."""
        # its writer anchored the log at open: a missing head file is a problem here
        return verify_log(self.path, raise_error=raise_error, key=self._writer.key, anchor=True)


def read_entries(
    path: str | Path, limit: int | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Parsed lines ``(line_number, entry)`` of an audit log, unchecked (``verify_log``
    first), the first ``limit`` only when given. A reader: it takes no lock, so it runs
    beside the log's writer (``limit``: the lines verified, never one being written)."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh, start=1):
            if limit is not None and i > limit:
                return
            yield i, json.loads(raw)


def adopt_log(path: str | Path, key: bytes | None = None, cut_torn_tail: bool = False) -> Anchor:
    """Anchor an existing audit log as it is: for a log whose head file is missing (a
    writer refuses it), or to start signing an unsigned one with ``key``.

    The whole chain is verified first, and an existing head must still match the log (a
    signed one needs ``key``); the caller vouches that no records were cut from the end.
    ``cut_torn_tail``: first cut an unterminated last line past the anchored records (a
    crash while it was written). Takes the writer lock
    like :class:`AuditLog`.

    Raises
    ------
    FileNotFoundError
        There is no log at ``path``.
    AuditChainError
        A broken chain, or a head file the log no longer matches.
    AuditLogRefused
        The head file is signed and ``key`` is None (the new head would be unsigned).
    AuditLogLockedError
        Another process (or an open ``AuditLog`` here) is writing the log.
    """
    real = Path(os.path.realpath(path))
    if not real.is_file():
        raise FileNotFoundError(f"no audit log at {str(path)!r}: pass the serve --audit-log file")
    with _Held(_WRITERS_LOCK):
        if real in _WRITERS:
            raise AuditLogLockedError(
                f"audit log {str(path)!r} is open for writing in this process: close it first"
            )
        writer = _Writer(real, False, 1, key, adopt=True, cut_torn_tail=cut_torn_tail)
        writer.handles = 1
    writer.release()
    anchor = read_anchor(real, key)
    assert anchor is not None  # the writer anchored it at open
    return anchor


def verify_log(
    path: str | Path,
    *,
    raise_error: bool = True,
    anchor: bool | None = None,
    key: bytes | None = None,
    live: bool = False,
) -> ChainReport:
    """Check every line of an audit log (canonical encoding, sequence number, link to the
    previous record's hash, its own hash), then the log against its anchor.

    The chain alone cannot show records cut from the end, nor a deletion whose chain was
    recomputed; the anchor (``<log>.head``) can, up to the records it covers: the log
    must hold at least ``n_records`` records and record ``n_records`` must hash to the
    anchored head.

    Parameters
    ----------
    path : str or Path
        The JSONL file (a missing file is an empty chain).
    raise_error : bool
        Raise at the first problem (default) or return a report saying where it is.
    anchor : bool, optional
        None (default): check the head file when there is one; True: it must exist (a
        deleted head file is a problem); False: the chain only.
    key : bytes, optional
        HMAC key: the head file must be signed with it.
    live : bool
        The log has a running writer: check the lines complete when the anchor was read
        and stop there (a line being written is not torn yet).

    Raises
    ------
    AuditChainError
        At the first bad line (its 1-based number in ``.line``), when ``raise_error``;
        also for a malformed, unsigned (with ``key``) or forged head file.
    """
    path = Path(path)
    try:
        anc = None if anchor is False else read_anchor(path, key)
    except AuditChainError as err:  # a malformed, unsigned (with key) or forged head file
        if raise_error:
            raise
        return ChainReport(False, 0, GENESIS_HASH, 0, err.reason)
    # the writer appends whole records before it anchors them: every line complete now
    # is at or past the anchor just read
    end = _complete_size(path) if live else None
    if anchor is True and anc is None:
        problem = (
            1,
            f"head file {str(anchor_path(path))!r} is missing: the anchor was deleted, or "
            "the log was not written by an AuditLog (verify the chain alone: anchor=False, "
            "or `allocgym audit verify --chain-only`)",
        )
        if raise_error:
            raise AuditChainError(path, *problem)
        return ChainReport(False, 0, GENESIS_HASH, *problem)
    prev, n = GENESIS_HASH, 0
    anchored_hash, anchored_end = None, 0
    if path.exists():
        with open(path, "rb") as fh:
            pos = 0
            for i, raw in enumerate(fh, start=1):
                pos += len(raw)
                if end is not None and pos > end:
                    break
                reason = _check_line(raw, n, prev)
                if reason:
                    if raise_error:
                        raise AuditChainError(path, i, reason)
                    return ChainReport(False, n, prev, i, reason)
                prev, n = json.loads(raw)["hash"], n + 1
                if anc is not None and n == anc.n_records:
                    anchored_hash, anchored_end = prev, pos
    reason, line = "", 0
    if anc is not None and n < anc.n_records:
        line = n + 1
        reason = (
            f"the log holds {n} records, its anchor {anc.n_records} (anchored "
            f"{anc.anchored_at}): records were cut from the end or deleted and the chain "
            "recomputed"
        )
    elif anc is not None and anc.n_records and anchored_hash != anc.head:
        line = anc.n_records
        reason = (
            f"record {anc.n_records} does not hash to the anchored head: records up to it "
            "were deleted, inserted or rewritten and the chain recomputed"
        )
    elif anc is not None and anchored_end != anc.offset:
        # the writer reopens a log at the anchored offset: a head whose offset is not
        # where its record ends would verify here and be refused there
        line = anc.n_records
        reason = (
            f"the head file says record {anc.n_records} ends at byte {anc.offset}, it ends "
            f"at byte {anchored_end}: the head file was edited"
        )
    if reason:
        if raise_error:
            raise AuditChainError(path, line, reason)
        return ChainReport(False, n, prev, line, reason, anc)
    return ChainReport(True, n, prev, anchor=anc)


def _check_line(raw: bytes, seq: int, prev: str | None) -> str:
    """Why ``raw`` is not entry ``seq`` chained to ``prev`` ('' when it is; ``prev`` None:
    the link is not checked)."""
    if not raw.endswith(b"\n"):
        return TORN_LINE
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
    if prev is not None and entry["prev_hash"] != prev:
        return "prev_hash does not match the previous record's hash (chain broken)"
    body = {k: entry[k] for k in ("seq", "prev_hash", "record")}
    if hashlib.sha256(canonical_json(body)).hexdigest() != entry["hash"]:
        return "hash does not match the record (record modified)"
    return ""


def _complete_size(path: Path) -> int:
    """Bytes of a file's complete lines (0 when missing): its size less a trailing line
    still being written."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    last = _last_line(path, end=size)
    return size if last.endswith(b"\n") else size - len(last)


def _last_line(path: Path, end: int | None = None, block: int = 1 << 16) -> bytes:
    """Last line of a file's first ``end`` bytes (all of it by default), with its newline
    if any, reading backwards in blocks."""
    with open(path, "rb") as fh:
        if end is None:
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
    path: str | Path,
    decide_fn: Callable[[dict[str, Any]], Mapping[str, Any]],
    *,
    key: bytes | None = None,
    verified: int | None = None,
    fields: bool = False,
) -> ReplayReport:
    """Re-run every record's ``input`` through ``decide_fn`` and compare outputs bytewise.

    The chain and its anchor are verified first (``AuditChainError`` if broken, or if the
    head file is missing). A record is reproduced when ``canonical_json(decide_fn(input))``
    equals ``canonical_json(record["output"])`` (with ``fields``, each field ``decide_fn``
    returns equals the record's), and a record's ``input_hash``, when it has one, is the
    hash of its input. The log is only read: a replay runs
    beside the service that writes it, over the complete records verified when it
    starts (an unterminated last line, a record being written, is left out; ``verify_log``
    reports it once the log is closed).

    Parameters
    ----------
    path : str or Path
        An ``AuditLog`` file whose records carry ``input`` and ``output``.
    decide_fn : callable
        Receives the decoded input (lists for arrays, floats restored) and returns the
        decision output.
    key : bytes, optional
        HMAC key of the anchor: the head file must be signed with it.
    verified : int, optional
        The ``n_records`` of an ok ``verify_log(path, key=key, anchor=True, live=True)``
        the caller has just run (to report its verdict itself): those records are
        replayed without verifying the log again. ``None``: verify here.
    fields : bool
        ``decide_fn`` returns the record fields it derives again (``output`` among them),
        not the output alone.
    """
    if verified is None:
        verified = verify_log(path, key=key, anchor=True, live=True).n_records
    n, good, bad = 0, 0, []
    for line, entry in read_entries(path, limit=verified):
        record = entry["record"]
        n += 1
        got = decide_fn(from_jsonable(record["input"]))
        derived = got if fields else {"output": got}
        same = all(canonical_json(v) == canonical_json(record.get(k)) for k, v in derived.items())
        if "input_hash" in record:  # the logged input is the one hashed
            same = same and record["input_hash"] == sha256_hex(record["input"])
        if same:
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

    _REASON_POSITIONS = np.array([int(code).bit_length() - 1 for code in ReasonCode], np.int64)
    """Bit position of each ``ReasonCode``, in ``REASON_NAMES`` order (``reason_summary``'s
    columns)."""

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
            "allocator_gross_exposure_ratio",
            "Gross exposure sum |w| of the book (fraction of equity).",
            registry=r,
        )
        self.net_exposure = Gauge(
            "allocator_net_exposure_ratio",
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
            "allocator_capacity_utilization_ratio",
            "Per-symbol use of capacity: max(|w| / symbol cap, trade / participation cap, "
            "traded weight / per-symbol turnover cap when set).",
            ["symbol"],
            registry=r,
        )
        self.strategy_pnl = Gauge(
            "allocator_strategy_pnl_contribution_currency",
            "Realised P&L attributed to each strategy since the service started, summed over "
            "accounts, in the accounts' currency (see StrategyPnL for the rule).",
            ["strategy_id"],
            registry=r,
        )
        self.decision_latency = Histogram(
            "allocator_decision_latency_seconds",
            "Wall time of one allocation decision.",
            buckets=tuple(latency_buckets),
            registry=r,
        )
        # every reason visible at 0: nothing is 'unknown'. The children are kept: a
        # ``labels`` call per count and per symbol was a fifth of a decision's metrics cost.
        self._rejects = [self.reject_total.labels(reason=name) for name in REASON_NAMES]
        # The gauges of the last decision (exposures, capacity use) are formed when
        # scraped, from copies the decision stored: a scrape reads one decision of the
        # many between two scrapes, and forming them per decision was a third of a
        # decision's metrics cost. ``_book``: the last book (n_assets,); ``_capacity``:
        # the symbol labels and the capacity use of their last decision.
        self._book = np.zeros(0)
        self._capacity: tuple[tuple[str, ...], _LastCapacity] = ((), _LastCapacity())
        self.gross_exposure.set_function(lambda: float(np.abs(self._book).sum()))
        self.net_exposure.set_function(lambda: float(self._book.sum()))

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
            Needed for ``allocator_capacity_utilization_ratio`` (symbol cap and
            participation cap, both times the regime capacity multiplier).
        symbols : sequence of str, optional
            Symbol label values (asset indices otherwise).
        strategy_pnl : mapping of str to float, optional
            P&L per strategy id in currency (:meth:`StrategyPnL.update`), added to
            ``allocator_strategy_pnl_contribution_currency``.
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
        # one count per (portfolio, symbol) carrying a bit; a portfolio-level bit that no
        # symbol of the portfolio carries counts once for the portfolio: the larger of the
        # two per portfolio, summed
        per_portfolio, _ = reason_summary(sym, port, self._REASON_POSITIONS, 0)
        port_bits = (port[:, None] & _REASON_BITS) != 0
        counts = np.maximum(per_portfolio, port_bits).sum(axis=0)
        for child, count in zip(self._rejects, counts.tolist(), strict=True):
            if count:
                child.inc(count)

        w = book[env]
        self._book = w.copy()
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
            self.strategy_pnl.labels(strategy_id=str(sid)).inc(float(pnl))
        if limits is not None:
            names = tuple(symbols) if symbols is not None else tuple(map(str, range(w.shape[0])))
            if len(names) != w.shape[0]:
                raise ValueError(f"{len(names)} symbol labels for {w.shape[0]} assets")
            # a copy of what the utilisation reads (the caller may reuse its arrays),
            # checked now: a bad shape fails this call, not every later scrape
            fills = ctx.recent_fills
            snapshot = _CapacityInputs(
                np.array(ctx.regime, dtype=np.int64),
                np.array(ctx.equity, dtype=np.float64),
                None if fills is None else np.array(fills, dtype=np.float64),
                np.array(ctx.current_weights, dtype=np.float64),
                np.array(ctx.adv_notional, dtype=np.float64),
            )
            snapshot.check(book.shape)
            if self._capacity[0] != names:
                # a new label set gets its own store: the children of labels no longer
                # given keep their own last values
                last = _LastCapacity()
                for i, name in enumerate(names):
                    child = self.capacity_utilization.labels(symbol=name)
                    child.set_function(functools.partial(last.value, i))
                self._capacity = (names, last)
            self._capacity[1].inputs = (gate, snapshot, limits, book.copy(), env)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)


@dataclass(frozen=True)
class _CapacityInputs:
    """The ``GateContext`` fields :func:`capacity_utilization` reads, copied."""

    regime: Any
    equity: Any
    recent_fills: Any
    current_weights: Any
    adv_notional: Any

    def check(self, shape: tuple[int, ...]) -> None:
        """Refuse fields that do not broadcast over books of ``shape`` (n_envs, n_assets)
        as :func:`capacity_utilization` reads them."""
        shapes = {
            "regime": (np.size(self.regime), 1),  # per portfolio: a column
            "equity": (np.size(self.equity), 1),
            "current_weights": np.shape(self.current_weights),
            "adv_notional": np.shape(self.adv_notional),
            "recent_fills": np.shape(self.recent_fills),
        }
        try:
            fits = np.broadcast_shapes(shape, *shapes.values()) == shape
        except ValueError:
            fits = False
        if not fits:  # a field that adds an axis or columns is as wrong as one that clashes
            raise ValueError(
                f"the decision's book has shape {shape}; its context's fields, as the "
                f"capacity use reads them, have shapes {shapes}: they do not broadcast to it"
            )


class _LastCapacity:
    """One label set's capacity use at its last decision: ``inputs`` (set by the
    decision), and the values formed from them at the first scrape after it."""

    __slots__ = ("formed", "inputs")

    def __init__(self) -> None:
        self.inputs: tuple[Any, ...] | None = None
        self.formed: tuple[tuple[Any, ...] | None, list[float]] = (None, [])

    def value(self, i: int) -> float:
        inputs = self.inputs
        if inputs is None:
            return 0.0
        formed_from, values = self.formed
        if formed_from is not inputs:  # keyed by the inputs: a decision meanwhile is not lost
            gate, snapshot, limits, book, env = inputs
            values = capacity_utilization(gate, snapshot, limits, book=book)[env].tolist()
            self.formed = (inputs, values)
        return values[i]


def capacity_utilization(
    gate: GateResult,
    ctx: GateContext | _CapacityInputs,
    limits: RiskLimits,
    *,
    book: np.ndarray | None = None,
) -> np.ndarray:
    """Per-symbol capacity use, shape (n_envs, n_assets), 1.0 = at the limit: the largest of
    ``|w_i|`` over the symbol cap, its notional ``|w_i| * equity`` over the symbol notional
    cap when one is set, the bar's traded notional (``|w_i - w_cur,i| * equity``
    plus ``ctx.recent_fills``, the fills already done in the bar) over the participation
    cap (fraction of ADV) and, when ``risk.max_symbol_turnover`` is set, the bar's traded
    weight over it; every cap times the regime capacity multiplier, as the gates apply
    them. The per-symbol slippage budget is not in it (it needs the cost model)."""
    w = np.asarray(gate.approved if book is None else book, dtype=np.float64)
    # per-portfolio values as a column, (n_envs, 1) or (1, 1) from a scalar: either
    # broadcasts over w (np.broadcast_to was a tenth of the call)
    regime = np.asarray(ctx.regime, dtype=np.int64).reshape(-1)
    capacity = np.asarray(limits.capacity_multiplier(regime), np.float64).reshape(-1, 1)
    equity = np.asarray(ctx.equity, dtype=np.float64).reshape(-1, 1)
    filled = 0.0 if ctx.recent_fills is None else np.asarray(ctx.recent_fills, np.float64)
    trade = np.abs(w - np.asarray(ctx.current_weights, dtype=np.float64)) * equity + filled
    used = np.zeros_like(w)
    with np.errstate(divide="ignore", invalid="ignore"):
        caps = [
            (np.abs(w), limits.max_symbol_weight * capacity),
            (trade, limits.max_participation * capacity * np.asarray(ctx.adv_notional, np.float64)),
        ]
        if limits.max_symbol_notional is not None:  # a notional cap can bind first
            caps.append((np.abs(w) * equity, limits.max_symbol_notional * capacity))
        if limits.max_symbol_turnover is not None:
            caps.append((trade / equity, limits.max_symbol_turnover * capacity))
        for amount, cap in caps:
            positive = cap > 0
            ratio = amount / cap
            if not positive.all():  # a cap <= 0 (or NaN): any amount is over it, 0 is not
                ratio = np.where(positive, ratio, np.where(amount == 0, 0.0, np.inf))
            used = np.maximum(used, ratio)
    return used


METRIC_RENAMES: dict[str, str] = {
    "allocator_gross_exposure": "allocator_gross_exposure_ratio",
    "allocator_net_exposure": "allocator_net_exposure_ratio",
    "capacity_utilization_ratio": "allocator_capacity_utilization_ratio",
    "strategy_pnl_contribution": "allocator_strategy_pnl_contribution_currency",
}
"""Metric names of the first release and the names that replaced them (Prometheus naming:
the ``allocator_`` prefix on every metric, ``_ratio`` on fractions, the unit last)."""

UNATTRIBUTED = "unattributed"
"""Strategy id of the P&L that no strategy owns (see :class:`StrategyPnL`)."""

MAX_PNL_ACCOUNTS = 10_000
"""Accounts whose last decision :class:`StrategyPnL` remembers by default."""

_OWNER_EPS = 1e-15
"""A symbol whose strategy contributions sum to less than this (in absolute value), or to
less than ``_OWNER_REL`` of their absolute sum, has no owner: dividing by such a total
would turn rounding noise (or two near-cancelling strategies) into shares."""
_OWNER_REL = 1e-9


def strategy_shares(parts: np.ndarray) -> np.ndarray:
    """Each strategy's share of each symbol's weight.

    Parameters
    ----------
    parts : ndarray, shape (..., n_strategies, n_assets)
        Each strategy's (STRATEGY_CAP-scaled) contribution to each symbol's weight.

    Returns
    -------
    ndarray, shape (..., n_strategies, n_assets)
        ``parts`` over their sum across strategies: every column sums to 1 (a share is
        negative where a strategy offsets the others), or is all 0 where the symbol's total
        is below 1e-15, or below 1e-9 of the parts' absolute sum (near-cancelling
        strategies: +0.2 against -0.2 + 1e-12 had given shares of +-2e11).
    """
    parts = np.asarray(parts, dtype=np.float64)
    total = parts.sum(axis=-2, keepdims=True)
    floor = np.maximum(_OWNER_EPS, _OWNER_REL * np.abs(parts).sum(axis=-2, keepdims=True))
    return np.divide(parts, total, out=np.zeros_like(parts), where=np.abs(total) > floor)


@dataclass
class _AccountMark:
    timestamp: Any  # datetime of the decision bar
    prices: np.ndarray  # (n_assets,) closes at that bar
    owners: np.ndarray  # (n_strategies, n_assets) share of each symbol per strategy


class StrategyPnL:
    """Realised P&L of each account attributed to strategies, from per-account state.

    The rule. At each decision of an account, the P&L of symbol ``i`` since the account's
    previous decision is ``q_i (p_i - p_prev,i)``: the shares it holds now (the previous
    orders, once filled, are in them) times the change of the decision-bar close. Each
    symbol's P&L goes to the strategies that own it, in proportion to their contributions
    to the symbol's weight (:func:`strategy_shares`) at the last decision that traded the
    symbol; a symbol never traded by a strategy decision (held before the first
    decision, or last traded by a fallback, disabled or kill-switch decision) goes to
    :data:`UNATTRIBUTED`. The per-strategy sums plus :data:`UNATTRIBUTED` equal the
    account's mark-to-market P&L. This is the backtest's attribution
    (``Backtest.strategy_pnl``) with the account's reported positions as the book held.

    Memory is bounded: one mark per account (decision time, ``n_assets`` closes and the
    ``(n_strategies, n_assets)`` owners), at most ``max_accounts`` of them; the account
    decided least recently is forgotten first, and its next decision starts afresh.

    Parameters
    ----------
    strategies : sequence of str
        Strategy ids, in the order of the owners' first axis.
    max_accounts : int
        Accounts remembered (>= 1).
    """

    def __init__(self, strategies: Sequence[str], max_accounts: int = MAX_PNL_ACCOUNTS) -> None:
        if int(max_accounts) < 1:
            raise ValueError(
                f"StrategyPnL max_accounts={max_accounts!r}: remember at least 1 account"
            )
        if UNATTRIBUTED in strategies or len(set(strategies)) != len(strategies):
            raise ValueError(
                f"StrategyPnL strategies {list(strategies)!r}: distinct ids, none named "
                f"{UNATTRIBUTED!r}"
            )
        self.strategies = tuple(str(s) for s in strategies)
        self.max_accounts = int(max_accounts)
        self._marks: dict[str, _AccountMark] = {}

    def __len__(self) -> int:
        return len(self._marks)

    def update(
        self,
        account: str,
        timestamp: Any,
        prices: np.ndarray,
        held_shares: np.ndarray,
        traded: np.ndarray,
        owners: np.ndarray | None,
    ) -> dict[str, float]:
        """Attribute the P&L since ``account``'s previous decision, then mark this one.

        Parameters
        ----------
        account : str
            Account id.
        timestamp : datetime
            Time of this decision's bar. A bar before the account's last one is ignored
            (nothing attributed, nothing marked); the same bar attributes nothing and
            replaces the mark.
        prices : ndarray, shape (n_assets,)
            Closes of this decision's bar.
        held_shares : ndarray, shape (n_assets,)
            Shares the account holds now (signed).
        traded : ndarray of bool, shape (n_assets,)
            Symbols this decision orders a trade in (their owners change).
        owners : ndarray, shape (n_strategies, n_assets), or None
            Each strategy's share of each symbol at this decision (:func:`strategy_shares`);
            None when no strategy decided (its trades leave the symbols unowned). A traded
            symbol without an owner here keeps its previous owners.

        Returns
        -------
        dict of str to float
            P&L in currency per strategy id and :data:`UNATTRIBUTED` (every key present);
            empty at an account's first decision and when nothing is attributed.
        """
        prices = np.asarray(prices, dtype=np.float64)
        n_assets = prices.shape[0]
        shape = (len(self.strategies), n_assets)
        held = np.asarray(held_shares, dtype=np.float64)
        moved = np.asarray(traded, dtype=bool)
        if prices.ndim != 1 or held.shape != (n_assets,) or moved.shape != (n_assets,):
            raise ValueError(
                f"StrategyPnL.update: prices {prices.shape}, held_shares {held.shape} and "
                f"traded {moved.shape} must all be ({n_assets},)"
            )
        if owners is not None and np.shape(owners) != shape:
            raise ValueError(f"StrategyPnL.update: owners {np.shape(owners)}, expected {shape}")
        previous = self._marks.get(account)
        if previous is not None and timestamp < previous.timestamp:
            return {}
        attributed: dict[str, float] = {}
        held_owners = np.zeros(shape) if previous is None else previous.owners
        if previous is not None and timestamp > previous.timestamp:
            pnl = held * (prices - previous.prices)
            by_strategy = held_owners @ pnl
            unowned = float((1.0 - held_owners.sum(axis=0)) @ pnl)
            attributed = dict(zip(self.strategies, by_strategy.tolist(), strict=True))
            attributed[UNATTRIBUTED] = unowned
        new_owners = np.zeros(shape) if owners is None else np.asarray(owners, np.float64)
        if owners is not None:
            # a strategy decision that gives a traded symbol no owner (its families stopped
            # proposing it; a trade limit may keep part of it): what remains keeps its owners
            moved = moved & (new_owners != 0.0).any(axis=0)
        self._marks.pop(account, None)  # re-inserted last: the dict's order is recency
        self._marks[account] = _AccountMark(
            timestamp, prices.copy(), np.where(moved, new_owners, held_owners)
        )
        while len(self._marks) > self.max_accounts:
            del self._marks[next(iter(self._marks))]
        return attributed
