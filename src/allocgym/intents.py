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

(``rho`` is the uncentred lag-1 autocorrelation, sum x_t x_{t-1} / sum x_t^2, of the
symbol's log returns over the z-score window, the returns taken as mean-zero: mean
reversion is trusted when returns have been anti-persistent, and a steady drift reads as
persistence.) Symbols not tradable at the bar get intent 0 and confidence 0.

``IntentAggregator.aggregate`` nets budgeted intents into symbol weights: each family's
intent is normalised to unit gross (sum of ``|intent|`` over symbols = 1), so a budget is
exactly that family's gross exposure, and the symbol weights are the budget-weighted sum.
The per-family terms (*contributions*) feed the ``STRATEGY_CAP`` gate
(``GateContext.strategy_weights``), which holds each family's gross under its budget
(base budget x regime budget multiplier x regime tilt x capacity factor:
``allocgym.risk.gates.strategy``) and records the per-strategy budget trace
(``GateResult.strategy_budget`` -> ``allocgym.evaluation.Backtest.strategy_gross``).

Confidence and horizon. ``aggregate`` optionally takes each intent's confidence and its
age against its family's horizon:

- **confidence** ``c`` in ``[0, 1]`` weights the intents *before* the unit-gross
  normalisation (``x_s c_s / sum_i |x_s,i c_s,i|``): inside a family a confident intent
  gets more of the budget than a doubtful one, and an intent with confidence 0 gets none;
  the budget stays the family's gross.
- **horizon**: an intent whose age (bars since it was issued) is at most its family's
  horizon counts in full. Past it, the ``stale_rule`` decides: ``drop`` (factor 0) or
  ``decay`` (factor ``0.5 ** ((age - horizon) / horizon)``: it halves every further
  horizon). The factor multiplies the family's normalised intents *after* the
  normalisation, so the stale part of its budget stays in cash instead of being
  re-spread over the fresh intents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from allocgym.config import FeatureConfig, IntentConfig, RiskConfig
from allocgym.errors import RequestError

STRATEGY_FAMILIES: tuple[str, ...] = ("trend", "mean_reversion", "defensive")
"""Strategy family names, in the order of the strategy axis everywhere."""

N_STRATEGIES: int = len(STRATEGY_FAMILIES)

StaleRule = Literal["drop", "decay"]
STALE_RULES: tuple[str, ...] = ("drop", "decay")

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
        Uncentred lag-1 autocorrelation of log returns over the same window (returns taken
        as mean-zero: a steady drift reads as persistence), in ``[-1, 1]``.
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


