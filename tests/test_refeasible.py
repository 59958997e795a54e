"""Re-feasibility (``allocgym.risk.refeasible``) on tiny hand-built books: the bisection
back inside the coupled limits (``bisect_scale``), the closed-form shrink of the tradable
names around held ones (``pinned_shrink``) and holding non-tradable names at the current
book (``pin_untradable``), each against answers worked out by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gate_books import LOOSE, calm_context

from allocgym.risk import ReasonCode, RiskLimits
from allocgym.risk.context import Bounds, sector_map
from allocgym.risk.gates.registry import coupled_ok, hard_ok
from allocgym.risk.inputs import Inputs, read_inputs
from allocgym.risk.kernels import Trace
from allocgym.risk.refeasible import bisect_scale, pin_untradable, pinned_shrink

R = ReasonCode
NT, GROSS = int(R.NOT_TRADABLE), int(R.GROSS_CAP)


def bounds(
    n: int,
    m: int,
    *,
    gross: float = 10.0,
    net: float = 10.0,
    sector: float = 10.0,
    sector_ids: Any = None,
    cap: float = 1.0,
    long_only: bool = False,
    loadings: np.ndarray | None = None,
    factor_cap: float = 0.0,
) -> Bounds:
    """Limits of ``n`` portfolios over ``m`` names, loose except those named (one sector
    per name unless ``sector_ids``; no notional, beta or factor limit unless given)."""
    ids = np.arange(m) if sector_ids is None else np.asarray(sector_ids)
    return Bounds(
        cap_pct=np.full((n, 1), cap),
        cap_notional=None,
        sector_cap=sector,
        sectors=sector_map(ids, m),
        net_cap=net,
        betas=None,
        beta_tol=0.0,
        gross_cap=np.full(n, gross),
        notional_cap=None,
        long_only=long_only,
        loadings=loadings,
        factor_cap=factor_cap,
    )


def inputs(c: Any, tradable: Any, **ctx: Any) -> Inputs:
    """The validated inputs of current books ``c`` with the ``tradable`` mask."""
    c = np.asarray(c, dtype=float)
    n, m = c.shape
    context = calm_context(
        n, m, current_weights=c, tradable=np.asarray(tradable, dtype=bool), **ctx
    )
    return read_inputs(c, context, RiskLimits(**LOOSE))


def scale(start: np.ndarray, step: np.ndarray, lim: Bounds) -> np.ndarray:
    """``bisect_scale`` under the float error state the chain runs it in (a limit the
    step does not move divides by zero there)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return bisect_scale(start, step, lim)


def gross(w: np.ndarray) -> np.ndarray:
    return np.abs(w).sum(axis=1)


# ----------------------------------------------------------------------------- bisect_scale


def test_bisect_scale_feasible_end_is_the_whole_step() -> None:
    """When ``start + step`` meets every limit the scale is exactly 1 in every row."""
    start = np.array([[0.1, 0.2], [0.0, 0.0]])
    step = np.array([[0.3, -0.1], [0.5, 0.5]])
    assert bisect_scale(start, step, bounds(2, 2, gross=1.0, net=1.0)).tolist() == [1.0, 1.0]


def test_bisect_scale_net_closed_form_and_a_row_with_no_net_change() -> None:
    """Net is linear along the segment: s = (cap - net(start)) / net(step). A row whose
    step leaves its net unchanged keeps the whole step, even with its net at the cap."""
    start = np.array([[0.5, 0.0], [0.6, 0.0]])
    step = np.array([[0.5, 0.0], [0.25, -0.25]])  # row 1: net 0.6 before and after
    lim = bounds(2, 2, net=0.6)
    s = scale(start, step, lim)
    assert s[0] == pytest.approx(0.2, abs=1e-15)  # 0.5 + 0.5 s = 0.6
    assert s[1] == 1.0
    assert coupled_ok(start + s[:, None] * step, lim).all()


