"""``check_invariants``, the independent checker, on books built by hand: each book breaks
exactly one limit by a known amount, and the report must name that limit with the excess
worked out here from the limit's definition; a book exactly at the bound must pass.

Most tests do not run the gates: a hand-built ``GateResult`` holds the book, with the
proposal equal to it so that no weight "changed without a reason", and a flat current
book so that the trade is the book itself and the loose trade limits of
``gate_books.LOOSE`` never bind. Where the checker must accept what the chain does (a
batch with one invalid portfolio, huge held weights, other input dtypes), the chain's
own result is checked."""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import pytest
from gate_books import FREE, LOOSE, calm_context

from allocgym.costs import CostModel
from allocgym.errors import RequestError
from allocgym.risk import GateContext, GateResult, ReasonCode, RiskGateChain, RiskLimits
from allocgym.risk import check_invariants as check

R = ReasonCode
UP = 1.0 + 1e-6  # far outside the checker's 1e-9 tolerance


def limits(**kw: object) -> RiskLimits:
    return RiskLimits(**{**LOOSE, **kw})


def ctx(n_envs: int = 1, n_assets: int = 4, **kw: object) -> GateContext:
    return calm_context(n_envs, n_assets, **kw)


def book(
    approved: object,
    *,
    proposed: object = None,
    symbol_reasons: object = None,
    portfolio_reasons: object = None,
    strategy_scale: object = None,
) -> GateResult:
    """A ``GateResult`` holding ``approved`` as given (uncoded, proposal = approved unless
    given)."""
    a = np.atleast_2d(np.asarray(approved, dtype=np.float64))
    n, m = a.shape
    return GateResult(
        approved=a,
        symbol_reasons=np.zeros((n, m), np.int64)
        if symbol_reasons is None
        else np.asarray(symbol_reasons, np.int64),
        portfolio_reasons=np.zeros(n, np.int64)
        if portfolio_reasons is None
        else np.asarray(portfolio_reasons, np.int64),
        clipped={},
        proposed=a.copy() if proposed is None else np.asarray(proposed, np.float64),
        strategy_scale=None if strategy_scale is None else np.asarray(strategy_scale, float),
    )


def excess(report, name: str) -> dict[int, float]:  # type: ignore[no-untyped-def]
    """``{portfolio: value - limit}`` of every ``name`` breach the report lists."""
    line = re.compile(rf"portfolio (\d+): {re.escape(name)} breached: value - limit \((.+)\)")
    found = {}
    for message in report.messages:
        hit = line.fullmatch(message)
        if hit:
            found[int(hit.group(1))] = float(hit.group(2))
    return found


def only(report, name: str) -> dict[int, float]:  # type: ignore[no-untyped-def]
    """The ``name`` excesses, after asserting that the report lists nothing else."""
    found = excess(report, name)
    assert len(found) == report.n_breaches == len(report.messages), report.messages
    return found


# ----------------------------------------------------------------------------- hard limits


def test_symbol_cap_scales_with_the_capacity_multiplier_of_each_regime():
    """|w_i| <= max_symbol_weight x capacity multiplier of the row's regime: the excess
    reported is max |w_i| - cap (shorts by their magnitude), per portfolio."""
    lim = limits(max_symbol_weight=0.2, regime_capacity_multipliers=(1.0, 0.5, 1.5, 0.25))
    caps = np.array([0.2, 0.1, 0.3, 0.05])  # regime codes 0..3
    c = ctx(4, 3, regime=np.arange(4))
    over = np.array([0.01, 0.02, 0.03, 0.04])
    w = np.zeros((4, 3))
    w[:, 1] = -(caps + over)  # a short: its magnitude counts
    w[:, 2] = caps / 2
    assert only(check(book(w), c, lim, FREE), "symbol cap") == pytest.approx(
        dict(enumerate(over)), abs=1e-12
    )
    w[:, 1] = -caps  # exactly at the cap
    assert check(book(w), c, lim, FREE).ok


def test_symbol_notional_cap_is_in_currency_times_the_capacity_multiplier():
    """|w_i| x equity <= max_symbol_notional x capacity multiplier: the same weight is
    inside for a portfolio in a regime with multiplier 1 and over by the hand-computed
    notional where the multiplier is 0.5; equity enters the notional."""
    lim = limits(max_symbol_notional=1e5, regime_capacity_multipliers=(1.0, 1.0, 0.5, 1.0))
    c = ctx(2, 3, regime=np.array([0, 2]), equity=np.array([1e6, 2e6]))
    # row 0: 0.09 x 1e6 = 9e4 <= 1e5; row 1: 0.03 x 2e6 = 6e4 > 1e5 x 0.5 = 5e4
    w = np.array([[0.09, -0.01, 0.0], [0.01, -0.03, 0.0]])
    assert only(check(book(w), c, lim, FREE), "symbol notional cap") == pytest.approx(
        {1: 1e4}, rel=1e-9
    )
    w[1, 1] = -0.025  # 0.025 x 2e6 = 5e4: at the cap
    assert check(book(w), c, lim, FREE).ok


