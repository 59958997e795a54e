"""Training runs: every algorithm, run directory, TensorBoard scalars, resume, determinism, device."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
import yaml
from stable_baselines3.common.callbacks import BaseCallback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from typer.testing import CliRunner

from allocgym.agents import (
    SB3PolicyAllocator,
    TrainResult,
    aggregate,
    flatten_metrics,
    latest_checkpoint,
    list_checkpoints,
    load_agent,
    resolve_device,
    run_episodes,
    shortening,
    train,
)
from allocgym.agents.metrics import (
    HPARAM_METRICS,
    SERVING_ONLY_REASONS,
    episode_sharpe,
    intervention_defaults,
)
from allocgym.agents.train import run_hparams
from allocgym.baselines.classic import EqualWeight
from allocgym.bench.train import NoOpVecEnv
from allocgym.bench.train import run as bench_run
from allocgym.cli import app
from allocgym.config import AllocgymConfig, config_from_dict
from allocgym.data import MarketData, load_market
from allocgym.envs import REASON_NAMES, PortfolioVecEnv, build_params
from allocgym.errors import ConfigError
from allocgym.ledger import TrialsLedger, run_id_of
from allocgym.risk import reason_code_table

SYNTH = {"n_assets": 6, "n_days": 1000, "seed": 3, "n_sectors": 3, "signal_strength": 1.0}
SPLITS = {"train_end": "2002-07-01", "validation_end": "2003-02-24", "embargo_days": 5}


def tiny_tree(algo: str = "ppo", **train: Any) -> dict[str, Any]:
    """A config that trains in seconds: 6 synthetic assets, 32-bar episodes, small nets."""
    t: dict[str, Any] = {
        "algo": algo,
        "total_timesteps": 512,
        "n_envs": 4,
        "n_steps": 32,
        "batch_size": 64,
        "n_epochs": 2,
        "eval_freq": 256,
        "eval_episodes": 3,
        "checkpoint_freq": 256,
        "net_arch": [16],
        "torch_threads": 1,
        "device": "cpu",
        "asset_set": {"encoder": [16], "global_encoder": [8], "head": [16]},
        "sac": {"learning_starts": 64, "buffer_size": 2000},
        "recurrent": {"lstm_hidden_size": 16},
    }
    t.update(train)
    return {
        "data": {"source": "synthetic", "synthetic": SYNTH, "splits": SPLITS},
        "env": {"episode_length": 32},
        "train": t,
    }


def tiny_cfg(algo: str = "ppo", **train: Any) -> AllocgymConfig:
    return config_from_dict(tiny_tree(algo, **train))


@pytest.fixture(scope="module")
def market() -> MarketData:
    return load_market(tiny_cfg().data)


@pytest.fixture(scope="module")
def probe_obs(market: MarketData) -> np.ndarray:
    venv = PortfolioVecEnv(params=build_params(market, tiny_cfg(), "validation"), n_envs=5, seed=11)
    return venv.reset()


class KeepModel(BaseCallback):
    """Grabs the in-memory model at the end of training."""

    model_at_end: Any = None

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        KeepModel.model_at_end = self.model


def _params(model: Any) -> dict[str, th.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.policy.state_dict().items()}


def _same_params(a: dict[str, th.Tensor], b: dict[str, th.Tensor]) -> bool:
    return a.keys() == b.keys() and all(th.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ smoke: every algorithm


@pytest.mark.parametrize(
    ("algo", "policy"),
    [
        ("ppo", "asset_set"),
        ("ppo", "mlp"),
        ("a2c", "asset_set"),
        ("sac", "asset_set"),
        ("recurrent_ppo", "asset_set"),
    ],
)
def test_smoke_train_save_reload_predict(
    tmp_path: Path, market: MarketData, probe_obs: np.ndarray, algo: str, policy: str
) -> None:
    cfg = tiny_cfg(
        algo, policy=policy, normalize_obs=algo == "sac", eval_baselines=["equal_weight"]
    )
    keep = KeepModel()
    result = train(cfg, tmp_path, market=market, callbacks=[keep])
    assert isinstance(result, TrainResult)
    assert result.num_timesteps >= 512 and result.algo == algo and result.device == "cpu"
    live = KeepModel.model_at_end
    model, vn, run_cfg = load_agent(tmp_path, "final")
    assert run_cfg == cfg
    assert (vn is not None) == (algo == "sac")
    assert _same_params(_params(model), _params(live))
    spec = build_params(market, cfg, "validation").action_spec
    live_alloc = SB3PolicyAllocator(live, vn, spec)
    loaded_alloc = SB3PolicyAllocator(model, vn, spec)
    a_live, a_loaded = live_alloc.act(probe_obs), loaded_alloc.act(probe_obs)
    assert a_live.shape == (5, 7) and a_live.dtype == np.float32
    assert np.array_equal(a_live, a_loaded)
    loaded_alloc.reset()  # recurrent policies carry their LSTM state between calls
    assert np.array_equal(loaded_alloc.propose(probe_obs), spec.to_weights(a_loaded))
    assert ((a_loaded >= -1) & (a_loaded <= 1)).all()


# ------------------------------------------------------------------ run directory + TensorBoard


@pytest.fixture(scope="module")
def ppo_run(
    tmp_path_factory: pytest.TempPathFactory, market: MarketData
) -> tuple[Path, TrainResult]:
    run_dir = tmp_path_factory.mktemp("ppo_run")
    return run_dir, train(
        tiny_cfg(normalize_obs=True, normalize_reward=True), run_dir, market=market
    )


def test_run_directory_layout(ppo_run: tuple[Path, TrainResult]) -> None:
    run_dir, _ = ppo_run
    for name in (
        "config.yaml",
        "config_hash.txt",
        "versions.json",
        "train_summary.json",
        "evaluations.jsonl",
    ):
        assert (run_dir / name).is_file(), name
    for sub in ("final", "best"):
        assert (run_dir / sub / "model.zip").is_file()
        assert (run_dir / sub / "vecnormalize.pkl").is_file()
    assert [p.name for p in list_checkpoints(run_dir)] == ["step_000000000256", "step_000000000512"]
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["num_timesteps"] == 512 and summary["device"] == "cpu"
    # fps is this run's steps over its own wall time (a fresh run: no steps before it)
    assert summary["wall_time_s"] > 0
    assert summary["fps"] == pytest.approx(512 / summary["wall_time_s"], rel=1e-12)
    assert summary["total_wall_time_s"] == summary["wall_time_s"]
    assert summary["config_hash"] == (run_dir / "config_hash.txt").read_text().strip()
    evals = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [256, 512]
    assert {"agent", "equal_weight", "hrp"} <= evals[0].keys()
    best = max(evals, key=lambda e: e["score"])
    assert (
        summary["best_score"] == pytest.approx(best["score"])
        and summary["best_step"] == best["step"]
    )
    assert json.loads((run_dir / "best" / "eval.json").read_text())["step"] == best["step"]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["algo"] == "ppo"


def test_tensorboard_holds_risk_and_eval_scalars(ppo_run: tuple[Path, TrainResult]) -> None:
    run_dir, _ = ppo_run
    (tb,) = (run_dir / "tb").iterdir()
    acc = EventAccumulator(str(tb))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    risk = ["sharpe", "cvar", "max_drawdown", "turnover", "costs", "mean_gross", "mean_net"]
    regimes = [
        f"regime_mix/{r}" for r in ("trend", "mean_reversion", "high_volatility", "uncertain")
    ]
    reasons = [
        "interventions/SYMBOL_CAP",
        "interventions/KILL_SWITCH",
        "interventions/NO_TRADE_BAND",
    ]
    for name in risk + regimes + reasons:
        assert f"risk/{name}" in tags, name
        for who in ("agent", "equal_weight", "hrp"):
            assert f"eval/{who}/{name}" in tags, (who, name)
    assert {"train/value_loss", "rollout/ep_rew_mean", "time/fps", "eval/score"} <= tags
    assert [e.value for e in acc.Scalars("eval/n_scored")] == [3, 3]
    steps = [e.step for e in acc.Scalars("eval/agent/sharpe")]
    assert steps == [256, 512]
    # the 1/N curve is constant: the same episodes are replayed at every evaluation
    ew = [e.value for e in acc.Scalars("eval/equal_weight/sharpe")]
    assert ew[0] == ew[1]
    mix = sum(acc.Scalars(f"risk/{r}")[0].value for r in regimes)
    assert mix == pytest.approx(1.0, abs=1e-6)
    # Serving-only reason codes never fire in an env: no always-zero series for them.
    for code in ("MODEL_FALLBACK", "ALLOCATOR_DISABLED", "STALE_INPUT"):
        assert not any(tag.endswith(f"interventions/{code}") for tag in tags), code


def test_tensorboard_holds_the_hyperparameters(ppo_run: tuple[Path, TrainResult]) -> None:
    run_dir, result = ppo_run
    (tb,) = (run_dir / "tb").iterdir()
    acc = EventAccumulator(str(tb))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    experiment = HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == list(HPARAM_METRICS)
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    logged = start.session_start_info.hparams
    cfg = tiny_cfg(normalize_obs=True, normalize_reward=True)
    assert logged["config_hash"].string_value == result.config_hash
    assert logged["train.algo"].string_value == "ppo"
    assert logged["train.learning_rate"].number_value == pytest.approx(cfg.train.learning_rate)
    assert logged["train.n_steps"].number_value == cfg.train.n_steps
    assert logged["train.normalize_obs"].number_value == 1  # torch's writer stores bools as 0/1
    assert logged["train.net_arch"].string_value == str(list(cfg.train.net_arch))
    assert logged["env.cvar_weight"].number_value == pytest.approx(cfg.env.cvar_weight)
    assert set(logged) == set(run_hparams(cfg, result.config_hash))


# ------------------------------------------------------------------ determinism + resume


def test_same_seed_same_parameters_on_cpu(tmp_path: Path, market: MarketData) -> None:
    cfg = tiny_cfg(deterministic=True, eval_freq=0, checkpoint_freq=0, total_timesteps=384)
    train(cfg, tmp_path / "a", market=market)
    train(cfg, tmp_path / "b", market=market)
    other = tiny_cfg(
        deterministic=True, eval_freq=0, checkpoint_freq=0, total_timesteps=384, seed=1
    )
    train(other, tmp_path / "c", market=market)
    a, b, c = (_params(load_agent(tmp_path / x, "final")[0]) for x in "abc")
    assert _same_params(a, b)
    assert not _same_params(a, c)
    assert not th.are_deterministic_algorithms_enabled()  # restored after the run


@pytest.mark.parametrize(
    "algo",
    [
        "ppo",
        pytest.param("sac", marks=pytest.mark.slow),
        pytest.param("recurrent_ppo", marks=pytest.mark.slow),
    ],
)
def test_resume_matches_an_uninterrupted_run(tmp_path: Path, market: MarketData, algo: str) -> None:
    full = tiny_cfg(algo, normalize_reward=True, deterministic=True)
    train(full, tmp_path / "full", market=market)
    first = train(
        tiny_cfg(algo, normalize_reward=True, deterministic=True, total_timesteps=256),
        tmp_path / "r",
        market=market,
    )
    assert first.num_timesteps == 256
    resumed = train(full, tmp_path / "r", market=market, resume=True)
    assert resumed.resumed_from == 256 and resumed.num_timesteps == 512
    a = _params(load_agent(tmp_path / "full", "final")[0])
    b = _params(load_agent(tmp_path / "r", "final")[0])
    assert _same_params(a, b)
    evals = [
        json.loads(x)["step"]
        for x in (tmp_path / "r" / "evaluations.jsonl").read_text().splitlines()
    ]
    assert evals[-1] == 512


def test_run_dir_guards(tmp_path: Path, market: MarketData) -> None:
    cfg = tiny_cfg(total_timesteps=128, eval_freq=0, checkpoint_freq=0)
    train(cfg, tmp_path, market=market)
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(cfg, tmp_path, market=market)
    with pytest.raises(ConfigError, match=r"train\.learning_rate"):
        train(
            tiny_cfg(total_timesteps=128, learning_rate=1e-3), tmp_path, market=market, resume=True
        )
    assert latest_checkpoint(tmp_path) is not None  # the end state is always resumable
    assert (tmp_path / "best" / "model.zip").is_file()  # eval_freq 0: one validation at the end
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.yaml").write_text((tmp_path / "config.yaml").read_text())
    with pytest.raises(ConfigError, match="no validation ran"):
        load_agent(bare, "best")
    with pytest.raises(ConfigError, match="which = 'middle'"):
        load_agent(tmp_path, "middle")
    with pytest.raises(ConfigError, match="batch_size"):
        train(tiny_cfg(batch_size=1024), tmp_path / "x", market=market)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from allocgym.cli import main; main()", *args]


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_total(tmp_path: Path, market: MarketData) -> None:
    """A subprocess is killed after its first checkpoint, resumed, and finishes exactly."""
    tree = tiny_tree(total_timesteps=6144, checkpoint_freq=512, eval_freq=2048, deterministic=True)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(tree))
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen(
        _cli("train", "--config", str(cfg_path), "--run-dir", str(run_dir)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while (
        latest_checkpoint(run_dir) is None and proc.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    killed_at = latest_checkpoint(run_dir)
    assert killed_at is not None and not (run_dir / "train_summary.json").exists()
    step = int(killed_at.name.split("_")[1])
    assert 512 <= step < 6144
    done = subprocess.run(
        _cli("train", "--run-dir", str(run_dir), "--resume"),
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["num_timesteps"] == 6144 and summary["resumed_from"] >= step
    again = subprocess.run(
        _cli("train", "--run-dir", str(run_dir), "--resume"),
        env=env,
        capture_output=True,
        timeout=600,
    )  # a finished run: says so, trains nothing
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    said = " ".join(again.stdout.decode().split())
    assert "had already trained 6,144 of 6,144 steps: nothing to do" in said, said
    reference = train(config_from_dict(tree), tmp_path / "reference", market=market)
    assert reference.num_timesteps == 6144
    resumed = _params(load_agent(run_dir, "final")[0])
    assert _same_params(resumed, _params(load_agent(tmp_path / "reference", "final")[0]))


# ------------------------------------------------------------------ device


def test_device_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(th.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match=r"train.device = 'cuda'.*--device cpu"):
        resolve_device("cuda")
    monkeypatch.setattr(th.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda") == "cuda"


@pytest.mark.skipif(th.cuda.is_available(), reason="checks the refusal without a GPU")
def test_cli_refuses_cuda_without_gpu(tmp_path: Path) -> None:
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_tree()))
    result = CliRunner().invoke(
        app,
        ["train", "--config", str(cfg_path), "--device", "cuda", "--run-dir", str(tmp_path / "r")],
    )
    assert isinstance(result.exception, ConfigError)
    assert "no usable GPU" in str(result.exception)
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(not th.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_on_cuda(tmp_path: Path, market: MarketData) -> None:
    result = train(tiny_cfg(device="cuda", total_timesteps=256), tmp_path, market=market)
    assert result.device == "cuda"
    model, _, _ = load_agent(tmp_path, "final", device="cuda")
    assert next(model.policy.parameters()).is_cuda


# ------------------------------------------------------------------ metrics, validation, bench


def test_flatten_and_aggregate_by_hand() -> None:
    a = {
        "sharpe": 1.0,
        "start": 5,
        "interventions": {"SYMBOL_CAP": 4},
        "regime_mix": {"trend": 0.25},
    }
    b = {"sharpe": float("nan"), "start": 9, "interventions": {}, "regime_mix": {"trend": 0.75}}
    assert flatten_metrics(a) == {
        "sharpe": 1.0,
        "start": 5.0,
        "interventions/SYMBOL_CAP": 4.0,
        "regime_mix/trend": 0.25,
    }
    means = aggregate([a, b], intervention_defaults())
    assert np.isnan(means["sharpe"])  # b has no Sharpe ratio: not dropped
    assert means["interventions/SYMBOL_CAP"] == 2.0  # missing code counts as 0
    assert means["interventions/KILL_SWITCH"] == 0.0
    assert "interventions/MODEL_FALLBACK" not in means  # serving-only: no series
    assert means["regime_mix/trend"] == 0.5
    assert "start" not in means
    assert aggregate([]) == {}


def test_flat_episodes_score_zero_and_a_broken_one_makes_the_score_nan(
    market: MarketData,
) -> None:
    """Every episode is scored: 7 flat episodes and one at 2.0 score 2 / 8 = 0.25."""
    flat = {"sharpe": float("nan"), "total_return": 0.0, "max_drawdown": 0.0}
    idle = [flat] * 7 + [{"sharpe": 2.0, "total_return": 0.05, "max_drawdown": 0.01}]
    assert aggregate(idle)["sharpe"] == 0.25
    assert aggregate([{"sharpe": 0.9, "total_return": 0.1}] * 8)["sharpe"] == pytest.approx(0.9)
    assert episode_sharpe(flat) == 0.0 and episode_sharpe({"sharpe": -1.5}) == -1.5
    broken = [
        {"sharpe": float("nan"), "total_return": float("nan")},  # a NaN step return
        {"sharpe": float("nan"), "total_return": 0.01},  # too short for a Sharpe ratio
        {"sharpe": float("inf"), "total_return": 0.01},  # a constant non-zero return
        {"sharpe": float("nan")},
    ]
    for episode in broken:
        assert np.isnan(episode_sharpe(episode)), episode
        assert np.isnan(aggregate([*idle, episode])["sharpe"]), episode
    # other metrics count every episode too: a non-finite value is not dropped
    means = aggregate([{"cvar": 0.02}, {"cvar": float("nan")}, {"cvar": 0.04, "costs": 0.5}])
    assert np.isnan(means["cvar"]) and means["costs"] == 0.5
    # the env's all-cash episode is the flat one: Sharpe 0 / 0, total return exactly 0
    params = build_params(market, tiny_cfg(), "validation")
    cash = run_episodes(params, 3, allocator=_Const(np.zeros((1, 6))), rebalance_every=1)
    assert all(np.isnan(e["sharpe"]) and e["total_return"] == 0.0 for e in cash)
    assert aggregate(cash)["sharpe"] == 0.0


def test_a_nan_validation_score_never_becomes_the_best(
    tmp_path: Path, market: MarketData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation at 256 scores 0.5; at 512 one episode has no Sharpe ratio and the other
    two 3.0: the score is NaN (not 3.0), logged with n_scored 2, and best/ stays at 256."""
    good = {"sharpe": 0.5, "total_return": 0.01}
    one_broken = [{"sharpe": float("nan"), "total_return": 0.02}]
    agent_runs = iter([[good] * 3, one_broken + [{"sharpe": 3.0, "total_return": 0.1}] * 2])

    def fake_run_episodes(params: Any, n_episodes: int, **kw: Any) -> list[dict[str, Any]]:
        return next(agent_runs) if kw.get("act") is not None else [good] * n_episodes

    # the module (allocgym.agents.train, the attribute, is the function)
    monkeypatch.setattr(sys.modules["allocgym.agents.train"], "run_episodes", fake_run_episodes)
    result = train(tiny_cfg(checkpoint_freq=0), tmp_path / "run", market=market)
    evals = [
        json.loads(ln) for ln in (tmp_path / "run" / "evaluations.jsonl").read_text().splitlines()
    ]
    assert [e["step"] for e in evals] == [256, 512]
    assert evals[0]["score"] == 0.5 and np.isnan(evals[1]["score"])
    assert [e["n_scored"] for e in evals] == [3, 2]
    assert result.best_score == 0.5 and result.best_step == 256
    assert json.loads((tmp_path / "run" / "best" / "eval.json").read_text())["step"] == 256
    assert TrialsLedger(tmp_path).trial_sharpes().tolist() == [0.5]


