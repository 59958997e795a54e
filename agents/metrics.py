"""Risk and allocation scalars for TensorBoard, from the env's per-episode metrics.

``PortfolioVecEnv`` puts an ``episode_metrics`` mapping into the info dict of every env
whose episode ends (Sharpe, CVaR, max drawdown, turnover, costs, gate interventions by
reason, regime mix, mean gross/net, ...). Values are numbers or one level of named numbers
(``{"SYMBOL_CAP": 3, ...}``). :func:`flatten_metrics` turns one such mapping into
``name -> float`` (nested names joined by ``/``) and :func:`aggregate` averages a list of
them, so new metrics of the env appear in TensorBoard without a change here. Every episode
counts: a non-finite value makes its metric's mean non-finite instead of being dropped, and
an episode's Sharpe ratio is :func:`episode_sharpe` (0 for an episode held flat in cash).

Tags: ``risk/<name>`` per rollout (episodes that ended during it), ``eval/<allocator>/<name>``
for the periodic validation runs of the agent and the baselines. Intervention series exist
for the reason codes the env can set; the serving layer's own codes
(:data:`SERVING_ONLY_REASONS`) never fire in an env and get no series.
:class:`HyperparameterCallback` writes the run's hyperparameters to TensorBoard's hparams
plugin at training start, against :data:`HPARAM_METRICS`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import HParam

SCORE_METRIC = "sharpe"
"""Episode metric whose mean over the validation episodes selects the best model."""

EXCLUDED: frozenset[str] = frozenset({"start", "end"})
"""Episode-metric keys that are bookkeeping (bar indices), not scalars worth plotting."""


SERVING_ONLY_REASONS: frozenset[str] = frozenset(
    {"MODEL_FALLBACK", "ALLOCATOR_DISABLED", "STALE_INPUT"}
)
"""Reason codes only the serving layer sets (a failed model call, the disabled allocator, a
stale request): always 0 in an env, so they get no training or validation series."""

HPARAM_METRICS: tuple[str, ...] = (
    "eval/score",
    "eval/agent/sharpe",
    "eval/agent/cvar",
    "eval/agent/max_drawdown",
    "eval/agent/turnover",
    "risk/sharpe",
    "rollout/ep_rew_mean",
)
"""Scalar tags the hparams plugin shows beside each run's hyperparameters."""


def intervention_defaults() -> dict[str, float]:
    """``interventions/<REASON>`` = 0 for every reason code an env can set.

    Episodes list their non-zero codes only; the defaults make a code that never fired count
    as 0 in the means. Serving-only codes (:data:`SERVING_ONLY_REASONS`) are left out.
    """
    from allocgym.envs import REASON_NAMES

    return {
        f"interventions/{name}": 0.0 for name in REASON_NAMES if name not in SERVING_ONLY_REASONS
    }


def _scalar(value: Any) -> float | None:
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.reshape(()))
    return None


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numbers of one metrics mapping, nested keys joined by ``/``.

    Parameters
    ----------
    metrics : mapping of str to number, mapping or array
        One episode's metrics. Nested mappings become ``parent/child``; numeric arrays
        of size > 1 become ``parent/0``, ``parent/1``, ...; anything else is skipped.
    prefix : str
        Prepended to every name.

    Returns
    -------
    dict of str to float
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_metrics(value, prefix=f"{name}/"))
            continue
        x = _scalar(value)
        if x is not None:
            out[name] = x
        elif isinstance(value, np.ndarray | list | tuple):
            arr = np.asarray(value)
            if arr.dtype.kind in "biuf" and arr.ndim == 1:
                out.update({f"{name}/{i}": float(v) for i, v in enumerate(arr)})
    return out


def episode_sharpe(metrics: Mapping[str, Any]) -> float:
    """The Sharpe ratio an episode is scored with: its ``sharpe``, 0 when it was flat.

    A flat episode has every step return exactly 0 (a book held in cash throughout, e.g.
    a small book whose lots all round to zero): no gain and no risk, so no risk-adjusted
    skill, and it scores 0. Skipping it instead would score a policy that idles for whole
    episodes on its invested episodes only. ``allocgym.measures.sharpe_ratio`` gives such
    an episode 0 / 0 = NaN while its ``total_return`` is exactly 0; a NaN step return
    would make ``total_return`` NaN as well, which is what tells a flat episode from a
    broken one.

    Any other non-finite Sharpe ratio gives NaN: a broken episode, one too short for a
    Sharpe ratio, or a constant non-zero return (zero volatility: +-inf in the measures'
    convention). The env pays no cash yield, so a riskless non-zero return is no market
    outcome but a defect to look at, and one infinite term would rank its run above every
    finite score.

    Parameters
    ----------
    metrics : mapping
        One episode's ``episode_metrics`` (or their :func:`flatten_metrics`).

    Returns
    -------
    float
        Finite, or NaN when the episode has no Sharpe ratio to score (missing included).
    """
    sharpe = _scalar(metrics.get(SCORE_METRIC))
    if sharpe is None:
        return math.nan
    if math.isfinite(sharpe):
        return sharpe
    flat = math.isnan(sharpe) and _scalar(metrics.get("total_return")) == 0.0
    return 0.0 if flat else math.nan


