"""Edges of the gate chain on tiny books, by hand: one limit binds by a known amount in
some rows of a batch and not in others, and every test checks the approved weights, the
reason bits set and the rows and names left alone.

Each book is 1-5 portfolios over 2-3 symbols in the calm context of ``gate_books``
(everything loose but the limit under test). Rows of a batch differ on purpose: a gate
that summed over the whole batch instead of per portfolio, or applied one row's bound to
another, moves a row that should stay put. The registry's measures are checked on the
same kind of books, and a few hand cases are tiled to 66 rows, past the size from which
the row gates compute only the rows they change.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from gate_books import FREE, LOOSE, calm_context

from allocgym.costs import CostModel
from allocgym.errors import GateConfigError, RequestError
from allocgym.regime import REGIME_LABELS, UNKNOWN_REGIME
from allocgym.risk import (
    GateContext,
    GateResult,
    ReasonCode,
    RiskGateChain,
    RiskLimits,
    check_invariants,
)
from allocgym.risk.context import Bounds, sector_map
from allocgym.risk.gates.registry import (
    coupled_ok,
    coupled_violations,
    hard_ok,
    names_outside,
    portfolio_bounds,
    spec,
)
from allocgym.risk.gates.strategy import strategy_gate
from allocgym.risk.inputs import read_inputs
from allocgym.risk.kernels import Trace

R = ReasonCode
TREND, MEAN_REV, HIGH_VOL = (
    REGIME_LABELS.index(label) for label in ("trend", "mean_reversion", "high_volatility")
)
TOL = 1e-12


def limits(**kw: Any) -> RiskLimits:
    return RiskLimits(**{**LOOSE, **kw})


def ctx(n_envs: int, n_assets: int, **kw: Any) -> GateContext:
    return calm_context(n_envs, n_assets, **kw)


def run(lim: RiskLimits, p: Any, c: GateContext, cost: CostModel = FREE) -> GateResult:
    res = RiskGateChain(lim, cost, debug=True).apply(np.atleast_2d(np.asarray(p, float)), c)
    report = check_invariants(res, c, lim, cost)
    assert report.n_breaches == 0, report.messages
    return res


def close(actual: np.ndarray, expected: Any) -> None:
    np.testing.assert_allclose(actual, np.asarray(expected, float), rtol=0.0, atol=TOL)


def bits(res: GateResult, code: ReasonCode) -> list[list[bool]]:
    """Which symbols carry ``code``, row by row."""
    return (res.symbol_reasons & int(code) != 0).tolist()


def port_bits(res: GateResult, code: ReasonCode) -> list[bool]:
    return (res.portfolio_reasons & int(code) != 0).tolist()


# ----------------------------------------------------------------------------- symbol level


def test_symbol_cap_follows_each_rows_capacity_multiplier_and_keeps_signs():
    """SYMBOL_CAP is max_symbol_weight x the capacity multiplier of each row's regime:
    0.25 in trend, 0.25 x 0.5 = 0.125 in high volatility, 0.25 x 0.8 = 0.2 (the default)
    for an unknown code. Only names above their row's cap are clipped, shorts stay short,
    names exactly at the cap (row 2) keep their weight and no portfolio bit is set."""
    lim = limits(
        max_symbol_weight=0.25,
        regime_capacity_multipliers=(1.0, 1.0, 0.5, 1.0),
        default_capacity_multiplier=0.8,
    )
    c = ctx(3, 3, regime=np.array([TREND, HIGH_VOL, UNKNOWN_REGIME]))
    p = [[0.25, -0.30, 0.10], [0.10, 0.20, -0.20], [0.2, -0.2, 0.21]]
    res = run(lim, p, c)
    close(res.approved, [[0.25, -0.25, 0.10], [0.10, 0.125, -0.125], [0.2, -0.2, 0.2]])
    assert res.approved[0, 0] == 0.25 and res.approved[2, 1] == -0.2  # at the cap: kept
    assert bits(res, R.SYMBOL_CAP) == [
        [False, True, False],
        [False, True, True],
        [False, False, True],
    ]
    assert res.symbol_reasons[0, 0] == 0 and res.symbol_reasons[2, :2].tolist() == [0, 0]
    assert res.portfolio_reasons.tolist() == [0, 0, 0]
    close(res.clipped["SYMBOL_CAP"], [0.05, 0.15, 0.01])


def test_symbol_cap_boundary_exact_kept_a_hair_above_clipped():
    """|w| exactly at the cap passes bit for bit; 1e-9 above it (past the 1e-12 relative
    tolerance) is clipped back to the cap with its sign, in the same batch."""
    lim = limits(max_symbol_weight=0.25)
    above = 0.25 * (1.0 + 1e-9)
    res = run(lim, [[0.25, -0.25, 0.1], [above, -above, 0.1]], ctx(2, 3))
    assert res.approved.tolist() == [[0.25, -0.25, 0.1], [0.25, -0.25, 0.1]]
    assert bits(res, R.SYMBOL_CAP) == [[False, False, False], [True, True, False]]


def test_symbol_notional_cap_per_row_equity_and_capacity():
    """SYMBOL_NOTIONAL_CAP is max_symbol_notional x capacity / equity per row: 2e5 / 1e6 =
    0.2 in row 0 (trend), 2e5 x 0.5 / 4e6 = 0.025 in row 1 (high volatility). Each row is
    clipped to its own cap (a short to -cap) and nothing else moves."""
    lim = limits(max_symbol_notional=2.0e5, regime_capacity_multipliers=(1.0, 1.0, 0.5, 1.0))
    c = ctx(2, 3, equity=np.array([1.0e6, 4.0e6]), regime=np.array([TREND, HIGH_VOL]))
    res = run(lim, [[0.3, -0.1, 0.2], [0.02, -0.06, 0.0]], c)
    close(res.approved, [[0.2, -0.1, 0.2], [0.02, -0.025, 0.0]])
    assert res.approved[0, 2] == 0.2  # exactly at the cap: kept
    assert bits(res, R.SYMBOL_NOTIONAL_CAP) == [[True, False, False], [False, True, False]]
    assert res.portfolio_reasons.tolist() == [0, 0]
    close(res.clipped["SYMBOL_NOTIONAL_CAP"], [0.1, 0.035])


def test_long_only_clips_shorts_row_by_row():
    """LONG_ONLY sets each short to 0 and codes only those names; a long-only row is left
    alone; zero stays zero (a -0.0 is not a short, and is approved as +0.0)."""
    res = run(limits(long_only=True), [[0.1, -0.2, 0.0], [0.1, 0.2, -0.0]], ctx(2, 3))
    assert res.approved.tolist() == [[0.1, 0.0, 0.0], [0.1, 0.2, 0.0]]
    assert not np.signbit(res.approved).any()  # -0.0 is approved as +0.0
    assert bits(res, R.LONG_ONLY) == [[False, True, False], [False, False, False]]
    assert res.portfolio_reasons.tolist() == [0, 0]
    close(res.clipped["LONG_ONLY"], [0.2, 0.0])


# ----------------------------------------------------------------------------- portfolio level


def test_sector_cap_scales_only_the_sector_over_its_cap_in_its_row():
    """SECTOR_CAP 0.3 over sectors [0, 0, 1]: row 0's sector 0 holds 0.4 and is scaled by
    0.3 / 0.4 (the short too, keeping its sign); row 1's sector 1 holds 0.36 and is scaled
    by 0.3 / 0.36; row 2 has both sectors exactly at the cap and is not touched. The other
    sector of a scaled row keeps its weights."""
    c = ctx(3, 3, sector_ids=np.array([0, 0, 1]))
    p = [[0.2, -0.2, 0.1], [0.1, 0.1, -0.36], [0.15, 0.15, 0.3]]
    res = run(limits(max_sector_gross=0.3), p, c)
    close(res.approved, [[0.15, -0.15, 0.1], [0.1, 0.1, -0.3], [0.15, 0.15, 0.3]])
    assert res.approved[0, 2] == 0.1 and res.approved[1, :2].tolist() == [0.1, 0.1]
    assert res.approved[2].tolist() == [0.15, 0.15, 0.3]
    assert bits(res, R.SECTOR_CAP) == [[True, True, False], [False, False, True], [False] * 3]
    assert port_bits(res, R.SECTOR_CAP) == [True, True, False]
    close(res.clipped["SECTOR_CAP"], [0.1, 0.06, 0.0])


def test_net_cap_shrinks_the_dominant_side_of_each_row():
    """NET_CAP 0.2. Row 0 is net long 0.4: the long side (0.5) shrinks by (0.2 + 0.1) /
    0.5 = 0.6, the short -0.1 stays. Row 1 is net short -0.3: the short side (0.35)
    shrinks by (0.2 + 0.05) / 0.35 = 5/7, the long 0.05 stays. Row 2 nets exactly 0.2
    and is not touched."""
    p = [[0.3, 0.2, -0.1], [-0.3, 0.05, -0.05], [0.1, 0.15, -0.05]]
    res = run(limits(max_net=0.2), p, ctx(3, 3))
    close(res.approved, [[0.18, 0.12, -0.1], [-0.3 * 5 / 7, 0.05, -0.05 * 5 / 7], p[2]])
    assert res.approved[0, 2] == -0.1 and res.approved[1, 1] == 0.05
    assert res.approved[2].tolist() == p[2]
    close(res.approved.sum(axis=1)[:2], [0.2, -0.2])
    assert bits(res, R.NET_CAP) == [[True, True, False], [True, False, True], [False] * 3]
    assert port_bits(res, R.NET_CAP) == [True, True, False]
    close(res.clipped["NET_CAP"], [0.2, 0.1, 0.0])


def test_gross_cap_uses_each_rows_budget_multiplier():
    """GROSS_CAP is max_gross 1.0 x the budget multiplier of the row's regime: row 0
    (trend, x1) sits exactly at 1.0 and passes; row 1 (high volatility, x0.5) holds 1.0
    and is scaled by 0.5; row 2 (unknown code: the default x0.6) holds 0.9 and is scaled
    by 2/3. Signs are kept."""
    lim = limits(
        max_gross=1.0,
        regime_budget_multipliers=(1.0, 0.8, 0.5, 1.0),
        default_budget_multiplier=0.6,
    )
    c = ctx(3, 3, regime=np.array([TREND, HIGH_VOL, UNKNOWN_REGIME]))
    p = [[0.5, -0.4, 0.1], [0.4, -0.4, 0.2], [0.3, 0.3, -0.3]]
    res = run(lim, p, c)
    close(res.approved, [[0.5, -0.4, 0.1], [0.2, -0.2, 0.1], [0.2, 0.2, -0.2]])
    assert res.approved[0].tolist() == p[0]
    assert bits(res, R.GROSS_CAP) == [[False] * 3, [True] * 3, [True] * 3]
    assert port_bits(res, R.GROSS_CAP) == [False, True, True]
    assert res.symbol_reasons[0].tolist() == [0, 0, 0]
    close(res.clipped["GROSS_CAP"], [0.0, 0.5, 0.3])


def test_notional_cap_divides_by_each_rows_equity():
    """NOTIONAL_CAP 5e5 over equity 1e6, 2e6, 4e6 is a gross of 0.5, 0.25, 0.125: the same
    book of gross 0.5 passes in row 0 (exactly at it) and is halved in row 1; row 2's 0.1
    is inside."""
    c = ctx(3, 2, equity=np.array([1.0e6, 2.0e6, 4.0e6]))
    res = run(limits(max_gross_notional=5.0e5), [[0.3, -0.2], [0.3, -0.2], [0.05, 0.05]], c)
    close(res.approved, [[0.3, -0.2], [0.15, -0.1], [0.05, 0.05]])
    assert res.approved[0].tolist() == [0.3, -0.2] and res.approved[2].tolist() == [0.05, 0.05]
    assert bits(res, R.NOTIONAL_CAP) == [[False, False], [True, True], [False, False]]
    assert port_bits(res, R.NOTIONAL_CAP) == [False, True, False]
    close(res.clipped["NOTIONAL_CAP"], [0.0, 0.25, 0.0])


def test_beta_limit_shrinks_the_side_carrying_the_excess_beta_per_row():
    """BETA_LIMIT 0.1. Row 0 (betas 2, 1, 0.5) has beta 0.3, all from the long names 0 and
    1: they shrink by 0.1 / 0.3. Row 1 (betas 1) has beta -0.15 from the short name 0 and
    +0.05 from name 1: the short shrinks by (0.1 + 0.05) / 0.2 = 0.75. Row 2 has beta 0.05
    and is not touched."""
    betas = np.array([[2.0, 1.0, 0.5], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    p = [[0.1, 0.1, 0.0], [-0.2, 0.05, 0.0], [0.05, 0.05, -0.05]]
    res = run(limits(beta_tolerance=0.1), p, ctx(3, 3, betas=betas))
    close(res.approved, [[0.1 / 3, 0.1 / 3, 0.0], [-0.15, 0.05, 0.0], p[2]])
    close((betas * res.approved).sum(axis=1), [0.1, -0.1, 0.05])
    assert res.approved[1, 1] == 0.05 and res.approved[2].tolist() == p[2]
    assert bits(res, R.BETA_LIMIT) == [[True, True, False], [True, False, False], [False] * 3]
    assert port_bits(res, R.BETA_LIMIT) == [True, True, False]
    close(res.clipped["BETA_LIMIT"], [0.2 - 0.2 / 3, 0.05, 0.0])


def test_beta_fix_that_breaks_the_net_is_followed_by_a_uniform_net_scale():
    """Beta 0.2 (betas 1, 0, 0) over the 0.1 tolerance shrinks name 0 from 0.2 to 0.1,
    which moves the net from -0.3 (inside 0.35) to -0.4: the whole book is then scaled by
    0.35 / 0.4, keeping the beta inside. Name 0 carries both codes, name 1 NET_CAP only."""
    c = ctx(1, 3, betas=np.array([[1.0, 0.0, 0.0]]))
    res = run(limits(beta_tolerance=0.1, max_net=0.35), [[0.2, -0.5, 0.0]], c)
    close(res.approved, [[0.1 * 0.875, -0.5 * 0.875, 0.0]])
    assert res.symbol_reasons[0].tolist() == [int(R.BETA_LIMIT | R.NET_CAP), int(R.NET_CAP), 0]
    assert res.portfolio_reasons[0] == int(R.BETA_LIMIT | R.NET_CAP)
    close(res.clipped["BETA_LIMIT"], [0.1])
    close(res.clipped["NET_CAP"], [0.6 * 0.125])


def test_factor_cap_scales_the_row_by_its_largest_exposure():
    """FACTOR_CAP 0.1 with loadings [[1, 0], [0.5, 0], [0, 1]]: row 0's exposures are
    (0.15, 0.05), so the whole row scales by 0.1 / 0.15; row 1's are (0.05, -0.05) and it
    is not touched."""
    loadings = np.array([[1.0, 0.0], [0.5, 0.0], [0.0, 1.0]])
    c = ctx(2, 3, factor_loadings=np.stack([loadings, loadings]))
    p = [[0.1, 0.1, 0.05], [0.05, 0.0, -0.05]]
    res = run(limits(max_factor_exposure=0.1), p, c)
    close(res.approved, [[0.1 / 1.5, 0.1 / 1.5, 0.05 / 1.5], p[1]])
    assert res.approved[1].tolist() == p[1]
    assert bits(res, R.FACTOR_CAP) == [[True] * 3, [False] * 3]
    assert port_bits(res, R.FACTOR_CAP) == [True, False]
    close(res.clipped["FACTOR_CAP"], [0.25 / 3, 0.0])


# ----------------------------------------------------------------------------- chain rules


def test_kill_switch_flattens_only_its_row():
    """A per-row kill switch approves an empty book for row 0 with KILL_SWITCH as its only
    reason on every symbol and the portfolio, and the whole proposal (0.2 + 0.1) as clipped;
    row 1 passes untouched with no bit and nothing clipped."""
    c = ctx(2, 3, kill_switch=np.array([True, False]), current_weights=np.full((2, 3), 0.05))
    res = run(limits(), [[0.2, -0.1, 0.0], [0.2, -0.1, 0.0]], c)
    assert res.approved.tolist() == [[0.0, 0.0, 0.0], [0.2, -0.1, 0.0]]
    assert res.symbol_reasons.tolist() == [[int(R.KILL_SWITCH)] * 3, [0, 0, 0]]
    assert res.portfolio_reasons.tolist() == [int(R.KILL_SWITCH), 0]
    close(res.clipped["KILL_SWITCH"], [0.3, 0.0])
    close(res.clipped["INVALID_INPUT"], [0.0, 0.0])


def test_invalid_proposal_keeps_the_book_of_its_row_only():
    """A NaN in row 0's proposal keeps row 0's current book [0.1, -0.05, 0] with
    INVALID_INPUT on every symbol and the portfolio, clipped |p - c| of the sanitised
    proposal (NaN read as 0): 0.1 + 0.35 = 0.45. Row 1 passes untouched."""
    c = ctx(2, 3, current_weights=np.array([[0.1, -0.05, 0.0], [0.1, 0.0, 0.0]]))
    res = run(limits(), [[np.nan, 0.3, 0.0], [0.2, -0.1, 0.0]], c)
    assert res.approved.tolist() == [[0.1, -0.05, 0.0], [0.2, -0.1, 0.0]]
    assert res.symbol_reasons.tolist() == [[int(R.INVALID_INPUT)] * 3, [0, 0, 0]]
    assert res.portfolio_reasons.tolist() == [int(R.INVALID_INPUT), 0]
    close(res.clipped["INVALID_INPUT"], [0.45, 0.0])


def test_unreadable_row_is_flattened_beside_a_bad_proposal_and_a_clean_row():
    """Row 0 has an unreadable equity (NaN): its book is read as empty and it is approved
    flat, clipped its whole proposal 0.3. Row 1 has a NaN proposal: it keeps its book,
    clipped |p - c| = |0.2 - 0.1| (NaN read as 0; the flat rows' accounting must not
    erase it). Row 2 is clean: no bit, nothing clipped."""
    c = ctx(
        3, 3, equity=np.array([np.nan, 1.0e6, 1.0e6]), current_weights=np.full((3, 3), [0.1, 0, 0])
    )
    res = run(limits(), [[0.2, -0.1, 0.0], [0.2, np.nan, 0.0], [0.2, -0.1, 0.0]], c)
    assert res.approved.tolist() == [[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.2, -0.1, 0.0]]
    assert res.symbol_reasons.tolist() == [[int(R.INVALID_INPUT)] * 3] * 2 + [[0, 0, 0]]
    assert res.portfolio_reasons.tolist() == [int(R.INVALID_INPUT)] * 2 + [0]
    close(res.clipped["INVALID_INPUT"], [0.3, 0.1, 0.0])
    close(res.clipped["KILL_SWITCH"], [0.0, 0.0, 0.0])


def test_kill_switch_on_a_bad_proposal_row_codes_both_and_counts_the_kill():
    """A killed row whose proposal is also NaN is flat with KILL_SWITCH | INVALID_INPUT on
    every symbol and the portfolio; the clipped proposal (0.2, NaN read as 0) counts under
    KILL_SWITCH only. The clean row beside it has no bit."""
    c = ctx(2, 2, kill_switch=np.array([True, False]), current_weights=np.full((2, 2), 0.1))
    res = run(limits(), [[0.2, np.nan], [0.2, -0.1]], c)
    both = int(R.KILL_SWITCH | R.INVALID_INPUT)
    assert res.approved.tolist() == [[0.0, 0.0], [0.2, -0.1]]
    assert res.symbol_reasons.tolist() == [[both, both], [0, 0]]
    assert res.portfolio_reasons.tolist() == [both, 0]
    close(res.clipped["KILL_SWITCH"], [0.2, 0.0])
    close(res.clipped["INVALID_INPUT"], [0.0, 0.0])


def test_reduce_only_per_row_refuses_growth_and_flips_only_where_set():
    """Reduce-only on row 0: name 0 may not grow (0.2 -> 0.3 keeps 0.2), name 1 may not
    flip (-0.1 -> 0.1 goes to 0), name 2 may shrink (0.1 -> 0.05). Row 1 (no flag) gets
    the same proposal untouched. REDUCE_ONLY is a symbol code: no portfolio bit."""
    cw = np.array([[0.2, -0.1, 0.1], [0.2, -0.1, 0.1]])
    c = ctx(2, 3, reduce_only=np.array([True, False]), current_weights=cw)
    res = run(limits(), [[0.3, 0.1, 0.05], [0.3, 0.1, 0.05]], c)
    assert res.approved.tolist() == [[0.2, 0.0, 0.05], [0.3, 0.1, 0.05]]
    assert bits(res, R.REDUCE_ONLY) == [[True, True, False], [False, False, False]]
    assert res.symbol_reasons[1].tolist() == [0, 0, 0]
    assert res.portfolio_reasons.tolist() == [0, 0]
    close(res.clipped["REDUCE_ONLY"], [0.2, 0.0])


def test_reduce_only_short_may_shrink_but_not_grow():
    """Reduce-only with a short book: -0.2 -> -0.1 is a reduction (kept), -0.1 -> -0.3 is
    growth (held at -0.1), 0 -> -0.1 is new risk (held at 0)."""
    c = ctx(1, 3, reduce_only=np.array([True]), current_weights=np.array([[-0.2, -0.1, 0.0]]))
    res = run(limits(), [[-0.1, -0.3, -0.1]], c)
    assert res.approved.tolist() == [[-0.1, -0.1, 0.0]]
    assert bits(res, R.REDUCE_ONLY) == [[False, True, True]]


def test_reduce_only_target_is_refitted_to_the_net_cap():
    """Reduce-only can break a signed limit: the book [0.3, -0.25, 0] (net 0.05) and the
    proposal [0.3, 0, -0.1] (net 0.2, at max_net) are both inside, but reduce-only refuses
    the new short in name 2: [0.3, 0, 0] nets 0.3, so the net gate runs again on the
    reduced book and shrinks the long side to 0.2. Name 2 carries REDUCE_ONLY, name 0
    NET_CAP, name 1 (closed as proposed) nothing."""
    c = ctx(1, 3, reduce_only=np.array([True]), current_weights=np.array([[0.3, -0.25, 0.0]]))
    res = run(limits(max_net=0.2), [[0.3, 0.0, -0.1]], c)
    close(res.approved, [[0.2, 0.0, 0.0]])
    assert res.symbol_reasons[0].tolist() == [int(R.NET_CAP), 0, int(R.REDUCE_ONLY)]
    assert res.portfolio_reasons[0] == int(R.NET_CAP)
    close(res.clipped["REDUCE_ONLY"], [0.1])
    close(res.clipped["NET_CAP"], [0.1])


def test_forced_derisk_marks_only_the_row_whose_book_was_outside():
    """Row 0's current book holds 0.3 over the 0.25 symbol cap: it is brought back to
    0.25 past the trade limits, coded SYMBOL_CAP | FORCED_DERISK on that name and
    FORCED_DERISK on the portfolio, with the 0.05 the gates removed from the book as the
    FORCED_DERISK amount. The other books are inside, and their proposals keep their own
    codes beside it: row 1 passes with no bit, row 2's 0.3 is clipped to the symbol cap,
    row 3's gross 0.5 is scaled to the 0.4 gross cap."""
    cw = np.array([[0.3, 0.0], [0.1, 0.1], [0.1, 0.1], [0.1, 0.1]])
    p = [[0.3, 0.0], [0.2, 0.2], [0.3, 0.1], [0.25, 0.25]]
    res = run(limits(max_symbol_weight=0.25, max_gross=0.4), p, ctx(4, 2, current_weights=cw))
    close(res.approved, [[0.25, 0.0], [0.2, 0.2], [0.25, 0.1], [0.2, 0.2]])
    cap, gross, forced = int(R.SYMBOL_CAP), int(R.GROSS_CAP), int(R.FORCED_DERISK)
    assert res.symbol_reasons.tolist() == [[cap | forced, 0], [0, 0], [cap, 0], [gross, gross]]
    assert res.portfolio_reasons.tolist() == [forced, 0, 0, gross]
    close(res.clipped["FORCED_DERISK"], [0.05, 0.0, 0.0, 0.0])


