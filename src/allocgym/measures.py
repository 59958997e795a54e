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
environment's reward calls it with a batch axis. ``evt_var`` / ``evt_cvar`` model the tail
beyond a threshold with a generalised Pareto distribution (peaks over threshold) and
``gaussian_var`` assumes normal returns; the report backtests all three.
"""

from __future__ import annotations

import math
from statistics import NormalDist

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


def sample_std(r: np.ndarray) -> np.ndarray:
    """``std(r, ddof=1)`` over the last axis, exactly 0 for a constant series (numpy's
    mean of a constant leaves rounding: 0.01 repeated has a std of 1.8e-18, which gave a
    Sharpe ratio of 8.7e16 where +inf is meant)."""
    sd = np.std(r, axis=-1, ddof=1)
    return np.where(np.ptp(r, axis=-1) == 0, 0.0, sd)


def annualized_volatility(returns: ArrayLike, periods_per_year: float = 252) -> FloatOrArray:
    """Sample standard deviation (ddof=1) times ``sqrt(periods_per_year)``.

    Shape ``(..., n_steps) -> (...)``; NaN with fewer than 2 steps.
    """
    r = _returns(returns)
    _check_ppy(periods_per_year)
    if r.shape[-1] < 2:
        return _nan_like(r)
    return (sample_std(r) * np.sqrt(periods_per_year))[()]


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
        out = np.mean(ex, axis=-1) / sample_std(ex) * np.sqrt(periods_per_year)
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


def gaussian_var(returns: ArrayLike, alpha: float = 0.99) -> FloatOrArray:
    """Parametric normal value at risk, as a positive loss.

    ``VaR = -(mean(r) + std(r, ddof=1) * Phi^-1(1 - alpha))``.

    Parameters
    ----------
    returns : array_like, shape (..., n_steps)
    alpha : float
        Confidence level in (0, 1).

    Returns
    -------
    ndarray, shape (...)
        NaN with fewer than 2 steps.
    """
    r = _returns(returns)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha = {alpha} must lie in (0, 1) (e.g. 0.99)")
    if r.shape[-1] < 2:
        return _nan_like(r)
    z = NormalDist().inv_cdf(1.0 - alpha)
    return (-(np.mean(r, axis=-1) + sample_std(r) * z))[()]


EVT_TAIL_FRACTION = 0.10
"""Default share of the observations whose losses are treated as the tail (the threshold
rule of :func:`evt_var`); McNeil & Frey (2000) use about 10%."""

EVT_MIN_EXCEEDANCES = 10
"""Fewest exceedances a generalised Pareto fit accepts."""

_GPD_GRID = np.linspace(-10.0, 12.0, 64)  # s = log1p(theta * max excess); even count: no 0
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_GOLDEN_STEPS = 48


def _gpd_profile(y: np.ndarray, ymax: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, ...]:
    """Profile log-likelihood of the GPD at ``theta = expm1(s) / ymax`` (rows of ``y``)."""
    theta = np.expm1(s) / ymax
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.mean(np.log1p(theta[:, None] * y), axis=-1)
        scale = np.where(theta == 0, np.mean(y, axis=-1), xi / theta)
        ll = -y.shape[-1] * (np.log(scale) + xi + 1.0)
    ll = np.where((xi > -1.0) & (scale > 0) & np.isfinite(ll), ll, -np.inf)
    return ll, xi, scale


def gpd_fit(excesses: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """Maximum-likelihood generalised Pareto fit (location 0) of each row of excesses.

    The density is ``(1/beta) (1 + xi y / beta)^(-1/xi - 1)`` (``scipy.stats.genpareto``
    with ``c = xi``, ``scale = beta``). The likelihood is maximised through its profile in
    ``theta = xi / beta`` (Grimshaw, 1993): ``xi(theta) = mean(log1p(theta y))``, a
    one-dimensional search (a 64-point grid, then golden-section refinement) vectorised
    over the rows. The shape is restricted to ``xi > -1``, where the likelihood is bounded.

    Parameters
    ----------
    excesses : array_like, shape (..., n_exceed)
        Non-negative excesses over the threshold.

    Returns
    -------
    xi, beta : ndarray, shape (...)
        Shape and scale (``beta`` in the units of the excesses). All-zero excesses give
        ``xi = 0, beta = 0``; a NaN in a row gives NaN.

    Raises
    ------
    ValueError
        A negative excess.
    """
    y = np.asarray(excesses, dtype=np.float64)
    if y.ndim == 0 or y.shape[-1] == 0:
        raise ValueError("excesses must have a non-empty last axis: pass shape (..., n_exceed)")
    if (y < 0).any():
        raise ValueError("excesses must be >= 0 (losses minus the threshold)")
    lead = y.shape[:-1]
    y2 = y.reshape(-1, y.shape[-1])
    bad = np.isnan(y2).any(axis=-1)
    ymax = np.max(np.where(bad[:, None], 1.0, y2), axis=-1)
    flat = ymax <= 0
    # stand-in rows keep the fit finite; their results are overwritten below
    y2 = np.where((bad | flat)[:, None], 1.0, y2)
    ymax = np.where(bad | flat, 1.0, ymax)
    rows = np.arange(y2.shape[0])
    grid = np.stack([_gpd_profile(y2, ymax, np.full(y2.shape[0], g))[0] for g in _GPD_GRID])
    best = np.argmax(grid, axis=0)
    lo = _GPD_GRID[np.maximum(best - 1, 0)]
    hi = _GPD_GRID[np.minimum(best + 1, _GPD_GRID.size - 1)]
    # golden-section search for the maximum on [lo, hi] (the grid maximum lies inside)
    c = hi - _GOLDEN * (hi - lo)
    d = lo + _GOLDEN * (hi - lo)
    fc = _gpd_profile(y2, ymax, c)[0]
    fd = _gpd_profile(y2, ymax, d)[0]
    for _ in range(_GOLDEN_STEPS):
        left = fc >= fd
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
        d_new = np.where(left, c, lo + _GOLDEN * (hi - lo))
        c_new = np.where(left, hi - _GOLDEN * (hi - lo), d)
        f_new = _gpd_profile(y2, ymax, np.where(left, c_new, d_new))[0]
        fc, fd = np.where(left, f_new, fd), np.where(left, fc, f_new)
        c, d = c_new, d_new
    s_best = np.where(fc >= fd, c, d)
    ll_best, xi, beta = _gpd_profile(y2, ymax, s_best)
    # keep the grid point if the refinement did not improve on it (a boundary maximum)
    grid_best = grid[best, rows] > ll_best
    if grid_best.any():
        _, xi_g, beta_g = _gpd_profile(y2, ymax, _GPD_GRID[best])
        xi = np.where(grid_best, xi_g, xi)
        beta = np.where(grid_best, beta_g, beta)
    xi = np.where(flat, 0.0, np.where(bad, np.nan, xi)).reshape(lead)
    beta = np.where(flat, 0.0, np.where(bad, np.nan, beta)).reshape(lead)
    return xi[()], beta[()]


def _pot(returns: ArrayLike, alpha: float, tail_fraction: float) -> tuple[np.ndarray, ...]:
    """Peaks over threshold: threshold ``u``, GPD ``(xi, beta)`` and the exceedance share."""
    r = _returns(returns)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha = {alpha} must lie in (0, 1) (e.g. 0.99)")
    n = r.shape[-1]
    if not 0.0 < tail_fraction < 1.0:
        raise ValueError(f"tail_fraction = {tail_fraction} must lie in (0, 1) (e.g. 0.1)")
    k = math.floor(tail_fraction * n + 4 * _EPS * n)
    if k < EVT_MIN_EXCEEDANCES:
        need = math.ceil(EVT_MIN_EXCEEDANCES / tail_fraction)
        raise ValueError(
            f"{n} observations leave {k} exceedances at tail_fraction = {tail_fraction}; a "
            f"generalised Pareto fit needs >= {EVT_MIN_EXCEEDANCES}: pass >= {need} "
            "observations or a larger tail_fraction"
        )
    if 1.0 - alpha >= k / n:
        raise ValueError(
            f"alpha = {alpha} is not in the tail: the threshold leaves {k / n:.3g} of the "
            f"observations beyond it, so 1 - alpha must be smaller; raise alpha or "
            "tail_fraction, or use var()"
        )
    nan = np.isnan(r).any(axis=-1)
    losses = -np.sort(np.where(nan[..., None], 0.0, r), axis=-1)  # descending losses
    u = losses[..., k]
    xi, beta = gpd_fit(losses[..., :k] - u[..., None])
    xi = np.where(nan, np.nan, xi)
    return u, np.asarray(xi), np.asarray(beta), np.asarray(k / n), nan


def _evt_quantile(u: np.ndarray, xi: np.ndarray, beta: np.ndarray, p_ratio: float) -> np.ndarray:
    """``u + beta / xi * (p_ratio^-xi - 1)`` (``-beta log p_ratio`` at ``xi = 0``)."""
    log_p = math.log(p_ratio)
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.where(xi == 0, -log_p, np.expm1(-xi * log_p) / xi)
    return u + beta * growth


def evt_var(
    returns: ArrayLike, alpha: float = 0.99, tail_fraction: float = EVT_TAIL_FRACTION
) -> FloatOrArray:
    """Extreme-value (peaks-over-threshold) value at risk, as a positive loss.

    Threshold rule: with ``n`` returns and ``k = floor(tail_fraction * n)`` (at least
    :data:`EVT_MIN_EXCEEDANCES`), the threshold ``u`` is the ``(k + 1)``-th largest loss
    and the ``k`` largest losses minus ``u`` are fitted with a generalised Pareto
    distribution (:func:`gpd_fit`). Then (McNeil & Frey, 2000)::

        VaR_alpha = u + beta / xi * (((1 - alpha) * n / k) ** -xi - 1)

    Parameters
    ----------
    returns : array_like, shape (..., n_steps)
    alpha : float
        Confidence level in (0, 1) with ``1 - alpha < k / n`` (e.g. 0.99, 0.995).
    tail_fraction : float
        Share of observations in the tail (default 0.10).

    Returns
    -------
    ndarray, shape (...)
        NaN where a row holds a NaN.

    Raises
    ------
    ValueError
        Too few exceedances, or ``alpha`` not beyond the threshold.
    """
    u, xi, beta, share, _ = _pot(returns, alpha, tail_fraction)
    return _evt_quantile(u, xi, beta, (1.0 - alpha) / float(share))[()]


def evt_cvar(
    returns: ArrayLike, alpha: float = 0.99, tail_fraction: float = EVT_TAIL_FRACTION
) -> FloatOrArray:
    """Extreme-value expected shortfall (CVaR), as a positive loss.

    With the fit of :func:`evt_var`: ``ES = (VaR + beta - xi u) / (1 - xi)`` for
    ``xi < 1``; ``+inf`` for ``xi >= 1`` (the tail has no mean).

    Parameters
    ----------
    returns : array_like, shape (..., n_steps)
    alpha : float
    tail_fraction : float

    Returns
    -------
    ndarray, shape (...)
    """
    u, xi, beta, share, _ = _pot(returns, alpha, tail_fraction)
    q = _evt_quantile(u, xi, beta, (1.0 - alpha) / float(share))
    with np.errstate(divide="ignore", invalid="ignore"):
        es = (q + beta - xi * u) / (1.0 - xi)
    return np.where(xi >= 1.0, np.inf, es)[()]


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
