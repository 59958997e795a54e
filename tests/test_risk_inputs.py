"""What the gates read: ``fill_notional`` and its timestamps (naive = UTC), the
validation of a decision's inputs (``read_inputs``: errors that name the value and the
fix, unreadable rows and unusable symbols at the edges of their physical ranges, the
sanitised arrays), the context helpers (``bar_gate_context``, the sector map, ``Bounds``,
``Book``), and ``RiskLimits``' contracts for callers (``to_dict``, ``regime_codes``, the
clamped multipliers, config errors)."""

from __future__ import annotations

import datetime as dt
import json
from typing import NamedTuple

import numpy as np
import pytest
from gate_books import LOOSE, calm_context

from allocgym.config import RiskConfig
from allocgym.errors import GateConfigError, RequestError
from allocgym.intents import STRATEGY_FAMILIES
from allocgym.regime import REGIME_LABELS, UNKNOWN_REGIME
from allocgym.risk import Fill, ReasonCode, RiskGateChain, RiskLimits, fill_notional
from allocgym.risk.context import Book, Bounds, bar_gate_context, sector_map
from allocgym.risk.inputs import read_inputs
from allocgym.risk.kernels import BIG
from allocgym.risk.limits import clamp_multiplier

UTC = dt.UTC
T0 = dt.datetime(2024, 5, 1, 14, 30, tzinfo=UTC)


def limits(**kw: object) -> RiskLimits:
    return RiskLimits(**{**LOOSE, **kw})


# ----------------------------------------------------------------------------- fill_notional


def test_naive_fill_time_is_read_as_utc():
    """A naive fill time is UTC: 14:45 naive is inside a bar that starts at 14:30 UTC,
    14:15 naive is before it."""
    naive = T0.replace(tzinfo=None)
    inside = Fill("A", 2.0, 50.0, naive + dt.timedelta(minutes=15))
    assert fill_notional([inside], ["A", "B"], T0).tolist() == [100.0, 0.0]
    before = Fill("A", 2.0, 50.0, naive - dt.timedelta(minutes=15))
    with pytest.raises(RequestError, match=r"time 2024-05-01T14:15:00\+00:00 is outside"):
        fill_notional([before], ["A", "B"], T0)


def test_fills_trading_more_than_any_bar_are_refused_by_symbol():
    """Each fill in range, their notional not: a RequestError (the allocator's coded
    INVALID_INPUT / recent_fills), not a gate failure reported as internal_error."""
    t = T0 + dt.timedelta(minutes=5)
    with pytest.raises(RequestError, match=r"fills of 'A' reach a notional of 1e\+30, outside"):
        fill_notional([Fill("A", 1e15, 1e15, t)], ["A", "B"], T0)
    twice = [Fill("B", 6e6, 1e8, t), Fill("B", -6e6, 1e8, t)]  # 6e14 each, 1.2e15 in all
    with pytest.raises(RequestError, match=r"fills of 'B' reach a notional of 1.2e\+15"):
        fill_notional(twice, ["A", "B"], T0)
    assert fill_notional(twice[:1], ["A", "B"], T0).tolist() == [0.0, 6e14]


def test_naive_bar_start_is_utc_and_aware_fill_times_are_converted():
    """A naive bar start is UTC, and a fill stamped in another zone is compared at its
    UTC instant: 16:40+02:00 (14:40 UTC) is inside a bar starting at naive 14:30,
    16:20+02:00 (14:20 UTC) is before it."""
    cest = dt.timezone(dt.timedelta(hours=2))
    start = T0.replace(tzinfo=None)
    inside = Fill("B", -3.0, 10.0, dt.datetime(2024, 5, 1, 16, 40, tzinfo=cest))
    assert fill_notional([inside], ["A", "B"], start).tolist() == [0.0, 30.0]
    before = Fill("B", -3.0, 10.0, dt.datetime(2024, 5, 1, 16, 20, tzinfo=cest))
    with pytest.raises(RequestError, match=r"outside the current bar \[2024-05-01T14:30:00\+00:00"):
        fill_notional([before], ["A", "B"], start)


def test_fill_outside_the_bar_names_both_bounds_and_the_fix():
    """The message gives the bar as [start, end] in ISO form (``...`` without an end),
    the fill's time, and says to send only the bar's fills."""
    late = Fill("A", 1.0, 10.0, T0 + dt.timedelta(hours=2))
    end = T0 + dt.timedelta(hours=1)
    with pytest.raises(RequestError) as err:
        fill_notional([late], ["A"], T0, end)
    assert str(err.value) == (
        "recent_fills[0] ('A'): time 2024-05-01T16:30:00+00:00 is outside the current bar "
        "[2024-05-01T14:30:00+00:00, 2024-05-01T15:30:00+00:00]: send only fills executed "
        "in the bar being decided"
    )
    early = Fill("A", 1.0, 10.0, T0 - dt.timedelta(seconds=1))
    with pytest.raises(RequestError, match=r"\[2024-05-01T14:30:00\+00:00, \.\.\.\]: send"):
        fill_notional([early], ["A"], T0)


