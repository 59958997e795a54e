"""Bearer tokens on the control plane, through a real HTTP server on loopback: 401 without
a token, 403 with a wrong one; a non-loopback bind without an admin token is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from test_serving_support import (
    ENABLED,
    bar_clock,
    fixed_clock,
    patient,
    small_market,
    untrained_bundle,
)

from allocgym.cli import main
from allocgym.errors import ConfigError
from allocgym.serving import DecisionService, FrozenAllocator, FrozenPolicy, request_from_market
from allocgym.serving.http import (
    ADMIN_TOKEN_ENV,
    DECIDE_TOKEN_ENV,
    ServerThread,
    _bearer_denied,
    check_tokens,
    create_app,
    is_loopback,
    read_token,
    serve,
)

T = 400
ADMIN = "admin-" + "a" * 26
DECIDER = "decide-" + "d" * 25
KILL = {"engaged": True, "reason": "drill", "actor": "test"}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def policy() -> FrozenPolicy:
    return FrozenPolicy.load(untrained_bundle())


def _service(policy: FrozenPolicy) -> DecisionService:
    alloc = FrozenAllocator(
        policy,
        environ=ENABLED,
        serving=patient(policy),
        clock=fixed_clock(bar_clock(small_market(), T)),
    )
    return DecisionService(alloc)


def _body(service: DecisionService, rid: str) -> bytes:
    req = request_from_market(small_market(), T, history=service.allocator.history, request_id=rid)
    return req.model_dump_json().encode()


@pytest.fixture(scope="module")
def guarded(policy: FrozenPolicy) -> Iterator[tuple[str, DecisionService]]:
    service = _service(policy)
    app = create_app(service, admin_token=ADMIN, decide_token=DECIDER)
    with ServerThread(app) as srv:
        yield srv.url, service


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# ----------------------------------------------------------------------------- HTTP


def test_kill_switch_needs_the_admin_token(guarded: tuple[str, DecisionService]) -> None:
    url, service = guarded
    with httpx.Client(base_url=url, timeout=60) as c:
        for headers in ({}, {"authorization": "Basic dXNlcjpwdw=="}, {"authorization": "Bearer"}):
            r = c.post("/v1/kill-switch", json=KILL, headers=headers)
            assert r.status_code == 401, headers
            assert r.json()["error"] == "unauthorized"
            assert r.headers["www-authenticate"].startswith("Bearer")
        for wrong in (DECIDER, ADMIN[:-1], ADMIN + "x"):
            r = c.post("/v1/kill-switch", json=KILL, headers=_bearer(wrong))
            assert r.status_code == 403 and r.json()["error"] == "forbidden"
        assert service.allocator.operator_kill is False  # nothing got through
        r = c.post("/v1/kill-switch", json=KILL, headers=_bearer(ADMIN))
        assert r.status_code == 200 and r.json()["kill_switch"] is True
        assert service.allocator.operator_kill is True
        r = c.post("/v1/kill-switch", json={**KILL, "engaged": False}, headers=_bearer(ADMIN))
        assert r.status_code == 200 and service.allocator.operator_kill is False


def test_decide_needs_the_decide_token(guarded: tuple[str, DecisionService]) -> None:
    url, service = guarded
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/v1/decide", content=_body(service, "a1"), headers=JSON)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        r = c.post("/v1/decide", content=_body(service, "a2"), headers={**JSON, **_bearer(ADMIN)})
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        assert service.metrics.decisions.labels(status="ok")._value.get() == 0
        r = c.post("/v1/decide", content=_body(service, "a3"), headers={**JSON, **_bearer(DECIDER)})
        assert r.status_code == 200 and r.json()["status"] == "ok"
        assert c.get("/healthz").status_code == 200  # read-only endpoints stay open
        assert c.get("/metrics").status_code == 200


def test_openapi_states_the_bearer_scheme(guarded: tuple[str, DecisionService]) -> None:
    url, _ = guarded
    doc = httpx.get(f"{url}/openapi.json", timeout=60).json()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }
    for path in ("/v1/kill-switch", "/v1/decide"):
        op = doc["paths"][path]["post"]
        assert op["security"] == [{"bearerAuth": []}]
        assert {"401", "403"} <= set(op["responses"]), path


def test_without_tokens_decide_is_open_and_the_kill_switch_loopback_only(
    policy: FrozenPolicy,
) -> None:
    service = _service(policy)
    with ServerThread(create_app(service)) as srv, httpx.Client(base_url=srv.url) as c:
        r = c.post("/v1/decide", content=_body(service, "o1"), headers=JSON, timeout=60)
        assert r.status_code == 200
        assert c.post("/v1/kill-switch", json=KILL, timeout=60).status_code == 200
        # uvicorn itself turns a loopback peer's X-Forwarded-For into the client address;
        # X-Real-IP it leaves alone, so this reaches the app's own proxy check
        proxied = {"X-Real-IP": "203.0.113.9"}
        assert c.post("/v1/kill-switch", json=KILL, headers=proxied, timeout=60).status_code == 401
        doc = c.get("/openapi.json").json()
        assert "security" not in doc["paths"]["/v1/decide"]["post"]

    def request(client: str, headers: list[tuple[bytes, bytes]] | None = None) -> Request:
        return Request(
            {
                "type": "http",
                "method": "POST",
                "path": "/v1/kill-switch",
                "query_string": b"",
                "headers": headers or [],
                "client": (client, 5000),
                "server": ("10.0.0.1", 8000),
                "scheme": "http",
            }
        )

    assert _bearer_denied(request("127.0.0.1"), None) is None
    assert _bearer_denied(request("::1"), None) is None
    remote = _bearer_denied(request("10.0.0.7"), None)
    assert remote is not None and remote.status_code == 401
    assert b"loopback clients only" in remote.body and b"--admin-token-file" in remote.body
    # a reverse proxy on the same host: its peer is loopback, the client is not
    for header in (b"x-forwarded-for", b"forwarded", b"x-real-ip", b"via"):
        proxied = _bearer_denied(request("127.0.0.1", [(header, b"203.0.113.9")]), None)
        assert proxied is not None and proxied.status_code == 401, header
        assert b"never through a proxy" in proxied.body


# ----------------------------------------------------------------------------- binding


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.4", False),
        ("myhost.example", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_non_loopback_bind_without_admin_token_is_refused(policy: FrozenPolicy) -> None:
    service = _service(policy)
    with pytest.raises(ConfigError, match=r"refusing to bind '0\.0\.0\.0' without an admin") as e:
        serve(service, "0.0.0.0", 8000)
    assert "--admin-token-file" in str(e.value) and ADMIN_TOKEN_ENV in str(e.value)


def test_cli_serve_refuses_a_public_bind_before_loading(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    # an empty folder is no bundle: the refusal comes before anything is loaded or locked
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--policy", str(tmp_path), "--host", "0.0.0.0", "--audit-log",
              str(tmp_path / "audit.jsonl")])  # fmt: skip
    assert exit_.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "refusing to bind '0.0.0.0' without an admin token" in err
    assert not (tmp_path / "audit.jsonl").exists()


# ----------------------------------------------------------------------------- tokens


def test_read_token_from_file_or_environment(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text(ADMIN + "\n")
    f.chmod(0o600)
    assert read_token(ADMIN_TOKEN_ENV, f, environ={}) == ADMIN
    assert read_token(DECIDE_TOKEN_ENV, None, environ={DECIDE_TOKEN_ENV: DECIDER}) == DECIDER
    assert read_token(ADMIN_TOKEN_ENV, None, environ={}) is None
    with pytest.raises(ConfigError, match="keep one of them"):
        read_token(ADMIN_TOKEN_ENV, f, environ={ADMIN_TOKEN_ENV: ADMIN})
    with pytest.raises(ConfigError, match="does not exist"):
        read_token(ADMIN_TOKEN_ENV, tmp_path / "missing", environ={})


@pytest.mark.parametrize(
    ("token", "match"),
    [
        ("short", "5 characters, fewer than 16"),
        ("a" * 20 + " b", "characters other than letters"),
        ("=" * 16, "repeats 1 distinct characters, fewer than 5: it is guessable"),
        ("abab" * 8 + "cd", "repeats 4 distinct characters"),
    ],
)
def test_weak_or_unsendable_tokens_are_refused_without_echoing_them(token: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        read_token(ADMIN_TOKEN_ENV, None, environ={ADMIN_TOKEN_ENV: token})
    assert token not in str(err.value) and "secrets.token_urlsafe" in str(err.value)


def test_one_secret_in_two_roles_is_refused(policy: FrozenPolicy) -> None:
    """The admin token reused as the decide token would let every decide client work the
    kill switch; an audit key reused as a token, forge the log's anchor."""
    cases = [
        ((ADMIN, ADMIN, None), "admin token and the decide token"),
        ((ADMIN, DECIDER, DECIDER), "decide token and the audit key"),
        ((None, DECIDER, DECIDER), "decide token and the audit key"),
        ((ADMIN, None, ADMIN), "admin token and the audit key"),
    ]
    for args, match in cases:
        with pytest.raises(ConfigError, match=match) as err:
            check_tokens(*args)
        assert ADMIN not in str(err.value) and DECIDER not in str(err.value)
    check_tokens(ADMIN, DECIDER, "audit-key-" + "k" * 10)
    check_tokens(None, None, None)
    with pytest.raises(ConfigError, match="admin token and the decide token"):
        create_app(_service(policy), admin_token=ADMIN, decide_token=ADMIN)


