"""The audit log's single writer and anchored head: truncation, deletion and re-chaining
are detected given the anchor, a second writer is refused, reopening verifies from the
anchor, and the service's records carry what a reviewer needs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from test_serving_support import (
    ENABLED,
    bar_clock,
    fixed_clock,
    patient,
    small_market,
    untrained_bundle,
)

from allocgym import observability
from allocgym.cli import main
from allocgym.observability import (
    GENESIS_HASH,
    AuditChainError,
    AuditLog,
    AuditLogLockedError,
    AuditLogRefused,
    adopt_log,
    anchor_path,
    canonical_json,
    read_anchor,
    verify_log,
)
from allocgym.serving import DecisionService, FrozenAllocator, FrozenPolicy, request_from_market
from allocgym.serving.schemas import decode_array

KEY = b"audit-hmac-key-for-tests-0123456"


def _write(path: Path, n: int, **kw) -> list[str]:
    with AuditLog(path, **kw) as log:
        return [log.append({"i": i, "w": [0.1 * i, -0.0]}) for i in range(n)]


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _rechain(records: list[dict]) -> bytes:
    """A valid chain of ``records``: what an attacker writes after deleting one."""
    out, prev = [], GENESIS_HASH
    for seq, record in enumerate(records):
        entry = {"seq": seq, "prev_hash": prev, "record": record}
        prev = hashlib.sha256(canonical_json(entry)).hexdigest()
        out.append(canonical_json({**entry, "hash": prev}) + b"\n")
    return b"".join(out)


def _crash_after(path: Path, n: int, anchor_every: int) -> None:
    """Append ``n`` records in a process that dies without closing the log."""
    code = (
        "import os, sys; from allocgym.observability import AuditLog; "
        f"log = AuditLog(sys.argv[1], anchor_every={anchor_every}); "
        f"[log.append({{'i': i}}) for i in range({n})]; os._exit(0)"
    )
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr


class _Served(NamedTuple):
    bundle: Path
    policy: FrozenPolicy
    market: Any
    t: int
    alloc: FrozenAllocator
    path: Path
    service: DecisionService


def _served(tmp_path: Path, request_ids: tuple[str, ...]) -> _Served:
    """A service on the tests' untrained bundle that decided ``request_ids`` at bar 400
    of the small market, its log (``audit.jsonl``) still open."""
    bundle = untrained_bundle()
    policy = FrozenPolicy.load(bundle)
    market, t = small_market(), 400
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=patient(policy), clock=fixed_clock(bar_clock(market, t))
    )
    path = tmp_path / "audit.jsonl"
    service = DecisionService(alloc, audit_log=path)
    for rid in request_ids:
        service.decide(request_from_market(market, t, history=alloc.history, request_id=rid))
    return _Served(bundle, policy, market, t, alloc, path, service)


def _records(path: Path) -> list[dict]:
    return [json.loads(raw)["record"] for raw in _lines(path)]


# ----------------------------------------------------------------------------- the anchor


def test_anchor_is_written_at_open_every_k_records_and_at_close(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog(path, anchor_every=3)
    anchor = read_anchor(path)
    assert anchor is not None and (anchor.n_records, anchor.head, anchor.offset) == (
        0,
        GENESIS_HASH,
        0,
    )
    hashes = [log.append({"i": i}) for i in range(4)]
    anchor = read_anchor(path)
    assert anchor is not None and anchor.n_records == 3 and anchor.head == hashes[2]
    assert anchor.offset == sum(len(line) for line in _lines(path)[:3])
    log.close()
    anchor = read_anchor(path)
    assert anchor is not None and anchor.n_records == 4 and anchor.head == hashes[3]
    assert anchor.offset == path.stat().st_size and not anchor.signed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "a.jsonl.head", "a.jsonl.lock"]
    with pytest.raises(ValueError, match="closed"):
        log.append({"i": 9})


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_anchor_every_must_be_a_positive_integer(tmp_path: Path, bad) -> None:
    with pytest.raises(ValueError, match=f"anchor_every = {bad!r}"):
        AuditLog(tmp_path / "a.jsonl", anchor_every=bad)


def test_an_intact_log_verifies_against_its_anchor(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    hashes = _write(path, 5)
    report = verify_log(path, anchor=True)
    assert report.ok and report.n_records == 5 and report.head == hashes[-1]
    assert report.anchor is not None and report.anchor.n_records == 5


# ----------------------------------------------------------------------------- tampering


def test_truncation_to_an_empty_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 5)
    path.write_bytes(b"")
    assert verify_log(path, anchor=False).ok  # the chain alone cannot see it
    with pytest.raises(AuditChainError, match="holds 0 records, its anchor 5") as err:
        verify_log(path)
    assert err.value.line == 1


def test_dropping_the_last_records_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 5)
    path.write_bytes(b"".join(_lines(path)[:3]))
    report = verify_log(path, raise_error=False)
    assert not report.ok and report.bad_line == 4 and report.n_records == 3
    assert "cut from the end" in report.reason


def test_a_deleted_log_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 2)
    path.unlink()
    with pytest.raises(AuditChainError, match="holds 0 records, its anchor 2"):
        verify_log(path)
    with pytest.raises(AuditChainError, match="truncated or deleted"):
        AuditLog(path)  # and no writer starts a fresh chain over it


def test_an_empty_anchored_log_may_be_removed(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 0)
    path.unlink()
    with AuditLog(path) as log:
        assert len(log) == 0 and log.head == GENESIS_HASH
        log.append({"i": 0})
    assert verify_log(path, anchor=True).n_records == 1


def test_deleting_a_record_breaks_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 5)
    lines = _lines(path)
    path.write_bytes(b"".join(lines[:2] + lines[3:]))
    with pytest.raises(AuditChainError, match="seq 3, expected 2") as err:
        verify_log(path)
    assert err.value.line == 3


def test_deleting_a_record_and_rechaining_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 5)
    records = _records(path)
    path.write_bytes(_rechain(records[:2] + records[3:]))
    assert verify_log(path, anchor=False).ok  # a valid chain of 4
    with pytest.raises(AuditChainError, match="holds 4 records, its anchor 5"):
        verify_log(path)


def test_rechaining_below_the_anchor_with_records_after_it_is_detected(tmp_path: Path) -> None:
    """The anchor covers 4 records and 2 follow; one of the first 4 is deleted, the chain
    recomputed and a record appended to keep the count: record 4 no longer hashes to the
    anchored head."""
    path = tmp_path / "a.jsonl"
    _crash_after(path, 6, anchor_every=4)
    anchor = read_anchor(path)
    assert anchor is not None and anchor.n_records == 4
    records = _records(path)
    path.write_bytes(_rechain([*records[:1], *records[2:], {"i": 99}]))
    report = verify_log(path, raise_error=False)
    assert not report.ok and report.bad_line == 4 and "anchored head" in report.reason
    with pytest.raises(AuditChainError, match="not intact"):
        AuditLog(path)


def test_a_deleted_anchor_fails_when_the_anchor_is_required(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 3)
    anchor_path(path).unlink()
    assert verify_log(path).ok  # optional by default (logs written before anchors existed)
    report = verify_log(path, anchor=True, raise_error=False)
    assert not report.ok and "head file" in report.reason and "missing" in report.reason


def test_a_signed_anchor_cannot_be_forged_without_the_key(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 4, key=KEY)
    anchor = read_anchor(path, KEY)
    assert anchor is not None and anchor.signed and anchor.n_records == 4
    assert verify_log(path, key=KEY).ok
    # delete a record, recompute the chain and write a matching anchor, unsigned ...
    records = _records(path)
    path.write_bytes(_rechain(records[1:]))
    body = {
        "version": 1,
        "n_records": 3,
        "head": json.loads(_lines(path)[-1])["hash"],
        "offset": path.stat().st_size,
        "anchored_at": anchor.anchored_at,
    }
    anchor_path(path).write_bytes(canonical_json(body) + b"\n")
    assert verify_log(path).ok  # without the key the forgery passes ...
    with pytest.raises(AuditChainError, match="not signed, but a key was given"):
        verify_log(path, key=KEY)
    # ... and signed with another key
    import hmac

    body["hmac"] = hmac.new(b"x" * 32, canonical_json(body), hashlib.sha256).hexdigest()
    anchor_path(path).write_bytes(canonical_json(body) + b"\n")
    with pytest.raises(AuditChainError, match="HMAC does not match"):
        verify_log(path, key=KEY)
    with pytest.raises(AuditChainError, match="HMAC does not match"):
        AuditLog(path, key=KEY)


def test_a_malformed_anchor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 1)
    anchor_path(path).write_text('{"n_records": "many"}')
    with pytest.raises(AuditChainError, match="not an anchor"):
        verify_log(path)


# ----------------------------------------------------------------------------- one writer


_SECOND_WRITER = textwrap.dedent(
    """
    import sys
    from allocgym.observability import AuditLog, AuditLogLockedError
    try:
        AuditLog(sys.argv[1])
    except AuditLogLockedError as err:
        print(err)
        sys.exit(3)
    print("opened")
    """
)


def _second_writer(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _SECOND_WRITER, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_writer_process_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    import os

    path = tmp_path / "a.jsonl"
    log = AuditLog(path)
    log.append({"i": 0})
    res = _second_writer(path)
    assert res.returncode == 3, res.stdout + res.stderr
    assert f"pid {os.getpid()}" in res.stdout and "one writer per log" in res.stdout
    log.append({"i": 1})  # the first writer is unaffected
    log.close()
    res = _second_writer(path)
    assert res.returncode == 0 and "opened" in res.stdout, res.stdout + res.stderr
    assert verify_log(path, anchor=True).n_records == 2


def _finishes(fn: Callable[[], None], seconds: float = 30.0) -> bool:
    """Run ``fn`` on a daemon thread with the cyclic collector off (its cycles live until
    ``fn`` collects them); whether it returned within ``seconds`` (a deadlocked thread is
    left behind), re-raising what it raised."""
    import gc
    import threading

    raised: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as err:  # handed to the test's thread
            raised.append(err)

    gc.disable()
    try:
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(timeout=seconds)
    finally:
        gc.enable()
    if raised:
        raise raised[0]
    return not worker.is_alive()


def test_a_log_collected_while_another_opens_does_not_deadlock(tmp_path: Path) -> None:
    """The garbage collector may finalize an unreferenced AuditLog at any allocation,
    also while this thread opens another log under the writers' registry lock (seen as a
    suite that hung in DecisionService.__init__): the release waits for that section
    instead of taking the lock again."""
    import gc
    from unittest import mock

    import allocgym.observability as obs

    def open_with_collection() -> None:
        old = AuditLog(tmp_path / "old.jsonl")
        old.append({"i": 0})
        old.cycle = old  # only the cyclic collector frees it
        del old
        real = obs.read_anchor

        def collecting(*args: object, **kw: object) -> object:
            gc.collect()  # as an allocation inside the section could
            return real(*args, **kw)

        with mock.patch.object(obs, "read_anchor", collecting):
            new = AuditLog(tmp_path / "new.jsonl")
        new.append({"i": 0})
        new.close()

    assert _finishes(open_with_collection), "opening a log deadlocked on a collected one's release"
    # the collected log was released (anchored, unlocked): a new writer may open it
    with AuditLog(tmp_path / "old.jsonl") as again:
        assert len(again) == 1
    assert verify_log(tmp_path / "old.jsonl", anchor=True).n_records == 1

    # a second handle of the same writer collected inside an append (the writer's mutex
    # held): released after it, the first handle writing on
    def append_with_collection() -> None:
        first, second = AuditLog(tmp_path / "new.jsonl"), AuditLog(tmp_path / "new.jsonl")
        second.cycle = second
        del second
        real = obs.canonical_json

        def collecting(obj: object) -> bytes:
            gc.collect()
            return real(obj)

        with mock.patch.object(obs, "canonical_json", collecting):
            first.append({"i": 1})
        assert first._writer.handles == 1
        first.append({"i": 2})
        first.close()

    assert _finishes(append_with_collection), "an append deadlocked on a collected handle's release"
    assert verify_log(tmp_path / "new.jsonl", anchor=True).n_records == 3


def test_handles_in_one_process_share_one_writer(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    first, second = AuditLog(path), AuditLog(tmp_path / "." / "a.jsonl")
    first.append({"i": 0})
    second.append({"i": 1})
    first.append({"i": 2})
    assert len(first) == len(second) == 3 and first.head == second.head
    first.close()
    second.append({"i": 3})  # the writer lives while a handle does
    second.close()
    assert verify_log(path, anchor=True).n_records == 4
    assert isinstance(AuditLogLockedError("x"), RuntimeError)


# ----------------------------------------------------------------------------- reopen


def test_reopen_verifies_from_the_anchor_on(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _crash_after(path, 6, anchor_every=4)
    assert read_anchor(path).n_records == 4
    # a record after the anchor is modified: reopening refuses to continue the chain
    lines = _lines(path)
    lines[5] = lines[5].replace(b'"i":5', b'"i":7')
    path.write_bytes(b"".join(lines))
    with pytest.raises(AuditChainError, match="line 6: hash does not match"):
        AuditLog(path)
    # a record before the anchor is modified: reopening trusts the anchored prefix (it
    # checks the anchored record only) and verify finds it
    _write(tmp_path / "b.jsonl", 4)
    lines = _lines(tmp_path / "b.jsonl")
    lines[1] = lines[1].replace(b'"i":1', b'"i":8')
    (tmp_path / "b.jsonl").write_bytes(b"".join(lines))
    with AuditLog(tmp_path / "b.jsonl") as log:
        assert len(log) == 4
    with pytest.raises(AuditChainError, match="line 2: hash does not match"):
        verify_log(tmp_path / "b.jsonl")


def test_reopen_continues_the_chain_and_anchors_it(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    hashes = _write(path, 3)
    with AuditLog(path) as log:
        assert (len(log), log.head) == (3, hashes[-1])
        log.append({"i": 3})
    report = verify_log(path, anchor=True)
    assert report.ok and report.n_records == 4 and report.anchor.n_records == 4


def test_a_log_whose_head_was_deleted_is_refused_until_adopted(tmp_path: Path) -> None:
    """Cutting records from the end and deleting the head file with them: a writer that
    re-anchored what it found would launder the truncation."""
    path = tmp_path / "a.jsonl"
    _write(path, 6, key=KEY)
    path.write_bytes(b"".join(_lines(path)[:2]))
    anchor_path(path).unlink()
    for key in (KEY, None):
        with pytest.raises(AuditLogRefused, match="holds 2 records but its head file"):
            AuditLog(path, key=key)
    assert not anchor_path(path).exists()
    # a reviewer adopts it deliberately; then it verifies and continues
    anchor = adopt_log(path, KEY)
    assert (anchor.n_records, anchor.signed) == (2, True)
    assert verify_log(path, anchor=True, key=KEY).n_records == 2
    with AuditLog(path, key=KEY) as log:
        log.append({"i": 2})
    assert verify_log(path, anchor=True, key=KEY).n_records == 3


def test_an_empty_log_without_head_opens(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"")
    with AuditLog(path) as log:
        assert len(log) == 0
    assert read_anchor(path).n_records == 0


def test_a_signed_head_is_never_replaced_by_an_unsigned_one(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 3, key=KEY)
    before = anchor_path(path).read_bytes()
    with pytest.raises(AuditLogRefused, match="HMAC-signed and no key was given"):
        AuditLog(path)
    with pytest.raises(AuditLogRefused, match="HMAC-signed and no key was given"):
        adopt_log(path)
    with pytest.raises(AuditChainError, match="HMAC does not match"):
        adopt_log(path, b"x" * 32)
    assert anchor_path(path).read_bytes() == before
    assert verify_log(path, key=KEY).ok


def test_adopting_signs_an_unsigned_log_but_never_hides_a_truncation(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 4)
    assert not read_anchor(path).signed
    # a writer given a key does not sign an unsigned log by itself: a reviewer adopts it
    with pytest.raises(
        AuditLogRefused,
        match=r"head file is unsigned.*the head is forged .* do not sign it.*allocgym audit anchor",
    ):
        AuditLog(path, key=KEY)
    assert adopt_log(path, KEY).signed
    assert verify_log(path, key=KEY).n_records == 4
    # the head is still there and the log was cut below it: adopting refuses
    path.write_bytes(b"".join(_lines(path)[:2]))
    with pytest.raises(AuditChainError, match="truncated or deleted"):
        adopt_log(path, KEY)
    with pytest.raises(FileNotFoundError, match="no audit log"):
        adopt_log(tmp_path / "missing.jsonl")


def test_a_log_without_anchor_is_verified_whole_at_open(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 3)
    anchor_path(path).unlink()
    lines = _lines(path)
    lines[0] = lines[0].replace(b'"i":0', b'"i":5')
    path.write_bytes(b"".join(lines))
    with pytest.raises(AuditChainError, match="line 1"):
        AuditLog(path)


# ----------------------------------------------------------------------------- the CLI


def _cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    return int(exit_.value.code or 0)


def test_cli_verify_reports_ok_and_tampering(tmp_path: Path, capsys, monkeypatch) -> None:
    path = tmp_path / "a.jsonl"
    key_file = tmp_path / "key"
    key_file.write_text(KEY.decode())
    key_file.chmod(0o600)
    monkeypatch.delenv("ALLOCGYM_AUDIT_KEY", raising=False)
    _write(path, 3, key=KEY)
    assert _cli("audit", "verify", str(path), "--key-file", str(key_file)) == 0
    out = capsys.readouterr().out
    assert f"ok {path}: 3 records" in out and "anchor covers 3" in out and "HMAC verified" in out
    path.write_bytes(b"".join(_lines(path)[:1]))
    assert _cli("audit", "verify", str(path)) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "line 2" in err and "holds 1 records, its anchor 3" in err
    assert _cli("audit", "verify", str(path), "--chain-only") == 0
    assert "1 records" in capsys.readouterr().out


def test_cli_names_the_audit_key_a_key_not_a_token(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("ALLOCGYM_AUDIT_KEY", raising=False)
    path = tmp_path / "a.jsonl"
    _write(path, 1, key=KEY)
    assert _cli("audit", "verify", str(path), "--key-file", str(tmp_path / "nokey")) == 2
    err = capsys.readouterr().err
    assert "key file" in err and "write the key to it" in err and "token" not in err


def test_cli_verify_and_replay_fail_with_exit_1_on_a_forged_or_missing_head(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """A head file signed with another key, or gone, is a verdict (FAILED, exit 1), not an
    error; the message names the command line's way to check the chain alone."""
    monkeypatch.delenv("ALLOCGYM_AUDIT_KEY", raising=False)
    path = tmp_path / "a.jsonl"
    _write(path, 2, key=b"x" * 32)
    key_file = tmp_path / "key"
    key_file.write_text(KEY.decode())
    key_file.chmod(0o600)
    assert _cli("audit", "verify", str(path), "--key-file", str(key_file)) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "head file" in err and "HMAC does not match" in err
    assert "line 0" not in err
    anchor_path(path).unlink()
    assert _cli("audit", "verify", str(path)) == 1
    assert "--chain-only" in capsys.readouterr().err
    replay = ("audit", "replay", str(path), "--policy", str(untrained_bundle()))
    assert _cli(*replay) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "is missing" in err and "modified" not in err


