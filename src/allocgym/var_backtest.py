"""Value-at-risk backtesting: breach counts, Kupiec's and Christoffersen's tests.

At each step ``k`` of a walk the VaR of the book held over the next bar is forecast from
information at the decision bar ``t = bars[k]`` only: that book (``Backtest.held``: the
one before this step's fill, which happens at bar ``t + 1``'s price), priced on the asset
returns of the ``window`` bars ``t - window + 1 .. t`` (historical scenarios, like the
env's ex-ante CVaR). The forecast is then compared with the same book's realized market
return over bar ``t + 1`` (``Backtest.asset_pnl`` summed over assets, i.e. before fill
costs, which the scenarios do not model). A breach is a realized loss larger than the
forecast VaR. Three forecasts are backtested, all from the same scenarios:

* ``historical`` — :func:`allocgym.measures.var` (empirical quantile),
* ``gaussian`` — :func:`allocgym.measures.gaussian_var` (normal with the window's mean and
  standard deviation),
* ``evt`` — :func:`allocgym.measures.evt_var` (generalised Pareto tail beyond the
  worst 10% of the window's scenarios).

Steps with a flat (all-cash) book, or whose window would start before the first bar, are
left out and counted. Tests (chi-squared p-values; a small p-value rejects the model):

* Kupiec (1995) proportion of failures: ``LR_uc = -2 ln[(1-p)^(n-x) p^x] +
  2 ln[(1-x/n)^(n-x) (x/n)^x]`` with ``p = 1 - alpha``, ``x`` breaches in ``n`` steps,
  chi-squared with 1 degree of freedom.
* Christoffersen (1998) independence: a first-order Markov chain of the breach indicator
  against an independent one, ``LR_ind``, 1 degree of freedom; conditional coverage
  ``LR_cc = LR_uc + LR_ind``, 2 degrees of freedom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import xlogy
from scipy.stats import chi2

from allocgym import measures
from allocgym.errors import ConfigError, DataError

if TYPE_CHECKING:
    from allocgym.evaluation import Backtest

__all__ = [
    "VAR_METHODS",
    "backtest_var",
    "christoffersen_independence",
    "kupiec_pof",
    "var_breach_tests",
    "var_forecasts",
]

VAR_METHODS: tuple[str, ...] = ("historical", "gaussian", "evt")
"""VaR forecasts the report backtests, in its column order."""

_CHUNK_STEPS = 256
"""Steps whose scenario windows are gathered at once (bounded memory)."""


def kupiec_pof(n_breaches: int, n_obs: int, alpha: float) -> dict[str, float]:
    """Kupiec's proportion-of-failures (unconditional coverage) test.

    Parameters
    ----------
    n_breaches : int
        Breaches ``x`` observed.
    n_obs : int
        Forecasts ``n`` (> 0).
    alpha : float
        VaR confidence level; the expected breach rate is ``1 - alpha``.

    Returns
    -------
    dict
        ``lr`` (the statistic) and ``p_value`` (chi-squared, 1 dof).
    """
    if n_obs <= 0 or not 0 <= n_breaches <= n_obs:
        raise ValueError(f"need 0 <= n_breaches <= n_obs and n_obs > 0; got {n_breaches}, {n_obs}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha = {alpha} must lie in (0, 1) (e.g. 0.99)")
    p = 1.0 - alpha
    x, n = float(n_breaches), float(n_obs)
    rate = x / n
    lr = -2.0 * (xlogy(n - x, 1.0 - p) + xlogy(x, p)) + 2.0 * (
        xlogy(n - x, 1.0 - rate) + xlogy(x, rate)
    )
    lr = max(float(lr), 0.0)
    return {"lr": lr, "p_value": float(chi2.sf(lr, 1))}


def christoffersen_independence(breaches: np.ndarray) -> dict[str, float]:
    """Christoffersen's independence test of a breach indicator series.

    Parameters
    ----------
    breaches : ndarray of bool, shape (n_obs,)

    Returns
    -------
    dict
        ``lr``, ``p_value`` (chi-squared, 1 dof) and the transition counts ``n00``,
        ``n01``, ``n10``, ``n11`` (``n01``: no breach followed by a breach).
    """
    hit = np.asarray(breaches, dtype=bool)
    prev, cur = hit[:-1], hit[1:]
    n00 = float(np.sum(~prev & ~cur))
    n01 = float(np.sum(~prev & cur))
    n10 = float(np.sum(prev & ~cur))
    n11 = float(np.sum(prev & cur))
    total = n00 + n01 + n10 + n11
    pi = (n01 + n11) / total if total else 0.0
    pi0 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi1 = n11 / (n10 + n11) if n10 + n11 else 0.0
    restricted = xlogy(n00 + n10, 1.0 - pi) + xlogy(n01 + n11, pi)
    markov = xlogy(n00, 1.0 - pi0) + xlogy(n01, pi0) + xlogy(n10, 1.0 - pi1) + xlogy(n11, pi1)
    lr = max(float(-2.0 * (restricted - markov)), 0.0) + 0.0  # + 0.0: no -0.0
    return {
        "lr": lr,
        "p_value": float(chi2.sf(lr, 1)),
        "n00": n00,
        "n01": n01,
        "n10": n10,
        "n11": n11,
    }


def var_breach_tests(realized: np.ndarray, var: np.ndarray, alpha: float) -> dict[str, Any]:
    """Breaches of VaR forecasts and the three coverage tests.

    Parameters
    ----------
    realized : ndarray, shape (n_obs,)
        Realized simple returns.
    var : ndarray, shape (n_obs,)
        VaR forecasts for the same periods, positive losses.
    alpha : float

    Returns
    -------
    dict
        ``n_obs``, ``n_breaches``, ``expected`` (``n_obs * (1 - alpha)``), ``rate``,
        ``kupiec_lr``, ``kupiec_p``, ``christoffersen_lr``, ``christoffersen_p``,
        ``cc_lr``, ``cc_p`` (conditional coverage, 2 dof). Tests are NaN without
        observations.
    """
    r = np.asarray(realized, dtype=np.float64)
    v = np.asarray(var, dtype=np.float64)
    if r.shape != v.shape or r.ndim != 1:
        raise DataError(f"realized {r.shape} and var {v.shape} must be equal 1-D shapes")
    hit = r < -v
    n, x = int(r.size), int(hit.sum())
    out: dict[str, Any] = {
        "n_obs": n,
        "n_breaches": x,
        "expected": n * (1.0 - alpha),
        "rate": x / n if n else float("nan"),
    }
    if n < 2:
        nan = float("nan")
        return {**out, "kupiec_lr": nan, "kupiec_p": nan, "christoffersen_lr": nan,
                "christoffersen_p": nan, "cc_lr": nan, "cc_p": nan}  # fmt: skip
    uc = kupiec_pof(x, n, alpha)
    ind = christoffersen_independence(hit)
    cc = uc["lr"] + ind["lr"]
    return {
        **out,
        "kupiec_lr": uc["lr"],
        "kupiec_p": uc["p_value"],
        "christoffersen_lr": ind["lr"],
        "christoffersen_p": ind["p_value"],
        "cc_lr": cc,
        "cc_p": float(chi2.sf(cc, 2)),
    }


def var_forecasts(
    scenarios: np.ndarray, alpha: float, method: str, tail_fraction: float | None = None
) -> np.ndarray:
    """VaR of each row of scenario returns with the named method (positive losses).

    Parameters
    ----------
    scenarios : ndarray, shape (n_steps, n_scenarios)
    alpha : float
    method : {"historical", "gaussian", "evt"}
    tail_fraction : float, optional
        EVT tail share (default :data:`allocgym.measures.EVT_TAIL_FRACTION`).

    Returns
    -------
    ndarray, shape (n_steps,)
    """
    if method == "historical":
        return np.asarray(measures.var(scenarios, alpha))
    if method == "gaussian":
        return np.asarray(measures.gaussian_var(scenarios, alpha))
    if method == "evt":
        frac = measures.EVT_TAIL_FRACTION if tail_fraction is None else tail_fraction
        return np.asarray(measures.evt_var(scenarios, alpha, frac))
    raise ConfigError(f"VaR method {method!r} is unknown: use one of {VAR_METHODS}")


def backtest_var(
    bt: Backtest, returns: np.ndarray, window: int, alpha: float = 0.99
) -> dict[str, Any]:
    """Out-of-sample VaR backtest of one walk's held book (see the module doc).

    Parameters
    ----------
    bt : Backtest
        Its ``bars``, ``held`` (the book over each step's bar) and ``asset_pnl``.
    returns : ndarray, shape (n_days, n_assets)
        The market's simple asset returns (row ``t`` = return over ``(t - 1, t]``).
    window : int
        Scenario bars per forecast (the EVT fit needs ``window * 0.1 >= 10``).
    alpha : float
        VaR confidence level (e.g. 0.99).

    Returns
    -------
    dict
        ``alpha``, ``window``, ``n_flat`` (steps left out: all-cash book),
        ``n_short_history`` (steps left out: window before bar 0) and per method of
        :data:`VAR_METHODS` the dict of :func:`var_breach_tests` plus ``mean_var``.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != len(bt.symbols):
        raise DataError(
            f"returns have shape {r.shape} for {bt.name!r} with {len(bt.symbols)} assets: "
            "pass the market's (n_days, n_assets) returns"
        )
    if int(window) != window or window < 2:
        raise ConfigError(f"VaR window = {window!r}: needs at least 2 scenario bars")
    window = int(window)
    bars = np.asarray(bt.bars, dtype=np.int64)
    held = bt.held  # the book asset_pnl is made of: the forecast prices the same book
    flat = ~(np.abs(held) > 0).any(axis=1)
    short = bars < window - 1
    keep = np.flatnonzero(~flat & ~short & (bars < r.shape[0]))
    realized = bt.asset_pnl.sum(axis=1)[keep]
    pnl = np.empty((keep.size, window))
    # a kept step has bars >= window - 1, so the data hold at least one full window
    views = sliding_window_view(r, window, axis=0) if keep.size else None
    for lo in range(0, keep.size, _CHUNK_STEPS):
        assert views is not None
        sl = keep[lo : lo + _CHUNK_STEPS]
        pnl[lo : lo + sl.size] = np.einsum("knw,kn->kw", views[bars[sl] - window + 1], held[sl])
    out: dict[str, Any] = {
        "alpha": float(alpha),
        "window": window,
        "n_flat": int(flat.sum()),
        "n_short_history": int((short & ~flat).sum()),
    }
    for method in VAR_METHODS:
        if keep.size:
            forecast = var_forecasts(pnl, alpha, method)
        else:
            forecast = np.empty(0)
        res = var_breach_tests(realized, forecast, alpha)
        res["mean_var"] = float(np.mean(forecast)) if forecast.size else float("nan")
        out[method] = res
    return out
