"""DCC-GARCH(1,1): per-asset GARCH(1,1) variances and a DCC(1,1) dynamic correlation.

Model (Engle, 2002), simple decimal returns ``r_t`` of shape ``(n_assets,)`` per bar::

    e_t  = r_t - mu                                   mu: sample mean of the window
    s2_t = omega + alpha * e_{t-1}**2 + beta * s2_{t-1}          per asset
    z_t  = e_t / sqrt(s2_t)                           standardised residuals
    Q_t  = (1 - a - b) * Qbar + a * z_{t-1} z_{t-1}' + b * Q_{t-1},   Qbar = mean_t z_t z_t'
    R_t  = diag(Q_t)^-1/2  Q_t  diag(Q_t)^-1/2        correlation
    H_t  = D_t R_t D_t,  D_t = diag(sqrt(s2_t))       covariance

Fitted in two quasi-maximum-likelihood (Gaussian) stages:

1. **Univariate GARCH(1,1)** per asset on the demeaned returns, with ``arch``'s
   conventions (the same model as ``arch_model(e, mean="Zero", vol="GARCH", p=1, q=1)``):
   the recursion starts from the backcast ``sum_j w_j e_j**2`` over the first
   ``min(75, n_obs)`` bars with ``w_j`` proportional to ``0.94**j``, i.e.
   ``s2_0 = omega + (alpha + beta) * backcast``; ``alpha + beta <= 1``; the same grid of
   starting values. The likelihood and its gradient run as linear filters
   (``scipy.signal.lfilter``) and SLSQP maximises it per asset; each series is scaled to
   unit variance first (the MLE is scale-equivariant), so daily returns need no rescaling.
2. **DCC(1,1)** ``(a, b)`` by maximising the correlation part of the likelihood,
   ``-1/2 sum_t (log|R_t| + z_t' R_t^-1 z_t - z_t' z_t)``, with correlation targeting
   (``Qbar`` is the sample second moment of ``z``). ``likelihood="full"`` evaluates it
   exactly (``O(n_obs n_assets^3)`` per evaluation); ``"composite"`` sums the bivariate
   likelihoods of the contiguous pairs ``(i, i + 1)`` (Engle, Shephard & Sheppard 2008:
   consistent for the same ``(a, b)``, ``O(n_obs n_assets)`` per evaluation, the way to
   fit a wide universe); ``"auto"`` (default) is full up to :data:`FULL_LIKELIHOOD_MAX_ASSETS`
   assets, composite above.

The forecast is one step ahead: fitted on bars ``0 .. T-1`` it is ``H_T``, the covariance
of the next bar's return. :func:`dcc_update` moves the state one bar on in ``O(n_assets^2)``
(streaming use) and is the same recursion the fit runs.

Pure numpy/scipy; every array is float64, units per bar (no annualising).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import minimize
from scipy.signal import lfilter

from allocgym.errors import DataError, SolverFailed

__all__ = [
    "FULL_LIKELIHOOD_MAX_ASSETS",
    "MIN_OBS",
    "DCCGarch",
    "DCCParams",
    "DCCState",
    "GarchParams",
    "dcc_fit",
    "dcc_garch_covariance",
    "dcc_loglik",
    "dcc_q_forecast",
    "dcc_update",
    "garch11_fit",
    "garch11_variance",
    "simulate_dcc",
]

DCCLikelihood = Literal["auto", "full", "composite"]

FULL_LIKELIHOOD_MAX_ASSETS = 20
"""``likelihood="auto"`` evaluates the exact DCC likelihood up to this many assets."""

MIN_OBS = 30
"""Fewest bars a DCC-GARCH fit accepts (GARCH parameters need a few dozen at the least)."""

_BACKCAST_BARS = 75
_BACKCAST_DECAY = 0.94
_GARCH_START_ALPHAS = (0.01, 0.05, 0.1, 0.2)
_GARCH_START_PERSISTENCE = (0.5, 0.7, 0.9, 0.98)
_DCC_START = ((0.01, 0.95), (0.03, 0.94), (0.05, 0.9), (0.08, 0.85), (0.02, 0.97))
_DCC_MAX_PERSISTENCE = 0.9999
_RHO_MAX = 1.0 - 1e-10
_LOG_2PI = math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class GarchParams:
    """Univariate GARCH(1,1) fits, one per asset (return units).

    Attributes
    ----------
    mu : ndarray, shape (n_assets,)
        Sample mean removed before fitting.
    omega, alpha, beta : ndarray, shape (n_assets,)
        ``s2_t = omega + alpha e_{t-1}^2 + beta s2_{t-1}``; ``omega`` in squared returns.
    loglik : ndarray, shape (n_assets,)
        Gaussian log-likelihood of the demeaned returns at the optimum (arch's ``loglikelihood``).
    """

    mu: np.ndarray
    omega: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    loglik: np.ndarray


@dataclass(frozen=True)
class DCCParams:
    """Both stages of a DCC-GARCH(1,1) fit.

    Attributes
    ----------
    garch : GarchParams
    a, b : float
        DCC news and persistence parameters (``a, b >= 0``, ``a + b < 1``).
    qbar : ndarray, shape (n_assets, n_assets)
        Correlation target: ``mean_t z_t z_t'`` of the standardised residuals.
    loglik : float
        Correlation-stage log-likelihood at ``(a, b)`` (composite when ``likelihood`` is).
    likelihood : {"full", "composite"}
        Which likelihood was maximised.
    """

    garch: GarchParams
    a: float
    b: float
    qbar: np.ndarray
    loglik: float
    likelihood: str

    @property
    def n_assets(self) -> int:
        return int(self.qbar.shape[0])


@dataclass(frozen=True)
class DCCState:
    """One-step-ahead state: what is known after the last observed bar.

    Attributes
    ----------
    sigma2 : ndarray, shape (n_assets,)
        Next bar's conditional variances ``s2_{T}``.
    q : ndarray, shape (n_assets, n_assets)
        Next bar's ``Q_T`` (before normalisation).
    """

    sigma2: np.ndarray
    q: np.ndarray

    def correlation(self) -> np.ndarray:
        """``R_T``, shape (n_assets, n_assets), unit diagonal."""
        d = 1.0 / np.sqrt(np.diagonal(self.q))
        corr = self.q * np.outer(d, d)  # outer(d, d) is exactly symmetric
        np.fill_diagonal(corr, 1.0)
        return corr

    def covariance(self) -> np.ndarray:
        """``H_T = D R_T D``, shape (n_assets, n_assets): next bar's return covariance."""
        s = np.sqrt(self.sigma2)
        d = s / np.sqrt(np.diagonal(self.q))
        cov = self.q * np.outer(d, d)
        np.fill_diagonal(cov, self.sigma2)
        return cov


# ----------------------------------------------------------------------------- GARCH(1,1)


def _backcast(e2: np.ndarray) -> np.ndarray:
    """arch's backcast along axis 0: EWMA (0.94) of the first ``min(75, n_obs)`` squares."""
    tau = min(_BACKCAST_BARS, e2.shape[0])
    w = _BACKCAST_DECAY ** np.arange(tau)
    return (w / w.sum()) @ e2[:tau]


def _lagged(first: float, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    out[0] = first
    out[1:] = x[:-1]
    return out


def _garch_sigma2(omega: float, alpha: float, beta: float, e2: np.ndarray, bc: float) -> np.ndarray:
    x = omega + alpha * _lagged(bc, e2)
    return lfilter([1.0], [1.0, -beta], x, zi=[beta * bc])[0]


def garch11_variance(
    resid: np.ndarray, omega: np.ndarray, alpha: np.ndarray, beta: np.ndarray
) -> np.ndarray:
    """In-sample conditional variances of GARCH(1,1) (arch's recursion and backcast).

    Parameters
    ----------
    resid : ndarray, shape (n_obs, n_assets)
        Demeaned returns ``e``.
    omega, alpha, beta : ndarray, shape (n_assets,)

    Returns
    -------
    ndarray, shape (n_obs, n_assets)
        ``s2_t`` for ``t = 0 .. n_obs - 1`` (``s2_0 = omega + (alpha + beta) * backcast``).
    """
    e2 = np.asarray(resid, dtype=np.float64) ** 2
    bc = _backcast(e2)
    out = np.empty_like(e2)
    for i in range(e2.shape[1]):
        out[:, i] = _garch_sigma2(float(omega[i]), float(alpha[i]), float(beta[i]), e2[:, i], bc[i])
    return out


def _garch_nll(theta: np.ndarray, e2: np.ndarray, bc: float) -> float:
    s2 = _garch_sigma2(theta[0], theta[1], theta[2], e2, bc)
    if not (s2 > 0).all():
        return math.inf
    return 0.5 * float(np.sum(np.log(s2) + e2 / s2))


def _garch_nll_grad(theta: np.ndarray, e2: np.ndarray, bc: float) -> tuple[float, np.ndarray]:
    omega, alpha, beta = float(theta[0]), float(theta[1]), float(theta[2])
    e2_lag = _lagged(bc, e2)
    s2 = lfilter([1.0], [1.0, -beta], omega + alpha * e2_lag, zi=[beta * bc])[0]
    if not (s2 > 0).all():
        return 1e300, np.zeros(3)
    nll = 0.5 * float(np.sum(np.log(s2) + e2 / s2))
    # d s2_t / d theta obeys the same filter: d_t = [1, e2_{t-1}, s2_{t-1}] + beta d_{t-1}
    drivers = np.stack([np.ones_like(e2), e2_lag, _lagged(bc, s2)])
    ds2 = lfilter([1.0], [1.0, -beta], drivers, axis=-1)
    grad = ds2 @ (0.5 * (1.0 - e2 / s2) / s2)
    return nll, grad


def _garch_start(e2: np.ndarray, bc: float) -> np.ndarray:
    target = float(np.mean(e2))
    best, best_nll = None, math.inf
    for alpha in _GARCH_START_ALPHAS:
        for persistence in _GARCH_START_PERSISTENCE:
            theta = np.array([(1.0 - persistence) * target, alpha, persistence - alpha])
            nll = _garch_nll(theta, e2, bc)
            if nll < best_nll:
                best, best_nll = theta, nll
    assert best is not None
    return best


def _garch_fit_one(e: np.ndarray) -> tuple[float, float, float, float]:
    """(omega, alpha, beta, loglik) of one demeaned series (omega in its units)."""
    scale2 = float(np.mean(e * e))
    e2 = e * e / scale2
    bc = float(_backcast(e2))
    v = float(np.mean(e2))
    res = minimize(
        _garch_nll_grad,
        _garch_start(e2, bc),
        args=(e2, bc),
        jac=True,
        method="SLSQP",
        bounds=[(1e-8 * v, 10.0 * v), (0.0, 1.0), (0.0, 1.0)],
        constraints=[
            {
                "type": "ineq",
                "fun": lambda t: 1.0 - t[1] - t[2],
                "jac": lambda t: np.array([0.0, -1.0, -1.0]),
            }
        ],
        options={"ftol": 1e-10, "maxiter": 200},
    )
    omega, alpha, beta = (float(x) for x in res.x)
    nll = _garch_nll(res.x, e2, bc)
    if not math.isfinite(nll):
        raise SolverFailed(
            f"GARCH(1,1) fit ended at omega={omega}, alpha={alpha}, beta={beta} with a "
            "non-positive variance: check the returns (constant or near-constant series?)"
        )
    n = e.shape[0]
    # back to return units: the likelihood of e is that of e / sqrt(scale2) minus n/2 log scale2
    loglik = -nll - 0.5 * n * (_LOG_2PI + math.log(scale2))
    return omega * scale2, alpha, beta, loglik


def garch11_fit(returns: np.ndarray, demean: bool = True) -> GarchParams:
    """Gaussian QML GARCH(1,1) per asset, arch's model and conventions (see module doc).

    Parameters
    ----------
    returns : ndarray, shape (n_obs, n_assets)
        Simple decimal returns, oldest first; every column must vary.
    demean : bool, default True
        Remove the sample mean first (False: the returns are taken as residuals).

    Returns
    -------
    GarchParams

    Raises
    ------
    DataError
        Fewer than :data:`MIN_OBS` bars, non-finite values or a constant column.
    """
    x = _check_window(returns)
    mu = x.mean(axis=0) if demean else np.zeros(x.shape[1])
    e = x - mu
    fits = np.array([_garch_fit_one(e[:, i]) for i in range(x.shape[1])]).reshape(-1, 4)
    return GarchParams(mu, fits[:, 0], fits[:, 1], fits[:, 2], fits[:, 3])


def _check_window(returns: np.ndarray) -> np.ndarray:
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(
            f"DCC-GARCH needs one return window of shape (n_obs, n_assets); got {x.shape}"
        )
    if x.shape[0] < MIN_OBS:
        raise DataError(
            f"DCC-GARCH needs at least {MIN_OBS} bars; got {x.shape[0]}: use a longer lookback"
        )
    if not np.isfinite(x).all():
        raise DataError("returns contain NaN or inf; fill untradable bars with 0 before fitting")
    flat = ~(np.std(x, axis=0) > 0)
    if flat.any():
        raise DataError(
            f"asset columns {np.flatnonzero(flat).tolist()} are constant over the window: a "
            "GARCH variance cannot be fitted; drop them (estimate_covariance gives them 0)"
        )
    return x


# ----------------------------------------------------------------------------- DCC(1,1)


def _elements(n_assets: int, likelihood: str) -> tuple[np.ndarray, np.ndarray]:
    """Row/col indices of the Q entries a likelihood needs (the diagonal first)."""
    if likelihood == "full":
        rows, cols = np.triu_indices(n_assets, 1)
    else:
        rows = np.arange(n_assets - 1)
        cols = rows + 1
    diag = np.arange(n_assets)
    return np.concatenate([diag, rows]), np.concatenate([diag, cols])


def _q_path(prod: np.ndarray, qbar_el: np.ndarray, a: float, b: float) -> np.ndarray:
    """``Q_t`` entries for t = 0 .. T-1 from the products ``z_t,i z_t,j`` (T, M)."""
    c = 1.0 - a - b
    x = np.empty_like(prod)
    x[0] = c * qbar_el + a * qbar_el
    x[1:] = c * qbar_el + a * prod[:-1]
    return lfilter([1.0], [1.0, -b], x, axis=0, zi=(b * qbar_el)[None, :])[0]


class _DCCObjective:
    """Correlation-stage negative log-likelihood of ``(a, b)`` for fixed ``z``."""

    def __init__(self, z: np.ndarray, likelihood: str) -> None:
        self.z = z
        self.likelihood = likelihood
        n_obs, n = z.shape
        self.rows, self.cols = _elements(n, likelihood)
        self.prod = z[:, self.rows] * z[:, self.cols]  # (T, M)
        self.qbar = z.T @ z / n_obs
        self.qbar_el = self.qbar[self.rows, self.cols]
        self.zz = np.sum(z * z, axis=1)  # z'z per bar
        self.n = n

    def loglik(self, a: float, b: float) -> float:
        q = _q_path(self.prod, self.qbar_el, a, b)
        n = self.n
        diag, off = q[:, :n], q[:, n:]
        if self.likelihood == "composite":
            di, dj = diag[:, self.rows[n:]], diag[:, self.cols[n:]]
            rho = np.clip(off / np.sqrt(di * dj), -_RHO_MAX, _RHO_MAX)
            zi, zj = self.z[:, self.rows[n:]], self.z[:, self.cols[n:]]
            one_m = 1.0 - rho * rho
            terms = np.log(one_m) + (zi * zi + zj * zj - 2.0 * rho * zi * zj) / one_m
            return -0.5 * float(np.sum(terms - zi * zi - zj * zj))
        r = np.empty((q.shape[0], n, n))
        inv_sd = 1.0 / np.sqrt(diag)
        ri, ci = self.rows[n:], self.cols[n:]
        rho = off * inv_sd[:, ri] * inv_sd[:, ci]
        r[:, ri, ci] = rho
        r[:, ci, ri] = rho
        idx = np.arange(n)
        r[:, idx, idx] = 1.0
        sign, logdet = np.linalg.slogdet(r)
        if not (sign > 0).all():
            return -math.inf
        quad = np.einsum("ti,ti->t", self.z, np.linalg.solve(r, self.z[:, :, None])[:, :, 0])
        return -0.5 * float(np.sum(logdet + quad - self.zz))

    def __call__(self, theta: np.ndarray) -> float:
        a, b = float(theta[0]), float(theta[1])
        if a < 0 or b < 0 or a + b >= 1:
            return 1e300
        ll = self.loglik(a, b)
        return -ll if math.isfinite(ll) else 1e300


def dcc_loglik(z: np.ndarray, a: float, b: float, likelihood: str = "full") -> float:
    """Correlation-stage log-likelihood of DCC(1,1) at ``(a, b)`` (targeting ``Qbar``).

    Parameters
    ----------
    z : ndarray, shape (n_obs, n_assets)
        Standardised residuals ``e_t / sqrt(s2_t)``.
    a, b : float
    likelihood : {"full", "composite"}

    Returns
    -------
    float
    """
    return _DCCObjective(np.asarray(z, dtype=np.float64), likelihood).loglik(a, b)


def _resolve_likelihood(likelihood: str, n_assets: int) -> str:
    if likelihood == "auto":
        return "full" if n_assets <= FULL_LIKELIHOOD_MAX_ASSETS else "composite"
    if likelihood not in ("full", "composite"):
        raise DataError(
            f"DCC likelihood {likelihood!r} is unknown: use 'auto', 'full' or 'composite'"
        )
    return likelihood


def dcc_fit(z: np.ndarray, likelihood: DCCLikelihood = "auto") -> tuple[float, float, float]:
    """QML estimate of the DCC(1,1) ``(a, b)`` from standardised residuals.

    Parameters
    ----------
    z : ndarray, shape (n_obs, n_assets)
    likelihood : {"auto", "full", "composite"}

    Returns
    -------
    a, b, loglik : float
    """
    z = np.asarray(z, dtype=np.float64)
    lik = _resolve_likelihood(likelihood, z.shape[1])
    if z.shape[1] < 2:
        return 0.0, 0.0, 0.0
    obj = _DCCObjective(z, lik)
    start = min(_DCC_START, key=lambda ab: obj(np.array(ab)))
    res = minimize(
        obj,
        np.array(start),
        method="SLSQP",
        bounds=[(0.0, 1.0), (0.0, 1.0)],
        constraints=[
            {
                "type": "ineq",
                "fun": lambda t: _DCC_MAX_PERSISTENCE - t[0] - t[1],
                "jac": lambda t: np.array([-1.0, -1.0]),
            }
        ],
        options={"ftol": 1e-10, "maxiter": 200, "eps": 1e-7},
    )
    a, b = float(max(res.x[0], 0.0)), float(max(res.x[1], 0.0))
    if obj(np.array([a, b])) > obj(np.array(start)):  # never end worse than the start
        a, b = start
    return a, b, -obj(np.array([a, b]))


def dcc_q_forecast(z: np.ndarray, qbar: np.ndarray, a: float, b: float) -> np.ndarray:
    """``Q_T`` after bars ``0 .. T-1``: the DCC recursion from ``Q_0 = Qbar`` unrolled.

    Parameters
    ----------
    z : ndarray, shape (n_obs, n_assets)
        Standardised residuals of bars ``0 .. T-1``.
    qbar : ndarray, shape (n_assets, n_assets)
    a, b : float

    Returns
    -------
    ndarray, shape (n_assets, n_assets)
        ``Qbar (c (1 - b^T) / (1 - b) + b^T) + sum_t a b^(T-1-t) z_t z_t'`` with
        ``c = 1 - a - b``, in ``O(T N^2)``.
    """
    n_obs = z.shape[0]
    c = 1.0 - a - b
    decay = b ** np.arange(n_obs - 1, -1, -1, dtype=np.float64)  # b^(T-1-t)
    level = c * np.sum(decay) + b**n_obs
    zw = z * (a * decay)[:, None]
    q = level * qbar + zw.T @ z
    return 0.5 * (q + q.T)


def dcc_update(state: DCCState, params: DCCParams, returns: np.ndarray) -> DCCState:
    """Move the one-step-ahead state on by one observed bar, ``O(n_assets^2)``.

    Parameters
    ----------
    state : DCCState
        Forecast for the bar now observed.
    params : DCCParams
    returns : ndarray, shape (n_assets,)
        That bar's simple returns.

    Returns
    -------
    DCCState
        Forecast for the following bar.
    """
    g = params.garch
    e = np.asarray(returns, dtype=np.float64) - g.mu
    z = e / np.sqrt(state.sigma2)
    sigma2 = g.omega + g.alpha * e * e + g.beta * state.sigma2
    c = 1.0 - params.a - params.b
    q = c * params.qbar + params.a * np.outer(z, z) + params.b * state.q
    return DCCState(sigma2, q)


def _fit_window(x: np.ndarray, likelihood: DCCLikelihood) -> tuple[DCCParams, DCCState]:
    garch = garch11_fit(x)
    e = x - garch.mu
    s2 = garch11_variance(e, garch.omega, garch.alpha, garch.beta)
    z = e / np.sqrt(s2)
    lik = _resolve_likelihood(likelihood, x.shape[1])
    a, b, ll = dcc_fit(z, lik)
    qbar = z.T @ z / z.shape[0]
    qbar = 0.5 * (qbar + qbar.T)  # exactly symmetric, so every Q and H is
    params = DCCParams(garch, a, b, qbar, ll, lik)
    sigma2_next = garch.omega + garch.alpha * e[-1] ** 2 + garch.beta * s2[-1]
    return params, DCCState(sigma2_next, dcc_q_forecast(z, qbar, a, b))


def dcc_garch_covariance(
    returns: np.ndarray, likelihood: DCCLikelihood = "auto", min_vol: float = 1e-8
) -> np.ndarray:
    """One-step-ahead DCC-GARCH covariance of each return window.

    Parameters
    ----------
    returns : ndarray, shape (..., n_obs, n_assets)
        Simple decimal returns, oldest first; ``n_obs >= MIN_OBS``.
    likelihood : {"auto", "full", "composite"}
    min_vol : float
        Assets whose sample volatility over a window is at or below it (e.g. untradable
        the whole window) get zero variance and covariance; the rest are fitted.

    Returns
    -------
    ndarray, shape (..., n_assets, n_assets)
        Covariance of the bar after each window (squared decimal returns).
    """
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim < 2:
        raise DataError(
            f"returns must have shape (..., n_obs, n_assets); got shape {x.shape}: pass a "
            "2-D window or a batch of windows"
        )
    lead = x.shape[:-2]
    flat = x.reshape(-1, *x.shape[-2:])
    out = np.zeros((flat.shape[0], x.shape[-1], x.shape[-1]))
    for k, window in enumerate(flat):
        active = np.flatnonzero(np.std(window, axis=0) > min_vol)
        if active.size == 0:
            continue
        _, state = _fit_window(window[:, active], likelihood)
        out[k][np.ix_(active, active)] = state.covariance()
    return out.reshape(*lead, x.shape[-1], x.shape[-1])


def simulate_dcc(
    n_obs: int,
    omega: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    a: float,
    b: float,
    qbar: np.ndarray,
    rng: np.random.Generator,
    burn: int = 500,
) -> np.ndarray:
    """Simulate a zero-mean Gaussian DCC-GARCH(1,1) process (for tests and benchmarks).

    Parameters
    ----------
    n_obs : int
        Bars returned (after ``burn`` discarded ones).
    omega, alpha, beta : ndarray, shape (n_assets,)
        GARCH(1,1) parameters (``alpha + beta < 1``); variances start at the unconditional.
    a, b : float
        DCC parameters.
    qbar : ndarray, shape (n_assets, n_assets)
        Correlation target (a correlation matrix); ``Q`` starts there.
    rng : numpy.random.Generator
    burn : int

    Returns
    -------
    ndarray, shape (n_obs, n_assets)
    """
    om, al, be = (np.asarray(x, dtype=np.float64) for x in (omega, alpha, beta))
    s2 = om / (1.0 - al - be)
    q = np.array(qbar, dtype=np.float64)
    out = np.empty((n_obs + burn, om.size))
    for t in range(n_obs + burn):
        d = 1.0 / np.sqrt(np.diagonal(q))
        z = np.linalg.cholesky(q * d[:, None] * d[None, :]) @ rng.standard_normal(om.size)
        e = np.sqrt(s2) * z
        out[t] = e
        s2 = om + al * e * e + be * s2
        q = (1.0 - a - b) * qbar + a * np.outer(z, z) + b * q
    return out[burn:]


# ----------------------------------------------------------------------------- estimator


class DCCGarch:
    """DCC-GARCH(1,1) estimator with a streaming one-bar update (sklearn-style shell).

    Parameters
    ----------
    likelihood : {"auto", "full", "composite"}, default "auto"
        Correlation-stage likelihood (see the module doc).

    Attributes
    ----------
    params_ : DCCParams
        Both stages' estimates.
    state_ : DCCState
        One-step-ahead forecast after the last bar seen (by ``fit`` or ``update``).
    n_updates_ : int
        Bars added by ``update`` since the fit (the parameters stay those of the fit).

    Examples
    --------
    >>> model = DCCGarch().fit(returns)          # (n_obs, n_assets)
    >>> cov = model.covariance_                  # next bar, (n_assets, n_assets)
    >>> cov = model.update(new_bar_returns)      # O(n_assets^2) per bar
    """

    def __init__(self, likelihood: DCCLikelihood = "auto") -> None:
        _resolve_likelihood(likelihood, 2)
        self.likelihood = likelihood

    def fit(self, returns: np.ndarray) -> DCCGarch:
        """Fit both stages on a window ``(n_obs, n_assets)`` (every column must vary)."""
        x = _check_window(returns)
        self.params_, self.state_ = _fit_window(x, self.likelihood)
        self.n_updates_ = 0
        return self

    @property
    def covariance_(self) -> np.ndarray:
        """Next bar's covariance ``H``, shape (n_assets, n_assets)."""
        return self.state_.covariance()

    @property
    def correlation_(self) -> np.ndarray:
        """Next bar's correlation ``R``, shape (n_assets, n_assets)."""
        return self.state_.correlation()

    def update(self, returns: np.ndarray) -> np.ndarray:
        """Observe one bar ``(n_assets,)``; returns the next bar's covariance (O(N^2))."""
        r = np.asarray(returns, dtype=np.float64)
        if r.shape != (self.params_.n_assets,) or not np.isfinite(r).all():
            raise DataError(
                f"update takes one bar of {self.params_.n_assets} finite returns; got shape "
                f"{r.shape}"
            )
        self.state_ = dcc_update(self.state_, self.params_, r)
        self.n_updates_ += 1
        return self.state_.covariance()
