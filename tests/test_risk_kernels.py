"""The gates' array kernels (``allocgym.risk.kernels``): the slippage-scale solver against a
bisection written here from its docstring, its edges (zero, infinite and NaN parts, budgets
outside the cost range, subnormals), its fast path, and the tolerance and row-reduction
helpers against plain numpy references."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from allocgym.risk import kernels
from allocgym.risk.kernels import (
    ATOL,
    RTOL,
    all_below,
    bisect_cost_scale,
    is_inside,
    is_over,
    or_bits,
    rows_all,
    rows_any,
    solve_cost_scale,
    subset_rows,
)

GRID = 2.0**-53  # the documented grid: midpoints of a 53-step bisection of [0, 1]
TOP = 1.0 - GRID  # the largest grid point below 1 (the answer when every s passes)
TINY = 5e-324  # the smallest subnormal, 2**-1074


def passes(s: float, linear: float, impact: float, budget: float) -> bool:
    """The documented test ``s * linear + s**1.5 * impact <= budget`` in the solver's float
    operations (``s * sqrt(s)`` for ``s**1.5``), on Python floats."""
    return s * linear + s * math.sqrt(s) * impact <= budget


def reference_scale(linear: float, impact: float, budget: float) -> float:
    """The defining 53-step bisection of [0, 1], one scalar at a time."""
    lo, hi = 0.0, 1.0
    for _ in range(53):
        mid = 0.5 * (lo + hi)
        if passes(mid, linear, impact, budget):
            lo = mid
        else:
            hi = mid
    return lo


def solve(linear: float, impact: float, budget: float) -> float:
    return float(solve_cost_scale(np.array([linear]), np.array([impact]), budget)[0])


# ----------------------------------------------------------------------------- solver


@pytest.mark.parametrize(
    ("linear", "impact", "budget", "expected"),
    [
        (2.0, 0.0, 0.5, 0.25),  # linear only: s * 2 <= 0.5
        (0.0, 8.0, 1.0, 0.25),  # impact only: 0.25 * 0.5 * 8 = 1
        (1.0, 1.0, 0.375, 0.25),  # both: 0.25 + 0.125 = 0.375
        (4.0, 0.0, 1.0, 0.25),
        (0.0, 0.0, 0.0, TOP),  # no cost at all: every s passes
        (0.0, 0.0, 1e-3, TOP),
        (1.0, 2.0, 3.0, TOP),  # the full trade costs exactly the budget
        (1.0, 2.0, 1e9, TOP),  # budget far above the full cost
        (1.0, 1.0, 0.0, 0.0),  # zero budget: only s = 0 costs nothing
        (0.0, 1.0, 0.0, 0.0),
        (1.0, 1.0, -1.0, 0.0),  # a negative budget: nothing passes
        (1.0, 1.0, math.inf, TOP),  # no limit
        (math.inf, 1.0, 0.5, 0.0),  # an infinite cost part: any s > 0 is over
        (1.0, math.inf, 0.5, 0.0),
        (0.0, math.inf, 0.5, 0.0),
        (math.nan, 1.0, 0.5, 0.0),  # NaN parts or budget: the test never passes
        (1.0, math.nan, 0.5, 0.0),
        (1.0, 1.0, math.nan, 0.0),
        # subnormals: s * 8 TINY rounds to 2 TINY up to s = 5/16 (2.5 ties to even)
        (8 * TINY, 0.0, 2 * TINY, 0.3125),
    ],
)
def test_solver_hand_computed_edges(
    linear: float, impact: float, budget: float, expected: float
) -> None:
    """The largest grid point ``s < 1`` passing the cost test, worked out by hand: exact
    binary cases, zero parts, zero/negative/infinite/NaN budgets, infinite and NaN costs,
    and a subnormal case decided by float rounding. The bisection that defines it agrees."""
    assert solve(linear, impact, budget) == expected
    assert float(bisect_cost_scale(np.array([linear]), np.array([impact]), budget)[0]) == expected
    assert reference_scale(linear, impact, budget) == expected


def test_solver_returns_the_largest_passing_grid_point() -> None:
    """On random inputs over many magnitudes each ``s`` is a multiple of ``2**-53`` below
    1 that passes the test (or is 0), and the next grid point does not pass (or is 1)."""
    rng = np.random.default_rng(3)
    n = 400
    linear = np.exp(rng.uniform(-30, 5, n)) * (rng.random(n) < 0.85)
    impact = np.exp(rng.uniform(-30, 5, n)) * (rng.random(n) < 0.85)
    budget = np.exp(rng.uniform(-20, 3, n))
    s = solve_cost_scale(linear, impact, budget)
    for si, li, ii, bi in zip(s, linear, impact, budget, strict=True):
        si = float(si)
        assert 0.0 <= si < 1.0
        assert si / GRID == math.floor(si / GRID)
        assert si == 0.0 or passes(si, li, ii, bi)
        assert si + GRID >= 1.0 or not passes(si + GRID, li, ii, bi)


def test_solver_equals_reference_bisection_bit_for_bit() -> None:
    """Scalar budget and per-entry budgets: the solver returns exactly the value of the
    defining bisection, written here one scalar at a time."""
    rng = np.random.default_rng(7)
    n = 300
    linear = np.exp(rng.uniform(-25, 4, n)) * (rng.random(n) < 0.9)
    impact = np.exp(rng.uniform(-25, 4, n)) * (rng.random(n) < 0.9)
    impact[::37] = np.inf
    budgets = np.exp(rng.uniform(-15, 2, n))
    for budget in (2.5e-3, budgets):
        got = solve_cost_scale(linear, impact, budget)
        per_entry = np.broadcast_to(budget, (n,))
        want = [reference_scale(*args) for args in zip(linear, impact, per_entry, strict=True)]
        assert got.tolist() == want


def test_solver_subnormal_rows_beside_ordinary_rows() -> None:
    """Rows whose costs are subnormal (where the estimate is too coarse and the bisection
    decides) get the bisection's exact answer next to ordinary rows, each with its own
    budget entry."""
    linear = np.array([2.0, 8 * TINY, 1.0, 1e-310, 4.0])
    impact = np.array([0.0, 0.0, 1.0, 1e-310, 0.0])
    budget = np.array([0.5, 2 * TINY, 0.375, 1e-311, 1.0])
    got = solve_cost_scale(linear, impact, budget)
    want = [reference_scale(*args) for args in zip(linear, impact, budget, strict=True)]
    assert got.tolist() == want
    assert got[[0, 1, 2, 4]].tolist() == [0.25, 0.3125, 0.25, 0.25]
    assert 0.0 < got[3] < 0.1
    assert solve_cost_scale(np.zeros(0), np.zeros(0), 1e-3).shape == (0,)


def test_solver_settles_ordinary_rows_without_the_bisection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The documented fast path: for costs in the normal float range (and infinite
    impact) the Newton estimate, checked on the grid, settles every row, so the 53-step
    bisection runs for none of them. The answers are still the bisection's."""
    calls: list[int] = []  # rows handed to the bisection, per call

    def spy(linear: np.ndarray, impact: np.ndarray, budget: float | np.ndarray) -> np.ndarray:
        calls.append(linear.size)
        return bisect_cost_scale(linear, impact, budget)

    monkeypatch.setattr(kernels, "bisect_cost_scale", spy)
    rng = np.random.default_rng(5)
    n = 2000
    linear = np.exp(rng.uniform(-30, 5, n)) * (rng.random(n) < 0.9)
    impact = np.exp(rng.uniform(-30, 5, n)) * (rng.random(n) < 0.9)
    impact[rng.random(n) < 0.05] = np.inf
    hand = (  # one term dominant, both equal at the root, start far from the root
        np.array([0.0, 1.0, 1.0, 1e-6, 1e3, 2.0, 0.5]),
        np.array([1e6, 0.0, 1.0, 1e3, 1e-6, 3.0, np.inf]),
    )
    for lin, imp in ((linear, impact), hand):
        for budget in (1e-3, 0.3, np.exp(rng.uniform(-12, 1, lin.size))):
            got = solve_cost_scale(lin, imp, budget)
            want = bisect_cost_scale(lin, imp, budget)
            assert np.array_equal(got, want)
    assert sum(calls) == 0, f"rows left to the bisection: {calls}"


