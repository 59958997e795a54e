"""The one cost model: commission + half-spread + square-root market impact.

The expected cost of trading a signed weight change ``Δw`` in one symbol, as a fraction
of equity, is

    |Δw| · (commission_bps / 1e4 + spread_mult · spread_bps / 2e4
            + impact_k · σ · sqrt(|Δw| · equity / ADV))

where ``σ`` is the symbol's daily return volatility (decimal) and ``ADV`` its average
daily traded notional in currency, so ``|Δw| · equity / ADV`` is the trade's
participation. The slippage-budget gate (``allocgym.risk``), fills in the environment and
evaluation all call :func:`expected_cost` (or :func:`cost_terms`, its two halves): there
is no second implementation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from allocgym import compiled
from allocgym.config import CostConfig
from allocgym.errors import ConfigError, DataError


@dataclass(frozen=True)
class CostModel:
    """Parameters of the cost model.

    Parameters
    ----------
    commission_bps : float
        Commission per unit of traded notional, in bps (>= 0).
    spread_mult : float
        Multiplier on the half-spread paid (1 = cross half the quoted spread) (>= 0).
    impact_k : float
        Coefficient ``k`` of the square-root impact ``k · σ · sqrt(q / ADV)`` (>= 0).
    """

    commission_bps: float = 1.0
    spread_mult: float = 1.0
    impact_k: float = 0.1

    def __post_init__(self) -> None:
        for name in ("commission_bps", "spread_mult", "impact_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(
                    f"CostModel.{name} = {value!r}: must be a number; set costs.{name}"
                )
            if not math.isfinite(value) or value < 0:
                raise ConfigError(
                    f"CostModel.{name} = {value!r}: must be finite and >= 0; set costs.{name}"
                )

    @classmethod
    def from_config(cls, cfg: CostConfig) -> CostModel:
        """Build the model from the ``costs`` config section."""
        return cls(
            commission_bps=float(cfg.commission_bps),
            spread_mult=float(cfg.spread_mult),
            impact_k=float(cfg.impact_k),
        )


def cost_terms(
    trade: np.ndarray,
    equity: np.ndarray | float,
    adv_notional: np.ndarray,
    volatility: np.ndarray,
    spread_bps: np.ndarray,
    model: CostModel,
) -> tuple[np.ndarray, np.ndarray]:
    """The linear and the impact part of :func:`expected_cost` (their sum is the cost).

    Parameters
    ----------
    trade : ndarray, shape (n_envs, n_assets)
        Signed weight change (fraction of equity).
    equity : ndarray, shape (n_envs,), or float
        Equity in currency.
    adv_notional, volatility, spread_bps : ndarray, broadcastable to (n_envs, n_assets)
        ADV in currency, daily volatility (decimal), quoted spread in bps.
    model : CostModel

    Returns
    -------
    linear : ndarray, shape (n_envs, n_assets)
        ``|Δw| · (commission + spread_mult · half-spread)``: scales linearly with the trade.
    impact : ndarray, shape (n_envs, n_assets)
        ``|Δw| · k · σ · sqrt(|Δw| · equity / ADV)``: scales with the trade to the power
        1.5. A nonzero trade against an ADV of 0 (with ``k · σ > 0``) costs ``+inf``.

    Raises
    ------
    DataError
        A negative ADV, volatility or spread, or an equity not above 0 (a negative spread
        would be a rebate, an equity of 0 no impact): NaN passes (it gives NaN).

    Notes
    -----
    A zero trade costs exactly 0 whatever the market data; a NaN trade gives NaN (never a
    silent 0).
    """
    trade = np.asarray(trade, dtype=np.float64)
    eq = np.asarray(equity, dtype=np.float64)
    if eq.ndim == 1:
        eq = eq[:, None]
    adv = np.asarray(adv_notional, dtype=np.float64)
    vol = np.asarray(volatility, dtype=np.float64)
    spread = np.asarray(spread_bps, dtype=np.float64)
    for name, x, low in (("adv_notional", adv, 0.0), ("volatility", vol, 0.0),
                         ("spread_bps", spread, 0.0)):  # fmt: skip
        if (x < low).any():
            raise DataError(
                f"cost_terms: {name} has {float(x[x < low].flat[0])!r}: must be >= 0 (ADV in "
                "currency, daily volatility as a decimal, the quoted spread in bps)"
            )
    if (eq <= 0.0).any():
        raise DataError(
            f"cost_terms: equity {float(eq[eq <= 0.0].flat[0])!r} must be > 0: costs are "
            "fractions of a positive equity"
        )
    return compiled.cost_terms(
        trade, eq, adv, vol, spread, model.spread_mult, model.commission_bps, model.impact_k
    )


def expected_cost(
    trade: np.ndarray,
    equity: np.ndarray | float,
    adv_notional: np.ndarray,
    volatility: np.ndarray,
    spread_bps: np.ndarray,
    model: CostModel,
) -> np.ndarray:
    """Expected cost of trading ``trade``, as a fraction of equity, per symbol.

    ``|Δw| · (commission_bps/1e4 + spread_mult · spread_bps/2e4 + k · σ · sqrt(|Δw| · equity / ADV))``

    Parameters
    ----------
    trade : ndarray, shape (n_envs, n_assets)
        Signed weight change (fraction of equity).
    equity : ndarray, shape (n_envs,), or float
        Equity in currency (> 0).
    adv_notional : ndarray, broadcastable to (n_envs, n_assets)
        Average daily traded notional in currency.
    volatility : ndarray, broadcastable to (n_envs, n_assets)
        Daily return volatility (decimal).
    spread_bps : ndarray, broadcastable to (n_envs, n_assets)
        Quoted bid-ask spread in bps (half of it is paid times ``spread_mult``).
    model : CostModel

    Returns
    -------
    ndarray, shape (n_envs, n_assets)
        Cost per symbol as a fraction of equity (sum over assets for the decision's cost).
    """
    linear, impact = cost_terms(trade, equity, adv_notional, volatility, spread_bps, model)
    return linear + impact