def test_forced_derisk_beside_an_unreadable_row():
    """An unreadable row (NaN equity) is flattened and is never a forced de-risk; the row
    whose book is over the symbol cap is; the clean row beside them carries no bit."""
    cw = np.array([[0.1, 0.0], [0.3, 0.0], [0.1, 0.1]])
    c = ctx(3, 2, current_weights=cw, equity=np.array([np.nan, 1.0e6, 1.0e6]))
    res = run(limits(max_symbol_weight=0.25), [[0.1, 0.0], [0.3, 0.0], [0.2, 0.1]], c)
    assert res.approved.tolist() == [[0.0, 0.0], [0.25, 0.0], [0.2, 0.1]]
    invalid, forced = int(R.INVALID_INPUT), int(R.FORCED_DERISK)
    assert res.portfolio_reasons.tolist() == [invalid, forced, 0]
    assert res.symbol_reasons[1].tolist() == [int(R.SYMBOL_CAP) | forced, 0]
    assert res.symbol_reasons[2].tolist() == [0, 0]


# ----------------------------------------------------------------------------- trade limits


def test_participation_cap_clips_each_trade_to_its_rows_adv_share():
    """PARTICIPATION_CAP is max_participation 0.1 x ADV / equity (1e6 / 1e6) x the row's
    capacity multiplier: 0.1 in trend, 0.05 in high volatility. Row 0 trades 0.25 in name 0
    (from 0.05) and is clipped to a 0.1 trade (0.15); row 1 trades 0.15 and is clipped to
    0.05. A sell of exactly 0.05 at row 1's cap and the small trades pass untouched; no
    portfolio bit (a per-symbol limit)."""
    lim = limits(max_participation=0.1, regime_capacity_multipliers=(1.0, 1.0, 0.5, 1.0))
    c = ctx(
        2, 3,
        adv_notional=np.full((2, 3), 1.0e6),
        regime=np.array([TREND, HIGH_VOL]),
        current_weights=np.array([[0.05, 0.0, 0.0], [0.0, 0.0, 0.0]]),
    )  # fmt: skip
    res = run(lim, [[0.3, -0.05, 0.02], [0.15, -0.05, 0.02]], c)
    close(res.approved, [[0.15, -0.05, 0.02], [0.05, -0.05, 0.02]])
    assert res.approved[:, 1:].tolist() == [[-0.05, 0.02], [-0.05, 0.02]]
    assert bits(res, R.PARTICIPATION_CAP) == [[True, False, False], [True, False, False]]
    assert res.portfolio_reasons.tolist() == [0, 0]
    close(res.clipped["PARTICIPATION_CAP"], [0.15, 0.1])


