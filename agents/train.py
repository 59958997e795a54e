"""Training entry point: SB3 agents on ``PortfolioVecEnv`` with checkpoints and resume.

``train(cfg, run_dir)`` builds the train-split env (``VecMonitor`` for SB3's episode
scalars, optional ``VecNormalize``), the algorithm chosen by ``cfg.train.algo`` with the
MLP or asset-set policy, and runs it with five callbacks: the hyperparameters for
TensorBoard's hparams plugin (:class:`~allocgym.agents.metrics.HyperparameterCallback`,
from :func:`run_hparams`), risk scalars per rollout
(:class:`~allocgym.agents.metrics.RiskMetricsCallback`), periodic validation of the agent
and the baselines with best-model selection (:class:`ValidationCallback`), resumable
checkpoints (:class:`ResumableCheckpointCallback`) and an optional rich progress bar.

Run directory::

    config.yaml, config_hash.txt, versions.json   resolved config, hash, package versions
    data.json                                     the data trained on: fingerprint, symbols,
                                                  dates of the splits trained and selected
                                                  on (a resume, export or evaluation on
                                                  other data is refused)
    tb/<ALGO>_1/events.out.tfevents.*             TensorBoard (SB3 + risk/ + eval/ scalars,
                                                  hparams)
    checkpoints/step_<N>/                         model.zip (incl. optimizer), state.pkl
                                                  (step, RNG states, env state, callback
                                                  state), vecnormalize.pkl, replay_buffer.pkl,
                                                  best/ (best/ at that step)
    best/model.zip, best/vecnormalize.pkl, best/eval.json   best validation score
    final/model.zip, final/vecnormalize.pkl       model at the end of training
    evaluations.jsonl                             every validation run, agent and baselines
    train_summary.json                            steps, wall time, fps, device, best score

Checkpoints are taken at rollout boundaries (after the policy update), written to a
temporary folder and renamed, so a killed process leaves either a whole checkpoint or
none. ``train(cfg, run_dir, resume=True)`` restores the latest one exactly (model and
optimizer, VecNormalize, env state, step counter, Python/numpy/torch RNG states) and
continues to ``cfg.train.total_timesteps``: a resumed run ends with the parameters of an
uninterrupted one. It also restores ``best/``, which the killed attempt may have replaced
after the checkpoint, so ``best/`` always holds the model of the restored best step.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from sb3_contrib import RecurrentPPO
from stable_baselines3 import A2C, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from allocgym.actions import ActionSpec
from allocgym.agents.allocator import SB3PolicyAllocator
from allocgym.agents.metrics import (
    SCORE_METRIC,
    HyperparameterCallback,
    RiskMetricsCallback,
    aggregate,
    episode_sharpe,
    intervention_defaults,
)
from allocgym.agents.policies import (
    ACTIVATIONS,
    ActionLayout,
    AssetSetActorCriticPolicy,
    AssetSetExtractor,
    ObsLayout,
    action_layout_for,
)
from allocgym.agents.validation import run_episodes
from allocgym.allocator import Allocator
from allocgym.config import (
    AllocgymConfig,
    config_from_dict,
    config_hash,
    load_yaml,
    write_run_metadata,
)
from allocgym.data import MarketData, load_market
from allocgym.envs import PortfolioVecEnv, build_params
from allocgym.envs.core import EnvParams
from allocgym.errors import ConfigError
from allocgym.ledger import EVALUATIONS_KEY, check_same_data, new_run_id, write_run_data

ALGOS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "sac": SAC,
    "recurrent_ppo": RecurrentPPO,
}
"""Algorithm class per ``cfg.train.algo``."""

TB_NAMES: dict[str, str] = {
    "ppo": "PPO",
    "a2c": "A2C",
    "sac": "SAC",
    "recurrent_ppo": "RecurrentPPO",
}
"""TensorBoard run-folder prefix per algorithm."""

REUSE_FREE_KEYS: tuple[str, ...] = ("train.device", "train.torch_threads", "evaluation")
"""Config keys (or sections) that may differ between a finished run and the config it is
reused for (a study that finds the run already trained): where it ran and how it is
evaluated, not what it learned (``evaluation.periods_per_year`` turning ``auto`` had
refused every run trained before)."""
RESUME_FREE_KEYS: tuple[str, ...] = ("train.total_timesteps", *REUSE_FREE_KEYS)
"""Config keys that may differ between a run and its resumption (extend, move device)."""

_CKPT_PREFIX = "step_"
_MODEL = "model.zip"
_VECNORM = "vecnormalize.pkl"
_REPLAY = "replay_buffer.pkl"
_BEST = "best"
_STATE = "state.pkl"


# ------------------------------------------------------------------------------ small parts


class StopTraining(Exception):
    """Raised by a callback to end a run on an outside decision (a sweep's early stopping).

    :func:`train` lets it through without a ledger line: whoever stopped the run records it
    as a ``stopped`` trial (the sweep does, from its scheduler's decision), so a run that is
    torn down while it unwinds is still recorded exactly once.
    """


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns (also written to ``train_summary.json``).

    Attributes
    ----------
    run_dir : Path
    algo : str
    num_timesteps : int
        Steps trained in total (across resumptions).
    total_timesteps : int
        The configured target.
    wall_time_s : float
        Seconds of training in this process.
    fps : float
        Steps per second of this process (steps it trained / wall_time_s).
    total_wall_time_s : float
        Seconds of training summed over the run's processes.
    device : str
        Torch device used.
    best_score : float or None
        Best mean validation Sharpe (None when no validation ran or none was finite).
    best_step : int or None
        Step of the best model.
    resumed_from : int or None
        Step of the checkpoint this process resumed from.
    config_hash : str
    """

    run_dir: Path
    algo: str
    num_timesteps: int
    total_timesteps: int
    wall_time_s: float
    fps: float
    total_wall_time_s: float
    device: str
    best_score: float | None
    best_step: int | None
    resumed_from: int | None
    config_hash: str

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["run_dir"] = str(self.run_dir)
        return out


def resolve_device(requested: str) -> str:
    """Torch device for ``train.device``.

    ``auto`` gives ``cuda`` when ``torch.cuda.is_available()`` and ``cpu`` otherwise;
    ``cuda`` without a usable GPU raises ``ConfigError`` (never a silent CPU fallback).
    """
    if requested == "auto":
        return "cuda" if th.cuda.is_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda":
        if not th.cuda.is_available():
            raise ConfigError(
                f"train.device = 'cuda' but torch {th.__version__} sees no usable GPU "
                "(torch.cuda.is_available() is False): use --device cpu or --device auto, "
                "or install a CUDA build of torch on a machine with a GPU"
            )
        return "cuda"
    raise ConfigError(f"train.device = {requested!r}: use auto, cpu or cuda")


def obs_layout(params: EnvParams) -> ObsLayout:
    """The observation layout of an env, read from its ``FeatureBuilder``."""
    fb = params.feature_builder
    layout = ObsLayout(params.n_assets, fb.n_asset_features, fb.n_global_features)
    layout.check(params.obs_dim)
    return layout


def action_layout(spec: ActionSpec) -> ActionLayout:
    """Head structure of the equivariant actor for an ``ActionSpec``."""
    return action_layout_for(spec.mode, spec.long_only)


def policy_spec(cfg: AllocgymConfig, params: EnvParams) -> tuple[Any, dict[str, Any]]:
    """SB3 policy (class or name) and ``policy_kwargs`` for ``cfg.train``.

    ``policy: mlp`` is SB3's MLP policy; ``policy: asset_set`` adds the
    :class:`AssetSetExtractor` (layout from the env), and for PPO/A2C with
    ``asset_set.equivariant_actor`` uses :class:`AssetSetActorCriticPolicy`.
    """
    t = cfg.train
    act = ACTIVATIONS[t.activation]
    arch = list(t.net_arch)
    kwargs: dict[str, Any] = {"activation_fn": act}
    on_policy = t.algo != "sac"
    if on_policy:
        kwargs.update(ortho_init=t.ortho_init, log_std_init=t.log_std_init)
    if t.policy == "asset_set":
        lay = obs_layout(params)
        a = t.asset_set
        kwargs["features_extractor_class"] = AssetSetExtractor
        kwargs["features_extractor_kwargs"] = {
            "n_assets": lay.n_assets,
            "n_asset_features": lay.n_asset_features,
            "n_global_features": lay.n_global_features,
            "encoder": list(a.encoder),
            "global_encoder": list(a.global_encoder),
            "pooling": a.pooling,
            "context_mixing": a.context_mixing,
            "activation": t.activation,
        }
        if t.algo in ("ppo", "a2c") and a.equivariant_actor:
            del kwargs["features_extractor_class"]
            kwargs.update(head=list(a.head), action_layout=action_layout(params.action_spec))
            return AssetSetActorCriticPolicy, kwargs
    if t.algo == "sac":
        kwargs["net_arch"] = {"pi": arch, "qf": arch}
        return "MlpPolicy", kwargs
    kwargs["net_arch"] = {"pi": arch, "vf": arch}
    if t.algo == "recurrent_ppo":
        r = t.recurrent
        kwargs.update(
            lstm_hidden_size=r.lstm_hidden_size,
            n_lstm_layers=r.n_lstm_layers,
            shared_lstm=r.shared_lstm,
            enable_critic_lstm=r.enable_critic_lstm and not r.shared_lstm,
        )
        return "MlpLstmPolicy", kwargs
    return "MlpPolicy", kwargs


def algo_kwargs(cfg: AllocgymConfig) -> dict[str, Any]:
    """Hyperparameters of ``cfg.train`` as keyword arguments of the SB3 algorithm."""
    t = cfg.train
    common: dict[str, Any] = {"learning_rate": t.learning_rate, "gamma": t.gamma, "seed": t.seed}
    if t.algo == "sac":
        s = t.sac
        return common | {
            "buffer_size": s.buffer_size,
            "learning_starts": s.learning_starts,
            "batch_size": t.batch_size,
            "tau": s.tau,
            "train_freq": s.train_freq,
            "gradient_steps": s.gradient_steps,
            "ent_coef": s.ent_coef,
        }
    on_policy = common | {
        "n_steps": t.n_steps,
        "gae_lambda": t.gae_lambda,
        "ent_coef": t.ent_coef,
        "vf_coef": t.vf_coef,
        "max_grad_norm": t.max_grad_norm,
    }
    if t.algo == "a2c":
        return on_policy
    rollout = t.n_steps * t.n_envs
    if t.batch_size > rollout:
        raise ConfigError(
            f"train.batch_size = {t.batch_size} exceeds the rollout n_steps x n_envs = "
            f"{t.n_steps} x {t.n_envs} = {rollout}: lower batch_size or raise n_steps"
        )
    if rollout % t.batch_size:
        warnings.warn(
            f"rollout of {rollout} transitions is not a multiple of train.batch_size "
            f"{t.batch_size}: the last minibatch of each epoch has {rollout % t.batch_size}",
            UserWarning,
            stacklevel=3,
        )
    return on_policy | {
        "batch_size": t.batch_size,
        "n_epochs": t.n_epochs,
        "clip_range": t.clip_range,
        "target_kl": t.target_kl,
    }


def build_model(
    cfg: AllocgymConfig,
    env: VecEnv,
    params: EnvParams,
    *,
    device: str = "cpu",
    tensorboard_log: str | Path | None = None,
) -> BaseAlgorithm:
    """A fresh SB3 model for ``cfg.train`` on ``env`` (built from ``params``)."""
    policy, policy_kwargs = policy_spec(cfg, params)
    cls = ALGOS[cfg.train.algo]
    model = cls(
        policy,
        env,
        policy_kwargs=policy_kwargs,
        tensorboard_log=None if tensorboard_log is None else str(tensorboard_log),
        device=device,
        verbose=0,
        **algo_kwargs(cfg),
    )
    if tensorboard_log is None:
        # Without it SB3's learn() makes an empty /tmp/SB3-<time> folder on every call.
        model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def make_train_env(
    cfg: AllocgymConfig, params: EnvParams, vecnormalize_path: Path | None = None
) -> tuple[PortfolioVecEnv, VecMonitor, VecEnv, VecNormalize | None]:
    """Train env stack: raw ``PortfolioVecEnv`` -> ``VecMonitor`` -> optional ``VecNormalize``.

    Returns the raw env, the monitor, the outermost env and the VecNormalize (or None).
    ``vecnormalize_path`` loads saved statistics (resume).
    """
    t = cfg.train
    raw = PortfolioVecEnv(params=params, n_envs=t.n_envs, seed=t.seed)
    monitor = VecMonitor(raw)
    if not (t.normalize_obs or t.normalize_reward):
        return raw, monitor, monitor, None
    if vecnormalize_path is not None:
        vn = VecNormalize.load(str(vecnormalize_path), monitor)
    else:
        vn = VecNormalize(
            monitor,
            norm_obs=t.normalize_obs,
            norm_reward=t.normalize_reward,
            clip_obs=t.clip_obs,
            gamma=t.gamma,
        )
    return raw, monitor, vn, vn


def baseline_allocators(cfg: AllocgymConfig) -> dict[str, Allocator]:
    """The baselines of ``cfg.train.eval_baselines`` (built from ``cfg.baselines``)."""
    out: dict[str, Allocator] = {}
    for name in cfg.train.eval_baselines:
        if name == "equal_weight":
            from allocgym.baselines.classic import EqualWeight

            out[name] = EqualWeight()
        elif name == "hrp":
            from allocgym.baselines.hrp import HRP

            out[name] = HRP.from_config(cfg.baselines.hrp)
    return out


# ------------------------------------------------------------------------------ RNG + env state


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) global RNG states."""
    out: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (SB3 draws from the legacy global RNG)
        "torch": th.get_rng_state(),
    }
    if th.cuda.is_available():
        out["cuda"] = th.cuda.get_rng_state_all()
    return out


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002 (SB3 draws from the legacy global RNG)
    th.set_rng_state(state["torch"])
    if "cuda" in state and th.cuda.is_available():
        th.cuda.set_rng_state_all(state["cuda"])


def env_snapshot(
    raw: PortfolioVecEnv, monitor: VecMonitor, vn: VecNormalize | None
) -> dict[str, Any]:
    """Everything the env stack needs to continue bit-identically.

    The core's episode sampling is counter-based, so the portfolio state (``EnvState``,
    with seeds and episode counters) is the env's whole random state.
    """
    state = raw.state
    snap: dict[str, Any] = {
        "state": None if state is None else state.copy(),
        "monitor": {
            "episode_returns": monitor.episode_returns.copy(),
            "episode_lengths": monitor.episode_lengths.copy(),
            "episode_count": monitor.episode_count,
        },
    }
    if vn is not None:  # VecNormalize does not pickle its running discounted returns
        snap["vecnormalize_returns"] = vn.returns.copy()
    return snap


def restore_env(
    raw: PortfolioVecEnv, monitor: VecMonitor, vn: VecNormalize | None, snap: Mapping[str, Any]
) -> None:
    """Put an env stack back into the state :func:`env_snapshot` captured."""
    state = snap["state"]
    if state is not None:
        raw.reset()  # clears per-step buffers and SB3 seeds; the state is then replaced
        # PortfolioVecEnv keeps its books in _state and its seeds / episode counters in
        # _keys / _episodes (next auto-reset draws from them).
        raw._state = state.copy()
        raw._keys, raw._episodes = raw._state.key, raw._state.episode
    m = snap["monitor"]
    monitor.episode_returns = m["episode_returns"].copy()
    monitor.episode_lengths = m["episode_lengths"].copy()
    monitor.episode_count = m["episode_count"]
    if vn is not None and "vecnormalize_returns" in snap:
        vn.returns = snap["vecnormalize_returns"].copy()


# ------------------------------------------------------------------------------ callbacks


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _save_model_files(
    model: BaseAlgorithm,
    vn: VecNormalize | None,
    folder: Path,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """model.zip (+ vecnormalize.pkl, + eval.json) into ``folder``, each file replaced atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{_MODEL}.tmp.zip"
    model.save(tmp)
    os.replace(tmp, folder / _MODEL)
    if vn is not None:
        tmp_vn = folder / f".{_VECNORM}.tmp"
        vn.save(str(tmp_vn))
        os.replace(tmp_vn, folder / _VECNORM)
    if extra is not None:
        _atomic_write(folder / "eval.json", json.dumps(extra, indent=2, default=float) + "\n")


