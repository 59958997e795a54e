"""``allocgym bench train``: is the environment the bottleneck of PPO training?

PPO trains for the same number of steps on ``PortfolioVecEnv`` and on :class:`NoOpVecEnv`
(identical spaces, episode length and auto-reset; observations drawn once, zero rewards,
no dynamics), interleaved in one run. The ratio of fps, env / no-op, is the share of
training speed the env leaves (goal >= 0.95 at 16 envs). Each run is timed in wall time
and in process CPU time: on a shared machine the CPU ratio is the steadier of the two
(with one BLAS / torch thread; more threads add their CPU time up). The bare env stepping
rate (random actions, no learner) is reported beside it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from allocgym import compiled
from allocgym.bench.env import ACTION_POOL
from allocgym.config import AllocgymConfig, config_from_dict
from allocgym.data import MarketData, load_market


class NoOpVecEnv(VecEnv):
    """A VecEnv with the spaces of another one and no dynamics.

    Observations cycle through a fixed pool drawn uniformly inside the observation Box,
    rewards are 0, and every env ends its episode after ``episode_length`` steps (with
    ``terminal_observation`` and ``TimeLimit.truncated`` like the real env), so SB3 does
    the same bookkeeping.

    Parameters
    ----------
    observation_space, action_space : gymnasium.spaces.Box
        Per-env spaces to mimic.
    n_envs : int
    episode_length : int
    seed : int
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Box,
        n_envs: int,
        episode_length: int,
        seed: int = 0,
    ) -> None:
        self.render_mode = None
        super().__init__(n_envs, observation_space, action_space)
        rng = np.random.default_rng(seed)
        low = np.maximum(observation_space.low, -10.0)
        high = np.minimum(observation_space.high, 10.0)
        pool = rng.uniform(low, high, size=(64, n_envs, *observation_space.shape))
        self._pool = pool.astype(np.float32)
        self._k = 0
        self._steps = np.zeros(n_envs, dtype=np.int64)
        self._episode_length = int(episode_length)
        self._rewards = np.zeros(n_envs, dtype=np.float32)
        self._empty: list[dict[str, Any]] = [{} for _ in range(n_envs)]

    def reset(self) -> np.ndarray:
        self._steps[:] = 0
        self._k = 0
        return self._pool[0].copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        self._k = (self._k + 1) % self._pool.shape[0]
        obs = self._pool[self._k].copy()
        self._steps += 1
        done = self._steps >= self._episode_length
        infos = list(self._empty)
        for i in np.flatnonzero(done):
            infos[i] = {"terminal_observation": obs[i].copy(), "TimeLimit.truncated": True}
        self._steps[done] = 0
        return obs, self._rewards.copy(), done, infos

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any
    ) -> list[Any]:
        result = getattr(self, method_name)(*args, **kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def _bench_config(cfg: AllocgymConfig, n_envs: int) -> AllocgymConfig:
    tree = cfg.model_dump(mode="json")
    tree["train"].update(n_envs=int(n_envs), eval_freq=0, checkpoint_freq=0)
    tree["train"]["batch_size"] = min(
        int(tree["train"]["batch_size"]), n_envs * int(tree["train"]["n_steps"])
    )
    return config_from_dict(tree)


def _timed_learn(model: Any, timesteps: int) -> tuple[float, float]:
    """Train ``model`` for ``timesteps`` steps; its (wall, process CPU) steps per second."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    model.learn(timesteps)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return model.num_timesteps / wall, model.num_timesteps / cpu


def run(
    cfg: AllocgymConfig,
    *,
    timesteps: int = 8192,
    repeat: int = 3,
    n_envs: Sequence[int] = (16,),
    market: MarketData | None = None,
) -> list[dict[str, Any]]:
    """PPO fps (wall and process CPU) on the env and on the no-op env, interleaved.

    Repeat ``r`` trains on both envs back to back, the env first on even ``r`` and the
    no-op env first on odd ``r``, so that neither gains from its place in the pair (warm
    caches, memory the other left). The compiled step kernels are compiled (or loaded from
    their disk cache) before any timing.

    Parameters
    ----------
    cfg : AllocgymConfig
        ``cfg.train`` gives the algorithm settings (PPO is used whatever ``algo`` says),
        ``cfg.data`` the market.
    timesteps : int
        PPO steps per timed run (rounded up by SB3 to whole rollouts).
    repeat : int
        Timed runs per env kind and ``n_envs``.
    n_envs : sequence of int
    market : MarketData, optional
        Default ``load_market(cfg.data)``.

    Returns
    -------
    list of dict
        One row per ``n_envs``: ``env_fps`` / ``noop_fps`` (median PPO wall fps on each
        env), ``ratio`` (env / no-op of the medians), ``ratio_min`` / ``ratio_max`` (the
        extremes of the ``repeat`` paired ratios, env / no-op of the same repeat); the same
        in process CPU time: ``env_cpu_fps``, ``noop_cpu_fps``, ``cpu_ratio``,
        ``cpu_ratio_min``, ``cpu_ratio_max``; and ``bare_env_sps`` (env steps summed over
        portfolios per wall second with random actions, no learner).
    """
    from allocgym.agents.train import build_model, resolve_device, torch_settings
    from allocgym.bench import time_calls
    from allocgym.envs import PortfolioVecEnv, build_params

    market = market if market is not None else load_market(cfg.data)
    rows: list[dict[str, Any]] = []
    tree = cfg.model_dump(mode="json")
    tree["train"]["algo"] = "ppo"
    base = config_from_dict(tree)
    device = resolve_device(base.train.device)
    compiled.warm_up()  # compile time is no part of the env's training time
    for n in n_envs:
        c = _bench_config(base, n)
        params = build_params(market, c, "train")
        # fps[kind] is (repeat, 2): wall and CPU fps of each repeat
        fps: dict[str, np.ndarray] = {"env": np.empty((repeat, 2)), "noop": np.empty((repeat, 2))}
        with torch_settings(c.train.deterministic, c.train.torch_threads):
            for r in range(repeat):
                for kind in ("env", "noop") if r % 2 == 0 else ("noop", "env"):
                    real = PortfolioVecEnv(params=params, n_envs=n, seed=c.train.seed + r)
                    venv: VecEnv = real
                    if kind == "noop":
                        venv = NoOpVecEnv(
                            real.observation_space,  # type: ignore[arg-type]
                            real.action_space,  # type: ignore[arg-type]
                            n,
                            c.env.episode_length,
                            seed=r,
                        )
                    model = build_model(c, VecMonitor(venv), params, device=device)
                    fps[kind][r] = _timed_learn(model, timesteps)
            real = PortfolioVecEnv(params=params, n_envs=n, seed=c.train.seed)
            real.reset()
            rng = np.random.default_rng(0)
            shape = (ACTION_POOL, n, *real.action_space.shape)
            pool = itertools.cycle(rng.uniform(-1, 1, shape).astype(np.float32))
            per_call = time_calls(
                lambda real=real, pool=pool: real.step(next(pool)), repeat=7, number=50
            )
        env_fps, env_cpu_fps = np.median(fps["env"], axis=0)
        noop_fps, noop_cpu_fps = np.median(fps["noop"], axis=0)
        paired = fps["env"] / fps["noop"]
        ratio_min, cpu_ratio_min = paired.min(axis=0)
        ratio_max, cpu_ratio_max = paired.max(axis=0)
        rows.append(
            {
                "n_envs": n,
                "n_assets": params.n_assets,
                "device": device,
                "env_fps": float(env_fps),
                "noop_fps": float(noop_fps),
                "ratio": float(env_fps / noop_fps),
                "ratio_min": float(ratio_min),
                "ratio_max": float(ratio_max),
                "env_cpu_fps": float(env_cpu_fps),
                "noop_cpu_fps": float(noop_cpu_fps),
                "cpu_ratio": float(env_cpu_fps / noop_cpu_fps),
                "cpu_ratio_min": float(cpu_ratio_min),
                "cpu_ratio_max": float(cpu_ratio_max),
                "bare_env_sps": n / float(np.median(per_call)),
            }
        )
    return rows
