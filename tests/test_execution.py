"""Execution policy: hand-computed bands, triggers, lot rounding and sides; no book ever
leaves the hard limits after execution (checked with ``allocgym.risk.check_invariants``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gate_books import gate_result as gate_of
from hypothesis import given, settings
from hypothesis import strategies as st

from allocgym.config import ExecutionConfig, config_from_dict
from allocgym.costs import CostModel
from allocgym.errors import ConfigError, InvariantBreach, RequestError
from allocgym.execution import (
    ExecutionParams,
    ExecutionPolicy,
    ExecutionResult,
    TriggerFlag,
    Triggers,
    trigger_inputs,
)
from allocgym.risk import (
    GateContext,
    GateResult,
    ReasonCode,
    RiskGateChain,
    RiskLimits,
    check_invariants,
)

BAND = int(ReasonCode.NO_TRADE_BAND)
FORCED_MASK = int(ReasonCode.FORCED_DERISK | ReasonCode.KILL_SWITCH)
E = 1e6


def ctx_of(cur, prices=(50.0, 100.0, 20.0), *, sectors=(0, 1, 2), **kw) -> GateContext:
    cur = np.atleast_2d(np.asarray(cur, dtype=np.float64))
    n, m = cur.shape
    return GateContext(
        current_weights=cur,
        equity=np.full(n, E),
        prices=np.broadcast_to(np.asarray(prices, dtype=np.float64), (n, m)).copy(),
        adv_notional=np.full((n, m), 1e9),
        volatility=np.full((n, m), 0.01),
        spread_bps=np.full((n, m), 2.0),
        sector_ids=np.asarray(sectors, dtype=np.int64),
        regime=np.zeros(n, dtype=np.int64),
        tradable=np.ones((n, m), dtype=bool),
        **kw,
    )


LOOSE = RiskLimits(max_symbol_weight=0.2, max_sector_gross=1.0, max_turnover=2.0)


def run(cur, app, params=None, limits=LOOSE, triggers=None, **ctx_kw) -> ExecutionResult:
    pol = ExecutionPolicy(params or ExecutionParams(), limits)
    return pol.apply(gate_of(app), ctx_of(cur, **ctx_kw), triggers)


def executed_as_gate(ex: ExecutionResult, gate: GateResult) -> GateResult:
    """The executed book in a GateResult, for ``check_invariants``, against the original
    proposal: the checker then verifies the limits, the kill switch, the trade limits and
    that every weight that differs from the proposal carries a reason (a gate code,
    ``NO_TRADE_BAND`` or ``LOT_ROUNDING``)."""
    return GateResult(
        approved=ex.target_weights,
        symbol_reasons=ex.reasons,
        portfolio_reasons=ex.portfolio_reasons,
        clipped=gate.clipped,
        proposed=gate.proposed,
        strategy_scale=gate.strategy_scale,
    )


# ----------------------------------------------------------------------------- bands


def test_within_every_band_nothing_trades() -> None:
    cur = [0.10, 0.10, 0.10]
    r = run(cur, [0.103, 0.097, 0.10])  # |d| 0.003 <= tau 0.005, L1 0.006 <= 0.01
    assert r.target_weights.tobytes() == np.array([cur]).tobytes()
    assert (r.delta_qty == 0).all() and (r.side == 0).all()
    assert r.traded.tolist() == [False]
    assert r.suppressed.tolist() == [[True, True, False]]
    assert (r.reasons & BAND).tolist() == [[BAND, BAND, 0]]
    assert r.portfolio_reasons[0] & BAND
    assert r.trigger_flags.tolist() == [int(TriggerFlag.SCHEDULED)]


def test_name_drift_trades_only_that_name() -> None:
    # d = [+0.007, 0, -0.003]: L1 0.010 is not > 0.01; only name 0 is beyond tau 0.005
    r = run([0.10, 0.10, 0.05], [0.107, 0.10, 0.047])
    assert r.delta_qty.tolist() == [[140.0, 0.0, 0.0]]  # 0.007 * 1e6 / 50
    assert r.side.tolist() == [[1, 0, 0]]
    assert r.target_weights[0, 2] == 0.05
    assert r.target_weights[0, 0] == pytest.approx(0.107, abs=1e-15)
    assert r.suppressed.tolist() == [[False, False, True]]
    assert (r.reasons & BAND).tolist() == [[0, 0, BAND]]
    assert r.trigger_flags[0] == TriggerFlag.NAME_DRIFT | TriggerFlag.SCHEDULED


def test_portfolio_drift_rebalances_every_name() -> None:
    # no name beyond 0.005 but L1 = 0.004 + 0.004 + 0.003 = 0.011 > 0.01
    r = run([0.10, 0.10, 0.05], [0.104, 0.096, 0.047])
    assert r.delta_qty.tolist() == [[80.0, -40.0, -150.0]]
    assert r.side.tolist() == [[1, -1, -1]]
    assert not r.suppressed.any() and not (r.reasons & BAND).any()
    assert r.trigger_flags[0] == TriggerFlag.PORTFOLIO_DRIFT | TriggerFlag.SCHEDULED
    assert r.target_weights == pytest.approx(np.array([[0.104, 0.096, 0.047]]), abs=1e-15)


def test_per_name_bands_and_band_thresholds_are_used() -> None:
    cur, app = [0.10, 0.10, 0.05], [0.104, 0.096, 0.047]
    wide = ExecutionParams(portfolio_drift_threshold=0.05)
    assert not run(cur, app, wide).traded[0]
    per_name = ExecutionParams(
        name_drift_threshold=np.array([0.001, 0.01, 0.01]), portfolio_drift_threshold=0.05
    )
    assert run(cur, app, per_name).side.tolist() == [[1, 0, 0]]


def test_band_lifted_when_suppression_would_breach_gross() -> None:
    limits = LOOSE.replace(max_gross=0.26)
    params = ExecutionParams(portfolio_drift_threshold=0.02)
    # name 0 buys 0.0055 (> tau); suppressing the small sells would leave gross 0.2655
    r = run([0.10, 0.10, 0.06], [0.1055, 0.0975, 0.057], params, limits)
    assert r.trigger_flags[0] & TriggerFlag.BAND_LIFTED
    assert not r.suppressed.any()
    assert r.delta_qty.tolist() == [[110.0, -25.0, -150.0]]
    assert np.abs(r.target_weights).sum() <= 0.26 + 1e-12
    # with room under the cap the same sells stay suppressed
    r2 = run([0.10, 0.10, 0.06], [0.1055, 0.0975, 0.057], params, LOOSE)
    assert r2.suppressed.tolist() == [[False, True, True]]


# ----------------------------------------------------------------------------- triggers


def test_scheduled_only_waits_for_a_window_or_an_override() -> None:
    params = ExecutionParams(scheduled_only=True)
    cur, app = [0.10, 0.10, 0.05], [0.104, 0.096, 0.047]
    off = run(cur, app, params, triggers=Triggers(scheduled=np.array([False])))
    assert not off.traded[0] and off.suppressed.tolist() == [[True, True, True]]
    on = run(cur, app, params, triggers=Triggers(scheduled=np.array([True])))
    assert on.delta_qty.tolist() == [[80.0, -40.0, -150.0]]
    not_only = run(cur, app, ExecutionParams(), triggers=Triggers(scheduled=np.array([False])))
    assert not_only.traded[0]


@pytest.mark.parametrize(
    ("triggers", "flag"),
    [
        (Triggers(vol_ratio=np.array([2.5])), TriggerFlag.VOL_SPIKE),
        (Triggers(spread_ratio=np.array([[1.0, 3.0, 1.0]])), TriggerFlag.SPREAD_BLOWOUT),
        (Triggers(kill_switch=np.array([True])), TriggerFlag.KILL_SWITCH),
    ],
)
def test_risk_overrides_rebalance_inside_the_bands(triggers: Triggers, flag: TriggerFlag) -> None:
    params = ExecutionParams(scheduled_only=True)
    trig = dataclasses.replace(triggers, scheduled=np.array([False]))
    r = run([0.10, 0.10, 0.10], [0.103, 0.097, 0.10], params, triggers=trig)
    assert r.trigger_flags[0] & flag
    assert r.delta_qty.tolist() == [[60.0, -30.0, 0.0]]
    assert not r.suppressed.any()


def test_override_thresholds_are_used() -> None:
    trig = Triggers(vol_ratio=np.array([2.5]), spread_ratio=np.array([2.5]))
    strict = ExecutionParams(vol_spike_ratio=3.0, spread_blowout_ratio=3.0)
    assert not run([0.10, 0.10, 0.10], [0.103, 0.097, 0.10], strict, triggers=trig).traded[0]
    loose = ExecutionParams(vol_spike_ratio=3.0, spread_blowout_ratio=2.0)
    assert run([0.10, 0.10, 0.10], [0.103, 0.097, 0.10], loose, triggers=trig).traded[0]


def test_trigger_inputs_hand_computed() -> None:
    params = ExecutionParams(vol_short_window=5, vol_long_window=10, spread_window=4)
    # market (mean) returns: five of +-1% then five of +-3% -> short std / long std
    m = np.array([0.01, -0.01] * 2 + [0.01] + [0.03, -0.03] * 2 + [0.03])
    rets = np.repeat(m[None, :, None], 2, axis=2)
    short = np.std(m[-5:], ddof=1)
    long_ = np.std(m, ddof=1)
    spreads = np.array([[[10.0, 5.0], [10.0, 5.0], [10.0, 5.0], [40.0, 5.0]]])
    trig = trigger_inputs(rets, spreads, params, t=np.array([10]))
    assert trig.vol_ratio[0] == pytest.approx(short / long_, rel=1e-15)
    # per-name ratios 40/10 = 4 and 5/5 = 1; their median is 2.5
    assert trig.spread_ratio.tolist() == [2.5]
    assert trig.scheduled.tolist() == [True]
    every3 = dataclasses.replace(params, schedule_every=3)
    assert trigger_inputs(rets, spreads, every3, t=10).scheduled.tolist() == [False]
    with pytest.raises(ConfigError, match="vol_long_window"):
        trigger_inputs(rets[:, :5], spreads, params)


# ----------------------------------------------------------------------------- rounding


def test_lot_rounding_goes_toward_the_current_position() -> None:
    params = ExecutionParams(lot_size=100.0, portfolio_drift_threshold=0.0)
    # buy 0.1037 at 50 -> 2074 shares -> 2000; sell 0.1037 -> 0.05: 2074 -> 1000 shares
    # wanted, -1074 -> -1000 sent, 1074 shares kept
    r = run([0.0, 0.1037, 0.0], [0.1037, 0.05, 0.0], params, prices=(50.0, 50.0, 20.0))
    assert r.delta_qty.tolist() == [[2000.0, -1000.0, 0.0]]
    assert r.target_qty[0, :2] == pytest.approx([2000.0, 1074.0], rel=1e-14)
    assert r.target_weights[0] == pytest.approx([0.1, 0.0537, 0.0], rel=1e-13)
    assert r.side.tolist() == [[1, -1, 0]]


def test_lot_rounding_is_coded_where_it_moves_a_weight() -> None:
    limits = RiskLimits(max_symbol_weight=0.2, max_sector_gross=1.0, max_turnover=2.0)
    params = ExecutionParams(lot_size=100.0, portfolio_drift_threshold=0.0)
    ctx = ctx_of([0.0, 0.1037, 0.02], prices=(50.0, 50.0, 20.0))
    # name 0 buys 0.1037 (2074 shares -> 2000), name 1 sells to 0.05 (1074 kept), name 2
    # sells 0.02 -> 0.01 at 20: 1000 -> 500 shares, exactly 5 lots: no rounding
    proposal = np.array([[0.1037, 0.05, 0.01]])
    gate = RiskGateChain(limits).apply(proposal, ctx)
    assert gate.approved.tolist() == proposal.tolist()
    assert (gate.symbol_reasons == 0).all()
    ex = ExecutionPolicy(params, limits).apply(gate, ctx)
    lot = int(ReasonCode.LOT_ROUNDING)
    assert (ex.reasons & lot).tolist() == [[lot, lot, 0]]
    assert ex.portfolio_reasons[0] & lot
    assert ex.target_weights[0, 2] == 0.01
    report = check_invariants(executed_as_gate(ex, gate), ctx, limits)
    assert report.ok, report.messages
    # without the code the checker reports the silent change
    silent = dataclasses.replace(executed_as_gate(ex, gate), symbol_reasons=ex.reasons & ~lot)
    msgs = check_invariants(silent, ctx, limits).messages
    assert any("without a reason code" in m for m in msgs)


def test_close_out_is_exact_even_off_the_lot_grid() -> None:
    params = ExecutionParams(lot_size=100.0)
    r = run([0.0537, 0.0, 0.0], [0.0, 0.0, 0.0], params, prices=(50.0, 50.0, 20.0))
    assert r.delta_qty[0, 0] == pytest.approx(-1074.0, rel=1e-14)
    assert r.target_weights[0, 0] == 0.0  # exactly flat, not dust


def test_rounding_scales_buys_when_a_rotation_would_lift_gross() -> None:
    limits = LOOSE.replace(max_gross=0.3)
    params = ExecutionParams(lot_size=100.0)
    # sell 0.15 -> 0.10 at 30: 5000 -> 3333.3 shares, sends -1600 (keeps 3400 = 0.102);
    # buy 0.05 at 10 = 5000 shares would give gross 0.302 -> buys scaled by
    # (0.3 - 0.102 - 0.15) / 0.05 = 0.96 -> 4800 shares
    r = run([0.15, 0.15, 0.0], [0.10, 0.15, 0.05], params, limits, prices=(30.0, 70.0, 10.0))
    assert r.delta_qty.tolist() == [[-1600.0, 0.0, 4800.0]]
    assert r.trigger_flags[0] & TriggerFlag.ROUNDING_SCALED
    assert np.abs(r.target_weights).sum() <= 0.3 + 1e-12


def test_forced_derisk_rounds_toward_zero_and_ignores_bands() -> None:
    limits = RiskLimits(max_symbol_weight=0.10, max_sector_gross=1.0)
    ctx = ctx_of([0.10035, 0.05, 0.05], prices=(30.0, 50.0, 20.0))
    gate = RiskGateChain(limits).apply(ctx.current_weights.copy(), ctx)  # propose: hold
    assert gate.portfolio_reasons[0] & ReasonCode.FORCED_DERISK
    assert gate.approved[0, 0] == pytest.approx(0.10, abs=1e-15)
    # 3345 shares held, 3333.3 approved: drift 0.00035 is inside every band, but a
    # forced trade is never suppressed; toward zero -> 3333 (toward current: 3334 > cap)
    ex = ExecutionPolicy(ExecutionParams(), limits).apply(gate, ctx)
    assert ex.delta_qty[0].tolist() == [-12.0, 0.0, 0.0]
    assert ex.target_weights[0, 0] == pytest.approx(0.09999, rel=1e-12)
    assert ex.trigger_flags[0] & TriggerFlag.FORCED
    assert not ex.suppressed.any()
    report = check_invariants(executed_as_gate(ex, gate), ctx, limits)
    assert report.ok, report.messages


_WIDE = {
    "max_symbol_weight": 1.0, "max_gross": 100.0, "max_net": 100.0, "max_sector_gross": 100.0,
    "long_only": False, "max_turnover": 100.0, "max_participation": 1e6,
    "slippage_budget_bps": 1e6,
}  # fmt: skip


@pytest.mark.parametrize(
    ("equity", "prices", "shares", "lot", "caps", "held"),
    [
        # a position 1e9 lots over a 1000 notional cap: the snap, relative to the order,
        # had rounded 99.999 shares up to the lot of 100 (1000.01 held)
        (1e13, (10.0001, 100.0), (1e11, 0.0), 100.0, {"max_symbol_notional": 1000.0}, [0, 0]),
        (1e13, (10.0001, 100.0), (-1e11, 0.0), 100.0, {"max_symbol_notional": 1000.0}, [0, 0]),
        # 0.6 shares approved of 5e12 held: 1 share (1000 against 600) had been held
        (1e15, (1000.0, 100.0), (5e12, 0.0), 1.0, {"max_symbol_notional": 600.0}, [0, 0]),
        (1e10, (100.0, 100.0), (1e7, 0.0), 1.0, {"max_symbol_notional": 999.99995}, [9, 0]),
        (1e12, (100.0,) * 3, (1e9,) * 3, 1.0, {"max_gross_notional": 2999.99}, [9, 9, 9]),
        (1e6, (1.0, 1.0), (0.99e6, 0.0), 1.0, {"max_symbol_weight": 9.9999999e-7}, [0, 0]),
        # cur + k lot past the target of 10 by the float dust of cur (7e-12): the target,
        # not a lot lower (review)
        (1e7, (100.0, 100.0), (62916.06, 0.0), 0.01, {"max_symbol_notional": 1000.0}, [10, 0]),
    ],
)
def test_forced_lot_rounding_of_a_huge_position_stays_under_its_cap(
    equity: float, prices: tuple, shares: tuple, lot: float, caps: dict, held: list
) -> None:
    limits = RiskLimits(**(_WIDE | caps))
    p = np.array([prices])
    ctx = dataclasses.replace(
        ctx_of(np.array([shares]) * p / equity, prices, sectors=range(p.shape[1])),
        equity=np.array([equity]),
        adv_notional=np.full(p.shape, 1e15),
    )
    gate = RiskGateChain(limits).apply(ctx.current_weights.copy(), ctx)  # propose: hold
    assert gate.portfolio_reasons[0] & ReasonCode.FORCED_DERISK
    ex = ExecutionPolicy(ExecutionParams(lot_size=lot), limits).apply(gate, ctx)
    assert ex.target_qty[0].tolist() == held
    assert (np.abs(ex.target_weights) <= np.abs(gate.approved)).all()  # toward zero
    assert not np.signbit(ex.target_qty[ex.target_qty == 0.0]).any()  # +0.0, as the weight
    report = check_invariants(executed_as_gate(ex, gate), ctx, limits)
    assert report.ok, report.messages


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_whole_lot_books_far_above_small_caps_are_cut_inside(seed: int) -> None:
    # equities up to 1e15 and notional caps down to 10: current positions up to ~1e14 times
    # their cap (where a snap relative to the order had rounded past the target)
    rng = np.random.default_rng(seed)
    b, n = 16, int(rng.integers(1, 6))
    equity = 10 ** rng.uniform(3, 15, b)
    limits = RiskLimits(
        **(_WIDE | {"max_gross": float(rng.choice([2.0, 1.0, 0.5]))}),
        max_symbol_notional=float(10 ** rng.uniform(1, 9)) if rng.random() < 0.7 else None,
        max_gross_notional=float(10 ** rng.uniform(1, 10)) if rng.random() < 0.5 else None,
    )
    prices = 10 ** rng.uniform(-2, 4, (b, n))
    lot = float(rng.choice([0.1, 1.0, 10.0, 100.0, 1000.0]))
    cur = rng.normal(0, 1, (b, n)) * 10 ** rng.uniform(-4, 0.5, (b, 1))
    cur = np.round(cur * equity[:, None] / prices / lot) * lot * prices / equity[:, None]
    ctx = dataclasses.replace(
        ctx_of(cur, prices, sectors=range(n)),
        equity=equity,
        adv_notional=np.full((b, n), 1e15),
        regime=rng.integers(-1, 4, b),
        kill_switch=rng.random(b) < 0.05,
    )
    proposal = cur * rng.uniform(0.5, 1.5, (b, n)) + rng.normal(0, 0.05, (b, n))
    gate = RiskGateChain(limits).apply(proposal, ctx)
    params = ExecutionParams(lot_size=lot, name_drift_threshold=0.0, portfolio_drift_threshold=0.0)
    ex = ExecutionPolicy(params, limits).apply(gate, ctx)
    report = check_invariants(executed_as_gate(ex, gate), ctx, limits)
    assert report.ok, report.messages[:5]
    coded = (gate.symbol_reasons & FORCED_MASK) != 0
    a, w = gate.approved, ex.target_weights
    assert ((np.abs(w) <= np.abs(a) * (1.0 + 1e-12)) | ~coded).all()  # relative: a may be 1e-13


def test_forced_derisk_of_one_name_keeps_the_other_names_bands() -> None:
    # Ten names at the 0.10 cap (sectors loose); a price move lifts name 0 by 1e-12 over
    # the cap and the others drift inside their bands. Only name 0 carries FORCED_DERISK,
    # so only name 0 trades; the others keep their bands (suppressed, coded, held).
    limits = RiskLimits(max_symbol_weight=0.10, max_sector_gross=1.0, max_gross=1.0)
    n = 10
    cur = np.full((1, n), 0.10)
    cur[0, 0] += 1e-9
    cur[0, 1:] -= np.linspace(0.0001, 0.001, n - 1)  # drift 1e-4 .. 1e-3 < tau 0.005
    proposal = np.full((1, n), 0.10)  # the allocator still wants the capped book
    prices = np.full(n, 10.0)
    ctx = ctx_of(cur, prices=prices, sectors=np.arange(n))
    gate = RiskGateChain(limits).apply(proposal, ctx)
    coded = (gate.symbol_reasons[0] & FORCED_MASK) != 0
    assert coded.tolist() == [True] + [False] * (n - 1)
    params = ExecutionParams(portfolio_drift_threshold=0.05)
    ex = ExecutionPolicy(params, limits).apply(gate, ctx)
    # name 0: 10000.0001 shares held, 10000 approved: toward zero on the lattice
    # 10000.0001 + k -> 9999.0001 shares (sells one share), inside the cap
    assert ex.side[0].tolist() == [-1] + [0] * (n - 1)
    assert ex.delta_qty[0, 0] == -1.0
    assert ex.target_weights[0, 0] == pytest.approx(0.099990001, rel=1e-12)
    assert ex.target_weights[0, 1:].tobytes() == cur[0, 1:].tobytes()
    assert ex.suppressed[0].tolist() == [False] + [True] * (n - 1)
    assert ((ex.reasons[0, 1:] & BAND) != 0).all()
    assert ex.trigger_flags[0] & TriggerFlag.FORCED
    assert check_invariants(executed_as_gate(ex, gate), ctx, limits).ok


def test_forced_name_still_lifts_a_band_that_would_breach_gross() -> None:
    # name 0 over its cap is forced; name 1 drifted up inside its band but the gross cap
    # needs its approved sell: suppressing it would leave gross 0.2501 > 0.25
    limits = RiskLimits(max_symbol_weight=0.10, max_sector_gross=1.0, max_gross=0.25)
    cur = np.array([[0.1004, 0.0901, 0.06]])
    ctx = ctx_of(cur, prices=(10.0, 10.0, 10.0))
    gate = gate_of(
        [[0.10, 0.09, 0.06]],
        sym=np.array([[int(ReasonCode.FORCED_DERISK), 0, 0]], dtype=np.int64),
        port=np.array([int(ReasonCode.FORCED_DERISK)], dtype=np.int64),
    )
    ex = ExecutionPolicy(ExecutionParams(), limits).apply(gate, ctx)
    # bands alone: name 1 (|d| = 0.0001) and name 2 (no move) would hold; gross of that
    # book is 0.10 + 0.0901 + 0.06 = 0.2501 > 0.25, so the band is lifted
    assert ex.trigger_flags[0] & TriggerFlag.BAND_LIFTED
    assert ex.side[0].tolist() == [-1, -1, 0]
    assert np.abs(ex.target_weights).sum() <= 0.25 + 1e-12


def test_kill_switch_flattens_with_exact_close_outs() -> None:
    limits = RiskLimits(max_symbol_weight=0.5, max_sector_gross=1.0, long_only=False)
    ctx = ctx_of([0.0537, -0.001, 0.2], kill_switch=np.array([True]))
    gate = RiskGateChain(limits).apply(np.array([[0.3, 0.3, 0.3]]), ctx)
    ex = ExecutionPolicy(ExecutionParams(lot_size=100.0), limits).apply(gate, ctx)
    assert ex.target_weights.tolist() == [[0.0, 0.0, 0.0]]
    assert ex.delta_qty[0] == pytest.approx([-1074.0, 10.0, -10000.0], rel=1e-14)
    assert ex.side.tolist() == [[-1, 1, -1]]
    assert ex.trigger_flags[0] & TriggerFlag.KILL_SWITCH
    assert (ex.reasons & ReasonCode.KILL_SWITCH).all()
    assert check_invariants(executed_as_gate(ex, gate), ctx, limits).ok


def test_untradable_names_never_trade() -> None:
    ctx = ctx_of([0.10, 0.10, 0.05])
    ctx = dataclasses.replace(ctx, tradable=np.array([[True, False, True]]))
    ex = ExecutionPolicy(ExecutionParams(), LOOSE).apply(gate_of([0.15, 0.0, 0.05]), ctx)
    assert ex.delta_qty.tolist() == [[1000.0, 0.0, 0.0]]
    assert ex.target_weights[0, 1] == 0.10


def test_batch_rows_are_independent() -> None:
    rng = np.random.default_rng(3)
    cur = rng.uniform(0.0, 0.2, (16, 3))
    app = np.clip(cur + rng.normal(0, 0.01, (16, 3)), 0.0, 0.2)
    params = ExecutionParams(lot_size=10.0)
    whole = run(cur, app, params)
    for i in (0, 7, 15):
        one = run(cur[i], app[i], params)
        assert one.target_weights.tobytes() == whole.target_weights[i : i + 1].tobytes()
        assert one.delta_qty.tobytes() == whole.delta_qty[i : i + 1].tobytes()


def test_params_from_config_and_validation() -> None:
    cfg = config_from_dict({"execution": {"lot_size": 100, "scheduled_only": True}}).execution
    p = ExecutionParams.from_config(cfg)
    assert p.lot_size == 100.0 and p.scheduled_only and p.schedule_every == 1
    assert ExecutionParams.from_config(ExecutionConfig()).name_drift_threshold == 0.005
    with pytest.raises(ConfigError, match="lot_size"):
        ExecutionParams(lot_size=0.0)
    with pytest.raises(ConfigError, match="vol_short_window"):
        config_from_dict({"execution": {"vol_short_window": 63}})
    with pytest.raises(InvariantBreach, match="non-finite"):
        run([0.1, 0.1, 0.1], [np.nan, 0.1, 0.1])
    # refused, not cast: "no" was True, 2.5 bars ran as 2.5, text was a TypeError
    for kw, match in (
        ({"scheduled_only": "no"}, r"scheduled_only = 'no': pass True or False"),
        ({"schedule_every": 2.5}, r"schedule_every = 2.5: pass a whole number of bars"),
        ({"portfolio_drift_threshold": "x"}, r"portfolio_drift_threshold = 'x': pass a number"),
    ):
        with pytest.raises(ConfigError, match=match):
            ExecutionParams(**kw)
    # per-symbol lots of the wrong length: named at apply, not a numpy broadcast error
    with pytest.raises(ConfigError, match=r"lot_size has 2 entries for 3 symbols"):
        run([0.1, 0.1, 0.1], [0.2, 0.1, 0.1], params=ExecutionParams(lot_size=np.ones(2)))
    # a ratio per portfolio: a vector of another length is not regrouped
    with pytest.raises(RequestError, match=r"Triggers ratio has shape \(3,\): pass \(1,\)"):
        run([0.1, 0.1, 0.1], [0.2, 0.1, 0.1], triggers=Triggers(vol_ratio=np.ones(3)))


# ----------------------------------------------------------------------------- property


def _random_case(seed: int, n_envs: int = 48):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 10))
    long_only = bool(rng.random() < 0.5)
    limits = RiskLimits(
        max_symbol_weight=float(rng.uniform(0.05, 0.5)),
        max_gross=float(rng.uniform(0.5, 2.0)),
        max_net=float(rng.uniform(0.1, 1.0)),
        max_sector_gross=float(rng.uniform(0.2, 1.0)),
        long_only=long_only,
        max_turnover=float(rng.uniform(0.05, 1.0)),
        beta_tolerance=float(rng.uniform(0.05, 0.5)) if rng.random() < 0.5 else None,
        max_symbol_notional=float(rng.uniform(1e4, 3e5)) if rng.random() < 0.3 else None,
        max_gross_notional=float(rng.uniform(3e5, 2e6)) if rng.random() < 0.3 else None,
        max_participation=float(rng.uniform(0.01, 0.3)),
        slippage_budget_bps=float(rng.uniform(1.0, 50.0)),
    )
    tradable = rng.random((n_envs, n)) < 0.95
    base = GateContext(
        current_weights=np.zeros((n_envs, n)),
        equity=rng.uniform(1e5, 1e7, n_envs),
        prices=rng.uniform(1.0, 500.0, (n_envs, n)),
        adv_notional=rng.uniform(1e5, 1e9, (n_envs, n)),
        volatility=rng.uniform(0.005, 0.05, (n_envs, n)),
        spread_bps=rng.uniform(1.0, 20.0, (n_envs, n)),
        sector_ids=rng.integers(0, 3, n),
        regime=rng.integers(-1, 4, n_envs),
        tradable=tradable,
        betas=rng.uniform(-0.5, 2.0, (n_envs, n)),
    )
    cur = rng.normal(0.0, 0.1, (n_envs, n)) * rng.uniform(0.2, 1.5, (n_envs, 1))
    if long_only:
        cur = np.abs(cur)
    # most books start inside the hard limits (as they would after a previous decision),
    # the others outside (a market move or a tightened regime multiplier)
    no_trade_limits = limits.replace(
        max_turnover=1e9, max_participation=1e9, slippage_budget_bps=1e9
    )
    inside = RiskGateChain(no_trade_limits).apply(cur, base).approved
    cur = np.where((rng.random(n_envs) < 0.6)[:, None], inside, cur)
    cur = np.where(tradable, cur, 0.0)  # untradable names are held, so start them flat
    ctx = dataclasses.replace(base, current_weights=cur, kill_switch=rng.random(n_envs) < 0.05)
    proposal = cur + rng.normal(0.0, 0.05, (n_envs, n)) * (rng.random((n_envs, n)) < 0.7)
    params = ExecutionParams(
        name_drift_threshold=float(rng.uniform(0.0, 0.02)),
        portfolio_drift_threshold=float(rng.uniform(0.0, 0.05)),
        lot_size=float(rng.choice([1.0, 10.0, 100.0])),
        scheduled_only=bool(rng.random() < 0.3),
    )
    triggers = Triggers(scheduled=rng.random(n_envs) < 0.5, vol_ratio=rng.uniform(0, 3, n_envs))
    return limits, ctx, proposal, params, triggers


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_execution_never_breaches_the_limits(seed: int) -> None:
    limits, ctx, proposal, params, triggers = _random_case(seed)
    cost = CostModel()
    gate = RiskGateChain(limits, cost).apply(proposal, ctx)
    ex = ExecutionPolicy(params, limits).apply(gate, ctx, triggers)
    report = check_invariants(executed_as_gate(ex, gate), ctx, limits, cost)
    assert report.ok, report.messages[:5]

    a, c, w = gate.approved, ctx.current_weights, ex.target_weights
    forced = (ex.trigger_flags & int(TriggerFlag.FORCED)) != 0
    killed = (ex.trigger_flags & int(TriggerFlag.KILL_SWITCH)) != 0
    rounded = (ex.trigger_flags & int(TriggerFlag.FALLBACK)) == 0
    # forced names: coded FORCED_DERISK / KILL_SWITCH, or every name of a killed portfolio
    # or of a forced one with no coded name
    coded = (gate.symbol_reasons & FORCED_MASK) != 0
    fz = coded | (killed | (forced & ~coded.any(axis=1)))[:, None]
    # other names: each between its current and approved weight (never past approved)
    nf = ~fz
    assert ((w >= np.minimum(a, c) - 1e-12) | ~nf).all()
    assert ((w <= np.maximum(a, c) + 1e-12) | ~nf).all()
    # forced names: toward zero, same sign as approved
    f = fz & ctx.tradable
    assert ((np.abs(w) <= np.abs(a) + 1e-12) | ~f).all()
    assert ((w * a >= 0) | ~f).all()
    # orders: sides match, whole lots except exact close-outs and unrounded fallbacks
    assert (ex.side == np.sign(ex.delta_qty)).all()
    lots = ex.delta_qty / params.lot_size
    whole = np.abs(lots - np.rint(lots)) <= 1e-6 * np.maximum(1.0, np.abs(lots))
    assert (whole | (w == 0.0) | ~rounded[:, None]).all()
    # suppressed names are held exactly and coded
    assert (w[ex.suppressed] == c[ex.suppressed]).all()
    assert ((ex.reasons[ex.suppressed] & BAND) != 0).all()
    assert (ex.traded == (ex.delta_qty != 0).any(axis=1)).all()


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_execution_never_breaches_the_limits_slow(seed: int) -> None:
    limits, ctx, proposal, params, triggers = _random_case(seed, n_envs=256)
    gate = RiskGateChain(limits).apply(proposal, ctx)
    ex = ExecutionPolicy(params, limits).apply(gate, ctx, triggers)
    report = check_invariants(executed_as_gate(ex, gate), ctx, limits)
    assert report.ok, report.messages[:5]


def test_orders_from_a_whole_lot_book_are_exact_whole_lots() -> None:
    # 365 shares at 113.29 in a 941,565.18 book: read back from the weight, 365.00000000000006
    price, equity, held = 113.29, 941_565.18, 365.0
    c = held * price / equity
    assert c * (equity / price) != held  # the float dust this test is about
    ctx = GateContext(
        current_weights=np.array([[c, 0.0]]), equity=np.array([equity]),
        prices=np.array([[price, 50.0]]), adv_notional=np.full((1, 2), 1e12),
        volatility=np.full((1, 2), 0.01), spread_bps=np.ones((1, 2)),
        sector_ids=np.array([0, 1]), regime=np.array([-1]), tradable=np.ones((1, 2), bool),
    )  # fmt: skip
    limits = RiskLimits(max_symbol_weight=1.0, max_sector_gross=1.0, max_turnover=2.0,
                        slippage_budget_bps=1e6, max_participation=1.0)  # fmt: skip
    policy = ExecutionPolicy(ExecutionParams(), limits)
    chain = RiskGateChain(limits)
    # a close-out is exactly minus the held quantity
    ex = policy.apply(chain.apply(np.array([[0.0, 0.0]]), ctx), ctx, Triggers())
    assert ex.delta_qty[0, 0] == -365.0 and ex.target_qty[0, 0] == 0.0
    # a lot-rounded order is an exact whole number of shares (here 57 more)
    w = (held + 57.4) * price / equity
    ex = policy.apply(chain.apply(np.array([[w, 0.0]]), ctx), ctx, Triggers())
    assert ex.delta_qty[0, 0] == 57.0 and ex.target_qty[0, 0] == 422.0
    # kill switch: flat, exactly
    killed = GateContext(**{**ctx.__dict__, "kill_switch": np.array([True])})
    ex = policy.apply(chain.apply(np.array([[w, 0.0]]), killed), killed, Triggers())
    assert ex.delta_qty[0, 0] == -365.0 and ex.target_qty[0, 0] == 0.0
    # lots of 100 shares: 300 held, 420 wanted (1.2 lots more): one lot, exactly 100
    lot_policy = ExecutionPolicy(ExecutionParams(lot_size=100.0), limits)
    c3 = 300.0 * price / equity
    ctx3 = GateContext(**{**ctx.__dict__, "current_weights": np.array([[c3, 0.0]])})
    w3 = 420.0 * price / equity
    ex = lot_policy.apply(chain.apply(np.array([[w3, 0.0]]), ctx3), ctx3, Triggers())
    assert ex.delta_qty[0, 0] == 100.0 and ex.target_qty[0, 0] == 400.0


def test_a_position_under_a_lots_dust_is_closed_by_a_zero_target() -> None:
    """5e-14 lots of a 1e15-priced name at equity 1e15 (500 currency): read as 0 lots, the
    kill switch's close-out had left its weight in the book with no order (rev11)."""
    lim = RiskLimits(
        max_symbol_weight=1.0, max_gross=1.0, max_sector_gross=1.0, long_only=False,
        max_turnover=1.0, max_participation=1e6, slippage_budget_bps=1e6,
    )  # fmt: skip
    ctx = GateContext(
        current_weights=np.array([[5e-13, 0.2]]), equity=np.array([1e15]),
        prices=np.array([[1e15, 100.0]]), adv_notional=np.full((1, 2), 1e14),
        volatility=np.full((1, 2), 0.02), spread_bps=np.full((1, 2), 5.0),
        sector_ids=np.arange(2), regime=np.zeros(1, np.int64),
        tradable=np.ones((1, 2), bool), kill_switch=np.array([True]),
    )  # fmt: skip
    gate = RiskGateChain(lim).apply(np.array([[5e-13, 0.2]]), ctx)
    ex = ExecutionPolicy(ExecutionParams(lot_size=np.array([10.0, 1.0])), lim).apply(gate, ctx)
    assert ex.target_weights[0].tolist() == [0.0, 0.0]
    assert ex.delta_qty[0].tolist() == [-5e-13, -2e12] and ex.target_qty[0].tolist() == [0, 0]
    held = dataclasses.replace(gate, approved=ex.target_weights, symbol_reasons=ex.reasons,
                               portfolio_reasons=ex.portfolio_reasons)  # fmt: skip
    assert check_invariants(held, ctx, lim).ok
