"""HTTP service of the frozen allocator (FastAPI + uvicorn): ``allocgym serve``.

Endpoints
---------
``POST /v1/bars``
    Body: one :class:`~allocgym.serving.schemas.Bar` (every symbol's close, volume,
    spread and tradable flag, the benchmark return, its timestamp and the ``previous``
    bar it follows), applied to the service's streaming market state
    (:class:`~allocgym.serving.market.MarketState`). 200 with a
    :class:`~allocgym.serving.schemas.BarAck`: ``applied``, ``replay`` (the same bar
    again: idempotent by timestamp) or ``refused`` with a code (``bar_out_of_order``,
    ``bar_gap``, ``bar_conflict``, ``bar_invalid``), never silently applied.
``POST /v1/decide``
    Body: an :class:`~allocgym.serving.schemas.AccountRequest` (the account and the
    ``bar`` it decides on, which must be the latest bar held: under 4 KB at 20 symbols)
    or, for replay and audit, the stateless
    :func:`~allocgym.serving.schemas.served_request_model` carrying the history. The
    two decide identically on the same window. 200
    with a :class:`~allocgym.serving.schemas.Decision`, also when the request is valid but
    cannot be decided on: ``status = "rejected"`` with a coded ``reject``
    (``INVALID_INPUT`` / ``STALE_INPUT``), audited like every decision. 409 when a known
    request id comes with a different body; 503 when overloaded (more than
    ``serving.max_in_flight`` decisions admitted, the decisions ahead would take longer
    than ``serving.max_queue_ms`` at the recent time per decision, or one waited longer
    than that in the worker's queue: shed rather than served late). A repeated request id with
    the same body returns the stored decision (header ``Idempotent-Replay: true``)
    without deciding again.

    Why a rejection is a 200: the request was understood and decided. Holding the book
    is the allocator's answer to inputs it cannot trade on (stale, NaN, unknown symbols),
    audited and replayed like any other decision and carrying the same :class:`Decision`
    schema, so a client reads one body and branches on ``status``. A 4xx would say the
    request itself is at fault and a retrying proxy or client library could resend or
    drop it; 422 is kept for bodies that do not match the published request schema
    (never decided, never audited) and 409 for a reused request id.
``POST /v1/kill-switch``
    Body ``{"engaged": bool, "reason": str, "actor": str}`` (strict: ``engaged`` is a JSON
    boolean, never ``0`` or ``"false"``); engages or releases the operator kill switch
    (audited). While engaged every decision flattens the book.
``GET /healthz``
    Model id and hashes, enabled flag, kill switch, in-flight count (:class:`Health`).
``GET /metrics``
    Prometheus text exposition of the service's registry (``text/plain``).

Authentication
--------------
``POST /v1/kill-switch`` and ``POST /v1/bars`` (every admin endpoint: a bar feed decides
what every decision reads) need ``Authorization: Bearer <token>`` with the admin token (``serve --admin-token-file`` or ``ALLOCGYM_ADMIN_TOKEN``); with
``serve --decide-token-file`` or ``ALLOCGYM_DECIDE_TOKEN``, ``POST /v1/decide`` needs the
decide token. Tokens are compared in constant time (``hmac.compare_digest``). 401
``unauthorized`` (with ``WWW-Authenticate: Bearer``): no bearer token; 403 ``forbidden``:
a wrong one. Without an admin token the admin endpoints answer loopback clients only
(anyone else: 401), and :func:`serve` refuses to bind a non-loopback address.
``/healthz`` and ``/metrics`` stay open (they change nothing).

Every error the service answers has one shape, :class:`ErrorResponse`
(``{"error": code, "message": text, "details": [{"loc", "msg"}]}``): 400 ``invalid_json``
(the body is not JSON; also a client that disconnects mid-body), 408 ``request_timeout``
(the body did not arrive within ``BODY_TIMEOUT_S`` of the headers: a stalled client
frees its admission slot), 413 ``body_too_large``, 415 ``unsupported_media_type`` (a POST
without ``Content-Type: application/json``), 422 ``malformed_request`` (JSON that does not
match the request schema; ``message`` starts with the field's dotted path), 409
``idempotency_conflict``, 500 ``internal_error`` (an unexpected failure, e.g. the audit
log could not be written), 503 ``overloaded`` (with ``Retry-After``), 404 ``not_found`` and
405 ``method_not_allowed``. The OpenAPI document lists, per operation, the statuses it can
return with their schemas (404 and 405 belong to no operation).

Fast path: ``POST /v1/decide`` is answered in front of FastAPI's middleware stack and
router (the route calls the same handler and documents the contract); an overloaded
service sheds (503 with ``Retry-After``) before it reads the body; the size limit is
enforced from ``Content-Length`` and again while the body streams in, so an oversized
body is never held; pydantic-core parses the body from bytes to the validated model
(no intermediate Python objects, which is what orjson or msgspec would add as a first
pass), except that a body that may name a ``bar`` is first scanned by pydantic-core for
that one top-level key (no Python objects built for the rest) to tell an account request
from a stateless one (:func:`is_account_body`). Bars are applied on the decision worker, in order with the
decisions.

Bars, decisions and kill-switch changes run one at a time on one worker (one state owner
keeps the decision order equal to the audit order), off the event loop, which stays free
to answer health checks and to shed load even while a decision is slow: a thread of this
process (:class:`~allocgym.serving.worker.ThreadWorker`, what ``create_app(service)``
uses) or a decision process (:class:`~allocgym.serving.worker.ProcessWorker`, ``allocgym
serve``'s default: the decisions get a GIL of their own; see :mod:`allocgym.serving.worker`).
If a decision process dies, every decide, bar and kill-switch call and ``/healthz`` answer
500 ``internal_error`` naming its exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import socket
import string
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from allocgym.errors import ConfigError
from allocgym.serving.schemas import (
    BarAck,
    Decision,
    served_account_model,
    served_bar_model,
    served_request_model,
)
from allocgym.serving.service import DecisionService, IdempotencyConflict
from allocgym.serving.worker import ProcessWorker, ThreadWorker, WorkerError

Worker = ThreadWorker | ProcessWorker
"""Where the decisions run (:mod:`allocgym.serving.worker`)."""

_log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 2**20
"""Largest decision request body accepted (413 above)."""
MAX_CONTROL_BYTES = 64 * 2**10
"""Largest kill-switch body accepted (413 above)."""
MAX_BAR_BYTES = 4 * 2**20
"""Largest bar body accepted (413 above)."""
BODY_TIMEOUT_S = 30.0
"""Seconds a request's body may take to arrive after its headers (408 after that): a
client stalled mid-body holds an admission slot, and ``max_in_flight`` of them would
shed every other decision."""

_JSON = "application/json"

ERROR_CODES: dict[int, str] = {
    400: "invalid_json",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "idempotency_conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "malformed_request",
    500: "internal_error",
    503: "overloaded",
}
"""The ``error`` code of each status the service answers with an :class:`ErrorResponse`."""

ErrorCode = Literal[
    "invalid_json",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "request_timeout",
    "idempotency_conflict",
    "body_too_large",
    "unsupported_media_type",
    "malformed_request",
    "internal_error",
    "overloaded",
    "http_error",
]


class ErrorDetail(BaseModel):
    """One validation problem."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    loc: list[str]
    """Path to the offending value, e.g. ``["close", "3"]`` or ``["engaged"]``."""
    msg: str
    """What is wrong with it."""