def test_bisect_scale_factor_at_its_cap_with_no_change_does_not_bind() -> None:
    """Each factor exposure is its own linear limit. Factor 0 goes from 0 to 0.5 against
    a cap of 0.25 (s = 0.5); factor 1 sits at the cap and the step does not move it, so
    it does not bind."""
    loadings = np.array([[[1.0, 1.0], [1.0, -1.0]]])  # factor 0: w0 + w1, factor 1: w0 - w1
    start = np.array([[0.125, -0.125]])  # exposures (0, 0.25)
    step = np.array([[0.25, 0.25]])  # exposures change by (0.5, 0)
    lim = bounds(1, 2, loadings=loadings, factor_cap=0.25)
    s = scale(start, step, lim)
    assert s[0] == pytest.approx(0.5, abs=1e-15)


def test_bisect_scale_piecewise_limits_are_bisected_per_row() -> None:
    """Gross and sector gross are piecewise linear along a segment and found by bisection
    to float resolution. Row 0: gross |0.2 + 0.2 s| + |-0.2 + 0.4 s| falls as 0.4 - 0.2 s
    up to s = 0.5, then is 0.6 s, so a cap of 0.45 gives s = 0.75. Row 1: sector 0
    (names 0, 1) grows as 0.2 + 0.4 s against 0.4, so s = 0.5. Row 2 stays inside."""
    start = np.array([[0.2, 0.0, -0.2], [0.1, 0.1, 0.0], [0.0, 0.0, 0.0]])
    step = np.array([[0.2, 0.0, 0.4], [0.2, 0.2, 0.5], [0.1, 0.1, 0.1]])
    lim = bounds(3, 3, gross=0.45, sector=0.4, sector_ids=[0, 0, 1])
    lim.gross_cap[1:] = 10.0  # only row 0 has the tight gross cap
    s = scale(start, step, lim)
    assert s[0] == pytest.approx(0.75, abs=1e-11)
    assert s[1] == pytest.approx(0.5, abs=1e-11)
    assert s[2] == 1.0
    assert coupled_ok(start + s[:, None] * step, lim).all()
    beyond = start[:2] + (s[:2, None] + 1e-9) * step[:2]
    assert not coupled_ok(beyond, lim.take(slice(0, 2))).any()


# ----------------------------------------------------------------------------- pinned_shrink


def test_pinned_shrink_is_one_when_everything_fits() -> None:
    """Loose limits: every tradable name keeps its whole weight (factor exactly 1)."""
    w = np.array([[0.3, 0.2, -0.1]])
    tradable = np.array([[False, True, True]])
    f = pinned_shrink(w, tradable, bounds(1, 3, gross=1.0, net=1.0, sector=1.0))
    assert f[tradable].tolist() == [1.0, 1.0]


def test_pinned_shrink_sector_then_gross() -> None:
    """Sector first, then one common factor for gross. Names 0 (held, 0.3) and 1
    (0.5) share sector 0, name 2 (0.6) is alone; sector cap 0.5: name 1 gets
    (0.5 - 0.3) / 0.5 = 0.4 and name 2 0.5 / 0.6. Their weights are then 0.2 and 0.5,
    and the gross cap 0.8 leaves (0.8 - 0.3) / 0.7 for both."""
    w = np.array([[0.3, 0.5, 0.6]])
    tradable = np.array([[False, True, True]])
    lim = bounds(1, 3, gross=0.8, sector=0.5, sector_ids=[0, 0, 1])
    f = pinned_shrink(w, tradable, lim)
    common = 0.5 / 0.7
    assert f[0, 1:] == pytest.approx([0.4 * common, 0.5 / 0.6 * common], rel=1e-14)
    book = np.where(tradable, f * w, w)
    assert gross(book)[0] == pytest.approx(0.8, rel=1e-14)
    assert hard_ok(book, lim).all()


