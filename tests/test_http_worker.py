"""The decision process behind the HTTP app (``serve --decision-worker process``): the same
answers as the worker thread, one state owner, merged metrics, the kill switch across a
restart, the audit anchored at shutdown, start failures and a dead process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_serving_support import ENABLED, small_market, untrained_bundle

from allocgym.bench.serve import _account, _bars
from allocgym.observability import AuditLog, read_anchor, verify_log
from allocgym.serving import FrozenAllocator, replay_audit
from allocgym.serving.http import ServerThread, create_app
from allocgym.serving.market import MarketState
from allocgym.serving.worker import ProcessWorker, ServiceSpec, ThreadWorker, WorkerError

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def bundle() -> Path:
    return untrained_bundle()


def _spec(bundle: Path, log: Path, *overrides: str) -> ServiceSpec:
    # patient limits: a loaded test machine must not turn a slow call into a 503 or fallback
    patient = ("serving.deadline_ms=5000", "serving.max_queue_ms=5000", *overrides)
    return ServiceSpec(bundle, overrides=patient, audit_log=log, environ=ENABLED)


def _session(url: str, bars: list[dict[str, Any]], accounts: list[dict[str, Any]]) -> Any:
    """Every kind of call on a fresh server: bars (applied, a replay, a refusal),
    decisions, an idempotent replay, a conflict, the kill switch both ways; each answer's
    status and body (less what the clock sets), and the metrics as parsed families."""
    out: list[Any] = []

    def kept(r: httpx.Response) -> Any:
        body = r.json()
        for key in ("latency", "decided_at", "at"):
            body.pop(key, None)
        return r.status_code, r.headers.get("idempotent-replay"), body

    with httpx.Client(base_url=url, timeout=60) as c:
        for bar in bars:
            ack = c.post("/v1/bars", json=bar)
            assert ack.json()["status"] == "applied", ack.text
        out.append(kept(c.post("/v1/bars", json=bars[-1])))  # replay
        out.append(kept(c.post("/v1/bars", json=bars[0])))  # out of order
        for account in accounts:
            out.append(kept(c.post("/v1/decide", json=account)))
        out.append(kept(c.post("/v1/decide", json=accounts[0])))  # stored answer
        out.append(kept(c.post("/v1/decide", json=accounts[0] | {"cash": 1.0})))  # 409
        out.append(kept(c.post("/v1/kill-switch", json={"engaged": True, "reason": "t"})))
        out.append(kept(c.post("/v1/decide", json=accounts[1] | {"request_id": "k-1"})))
        out.append(kept(c.post("/v1/kill-switch", json={"engaged": False, "reason": "t"})))
        out.append(kept(c.post("/v1/decide", json=accounts[1] | {"request_id": "k-2"})))
        health = c.get("/healthz").json()
        metrics = c.get("/metrics").text
    return out, health, metrics


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Counter and gauge samples by name and labels (families must not repeat)."""
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families
        for s in f.samples
        if not s.name.endswith("_created") and f.type in ("counter", "gauge")
    }


def test_a_spec_crosses_to_the_decision_process_whole(tmp_path: Path) -> None:
    """Every field of a :class:`ServiceSpec` survives the JSON it is sent as (the key as
    hex, paths as text, the flags' mapping)."""
    spec = ServiceSpec(
        tmp_path / "bundle",
        overrides=("serving.max_in_flight=8",),
        public_key=tmp_path / "signer.pem.pub",
        audit_log=tmp_path / "audit.jsonl",
        anchor_every=7,
        audit_key=b"\x00key\xff" * 4,
        audit_fsync=True,
        environ={"TRADING_ALLOCATOR_ENABLED": "true"},
    )
    sent = json.loads(json.dumps(spec.to_json()))
    assert ServiceSpec.from_json(sent) == spec
    bare = ServiceSpec(tmp_path / "bundle")
    assert ServiceSpec.from_json(json.loads(json.dumps(bare.to_json()))) == bare


@pytest.mark.parametrize("audit_fsync", [False, True])
def test_audit_fsync_syncs_each_record_before_it_is_answered(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, audit_fsync: bool
) -> None:
    """``serve --audit-fsync``: the service's log is synced after every record (an
    answered decision survives a power loss); without it, only before each anchor."""
    spec = ServiceSpec(
        bundle, audit_log=tmp_path / "a.jsonl", environ=ENABLED, audit_fsync=audit_fsync
    )
    svc = spec.service()
    try:
        synced: list[int] = []
        real_fsync = os.fsync
        monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
        for i in range(3):
            svc.audit.append({"i": i})
        assert len(synced) == (3 if audit_fsync else 0)
    finally:
        svc.audit.close()


