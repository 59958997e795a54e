"""Strategy families and the ``IntentAggregator`` (the first step of the allocation stack).

Three strategy families read the same trailing-window statistics as the observation
(``allocgym.features`` computes them and calls the functions here) and each emits, per
symbol, a signed target tilt (the *intent*, in ``[-1, 1]``) and a *confidence* in
``[0, 1]``; every family also has a *horizon* in bars (the look-back its signal is built
for, which is also its intended holding period):

========================  ==============================================  ===================
family                    intent                                          confidence
========================  ==============================================  ===================
``trend``                 ``tanh(s)``, ``s`` = mean risk-adjusted         horizon agreement
                          momentum over the momentum horizons             ``x |tanh(s)|``
``mean_reversion``        ``-tanh(z / 2)``, ``z`` = z-score of the log    ``|tanh(z / 2)| x``
                          price vs its trailing mean                      ``clip(0.5 - rho)``
``defensive``             ``m / (m + sigma_i)``, ``m`` = cross-sectional  ``clip(1 - sigma_i /``
                          median volatility (long-only, low-vol tilt)     ``(2 m), 0, 1)``
========================  ==============================================  ===================

(``rho`` is the lag-1 autocorrelation of the symbol's log returns over the z-score
window: mean reversion is trusted when returns have been anti-persistent.) Symbols not
tradable at the bar get intent 0 and confidence 0.

``IntentAggregator.aggregate`` nets budgeted intents into symbol weights: each family's
intent is normalised to unit gross (sum of ``|intent|`` over symbols = 1), so a budget is
exactly that family's gross exposure, and the symbol weights are the budget-weighted sum.
The per-family terms (*contributions*) feed the ``STRATEGY_CAP`` gate
(``GateContext.strategy_weights``) and the per-strategy budget trace of evaluation walks
(:func:`strategy_gross` -> ``allocgym.evaluation.Backtest.strategy_gross``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allocgym.config import FeatureConfig, RiskConfig
from allocgym.errors import RequestError

STRATEGY_FAMILIES: tuple[str, ...] = ("trend", "mean_reversion", "defensive")
"""Strategy family names, in the order of the strategy axis everywhere."""

N_STRATEGIES: int = len(STRATEGY_FAMILIES)

_BUDGET_SUM_TOL = 1e-6
"""Budgets must sum to 1 within this (float32 policy outputs are accepted)."""


@dataclass(frozen=True)
class IntentParams:
    """Horizons (bars) of the three families, in ``STRATEGY_FAMILIES`` order.

    Attributes
    ----------
    trend_horizon : int
        Longest momentum horizon the trend signal averages over.
    mean_reversion_horizon : int
        Window of the log-price z-score.
    defensive_horizon : int
        Truncation window of the EWMA volatility the low-vol tilt ranks on.
    """

    trend_horizon: int
    mean_reversion_horizon: int
    defensive_horizon: int

    @classmethod
    def from_config(cls, cfg: FeatureConfig) -> IntentParams:
        """Horizons from the feature windows the families' statistics are built on."""
        return cls(
            trend_horizon=int(max(cfg.momentum_horizons)),
            mean_reversion_horizon=int(cfg.zscore_window),
            defensive_horizon=int(cfg.ewma_window),
        )

    @property
    def horizons(self) -> np.ndarray:
        """Horizon per family in bars, int64 shape (n_strategies,)."""
        return np.array(
            [self.trend_horizon, self.mean_reversion_horizon, self.defensive_horizon],
            dtype=np.int64,
        )


@dataclass(frozen=True, eq=False)
class StrategyIntents:
    """Per-symbol intents of every family at a batch of bars.

    Attributes
    ----------
    intents : ndarray, shape (n_envs, n_strategies, n_assets)
        Signed target tilt in ``[-1, 1]`` (``defensive`` in ``[0, 1]``).
    confidence : ndarray, shape (n_envs, n_strategies, n_assets)
        Confidence in ``[0, 1]``.
    horizons : ndarray of int64, shape (n_strategies,)
        Horizon of each family in bars.
    """

    intents: np.ndarray
    confidence: np.ndarray
    horizons: np.ndarray