def test_participation_room_is_the_cap_less_the_bars_fills_in_that_symbol():
    """Fills of 5e4 already traded in row 0's name 0 this bar leave 0.1 - 0.05 of the
    participation cap: the 0.1 buy is clipped to 0.05. Name 1 (no fill) and row 1 (no
    fills) trade their full 0.1, exactly at the cap."""
    c = ctx(
        2, 2, adv_notional=np.full((2, 2), 1.0e6), recent_fills=np.array([[5.0e4, 0.0], [0.0, 0.0]])
    )
    res = run(limits(max_participation=0.1), [[0.1, 0.1], [0.1, 0.1]], c)
    close(res.approved, [[0.05, 0.1], [0.1, 0.1]])
    assert res.approved[1].tolist() == [0.1, 0.1] and res.approved[0, 1] == 0.1
    assert bits(res, R.PARTICIPATION_CAP) == [[True, False], [False, False]]
    close(res.clipped["PARTICIPATION_CAP"], [0.05, 0.0])


def test_symbol_turnover_cap_per_row_capacity():
    """SYMBOL_TURNOVER_CAP 0.05 x capacity: 0.05 in trend clips the 0.08 buy only; 0.025
    in high volatility clips both trades, the sell to -0.025."""
    lim = limits(max_symbol_turnover=0.05, regime_capacity_multipliers=(1.0, 1.0, 0.5, 1.0))
    res = run(lim, [[0.08, -0.03], [0.08, -0.03]], ctx(2, 2, regime=np.array([TREND, HIGH_VOL])))
    close(res.approved, [[0.05, -0.03], [0.025, -0.025]])
    assert res.approved[0, 1] == -0.03
    assert bits(res, R.SYMBOL_TURNOVER_CAP) == [[True, False], [True, True]]
    assert res.portfolio_reasons.tolist() == [0, 0]
    close(res.clipped["SYMBOL_TURNOVER_CAP"], [0.03, 0.06])


def test_turnover_cap_scales_each_rows_trade_by_its_own_factor():
    """TURNOVER_CAP 0.2: row 0 trades 0.4 and is halved; row 1 trades exactly 0.2 (from
    [0.1, 0]) and passes untouched; row 2 trades 0.4 in name 0 only (from [0.1, 0.1]): its
    trade is halved to 0.2 and name 1, which does not trade, keeps 0.1 and no bit."""
    cw = np.array([[0.0, 0.0], [0.1, 0.0], [0.1, 0.1]])
    res = run(
        limits(max_turnover=0.2),
        [[0.2, -0.2], [0.2, 0.1], [0.5, 0.1]],
        ctx(3, 2, current_weights=cw),
    )
    close(res.approved, [[0.1, -0.1], [0.2, 0.1], [0.3, 0.1]])
    assert res.approved[1].tolist() == [0.2, 0.1] and res.approved[2, 1] == 0.1
    assert bits(res, R.TURNOVER_CAP) == [[True, True], [False, False], [True, False]]
    assert port_bits(res, R.TURNOVER_CAP) == [True, False, True]
    close(res.clipped["TURNOVER_CAP"], [0.2, 0.0, 0.2])


def test_turnover_room_is_the_cap_less_the_rows_fills():
    """Row 0's fills (5e4 + 5e4 = 0.1 of equity) leave 0.1 of the 0.2 turnover cap: its
    0.4 trade scales by 0.25. Row 1 has no fills: the same trade scales by 0.5."""
    c = ctx(2, 2, recent_fills=np.array([[5.0e4, 5.0e4], [0.0, 0.0]]))
    res = run(limits(max_turnover=0.2), [[0.2, -0.2], [0.2, -0.2]], c)
    close(res.approved, [[0.05, -0.05], [0.1, -0.1]])
    assert port_bits(res, R.TURNOVER_CAP) == [True, True]
    close(res.clipped["TURNOVER_CAP"], [0.3, 0.2])


