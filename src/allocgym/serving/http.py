"""HTTP service of the frozen allocator (FastAPI + uvicorn): ``allocgym serve``.

Endpoints
---------
``POST /v1/decide``
    Body: the bundle's :func:`~allocgym.serving.schemas.served_request_model` (JSON). 200
    with a :class:`~allocgym.serving.schemas.Decision`, also when the request is valid but
    cannot be decided on: ``status = "rejected"`` with a coded ``reject``
    (``INVALID_INPUT`` / ``STALE_INPUT``), audited like every decision. 409 when a known
    request id comes with a different body; 503 when overloaded (more than
    ``serving.max_in_flight`` decisions queued, or one waited longer than
    ``serving.max_queue_ms``: shed rather than served late). A repeated request id with
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
``POST /v1/kill-switch`` (every admin endpoint) needs ``Authorization: Bearer <token>``
with the admin token (``serve --admin-token-file`` or ``ALLOCGYM_ADMIN_TOKEN``); with
``serve --decide-token-file`` or ``ALLOCGYM_DECIDE_TOKEN``, ``POST /v1/decide`` needs the
decide token. Tokens are compared in constant time (``hmac.compare_digest``). 401
``unauthorized`` (with ``WWW-Authenticate: Bearer``): no bearer token; 403 ``forbidden``:
a wrong one. Without an admin token the admin endpoints answer loopback clients only
(anyone else: 401), and :func:`serve` refuses to bind a non-loopback address.
``/healthz`` and ``/metrics`` stay open (they change nothing).

Every error the service answers has one shape, :class:`ErrorResponse`
(``{"error": code, "message": text, "details": [{"loc", "msg"}]}``): 400 ``invalid_json``
(the body is not JSON), 413 ``body_too_large``, 415 ``unsupported_media_type`` (a POST
without ``Content-Type: application/json``), 422 ``malformed_request`` (JSON that does not
match the request schema; ``message`` starts with the field's dotted path), 409
``idempotency_conflict``, 500 ``internal_error`` (an unexpected failure, e.g. the audit
log could not be written), 503 ``overloaded`` (with ``Retry-After``), 404 ``not_found`` and
405 ``method_not_allowed``. The OpenAPI document lists, per operation, the statuses it can
return with their schemas (404 and 405 belong to no operation).

Decisions run one at a time on a dedicated worker thread (the numpy core holds the GIL
for most of a decision; one worker keeps the decision order equal to the audit order),
so the event loop stays free to answer health checks and to shed load.
"""

from __future__ import annotations

import asyncio
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
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
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

from allocgym.errors import ConfigError
from allocgym.serving.schemas import Decision, DecisionRequest, served_request_model
from allocgym.serving.service import DecisionService, IdempotencyConflict, ServiceResult

_log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 2**20
"""Largest decision request body accepted (413 above)."""
MAX_CONTROL_BYTES = 64 * 2**10
"""Largest kill-switch body accepted (413 above)."""

_JSON = "application/json"

