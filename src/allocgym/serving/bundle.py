"""Frozen-policy bundle: ``model.onnx`` + ``manifest.json``, verified before anything runs.

A bundle is a folder written by ``allocgym export`` (``allocgym.agents.export``)::

    model.onnx      the policy graph: observation normalisation (frozen VecNormalize
                    statistics and clip), the deterministic actor and the action ->
                    proposal map (softmax with cash, bounded long/short, or strategy
                    budgets); input ``obs`` float32 (batch, obs_dim), outputs ``action``
                    float32 (batch, action_dim) and ``proposal`` float64 (batch, n_out);
                    producer ``allocgym``, a doc string on every input and output, and
                    ``metadata_props`` naming the layout and, last, the ``model_id``
    manifest.json   schema version, symbols and sectors, feature layout, observation and
                    action layout, risk limits, cost model and execution parameters of
                    training, the resolved config and its hash, the sha256 of
                    ``model.onnx``, metrics, package versions, the export parity report,
                    and the seal
    seal.sig        optional: an Ed25519 signature over the seal digest

``proposal`` stays float64 on purpose: the action map lands exactly on its caps (a
saturated long/short action is ``max_symbol_weight``, a scaled book has gross exactly
``max_gross``), and the gates compare limits with a 1e-12 relative tolerance. Rounded to
float32, ``0.3`` becomes ``0.30000001``: the gates would clip and code a symbol-cap
intervention that the float64 map of training never triggers.

The seal is one sha256 digest over the canonical JSON of the manifest (every key but
``model_id`` and ``seal`` themselves and the model file's own ``sha256`` and ``bytes``)
and the model's bytes without its ``model_id`` metadata entry; ``model_id`` is
``"{algo}-" + digest[:12]``, so it changes whenever the model or anything in the manifest
does. Canonical JSON has sorted keys, ``(",", ":")`` separators, ASCII text and floats as
Python's shortest round-trip ``repr``, so a manifest read back from disk reproduces the
digest bit for bit. The seal also records one hash per manifest section, so a mismatch
names what was edited. The seal detects edits made without re-running the export; an
editor who recomputes the seal as well is stopped only by a signature
(``FrozenPolicy.load(path, public_key=...)``, ``allocgym serve --require-signature``).

:meth:`FrozenPolicy.load` refuses a bundle whose model bytes do not hash to the
manifest's sha256, whose manifest schema or ONNX opset is not the supported one, whose
graph uses external data or a custom operator domain, whose input/output shapes disagree
with the manifest's layout, whose manifest points at a file outside the bundle, whose
contents do not match the seal, whose ``risk_limits`` or ``cost_model`` are not what its
config derives, or (when a public key is given) whose signature is missing or does not
verify. The model then runs in onnxruntime with one intra-op and one inter-op thread
(sequential, deterministic). Nothing here imports torch, stable-baselines3 or gymnasium,
and nothing unpickles: the manifest is JSON and the model is parsed as protobuf.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime as ort
from pydantic import ValidationError

from allocgym.config import CostConfig, RiskConfig
from allocgym.costs import CostModel
from allocgym.errors import BundleError, ConfigError
from allocgym.risk import RiskLimits

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

MANIFEST_SCHEMA = "allocgym.bundle/2"
"""Version tag of ``manifest.json`` (bump when a key changes meaning)."""

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "seal.sig"
MODEL_ID_KEY = "model_id"
"""Key of the ONNX ``metadata_props`` entry naming the model id (always the last entry)."""
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
    "seal",
)
_MAX_MANIFEST_BYTES = 64 * 2**20
_MAX_SIGNATURE_BYTES = 64 * 2**10
_MAX_MODEL_BYTES = 2**31  # protobuf's own limit on one message
_SEAL_KEYS = frozenset({"algorithm", "digest", "model_sha256", "sections"})
_SIGNATURE_KEYS = frozenset({"algorithm", "seal", "key", "signature"})
# Domain tags keep a seal digest and a signed message from ever meaning anything else.
_SEAL_TAG = b"allocgym.bundle-seal/1\n"
_SIGNATURE_TAG = b"allocgym.bundle-signature/1\n"
_UNSEALED_KEYS = ("model_id", "seal")
# The model file's own hash and size cover the bytes with the model id stamped in, which
# derives from the seal: the seal covers the model's bytes without that stamp instead.
_UNSEALED_MODEL_KEYS = ("sha256", "bytes")


def sha256_file_bytes(data: bytes) -> str:
    """sha256 (hex) of a byte string."""
    return hashlib.sha256(data).hexdigest()


def _read_limited(path: Path, limit: int, what: str, fix: str = "re-export the bundle") -> bytes:
    """The bytes of ``path``, refused (naming ``fix``) before they are read when over
    ``limit`` (a huge or sparse file must not fill the memory of the process that checks
    it)."""
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        data = fh.read(size + 1) if size <= limit else b""  # read(n) allocates n first
        while size <= limit and len(data) <= limit:  # a file that grew since fstat
            more = fh.read(2**20)
            if not more:
                break
            data += more
    if size > limit or len(data) > limit:
        raise BundleError(
            f"{str(path)!r} is {max(size, len(data))} bytes, over the {limit} a {what} may "
            f"hold: it is not one written by allocgym export; {fix}"
        )
    return data


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a repeated key: readers disagree on which
    of two copies counts (Python's json keeps the last, others the first), so a signed
    file could show one value and mean another."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        repeated = sorted({k for k, _ in pairs if k in seen or seen.add(k)})
        raise ValueError(f"repeated keys {repeated}")
    return out


def _json_file(path: Path, raw: bytes, what: str, fix: str) -> Any:
    """``raw`` (the bytes of ``path``, ``what`` it should be) parsed as JSON without
    repeated keys.

    Raises
    ------
    BundleError
        Not UTF-8 JSON, a repeated key, or nesting too deep to parse; naming ``fix``.
    """
    try:
        return json.loads(raw, object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        why = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise BundleError(f"{str(path)!r} is not {what} ({why}): {fix}") from None


def _bundle_file(root: Path, name: object, what: str) -> Path:
    """``root / name`` for a plain file name inside the bundle (no folders, links or ``..``)."""
    if not isinstance(name, str) or not name or name in (".", "..") or "\x00" in name:
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
    try:
        _check_proto(model, manifest)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        # a manifest layout value of the wrong JSON type, or missing
        raise BundleError(
            f"manifest.json is malformed ({type(err).__name__}: {err}): re-export the bundle"
        ) from None


def _check_proto(model: onnx.ModelProto, manifest: Mapping[str, Any]) -> None:
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
    try:
        _check_layout(manifest)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        # a value of the wrong JSON type (a number for a list, a list for an object)
        raise BundleError(
            f"manifest.json is malformed ({type(err).__name__}: {err}): re-export the bundle"
        ) from None


def _check_layout(manifest: Mapping[str, Any]) -> None:
    """The internal consistency :func:`check_manifest` checks; a value of the wrong JSON
    type raises KeyError, TypeError, ValueError or AttributeError."""
    for key in ("model", "features", "observation", "action", "proposal"):
        if not isinstance(manifest[key], Mapping):
            raise TypeError(f"manifest {key!r} must be a JSON object")
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


# ------------------------------------------------------------------------------ seal


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON bytes of ``obj``: sorted keys, ``(",", ":")`` separators, ASCII.

    Floats are written as Python's shortest round-trip ``repr``, so a value read back from
    any JSON file serialises to the same bytes.

    Raises
    ------
    ValueError
        For NaN or an infinity (not JSON) or a value JSON cannot hold.
    """
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def sealed_content(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a manifest the seal covers (see the module docstring)."""
    content = {k: v for k, v in manifest.items() if k not in _UNSEALED_KEYS}
    model = content.get("model")
    if isinstance(model, Mapping):
        content["model"] = {k: v for k, v in model.items() if k not in _UNSEALED_MODEL_KEYS}
    return content


def compute_seal(manifest: Mapping[str, Any], model_core: bytes) -> dict[str, Any]:
    """The seal of a manifest and the model's bytes without the ``model_id`` stamp.

    Parameters
    ----------
    manifest : mapping
        The manifest (its ``model_id``, ``seal``, ``model.sha256`` and ``model.bytes``
        are ignored).
    model_core : bytes
        ``model.onnx`` without its ``model_id`` metadata entry (:func:`model_core_bytes`).

    Returns
    -------
    dict
        ``algorithm`` ("sha256"), ``digest`` (hex), ``model_sha256`` (of ``model_core``)
        and ``sections`` (the sha256 of each sealed top-level manifest key).
    """
    content = sealed_content(manifest)
    body = canonical_json(content)
    # The canonical body holds no raw newline, so the separator is unambiguous.
    digest = hashlib.sha256(_SEAL_TAG + body + b"\n" + model_core).hexdigest()
    return {
        "algorithm": "sha256",
        "digest": digest,
        "model_sha256": sha256_file_bytes(model_core),
        "sections": {k: sha256_file_bytes(canonical_json(v)) for k, v in content.items()},
    }


def derive_model_id(algo: str, digest: str) -> str:
    """``model_id`` of a sealed bundle: the algorithm and the seal digest's first 12 hex."""
    return f"{algo}-{digest[:12]}"


def stamp_model_id(model: onnx.ModelProto, model_id: str) -> bytes:
    """Serialised ``model`` with ``model_id`` appended as its last ``metadata_props`` entry."""
    stamped = onnx.ModelProto()
    stamped.CopyFrom(model)
    entry = stamped.metadata_props.add()
    entry.key = MODEL_ID_KEY
    entry.value = model_id
    return stamped.SerializeToString(deterministic=True)


def model_core_bytes(model: onnx.ModelProto) -> bytes:
    """Serialised ``model`` without its trailing ``model_id`` entry (what the seal covers).

    Raises
    ------
    BundleError
        When the last ``metadata_props`` entry is not the model id.
    """
    props = model.metadata_props
    if not props or props[-1].key != MODEL_ID_KEY:
        raise BundleError(
            f"model.onnx has no {MODEL_ID_KEY!r} as its last metadata entry: it was not "
            "written by allocgym export (or was re-saved by another tool); re-export the bundle"
        )
    core = onnx.ModelProto()
    core.CopyFrom(model)
    del core.metadata_props[-1]
    return core.SerializeToString(deterministic=True)


def verify_seal(manifest: Mapping[str, Any], model: onnx.ModelProto) -> str:
    """Recompute the seal of a loaded bundle and refuse any difference.

    Returns
    -------
    str
        The seal digest.

    Raises
    ------
    BundleError
        Naming the manifest sections or the model that no longer match the seal, or a
        ``model_id`` (in the manifest or the model's metadata) that is not the one the
        seal derives.
    """
    seal = manifest["seal"]
    if (
        not isinstance(seal, Mapping)
        or set(seal) != _SEAL_KEYS
        or seal.get("algorithm") != "sha256"
        or not isinstance(seal.get("sections"), Mapping)
    ):
        raise BundleError(
            "manifest seal must be an object with algorithm 'sha256', a digest, the model "
            "sha256 and the section hashes, and nothing else: re-export the bundle"
        )
    try:
        fresh = compute_seal(manifest, model_core_bytes(model))
    except ValueError as err:
        raise BundleError(
            f"manifest.json holds a value canonical JSON cannot write ({err}): re-export"
        ) from None
    recorded = seal["sections"]
    changed = sorted(
        key
        for key in fresh["sections"].keys() | recorded.keys()
        if fresh["sections"].get(key) != recorded.get(key)
    )
    parts = [f"manifest sections {changed}"] if changed else []
    if fresh["model_sha256"] != seal.get("model_sha256"):
        parts.append(
            f"the model (sealed sha256 {seal.get('model_sha256')}, now {fresh['model_sha256']})"
        )
    if parts or fresh["digest"] != seal.get("digest"):
        what = " and ".join(parts) or "the seal's digest (its section hashes were rewritten)"
        raise BundleError(
            f"the bundle does not match its seal: {what} changed after export, so the "
            "manifest was edited or the model replaced; re-export the bundle from its "
            "training run instead of editing it"
        )
    expected = derive_model_id(str(manifest.get("algo")), fresh["digest"])
    stamped = model.metadata_props[-1].value
    if manifest["model_id"] != expected or stamped != expected:
        raise BundleError(
            f"model_id {manifest['model_id']!r} (manifest) / {stamped!r} (model.onnx "
            f"metadata) is not {expected!r}, the id the seal derives: the manifest was "
            "edited; re-export the bundle"
        )
    return str(fresh["digest"])


def manifest_limits(manifest: Mapping[str, Any]) -> tuple[RiskConfig, CostConfig]:
    """The risk limits and cost model the gates enforce: the manifest's ``risk_limits``
    and ``cost_model``, refused unless they are what its ``config`` derives.

    Raises
    ------
    BundleError
        A section that does not validate, or fields where the two disagree.
    """
    try:
        risk = RiskConfig.model_validate(manifest["risk_limits"])
        costs = CostConfig.model_validate(manifest["cost_model"])
        config_risk = RiskConfig.model_validate(manifest["config"]["risk"])
        config_costs = CostConfig.model_validate(manifest["config"]["costs"])
        limits = RiskLimits.from_config(risk).to_dict()
        derived = RiskLimits.from_config(config_risk).to_dict()
    except (ValidationError, ConfigError, KeyError, TypeError) as err:
        raise BundleError(
            f"manifest risk_limits / cost_model do not validate ({err}): re-export the bundle"
        ) from None
    differ = [f"risk_limits.{k}" for k in sorted(limits) if limits[k] != derived.get(k)]
    if CostModel.from_config(costs) != CostModel.from_config(config_costs):
        differ.append("cost_model")
    if differ:
        raise BundleError(
            f"manifest {differ} disagree with its config: the gates enforce one set of "
            "limits, so the bundle is refused; re-export it"
        )
    return risk, costs


# ------------------------------------------------------------------------------ signatures


def generate_signing_key(private_path: str | Path, public_path: str | Path) -> str:
    """Write a new Ed25519 key pair as PEM files (the private one readable by its owner only).

    Returns
    -------
    str
        The public key's fingerprint (:func:`key_fingerprint`).

    Raises
    ------
    ConfigError
        When either file already exists (keys are never overwritten).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = Path(private_path), Path(public_path)
    for path in (private_path, public_path):
        if path.exists():
            raise ConfigError(
                f"key file {str(path)!r} exists: choose another path (keys are not overwritten)"
            )
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public = key.public_key()
    public_path.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_fingerprint(public)


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """First 16 hex of the sha256 of the raw 32-byte public key."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_file_bytes(raw)[:16]


def _is_fingerprint(text: str) -> bool:
    """Whether ``text`` has the form of :func:`key_fingerprint` (16 lower-case hex)."""
    return len(text) == 16 and all(c in "0123456789abcdef" for c in text)


def _read_key_file(path: str | Path, what: str) -> bytes:
    key_path = Path(path)
    if not key_path.is_file():
        raise ConfigError(
            f"{what} {str(key_path)!r} is not a file: create a key pair with allocgym keygen"
        )
    return key_path.read_bytes()


def load_signing_key(path: str | Path) -> Ed25519PrivateKey:
    """An unencrypted Ed25519 private key from a PEM file (``allocgym keygen`` or
    ``openssl genpkey -algorithm ed25519``).

    Raises
    ------
    ConfigError
        Not a PEM private key, an encrypted one, or a key of another algorithm.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_key_file(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"signing key {str(path)!r} is not an unencrypted PEM private key ({err}): pass "
            "the private key written by allocgym keygen"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"signing key {str(path)!r} is a {type(key).__name__}: bundles are signed with "
            "Ed25519 keys (allocgym keygen, or openssl genpkey -algorithm ed25519)"
        )
    return key


def load_verify_key(path: str | Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file.

    Raises
    ------
    ConfigError
        Not a PEM public key, or a key of another algorithm.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"public key {str(path)!r} is not a PEM public key ({err}): pass the .pub file "
            "written by allocgym keygen"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(
            f"public key {str(path)!r} is a {type(key).__name__}: bundles are signed with "
            "Ed25519 keys"
        )
    return key


def sign_bundle(root: str | Path, digest: str, key: Ed25519PrivateKey) -> str:
    """Write ``seal.sig``: a detached Ed25519 signature over a bundle's seal digest.

    Returns
    -------
    str
        The signing key's fingerprint.
    """
    fingerprint = key_fingerprint(key.public_key())
    record = {
        "algorithm": "ed25519",
        "seal": digest,
        "key": fingerprint,
        "signature": base64.b64encode(key.sign(_SIGNATURE_TAG + digest.encode("ascii"))).decode(),
    }
    folder = Path(root)
    tmp = folder / f".{SIGNATURE_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, folder / SIGNATURE_FILE)
    return fingerprint


def verify_signature(root: str | Path, digest: str, key: Ed25519PublicKey) -> str:
    """Refuse a bundle without a valid signature by ``key`` over its seal digest.

    Returns
    -------
    str
        The key's fingerprint.

    Raises
    ------
    BundleError
        No ``seal.sig``, a signature over another seal, or one that does not verify
        with ``key`` (another signer, or an altered signature).
    """
    from cryptography.exceptions import InvalidSignature

    folder = Path(root)
    fingerprint = key_fingerprint(key)
    if not has_signature(folder):
        raise BundleError(
            f"bundle {str(folder)!r} is unsigned (no {SIGNATURE_FILE}) and a signature by key "
            f"{fingerprint} is required: export it with --sign KEYFILE"
        )
    path, signer, signature = signature_record(folder, digest)
    try:
        key.verify(signature, _SIGNATURE_TAG + digest.encode("ascii"))
    except InvalidSignature:
        raise BundleError(
            f"{str(path)!r} does not verify with public key {fingerprint} (it names key "
            f"{signer}): the bundle was signed by another key or the signature was altered"
        ) from None
    if signer != fingerprint:
        raise BundleError(
            f"{str(path)!r} verifies with key {fingerprint} but names key {signer}: the "
            "signature record was edited; sign the bundle again with export --sign KEYFILE"
        )
    return fingerprint


def has_signature(folder: Path) -> bool:
    """Whether the bundle folder holds a ``seal.sig`` (a link counts: it is refused later)."""
    return (folder / SIGNATURE_FILE).exists() or (folder / SIGNATURE_FILE).is_symlink()


def signature_record(folder: Path, digest: str) -> tuple[Path, str, bytes]:
    """The bundle's ``seal.sig`` read and matched to its seal ``digest``: (its path, the
    signer's fingerprint it names, the signature bytes). Checked whether or not a key is
    required: a malformed signature, or one over another seal, means the bundle was
    altered.

    Raises
    ------
    BundleError
        Not a signature record, or a signature over another seal.
    """
    path = _bundle_file(folder, SIGNATURE_FILE, "signature")
    fix = "sign the bundle again with export --sign KEYFILE"
    raw = _read_limited(path, _MAX_SIGNATURE_BYTES, "signature", fix)
    record = _json_file(path, raw, "an allocgym signature", fix)
    try:
        if not isinstance(record, dict) or set(record) != _SIGNATURE_KEYS:
            raise ValueError(f"expected exactly the keys {sorted(_SIGNATURE_KEYS)}")
        if record["algorithm"] != "ed25519":
            raise ValueError(f"algorithm {record['algorithm']!r}, not 'ed25519'")
        signer = record["key"]
        if not isinstance(signer, str) or not _is_fingerprint(signer):
            raise ValueError(f"key {signer!r} is not a key fingerprint (16 hex digits)")
        signed_seal = str(record["seal"])
        signature = base64.b64decode(str(record["signature"]), validate=True)
    except (ValueError, TypeError) as err:
        raise BundleError(f"{str(path)!r} is not an allocgym signature ({err}): {fix}") from None
    if signed_seal != digest:
        raise BundleError(
            f"{str(path)!r} signs seal {signed_seal}, the bundle's seal is {digest}: the "
            "bundle changed after it was signed (or the signature belongs to another bundle)"
        )
    return path, signer, signature


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
        ``"{algo}-" + seal[:12]`` (verified).
    seal : str
        The seal digest over the canonical manifest and the model (verified).
    signed_by : str or None
        Fingerprint of the public key whose signature was verified; ``None`` when no key
        was required.
    risk_config : RiskConfig
        The manifest's ``risk_limits``: the limits the gates enforce.
    cost_config : CostConfig
        The manifest's ``cost_model``.
    symbols : tuple of str
    mode : {"weights", "budgets", "tilt"}
    obs_dim, n_out : int
    name : str
        ``"frozen:" + model_id`` (label in reports).
    """

    path: Path
    manifest: dict[str, Any]
    sha256: str
    model_id: str
    seal: str
    signed_by: str | None
    risk_config: RiskConfig
    cost_config: CostConfig
    symbols: tuple[str, ...]
    mode: str
    obs_dim: int
    n_out: int
    name: str
    _manifest_sha: str  # of the manifest as verified (:meth:`check_unchanged`)
    _session: ort.InferenceSession

    @classmethod
    def load(
        cls, path: str | Path, *, public_key: str | Path | Ed25519PublicKey | None = None
    ) -> FrozenPolicy:
        """Verify and load a bundle folder.

        Parameters
        ----------
        path : str or Path
            Folder holding ``manifest.json`` and the model file it names.
        public_key : str, Path or Ed25519PublicKey, optional
            An Ed25519 public key (or its PEM file): the bundle must carry a ``seal.sig``
            by its private key over the seal digest (``allocgym export --sign``).

        Raises
        ------
        BundleError
            Missing files, a sha256 mismatch (corrupted or swapped model), an unsupported
            manifest schema or opset, external data, custom operators, a path outside the
            bundle, a layout that disagrees between manifest and graph, contents that do
            not match the seal, limits that disagree with the config, or (with
            ``public_key``) a missing or invalid signature.
        ConfigError
            ``public_key`` is not an Ed25519 PEM public key.
        """
        verify_key = (
            load_verify_key(public_key) if isinstance(public_key, str | Path) else public_key
        )
        root = Path(path)
        if not root.is_dir():
            raise BundleError(f"bundle {str(root)!r} is not a folder: pass the export --out folder")
        mpath = _bundle_file(root, MANIFEST_FILE, "manifest")
        raw = _read_limited(mpath, _MAX_MANIFEST_BYTES, "manifest")
        manifest = _json_file(mpath, raw, "valid JSON", "re-export")
        check_manifest(manifest)
        model_meta = manifest["model"]
        model_path = _bundle_file(root, model_meta.get("file"), "model.file")
        data = _read_limited(model_path, _MAX_MODEL_BYTES, "model")
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
        seal = verify_seal(manifest, proto)
        size = model_meta.get("bytes")
        if type(size) is not int or size != len(data):
            raise BundleError(
                f"{str(model_path)!r} is {len(data)} bytes, the manifest says "
                f"{model_meta.get('bytes')!r}: the manifest was edited; re-export the bundle"
            )
        signed_by = None
        if verify_key is not None:
            signed_by = verify_signature(root, seal, verify_key)
        elif has_signature(root):
            signature_record(root, seal)  # unverifiable without the key, but well-formed
        risk_config, cost_config = manifest_limits(manifest)
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
            seal=seal,
            signed_by=signed_by,
            risk_config=risk_config,
            cost_config=cost_config,
            symbols=tuple(manifest["symbols"]),
            mode=mode,
            obs_dim=int(manifest["observation"]["obs_dim"]),
            n_out=int(manifest["proposal"]["dim"]),
            name=f"frozen:{manifest['model_id']}",
            _manifest_sha=sha256_file_bytes(canonical_json(manifest)),
            _session=session,
        )

    def check_unchanged(self) -> None:
        """Refuse a manifest changed since :meth:`load` verified it: an allocator built
        from it would serve other settings under the sealed ``model_id``.

        Raises
        ------
        BundleError
        """
        try:
            same = sha256_file_bytes(canonical_json(self.manifest)) == self._manifest_sha
        except (ValueError, TypeError):
            same = False
        if not same:
            raise BundleError(
                f"the manifest of {self.model_id} was changed after it was loaded and "
                "verified: load the bundle again (FrozenPolicy.load) instead of editing "
                "policy.manifest"
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
        return self._session.run([PROPOSAL_OUTPUT], {INPUT_NAME: self._input(obs)})[0]

    def actions(self, obs: np.ndarray) -> np.ndarray:
        """The actor's actions (before the action map), float32 (n_envs, action_dim)."""
        return self._session.run([ACTION_OUTPUT], {INPUT_NAME: self._input(obs)})[0]

    def outputs(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The actor's actions and the proposals from one run: ``(actions(obs),
        self(obs))``, bit for bit."""
        action, proposal = self._session.run(
            [ACTION_OUTPUT, PROPOSAL_OUTPUT], {INPUT_NAME: self._input(obs)}
        )
        return action, proposal

    def _input(self, obs: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(obs, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.obs_dim:
            raise ValueError(
                f"observations have shape {x.shape}, the bundle expects (n_envs, {self.obs_dim})"
            )
        return x

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