def test_fill_at_the_bar_edges_is_inside():
    """A fill at exactly bar_start or bar_end belongs to the bar (closed interval)."""
    end = T0 + dt.timedelta(hours=1)
    fills = [Fill("A", 1.0, 10.0, T0), Fill("A", -1.0, 10.0, end)]
    assert fill_notional(fills, ["A"], T0, end).tolist() == [20.0]


@pytest.mark.parametrize(
    ("universe", "listed"),
    [
        (["A", "B", "C", "D", "E"], "['A', 'B', 'C', 'D', 'E'] only"),
        (["A", "B", "C", "D", "E", "F"], "['A', 'B', 'C', 'D', 'E']... only"),
        (["A"], "['A'] only"),
    ],
)
def test_unknown_symbol_message_lists_at_most_five_names(universe, listed):
    """A fill of a symbol outside the universe names the fill and lists the universe's
    first five names, with '...' exactly when there are more than five."""
    with pytest.raises(RequestError) as err:
        fill_notional([Fill("Z", 1.0, 10.0, T0)], universe, T0)
    assert str(err.value) == (
        f"recent_fills[0] ('Z'): symbol 'Z' is not in the universe: send fills of {listed}"
    )


def test_fill_quantity_and_price_errors_name_the_value_and_range():
    """A quantity beyond the position range or a price outside the price range is refused
    with the value and the range it must lie in."""
    big = Fill("A", 2e15, 10.0, T0)
    with pytest.raises(
        RequestError, match=r"qty = 2000000000000000\.0 must be finite shares in \[-1e\+15"
    ):
        fill_notional([big], ["A"], T0)
    cheap = Fill("A", 1.0, 1e-9, T0)
    with pytest.raises(RequestError, match=r"price = 1e-09 must be a finite price in \[1e-08"):
        fill_notional([cheap], ["A"], T0)


# ----------------------------------------------------------------------------- read_inputs


def test_factor_limit_without_loadings_says_how_to_fix_it():
    """The factor limit on and no loadings: the message names the field, the shape to
    pass and the setting that turns the limit off."""
    with pytest.raises(RequestError) as err:
        read_inputs(np.zeros((1, 3)), calm_context(1, 3), limits(max_factor_exposure=0.1))
    assert str(err.value) == (
        "max_factor_exposure is set but GateContext.factor_loadings is None: pass the "
        "loadings (n_envs, n_assets, n_factors) or set risk.max_factor_exposure to null"
    )


@pytest.mark.parametrize(
    "shape",
    [(3, 0), (4, 2), (2, 4, 2), (3,), (1, 1, 3, 2)],
    ids=["no-factors", "wrong-assets", "wrong-assets-batched", "1d", "4d"],
)
def test_misshaped_factor_loadings_name_the_shape_and_the_expected_one(shape):
    """Loadings must be (n_envs, n_assets, n_factors) or (n_assets, n_factors) with at
    least one factor: any other shape is refused, naming the shape received and the one
    expected for this universe."""
    c = calm_context(2, 3, factor_loadings=np.zeros(shape))
    with pytest.raises(RequestError) as err:
        read_inputs(np.zeros((2, 3)), c, limits(max_factor_exposure=0.1))
    assert str(err.value) == (
        f"GateContext.factor_loadings has shape {shape}; expected (n_envs, 3, n_factors) "
        "or (3, n_factors) with n_factors >= 1"
    )