def test_cli_serve_refuses_the_admin_token_as_decide_token(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv(ADMIN_TOKEN_ENV, ADMIN)
    monkeypatch.setenv(DECIDE_TOKEN_ENV, ADMIN)
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--policy", str(tmp_path), "--audit-log", str(tmp_path / "audit.jsonl")])
    assert exit_.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "the admin token and the decide token are the same secret" in err
    assert ADMIN not in err and not (tmp_path / "audit.jsonl").exists()


def test_a_token_file_readable_by_others_warns(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text(ADMIN)
    f.chmod(0o644)
    with pytest.warns(UserWarning, match="readable by other users .* chmod 600"):
        assert read_token(ADMIN_TOKEN_ENV, f, environ={}) == ADMIN


def test_a_token_request_body_is_never_read_before_authorization(
    guarded: tuple[str, DecisionService],
) -> None:
    """An unauthenticated body that is not even JSON gets 401, not 400: the body is not
    parsed for anyone without the token."""
    url, _ = guarded
    r = httpx.post(f"{url}/v1/decide", content=b"{not json", headers=JSON, timeout=60)
    assert r.status_code == 401
    r = httpx.post(f"{url}/v1/kill-switch", content=b"{not json", headers=JSON, timeout=60)
    assert r.status_code == 401
    r = httpx.post(
        f"{url}/v1/kill-switch", content=b"{not json", headers={**JSON, **_bearer(ADMIN)}
    )
    assert r.status_code == 400 and json.loads(r.content)["error"] == "invalid_json"
