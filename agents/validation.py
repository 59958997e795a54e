"""Periodic validation runs: the agent and the baselines through the same env and seeds.

:func:`run_episodes` plays one episode per seed on a ``PortfolioVecEnv`` built from shared
``EnvParams`` and returns each portfolio's ``episode_metrics`` (the env computes them, so
agent and baselines are measured by one implementation). An agent acts through
:class:`~allocgym.agents.allocator.SB3PolicyAllocator`; a baseline is any
``allocgym.allocator.Allocator``, asked for weights at the first bar and every
``rebalance_every`` bars, its weights proposed again in between (the gates and the
execution bands decide what trades).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from allocgym.allocator import AllocationContext, Allocator
from allocgym.envs import PortfolioVecEnv, core
from allocgym.envs.core import EnvParams, EnvState

EVAL_SEED_BASE = 1_000_003
"""Seed of the first validation portfolio; fixed so every evaluation sees the same episodes."""


def allocation_context(params: EnvParams, state: EnvState, lookback: int) -> AllocationContext:
    """Past-only ``AllocationContext`` at every portfolio's decision bar.

    Parameters
    ----------
    params : EnvParams
    state : EnvState
    lookback : int
        Trailing bars of returns (clamped to the bars available before the earliest ``t``).

    Returns
    -------
    AllocationContext
        ``returns`` of shape (n_envs, lookback, n_assets), the last row being bar t.
    """
    t = state.t
    n_back = int(min(lookback, int(t.min()) + 1))
    rows = t[:, None] + np.arange(-n_back + 1, 1)[None, :]  # (n_envs, n_back)
    feats = params.features
    return AllocationContext(
        returns=params.returns[rows],
        current_weights=core.current_weights(params, state),
        symbols=params.market.symbols,
        sector_ids=params.sector_ids,
        regime=feats.regime[t].astype(np.int64),
        regime_confidence=feats.regime_confidence[t],
        betas=feats.betas[t],
        benchmark_returns=params.market.benchmark_returns[rows],
        t=t.copy(),
    )


def run_episodes(
    params: EnvParams,
    n_episodes: int,
    *,
    seed: int = EVAL_SEED_BASE,
    act: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    allocator: Allocator | None = None,
    rebalance_every: int = 1,
    lookback: int = 252,
) -> list[dict[str, Any]]:
    """``n_episodes`` episodes in parallel; returns each one's ``episode_metrics``.

    Parameters
    ----------
    params : EnvParams
        Shared parameters (market, split, gates, costs).
    n_episodes : int
        Portfolios run side by side, one episode each.
    seed : int
        Portfolio ``i`` is reset with seed ``seed + i`` (``PortfolioVecEnv`` convention),
        so every call with the same seed plays the same episodes.
    act : callable, optional
        ``act(obs (n_envs, obs_dim), episode_start (n_envs,) bool) -> actions`` (agents).
    allocator : Allocator, optional
        Baseline proposing weights from an ``AllocationContext`` (exactly one of ``act``
        and ``allocator``).
    rebalance_every : int
        Bars between allocator calls (the last weights are proposed in between).
    lookback : int
        Return history given to the allocator.

    Returns
    -------
    list of dict
        ``episode_metrics`` of each portfolio's first episode, portfolio order.
    """
    if (act is None) == (allocator is None):
        raise ValueError("run_episodes needs exactly one of act= (agent) or allocator= (baseline)")
    n = int(n_episodes)
    venv = PortfolioVecEnv(params=params, n_envs=n, seed=int(seed))
    obs = venv.reset()
    results: list[dict[str, Any] | None] = [None] * n
    pending = np.ones(n, dtype=bool)
    starts = np.ones(n, dtype=bool)
    target: np.ndarray | None = None
    max_steps = params.episode_length + 1
    for k in range(max_steps):
        if act is not None:
            obs, _, dones, infos = venv.step(act(obs, starts))
        else:
            assert allocator is not None and venv.state is not None
            if k % rebalance_every == 0 or target is None:
                target = np.asarray(
                    allocator.allocate(allocation_context(params, venv.state, lookback)),
                    dtype=np.float64,
                )
            obs, _, dones, infos = venv.step_proposed(target)
        starts = dones
        for i in np.flatnonzero(dones & pending):
            results[i] = infos[i]["episode_metrics"]
        pending &= ~dones
        if not pending.any():
            break
    if pending.any():  # cannot happen: every episode is truncated at episode_length
        raise RuntimeError(f"validation episodes {np.flatnonzero(pending).tolist()} did not end")
    return [r for r in results if r is not None]
