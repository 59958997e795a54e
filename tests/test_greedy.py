"""Greedy top-K rotation: one hand-built test per rule, tie order, parity with a naive loop,
speed (slow), and the greedy <-> QP engine switch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from allocgym.allocator import AllocationContext, Allocator, primary_source_of, source_of
from allocgym.baselines.engine import OptimizationEngine
from allocgym.baselines.greedy import (
    GreedyCode,
    GreedyRotation,
    greedy_rotation,
    merged_zscores,
)
from allocgym.baselines.qp import QPAllocator
from allocgym.bench import time_calls
from allocgym.config import BaselinesConfig, GreedyConfig, QPConfig, RiskConfig
from allocgym.errors import ConfigError, DataError

# K = 3 names, bought within the top 2, cut below rank 4; target weight 0.9 / 3 = 0.3
# The rules alone: ranked on the context's scores, no exits, no liquidity filter.
P = GreedyConfig(K=3, K_buy=2, K_sell=4, z_keep=0.8, z_cut=0.2, delta_z_min=0.25, budget=0.9,
                 score_horizons=(), horizon_weights=(), atr_multiple=None,
                 dead_money_bars=None, min_adv_notional=0.0, max_spread_bps=None)  # fmt: skip


def _with(params: GreedyConfig, **changes: object) -> GreedyConfig:
    """``params`` with ``changes``, validated like a loaded config."""
    return GreedyConfig(**{**params.model_dump(), **changes})


H, C, B, R, N0 = GreedyCode.HOLD, GreedyCode.CUT, GreedyCode.BUY, GreedyCode.ROTATE, GreedyCode.NONE


def _run(z: list[float], w: list[float], params: GreedyConfig = P, cost: float = 0.001):
    zz, ww = np.array([z]), np.array([w])
    res = greedy_rotation(zz, ww, np.full(zz.shape, cost), params)
    return res.weights[0], res.codes[0].tolist(), res.ranks[0].tolist()


def test_design_default_thresholds() -> None:
    p = BaselinesConfig().greedy
    assert (p.K, p.K_buy, p.K_sell) == (20, 18, 24)
    assert (p.z_keep, p.z_cut, p.delta_z_min, p.tau_utility) == (0.8, 0.2, 0.25, 0.0)
    assert p.budget / p.K == pytest.approx(0.05)  # target weight of a bought name


def test_cut_low_performer_and_hysteresis_hold() -> None:
    # ranks 1..6; no candidate has z > z_keep, so only cut/hold apply
    z = [0.7, 0.6, 0.5, 0.4, 0.2, 0.1]
    w = [0.0, 0.0, 0.0, 0.3, 0.3, 0.3]
    weights, codes, ranks = _run(z, w)
    assert ranks == [1, 2, 3, 4, 5, 6]
    # symbol 3: rank 4 <= K_sell -> hold; symbol 4: rank 5 > K_sell but z = z_cut (not below)
    # -> hold; symbol 5: rank 6 > K_sell and z 0.1 < z_cut -> cut
    assert codes == [N0, N0, N0, H, H, C]
    assert weights.tolist() == [0.0, 0.0, 0.0, 0.3, 0.3, 0.0]


def test_buy_better_names_into_free_slots() -> None:
    z = [2.0, 1.5, 1.0, 0.9, 0.0]
    weights, codes, _ = _run(z, [0.0] * 5)
    # 3 free slots, but only ranks <= K_buy = 2 with z > z_keep qualify
    assert codes == [B, B, N0, N0, N0]
    assert weights.tolist() == [0.3, 0.3, 0.0, 0.0, 0.0]


def test_buy_needs_z_above_z_keep() -> None:
    weights, codes, _ = _run([0.8, 0.5, 0.1], [0.0] * 3)
    assert codes == [N0, N0, N0]  # z = z_keep is not above it
    assert not weights.any()


def test_rotate_green_to_better() -> None:
    z = [2.0, 1.5, 1.0, 0.9, 0.85, 0.1]
    w = [0.0, 0.0, 0.3, 0.3, 0.3, 0.0]
    weights, codes, _ = _run(z, w)
    # book full (K = 3). best leftover candidate 0 replaces the weakest held 4
    # (dz = 1.15), candidate 1 replaces 3 (dz = 0.6); 2 is held
    assert codes == [R, R, H, R, R, N0]
    assert np.allclose(weights, [0.3, 0.3, 0.3, 0.0, 0.0, 0.0], rtol=0, atol=0)


def test_rotation_needs_delta_z_min() -> None:
    z = [1.0, 0.95, 0.9, 0.85, 0.82, 0.0]
    w = [0.0, 0.0, 0.3, 0.3, 0.3, 0.0]
    # pairs (0 in, 4 out): dz = 0.18 < 0.25; (1 in, 3 out): dz = 0.10 -> no rotation
    weights, codes, _ = _run(z, w)
    assert codes == [N0, N0, H, H, H, N0]
    assert weights.tolist() == w
    # lowering delta_z_min to 0.15 lets the first pair rotate only
    p = _with(P, delta_z_min=0.15)
    weights, codes, _ = _run(z, w, p)
    assert codes == [R, N0, H, H, R, N0]


def test_rotation_needs_utility_above_tau() -> None:
    z = [2.0, 1.5, 1.0, 0.9, 0.85, 0.1]
    w = [0.0, 0.0, 0.3, 0.3, 0.3, 0.0]
    # utility of (0 in, 4 out) = 0.3 * 2.0 - 0.3 * 0.85 - gamma * (c_in 0.3 + c_out 0.3)
    u0 = 0.3 * 2.0 - 0.3 * 0.85 - 0.05 * (0.001 * 0.3 + 0.001 * 0.3)
    u1 = 0.3 * 1.5 - 0.3 * 0.9 - 0.05 * (0.001 * 0.3 + 0.001 * 0.3)
    p = _with(P, tau_utility=(u0 + u1) / 2)
    _, codes, _ = _run(z, w, p)
    assert codes == [R, N0, H, H, R, N0]
    # costs enter the utility: huge costs block every rotation
    _, codes, _ = _run(z, w, P, cost=1e4)
    assert codes == [N0, N0, H, H, H, N0]


def test_ties_are_broken_by_symbol_index() -> None:
    weights, codes, ranks = _run([1.0, 1.0, 1.0, 1.0], [0.0] * 4)
    assert weights.tolist() == [0.3, 0.3, 0.0, 0.0]
    assert ranks == [1, 2, 3, 4]
    assert codes == [B, B, N0, N0]
    z = [0.5, 1.2, 1.2, 1.2]
    _, codes, ranks = _run(z, [0.0] * 4)
    assert ranks == [4, 1, 2, 3]
    assert codes == [N0, B, B, N0]
    # negative zero ties with zero
    _, _, ranks = _run([0.0, -0.0, 0.0], [0.0] * 3)
    assert ranks == [1, 2, 3]


def test_short_closed_and_nan_never_bought() -> None:
    weights, codes, ranks = _run([math.nan, 2.0, 1.9, 0.5], [0.0, 0.0, 0.0, -0.1])
    assert ranks[0] == 4
    assert codes == [N0, B, B, C]
    assert weights.tolist() == [0.0, 0.3, 0.3, 0.0]


def _naive(
    z: np.ndarray, w: np.ndarray, c: np.ndarray, p: GreedyConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Scalar reference: the rules of the module docstring as a plain loop."""
    n = z.size
    zz = [(-math.inf if math.isnan(v) else float(v)) for v in z]
    order = sorted(range(n), key=lambda i: (-zz[i], i))
    rank = {i: r + 1 for r, i in enumerate(order)}
    out, codes = np.zeros(n), np.zeros(n, dtype=np.int64)
    kept = []
    for i in range(n):
        if w[i] < 0 or (w[i] > 0 and rank[i] > p.K_sell and zz[i] < p.z_cut):
            codes[i] = GreedyCode.CUT
        elif w[i] > 0:
            codes[i], out[i] = GreedyCode.HOLD, w[i]
            kept.append(i)
    free = max(p.K - len(kept), 0)
    cands = [i for i in order if w[i] == 0 and rank[i] <= p.K_buy and zz[i] > p.z_keep]
    wt = p.budget / p.K
    for i in cands[:free]:
        codes[i], out[i] = GreedyCode.BUY, wt
    weak = [i for i in reversed(order) if i in kept]
    for j_in, j_out in zip(cands[free:], weak, strict=False):
        util = (
            zz[j_in] * wt
            - zz[j_out] * w[j_out]
            - p.gamma_cost * (c[j_in] * wt + c[j_out] * w[j_out])
        )
        if zz[j_in] - zz[j_out] >= p.delta_z_min and util > p.tau_utility:
            codes[j_in] = codes[j_out] = GreedyCode.ROTATE
            out[j_in], out[j_out] = wt, 0.0
    return out, codes


