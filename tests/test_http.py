"""The real HTTP service on loopback: status codes, idempotency, kill switch, metrics, shedding, audit."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_observability import prometheus_naming_problems
from test_serving_support import (
    ENABLED,
    bar_clock,
    exported_bundle,
    fixed_clock,
    patient,
    small_market,
    sp500,
    untrained_bundle,
)

from allocgym.serving import (
    DecisionService,
    FrozenAllocator,
    FrozenPolicy,
    replay_audit,
    request_from_market,
)
from allocgym.serving.allocator import serving_config
from allocgym.serving.http import ErrorResponse, ServerThread, create_app

T0 = 6100


@pytest.fixture(scope="module")
def policy() -> FrozenPolicy:
    return FrozenPolicy.load(exported_bundle())


@pytest.fixture(scope="module")
def audit_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("http") / "audit.jsonl"


@pytest.fixture(scope="module")
def server(policy: FrozenPolicy, audit_path: Path) -> Iterator[tuple[str, DecisionService]]:
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=patient(policy), clock=fixed_clock(bar_clock(sp500(), T0))
    )
    service = DecisionService(alloc, audit_log=audit_path)
    with ServerThread(create_app(service)) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        yield srv.url, service


def body(alloc_history: int, rid: str, **kw: object) -> bytes:
    req = request_from_market(sp500(), T0, history=alloc_history, request_id=rid, **kw)
    return req.model_dump_json().encode()


def post(c: httpx.Client, content: bytes) -> httpx.Response:
    return c.post("/v1/decide", content=content, headers={"content-type": "application/json"})


def test_decide_status_codes_and_idempotency(server: tuple[str, DecisionService]) -> None:
    url, service = server
    h = service.allocator.history
    with httpx.Client(base_url=url, timeout=30) as c:
        first = post(c, body(h, "h-1"))
        assert first.status_code == 200, first.text
        d = first.json()
        assert d["status"] == "ok" and d["request_id"] == "h-1"
        assert d["model"]["sha256"] == service.allocator.policy.sha256
        assert "decide;dur=" in first.headers["server-timing"]
        n_audit = len(service.audit)
        again = post(c, body(h, "h-1"))
        assert again.status_code == 200 and again.content == first.content
        assert again.headers["idempotent-replay"] == "true"
        assert len(service.audit) == n_audit  # not decided again
        conflict = post(c, body(h, "h-1", cash=5.0e5))
        assert conflict.status_code == 409 and conflict.json()["error"] == "idempotency_conflict"

        bad_json = post(c, b'{"request_id": ')
        assert bad_json.status_code == 400 and bad_json.json()["error"] == "invalid_json"
        missing = json.loads(body(h, "h-2"))
        del missing["equity"]
        r = post(c, json.dumps(missing).encode())
        assert r.status_code == 422 and r.json()["message"].startswith("equity")
        ragged = json.loads(body(h, "h-3"))
        ragged["close"][0] = ragged["close"][0][:3]
        r = post(c, json.dumps(ragged).encode())
        assert r.status_code == 422 and "close" in r.json()["message"]

        stale = json.loads(body(h, "h-4"))
        stale["timestamp"] = "2001-01-02T00:00:00Z"
        r = post(c, json.dumps(stale).encode())
        assert r.status_code == 200  # a valid request, decided: a coded reject
        assert r.json()["status"] == "rejected" and r.json()["reject"]["code"] == "STALE_INPUT"
        nan = body(h, "h-5").replace(b'"close":[[', b'"close":[[NaN,', 1)
        nan = json.loads(nan)  # keep it rectangular: drop the value NaN displaced
        nan["close"][0] = nan["close"][0][:20]
        r = post(c, json.dumps(nan).encode())
        assert r.status_code == 200 and r.json()["reject"]["detail"] == "non_finite"

        health = c.get("/healthz").json()
        assert health["status"] == "ok" and health["sha256"] == service.allocator.policy.sha256
        spec = c.get("/openapi.json").json()
        assert "/v1/decide" in spec["paths"] and "/v1/kill-switch" in spec["paths"]
        assert {"DecisionRequest", "Decision", "RegimeOverride"} <= set(
            spec["components"]["schemas"]
        )
        ref = spec["paths"]["/v1/decide"]["post"]["requestBody"]["content"]["application/json"]
        assert ref["schema"]["$ref"] == "#/components/schemas/DecisionRequest"


def test_kill_switch_engage_and_release(server: tuple[str, DecisionService]) -> None:
    url, service = server
    h = service.allocator.history
    shares = np.zeros(20)
    shares[:5] = 100.0
    with httpx.Client(base_url=url, timeout=30) as c:
        on = c.post("/v1/kill-switch", json={"engaged": True, "reason": "drill", "actor": "pytest"})
        assert on.status_code == 200 and on.json()["kill_switch"] is True
        assert "allocator_kill_switch_engaged 1.0" in c.get("/metrics").text
        d = post(c, body(h, "k-1", shares=shares)).json()
        assert d["status"] == "killed" and d["target_qty"] == [0.0] * 20
        assert all("KILL_SWITCH" in r for r in d["reasons"])
        off = c.post("/v1/kill-switch", json={"engaged": False})
        assert off.json() | {"at": None} == {
            "kill_switch": False, "previous": True, "at": None, "reason": "", "actor": "",
        }  # fmt: skip
        assert post(c, body(h, "k-2", shares=shares)).json()["status"] == "ok"
        assert c.post("/v1/kill-switch", json={"engaged": "sometimes"}).status_code == 422
    kinds = [
        json.loads(line)["record"]["input"]["kind"]
        for line in service.audit.path.read_text().splitlines()
    ]
    assert kinds.count("kill_switch") == 2


def test_metrics_expose_the_named_series(server: tuple[str, DecisionService]) -> None:
    url, _ = server
    with httpx.Client(base_url=url, timeout=30) as c:
        post(c, body(273, "m-1"))
        text = c.get("/metrics").text
    for name in (
        "allocator_active_strategies",
        "allocator_gross_exposure_ratio",
        "allocator_net_exposure_ratio",
        'allocator_reject_total{reason="KILL_SWITCH"}',
        "allocator_capacity_utilization_ratio{symbol=",
        'allocator_strategy_pnl_contribution_currency{strategy_id="policy"}',
        'allocator_strategy_pnl_contribution_currency{strategy_id="unattributed"}',
        "allocator_decision_latency_seconds_bucket",
        "allocator_model_info{",
        'allocator_fallback_total{cause="deadline"}',
        "allocator_request_reject_total{",
        "allocator_kill_switch_engaged",
        'allocator_decisions_total{status="ok"}',
        "allocator_shed_total",
    ):
        assert name in text, name
    assert f'sha256="{FrozenPolicy.load(exported_bundle()).sha256}"' in text
    assert prometheus_naming_problems(text) == []


def test_audit_log_written_while_serving_replays_byte_for_byte(
    server: tuple[str, DecisionService], policy: FrozenPolicy, audit_path: Path
) -> None:
    url, service = server
    with httpx.Client(base_url=url, timeout=30) as c:
        post(c, body(service.allocator.history, "a-1"))
    assert service.audit.verify().ok and len(service.audit) >= 5
    report = replay_audit(
        audit_path, FrozenAllocator(policy, environ=ENABLED, serving=patient(policy))
    )
    assert report.ok, report.mismatches


def test_overload_is_shed_with_503(policy: FrozenPolicy, tmp_path: Path) -> None:
    def slow(obs: np.ndarray) -> np.ndarray:
        time.sleep(0.2)
        return policy(obs)

    # A long queue limit: on a busy machine the one admitted request must not be shed for
    # queue time too; only the in-flight limit sheds here.
    serving = serving_config(
        policy,
        ["serving.max_in_flight=1", "serving.deadline_ms=5000", "serving.max_queue_ms=5000"],
    )
    alloc = FrozenAllocator(
        policy,
        environ=ENABLED,
        serving=serving,
        model=slow,
        clock=fixed_clock(bar_clock(sp500(), T0)),
    )
    service = DecisionService(alloc, audit_log=tmp_path / "a.jsonl")
    bodies = [body(alloc.history, f"o-{i}") for i in range(4)]
    codes: list[int] = []
    shed: list[httpx.Response] = []
    with ServerThread(create_app(service)) as srv:

        def hit(b: bytes) -> None:
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                r = post(c, b)
                codes.append(r.status_code)
                if r.status_code == 503:
                    shed.append(r)

        threads = [threading.Thread(target=hit, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        text = httpx.get(f"{srv.url}/metrics").text
    assert sorted(codes).count(200) >= 1 and 503 in codes, codes
    for r in shed:  # asserted here: an assert inside a client thread could not fail the test
        assert r.headers["retry-after"] == "1"
        assert ErrorResponse.model_validate_json(r.content).error == "overloaded"
    assert 'allocator_shed_total{reason="in_flight"} 0.0' not in text


def test_strategy_pnl_is_attributed_per_account_by_hand() -> None:
    """Two decisions of one account in budgets mode. Trend's intents name only symbol 0 and
    mean reversion's only symbol 1, so each strategy owns its symbol whole, and the P&L
    between the decisions is, per symbol, the shares held times the change of the close."""
    policy = FrozenPolicy.load(untrained_bundle("budgets"))
    market = small_market()
    t1, t2 = 400, 405
    now = {"at": bar_clock(market, t1)}
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=patient(policy), clock=lambda: now["at"]
    )
    service = DecisionService(alloc)
    intents = {"trend": np.eye(6)[0], "mean_reversion": np.eye(6)[1]}

    def request(t: int, rid: str, account: str, **kw: object) -> bytes:
        req = request_from_market(market, t, history=alloc.history, request_id=rid, **kw)
        update = {"strategy_intents": intents, "account_id": account}
        return req.model_copy(update=update).model_dump_json().encode()

    metric = "allocator_strategy_pnl_contribution_currency"
    with ServerThread(create_app(service)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        first = post(c, request(t1, "p-1", "acct-1")).json()
        assert first["status"] == "ok"
        bought = np.array(first["target_qty"], dtype=np.float64)
        assert bought[0] > 0 and bought[1] > 0 and not bought[2:].any()
        held = bought + np.array([0.0, 0.0, 7.0, 0.0, 0.0, 0.0])  # 7 bought elsewhere
        now["at"] = bar_clock(market, t2)
        bad = post(c, request(t2, "p-r", "acct-1", shares=held, equity=-1.0)).json()
        assert bad["status"] == "rejected"  # changes nothing
        assert post(c, request(t2, "p-o", "acct-2", shares=held)).json()["status"] == "ok"
        assert post(c, request(t2, "p-2", "acct-1", shares=held)).json()["status"] == "ok"
        text = c.get("/metrics").text
    p1, p2 = market.close[t1], market.close[t2]
    expected = {
        "trend": held[0] * (p2[0] - p1[0]),
        "mean_reversion": held[1] * (p2[1] - p1[1]),
        "defensive": 0.0,
        "unattributed": 7.0 * (p2[2] - p1[2]),
    }
    assert all(v != 0.0 for k, v in expected.items() if k != "defensive")
    for strategy, pnl in expected.items():
        assert f'{metric}{{strategy_id="{strategy}"}}' in text
        got = service.metrics.registry.get_sample_value(metric, {"strategy_id": strategy})
        assert got == pytest.approx(pnl, rel=1e-12, abs=1e-9), strategy
