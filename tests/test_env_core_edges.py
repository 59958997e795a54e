"""Edges of the batched env core that the main env tests do not reach: the held target
and the ``working`` flag on bars that are no decision, ``finish_interval`` over two bars
and up to a termination, the factor gate's loadings, the vol-spike and spread-blowout
triggers (the per-bar table and their effect on execution), the ex-ante CVaR window,
the tilt prior of the last start bar, episode metrics of a long/short book and of a
one-step episode, and the refusal of budgets actions in ``action_weights``.

Every test builds its own params (no module-scoped params fixture).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from gate_books import ENV_RISK

from allocgym.config import AllocgymConfig, config_from_dict
from allocgym.data import MarketData, synthetic
from allocgym.envs import EnvParams, core
from allocgym.errors import ConfigError
from allocgym.execution import ExecutionParams, TriggerFlag, next_working, trigger_inputs
from allocgym.features import FeatureBuilder, dcc_mean_correlation
from allocgym.regime import RegimeModel
from allocgym.risk import ReasonCode


def _cfg(risk: dict | None = None, execution: dict | None = None, **env) -> AllocgymConfig:
    return config_from_dict(
        {
            "env": {"split": "all", "episode_length": 10, **env},
            "risk": {**ENV_RISK, **(risk or {})},
            "execution": execution or {},
        }
    )


@pytest.fixture(scope="module")
def market() -> MarketData:
    """Three assets, 400 bars: the features' 301-bar warm-up leaves 99 decision bars."""
    return synthetic(n_assets=3, n_days=400, seed=1, n_sectors=3)


def _market(returns: np.ndarray, spread_bps: np.ndarray) -> MarketData:
    """A market whose closes compound ``returns`` from 100 (one sector per name, every
    name tradable, a volume of 1e9 shares a bar)."""
    n, n_assets = returns.shape
    return MarketData(
        dates=pd.bdate_range("2001-01-01", periods=n).to_numpy(dtype="datetime64[ns]"),
        symbols=tuple(f"S{i}" for i in range(n_assets)),
        close=100.0 * np.cumprod(1.0 + returns, axis=0),
        volume=np.full((n, n_assets), 1e9),
        spread_bps=spread_bps,
        sectors=tuple(f"s{i}" for i in range(n_assets)),
        benchmark_returns=returns.mean(axis=1),
        tradable=np.ones((n, n_assets), dtype=bool),
    )


def _calm_returns(n: int, seed: int) -> np.ndarray:
    """Two names, ``n`` bars of returns with sd 0.3% (0 at bar 0)."""
    returns = np.random.default_rng(seed).normal(0.0, 0.003, (n, 2))
    returns[0] = 0.0
    return returns


# ----------------------------------------------------------- held bars (decision_interval)


def test_a_held_bar_keeps_the_last_decisions_target_in_the_state(market):
    """``env.decision_interval = 2``: the bar after a decision proposes the drifted book
    (nothing to trade), and the state's ``held`` stays the decision's target, not that
    drifted book; the next due bar reads the agent's action again."""
    p = EnvParams.from_config(market, _cfg(decision_interval=2))
    state, _ = core.reset(p, core.seed_keys([0, 1]), start=np.array([p.lo, p.lo + 7]))
    rng = np.random.default_rng(0)
    action = rng.uniform(-1, 1, (2, p.action_spec.action_dim))
    first = core.step(p, state, action)
    target = p.action_spec.to_weights(action)
    assert np.array_equal(first.info["proposed"], target)
    assert np.array_equal(first.state.held, target)
    assert first.state.working.tolist() == [False, False]  # the loose limits cut nothing
    assert first.info["delta_qty"].any()

    # bar 2 is no decision: the action is not read, the proposal is the drifted book
    drifted = core.current_weights(p, first.state)
    assert not np.allclose(drifted, target, rtol=0, atol=1e-6)  # prices moved the book
    second = core.step(p, first.state, np.ones_like(action))
    assert np.array_equal(second.info["proposed"], drifted)
    assert not second.info["delta_qty"].any()
    assert np.array_equal(second.state.held, target)  # still the last decision's target
    assert second.state.working.tolist() == [False, False]

    # bar 3 is due again: the new action is read and becomes the held target
    third = core.step(p, second.state, -action)
    assert np.array_equal(third.info["proposed"], p.action_spec.to_weights(-action))
    assert np.array_equal(third.state.held, p.action_spec.to_weights(-action))