def test_clipped_trade_that_breaks_the_net_is_repaired_per_row():
    """Participation (0.1 x ADV / equity) clips a trade, and the clipped book breaks the
    0.1 net cap; the repair closer to the target wins, per row.

    Row 0: name 0's cap is 0.1, so [0.3, -0.3] becomes [0.1, -0.3] (net -0.2). Keeping
    the clipped buy and scaling the free sell by 2/3 gives [0.1, -0.2] (0.3 from the
    target), nearer than scaling the whole trade by 1/2 ([0.05, -0.15], 0.4 away). Row 1:
    both trades are clipped (caps 0.25 and 0.05), [0.25, 0, -0.05] nets 0.2 and the
    clipped trades alone break the cap, so the whole trade scales by 1/2. Row 2 is
    inside every limit and untouched. NET_CAP codes the names the repair moved."""
    adv = np.array([[1.0e6, 1.0e9, 1.0e9], [2.5e6, 1.0e9, 5.0e5], [1.0e9, 1.0e9, 1.0e9]])
    p = [[0.3, -0.3, 0.0], [0.3, 0.0, -0.3], [0.05, -0.1, 0.0]]
    res = run(limits(max_participation=0.1, max_net=0.1), p, ctx(3, 3, adv_notional=adv))
    close(res.approved, [[0.1, -0.2, 0.0], [0.125, 0.0, -0.025], [0.05, -0.1, 0.0]])
    assert res.approved[2].tolist() == [0.05, -0.1, 0.0]
    part, net = int(R.PARTICIPATION_CAP), int(R.NET_CAP)
    assert res.symbol_reasons.tolist() == [[part, net, 0], [part | net, 0, part | net], [0, 0, 0]]
    assert port_bits(res, R.NET_CAP) == [True, True, False]
    close(res.clipped["NET_CAP"], [0.1, 0.15, 0.0])
    close(res.clipped["PARTICIPATION_CAP"], [0.2, 0.3, 0.0])


def test_repair_of_a_reversing_trade_keeps_the_clipped_names():
    """The book [0.05, -0.2, 0.14] reverses toward [-0.18, 0.12, -0.11] (net -0.17, inside
    the 0.2 cap). Participation caps names 0 and 1 at 0.05 of trade, so the clipped book
    [0, -0.15, -0.11] nets -0.26. Keeping the clipped trades and scaling the free sell by
    0.76 gives [0, -0.15, -0.05], 0.51 from the target in L1; scaling the whole trade by
    0.76 gives [0.012, -0.162, -0.05], 0.534 away: the first wins, and the repair codes
    NET_CAP on name 2 alone."""
    c = ctx(
        1,
        3,
        adv_notional=np.array([[5.0e5, 5.0e5, 1.0e9]]),
        current_weights=np.array([[0.05, -0.2, 0.14]]),
    )
    res = run(limits(max_participation=0.1, max_net=0.2), [[-0.18, 0.12, -0.11]], c)
    close(res.approved, [[0.0, -0.15, -0.05]])
    part, net = int(R.PARTICIPATION_CAP), int(R.NET_CAP)
    assert res.symbol_reasons.tolist() == [[part, part, net]]
    assert res.portfolio_reasons.tolist() == [net]
    close(res.clipped["NET_CAP"], [0.06])
    close(res.clipped["GROSS_CAP"], [0.0])  # on, not broken: nothing counted


def test_repair_after_a_turnover_scale_keeps_the_turnover_codes():
    """The reversing trade of the test above under a 0.3 turnover cap as well: the
    clipped trade [-0.05, 0.05, -0.25] (L1 0.35) is scaled by 6/7, the book still nets
    -0.01 - 0.25 x 6/7 < -0.2, and the repair keeps the scaled clipped trades and scales
    the free sell until the net is -0.2: [0.05 / 7, -1.1 / 7, -0.05]. The portfolio
    carries both TURNOVER_CAP and NET_CAP; NET_CAP counts the 0.17 / 7 the repair took
    off name 2."""
    c = ctx(
        1,
        3,
        adv_notional=np.array([[5.0e5, 5.0e5, 1.0e9]]),
        current_weights=np.array([[0.05, -0.2, 0.14]]),
    )
    res = run(
        limits(max_participation=0.1, max_net=0.2, max_turnover=0.3), [[-0.18, 0.12, -0.11]], c
    )
    close(res.approved, [[0.05 / 7, -1.1 / 7, -0.05]])
    part, net, turn = int(R.PARTICIPATION_CAP), int(R.NET_CAP), int(R.TURNOVER_CAP)
    assert res.symbol_reasons.tolist() == [[part | turn, part | turn, net | turn]]
    assert res.portfolio_reasons.tolist() == [net | turn]
    close(res.clipped["NET_CAP"], [0.17 / 7])
    close(res.clipped["TURNOVER_CAP"], [0.05])


def test_repair_scales_the_whole_trade_when_the_clipped_trades_alone_break_the_limit():
    """Participation caps both trades of [0.3, 0, -0.3] (caps 0.25 and 0.05): the
    clipped book [0.25, 0, -0.05] nets 0.2 > 0.1, and so do the clipped trades alone, so
    the only repair is the whole trade scaled by 1/2."""
    c = ctx(1, 3, adv_notional=np.array([[2.5e6, 1.0e9, 5.0e5]]))
    res = run(limits(max_participation=0.1, max_net=0.1), [[0.3, 0.0, -0.3]], c)
    close(res.approved, [[0.125, 0.0, -0.025]])
    both = int(R.PARTICIPATION_CAP | R.NET_CAP)
    assert res.symbol_reasons.tolist() == [[both, 0, both]]
    assert res.portfolio_reasons.tolist() == [int(R.NET_CAP)]
    close(res.clipped["NET_CAP"], [0.15])


SPREAD = CostModel(commission_bps=0.0, spread_mult=1.0, impact_k=0.0)
"""Half the quoted spread per unit traded: a linear cost of spread_bps / 2e4 per weight."""


def test_slippage_budget_scales_the_row_whose_spread_makes_it_too_costly():
    """SLIPPAGE_BUDGET 1 bps with a linear cost of spread / 2: row 0 (5 bps) costs 0.4 x
    2.5e-4 = 1e-4, exactly the budget, and passes; row 1 (20 bps) costs 4e-4 and its
    trade scales by 1/4. Both names of row 1 are coded, with the portfolio."""
    c = ctx(2, 2, spread_bps=np.array([[5.0, 5.0], [20.0, 20.0]]))
    res = run(limits(slippage_budget_bps=1.0), [[0.2, -0.2], [0.2, -0.2]], c, SPREAD)
    close(res.approved, [[0.2, -0.2], [0.05, -0.05]])
    assert res.approved[0].tolist() == [0.2, -0.2]
    assert bits(res, R.SLIPPAGE_BUDGET) == [[False, False], [True, True]]
    assert port_bits(res, R.SLIPPAGE_BUDGET) == [False, True]
    close(res.clipped["SLIPPAGE_BUDGET"], [0.0, 0.3])


def test_slippage_budget_with_impact_solves_the_concave_curve_per_row():
    """Commission 1 bps plus impact sigma sqrt(|dw| equity / ADV) per unit: row 0's trade
    [0.2, -0.2] costs L = 0.4e-4 linear plus I = 0.4 x 0.01 x sqrt(0.2) impact, over the 2
    bps budget, so it scales by the root s of s L + s^1.5 I = 2e-4 (found here by
    bisection); row 1's 0.01 trade costs 1.1e-5 and passes."""
    model = CostModel(commission_bps=1.0, spread_mult=0.0, impact_k=1.0)
    c = ctx(2, 2, adv_notional=np.full((2, 2), 1.0e6), volatility=np.full((2, 2), 0.01))
    res = run(limits(slippage_budget_bps=2.0), [[0.2, -0.2], [0.01, 0.0]], c, model)
    linear, impact = 0.4e-4, 0.4 * 0.01 * np.sqrt(0.2)
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mid * linear + mid**1.5 * impact <= 2e-4 else (lo, mid)
    close(res.approved, [[0.2 * lo, -0.2 * lo], [0.01, 0.0]])
    assert res.approved[1].tolist() == [0.01, 0.0]
    assert port_bits(res, R.SLIPPAGE_BUDGET) == [True, False]
    close(res.clipped["SLIPPAGE_BUDGET"], [0.4 * (1.0 - lo), 0.0])


def test_symbol_slippage_budget_scales_only_the_costly_symbol_of_each_row():
    """SYMBOL_SLIPPAGE_BUDGET 0.5 bps, linear cost spread / 2: a 0.2 trade at 5 bps costs
    0.5e-4 (exactly the budget: kept); at 20 bps it costs 2e-4 and scales to 0.05. Row 0's
    costly name is name 1, row 1's name 0; the other names and the portfolio bits stay."""
    c = ctx(2, 2, spread_bps=np.array([[5.0, 20.0], [20.0, 5.0]]))
    res = run(limits(symbol_slippage_budget_bps=0.5), [[0.2, -0.2], [0.1, -0.2]], c, SPREAD)
    close(res.approved, [[0.2, -0.05], [0.05, -0.2]])
    assert res.approved[0, 0] == 0.2 and res.approved[1, 1] == -0.2
    assert bits(res, R.SYMBOL_SLIPPAGE_BUDGET) == [[False, True], [True, False]]
    assert res.portfolio_reasons.tolist() == [0, 0]
    close(res.clipped["SYMBOL_SLIPPAGE_BUDGET"], [0.15, 0.05])


# ----------------------------------------------------------------------------- strategy budgets


def test_strategy_cap_uses_each_rows_regime_tilt():
    """Base budget 0.4 per family; the default tilts halve mean reversion in a trend regime
    and trend in a mean-reversion regime. Row 0 (trend): trend proposes 0.6 over 0.4 and
    scales by 2/3; mean reversion's 0.2 is exactly its 0.2 budget. Row 1 (mean
    reversion): trend's 0.2 is at its 0.2 budget; mean reversion's 0.6 (a short included)
    scales by 2/3. Only the scaled families' names are coded; the trace's approved line
    attributes the final book back to the families."""
    sw = np.zeros((2, 2, 3))
    sw[0, 0], sw[0, 1] = [0.3, 0.3, 0.0], [0.0, 0.0, 0.2]
    sw[1, 0], sw[1, 1] = [0.1, 0.1, 0.0], [0.0, 0.2, -0.4]
    c = ctx(2, 3, strategy_weights=sw, regime=np.array([TREND, MEAN_REV]))
    res = run(limits(max_strategy_contribution=0.4), sw.sum(axis=1), c)
    close(res.strategy_scale, [[2 / 3, 1.0], [1.0, 2 / 3]])
    close(res.approved, [[0.2, 0.2, 0.2], [0.1, 0.1 + 0.4 / 3, -0.8 / 3]])
    assert bits(res, R.STRATEGY_CAP) == [[True, True, False], [False, True, True]]
    assert port_bits(res, R.STRATEGY_CAP) == [True, True]
    budget = res.strategy_budget
    close(budget.base, [[0.4, 0.4], [0.4, 0.4]])
    close(budget.regime, [[0.4, 0.2], [0.2, 0.4]])
    close(budget.capacity, [[0.4, 0.2], [0.2, 0.4]])  # no capacity references: factor 1
    close(budget.proposed, [[0.6, 0.2], [0.2, 0.6]])
    close(budget.approved, [[0.4, 0.2], [0.2, 0.4]])
    close(res.clipped["STRATEGY_CAP"], [0.2, 0.2])  # L1 removed: 0.1 + 0.1, 0.2 / 3 + 0.4 / 3


