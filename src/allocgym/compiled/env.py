"""The env step's reason-code summary (:func:`reason_summary`): per portfolio, how many
symbols carry each reason bit and whether a given set of bits (the trade limits) bound
the decision, in one pass over the reason codes."""

from __future__ import annotations

import numpy as np
from numba import types

from allocgym.compiled._base import I1, L2, kernel, ready

_DEBRUIJN = 0x03F79D71B4CB0A89
"""De Bruijn constant: ``(low_bit * _DEBRUIJN) >> 58`` differs for each of the 64 bits."""
_DEBRUIJN_POS = np.zeros(64, dtype=np.int64)
for _pos in range(64):
    _DEBRUIJN_POS[((1 << _pos) * _DEBRUIJN % (1 << 64)) >> 58] = _pos


@kernel(L2, I1, I1, types.int64, I1)
def _reason_summary(
    symbol_reasons, portfolio_reasons, bits, mask, debruijn_pos
):  # pragma: no cover
    n_envs, n_assets = symbol_reasons.shape
    n_codes = bits.shape[0]
    column = np.full(64, -1, dtype=np.int64)
    for k in range(n_codes):
        column[bits[k]] = k
    counts = np.zeros((n_envs, n_codes), dtype=np.int64)
    bound = np.empty(n_envs, dtype=np.bool_)
    for b in range(n_envs):
        seen = portfolio_reasons[b]
        for a in range(n_assets):
            seen |= symbol_reasons[b, a]
            if n_codes == 0:
                continue
            r = np.uint64(symbol_reasons[b, a])
            while r != 0:  # one pass per set bit (most entries carry one or two)
                low = r & (~r + np.uint64(1))
                col = column[debruijn_pos[(low * np.uint64(_DEBRUIJN)) >> np.uint64(58)]]
                if col >= 0:
                    counts[b, col] += 1
                r ^= low
        bound[b] = (seen & mask) != 0
    return counts, bound


def reason_summary(
    symbol_reasons: np.ndarray, portfolio_reasons: np.ndarray, bits: np.ndarray, mask: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per portfolio, the symbols carrying each of ``bits`` and whether ``mask`` bound it.

    Parameters
    ----------
    symbol_reasons : ndarray of int64, shape (n_envs, n_assets)
    portfolio_reasons : ndarray of int64, shape (n_envs,)
    bits : ndarray of int64, shape (n_codes,)
        Distinct bit positions (0 = least significant); none: only ``bound``.
    mask : int
        Reason bits looked for on the portfolio or on any of its symbols.

    Returns
    -------
    counts : ndarray of int64, shape (n_envs, n_codes)
        ``counts[b, k]``: entries of row ``b`` of ``symbol_reasons`` with bit ``bits[k]``.
    bound : ndarray of bool, shape (n_envs,)
        ``(portfolio_reasons | OR of the row's symbol_reasons) & mask != 0``.
    """
    ready()
    return _reason_summary(symbol_reasons, portfolio_reasons, bits, int(mask), _DEBRUIJN_POS)
