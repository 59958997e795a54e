"""Where the HTTP service's decisions run: a worker thread, or a decision process.

The HTTP app (:mod:`allocgym.serving.http`) talks to one of two workers through the same
asynchronous calls (``decide``, ``apply_bar``, ``set_kill_switch``, ``exposition``):

:class:`ThreadWorker`
    The :class:`DecisionService` in the HTTP process, decided on one worker thread (the
    Python API's default: ``create_app(service)``).
:class:`ProcessWorker`
    The :class:`DecisionService` (market window, idempotency cache, per-account P&L,
    kill switch, audit log and its writer lock) in one child process built from a
    :class:`ServiceSpec`; the HTTP process parses, sheds and answers, and forwards every
    bar, decision and kill-switch change over a socket pair, in order (``allocgym serve``'s
    default, ``--decision-worker process``).

Both keep one state owner that takes bars, decisions and kill-switch changes one at a
time, so the audit order is the decision order. What the process buys is a second GIL:
in one process the event loop (HTTP parsing, answers) and the decisions take one GIL in
turn, so a server uses about one core; with the decisions in a child, each has its own.
The HTTP process keeps several requests queued on the socket, so the child never waits
for the next one (with one request at a time the two processes only took turns:
measured, no gain). ``allocgym bench serve``'s ``worker`` row measures the two in
alternating windows (README, performance).

The wire: frames of a JSON header (orjson) and a raw payload (a request body, a decision's
JSON, a metrics exposition), each preceded by their two lengths. Nothing is pickled: the
child re-validates each body with the same served schemas the HTTP process checked it
against (the served models are built per bundle, so they cannot cross a process anyway).

Each call carries an id the answer echoes; a frame that could not be built changes
nothing, and one that failed while being written, or an answer out of turn, stops the
decision process (no later answer could be trusted). The child starts with ``python -P``
(nothing imported from the working directory) and reports the bundle it loaded: a
bundle that changed between the two loads is refused. ``/metrics`` is answered by the
child too, after the calls queued before it.

The decision process follows the HTTP process: it runs in its own session (a
Ctrl-C reaches the HTTP process only), ignores SIGINT and SIGTERM (a service manager may
signal every process of the service; the HTTP process must finish its in-flight requests
first), and anchors the audit log and exits when its socket closes: at the HTTP
process's shutdown or when that process dies. If the decision process dies, every call
is answered 500 naming its exit code and ``/healthz`` answers 500 until the service is
restarted: its market window and caches are gone with it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from allocgym.errors import AllocgymError
from allocgym.serving.allocator import FrozenAllocator, serving_config
from allocgym.serving.bundle import FrozenPolicy
from allocgym.serving.schemas import (
    AccountRequest,
    DecisionRequest,
    served_account_model,
    served_bar_model,
    served_request_model,
)
from allocgym.serving.service import (
    DecisionService,
    IdempotencyConflict,
    ServiceResult,
    ServingMetrics,
    read_kill_state,
)

_log = logging.getLogger(__name__)

_LENGTHS = struct.Struct("!II")
"""A frame's header and payload lengths."""


class WorkerError(AllocgymError, RuntimeError):
    """The decision process failed a call, could not start, or is gone (``down``)."""

    def __init__(self, message: str, *, down: bool = False) -> None:
        super().__init__(message)
        self.down = down


