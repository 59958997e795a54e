"""The real HTTP service on loopback: status codes, idempotency, kill switch, metrics, shedding, audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
        assert ref["schema"]["oneOf"] == [
            {"$ref": "#/components/schemas/AccountRequest"},
            {"$ref": "#/components/schemas/DecisionRequest"},
        ]


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
    url, service = server
    with httpx.Client(base_url=url, timeout=30) as c:
        # a decided request (the capacity series exist once a decision passed the gates)
        # and a rejected one (273 bars of history, too short): run alone, the test
        # had relied on earlier tests for the one it lacked
        decided = post(c, body(service.allocator.history, "m-1"))
        rejected = post(c, body(273, "m-2"))
        text = c.get("/metrics").text
    assert decided.json()["status"] == "ok", decided.text
    assert rejected.json()["status"] == "rejected", rejected.text
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


def test_a_shed_request_is_answered_after_the_shed_delay(
    policy: FrozenPolicy, tmp_path: Path
) -> None:
    """With one decision in flight (the limit), a second request is shed: its 503 comes
    after ``serving.shed_delay_ms`` (so a client resending at once cannot flood the event
    loop) and well before the running decision ends (the delay holds only the shed one)."""

    def slow(obs: np.ndarray) -> np.ndarray:
        time.sleep(2.0)
        return policy(obs)

    serving = serving_config(
        policy,
        [
            "serving.max_in_flight=1",
            "serving.deadline_ms=60000",
            "serving.max_queue_ms=60000",
            "serving.shed_delay_ms=300",
        ],
    )
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=serving, model=slow,
        clock=fixed_clock(bar_clock(sp500(), T0)),
    )  # fmt: skip
    service = DecisionService(alloc)
    first: list[int] = []
    with ServerThread(create_app(service)) as srv:

        def decide_first() -> None:
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                first.append(post(c, body(alloc.history, "d-1")).status_code)

        runner = threading.Thread(target=decide_first)
        runner.start()
        deadline = time.monotonic() + 20
        while httpx.get(f"{srv.url}/healthz").json()["in_flight"] < 1:
            assert time.monotonic() < deadline, "the first request was never admitted"
            time.sleep(0.01)
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            t0 = time.monotonic()
            shed = post(c, body(alloc.history, "d-2"))
            waited = time.monotonic() - t0
        runner.join()
    assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
    assert ErrorResponse.model_validate_json(shed.content).error == "overloaded"
    assert 0.3 <= waited < 1.8, waited
    assert first == [200]


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
    # defensive given too (no names): a family left out keeps the FeatureBuilder's intents
    intents = {"trend": np.eye(6)[0], "mean_reversion": np.eye(6)[1], "defensive": np.zeros(6)}

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


def _bar_body(t: int, **change: object) -> dict[str, object]:
    m = sp500()

    def day(i: int) -> str:
        return str(np.datetime_as_string(m.dates[i], unit="D")) + "T00:00:00Z"

    return {
        "timestamp": day(t),
        "previous": day(t - 1),
        "symbols": list(m.symbols),
        "close": m.close[t].tolist(),
        "volume": m.volume[t].tolist(),
        "spread_bps": m.spread_bps[t].tolist(),
        "tradable": m.tradable[t].tolist(),
        "benchmark_return": float(m.benchmark_returns[t]),
    } | change


def test_bars_then_account_decisions_over_http(policy: FrozenPolicy, tmp_path: Path) -> None:
    """Bars streamed to ``/v1/bars`` (replays and refusals coded), then a small account
    request decides on the latest bar exactly as the stateless request on the same window;
    the audit log of both replays."""
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=patient(policy), clock=fixed_clock(bar_clock(sp500(), T0))
    )
    service = DecisionService(alloc, audit_log=tmp_path / "audit.jsonl")
    first = T0 - service.market.window_bars + 1
    with ServerThread(create_app(service)) as srv, httpx.Client(base_url=srv.url) as c:
        for t in range(first, T0 + 1):
            r = c.post("/v1/bars", json=_bar_body(t) | ({"previous": None} if t == first else {}))
            assert r.status_code == 200 and r.json()["status"] == "applied", r.text
        ack = r.json()
        assert ack["ready"] and ack["bars_held"] == ack["window_bars"] == service.market.window_bars
        again = c.post("/v1/bars", json=_bar_body(T0)).json()
        assert (again["status"], again["code"]) == ("replay", None)
        for change, code in (
            ({"close": [c_ * 1.01 for c_ in sp500().close[T0].tolist()]}, "bar_conflict"),
            (_bar_body(T0 + 2), "bar_gap"),
            (_bar_body(T0 - service.market.window_bars - 5), "bar_out_of_order"),
            ({"benchmark_return": -2.0}, "bar_invalid"),
        ):
            refused = c.post("/v1/bars", json=_bar_body(T0) | change).json()
            assert (refused["status"], refused["code"]) == ("refused", code), refused
            assert refused["window_sha256"] == ack["window_sha256"]
        assert c.post("/v1/bars", json={"close": "x"}).status_code == 422
        account = {
            "request_id": "acct-1",
            "bar": ack["latest"].replace("+00:00", "Z"),
            "equity": 1.0e6,
            "cash": 1.0e6,
            "buying_power": 1.0e6,
        }
        raw = json.dumps(account).encode()
        assert len(raw) < 4096
        streamed = post(c, raw)
        stateless = post(c, body(service.market.window_bars, "full-1"))
        assert streamed.status_code == stateless.status_code == 200, streamed.text
        a, b = streamed.json(), stateless.json()
        for d in (a, b):
            del d["latency"], d["request_id"]
        assert a == b and a["status"] == "ok"
        assert post(c, raw).headers["idempotent-replay"] == "true"
        old = post(
            c,
            json.dumps(
                {**account, "request_id": "acct-2", "bar": _bar_body(T0 - 1)["timestamp"]}
            ).encode(),
        )
        assert old.json()["reject"]["detail"] == "bar_not_latest"
        unknown = post(c, json.dumps({**account, "bar": "x", "request_id": "acct-3"}).encode())
        assert unknown.status_code == 422 and "bar" in unknown.json()["message"]
        # schema-valid account bodies the byte check once sent to the stateless model
        # (422): the key spelled with an escape, a body padded past 256 KB
        escaped = json.dumps({**account, "request_id": "acct-4"}).replace('"bar"', '"\\u0062ar"')
        padded = json.dumps({**account, "request_id": "acct-5"}).encode() + b" " * 300_000
        for req in (escaped.encode(), padded):
            r = post(c, req)
            assert r.status_code == 200 and r.json()["status"] == "ok", r.text
        # held bars: the last proposal again, or the drifted book; audited and replayed
        target = dict(zip(a["symbols"], a["proposed_weights"], strict=True))
        for rid, hold in (("acct-6", target), ("acct-7", "current")):
            r = post(c, json.dumps({**account, "request_id": rid, "hold_target": hold}).encode())
            held = r.json()
            assert r.status_code == 200 and (held["status"], held["hold"]) == ("ok", True), r.text
        assert held["proposed_weights"] == [0.0] * len(a["symbols"])  # an all-cash book
        r = post(c, json.dumps({**account, "request_id": "acct-8", "hold_target": "x"}).encode())
        assert r.status_code == 422 and "hold_target" in r.json()["message"], r.text
        text = c.get("/metrics").text
    assert 'allocator_bars_total{code="bar_gap",status="refused"} 1.0' in text
    report = replay_audit(tmp_path / "audit.jsonl", FrozenAllocator(policy, environ=ENABLED))
    assert report.ok and report.n_records == 7, report.mismatches


def test_body_limit_holds_while_streaming_without_content_length(
    server: tuple[str, DecisionService],
) -> None:
    """A chunked body (no Content-Length) is cut off at the limit while it streams in."""
    from allocgym.serving import http as http_module

    url, _ = server

    def chunks() -> Iterator[bytes]:
        yield b'{"close": ['
        for _ in range(70):
            yield b"1.0," * 16_384

    limit = http_module.MAX_BAR_BYTES
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/v1/bars", content=chunks(), headers={"content-type": "application/json"})
    assert 70 * 4 * 16_384 > limit
    assert r.status_code == 413 and ErrorResponse.model_validate_json(r.content).error == (
        "body_too_large"
    )


def test_overload_sheds_before_reading_the_body(policy: FrozenPolicy, tmp_path: Path) -> None:
    """With the one admitted decision held in the model, a request whose body is not even
    JSON is answered 503 with Retry-After: it was shed before its body was read."""
    entered, release = threading.Event(), threading.Event()

    def held(obs: np.ndarray) -> np.ndarray:
        entered.set()
        release.wait(30)
        return policy(obs)

    serving = serving_config(
        policy,
        ["serving.max_in_flight=1", "serving.deadline_ms=60000", "serving.max_queue_ms=5000"],
    )
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=serving, model=held,
        clock=fixed_clock(bar_clock(sp500(), T0)),
    )  # fmt: skip
    service = DecisionService(alloc)
    answers: list[httpx.Response] = []
    with ServerThread(create_app(service)) as srv, httpx.Client(base_url=srv.url) as c:

        def held_request() -> None:
            with httpx.Client(base_url=srv.url, timeout=60) as held_client:
                answers.append(post(held_client, body(alloc.history, "held")))

        first = threading.Thread(target=held_request)
        first.start()
        assert entered.wait(30)
        shed = post(c, b"{this is not json")
        release.set()
        first.join(30)
    assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
    assert ErrorResponse.model_validate_json(shed.content).error == "overloaded"
    assert [r.status_code for r in answers] == [200]


def test_a_stalled_body_is_answered_408_and_frees_its_slot(
    policy: FrozenPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends its headers and part of the body, then nothing: answered 408
    after ``BODY_TIMEOUT_S`` (not held until it disconnects), so with one admission slot
    the next request is decided."""
    import socket
    from urllib.parse import urlsplit

    from allocgym.serving import http as http_module

    monkeypatch.setattr(http_module, "BODY_TIMEOUT_S", 0.5)
    serving = serving_config(policy, ["serving.max_in_flight=1"])
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=serving, clock=fixed_clock(bar_clock(sp500(), T0))
    )
    with ServerThread(create_app(DecisionService(alloc))) as srv:
        where = urlsplit(srv.url)
        with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"request_id": '
            )
            started = time.perf_counter()
            answer = sock.recv(65536).decode()
            waited = time.perf_counter() - started
        assert answer.startswith("HTTP/1.1 408"), answer
        assert '"error":"request_timeout"' in answer and 0.3 < waited < 5.0
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            assert post(c, body(alloc.history, "after")).status_code == 200


