"""Black–Litterman posterior with user views, feeding a mean-variance step.

Prior (market-implied equilibrium returns, reverse optimisation)::

    pi = delta * Σ w_prior

Posterior for views ``P mu = Q + e``, ``e ~ N(0, Omega)`` (He & Litterman 1999)::

    mu_BL  = pi + τΣ P' (P τΣ P' + Omega)⁻¹ (Q - P pi)
    M      = τΣ - τΣ P' (P τΣ P' + Omega)⁻¹ P τΣ
    Σ_BL   = Σ + M

This is algebraically the textbook ``[(τΣ)⁻¹ + P'Ω⁻¹P]⁻¹[(τΣ)⁻¹pi + P'Ω⁻¹Q]`` but needs
neither ``Σ⁻¹`` nor ``Ω⁻¹`` (certain views, ``Ω = 0``, are allowed). The default ``Omega``
is He–Litterman's ``diag(P τΣ P')``. Weights then maximise
``mu_BL'w - (delta/2) w'Σ_BL w`` subject to ``sum(w) = 1`` and the usual bounds.

Units: per-bar decimal returns throughout. :func:`view_matrices` converts the
configuration's annualised view returns (``/ periods_per_year``) and view variances
(``/ periods_per_year²``, the variance of an annualised mean) to per-bar units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from allocgym.allocator import AllocationContext, context_returns
from allocgym.baselines.classic import (
    MIN_VOL,
    _MeanVarianceProblem,
    active_mask,
    mean_variance_weights,
    sanitize_covariance,
    weight_bounds,
)
from allocgym.config import BlackLittermanConfig, BLViewConfig, ClassicConfig
from allocgym.errors import ConfigError
from allocgym.estimates import estimate_covariance

if TYPE_CHECKING:
    from allocgym.config import BaselinesConfig

__all__ = [
    "BlackLitterman",
    "black_litterman_posterior",
    "implied_returns",
    "view_matrices",
]


def implied_returns(cov: np.ndarray, weights: np.ndarray, risk_aversion: float) -> np.ndarray:
    """Market-implied equilibrium returns ``pi = delta * Σ w``.

    Parameters
    ----------
    cov : ndarray, shape (n_assets, n_assets)
    weights : ndarray, shape (n_assets,)
    risk_aversion : float
        delta > 0.

    Returns
    -------
    ndarray, shape (n_assets,)
    """
    return risk_aversion * np.asarray(cov, float) @ np.asarray(weights, float)


def black_litterman_posterior(
    cov: np.ndarray,
    prior_weights: np.ndarray,
    P: np.ndarray | None = None,
    Q: np.ndarray | None = None,
    omega: np.ndarray | None = None,
    tau: float = 0.05,
    risk_aversion: float = 2.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Black–Litterman prior and posterior (He–Litterman form).

    Parameters
    ----------
    cov : ndarray, shape (n_assets, n_assets)
        Return covariance Σ (per bar).
    prior_weights : ndarray, shape (n_assets,)
        Weights whose implied returns form the prior (market or equal weights).
    P : ndarray, shape (n_views, n_assets), optional
        View picking matrix; ``None`` (or zero views) returns the prior.
    Q : ndarray, shape (n_views,), optional
        View returns (per bar).
    omega : ndarray, shape (n_views, n_views) or (n_views,), optional
        View uncertainty covariance (a vector is its diagonal); default
        ``diag(P τΣ P')``.
    tau : float
        Scale of the uncertainty of the prior mean, > 0.
    risk_aversion : float
        delta > 0.

    Returns
    -------
    pi : ndarray, shape (n_assets,)
        Prior (implied) returns.
    mu : ndarray, shape (n_assets,)
        Posterior expected returns.
    cov_post : ndarray, shape (n_assets, n_assets)
        Posterior predictive covariance ``Σ + M``.
    """
    cov = np.asarray(cov, float)
    if not (tau > 0 and risk_aversion > 0):
        raise ConfigError(f"Black–Litterman tau = {tau}, risk_aversion = {risk_aversion}: both > 0")
    pi = implied_returns(cov, prior_weights, risk_aversion)
    ts = tau * cov
    if P is None or np.asarray(P).size == 0:
        return pi, pi.copy(), cov + ts
    P = np.atleast_2d(np.asarray(P, float))
    Q = np.atleast_1d(np.asarray(Q, float))
    if P.shape[1] != cov.shape[0] or Q.shape != (P.shape[0],):
        raise ConfigError(
            f"Black–Litterman views: P has shape {P.shape} and Q {Q.shape}; need "
            f"P (n_views, {cov.shape[0]}) and Q (n_views,)"
        )
    pts = P @ ts
    a = pts @ P.T
    if omega is None:
        om = np.diag(np.diag(a))
    else:
        om = np.asarray(omega, float)
        om = np.diag(om) if om.ndim == 1 else om
    gain = np.linalg.solve(a + om, pts).T  # τΣP'(PτΣP' + Ω)⁻¹, shape (n_assets, n_views)
    mu = pi + gain @ (Q - P @ pi)
    m = ts - gain @ pts
    cov_post = cov + 0.5 * (m + m.T)
    return pi, mu, cov_post


