"""``check_invariants``: the post-risk invariants, verified independently of the chain.

The checker walks the registry of limits (``gates.registry.LIMITS``) but measures every
limit with its own code (:mod:`allocgym.risk.checks`), written from the definitions rather
than shared with the gates, and a looser tolerance (1e-9).
"""

from __future__ import annotations

import numpy as np

from allocgym.costs import CostModel
from allocgym.errors import RequestError
from allocgym.risk.checks import (
    CHECK_RTOL,
    STRATEGY_CHECKS,
    TRADE_EPS,
    CheckEnv,
    Failures,
    InvariantReport,
    hard_measures,
    in_range,
    multiplier,
    stage_codes,
    trade_ok,
    usable_names,
    within,
)
from allocgym.risk.codes import ReasonCode
from allocgym.risk.context import GateContext, GateResult
from allocgym.risk.kernels import BIG, MAX_ABS_BETA, MAX_ABS_LOADING
from allocgym.risk.limits import RiskLimits

__all__ = ["InvariantReport", "check_invariants"]


def _check_result_shape(result: GateResult, n: int, m: int, out: Failures) -> bool:
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
) -> tuple[CheckEnv, np.ndarray, np.ndarray, np.ndarray]:
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
        unreadable = ~np.isfinite(cur).all(axis=1) | ~in_range("equity", eq)
        if betas is not None:
            unreadable |= ~(np.isfinite(betas) & (np.abs(betas) <= MAX_ABS_BETA)).all(axis=1)
        if loadings is not None:
            sane = np.isfinite(loadings) & (np.abs(loadings) <= MAX_ABS_LOADING)
            unreadable |= ~sane.all(axis=(1, 2))
    usable = usable_names(tradable, price, adv, vol, spread)
    eq_read = np.where(unreadable, 1.0, eq)
    filled = np.zeros((n, m))
    if ctx.recent_fills is not None:
        notional = np.broadcast_to(np.asarray(ctx.recent_fills, dtype=np.float64), (n, m))
        filled = np.where(unreadable[:, None], 0.0, notional / eq_read[:, None])
    env = CheckEnv(
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
        budget_m=multiplier(
            limits, regime, limits.regime_budget_multipliers, limits.default_budget_multiplier
        ),
        capacity_m=multiplier(
            limits, regime, limits.regime_capacity_multipliers, limits.default_capacity_multiplier
        ),
        tilt=np.stack(
            [
                multiplier(limits, regime, column, 1.0)
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
    out: Failures,
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
    # the chain reads a proposal's entries clipped to +-BIG, as it reads a book's: a held
    # name proposed at 2e150 and held at its clipped 1e150 did not change
    changed = (a != np.clip(prop, -BIG, BIG)) & ~nonfinite
    out.fail((changed & (sym == 0)).any(axis=1), "a weight changed without a reason code")
    return bad_prop


def _check_hard_limits(a: np.ndarray, port: np.ndarray, e: CheckEnv, out: Failures) -> None:
    """Every hard limit on the approved book. Non-tradable weights are held (execution
    cannot move them), so an excess entirely due to them (the held names alone break the
    limit) is accepted where the portfolio is coded NOT_TRADABLE."""
    held_cur = np.clip(e.cur, -BIG, BIG)  # the chain reads a book's entries clipped so
    out.fail(
        e.live & (~e.usable & (a != held_cur)).any(axis=1),
        "a non-tradable weight changed (approved != current)",
    )
    with np.errstate(over="ignore", invalid="ignore"):
        held_only = {
            name: rest for name, *rest in hard_measures(np.where(e.usable, 0.0, held_cur), e)
        }
    coded_nt = (port & int(ReasonCode.NOT_TRADABLE)) != 0
    for name, value, limit, mag in hard_measures(a, e):
        h_value, h_limit, h_mag = held_only[name]
        excused = coded_nt & ~within(h_value, h_limit, h_mag)
        ok = within(value, limit, mag)
        out.fail(e.live & ~ok & ~excused, f"{name} breached: value - limit", value - limit)


def _check_trade_limits(a: np.ndarray, port: np.ndarray, e: CheckEnv, out: Failures) -> None:
    """Trade limits on the whole trade when the current book is inside the hard limits;
    outside, FORCED_DERISK coded and the limits on the risk-increasing part of the trade.
    On the boundary band (outside exactly, inside within tolerance) either is accepted."""
    c = np.clip(e.cur, -BIG, BIG)
    strict_in = np.ones(e.n, dtype=bool)
    loose_in = np.ones(e.n, dtype=bool)
    for _, value, limit, mag in hard_measures(c, e):
        strict_in &= np.asarray(value <= limit)
        loose_in &= within(value, limit, mag)
    strict_in &= e.live
    slack = TRADE_EPS * (np.abs(a) + np.abs(c))
    full_ok = trade_ok(np.abs(a - c), slack, e)
    same_side = (np.sign(a) * np.sign(c) > 0) | (c == 0)
    increase = np.where(same_side, np.maximum(np.abs(a) - np.abs(c), 0.0), np.abs(a))
    inc_ok = trade_ok(increase, slack, e)
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
    out = Failures(n)
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
        for code in stage_codes("strategy"):
            ok = STRATEGY_CHECKS[code](result, sw, e, out)
            out.fail(e.live & ~bad_prop & ~ok, "strategy contribution above its cap")

    grow = np.abs(a) > np.abs(e.cur) * (1 + CHECK_RTOL)
    flip = (np.sign(a) * np.sign(e.cur) < 0) | ((e.cur == 0) & (a != 0))
    out.fail(
        e.live & reduce & (grow | flip).any(axis=1), "reduce-only: |w| grew or the sign flipped"
    )

    _check_trade_limits(a, port, e, out)
    return out.report()
