"""``allocgym bench sweep``: what does running a sweep on Ray buy, and what does it cost?

The same trials (small PPO runs on a synthetic market, learning rates drawn at random) are
trained three ways in one process, interleaved round by round:

- ``serial``: one after another in this process with :func:`allocgym.agents.train`;
- ``ray N cpu``: a sweep (:func:`allocgym.sweep.run_sweep`, no early stopping) on a local
  Ray started with N CPUs, one CPU per trial, so N trials run at once;
- ``ray 1 cpu``: the same sweep on a 1-CPU Ray, one trial at a time like ``serial``.

Every wall time includes what a user waits for: starting Ray, the trials and stopping Ray.
Trials per hour and the speed-up over ``serial`` come from the N-CPU sweep; Ray's overhead
per trial is ``(wall of ray 1 cpu - wall of serial) / trials``: starting and stopping Ray,
the trial actors, shipping the market and reporting, with the parallelism held equal.
CPU time is this process's (the driver's) beside the trials' own (measured in the workers);
``cores busy`` (trial CPU / wall) shows how much parallelism the machine actually gave.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from allocgym.config import AllocgymConfig, load_config
from allocgym.data import load_market

BENCH_OVERRIDES: tuple[str, ...] = (
    "data.source=synthetic",
    "data.synthetic.n_assets=8",
    "data.synthetic.n_days=1520",
    "data.synthetic.seed=3",
    "data.splits.train_end=2002-12-31",
    "data.splits.validation_end=2003-12-31",
    "data.splits.test_end=2004-12-31",
    "env.episode_length=63",
    "env.action_mode=tilt",
    "train.n_envs=8",
    "train.n_steps=64",
    "train.batch_size=128",
    "train.n_epochs=4",
    "train.eval_episodes=4",
    "train.checkpoint_freq=0",
    "train.device=cpu",
    "train.eval_baselines=[equal_weight]",
    "train.asset_set.encoder=[32]",
    "train.asset_set.global_encoder=[16]",
    "train.asset_set.head=[32]",
)
"""The benchmark's trial: a small PPO run (seconds) on an 8-asset synthetic market."""

SPACE = {"space": {"train.learning_rate": {"loguniform": [1.0e-4, 1.0e-3]}}}
"""Learning rates drawn at random: trials of equal work, different configurations."""


def bench_config(timesteps: int) -> AllocgymConfig:
    """The trial config at ``timesteps`` steps (four validation runs)."""
    return load_config(None, [*BENCH_OVERRIDES, f"train.total_timesteps={timesteps}",
                              f"train.eval_freq={max(timesteps // 4, 1)}"])  # fmt: skip


def _quiet(_msg: str) -> None:
    return None


def _space(lrs: np.ndarray) -> Any:
    from allocgym.search_space import space_from_dict

    return space_from_dict({**SPACE, "points": [{"train.learning_rate": float(x)} for x in lrs]})


def _sweep(
    cfg: AllocgymConfig, space: Any, folder: Path, cpus: int, market: Any
) -> dict[str, float]:
    from allocgym.sweep import SweepOptions, run_sweep

    trials = len(space.points)
    opts = SweepOptions(trials=trials, search="random", scheduler="none")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    res = run_sweep(cfg, space, folder, options=opts, num_cpus=cpus, market=market, echo=_quiet)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    done = [r for r in res.rows if r["status"] == "completed"]
    if len(done) != trials:
        raise RuntimeError(f"benchmark sweep in {folder} completed {len(done)}/{trials} trials")
    return {"wall": wall, "driver_cpu": cpu, "trial_cpu": sum(r["cpu_s"] or 0.0 for r in done),
            "ray_start": res.ray_start_s}  # fmt: skip


def _serial(cfg: AllocgymConfig, space: Any, folder: Path, market: Any) -> dict[str, float]:
    from allocgym.agents import train

    base = cfg.model_dump(mode="json")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for k, point in enumerate(space.encoded_points()):
        train(space.apply(base, point), folder / f"trial_{k}", market=market)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"wall": wall, "driver_cpu": cpu, "trial_cpu": cpu, "ray_start": 0.0}


def run(
    *, trials: int = 4, timesteps: int = 4096, repeat: int = 3, num_cpus: int = 2
) -> tuple[list[dict[str, Any]], list[str]]:
    """Time the three ways for ``repeat`` interleaved rounds (order reversed every other).

    Returns
    -------
    rows : list of dict
        One per way: medians of wall and CPU seconds, trials per hour, speed-up.
    notes : list of str
        Ray's overhead per trial, Ray's start time, the machine's load.
    """
    cfg = bench_config(timesteps)
    market = load_market(cfg.data)
    arms = ("serial", f"ray {num_cpus} cpu", "ray 1 cpu")
    runs: dict[str, list[dict[str, float]]] = {a: [] for a in arms}
    load_before = os.getloadavg()
    rng = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(prefix="allocgym-bench-sweep-"))
    try:
        for r in range(repeat):
            space = _space(np.exp(rng.uniform(np.log(1e-4), np.log(1e-3), size=trials)))
            for arm in arms if r % 2 == 0 else arms[::-1]:
                folder = root / f"round{r}" / arm.replace(" ", "_")
                if arm == "serial":
                    runs[arm].append(_serial(cfg, space, folder, market))
                else:
                    cpus = 1 if arm == "ray 1 cpu" else num_cpus
                    runs[arm].append(_sweep(cfg, space, folder, cpus, market))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {a: {k: float(np.median([x[k] for x in runs[a]])) for k in runs[a][0]} for a in arms}
    base_tph = trials / med["serial"]["wall"] * 3600
    rows = []
    for arm in arms:
        tph = trials / med[arm]["wall"] * 3600
        rows.append({"way": arm, "wall s": med[arm]["wall"], "driver CPU s": med[arm]["driver_cpu"],
                     "trial CPU s": med[arm]["trial_cpu"],
                     "cores busy": med[arm]["trial_cpu"] / med[arm]["wall"],
                     "trials/hour": tph, "x serial": tph / base_tph})  # fmt: skip
    overhead = [(one["wall"] - ser["wall"]) / trials
                for one, ser in zip(runs["ray 1 cpu"], runs["serial"], strict=True)]  # fmt: skip
    ray_n = f"ray {num_cpus} cpu"
    notes = [
        f"Ray overhead per trial: {np.median(overhead):.2f} s (ray 1 cpu wall - serial wall, per "
        f"trial, median of {repeat}); starting Ray took {med[ray_n]['ray_start']:.1f} s per sweep "
        "(included)",
        f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before and "
        f"{os.getloadavg()[0]:.2f} after",
    ]
    return rows, notes
