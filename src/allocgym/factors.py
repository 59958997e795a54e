"""Factor models: statistical (PCA) and user-provided factors, exposures, attribution and
the effective number of factors.

Two sources of factors, both estimated on a trailing window of simple per-bar returns:

* **Statistical factors** (:func:`pca_factors`): the principal components of the window's
  sample covariance. The number kept is :func:`select_n_factors`' rule: the smallest ``k``
  whose components explain at least ``variance_threshold`` of the total variance, capped
  at ``max_factors`` (and at the number of positive eigenvalues). Each component's sign is
  fixed deterministically: its loadings sum to a positive number (a "market-like" sign),
  and where that sum is 0 the largest-magnitude loading is positive. The factor returns
  are the projections ``f_t = V' r_t``; the exposures are the loadings ``V`` themselves
  (the time-series regression of the window's returns on its own component returns gives
  exactly ``V``, so it is not re-run).
* **User factors** (``--factors FILE``, :func:`allocgym.data.load_factor_returns`): the
  exposures ``B`` are the slopes of a time-series OLS regression, with intercept, of each
  asset's window returns on the factor returns (:func:`factor_exposures`).

A book ``w`` (shape ``(..., n_assets)``) has factor exposures ``B' w``
(:func:`portfolio_exposures`): the quantity a factor-exposure limit bounds.

**Attribution** (:func:`factor_attribution`). At step ``k`` of a walk (decision bar
``t = bars[k]``, book ``w_k`` held over bar ``t + 1``), the exposures ``B_t`` come from the
window ending at ``t`` (point-in-time), and the book's market return over bar ``t + 1``
splits into factor contributions ``(B_t' w_k)_j f_(t+1),j`` and a specific part, the rest:
``sum_j contribution_j + specific = w_k' r_(t+1)`` by construction. The fill costs are a
third, separate line of the evaluation's attribution.

**Effective number of factors** (:func:`effective_number`): ``exp(H(p))``, the exponential
of the Shannon entropy of a distribution ``p`` over factors (Meucci 2009, "effective
number of bets"); it runs from 1 (one factor carries everything) to the number of
factors (equal shares). Two uses: the universe's, with ``p`` the normalised eigenvalues
of the window covariance, and a book's diversification score, with ``p`` the book's
variance contributions ``y_j^2 lambda_j / (w' Sigma w)`` over all principal components
``y = V' w`` (uncorrelated factors, so every share is >= 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from allocgym.errors import ConfigError, DataError

__all__ = [
    "FactorModel",
    "FactorReturns",
    "book_effective_factors",
    "effective_number",
    "factor_attribution",
    "factor_exposures",
    "factor_models",
    "pca_factors",
    "portfolio_exposures",
    "select_n_factors",
]

_EIG_FLOOR = 1e-14
"""Eigenvalues at or below this share of the largest one count as zero."""


@dataclass(frozen=True)
class FactorReturns:
    """User factor returns aligned to a market's dates.

    Attributes
    ----------
    names : tuple of str
        Factor names (the CSV's columns after ``date``).
    returns : ndarray, shape (n_days, n_factors)
        Simple per-bar factor returns; row ``t`` is the return over ``(t - 1, t]`` like
        ``MarketData.returns`` (row 0 is 0).
    """

    names: tuple[str, ...]
    returns: np.ndarray


@dataclass(frozen=True)
class FactorModel:
    """One window's factor model.

    Attributes
    ----------
    loadings : ndarray, shape (n_assets, n_factors)
        Exposures ``B`` of each asset to each factor.
    factor_cov : ndarray, shape (n_factors, n_factors)
        Sample covariance of the factor returns over the window (``ddof=1``).
    specific_var : ndarray, shape (n_assets,)
        Variance of each asset not explained by the factors (>= 0).
    names : tuple of str
    eigenvalues : ndarray, shape (n_assets,), or None
        PCA only: every eigenvalue of the window covariance, largest first.
    """

    loadings: np.ndarray
    factor_cov: np.ndarray
    specific_var: np.ndarray
    names: tuple[str, ...]
    eigenvalues: np.ndarray | None = None

    @property
    def n_factors(self) -> int:
        return int(self.loadings.shape[1])


def _window(returns: np.ndarray, who: str) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2:
        raise DataError(f"{who}: returns must have shape (n_bars >= 2, n_assets); got {r.shape}")
    if not np.isfinite(r).all():
        raise DataError(f"{who}: returns contain NaN/inf; fill untradable bars with 0")
    return r


def select_n_factors(
    eigenvalues: np.ndarray, variance_threshold: float = 0.6, max_factors: int = 5
) -> int:
    """Smallest ``k`` whose leading eigenvalues explain ``>= variance_threshold``, capped.

    Parameters
    ----------
    eigenvalues : ndarray, shape (n_assets,)
        Eigenvalues, largest first.
    variance_threshold : float
        Share of total variance in (0, 1].
    max_factors : int
        Upper bound on ``k`` (>= 1).

    Returns
    -------
    int
        ``k`` in ``[1, min(max_factors, number of positive eigenvalues)]``; 1 for a window
        without variance.
    """
    if not 0.0 < variance_threshold <= 1.0:
        raise ConfigError(f"variance_threshold = {variance_threshold}: must be in (0, 1]")
    if max_factors < 1:
        raise ConfigError(f"max_factors = {max_factors}: must be >= 1")
    lam = np.asarray(eigenvalues, dtype=np.float64)
    total = float(lam.sum())
    if not total > 0:
        return 1
    positive = int((lam > _EIG_FLOOR * lam[0]).sum())
    share = np.cumsum(lam) / total
    k = int(np.searchsorted(share, variance_threshold * (1.0 - 1e-12)) + 1)
    return max(1, min(k, max_factors, positive))


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    sums = vectors.sum(axis=0)
    peak = vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])]
    tiny = np.abs(sums) <= 1e-12 * np.abs(vectors).sum(axis=0)
    sign = np.where(tiny, np.sign(peak), np.sign(sums))
    return vectors * np.where(sign == 0, 1.0, sign)


def pca_factors(
    returns: np.ndarray,
    variance_threshold: float = 0.6,
    max_factors: int = 5,
    n_factors: int | None = None,
) -> FactorModel:
    """Statistical factor model of one window (see the module doc for the rules).

    Parameters
    ----------
    returns : ndarray, shape (n_bars, n_assets)
    variance_threshold, max_factors : float, int
        The rule of :func:`select_n_factors`.
    n_factors : int, optional
        Keep exactly this many components instead of applying the rule.

    Returns
    -------
    FactorModel
        ``names`` ``PC1 .. PCk``; ``factor_cov`` is ``diag(lambda_1 .. lambda_k)``.
    """
    r = _window(returns, "pca_factors")
    cov = np.atleast_2d(np.cov(r, rowvar=False))
    lam, vec = np.linalg.eigh(0.5 * (cov + cov.T))
    order = np.argsort(lam)[::-1]
    lam = np.clip(lam[order], 0.0, None)
    vec = _fix_signs(vec[:, order])
    if n_factors is None:
        k = select_n_factors(lam, variance_threshold, max_factors)
    elif 1 <= n_factors <= r.shape[1]:
        k = int(n_factors)
    else:
        raise ConfigError(f"n_factors = {n_factors}: must be in [1, {r.shape[1]}]")
    loadings = vec[:, :k]
    specific = np.clip(np.diagonal(cov) - (loadings**2) @ lam[:k], 0.0, None)
    return FactorModel(
        loadings, np.diag(lam[:k]), specific, tuple(f"PC{j + 1}" for j in range(k)), lam
    )


def factor_exposures(
    returns: np.ndarray, factor_returns: np.ndarray, names: tuple[str, ...] | None = None
) -> FactorModel:
    """Exposures to given factors by time-series OLS with intercept on one window.

    Parameters
    ----------
    returns : ndarray, shape (n_bars, n_assets)
    factor_returns : ndarray, shape (n_bars, n_factors)
        The same bars' factor returns.
    names : tuple of str, optional
        Factor names (default ``F1 .. Fk``).

    Returns
    -------
    FactorModel
        ``loadings`` the OLS slopes, ``specific_var`` the residual variance
        (``ddof = 1 + n_factors``, floored at 0).
    """
    r = _window(returns, "factor_exposures")
    f = np.asarray(factor_returns, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] != r.shape[0]:
        raise DataError(
            f"factor_exposures: factor returns have shape {f.shape}; need ({r.shape[0]}, "
            "n_factors) rows matching the asset returns' bars"
        )
    if not np.isfinite(f).all():
        raise DataError("factor_exposures: factor returns contain NaN/inf")
    n_bars, k = f.shape
    if n_bars <= k + 1:
        raise DataError(
            f"factor_exposures: {n_bars} bars cannot fit {k} factors with an intercept; "
            "use a longer window"
        )
    rc = r - r.mean(axis=0)
    fc = f - f.mean(axis=0)
    slopes = np.linalg.lstsq(fc, rc, rcond=None)[0].T  # (n_assets, k)
    resid = rc - fc @ slopes.T
    specific = np.clip((resid**2).sum(axis=0) / max(n_bars - 1 - k, 1), 0.0, None)
    fcov = np.atleast_2d(np.cov(f, rowvar=False))
    labels = names if names is not None else tuple(f"F{j + 1}" for j in range(k))
    if len(labels) != k:
        raise ConfigError(f"factor_exposures: {len(labels)} names for {k} factors")
    return FactorModel(slopes, fcov, specific, tuple(labels))


def portfolio_exposures(loadings: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Factor exposures ``B' w`` of books.

    Parameters
    ----------
    loadings : ndarray, shape (..., n_assets, n_factors)
    weights : ndarray, shape (..., n_assets)

    Returns
    -------
    ndarray, shape (..., n_factors)
    """
    b = np.asarray(loadings, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    return np.einsum("...ik,...i->...k", b, w)


def effective_number(shares: np.ndarray) -> np.ndarray:
    """``exp`` of the Shannon entropy of non-negative shares (normalised here).

    Parameters
    ----------
    shares : ndarray, shape (..., n)
        Non-negative weights of a distribution (e.g. eigenvalues, variance shares).

    Returns
    -------
    ndarray, shape (...)
        In ``[1, n]``; NaN where the shares sum to 0.
    """
    s = np.clip(np.asarray(shares, dtype=np.float64), 0.0, None)
    total = s.sum(axis=-1, keepdims=True)
    p = np.divide(s, total, out=np.zeros_like(s), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)
    return np.where(total[..., 0] > 0, np.exp(h), np.nan)


def book_effective_factors(weights: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """A book's effective number of (principal-component) factors: its diversification score.

    Parameters
    ----------
    weights : ndarray, shape (..., n_assets)
    cov : ndarray, shape (..., n_assets, n_assets)

    Returns
    -------
    ndarray, shape (...)
        ``exp(H(p))`` with ``p_j = y_j^2 lambda_j / sum`` over all principal components;
        NaN for a book without variance (e.g. all cash).
    """
    c = np.asarray(cov, dtype=np.float64)
    lam, vec = np.linalg.eigh(0.5 * (c + np.swapaxes(c, -1, -2)))
    y = np.einsum("...ij,...i->...j", vec, np.asarray(weights, dtype=np.float64))
    return effective_number(y**2 * np.clip(lam, 0.0, None))


@dataclass(frozen=True)
class _BarModels:
    loadings: np.ndarray  # (n_steps, n_assets, k_max), zero columns beyond a bar's k
    realized: np.ndarray  # (n_steps, k_max): factor returns over bar t + 1
    names: tuple[str, ...]
    universe_effective: np.ndarray  # (n_steps,)
    eigenvalues: np.ndarray  # (n_fits, n_assets): window covariance of each fit
    eigenvectors: np.ndarray  # (n_fits, n_assets, n_assets)
    fit_of_step: np.ndarray  # (n_steps,) index into the fits


def factor_models(
    asset_returns: np.ndarray,
    bars: np.ndarray,
    window: int,
    *,
    factors: FactorReturns | None = None,
    variance_threshold: float = 0.6,
    max_factors: int = 5,
    refit_every: int = 1,
) -> _BarModels:
    """Point-in-time factor models at decision bars (the attribution's input).

    The model of bar ``t`` is fitted on rows ``t - window + 1 .. t``; it is refitted every
    ``refit_every`` steps and held in between (still point-in-time). Bars whose window
    would start before row 1 use the rows available from row 1 (row 0 is no return).

    Parameters
    ----------
    asset_returns : ndarray, shape (n_days, n_assets)
    bars : ndarray of int, shape (n_steps,)
        Decision bars, increasing; ``bars + 1 < n_days``.
    window : int
        Trailing bars per fit (>= 3).
    factors : FactorReturns, optional
        User factors; None = statistical (PCA) factors.
    variance_threshold, max_factors : float, int
        The PCA rule (:func:`select_n_factors`).
    refit_every : int
        Steps between refits (>= 1).
    """
    r = np.asarray(asset_returns, dtype=np.float64)
    b = np.asarray(bars, dtype=np.int64)
    if window < 3:
        raise ConfigError(f"factor window = {window}: needs at least 3 bars")
    if refit_every < 1:
        raise ConfigError(f"refit_every = {refit_every}: must be >= 1")
    if b.size and (b.min() < 1 or b.max() + 1 >= r.shape[0]):
        raise DataError(
            f"factor_models: decision bars span [{b.min()}, {b.max()}] but the returns have "
            f"{r.shape[0]} rows; bars must be in [1, n_days - 2]"
        )
    n_steps, n = b.size, r.shape[1]
    if factors is not None:
        f_all = np.asarray(factors.returns, dtype=np.float64)
        if f_all.shape[0] != r.shape[0]:
            raise DataError(
                f"factor returns have {f_all.shape[0]} rows for {r.shape[0]} market bars: "
                "load them with allocgym.data.load_factor_returns(path, market)"
            )
        k_max, names = f_all.shape[1], factors.names
    else:
        f_all, k_max, names = None, max_factors, tuple(f"PC{j + 1}" for j in range(max_factors))
    loadings = np.zeros((n_steps, n, k_max))
    realized = np.zeros((n_steps, k_max))
    universe = np.full(n_steps, np.nan)
    eig_values: list[np.ndarray] = []
    eig_vectors: list[np.ndarray] = []
    fit_of_step = np.zeros(n_steps, dtype=np.int64)
    model: FactorModel | None = None
    for k, t in enumerate(b):
        win = r[max(1, t - window + 1) : t + 1]
        if k % refit_every == 0:
            # too short a history (the first bars of the data) leaves the bar unattributed
            if f_all is None:
                model = pca_factors(win, variance_threshold, max_factors) if len(win) >= 3 else None
            elif len(win) > k_max + 1:
                model = factor_exposures(win, f_all[max(1, t - window + 1) : t + 1], names)
            else:
                model = None
            cov = np.atleast_2d(np.cov(win, rowvar=False)) if win.shape[0] >= 2 else np.eye(n)
            lam, vec = np.linalg.eigh(0.5 * (cov + cov.T))
            eig_values.append(np.clip(lam, 0.0, None))
            eig_vectors.append(vec)
        fit_of_step[k] = len(eig_values) - 1
        universe[k] = float(effective_number(eig_values[-1]))
        if model is None:
            continue
        kk = model.n_factors
        loadings[k, :, :kk] = model.loadings
        if f_all is None:
            realized[k, :kk] = model.loadings.T @ r[t + 1]
        else:
            realized[k] = f_all[t + 1]
    used = int(np.flatnonzero(np.abs(loadings).sum(axis=(0, 1)) > 0).max(initial=-1)) + 1
    if f_all is None:
        k_max = max(used, 1)
        loadings, realized, names = loadings[:, :, :k_max], realized[:, :k_max], names[:k_max]
    return _BarModels(
        loadings, realized, tuple(names), universe,
        np.stack(eig_values) if eig_values else np.zeros((0, n)),
        np.stack(eig_vectors) if eig_vectors else np.zeros((0, n, n)),
        fit_of_step,
    )  # fmt: skip


def factor_attribution(
    weights: np.ndarray, asset_pnl: np.ndarray, models: _BarModels
) -> dict[str, Any]:
    """Split one walk's market return into factor contributions and a specific part.

    Parameters
    ----------
    weights : ndarray, shape (n_steps, n_assets)
        Book held over each step's next bar.
    asset_pnl : ndarray, shape (n_steps, n_assets)
        ``w_k,i r_(t+1),i`` (``Backtest.asset_pnl``).
    models : result of :func:`factor_models` at the walk's bars.

    Returns
    -------
    dict
        ``factors`` (names), ``per_period`` (``(n_steps, n_factors)`` contributions),
        ``specific`` (``(n_steps,)``), ``market_return`` (``(n_steps,)``, the sum of both),
        ``total`` (factor name -> summed contribution, plus ``specific``),
        ``mean_exposure`` (factor name -> mean ``B' w``) and ``effective_factors`` (mean
        of the book's :func:`book_effective_factors` over invested steps).
    """
    w = np.asarray(weights, dtype=np.float64)
    exposures = portfolio_exposures(models.loadings, w)
    per_period = exposures * models.realized
    market = np.asarray(asset_pnl, dtype=np.float64).sum(axis=1)
    specific = market - per_period.sum(axis=1)
    invested = np.abs(w).sum(axis=1) > 0
    score = None
    if invested.any():
        fit = models.fit_of_step[invested]
        y = np.einsum("sij,si->sj", models.eigenvectors[fit], w[invested])
        score = effective_number(y**2 * models.eigenvalues[fit])
    total = {name: float(v) for name, v in zip(models.names, per_period.sum(axis=0), strict=True)}
    total["specific"] = float(specific.sum())
    return {
        "factors": list(models.names),
        "per_period": per_period,
        "specific": specific,
        "market_return": market,
        "total": total,
        "mean_exposure": {
            name: float(v) for name, v in zip(models.names, exposures.mean(axis=0), strict=True)
        }
        if w.shape[0]
        else {},
        "effective_factors": float(np.nanmean(score))
        if score is not None and np.isfinite(score).any()
        else float("nan"),
    }
