"""The ex-ante historical CVaR of one book over a window of past returns: the env step
kernel inlines :func:`row_cvar`, and :func:`book_cvar` runs it for one book (the serving
audit), so both compute it with the same operations."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from allocgym.compiled._base import F2, kernel, ready


@njit(cache=True, error_model="numpy", inline="always")
def row_cvar(returns, row0, weights, b, window, alpha, k, i, smallest, scen):  # pragma: no cover
    """Ex-ante historical CVaR of book ``weights[b]`` over ``returns[row0 : row0 + window]``,
    as a positive loss; ``(k, i)`` from :func:`cvar_order`, ``smallest`` (i + 1,) and
    ``scen`` (window,) scratch.

    ``scen[j] = sum_a returns[row0 + j, a] * weights[b, a]`` for ``j < window``, and the
    CVaR of ``scen`` at level ``alpha`` as :func:`allocgym.measures.cvar` defines it
    (fractional weight on the boundary scenario; NaN when a scenario is NaN). The sums run
    sequentially (assets in order; the ``i`` worst scenarios from the worst up), so a
    book's result does not depend on the batch it is in; they may differ from numpy's
    pairwise / SIMD sums in the last bits (a few ulp of the sum of the absolute terms).
    """
    n_assets = weights.shape[1]
    # Every scenario sums over the assets in order. Four scenarios advance together
    # (independent sums: no wait on one long chain of additions; same bits).
    j = 0
    while j + 4 <= window:
        s0 = s1 = s2 = s3 = 0.0
        for a in range(n_assets):
            w = weights[b, a]
            s0 += returns[row0 + j, a] * w
            s1 += returns[row0 + j + 1, a] * w
            s2 += returns[row0 + j + 2, a] * w
            s3 += returns[row0 + j + 3, a] * w
        scen[j], scen[j + 1], scen[j + 2], scen[j + 3] = s0, s1, s2, s3
        j += 4
    while j < window:
        s0 = 0.0
        for a in range(n_assets):
            s0 += returns[row0 + j, a] * weights[b, a]
        scen[j] = s0
        j += 1
    found = 0
    worst = np.inf
    for j in range(window):
        s = scen[j]
        if s != s:
            return np.nan
        if alpha == 1.0:
            worst = min(worst, s)
            continue
        # keep the i + 1 smallest scenarios sorted ascending (insertion)
        if found <= i:
            pos = found
            found += 1
        elif s < smallest[i]:
            pos = i
        else:
            continue
        while pos > 0 and smallest[pos - 1] > s:
            smallest[pos] = smallest[pos - 1]
            pos -= 1
        smallest[pos] = s
    if alpha == 1.0:
        return -worst
    tail = 0.0
    for m in range(i):
        tail += smallest[m]
    return -tail / k + smallest[i] * (i / k - 1.0)


def cvar_order(window: int, alpha: float) -> tuple[float, int]:
    """``(k, i)`` of :func:`row_cvar`: ``k = (1 - alpha) * window`` scenarios in the tail,
    the ``i`` worst counted whole (0 when ``alpha = 1``); checks both inputs."""
    if window < 1:
        raise ValueError(f"ex-ante CVaR: window = {window}; use at least one scenario bar")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"ex-ante CVaR: alpha = {alpha!r}; use a confidence level in [0, 1]")
    k = (1.0 - alpha) * window
    i = 0 if alpha == 1.0 else max(0, math.ceil(k) - 1)
    return float(k), i


@kernel(F2, F2, types.float64, types.float64, types.int64)
def _book_cvar(returns, weights, alpha, k, i):  # pragma: no cover
    window = returns.shape[0]
    return row_cvar(returns, 0, weights, 0, window, alpha, k, i, np.empty(i + 1), np.empty(window))


def book_cvar(returns: np.ndarray, weights: np.ndarray, alpha: float) -> float:
    """Ex-ante historical CVaR (a positive loss) of the book ``weights`` (n_assets,) over
    every row of ``returns`` (n_scenarios, n_assets) at level ``alpha``: the env step's
    value for the same scenarios and book, bit for bit (:func:`row_cvar`)."""
    r = np.asarray(returns, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if r.ndim != 2 or w.shape != (r.shape[1],):
        raise ValueError(
            f"ex-ante CVaR: returns of shape {r.shape} and weights of shape {w.shape}; "
            "give returns as (n_scenarios, n_assets) and one weight per asset"
        )
    k, i = cvar_order(r.shape[0], float(alpha))
    ready()
    return float(_book_cvar(r, w.reshape(1, -1), float(alpha), k, i))
