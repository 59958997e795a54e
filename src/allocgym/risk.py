"""Deterministic risk gates: ``RiskLimits``, ``ReasonCode``, ``RiskGateChain``, invariants.

``RiskGateChain.apply(proposed, ctx)`` turns proposed weights ``(n_envs, n_assets)`` into
approved weights that satisfy every hard limit, in one vectorised pass (no Python loop
over portfolios or symbols). Per portfolio, in this fixed order:

1. **Validity.** A portfolio whose current book, equity (or betas, with the beta gate on)
   is not finite is approved flat (``INVALID_INPUT``): the gates never trade from a book
   they cannot read. A symbol whose price, ADV, volatility or spread is non-finite or
   negative (price <= 0) is treated as not tradable. A proposal (or strategy
   contribution) with any non-finite entry is replaced by the current book
   (``INVALID_INPUT``); NaN/inf never pass through.
2. **Kill switch** (config flag OR per-portfolio flag): flat, every symbol ``KILL_SWITCH``;
   supersedes everything else.
3. **Forced de-risk.** The hard-limit gates are applied to the *current* book. If they
   change it (a market move or a tighter regime multiplier left it outside the limits),
   the reduce-only move back inside is exempt from the trade limits and coded
   ``FORCED_DERISK``; the rest of the decision trades from the de-risked book.
4. **Proposal gates:** ``STRATEGY_CAP`` (scales strategy contributions), ``NOT_TRADABLE``
   (hold), then the hard-limit gates ``LONG_ONLY``, ``SYMBOL_CAP``, ``SYMBOL_NOTIONAL_CAP``
   (both x capacity multiplier), ``SECTOR_CAP``, ``NET_CAP`` (scales the dominant side),
   ``BETA_LIMIT`` (scales the side carrying the excess beta), ``GROSS_CAP`` (x budget
   multiplier) and ``NOTIONAL_CAP``. Every later gate only shrinks weights toward zero in
   a way that keeps the earlier limits, so the target is inside all of them.
5. ``REDUCE_ONLY``: no ``|w_i|`` increase, no sign flip (net/beta re-checked after).
6. **Trade limits** on the trade from the (de-risked) current book: ``PARTICIPATION_CAP``
   (per-symbol clip to ``max_participation x ADV x capacity multiplier``), then
   ``TURNOVER_CAP`` and ``SLIPPAGE_BUDGET`` (common trade scale; the slippage scale solves
   the concave cost curve of :func:`allocgym.costs.expected_cost` by bisection).
7. **Re-feasibility.** Clipping single symbols moves the book off the segment between two
   feasible books, so sector/net/beta/gross/notional are re-checked and, where broken,
   repaired by the better (closer to the target) of: scaling the whole trade, or keeping
   the clipped trades and scaling the others. Both scales are found in closed form (net,
   beta) or by bisection (sector, gross, notional): the limits are convex and the
   starting book is feasible. The binding limit's code is recorded.
8. **Held names.** A non-tradable weight is never moved (execution could not move it):
   where a gate moved one, it is put back (``NOT_TRADABLE``) and the portfolio limits are
   met by the tradable names alone (``_pin_untradable``). When the held names alone break
   a limit, the portfolio is coded ``NOT_TRADABLE`` and its tradable names are closed. Kill
   switch and unreadable books are still approved flat.

Limits are compared with a relative float tolerance of 1e-12 (a value within it counts as
at the limit), so the chain is idempotent: its own output, fed back with the current book
equal to it, is approved unchanged. ``check_invariants`` is an independent checker.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import IntFlag
from typing import Any

import numpy as np
from pydantic import ValidationError

from allocgym.config import RiskConfig
from allocgym.costs import CostModel, _cost_terms, expected_cost
from allocgym.data import NO_SECTOR
from allocgym.errors import GateConfigError, InvariantBreach, RequestError
from allocgym.regime import REGIME_LABELS, regime_code


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
    LOT_ROUNDING = 1 << 21


REASON_DOCS: dict[ReasonCode, str] = {
    ReasonCode.KILL_SWITCH: "Kill switch engaged: target is flat; supersedes every other rule.",
    ReasonCode.REDUCE_ONLY: "Reduce-only mode: an increase of |w| or a sign flip was refused.",
    ReasonCode.INVALID_INPUT: "Proposal or context was NaN/inf or otherwise invalid; the current (or flat) book is kept.",
    ReasonCode.NOT_TRADABLE: "Symbol is not tradable at this bar; its weight is held. On a portfolio: the held names alone break a hard limit that no trade can fix.",
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
    ReasonCode.LOT_ROUNDING: "Execution: the order was rounded to whole lots (or scaled so the rounded book stays inside the limits); the held weight differs from the approved one.",
}


@dataclass(frozen=True, eq=False)
class GateContext:
    """Everything the gates know about the decision, batched over ``n_envs`` portfolios.

    Attributes
    ----------
    current_weights : ndarray, shape (n_envs, n_assets)
        Book before the decision, signed fractions of equity.
    equity : ndarray, shape (n_envs,)
        Equity in currency (> 0; a non-finite or non-positive equity, like a non-finite
        current book, makes the portfolio unreadable: approved flat, ``INVALID_INPUT``).
    prices : ndarray, shape (n_envs, n_assets)
        Last prices (> 0 where tradable).
    adv_notional : ndarray, shape (n_envs, n_assets)
        Average daily traded notional in currency.
    volatility : ndarray, shape (n_envs, n_assets)
        Daily return volatility (decimal).
    spread_bps : ndarray, shape (n_envs, n_assets)
        Quoted spread in bps.
    sector_ids : ndarray of int, shape (n_assets,)
        Sector of each name, ``0..n_sectors-1``; ``NO_SECTOR`` (-1) = the data has no
        sector for the name, and the sector cap does not apply to it.
    regime : ndarray of int, shape (n_envs,)
        Codes into ``REGIME_LABELS``; -1 = unknown label (default multipliers).
    tradable : ndarray of bool, shape (n_envs, n_assets)
        A symbol whose price (<= 0 or non-finite), ADV, volatility or spread (negative or
        non-finite) is unusable is treated as not tradable as well.
    betas : ndarray, shape (n_envs, n_assets), optional
        Betas to the benchmark (needed when the beta gate is on; a non-finite beta or
        one above 1e6 in magnitude makes the portfolio unreadable: approved flat).
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
        L1 weight removed by each gate, keyed by the gate's ``ReasonCode`` name (one
        entry per code in ``GATE_CODES``, zeros where the gate did not act). Entries
        beyond +-1e150 count as 1e150 and NaN as 0; ``FORCED_DERISK`` holds the L1 of the
        move that brought the current book back inside the hard limits.
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


# Which layer sets each code, and at which level (for the generated table).
_GATE_SYMBOL = "risk gate, per symbol"
_GATE_PORTFOLIO = "risk gate, portfolio (and the symbols it changed)"
_REASON_SOURCE: dict[ReasonCode, str] = {
    ReasonCode.KILL_SWITCH: _GATE_PORTFOLIO,
    ReasonCode.REDUCE_ONLY: _GATE_SYMBOL,
    ReasonCode.INVALID_INPUT: _GATE_PORTFOLIO,
    ReasonCode.NOT_TRADABLE: _GATE_SYMBOL,
    ReasonCode.LONG_ONLY: _GATE_SYMBOL,
    ReasonCode.SYMBOL_CAP: _GATE_SYMBOL,
    ReasonCode.SYMBOL_NOTIONAL_CAP: _GATE_SYMBOL,
    ReasonCode.SECTOR_CAP: _GATE_PORTFOLIO,
    ReasonCode.STRATEGY_CAP: _GATE_PORTFOLIO,
    ReasonCode.BETA_LIMIT: _GATE_PORTFOLIO,
    ReasonCode.GROSS_CAP: _GATE_PORTFOLIO,
    ReasonCode.NET_CAP: _GATE_PORTFOLIO,
    ReasonCode.NOTIONAL_CAP: _GATE_PORTFOLIO,
    ReasonCode.TURNOVER_CAP: _GATE_PORTFOLIO,
    ReasonCode.PARTICIPATION_CAP: _GATE_SYMBOL,
    ReasonCode.SLIPPAGE_BUDGET: _GATE_PORTFOLIO,
    ReasonCode.FORCED_DERISK: _GATE_PORTFOLIO,
    ReasonCode.NO_TRADE_BAND: "execution policy, per symbol",
    ReasonCode.MODEL_FALLBACK: "serving, portfolio",
    ReasonCode.ALLOCATOR_DISABLED: "serving, portfolio",
    ReasonCode.STALE_INPUT: "serving, portfolio",
    ReasonCode.LOT_ROUNDING: "execution policy, per symbol",
}

#: Codes the risk gates themselves emit; ``GateResult.clipped`` has one entry per code.
GATE_CODES: tuple[ReasonCode, ...] = (
    ReasonCode.INVALID_INPUT,
    ReasonCode.KILL_SWITCH,
    ReasonCode.STRATEGY_CAP,
    ReasonCode.NOT_TRADABLE,
    ReasonCode.LONG_ONLY,
    ReasonCode.SYMBOL_CAP,
    ReasonCode.SYMBOL_NOTIONAL_CAP,
    ReasonCode.SECTOR_CAP,
    ReasonCode.NET_CAP,
    ReasonCode.BETA_LIMIT,
    ReasonCode.GROSS_CAP,
    ReasonCode.NOTIONAL_CAP,
    ReasonCode.REDUCE_ONLY,
    ReasonCode.PARTICIPATION_CAP,
    ReasonCode.TURNOVER_CAP,
    ReasonCode.SLIPPAGE_BUDGET,
    ReasonCode.FORCED_DERISK,
)


_GATE_NAMES: tuple[str, ...] = tuple(str(c.name) for c in GATE_CODES)


def _single_bit_codes() -> list[ReasonCode]:
    return sorted(
        (c for c in ReasonCode.__members__.values() if c.value and not c.value & (c.value - 1)),
        key=int,
    )


def reason_code_table() -> str:
    """Markdown document listing every ``ReasonCode`` (generated; ``docs/reason_codes.md``).

    Returns
    -------
    str
        Title, a note on how the file is generated, and one table row per code: bit,
        integer value, name, the layer that sets it and its documented meaning.
    """
    lines = [
        "# Reason codes",
        "",
        "<!-- Generated from allocgym.risk.ReasonCode and REASON_DOCS by",
        "     `allocgym risk codes --write docs/reason_codes.md`. Do not edit by hand:",
        "     tests/test_risk.py fails when this file is stale. -->",
        "",
        "Every change the risk gates, the execution policy or the serving layer make to a",
        "decision is recorded as bits of an int64 bitmask: per symbol",
        "(`GateResult.symbol_reasons`, shape `(n_envs, n_assets)`) and per portfolio",
        "(`GateResult.portfolio_reasons`, shape `(n_envs,)`). Several bits can be set at",
        "once. Values are stable and never renumbered; there is no `unknown` code.",
        "",
        "| bit | value | code | set by | meaning |",
        "|---:|---:|---|---|---|",
    ]
    for code in _single_bit_codes():
        doc = REASON_DOCS[code].replace("|", "\\|")
        lines.append(
            f"| {code.value.bit_length() - 1} | {code.value} | `{code.name}` | "
            f"{_REASON_SOURCE[code]} | {doc} |"
        )
    return "\n".join(lines) + "\n"


def decode_reasons(mask: int) -> tuple[str, ...]:
    """Names of the codes set in one bitmask value, lowest bit first (``()`` for 0)."""
    value = int(mask)
    return tuple(c.name for c in _single_bit_codes() if value & c.value and c.name)


# ----------------------------------------------------------------------------- limits

_N_LABELS = len(REGIME_LABELS)
_POSITIVE = (
    "max_symbol_weight",
    "max_gross",
    "max_sector_gross",
    "max_strategy_contribution",
    "max_turnover",
    "max_participation",
    "slippage_budget_bps",
)
_NON_NEGATIVE = (
    "max_net",
    "default_budget_multiplier",
    "default_capacity_multiplier",
    "min_multiplier",
    "max_multiplier",
)
_OPTIONAL_POSITIVE = ("max_symbol_notional", "max_gross_notional")
_FLAGS = ("long_only", "kill_switch", "reduce_only")
_MAPS = ("regime_budget_multipliers", "regime_capacity_multipliers")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(
        value, bool | np.bool_
    )


def _clamp(value: float, lo: float, hi: float) -> float:
    return float(min(max(value, lo), hi))