def test_pinned_shrink_net_with_the_held_net_per_row() -> None:
    """The net bound counts each row's own held net. Row 0 holds +0.4, so the tradable
    +0.5 fits a net cap of 0.5 by (0.5 - 0.4) / 0.5 = 0.2; row 1 holds -0.4, so the
    tradable +0.5 leaves net 0.1 and fits whole."""
    w = np.array([[0.4, 0.5], [-0.4, 0.5]])
    tradable = np.array([[False, True], [False, True]])
    f = pinned_shrink(w, tradable, bounds(2, 2, net=0.5))
    assert f[:, 1] == pytest.approx([0.2, 1.0], rel=1e-14)


def test_pinned_shrink_each_factor_with_its_own_held_exposure() -> None:
    """The held name (0.4, loadings (1, -1)) has exposures (0.4, -0.4); the tradable one
    (0.5, loadings (1, 1)) adds 0.5 to both. Cap 0.5: factor 0 allows (0.5 - 0.4) / 0.5
    = 0.2; factor 1 goes from -0.4 toward +0.1 and allows all. The factor is 0.2."""
    loadings = np.array([[[1.0, -1.0], [1.0, 1.0]]])
    w = np.array([[0.4, 0.5]])
    tradable = np.array([[False, True]])
    f = pinned_shrink(w, tradable, bounds(1, 2, loadings=loadings, factor_cap=0.5))
    assert f[0, 1] == pytest.approx(0.2, rel=1e-14)


def test_pinned_shrink_held_names_over_a_limit_sell_what_they_can() -> None:
    """Held names alone over a limit: no factor fits and the bound clips to 0. A sector
    over its cap sells its tradable names (the other sector's name keeps its weight);
    held gross over the cap sells every tradable name."""
    w = np.array([[0.6, 0.2, 0.1], [0.9, 0.2, 0.1]])
    tradable = np.array([[False, True, True], [False, True, True]])
    sector_over = bounds(2, 3, sector=0.5, sector_ids=[0, 0, 1])
    assert pinned_shrink(w[:1], tradable[:1], sector_over.take(slice(0, 1)))[0, 1:].tolist() == [
        0.0,
        1.0,
    ]
    gross_over = bounds(2, 3, gross=0.8)
    assert pinned_shrink(w[1:], tradable[1:], gross_over.take(slice(1, 2)))[0, 1:].tolist() == [
        0.0,
        0.0,
    ]


# ----------------------------------------------------------------------------- pin_untradable


def pin(
    approved: np.ndarray,
    c_in: np.ndarray,
    x: Inputs,
    lim: Bounds,
    trace: Trace,
    proposal: np.ndarray | None = None,
) -> np.ndarray:
    """``pin_untradable`` with no trade limits and nothing coded before the hard gates;
    the proposal (held names pinned) defaults to the approved book's."""
    pinned = np.where(x.tradable, approved if proposal is None else proposal, x.c)
    n, m = approved.shape
    return pin_untradable(
        approved, c_in, x, lim, trace, pinned, lambda rows, book: (book, Trace(rows.size, m)),
        Trace(n, m),
    )  # fmt: skip


def test_pin_untradable_pinned_book_inside_keeps_the_approved_weights() -> None:
    """A held name the gates moved is put back; when the pinned book is inside the limits
    the tradable names keep their approved weights bit for bit and carry no code."""
    c = np.array([[0.2, 0.7]])
    x = inputs(c, [[False, True]])
    approved = np.array([[0.1, 0.1]])
    trace = Trace(1, 2)
    out = pin(approved, c, x, bounds(1, 2, gross=1.0), trace)
    assert out.tolist() == [[0.2, 0.1]]
    assert trace.sym.tolist() == [[NT, 0]]
    assert trace.port.tolist() == [0]
    assert trace.clipped["NOT_TRADABLE"] == pytest.approx([0.1])
    assert trace.clipped["GROSS_CAP"].tolist() == [0.0]