def test_long_only_reports_the_largest_short():
    """Under long-only, the excess is the largest short magnitude; a zero weight is
    inside."""
    lim = limits(long_only=True)
    c = ctx(2, 3)
    w = np.array([[0.1, -0.02, -0.005], [0.1, 0.0, 0.3]])
    assert only(check(book(w), c, lim, FREE), "long-only") == pytest.approx({0: 0.02})


def test_empty_universe_passes_every_limit():
    """A universe without symbols has nothing to break: long-only, the symbol caps and
    the symbol notional cap all pass (their maxima over no names start at 0)."""
    lim = limits(long_only=True, max_symbol_notional=1e5)
    c = ctx(2, 0)
    report = check(book(np.zeros((2, 0))), c, lim, FREE)
    assert report.ok and report.breached.tolist() == [False, False]


@pytest.mark.parametrize(
    ("name", "kw", "ctx_kw", "w", "expected"),
    [
        # two names of sector 0 (gross 0.35 > 0.3), one of sector 1 alone
        (
            "sector 0 gross",
            dict(max_sector_gross=0.3),
            dict(sector_ids=np.array([0, 0, 1])),
            [0.2, -0.15, 0.3],
            0.05,
        ),
        ("net cap", dict(max_net=0.5), {}, [0.4, 0.3, -0.1], 0.1),
        # |0.1 x 1 + 0.05 x 2| = 0.2 > 0.1
        (
            "beta",
            dict(beta_tolerance=0.1),
            dict(betas=np.array([[1.0, 2.0, 0.0]])),
            [0.1, 0.05, 0.0],
            0.1,
        ),
        # gross 0.6 x equity 1e6 = 6e5 > 5e5 (currency)
        ("gross notional cap", dict(max_gross_notional=5e5), {}, [0.3, -0.2, 0.1], 1e5),
        # factor 1: |0.2 x 1 + 0.1 x -1 + 0.3 x 0.5| = 0.25 > 0.2
        (
            "factor 1 exposure",
            dict(max_factor_exposure=0.2),
            dict(factor_loadings=np.array([[0.0, 1.0], [0.0, -1.0], [0.0, 0.5]])),
            [0.2, 0.1, 0.3],
            0.05,
        ),
        # the same loadings given per portfolio, (n_envs, n_assets, n_factors)
        (
            "factor 1 exposure",
            dict(max_factor_exposure=0.2),
            dict(factor_loadings=np.array([[[0.0, 1.0], [0.0, -1.0], [0.0, 0.5]]])),
            [0.2, 0.1, 0.3],
            0.05,
        ),
    ],
)
def test_each_hard_limit_reports_its_hand_computed_excess(name, kw, ctx_kw, w, expected):
    """Sector gross, |net|, |beta^T w|, gross notional and |(B^T w)_k| each report the
    excess of the one book that breaks them, under their own name."""
    report = check(book(w), ctx(1, 3, **ctx_kw), limits(**kw), FREE)
    assert only(report, name) == pytest.approx({0: expected}, rel=1e-9)


def test_gross_cap_follows_the_budget_multiplier_of_every_regime_code():
    """max_gross x budget multiplier, for each regime code 0..3 (code 0 reads its own
    entry, not the default) and the default multiplier for -1 and any code past the
    table; a book at each cap passes."""
    lim = limits(
        max_gross=1.0,
        regime_budget_multipliers=(0.5, 0.75, 1.25, 1.5),
        default_budget_multiplier=0.9,
    )
    codes = np.array([0, 1, 2, 3, -1, 7])
    caps = np.array([0.5, 0.75, 1.25, 1.5, 0.9, 0.9])
    over = 0.01 * np.arange(1, 7)
    c = ctx(6, 4, regime=codes)
    w = np.repeat(((caps + over) / 4)[:, None], 4, axis=1)
    assert only(check(book(w), c, lim, FREE), "gross cap") == pytest.approx(
        dict(enumerate(over)), abs=1e-12
    )
    at_cap = np.repeat((caps / 4)[:, None], 4, axis=1)
    assert check(book(at_cap), c, lim, FREE).ok


def test_a_zero_budget_multiplier_allows_no_gross():
    """A regime whose budget multiplier is 0 has a gross cap of 0: a book of gross 0.2
    breaks it by 0.2, while the same book in a regime with multiplier 1 passes."""
    lim = limits(max_gross=1.0, regime_budget_multipliers=(0.0, 1.0, 1.0, 1.0))
    c = ctx(2, 2, regime=np.array([0, 1]))
    w = np.array([[0.1, 0.1], [0.1, 0.1]])
    assert only(check(book(w), c, lim, FREE), "gross cap") == pytest.approx({0: 0.2})


