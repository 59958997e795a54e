"""``allocgym evaluate --address``: agents and baselines walked in chunks as Ray tasks give
the serial backtests and summary bit for bit; a bad address is refused fast in one line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_evaluation import make_untrained_run
from tiny_configs import TINY

from allocgym import evaluation as ev
from allocgym.config import load_config
from allocgym.data import load_market

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BASELINES = "1/n,hrp,min_var,inverse_vol"


def _two_seed_runs(folder: Path) -> Path:
    """Two untrained PPO seeds in seed_* folders (an agent of each seed per chunk)."""
    for seed in (0, 1):
        cfg = load_config(None, [*TINY, f"train.seed={seed}"])
        make_untrained_run(folder / f"seed_{seed:03d}", cfg, load_market(cfg.data))
    return folder


def _summary(result: ev.EvaluationResult) -> str:
    return json.dumps(
        [result.metrics, result.groups, result.dsr, result.paired, result.regime_risk],
        sort_keys=True, default=str,
    )  # fmt: skip


def test_evaluate_on_local_ray_equals_the_serial_evaluation(tmp_path: Path) -> None:
    """Same runs and baselines walked in this process and as 3 Ray tasks on a local Ray:
    identical backtests (returns, weights, costs) in the same order and an identical
    summary (metrics, DSR, paired tests); the CLI's --address path writes the same report."""
    from typer.testing import CliRunner

    from allocgym.cli import app
    from allocgym.distributed import RayRunAllocators, TrialResources, ray_runtime

    runs = _two_seed_runs(tmp_path / "runs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = ev.evaluate_run(runs, baselines=BASELINES)
        with ray_runtime("local", num_cpus=2):
            tasks: list[str] = []
            on_ray = ev.evaluate_run(
                runs, baselines=BASELINES,
                runner=RayRunAllocators(TrialResources(cpu=1), chunks=3, progress=tasks.append),
            )  # fmt: skip
            cli = CliRunner().invoke(
                app, ["evaluate", "--run", str(runs), "--baselines", BASELINES, "--out",
                      str(tmp_path / "cli"), "--address", "local", "--resources", "cpu=1"],
            )  # fmt: skip
    assert tasks == ["6 allocators in 3 evaluation tasks on Ray"]
    names = ["ppo_seed0", "ppo_seed1", "equal_weight", "hrp", "min_variance", "inverse_volatility"]
    assert [bt.name for bt in serial.backtests] == names
    assert [bt.name for bt in on_ray.backtests] == names
    for a, b in zip(serial.backtests, on_ray.backtests, strict=True):
        for key in ("returns", "weights", "cost_pnl", "asset_pnl", "bars"):
            assert np.array_equal(getattr(a, key), getattr(b, key)), (a.name, key)
    assert not np.array_equal(serial.backtests[0].weights, serial.backtests[2].weights)
    assert _summary(on_ray) == _summary(serial)
    assert serial.metrics["hrp"]["sharpe"] == on_ray.metrics["hrp"]["sharpe"]

    assert cli.exit_code == 0, cli.output
    assert "local Ray" in cli.output and "evaluation tasks on Ray" in cli.output
    written = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert written["table"] == json.loads(json.dumps(serial.table(), default=str))
    for bt in serial.backtests:
        assert written["series"][bt.name]["returns"] == bt.returns.tolist(), bt.name


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # released on close: nothing listens there


@pytest.mark.parametrize(
    ("address", "needle"),
    [("not-an-address", "use local (start Ray on this machine), auto"),
     ("dead", "ray start --head --port")],
)  # fmt: skip
def test_evaluate_refuses_a_bad_address_fast_in_one_line(
    tmp_path: Path, address: str, needle: str
) -> None:
    runs = _two_seed_runs(tmp_path / "runs")
    if address == "dead":
        address = f"127.0.0.1:{_dead_port()}"
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "allocgym"), "evaluate", "--run", str(runs), "--baselines", "1/n",
         "--out", str(tmp_path / "out"), "--address", address],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )  # fmt: skip
    took = time.perf_counter() - start
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert proc.returncode == 2, (proc.stdout[-1000:], proc.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert needle in lines[0], lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert took < 10.0, f"{address}: {took:.1f} s"
    assert not (tmp_path / "out").exists()
