"""Risk estimates shared by every baseline: covariance, correlation and distances.

Pure numpy. Every function takes simple (decimal) returns of shape ``(..., n_obs,
n_assets)``: a single window ``(n_obs, n_assets)`` or a batch of windows ``(n_envs, n_obs,
n_assets)`` (any number of leading batch axes). Outputs keep the leading axes, so a
covariance is ``(..., n_assets, n_assets)``. Units are per bar (daily returns give daily
variances); nothing is annualised here.

NaN policy: inputs must be finite. Callers mask untradable names before estimating
(``MarketData.returns`` is already 0 where untradable).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from allocgym.errors import ConfigError, DataError

__all__ = [
    "COVARIANCE_METHODS",
    "CovarianceMethod",
    "correlation_distance",
    "cov_to_corr",
    "estimate_covariance",
    "ewma_correlation",
    "ewma_covariance",
    "ewma_weights",
    "ledoit_wolf",
    "ledoit_wolf_shrinkage",
    "sample_covariance",
]


def _check_returns(returns: np.ndarray, name: str = "returns", min_obs: int = 1) -> np.ndarray:
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim < 2:
        raise DataError(
            f"{name} must have shape (..., n_obs, n_assets); got shape {x.shape}. "
            "Pass a 2-D window (n_obs, n_assets) or a batch (n_envs, n_obs, n_assets)."
        )
    if x.shape[-2] < min_obs:
        raise DataError(
            f"{name} has {x.shape[-2]} observations; at least {min_obs} are needed. "
            "Use a longer lookback window."
        )
    if not np.isfinite(x).all():
        raise DataError(
            f"{name} contains NaN or inf; mask or fill untradable bars before estimating."
        )
    return x


def _swap(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2)


def sample_covariance(returns: np.ndarray, ddof: int = 1) -> np.ndarray:
    """Sample covariance of returns (same as ``np.cov(returns.T, ddof=ddof)``).

    Parameters
    ----------
    returns : ndarray, shape (..., n_obs, n_assets)
        Simple returns, oldest row first.
    ddof : int, default 1
        Delta degrees of freedom: the divisor is ``n_obs - ddof``.

    Returns
    -------
    ndarray, shape (..., n_assets, n_assets)
        Symmetric covariance in squared per-bar return units.
    """
    x = _check_returns(returns, min_obs=ddof + 1)
    n_obs = x.shape[-2]
    xc = x - x.mean(axis=-2, keepdims=True)
    # Same operations as np.cov (product, then multiply by 1/fact) so that results are
    # bit-identical for a single window; X'X of one buffer is exactly symmetric.
    cov = _swap(xc) @ xc
    cov *= 1.0 / (n_obs - ddof)
    return cov


def ledoit_wolf_shrinkage(returns: np.ndarray, assume_centered: bool = False) -> np.ndarray:
    """Ledoit–Wolf (2004) optimal shrinkage intensity towards a scaled identity.

    Same estimator as ``sklearn.covariance.ledoit_wolf_shrinkage`` (computed in closed
    form rather than in blocks) on the columns that vary: a constant column (a name
    without a traded window, ``allocgym.data.traded_window``) is left out, as if absent,
    instead of pulling the target and the intensity towards zero variance.

    Parameters
    ----------
    returns : ndarray, shape (..., n_obs, n_assets)
    assume_centered : bool, default False
        If False, returns are demeaned first.

    Returns
    -------
    ndarray, shape (...)
        Shrinkage in [0, 1] (a 0-d array for a single window).
    """
    x = _check_returns(returns)
    if not assume_centered:
        x = x - x.mean(axis=-2, keepdims=True)
    n_obs = x.shape[-2]
    x2 = x * x
    emp_cov_trace = x2.sum(axis=-2) / n_obs  # (..., n_assets)
    n_assets = _n_live(emp_cov_trace)
    mu = emp_cov_trace.sum(axis=-1) / n_assets
    # sum_ij (X2'X2)_ij = sum_t (sum_i x_ti^2)^2; sum_ij (X'X)_ij^2 = ||X'X||_F^2
    beta_ = (x2.sum(axis=-1) ** 2).sum(axis=-1)
    gram = _swap(x) @ x
    delta_ = (gram * gram).sum(axis=(-2, -1)) / n_obs**2
    beta = (beta_ / n_obs - delta_) / (n_assets * n_obs)
    delta = (delta_ - 2.0 * mu * emp_cov_trace.sum(axis=-1) + n_assets * mu**2) / n_assets
    beta = np.minimum(beta, delta)
    with np.errstate(invalid="ignore", divide="ignore"):
        shrink = np.where(beta == 0, 0.0, beta / np.where(delta == 0, 1.0, delta))
    return np.asarray(shrink)


def ledoit_wolf(
    returns: np.ndarray, assume_centered: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Ledoit–Wolf shrunk covariance (matches ``sklearn.covariance.LedoitWolf``).

    ``cov = (1 - s) * S + s * (trace(S) / n_assets) * I`` with ``S`` the maximum-likelihood
    (divisor ``n_obs``) covariance and ``s`` from :func:`ledoit_wolf_shrinkage`.

    Parameters
    ----------
    returns : ndarray, shape (..., n_obs, n_assets)
    assume_centered : bool, default False

    Returns
    -------
    cov : ndarray, shape (..., n_assets, n_assets)
    shrinkage : ndarray, shape (...)
    """
    x = _check_returns(returns)
    if not assume_centered:
        x = x - x.mean(axis=-2, keepdims=True)
    n_obs, n_assets = x.shape[-2], x.shape[-1]
    emp = _swap(x) @ x / n_obs
    emp = 0.5 * (emp + _swap(emp))
    s = ledoit_wolf_shrinkage(x, assume_centered=True)
    var = np.diagonal(emp, axis1=-2, axis2=-1)
    mu = np.trace(emp, axis1=-2, axis2=-1) / _n_live(var)
    # the scaled identity of the columns that vary (a constant one stays 0)
    eye = np.eye(n_assets) * (var > 0.0)[..., None, :]
    s_b = np.asarray(s)[..., None, None]
    cov = (1.0 - s_b) * emp + (s_b * np.asarray(mu)[..., None, None]) * eye
    return cov, s