# ----------------------------------------------------------------------------- strategy budgets


def strategy_case(
    lim: RiskLimits,
    sw: np.ndarray,
    scale: np.ndarray,
    *,
    current: np.ndarray | None = None,
    **ctx_kw: object,
):  # type: ignore[no-untyped-def]
    """The report of a book equal to the scaled strategy contributions."""
    n, _, m = sw.shape
    a = (scale[:, :, None] * sw).sum(axis=1)
    kw: dict[str, object] = dict(strategy_weights=sw, **ctx_kw)
    if current is not None:
        kw["current_weights"] = current
    c = ctx(n, m, **kw)
    return check(book(a, strategy_scale=scale), c, lim, FREE)


STRAT = "strategy contribution above its cap"


def test_strategy_budget_is_base_times_regime_multiplier_tilt_and_capacity():
    """A family's cap is base x regime budget multiplier x regime tilt x capacity
    factor, the factor the reference spread over the family's |contribution|-weighted
    spread: contributions exactly at each family's hand-computed cap pass, and raising
    one family's by 1e-6 (relative) reports that portfolio."""
    lim = limits(
        strategy_budgets={"trend": 0.4, "mean_reversion": 0.3, "defensive": 0.5},
        regime_strategy_tilts={"trend": {"mean_reversion": 0.5}},
        regime_budget_multipliers=(0.8, 1.0, 1.0, 1.0),
        strategy_capacity_spread_bps=10.0,
    )
    spread = np.array([[10.0, 30.0]])
    sw = np.array([[[0.3, 0.1], [0.0, 0.2]]])  # trend, mean_reversion
    # trend: mean spread (0.3 x 10 + 0.1 x 30) / 0.4 = 15 -> factor 2/3
    #   cap 0.4 x 0.8 x 1.0 x 2/3; gross 0.4
    # mean_reversion: mean spread 30 -> factor 1/3; cap 0.3 x 0.8 x 0.5 x 1/3 = 0.04
    caps = np.array([0.4 * 0.8 * 2 / 3, 0.04])
    at_cap = caps / np.array([0.4, 0.2])
    assert strategy_case(lim, sw, at_cap[None], spread_bps=spread).ok
    for k in range(2):
        scale = at_cap.copy()
        scale[k] *= UP
        report = strategy_case(lim, sw, scale[None], spread_bps=spread)
        assert report.messages == (f"portfolio 0: {STRAT}",)


@pytest.mark.parametrize(
    ("refs", "market", "factor"),
    [
        # (0.3 x 10 + 0.1 x 30) / 0.4 = 15 bps against 10 bps
        (dict(strategy_capacity_spread_bps=10.0), dict(spread=[10.0, 30.0]), 10 / 15),
        # (0.3 x 0.02 + 0.1 x 0.04) / 0.4 = 0.025 against 0.01
        (dict(strategy_capacity_volatility=0.01), dict(vol=[0.02, 0.04]), 0.4),
        # ADV / equity 1000 and 3000: (0.3 x 1000 + 0.1 x 3000) / 0.4 = 1500 against 4000
        (dict(strategy_capacity_adv_to_equity=4000.0), dict(adv=[1e9, 3e9]), 1500 / 4000),
        # volatility 5x calmer than the reference: clamped to max_multiplier 2
        (dict(strategy_capacity_volatility=0.1), dict(vol=[0.02, 0.02]), 2.0),
        # each ratio 2 (clamped at 2), product 4 clamped again to 2
        (
            dict(strategy_capacity_spread_bps=20.0, strategy_capacity_volatility=0.04),
            dict(spread=[10.0, 10.0], vol=[0.02, 0.02]),
            2.0,
        ),
        # 1/3 x 2 (volatility clamped): the clamps apply per ratio, then to the product
        (
            dict(strategy_capacity_spread_bps=10.0, strategy_capacity_volatility=0.1),
            dict(spread=[30.0, 30.0], vol=[0.02, 0.02]),
            2 / 3,
        ),
    ],
)
def test_capacity_factor_of_each_reference(refs, market, factor):
    """The capacity factor from the spread, volatility and ADV / equity references
    (|contribution|-weighted means over the family's names), each ratio and their
    product clamped to [min_multiplier, max_multiplier]: the family passes at
    base x factor and is reported just above it."""
    lim = limits(strategy_budgets={"trend": 0.4}, regime_strategy_tilts={}, **refs)
    fields = {
        "spread_bps": np.array([market.get("spread", [5.0, 5.0])]),
        "volatility": np.array([market.get("vol", [0.02, 0.02])]),
        "adv_notional": np.array([market.get("adv", [1e9, 1e9])]),
    }
    sw = np.array([[[0.3, 0.1]]])
    at_cap = np.array([[0.4 * factor / 0.4]])
    assert strategy_case(lim, sw, at_cap, **fields).ok
    assert strategy_case(lim, sw, at_cap * UP, **fields).messages == (f"portfolio 0: {STRAT}",)