def test_solver_and_bisection_emit_no_float_warnings() -> None:
    """Zero parts (divisions by zero), infinite parts (0 * inf) and costs that overflow
    are expected inputs: neither the solver nor its bisection emits a RuntimeWarning, even
    under numpy's default error state (warn on divide, overflow and invalid)."""
    linear = np.array([0.0, 1.0, 1e308, np.inf, 0.0, 1.0])
    impact = np.array([1.0, 0.0, 1e308, 1.0, np.inf, np.nan])
    with (
        warnings.catch_warnings(),
        np.errstate(divide="warn", over="warn", invalid="warn", under="ignore"),
    ):
        warnings.simplefilter("error")
        for budget in (0.5, 1.7e308, np.inf, 0.0):
            got = solve_cost_scale(linear, impact, budget)
            ref = bisect_cost_scale(linear, impact, budget)
            assert np.array_equal(got, ref)
        big = bisect_cost_scale(np.array([1e308]), np.array([1e308]), 1.7e308)
    assert big[0] == reference_scale(1e308, 1e308, 1.7e308)
    assert 0.5 < big[0] < 0.95


# ----------------------------------------------------------------------------- tolerance


def test_is_inside_tolerance_formula() -> None:
    """``value <= limit + RTOL * (limit + mag) + ATOL``: inside up to that bound, outside
    one step beyond; NaN is outside; ``is_over`` is the complement."""
    limit, mag = 1.0, 3.0
    edge = limit + RTOL * (limit + mag) + ATOL
    value = np.array([0.5, 1.0, edge, np.nextafter(edge, 2.0), 2.0, np.nan, -np.inf])
    inside = is_inside(value, limit, mag)
    assert inside.tolist() == [True, True, True, False, False, False, True]
    assert is_over(value, limit, mag).tolist() == (~inside).tolist()
    # per-entry limits and magnitudes; a zero limit still admits ATOL
    got = is_inside(
        np.array([1e-300, 2e-300, 0.3]), np.array([0.0, 0.0, 0.2]), np.array([0, 0, 1e11])
    )
    assert got.tolist() == [True, False, True]  # 0.2 + 1e-12 * (0.2 + 1e11) > 0.3


