"""Deterministic risk gates: ``RiskLimits``, ``ReasonCode``, ``RiskGateChain``, invariants."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag

import numpy as np


class ReasonCode(IntFlag):
    """Why a weight was changed or a decision coded. Values are stable: never renumber."""

    NONE = 0
    KILL_SWITCH = 1 << 0
    REDUCE_ONLY = 1 << 1
    INVALID_INPUT = 1 << 2
    NOT_TRADABLE = 1 << 3
    LONG_ONLY = 1 << 4
    SYMBOL_CAP = 1 << 5
    SYMBOL_NOTIONAL_CAP = 1 << 6
    SECTOR_CAP = 1 << 7
    STRATEGY_CAP = 1 << 8
    BETA_LIMIT = 1 << 9
    GROSS_CAP = 1 << 10
    NET_CAP = 1 << 11
    NOTIONAL_CAP = 1 << 12
    TURNOVER_CAP = 1 << 13
    PARTICIPATION_CAP = 1 << 14
    SLIPPAGE_BUDGET = 1 << 15
    FORCED_DERISK = 1 << 16
    NO_TRADE_BAND = 1 << 17
    MODEL_FALLBACK = 1 << 18
    ALLOCATOR_DISABLED = 1 << 19
    STALE_INPUT = 1 << 20


REASON_DOCS: dict[ReasonCode, str] = {
    ReasonCode.KILL_SWITCH: "Kill switch engaged: target is flat; supersedes every other rule.",
    ReasonCode.REDUCE_ONLY: "Reduce-only mode: an increase of |w| or a sign flip was refused.",
    ReasonCode.INVALID_INPUT: "Proposal or context was NaN/inf or otherwise invalid; the current (or flat) book is kept.",
    ReasonCode.NOT_TRADABLE: "Symbol is not tradable at this bar; its weight is held.",
    ReasonCode.LONG_ONLY: "Negative weight clipped to 0 under the long-only limit.",
    ReasonCode.SYMBOL_CAP: "|w_i| clipped to the per-symbol cap (pct equity x capacity multiplier).",
    ReasonCode.SYMBOL_NOTIONAL_CAP: "|w_i| x equity clipped to the per-symbol notional cap.",
    ReasonCode.SECTOR_CAP: "Sector gross scaled down to the per-sector cap.",
    ReasonCode.STRATEGY_CAP: "A strategy family's contribution scaled down to its cap.",
    ReasonCode.BETA_LIMIT: "|beta^T w| brought inside the beta tolerance.",
    ReasonCode.GROSS_CAP: "Gross exposure scaled to max_gross x regime budget multiplier.",
    ReasonCode.NET_CAP: "|sum w| brought inside the net cap.",
    ReasonCode.NOTIONAL_CAP: "Gross notional scaled to the global notional cap.",
    ReasonCode.TURNOVER_CAP: "Trade scaled to the per-decision turnover ceiling.",
    ReasonCode.PARTICIPATION_CAP: "Trade in a symbol clipped to the participation cap (fraction of ADV).",
    ReasonCode.SLIPPAGE_BUDGET: "Trade scaled so expected slippage fits the per-decision budget.",
    ReasonCode.FORCED_DERISK: "Current book was outside hard limits: a reduce-only trade back inside was allowed past trade limits.",
    ReasonCode.NO_TRADE_BAND: "Execution: drift within the no-trade band, trade suppressed.",
    ReasonCode.MODEL_FALLBACK: "Model failed (error, NaN, deadline): the defensive fallback allocation was used.",
    ReasonCode.ALLOCATOR_DISABLED: "TRADING_ALLOCATOR_ENABLED is false: the defensive baseline was used.",
    ReasonCode.STALE_INPUT: "Request timestamp older than max_staleness: request rejected, book held.",
}


@dataclass(frozen=True, eq=False)
class GateContext:
    """Everything the gates know about the decision, batched over ``n_envs`` portfolios.

    Attributes
    ----------
    current_weights : ndarray, shape (n_envs, n_assets)
        Book before the decision, signed fractions of equity.
    equity : ndarray, shape (n_envs,)
        Equity in currency (> 0).
    prices : ndarray, shape (n_envs, n_assets)
        Last prices (> 0 where tradable).
    adv_notional : ndarray, shape (n_envs, n_assets)
        Average daily traded notional in currency.
    volatility : ndarray, shape (n_envs, n_assets)
        Daily return volatility (decimal).
    spread_bps : ndarray, shape (n_envs, n_assets)
        Quoted spread in bps.
    sector_ids : ndarray of int, shape (n_assets,)
    regime : ndarray of int, shape (n_envs,)
        Codes into ``REGIME_LABELS``; -1 = unknown label (default multipliers).
    tradable : ndarray of bool, shape (n_envs, n_assets)
    betas : ndarray, shape (n_envs, n_assets), optional
        Betas to the benchmark (needed when the beta gate is on).
    kill_switch : ndarray of bool, shape (n_envs,), optional
        Per-decision kill flag, OR-ed with ``RiskLimits.kill_switch``.
    reduce_only : ndarray of bool, shape (n_envs,), optional
        Per-decision reduce-only flag, OR-ed with ``RiskLimits.reduce_only``.
    strategy_weights : ndarray, shape (n_envs, n_strategies, n_assets), optional
        Each strategy family's contribution to the proposal (budgets mode); the
        STRATEGY_CAP gate scales families whose gross contribution exceeds the cap.
    """

    current_weights: np.ndarray
    equity: np.ndarray
    prices: np.ndarray
    adv_notional: np.ndarray
    volatility: np.ndarray
    spread_bps: np.ndarray
    sector_ids: np.ndarray
    regime: np.ndarray
    tradable: np.ndarray
    betas: np.ndarray | None = None
    kill_switch: np.ndarray | None = None
    reduce_only: np.ndarray | None = None
    strategy_weights: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class GateResult:
    """Output of ``RiskGateChain.apply``.

    Attributes
    ----------
    approved : ndarray, shape (n_envs, n_assets)
        Approved weights; every hard invariant holds.
    symbol_reasons : ndarray of int64, shape (n_envs, n_assets)
        ``ReasonCode`` bitmask per symbol.
    portfolio_reasons : ndarray of int64, shape (n_envs,)
        ``ReasonCode`` bitmask per portfolio (OR of portfolio-level gates that acted).
    clipped : dict of str to ndarray, shape (n_envs,)
        L1 weight removed by each gate, keyed by the gate's ``ReasonCode`` name.
    proposed : ndarray, shape (n_envs, n_assets)
        The proposal as received (NaN/inf included), for audit.
    strategy_scale : ndarray, shape (n_envs, n_strategies), optional
        Scale applied to each strategy family by STRATEGY_CAP (budgets mode).
    """

    approved: np.ndarray
    symbol_reasons: np.ndarray
    portfolio_reasons: np.ndarray
    clipped: dict[str, np.ndarray]
    proposed: np.ndarray
    strategy_scale: np.ndarray | None = None
