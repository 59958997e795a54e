"""The study's pooled numbers follow ``cfg.evaluation`` and count the DSR's trials by the
evaluation's rule: on the same series and ledger, :func:`allocgym.study._summarize` gives
what :func:`allocgym.evaluation.summarize` gives."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from allocgym import evaluation as ev
from allocgym import study
from allocgym.config import EvaluationConfig, load_config
from allocgym.envs import core
from allocgym.ledger import TrialsLedger
from allocgym.stats import probabilistic_sharpe_ratio, sharpe_moments

N_BARS = 200

SETTINGS = [
    "evaluation.periods_per_year=52",
    "evaluation.cvar_alpha=0.9",
    "evaluation.bootstrap.alpha=0.2",
    "evaluation.bootstrap.n_boot=300",
    "evaluation.bootstrap.mean_block=5",
    "evaluation.bootstrap.seed=7",
]


def _backtest(name: str, kind: str, returns: np.ndarray, turnover: np.ndarray) -> ev.Backtest:
    """A one-asset backtest carrying only a return and a turnover series."""
    n = returns.shape[0]
    return ev.Backtest(
        name=name, kind=kind, group="ppo" if kind == "agent" else name, seed=0,
        symbols=("S0",), dates=np.arange(n).astype("datetime64[D]").astype("datetime64[ns]"),
        bars=np.arange(1, n + 1), returns=returns, equity=np.cumprod(1.0 + returns),
        weights=np.ones((n, 1)), proposed=np.ones((n, 1)), approved=np.ones((n, 1)),
        symbol_reasons=np.zeros((n, 1), np.int64), portfolio_reasons=np.zeros(n, np.int64),
        reason_counts=np.zeros((n, len(core.REASON_NAMES)), np.int64),
        reason_names=tuple(core.REASON_NAMES), side=np.zeros((n, 1), np.int8),
        trades=np.zeros((n, 1)), costs=np.zeros(n), turnover=turnover, intervention=np.zeros(n),
        regime=np.zeros(n, np.int8), asset_pnl=np.zeros((n, 1)), cost_pnl=np.zeros(n),
        strategy_pnl=None, strategy_names=(), invariant_breaches=np.zeros(n, np.int64),
        invariant_messages=(), allocator_errors=0, initial_equity=1.0, equity_scale=1.0,
        split="test",
    )  # fmt: skip


def _backtests() -> list[ev.Backtest]:
    rng = np.random.default_rng(11)
    r = rng.normal(0.001, 0.01, size=(3, N_BARS))
    r[0] += 0.5 * r[1]  # the agent is correlated with 1/N, as a real one is
    turn = rng.uniform(0.0, 0.05, size=(3, N_BARS))
    kinds = (("ppo_s0", "agent"), ("equal_weight", "baseline"), ("hrp", "baseline"))
    return [_backtest(n, k, r[i], turn[i]) for i, (n, k) in enumerate(kinds)]


def _outcomes(backtests: list[ev.Backtest]) -> study._FoldOutcomes:
    """One fold whose allocators are ``backtests``."""
    return study._FoldOutcomes(
        returns=[{bt.name: bt.returns for bt in backtests}],
        turnover=[{bt.name: bt.turnover for bt in backtests}],
        rows=[], dates=[backtests[0].dates], group_members={},
        agents=[bt for bt in backtests if bt.kind == "agent"],
    )  # fmt: skip


def _ledger(path: Path) -> TrialsLedger:
    """3 completed runs (one without a finite validation Sharpe), 2 stopped, 1 failed, and
    a completed run whose resumed attempt failed: N = 6 trials, 3 Sharpe ratios."""
    ledger = TrialsLedger(path)
    records = [("completed", 0.9), ("completed", 1.1), ("completed", None), ("stopped", 0.4),
               ("stopped", 0.2), ("failed", None), ("completed", 0.5)]  # fmt: skip
    for k, (status, sharpe) in enumerate(records):
        metrics = {"val_sharpe": sharpe} if status == "completed" else {}
        ledger.append({"config_hash": f"h{k}", "seed": 0, "run_dir": str(path.parent / f"r{k}"),
                       "status": status, "metrics": metrics})  # fmt: skip
    ledger.append({"config_hash": "h6", "seed": 0, "run_dir": str(path.parent / "r6"),
                   "status": "failed"})  # fmt: skip
    return ledger


def test_study_numbers_follow_the_evaluation_settings(tmp_path) -> None:
    """periods_per_year 52, CVaR at 0.9, an 80% interval from 300 resamples of blocks of 5:
    the study's pooled numbers equal the evaluation's on the same series, the Sharpe ratio
    is annualised with sqrt(52), and the tables say "80% CI" and "CVaR90"."""
    ecfg = load_config(None, SETTINGS).evaluation
    backtests = _backtests()
    ledger = _ledger(tmp_path / "trials.jsonl")
    _, pooled, trials = study._summarize(_outcomes(backtests), ledger, ecfg)
    evaluated = ev.summarize(backtests, ecfg, ledger=ledger)
    for bt in backtests:
        mine, theirs = pooled[bt.name], evaluated.metrics[bt.name]
        assert mine["sharpe"] == theirs["sharpe"]
        assert mine["ann_return"] == theirs["ann_return"]
        assert mine["volatility"] == theirs["ann_volatility"]
        assert mine["max_drawdown"] == theirs["max_drawdown"]
        assert mine["cvar"] == theirs["cvar"]
        assert mine["turnover_per_year"] == theirs["turnover"]
        assert mine["dsr"] == theirs["dsr"]
        r = bt.returns
        assert mine["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(52))
        assert mine["volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(52))
        assert mine["cvar"] == pytest.approx(-np.sort(r)[: N_BARS // 10].mean())
        assert mine["turnover_per_year"] == pytest.approx(bt.turnover.mean() * 52)
    paired = pooled["ppo_s0"]["paired"]
    assert set(paired) == {"equal_weight", "hrp"}
    assert set(pooled["hrp"]["paired"]) == {"equal_weight"}
    for ref in ("equal_weight", "hrp"):
        theirs = dict(evaluated.paired["rows"]["ppo_s0"][ref])
        assert theirs.pop("reference") == ref
        assert paired[ref] == theirs
    assert paired["equal_weight"]["level"] == pytest.approx(0.8)
    assert (paired["equal_weight"]["n_boot"], paired["equal_weight"]["mean_block"]) == (300, 5)
    assert trials["n_trials"] == evaluated.dsr["n_trials"] == 6

    result = study.StudyResult(tmp_path, [], pooled, trials, study._settings(ecfg))
    header, rows, _, _ = study._tables(result, ["ppo_s0", "equal_weight", "hrp"])
    assert "ΔSharpe vs 1/N [80% CI]" in header and "CVaR90" in header
    assert rows[0][1] == f"{pooled['ppo_s0']['sharpe']:.2f}"


def test_study_defaults_give_a_90_percent_interval_and_cvar95(tmp_path) -> None:
    ecfg = EvaluationConfig()
    _, pooled, trials = study._summarize(
        _outcomes(_backtests()), _ledger(tmp_path / "t.jsonl"), ecfg
    )
    result = study.StudyResult(tmp_path, [], pooled, trials, study._settings(ecfg))
    header = study._tables(result, ["ppo_s0"])[0]
    assert "ΔSharpe vs 1/N [90% CI]" in header and "CVaR95" in header
    r = _backtests()[0].returns
    assert pooled["ppo_s0"]["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))


def test_study_counts_trials_like_the_evaluation(tmp_path) -> None:
    """N is the ledger's completed and stopped runs (failed ones and a run's repeated lines
    do not count), as :func:`allocgym.evaluation.dsr_trial_set` counts them."""
    ecfg = EvaluationConfig()
    backtests = _backtests()
    ledger = _ledger(tmp_path / "trials.jsonl")
    _, pooled, trials = study._summarize(_outcomes(backtests), ledger, ecfg)
    ts = ev.dsr_trial_set(backtests, ecfg, ledger)
    assert ledger.n_trials == 6 and ledger.trial_sharpes().size == 3
    assert trials["n_trials"] == ts.n_trials == 6
    assert trials["source"] == "ledger" and trials["sr0"] == ts.sr0
    assert trials["weak"] is ts.weak is False  # records without a config_id: unknown
    assert trials["counts"] == {"completed": 4, "failed": 1, "stopped": 2}
    # the DSR deflates by those 6 trials: below the undeflated PSR
    sr, skew, kurt, n_obs = sharpe_moments(backtests[0].returns)
    assert pooled["ppo_s0"]["dsr"] < probabilistic_sharpe_ratio(sr, n_obs, skew, kurt)
