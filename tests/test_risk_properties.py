"""Property tests of RiskGateChain: 0 invariant breaches over random limits, contexts and
proposals (NaN, +-inf, 1e308, subnormals, -0.0, all-zero rows included).

Each hypothesis example draws the limits and a seed; the seed generates a batch of 1000
portfolios, so the default run tries >= 100k cases and the slow run 1e6.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocgym.costs import CostModel
from allocgym.risk import GateContext, ReasonCode, RiskGateChain, RiskLimits, check_invariants

BATCH = 1000
SPECIALS = np.array(
    [np.nan, np.inf, -np.inf, 1e308, -1e308, 5e-324, -5e-324, -0.0, 0.0, 2.2e-308, 1e-300]
)


def _opt(strategy):
    return st.none() | strategy


@st.composite
def limits_strategy(draw, factor: bool = False) -> RiskLimits:
    """Random limits; ``factor``: with a factor-exposure cap (drawn last, so the other
    limits are drawn as without it)."""
    lo = draw(st.floats(0.0, 1.0))
    hi = draw(st.floats(lo, 3.0))
    mult = st.floats(0.0, 3.0)
    fields = dict(
        max_symbol_weight=draw(st.floats(1e-4, 1.0)),
        max_symbol_notional=draw(_opt(st.floats(1e3, 1e7))),
        max_gross=draw(st.floats(1e-3, 3.0)),
        max_net=draw(st.sampled_from([0.0, 1e-6]) | st.floats(0.0, 2.0)),
        max_gross_notional=draw(_opt(st.floats(1e4, 1e7))),
        max_sector_gross=draw(st.floats(1e-3, 2.0)),
        beta_tolerance=draw(_opt(st.sampled_from([0.0]) | st.floats(0.0, 1.0))),
        long_only=draw(st.booleans()),
        max_strategy_contribution=draw(st.floats(1e-3, 2.0)),
        max_turnover=draw(st.floats(1e-4, 3.0)),
        max_participation=draw(st.floats(1e-4, 1.0)),
        slippage_budget_bps=draw(st.floats(1e-2, 200.0)),
        regime_budget_multipliers=tuple(draw(mult) for _ in range(4)),
        regime_capacity_multipliers=tuple(draw(mult) for _ in range(4)),
        default_budget_multiplier=draw(mult),
        default_capacity_multiplier=draw(mult),
        min_multiplier=lo,
        max_multiplier=hi,
        kill_switch=draw(st.sampled_from([False] * 19 + [True])),
        reduce_only=draw(st.sampled_from([False] * 9 + [True])),
    )
    if factor:
        fields["max_factor_exposure"] = draw(st.sampled_from([0.0]) | st.floats(0.0, 1.0))
    return RiskLimits(**fields)


def _sprinkle(rng: np.random.Generator, x: np.ndarray, p: float, values: np.ndarray) -> np.ndarray:
    mask = rng.random(x.shape) < p
    return np.where(mask, rng.choice(values, size=x.shape), x)


def make_case(
    seed: int, lim: RiskLimits, n: int = BATCH
) -> tuple[np.ndarray, GateContext, CostModel]:
    """A batch of random portfolios: a mix of sane, boundary and hostile inputs."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 13))
    n_sectors = int(rng.integers(1, m + 1))
    scale = rng.choice([0.01, 0.1, 0.5, 3.0], size=(n, 1))
    low = 0.0 if (lim.long_only and rng.random() < 0.5) else -1.0
    proposed = rng.uniform(low, 1.0, (n, m)) * scale
    proposed = _sprinkle(rng, proposed, 0.01, SPECIALS)
    proposed[rng.random(n) < 0.03] = 0.0
    proposed[rng.random(n) < 0.02] = -0.0
    cur = rng.uniform(-0.5, 1.0, (n, m)) * rng.choice([0.0, 0.02, 0.1, 0.5], size=(n, 1))
    cur = _sprinkle(rng, cur, 0.002, SPECIALS)
    equity = np.exp(rng.uniform(np.log(1e4), np.log(1e8), n))
    equity = _sprinkle(rng, equity, 0.005, np.array([np.nan, 0.0, -1.0, np.inf, 5e-324]))
    strategy = None
    if rng.random() < 0.3:
        k = int(rng.integers(1, 4))
        strategy = rng.uniform(-0.5, 1.0, (n, k, m)) * scale[:, :, None] / k
        strategy = _sprinkle(rng, strategy, 0.001, SPECIALS)
        proposed = np.where(rng.random((n, 1)) < 0.9, strategy.sum(axis=1), proposed)
    ctx = GateContext(
        current_weights=cur,
        equity=equity,
        prices=_sprinkle(rng, rng.uniform(5, 500, (n, m)), 0.005, np.array([np.nan, 0.0, -1.0])),
        adv_notional=_sprinkle(
            rng,
            np.exp(rng.uniform(np.log(1e3), np.log(1e10), (n, m))),
            0.01,
            np.array([0.0, np.nan, 1e-300]),
        ),
        volatility=_sprinkle(rng, rng.uniform(0.0, 0.08, (n, m)), 0.005, np.array([0.0, np.nan])),
        spread_bps=_sprinkle(
            rng, rng.uniform(0.0, 60.0, (n, m)), 0.005, np.array([0.0, np.nan, -1.0])
        ),
        sector_ids=rng.integers(0, n_sectors, m),
        regime=rng.integers(-2, 6, n),
        tradable=rng.random((n, m)) < 0.95,
        betas=_sprinkle(rng, rng.normal(1.0, 0.6, (n, m)), 0.001, np.array([np.nan, 1e9])),
        kill_switch=rng.random(n) < 0.02,
        reduce_only=rng.random(n) < 0.1,
        strategy_weights=strategy,
    )
    cost = CostModel(
        commission_bps=float(rng.uniform(0, 5)),
        spread_mult=float(rng.uniform(0, 2)),
        impact_k=float(rng.uniform(0, 1)),
    )
    if lim.max_factor_exposure is not None:
        # Loadings of 1-4 factors, per portfolio or one matrix for all, a few corrupt.
        k = int(rng.integers(1, 5))
        shape = (n, m, k) if rng.random() < 0.7 else (m, k)
        loadings = rng.normal(0.0, 1.0 / np.sqrt(m), shape)
        loadings = _sprinkle(rng, loadings, 0.0005, np.array([np.nan, np.inf, 1e9]))
        ctx = dataclasses.replace(ctx, factor_loadings=loadings)
    return proposed, ctx, cost


