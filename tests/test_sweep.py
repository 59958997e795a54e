"""Sweeps: the search space checked before anything starts, the validation reports that
drive ASHA, a 4-trial sweep on a local Ray (ledger, ASHA stops, best_config.yaml) and a
killed sweep that resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from allocgym.cli import app
from allocgym.config import config_hash, load_config
from allocgym.errors import ConfigError
from allocgym.ledger import TrialsLedger
from allocgym.search_space import load_space, space_from_dict

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY = {
    "data": {
        "source": "synthetic",
        "synthetic": {"n_assets": 5, "n_days": 1520, "n_sectors": 5, "seed": 2},
        "splits": {
            "train_end": "2002-12-31",
            "validation_end": "2003-12-31",
            "test_end": "2004-12-31",
        },
    },
    "risk": {"max_symbol_weight": 0.4, "max_sector_gross": 1.0},
    "env": {"episode_length": 32, "action_mode": "tilt", "decision_interval": 5},
    "train": {
        "total_timesteps": 512,
        "n_envs": 4,
        "n_steps": 32,
        "batch_size": 64,
        "n_epochs": 1,
        "eval_freq": 128,
        "eval_episodes": 2,
        "checkpoint_freq": 128,
        "device": "cpu",
        "eval_baselines": [],
        "asset_set": {"encoder": [8], "global_encoder": [8], "head": [8]},
    },
}
"""Trials of a second or two; the tilt prior sets the validation score from the first run."""

PRIORS = ["hrp", "risk_budgeting", "inverse_volatility", "equal_weight"]
SPACE = {
    "space": {
        "env.tilt_prior": {"choice": PRIORS},
        "train.learning_rate": {"loguniform": [1.0e-4, 1.0e-3]},
    },
    "asha": {"reduction_factor": 2},
}


def _write(tmp_path: Path, space: dict) -> tuple[Path, Path]:
    cfg, spc = tmp_path / "tiny.yaml", tmp_path / "space.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    spc.write_text(yaml.safe_dump(space))
    return cfg, spc


# ------------------------------------------------------------------ search space, no Ray


def test_shipped_space_loads_and_fits_the_shipped_config() -> None:
    space = load_space(ROOT / "configs/sweep/ppo.yaml")
    cfg = load_config(ROOT / "configs/train/ppo.yaml")
    space.check_against(cfg.model_dump(mode="json"), "asha")
    assert space.metric == "sharpe" and space.mode == "max"
    assert "train.learning_rate" in space.keys and space.grace_period == 20480
    # the starting point reproduces the hand-tuned config exactly
    (point,) = space.encoded_points()
    assert config_hash(space.apply(cfg.model_dump(mode="json"), point)) == config_hash(cfg)


def test_space_values_reach_the_config() -> None:
    space = space_from_dict(
        {
            "space": {
                "train.asset_set.encoder": {"choice": [[16], [32, 32]]},
                "train.n_epochs": {"int": [2, 4]},
                "train.gamma": {"uniform": [0.8, 0.9]},
            }
        }
    )
    by_key = {p.key: p for p in space.params}
    enc = by_key["train.asset_set.encoder"]
    assert enc.encoded and enc.encode([32, 32]) == "[32, 32]"  # Optuna takes scalars only
    cfg = space.apply(
        load_config().model_dump(mode="json"),
        {"train.asset_set.encoder": "[32, 32]", "train.n_epochs": 3.0, "train.gamma": 0.85},
    )
    assert cfg.train.asset_set.encoder == (32, 32)
    assert cfg.train.n_epochs == 3 and cfg.train.gamma == 0.85
    assert space.values({"train.n_epochs": 4}) == {"train.n_epochs": 4}
    # int bounds are both included in Tune's domain (its randint excludes the upper one)
    domain = by_key["train.n_epochs"].domain()
    assert (domain.lower, domain.upper) == (2, 5)


@pytest.mark.parametrize(
    ("space", "needle"),
    [
        ({"space": {"train.learnin_rate": {"uniform": [0, 1]}}},
         "'train.learnin_rate' is not a config key: train has no 'learnin_rate' (did you mean "
         "train.learning_rate?)"),
        ({"space": {"trian.gamma": {"uniform": [0, 1]}}}, "'trian.gamma' is not a config key"),
        ({"space": {"train.asset_set": {"choice": [1]}}}, "is a config section"),
        ({"space": {"train.gamma.x": {"uniform": [0, 1]}}}, "train.gamma is a value"),
        ({"space": {"train.gamma": {"normal": [0, 1]}}}, "unknown distribution 'normal'"),
        ({"space": {"train.gamma": {"uniform": [0.9, 0.8]}}}, "low < high"),
        ({"space": {"train.gamma": [0.8, 0.9]}}, "is not one distribution"),
        ({"space": {"train.n_epochs": {"int": [1.5, 3]}}}, "must be integers"),
        ({"space": {"train.learning_rate": {"loguniform": [0, 1]}}}, "low > 0"),
        ({"space": {}}, "'space' must map dotted config keys"),
        ({"space": {"train.gamma": {"uniform": [0.8, 0.9]}}, "metric": "alpha"},
         "metric 'alpha' is not a validation metric"),
        ({"space": {"train.gamma": {"uniform": [0.8, 0.9]}}, "points": [{"train.gamma": 0.95}]},
         "points[0] train.gamma = 0.95 is outside"),
        ({"space": {"train.gamma": {"uniform": [0.8, 0.9]}}, "sapce": {}}, "unknown keys ['sapce']"),
    ],
)  # fmt: skip
def test_space_refusals_name_the_dotted_key(space: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        space_from_dict(space)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("key", "values", "fixed"),
    [
        ("data.splits.validation_end", ["2014-12-31", "2016-12-31"], "data"),
        ("data.splits.embargo_days", [0, 5], "data"),
        ("data.default_adv_notional", [1e8, 5e8], "data"),
        ("env.split", ["train", "validation"], "env.split"),
        ("train.eval_split", ["validation", "train"], "train.eval_split"),
        ("evaluation.split", ["validation", "test"], "evaluation"),
        ("train.eval_episodes", [2, 16], "train.eval_episodes"),
        ("env.episode_length", [32, 200], "env.episode_length"),
    ],
)
def test_space_cannot_vary_the_data_the_splits_or_the_evaluation(
    key: str, values: list, fixed: str
) -> None:
    """A trial scored on other dates than its peers could select on their test split."""
    with pytest.raises(ConfigError) as info:
        space_from_dict({"space": {key: {"choice": values}}})
    assert f"search space key {key!r} cannot vary: {fixed} sets" in str(info.value)


def test_space_values_the_config_rejects_are_refused_up_front() -> None:
    base = load_config().model_dump(mode="json")
    bad = space_from_dict({"space": {"train.n_steps": {"choice": [64, 0]}}})
    with pytest.raises(ConfigError, match=r"search space train.n_steps = 0 is rejected"):
        bad.check_against(base, "none")
    clock = space_from_dict({"space": {"train.total_timesteps": {"choice": [1000, 2000]}}})
    clock.check_against(base, "none")
    with pytest.raises(ConfigError, match="--scheduler none"):
        clock.check_against(base, "asha")


def test_cli_refuses_an_unknown_key_before_anything_starts(tmp_path: Path) -> None:
    cfg, spc = _write(tmp_path, {"space": {"train.learning_rat": {"uniform": [0.1, 0.2]}}})
    folder = tmp_path / "sweep"
    start = time.perf_counter()
    res = CliRunner().invoke(app, ["sweep", "--config", str(cfg), "--space", str(spc),
                                   "--run-dir", str(folder)])  # fmt: skip
    assert isinstance(res.exception, ConfigError)
    assert "'train.learning_rat' is not a config key" in str(res.exception)
    assert "train.learning_rate" in str(res.exception)
    assert not folder.exists() and time.perf_counter() - start < 5
    import ray

    assert not ray.is_initialized()


def test_cli_resume_keeps_the_sweeps_own_options(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["sweep", "--run-dir", str(tmp_path), "--resume", "--trials", "8"]
    )
    assert isinstance(res.exception, ConfigError) and "drop --trials" in str(res.exception)
    res = CliRunner().invoke(app, ["sweep", "--run-dir", str(tmp_path / "none"), "--resume"])
    assert isinstance(res.exception, ConfigError) and "no sweep to resume" in str(res.exception)


# ------------------------------------------------------------------ the reports ASHA reads


def test_validation_reporter_reports_new_runs_and_turns_a_stop_into_stop_training(
    tmp_path: Path,
) -> None:
    from allocgym.agents.train import StopTraining
    from allocgym.sweep import ValidationReporter

    def record(step: int, score: float, drawdown: float) -> dict:
        return {"step": step, "score": score, "agent": {"sharpe": score, "max_drawdown": drawdown}}

    (tmp_path / "best").mkdir()
    evals = tmp_path / "evaluations.jsonl"
    sent: list[dict] = []
    rep = ValidationReporter(tmp_path, 512, "max_drawdown", sent.append)
    rep._on_rollout_start()  # nothing yet
    evals.write_text(json.dumps(record(128, 0.5, 0.10)) + "\n")
    (tmp_path / "best" / "eval.json").write_text(json.dumps(record(128, 0.5, 0.10)))
    rep._on_rollout_start()
    rep._on_rollout_start()  # no new validation run: no new report
    with evals.open("a") as fh:
        fh.write(json.dumps(record(256, float("nan"), 0.30)) + "\n")
    rep._on_rollout_start()
    # objective: the metric at the best checkpoint so far (training chose step 128)
    assert [(m["num_timesteps"], m["objective"], m["val_sharpe"]) for m in sent] == [
        (128, 0.10, 0.5), (256, 0.10, 0.5)
    ]  # fmt: skip
    assert sent[1]["val_sharpe_last"] == float("-inf") and sent[1]["total_timesteps"] == 512
    with evals.open("a") as fh:  # the end-of-training run is reported by the trial itself
        fh.write(json.dumps(record(512, 0.7, 0.05)) + "\n")
    rep._on_rollout_start()
    assert len(sent) == 2

    def stop(_metrics: dict) -> None:
        raise SystemExit(0)  # what Ray Tune's report does when the scheduler stops a trial

    stopper = ValidationReporter(tmp_path, 1024, "sharpe", stop)
    with pytest.raises(StopTraining, match="at step 512"):
        stopper._on_rollout_start()


# ------------------------------------------------------------------ on a local Ray


@pytest.mark.slow
def test_four_trial_sweep_on_local_ray(tmp_path: Path) -> None:
    """Four trials on a 2-CPU local Ray with Optuna and ASHA: four ledger lines, at least
    one trial stopped early, ordinary run directories, results table, best_config.yaml
    that trains with --config."""
    from allocgym.ledger import n_evaluations
    from allocgym.sweep import SweepOptions, run_sweep

    # The four priors as starting points, 1/N last: its validation Sharpe is the lowest at
    # the first rung, so ASHA stops it whatever order the two parallel trials report in.
    points = [{"env.tilt_prior": p, "train.learning_rate": 3.0e-4} for p in PRIORS]
    space = space_from_dict({**SPACE, "points": points})
    cfg = load_config(None, [f"{k}={json.dumps(v)}" for k, v in _flat(TINY).items()])
    folder = tmp_path / "sweep"
    lines: list[str] = []
    res = run_sweep(cfg, space, folder, options=SweepOptions(trials=4, seed=0), num_cpus=2,
                    echo=lines.append)  # fmt: skip
    recs = TrialsLedger(folder / "trials.jsonl").read()
    assert len(recs) == 4 and res.finished
    assert len({r.run_dir for r in recs}) == 4
    counts = res.counts
    assert counts["stopped"] >= 1 and counts["completed"] >= 1 and counts["failed"] == 0
    assert counts["completed"] + counts["stopped"] == 4
    stopped = [r for r in recs if r.status == "stopped"]
    assert all(r.metrics["num_timesteps"] < 512 and "ASHA" in r.note for r in stopped)
    # each trial's val_sharpe is the best of the validation runs its directory records
    assert all(r.metrics["n_evaluations"] == n_evaluations(r.run_dir) >= 1 for r in recs)
    # every trial, stopped ones included, is one selection on one market and split
    from allocgym.data import load_market
    from allocgym.ledger import market_fingerprint, selection_key

    key = selection_key(cfg, market_fingerprint(load_market(cfg.data)))
    assert {r.selection_key for r in recs} == {key}
    eq = next(row for row in res.rows if row["env.tilt_prior"] == "equal_weight")
    assert eq["status"] == "stopped"
    for rec in recs:  # every trial is an ordinary run directory
        run = Path(rec.run_dir)
        assert run.parent == folder / "trials"
        assert (run / "config.yaml").is_file() and (run / "tb").is_dir()
        assert (run / "evaluations.jsonl").is_file()
        assert (run / "config_hash.txt").read_text().strip() == rec.config_hash
    completed = [r for r in recs if r.status == "completed"]
    assert all((Path(r.run_dir) / "train_summary.json").is_file() for r in completed)
    # best first; the best is a completed trial with the highest validation Sharpe
    assert res.best is not None and res.best["status"] == "completed"
    assert res.best["val_sharpe"] == max(r.metrics["val_sharpe"] for r in completed)
    table = (folder / "results.md").read_text()
    assert table.count("| completed |") + table.count("| stopped |") == 4
    assert len((folder / "results.csv").read_text().strip().splitlines()) == 5
    progress = json.loads((folder / "progress.json").read_text())
    assert progress["completed"] + progress["stopped"] == 4 and progress["running"] == 0
    assert any(ln.startswith("stopped ") for ln in lines)
    # best_config.yaml is the best trial's config, its ledger the sweep's, and trains with
    # --config, the retraining recorded in the sweep's ledger
    best = load_config(res.best_config)
    best_run = Path(res.best["run_dir"])
    assert best.evaluation.trials_ledger == str((folder / "trials.jsonl").resolve())
    as_trained = best.model_copy(
        update={"evaluation": best.evaluation.model_copy(update={"trials_ledger": None})}
    )
    assert config_hash(as_trained) == (best_run / "config_hash.txt").read_text().strip()
    lines_before = len(TrialsLedger(folder).history())
    out = CliRunner().invoke(app, ["train", "--config", str(res.best_config), "--timesteps", "128",
                                   "--run-dir", str(tmp_path / "retrain")])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert (tmp_path / "retrain" / "final" / "model.zip").is_file()
    assert len(TrialsLedger(folder).history()) == lines_before + 1


def _flat(tree: dict, prefix: str = "") -> dict:
    out: dict = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _second_trial_checkpointed(folder: Path, ledger: TrialsLedger) -> bool:
    """The first trial is done and the second has a checkpoint and is in Tune's saved state."""
    done = {r.run_dir for r in ledger.read()}
    states = sorted((folder / "tune").glob("experiment_state-*.json"))
    if not done or not states:
        return False
    try:
        saved = json.loads(states[-1].read_text())["trial_data"]
    except (ValueError, KeyError):  # being written
        return False
    runs = [p for p in (folder / "trials").glob("*") if str(p) not in done]
    return len(saved) >= 2 and any(list(r.glob("checkpoints/step_*/state.pkl")) for r in runs)