def aggregate(
    episodes: Sequence[Mapping[str, Any]], defaults: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Mean of every metric over the episodes that report it; non-finite values count.

    A NaN or infinite value is not dropped: it makes its metric's mean NaN or infinite,
    so an average never describes a subset of the episodes while it claims all of them
    (a validation score that skipped episodes would select checkpoints on the rest). The
    Sharpe ratio (:data:`SCORE_METRIC`) of each episode is :func:`episode_sharpe`: a flat
    episode counts as 0, any other non-finite one makes the mean NaN.

    Parameters
    ----------
    episodes : sequence of mappings
        ``episode_metrics`` of several episodes.
    defaults : mapping of str to float, optional
        Flattened names with the value an episode that lacks them counts as (e.g. 0 for
        reason codes that never fired, see :func:`intervention_defaults`).

    Returns
    -------
    dict of str to float
        Per-metric mean over the episodes that report the metric (a name an episode lacks
        and ``defaults`` does not give is not counted for it). Empty input gives an empty
        dict.
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for episode in episodes:
        flat = {**(defaults or {}), **flatten_metrics(episode)}
        if SCORE_METRIC in flat:
            flat[SCORE_METRIC] = episode_sharpe(flat)
        for key, value in flat.items():
            if key in EXCLUDED:
                continue
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0) + 1
    return {key: sums[key] / counts[key] for key in sums}


def ended_episode_metrics(infos: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The ``episode_metrics`` of the envs whose episode ended in one vector step."""
    return [info["episode_metrics"] for info in infos if info.get("episode_metrics") is not None]


class RiskMetricsCallback(BaseCallback):
    """Logs ``risk/*`` means of the episodes that ended in each rollout.

    Episodes are collected from the step infos; at the end of the rollout their metrics
    are averaged and recorded under ``risk/`` (SB3 writes them with its own scalars at the
    next dump). ``risk/episodes`` counts the episodes behind the means.
    """

    def __init__(self, prefix: str = "risk") -> None:
        super().__init__()
        self.prefix = prefix
        self._episodes: list[Mapping[str, Any]] = []
        self._defaults = intervention_defaults()
        self.latest: dict[str, float] = {}

    def _on_step(self) -> bool:
        infos = self.locals.get("infos")
        if infos:
            self._episodes.extend(ended_episode_metrics(infos))
        return True

    def _on_rollout_end(self) -> None:
        if not self._episodes:
            return
        means = aggregate(self._episodes, self._defaults)
        for key, value in means.items():
            self.logger.record(f"{self.prefix}/{key}", value)
        self.logger.record(f"{self.prefix}/episodes", float(len(self._episodes)))
        self.latest = means
        self._episodes = []


class HyperparameterCallback(BaseCallback):
    """Writes the run's hyperparameters to TensorBoard's hparams plugin at training start.

    Parameters
    ----------
    hparams : mapping of str to bool, int, float or str
        Hyperparameter name -> value (see :func:`allocgym.agents.train.run_hparams`).
    metrics : sequence of str
        Scalar tags the plugin relates to the hyperparameters (default
        :data:`HPARAM_METRICS`).
    """

    def __init__(
        self,
        hparams: Mapping[str, bool | int | float | str],
        metrics: Sequence[str] = HPARAM_METRICS,
    ) -> None:
        super().__init__()
        self.hparams = dict(hparams)
        self.metrics = tuple(metrics)

    def _on_training_start(self) -> None:
        # SB3 wants a value per metric tag; the plugin reads the real ones from the scalars.
        hparam = HParam(self.hparams, {tag: 0.0 for tag in self.metrics})
        self.logger.record("hparams", hparam, exclude=("stdout", "log", "json", "csv"))

    def _on_step(self) -> bool:
        return True
