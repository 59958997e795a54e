"""Strategy-level gate: each strategy family's gross contribution under its budget.

The budget of family ``k`` at a decision (budgets action mode) is built in four steps:
a base budget per family (``risk.strategy_budgets``, default
``risk.max_strategy_contribution``), scaled by the regime budget multiplier and the regime
tilt of the decision's regime (both in ``LimitTables``), then by the family's capacity
factor, and the hard limits clip the book after this gate::

    budget_k = base_k x m(regime) x tilt(regime, k) x capacity_k

    capacity_k = clamp( prod_d clamp(r_d) ),  over the references d that are set:
        r_spread = spread_ref / spread_k       (risk.strategy_capacity_spread_bps)
        r_vol    = vol_ref / vol_k             (risk.strategy_capacity_volatility)
        r_liq    = (ADV / equity)_k / liq_ref  (risk.strategy_capacity_adv_to_equity)

``spread_k``, ``vol_k`` and ``(ADV / equity)_k`` are the averages over the family's
tradable names weighted by ``|contribution|``; ``clamp`` is the runtime flags' clamp
``[min_multiplier, max_multiplier]`` (0 below ``MIN_MULTIPLIER``). A family holding no
tradable name, or a decision without references, has capacity factor 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from allocgym.compiled.trade import strategy_scale
from allocgym.errors import RequestError
from allocgym.risk.codes import ReasonCode
from allocgym.risk.context import StrategyBudgetTrace
from allocgym.risk.inputs import Inputs
from allocgym.risk.kernels import ATOL, RTOL, Trace
from allocgym.risk.limits import clamp_multiplier

if TYPE_CHECKING:
    from allocgym.risk.limits import RiskLimits


_TINY = float(np.finfo(np.float64).tiny)  # smallest normal float64


def capacity_factor(strategy: np.ndarray, x: Inputs, limits: RiskLimits) -> np.ndarray:
    """Capacity factor of each family from the spread, volatility and liquidity of the
    names it holds (module docstring).

    Parameters
    ----------
    strategy : ndarray, shape (n_envs, n_strategies, n_assets)
        The families' contributions.
    x : Inputs
        Sanitised market data (spread in bps, daily volatility, ADV notional, equity).
    limits : RiskLimits
        References (``strategy_capacity_*``, ``None`` = left out) and the clamp.

    Returns
    -------
    ndarray, shape (n_envs, n_strategies)
        In ``[min_multiplier, max_multiplier]`` (or 0), 1 where nothing is referenced.
    """
    refs = (
        limits.strategy_capacity_spread_bps,
        limits.strategy_capacity_volatility,
        limits.strategy_capacity_adv_to_equity,
    )
    factor = np.ones(strategy.shape[:2])
    if all(ref is None for ref in refs):
        return factor
    spread_ref, vol_ref, liq_ref = refs
    held = np.where(x.tradable[:, None, :], np.abs(strategy), 0.0)
    total = held.sum(axis=2)
    some = total > 0.0
    denom = np.where(some, total, 1.0)

    def average(values: np.ndarray) -> np.ndarray:
        return (held * values[:, None, :]).sum(axis=2) / denom

    lo, hi = limits.min_multiplier, limits.max_multiplier
    # Each ratio is clamped before the product, so a zero spread (ratio inf) and a zero
    # ADV (ratio 0) give a number, not inf x 0. Two ratios clamped at a huge hi can still
    # overflow the product to inf: a ratio read as 0 makes the factor 0 whatever the rest.
    zero = np.zeros(factor.shape, dtype=bool)
    ratios = []
    if spread_ref is not None:
        ratios.append(spread_ref / average(x.spread))
    if vol_ref is not None:
        ratios.append(vol_ref / average(x.vol))
    if liq_ref is not None:
        ratios.append(average(x.adv) / x.equity[:, None] / liq_ref)
    for ratio in ratios:
        r = clamp_multiplier(ratio, lo, hi)
        zero |= r == 0.0
        factor *= r
    return np.where(some & ~zero, clamp_multiplier(factor, lo, hi), np.where(some, 0.0, 1.0))


def strategy_gate(
    p: np.ndarray, x: Inputs, limits: RiskLimits, slot: np.ndarray, trace: Trace
) -> tuple[np.ndarray, np.ndarray | None, StrategyBudgetTrace | None]:
    """STRATEGY_CAP: scale each strategy family whose gross contribution exceeds its budget.

    Parameters
    ----------
    p : ndarray, shape (n_envs, n_assets)
        Sanitised proposal.
    x : Inputs
    limits : RiskLimits
        Its ``tables`` hold ``base x regime multiplier x tilt`` per regime slot.
    slot : ndarray of int, shape (n_envs,)
        Table slot of each portfolio's regime.
    trace : Trace

    Returns
    -------
    proposal : ndarray, shape (n_envs, n_assets)
    scale : ndarray, shape (n_envs, n_strategies), or None
        The scale of each family (None without strategy contributions).
    budget : StrategyBudgetTrace or None
        The budgets; its ``approved`` line is zero here (the chain fills it in from the
        final book with :func:`attribute_approved`).

    Raises
    ------
    RequestError
        More strategies than ``STRATEGY_FAMILIES`` (the strategy axis follows that order).
    """
    if x.strategy is None or x.strategy_gross is None:
        return p, None, None
    gross = x.strategy_gross
    n_families = gross.shape[1]
    base = np.asarray(limits.strategy_budgets)
    if n_families > base.size:
        raise RequestError(
            f"GateContext.strategy_weights has {n_families} strategies; the strategy axis "
            f"holds at most the {base.size} strategy families (allocgym.intents."
            "STRATEGY_FAMILIES, in that order)"
        )
    regime = limits.tables.bound[ReasonCode.STRATEGY_CAP][slot, :n_families]
    budget = regime * capacity_factor(x.strategy, x, limits)
    # A subnormal scale (a gross near the float maximum over a small budget) has lost the
    # precision that keeps the scaled family under its budget: such a family gets 0.
    scale, any_over = strategy_scale(gross, budget, RTOL, ATOL, _TINY)
    base_line = np.empty(gross.shape)
    base_line[:] = base[:n_families]
    record = StrategyBudgetTrace(
        base=base_line,
        regime=regime,
        capacity=budget,
        proposed=gross,
        approved=np.zeros(gross.shape),
    )
    if not any_over:
        return p, scale, record
    out = p + ((scale - 1.0)[:, :, None] * x.strategy).sum(axis=1)
    trace.record(ReasonCode.STRATEGY_CAP, p, out, portfolio=True)
    return out, scale, record


def attribute_approved(approved: np.ndarray, strategy: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The approved book's gross attributed to the strategy families.

    Each name's ``|w_i|`` is split over the families in proportion to their
    ``|contribution|`` in it after ``STRATEGY_CAP``; the ``|w_i|`` of names no family holds
    (positions the trade limits kept) is split in proportion to the families' gross. The
    result sums to ``sum |w_i|`` over the families, or is 0 where no family holds
    anything.

    Parameters
    ----------
    approved : ndarray, shape (n_envs, n_assets)
    strategy : ndarray, shape (n_envs, n_strategies, n_assets)
        The families' contributions (sanitised).
    scale : ndarray, shape (n_envs, n_strategies)
        ``STRATEGY_CAP`` scale (0 where the proposal was rejected).

    Returns
    -------
    ndarray, shape (n_envs, n_strategies)
        Fractions of equity.
    """
    parts = np.abs(strategy) * scale[:, :, None]
    per_name = parts.sum(axis=1)
    family = parts.sum(axis=2)
    total = family.sum(axis=1)
    held = np.abs(approved)
    named = per_name > 0.0
    ratio = np.where(named, held / np.where(named, per_name, 1.0), 0.0)
    in_names = (parts * ratio[:, None, :]).sum(axis=2)
    rest = np.where(named, 0.0, held).sum(axis=1)
    spread_rest = np.where(total > 0.0, rest / np.where(total > 0.0, total, 1.0), 0.0)
    return in_names + family * spread_rest[:, None]