class ErrorResponse(BaseModel):
    """The body of every error the service answers (4xx and 503)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    error: ErrorCode
    """Machine-readable code (one per status, see ``ERROR_CODES``; ``http_error`` for any
    other status)."""
    message: str
    """What went wrong and, where there is one, the fix; a 422 starts with the field."""
    details: list[ErrorDetail]
    """Every validation problem (422, at most 20); empty otherwise."""


class KillSwitchRequest(BaseModel):
    """Operator kill switch change (strict types: ``engaged`` is a JSON boolean)."""

    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)

    engaged: bool
    """True engages (flatten everything), False releases."""
    reason: str = Field(default="", max_length=1000)
    """Why (audited)."""
    actor: str = Field(default="", max_length=200)
    """Who (audited)."""


class KillSwitchState(BaseModel):
    """The kill switch after a change."""

    kill_switch: bool
    previous: bool
    at: str
    reason: str
    actor: str


class Health(BaseModel):
    """``GET /healthz``: what is being served (``FrozenAllocator.describe``) and the load."""

    status: Literal["ok"]
    model_id: str
    sha256: str
    config_hash: str
    mode: str
    n_assets: int
    obs_dim: int
    opset: int
    algo: str | None
    enabled: bool
    kill_switch: bool
    history: int
    symbols: list[str]
    fallback: str
    regime_source: str
    flags: dict[str, str]
    in_flight: int
    decision_worker: Literal["thread", "process"]
    """Where the decisions run: a thread of the HTTP process or a decision process."""


def _error(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body = {"error": ERROR_CODES.get(status, "http_error"), "message": message}
    return JSONResponse(body | {"details": details or []}, status_code=status, headers=headers)


def _validation_error(err: ValidationError | RequestValidationError) -> JSONResponse:
    problems = [
        {"loc": [str(p) for p in d["loc"] if p != "body"], "msg": str(d["msg"])}
        for d in err.errors()[:20]
    ]
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"]) or "<body>"
    return _error(422, f"{where}: {first['msg']}", details=problems)


async def read_body(request: Request, max_bytes: int) -> bytes | JSONResponse:
    """The raw body or the error answer: 415 unless it is declared ``application/json``,
    413 when ``Content-Length`` says more than ``max_bytes`` (nothing read) or when more
    arrives while streaming (reading stops there: an oversized body is never held), 408
    when the whole body has not arrived ``BODY_TIMEOUT_S`` after the headers."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != _JSON:
        return _error(415, f"send the body as {_JSON} (got {media or 'no Content-Type'})")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return _error(413, f"request body over {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    return _error(413, f"request body over {max_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        return _error(
            408, f"the body did not arrive within {BODY_TIMEOUT_S:g} s: send it in one go"
        )
    except ClientDisconnect:  # nobody reads the answer: not a server failure
        return _error(400, "the client disconnected before the whole body arrived")
    return b"".join(chunks)


def validate_body(body: bytes, model: type[BaseModel]) -> BaseModel | JSONResponse:
    """``model`` parsed from JSON ``body`` (pydantic-core: one pass from bytes to the
    validated model) or the error answer: 400 if it is not JSON, 422 if it does not match
    ``model`` (strictly)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        bad_json = [d for d in err.errors() if d["type"] == "json_invalid"]
        if bad_json:
            return _error(400, f"the body is not JSON: {bad_json[0]['msg']}")
        return _validation_error(err)


async def parse_json_body(
    request: Request, model: type[BaseModel], max_bytes: int
) -> tuple[Any, bytes] | JSONResponse:
    """``(model instance, raw body)`` or the error answer of :func:`read_body` or
    :func:`validate_body`."""
    body = await read_body(request, max_bytes)
    if isinstance(body, JSONResponse):
        return body
    parsed = validate_body(body, model)
    if isinstance(parsed, JSONResponse):
        return parsed
    return parsed, body


def is_account_body(body: bytes) -> bool:
    """Whether a decide body is an account request (it names a ``bar``) rather than a
    stateless request with the market history. Only a body that mentions ``"bar"``, or
    has a ``\\u`` escape that could spell it, is parsed to look: whatever its size, a
    body valid against the account schema is read as one."""
    if b'"bar"' not in body and b"\\u" not in body:
        return False
    try:
        probe = _BarProbe.model_validate_json(body)
    except ValidationError:
        return False  # not a JSON object: answered 400 or 422 by the parse that follows
    return "bar" in probe.model_fields_set


class _BarProbe(BaseModel):
    """The top-level ``bar`` key of a decide body, the rest skipped unbuilt: one pass in
    pydantic-core over what may be a stateless request of hundreds of MB."""

    model_config = ConfigDict(extra="ignore")
    bar: Any = None


ADMIN_TOKEN_ENV = "ALLOCGYM_ADMIN_TOKEN"
"""Environment variable holding the admin token (kill switch, every admin endpoint)."""
DECIDE_TOKEN_ENV = "ALLOCGYM_DECIDE_TOKEN"
"""Environment variable holding the decide token (``POST /v1/decide``)."""
MIN_TOKEN_LENGTH = 16
MIN_TOKEN_VARIETY = 5
"""Fewest distinct characters a token may have: ``"================"`` is 16 characters
long and guessable (16 random hex digits have 5 or more but about once in 2 million)."""
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-._~+/=")


def read_token(
    env_var: str,
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    kind: str = "token",
) -> str | None:
    """A bearer token (or the audit log's HMAC key) from the file ``path`` or the
    environment variable ``env_var``.

    Parameters
    ----------
    env_var : str
        ``ADMIN_TOKEN_ENV`` or ``DECIDE_TOKEN_ENV``.
    path : str or Path, optional
        A file holding the token (surrounding whitespace is ignored).
    environ : mapping, optional
        Where ``env_var`` is read (``os.environ`` when omitted).
    kind : str
        What the secret is called in messages: ``"token"`` or ``"key"``.

    Returns
    -------
    str or None
        None when neither is set.

    Raises
    ------
    ConfigError
        Both are set, the file is missing or empty, or the token is shorter than
        ``MIN_TOKEN_LENGTH`` or has characters a bearer token cannot carry (the message
        never repeats the token).
    """
    env = os.environ if environ is None else environ
    from_env = env.get(env_var, "")
    if path is not None and from_env:
        raise ConfigError(
            f"both {env_var} and the {kind} file {str(path)!r} are set: keep one of them"
        )
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{kind} file {str(p)!r} does not exist: write the {kind} to it")
        if p.stat().st_mode & 0o077:
            warnings.warn(
                f"{kind} file {str(p)!r} is readable by other users "
                f"(mode {p.stat().st_mode & 0o777:o}): chmod 600 it",
                stacklevel=2,
            )
        token, source = p.read_text(encoding="utf-8").strip(), f"{kind} file {str(p)!r}"
    elif from_env:
        token, source = from_env.strip(), env_var
    else:
        return None
    fix = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"the {kind} in {source} has {len(token)} characters, fewer than "
            f"{MIN_TOKEN_LENGTH}: {fix}"
        )
    if not set(token) <= _TOKEN_CHARS:
        raise ConfigError(
            f"the {kind} in {source} has characters other than letters, digits and "
            f"-._~+/= (the characters of a bearer token): {fix}"
        )
    if len(set(token)) < MIN_TOKEN_VARIETY:
        raise ConfigError(
            f"the {kind} in {source} repeats {len(set(token))} distinct characters, fewer "
            f"than {MIN_TOKEN_VARIETY}: it is guessable; {fix}"
        )
    return token


def check_tokens(
    admin_token: str | None, decide_token: str | None, audit_key: str | None = None
) -> None:
    """Refuse one secret in two roles: an admin token that is also the decide token lets
    every decide client work the kill switch and the bar feed, and an audit key that is
    a token lets whoever holds that token forge the log's anchor.

    Raises
    ------
    ConfigError
        Naming the two roles (never the secret).
    """
    roles = [
        (name, value)
        for name, value in (
            ("admin token", admin_token),
            ("decide token", decide_token),
            ("audit key", audit_key),
        )
        if value is not None
    ]
    for i, (first, a) in enumerate(roles):
        for second, b in roles[i + 1 :]:
            if hmac.compare_digest(a.encode(), b.encode()):
                raise ConfigError(
                    f"the {first} and the {second} are the same secret: give each role its "
                    "own (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` accepts connections from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve to any interface


_FORWARDED_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "via")
"""Headers a reverse proxy may add (RFC 7239, RFC 9110's Via and the de-facto ones); one
that adds none (nginx's default) is not seen: behind a proxy, set a token."""


def check_bind(host: str, admin_token: str | None) -> None:
    """Refuse to serve on a non-loopback ``host`` without an admin token.

    Raises
    ------
    ConfigError
        Naming the host and the fix: whoever reaches the port could release the kill
        switch.
    """
    if admin_token is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to bind {host!r} without an admin token: any client that reaches it "
            f"could engage or release the kill switch; pass --admin-token-file FILE (or set "
            f"{ADMIN_TOKEN_ENV}), or bind 127.0.0.1"
        )


def pin_cpus(cpus: Sequence[int]) -> frozenset[int]:
    """Pin this process (its event loop and decision worker) to ``cpus``; returns them.

    One process decides under one GIL, so it uses about one core whatever it may run on;
    with the event loop and the decision worker free to run on different cores, every
    hand-over between them moves the interpreter's hot data across caches. Pinned to one
    core, a server did 1.15-1.17x the decisions per second on 2 cores, at 0.77-0.78x the CPU
    per decision (``allocgym bench serve --pin``; README, performance).

    Raises
    ------
    ConfigError
        No CPU given, an id this process may not run on (the message lists those it may),
        or a platform without CPU affinity.
    """
    wanted = frozenset(int(c) for c in cpus)
    if not hasattr(os, "sched_setaffinity"):
        raise ConfigError(
            "--cpus needs CPU affinity (Linux): leave it out on this platform, or pin the "
            "process with the platform's own tool"
        )
    allowed = os.sched_getaffinity(0)
    if not wanted or not wanted <= allowed:
        raise ConfigError(
            f"--cpus {sorted(wanted)}: this process may run on CPUs {sorted(allowed)}; "
            "name one or more of them (one is enough: a server uses about one core)"
        )
    os.sched_setaffinity(0, wanted)
    return wanted


def _bearer_denied(request: Request, token: str | None) -> JSONResponse | None:
    """The 401/403 answer to a request without the right bearer token (None: allowed).

    ``token`` None: only loopback clients are allowed (the service has no token), and not
    a request a proxy forwarded (its loopback peer is the proxy, not the client)."""
    challenge = {"WWW-Authenticate": 'Bearer realm="allocgym"'}
    if token is None:
        client = request.client.host if request.client is not None else ""
        forwarded = any(name in request.headers for name in _FORWARDED_HEADERS)
        if is_loopback(client) and not forwarded:
            return None
        return _error(
            401,
            f"this service has no token for {request.url.path}, so it answers loopback "
            "clients only, never through a proxy: restart serve with --admin-token-file "
            f"(or {ADMIN_TOKEN_ENV})",
            headers=challenge,
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return _error(401, "send the header Authorization: Bearer <token>", headers=challenge)
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return _error(403, "the bearer token is wrong")
    return None


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries of error statuses (all :class:`ErrorResponse`)."""
    what = {
        400: "The body is not JSON.",
        401: "No bearer token (`Authorization: Bearer <token>`); see WWW-Authenticate.",
        403: "The bearer token is wrong.",
        408: "The body did not arrive within BODY_TIMEOUT_S seconds of the headers.",
        409: "Request id reused with a different body.",
        413: "Body too large.",
        415: "Content-Type is not application/json.",
        422: "The body does not match the request schema (the message names the field).",
        500: "The server failed (e.g. the audit log could not be written); nothing was "
        "stored under the request id, so a retry with the same id decides afresh.",
        503: "Overloaded: shed, retry after Retry-After seconds.",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"model": ErrorResponse, "description": what[status]}
    if 401 in out:
        out[401]["headers"] = {
            "WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}}
        }
    if 503 in out:
        out[503]["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}
        }
    return out


class _InternalErrors:
    """ASGI middleware: an unexpected exception becomes a logged 500 ``internal_error``
    (in the error shape) when no response has started."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Mapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:
                raise
            await _internal_error(scope, exc)(scope, receive, send)


def _internal_error(scope: Mapping[str, Any], exc: Exception) -> JSONResponse:
    """Log an unexpected failure of a request; its 500 ``internal_error`` answer."""
    if isinstance(exc, WorkerError) and exc.down:  # logged once, when the process died
        return _error(500, str(exc))
    _log.error("%s %s failed", scope.get("method"), scope.get("path"), exc_info=exc)
    return _error(500, f"internal server error ({type(exc).__name__}): see the server log")


class _Admission:
    """Load shedding in front of the decision worker.

    ``in_flight``: decisions admitted and not answered (at most ``max_in_flight``): those
    being read, queued and the one being decided (counting only the worker's queue would
    admit a whole burst before any of it is queued). ``decide_s``: moving average of one
    decision's time on the worker, as the worker measured it (a decision process's own
    time, not the time a request spends queued for it). Admission sheds a request that
    would wait longer than ``max_queue_ms`` behind the decisions in flight.
    :meth:`_Decide.answer` applies it before reading the body.

    Parameters
    ----------
    worker : ThreadWorker or ProcessWorker
        Its allocator's serving config gives the limits; its metrics count the shed
        requests.
    """

    def __init__(self, worker: Worker) -> None:
        serving = worker.allocator.serving
        self.metrics = worker.metrics
        self.max_in_flight = int(serving.max_in_flight)
        self.max_queue_ms = float(serving.max_queue_ms)
        self.max_queue_s = self.max_queue_ms / 1e3
        self.in_flight = 0
        self.decide_s = 0.0
        self.shed_delay_s = float(serving.shed_delay_ms) / 1e3
        # The two refusals of a new request, built once: shedding is the overloaded
        # service's commonest answer, so it must cost next to nothing.
        self._refused = {
            reason: (
                self.metrics.shed.labels(reason=reason),
                _error(503, message, headers={"Retry-After": "1"}),
            )
            for reason, message in (
                ("in_flight", f"{self.max_in_flight} decisions in flight: retry later"),
                (
                    "queue_time",
                    f"the decisions ahead would take longer than {self.max_queue_ms:g} ms: "
                    "retry later",
                ),
            )
        }

    def shed(self, reason: str, message: str) -> JSONResponse:
        """Count a shed request and answer it 503 with ``Retry-After``."""
        self.metrics.shed.labels(reason=reason).inc()
        return _error(503, message, headers={"Retry-After": "1"})

    def refusal(self) -> JSONResponse | None:
        """The (counted) 503 for a request arriving now, or None when it is admitted."""
        if self.in_flight >= self.max_in_flight:
            reason = "in_flight"
        elif self.in_flight * self.decide_s > self.max_queue_s:
            reason = "queue_time"
        else:
            return None
        counter, answer = self._refused[reason]
        counter.inc()
        return answer

    def set_in_flight(self, change: int) -> None:
        """Move the in-flight count by ``change`` and publish it."""
        self.in_flight += change
        self.metrics.in_flight.set(self.in_flight)

    def observe(self, decide_s: float) -> None:
        """Fold one decision's time on the worker into ``decide_s``."""
        self.decide_s += 0.1 * (decide_s - self.decide_s)


_DECIDE = "/v1/decide"


def _route_path(scope: Mapping[str, Any]) -> str:
    """The path the router matches: ``scope["path"]`` without a leading ``root_path``
    (a server started with a root path includes it in the path)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class _Decide:
    """``POST /v1/decide``: the one implementation, called by :meth:`_App.__call__`
    (every decide request in practice) and by the FastAPI route (the documented contract,
    and the same answers if it is reached).

    Checks the decide token (401/403), then :meth:`_Admission.refusal` before anyone
    reads the body (503 with ``Retry-After``), then reads and validates the body (415,
    413, 400, 422), decides on the worker (409 for a reused request id) and answers the
    :class:`Decision` with ``Server-Timing`` (and ``Idempotent-Replay``).
    """

    def __init__(
        self,
        worker: Worker,
        request_model: type[BaseModel],
        account_model: type[BaseModel],
        decide_token: str | None,
    ) -> None:
        self.worker = worker
        self.admission = _Admission(worker)
        self.request_model = request_model
        self.account_model = account_model
        self.decide_token = decide_token

    async def answer(self, scope: Any, receive: Any) -> Response:
        """The response to the decide request ``scope`` whose body ``receive`` yields."""
        arrived = time.perf_counter()
        if self.decide_token is not None:
            denied = _bearer_denied(Request(scope), self.decide_token)
            if denied is not None:
                return denied
        if self.worker.failure is not None:
            return _error(500, self.worker.failure)
        admission = self.admission
        refused = admission.refusal()
        if refused is not None:
            if admission.shed_delay_s > 0.0:
                await asyncio.sleep(admission.shed_delay_s)
            return refused
        request = Request(scope, receive)
        admission.set_in_flight(+1)
        try:
            body = await read_body(request, MAX_BODY_BYTES)
            if isinstance(body, JSONResponse):
                return body
            model = self.account_model if is_account_body(body) else self.request_model
            req = validate_body(body, model)
            if isinstance(req, JSONResponse):
                return req
            digest = hashlib.sha256(body).hexdigest()
            parsed = time.perf_counter()
            try:
                got = await self.worker.decide(
                    req, body, digest, time.monotonic(), admission.max_queue_s
                )
            except IdempotencyConflict as err:
                return _error(409, str(err))
        finally:
            admission.set_in_flight(-1)
        res = got.result
        if res is None:
            return admission.shed(
                "queue_time", f"queued longer than {admission.max_queue_ms:g} ms: retry later"
            )
        admission.observe(got.decide_s)
        end = time.perf_counter()
        headers = {
            "Server-Timing": f"parse;dur={(parsed - arrived) * 1e3:.3f}, "
            f"queue;dur={got.queue_s * 1e3:.3f}, decide;dur={got.decide_s * 1e3:.3f}, "
            f"total;dur={(end - arrived) * 1e3:.3f}"
        }
        if res.cached:
            headers["Idempotent-Replay"] = "true"
        return Response(res.body, status_code=200, media_type=_JSON, headers=headers)


class _App(FastAPI):
    """The FastAPI app, answering ``POST /v1/decide`` itself (:meth:`_Decide.answer`) in
    front of FastAPI's middleware stack, routing and endpoint wrappers, which cost the
    event loop more than the decide's own body read, parse and answer (and a shed request,
    the overloaded service's commonest answer, next to nothing). Everything else goes to
    FastAPI; an unexpected failure of a decide is answered 500 as :class:`_InternalErrors`
    answers the rest."""

    decide: _Decide
    """Set by :func:`_add_decide_route`."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or _route_path(scope) != _DECIDE:
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.decide.answer(scope, receive)
        except Exception as exc:
            response = _internal_error(scope, exc)
        await response(scope, receive, send)


def _security(token: str | None) -> dict[str, Any]:
    """The OpenAPI ``security`` of a route guarded by ``token`` (none when it is None)."""
    return {"security": [{"bearerAuth": []}]} if token is not None else {}


def _lifespan(worker: Worker) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app lifespan: starts the decision worker, stops it (the audit chain's head is
    anchored at every shutdown)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await worker.start()
        try:
            yield
        finally:
            await worker.close()

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    """Answer HTTP errors, invalid requests and unexpected exceptions in the error shape."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc)

    # A middleware, not an exception handler: Starlette re-raises after a handler's answer
    # and the server may reset the connection before the 500 reaches the client. Plain
    # ASGI rather than ``@app.middleware``: no per-request task and stream copies.
    app.add_middleware(_InternalErrors)


def _decide_openapi(decide_token: str | None) -> dict[str, Any]:
    """The ``responses`` and ``openapi_extra`` of ``POST /v1/decide``."""
    ok = {
        "model": Decision,
        "description": "The decision; a valid request that cannot be decided on is "
        "answered with status `rejected` and a coded `reject` (INVALID_INPUT or "
        "STALE_INPUT): holding the book is a decision, audited and replayable like "
        "any other, not an error. 422 means only that the body does not match the "
        "request schema.",
        "headers": {
            "Idempotent-Replay": {
                "description": "`true` when the stored decision of this request id "
                "is returned without deciding again.",
                "schema": {"type": "string", "enum": ["true"]},
            },
            "Server-Timing": {
                "description": "parse, queue, decide and total durations (ms).",
                "schema": {"type": "string"},
            },
        },
        "links": {
            "SameRequestId": {
                "operationId": "decide",
                "requestBody": {"request_id": "$response.body#/request_id"},
                "description": "A decided request id again: the stored decision "
                "(same body, Idempotent-Replay) or 409 (another body).",
            }
        },
    }
    either_request = {
        "oneOf": [
            {"$ref": "#/components/schemas/AccountRequest"},
            {"$ref": "#/components/schemas/DecisionRequest"},
        ]
    }
    return {
        "responses": {
            200: ok,
            **_errors(400, 408, 409, 413, 415, 422, 500, 503),
            **(_errors(401, 403) if decide_token is not None else {}),
        },
        "openapi_extra": {
            "requestBody": {"required": True, "content": {_JSON: {"schema": either_request}}},
            **_security(decide_token),
        },
    }


def _add_decide_route(
    app: _App,
    worker: Worker,
    request_model: type[BaseModel],
    account_model: type[BaseModel],
    decide_token: str | None,
) -> _Admission:
    """Add ``POST /v1/decide`` (answered in front of the routing by :class:`_App`);
    returns its admission state."""
    handler = _Decide(worker, request_model, account_model, decide_token)
    app.decide = handler

    @app.post(_DECIDE, operation_id="decide", **_decide_openapi(decide_token))
    async def decide(request: Request) -> Response:
        """Decide one allocation request: an account request on the held market state
        (``AccountRequest``, names the bar) or a stateless one carrying the history
        (``DecisionRequest``, for replay and audit)."""
        return await handler.answer(request.scope, request.receive)

    return handler.admission


def _add_kill_switch_route(
    app: FastAPI,
    worker: Worker,
    admin_token: str | None,
) -> None:
    """Add ``POST /v1/kill-switch`` (admin token)."""

    @app.post(
        "/v1/kill-switch",
        operation_id="setKillSwitch",
        responses={
            200: {
                "model": KillSwitchState,
                "description": "The kill switch after the change.",
                "links": {
                    "Decide": {
                        "operationId": "decide",
                        "description": "Decisions from now on (flat while engaged).",
                    },
                    "Restore": {
                        "operationId": "setKillSwitch",
                        "requestBody": {"engaged": "$response.body#/previous"},
                        "description": "Put the kill switch back as it was.",
                    },
                },
            },
            **_errors(400, 401, 403, 408, 413, 415, 422, 500),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": {"$ref": "#/components/schemas/KillSwitchRequest"}}},
            },
            # Without an admin token no bearer token is asked for (loopback clients only):
            # stating one then would misdescribe the served contract.
            **_security(admin_token),
        },
    )
    async def kill_switch(request: Request) -> Response:
        """Engage or release the operator kill switch (audited; needs the admin token)."""
        denied = _bearer_denied(request, admin_token)
        if denied is not None:
            return denied
        if worker.failure is not None:
            return _error(500, worker.failure)
        parsed_body = await parse_json_body(request, KillSwitchRequest, MAX_CONTROL_BYTES)
        if isinstance(parsed_body, JSONResponse):
            return parsed_body
        change: KillSwitchRequest = parsed_body[0]
        out = await worker.set_kill_switch(change.engaged, change.reason, change.actor)
        return JSONResponse(KillSwitchState(**out).model_dump(mode="json"))


def _add_bar_route(
    app: FastAPI,
    worker: Worker,
    bar_model: type[BaseModel],
    admin_token: str | None,
) -> None:
    """Add ``POST /v1/bars`` (admin token): the streaming market state's input."""

    @app.post(
        "/v1/bars",
        operation_id="postBar",
        responses={
            200: {
                "model": BarAck,
                "description": "Applied, a replay of a held bar, or refused with a code "
                "(out of order, a gap, a conflict, invalid values): a refused bar changes "
                "nothing.",
                "links": {
                    "DecideOnIt": {
                        "operationId": "decide",
                        "requestBody": {"bar": "$response.body#/latest"},
                        "description": "A decision on the latest bar held.",
                    }
                },
            },
            **_errors(400, 401, 403, 408, 413, 415, 422, 500),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Bar"}}},
            },
            **_security(admin_token),
        },
    )
    async def post_bar(request: Request) -> Response:
        """Apply one new bar (every symbol) to the streaming market state (needs the
        admin token: every decision reads the bars)."""
        denied = _bearer_denied(request, admin_token)
        if denied is not None:
            return denied
        if worker.failure is not None:
            return _error(500, worker.failure)
        parsed_body = await parse_json_body(request, bar_model, MAX_BAR_BYTES)
        if isinstance(parsed_body, JSONResponse):
            return parsed_body
        ack = await worker.apply_bar(*parsed_body)
        return Response(ack, media_type=_JSON)


def _add_status_routes(app: FastAPI, worker: Worker, admission: _Admission) -> None:
    """Add the read-only routes: ``GET /healthz`` and ``GET /metrics``."""

    @app.get("/healthz", operation_id="health", response_model=Health, responses=_errors(500))
    async def healthz() -> Health | JSONResponse:
        """Liveness and what is being served; 500 once the decision process is gone."""
        if worker.failure is not None:
            return _error(500, worker.failure)
        return Health(
            status="ok",
            **worker.allocator.describe(),
            in_flight=admission.in_flight,
            decision_worker=worker.kind,
        )

    @app.get(
        "/metrics",
        operation_id="metrics",
        response_class=Response,
        responses={
            200: {
                "description": f"Prometheus text exposition format (`{CONTENT_TYPE_LATEST}`).",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **_errors(500),
        },
    )
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(await worker.exposition(), media_type=CONTENT_TYPE_LATEST)


def _use_served_schemas(app: FastAPI, body_models: list[type[BaseModel]]) -> None:
    """Publish the served request models (bounded to the served symbols and history) as
    the OpenAPI component schemas, with the bearer security scheme."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _, defs = models_json_schema(
                [(model, "validation") for model in body_models],
                ref_template="#/components/schemas/{model}",
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
            schema["components"]["securitySchemes"] = {
                "bearerAuth": {"type": "http", "scheme": "bearer"}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    service: DecisionService | Worker,
    *,
    admin_token: str | None = None,
    decide_token: str | None = None,
) -> FastAPI:
    """The FastAPI app over a :class:`DecisionService` (decided on a thread of this
    process) or a decision worker (:mod:`allocgym.serving.worker`).

    Parameters
    ----------
    service : DecisionService, ThreadWorker or ProcessWorker
    admin_token : str, optional
        Bearer token of the admin endpoints (the kill switch); None: they answer loopback
        clients only.
    decide_token : str, optional
        Bearer token ``POST /v1/decide`` requires; None: decide is open.

    Raises
    ------
    ConfigError
        The admin and decide tokens are the same (:func:`check_tokens`).
    """
    check_tokens(admin_token, decide_token)
    worker = ThreadWorker(service) if isinstance(service, DecisionService) else service
    app = _App(
        title="allocgym frozen allocator",
        version="1",
        description="Decisions of a frozen RL policy through the production risk gates.",
        lifespan=_lifespan(worker),
    )
    symbols = worker.allocator.symbols
    max_history_bars = int(worker.allocator.serving.max_history_bars)
    request_model = served_request_model(symbols, max_history_bars)
    account_model = served_account_model(symbols, max_history_bars)
    bar_model = served_bar_model(symbols)

    _add_error_handlers(app)
    admission = _add_decide_route(app, worker, request_model, account_model, decide_token)
    _add_kill_switch_route(app, worker, admin_token)
    _add_bar_route(app, worker, bar_model, admin_token)
    _add_status_routes(app, worker, admission)
    _use_served_schemas(app, [request_model, account_model, bar_model, KillSwitchRequest])
    return app


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerThread:
    """uvicorn serving an app in a background thread (tests, notebooks).

    Use as a context manager: the server is started on enter (waits until it accepts
    connections) and stopped on exit.
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, daemon=True, name="allocgym-uvicorn"
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 30.0
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30.0)


def serve(
    service: DecisionService | Worker,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    admin_token: str | None = None,
    decide_token: str | None = None,
    log_level: str = "warning",
    sock: socket.socket | None = None,
) -> None:
    """Run the HTTP service in the foreground (``allocgym serve``) on ``sock``, a socket
    :func:`listening_socket` bound to ``host``:``port`` (bound here when None).

    Raises
    ------
    ConfigError
        ``host`` is not a loopback address and there is no admin token: whoever reaches
        the port could release the kill switch; or the address cannot be bound.
    """
    import uvicorn

    check_bind(host, admin_token)
    sock = listening_socket(host, port) if sock is None else sock
    app = create_app(service, admin_token=admin_token, decide_token=decide_token)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: shut down cleanly, as uvicorn.run
        uvicorn.Server(config).run(sockets=[sock])


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` for :func:`serve` (bound before the service
    says it is serving, so an address in use is one line, not a server that never starts).

    Raises
    ------
    ConfigError
        Naming the address, the reason and the fix.
    """
    name = host.strip("[]")
    family = socket.AF_INET6 if ":" in name else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        sock.bind((name, port))
    except (OSError, OverflowError) as err:
        sock.close()
        why = getattr(err, "strerror", None) or str(err)
        raise ConfigError(
            f"cannot listen on {host}:{port} ({why}): choose another --port, stop the process "
            "that holds it, or pass an address of this machine as --host"
        ) from None
    return sock
