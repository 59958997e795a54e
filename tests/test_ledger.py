"""Trials ledger: records, counts, Sharpe units, concurrent appends, corrupt lines."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_configs import TINY_DATA

from allocgym.config import load_config
from allocgym.data import load_market
from allocgym.errors import ConfigError, DataError
from allocgym.evaluation import ONE_CONFIGURATION, dsr_trial_set
from allocgym.ledger import (
    LEDGER_FILENAME,
    TrialRecord,
    TrialsLedger,
    configuration_id,
    find_ledger,
    market_fingerprint,
    selection_key,
)
from allocgym.stats import expected_max_sharpe


def _record(seed: int, status: str = "completed", sharpe: float | None = 1.0, **kw) -> dict:
    metrics = {} if status != "completed" and sharpe is None else {"val_sharpe": sharpe}
    return {
        "config_hash": "abc123",
        "seed": seed,
        "run_dir": f"study/run_{seed}",
        "status": status,
        "metrics": metrics,
        **kw,
    }


def test_append_and_read_round_trip(tmp_path: Path) -> None:
    led = TrialsLedger(tmp_path / LEDGER_FILENAME)
    assert led.read() == [] and led.n_trials == 0  # no file yet: an empty study
    written = led.append(_record(0, sharpe=1.5, started_at="2026-01-01T00:00:00+00:00"))
    assert written.recorded_at  # filled in on append
    led.append(TrialRecord("abc123", 1, "study/run_1", "failed", note="CUDA out of memory"))
    recs = led.read()
    assert recs == [written, recs[1]]
    assert recs[0].metrics == {"val_sharpe": 1.5} and recs[0].periods_per_year == 252.0
    assert recs[1].status == "failed" and recs[1].note == "CUDA out of memory"
    # one JSON object per line, sorted keys
    lines = (tmp_path / LEDGER_FILENAME).read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["seed"] == 0
    # a directory means its trials.jsonl
    assert TrialsLedger(tmp_path).path == tmp_path / LEDGER_FILENAME


def test_counts_and_sharpes_by_status(tmp_path: Path) -> None:
    """4 completed (one with a non-finite Sharpe), 1 stopped, 1 failed.

    N counts completed + stopped = 5; the Sharpe ratios are the 3 finite completed ones,
    per period = annual / sqrt(252) (or / sqrt(52) for the weekly record).
    """
    led = TrialsLedger(tmp_path / LEDGER_FILENAME)
    led.append(_record(0, sharpe=0.5))
    led.append(_record(1, sharpe=1.0))
    led.append(_record(2, sharpe=float("nan")))  # stored as null, left out of the Sharpes
    led.append(_record(3, sharpe=2.0, periods_per_year=52.0))
    led.append(_record(4, status="stopped", sharpe=None))
    led.append(_record(5, status="failed", sharpe=None))
    assert led.n_trials == 5
    assert led.counts() == {"completed": 4, "failed": 1, "stopped": 1}
    assert led.trial_sharpes().tolist() == [0.5, 1.0, 2.0]
    per_period = led.trial_sharpes(per_period=True)
    assert per_period == pytest.approx(
        [0.5 / math.sqrt(252), 1.0 / math.sqrt(252), 2.0 / math.sqrt(52)]
    )
    assert '"val_sharpe": null' in (tmp_path / LEDGER_FILENAME).read_text()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"status": "running"}, "trial status 'running' is unknown"),
        ({"metrics": {}}, "has no metrics\\['val_sharpe'\\]"),
        ({"seed": "0"}, "trial seed '0' must be an int"),
        ({"config_hash": ""}, "config_hash ''"),
        ({"periods_per_year": 0.0}, "periods_per_year = 0.0"),
        ({"metrics": {"val_sharpe": "high"}}, "val_sharpe = 'high' must be a number"),
        ({"colour": "blue"}, "unknown keys \\['colour'\\]"),
    ],
)
def test_invalid_records_are_refused(tmp_path: Path, change: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrialsLedger(tmp_path / LEDGER_FILENAME).append({**_record(0), **change})
    assert not (tmp_path / LEDGER_FILENAME).exists()  # nothing half-written


def test_corrupt_line_is_refused_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_FILENAME
    led = TrialsLedger(path)
    led.append(_record(0))
    led.append(_record(1))
    with path.open("a") as fh:
        fh.write('{"config_hash": "abc123", "seed": 2, "run_d\n')  # a torn write
    led.append(_record(3))
    with pytest.raises(DataError, match=rf"{LEDGER_FILENAME}:3: not a valid trial record"):
        led.read()
    # a valid JSON line that is not a record is refused the same way
    path.write_text(json.dumps(_record(0)) + "\n[1, 2]\n")
    with pytest.raises(DataError, match=r":2: not a valid trial record \(a JSON list"):
        led.read()


_WRITER = """
import sys
from allocgym.ledger import TrialsLedger
led = TrialsLedger(sys.argv[1])
tag = sys.argv[2]
for i in range(200):
    # ~6 KB lines: above the 4 KB a pipe writes atomically, so torn lines would show
    led.append({"config_hash": tag, "seed": i, "run_dir": f"{tag * 3000}/{i}",
                "status": "completed", "metrics": {"val_sharpe": i / 100}})
