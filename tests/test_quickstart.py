"""`allocgym quickstart` end to end on a tiny synthetic market (the demo's code path)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from tiny_configs import TINY_DATA, TINY_PPO
from typer.testing import CliRunner

from allocgym.cli import QUICKSTART_CONFIG, app

TINY = [*TINY_DATA, *TINY_PPO, "train.eval_freq=0", "train.checkpoint_freq=0"]


def run_quickstart(run_dir: Path, *args: str) -> str:
    sets = [x for item in TINY for x in ("--set", item)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(
            app, ["quickstart", "--run-dir", str(run_dir), "--timesteps", "64", *args, *sets]
        )
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res.output


def test_quickstart_trains_evaluates_and_reports(tmp_path: Path) -> None:
    out = run_quickstart(tmp_path / "qs", "--baselines", "1/n,hrp", "--no-export")
    run = tmp_path / "qs"
    # trained one seed with the requested budget, one intra-op torch thread
    summary = json.loads((run / "seed_000" / "train_summary.json").read_text())
    assert summary["num_timesteps"] == 64
    cfg_text = (run / "seed_000" / "config.yaml").read_text()
    assert "torch_threads: 1" in cfg_text
    assert any((run / "seed_000" / "tb").iterdir())
    # evaluated against the baselines on the test split; table and paths printed
    data = json.loads((run / "results.json").read_text())
    assert set(data["series"]) == {"ppo_seed0", "equal_weight", "hrp"}
    assert data["meta"]["split"] == "test"
    assert all(m["invariant_breaches"] == 0 for m in data["metrics"].values())
    for text in ("Out-of-sample metrics", "ppo_seed0", "equal_weight", "report:",
                 "tensorboard --logdir", "invariant breaches (all allocators): 0"):  # fmt: skip
        assert text in out, text
    assert (run / "report.html").is_file() and (run / "plots" / "dashboard.png").is_file()
    assert not (run / "frozen").exists()
    # one source of truth: the README's train config, with the command line on top
    assert f"config: {QUICKSTART_CONFIG}" in out
    assert "action_mode: tilt" in cfg_text and "decision_interval: 5" in cfg_text


@pytest.mark.slow
def test_quickstart_with_seeds_and_export(tmp_path: Path) -> None:
    out = run_quickstart(tmp_path / "qs", "--seeds", "0,1", "--baselines", "1/n")
    run = tmp_path / "qs"
    data = json.loads((run / "results.json").read_text())
    assert data["groups"]["ppo"]["n_seeds"] == 2
    assert "ppo (mean ± std, 2 seeds)" in out
    manifest = json.loads((run / "frozen" / "manifest.json").read_text())
    assert manifest["symbols"] == data["meta"]["symbols"]
    assert "frozen policy" in out
    # the exported bundle is itself evaluable
    from allocgym.evaluation import evaluate_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate_run(run / "frozen", baselines="none")
    assert [bt.kind for bt in res.backtests] == ["agent"]
    assert res.metrics[res.backtests[0].name]["invariant_breaches"] == 0
