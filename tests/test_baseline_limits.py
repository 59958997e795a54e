"""One source of limits: baselines inherit ``cfg.risk`` (and may only tighten it), and a
fallback is visible per allocator in ``results.json`` and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_configs import TINY_DATA

from allocgym.allocator import BOOK_KEPT, source_of
from allocgym.baselines.registry import build_baselines
from allocgym.config import BaselinesConfig, RiskConfig, config_from_dict, load_config
from allocgym.data import load_market
from allocgym.errors import ConfigError
from allocgym.evaluation import evaluate, fallback_shares

TINY = [*TINY_DATA, "baselines.rebalance_every=5"]


def test_qp_and_classics_inherit_the_risk_limits() -> None:
    cfg = config_from_dict(
        {
            "risk": {
                "max_symbol_weight": 0.2,
                "max_gross": 0.9,
                "max_net": 0.8,
                "max_sector_gross": 0.5,
                "beta_tolerance": 0.3,
            },
            "baselines": {"qp": {"sector_cap": 0.4}},  # tighter than risk: kept
        }
    )
    allocs = build_baselines(cfg, ["qp", "min_variance", "fractional_kelly", "cluster_barbell"])
    p = allocs["qp"].params
    assert (p.per_name_cap, p.max_gross, p.max_net, p.sector_cap, p.beta_tolerance) == (
        0.2, 0.9, 0.8, 0.4, 0.3,
    )  # fmt: skip
    assert p.long_only is True and p.budget == 0.8  # the budget fits the net cap
    assert allocs["min_variance"].params.max_weight == 0.2
    k = allocs["fractional_kelly"]
    assert (k.kelly.max_weight, k.kelly.max_gross) == (0.2, 0.9)
    assert allocs["cluster_barbell"].params.max_weight == 0.2


def test_a_looser_baseline_limit_is_refused_with_the_fix() -> None:
    with pytest.raises(
        ConfigError,
        match=r"baselines.qp.sector_cap = 0.5 is looser than "
        r"risk.max_sector_gross = 0.3.*null: inherit",
    ):
        config_from_dict({"baselines": {"qp": {"sector_cap": 0.5}}})
    with pytest.raises(
        ConfigError,
        match=r"baselines.classic.long_only = false while "
        r"risk.long_only = true",
    ):
        config_from_dict({"baselines": {"classic": {"long_only": False}}})
    with pytest.raises(ConfigError, match=r"baselines.barbell.max_weight = 0.2 is looser than"):
        config_from_dict({"baselines": {"barbell": {"max_weight": 0.2}}})
    # a long/short risk section lets the baselines go long/short, or stay long-only
    ok = config_from_dict({"risk": {"long_only": False}, "baselines": {"qp": {"long_only": True}}})
    assert ok.baselines.within(ok.risk).qp.long_only is True
    assert ok.baselines.within(ok.risk).classic.long_only is False
    # old run directories wrote the old defaults: read as 'inherit'
    old = config_from_dict({"baselines": {"qp": {"max_gross": 1.5}, "kelly": {"max_weight": 0.25}}})
    assert old.baselines.qp.max_gross is None and old.baselines.kelly.max_weight is None
    assert BaselinesConfig().within(RiskConfig()).qp.sector_cap == 0.3


def test_fallback_shares_by_hand() -> None:
    got = fallback_shares(
        {"qp:CLARABEL": 3, "hrp": 5, "current_book": 1, BOOK_KEPT: 1}, "qp:CLARABEL"
    )
    assert got["rebalances"] == 10
    assert got["fallback"] == {"book kept (error)": 0.1, "current_book": 0.1, "hrp": 0.5}
    assert got["fallback_share"] == pytest.approx(0.7) and got["fallback_flag"] is True
    half = fallback_shares({"qp:CLARABEL": 1, "hrp": 1}, "qp:CLARABEL")
    assert half["fallback_share"] == 0.5 and half["fallback_flag"] is False  # more than half
    assert fallback_shares({}, None) == {
        "rebalances": 0, "sources": {}, "fallback": {}, "fallback_share": 0.0,
        "fallback_flag": False,
    }  # fmt: skip

    class Chain:
        name = "chain"
        primary_source = "first"
        source_ = ("first", "second")

    class Plain:
        name = "plain"

    assert source_of(Chain(), 1) == "second" and source_of(Plain(), 0) == "plain"


def test_a_qp_served_by_hrp_is_flagged_in_results_and_report(tmp_path: Path) -> None:
    from allocgym.report import write_report

    # 6 names x a 0.1 cap cannot hold a budget of 1: the QP is infeasible every rebalance
    cfg = load_config(None, [*TINY, "baselines.qp.per_name_cap=0.1", "baselines.qp.budget=1.0"])
    market = load_market(cfg.data)
    allocs = list(build_baselines(cfg, ["hrp", "qp"]).values())
    result = evaluate(allocs, market, cfg, "test")
    qp = result.metrics["qp"]
    n = result.backtest("qp")
    assert qp["rebalances"] == len(range(0, n.n_steps, 5))  # every 5 bars
    assert qp["fallback"] == {"hrp": 1.0} and qp["fallback_flag"] is True
    assert np.allclose(result.backtest("qp").returns, result.backtest("hrp").returns)
    assert (
        result.metrics["hrp"]["fallback"] == {} and result.backtest("hrp").primary_source == "hrp"
    )
    paths = write_report(result, tmp_path)
    saved = json.loads(paths["results"].read_text())
    assert saved["metrics"]["qp"]["fallback"] == {"hrp": 1.0}
    md = paths["markdown"].read_text()
    assert "## Fallbacks" in md and "`qp` was served by a fallback on 100% of its rebalances" in md
