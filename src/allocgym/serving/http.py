"""HTTP service of the frozen allocator (FastAPI + uvicorn): ``allocgym serve``.

Endpoints
---------
``POST /v1/decide``
    Body: :class:`~allocgym.serving.schemas.DecisionRequest` (JSON). 200 with a
    :class:`~allocgym.serving.schemas.Decision`; 422 with a ``rejected`` Decision when
    the request parses but cannot be decided on (coded ``INVALID_INPUT`` /
    ``STALE_INPUT``); 422 ``{"error": "malformed_request", ...}`` when it does not parse;
    409 when a known request id comes with a different body; 503 when overloaded (more
    than ``serving.max_in_flight`` decisions queued, or one waited longer than
    ``serving.max_queue_ms``: shed rather than served late). A repeated request id with
    the same body returns the stored decision (header ``Idempotent-Replay: true``)
    without deciding again.
``POST /v1/kill-switch``
    Body ``{"engaged": bool, "reason": str, "actor": str}``; engages or releases the
    operator kill switch (audited). While engaged every decision flattens the book.
``GET /healthz``
    Model id and hashes, enabled flag, kill switch, in-flight count.
``GET /metrics``
    Prometheus text exposition of the service's registry.

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
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field, ValidationError
from pydantic.json_schema import models_json_schema

from allocgym.serving.schemas import Decision, DecisionRequest
from allocgym.serving.service import DecisionService, IdempotencyConflict, ServiceResult

MAX_BODY_BYTES = 256 * 2**20
"""Largest request body accepted (413 above)."""

_JSON = "application/json"


class KillSwitchRequest(BaseModel):
    """Operator kill switch change."""

    engaged: bool
    """True engages (flatten everything), False releases."""
    reason: str = Field(default="", max_length=1000)
    actor: str = Field(default="", max_length=200)


class KillSwitchState(BaseModel):
    """The kill switch after a change."""

    kill_switch: bool
    previous: bool
    at: str
    reason: str
    actor: str


def _error(
    status: int, error: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "message": message, **extra}, status_code=status, headers=headers
    )


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

    def run_decision(
        req: DecisionRequest, digest: str, arrived: float
    ) -> tuple[ServiceResult | None, float, float]:
        start = time.perf_counter()
        if start - arrived > max_queue_s:
            return None, start, start
        return service.decide(req, digest), start, time.perf_counter()

    @app.post(
        "/v1/decide",
        responses={
            200: {"model": Decision, "description": "The decision."},
            409: {"description": "Request id reused with a different body."},
            422: {"model": Decision, "description": "Rejected (coded) or malformed request."},
            503: {"description": "Overloaded: shed, retry later."},
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
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "body_too_large", f"request body over {MAX_BODY_BYTES} bytes")
        try:
            req = DecisionRequest.model_validate_json(body)
        except ValidationError as err:
            details = err.errors(include_url=False, include_input=False, include_context=False)
            first = details[0] if details else {}
            where = ".".join(str(p) for p in first.get("loc", ())) or "<body>"
            return _error(
                422,
                "malformed_request",
                f"{where}: {first.get('msg', 'invalid request')}",
                details=[
                    {"loc": [str(p) for p in d["loc"]], "msg": d["msg"]} for d in details[:20]
                ],
            )
        parsed = time.perf_counter()
        if state["in_flight"] >= max_in_flight:
            service.metrics.shed.labels(reason="in_flight").inc()
            return _error(
                503,
                "overloaded",
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
            return _error(409, "idempotency_conflict", str(err))
        finally:
            state["in_flight"] -= 1
            service.metrics.in_flight.set(state["in_flight"])
        if res is None:
            service.metrics.shed.labels(reason="queue_time").inc()
            return _error(
                503,
                "overloaded",
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
        code = 422 if res.status == "rejected" else 200
        return Response(res.body, status_code=code, media_type=_JSON, headers=headers)

    @app.post("/v1/kill-switch", response_model=KillSwitchState)
    async def kill_switch(change: KillSwitchRequest) -> KillSwitchState:
        """Engage or release the operator kill switch (audited)."""
        loop = asyncio.get_running_loop()
        out = await loop.run_in_executor(
            executor["pool"],
            lambda: service.set_kill_switch(
                change.engaged, reason=change.reason, actor=change.actor
            ),
        )
        return KillSwitchState(**out)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness and what is being served."""
        return {"status": "ok", **service.allocator.describe(), "in_flight": state["in_flight"]}

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _, defs = models_json_schema(
                [(DecisionRequest, "validation")], ref_template="#/components/schemas/{model}"
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