def test_a_resume_cannot_shorten_a_run(tmp_path: Path, market: MarketData) -> None:
    """A checkpoint at step 384 and a resume asking for 256 steps: refused before anything
    loads (the run would stop at 384 and pass for a 256-step one); 384 steps are fine."""
    from allocgym.config import write_run_metadata

    run_dir = tmp_path / "run"
    write_run_metadata(run_dir, tiny_cfg(total_timesteps=512))
    (run_dir / "checkpoints" / "step_000000000384").mkdir(parents=True)
    (run_dir / "checkpoints" / "step_000000000384" / "state.pkl").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"step 384, past train\.total_timesteps = 256.*shorten"):
        train(tiny_cfg(total_timesteps=256), run_dir, resume=True, market=market)
    assert shortening(run_dir, tiny_cfg(total_timesteps=384)) == ""


def test_a_finished_run_that_overshot_its_total_resumes_with_that_total(
    tmp_path: Path, market: MarketData
) -> None:
    """300 steps end at 384 (three 128-step rollouts): resuming with 300 again trains
    nothing and is no shortening; asking for 200 is."""
    cfg = tiny_cfg(total_timesteps=300, eval_freq=128, checkpoint_freq=0)
    run = tmp_path / "run"
    assert train(cfg, run, market=market).num_timesteps == 384
    assert train(cfg, run, market=market, resume=True).num_timesteps == 384
    assert "past train.total_timesteps = 200" in shortening(
        run, tiny_cfg(total_timesteps=200, eval_freq=128, checkpoint_freq=0)
    )