@dataclass(frozen=True)
class ServiceSpec:
    """What builds the served :class:`DecisionService`: in this process
    (:meth:`service`) or, sent as JSON, in a decision process.

    Parameters
    ----------
    policy : Path
        The bundle folder.
    overrides : tuple of str
        ``serving.key=value`` settings (``serve --set``).
    public_key : Path, optional
        Ed25519 public key the bundle's signature must verify with.
    audit_log : Path, optional
        The hash-chained audit log (None: not audited).
    anchor_every : int
        Audit records between two anchors of the chain head.
    audit_fsync : bool
        ``fsync`` the audit log after every record, before the decision is answered (an
        answered decision then survives a power loss; without it, the records since the
        last anchor may not).
    audit_key : bytes, optional
        HMAC key that signs the anchor.
    environ : mapping, optional
        Where the ``TRADING_ALLOCATOR_*`` flags are read (None: the process environment,
        which a decision process inherits).
    """

    policy: Path
    overrides: tuple[str, ...] = ()
    public_key: Path | None = None
    audit_log: Path | None = None
    anchor_every: int = 100
    audit_key: bytes | None = field(default=None, repr=False)
    audit_fsync: bool = False
    environ: Mapping[str, str] | None = None

    def allocator(self) -> FrozenAllocator:
        """The bundle, signature checked, with its serving settings and the flags."""
        frozen = FrozenPolicy.load(self.policy, public_key=self.public_key)
        serving = serving_config(frozen, list(self.overrides))
        return FrozenAllocator(frozen, serving=serving, environ=self.environ)

    def service(self) -> DecisionService:
        """The :class:`DecisionService` over :meth:`allocator` and the audit log (opened
        and locked here: one writer per log; the caller closes ``service.audit``)."""
        from allocgym.observability import AuditLog

        allocator = self.allocator()
        if self.audit_log is None:
            return DecisionService(allocator)
        read_kill_state(self.audit_log)  # an unreadable kill-switch file stops the start
        log = AuditLog(
            self.audit_log,
            anchor_every=self.anchor_every,
            key=self.audit_key,
            fsync=self.audit_fsync,
        )
        try:
            return DecisionService(allocator, audit_log=log)
        except BaseException:
            log.close()
            raise

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON (what a decision process is sent)."""
        return {
            "policy": str(self.policy),
            "overrides": list(self.overrides),
            "public_key": None if self.public_key is None else str(self.public_key),
            "audit_log": None if self.audit_log is None else str(self.audit_log),
            "anchor_every": self.anchor_every,
            "audit_key": None if self.audit_key is None else self.audit_key.hex(),
            "audit_fsync": self.audit_fsync,
            "environ": None if self.environ is None else dict(self.environ),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ServiceSpec:
        """The inverse of :meth:`to_json`."""

        def path(key: str) -> Path | None:
            return None if d[key] is None else Path(d[key])

        return cls(
            policy=Path(d["policy"]),
            overrides=tuple(d["overrides"]),
            public_key=path("public_key"),
            audit_log=path("audit_log"),
            anchor_every=int(d["anchor_every"]),
            audit_key=None if d["audit_key"] is None else bytes.fromhex(d["audit_key"]),
            audit_fsync=bool(d["audit_fsync"]),
            environ=d["environ"],
        )


@dataclass(frozen=True)
class Answer:
    """A decision from a worker, or None when it waited past its deadline (shed)."""

    result: ServiceResult | None
    queue_s: float
    """From submission to the start of the decision."""
    decide_s: float
    """The decision itself, on the worker (what admission estimates queues with)."""


class ThreadWorker:
    """The :class:`DecisionService` in this process, decided on one worker thread (one
    worker keeps the decision order equal to the audit order, and the event loop free to
    answer health checks and to shed load while a decision is slow)."""

    kind: Literal["thread"] = "thread"

    def __init__(self, service: DecisionService) -> None:
        self.service = service
        self.allocator = service.allocator
        self.metrics = service.metrics
        self.failure: str | None = None
        self.pool: ThreadPoolExecutor | None = None

    @property
    def records(self) -> int | None:
        """Records in the audit log (None: not audited)."""
        return None if self.service.audit is None else len(self.service.audit)

    async def start(self) -> None:
        """Start the worker thread (the app's lifespan)."""
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="allocgym-decide")

    async def close(self) -> None:
        """Finish the queued work, stop the thread and anchor the audit chain's head."""
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        if self.service.audit is not None:
            self.service.audit.anchor()

    def stop(self) -> None:
        """Close the service's audit log (``allocgym serve``, after the server stopped)."""
        if self.service.audit is not None:
            self.service.audit.close()

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self.pool is None:  # the loop's default pool would run calls side by side
            raise WorkerError("the worker thread is not started: run the app's lifespan")
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def decide(
        self,
        request: DecisionRequest | AccountRequest,
        body: bytes,
        digest: str,
        submitted: float,
        max_wait_s: float,
    ) -> Answer:
        """Decide ``request`` (``body`` its raw JSON, ``digest`` its hash), or skip it if
        it waited longer than ``max_wait_s`` after ``submitted`` (``time.monotonic``).

        Raises
        ------
        IdempotencyConflict
            The request id was decided before for a different request.
        """
        return await self._run(self._decide, request, digest, submitted, max_wait_s)

    def _decide(
        self,
        request: DecisionRequest | AccountRequest,
        digest: str,
        submitted: float,
        max_wait_s: float,
    ) -> Answer:
        start = time.monotonic()
        if start - submitted > max_wait_s:
            return Answer(None, start - submitted, 0.0)
        if isinstance(request, DecisionRequest):
            res = self.service.decide(request, digest)
        else:
            res = self.service.decide_account(request, digest)
        return Answer(res, start - submitted, time.monotonic() - start)

    async def apply_bar(self, bar: Any, body: bytes) -> bytes:
        """Apply a validated bar; the :class:`BarAck` as JSON."""
        ack = await self._run(self.service.apply_bar, bar)
        return ack.model_dump_json().encode()

    async def set_kill_switch(self, engaged: bool, reason: str, actor: str) -> dict[str, Any]:
        """Engage or release the operator kill switch (audited); the new state."""
        return await self._run(
            lambda: self.service.set_kill_switch(engaged, reason=reason, actor=actor)
        )

    async def exposition(self) -> bytes:
        """The service's Prometheus metrics (text format)."""
        return self.metrics.exposition()