def test_cli_verify_reads_a_last_line_being_written_again(tmp_path: Path, capsys) -> None:
    """Beside a running service the last line may be a record half written: verify reads
    it again once; a line a crash left torn still fails."""
    import threading

    path = tmp_path / "a.jsonl"
    _write(path, 3)
    lines = _lines(path)
    half = len(lines[2]) // 2
    path.write_bytes(b"".join(lines[:2]) + lines[2][:half])

    def write_the_rest() -> None:
        with path.open("ab") as fh:
            fh.write(lines[2][half:])

    finish = threading.Timer(0.05, write_the_rest)
    finish.start()
    assert _cli("audit", "verify", str(path)) == 0
    finish.join()
    assert "ok" in capsys.readouterr().out
    path.write_bytes(b"".join(lines[:2]) + lines[2][:half])
    assert _cli("audit", "verify", str(path)) == 1
    assert "torn write" in capsys.readouterr().err


def test_cli_anchor_adopts_a_headless_log(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("ALLOCGYM_AUDIT_KEY", raising=False)
    path = tmp_path / "a.jsonl"
    _write(path, 3)
    anchor_path(path).unlink()
    assert _cli("audit", "anchor", str(path)) == 0
    assert f"anchored {path}: 3 records" in capsys.readouterr().out
    assert verify_log(path, anchor=True).n_records == 3
    assert _cli("audit", "anchor", str(tmp_path / "none.jsonl")) == 2
    assert "no audit log" in capsys.readouterr().err


def test_cli_replay_reproduces_a_service_log_and_names_a_mismatch(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """``allocgym audit replay`` re-decides a served log with its bundle, beside the live
    writer (the log stays open here), and exits 1 naming the record that differs."""
    for var in ("ALLOCGYM_AUDIT_KEY", "TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TRADING_ALLOCATOR_ENABLED", "true")
    bundle, policy, market, t, _, path, service = _served(tmp_path, ("c1", "c2"))
    service.set_kill_switch(True, reason="drill", actor="test")
    service.audit.anchor()
    patience = ("--set", "serving.deadline_ms=5000", "--set", "serving.max_queue_ms=5000")
    args = ("audit", "replay", str(path), "--policy", str(bundle), *patience)
    verifies: list[Path] = []
    verify = observability.verify_log

    def counted(log: Path, **kw: Any) -> Any:
        verifies.append(log)
        return verify(log, **kw)

    monkeypatch.setattr(observability, "verify_log", counted)
    assert _cli(*args) == 0
    assert f"ok {path}: 3 of 3 records reproduced" in capsys.readouterr().out
    assert verifies == [path]  # the chain is read once for the verdict and the replay
    # a tighter symbol cap in force at replay: the decisions differ, record by record
    monkeypatch.setenv("TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY", "0.01")
    assert _cli(*args) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "1 of 3 records reproduced" in err and "line 1 (c1)" in err
    assert "2 record(s) were decided under other limits than this replay's" in err
    # another bundle (another model): named, with the fix
    other = ("audit", "replay", str(path), "--policy", str(untrained_bundle(long_only=False)))
    monkeypatch.delenv("TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY")
    assert _cli(*other, *patience) == 1
    assert "replay with the bundle that served the log" in capsys.readouterr().err
    # the same limits written otherwise, and the switch off: no note (a replay takes the
    # switch from each record)
    monkeypatch.setenv("TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY", "0.10")
    monkeypatch.delenv("TRADING_ALLOCATOR_ENABLED")
    capped = FrozenAllocator(
        policy,
        environ={**ENABLED, "TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY": "0.1"},
        serving=patient(policy),
        clock=fixed_clock(bar_clock(market, t)),
    )
    capped_log = tmp_path / "capped.jsonl"
    capped_service = DecisionService(capped, audit_log=capped_log)
    capped_service.decide(request_from_market(market, t, history=capped.history, request_id="k1"))
    capped_service.audit.close()
    assert _cli("audit", "replay", str(capped_log), "--policy", str(bundle), *patience) == 0
    captured = capsys.readouterr()
    assert "1 of 1 records reproduced" in captured.out
    assert "note:" not in captured.err
    service.audit.close()


# ----------------------------------------------------------------------------- records


def test_service_records_carry_action_weights_cvar_kill_state_and_reasons(tmp_path: Path) -> None:
    policy = FrozenPolicy.load(untrained_bundle())
    market, t = small_market(), 400
    alloc = FrozenAllocator(
        policy,
        environ=ENABLED,
        serving=patient(policy),
        clock=fixed_clock(bar_clock(market, t)),
    )
    path = tmp_path / "audit.jsonl"
    service = DecisionService(alloc, audit_log=path)
    req = request_from_market(market, t, history=alloc.history, request_id="r1")
    decision = json.loads(service.decide(req).body)
    service.set_kill_switch(True, reason="drill", actor="test")
    service.decide(req.model_copy(update={"request_id": "r2"}))
    # rejected (an unknown symbol held) under the switch: still closed out, so the
    # record says engaged and keeps the per-symbol KILL_SWITCH codes
    bad = req.model_copy(update={"request_id": "r3", "positions": {**req.positions, "ZZZ": 1.0}})
    rejected = json.loads(service.decide(bad).body)
    assert rejected["status"] == "rejected" and rejected["reason_mask"] is not None
    service.audit.close()
    first, _, killed, rejected_record = [json.loads(raw)["record"] for raw in _lines(path)]
    assert rejected_record["kill"]["engaged"] is True
    assert decode_array(rejected_record["reasons"]).tolist() == rejected["reason_mask"]

    # the actor's own action (one more value than the weights: the cash logit), not the
    # proposal the action map made of it
    raw = decode_array(first["raw_action"])
    obs = alloc.trace(req).observation
    assert raw.shape == (1, policy.n_out + 1)
    assert np.array_equal(raw, policy.actions(obs))
    approved = decode_array(first["approved"])[0]
    assert decode_array(first["proposed"]).shape == (1, len(alloc.symbols))
    assert first["kill"] == {
        "engaged": False,
        "request": False,
        "operator": False,
        "configured": False,
    }
    assert first["input"]["flags"] == ENABLED  # the runtime flags a replay needs
    assert decode_array(first["reasons"]).tolist() == decision["reason_mask"]
    assert first["portfolio_reasons"] == [decision["portfolio_reasons"]]
    # CVaR by hand: the worst 5% of 63 scenario returns of the approved book, the 4th
    # worst with weight 0.15 (k = 3.15)
    cols = [list(market.symbols).index(s) for s in alloc.symbols]
    close = market.close[t - 63 : t + 1][:, cols]
    tradable = market.tradable[t - 63 : t + 1][:, cols]
    returns = np.where(tradable[1:] & tradable[:-1], close[1:] / close[:-1] - 1.0, 0.0)
    scen = np.sort(returns @ approved)
    expected = -(scen[:3].sum() + 0.15 * scen[3]) / 3.15
    assert first["cvar"]["alpha"] == 0.95 and first["cvar"]["window"] == 63
    assert first["cvar"]["value"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert killed["kill"] == {
        "engaged": True,
        "request": False,
        "operator": True,
        "configured": False,
    }
    assert "KILL_SWITCH" in killed["portfolio_reasons"][0]
    assert verify_log(path, anchor=True).n_records == 4
    # the chain's length, for a scraper to keep off the host
    assert "\nallocator_audit_records 4.0\n" in service.metrics.exposition().decode()


def test_the_http_service_anchors_the_head_at_shutdown(tmp_path: Path) -> None:
    import httpx

    from allocgym.serving.http import ServerThread, create_app

    policy = FrozenPolicy.load(untrained_bundle())
    market, t = small_market(), 400
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=patient(policy), clock=fixed_clock(bar_clock(market, t))
    )
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, anchor_every=1000)
    service = DecisionService(alloc, audit_log=log)
    with ServerThread(create_app(service)) as srv:
        for rid in ("h1", "h2", "h3"):
            req = request_from_market(market, t, history=alloc.history, request_id=rid)
            r = httpx.post(
                f"{srv.url}/v1/decide",
                content=req.model_dump_json(),
                headers={"content-type": "application/json"},
                timeout=60,
            )
            assert r.status_code == 200
        assert read_anchor(path).n_records == 0  # anchored at open only, so far
    anchor = read_anchor(path)
    assert anchor is not None and anchor.n_records == 3 and anchor.head == log.head
    log.close()


def test_a_failed_write_leaves_the_log_whole_and_the_chain_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fills mid-record: the append raises, the half line is cut off, nothing
    waits in a buffer, and the next append continues the chain (a torn line had made the
    log unverifiable and the service unable to restart on it)."""
    import errno

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append({"n": 0})
    real_write = observability.os.write

    def disk_full(fd: int, data: Any) -> int:
        real_write(fd, bytes(data)[:40])  # part of the line reaches the file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(observability.os, "write", disk_full)
    with pytest.raises(OSError, match="No space"):
        log.append({"n": "lost"})
    monkeypatch.setattr(observability.os, "write", real_write)
    log.append({"n": 1})
    log.close()
    lines = path.read_bytes().splitlines()
    assert [json.loads(x)["record"] for x in lines] == [{"n": 0}, {"n": 1}]
    assert verify_log(path, anchor=True).n_records == 2
    AuditLog(path).close()  # a restart opens it


def test_a_log_that_cannot_be_cut_back_refuses_further_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    real_write, real_truncate = observability.os.write, observability.os.ftruncate

    def fail(*args: Any) -> int:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(observability.os, "write", fail)
    monkeypatch.setattr(observability.os, "ftruncate", fail)
    with pytest.raises(OSError, match="I/O error"):
        log.append({"n": 0})
    monkeypatch.setattr(observability.os, "write", real_write)
    monkeypatch.setattr(observability.os, "ftruncate", real_truncate)
    with pytest.raises(OSError, match=r"could not be cut back .* repair it before a restart"):
        log.append({"n": 1})


def test_a_second_handle_asking_other_settings_is_refused(tmp_path: Path) -> None:
    """One writer per file in a process: a second handle with another key, fsync or
    anchor interval is refused by name instead of silently writing with the first's (a
    review's repro: the head stayed unsigned where a key was given). The same settings
    share the writer."""
    path = tmp_path / "a.jsonl"
    first = AuditLog(path, anchor_every=3)
    with pytest.raises(ValueError, match=r"anchor_every=3 and no key.*asks for .* a key"):
        AuditLog(path, anchor_every=3, key=KEY)
    with pytest.raises(ValueError, match=r"fsync=False.*asks for fsync=True"):
        AuditLog(path, anchor_every=3, fsync=True)
    with pytest.raises(ValueError, match="close the other handle first"):
        AuditLog(path)
    second = AuditLog(path, anchor_every=3)
    second.append({"i": 0})
    second.close()
    first.close()
    assert verify_log(path, anchor=True).ok
    signed_path = tmp_path / "signed.jsonl"
    with AuditLog(signed_path, key=KEY) as signed:
        with pytest.raises(ValueError, match="or another key"):
            AuditLog(signed_path, key=b"j" * 32)
        signed.append({"i": 1})
    assert verify_log(signed_path, key=KEY, anchor=True).ok


@pytest.mark.parametrize(
    ("key", "error", "match"),
    [
        ("k" * 32, TypeError, "audit key is str: pass bytes"),
        (b"", ValueError, "audit key has 0 bytes: use at least 16"),
        (b"short", ValueError, "has 5 bytes"),
    ],
)
def test_audit_keys_are_bytes_of_16_or_more(
    tmp_path: Path, key: object, error: type[Exception], match: str
) -> None:
    """An empty HMAC key is forgeable and a text key failed inside hmac with its own
    message (a review's repro): both refused with the fix, writing and verifying."""
    path = tmp_path / "a.jsonl"
    with pytest.raises(error, match=match):
        AuditLog(path, key=key)
    _write(path, 2, key=KEY)
    with pytest.raises(error, match=match):
        verify_log(path, key=key)


def test_verify_checks_the_anchors_byte_offset(tmp_path: Path) -> None:
    """The writer reopens a log at its head file's byte offset: a head whose offset is
    not where its record ends is refused by ``verify`` as by the writer (a review's
    repro: verify said ok, the service refused to start)."""
    path = tmp_path / "a.jsonl"
    _write(path, 3)
    assert verify_log(path, anchor=True).ok
    body = json.loads(anchor_path(path).read_bytes())
    ends = path.stat().st_size
    body["offset"] = ends - 7
    anchor_path(path).write_bytes(canonical_json(body) + b"\n")
    report = verify_log(path, anchor=True, raise_error=False)
    assert not report.ok and report.bad_line == 3
    assert f"ends at byte {ends - 7}, it ends at byte {ends}: the head file was edited" in (
        report.reason
    )
    with pytest.raises(AuditChainError):
        AuditLog(path)


def test_a_log_reached_through_a_symbolic_link_keeps_its_head_beside_the_target(
    tmp_path: Path,
) -> None:
    """The writer resolves a linked log path; its head file and the readers follow the
    same file (a review's repro: verify through the link called a genuine log tampered
    with, and ``AuditLog.verify`` skipped the anchor)."""
    from allocgym.serving.service import ArrayStore, kill_state_path

    (tmp_path / "data").mkdir()
    (tmp_path / "logs").mkdir()
    target = tmp_path / "data" / "audit-2026.jsonl"
    link = tmp_path / "logs" / "audit.jsonl"
    target.touch()
    link.symlink_to(target)
    with AuditLog(link) as log:
        for i in range(3):
            log.append({"i": i})
        assert log.verify().ok
    assert anchor_path(link) == anchor_path(target) == target.with_name(target.name + ".head")
    # the kill switch stays beside the path as given: a link pointed at a new file keeps
    # an engaged switch (a review's repro); the arrays stay there too, as they were
    assert kill_state_path(link) == link.with_name("audit.jsonl.kill")
    assert ArrayStore.beside(link).folder == link.with_name("audit.jsonl.arrays")
    assert verify_log(link, anchor=True).ok and verify_log(link, anchor=True).n_records == 3
    with pytest.raises(SystemExit) as exc:
        main(["audit", "verify", str(link)])
    assert exc.value.code == 0
    with AuditLog(link) as log:
        anchor_path(target).unlink()
        assert not log.verify(raise_error=False).ok  # the anchor is required of a writer


def test_a_torn_last_line_after_a_crash_is_named_and_can_be_cut(tmp_path: Path, capsys) -> None:
    """A crash mid-write leaves a last line without its newline, a record never answered:
    the writer refuses it with the command that cuts it, not as tampering (a review's
    repro: "restore it from a trusted copy", and no tool could), and ``audit anchor
    --cut-torn-tail`` cuts it past the anchored records only."""
    path = tmp_path / "a.jsonl"
    _write(path, 3)
    whole = path.read_bytes()
    torn = b'{"hash":"0f3a","prev_hash'
    path.write_bytes(whole + torn)
    with pytest.raises(AuditLogRefused, match=r"line 4: the last line is cut \(25 bytes"):
        AuditLog(path)
    with pytest.raises(AuditLogRefused, match="--cut-torn-tail"):
        adopt_log(path)
    assert path.read_bytes() == whole + torn  # nothing cut without the flag
    assert _cli("audit", "anchor", str(path), "--cut-torn-tail") == 0
    assert "3 records" in (out := capsys.readouterr().out) and "torn last line of 25 bytes" in out
    assert path.read_bytes() == whole
    with AuditLog(path) as log:
        assert len(log) == 3
        log.append({"i": 3})
    assert verify_log(path, anchor=True).n_records == 4
    # the anchored record itself cut: truncation, never cut further
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(AuditChainError, match="it was truncated"):
        adopt_log(path, cut_torn_tail=True)


def test_the_writer_lock_is_on_the_log_itself(tmp_path: Path) -> None:
    """A deleted ``<log>.lock`` (a stale-lock cleanup) or a second name of the same file
    (a hard link) does not let a second process write the log (a review's repro: both
    corrupted the chain); the refusal still names the holder."""
    import os

    path = tmp_path / "a.jsonl"
    log = AuditLog(path)
    log.append({"i": 0})
    (tmp_path / "a.jsonl.lock").unlink()
    res = _second_writer(path)
    assert res.returncode == 3, res.stdout + res.stderr
    os.link(path, tmp_path / "b.jsonl")
    res = _second_writer(tmp_path / "b.jsonl")
    assert res.returncode == 3, res.stdout + res.stderr
    (tmp_path / "a.jsonl.lock").write_text(f"{os.getpid()}\n")
    res = _second_writer(path)
    assert res.returncode == 3 and f"pid {os.getpid()}" in res.stdout
    log.append({"i": 1})
    log.close()
    assert verify_log(path, anchor=True).n_records == 2
    assert _second_writer(path).returncode == 0  # closed: free again


def test_a_failed_first_open_leaves_no_empty_log_behind(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 2)
    path.unlink()
    with pytest.raises(AuditChainError, match="truncated or deleted"):
        AuditLog(path)
    assert not path.exists()


@pytest.mark.parametrize(
    "edit",
    ["cvar", "approved", "proposed", "raw_action", "kill", "regime", "input_hash", "output"],
)
def test_replay_derives_every_field_of_a_decision_record_again(tmp_path: Path, edit: str) -> None:
    """A replay re-derives each field a decision record's input determines (the CVaR, the
    proposed and approved books, the raw action, the kill state, the regime) and checks
    the input hash, not only the output (a review's repro: edits of those fields in an
    unsigned log, the chain recomputed, verified and replayed clean)."""
    from allocgym.observability import Anchor, write_anchor
    from allocgym.serving import replay_audit
    from allocgym.serving.schemas import encode_array

    _, _, _, _, alloc, path, service = _served(tmp_path, ("a", "b"))
    service.audit.close()
    assert replay_audit(path, alloc).n_reproduced == 2
    records = _records(path)
    r = records[0]
    if edit == "cvar":
        r["cvar"]["value"] = 0.0001
    elif edit in ("approved", "proposed", "raw_action"):
        r[edit] = encode_array(decode_array(r[edit]) * 0.5)
    elif edit == "kill":
        r["kill"]["engaged"] = True
    elif edit == "regime":
        r["regime"]["score"] = 0.99
    elif edit == "input_hash":
        r["input_hash"] = "0" * 64
    else:
        r["output"]["status"] = "fallback"
    path.write_bytes(_rechain(records))
    head = json.loads(_lines(path)[-1])["hash"]
    write_anchor(path, Anchor(2, head, path.stat().st_size, "2026-01-01T00:00:00+00:00"))
    assert verify_log(path, anchor=True).ok  # an unsigned log: the chain cannot tell
    report = replay_audit(path, alloc)
    assert report.n_reproduced == 1 and report.mismatches == [(1, "a")], report


def test_a_torn_tail_without_a_head_file_is_not_cut_and_a_signed_one_needs_the_key(
    tmp_path: Path,
) -> None:
    """A crash leaves no torn line without a head (the head is written before the first
    record): a log cut mid-line with its head deleted is refused as such, and nothing is
    cut (a review's repro adopted the truncated log); a signed log's advice carries
    --key-file, and a cut without the key changes nothing."""
    path = tmp_path / "a.jsonl"
    _write(path, 5)
    lines = _lines(path)
    path.write_bytes(b"".join(lines[:3]) + lines[3][:40])
    anchor_path(path).unlink()
    with pytest.raises(AuditLogRefused, match=r"has no head file .* its line 4 is cut"):
        AuditLog(path)
    before = path.read_bytes()
    with pytest.raises(AuditLogRefused, match="nothing bounds the cut"):
        adopt_log(path, cut_torn_tail=True)
    assert path.read_bytes() == before
    signed = tmp_path / "s.jsonl"
    _write(signed, 3, key=KEY)
    torn = signed.read_bytes() + b'{"hash":"ab'
    signed.write_bytes(torn)
    with pytest.raises(AuditLogRefused, match="--cut-torn-tail --key-file"):
        AuditLog(signed, key=KEY)
    with pytest.raises(AuditLogRefused, match="HMAC-signed and no key"):
        adopt_log(signed, cut_torn_tail=True)
    assert signed.read_bytes() == torn
    assert adopt_log(signed, KEY, cut_torn_tail=True).n_records == 3


def test_a_writer_of_the_previous_version_holding_the_lock_file_is_respected(
    tmp_path: Path,
) -> None:
    """Writers before this version lock ``<log>.lock`` only: one still running during an
    upgrade keeps a new writer out (a review's repro: both wrote, the chain broke)."""
    import os

    path = tmp_path / "a.jsonl"
    _write(path, 1)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, sys, time
            fd = os.open({str(path) + '.lock'!r}, os.O_RDWR | os.O_CREAT)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.pwrite(fd, b"%d\\n" % os.getpid(), 0)
            print("locked", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(AuditLogLockedError, match=f"pid {holder.pid}"):
            AuditLog(path)
    finally:
        holder.communicate("", timeout=30)
    with AuditLog(path) as log:
        assert len(log) == 1
    assert os.path.exists(path)


def test_a_file_system_that_refuses_the_lock_is_named_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NFS emulates flock with write locks (a read-only descriptor gets EBADF, a review's
    repro): the lock is taken on descriptors opened for writing, and a refusal names the
    file system, leaks no descriptor and leaves no empty log behind."""
    import errno
    import fcntl
    import os

    real_flock = fcntl.flock
    modes: list[int] = []

    def nfs_like(fd: int, op: int) -> None:
        mode = os.O_ACCMODE & fcntl.fcntl(fd, fcntl.F_GETFL)
        modes.append(mode)
        if mode == os.O_RDONLY:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", nfs_like)
    with AuditLog(tmp_path / "ok.jsonl") as log:
        log.append({"i": 0})
    assert modes and all(m == os.O_RDWR for m in modes)

    def refused(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", refused)
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match=r"refused the writer's lock .* mount it with lock support"):
        AuditLog(tmp_path / "new.jsonl")
    assert len(os.listdir("/proc/self/fd")) == fds
    assert not (tmp_path / "new.jsonl").exists()


def test_a_new_log_takes_its_mode_from_the_umask(tmp_path: Path) -> None:
    """A group-shared folder's umask 002 gives the log group write, as before the lock
    moved onto the log (a review's note: it came out 0o644)."""
    import os

    old = os.umask(0o002)
    try:
        _write(tmp_path / "a.jsonl", 1)
    finally:
        os.umask(old)
    assert (tmp_path / "a.jsonl").stat().st_mode & 0o777 == 0o664


def test_a_refused_writer_never_removes_the_log_another_writer_created(tmp_path: Path) -> None:
    """Two writers starting on a new log: the refused one had looked before the other
    created it, and removed the live, still empty log on its way out (a review's repro:
    the survivor audited into a file with no name). Whether this open created the log
    is decided under the lock now."""
    path = tmp_path / "a.jsonl"
    holder = AuditLog(path)  # created, locked, 0 records: an empty file
    script = textwrap.dedent(f"""
        import pathlib, sys
        from allocgym.observability import AuditLog, AuditLogLockedError
        real = pathlib.Path.exists
        target = pathlib.Path({str(path)!r})
        early = [True]

        def exists(p):  # the first look, before the other writer created it
            if p == target and early:
                return not early.pop()
            return real(p)

        pathlib.Path.exists = exists
        try:
            AuditLog(target)
        except AuditLogLockedError:
            sys.exit(3)
    """)
    res = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 3, res.stderr
    assert path.exists()
    holder.append({"i": 0})
    holder.close()
    assert verify_log(path, anchor=True).n_records == 1


def test_a_hard_linked_name_is_refused_naming_the_link(tmp_path: Path) -> None:
    import os

    path = tmp_path / "a.jsonl"
    with AuditLog(path):
        os.link(path, tmp_path / "b.jsonl")
        with pytest.raises(AuditLogLockedError, match="through another name of the same file"):
            AuditLog(tmp_path / "b.jsonl")


def test_sync_hooks_of_dropped_services_are_let_go(tmp_path: Path) -> None:
    """A service's array store is synced before its shared log's syncs while it lives;
    a dropped one is not kept alive by the log (a review's note: hooks piled up)."""
    import gc

    from allocgym.serving.service import ArrayStore

    log = AuditLog(tmp_path / "a.jsonl")
    stores = [ArrayStore(tmp_path / f"s{i}") for i in range(3)]
    for s in stores:
        log.before_sync(s.sync)
    stores[0].put(np.arange(3.0))
    del stores[1:], s
    gc.collect()
    log.append({"i": 0})
    log.anchor()
    assert len(log._writer.presync) == 1 and not stores[0]._unsynced
    log.close()
