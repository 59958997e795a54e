"""Factor risk parity: equal factor risk contributions on hand-checkable cases, the
nearest stage when long-only bounds rule them out, the allocator's sources and config,
the registry, a walk through the env with zero invariant breaches, and the QP's optional
pairwise-correlation cap among held names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from allocgym import evaluation as ev
from allocgym.allocator import AllocationContext
from allocgym.baselines.factor_risk_parity import (
    FactorRiskParity,
    factor_risk_parity_weights,
)
from allocgym.baselines.qp import QPAllocator, pair_correlations
from allocgym.baselines.registry import baseline_names
from allocgym.baselines.risk_budgeting import risk_contributions
from allocgym.config import (
    ClassicConfig,
    FactorModelConfig,
    QPConfig,
    config_from_dict,
    load_config,
)
from allocgym.data import load_market
from allocgym.report import write_report


def test_two_uncorrelated_factors_by_hand() -> None:
    """Each asset is one factor, F = diag(0.04, 0.01), no specific risk: equal risk needs
    w_1^2 0.04 = w_2^2 0.01, so w = (1/3, 2/3)."""
    res = factor_risk_parity_weights(
        np.eye(2), np.diag([0.04, 0.01]), np.zeros(2), np.zeros(2), np.ones(2)
    )
    assert res.exact
    np.testing.assert_allclose(res.weights, [1 / 3, 2 / 3], atol=1e-6)
    np.testing.assert_allclose(res.risk_contributions, [0.5, 0.5], atol=1e-6)


def test_correlated_factors_and_specific_risk() -> None:
    """Three assets on two correlated factors: the exact stage reaches equal factor risk
    contributions (within 1e-6) with exposures proportional to the target, and among such
    books it picks the one with the least specific variance."""
    b = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    f = np.array([[0.04, 0.006], [0.006, 0.01]])
    d = np.array([0.01, 0.01, 0.0001])
    res = factor_risk_parity_weights(b, f, d, np.zeros(3), np.ones(3))
    assert res.exact
    np.testing.assert_allclose(res.risk_contributions, [0.5, 0.5], atol=1e-6)
    y = b.T @ res.weights
    np.testing.assert_allclose(y / y.sum(), res.target / res.target.sum(), atol=1e-6)
    np.testing.assert_allclose(risk_contributions(res.target, f), [0.5, 0.5], atol=1e-9)
    assert res.weights.sum() == pytest.approx(1.0)
    # the low-specific-risk third asset carries more weight than the hand solution without
    # it (t, 1 - t, 0) would give it
    assert res.weights[2] > 0.5


def test_nearest_stage_when_bounds_rule_equal_risk_out() -> None:
    """Both assets load mostly on factor 1: no long book reaches equal factor risk. The
    nearest stage returns a feasible book closer to equal shares than 1/N."""
    b = np.array([[1.0, 0.1], [1.0, -0.05]])
    f = np.diag([0.04, 0.01])
    lo, hi = np.zeros(2), np.ones(2)
    res = factor_risk_parity_weights(b, f, np.full(2, 1e-4), lo, hi)
    assert not res.exact
    assert res.weights.sum() == pytest.approx(1.0) and (res.weights >= -1e-12).all()
    gap = np.abs(res.risk_contributions - 0.5).max()
    equal = np.abs(risk_contributions(b.T @ np.full(2, 0.5), f) - 0.5).max()
    assert gap < equal


def _ctx(r: np.ndarray) -> AllocationContext:
    n_envs, _, n = r.shape
    return AllocationContext(
        returns=r,
        current_weights=np.zeros((n_envs, n)),
        symbols=tuple(f"S{i}" for i in range(n)),
        sector_ids=np.zeros(n, dtype=np.intp),
        regime=np.zeros(n_envs, dtype=np.int64),
        regime_confidence=np.ones(n_envs),
    )


def test_allocator_bounds_window_sources_and_config() -> None:
    rng = np.random.default_rng(3)
    market = rng.normal(0.0, 0.01, (2, 200, 1))
    r = market * rng.uniform(0.5, 1.5, 8) + rng.normal(0.0, 0.01, (2, 200, 8))
    r[1, :, 5] = 0.0  # untradable in portfolio 1
    uncapped = ClassicConfig(long_only=True, max_weight=1.0)  # every limit set: as given
    alloc = FactorRiskParity(uncapped, FactorModelConfig(window=120, max_factors=3))
    w = alloc.allocate(_ctx(r))
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert (w >= -1e-12).all() and w[1, 5] == 0.0
    capped = FactorRiskParity(ClassicConfig(long_only=True, max_weight=0.2))
    assert (capped.allocate(_ctx(r)) <= 0.2 + 1e-9).all()
    assert all(s in ("factor_risk_parity", "factor_risk_parity:nearest") for s in alloc.source_)
    for res, src in zip(alloc.results_, alloc.source_, strict=True):
        assert res is not None and res.exact == (src == "factor_risk_parity")
    # the window is used: a different window gives a different book
    other = FactorRiskParity(uncapped, FactorModelConfig(window=60, max_factors=3))
    assert not np.allclose(other.allocate(_ctx(r)), w)
    with pytest.raises(ValidationError, match="window"):
        FactorModelConfig(window=2)
    with pytest.raises(ValidationError, match="variance_threshold"):
        FactorModelConfig(variance_threshold=1.5)
    with pytest.raises(ValueError, match="variance_threshold"):
        config_from_dict({"baselines": {"factor_model": {"variance_threshold": 0}}})
    cfg = config_from_dict({"baselines": {"factor_model": {"max_factors": 2, "window": 90}}})
    built = ev.build_baselines(cfg, ["frp"])["factor_risk_parity"]
    assert isinstance(built, FactorRiskParity)
    assert (built.factors.max_factors, built.factors.window) == (2, 90)
    assert "factor_risk_parity" in baseline_names("all")


def test_factor_risk_parity_walks_the_env_with_zero_breaches(tmp_path: Path) -> None:
    """Through the env's gates and costs: 0 invariant breaches; the report shows the
    factor attribution (which adds up to each book's market return) and the diagnostics."""
    cfg = load_config(None, [
        "data.source=synthetic", "data.synthetic.n_assets=6", "data.synthetic.n_days=720",
        "data.synthetic.n_sectors=3", "data.synthetic.seed=5",
        "data.splits.train_end=2001-06-29", "data.splits.validation_end=2001-12-31",
        "baselines.lookback=126", "baselines.rebalance_every=21",
        "risk.max_symbol_weight=0.4", "evaluation.var_window=150",
    ])  # fmt: skip
    market = load_market(cfg.data)
    allocs = list(ev.build_baselines(cfg, ["factor_risk_parity", "equal_weight"]).values())
    res = ev.evaluate(allocs, market, cfg)
    bt = res.backtest("factor_risk_parity")
    assert int(bt.invariant_breaches.sum()) == 0
    assert bt.allocator_errors == 0
    assert sum(bt.rebalance_sources.values()) > 0
    for b in res.backtests:
        fa = res.factor_attribution[b.name]
        np.testing.assert_allclose(
            fa["per_period"].sum(axis=1) + fa["specific"], b.asset_pnl.sum(axis=1), atol=1e-15
        )
        assert fa["costs"] + sum(fa["total"].values()) == pytest.approx(b.returns.sum())
        assert res.diagnostics[b.name]["effective_factors"] >= 1.0
    paths = write_report(res, tmp_path / "report")
    text = paths["markdown"].read_text()
    assert "## Factor attribution" in text and "## Risk diagnostics" in text
    saved = json.loads(paths["results"].read_text())
    assert len(saved["factor_attribution"]["factor_risk_parity"]["specific"]) == bt.n_steps


def test_qp_pairwise_correlation_cap_excludes_the_smaller_twin() -> None:
    """Assets 0 and 1 are near twins (correlation ~0.99) with the best scores: without the
    cap the QP holds both at the per-name cap; with a 0.9 cap it pins one to 0 (a tie in
    weight: the later name), re-solves, and no two held names correlate above 0.9."""
    rng = np.random.default_rng(11)
    base = rng.normal(0.0, 0.01, (250, 6))
    base[:, 1] = base[:, 0] + rng.normal(0.0, 0.0015, 250)
    ctx = AllocationContext(
        returns=base[None],
        current_weights=np.zeros((1, 6)),
        symbols=tuple(f"S{i}" for i in range(6)),
        sector_ids=np.arange(6, dtype=np.intp),
        regime=np.zeros(1, dtype=np.int64),
        regime_confidence=np.ones(1),
        scores=np.array([[2.0, 1.9, 0.5, 0.4, 0.3, 0.2]]),
    )
    # every limit set (used as given); one name per sector: a sector cap of 1 cannot bind
    common = {"per_name_cap": 0.4, "long_only": True, "sector_cap": 1.0, "max_gross": 1.0,
              "max_net": 1.0}  # fmt: skip
    free = QPAllocator(QPConfig(**common)).allocate(ctx)[0]
    assert free[0] > 1e-3 and free[1] > 1e-3
    capped_qp = QPAllocator(QPConfig(**common, max_pair_correlation=0.9))
    w = capped_qp.allocate(ctx)[0]
    corr = pair_correlations(base)
    assert corr[0, 1] > 0.9
    held = np.flatnonzero(np.abs(w) > 1e-6)
    sub = corr[np.ix_(held, held)] - np.eye(held.size)
    assert sub.max() <= 0.9
    assert capped_qp.excluded_[0, 1] and not capped_qp.excluded_[0, 0]
    assert w[1] == pytest.approx(0.0, abs=1e-9) and w.sum() == pytest.approx(1.0, abs=1e-6)
    steps = [step for step, _ in capped_qp.fallback_chain_[0]]
    assert "correlation_cap" in steps and capped_qp.source_ == ["qp:CLARABEL"]
    # a cap no book of two names or more meets (-0.5), with names capped at 0.5: the
    # exclusions end in an infeasible re-solve, and the book kept, which breaks the cap,
    # is labelled a fallback
    tight = QPAllocator(QPConfig(**{**common, "per_name_cap": 0.5}, max_pair_correlation=-0.5))
    tight.allocate(ctx)
    assert tight.source_ == ["qp:CLARABEL:correlation_cap_failed"]
    assert tight.fallback_chain_[0][-1][1].startswith("failed: exclude name")
    with pytest.raises(ValidationError, match="max_pair_correlation"):
        QPConfig(max_pair_correlation=1.0)
