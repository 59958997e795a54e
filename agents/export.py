"""Export a trained SB3 policy to a frozen ONNX bundle (``allocgym export``).

The graph maps raw float32 observations to proposals with nothing left for the runtime
to do::

    obs (float32) -> [VecNormalize: (obs - mean) / sqrt(var + eps), clip]   float64
                  -> deterministic actor                                    float32
                     (PPO/A2C: Gaussian mean clipped to the Box like SB3's predict;
                      SAC: tanh-squashed mean rescaled to the Box)
                  -> ActionSpec map                                         float64
                     (softmax with cash / bounded long-short / budget softmax)

The normalisation runs in float64 exactly as numpy does (``VecNormalize.normalize_obs``),
so it is bit-identical; the action map is :class:`allocgym.actions.ActionSpec` re-written
op for op in torch (:class:`TorchActionMap`, parity-tested against the numpy map). Before
the bundle is written, :func:`export_model` runs at least 10 000 observations (recorded
from env rollouts of the policy and of random actions, plus random points of the
observation box) through the SB3 path (``SB3PolicyAllocator``) and through onnxruntime,
and raises :class:`~allocgym.errors.ExportParityError` when the proposals differ by more
than ``1e-5``.

The model carries producer ``allocgym``, a doc string on every input and output and
``metadata_props`` (layout, exporter, and last the ``model_id``). The bundle is sealed
whole (:func:`allocgym.serving.bundle.compute_seal`: one digest over the canonical
manifest and the model, from which ``model_id`` derives) and, with ``sign_key``, signed
(Ed25519, ``seal.sig``). ``proposal`` stays float64: see the bundle module for why a
float32 output would trip the gates on its caps.

RecurrentPPO is refused: its LSTM state would have to travel between production
decisions, and the frozen runtime is stateless by design.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime as ort
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn

from allocgym import __version__
from allocgym.actions import ActionSpec
from allocgym.agents.allocator import SB3PolicyAllocator
from allocgym.agents.policies import DeterministicActor
from allocgym.config import AllocgymConfig, config_hash, package_versions
from allocgym.costs import CostModel
from allocgym.data import MarketData, load_market
from allocgym.envs import PortfolioVecEnv, build_params
from allocgym.envs.core import EnvParams
from allocgym.errors import ConfigError, ExportParityError
from allocgym.execution import ExecutionParams
from allocgym.intents import STRATEGY_FAMILIES
from allocgym.ledger import check_symbols, read_run_data
from allocgym.risk import RiskLimits
from allocgym.serving.bundle import (
    ACTION_OUTPUT,
    INPUT_NAME,
    MANIFEST_FILE,
    MANIFEST_SCHEMA,
    MODEL_FILE,
    ONNX_OPSET,
    PROPOSAL_OUTPUT,
    SIGNATURE_FILE,
    FrozenPolicy,
    compute_seal,
    derive_model_id,
    load_signing_key,
    sha256_file_bytes,
    sign_bundle,
    stamp_model_id,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PARITY_TOL = 1e-5
"""Largest |proposal difference| (weights or budgets) accepted between SB3 and ONNX."""

MIN_PARITY_OBS = 10_000
"""Observations the ``allocgym export`` parity check runs at least."""

MAX_PARITY_OBS = 1_000_000
"""Most parity observations of each kind: a million already hold 2.9 GB at N = 20."""

__all__ = [
    "MAX_PARITY_OBS",
    "MIN_PARITY_OBS",
    "PARITY_TOL",
    "ExportGraph",
    "ObsNormalizer",
    "SACActor",
    "TorchActionMap",
    "actor_module",
    "export_model",
    "export_run",
    "parity_observations",
]


# ------------------------------------------------------------------------------ modules


class ObsNormalizer(nn.Module):
    """VecNormalize's ``clip((obs - mean) / sqrt(var + eps), -clip, clip)`` in float64.

    Parameters
    ----------
    mean, var : ndarray, shape (obs_dim,)
        Frozen running statistics (``VecNormalize.obs_rms``).
    epsilon : float
    clip : float
        ``VecNormalize.clip_obs``.

    Notes
    -----
    ``sqrt(var + eps)`` is computed once in numpy, as ``normalize_obs`` computes it, and
    the subtraction, division and clip are exactly rounded in float64: the output has the
    bits of the SB3 path (float32 after the final cast).
    """

    def __init__(self, mean: np.ndarray, var: np.ndarray, epsilon: float, clip: float) -> None:
        super().__init__()
        std = np.sqrt(np.asarray(var, dtype=np.float64) + float(epsilon))
        self.register_buffer("mean", th.as_tensor(np.asarray(mean, dtype=np.float64)))
        self.register_buffer("std", th.as_tensor(std))
        self.clip = float(clip)

    def forward(self, obs: th.Tensor) -> th.Tensor:
        x = (obs.double() - self.mean) / self.std
        return th.clamp(x, -self.clip, self.clip).float()


class SACActor(nn.Module):
    """Deterministic SAC actor: ``tanh(mu(latent))`` rescaled to the action Box (float32)."""

    def __init__(self, model: SAC) -> None:
        super().__init__()
        actor = model.policy.actor
        if getattr(actor, "use_sde", False):
            raise ConfigError("SAC with gSDE cannot be exported: train with use_sde=False")
        self.features_extractor = actor.features_extractor
        self.latent_pi = actor.latent_pi
        self.mu = actor.mu
        space = model.action_space
        self.register_buffer("low", th.as_tensor(space.low, dtype=th.float32))
        self.register_buffer("high", th.as_tensor(space.high, dtype=th.float32))

    def forward(self, obs: th.Tensor) -> th.Tensor:
        a = th.tanh(self.mu(self.latent_pi(self.features_extractor(obs))))
        # SB3's unscale_action: low + 0.5 * (a + 1) * (high - low)
        return self.low + (0.5 * (a + 1.0) * (self.high - self.low))


class TorchActionMap(nn.Module):
    """:class:`allocgym.actions.ActionSpec` re-written in torch (float64), op for op.

    Input actions (float32, ``(n_envs, action_dim)``) are cast to float64 and clipped to
    ``[-1, 1]``; then

    - ``weights`` long-only: ``softmax(a * logit_scale)`` over ``n_assets + 1`` (max
      subtracted first, as numpy does), cash column dropped;
    - ``weights`` long/short: ``w = a * max_symbol_weight``, ``w * max_gross /
      max(sum |w|, max_gross)``;
    - ``budgets``: ``softmax(a * logit_scale)`` over ``n_strategies + 1``;
    - ``tilt``: the clipped action itself (the tilt of a prior book needs the prior
      allocator's weights at decision time, which the torch-free runtime computes and
      combines with :meth:`allocgym.actions.ActionSpec.to_tilted`, the env's own map).
    """

    def __init__(self, spec: ActionSpec) -> None:
        super().__init__()
        self.mode = spec.mode
        self.long_only = bool(spec.long_only)
        self.n_assets = int(spec.n_assets)
        self.logit_scale = float(spec.logit_scale)
        self.max_symbol_weight = float(spec.max_symbol_weight)
        self.register_buffer("max_gross", th.tensor(float(spec.max_gross), dtype=th.float64))

    @staticmethod
    def _softmax(logits: th.Tensor) -> th.Tensor:
        z = logits - logits.max(dim=-1, keepdim=True).values
        e = th.exp(z)
        return e / e.sum(dim=-1, keepdim=True)

    def forward(self, action: th.Tensor) -> th.Tensor:
        a = th.clamp(action.double(), -1.0, 1.0)
        if self.mode == "tilt":
            return a
        if self.mode == "budgets":
            return self._softmax(a * self.logit_scale)
        if self.long_only:
            return self._softmax(a * self.logit_scale)[:, : self.n_assets]
        w = a * self.max_symbol_weight
        gross = th.abs(w).sum(dim=1, keepdim=True)
        return w * (self.max_gross / th.maximum(gross, self.max_gross))


class ExportGraph(nn.Module):
    """The whole exported graph: normaliser (optional) -> actor -> action map.

    ``forward(obs)`` returns ``(action float32, proposal float64)``.
    """

    def __init__(
        self, actor: nn.Module, action_map: TorchActionMap, norm: ObsNormalizer | None
    ) -> None:
        super().__init__()
        self.norm = norm
        self.actor = actor
        self.action_map = action_map

    def forward(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        x = obs if self.norm is None else self.norm(obs)
        action = self.actor(x)
        return action, self.action_map(action)


def actor_module(model: BaseAlgorithm) -> nn.Module:
    """The deterministic actor of a PPO/A2C/SAC model as a torch module (float32).

    Raises
    ------
    ConfigError
        For recurrent policies (stateful: not servable by the stateless runtime) and
        unsupported algorithms.
    """
    policy = model.policy
    if hasattr(policy, "lstm_actor") or type(model).__name__ == "RecurrentPPO":
        raise ConfigError(
            "RecurrentPPO cannot be exported: its LSTM state would have to be carried "
            "between production decisions and the frozen runtime is stateless; train "
            "with train.algo = ppo, a2c or sac to serve the policy"
        )
    if isinstance(model, SAC):
        return SACActor(model)
    if isinstance(policy, ActorCriticPolicy):
        return DeterministicActor(policy)
    raise ConfigError(f"cannot export a {type(model).__name__} policy: use PPO, A2C or SAC")


def _normalizer(vn: VecNormalize | None) -> ObsNormalizer | None:
    if vn is None or not vn.norm_obs:
        return None
    rms = vn.obs_rms
    if isinstance(rms, dict):
        raise ConfigError("VecNormalize over a Dict observation space cannot be exported")
    return ObsNormalizer(rms.mean, rms.var, float(vn.epsilon), float(vn.clip_obs))


# ------------------------------------------------------------------------------ parity data


def parity_observations(
    params: EnvParams,
    agent: SB3PolicyAllocator,
    *,
    n_recorded: int,
    n_random: int,
    seed: int = 0,
    n_envs: int = 16,
) -> np.ndarray:
    """Observations for the export parity check, float32 ``(n_recorded + n_random, obs_dim)``.

    Recorded: ``PortfolioVecEnv`` rollouts where half of the portfolios follow the
    policy deterministically and half take uniform random actions (books the policy
    would not reach). Random: uniform points of the observation box
    (``FeatureBuilder.observation_bounds``).
    """
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    if n_recorded > 0:
        b = max(1, min(n_envs, n_recorded))
        env = PortfolioVecEnv(params=params, n_envs=b, seed=seed)
        obs = env.reset()
        n_policy = (b + 1) // 2
        spec = params.action_spec
        steps = math.ceil(n_recorded / b)
        for _ in range(steps):
            parts.append(np.asarray(obs, dtype=np.float32))
            act = rng.uniform(spec.low, spec.high, size=(b, spec.action_dim)).astype(np.float32)
            act[:n_policy] = agent.act(obs[:n_policy])
            obs, _, _, _ = env.step(act)
        env.close()
    recorded = np.concatenate(parts)[:n_recorded] if parts else np.empty((0, params.obs_dim))
    lo, hi = params.obs_low.astype(np.float64), params.obs_high.astype(np.float64)
    random = rng.uniform(lo, hi, size=(n_random, params.obs_dim)).astype(np.float32)
    return np.concatenate([recorded.astype(np.float32), random])


def _sb3_proposal(agent: SB3PolicyAllocator, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    spec = agent._spec()
    act = agent.act(obs)
    if spec.mode == "tilt":
        return act, np.clip(act.astype(np.float64), -1.0, 1.0)
    prop = spec.to_weights(act) if spec.mode == "weights" else spec.to_budgets(act)
    return act, prop


ONE_ROW_ROWS = 64
"""Parity observations also run one row at a time (as serving calls the graph)."""
OUTSIDE_ROWS = 512
"""Parity observations drawn up to two box widths outside the observation box."""


def _check_parity(
    session: ort.InferenceSession, agent: SB3PolicyAllocator, obs: np.ndarray, chunk: int
) -> dict[str, Any]:
    worst_p, worst_a, worst_row = 0.0, 0.0, -1
    for start in range(0, obs.shape[0], chunk):
        x = obs[start : start + chunk]
        act_ref, prop_ref = _sb3_proposal(agent, x)
        act, prop = session.run([ACTION_OUTPUT, PROPOSAL_OUTPUT], {INPUT_NAME: x})
        if not np.isfinite(prop).all():
            raise ExportParityError(
                f"the ONNX graph returned non-finite proposals for observations "
                f"{start}..{start + x.shape[0] - 1}: the export is broken"
            )
        dp = np.abs(prop - prop_ref).max(axis=1)
        da = float(np.abs(act.astype(np.float64) - act_ref.astype(np.float64)).max())
        if dp.max() > worst_p:
            worst_p, worst_row = float(dp.max()), start + int(dp.argmax())
        worst_a = max(worst_a, da)
    return {
        "n_observations": int(obs.shape[0]),
        "max_abs_diff_proposal": worst_p,
        "max_abs_diff_action": worst_a,
        "worst_observation": worst_row,
        "tolerance": PARITY_TOL,
    }


# ------------------------------------------------------------------------------ export


def _onnx_bytes(graph: ExportGraph, obs_dim: int) -> bytes:
    buf = io.BytesIO()
    example = th.zeros((2, obs_dim), dtype=th.float32)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated upstream; the dynamo one needs onnxscript.
        warnings.simplefilter("ignore")
        th.onnx.export(
            graph,
            (example,),
            buf,
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=[INPUT_NAME],
            output_names=[ACTION_OUTPUT, PROPOSAL_OUTPUT],
            dynamic_axes={
                INPUT_NAME: {0: "batch"},
                ACTION_OUTPUT: {0: "batch"},
                PROPOSAL_OUTPUT: {0: "batch"},
            },
            do_constant_folding=True,
            external_data=False,
        )
    return buf.getvalue()


def _annotate(
    model: onnx.ModelProto, spec: ActionSpec, params: EnvParams, columns: list[str]
) -> str:
    """Name allocgym as the producer, document the inputs and outputs and add the layout
    to ``metadata_props`` (in place); returns the torch exporter's producer string."""
    exporter = f"{model.producer_name} {model.producer_version}".strip()
    model.producer_name = "allocgym"
    model.producer_version = __version__
    model.doc_string = (
        "allocgym frozen policy: raw observations -> frozen observation normalisation -> "
        "deterministic actor -> action map; manifest.json beside it holds the layout, "
        "limits and seal"
    )
    docs = {
        INPUT_NAME: (
            f"raw observations, float32 (batch, {params.obs_dim}), in the FeatureBuilder "
            "layout (manifest observation.names); normalised inside the graph"
        ),
        ACTION_OUTPUT: (
            f"the deterministic actor's action, float32 (batch, {spec.action_dim}), "
            "before the action map"
        ),
        PROPOSAL_OUTPUT: (
            f"{spec.mode} proposal, float64 (batch, {len(columns)}), columns in manifest "
            "proposal.columns; float64 so that a book on a cap stays exactly on it"
        ),
    }
    for value in (*model.graph.input, *model.graph.output):
        value.doc_string = docs.get(value.name, value.doc_string)
    onnx.helper.set_model_props(
        model,
        {
            "manifest_schema": MANIFEST_SCHEMA,
            "exporter": exporter,
            "action_mode": spec.mode,
            "n_assets": str(spec.n_assets),
            "obs_dim": str(params.obs_dim),
            "proposal_columns": json.dumps(columns),
        },
    )
    return exporter


def _session(data: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_metrics(run_dir: str | Path | None) -> dict[str, Any]:
    """Training and evaluation metrics found in a run directory (empty when none)."""
    if run_dir is None:
        return {}
    d = Path(run_dir)
    out: dict[str, Any] = {}
    summary = _read_json(d / "train_summary.json")
    if summary is not None:
        out["train_summary"] = summary
    best = _read_json(d / "best" / "eval.json")
    if best is not None:
        out["best_evaluation"] = best
    ev = d / "evaluations.jsonl"
    if ev.is_file():
        lines = [ln for ln in ev.read_text().splitlines() if ln.strip()]
        if lines:
            try:
                out["last_evaluation"] = json.loads(lines[-1])
            except ValueError:
                pass
    return _json_safe(out)


def _json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats as None and numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def export_model(
    model: BaseAlgorithm,
    vecnormalize: VecNormalize | None,
    cfg: AllocgymConfig,
    out_dir: str | Path,
    *,
    market: MarketData | None = None,
    n_recorded: int = 5_120,
    n_random: int = 5_120,
    seed: int = 0,
    metrics: dict[str, Any] | None = None,
    run_info: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
    sign_key: str | Path | None = None,
) -> FrozenPolicy:
    """Export ``model`` into a bundle folder and return it loaded by the runtime.

    Parameters
    ----------
    model : BaseAlgorithm
        A trained PPO, A2C or SAC model (``load_agent``).
    vecnormalize : VecNormalize or None
        Frozen observation statistics of training.
    cfg : AllocgymConfig
        The run's resolved config (goes into the manifest with its hash).
    out_dir : path
        Bundle folder (created; must be empty unless ``overwrite``).
    market : MarketData, optional
        The market the policy trades (symbols, sectors, parity rollouts); default
        ``load_market(cfg.data)``.
    n_recorded, n_random : int
        Parity observations from env rollouts and uniform points of the observation box.
        ``allocgym export`` uses the defaults (10 240 in total).
    seed : int
        Seed of the parity rollouts and random points.
    metrics, run_info : dict, optional
        Training / evaluation metrics and run identifiers for the manifest; ``run_info``'s
        ``data``, the run's ``allocgym.ledger.run_data`` record, makes a market of other
        symbols a refusal and goes into the manifest (``run.data``).
    overwrite : bool
        Replace an existing bundle in ``out_dir``.
    progress : callable, optional
        ``progress(stage)`` with a short description as each stage starts (the market
        and features, the ONNX graph, the parity observations, the parity check, the
        bundle).
    sign_key : path, optional
        PEM file of an Ed25519 private key (``allocgym keygen``): the bundle gets a
        ``seal.sig`` over its seal digest. Read before any work starts.

    Raises
    ------
    ExportParityError
        ONNX and SB3 proposals differ by more than ``PARITY_TOL`` on some observation.
    ConfigError
        Unsupported policy (RecurrentPPO), a model trained on another universe or action
        mode, a non-empty ``out_dir``, a ``sign_key`` that is not an Ed25519 private key,
        or parity counts below 0, above ``MAX_PARITY_OBS`` or both 0 (a bundle checked on
        nothing).
    """
    counts_ok = all(0 <= n <= MAX_PARITY_OBS for n in (n_recorded, n_random))
    if not counts_ok or n_recorded + n_random == 0:
        raise ConfigError(
            f"parity observations n_recorded={n_recorded}, n_random={n_random}: each must be "
            f"in 0..{MAX_PARITY_OBS:,} and at least one > 0 (allocgym export warns below "
            f"{MIN_PARITY_OBS:,} in all)"
        )
    signing_key = None if sign_key is None else load_signing_key(sign_key)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(
            f"export folder {str(out)!r} is not empty: choose a new --out or pass --overwrite (overwrite=True)"
        )
    say = progress or (lambda _stage: None)
    say("loading the market and precomputing features")
    if market is None:
        market = load_market(cfg.data)
    check_symbols((run_info or {}).get("data"), market, "the policy")
    params = build_params(market, cfg, "all")
    if model.observation_space.shape != (params.obs_dim,):
        raise ConfigError(
            f"model observation shape {model.observation_space.shape} != env obs_dim "
            f"{params.obs_dim}: the model was trained on another universe or feature config"
        )
    with _one_torch_thread():
        return _export(
            model, vecnormalize, cfg, out, market, params, n_recorded, n_random, seed, metrics,
            run_info, say, signing_key,
        )  # fmt: skip


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Torch on one thread: small batches on a shared machine are far faster without the
    OpenMP pool, and the parity numbers do not depend on the thread count."""
    prev = th.get_num_threads()
    th.set_num_threads(1)
    try:
        yield
    finally:
        th.set_num_threads(prev)


def _checked_parity(
    core: bytes,
    agent: SB3PolicyAllocator,
    params: EnvParams,
    n_recorded: int,
    n_random: int,
    seed: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Run the ONNX model ``core`` and the SB3 policy on recorded and random observations.

    Returns
    -------
    dict
        The parity record of the manifest.

    Raises
    ------
    ExportParityError
        The proposals differ by more than ``PARITY_TOL``.
    """
    say(f"recording {n_recorded:,} parity observations from env rollouts (+{n_random:,} random)")
    obs = parity_observations(params, agent, n_recorded=n_recorded, n_random=n_random, seed=seed)
    say(f"checking ONNX against SB3 on {len(obs):,} observations")
    session = _session(core)
    parity = _check_parity(session, agent, obs, chunk=1024)
    parity.update(n_recorded=int(n_recorded), n_random=int(n_random), seed=int(seed))
    # Serving calls the graph one row at a time, and live observations can leave the box
    # (the graph clips them as VecNormalize does): both checked as well.
    lo, hi = params.obs_low.astype(np.float64), params.obs_high.astype(np.float64)
    rng = np.random.default_rng([seed, 1])
    outside = rng.uniform(lo - 2.0 * (hi - lo), hi + 2.0 * (hi - lo), (OUTSIDE_ROWS, len(lo)))
    extra = {
        "one_row": _check_parity(session, agent, obs[:ONE_ROW_ROWS], chunk=1),
        "outside_box": _check_parity(session, agent, outside.astype(np.float32), chunk=1024),
    }
    for name, part in extra.items():
        parity[name] = {k: part[k] for k in ("n_observations", "max_abs_diff_proposal",
                                             "max_abs_diff_action")}  # fmt: skip
    for name, part in (("", parity), *((f"{k} ", v) for k, v in extra.items())):
        if not part["max_abs_diff_proposal"] <= PARITY_TOL:
            raise ExportParityError(
                f"ONNX and SB3 proposals differ by {part['max_abs_diff_proposal']:.3g} > "
                f"{PARITY_TOL:g} on {name}observation {part['worst_observation']} of "
                f"{part['n_observations']} (actions differ by "
                f"{part['max_abs_diff_action']:.3g}): the policy uses an op the export does "
                "not reproduce; nothing was written"
            )
    return parity


def _manifest(
    model: BaseAlgorithm,
    vecnormalize: VecNormalize | None,
    cfg: AllocgymConfig,
    market: MarketData,
    params: EnvParams,
    proto: onnx.ModelProto,
    graph: ExportGraph,
    exporter: str,
    columns: list[str],
    parity: dict[str, Any],
    metrics: dict[str, Any] | None,
    run_info: dict[str, Any] | None,
) -> dict[str, Any]:
    """The bundle manifest before sealing: the model's interface, the observation,
    action and proposal layouts, the risk, cost and execution settings, the config, the
    market span, metrics, parity and versions."""
    spec = params.action_spec
    algo = cfg.train.algo
    fb = params.feature_builder
    n_out = proposal_dim(spec)
    norm = graph.norm
    return {
        "schema": MANIFEST_SCHEMA,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "algo": algo,
        "policy": {"class": type(model.policy).__name__, "train_policy": cfg.train.policy},
        "model": {
            "file": MODEL_FILE,
            "opset": ONNX_OPSET,
            "ir_version": int(proto.ir_version),
            "producer": f"{proto.producer_name} {proto.producer_version}",
            "exporter": exporter,
            "inputs": {INPUT_NAME: {"dtype": "float32", "shape": ["batch", params.obs_dim]}},
            "outputs": {
                ACTION_OUTPUT: {"dtype": "float32", "shape": ["batch", spec.action_dim]},
                PROPOSAL_OUTPUT: {"dtype": "float64", "shape": ["batch", n_out]},
            },
        },
        "symbols": list(market.symbols),
        "sectors": list(market.sectors),
        "sector_ids": [int(s) for s in market.sector_ids],
        "features": fb.layout(market.n_assets),
        "observation": {
            "obs_dim": params.obs_dim,
            "dtype": "float32",
            "names": fb.observation_names(market.symbols),
            "normalization": {
                "in_graph": norm is not None,
                "clip": None if norm is None else norm.clip,
                "epsilon": None if vecnormalize is None else float(vecnormalize.epsilon),
            },
        },
        "action": spec.layout(),
        "proposal": {
            "kind": spec.mode,
            "dim": n_out,
            "columns": columns,
        },
        "tilt": (
            {"prior": cfg.env.tilt_prior, "lookback": int(cfg.baselines.lookback)}
            if spec.mode == "tilt"
            else None
        ),
        "decision_interval": int(cfg.env.decision_interval),
        "risk_limits": RiskLimits.from_config(cfg.risk).to_dict(),
        "cost_model": asdict(CostModel.from_config(cfg.costs)),
        "execution": {
            k: _plain(v) for k, v in asdict(ExecutionParams.from_config(cfg.execution)).items()
        },
        "config": cfg.model_dump(mode="json"),
        "config_hash": config_hash(cfg),
        "market": {
            "source": cfg.data.source,
            "n_days": int(market.n_days),
            "first_date": str(np.datetime_as_string(market.dates[0], unit="D")),
            "last_date": str(np.datetime_as_string(market.dates[-1], unit="D")),
        },
        "metrics": _json_safe(metrics or {}),
        "parity": parity,
        "run": run_info or {},
        "versions": package_versions(),
    }


def _write_bundle(
    out: Path, data: bytes, manifest: dict[str, Any], say: Callable[[str], None]
) -> None:
    """Write the model and manifest into ``out``, each replaced atomically."""
    say(f"writing the bundle to {out}")
    out.mkdir(parents=True, exist_ok=True)
    # A signature from an earlier export into this folder signs another seal.
    (out / SIGNATURE_FILE).unlink(missing_ok=True)
    tmp_model = out / f".{MODEL_FILE}.tmp"
    tmp_model.write_bytes(data)
    os.replace(tmp_model, out / MODEL_FILE)
    tmp_manifest = out / f".{MANIFEST_FILE}.tmp"
    tmp_manifest.write_text(json.dumps(manifest, indent=1, allow_nan=False) + "\n")
    os.replace(tmp_manifest, out / MANIFEST_FILE)


def _export(
    model: BaseAlgorithm,
    vecnormalize: VecNormalize | None,
    cfg: AllocgymConfig,
    out: Path,
    market: MarketData,
    params: EnvParams,
    n_recorded: int,
    n_random: int,
    seed: int,
    metrics: dict[str, Any] | None,
    run_info: dict[str, Any] | None,
    say: Callable[[str], None],
    sign_key: Ed25519PrivateKey | None,
) -> FrozenPolicy:
    """Trace, check, seal and write the bundle (see :func:`export_model`); its policy
    loaded back."""
    spec = params.action_spec
    say("tracing the ONNX graph")
    agent = SB3PolicyAllocator(model, vecnormalize, spec)
    actor = actor_module(model).to("cpu").eval()
    graph = ExportGraph(actor, TorchActionMap(spec), _normalizer(vecnormalize)).eval()
    with th.no_grad():
        traced = _onnx_bytes(graph, params.obs_dim)
    proto = onnx.load_model_from_string(traced)
    onnx.checker.check_model(proto, full_check=True)
    columns = proposal_columns(spec, market.symbols)
    exporter = _annotate(proto, spec, params, columns)
    # The model's bytes before the model id is stamped in: what the parity check runs
    # and the seal covers.
    core = proto.SerializeToString(deterministic=True)

    parity = _checked_parity(core, agent, params, n_recorded, n_random, seed, say)
    manifest = _manifest(
        model,
        vecnormalize,
        cfg,
        market,
        params,
        proto,
        graph,
        exporter,
        columns,
        parity,
        metrics,
        run_info,
    )
    # Sealed as it will read back from disk (tuples become lists, no numpy scalars).
    manifest = json.loads(json.dumps(manifest, allow_nan=False))
    seal = compute_seal(manifest, core)
    model_id = derive_model_id(cfg.train.algo, seal["digest"])
    data = stamp_model_id(proto, model_id)
    manifest["model_id"] = model_id
    manifest["model"].update(sha256=sha256_file_bytes(data), bytes=len(data))
    manifest["seal"] = seal
    _write_bundle(out, data, manifest, say)
    if sign_key is None:
        return FrozenPolicy.load(out)
    sign_bundle(out, seal["digest"], sign_key)
    # Loaded back with the signature required: a bundle that ships signed verifies.
    return FrozenPolicy.load(out, public_key=sign_key.public_key())


def proposal_dim(spec: ActionSpec) -> int:
    """Columns of the graph's ``proposal`` output for an action mode."""
    return {"weights": spec.n_assets, "budgets": spec.n_strategies + 1,
            "tilt": spec.n_assets + 1}[spec.mode]  # fmt: skip


def proposal_columns(spec: ActionSpec, symbols: Any) -> list[str]:
    """Names of the ``proposal`` columns (symbols, strategy budgets, or tilts + gross)."""
    if spec.mode == "weights":
        return list(symbols)
    if spec.mode == "tilt":
        return [*symbols, "gross"]
    return [*STRATEGY_FAMILIES[: spec.n_strategies], "cash"]


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    which: str = "best",
    n_recorded: int = 5_120,
    n_random: int = 5_120,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
    sign_key: str | Path | None = None,
) -> FrozenPolicy:
    """``allocgym export``: load a training run (``load_agent``) and export it.

    ``which = "best"`` falls back to ``"final"`` when the run has no best model yet.
    See :func:`export_model` for the rest (``progress(stage)`` as each stage starts,
    ``sign_key`` for a signed bundle).
    """
    from allocgym.agents.train import load_agent

    run = Path(run_dir)
    chosen = which
    if which == "best" and not (run / "best" / "model.zip").is_file():
        chosen = "final"
    model, vn, cfg = load_agent(run, chosen, device="cpu")
    info = {"run_dir": str(run.resolve()), "which": chosen, "step": int(model.num_timesteps),
            "data": read_run_data(run), "versions": _read_json(run / "versions.json")}  # fmt: skip
    return export_model(
        model,
        vn,
        cfg,
        out_dir,
        n_recorded=n_recorded,
        n_random=n_random,
        seed=seed,
        metrics=run_metrics(run),
        run_info=info,
        overwrite=overwrite,
        progress=progress,
        sign_key=sign_key,
    )
