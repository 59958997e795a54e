"""Gymnasium portfolio environments: one batched functional core, two thin shells.

- :mod:`allocgym.envs.core`: ``EnvParams``, ``EnvState``, ``reset``, ``step`` over
  ``n_envs`` portfolios in single numpy calls;
- :class:`PortfolioEnv`: ``gymnasium.Env`` with one portfolio, registered as
  ``allocgym/Portfolio-v0`` (``gymnasium.make("allocgym/Portfolio-v0", market=..., cfg=...)``);
- :class:`PortfolioVecEnv`: stable-baselines3 ``VecEnv`` stepping ``n_envs`` portfolios.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym

from allocgym.envs import core
from allocgym.envs.core import (
    INFO_KEYS,
    REASON_CODES,
    REASON_NAMES,
    EnvParams,
    EnvState,
    StepResult,
)
from allocgym.envs.portfolio_env import PortfolioEnv, build_params

if TYPE_CHECKING:
    from allocgym.envs.vec_env import PortfolioVecEnv

ENV_ID = "allocgym/Portfolio-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="allocgym.envs.portfolio_env:PortfolioEnv")


def __getattr__(name: str) -> Any:
    # PortfolioVecEnv imports stable-baselines3 (and torch): only when asked for.
    if name == "PortfolioVecEnv":
        from allocgym.envs.vec_env import PortfolioVecEnv

        return PortfolioVecEnv
    raise AttributeError(f"module 'allocgym.envs' has no attribute {name!r}")


__all__ = [
    "ENV_ID",
    "INFO_KEYS",
    "REASON_CODES",
    "REASON_NAMES",
    "EnvParams",
    "EnvState",
    "PortfolioEnv",
    "PortfolioVecEnv",
    "StepResult",
    "build_params",
    "core",
]