def test_capacity_factor_is_one_for_a_family_without_usable_names():
    """A family that holds only non-tradable names has no market data to rate: its
    capacity factor is 1, so its cap is the base budget (not more)."""
    lim = limits(strategy_budgets={"trend": 0.4}, strategy_capacity_spread_bps=1.0)
    tradable = np.array([[True, False]])
    sw = np.array([[[0.0, 0.5]]])
    for scale, ok in ((0.8, True), (0.8 * UP, False)):  # contribution 0.4 = the base
        held = np.array([[0.0, 0.5 * scale]])  # a non-tradable weight is held as it is
        report = strategy_case(lim, sw, np.array([[scale]]), current=held, tradable=tradable)
        assert report.ok is ok, report.messages


def test_capacity_factor_below_min_multiplier_is_zero():
    """A capacity factor under MIN_MULTIPLIER (1e-12) reads as 0: the family may hold
    nothing, so even a contribution of 1e-14 (under base x the raw factor 1e-13) is
    reported."""
    lim = limits(strategy_budgets={"trend": 0.4}, strategy_capacity_spread_bps=1e-9)
    spread = np.array([[1e4, 1e4]])  # factor 1e-9 / 1e4 = 1e-13
    sw = np.array([[[1e-14, 0.0]]])
    report = strategy_case(lim, sw, np.array([[1.0]]), spread_bps=spread)
    assert report.messages == (f"portfolio 0: {STRAT}",)
    assert strategy_case(lim, np.zeros((1, 1, 2)), np.array([[1.0]]), spread_bps=spread).ok


def test_strategy_tilt_of_every_regime_code_and_the_unknown_one():
    """The trend family's cap is base x tilt of the row's regime: codes 0..3 read their
    own tilt, -1 (unknown) the untilted 1.0; each row passes at its cap and only the row
    raised above it is reported."""
    lim = limits(
        strategy_budgets={"trend": 0.4},
        regime_strategy_tilts={
            "trend": {"trend": 0.5},
            "mean_reversion": {"trend": 0.25},
            "high_volatility": {"trend": 1.5},
            "uncertain": {"trend": 0.75},
        },
    )
    codes = np.array([0, 1, 2, 3, -1])
    tilts = np.array([0.5, 0.25, 1.5, 0.75, 1.0])
    sw = np.zeros((5, 1, 2))
    sw[:, 0, 0] = 0.2
    at_cap = (0.4 * tilts / 0.2)[:, None]
    assert strategy_case(lim, sw, at_cap, regime=codes).ok
    for row in range(5):
        scale = at_cap.copy()
        scale[row] *= UP
        report = strategy_case(lim, sw, scale, regime=codes)
        assert report.messages == (f"portfolio {row}: {STRAT}",)


def test_unknown_regime_tilt_is_clamped_to_max_multiplier():
    """An unknown regime code gets the tilt 1.0 clamped to [min_multiplier,
    max_multiplier]: with max_multiplier 0.5 the trend family's cap is base x 0.5 (the
    budget multiplier, clamped too, is 0.5 as well)."""
    lim = limits(
        strategy_budgets={"trend": 0.4},
        regime_strategy_tilts={},
        max_multiplier=0.5,
        default_budget_multiplier=1.0,
    )
    sw = np.array([[[0.2, 0.0]]])
    at_cap = np.array([[0.4 * 0.5 * 0.5 / 0.2]])
    assert strategy_case(lim, sw, at_cap, regime=np.array([-1])).ok
    report = strategy_case(lim, sw, at_cap * UP, regime=np.array([-1]))
    assert report.messages == (f"portfolio 0: {STRAT}",)


@pytest.mark.parametrize(
    "scale",
    [None, np.ones((1, 2)), np.ones((2, 3))],
    ids=["missing", "too-few-families", "wrong-rows"],
)
def test_strategy_scale_missing_or_misshaped_is_reported(scale):
    """Strategy contributions without a matching strategy_scale (n_envs, n_strategies)
    fail every live portfolio with a message naming the problem."""
    sw = np.zeros((1, 3, 2))
    c = ctx(1, 2, strategy_weights=sw)
    report = check(book(np.zeros((1, 2)), strategy_scale=scale), c, limits(), FREE)
    assert report.messages[0] == (
        "portfolio 0: strategy_weights given but strategy_scale missing or misshaped"
    )


