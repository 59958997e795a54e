"""``DecisionService``: a ``FrozenAllocator`` with metrics, audit log, idempotency and kill switch.

The HTTP app (``allocgym.serving.http``) is a shell over this class. Each new decision is

1. decided by :meth:`FrozenAllocator.trace`;
2. appended to the hash-chained ``AuditLog`` *before* it is returned: the record's
   ``input`` holds the request, the server clock, the operator kill switch, the enabled
   flag and the model outcome, its ``output`` the decision without latency
   (:meth:`Decision.audit_output`: per-symbol vectors as exact base64 arrays), under the
   keys of ``observability.decision_record``, so :func:`replay_audit` reproduces it byte
   for byte. The request's history arrays are
   stored once each, content-addressed, in ``<log>.arrays/<sha256>.bin`` beside the log
   (:class:`ArrayStore`; requests of one bar share them) and referenced from the record
   by dtype, shape and sha256, which the chain covers, so a modified array file is
   detected at replay; ``inline_arrays=True`` embeds them (base64) in the record instead.
   Beside them the record keeps the model's raw action, the proposed and approved
   weights, the approved book's ex-ante CVaR (:func:`ex_ante_cvar`), the kill state
   (request, operator, configured) and the reason codes;
3. counted in the Prometheus metrics (``allocgym.observability.Metrics``: the
   ``allocator_*`` names and the decision-latency histogram, plus the serving counters
   below), the account's P&L since its previous decision attributed to the strategies
   that own its symbols (``observability.StrategyPnL``, one mark per ``account_id``),
   once the record is written (a decision that could not be audited is not counted);
4. remembered by request id in a bounded LRU: a repeated id returns the stored decision
   without deciding again (a different body under a known id is refused).

Streaming market state: :meth:`DecisionService.apply_bar` feeds the service's
:class:`~allocgym.serving.market.MarketState` (``POST /v1/bars``) and
:meth:`DecisionService.decide_account` decides an :class:`AccountRequest` (the account and
the bar it names) on it. Such a decision is the stateless request over the held window
(:meth:`MarketState.request`), decided with the incrementally formed features, so it is
audited as that request: the record's ``input.request`` references the window's arrays
(stored once per bar in the array store, shared by every decision on that bar; inline
with ``inline_arrays``), ``input.bar`` names the bar the account asked for and
``input.window_sha256`` is the digest of the window, and :func:`replay_audit` re-decides
it statelessly. A 301 x 20 window is about 150 KB of array files per bar; a
digest alone would not let a replay rebuild the decision, so the window is kept.

Serving metrics besides ``Metrics``'s: ``allocator_model_info{model_id,sha256,
config_hash,mode}``, ``allocator_decisions_total{status}``,
``allocator_fallback_total{cause}``, ``allocator_request_reject_total{code,detail}``,
``allocator_kill_switch_engaged``, ``allocator_enabled``,
``allocator_idempotent_replays_total``, ``allocator_shed_total{reason}``,
``allocator_in_flight``, ``allocator_bars_total{status,code}``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Info, generate_latest

from allocgym.compiled import book_cvar
from allocgym.data import simple_returns
from allocgym.errors import AllocgymError, ConfigError, RequestError
from allocgym.intents import STRATEGY_FAMILIES
from allocgym.observability import (
    UNATTRIBUTED,
    AuditLog,
    Canonical,
    Metrics,
    ReplayReport,
    StrategyPnL,
    atomic_write,
    from_jsonable,
    reason_names,
    replay,
    sha256_hex,
    strategy_shares,
    sync_path,
)
from allocgym.risk import ReasonCode
from allocgym.serving.allocator import DecisionTrace, FrozenAllocator
from allocgym.serving.market import MarketState
from allocgym.serving.schemas import (
    INTENT_VECTOR_FIELDS,
    AccountRequest,
    Bar,
    BarAck,
    DecisionRequest,
    array_from_bytes,
    encode_array,
)

_log = logging.getLogger(__name__)

FALLBACK_CAUSES = ("exception", "nan", "deadline", "bad_output", "prior")
STATUSES = ("ok", "fallback", "disabled", "killed", "rejected")


ADMISSION_METRICS = frozenset({"allocator_shed", "allocator_in_flight"})
"""The metric families the HTTP front counts (admission), by family name."""


class _Families:
    """The families of ``registry`` named in ``names`` (``keep``) or all the others: a
    collector ``generate_latest`` reads."""

    def __init__(self, registry: CollectorRegistry, names: frozenset[str], keep: bool) -> None:
        self.registry, self.names, self.keep = registry, names, keep

    def collect(self) -> Iterator[Any]:
        return (m for m in self.registry.collect() if (m.name in self.names) == self.keep)


class ServingMetrics(Metrics):
    """``observability.Metrics`` plus the serving counters (one registry)."""

    def __init__(self, allocator: FrozenAllocator) -> None:
        super().__init__()
        r = self.registry
        self.model_info = Info("allocator_model", "The frozen policy being served.", registry=r)
        self.model_info.info(
            {
                "model_id": allocator.policy.model_id,
                "sha256": allocator.policy.sha256,
                "config_hash": allocator.policy.config_hash,
                "mode": allocator.mode,
            }
        )
        self.decisions = Counter(
            "allocator_decisions_total", "Decisions by status.", ["status"], registry=r
        )
        self.fallbacks = Counter(
            "allocator_fallback_total",
            "Decisions that used the defensive allocation because the model failed.",
            ["cause"],
            registry=r,
        )
        self.request_rejects = Counter(
            "allocator_request_reject_total",
            "Requests rejected before deciding (coded INVALID_INPUT or STALE_INPUT).",
            ["code", "detail"],
            registry=r,
        )
        self.kill_switch = Gauge(
            "allocator_kill_switch_engaged",
            "1 while the operator kill switch is engaged.",
            registry=r,
        )
        self.enabled = Gauge(
            "allocator_enabled", "TRADING_ALLOCATOR_ENABLED (1 = the policy decides).", registry=r
        )
        self.idempotent = Counter(
            "allocator_idempotent_replays_total",
            "Repeated request ids answered from the decision cache.",
            registry=r,
        )
        self.shed = Counter(
            "allocator_shed_total", "HTTP requests shed under overload.", ["reason"], registry=r
        )
        self.bars = Counter(
            "allocator_bars_total",
            "Bars posted to the streaming market state, by outcome (code: why refused).",
            ["status", "code"],
            registry=r,
        )
        self.in_flight = Gauge(
            "allocator_in_flight", "HTTP decisions queued or running.", registry=r
        )
        self.audit_records = Gauge(
            "allocator_audit_records",
            "Records in the audit log's hash chain (read when scraped). It only grows over "
            "the log's life, restarts included: a drop means the log was cut or rolled back.",
            registry=r,
        )
        # every status visible at 0; the children are kept (a ``labels`` call per decision)
        self._decisions = {s: self.decisions.labels(status=s) for s in STATUSES}
        for c in FALLBACK_CAUSES:
            self.fallbacks.labels(cause=c)
        for reason in ("in_flight", "queue_time"):
            self.shed.labels(reason=reason)
        self.enabled.set(1 if allocator.enabled else 0)
        self.kill_switch.set(1 if allocator.operator_kill else 0)
        # In weights and tilt mode the policy's whole book is one strategy, as in the
        # decision's budget trace.
        owners = (
            STRATEGY_FAMILIES[: allocator.n_strategies]
            if allocator.mode == "budgets"
            else ("policy",)
        )
        self.pnl = StrategyPnL(owners)
        for sid in (*owners, UNATTRIBUTED):
            self.strategy_pnl.labels(strategy_id=sid)

    def exposition(self, part: Literal["all", "admission", "service"] = "all") -> bytes:
        """The registry in Prometheus text format; ``part``: only the HTTP admission
        series (``ADMISSION_METRICS``: shed, in flight) or all but them. A decision process
        serves ``service`` and the HTTP process in front of it adds its ``admission``."""
        if part == "all":
            return super().exposition()
        return generate_latest(_Families(self.registry, ADMISSION_METRICS, part == "admission"))

    def observe_trace(
        self, tr: DecisionTrace, allocator: FrozenAllocator, request: DecisionRequest
    ) -> None:
        """Count one decision and attribute the account's P&L since its previous one."""
        d = tr.decision
        self._decisions[d.status].inc()
        if d.reject is not None:
            self.request_rejects.labels(code=d.reject.code, detail=d.reject.detail).inc()
            self.decision_latency.observe(tr.latency_s)
            return
        if tr.model_cause is not None:
            self.fallbacks.labels(cause=tr.model_cause).inc()
        assert tr.gate is not None and tr.context is not None
        active = None
        if allocator.mode == "weights":
            active = 1 if d.gross_exposure else 0
        self.observe_decision(
            tr.gate,
            tr.context,
            execution=tr.execution,
            latency_s=tr.latency_s,
            limits=allocator.limits,
            symbols=allocator.symbols,
            strategy_pnl=self._attribute(tr, allocator, request),
            active_strategies=active,
        )

    def _attribute(
        self, tr: DecisionTrace, allocator: FrozenAllocator, request: DecisionRequest
    ) -> dict[str, float]:
        """:meth:`StrategyPnL.update` for a decided (not rejected) request."""
        assert tr.gate is not None and tr.context is not None and tr.execution is not None
        n_assets = len(allocator.symbols)
        owners = None
        if tr.context.strategy_weights is not None:  # budgets mode, the policy's budgets
            parts = np.asarray(tr.context.strategy_weights, np.float64)[0]
            if tr.gate.strategy_scale is not None:
                parts = parts * np.asarray(tr.gate.strategy_scale, np.float64)[0][:, None]
            owners = strategy_shares(parts)
        elif allocator.mode != "budgets" and tr.decision.status == "ok":
            owners = np.ones((1, n_assets))
        held = np.array([request.positions.get(sym, 0.0) for sym in allocator.symbols])
        return self.pnl.update(
            request.account_id or "",
            dt.datetime.fromisoformat(tr.decision.timestamp),
            np.asarray(tr.context.prices, np.float64).reshape(n_assets),
            held,
            np.asarray(tr.execution.delta_qty, np.float64)[0] != 0.0,
            owners,
        )