def test_pin_untradable_tradable_names_shrink_to_fit_per_portfolio() -> None:
    """Putting the held name back breaks gross 1.0; the tradable name goes from its current
    weight toward its approved one as far as gross allows. Row 0: 0.6 held + 0.2 -> 0.5
    stops at 0.4 (0.1 clipped); row 1: 0.3 held + 0.3 -> 0.9 stops at 0.7 (0.2 clipped).
    Each row's clipped amount is its own."""
    c = np.array([[0.6, 0.2], [0.3, 0.3]])
    x = inputs(c, [[False, True], [False, True]])
    approved = np.array([[0.5, 0.5], [0.2, 0.9]])
    trace = Trace(2, 2)
    out = pin(approved, c, x, bounds(2, 2, gross=1.0), trace)
    assert out == pytest.approx(np.array([[0.6, 0.4], [0.3, 0.7]]), abs=1e-10)
    assert trace.sym.tolist() == [[NT, GROSS], [NT, GROSS]]
    assert trace.port.tolist() == [GROSS, GROSS]
    assert trace.clipped["GROSS_CAP"] == pytest.approx([0.1, 0.2], abs=1e-10)
    assert trace.clipped["NOT_TRADABLE"] == pytest.approx([0.1, 0.1])


def test_pin_untradable_long_only_base_drops_short_tradable_names() -> None:
    """Long-only, gross 1.0: the current book (0.8 held, 0.5, -0.2) was de-risked to
    (0.8, 0.5, 0) / 1.3, which with 0.8 put back is over gross. The base is then the
    current book with its tradable names clipped to [0, cap] -- the short one to 0 --
    and shrunk to fit: name 1 to (1.0 - 0.8) = 0.2. From there the approved 0.4 does not
    fit, so the book is (0.8, 0.2, 0)."""
    c = np.array([[0.8, 0.5, -0.2]])
    x = inputs(c, [[False, True, True]])
    c_in = np.array([[0.8, 0.5, 0.0]]) / 1.3
    approved = np.array([[0.6, 0.4, 0.0]])
    lim = bounds(1, 3, gross=1.0, long_only=True)
    trace = Trace(1, 3)
    out = pin(approved, c_in, x, lim, trace)
    assert out == pytest.approx(np.array([[0.8, 0.2, 0.0]]), abs=1e-10)
    assert hard_ok(out, lim).all()
    assert trace.sym.tolist() == [[NT, GROSS, 0]]
    assert trace.port.tolist() == [GROSS]


def test_pin_untradable_held_names_alone_over_a_limit_close_the_tradable_ones() -> None:
    """The held 0.9 alone is over gross 0.8: no book fits, the tradable name adds to the
    excess and is closed. The portfolio is coded NOT_TRADABLE, the name NOT_TRADABLE
    (kept from its proposed 0.2) and FORCED_DERISK (sold from its current 0.3); no gate
    limit is credited with it."""
    c = np.array([[0.9, 0.3]])
    x = inputs(c, [[False, True]])
    c_in = c * (0.8 / 1.2)  # the de-risked current book (0.6, 0.2)
    trace = Trace(1, 2)
    out = pin(c_in.copy(), c_in, x, bounds(1, 2, gross=0.8), trace)
    assert out.tolist() == [[0.9, 0.0]]
    fd = int(R.FORCED_DERISK)
    assert trace.sym.tolist() == [[0, NT | fd]]
    assert trace.port.tolist() == [NT]
    assert trace.clipped["NOT_TRADABLE"] == pytest.approx([0.2])
    assert trace.clipped["FORCED_DERISK"] == pytest.approx([0.3])
    assert trace.clipped["GROSS_CAP"].tolist() == [0.0]


