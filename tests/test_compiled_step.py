"""The compiled fill / mark / score of the env step and the observation's book slots:
hand-computed books, an insolvent portfolio, a delisted name, and bit-for-bit parity with
the numpy statement of the same formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from allocgym import measures
from allocgym.compiled.cvar import book_cvar, cvar_order
from allocgym.compiled.step import (
    BOOK_ROWS,
    END_ROWS,
    SCORE_ROWS,
    fill_and_mark,
    score,
    write_book,
)
from allocgym.costs import CostModel, expected_cost

COMMISSION_ONLY = (0.0, 10.0, 0.0)  # spread_mult, commission_bps, impact_k: 10 bps linear


def _run(
    prices: np.ndarray,
    t1: np.ndarray,
    shares: np.ndarray,
    cash: np.ndarray,
    delta_qty: np.ndarray,
    *,
    cost: tuple[float, float, float] = COMMISSION_ONLY,
    delisted: np.ndarray | None = None,
    tradable: np.ndarray | None = None,
    equity: np.ndarray | None = None,
    peak: np.ndarray | None = None,
    approved: np.ndarray | None = None,
    proposed: np.ndarray | None = None,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    returns: np.ndarray | None = None,
    cvar: tuple[int, float] | None = None,
) -> dict[str, np.ndarray]:
    n_envs = shares.shape[0]
    ones = np.ones_like(prices)
    adv, vol, spread = tables if tables is not None else (ones * 1e9, ones * 0.02, ones * 5.0)
    equity = np.full(n_envs, 1000.0) if equity is None else equity
    peak = equity if peak is None else peak
    approved = np.zeros_like(shares) if approved is None else approved
    proposed = approved if proposed is None else proposed
    returns = prices * 0.0 + 0.01 if returns is None else returns
    tradable = np.ones(prices.shape, bool) if tradable is None else tradable
    dq, new_shares, weights, book = fill_and_mark(
        prices, t1, shares, cash, delta_qty, tradable, adv, vol, spread, cost, delisted,
        equity, peak, approved, proposed, 1e-12, returns, cvar,
    )  # fmt: skip
    out = dict(zip(BOOK_ROWS, book, strict=True))
    out.update(delta_qty=dq, shares=new_shares, weights=weights)
    return out


def test_fill_pays_the_commission_from_cash_and_marks_the_book() -> None:
    prices = np.array([[9.0, 19.0], [10.0, 20.0]])
    out = _run(
        prices,
        np.array([1]),
        np.array([[10.0, 0.0]]),
        np.array([1000.0]),
        np.array([[0.0, 5.0]]),
        equity=np.array([1000.0]),
        peak=np.array([1200.0]),
        approved=np.array([[0.1, 0.1]]),
        proposed=np.array([[0.3, 0.0]]),
    )
    # value before the trade 1000 + 10 * 10 = 1100; 5 shares at 20 = 100 traded
    assert out["turnover"][0] == pytest.approx(100.0 / 1100.0, rel=1e-15)
    assert out["cost"][0] == pytest.approx(100.0 / 1100.0 * 1e-3, rel=1e-15)
    assert out["cash"][0] == pytest.approx(1000.0 - 100.0 - 0.1, rel=1e-15)
    assert out["equity"][0] == pytest.approx(1099.9, rel=1e-15)
    assert out["peak"][0] == 1200.0
    assert out["drawdown"][0] == pytest.approx(1.0 - 1099.9 / 1200.0, rel=1e-14)
    assert out["net_return"][0] == pytest.approx(0.0999, rel=1e-12)
    assert out["growth"][0] == pytest.approx(1.0999, rel=1e-15)
    np.testing.assert_allclose(out["weights"], [[100.0 / 1099.9, 100.0 / 1099.9]], rtol=1e-15)
    assert out["gross"][0] == pytest.approx(200.0 / 1099.9, rel=1e-15)
    assert out["cash_fraction"][0] == pytest.approx(899.9 / 1099.9, rel=1e-15)
    assert out["intervention"][0] == pytest.approx(0.3, rel=1e-15)
    np.testing.assert_array_equal(out["shares"], [[10.0, 5.0]])
    np.testing.assert_array_equal(out["delta_qty"], [[0.0, 5.0]])
    assert np.isnan(out["cvar"][0])  # no ex-ante CVaR asked for


def test_a_book_worth_nothing_trades_nothing_and_terminates() -> None:
    prices = np.array([[10.0, 10.0], [10.0, 10.0]])
    out = _run(
        prices,
        np.array([1, 1]),
        np.array([[-100.0, 0.0], [0.0, 0.0]]),
        np.array([500.0, 1000.0]),
        np.array([[100.0, 10.0], [0.0, 10.0]]),
        peak=np.array([1000.0, 1000.0]),
    )
    np.testing.assert_array_equal(out["delta_qty"][0], [0.0, 0.0])
    assert out["cost"][0] == 0.0 and out["turnover"][0] == 0.0
    assert out["cash"][0] == 500.0
    assert out["equity"][0] == -500.0
    np.testing.assert_array_equal(out["weights"][0], [-1000.0, 0.0])  # marked at 1
    assert out["cash_fraction"][0] == 0.0 and out["drawdown"][0] == 1.0
    assert out["growth"][0] == 1e-12  # floored before the log
    # the solvent row beside it fills
    np.testing.assert_array_equal(out["delta_qty"][1], [0.0, 10.0])
    book = np.array([out[name] for name in BOOK_ROWS])
    returns = np.zeros((2, 10))
    _, _, _, ends = score(
        book, np.log(book[BOOK_ROWS.index("growth")]), np.zeros(2), returns, np.zeros(2, bool),
        np.zeros(2, np.int64), np.ones(2, np.int64),
        (np.zeros((2, 7)), np.zeros((2, 3), np.int64), np.zeros((2, 2), np.int64)),
        np.zeros((2, 3), np.int64), np.zeros(2, np.int8), (0.0, 0.0, 0.0, 0.0), 10, 100, 0.5,
    )  # fmt: skip
    np.testing.assert_array_equal(returns[:, 0], book[BOOK_ROWS.index("net_return")])
    flags = dict(zip(END_ROWS, ends, strict=True))
    np.testing.assert_array_equal(flags["terminated"], [True, False])
    np.testing.assert_array_equal(flags["truncated"], [False, False])
    np.testing.assert_array_equal(flags["kill"], [True, False])


def test_a_delisted_position_becomes_cash_at_its_last_price() -> None:
    prices = np.array([[10.0, 20.0], [12.0, 20.0]])
    delisted = np.array([[False, False], [True, False]])
    out = _run(
        prices,
        np.array([1, 1]),
        np.array([[5.0, 1.0], [0.0, 1.0]]),
        np.array([100.0, 100.0]),
        np.array([[0.0, 0.0], [0.0, 0.0]]),
        delisted=delisted,
        equity=np.array([170.0, 120.0]),
    )
    np.testing.assert_array_equal(out["shares"], [[0.0, 1.0], [0.0, 1.0]])
    np.testing.assert_array_equal(out["cash"], [100.0 + 5.0 * 12.0, 100.0])
    np.testing.assert_array_equal(out["equity"], [180.0, 120.0])
    np.testing.assert_array_equal(out["weights"], [[0.0, 20.0 / 180.0], [0.0, 20.0 / 120.0]])


def test_an_order_in_a_symbol_halted_at_the_fill_bar_is_cancelled() -> None:
    """Decided where the symbol traded, filled where it is halted: that order does not
    fill (no notional, no cost), the others do; the halted position is held and marked."""
    prices = np.array([[10.0, 20.0], [11.0, 20.0]])
    tradable = np.array([[True, True], [False, True]])
    out = _run(
        prices,
        np.array([1]),
        np.array([[10.0, 0.0]]),
        np.array([1000.0]),
        np.array([[-10.0, 5.0]]),
        tradable=tradable,
        equity=np.array([1100.0]),
    )
    np.testing.assert_array_equal(out["delta_qty"], [[0.0, 5.0]])
    np.testing.assert_array_equal(out["shares"], [[10.0, 5.0]])
    # value before the trade 1000 + 10 * 11 = 1110; only 5 x 20 = 100 traded
    assert out["turnover"][0] == pytest.approx(100.0 / 1110.0, rel=1e-15)
    assert out["cash"][0] == pytest.approx(1000.0 - 100.0 - 0.1, rel=1e-15)
    assert out["equity"][0] == pytest.approx(1000.0 - 100.1 + 110.0 + 100.0, rel=1e-15)


def test_an_order_with_no_volume_to_fill_against_is_cancelled() -> None:
    """The gates passed the order on the decision bar's ADV; at the fill bar the trailing
    window holds no traded volume (ADV 0, or NaN): with impact on, its cost would be
    sqrt(traded / 0) = inf and the book -inf. It does not fill; the other order does."""
    prices = np.array([[10.0, 20.0], [11.0, 20.0]])
    for dry in (0.0, np.nan):
        adv = np.array([[1e6, 1e6], [dry, 1e6]])
        out = _run(
            prices,
            np.array([1]),
            np.array([[0.0, 0.0]]),
            np.array([1000.0]),
            np.array([[10.0, 5.0]]),
            cost=(5.0, 1.0, 0.5),
            tables=(adv, np.full_like(prices, 0.02), np.full_like(prices, 5.0)),
        )
        np.testing.assert_array_equal(out["delta_qty"], [[0.0, 5.0]])
        assert np.isfinite(out["cost"][0]) and out["cost"][0] > 0.0
        assert np.isfinite(out["equity"][0]) and 990.0 < out["equity"][0] < 1000.0


def _ex_ante_cvar(
    returns: np.ndarray, first: np.ndarray, approved: np.ndarray, window: int, alpha: float
) -> np.ndarray:
    """The step's ex-ante CVaR of ``approved`` over ``returns[first : first + window]``:
    a step that trades nothing, filled at bar ``first + window``."""
    n_envs, n_assets = approved.shape
    prices = np.ones((returns.shape[0] + 1, n_assets))
    none = np.zeros((n_envs, n_assets))
    out = _run(
        prices, first + window, none, np.full(n_envs, 1000.0), none, approved=approved,
        returns=returns, cvar=(window, alpha),
    )  # fmt: skip
    return out["cvar"]


def _cvar_ref(
    returns: np.ndarray, first: np.ndarray, weights: np.ndarray, window: int, alpha: float
) -> np.ndarray:
    """The ex-ante CVaR one Python float at a time: each scenario summed over the assets in
    order, then the tail of :func:`allocgym.measures.cvar` (``k = (1 - alpha) window``
    scenarios, the ``i`` worst whole, summed from the worst up, and the next at weight
    ``k - i``)."""
    k = (1.0 - alpha) * window
    i = max(0, math.ceil(k) - 1)
    out = []
    for b, row0 in enumerate(first):
        scen = []
        for j in range(window):
            s = 0.0
            for r, w in zip(returns[row0 + j], weights[b], strict=True):
                s += float(r) * float(w)
            scen.append(s)
        worst = sorted(scen)
        if any(math.isnan(s) for s in scen):
            out.append(math.nan)
        elif alpha == 1.0:
            out.append(-worst[0])
        else:
            tail = 0.0
            for s in worst[:i]:
                tail += s
            out.append(-tail / k + worst[i] * (i / k - 1.0))
    return np.array(out)


def _windows(returns: np.ndarray, first: np.ndarray, window: int) -> np.ndarray:
    return returns[first[:, None] + np.arange(window)]


@pytest.mark.parametrize("n_assets", [1, 20, 90])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.95, 0.99, 1.0])
def test_ex_ante_cvar_is_measures_cvar_of_the_scenarios(n_assets: int, alpha: float) -> None:
    rng = np.random.default_rng(n_assets)
    returns = rng.normal(0.0, 0.02, (300, n_assets))
    window = 63
    first = rng.integers(0, 300 - window, 200)
    w = rng.uniform(-0.3, 0.3, (200, n_assets))
    scen = np.einsum("bwn,bn->bw", _windows(returns, first, window), w)
    want = measures.cvar(scen, alpha)
    got = _ex_ante_cvar(returns, first, w, window, alpha)
    # only the summation order differs: bounded by the magnitude of the summed terms
    mag = np.einsum("bwn,bn->bw", np.abs(_windows(returns, first, window)), np.abs(w))
    assert np.all(np.abs(got - want) <= 1e-12 * mag.max(axis=1))


def test_ex_ante_cvar_rows_do_not_depend_on_the_batch_and_nan_is_kept() -> None:
    rng = np.random.default_rng(1)
    returns = rng.normal(0.0, 0.02, (200, 20))
    first = rng.integers(0, 100, 30)
    w = rng.uniform(-0.2, 0.2, (30, 20))
    w[4, 3] = np.nan
    batch = _ex_ante_cvar(returns, first, w, 63, 0.95)
    single = [
        _ex_ante_cvar(returns, first[i : i + 1], w[i : i + 1], 63, 0.95)[0] for i in range(30)
    ]
    assert np.array_equal(batch, np.array(single), equal_nan=True)
    assert np.isnan(batch[4]) and np.isfinite(np.delete(batch, 4)).all()


def test_ex_ante_cvar_by_hand() -> None:
    # window 4, alpha 0.5: k = 2, i = 1; CVaR = -(worst + 1 * second worst) / 2
    returns = np.array([[0.01], [-0.03], [0.02], [-0.01]])
    got = _ex_ante_cvar(returns, np.array([0]), np.array([[2.0]]), 4, 0.5)
    assert got[0] == pytest.approx((0.06 + 0.02) / 2, rel=1e-15)
    assert _ex_ante_cvar(returns, np.array([0]), np.array([[2.0]]), 4, 1.0)[0] == 0.06


def test_book_cvar_is_the_step_cvar_of_one_book() -> None:
    """``book_cvar`` (the audit's CVaR) has the step's bits for every book and window."""
    rng = np.random.default_rng(7)
    returns = rng.normal(0.0, 0.02, (200, 20))
    first = rng.integers(0, 137, 40)
    w = rng.uniform(-0.2, 0.3, (40, 20))
    for alpha in (0.5, 0.95, 1.0):
        step = _ex_ante_cvar(returns, first, w, 63, alpha)
        one = [book_cvar(returns[r : r + 63], w[b], alpha) for b, r in enumerate(first)]
        assert np.array_equal(step, np.array(one))


@pytest.mark.parametrize("shape", [(63,), (63, 19), (1, 63, 20)])
def test_book_cvar_refuses_mismatched_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"ex-ante CVaR: returns of shape .* one weight per"):
        book_cvar(np.zeros(shape), np.zeros(20), 0.95)


@pytest.mark.parametrize("window, alpha", [(0, 0.95), (63, 1.5), (63, -0.1)])
def test_ex_ante_cvar_refuses_bad_settings(window: int, alpha: float) -> None:
    with pytest.raises(ValueError, match="ex-ante CVaR"):
        cvar_order(window, alpha)


def _numpy_step(args: dict, model: CostModel) -> dict[str, np.ndarray]:
    """The same formulas as numpy statements over the batch."""
    p1 = args["prices"][args["t1"]]
    value_pre = args["cash"] + (args["shares"] * p1).sum(axis=1)
    solvent = value_pre > 0.0
    dq = np.where(solvent[:, None] & args["tradable"][args["t1"]], args["delta_qty"], 0.0)
    eq_pre = np.where(solvent, value_pre, 1.0)
    notional = dq * p1
    trade_w = notional / eq_pre[:, None]
    rows = args["t1"]
    cost = expected_cost(
        trade_w, eq_pre[:, None], args["adv"][rows], args["vol"][rows], args["spread"][rows], model
    ).sum(axis=1)
    shares = args["shares"] + dq
    cash = args["cash"] - notional.sum(axis=1) - cost * eq_pre
    gone = args["delisted"][rows] & (shares != 0.0)
    if gone.any():
        cash = cash + np.where(gone, shares * p1, 0.0).sum(axis=1)
        shares = np.where(gone, 0.0, shares)
    held = shares * p1
    equity = cash + held.sum(axis=1)
    peak = np.maximum(args["peak"], equity)
    growth = equity / args["equity"]
    pos = equity > 0.0
    marked = np.where(pos, equity, 1.0)
    weights = held / marked[:, None]
    diff = np.abs(args["approved"] - args["proposed"]).sum(axis=1)
    window, alpha = args["cvar"]
    return {
        "delta_qty": dq,
        "shares": shares,
        "weights": weights,
        "cost": cost,
        "cash": cash,
        "equity": equity,
        "peak": peak,
        "growth": np.maximum(growth, 1e-12),
        "net_return": growth - 1.0,
        "drawdown": np.where(pos, 1.0 - equity / peak, 1.0),
        "cash_fraction": np.where(pos, cash / marked, 0.0),
        "turnover": np.abs(trade_w).sum(axis=1),
        "intervention": np.where(np.isfinite(diff), diff, np.abs(args["approved"]).sum(axis=1)),
        "gross": np.abs(weights).sum(axis=1),
        "net": weights.sum(axis=1),
        "cvar": _cvar_ref(args["returns"], rows - window, args["approved"], window, alpha),
    }


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("n_envs", "n_assets"), [(1, 1), (7, 20), (33, 9), (5, 300)])
def test_kernel_matches_the_numpy_formulas_bit_for_bit(
    seed: int, n_envs: int, n_assets: int
) -> None:
    rng = np.random.default_rng(seed)
    n_bars = 40
    prices = rng.uniform(5.0, 50.0, (n_bars, n_assets))
    shares = rng.normal(0.0, 20.0, (n_envs, n_assets)).round()
    shares[rng.random((n_envs, n_assets)) < 0.3] = 0.0
    cash = rng.normal(1e4, 8e3, n_envs)  # some books worth nothing before the trade
    proposed = rng.normal(0.0, 0.2, (n_envs, n_assets))
    proposed[rng.random((n_envs, n_assets)) < 0.05] = np.nan  # invalid proposals
    args = {
        "prices": prices,
        "t1": rng.integers(30, n_bars, n_envs),
        "shares": shares,
        "cash": cash,
        "delta_qty": rng.normal(0.0, 10.0, (n_envs, n_assets)).round(),
        "tradable": rng.random((n_bars, n_assets)) < 0.9,
        "adv": rng.uniform(1e5, 1e7, (n_bars, n_assets)),
        "vol": rng.uniform(0.0, 0.05, (n_bars, n_assets)),
        "spread": rng.uniform(0.0, 20.0, (n_bars, n_assets)),
        "delisted": rng.random((n_bars, n_assets)) < 0.1,
        "equity": rng.uniform(5e3, 2e4, n_envs),
        "peak": rng.uniform(1e4, 3e4, n_envs),
        "approved": rng.normal(0.0, 0.2, (n_envs, n_assets)),
        "proposed": proposed,
        "returns": rng.normal(0.0, 0.02, (n_bars, n_assets)),
        "cvar": (int(rng.integers(1, 25)), float(rng.choice([0.0, 0.9, 0.95, 1.0]))),
    }
    model = CostModel(spread_mult=1.5, commission_bps=2.0, impact_k=0.1)
    dq, shares_out, weights, book = fill_and_mark(
        args["prices"], args["t1"], args["shares"], args["cash"], args["delta_qty"],
        args["tradable"], args["adv"], args["vol"], args["spread"],
        (model.spread_mult, model.commission_bps, model.impact_k), args["delisted"],
        args["equity"], args["peak"], args["approved"], args["proposed"], 1e-12,
        args["returns"], args["cvar"],
    )  # fmt: skip
    got = dict(zip(BOOK_ROWS, book, strict=True))
    got.update(delta_qty=dq, shares=shares_out, weights=weights)
    want = _numpy_step(args, model)
    assert got.keys() == want.keys()
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name, strict=True)

    log_growth = np.log(got["growth"])
    cvar = got["cvar"]
    totals = rng.normal(0.0, 1.0, (n_envs, 7))
    reason_totals = rng.integers(0, 50, (n_envs, 6))
    counts = rng.integers(0, n_assets + 1, (n_envs, 6))
    regime_totals = rng.integers(0, 50, (n_envs, 4))
    regime = rng.integers(0, 4, n_envs).astype(np.int8)
    kill = rng.random(n_envs) < 0.2
    steps = rng.integers(0, 11, n_envs)
    t1 = args["t1"] + 1
    returns = rng.normal(0.0, 1.0, (n_envs, 11))
    want_returns = returns.copy()
    want_returns[np.arange(n_envs), steps] = got["net_return"]
    weights4 = (0.5, 0.01, 0.002, 0.1)
    scored, sums, steps1, ends = score(
        book, log_growth, cvar, returns, kill, steps, t1,
        (totals, reason_totals, regime_totals), counts, regime, weights4, 10, 38, 0.25,
    )  # fmt: skip
    np.testing.assert_array_equal(returns, want_returns)
    penalised = (cvar, got["intervention"], got["turnover"], got["drawdown"])
    penalties = [w * x for w, x in zip(weights4, penalised, strict=True)]
    reward = log_growth - penalties[0] - penalties[1] - penalties[2] - penalties[3]
    for name, value in zip(SCORE_ROWS, (*penalties, reward), strict=True):
        np.testing.assert_array_equal(scored[SCORE_ROWS.index(name)], value, err_msg=name)
    step_terms = [got["cost"], got["turnover"], got["gross"], got["net"]]
    step_terms += [got["intervention"], log_growth, reward]
    np.testing.assert_array_equal(sums[0], totals + np.array(step_terms).T)
    np.testing.assert_array_equal(sums[1], reason_totals + counts, strict=True)
    one_hot = regime[:, None] == np.arange(4)
    np.testing.assert_array_equal(sums[2], regime_totals + one_hot, strict=True)
    np.testing.assert_array_equal(steps1, steps + 1, strict=True)
    terminated = kill | ~(got["equity"] > 0.0)
    truncated = ~terminated & ((steps + 1 >= 10) | (t1 >= 38))
    np.testing.assert_array_equal(ends, [terminated, truncated, got["drawdown"] >= 0.25])
    with pytest.raises(IndexError, match="past the end of its episode"):
        score(
            book, log_growth, cvar, returns[:, :3], kill, steps + 3, t1,
            (totals, reason_totals, regime_totals), counts, regime, weights4, 10, 38, 0.25,
        )  # fmt: skip


@pytest.mark.parametrize(("n_envs", "n_assets", "n_feats"), [(1, 1, 2), (9, 20, 4), (3, 200, 3)])
def test_write_book_is_the_clipped_numpy_statement(
    n_envs: int, n_assets: int, n_feats: int
) -> None:
    rng = np.random.default_rng(n_assets)
    clip = 5.0
    obs = rng.normal(0.0, 1.0, (n_envs, n_assets * n_feats + 12)).astype(np.float32)
    weights = rng.normal(0.0, 4.0, (n_envs, n_assets))
    weights[rng.random((n_envs, n_assets)) < 0.1] = np.nan
    gross, net = np.abs(weights).sum(axis=1), weights.sum(axis=1)
    drawdown, cash = rng.uniform(-0.5, 1.5, n_envs), rng.normal(0.0, 8.0, n_envs)
    book_col = n_assets * n_feats + 5
    want = obs.copy()
    want[:, n_feats - 1 : n_assets * n_feats : n_feats] = np.clip(weights, -clip, clip)
    book = np.array([gross, net, drawdown, cash]).T
    bounds = ([-clip, -clip, 0.0, -clip], [clip, clip, 1.0, clip])
    want[:, book_col : book_col + 4] = np.clip(book, *bounds)
    write_book(obs, weights, gross, net, drawdown, cash, clip, n_feats, book_col)
    np.testing.assert_array_equal(obs, want, strict=True)
