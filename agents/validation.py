"""Periodic validation runs: the agent and the baselines through the same env and seeds.

:func:`run_episodes` plays one episode per seed on a ``PortfolioVecEnv`` built from shared
``EnvParams`` and returns each portfolio's ``episode_metrics`` (the env computes them, so
agent and baselines are measured by one implementation). An agent acts through
:class:`~allocgym.agents.allocator.SB3PolicyAllocator`; a baseline is any
``allocgym.allocator.Allocator`` run by evaluation's rebalancing rule
(``allocgym.envs.context.Rebalancer``) on the contexts of
``allocgym.envs.context.allocation_context``: it re-optimises at each episode's first bar
and every ``rebalance_every`` bars and holds its drifted book in between, so the curves
logged during training are the strategies of the final evaluation table.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from allocgym.allocator import Allocator
from allocgym.envs import PortfolioVecEnv
from allocgym.envs.context import Rebalancer
from allocgym.envs.core import EnvParams

EVAL_SEED_BASE = 1_000_003
"""Seed of the validation batch; fixed so every evaluation sees the same episodes."""


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
        Seed of the ``PortfolioVecEnv`` (portfolio ``i`` gets the key
        ``portfolio_keys(seed, n_episodes)[i]``), so every call with the same seed plays
        the same episodes.
    act : callable, optional
        ``act(obs (n_envs, obs_dim), episode_start (n_envs,) bool) -> actions`` (agents).
    allocator : Allocator, optional
        Baseline proposing weights from an ``AllocationContext`` (exactly one of ``act``
        and ``allocator``); one that ``keeps_state`` runs as a copy per episode (it is
        left as it was).
    rebalance_every : int
        Bars between re-optimisations (``Rebalancer``: the drifted book is held in between,
        a target cut by a trade limit keeps being proposed).
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
    rule = None
    if allocator is not None:
        # an allocator that keeps state per portfolio row (greedy's entries) gets one copy
        # per episode: shared, its rows shifted once the episodes' due sets diverged
        per_episode = (
            [copy.deepcopy(allocator) for _ in range(n)]
            if getattr(allocator, "keeps_state", False)
            else [allocator] * n
        )
        rule = Rebalancer(per_episode, rebalance_every=rebalance_every, lookback=lookback)
    max_steps = params.episode_length + 1
    for _ in range(max_steps):
        if rule is None:
            assert act is not None
            obs, _, dones, infos = venv.step(act(obs, starts))
        else:
            assert venv.state is not None
            proposed = rule.propose(params, venv.state, np.zeros((n, params.n_assets)))
            obs, _, dones, infos = venv.step_proposed(proposed)
            info = venv.last_info
            rule.after_step(info["portfolio_reasons"], info["symbol_reasons"])
        starts = dones
        for i in np.flatnonzero(dones & pending):
            results[i] = infos[i]["episode_metrics"]
        pending &= ~dones
        if not pending.any():
            break
    if pending.any():  # cannot happen: every episode is truncated at episode_length
        raise RuntimeError(f"validation episodes {np.flatnonzero(pending).tolist()} did not end")
    return [r for r in results if r is not None]
