"""``check_invariants``: the post-risk invariants, verified independently of the chain.

The checker walks the registry of limits (``gates.registry.LIMITS``) but measures every
limit with its own code (``HARD_CHECKS``, ``TRADE_CHECKS``, ``STRATEGY_CHECKS``), written
from the definitions rather than shared with the gates, and a looser tolerance (1e-9).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocgym.costs import CostModel, expected_cost
from allocgym.data import NO_SECTOR
from allocgym.errors import RequestError
from allocgym.ranges import RANGES
from allocgym.regime import REGIME_LABELS
from allocgym.risk.codes import ReasonCode
from allocgym.risk.context import GateContext, GateResult
from allocgym.risk.gates.registry import LIMITS
from allocgym.risk.kernels import BIG, MAX_ABS_BETA, MAX_ABS_LOADING
from allocgym.risk.limits import MIN_MULTIPLIER, RiskLimits

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


class _Failures:
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


def _within(value: Any, limit: Any, mag: Any) -> np.ndarray:
    """``value <= limit`` within a tolerance relative to ``limit + mag``: a measure must not
    overflow to inf (its magnitude, and the tolerance with it, would be inf too)."""
    return np.asarray(value <= limit + _CHECK_RTOL * (limit + mag) + _CHECK_ATOL)


@dataclass(eq=False)
class _Env:
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


def _multiplier(
    limits: RiskLimits, regime: np.ndarray, table: tuple[float, ...], default: float
) -> np.ndarray:
    """Known label -> its entry, else the default; clamped, and 0 below ``MIN_MULTIPLIER``."""
    known = (regime >= 0) & (regime < len(REGIME_LABELS))
    raw = np.where(known, np.asarray(table)[np.where(known, regime, 0)], default)
    clamped = np.minimum(np.maximum(raw, limits.min_multiplier), limits.max_multiplier)
    return np.where(clamped < MIN_MULTIPLIER, 0.0, clamped)


def _inside(name: str, x: np.ndarray) -> np.ndarray:
    """``x`` finite and inside the physical range ``name`` (``allocgym.ranges``)."""
    return ~RANGES[name].outside(x)


def _usable(tradable, price, adv, vol, spread) -> np.ndarray:  # type: ignore[no-untyped-def]
    with np.errstate(invalid="ignore"):
        return (
            tradable
            & _inside("price", price)
            & _inside("adv_notional", adv)
            & np.isfinite(vol)
            & (vol >= 0)
            & _inside("spread_bps", spread)
        )


# ----------------------------------------------------------------------------- limit checks
# One function per registry entry, from the limit's definition (not the gates' code).
# Hard limits: (name, value, limit, magnitude) per portfolio for a book ``w``.

Measured = list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]


def _long_only(w: np.ndarray, e: _Env) -> Measured:
    if not e.limits.long_only:
        return []
    zero = np.zeros(e.n)
    return [("long-only", np.maximum(-w, 0).max(axis=1, initial=0), zero, zero)]


def _symbol_cap(w: np.ndarray, e: _Env) -> Measured:
    aw, cap = np.abs(w), e.limits.max_symbol_weight * e.capacity_m
    worst = (aw - cap[:, None]).max(axis=1, initial=-np.inf)
    return [("symbol cap", worst, np.zeros(e.n), cap + aw.max(axis=1, initial=0))]


def _symbol_notional(w: np.ndarray, e: _Env) -> Measured:
    if e.limits.max_symbol_notional is None:
        return []
    worst = (np.abs(w) * e.eq[:, None]).max(axis=1, initial=0)
    return [("symbol notional cap", worst, e.limits.max_symbol_notional * e.capacity_m, worst)]


def _sector(w: np.ndarray, e: _Env) -> Measured:
    cap = np.full(e.n, e.limits.max_sector_gross)
    out = []
    for s in np.unique(e.sectors[e.sectors != NO_SECTOR]):
        g = np.abs(w[:, e.sectors == s]).sum(axis=1)
        out.append((f"sector {s} gross", g, cap, g))
    return out


def _net(w: np.ndarray, e: _Env) -> Measured:
    return [("net cap", np.abs(w.sum(axis=1)), np.full(e.n, e.limits.max_net), np.abs(w).sum(1))]


def _beta(w: np.ndarray, e: _Env) -> Measured:
    if e.betas is None or e.limits.beta_tolerance is None:
        return []
    bw = e.betas * w
    tol = np.full(e.n, e.limits.beta_tolerance)
    return [("beta", np.abs(bw.sum(axis=1)), tol, np.abs(bw).sum(axis=1))]


def _gross(w: np.ndarray, e: _Env) -> Measured:
    gross = np.abs(w).sum(axis=1)
    return [("gross cap", gross, e.limits.max_gross * e.budget_m, gross)]


def _gross_notional(w: np.ndarray, e: _Env) -> Measured:
    if e.limits.max_gross_notional is None:
        return []
    notional = np.abs(w).sum(axis=1) * e.eq
    return [("gross notional cap", notional, np.full(e.n, e.limits.max_gross_notional), notional)]


def _factor(w: np.ndarray, e: _Env) -> Measured:
    if e.loadings is None or e.limits.max_factor_exposure is None:
        return []
    cap = np.full(e.n, e.limits.max_factor_exposure)
    out = []
    for k in range(e.loadings.shape[2]):
        bw = e.loadings[:, :, k] * w
        out.append((f"factor {k} exposure", np.abs(bw.sum(axis=1)), cap, np.abs(bw).sum(axis=1)))
    return out


HARD_CHECKS: dict[ReasonCode, Callable[[np.ndarray, _Env], Measured]] = {
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


def _participation(t: np.ndarray, e: _Env) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        cap = e.limits.max_participation * e.capacity_m[:, None] * (e.adv / e.eq[:, None])
    cap = np.where(e.usable & (e.adv > 0) & (e.capacity_m > 0)[:, None], cap, 0.0)
    return _within(t, _left(cap, e.filled), t).all(axis=1)


def _symbol_turnover(t: np.ndarray, e: _Env) -> np.ndarray:
    if e.limits.max_symbol_turnover is None:
        return np.ones(e.n, dtype=bool)
    cap = e.limits.max_symbol_turnover * e.capacity_m[:, None]
    return _within(t, _left(cap, e.filled), t).all(axis=1)


def _symbol_slippage(t: np.ndarray, e: _Env) -> np.ndarray:
    if e.limits.symbol_slippage_budget_bps is None:
        return np.ones(e.n, dtype=bool)
    with np.errstate(invalid="ignore"):
        cost = expected_cost(t, e.eq, e.adv, e.vol, e.spread, e.cost_model)
    budget = e.limits.symbol_slippage_budget_bps / 1e4 * e.capacity_m[:, None]
    return _within(cost, budget, cost).all(axis=1)


def _turnover(t: np.ndarray, e: _Env) -> np.ndarray:
    turnover = t.sum(axis=1)
    return _within(turnover, _left(e.limits.max_turnover, e.filled.sum(axis=1)), turnover)


def _slippage(t: np.ndarray, e: _Env) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        cost = expected_cost(t, e.eq, e.adv, e.vol, e.spread, e.cost_model).sum(axis=1)
    return _within(cost, e.limits.slippage_budget_bps / 1e4, cost)


TRADE_CHECKS: dict[ReasonCode, Callable[[np.ndarray, _Env], np.ndarray]] = {
    ReasonCode.PARTICIPATION_CAP: _participation,
    ReasonCode.SYMBOL_TURNOVER_CAP: _symbol_turnover,
    ReasonCode.SYMBOL_SLIPPAGE_BUDGET: _symbol_slippage,
    ReasonCode.TURNOVER_CAP: _turnover,
    ReasonCode.SLIPPAGE_BUDGET: _slippage,
}


def _family_capacity(sw: np.ndarray, e: _Env) -> np.ndarray:
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
        for name, ref in refs.items():
            if ref is not None:
                ratio = mean[name] / ref if name == "liq" else ref / mean[name]
                factor = factor * clamp(ratio)
    return np.where(held > 0, clamp(factor), 1.0)


def _strategy(result: GateResult, sw: np.ndarray, e: _Env, out: _Failures) -> np.ndarray:
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
    return _within(contrib, cap, contrib).all(axis=1)


STRATEGY_CHECKS = {ReasonCode.STRATEGY_CAP: _strategy}


def _stage(stage: str) -> tuple[ReasonCode, ...]:
    return tuple(s.code for s in LIMITS if s.stage == stage)


def _hard(w: np.ndarray, e: _Env) -> Measured:
    """Every hard limit of the registry, measured on ``w``."""
    return [m for code in _stage("hard") for m in HARD_CHECKS[code](w, e)]


def _trade_ok(trade: np.ndarray, slack: np.ndarray, e: _Env) -> np.ndarray:
    """Every trade limit of the registry on a nonnegative trade (less the float slack)."""
    t = np.maximum(trade - slack, 0.0)
    ok = np.ones(e.n, dtype=bool)
    for code in _stage("trade"):
        ok &= TRADE_CHECKS[code](t, e)
    return ok


# ----------------------------------------------------------------------------- sections


def _check_result_shape(result: GateResult, n: int, m: int, out: _Failures) -> bool:
    """Reason bitmasks and clipped amounts well-formed (False: nothing else is checked)."""
    sym, port = np.asarray(result.symbol_reasons), np.asarray(result.portfolio_reasons)
    if sym.dtype != np.int64 or sym.shape != (n, m) or port.dtype != np.int64 or port.shape != (n,):
        out.fail(np.ones(n, bool), "reason bitmasks must be int64 of shape (n, m) and (n,)")
        return False
    known = 0
    for code in ReasonCode:
        known |= int(code)
    out.fail(((sym & ~known) != 0).any(axis=1) | ((port & ~known) != 0), "unknown reason bits")
    for name, values in result.clipped.items():
        v = np.asarray(values)
        if name not in ReasonCode.__members__ or v.shape != (n,):
            out.fail(
                np.ones(n, bool), f"clipped[{name!r}] is not a (n_envs,) array of a ReasonCode"
            )
            continue
        out.fail(~(np.isfinite(v) & (v >= 0)), f"clipped[{name!r}] not finite and >= 0", v)
    return True


def _read_context(
    ctx: GateContext, limits: RiskLimits, cost_model: CostModel, n: int, m: int
) -> tuple[_Env, np.ndarray, np.ndarray, np.ndarray]:
    """The checker's view of ``ctx``; also (kill, reduce, unreadable) per portfolio."""
    cur = np.asarray(ctx.current_weights, dtype=np.float64)
    eq = np.broadcast_to(np.asarray(ctx.equity, dtype=np.float64), (n,))
    adv = np.broadcast_to(np.asarray(ctx.adv_notional, dtype=np.float64), (n, m))
    vol = np.broadcast_to(np.asarray(ctx.volatility, dtype=np.float64), (n, m))
    spread = np.broadcast_to(np.asarray(ctx.spread_bps, dtype=np.float64), (n, m))
    price = np.broadcast_to(np.asarray(ctx.prices, dtype=np.float64), (n, m))
    tradable = np.broadcast_to(np.asarray(ctx.tradable, dtype=bool), (n, m))
    regime = np.broadcast_to(np.asarray(ctx.regime, dtype=np.int64), (n,))
    kill = np.zeros(n, bool) | limits.kill_switch
    if ctx.kill_switch is not None:
        kill = kill | np.broadcast_to(np.asarray(ctx.kill_switch, dtype=bool), (n,))
    reduce = np.zeros(n, bool) | limits.reduce_only
    if ctx.reduce_only is not None:
        reduce = reduce | np.broadcast_to(np.asarray(ctx.reduce_only, dtype=bool), (n,))
    betas = None
    if limits.beta_tolerance is not None:
        betas = np.broadcast_to(np.asarray(ctx.betas, dtype=np.float64), (n, m))
    loadings = None
    if limits.max_factor_exposure is not None:
        if ctx.factor_loadings is None:
            raise RequestError(
                "check_invariants: risk.max_factor_exposure is set but "
                "GateContext.factor_loadings is None (the chain refuses such a context too)"
            )
        raw = np.asarray(ctx.factor_loadings, dtype=np.float64)
        loadings = np.broadcast_to(raw, (n, m, raw.shape[-1]))
    with np.errstate(invalid="ignore"):
        unreadable = ~np.isfinite(cur).all(axis=1) | ~_inside("equity", eq)
        if betas is not None:
            unreadable |= ~(np.isfinite(betas) & (np.abs(betas) <= MAX_ABS_BETA)).all(axis=1)
        if loadings is not None:
            sane = np.isfinite(loadings) & (np.abs(loadings) <= MAX_ABS_LOADING)
            unreadable |= ~sane.all(axis=(1, 2))
    usable = _usable(tradable, price, adv, vol, spread)
    eq_read = np.where(unreadable, 1.0, eq)
    filled = np.zeros((n, m))
    if ctx.recent_fills is not None:
        notional = np.broadcast_to(np.asarray(ctx.recent_fills, dtype=np.float64), (n, m))
        filled = np.where(unreadable[:, None], 0.0, notional / eq_read[:, None])
    env = _Env(
        limits=limits,
        cost_model=cost_model,
        n=n,
        cur=np.where(unreadable[:, None], 0.0, cur),
        eq=eq_read,
        adv=np.where(usable, adv, 1.0),
        vol=np.where(usable, vol, 0.0),
        spread=np.where(usable, spread, 0.0),
        usable=usable,
        sectors=np.asarray(ctx.sector_ids, dtype=np.int64),
        betas=betas,
        loadings=None if loadings is None else np.where(unreadable[:, None, None], 0.0, loadings),
        budget_m=_multiplier(
            limits, regime, limits.regime_budget_multipliers, limits.default_budget_multiplier
        ),
        capacity_m=_multiplier(
            limits, regime, limits.regime_capacity_multipliers, limits.default_capacity_multiplier
        ),
        tilt=np.stack(
            [
                _multiplier(limits, regime, column, 1.0)
                for column in zip(*limits.regime_strategy_tilts, strict=True)
            ],
            axis=1,
        ),
        live=~kill & ~unreadable,
        filled=filled,
    )
    return env, kill, reduce, unreadable