def test_short_load_of_account_requests_is_served_without_errors(
    policy: FrozenPolicy, tmp_path: Path
) -> None:
    """A short load test: 8 clients post 200 account requests on the streamed window; every
    one is decided (no 503 with a patient queue limit), each exactly once, and the log
    replays."""
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=patient(policy), clock=fixed_clock(bar_clock(sp500(), T0))
    )
    service = DecisionService(alloc, audit_log=tmp_path / "audit.jsonl")
    first = T0 - service.market.window_bars + 1
    codes: list[int] = []
    lock = threading.Lock()
    with ServerThread(create_app(service)) as srv:
        with httpx.Client(base_url=srv.url) as c:
            for t in range(first, T0 + 1):
                c.post("/v1/bars", json=_bar_body(t) | ({"previous": None} if t == first else {}))

        def client(k: int) -> None:
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                for i in range(25):
                    account = {
                        "request_id": f"load-{k}-{i}", "bar": _bar_body(T0)["timestamp"],
                        "equity": 1.0e6, "cash": 1.0e6, "buying_power": 1.0e6,
                    }  # fmt: skip
                    r = post(c, json.dumps(account).encode())
                    with lock:
                        codes.append(r.status_code)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert codes == [200] * 200
    ok = service.metrics.registry.get_sample_value("allocator_decisions_total", {"status": "ok"})
    assert ok == 200
    report = replay_audit(tmp_path / "audit.jsonl", FrozenAllocator(policy, environ=ENABLED))
    assert report.ok and report.n_records == 200, report.mismatches


