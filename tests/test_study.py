"""Walk-forward study: fold planning by hand, and the whole command end to end on a tiny
synthetic market (train per fold, test every allocator on the same bars, stitch, ledger)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from allocgym import study
from allocgym.cli import app
from allocgym.config import load_config, write_run_metadata
from allocgym.data import synthetic, walk_forward_splits
from allocgym.errors import ConfigError
from allocgym.ledger import TrialsLedger
from allocgym.stats import expected_max_sharpe
from allocgym.study import parse_years, plan_folds, stitch

TINY = [
    "data.source=synthetic",
    "data.synthetic.n_assets=5",
    "data.synthetic.n_days=1520",
    "data.synthetic.n_sectors=5",
    "data.synthetic.seed=2",
    "env.episode_length=32",
    "env.action_mode=tilt",
    "env.decision_interval=5",
    "train.total_timesteps=256",
    "train.n_envs=4",
    "train.n_steps=32",
    "train.batch_size=64",
    "train.n_epochs=1",
    "train.eval_freq=128",
    "train.eval_episodes=2",
    "train.checkpoint_freq=0",
    "train.device=cpu",
    "train.asset_set.encoder=[8]",
    "train.asset_set.global_encoder=[8]",
    "train.asset_set.head=[8]",
]


def test_parse_years() -> None:
    assert parse_years("2011..2013") == [2011, 2012, 2013]
    assert parse_years("2018, 2015,2015") == [2015, 2018]
    for bad in ("2013..2011", "twenty", ""):
        with pytest.raises(ConfigError, match=r"2011\.\.2022"):
            parse_years(bad)


def test_plan_folds_by_hand() -> None:
    market = synthetic(n_assets=3, n_days=1520, seed=0)  # 2000-01-03 .. 2005-10
    assert str(market.dates[-1])[:4] == "2005"
    folds = plan_folds(market, test_years=[2004, 2005], validation_years=1)
    assert [f.name for f in folds] == ["fold_2004", "fold_2005"]
    f = folds[0]
    assert (f.train_end, f.validation_end, f.test_end) == ("2002-12-31", "2003-12-31", "2004-12-31")
    cfg = load_config(None, [f"{o}" for o in f.overrides()])
    sp = walk_forward_splits(market, cfg.data.splits)
    test_dates = market.dates[sp["test"].start : sp["test"].stop]
    assert str(test_dates[0])[:4] == "2004" and str(test_dates[-1])[:4] == "2004"
    assert sp["test"].start == sp["validation"].stop + cfg.data.splits.embargo_days
    # the default: the last complete years (2005 is incomplete here)
    assert [f.test_year for f in plan_folds(market, n_folds=1, validation_years=1)] == [2004]
    with pytest.raises(ConfigError, match="do not fit"):
        plan_folds(market, test_years=[2003], validation_years=1)
    with pytest.raises(ConfigError, match="not both"):
        plan_folds(market, test_years=[2004], n_folds=2)


def test_plan_folds_on_data_too_short_for_any_fold() -> None:
    short = synthetic(n_assets=3, n_days=700, seed=0)  # 2000-01..2002-09: three years
    with pytest.raises(ConfigError, match=r"a fold needs 3 training and 2 validation years"):
        plan_folds(short, n_folds=1)


def test_stitch_keeps_time_order_and_common_allocators() -> None:
    a = {"x": np.array([1.0, 2.0]), "y": np.array([0.0, 0.0])}
    b = {"x": np.array([3.0]), "z": np.array([9.0])}
    out = stitch([a, b])
    assert list(out) == ["x"] and out["x"].tolist() == [1.0, 2.0, 3.0]


@pytest.mark.slow
def test_study_end_to_end(tmp_path) -> None:
    """Two yearly folds x two seeds: four trainings in the ledger, every allocator tested on
    the same bars, the stitched series the concatenation of the folds', paired tests; with
    weekly annualisation and an 80% interval, study.json and the folds' results.json agree."""
    root = tmp_path / "study"
    args = ["study", "--test-years", "2004..2005", "--validation-years", "1", "--seeds", "0,1",
            "--baselines", "equal_weight,hrp", "--run-dir", str(root)]  # fmt: skip
    settings = ["evaluation.periods_per_year=52", "evaluation.cvar_alpha=0.9",
                "evaluation.bootstrap.alpha=0.2"]  # fmt: skip
    for o in [*TINY, *settings]:
        args += ["--set", o]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "beat 1/N in" in res.output
    ledger = TrialsLedger(root / "trials.jsonl")
    recs = ledger.read()
    assert len(recs) == 4 and {r.status for r in recs} == {"completed"}
    assert sorted((r.run_dir.split("/")[-2], r.seed) for r in recs) == [
        ("fold_2004", 0), ("fold_2004", 1), ("fold_2005", 0), ("fold_2005", 1)
    ]  # fmt: skip
    data = json.loads((root / "study.json").read_text())
    assert [f["test_year"] for f in data["folds"]] == [2004, 2005]
    mean = "ppo (seed mean)"
    pooled = data["pooled"]
    assert {mean, "equal_weight", "hrp"} <= set(pooled)
    assert pooled[mean]["paired"]["equal_weight"]["n_obs"] == sum(
        f["n_bars"] for f in data["folds"]
    )
    # each fold selects on its own validation year: two selections of two trials, V the
    # pooled within-fold variance of the per-period validation Sharpe ratios
    folds: dict[str, list[float]] = {}
    for r in recs:
        folds.setdefault(r.selection_key, []).append(r.val_sharpe / math.sqrt(r.periods_per_year))
    assert len(folds) == 2 and all(len(v) == 2 for v in folds.values())
    pooled_v = sum((a - b) ** 2 / 2 for a, b in folds.values()) / 2
    trials = data["trials"]
    assert trials["n_trials"] == 2 and trials["n_selections"] == 2
    assert trials["sharpe_variance"] == pytest.approx(pooled_v, rel=1e-12)
    assert trials["sr0"] == pytest.approx(
        expected_max_sharpe([0.0, math.sqrt(2 * pooled_v)], 2), rel=1e-12
    )
    assert pooled[mean]["dsr"] is not None
    assert trials["weak"] and "| DSR (weak) |" in (root / "study.md").read_text()
    assert pooled[mean]["paired"]["equal_weight"]["level"] == pytest.approx(0.8)
    assert data["settings"]["periods_per_year"] == 52 and data["settings"]["cvar_alpha"] == 0.9
    # each fold's results.json holds its own walk; the stitched 1/N is their concatenation
    for f in data["folds"]:
        fold = json.loads((root / f["fold"] / "results.json").read_text())
        meta = fold["meta"]
        assert meta["start"][:4] == meta["end"][:4] == str(f["test_year"])  # the test year only
        assert meta["n_bars"] == f["n_bars"]
        assert meta["trials_ledger"] == str(root / "trials.jsonl")
        for name in ("equal_weight", "hrp", *data["meta"]["agents"]):
            mine, theirs = f["metrics"][name], fold["metrics"][name]
            assert (mine["sharpe"], mine["cvar"]) == (theirs["sharpe"], theirs["cvar"])
    for name in ("study.md", "study.html", "study_equity.png", "study_folds.png"):
        assert (root / name).stat().st_size > 500
    assert "[80% CI]" in (root / "study.md").read_text()
    assert (
        "not distinguishable" in (root / "study.md").read_text()
        or "1/N" in (root / "study.md").read_text()
    )
    # a finished study is not overwritten
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "already holds a study" in str(again.exception)


