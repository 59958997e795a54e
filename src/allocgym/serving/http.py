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
``POST /v1/kill-switch``
    Body ``{"engaged": bool, "reason": str, "actor": str}`` (strict: ``engaged`` is a JSON
    boolean, never ``0`` or ``"false"``); engages or releases the operator kill switch
    (audited). While engaged every decision flattens the book.
``GET /healthz``
    Model id and hashes, enabled flag, kill switch, in-flight count (:class:`Health`).
``GET /metrics``
    Prometheus text exposition of the service's registry (``text/plain``).

Every error the service answers has one shape, :class:`ErrorResponse`
(``{"error": code, "message": text, "details": [{"loc", "msg"}]}``): 400 ``invalid_json``
(the body is not JSON), 413 ``body_too_large``, 415 ``unsupported_media_type`` (a POST
without ``Content-Type: application/json``), 422 ``malformed_request`` (JSON that does not
match the request schema; ``message`` starts with the field's dotted path), 409
``idempotency_conflict``, 503 ``overloaded`` (with ``Retry-After``), 404 ``not_found`` and
405 ``method_not_allowed``. The OpenAPI document lists, per operation, the statuses it can
return with their schemas.

Decisions run one at a time on a dedicated worker thread (the numpy core holds the GIL
for most of a decision; one worker keeps the decision order equal to the audit order),
so the event loop stays free to answer health checks and to shed load.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from allocgym.serving.schemas import Decision, DecisionRequest, served_request_model
from allocgym.serving.service import DecisionService, IdempotencyConflict, ServiceResult

MAX_BODY_BYTES = 256 * 2**20
"""Largest decision request body accepted (413 above)."""
MAX_CONTROL_BYTES = 64 * 2**10
"""Largest kill-switch body accepted (413 above)."""

_JSON = "application/json"

ERROR_CODES: dict[int, str] = {
    400: "invalid_json",
    404: "not_found",
    405: "method_not_allowed",
    409: "idempotency_conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "malformed_request",
    503: "overloaded",
}
"""The ``error`` code of each status the service answers with an :class:`ErrorResponse`."""

ErrorCode = Literal[
    "invalid_json",
    "not_found",
    "method_not_allowed",
    "idempotency_conflict",
    "body_too_large",
    "unsupported_media_type",
    "malformed_request",
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


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries of error statuses (all :class:`ErrorResponse`)."""
    what = {
        400: "The body is not JSON.",
        409: "Request id reused with a different body.",
        413: "Body too large.",
        415: "Content-Type is not application/json.",
        422: "The body does not match the request schema (the message names the field).",
        503: "Overloaded: shed, retry after Retry-After seconds.",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"model": ErrorResponse, "description": what[status]}
    if 503 in out:
        out[503]["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}
        }
    return out


def create_app(service: DecisionService) -> FastAPI:
    """The FastAPI app over a :class:`DecisionService`."""
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
                "STALE_INPUT).",
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
            **_errors(400, 409, 413, 415, 422, 503),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": {"$ref": "#/components/schemas/DecisionRequest"}}},
            }
        },
    )
    async def decide(request: Request) -> Response:
        """Decide one allocation request."""
        arrived = time.perf_counter()
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
            **_errors(400, 413, 415, 422),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": {"$ref": "#/components/schemas/KillSwitchRequest"}}},
            }
        },
    )
    async def kill_switch(request: Request) -> Response:
        """Engage or release the operator kill switch (audited)."""
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

    @app.get("/healthz", operation_id="health", response_model=Health)
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
            }
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
    log_level: str = "warning",
) -> None:
    """Run the HTTP service in the foreground (``allocgym serve``)."""
    import uvicorn

    uvicorn.run(create_app(service), host=host, port=port, log_level=log_level, access_log=False)