@dataclass(frozen=True)
class RiskLimits:
    """Hard limits and trade limits enforced by ``RiskGateChain`` (weights: fractions of equity).

    Field names and defaults mirror ``allocgym.config.RiskConfig``; build one with
    :meth:`from_config`. The regime maps are stored as tuples over ``REGIME_LABELS``
    (labels missing from the config map get the default multiplier), and every regime
    multiplier, the defaults included, is clamped to ``[min_multiplier, max_multiplier]``
    at construction (seed 001's ``TRADING_ALLOCATOR_*`` semantics). A regime code outside
    ``REGIME_LABELS`` (``UNKNOWN_REGIME`` = -1) gets the default multiplier.

    Parameters
    ----------
    max_symbol_weight : float
        Cap on ``|w_i|`` (x capacity multiplier).
    max_symbol_notional : float or None
        Cap on ``|w_i| x equity`` in currency (x capacity multiplier); ``None`` = off.
    max_gross : float
        Cap on ``sum |w_i|`` (x budget multiplier).
    max_net : float
        Cap on ``|sum w_i|``.
    max_gross_notional : float or None
        Cap on ``sum |w_i| x equity`` in currency; ``None`` = off.
    max_sector_gross : float
        Cap on each sector's ``sum |w_i|``.
    beta_tolerance : float or None
        Cap on ``|beta^T w|``; ``None`` = off.
    long_only : bool
        Refuse negative weights.
    max_strategy_contribution : float
        Cap on each strategy family's gross contribution (``ctx.strategy_weights``).
    max_turnover : float
        Cap on ``sum |w_new - w_cur|`` per decision.
    max_participation : float
        Cap on ``|Δw_i| x equity / ADV_i`` per decision (x capacity multiplier).
    slippage_budget_bps : float
        Cap on the decision's expected cost, in bps of equity.
    default_regime : str
        Label a caller uses when it has no regime context (see :meth:`regime_codes`).
    regime_budget_multipliers, regime_capacity_multipliers : tuple of float
        One multiplier per ``REGIME_LABELS`` entry (clamped).
    default_budget_multiplier, default_capacity_multiplier : float
        Multipliers for unknown regime codes (clamped).
    min_multiplier, max_multiplier : float
        Clamp of every regime multiplier.
    kill_switch, reduce_only : bool
        Global flags, OR-ed with the per-portfolio flags of ``GateContext``.
    """

    max_symbol_weight: float = 0.10
    max_symbol_notional: float | None = None
    max_gross: float = 1.0
    max_net: float = 1.0
    max_gross_notional: float | None = None
    max_sector_gross: float = 0.30
    beta_tolerance: float | None = None
    long_only: bool = True
    max_strategy_contribution: float = 0.60
    max_turnover: float = 0.50
    max_participation: float = 0.10
    slippage_budget_bps: float = 25.0
    default_regime: str = "neutral"
    regime_budget_multipliers: tuple[float, ...] = (1.0, 1.0, 0.6, 0.8)
    regime_capacity_multipliers: tuple[float, ...] = (1.0, 1.0, 0.5, 1.0)
    default_budget_multiplier: float = 1.0
    default_capacity_multiplier: float = 1.0
    min_multiplier: float = 0.0
    max_multiplier: float = 2.0
    kill_switch: bool = False
    reduce_only: bool = False

    def __post_init__(self) -> None:
        def bad(name: str, value: object, rule: str) -> GateConfigError:
            return GateConfigError(
                f"RiskLimits.{name} = {value!r}: {rule}; fix risk.{name} in the config "
                "(or its TRADING_ALLOCATOR_* variable)"
            )

        def finite(name: str, value: object, *, positive: bool) -> float:
            if not _is_number(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
                raise bad(name, value, "must be a finite number")
            v = float(value)  # type: ignore[arg-type]
            if (positive and v <= 0) or v < 0:
                raise bad(name, value, "must be > 0" if positive else "must be >= 0")
            return v

        for name in _POSITIVE:
            object.__setattr__(self, name, finite(name, getattr(self, name), positive=True))
        for name in _NON_NEGATIVE:
            object.__setattr__(self, name, finite(name, getattr(self, name), positive=False))
        for name in _OPTIONAL_POSITIVE:
            if getattr(self, name) is not None:
                object.__setattr__(self, name, finite(name, getattr(self, name), positive=True))
        if self.beta_tolerance is not None:
            object.__setattr__(
                self,
                "beta_tolerance",
                finite("beta_tolerance", self.beta_tolerance, positive=False),
            )
        for name in _FLAGS:
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise bad(name, getattr(self, name), "must be true or false")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if not isinstance(self.default_regime, str):
            raise bad("default_regime", self.default_regime, "must be a regime label string")
        lo, hi = self.min_multiplier, self.max_multiplier
        if lo > hi:
            raise GateConfigError(
                f"RiskLimits.min_multiplier = {lo} > max_multiplier = {hi}: the clamp is empty; "
                "set risk.min_multiplier <= risk.max_multiplier"
            )
        for name in _MAPS:
            values = tuple(getattr(self, name))
            if len(values) != _N_LABELS:
                raise bad(name, values, f"needs one multiplier per regime label {REGIME_LABELS}")
            checked = [finite(f"{name}[{i}]", v, positive=False) for i, v in enumerate(values)]
            object.__setattr__(self, name, tuple(_clamp(v, lo, hi) for v in checked))
        for name in ("default_budget_multiplier", "default_capacity_multiplier"):
            object.__setattr__(self, name, _clamp(getattr(self, name), lo, hi))

    @classmethod
    def from_config(cls, cfg: RiskConfig) -> RiskLimits:
        """Build limits from the ``risk`` config section (maps turned into label tuples).

        Raises
        ------
        GateConfigError
            When a regime map names a label outside ``REGIME_LABELS`` (it could never
            apply: regimes travel as codes into ``REGIME_LABELS``).
        """
        for name in _MAPS:
            unknown = sorted(set(getattr(cfg, name)) - set(REGIME_LABELS))
            if unknown:
                raise GateConfigError(
                    f"risk.{name} has label(s) {unknown} that are not regime labels: use "
                    f"{list(REGIME_LABELS)}; any other label gets "
                    f"risk.default_{name.split('_')[1]}_multiplier"
                )
        budget = tuple(
            float(cfg.regime_budget_multipliers.get(label, cfg.default_budget_multiplier))
            for label in REGIME_LABELS
        )
        capacity = tuple(
            float(cfg.regime_capacity_multipliers.get(label, cfg.default_capacity_multiplier))
            for label in REGIME_LABELS
        )
        return cls(
            max_symbol_weight=cfg.max_symbol_weight,
            max_symbol_notional=cfg.max_symbol_notional,
            max_gross=cfg.max_gross,
            max_net=cfg.max_net,
            max_gross_notional=cfg.max_gross_notional,
            max_sector_gross=cfg.max_sector_gross,
            beta_tolerance=cfg.beta_tolerance,
            long_only=cfg.long_only,
            max_strategy_contribution=cfg.max_strategy_contribution,
            max_turnover=cfg.max_turnover,
            max_participation=cfg.max_participation,
            slippage_budget_bps=cfg.slippage_budget_bps,
            default_regime=cfg.default_regime,
            regime_budget_multipliers=budget,
            regime_capacity_multipliers=capacity,
            default_budget_multiplier=cfg.default_budget_multiplier,
            default_capacity_multiplier=cfg.default_capacity_multiplier,
            min_multiplier=cfg.min_multiplier,
            max_multiplier=cfg.max_multiplier,
            kill_switch=cfg.kill_switch,
            reduce_only=cfg.reduce_only,
        )

    @staticmethod
    def _lookup(per_label: tuple[float, ...], default: float, regime: np.ndarray) -> np.ndarray:
        codes = np.asarray(regime)
        if codes.dtype.kind not in "iu":
            raise RequestError(
                f"regime codes have dtype {codes.dtype}; pass integer codes into REGIME_LABELS "
                "(allocgym.regime.regime_code), -1 for an unknown label"
            )
        codes = codes.astype(np.int64)
        table = np.array((*per_label, default), dtype=np.float64)
        return table[np.where((codes >= 0) & (codes < _N_LABELS), codes, _N_LABELS)]

    def budget_multiplier(self, regime: np.ndarray) -> np.ndarray:
        """Clamped gross-budget multiplier per portfolio.

        Parameters
        ----------
        regime : ndarray of int, shape (n_envs,)
            Codes into ``REGIME_LABELS``; any other value uses the default multiplier.

        Returns
        -------
        ndarray, shape (n_envs,)
        """
        return self._lookup(self.regime_budget_multipliers, self.default_budget_multiplier, regime)

    def capacity_multiplier(self, regime: np.ndarray) -> np.ndarray:
        """Clamped symbol-capacity multiplier per portfolio (symbol caps, participation).

        Parameters
        ----------
        regime : ndarray of int, shape (n_envs,)

        Returns
        -------
        ndarray, shape (n_envs,)
        """
        return self._lookup(
            self.regime_capacity_multipliers, self.default_capacity_multiplier, regime
        )

    @property
    def default_regime_code(self) -> int:
        """Code of ``default_regime`` (``UNKNOWN_REGIME`` when it is not a known label)."""
        return regime_code(self.default_regime)

    def regime_codes(self, regime: np.ndarray | None, n_envs: int) -> np.ndarray:
        """Regime codes to gate with: ``regime`` as given, or ``default_regime`` when ``None``.

        Returns
        -------
        ndarray of int64, shape (n_envs,)
        """
        if regime is None:
            return np.full(n_envs, self.default_regime_code, dtype=np.int64)
        return np.broadcast_to(np.asarray(regime, dtype=np.int64), (n_envs,)).copy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the effective limits (maps as ``label -> clamped multiplier``)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _MAPS:
            out[name] = dict(zip(REGIME_LABELS, getattr(self, name), strict=True))
        return out


# ----------------------------------------------------------------------------- env loader

ENV_ENABLED = "TRADING_ALLOCATOR_ENABLED"
_ENV_PREFIX = "TRADING_ALLOCATOR_"
_ENV_FIELDS: dict[str, str] = {
    "TRADING_ALLOCATOR_DEFAULT_REGIME": "default_regime",
    "TRADING_ALLOCATOR_REGIME_BUDGET_MULTIPLIERS": "regime_budget_multipliers",
    "TRADING_ALLOCATOR_REGIME_CAPACITY_MULTIPLIERS": "regime_capacity_multipliers",
    "TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY": "max_symbol_weight",
    "TRADING_ALLOCATOR_MAX_SYMBOL_NOTIONAL": "max_symbol_notional",
    "TRADING_ALLOCATOR_DEFAULT_BUDGET_MULTIPLIER": "default_budget_multiplier",
    "TRADING_ALLOCATOR_DEFAULT_CAPACITY_MULTIPLIER": "default_capacity_multiplier",
    "TRADING_ALLOCATOR_MIN_MULTIPLIER": "min_multiplier",
    "TRADING_ALLOCATOR_MAX_MULTIPLIER": "max_multiplier",
}
#: Every ``TRADING_ALLOCATOR_*`` variable this package reads.
ENV_VARS: tuple[str, ...] = (ENV_ENABLED, *_ENV_FIELDS)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def allocator_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Parse ``TRADING_ALLOCATOR_ENABLED`` (default ``false``) for the serving layer.

    Accepts ``1/true/yes/on`` and ``0/false/no/off`` (any case); unset or empty = false.

    Raises
    ------
    GateConfigError
        For any other value.
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_ENABLED, "").strip().lower()
    if raw == "" or raw in _FALSE:
        return False
    if raw in _TRUE:
        return True
    raise GateConfigError(
        f"{ENV_ENABLED}={env.get(ENV_ENABLED)!r} is not a boolean: set it to true or false"
    )


def _env_number(var: str, raw: str, *, positive: bool) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        rule = "a finite number > 0" if positive else "a finite number >= 0"
        raise GateConfigError(f"{var}={raw!r} is not {rule}: fix or unset the variable")
    return value


def _env_map(var: str, raw: str) -> dict[str, float]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise GateConfigError(
            f"{var}={raw!r} is not valid JSON ({err.msg}): use a JSON object such as "
            '{"high_volatility": 0.5}'
        ) from None
    if not isinstance(data, dict):
        raise GateConfigError(
            f'{var}={raw!r} must be a JSON object label -> multiplier, e.g. {{"trend": 1.2}}'
        )
    out: dict[str, float] = {}
    for label, value in data.items():
        if label not in REGIME_LABELS:
            raise GateConfigError(
                f"{var} has label {label!r}, not a regime label: use one of "
                f"{list(REGIME_LABELS)}; other labels get the DEFAULT_*_MULTIPLIER"
            )
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            raise GateConfigError(f"{var}[{label!r}] = {value!r}: must be a finite number >= 0")
        out[label] = float(value)
    return out