def test_a_resumed_and_extended_run_is_one_trial(tmp_path: Path, market: MarketData) -> None:
    """Train, resume with nothing left, extend: three ledger lines, one trial whose Sharpe
    is the last record's; another run is a second trial."""
    run = tmp_path / "seed_0"
    train(tiny_cfg(total_timesteps=256, eval_freq=128, checkpoint_freq=0), run, market=market)
    train(tiny_cfg(total_timesteps=256, eval_freq=128, checkpoint_freq=0), run, market=market,
          resume=True)  # fmt: skip
    extended = train(tiny_cfg(total_timesteps=384, eval_freq=128, checkpoint_freq=0), run,
                     market=market, resume=True)  # fmt: skip
    ledger = TrialsLedger(tmp_path)
    assert len(ledger.history()) == 3
    (trial,) = ledger.read()
    assert trial.metrics["num_timesteps"] == 384 and extended.best_score is not None
    # its best of the validation runs at steps 128, 256 and 384 (the resumes re-ran none)
    steps = [json.loads(ln)["step"] for ln in (run / "evaluations.jsonl").read_text().splitlines()]
    assert steps == [128, 256, 384] and trial.metrics["n_evaluations"] == 3
    assert ledger.n_trials == 1
    assert ledger.trial_sharpes().tolist() == [extended.best_score]
    # the fresh start's run_id, kept by both resumes, is on every line
    assert {r.run_id for r in ledger.history()} == {run_id_of(tmp_path / "seed_0")} != {""}
    other = train(tiny_cfg(total_timesteps=256, eval_freq=128, checkpoint_freq=0, seed=1),
                  tmp_path / "seed_1", market=market)  # fmt: skip
    assert ledger.n_trials == 2
    assert ledger.trial_sharpes().tolist() == [extended.best_score, other.best_score]


