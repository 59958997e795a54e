"""The bundle sealed whole: one digest over the canonical manifest and the model, the model
id derived from it, the gates on the sealed limits, and optional Ed25519 signatures."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from test_serving_support import (
    ENABLED,
    bar_clock,
    fixed_clock,
    reseal_bundle,
    small_market,
    untrained_bundle,
)

from allocgym.config import config_from_dict, config_hash
from allocgym.errors import BundleError, ConfigError
from allocgym.risk import ReasonCode
from allocgym.serving import FrozenAllocator, FrozenPolicy, request_from_market
from allocgym.serving.bundle import (
    SIGNATURE_FILE,
    canonical_json,
    compute_seal,
    derive_model_id,
    generate_signing_key,
    model_core_bytes,
    sign_bundle,
)

T = 400  # a decision bar of the small synthetic market with a full history behind it


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A private copy of the long-only weights bundle (6 symbols in sectors 0, 1, 2, 0, 1, 2)."""
    return Path(shutil.copytree(untrained_bundle(), tmp_path / "bundle"))


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Two key pairs: the signer's and someone else's."""
    out = {}
    for name in ("signer", "other"):
        out[name] = tmp_path / f"{name}.pem"
        generate_signing_key(out[name], tmp_path / f"{name}.pem.pub")
        out[f"{name}.pub"] = tmp_path / f"{name}.pem.pub"
    return out


def _manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def _edit(d: Path, fn: Callable[[dict], None]) -> None:
    """Edit the manifest and recompute the plain hashes (config hash, model sha256 and size), as
    someone loosening a bundle by hand would; the seal is left alone."""
    m = _manifest(d)
    fn(m)
    m["config_hash"] = config_hash(config_from_dict(m["config"]))
    data = (d / "model.onnx").read_bytes()
    m["model"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    (d / "manifest.json").write_text(json.dumps(m, indent=1))


def _set_risk(m: dict, **values: float) -> None:
    m["config"]["risk"].update(values)
    m["risk_limits"].update(values)


# ----------------------------------------------------------------------------- the seal


def test_canonical_json_is_sorted_compact_and_float_exact() -> None:
    got = canonical_json({"b": 0.1, "a": [1, 1.0, True, None], "c": {"y": 1e-300, "x": "é"}})
    assert got == b'{"a":[1,1.0,true,null],"b":0.1,"c":{"x":"\\u00e9","y":1e-300}}'
    # every float64 reads back to the same bits, so the digest survives the disk
    value = np.nextafter(0.1, 1.0)
    assert json.loads(canonical_json([value]))[0] == value
    with pytest.raises(ValueError):
        canonical_json([float("nan")])


def test_the_seal_and_model_id_recompute_from_the_files(bundle: Path) -> None:
    policy = FrozenPolicy.load(bundle)
    m = _manifest(bundle)
    model = onnx.load_model_from_string((bundle / "model.onnx").read_bytes())
    seal = compute_seal(m, model_core_bytes(model))
    assert seal == m["seal"]
    assert policy.seal == seal["digest"]
    assert policy.model_id == m["model_id"] == derive_model_id("ppo", seal["digest"])
    assert policy.model_id == f"ppo-{seal['digest'][:12]}"
    # the model carries its id as the last metadata entry
    assert (model.metadata_props[-1].key, model.metadata_props[-1].value) == (
        "model_id",
        policy.model_id,
    )
    # the seal names every manifest section but the id, the seal and the file's own hash
    assert set(seal["sections"]) == set(m) - {"model_id", "seal"}
    assert {"symbols", "sector_ids", "risk_limits", "cost_model", "features", "action",
            "versions", "config"} <= set(seal["sections"])  # fmt: skip


def _distinct_sectors(m: dict) -> None:
    m["sector_ids"] = list(range(len(m["symbols"])))


def _renamed_symbols(m: dict) -> None:
    m["symbols"][0], m["symbols"][1] = m["symbols"][1], m["symbols"][0]


def _looser_limits(m: dict) -> None:
    _set_risk(m, max_sector_gross=0.9, max_symbol_weight=0.5)


def _cheaper_costs(m: dict) -> None:
    m["config"]["costs"]["commission_bps"] = 0.0
    m["cost_model"]["commission_bps"] = 0.0


def _new_model_id(m: dict) -> None:
    m["model_id"] = "ppo-000000000000"


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (_distinct_sectors, r"\['sector_ids'\]"),
        (_renamed_symbols, r"\['symbols'\]"),
        (_looser_limits, r"\['config', 'config_hash', 'risk_limits'\]"),
        (_cheaper_costs, r"\['config', 'config_hash', 'cost_model'\]"),
    ],
)
def test_edits_with_recomputed_plain_hashes_are_refused(
    bundle: Path, edit: Callable[[dict], None], names: str
) -> None:
    _edit(bundle, edit)
    with pytest.raises(BundleError, match="does not match its seal: manifest sections " + names):
        FrozenPolicy.load(bundle)


def test_an_edited_model_id_is_refused(bundle: Path) -> None:
    _edit(bundle, _new_model_id)
    with pytest.raises(BundleError, match=r"'ppo-000000000000' \(manifest\) .* is not 'ppo-"):
        FrozenPolicy.load(bundle)


def test_a_swapped_model_with_its_sha256_updated_is_refused(bundle: Path) -> None:
    """Another graph of the same layout (one weight changed), its model id stamp kept and
    the manifest's sha256 updated: the seal names the model."""
    model = onnx.load_model_from_string((bundle / "model.onnx").read_bytes())
    weights = next(t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    values = onnx.numpy_helper.to_array(weights).copy()
    values.flat[0] += 0.5
    weights.CopyFrom(onnx.numpy_helper.from_array(values, weights.name))
    (bundle / "model.onnx").write_bytes(model.SerializeToString())
    _edit(bundle, lambda m: None)
    with pytest.raises(BundleError, match=r"does not match its seal: the model \(sealed sha256"):
        FrozenPolicy.load(bundle)


def test_a_model_without_its_id_stamp_is_refused(bundle: Path) -> None:
    model = onnx.load_model_from_string((bundle / "model.onnx").read_bytes())
    del model.metadata_props[-1]
    (bundle / "model.onnx").write_bytes(model.SerializeToString())
    _edit(bundle, lambda m: None)
    with pytest.raises(BundleError, match="no 'model_id' as its last metadata entry"):
        FrozenPolicy.load(bundle)


def test_rewritten_section_hashes_without_the_digest_are_refused(bundle: Path) -> None:
    def edit(m: dict) -> None:
        _distinct_sectors(m)
        fresh = canonical_json(m["sector_ids"])
        m["seal"]["sections"]["sector_ids"] = hashlib.sha256(fresh).hexdigest()

    _edit(bundle, edit)
    with pytest.raises(BundleError, match="the seal's digest"):
        FrozenPolicy.load(bundle)


# ----------------------------------------------------------------------------- one source of limits


def _allocator(policy: FrozenPolicy, proposal: np.ndarray) -> FrozenAllocator:
    return FrozenAllocator(
        policy,
        environ=ENABLED,
        clock=fixed_clock(bar_clock(small_market(), T)),
        model=lambda obs: proposal[None, :],
    )


def _decide(alloc: FrozenAllocator):
    req = request_from_market(small_market(), T, history=alloc.history, request_id="s1")
    return alloc.decide(req)


def test_the_gates_enforce_the_sealed_manifest_limits(bundle: Path) -> None:
    """Sector 0 holds S000 and S003: a proposal of 0.1 on each is 0.2 sector gross, inside
    the trained 0.30 cap and outside a re-exported 0.12 cap, which the gates then apply."""
    proposal = np.array([0.1, 0.0, 0.0, 0.1, 0.0, 0.0])
    policy = FrozenPolicy.load(bundle)
    assert policy.risk_config.max_sector_gross == 0.30
    before = _decide(_allocator(policy, proposal))
    assert before.status == "ok"
    assert before.approved_weights[0] + before.approved_weights[3] == pytest.approx(0.2)

    def tighter(m: dict) -> None:
        _set_risk(m, max_sector_gross=0.12)
        m["cost_model"]["commission_bps"] = m["config"]["costs"]["commission_bps"] = 7.0
        m["config_hash"] = config_hash(config_from_dict(m["config"]))

    new_id = reseal_bundle(bundle, tighter)
    policy = FrozenPolicy.load(bundle)
    alloc = _allocator(policy, proposal)
    assert alloc.limits.max_sector_gross == 0.12
    assert alloc.cost_model.commission_bps == 7.0
    after = _decide(alloc)
    assert after.approved_weights[0] + after.approved_weights[3] == pytest.approx(0.12)
    assert after.reason_mask[0] & ReasonCode.SECTOR_CAP
    assert after.model.model_id == new_id != before.model.model_id


def test_the_allocator_reads_limits_and_costs_from_the_verified_policy(bundle: Path) -> None:
    import dataclasses

    policy = FrozenPolicy.load(bundle)
    changed = dataclasses.replace(
        policy,
        risk_config=policy.risk_config.model_copy(update={"max_sector_gross": 0.12}),
        cost_config=policy.cost_config.model_copy(update={"impact_k": 0.5}),
    )
    alloc = _allocator(changed, np.zeros(6))
    assert alloc.limits.max_sector_gross == 0.12 and alloc.cost_model.impact_k == 0.5


def test_limits_that_disagree_with_the_config_are_refused(bundle: Path) -> None:
    """A sealed manifest whose risk_limits or cost_model are not what its config derives
    (two sources) is refused, naming the fields."""
    reseal_bundle(bundle, lambda m: m["risk_limits"].update(max_sector_gross=0.9))
    with pytest.raises(BundleError, match=r"\['risk_limits.max_sector_gross'\] disagree"):
        FrozenPolicy.load(bundle)
    reseal_bundle(bundle, lambda m: m["risk_limits"].update(max_sector_gross=0.30))
    reseal_bundle(bundle, lambda m: m["cost_model"].update(impact_k=0.0))
    with pytest.raises(BundleError, match=r"\['cost_model'\] disagree"):
        FrozenPolicy.load(bundle)


def test_a_legitimate_re_export_gives_a_new_model_id_in_decisions(tmp_path: Path) -> None:
    """Exporting changed weights into the same folder: a new model id, and the decisions
    of an allocator on the new bundle report it."""
    import torch as th

    from allocgym.agents.export import export_model
    from allocgym.agents.train import build_model
    from allocgym.envs import PortfolioVecEnv, build_params

    policy = FrozenPolicy.load(untrained_bundle())
    cfg = config_from_dict(policy.manifest["config"])
    params = build_params(small_market(), cfg, "all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, PortfolioVecEnv(params=params, n_envs=2, seed=0), params)
        out = tmp_path / "re-export"
        first = export_model(
            model, None, cfg, out, market=small_market(), n_recorded=64, n_random=64
        )
        with th.no_grad():
            next(model.policy.action_net.parameters()).add_(0.05)
        second = export_model(
            model, None, cfg, out, market=small_market(), n_recorded=64, n_random=64,
            overwrite=True,
        )  # fmt: skip
    assert first.model_id != second.model_id
    assert first.seal != second.seal
    reloaded = FrozenPolicy.load(out)
    assert reloaded.model_id == second.model_id
    alloc = FrozenAllocator(
        reloaded, environ=ENABLED, clock=fixed_clock(bar_clock(small_market(), T))
    )
    assert _decide(alloc).model.model_id == second.model_id


# ----------------------------------------------------------------------------- signatures


def test_signed_bundle_loads_with_the_signers_key(bundle: Path, keys: dict[str, Path]) -> None:
    from allocgym.serving.bundle import load_signing_key

    digest = FrozenPolicy.load(bundle).seal
    fingerprint = sign_bundle(bundle, digest, load_signing_key(keys["signer"]))
    policy = FrozenPolicy.load(bundle, public_key=keys["signer.pub"])
    assert policy.signed_by == fingerprint
    assert FrozenPolicy.load(bundle).signed_by is None  # no key asked: not checked


def test_unsigned_bundle_is_refused_when_a_signature_is_required(
    bundle: Path, keys: dict[str, Path]
) -> None:
    with pytest.raises(BundleError, match=rf"unsigned \(no {SIGNATURE_FILE}\)"):
        FrozenPolicy.load(bundle, public_key=keys["signer.pub"])


def test_signature_by_another_key_is_refused(bundle: Path, keys: dict[str, Path]) -> None:
    from allocgym.serving.bundle import load_signing_key

    sign_bundle(bundle, FrozenPolicy.load(bundle).seal, load_signing_key(keys["other"]))
    with pytest.raises(BundleError, match="does not verify with public key"):
        FrozenPolicy.load(bundle, public_key=keys["signer.pub"])


def test_tampered_signed_bundles_are_refused(bundle: Path, keys: dict[str, Path]) -> None:
    from allocgym.serving.bundle import load_signing_key

    key = load_signing_key(keys["signer"])
    sign_bundle(bundle, FrozenPolicy.load(bundle).seal, key)
    signed = bundle.parent / "signed"
    shutil.copytree(bundle, signed)
    # edited and re-sealed: the signature is over the old seal, refused with the key and
    # without it (the seal alone would not stop a re-sealed edit; the stale signature does)
    reseal_bundle(bundle, _distinct_sectors)
    for public_key in (keys["signer.pub"], None):
        with pytest.raises(BundleError, match=r"signs seal .* changed after it was signed"):
            FrozenPolicy.load(bundle, public_key=public_key)
    # edited without re-sealing: the seal refuses first
    tampered = bundle.parent / "tampered"
    shutil.copytree(signed, tampered)
    _edit(tampered, _distinct_sectors)
    with pytest.raises(BundleError, match="does not match its seal"):
        FrozenPolicy.load(tampered, public_key=keys["signer.pub"])
    # a forged signature over the right seal
    record = json.loads((signed / SIGNATURE_FILE).read_text())
    raw = bytearray(base64.b64decode(record["signature"]))
    raw[0] ^= 1
    record["signature"] = base64.b64encode(bytes(raw)).decode()
    (signed / SIGNATURE_FILE).write_text(json.dumps(record))
    with pytest.raises(BundleError, match="does not verify"):
        FrozenPolicy.load(signed, public_key=keys["signer.pub"])
    (signed / SIGNATURE_FILE).write_text("not json")
    for public_key in (keys["signer.pub"], None):  # a garbage signature file: altered
        with pytest.raises(BundleError, match="is not an allocgym signature"):
            FrozenPolicy.load(signed, public_key=public_key)


def test_key_files_are_checked(keys: dict[str, Path], tmp_path: Path) -> None:
    from allocgym.serving.bundle import load_signing_key, load_verify_key

    with pytest.raises(ConfigError, match="not a PEM public key"):
        load_verify_key(keys["signer"])
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        load_signing_key(keys["signer.pub"])
    with pytest.raises(ConfigError, match="is not a file"):
        load_verify_key(tmp_path / "missing.pub")
    with pytest.raises(ConfigError, match="exists"):
        generate_signing_key(keys["signer"], tmp_path / "x.pub")
    assert keys["signer"].stat().st_mode & 0o077 == 0  # the private key is owner-only


def test_a_bundle_from_before_a_new_config_field_loads_with_its_default(bundle: Path) -> None:
    """A bundle exported before ``serving.shed_delay_ms`` existed (its stored config lacks
    it, sealed and hashed as stored) loads, with the field at its default; the config hash
    is of the stored config, so an edit without recomputing it is still refused."""

    def older(m: dict) -> None:
        del m["config"]["serving"]["shed_delay_ms"]
        m["config_hash"] = config_hash(m["config"])

    reseal_bundle(bundle, older)
    policy = FrozenPolicy.load(bundle)
    alloc = FrozenAllocator(policy, environ=ENABLED)
    assert alloc.serving.shed_delay_ms == 50.0
    assert _manifest(bundle)["config_hash"] != config_hash(
        config_from_dict(_manifest(bundle)["config"])
    )

    def edited(m: dict) -> None:
        m["config"]["serving"]["max_queue_ms"] = 1000.0  # hash not recomputed

    reseal_bundle(bundle, edited)
    with pytest.raises(BundleError, match="the manifest was edited; re-export the bundle"):
        FrozenAllocator(FrozenPolicy.load(bundle), environ=ENABLED)


def test_config_hash_of_a_dump_equals_the_config_hash() -> None:
    cfg = config_from_dict({"serving": {"max_queue_ms": 7.5}})
    assert config_hash(cfg.model_dump(mode="json")) == config_hash(cfg)
    assert config_hash(cfg) != config_hash(config_from_dict({}))


# ------------------------------------------------------------------- malformed bundles


def _first_wins_decoy(path: Path, key: str, decoy: object) -> None:
    """Write a JSON object file with a decoy ``key`` before the real one (a reader that
    keeps the first copy sees the decoy; Python's json keeps the last)."""
    text = path.read_text()
    assert text.startswith("{")
    path.write_text("{" + json.dumps(key) + ":" + json.dumps(decoy) + "," + text[1:])


def test_repeated_json_keys_are_refused(bundle: Path, keys: dict[str, Path]) -> None:
    from allocgym.serving.bundle import load_signing_key

    sign_bundle(bundle, FrozenPolicy.load(bundle).seal, load_signing_key(keys["signer"]))
    signed = bundle.parent / "signed"
    shutil.copytree(bundle, signed)
    loose = {**_manifest(bundle)["risk_limits"], "max_turnover": 99.0}
    _first_wins_decoy(bundle / "manifest.json", "risk_limits", loose)
    with pytest.raises(BundleError, match=r"repeated keys \['risk_limits'\]"):
        FrozenPolicy.load(bundle, public_key=keys["signer.pub"])
    _first_wins_decoy(signed / SIGNATURE_FILE, "key", "0" * 16)
    with pytest.raises(BundleError, match=r"repeated keys \['key'\]"):
        FrozenPolicy.load(signed, public_key=keys["signer.pub"])


def test_fields_outside_the_seal_are_checked(bundle: Path, keys: dict[str, Path]) -> None:
    """``model.bytes``, the seal object's keys and the signature record's algorithm and
    signer are not sealed but must say what is true."""
    from allocgym.serving.bundle import load_signing_key

    key = load_signing_key(keys["signer"])
    sign_bundle(bundle, FrozenPolicy.load(bundle).seal, key)
    signed = bundle.parent / "signed"
    shutil.copytree(bundle, signed)

    def rewrite(path: Path, fn: Callable[[dict], None]) -> None:
        data = json.loads(path.read_text())
        fn(data)
        path.write_text(json.dumps(data))

    size = (bundle / "model.onnx").stat().st_size
    rewrite(bundle / "manifest.json", lambda m: m["model"].update(bytes=1))
    with pytest.raises(BundleError, match=rf"is {size} bytes, the manifest says 1"):
        FrozenPolicy.load(bundle)
    rewrite(bundle / "manifest.json", lambda m: m["model"].update(bytes=float(size)))
    with pytest.raises(BundleError, match=rf"the manifest says {float(size)!r}"):
        FrozenPolicy.load(bundle)
    rewrite(bundle / "manifest.json", lambda m: m["model"].update(bytes=size))
    rewrite(bundle / "manifest.json", lambda m: m["seal"].update(note="reviewed"))
    with pytest.raises(BundleError, match="and nothing else"):
        FrozenPolicy.load(bundle)
    record = signed / SIGNATURE_FILE
    original = record.read_text()
    for edit, match, public_key in [
        (lambda r: r.update(algorithm="rsa-pss"), "algorithm 'rsa-pss'", None),
        (lambda r: r.update(key="not-hex"), "not a key fingerprint", None),
        (lambda r: r.update(extra=1), "expected exactly the keys", None),
        (lambda r: r.update(key="0" * 16), "but names key 0000000000000000", keys["signer.pub"]),
    ]:
        record.write_text(original)
        rewrite(record, edit)
        with pytest.raises(BundleError, match=match):
            FrozenPolicy.load(signed, public_key=public_key)
    record.write_text(original)
    assert FrozenPolicy.load(signed, public_key=keys["signer.pub"]).signed_by is not None


def test_oversized_files_are_refused_before_they_are_read(bundle: Path) -> None:
    import tracemalloc

    from allocgym.serving import bundle as bundle_module

    for name, limit in [
        (SIGNATURE_FILE, bundle_module._MAX_SIGNATURE_BYTES),
        ("manifest.json", bundle_module._MAX_MANIFEST_BYTES),
    ]:
        case = bundle.parent / f"big-{name}"
        shutil.copytree(bundle, case)
        size = limit + 64 * 2**20
        with (case / name).open("wb") as fh:
            fh.truncate(size)  # sparse: no disk used
        tracemalloc.start()
        try:
            with pytest.raises(BundleError, match=rf"is {size} bytes, over the {limit}"):
                FrozenPolicy.load(case)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 * 2**20, f"{name}: {peak} bytes allocated while refusing it"


def test_malformed_manifests_raise_bundle_errors(bundle: Path, capsys) -> None:
    """Not KeyError, TypeError, ValueError or RecursionError: the CLI answers those with a
    traceback, a BundleError with one line and exit code 2."""
    from allocgym.cli import main

    def case(name: str, edit: Callable[[dict], None] | None = None, text: str = "") -> Path:
        d = bundle.parent / name
        shutil.copytree(bundle, d)
        if edit is not None:
            m = _manifest(d)
            edit(m)
            text = json.dumps(m)
        (d / "manifest.json").write_text(text)
        return d

    cases = {
        case("nul", lambda m: m["model"].update(file="model.onnx\x00x")): "plain file name",
        case("no-dim", lambda m: m["action"].pop("action_dim")): "malformed .*action_dim",
        case("bad-dim", lambda m: m["action"].update(action_dim=None)): "malformed .*TypeError",
        case("deep", text="[" * 200_000 + "]" * 200_000): "nested too deeply",
    }
    for folder, match in cases.items():
        with pytest.raises(BundleError, match=match):
            FrozenPolicy.load(folder)
    with pytest.raises(SystemExit) as exit_:
        main(["decide", "--policy", str(bundle.parent / "deep"), "--request", "x.json"])
    assert exit_.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_the_python_loader_can_require_a_signature(bundle: Path, keys: dict[str, Path]) -> None:
    from allocgym.serving.bundle import load_signing_key

    with pytest.raises(BundleError, match="unsigned"):
        FrozenAllocator.load(bundle, public_key=keys["signer.pub"], environ=ENABLED)
    fingerprint = sign_bundle(
        bundle, FrozenPolicy.load(bundle).seal, load_signing_key(keys["signer"])
    )
    alloc = FrozenAllocator.load(bundle, public_key=keys["signer.pub"], environ=ENABLED)
    assert alloc.policy.signed_by == fingerprint


def test_an_allocator_refuses_a_manifest_edited_after_loading(bundle: Path) -> None:
    policy = FrozenPolicy.load(bundle)
    FrozenAllocator(policy, environ=ENABLED)
    policy.manifest["sector_ids"] = [0] * len(policy.symbols)
    with pytest.raises(BundleError, match="was changed after it was loaded and verified"):
        FrozenAllocator(policy, environ=ENABLED)
