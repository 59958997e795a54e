"""Loading a frozen bundle: what a loaded policy reports, and each structural refusal with
its exact message (the object, the bad value and the fix). The bundle is the small
untrained long-only export of ``test_serving_support`` (6 symbols, obs_dim 225)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from test_serving_support import untrained_bundle

from allocgym.errors import BundleError
from allocgym.serving.bundle import FrozenPolicy, check_manifest, check_model_proto


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return Path(shutil.copytree(untrained_bundle(), tmp_path / "bundle"))


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return json.loads((untrained_bundle() / "manifest.json").read_text())


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return onnx.load_model_from_string((untrained_bundle() / "model.onnx").read_bytes())


def _edit_manifest(folder: Path, key: str, field: str, value: object) -> None:
    """Set ``manifest[key][field]`` on disk (the seal is checked after the steps tested here)."""
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data[key][field] = value
    path.write_text(json.dumps(data))


def _refused(message: str) -> Any:
    """``pytest.raises`` for a BundleError whose whole message is ``message``."""
    return pytest.raises(BundleError, match="^" + re.escape(message) + "$")


# ------------------------------------------------------------------------------ a good bundle


def test_a_loaded_policy_reports_the_bundle_it_came_from(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    sha256 = hashlib.sha256((bundle / "model.onnx").read_bytes()).hexdigest()
    policy = FrozenPolicy.load(str(bundle))
    assert policy.path == bundle
    assert policy.sha256 == sha256
    assert policy.model_id == manifest["model_id"]
    assert re.fullmatch(r"ppo-[0-9a-f]{12}", policy.model_id)
    assert policy.seal == manifest["seal"]["digest"]
    assert policy.signed_by is None
    assert policy.name == "frozen:" + manifest["model_id"]
    assert policy.describe() == {
        "model_id": manifest["model_id"],
        "sha256": sha256,
        "config_hash": manifest["config_hash"],
        "mode": "weights",
        "n_assets": 6,
        "obs_dim": 225,
        "opset": 17,
        "algo": "ppo",
    }
    # the actor's raw actions are the graph's "action" output, float32 (n_envs, action_dim)
    obs = np.random.default_rng(0).normal(size=(2, 225))
    reference = ort.InferenceSession(
        (bundle / "model.onnx").read_bytes(), providers=["CPUExecutionProvider"]
    )
    expected = reference.run(["action"], {"obs": obs.astype(np.float32)})[0]
    actions = policy.actions(obs)
    assert actions.dtype == np.float32 and actions.shape == (2, 7)
    np.testing.assert_array_equal(actions, expected)
    # one intra-op and one inter-op thread, in sequence: deterministic runs
    options = policy._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)


# ------------------------------------------------------------------------------ FrozenPolicy.load


def test_a_missing_folder_and_an_unreadable_manifest_are_refused(bundle: Path) -> None:
    missing = bundle / "nowhere"
    with _refused(f"bundle {str(missing)!r} is not a folder: pass the export --out folder"):
        FrozenPolicy.load(missing)
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(
        BundleError,
        match="^" + re.escape(f"{str(bundle / 'manifest.json')!r} is not valid JSON (") + r".*"
        r"\): re-export$",
    ):
        FrozenPolicy.load(bundle)


def test_a_manifest_without_a_model_hash_names_the_empty_declaration(bundle: Path) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    del data["model"]["sha256"]
    path.write_text(json.dumps(data))
    sha256 = hashlib.sha256((bundle / "model.onnx").read_bytes()).hexdigest()
    with _refused(
        f"{str(bundle / 'model.onnx')!r} has sha256 {sha256}, the manifest says : the model "
        "file is corrupted or was replaced; restore the bundle or re-export"
    ):
        FrozenPolicy.load(bundle)


def test_bytes_that_are_not_onnx_are_refused_after_the_hash_check(bundle: Path) -> None:
    garbage = b"\xff" * 64
    (bundle / "model.onnx").write_bytes(garbage)
    _edit_manifest(bundle, "model", "sha256", hashlib.sha256(garbage).hexdigest())
    with pytest.raises(
        BundleError,
        match="^" + re.escape(f"{str(bundle / 'model.onnx')!r} is not an ONNX model ("),
    ):
        FrozenPolicy.load(bundle)


@pytest.mark.parametrize("name", [None, 123, "", ".", ".."])
def test_a_model_file_that_is_not_a_file_name_is_refused(bundle: Path, name: object) -> None:
    _edit_manifest(bundle, "model", "file", name)
    with _refused(f"manifest model.file = {name!r}: must be a plain file name in the bundle"):
        FrozenPolicy.load(bundle)


@pytest.mark.parametrize("name", ["sub/model.onnx", "sub\\model.onnx", "/tmp/model.onnx"])
def test_a_model_file_outside_the_bundle_is_refused(bundle: Path, name: str) -> None:
    _edit_manifest(bundle, "model", "file", name)
    with _refused(
        f"manifest model.file = {name!r} points outside the bundle folder {str(bundle)!r}: "
        "bundles hold plain file names only; re-export the bundle"
    ):
        FrozenPolicy.load(bundle)


def test_a_linked_or_missing_model_file_is_refused(bundle: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.onnx"
    shutil.move(bundle / "model.onnx", real)
    (bundle / "model.onnx").symlink_to(real)
    with _refused(
        f"{str(bundle / 'model.onnx')!r} is a symbolic link: a bundle must contain the file "
        "itself (copy it in, or re-export)"
    ):
        FrozenPolicy.load(bundle)
    (bundle / "model.onnx").unlink()
    with _refused(f"bundle file {str(bundle / 'model.onnx')!r} is missing: re-export the bundle"):
        FrozenPolicy.load(bundle)


# ------------------------------------------------------------------------------ check_manifest


def _manifest_with(manifest: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(manifest)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = out
        for part in parents:
            node = node[part]
        node[last] = value
    return out


def test_check_manifest_accepts_the_export() -> None:
    check_manifest(json.loads((untrained_bundle() / "manifest.json").read_text()))


def test_a_manifest_that_is_not_an_object_or_of_another_schema_is_refused(
    manifest: dict[str, Any],
) -> None:
    with _refused("manifest.json must hold a JSON object"):
        check_manifest([manifest])  # type: ignore[arg-type]
    with _refused(
        "manifest schema 'allocgym.bundle/0': this runtime reads 'allocgym.bundle/2'; "
        "re-export the bundle with this allocgym version"
    ):
        check_manifest(_manifest_with(manifest, schema="allocgym.bundle/0"))


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("sectors", 5, "TypeError"),
        ("features", {}, "KeyError"),
        ("model", [], "TypeError"),
        ("action", None, "TypeError"),
        ("observation__obs_dim", "x", "ValueError"),
    ],
    ids=["sectors_a_number", "features_empty", "model_a_list", "action_null", "obs_dim_text"],
)
def test_a_value_of_the_wrong_json_type_is_a_bundle_error(
    manifest: dict[str, Any], field: str, value: object, error: str
) -> None:
    with pytest.raises(BundleError, match=rf"manifest.json is malformed \({error}: .*re-export"):
        check_manifest(_manifest_with(manifest, **{field: value}))


@pytest.mark.parametrize(
    "symbols",
    [[], "S000", ["S000", "", "S002", "S003", "S004", "S005"], ["S000"] * 6, [1, 2, 3, 4, 5, 6]],
    ids=["empty", "a_string", "an_empty_name", "duplicates", "numbers"],
)
def test_symbols_must_be_distinct_names(manifest: dict[str, Any], symbols: object) -> None:
    with _refused("manifest symbols must be a non-empty list of distinct strings"):
        check_manifest(_manifest_with(manifest, symbols=symbols))


def test_sector_lists_must_match_the_symbols(manifest: dict[str, Any]) -> None:
    with _refused("manifest has 6 symbols but 6 sectors and 5 sector ids"):
        check_manifest(_manifest_with(manifest, sector_ids=[0, 1, 2, 0, 1]))
    with _refused("manifest has 6 symbols but 7 sectors and 6 sector ids"):
        check_manifest(_manifest_with(manifest, sectors=manifest["sectors"] + ["sector_3"]))


def test_action_mode_proposal_kind_and_dim_must_agree(manifest: dict[str, Any]) -> None:
    with _refused("manifest action mode 'budgets' != proposal kind 'weights'"):
        check_manifest(_manifest_with(manifest, action__mode="budgets"))
    with _refused("manifest proposal dim 7 != expected 6"):
        check_manifest(_manifest_with(manifest, proposal__dim=7))
    tilt = _manifest_with(manifest, action__mode="tilt", proposal__kind="tilt", proposal__dim=7)
    tilt.pop("tilt", None)
    with _refused("manifest of a tilt-mode policy lacks its 'tilt' prior: re-export"):
        check_manifest(tilt)


# ------------------------------------------------------------------------------ check_model_proto


def _proto(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def test_the_default_domain_may_be_spelled_ai_onnx(
    model: onnx.ModelProto, manifest: dict[str, Any]
) -> None:
    spelled = _proto(model)
    spelled.opset_import[0].domain = "ai.onnx"
    spelled.graph.node[0].domain = "ai.onnx"
    check_model_proto(spelled, manifest)


def test_custom_operator_domains_are_refused(
    model: onnx.ModelProto, manifest: dict[str, Any]
) -> None:
    imported = _proto(model)
    imported.opset_import.add(domain="com.example", version=1)
    with _refused(
        "model.onnx imports operator domains ['com.example']: only the default ONNX domain "
        "is allowed (no custom operators)"
    ):
        check_model_proto(imported, manifest)
    used = _proto(model)
    used.graph.node[0].domain = "com.example"
    name = used.graph.node[0].name
    with _refused(
        f"model.onnx node {name!r} uses operator domain 'com.example': only the default ONNX "
        "domain is allowed"
    ):
        check_model_proto(used, manifest)


def test_a_tensor_flagged_as_external_data_is_refused(
    model: onnx.ModelProto, manifest: dict[str, Any]
) -> None:
    external = _proto(model)
    tensor = external.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    with _refused(
        f"model.onnx tensor {tensor.name!r} uses external data: bundles must be self-contained "
        "(re-export; allocgym writes no external data)"
    ):
        check_model_proto(external, manifest)


def test_inputs_and_outputs_must_match_the_manifest_layout(
    model: onnx.ModelProto, manifest: dict[str, Any]
) -> None:
    extra = _proto(model)
    extra.graph.input.append(onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1]))
    with _refused("model.onnx inputs ['obs', 'x']: expected exactly ['obs']; re-export"):
        check_model_proto(extra, manifest)
    double = _proto(model)
    double.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    with _refused(
        "model.onnx input 'obs' is float64 ['batch', 225], manifest layout says float32 "
        "(batch, 225): the bundle's model and manifest do not belong together"
    ):
        check_model_proto(double, manifest)
    no_action = _proto(model)
    del no_action.graph.output[0]
    with _refused("model.onnx has no output 'action' (outputs: ['proposal'])"):
        check_model_proto(no_action, manifest)
    float_proposal = _proto(model)
    float_proposal.graph.output[1].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    with _refused(
        "model.onnx output 'proposal' is float32 ['batch', 6], manifest layout says float64 "
        "(batch, 6)"
    ):
        check_model_proto(float_proposal, manifest)