"""


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_FILENAME
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), tag]) for tag in ("a", "b")
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    recs = TrialsLedger(path).read()  # every line parses: none torn or interleaved
    assert len(recs) == 400
    for tag in ("a", "b"):
        mine = [r for r in recs if r.config_hash == tag]
        assert [r.seed for r in mine] == list(range(200))  # each writer's order is kept
        assert all(r.run_dir.endswith(f"/{tag * 3000}/{r.seed}") for r in mine)
    assert np.array_equal(
        np.sort(TrialsLedger(path).trial_sharpes()), np.repeat(np.arange(200) / 100, 2)
    )


def test_find_ledger_in_the_run_or_its_parent(tmp_path: Path) -> None:
    run = tmp_path / "study" / "ppo"
    (run / "seed_000").mkdir(parents=True)
    assert find_ledger(run) is None
    TrialsLedger(tmp_path / "study").append(_record(0))
    assert find_ledger(run) == tmp_path / "study" / LEDGER_FILENAME  # the parent's
    TrialsLedger(run).append(_record(1))
    assert find_ledger(run) == run / LEDGER_FILENAME  # the run's own comes first
    assert find_ledger(run / "seed_000") == run / LEDGER_FILENAME


def test_find_ledger_two_levels_up(tmp_path: Path) -> None:
    """A sweep's ``trials/<id>/`` run and a study fold's ``seed_<k>/`` find the ledger two
    levels up (a model picked from a sweep had been deflated by N = 1); three is too far."""
    trial = tmp_path / "sweep" / "trials" / "t0001"
    trial.mkdir(parents=True)
    TrialsLedger(tmp_path / "sweep").append(_record(0))
    assert find_ledger(trial) == tmp_path / "sweep" / LEDGER_FILENAME
    assert find_ledger(trial / "seed_0") is None


def test_a_run_recorded_again_counts_once_with_its_last_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trained, resumed with nothing left, extended: three lines, one trial (the last).

    Spellings of one directory are one run; a failure after a scored record keeps the
    scored one, a completion after a failure replaces it; the file keeps every line.
    """
    monkeypatch.chdir(tmp_path)
    led = TrialsLedger(tmp_path / LEDGER_FILENAME)
    led.append(_record(0, sharpe=0.5))
    led.append(_record(0, sharpe=0.5, run_dir="./study/run_0"))  # resumed, 0 steps left
    led.append(_record(0, sharpe=0.8, run_dir=str(tmp_path / "study" / "run_0")))  # extended
    assert led.n_trials == 1 and led.trial_sharpes().tolist() == [0.8]
    (only,) = led.read()
    assert only.metrics == {"val_sharpe": 0.8} and only.run_dir == str(tmp_path / "study/run_0")
    assert len(led.history()) == 3
    assert len((tmp_path / LEDGER_FILENAME).read_text().splitlines()) == 3

    led.append(_record(1, sharpe=1.2))  # another run
    assert led.n_trials == 2 and led.trial_sharpes().tolist() == [0.8, 1.2]
    led.append(_record(0, status="failed", sharpe=None, note="killed while extending"))
    led.append(_record(2, status="failed", sharpe=None))
    led.append(_record(2, sharpe=0.3))  # the failed run, resumed to completion
    led.append(_record(3, status="stopped", sharpe=None))
    led.append(_record(3, status="failed", sharpe=None))
    assert [(r.seed, r.status) for r in led.read()] == [
        (0, "completed"), (1, "completed"), (2, "completed"), (3, "stopped")
    ]  # fmt: skip
    assert led.n_trials == 4 and led.counts() == {"completed": 3, "failed": 0, "stopped": 1}
    assert led.trial_sharpes().tolist() == [0.8, 1.2, 0.3]
    assert len(led.history()) == 9