def test_more_families_than_the_tilt_table_is_reported():
    """strategy_weights with more families than STRATEGY_FAMILIES (4 > 3) cannot be
    budgeted: reported as misshaped, not read past the table."""
    sw = np.zeros((1, 4, 2))
    c = ctx(1, 2, strategy_weights=sw)
    report = check(book(np.zeros((1, 2)), strategy_scale=np.ones((1, 4))), c, limits(), FREE)
    assert report.messages[0] == (
        "portfolio 0: strategy_weights given but strategy_scale missing or misshaped"
    )


# ----------------------------------------------------------------------------- trade limits

TRADE = "trade limits breached with the current book inside the limits"


def test_participation_cap_for_an_adv_below_one_currency_unit():
    """The participation cap is max_participation x ADV / equity for any ADV > 0: an ADV
    of 0.5 on equity 1 allows a trade of 0.05 at max_participation 0.1, not 0."""
    lim = limits(max_participation=0.1)
    c = ctx(1, 2, equity=np.array([1.0]), adv_notional=np.array([[0.5, 1e9]]))
    assert check(book([[0.05, 0.0]]), c, lim, FREE).ok
    assert check(book([[0.05 * UP, 0.0]]), c, lim, FREE).messages == (f"portfolio 0: {TRADE}",)


def test_symbol_turnover_cap_times_the_capacity_multiplier_less_recent_fills():
    """|trade_i| <= max_symbol_turnover x capacity multiplier - fills already traded:
    0.2 x 0.5 = 0.1 in regime 2, of which a fill of 2e4 on equity 1e6 used 0.02."""
    lim = limits(max_symbol_turnover=0.2, regime_capacity_multipliers=(1.0, 1.0, 0.5, 1.0))
    fills = np.array([[2e4, 0.0]])
    c = ctx(1, 2, regime=np.array([2]), recent_fills=fills)
    assert check(book([[0.08, 0.1]]), c, lim, FREE).ok
    assert check(book([[0.08 * UP, 0.1]]), c, lim, FREE).messages == (f"portfolio 0: {TRADE}",)
    assert check(book([[0.08, 0.1 * UP]]), c, lim, FREE).messages == (f"portfolio 0: {TRADE}",)


def test_symbol_slippage_budget_times_the_capacity_multiplier():
    """Expected cost per symbol <= symbol_slippage_budget_bps / 1e4 x capacity
    multiplier: with a 10 bps commission only, a 1 bps budget at multiplier 0.5 allows a
    trade of 0.05 per symbol."""
    lim = limits(symbol_slippage_budget_bps=1.0, regime_capacity_multipliers=(0.5, 1, 1, 1))
    cost = CostModel(commission_bps=10.0, spread_mult=0.0, impact_k=0.0)
    c = ctx(1, 2)
    assert check(book([[0.05, -0.05]]), c, lim, cost).ok
    assert check(book([[0.05, -0.05 * UP]]), c, lim, cost).messages == (f"portfolio 0: {TRADE}",)


# ----------------------------------------------------------------------------- coded inputs


def test_non_finite_strategy_weights_flag_only_their_own_portfolio():
    """A NaN strategy contribution in portfolio 1 makes only portfolio 1's proposal
    invalid: the chain codes it INVALID_INPUT and the checker asks nothing of
    portfolio 0."""
    lim = limits()
    sw = np.full((2, 1, 3), 0.1)
    sw[1, 0, 2] = np.nan
    c = ctx(2, 3, strategy_weights=sw)
    res = RiskGateChain(lim, FREE).apply(np.full((2, 3), 0.1), c)
    assert res.portfolio_reasons[0] & R.INVALID_INPUT == 0
    assert res.portfolio_reasons[1] & R.INVALID_INPUT
    assert check(res, c, lim, FREE).ok


def test_uncoded_non_finite_proposal_entry_is_reported():
    """A NaN proposal entry whose symbol lacks INVALID_INPUT is reported by name, even
    when the portfolio carries the code."""
    proposed = np.array([[0.1, np.nan]])
    inv = int(R.INVALID_INPUT)
    res = book(
        np.zeros((1, 2)), proposed=proposed, symbol_reasons=[[inv, 0]], portfolio_reasons=[inv]
    )
    assert check(res, ctx(1, 2), limits(), FREE).messages == (
        "portfolio 0: non-finite entry not coded INVALID_INPUT",
    )


def test_kill_switch_with_a_book_that_is_not_flat_is_reported():
    """Under the kill switch the approved book must be flat; every symbol and the
    portfolio coded KILL_SWITCH but a weight left over is reported as such."""
    killc = int(R.KILL_SWITCH)
    res = book(
        [[0.0, 0.1]],
        proposed=[[0.0, 0.1]],
        symbol_reasons=[[killc, killc]],
        portfolio_reasons=[killc],
    )
    c = ctx(1, 2, kill_switch=np.array([True]))
    assert check(res, c, limits(), FREE).messages == (
        "portfolio 0: kill switch engaged but the book is not flat",
    )