def test_a_trade_limit_cut_on_a_bar_that_is_no_decision_does_not_start_working(market):
    """``step_proposed(..., due=...)``: both portfolios propose the same book from cash and
    the turnover cap (0.2) cuts both trades. The due one keeps that book as its target and
    goes on trading towards it (``working``); the other's cut proposal was no decision, so
    it keeps its held target (none: zeros) and does not start working, and on the next
    held bar it proposes its current book."""
    p = EnvParams.from_config(market, _cfg(risk={"max_turnover": 0.2}, decision_interval=3))
    state, _ = core.reset(p, core.seed_keys([0, 1]), start=np.array([p.lo, p.lo]))
    book = np.full((2, 3), 0.3)
    res = core.step_proposed(p, state, book, due=np.array([True, False]))
    turnover_cap = int(ReasonCode.TURNOVER_CAP)
    assert (res.info["portfolio_reasons"] & turnover_cap != 0).tolist() == [True, True]
    # the gates approved a fifth of the way from cash (turnover 0.2 of the 0.9 asked)
    assert np.abs(res.info["approved"]).sum(axis=1) == pytest.approx([0.2, 0.2], rel=1e-9)
    assert res.state.working.tolist() == [True, False]
    assert np.array_equal(res.state.held, [[0.3, 0.3, 0.3], [0.0, 0.0, 0.0]])

    # the next bar is no decision for either (steps = 1, interval 3): the hold rule
    nxt = core.step(p, res.state, np.zeros((2, p.action_spec.action_dim)))
    assert np.array_equal(nxt.info["proposed"][0], book[0])  # still trading towards it
    assert np.array_equal(nxt.info["proposed"][1], core.current_weights(p, res.state)[1])
    assert nxt.info["delta_qty"][0].any() and not nxt.info["delta_qty"][1].any()


def test_next_working_by_hand():
    """``next_working``: ``cut`` is a trade-limit bit (``TRADE_LIMITS``) on the portfolio
    or on any symbol; the result is ``cut`` when every portfolio decided (``due=None``)
    and ``(due | working) & cut`` otherwise. Other codes (caps, bands) are no cut."""
    turnover = int(ReasonCode.TURNOVER_CAP)
    slippage = int(ReasonCode.SLIPPAGE_BUDGET)
    participation = int(ReasonCode.PARTICIPATION_CAP)
    sym_turnover = int(ReasonCode.SYMBOL_TURNOVER_CAP)
    sym_slippage = int(ReasonCode.SYMBOL_SLIPPAGE_BUDGET)
    symbol_cap = int(ReasonCode.SYMBOL_CAP)
    band = int(ReasonCode.NO_TRADE_BAND)
    gross = int(ReasonCode.GROSS_CAP)
    portfolio = np.array([turnover, slippage, 0, 0, 0, gross, 0, 0], dtype=np.int64)
    symbols = np.zeros((8, 3), dtype=np.int64)
    symbols[2, 1] = participation | symbol_cap
    symbols[3, 2] = sym_turnover
    symbols[4, 0] = sym_slippage
    symbols[5] = symbol_cap
    symbols[6] = band
    cut = [True, True, True, True, True, False, False, False]
    assert next_working(None, np.zeros(8, bool), portfolio, symbols).tolist() == cut
    # the same cuts with every (due, working) pair: only due or working rows keep working
    for due in (False, True):
        for working in (False, True):
            got = next_working(np.full(8, due), np.full(8, working), portfolio, symbols).tolist()
            assert got == [c and (due or working) for c in cut], (due, working)
    mixed = next_working(
        np.array([True, False, False, True]),
        np.array([False, True, False, False]),
        np.array([turnover, turnover, turnover, 0], dtype=np.int64),
        np.zeros((4, 2), dtype=np.int64),
    )
    assert mixed.tolist() == [True, True, False, False]