def _n_live(variances: np.ndarray) -> np.ndarray:
    """Columns with a non-zero variance, (...), at least 1 (an all-constant window)."""
    return np.maximum((variances > 0.0).sum(axis=-1), 1)


def ewma_weights(n_obs: int, halflife: float) -> np.ndarray:
    """Normalised exponential weights, oldest first; the newest bar has the largest weight.

    Weight of the bar ``k`` bars before the newest is proportional to ``0.5 ** (k /
    halflife)``; weights sum to 1.

    Parameters
    ----------
    n_obs : int
    halflife : float
        Half-life in bars (> 0).

    Returns
    -------
    ndarray, shape (n_obs,)
    """
    if not (math.isfinite(halflife) and halflife > 0):
        raise DataError(
            f"EWMA halflife must be a positive number of bars; got {halflife!r}: "
            "pass e.g. halflife=63"
        )
    age = np.arange(n_obs - 1, -1, -1, dtype=np.float64)
    w = np.exp2(-age / halflife)
    return w / w.sum()


def ewma_covariance(returns: np.ndarray, halflife: float, demean: bool = True) -> np.ndarray:
    """Exponentially weighted covariance (RiskMetrics style: a dynamic correlation).

    ``cov = sum_t w_t (r_t - m)(r_t - m)'`` with ``w`` from :func:`ewma_weights` and ``m``
    the EWMA mean (or 0 when ``demean`` is False, the RiskMetrics convention). No bias
    correction is applied.

    Parameters
    ----------
    returns : ndarray, shape (..., n_obs, n_assets)
    halflife : float
        Half-life in bars.
    demean : bool, default True

    Returns
    -------
    ndarray, shape (..., n_assets, n_assets)
    """
    x = _check_returns(returns)
    w = ewma_weights(x.shape[-2], halflife)
    if demean:
        x = x - np.einsum("t,...tn->...n", w, x)[..., None, :]
    cov = _swap(x * w[:, None]) @ x
    return 0.5 * (cov + _swap(cov))


def ewma_correlation(returns: np.ndarray, halflife: float, demean: bool = True) -> np.ndarray:
    """Exponentially weighted correlation: ``cov_to_corr(ewma_covariance(...))``.

    Returns
    -------
    ndarray, shape (..., n_assets, n_assets)
    """
    return cov_to_corr(ewma_covariance(returns, halflife, demean=demean))


