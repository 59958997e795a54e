"""Array kernels shared by the gates: the float tolerance of every limit comparison,
row reductions, the reason-bit trace and the slippage-scale solver.

All functions are pure and elementwise per row (a portfolio's bits do not depend on the
batch it is in); none uses BLAS.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from allocgym.risk.codes import GATE_CODES, GATE_NAMES, ReasonCode

RTOL = 1e-12  # relative float tolerance of every limit comparison inside the chain
ATOL = 1e-300  # absolute floor of that tolerance: scaling into subnormals rounds arbitrarily
BIG = 1e150  # proposal/book entries are clipped to +-BIG before any sum (no overflow)
MAX_ABS_BETA = 1e6  # larger betas are treated as corrupt input
MAX_ABS_LOADING = 1e6  # larger factor loadings are treated as corrupt input
BISECT_ITERS = 53  # 2**-53 = half an ulp of 1.0: bisections run to float resolution
_GRID = 2.0**-BISECT_ITERS  # spacing of the points a [0, 1] bisection can end on
# Masks larger than this are OR-ed in by a multiply (ufunc ``where=`` is slow on them).
_WIDE = 256
# From this many rows on, row gates compute only the rows they change (else all rows).
_SUBSET_MIN_ROWS = 64

GATE_ROW: dict[ReasonCode, int] = {code: i for i, code in enumerate(GATE_CODES)}

# ``ndarray.all`` / ``any`` without their Python wrapper (a frame per call on tiny arrays).
_all = np.logical_and.reduce
_any = np.logical_or.reduce


def is_inside(value: np.ndarray, limit: Any, mag: Any) -> np.ndarray:
    """True where ``value`` is at most ``limit`` within the tolerance (NaN is outside).

    ``mag`` is the sum of the absolute terms ``value`` was computed from, so the tolerance
    covers the rounding of signed sums (net, beta) as well as of gross-type sums.
    Evaluated in place (one temporary): ``limit + RTOL * (limit + mag) + ATOL``.
    """
    tol = np.add(limit, mag)
    tol *= RTOL
    tol += limit
    tol += ATOL
    return value <= tol


def is_over(value: np.ndarray, limit: Any, mag: Any) -> np.ndarray:
    """True where ``value`` exceeds ``limit`` beyond the tolerance (NaN counts as over)."""
    return ~is_inside(value, limit, mag)


def all_of(mask: np.ndarray) -> bool:
    """``mask.all()``."""
    return bool(_all(mask, axis=None))


def all_below(value: np.ndarray, limit: Any) -> bool:
    """``value <= limit`` everywhere: then every tolerance test of ``value`` passes.

    The tolerance only adds to a nonnegative limit (rounding is monotone), so this plain
    comparison is an exact shortcut for the common case where nothing is near a limit.
    """
    return bool(_all(value <= limit, axis=None))


_ONES_U8: dict[int, np.ndarray] = {}


def _row_counts(mask: np.ndarray) -> np.ndarray:
    """Number of True per row of a bool (n, k) array, k < 256, as uint8 (an integer
    matrix-vector product: exact, and several times faster than a row reduction)."""
    k = mask.shape[1]
    ones = _ONES_U8.get(k)
    if ones is None:
        ones = np.ones(k, dtype=np.uint8)
        ones.flags.writeable = False
        _ONES_U8[k] = ones
    return mask.view(np.uint8) @ ones


def rows_any(mask: np.ndarray) -> np.ndarray:
    """``mask.any(axis=1)`` for a bool (n, k) array (counted when many short rows)."""
    if mask.shape[1] <= 64 and mask.shape[0] >= 128:
        return _row_counts(mask) != 0
    return _any(mask, axis=1)


def rows_all(mask: np.ndarray) -> np.ndarray:
    """``mask.all(axis=1)`` for a bool (n, k) array (counted when many short rows)."""
    if mask.shape[1] <= 64 and mask.shape[0] >= 128:
        return _row_counts(mask) == mask.shape[1]
    return _all(mask, axis=1)


def or_bits(target: np.ndarray, bit: int, mask: np.ndarray) -> None:
    """``target |= bit`` where ``mask``, in place."""
    if mask.size > _WIDE:
        target |= np.multiply(mask, bit, dtype=np.int64)
    else:
        np.bitwise_or(target, bit, out=target, where=mask)


class Trace:
    """Reason bits and L1 clipped per gate, accumulated while the chain runs.

    ``clip`` holds one row per code of ``GATE_CODES`` (``clipped`` views them by name);
    ``touched`` is False until some gate changes some weight.
    """

    __slots__ = ("clip", "port", "sym", "touched")

    def __init__(self, n_envs: int, n_assets: int) -> None:
        self.sym = np.zeros((n_envs, n_assets), dtype=np.int64)
        self.port = np.zeros(n_envs, dtype=np.int64)
        self.clip = np.zeros((len(GATE_CODES), n_envs))
        self.touched = False

    @property
    def clipped(self) -> dict[str, np.ndarray]:
        return dict(zip(GATE_NAMES, self.clip, strict=True))

    def rows(self, sel: slice) -> Trace:
        """The trace of a block of rows: views of its bits and amounts (``touched`` is the
        block's own from here on)."""
        out = Trace.__new__(Trace)
        out.sym, out.port, out.clip = self.sym[sel], self.port[sel], self.clip[:, sel]
        out.touched = self.touched
        return out

    def copy(self) -> Trace:
        """A snapshot of the bits and amounts."""
        out = Trace.__new__(Trace)
        out.sym, out.port, out.clip = self.sym.copy(), self.port.copy(), self.clip.copy()
        out.touched = self.touched
        return out

    def record(
        self,
        code: ReasonCode,
        before: np.ndarray,
        after: np.ndarray,
        *,
        portfolio: bool,
        rows: np.ndarray | None = None,
    ) -> None:
        """Code the symbols ``before != after``; ``rows``: the arrays are those rows only."""
        changed = before != after
        if not changed.any():
            return
        self.touched = True
        bit = int(code)
        diff = before - after
        removed = np.abs(diff, out=diff).sum(axis=1)
        i = GATE_ROW[code]
        if rows is None:
            or_bits(self.sym, bit, changed)
            if portfolio:
                or_bits(self.port, bit, rows_any(changed))
            self.clip[i] += removed
            return
        block = self.sym[rows]
        or_bits(block, bit, changed)
        self.sym[rows] = block
        if portfolio:
            self.port[rows[rows_any(changed)]] |= bit
        self.clip[i, rows] += removed


def reduce_only(w: np.ndarray, c: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``w`` with the ``rows`` (n,) held to reduce-only from ``c``: no name grows in
    magnitude (it stays at ``c``) or flips sign (it closes)."""
    # Signs, not products: a product of two tiny weights underflows to 0.
    flip = np.sign(w) * np.sign(c) < 0
    r = np.where(flip, 0.0, np.where(np.abs(w) > np.abs(c), c, w))
    return np.where(rows[:, None], r, w)


def replace_rows(w: np.ndarray, rows: np.ndarray, block: np.ndarray) -> np.ndarray:
    out = w.copy()
    out[rows] = block
    return out


def subset_rows(over: np.ndarray) -> np.ndarray | None:
    """Rows to compute a row gate on: ``None`` for all of them (every row is over, or the
    batch is small enough that gathering rows costs more than it saves), else the indices.
    Rows are computed elementwise, so both give the same bits."""
    if over.shape[0] < _SUBSET_MIN_ROWS or over.all():
        return None
    return np.flatnonzero(over)


def _cost_ok(
    s: np.ndarray, linear: np.ndarray, impact: np.ndarray, budget: float | np.ndarray
) -> np.ndarray:
    """The slippage bisection's test, the same float operations in the same order."""
    return s * linear + s * np.sqrt(s) * impact <= budget


def solve_cost_scale(
    linear: np.ndarray, impact: np.ndarray, budget: float | np.ndarray
) -> np.ndarray:
    """Largest ``s`` in [0, 1] with ``s * linear + s**1.5 * impact <= budget`` (one budget,
    or one per entry: an array shaped like ``linear``).

    The defining computation is a 53-step bisection of [0, 1]; its midpoints are exact
    multiples of ``2**-53`` and the test is monotone in ``s`` (every float operation in
    it is monotone for ``linear, impact >= 0``), so it returns exactly the largest grid
    point ``s < 1`` that passes (0 if none does). That point is found here from a Newton
    estimate of the root checked against the same test on the grid; rows the check does
    not settle in a few grid steps run the bisection itself.
    """
    n = linear.shape[0]
    lo = np.zeros(n)
    if n == 0:
        return lo
    # Newton on u = sqrt(s): impact u^3 + linear u^2 = budget, from an upper bound (each
    # term alone reaches the budget at or after the root), so it decreases to the root.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        u = np.minimum(np.sqrt(budget / linear), np.cbrt(budget / impact))
        u = np.nan_to_num(np.minimum(u, 1.0), nan=0.0, posinf=1.0)
        for _ in range(8):
            g = (impact * u + linear) * u * u - budget
            dg = (3.0 * impact * u + 2.0 * linear) * u
            u = np.where(dg > 0, u - g / np.where(dg > 0, dg, 1.0), u)
            u = np.nan_to_num(np.clip(u, 0.0, 1.0), nan=0.0)
        s = np.floor(u * u / _GRID) * _GRID
        s = np.clip(s, 0.0, 1.0 - _GRID)
        settled = np.zeros(n, dtype=bool)
        for _ in range(6):
            here = (s == 0.0) | _cost_ok(s, linear, impact, budget)
            nxt = s + _GRID
            above = (nxt >= 1.0) | ~_cost_ok(nxt, linear, impact, budget)
            settled = here & above
            if settled.all():
                return s
            s = np.where(here, np.where(above, s, nxt), np.maximum(s - _GRID, 0.0))
    rest = np.flatnonzero(~settled)
    s[rest] = bisect_cost_scale(
        linear[rest], impact[rest], budget if np.ndim(budget) == 0 else budget[rest]
    )
    return s


def bisect_cost_scale(
    linear: np.ndarray, impact: np.ndarray, budget: float | np.ndarray
) -> np.ndarray:
    """The 53-step bisection of [0, 1] that defines :func:`solve_cost_scale`."""
    lo = np.zeros_like(linear)
    hi = np.ones_like(linear)
    for _ in range(BISECT_ITERS):
        mid = 0.5 * (lo + hi)
        with np.errstate(invalid="ignore", over="ignore"):
            ok = _cost_ok(mid, linear, impact, budget)
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return lo