def test_finish_interval_of_two_steps_both_bars(market):
    """``decision_interval = 2``: one transition is the decision bar and the held bar
    after it (two bars, rewards summed); with interval 1 the decision step is returned as
    it is."""
    p = EnvParams.from_config(market, _cfg(decision_interval=2))
    state, _ = core.reset(p, core.seed_keys([3]), start=np.array([p.lo + 2]))
    action = np.full((1, p.action_spec.action_dim), 0.5)
    first = core.step(p, state, action)
    held = core.step(p, first.state.copy(), action)  # the held bar, stepped by hand
    out = core.finish_interval(p, first)
    assert out.info["bars"].tolist() == [2]
    assert out.state.t.tolist() == [p.lo + 4] and out.state.steps.tolist() == [2]
    assert out.reward[0] == first.reward[0] + held.reward[0]
    assert np.array_equal(out.obs, held.obs)

    one = EnvParams.from_config(market, _cfg())
    state, _ = core.reset(one, core.seed_keys([3]), start=np.array([one.lo + 2]))
    first = core.step(one, state, action)
    assert core.finish_interval(one, first) is first


def test_finish_interval_stops_at_a_termination_on_a_held_bar(market):
    """``decision_interval = 3``: a portfolio whose drawdown reaches the kill level at the
    decision bar's fill is flattened and terminated on the next (held) bar; the transition
    ends there (2 bars, ``terminated``), it does not step on to the next decision."""
    p = EnvParams.from_config(market, _cfg(decision_interval=3))
    state, _ = core.reset(p, core.seed_keys([0]), start=np.array([p.lo + 1]))
    # a peak ten times the equity: a 90% drawdown, past env.drawdown_kill = 0.5
    state = dataclasses.replace(state, peak=state.equity * 10.0)
    first = core.step(p, state, np.zeros((1, p.action_spec.action_dim)))
    assert first.state.kill.tolist() == [True] and not first.terminated[0]
    out = core.finish_interval(p, first)
    assert out.terminated.tolist() == [True] and out.truncated.tolist() == [False]
    assert out.info["bars"].tolist() == [2] and out.state.t.tolist() == [p.lo + 3]
    assert not out.state.shares.any()  # flattened by the kill switch


# ----------------------------------------------------------- gate context


def test_the_factor_gate_reads_the_loadings_of_the_decision_bar(market):
    """With ``risk.max_factor_exposure`` the gate context carries the loadings of each
    portfolio's bar ``t``, and the factor gate scales the whole proposal by
    ``cap / |B_t^T w|`` where the exposure is over the cap (``FACTOR_CAP``)."""
    cap = 0.2
    p = EnvParams.from_config(market, _cfg(risk={"max_factor_exposure": cap}))
    t0 = p.lo + 3
    state, _ = core.reset(p, core.seed_keys([0]), start=np.array([t0]))
    book = np.full(3, 0.3)
    loadings = p.factor_loadings[t0]  # (n_assets, n_factors)
    exposure = np.abs(loadings.T @ book)
    assert exposure.max() > cap  # the design: the proposal is over the cap
    res = core.step_proposed(p, state, book[None, :])
    assert np.array_equal(res.decision.context.factor_loadings[0], loadings)
    assert res.info["portfolio_reasons"][0] & int(ReasonCode.FACTOR_CAP)
    expected = book * cap / exposure.max()
    assert np.allclose(res.info["approved"][0], expected, rtol=1e-9, atol=0)