def test_a_directory_trained_afresh_is_a_new_trial_and_old_relative_lines_join_their_run(
    tmp_path: Path,
) -> None:
    """A run is its directory and its run_id: a directory emptied and trained again (a
    new run_id) adds a trial, a resume (the same run_id) does not; a line written before
    run directories were stored absolute (relative, no run_id) is the run whose absolute
    path ends with it."""
    led = TrialsLedger(tmp_path / LEDGER_FILENAME)
    led.append(_record(0, sharpe=0.5, run_id="aa"))
    led.append(_record(0, sharpe=0.7, run_id="aa"))  # resumed
    led.append(_record(0, sharpe=1.5, run_id="bb"))  # the same directory, trained afresh
    assert led.n_trials == 2 and led.trial_sharpes().tolist() == [0.7, 1.5]

    old = tmp_path / "old.jsonl"
    line = {**_record(3, sharpe=0.2), "run_dir": "study/run_3", "recorded_at": "x"}
    old.write_text(json.dumps(line) + "\n")  # as an older version wrote it: relative
    legacy = TrialsLedger(old)
    legacy.append(_record(3, sharpe=0.9, run_dir=str(tmp_path / "study" / "run_3")))
    legacy.append(_record(4, sharpe=0.4, run_dir=str(tmp_path / "other" / "run_3x")))
    assert [r.metrics["val_sharpe"] for r in legacy.read()] == [0.9, 0.4]


def test_a_fresh_start_writes_a_run_id_that_a_resume_keeps(tmp_path: Path) -> None:
    from allocgym.ledger import new_run_id, run_id_of

    run = tmp_path / "runs" / "x"
    assert run_id_of(run) == ""
    first = new_run_id(run)
    assert run_id_of(run) == first and len(first) == 16
    assert new_run_id(run) != first  # a second fresh start: another trial


# ----------------------------------------------------------------------------- selection keys


def _keyed_ledger(path: Path) -> TrialsLedger:
    """Key A: completed 0.5, 1.0, 1.5, 2.0 and one stopped; key B (another market or
    split): completed 5.0, 9.0 and one failed."""
    led = TrialsLedger(path)
    for seed, sharpe in enumerate((0.5, 1.0, 1.5, 2.0)):
        led.append(_record(seed, sharpe=sharpe, selection_key="A"))
    led.append(_record(4, status="stopped", sharpe=None, selection_key="A"))
    led.append(_record(5, sharpe=5.0, selection_key="B"))
    led.append(_record(6, sharpe=9.0, selection_key="B"))
    led.append(_record(7, status="failed", sharpe=None, selection_key="B"))
    return led


def test_a_selection_key_reads_only_the_runs_of_that_key(tmp_path: Path) -> None:
    _keyed_ledger(tmp_path / LEDGER_FILENAME)
    led = TrialsLedger(tmp_path, selection_key="A")
    assert [r.seed for r in led.read()] == [0, 1, 2, 3, 4]
    assert led.n_trials == 5 and led.trial_sharpes().tolist() == [0.5, 1.0, 1.5, 2.0]
    assert led.counts() == {"completed": 4, "failed": 0, "stopped": 1}
    assert led.selection_counts() == {"left_out": 2, "unkeyed": 0}  # B's failed run is no trial
    # without a key every run counts; a record without a key counts under any key
    whole = TrialsLedger(tmp_path)
    assert whole.n_trials == 7 and whole.selection_counts() == {"left_out": 0, "unkeyed": 0}
    whole.append(_record(8, sharpe=0.0))
    assert TrialsLedger(tmp_path, "B").trial_sharpes().tolist() == [5.0, 9.0, 0.0]
    assert TrialsLedger(tmp_path, "B").selection_counts() == {"left_out": 5, "unkeyed": 1}
    assert TrialRecord.from_dict(_record(9)).selection_key == ""  # a line written before keys
    with pytest.raises(ConfigError, match="selection_key"):
        TrialRecord.from_dict(_record(9, selection_key=3))


