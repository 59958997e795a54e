"""Shared, process-cached builders for the serving, export and HTTP tests (no tests here).

A tiny PPO agent is trained once per test process on the S&P 500 sample through the real
agents API (``allocgym.agents.train``) and exported once (``export_run``, full parity
check); the test modules wrap these in session fixtures. Everything lives in one
temporary folder removed at exit.
"""

from __future__ import annotations

import atexit
import datetime as dt
import shutil
import tempfile
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from allocgym.config import AllocgymConfig, config_from_dict

ENABLED = {"TRADING_ALLOCATOR_ENABLED": "true"}

TINY_TRAIN: dict[str, Any] = {
    "env": {"episode_length": 64},
    "train": {
        "policy": "mlp",
        "n_envs": 2,
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 2,
        "total_timesteps": 256,
        "eval_freq": 0,
        "eval_episodes": 2,
        "checkpoint_freq": 0,
        "device": "cpu",
        "torch_threads": 1,
        "eval_baselines": [],
        "normalize_obs": True,
    },
}
"""A few hundred PPO steps with VecNormalize (the normaliser must be in the ONNX graph)."""


@cache
def workdir() -> Path:
    """One temporary folder for the whole test process."""
    d = Path(tempfile.mkdtemp(prefix="allocgym-serving-"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return d


@cache
def sp500() -> Any:
    from allocgym.data import load_sp500

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_sp500()


def tiny_config(**extra: Any) -> AllocgymConfig:
    tree = {k: dict(v) for k, v in TINY_TRAIN.items()}
    for section, values in extra.items():
        tree.setdefault(section, {}).update(values)
    return config_from_dict(tree)


@cache
def trained_run() -> Path:
    """Run directory of a tiny PPO trained with the agents API on the S&P 500 sample."""
    from allocgym.agents import train

    run = workdir() / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(tiny_config(), run, market=sp500())
    return run


@cache
def exported_bundle() -> Path:
    """``export_run`` of :func:`trained_run` with the default (>= 10k) parity check."""
    from allocgym.agents.export import export_run

    out = workdir() / "bundle"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_run(trained_run(), out)
    return out


def untrained_bundle(
    mode: str = "weights",
    long_only: bool = True,
    algo: str = "ppo",
    prior: str = "equal_weight",
    lookback: int = 252,
    interval: int = 1,
    max_turnover: float = 0.5,
    schedule_every: int | None = None,
) -> Path:
    """An untrained SB3 policy on a small synthetic market, exported (small parity check);
    ``prior`` and ``lookback``: the tilt prior and its window (``baselines.lookback``);
    ``interval``: ``env.decision_interval``; ``max_turnover``: the risk limit;
    ``schedule_every``: ``execution.scheduled_only`` with that schedule."""
    return _untrained_bundle(
        mode, long_only, algo, prior, lookback, interval, max_turnover, schedule_every
    )


@cache
def _untrained_bundle(
    mode: str,
    long_only: bool,
    algo: str,
    prior: str,
    lookback: int,
    interval: int,
    max_turnover: float,
    schedule_every: int | None,
) -> Path:
    from allocgym.agents.export import export_model
    from allocgym.agents.train import build_model
    from allocgym.envs import PortfolioVecEnv, build_params

    cfg = config_from_dict(
        {
            "data": {
                "source": "synthetic",
                "synthetic": {"n_assets": 6, "n_days": 500, "seed": 5, "n_sectors": 3},
            },
            "env": {
                "split": "all",
                "action_mode": mode,
                "tilt_prior": prior,
                "decision_interval": interval,
            },
            "baselines": {"lookback": lookback},
            "risk": {"long_only": long_only, "max_net": 1.0, "max_turnover": max_turnover},
            "execution": {}
            if schedule_every is None
            else {"scheduled_only": True, "schedule_every": schedule_every},
            "train": {"policy": "mlp", "algo": algo, "n_envs": 2, "device": "cpu"},
        }
    )
    market = small_market()
    params = build_params(market, cfg, "all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, PortfolioVecEnv(params=params, n_envs=2, seed=0), params)
        name = (
            f"untrained-{mode}-{long_only}-{algo}-{prior}-{lookback}-{interval}-{max_turnover}"
            f"-{schedule_every}"
        )
        out = workdir() / name
        export_model(model, None, cfg, out, market=market, n_recorded=256, n_random=256)
    return out


def reseal_bundle(folder: Path, edit: Any = None) -> str:
    """Apply ``edit(manifest)`` to a bundle copy and recompute its seal, model id and model
    hash as an export would (what someone who edits a bundle and re-seals it can do);
    returns the new model id. Without a signature requirement such a bundle loads."""
    import hashlib
    import json

    import onnx

    from allocgym.serving.bundle import (
        compute_seal,
        derive_model_id,
        model_core_bytes,
        stamp_model_id,
    )

    manifest = json.loads((folder / "manifest.json").read_text())
    if edit is not None:
        edit(manifest)
    model = onnx.load_model_from_string((folder / "model.onnx").read_bytes())
    core = model_core_bytes(model)
    seal = compute_seal(manifest, core)
    model_id = derive_model_id(manifest["algo"], seal["digest"])
    del model.metadata_props[-1]
    data = stamp_model_id(model, model_id)
    (folder / "model.onnx").write_bytes(data)
    manifest["model_id"] = model_id
    manifest["model"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    manifest["seal"] = seal
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return model_id


@cache
def small_market() -> Any:
    from allocgym.data import synthetic

    return synthetic(n_assets=6, n_days=500, seed=5, n_sectors=3)


def bar_clock(market: Any, t: int, hours: float = 1.0) -> dt.datetime:
    """A server clock ``hours`` after bar ``t``'s date (requests at ``t`` are fresh)."""
    day = str(np.datetime_as_string(market.dates[int(t)], unit="D"))
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) + dt.timedelta(hours=hours)


def fixed_clock(when: dt.datetime) -> Any:
    return lambda: when


def patient(policy: Any, *overrides: str) -> Any:
    """The bundle's serving config with a 5 s model deadline and a 5 s queue limit (plus
    ``overrides``): on a loaded test machine a slow ONNX call or a late thread wake-up
    must not turn into a deadline fallback or a 503 shed in functional tests."""
    from allocgym.serving.allocator import serving_config

    return serving_config(
        policy, ["serving.deadline_ms=5000", "serving.max_queue_ms=5000", *overrides]
    )