def test_an_unreadable_proposal_leaves_the_other_rows_intervention_alone(market):
    """Row 0 proposes a NaN: the gates keep its current book (``INVALID_INPUT``) and its
    intervention is that book's L1 (the distance to a NaN proposal is undefined). Row 1's
    intervention stays its own ``|approved - proposed|`` and its reward is what it gets
    stepped alone: a bad row in the batch changes nothing for the others."""
    p = EnvParams.from_config(market, _cfg())
    state, _ = core.reset(p, core.seed_keys([0, 1]), start=np.array([p.lo + 1, p.lo + 1]))
    state = core.step_proposed(p, state, np.full((2, 3), 0.3)).state
    t = state.t[0]
    held = state.shares[0] * p.prices[t] / state.equity[0]  # row 0's book at t
    proposed = np.array([[np.nan, 0.2, 0.2], [0.2, 0.3, 0.1]])
    alone = core.step_proposed(p, state.take([1]), proposed[1:])
    res = core.step_proposed(p, state, proposed)
    approved = res.info["approved"]
    assert res.info["portfolio_reasons"][0] & int(ReasonCode.INVALID_INPUT)
    assert np.allclose(approved[0], held, rtol=1e-12, atol=0)
    assert res.info["intervention"][0] == np.abs(approved[0]).sum()
    assert res.info["intervention"][1] == np.abs(approved[1] - proposed[1]).sum()
    assert res.info["intervention"][1] == alone.info["intervention"][0]
    assert res.reward[1] == alone.reward[0]


def test_the_regime_config_reaches_the_features(market):
    """``regime.*`` configures the env's regime model: a 126-bar volatility lookback
    (default 252) shortens the features' warm-up, so the first decision bar, and the
    regime path is that of ``RegimeModel(cfg.regime)``."""
    cfg = config_from_dict({"env": {"split": "all"}, "regime": {"vol_lookback": 126}})
    p = EnvParams.from_config(market, cfg)
    own = FeatureBuilder(cfg.features, RegimeModel(cfg.regime))
    default = FeatureBuilder(cfg.features, RegimeModel())
    assert own.history < default.history
    assert p.lo == own.history - 1
    assert np.array_equal(p.features.regime, own.precompute(market).regime)


def test_the_mean_correlation_slot_is_the_configured_estimator(market):
    """``features.mean_correlation``: with the default EWMA model the observation's slot
    holds the feature builder's own EWMA estimate; with ``correlation_model = dcc_garch``
    it holds the DCC series fitted on the ``dcc_fit_bars`` (here 260) bars before the
    first decision bar."""
    features = {"mean_correlation": True}
    ewma = EnvParams.from_config(
        market, config_from_dict({"env": {"split": "all"}, "features": features})
    )
    slot = ewma.obs_dim - 1
    bars = np.array([ewma.lo, ewma.lo + 40])
    _, obs = core.reset(ewma, core.seed_keys([0, 1]), start=bars)
    own = FeatureBuilder(ewma.cfg.features, RegimeModel(ewma.cfg.regime)).precompute(market)
    assert np.array_equal(obs[:, slot], own.template[bars, slot].astype(np.float32))

    features = {**features, "correlation_model": "dcc_garch", "dcc_fit_bars": 260}
    dcc = EnvParams.from_config(
        market, config_from_dict({"env": {"split": "all"}, "features": features})
    )
    _, obs = core.reset(dcc, core.seed_keys([0, 1]), start=bars)
    expected = dcc_mean_correlation(market.returns, dcc.lo, 260)
    assert np.array_equal(obs[:, slot], expected[bars].astype(np.float32))
    assert not np.array_equal(obs[:, slot], own.template[bars, slot].astype(np.float32))


# ----------------------------------------------------------- risk-override triggers


_CALM, _BLOWOUT, _SPIKE = 305, 310, 330
"""Decision bars of the trigger market: nothing unusual, a spread blowout, a vol spike."""


def _trigger_market() -> MarketData:
    """Two names, 340 bars of calm returns with quoted spreads of 5 bps, except a 50 bps
    spread on both names at bar ``_BLOWOUT`` and returns of +-4% on both names in the five
    bars ending at ``_SPIKE``."""
    returns = _calm_returns(340, seed=3)
    returns[_SPIKE - 4 : _SPIKE + 1] = np.array([0.04, -0.04, 0.04, -0.04, 0.04])[:, None]
    spread = np.full((340, 2), 5.0)
    spread[_BLOWOUT] = 50.0
    return _market(returns, spread)