def view_matrices(
    views: Sequence[BLViewConfig], symbols: tuple[str, ...], periods_per_year: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The views in per-bar units: ``P``, ``Q`` and the diagonal of ``Omega``.

    Parameters
    ----------
    views : sequence of BLViewConfig
        ``baselines.black_litterman.views`` (annualised returns and variances).
    symbols : tuple of str
    periods_per_year : float
        Bars per year: a view return is divided by it, a view variance (the variance of
        an annualised mean) by its square.

    Returns
    -------
    P : ndarray, shape (n_views, n_assets)
    Q : ndarray, shape (n_views,)
    omega : ndarray, shape (n_views,), or None
        None when no view gives a variance; NaN for a view without one (both take
        He–Litterman's default).

    Raises
    ------
    ConfigError
        A view names a symbol outside the universe.
    """
    index = {s: i for i, s in enumerate(symbols)}
    P = np.zeros((len(views), len(symbols)))
    for k, v in enumerate(views):
        for sym, coef in v.assets.items():
            if sym not in index:
                raise ConfigError(
                    f"Black–Litterman view {k} names symbol {sym!r}, which is not in the "
                    "universe; fix the symbol or drop the view"
                )
            P[k, index[sym]] = coef
    Q = np.array([v.expected_return / periods_per_year for v in views], float)
    if all(v.variance is None for v in views):
        return P, Q, None
    per_bar = [np.nan if v.variance is None else v.variance / periods_per_year**2 for v in views]
    return P, Q, np.array(per_bar)


class BlackLitterman:
    """Black–Litterman posterior returns and covariance, then a mean-variance step.

    Parameters
    ----------
    params : ClassicConfig, optional
        Covariance estimator, bounds, solver and ``periods_per_year`` (limits left unset
        take the default ``risk`` values).
    bl : BlackLittermanConfig, optional
        Views, tau, risk aversion and prior weights; no views (the prior) when omitted.

    Attributes
    ----------
    pi_ : ndarray, shape (n_envs, n_assets)
        Prior implied returns (per bar).
    mu_ : ndarray, shape (n_envs, n_assets)
        Posterior expected returns (per bar).
    cov_post_ : ndarray, shape (n_envs, n_assets, n_assets)
    active_ : ndarray of bool, shape (n_envs, n_assets)
    weights_ : ndarray, shape (n_envs, n_assets)
    """

    name = "black_litterman"

    def __init__(
        self, params: ClassicConfig | None = None, bl: BlackLittermanConfig | None = None
    ) -> None:
        self.params = (params or ClassicConfig()).resolved()
        self.bl = bl or BlackLittermanConfig()
        self._problems: dict[int, _MeanVarianceProblem] = {}

    @classmethod
    def from_config(cls, section: BaselinesConfig) -> BlackLitterman:
        """Build from ``cfg.baselines`` (``classic`` and ``black_litterman`` sub-sections)."""
        return cls(section.classic, section.black_litterman)

    def _prior(self, symbols: tuple[str, ...], active: np.ndarray) -> np.ndarray:
        if self.bl.prior_weights is None:
            base = np.ones((active.shape[0], len(symbols)))
        else:
            unknown = sorted(set(self.bl.prior_weights) - set(symbols))
            if unknown:
                raise ConfigError(
                    f"Black–Litterman prior_weights name symbols {unknown} not in the "
                    "universe; fix or remove them"
                )
            vec = np.array([float(self.bl.prior_weights.get(s, 0.0)) for s in symbols])
            base = np.broadcast_to(vec, active.shape)
        base = np.where(active, base, 0.0)
        s = base.sum(axis=-1, keepdims=True)
        return np.divide(base, s, out=np.zeros_like(base), where=s > 0)

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Black–Litterman mean-variance weights, shape (n_envs, n_assets), rows sum to 1."""
        r = context_returns(ctx, self.name)
        p, bl = self.params, self.bl
        active = active_mask(r, MIN_VOL)
        cov = estimate_covariance(r, p.covariance, p.halflife)
        scaled, scale = sanitize_covariance(cov, active)
        cov_d = scaled * scale[:, None, None]
        prior = self._prior(ctx.symbols, active)
        views = view_matrices(bl.views, ctx.symbols, p.periods_per_year) if bl.views else None
        P, Q, om = views or (None, None, None)
        lo, hi = weight_bounds(active, p.long_only, p.max_weight, 1.0)
        n_envs, n = ctx.n_envs, ctx.n_assets
        self.pi_ = np.zeros((n_envs, n))
        self.mu_ = np.zeros((n_envs, n))
        self.cov_post_ = np.zeros((n_envs, n, n))
        out = np.zeros((n_envs, n))
        for b in np.flatnonzero(active.any(axis=-1)):
            omega = None
            if om is not None and P is not None:
                # Views without a variance take the He–Litterman default.
                default = np.diag(P @ (bl.tau * cov_d[b]) @ P.T)
                omega = np.where(np.isnan(om), default, om)
            pi, mu, cov_post = black_litterman_posterior(
                cov_d[b], prior[b], P, Q, omega, bl.tau, bl.risk_aversion
            )
            self.pi_[b], self.mu_[b], self.cov_post_[b] = pi, mu, cov_post
            mu_a = np.where(active[b], mu, 0.0)
            if n not in self._problems:
                self._problems[n] = _MeanVarianceProblem(n)
            out[b] = mean_variance_weights(
                mu_a, cov_post, bl.risk_aversion, lo[b], hi[b], p.solver,
                _problem=self._problems[n],
            )  # fmt: skip
        self.active_ = active
        self.weights_ = out
        return out