def limits_from_env(cfg: RiskConfig, environ: Mapping[str, str] | None = None) -> RiskConfig:
    """Override ``cfg`` with seed 001's ``TRADING_ALLOCATOR_*`` runtime flags.

    - ``TRADING_ALLOCATOR_DEFAULT_REGIME`` -> ``default_regime`` (a label)
    - ``TRADING_ALLOCATOR_REGIME_BUDGET_MULTIPLIERS`` -> ``regime_budget_multipliers`` (JSON
      object ``label -> multiplier``)
    - ``TRADING_ALLOCATOR_REGIME_CAPACITY_MULTIPLIERS`` -> ``regime_capacity_multipliers``
      (JSON object)
    - ``TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY`` -> ``max_symbol_weight`` (a fraction of
      equity in (0, 1], as in seed 001's deployments: ``0.10`` = 10 %; a value above 1,
      such as ``10`` meant as 10 %, is rejected)
    - ``TRADING_ALLOCATOR_MAX_SYMBOL_NOTIONAL`` -> ``max_symbol_notional`` (currency, > 0;
      ``none`` disables it)
    - ``TRADING_ALLOCATOR_DEFAULT_BUDGET_MULTIPLIER`` -> ``default_budget_multiplier``
    - ``TRADING_ALLOCATOR_DEFAULT_CAPACITY_MULTIPLIER`` -> ``default_capacity_multiplier``
    - ``TRADING_ALLOCATOR_MIN_MULTIPLIER`` / ``_MAX_MULTIPLIER`` -> ``min_multiplier`` /
      ``max_multiplier`` (the clamp of every regime multiplier)

    A JSON map replaces the config map (labels must be ``REGIME_LABELS``). Unset or empty
    variables leave the config value. ``TRADING_ALLOCATOR_ENABLED`` is read by
    :func:`allocator_enabled`. Other ``TRADING_ALLOCATOR_*`` names are ignored with a
    warning (they are usually typos).

    Parameters
    ----------
    cfg : RiskConfig
        The configured limits.
    environ : mapping of str to str, optional
        Environment to read; ``os.environ`` when omitted.

    Returns
    -------
    RiskConfig
        A validated copy with the overrides applied.

    Raises
    ------
    GateConfigError
        Naming the variable, the bad value and the fix.
    """
    env = os.environ if environ is None else environ
    updates: dict[str, Any] = {}
    used: list[str] = []
    for var, name in _ENV_FIELDS.items():
        raw = env.get(var)
        if raw is None or not raw.strip():
            continue
        raw = raw.strip()
        used.append(var)
        if name == "default_regime":
            updates[name] = raw
        elif name in _MAPS:
            updates[name] = _env_map(var, raw)
        elif name == "max_symbol_notional" and raw.lower() in ("none", "null", "off"):
            updates[name] = None
        else:
            positive = name in ("max_symbol_weight", "max_symbol_notional")
            value = _env_number(var, raw, positive=positive)
            if name == "max_symbol_weight" and value > 1.0:
                # A percentage typed as a number (10 for 10 %) would be a 1000 % cap.
                raise GateConfigError(
                    f"{var}={raw!r} is above 1: it is a fraction of equity, not a "
                    "percentage (10% is 0.10); fix or unset the variable"
                )
            updates[name] = value
    unknown = sorted(k for k in env if k.startswith(_ENV_PREFIX) and k not in ENV_VARS)
    if unknown:
        warnings.warn(
            f"ignoring unknown environment variable(s) {unknown}; allocgym reads {list(ENV_VARS)}",
            stacklevel=2,
        )
    if not updates:
        return cfg
    data = cfg.model_dump()
    data.update(updates)
    try:
        return RiskConfig.model_validate(data)
    except ValidationError as err:
        msgs = "; ".join(e["msg"] for e in err.errors())
        raise GateConfigError(
            f"TRADING_ALLOCATOR_* overrides {used} give invalid risk limits ({msgs}): "
            "fix the variables (e.g. MIN_MULTIPLIER <= MAX_MULTIPLIER)"
        ) from None


# ----------------------------------------------------------------------------- gate chain

_RTOL = 1e-12  # relative float tolerance of every limit comparison inside the chain
_ATOL = 1e-300  # absolute floor of that tolerance: scaling into subnormals rounds arbitrarily
_BIG = 1e150  # proposal/book entries are clipped to +-_BIG before any sum (no overflow)
_MAX_ABS_BETA = 1e6  # larger betas are treated as corrupt input
_BISECT_ITERS = 53  # 2**-53 = half an ulp of 1.0: bisections run to float resolution
_GRID = 2.0**-_BISECT_ITERS  # spacing of the points a [0, 1] bisection can end on
# Masks larger than this are OR-ed in by a multiply (ufunc ``where=`` is slow on them).
_WIDE = 256
# From this many rows on, row gates compute only the rows they change (else all rows).
_SUBSET_MIN_ROWS = 64

_GATE_ROW: dict[ReasonCode, int] = {code: i for i, code in enumerate(GATE_CODES)}


def _inside(value: np.ndarray, limit: Any, mag: Any) -> np.ndarray:
    """True where ``value`` is at most ``limit`` within the tolerance (NaN is outside).

    ``mag`` is the sum of the absolute terms ``value`` was computed from, so the tolerance
    covers the rounding of signed sums (net, beta) as well as of gross-type sums.
    Evaluated in place (one temporary): ``limit + _RTOL * (limit + mag) + _ATOL``.
    """
    tol = np.add(limit, mag)
    tol *= _RTOL
    tol += limit
    tol += _ATOL
    return value <= tol


def _over(value: np.ndarray, limit: Any, mag: Any) -> np.ndarray:
    """True where ``value`` exceeds ``limit`` beyond the tolerance (NaN counts as over)."""
    return ~_inside(value, limit, mag)


def _below(value: np.ndarray, limit: Any) -> bool:
    """``value <= limit`` everywhere: then every tolerance test of ``value`` passes.

    The tolerance only adds to a nonnegative limit (rounding is monotone), so this plain
    comparison is an exact shortcut for the common case where nothing is near a limit.
    """
    return bool((value <= limit).all())


_ONES_U8: dict[int, np.ndarray] = {}


def _row_counts(mask: np.ndarray) -> np.ndarray:
    """Number of True per row of a bool (n, k) array, k < 256, as uint8 (an integer
    matrix-vector product: exact, and several times faster than a row reduction)."""
    k = mask.shape[1]
    ones = _ONES_U8.get(k)
    if ones is None:
        ones = np.ones(k, dtype=np.uint8)
        ones.flags.writeable = False
        _ONES_U8[k] = ones
    return mask.view(np.uint8) @ ones


def _rows_any(mask: np.ndarray) -> np.ndarray:
    """``mask.any(axis=1)`` for a bool (n, k) array (counted when many short rows)."""
    if mask.shape[1] <= 64 and mask.shape[0] >= 128:
        return _row_counts(mask) != 0
    return mask.any(axis=1)


def _rows_all(mask: np.ndarray) -> np.ndarray:
    """``mask.all(axis=1)`` for a bool (n, k) array (counted when many short rows)."""
    if mask.shape[1] <= 64 and mask.shape[0] >= 128:
        return _row_counts(mask) == mask.shape[1]
    return mask.all(axis=1)


def _or_bits(target: np.ndarray, bit: int, mask: np.ndarray) -> None:
    """``target |= bit`` where ``mask``, in place."""
    if mask.size > _WIDE:
        target |= np.multiply(mask, bit, dtype=np.int64)
    else:
        np.bitwise_or(target, bit, out=target, where=mask)


class _Trace:
    """Reason bits and L1 clipped per gate, accumulated while the chain runs.

    ``clip`` holds one row per code of ``GATE_CODES`` (``clipped`` views them by name);
    ``touched`` is False until some gate changes some weight.
    """

    __slots__ = ("clip", "port", "sym", "touched")

    def __init__(self, n_envs: int, n_assets: int) -> None:
        self.sym = np.zeros((n_envs, n_assets), dtype=np.int64)
        self.port = np.zeros(n_envs, dtype=np.int64)
        self.clip = np.zeros((len(GATE_CODES), n_envs))
        self.touched = False

    @property
    def clipped(self) -> dict[str, np.ndarray]:
        return dict(zip(_GATE_NAMES, self.clip, strict=True))

    def rows(self, sel: slice) -> _Trace:
        """The trace of a block of rows (views)."""
        out = _Trace.__new__(_Trace)
        out.sym, out.port, out.clip = self.sym[sel], self.port[sel], self.clip[:, sel]
        out.touched = self.touched
        return out

    def merge(self, other: _Trace) -> None:
        """OR in the bits and add the clipped amounts of ``other`` (same rows)."""
        self.sym |= other.sym
        self.port |= other.port
        self.clip += other.clip
        self.touched |= other.touched

    def record(
        self,
        code: ReasonCode,
        before: np.ndarray,
        after: np.ndarray,
        *,
        portfolio: bool,
        rows: np.ndarray | None = None,
        changed: np.ndarray | None = None,
    ) -> None:
        """Code the symbols ``before != after``; ``rows``: the arrays are those rows only.

        ``changed``: that mask when the caller knows it (and something changed).
        """
        if changed is None:
            changed = before != after
            if not changed.any():
                return
        self.touched = True
        bit = int(code)
        diff = before - after
        removed = np.abs(diff, out=diff).sum(axis=1)
        i = _GATE_ROW[code]
        if rows is None:
            _or_bits(self.sym, bit, changed)
            if portfolio:
                _or_bits(self.port, bit, _rows_any(changed))
            self.clip[i] += removed
            return
        block = self.sym[rows]
        _or_bits(block, bit, changed)
        self.sym[rows] = block
        if portfolio:
            self.port[rows[_rows_any(changed)]] |= bit
        self.clip[i, rows] += removed


def _replace_rows(w: np.ndarray, rows: np.ndarray, block: np.ndarray) -> np.ndarray:
    out = w.copy()
    out[rows] = block
    return out


class _SectorMap:
    """Validated sector ids of a universe and their bincount bins per batch size (both
    static across decisions, so cached per membership).

    Names with the id ``NO_SECTOR`` (-1: the data has no sector for them) are summed into
    one extra bin that no limit reads, so the sector cap does not apply to them.
    """

    __slots__ = ("_bins", "_slot", "exempt", "ids", "n", "width")

    def __init__(self, ids: np.ndarray, n: int) -> None:
        self.ids = ids  # (n_assets,) int64, read-only; NO_SECTOR for names without one
        self.n = n
        self.exempt = bool(ids.size and ids.min() < 0)
        self.width = n + 1 if self.exempt else n  # bins per row (the last: no sector)
        self._slot = np.where(ids < 0, n, ids) if self.exempt else ids
        self._bins: dict[int, np.ndarray] = {}

    def bins(self, n_rows: int) -> np.ndarray:
        """Flat bins of an (n_rows, n_assets) array: ``row * width + sector``
        (cached for a few batch sizes)."""
        idx = self._bins.get(n_rows)
        if idx is None:
            idx = (np.arange(n_rows)[:, None] * self.width + self._slot[None, :]).ravel()
            idx.flags.writeable = False
            if len(self._bins) >= _BINS_CACHED:
                self._bins.clear()
            self._bins[n_rows] = idx
        return idx

    def gross(self, aw: np.ndarray) -> np.ndarray:
        """Per-sector sums of ``aw = |w|``, (n, n_sectors); bincount sums in a fixed order
        (no BLAS), so a row's bits do not depend on the batch it is in. Names without a
        sector are in no column."""
        n = aw.shape[0]
        sums = np.bincount(self.bins(n), weights=aw.ravel(), minlength=n * self.width)
        sums = sums.reshape(n, self.width)
        return sums[:, : self.n] if self.exempt else sums

    def spread(self, values: np.ndarray, fill: float = 1.0) -> np.ndarray:
        """Per-sector ``values`` (n, n_sectors) spread to their names (n, n_assets); names
        without a sector get ``fill``."""
        if not self.exempt:
            return values[:, self.ids]
        padded = np.concatenate([values, np.full((values.shape[0], 1), fill)], axis=1)
        return padded[:, self._slot]


_SECTOR_MAPS: dict[bytes, _SectorMap] = {}
_BINS_CACHED = 8  # batch sizes whose bins a sector map keeps


