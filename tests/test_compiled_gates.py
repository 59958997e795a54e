"""The hard gates' compiled kernel: each gate alone on hand-computed books (its result,
reason bits and clipped amount), NaN/inf rows, and random books that the gates leave
inside every hard limit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocgym.compiled import gates
from allocgym.risk import ReasonCode
from allocgym.risk.context import Bounds, sector_map
from allocgym.risk.gates.registry import (
    coupled_ok,
    coupled_violations,
    hard_gates,
    hard_ok,
    names_outside,
    signed_gates,
)
from allocgym.risk.kernels import ATOL, GATE_ROW, RTOL, Trace

CODES = [ReasonCode[name] for name in gates.GATES]
BITS = np.array([int(code) for code in CODES], dtype=np.int64)
ROWS = np.array([GATE_ROW[code] for code in CODES], dtype=np.int64)
LOOSE = 1e9
SYMBOL_LEVEL = {ReasonCode.LONG_ONLY, ReasonCode.SYMBOL_CAP, ReasonCode.SYMBOL_NOTIONAL_CAP}


def gate_alone(
    code: ReasonCode,
    w: list[list[float]],
    *,
    cap: float = LOOSE,
    sector_ids: list[int] | None = None,
    sector_cap: float = LOOSE,
    net_cap: float = LOOSE,
    betas: list[list[float]] | None = None,
    beta_tol: float = LOOSE,
    gross_cap: float = LOOSE,
) -> tuple[np.ndarray, Trace, bool]:
    """Run the kernel's gate of ``code`` alone (``cap``: both symbol caps; ``gross_cap``:
    the gross and the notional cap)."""
    books = np.array(w, dtype=np.float64)
    n, m = books.shape
    ids = np.zeros(m, dtype=np.int64) if sector_ids is None else np.array(sector_ids)
    caps, grosses = np.full(n, cap), np.full(n, gross_cap)
    trace = Trace(n, m)
    out, touched = gates.hard_gates(
        books,
        1 << gates.GATES.index(code.name),
        BITS,
        ROWS,
        caps,
        caps,
        sector_cap,
        ids,
        max(int(ids.max()) + 1, 1),
        net_cap,
        books if betas is None else np.array(betas, dtype=np.float64),
        beta_tol,
        grosses,
        grosses,
        RTOL,
        ATOL,
        trace.sym,
        trace.port,
        trace.clip,
    )
    return out, trace, touched


def assert_acted(trace: Trace, code: ReasonCode, names: list[int], clipped: float) -> None:
    """Row 0 changed by ``code`` alone at ``names`` (removing ``clipped``); row 1 untouched."""
    bit = int(code)
    assert trace.sym[0].tolist() == [bit if a in names else 0 for a in range(trace.sym.shape[1])]
    assert trace.port.tolist() == [0 if code in SYMBOL_LEVEL else bit, 0]
    expected = np.zeros(trace.clip.shape)
    expected[GATE_ROW[code], 0] = clipped
    assert trace.clip.tolist() == expected.tolist()
    assert not trace.sym[1].any()


INSIDE = [0.125, 0.0, 0.0625, 0.0]  # inside every bound below


def test_long_only_zeroes_short_names():
    out, trace, touched = gate_alone(ReasonCode.LONG_ONLY, [[0.25, -0.5, 0.125, -0.0625], INSIDE])
    assert out[0].tolist() == [0.25, 0.0, 0.125, 0.0]
    assert_acted(trace, ReasonCode.LONG_ONLY, [1, 3], 0.5625)
    assert touched and out[1].tolist() == INSIDE


@pytest.mark.parametrize("code", [ReasonCode.SYMBOL_CAP, ReasonCode.SYMBOL_NOTIONAL_CAP])
def test_symbol_caps_clip_each_name_keeping_its_sign(code):
    at_cap = 0.25 * (1 + 1e-13)  # within the relative tolerance: at the cap
    out, trace, touched = gate_alone(code, [[0.5, -0.375, 0.125, at_cap], INSIDE], cap=0.25)
    assert out[0].tolist() == [0.25, -0.25, 0.125, at_cap]
    assert_acted(trace, code, [0, 1], 0.375)
    assert touched and out[1].tolist() == INSIDE


def test_sector_cap_scales_each_sector_over_its_cap():
    # sector 0 has gross 1.0 > 0.5: halved; sector 1 is inside; the last name has no sector
    out, trace, touched = gate_alone(
        ReasonCode.SECTOR_CAP,
        [[0.5, -0.5, 0.25, 0.75], INSIDE],
        sector_ids=[0, 0, 1, -1],
        sector_cap=0.5,
    )
    assert out[0].tolist() == [0.25, -0.25, 0.25, 0.75]
    assert_acted(trace, ReasonCode.SECTOR_CAP, [0, 1], 0.5)
    assert touched and out[1].tolist() == INSIDE


def test_net_cap_shrinks_the_dominant_side():
    # net 0.5 > 0.25: the long side (1.0) scaled by (0.25 + 0.5) / 1.0
    out, trace, touched = gate_alone(
        ReasonCode.NET_CAP, [[0.75, 0.25, -0.5, 0.0], INSIDE], net_cap=0.25
    )
    assert out[0].tolist() == [0.5625, 0.1875, -0.5, 0.0]
    assert_acted(trace, ReasonCode.NET_CAP, [0, 1], 0.25)
    assert touched and out[1].tolist() == INSIDE


def test_net_cap_shrinks_the_short_side_when_it_dominates():
    out, trace, _ = gate_alone(ReasonCode.NET_CAP, [[-0.75, -0.25, 0.5, 0.0], INSIDE], net_cap=0.25)
    assert out[0].tolist() == [-0.5625, -0.1875, 0.5, 0.0]
    assert_acted(trace, ReasonCode.NET_CAP, [0, 1], 0.25)


BETAS = [[2.0, 1.0, 0.5, 0.0], [1.0, 1.0, 1.0, 1.0]]


def test_beta_limit_shrinks_the_side_carrying_the_excess_beta():
    # beta 0.625 > 0.25: the positive side (0.75) scaled by (0.25 + 0.125) / 0.75 = 0.5
    out, trace, touched = gate_alone(
        ReasonCode.BETA_LIMIT, [[0.25, 0.25, -0.25, 0.5], INSIDE], betas=BETAS, beta_tol=0.25
    )
    assert out[0].tolist() == [0.125, 0.125, -0.25, 0.5]
    assert_acted(trace, ReasonCode.BETA_LIMIT, [0, 1], 0.25)
    assert touched and out[1].tolist() == INSIDE


def test_beta_limit_refits_the_net_with_a_uniform_scale():
    # after the beta fit the net is 0.5 > 0.25: the whole book is halved (the beta with it)
    out, trace, _ = gate_alone(
        ReasonCode.BETA_LIMIT,
        [[0.25, 0.25, -0.25, 0.5], INSIDE],
        betas=BETAS,
        beta_tol=0.25,
        net_cap=0.25,
    )
    assert out[0].tolist() == [0.0625, 0.0625, -0.125, 0.25]
    beta, net = int(ReasonCode.BETA_LIMIT), int(ReasonCode.NET_CAP)
    assert trace.sym[0].tolist() == [beta | net, beta | net, net, net]
    assert trace.port.tolist() == [beta | net, 0]
    assert trace.clip[GATE_ROW[ReasonCode.BETA_LIMIT]].tolist() == [0.25, 0.0]
    assert trace.clip[GATE_ROW[ReasonCode.NET_CAP]].tolist() == [0.5, 0.0]


@pytest.mark.parametrize("code", [ReasonCode.GROSS_CAP, ReasonCode.NOTIONAL_CAP])
def test_gross_caps_scale_the_whole_book(code):
    out, trace, touched = gate_alone(code, [[0.5, -0.25, 0.25, 0.0], INSIDE], gross_cap=0.5)
    assert out[0].tolist() == [0.25, -0.125, 0.125, 0.0]
    assert_acted(trace, code, [0, 1, 2], 0.5)  # a zero weight stays unchanged: no bit
    assert touched and out[1].tolist() == INSIDE


def test_nothing_over_leaves_the_books_and_the_trace_alone():
    books = [INSIDE, [0.0, 0.0, 0.0, 0.0]]
    for code in CODES:
        out, trace, touched = gate_alone(
            code, books, cap=0.25, sector_cap=0.5, net_cap=0.25, betas=[[1.0] * 4] * 2,
            beta_tol=0.25, gross_cap=0.5,
        )  # fmt: skip
        assert out.tolist() == books and not touched, code.name
        assert not trace.sym.any() and not trace.port.any() and not trace.clip.any()


# --------------------------------------------------------------------- every gate


def bounds(
    n: int,
    m: int,
    *,
    long_only: bool = False,
    cap: float = 0.25,
    cap_notional: float | None = None,
    sector_ids: list[int] | None = None,
    sector_cap: float = 0.5,
    net_cap: float = 0.5,
    betas: np.ndarray | None = None,
    beta_tol: float = 0.0,
    gross_cap: float = 1.0,
    notional_cap: float | None = None,
) -> Bounds:
    ids = np.arange(m) % 3 if sector_ids is None else np.array(sector_ids)
    return Bounds(
        cap_pct=np.full((n, 1), cap),
        cap_notional=None if cap_notional is None else np.full((n, 1), cap_notional),
        sector_cap=sector_cap,
        sectors=sector_map(ids, m),
        net_cap=net_cap,
        betas=betas,
        beta_tol=beta_tol,
        gross_cap=np.full(n, gross_cap),
        notional_cap=None if notional_cap is None else np.full(n, notional_cap),
        long_only=long_only,
    )


def test_nan_and_inf_rows_are_gated_on_their_own():
    """A NaN name is outside the symbol cap (clipped to it, the amount removed is NaN); an
    infinite one is within the tolerance, which grows with the value, so it is not
    clipped (the chain clips its inputs to +-1e150 before any gate). The other rows'
    results are those they get alone."""
    w = np.array([[np.nan, 0.125, -0.5, 0.0], [np.inf, 0.0, 0.0, 0.0], [0.5, -0.5, 0.25, 0.0]])
    b = bounds(3, 4)
    trace = Trace(3, 4)
    out = hard_gates(w, b, trace)
    assert out[0].tolist() == [0.25, 0.125, -0.25, 0.0]
    assert np.isnan(trace.clip[GATE_ROW[ReasonCode.SYMBOL_CAP], 0])
    assert trace.sym[0, 0] & int(ReasonCode.SYMBOL_CAP)
    assert out[1].tolist() == [np.inf, 0.0, 0.0, 0.0] and not trace.sym[1].any()
    alone = Trace(1, 4)
    assert out[2].tolist() == hard_gates(w[2:], b.take(slice(2, 3)), alone)[0].tolist()
    assert trace.sym[2].tolist() == alone.sym[0].tolist()
    assert trace.clip[:, 2].tolist() == alone.clip[:, 0].tolist()


def test_signed_gates_run_only_the_net_and_beta_limits():
    w = np.array([[0.75, 0.25, -0.5, 0.0]])  # over the symbol cap and the net cap
    trace = Trace(1, 4)
    out = signed_gates(w, bounds(1, 4, net_cap=0.25), trace)
    assert out[0].tolist() == [0.5625, 0.1875, -0.5, 0.0]
    assert trace.sym[0].tolist() == [int(ReasonCode.NET_CAP)] * 2 + [0, 0]
    assert trace.touched


def test_the_measures_flag_each_limit_and_name():
    b = bounds(2, 4, long_only=True, sector_ids=[0, 0, 1, -1], net_cap=0.5)
    # row 0: short name 1, name 0 over the 0.25 cap; row 1: net 1.0 over 0.5 (its sector
    # 0 holds 0.5, at the cap: inside)
    w = np.array([[0.375, -0.125, 0.25, 0.0], [0.25, 0.25, 0.25, 0.25]])
    assert names_outside(w, b).tolist() == [[True, True, False, False], [False] * 4]
    assert hard_ok(w, b).tolist() == [False, False]
    assert [(code, rows.tolist()) for code, rows in coupled_violations(w, b)] == [
        (ReasonCode.SECTOR_CAP, [False, False]),
        (ReasonCode.NET_CAP, [False, True]),
        (ReasonCode.GROSS_CAP, [False, False]),  # beta and notional limits are off
    ]
    assert coupled_ok(w, b).tolist() == [True, False]
    assert coupled_ok(w, b, frozenset({ReasonCode.GROSS_CAP})).tolist() == [True, True]


finite = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)
cap = st.floats(0.0, 2.0, allow_nan=False, allow_infinity=False)


@st.composite
def batches(draw: st.DrawFn) -> tuple[np.ndarray, Bounds]:
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 9))
    w = np.array(draw(st.lists(finite, min_size=n * m, max_size=n * m))).reshape(n, m)
    with_beta = draw(st.booleans())
    b = bounds(
        n,
        m,
        long_only=draw(st.booleans()),
        cap=draw(cap),
        cap_notional=draw(st.none() | cap),
        sector_ids=draw(st.lists(st.integers(-1, 2), min_size=m, max_size=m)),
        sector_cap=draw(cap),
        net_cap=draw(cap),
        betas=(
            np.array(draw(st.lists(finite, min_size=n * m, max_size=n * m))).reshape(n, m)
            if with_beta
            else None
        ),
        beta_tol=draw(cap),
        gross_cap=draw(cap),
        notional_cap=draw(st.none() | cap),
    )
    return w, b


@settings(max_examples=300, deadline=None)
@given(batches())
def test_the_gates_leave_every_book_inside_the_hard_limits(batch):
    w, b = batch
    trace = Trace(*w.shape)
    out = hard_gates(w, b, trace)
    assert hard_ok(out, b).all()
    assert trace.touched == (out != w).any()
    # each row gated alone gets the same books and trace, bit for bit
    for r in range(w.shape[0]):
        alone = Trace(1, w.shape[1])
        row = hard_gates(w[r : r + 1], b.take(slice(r, r + 1)), alone)
        assert row.tobytes() == out[r : r + 1].tobytes()
        assert alone.sym.tobytes() == trace.sym[r : r + 1].tobytes()
        assert alone.clip.tobytes() == trace.clip[:, r : r + 1].copy().tobytes()