def _check_coded_inputs(
    a: np.ndarray,
    result: GateResult,
    ctx: GateContext,
    kill: np.ndarray,
    unreadable: np.ndarray,
    out: _Failures,
) -> np.ndarray:
    """Non-finite proposals, kill switch and unreadable books coded and handled; every
    changed weight carries a reason. Returns the rows with a non-finite proposal."""
    sym, port = np.asarray(result.symbol_reasons), np.asarray(result.portfolio_reasons)
    inv, killc = int(ReasonCode.INVALID_INPUT), int(ReasonCode.KILL_SWITCH)
    prop = np.asarray(result.proposed, dtype=np.float64)
    nonfinite = ~np.isfinite(prop)
    bad_prop = nonfinite.any(axis=1)
    if ctx.strategy_weights is not None:
        sw = np.asarray(ctx.strategy_weights, np.float64)
        bad_prop = bad_prop | ~np.isfinite(sw).all(axis=(1, 2))
    out.fail(bad_prop & ((port & inv) == 0), "non-finite proposal not coded INVALID_INPUT")
    out.fail(
        (nonfinite & ((sym & inv) == 0)).any(axis=1), "non-finite entry not coded INVALID_INPUT"
    )
    flat = (a == 0).all(axis=1)
    out.fail(kill & ~flat, "kill switch engaged but the book is not flat")
    out.fail(kill & ((sym & killc) == 0).any(axis=1), "kill switch: a symbol lacks KILL_SWITCH")
    out.fail(kill & ((port & killc) == 0), "kill switch: portfolio lacks KILL_SWITCH")
    out.fail(unreadable & ~flat, "unreadable current book/equity/betas but the book is not flat")
    out.fail(unreadable & ((port & inv) == 0), "unreadable input not coded INVALID_INPUT")
    changed = (a != prop) & ~nonfinite
    out.fail((changed & (sym == 0)).any(axis=1), "a weight changed without a reason code")
    return bad_prop