def _reuse_setup(tmp_path, saved: list[str], finished: bool):
    """One fold x seed 0 under ``tmp_path``, its run directory holding a config saved with
    ``saved`` overrides (and a train_summary.json when ``finished``)."""
    market = synthetic(n_assets=5, n_days=1520, seed=2)
    folds = plan_folds(market, test_years=[2005], validation_years=1)
    run_dir = tmp_path / folds[0].name / "seed_000"
    cfg = load_config(None, [*TINY, *saved, *folds[0].overrides(), "train.seed=0"])
    write_run_metadata(run_dir, cfg)
    if finished:
        (run_dir / "train_summary.json").write_text("{}\n")
    jobs: list = []

    def train_folds(*overrides: str) -> None:
        ledger = TrialsLedger(tmp_path)
        study._train_folds(market, folds, [0], tmp_path, ledger, [*TINY, *overrides], None,
                           lambda _msg: None, lambda j, _m, _l: jobs.extend(j))  # fmt: skip

    return train_folds, jobs, run_dir


def test_a_finished_run_of_another_config_is_refused_not_reported_under_this_one(tmp_path) -> None:
    """An interrupted study re-run in its --run-dir with another step count would evaluate
    the old models under the new config: refused, naming the key; the same config (or only
    another device) reuses the run without training it again."""
    train_folds, jobs, run_dir = _reuse_setup(tmp_path, [], finished=True)
    with pytest.raises(
        ConfigError, match=r"1 run\(s\) .*train\.total_timesteps: 256 -> 512.*new --run-dir"
    ):
        train_folds("train.total_timesteps=512")
    assert run_dir.relative_to(tmp_path).as_posix() == "fold_2005/seed_000"
    with pytest.raises(ConfigError, match=r"fold_2005/seed_000 \(trained: train\.learning_rate"):
        train_folds("train.learning_rate=0.001")
    train_folds("train.device=auto")
    train_folds()
    assert jobs == []  # reused twice, never trained


def test_an_interrupted_run_continues_and_may_extend_but_not_change(tmp_path) -> None:
    """No train_summary.json: the run is trained again (train resumes it from its latest
    checkpoint); a longer run is allowed, another learning rate is refused up front."""
    train_folds, jobs, run_dir = _reuse_setup(tmp_path, [], finished=False)
    with pytest.raises(ConfigError, match=r"train\.learning_rate"):
        train_folds("train.learning_rate=0.001")
    assert jobs == []
    train_folds("train.total_timesteps=512")
    assert [(j[1], j[0].train.total_timesteps) for j in jobs] == [(run_dir, 512)]
    # a checkpoint past the step count asked for: resuming would pass it off as shorter
    (run_dir / "checkpoints" / "step_000000000384").mkdir(parents=True)
    (run_dir / "checkpoints" / "step_000000000384" / "state.pkl").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"begun: its latest checkpoint is at step 384, past "):
        train_folds()