class ValidationCallback(BaseCallback):
    """Every ``eval_freq`` steps: the agent and the baselines on the validation split.

    The agent acts deterministically (frozen VecNormalize statistics); the baselines run
    through the same env and seeds once (they do not learn), on evaluation's contexts and
    rebalancing rule (``allocgym.envs.context``: re-optimise every
    ``baselines.rebalance_every`` bars, hold the drifted book in between), so their curves
    are the strategies of the final evaluation table; they are re-logged at every
    evaluation so their curves overlay the agent's. Scalars go to
    ``eval/<allocator>/<metric>``; the agent's mean episode Sharpe, ``eval/score``, selects
    ``best/``. Every episode is scored (:func:`~allocgym.agents.metrics.episode_sharpe`: a
    flat episode counts as 0); one without a Sharpe ratio makes the score NaN, which never
    becomes the best. ``eval/n_scored`` counts the episodes with a Sharpe ratio.
    """

    def __init__(
        self,
        cfg: AllocgymConfig,
        params: EnvParams,
        run_dir: Path,
        vecnormalize: VecNormalize | None,
    ) -> None:
        super().__init__()
        t = cfg.train
        self.cfg = cfg
        self.params = params
        self.run_dir = run_dir
        self.vecnormalize = vecnormalize
        self.freq = int(t.eval_freq)
        self.n_episodes = int(t.eval_episodes)
        self.baselines = baseline_allocators(cfg)
        self.next_eval = self.freq
        self.last_eval = -1
        self.best_score = -np.inf
        self.best_step: int | None = None
        self.latest: dict[str, dict[str, float]] = {}
        self._baseline_cache: dict[str, dict[str, float]] = {}
        self._defaults = intervention_defaults()

    # -- resumable state
    def state_dict(self) -> dict[str, Any]:
        return {
            "next_eval": self.next_eval,
            "last_eval": self.last_eval,
            "best_score": self.best_score,
            "best_step": self.best_step,
            "latest": self.latest,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.next_eval = int(state["next_eval"])
        self.last_eval = int(state["last_eval"])
        self.best_score = float(state["best_score"])
        self.best_step = state["best_step"]
        self.latest = dict(state["latest"])

    # -- SB3 hooks
    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        if self.freq and self.num_timesteps >= self.next_eval:
            self.evaluate()

    def _on_training_end(self) -> None:
        if self.last_eval != self.num_timesteps:
            self.evaluate()

    # -- work
    def _baseline_metrics(self) -> dict[str, dict[str, float]]:
        b = self.cfg.baselines
        for name, alloc in self.baselines.items():
            if name not in self._baseline_cache:
                episodes = run_episodes(
                    self.params,
                    self.n_episodes,
                    allocator=alloc,
                    rebalance_every=b.rebalance_every,
                    lookback=b.lookback,
                )
                self._baseline_cache[name] = aggregate(episodes, self._defaults)
        return self._baseline_cache

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Run the validation episodes now; log, keep the best model, return the means."""
        agent = SB3PolicyAllocator(self.model, self.vecnormalize, self.params.action_spec)
        agent.reset()
        episodes = run_episodes(self.params, self.n_episodes, act=agent.act)
        results = {"agent": aggregate(episodes, self._defaults), **self._baseline_metrics()}
        step = int(self.num_timesteps)
        for who, metrics in results.items():
            for key, value in metrics.items():
                self.logger.record(f"eval/{who}/{key}", value)
        score = results["agent"].get(SCORE_METRIC, float("nan"))
        n_scored = int(np.isfinite([episode_sharpe(e) for e in episodes]).sum())
        self.logger.record("eval/score", score)
        self.logger.record("eval/n_scored", n_scored)
        self.logger.dump(step)
        record = {"step": step, "score": score, "n_scored": n_scored, **results}
        with (self.run_dir / "evaluations.jsonl").open("a") as fh:
            fh.write(json.dumps(record, default=float) + "\n")
        finite = bool(np.isfinite(score))
        # The first evaluation always seeds best/, even with a NaN score (a broken episode).
        if (finite and score > self.best_score) or self.best_step is None:
            self.best_score = float(score) if finite else -np.inf
            self.best_step = step
            _save_model_files(self.model, self.vecnormalize, self.run_dir / _BEST, extra=record)
        self.latest = results
        self.last_eval = step
        if self.freq:  # from here, so an extended run does not validate this step again
            self.next_eval = (step // self.freq + 1) * self.freq
        return results

    def summary_text(self) -> str:
        """One line for the progress bar: latest validation Sharpe of each allocator."""
        if not self.latest:
            return "val: pending"
        parts = [
            f"{who} {m.get(SCORE_METRIC, float('nan')):+.2f}" for who, m in self.latest.items()
        ]
        return "val sharpe " + " | ".join(parts)


class ResumableCheckpointCallback(BaseCallback):
    """Resumable checkpoints every ``freq`` steps at the next rollout boundary.

    Each checkpoint holds the model with its optimizer, the VecNormalize statistics, the
    replay buffer (SAC, newest checkpoint only), and ``state.pkl``: step counter, RNG
    states, action-space RNG, env state, LSTM states (RecurrentPPO), callback state and
    accumulated wall time, and ``best/`` as it stands (a resume restores it: a killed
    attempt may have replaced it after the checkpoint). Only the ``keep`` newest are kept.
    """

    def __init__(
        self,
        cfg: AllocgymConfig,
        run_dir: Path,
        env_stack: tuple[PortfolioVecEnv, VecMonitor, VecNormalize | None],
        validation: ValidationCallback,
        wall_time_before: float = 0.0,
    ) -> None:
        super().__init__()
        t = cfg.train
        self.freq = int(t.checkpoint_freq)
        self.keep = int(t.keep_checkpoints)
        self.save_replay = bool(t.sac.save_replay_buffer)
        self.dir = run_dir / "checkpoints"
        self.best_dir = run_dir / _BEST
        self.env_stack = env_stack
        self.validation = validation
        self.next_ckpt = self.freq
        self.wall_time_before = float(wall_time_before)
        self._t0 = time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        return {"next_ckpt": self.next_ckpt}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.next_ckpt = int(state["next_ckpt"])

    def wall_time(self) -> float:
        """Training seconds of the whole run so far."""
        return self.wall_time_before + (time.perf_counter() - self._t0)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        if self.freq and self.num_timesteps >= self.next_ckpt:
            self.next_ckpt = (self.num_timesteps // self.freq + 1) * self.freq
            self.save()

    def save(self) -> Path:
        """Write a checkpoint of the current step; returns its folder."""
        model = self.model
        step = int(model.num_timesteps)
        final = self.dir / f"{_CKPT_PREFIX}{step:012d}"
        if final.exists():
            return final
        tmp = self.dir / f".tmp_{_CKPT_PREFIX}{step:012d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        raw, monitor, vn = self.env_stack
        model.save(tmp / _MODEL)
        if vn is not None:
            vn.save(str(tmp / _VECNORM))
        if isinstance(model, OffPolicyAlgorithm) and self.save_replay:
            model.save_replay_buffer(tmp / _REPLAY)
        if self.best_dir.is_dir():  # what best/ holds now, for a resume from this step
            shutil.copytree(self.best_dir, tmp / _BEST, ignore=shutil.ignore_patterns(".*"))
        state = {
            "num_timesteps": step,
            "rng": rng_state(),
            "action_space_rng": model.action_space.np_random.bit_generator.state,
            "env": env_snapshot(raw, monitor, vn),
            "lstm_states": getattr(model, "_last_lstm_states", None),
            "validation": self.validation.state_dict(),
            "checkpoint": self.state_dict(),
            "wall_time_s": self.wall_time(),
        }
        with (tmp / _STATE).open("wb") as fh:
            pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, final)
        self._prune()
        return final

    def _prune(self) -> None:
        ckpts = list_checkpoints(self.dir.parent)
        for old in ckpts[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for old in ckpts[-self.keep : -1]:  # replay buffers are large: newest only
            (old / _REPLAY).unlink(missing_ok=True)


class ProgressCallback(BaseCallback):
    """Rich progress bar: steps, fps of this process and the latest validation line.

    When the output is not a terminal (a log file, a pipe), a live bar would write nothing
    readable: one plain line per validation evaluation is printed instead (steps, fps,
    elapsed time and the validation Sharpe ratios), plus one at the end.
    """

    def __init__(
        self,
        total: int,
        validation: ValidationCallback,
        refresh_s: float = 0.25,
        *,
        live: bool | None = None,
        write: Any = None,
    ) -> None:
        super().__init__()
        self.total = int(total)
        self.validation = validation
        self.refresh_s = refresh_s
        self._progress: Progress | None = None
        self._task: Any = None
        self._last = 0.0
        self._t0 = 0.0
        self._n0 = 0
        if live is None:
            from rich.console import Console

            live = Console().is_terminal
        self.live = bool(live)
        self._write = write or (lambda line: print(line, flush=True))
        self._logged_eval = -1

    def _line(self) -> str:
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        fps = (self.num_timesteps - self._n0) / elapsed
        return (
            f"train: {self.num_timesteps:,}/{self.total:,} steps, {fps:,.0f} fps, "
            f"{elapsed:,.0f} s; {self.validation.summary_text()}"
        )

    def _on_training_start(self) -> None:
        self._n0 = int(self.num_timesteps)
        self._t0 = time.perf_counter()
        self._logged_eval = self.validation.last_eval
        if not self.live:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:>9,.0f}/{task.total:,.0f} steps"),
            TextColumn("{task.fields[fps]:>7.0f} fps"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[val]}"),
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "train",
            total=self.total,
            completed=self._n0,
            fps=0.0,
            val=self.validation.summary_text(),
        )

    def _refresh(self) -> None:
        assert self._progress is not None
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        fps = (self.num_timesteps - self._n0) / elapsed
        self._progress.update(
            self._task, completed=self.num_timesteps, fps=fps, val=self.validation.summary_text()
        )

    def _on_step(self) -> bool:
        if not self.live:
            if self.validation.last_eval != self._logged_eval:
                self._logged_eval = self.validation.last_eval
                self._write(self._line())
            return True
        now = time.perf_counter()
        if now - self._last >= self.refresh_s:
            self._last = now
            self._refresh()
        return True

    def _on_training_end(self) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()
        elif not self.live:
            self._write(self._line() + " (done)")


# ------------------------------------------------------------------------------ run dir


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    found = [p for p in d.iterdir() if p.is_dir() and p.name.startswith(_CKPT_PREFIX)]
    return sorted((p for p in found if (p / _STATE).is_file()), key=lambda p: p.name)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """Newest complete checkpoint, or None."""
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def checkpoint_step(ckpt: Path) -> int:
    """The training step a checkpoint was written at (from its folder name)."""
    return int(ckpt.name[len(_CKPT_PREFIX) :])


def shortening(run_dir: str | Path, cfg: AllocgymConfig) -> str:
    """Why resuming ``run_dir`` with ``cfg`` would shorten it ('' when it would not): its
    latest checkpoint is past ``cfg.train.total_timesteps``, so the resumed run would stop
    there and pass for a shorter one."""
    ckpt = latest_checkpoint(run_dir)
    total = cfg.train.total_timesteps
    if ckpt is None or checkpoint_step(ckpt) <= total:
        return ""
    # a finished run overshoots its total to the end of the last rollout: asking for that
    # total (or more) again shortens nothing
    summary = Path(run_dir) / "train_summary.json"
    done = json.loads(summary.read_text()) if summary.is_file() else {}
    if done.get("num_timesteps") == checkpoint_step(ckpt) and done["total_timesteps"] <= total:
        return ""
    return (
        f"its latest checkpoint is at step {checkpoint_step(ckpt)}, past "
        f"train.total_timesteps = {cfg.train.total_timesteps}"
    )


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def run_hparams(cfg: AllocgymConfig, digest: str) -> dict[str, bool | int | float | str]:
    """Hyperparameters of a run for TensorBoard's hparams plugin.

    Every field of the ``train`` and ``env`` sections (dotted names, e.g.
    ``train.learning_rate``, ``env.cvar_weight``) and the config hash. The plugin takes
    bool, int, float and str only: None and lists are written as their text.
    """
    tree = {"train": cfg.train.model_dump(mode="json"), "env": cfg.env.model_dump(mode="json")}
    hparams: dict[str, bool | int | float | str] = {"config_hash": digest}
    for name, value in _flat(tree).items():
        hparams[name] = value if isinstance(value, bool | int | float | str) else str(value)
    return hparams


def load_run_config(
    run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()
) -> AllocgymConfig:
    """The resolved config saved in a run directory (plus ``a.b=value`` overrides)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(
            f"run directory {str(run_dir)!r} has no config.yaml: is it a training run?"
        )
    return config_from_dict(load_yaml(path.read_text()) or {}, overrides)


def run_config_changes(
    run_dir: str | Path, cfg: AllocgymConfig, free: tuple[str, ...] = RESUME_FREE_KEYS
) -> list[str]:
    """``"key: saved -> requested"`` for every config key but ``free`` on which ``cfg``
    differs from the config saved in ``run_dir``, in key order ([] when none)."""
    a = _flat(load_run_config(run_dir).model_dump(mode="json"))
    b = _flat(cfg.model_dump(mode="json"))
    return [
        f"{k}: {a.get(k)!r} -> {b.get(k)!r}"
        for k in sorted(a.keys() | b.keys())
        if not any(k == f or k.startswith(f + ".") for f in free) and a.get(k) != b.get(k)
    ]


def _check_resumable(run_dir: Path, cfg: AllocgymConfig) -> None:
    diff = run_config_changes(run_dir, cfg)
    if diff:
        shown = ", ".join(diff[:5])
        raise ConfigError(
            f"cannot resume {str(run_dir)!r} with a different config ({shown}); only "
            f"{', '.join(RESUME_FREE_KEYS)} may change: resume without --config or start a new "
            "--run-dir"
        )


def _trim_evaluations(run_dir: Path, step: int) -> None:
    """Drop validation records written after the checkpoint a run resumes from."""
    path = run_dir / "evaluations.jsonl"
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
    _atomic_write(path, "".join(f"{ln}\n" for ln in keep))


@contextlib.contextmanager
def torch_settings(deterministic: bool, threads: int | None) -> Iterator[None]:
    """Deterministic algorithms and thread count for the duration of a run."""
    prev_det = th.are_deterministic_algorithms_enabled()
    prev_threads = th.get_num_threads()
    prev_cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            th.use_deterministic_algorithms(True)
        if threads is not None:
            th.set_num_threads(int(threads))
        yield
    finally:
        th.use_deterministic_algorithms(prev_det)
        th.set_num_threads(prev_threads)
        if prev_cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


# ------------------------------------------------------------------------------ entry points


def train(
    cfg: AllocgymConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    market: MarketData | None = None,
    progress: bool = False,
    callbacks: list[BaseCallback] | None = None,
    ledger: str | Path | None = None,
) -> TrainResult:
    """Train ``cfg.train.algo`` on ``cfg.env.split`` (the train split by default) and write a
    run directory.

    Every call that gets past the config checks appends one line to the trials ledger
    (default ``trials.jsonl`` in the folder that holds ``run_dir``, so runs that share a
    quickstart directory share one ledger, which the Deflated Sharpe reads), ``completed``
    with its best validation Sharpe, or ``failed`` with the error (a run a callback ends
    with :class:`StopTraining` is recorded by whoever stopped it). The ledger counts a run
    directory as one trial: resuming or extending a run updates its record instead of
    adding a trial (:meth:`allocgym.ledger.TrialsLedger.read`). Each record carries the
    run's :func:`allocgym.ledger.selection_key` (market data, splits, validation split):
    the Deflated Sharpe of a run counts only the trials of its own key.

    Parameters
    ----------
    cfg : AllocgymConfig
        Whole config; ``cfg.train`` holds the hyperparameters.
    run_dir : path
        Output folder (see the module docstring for its layout).
    resume : bool
        Continue from the newest checkpoint in ``run_dir`` (config must match except
        ``RESUME_FREE_KEYS``); with no checkpoint yet, start from scratch.
    market : MarketData, optional
        Market to train on; default ``allocgym.data.load_market(cfg.data)``.
    progress : bool
        Show the rich progress bar.
    callbacks : list of BaseCallback, optional
        Extra SB3 callbacks (run after the built-in ones).
    ledger : path, optional
        The trials ledger to append to (a study or a sweep passes its own); default
        ``cfg.evaluation.trials_ledger``, else ``trials.jsonl`` beside ``run_dir``.

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        ``run_dir`` already holds a run and ``resume`` is False; the config differs from
        the run's when resuming; ``device: cuda`` without a GPU; inconsistent
        hyperparameters.
    """
    from allocgym.ledger import (
        LEDGER_FILENAME,
        TrialsLedger,
        configuration_id,
        market_fingerprint,
        n_evaluations,
        run_id_of,
        scored_metrics,
        selection_key,
    )

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if ledger is None:  # the config's study ledger, else the run's folder's
        ledger = cfg.evaluation.trials_ledger or Path(run_dir).parent / LEDGER_FILENAME
    ledger_file = Path(ledger)
    trials = TrialsLedger(ledger_file)
    digest, config_id = config_hash(cfg), configuration_id(cfg)
    key = ""  # unknown when loading the market fails (a failed trial is never counted)
    try:
        market = load_market(cfg.data) if market is None else market
        key = selection_key(cfg, market_fingerprint(market))
        result = _train(cfg, Path(run_dir), resume=resume, market=market, progress=progress,
                        callbacks=callbacks)  # fmt: skip
    except ConfigError:
        raise  # refused before training: not a trial
    except StopTraining:
        raise  # stopped from outside: the stopper records the trial
    except BaseException as exc:
        # scored before it failed: a candidate whose best/ can be evaluated, so a trial
        metrics = scored_metrics(run_dir)
        trials.append({"config_hash": digest, "seed": int(cfg.train.seed),
                       "run_dir": str(run_dir), "status": "failed", "started_at": started,
                       "note": f"{type(exc).__name__}: {exc}"[:500], "metrics": metrics,
                       "selection_key": key, "run_id": run_id_of(run_dir),
                       "config_id": config_id})  # fmt: skip
        raise
    trials.append(
        {
            "config_hash": digest,
            "seed": int(cfg.train.seed),
            "run_dir": str(run_dir),
            "status": "completed",
            "metrics": {
                "val_sharpe": result.best_score,
                "best_step": result.best_step,
                "num_timesteps": result.num_timesteps,
                EVALUATIONS_KEY: n_evaluations(Path(run_dir)),
            },
            "started_at": started,
            "selection_key": key,
            "run_id": run_id_of(run_dir),
            "config_id": config_id,
        }
    )
    return result


def _resume_point(run_dir: Path, cfg: AllocgymConfig, resume: bool) -> Path | None:
    """The checkpoint a run continues from (None: a fresh start, whose partial outputs are
    dropped).

    Raises
    ------
    ConfigError
        ``run_dir`` holds a run and ``resume`` is False, or its config cannot resume.
    """
    ckpt: Path | None = None
    if resume:
        if (run_dir / "config.yaml").is_file():
            _check_resumable(run_dir, cfg)
        shorter = shortening(run_dir, cfg)
        if shorter:
            raise ConfigError(
                f"cannot resume {str(run_dir)!r}: {shorter}, and a resume cannot shorten a "
                "run: ask for at least that many steps or start a new --run-dir"
            )
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None and (run_dir / "config.yaml").is_file():
            warnings.warn(
                f"{run_dir}: no checkpoint to resume from, training from scratch",
                UserWarning,
                stacklevel=3,  # the line in train()
            )
    elif latest_checkpoint(run_dir) is not None or (run_dir / "final" / _MODEL).is_file():
        raise ConfigError(
            f"run directory {str(run_dir)!r} already holds a training run: pass --resume to "
            "continue it or choose a new --run-dir"
        )
    if ckpt is None:
        # a fresh start drops partial outputs of a run killed before its first checkpoint
        (run_dir / "evaluations.jsonl").unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
        shutil.rmtree(run_dir / _BEST, ignore_errors=True)
        new_run_id(run_dir)  # a new trial in the ledger, even in a reused directory
    return ckpt


def _restore_run(
    cfg: AllocgymConfig,
    ckpt: Path,
    run_dir: Path,
    envs: tuple[PortfolioVecEnv, VecMonitor, VecEnv, VecNormalize | None],
    device: str,
    tb_dir: Path,
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """The model, envs and random streams of checkpoint ``ckpt``; later evaluations dropped.

    Returns
    -------
    tuple
        The model on ``envs`` and the checkpoint's saved state.
    """
    raw, monitor, env, vn = envs
    with (ckpt / _STATE).open("rb") as fh:
        state = pickle.load(fh)
    model = ALGOS[cfg.train.algo].load(
        ckpt / _MODEL,
        env=env,
        device=device,
        force_reset=False,
        tensorboard_log=str(tb_dir),
    )
    if isinstance(model, OffPolicyAlgorithm):
        if (ckpt / _REPLAY).is_file():
            model.load_replay_buffer(ckpt / _REPLAY)
        else:
            warnings.warn(
                f"checkpoint {ckpt.name} has no replay buffer: SAC continues with an "
                "empty one (set train.sac.save_replay_buffer=true for exact resumes)",
                UserWarning,
                stacklevel=3,  # the line in train()
            )
    restore_env(raw, monitor, vn, state["env"])
    if state["lstm_states"] is not None:
        model._last_lstm_states = state["lstm_states"]
    model.action_space.np_random.bit_generator.state = state["action_space_rng"]
    set_rng_state(state["rng"])
    _trim_evaluations(run_dir, int(state["num_timesteps"]))
    _restore_best(run_dir, ckpt, state["validation"])
    return model, state


def _best_step(folder: Path) -> int | None:
    path = folder / "eval.json"
    return int(json.loads(path.read_text())["step"]) if path.is_file() else None


def _restore_best(run_dir: Path, ckpt: Path, validation: dict[str, Any]) -> None:
    """``best/`` as it was at checkpoint ``ckpt``, matching the restored best step.

    A killed attempt may have written a better model to ``best/`` after the checkpoint;
    its evaluation record is trimmed away, so unless the resumed run beat the restored
    score again ``best/`` would hold a model no record describes. A checkpoint keeps a copy
    of ``best/``; one without it (no validation before it, or written by an older version)
    drops a ``best/`` of another step and forgets the best score in ``validation`` (the
    checkpoint's validation state, updated in place), so the next evaluation seeds it.
    """
    best, saved = run_dir / _BEST, ckpt / _BEST
    if saved.is_dir():
        shutil.rmtree(best, ignore_errors=True)
        shutil.copytree(saved, best)
        return
    step = _best_step(best)
    if step == validation["best_step"]:
        return
    shutil.rmtree(best, ignore_errors=True)
    if validation["best_step"] is not None:
        warnings.warn(
            f"checkpoint {ckpt.name} keeps no copy of best/ and best/ holds step {step}, not "
            f"the checkpoint's best step {validation['best_step']}: best/ is dropped and "
            "chosen again from the validations after the checkpoint",
            UserWarning,
            stacklevel=4,  # the line in train()
        )
    validation.update(best_score=-np.inf, best_step=None)


def _train(
    cfg: AllocgymConfig,
    run_dir: Path,
    *,
    resume: bool,
    market: MarketData,
    progress: bool,
    callbacks: list[BaseCallback] | None,
) -> TrainResult:
    """The body of :func:`train` (without the ledger)."""
    run_dir = Path(run_dir)
    train_cfg = cfg.train
    device = resolve_device(train_cfg.device)
    ckpt = _resume_point(run_dir, cfg, resume)
    if ckpt is not None:
        check_same_data(run_dir, cfg, market, "cannot resume")
    digest = write_run_metadata(run_dir, cfg)
    if ckpt is None:
        write_run_data(run_dir, cfg, market)

    with torch_settings(train_cfg.deterministic, train_cfg.torch_threads):
        params = build_params(market, cfg, cfg.env.split)  # what in_sample_reason checks
        eval_params = (
            params
            if train_cfg.eval_split == cfg.env.split
            else build_params(market, cfg, train_cfg.eval_split)
        )
        tb_dir = run_dir / "tb"
        vn_path = ckpt / _VECNORM if ckpt is not None and (ckpt / _VECNORM).is_file() else None
        raw, monitor, env, vn = make_train_env(cfg, params, vn_path)
        state: dict[str, Any] | None = None
        if ckpt is None:
            model = build_model(cfg, env, params, device=device, tensorboard_log=tb_dir)
        else:
            model, state = _restore_run(cfg, ckpt, run_dir, (raw, monitor, env, vn), device, tb_dir)
        validation = ValidationCallback(cfg, eval_params, run_dir, vn)
        checkpoint = ResumableCheckpointCallback(
            cfg,
            run_dir,
            (raw, monitor, vn),
            validation,
            wall_time_before=0.0 if state is None else float(state["wall_time_s"]),
        )
        if state is not None:
            validation.load_state_dict(state["validation"])
            checkpoint.load_state_dict(state["checkpoint"])
        all_callbacks: list[BaseCallback] = [
            HyperparameterCallback(run_hparams(cfg, digest)),
            RiskMetricsCallback(),
            validation,
            checkpoint,
        ]
        if progress:
            all_callbacks.append(ProgressCallback(train_cfg.total_timesteps, validation))
        all_callbacks.extend(callbacks or [])

        start_steps = int(model.num_timesteps)
        start = time.perf_counter()
        remaining = train_cfg.total_timesteps - start_steps
        if remaining > 0:
            model.learn(
                remaining,
                callback=CallbackList(all_callbacks),
                reset_num_timesteps=ckpt is None,
                tb_log_name=TB_NAMES[train_cfg.algo],
                log_interval=1,
            )
        wall = time.perf_counter() - start
        _save_model_files(model, vn, run_dir / "final")
        checkpoint.init_callback(model)
        checkpoint.save()  # the end state is resumable too (e.g. to extend total_timesteps)
        env.close()

    steps = int(model.num_timesteps)
    result = TrainResult(
        run_dir=run_dir,
        algo=train_cfg.algo,
        num_timesteps=steps,
        total_timesteps=train_cfg.total_timesteps,
        wall_time_s=wall,
        fps=(steps - start_steps) / wall if wall > 0 else 0.0,
        total_wall_time_s=checkpoint.wall_time_before + wall,
        device=device,
        best_score=(
            validation.best_score
            if validation.best_step is not None and np.isfinite(validation.best_score)
            else None
        ),
        best_step=validation.best_step,
        resumed_from=None if state is None else int(state["num_timesteps"]),
        config_hash=digest,
    )
    _atomic_write(run_dir / "train_summary.json", json.dumps(result.to_json(), indent=2) + "\n")
    return result


def _check_best_is_finished(run_dir: Path) -> None:
    """Refuse a ``best/`` that is not the best model of the run's last finished attempt
    (a later attempt that was interrupted replaced it; its summary and ledger line still
    describe the earlier one)."""
    summary_path = run_dir / "train_summary.json"
    best = _best_step(run_dir / _BEST)
    if not summary_path.is_file() or best is None:
        return
    chosen = json.loads(summary_path.read_text()).get("best_step")
    if chosen is not None and int(chosen) != best:
        raise ConfigError(
            f"{str(run_dir / _BEST)!r} holds the model of step {best}, but the run's last "
            f"finished training chose step {chosen}: a later attempt was interrupted; "
            f"finish it (allocgym train --run-dir {str(run_dir)!r} --resume), which puts "
            "back the checkpoint's best/, or use the final model"
        )


def load_agent(
    run_dir: str | Path, which: str = "best", *, device: str = "cpu"
) -> tuple[BaseAlgorithm, VecNormalize | None, AllocgymConfig]:
    """Load a trained agent from a run directory.

    Parameters
    ----------
    run_dir : path
    which : {"best", "final", "latest"}
        Best validation model, model at the end of training, or newest checkpoint.
    device : str
        Torch device for the loaded policy (``auto``, ``cpu``, ``cuda``).

    Returns
    -------
    model : BaseAlgorithm
        Without an env (``predict`` only).
    vecnormalize : VecNormalize or None
        Frozen observation statistics (``training = False``, ``norm_reward = False``);
        apply ``normalize_obs`` before ``predict`` (``SB3PolicyAllocator`` does).
    cfg : AllocgymConfig
        The run's resolved config.
    """
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if which in ("best", "final"):
        folder = run_dir / which
    elif which == "latest":
        latest = latest_checkpoint(run_dir)
        if latest is None:
            raise ConfigError(f"run {str(run_dir)!r} has no checkpoint: use which='final'")
        folder = latest
    else:
        raise ConfigError(f"which = {which!r}: use 'best', 'final' or 'latest'")
    if not (folder / _MODEL).is_file():
        hint = (
            "no validation ran yet: use which='final'"
            if which == "best"
            else "training has not finished"
        )
        raise ConfigError(f"{str(folder / _MODEL)!r} does not exist ({hint})")
    if which == "best":
        _check_best_is_finished(run_dir)
    model = ALGOS[cfg.train.algo].load(folder / _MODEL, device=resolve_device(device))
    vn: VecNormalize | None = None
    if (folder / _VECNORM).is_file():
        with (folder / _VECNORM).open("rb") as fh:
            vn = pickle.load(fh)
        assert isinstance(vn, VecNormalize)
        vn.training = False
        vn.norm_reward = False
    return model, vn, cfg