def test_the_decision_process_answers_as_the_worker_thread(bundle: Path, tmp_path: Path) -> None:
    """The same bars and calls to a server deciding on a thread and to one deciding in a
    decision process: the same statuses and bodies, the same counters, one family per
    metric with the admission series from the HTTP process; the process's audit log is
    anchored at shutdown and replays, and a new process restores an engaged switch."""
    market = small_market()
    alloc = FrozenAllocator.load(bundle, environ=ENABLED)
    bars = _bars(market, MarketState(alloc).window_bars)
    base = _account(alloc, market, bars[-1]["timestamp"])
    accounts = [
        base | {"request_id": f"a-{i}", "equity": base["equity"] * (1 + i / 4)} for i in range(4)
    ]

    thread = ThreadWorker(_spec(bundle, tmp_path / "thread.jsonl").service())
    try:
        with ServerThread(create_app(thread)) as srv:
            by_thread = _session(srv.url, bars, accounts)
    finally:
        thread.stop()
    log = tmp_path / "process.jsonl"
    process = ProcessWorker(_spec(bundle, log))
    assert process.records == 0 and process.pid != os.getpid()
    with ServerThread(create_app(process)) as srv:
        by_process = _session(srv.url, bars, accounts)
    assert process.process.returncode == 0

    answers = [status for status, _, _ in by_process[0]]
    assert answers == [200, 200, 200, 200, 200, 200, 200, 409, 200, 200, 200, 200], by_process[0]
    assert by_process[0] == by_thread[0]
    statuses = [body.get("status") for _, _, body in by_process[0][2:]]
    assert statuses[:5] == ["ok"] * 5 and statuses[7] == "killed" and statuses[9] == "ok"
    assert by_process[0][6][1] == "true"  # the stored decision, not decided again
    assert by_thread[1]["decision_worker"] == "thread"
    assert by_process[1] == by_thread[1] | {"decision_worker": "process"}

    thread_samples, process_samples = _samples(by_thread[2]), _samples(by_process[2])
    assert process_samples == thread_samples
    assert process_samples[("allocator_decisions_total", (("status", "ok"),))] == 5.0
    assert process_samples[("allocator_audit_records", ())] == 8.0
    assert ("allocator_shed_total", (("reason", "in_flight"),)) in process_samples

    # one writer, anchored when the decision process closed its log at shutdown
    assert verify_log(log, anchor=True).n_records == 8 == read_anchor(log).n_records
    report = replay_audit(log, FrozenAllocator.load(bundle, environ=ENABLED))
    assert report.n_records == 8 and not report.mismatches

    # the switch engaged and released: a restart starts released; engaged: restored
    again = ProcessWorker(_spec(bundle, log))
    try:
        assert again.records == 8 and not again.allocator.operator_kill
    finally:
        again.stop()
    engaged = ProcessWorker(_spec(bundle, log))
    with ServerThread(create_app(engaged)) as srv:
        r = httpx.post(f"{srv.url}/v1/kill-switch", json={"engaged": True}, timeout=60)
        assert r.status_code == 200 and httpx.get(f"{srv.url}/healthz").json()["kill_switch"]
    restored = ProcessWorker(_spec(bundle, log))
    try:
        assert restored.allocator.operator_kill and restored.allocator.describe()["kill_switch"]
    finally:
        restored.stop()


def test_a_decision_process_that_cannot_start_raises_its_error(
    bundle: Path, tmp_path: Path
) -> None:
    """The audit log already has a writer: the child's refusal is raised here, with its
    message, and the child has exited."""
    log = tmp_path / "held.jsonl"
    with AuditLog(log):
        with pytest.raises(WorkerError, match="is being written by another process") as err:
            ProcessWorker(_spec(bundle, log))
    assert f"(pid {os.getpid()}, named in" in str(err.value) and "give this one its own" in str(
        err.value
    )


