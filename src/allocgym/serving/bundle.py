"""Frozen-policy bundle: ``model.onnx`` + ``manifest.json``, verified before anything runs.

A bundle is a folder written by ``allocgym export`` (``allocgym.agents.export``)::

    model.onnx      the policy graph: observation normalisation (frozen VecNormalize
                    statistics and clip), the deterministic actor and the action ->
                    proposal map (softmax with cash, bounded long/short, or strategy
                    budgets); input ``obs`` float32 (batch, obs_dim), outputs ``action``
                    float32 (batch, action_dim) and ``proposal`` float64 (batch, n_out)
    manifest.json   schema version, symbols and sectors, feature layout, observation and
                    action layout, risk limits, cost model and execution parameters of
                    training, the resolved config and its hash, the sha256 of
                    ``model.onnx``, metrics, package versions, the export parity report

:meth:`FrozenPolicy.load` refuses a bundle whose model bytes do not hash to the
manifest's sha256, whose manifest schema or ONNX opset is not the supported one, whose
graph uses external data or a custom operator domain, whose input/output shapes disagree
with the manifest's layout, or whose manifest points at a file outside the bundle. The
model then runs in onnxruntime with one intra-op and one inter-op thread (sequential,
deterministic). Nothing here imports torch, stable-baselines3 or gymnasium, and nothing
unpickles: the manifest is JSON and the model is parsed as protobuf.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from allocgym.errors import BundleError

MANIFEST_SCHEMA = "allocgym.bundle/1"
"""Version tag of ``manifest.json`` (bump when a key changes meaning)."""

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
ONNX_OPSET = 17
"""The one default-domain opset bundles are exported with and loaded at."""

INPUT_NAME = "obs"
ACTION_OUTPUT = "action"
PROPOSAL_OUTPUT = "proposal"

_REQUIRED_KEYS = (
    "schema",
    "model_id",
    "model",
    "symbols",
    "sectors",
    "sector_ids",
    "features",
    "observation",
    "action",
    "proposal",
    "risk_limits",
    "cost_model",
    "config",
    "config_hash",
)
_MAX_MANIFEST_BYTES = 64 * 2**20


def sha256_file_bytes(data: bytes) -> str:
    """sha256 (hex) of a byte string."""
    return hashlib.sha256(data).hexdigest()


def _bundle_file(root: Path, name: object, what: str) -> Path:
    """``root / name`` for a plain file name inside the bundle (no folders, links or ``..``)."""
    if not isinstance(name, str) or not name or name in (".", ".."):
        raise BundleError(f"manifest {what} = {name!r}: must be a plain file name in the bundle")
    if "/" in name or "\\" in name or Path(name).is_absolute() or Path(name).name != name:
        raise BundleError(
            f"manifest {what} = {name!r} points outside the bundle folder {str(root)!r}: "
            "bundles hold plain file names only; re-export the bundle"
        )
    path = root / name
    if path.is_symlink():
        raise BundleError(
            f"{str(path)!r} is a symbolic link: a bundle must contain the file itself "
            "(copy it in, or re-export)"
        )
    resolved = path.resolve()
    if resolved.parent != root.resolve():
        raise BundleError(f"{str(path)!r} resolves outside the bundle folder {str(root)!r}")
    if not resolved.is_file():
        raise BundleError(f"bundle file {str(path)!r} is missing: re-export the bundle")
    return resolved


def _iter_tensors(graph: onnx.GraphProto) -> Any:
    """Every TensorProto of a graph: initializers and attribute tensors, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _iter_tensors(attr.g)
            for sub in attr.graphs:
                yield from _iter_tensors(sub)


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


_ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64"}