def _sector_map(sector_ids: Any, n_assets: int) -> _SectorMap:
    ids = np.asarray(sector_ids)
    if ids.shape != (n_assets,) or ids.dtype.kind not in "iu":
        raise RequestError(
            f"GateContext.sector_ids has shape {ids.shape} dtype {ids.dtype}; "
            f"expected ({n_assets},) integers"
        )
    key = ids.dtype.str.encode() + ids.tobytes()
    hit = _SECTOR_MAPS.get(key)
    if hit is None:
        if n_assets and ids.min() < NO_SECTOR:
            raise RequestError(
                f"GateContext.sector_ids has ids below {NO_SECTOR}: use 0..n_sectors-1, or "
                f"{NO_SECTOR} (NO_SECTOR) for a name without a sector"
            )
        own = ids.astype(np.int64)
        own.flags.writeable = False
        hit = _SectorMap(own, max(int(own.max()) + 1, 0) if own.size else 1)
        if len(_SECTOR_MAPS) >= 64:
            _SECTOR_MAPS.clear()
        _SECTOR_MAPS[key] = hit
    return hit


@dataclass(eq=False, slots=True)  # not frozen: a frozen __init__ is slow, and it is private
class _Limits:
    """Per-decision limits in weight units (multipliers and equity already applied)."""

    cap_pct: np.ndarray  # (n, 1)
    cap_notional: np.ndarray | None  # (n, 1)
    sector_cap: float
    sectors: _SectorMap
    net_cap: float
    betas: np.ndarray | None  # (n, N)
    beta_tol: float
    gross_cap: np.ndarray  # (n,)
    notional_cap: np.ndarray | None  # (n,)

    def take(self, rows: np.ndarray | slice) -> _Limits:
        """These limits for rows ``rows`` (an index array, or a slice: views)."""

        def part(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return _Limits(
            cap_pct=self.cap_pct[rows],
            cap_notional=part(self.cap_notional),
            sector_cap=self.sector_cap,
            sectors=self.sectors,
            net_cap=self.net_cap,
            betas=part(self.betas),
            beta_tol=self.beta_tol,
            gross_cap=self.gross_cap[rows],
            notional_cap=part(self.notional_cap),
        )


def _signed_excess(
    terms: np.ndarray, cap: float, abs_sum: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For the signed sums ``sum(terms)`` per row: (the sum, beyond ``+-cap`` + tolerance).

    ``abs_sum``: ``|terms|.sum(axis=1)`` when the caller has it.
    """
    total = terms.sum(axis=1)
    mag = np.abs(terms).sum(axis=1) if abs_sum is None else abs_sum
    tol = (mag + cap) * _RTOL + (cap + _ATOL)
    return total, ~(np.abs(total) <= tol)


def _coupled_violations(
    w: np.ndarray, lim: _Limits, codes: frozenset[ReasonCode] | None = None
) -> list[tuple[ReasonCode, np.ndarray]]:
    """Rows breaking each coupled (multi-symbol) hard limit, in gate order.

    ``codes`` restricts the check to those limits (all when ``None``).
    """

    def want(code: ReasonCode) -> bool:
        return codes is None or code in codes

    out = []
    aw = np.abs(w)
    gross = None
    if want(ReasonCode.SECTOR_CAP):
        sg = lim.sectors.gross(aw)
        out.append((ReasonCode.SECTOR_CAP, ~_rows_all(_inside(sg, lim.sector_cap, sg))))
    if want(ReasonCode.NET_CAP):
        gross = aw.sum(axis=1)
        out.append((ReasonCode.NET_CAP, _signed_excess(w, lim.net_cap, gross)[1]))
    if lim.betas is not None and want(ReasonCode.BETA_LIMIT):
        out.append((ReasonCode.BETA_LIMIT, _signed_excess(lim.betas * w, lim.beta_tol)[1]))
    if want(ReasonCode.GROSS_CAP) or want(ReasonCode.NOTIONAL_CAP):
        if gross is None:
            gross = aw.sum(axis=1)
        if want(ReasonCode.GROSS_CAP):
            out.append((ReasonCode.GROSS_CAP, _over(gross, lim.gross_cap, gross)))
        if lim.notional_cap is not None and want(ReasonCode.NOTIONAL_CAP):
            out.append((ReasonCode.NOTIONAL_CAP, _over(gross, lim.notional_cap, gross)))
    return out


def _coupled_ok(
    w: np.ndarray, lim: _Limits, codes: frozenset[ReasonCode] | None = None
) -> np.ndarray:
    """Rows satisfying every coupled hard limit (or those in ``codes``).

    The complement of :func:`_coupled_violations` (OR of its rows), computed directly as
    the AND of the limits' inside tests (it runs in every bisection step).
    """

    def want(code: ReasonCode) -> bool:
        return codes is None or code in codes

    ok = None
    aw = gross = None
    if want(ReasonCode.SECTOR_CAP):
        aw = np.abs(w)
        sg = lim.sectors.gross(aw)
        ok = _rows_all(_inside(sg, lim.sector_cap, sg))
    if want(ReasonCode.NET_CAP):
        gross = (np.abs(w) if aw is None else aw).sum(axis=1)
        tol = (gross + lim.net_cap) * _RTOL + (lim.net_cap + _ATOL)
        inside = np.abs(w.sum(axis=1)) <= tol
        ok = inside if ok is None else ok & inside
    if lim.betas is not None and want(ReasonCode.BETA_LIMIT):
        terms = lim.betas * w
        tol = (np.abs(terms).sum(axis=1) + lim.beta_tol) * _RTOL + (lim.beta_tol + _ATOL)
        inside = np.abs(terms.sum(axis=1)) <= tol
        ok = inside if ok is None else ok & inside
    want_notional = lim.notional_cap is not None and want(ReasonCode.NOTIONAL_CAP)
    if want(ReasonCode.GROSS_CAP) or want_notional:
        if gross is None:
            gross = (np.abs(w) if aw is None else aw).sum(axis=1)
        if want(ReasonCode.GROSS_CAP):
            inside = _inside(gross, lim.gross_cap, gross)
            ok = inside if ok is None else ok & inside
        if want_notional:
            inside = _inside(gross, lim.notional_cap, gross)
            ok = inside if ok is None else ok & inside
    return np.ones(w.shape[0], dtype=bool) if ok is None else ok


def _bisect_scale(start: np.ndarray, step: np.ndarray, lim: _Limits) -> np.ndarray:
    """Largest ``s`` in [0, 1] (to float resolution) with ``start + s * step`` feasible.

    ``start`` must be feasible. Along a segment the feasible set of each convex limit is
    an interval ``[0, s_k]`` and ``s = min_k s_k``; a limit holding at both ends holds all
    along. Linear limits (net, beta) have ``s_k`` in closed form; the piecewise-linear
    ones (sector, gross, notional) are bisected below that bound where they bind.
    """
    n = start.shape[0]
    end = _coupled_violations(start + step, lim)
    broken = frozenset(code for code, rows in end if rows.any())
    if not broken:
        return np.ones(n)
    hi = np.ones(n)
    linear = [(ReasonCode.NET_CAP, start, step, lim.net_cap)]
    if lim.betas is not None:
        linear.append((ReasonCode.BETA_LIMIT, lim.betas * start, lim.betas * step, lim.beta_tol))
    for code, t0, dt, cap in linear:
        if code in broken:
            a, d = t0.sum(axis=1), dt.sum(axis=1)
            s_k = np.where(d > 0, (cap - a) / d, np.where(d < 0, (-cap - a) / d, 1.0))
            hi = np.minimum(hi, np.clip(np.nan_to_num(s_k, nan=0.0), 0.0, 1.0))
    ok_hi = _coupled_ok(start + hi[:, None] * step, lim, broken)
    if ok_hi.all():
        return hi
    if ok_hi.any():
        rows = np.flatnonzero(~ok_hi)
        sub, s0, d0, top = lim.take(rows), start[rows], step[rows], hi[rows]
    else:
        rows, sub, s0, d0, top = None, lim, start, step, hi
    lo = np.zeros(top.shape[0])
    for _ in range(_BISECT_ITERS):
        mid = 0.5 * (lo + top)
        w = mid[:, None] * d0
        w += s0  # s0 + mid * d0
        ok = _coupled_ok(w, sub, broken)
        lo = np.where(ok, mid, lo)
        top = np.where(ok, top, mid)
    if rows is None:
        return lo
    hi[rows] = lo
    return hi


def _pinned_shrink(w: np.ndarray, tradable: np.ndarray, lim: _Limits) -> np.ndarray:
    """Per-name factors in [0, 1] for the tradable part ``T`` of ``w`` (the rest, ``F``,
    held) so that ``F + factor * T`` meets the coupled limits, in closed form: each
    sector's tradable names by the largest factor that fits the sector cap, then all of
    them by the largest common factor that fits gross, notional, net and beta (a signed
    limit ``|f + s d| <= cap`` bounds ``s`` by its larger root). Where ``F`` alone breaks
    a limit no factor fits, and the bound clipped to [0, 1] gives the closest book found
    (a sector over its cap sells all of its tradable names). Shape of ``w``.
    """
    held = np.where(tradable, 0.0, w)
    free = np.where(tradable, w, 0.0)

    def upper(room: np.ndarray, need: np.ndarray) -> np.ndarray:
        fit = room / np.where(need > 0, need, 1.0)
        return np.clip(np.where(need > 0, fit, np.where(room >= 0, 1.0, 0.0)), 0.0, 1.0)

    fs, ts = lim.sectors.gross(np.abs(held)), lim.sectors.gross(np.abs(free))
    per_name = lim.sectors.spread(upper(lim.sector_cap - fs, ts))
    free = free * per_name
    fg, tg = np.abs(held).sum(axis=1), np.abs(free).sum(axis=1)
    hi = upper(lim.gross_cap - fg, tg)
    if lim.notional_cap is not None:
        hi = np.minimum(hi, upper(lim.notional_cap - fg, tg))
    signed = [(held.sum(axis=1), free.sum(axis=1), lim.net_cap)]
    if lim.betas is not None:
        signed.append(
            ((lim.betas * held).sum(axis=1), (lim.betas * free).sum(axis=1), lim.beta_tol)
        )
    for f, d, cap in signed:
        safe = np.where(d != 0, d, 1.0)
        up = np.maximum((cap - f) / safe, (-cap - f) / safe)
        hi = np.minimum(hi, np.where(d != 0, up, np.where(np.abs(f) <= cap, 1.0, 0.0)))
    hi = np.clip(np.nan_to_num(hi, nan=0.0), 0.0, 1.0)
    return np.nan_to_num(per_name, nan=0.0) * hi[:, None]


def _clip_abs(
    w: np.ndarray, aw: np.ndarray, cap: np.ndarray, code: ReasonCode, trace: _Trace
) -> tuple[np.ndarray, np.ndarray]:
    """Clip ``|w|`` to ``cap`` (``aw = |w|``); returns the new ``w`` and ``|w|``."""
    if _below(aw, cap):
        return w, aw
    inside = _inside(aw, cap, aw)
    if inside.all():
        return w, aw
    over = ~inside
    out = np.where(over, np.copysign(cap, w), w)
    # Exactly the clipped entries change: |w| > cap > |copysign(cap, w)| there.
    trace.record(code, w, out, portfolio=False, changed=over)
    return out, np.abs(out)


def _subset(over: np.ndarray) -> np.ndarray | None:
    """Rows to compute a row gate on: ``None`` for all of them (every row is over, or the
    batch is small enough that gathering rows costs more than it saves), else the indices.
    Rows are computed elementwise, so both give the same bits."""
    if over.shape[0] < _SUBSET_MIN_ROWS or over.all():
        return None
    return np.flatnonzero(over)


def _scale_rows(
    w: np.ndarray, value: np.ndarray, cap: Any, over: np.ndarray, code: ReasonCode, trace: _Trace
) -> np.ndarray:
    """Scale whole rows where ``over`` by ``cap / value`` (uniform: keeps every other limit)."""
    if not over.any():
        return w
    rows = _subset(over)
    if rows is None:
        block = w * (cap / value)[:, None]
        if not over.all():
            block = np.where(over[:, None], block, w)
        trace.record(code, w, block, portfolio=True)
        return block
    limit = cap[rows] if isinstance(cap, np.ndarray) else cap
    block = w[rows] * (limit / value[rows])[:, None]
    trace.record(code, w[rows], block, portfolio=True, rows=rows)
    return _replace_rows(w, rows, block)


def _scale_side(
    w: np.ndarray,
    terms: np.ndarray,
    cap: float,
    code: ReasonCode,
    trace: _Trace,
    abs_sum: np.ndarray | None = None,
) -> np.ndarray:
    """Bring ``|sum(terms)|`` inside ``cap`` by shrinking only the side carrying the excess.

    ``terms`` are the per-symbol contributions (``w`` for net, ``beta * w`` for beta).
    Shrinking symbols toward zero keeps the symbol, sector, gross and notional limits.
    Only the rows over the limit change (large batches compute only those).
    """
    total = terms.sum(axis=1)
    if _below(np.abs(total), cap):  # the tolerance only widens +-cap
        return w
    mag = np.abs(terms).sum(axis=1) if abs_sum is None else abs_sum
    over = ~(np.abs(total) <= (mag + cap) * _RTOL + (cap + _ATOL))
    if not over.any():
        return w
    rows = _subset(over)
    t, wr, tot = (terms, w, total) if rows is None else (terms[rows], w[rows], total[rows])
    # Each side summed directly: deriving it from the total would cancel catastrophically.
    mt = -t
    pos = np.maximum(t, 0.0).sum(axis=1)
    neg = np.maximum(mt, 0.0).sum(axis=1)
    high = tot > 0
    # high: (cap + neg) / pos on the positive side, else (cap + pos) / neg on the negative
    factor = np.where(high, cap + neg, cap + pos) / np.where(high, pos, neg)
    side = np.where(high[:, None], t, mt) > 0
    if rows is None and not over.all():
        side &= over[:, None]
    block = np.where(side, wr * factor[:, None], wr)
    trace.record(code, wr, block, portfolio=True, rows=rows)
    return block if rows is None else _replace_rows(w, rows, block)


def _signed_gates(
    w: np.ndarray, lim: _Limits, trace: _Trace, gross: np.ndarray | None = None
) -> np.ndarray:
    """NET_CAP (dominant side), BETA_LIMIT (excess side), then NET_CAP again uniformly.

    ``gross``: ``|w|.sum(axis=1)`` when the caller has it.
    """
    w = _scale_side(w, w, lim.net_cap, ReasonCode.NET_CAP, trace, gross)
    if lim.betas is not None:
        fixed = _scale_side(w, lim.betas * w, lim.beta_tol, ReasonCode.BETA_LIMIT, trace)
        if fixed is not w:
            # The beta fix may move the net; a uniform scale fixes it and keeps the beta.
            net, over = _signed_excess(fixed, lim.net_cap)
            fixed = _scale_rows(fixed, np.abs(net), lim.net_cap, over, ReasonCode.NET_CAP, trace)
        w = fixed
    return w


def _hard_gates(w: np.ndarray, lim: _Limits, long_only: bool, trace: _Trace) -> np.ndarray:
    """Every hard limit, each gate keeping the ones before it (see module docstring).

    ``|w|`` and the gross are computed once and reused until a gate changes ``w``.
    """
    if long_only:
        neg = w < 0
        if neg.any():
            out = np.where(neg, 0.0, w)
            trace.record(ReasonCode.LONG_ONLY, w, out, portfolio=False, changed=neg)
            w = out
    aw = np.abs(w)
    w, aw = _clip_abs(w, aw, lim.cap_pct, ReasonCode.SYMBOL_CAP, trace)
    if lim.cap_notional is not None:
        w, aw = _clip_abs(w, aw, lim.cap_notional, ReasonCode.SYMBOL_NOTIONAL_CAP, trace)
    sg = lim.sectors.gross(aw)
    inside = None if _below(sg, lim.sector_cap) else _inside(sg, lim.sector_cap, sg)
    if inside is not None and not inside.all():
        over = ~inside
        rows = _subset(_rows_any(over))
        # a row without a sector over has scale 1 everywhere: w * 1.0 is w, bit for bit
        o, g, wr = (over, sg, w) if rows is None else (over[rows], sg[rows], w[rows])
        scale = np.where(o, lim.sector_cap / np.where(o, g, 1.0), 1.0)
        block = wr * lim.sectors.spread(scale)
        trace.record(ReasonCode.SECTOR_CAP, wr, block, portfolio=True, rows=rows)
        w = block if rows is None else _replace_rows(w, rows, block)
        aw = np.abs(w)
    gross = aw.sum(axis=1)
    signed = _signed_gates(w, lim, trace, gross)
    if signed is not w:
        w = signed
        gross = np.abs(w).sum(axis=1)
    scaled = w
    if not _below(gross, lim.gross_cap):
        over_g = _over(gross, lim.gross_cap, gross)
        scaled = _scale_rows(w, gross, lim.gross_cap, over_g, ReasonCode.GROSS_CAP, trace)
    if lim.notional_cap is not None:
        if scaled is not w:
            gross = np.abs(scaled).sum(axis=1)
        if not _below(gross, lim.notional_cap):
            over_n = _over(gross, lim.notional_cap, gross)
            scaled = _scale_rows(
                scaled, gross, lim.notional_cap, over_n, ReasonCode.NOTIONAL_CAP, trace
            )
    return scaled


def _cost_ok(s: np.ndarray, linear: np.ndarray, impact: np.ndarray, budget: float) -> np.ndarray:
    """The slippage bisection's test, the same float operations in the same order."""
    return s * linear + s * np.sqrt(s) * impact <= budget


def _solve_cost_scale(linear: np.ndarray, impact: np.ndarray, budget: float) -> np.ndarray:
    """Largest ``s`` in [0, 1] with ``s * linear + s**1.5 * impact <= budget``.

    The defining computation is a 53-step bisection of [0, 1]; its midpoints are exact
    multiples of ``2**-53`` and the test is monotone in ``s`` (every float operation in
    it is monotone for ``linear, impact >= 0``), so it returns exactly the largest grid
    point ``s < 1`` that passes (0 if none does). That point is found here from a Newton
    estimate of the root checked against the same test on the grid; rows the check does
    not settle in a few grid steps run the bisection itself.
    """
    n = linear.shape[0]
    lo = np.zeros(n)
    if n == 0:
        return lo
    # Newton on u = sqrt(s): impact u^3 + linear u^2 = budget, from an upper bound (each
    # term alone reaches the budget at or after the root), so it decreases to the root.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        u = np.minimum(np.sqrt(budget / linear), np.cbrt(budget / impact))
        u = np.nan_to_num(np.minimum(u, 1.0), nan=0.0, posinf=1.0)
        for _ in range(8):
            g = (impact * u + linear) * u * u - budget
            dg = (3.0 * impact * u + 2.0 * linear) * u
            u = np.where(dg > 0, u - g / np.where(dg > 0, dg, 1.0), u)
            u = np.nan_to_num(np.clip(u, 0.0, 1.0), nan=0.0)
        s = np.floor(u * u / _GRID) * _GRID
        s = np.clip(s, 0.0, 1.0 - _GRID)
        settled = np.zeros(n, dtype=bool)
        for _ in range(6):
            here = (s == 0.0) | _cost_ok(s, linear, impact, budget)
            nxt = s + _GRID
            above = (nxt >= 1.0) | ~_cost_ok(nxt, linear, impact, budget)
            settled = here & above
            if settled.all():
                return s
            s = np.where(here, np.where(above, s, nxt), np.maximum(s - _GRID, 0.0))
    rest = np.flatnonzero(~settled)
    s[rest] = _bisect_cost_scale(linear[rest], impact[rest], budget)
    return s


def _bisect_cost_scale(linear: np.ndarray, impact: np.ndarray, budget: float) -> np.ndarray:
    """The 53-step bisection of [0, 1] that defines :func:`_solve_cost_scale`."""
    lo = np.zeros_like(linear)
    hi = np.ones_like(linear)
    for _ in range(_BISECT_ITERS):
        mid = 0.5 * (lo + hi)
        with np.errstate(invalid="ignore", over="ignore"):
            ok = _cost_ok(mid, linear, impact, budget)
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return lo


def _as_batch(name: str, value: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    if arr.shape == shape:
        return arr
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        raise RequestError(
            f"GateContext.{name} has shape {arr.shape}; expected {shape} "
            "(or an array broadcastable to it)"
        ) from None


def _flags(name: str, value: Any, default: bool, n: int) -> np.ndarray:
    """Per-portfolio flag ``value`` (optional) OR the global ``default``, shape (n,)."""
    if value is None:
        return np.full(n, default)
    flag = _as_batch(name, value, (n,), bool)
    return np.ones(n, dtype=bool) if default else flag


@dataclass(eq=False, slots=True)  # not frozen: a frozen __init__ is slow, and it is private
class _Inputs:
    """Validated, sanitised views of one decision's inputs (``any_*``: whether any row or
    symbol is flagged, so that the common all-clean decision skips the masking)."""

    proposed: np.ndarray
    p: np.ndarray  # proposal, NaN -> 0, +-inf -> +-_BIG, clipped to +-_BIG
    c: np.ndarray  # current book (0 in bad rows), clipped to +-_BIG
    equity: np.ndarray
    adv: np.ndarray
    vol: np.ndarray
    spread: np.ndarray
    betas: np.ndarray | None
    sectors: _SectorMap
    regime: np.ndarray
    tradable: np.ndarray  # effective: flag AND finite, sane market data
    bad_row: np.ndarray
    bad_proposal: np.ndarray
    killed: np.ndarray
    reduce: np.ndarray
    strategy: np.ndarray | None  # (n, n_strategies, N), clipped to +-_BIG, 0 in bad rows
    strategy_gross: np.ndarray | None  # (n, n_strategies), from the raw values
    all_tradable: bool
    any_bad_row: bool
    any_bad_proposal: bool
    any_killed: bool
    any_reduce: bool


@dataclass(frozen=True, eq=False)
class _Tables:
    """Per regime slot (``REGIME_LABELS`` order, then unknown codes): multipliers and the
    limit x multiplier products each decision looks up (same values as computing them)."""

    budget: np.ndarray
    capacity: np.ndarray
    cap_pct: np.ndarray  # max_symbol_weight x capacity
    gross: np.ndarray  # max_gross x budget
    participation: np.ndarray  # max_participation x capacity
    symbol_notional: np.ndarray | None  # max_symbol_notional x capacity

    @classmethod
    def build(cls, limits: RiskLimits) -> _Tables:
        slots = np.arange(_N_LABELS + 1)
        codes = np.where(slots < _N_LABELS, slots, -1)
        budget = limits.budget_multiplier(codes)
        capacity = limits.capacity_multiplier(codes)
        notional = limits.max_symbol_notional
        return cls(
            budget=budget,
            capacity=capacity,
            cap_pct=limits.max_symbol_weight * capacity,
            gross=limits.max_gross * budget,
            participation=limits.max_participation * capacity,
            symbol_notional=None if notional is None else notional * capacity,
        )


class RiskGateChain:
    """The deterministic gate chain every allocator's proposal passes through.

    Parameters
    ----------
    limits : RiskLimits
    cost_model : CostModel, optional
        The cost model of the slippage-budget gate (defaults: ``CostModel()``).
    debug : bool
        Run :func:`check_invariants` after every ``apply`` and raise
        ``allocgym.errors.InvariantBreach`` on any breach.

    Notes
    -----
    ``apply`` is pure and deterministic (bit-identical output for identical input, no
    BLAS, no hashing), vectorised over portfolios and symbols, and permutation-equivariant
    in symbols up to float rounding. See the module docstring for the gate order.
    """

    def __init__(
        self, limits: RiskLimits, cost_model: CostModel | None = None, debug: bool = False
    ) -> None:
        if not isinstance(limits, RiskLimits):
            raise GateConfigError(
                f"RiskGateChain needs RiskLimits, got {type(limits).__name__}: "
                "build one with RiskLimits.from_config(cfg.risk)"
            )
        self.limits = limits
        self.cost_model = CostModel() if cost_model is None else cost_model
        self.debug = bool(debug)
        self._tables_of: tuple[RiskLimits, _Tables] = (limits, _Tables.build(limits))
        # Multipliers per regime code slot (labels, then the default), as RiskLimits gives.
        self._budget_table = self._tables_of[1].budget
        self._capacity_table = self._tables_of[1].capacity

    def _tables(self) -> _Tables:
        """Lookup tables of ``self.limits`` (rebuilt if the attribute was reassigned)."""
        limits, tables = self._tables_of
        if limits is not self.limits:
            tables = _Tables.build(self.limits)
            self._tables_of = (self.limits, tables)
        return tables

    # -------------------------------------------------------------------- inputs

    def _inputs(self, proposed: np.ndarray, ctx: GateContext) -> _Inputs:
        lim = self.limits
        raw = np.asarray(proposed, dtype=np.float64)
        if raw.ndim != 2:
            raise RequestError(
                f"proposed weights have shape {raw.shape}; expected (n_envs, n_assets) "
                "(use w[None, :] for one portfolio)"
            )
        n, m = raw.shape
        cur = np.asarray(ctx.current_weights, dtype=np.float64)
        if cur.shape != (n, m):
            raise RequestError(
                f"GateContext.current_weights has shape {cur.shape}; expected {(n, m)} "
                "like the proposal"
            )
        sectors = _sector_map(ctx.sector_ids, m)
        equity = _as_batch("equity", ctx.equity, (n,), np.float64)
        prices = _as_batch("prices", ctx.prices, (n, m), np.float64)
        adv = _as_batch("adv_notional", ctx.adv_notional, (n, m), np.float64)
        vol = _as_batch("volatility", ctx.volatility, (n, m), np.float64)
        spread = _as_batch("spread_bps", ctx.spread_bps, (n, m), np.float64)
        tradable = _as_batch("tradable", ctx.tradable, (n, m), bool)
        regime = np.asarray(ctx.regime)
        if regime.dtype.kind not in "iu":
            raise RequestError(
                f"GateContext.regime has dtype {regime.dtype}; pass integer codes "
                "(allocgym.regime.regime_code)"
            )
        regime = _as_batch("regime", regime, (n,), np.int64)
        killed = _flags("kill_switch", ctx.kill_switch, lim.kill_switch, n)
        reduce = _flags("reduce_only", ctx.reduce_only, lim.reduce_only, n)

        # Readable rows: finite positive equity, finite book (and sane betas).
        good_row = (equity > 0) & (equity < np.inf)
        finite_cur = np.isfinite(cur)
        if not finite_cur.all():
            good_row &= finite_cur.all(axis=1)
        betas = None
        if lim.beta_tolerance is not None:
            if ctx.betas is None:
                raise RequestError(
                    "beta_tolerance is set but GateContext.betas is None: pass betas "
                    "(n_envs, n_assets) or set risk.beta_tolerance to null"
                )
            betas = _as_batch("betas", ctx.betas, (n, m), np.float64)
            sane = np.abs(betas) <= _MAX_ABS_BETA  # False for NaN and +-inf too
            if not sane.all():
                good_row &= sane.all(axis=1)
        any_bad_row = not good_row.all()
        bad_row = ~good_row
        if betas is not None and any_bad_row:
            betas = np.where(bad_row[:, None], 0.0, betas)
        # Usable symbols: tradable, price finite > 0, ADV / vol / spread finite >= 0
        # (a NaN anywhere makes the min NaN, which fails >= 0; +inf fails the max test).
        low = np.minimum(adv, vol)
        np.minimum(low, spread, out=low)
        high = np.maximum(adv, vol)
        np.maximum(high, spread, out=high)
        ok_sym = tradable & (prices > 0) & (prices < np.inf) & (low >= 0) & (high < np.inf)
        all_tradable = bool(ok_sym.all())

        finite_p = np.isfinite(raw)
        any_bad_proposal = not finite_p.all()
        bad_proposal = ~finite_p.all(axis=1) if any_bad_proposal else np.zeros(n, dtype=bool)
        strategy = strategy_gross = None
        if ctx.strategy_weights is not None:
            sw = np.asarray(ctx.strategy_weights, dtype=np.float64)
            if sw.ndim != 3 or sw.shape[0] != n or sw.shape[2] != m:
                raise RequestError(
                    f"GateContext.strategy_weights has shape {sw.shape}; expected "
                    f"({n}, n_strategies, {m})"
                )
            bad_proposal = bad_proposal | ~np.isfinite(sw).all(axis=(1, 2))
            any_bad_proposal = bool(bad_proposal.any())
            sw = np.where(bad_proposal[:, None, None], 0.0, sw)
            # From the raw values (overflow -> inf -> scale 0), so that the scaled
            # contributions of even absurd finite inputs stay under the cap.
            strategy_gross = np.abs(sw).sum(axis=2)
            strategy = sw.clip(-_BIG, _BIG)
        # Sanitised copies (the common all-clean case skips the replacements).
        p = raw
        if any_bad_proposal:
            p = np.nan_to_num(raw, nan=0.0, posinf=_BIG, neginf=-_BIG)
        p = p.clip(-_BIG, _BIG)
        c = cur
        if any_bad_row:
            c = np.where(bad_row[:, None], 0.0, cur)
            equity = np.where(bad_row, 1.0, equity)
        c = c.clip(-_BIG, _BIG)
        if not all_tradable:
            adv = np.where(ok_sym, adv, 1.0)
            vol = np.where(ok_sym, vol, 0.0)
            spread = np.where(ok_sym, spread, 0.0)
        return _Inputs(
            proposed=raw,
            p=p,
            c=c,
            equity=equity,
            adv=adv,
            vol=vol,
            spread=spread,
            betas=betas,
            sectors=sectors,
            regime=regime,
            tradable=ok_sym,
            bad_row=bad_row,
            bad_proposal=bad_proposal,
            killed=killed,
            reduce=reduce,
            strategy=strategy,
            strategy_gross=strategy_gross,
            all_tradable=all_tradable,
            any_bad_row=any_bad_row,
            any_bad_proposal=any_bad_proposal,
            any_killed=bool(killed.any()),
            any_reduce=bool(reduce.any()),
        )

    def _decision_limits(self, x: _Inputs) -> tuple[_Limits, _Limits, np.ndarray]:
        """Limits for the current books and the proposals stacked row-wise (rows
        ``0..n-1`` then again), the same for one batch (views), and the participation cap.
        """
        lim = self.limits
        tab = self._tables()
        n = x.regime.shape[0]
        slot = np.where((x.regime >= 0) & (x.regime < _N_LABELS), x.regime, _N_LABELS)
        slot2 = np.concatenate([slot, slot])
        equity2 = None
        cap_notional = None
        if tab.symbol_notional is not None:
            equity2 = np.concatenate([x.equity, x.equity])
            cap_notional = (tab.symbol_notional[slot2] / equity2)[:, None]
        notional_cap = None
        if lim.max_gross_notional is not None:
            if equity2 is None:
                equity2 = np.concatenate([x.equity, x.equity])
            notional_cap = lim.max_gross_notional / equity2
        stacked = _Limits(
            cap_pct=tab.cap_pct[slot2][:, None],
            cap_notional=cap_notional,
            sector_cap=lim.max_sector_gross,
            sectors=x.sectors,
            net_cap=lim.max_net,
            betas=None if x.betas is None else np.concatenate([x.betas, x.betas]),
            beta_tol=0.0 if lim.beta_tolerance is None else lim.beta_tolerance,
            gross_cap=tab.gross[slot2],
            notional_cap=notional_cap,
        )
        single = stacked.take(slice(0, n))
        # Zero where nothing may trade (written so that 0 * inf never makes a NaN).
        cm = tab.capacity[slot]
        can = (x.adv > 0) & (cm > 0)[:, None]
        if not x.all_tradable:
            can &= x.tradable
        pcap = x.adv / x.equity[:, None]
        pcap *= tab.participation[slot][:, None]
        pcap[~can] = 0.0
        return stacked, single, pcap

    # -------------------------------------------------------------------- stages

    def _strategy_gate(
        self, p: np.ndarray, x: _Inputs, trace: _Trace
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if x.strategy is None or x.strategy_gross is None:
            return p, None
        cap = self.limits.max_strategy_contribution
        gross = x.strategy_gross
        over = _over(gross, cap, gross) | ~np.isfinite(gross)
        scale = np.where(over, cap / np.where(over, gross, 1.0), 1.0)
        if not over.any():
            return p, scale
        out = p + ((scale - 1.0)[:, :, None] * x.strategy).sum(axis=1)
        trace.record(ReasonCode.STRATEGY_CAP, p, out, portfolio=True)
        return out, scale

    def _trade_limits(
        self,
        base: np.ndarray,
        target: np.ndarray,
        dec: _Limits,
        pcap: np.ndarray,
        x: _Inputs,
        trace: _Trace,
    ) -> np.ndarray:
        lim = self.limits
        d = target - base
        a = np.abs(d)
        inside = None if _below(a, pcap) else _inside(a, pcap, a)
        clipped = inside is not None and not inside.all()
        clip = d1 = None
        if clipped:
            clip = ~inside
            d1 = np.where(clip, np.copysign(pcap, d), d)
            _or_bits(trace.sym, int(ReasonCode.PARTICIPATION_CAP), clip)
            trace.clip[_GATE_ROW[ReasonCode.PARTICIPATION_CAP]] += np.abs(d - d1).sum(axis=1)
            a = np.abs(d1)
        else:
            d1 = d
        moved = None
        l1 = a.sum(axis=1)

        over_t = None if _below(l1, lim.max_turnover) else _over(l1, lim.max_turnover, l1)
        turned = over_t is not None and bool(over_t.any())
        s_turn = None
        trade = d1
        if turned:
            s_turn = np.where(over_t, lim.max_turnover / np.where(over_t, l1, 1.0), 1.0)
            moved = d1 != 0
            self._mark(trace, ReasonCode.TURNOVER_CAP, over_t, moved, (1.0 - s_turn) * l1)
            trade = d1 * s_turn[:, None]  # (without the cap the scale is 1: d1 itself)

        linear, impact = _cost_terms(
            trade, x.equity[:, None], x.adv, x.vol, x.spread, self.cost_model
        )
        cost = (linear + impact).sum(axis=1)
        budget = lim.slippage_budget_bps / 1e4
        over_s = None if _below(cost, budget) else _over(cost, budget, cost)
        slipped = over_s is not None and bool(over_s.any())
        s_slip = None
        if slipped:
            s_slip = np.ones_like(cost)
            s_slip[over_s] = _solve_cost_scale(
                linear.sum(axis=1)[over_s], impact.sum(axis=1)[over_s], budget
            )
            removed = (1.0 - s_slip) * l1 if s_turn is None else s_turn * (1.0 - s_slip) * l1
            if moved is None:
                moved = d1 != 0
            self._mark(trace, ReasonCode.SLIPPAGE_BUDGET, over_s, moved, removed)
        if not (clipped or turned or slipped):
            return target  # nothing clipped or scaled: the target passed the hard gates
        if s_turn is None:
            scale = np.ones_like(cost) if s_slip is None else s_slip
        else:
            scale = s_turn if s_slip is None else s_turn * s_slip

        # Untouched symbols of an unscaled trade keep the target bit for bit.
        keep = (scale == 1.0)[:, None]
        if clip is not None:
            keep = keep & ~clip
        if keep.all():
            return target
        book = np.where(keep, target, base + scale[:, None] * d1)

        violations = _coupled_violations(book, dec)
        broken = np.zeros(book.shape[0], dtype=bool)
        for _, rows in violations:
            broken |= rows
        if not broken.any():
            return book
        # Per-symbol clipping left the segment base -> target, and a coupled limit broke.
        # Two feasible repairs, the one closer to the target wins: (a) keep the clipped
        # trades and scale the free ones (when the clipped trades alone are feasible),
        # (b) scale the whole trade (always feasible: base is, and the limits are convex).
        idx = np.flatnonzero(broken)
        sub = dec.take(idx)
        b0, step = base[idx], scale[idx, None] * d1[idx]
        whole = b0 + _bisect_scale(b0, step, sub)[:, None] * step
        clip_idx = np.zeros(step.shape, dtype=bool) if clip is None else clip[idx]
        fixed = np.where(clip_idx, step, 0.0)
        start = b0 + fixed
        free = step - fixed
        start_ok = _coupled_ok(start, sub) & clip_idx.any(axis=1)
        new = whole
        if start_ok.any():
            partial = start + _bisect_scale(start, free, sub)[:, None] * free
            goal = target[idx]
            closer = np.abs(partial - goal).sum(axis=1) <= np.abs(whole - goal).sum(axis=1)
            new = np.where((start_ok & closer)[:, None], partial, whole)
        # Code the first limit (gate order) each portfolio broke at the full trade.
        first = np.zeros(idx.size, dtype=np.int64)
        for code, rows in violations:
            first = np.where((first == 0) & rows[idx], int(code), first)
        changed = new != book[idx]
        trace.sym[idx] |= np.where(changed, first[:, None], 0)
        trace.port[idx] |= first
        removed = np.abs(book[idx] - new).sum(axis=1)
        for code, _ in violations:
            trace.clip[_GATE_ROW[code], idx] += np.where(first == int(code), removed, 0.0)
        book = book.copy()
        book[idx] = new
        return book

    def _hard_ok(self, w: np.ndarray, lim: _Limits) -> np.ndarray:
        """(rows,) bool: ``w`` satisfies every hard limit (symbol caps and long-only too)."""
        aw = np.abs(w)
        ok = _coupled_ok(w, lim) & _rows_all(_inside(aw, lim.cap_pct, aw))
        if lim.cap_notional is not None:
            ok &= _rows_all(_inside(aw, lim.cap_notional, aw))
        if self.limits.long_only:
            ok &= _rows_all(w >= 0)
        return ok

    def _pin_untradable(
        self,
        approved: np.ndarray,
        c_in: np.ndarray,
        x: _Inputs,
        dec: _Limits,
        trace: _Trace,
    ) -> np.ndarray:
        """Hold every non-tradable weight at the current one; fit the tradable names.

        The hard gates scale whole books (sectors, gross, net, beta), non-tradable names
        included, but execution cannot move those. In a portfolio where they moved, they
        are put back (``NOT_TRADABLE``) and the portfolio limits are met by the tradable
        names alone: from a base book inside the limits (the de-risked current book with
        the held names put back; else the current book with its tradable names clipped to
        their caps and shrunk per sector, then by a common factor: ``_pinned_shrink``) toward the pinned approved book, as far as the
        limits allow (``_bisect_scale``; the trade only shrinks, so the trade limits hold).
        The changed tradable names carry the first limit the pinned book broke. When no
        base is inside (the held names alone break a limit), the portfolio is coded
        ``NOT_TRADABLE`` and its tradable names are closed.
        """
        moved = ~x.tradable & (approved != x.c)
        rows = _rows_any(moved)
        if x.any_killed or x.any_bad_row:
            rows &= ~(x.killed | x.bad_row)  # flattened (and coded) by the caller
        if not rows.any():
            return approved
        idx = np.flatnonzero(rows)
        sub = dec.take(idx)
        c, t, a = x.c[idx], x.tradable[idx], approved[idx]
        pinned = np.where(t, a, c)
        base = np.where(t, c_in[idx], c)
        ok = self._hard_ok(base, sub)
        if not ok.all():
            # The current book, its tradable names clipped to their caps, then shrunk
            # (reduce-only; a factor within float dust of 1 is 1, so a
            # portfolio that cannot get inside keeps its book: the chain stays idempotent).
            cap = (
                sub.cap_pct
                if sub.cap_notional is None
                else np.minimum(sub.cap_pct, sub.cap_notional)
            )
            low = 0.0 if self.limits.long_only else -cap
            clipped = np.where(t, np.clip(c, low, cap), c)
            f = _pinned_shrink(clipped, t, sub)
            f = np.where(f >= 1.0 - 1e-12, 1.0, f)
            shrunk = np.where(t, f * clipped, clipped)
            base = np.where(ok[:, None], base, shrunk)
            ok = self._hard_ok(base, sub)
        lam = np.zeros(idx.size)
        if ok.any():
            r = np.flatnonzero(ok)
            lam[r] = _bisect_scale(base[r], pinned[r] - base[r], sub.take(r))
        new = np.where((lam == 1.0)[:, None], pinned, base + lam[:, None] * (pinned - base))
        if not ok.all():
            # No book fits (the held names alone break a limit; the current book is then
            # outside too, so this is a forced, reduce-only move): the tradable names
            # are closed, which leaves only the excess the held names make, and is a
            # fixed point (the chain stays idempotent).
            new = np.where(ok[:, None] | ~t, new, 0.0)

        nt_bit = int(ReasonCode.NOT_TRADABLE)
        sym, port = trace.sym[idx], trace.port[idx]
        _or_bits(sym, nt_bit, moved[idx])
        trace.clip[_GATE_ROW[ReasonCode.NOT_TRADABLE], idx] += np.abs(np.where(t, 0.0, a - c)).sum(
            axis=1
        )
        changed = t & (new != a)
        first = np.zeros(idx.size, dtype=np.int64)
        # The book the bisection saw at its end (float dust apart from ``pinned``); a move
        # with no limit broken beyond dust is put down to the held names.
        violations = _coupled_violations(base + (pinned - base), sub)
        for code, broke in violations:
            first = np.where((first == 0) & broke, int(code), first)
        first = np.where(ok & (first != 0), first, first | nt_bit)
        sym |= np.where(changed, first[:, None], 0)
        port |= np.where(_rows_any(changed), first, 0)
        port |= np.where(ok, 0, nt_bit)
        removed = np.abs(np.where(changed, a - new, 0.0)).sum(axis=1)
        for code, _ in violations:
            trace.clip[_GATE_ROW[code], idx] += np.where(first & int(code), removed, 0.0)
        trace.sym[idx], trace.port[idx] = sym, port
        out = approved.copy()
        out[idx] = new
        return out

    @staticmethod
    def _mark(
        trace: _Trace, code: ReasonCode, rows: np.ndarray, moved: np.ndarray, removed: np.ndarray
    ) -> None:
        trace.port[rows] |= int(code)
        trace.sym[rows[:, None] & moved] |= int(code)
        trace.clip[_GATE_ROW[code]] += np.where(rows, removed, 0.0)

    # -------------------------------------------------------------------- apply

    def apply(self, proposed: np.ndarray, ctx: GateContext) -> GateResult:
        """Gate proposed weights.

        Parameters
        ----------
        proposed : ndarray, shape (n_envs, n_assets)
            Proposed weights (signed fractions of equity); NaN/inf allowed (rejected).
        ctx : GateContext
            Current book, equity, market data, regime codes and flags.

        Returns
        -------
        GateResult
            ``approved`` satisfies every hard limit (and the trade limits unless the
            current book was outside the hard limits: ``FORCED_DERISK``); reason bitmasks;
            ``clipped`` has an entry (n_envs,) for every code in ``GATE_CODES``.

        Raises
        ------
        RequestError
            Shapes or dtypes that do not fit together (a caller bug).
        InvariantBreach
            In debug mode, when ``check_invariants`` finds a breach.
        """
        # NaN/inf inputs are expected (and coded): no floating-point warnings.
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            result = self._apply(proposed, ctx)
        if self.debug:
            report = check_invariants(result, ctx, self.limits, self.cost_model)
            if report.n_breaches:
                raise InvariantBreach(
                    f"{report.n_breaches} invariant breach(es) after RiskGateChain.apply "
                    "(a bug in allocgym): " + "; ".join(report.messages[:10])
                )
        return result

    def _apply(self, proposed: np.ndarray, ctx: GateContext) -> GateResult:
        x = self._inputs(proposed, ctx)
        n, m = x.p.shape
        stacked, dec, pcap = self._decision_limits(x)
        long_only = self.limits.long_only
        trace = _Trace(n, m)

        p, strategy_scale = self._strategy_gate(x.p, x, trace)
        if x.any_bad_proposal:
            rows = x.bad_proposal
            p = np.where(rows[:, None], x.c, p)
            trace.sym[rows] |= int(ReasonCode.INVALID_INPUT)
            trace.port[rows] |= int(ReasonCode.INVALID_INPUT)
            trace.clip[_GATE_ROW[ReasonCode.INVALID_INPUT]] += np.where(
                rows, np.abs(x.p - x.c).sum(axis=1), 0.0
            )
        held = p
        if not x.all_tradable:
            held = np.where(x.tradable, p, x.c)
            trace.record(ReasonCode.NOT_TRADABLE, p, held, portfolio=False)

        # One pass of the hard gates over the current books (the forced de-risk: what
        # they change was outside the limits) and the proposals, stacked row-wise.
        both = _Trace(2 * n, m)
        gated = _hard_gates(np.concatenate([x.c, held]), stacked, long_only, both)
        c_in, target = gated[:n], gated[n:]
        derisk = both.rows(slice(0, n))
        trace.merge(both.rows(slice(n, 2 * n)))
        if both.touched:
            moved = c_in != x.c
            forced = _rows_any(moved)
            if x.any_bad_row:
                forced &= ~x.bad_row
            any_forced = bool(forced.any())
        else:
            any_forced = False  # no gate changed anything: c_in is the current book

        if x.any_reduce:
            # Signs, not products: a product of two tiny weights underflows to 0.
            flip = np.sign(target) * np.sign(c_in) < 0
            r = np.where(flip, 0.0, np.where(np.abs(target) > np.abs(c_in), c_in, target))
            r = np.where(x.reduce[:, None], r, target)
            trace.record(ReasonCode.REDUCE_ONLY, target, r, portfolio=False)
            target = _signed_gates(r, dec, trace)

        approved = self._trade_limits(c_in, target, dec, pcap, x, trace)

        if any_forced:
            # Only forced rows moved (a bad row's book is 0, which no gate changes), and
            # every move carries a de-risk bit: the forced-row masks are the plain ones.
            trace.sym |= derisk.sym
            _or_bits(trace.sym, int(ReasonCode.FORCED_DERISK), moved)
            trace.port |= derisk.port
            _or_bits(trace.port, int(ReasonCode.FORCED_DERISK), forced)
            trace.clip[_GATE_ROW[ReasonCode.FORCED_DERISK]] += np.abs(x.c - c_in).sum(axis=1)

        if not x.all_tradable:
            approved = self._pin_untradable(approved, c_in, x, dec, trace)

        flat = None
        if x.any_killed or x.any_bad_row:
            flat = x.killed | x.bad_row
            approved = np.where(flat[:, None], 0.0, approved)
            invalid = np.where(x.bad_row | x.bad_proposal, int(ReasonCode.INVALID_INPUT), 0)
            code = np.where(x.killed, int(ReasonCode.KILL_SWITCH), 0) | invalid
            trace.sym = np.where(flat[:, None], code[:, None], trace.sym)
            if not x.all_tradable:
                # approved flat, but execution cannot move these: it keeps them
                _or_bits(trace.sym, int(ReasonCode.NOT_TRADABLE), flat[:, None] & ~x.tradable)
            trace.port = np.where(flat, code, trace.port)
            removed = np.abs(x.p).sum(axis=1)
            trace.clip[:, flat] = 0.0
            trace.clip[_GATE_ROW[ReasonCode.KILL_SWITCH]] = np.where(x.killed, removed, 0.0)
            trace.clip[_GATE_ROW[ReasonCode.INVALID_INPUT]] += np.where(
                x.bad_row & ~x.killed, removed, 0.0
            )
        if strategy_scale is not None:
            dead = x.bad_proposal if flat is None else flat | x.bad_proposal
            strategy_scale = np.where(dead[:, None], 0.0, strategy_scale)

        return GateResult(
            approved=approved + 0.0,  # -0.0 -> +0.0: one byte pattern per value
            symbol_reasons=trace.sym,
            portfolio_reasons=trace.port,
            clipped=trace.clipped,
            proposed=x.proposed.copy(),
            strategy_scale=strategy_scale,
        )


# ----------------------------------------------------------------------------- checker

_CHECK_RTOL = 1e-9  # tolerance of the checker's limit comparisons (relative)
_CHECK_ATOL = 1e-290  # absolute floor: differences this small are float underflow
_TRADE_EPS = 1e-11  # float slack of a trade computed as a difference of two books


@dataclass(frozen=True, eq=False)
class InvariantReport:
    """Result of :func:`check_invariants`.

    Attributes
    ----------
    n_breaches : int
        Number of (portfolio, invariant) pairs that failed.
    messages : tuple of str
        One line per failure (at most 50 per invariant), naming the portfolio and numbers.
    breached : ndarray of bool, shape (n_envs,)
    """

    n_breaches: int
    messages: tuple[str, ...]
    breached: np.ndarray

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return self.n_breaches == 0


def check_invariants(
    result: GateResult,
    ctx: GateContext,
    limits: RiskLimits,
    cost_model: CostModel | None = None,
) -> InvariantReport:
    """Verify DESIGN.md's post-risk invariants on a ``GateResult``, independently of the chain.

    Checked per portfolio (relative tolerance 1e-9): finite approved weights; kill switch
    -> flat and every symbol ``KILL_SWITCH``; unreadable current book/equity/betas -> flat
    and ``INVALID_INPUT``; any non-finite proposal entry -> ``INVALID_INPUT`` on the
    portfolio and that symbol; long-only; ``|w_i|`` and ``|w_i| x equity`` caps (x capacity
    multiplier); sector gross; ``|beta^T w|``; gross (x budget multiplier); ``|net|``;
    gross notional; strategy contributions (``strategy_scale x strategy_weights``);
    reduce-only (no ``|w_i|`` increase, no sign flip); every changed weight carries a
    reason; a non-tradable weight equals the current one (entries clipped to +-1e150) and
    a hard-limit excess is accepted only where the held (non-tradable) names alone break
    that limit and the portfolio is coded ``NOT_TRADABLE``. Trade limits (turnover,
    participation vs ADV with non-tradable symbols at 0,
    slippage via :func:`~allocgym.costs.expected_cost`) must hold on the whole trade when
    the current book is inside the hard limits. When it is outside, the portfolio must
    carry ``FORCED_DERISK`` and the trade limits must hold on the risk-increasing part of
    the trade (``max(|w_new| - |w_cur|, 0)``, or ``|w_new|`` on a sign flip). On the
    boundary band (outside exactly, inside within tolerance) either reading is accepted.

    Parameters
    ----------
    result : GateResult
    ctx : GateContext
        The context ``result`` was computed with.
    limits : RiskLimits
    cost_model : CostModel, optional
        Defaults to ``CostModel()``.

    Returns
    -------
    InvariantReport
    """
    cm_model = CostModel() if cost_model is None else cost_model
    a = np.asarray(result.approved)
    n, m = a.shape
    msgs: list[str] = []
    breached = np.zeros(n, dtype=bool)
    count = 0

    def fail(rows: np.ndarray, text: str, detail: Any = None) -> None:
        nonlocal count
        rows = np.asarray(rows, dtype=bool)
        idx = np.flatnonzero(rows)
        count += idx.size
        breached[idx] = True
        for b in idx[:50]:
            extra = "" if detail is None else f" ({np.asarray(detail)[b]})"
            msgs.append(f"portfolio {b}: {text}{extra}")

    def within(value: Any, limit: Any, mag: Any) -> np.ndarray:
        return np.asarray(value <= limit + _CHECK_RTOL * (limit + mag) + _CHECK_ATOL)

    sym = np.asarray(result.symbol_reasons)
    port = np.asarray(result.portfolio_reasons)
    if sym.dtype != np.int64 or sym.shape != (n, m) or port.dtype != np.int64 or port.shape != (n,):
        fail(np.ones(n, bool), "reason bitmasks must be int64 of shape (n, m) and (n,)")
        return InvariantReport(count, tuple(msgs), breached)
    known = 0
    for code in ReasonCode:
        known |= int(code)
    fail(((sym & ~known) != 0).any(axis=1) | ((port & ~known) != 0), "unknown reason bits")
    for name, values in result.clipped.items():
        v = np.asarray(values)
        if name not in ReasonCode.__members__ or v.shape != (n,):
            fail(np.ones(n, bool), f"clipped[{name!r}] is not a (n_envs,) array of a ReasonCode")
            continue
        fail(~(np.isfinite(v) & (v >= 0)), f"clipped[{name!r}] not finite and >= 0", v)

    prop = np.asarray(result.proposed, dtype=np.float64)
    cur = np.asarray(ctx.current_weights, dtype=np.float64)
    eq = np.broadcast_to(np.asarray(ctx.equity, dtype=np.float64), (n,))
    adv = np.broadcast_to(np.asarray(ctx.adv_notional, dtype=np.float64), (n, m))
    vol = np.broadcast_to(np.asarray(ctx.volatility, dtype=np.float64), (n, m))
    spread = np.broadcast_to(np.asarray(ctx.spread_bps, dtype=np.float64), (n, m))
    price = np.broadcast_to(np.asarray(ctx.prices, dtype=np.float64), (n, m))
    tradable = np.broadcast_to(np.asarray(ctx.tradable, dtype=bool), (n, m))
    regime = np.broadcast_to(np.asarray(ctx.regime, dtype=np.int64), (n,))
    sectors = np.asarray(ctx.sector_ids, dtype=np.int64)
    kill = np.zeros(n, bool) | limits.kill_switch
    if ctx.kill_switch is not None:
        kill = kill | np.broadcast_to(np.asarray(ctx.kill_switch, dtype=bool), (n,))
    reduce = np.zeros(n, bool) | limits.reduce_only
    if ctx.reduce_only is not None:
        reduce = reduce | np.broadcast_to(np.asarray(ctx.reduce_only, dtype=bool), (n,))
    betas = None
    if limits.beta_tolerance is not None:
        betas = np.broadcast_to(np.asarray(ctx.betas, dtype=np.float64), (n, m))
    inv = int(ReasonCode.INVALID_INPUT)
    killc = int(ReasonCode.KILL_SWITCH)

    # Multipliers straight from the limits: known label -> its entry, else the default.
    def mult(table: tuple[float, ...], default: float) -> np.ndarray:
        known = (regime >= 0) & (regime < len(REGIME_LABELS))
        raw = np.where(known, np.asarray(table)[np.where(known, regime, 0)], default)
        return np.minimum(np.maximum(raw, limits.min_multiplier), limits.max_multiplier)

    budget_m = mult(limits.regime_budget_multipliers, limits.default_budget_multiplier)
    capacity_m = mult(limits.regime_capacity_multipliers, limits.default_capacity_multiplier)

    fail(~np.isfinite(a).all(axis=1), "approved weights are not finite")
    a = np.where(np.isfinite(a), a, 0.0)

    # Portfolios the chain cannot read: flat and INVALID_INPUT.
    with np.errstate(invalid="ignore"):
        unreadable = ~np.isfinite(cur).all(axis=1) | ~(np.isfinite(eq) & (eq > 0))
        if betas is not None:
            unreadable |= ~(np.isfinite(betas) & (np.abs(betas) <= _MAX_ABS_BETA)).all(axis=1)
    nonfinite = ~np.isfinite(prop)
    bad_prop = nonfinite.any(axis=1)
    sw = None if ctx.strategy_weights is None else np.asarray(ctx.strategy_weights, np.float64)
    if sw is not None:
        bad_prop = bad_prop | ~np.isfinite(sw).all(axis=(1, 2))
    fail(bad_prop & ((port & inv) == 0), "non-finite proposal not coded INVALID_INPUT")
    fail((nonfinite & ((sym & inv) == 0)).any(axis=1), "non-finite entry not coded INVALID_INPUT")

    flat_a = (a == 0).all(axis=1)
    fail(kill & ~flat_a, "kill switch engaged but the book is not flat")
    fail(kill & ((sym & killc) == 0).any(axis=1), "kill switch: a symbol lacks KILL_SWITCH")
    fail(kill & ((port & killc) == 0), "kill switch: portfolio lacks KILL_SWITCH")
    fail(unreadable & ~flat_a, "unreadable current book/equity/betas but the book is not flat")
    fail(unreadable & ((port & inv) == 0), "unreadable input not coded INVALID_INPUT")
    live = ~kill & ~unreadable
    cur = np.where(unreadable[:, None], 0.0, cur)
    eq = np.where(unreadable, 1.0, eq)

    # Every changed weight carries a reason (no silent, unclassified change).
    changed = (a != prop) & ~nonfinite
    fail((changed & (sym == 0)).any(axis=1), "a weight changed without a reason code")

    # ---- hard limits of a book w, per portfolio: dict name -> (value, limit, mag)
    def hard(w: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        aw = np.abs(w)
        gross = aw.sum(axis=1)
        out = {
            "long-only": (
                np.where(limits.long_only, np.maximum(-w, 0).max(axis=1, initial=0), 0.0),
                np.zeros(n),
                np.zeros(n),
            ),
            "symbol cap": (
                (aw - limits.max_symbol_weight * capacity_m[:, None]).max(axis=1, initial=-np.inf),
                np.zeros(n),
                limits.max_symbol_weight * capacity_m + aw.max(axis=1, initial=0),
            ),
            "gross cap": (gross, limits.max_gross * budget_m, gross),
            "net cap": (np.abs(w.sum(axis=1)), np.full(n, limits.max_net), gross),
        }
        if limits.max_symbol_notional is not None:
            cap = limits.max_symbol_notional * capacity_m
            worst = (aw * eq[:, None]).max(axis=1, initial=0)
            out["symbol notional cap"] = (worst, cap, worst)
        if limits.max_gross_notional is not None:
            out["gross notional cap"] = (
                gross * eq,
                np.full(n, limits.max_gross_notional),
                gross * eq,
            )
        for s in np.unique(sectors[sectors != NO_SECTOR]):
            g = aw[:, sectors == s].sum(axis=1)
            out[f"sector {s} gross"] = (g, np.full(n, limits.max_sector_gross), g)
        if betas is not None:
            bw = betas * w
            out["beta"] = (
                np.abs(bw.sum(axis=1)),
                np.full(n, limits.beta_tolerance),
                np.abs(bw).sum(axis=1),
            )
        return out

    # Non-tradable weights are held (execution cannot move them), so an excess entirely
    # due to them (the held names alone break the limit) is accepted where the portfolio
    # is coded NOT_TRADABLE.
    with np.errstate(invalid="ignore"):
        usable_now = (
            tradable
            & np.isfinite(price)
            & (price > 0)
            & np.isfinite(adv)
            & (adv >= 0)
            & np.isfinite(vol)
            & (vol >= 0)
            & np.isfinite(spread)
            & (spread >= 0)
        )
    held_cur = np.clip(cur, -_BIG, _BIG)  # the chain reads a book's entries clipped so
    fail(
        live & (~usable_now & (a != held_cur)).any(axis=1),
        "a non-tradable weight changed (approved != current)",
    )
    with np.errstate(over="ignore", invalid="ignore"):
        held_only = hard(np.where(usable_now, 0.0, held_cur))
    coded_nt = (port & int(ReasonCode.NOT_TRADABLE)) != 0
    for name, (value, limit, mag) in hard(a).items():
        ok = within(value, limit, mag)
        h_value, h_limit, h_mag = held_only[name]
        excused = coded_nt & ~within(h_value, h_limit, h_mag)
        fail(live & ~ok & ~excused, f"{name} breached: value - limit", value - limit)

    if sw is not None:
        scale = result.strategy_scale
        if scale is None or np.shape(scale) != sw.shape[:2]:
            fail(live, "strategy_weights given but strategy_scale missing or misshaped")
        else:
            with np.errstate(invalid="ignore", over="ignore"):
                contrib = np.abs(np.asarray(scale)[:, :, None] * sw).sum(axis=2)
            cap = limits.max_strategy_contribution
            ok = within(contrib, cap, contrib).all(axis=1)
            fail(live & ~bad_prop & ~ok, "strategy contribution above its cap")

    # ---- reduce-only against the current book
    grow = np.abs(a) > np.abs(cur) * (1 + _CHECK_RTOL)
    flip = (np.sign(a) * np.sign(cur) < 0) | ((cur == 0) & (a != 0))
    fail(live & reduce & (grow | flip).any(axis=1), "reduce-only: |w| grew or the sign flipped")

    # ---- trade limits: on the whole trade when the current book is inside the limits
    with np.errstate(invalid="ignore"):
        usable = (
            tradable
            & np.isfinite(price)
            & (price > 0)
            & np.isfinite(adv)
            & (adv >= 0)
            & np.isfinite(vol)
            & (vol >= 0)
            & np.isfinite(spread)
            & (spread >= 0)
        )
    adv_s = np.where(usable, adv, 1.0)
    vol_s = np.where(usable, vol, 0.0)
    spread_s = np.where(usable, spread, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        pcap = limits.max_participation * capacity_m[:, None] * (adv_s / eq[:, None])
    pcap = np.where(usable & (adv_s > 0) & (capacity_m > 0)[:, None], pcap, 0.0)
    c_clip = np.clip(cur, -_BIG, _BIG)
    strict_in = np.ones(n, dtype=bool)
    loose_in = np.ones(n, dtype=bool)
    for value, limit, mag in hard(c_clip).values():
        strict_in &= np.asarray(value <= limit)
        loose_in &= within(value, limit, mag)
    strict_in &= live
    slack = _TRADE_EPS * (np.abs(a) + np.abs(c_clip))
    budget = limits.slippage_budget_bps / 1e4

    def trade_ok(trade: np.ndarray) -> np.ndarray:
        """Trade limits on a nonnegative trade size per symbol (slack for float rounding)."""
        t = np.maximum(trade - slack, 0.0)
        turnover = t.sum(axis=1)
        ok = within(turnover, limits.max_turnover, turnover)
        ok &= within(t, pcap, t).all(axis=1)
        with np.errstate(invalid="ignore"):
            cost = expected_cost(t, eq, adv_s, vol_s, spread_s, cm_model).sum(axis=1)
        ok &= within(cost, budget, cost)
        return ok

    full_ok = trade_ok(np.abs(a - c_clip))
    same_side = (np.sign(a) * np.sign(c_clip) > 0) | (c_clip == 0)
    increase = np.where(same_side, np.maximum(np.abs(a) - np.abs(c_clip), 0.0), np.abs(a))
    inc_ok = trade_ok(increase)
    coded = (port & int(ReasonCode.FORCED_DERISK)) != 0
    fail(strict_in & ~full_ok, "trade limits breached with the current book inside the limits")
    outside = live & ~loose_in
    fail(outside & ~coded, "current book outside the hard limits but FORCED_DERISK not coded")
    fail(outside & ~inc_ok, "forced de-risk: the risk-increasing trade breaks the trade limits")
    band = live & loose_in & ~strict_in
    fail(band & ~np.where(coded, inc_ok, full_ok), "trade limits breached (boundary band)")
    return InvariantReport(count, tuple(msgs), breached)