def test_a_dead_decision_process_is_answered_500_and_unhealthy(
    bundle: Path, tmp_path: Path
) -> None:
    """Once the decision process dies, decide, bars, the kill switch, metrics and
    /healthz answer 500 ``internal_error`` naming its exit code (nothing hangs)."""
    worker = ProcessWorker(_spec(bundle, tmp_path / "audit.jsonl"))
    with ServerThread(create_app(worker)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        assert c.get("/healthz").status_code == 200
        os.kill(worker.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while c.get("/healthz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        answers = [
            c.get("/healthz"),
            c.post("/v1/decide", content=json.dumps({"request_id": "x"}), headers=JSON),
            c.post("/v1/bars", json={"timestamp": "x"}),
            c.post("/v1/kill-switch", json={"engaged": True}),
            c.get("/metrics"),
        ]
    for r in answers:
        assert r.status_code == 500, r.text
        assert r.json()["error"] == "internal_error"
        assert f"pid {worker.pid}) exited with code -9" in r.json()["message"]


def test_the_bench_counts_the_decision_process_cpu() -> None:
    """``allocgym bench serve``'s CPU per request of a server adds its live children's
    (the decision process) to its own: a parent that only waits on a child burning 0.5 s
    of CPU reads at least that."""
    from allocgym.bench.serve import _Served

    burn = "import time\nwhile time.process_time() < 0.5: pass\ntime.sleep(60)"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])",
        ]
    )
    try:
        served = _Served("http://unused", parent.pid)
        deadline = time.monotonic() + 30
        while served.cpu_s() < 0.5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert served.cpu_s() >= 0.5
        assert _Served("http://unused", os.getpid()).cpu_s() > 0
    finally:
        for child in Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split():
            os.kill(int(child), signal.SIGKILL)
        parent.wait()


