"""``POST /v1/decide`` answered in front of FastAPI's stack: the same answers as the route."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from test_serving_support import ENABLED, bar_clock, exported_bundle, fixed_clock, patient, sp500

from allocgym.serving import DecisionService, FrozenAllocator, FrozenPolicy, request_from_market
from allocgym.serving.http import MAX_BODY_BYTES, create_app

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

T0 = 6100
TOKEN = "decide-token-0123456789"


@pytest.fixture(scope="module")
def policy() -> FrozenPolicy:
    return FrozenPolicy.load(exported_bundle())


def _app(policy: FrozenPolicy) -> FastAPI:
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=patient(policy), clock=fixed_clock(bar_clock(sp500(), T0))
    )
    return create_app(DecisionService(alloc), decide_token=TOKEN)


def _decide_body(history: int, rid: str, **kw: object) -> bytes:
    req = request_from_market(sp500(), T0, history=history, request_id=rid, **kw)
    return req.model_dump_json().encode()


def _answers(client: Any, history: int) -> list[tuple[int, dict[str, str], Any]]:
    """Status, the headers that matter and the JSON body (less the measured latency) of
    each kind of decide answer."""
    auth = {"authorization": f"Bearer {TOKEN}"}
    sent = {**auth, "content-type": "application/json"}
    good = _decide_body(history, "fp-1")
    cases: list[tuple[bytes, dict[str, str]]] = [
        (good, {"content-type": "application/json"}),  # 401: no token
        (good, {**sent, "authorization": "Bearer wrong-token-0123456789"}),  # 403
        (good, {**auth, "content-type": "text/plain"}),  # 415
        (good, {**sent, "content-length": str(MAX_BODY_BYTES + 1)}),  # 413, nothing read
        (b"{not json", sent),  # 400
        (b'{"request_id": "fp-x"}', sent),  # 422
        (good, sent),  # 200
        (good, sent),  # 200, Idempotent-Replay
        (_decide_body(history, "fp-1", cash=5.0e5), sent),  # 409
    ]
    out = []
    for content, headers in cases:
        r = client.post("/v1/decide", content=content, headers=headers)
        kept = {
            k: v
            for k, v in r.headers.items()
            if k in ("content-type", "www-authenticate", "retry-after", "idempotent-replay")
        }
        kept["server-timing"] = ",".join(
            part.split(";")[0] for part in r.headers.get("server-timing", "").split(", ")
        )
        answer = r.json()
        if r.status_code == 200:
            del answer["latency"]  # measured, differs between two runs
        out.append((r.status_code, kept, answer))
    return out


def _through_fastapi(app: FastAPI) -> Any:
    """An ASGI app that hands every request to FastAPI's own stack and router."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        await FastAPI.__call__(app, scope, receive, send)

    return asgi


def test_the_front_and_the_route_answer_alike(policy: FrozenPolicy) -> None:
    """Every kind of answer (401, 403, 415, 413, 400, 422, 200, replay, 409) is the same,
    headers and body, whether the front answers or FastAPI routes the request."""
    from starlette.testclient import TestClient

    front_app, routed_app = _app(policy), _app(policy)
    history = front_app.decide.worker.allocator.history  # type: ignore[attr-defined]
    with TestClient(front_app) as front, TestClient(_through_fastapi(routed_app)) as routed:
        by_front, by_route = _answers(front, history), _answers(routed, history)
    statuses = [status for status, _, _ in by_front]
    assert statuses == [401, 403, 415, 413, 400, 422, 200, 200, 409]
    assert by_front == by_route
    ok, replay = by_front[6][1], by_front[7][1]
    assert ok["server-timing"] == "parse,queue,decide,total" and "idempotent-replay" not in ok
    assert replay["idempotent-replay"] == "true"


def test_decide_skips_the_middleware_stack(policy: FrozenPolicy) -> None:
    """A decide request never reaches FastAPI's middleware stack; other requests do."""
    from starlette.testclient import TestClient

    app = _app(policy)
    seen: list[str] = []

    class Spy:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                seen.append(scope["path"])
            await self.inner(scope, receive, send)

    app.add_middleware(Spy)
    with TestClient(app) as c:
        history = app.decide.worker.allocator.history  # type: ignore[attr-defined]
        r = c.post(
            "/v1/decide",
            content=_decide_body(history, "spy-1"),
            headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"},
        )
        assert r.status_code == 200, r.text
        assert c.get("/healthz").status_code == 200
    assert seen == ["/healthz"]


def test_an_unexpected_failure_in_front_is_a_500(
    policy: FrozenPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception while deciding is answered 500 ``internal_error`` by the front, in the
    error shape, and the in-flight count (the queue estimate later requests are shed by)
    goes back to 0."""
    from starlette.testclient import TestClient

    app = _app(policy)
    decide: Any = app.decide  # type: ignore[attr-defined]

    async def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(decide.worker, "decide", broken)
    with TestClient(app) as c:
        r = c.post(
            "/v1/decide",
            content=_decide_body(decide.worker.allocator.history, "err-1"),
            headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"},
        )
    assert r.status_code == 500
    assert r.json() == {
        "error": "internal_error",
        "message": "internal server error (RuntimeError): see the server log",
        "details": [],
    }
    assert decide.admission.in_flight == 0


def test_a_thread_worker_refuses_calls_before_its_lifespan(policy: FrozenPolicy) -> None:
    """Called before the app's lifespan started its thread, the worker refuses (the
    event loop's default pool would run decisions side by side)."""
    import asyncio

    from allocgym.serving.worker import WorkerError

    worker: Any = _app(policy).decide.worker  # type: ignore[attr-defined]
    with pytest.raises(WorkerError, match="the worker thread is not started"):
        asyncio.run(worker.set_kill_switch(True, "", ""))
    assert worker.records is None and not worker.allocator.operator_kill


def test_a_refused_submission_leaves_nothing_in_flight(policy: FrozenPolicy) -> None:
    """The worker thread refuses the job (shut down): 500, and nothing stays counted in
    flight, so later requests are not shed for it."""
    from starlette.testclient import TestClient

    app = _app(policy)
    decide: Any = app.decide  # type: ignore[attr-defined]
    with TestClient(app) as c:
        decide.worker.pool.shutdown()
        r = c.post(
            "/v1/decide",
            content=_decide_body(decide.worker.allocator.history, "refused-1"),
            headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"},
        )
    assert r.status_code == 500
    assert decide.admission.in_flight == 0
    assert decide.admission.refusal() is None