def test_vol_spike_and_spread_blowout_let_a_scheduled_only_book_trade():
    """``execution.scheduled_only`` with no scheduled window after bar 0: an all-cash
    portfolio proposing a book trades nothing at a calm bar, but trades at once where the
    trailing volatility spikes (short / long std of the mean return >= 2) or the spreads
    blow out (spread / trailing median >= 3), with that override's trigger flag only."""
    md = _trigger_market()
    cfg = _cfg(
        execution={"scheduled_only": True, "schedule_every": 1000},
        episode_length=5,
    )
    p = EnvParams.from_config(md, cfg)
    bars = np.array([_CALM, _BLOWOUT, _SPIKE])

    # the design, from the definitions: short 5 / long 63 bars of the equal-weight
    # return's sample std; each name's spread over its trailing 21-bar median
    r = md.close[1:] / md.close[:-1] - 1.0
    mean_r = np.r_[0.0, r.mean(axis=1)]
    vol = [mean_r[t - 4 : t + 1].std(ddof=1) / mean_r[t - 62 : t + 1].std(ddof=1) for t in bars]
    trailing = np.stack([np.median(md.spread_bps[t - 20 : t + 1], axis=0) for t in bars])
    spread = np.median(md.spread_bps[bars] / trailing, axis=1)
    assert vol[0] < 2.0 and vol[1] < 2.0 and vol[2] >= 2.0
    assert spread.tolist() == [1.0, 10.0, 1.0]

    state, _ = core.reset(p, core.seed_keys([0, 1, 2]), start=bars)
    res = core.step_proposed(p, state, np.full((3, 2), 0.4))
    flags = res.decision.execution.trigger_flags
    traded = np.abs(res.info["delta_qty"]).sum(axis=1) > 0
    assert traded.tolist() == [False, True, True]
    assert (res.info["symbol_reasons"][0] & int(ReasonCode.NO_TRADE_BAND)).all()
    spike, blowout = int(TriggerFlag.VOL_SPIKE), int(TriggerFlag.SPREAD_BLOWOUT)
    assert ((flags & spike) != 0).tolist() == [False, False, True]
    assert ((flags & blowout) != 0).tolist() == [False, True, False]
    assert not (flags & int(TriggerFlag.SCHEDULED)).any()
    # the whole book at once (to a lot: one share of ~100 is 1e-4 of the equity)
    assert np.allclose(res.info["target"][1:], 0.4, rtol=0, atol=2e-4)


def _with_delisted(md: MarketData, n_dead: int, last_bar: int) -> MarketData:
    """``md`` with ``n_dead`` more names, delisted after ``last_bar``: flat at 100 with a
    5 bps spread until then, untradable with a 0 spread after it."""
    n = md.n_days
    close = np.hstack([md.close, np.full((n, n_dead), 100.0)])
    spread = np.hstack([md.spread_bps, np.full((n, n_dead), 5.0)])
    tradable = np.hstack([md.tradable, np.ones((n, n_dead), dtype=bool)])
    spread[last_bar + 1 :, md.n_assets :] = 0.0
    tradable[last_bar + 1 :, md.n_assets :] = False
    names = tuple(f"D{i}" for i in range(n_dead))
    return dataclasses.replace(
        md,
        symbols=md.symbols + names,
        close=close,
        volume=np.full(close.shape, 1e9),
        spread_bps=spread,
        sectors=md.sectors + names,
        tradable=tradable,
    )