@settings(deadline=None, max_examples=80)
@given(
    n_envs=st.integers(1, 4),
    n=st.integers(1, 40),
    seed=st.integers(0, 2**31 - 1),
    k=st.integers(1, 8),
    ties=st.booleans(),
)
def test_matches_naive_loop(n_envs: int, n: int, seed: int, k: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(0.5, 1.0, (n_envs, n))
    if ties:
        z = np.round(z * 2) / 2
    z[rng.random((n_envs, n)) < 0.05] = np.nan
    w = np.where(rng.random((n_envs, n)) < 0.3, rng.uniform(0.01, 0.1, (n_envs, n)), 0.0)
    w[rng.random((n_envs, n)) < 0.05] = -0.02
    c = rng.uniform(0, 0.01, (n_envs, n))
    p = GreedyConfig(K=k, K_buy=max(1, k - 1), K_sell=k + 2, delta_z_min=0.25, budget=1.0)
    res = greedy_rotation(z, w, c, p)
    for e in range(n_envs):
        ref_w, ref_c = _naive(z[e], w[e], c[e], p)
        assert np.array_equal(res.codes[e], ref_c)
        assert np.array_equal(res.weights[e], ref_w)
    held = (res.weights > 0).sum(axis=1)
    assert np.all(held <= np.maximum(k, (w > 0).sum(axis=1)))


def _ctx(z: np.ndarray, w: np.ndarray, n_obs: int = 60) -> AllocationContext:
    n_envs, n = z.shape
    rng = np.random.default_rng(0)
    return AllocationContext(
        returns=rng.normal(0, 0.01, (n_envs, n_obs, n)),
        current_weights=w,
        symbols=tuple(f"S{i}" for i in range(n)),
        sector_ids=np.arange(n) % 3,
        regime=np.zeros(n_envs, dtype=int),
        regime_confidence=np.ones(n_envs),
        scores=z,
    )


def test_allocator_attributes_and_errors() -> None:
    z = np.array([[2.0, 1.5, 1.0, 0.9, 0.0]])
    alloc = GreedyRotation(P)
    assert isinstance(alloc, Allocator)
    w = alloc.allocate(_ctx(z, np.zeros((1, 5))))
    assert w.tolist() == [[0.3, 0.3, 0.0, 0.0, 0.0]]
    assert alloc.codes_.tolist() == [[B, B, N0, N0, N0]]
    assert alloc.ranks_.tolist() == [[1, 2, 3, 4, 5]]
    ctx = _ctx(z, np.zeros((1, 5)))
    with pytest.raises(DataError, match="scores"):
        alloc.allocate(AllocationContext(**{**ctx.__dict__, "scores": None}))
    with pytest.raises(ValidationError, match="K_buy <= K <= K_sell"):
        GreedyConfig(K=10, K_buy=12, K_sell=14)
    with pytest.raises(ValidationError, match="z_cut"):
        GreedyConfig(z_cut=1.0, z_keep=0.5)


def test_engine_switches_and_records_sources() -> None:
    n = 12
    z = np.random.default_rng(1).normal(0, 1, (2, n))
    ctx = _ctx(z, np.zeros((2, n)))
    # a sector cap of 1 cannot bind the fully invested long-only book
    qp = QPAllocator.from_config(QPConfig(), risk=RiskConfig(max_sector_gross=1.0))
    engine = OptimizationEngine(GreedyRotation(P), qp)
    assert isinstance(engine, Allocator)
    assert engine.active_engine == "greedy"
    w_greedy = engine.allocate(ctx)
    assert np.array_equal(w_greedy, GreedyRotation(P).allocate(ctx))
    assert engine.selection_records() is not None
    engine.switch_engine("qp")
    w_qp = engine.allocate(ctx)
    assert np.allclose(w_qp.sum(axis=1), 1.0, atol=1e-7)
    assert engine.selection_records() is None  # the QP's call: no stale greedy records
    engine.switch_engine("qp")  # no-op: already active
    engine.switch_engine("greedy")
    engine.allocate(ctx)
    assert [d.engine for d in engine.decisions_] == ["greedy", "qp", "greedy"]
    assert engine.decisions_[0].sources == ("greedy", "greedy")
    assert engine.decisions_[1].sources == ("qp:CLARABEL", "qp:CLARABEL")
    assert engine.switches_ == [(1, "greedy", "qp"), (2, "qp", "greedy")]
    with pytest.raises(ConfigError, match="unknown"):
        engine.switch_engine("lp")  # type: ignore[arg-type]


def test_engine_from_config_records_qp_fallback() -> None:
    # 8 names x 0.05 < a budget of 1: infeasible, HRP serves the rebalance
    cfg = BaselinesConfig.model_validate({"engine": "qp", "qp": {"per_name_cap": 0.05}})
    engine = OptimizationEngine.from_config(cfg)
    assert engine.active_engine == "qp"
    z = np.random.default_rng(2).normal(0, 1, (1, 8))
    engine.allocate(_ctx(z, np.zeros((1, 8))))
    assert engine.decisions_[0].sources == ("hrp",)
    assert engine.engines["qp"].fallback_chain_[0][-1] == ("hrp", "ok")
    # the evaluation counts it as the QP's fallback, as it does for the QP itself
    assert source_of(engine, 0) == "hrp" and primary_source_of(engine) == "qp:CLARABEL"
    assert engine.selection_records() is None  # the QP selects no names


def test_engine_running_greedy_writes_the_greedy_selection_audit() -> None:
    n = 12
    z = np.random.default_rng(1).normal(0, 1, (2, n))
    ctx = _ctx(z, np.zeros((2, n)))
    engine = OptimizationEngine.from_config(BaselinesConfig())
    alone = GreedyRotation(P)
    engine.engines["greedy"] = GreedyRotation(P)
    engine.allocate(ctx)
    alone.allocate(ctx)
    assert primary_source_of(engine) == "greedy" and engine.source_ == ["greedy", "greedy"]
    assert engine.selection_records() == alone.selection_records()


@pytest.mark.slow
def test_under_2ms_at_5000_names() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    z = rng.normal(0, 1, (1, n))
    w = np.zeros((1, n))
    w[0, rng.choice(n, 20, replace=False)] = 0.05
    c = np.full((1, n), 0.001)
    p = GreedyConfig()
    assert np.median(time_calls(lambda: greedy_rotation(z, w, c, p), repeat=31)) <= 2e-3


# ------------------------------------------------------------- exits, filters, merged scores


def _ctx_at(
    t: int, returns: np.ndarray, w: np.ndarray, z: np.ndarray, **extra: np.ndarray
) -> AllocationContext:
    n = w.shape[1]
    return AllocationContext(
        returns=returns[None],
        current_weights=w,
        symbols=tuple(f"S{i}" for i in range(n)),
        sector_ids=np.zeros(n, dtype=int),
        regime=np.zeros(1, dtype=int),
        regime_confidence=np.ones(1),
        scores=z,
        t=np.array([t]),
        **extra,
    )


def test_design_defaults_for_exits() -> None:
    """The optimisation design's defaults: "k_ATR=1.2, Tmax_min=120  # Risk and time
    limits" (the timeout counted in bars: 120 one-minute bars)."""
    cfg = BaselinesConfig().greedy
    assert cfg.atr_multiple == 1.2 and cfg.dead_money_bars == 120


@pytest.mark.parametrize(("k_atr", "exits"), [(1.2, True), (2.0, False)])
def test_atr_exit_by_hand(k_atr: float, exits: bool) -> None:
    """ "k_ATR=1.2 ... # Risk and time limits": a held name that fell k_ATR ATRs from its
    high since entry is cut and not bought back in the same decision.

    ATR over 10 bars = (9 x 0.01 + 0.02) / 10 = 0.011 (one bar since the last decision);
    S0 fell 2 %: the stop is 1.2 x 1.1 % = 1.32 % (hit) or 2.0 x 1.1 % = 2.2 % (not hit).
    """
    p = _with(P, atr_multiple=k_atr, atr_window=10)
    alloc = GreedyRotation(p)
    r = np.tile([[0.01, 0.01, 0.01], [-0.01, -0.01, -0.01]], (5, 1))
    w = np.array([[0.3, 0.3, 0.0]])
    z = np.array([[2.0, 1.0, 0.0]])
    alloc.allocate(_ctx_at(0, r, w, z))
    assert alloc.codes_[0].tolist() == [H, H, N0]
    r2 = np.vstack([r[1:], [[-0.02, -0.005, 0.0]]])
    out = alloc.allocate(_ctx_at(1, r2, w, z))
    if exits:
        assert alloc.codes_[0, 0] == GreedyCode.ATR_EXIT and out[0, 0] == 0.0
        assert alloc.selection_records()[0]["exited"] == {"S0": "atr_exit"}
    else:
        assert alloc.codes_[0].tolist() == [H, H, N0] and out[0, 0] == 0.3
    assert alloc.codes_[0, 1] == H


def test_dead_money_timeout_by_hand() -> None:
    """ "**Time-aware**: Cuts dead money after timeout": a name held dead_money_bars bars or
    more whose return since entry is at or below dead_money_min_return is cut.

    S0 is flat since entry (return 0 <= 0: no progress), S1 gained 0.1 % a bar. At bar 2
    (held 2 bars < 3) both are kept; at bar 3 (held 3 bars) S0 is cut, S1 kept."""
    p = _with(P, dead_money_bars=3)
    alloc = GreedyRotation(p)
    r = np.tile([[0.0, 0.001, 0.0]], (10, 1))
    w = np.array([[0.3, 0.3, 0.0]])
    z = np.array([[2.0, 1.0, 0.0]])
    alloc.allocate(_ctx_at(0, r, w, z))
    alloc.allocate(_ctx_at(2, r, w, z))
    assert alloc.codes_[0].tolist() == [H, H, N0]
    out = alloc.allocate(_ctx_at(3, r, w, z))
    assert alloc.codes_[0].tolist() == [GreedyCode.DEAD_MONEY, H, N0]
    assert out[0].tolist() == [0.0, 0.3, 0.0]
    assert alloc.selection_records()[0]["exited"] == {"S0": "dead_money"}
    # A new walk (bar not after the previous decision) restarts the clock.
    alloc.allocate(_ctx_at(0, r, w, z))
    assert alloc.codes_[0].tolist() == [H, H, N0]


def test_liquidity_filter_blocks_illiquid_names() -> None:
    """ "**Liquidity-aware**: Blocks trading in illiquid names": ADV below min_adv_notional
    or spread above max_spread_bps is never bought; a held illiquid name is kept."""
    p = _with(P, K_buy=3, min_adv_notional=1e6, max_spread_bps=50.0)
    z = np.array([[3.0, 2.5, 2.0, 1.5, 1.0]])
    w = np.array([[0.0, 0.0, 0.0, 0.0, 0.3]])
    adv = np.array([[5e5, 2e6, 2e6, 2e6, 1e5]])
    spread = np.array([[5.0, 80.0, 50.0, 5.0, 5.0]])
    alloc = GreedyRotation(p)
    r = np.zeros((5, 5))
    out = alloc.allocate(_ctx_at(0, r, w, z, adv_notional=adv, spread_bps=spread))
    I = GreedyCode.ILLIQUID  # noqa: E741
    # Blocked names keep their rank: only S2 (rank 3 <= K_buy) is bought.
    assert alloc.codes_[0].tolist() == [I, I, B, N0, H]
    assert out[0].tolist() == [0.0, 0.0, 0.3, 0.0, 0.3]
    assert alloc.selection_records()[0]["blocked"] == {"S0": "illiquid", "S1": "illiquid"}
    with pytest.raises(DataError, match="min_adv_notional"):
        GreedyRotation(p).allocate(_ctx_at(0, r, w, z))


def test_merged_zscores_by_hand() -> None:
    """ "**Outputs**: Risk-scaled z-scores" of "get_model_scores(symbols, horizons)":
    per horizon sum(log(1 + r)) / (sigma sqrt(h)), standardised across names, merged with
    the horizon weights and standardised again."""
    rng = np.random.default_rng(3)
    r = rng.normal(0.0, 0.01, (1, 8, 4))
    p = GreedyConfig(score_horizons=(2, 6), horizon_weights=(3.0, 1.0), vol_window=8)
    got = merged_zscores(r, p)
    logr = np.log1p(r[0])
    sigma = logr.std(axis=0, ddof=1)

    def zs(x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) / x.std()

    m2 = zs(logr[-2:].sum(axis=0) / (sigma * math.sqrt(2)))
    m6 = zs(logr[-6:].sum(axis=0) / (sigma * math.sqrt(6)))
    assert np.allclose(got[0], zs(0.75 * m2 + 0.25 * m6), atol=1e-12)
    other = merged_zscores(r, _with(p, horizon_weights=(0.0, 1.0)))
    assert np.allclose(other[0], m6, atol=1e-12)
    with pytest.raises(DataError, match="lookback"):
        merged_zscores(r[:, :5], p)
    with pytest.raises(ValidationError, match="give one per horizon"):
        _with(p, horizon_weights=(1.0,))


def test_correlation_cap_skips_a_candidate_twin() -> None:
    """The optional cap on pairwise correlation among held names: S1 moves with the held
    S0 (correlation 1 > 0.9) and is skipped; S2 (uncorrelated) is bought instead."""
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(0, 0.01, (3, 40))
    r = np.stack([a, 2 * a, b, c], axis=1)
    p = _with(P, max_pair_correlation=0.9, corr_window=40)
    z = np.array([[1.0, 3.0, 2.0, 0.0]])
    w = np.array([[0.3, 0.0, 0.0, 0.0]])
    alloc = GreedyRotation(p)
    out = alloc.allocate(_ctx_at(0, r, w, z))
    assert alloc.codes_[0].tolist() == [H, GreedyCode.CORRELATED, B, N0]
    assert out[0].tolist() == [0.3, 0.0, 0.3, 0.0]
    free = GreedyRotation(_with(P, corr_window=40)).allocate(_ctx_at(0, r, w, z))
    assert free[0].tolist() == [0.3, 0.3, 0.3, 0.0]


def test_correlation_cap_screens_against_the_names_kept_not_the_ones_cut() -> None:
    """A held name this decision cuts neither blocks its twin among the candidates nor
    lets two twin candidates in together: the screen is the book after the cuts."""
    rng = np.random.default_rng(0)
    a, b, c, d = rng.normal(0, 0.01, (4, 40))
    # S0 and S1 are twins; S3 (held) is S2's twin; S4, S5 held and cut with S3
    r = np.stack([a, 2 * a, b, 3 * b, c, d], axis=1)
    p = _with(P, K=3, K_buy=3, K_sell=3, max_pair_correlation=0.5, corr_window=40)
    z = np.array([[2.0, 1.9, 1.5, -1.0, -1.1, -1.2]])
    held = np.array([[0.0, 0.0, 0.0, 0.3, 0.3, 0.3]])
    alloc = GreedyRotation(p)
    out = alloc.allocate(_ctx_at(0, r, held, z))
    assert alloc.codes_[0].tolist() == [B, GreedyCode.CORRELATED, B, C, C, C]
    cash = GreedyRotation(p).allocate(_ctx_at(0, r, np.zeros((1, 6)), z))
    assert out[0].tolist() == cash[0].tolist() == [0.3, 0.0, 0.3, 0.0, 0.0, 0.0]


def test_a_sale_held_back_keeps_its_entry_clock() -> None:
    """S0 dead money at bar 3 is cut, but the gates keep it (a halt, a turnover cap): at
    bar 4 it is still held, entered at bar 0, and cut again; it had re-entered at bar 4
    with a fresh clock and been kept."""
    p = _with(P, dead_money_bars=3)
    alloc = GreedyRotation(p)
    r = np.tile([[0.0, 0.001, 0.0]], (10, 1))
    w = np.array([[0.3, 0.3, 0.0]])
    z = np.array([[2.0, 1.0, 0.0]])
    alloc.allocate(_ctx_at(0, r, w, z))
    assert alloc.allocate(_ctx_at(3, r, w, z))[0, 0] == 0.0  # cut: the target sells S0
    out = alloc.allocate(_ctx_at(4, r, w, z))  # the book still holds it
    assert alloc.codes_[0, 0] == GreedyCode.DEAD_MONEY and out[0, 0] == 0.0
    assert alloc._entry_t[0].tolist() == [0, 0, -1]
    # a name the book no longer holds (and the decision does not buy back) is forgotten
    alloc.allocate(_ctx_at(5, r, np.array([[0.0, 0.3, 0.0]]), np.array([[-1.0, 1.0, 0.0]])))
    assert alloc._entry_t[0].tolist() == [-1, 0, -1]


def test_a_flat_window_is_no_atr_stop() -> None:
    """A held name at its high with 10 bars of zero returns (ATR 0, e.g. a halt) is kept:
    a stop of 0 had cut it (its fall from the high, 0, is <= 0)."""
    p = _with(P, atr_multiple=1.2, atr_window=10)
    alloc = GreedyRotation(p)
    r = np.tile([[0.01, 0.01, 0.01]], (12, 1))
    w = np.array([[0.3, 0.3, 0.0]])
    z = np.array([[2.0, 1.0, 0.0]])
    alloc.allocate(_ctx_at(0, r, w, z))
    flat = r.copy()
    flat[-10:, 0] = 0.0
    alloc.allocate(_ctx_at(10, flat, w, z))
    assert alloc.codes_[0].tolist() == [H, H, N0]


def test_back_to_greedy_after_a_long_qp_stretch_starts_its_entries_afresh() -> None:
    """Greedy at bar 0, the QP for bars 21..84 (more than the 63-bar window), greedy again
    at bar 105: its entries start from the book then held (replaying the 105 bars had
    raised DataError)."""
    n = 6
    greedy = GreedyRotation(_with(P, dead_money_bars=120))
    engine = OptimizationEngine(greedy, QPAllocator(QPConfig()), engine="greedy")
    rng = np.random.default_rng(1)
    r = rng.normal(0.0, 0.01, (63, n))
    w = np.array([[0.3, 0.3, 0.0, 0.0, 0.0, 0.0]])
    z = np.array([[2.0, 1.0, 0.5, 0.0, -0.5, -1.0]])
    engine.allocate(_ctx_at(0, r, w, z))
    engine.switch_engine("qp")
    for t in (21, 42, 63, 84):
        engine.allocate(_ctx_at(t, r, w, z))
    engine.switch_engine("greedy")
    engine.allocate(_ctx_at(105, r, w, z))
    assert greedy._entry_t[0, :2].tolist() == [105, 105]