@pytest.mark.slow
def test_an_interrupted_study_run_resumes_from_its_checkpoint(tmp_path) -> None:
    """A run killed after its checkpoint at step 128 of 256 (no later checkpoint, no final
    model, no train_summary.json): the study continues it from there, trains the rest,
    and the ledger counts it once."""
    market = synthetic(n_assets=5, n_days=1520, seed=2)
    folds = plan_folds(market, test_years=[2005], validation_years=1)
    overrides = [*TINY, "train.checkpoint_freq=128"]
    ledger = TrialsLedger(tmp_path)
    study._train_folds(market, folds, [0], tmp_path, ledger, overrides, None, lambda _m: None, None)
    run_dir = tmp_path / folds[0].name / "seed_000"
    checkpoints = sorted((run_dir / "checkpoints").iterdir())
    assert [c.name for c in checkpoints] == ["step_000000000128", "step_000000000256"]
    shutil.rmtree(checkpoints[-1])
    shutil.rmtree(run_dir / "final")
    (run_dir / "train_summary.json").unlink()
    study._train_folds(market, folds, [0], tmp_path, ledger, overrides, None, lambda _m: None, None)
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["resumed_from"] == 128 and summary["num_timesteps"] == 256
    assert len(ledger.history()) == 2 and len(ledger.read()) == 1  # one trial


def test_the_study_evaluates_only_the_seeds_it_asks_for(tmp_path, monkeypatch) -> None:
    """A fold folder can hold runs of seeds an earlier start asked for: each fold's
    evaluation is told the study's seeds, so it walks those alone."""
    import allocgym.evaluation as ev

    asked: list = []

    class Stop(Exception):
        pass

    def fake_evaluate_run(folder, **kw):
        asked.append((folder.name, kw["seeds"]))
        raise Stop

    monkeypatch.setattr(ev, "evaluate_run", fake_evaluate_run)
    market = synthetic(n_assets=5, n_days=1520, seed=2)
    folds = plan_folds(market, test_years=[2005], validation_years=1)
    ecfg = load_config(None, TINY).evaluation
    with pytest.raises(Stop):
        study._evaluate_folds(market, folds, tmp_path, TrialsLedger(tmp_path), None, TINY, ecfg,
                              lambda _m: None, [0, 1])  # fmt: skip
    assert asked == [("fold_2005", [0, 1])]


@pytest.mark.parametrize(
    ("args", "years"),
    [
        (["--set", "data.splits.n_folds=2"], [2021, 2022]),  # the setting, without --folds
        (["--set", "data.splits.n_folds=2", "--folds", "3"], [2020, 2021, 2022]),
        (["--set", "data.splits.n_folds=2", "--test-years", "2019"], [2019]),
    ],
)
def test_study_folds_default_to_the_config(tmp_path, monkeypatch, args, years) -> None:
    """``data.splits.n_folds`` sets how many test years ``allocgym study`` runs when neither
    ``--folds`` nor ``--test-years`` is given (the setting had no effect before)."""
    planned: list = []

    class Stop(Exception):
        pass

    def fake_run_study(cfg, market, folds, *a, **kw):
        planned.append([f.test_year for f in folds])
        raise Stop

    monkeypatch.setattr(study, "run_study", fake_run_study)
    result = CliRunner().invoke(app, ["study", *args, "--run-dir", str(tmp_path / "s")])
    assert isinstance(result.exception, Stop), result.output
    assert planned == [years]


@pytest.mark.parametrize(
    ("asked", "evaluated"),
    [
        ("hrp", ("equal_weight", "hrp")),
        ("none", ("equal_weight", "hrp")),
        ("qp,1/n", ("hrp", "qp", "equal_weight")),
    ],
)
def test_a_study_always_evaluates_its_paired_references(tmp_path, monkeypatch, asked, evaluated):
    """The study's intervals are against 1/N and HRP: a --baselines list without them got
    a KeyError after every fold had trained and been evaluated."""
    got: list = []
    said: list[str] = []

    class Stop(Exception):
        pass

    def fake_evaluate(market, folds, root, ledger, baselines, *a):
        got.append(baselines)
        raise Stop

    monkeypatch.setattr(study, "_train_folds", lambda *a: None)
    monkeypatch.setattr(study, "_evaluate_folds", fake_evaluate)
    market = synthetic(n_assets=5, n_days=1520, seed=2)
    folds = plan_folds(market, test_years=[2005], validation_years=1)
    cfg = load_config(None, TINY)
    with pytest.raises(Stop):
        study.run_study(
            cfg, market, folds, [0], tmp_path / "s", baselines=asked, progress=said.append
        )
    assert got == [evaluated]
    assert any("added (the study's paired references)" in m for m in said)
    with pytest.raises(ConfigError, match="baseline 'hpr' is unknown"):
        study.run_study(cfg, market, folds, [0], tmp_path / "t", baselines="hpr")