def cov_to_corr(cov: np.ndarray) -> np.ndarray:
    """Correlation matrix from a covariance matrix.

    Parameters
    ----------
    cov : ndarray, shape (..., n_assets, n_assets)

    Returns
    -------
    ndarray, shape (..., n_assets, n_assets)
        Unit diagonal, entries clipped to [-1, 1]. A zero-variance asset gets zero
        correlation with every other asset.
    """
    c = np.asarray(cov, dtype=np.float64)
    if c.ndim < 2 or c.shape[-1] != c.shape[-2]:
        raise DataError(
            f"cov must have shape (..., n_assets, n_assets); got {c.shape}: pass a square "
            "covariance matrix (e.g. from sample_covariance(returns))"
        )
    var = np.diagonal(c, axis1=-2, axis2=-1)
    if (var < 0).any():
        raise DataError(
            "cov has a negative variance on its diagonal; pass a valid covariance matrix."
        )
    std = np.sqrt(var)
    # Divide (not multiply by the inverse) like np.corrcoef, so the two agree bit for bit.
    safe = np.where(std > 0, std, 1.0)
    corr = c / safe[..., :, None] / safe[..., None, :]
    zero = std == 0
    if zero.any():
        corr = np.where(zero[..., :, None] | zero[..., None, :], 0.0, corr)
    corr = np.clip(corr, -1.0, 1.0)
    idx = np.arange(c.shape[-1])
    corr[..., idx, idx] = 1.0
    return corr


def correlation_distance(corr: np.ndarray) -> np.ndarray:
    """Correlation distance ``sqrt(0.5 * (1 - rho))`` (López de Prado), in [0, 1].

    Parameters
    ----------
    corr : ndarray, shape (..., n_assets, n_assets)

    Returns
    -------
    ndarray, shape (..., n_assets, n_assets)
        Symmetric, zero diagonal.
    """
    rho = np.asarray(corr, dtype=np.float64)
    d = np.sqrt(np.clip(0.5 * (1.0 - rho), 0.0, 1.0))
    idx = np.arange(rho.shape[-1])
    d[..., idx, idx] = 0.0
    return d


CovarianceMethod = Literal["sample", "ledoit_wolf", "ewma", "dcc_garch"]
"""Covariance estimators by name: the config's ``covariance`` fields take these."""
COVARIANCE_METHODS: tuple[str, ...] = ("sample", "ledoit_wolf", "ewma", "dcc_garch")


def estimate_covariance(
    returns: np.ndarray, method: CovarianceMethod = "ledoit_wolf", halflife: float = 63.0
) -> np.ndarray:
    """Covariance of return windows with the named estimator (the one every baseline uses).

    Parameters
    ----------
    returns : ndarray, shape (..., n_obs, n_assets)
        Simple per-bar returns, oldest row first.
    method : {"sample", "ledoit_wolf", "ewma", "dcc_garch"}
        ``dcc_garch`` is the one-step-ahead DCC-GARCH(1,1) forecast of the bar after the
        window (:func:`allocgym.dcc.dcc_garch_covariance`; needs ``n_obs >= 30``; a
        constant column gets zero variance and covariance).
    halflife : float
        EWMA half-life in bars (``method="ewma"`` only).

    Returns
    -------
    ndarray, shape (..., n_assets, n_assets)
        Per-bar covariance (squared decimal returns).
    """
    if method == "sample":
        return sample_covariance(returns)
    if method == "ledoit_wolf":
        return ledoit_wolf(returns)[0]
    if method == "ewma":
        return ewma_covariance(returns, halflife)
    if method == "dcc_garch":
        from allocgym.dcc import dcc_garch_covariance

        return dcc_garch_covariance(_check_returns(returns))
    raise ConfigError(f"covariance method {method!r} is unknown: use one of {COVARIANCE_METHODS}")


_ROUNDING = 8.0 * float(np.finfo(np.float64).eps)


def varies(sum_sq_dev: np.ndarray, mean: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """Whether ``n`` values with this ``mean`` and these summed squared deviations from it
    vary by more than float rounding. A constant series' mean is off by an ulp, which
    leaves every deviation a tiny non-zero number: a ``std > 0`` test passes and a ratio
    over that std is garbage (a t-statistic of 1e16, a z-score of +-1, a beta of -15)."""
    return sum_sq_dev > n * (_ROUNDING * mean) ** 2
