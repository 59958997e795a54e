"""Stable-baselines3 agents: policies, training runs, checkpoints and the policy allocator.

- :mod:`allocgym.agents.policies`: the permutation-equivariant asset-set extractor and
  actor-critic policy, and the deterministic actor module the export traces;
- :mod:`allocgym.agents.train`: ``train(cfg, run_dir, resume=...)``, ``load_agent``,
  checkpoints, validation against baselines, progress bar;
- :mod:`allocgym.agents.metrics`: risk / allocation scalars for TensorBoard;
- :mod:`allocgym.agents.allocator`: ``SB3PolicyAllocator`` (observations -> actions /
  proposed weights, deterministic).
"""

from __future__ import annotations

from allocgym.agents.allocator import SB3PolicyAllocator
from allocgym.agents.metrics import RiskMetricsCallback, aggregate, flatten_metrics
from allocgym.agents.policies import (
    AssetSetActorCriticPolicy,
    AssetSetExtractor,
    DeterministicActor,
    ObsLayout,
    action_layout_for,
)
from allocgym.agents.train import (
    ALGOS,
    RESUME_FREE_KEYS,
    REUSE_FREE_KEYS,
    TrainResult,
    build_model,
    latest_checkpoint,
    list_checkpoints,
    load_agent,
    load_run_config,
    obs_layout,
    policy_spec,
    resolve_device,
    run_config_changes,
    shortening,
    train,
)
from allocgym.agents.validation import run_episodes

__all__ = [
    "ALGOS",
    "RESUME_FREE_KEYS",
    "REUSE_FREE_KEYS",
    "AssetSetActorCriticPolicy",
    "AssetSetExtractor",
    "DeterministicActor",
    "ObsLayout",
    "RiskMetricsCallback",
    "SB3PolicyAllocator",
    "TrainResult",
    "action_layout_for",
    "aggregate",
    "build_model",
    "flatten_metrics",
    "latest_checkpoint",
    "list_checkpoints",
    "load_agent",
    "load_run_config",
    "obs_layout",
    "policy_spec",
    "resolve_device",
    "run_config_changes",
    "run_episodes",
    "shortening",
    "train",
]