def horizon_factor(age: np.ndarray, horizons: np.ndarray, rule: StaleRule) -> np.ndarray:
    """Weight of intents by age against their horizon (1 within it).

    Parameters
    ----------
    age : ndarray
        Bars since each intent was issued (>= 0), broadcastable against ``horizons``.
    horizons : ndarray
        Horizon in bars (>= 1) of each intent's family.
    rule : {"drop", "decay"}
        Past the horizon: ``drop`` gives 0, ``decay`` gives
        ``0.5 ** ((age - horizon) / horizon)``.

    Returns
    -------
    ndarray
        In ``[0, 1]``, the broadcast shape of ``age`` and ``horizons``.
    """
    a = np.asarray(age, dtype=np.float64)
    h = np.asarray(horizons, dtype=np.float64)
    past = np.maximum(a - h, 0.0)
    if rule == "drop":
        return np.where(past > 0.0, 0.0, 1.0)
    if rule == "decay":
        return np.exp2(-past / h)
    raise RequestError(f"stale_rule {rule!r} is unknown: use one of {STALE_RULES}")


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
    stale_rule : {"drop", "decay"}
        What happens to an intent past its family's horizon (:func:`horizon_factor`).

    Notes
    -----
    For budgets ``b`` (last column = cash) and intents ``x``:
    ``u_s = x_s / sum_i |x_s,i|`` (``u_s = 0`` when family ``s`` has no non-zero intent, its
    budget then stays in cash), ``contribution_s = b_s * u_s`` and
    ``weights = sum_s contribution_s``. Hence ``sum_i |contribution_s,i| = b_s`` whenever
    family ``s`` has an intent, and ``sum_i |weights_i| <= 1 - b_cash``. With confidences
    ``c`` and horizon factors ``f`` (module docstring):
    ``u_s = x_s c_s / sum_i |x_s,i c_s,i|`` and ``contribution_s = b_s f_s u_s``.
    """

    def __init__(
        self,
        *,
        long_only: bool = True,
        n_strategies: int = N_STRATEGIES,
        stale_rule: StaleRule = "decay",
    ) -> None:
        if n_strategies < 1:
            raise RequestError(f"IntentAggregator n_strategies={n_strategies}: must be >= 1")
        if stale_rule not in STALE_RULES:
            raise RequestError(
                f"IntentAggregator stale_rule={stale_rule!r}: use one of {STALE_RULES}"
            )
        self.long_only = bool(long_only)
        self.n_strategies = int(n_strategies)
        self.stale_rule: StaleRule = stale_rule

    @classmethod
    def from_config(cls, risk: RiskConfig, intents: IntentConfig | None = None) -> IntentAggregator:
        """Long-only handling from ``RiskConfig.long_only``, the stale-intent rule from
        ``IntentConfig.stale_rule`` (default ``decay``)."""
        rule: StaleRule = "decay" if intents is None else intents.stale_rule
        return cls(long_only=risk.long_only, stale_rule=rule)

    def aggregate(
        self,
        budgets: np.ndarray,
        intents: np.ndarray,
        confidence: np.ndarray | None = None,
        age: np.ndarray | None = None,
        horizons: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Symbol weights and per-family contributions.

        Parameters
        ----------
        budgets : ndarray, shape (n_envs, n_strategies + 1)
            Non-negative fractions of equity summing to 1 (within 1e-6); the last column
            is cash.
        intents : ndarray, shape (n_envs, n_strategies, n_assets)
            Signed per-symbol intents of each family (``StrategyIntents.intents``).
        confidence : ndarray, shape (n_envs, n_strategies, n_assets), optional
            Confidence of each intent in ``[0, 1]`` (default 1: unweighted).
        age : ndarray, shape (n_envs, n_strategies) or (n_envs, n_strategies, n_assets), optional
            Bars since each intent was issued (>= 0; default 0: fresh). Needs ``horizons``.
        horizons : ndarray, shape (n_strategies,), optional
            Horizon of each family in bars (>= 1; ``StrategyIntents.horizons``).

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
            Wrong shapes, non-finite values, negative budgets or budgets not summing to 1,
            a confidence outside ``[0, 1]``, a negative age, a horizon below 1, or an age
            without horizons.
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
        if confidence is not None:
            x = x * self._confidence(confidence, x.shape)
        gross = np.abs(x).sum(axis=2, keepdims=True)
        unit = np.divide(x, gross, out=np.zeros_like(x), where=gross > 0.0)
        if age is not None or horizons is not None:
            unit = unit * self._freshness(age, horizons, x.shape)
        contributions = b[:, :s, None] * unit
        return contributions.sum(axis=1), contributions

    @staticmethod
    def _confidence(confidence: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        c = np.asarray(confidence, dtype=np.float64)
        if c.shape != shape:
            raise RequestError(f"confidence shape {c.shape}: expected {shape}, one per intent")
        if not (np.isfinite(c).all() and (c >= 0.0).all() and (c <= 1.0).all()):
            raise RequestError(
                f"confidence must be finite and in [0, 1]; got min {np.nanmin(c):.3g}, max "
                f"{np.nanmax(c):.3g}: clip it (1 = full weight, 0 = ignore the intent)"
            )
        return c

    def _freshness(
        self, age: np.ndarray | None, horizons: np.ndarray | None, shape: tuple[int, ...]
    ) -> np.ndarray:
        if age is None or horizons is None:
            raise RequestError(
                "intent age and horizons come together: pass both (age in bars since each "
                "intent was issued, horizons in bars per family) or neither"
            )
        a = np.asarray(age, dtype=np.float64)
        h = np.asarray(horizons, dtype=np.float64)
        if h.shape != (shape[1],):
            raise RequestError(f"horizons shape {h.shape}: expected ({shape[1]},), one per family")
        if a.shape == shape[:2]:
            a = a[:, :, None]
        if a.shape != (*shape[:2], 1) and a.shape != shape:
            raise RequestError(
                f"age shape {a.shape}: expected {shape[:2]} (per family) or {shape} (per intent)"
            )
        if not (np.isfinite(a).all() and (a >= 0).all()):
            raise RequestError("intent age must be finite and >= 0 bars")
        if not (np.isfinite(h).all() and (h >= 1).all()):
            raise RequestError(f"horizons {h.tolist()} must be finite and >= 1 bar")
        return horizon_factor(a, h[None, :, None], self.stale_rule)


def strategy_gross(contributions: np.ndarray) -> np.ndarray:
    """Gross exposure of each family's contributions (the measure of ``STRATEGY_CAP``:
    on the proposal's contributions it is the ``proposed`` line of the gates' budget
    trace, ``GateResult.strategy_budget``).

    Parameters
    ----------
    contributions : ndarray, shape (n_envs, n_strategies, n_assets)

    Returns
    -------
    ndarray, shape (n_envs, n_strategies)
        ``sum_i |contribution_s,i|``, a fraction of equity.
    """
    return np.abs(contributions).sum(axis=2)