@pytest.mark.parametrize("n_dead", [0, 3])
@pytest.mark.parametrize("chunk_bytes", [2**25, 8 * 63 * 2 * 7])
def test_trigger_path_equals_a_bar_by_bar_loop(chunk_bytes, n_dead):
    """The per-bar trigger table (computed in chunks of bars; 7 bars per chunk with the
    small budget) equals ``trigger_inputs`` on each bar's own trailing windows, from the
    first bar with a full long-volatility window (bar 62) on; earlier bars read 1 (no
    override) and the schedule is ``t % schedule_every == 0``. Names delisted before the
    blowout (a 0 spread, not tradable) do not vote: the blowout still reads 10, where
    their ratio of 1 had held the median at 1 with three of them."""
    md = _with_delisted(_trigger_market(), n_dead, last_bar=100)
    ep = ExecutionParams(schedule_every=4)  # windows: vol 5 / 63 bars, spread 21 bars
    got = core._trigger_path(md.returns, md.spread_bps, md.tradable, ep, chunk_bytes=chunk_bytes)
    n = md.n_days
    vol, spread = np.ones(n), np.ones(n)
    for t in range(62, n):
        one = trigger_inputs(
            md.returns[t - 62 : t + 1][None],
            md.spread_bps[t - 20 : t + 1][None],
            ep,
            tradable=md.tradable[t - 62 : t + 1][None],
        )
        vol[t], spread[t] = one.vol_ratio[0], one.spread_ratio[0]
    assert np.allclose(got.vol_ratio, vol, rtol=1e-12, atol=0)
    assert np.allclose(got.spread_ratio, spread, rtol=1e-12, atol=0)
    assert got.scheduled.tolist() == [t % 4 == 0 for t in range(n)]
    assert got.vol_ratio[_SPIKE] >= 2.0 and got.spread_ratio[_BLOWOUT] == 10.0


# ----------------------------------------------------------- ex-ante CVaR window


def test_ex_ante_cvar_reads_the_window_ending_at_the_decision_bar():
    """``cvar_mode = ex_ante``: the scenarios are the approved book on the returns of the
    ``cvar_window`` bars ending at the decision bar ``t`` (here 300..303), neither the
    bar before them (299: -20%) nor the fill bar ``t + 1`` (304: -30%). With a window of 4
    and ``cvar_alpha = 0.5`` the CVaR is the mean loss of the two worst scenarios: the
    -10% of bar 300 and the -6% of bar 303, so 0.08."""
    returns = _calm_returns(310, seed=4)
    returns[299:305] = np.array([-0.20, -0.10, 0.001, 0.001, -0.06, -0.30])[:, None]
    md = _market(returns, np.full((310, 2), 5.0))
    p = EnvParams.from_config(
        md, _cfg(cvar_window=4, cvar_alpha=0.5, cvar_weight=2.0, drawdown_kill=0.9)
    )
    state, _ = core.reset(p, core.seed_keys([0]), start=np.array([303]))
    res = core.step_proposed(p, state, np.array([[0.5, 0.5]]))
    assert np.array_equal(res.info["approved"], [[0.5, 0.5]])
    assert res.info["cvar"][0] == pytest.approx(0.08, rel=1e-9)
    assert res.info["cvar_penalty"][0] == pytest.approx(0.16, rel=1e-9)


# ----------------------------------------------------------- tilt prior at the last bar


def test_the_tilt_prior_covers_the_last_start_bar(market):
    """``tilt`` mode: the prior table holds the prior's book at every decision bar
    ``lo .. split.stop - 2``, the last one included (an episode starting there reads it),
    and zeros elsewhere; with the zero action the env proposes exactly that book. The
    equal-weight prior of three tradable names is 1/3 each."""
    p = EnvParams.from_config(
        market, _cfg(action_mode="tilt", tilt_prior="equal_weight"), split=(390, 400)
    )
    last = p.split.stop - 2
    assert p.lo == 390 and last == 398
    table = p.prior_weights
    assert np.allclose(table[p.lo : last + 1], 1.0 / 3.0, rtol=1e-15, atol=0)
    assert not table[: p.lo].any() and not table[last + 1 :].any()
    state, _ = core.reset(p, core.seed_keys([0]), start=np.array([last]))
    res = core.step(p, state, np.zeros((1, p.action_spec.action_dim)))
    assert np.allclose(res.info["proposed"], 1.0 / 3.0, rtol=1e-15, atol=0)
    assert res.truncated[0]  # one step: the split's last bar


