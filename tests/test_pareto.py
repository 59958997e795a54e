"""Pareto allocator: the front's ends against the min-CVaR LP and the max-return closed
form, non-dominance, the choice rule, every knob, hot start vs plain cvxpy solves, and a
walk through the env with zero invariant breaches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from allocgym import evaluation as ev
from allocgym.allocator import AllocationContext
from allocgym.baselines.classic import max_linear_over_box_simplex, weight_bounds
from allocgym.baselines.cvar import min_cvar_weights
from allocgym.baselines.pareto import (
    ParetoAllocator,
    ParetoProblem,
    drawdown_proxy,
    pareto_front,
)
from allocgym.config import ParetoConfig, config_from_dict, load_config
from allocgym.data import load_market
from allocgym.errors import ConfigError, Infeasible
from allocgym.measures import cvar
from allocgym.report import write_report

N, S = 6, 80


@pytest.fixture(scope="module")
def scenarios() -> np.ndarray:
    rng = np.random.default_rng(12)
    market = rng.normal(0.0004, 0.01, (S, 1))
    return market * rng.uniform(0.4, 1.6, N) + rng.normal(0.0003, 0.012, (S, N))


LO, HI = np.zeros(N), np.full(N, 0.4)


def test_drawdown_proxy_by_hand() -> None:
    # path 0.01, 0.03, 0.00, -0.02, 0.01: peak 0.03, trough -0.02 -> 0.05
    pnl = np.array([0.01, 0.02, -0.03, -0.02, 0.03])
    assert drawdown_proxy(pnl) == pytest.approx(0.05)
    # the peak starts at 0: a first-bar loss is a drawdown
    assert drawdown_proxy(np.array([-0.01, 0.005])) == pytest.approx(0.01)
    assert np.allclose(drawdown_proxy(np.stack([pnl, -pnl])), [0.05, 0.03])


def test_front_ends_match_min_cvar_and_max_return(scenarios: np.ndarray) -> None:
    front = pareto_front(scenarios, LO, HI)
    obj = front.objectives
    w_mc = min_cvar_weights(scenarios, 0.95, LO, HI)
    assert obj[:, 1].min() == pytest.approx(float(cvar(scenarios @ w_mc, 0.95)), abs=1e-9)
    best = max_linear_over_box_simplex(scenarios.mean(axis=0), LO, HI)
    assert obj[:, 0].max() == pytest.approx(best, abs=1e-12)
    # objectives are those of the weights (numpy measures, not solver variables)
    w = front.weights
    assert np.allclose(obj[:, 1], cvar(w @ scenarios.T, 0.95), rtol=0, atol=1e-15)
    assert np.allclose(obj[:, 2], drawdown_proxy(w @ scenarios.T), rtol=0, atol=1e-15)
    assert np.allclose(w.sum(axis=1), 1.0) and (w >= LO).all() and (w <= HI + 1e-15).all()


def test_every_front_point_is_non_dominated(scenarios: np.ndarray) -> None:
    front = pareto_front(scenarios, LO, HI, ParetoConfig(n_points=12))
    assert front.n_solved == 12
    obj = front.objectives * np.array([-1.0, 1.0, 1.0, 1.0])  # all minimised
    for i in range(len(obj)):
        no_worse = (obj <= obj[i] + 1e-12).all(axis=1)
        better = (obj < obj[i] - 1e-12).any(axis=1)
        assert not (no_worse & better).any(), i
    # return rises with the CVaR cap along the front
    order = np.argsort(front.objectives[:, 1])
    assert (np.diff(front.objectives[order, 0]) >= -1e-12).all()
    # and no random feasible book beats a front point in return and CVaR together
    rng = np.random.default_rng(0)
    books = rng.dirichlet(np.ones(N), 2000) * 0.999
    books = books[(books <= HI).all(axis=1)]
    ret, risk = books @ scenarios.mean(axis=0), cvar(books @ scenarios.T, 0.95)
    for r_i, c_i in front.objectives[:, :2]:
        assert not ((ret > r_i + 1e-12) & (risk < c_i - 1e-12)).any()


def test_hot_started_front_equals_plain_cvxpy_solves(scenarios: np.ndarray) -> None:
    prob = ParetoProblem(S, N, 0.95)
    assert prob.problem.is_dcp(dpp=True)
    hot = pareto_front(scenarios, LO, HI, problem=prob)
    plain = pareto_front(scenarios, LO, HI, solver="CLARABEL", hot_start=False)
    assert np.allclose(hot.objectives[:, :2], plain.objectives[:, :2], rtol=0, atol=1e-7)
    # the same problem object, reused: identical results whatever was solved before
    again = pareto_front(scenarios[::-1].copy(), LO, HI, problem=prob)
    assert not np.array_equal(again.weights, hot.weights)
    assert np.array_equal(pareto_front(scenarios, LO, HI, problem=prob).weights, hot.weights)


def test_choice_rule_and_its_fallback(scenarios: np.ndarray) -> None:
    front = pareto_front(scenarios, LO, HI)
    obj = front.objectives
    equal = np.full(N, 1.0 / N)
    assert front.target == pytest.approx(float(cvar(scenarios @ equal, 0.95)))
    mid = float(np.median(obj[:, 1]))
    chosen = pareto_front(scenarios, LO, HI, ParetoConfig(cvar_target=mid))
    ok = chosen.objectives[:, 1] <= mid
    assert chosen.target_met
    assert chosen.objectives[chosen.chosen, 1] <= mid
    assert chosen.objectives[chosen.chosen, 0] == chosen.objectives[ok, 0].max()
    low = pareto_front(scenarios, LO, HI, ParetoConfig(cvar_target=0.5 * obj[:, 1].min()))
    assert not low.target_met
    assert low.chosen == int(np.argmin(low.objectives[:, 1]))


def test_caps_bind_and_cost_defaults(scenarios: np.ndarray) -> None:
    free = pareto_front(scenarios, LO, HI)
    cap = float(np.median(free.objectives[:, 2]))
    capped = pareto_front(scenarios, LO, HI, ParetoConfig(max_drawdown=cap))
    assert capped.objectives[:, 2].max() <= cap + 1e-9 < free.objectives[:, 2].max()
    w_cur = np.full(N, 1.0 / N)
    costs = np.linspace(0.001, 0.004, N)
    free_c = pareto_front(scenarios, LO, HI, w_cur=w_cur, costs=costs)
    assert np.allclose(free_c.objectives[:, 3], np.abs(free_c.weights - w_cur) @ costs)
    cost_cap = 0.25 * float(free_c.objectives[:, 3].max())
    capped_c = pareto_front(
        scenarios, LO, HI, ParetoConfig(max_cost=cost_cap), w_cur=w_cur, costs=costs
    )
    assert capped_c.objectives[:, 3].max() <= cost_cap + 1e-9
    # no costs in the context: default_cost per unit of weight traded
    dflt = pareto_front(scenarios, LO, HI, ParetoConfig(default_cost=0.002), w_cur=w_cur)
    assert np.allclose(dflt.objectives[:, 3], 0.002 * np.abs(dflt.weights - w_cur).sum(axis=1))
    with pytest.raises(Infeasible):  # a fully invested book cannot be reached from cash
        pareto_front(scenarios, LO, HI, ParetoConfig(max_cost=1e-6), costs=costs)


def test_alpha_sets_the_cvar_level(scenarios: np.ndarray) -> None:
    front = pareto_front(scenarios, LO, HI, ParetoConfig(alpha=0.9))
    assert np.allclose(front.objectives[:, 1], cvar(front.weights @ scenarios.T, 0.9), atol=1e-15)


def _ctx(returns: np.ndarray, costs: np.ndarray | None = None) -> AllocationContext:
    n_envs, _, n = returns.shape
    return AllocationContext(
        returns=returns, current_weights=np.zeros((n_envs, n)),
        symbols=tuple(f"S{i}" for i in range(n)), sector_ids=np.zeros(n, dtype=np.int64),
        regime=np.zeros(n_envs, dtype=np.int64), regime_confidence=np.ones(n_envs),
        costs=costs, t=np.full(n_envs, 99),
    )  # fmt: skip


def test_allocator_window_sources_and_config(scenarios: np.ndarray) -> None:
    cfg = config_from_dict(
        {
            "risk": {"max_symbol_weight": 0.4},
            "baselines": {"pareto": {"n_points": 7, "window": 40, "cvar_target": 1e-6}},
        }
    )
    alloc = ev.build_baselines(cfg, ["pareto"])["pareto"]
    assert isinstance(alloc, ParetoAllocator) and alloc.pareto.n_points == 7
    r = np.stack([scenarios, scenarios])
    r[1, :10] *= 3.0  # differs only before the last 40 bars
    w = alloc.allocate(_ctx(r))
    assert np.array_equal(w[0], w[1])  # only the window's bars are used
    assert alloc.source_ == ["pareto:min_cvar", "pareto:min_cvar"]  # target unreachable
    assert alloc.front_["bar"] == 99 and alloc.front_["n_solved"] == 7
    active = np.ones((1, N), dtype=bool)
    lo, hi = weight_bounds(active, alloc.params.long_only, alloc.params.max_weight, 1.0)
    ref = pareto_front(scenarios[-40:], lo[0], hi[0], alloc.pareto)
    assert np.allclose(w[0], ref.weights[ref.chosen], rtol=0, atol=1e-12)
    with pytest.raises(ValidationError, match="n_points"):
        ParetoConfig(n_points=1)
    with pytest.raises(ConfigError):
        config_from_dict({"baselines": {"pareto": {"alpha": 1.5}}})


def test_pareto_walks_the_env_with_zero_breaches(tmp_path: Path) -> None:
    """Through the env's gates and costs: 0 invariant breaches; the report shows the front
    and the VaR backtest (at the configured level and window)."""
    cfg = load_config(None, [
        "data.source=synthetic", "data.synthetic.n_assets=6", "data.synthetic.n_days=720",
        "data.synthetic.n_sectors=3", "data.synthetic.seed=5",
        "data.splits.train_end=2001-06-29", "data.splits.validation_end=2001-12-31",
        "baselines.lookback=126", "baselines.rebalance_every=21",
        "risk.max_symbol_weight=0.4",  # room for a front over 6 names
        "evaluation.var_alpha=0.995", "evaluation.var_window=150",
    ])  # fmt: skip
    market = load_market(cfg.data)
    allocs = list(ev.build_baselines(cfg, ["pareto", "equal_weight"]).values())
    res = ev.evaluate(allocs, market, cfg)
    bt = res.backtest("pareto")
    assert int(bt.invariant_breaches.sum()) == 0
    assert bt.allocator_errors == 0
    assert sum(bt.rebalance_sources.values()) > 0
    front = res.pareto_fronts["pareto"]
    assert front["date"] and len(front["points"]) >= 2
    var = res.var_backtest["pareto"]
    assert (var["alpha"], var["window"]) == (0.995, 150)
    assert var["evt"]["n_obs"] == bt.n_steps - var["n_flat"] - var["n_short_history"] > 0
    paths = write_report(res, tmp_path / "report")
    text = paths["markdown"].read_text()
    assert "## VaR backtest (99.5%, out of sample)" in text
    assert "## Pareto front: pareto, last rebalance" in text and "★" in text
    assert paths["pareto_front_pareto"].exists()
    assert "pareto_fronts" in json.loads(paths["results"].read_text())
