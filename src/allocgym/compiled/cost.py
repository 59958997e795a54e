"""The cost model: linear and impact cost per symbol, and summed per portfolio at the fill."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from allocgym.compiled._base import F2, kernel, ready


@njit(cache=True, error_model="numpy", inline="always")
def cost_pair(
    trade, equity, adv, vol, spread, spread_mult, commission, impact_k
):  # pragma: no cover
    """(linear, impact) cost of one trade: the formula of ``allocgym.costs.cost_terms``."""
    a = abs(trade)
    if a == 0.0:
        return 0.0, 0.0
    rate = spread * spread_mult
    rate /= 2e4
    rate += commission
    coef = vol * impact_k
    if coef == 0.0:
        return a * rate, 0.0
    return a * rate, math.sqrt(a * equity / adv) * (a * coef)


@kernel(F2, F2, F2, F2, F2, types.float64, types.float64, types.float64)
def _cost_terms(
    trade, equity, adv, vol, spread, spread_mult, commission, impact_k
):  # pragma: no cover
    n_rows, n_cols = trade.shape
    linear = np.empty((n_rows, n_cols))
    impact = np.empty((n_rows, n_cols))
    for r in range(n_rows):
        for c in range(n_cols):
            linear[r, c], impact[r, c] = cost_pair(
                trade[r, c], equity[r, c], adv[r, c], vol[r, c], spread[r, c],
                spread_mult, commission, impact_k,
            )  # fmt: skip
    return linear, impact


def cost_terms(
    trade: np.ndarray,
    equity: np.ndarray,
    adv: np.ndarray,
    vol: np.ndarray,
    spread: np.ndarray,
    spread_mult: float,
    commission_bps: float,
    impact_k: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Linear and impact cost per entry of float64 inputs of one broadcast shape.

    ``allocgym.costs.cost_terms`` documents the formula; this is its arithmetic (a zero
    trade or a zero impact coefficient costs exactly 0; a square root of a negative or
    NaN participation gives NaN).
    """
    ready()
    parts = (trade, equity, adv, vol, spread)
    shape = np.broadcast_shapes(*(x.shape for x in parts))
    scalars = (float(spread_mult), float(commission_bps) / 1e4, float(impact_k))
    if len(shape) == 2:  # the gates' and the fill's call: views only, nothing reshaped
        args = [x if x.shape == shape else np.broadcast_to(x, shape) for x in parts]
        return _cost_terms(*args, *scalars)
    flat = (math.prod(shape[:-1]), shape[-1]) if shape else (1, 1)
    args = [np.broadcast_to(x, shape).reshape(flat) for x in parts]
    linear, impact = _cost_terms(*args, *scalars)
    return linear.reshape(shape), impact.reshape(shape)