CHILD_CODE = "from allocgym.serving.worker import child_main; child_main()"
"""What the decision process runs (``python -P -c``)."""


def _child_environ(fd: int) -> dict[str, str]:
    """The decision process's environment: this one's, the socket's descriptor, and this
    interpreter's import path in its order less the working directory (which ``-P``
    keeps out), led by what only that directory had given it: the folder allocgym was
    imported from and the inherited ``PYTHONPATH`` (a zipapp, vendored or
    ``WORKDIR /app`` + ``PYTHONPATH=/app`` install imports allocgym as this process did)."""
    import allocgym

    here = os.path.abspath(os.getcwd())
    mine = [p for p in sys.path if p and os.path.abspath(p) != here]
    known = {os.path.abspath(p) for p in mine}
    root = os.path.dirname(os.path.dirname(os.path.abspath(allocgym.__file__)))
    inherited = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    lead = [p for p in dict.fromkeys((root, *inherited)) if p and os.path.abspath(p) not in known]
    path = os.pathsep.join((*lead, *mine))
    return {**os.environ, _FD_ENV: str(fd), "PYTHONPATH": path}


class ProcessWorker:
    """The :class:`DecisionService` of ``spec`` in a decision process (module docstring).

    Construction loads the bundle here (the served schemas, the admission limits and
    ``/healthz``; a bundle that does not load or verify raises before a process starts),
    then starts the process and waits until its service is built (the bundle loaded again,
    the audit log opened and locked): a failure there raises here, with the child's
    message. The kill switch this side reports is the child's, carried on every answer.

    Parameters
    ----------
    spec : ServiceSpec

    Raises
    ------
    WorkerError
        The decision process could not build its service (the message is its error).
    """

    kind: Literal["process"] = "process"

    def __init__(self, spec: ServiceSpec) -> None:
        self.failure: str | None = None
        # first here: a bundle that does not load or verify is refused before a process starts
        self.allocator = spec.allocator()
        self.metrics = ServingMetrics(self.allocator)
        parent, child = socket.socketpair()
        with child:
            # -P: nothing imported from the working directory (often the audit log's);
            # its own session: a Ctrl-C reaches the HTTP process only, which closes the
            # child once its in-flight requests are answered, and with no controlling
            # terminal a `stty tostop` cannot stop the child at its first message
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-c", CHILD_CODE],
                pass_fds=(child.fileno(),),
                env=_child_environ(child.fileno()),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._sock = parent
        # (call id, its answer) of the calls sent and not answered, oldest first
        self._pending: collections.deque[tuple[int, asyncio.Future[tuple[dict, bytes]]]] = (
            collections.deque()
        )
        self._calls = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        try:
            try:
                parent.sendall(_frame({"op": "start", "spec": spec.to_json()}))
                ready = _read_frame(parent.makefile("rb"))
            except ConnectionError:  # it died before reading its start frame
                ready = None
            if ready is None:
                raise WorkerError(
                    f"the decision process exited with code {self.process.wait()} while "
                    "starting: see its messages above"
                )
            if "error" in ready[0]:
                raise WorkerError(ready[0]["message"])
            mine = _identity(self.allocator)
            if ready[0]["identity"] != mine:
                raise WorkerError(
                    f"the bundle at {str(spec.policy)!r} changed while the service started "
                    f"(loaded here: {mine}; by the decision process: {ready[0]['identity']}): "
                    "start it again once the bundle is in place"
                )
        except BaseException:
            self.stop()
            raise
        self.pid = self.process.pid
        self.records: int | None = ready[0]["records"]
        self.allocator.operator_kill = bool(ready[0]["kill"])

    async def start(self) -> None:
        """Attach the socket to the running event loop (the app's lifespan).

        Raises
        ------
        WorkerError
            The worker was closed: a ``ProcessWorker`` serves one app lifespan.
        """
        if self._closing:
            raise WorkerError("this decision process was closed: start a new ProcessWorker")
        reader, self._writer = await asyncio.open_connection(sock=self._sock)
        self._reader = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """Hand each answer to the oldest call waiting (the child answers in order)."""
        try:
            while True:
                sizes = await reader.readexactly(_LENGTHS.size)
                n_header, n_payload = _LENGTHS.unpack(sizes)
                header = orjson.loads(await reader.readexactly(n_header))
                payload = await reader.readexactly(n_payload)
                expected = self._pending[0][0] if self._pending else None
                if header.get("id") != expected:  # cannot happen unless the stream broke
                    self._down(f"answer {header.get('id')} came for call {expected}")
                    break
                _, waiter = self._pending.popleft()
                if not waiter.done():  # its request may have been cancelled
                    waiter.set_result((header, payload))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception as exc:
            self._down(f"an answer could not be read ({type(exc).__name__}: {exc})")
        code = await asyncio.get_running_loop().run_in_executor(None, self.process.wait)
        if self.failure is None:
            self.failure = (
                f"the decision process (pid {self.pid}) exited with code {code}: its market "
                "window and caches are gone; restart the service"
            )
            if not self._closing:
                _log.error("%s", self.failure)
        while self._pending:
            _, waiter = self._pending.popleft()
            if not waiter.done():
                waiter.set_exception(WorkerError(self.failure, down=True))

    def _down(self, why: str) -> None:
        """Give up on the decision process: the stream to it is broken (a frame half
        written, an answer out of turn), so no later answer can be trusted; closing the
        socket makes it anchor the audit log and exit. Aborted, not closed: calls still in
        the write buffer are dropped, not decided for callers that get a 500."""
        if self.failure is None:
            self.failure = (
                f"the decision process (pid {self.pid}) was stopped: {why}; restart the service"
            )
            _log.error("%s", self.failure)
        if self._writer is not None:
            self._writer.transport.abort()

    async def _call(self, header: dict[str, Any], payload: bytes = b"") -> tuple[dict, bytes]:
        """Send one call, wait for its answer; raise its error (or the child's death)."""
        if self.failure is not None or self._writer is None:
            raise WorkerError(self.failure or "the decision process is not attached", down=True)
        self._calls += 1
        call = self._calls
        frame = _frame(header | {"id": call}, payload)  # a failure here changes nothing
        waiter = asyncio.get_running_loop().create_future()
        try:
            self._writer.write(frame)
        except BaseException as exc:  # part of the frame may be out: the stream is broken
            self._down(f"a call could not be written ({type(exc).__name__})")
            raise WorkerError(str(self.failure), down=True) from exc
        self._pending.append((call, waiter))  # written and queued in one step: in order
        try:
            await self._writer.drain()
        except ConnectionError as exc:  # the child is gone: the reader learns its exit code
            waiter.cancel()
            if self._reader is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._reader), 5.0)
            gone = self.failure or f"the decision process is gone ({exc})"
            raise WorkerError(gone, down=True) from exc
        got, body = await waiter
        self.allocator.operator_kill = bool(got["kill"])
        if "error" in got:
            if got["error"] == "IdempotencyConflict":
                raise IdempotencyConflict(got["message"])
            raise WorkerError(f"the decision process failed: {got['message']}")
        return got, body

    async def close(self) -> None:
        """Close the socket (the child anchors the audit log and exits) and wait for it."""
        self._closing = True
        if self._writer is not None:
            self._writer.close()
        await asyncio.get_running_loop().run_in_executor(None, self.stop)
        if self._reader is not None:
            await self._reader

    def stop(self) -> None:
        """Close this end of the socket and wait for the decision process to exit (it
        anchors and closes the audit log first); kill it after 60 s."""
        self._closing = True
        self._sock.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            _log.error("the decision process did not exit within 60 s: killed")
            self.process.kill()
            self.process.wait()

    async def decide(
        self,
        request: DecisionRequest | AccountRequest,
        body: bytes,
        digest: str,
        submitted: float,
        max_wait_s: float,
    ) -> Answer:
        """As :meth:`ThreadWorker.decide`; the child re-validates ``body``."""
        kind = "stateless" if isinstance(request, DecisionRequest) else "account"
        call = {"op": "decide", "kind": kind, "digest": digest, "deadline": submitted + max_wait_s}
        got, decision = await self._call(call, body)
        start = got["start"]
        if "status" not in got:
            return Answer(None, start - submitted, 0.0)
        res = ServiceResult(decision, got["status"], got["cached"], got["request_id"])
        return Answer(res, start - submitted, got["done"] - start)

    async def apply_bar(self, bar: Any, body: bytes) -> bytes:
        """As :meth:`ThreadWorker.apply_bar`; the child re-validates ``body``."""
        return (await self._call({"op": "bar"}, body))[1]

    async def set_kill_switch(self, engaged: bool, reason: str, actor: str) -> dict[str, Any]:
        """As :meth:`ThreadWorker.set_kill_switch`."""
        call = {"op": "kill", "engaged": engaged, "reason": reason, "actor": actor}
        return dict((await self._call(call))[0]["state"])

    async def exposition(self) -> bytes:
        """The child's metrics with this process's admission series (shed, in flight)."""
        got = (await self._call({"op": "metrics"}))[1]
        return got + self.metrics.exposition("admission")


