"""Execution policy edge cases, each worked out by hand on tiny books (10,000 of equity):
the exposure references that lot rounding keeps (the net cap of one-signed books, the
books' own exposures without limits, forced portfolios), the grid shrink and the unrounded
fallback, band and trigger edges, per-portfolio decisions in batches whose rows differ,
empty batches, missing market data, trigger inputs and parameter validation."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from gate_books import gate_result as approved

from allocgym.config import ExecutionConfig
from allocgym.errors import ConfigError, InvariantBreach
from allocgym.execution import (
    ExecutionParams,
    ExecutionPolicy,
    ExecutionResult,
    TriggerFlag,
    Triggers,
    trigger_inputs,
)
from allocgym.risk import GateContext, ReasonCode, RiskLimits

LOT = int(ReasonCode.LOT_ROUNDING)
EQUITY = 1e4
# 300, 100, 100 a share in a 10,000 book: one share of name 0 is 0.03 of equity, one share
# of names 1 and 2 is 0.01.
PRICES = (300.0, 100.0, 100.0)
# Gross 1.0 but |net| 0.6: in a one-signed book the net cap is the tighter gross cap.
NET_CAPPED = RiskLimits(
    max_symbol_weight=1.0, max_sector_gross=1.0, max_gross=1.0, max_net=0.6, max_turnover=2.0
)
NET_CAPPED_LS = NET_CAPPED.replace(long_only=False)


def context(cur, prices=PRICES, **kw) -> GateContext:
    cur = np.atleast_2d(np.asarray(cur, dtype=np.float64))
    n_envs, n_assets = cur.shape
    return GateContext(
        current_weights=cur,
        equity=np.full(n_envs, EQUITY),
        prices=np.broadcast_to(np.asarray(prices, dtype=np.float64), cur.shape).copy(),
        adv_notional=np.full(cur.shape, 1e12),
        volatility=np.full(cur.shape, 0.01),
        spread_bps=np.ones(cur.shape),
        sector_ids=np.arange(n_assets),  # one name a sector: sector caps never bind here
        regime=np.zeros(n_envs, dtype=np.int64),
        tradable=np.ones(cur.shape, dtype=bool),
        **kw,
    )


def execute(
    cur, app, limits: RiskLimits | None, params: ExecutionParams | None = None, **ctx_kw
) -> ExecutionResult:
    policy = ExecutionPolicy(params or ExecutionParams(), limits)
    return policy.apply(approved(app), context(cur, **ctx_kw))


def scaled(flags: np.ndarray) -> list[bool]:
    return ((flags & int(TriggerFlag.ROUNDING_SCALED)) != 0).tolist()


# --------------------------------------------------------- rounding in one-signed books

# Long rotation: sell name 0 from 0.6 to 0.1 (20 -> 3.33 shares), buy 0.5 of name 1 (50
# shares). Toward the current position the sell keeps 4 shares (0.12): 0.12 + 0.5 = 0.62
# of gross, over the 0.6 net cap. The buy is scaled by (0.6 - 0.12) / 0.5 = 0.96: 48 shares.
LONG_CUR, LONG_APP = [0.6, 0.0, 0.0], [0.1, 0.5, 0.0]
LONG_DELTA, LONG_W = [-16.0, 48.0, 0.0], [0.12, 0.48, 0.0]
# Mixed book (name 2 short 0.1, unchanged): net 0.52 is inside 0.6 and gross 0.72 inside
# 1.0, so the rounded book needs no scaling; a net-capped gross would allow only
# 0.6 - 0.12 - 0.1 = 0.38 of the 0.5 buy.
MIXED_CUR, MIXED_APP = [0.6, 0.0, -0.1], [0.1, 0.5, -0.1]
MIXED_DELTA, MIXED_W = [-16.0, 50.0, 0.0], [0.12, 0.5, -0.1]


def test_long_book_net_cap_bounds_the_gross_rounding_adds() -> None:
    """In an all-long book the rounded rotation is scaled to the net cap (the gross cap
    alone would let it through at 0.62)."""
    r = execute(LONG_CUR, LONG_APP, NET_CAPPED)
    assert r.delta_qty.tolist() == [LONG_DELTA]
    assert r.target_weights[0] == pytest.approx(LONG_W, abs=1e-15)
    assert scaled(r.trigger_flags) == [True]
    assert not r.trigger_flags[0] & TriggerFlag.FALLBACK
    assert (r.reasons & LOT).tolist() == [[LOT, LOT, 0]]


def test_short_book_net_cap_bounds_the_gross_rounding_adds() -> None:
    """The same rotation all short: |net| is the gross of an all-short book too, so the
    buy-back keeps 4 shares short and the new short is scaled to 48 shares."""
    neg = np.negative
    r = execute(neg(LONG_CUR), neg(LONG_APP), NET_CAPPED_LS)
    assert r.delta_qty.tolist() == [[16.0, -48.0, 0.0]]
    assert r.target_weights[0] == pytest.approx(neg(LONG_W), abs=1e-15)
    assert scaled(r.trigger_flags) == [True]
    assert r.side.tolist() == [[1, -1, 0]]


def test_mixed_book_gross_is_not_capped_by_net() -> None:
    """With a long and a short name, |net| is no bound on the gross: the rounded book is
    inside every limit and is sent unscaled."""
    r = execute(MIXED_CUR, MIXED_APP, NET_CAPPED_LS)
    assert r.delta_qty.tolist() == [MIXED_DELTA]
    assert r.target_weights[0] == pytest.approx(MIXED_W, abs=1e-15)
    assert scaled(r.trigger_flags) == [False]
    assert (r.reasons & LOT).tolist() == [[LOT, 0, 0]]


def test_short_book_turning_long_is_not_net_capped() -> None:
    """A book short today whose target buys a long name is not one-signed (the target
    is mixed): the rounded book (net 0.38, gross 0.62) is inside and is sent unscaled."""
    r = execute([-0.6, 0.0, 0.0], [-0.1, 0.5, 0.0], NET_CAPPED_LS)
    # buy-back of name 0 keeps 4 shares short (-0.12); name 1 buys all 50 shares
    assert r.delta_qty.tolist() == [[16.0, 50.0, 0.0]]
    assert r.target_weights[0] == pytest.approx([-0.12, 0.5, 0.0], abs=1e-15)
    assert scaled(r.trigger_flags) == [False]


def test_rounded_book_over_the_net_cap_takes_the_largest_passing_shrink() -> None:
    """A current book with a long name (not one-signed) rotating into an all-short target:
    rounding lifts |net| to 0.62 > 0.6, and the largest grid shrink that passes, 0.99,
    is taken (not a per-name scaling of the new short). The batch's other portfolio,
    whose rounded book passed at once, is left as it was; beta and factor limits that
    do not bind change nothing."""
    cur, app = [[-0.6, 0.0, 0.1], LONG_CUR], [[-0.1, -0.5, 0.0], LONG_APP]
    r = execute(cur, app, NET_CAPPED_LS)
    # unscaled: [-4, -50, 0] shares = [-0.12, -0.5, 0.0], |net| 0.62 fails. Shrink 0.99:
    # target c + 0.99 (a - c) = [-0.105, -0.495, 0.001] = [-3.5, -49.5, 0.1] shares,
    # toward the current [-20, 0, 10] -> [-4, -49, 1]: net -0.12 - 0.49 + 0.01 = -0.6
    assert r.delta_qty.tolist() == [[16.0, -49.0, -9.0], LONG_DELTA]
    expected = np.array([[-0.12, -0.49, 0.01], LONG_W])
    assert r.target_weights == pytest.approx(expected, abs=1e-15)
    assert scaled(r.trigger_flags) == [True, True]
    assert not (r.trigger_flags & int(TriggerFlag.FALLBACK)).any()
    assert (r.reasons & LOT).tolist() == [[LOT, LOT, LOT], [LOT, LOT, 0]]
    # beta and factor limits that never bind change nothing (the net check still counts)
    loose = NET_CAPPED_LS.replace(beta_tolerance=10.0, max_factor_exposure=10.0)
    factors = np.zeros((2, 3, 1))
    same = execute(cur, app, loose, betas=np.ones((2, 3)), factor_loadings=factors)
    assert same.delta_qty.tolist() == r.delta_qty.tolist()


def test_one_signed_scaling_is_decided_per_portfolio() -> None:
    """A batch of a long, a mixed and a short book: each row gets its own hand-computed
    result (the long and short rows scaled to the net cap, the mixed row not)."""
    cur = [LONG_CUR, MIXED_CUR, np.negative(LONG_CUR)]
    app = [LONG_APP, MIXED_APP, np.negative(LONG_APP)]
    r = execute(cur, app, NET_CAPPED_LS)
    assert r.delta_qty.tolist() == [LONG_DELTA, MIXED_DELTA, [16.0, -48.0, 0.0]]
    expected = np.array([LONG_W, MIXED_W, np.negative(LONG_W)])
    assert r.target_weights == pytest.approx(expected, abs=1e-15)
    assert scaled(r.trigger_flags) == [True, False, True]


# ---------------------------------------- without hard limits: the books' own exposures


def test_without_limits_rounding_keeps_the_larger_of_approved_and_current_gross() -> None:
    """Without limits the rounded book's gross may reach the larger of the approved and
    the current gross, per portfolio: row 0 (both 0.7) scales the buy by
    (0.7 - 0.12 - 0.1) / 0.5 = 0.96 to 48 shares, row 1 (current 0.82: 24 shares of
    name 0) keeps the unscaled 0.72 (net 0.52 is under its current 0.62 too)."""
    policy = ExecutionPolicy(ExecutionParams(), None)
    cur = [[0.6, 0.0, -0.1], [0.72, 0.0, -0.1]]
    app = [[0.1, 0.5, -0.1], [0.1, 0.5, -0.1]]
    r = policy.apply(approved(app), context(cur))
    # name 0: 3.33 shares wanted, toward the current position: 4 (0.12)
    assert r.delta_qty.tolist() == [[-16.0, 48.0, 0.0], [-20.0, 50.0, 0.0]]
    expected = np.array([[0.12, 0.48, -0.1], [0.12, 0.5, -0.1]])
    assert r.target_weights == pytest.approx(expected, abs=1e-15)
    assert scaled(r.trigger_flags) == [True, False]


def test_without_limits_rounding_keeps_the_beta_exposure_of_the_books() -> None:
    """Without limits the rounded book's |beta^T w| may not exceed the larger of the
    approved and current books' (0.55 here): the unscaled rounding (0.56) fails, the
    largest grid shrink, 0.99, passes."""
    policy = ExecutionPolicy(ExecutionParams(), None)
    betas = np.array([[0.5, 1.0, 0.0]])
    r = policy.apply(approved([0.1, 0.5, 0.0]), context([0.72, 0.0, 0.0], betas=betas))
    # approved beta 0.05 + 0.5 = 0.55, current 0.36. Unscaled: [4, 50] shares = 0.06 + 0.5.
    # Shrink 0.99: [0.1062, 0.495] = [3.54, 49.5] shares -> [4, 49]: beta 0.06 + 0.49
    assert r.delta_qty.tolist() == [[-20.0, 49.0, 0.0]]
    assert r.target_weights[0] == pytest.approx([0.12, 0.49, 0.0], abs=1e-15)
    assert scaled(r.trigger_flags) == [True]
    # with a zero beta on name 0 the unscaled book (beta 0.5) passes
    flat = policy.apply(
        approved([0.1, 0.5, 0.0]), context([0.72, 0.0, 0.0], betas=np.array([[0.0, 1.0, 0.0]]))
    )
    assert flat.delta_qty.tolist() == [[-20.0, 50.0, 0.0]]


def test_forced_portfolio_without_limits_keeps_the_approved_beta() -> None:
    """A gate-forced portfolio (no limits) may not exceed the approved book's beta
    exposure even when the current book's is larger: rounding keeps 0.02 too much of the
    high-beta name, no grid shrink is tried for a forced book, and the approved book is
    taken unrounded (FALLBACK). The unforced row with the same books is rounded."""
    forced = int(ReasonCode.FORCED_DERISK)
    sym = np.array([[0, 0, forced], [0, 0, 0]], dtype=np.int64)
    gate = approved([[0.1, 0.5, 0.1]] * 2, sym, np.array([forced, 0], dtype=np.int64))
    ctx = context([[0.6, 0.0, 0.2], [0.6, 0.0, 0.2]], betas=np.array([2.0, 0.0, 0.0]))
    ctx = GateContext(**{**ctx.__dict__, "sector_ids": np.array([0, 0, 1])})
    r = ExecutionPolicy(ExecutionParams(), None).apply(gate, ctx)
    # row 0: name 2 forced 20 -> 10 shares; name 0 keeps 4 shares (0.12); sector 0 (approved
    # 0.6) scales the buy to 48: beta 2 * 0.12 = 0.24 > approved 0.2 (current 1.2): fallback
    assert r.target_weights[0] == pytest.approx([0.1, 0.5, 0.1], abs=1e-15)
    assert r.delta_qty[0] == pytest.approx([-0.5 * 100 / 3, 50.0, -10.0], rel=1e-14)
    assert r.trigger_flags[0] & TriggerFlag.FALLBACK
    assert r.trigger_flags[0] & TriggerFlag.FORCED
    # row 1, not forced: the current beta 1.2 is the reference, the rounded book passes
    assert r.delta_qty[1].tolist() == [-16.0, 48.0, -10.0]
    assert not r.trigger_flags[1] & (TriggerFlag.FALLBACK | TriggerFlag.FORCED)


def test_forced_portfolio_without_limits_keeps_the_approved_gross() -> None:
    """A gate-forced portfolio (no limits) may not exceed the approved gross (0.75) even
    though its current gross is larger (0.95): rounding keeps 0.02 too much of name 0,
    so the buys are scaled, name 2 (a sector of its own) by the gross scale too."""
    forced = int(ReasonCode.FORCED_DERISK)
    cur = [[0.6, 0.0, 0.0, 0.3, -0.05]]
    sym = np.array([[0, 0, 0, forced, 0]], dtype=np.int64)
    gate = approved([0.1, 0.3, 0.2, 0.1, -0.05], sym, np.array([forced], dtype=np.int64))
    ctx = context(cur, prices=(300.0, 100.0, 100.0, 100.0, 100.0))
    ctx = GateContext(**{**ctx.__dict__, "sector_ids": np.array([0, 0, 1, 2, 3])})
    r = ExecutionPolicy(ExecutionParams(), None).apply(gate, ctx)
    # name 0 keeps 4 shares (0.12), name 3 (forced) sells 30 -> 10, name 4 holds: the base
    # is 0.12 + 0.1 + 0.05 = 0.27 and the buys need 0.5: gross scale (0.75 - 0.27) / 0.5
    # = 0.96; sector 0 (approved 0.4) scale (0.4 - 0.12) / 0.3 = 0.933. Name 1: 0.28 = 28
    # shares; name 2: 0.96 * 0.2 = 0.192 = 19.2 shares -> 19
    assert r.delta_qty.tolist() == [[-16.0, 28.0, 19.0, -20.0, 0.0]]
    assert scaled(r.trigger_flags) == [True]
    # the gate's codes are kept, and the rounded names are coded on top
    assert r.reasons.tolist() == [[LOT, LOT, LOT, forced, 0]]
    assert r.portfolio_reasons.tolist() == [forced | LOT]
    assert r.trigger_flags[0] & TriggerFlag.FORCED


# --------------------------------------------------------------- beta and factor limits


def test_missing_beta_counts_as_zero() -> None:
    """A NaN beta contributes nothing to the beta exposure (it neither poisons the sum
    nor switches the beta checks off): results equal those with a zero beta."""
    limits = NET_CAPPED.replace(beta_tolerance=0.3)
    policy = ExecutionPolicy(ExecutionParams(), limits)
    prices = (100.0, 300.0, 100.0)  # one share of name 1 is 0.03

    def both(cur, app):
        nan = policy.apply(approved(app), context(cur, prices, betas=np.array([np.nan, 1, 1])))
        zero = policy.apply(approved(app), context(cur, prices, betas=np.array([0.0, 1, 1])))
        assert nan.delta_qty.tolist() == zero.delta_qty.tolist()
        assert nan.trigger_flags.tolist() == zero.trigger_flags.tolist()
        return nan

    # whole lots (10 -> 5 shares of name 1, 15 of name 2), beta exposure 0.3: as approved
    r = both([0.1, 0.3, 0.0], [0.1, 0.15, 0.15])
    assert r.delta_qty.tolist() == [[0.0, -5.0, 15.0]]
    assert not r.trigger_flags[0] & TriggerFlag.FALLBACK
    # name 1 sells 10 -> 1.67 shares, keeps 2 (0.06): beta 0.06 + 0.25 = 0.31 > 0.3 (gross
    # and net are inside). Shrink 0.99: [0.0525, 0.2475] = [1.75, 24.75] shares -> [2, 24]
    r = both([0.1, 0.3, 0.0], [0.1, 0.05, 0.25])
    assert r.delta_qty.tolist() == [[0.0, -8.0, 24.0]]
    assert r.target_weights[0] == pytest.approx([0.1, 0.06, 0.24], abs=1e-15)
    assert scaled(r.trigger_flags) == [True]
    # both books in one batch: each portfolio's beta exposure is checked on its own
    r = both([[0.1, 0.3, 0.0]] * 2, [[0.1, 0.15, 0.15], [0.1, 0.05, 0.25]])
    assert r.delta_qty.tolist() == [[0.0, -5.0, 15.0], [0.0, -8.0, 24.0]]


def test_rounding_keeps_the_factor_cap() -> None:
    """With a factor cap (0.3 on one factor loading names 1 and 2) a whole-lot book at
    the cap is sent as approved, and a rounded book above it takes the largest passing
    grid shrink."""
    limits = NET_CAPPED.replace(max_factor_exposure=0.3)
    policy = ExecutionPolicy(ExecutionParams(), limits)
    loadings = np.array([[[0.0], [1.0], [1.0]]])  # (n_envs, n_assets, n_factors)

    def run(cur, app):
        ctx = context(cur, (100.0, 300.0, 100.0), factor_loadings=loadings)
        return policy.apply(approved(app), ctx)

    r = run([0.1, 0.3, 0.0], [0.1, 0.15, 0.15])  # exposure 0.15 + 0.15: at the cap
    assert r.delta_qty.tolist() == [[0.0, -5.0, 15.0]]
    assert scaled(r.trigger_flags) == [False]
    # as with the beta limit: the kept 2 shares (0.06) lift the exposure to 0.31; the
    # 0.99 shrink gives [2, 24] shares, exposure 0.3
    r = run([0.1, 0.3, 0.0], [0.1, 0.05, 0.25])
    assert r.delta_qty.tolist() == [[0.0, -8.0, 24.0]]
    assert scaled(r.trigger_flags) == [True]


# ----------------------------------------------------- bands, triggers and forced names


def test_drift_exactly_at_a_band_does_not_trade() -> None:
    """Bands are strict: two names each drifting exactly tau_i = 2**-7 (L1 exactly
    tau_L1 = 2**-6, all exact in binary) are both suppressed."""
    params = ExecutionParams(name_drift_threshold=2.0**-7, portfolio_drift_threshold=2.0**-6)
    cur, app = [0.25, 0.25, 0.0], [0.25 + 2.0**-7, 0.25 - 2.0**-7, 0.0]
    r = execute(cur, app, NET_CAPPED, params)
    assert r.delta_qty.tolist() == [[0.0, 0.0, 0.0]]
    assert r.suppressed.tolist() == [[True, True, False]]
    band = int(ReasonCode.NO_TRADE_BAND)
    assert r.reasons.tolist() == [[band, band, 0]]
    assert r.portfolio_reasons.tolist() == [band]
    assert r.trigger_flags.tolist() == [int(TriggerFlag.SCHEDULED)]


def test_banded_book_exactly_at_its_reference_plus_the_float_slack_keeps_its_band() -> None:
    """The exposure checks allow float dust up to and including 1e-12 over the
    reference: a banded book whose gross, sector gross, |net| and |beta^T w| all equal
    ``fl(0.5 + 1e-12)`` exactly (references 0.5, no limits) keeps its band."""
    at_slack = 0.5 + 1e-12
    c1 = at_slack - 0.25  # exact (Sterbenz), so 0.25 + c1 == at_slack exactly
    assert 0.25 + c1 == at_slack and 0.25 + c1 + 0.0 == at_slack
    params = ExecutionParams(portfolio_drift_threshold=1.0)  # no L1 rebalance
    ctx = context([0.2, c1, 0.0], prices=(100.0, 100.0, 100.0), betas=np.ones((1, 3)))
    ctx = GateContext(**{**ctx.__dict__, "sector_ids": np.array([0, 0, 1])})
    # approved [0.25, 0.25, 0]: every reference is 0.5 (the current book's are ~0.45);
    # name 0 buys, name 1's 1e-12 drift is banded: the banded book is [0.25, c1, 0]
    r = ExecutionPolicy(params, None).apply(approved([0.25, 0.25, 0.0]), ctx)
    assert r.suppressed.tolist() == [[False, True, False]]
    assert not r.trigger_flags[0] & TriggerFlag.BAND_LIFTED
    assert r.target_weights[0, 1] == c1 and r.delta_qty[0, 1] == 0.0
    assert r.delta_qty[0, 0] > 0.0


def test_scheduled_only_suppresses_per_portfolio() -> None:
    """With ``scheduled_only``, in one batch: a scheduled portfolio trades its drifted
    name, an unscheduled one suppresses every moving name (and only those), a scheduled
    one past tau_L1 rebalances every name."""
    params = ExecutionParams(scheduled_only=True)
    cur = [[0.2, 0.1, 0.1]] * 3
    app = [[0.21, 0.1, 0.1], [0.21, 0.1, 0.1], [0.21, 0.097, 0.1]]  # L1 0.01, 0.01, 0.013
    trig = Triggers(scheduled=np.array([True, False, True]))
    policy = ExecutionPolicy(params, NET_CAPPED)
    r = policy.apply(approved(app), context(cur, prices=(100.0, 100.0, 100.0)), trig)
    # one share is 0.01: name 0 buys one share; row 2 also sells 0.3 of a share: none
    assert r.suppressed.tolist() == [[False] * 3, [True, False, False], [False] * 3]
    assert r.delta_qty[:, 0].tolist() == [1.0, 0.0, 1.0]
    assert r.trigger_flags.tolist() == [
        int(TriggerFlag.NAME_DRIFT | TriggerFlag.SCHEDULED),
        int(TriggerFlag.NAME_DRIFT),
        int(TriggerFlag.NAME_DRIFT | TriggerFlag.PORTFOLIO_DRIFT | TriggerFlag.SCHEDULED),
    ]


def test_band_lifted_when_suppression_would_lift_beta_exposure() -> None:
    """Without limits a suppressed book may not carry more |beta^T w| than the larger of
    the approved and current books (0.3): suppressing name 2's in-band buy (beta -1)
    would leave 0.304, so that portfolio's band is lifted and every name trades. The
    same books with beta 0 on name 2 (reference 0.304) keep the band."""
    betas = np.array([[1.0, 1.0, -1.0], [1.0, 1.0, 0.0]])
    # equity 1e4 at price 1: a share is 0.0001, every order here is whole
    wide = ExecutionParams(portfolio_drift_threshold=1.0)  # names 0, 1 drift: no L1 rebalance
    cur, app = [[0.3, 0.0, 0.0]] * 2, [[0.0, 0.304, 0.004]] * 2
    r = execute(cur, app, None, wide, prices=(1.0, 1.0, 1.0), betas=betas)
    lifted = (r.trigger_flags & int(TriggerFlag.BAND_LIFTED)) != 0
    assert lifted.tolist() == [True, False]
    assert not (r.trigger_flags & int(TriggerFlag.FALLBACK)).any()
    assert r.suppressed.tolist() == [[False] * 3, [False, False, True]]
    band = int(ReasonCode.NO_TRADE_BAND)
    assert r.portfolio_reasons.tolist() == [0, band]
    expected = np.array([[-3000.0, 3040.0, 40.0], [-3000.0, 3040.0, 0.0]])
    assert r.delta_qty == pytest.approx(expected, rel=1e-12)


def test_configured_kill_switch_overrides_the_bands() -> None:
    """With ``RiskLimits.kill_switch`` every portfolio is killed: the gates' flat book is
    executed even where each position is inside its band (0.003 and 0.004 < tau)."""
    limits = NET_CAPPED.replace(kill_switch=True)
    cur = [[0.003, 0.0, 0.002], [0.0, 0.004, 0.0]]  # 3, 2 and 4 shares at 10
    r = execute(cur, [[0.0] * 3] * 2, limits, prices=(10.0, 10.0, 10.0))
    assert r.target_weights.tolist() == [[0.0] * 3] * 2
    assert r.delta_qty.tolist() == [[-3.0, 0.0, -2.0], [0.0, -4.0, 0.0]]
    assert not r.suppressed.any()
    kill_forced = int(TriggerFlag.KILL_SWITCH | TriggerFlag.FORCED)
    assert (r.trigger_flags & kill_forced).tolist() == [kill_forced] * 2
    # without the switch both books hold
    held = execute(cur, [[0.0] * 3] * 2, NET_CAPPED, prices=(10.0, 10.0, 10.0))
    assert not held.traded.any()


def test_name_over_its_cap_is_forced_alone_without_gate_codes() -> None:
    """A current book over a symbol cap (no gate code anywhere) forces only the names
    over the cap: name 0 sells to the cap past its band, name 1 keeps its band."""
    limits = RiskLimits(max_symbol_weight=0.10, max_sector_gross=1.0)
    # name 0: 0.102 -> 0.10 (drift 0.002); name 1: 0.09 -> 0.086 (0.004 < tau 0.005);
    # L1 0.006 < 0.01. Prices 10: one share is 0.001.
    r = execute([0.102, 0.09, 0.06], [0.10, 0.086, 0.06], limits, prices=(10.0, 10.0, 10.0))
    assert r.delta_qty.tolist() == [[-2.0, 0.0, 0.0]]
    assert r.suppressed.tolist() == [[False, True, False]]
    assert r.target_weights[0, 1] == 0.09
    assert r.trigger_flags[0] & TriggerFlag.FORCED


# ------------------------------------------------------------ market inputs and batches


def test_empty_batch_executes_to_empty_results() -> None:
    """Zero portfolios (with betas and hard limits, so every exposure reference is built)
    give empty results of the documented shapes instead of raising on an empty max."""
    r = execute(np.zeros((0, 3)), np.zeros((0, 3)), NET_CAPPED_LS, betas=np.zeros((0, 3)))
    assert r.target_weights.shape == r.delta_qty.shape == r.reasons.shape == (0, 3)
    assert r.traded.shape == r.trigger_flags.shape == r.portfolio_reasons.shape == (0,)


def test_zero_equity_portfolio_never_trades() -> None:
    """A portfolio with zero equity has no share count: nothing is sent and its book is
    held, while the next portfolio in the batch trades."""
    cur = [[0.6, 0.0, 0.0], [0.6, 0.0, 0.0]]
    ctx = context(cur)
    ctx = GateContext(**{**ctx.__dict__, "equity": np.array([0.0, EQUITY])})
    r = ExecutionPolicy(ExecutionParams(), NET_CAPPED).apply(approved([LONG_APP] * 2), ctx)
    assert r.delta_qty.tolist() == [[0.0, 0.0, 0.0], LONG_DELTA]
    assert r.target_weights[0].tolist() == [0.6, 0.0, 0.0]
    assert r.traded.tolist() == [False, True]
    # no name of row 0 can trade, so none drifted and none is suppressed or rounded
    assert r.trigger_flags[0] == TriggerFlag.SCHEDULED
    assert r.reasons[0].tolist() == [0, 0, 0] and not r.suppressed[0].any()


def test_zero_price_name_is_held_without_warnings() -> None:
    """A name with a zero price (no valid share count) is held, the others trade, and no
    RuntimeWarning escapes (the division by the zero price is masked on purpose)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = execute([0.1, 0.0, 0.2], [0.2, 0.1, 0.3], NET_CAPPED, prices=(100.0, 100.0, 0.0))
    assert r.delta_qty.tolist() == [[10.0, 10.0, 0.0]]
    assert r.target_weights[0, 2] == 0.2