def trend_intent(momentum_z: np.ndarray, tradable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trend/momentum family.

    Parameters
    ----------
    momentum_z : ndarray, shape (n_envs, n_horizons, n_assets)
        Risk-adjusted momentum per horizon: sum of log returns over ``h`` bars divided by
        ``sigma * sqrt(h)`` (a t-statistic, unitless).
    tradable : ndarray of bool, shape (n_envs, n_assets)

    Returns
    -------
    intent, confidence : ndarray, shape (n_envs, n_assets)
        ``intent = tanh(s)`` with ``s`` the mean of ``momentum_z`` over horizons;
        ``confidence = |mean_h sign(momentum_z)| * |tanh(s)|`` (horizons agreeing on the
        direction and a strong signal both raise it).
    """
    n_h = momentum_z.shape[1]
    s = momentum_z.sum(axis=1) / n_h
    t = np.tanh(s)
    agreement = np.abs(np.sign(momentum_z).sum(axis=1)) / n_h
    intent = np.where(tradable, t, 0.0)
    conf = np.where(tradable, agreement * np.abs(t), 0.0)
    return intent, conf


def mean_reversion_intent(
    zscore: np.ndarray, autocorr: np.ndarray, tradable: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean-reversion family: lean against stretched prices.

    Parameters
    ----------
    zscore : ndarray, shape (n_envs, n_assets)
        z-score of the log price at the bar against its trailing mean (unitless).
    autocorr : ndarray, shape (n_envs, n_assets)
        Lag-1 autocorrelation of log returns over the same window, in ``[-1, 1]``.
    tradable : ndarray of bool, shape (n_envs, n_assets)

    Returns
    -------
    intent, confidence : ndarray, shape (n_envs, n_assets)
        ``intent = -tanh(z / 2)``; ``confidence = |tanh(z / 2)| * clip(0.5 - rho, 0, 1)``:
        0 for persistent (``rho >= 0.5``) returns, full for ``rho <= -0.5``.
    """
    t = np.tanh(0.5 * zscore)
    persistence = np.minimum(np.maximum(0.5 - autocorr, 0.0), 1.0)
    intent = np.where(tradable, -t, 0.0)
    conf = np.where(tradable, np.abs(t) * persistence, 0.0)
    return intent, conf


def defensive_intent(
    volatility: np.ndarray, median_vol: np.ndarray, tradable: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Defensive low-volatility family (long-only by construction).

    Parameters
    ----------
    volatility : ndarray, shape (n_envs, n_assets)
        Daily volatility (> 0).
    median_vol : ndarray, shape (n_envs,)
        Cross-sectional median of ``volatility`` over tradable symbols (> 0).
    tradable : ndarray of bool, shape (n_envs, n_assets)

    Returns
    -------
    intent, confidence : ndarray, shape (n_envs, n_assets)
        ``intent = m / (m + sigma)`` (0.5 at the median, towards 1 for the calmest names;
        normalised to unit gross it is a mild inverse-volatility book);
        ``confidence = clip(1 - sigma / (2 m), 0, 1)``.
    """
    m = median_vol[:, None]
    intent = np.where(tradable, m / (m + volatility), 0.0)
    conf = np.where(tradable, np.minimum(np.maximum(1.0 - volatility / (2.0 * m), 0.0), 1.0), 0.0)
    return intent, conf


def strategy_intents(
    momentum_z: np.ndarray,
    zscore: np.ndarray,
    autocorr: np.ndarray,
    volatility: np.ndarray,
    median_vol: np.ndarray,
    tradable: np.ndarray,
    params: IntentParams,
) -> StrategyIntents:
    """Intents and confidences of all families, stacked in ``STRATEGY_FAMILIES`` order.

    Shapes as in ``trend_intent``, ``mean_reversion_intent`` and ``defensive_intent``;
    the outputs have shape (n_envs, n_strategies, n_assets).
    """
    k, n = tradable.shape
    intents = np.empty((k, N_STRATEGIES, n))
    confidence = np.empty((k, N_STRATEGIES, n))
    intents[:, 0], confidence[:, 0] = trend_intent(momentum_z, tradable)
    intents[:, 1], confidence[:, 1] = mean_reversion_intent(zscore, autocorr, tradable)
    intents[:, 2], confidence[:, 2] = defensive_intent(volatility, median_vol, tradable)
    return StrategyIntents(intents=intents, confidence=confidence, horizons=params.horizons)


class IntentAggregator:
    """Nets budgeted strategy intents into symbol weights.

    Parameters
    ----------
    long_only : bool
        When True every family's intent is clipped at 0 *before* the unit-gross
        normalisation (a short tilt becomes "hold none"), so the weights are >= 0 and a
        family's whole budget goes to its long side. When False intents keep their sign.
    n_strategies : int
        Number of families (the strategy axis of ``intents``).

    Notes
    -----
    For budgets ``b`` (last column = cash) and intents ``x``:
    ``u_s = x_s / sum_i |x_s,i|`` (``u_s = 0`` when family ``s`` has no non-zero intent, its
    budget then stays in cash), ``contribution_s = b_s * u_s`` and
    ``weights = sum_s contribution_s``. Hence ``sum_i |contribution_s,i| = b_s`` whenever
    family ``s`` has an intent, and ``sum_i |weights_i| <= 1 - b_cash``.
    """

    def __init__(self, *, long_only: bool = True, n_strategies: int = N_STRATEGIES) -> None:
        if n_strategies < 1:
            raise RequestError(f"IntentAggregator n_strategies={n_strategies}: must be >= 1")
        self.long_only = bool(long_only)
        self.n_strategies = int(n_strategies)

    @classmethod
    def from_config(cls, risk: RiskConfig) -> IntentAggregator:
        """Long-only handling taken from ``RiskConfig.long_only``."""
        return cls(long_only=risk.long_only)

    def aggregate(self, budgets: np.ndarray, intents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Symbol weights and per-family contributions.

        Parameters
        ----------
        budgets : ndarray, shape (n_envs, n_strategies + 1)
            Non-negative fractions of equity summing to 1 (within 1e-6); the last column
            is cash.
        intents : ndarray, shape (n_envs, n_strategies, n_assets)
            Signed per-symbol intents of each family (``StrategyIntents.intents``).

        Returns
        -------
        weights : ndarray, shape (n_envs, n_assets)
            Net symbol exposures, signed fractions of equity.
        contributions : ndarray, shape (n_envs, n_strategies, n_assets)
            Each family's part of ``weights`` (they sum to ``weights`` over the strategy
            axis); the input of the STRATEGY_CAP gate.

        Raises
        ------
        RequestError
            Wrong shapes, non-finite values, negative budgets or budgets not summing to 1.
        """
        b = np.asarray(budgets, dtype=np.float64)
        x = np.asarray(intents, dtype=np.float64)
        s = self.n_strategies
        if b.ndim != 2 or b.shape[1] != s + 1:
            raise RequestError(
                f"budgets shape {b.shape}: expected (n_envs, {s + 1}) = one column per "
                f"strategy family {STRATEGY_FAMILIES[:s]} plus cash"
            )
        if x.ndim != 3 or x.shape[:2] != (b.shape[0], s):
            raise RequestError(
                f"intents shape {x.shape}: expected (n_envs={b.shape[0]}, {s}, n_assets)"
            )
        if not (np.isfinite(b).all() and np.isfinite(x).all()):
            raise RequestError("budgets or intents contain NaN/inf: pass finite arrays")
        if (b < 0).any():
            raise RequestError(
                f"budgets have a negative entry (min {b.min():.3g}): budgets are fractions >= 0"
            )
        dev = np.abs(b.sum(axis=1) - 1.0)
        if (dev > _BUDGET_SUM_TOL).any():
            raise RequestError(
                f"budgets rows must sum to 1 (cash included); worst row is off by "
                f"{dev.max():.3g}: normalise them (e.g. a softmax)"
            )
        if self.long_only:
            x = np.maximum(x, 0.0)
        gross = np.abs(x).sum(axis=2, keepdims=True)
        unit = np.divide(x, gross, out=np.zeros_like(x), where=gross > 0.0)
        contributions = b[:, :s, None] * unit
        return contributions.sum(axis=1), contributions


def strategy_gross(contributions: np.ndarray) -> np.ndarray:
    """Gross exposure of each family (the per-strategy budget utilisation trace).

    ``allocgym.evaluation`` records it at every decision of a ``budgets``-mode walk, on the
    contributions after the ``STRATEGY_CAP`` scaling (``Backtest.strategy_gross``).

    Parameters
    ----------
    contributions : ndarray, shape (n_envs, n_strategies, n_assets)

    Returns
    -------
    ndarray, shape (n_envs, n_strategies)
        ``sum_i |contribution_s,i|``, a fraction of equity.
    """
    return np.abs(contributions).sum(axis=2)