def test_one_loadings_matrix_is_shared_by_every_portfolio():
    """An (n_assets, n_factors) matrix is broadcast to each of the n_envs portfolios."""
    loadings = np.array([[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]])
    c = calm_context(2, 3, factor_loadings=loadings)
    got = read_inputs(np.zeros((2, 3)), c, limits(max_factor_exposure=0.1)).loadings
    assert got is not None and got.shape == (2, 3, 2)
    assert (got == loadings).all()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("equity", np.ones(3), r"GateContext\.equity has shape \(3,\); expected \(2,\)"),
        (
            "prices",
            np.ones((2, 4)),
            r"GateContext\.prices has shape \(2, 4\); expected \(2, 3\) \(or an array "
            r"broadcastable to it\)",
        ),
        ("tradable", np.ones((3, 3), bool), r"GateContext\.tradable has shape \(3, 3\)"),
        ("kill_switch", np.ones(3, bool), r"GateContext\.kill_switch has shape \(3,\)"),
        ("reduce_only", np.ones(3, bool), r"GateContext\.reduce_only has shape \(3,\)"),
        ("adv_notional", np.ones((3, 3)), r"GateContext\.adv_notional has shape \(3, 3\)"),
        ("spread_bps", np.ones(4), r"GateContext\.spread_bps has shape \(4,\)"),
        ("volatility", np.ones(4), r"GateContext\.volatility has shape \(4,\)"),
        ("regime", np.zeros(3, np.int64), r"GateContext\.regime has shape \(3,\); expected \(2,\)"),
        (
            "regime",
            np.zeros(2),
            r"GateContext\.regime has dtype float64; pass integer codes "
            r"\(allocgym\.regime\.regime_code\)",
        ),
        (
            "current_weights",
            np.zeros((2, 4)),
            r"GateContext\.current_weights has shape \(2, 4\); expected \(2, 3\) like the "
            r"proposal",
        ),
        (
            "strategy_weights",
            np.zeros((2, 3)),
            r"GateContext\.strategy_weights has shape \(2, 3\); expected \(2, "
            r"n_strategies, 3\)",
        ),
        ("strategy_weights", np.zeros((1, 1, 3)), r"expected \(2, n_strategies, 3\)"),
        ("strategy_weights", np.zeros((2, 1, 4)), r"expected \(2, n_strategies, 3\)"),
        (
            "sector_ids",
            np.array([0.0, 1.0, 2.0]),
            r"GateContext\.sector_ids has shape \(3,\) dtype float64; expected \(3,\) integers",
        ),
        ("sector_ids", np.array([0, 1]), r"sector_ids has shape \(2,\) dtype int64"),
        (
            "sector_ids",
            np.array([0, -2, 1]),
            r"sector_ids has ids below -1: use 0\.\.n_sectors-1, or -1 \(NO_SECTOR\) for a "
            r"name without a sector",
        ),
        # an id the gates would need 2**40 columns for
        ("sector_ids", np.array([0, 2**40, 1]), r"sector_ids has id 1099511627776, above 65535"),
        # flags and numbers are read, never cast: bool(nan) and bool("false") are True
        ("tradable", np.full((2, 3), np.nan), r"tradable has dtype float64: pass True/False"),
        ("kill_switch", np.array(["false"]), r"kill_switch has dtype <U5: pass True/False"),
        ("equity", np.array([True, True]), r"equity has dtype bool: pass numbers"),
        ("prices", np.full((2, 3), "10.0"), r"prices has dtype <U4: pass numbers"),
        ("current_weights", np.zeros((2, 3), complex), r"current_weights have dtype complex128"),
    ],
)
def test_bad_context_fields_are_refused_with_the_value_and_the_fix(field, value, message):
    """Each misshaped or mistyped field is refused by name, with what was received and
    what is expected."""
    c = calm_context(2, 3, **{field: value})
    with pytest.raises(RequestError, match=message):
        read_inputs(np.zeros((2, 3)), c, limits())


def test_an_empty_universe_is_refused_by_name():
    """Zero symbols: a RequestError, not numpy's 'zero-size array' from a reduction."""
    with pytest.raises(RequestError, match=r"shape \(2, 0\): a decision needs at least one"):
        read_inputs(np.zeros((2, 0)), calm_context(2, 0), limits())


def test_a_one_dimensional_proposal_says_how_to_batch_it():
    """A proposal must be (n_envs, n_assets): a 1-d one is refused with the fix."""
    with pytest.raises(RequestError, match=r"use w\[None, :\] for one portfolio"):
        read_inputs(np.zeros(3), calm_context(1, 3), limits())


def test_misshaped_betas_are_refused_by_name():
    """Betas (with the beta limit on) must broadcast to (n_envs, n_assets)."""
    c = calm_context(2, 3, betas=np.ones((2, 4)))
    with pytest.raises(RequestError, match=r"GateContext\.betas has shape \(2, 4\)"):
        read_inputs(np.zeros((2, 3)), c, limits(beta_tolerance=0.1))


def test_beta_limit_without_betas_says_how_to_fix_it():
    """The beta limit on and no betas: the message names the field and how to turn the
    limit off."""
    with pytest.raises(RequestError, match=r"pass betas \(n_envs, n_assets\) or set "):
        read_inputs(np.zeros((1, 3)), calm_context(1, 3), limits(beta_tolerance=0.1))


def test_broadcast_fields_are_read_per_portfolio():
    """One row of market data (n_assets,) and a scalar equity are broadcast to every
    portfolio, kept as given where already batched."""
    c = calm_context(
        2,
        3,
        equity=5e5,
        prices=np.array([10.0, 20.0, 30.0]),
        spread_bps=np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),
    )
    got = read_inputs(np.zeros((2, 3)), c, limits())
    assert got.equity.tolist() == [5e5, 5e5]
    assert got.spread.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


def test_flags_are_or_ed_with_the_configured_switches():
    """Per-portfolio kill and reduce-only flags apply where given; the configured switch
    turns them on everywhere; no flag reads as the configured value."""
    c = calm_context(2, 3, kill_switch=np.array([False, True]), reduce_only=np.array([True, False]))
    got = read_inputs(np.zeros((2, 3)), c, limits())
    assert got.killed.tolist() == [False, True] and got.any_killed
    assert got.reduce.tolist() == [True, False] and got.any_reduce
    on = read_inputs(np.zeros((2, 3)), c, limits(kill_switch=True, reduce_only=True))
    assert on.killed.tolist() == [True, True] and on.reduce.tolist() == [True, True]
    plain = read_inputs(np.zeros((2, 3)), calm_context(2, 3), limits(reduce_only=True))
    assert plain.killed.tolist() == [False, False] and not plain.any_killed
    assert plain.reduce.tolist() == [True, True]


