"""The HTTP contract under a schema-driven fuzzer: Schemathesis against the real service on
loopback, strict control-plane types, one error shape, a request schema that states what
validation enforces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import httpx
import jsonschema_rs
import numpy as np
import pytest
from test_serving_support import ENABLED, bar_clock, exported_bundle, fixed_clock, patient, sp500

from allocgym.serving import (
    DecisionService,
    FrozenAllocator,
    FrozenPolicy,
    replay_audit,
    request_from_market,
)
from allocgym.serving.http import (
    ERROR_CODES,
    MAX_CONTROL_BYTES,
    ErrorCode,
    ErrorResponse,
    Health,
    ServerThread,
    create_app,
)
from allocgym.serving.market import BAR_CODES

T0 = 6100
SCHEMATHESIS_SEED = 20
"""Fixed: a failure reproduces with ``st run URL/openapi.json --checks all --seed 20``
(plus ``-H "Authorization: Bearer <ADMIN_TOKEN>"``)."""
SCHEMATHESIS_EXAMPLES = 50
"""Per operation and phase: every operation is covered, the run stays well under a minute."""
ADMIN_TOKEN = "contract-admin-" + "a" * 24
"""The served contract is the production one: the kill switch needs this bearer token."""
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def policy() -> FrozenPolicy:
    return FrozenPolicy.load(exported_bundle())


@pytest.fixture(scope="module")
def served(
    policy: FrozenPolicy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, DecisionService]]:
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=patient(policy), clock=fixed_clock(bar_clock(sp500(), T0))
    )
    # A 1-entry idempotency cache: the fuzzer reuses short request ids ("0", "A") and would
    # otherwise meet the 409 conflict check far more often than the allocator.
    audit = tmp_path_factory.mktemp("contract") / "audit.jsonl"
    service = DecisionService(alloc, audit_log=audit, cache_size=1)
    with ServerThread(create_app(service, admin_token=ADMIN_TOKEN)) as srv:
        yield srv.url, service


def _body(history: int, rid: str) -> dict:
    req = request_from_market(sp500(), T0, history=history, request_id=rid)
    return json.loads(req.model_dump_json())


def _error_of(r: httpx.Response, status: int) -> ErrorResponse:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    err = ErrorResponse.model_validate_json(r.content)
    assert err.error == ERROR_CODES[status]
    return err


def test_kill_switch_refuses_coerced_booleans(served: tuple[str, DecisionService]) -> None:
    url, service = served
    with httpx.Client(base_url=url, timeout=30, headers=ADMIN_AUTH) as c:
        assert c.post("/v1/kill-switch", json={"engaged": False}).status_code == 200
        n_audit = len(service.audit)
        for bad in (0, 1, "false", "true", "", None, [], {}, 0.0):
            r = c.post("/v1/kill-switch", json={"engaged": bad, "actor": "pytest"})
            err = _error_of(r, 422)
            assert err.message.startswith("engaged: "), err.message
            assert err.details[0].loc == ["engaged"]
        for body, field in (
            ({"engaged": True, "reason": 5}, "reason"),
            ({"engaged": True, "actor": False}, "actor"),
            ({"engaged": True, "by": "me"}, "by"),
            ({"reason": "drill"}, "engaged"),
        ):
            err = _error_of(c.post("/v1/kill-switch", json=body), 422)
            assert err.message.startswith(f"{field}: "), err.message
        assert c.get("/healthz").json()["kill_switch"] is False  # nothing engaged
        assert len(service.audit) == n_audit  # nor audited
        on = c.post("/v1/kill-switch", json={"engaged": True, "reason": "drill"})
        assert on.status_code == 200 and on.json()["kill_switch"] is True
        off = c.post("/v1/kill-switch", json={"engaged": False})
        assert off.json()["kill_switch"] is False and off.json()["previous"] is True


def test_decide_refuses_coerced_types(served: tuple[str, DecisionService]) -> None:
    url, service = served
    good = _body(service.allocator.history, "t-0")
    n_decided = len(service.audit)
    with httpx.Client(base_url=url, timeout=30, headers=ADMIN_AUTH) as c:
        for field, bad in (
            ("kill_switch", 0),
            ("reduce_only", "true"),
            ("equity", True),
            ("cash", "1e6"),
            ("timestamp", 1_700_000_000),
            ("timestamp", "1700000000"),
            ("timestamp", "2023-12-29T00:00:00"),  # no offset: not RFC 3339
            ("positions", {"AAPL": True}),
            ("symbols", ["AAPL "] * 20),
        ):
            r = c.post("/v1/decide", json={**good, field: bad})
            err = _error_of(r, 422)
            assert err.message.startswith(f"{field}"), (field, err.message)
        rows = good["close"]
        for bad_close, says in (
            ([[True] * 20, *rows[1:]], "element [0][0]"),
            ([[None] * 20, *rows[1:]], "element [0][0]"),
            ([["1.5"] * 20, *rows[1:]], "element [0][0]"),
            ([row[:19] for row in rows], "expected 20 columns"),
            ([rows[0], rows[1][:3], *rows[2:]], "rectangular"),
            ([], "expected shape"),
        ):
            err = _error_of(c.post("/v1/decide", json={**good, "close": bad_close}), 422)
            assert err.message.startswith("close: ") and says in err.message, err.message
    assert len(service.audit) == n_decided  # none of them reached the allocator


def test_every_error_has_the_documented_shape(served: tuple[str, DecisionService]) -> None:
    url, service = served
    h = service.allocator.history
    with httpx.Client(base_url=url, timeout=30, headers=ADMIN_AUTH) as c:
        for path in ("/v1/decide", "/v1/kill-switch"):
            _error_of(c.post(path, content=b'{"engaged": ', headers=_json()), 400)
            _error_of(c.post(path, content=b"\xff\xfe", headers=_json()), 400)
            _error_of(c.post(path, content=b"", headers=_json()), 400)
            err = _error_of(
                c.post(path, content=b"{}", headers={"content-type": "text/plain"}), 415
            )
            assert "application/json" in err.message
            _error_of(c.post(path, content=b"{}"), 415)  # no Content-Type at all
            _error_of(c.post(path, content=b"[]", headers=_json()), 422)
            # nesting past the JSON parsers' depth: 400, also with a "bar" key (a 500
            # from the account-request check's RecursionError once)
            deep = b'{"bar": 1, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
            _error_of(c.post(path, content=deep, headers=_json()), 400)
        big = json.dumps({"engaged": False, "reason": "x" * MAX_CONTROL_BYTES}).encode()
        _error_of(c.post("/v1/kill-switch", content=big, headers=_json()), 413)
        first = c.post("/v1/decide", json=_body(h, "e-1"))
        assert first.status_code == 200
        conflict = c.post("/v1/decide", json={**_body(h, "e-1"), "cash": 5.0e5})
        assert "already decided" in _error_of(conflict, 409).message
        _error_of(c.get("/v2/nothing"), 404)
        err = _error_of(c.put("/v1/decide", content=b"{}"), 405)
        assert "POST" in c.put("/v1/decide", content=b"{}").headers["allow"]
        assert err.details == []


def test_a_valid_request_that_cannot_be_decided_is_a_coded_200(
    served: tuple[str, DecisionService],
) -> None:
    url, service = served
    h = service.allocator.history
    stale = {**_body(h, "c-1"), "timestamp": "2001-01-02T00:00:00Z"}
    short = _body(h - 1, "c-2")
    unknown = {**_body(h, "c-3"), "symbols": ["ZZZZ", *_body(h, "c-3")["symbols"][1:]]}
    with httpx.Client(base_url=url, timeout=30, headers=ADMIN_AUTH) as c:
        for body, code, detail in (
            (stale, "STALE_INPUT", "stale"),
            (short, "INVALID_INPUT", "history_length"),
            (unknown, "INVALID_INPUT", "unknown_symbol"),
            ({**_body(h, "c-4"), "equity": -1.0}, "INVALID_INPUT", "account"),
        ):
            r = c.post("/v1/decide", json=body)
            assert r.status_code == 200, r.text
            d = r.json()
            assert d["status"] == "rejected" and d["reject"]["code"] == code
            assert d["reject"]["detail"] == detail


def test_openapi_states_the_served_contract(served: tuple[str, DecisionService]) -> None:
    url, service = served
    alloc = service.allocator
    with httpx.Client(base_url=url, timeout=30, headers=ADMIN_AUTH) as c:
        spec = c.get("/openapi.json").json()
        health = c.get("/healthz").json()
    schemas = spec["components"]["schemas"]
    assert set(get_args(ErrorCode)) == {*ERROR_CODES.values(), "http_error"}
    assert schemas["ErrorResponse"]["properties"]["error"]["enum"] == list(get_args(ErrorCode))
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    statuses = {
        ("/v1/decide", "post"): {"200", "400", "408", "409", "413", "415", "422", "500", "503"},
        ("/v1/kill-switch", "post"): {
            "200",
            "400",
            "401",
            "403",
            "408",
            "413",
            "415",
            "422",
            "500",
        },
        ("/v1/bars", "post"): {"200", "400", "401", "403", "408", "413", "415", "422", "500"},
        ("/healthz", "get"): {"200", "500"},
        ("/metrics", "get"): {"200", "500"},
    }
    for (path, method), expected in statuses.items():
        responses = spec["paths"][path][method]["responses"]
        assert set(responses) == expected, (path, set(responses))
        for status in expected - {"200"}:
            assert responses[status]["content"] == {"application/json": {"schema": ref}}
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    ok = spec["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"] == {"$ref": "#/components/schemas/Health"}
    assert (
        set(Health.model_fields)
        == set(health)
        == {*alloc.describe(), "status", "in_flight", "decision_worker"}
    )
    assert schemas["KillSwitchRequest"]["properties"]["engaged"] == {
        "type": "boolean",
        "title": "Engaged",
        "description": "True engages (flatten everything), False releases.",
    }
    bar_codes = schemas["BarAck"]["properties"]["code"]["anyOf"][0]["enum"]
    assert tuple(bar_codes) == BAR_CODES
    account = schemas["AccountRequest"]
    assert account["additionalProperties"] is False and "bar" in account["required"]
    assert "close" not in account["properties"] and "equity" in account["properties"]
    bar = schemas["Bar"]
    assert bar["properties"]["close"]["minItems"] == bar["properties"]["close"]["maxItems"]
    req = schemas["DecisionRequest"]
    assert req["additionalProperties"] is False
    n, max_bars = alloc.n_assets, alloc.serving.max_history_bars
    assert req["properties"]["symbols"]["minItems"] == req["properties"]["symbols"]["maxItems"] == n
    close = req["properties"]["close"]
    assert (close["minItems"], close["maxItems"]) == (1, max_bars)
    assert close["items"]["minItems"] == close["items"]["maxItems"] == n
    # a request our own client builds is valid against the served schema
    validator = jsonschema_rs.validator_for({**req, "components": spec["components"]})
    body = _body(alloc.history, "s-1")
    assert validator.is_valid(body)
    assert not validator.is_valid({**body, "kill_switch": 0})
    assert not validator.is_valid({**body, "close": [*body["close"][:1], body["close"][1][:5]]})


def test_schemathesis_finds_no_contract_failure(
    served: tuple[str, DecisionService], policy: FrozenPolicy, tmp_path: Path
) -> None:
    """``st run --checks all`` over every operation (examples, coverage, fuzzing and the
    stateful phase: kill switch on/off interleaved with decisions and reused request ids)."""
    url, service = served
    decided = len(service.audit)
    report = tmp_path / "schemathesis.json"
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--checks", "all", "--seed", str(SCHEMATHESIS_SEED),
        "--header", f"Authorization: {ADMIN_AUTH['Authorization']}",
        "--max-examples", str(SCHEMATHESIS_EXAMPLES), "--generation-database", "none",
        "--workers", "1", "--no-color", "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-8000:]
    run = json.loads(report.read_text())
    assert run["failures"] == [] and run["errors"] == [], run
    # a warning means part of the spec went untested (e.g. an unresolvable $ref)
    assert not any(run["warnings"].values()), run["warnings"]
    assert run["operations"]["tested"] == run["operations"]["total"] == 5
    phases = {name: p["status"] for name, p in run["phases"].items()}
    assert phases == {
        "examples": "skip", "coverage": "success", "fuzzing": "success", "stateful": "success",
    }  # fmt: skip
    # schema-valid requests reached the allocator (coded decisions), every decision and
    # kill-switch change was audited, and the log replays byte for byte
    assert len(service.audit) > decided + 10
    assert service.audit.verify().ok
    replayed = replay_audit(
        service.audit.path, FrozenAllocator(policy, environ=ENABLED, serving=patient(policy))
    )
    assert replayed.ok, replayed.mismatches


def _bar(t: int) -> dict:
    m = sp500()
    return {
        "timestamp": str(np.datetime_as_string(m.dates[t], unit="D")) + "T00:00:00Z",
        "symbols": list(m.symbols),
        "close": m.close[t].tolist(),
        "volume": m.volume[t].tolist(),
        "spread_bps": m.spread_bps[t].tolist(),
        "benchmark_return": float(m.benchmark_returns[t]),
    }


def _json() -> dict[str, str]:
    return {"content-type": "application/json"}


def _documented(spec: dict, path: str, method: str, status: int) -> object:
    """A validator of the JSON schema the spec documents for one response."""
    content = spec["paths"][path][method]["responses"][str(status)]["content"]
    return jsonschema_rs.validator_for(
        {**content["application/json"]["schema"], "components": spec["components"]}
    )


def test_every_answer_matches_its_documented_schema(served: tuple[str, DecisionService]) -> None:
    """Decisions (a rejection included) and every error status, each validated against
    the schema the OpenAPI document gives for that operation and status."""
    url, service = served
    h = service.allocator.history
    big = json.dumps({"engaged": False, "reason": "x" * MAX_CONTROL_BYTES}).encode()
    stale = "2001-01-02T00:00:00Z"
    with httpx.Client(base_url=url, timeout=30, headers=ADMIN_AUTH) as c:
        spec = c.get("/openapi.json").json()
        answers = [
            ("/v1/decide", c.post("/v1/decide", json=_body(h, "v-1")), 200),
            # right after v-1: the fixture's idempotency cache holds one request id
            ("/v1/decide", c.post("/v1/decide", json={**_body(h, "v-1"), "cash": 1.0}), 409),
            ("/v1/decide", c.post("/v1/decide", json={**_body(h, "v-2"), "timestamp": stale}), 200),
            ("/v1/decide", c.post("/v1/decide", content=b"{", headers=_json()), 400),
            ("/v1/decide", c.post("/v1/decide", content=b"{}"), 415),
            ("/v1/decide", c.post("/v1/decide", json={"equity": "x"}), 422),
            ("/v1/kill-switch", c.post("/v1/kill-switch", json={"engaged": False}), 200),
            ("/v1/bars", c.post("/v1/bars", json=_bar(T0)), 200),
            ("/v1/bars", c.post("/v1/bars", json={**_bar(T0), "close": "x"}), 422),
            ("/v1/kill-switch", c.post("/v1/kill-switch", content=big, headers=_json()), 413),
            ("/v1/kill-switch", c.post("/v1/kill-switch", json={"engaged": 0}), 422),
        ]
        health = c.get("/healthz")
    assert answers[2][1].json()["status"] == "rejected"  # a business rejection is a 200
    for path, r, status in answers:
        assert r.status_code == status, (path, r.status_code, r.text)
        validator = _documented(spec, path, "post", status)
        assert validator.is_valid(r.json()), (path, status, r.text)
    assert _documented(spec, "/healthz", "get", 200).is_valid(health.json())
    # the validators are not vacuous: a decision is not an error and vice versa
    assert not _documented(spec, "/v1/decide", "post", 200).is_valid(answers[5][1].json())
    assert not _documented(spec, "/v1/decide", "post", 422).is_valid(answers[0][1].json())


def test_an_unexpected_failure_is_a_documented_500(
    policy: FrozenPolicy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decision whose audit record cannot be written is answered 500 ``internal_error``
    in the error shape and is not remembered: the same request id decides afresh."""
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=patient(policy), clock=fixed_clock(bar_clock(sp500(), T0))
    )
    service = DecisionService(alloc, audit_log=tmp_path / "audit.jsonl")
    body = _body(alloc.history, "f-1")

    def disk_full(record: object) -> None:
        raise OSError("No space left on device")

    with ServerThread(create_app(service)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        spec = c.get("/openapi.json").json()
        with monkeypatch.context() as patch:
            patch.setattr(service.audit, "append", disk_full)
            failed = c.post("/v1/decide", json=body)
        err = _error_of(failed, 500)
        assert "OSError" in err.message and err.details == []
        assert _documented(spec, "/v1/decide", "post", 500).is_valid(failed.json())
        counted = c.get("/metrics").text
        retried = c.post("/v1/decide", json=body)
    assert retried.status_code == 200 and "idempotent-replay" not in retried.headers
    assert len(service.audit) == 1
    # nor counted: the failed decision left no decision in the metrics
    decided = [ln for ln in counted.splitlines() if ln.startswith("allocator_decisions_total{")]
    assert decided and all(ln.endswith(" 0.0") for ln in decided), decided