# ----------------------------------------------------------- metrics, errors


def test_episode_metrics_of_a_long_short_book_keep_gross_and_net_apart(market):
    """A long/short book (long 0.5 + 0.1, short 0.3): ``mean_gross`` is the mean of
    ``sum |w|`` and ``mean_net`` the mean of ``sum w`` over the steps, each computed here
    from the shares and prices after every fill."""
    p = EnvParams.from_config(market, _cfg(risk={"long_only": False}))
    state, _ = core.reset(p, core.seed_keys([0]), start=np.array([p.lo + 1]))
    book = np.array([[0.5, -0.3, 0.1]])
    gross, net = [], []
    for _ in range(4):
        res = core.step_proposed(p, state, book)
        state = res.state
        w = state.shares[0] * p.prices[state.t[0]] / state.equity[0]
        gross.append(np.abs(w).sum())
        net.append(w.sum())
    (m,) = core.episode_metrics(p, state, np.array([0]))
    assert m["n_steps"] == 4
    assert m["mean_gross"] == pytest.approx(np.mean(gross), rel=1e-12)
    assert m["mean_net"] == pytest.approx(np.mean(net), rel=1e-12)
    # the book drifts with prices between fills, but stays near 0.9 gross and 0.3 net
    assert m["mean_gross"] == pytest.approx(0.9, abs=0.05)
    assert m["mean_net"] == pytest.approx(0.3, abs=0.05)


def test_episode_metrics_of_a_one_step_episode(market):
    """An episode of a single step has its measures (CVaR and drawdown of its one return;
    the Sharpe ratio needs two) and its per-step means are that step's values, not halves;
    all of its steps were in the regime of its decision bar."""
    p = EnvParams.from_config(market, _cfg())
    t0 = p.lo + 3
    state, _ = core.reset(p, core.seed_keys([0]), start=np.array([t0]))
    res = core.step_proposed(p, state, np.array([[0.3, 0.3, 0.3]]))
    info = res.info
    r = res.state.equity[0] / p.cfg.env.initial_equity - 1.0
    (m,) = core.episode_metrics(p, res.state, np.array([0]))
    assert m["n_steps"] == 1 and m["total_return"] == r
    assert np.isnan(m["sharpe"])
    assert m["cvar"] == pytest.approx(-r, rel=1e-12)  # the worst 5% of one outcome: itself
    assert m["max_drawdown"] == pytest.approx(max(0.0, -r), rel=1e-12, abs=1e-15)
    w = res.state.shares[0] * p.prices[t0 + 1] / res.state.equity[0]
    assert m["mean_gross"] == pytest.approx(np.abs(w).sum(), rel=1e-12)
    assert m["turnover"] == info["turnover"][0] and m["costs"] == info["cost"][0]
    assert m["reward"] == info["reward"][0]
    label = core.REGIME_LABELS[int(p.features.regime[t0])]
    assert m["regime_mix"] == {k: float(k == label) for k in core.REGIME_LABELS}


def test_action_weights_refuses_budgets_actions_naming_the_fix(market):
    """``action_weights`` maps ``weights`` and ``tilt`` actions only: a budgets-mode call
    is refused with a message that names the function and the entry point to use."""
    p = EnvParams.from_config(market, _cfg(action_mode="budgets"))
    action = np.zeros((1, p.action_spec.action_dim))
    with pytest.raises(
        ConfigError,
        match=r"^action_weights: budgets-mode actions are netted from strategy intents: "
        r"use propose$",
    ):
        core.action_weights(p, np.array([p.lo]), action)


def test_an_unknown_split_name_is_refused_naming_the_choices(market):
    """``resolve_split`` refuses a split it does not know with a message that quotes the
    value and lists every accepted form."""
    with pytest.raises(
        ConfigError,
        match=r"^split = 'nope': use 'train', 'validation', 'test', 'all', a Split or a "
        r"\(start, stop\) bar range$",
    ):
        core.resolve_split(market, _cfg(), "nope")