def test_halted_name_keeps_its_held_shares_in_the_target() -> None:
    """Name 1 (0.3 of 10,000 at 100 a share: 30 shares) halted at the decision: no order,
    and its target quantity is the 30 shares held (it had read back as 0 while its
    target weight said 0.3); a zero price still reads 0 shares."""
    ctx = dataclasses.replace(context([0.3, 0.3, 0.0]), tradable=np.array([[True, False, True]]))
    r = ExecutionPolicy(ExecutionParams(), NET_CAPPED).apply(approved([0.2, 0.5, 0.1]), ctx)
    assert r.delta_qty[0, 1] == 0.0 and r.target_weights[0, 1] == 0.3
    assert r.target_qty[0].tolist() == [10.0 + r.delta_qty[0, 0], 30.0, r.delta_qty[0, 2]]
    r = execute([0.1, 0.0, 0.2], [0.2, 0.1, 0.3], NET_CAPPED, prices=(100.0, 100.0, 0.0))
    assert r.target_qty[0, 2] == 0.0


def test_integer_book_and_lot_size_act_as_floats() -> None:
    """A flat current book given as integer zeros and a lot size given as a Python int
    execute exactly as their float versions: 0.1 and 0.2537 from flat in lots of 2 are
    3.33 -> 2 and 25.37 -> 24 shares."""
    ctx = context(np.zeros((1, 3)))
    int_ctx = GateContext(**{**ctx.__dict__, "current_weights": np.zeros((1, 3), np.int64)})
    app = approved([0.1, 0.2537, 0.0])
    for lot in (2, 2.0):
        policy = ExecutionPolicy(ExecutionParams(lot_size=lot), NET_CAPPED)
        for c in (ctx, int_ctx):
            assert policy.apply(app, c).delta_qty.tolist() == [[2.0, 24.0, 0.0]]