# ----------------------------------------------------------------------------- no warnings


def test_zero_spread_family_gets_the_max_factor_without_runtime_warnings():
    """A family whose names trade at a zero spread has an infinite spread ratio
    (reference / 0, computed under ``np.errstate`` on purpose): the factor is clamped to
    max_multiplier 2, and no RuntimeWarning is emitted."""
    lim = limits(strategy_budgets={"trend": 0.4}, strategy_capacity_spread_bps=1.0)
    sw = np.array([[[0.3, 0.1]]])
    at_cap = np.array([[0.4 * 2.0 / 0.4]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert strategy_case(lim, sw, at_cap, spread_bps=np.zeros((1, 2))).ok
        report = strategy_case(lim, sw, at_cap * UP, spread_bps=np.zeros((1, 2)))
    assert report.messages == (f"portfolio 0: {STRAT}",)


def test_no_runtime_warning_for_a_family_without_usable_names():
    """The capacity factor of a family that holds no usable name is 0 / 0 on purpose (the
    factor is then 1): the checker emits no RuntimeWarning for it."""
    lim = limits(strategy_budgets={"trend": 0.4}, strategy_capacity_spread_bps=1.0)
    sw = np.array([[[0.0, 0.5]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = strategy_case(
            lim,
            sw,
            np.array([[0.5]]),
            current=np.array([[0.0, 0.25]]),
            tradable=np.array([[True, False]]),
        )
    assert report.ok


def test_no_runtime_warning_when_the_participation_cap_overflows():
    """A participation cap beyond float range (max_participation 1e300 x ADV / equity
    1e15) overflows to inf on purpose: the trade is inside, and no RuntimeWarning."""
    lim = limits(max_participation=1e300)
    c = ctx(1, 2, equity=np.array([1.0]), adv_notional=np.array([[1e15, 1e15]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check(book([[0.5, 0.5]]), c, lim, FREE).ok


def test_no_runtime_warning_when_strategy_contributions_overflow():
    """Strategy contributions near the float limit (1e308 in two names) overflow to inf
    when summed: the checker does that arithmetic under ``np.errstate`` on purpose and
    emits no RuntimeWarning."""
    sw = np.array([[[1e308, 1e308]]])
    c = ctx(1, 2, strategy_weights=sw)
    res = book(np.zeros((1, 2)), strategy_scale=np.ones((1, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check(res, c, limits(), FREE)


def test_factor_limit_without_loadings_is_refused():
    """A factor limit with no factor loadings in the context cannot be checked: a
    RequestError that names the missing field."""
    with pytest.raises(RequestError, match=r"GateContext\.factor_loadings is None"):
        check(book(np.zeros((1, 2))), ctx(1, 2), limits(max_factor_exposure=0.1), FREE)


# ----------------------------------------------------------------------------- result shape


def test_reason_bitmasks_of_the_wrong_type_fail_every_portfolio_and_stop():
    """Reason bitmasks that are not int64 of shape (n, m) and (n,) make the result
    unreadable: every portfolio fails with that one message and nothing else is
    checked (the book's symbol cap breach is not reported)."""
    res = dataclasses.replace(
        book([[0.5, 0.0], [0.0, 0.0]]), symbol_reasons=np.zeros((2, 2), np.int32)
    )
    report = check(res, ctx(2, 2), limits(max_symbol_weight=0.1), FREE)
    assert report.n_breaches == 2 and report.breached.tolist() == [True, True]
    assert report.messages == tuple(
        f"portfolio {b}: reason bitmasks must be int64 of shape (n, m) and (n,)" for b in (0, 1)
    )


def test_unknown_reason_bits_are_reported():
    """A bit that is no ReasonCode, per symbol or per portfolio, is reported for that
    portfolio."""
    res = book(
        np.zeros((3, 2)),
        symbol_reasons=[[0, 1 << 40], [0, 0], [0, 0]],
        portfolio_reasons=[0, 0, 1 << 30],
    )
    report = check(res, ctx(3, 2), limits(), FREE)
    assert report.messages == (
        "portfolio 0: unknown reason bits",
        "portfolio 2: unknown reason bits",
    )


def test_clipped_amounts_must_be_named_by_a_code_finite_and_non_negative():
    """Each ``clipped`` entry must be an (n_envs,) array keyed by a ReasonCode name with
    finite, non-negative amounts; every bad entry is reported (with the bad amount)."""
    res = book(np.zeros((2, 2)))
    clipped = {
        "NOT_A_CODE": np.zeros(2),
        "GROSS_CAP": np.zeros(3),
        "SYMBOL_CAP": np.array([0.0, -0.5]),
        "NET_CAP": np.array([np.inf, 0.0]),
    }
    res = dataclasses.replace(res, clipped=clipped)
    report = check(res, ctx(2, 2), limits(), FREE)
    assert report.messages == (
        "portfolio 0: clipped['NOT_A_CODE'] is not a (n_envs,) array of a ReasonCode",
        "portfolio 1: clipped['NOT_A_CODE'] is not a (n_envs,) array of a ReasonCode",
        "portfolio 0: clipped['GROSS_CAP'] is not a (n_envs,) array of a ReasonCode",
        "portfolio 1: clipped['GROSS_CAP'] is not a (n_envs,) array of a ReasonCode",
        "portfolio 1: clipped['SYMBOL_CAP'] not finite and >= 0 (-0.5)",
        "portfolio 0: clipped['NET_CAP'] not finite and >= 0 (inf)",
    )


# ----------------------------------------------------------------------------- unreadable rows


def test_global_reduce_only_is_enforced():
    """``risk.reduce_only`` alone (no per-decision flag) forbids growing |w_i| or flipping
    a sign: a book that grows a weight is reported."""
    c = ctx(1, 2, current_weights=np.array([[0.1, 0.1]]))
    lim = limits(reduce_only=True)
    report = check(book([[0.2, 0.1]], symbol_reasons=[[1, 0]]), c, lim, FREE)
    assert report.messages == ("portfolio 0: reduce-only: |w| grew or the sign flipped",)
    assert check(book([[0.05, 0.1]], symbol_reasons=[[1, 0]]), c, lim, FREE).ok


@pytest.mark.parametrize(
    ("kw", "ctx_kw"),
    [
        (dict(beta_tolerance=10.0), dict(betas=np.array([[1.0, 2e6], [1.0, 1.0]]))),
        (
            dict(max_factor_exposure=10.0),
            dict(factor_loadings=np.array([[[1.0], [2e6]], [[1.0], [1.0]]])),
        ),
        (
            dict(max_factor_exposure=10.0),
            dict(
                factor_loadings=np.ones((2, 2, 1)),
                current_weights=np.array([[np.nan, 0.0], [0.0, 0.0]]),
            ),
        ),
    ],
    ids=["beta-above-1e6", "loading-above-1e6", "nan-book-with-loadings"],
)
def test_unreadable_portfolio_must_be_flat_and_coded(kw, ctx_kw):
    """A beta or loading above 1e6 (or a NaN current book, with the factor limit on)
    makes portfolio 0 unreadable: a book left there is reported, and so is a flat book
    without INVALID_INPUT; flat and coded passes. Portfolio 1 is read normally."""
    c = ctx(2, 2, **ctx_kw)
    lim = limits(**kw)
    inv = int(R.INVALID_INPUT)
    held = book([[0.1, 0.0], [0.1, 0.0]], portfolio_reasons=[inv, 0])
    assert check(held, c, lim, FREE).messages == (
        "portfolio 0: unreadable current book/equity/betas but the book is not flat",
    )
    uncoded = book([[0.0, 0.0], [0.1, 0.0]])
    assert check(uncoded, c, lim, FREE).messages == (
        "portfolio 0: unreadable input not coded INVALID_INPUT",
    )
    assert check(book([[0.0, 0.0], [0.1, 0.0]], portfolio_reasons=[inv, 0]), c, lim, FREE).ok


def test_infinite_loadings_of_an_unreadable_portfolio_raise_no_warning():
    """An infinite factor loading makes its portfolio unreadable; the chain's flat,
    coded result then checks clean without a RuntimeWarning (the loadings are read as 0
    there)."""
    lim = limits(max_factor_exposure=0.5)
    c = ctx(2, 2, factor_loadings=np.array([[[np.inf], [1.0]], [[1.0], [1.0]]]))
    res = RiskGateChain(lim, FREE).apply(np.full((2, 2), 0.1), c)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check(res, c, lim, FREE).ok


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_huge_non_tradable_weight_is_held_as_the_chain_clips_it(sign):
    """A non-tradable current weight of +-1e200 is held at +-1e150 (book entries are
    clipped to +-1e150): the checker compares the approved weight with the clipped one,
    for either sign."""
    lim = limits()
    cur = np.array([[sign * 1e200, 0.0]])
    c = ctx(1, 2, current_weights=cur, tradable=np.array([[False, True]]))
    res = RiskGateChain(lim, FREE).apply(np.zeros((1, 2)), c)
    assert res.approved[0, 0] == sign * 1e150
    assert check(res, c, lim, FREE).ok


def test_current_book_outside_any_hard_limit_requires_forced_derisk():
    """A current book over the symbol cap (inside every other limit) is outside the hard
    limits: a result that brings it back without FORCED_DERISK is reported, one coded
    FORCED_DERISK passes."""
    lim = limits(max_symbol_weight=0.2)
    c = ctx(1, 2, current_weights=np.array([[0.3, 0.0]]))
    cap = int(R.SYMBOL_CAP)
    uncoded = book([[0.2, 0.0]], symbol_reasons=[[cap, 0]], portfolio_reasons=[0])
    assert check(uncoded, c, lim, FREE).messages == (
        "portfolio 0: current book outside the hard limits but FORCED_DERISK not coded",
    )
    coded = book([[0.2, 0.0]], symbol_reasons=[[cap, 0]], portfolio_reasons=[R.FORCED_DERISK])
    assert check(coded, c, lim, FREE).ok


def test_boundary_band_current_book_keeps_the_trade_limits():
    """A current book over the symbol cap by less than the tolerance (1e-12 relative) is
    in the boundary band: without FORCED_DERISK the whole trade must still fit the trade
    limits, so a trade of 0.15 against a per-symbol turnover cap of 0.1 is reported."""
    lim = limits(max_symbol_weight=0.2, max_symbol_turnover=0.1)
    c = ctx(1, 2, current_weights=np.array([[0.2 * (1 + 1e-12), 0.0]]))
    assert check(book([[0.2 * (1 + 1e-12), 0.1]]), c, lim, FREE).ok
    assert check(book([[0.2 * (1 + 1e-12), 0.15]]), c, lim, FREE).messages == (
        "portfolio 0: trade limits breached (boundary band)",
    )


def test_checking_a_chain_result_emits_no_runtime_warning():
    """Checking an ordinary result (flat and non-flat current books, shorts) raises no
    RuntimeWarning: sign tests on a zero current weight divide nothing."""
    lim = limits(max_symbol_weight=0.3, max_symbol_turnover=0.2)
    cur = np.array([[0.0, 0.1, -0.1], [0.0, 0.0, 0.0]])
    c = ctx(2, 3, current_weights=cur)
    res = RiskGateChain(lim, FREE).apply(np.array([[0.2, -0.1, 0.0], [0.1, 0.0, -0.2]]), c)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check(res, c, lim, FREE).ok


def test_context_in_other_dtypes_is_checked_like_float64_and_bool():
    """A float32 current book and 0.0/1.0 float flags (tradable, kill switch), which the
    chain reads as float64 and bool, are read the same way by the checker: the chain's
    result passes without a RuntimeWarning, and moving the non-tradable weight is still
    reported."""
    lim = limits()
    typed = dict(
        current_weights=np.array([[0.0, 0.25, 0.0], [0.1, 0.0, 0.0]]),
        tradable=np.array([[True, False, True], [True, True, True]]),
        kill_switch=np.array([False, True]),
    )
    loose = ctx(
        2,
        3,
        current_weights=typed["current_weights"].astype(np.float32),
        tradable=typed["tradable"].astype(float),
        kill_switch=typed["kill_switch"].astype(float),
    )
    res = RiskGateChain(lim, FREE).apply(np.full((2, 3), 0.2), ctx(2, 3, **typed))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check(res, loose, lim, FREE).ok
    moved = res.approved.copy()
    moved[0, 1] = 0.2
    report = check(dataclasses.replace(res, approved=moved), loose, lim, FREE)
    assert "portfolio 0: a non-tradable weight changed (approved != current)" in report.messages


def test_missing_values_read_as_nan_by_the_chain_and_the_checker():
    """A missing value (None, as a JSON null arrives) in the betas, the factor loadings
    or the strategy contributions is NaN for the chain (that portfolio is invalid:
    INVALID_INPUT) and for the checker, which accepts the chain's result."""
    lim = limits(beta_tolerance=10.0, max_factor_exposure=10.0)
    betas = np.ones((3, 2), dtype=object)
    betas[1, 0] = None
    loadings = np.ones((3, 2, 1), dtype=object)
    loadings[2, 1, 0] = None
    sw = np.full((3, 1, 2), 0.1, dtype=object)
    sw[0, 0, 0] = None
    c = ctx(3, 2, betas=betas, factor_loadings=loadings, strategy_weights=sw)
    res = RiskGateChain(lim, FREE).apply(np.full((3, 2), 0.1), c)
    assert (res.portfolio_reasons & int(R.INVALID_INPUT) != 0).all()
    assert check(res, c, lim, FREE).ok


def test_a_measure_that_overflows_is_a_breach():
    """A strategy contribution so large that its sum overflows to inf is above its finite
    cap: the tolerance grows with the magnitude, which is inf as well, and ``inf <= inf``
    must not read as within (1e300 per name, which stays finite, was always reported)."""
    sw = np.full((1, 1, 2), 1e308)
    c = ctx(1, 2, strategy_weights=sw)
    report = check(book(np.zeros((1, 2)), strategy_scale=np.ones((1, 1))), c, limits(), FREE)
    assert not report.ok
    assert any("strategy contribution" in m for m in report.messages), report.messages
