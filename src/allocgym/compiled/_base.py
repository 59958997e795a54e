"""The kernel registry (:func:`warm_up`), the signature types and the small inline
helpers every kernel module shares: numpy's pairwise row sum, ``np.bincount``'s sector
sums and numpy's NaN-propagating maximum / minimum, each bit for bit."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numba import config, njit, types

F1 = types.Array(types.float64, 1, "A", readonly=True)
F2 = types.Array(types.float64, 2, "A", readonly=True)
I1 = types.Array(types.int64, 1, "A", readonly=True)
B1 = types.Array(types.boolean, 1, "A", readonly=True)
B2 = types.Array(types.boolean, 2, "A", readonly=True)
L2 = types.Array(types.int64, 2, "A", readonly=True)

KERNELS: list[tuple[Any, tuple[Any, ...]]] = []
_compile_seconds: float | None = None


def drop_stale_cache(package: Path, cache_root: str = "") -> bool:
    """Delete the disk-cached machine code of the kernels in ``package`` when any of its
    sources changed since that code was compiled; True when it did.

    numba checks a cached kernel against its own file only, and the kernels here inline
    helpers from the package's other modules (``cost_pair``, the row sums): an edit there
    would leave the kernels that inline it running the old code. A SHA-256 of all the
    package's sources, stored beside the cache, detects any edit. ``cache_root``:
    numba's ``NUMBA_CACHE_DIR`` when set; the package's cache is then the one folder
    numba names after the package's path (no other cache under it is touched). A
    read-only install without it caches in numba's user folder, not covered here: its
    sources cannot be edited in place.
    """
    sources = sorted(package.glob("*.py"))
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in sources)).hexdigest()
    if cache_root:  # numba's folder for this source folder (_CacheLocator's naming)
        here = os.path.abspath(package)
        folder = Path(cache_root) / f"{package.name}_{hashlib.sha1(here.encode()).hexdigest()}"
    else:
        folder = package / "__pycache__"
    stamp = folder / "kernels.sha256"
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    for f in sources:
        for cached in folder.glob(f"{f.stem}.*.nb[ic]"):
            cached.unlink(missing_ok=True)
    try:  # a folder we cannot write holds no cache of ours either
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"kernels.sha256.{os.getpid()}"
        partial.write_text(digest)
        os.replace(partial, stamp)  # whole or absent: a reader never sees half a digest
    except OSError:
        pass
    return True


drop_stale_cache(Path(__file__).parent, config.CACHE_DIR)


def kernel(*signature: Any) -> Callable[[Callable[..., Any]], Any]:
    """``njit`` a kernel, registered for :func:`warm_up` with its one signature.

    ``error_model="numpy"``: a float division by zero gives inf/NaN as in numpy instead of
    raising.
    """

    def wrap(fn: Callable[..., Any]) -> Any:
        compiled = njit(cache=True, error_model="numpy", nogil=True)(fn)
        KERNELS.append((compiled, tuple(signature)))
        return compiled

    return wrap


def warm_up() -> float:
    """Compile (or load from the disk cache) every kernel; seconds spent.

    Called once per process before the first kernel call (the wrappers do it); serving
    calls it at load so that the first decision is as fast as the rest. Later calls
    return 0.0. After it, a kernel never compiles again: a call whose inputs do not
    convert to the kernel's signature raises ``TypeError``.
    """
    global _compile_seconds
    if _compile_seconds is not None:
        return 0.0
    start = time.perf_counter()
    for fn, signature in KERNELS:
        fn.compile(signature)
        fn.disable_compile()
    _compile_seconds = time.perf_counter() - start
    return _compile_seconds


def compile_seconds() -> float | None:
    """Seconds the process's :func:`warm_up` took (``None`` before it ran)."""
    return _compile_seconds


def ready() -> None:
    if _compile_seconds is None:
        warm_up()


@njit(cache=True, inline="always")
def _block_sum(x, lo, n):  # pragma: no cover
    """numpy's sum of ``x[lo:lo + n]`` for ``n <= 128``: eight running sums, then the rest."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += x[lo + i]
        return res
    r0, r1, r2, r3 = x[lo], x[lo + 1], x[lo + 2], x[lo + 3]
    r4, r5, r6, r7 = x[lo + 4], x[lo + 5], x[lo + 6], x[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += x[lo + i]
        r1 += x[lo + i + 1]
        r2 += x[lo + i + 2]
        r3 += x[lo + i + 3]
        r4 += x[lo + i + 4]
        r5 += x[lo + i + 5]
        r6 += x[lo + i + 6]
        r7 += x[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += x[lo + i]
        i += 1
    return res


@njit(cache=True)
def pairwise_sum(x, lo, n):  # pragma: no cover
    """``x[lo:lo + n].sum()`` in numpy's order, bit for bit: blocks of at most 128 summed
    by :func:`_block_sum`, longer runs split in halves (rounded down to a multiple of 8)
    and the halves added. The split tree is walked with an explicit stack (numba does
    not cache recursive functions). Not inlined: inlining it at every call site doubled
    the compile time of the kernels and made the step no faster (measured)."""
    if n <= 128:
        return _block_sum(x, lo, n)
    s_lo = np.empty(64, np.int64)
    s_n = np.empty(64, np.int64)
    s_left = np.empty(64)
    s_stage = np.empty(64, np.int64)  # 0 left to do, 1 left pending, 2 right to do, 3 right pending
    top = 0
    s_lo[0], s_n[0], s_stage[0] = lo, n, 0
    while True:
        start, size = s_lo[top], s_n[top]
        half = size // 2
        half -= half % 8
        if s_stage[top] == 0:
            if half <= 128:
                s_left[top] = _block_sum(x, start, half)
                s_stage[top] = 2
            else:
                s_stage[top] = 1
                top += 1
                s_lo[top], s_n[top], s_stage[top] = start, half, 0
            continue
        rest = size - half
        if rest > 128:
            s_stage[top] = 3
            top += 1
            s_lo[top], s_n[top], s_stage[top] = start + half, rest, 0
            continue
        val = s_left[top] + _block_sum(x, start + half, rest)
        while True:  # hand the finished sum up the stack
            top -= 1
            if top < 0:
                return val
            if s_stage[top] == 1:
                s_left[top] = val
                s_stage[top] = 2
                break
            val = s_left[top] + val


@njit(cache=True, inline="always")
def sector_sums(x, ids, out):  # pragma: no cover
    """``out[s]``: the sum of ``x`` over the names of sector ``s``, added in name order
    from 0.0 as ``np.bincount`` adds them; a name without a sector (id < 0) adds nowhere."""
    out[:] = 0.0
    for a in range(x.size):
        if ids[a] >= 0:
            out[ids[a]] += x[a]


@njit(cache=True, inline="always")
def maximum(x, y):  # pragma: no cover
    """``np.maximum`` of two floats, its operation exactly: NaN when either is (Python's
    ``max`` keeps the first argument against a NaN second)."""
    return x if (x >= y or x != x) else y


@njit(cache=True, inline="always")
def minimum(x, y):  # pragma: no cover
    """``np.minimum`` of two floats, its operation exactly: NaN when either is."""
    return x if (x <= y or x != x) else y