def test_the_dsr_counts_only_the_trials_of_the_evaluated_runs_key(tmp_path: Path) -> None:
    """Key A alone: N = 5, V = var(0.5, 1.0, 1.5, 2.0) = 1.25 / 3 annualised, per period
    / 252; key B's two trials (Sharpe 5 and 9) would raise both and are named as left out."""
    _keyed_ledger(tmp_path / LEDGER_FILENAME)
    ts = dsr_trial_set([], None, tmp_path, selection_key="A")
    assert ts.source == "ledger" and ts.n_trials == 5 and ts.n_sharpes == 4
    assert ts.sharpe_variance == pytest.approx(1.25 / 3 / 252, rel=1e-12)
    assert ts.ledger_left_out == 2 and ts.ledger_unkeyed == 0
    assert ts.note == (
        "2 trial(s) of the ledger left out: another market, split or validation split "
        "(selection_key)"
    )
    # No key (a walk-forward study, whose folds are selections of their own): N is the
    # most trials of one selection (A's 5), V pooled within each: (SS_A + SS_B) / (3 + 1)
    # = (1.25 + 8) / 4 annualised, not the variance of all six (market differences).
    mixed = dsr_trial_set([], None, tmp_path)
    assert mixed.n_trials == 5 and mixed.n_selections == 2 and mixed.ledger_left_out == 0
    assert mixed.sharpe_variance == pytest.approx(9.25 / 4 / 252, rel=1e-12)
    assert mixed.sr0 == pytest.approx(expected_max_sharpe([0.0, math.sqrt(2 * 9.25 / 4 / 252)], 5))
    assert mixed.note == (
        "2 selections in the ledger (selection_key): N = the most trials of one, "
        "V = the variance of the trials' Sharpe ratios within each"
    )
    assert ts.n_selections == 1  # a keyed read is one selection
    # a trial recorded without a key is counted, and the note says so
    TrialsLedger(tmp_path).append(_record(8, sharpe=1.25))
    with_unkeyed = dsr_trial_set([], None, TrialsLedger(tmp_path, "A"))
    assert with_unkeyed.n_trials == 6 and with_unkeyed.ledger_unkeyed == 1
    assert "1 trial(s) of the ledger carry no selection_key and are counted" in with_unkeyed.note


def test_selections_of_one_scored_trial_each_fall_back_to_the_variance_across_them(
    tmp_path: Path,
) -> None:
    """Three folds of one seed each: no selection has a spread of its own, so V comes from
    all three (0.5, 1.0, 3.0: V = 1.75 annualised, conservative); N is still the most
    trials of one selection, 1, so nothing was selected and SR_0 = 0."""
    led = TrialsLedger(tmp_path)
    for seed, (key, sharpe) in enumerate((("F1", 0.5), ("F2", 1.0), ("F3", 3.0))):
        led.append(_record(seed, sharpe=sharpe, selection_key=key))
    ts = dsr_trial_set([], None, tmp_path)
    assert ts.source == "ledger" and ts.n_trials == 1 and ts.n_selections == 3
    assert ts.sharpe_variance == pytest.approx(1.75 / 252, rel=1e-12) and ts.sr0 == 0.0
    assert ts.note == (
        "3 selections in the ledger (selection_key), none with 2 scored trials: N = the most "
        "trials of one, V across all of them (it then includes the differences between "
        "their data: SR_0 is conservative)"
    )
    # a second seed in F3 (3.5): N = 2, V pooled within F3 alone = 0.125
    led.append(_record(3, sharpe=3.5, selection_key="F3"))
    ts = dsr_trial_set([], None, tmp_path)
    assert ts.n_trials == 2 and ts.sharpe_variance == pytest.approx(0.125 / 252, rel=1e-12)
    assert ts.sr0 == pytest.approx(expected_max_sharpe([0.0, math.sqrt(0.25 / 252)], 2))