@pytest.mark.slow
def test_killed_sweep_resumes(tmp_path: Path) -> None:
    """`kill` (SIGTERM) the sweep while its second trial trains; --resume finishes it: one
    ledger line per trial, the finished trial not trained again, the killed one continued
    from its checkpoint."""
    cfg, spc = _write(tmp_path, SPACE)
    folder = tmp_path / "sweep"
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    args = [str(BIN / "allocgym"), "sweep", "--config", str(cfg), "--space", str(spc),
            "--trials", "2", "--scheduler", "none", "--max-concurrent", "1",
            "--timesteps", "4096", "--run-dir", str(folder)]  # fmt: skip
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    ledger = TrialsLedger(folder / "trials.jsonl")
    try:
        deadline = time.monotonic() + 240
        while not _second_trial_checkpointed(folder, ledger):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the second trial did not start in time"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert len(ledger.read()) == 1
    first = ledger.read()[0]
    resumed = subprocess.run([*args[:2], "--run-dir", str(folder), "--resume"],
                             capture_output=True, text=True, env=env, cwd=tmp_path,
                             timeout=400)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming the sweep" in resumed.stdout
    recs = ledger.read()
    assert len(recs) == 2 and {r.status for r in recs} == {"completed"}
    assert len({r.run_dir for r in recs}) == 2 and recs[0] == first
    summaries = [json.loads((Path(r.run_dir) / "train_summary.json").read_text()) for r in recs]
    assert all(s["num_timesteps"] == 4096 for s in summaries)
    # the killed trial continued from its checkpoint instead of starting over
    assert sum(s["resumed_from"] is not None for s in summaries) == 1
    rows = (folder / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and (folder / "best_config.yaml").is_file()
    assert len(list((folder / "trials").glob("*"))) == 2  # nothing abandoned


@pytest.mark.slow
def test_bench_sweep_reports_throughput_and_overhead() -> None:
    from allocgym.bench.sweep import run

    rows, notes = run(trials=2, timesteps=256, repeat=1, num_cpus=2)
    assert [r["way"] for r in rows] == ["serial", "ray 2 cpu", "ray 1 cpu"]
    for row in rows:
        assert row["wall s"] > 0 and row["trials/hour"] == pytest.approx(2 / row["wall s"] * 3600)
        assert row["trial CPU s"] > 0 and row["driver CPU s"] > 0
    assert rows[0]["x serial"] == 1.0
    # the serial way's CPU time is this process's; on Ray the driver only waits
    assert rows[1]["driver CPU s"] < rows[1]["trial CPU s"]
    assert notes[0].startswith("Ray overhead per trial: ") and "load average" in notes[1]