def test_pin_untradable_leaves_killed_rows_to_the_caller() -> None:
    """A killed portfolio is flattened and coded by the chain after this step: here its
    approved row and its trace are left as they are; the other row is pinned."""
    c = np.array([[0.3, 0.1], [0.3, 0.1]])
    x = inputs(c, [[False, True], [False, True]], kill_switch=np.array([True, False]))
    approved = np.array([[0.2, 0.1], [0.2, 0.1]])
    trace = Trace(2, 2)
    out = pin(approved, c, x, bounds(2, 2), trace)
    assert out.tolist() == [[0.2, 0.1], [0.3, 0.1]]
    assert trace.sym.tolist() == [[0, 0], [NT, 0]]
    assert trace.clipped["NOT_TRADABLE"] == pytest.approx([0.0, 0.1])


def test_pin_untradable_nothing_held_moved_returns_approved() -> None:
    """No non-tradable name moved: the approved book is returned as is, nothing coded."""
    c = np.array([[0.3, 0.1]])
    x = inputs(c, [[False, True]])
    approved = np.array([[0.3, 0.9]])
    trace = Trace(1, 2)
    out = pin(approved, c, x, bounds(1, 2, gross=0.5), trace)
    assert out is approved
    assert not trace.sym.any() and not trace.clip.any()


# ------------------------------------------------- held names over a limit, through the chain


def _held_chain(
    limits: RiskLimits, cur: list[float], prop: list[float], betas: list[float] | None = None
) -> Any:
    """The gate chain on one long/short book, one sector per name, name 0 halted: the
    result, then the same book gated again from itself (the chain's idempotence)."""
    import dataclasses

    from allocgym.risk import GateContext, RiskGateChain, check_invariants

    n = len(cur)
    ctx = GateContext(
        current_weights=np.array([cur]), equity=np.array([1e6]),
        prices=np.full((1, n), 100.0), adv_notional=np.full((1, n), 1e9),
        volatility=np.full((1, n), 0.02), spread_bps=np.full((1, n), 5.0),
        sector_ids=np.arange(n), regime=np.zeros(1, np.int64),
        tradable=np.array([[False] + [True] * (n - 1)]),
        betas=None if betas is None else np.array([betas]),
    )  # fmt: skip
    chain = RiskGateChain(limits)
    res = chain.apply(np.array([prop]), ctx)
    assert check_invariants(res, ctx, limits).n_breaches == 0
    ctx2 = dataclasses.replace(ctx, current_weights=res.approved)
    again = chain.apply(res.approved, ctx2)
    assert np.array_equal(again.approved, res.approved)
    return res


def _long_short(**over: Any) -> RiskLimits:
    base = dict(
        max_symbol_weight=1.0, max_gross=1.5, max_net=1.0, max_sector_gross=1.0,
        long_only=False, max_turnover=0.5, max_participation=1.0, slippage_budget_bps=1e4,
    )  # fmt: skip
    return RiskLimits(**{**base, **over})


def test_a_held_name_hedged_by_the_proposal_keeps_the_tradable_book() -> None:
    """A halted long of 0.50 and a tradable short of -0.44 (beta 0.06 over a 0.05
    tolerance): the proposal shorts 0.02 more (beta 0.04, inside every limit, a trade
    inside the 0.05 turnover cap). It is approved as it is. The trade from the de-risked
    book was over the turnover cap, which moved the held name, and every tradable name
    had been closed: beta 0.50."""
    lim = _long_short(beta_tolerance=0.05, max_turnover=0.05)
    res = _held_chain(lim, [0.50, -0.44, 0.0], [0.50, -0.46, 0.0], betas=[1.0, 1.0, 1.0])
    assert res.approved.tolist() == [[0.50, -0.46, 0.0]]
    fd = int(R.FORCED_DERISK)  # the current book is outside: the only code
    assert res.portfolio_reasons.tolist() == [fd]
    assert (res.symbol_reasons & ~fd).tolist() == [[0, 0, 0]]