@pytest.mark.parametrize(
    ("equity", "readable"),
    [(1e-6, True), (0.9e-6, False), (1e15, True), (1.1e15, False), (np.nan, False)],
)
def test_equity_range_edges_decide_readability(equity, readable):
    """A portfolio is readable with equity inside [1e-6, 1e15] (edges included); outside
    or NaN its book reads as flat and its equity as 1."""
    c = calm_context(2, 2, equity=np.array([1e6, equity]), current_weights=np.full((2, 2), 0.1))
    got = read_inputs(np.zeros((2, 2)), c, limits())
    assert got.bad_row.tolist() == [False, not readable]
    assert got.any_bad_row is (not readable)
    if readable:
        assert got.equity[1] == equity and got.c[1].tolist() == [0.1, 0.1]
    else:
        assert got.equity[1] == 1.0 and got.c[1].tolist() == [0.0, 0.0]


def test_non_finite_current_book_makes_only_its_row_unreadable():
    """A NaN or inf in a current book makes that portfolio unreadable (book read as 0),
    and only that one."""
    book = np.array([[0.1, 0.2], [np.inf, 0.2], [0.1, np.nan]])
    got = read_inputs(np.zeros((3, 2)), calm_context(3, 2, current_weights=book), limits())
    assert got.bad_row.tolist() == [False, True, True]
    assert got.c.tolist() == [[0.1, 0.2], [0.0, 0.0], [0.0, 0.0]]


def test_insane_betas_and_a_bad_equity_both_count():
    """Unreadable rows add up: a NaN equity in portfolio 0 and a beta above 1e6 in
    portfolio 1 make both unreadable (the beta test does not forget the equity one)."""
    betas = np.array([[1.0, 1.0], [2e6, 1.0], [1.0, 1.0]])
    c = calm_context(3, 2, equity=np.array([np.nan, 1e6, 1e6]), betas=betas)
    got = read_inputs(np.zeros((3, 2)), c, limits(beta_tolerance=0.1))
    assert got.bad_row.tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("field", "kw"), [("betas", "beta_tolerance"), ("loadings", "max_factor_exposure")]
)
def test_betas_and_loadings_up_to_1e6_are_readable(field, kw):
    """A beta or a factor loading of magnitude up to 1e6 is read; above it (or NaN) the
    portfolio is unreadable and its row of betas / loadings is zeroed."""
    values = np.array([[1e6, -1e6], [1e6, 2e6], [np.nan, 0.5]])
    c = calm_context(
        3, 2, betas=values if field == "betas" else None, factor_loadings=values[:, :, None]
    )
    got = read_inputs(np.zeros((3, 2)), c, limits(**{kw: 0.1}))
    assert got.bad_row.tolist() == [False, True, True]
    read = getattr(got, field).reshape(3, 2)
    assert read.tolist() == [[1e6, -1e6], [0.0, 0.0], [0.0, 0.0]]


@pytest.mark.parametrize(
    ("field", "value", "usable"),
    [
        ("prices", 1e-8, True),
        ("prices", 0.9e-8, False),
        ("prices", 1e15, True),
        ("prices", 1.1e15, False),
        ("adv_notional", 0.0, True),
        ("adv_notional", -1.0, False),
        ("adv_notional", 1e15, True),
        ("adv_notional", 1.1e15, False),
        ("spread_bps", 1e4, True),
        ("spread_bps", 1.0001e4, False),
        ("spread_bps", -0.0, True),
        ("spread_bps", -1e-9, False),
        ("volatility", 0.0, True),
        ("volatility", -1e-9, False),
        ("volatility", 1e300, True),
        ("volatility", np.inf, False),
        ("volatility", np.nan, False),
        ("adv_notional", np.nan, False),
        ("spread_bps", np.nan, False),
    ],
)
def test_market_data_range_edges_decide_usability(field, value, usable):
    """A symbol is usable when tradable with a price in [1e-8, 1e15], ADV in [0, 1e15],
    spread in [0, 1e4] bps and a finite volatility >= 0 (edges included); an unusable
    symbol reads ADV 1, volatility 0 and spread 0, the others as given."""
    base = calm_context(1, 3)
    data = np.array(getattr(base, field), dtype=float)
    data[0, 1] = value
    got = read_inputs(np.zeros((1, 3)), calm_context(1, 3, **{field: data}), limits())
    assert got.tradable.tolist() == [[True, usable, True]]
    assert got.all_tradable is usable
    read = (got.adv[0].tolist(), got.vol[0].tolist(), got.spread[0].tolist())
    given = {"adv_notional": 0, "volatility": 1, "spread_bps": 2}.get(field)
    expected = [[1e9, 1e9, 1e9], [0.02, 0.02, 0.02], [5.0, 5.0, 5.0]]
    if not usable:
        expected[0][1], expected[1][1], expected[2][1] = 1.0, 0.0, 0.0
    elif given is not None:
        expected[given][1] = value
    assert read == (expected[0], expected[1], expected[2])