def _check_hard_limits(a: np.ndarray, port: np.ndarray, e: _Env, out: _Failures) -> None:
    """Every hard limit on the approved book. Non-tradable weights are held (execution
    cannot move them), so an excess entirely due to them (the held names alone break the
    limit) is accepted where the portfolio is coded NOT_TRADABLE."""
    held_cur = np.clip(e.cur, -BIG, BIG)  # the chain reads a book's entries clipped so
    out.fail(
        e.live & (~e.usable & (a != held_cur)).any(axis=1),
        "a non-tradable weight changed (approved != current)",
    )
    with np.errstate(over="ignore", invalid="ignore"):
        held_only = {name: rest for name, *rest in _hard(np.where(e.usable, 0.0, held_cur), e)}
    coded_nt = (port & int(ReasonCode.NOT_TRADABLE)) != 0
    for name, value, limit, mag in _hard(a, e):
        h_value, h_limit, h_mag = held_only[name]
        excused = coded_nt & ~_within(h_value, h_limit, h_mag)
        ok = _within(value, limit, mag)
        out.fail(e.live & ~ok & ~excused, f"{name} breached: value - limit", value - limit)


def _check_trade_limits(a: np.ndarray, port: np.ndarray, e: _Env, out: _Failures) -> None:
    """Trade limits on the whole trade when the current book is inside the hard limits;
    outside, FORCED_DERISK coded and the limits on the risk-increasing part of the trade.
    On the boundary band (outside exactly, inside within tolerance) either is accepted."""
    c = np.clip(e.cur, -BIG, BIG)
    strict_in = np.ones(e.n, dtype=bool)
    loose_in = np.ones(e.n, dtype=bool)
    for _, value, limit, mag in _hard(c, e):
        strict_in &= np.asarray(value <= limit)
        loose_in &= _within(value, limit, mag)
    strict_in &= e.live
    slack = _TRADE_EPS * (np.abs(a) + np.abs(c))
    full_ok = _trade_ok(np.abs(a - c), slack, e)
    same_side = (np.sign(a) * np.sign(c) > 0) | (c == 0)
    increase = np.where(same_side, np.maximum(np.abs(a) - np.abs(c), 0.0), np.abs(a))
    inc_ok = _trade_ok(increase, slack, e)
    coded = (port & int(ReasonCode.FORCED_DERISK)) != 0
    out.fail(strict_in & ~full_ok, "trade limits breached with the current book inside the limits")
    outside = e.live & ~loose_in
    out.fail(outside & ~coded, "current book outside the hard limits but FORCED_DERISK not coded")
    out.fail(outside & ~inc_ok, "forced de-risk: the risk-increasing trade breaks the trade limits")
    band = e.live & loose_in & ~strict_in
    out.fail(band & ~np.where(coded, inc_ok, full_ok), "trade limits breached (boundary band)")