def _check_batch(seed: int, lim: RiskLimits) -> None:
    proposed, ctx, cost = make_case(seed, lim)
    chain = RiskGateChain(lim, cost)
    # Half the current books are the chain's own output: books sitting exactly at limits.
    warm = chain.apply(proposed[::-1].copy(), ctx)
    use = np.random.default_rng(seed + 1).random(proposed.shape[0]) < 0.5
    cur = np.where(use[:, None], warm.approved, ctx.current_weights)
    ctx = dataclasses.replace(ctx, current_weights=cur)
    res = chain.apply(proposed, ctx)

    report = check_invariants(res, ctx, lim, cost)
    assert report.n_breaches == 0, report.messages[:20]
    assert np.isfinite(res.approved).all()
    bad = ~np.isfinite(proposed).all(axis=1)
    assert (res.portfolio_reasons[bad] & int(ReasonCode.INVALID_INPUT)).all()
    nonfinite = ~np.isfinite(proposed)
    assert (res.symbol_reasons[nonfinite] & int(ReasonCode.INVALID_INPUT)).all()

    # Idempotent: the approved book, gated again from itself, is approved unchanged
    # (without the strategy contributions, which described the original proposal).
    ctx2 = dataclasses.replace(ctx, current_weights=res.approved, strategy_weights=None)
    again = chain.apply(res.approved, ctx2)
    assert np.array_equal(again.approved, res.approved)

    # Batch-independent: a portfolio gated alone (serving, B = 1) gets the book and the
    # codes it gets among the others (the env's batch)
    for i in np.random.default_rng(seed + 2).choice(proposed.shape[0], ROWS_ALONE, replace=False):
        alone = chain.apply(proposed[i : i + 1], _row(ctx, int(i)))
        assert np.array_equal(alone.approved[0], res.approved[i]), (seed, i)
        assert np.array_equal(alone.symbol_reasons[0], res.symbol_reasons[i]), (seed, i)
        assert alone.portfolio_reasons[0] == res.portfolio_reasons[i], (seed, i)