def test_proposal_is_sanitised_and_flagged_per_portfolio():
    """NaN reads as 0 and +-inf as +-1e150 (so is anything beyond it); only the rows with
    a non-finite entry are flagged, and the raw proposal is kept for audit."""
    raw = np.array([[np.nan, np.inf, -np.inf], [1e200, -1e200, 0.5], [0.1, 0.2, 0.3]])
    got = read_inputs(raw, calm_context(3, 3), limits())
    assert got.p.tolist() == [[0.0, BIG, -BIG], [BIG, -BIG, 0.5], [0.1, 0.2, 0.3]]
    assert got.bad_proposal.tolist() == [True, False, False] and got.any_bad_proposal
    assert np.array_equal(got.proposed, raw, equal_nan=True)


def test_non_finite_strategy_weights_flag_their_portfolio_and_read_as_zero():
    """A non-finite strategy contribution makes its portfolio's proposal invalid: its
    contributions read as 0 (every family), finite ones beyond 1e150 are clipped, and the
    families' gross comes from the raw values."""
    sw = np.array(
        [
            [[0.1, -0.2, 0.0], [0.3, 0.0, 0.0]],
            [[0.1, np.nan, 0.0], [0.3, 0.0, 0.0]],
            [[1e200, 0.0, 0.0], [0.0, 0.0, -0.5]],
        ]
    )
    got = read_inputs(np.zeros((3, 3)), calm_context(3, 3, strategy_weights=sw), limits())
    assert got.bad_proposal.tolist() == [False, True, False] and got.any_bad_proposal
    assert got.strategy is not None and got.strategy_gross is not None
    assert got.strategy[1].tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert got.strategy[2, 0, 0] == BIG and got.strategy[0].tolist() == sw[0].tolist()
    assert got.strategy_gross == pytest.approx(np.array([[0.3, 0.3], [0.0, 0.0], [1e200, 0.5]]))


def test_tradable_flags_given_as_integers_are_booleans():
    """Tradable flags given as 0/1 integers read as booleans: the name flagged 0 is
    held at its current weight by the chain."""
    c = calm_context(
        1, 3, tradable=np.array([[1, 0, 1]]), current_weights=np.array([[0.0, 0.05, 0.0]])
    )
    res = RiskGateChain(limits()).apply(np.array([[0.1, 0.2, 0.1]]), c)
    assert res.approved.tolist() == [[0.1, 0.05, 0.1]]
    assert res.symbol_reasons[0, 1] & int(ReasonCode.NOT_TRADABLE)


def test_missing_values_read_as_nan():
    """A missing value (None, as a JSON null arrives) reads as NaN: in the proposal or a
    strategy contribution it makes that portfolio's proposal invalid, in a price it makes
    that symbol unusable."""
    proposed = np.array([[0.1, None], [0.1, 0.1], [0.1, 0.1]], dtype=object)
    sw = np.full((3, 1, 2), 0.1, dtype=object)
    sw[1, 0, 1] = None
    prices = np.full((3, 2), 100.0, dtype=object)
    prices[2, 0] = None
    c = calm_context(3, 2, strategy_weights=sw, prices=prices)
    got = read_inputs(proposed, c, limits())
    assert got.bad_proposal.tolist() == [True, True, False]
    assert got.p[0].tolist() == [0.1, 0.0]
    assert got.tradable.tolist() == [[True, True], [True, True], [False, True]]
    prices[2, 0] = "100.0"  # text is not a missing value: refused, not parsed
    with pytest.raises(RequestError, match=r"GateContext.prices has dtype object: pass numbers"):
        read_inputs(proposed, calm_context(3, 2, prices=prices), limits())


# ----------------------------------------------------------------------------- context: bar_gate_context, sectors, Bounds, Book


def test_bounds_exposures_are_loadings_transposed_times_the_book():
    """``Bounds.exposures`` is B^T w per portfolio: (n, k)."""
    loadings = np.array([[[1.0, 0.5], [-1.0, 2.0], [0.0, 1.0]]])
    bounds = Bounds(
        cap_pct=np.ones((1, 1)),
        cap_notional=None,
        sector_cap=1.0,
        sectors=sector_map(np.arange(3), 3),
        net_cap=1.0,
        betas=None,
        beta_tol=0.0,
        gross_cap=np.ones(1),
        notional_cap=None,
        long_only=False,
        loadings=loadings,
    )
    w = np.array([[0.2, 0.1, -0.4]])
    # factor 0: 0.2 - 0.1 = 0.1; factor 1: 0.1 + 0.2 - 0.4 = -0.1
    assert bounds.exposures(w) == pytest.approx(np.array([[0.1, -0.1]]))