def check_invariants(
    result: GateResult,
    ctx: GateContext,
    limits: RiskLimits,
    cost_model: CostModel | None = None,
) -> InvariantReport:
    """Verify the design's post-risk invariants on a ``GateResult``, independently of the
    chain.

    Checked per portfolio (relative tolerance 1e-9): finite approved weights; kill switch
    -> flat and every symbol ``KILL_SWITCH``; unreadable current book/equity/betas -> flat
    and ``INVALID_INPUT``; any non-finite proposal entry -> ``INVALID_INPUT`` on the
    portfolio and that symbol; every limit of the registry: long-only; ``|w_i|`` and
    ``|w_i| x equity`` caps (x capacity multiplier); sector gross; ``|net|``;
    ``|beta^T w|``; gross (x budget multiplier); gross notional; ``|(B^T w)_k|`` per
    factor; strategy contributions
    (``strategy_scale x strategy_weights``) against each family's budget (base x regime
    budget multiplier x regime tilt x capacity factor); reduce-only (no ``|w_i|`` increase, no sign
    flip); every changed weight carries a reason; a non-tradable weight equals the current
    one (entries clipped to +-1e150) and a hard-limit excess is accepted only where the
    held (non-tradable) names alone break that limit and the portfolio is coded
    ``NOT_TRADABLE``. Trade limits (participation vs ADV with non-tradable symbols at 0,
    turnover, slippage via :func:`~allocgym.costs.expected_cost`, and the optional
    per-symbol turnover and slippage budgets, x capacity multiplier; participation and
    both turnovers less what ``ctx.recent_fills`` already traded) must hold on the whole
    trade when the current book is inside the hard limits. When it is outside, the
    portfolio must carry ``FORCED_DERISK`` and the trade limits must hold on the
    risk-increasing part of the trade (``max(|w_new| - |w_cur|, 0)``, or ``|w_new|`` on a
    sign flip). On the boundary band (outside exactly, inside within tolerance) either
    reading is accepted.

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
    a = np.asarray(result.approved)
    n, m = a.shape
    out = _Failures(n)
    if not _check_result_shape(result, n, m, out):
        return out.report()
    model = CostModel() if cost_model is None else cost_model
    e, kill, reduce, unreadable = _read_context(ctx, limits, model, n, m)
    out.fail(~np.isfinite(a).all(axis=1), "approved weights are not finite")
    a = np.where(np.isfinite(a), a, 0.0)
    bad_prop = _check_coded_inputs(a, result, ctx, kill, unreadable, out)
    port = np.asarray(result.portfolio_reasons)

    _check_hard_limits(a, port, e, out)
    if ctx.strategy_weights is not None:
        sw = np.asarray(ctx.strategy_weights, np.float64)
        for code in _stage("strategy"):
            ok = STRATEGY_CHECKS[code](result, sw, e, out)
            out.fail(e.live & ~bad_prop & ~ok, "strategy contribution above its cap")

    grow = np.abs(a) > np.abs(e.cur) * (1 + _CHECK_RTOL)
    flip = (np.sign(a) * np.sign(e.cur) < 0) | ((e.cur == 0) & (a != 0))
    out.fail(
        e.live & reduce & (grow | flip).any(axis=1), "reduce-only: |w| grew or the sign flipped"
    )

    _check_trade_limits(a, port, e, out)
    return out.report()