def test_unkeyed_trials_beside_several_selections_count_in_every_n_and_stay_out_of_v(
    tmp_path: Path,
) -> None:
    """Keys A (4 scored + 1 stopped) and B (2 scored) and two lines without a key (0.0 and
    10.0): N = 5 + 2, V pooled within A and B alone = (1.25 + 8) / 4 annualised."""
    _keyed_ledger(tmp_path / LEDGER_FILENAME)
    led = TrialsLedger(tmp_path)
    led.append(_record(8, sharpe=0.0))
    led.append(_record(9, sharpe=10.0))
    ts = dsr_trial_set([], None, tmp_path)
    assert ts.n_trials == 7 and ts.n_selections == 2 and ts.ledger_unkeyed == 2
    assert ts.n_sharpes == 6  # A's four and B's two
    assert ts.sharpe_variance == pytest.approx(9.25 / 4 / 252, rel=1e-12)
    assert ts.note.endswith(
        "2 trial(s) of the ledger carry no selection_key: counted in the N of every "
        "selection, left out of V (their selection is unknown)"
    )


def test_several_selections_with_one_scored_trial_leave_the_agent_seeds_to_stand_in(
    tmp_path: Path,
) -> None:
    """One completed and one stopped trial in two selections: too few Sharpe ratios for any
    variance; the note says the agent seeds stand in, and nothing about how the ledger
    would have been counted."""
    led = TrialsLedger(tmp_path)
    led.append(_record(0, sharpe=1.0, selection_key="F1"))
    led.append(_record(1, status="stopped", sharpe=None, selection_key="F2"))
    ts = dsr_trial_set([], None, tmp_path)
    assert ts.source == "none" and ts.n_trials == 0 and ts.n_selections == 2
    assert ts.note == (
        f"ledger {str(tmp_path / LEDGER_FILENAME)!r} holds 1 completed trial(s) with a finite "
        "val_sharpe, 2 are needed for their variance: the agent seeds stand in"
    )


def test_seeds_of_one_configuration_make_a_weak_trial_set(tmp_path: Path) -> None:
    """Two selections, each the seeds of one configuration: flagged weak with the note; a
    second configuration in one of them, or a record without a config_id, lifts the flag
    (a choice between configurations, or unknown)."""
    led = TrialsLedger(tmp_path)
    for seed, (key, cid, sharpe) in enumerate(
        (("F1", "c1", 0.5), ("F1", "c1", 1.0), ("F2", "c2", 2.0), ("F2", "c2", 2.5))
    ):
        led.append(_record(seed, sharpe=sharpe, selection_key=key, config_id=cid))
    ts = dsr_trial_set([], None, tmp_path)
    assert led.one_configuration() and ts.source == "ledger" and ts.weak
    assert ts.note.endswith(ONE_CONFIGURATION)
    keyed = dsr_trial_set([], None, tmp_path, selection_key="F1")
    assert keyed.weak and keyed.n_trials == 2
    led.append(_record(9, sharpe=1.5, selection_key="F1", config_id="c9"))
    assert not led.one_configuration() and not dsr_trial_set([], None, tmp_path).weak
    assert dsr_trial_set([], None, tmp_path, selection_key="F2").weak  # F2 alone still is
    other = TrialsLedger(tmp_path / "other")
    other.append(_record(0, sharpe=0.5, config_id="c1"))
    other.append(_record(1, sharpe=1.0))  # written before config ids
    assert not other.one_configuration()