_FD_ENV = "ALLOCGYM_WORKER_FD"
"""The decision process's end of the socket pair (set for the child only)."""


def _frame(header: Mapping[str, Any], payload: bytes = b"") -> bytes:
    head = orjson.dumps(header)
    return _LENGTHS.pack(len(head), len(payload)) + head + payload


def _read_frame(src: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """The next frame, or None at the end of the stream."""
    sizes = src.read(_LENGTHS.size)
    if len(sizes) < _LENGTHS.size:
        return None
    n_header, n_payload = _LENGTHS.unpack(sizes)
    head, payload = src.read(n_header), src.read(n_payload)
    if len(head) < n_header or len(payload) < n_payload:
        return None  # the stream ended inside a frame (its writer gave up on it)
    return orjson.loads(head), payload


def _identity(alloc: FrozenAllocator) -> dict[str, Any]:
    """What both processes must have loaded alike: the bundle's seal and symbols."""
    policy = alloc.policy
    return {
        "model_id": policy.model_id,
        "sha256": policy.sha256,
        "config_hash": policy.config_hash,
        "symbols": list(alloc.symbols),
    }


def _error(exc: BaseException) -> dict[str, Any]:
    """The answer header of a failed call (the child logs the traceback)."""
    return {"error": type(exc).__name__, "message": str(exc) or type(exc).__name__}


class _Child:
    """The decision process's side: the service and the served schemas."""

    def __init__(self, service: DecisionService) -> None:
        self.service = service
        alloc = service.allocator
        history = int(alloc.serving.max_history_bars)
        self.models: dict[str, Any] = {
            "stateless": served_request_model(alloc.symbols, history),
            "account": served_account_model(alloc.symbols, history),
        }
        self.bar_model = served_bar_model(alloc.symbols)

    def handle(self, call: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        op = call["op"]
        if op == "decide":
            start = time.monotonic()
            if start > call["deadline"]:
                return {"start": start}, b""
            request = self.models[call["kind"]].model_validate_json(payload)
            if call["kind"] == "stateless":
                res = self.service.decide(request, call["digest"])
            else:
                res = self.service.decide_account(request, call["digest"])
            done = time.monotonic()
            got = {"status": res.status, "cached": res.cached, "request_id": res.request_id}
            return got | {"start": start, "done": done}, res.body
        if op == "bar":
            ack = self.service.apply_bar(self.bar_model.model_validate_json(payload))
            return {}, ack.model_dump_json().encode()
        if op == "kill":
            state = self.service.set_kill_switch(
                call["engaged"], reason=call["reason"], actor=call["actor"]
            )
            return {"state": state}, b""
        if op == "metrics":
            return {}, self.service.metrics.exposition("service")
        raise ValueError(f"unknown call {op!r}")


def child_main() -> None:
    """The decision process (started by :class:`ProcessWorker`): build the service from
    the spec it is sent, answer calls in order until its socket closes, then anchor and
    close the audit log."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING)
    sock = socket.socket(fileno=int(os.environ.pop(_FD_ENV)))
    src = sock.makefile("rb")
    start = _read_frame(src)
    if start is None:
        return
    try:
        service = ServiceSpec.from_json(start[0]["spec"]).service()
        try:
            child = _Child(service)  # the served schemas refuse what no request could send
        except BaseException:
            if service.audit is not None:
                service.audit.close()
            raise
    except Exception as exc:
        with contextlib.suppress(OSError):  # the HTTP process may be gone
            sock.sendall(_frame(_error(exc) | {"kill": False}))
        return
    audit = service.audit
    try:
        alloc = service.allocator
        ready = {
            "records": None if audit is None else len(audit),
            "kill": alloc.operator_kill,
            "identity": _identity(alloc),
        }
        sock.sendall(_frame(ready))
        while (frame := _read_frame(src)) is not None:
            try:
                header, payload = child.handle(*frame)
            except IdempotencyConflict as exc:
                header, payload = _error(exc), b""
            except Exception as exc:
                _log.error(
                    "decision process: %s failed\n%s", frame[0]["op"], traceback.format_exc()
                )
                header, payload = _error(exc), b""
            echo = {"kill": alloc.operator_kill, "id": frame[0]["id"]}
            sock.sendall(_frame(header | echo, payload))
    except OSError:
        pass  # the HTTP process is gone: anchor and exit
    finally:
        if audit is not None:
            audit.anchor()
            audit.close()