def test_all_below_is_the_plain_comparison() -> None:
    """True only when every value is at most the limit (no tolerance, NaN fails)."""
    assert all_below(np.array([0.1, 1.0]), 1.0)
    assert not all_below(np.array([0.1, np.nextafter(1.0, 2.0)]), 1.0)
    assert not all_below(np.array([np.nan]), 1.0)
    assert all_below(np.array([0.1, 0.4]), np.array([0.1, 0.5]))


# ----------------------------------------------------------------------------- reductions


@pytest.mark.parametrize(("n_rows", "n_cols"), [(3, 4), (200, 5), (200, 64), (130, 65)])
def test_rows_any_rows_all_match_numpy(n_rows: int, n_cols: int) -> None:
    """Both the counted path (many short rows) and the plain one equal ``any``/``all``
    over each row, including all-True and all-False rows."""
    rng = np.random.default_rng(n_rows * 100 + n_cols)
    mask = rng.random((n_rows, n_cols)) < 0.9
    mask[0] = True
    mask[1] = False
    mask[2, :] = rng.random(n_cols) < 0.02
    assert np.array_equal(rows_any(mask), mask.any(axis=1))
    assert np.array_equal(rows_all(mask), mask.all(axis=1))
    assert rows_all(mask)[0] and not rows_any(mask)[1]


@pytest.mark.parametrize("shape", [(2, 3), (40, 10)])
def test_or_bits_sets_the_bit_where_masked(shape: tuple[int, int]) -> None:
    """``target |= bit`` exactly where the mask is True, other bits kept (small masks and
    those above the multiply threshold)."""
    rng = np.random.default_rng(1)
    target = rng.integers(0, 8, shape).astype(np.int64)
    mask = rng.random(shape) < 0.5
    want = np.where(mask, target | 16, target)
    or_bits(target, 16, mask)
    assert np.array_equal(target, want)


def test_subset_rows() -> None:
    """``None`` (compute every row) below 64 rows or when all rows are over; else the
    indices of the rows over."""
    assert subset_rows(np.array([True, False, True])) is None
    many = np.zeros(100, dtype=bool)
    many[[3, 50]] = True
    assert subset_rows(many).tolist() == [3, 50]
    assert subset_rows(np.ones(100, dtype=bool)) is None