def test_the_dsr_says_when_each_trial_is_a_best_of_several_checkpoints(tmp_path: Path) -> None:
    """N counts runs; a val_sharpe chosen among a run's validation runs is a selection it
    does not count, so the note names the most of them (no note for one, or unrecorded)."""
    led = TrialsLedger(tmp_path)
    led.append(_record(0, sharpe=0.5))  # written before the count existed
    led.append(_record(1, sharpe=1.0, metrics={"val_sharpe": 1.0, "n_evaluations": 1}))
    assert led.most_evaluations() == 1
    assert "checkpoints" not in dsr_trial_set([], None, tmp_path).note
    led.append(_record(2, metrics={"val_sharpe": 0.2, "n_evaluations": 7}))
    led.append(_record(3, status="failed", metrics={"n_evaluations": 50}))  # never a candidate
    ts = dsr_trial_set([], None, tmp_path)
    assert led.most_evaluations() == 7 and ts.n_trials == 3
    assert "the best of up to 7 validation runs of its checkpoints" in ts.note


def test_unkeyed_stopped_and_failed_trials_in_the_seeds_check(tmp_path: Path) -> None:
    """An unkeyed trial counts in every selection (as the DSR counts it), so another
    configuration there lifts the flag on a keyed read and on a read of all keys; a
    stopped trial is a trial, a failed one is not."""
    led = TrialsLedger(tmp_path)
    led.append(_record(0, sharpe=0.5, selection_key="K", config_id="cA"))
    led.append(_record(1, status="stopped", sharpe=None, selection_key="K", config_id="cA"))
    led.append(_record(2, status="failed", sharpe=None, selection_key="K", config_id="cZ"))
    led.append(_record(3, sharpe=0.7, selection_key="L", config_id="cL"))
    assert led.one_configuration() and TrialsLedger(tmp_path, "K").one_configuration()
    led.append(_record(4, status="stopped", sharpe=None, selection_key="K", config_id="cB"))
    assert not TrialsLedger(tmp_path, "K").one_configuration()
    assert TrialsLedger(tmp_path, "L").one_configuration()
    mixed = TrialsLedger(tmp_path / "mixed")
    mixed.append(_record(0, sharpe=0.5, selection_key="K", config_id="cA"))
    mixed.append(_record(1, sharpe=0.6, selection_key="K", config_id="cA"))
    mixed.append(_record(2, sharpe=0.9, config_id="cB"))  # unkeyed, another configuration
    assert not TrialsLedger(tmp_path / "mixed", "K").one_configuration()
    assert not mixed.one_configuration()
    assert not dsr_trial_set([], None, tmp_path / "mixed", selection_key="K").weak


def test_the_configuration_id_leaves_out_the_seed_and_where_a_run_ran() -> None:
    def cid(*overrides: str) -> str:
        return configuration_id(load_config(None, [*TINY_DATA, *overrides]))

    base = cid()
    assert len(base) == 16
    assert cid("train.seed=7") == cid("train.device=cpu", "train.torch_threads=1") == base
    assert cid("train.learning_rate=0.001") != base
    assert cid("data.splits.train_end=2001-03-30") != base
    # how a run is saved, evaluated or served does not change what it learns
    assert cid("train.checkpoint_freq=0", "train.keep_checkpoints=9") == base
    assert cid("evaluation.periods_per_year=52", "serving.max_in_flight=3") == base
    assert cid("env.audit_path=x.jsonl", "train.sac.save_replay_buffer=true") == base


def test_the_selection_key_follows_the_market_and_the_splits_not_the_hyperparameters() -> None:
    def key(*overrides: str) -> str:
        cfg = load_config(None, [*TINY_DATA, *overrides])
        return selection_key(cfg, market_fingerprint(load_market(cfg.data)))

    base = key()
    assert len(base) == 16
    # trials of one selection: other hyperparameters, another evaluation setting
    assert key("train.learning_rate=0.001", "env.cvar_weight=0.1") == base
    assert key("evaluation.periods_per_year=52", "train.seed=3") == base
    # another selection problem: the market's data, the splits, the training or validation split
    others = [
        key("data.synthetic.seed=6"),
        key("data.synthetic.n_days=760"),
        key("data.splits.validation_end=2002-03-29"),
        key("env.split=all"),
        key("train.eval_split=train"),
    ]
    assert len({base, *others}) == 6
