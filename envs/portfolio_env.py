"""``PortfolioEnv``: the gymnasium shell over the batched core with one portfolio."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from allocgym.config import AllocgymConfig, config_from_dict
from allocgym.data import MarketData, load_market
from allocgym.envs import core
from allocgym.envs.core import EnvParams, SplitArg
from allocgym.errors import ConfigError
from allocgym.regime import REGIME_LABELS


def build_params(
    market: MarketData | None,
    cfg: AllocgymConfig | Mapping[str, Any] | None,
    split: SplitArg = None,
) -> EnvParams:
    """``EnvParams`` from optional market / config (defaults: ``load_market(cfg.data)``)."""
    if cfg is None:
        cfg = AllocgymConfig()
    elif not isinstance(cfg, AllocgymConfig):
        cfg = config_from_dict(cfg)
    if market is None:
        market = load_market(cfg.data)
    return EnvParams.from_config(market, cfg, split)


class PortfolioEnv(gym.Env[np.ndarray, np.ndarray]):
    """Allocate one portfolio across ``n_assets`` symbols through the production risk gates.

    Each step the agent's action becomes proposed weights, the deterministic
    ``RiskGateChain`` approves (or clips) them, the ``ExecutionPolicy`` turns the approved
    book into lot-rounded orders, and the orders fill at the next bar's close with the
    ``allocgym.costs`` cost model. All arithmetic lives in ``allocgym.envs.core`` (this
    class is the stateful shell with ``n_envs = 1``); ``PortfolioVecEnv`` steps many
    portfolios in one call with identical results.

    Parameters
    ----------
    market : MarketData, optional
        Market to trade; default ``allocgym.data.load_market(cfg.data)``.
    cfg : AllocgymConfig or mapping, optional
        Configuration (``env``, ``risk``, ``costs``, ``execution``, ``features``,
        ``regime`` sections are used); default ``AllocgymConfig()``.
    split : {"train", "validation", "test", "all"}, Split or (start, stop), optional
        Bars the episodes are drawn from; default ``cfg.env.split``.
    render_mode : {"ansi"}, optional
    params : EnvParams, optional
        Prebuilt parameters (share the precomputation between many envs); when given,
        ``market``, ``cfg`` and ``split`` must be None.

    Action Space
    ------------
    ``Box(-1, 1, (action_dim,), float32)`` mapped by ``allocgym.actions.ActionSpec``:

    - ``env.action_mode = weights`` with ``risk.long_only``: ``n_assets + 1`` logits (the
      last is cash), ``softmax(a * logit_scale)``, cash dropped;
    - ``weights`` long/short: ``n_assets`` values, ``a * max_symbol_weight`` scaled down to
      ``sum |w| <= max_gross``;
    - ``budgets``: ``n_strategies + 1`` logits (trend, mean_reversion, defensive, cash),
      softmax budgets netted by ``IntentAggregator`` into symbol weights;
    - ``tilt``: ``n_assets + 1`` values tilting the ``env.tilt_prior`` allocator's book
      (``w_i ∝ prior_i exp(tilt_scale a_i)``) and its gross (last value); a zero action
      is the prior's book.

    With ``env.decision_interval = k > 1`` one step is one decision: the action sets the
    target at the decision bar and the env holds the book for the next ``k - 1`` bars
    (keeping a target that a trade limit cut short), so the observation is that of the
    next decision bar and the reward sums the bars in between.

    Observation Space
    -----------------
    ``Box(low, high, (obs_dim,), float32)`` with the finite bounds of
    ``FeatureBuilder.observation_bounds``: ``n_assets`` blocks of per-asset features
    (trailing risk-scaled returns, EWMA volatility, momentum, z-score, strategy intents and
    confidences, beta, ADV, spread, tradable flag, current weight) then global features
    (regime one-hot and confidence, gross, net, drawdown, cash). Names and order:
    ``env.unwrapped.layout()["observation"]``. Only data up to the decision bar is used.

    Rewards
    -------
    ``log(V_{t+1} / V_t)`` (equity after costs) minus ``cvar_weight * CVaR`` (default:
    ex-ante historical CVaR at ``cvar_alpha`` of the approved book over the last
    ``cvar_window`` days of asset returns; ``cvar_mode = realized``: CVaR of the
    portfolio's own last ``cvar_window`` returns), minus ``intervention_weight * L1``
    (proposed -> approved), ``turnover_weight * turnover`` and
    ``drawdown_weight * drawdown``. Every term is in ``info``. With
    ``env.decision_interval = k > 1`` a step spans the k bars to the next decision:
    ``reward`` and ``info["reward"]`` are summed over them (``info["bars"]`` counts
    them), every other term is the decision bar's.

    Episode End
    -----------
    Episodes start at a seeded random bar of the split. *Truncated* after
    ``env.episode_length`` bars (steps when ``decision_interval`` is 1) or when the
    split's last bar is reached. *Terminated*
    when equity falls to 0 or below, or on the step after the drawdown reached
    ``env.drawdown_kill``: that decision runs with the kill switch engaged (the gates
    flatten the book, every symbol coded KILL_SWITCH).

    Info
    ----
    Per step: the ``core.INFO_KEYS`` values of this portfolio (approved weights, reason
    counts by code, costs, turnover, regime label, reward terms, strategy contributions
    in budgets mode); at episode end also ``episode_metrics``.

    Version History
    ---------------
    * v0: initial version; ``tilt`` action mode and ``env.decision_interval`` added
      (the defaults, ``weights`` and 1, keep the original dynamics).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        market: MarketData | None = None,
        cfg: AllocgymConfig | Mapping[str, Any] | None = None,
        *,
        split: SplitArg = None,
        render_mode: str | None = None,
        params: EnvParams | None = None,
    ) -> None:
        if params is None:
            params = build_params(market, cfg, split)
        elif market is not None or cfg is not None or split is not None:
            raise ValueError("PortfolioEnv: pass either params or market/cfg/split, not both")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode = {render_mode!r}: use one of {self.metadata['render_modes']}"
            )
        self.params = params
        self.render_mode = render_mode
        spec = params.action_spec
        self.action_space = spaces.Box(spec.low, spec.high, spec.shape, np.float32)
        self.observation_space = spaces.Box(
            params.obs_low, params.obs_high, (params.obs_dim,), np.float32
        )
        self._key: int | None = None
        self._episode = 0
        self._state: core.EnvState | None = None
        self._done = True
        self._last: dict[str, Any] = {}
        self._audit = open_audit_log(params)
        self._n_steps = 0

    @classmethod
    def from_params(cls, params: EnvParams, render_mode: str | None = None) -> PortfolioEnv:
        """An env over prebuilt ``EnvParams`` (no recomputation)."""
        return cls(params=params, render_mode=render_mode)

    def layout(self) -> dict[str, Any]:
        """Observation / action layout as plain data (``core.check_layout``)."""
        return core.check_layout(self.params)

    @property
    def state(self) -> core.EnvState | None:
        """The core state (``n_envs = 1``) or None before the first reset."""
        return self._state

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode.

        ``seed`` is the portfolio's episode key (used as is) and restarts its episode
        counter; later ``reset()`` calls draw the following episodes of the same key.
        ``PortfolioVecEnv(seed=s)`` hashes ``(s, i)`` into portfolio ``i``'s key
        (``allocgym.envs.vec_env.portfolio_keys``): reset with that key, this env replays
        the vectorised portfolio exactly. ``options`` may hold ``{"start": bar}`` for an
        explicit first decision bar.
        """
        unknown = sorted(set(options or {}) - {"start"})
        if unknown:
            raise ConfigError(f"reset options {unknown} are unknown: the env takes 'start' only")
        start = None if options is None else options.get("start")
        if start is not None and (
            not isinstance(start, int | np.integer) or isinstance(start, bool)
        ):
            raise ConfigError(
                f"reset option start = {start!r} is not a whole bar index: pass an int"
            )
        if seed is not None and (
            not isinstance(seed, int | np.integer)
            or isinstance(seed, bool)
            or not 0 <= seed < 2**63
        ):
            raise ConfigError(f"reset seed = {seed!r}: pass an int in 0..2**63-1")
        super().reset(seed=seed)
        if seed is not None:
            self._key, self._episode = int(seed), 0
        elif self._key is None:
            self._key, self._episode = int(self.np_random.integers(0, 2**63 - 1)), 0
        else:
            self._episode += 1
        self._state, obs = core.reset(
            self.params,
            core.seed_keys([self._key]),
            np.array([self._episode], dtype=np.uint64),
            None if start is None else np.array([start], dtype=np.int64),
        )
        self._done = False
        self._last = {}
        t = int(self._state.t[0])
        return obs[0], {"t": t, "date": self.params.market.dates[t], "episode": self._episode}

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """One decision: gates, execution, fill at the next bar, reward."""
        if self._state is None or self._done:
            raise ResetNeeded("PortfolioEnv.step called before reset() or after the episode ended")
        res = core.step(self.params, self._state, _one(action, self.action_space.shape))
        return self._finish(core.finish_interval(self.params, res))

    def step_proposed(
        self, proposed: np.ndarray
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Like ``step`` but with proposed weights (n_assets,), bypassing the action map."""
        if self._state is None or self._done:
            raise ResetNeeded("PortfolioEnv.step_proposed called before reset() or after the end")
        res = core.step_proposed(
            self.params, self._state, _one(proposed, (self.params.market.n_assets,))
        )
        return self._finish(res)

    def _finish(
        self, res: core.StepResult
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        terminated, truncated = res.terminated.item(0), res.truncated.item(0)
        if self._audit is not None:
            self._audit.append(core.audit_record(self.params, res, self._n_steps))
        self._n_steps += 1
        # row 0 of each batched info array: a Python scalar or a fresh (...) array
        info: dict[str, Any] = {
            k: v.item(0) if v.ndim == 1 else v[0].copy() for k, v in res.info.items()
        }
        if terminated or truncated:
            info["episode_metrics"] = core.episode_metrics(self.params, res.state, np.array([0]))[0]
        self._state = res.state
        self._done = terminated or truncated
        self._last = info
        return res.obs[0], res.reward.item(0), terminated, truncated, info

    def render(self) -> str | None:  # type: ignore[override]
        """Text line: bar, date, equity, drawdown, regime and the largest positions."""
        if self.render_mode != "ansi" or self._state is None:
            return None
        st = self._state
        t = int(st.t[0])
        w = core.current_weights(self.params, st)[0]
        top = np.argsort(-np.abs(w))[:5]
        pos = ", ".join(f"{self.params.market.symbols[i]} {w[i]:+.3f}" for i in top if w[i])
        regime = REGIME_LABELS[int(self.params.features.regime[t])]
        date = np.datetime_as_string(self.params.market.dates[t], unit="D")
        return (
            f"bar {t} {date} equity {st.equity[0]:.2f} peak {st.peak[0]:.2f} "
            f"regime {regime} | {pos or 'all cash'}\n"
        )


def open_audit_log(params: EnvParams) -> Any:
    """The ``AuditLog`` of ``cfg.env.audit_path``, or None."""
    path = params.cfg.env.audit_path
    if path is None:
        return None
    from allocgym.observability import AuditLog

    return AuditLog(path)


def _one(action: Any, shape: tuple[int, ...]) -> np.ndarray:
    """One env's action (or proposal) as a batch of one; a scalar or a batch is refused
    with the shape the env expects (``[None, :]`` of a scalar was an IndexError)."""
    a = np.asarray(action)
    if a.shape != shape:
        raise ValueError(f"action has shape {a.shape}, expected {shape}: one env's vector")
    return a[None, :]