class _Features(NamedTuple):
    adv_notional: np.ndarray
    volatility: np.ndarray
    betas: np.ndarray
    regime: np.ndarray


def _features() -> _Features:
    """Two feature rows (bars) over two names, every value distinct."""
    return _Features(
        adv_notional=np.array([[1e8, 2e8], [3e8, 4e8]]),
        volatility=np.array([[0.01, 0.02], [0.03, 0.04]]),
        betas=np.array([[0.5, 0.6], [0.7, 0.8]]),
        regime=np.array([1.0, 2.0]),  # codes as a float table: cast to int64
    )


def test_bar_gate_context_takes_each_portfolio_s_feature_row():
    """With ``rows``, each portfolio reads the features (and loadings) of its own bar;
    the book is shares x prices / equity; the market data and the optional fields pass
    through unchanged."""
    shares = np.array([[10.0, 0.0], [0.0, 5.0], [1.0, 1.0]])
    equity = np.array([1e4, 2e3, 1e3])
    prices = np.array([[100.0, 200.0], [100.0, 200.0], [100.0, 200.0]])
    spread = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    tradable = np.array([[True, False], [True, True], [False, True]])
    loadings = np.array([[[1.0], [2.0]], [[3.0], [4.0]]])
    extras = dict(
        kill_switch=np.array([False, True, False]),
        reduce_only=np.array([True, False, False]),
        strategy_weights=np.zeros((3, 1, 2)),
        recent_fills=np.ones((3, 2)),
    )
    c = bar_gate_context(
        shares,
        equity,
        prices,
        spread,
        tradable,
        _features(),
        np.array([0, 1]),
        rows=np.array([1, 0, 1]),
        factor_loadings=loadings,
        **extras,
    )
    assert c.current_weights.tolist() == [[0.1, 0.0], [0.0, 0.5], [0.1, 0.2]]
    assert c.adv_notional.tolist() == [[3e8, 4e8], [1e8, 2e8], [3e8, 4e8]]
    assert c.volatility.tolist() == [[0.03, 0.04], [0.01, 0.02], [0.03, 0.04]]
    assert c.betas.tolist() == [[0.7, 0.8], [0.5, 0.6], [0.7, 0.8]]
    assert c.regime.dtype == np.int64 and c.regime.tolist() == [2, 1, 2]
    assert c.factor_loadings.tolist() == loadings[[1, 0, 1]].tolist()
    assert c.prices is prices and c.spread_bps is spread and c.tradable is tradable
    assert c.equity is equity and c.sector_ids.tolist() == [0, 1]
    for name, value in extras.items():
        assert getattr(c, name) is value


def test_bar_gate_context_without_rows_and_with_a_regime_override():
    """Without ``rows`` the features are per portfolio already; a ``regime`` override
    replaces the features' codes; no loadings stay None."""
    f = _features()
    c = bar_gate_context(
        np.zeros((2, 2)),
        np.ones(2),
        np.ones((2, 2)),
        np.ones((2, 2)),
        np.ones((2, 2), bool),
        f,
        np.array([0, 0]),
        regime=np.array([-1, 3]),
    )
    assert c.adv_notional is f.adv_notional and c.regime.tolist() == [-1, 3]
    assert c.factor_loadings is None and c.strategy_weights is None


def test_sector_map_sums_and_spreads_skip_names_without_a_sector():
    """Per-sector sums of |w| leave NO_SECTOR (-1) names out, and spreading per-sector
    values back to names gives those names the fill value; without such names every
    name is in its sector."""
    exempt = sector_map(np.array([1, -1, 0, 1]), 4)
    aw = np.array([[0.1, 0.5, 0.2, 0.3], [1.0, 2.0, 3.0, 4.0]])
    assert exempt.exempt and exempt.n == 2
    assert exempt.sums(aw) == pytest.approx(np.array([[0.2, 0.4], [3.0, 5.0]]))
    assert exempt.sums(aw[:1]) == pytest.approx(np.array([[0.2, 0.4]]))  # another batch
    spread = exempt.spread(np.array([[10.0, 20.0]]), fill=7.0)
    assert spread.tolist() == [[20.0, 7.0, 10.0, 20.0]]
    plain = sector_map(np.array([1, 0, 0]), 3)
    assert not plain.exempt and plain.n == 2
    assert plain.sums(np.array([[0.1, 0.2, 0.3]])) == pytest.approx(np.array([[0.5, 0.1]]))
    assert plain.spread(np.array([[10.0, 20.0]])).tolist() == [[20.0, 10.0, 10.0]]
    assert sector_map(np.array([0, 2]), 2).n == 3  # sectors 0..max id
    assert sector_map(np.array([], dtype=np.int64), 0).n == 1