def check_model_proto(model: onnx.ModelProto, manifest: Mapping[str, Any]) -> None:
    """Check opset, external data, operator domains and I/O shapes against the manifest.

    Raises
    ------
    BundleError
        Naming what disagrees.
    """
    opsets = {imp.domain or "": imp.version for imp in model.opset_import}
    if set(opsets) - {"", "ai.onnx"}:
        raise BundleError(
            f"model.onnx imports operator domains {sorted(set(opsets) - {'', 'ai.onnx'})}: "
            "only the default ONNX domain is allowed (no custom operators)"
        )
    opset = opsets.get("", opsets.get("ai.onnx"))
    declared = manifest["model"].get("opset")
    if opset != ONNX_OPSET or declared != ONNX_OPSET:
        raise BundleError(
            f"model.onnx opset {opset} (manifest says {declared}); this runtime loads opset "
            f"{ONNX_OPSET} only: re-export the bundle with this allocgym version"
        )
    for tensor in _iter_tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise BundleError(
                f"model.onnx tensor {tensor.name!r} uses external data: bundles must be "
                "self-contained (re-export; allocgym writes no external data)"
            )
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise BundleError(
                f"model.onnx node {node.name!r} uses operator domain {node.domain!r}: only "
                "the default ONNX domain is allowed"
            )
    inputs = {v.name: v for v in model.graph.input}
    init_names = {t.name for t in model.graph.initializer}
    real_inputs = [n for n in inputs if n not in init_names]
    obs_dim = int(manifest["observation"]["obs_dim"])
    if real_inputs != [INPUT_NAME]:
        raise BundleError(
            f"model.onnx inputs {real_inputs}: expected exactly [{INPUT_NAME!r}]; re-export"
        )
    vi = inputs[INPUT_NAME]
    if vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT or _dims(vi)[1:] != [obs_dim]:
        raise BundleError(
            f"model.onnx input {INPUT_NAME!r} is {_ONNX_DTYPES.get(vi.type.tensor_type.elem_type)} "
            f"{_dims(vi)}, manifest layout says float32 (batch, {obs_dim}): the bundle's "
            "model and manifest do not belong together"
        )
    outputs = {v.name: v for v in model.graph.output}
    n_out = int(manifest["proposal"]["dim"])
    action_dim = int(manifest["action"]["action_dim"])
    expect = {
        ACTION_OUTPUT: (onnx.TensorProto.FLOAT, action_dim),
        PROPOSAL_OUTPUT: (onnx.TensorProto.DOUBLE, n_out),
    }
    for name, (dtype, dim) in expect.items():
        if name not in outputs:
            raise BundleError(f"model.onnx has no output {name!r} (outputs: {sorted(outputs)})")
        out = outputs[name]
        if out.type.tensor_type.elem_type != dtype or _dims(out)[1:] != [dim]:
            raise BundleError(
                f"model.onnx output {name!r} is {_ONNX_DTYPES.get(out.type.tensor_type.elem_type)} "
                f"{_dims(out)}, manifest layout says {_ONNX_DTYPES[dtype]} (batch, {dim})"
            )


def check_manifest(manifest: Mapping[str, Any]) -> None:
    """Structural checks of a parsed manifest (keys, schema, internal consistency).

    Raises
    ------
    BundleError
    """
    if not isinstance(manifest, Mapping):
        raise BundleError("manifest.json must hold a JSON object")
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise BundleError(
            f"manifest schema {manifest.get('schema')!r}: this runtime reads {MANIFEST_SCHEMA!r}; "
            "re-export the bundle with this allocgym version"
        )
    missing = [k for k in _REQUIRED_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"manifest.json lacks keys {missing}: re-export the bundle")
    symbols = manifest["symbols"]
    if (
        not isinstance(symbols, list)
        or not symbols
        or not all(isinstance(s, str) and s for s in symbols)
        or len(set(symbols)) != len(symbols)
    ):
        raise BundleError("manifest symbols must be a non-empty list of distinct strings")
    n = len(symbols)
    if len(manifest["sectors"]) != n or len(manifest["sector_ids"]) != n:
        raise BundleError(
            f"manifest has {n} symbols but {len(manifest['sectors'])} sectors and "
            f"{len(manifest['sector_ids'])} sector ids"
        )
    feats = manifest["features"]
    obs = manifest["observation"]
    expected = n * int(feats["n_asset_features"]) + int(feats["n_global_features"])
    if (
        int(feats["n_assets"]) != n
        or int(obs["obs_dim"]) != expected
        or int(feats["obs_dim"]) != expected
    ):
        raise BundleError(
            f"manifest layout disagrees with itself: {n} symbols x "
            f"{feats['n_asset_features']} asset features + {feats['n_global_features']} "
            f"globals = {expected}, observation.obs_dim = {obs['obs_dim']}"
        )
    action = manifest["action"]
    proposal = manifest["proposal"]
    if action.get("mode") != proposal.get("kind"):
        raise BundleError(
            f"manifest action mode {action.get('mode')!r} != proposal kind {proposal.get('kind')!r}"
        )
    kind = proposal.get("kind")
    want = {"weights": n, "tilt": n + 1}.get(str(kind), int(action["n_strategies"]) + 1)
    if kind == "tilt" and not isinstance(manifest.get("tilt"), Mapping):
        raise BundleError("manifest of a tilt-mode policy lacks its 'tilt' prior: re-export")
    if int(proposal["dim"]) != want:
        raise BundleError(f"manifest proposal dim {proposal['dim']} != expected {want}")