def test_sustained_overload_resends_at_once_and_the_counts_add_up(policy: FrozenPolicy) -> None:
    """The bench's overload test for 2 × 1 s against a real server whose model takes 5 ms:
    16 clients resend every shed request at once, after settling requests and capacity
    windows of 2 clients. Some are served and some shed, every 503 carries Retry-After,
    the client's counts match the server's own (decisions, sheds), and the rates and the
    ratio come from them."""
    from allocgym.bench.serve import overload

    def slow(obs: np.ndarray) -> np.ndarray:
        time.sleep(0.005)
        return policy(obs)

    # The default 20 ms queue limit sheds; a long model deadline keeps the decisions "ok".
    serving = serving_config(policy, ["serving.deadline_ms=5000"])
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=serving, model=slow,
        clock=fixed_clock(bar_clock(sp500(), T0)),
    )  # fmt: skip
    service = DecisionService(alloc)
    first = T0 - service.market.window_bars + 1
    account = {
        "request_id": "__RID__", "bar": _bar_body(T0)["timestamp"],
        "equity": 1.0e6, "cash": 1.0e6, "buying_power": 1.0e6,
    }  # fmt: skip
    with ServerThread(create_app(service)) as srv:
        with httpx.Client(base_url=srv.url) as c:
            for t in range(first, T0 + 1):
                c.post("/v1/bars", json=_bar_body(t) | ({"previous": None} if t == first else {}))
        row = overload(
            srv.url, json.dumps(account).encode(), clients=16, concurrency=2, seconds=2.0,
            rounds=2, settle=10,
        )  # fmt: skip
    served, shed = row["served"], row["shed_503"]
    assert served > 0 and shed > 0 and row["other"] == 0 and row["cap_served"] > 0
    assert row["no_retry_after"] == 0
    metric = service.metrics.registry.get_sample_value
    decided = metric("allocator_decisions_total", {"status": "ok"})
    server_shed = sum(
        metric("allocator_shed_total", {"reason": r}) or 0.0 for r in ("in_flight", "queue_time")
    )
    # Every request was decided or shed once (a shed one was never decided); the 2 × 10
    # settling requests are in neither window.
    assert decided >= row["cap_served"] + served and server_shed >= row["cap_shed"] + shed
    assert decided + server_shed == row["cap_served"] + row["cap_shed"] + served + shed + 20
    assert row["wall_s"] >= 2.0
    assert row["served_per_s"] == served / row["wall_s"]
    assert row["shed_per_s"] == shed / row["wall_s"]
    assert row["served/capacity"] == row["served_per_s"] / row["capacity_per_s"]
    assert row["ratio_min"] <= row["ratio_max"]
    assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert 0 < row["loadgen_cpu/wall"] <= 1
    with pytest.raises(ValueError, match="clients=0"):
        overload(srv.url, b"{}", clients=0, concurrency=2, seconds=1.0)


