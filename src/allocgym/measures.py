"""Performance and risk measures: pure numpy functions over a time axis.

Shapes
------
Return-based measures take simple decimal returns of shape ``(..., n_steps)`` (time on
the **last** axis, any leading batch axes such as ``(n_envs, n_steps)``) and return shape
``(...)``: a numpy scalar for 1-D input, an array otherwise. ``turnover`` takes a weights
path ``(..., n_steps, n_assets)``; ``herfindahl`` takes weights ``(..., n_assets)``.

NaN policy
----------
NaN propagates: a NaN anywhere along the reduced axis makes that result NaN (no silent
dropping, so a broken input cannot pass for a good score). skfolio instead drops NaNs per
column; drop them before calling if that is what you want. Degenerate inputs follow IEEE
arithmetic and are documented per function (e.g. zero volatility gives an infinite Sharpe
ratio); an empty time axis gives NaN.

Conventions
-----------
``periods_per_year`` (252 for daily bars) annualises. Losses (``var``, ``cvar``,
``max_drawdown``) are reported as positive fractions. ``var`` and ``cvar`` use the same
empirical definitions as ``skfolio.measures.value_at_risk`` / ``cvar`` (our ``alpha`` is
skfolio's ``beta``), and ``cvar`` is the only CVaR implementation in allocgym: the
environment's reward calls it with a batch axis.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

FloatOrArray = np.ndarray | np.float64

_EPS = float(np.finfo(np.float64).eps)


def _returns(returns: ArrayLike) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim == 0:
        raise ValueError("returns must have a time axis: pass shape (..., n_steps)")
    return r


def _check_ppy(periods_per_year: float) -> None:
    if not (math.isfinite(periods_per_year) and periods_per_year > 0):
        raise ValueError(
            f"periods_per_year = {periods_per_year} must be finite and > 0 (252 for daily)"
        )


def _nan_like(r: np.ndarray) -> FloatOrArray:
    return np.full(r.shape[:-1], np.nan)[()]


def annualized_return(returns: ArrayLike, periods_per_year: float = 252) -> FloatOrArray:
    """Geometric annualised return ``prod(1 + r) ** (periods_per_year / n_steps) - 1``.

    Parameters
    ----------
    returns : array_like, shape (..., n_steps)
        Simple returns per period.
    periods_per_year : float
        Periods in a year.

    Returns
    -------
    ndarray, shape (...)
        Decimal annual return; -1 when the wealth path reaches 0 or below.
    """
    r = _returns(returns)
    _check_ppy(periods_per_year)
    n = r.shape[-1]
    if n == 0:
        return _nan_like(r)
    wealth = np.prod(1.0 + r, axis=-1)
    positive = wealth > 0
    grown = np.power(np.where(positive, wealth, 1.0), periods_per_year / n) - 1.0
    out = np.where(positive, grown, np.where(np.isnan(wealth), np.nan, -1.0))
    return out[()]


def annualized_volatility(returns: ArrayLike, periods_per_year: float = 252) -> FloatOrArray:
    """Sample standard deviation (ddof=1) times ``sqrt(periods_per_year)``.

    Shape ``(..., n_steps) -> (...)``; NaN with fewer than 2 steps.
    """
    r = _returns(returns)
    _check_ppy(periods_per_year)
    if r.shape[-1] < 2:
        return _nan_like(r)
    return (np.std(r, axis=-1, ddof=1) * np.sqrt(periods_per_year))[()]


def sharpe_ratio(
    returns: ArrayLike, risk_free: float = 0.0, periods_per_year: float = 252
) -> FloatOrArray:
    """Annualised Sharpe ratio ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(periods_per_year)``.

    Equals skfolio's ``Portfolio.annualized_sharpe_ratio`` (mean over sample standard
    deviation, times the square root of the annualisation factor).

    Parameters
    ----------
    returns : array_like, shape (..., n_steps)
    risk_free : float
        Risk-free return per period (not annualised).
    periods_per_year : float

    Returns
    -------
    ndarray, shape (...)
        NaN with fewer than 2 steps; +-inf for zero volatility and a non-zero mean.
    """
    r = _returns(returns)
    _check_ppy(periods_per_year)
    if r.shape[-1] < 2:
        return _nan_like(r)
    ex = r - risk_free
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.mean(ex, axis=-1) / np.std(ex, axis=-1, ddof=1) * np.sqrt(periods_per_year)
    return out[()]


def sortino_ratio(
    returns: ArrayLike, target: float = 0.0, periods_per_year: float = 252
) -> FloatOrArray:
    """Annualised Sortino ratio ``mean(r - target) / DD * sqrt(periods_per_year)``.

    ``DD = sqrt(mean(min(r - target, 0) ** 2))`` is the downside deviation over all
    ``n_steps`` periods (Sortino & Price's target semi-deviation).

    Parameters
    ----------
    returns : array_like, shape (..., n_steps)
    target : float
        Minimum acceptable return per period.
    periods_per_year : float

    Returns
    -------
    ndarray, shape (...)
        +inf when no period falls below ``target`` and the mean excess is positive.
    """
    r = _returns(returns)
    _check_ppy(periods_per_year)
    if r.shape[-1] == 0:
        return _nan_like(r)
    ex = r - target
    downside = np.sqrt(np.mean(np.minimum(ex, 0.0) ** 2, axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.mean(ex, axis=-1) / downside * np.sqrt(periods_per_year)
    return out[()]


def drawdowns(returns: ArrayLike) -> np.ndarray:
    """Drawdown path ``1 - W_t / max(1, max_{s<=t} W_s)`` of compounded wealth ``W``.

    Wealth starts at 1 (the initial peak), so a loss on the first step is a drawdown.

    Parameters
    ----------
    returns : array_like, shape (..., n_steps)

    Returns
    -------
    ndarray, shape (..., n_steps)
        Positive fractions of the running peak (0 at a new high); NaN from the first NaN
        return onwards.
    """
    r = _returns(returns)
    wealth = np.cumprod(1.0 + r, axis=-1)
    peak = np.maximum(np.maximum.accumulate(wealth, axis=-1), 1.0)
    return 1.0 - wealth / peak


def max_drawdown(returns: ArrayLike) -> FloatOrArray:
    """Largest peak-to-trough loss of compounded wealth, as a positive fraction.

    Equals ``skfolio.measures.max_drawdown(get_drawdowns(r, compounded=True))``.
    Shape ``(..., n_steps) -> (...)``.
    """
    r = _returns(returns)
    if r.shape[-1] == 0:
        return _nan_like(r)
    return np.max(drawdowns(r), axis=-1)[()]


def calmar_ratio(returns: ArrayLike, periods_per_year: float = 252) -> FloatOrArray:
    """``annualized_return / max_drawdown``; +inf for a positive return without drawdown.

    Shape ``(..., n_steps) -> (...)``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(annualized_return(returns, periods_per_year)) / np.asarray(
            max_drawdown(returns)
        )
    return out[()]


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha = {alpha} must lie in [0, 1] (e.g. 0.95)")


def var(returns: ArrayLike, alpha: float = 0.95) -> FloatOrArray:
    """Historical value at risk at confidence ``alpha``, as a positive loss.

    With ``k = (1 - alpha) * n_steps`` the VaR is the ``(floor(k) + 1)``-th largest loss
    (skfolio's ``value_at_risk(returns, beta=alpha)``); ``alpha = 1`` gives the largest
    loss, ``alpha = 0`` the smallest.

    Parameters
    ----------
    returns : array_like, shape (..., n_steps)
    alpha : float
        Confidence level in [0, 1].

    Returns
    -------
    ndarray, shape (...)
    """
    r = _returns(returns)
    _check_alpha(alpha)
    n = r.shape[-1]
    if n == 0:
        return _nan_like(r)
    if alpha == 1.0:
        out = -np.min(r, axis=-1)
    else:
        k = (1.0 - alpha) * n
        # The tolerance absorbs float error in k (e.g. (1 - 0.9) * 10), as skfolio does.
        i = min(n - 1, int(np.floor(k + 4 * _EPS * n)))
        out = -np.partition(r, i, axis=-1)[..., i]
    return np.where(np.isnan(r).any(axis=-1), np.nan, out)[()]


def cvar(returns: ArrayLike, alpha: float = 0.95) -> FloatOrArray:
    """Historical conditional value at risk (expected shortfall), as a positive loss.

    The mean of the worst ``1 - alpha`` fraction of outcomes, with fractional weight on
    the boundary observation (Rockafellar & Uryasev): with ``k = (1 - alpha) * n_steps``
    and ``i = max(0, ceil(k) - 1)``, ``CVaR = -(sum of the i smallest returns +
    (k - i) * the (i+1)-th smallest) / k``. Identical to skfolio's
    ``cvar(returns, beta=alpha)`` on NaN-free input; ``alpha = 1`` gives the largest loss,
    ``alpha = 0`` the negative mean.

    Parameters
    ----------
    returns : array_like, shape (..., n_steps)
        Simple returns (or scenario returns) along the last axis.
    alpha : float
        Confidence level in [0, 1].

    Returns
    -------
    ndarray, shape (...)
    """
    r = _returns(returns)
    _check_alpha(alpha)
    n = r.shape[-1]
    if n == 0:
        return _nan_like(r)
    if alpha == 1.0:
        out = -np.min(r, axis=-1)
    else:
        k = (1.0 - alpha) * n
        i = max(0, int(np.ceil(k) - 1))
        part = np.partition(r, i, axis=-1)
        # Same expression as skfolio so results agree to the last bits.
        out = -np.sum(part[..., :i], axis=-1) / k + part[..., i] * (i / k - 1.0)
    return np.where(np.isnan(r).any(axis=-1), np.nan, out)[()]


def turnover(weights: ArrayLike, initial: ArrayLike | None = None) -> FloatOrArray:
    """Mean one-period L1 turnover ``sum_i |w_t,i - w_t-1,i|`` of a weights path.

    Differences of *held* weights include price drift; pass the pre-trade and post-trade
    books of each decision to measure traded turnover (what ``RiskConfig.max_turnover``
    caps). Multiply by ``periods_per_year`` to annualise.

    Parameters
    ----------
    weights : array_like, shape (..., n_steps, n_assets)
        Held weights per period.
    initial : array_like, shape (..., n_assets), optional
        Weights before the first period (e.g. zeros for a start from cash); then the
        first period's trade counts too.

    Returns
    -------
    ndarray, shape (...)
        NaN when there is no trade step (one period and no ``initial``).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim < 2:
        raise ValueError(f"weights must have shape (..., n_steps, n_assets), got {w.shape}")
    if initial is not None:
        w0 = np.broadcast_to(np.asarray(initial, dtype=np.float64), w.shape[:-2] + w.shape[-1:])
        w = np.concatenate([w0[..., None, :], w], axis=-2)
    if w.shape[-2] < 2:
        return np.full(w.shape[:-2], np.nan)[()]
    return np.mean(np.sum(np.abs(np.diff(w, axis=-2)), axis=-1), axis=-1)[()]


def herfindahl(weights: ArrayLike) -> FloatOrArray:
    """Herfindahl concentration ``sum_i w_i**2 / (sum_i |w_i|)**2`` of the gross book.

    1 for a single position, ``1/n`` for ``n`` equal positions (its inverse is the
    effective number of positions); independent of gross exposure and of signs.

    Parameters
    ----------
    weights : array_like, shape (..., n_assets)

    Returns
    -------
    ndarray, shape (...)
        NaN for an all-zero (all-cash) book, where concentration is undefined.
    """
    w = _returns(weights)
    gross = np.sum(np.abs(w), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sum(w * w, axis=-1) / gross**2
    return np.where(gross > 0, out, np.nan)[()]


def hit_rate(returns: ArrayLike) -> FloatOrArray:
    """Fraction of periods with a strictly positive return (zero counts as a miss).

    Shape ``(..., n_steps) -> (...)``.
    """
    r = _returns(returns)
    if r.shape[-1] == 0:
        return _nan_like(r)
    out = np.mean(r > 0, axis=-1)
    return np.where(np.isnan(r).any(axis=-1), np.nan, out)[()]