@dataclass(frozen=True, eq=False)
class FrozenPolicy:
    """A verified ONNX policy: float32 observations in, proposals out (torch-free).

    Build with :meth:`load`. Calling it maps a batch of raw observations (the
    ``FeatureBuilder`` layout, float32 ``(n_envs, obs_dim)``) to the graph's proposal:
    weights ``(n_envs, n_assets)`` in ``weights`` mode, strategy budgets
    ``(n_envs, n_strategies + 1)`` (cash last) in ``budgets`` mode, float64. The graph
    holds the normalisation and the action map, so nothing is post-processed here.

    Attributes
    ----------
    path : Path
        Bundle folder.
    manifest : dict
        Parsed ``manifest.json``.
    sha256 : str
        sha256 of ``model.onnx`` (verified).
    model_id : str
    symbols : tuple of str
    mode : {"weights", "budgets"}
    obs_dim, n_out : int
    name : str
        ``"frozen:" + model_id`` (label in reports).
    """

    path: Path
    manifest: dict[str, Any]
    sha256: str
    model_id: str
    symbols: tuple[str, ...]
    mode: str
    obs_dim: int
    n_out: int
    name: str
    _session: ort.InferenceSession

    @classmethod
    def load(cls, path: str | Path) -> FrozenPolicy:
        """Verify and load a bundle folder.

        Parameters
        ----------
        path : str or Path
            Folder holding ``manifest.json`` and the model file it names.

        Raises
        ------
        BundleError
            Missing files, a sha256 mismatch (corrupted or swapped model), an unsupported
            manifest schema or opset, external data, custom operators, a path outside the
            bundle, or a layout that disagrees between manifest and graph.
        """
        root = Path(path)
        if not root.is_dir():
            raise BundleError(f"bundle {str(root)!r} is not a folder: pass the export --out folder")
        mpath = _bundle_file(root, MANIFEST_FILE, "manifest")
        raw = mpath.read_bytes()
        if len(raw) > _MAX_MANIFEST_BYTES:
            raise BundleError(f"{str(mpath)!r} is {len(raw)} bytes: not a bundle manifest")
        try:
            manifest = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise BundleError(f"{str(mpath)!r} is not valid JSON ({err}): re-export") from None
        check_manifest(manifest)
        model_meta = manifest["model"]
        model_path = _bundle_file(root, model_meta.get("file"), "model.file")
        data = model_path.read_bytes()
        digest = sha256_file_bytes(data)
        declared = str(model_meta.get("sha256", ""))
        if digest != declared:
            raise BundleError(
                f"{str(model_path)!r} has sha256 {digest}, the manifest says {declared}: the "
                "model file is corrupted or was replaced; restore the bundle or re-export"
            )
        try:
            proto = onnx.load_model_from_string(data)
        except Exception as err:  # protobuf decode errors have no common base class
            raise BundleError(f"{str(model_path)!r} is not an ONNX model ({err})") from None
        check_model_proto(proto, manifest)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        # Bytes, not a path: the session runs exactly what was hashed, and has no folder
        # to resolve external data against.
        try:
            session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BundleError(f"onnxruntime refused {str(model_path)!r}: {err}") from None
        mode = str(manifest["proposal"]["kind"])
        return cls(
            path=root,
            manifest=manifest,
            sha256=digest,
            model_id=str(manifest["model_id"]),
            symbols=tuple(manifest["symbols"]),
            mode=mode,
            obs_dim=int(manifest["observation"]["obs_dim"]),
            n_out=int(manifest["proposal"]["dim"]),
            name=f"frozen:{manifest['model_id']}",
            _session=session,
        )

    @property
    def config_hash(self) -> str:
        """Config hash of the training run (from the manifest)."""
        return str(self.manifest["config_hash"])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Proposals for a batch of raw observations.

        Parameters
        ----------
        obs : ndarray, shape (n_envs, obs_dim)
            Raw (unnormalised) observations; cast to float32.

        Returns
        -------
        ndarray, shape (n_envs, n_out), float64
        """
        x = np.ascontiguousarray(obs, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.obs_dim:
            raise ValueError(
                f"observations have shape {x.shape}, the bundle expects (n_envs, {self.obs_dim})"
            )
        return self._session.run([PROPOSAL_OUTPUT], {INPUT_NAME: x})[0]

    def actions(self, obs: np.ndarray) -> np.ndarray:
        """The actor's actions (before the action map), float32 (n_envs, action_dim)."""
        x = np.ascontiguousarray(obs, dtype=np.float32)
        return self._session.run([ACTION_OUTPUT], {INPUT_NAME: x})[0]

    def describe(self) -> dict[str, Any]:
        """Model id, hashes and layout summary (for ``/healthz`` and reports)."""
        return {
            "model_id": self.model_id,
            "sha256": self.sha256,
            "config_hash": self.config_hash,
            "mode": self.mode,
            "n_assets": len(self.symbols),
            "obs_dim": self.obs_dim,
            "opset": ONNX_OPSET,
            "algo": self.manifest.get("algo"),
        }
