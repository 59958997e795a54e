"""The invariant checker's own measure of each limit (``HARD_CHECKS``, ``TRADE_CHECKS``,
``STRATEGY_CHECKS``, one entry per registry limit), written from the limits' definitions
rather than shared with the gates, with a looser tolerance (1e-9); and the failure
collector. :func:`allocgym.risk.invariants.check_invariants` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocgym.costs import CostModel, expected_cost
from allocgym.data import NO_SECTOR
from allocgym.ranges import RANGES
from allocgym.regime import REGIME_LABELS
from allocgym.risk.codes import ReasonCode
from allocgym.risk.context import GateResult
from allocgym.risk.gates.registry import LIMITS
from allocgym.risk.kernels import ATOL, BIG
from allocgym.risk.limits import MIN_MULTIPLIER, RiskLimits

CHECK_RTOL = 1e-9  # tolerance of the checker's limit comparisons (relative)
# absolute floor: differences this small are float underflow; above the chain's own floor
# (ATOL, in weight) times the largest equity, since some limits are checked in currency
_CHECK_ATOL = 1e5 * ATOL * RANGES["equity"].high
TRADE_EPS = 1e-11  # float slack of a trade computed as a difference of two books


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


class Failures:
    """Failures collected so far: count, messages (50 per invariant), portfolios hit."""

    def __init__(self, n: int) -> None:
        self.count = 0
        self.messages: list[str] = []
        self.breached = np.zeros(n, dtype=bool)

    def fail(self, rows: np.ndarray, text: str, detail: Any = None) -> None:
        idx = np.flatnonzero(np.asarray(rows, dtype=bool))
        self.count += idx.size
        self.breached[idx] = True
        for b in idx[:50]:
            extra = "" if detail is None else f" ({np.asarray(detail)[b]})"
            self.messages.append(f"portfolio {b}: {text}{extra}")

    def report(self) -> InvariantReport:
        return InvariantReport(self.count, tuple(self.messages), self.breached)


def within(value: Any, limit: Any, mag: Any) -> np.ndarray:
    """``value <= limit`` within a tolerance relative to ``limit + mag``: a measure must not
    overflow to inf (its magnitude, and the tolerance with it, would be inf too)."""
    return np.asarray(value <= limit + CHECK_RTOL * (limit + mag) + _CHECK_ATOL)


@dataclass(eq=False)
class CheckEnv:
    """The context as the checker reads it (broadcast, unreadable rows zeroed)."""

    limits: RiskLimits
    cost_model: CostModel
    n: int
    cur: np.ndarray  # current book, 0 in unreadable rows
    eq: np.ndarray  # equity, 1 in unreadable rows
    adv: np.ndarray
    vol: np.ndarray
    spread: np.ndarray
    usable: np.ndarray  # tradable with finite, sane market data
    sectors: np.ndarray
    betas: np.ndarray | None
    loadings: np.ndarray | None  # (n, m, k) with the factor limit on, 0 in unreadable rows
    budget_m: np.ndarray  # regime multipliers, straight from the limits
    capacity_m: np.ndarray
    tilt: np.ndarray  # (n, n_families) regime tilt of each strategy family
    live: np.ndarray  # neither killed nor unreadable
    filled: np.ndarray  # (n, m) notional the bar's fills traded / equity, 0 without fills


def multiplier(
    limits: RiskLimits, regime: np.ndarray, table: tuple[float, ...], default: float
) -> np.ndarray:
    """Known label -> its entry, else the default; clamped, and 0 below ``MIN_MULTIPLIER``."""
    known = (regime >= 0) & (regime < len(REGIME_LABELS))
    raw = np.where(known, np.asarray(table)[np.where(known, regime, 0)], default)
    clamped = np.minimum(np.maximum(raw, limits.min_multiplier), limits.max_multiplier)
    return np.where(clamped < MIN_MULTIPLIER, 0.0, clamped)


def in_range(name: str, x: np.ndarray) -> np.ndarray:
    """``x`` finite and inside the physical range ``name`` (``allocgym.ranges``)."""
    return ~RANGES[name].outside(x)


def usable_names(tradable, price, adv, vol, spread) -> np.ndarray:  # type: ignore[no-untyped-def]
    with np.errstate(invalid="ignore"):
        return (
            tradable
            & in_range("price", price)
            & in_range("adv_notional", adv)
            & np.isfinite(vol)
            & (vol >= 0)
            & in_range("spread_bps", spread)
        )


# ----------------------------------------------------------------------------- limit checks
# One function per registry entry, from the limit's definition (not the gates' code).
# Hard limits: (name, value, limit, magnitude) per portfolio for a book ``w``.

Measured = list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]


def _long_only(w: np.ndarray, e: CheckEnv) -> Measured:
    if not e.limits.long_only:
        return []
    zero = np.zeros(e.n)
    return [("long-only", np.maximum(-w, 0).max(axis=1, initial=0), zero, zero)]


def _symbol_cap(w: np.ndarray, e: CheckEnv) -> Measured:
    aw, cap = np.abs(w), e.limits.max_symbol_weight * e.capacity_m
    worst = (aw - cap[:, None]).max(axis=1, initial=-np.inf)
    return [("symbol cap", worst, np.zeros(e.n), cap + aw.max(axis=1, initial=0))]


def _symbol_notional(w: np.ndarray, e: CheckEnv) -> Measured:
    if e.limits.max_symbol_notional is None:
        return []
    worst = (np.abs(w) * e.eq[:, None]).max(axis=1, initial=0)
    return [("symbol notional cap", worst, e.limits.max_symbol_notional * e.capacity_m, worst)]


def _sector(w: np.ndarray, e: CheckEnv) -> Measured:
    cap = np.full(e.n, e.limits.max_sector_gross)
    out = []
    for s in np.unique(e.sectors[e.sectors != NO_SECTOR]):
        g = np.abs(w[:, e.sectors == s]).sum(axis=1)
        out.append((f"sector {s} gross", g, cap, g))
    return out


def _net(w: np.ndarray, e: CheckEnv) -> Measured:
    return [("net cap", np.abs(w.sum(axis=1)), np.full(e.n, e.limits.max_net), np.abs(w).sum(1))]


def _beta(w: np.ndarray, e: CheckEnv) -> Measured:
    if e.betas is None or e.limits.beta_tolerance is None:
        return []
    bw = e.betas * w
    tol = np.full(e.n, e.limits.beta_tolerance)
    return [("beta", np.abs(bw.sum(axis=1)), tol, np.abs(bw).sum(axis=1))]


def _gross(w: np.ndarray, e: CheckEnv) -> Measured:
    gross = np.abs(w).sum(axis=1)
    return [("gross cap", gross, e.limits.max_gross * e.budget_m, gross)]


def _gross_notional(w: np.ndarray, e: CheckEnv) -> Measured:
    if e.limits.max_gross_notional is None:
        return []
    notional = np.abs(w).sum(axis=1) * e.eq
    return [("gross notional cap", notional, np.full(e.n, e.limits.max_gross_notional), notional)]


def _factor(w: np.ndarray, e: CheckEnv) -> Measured:
    if e.loadings is None or e.limits.max_factor_exposure is None:
        return []
    cap = np.full(e.n, e.limits.max_factor_exposure)
    out = []
    for k in range(e.loadings.shape[2]):
        bw = e.loadings[:, :, k] * w
        out.append((f"factor {k} exposure", np.abs(bw.sum(axis=1)), cap, np.abs(bw).sum(axis=1)))
    return out


HARD_CHECKS: dict[ReasonCode, Callable[[np.ndarray, CheckEnv], Measured]] = {
    ReasonCode.LONG_ONLY: _long_only,
    ReasonCode.SYMBOL_CAP: _symbol_cap,
    ReasonCode.SYMBOL_NOTIONAL_CAP: _symbol_notional,
    ReasonCode.SECTOR_CAP: _sector,
    ReasonCode.NET_CAP: _net,
    ReasonCode.BETA_LIMIT: _beta,
    ReasonCode.GROSS_CAP: _gross,
    ReasonCode.NOTIONAL_CAP: _gross_notional,
    ReasonCode.FACTOR_CAP: _factor,
}


# Trade limits: rows whose nonnegative trade size per symbol ``t`` is inside. What the
# bar's fills already traded (``e.filled``) is taken off the participation and turnover
# limits first: the trade may use the room left, none once the fills used it all.
def _left(limit: np.ndarray, used: np.ndarray) -> np.ndarray:
    return np.maximum(limit - used, 0.0)


def _participation(t: np.ndarray, e: CheckEnv) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        cap = e.limits.max_participation * e.capacity_m[:, None] * (e.adv / e.eq[:, None])
    cap = np.where(e.usable & (e.adv > 0) & (e.capacity_m > 0)[:, None], cap, 0.0)
    return within(t, _left(cap, e.filled), t).all(axis=1)


def _symbol_turnover(t: np.ndarray, e: CheckEnv) -> np.ndarray:
    if e.limits.max_symbol_turnover is None:
        return np.ones(e.n, dtype=bool)
    cap = e.limits.max_symbol_turnover * e.capacity_m[:, None]
    return within(t, _left(cap, e.filled), t).all(axis=1)


def _symbol_slippage(t: np.ndarray, e: CheckEnv) -> np.ndarray:
    if e.limits.symbol_slippage_budget_bps is None:
        return np.ones(e.n, dtype=bool)
    with np.errstate(invalid="ignore"):
        cost = expected_cost(t, e.eq, e.adv, e.vol, e.spread, e.cost_model)
    budget = e.limits.symbol_slippage_budget_bps / 1e4 * e.capacity_m[:, None]
    return (within(cost, budget, cost) & (cost < np.inf)).all(axis=1)


def _turnover(t: np.ndarray, e: CheckEnv) -> np.ndarray:
    turnover = t.sum(axis=1)
    return within(turnover, _left(e.limits.max_turnover, e.filled.sum(axis=1)), turnover)


def _slippage(t: np.ndarray, e: CheckEnv) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        cost = expected_cost(t, e.eq, e.adv, e.vol, e.spread, e.cost_model).sum(axis=1)
    return within(cost, e.limits.slippage_budget_bps / 1e4, cost) & (cost < np.inf)


TRADE_CHECKS: dict[ReasonCode, Callable[[np.ndarray, CheckEnv], np.ndarray]] = {
    ReasonCode.PARTICIPATION_CAP: _participation,
    ReasonCode.SYMBOL_TURNOVER_CAP: _symbol_turnover,
    ReasonCode.SYMBOL_SLIPPAGE_BUDGET: _symbol_slippage,
    ReasonCode.TURNOVER_CAP: _turnover,
    ReasonCode.SLIPPAGE_BUDGET: _slippage,
}


def _family_capacity(sw: np.ndarray, e: CheckEnv) -> np.ndarray:
    """(n, k) capacity factor of each family: the clamped product of the clamped ratios
    of the references to its |contribution|-weighted spread, volatility and ADV / equity
    over its usable names (1 without references or usable names)."""
    lim = e.limits
    factor = np.ones(sw.shape[:2])
    refs = {
        "spread": lim.strategy_capacity_spread_bps,
        "vol": lim.strategy_capacity_volatility,
        "liq": lim.strategy_capacity_adv_to_equity,
    }
    if all(v is None for v in refs.values()):
        return factor

    def clamp(v: np.ndarray) -> np.ndarray:
        c = np.minimum(np.maximum(v, lim.min_multiplier), lim.max_multiplier)
        return np.where(c < MIN_MULTIPLIER, 0.0, c)

    weight = np.abs(np.clip(sw, -BIG, BIG)) * e.usable[:, None, :]
    held = weight.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mean = {
            "spread": (weight * e.spread[:, None, :]).sum(axis=2) / held,
            "vol": (weight * e.vol[:, None, :]).sum(axis=2) / held,
            "liq": (weight * (e.adv / e.eq[:, None])[:, None, :]).sum(axis=2) / held,
        }
        zero = np.zeros(factor.shape, dtype=bool)
        for name, ref in refs.items():
            if ref is not None:
                ratio = mean[name] / ref if name == "liq" else ref / mean[name]
                zero |= clamp(ratio) == 0.0
                factor = factor * clamp(ratio)
    return np.where(held > 0, np.where(zero, 0.0, clamp(factor)), 1.0)


def _strategy(result: GateResult, sw: np.ndarray, e: CheckEnv, out: Failures) -> np.ndarray:
    """Rows whose scaled strategy contributions are within each family's budget:
    base x regime budget multiplier x regime tilt x capacity factor."""
    scale = result.strategy_scale
    k = sw.shape[1]
    if scale is None or np.shape(scale) != sw.shape[:2] or k > e.tilt.shape[1]:
        out.fail(e.live, "strategy_weights given but strategy_scale missing or misshaped")
        return np.ones(e.n, dtype=bool)
    # Entries clipped as the chain reads them, so no contribution overflows to inf.
    contrib = np.abs(np.asarray(scale)[:, :, None] * np.clip(sw, -BIG, BIG)).sum(axis=2)
    base = np.asarray(e.limits.strategy_budgets)[:k]
    cap = base * e.budget_m[:, None] * e.tilt[:, :k] * _family_capacity(sw, e)
    return within(contrib, cap, contrib).all(axis=1)


STRATEGY_CHECKS = {ReasonCode.STRATEGY_CAP: _strategy}


def stage_codes(stage: str) -> tuple[ReasonCode, ...]:
    return tuple(s.code for s in LIMITS if s.stage == stage)


def hard_measures(w: np.ndarray, e: CheckEnv) -> Measured:
    """Every hard limit of the registry, measured on ``w``."""
    return [m for code in stage_codes("hard") for m in HARD_CHECKS[code](w, e)]


def trade_ok(trade: np.ndarray, slack: np.ndarray, e: CheckEnv) -> np.ndarray:
    """Every trade limit of the registry on a nonnegative trade (less the float slack)."""
    t = np.maximum(trade - slack, 0.0)
    ok = np.ones(e.n, dtype=bool)
    for code in stage_codes("trade"):
        ok &= TRADE_CHECKS[code](t, e)
    return ok


# ----------------------------------------------------------------------------- sections
