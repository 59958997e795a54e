"""RiskGateChain: slippage, long-only and strategy boundaries, kill switch, reduce-only,
forced de-risk, determinism, permutation equivariance, idempotence, regime multipliers,
the runtime-flag loader."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gate_books import FREE, LOOSE, calm_context

from allocgym.config import RiskConfig
from allocgym.costs import CostModel
from allocgym.errors import GateConfigError, InvariantBreach, RequestError
from allocgym.regime import REGIME_LABELS, UNKNOWN_REGIME, regime_code
from allocgym.risk import (
    GATE_CODES,
    REASON_DOCS,
    GateContext,
    ReasonCode,
    RiskGateChain,
    RiskLimits,
    check_invariants,
    decode_reasons,
    reason_code_table,
)
from allocgym.serving.flags import allocator_enabled, limits_from_env

R = ReasonCode
ROOT = Path(__file__).resolve().parents[1]


def limits(**kw) -> RiskLimits:
    return RiskLimits(**{**LOOSE, **kw})


def ctx(n_envs=1, n_assets=4, **kw) -> GateContext:
    return calm_context(n_envs, n_assets, **kw)


def run(lim: RiskLimits, p, c: GateContext, cost: CostModel = FREE):
    res = RiskGateChain(lim, cost, debug=True).apply(np.atleast_2d(np.asarray(p, float)), c)
    report = check_invariants(res, c, lim, cost)
    assert report.n_breaches == 0, report.messages
    return res


# ----------------------------------------------------------------------------- boundaries
# The boundary table (one row per registry limit) is in tests/test_risk_registry.py.
EPS = 1e-9


def test_slippage_scale_solves_the_concave_cost_curve():
    # Impact only, by hand: cost(s) = s^1.5 * I with I = sum |dw| k sigma sqrt(|dw| eq/ADV).
    model = CostModel(commission_bps=0.0, spread_mult=0.0, impact_k=1.0)
    c = ctx(n_assets=1, adv_notional=np.array([[1.0e6]]), volatility=np.array([[0.01]]))
    full = 0.5 * 0.01 * np.sqrt(0.5 * 1e6 / 1e6)  # cost of the full trade 0.5: 3.5355e-3
    lim = limits(slippage_budget_bps=10.0)  # budget 1e-3 -> s = (1e-3 / full) ** (2/3)
    res = run(lim, [[0.5]], c, model)
    s = (1e-3 / full) ** (2.0 / 3.0)
    assert res.approved[0, 0] == pytest.approx(0.5 * s, rel=1e-12)
    assert res.portfolio_reasons[0] == int(R.SLIPPAGE_BUDGET)


def test_long_only_boundary():
    lim = limits(long_only=True)
    for value in (0.0, -0.0, 1e-12):
        res = run(lim, [[value, 0.1, 0.0, 0.0]], ctx())
        assert res.approved[0, 0] == value
        assert res.symbol_reasons[0, 0] == 0
    res = run(lim, [[-1e-12, 0.1, -5e-324, 0.0]], ctx())
    assert res.approved[0].tolist() == [0.0, 0.1, 0.0, 0.0]
    assert res.symbol_reasons[0].tolist() == [int(R.LONG_ONLY), 0, int(R.LONG_ONLY), 0]
    assert res.portfolio_reasons[0] == 0  # a per-symbol gate


def test_strategy_cap_boundary_and_scale():
    lim = limits(max_strategy_contribution=0.5)
    for f, over in ((1.0, False), (1.0 - EPS, False), (1.0 + EPS, True)):
        sw = np.array([[[0.25 * f, 0.25 * f, 0.0, 0.0], [0.0, 0.0, 0.125, 0.125]]])
        p = sw.sum(axis=1)
        c = ctx(strategy_weights=sw)
        res = run(lim, p, c)
        if over:
            assert res.strategy_scale[0, 0] == pytest.approx(1 / f, rel=1e-12)
            assert res.strategy_scale[0, 1] == 1.0
            assert res.approved[0] == pytest.approx([0.25, 0.25, 0.125, 0.125], rel=1e-12)
            assert res.symbol_reasons[0].tolist() == [int(R.STRATEGY_CAP)] * 2 + [0, 0]
            assert res.portfolio_reasons[0] == int(R.STRATEGY_CAP)
        else:
            assert np.array_equal(res.approved, p)
            assert np.array_equal(res.strategy_scale, np.ones((1, 2)))


def test_not_tradable_holds_the_current_weight():
    c = ctx(
        current_weights=np.array([[0.1, 0.2, 0.0, 0.0]]),
        tradable=np.array([[True, False, True, True]]),
        adv_notional=np.array([[1e9, 1e9, np.nan, 1e9]]),  # unknown ADV: not tradable either
    )
    res = run(limits(), [[0.3, 0.0, 0.2, 0.1]], c)
    assert res.approved[0].tolist() == [0.3, 0.2, 0.0, 0.1]
    assert res.symbol_reasons[0].tolist() == [0, int(R.NOT_TRADABLE), int(R.NOT_TRADABLE), 0]


def _held_sector_ctx(cur):
    # names 0 and 1 in one sector, name 0 not tradable; names 2, 3 in a second sector
    return ctx(
        current_weights=np.array([cur]),
        tradable=np.array([[False, True, True, True]]),
        sector_ids=np.array([0, 0, 1, 1]),
    )


def test_forced_derisk_holds_non_tradable_names_and_scales_the_tradable_ones():
    # sector 0 holds 0.25 (not tradable) + 0.10 = 0.35 > 0.30: only name 1 can sell, down
    # to 0.30 - 0.25 = 0.05 (a whole-book scale would give [0.214, 0.086], and execution
    # would keep 0.25: 0.336 in the sector)
    lim = limits(max_sector_gross=0.30)
    c = _held_sector_ctx([0.25, 0.10, 0.0, 0.0])
    res = run(lim, [[0.25, 0.10, 0.0, 0.0]], c)
    assert res.approved[0, 0] == 0.25
    # bisected to the chain's tolerance (1e-12 relative)
    assert res.approved[0, 1] == pytest.approx(0.05, abs=1e-11)
    assert res.approved[0, :2].sum() <= 0.30 * (1 + 1e-11)
    assert res.symbol_reasons[0, 1] & R.SECTOR_CAP
    assert res.portfolio_reasons[0] & R.FORCED_DERISK
    assert not res.portfolio_reasons[0] & R.NOT_TRADABLE  # the limit could be met


def test_proposal_gates_never_move_a_non_tradable_name():
    # inside the limits; the proposal buys name 1 up to 0.2: the sector gate would scale
    # both names of sector 0 (0.20 each -> 0.15 each), but only name 1 may move: 0.30 -
    # 0.20 = 0.10, reached by scaling the whole trade from the current book to the book
    # with name 0 put back, [0.20, 0.15, 0.30, 0]: name 1 buys 0.10 -> 0.05, lambda = 1/2,
    # so name 2 buys 0.15 (the trade limits that held on the trade hold on half of it)
    lim = limits(max_sector_gross=0.30)
    c = _held_sector_ctx([0.20, 0.05, 0.0, 0.0])
    res = run(lim, [[0.20, 0.20, 0.3, 0.0]], c)
    assert res.approved[0, 0] == 0.20
    assert res.approved[0, 1] == pytest.approx(0.10, abs=1e-11)
    assert res.approved[0, 2] == pytest.approx(0.15, abs=1e-11)
    assert res.symbol_reasons[0, 1] & R.SECTOR_CAP


def test_held_names_alone_over_a_limit_code_the_portfolio_not_tradable():
    # 0.35 not tradable alone breaks the 0.30 sector cap: no trade can fix it; the tradable
    # name in its sector is sold (only the held name's excess is left), the name in the
    # other sector keeps its weight (it had been sold too), and the portfolio is coded
    lim = limits(max_sector_gross=0.30)
    c = _held_sector_ctx([0.35, 0.10, 0.05, 0.0])
    res = run(lim, [[0.35, 0.10, 0.05, 0.0]], c)
    assert res.approved[0].tolist() == [0.35, 0.0, 0.05, 0.0]
    assert res.portfolio_reasons[0] & R.NOT_TRADABLE
    # the checker accepts the excess only because it is due to the held name and coded
    uncoded = dataclasses.replace(
        res, portfolio_reasons=res.portfolio_reasons & ~np.int64(int(R.NOT_TRADABLE))
    )
    msgs = check_invariants(uncoded, c, lim, FREE).messages
    assert any("sector 0 gross breached" in m for m in msgs)


def test_kill_switch_codes_held_non_tradable_names():
    # the kill switch approves flat; execution keeps the non-tradable name: say so
    c = dataclasses.replace(_held_sector_ctx([0.2, 0.05, 0.0, 0.0]), kill_switch=np.array([True]))
    res = run(limits(), [[0.2, 0.05, 0.0, 0.0]], c)
    assert res.approved.tolist() == [[0.0, 0.0, 0.0, 0.0]]
    nt, kill = int(R.NOT_TRADABLE), int(R.KILL_SWITCH)
    assert res.symbol_reasons[0].tolist() == [kill | nt, kill, kill, kill]


def test_checker_reports_a_moved_non_tradable_weight():
    lim = limits(max_sector_gross=0.30)
    c = _held_sector_ctx([0.20, 0.05, 0.0, 0.0])
    res = run(lim, [[0.20, 0.05, 0.0, 0.0]], c)
    moved = dataclasses.replace(res, approved=res.approved * np.array([[0.5, 1.0, 1.0, 1.0]]))
    msgs = check_invariants(moved, c, lim, FREE).messages
    assert any("non-tradable weight changed" in m for m in msgs)


# ----------------------------------------------------------------------------- kill / reduce


def test_kill_switch_flat_and_every_symbol_coded():
    rng = np.random.default_rng(3)
    p = rng.uniform(-1, 1, (6, 5))
    p[2, 1] = np.nan
    p[3, 0] = 1e308
    cur = rng.uniform(-0.1, 0.1, (6, 5))
    kill = np.array([True, False, True, False, True, False])
    c = ctx(6, 5, current_weights=cur, kill_switch=kill)
    lim = RiskLimits(long_only=False)
    res = run(lim, p, c)
    assert np.array_equal(res.approved[kill], np.zeros((3, 5)))
    assert (res.symbol_reasons[kill] & int(R.KILL_SWITCH)).all()
    assert (res.portfolio_reasons[kill] & int(R.KILL_SWITCH)).all()
    assert res.symbol_reasons[2, 1] & int(R.INVALID_INPUT)  # still says why the proposal was bad
    # Untouched portfolios are decided exactly as without the kill flags.
    ref = RiskGateChain(lim, FREE).apply(p, ctx(6, 5, current_weights=cur))
    assert np.array_equal(res.approved[~kill], ref.approved[~kill])
    # The global flag kills every portfolio.
    all_killed = run(lim.replace(kill_switch=True), p, ctx(6, 5, current_weights=cur))
    assert not all_killed.approved.any()
    assert (all_killed.symbol_reasons & int(R.KILL_SWITCH)).all()


def test_reduce_only_by_hand():
    c = ctx(current_weights=np.array([[0.1, -0.1, 0.0, 0.2]]), reduce_only=np.array([True]))
    res = run(limits(), [[0.2, 0.05, 0.1, 0.15]], c)
    # grow -> held at 0.1; flip -> 0; new position -> 0; reduction kept
    assert res.approved[0].tolist() == [0.1, 0.0, 0.0, 0.15]
    assert res.symbol_reasons[0].tolist() == [int(R.REDUCE_ONLY)] * 3 + [0]


def test_reduce_only_never_grows_or_flips():
    rng = np.random.default_rng(7)
    n, m = 400, 8
    cur = rng.uniform(-0.1, 0.1, (n, m)) * (rng.random((n, m)) < 0.7)
    p = rng.uniform(-0.3, 0.3, (n, m))
    lim = RiskLimits(long_only=False, reduce_only=True, max_net=0.05, max_gross=2.0)
    c = ctx(n, m, current_weights=cur, sector_ids=np.arange(m) % 3)
    res = run(lim, p, c, CostModel())
    a = res.approved
    assert (np.abs(a) <= np.abs(cur)).all()
    assert (a * cur >= 0).all()
    assert (a[cur == 0] == 0).all()


# ----------------------------------------------------------------------------- forced de-risk


def test_forced_derisk_after_a_market_move():
    # Book drifted to gross 1.2 > 1.0; turnover cap 0.01 would forbid the way back.
    cur = np.array([[0.3, 0.3, 0.3, 0.3]])
    lim = limits(max_gross=1.0, max_turnover=0.01)
    res = run(lim, cur, ctx(current_weights=cur))
    a = res.approved[0]
    assert np.abs(a).sum() == pytest.approx(1.0, rel=1e-12)
    assert np.abs(a - cur[0]).sum() > 0.01  # the de-risk trade is allowed past the limit
    assert res.portfolio_reasons[0] & int(R.FORCED_DERISK)
    assert res.portfolio_reasons[0] & int(R.GROSS_CAP)
    assert (res.symbol_reasons[0] & int(R.FORCED_DERISK)).all()


def test_forced_derisk_keeps_trade_limits_on_new_risk():
    cur = np.array([[0.3, 0.3, 0.3, 0.3, 0.0]])
    lim = limits(max_gross=1.0, max_turnover=0.05)
    p = np.array([[0.3, 0.3, 0.3, 0.3, 0.2]])
    res = run(lim, p, ctx(n_assets=5, current_weights=cur))
    a = res.approved[0]
    assert np.abs(a).sum() <= 1.0 * (1 + 1e-12)
    assert 0.0 < a[4] <= 0.05 * (1 + 1e-12)  # the new position obeys the turnover cap
    assert res.portfolio_reasons[0] & int(R.FORCED_DERISK)


def test_forced_derisk_after_a_tighter_regime_multiplier():
    cur = np.array([[0.2, 0.2, 0.2, 0.2]])  # gross 0.8: fine in trend (x1.0)
    lim = limits(max_gross=1.0, max_turnover=0.01, regime_budget_multipliers=(1.0, 1.0, 0.6, 0.8))
    calm = run(lim, cur, ctx(current_weights=cur, regime=np.array([regime_code("trend")])))
    assert np.array_equal(calm.approved, cur) and calm.portfolio_reasons[0] == 0
    hv = np.array([regime_code("high_volatility")])
    res = run(lim, cur, ctx(current_weights=cur, regime=hv))
    assert np.abs(res.approved).sum() == pytest.approx(0.6, rel=1e-12)
    assert res.portfolio_reasons[0] & int(R.FORCED_DERISK)


def test_participation_clip_then_hard_limits_restored():
    # Rotation at the gross cap: selling symbol 0 is participation-capped, so buying
    # symbol 1 in full would break the gross cap; the chain scales the trade back.
    cur = np.array([[0.5, 0.0, 0.5, 0.0]])
    adv = np.array([[1e5, 1e9, 1e9, 1e9]])  # symbol 0 can trade only 0.01 of equity
    lim = limits(max_gross=1.0, max_participation=0.1)
    res = run(lim, [[0.0, 0.5, 0.5, 0.0]], ctx(current_weights=cur, adv_notional=adv))
    a = res.approved[0]
    assert np.abs(a).sum() <= 1.0 * (1 + 3e-12)  # the chain's float tolerance
    assert a[0] == pytest.approx(0.49, rel=1e-12)  # the capped sell goes through
    assert a[1] == pytest.approx(0.01, rel=1e-9)  # the buy is cut to what the sell frees
    assert res.portfolio_reasons[0] & int(R.GROSS_CAP)
    assert res.symbol_reasons[0, 0] & int(R.PARTICIPATION_CAP)


# ----------------------------------------------------------------------------- invalid input


def test_invalid_proposal_keeps_the_current_book():
    cur = np.array([[0.1, 0.05, 0.0, 0.0], [0.1, 0.0, 0.0, 0.0], [np.nan, 0.0, 0.0, 0.0]])
    p = np.array([[np.nan, 0.2, 0.0, 0.0], [np.inf, 0.0, -np.inf, 0.1], [0.1, 0.1, 0.0, 0.0]])
    res = run(RiskLimits(), p, ctx(3, 4, current_weights=cur))
    assert np.array_equal(res.approved[0], cur[0])
    assert np.array_equal(res.approved[1], cur[1])
    assert np.array_equal(res.approved[2], np.zeros(4))  # unreadable book -> flat
    assert (res.portfolio_reasons & int(R.INVALID_INPUT)).all()
    assert (res.symbol_reasons & int(R.INVALID_INPUT)).all()
    assert np.isfinite(res.approved).all()


def test_huge_finite_values_do_not_overflow():
    p = np.array([[1e308, -1e308, 1e308, 5e-324]])
    lim = RiskLimits(long_only=False, max_gross=1.0, max_net=0.1)
    res = run(lim, p, ctx(current_weights=np.array([[1e308, 0.0, 0.0, -1e308]])))
    assert np.isfinite(res.approved).all()
    assert np.isfinite(list(res.clipped.values())).all()
    assert res.portfolio_reasons[0] & int(R.FORCED_DERISK)


def test_shape_errors_name_the_field():
    with pytest.raises(RequestError, match="current_weights"):
        RiskGateChain(RiskLimits()).apply(np.zeros((2, 4)), ctx(1, 4))
    with pytest.raises(RequestError, match="betas"):
        RiskGateChain(RiskLimits(beta_tolerance=0.1)).apply(np.zeros((1, 4)), ctx())
    with pytest.raises(RequestError, match="sector_ids"):
        RiskGateChain(RiskLimits()).apply(np.zeros((1, 4)), ctx(sector_ids=np.zeros(3, int)))


# ----------------------------------------------------------------------------- properties


def _random_case(seed: int, n: int = 64, m: int = 12):
    rng = np.random.default_rng(seed)
    cur = rng.uniform(-0.08, 0.12, (n, m)) * (rng.random((n, m)) < 0.6)
    c = ctx(
        n,
        m,
        current_weights=cur,
        equity=rng.uniform(1e5, 1e7, n),
        adv_notional=np.exp(rng.uniform(np.log(1e5), np.log(1e9), (n, m))),
        volatility=rng.uniform(0.005, 0.05, (n, m)),
        spread_bps=rng.uniform(1, 30, (n, m)),
        sector_ids=rng.integers(0, 4, m),
        regime=rng.integers(-1, 4, n),
        tradable=rng.random((n, m)) < 0.95,
        betas=rng.normal(1.0, 0.4, (n, m)),
        reduce_only=rng.random(n) < 0.1,
    )
    p = rng.uniform(-0.3, 0.4, (n, m))
    lim = RiskLimits(long_only=False, max_net=0.6, beta_tolerance=0.5, max_gross=1.5)
    return lim, p, c


def _digest(res) -> str:
    h = hashlib.sha256()
    for arr in (res.approved, res.symbol_reasons, res.portfolio_reasons):
        h.update(np.ascontiguousarray(arr).tobytes())
    for key in sorted(res.clipped):
        h.update(key.encode())
        h.update(res.clipped[key].tobytes())
    return h.hexdigest()


def test_deterministic_in_process():
    lim, p, c = _random_case(11)
    chain = RiskGateChain(lim, CostModel())
    assert _digest(chain.apply(p, c)) == _digest(chain.apply(p.copy(), c))


def test_deterministic_across_processes_with_different_hash_seeds():
    code = (
        "import sys; sys.path.insert(0, {tests!r}); import test_risk as t; "
        "from allocgym.risk import RiskGateChain; from allocgym.costs import CostModel; "
        "lim, p, c = t._random_case(11); "
        "print(t._digest(RiskGateChain(lim, CostModel()).apply(p, c)))"
    ).format(tests=str(ROOT / "tests"))
    lim, p, c = _random_case(11)
    here = _digest(RiskGateChain(lim, CostModel()).apply(p, c))
    outs = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outs.append(out.stdout.strip())
    assert outs[0] == outs[1] == here


def test_permutation_equivariance():
    lim, p, c = _random_case(5)
    perm = np.random.default_rng(0).permutation(p.shape[1])
    res = RiskGateChain(lim, CostModel()).apply(p, c)
    cp = dataclasses.replace(
        c,
        current_weights=c.current_weights[:, perm],
        adv_notional=c.adv_notional[:, perm],
        volatility=c.volatility[:, perm],
        spread_bps=c.spread_bps[:, perm],
        sector_ids=c.sector_ids[perm],
        tradable=c.tradable[:, perm],
        betas=c.betas[:, perm],
    )
    resp = RiskGateChain(lim, CostModel()).apply(p[:, perm], cp)
    assert np.allclose(resp.approved, res.approved[:, perm], rtol=1e-10, atol=1e-13)
    assert np.array_equal(resp.symbol_reasons, res.symbol_reasons[:, perm])
    assert np.array_equal(resp.portfolio_reasons, res.portfolio_reasons)
    assert check_invariants(resp, cp, lim, CostModel()).n_breaches == 0


def test_a_portfolio_is_gated_alike_alone_and_in_a_batch():
    """A book ending exactly on its net cap is approved as proposed when gated alone
    (serving); among portfolios of which another breaks the net cap (the env's batch) the
    re-feasibility bound of that other row had cut most of its trade (rev11's repro)."""
    lim = RiskLimits(
        max_symbol_weight=1.0, max_gross=1.0, max_net=0.1, max_sector_gross=1.0,
        long_only=False, max_turnover=100.0, max_participation=0.1,
        slippage_budget_bps=1e6, max_strategy_contribution=10.0,
    )  # fmt: skip
    cur = np.array([[0.02, 0.16, 0.0, 0.21, -0.02], [0.17, -0.19, 0.1, 0.28, 0.26]])
    prop = np.array([[-0.34, 0.33, 0.26, -0.19, -0.06], [0.2, -0.34, -0.5, 0.18, 0.46]])
    adv = np.array(
        [[8488e3, 9672e3, 6873e3, 4460e3, 1677e3], [1973e3, 2994e3, 6177e3, 1703e3, 5527e3]]
    )
    tradable = np.array([[False, True, False, True, True], [True, True, False, True, True]])

    def ctx(rows: list[int]) -> GateContext:
        k = len(rows)
        return GateContext(
            current_weights=cur[rows], equity=np.full(k, 1e6), prices=np.full((k, 5), 50.0),
            adv_notional=adv[rows], volatility=np.full((k, 5), 0.02),
            spread_bps=np.full((k, 5), 5.0), sector_ids=np.array([0, 2, 0, 2, 2]),
            regime=np.zeros(k, np.int64), tradable=tradable[rows],
        )  # fmt: skip

    chain = RiskGateChain(lim, CostModel(), debug=True)
    alone = chain.apply(prop[[0]], ctx([0]))
    assert np.array_equal(alone.approved[0], [0.02, 0.33, 0.0, -0.19, -0.06])
    for order, row in (([0, 1], 0), ([1, 0], 1)):
        batch = chain.apply(prop[order], ctx(order))
        assert np.array_equal(batch.approved[row], alone.approved[0])
        assert np.array_equal(batch.symbol_reasons[row], alone.symbol_reasons[0])
        assert batch.portfolio_reasons[row] == alone.portfolio_reasons[0]


def test_a_held_name_proposed_beyond_big_is_no_uncoded_change():
    """Entries are read clipped to +-1e150: a name that cannot trade (no price), proposed
    and held at 2e150, is approved at 1e150, which the checker had reported as a weight
    changed without a code (rev11)."""
    ctx = GateContext(
        current_weights=np.array([[2e150, 0.0]]), equity=np.array([1e6]),
        prices=np.array([[np.nan, 100.0]]), adv_notional=np.full((1, 2), 1e9),
        volatility=np.full((1, 2), 0.02), spread_bps=np.full((1, 2), 5.0),
        sector_ids=np.arange(2), regime=np.zeros(1, np.int64), tradable=np.ones((1, 2), bool),
    )  # fmt: skip
    lim = RiskLimits(long_only=False)
    res = RiskGateChain(lim).apply(np.array([[2e150, 0.0]]), ctx)
    assert res.approved[0].tolist() == [1e150, 0.0]
    assert check_invariants(res, ctx, lim).ok


def test_the_checker_floor_covers_the_chains_in_currency():
    """The chain's float floor is 1e-300 in weight, up to 1e-285 currency at equity 1e15;
    the checker's had been 1e-290 currency, so it flagged a book the chain approved."""
    lim = RiskLimits(
        max_symbol_notional=1e3, regime_capacity_multipliers=(0.0, 1.0, 1.0, 1.0),
        long_only=False,
    )  # fmt: skip
    ctx = GateContext(
        current_weights=np.zeros((1, 2)), equity=np.array([1e15]),
        prices=np.full((1, 2), 100.0), adv_notional=np.full((1, 2), 1e12),
        volatility=np.full((1, 2), 0.02), spread_bps=np.full((1, 2), 5.0),
        sector_ids=np.arange(2), regime=np.zeros(1, np.int64), tradable=np.ones((1, 2), bool),
    )  # fmt: skip
    res = RiskGateChain(lim).apply(np.array([[5e-301, 0.0]]), ctx)
    assert res.approved[0].tolist() == [5e-301, 0.0]
    assert check_invariants(res, ctx, lim).ok
    over = dataclasses.replace(res, approved=np.array([[1e-12, 0.0]]))
    assert not check_invariants(over, ctx, lim).ok  # 1000 currency over: still caught


def test_an_infinite_trade_cost_is_over_any_slippage_budget():
    """A dust trade (1e-301, inside the participation cap's float floor) in a name with no
    volume costs +inf; the budget test's tolerance, relative to the cost, had let inf pass
    and skipped the portfolio's budget (the full buy approved, no code; rev15)."""
    lim = RiskLimits(
        max_symbol_weight=0.5, max_sector_gross=1.0, max_turnover=2.0, max_participation=0.1,
        slippage_budget_bps=1.0,
    )  # fmt: skip
    ctx = GateContext(
        current_weights=np.zeros((1, 3)), equity=np.array([1e6]), prices=np.full((1, 3), 100.0),
        adv_notional=np.array([[1e6, 0.0, 1e6]]), volatility=np.full((1, 3), 0.02),
        spread_bps=np.full((1, 3), 10.0), sector_ids=np.array([0, 1, 2]),
        regime=np.array([0]), tradable=np.ones((1, 3), bool),
    )  # fmt: skip
    chain = RiskGateChain(lim, CostModel(), debug=True)  # the checker agrees
    clean = chain.apply(np.array([[0.1, 0.0, 0.0]]), ctx)
    assert 0.0 < clean.approved[0, 0] < 0.1
    assert clean.portfolio_reasons[0] & int(ReasonCode.SLIPPAGE_BUDGET)
    dust = chain.apply(np.array([[0.1, 1e-301, 0.0]]), ctx)
    assert dust.approved[0, 0] < 0.1  # not the whole buy
    assert dust.portfolio_reasons[0] & int(ReasonCode.SLIPPAGE_BUDGET)


def test_an_overflowing_strategy_capacity_factor_is_zero_not_nan():
    """Two ratios clamped at max_multiplier = 1e300 overflow their product to inf and a
    third read as 0 made inf x 0 = NaN: NaN clipped amounts, and a family proposing +0.2
    long approved as a short at the symbol cap (rev15)."""
    lim = RiskLimits(
        max_symbol_weight=0.3, max_participation=1.0, max_turnover=2.0,
        slippage_budget_bps=1e4, max_sector_gross=1.0, long_only=False,
        strategy_capacity_spread_bps=1e300, strategy_capacity_volatility=1e300,
        strategy_capacity_adv_to_equity=1e15, max_multiplier=1e300,
    )  # fmt: skip
    weights = np.array([[[0.0, 0.2], [0.1, 0.0]]])
    ctx = GateContext(
        current_weights=np.zeros((1, 2)), equity=np.array([1e6]), prices=np.full((1, 2), 100.0),
        adv_notional=np.full((1, 2), 1e6), volatility=np.full((1, 2), 0.02),
        spread_bps=np.full((1, 2), 10.0), sector_ids=np.array([0, 1]), regime=np.array([0]),
        tradable=np.array([[False, True]]), strategy_weights=weights,
    )  # fmt: skip
    res = RiskGateChain(lim, CostModel(), debug=True).apply(weights.sum(axis=1), ctx)
    # the long family's capacity is 0; the other's name cannot trade
    assert res.approved[0].tolist() == [0.0, 0.0]
    assert all(np.isfinite(v).all() for v in res.clipped.values())
    assert res.strategy_scale is not None and res.strategy_scale[0, 0] == 0.0


def test_idempotent_on_its_own_output():
    lim, p, c = _random_case(9)
    chain = RiskGateChain(lim, CostModel(), debug=True)
    first = chain.apply(p, c)
    again = chain.apply(first.approved, dataclasses.replace(c, current_weights=first.approved))
    assert np.array_equal(again.approved, first.approved)
    assert not again.symbol_reasons.any()
    assert first.symbol_reasons.any()  # the first pass did act


# ----------------------------------------------------------------------------- checker


def test_checker_catches_tampered_results():
    lim, p, c = _random_case(2)
    res = RiskGateChain(lim, CostModel()).apply(p, c)
    assert check_invariants(res, c, lim, CostModel()).ok

    def tampered(**kw):
        return check_invariants(dataclasses.replace(res, **kw), c, lim, CostModel())

    a = res.approved.copy()
    a[0, 0] = 0.5  # above the 0.10 symbol cap
    rep = tampered(approved=a)
    assert rep.n_breaches >= 1 and rep.breached[0] and "symbol cap" in " ".join(rep.messages)
    a = res.approved.copy()
    a[1, 2] = np.nan
    assert tampered(approved=a).breached[1]
    sym = res.symbol_reasons.copy()
    changed = np.argwhere(res.approved != p)[0]
    sym[tuple(changed)] = 0
    assert tampered(symbol_reasons=sym).breached[changed[0]]
    killed = dataclasses.replace(c, kill_switch=np.ones(p.shape[0], bool))
    assert check_invariants(res, killed, lim, CostModel()).breached.all()


def test_debug_mode_raises_on_a_breach(monkeypatch):
    import allocgym.risk.chain as chain

    monkeypatch.setattr(chain, "hard_gates", lambda w, bounds, trace: w)
    with pytest.raises(InvariantBreach, match="breach"):
        RiskGateChain(RiskLimits(), debug=True).apply(np.array([[0.9, 0.9, 0.0, 0.0]]), ctx())


# ----------------------------------------------------------------------------- regime multipliers


def test_multipliers_clamped_and_unknown_label_uses_default():
    cfg = RiskConfig(
        regime_budget_multipliers={"trend": 5.0, "high_volatility": 0.05},
        regime_capacity_multipliers={"high_volatility": 0.5},
        default_budget_multiplier=0.9,
        default_capacity_multiplier=3.0,
        min_multiplier=0.1,
        max_multiplier=2.0,
    )
    lim = RiskLimits.from_config(cfg)
    codes = np.array([0, 1, 2, 3, UNKNOWN_REGIME, 99], dtype=np.int64)
    # trend 5 -> clamp 2; mean_reversion missing -> default 0.9; hv 0.05 -> clamp 0.1
    assert lim.budget_multiplier(codes).tolist() == [2.0, 0.9, 0.1, 0.9, 0.9, 0.9]
    # default capacity 3 -> clamp 2 for every label missing from the map and for unknown
    assert lim.capacity_multiplier(codes).tolist() == [2.0, 2.0, 0.5, 2.0, 2.0, 2.0]
    assert lim.default_regime_code == UNKNOWN_REGIME  # "neutral" is not a known label
    assert lim.regime_codes(None, 3).tolist() == [UNKNOWN_REGIME] * 3


def test_multipliers_drive_the_gates():
    cfg = RiskConfig(
        max_symbol_weight=0.5,
        max_sector_gross=1.0,
        regime_budget_multipliers={"high_volatility": 0.5},
        regime_capacity_multipliers={"high_volatility": 0.4},
        max_turnover=2.0,
        max_participation=1e6,
        slippage_budget_bps=1e6,
    )
    lim = RiskLimits.from_config(cfg)
    p = np.array([[0.3, 0.3, 0.3, 0.0]] * 2)
    c = ctx(2, 4, regime=np.array([regime_code("trend"), regime_code("high_volatility")]))
    res = run(lim, p, c)
    assert np.array_equal(res.approved[0], p[0])
    # high vol: symbol cap 0.5 * 0.4 = 0.2 each, then gross 0.6 > 1.0 * 0.5 -> scaled to 0.5
    assert res.approved[1] == pytest.approx([0.5 / 3] * 3 + [0.0], rel=1e-12)
    assert res.portfolio_reasons[1] & int(R.GROSS_CAP)
    assert (res.symbol_reasons[1, :3] & int(R.SYMBOL_CAP)).all()


def test_limits_defaults_mirror_the_config_and_reject_bad_values():
    assert RiskLimits() == RiskLimits.from_config(RiskConfig())
    with pytest.raises(GateConfigError, match="max_gross"):
        RiskLimits(max_gross=0.0)
    with pytest.raises(GateConfigError, match="min_multiplier"):
        RiskLimits(min_multiplier=3.0, max_multiplier=2.0)
    with pytest.raises(GateConfigError, match="neutral"):
        RiskLimits.from_config(RiskConfig(regime_budget_multipliers={"neutral": 1.0}))
    d = RiskLimits().to_dict()
    assert d["regime_budget_multipliers"] == dict(
        zip(REGIME_LABELS, (1.0, 1.0, 0.6, 0.8), strict=True)
    )


def test_limits_are_a_read_only_view_of_the_config():
    cfg = RiskConfig(max_gross=1.5, default_budget_multiplier=5.0)
    lim = RiskLimits.from_config(cfg)
    assert lim.config is cfg and lim.max_gross == 1.5
    assert lim.default_budget_multiplier == 2.0  # clamped to max_multiplier
    with pytest.raises(AttributeError, match="read-only"):
        lim.max_gross = 2.0
    assert pickle.loads(pickle.dumps(lim)) == lim
    assert lim.replace(max_gross=2.0).max_gross == 2.0 and lim.max_gross == 1.5
    with pytest.raises(GateConfigError, match="max_gross"):
        lim.replace(max_gross=-1.0)
    with pytest.raises(GateConfigError, match="one multiplier per regime label"):
        RiskLimits(regime_budget_multipliers=(1.0, 0.5))


def test_context_rows_select_portfolios():
    c = ctx(3, 4, current_weights=np.arange(12.0).reshape(3, 4) / 100, equity=np.array([1.0, 2, 3]))
    sub = c.rows(np.array([2, 0]), regime=np.array([-1, -1]))
    assert np.array_equal(sub.current_weights, c.current_weights[[2, 0]])
    assert sub.equity.tolist() == [3.0, 1.0] and sub.regime.tolist() == [-1, -1]
    assert sub.sector_ids is c.sector_ids and sub.betas is None


# ----------------------------------------------------------------------------- env loader


def test_env_loader_overrides_the_config():
    env = {
        "TRADING_ALLOCATOR_DEFAULT_REGIME": "uncertain",
        "TRADING_ALLOCATOR_REGIME_BUDGET_MULTIPLIERS": '{"trend": 1.5, "high_volatility": 0.4}',
        "TRADING_ALLOCATOR_REGIME_CAPACITY_MULTIPLIERS": '{"mean_reversion": 0.7}',
        "TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY": "0.05",
        "TRADING_ALLOCATOR_MAX_SYMBOL_NOTIONAL": "250000",
        "TRADING_ALLOCATOR_DEFAULT_BUDGET_MULTIPLIER": "0.9",
        "TRADING_ALLOCATOR_DEFAULT_CAPACITY_MULTIPLIER": "0.8",
        "TRADING_ALLOCATOR_MIN_MULTIPLIER": "0.5",
        "TRADING_ALLOCATOR_MAX_MULTIPLIER": "1.2",
        "TRADING_ALLOCATOR_ENABLED": "true",
        "UNRELATED": "x",
    }
    cfg = limits_from_env(RiskConfig(), env)
    assert cfg.default_regime == "uncertain"
    assert dict(cfg.regime_budget_multipliers) == {"trend": 1.5, "high_volatility": 0.4}
    assert dict(cfg.regime_capacity_multipliers) == {"mean_reversion": 0.7}
    assert cfg.max_symbol_weight == 0.05
    assert cfg.max_symbol_notional == 250_000.0
    assert (cfg.default_budget_multiplier, cfg.default_capacity_multiplier) == (0.9, 0.8)
    assert (cfg.min_multiplier, cfg.max_multiplier) == (0.5, 1.2)
    lim = RiskLimits.from_config(cfg)
    assert lim.default_regime_code == regime_code("uncertain")
    codes = np.array([0, 1, 2, 3, -1])
    assert lim.budget_multiplier(codes).tolist() == [
        1.2,
        0.9,
        0.5,
        0.9,
        0.9,
    ]  # clamped to [0.5, 1.2]
    assert lim.capacity_multiplier(codes).tolist() == [0.8, 0.7, 0.8, 0.8, 0.8]
    assert allocator_enabled(env) is True
    # Unset and empty variables leave the config alone.
    assert limits_from_env(RiskConfig(), {"TRADING_ALLOCATOR_MIN_MULTIPLIER": " "}) == RiskConfig()
    assert (
        limits_from_env(
            RiskConfig(max_symbol_notional=1.0), {"TRADING_ALLOCATOR_MAX_SYMBOL_NOTIONAL": "none"}
        ).max_symbol_notional
        is None
    )


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [
        ("TRADING_ALLOCATOR_REGIME_BUDGET_MULTIPLIERS", "{trend: 1}", "not valid JSON"),
        ("TRADING_ALLOCATOR_REGIME_BUDGET_MULTIPLIERS", "[1, 2]", "JSON object"),
        ("TRADING_ALLOCATOR_REGIME_CAPACITY_MULTIPLIERS", '{"neutral": 1}', "not a regime label"),
        ("TRADING_ALLOCATOR_REGIME_CAPACITY_MULTIPLIERS", '{"trend": -1}', "trend"),
        ("TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY", "ten", "MAX_SYMBOL_PCT_EQUITY"),
        ("TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY", "0", "> 0"),
        ("TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY", "10", r"fraction of equity.*0\.10"),
        ("TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY", "1.5", "fraction of equity"),
        ("TRADING_ALLOCATOR_MAX_MULTIPLIER", "nan", "MAX_MULTIPLIER"),
        ("TRADING_ALLOCATOR_MIN_MULTIPLIER", "5", "MIN_MULTIPLIER"),  # 5 > max 2
    ],
)
def test_env_loader_rejects_malformed_values(var, value, match):
    with pytest.raises(GateConfigError, match=match):
        limits_from_env(RiskConfig(), {var: value})


def test_allocator_enabled_parsing():
    assert allocator_enabled({}) is False
    for raw in ("1", "TRUE", " yes ", "On"):
        assert allocator_enabled({"TRADING_ALLOCATOR_ENABLED": raw}) is True
    for raw in ("0", "false", "", "off"):
        assert allocator_enabled({"TRADING_ALLOCATOR_ENABLED": raw}) is False
    with pytest.raises(GateConfigError, match="TRADING_ALLOCATOR_ENABLED"):
        allocator_enabled({"TRADING_ALLOCATOR_ENABLED": "maybe"})


def test_env_loader_accepts_a_symbol_cap_of_exactly_one():
    cfg = limits_from_env(RiskConfig(), {"TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY": "1"})
    assert cfg.max_symbol_weight == 1.0


def test_env_loader_warns_on_unknown_allocator_variables():
    with pytest.warns(UserWarning, match="TRADING_ALLOCATOR_MAX_SYMBOL_PCT"):
        limits_from_env(RiskConfig(), {"TRADING_ALLOCATOR_MAX_SYMBOL_PCT": "0.1"})


# ----------------------------------------------------------------------------- reason codes


def test_every_reason_code_is_documented_and_gate_codes_are_known():
    for code in ReasonCode:
        assert REASON_DOCS.get(code)
    assert set(GATE_CODES) <= set(REASON_DOCS)
    res = run(RiskLimits(), [[0.5, 0.0, 0.0, 0.0]], ctx())
    # the optional limits are off by default: their entries are absent, every other present
    optional = {"FACTOR_CAP", "SYMBOL_TURNOVER_CAP", "SYMBOL_SLIPPAGE_BUDGET"}
    assert set(res.clipped) == {c.name for c in GATE_CODES} - optional
    assert decode_reasons(int(R.SYMBOL_CAP | R.KILL_SWITCH)) == ("KILL_SWITCH", "SYMBOL_CAP")
    assert decode_reasons(0) == ()


def test_reason_code_doc_is_fresh():
    path = ROOT / "docs" / "reason_codes.md"
    assert path.read_text() == reason_code_table(), (
        "docs/reason_codes.md is stale: run `allocgym risk codes --write docs/reason_codes.md`"
    )
    table = reason_code_table()
    for code in ReasonCode:
        assert f"`{code.name}`" in table
    assert "\\|w_i\\|" in table  # pipes inside the docs are escaped


# ----------------------------------------------------------------------------- shells


def test_bench_gates_quick_rows():
    """``allocgym bench gates``: each row's figures agree with one another (a throughput is
    the inverse of its median latency, the speedup the ratio of the two throughputs), and the
    per-portfolio reference loop decides exactly what the batch decides, so the ratio
    compares the same work."""
    from allocgym.bench.gates import _slice, make_batch
    from allocgym.bench.gates import run as bench_run

    rows = bench_run(quick=True)
    assert [(r["case"], r["n_envs"], r["n_assets"]) for r in rows] == [
        ("single", 1, 20),
        ("single+debug", 1, 20),
        ("batch", 16, 20),
        ("batch", 16, 50),
    ]
    for row in rows[:2]:
        assert 0 < row["p50_us"] <= row["p99_us"]
        assert row["decisions_per_s"] == pytest.approx(1e6 / row["p50_us"], rel=1e-12)
    for row in rows[2:]:
        assert row["speedup"] == pytest.approx(
            row["decisions_per_s"] / row["ref_decisions_per_s"], rel=1e-12
        )
    proposed, ctx, limits, cost = make_batch(16, 20, seed=2)
    chain = RiskGateChain(limits, cost)
    batch = chain.apply(proposed, ctx)
    for i in (0, 7, 15):
        one = chain.apply(proposed[i : i + 1], _slice(ctx, i))
        np.testing.assert_array_equal(one.approved[0], batch.approved[i])
        np.testing.assert_array_equal(one.symbol_reasons[0], batch.symbol_reasons[i])
        assert one.portfolio_reasons[0] == batch.portfolio_reasons[i]


def test_cli_risk_codes_prints_and_writes_the_table(tmp_path):
    from typer.testing import CliRunner

    from allocgym.cli import app

    out = CliRunner().invoke(app, ["risk", "codes"])
    assert out.exit_code == 0
    _assert_reason_code_document(out.output)
    target = tmp_path / "codes.md"
    out = CliRunner().invoke(app, ["risk", "codes", "--write", str(target)])
    assert out.exit_code == 0
    _assert_reason_code_document(target.read_text())


def _assert_reason_code_document(text: str) -> None:
    """The printed table against rows written out by hand (not against the function)."""
    lines = text.splitlines()
    assert lines[0] == "# Reason codes"
    assert "| bit | value | code | set by | meaning |" in lines
    assert (
        "| 0 | 1 | `KILL_SWITCH` | risk gate, portfolio (and the symbols it changed) | "
        "Kill switch engaged: target is flat; supersedes every other rule. |"
    ) in lines
    assert (
        "| 5 | 32 | `SYMBOL_CAP` | risk gate, per symbol | \\|w_i\\| clipped to the per-symbol "
        "cap (pct equity x capacity multiplier). |"
    ) in lines
    rows = [ln.split(" | ") for ln in lines if ln.startswith("| ") and "`" in ln]
    assert len(rows) == 25
    bits = [int(r[0].lstrip("| ")) for r in rows]
    assert bits == list(range(25))  # one row per bit, in order, none skipped
    assert [int(r[1]) for r in rows] == [1 << b for b in bits]
