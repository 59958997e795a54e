"""Audit log (hash chain, tamper detection, byte-exact replay) and Prometheus metrics."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
from gate_books import calm_context
from hypothesis import given, settings
from hypothesis import strategies as st

from allocgym.config import config_hash, load_config
from allocgym.execution import ExecutionParams, ExecutionPolicy
from allocgym.observability import (
    GENESIS_HASH,
    METRIC_RENAMES,
    REASON_NAMES,
    UNATTRIBUTED,
    AuditChainError,
    AuditLog,
    Canonical,
    Metrics,
    StrategyPnL,
    anchor_path,
    canonical_json,
    capacity_utilization,
    decision_record,
    from_jsonable,
    reason_names,
    replay,
    sha256_hex,
    strategy_shares,
    to_jsonable,
    verify_log,
)
from allocgym.regime import REGIME_LABELS
from allocgym.risk import GateContext, GateResult, ReasonCode, RiskGateChain, RiskLimits

# ----------------------------------------------------------------------------- canonical JSON


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def test_canonical_json_is_sorted_compact_ascii() -> None:
    assert canonical_json({"b": 1, "a": [0.5, None, True], "c": "é"}) == (
        b'{"a":[0.5,null,true],"b":1,"c":"\\u00e9"}'
    )
    assert canonical_json(np.array([[1.0, 2.0]])) == b"[[1.0,2.0]]"
    assert canonical_json({"n": np.int64(3), "f": np.float32(0.5)}) == b'{"f":0.5,"n":3}'
    with pytest.raises(TypeError, match="cannot write object"):
        canonical_json({"x": object()})
    with pytest.raises(TypeError, match="str keys"):
        canonical_json({1: 2})


_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e-3, 1e-3),  # where json and orjson write floats differently
    st.text(max_size=4),
    st.floats(width=32).map(np.float32),
    st.floats().map(np.float64),
    st.integers(-(2**62), 2**62).map(np.int64),
    st.booleans().map(np.bool_),
    st.lists(st.floats(), max_size=4).map(np.array),
)
_TREES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=3), inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(tree=_TREES)
def test_canonical_json_is_the_full_conversion_dumped(tree: object) -> None:
    """The orjson and C-encoder fast paths write exactly what converting every value
    first writes (numpy scalars and arrays, floats under 1e-4, non-ASCII text, non-finite
    floats, tuples, ints beyond 64 bits), so the hashes of logs written before them still
    verify."""
    reference = json.dumps(
        to_jsonable(tree), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
        allow_nan=False,
    ).encode("ascii")  # fmt: skip
    assert canonical_json(tree) == reference


@settings(max_examples=150, deadline=None)
@given(
    tree=st.dictionaries(st.text(max_size=3), st.one_of(_TREES, _TREES.map(Canonical)), max_size=8)
)
def test_canonical_values_are_written_as_their_value(tree: dict) -> None:
    """A ``Canonical`` (a value with its bytes computed once: a decision's input, hashed
    and logged) is written exactly as its value would be, wherever it sits."""
    reference = json.dumps(
        to_jsonable(tree), sort_keys=True, separators=(",", ":"), allow_nan=False
    ).encode("ascii")
    assert canonical_json(tree) == reference
    assert canonical_json([tree]) == b"[" + reference + b"]"


def test_an_orjson_writing_other_float_bytes_leaves_records_to_json(monkeypatch) -> None:
    """orjson before 3.11.7 wrote ``1e16`` where json writes ``1e+16`` (a review's repro:
    genuine logs failed ``verify`` after an upgrade). Such an orjson is found at import
    and every record takes json's encoder, with json's bytes; the pinned one passes."""
    import orjson

    import allocgym.observability as obs

    dumps = orjson.dumps

    def old_dumps(value: object, **kw: object) -> bytes:
        return dumps(value, **kw).replace(b"e+", b"e")

    assert obs._orjson_writes_json_floats() and obs._ORJSON_AGREES
    assert not obs._orjson_writes_json_floats(old_dumps)
    record = {"equity": 1.6e16, "cash": -1.5e300, "w": [0.5, 1e22]}
    reference = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    assert b"1.6e+16" in reference
    monkeypatch.setattr(orjson, "dumps", old_dumps)
    monkeypatch.setattr(obs, "_ORJSON_AGREES", obs._orjson_writes_json_floats(old_dumps))
    assert obs.canonical_json(record) == reference


class _Side(enum.Enum):
    BUY = 1


class _Agreeable(enum.Enum):
    """A member equal to its value: orjson's bytes read back equal to it."""

    BUY = "buy"

    def __eq__(self, other: object) -> bool:
        return other == self.value or other is self

    __hash__ = enum.Enum.__hash__


class _Lots(enum.IntEnum):
    ROUND = 5


class _Level(int, enum.Enum):
    """An int Enum whose ``_value_`` (what orjson writes) is not its int (json's)."""

    def __new__(cls, v: int) -> _Level:
        member = int.__new__(cls, v)
        member._value_ = float(v)
        return member

    FIVE = 5


@pytest.mark.parametrize(
    "value",
    [
        uuid.UUID(int=7), _Side.BUY, {"a": [1, uuid.UUID(int=7)]}, [{"s": _Side.BUY}],
        _Agreeable.BUY, {"side": _Agreeable.BUY},
    ],
)  # fmt: skip
def test_canonical_json_refuses_values_json_cannot_write(value: object) -> None:
    """orjson writes UUIDs and Enums; the audit format refuses them, as json does."""
    with pytest.raises(TypeError, match="cannot write"):
        canonical_json(value)


