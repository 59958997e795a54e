"""allocgym: a gymnasium portfolio environment with deterministic risk gates.

Sub-packages ``allocgym.envs``, ``allocgym.agents`` and ``allocgym.baselines`` live in the
repository's top-level ``envs/``, ``agents/`` and ``baselines/`` folders.

``import allocgym`` makes ``gymnasium.make("allocgym/Portfolio-v0", ...)`` work without
importing gymnasium (or torch) itself: the environment is registered, by its entry-point
string, as soon as gymnasium is imported (at once if it already is). ``allocgym.serving``
stays free of gymnasium and torch.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from typing import Any

__version__ = "0.1.0"

ENV_ID = "allocgym/Portfolio-v0"
"""Gymnasium id of the single-portfolio environment (``allocgym.envs.PortfolioEnv``)."""

ENV_ENTRY_POINT = "allocgym.envs.portfolio_env:PortfolioEnv"
"""Where gymnasium finds it (imported on ``gymnasium.make``, not before)."""


def register_envs() -> None:
    """Register ``allocgym/Portfolio-v0`` with gymnasium (idempotent; imports gymnasium)."""
    import gymnasium as gym

    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=ENV_ENTRY_POINT)


class _RegisterWhenGymnasiumLoads(importlib.abc.MetaPathFinder):
    """One-shot import hook: once gymnasium's package has run, register the env."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "gymnasium":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        loader = None if spec is None else spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            register_envs()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if "gymnasium" in sys.modules:
    register_envs()
elif not any(isinstance(f, _RegisterWhenGymnasiumLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenGymnasiumLoads())
