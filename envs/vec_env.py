"""``PortfolioVecEnv``: a stable-baselines3 ``VecEnv`` stepping ``n_envs`` portfolios in one call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from allocgym.config import AllocgymConfig
from allocgym.data import MarketData
from allocgym.envs import core
from allocgym.envs.core import EnvParams, SplitArg
from allocgym.envs.portfolio_env import build_params, open_audit_log
from allocgym.errors import ConfigError


def portfolio_keys(seed: int, n_envs: int) -> np.ndarray:
    """Per-portfolio episode keys of a batch seeded with ``seed``, shape (n_envs,) uint64.

    Key ``i`` hashes ``(seed, i)``: the first ``n_envs`` 64-bit words of
    ``numpy.random.SeedSequence(seed)``, shifted right by one bit so that every key is
    also a valid ``PortfolioEnv`` seed (< 2**63). Different seeds give unrelated keys, so
    two training seeds share no episode stream (with ``seed + i`` keys, seed 1's portfolio
    ``i`` would replay seed 0's portfolio ``i + 1``). A prefix of the keys does not depend
    on ``n_envs``.

    Raises
    ------
    ConfigError
        A negative seed or ``n_envs < 0``.
    """
    s, n = int(seed), int(n_envs)
    if s < 0 or n < 0:
        raise ConfigError(f"portfolio_keys(seed={s}, n_envs={n}): the seed and n_envs must be >= 0")
    return np.random.SeedSequence(s).generate_state(n, np.uint64) >> np.uint64(1)


_BATCH_ONLY = frozenset(
    {
        "last_decision",
        "reset",
        "step",
        "step_async",
        "step_wait",
        "step_proposed",
        "step_proposed_async",
        "seed",
        "seeds",
        "close",
        "get_attr",
        "set_attr",
        "env_method",
        "portfolio",
    }
)
"""Names that hold or act on every portfolio at once: a single portfolio has none of them."""


class PortfolioView:
    """Portfolio ``index`` of a :class:`PortfolioVecEnv`: the sub-env that ``get_attr``,
    ``env_method`` and ``set_attr`` address (SB3's contract: one value per index).

    ``state``, ``key``, ``episode``, ``last_info`` and ``current_weights()`` are this
    portfolio's own. Any other name resolves on the shared env: ``params``, the spaces,
    ``render_mode`` and ``layout()`` are the same for every portfolio. Names in
    ``_BATCH_ONLY`` (``reset``, ``step``, ``seed``, ``last_decision``, ...) act on or hold
    the whole batch and raise ``AttributeError`` here: call them on the vector env.
    """

    __slots__ = ("_vec", "index")

    def __init__(self, vec: PortfolioVecEnv, index: int) -> None:
        self._vec = vec
        self.index = int(index)

    @property
    def state(self) -> core.EnvState | None:
        """This portfolio's core state (``n_envs = 1``, as ``PortfolioEnv.state``); None
        before the first ``reset()``."""
        batch = self._vec.state
        return None if batch is None else batch.take(np.array([self.index]))

    @property
    def key(self) -> int:
        """Episode key of this portfolio (``PortfolioVecEnv.seeds()[index]``)."""
        return int(self._vec._keys[self.index])

    @property
    def episode(self) -> int:
        """Episode counter of this portfolio under its key."""
        return int(self._vec._episodes[self.index])

    @property
    def last_info(self) -> dict[str, Any]:
        """This portfolio's row of ``PortfolioVecEnv.last_info`` (empty before a step)."""
        return {name: batch[self.index] for name, batch in self._vec.last_info.items()}

    def current_weights(self) -> np.ndarray:
        """Signed weights of this portfolio's book at its bar ``t``, shape (n_assets,).

        Raises
        ------
        ConfigError
            Called before ``reset()``.
        """
        state = self.state
        if state is None:
            raise ConfigError("PortfolioView.current_weights before reset(): call reset() first")
        return core.current_weights(self._vec.params, state)[0]

    def __getattr__(self, name: str) -> Any:
        if name in _BATCH_ONLY:
            raise AttributeError(
                f"a single portfolio has no {name!r}: it holds or acts on all portfolios at "
                f"once, use PortfolioVecEnv.{name} directly"
            )
        return getattr(self._vec, name)


class PortfolioVecEnv(VecEnv):
    """``n_envs`` portfolios stepped together by the batched core (SB3 ``VecEnv`` API).

    Same dynamics, spaces, rewards and episode ends as ``PortfolioEnv`` (see its
    docstring); portfolio ``i`` is exactly ``PortfolioEnv`` reset with seed
    ``portfolio_keys(seed, n_envs)[i]`` (bit-identical observations, rewards and episode
    boundaries). Finished portfolios are
    reset automatically (SB3 convention): the returned observation is the new episode's
    first one and ``infos[i]["terminal_observation"]`` holds the last one.

    Parameters
    ----------
    market : MarketData, optional
        Default ``allocgym.data.load_market(cfg.data)``.
    cfg : AllocgymConfig or mapping, optional
        Default ``AllocgymConfig()``.
    n_envs : int, optional
        Number of portfolios; default ``cfg.train.n_envs``.
    split : {"train", "validation", "test", "all"}, Split or (start, stop), optional
        Default ``cfg.env.split``.
    seed : int, optional
        Portfolio ``i`` gets the key ``portfolio_keys(seed, n_envs)[i]`` (a hash of
        ``(seed, i)``); None draws fresh entropy. ``seed(s)`` re-seeds the same way at the
        next ``reset()`` (SB3 semantics; SB3's own ``seed + i`` is not used).
    params : EnvParams, optional
        Prebuilt parameters (then ``market``, ``cfg`` and ``split`` must be None).

    Attributes
    ----------
    last_info : dict of str to ndarray
        Batched info of the last step (``core.INFO_KEYS``, arrays (n_envs, ...)), plus
        ``terminated`` and ``truncated`` (n_envs,) bool.
    last_decision : core.Decision or None
        Gate context, gate result and execution result of the last step.

    Notes
    -----
    Per-env ``infos`` dicts are empty except for portfolios whose episode ended in this
    step: they get ``terminal_observation``, ``TimeLimit.truncated`` and
    ``episode_metrics``. A fresh list and fresh dicts for finished portfolios are
    returned each step; the per-step Python work is proportional to the number of
    finished portfolios, not to ``n_envs``.
    """

    def __init__(
        self,
        market: MarketData | None = None,
        cfg: AllocgymConfig | Mapping[str, Any] | None = None,
        n_envs: int | None = None,
        *,
        split: SplitArg = None,
        seed: int | None = None,
        params: EnvParams | None = None,
    ) -> None:
        if params is None:
            params = build_params(market, cfg, split)
        elif market is not None or cfg is not None or split is not None:
            raise ConfigError("PortfolioVecEnv: pass either params or market/cfg/split, not both")
        n = params.cfg.train.n_envs if n_envs is None else n_envs
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"PortfolioVecEnv n_envs = {n!r}: need a whole number >= 1")
        n = int(n)
        self.params = params
        self.render_mode = None
        spec = params.action_spec
        single_action = spaces.Box(spec.low, spec.high, spec.shape, np.float32)
        single_obs = spaces.Box(params.obs_low, params.obs_high, (params.obs_dim,), np.float32)
        super().__init__(n, single_obs, single_action)
        if seed is None:
            self._keys = np.random.SeedSequence().generate_state(n, np.uint64) >> np.uint64(1)
        else:
            self._keys = portfolio_keys(seed, n)
        self._episodes = np.zeros(n, dtype=np.uint64)
        self._fresh = True  # next reset() starts episode 0 of the keys
        self._state: core.EnvState | None = None
        self._actions: np.ndarray | None = None
        self._proposed = False
        self._empty: list[dict[str, Any]] = [{} for _ in range(n)]
        self._infos: list[dict[str, Any]] = list(self._empty)
        self._filled: np.ndarray = np.empty(0, dtype=np.int64)
        self.last_info: dict[str, np.ndarray] = {}
        self.last_decision: core.Decision | None = None
        self.closed = False
        self._audit = open_audit_log(params)
        self._n_steps = 0

    # ------------------------------------------------------------------ SB3 API
    def reset(self) -> np.ndarray:
        """Reset every portfolio (seeds from ``seed()`` apply once, SB3 semantics)."""
        seeds = self._seeds
        explicit = np.array([s is not None for s in seeds])
        keys = self._keys.copy()
        episodes = self._episodes.copy() if self._fresh else self._episodes + np.uint64(1)
        if explicit.any():
            vals = np.array([s if s is not None else 0 for s in seeds], dtype=np.int64)
            keys = np.where(explicit, core.seed_keys(np.maximum(vals, 0)), keys)
            episodes = np.where(explicit, np.uint64(0), episodes)
        state, obs = core.reset(self.params, keys, episodes)
        self._state = state
        self._keys, self._episodes, self._fresh = state.key, state.episode, False
        self._reset_seeds()
        self._reset_options()
        self._infos = list(self._empty)
        self._filled = np.empty(0, dtype=np.int64)
        t = state.t
        self.reset_infos = [{"t": int(t[i])} for i in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = self._batch(actions, "actions")
        self._proposed = False

    def step_proposed_async(self, proposed: np.ndarray) -> None:
        """Queue proposed weights (n_envs, n_assets) instead of actions (baselines)."""
        self._actions = self._batch(proposed, "proposed weights")
        self._proposed = True

    def _batch(self, rows: Any, what: str) -> np.ndarray:
        """``rows`` with one row per portfolio (else the gates would blame the book's
        shape for a batch of the wrong size)."""
        a = np.asarray(rows)
        if a.ndim < 1 or a.shape[0] != self.num_envs:
            raise ValueError(
                f"{what} have shape {a.shape}: PortfolioVecEnv steps {self.num_envs} "
                f"portfolios, pass one row each ({self.num_envs}, ...)"
            )
        return a

    def step_proposed(self, proposed: np.ndarray) -> VecEnvStepReturn:
        """Step with proposed weights, bypassing the action map."""
        self.step_proposed_async(proposed)
        return self.step_wait()

    def step_wait(self) -> VecEnvStepReturn:
        if self._state is None:
            raise ConfigError("PortfolioVecEnv.step called before reset(): call reset() first")
        if self._actions is None:
            raise ConfigError("PortfolioVecEnv.step_wait called without step_async(actions)")
        if self._proposed:
            res = core.step_proposed(self.params, self._state, self._actions)
        else:  # one transition per agent decision (env.decision_interval bars)
            res = core.finish_interval(
                self.params, core.step(self.params, self._state, self._actions)
            )
        self._actions = None
        if self._audit is not None:  # one record per batched step
            self._audit.append(core.audit_record(self.params, res, self._n_steps))
        self._n_steps += 1
        done = res.terminated | res.truncated
        info = res.info  # the step's own dict: no one else holds it
        info["terminated"], info["truncated"] = res.terminated, res.truncated
        self.last_info = info
        self.last_decision = res.decision
        obs = res.obs
        infos = self._infos
        if self._filled.size:  # the dicts of last step's finished portfolios go back to empty
            for i in self._filled:
                infos[i] = self._empty[i]
        state = res.state
        idx = done.nonzero()[0]
        if idx.size:
            metrics = core.episode_metrics(self.params, state, idx)
            terminal = obs[idx].copy()
            timeout = res.truncated[idx] & ~res.terminated[idx]
            state, reset_obs = core.autoreset(self.params, state, done)
            obs[idx] = reset_obs
            for j, i in enumerate(idx):
                infos[i] = {
                    "terminal_observation": terminal[j],
                    "TimeLimit.truncated": bool(timeout[j]),
                    "episode_metrics": metrics[j],
                }
        self._filled = idx
        self._state = state
        self._keys, self._episodes = state.key, state.episode
        return obs, res.reward.astype(np.float32), done, list(infos)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Keys ``portfolio_keys(seed, n_envs)`` for the next ``reset()``; returns them.

        Overrides SB3's ``seed + i`` so that seeded runs (``PPO(seed=s)`` calls this) draw
        independent episode streams per seed. None draws a seed from numpy's global RNG,
        as SB3 does.
        """
        if seed is None:
            seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))  # noqa: NPY002 (SB3 convention)
        self._seeds = [int(k) for k in portfolio_keys(seed, self.num_envs)]
        return self._seeds

    def close(self) -> None:
        self.closed = True

    def portfolio(self, index: int) -> PortfolioView:
        """Portfolio ``index`` as a sub-env (see :class:`PortfolioView`)."""
        i = int(index)
        if not 0 <= i < self.num_envs:
            raise ConfigError(
                f"portfolio index {i} is out of range: this env has {self.num_envs} portfolios "
                f"(0 .. {self.num_envs - 1})"
            )
        return PortfolioView(self, i)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of each requested portfolio, a list of ``len(indices)`` values.

        Per-portfolio state (``state``, ``key``, ``episode``, ``last_info``) gives each
        portfolio's own value; shared attributes (``params``, ``render_mode``, ...) give
        the same object for every index.
        """
        return [getattr(self.portfolio(i), attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set a shared attribute; all portfolios see it, so ``indices`` must cover them all.

        Raises
        ------
        ConfigError
            ``attr_name`` is per-portfolio state (read-only: ``reset()`` and ``seed()``
            change it) or belongs to the whole batch, or ``indices`` name only some
            portfolios.
        """
        if hasattr(PortfolioView, attr_name) or attr_name in _BATCH_ONLY:
            raise ConfigError(
                f"PortfolioVecEnv.set_attr({attr_name!r}): per-portfolio and batch state is "
                "read-only; reset() and seed() change it"
            )
        rows = sorted(set(self._get_indices(indices)))
        if rows != list(range(self.num_envs)):
            raise ConfigError(
                f"PortfolioVecEnv.set_attr({attr_name!r}, indices={indices!r}): the attribute "
                "is shared by all portfolios, so it cannot differ between them; pass "
                "indices=None"
            )
        setattr(self, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call the method on each requested portfolio; a list of ``len(indices)`` results.

        Per-portfolio methods (``current_weights``) answer for their portfolio; shared
        ones (``layout``) are called once per index, as SB3 calls each sub-env.
        """
        return [
            getattr(self.portfolio(i), method_name)(*method_args, **method_kwargs)
            for i in self._get_indices(indices)
        ]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Portfolios are not gymnasium envs, so never wrapped."""
        return [False for _ in self._get_indices(indices)]

    # ------------------------------------------------------------------ extras
    @property
    def state(self) -> core.EnvState | None:
        """The core state of all portfolios (None before reset)."""
        return self._state

    def layout(self) -> dict[str, Any]:
        """Observation / action layout as plain data (``core.check_layout``)."""
        return core.check_layout(self.params)

    def seeds(self) -> Sequence[int]:
        """Current per-portfolio keys."""
        return [int(k) for k in self._keys]