def test_strategy_attribution_spreads_unowned_weight_and_follows_later_gates():
    """The trace's approved line splits the final book over the families. Row 0 holds a
    non-tradable 0.1 in name 2 that no family proposes: it is spread in proportion to the
    families' gross (0.3 : 0.1), giving 0.3 + 0.075 and 0.1 + 0.025. Row 1's regime
    (high volatility, budget multiplier 0.03) caps the gross at 0.3: the families sit
    exactly at their 0.3 budget (scale 1) and the gross cap then scales the book by 0.75,
    which the attribution follows: 0.225 and 0.075."""
    sw = np.zeros((2, 2, 3))
    sw[:, 0], sw[:, 1] = [0.3, 0.0, 0.0], [0.0, 0.1, 0.0]
    c = ctx(
        2, 3,
        strategy_weights=sw,
        current_weights=np.array([[0.0, 0.0, 0.1], [0.0, 0.0, 0.0]]),
        tradable=np.array([[True, True, False], [True, True, True]]),
        regime=np.array([TREND, HIGH_VOL]),
    )  # fmt: skip
    lim = limits(regime_budget_multipliers=(1.0, 1.0, 0.03, 1.0))
    res = run(lim, sw.sum(axis=1), c)
    close(res.strategy_scale, [[1.0, 1.0], [1.0, 1.0]])
    close(res.approved, [[0.3, 0.1, 0.1], [0.225, 0.075, 0.0]])
    close(res.strategy_budget.approved, [[0.375, 0.125], [0.225, 0.075]])
    close(res.strategy_budget.regime, [[10.0, 5.0], [0.3, 0.3]])  # base x multiplier x tilt
    assert port_bits(res, R.GROSS_CAP) == [False, True]
    assert port_bits(res, R.STRATEGY_CAP) == [False, False]


def test_strategy_scale_is_zero_on_a_killed_row():
    """A killed row approves nothing, so its families' scales and attributed budgets are 0;
    the live row beside it keeps scale 1 and its own attribution."""
    sw = np.zeros((2, 2, 2))
    sw[:, 0], sw[:, 1] = [0.1, 0.0], [0.0, 0.2]
    c = ctx(2, 2, strategy_weights=sw, kill_switch=np.array([True, False]))
    res = run(limits(), sw.sum(axis=1), c)
    assert res.strategy_scale.tolist() == [[0.0, 0.0], [1.0, 1.0]]
    assert res.approved.tolist() == [[0.0, 0.0], [0.1, 0.2]]
    close(res.strategy_budget.approved, [[0.0, 0.0], [0.1, 0.2]])


# ----------------------------------------------------------------------------- registry measures


def _bounds(lim: RiskLimits, n: int, sector_ids: list[int]) -> Bounds:
    regime = np.zeros(n, dtype=np.int64)
    sectors = sector_map(np.array(sector_ids), len(sector_ids))
    return portfolio_bounds(lim, lim.tables.slot(regime), np.full(n, 1.0e6), sectors, None)


# One book per row: inside everything (at the sector and gross caps), over the symbol
# cap, over the sector cap, short under long-only, over the gross and net caps.
MEASURED = np.array(
    [
        [0.2, 0.2, 0.2],
        [0.3, 0.0, 0.0],
        [0.2, 0.25, 0.1],
        [0.1, -0.1, 0.0],
        [0.2, 0.2, 0.25],
    ]
)
MEASURE_LIMITS = dict(
    long_only=True, max_symbol_weight=0.25, max_sector_gross=0.4, max_net=0.62, max_gross=0.6
)


def test_registry_measures_name_each_rows_breaches():
    """The registry's measures, row by row, on MEASURED (sectors [0, 0, 1]): ``hard_ok``
    passes only the first row; ``names_outside`` flags the name over the symbol cap and
    the short, nothing for a coupled breach; ``coupled_violations`` lists the coupled
    limits that are on in gate order (sector, net, gross) with the rows breaking each;
    ``coupled_ok`` is the rows breaking none of them."""
    b = _bounds(limits(**MEASURE_LIMITS), 5, [0, 0, 1])
    assert hard_ok(MEASURED, b).tolist() == [True, False, False, False, False]
    no = [False] * 3
    assert names_outside(MEASURED, b).tolist() == [
        no,
        [True, False, False],
        no,
        [False, True, False],
        no,
    ]
    violations = coupled_violations(MEASURED, b)
    assert [code for code, _ in violations] == [R.SECTOR_CAP, R.NET_CAP, R.GROSS_CAP]
    assert [rows.tolist() for _, rows in violations] == [
        [False, False, True, False, False],
        [False, False, False, False, True],
        [False, False, False, False, True],
    ]
    assert coupled_ok(MEASURED, b).tolist() == [True, True, False, True, False]


def test_registry_measures_restricted_to_some_limits():
    """``codes`` restricts ``coupled_ok`` and ``coupled_violations`` to those limits: with
    the net cap alone only the last row fails; a limit that is off (beta, without a beta
    tolerance) contributes nothing, so every row passes and the answer is still a boolean
    mask."""
    b = _bounds(limits(**MEASURE_LIMITS), 5, [0, 0, 1])
    only_net = frozenset({R.NET_CAP})
    assert coupled_ok(MEASURED, b, only_net).tolist() == [True] * 4 + [False]
    assert [c for c, _ in coupled_violations(MEASURED, b, only_net)] == [R.NET_CAP]
    off = coupled_ok(MEASURED, b, frozenset({R.BETA_LIMIT}))
    assert off.dtype == bool and off.tolist() == [True] * 5
    assert coupled_violations(MEASURED, b, frozenset({R.BETA_LIMIT})) == []


def test_regime_codes_outside_the_labels_use_the_default_multipliers():
    """Every code outside ``REGIME_LABELS`` (-1, -2, 4, 7) reads the default budget
    multiplier 0.6, never a label's: the same book of gross 0.9 is scaled to 0.6 in each
    of those rows and passes in the trend row (multiplier 1)."""
    lim = limits(
        max_gross=1.0,
        regime_budget_multipliers=(1.0, 0.8, 0.5, 0.7),
        default_budget_multiplier=0.6,
    )
    regime = np.array([UNKNOWN_REGIME, -2, len(REGIME_LABELS), 7, TREND])
    res = run(lim, np.full((5, 3), 0.3), ctx(5, 3, regime=regime))
    close(res.approved, [[0.2] * 3] * 4 + [[0.3] * 3])
    assert port_bits(res, R.GROSS_CAP) == [True] * 4 + [False]


# ----------------------------------------------------------------------------- large batches