ROWS_ALONE = 12
"""Portfolios of each batch also gated alone."""


def _row(ctx: GateContext, i: int) -> GateContext:
    """The context of portfolio ``i`` alone: every per-portfolio field's row ``i``."""
    n = np.asarray(ctx.current_weights).shape[0]
    out = {}
    for f in dataclasses.fields(ctx):
        v = getattr(ctx, f.name)
        if f.name != "sector_ids" and isinstance(v, np.ndarray) and v.ndim and v.shape[0] == n:
            v = v[i : i + 1]
        out[f.name] = v
    return GateContext(**out)


@settings(
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(lim=limits_strategy(), seed=st.integers(0, 2**32 - 1))
def test_no_breach_over_100k_random_portfolios(lim, seed):
    _check_batch(seed, lim)


@settings(
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(lim=limits_strategy(factor=True), seed=st.integers(0, 2**32 - 1))
def test_no_breach_over_100k_random_portfolios_with_a_factor_cap(lim, seed):
    assert lim.max_factor_exposure is not None
    _check_batch(seed, lim)


@pytest.mark.slow
@settings(
    deadline=None,
    max_examples=1000,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(lim=limits_strategy(), seed=st.integers(0, 2**32 - 1))
def test_no_breach_over_1e6_random_portfolios(lim, seed):
    _check_batch(seed, lim)


def test_example_counts_reach_100k_and_1e6_cases():
    fast = test_no_breach_over_100k_random_portfolios._hypothesis_internal_use_settings
    slow = test_no_breach_over_1e6_random_portfolios._hypothesis_internal_use_settings
    assert fast.max_examples * BATCH >= 100_000
    assert slow.max_examples * BATCH >= 1_000_000


_SUBNORMAL = dict(
    max_symbol_weight=1.0,
    max_gross=1.0,
    max_net=0.0,
    max_sector_gross=1.0,
    max_strategy_contribution=1.0,
    max_turnover=1.0,
    max_participation=0.5,
    slippage_budget_bps=1.0,
    regime_budget_multipliers=(0.0, 0.0, 0.0, 0.0),
    default_budget_multiplier=0.0,
    default_capacity_multiplier=0.0,
    max_multiplier=1.0,
)


@pytest.mark.parametrize(
    ("seed", "capacity", "min_multiplier", "long_only"),
    [
        (87768, (0.0, 0.0, 5e-324, 0.0), 0.0, True),
        (22232, (0.0, 0.0, 0.0, 5e-324), 0.0, True),
        (1, (0.0, 0.0, 0.0, 0.0), 5e-324, False),
    ],
)
def test_subnormal_multipliers_read_as_zero(seed, capacity, min_multiplier, long_only):
    """Cases the 1e6 fuzz found: a capacity multiplier of 5e-324 (given, or the clamp floor)
    made the participation bound subnormal and the approved weights NaN."""
    lim = RiskLimits(
        **_SUBNORMAL,
        regime_capacity_multipliers=capacity,
        min_multiplier=min_multiplier,
        long_only=long_only,
    )
    assert lim.regime_capacity_multipliers == (0.0, 0.0, 0.0, 0.0)
    _check_batch(seed, lim)