def test_a_hedge_over_the_trade_limits_is_approved_as_they_pass_it() -> None:
    """The same book, the proposal shorting 0.10 more: the turnover cap halves the trade
    from the current book, to -0.49 (beta 0.01), inside every limit: approved, coded
    TURNOVER_CAP. The gates' own trade started from the de-risked book (-0.37): half-way
    it was still over the beta tolerance."""
    lim = _long_short(beta_tolerance=0.05, max_turnover=0.05)
    res = _held_chain(lim, [0.50, -0.44, 0.0], [0.50, -0.54, 0.0], betas=[1.0, 1.0, 1.0])
    assert res.approved == pytest.approx(np.array([[0.50, -0.49, 0.0]]), abs=1e-12)
    fd = int(R.FORCED_DERISK)
    assert (res.symbol_reasons & ~fd).tolist() == [[0, int(R.TURNOVER_CAP), 0]]
    assert res.portfolio_reasons[0] & int(R.TURNOVER_CAP)


def test_a_held_name_over_its_own_cap_does_not_close_the_book() -> None:
    """The symbol cap shrank under a halted 0.08 (cap 0.05): no trade can change that
    name, so the other names keep their in-limit book (all had been sold), and the
    portfolio is coded NOT_TRADABLE, which check_invariants needs to excuse the excess."""
    lim = _long_short(max_symbol_weight=0.05, long_only=True)
    res = _held_chain(lim, [0.08, 0.04, 0.04], [0.08, 0.04, 0.04])
    assert res.approved.tolist() == [[0.08, 0.04, 0.04]]
    assert res.portfolio_reasons[0] & NT


def test_a_held_name_over_its_own_cap_lets_the_others_trade_to_their_caps() -> None:
    """As above, the proposal over the cap on a tradable name too (0.09): that name is
    clipped to its 0.05 cap, the rest of the book is kept, nothing is closed."""
    lim = _long_short(max_symbol_weight=0.05, long_only=True)
    res = _held_chain(lim, [0.08, 0.04, 0.04], [0.08, 0.09, 0.02])
    assert res.approved.tolist() == [[0.08, 0.05, 0.02]]
    assert res.portfolio_reasons[0] & NT


def test_a_portfolio_held_over_a_limit_does_not_depend_on_its_batch() -> None:
    """Long-only with a halted short (-0.02): the proposal (gross 0.82 over 0.5) is not
    repaired inside the limits by another portfolio's turnover-capped trade in the same
    batch. The proposal's trade limits ran over the batch, and the repair of one row's
    clipped trade had repaired (and approved) this row's proposal too."""
    from allocgym.risk import GateContext, RiskGateChain

    lim = RiskLimits(
        max_symbol_weight=1.0, max_gross=0.5, max_net=1.0, max_sector_gross=1.0,
        long_only=True, max_turnover=0.65, max_participation=1.0, slippage_budget_bps=1e4,
    )  # fmt: skip

    def ctx(cur: list[list[float]]) -> GateContext:
        n = len(cur)
        return GateContext(
            current_weights=np.array(cur), equity=np.full(n, 1e6),
            prices=np.full((n, 3), 100.0), adv_notional=np.full((n, 3), 1e9),
            volatility=np.full((n, 3), 0.02), spread_bps=np.full((n, 3), 5.0),
            sector_ids=np.arange(3), regime=np.zeros(n, np.int64),
            tradable=np.array([[False, True, True]] * n),
        )  # fmt: skip

    chain = RiskGateChain(lim)
    a_cur, a_prop = [-0.02, 0.2, 0.0], [-0.02, 0.2, 0.6]
    b_cur, b_prop = [-0.02, 0.0, 0.0], [-0.02, 0.7, 0.0]  # a trade over the turnover cap
    alone = chain.apply(np.array([a_prop]), ctx([a_cur]))
    both = chain.apply(np.array([a_prop, b_prop]), ctx([a_cur, b_cur]))
    assert np.array_equal(both.approved[:1], alone.approved)
    assert np.array_equal(both.symbol_reasons[:1], alone.symbol_reasons)
    assert both.portfolio_reasons[0] == alone.portfolio_reasons[0]
    assert all(np.array_equal(both.clipped[k][:1], alone.clipped[k]) for k in both.clipped)


