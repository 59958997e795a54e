"""Reward accounting on a hand-computed two-asset price path with known costs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from allocgym.config import config_from_dict
from allocgym.costs import expected_cost
from allocgym.data import MarketData
from allocgym.envs import PortfolioEnv

T0 = 300  # first decision bar: after the feature warm-up (273 bars)


def two_asset_market(path: np.ndarray, spread_bps: float = 20.0) -> MarketData:
    """Seeded random walk for the warm-up, ending exactly at ``path[0]`` at bar T0, then ``path``."""
    rng = np.random.default_rng(0)
    steps = rng.normal(0.0, 0.01, (T0 + 1, 2))
    logp = np.cumsum(steps, axis=0)
    warm = path[0] * np.exp(logp - logp[-1])  # bars 0..T0
    close = np.vstack([warm[:-1], path])  # bar T0 is path[0] exactly
    n = close.shape[0]
    bench = np.r_[0.0, (close[1:] / close[:-1] - 1.0).mean(axis=1)]
    return MarketData(
        dates=pd.bdate_range("2001-01-01", periods=n).to_numpy(dtype="datetime64[ns]"),
        symbols=("A", "B"),
        close=close,
        volume=np.full((n, 2), 1e9),
        spread_bps=np.full((n, 2), spread_bps),
        sectors=("s0", "s1"),
        benchmark_returns=bench,
        tradable=np.ones((n, 2), dtype=bool),
    )


def loose_cfg(**env):
    """Limits that let the hand proposals through untouched; no bands, unit lots."""
    return config_from_dict(
        {
            "risk": {
                "max_symbol_weight": 1.0,
                "max_gross": 2.0,
                "max_net": 2.0,
                "max_sector_gross": 2.0,
                "max_turnover": 4.0,
                "max_participation": 1.0,
                "slippage_budget_bps": 1000.0,
                "regime_budget_multipliers": {},
                "regime_capacity_multipliers": {},
            },
            "execution": {
                "name_drift_threshold": 0.0,
                "portfolio_drift_threshold": 0.0,
                "lot_size": 1.0,
            },
            "costs": {"commission_bps": 10.0, "spread_mult": 1.0, "impact_k": 0.0},
            "env": {
                "split": "all",
                "episode_length": 10,
                "cvar_weight": 0.0,
                "intervention_weight": 0.0,
                **env,
            },
        }
    )


PATH = np.array([[100.0, 50.0], [101.0, 49.0], [102.01, 49.49], [100.0, 50.0], [100.0, 50.0]])


def test_two_asset_hand_computed_rewards():
    env = PortfolioEnv(two_asset_market(PATH), loose_cfg())
    env.reset(seed=0, options={"start": T0})

    # bar T0: buy 50% A at 100 (5000 sh) and 30% B at 50 (6000 sh); fill at 101 / 49
    _, r1, te, tr, info = env.step_proposed(np.array([0.5, 0.3]))
    assert np.array_equal(info["delta_qty"], [5000.0, 6000.0])
    traded = 5000 * 101 + 6000 * 49  # 799000
    cost1 = 0.799 * (10 / 1e4 + 20 / 2e4) * 1e6  # 1598: commission + half spread
    v1 = 1e6 - cost1
    assert info["cost"] == pytest.approx(0.001598, rel=1e-12)
    assert info["turnover"] == pytest.approx(0.799, rel=1e-12)
    assert info["equity"] == pytest.approx(v1, rel=1e-13)
    assert env.state.cash[0] == pytest.approx(1e6 - traded - cost1, rel=1e-13)
    assert r1 == pytest.approx(math.log(v1 / 1e6), rel=1e-10)
    assert info["log_growth"] == pytest.approx(r1, rel=1e-12)
    assert not te and not tr
    w1 = info["weights"]
    assert w1 == pytest.approx([505000 / v1, 294000 / v1], rel=1e-12)

    # bar T0+1: hold (propose the current book): no trade, the book drifts to 102.01 / 49.49
    _, r2, _, _, info = env.step_proposed(w1)
    assert np.array_equal(info["delta_qty"], [0.0, 0.0])
    assert info["cost"] == 0.0
    v2 = 199402.0 + 5000 * 102.01 + 6000 * 49.49
    assert info["equity"] == pytest.approx(v2, rel=1e-12)
    assert r2 == pytest.approx(math.log(v2 / v1), rel=1e-9)

    # bar T0+2: sell everything, filled at 100 / 50
    _, r3, _, _, info = env.step_proposed(np.zeros(2))
    assert np.array_equal(info["delta_qty"], [-5000.0, -6000.0])
    v_pre = 199402.0 + 800000.0
    assert info["turnover"] == pytest.approx(800000 / v_pre, rel=1e-12)
    cost3 = 0.002 * 800000
    v3 = v_pre - cost3
    assert info["equity"] == pytest.approx(v3, rel=1e-12)
    assert r3 == pytest.approx(math.log(v3 / v2), rel=1e-9)
    assert env.state.shares[0] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert env.state.cash[0] == pytest.approx(v3, rel=1e-13)
    # the rewards telescope: their sum is the log growth of the whole episode
    assert r1 + r2 + r3 == pytest.approx(math.log(v3 / 1e6), rel=1e-9)


def test_impact_cost_uses_fill_bar_volatility_and_adv():
    cfg = loose_cfg()
    cfg = cfg.model_copy(update={"costs": cfg.costs.model_copy(update={"impact_k": 0.5})})
    env = PortfolioEnv(two_asset_market(PATH), cfg)
    env.reset(seed=0, options={"start": T0})
    _, r1, _, _, info = env.step_proposed(np.array([0.5, 0.3]))
    feats = env.params.features
    dw = np.array([505000.0, 294000.0]) / 1e6
    sigma, adv = feats.volatility[T0 + 1], feats.adv_notional[T0 + 1]
    by_hand = dw * (10 / 1e4 + 20 / 2e4 + 0.5 * sigma * np.sqrt(dw * 1e6 / adv))
    assert info["cost"] == pytest.approx(by_hand.sum(), rel=1e-12)
    # one cost function: the env's number is allocgym.costs.expected_cost's
    direct = expected_cost(
        dw[None],
        np.array([1e6]),
        adv[None],
        sigma[None],
        np.full((1, 2), 20.0),
        env.params.cost_model,
    ).sum()
    assert info["cost"] == pytest.approx(direct, rel=1e-14)
    assert r1 == pytest.approx(math.log(1.0 - by_hand.sum()), rel=1e-9)


def test_ex_ante_cvar_term_by_hand():
    cfg = loose_cfg(cvar_weight=2.0, cvar_window=20, cvar_alpha=0.9)
    market = two_asset_market(PATH)
    env = PortfolioEnv(market, cfg)
    env.reset(seed=0, options={"start": T0})
    _, r, _, _, info = env.step_proposed(np.array([0.5, 0.3]))
    scen = market.returns[T0 - 19 : T0 + 1] @ np.array([0.5, 0.3])
    worst = np.sort(scen)[:2]
    # k = (1 - 0.9) * 20 = 2 (up to float error): the mean of the two worst scenarios
    assert info["cvar"] == pytest.approx(-worst.mean(), rel=1e-9)
    assert info["cvar_penalty"] == pytest.approx(2.0 * info["cvar"], rel=1e-15)
    assert r == pytest.approx(info["log_growth"] - info["cvar_penalty"], rel=1e-12, abs=1e-15)


def test_realized_cvar_uses_portfolio_returns_and_cash_history():
    cfg = loose_cfg(cvar_weight=1.0, cvar_window=4, cvar_alpha=0.75, cvar_mode="realized")
    env = PortfolioEnv(two_asset_market(PATH), cfg)
    env.reset(seed=0, options={"start": T0})
    _, _, _, _, info = env.step_proposed(np.array([0.5, 0.3]))
    ret1 = info["equity"] / 1e6 - 1.0  # the cost: a loss
    # window = [ret1, 0, 0, 0] (cash before the episode); k = 1: the worst return
    assert info["cvar"] == pytest.approx(-ret1, rel=1e-9)
    _, _, _, _, info = env.step_proposed(info["weights"])
    assert info["cvar"] == pytest.approx(-ret1, rel=1e-9)  # the second return is a gain


def test_penalty_terms_add_up_and_are_reported():
    cfg = loose_cfg(
        cvar_weight=0.3, intervention_weight=0.2, turnover_weight=0.1, drawdown_weight=0.05
    )
    cfg = cfg.model_copy(update={"risk": cfg.risk.model_copy(update={"max_symbol_weight": 0.4})})
    env = PortfolioEnv(two_asset_market(PATH), cfg)
    env.reset(seed=0, options={"start": T0})
    _, r, _, _, info = env.step_proposed(np.array([0.5, 0.3]))
    # the symbol cap clips A from 0.5 to 0.4: intervention L1 = 0.1
    assert info["approved"] == pytest.approx([0.4, 0.3], abs=1e-15)
    assert info["intervention"] == pytest.approx(0.1, rel=1e-12)
    assert info["intervention_penalty"] == pytest.approx(0.02, rel=1e-12)
    assert info["turnover_penalty"] == pytest.approx(0.1 * info["turnover"], rel=1e-15)
    assert info["drawdown_penalty"] == pytest.approx(0.05 * info["drawdown"], rel=1e-15)
    total = (
        info["log_growth"]
        - info["cvar_penalty"]
        - info["intervention_penalty"]
        - info["turnover_penalty"]
        - info["drawdown_penalty"]
    )
    assert r == pytest.approx(total, rel=1e-12)
    assert info["reward"] == r