def _bounds(n: int = 2) -> Bounds:
    """Bounds of ``n`` portfolios with distinct per-row values and every option on."""
    rows = np.arange(1.0, n + 1)
    return Bounds(
        cap_pct=rows[:, None] / 10,
        cap_notional=rows[:, None] / 20,
        sector_cap=0.3,
        sectors=sector_map(np.arange(2), 2),
        net_cap=0.4,
        betas=np.repeat(rows[:, None], 2, axis=1),
        beta_tol=0.05,
        gross_cap=rows,
        notional_cap=rows / 2 + 0.75,
        long_only=True,
        loadings=np.repeat(rows[:, None, None], 2, axis=1),
        factor_cap=0.2,
    )


def test_bounds_take_selects_rows_and_keeps_the_shared_limits():
    """``Bounds.take`` keeps the selected portfolios' per-row bounds and every shared
    one; a bound that is off stays None."""
    whole = _bounds()
    part = whole.take(np.array([1]))
    assert part.cap_pct.tolist() == [[0.2]] and part.cap_notional.tolist() == [[0.1]]
    assert part.betas.tolist() == [[2.0, 2.0]] and part.gross_cap.tolist() == [2.0]
    assert part.notional_cap.tolist() == [1.75] and part.loadings.tolist() == [[[2.0], [2.0]]]
    assert (part.sector_cap, part.net_cap, part.beta_tol, part.factor_cap) == (
        0.3,
        0.4,
        0.05,
        0.2,
    )
    assert part.long_only is True and part.sectors is whole.sectors
    off = Bounds(**{**{k: getattr(whole, k) for k in Bounds.__slots__}, "cap_notional": None})
    assert off.take(slice(0, 1)).cap_notional is None


def test_bounds_gross_limit_is_the_tighter_of_gross_and_notional():
    """The gross limit is min(gross cap, notional cap) per row, the gross cap alone
    without a notional cap."""
    b = _bounds()
    assert b.gross_limit().tolist() == [1.0, 1.75]
    no_notional = Bounds(**{**{k: getattr(b, k) for k in Bounds.__slots__}, "notional_cap": None})
    assert no_notional.gross_limit().tolist() == [1.0, 2.0]


def test_book_caches_abs_and_gross_until_updated():
    """``Book`` gives |w| and the gross per row, recomputed after ``update``."""
    b = Book(np.array([[0.1, -0.2], [0.3, 0.0]]))
    assert b.aw.tolist() == [[0.1, 0.2], [0.3, 0.0]]
    assert b.gross == pytest.approx(np.array([0.3, 0.3]))
    b.update(np.array([[1.0, -1.0], [0.0, 0.0]]))
    assert b.gross.tolist() == [2.0, 0.0] and b.aw.tolist() == [[1.0, 1.0], [0.0, 0.0]]


# ----------------------------------------------------------------------------- RiskLimits


def test_to_dict_has_every_config_field_in_order_and_round_trips():
    """``to_dict`` lists exactly the RiskConfig fields in their order, with the regime
    maps keyed by every regime label, the budgets by every family and the tilts by label
    then family (clamped values); it is JSON-ready and builds equal limits back."""
    lim = RiskLimits(
        max_gross=1.5,
        regime_budget_multipliers=(0.5, 3.0, 1.0, 0.25),
        regime_capacity_multipliers={"trend": 0.5},
        strategy_budgets={"trend": 0.3},
        regime_strategy_tilts={"uncertain": {"defensive": 5.0}},
        max_multiplier=2.0,
    )
    d = lim.to_dict()
    assert list(d) == list(RiskConfig.model_fields)
    assert d["max_gross"] == 1.5 and d["max_symbol_notional"] is None
    assert d["regime_budget_multipliers"] == dict(
        zip(REGIME_LABELS, (0.5, 2.0, 1.0, 0.25), strict=True)
    )
    assert d["regime_capacity_multipliers"] == dict(
        zip(REGIME_LABELS, (0.5, 1.0, 1.0, 1.0), strict=True)
    )
    assert d["strategy_budgets"] == {"trend": 0.3, "mean_reversion": 0.6, "defensive": 0.6}
    assert list(d["regime_strategy_tilts"]) == list(REGIME_LABELS)
    assert d["regime_strategy_tilts"]["uncertain"] == {
        "trend": 1.0,
        "mean_reversion": 1.0,
        "defensive": 2.0,
    }
    assert all(list(row) == list(STRATEGY_FAMILIES) for row in d["regime_strategy_tilts"].values())
    again = RiskLimits(**json.loads(json.dumps(d)))
    assert again == lim and again.to_dict() == d and hash(again) == hash(lim)


@pytest.mark.parametrize(
    ("regime", "expected"),
    [
        (None, [0, 0]),  # the default regime "trend"
        (2, [2, 2]),
        (np.array([0, 3], dtype=np.int32), [0, 3]),
        (np.array([1, 3], dtype=np.uint8), [1, 3]),
    ],
)
def test_regime_codes_are_int64_of_shape_n_envs(regime, expected):
    """``regime_codes`` gives callers int64 codes of shape (n_envs,) whatever integer
    type came in (the default regime's code when none), in a writable copy."""
    got = limits(default_regime="trend").regime_codes(regime, 2)
    assert got.dtype == np.int64 and got.shape == (2,)
    assert got.tolist() == expected
    got[0] = 9
    if isinstance(regime, np.ndarray):
        assert regime[0] != 9  # not a view of the caller's array