def test_a_held_name_inside_its_limits_keeps_the_repair_from_the_de_risked_book() -> None:
    """A held 0.03 inside the net cap, a tradable 0.06 over it (net 0.09, cap 0.05): the
    book can be repaired from the de-risked current book (a free forced de-risk, then the
    turnover-capped trade toward the proposal), so the proposal's own trade from the
    current book is not tried (it would end at net 0.04, further from the proposal)."""
    lim = _long_short(max_net=0.05, max_turnover=0.05)
    res = _held_chain(lim, [0.03, 0.06], [0.03, -0.40])
    assert res.approved == pytest.approx(np.array([[0.03, -1.0 / 60.0]]), abs=1e-12)


def test_a_held_name_the_proposal_keeps_is_coded_by_the_proposal_alone() -> None:
    """A halted 0.08 over its 0.05 cap, the proposal the current book: nothing moved, so
    no symbol carries a code and no gate clipped anything (the portfolio keeps
    NOT_TRADABLE and FORCED_DERISK: a held name is over its cap)."""
    lim = _long_short(max_symbol_weight=0.05, long_only=True)
    res = _held_chain(lim, [0.08, 0.04, 0.04], [0.08, 0.04, 0.04])
    assert not res.symbol_reasons.any()
    assert not any(v.any() for v in res.clipped.values())
    assert res.portfolio_reasons.tolist() == [NT | int(R.FORCED_DERISK)]


def test_a_partial_hedge_of_a_held_name_is_kept_when_no_book_fits() -> None:
    """A halted long of 0.50 against a 0.30 net cap and a tradable short of -0.10: no
    book of the tradable names fits (the proposal shorts no more). Closing the short
    would raise the net to 0.50; the short is kept (net 0.40), coded NOT_TRADABLE."""
    lim = _long_short(max_net=0.30)
    res = _held_chain(lim, [0.50, -0.10, 0.0], [0.50, -0.10, 0.0])
    assert res.approved.tolist() == [[0.50, -0.10, 0.0]]
    # nothing moved: no symbol code, no amount (a de-risk had been reported every bar)
    assert res.portfolio_reasons.tolist() == [NT | int(R.FORCED_DERISK)]
    assert not res.symbol_reasons.any()
    assert not any(v.any() for v in res.clipped.values())


def test_where_no_book_fits_the_proposal_sales_are_taken() -> None:
    """A halted 0.25 over its 0.20 cap, two tradable 0.20 (gross 0.65 over 0.50),
    turnover capped at 0.05: the proposal sells both. No book of the trade limits fits,
    but selling is what a forced de-risk may do past them: approved as proposed (the
    shrunk current book, 0.125 each, had been kept and coded GROSS_CAP)."""
    lim = _long_short(max_symbol_weight=0.20, max_gross=0.50, long_only=True, max_turnover=0.05)
    res = _held_chain(lim, [0.25, 0.20, 0.20], [0.25, 0.0, 0.0])
    assert res.approved.tolist() == [[0.25, 0.0, 0.0]]
    fd = int(R.FORCED_DERISK)
    assert res.symbol_reasons.tolist() == [[0, fd, fd]]
    assert res.clipped["FORCED_DERISK"] == pytest.approx([0.40])
    assert res.clipped["GROSS_CAP"].tolist() == [0.0]


def test_where_no_book_fits_a_sale_that_breaks_a_limit_is_not_taken() -> None:
    """The partial hedge above, the proposal closing it: that sale would raise the net
    from 0.40 to 0.50, so the hedge is kept (a forced de-risk may sell past the trade
    limits, not past a hard limit)."""
    lim = _long_short(max_net=0.30)
    res = _held_chain(lim, [0.50, -0.10, 0.0], [0.50, 0.0, 0.0])
    assert res.approved.tolist() == [[0.50, -0.10, 0.0]]
    assert res.symbol_reasons[0, 1] & NT