def test_a_call_that_cannot_be_built_or_sent_shifts_no_answer(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call whose frame cannot be built (memory) is answered 500 and changes nothing:
    the next decisions get their own answers. A call that fails while being written (part
    of it may be out) takes the decision process down: every later call is answered 500,
    never with another request's answer."""
    import allocgym.serving.worker as worker_module

    market = small_market()
    alloc = FrozenAllocator.load(bundle, environ=ENABLED)
    bars = _bars(market, MarketState(alloc).window_bars)
    account = _account(alloc, market, bars[-1]["timestamp"])
    built = worker_module._frame

    def short_of_memory(header: dict[str, Any], payload: bytes = b"") -> bytes:
        if header.get("op") == "decide" and b'"big"' in payload:
            raise MemoryError
        return built(header, payload)

    monkeypatch.setattr(worker_module, "_frame", short_of_memory)
    worker = ProcessWorker(_spec(bundle, tmp_path / "audit.jsonl"))
    with ServerThread(create_app(worker)) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        for bar in bars:
            assert c.post("/v1/bars", json=bar).json()["status"] == "applied"
        assert c.post("/v1/decide", json=account | {"request_id": "big"}).status_code == 500
        for rid in ("b-1", "b-2"):
            r = c.post("/v1/decide", json=account | {"request_id": rid})
            assert r.status_code == 200 and r.json()["request_id"] == rid, r.text
        kill = c.post("/v1/kill-switch", json={"engaged": True})
        assert kill.status_code == 200 and kill.json()["kill_switch"] is True

        def broken(frame: bytes) -> None:
            raise MemoryError

        assert worker._writer is not None
        monkeypatch.setattr(worker._writer, "write", broken)
        assert c.post("/v1/decide", json=account | {"request_id": "b-3"}).status_code == 500
        for r in (c.post("/v1/decide", json=account | {"request_id": "b-4"}), c.get("/healthz")):
            assert r.status_code == 500
            assert "was stopped: a call could not be written (MemoryError)" in r.json()["message"]
    assert worker.process.returncode == 0  # it anchored its log and exited
    assert verify_log(tmp_path / "audit.jsonl", anchor=True).n_records == 3


def test_the_decision_process_imports_nothing_from_the_working_directory(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module in the working directory (often the audit log's) that shadows one the
    decision process imports is not imported, and the process has its own session (a
    Ctrl-C reaches the HTTP process, which closes it; with no controlling terminal a
    `stty tostop` cannot stop it at its first message, a review's repro)."""
    (tmp_path / "orjson.py").write_text("raise SystemExit('imported from the working directory')\n")
    monkeypatch.chdir(tmp_path)
    worker = ProcessWorker(_spec(bundle, tmp_path / "audit.jsonl"))
    try:
        assert os.getsid(worker.pid) == os.getpgid(worker.pid) == worker.pid != os.getsid(0)
    finally:
        worker.stop()
    assert worker.process.returncode == 0


def test_a_decision_process_that_dies_at_once_is_named_by_its_exit_code(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dead before it read its start frame (an import failure, an OOM kill): the start
    fails naming the exit code, not a "connection reset" (a review's repro)."""
    import allocgym.serving.worker as worker_module

    monkeypatch.setattr(worker_module, "CHILD_CODE", "import os, time; time.sleep(1); os._exit(7)")
    with pytest.raises(WorkerError, match="exited with code 7 while starting"):
        ProcessWorker(_spec(bundle, tmp_path / "audit.jsonl"))


def test_the_decision_process_imports_from_where_this_process_does(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child gets this interpreter's import path (a zipapp or vendored install
    imports allocgym from there, a review's repro), less the working directory."""
    import allocgym.serving.worker as worker_module

    vendored = tmp_path / "vendored"
    vendored.mkdir()
    (vendored / "allocgym_probe.py").write_text("import os\nos._exit(9)\n")
    monkeypatch.syspath_prepend(str(vendored))
    monkeypatch.setattr(worker_module, "CHILD_CODE", "import allocgym_probe")
    with pytest.raises(WorkerError, match="exited with code 9 while starting"):
        ProcessWorker(_spec(bundle, tmp_path / "audit.jsonl"))
    monkeypatch.chdir(vendored)  # the working directory stays out, as -P wants
    assert str(vendored) not in worker_module._child_environ(3)["PYTHONPATH"].split(os.pathsep)
    # ... unless PYTHONPATH names it (WORKDIR /app, PYTHONPATH=/app: a review's repro)
    monkeypatch.setenv("PYTHONPATH", str(vendored))
    assert str(vendored) in worker_module._child_environ(3)["PYTHONPATH"].split(os.pathsep)
    # a normal install: allocgym's folder is on the path already (site-packages), and
    # the child keeps the path's order, the standard library before it (a review's repro)
    import allocgym

    monkeypatch.delenv("PYTHONPATH")
    site = str(tmp_path / "site-packages")
    monkeypatch.setattr(sys, "path", ["", "/usr/lib/python3.11", site])
    monkeypatch.setattr(allocgym, "__file__", f"{site}/allocgym/__init__.py")
    assert worker_module._child_environ(3)["PYTHONPATH"].split(os.pathsep) == [
        "/usr/lib/python3.11",
        site,
    ]
    # run from its own folder (WORKDIR /app): that folder leads, as it led this process
    app = str(vendored)
    monkeypatch.setattr(sys, "path", [app, "/usr/lib/python3.11"])
    monkeypatch.setattr(allocgym, "__file__", f"{app}/allocgym/__init__.py")
    assert worker_module._child_environ(3)["PYTHONPATH"].split(os.pathsep) == [
        app,
        "/usr/lib/python3.11",
    ]


def test_a_bundle_the_served_schemas_refuse_fails_the_start_with_its_error(
    bundle: Path, tmp_path: Path
) -> None:
    """A symbol no request could name fails the decision process's start with the one
    line thread mode prints, not a traceback and "exited with code 1" (a review's
    repro); the audit log it had opened is released."""
    import shutil

    from test_serving_support import reseal_bundle

    odd = tmp_path / "bundle"
    shutil.copytree(bundle, odd)

    def edit(manifest: dict) -> None:
        manifest["symbols"][1] = "BRK B"

    reseal_bundle(odd, edit)
    log = tmp_path / "audit.jsonl"
    with pytest.raises(WorkerError, match=r"bundle symbols \['BRK B'\] do not match .* re-export"):
        ProcessWorker(_spec(odd, log))
    AuditLog(log).close()  # not held by a dead child


def test_a_bundle_that_changed_during_the_start_is_refused(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HTTP process and the decision process load the bundle each: if what they
    loaded differs (a deploy swapped it in between), the start is refused, naming both."""
    import allocgym.serving.worker as worker_module

    here = worker_module._identity
    monkeypatch.setattr(worker_module, "_identity", lambda a: here(a) | {"sha256": "swapped"})
    with pytest.raises(WorkerError, match="changed while the service started") as err:
        ProcessWorker(_spec(bundle, tmp_path / "audit.jsonl"))
    assert "'sha256': 'swapped'" in str(err.value)


def test_an_answer_out_of_turn_stops_the_decision_process(bundle: Path, tmp_path: Path) -> None:
    """Answers are matched to calls by the id each echoes: an answer that is not for the
    oldest waiting call (a broken stream) stops the decision process, and no caller gets
    another's answer."""
    import asyncio

    worker = ProcessWorker(_spec(bundle, tmp_path / "audit.jsonl"))
    with ServerThread(create_app(worker)) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        assert c.get("/metrics").status_code == 200
        stray: asyncio.Future[Any] = asyncio.Future(loop=asyncio.new_event_loop())
        worker._pending.appendleft((0, stray))  # a call the child never got
        r = c.get("/metrics")
        assert r.status_code == 500 and "answer 2 came for call 0" in r.json()["message"]
        assert isinstance(stray.exception(), WorkerError)  # failed, never given an answer
        assert c.get("/healthz").status_code == 500
    assert worker.process.returncode == 0
