"""The command line never shows a traceback for a user's mistake, and its conventions.

The table runs ``allocgym.cli.main`` (the console script) in-process on wrong inputs:
each exits non-zero with a message that names the fix, and no traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_configs import TINY_DATA, TINY_PPO
from typer.testing import CliRunner

from allocgym.cli import app, main


def _files(tmp: Path) -> dict[str, Path]:
    bad_yaml = tmp / "bad.yaml"
    bad_yaml.write_text("risk:\n  max_gross: [1,\n")
    not_utf8 = tmp / "latin1.yaml"
    not_utf8.write_bytes("risk:\n  default_regime: 'd\xe9faut'\n".encode("latin-1"))
    listing = tmp / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    binary = tmp / "prices.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    bad_sectors = tmp / "sectors.csv"
    bad_sectors.write_text("ticker,industry\nAAPL,Tech\n")
    bad_state = tmp / "state.json"
    bad_state.write_text('{"request_id": 1}')
    empty_run = tmp / "empty_run"
    empty_run.mkdir()
    taken = tmp / "taken"
    (taken / "seed_000").mkdir(parents=True)
    fake_bundle = tmp / "fake_bundle"
    fake_bundle.mkdir()
    (fake_bundle / "manifest.json").write_text("{}")
    return {
        "bad_yaml": bad_yaml, "not_utf8": not_utf8, "listing": listing, "binary": binary,
        "bad_sectors": bad_sectors, "bad_state": bad_state, "empty_run": empty_run,
        "taken": taken, "fake_bundle": fake_bundle,
    }  # fmt: skip


CASES: list[tuple[str, list[str], str]] = [
    # (case, argv with {placeholders}, text the one-line message must hold)
    ("bad YAML", ["data", "info", "-c", "{bad_yaml}"], "is not valid YAML at line 3"),
    ("config not UTF-8", ["data", "info", "-c", "{not_utf8}"], "is not UTF-8 text"),
    ("config not a mapping", ["data", "info", "-c", "{listing}"], "must hold a mapping"),
    ("missing config", ["data", "info", "-c", "{tmp}/nope.yaml"], "does not exist"),
    ("config is a folder", ["data", "info", "-c", "{tmp}"], "is a directory"),
    ("missing data file", ["data", "info", "{tmp}/nope.csv"], "does not exist"),
    ("unreadable data file", ["data", "info", "{binary}"], "could not be read"),
    ("wrong type", ["data", "info", "--set", "risk.max_gross=abc"], "valid number"),
    ("unknown --set key", ["data", "info", "--set", "risk.nope=1"], "unknown key 'risk.nope'"),
    ("--set without =", ["data", "info", "--set", "risk.max_gross"], "not of the form a.b=value"),
    ("bad --set YAML", ["data", "info", "--set", "risk.max_gross=[1,"], "or quote the whole value"),
    (
        "looser baseline",
        ["baselines", "--set", "baselines.qp.per_name_cap=0.5"],
        "may only tighten",
    ),
    ("missing sectors file", ["data", "info", "--sectors", "{tmp}/nope.csv"], "does not exist"),
    ("bad sectors file", ["data", "info", "--sectors", "{bad_sectors}"], "symbol,sector"),
    ("missing run dir", ["evaluate", "--run", "{tmp}/nope"], "does not exist"),
    ("glob matching nothing", ["evaluate", "--run", "{tmp}/nope-*"], "matches no directory"),
    ("run dir without a run", ["evaluate", "--run", "{empty_run}"], "holds no trained run"),
    ("export of no run", ["export", "--run", "{tmp}/nope", "--out", "{tmp}/b"], "does not exist"),
    ("missing bundle", ["decide", "--policy", "{tmp}/nope"], "does not exist"),
    ("bundle without manifest", ["decide", "--policy", "{empty_run}"], "manifest.json"),
    ("wrong device", ["train", "--device", "tpu"], "is not one of"),
    (
        "resume without checkpoint",
        ["train", "--run-dir", "{empty_run}", "--resume"],
        "holds no checkpoint",
    ),
    ("resume without run dir", ["train", "--resume"], "--resume needs --run-dir"),
    ("unknown baseline", ["baselines", "--only", "nope"], "is unknown"),
    ("bad seeds", ["evaluate", "--run", "{empty_run}", "--seeds", "a,b"], "comma-separated"),
    ("no seeds", ["evaluate", "--run", "{empty_run}", "--seeds", ","], "names no seed"),
    ("a negative seed", ["quickstart", "--seeds", "0,-1"], "seeds [-1] are outside 0..2^32-1"),
    (
        "a report into a file",
        ["evaluate", "--run", "{empty_run}", "--out", "{bad_state}"],
        "is a file: pass a folder for the report",
    ),
    (
        "baselines into a file",
        ["baselines", "--only", "hrp", "--out", "{bad_state}"],
        "is a file: pass a folder for the report",
    ),
    (
        "an audit log that is a folder",
        ["serve", "--policy", "{empty_run}", "--audit-log", "{tmp}"],
        "is a folder: pass the log file's path",
    ),
    ("seeds of a bundle", ["evaluate", "--run", "{fake_bundle}", "--seeds", "0"], "drop --seeds"),
    (
        "several runs sharing no folder",
        ["evaluate", "--run", "{empty_run}", "--run", "/proc"],
        "share no folder but '/' for the report: pass --out DIR",
    ),
    (
        "a quickstart baseline misspelled, before any training",
        ["quickstart", "--baselines", "foo", "--run-dir", "{tmp}/q"],
        "baseline 'foo' is unknown",
    ),
    (
        "a quickstart into a used folder",
        ["quickstart", "--run-dir", "{taken}", "--seeds", "0"],
        "quickstart starts fresh runs; choose a new --run-dir",
    ),
    (
        "an example over an existing file",
        ["decide", "--policy", "{empty_run}", "--write-example", "{bad_state}"],
        "exists: name a new file",
    ),
    (
        "data path without a file source",
        ["data", "info", "--set", "data.path={tmp}/prices.csv"],
        "data.source='sp500' reads no file: set data.source=csv",
    ),
    ("missing audit log", ["audit", "verify", "{tmp}/nope.jsonl", "--chain-only"], "no audit log"),
    ("audit log is a folder", ["audit", "verify", "{tmp}"], "is a folder: pass the audit log file"),
    (
        "port out of range",
        ["serve", "--policy", "{empty_run}", "--port", "70000"],
        "less than or equal to 65535",
    ),
    (
        "a file where a folder is needed",
        ["baselines", "--only", "hrp", "--out", "{bad_state}/report"],
        "a file stands where a folder is needed: pass a folder",
    ),
    ("a seed twice", ["quickstart", "--seeds", "0,1,0"], "names seed(s) [0] twice"),
    ("no baseline to run", ["baselines", "--only", "none"], "names no baseline"),
    (
        "promote a run against itself",
        ["promote", "--candidate", "{empty_run}", "--incumbent", "{empty_run}"],
        "are the same run",
    ),
    (
        "write an example and decide at once",
        ["decide", "--policy", "{empty_run}", "--write-example", "{tmp}/x.json", "--now", "2022"],
        "drop them here",
    ),
    (
        "a clock without its offset",
        ["decide", "--policy", "{empty_run}", "--state", "{bad_state}", "--now", "2022-12-28"],
        "has no UTC offset",
    ),
    ("bench with an unknown encoding", ["bench", "serve", "--encoding", "xml"], "use 'account'"),
    ("bench sweep without trials", ["bench", "sweep", "--trials", "0"], "greater than or equal"),
    ("bench sizes not numbers", ["bench", "env", "--n-assets", "abc"], "positive integers"),
    ("bench sizes of zero", ["bench", "baselines", "--hrp-sizes", "0"], "positive integers"),
    ("bench without steps", ["bench", "env", "--steps", "0"], "greater than or equal to 2"),
    (
        "negative parity count",
        ["export", "--run", "{empty_run}", "--out", "{tmp}/b", "--n-recorded", "-1"],
        "greater than or equal to 0",
    ),
    (
        "parity count past memory",
        ["export", "--run", "{empty_run}", "--out", "{tmp}/b", "--n-random", "99999999999"],
        "less than or equal to 1000000",
    ),
    ("training steps past any budget", ["train", "--timesteps", "10000000001"], "10000000000"),
    ("a study without folds", ["study", "--folds", "0"], "greater than or equal to 1"),
    (
        "a study without validation",
        ["study", "--validation-years", "0"],
        "greater than or equal to 1",
    ),
    (
        "a study's years misspelled",
        ["study", "--test-years", "20x1"],
        "use a range like 2011..2022",
    ),
]


@pytest.mark.parametrize(("case", "argv", "needle"), CASES, ids=[c[0] for c in CASES])
def test_wrong_inputs_exit_with_one_line_and_no_traceback(
    case: str, argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    files = {k: str(v) for k, v in _files(tmp_path).items()}
    args = [a.format(tmp=tmp_path, **files) for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    text = out.out + out.err
    assert exc.value.code not in (0, None), f"{case}: exit code {exc.value.code}"
    assert "Traceback" not in text, text
    flat = " ".join(text.replace("│", " ").split())
    assert needle in flat, flat
    errors = [line for line in out.err.splitlines() if line.startswith("error:")]
    if errors:  # our own errors: one line (typer's usage errors draw a box)
        assert len(errors) == 1, out.err
        rest = out.err.split(errors[0], 1)[1].strip()
        assert not rest or "invalid configuration" in errors[0], out.err  # nothing follows


def test_decide_with_a_missing_state_file_and_a_bad_request(tmp_path: Path) -> None:
    from allocgym.cli import error_line
    from allocgym.errors import RequestError

    res = CliRunner().invoke(app, ["decide", "--policy", str(tmp_path), "--state", "nope.json"])
    assert res.exit_code == 2 and "does not exist" in " ".join(res.output.split())
    assert error_line(RequestError("x")) == "error: x"
    assert error_line(FileNotFoundError(2, "No such file", "f.json")).startswith("error: f.json")
    assert error_line(ValueError("a bug")) is None  # a bug keeps its traceback


def test_resume_of_a_real_checkpoint_is_not_refused(tmp_path: Path) -> None:
    # the refusal is about a missing checkpoint, not about --resume itself
    from allocgym.agents.train import latest_checkpoint

    ckpt = tmp_path / "checkpoints" / "step_00000064"
    ckpt.mkdir(parents=True)
    (ckpt / "state.pkl").write_bytes(b"")
    assert latest_checkpoint(tmp_path) == ckpt


def test_set_help_documents_mapping_values() -> None:
    # at 100 columns, too: no example token is cut with an ellipsis
    res = CliRunner().invoke(app, ["baselines", "--help"], env={"COLUMNS": "100"})
    text = " ".join(res.output.replace("│", " ").split())
    assert "'KEY={high_volatility: 0.5}' (e.g. risk.regime_budget_multipliers;" in text
    assert "'KEY=[5, 21]' (e.g. features.momentum_horizons)" in text
    assert "a mapping replaces the whole map" in text and "…" not in text


def test_set_mapping_value_works() -> None:
    from allocgym.config import load_config

    cfg = load_config(None, ["risk.regime_budget_multipliers={high_volatility: 0.5}"])
    assert dict(cfg.risk.regime_budget_multipliers) == {"high_volatility": 0.5}


def test_data_notes_print_once_as_plain_lines(tmp_path: Path, capsys) -> None:
    import pandas as pd

    idx = pd.bdate_range("2015-01-01", periods=400)
    rng = np.random.default_rng(0)
    px = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (400, 3)), axis=0)),
                      index=idx, columns=["A", "B", "C"])  # fmt: skip
    px.to_csv(tmp_path / "p.csv")
    with pytest.raises(SystemExit) as exc:
        main(["data", "info", str(tmp_path / "p.csv")])
    assert exc.value.code in (0, None)
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert any("has no volume" in n for n in notes)
    assert sum("sector cap inactive" in n for n in notes) == 1
    assert "UserWarning" not in err and "DataWarning" not in err and ".py:" not in err


# ----------------------------------------------------------------------------- progress


class _FakeValidation:
    def __init__(self) -> None:
        self.last_eval = -1

    def summary_text(self) -> str:
        return "val sharpe agent +0.50"


def test_training_logs_one_line_per_evaluation_when_not_in_a_terminal() -> None:
    from allocgym.agents.train import ProgressCallback

    lines: list[str] = []
    val = _FakeValidation()
    cb = ProgressCallback(1000, val, live=False, write=lines.append)  # type: ignore[arg-type]
    cb._on_training_start()
    for step in range(1, 400):
        cb.num_timesteps = step
        if step in (100, 200, 300):
            val.last_eval = step  # an evaluation ran at this step
        cb._on_step()
    cb._on_training_end()
    assert len(lines) == 4 and lines[-1].endswith("(done)")
    assert lines[0].startswith("train: 100/1,000 steps") and "val sharpe agent +0.50" in lines[0]
    assert cb._progress is None  # no live bar in a log file


def test_export_reports_its_stages() -> None:
    from allocgym.cli import _stage_printer

    res = CliRunner().invoke(app, ["export", "--help"])
    assert res.exit_code == 0
    say = _stage_printer()
    say("tracing the ONNX graph")  # printed to stderr with the elapsed seconds


# ----------------------------------------------------------------------------- conventions


def test_import_allocgym_registers_the_env_without_torch_or_gymnasium() -> None:
    code = (
        "import sys, allocgym; "
        "eager = [m for m in ('torch', 'gymnasium', 'stable_baselines3') if m in sys.modules]; "
        "import gymnasium as gym; "
        "from allocgym.config import config_from_dict; from allocgym.data import synthetic; "
        "env = gym.make('allocgym/Portfolio-v0', market=synthetic(3, 400, 0), "
        "cfg=config_from_dict({'env': {'split': 'all', 'episode_length': 10}})); "
        "obs, _ = env.reset(seed=0); print(eager, obs.shape[0] > 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[] True"
    # gymnasium first, allocgym second works too
    code2 = "import gymnasium as gym, allocgym; print('allocgym/Portfolio-v0' in gym.registry)"
    res = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, timeout=300)
    assert res.stdout.strip() == "True", res.stderr


def test_write_example_notes_the_now_to_decide_it_with() -> None:
    res = CliRunner().invoke(app, ["decide", "--help"], env={"COLUMNS": "200"})
    text = " ".join(res.output.replace("│", " ").split())
    assert "decide it with the --now the command prints" in text


def _tiny_run(run_dir: Path, seed: int) -> Path:
    from allocgym.agents.train import build_model, make_train_env
    from allocgym.config import load_config, write_run_metadata
    from allocgym.data import load_market
    from allocgym.envs import build_params

    cfg = load_config(None, [*TINY, f"train.seed={seed}"])
    market = load_market(cfg.data)
    params = build_params(market, cfg, "train")
    _, _, env, _ = make_train_env(cfg, params)
    model = build_model(cfg, env, params)
    write_run_metadata(run_dir, cfg)
    (run_dir / "final").mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "final" / "model.zip")
    (run_dir / "train_summary.json").write_text(json.dumps({"num_timesteps": 64 + seed}))
    return run_dir


TINY = [*TINY_DATA, "baselines.rebalance_every=5", *TINY_PPO]


def test_evaluate_takes_several_run_directories_or_a_glob(tmp_path: Path) -> None:
    _tiny_run(tmp_path / "ppo-a", 0)
    _tiny_run(tmp_path / "ppo-b", 1)
    out = tmp_path / "report"
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--run",
            str(tmp_path / "ppo-a"),
            "--run",
            str(tmp_path / "ppo-b"),
            "--baselines",
            "1/n",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert set(results["metrics"]) == {"ppo_seed0", "ppo_seed1", "equal_weight"}
    assert results["groups"]["ppo"]["n_seeds"] == 2
    ckpts = results["meta"]["checkpoints"]
    assert ckpts["ppo_seed1"]["model"] == "final" and ckpts["ppo_seed1"]["step"] == 65
    assert "final model at step 65" in (out / "report.md").read_text()
    res = CliRunner().invoke(
        app, ["evaluate", "--run", str(tmp_path / "ppo-*"), "--baselines", "none"]
    )
    assert res.exit_code == 0, res.output
    both = json.loads((tmp_path / "results.json").read_text())  # default out: common parent
    assert set(both["metrics"]) == {"ppo_seed0", "ppo_seed1"}
    # one seed in two directories is refused before any backtest
    _tiny_run(tmp_path / "ppo-c", 1)
    res = CliRunner().invoke(app, ["evaluate", "--run", str(tmp_path / "ppo-*")])
    assert res.exit_code != 0 and "both trained with seed 1" in str(res.exception)
    assert "evaluating" not in res.output  # no progress bar drawn before the refusal


def test_audit_verify_tells_a_mistyped_path_from_a_deleted_log(tmp_path: Path, capsys) -> None:
    """No log and no anchor: an error (exit 2). A log deleted beside its anchor: the
    tamper verdict (exit 1)."""
    log = tmp_path / "audit.jsonl"
    with pytest.raises(SystemExit) as exc:
        main(["audit", "verify", str(log)])
    assert exc.value.code == 2
    from allocgym.observability import AuditLog

    with AuditLog(log) as audit:
        audit.append({"x": 1})
    log.unlink()
    with pytest.raises(SystemExit) as exc:
        main(["audit", "verify", str(log)])
    assert exc.value.code == 1 and "FAILED" in capsys.readouterr().err


def test_a_port_in_use_is_one_line_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """serve had printed 'serving ... on http://...' and then uvicorn's bare error."""
    import socket

    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    try:
        with pytest.raises(SystemExit) as exc:
            main(["serve", "--policy", str(tmp_path), "--port", str(port),
                  "--audit-log", str(tmp_path / "audit.jsonl")])  # fmt: skip
    finally:
        held.close()
    assert exc.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"cannot listen on 127.0.0.1:{port}" in err and "choose another --port" in err
    assert "serving" not in err and not (tmp_path / "audit.jsonl").exists()


def test_running_out_of_memory_is_one_line() -> None:
    from allocgym.cli import error_line

    assert error_line(MemoryError()) == (
        "error: out of memory (MemoryError): reduce the data or batch sizes (n_days, "
        "n_assets, --n-envs) or run on a machine with more memory"
    )