ERROR_CODES: dict[int, str] = {
    400: "invalid_json",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
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


async def parse_json_body(
    request: Request, model: type[BaseModel], max_bytes: int
) -> tuple[Any, bytes] | JSONResponse:
    """``(model instance, raw body)`` or the error answer: 415 unless the body is declared
    ``application/json``, 413 above ``max_bytes``, 400 if it is not JSON, 422 if it does
    not match ``model`` (strictly)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != _JSON:
        return _error(415, f"send the body as {_JSON} (got {media or 'no Content-Type'})")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return _error(413, f"request body over {max_bytes} bytes")
    body = await request.body()
    if len(body) > max_bytes:
        return _error(413, f"request body over {max_bytes} bytes")
    try:
        return model.model_validate_json(body), body
    except ValidationError as err:
        bad_json = [d for d in err.errors() if d["type"] == "json_invalid"]
        if bad_json:
            return _error(400, f"the body is not JSON: {bad_json[0]['msg']}")
        return _validation_error(err)


ADMIN_TOKEN_ENV = "ALLOCGYM_ADMIN_TOKEN"
"""Environment variable holding the admin token (kill switch, every admin endpoint)."""
DECIDE_TOKEN_ENV = "ALLOCGYM_DECIDE_TOKEN"
"""Environment variable holding the decide token (``POST /v1/decide``)."""
MIN_TOKEN_LENGTH = 16
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-._~+/=")


def read_token(
    env_var: str, path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """A bearer token from the file ``path`` or the environment variable ``env_var``.

    Parameters
    ----------
    env_var : str
        ``ADMIN_TOKEN_ENV`` or ``DECIDE_TOKEN_ENV``.
    path : str or Path, optional
        A file holding the token (surrounding whitespace is ignored).
    environ : mapping, optional
        Where ``env_var`` is read (``os.environ`` when omitted).

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
            f"both {env_var} and the token file {str(path)!r} are set: keep one of them"
        )
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"token file {str(p)!r} does not exist: write the token to it")
        if p.stat().st_mode & 0o077:
            warnings.warn(
                f"token file {str(p)!r} is readable by other users "
                f"(mode {p.stat().st_mode & 0o777:o}): chmod 600 it",
                stacklevel=2,
            )
        token, source = p.read_text(encoding="utf-8").strip(), f"token file {str(p)!r}"
    elif from_env:
        token, source = from_env.strip(), env_var
    else:
        return None
    fix = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"the token in {source} has {len(token)} characters, fewer than "
            f"{MIN_TOKEN_LENGTH}: {fix}"
        )
    if not set(token) <= _TOKEN_CHARS:
        raise ConfigError(
            f"the token in {source} has characters a bearer token cannot carry (use "
            f"letters, digits and -._~+/=): {fix}"
        )
    return token


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` accepts connections from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve to any interface


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


def _bearer_denied(request: Request, token: str | None) -> JSONResponse | None:
    """The 401/403 answer to a request without the right bearer token (None: allowed).

    ``token`` None: only loopback clients are allowed (the service has no token)."""
    challenge = {"WWW-Authenticate": 'Bearer realm="allocgym"'}
    if token is None:
        client = request.client.host if request.client is not None else ""
        if is_loopback(client):
            return None
        return _error(
            401,
            f"this service has no token for {request.url.path}, so it answers loopback "
            f"clients only: restart serve with --admin-token-file (or {ADMIN_TOKEN_ENV})",
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


def create_app(
    service: DecisionService, *, admin_token: str | None = None, decide_token: str | None = None
) -> FastAPI:
    """The FastAPI app over a :class:`DecisionService`.

    Parameters
    ----------
    service : DecisionService
    admin_token : str, optional
        Bearer token of the admin endpoints (the kill switch); None: they answer loopback
        clients only.
    decide_token : str, optional
        Bearer token ``POST /v1/decide`` requires; None: decide is open.
    """
    serving = service.allocator.serving
    max_in_flight = int(serving.max_in_flight)
    max_queue_s = float(serving.max_queue_ms) / 1e3
    state = {"in_flight": 0}
    executor: dict[str, ThreadPoolExecutor] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        executor["pool"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="allocgym-decide")
        try:
            yield
        finally:
            executor["pool"].shutdown(wait=True)
            if service.audit is not None:
                service.audit.anchor()  # the chain head is anchored at every shutdown

    app = FastAPI(
        title="allocgym frozen allocator",
        version="1",
        description="Decisions of a frozen RL policy through the production risk gates.",
        lifespan=lifespan,
    )

    request_model = served_request_model(service.allocator.symbols, int(serving.max_history_bars))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc)

    @app.middleware("http")
    async def internal_error(request: Request, call_next: Any) -> Response:
        # A middleware, not an exception handler: Starlette re-raises after a handler's
        # answer and the server may reset the connection before the 500 reaches the client.
        try:
            return await call_next(request)
        except Exception as exc:
            _log.exception("%s %s failed", request.method, request.url.path)
            return _error(500, f"internal server error ({type(exc).__name__}): see the server log")

    def run_decision(
        req: DecisionRequest, digest: str, arrived: float
    ) -> tuple[ServiceResult | None, float, float]:
        start = time.perf_counter()
        if start - arrived > max_queue_s:
            return None, start, start
        return service.decide(req, digest), start, time.perf_counter()

    @app.post(
        "/v1/decide",
        operation_id="decide",
        responses={
            200: {
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
            },
            **_errors(400, 409, 413, 415, 422, 500, 503),
            **(_errors(401, 403) if decide_token is not None else {}),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": {"$ref": "#/components/schemas/DecisionRequest"}}},
            },
            **({"security": [{"bearerAuth": []}]} if decide_token is not None else {}),
        },
    )
    async def decide(request: Request) -> Response:
        """Decide one allocation request."""
        arrived = time.perf_counter()
        if decide_token is not None:
            denied = _bearer_denied(request, decide_token)
            if denied is not None:
                return denied
        parsed_body = await parse_json_body(request, request_model, MAX_BODY_BYTES)
        if isinstance(parsed_body, JSONResponse):
            return parsed_body
        req, body = parsed_body
        parsed = time.perf_counter()
        if state["in_flight"] >= max_in_flight:
            service.metrics.shed.labels(reason="in_flight").inc()
            return _error(
                503,
                f"{max_in_flight} decisions in flight: retry later",
                headers={"Retry-After": "1"},
            )
        state["in_flight"] += 1
        service.metrics.in_flight.set(state["in_flight"])
        digest = hashlib.sha256(body).hexdigest()
        try:
            loop = asyncio.get_running_loop()
            res, started, done = await loop.run_in_executor(
                executor["pool"], run_decision, req, digest, arrived
            )
        except IdempotencyConflict as err:
            return _error(409, str(err))
        finally:
            state["in_flight"] -= 1
            service.metrics.in_flight.set(state["in_flight"])
        if res is None:
            service.metrics.shed.labels(reason="queue_time").inc()
            return _error(
                503,
                f"queued longer than {serving.max_queue_ms:g} ms: retry later",
                headers={"Retry-After": "1"},
            )
        end = time.perf_counter()
        headers = {
            "Server-Timing": f"parse;dur={(parsed - arrived) * 1e3:.3f}, "
            f"queue;dur={(started - parsed) * 1e3:.3f}, decide;dur={(done - started) * 1e3:.3f}, "
            f"total;dur={(end - arrived) * 1e3:.3f}"
        }
        if res.cached:
            headers["Idempotent-Replay"] = "true"
        return Response(res.body, status_code=200, media_type=_JSON, headers=headers)

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
            **_errors(400, 401, 403, 413, 415, 422, 500),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": {"$ref": "#/components/schemas/KillSwitchRequest"}}},
            },
            # Without an admin token no bearer token is asked for (loopback clients only):
            # stating one then would misdescribe the served contract.
            **({"security": [{"bearerAuth": []}]} if admin_token is not None else {}),
        },
    )
    async def kill_switch(request: Request) -> Response:
        """Engage or release the operator kill switch (audited; needs the admin token)."""
        denied = _bearer_denied(request, admin_token)
        if denied is not None:
            return denied
        parsed_body = await parse_json_body(request, KillSwitchRequest, MAX_CONTROL_BYTES)
        if isinstance(parsed_body, JSONResponse):
            return parsed_body
        change: KillSwitchRequest = parsed_body[0]
        loop = asyncio.get_running_loop()
        out = await loop.run_in_executor(
            executor["pool"],
            lambda: service.set_kill_switch(
                change.engaged, reason=change.reason, actor=change.actor
            ),
        )
        return JSONResponse(KillSwitchState(**out).model_dump(mode="json"))

    @app.get("/healthz", operation_id="health", response_model=Health, responses=_errors(500))
    async def healthz() -> Health:
        """Liveness and what is being served."""
        return Health(status="ok", **service.allocator.describe(), in_flight=state["in_flight"])

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
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _, defs = models_json_schema(
                [(request_model, "validation"), (KillSwitchRequest, "validation")],
                ref_template="#/components/schemas/{model}",
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
            schema["components"]["securitySchemes"] = {
                "bearerAuth": {"type": "http", "scheme": "bearer"}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
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
    service: DecisionService,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    admin_token: str | None = None,
    decide_token: str | None = None,
    log_level: str = "warning",
) -> None:
    """Run the HTTP service in the foreground (``allocgym serve``).

    Raises
    ------
    ConfigError
        ``host`` is not a loopback address and there is no admin token: whoever reaches
        the port could release the kill switch.
    """
    import uvicorn

    check_bind(host, admin_token)
    app = create_app(service, admin_token=admin_token, decide_token=decide_token)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