def test_a_sale_that_brings_the_book_inside_drops_not_tradable() -> None:
    """A halted 0.50 long, net cap 0.40, a -0.15 hedge and a +0.10 long that adds to the
    excess, turnover capped at 0.04: the proposal sells the long (past the turnover cap,
    as a forced de-risk may). The book is then inside every limit: only FORCED_DERISK is
    coded on the portfolio, not NOT_TRADABLE (no limit is left that no trade can fix)."""
    lim = _long_short(max_net=0.40, max_turnover=0.04)
    res = _held_chain(lim, [0.50, -0.15, 0.10], [0.50, -0.15, 0.0])
    assert res.approved.tolist() == [[0.50, -0.15, 0.0]]
    assert res.portfolio_reasons.tolist() == [int(R.FORCED_DERISK)]


def test_the_kept_book_is_the_one_gating_it_again_finds() -> None:
    """A fuzz case (long-only, beta tolerance 0.02): a halted 0.061 long over its 0.05
    cap and a halted -0.021 short hold the beta at 0.025, and no book of the proposal
    fits. The shrunk current book (beta 0.022) had been kept; gated again from itself,
    the chain found an in-limit book (beta 0.018), so the chain was not idempotent. The
    hard gates' repair of the kept book, the held names put back, is now taken."""
    import dataclasses

    from allocgym.costs import CostModel
    from allocgym.risk import GateContext, RiskGateChain, check_invariants

    lim = RiskLimits(
        max_symbol_weight=0.05, max_symbol_notional=361555.6915483316, max_gross=0.5,
        max_net=0.1, max_sector_gross=2.0, beta_tolerance=0.02, long_only=True,
        max_turnover=3.0, max_participation=1.0, slippage_budget_bps=5.0,
        regime_budget_multipliers={"high_volatility": 0.6, "uncertain": 0.8},
        regime_capacity_multipliers={"high_volatility": 0.5}, min_multiplier=0.0,
        max_multiplier=2.0,
    )  # fmt: skip
    cost = CostModel(
        commission_bps=0.27481486949905154, spread_mult=0.8843991136413533,
        impact_k=0.3520301805199216,
    )  # fmt: skip
    betas = [0.8131180938569039, 0.8688196163250161, 0.5503160852680029,
             1.1484570026151715, -0.7183768852913424]  # fmt: skip
    ctx = GateContext(
        current_weights=np.array([[0.0607622860184938, 0.0037886946298264276,
                                   0.10207051633180132, -0.021122707708342448,
                                   0.20331501832560459]]),
        equity=np.array([2263442.9659318975]),
        prices=np.array([[214.36665464264775, 419.70491968050845, 63.535525182560974,
                          94.22910866981842, 365.8787258121318]]),
        adv_notional=np.array([[382180.4680621728, 5518102057.61442, 425648.15259873704,
                                6894599737.428426, 8140213.375729482]]),
        volatility=np.array([[0.009382524431326346, 0.02105419054398875,
                              0.030811153188200754, 0.03455016812041702,
                              0.004089086669206938]]),
        spread_bps=np.array([[11.745408792531201, 29.634001639334283, 14.005268248647434,
                              9.233978803777461, 6.788066784867771]]),
        sector_ids=np.array([1, 1, 1, 1, 0]), regime=np.array([3]),
        tradable=np.array([[False, True, True, False, True]]), betas=np.array([betas]),
    )  # fmt: skip
    prop = np.array([[0.048039089258037265, 0.003484503278109974, 0.10207051633180132,
                      -0.0011998393175565837, 0.03204351332541401]])  # fmt: skip
    chain = RiskGateChain(lim, cost)
    res = chain.apply(prop, ctx)
    assert check_invariants(res, ctx, lim, cost).n_breaches == 0
    assert abs(float(res.approved[0] @ np.array(betas))) <= 0.02
    again = chain.apply(res.approved, dataclasses.replace(ctx, current_weights=res.approved))
    assert np.array_equal(again.approved, res.approved)