def test_runs_of_another_validation_split_are_no_trials_of_the_dsr(
    tmp_path: Path, market: MarketData
) -> None:
    """Two seeds selected on the validation split and a run selected on the training split
    share one ledger: each record carries its run's selection key, and the DSR of a seed
    counts the two seeds only, naming the other run as left out."""
    from allocgym.evaluation import evaluate_run
    from allocgym.ledger import configuration_id, market_fingerprint, selection_key

    quick = {"total_timesteps": 128, "eval_freq": 0, "checkpoint_freq": 0}
    for seed in (0, 1):
        train(tiny_cfg(seed=seed, **quick), tmp_path / f"seed_{seed}", market=market)
    train(tiny_cfg(eval_split="train", **quick), tmp_path / "in_sample", market=market)
    keys = [r.selection_key for r in TrialsLedger(tmp_path).read()]
    fingerprint = market_fingerprint(market)
    assert keys == [selection_key(tiny_cfg(**quick), fingerprint)] * 2 + [
        selection_key(tiny_cfg(eval_split="train", **quick), fingerprint)
    ]
    assert keys[0] != keys[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny market's data notes
        res = evaluate_run(tmp_path / "seed_0", baselines="1/n", market=market)
    dsr = res.dsr
    assert dsr["source"] == "ledger" and dsr["n_trials"] == 2 and dsr["n_trial_sharpes"] == 2
    assert dsr["ledger_left_out"] == 1 and dsr["ledger_unkeyed"] == 0
    assert "1 trial(s) of the ledger left out" in dsr["note"]
    # every record names its configuration without the seed: the two seeds share one, so
    # the DSR of their selection is flagged weak (seeds of one configuration)
    ids = [r.config_id for r in TrialsLedger(tmp_path).read()]
    assert ids[0] == ids[1] == configuration_id(tiny_cfg(**quick)) != ids[2]
    assert dsr["weak"] and "seeds of one configuration" in dsr["note"]


def _scripted_validation(monkeypatch: pytest.MonkeyPatch, agent_scores: list[float]) -> None:
    """The agent's validation scores, in order (the baselines score 0)."""
    scores = iter(agent_scores)

    def fake_run_episodes(params: Any, n_episodes: int, **kw: Any) -> list[dict[str, Any]]:
        sharpe = next(scores) if kw.get("act") is not None else 0.0
        return [{"sharpe": sharpe, "total_return": 0.01}] * n_episodes

    monkeypatch.setattr(sys.modules["allocgym.agents.train"], "run_episodes", fake_run_episodes)


@pytest.mark.parametrize("checkpoint_copy", [True, False])
def test_a_resume_restores_best_to_the_checkpoints_best(
    tmp_path: Path, market: MarketData, monkeypatch: pytest.MonkeyPatch, checkpoint_copy: bool
) -> None:
    """A killed attempt wrote best/ at step 384 after the checkpoint at 256 (best: 256).

    Validations score 1.0, 2.0, 0.5, 0.4 at steps 128, 256, 384, 512; the resumed run
    scores 0.5, 0.4 again, beating nothing. Its best/ is the checkpoint's (step 256, the
    model it held then), which best_step and the ledger's val_sharpe describe. A checkpoint
    without a copy of best/ (an older version's) drops the stray best/ and selects again
    from the validations after it (384), with a warning.
    """
    run = tmp_path / "run"
    cfg = tiny_cfg(eval_freq=128, checkpoint_freq=256)
    _scripted_validation(monkeypatch, [1.0, 2.0, 0.5, 0.4, 0.5, 0.4])
    first = train(cfg, run, market=market)
    assert first.best_step == 256 and first.best_score == 2.0
    best_at_256 = (run / "best" / "model.zip").read_bytes()
    # the kill: the end checkpoint was never written, best/ was replaced at step 384
    shutil.rmtree(run / "checkpoints" / "step_000000000512")
    (run / "best" / "model.zip").write_bytes((run / "final" / "model.zip").read_bytes())
    (run / "best" / "eval.json").write_text(json.dumps({"step": 384, "score": 3.0}))
    if not checkpoint_copy:
        shutil.rmtree(run / "checkpoints" / "step_000000000256" / "best")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = train(cfg, run, market=market, resume=True)
    best = json.loads((run / "best" / "eval.json").read_text())
    assert resumed.resumed_from == 256 and best["step"] == resumed.best_step
    assert TrialsLedger(tmp_path).read()[-1].val_sharpe == best["score"] == resumed.best_score
    dropped = [w for w in caught if "keeps no copy of best/" in str(w.message)]
    if checkpoint_copy:
        assert resumed.best_step == 256 and resumed.best_score == 2.0 and not dropped
        assert (run / "best" / "model.zip").read_bytes() == best_at_256
    else:
        assert resumed.best_step == 384 and resumed.best_score == 0.5 and len(dropped) == 1


def test_serving_only_reasons_are_the_codes_the_serving_layer_sets() -> None:
    # The reason-code table's "set by" column is the one declaration of who sets a code.
    rows = [line.split("|") for line in reason_code_table().splitlines() if line.startswith("| ")]
    serving = {
        cells[3].strip().strip("`") for cells in rows if cells[4].strip().startswith("serving")
    }
    assert serving == SERVING_ONLY_REASONS
    assert SERVING_ONLY_REASONS < set(REASON_NAMES)


def test_run_episodes_matches_the_env(market: MarketData) -> None:
    params = build_params(market, tiny_cfg(), "validation")
    ew = run_episodes(params, 3, seed=40, allocator=EqualWeight(), rebalance_every=5, lookback=60)
    again = run_episodes(
        params, 3, seed=40, allocator=EqualWeight(), rebalance_every=5, lookback=60
    )
    assert ew == again and len(ew) == 3
    assert all(e["n_steps"] == 32 for e in ew)
    # acting with the actions that map to 1/N every bar equals proposing 1/N every bar
    cash = -1.0  # softmax(3 * [0, ..., 0, -1]): equal asset weights, a little cash
    act = run_episodes(
        params, 3, seed=40, act=lambda obs, _: np.r_[np.zeros(6), cash][None].repeat(len(obs), 0)
    )
    w = params.action_spec.to_weights(np.r_[np.zeros(6), cash][None])
    const = run_episodes(params, 3, seed=40, allocator=_Const(w), rebalance_every=1)
    assert act == const


class _Const:
    name = "const"

    def __init__(self, w: np.ndarray) -> None:
        self.w = w

    def allocate(self, ctx: Any) -> np.ndarray:
        return np.repeat(self.w, ctx.n_envs, axis=0)


def test_noop_env_mimics_spaces_and_episode_ends(market: MarketData) -> None:
    real = PortfolioVecEnv(params=build_params(market, tiny_cfg(), "train"), n_envs=3, seed=0)
    noop = NoOpVecEnv(real.observation_space, real.action_space, 3, episode_length=4)  # type: ignore[arg-type]
    obs = noop.reset()
    assert obs.shape == (3, real.observation_space.shape[0]) and obs.dtype == np.float32
    assert real.observation_space.contains(obs[0])
    dones = [noop.step(np.zeros((3, 7), np.float32))[2].all() for _ in range(8)]
    assert dones == [False, False, False, True] * 2


def test_bench_train_reports_median_fps_the_ratios_and_their_spread(
    market: MarketData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scripted run times: 128 PPO steps per run (one rollout of 32 steps x 4 envs); runs
    go env, no-op | no-op, env | env, no-op (the first of a pair alternates); the row holds
    the median wall and CPU fps of each, the ratios of the medians and the extremes of the
    per-repeat ratios."""
    from scripted_clock import ScriptedClock

    import allocgym.bench
    import allocgym.bench.train

    # wall: env 0.64, 0.32, 0.16 s -> 200, 400, 800 fps; no-op 0.128, 0.256, 0.064 s ->
    # 1000, 500, 2000 fps; paired ratios 0.2, 0.8, 0.4
    # CPU: env 0.32, 0.16, 1.28 s -> 400, 800, 100 fps; no-op 0.128, 0.256, 0.16 s ->
    # 1000, 500, 800 fps; paired ratios 0.4, 1.6, 0.125
    runs = ScriptedClock(
        wall=[0.64, 0.128, 0.256, 0.32, 0.16, 0.064], cpu=[0.32, 0.128, 0.256, 0.16, 1.28, 0.16]
    )
    # 7 rounds of 50 bare steps: per step 1, 2, 0.4, 4, 0.8, 1.6, 0.2 ms (median 1 ms)
    steps = ScriptedClock([0.05, 0.1, 0.02, 0.2, 0.04, 0.08, 0.01])
    monkeypatch.setattr(allocgym.bench.train, "time", runs)
    monkeypatch.setattr(allocgym.bench, "time", steps)
    (row,) = bench_run(tiny_cfg(), timesteps=128, repeat=3, n_envs=(4,), market=market)
    assert runs.unused == steps.unused == 0
    assert list(row) == [
        "n_envs", "n_assets", "device",
        "env_fps", "noop_fps", "ratio", "ratio_min", "ratio_max",
        "env_cpu_fps", "noop_cpu_fps", "cpu_ratio", "cpu_ratio_min", "cpu_ratio_max",
        "bare_env_sps",
    ]  # fmt: skip
    assert (row["n_envs"], row["n_assets"], row["device"]) == (4, 6, "cpu")
    wall = [row[k] for k in ("env_fps", "noop_fps", "ratio", "ratio_min", "ratio_max")]
    assert wall == pytest.approx([400.0, 1000.0, 0.4, 0.2, 0.8], rel=1e-12)
    cpu = [row[k] for k in ("env_cpu_fps", "noop_cpu_fps", "cpu_ratio")]
    assert cpu == pytest.approx([400.0, 800.0, 0.5], rel=1e-12)
    assert [row["cpu_ratio_min"], row["cpu_ratio_max"]] == pytest.approx([0.125, 1.6], rel=1e-12)
    assert row["bare_env_sps"] == pytest.approx(4000.0, rel=1e-12)
    for prefix, env, noop in (("", "env_fps", "noop_fps"), ("cpu_", "env_cpu_fps", "noop_cpu_fps")):
        assert row[f"{prefix}ratio"] == pytest.approx(row[env] / row[noop], rel=1e-12)
        assert row[f"{prefix}ratio_min"] <= row[f"{prefix}ratio"] <= row[f"{prefix}ratio_max"]


def test_training_uses_env_split_the_split_the_out_of_sample_guard_reads(
    tmp_path: Path, market: MarketData, monkeypatch
) -> None:
    """``env.split`` names the training split for the guard and the ledger: training must
    use it (it always built 'train', so env.split=test let a report call the train split
    out of sample)."""
    train_mod = sys.modules[train.__module__]  # the package exports the function as `train`
    seen: list[str] = []

    real = train_mod.build_params

    def stop(market_: MarketData, cfg: AllocgymConfig, split: str):
        seen.append(split)
        if len(seen) == 2:  # the model-selection split is built too
            raise RuntimeError("stop after the splits are chosen")
        return real(market_, cfg, split)

    monkeypatch.setattr(train_mod, "build_params", stop)
    tree = tiny_tree()
    tree["env"]["split"] = "validation"
    tree["train"]["eval_split"] = "train"
    with pytest.raises(RuntimeError, match="stop after the splits"):
        train(config_from_dict(tree), tmp_path / "run", market=market, ledger=tmp_path / "l.jsonl")
    assert seen == ["validation", "train"]  # selection on train, not on the training bars


def test_a_run_records_its_data_and_refuses_other_data(
    ppo_run: tuple[Path, TrainResult], market: MarketData, tmp_path: Path
) -> None:
    """data.json: the fingerprint, symbols and the dates trained and selected on. A resume
    on other data, an export to other symbols and an evaluation of bars the run saw are
    refused, each naming what changed."""
    from allocgym.agents.export import export_model
    from allocgym.evaluation import evaluate_run
    from allocgym.ledger import market_fingerprint, read_run_data

    run_dir, _ = ppo_run
    record = read_run_data(run_dir)
    assert record is not None and record["market"] == market_fingerprint(market)
    assert record["symbols"] == list(market.symbols)
    assert set(record["seen"]) == {"train", "validation"}
    assert record["seen"]["train"][0] == str(market.dates[0])[:10]
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    other = load_market(config_from_dict({**tiny_tree(), "data": {
        "source": "synthetic", "synthetic": {**SYNTH, "seed": 4}, "splits": SPLITS}}).data)  # fmt: skip
    with pytest.raises(ConfigError, match=r"cannot resume .* the data is not what the run "
                       r"trained on .*other prices"):  # fmt: skip
        train(tiny_cfg(total_timesteps=768, normalize_obs=True, normalize_reward=True), run,
              market=other, resume=True)  # fmt: skip
    renamed = MarketData(dates=market.dates, symbols=[f"X{k}" for k in range(6)],
                         close=market.close, volume=market.volume, spread_bps=market.spread_bps,
                         sectors=market.sectors, tradable=market.tradable,
                         benchmark_returns=market.benchmark_returns)  # fmt: skip
    model, vn, cfg = load_agent(run, "best", device="cpu")
    with pytest.raises(ConfigError, match=r"the policy trained on symbols .*'X0'"):
        export_model(model, vn, cfg, tmp_path / "bundle", market=renamed,
                     run_info={"data": record})  # fmt: skip
    # the test split moved back into the validation bars the run was selected on
    with pytest.raises(ConfigError, match="was selected on its validation split"):
        evaluate_run(run, split="test", baselines="equal_weight", market=market,
                     overrides=["data.splits.validation_end=2002-11-15"])  # fmt: skip
    # promote walks its own evaluation: checked the same way, for a run incumbent too
    from allocgym.promotion import promote

    moved = ["data.splits.validation_end=2002-11-15"]
    with pytest.raises(ConfigError, match="was selected on its validation split"):
        promote(run, "hrp", overrides=moved)


def test_a_best_model_from_an_interrupted_attempt_is_refused(
    ppo_run: tuple[Path, TrainResult], tmp_path: Path
) -> None:
    """A resumed attempt that crashed after a new best leaves best/ at a step the run's
    summary and ledger line do not describe: export and evaluation refuse it (the final
    model and a finished resume, which puts back the checkpoint's best/, still load)."""
    run_dir, result = ppo_run
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert load_agent(run, "best")[0] is not None
    ev = json.loads((run / "best" / "eval.json").read_text())
    (run / "best" / "eval.json").write_text(json.dumps({**ev, "step": 1792}))
    with pytest.raises(ConfigError, match=rf"step 1792, but the run's last finished training "
                       rf"chose step {result.best_step}: .* --resume"):  # fmt: skip
        load_agent(run, "best")
    assert load_agent(run, "final")[0] is not None


def test_an_agent_with_normalisation_statistics_pickles_for_a_ray_worker(
    ppo_run: tuple[Path, TrainResult],
) -> None:
    """A VecNormalize loaded without its env cannot pickle itself (SB3 deletes attributes
    only set_venv creates): the agent ships its statistics, and acts the same after."""
    import pickle

    run_dir, _ = ppo_run
    model, vn, _ = load_agent(run_dir, "best")
    assert vn is not None
    with pytest.raises(KeyError):
        pickle.dumps(vn)  # SB3's own limit, the reason for the agent's __getstate__
    agent = SB3PolicyAllocator(model, vn)
    back = pickle.loads(pickle.dumps(agent))
    obs = np.random.default_rng(0).normal(size=(4, agent.obs_dim)).astype(np.float32)
    assert np.array_equal(back.normalize(obs), agent.normalize(obs))
    assert np.array_equal(back.act(obs), agent.act(obs))
    assert agent.vecnormalize is vn  # the original is left as it was


def test_a_run_trained_before_the_evaluation_settings_changed_is_still_resumable(
    tmp_path: Path, market: MarketData
) -> None:
    """Evaluation settings are not what a run learned: a run whose saved config says
    ``periods_per_year: 252.0`` (the default before ``auto``) resumes under the new
    default, and a study reuses it."""
    from allocgym.agents.train import REUSE_FREE_KEYS, run_config_changes

    cfg = tiny_cfg(total_timesteps=128, eval_freq=128, checkpoint_freq=0)
    run = tmp_path / "seed_0"
    train(cfg, run, market=market)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["evaluation"]["periods_per_year"] = 252.0
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    assert run_config_changes(run, cfg) == []
    assert run_config_changes(run, cfg, REUSE_FREE_KEYS) == []
    assert train(cfg, run, market=market, resume=True).num_timesteps == 128
    other = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": 9})})
    assert run_config_changes(run, other) == ["train.seed: 0 -> 9"]


def test_train_records_in_the_ledger_its_config_names(tmp_path: Path, market: MarketData) -> None:
    """``evaluation.trials_ledger`` (a sweep's ``best_config.yaml`` sets it) is where the
    run's trial goes, not a ledger beside the run."""
    cfg = tiny_cfg(total_timesteps=128, eval_freq=128, checkpoint_freq=0)
    ledger = tmp_path / "sweep" / "trials.jsonl"
    cfg = cfg.model_copy(
        update={"evaluation": cfg.evaluation.model_copy(update={"trials_ledger": str(ledger)})}
    )
    train(cfg, tmp_path / "runs" / "winner", market=market)
    assert [r.run_dir for r in TrialsLedger(ledger).history()] == [
        str(tmp_path / "runs" / "winner")
    ]
    assert not (tmp_path / "runs" / "trials.jsonl").exists()


class _Diverge(BaseCallback):
    """Raises once training passes step 300, as a diverged PPO does ("Expected parameter
    loc ... found invalid values")."""

    def _on_step(self) -> bool:
        if self.num_timesteps >= 300:
            raise ValueError("Expected parameter loc to satisfy the constraint Real()")
        return True


def test_a_run_that_fails_after_it_was_scored_is_a_trial(
    tmp_path: Path, market: MarketData
) -> None:
    """A run scored at steps 128 and 256 that then raises: its failed record carries the
    best score so far and it counts in N (its best/ model can be evaluated); a run that
    raised before any score does not."""
    cfg = tiny_cfg(total_timesteps=512, eval_freq=128, checkpoint_freq=0)
    with pytest.raises(ValueError, match="Expected parameter loc"):
        train(cfg, tmp_path / "seed_0", market=market, callbacks=[_Diverge()])
    (rec,) = TrialsLedger(tmp_path).read()
    scores = [
        json.loads(ln)["score"]
        for ln in (tmp_path / "seed_0" / "evaluations.jsonl").read_text().splitlines()
    ]
    assert rec.status == "failed" and rec.metrics["n_evaluations"] == len(scores) == 2
    assert rec.val_sharpe == max(scores) and (tmp_path / "seed_0" / "best" / "model.zip").is_file()
    assert TrialsLedger(tmp_path).n_trials == 1
    early = tiny_cfg(total_timesteps=512, eval_freq=400, checkpoint_freq=0, seed=1)
    with pytest.raises(ValueError):
        train(early, tmp_path / "seed_1", market=market, callbacks=[_Diverge()])
    ledger = TrialsLedger(tmp_path)
    assert ledger.counts()["failed"] == 2 and ledger.n_trials == 1


class _RowKeeper(_Const):
    """A stateful allocator (``keeps_state``) that records the rows of every call."""

    keeps_state = True

    def __init__(self, w: np.ndarray) -> None:
        super().__init__(w)
        self.calls: list[int] = []

    def allocate(self, ctx: Any) -> np.ndarray:
        self.calls.append(int(ctx.n_envs))
        return super().allocate(ctx)


def test_a_stateful_baseline_runs_as_one_copy_per_validation_episode(
    market: MarketData,
) -> None:
    """Greedy keeps its entries per row of a call; one object shared by the episodes had
    its rows shift once an episode restarted (state wiped or taken from another episode).
    Each episode now has its own copy, always called with its one row, and the object
    passed in is left as it was."""
    params = build_params(market, tiny_cfg(), "validation")
    keeper = _RowKeeper(np.full((1, 6), 1 / 6))
    wide = run_episodes(params, 3, allocator=keeper, rebalance_every=5)
    assert keeper.calls == []
    plain = run_episodes(params, 3, allocator=_Const(keeper.w), rebalance_every=5)
    assert [e["total_return"] for e in wide] == [e["total_return"] for e in plain]
    seen: list[list[int]] = []

    class _Spy(_RowKeeper):
        def __deepcopy__(self, memo: dict) -> _Spy:
            twin = _Spy(self.w)
            seen.append(twin.calls)
            return twin

    run_episodes(params, 3, allocator=_Spy(keeper.w), rebalance_every=5)
    assert len(seen) == 3 and all(calls and set(calls) == {1} for calls in seen)
