"""Every allocator keeps every hard limit on the real S&P 500 sample.

Acceptance of the allocator semantics (strategy-family budgets scaled by regime, tilt and
capacity; per-symbol turnover and slippage budgets beside the portfolio-wide ones): every
baseline of the registry and an agent in each action mode run through the gates and
execution over the whole test split, with every one of those limits switched on, and the
independent checker (``allocgym.risk.check_invariants``, run on each decision by the
backtest) finds no breach. An untrained agent proposes a different book on every bar,
which is what the gates must hold, not what it earns.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from allocgym.baselines.registry import baseline_names, build_baselines
from allocgym.config import AllocgymConfig, config_from_dict
from allocgym.data import MarketData
from allocgym.evaluation import evaluate, evaluation_params, run_allocators

pytestmark = pytest.mark.slow

# Every limit the allocator semantics added is on, tight enough to act on this sample.
_LIMITS = {
    "strategy_budgets": {"trend": 0.5, "mean_reversion": 0.4, "defensive": 0.6},
    "strategy_capacity_spread_bps": 4.0,
    "strategy_capacity_volatility": 0.012,
    "strategy_capacity_adv_to_equity": 200.0,
    "max_symbol_turnover": 0.04,
    "symbol_slippage_budget_bps": 1.0,
}


def _cfg(**env) -> AllocgymConfig:
    return config_from_dict({"risk": _LIMITS, "env": env})


def test_every_baseline_keeps_every_limit_on_the_sp500_test_split(sp500: MarketData) -> None:
    cfg = _cfg()
    names = baseline_names("all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate(list(build_baselines(cfg, names).values()), sp500, cfg, "test")
    breaches = {n: int(result.backtest(n).invariant_breaches.sum()) for n in names}
    assert breaches == dict.fromkeys(names, 0)
    clipped = {
        code: sum(result.metrics[n]["interventions"].get(code, 0) for n in names)
        for code in ("SYMBOL_TURNOVER_CAP", "SYMBOL_SLIPPAGE_BUDGET")
    }
    assert all(count > 0 for count in clipped.values()), clipped  # the limits acted


@pytest.mark.parametrize("mode", ["weights", "budgets", "tilt"])
def test_an_agent_in_every_action_mode_keeps_every_limit(sp500: MarketData, mode: str) -> None:
    from allocgym.agents.allocator import SB3PolicyAllocator
    from allocgym.agents.train import build_model
    from allocgym.envs import PortfolioVecEnv

    cfg = _cfg(action_mode=mode)
    params = evaluation_params(sp500, cfg, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, PortfolioVecEnv(params=params, n_envs=1, seed=0), params)
        agent = SB3PolicyAllocator(model, None, params.action_spec, name=mode)
        (bt,) = run_allocators([agent], params=params)
    assert int(bt.invariant_breaches.sum()) == 0
    assert np.abs(bt.proposed).sum(axis=1).std() > 0  # a different proposal on each bar
    if mode == "budgets":
        budget = bt.strategy_budget
        assert budget is not None
        # the default regime multipliers and tilts only tighten the base budgets; the
        # capacity factor, clamped to [min_multiplier, max_multiplier], cuts the budgets
        # of families in costly, volatile or thin names and widens the others'
        base, regime, capacity = budget[..., 0], budget[..., 1], budget[..., 2]
        assert np.all(regime <= base)
        assert np.all(capacity <= regime * cfg.risk.max_multiplier)
        assert np.any(capacity < regime) and np.any(capacity > regime)
        # the approved family lines are what the approved book holds
        held = np.abs(bt.approved).sum(axis=1)
        lines = bt.strategy_gross.sum(axis=1)
        attributed = lines > 0
        assert np.allclose(lines[attributed], held[attributed], rtol=0, atol=1e-12)
