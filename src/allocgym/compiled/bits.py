"""Reason-bit counts per portfolio."""

from __future__ import annotations

import numpy as np
from numba import types

from allocgym.compiled._base import I1, L2, kernel, ready

_DEBRUIJN = 0x03F79D71B4CB0A89
"""De Bruijn constant: ``(low_bit * _DEBRUIJN) >> 58`` differs for each of the 64 bits."""
_DEBRUIJN_POS = np.zeros(64, dtype=np.int64)
for _pos in range(64):
    _DEBRUIJN_POS[((1 << _pos) * _DEBRUIJN % (1 << 64)) >> 58] = _pos


@kernel(L2, I1, types.int64, I1)
def _count_bits(reasons, column, n_cols, debruijn_pos):  # pragma: no cover
    n_envs, n_assets = reasons.shape
    out = np.zeros((n_envs, n_cols), dtype=np.int64)
    for b in range(n_envs):
        for a in range(n_assets):
            r = np.uint64(reasons[b, a])
            while r != 0:  # one pass per set bit (most entries carry one or two)
                low = r & (~r + np.uint64(1))
                col = column[debruijn_pos[(low * np.uint64(_DEBRUIJN)) >> np.uint64(58)]]
                if col >= 0:
                    out[b, col] += 1
                r ^= low
    return out


def count_bits(reasons: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Per row of ``reasons`` (n_envs, n_assets) int64, how many entries have bit
    ``bits[k]`` set (distinct positions, 0 = least significant): (n_envs, len(bits))."""
    ready()
    column = np.full(64, -1, dtype=np.int64)
    column[np.asarray(bits, dtype=np.int64)] = np.arange(len(bits))
    return _count_bits(reasons, column, len(bits), _DEBRUIJN_POS)