def test_regime_codes_default_to_unknown_for_a_label_outside_the_table():
    """A default regime that is not a known label gates as UNKNOWN_REGIME (-1)."""
    got = limits(default_regime="neutral").regime_codes(None, 3)
    assert got.dtype == np.int64 and got.tolist() == [UNKNOWN_REGIME] * 3


def test_invalid_limits_name_the_field_and_where_to_fix_it():
    """A field RiskConfig rejects is reported with the call as written, the field's
    problem, and where it is configured (the risk section or its runtime variable)."""
    with pytest.raises(GateConfigError) as err:
        RiskLimits(max_gross=-1.0)
    text = str(err.value)
    assert text.startswith("RiskLimits(max_gross=-1.0) is invalid (max_gross: ")
    assert text.endswith(
        "fix the field in the risk section of the config (or its TRADING_ALLOCATOR_* variable)"
    )


def test_multiplier_below_min_multiplier_reads_as_zero():
    """A clamped regime multiplier below 1e-12 is 0 (a limit scaled to dust allows
    nothing), one of 0 stays 0, and code 0 reads its own entry, -1 the default."""
    lim = RiskLimits(
        regime_budget_multipliers=(0.0, 1e-13, 0.5, 1.0),
        regime_capacity_multipliers=(1e-13, 0.0, 2.0, 1.0),
        default_budget_multiplier=1.5,
    )
    codes = np.array([0, 1, 2, 3, -1])
    assert lim.budget_multiplier(codes).tolist() == [0.0, 0.0, 0.5, 1.0, 1.5]
    assert lim.capacity_multiplier(codes).tolist() == [0.0, 0.0, 2.0, 1.0, 1.0]
    clamped = clamp_multiplier(np.array([0.0, 5e-13, 1e-12, 3.0]), 0.0, 2.0)
    assert clamped.tolist() == [0.0, 0.0, 1e-12, 2.0]


def test_strategy_tilt_of_an_unknown_regime_is_the_clamped_one():
    """An unknown regime code gets no tilt: 1.0, clamped to max_multiplier (0.8 here)."""
    lim = RiskLimits(regime_strategy_tilts={"trend": {"trend": 0.5}}, max_multiplier=0.8)
    got = lim.strategy_tilt(np.array([0, -1]))
    assert got.tolist() == [[0.5, 0.8, 0.8], [0.8, 0.8, 0.8]]


def test_regime_lookups_refuse_float_codes_with_the_fix():
    """Regime codes must be integers: floats are refused, saying where codes come from."""
    with pytest.raises(RequestError) as err:
        RiskLimits().budget_multiplier(np.array([0.0]))
    assert str(err.value) == (
        "regime codes have dtype float64; pass integer codes into REGIME_LABELS "
        "(allocgym.regime.regime_code), -1 for an unknown label"
    )


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            dict(regime_budget_multipliers={"bull": 1.0}),
            "risk.regime_budget_multipliers has label(s) ['bull'] that are not regime "
            "labels: use ['trend', 'mean_reversion', 'high_volatility', 'uncertain']; any "
            "other label gets risk.default_budget_multiplier",
        ),
        (
            dict(regime_capacity_multipliers={"bull": 1.0}),
            "risk.regime_capacity_multipliers has label(s) ['bull'] that are not regime "
            "labels: use ['trend', 'mean_reversion', 'high_volatility', 'uncertain']; any "
            "other label gets risk.default_capacity_multiplier",
        ),
        (
            dict(regime_strategy_tilts={"bull": {"trend": 1.0}}),
            "risk.regime_strategy_tilts has label(s) ['bull'] that are not regime labels: "
            "use ['trend', 'mean_reversion', 'high_volatility', 'uncertain'] (any other "
            "label leaves the budgets untilted)",
        ),
    ],
)
def test_unknown_regime_labels_are_refused_with_the_known_ones(kw, message):
    """A regime map or the tilt table naming a label outside REGIME_LABELS is refused,
    listing the labels to use and what an unknown label would get."""
    with pytest.raises(GateConfigError) as err:
        RiskLimits(**kw)
    assert str(err.value) == message


def test_config_or_keywords_not_both():
    """``RiskLimits`` takes a RiskConfig (used as is) or keyword fields, not both."""
    assert RiskLimits(RiskConfig(max_gross=1.5)).max_gross == 1.5
    with pytest.raises(GateConfigError) as err:
        RiskLimits(RiskConfig(), max_gross=1.0)
    assert str(err.value) == (
        "RiskLimits takes a RiskConfig or keyword fields, not both (got ['max_gross'])"
    )