def test_one_server_against_two_spreads_the_clients_and_the_counts_add_up(
    policy: FrozenPolicy,
) -> None:
    """The bench's workers test for 2 × 1 s of each kind against two real servers, each
    with its own service, fed the same bars, whose model takes 10 ms (a sleep, so the two
    decide side by side in one process). Both serve in the spread windows, each service's
    own decision count matches the client's counts (settling included), the rates and the
    ratio come from them, and two servers serve more than one."""
    from allocgym.bench.serve import _seed, scale_out

    def slow(obs: np.ndarray) -> np.ndarray:
        time.sleep(0.01)
        return policy(obs)

    def service() -> DecisionService:
        alloc = FrozenAllocator(
            policy, environ=ENABLED, serving=patient(policy), model=slow,
            clock=fixed_clock(bar_clock(sp500(), T0)),
        )  # fmt: skip
        return DecisionService(alloc)

    services = [service(), service()]
    first = T0 - services[0].market.window_bars + 1
    bars = [_bar_body(t) | ({"previous": None} if t == first else {}) for t in range(first, T0 + 1)]
    account = {
        "request_id": "__RID__", "bar": _bar_body(T0)["timestamp"],
        "equity": 1.0e6, "cash": 1.0e6, "buying_power": 1.0e6,
    }  # fmt: skip
    with ServerThread(create_app(services[0])) as one, ServerThread(create_app(services[1])) as two:
        assert _seed([one.url, two.url], bars) == bars[-1]["timestamp"]
        row = scale_out(
            [one.url, two.url], json.dumps(account).encode(), concurrency=4, seconds=2.0,
            rounds=2, settle=5,
        )  # fmt: skip
        with pytest.raises(ValueError, match="concurrency=1"):
            scale_out([one.url, two.url], b"{}", concurrency=1, seconds=1.0)
        with pytest.raises(ValueError, match="1 servers"):
            scale_out([one.url], b"{}", concurrency=2, seconds=1.0)
    assert [s.market.bars_held for s in services] == [services[0].market.window_bars] * 2
    decided = [
        s.metrics.registry.get_sample_value("allocator_decisions_total", {"status": "ok"})
        for s in services
    ]
    by_server = [int(n) for n in row["served_by_server"].split(",")]
    assert row["workers"] == 2 and row["clients"] == 4
    assert row["shed_1"] == row["shed_k"] == row["other"] == 0
    assert min(by_server) > 0 and sum(by_server) == row["served_k"]
    # The first server is settled (5 requests) before both kinds of window, the second
    # before the spread ones only; a patient service decides every request.
    assert decided == [row["served_1"] + by_server[0] + 2 * 2 * 5, by_server[1] + 2 * 5]
    assert row["wall_s_1"] >= 2.0 and row["wall_s_k"] >= 2.0
    assert row["served_per_s_1"] == row["served_1"] / row["wall_s_1"]
    assert row["served_per_s_k"] == row["served_k"] / row["wall_s_k"]
    assert row["served_k/1"] == row["served_per_s_k"] / row["served_per_s_1"]
    # the whole-run ratio weights the rounds by their wall times: near, not inside, their range
    assert 0.95 * row["ratio_min"] <= row["served_k/1"] <= 1.05 * row["ratio_max"]
    assert row["served_k/1"] > 1.1  # two 10 ms sleeps side by side: about 2 (1.9-2.1 seen)
    assert 0 < row["p99_ms_1"] and 0 < row["p99_ms_k"]
    assert 0 < row["loadgen_cpu/wall"] <= 1