def test_canonical_json_writes_subclasses_as_json_does() -> None:
    """An int Enum member is json's int (orjson would write its value as given); a dict
    inside a namedtuple has its keys checked like any other."""
    assert canonical_json({"lot": _Level.FIVE, "n": _Lots.ROUND}) == b'{"lot":5,"n":5}'
    pair = collections.namedtuple("Pair", "a b")
    assert canonical_json({"p": pair(1, {"k": 0.5})}) == b'{"p":[1,{"k":0.5}]}'
    with pytest.raises(TypeError, match="key 1 is int: use str keys"):
        canonical_json({"p": pair(1, {1: 0.5})})


def test_canonical_json_fast_path_has_json_bytes_where_they_differ() -> None:
    cases = [1e-05, 2.5e-07, -3.7e-9, 10.00001, float("nan"), "\x7f", "é\u2028", "e-1"]
    for value in cases:
        tree = {"k": [value, 0.5, None]}
        assert canonical_json(tree) == json.dumps(
            to_jsonable(tree), sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode("ascii")


def test_canonical_json_refuses_a_non_str_key_deep_inside() -> None:
    """json's encoder would write the int key as "1"; the audit format refuses it."""
    with pytest.raises(TypeError, match="key 1 is int: use str keys"):
        canonical_json({"a": [{"b": (0.5, {1: 2})}]})


@pytest.mark.parametrize(
    ("tree", "key"),
    [
        ({"a": collections.OrderedDict({1: 2})}, "1"),  # a dict subclass
        ([{"b": {True: 1}}], "True"),
        (({"c": 0}, {None: 0}), "None"),
        # an int beyond 64 bits stops orjson's walk: the Python walk finds the key
        ({"big": 2**70, "d": {1.5: 0}}, "1.5"),
    ],
)
def test_canonical_json_refuses_every_non_str_key(tree: object, key: str) -> None:
    """Whichever walk finds it (orjson's, or the Python one where orjson stops early),
    a non-str key anywhere in plain dicts, lists and tuples is refused by name."""
    with pytest.raises(TypeError, match=f"key {key} is .*: use str keys"):
        canonical_json(tree)


_MIXED_KEY_TREES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(
            st.one_of(st.text(max_size=2), st.integers(-3, 3), st.booleans(), st.none()),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=12,
)


def _has_non_str_key(tree: object) -> bool:
    if isinstance(tree, dict):
        return any(not isinstance(k, str) or _has_non_str_key(v) for k, v in tree.items())
    if isinstance(tree, list | tuple):
        return any(_has_non_str_key(v) for v in tree)
    return False


@settings(max_examples=200, deadline=None)
@given(tree=_MIXED_KEY_TREES)
def test_canonical_json_refuses_exactly_the_trees_with_a_non_str_key(tree: object) -> None:
    """Refused iff some dict in the tree has a non-str key; otherwise the bytes are the
    full conversion's."""
    if _has_non_str_key(tree):
        with pytest.raises(TypeError, match="use str keys"):
            canonical_json(tree)
    else:
        reference = json.dumps(
            to_jsonable(tree), sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode("ascii")
        assert canonical_json(tree) == reference


def test_canonical_json_writes_what_orjson_cannot() -> None:
    """An int beyond 64 bits and a str-keyed dict subclass are valid: no refusal."""
    tree = {"big": -(2**70), "od": collections.OrderedDict({"k": 1})}
    assert canonical_json(tree) == b'{"big":-1180591620717411303424,"od":{"k":1}}'


def test_floats_round_trip_bit_for_bit() -> None:
    values = [0.1 + 0.2, 1e308, 5e-324, -0.0, 0.0, 1 / 3, float(np.float32(0.1)), -2.5e-310]
    back = json.loads(canonical_json(values))
    assert [_bits(v) for v in back] == [_bits(v) for v in values]
    special = from_jsonable(json.loads(canonical_json([np.nan, np.inf, -np.inf])))
    assert np.isnan(special[0]) and special[1] == np.inf and special[2] == -np.inf
    assert to_jsonable(float("nan")) == {"$float": "nan"}


def test_reason_names_and_input_hash() -> None:
    mask = int(ReasonCode.SYMBOL_CAP | ReasonCode.FORCED_DERISK)
    assert reason_names(mask) == ["SYMBOL_CAP", "FORCED_DERISK"]
    assert reason_names(0) == []
    assert REASON_NAMES[0] == "KILL_SWITCH" and "NONE" not in REASON_NAMES
    assert sha256_hex({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()


# ----------------------------------------------------------------------------- chain


def _fill(path: Path, n: int = 5) -> tuple[AuditLog, list[str]]:
    log = AuditLog(path)
    hashes = [log.append({"i": i, "w": [0.1 * i, -0.0, 1e-320], "x": np.nan}) for i in range(n)]
    return log, hashes


def test_chain_hashes_are_hand_computable(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log, hashes = _fill(path, 3)
    entry0 = {
        "seq": 0,
        "prev_hash": GENESIS_HASH,
        "record": {"i": 0, "w": [0.0, -0.0, 1e-320], "x": np.nan},
    }
    assert hashes[0] == hashlib.sha256(canonical_json(entry0)).hexdigest()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3
    second = json.loads(lines[1])
    assert second["prev_hash"] == hashes[0] and second["seq"] == 1 and second["hash"] == hashes[1]
    report = log.verify()
    assert report.ok and report.n_records == 3 and report.head == hashes[-1] == log.head
    assert [r["i"] for r in log.records()] == [0, 1, 2]
    assert np.isnan(next(iter(log.records()))["x"])


def test_reopen_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _, hashes = _fill(path, 2)
    log = AuditLog(path)
    assert len(log) == 2 and log.head == hashes[-1]
    log.append({"i": 2})
    assert log.verify().n_records == 3


def _tamper(path: Path, line: int, edit) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[line - 1] = edit(lines[line - 1])
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize(
    ("edit", "bad_line", "reason"),
    [
        (lambda b: b.replace(b"0.30000000000000004", b"0.3"), 4, "hash does not match"),
        (lambda b: b.replace(b'"i":2', b'"i": 2'), 3, "canonical"),
        (lambda b: b"", 2, "seq"),
        (lambda b: b[:-1], 5, "torn"),
    ],
    ids=["float-changed", "whitespace", "line-deleted", "torn-write"],
)
def test_tampering_is_detected_at_its_line(
    tmp_path: Path, edit, bad_line: int, reason: str
) -> None:
    path = tmp_path / "audit.jsonl"
    _fill(path, 5)
    _tamper(path, bad_line, edit)
    with pytest.raises(AuditChainError, match=reason) as err:
        verify_log(path)
    assert err.value.line == bad_line
    report = verify_log(path, raise_error=False)
    assert not report.ok and report.bad_line == bad_line and report.n_records == bad_line - 1


def test_rehashed_edit_still_breaks_the_link(tmp_path: Path) -> None:
    """An attacker who recomputes the edited record's own hash breaks the next link."""
    path = tmp_path / "audit.jsonl"
    _fill(path, 4)
    lines = path.read_bytes().splitlines(keepends=True)
    entry = json.loads(lines[1])
    entry["record"]["i"] = 99
    body = {k: entry[k] for k in ("seq", "prev_hash", "record")}
    entry["hash"] = hashlib.sha256(canonical_json(body)).hexdigest()
    lines[1] = canonical_json(entry) + b"\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(AuditChainError, match="prev_hash") as err:
        verify_log(path)
    assert err.value.line == 3
    with pytest.raises(AuditChainError, match=r"anchored record .* not intact"):
        AuditLog(path)  # reopening checks the anchored record: it moved by one byte


def test_reopening_a_log_with_a_bad_tail_refuses_to_append(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _fill(path, 2)
    _tamper(path, 2, lambda b: b.replace(b'"i":1', b'"i":7'))
    with pytest.raises(AuditChainError, match="line 2"):
        AuditLog(path)


# ----------------------------------------------------------------------------- replay

LIMITS = RiskLimits(max_symbol_weight=0.3, max_sector_gross=0.6, max_turnover=0.4)


def _ctx(inp: dict) -> GateContext:
    cur = np.asarray(inp["current"], dtype=np.float64)
    n, m = cur.shape
    return GateContext(
        current_weights=cur,
        equity=np.asarray(inp["equity"], dtype=np.float64),
        prices=np.asarray(inp["prices"], dtype=np.float64),
        adv_notional=np.full((n, m), 5e8),
        volatility=np.full((n, m), 0.015),
        spread_bps=np.full((n, m), 3.0),
        sector_ids=np.asarray(inp["sectors"], dtype=np.int64),
        regime=np.asarray(inp["regime"], dtype=np.int64),
        tradable=np.ones((n, m), dtype=bool),
    )


def decide(inp: dict, limits: RiskLimits = LIMITS) -> dict:
    """A deterministic decision: gates then execution (what production would log)."""
    ctx = _ctx(inp)
    gate = RiskGateChain(limits).apply(np.asarray(inp["proposed"], dtype=np.float64), ctx)
    ex = ExecutionPolicy(ExecutionParams(lot_size=10.0), limits).apply(gate, ctx)
    return {
        "approved": gate.approved,
        "target_weights": ex.target_weights,
        "delta_qty": ex.delta_qty,
        "reasons": ex.reasons,
    }


def _write_decisions(path: Path, n: int = 6, key: bytes | None = None) -> list[dict]:
    rng = np.random.default_rng(0)
    log = AuditLog(path, key=key)
    chash = config_hash(load_config())
    inputs = []
    for i in range(n):
        cur = rng.uniform(0.0, 0.25, (1, 5))
        prop = cur + rng.normal(0.0, 0.1, (1, 5))
        if i == 2:
            prop[0, 1] = np.nan  # an invalid proposal is logged and replayed too
        inp = {
            "current": cur,
            "proposed": prop,
            "equity": [1e6 * (1 + i)],
            "prices": rng.uniform(5.0, 300.0, (1, 5)),
            "sectors": [0, 0, 1, 1, 2],
            "regime": [i % 4],
        }
        out = decide(from_jsonable(json.loads(canonical_json(inp))))
        gate = RiskGateChain(LIMITS).apply(prop, _ctx(inp))
        log.append(
            decision_record(
                request_id=f"req-{i}",
                timestamp=f"2024-01-0{i + 1}T16:00:00Z",
                config_hash=chash,
                inputs=inp,
                output=out,
                gate=gate,
                regime=REGIME_LABELS[i % 4],
                regime_score=0.25 * i,
                symbols=["A", "B", "C", "D", "E"],
                limits={"max_gross": LIMITS.max_gross},
            )
        )
        inputs.append(inp)
    log.close()
    return inputs


def test_decision_record_fields(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    inputs = _write_decisions(path, 3)
    records = list(AuditLog(path).records())
    rec = records[2]
    assert rec["request_id"] == "req-2" and rec["timestamp"].startswith("2024-01-03")
    assert rec["config_hash"] == config_hash(load_config())
    assert rec["input_hash"] == sha256_hex(inputs[2])
    assert rec["regime"] == {"label": "high_volatility", "score": 0.5}
    assert "INVALID_INPUT" in rec["active_constraints"]["codes"]
    assert rec["active_constraints"]["limits"] == {"max_gross": 1.0}
    assert np.isnan(rec["proposed"][0][1])
    assert rec["reasons"][0]["B"] == ["INVALID_INPUT"]
    assert "INVALID_INPUT" in rec["portfolio_reasons"][0]
    assert set(rec) >= {"approved", "output", "input"}


def test_replay_reproduces_every_output_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    _write_decisions(path)
    report = replay(path, decide)
    assert report.ok and report.n_records == report.n_reproduced == 6
    # a different decision function (tighter limits) is caught, record by record
    tighter = RiskLimits(max_symbol_weight=0.1, max_sector_gross=0.6, max_turnover=0.4)
    changed = replay(path, lambda inp: decide(inp, tighter))
    assert not changed.ok and changed.mismatches
    assert all(line >= 1 and rid.startswith("req-") for line, rid in changed.mismatches)


def test_replay_only_reads_the_log_beside_its_writer(tmp_path: Path) -> None:
    """A running service holds the writer lock; a replay beside it neither needs the lock
    nor rewrites the (signed) head file."""
    import fcntl

    path = tmp_path / "decisions.jsonl"
    key = b"k" * 32
    _write_decisions(path, 3, key=key)
    head = anchor_path(path).read_bytes()
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the service's writer does
        report = replay(path, decide, key=key)
    finally:
        os.close(fd)
    assert report.ok and report.n_reproduced == 3
    assert anchor_path(path).read_bytes() == head
    with pytest.raises(AuditChainError, match="HMAC does not match"):
        replay(path, decide, key=b"x" * 32)


def test_replay_needs_the_anchor_and_stops_before_a_line_being_written(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    _write_decisions(path, 3)
    with path.open("ab") as fh:  # the writer is half-way through its next record
        fh.write(b'{"hash":"ab')
    report = replay(path, decide)
    assert report.ok and report.n_records == 3
    anchor_path(path).unlink()  # cut records would not show: replay refuses
    with pytest.raises(AuditChainError, match=r"head file .* is missing"):
        replay(path, decide)
    with pytest.raises(AuditChainError, match=r"head file .* is missing"):
        replay(tmp_path / "typo.jsonl", decide)


def test_replay_refuses_a_broken_chain(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    _write_decisions(path, 3)
    _tamper(path, 2, lambda b: b.replace(b'"req-1"', b'"req-X"'))
    with pytest.raises(AuditChainError) as err:
        replay(path, decide)
    assert err.value.line == 2


def test_replay_in_another_process(tmp_path: Path) -> None:
    """Same bytes from a fresh interpreter with a different hash seed."""
    path = tmp_path / "decisions.jsonl"
    _write_decisions(path, 3)
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_observability import decide
        from allocgym.observability import replay
        r = replay({str(path)!r}, decide)
        print(r.ok, r.n_reproduced)
        """
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["True", "3"]


# ----------------------------------------------------------------------------- metrics


def _gate() -> tuple[GateResult, GateContext]:
    sym = np.zeros((2, 3), dtype=np.int64)
    sym[0, 0] = int(ReasonCode.SYMBOL_CAP)
    sym[0, 2] = int(ReasonCode.SYMBOL_CAP | ReasonCode.GROSS_CAP)
    sym[1, 1] = int(ReasonCode.GROSS_CAP)
    port = np.array(
        [int(ReasonCode.GROSS_CAP), int(ReasonCode.GROSS_CAP | ReasonCode.TURNOVER_CAP)]
    )
    approved = np.array([[0.10, -0.05, 0.10], [0.2, 0.2, 0.2]])
    gate = GateResult(
        approved=approved,
        symbol_reasons=sym,
        portfolio_reasons=port,
        clipped={},
        proposed=approved,
        strategy_scale=np.array([[1.0, 0.0, 0.5], [1.0, 1.0, 1.0]]),
    )
    ctx = GateContext(
        current_weights=np.array([[0.05, -0.05, 0.0], [0.2, 0.2, 0.2]]),
        equity=np.array([1e6, 1e6]),
        prices=np.full((2, 3), 10.0),
        adv_notional=np.full((2, 3), 1e6),
        volatility=np.full((2, 3), 0.01),
        spread_bps=np.full((2, 3), 1.0),
        sector_ids=np.array([0, 1, 2]),
        regime=np.array([0, 0]),
        tradable=np.ones((2, 3), dtype=bool),
        strategy_weights=np.ones((2, 3, 3)),
    )
    return gate, ctx


def test_capacity_use_counts_the_bars_fills_and_the_per_symbol_turnover_cap() -> None:
    """Fills already done in the bar use participation room, and the per-symbol turnover
    cap is one more limit the gauge measures against (hand-computed)."""
    gate, ctx = _gate()
    limits = RiskLimits(max_symbol_weight=0.2, max_participation=0.1, long_only=False)
    base = capacity_utilization(gate, ctx, limits)
    fills = np.zeros((2, 3))
    fills[0, 0] = 50_000.0  # AAA: trade 0.05e6 + 0.05e6 = 1e5 over the 1e5 cap
    with_fills = capacity_utilization(gate, dataclasses.replace(ctx, recent_fills=fills), limits)
    assert base[0, 0] == pytest.approx(0.5) and with_fills[0, 0] == pytest.approx(1.0)
    assert np.array_equal(with_fills[:, 1:], base[:, 1:]) and np.array_equal(with_fills[1], base[1])
    tight = RiskLimits(
        max_symbol_weight=0.2, max_participation=0.1, long_only=False, max_symbol_turnover=0.025
    )
    # AAA trades 0.05 of equity against a 0.025 cap: 2.0
    assert capacity_utilization(gate, ctx, tight)[0, 0] == pytest.approx(2.0)
    # a symbol notional cap of 100,000: AAA's 0.10 of 1e6 is at it (1.0, where the 0.2
    # weight cap alone read 0.5); portfolio 1's 0.2 of 1e6 is twice it
    notional = RiskLimits(
        max_symbol_weight=0.2, max_participation=0.1, long_only=False, max_symbol_notional=1e5
    )
    capped = capacity_utilization(gate, ctx, notional)
    assert capped[0, 0] == pytest.approx(1.0) and capped[1].tolist() == pytest.approx([2.0] * 3)


def test_metrics_from_one_decision() -> None:
    m = Metrics()
    gate, ctx = _gate()
    limits = RiskLimits(max_symbol_weight=0.2, max_participation=0.1, long_only=False)
    m.observe_decision(
        gate,
        ctx,
        latency_s=0.0042,
        limits=limits,
        symbols=["AAA", "BBB", "CCC"],
        strategy_pnl={"trend": 0.001, "defensive": -0.0005},
    )
    val = m.registry.get_sample_value
    # SYMBOL_CAP on 2 symbols; GROSS_CAP on 1 symbol in each portfolio (its portfolio bits
    # add nothing); TURNOVER_CAP only at portfolio level in portfolio 1 -> counted once
    assert val("allocator_reject_total", {"reason": "SYMBOL_CAP"}) == 2.0
    assert val("allocator_reject_total", {"reason": "GROSS_CAP"}) == 2.0
    assert val("allocator_reject_total", {"reason": "TURNOVER_CAP"}) == 1.0
    assert val("allocator_reject_total", {"reason": "KILL_SWITCH"}) == 0.0
    assert val("allocator_gross_exposure_ratio") == pytest.approx(0.25)
    assert val("allocator_net_exposure_ratio") == pytest.approx(0.15)
    assert val("allocator_active_strategies") == 2.0  # strategy 1 scaled to 0
    assert val("allocator_decision_latency_seconds_count") == 1.0
    assert val("allocator_decision_latency_seconds_bucket", {"le": "0.005"}) == 1.0
    assert val("allocator_decision_latency_seconds_bucket", {"le": "0.0025"}) == 0.0
    # AAA: |w| 0.10 / cap 0.2 = 0.5; trade 0.05 * 1e6 / (0.1 * 1e6) = 0.5 -> 0.5
    # CCC: |w| 0.5 of the cap; trade 0.1e6 / 1e5 = 1.0 -> 1.0
    assert val("allocator_capacity_utilization_ratio", {"symbol": "AAA"}) == pytest.approx(0.5)
    assert val("allocator_capacity_utilization_ratio", {"symbol": "CCC"}) == pytest.approx(1.0)
    pnl = "allocator_strategy_pnl_contribution_currency"
    assert val(pnl, {"strategy_id": "trend"}) == 0.001
    m.observe_decision(gate, ctx, env=1, active_strategies=3, strategy_pnl={"trend": 0.002})
    assert val(pnl, {"strategy_id": "trend"}) == pytest.approx(0.003)  # P&L adds up
    assert val(pnl, {"strategy_id": "defensive"}) == -0.0005
    assert val("allocator_reject_total", {"reason": "SYMBOL_CAP"}) == 4.0
    assert val("allocator_gross_exposure_ratio") == pytest.approx(0.6)
    assert val("allocator_active_strategies") == 3.0


def test_last_decision_gauges_are_its_own_after_the_caller_reuses_its_arrays() -> None:
    """The exposure and capacity gauges are formed when scraped, from copies: a caller
    that writes the next decision into the same arrays does not change what the last
    one reports, and the values are capacity_utilization's."""
    m = Metrics()
    gate, ctx = _gate()
    limits = RiskLimits(max_symbol_weight=0.2, max_participation=0.1, long_only=False)
    want = capacity_utilization(gate, ctx, limits)[1].tolist()
    m.observe_decision(gate, ctx, limits=limits, symbols=["AAA", "BBB", "CCC"], env=1)
    gate.approved[:] = 0.9
    for arr in (ctx.current_weights, ctx.adv_notional, ctx.equity):
        arr[...] = 1.0
    val = m.registry.get_sample_value
    assert val("allocator_gross_exposure_ratio") == pytest.approx(0.6)
    assert val("allocator_net_exposure_ratio") == pytest.approx(0.6)
    got = [
        val("allocator_capacity_utilization_ratio", {"symbol": s}) for s in ("AAA", "BBB", "CCC")
    ]
    assert got == want == [1.0, 1.0, 1.0]  # |w| 0.2 at the 0.2 cap
    with pytest.raises(ValueError, match="2 symbol labels for 3 assets"):
        m.observe_decision(gate, ctx, limits=limits, symbols=["AAA", "BBB"])
    # a context whose fields do not fit the book fails the call, not the later scrapes
    for field, value in (
        ("adv_notional", np.full((2, 4), 1e6)),  # clashes with the book
        ("recent_fills", np.zeros((2, 1, 3))),  # adds an axis
        ("current_weights", np.zeros((4, 2, 3))),  # stacks books
    ):
        bad = dataclasses.replace(ctx, **{field: value})
        with pytest.raises(ValueError, match="do not broadcast to it"):
            m.observe_decision(gate, bad, limits=limits, symbols=["AAA", "BBB", "CCC"])
    assert b"allocator_capacity_utilization_ratio" in m.exposition()


def test_capacity_gauges_of_dropped_symbols_keep_their_own_values() -> None:
    """When the symbol labels change, a symbol no longer given keeps its own last value
    (not the value of whichever symbol now sits at its position)."""
    m = Metrics()
    gate, ctx = _gate()
    limits = RiskLimits(max_symbol_weight=0.2, max_participation=0.1, long_only=False)
    val = m.registry.get_sample_value
    m.observe_decision(gate, ctx, limits=limits, symbols=["AAA", "BBB", "CCC"])
    first = {s: val("allocator_capacity_utilization_ratio", {"symbol": s}) for s in ("AAA", "BBB")}
    assert first == pytest.approx({"AAA": 0.5, "BBB": 0.25})
    m.observe_decision(gate, ctx, limits=limits, symbols=["BBB", "CCC", "DDD"], env=1)
    assert val("allocator_capacity_utilization_ratio", {"symbol": "AAA"}) == first["AAA"]
    assert val("allocator_capacity_utilization_ratio", {"symbol": "BBB"}) == pytest.approx(1.0)


def test_a_decision_during_a_scrape_is_what_the_next_scrape_reports(monkeypatch) -> None:
    """A scrape forming decision 1's capacity use while decision 2 is observed (the
    service scrapes on the event loop, decides on its worker) does not store decision 1's
    values over decision 2: the next scrape reports decision 2."""
    import allocgym.observability as obs

    m = Metrics()
    gate, ctx = _gate()
    limits = RiskLimits(max_symbol_weight=0.2, max_participation=0.1, long_only=False)
    names = ["AAA", "BBB", "CCC"]
    m.observe_decision(gate, ctx, limits=limits, symbols=names)  # decision 1: portfolio 0
    form = obs.capacity_utilization

    def interleaved(*args, **kwargs):
        monkeypatch.setattr(obs, "capacity_utilization", form)
        m.observe_decision(gate, ctx, limits=limits, symbols=names, env=1)  # decision 2
        return form(*args, **kwargs)

    monkeypatch.setattr(obs, "capacity_utilization", interleaved)
    val = m.registry.get_sample_value
    assert val("allocator_capacity_utilization_ratio", {"symbol": "AAA"}) == pytest.approx(0.5)
    later = [val("allocator_capacity_utilization_ratio", {"symbol": s}) for s in names]
    assert later == pytest.approx([1.0, 1.0, 1.0])  # decision 2's: |w| 0.2 at the 0.2 cap


def _reject_counts(m: Metrics) -> dict[str, float]:
    val = m.registry.get_sample_value
    return {code.name: val("allocator_reject_total", {"reason": code.name}) for code in ReasonCode}


def test_reject_counts_by_hand() -> None:
    """One count per (portfolio, symbol) carrying a bit; a portfolio bit that none of the
    portfolio's symbols carries counts once for the portfolio, one they carry adds nothing."""
    rc = ReasonCode
    sym = np.array(
        [
            [int(rc.SYMBOL_CAP | rc.PARTICIPATION_CAP), int(rc.SYMBOL_CAP), 0, 0],
            [0, int(rc.PARTICIPATION_CAP), int(rc.PARTICIPATION_CAP), 0],
            [0, 0, 0, 0],
        ],
        dtype=np.int64,
    )
    port = np.array(
        [
            int(rc.SYMBOL_CAP | rc.TURNOVER_CAP | rc.SLIPPAGE_BUDGET),  # 2 portfolio-only bits
            int(rc.TURNOVER_CAP | rc.PARTICIPATION_CAP),  # PARTICIPATION_CAP on 2 symbols
            int(rc.TURNOVER_CAP),  # no symbol codes at all
        ],
        dtype=np.int64,
    )
    approved = np.zeros((3, 4))
    gate = GateResult(approved, sym, port, {}, approved)
    ctx = calm_context(3, 4)
    m = Metrics()
    m.observe_decision(gate, ctx)
    expected = dict.fromkeys(REASON_NAMES, 0.0)
    expected |= {
        "SYMBOL_CAP": 2.0,  # 2 symbols of portfolio 0; its portfolio bit adds nothing
        "PARTICIPATION_CAP": 3.0,  # 1 + 2 symbols; portfolio 1's bit adds nothing
        "TURNOVER_CAP": 3.0,  # portfolio-only in all three portfolios
        "SLIPPAGE_BUDGET": 1.0,  # portfolio-only in portfolio 0
    }
    assert _reject_counts(m) == expected
    m.observe_decision(gate, ctx)  # counters add up
    assert _reject_counts(m) == {name: 2 * count for name, count in expected.items()}


def test_reject_counts_equal_a_naive_loop() -> None:
    rng = np.random.default_rng(7)
    bits = [int(code) for code in ReasonCode]
    for _ in range(20):
        n_envs, n_assets = rng.integers(1, 5), rng.integers(1, 6)
        pick = rng.random((n_envs, n_assets + 1, len(bits))) < 0.15
        masks = (pick * np.array(bits)).sum(axis=2)
        sym, port = masks[:, :n_assets], masks[:, n_assets]
        expected = dict.fromkeys(REASON_NAMES, 0.0)
        for b in range(n_envs):
            for name, bit in zip(REASON_NAMES, bits, strict=True):
                on_symbols = sum(1 for a in range(n_assets) if sym[b, a] & bit)
                expected[name] += on_symbols or float((port[b] & bit) != 0)
        approved = np.zeros((n_envs, n_assets))
        m = Metrics()
        m.observe_decision(
            GateResult(approved, sym, port, {}, approved),
            calm_context(n_envs, n_assets),
        )
        assert _reject_counts(m) == expected


def test_metrics_use_the_executed_book_and_band_codes() -> None:
    m = Metrics()
    limits = RiskLimits(max_symbol_weight=0.2, max_sector_gross=1.0)
    ctx = GateContext(
        current_weights=np.array([[0.10, 0.10, 0.10]]),
        equity=np.array([1e6]),
        prices=np.array([[50.0, 100.0, 20.0]]),
        adv_notional=np.full((1, 3), 1e9),
        volatility=np.full((1, 3), 0.01),
        spread_bps=np.full((1, 3), 2.0),
        sector_ids=np.array([0, 1, 2]),
        regime=np.array([0]),
        tradable=np.ones((1, 3), dtype=bool),
    )
    gate = RiskGateChain(limits).apply(np.array([[0.103, 0.097, 0.10]]), ctx)
    ex = ExecutionPolicy(ExecutionParams(), limits).apply(gate, ctx)
    m.observe_decision(gate, ctx, execution=ex)
    val = m.registry.get_sample_value
    assert val("allocator_reject_total", {"reason": "NO_TRADE_BAND"}) == 2.0
    assert val("allocator_gross_exposure_ratio") == pytest.approx(0.30)


def test_exposition_names_every_metric_and_reason() -> None:
    m = Metrics()
    gate, ctx = _gate()
    m.observe_decision(
        gate, ctx, latency_s=1e-3, limits=RiskLimits(), strategy_pnl={"mean_reversion": 0.0}
    )
    text = m.exposition().decode()
    for name in (
        "allocator_active_strategies",
        "allocator_gross_exposure_ratio",
        "allocator_net_exposure_ratio",
        "allocator_reject_total",
        "allocator_capacity_utilization_ratio",
        "allocator_strategy_pnl_contribution_currency",
        "allocator_decision_latency_seconds",
    ):
        assert f"# TYPE {name}" in text or f"# TYPE {name.removesuffix('_total')}" in text, name
    for code in ReasonCode:
        assert f'allocator_reject_total{{reason="{code.name}"}}' in text
    assert "unknown" not in text.lower()
    # a second instance has its own registry: no duplicate-timeseries error
    other = Metrics()
    assert other.registry is not m.registry
    assert other.registry.get_sample_value("allocator_gross_exposure_ratio") == 0.0


def prometheus_naming_problems(exposition: str) -> list[str]:
    """What breaks Prometheus' naming conventions in a text exposition: a metric without
    the ``allocator_`` prefix, a counter not ending in ``_total``, a histogram without a
    unit, a fraction of equity without ``_ratio``, or a name of the first release."""
    kinds = dict(
        line.split()[2:4] for line in exposition.splitlines() if line.startswith("# TYPE ")
    )
    helps = {
        line.split(" ", 3)[2]: line.split(" ", 3)[3]
        for line in exposition.splitlines()
        if line.startswith("# HELP ")
    }
    problems = []
    for name, kind in kinds.items():
        if not name.startswith("allocator_"):
            problems.append(f"{name}: no allocator_ prefix")
        if kind == "counter" and not name.endswith("_total"):
            problems.append(f"{name}: a counter not ending in _total")
        if kind == "histogram" and not name.endswith(("_seconds", "_bytes")):
            problems.append(f"{name}: a histogram without its unit")
        created = kind == "gauge" and name.endswith("_created")  # the client's start times
        if not created and "fraction" in helps[name] and not name.endswith("_ratio"):
            problems.append(f"{name}: a fraction not ending in _ratio")
        if name in METRIC_RENAMES:
            problems.append(f"{name}: renamed to {METRIC_RENAMES[name]}")
    return problems


def test_metric_names_follow_prometheus_conventions() -> None:
    m = Metrics()
    gate, ctx = _gate()
    m.observe_decision(gate, ctx, latency_s=1e-3, limits=RiskLimits(), strategy_pnl={"a": 1.0})
    text = m.exposition().decode()
    assert prometheus_naming_problems(text) == []
    assert set(METRIC_RENAMES.values()) <= {
        line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")
    }
    # the checker itself catches each kind of problem
    assert len(prometheus_naming_problems(text.replace("allocator_", "alloc_"))) > 5
    bad = "# HELP allocator_gross_exposure Gross (fraction of equity).\n"
    bad += "# TYPE allocator_gross_exposure gauge\n"
    assert len(prometheus_naming_problems(bad)) == 2  # no _ratio, and a first-release name


def test_readme_migration_note_lists_every_renamed_metric() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for old, new in METRIC_RENAMES.items():
        assert f"| `{old}` | `{new}` |" in readme, old


def test_strategy_shares_split_each_symbol_over_its_strategies() -> None:
    parts = np.array([[0.3, 0.10, 0.0, 1e-17], [0.1, -0.05, 0.0, 0.0]])
    # 0.3 / 0.4; a strategy offsetting another gets a negative share; no owner below 1e-15
    expected = np.array([[0.75, 2.0, 0.0, 0.0], [0.25, -1.0, 0.0, 0.0]])
    np.testing.assert_allclose(strategy_shares(parts), expected, rtol=1e-15)
    # two strategies that nearly cancel own nothing (shares of +-2e11 otherwise); a batch
    # of books is split book by book
    near = np.array([[0.2, 0.2], [-0.2 + 1e-12, -0.1]])
    np.testing.assert_allclose(strategy_shares(near), [[0.0, 2.0], [0.0, -1.0]], rtol=1e-15)
    batch = strategy_shares(np.stack([parts, parts[::-1]]))
    np.testing.assert_array_equal(batch[0], strategy_shares(parts))
    np.testing.assert_array_equal(batch[1], strategy_shares(parts[::-1]))


def test_strategy_pnl_attributes_each_account_by_hand() -> None:
    day = [dt.datetime(2024, 5, d, 20, tzinfo=dt.UTC) for d in range(1, 5)]
    pnl = StrategyPnL(("a", "b"))
    # decision 1: symbols 0 and 1 traded, 0 owned 75/25 by a/b, 1 all b; 2 not traded,
    # so its owners here do not apply
    owners = np.array([[0.75, 0.0, 0.5], [0.25, 1.0, 0.5]])
    traded = np.array([True, True, False])
    assert pnl.update("x", day[0], np.array([10.0, 20.0, 50.0]), np.zeros(3), traded, owners) == {}
    # decision 2: 100 / 50 / 10 shares held; prices +1, -1, +5 -> P&L 100, -50, 50.
    # a = 0.75 * 100 = 75; b = 0.25 * 100 + 1.0 * -50 = -25; symbol 2 has no owner = 50.
    # A trade by no strategy (a fallback) takes symbol 1 from b.
    held = np.array([100.0, 50.0, 10.0])
    got = pnl.update(
        "x", day[1], np.array([11.0, 19.0, 55.0]), held, np.array([False, True, False]), None
    )
    assert got == {"a": 75.0, "b": -25.0, UNATTRIBUTED: 50.0}
    # another account has its own state: its first decision attributes nothing
    assert pnl.update("y", day[1], np.array([11.0, 19.0, 55.0]), held, traded, owners) == {}
    # an earlier bar is ignored; decision 3: prices +1, +2, 0 -> P&L 100, 100, 0:
    # a = 75, b = 25 (symbol 0 still theirs), symbol 1 now unowned = 100
    stale = pnl.update("x", day[0], np.array([1.0, 1.0, 1.0]), held, traded, owners)
    assert stale == {}
    got = pnl.update("x", day[2], np.array([12.0, 21.0, 55.0]), held, np.zeros(3, bool), None)
    assert got == {"a": 75.0, "b": 25.0, UNATTRIBUTED: 100.0}
    assert sum(got.values()) == float(held @ np.array([1.0, 2.0, 0.0]))
    # the same bar again attributes nothing
    assert pnl.update("x", day[2], np.array([12.0, 21.0, 55.0]), held, traded, None) == {}


def test_a_remainder_no_strategy_proposes_keeps_its_owners() -> None:
    """A strategy decision sells a symbol its families no longer propose, and a trade
    limit keeps part of it: the part held still earns for the families that bought it
    (it had gone to unattributed); a fallback's trade still leaves a symbol unowned."""
    day = [dt.datetime(2024, 5, d, 20, tzinfo=dt.UTC) for d in range(1, 5)]
    pnl = StrategyPnL(("a", "b"))
    bought = np.array([[1.0, 0.5], [0.0, 0.5]])
    pnl.update("x", day[0], np.array([10.0, 10.0]), np.zeros(2), np.ones(2, bool), bought)
    # decision 2 sells symbol 0 (no strategy proposes it now: no owner), symbol 1 unchanged
    nobody = np.array([[0.0, 0.5], [0.0, 0.5]])
    held = np.array([100.0, 100.0])
    pnl.update("x", day[1], np.array([10.0, 10.0]), held, np.array([True, False]), nobody)
    # 40 shares of symbol 0 still held: +1 each goes to a, as before
    got = pnl.update("x", day[2], np.array([11.0, 10.0]), np.array([40.0, 100.0]),
                     np.array([True, False]), None)  # fmt: skip
    assert got == {"a": 40.0, "b": 0.0, UNATTRIBUTED: 0.0}
    # the fallback's trade at decision 3 took symbol 0 from a
    got = pnl.update("x", day[3], np.array([12.0, 10.0]), np.array([40.0, 100.0]),
                     np.zeros(2, bool), None)  # fmt: skip
    assert got == {"a": 0.0, "b": 0.0, UNATTRIBUTED: 40.0}


def test_strategy_pnl_memory_is_bounded_and_inputs_checked() -> None:
    day = [dt.datetime(2024, 5, d, 20, tzinfo=dt.UTC) for d in range(1, 4)]
    pnl = StrategyPnL(("a",), max_accounts=2)
    args = (np.ones(2), np.ones(2), np.ones(2, bool), np.ones((1, 2)))
    for account in ("x", "y", "x", "z"):  # z evicts y, the account decided least recently
        pnl.update(account, day[0] if account != "z" else day[1], *args)
    assert len(pnl) == 2
    prices = (np.full(2, 2.0), *args[1:])
    assert pnl.update("x", day[2], *prices) == {"a": 2.0, UNATTRIBUTED: 0.0}
    assert pnl.update("y", day[2], *prices) == {}  # forgotten: starts afresh
    with pytest.raises(ValueError, match="max_accounts=0"):
        StrategyPnL(("a",), max_accounts=0)
    with pytest.raises(ValueError, match="unattributed"):
        StrategyPnL(("a", UNATTRIBUTED))
    with pytest.raises(ValueError, match=r"held_shares \(3,\)"):
        pnl.update("x", day[2], np.ones(2), np.ones(3), np.ones(2, bool), None)
    with pytest.raises(ValueError, match=r"owners \(2, 2\)"):
        pnl.update("x", day[2], np.ones(2), np.ones(2), np.ones(2, bool), np.ones((2, 2)))