def _mask(names: list[str]) -> int:
    out = 0
    for name in names:
        out |= int(ReasonCode[name])
    return out


class ArrayStoreError(AllocgymError, ValueError):
    """An audit array file is missing or does not hash to its reference."""


_REF_KEYS = frozenset({"dtype", "shape", "sha256"})


def _holds(path: Path, digest: str) -> bool:
    """Whether the array file ``path`` exists and hashes to ``digest``."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == digest
    except FileNotFoundError:
        return False


_KNOWN_MAX = 100_000


class ArrayStore:
    """Content-addressed array files beside an audit log (``<folder>/<sha256>.bin``).

    Parameters
    ----------
    folder : str or Path
        Created on the first ``put``.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._known: OrderedDict[str, None] = OrderedDict()
        self._unsynced: list[Path] = []
        self._unsynced_lock = threading.Lock()

    @classmethod
    def beside(cls, log_path: str | Path) -> ArrayStore:
        """The store of an audit log: ``<log>.arrays``, beside the path as given (as
        ``serve --audit-log`` and ``audit replay`` name it)."""
        p = Path(log_path)
        return cls(p.with_name(p.name + ".arrays"))

    def put(self, a: np.ndarray) -> dict[str, Any]:
        """Store ``a`` (float64 or bool) once; returns its reference ``{dtype, shape, sha256}``."""
        arr = np.ascontiguousarray(a)
        if arr.dtype != np.bool_:
            arr = np.ascontiguousarray(arr, dtype="<f8")
        raw = arr.tobytes()
        digest = hashlib.sha256(raw).hexdigest()
        if digest not in self._known:
            path = self.folder / f"{digest}.bin"
            if not _holds(path, digest):
                # a file a crash left empty or cut is written again, not trusted by its
                # name
                self.folder.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{digest}.{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_bytes(raw)
                os.replace(tmp, path)
            # synced by :meth:`sync` before the log its records are in: a file found
            # whole may have been left unsynced by a process killed before its anchor
            with self._unsynced_lock:
                self._unsynced.append(path)
            self._known[digest] = None
            if len(self._known) > _KNOWN_MAX:
                self._known.popitem(last=False)
        return {"dtype": arr.dtype.str, "shape": list(arr.shape), "sha256": digest}

    def sync(self) -> None:
        """Sync the files written since the last call, then the folder's entries (the
        audit log runs this before each of its own syncs: ``AuditLog.before_sync``)."""
        with self._unsynced_lock:
            written, self._unsynced = self._unsynced, []
        if not written:
            return
        for path in (*written, self.folder):
            sync_path(path)

    def get(self, ref: Mapping[str, Any]) -> np.ndarray:
        """The array of a reference, verified against its sha256.

        Raises
        ------
        ArrayStoreError
            Missing file or a content that does not match the reference.
        """
        digest = str(ref["sha256"])
        path = self.folder / f"{digest}.bin"
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ArrayStoreError(f"audit array reference {digest!r} is not a sha256")
        if not path.is_file():
            raise ArrayStoreError(
                f"audit array {str(path)!r} is missing: copy the log's .arrays folder with it"
            )
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != digest:
            raise ArrayStoreError(
                f"audit array {str(path)!r} does not hash to its name: it was modified; "
                "restore it from a trusted copy"
            )
        return array_from_bytes(raw, ref["dtype"], list(ref["shape"]))

    def resolve(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """An audited request with the references where ``DecisionRequest.to_audit`` puts
        them (its array fields and intent vectors) replaced by their arrays. Nothing else
        is read as a reference: a client's positions may name symbols dtype, shape and
        sha256."""
        out = dict(request)
        for name in DecisionRequest.ARRAY_FIELDS:
            out[name] = self._array(out.get(name))
        for name in INTENT_VECTOR_FIELDS:
            vectors = out.get(name)
            if isinstance(vectors, dict):
                out[name] = {k: self._array(v) for k, v in vectors.items()}
        return out

    def _array(self, value: Any) -> Any:
        return self.get(value) if isinstance(value, dict) and set(value) == _REF_KEYS else value


@dataclass(frozen=True)
class ServiceResult:
    """What the service answers: the decision's JSON bytes and whether it was cached."""

    body: bytes
    status: str
    cached: bool
    request_id: str


class IdempotencyConflict(RequestError):
    """A request id already decided is reused with a different body."""


class DecisionService:
    """Stateful shell: allocator + metrics + audit log + idempotency cache + kill switch.

    Parameters
    ----------
    allocator : FrozenAllocator
    audit_log : str, Path or AuditLog, optional
        Where every decision and kill-switch change is appended (None: not audited).
    cache_size : int, optional
        Decisions remembered by request id; default ``allocator.serving.idempotency_cache``.
    inline_arrays : bool
        Embed the request arrays in each audit record (base64) instead of the
        content-addressed :class:`ArrayStore` beside the log.
    window_bars : int, optional
        Rows of the streaming market state (default: the longest window a decision reads).
    """

    def __init__(
        self,
        allocator: FrozenAllocator,
        *,
        audit_log: str | Path | AuditLog | None = None,
        cache_size: int | None = None,
        inline_arrays: bool = False,
        window_bars: int | None = None,
    ) -> None:
        self.allocator = allocator
        self.market = MarketState(allocator, window_bars)
        # the held window's arrays (kept alive, so their ids stay theirs) and their refs
        self._window_refs: tuple[dict[str, np.ndarray], dict[int, dict[str, Any]]] = ({}, {})
        self._scenarios: tuple[str, np.ndarray] = ("", np.empty((0, 0)))
        self.metrics = ServingMetrics(allocator)
        # read before the log is opened (and locked): an unreadable record stops the start
        saved = None
        if audit_log is not None:
            saved = read_kill_state(
                audit_log.path if isinstance(audit_log, AuditLog) else audit_log
            )
        if audit_log is None or isinstance(audit_log, AuditLog):
            self.audit = audit_log
        else:
            self.audit = AuditLog(audit_log)
        if self.audit is not None:
            self.metrics.audit_records.set_function(self.audit.__len__)
            if saved is None or not saved["engaged"]:
                # no <log>.kill (never switched, or the file was lost), or one that says
                # released: an engaged last switch record in the log decides. A release
                # writes its record before the file, so only an edit of the file leaves
                # it released under an engaged record: that does not release.
                logged = last_kill_record(self.audit.path)
                if saved is not None and logged is not None and logged["engaged"]:
                    _log.warning(
                        "kill switch file %r says released, the audit log's last kill-switch "
                        "record engaged (%s, %s): the file was edited; trading stays stopped "
                        "(release it through POST /v1/kill-switch, which audits it)",
                        str(kill_state_path(self.audit.path)),
                        logged["at"],
                        logged["reason"],
                    )
                if saved is None or (logged is not None and logged["engaged"]):
                    saved = logged
        self._store: Any = encode_array
        if self.audit is not None and not inline_arrays:
            store = ArrayStore.beside(self.audit.path)
            self._store = store.put
            self.audit.before_sync(store.sync)
        self.cache_size = int(cache_size or allocator.serving.idempotency_cache)
        # request id -> (request digest, answer, whether the kill switch may serve it again)
        self._cache: OrderedDict[str, tuple[str, ServiceResult, bool]] = OrderedDict()
        # request ids the log decided before this start: a retry across a restart must
        # not be decided a second time (two orders for one request)
        self._decided_before = (
            {} if self.audit is None else recent_decision_ids(self.audit.path, self.cache_size)
        )
        self._lock = threading.Lock()
        if saved is not None and saved["engaged"] and not allocator.operator_kill:
            # a restart must not release a kill switch the operator engaged; the file
            # keeps the operator's engagement (when, why, who), the log the restore
            self.set_kill_switch(
                True,
                reason=f"restored at start: engaged at {saved['at']} ({saved['reason']})",
                actor=f"restart ({saved['actor']})",
                kept=saved,
            )

    # ------------------------------------------------------------------ decisions
    def decide(self, request: DecisionRequest, body_digest: str | None = None) -> ServiceResult:
        """Decide (or answer from the cache), count, audit; never raises on bad input.

        Parameters
        ----------
        request : DecisionRequest
        body_digest : str, optional
            Hash of the request as received (HTTP: of the raw body); default
            ``request.digest()``. A known request id with another digest raises.

        Raises
        ------
        IdempotencyConflict
            The request id was decided before for a different request.
        """
        return self._decide(request, body_digest or request.digest())

    def decide_account(
        self, account: AccountRequest, body_digest: str | None = None
    ) -> ServiceResult:
        """Decide an account request on the held market state (see the module docstring).

        The named bar must be the latest bar held (else a coded reject); everything else
        as :meth:`decide`.

        Raises
        ------
        IdempotencyConflict
            The request id was decided before for a different request.
        """
        return self._decide(account, body_digest or account.digest())

    def apply_bar(self, bar: Bar) -> BarAck:
        """Apply one bar to the streaming market state (serialised with the decisions);
        a bar out of order, after a gap, in conflict with a held one or with invalid
        values is answered ``refused`` with its code and changes nothing."""
        with self._lock:
            ack = self.market.ack(bar)
        self.metrics.bars.labels(status=ack.status, code=ack.code or "").inc()
        return ack

    def _decide(self, request: DecisionRequest | AccountRequest, digest: str) -> ServiceResult:
        with self._lock:
            hit = self._cache.get(request.request_id)
            if hit is not None:
                if hit[0] != digest:
                    raise IdempotencyConflict(
                        f"request id {request.request_id!r} was already decided for a different "
                        "request: use a new request id for a new decision"
                    )
                res = hit[1]
                killed = self.allocator.operator_kill or self.allocator.limits.kill_switch
                if killed and not hit[2]:
                    # the kill switch wins over a stored decision that trades (a disabled
                    # allocator's defensive book included)
                    raise IdempotencyConflict(
                        f"request id {request.request_id!r} was decided ({res.status}) before "
                        "the kill switch was engaged: that decision is not served while "
                        "trading is stopped; a new request id gets the kill switch's decision"
                    )
                self._cache.move_to_end(request.request_id)
                self.metrics.idempotent.inc()
                return ServiceResult(res.body, res.status, True, res.request_id)
            seq = self._decided_before.get(request.request_id)
            if seq is not None:
                raise IdempotencyConflict(
                    f"request id {request.request_id!r} was decided before the service "
                    f"restarted (audit record seq {seq}): its decision is in the audit log; "
                    "use a new request id for a new decision"
                )
            bar = None
            if isinstance(request, DecisionRequest):
                tr = self.allocator.trace(request)
            else:
                bar = request.bar
                request = self.market.request(request)
                tr = self.allocator.trace(request, bar=bar, held=self.market.held)
            if self.audit is not None:
                self.audit.append(self._record(request, tr, bar))
            # after the append: a decision whose record could not be written is a 500 and
            # is neither counted nor marked in the per-account P&L
            self.metrics.observe_trace(tr, self.allocator, request)
            body = tr.decision.model_dump_json().encode()
            res = ServiceResult(body, tr.decision.status, False, request.request_id)
            d = tr.decision
            # servable under the kill switch: decided under it, or no order at all
            flat = d.target_delta_qty is None or not any(d.target_delta_qty)
            servable = "KILL_SWITCH" in d.portfolio_reasons or flat
            self._cache[request.request_id] = (digest, res, servable)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return res

    def _window_store(self) -> Any:
        """``self._store`` that stores the held window's arrays once per bar."""
        if self._store is encode_array:
            return self._store
        # keyed by the window object, not its digest: a flat feed repeats the digest with
        # new arrays, whose ids could be those of freed arrays of other fields
        frozen = self.market.frozen_window()
        if self._window_refs[0] is not frozen:
            self._window_refs = (frozen, {id(a): self._store(a) for a in frozen.values()})
        known = self._window_refs[1]

        def store(a: np.ndarray) -> dict[str, Any]:
            ref = known.get(id(a))
            return ref if ref is not None else self._store(a)

        return store

    def _window_scenarios(self, request: DecisionRequest) -> np.ndarray:
        """:func:`cvar_scenarios` of a request over the held window, once per bar."""
        digest = self.market.window_sha256
        if self._scenarios[0] != digest:
            self._scenarios = (digest, cvar_scenarios(self.allocator, request))
        return self._scenarios[1]

    def _record(
        self, request: DecisionRequest, tr: DecisionTrace, bar: dt.datetime | None = None
    ) -> dict[str, Any]:
        d = tr.decision
        store = self._store if bar is None else self._window_store()
        inputs = {
            "kind": "decision",
            "request": request.to_audit(store),
            "now": d.decided_at,  # tr.now.isoformat(), as the decision wrote it
            "operator_kill_switch": tr.operator_kill,
            "enabled": tr.enabled,
            "model_outcome": None
            if tr.model_cause is None
            else {"cause": tr.model_cause, "message": tr.model_message},
            "model_sha256": self.allocator.policy.sha256,
            # the TRADING_ALLOCATOR_* variables in force: a replay needs the same limits
            "flags": dict(self.allocator.flags.variables),
        }
        if bar is not None:
            inputs["bar"] = bar.isoformat()
            inputs["window_sha256"] = self.market.window_sha256
        encoded_inputs = Canonical(inputs)  # hashed and logged with the same bytes
        decided = tr.gate is not None and d.regime is not None  # what the CVaR is of
        scenarios = self._window_scenarios(request) if decided and bar is not None else None
        return {
            "request_id": d.request_id,
            "timestamp": d.timestamp,
            "input_hash": sha256_hex(encoded_inputs),
            "input": encoded_inputs,
            **decision_evidence(self.allocator, request, tr, scenarios),
        }

    # ------------------------------------------------------------------ kill switch
    def set_kill_switch(
        self,
        engaged: bool,
        *,
        reason: str = "",
        actor: str = "",
        kept: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Engage or release the operator kill switch (audited, and kept in
        ``<log>.kill`` for a restart; ``kept``: the record to keep there instead, a
        restore keeps the operator's); returns the new state."""
        engaged = bool(engaged)
        with self._lock:
            now = dt.datetime.now(dt.UTC).isoformat()
            previous = self.allocator.operator_kill
            state = {"kill_switch": engaged, "previous": previous}
            if engaged:  # the safe direction at once, whatever a write below does
                self._operator_kill(True)
            if self.audit is not None:
                k = kept or {"at": now, "reason": reason, "actor": actor}
                record = {
                    "request_id": f"kill-switch-{now}",
                    "timestamp": now,
                    "config_hash": self.allocator.policy.config_hash,
                    "input": {
                        "kind": KILL_RECORD_KIND,
                        "engaged": engaged,
                        "previous": previous,
                        "reason": reason,
                        "actor": actor,
                    },
                    "output": state,
                }
                if engaged:
                    # the file first: a crash before the audit record still restarts killed
                    write_kill_state(self.audit.path, True, k["at"], k["reason"], k["actor"])
                    self.audit.append(record)
                else:
                    # a release acts only once audited and kept: a failed write (the
                    # error reaches the caller) leaves trading stopped. Anchored (the log
                    # synced) before the file says released: a restart reads a released
                    # file over an engaged record as an edit of the file
                    self.audit.append(record)
                    self.audit.anchor()
                    write_kill_state(self.audit.path, False, k["at"], k["reason"], k["actor"])
            if not engaged:
                self._operator_kill(False)
        return {**state, "at": now, "reason": reason, "actor": actor}

    def _operator_kill(self, engaged: bool) -> None:
        self.allocator.operator_kill = engaged
        self.metrics.kill_switch.set(1 if engaged else 0)


def recent_decision_ids(log: str | Path, limit: int) -> dict[str, int]:
    """Request id -> audit ``seq`` of the last ``limit`` decision records of ``log``
    (newest first, read from the end in blocks: a long log is not read whole)."""
    found: dict[str, int] = {}
    if limit < 1:
        return found
    for raw in _lines_from_end(Path(log)):
        entry = json.loads(raw)
        record = entry.get("record")
        if isinstance(record, dict) and isinstance(record.get("input"), dict):
            if record["input"].get("kind") == "decision":
                found.setdefault(str(record.get("request_id")), int(entry["seq"]))
                if len(found) >= limit:
                    break
    return found


def _lines_from_end(path: Path) -> Iterator[bytes]:
    """``path``'s non-empty lines, newest first, read from the end in 1 MiB blocks (a
    long log is not read whole); nothing when it does not exist."""
    if not path.is_file():
        return
    with open(path, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        tail = b""
        while end > 0:
            start = max(0, end - (1 << 20))
            fh.seek(start)
            block = fh.read(end - start) + tail
            end = start
            lines = block.split(b"\n")
            tail = lines.pop(0) if start > 0 else b""  # the first may be cut: read it next
            for raw in reversed(lines):
                if raw.strip():
                    yield raw


KILL_RECORD_KIND = "kill_switch"
"""``input.kind`` of the audit records the kill switch writes."""


def last_kill_record(log: str | Path) -> dict[str, Any] | None:
    """The kill switch as the audit log's last switch record left it (the shape of
    :func:`read_kill_state`), None when the log has none. A reader (no lock); only
    lines naming the kind are parsed, newest first."""
    marker = f'"kind":"{KILL_RECORD_KIND}"'.encode()
    found = None
    for raw in _lines_from_end(Path(log)):
        if marker in raw:
            record = from_jsonable(json.loads(raw)["record"])
            if isinstance(record.get("input"), dict) and (
                record["input"].get("kind") == KILL_RECORD_KIND
            ):
                found = record
                break
    if found is None:
        return None
    record, switch = found, found["input"]
    return {
        "engaged": bool(switch["engaged"]),
        "at": str(record.get("timestamp", "")),
        "reason": str(switch.get("reason", "")),
        "actor": str(switch.get("actor", "")),
    }


def kill_state_path(log: str | Path) -> Path:
    """Where the operator kill switch of the service auditing to ``log`` is kept across
    restarts: ``<log>.kill``, beside the path as given (a symbolic link pointed at a new
    file keeps an engaged switch)."""
    p = Path(log)
    return p.with_name(p.name + ".kill")


def write_kill_state(log: str | Path, engaged: bool, at: str, reason: str, actor: str) -> None:
    """Record the kill switch beside the audit log (``observability.atomic_write``)."""
    body = {"engaged": engaged, "at": at, "reason": reason, "actor": actor}
    atomic_write(kill_state_path(log), json.dumps(body).encode())


def read_kill_state(log: str | Path) -> dict[str, Any] | None:
    """The kill switch recorded beside ``log`` (None when nothing was recorded).

    Raises
    ------
    ConfigError
        The file is not what :func:`write_kill_state` writes: the service does not guess
        whether an operator stopped trading.
    """
    path = kill_state_path(log)
    if not path.is_file():
        return None
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(body["engaged"], bool):
            raise TypeError("engaged is not true/false")
        return {
            "engaged": body["engaged"],
            **{k: str(body.get(k, "")) for k in ("at", "reason", "actor")},
        }
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"kill switch file {str(path)!r} is unreadable ({err}): inspect it, then delete "
            "it (the audit log's last kill-switch record then decides) or write "
            '{"engaged": true} to keep trading stopped; release an engaged switch through '
            "POST /v1/kill-switch, which audits the release"
        ) from None


def ex_ante_cvar(
    allocator: FrozenAllocator,
    request: DecisionRequest,
    weights: np.ndarray,
    *,
    scenarios: np.ndarray | None = None,
) -> dict[str, Any]:
    """Ex-ante scenario CVaR of a book, as the environment's ``cvar_mode = ex_ante``.

    The scenarios are the request's last ``env.cvar_window`` close-to-close returns
    applied to ``weights``; the CVaR at ``env.cvar_alpha`` is a positive loss in fractions
    of equity, computed by the env step's kernel (:func:`allocgym.compiled.book_cvar`), so
    the env's ``info["cvar"]`` and the audit's value agree bit for bit on the same book
    and window.

    Parameters
    ----------
    weights : ndarray, shape (n_assets,)
        A book in the bundle's symbol order.
    scenarios : ndarray, shape (n_scenarios, n_assets), optional
        ``cvar_scenarios(allocator, request)`` when already at hand (the service keeps
        those of the held window, one set per bar).
    """
    env = allocator.cfg.env
    returns = cvar_scenarios(allocator, request) if scenarios is None else scenarios
    return {
        "value": book_cvar(returns, weights, env.cvar_alpha),
        "alpha": float(env.cvar_alpha),
        "window": int(returns.shape[0]),
    }


def cvar_scenarios(allocator: FrozenAllocator, request: DecisionRequest) -> np.ndarray:
    """The request's last ``env.cvar_window`` close-to-close returns in the bundle's
    symbol order, shape (n_scenarios, n_assets): the scenarios of :func:`ex_ante_cvar`."""
    env = allocator.cfg.env
    # A return reads two rows only (``simple_returns``), so the last window + 1 rows give
    # the window's returns bit for bit without differencing the whole history.
    rows = slice(-(env.cvar_window + 1), None)
    cols: Any = slice(None)
    if list(request.symbols) != list(allocator.symbols):
        where = {sym: i for i, sym in enumerate(request.symbols)}
        cols = [where[sym] for sym in allocator.symbols]
    close = request.close[rows, cols]
    tradable = (
        np.ones(close.shape, bool) if request.tradable is None else request.tradable[rows, cols]
    )
    return simple_returns(close, tradable)[-env.cvar_window :]


def decision_evidence(
    allocator: FrozenAllocator,
    request: DecisionRequest,
    tr: DecisionTrace,
    scenarios: np.ndarray | None = None,
) -> dict[str, Any]:
    """A decision record's fields that follow from its input (all but the request id,
    timestamp and the input with its hash): the service writes them, a replay derives
    them again and compares each byte for byte. ``scenarios``: the request's
    :func:`cvar_scenarios` when at hand."""
    d = tr.decision
    output = d.audit_output()
    # The keys of ``observability.decision_record`` (same readers), with the gate's
    # vectors as exact base64 arrays: the log stays cheap to write at 500 symbols.
    gate = tr.gate
    record: dict[str, Any] = {
        "config_hash": allocator.policy.config_hash,
        "output": output,
        "regime": None
        if d.regime is None
        else {"label": d.regime.label, "score": float(d.regime.confidence)},
        "active_constraints": {"codes": list(d.portfolio_reasons), "limits": {}},
        "proposed": None,
        "approved": None,
        "raw_action": None if tr.raw_action is None else encode_array(tr.raw_action),
        "cvar": None,
        "kill": {
            # any of the three flattens the book, a rejected request's included
            "engaged": bool(
                request.kill_switch or tr.operator_kill or allocator.limits.kill_switch
            ),
            "request": request.kill_switch,
            "operator": tr.operator_kill,
            "configured": allocator.limits.kill_switch,
        },
        "reasons": output["reason_mask"],
        "portfolio_reasons": [list(d.portfolio_reasons)],
    }
    if gate is not None and d.regime is not None:
        acting = int(np.bitwise_or.reduce(gate.symbol_reasons[0])) | int(gate.portfolio_reasons[0])
        record["active_constraints"] = {
            "codes": reason_names(acting | _mask(d.portfolio_reasons)),
            "limits": {
                "budget_multiplier": d.regime.budget_multiplier,
                "capacity_multiplier": d.regime.capacity_multiplier,
            },
        }
        record["proposed"] = encode_array(gate.proposed)
        record["approved"] = encode_array(gate.approved)
        record["cvar"] = ex_ante_cvar(allocator, request, gate.approved[0], scenarios=scenarios)
    return record


def replay_fn(allocator: FrozenAllocator, store: ArrayStore | None = None) -> Any:
    """The decision function ``observability.replay`` calls for this service's records:
    the fields each record's input determines (:func:`decision_evidence`; a kill-switch
    record's output).

    ``store`` resolves array references (records written with an :class:`ArrayStore`).
    """

    def decide(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        if inputs.get("kind") == "kill_switch":
            switched = {
                "kill_switch": bool(inputs["engaged"]),
                "previous": bool(inputs["previous"]),
            }
            return {"output": switched}
        data = inputs["request"] if store is None else store.resolve(inputs["request"])
        request = DecisionRequest.model_validate(data)
        outcome = inputs.get("model_outcome")
        tr = allocator.trace(
            request,
            now=dt.datetime.fromisoformat(inputs["now"]),
            model_cause=None if outcome is None else (outcome["cause"], outcome["message"]),
            operator_kill=bool(inputs["operator_kill_switch"]),
            enabled=bool(inputs["enabled"]),
            bar=None if inputs.get("bar") is None else dt.datetime.fromisoformat(inputs["bar"]),
        )
        return decision_evidence(allocator, request, tr)

    return decide


def replay_audit(
    path: str | Path,
    allocator: FrozenAllocator,
    *,
    key: bytes | None = None,
    verified: int | None = None,
) -> ReplayReport:
    """Re-decide every record of an audit log and compare the outputs byte for byte.

    Array references are resolved from ``<path>.arrays`` (see :class:`ArrayStore`). The
    log is only read (a replay runs beside the service writing it); ``key``: the anchor's
    HMAC key, which the head file must then carry; ``verified``: as in
    :func:`allocgym.observability.replay`.

    Raises
    ------
    AuditChainError
        The log's hash chain is broken, or its anchor does not match.
    ArrayStoreError
        A referenced array file is missing or was modified.
    """
    store = ArrayStore.beside(path)
    return replay(path, replay_fn(allocator, store), key=key, verified=verified, fields=True)