# From 64 rows on, the row gates compute only the rows over a limit and write them back.
# Each case: limits, a few rows (one inside), per-row context fields, the approved rows by
# hand, and the code. Tiled to 66 rows, every row must come out as it does by hand.
BETAS = [[2.0, 1.0, 0.5], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
LOADINGS = [[[1.0, 0.0], [0.5, 0.0], [0.0, 1.0]]] * 2
LARGE: dict[str, tuple[dict, list, dict, list, ReasonCode]] = {
    "sector": (
        dict(max_sector_gross=0.3),
        [[0.2, -0.2, 0.1], [0.1, 0.1, -0.36], [0.15, 0.15, 0.3]],
        {},
        [[0.15, -0.15, 0.1], [0.1, 0.1, -0.3], [0.15, 0.15, 0.3]],
        R.SECTOR_CAP,
    ),
    "net": (
        dict(max_net=0.2),
        [[0.3, 0.2, -0.1], [-0.3, 0.05, -0.05], [0.1, 0.05, -0.05]],
        {},
        [[0.18, 0.12, -0.1], [-0.3 * 5 / 7, 0.05, -0.05 * 5 / 7], [0.1, 0.05, -0.05]],
        R.NET_CAP,
    ),
    "gross": (
        dict(max_gross=1.0, regime_budget_multipliers=(1.0, 0.8, 0.5, 1.0)),
        [[0.5, -0.4, 0.1], [0.4, -0.4, 0.2], [0.3, 0.3, -0.3]],
        dict(regime=[TREND, HIGH_VOL, MEAN_REV]),
        [[0.5, -0.4, 0.1], [0.2, -0.2, 0.1], [0.8 / 3, 0.8 / 3, -0.8 / 3]],
        R.GROSS_CAP,
    ),
    "notional": (
        dict(max_gross_notional=5.0e5),
        [[0.3, -0.2, 0.0], [0.3, -0.2, 0.0], [0.05, 0.05, 0.0]],
        dict(equity=[1.0e6, 2.0e6, 4.0e6]),
        [[0.3, -0.2, 0.0], [0.15, -0.1, 0.0], [0.05, 0.05, 0.0]],
        R.NOTIONAL_CAP,
    ),
    "beta": (
        dict(beta_tolerance=0.1),
        [[0.1, 0.1, 0.0], [-0.2, 0.05, 0.0], [0.05, 0.05, -0.05]],
        dict(betas=BETAS),
        [[0.1 / 3, 0.1 / 3, 0.0], [-0.15, 0.05, 0.0], [0.05, 0.05, -0.05]],
        R.BETA_LIMIT,
    ),
    "beta_then_net": (
        dict(beta_tolerance=0.1, max_net=0.35),
        [[0.2, -0.5, 0.0], [0.05, -0.05, 0.0]],
        dict(betas=[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]),
        [[0.0875, -0.4375, 0.0], [0.05, -0.05, 0.0]],
        R.NET_CAP,
    ),
    "factor": (
        dict(max_factor_exposure=0.1),
        [[0.1, 0.1, 0.05], [0.05, 0.0, -0.05]],
        dict(factor_loadings=LOADINGS),
        [[0.1 / 1.5, 0.1 / 1.5, 0.05 / 1.5], [0.05, 0.0, -0.05]],
        R.FACTOR_CAP,
    ),
}


@pytest.mark.parametrize("case", sorted(LARGE))
def test_large_batches_gate_each_row_as_by_hand(case):
    """A batch of 66 rows (the pattern tiled 22 or 33 times) takes the large-batch path
    that computes only the rows over the limit and writes them back in place: every row
    is approved as by hand, with the limit's portfolio bit on exactly the rows it moved."""
    kw, p, fields, expected, code = LARGE[case]
    k = len(p)
    reps = 66 // k
    n = k * reps
    over = [row != want for row, want in zip(p, expected, strict=True)]
    tiled: dict[str, Any] = {}
    for name, value in fields.items():
        value = np.asarray(value)
        tiled[name] = np.tile(value, (reps,) + (1,) * (value.ndim - 1))
    c = ctx(n, 3, sector_ids=np.array([0, 0, 1]), **tiled)
    res = run(limits(**kw), np.tile(p, (reps, 1)), c)
    close(res.approved, np.tile(expected, (reps, 1)))
    assert port_bits(res, code) == over * reps


def test_registry_measures_of_the_optional_limits():
    """The measures of the limits that are off by default, once on, one breach per row:
    the per-symbol notional cap (2e5 / 1e6 = 0.2) flags name 0 of row 1 by name; the
    gross notional cap (5e5 / 1e6 = 0.5) fails row 2, the beta tolerance 0.1 (betas 1,
    -1, 0) row 3 and the factor cap 0.15 (loadings 0, 1, 1) row 4. Row 0 is inside all
    of them."""
    lim = limits(
        max_symbol_notional=2.0e5, max_gross_notional=5.0e5, beta_tolerance=0.1,
        max_factor_exposure=0.15,
    )  # fmt: skip
    w = np.array(
        [
            [0.05, 0.05, 0.05],
            [0.21, 0.2, -0.05],
            [0.2, 0.2, -0.15],
            [0.15, 0.0, 0.0],
            [0.1, 0.1, 0.1],
        ]
    )
    n = w.shape[0]
    betas = np.tile([1.0, -1.0, 0.0], (n, 1))
    loadings = np.broadcast_to(np.array([[0.0], [1.0], [1.0]]), (n, 3, 1))
    sectors = sector_map(np.arange(3), 3)
    slot = lim.tables.slot(np.zeros(n, dtype=np.int64))
    b = portfolio_bounds(lim, slot, np.full(n, 1.0e6), sectors, betas, loadings)
    no = [False] * 3
    assert names_outside(w, b).tolist() == [no, [True, False, False], no, no, no]
    assert hard_ok(w, b).tolist() == [True, False, False, False, False]
    broken = {code: rows.tolist() for code, rows in coupled_violations(w, b)}
    order = [R.SECTOR_CAP, R.NET_CAP, R.BETA_LIMIT, R.GROSS_CAP, R.NOTIONAL_CAP, R.FACTOR_CAP]
    assert list(broken) == order
    assert broken[R.NOTIONAL_CAP] == [False, False, True, False, False]
    assert broken[R.BETA_LIMIT] == [False, False, False, True, False]
    assert broken[R.FACTOR_CAP] == [False, False, False, False, True]
    assert coupled_ok(w, b).tolist() == [True, True, False, False, False]


def test_limit_tables_hold_the_clamped_multipliers_per_regime_slot():
    """``LimitTables.budget`` and ``.capacity`` are the regime multipliers clamped to
    [min_multiplier, max_multiplier] (here [0.5, 1.5]) in ``REGIME_LABELS`` order, then
    the default for unknown codes; a bound with a multiplier is the limit times it."""
    lim = limits(
        min_multiplier=0.5,
        max_multiplier=1.5,
        regime_budget_multipliers=(1.0, 2.0, 0.25, 0.8),
        regime_capacity_multipliers=(0.6, 1.0, 3.0, 0.1),
        default_budget_multiplier=0.7,
        default_capacity_multiplier=0.9,
        max_gross=2.0,
        max_symbol_weight=0.2,
    )
    close(lim.tables.budget, [1.0, 1.5, 0.5, 0.8, 0.7])
    close(lim.tables.capacity, [0.6, 1.0, 1.5, 0.5, 0.9])
    close(lim.tables.bound[R.GROSS_CAP], [2.0, 3.0, 1.0, 1.6, 1.4])
    close(lim.tables.bound[R.SYMBOL_CAP], [0.12, 0.2, 0.3, 0.1, 0.18])
    assert lim.tables.bound[R.LONG_ONLY] is None  # a flag has no bound
    assert lim.tables.bound[R.SYMBOL_TURNOVER_CAP] is None  # off


def test_kill_switch_codes_the_held_names_of_its_row_not_tradable():
    """A killed row is approved flat, but execution cannot move its non-tradable name 1:
    that name carries KILL_SWITCH | NOT_TRADABLE, the others KILL_SWITCH alone. The
    non-tradable name of the live row keeps its book with NOT_TRADABLE only."""
    c = ctx(
        2, 3,
        kill_switch=np.array([True, False]),
        current_weights=np.full((2, 3), 0.1),
        tradable=np.array([[True, False, True], [True, False, True]]),
    )  # fmt: skip
    res = run(limits(), [[0.2, 0.2, 0.0], [0.2, 0.2, 0.0]], c)
    kill, nt = int(R.KILL_SWITCH), int(R.NOT_TRADABLE)
    assert res.approved.tolist() == [[0.0, 0.0, 0.0], [0.2, 0.1, 0.0]]
    assert res.symbol_reasons.tolist() == [[kill, kill | nt, kill], [0, nt, 0]]
    assert res.portfolio_reasons.tolist() == [kill, 0]  # a held name is a symbol code


def test_a_killed_row_codes_not_tradable_only_where_execution_cannot_trade():
    """Name 1 is flagged tradable at a valid price but its ADV is NaN: the gates cannot
    use it, yet execution closes it under the kill switch, so it carries KILL_SWITCH
    alone; name 2 (flag off) is held by execution and keeps NOT_TRADABLE."""
    from allocgym.execution import ExecutionParams, ExecutionPolicy

    lim = limits()
    c = ctx(
        1, 3,
        kill_switch=np.array([True]),
        current_weights=np.array([[0.2, 0.1, 0.1]]),
        adv_notional=np.array([[1e9, np.nan, 1e9]]),
        tradable=np.array([[True, True, False]]),
    )  # fmt: skip
    res = run(lim, [[0.2, 0.1, 0.1]], c)
    kill, nt = int(R.KILL_SWITCH), int(R.NOT_TRADABLE)
    assert res.approved.tolist() == [[0.0, 0.0, 0.0]]
    assert res.symbol_reasons.tolist() == [[kill, kill, kill | nt]]
    ex = ExecutionPolicy(ExecutionParams(), lim).apply(res, c)
    assert ex.delta_qty[0, 0] < 0 and ex.delta_qty[0, 1] < 0 and ex.delta_qty[0, 2] == 0.0


def test_zero_adv_stays_untradable_when_the_participation_bound_overflows():
    """A name with zero ADV may not trade: its participation cap is 0 even when
    max_participation x the capacity multiplier (1e308 x 2) overflows to inf, where
    0 x inf would make a NaN cap. Its buy is clipped to 0 and coded; the liquid names
    trade in full (a non-tradable name in row 1 is held: the zero-ADV rule is not the
    only one that closes a name)."""
    with np.errstate(over="ignore"):  # building the tables overflows the bound to inf
        lim = limits(max_participation=1e308, regime_capacity_multipliers=(2.0, 1.0, 1.0, 1.0))
    c = ctx(
        2, 2,
        adv_notional=np.array([[0.0, 1.0e9], [1.0e9, 1.0e9]]),
        tradable=np.array([[True, True], [True, False]]),
    )  # fmt: skip
    res = run(lim, [[0.1, 0.1], [0.1, 0.1]], c)
    assert res.approved.tolist() == [[0.0, 0.1], [0.1, 0.0]]
    assert bits(res, R.PARTICIPATION_CAP) == [[True, False], [False, False]]
    assert bits(res, R.NOT_TRADABLE) == [[False, False], [False, True]]
    close(res.clipped["PARTICIPATION_CAP"], [0.1, 0.0])


@pytest.mark.parametrize("max_net", [0.0, 0.05])
def test_net_cap_beside_an_empty_book_emits_no_warning(max_net):
    """The net gate computes a shrink factor (cap + other side) / dominant side for every
    row of a batch; for an empty row that is 0 / 0 (max_net = 0, a dollar-neutral
    mandate) or 0.05 / 0. Row 0's unmatched long is cut to the cap, the neutral row 2 and
    the empty row 1 are left alone, and no floating-point warning escapes (the chain
    silences them on purpose)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = run(limits(max_net=max_net), [[0.1, 0.0], [0.0, 0.0], [0.1, -0.1]], ctx(3, 2))
    close(res.approved, [[max_net, 0.0], [0.0, 0.0], [0.1, -0.1]])
    assert port_bits(res, R.NET_CAP) == [True, False, False]


def test_bad_recent_fills_raise_an_error_naming_the_value_and_the_fix():
    """A negative fill notional is refused with a message naming the field, the value, its
    position and the range to use."""
    c = ctx(1, 2, recent_fills=np.array([[1.0e4, -5.0]]))
    with pytest.raises(
        RequestError, match=r"recent_fills has -5\.0 at \[0, 1\]: pass the notional"
    ):
        RiskGateChain(limits(), FREE).apply(np.array([[0.1, 0.1]]), c)


def test_turnover_and_slippage_scales_multiply_in_one_row():
    """TURNOVER_CAP 0.2 then SLIPPAGE_BUDGET 1 bps, linear cost spread / 2. Row 0 (20
    bps): the 0.4 trade is halved by the turnover cap, and the halved trade still costs
    2e-4, so the slippage budget halves it again: 1/4 in all, 0.2 of L1 counted under
    TURNOVER_CAP and 0.5 x 0.5 x 0.4 = 0.1 under SLIPPAGE_BUDGET. Row 1 (5 bps): only
    the turnover cap binds. Row 2 (40 bps, 0.1 traded): only the slippage budget binds,
    halving it."""
    c = ctx(3, 2, spread_bps=np.array([[20.0, 20.0], [5.0, 5.0], [40.0, 40.0]]))
    lim = limits(max_turnover=0.2, slippage_budget_bps=1.0)
    res = run(lim, [[0.2, -0.2], [0.2, -0.2], [0.05, -0.05]], c, SPREAD)
    close(res.approved, [[0.05, -0.05], [0.1, -0.1], [0.025, -0.025]])
    turn, slip = int(R.TURNOVER_CAP), int(R.SLIPPAGE_BUDGET)
    assert res.portfolio_reasons.tolist() == [turn | slip, turn, slip]
    assert res.symbol_reasons.tolist() == [[turn | slip] * 2, [turn] * 2, [slip] * 2]
    close(res.clipped["TURNOVER_CAP"], [0.2, 0.2, 0.0])
    close(res.clipped["SLIPPAGE_BUDGET"], [0.1, 0.0, 0.05])


def test_per_symbol_trade_limits_each_clip_their_own_names():
    """Participation (0.1 of ADV 1e6 in row 0's name 0) clips that buy to 0.1; the
    symbol turnover ceiling 0.15 clips row 0's 0.3 sell in name 1 and row 1's 0.2 buy in
    name 2; the per-symbol slippage budget is on but loose. Each clipped name keeps its
    clipped trade with its own code; the rest trade in full."""
    c = ctx(2, 3, adv_notional=np.array([[1.0e6, 1.0e9, 1.0e9], [1.0e9, 1.0e9, 1.0e9]]))
    lim = limits(max_participation=0.1, max_symbol_turnover=0.15, symbol_slippage_budget_bps=1e6)
    res = run(lim, [[0.3, -0.3, 0.05], [0.1, -0.1, 0.2]], c)
    close(res.approved, [[0.1, -0.15, 0.05], [0.1, -0.1, 0.15]])
    part, turn = int(R.PARTICIPATION_CAP), int(R.SYMBOL_TURNOVER_CAP)
    assert res.symbol_reasons.tolist() == [[part, turn, 0], [0, 0, turn]]
    assert res.portfolio_reasons.tolist() == [0, 0]


def test_strategy_attribution_follows_a_symbol_clip_name_by_name():
    """The symbol cap 0.2 clips name 0, which only the trend family holds (0.3): trend's
    attributed gross drops to 0.2 + 0.05, mean reversion keeps its 0.05 + 0.1. A split by
    the families' total gross (0.35 : 0.15) would give 0.28 and 0.12 instead."""
    sw = np.zeros((1, 2, 3))
    sw[0, 0], sw[0, 1] = [0.3, 0.05, 0.0], [0.0, 0.05, 0.1]
    c = ctx(1, 3, strategy_weights=sw, regime=np.array([HIGH_VOL]))
    res = run(limits(max_symbol_weight=0.2), sw.sum(axis=1), c)
    close(res.approved, [[0.2, 0.1, 0.1]])
    close(res.strategy_scale, [[1.0, 1.0]])
    close(res.strategy_budget.approved, [[0.25, 0.15]])


def test_gate_chain_refuses_limits_of_the_wrong_type_and_names_the_fix():
    """Passing a config dict instead of ``RiskLimits`` is refused with the type it got and
    how to build the limits."""
    with pytest.raises(
        GateConfigError, match=r"needs RiskLimits, got dict: build one with RiskLimits\.from_config"
    ):
        RiskGateChain({"max_gross": 1.0})  # type: ignore[arg-type]


def test_non_tradable_name_gets_no_participation_room():
    """A non-tradable name has no participation room, whatever its ADV (small equity 10
    makes a 0.01 cap out of any ADV of 1): in row 0 the gross cap 0.4 scales the held book
    [0.3, 0.3] to [0.2, 0.2], a 0.1 sell of non-tradable name 1 that the trade limits
    clip to nothing (PARTICIPATION_CAP, 0.1 counted); name 1 stays at 0.3 and the
    tradable name 0 takes the gross room left, 0.1. Row 1, all tradable, is scaled."""
    c = ctx(
        2, 2,
        current_weights=np.array([[0.0, 0.3], [0.0, 0.3]]),
        tradable=np.array([[True, False], [True, True]]),
        equity=np.array([10.0, 10.0]),
    )  # fmt: skip
    res = run(limits(max_gross=0.4, max_participation=0.1), [[0.3, 0.3], [0.3, 0.3]], c)
    np.testing.assert_allclose(res.approved, [[0.1, 0.3], [0.2, 0.2]], rtol=0.0, atol=1e-11)
    assert res.approved[0, 1] == 0.3
    assert bits(res, R.PARTICIPATION_CAP) == [[False, True], [False, False]]
    close(res.clipped["PARTICIPATION_CAP"], [0.1, 0.0])
    # 0.2 by the gross gate on the proposal, then 0.1 by the repair of the clipped book
    np.testing.assert_allclose(res.clipped["GROSS_CAP"], [0.3, 0.2], rtol=0.0, atol=1e-11)


def test_recent_fills_of_the_wrong_shape_are_refused_by_name():
    """Fills that do not broadcast to (n_envs, n_assets) are refused with the field's
    name and both shapes."""
    c = ctx(1, 2, recent_fills=np.zeros(3))
    with pytest.raises(
        RequestError, match=r"GateContext\.recent_fills has shape \(3,\); expected \(1, 2\)"
    ):
        RiskGateChain(limits(), FREE).apply(np.array([[0.1, 0.1]]), c)


def test_beta_tolerance_boundary_agrees_between_measure_and_gate():
    """A beta of 0.1 + 1.5e-13 is inside the 0.1 tolerance (its float slack is 1e-12 x
    (0.1 + |beta terms|) = 2e-13): the measures pass it and the chain leaves it alone. At
    0.1 + 3e-13 it is outside: the measures flag it and the chain scales it back."""
    lim = limits(beta_tolerance=0.1)
    inside, outside = 0.1 + 1.5e-13, 0.1 + 3e-13
    w = np.array([[inside, 0.0], [outside, 0.0]])
    betas = np.array([[1.0, 0.0], [1.0, 0.0]])
    slot = lim.tables.slot(np.zeros(2, dtype=np.int64))
    b = portfolio_bounds(lim, slot, np.full(2, 1.0e6), sector_map(np.arange(2), 2), betas)
    assert hard_ok(w, b).tolist() == [True, False]
    assert dict(coupled_violations(w, b))[R.BETA_LIMIT].tolist() == [False, True]
    res = run(lim, w, ctx(2, 2, betas=betas))
    assert res.approved[0, 0] == inside
    close(res.approved, [[0.1, 0.0], [0.1, 0.0]])
    assert port_bits(res, R.BETA_LIMIT) == [False, True]


def test_registry_spec_refuses_a_code_that_is_not_a_limit():
    """``spec`` gives a limit's registry entry, and names the code it cannot find."""
    assert spec(R.GROSS_CAP).field == "max_gross"
    with pytest.raises(KeyError, match="KILL_SWITCH"):
        spec(R.KILL_SWITCH)


@pytest.mark.parametrize("limit", ["net", "factor"])
def test_each_row_has_its_own_tolerance(limit):
    """The float slack of a signed limit is 1e-12 x (cap + the row's own sum of |terms|):
    row 0 at 0.1 + 1.5e-13 is inside, row 1 at 0.1 + 3e-13 is outside, even beside row 2,
    whose large offsetting terms (+-100, net 0) would widen a slack shared by the batch."""
    w = np.array([[0.1 + 1.5e-13, 0.0], [0.1 + 3e-13, 0.0], [100.0, -100.0]])
    if limit == "net":
        lim, loadings, code = limits(max_net=0.1), None, R.NET_CAP
    else:
        lim, code = limits(max_factor_exposure=0.1), R.FACTOR_CAP
        loadings = np.broadcast_to(np.array([[1.0], [1.0]]), (3, 2, 1))
    slot = lim.tables.slot(np.zeros(3, dtype=np.int64))
    b = portfolio_bounds(lim, slot, np.full(3, 1.0e6), sector_map(np.arange(2), 2), None, loadings)
    assert dict(coupled_violations(w, b))[code].tolist() == [False, True, False]


def test_per_symbol_slippage_budget_solves_the_impact_curve_per_name():
    """Impact-only costs k sigma |dw|^1.5 sqrt(equity / ADV) per name against a 5 bps
    per-symbol budget: a trade of 0.2 at sigma 0.01 costs 8.9e-4 and scales by
    (5e-4 / 8.9e-4)^(2/3); at sigma 0.04 by (5e-4 / 3.6e-3)^(2/3); the 0.1 sell at sigma
    0.01 costs 3.2e-4 and passes."""
    model = CostModel(commission_bps=0.0, spread_mult=0.0, impact_k=1.0)
    c = ctx(
        2, 2, adv_notional=np.full((2, 2), 1.0e6), volatility=np.array([[0.01, 0.01], [0.04, 0.01]])
    )
    res = run(limits(symbol_slippage_budget_bps=5.0), [[0.2, -0.1], [0.2, -0.1]], c, model)
    full = 0.2 * np.sqrt(0.2) * np.array([0.01, 0.04])
    np.testing.assert_allclose(res.approved[:, 0], 0.2 * (5e-4 / full) ** (2 / 3), rtol=1e-12)
    assert res.approved[:, 1].tolist() == [-0.1, -0.1]
    assert bits(res, R.SYMBOL_SLIPPAGE_BUDGET) == [[True, False], [True, False]]


def test_fills_of_an_unreadable_row_do_not_leak():
    """Row 0 (NaN equity) is flattened whatever its fills; row 1's own fill of 5e4 leaves
    0.15 of the 0.2 turnover cap for its 0.2 buy."""
    c = ctx(
        2, 2, equity=np.array([np.nan, 1.0e6]), recent_fills=np.array([[1.0e5, 0.0], [5.0e4, 0.0]])
    )
    res = run(limits(max_turnover=0.2), [[0.2, 0.0], [0.2, 0.0]], c)
    close(res.approved, [[0.0, 0.0], [0.15, 0.0]])
    assert res.portfolio_reasons.tolist() == [int(R.INVALID_INPUT), int(R.TURNOVER_CAP)]


def test_slippage_scale_codes_only_the_names_that_trade():
    """The slippage budget scales the 0.4 trade by 1/4 (20 bps, linear cost spread / 2,
    1 bps budget); name 2 holds 0.1 and does not trade: it keeps 0.1 and no bit."""
    c = ctx(1, 3, spread_bps=np.full((1, 3), 20.0), current_weights=np.array([[0.0, 0.0, 0.1]]))
    res = run(limits(slippage_budget_bps=1.0), [[0.2, -0.2, 0.1]], c, SPREAD)
    close(res.approved, [[0.05, -0.05, 0.1]])
    assert res.approved[0, 2] == 0.1
    assert bits(res, R.SLIPPAGE_BUDGET) == [[True, True, False]]


def test_symbol_turnover_room_is_the_ceiling_less_the_symbols_fills():
    """A fill of 3e4 in row 0's name 0 leaves 0.05 - 0.03 of its turnover ceiling: the
    0.05 buy is clipped to 0.02. Name 1 and row 1 trade exactly their 0.05 ceiling."""
    c = ctx(2, 2, recent_fills=np.array([[3.0e4, 0.0], [0.0, 0.0]]))
    res = run(limits(max_symbol_turnover=0.05), [[0.05, 0.05], [0.05, 0.05]], c)
    close(res.approved, [[0.02, 0.05], [0.05, 0.05]])
    assert bits(res, R.SYMBOL_TURNOVER_CAP) == [[True, False], [False, False]]
    close(res.clipped["SYMBOL_TURNOVER_CAP"], [0.03, 0.0])


def test_participation_clip_and_symbol_slippage_scale_in_one_batch():
    """Participation clips row 0's name 0 (cap 0.1); the symbol turnover ceiling is on but
    loose; the 0.5 bps per-symbol slippage budget scales the 0.2 trades at 20 bps (row 0's
    name 1, row 1's name 2) by 1/4. Every other trade passes in full."""
    c = ctx(
        2, 3,
        adv_notional=np.array([[1.0e6, 1.0e9, 1.0e9], [1.0e9, 1.0e9, 1.0e9]]),
        spread_bps=np.array([[5.0, 20.0, 5.0], [5.0, 5.0, 20.0]]),
    )  # fmt: skip
    lim = limits(max_participation=0.1, max_symbol_turnover=10.0, symbol_slippage_budget_bps=0.5)
    res = run(lim, [[0.3, -0.2, 0.05], [0.1, -0.1, 0.2]], c, SPREAD)
    close(res.approved, [[0.1, -0.05, 0.05], [0.1, -0.1, 0.05]])
    part, slip = int(R.PARTICIPATION_CAP), int(R.SYMBOL_SLIPPAGE_BUDGET)
    assert res.symbol_reasons.tolist() == [[part, slip, 0], [0, 0, slip]]


def test_unclipped_names_keep_their_target_bit_for_bit():
    """When the trade limits clip one name, the others keep the target exactly, not
    base + (target - base): from -0.3, a buy to 0.02 would come back as 0.020000000000000018."""
    c = ctx(
        1,
        3,
        adv_notional=np.array([[1.0e6, 1.0e9, 1.0e9]]),
        current_weights=np.array([[0.0, -0.3, 0.0]]),
    )
    res = run(limits(max_participation=0.1), [[0.3, 0.02, 0.0]], c)
    assert res.approved.tolist() == [[0.1, 0.02, 0.0]]


def test_chain_defaults_to_the_default_cost_model():
    """Without a cost model the chain prices trades with ``CostModel()``."""
    assert RiskGateChain(limits()).cost_model == CostModel()


def test_a_tiny_adv_still_gives_its_share_of_participation():
    """An ADV of 1 currency unit at equity 10 allows 0.1 x 1 / 10 = 0.01 of trade: the
    0.05 buy is clipped to 0.01, not refused."""
    c = ctx(1, 2, adv_notional=np.array([[1.0, 1.0e9]]), equity=np.array([10.0]))
    res = run(limits(max_participation=0.1), [[0.05, 0.05]], c)
    close(res.approved, [[0.01, 0.05]])
    assert bits(res, R.PARTICIPATION_CAP) == [[True, False]]


def test_more_strategies_than_families_are_refused():
    """The strategy axis follows the strategy families (three): a fourth strategy is
    refused with the count and where the families are listed."""
    sw = np.zeros((1, 4, 2))
    sw[0, :, 0] = 0.05
    c = ctx(1, 2, strategy_weights=sw)
    with pytest.raises(
        RequestError,
        match=r"has 4 strategies; .* at most the 3 strategy families .*STRATEGY_FAMILIES, in that order",
    ):
        RiskGateChain(limits(), FREE).apply(sw.sum(axis=1), c)


def test_capacity_factor_from_the_names_each_family_holds():
    """Each family's capacity factor averages spread, volatility and ADV / equity over its
    tradable names weighted by |contribution|, takes each reference ratio clamped to
    [0, max_multiplier = 1.5], and multiplies them. Trend holds 0.2 + 0.2 in names 0, 1:
    spread 12.5 bps, vol 0.015, ADV / equity 1.5, so 10 / 12.5 x 0.02 / 0.015 x 1.5 / 2
    = 0.8 and its budget 0.3 x 0.8 = 0.24 scales its 0.4 by 0.6. Mean reversion holds
    -0.1 in name 2: 10 / 10 x 0.02 / 0.04 x min(4 / 2, 1.5) = 0.75, a budget of 0.225 over
    its 0.1. In row 1 name 2 is not tradable, so mean reversion holds no tradable name and
    keeps factor 1."""
    sw = np.zeros((2, 2, 3))
    sw[:, 0], sw[:, 1] = [0.2, 0.2, 0.0], [0.0, 0.0, -0.1]
    c = ctx(
        2, 3,
        strategy_weights=sw,
        regime=np.array([HIGH_VOL, HIGH_VOL]),
        spread_bps=np.tile([5.0, 20.0, 10.0], (2, 1)),
        volatility=np.tile([0.01, 0.02, 0.04], (2, 1)),
        adv_notional=np.tile([1.0e6, 2.0e6, 4.0e6], (2, 1)),
        tradable=np.array([[True, True, True], [True, True, False]]),
    )  # fmt: skip
    lim = limits(
        max_strategy_contribution=0.3,
        max_multiplier=1.5,
        strategy_capacity_spread_bps=10.0,
        strategy_capacity_volatility=0.02,
        strategy_capacity_adv_to_equity=2.0,
    )
    res = run(lim, sw.sum(axis=1), c)
    close(res.strategy_budget.capacity, [[0.24, 0.225], [0.24, 0.3]])
    close(res.strategy_scale, [[0.6, 1.0], [0.6, 1.0]])
    close(res.approved, [[0.12, 0.12, -0.1], [0.12, 0.12, 0.0]])
    assert bits(res, R.STRATEGY_CAP) == [[True, True, False], [True, True, False]]


def test_strategy_gate_returns_a_zero_approved_line_for_the_chain_to_fill():
    """Called on its own, the strategy gate returns each family's scale and budgets with
    an all-zero approved line (the chain attributes the final book into it)."""
    sw = np.zeros((1, 2, 2))
    sw[0, 0], sw[0, 1] = [0.6, 0.0], [0.0, 0.1]
    c = ctx(1, 2, strategy_weights=sw, regime=np.array([HIGH_VOL]))
    lim = limits(max_strategy_contribution=0.3)
    x = read_inputs(sw.sum(axis=1), c, lim)
    out, scale, budget = strategy_gate(x.p, x, lim, lim.tables.slot(x.regime), Trace(1, 2))
    close(out, [[0.3, 0.1]])
    close(scale, [[0.5, 1.0]])
    assert budget.approved.tolist() == [[0.0, 0.0]]


def test_repair_codes_the_first_limit_in_gate_order():
    """From [0.15, 0.15, -0.2] (sector 0 at its 0.3 cap, net at its 0.1 cap) toward
    [0.3, 0, -0.2], participation lets name 1 sell only 0.05: the clipped book [0.3, 0.1,
    -0.2] breaks the sector cap and the net cap. Keeping the clipped sell and buying a
    third of name 0's 0.15 fits both: [0.2, 0.1, -0.2]. The repair is coded with the
    first limit the clipped book broke in gate order, SECTOR_CAP (not NET_CAP), and
    counts the 0.1 it removed there."""
    c = ctx(
        1, 3,
        sector_ids=np.array([0, 0, 1]),
        adv_notional=np.array([[1.0e9, 5.0e5, 1.0e9]]),
        current_weights=np.array([[0.15, 0.15, -0.2]]),
    )  # fmt: skip
    res = run(
        limits(max_participation=0.1, max_net=0.1, max_sector_gross=0.3), [[0.3, 0.0, -0.2]], c
    )
    close(res.approved, [[0.2, 0.1, -0.2]])
    assert res.symbol_reasons.tolist() == [[int(R.SECTOR_CAP), int(R.PARTICIPATION_CAP), 0]]
    assert res.portfolio_reasons.tolist() == [int(R.SECTOR_CAP)]
    close(res.clipped["SECTOR_CAP"], [0.1])
    close(res.clipped["NET_CAP"], [0.0])


def test_names_without_a_sector_are_exempt_from_the_sector_cap():
    """NO_SECTOR (-1) names sit in a bin no limit reads: sector 0 (0.25 + 0.25 = 0.5) is
    scaled to its 0.3 cap, while the two names without a sector (0.2 + 0.2 = 0.4, above
    the cap too) are left alone and carry no code."""
    ids = np.array([0, 0, -1, -1])
    sectors = sector_map(ids, 4)
    assert sectors.sums(np.array([[0.25, 0.25, 0.2, 0.2]])).tolist() == [[0.5]]
    assert sectors.spread(np.array([[0.7]]), fill=1.0).tolist() == [[0.7, 0.7, 1.0, 1.0]]
    chain = RiskGateChain(limits(max_sector_gross=0.3), FREE)
    res = chain.apply(np.array([[0.25, 0.25, 0.2, 0.2]]), ctx(1, 4, sector_ids=ids))
    np.testing.assert_allclose(res.approved, [[0.15, 0.15, 0.2, 0.2]], rtol=0, atol=1e-12)
    sector = int(ReasonCode.SECTOR_CAP)
    assert [(int(b) & sector) != 0 for b in res.symbol_reasons[0]] == [True, True, False, False]
    assert check_invariants(res, ctx(1, 4, sector_ids=ids), limits(max_sector_gross=0.3), FREE).ok