def test_the_bar_feed_needs_the_admin_token(policy: FrozenPolicy) -> None:
    """Every decision reads the bars, so posting one is an admin operation: 401 without a
    bearer token, 403 with a wrong one (the decide token included), applied with the
    admin token."""
    admin, decide = "bars-admin-" + "a" * 20, "bars-decide-" + "d" * 20
    service = DecisionService(FrozenAllocator(policy, environ=ENABLED, serving=patient(policy)))
    app = create_app(service, admin_token=admin, decide_token=decide)
    bar = _bar_body(T0) | {"previous": None}
    with ServerThread(app) as srv, httpx.Client(base_url=srv.url) as c:
        missing = c.post("/v1/bars", json=bar)
        wrong = c.post("/v1/bars", json=bar, headers={"Authorization": f"Bearer {decide}"})
        assert service.market.bars_held == 0
        ok = c.post("/v1/bars", json=bar, headers={"Authorization": f"Bearer {admin}"})
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 403
    assert ok.status_code == 200 and ok.json()["status"] == "applied"
    assert service.market.bars_held == 1


@pytest.mark.slow
def test_bench_serve_streams_bars_then_loads_and_bursts_a_real_server() -> None:
    """``allocgym bench serve`` end to end at a small size: the served processes are fed
    their window through ``POST /v1/bars``, then the first is loaded with account
    requests, compared with a server deciding on a thread, with two loaded together and
    a pinned one against an unpinned one, overloaded and hit with a burst."""
    from allocgym.bench.serve import run

    stages: list[str] = []
    rows = run(
        (20,), calls=20, http_assets=(20,), http_requests=60, http_seconds=20, concurrency=2,
        overload_clients=8, overload_seconds=1.0, burst_connections=40, workers=2,
        progress=stages.append,
    )  # fmt: skip
    assert [s.split(":")[1].split()[0] for s in stages] == ["building", "in-process", "HTTP"]
    kinds = {r["bench"]: r for r in rows}
    assert set(kinds) == {
        "in_process", "streaming", "http", "worker", "workers", "pinning", "overload", "burst",
    }  # fmt: skip
    assert kinds["streaming"]["window_bars"] == 301
    assert kinds["streaming"]["decide_p50_us"] > 0
    assert kinds["streaming"]["service_p50_us"] > kinds["streaming"]["decide_p50_us"]
    http = kinds["http"]
    assert http["encoding"] == "account" and http["body_kb"] < 4
    assert http["requests"] == 60 and set(http["codes"].split(",")) <= {
        f"{code}:{n}" for code in ("200", "503") for n in range(61)
    }
    over = kinds["overload"]
    assert over["clients"] == 8 and over["served"] > 0 and over["no_retry_after"] == 0
    assert over["capacity_per_s"] > 0 and over["other"] == 0
    burst = kinds["burst"]
    assert burst["served"] + burst["shed_503"] == 40 and burst["other"] == 0
    workers = kinds["workers"]
    assert workers["workers"] == 2 and workers["clients"] == 2 and workers["other"] == 0
    by_server = [int(n) for n in workers["served_by_server"].split(",")]
    assert min(by_server) > 0 and sum(by_server) == workers["served_k"]
    assert workers["served_1"] > 0 and workers["wall_s_1"] >= 20 and workers["wall_s_k"] >= 20
    assert workers["served_k/1"] == workers["served_per_s_k"] / workers["served_per_s_1"]
    pinned = kinds["pinning"]
    assert pinned["cpu"] == min(os.sched_getaffinity(0)) and pinned["other"] == 0
    assert pinned["served_per_s_free"] > 0 and pinned["served_per_s_pinned"] > 0
    assert pinned["pinned/free"] == pinned["served_per_s_pinned"] / pinned["served_per_s_free"]
    # server CPU per answered request, read from /proc: a decision costs well under 50 ms
    assert 0 < pinned["cpu_ms/request_free"] < 50 and 0 < pinned["cpu_ms/request_pinned"] < 50
    worker = kinds["worker"]
    assert worker["served_per_s_thread"] > 0 and worker["served_per_s_process"] > 0
    assert (
        worker["process/thread"] == worker["served_per_s_process"] / worker["served_per_s_thread"]
    )
    assert 0 < worker["cpu_ms/request_process"] < 50 and worker["other"] == 0


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_decide_behind_a_root_path_is_admitted(policy: FrozenPolicy) -> None:
    """Served under a root path (a proxy prefix: the server puts it in front of every
    path), ``/api/v1/decide`` still passes the admission front and is decided."""
    from starlette.testclient import TestClient

    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=patient(policy),
        clock=fixed_clock(bar_clock(sp500(), T0)),
    )  # fmt: skip
    app = create_app(DecisionService(alloc))
    with TestClient(app, root_path="/api") as c:
        r = c.post(
            "/api/v1/decide",
            content=body(alloc.history, "root-1"),
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"


# ----------------------------------------------------------------------------- CPU pinning


def test_pin_cpus_pins_the_process_to_the_cpus_named() -> None:
    """In a child process (pinning this one would slow the suite): ``pin_cpus`` sets the
    affinity to exactly the CPUs named and returns them."""
    script = (
        "import os; from allocgym.serving.http import pin_cpus; "
        "c = max(os.sched_getaffinity(0)); "
        "print(sorted(pin_cpus([c])) == sorted(os.sched_getaffinity(0)) == [c])"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize(
    ("cpus", "message"),
    [
        ("9999", "this process may run on CPUs"),
        ("", "give comma-separated CPU ids"),
        ("0,x", "give comma-separated CPU ids"),
        ("-1", "give comma-separated CPU ids"),
    ],
)
def test_cli_serve_refuses_cpus_before_loading(
    tmp_path: Path, capsys, cpus: str, message: str
) -> None:
    from allocgym.cli import main

    before = os.sched_getaffinity(0)
    # an empty folder is no bundle: the refusal comes before anything is loaded or locked
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--policy", str(tmp_path), "--cpus", cpus, "--audit-log",
              str(tmp_path / "audit.jsonl")])  # fmt: skip
    assert exit_.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "audit.jsonl").exists()
    assert os.sched_getaffinity(0) == before


def test_cli_serve_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """A real `allocgym serve`: answers, then Ctrl-C (SIGINT) shuts it down with exit 0 and
    the audit log anchored (binding its own socket had let uvicorn's re-raised
    KeyboardInterrupt out: exit 130)."""
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log = tmp_path / "audit.jsonl"
    cli = "from allocgym.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", cli, "serve", "--policy", str(untrained_bundle()),
         "--port", str(port), "--audit-log", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "Traceback" not in out and (tmp_path / "audit.jsonl.head").is_file()
