"""``SB3PolicyAllocator``: a trained SB3 policy as a deterministic allocator.

The policy sees the env's observation (``FeatureBuilder`` layout), optionally normalised
with the frozen ``VecNormalize`` statistics saved beside the model, and returns an action
in the ``ActionSpec`` Box; the env's action map turns it into proposed weights for the
risk gates. As an :class:`~allocgym.allocator.Allocator` (``allocate(ctx)``) it acts on
the context's observation like any other allocator; :meth:`SB3PolicyAllocator.act`,
``propose`` and ``budgets`` work on raw observations (training callbacks, export parity).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from allocgym.actions import ActionSpec
from allocgym.allocator import PolicyAllocator
from allocgym.errors import ConfigError

_ENV_BOUND = ("venv", "class_attributes", "returns")
"""VecNormalize attributes tied to a live env, left out when an agent is pickled."""


class SB3PolicyAllocator(PolicyAllocator):
    """Deterministic proposals from a trained SB3 model.

    Parameters
    ----------
    model : BaseAlgorithm
        PPO, A2C, SAC or RecurrentPPO trained on ``PortfolioVecEnv``.
    vecnormalize : VecNormalize, optional
        Observation statistics of training (used read-only; never updated here).
    action_spec : ActionSpec, optional
        The env's action map; needed by :meth:`allocate`, :meth:`propose` and
        :meth:`budgets`.
    name : str, optional
        Label in reports; default ``"agent"``.

    Notes
    -----
    Recurrent policies keep their LSTM state between calls; pass ``episode_start`` (True
    where a new episode begins) or call :meth:`reset` before a new batch of episodes.
    """

    def __init__(
        self,
        model: BaseAlgorithm,
        vecnormalize: VecNormalize | None = None,
        action_spec: ActionSpec | None = None,
        name: str = "agent",
    ) -> None:
        self.model = model
        self.vecnormalize = vecnormalize
        self.action_spec = action_spec
        self.name = name
        shape = model.observation_space.shape
        assert shape is not None
        self.obs_dim = int(np.prod(shape))
        self._state: Any = None
        if action_spec is not None and model.action_space.shape != action_spec.shape:
            raise ConfigError(
                f"SB3PolicyAllocator: model action shape {model.action_space.shape} != "
                f"ActionSpec shape {action_spec.shape}: the model was trained on another "
                "universe or action mode; evaluate it on the data and config it was trained "
                "with (its run's config.yaml), without --set data.* overrides"
            )

    def __getstate__(self) -> dict[str, Any]:
        # A VecNormalize loaded without its env cannot be pickled by its own __getstate__
        # (it deletes attributes only set_venv creates): ship its statistics instead, so
        # an agent can go to a Ray worker (allocgym evaluate --address).
        state = self.__dict__.copy()
        if self.vecnormalize is not None:
            state["vecnormalize"] = {
                k: v for k, v in vars(self.vecnormalize).items() if k not in _ENV_BOUND
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        stats = state.get("vecnormalize")
        if isinstance(stats, dict):
            vn = VecNormalize.__new__(VecNormalize)
            vn.__setstate__(stats)  # statistics only, no env: normalize_obs works
            state = {**state, "vecnormalize": vn}
        self.__dict__.update(state)

    def reset(self) -> None:
        """Forget the recurrent state (start of new episodes)."""
        self._state = None

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """Observations as the policy saw them in training, float32 (n_envs, obs_dim)."""
        x = np.asarray(obs, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.obs_dim:
            raise ValueError(
                f"observations have shape {x.shape}, expected (n_envs, {self.obs_dim}): pass "
                "the env's batched observation"
            )
        if self.vecnormalize is not None:
            x = np.asarray(self.vecnormalize.normalize_obs(x), dtype=np.float32)
        return x

    def act(self, obs: np.ndarray, episode_start: np.ndarray | None = None) -> np.ndarray:
        """Deterministic actions, float32 (n_envs, action_dim), inside the action Box.

        Parameters
        ----------
        obs : ndarray, shape (n_envs, obs_dim)
            Raw env observations.
        episode_start : ndarray of bool, shape (n_envs,), optional
            Recurrent policies only: True resets that env's LSTM state.
        """
        x = self.normalize(obs)
        if episode_start is None:
            episode_start = np.full(x.shape[0], self._state is None)
        actions, self._state = self.model.predict(
            x,
            state=self._state,
            episode_start=np.asarray(episode_start, dtype=bool),
            deterministic=True,
        )
        return np.asarray(actions, dtype=np.float32)

    __call__ = act

    def _spec(self) -> ActionSpec:
        if self.action_spec is None:
            raise ConfigError(
                "SB3PolicyAllocator has no ActionSpec: pass action_spec=env.params.action_spec"
            )
        return self.action_spec

    def propose(self, obs: np.ndarray, episode_start: np.ndarray | None = None) -> np.ndarray:
        """Proposed weights, float64 (n_envs, n_assets) (``weights`` action mode)."""
        return self._spec().to_weights(self.act(obs, episode_start))

    def budgets(self, obs: np.ndarray, episode_start: np.ndarray | None = None) -> np.ndarray:
        """Strategy budgets, float64 (n_envs, n_strategies + 1) (``budgets`` action mode)."""
        return self._spec().to_budgets(self.act(obs, episode_start))