def test_non_finite_weights_error_names_the_fix() -> None:
    """A non-finite approved weight is an invariant breach whose message says the gates
    must code and replace it."""
    with pytest.raises(InvariantBreach, match=r"gates must have coded and replaced them"):
        execute(LONG_CUR, [np.inf, 0.5, 0.0], NET_CAPPED)


# ----------------------------------------------------------------------- trigger inputs


def test_trigger_inputs_per_portfolio_with_undefined_ratios() -> None:
    """Two portfolios with different histories: each gets its own vol and spread ratio;
    a flat market (zero volatility, 0/0) reads as ratio 1.0 and a name with zero median
    spread (7/0) has no ratio to vote with, with no RuntimeWarning; a median below 1 bp
    is a valid divisor; without ``t`` every bar is scheduled (``None``)."""
    params = ExecutionParams(vol_short_window=3, vol_long_window=5, spread_window=3)
    # market (mean of two names +-x around it): row 0 [0, 0, 1, -1, 0] %, row 1 flat at 0
    market = np.array([[0.0, 0.0, 0.01, -0.01, 0.0], [0.0] * 5])
    x = np.array([0.03, -0.02, 0.01, 0.0, 0.05])
    rets = np.stack([market + x, market - x], axis=2)
    # row 0: short std sqrt((1e-4 + 1e-4) / 2) = 0.01, long std sqrt(2e-4 / 4): ratio sqrt 2
    spreads = np.array(
        [
            [[10.0, 5.0, 0.0], [10.0, 5.0, 0.0], [40.0, 5.0, 7.0]],  # 4, 1, (7/0) -> 2.5
            [[20.0, 4.0, 0.5], [20.0, 8.0, 0.25], [30.0, 2.0, 1.5]],  # 1.5, 0.5, 3 -> 1.5
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trig = trigger_inputs(rets, spreads, params)
    assert trig.vol_ratio == pytest.approx([np.sqrt(2.0), 1.0], rel=1e-12)
    assert trig.spread_ratio.tolist() == [2.5, 1.5]
    assert trig.scheduled is None
    every2 = dataclasses.replace(params, schedule_every=2)
    assert trigger_inputs(rets, spreads, every2, t=np.array([3, 4])).scheduled.tolist() == [
        False,
        True,
    ]


def test_trigger_inputs_leave_out_names_not_tradable() -> None:
    """``tradable``: the market return of a bar is the mean over its tradable names, and
    only names tradable at the decision bar vote in the spread median. By hand: two live
    names with +-x around a market path m, a third listed only for the last 2 of 5 bars
    with return 0 (its listing bar) then 0.02; spreads 4x and 2x on the live names, the
    third's 0 -> 6 has no positive median and does not vote: median(4, 2) = 3, where
    counting it as 1 would give 2, and the mean over all three names would damp m."""
    params = ExecutionParams(vol_short_window=3, vol_long_window=5, spread_window=3)
    m = np.array([0.0, 0.01, -0.02, 0.015, 0.03])
    x = np.array([0.01, -0.01, 0.02, 0.0, 0.01])
    third = np.array([0.0, 0.0, 0.0, 0.0, 0.02])
    rets = np.stack([m + x, m - x, third], axis=1)[None]
    tradable = np.ones((1, 5, 3), dtype=bool)
    tradable[0, :3, 2] = False
    spreads = np.array([[[5.0, 5.0, 0.0], [5.0, 5.0, 0.0], [20.0, 10.0, 6.0]]])
    trig = trigger_inputs(rets, spreads, params, tradable=tradable)
    market = np.r_[m[:3], (2 * m[3] + 0.0) / 3, (2 * m[4] + 0.02) / 3]
    want = market[-3:].std(ddof=1) / market.std(ddof=1)
    assert trig.vol_ratio[0] == pytest.approx(want, rel=1e-12)
    assert trig.spread_ratio.tolist() == [3.0]
    # every name tradable: the same bits as without the flags
    everyone = trigger_inputs(rets, spreads, params, tradable=np.ones_like(tradable))
    plain = trigger_inputs(rets, spreads, params)
    assert everyone.vol_ratio.tolist() == plain.vol_ratio.tolist()
    assert everyone.spread_ratio.tolist() == plain.spread_ratio.tolist()
    with pytest.raises(ConfigError, match="tradable"):
        trigger_inputs(rets, spreads, params, tradable=tradable[:, 1:])


def test_trigger_inputs_upcast_float32_data() -> None:
    """float32 returns and spreads give exactly the ratios of the same values in float64
    (the statistics are computed in float64, not in the inputs' precision)."""
    params = ExecutionParams(vol_short_window=3, vol_long_window=5, spread_window=3)
    rng = np.random.default_rng(7)
    rets = rng.normal(0.0, 0.013, (2, 5, 3)).astype(np.float32)
    spreads = rng.uniform(1.0, 9.0, (2, 3, 3)).astype(np.float32)
    t32 = trigger_inputs(rets, spreads, params)
    t64 = trigger_inputs(rets.astype(np.float64), spreads.astype(np.float64), params)
    assert t32.vol_ratio.dtype == t32.spread_ratio.dtype == np.float64
    assert t32.vol_ratio.tolist() == t64.vol_ratio.tolist()
    assert t32.spread_ratio.tolist() == t64.spread_ratio.tolist()


def test_trigger_inputs_reject_a_short_spread_history() -> None:
    """Fewer spread bars than ``spread_window`` is a config error that names the window."""
    params = ExecutionParams(vol_short_window=3, vol_long_window=5, spread_window=3)
    rets = np.zeros((1, 5, 2))
    with pytest.raises(ConfigError, match="spread_window = 3"):
        trigger_inputs(rets, np.ones((1, 2, 2)), params)


# ------------------------------------------------------------------------------- params


def test_fractional_lots_round_to_half_shares() -> None:
    """A lot below one share is valid: lots of 0.5 round a buy of 3.33 shares to 3.0 and
    one of 50.25 shares to 50.0 (toward the current position)."""
    params = ExecutionParams(lot_size=0.5)
    r = execute([0.0, 0.0, 0.0], [0.1, 0.5025, 0.0], NET_CAPPED, params)
    assert r.delta_qty.tolist() == [[3.0, 50.0, 0.0]]


def test_ratio_thresholds_accept_any_positive_value() -> None:
    """The override ratios must only be > 0: the tiniest positive one is valid, and a
    vol spike ratio of 0.5 fires at a ratio of exactly 0.5 (not 0.49); 0 is rejected
    with a message naming the field and the fix."""
    assert ExecutionParams(vol_spike_ratio=1e-300, spread_blowout_ratio=1e-300)
    policy = ExecutionPolicy(ExecutionParams(vol_spike_ratio=0.5, scheduled_only=True), None)
    fired = []
    for ratio in (0.49, 0.5):
        trig = Triggers(scheduled=np.array([False]), vol_ratio=np.array([ratio]))
        ctx = context([0.1, 0.1, 0.1], prices=(10.0, 10.0, 10.0))  # 3 shares each way
        r = policy.apply(approved([0.103, 0.097, 0.1]), ctx, trig)
        fired.append(bool(r.trigger_flags[0] & TriggerFlag.VOL_SPIKE) and bool(r.traded[0]))
    assert fired == [False, True]
    for name in ("vol_spike_ratio", "spread_blowout_ratio"):
        with pytest.raises(ConfigError, match=rf"{name} = 0.0: must be finite and > 0; set "):
            ExecutionParams(**{name: 0.0})
    with pytest.raises(ConfigError, match=r"must be finite and >= 0; set execution.portfolio"):
        ExecutionParams(portfolio_drift_threshold=-0.01)


def test_param_errors_name_the_field_and_the_fix() -> None:
    """Each invalid parameter raises a ConfigError naming the field, the bad value and
    where to set it."""
    with pytest.raises(
        ConfigError, match=r"must be finite and >= 0; set execution.name_drift_threshold$"
    ):
        ExecutionParams(name_drift_threshold=-0.001)
    with pytest.raises(ConfigError, match=r"schedule_every = 0: must be >= 1"):
        ExecutionParams(schedule_every=0)
    with pytest.raises(ConfigError, match=r"vol_short_window = 1 must be >= 2"):
        ExecutionParams(vol_short_window=1)
    assert ExecutionParams(vol_short_window=2, vol_long_window=3).vol_short_window == 2


def test_params_from_config_copy_every_field() -> None:
    """``from_config`` carries every field of the config section (none defaulted)."""
    cfg = ExecutionConfig(
        name_drift_threshold=0.002,
        portfolio_drift_threshold=0.03,
        lot_size=10.0,
        vol_spike_ratio=2.5,
        spread_blowout_ratio=4.0,
        scheduled_only=True,
        schedule_every=5,
        vol_short_window=4,
        vol_long_window=40,
        spread_window=9,
    )
    p = ExecutionParams.from_config(cfg)
    assert (p.name_drift_threshold, p.portfolio_drift_threshold, p.lot_size) == (
        0.002,
        0.03,
        10.0,
    )
    assert (p.vol_spike_ratio, p.spread_blowout_ratio, p.scheduled_only) == (2.5, 4.0, True)
    assert (p.schedule_every, p.vol_short_window, p.vol_long_window, p.spread_window) == (
        5,
        4,
        40,
        9,
    )


def test_a_broadcast_equity_is_read_as_the_gates_read_it() -> None:
    """A scalar or (1,) equity, which the gates and check_invariants broadcast, had made
    ExecutionPolicy.apply raise a bare ValueError: it now gives the per-row result."""
    from allocgym.risk import RiskGateChain

    lim = RiskLimits(max_symbol_weight=0.5, max_gross=1.0, max_net=1.0, max_sector_gross=1.0)
    n, m = 2, 3

    def ctx(equity: object) -> GateContext:
        return GateContext(
            current_weights=np.zeros((n, m)), equity=equity, prices=np.full((n, m), 100.0),
            adv_notional=np.full((n, m), 1e9), volatility=np.full((n, m), 0.02),
            spread_bps=np.full((n, m), 5.0), sector_ids=np.arange(m),
            regime=np.zeros(n, np.int64), tradable=np.ones((n, m), bool),
        )  # fmt: skip

    policy = ExecutionPolicy(ExecutionParams(), lim)
    rows = ctx(np.full(n, 1e6))
    want = policy.apply(RiskGateChain(lim).apply(np.full((n, m), 0.1), rows), rows)
    for equity in (np.float64(1e6), np.array([1e6])):
        c = ctx(equity)
        got = policy.apply(RiskGateChain(lim).apply(np.full((n, m), 0.1), c), c)
        assert np.array_equal(got.target_qty, want.target_qty)
