"""Ray: addresses and resources by hand, bad addresses refused fast in one line, a study on
Ray equal to the serial one, and a real head node on loopback (``ray start --head``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from allocgym.distributed import (
    Address,
    RayRuntime,
    TrialResources,
    parse_address,
    parse_resources,
)
from allocgym.errors import ClusterError, ConfigError
from allocgym.ledger import TrialsLedger

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

STUDY_SETS = [
    "data.source=synthetic",
    "data.synthetic.n_assets=5",
    "data.synthetic.n_days=1520",
    "data.synthetic.n_sectors=5",
    "data.synthetic.seed=2",
    "data.splits.train_end=2002-12-31",
    "data.splits.validation_end=2003-12-31",
    "risk.max_symbol_weight=0.4",
    "risk.max_sector_gross=1.0",
    "env.episode_length=32",
    "env.action_mode=tilt",
    "env.decision_interval=5",
    "train.total_timesteps=384",
    "train.learning_rate=0.003",
    "train.n_envs=4",
    "train.n_steps=32",
    "train.batch_size=64",
    "train.n_epochs=2",
    "train.eval_freq=128",
    "train.eval_episodes=2",
    "train.checkpoint_freq=0",
    "train.device=cpu",
    "train.eval_baselines=[]",
    "train.asset_set.encoder=[8]",
    "train.asset_set.global_encoder=[8]",
    "train.asset_set.head=[8]",
]
"""A one-fold study small enough for seconds, whose seeds end with different agents."""


def _study_args(run_dir: Path, *extra: str) -> list[str]:
    args = ["study", "--test-years", "2005", "--validation-years", "1", "--seeds", "0,1",
            "--baselines", "equal_weight", "--run-dir", str(run_dir), *extra]  # fmt: skip
    for item in STUDY_SETS:
        args += ["--set", item]
    return args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ addresses, resources


def test_parse_address_forms() -> None:
    assert parse_address("local") == Address("local")
    assert parse_address(" AUTO ") == Address("auto")
    assert parse_address("127.0.0.1:6379") == Address("remote", "127.0.0.1", 6379)
    assert parse_address("head-node.example.org:10001") == Address(
        "remote", "head-node.example.org", 10001
    )
    v6 = parse_address("[::1]:6380")
    assert v6 == Address("remote", "::1", 6380) and str(v6) == "[::1]:6380"
    assert str(parse_address("10.0.0.5:6379")) == "10.0.0.5:6379"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "HOST:PORT"),
        ("cluster", "HOST:PORT"),
        ("host:", "1..65535"),
        ("host:0", "1..65535"),
        ("host:70000", "1..65535"),
        ("host:http", "1..65535"),
        ("a:b:c", "HOST:PORT"),
        ("bad host:6379", "HOST:PORT"),
        ("ray://head:10001", "without a scheme"),
    ],
)
def test_parse_address_refuses_with_the_forms(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="--address") as info:
        parse_address(text)
    assert needle in str(info.value)


def test_parse_resources_defaults_and_refusals() -> None:
    assert parse_resources(None) == TrialResources(1.0, 0.0)
    assert parse_resources("cpu=2") == TrialResources(2.0, 0.0)
    # a GPU device asks Ray for a fraction of a GPU per job unless told otherwise
    assert parse_resources(None, "cuda") == TrialResources(1.0, 0.25)
    assert parse_resources("cpu=1,gpu=0.5", "cuda") == TrialResources(1.0, 0.5)
    assert parse_resources("gpu=1", "auto").as_dict() == {"cpu": 1.0, "gpu": 1.0}
    for text, device, needle in [
        ("cpu=0", "cpu", "cpu > 0"),
        ("gpu=-1", "auto", "gpu >= 0"),
        ("gpu=0.5", "cpu", "--device cuda"),
        ("gpu=0", "cuda", "gpu=0.25"),
        ("mem=4", "cpu", "cpu=N,gpu=F"),
        ("cpu=two", "cpu", "not a number"),
    ]:
        with pytest.raises(ConfigError, match="--resources") as info:
            parse_resources(text, device)
        assert needle in str(info.value), (text, str(info.value))


def test_runtime_refuses_jobs_bigger_than_the_cluster() -> None:
    rt = RayRuntime(Address("local"), cpus=2.0, gpus=0.0, nodes=1, started_here=True, start_s=1.0)
    rt.check_fits(TrialResources(1.0, 0.0))
    with pytest.raises(ClusterError, match="0 GPUs: use --device cpu"):
        rt.check_fits(TrialResources(1.0, 0.25))
    with pytest.raises(ClusterError, match="lower --resources cpu"):
        rt.check_fits(TrialResources(4.0, 0.0))


# ------------------------------------------------------------------ bad addresses, fast


def _cli(args: list[str], timeout: float = 60.0) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "allocgym"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)  # fmt: skip
    return proc, time.perf_counter() - start


@pytest.mark.slow
def test_bad_addresses_fail_within_10s_with_one_line(tmp_path: Path) -> None:
    """Malformed, refused, and open-but-not-Ray addresses: exit 2, one stderr line naming
    the fix, no traceback, well within 10 s (CLI start included), and nothing written."""
    dead = _free_port()  # bound then released: nothing listens there
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts TCP connections but speaks no Ray
    cases = [
        ("study", "not-an-address", "use local (start Ray on this machine), auto"),
        ("study", f"127.0.0.1:{dead}", f"ray start --head --port {dead}"),
        ("sweep", f"127.0.0.1:{dead}", f"ray start --head --port {dead}"),
        ("study", f"127.0.0.1:{listener.getsockname()[1]}", "no Ray cluster answered"),
    ]
    try:
        for command, address, needle in cases:
            folder = tmp_path / f"{command}-{address.replace(':', '_')}"
            if command == "study":
                args = _study_args(folder, "--address", address)
            else:
                args = ["sweep", "--config", str(ROOT / "configs/train/ppo.yaml"), "--space",
                        str(ROOT / "configs/sweep/ppo.yaml"), "--address", address,
                        "--run-dir", str(folder)]  # fmt: skip
            proc, took = _cli(args)
            # data caveats print as `note:` lines before; the failure itself is one line
            lines = [
                ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("note:")
            ]
            assert proc.returncode == 2, (address, proc.stdout[-1000:], proc.stderr[-2000:])
            assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
            assert needle in lines[0], lines[0]
            assert "Traceback" not in proc.stdout + proc.stderr
            assert took < 10.0, f"{address}: {took:.1f} s"
            assert not folder.exists()  # refused before anything was written
    finally:
        listener.close()


# ------------------------------------------------------------------ serial == Ray


def _ledger_scores(folder: Path) -> dict[tuple[str, int], float | None]:
    recs = TrialsLedger(folder / "trials.jsonl").read()
    assert {r.status for r in recs} == {"completed"}
    return {(Path(r.run_dir).parent.name, r.seed): r.metrics["val_sharpe"] for r in recs}


@pytest.mark.slow
def test_study_on_local_ray_equals_the_serial_study(tmp_path: Path) -> None:
    """Same folds and seeds in this process and as Ray tasks on a local Ray: identical
    validation Sharpe ratios in the ledger and identical test-split backtest returns."""
    from typer.testing import CliRunner

    from allocgym.cli import app

    runner = CliRunner()
    serial, on_ray = tmp_path / "serial", tmp_path / "ray"
    res = runner.invoke(app, _study_args(serial))
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, _study_args(on_ray, "--address", "local", "--resources", "cpu=1"))
    assert res.exit_code == 0, res.output
    assert "local Ray: 1 node(s)" in res.output and "training jobs submitted to Ray" in res.output
    a, b = _ledger_scores(serial), _ledger_scores(on_ray)
    assert a == b and len(a) == 2
    assert a[("fold_2005", 0)] != a[("fold_2005", 1)]  # the seeds trained different agents
    # ledger paths are the serial run's: jobs run in the driver's working directory
    assert sorted(r.run_dir for r in TrialsLedger(on_ray / "trials.jsonl").read()) == [
        str(on_ray / "fold_2005" / "seed_000"), str(on_ray / "fold_2005" / "seed_001")
    ]  # fmt: skip
    za = np.load(serial / "fold_2005" / "backtests.npz")
    zb = np.load(on_ray / "fold_2005" / "backtests.npz")
    agents = [k for k in za.files if k.startswith("ppo_seed") and k.endswith("/returns")]
    assert len(agents) == 2
    for key in agents:
        assert np.array_equal(za[key], zb[key]), key
    assert not np.array_equal(za[agents[0]], za[agents[1]])
    sa = json.loads((serial / "study.json").read_text())["pooled"]
    sb = json.loads((on_ray / "study.json").read_text())["pooled"]
    assert sa["ppo (seed mean)"]["sharpe"] == sb["ppo (seed mean)"]["sharpe"]


# ------------------------------------------------------------------ a real head on loopback


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry))
    return alive


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups via /proc")
def test_study_through_a_ray_head_on_loopback(tmp_path: Path) -> None:
    """`ray start --head --port P` (this venv's Ray, its own ports and temp dir), a study
    through --address 127.0.0.1:P, then the head is stopped. The head runs in its own
    process group, which is stopped alone (SIGTERM, then SIGKILL after a grace period),
    as `ray stop` would but without touching any other Ray on this machine."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's AF_UNIX socket paths
    cmd = [str(BIN / "ray"), "start", "--head", "--block", f"--port={port}",
           "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false",
           f"--temp-dir={temp}", f"--ray-client-server-port={_free_port()}",
           f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-port={_free_port()}",
           "--disable-usage-stats"]  # fmt: skip
    log = (tmp_path / "head.log").open("w")
    head = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # up when `ray start` says so (its GCS port accepts connections before the head
        # answers: on a loaded machine a client could time out in between)
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in (tmp_path / "head.log").read_text():
            assert head.poll() is None, (tmp_path / "head.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "ray start --head did not come up"
            time.sleep(0.5)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        folder = tmp_path / "study"
        proc, _ = _cli(_study_args(folder, "--address", f"127.0.0.1:{port}"), timeout=400)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert f"Ray cluster 127.0.0.1:{port}: 1 node(s), 2 CPUs" in proc.stdout
        recs = TrialsLedger(folder / "trials.jsonl").read()
        assert len(recs) == 2 and {r.status for r in recs} == {"completed"}
        assert (folder / "study.json").is_file()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _group_alive(head.pid) and time.monotonic() < deadline:
            time.sleep(0.25)
        if _group_alive(head.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)
        log.close()
        time.sleep(0.5)
        assert _group_alive(head.pid) == []
        subprocess.run(["rm", "-rf", temp], check=False)
