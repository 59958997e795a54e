"""ONNX export (``allocgym.agents.export``): torch action map vs numpy, parity, manifest, refusals."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch as th
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_serving_support import (
    exported_bundle,
    small_market,
    sp500,
    tiny_config,
    trained_run,
    untrained_bundle,
    workdir,
)

from allocgym.actions import ActionSpec
from allocgym.agents.export import (
    MIN_PARITY_OBS,
    PARITY_TOL,
    ObsNormalizer,
    TorchActionMap,
    export_model,
)
from allocgym.config import config_from_dict, config_hash
from allocgym.errors import ConfigError, ExportParityError
from allocgym.serving import ONNX_OPSET, FrozenPolicy

SPECS = {
    "long_only": ActionSpec("weights", 7, 3, True, 3.0, 0.1, 1.0),
    "long_short": ActionSpec("weights", 7, 3, False, 3.0, 0.3, 1.2),
    "budgets": ActionSpec("budgets", 7, 3, True, 2.5, 0.1, 1.0),
}


@pytest.mark.parametrize("name", list(SPECS))
@settings(deadline=None, max_examples=60)
@given(data=st.data())
def test_torch_action_map_matches_numpy_action_spec(name: str, data: st.DataObject) -> None:
    spec = SPECS[name]
    a = data.draw(arrays(np.float32, (5, spec.action_dim), elements=st.floats(-3, 3, width=32)))
    ref = spec.to_weights(a) if spec.mode == "weights" else spec.to_budgets(a)
    got = TorchActionMap(spec)(th.as_tensor(a)).numpy()
    assert got.dtype == np.float64
    assert got.shape == ref.shape
    # the same float64 ops in the same order; exp may differ by an ulp
    assert np.max(np.abs(got - ref)) <= 1e-15


def test_torch_action_map_hand_values() -> None:
    # long-only: a = (1, 0 | cash 0) -> softmax(3, 0, 0) -> e^3 / (e^3 + 2)
    spec = ActionSpec("weights", 2, 0, True, 3.0, 0.1, 1.0)
    w = TorchActionMap(spec)(th.tensor([[1.0, 0.0, 0.0]])).numpy()[0]
    e3 = np.exp(3.0)
    assert w[0] == pytest.approx(e3 / (e3 + 2.0), rel=1e-15)
    assert w[1] == pytest.approx(1.0 / (e3 + 2.0), rel=1e-15)
    # long/short: a = (1, -1, 1) * 0.5 -> gross 1.5 > 1.2 -> scaled by 0.8
    spec = ActionSpec("weights", 3, 0, False, 3.0, 0.5, 1.2)
    w = TorchActionMap(spec)(th.tensor([[2.0, -1.0, 1.0]])).numpy()[0]
    assert w.tolist() == pytest.approx([0.4, -0.4, 0.4], rel=1e-15)


def test_obs_normalizer_is_bit_identical_to_vecnormalize() -> None:
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    rng = np.random.default_rng(0)
    rms = RunningMeanStd(shape=(9,))
    rms.update(rng.normal(3.0, 2.0, size=(50, 9)))
    obs = rng.normal(3.0, 30.0, size=(200, 9)).astype(np.float32)
    eps, clip = 1e-8, 10.0
    ref = np.clip((obs - rms.mean) / np.sqrt(rms.var + eps), -clip, clip).astype(np.float32)
    got = ObsNormalizer(rms.mean, rms.var, eps, clip)(th.as_tensor(obs)).numpy()
    assert got.dtype == np.float32
    assert np.array_equal(got, ref)
    assert (np.abs(got) == clip).any()  # the clip is exercised


def test_export_run_writes_a_verified_bundle_with_full_parity() -> None:
    bundle = exported_bundle()
    manifest = json.loads((bundle / "manifest.json").read_text())
    data = (bundle / "model.onnx").read_bytes()
    assert manifest["model"]["sha256"] == hashlib.sha256(data).hexdigest()
    model = onnx.load_model_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    assert [(i.domain, i.version) for i in model.opset_import] == [("", ONNX_OPSET)]
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    par = manifest["parity"]
    assert par["n_observations"] >= MIN_PARITY_OBS
    assert par["n_recorded"] > 0 and par["n_random"] > 0
    assert 0.0 <= par["max_abs_diff_proposal"] <= PARITY_TOL
    # also one row at a time (serving's calls) and outside the observation box
    assert par["one_row"]["n_observations"] == 64 and par["outside_box"]["n_observations"] == 512
    for part in (par["one_row"], par["outside_box"]):
        assert 0.0 <= part["max_abs_diff_proposal"] <= PARITY_TOL
    # the VecNormalize statistics went into the graph
    assert manifest["observation"]["normalization"]["in_graph"] is True
    assert manifest["observation"]["normalization"]["clip"] == 10.0
    cfg = tiny_config()
    assert manifest["config_hash"] == config_hash(cfg)
    assert config_from_dict(manifest["config"]) == cfg
    assert manifest["symbols"][:3] == ["AAPL", "AMD", "BAC"]
    assert len(manifest["sectors"]) == len(manifest["symbols"]) == 20
    assert manifest["features"]["obs_dim"] == manifest["observation"]["obs_dim"]
    assert manifest["action"]["mode"] == "weights" and manifest["proposal"]["dim"] == 20
    assert manifest["risk_limits"]["max_symbol_weight"] == cfg.risk.max_symbol_weight
    assert manifest["cost_model"] == {"commission_bps": 1.0, "spread_mult": 1.0, "impact_k": 0.1}
    assert "train_summary" in manifest["metrics"] and "best_evaluation" in manifest["metrics"]
    assert manifest["versions"]["onnx"] != "not installed"
    assert manifest["run"]["which"] == "best"
    # the exported model's own step, the training's versions and the data it trained on
    assert manifest["run"]["step"] == manifest["metrics"]["best_evaluation"]["step"]
    assert manifest["run"]["versions"]["torch"] == manifest["versions"]["torch"]
    assert manifest["run"]["data"]["symbols"] == manifest["symbols"]


def test_the_model_carries_its_metadata_and_documented_dtypes() -> None:
    import onnxruntime as ort

    from allocgym import __version__

    policy = FrozenPolicy.load(exported_bundle())
    model = onnx.load_model_from_string((policy.path / "model.onnx").read_bytes())
    assert (model.producer_name, model.producer_version) == ("allocgym", __version__)
    assert model.doc_string
    props = {p.key: p.value for p in model.metadata_props}
    assert model.metadata_props[-1].key == "model_id" and props["model_id"] == policy.model_id
    assert props["manifest_schema"] == policy.manifest["schema"]
    assert props["action_mode"] == "weights" and props["n_assets"] == "20"
    assert props["obs_dim"] == str(policy.obs_dim)
    assert json.loads(props["proposal_columns"]) == policy.manifest["proposal"]["columns"]
    assert props["exporter"].startswith("pytorch ")
    for value in (*model.graph.input, *model.graph.output):
        assert value.doc_string, value.name
    # onnxruntime reports and returns the dtypes the manifest documents
    session = ort.InferenceSession(
        (policy.path / "model.onnx").read_bytes(), providers=["CPUExecutionProvider"]
    )
    declared = policy.manifest["model"]["outputs"]
    ort_types = {"float32": "tensor(float)", "float64": "tensor(double)"}
    assert {o.name: o.type for o in session.get_outputs()} == {
        name: ort_types[spec["dtype"]] for name, spec in declared.items()
    }
    assert declared["proposal"]["dtype"] == "float64" and declared["action"]["dtype"] == "float32"
    obs = np.zeros((3, policy.obs_dim), dtype=np.float32)
    action, proposal = session.run(["action", "proposal"], {"obs": obs})
    assert (action.dtype, proposal.dtype) == (np.float32, np.float64)


def test_proposals_stay_float64_because_they_land_exactly_on_the_caps() -> None:
    """A saturated long/short action maps to exactly max_symbol_weight, which the gates
    approve untouched; its float32 rounding (0.30000001) would be clipped and coded
    SYMBOL_CAP, an intervention training never saw."""
    from allocgym.costs import CostModel
    from allocgym.risk import GateContext, ReasonCode, RiskGateChain, RiskLimits

    spec = SPECS["long_short"]
    action = np.array([[1.0, -1.0, 1.0, 0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    proposal = TorchActionMap(spec)(th.as_tensor(action)).numpy()
    assert proposal[0, :3].tolist() == [0.3, -0.3, 0.3]
    n = spec.n_assets
    limits = RiskLimits(
        max_symbol_weight=0.3, max_gross=1.2, long_only=False, max_sector_gross=1.0,
        max_turnover=10.0, max_participation=10.0, slippage_budget_bps=1e6,
    )  # fmt: skip
    ctx = GateContext(
        current_weights=np.zeros((1, n)), equity=np.full(1, 1e6), prices=np.ones((1, n)),
        adv_notional=np.full((1, n), 1e12), volatility=np.full((1, n), 0.01),
        spread_bps=np.ones((1, n)), sector_ids=np.arange(n), regime=np.zeros(1, dtype=int),
        tradable=np.ones((1, n), dtype=bool),
    )  # fmt: skip
    chain = RiskGateChain(limits, CostModel())
    exact = chain.apply(proposal, ctx)
    assert np.array_equal(exact.approved, proposal)
    assert not exact.symbol_reasons.any()
    rounded = chain.apply(proposal.astype(np.float32).astype(np.float64), ctx)
    assert (rounded.symbol_reasons[0, :3] & ReasonCode.SYMBOL_CAP).all()


def test_exported_graph_matches_sb3_on_fresh_observations() -> None:
    from allocgym.agents import SB3PolicyAllocator, load_agent
    from allocgym.envs import build_params

    model, vn, cfg = load_agent(trained_run(), "best")
    params = build_params(sp500(), cfg, "all")
    frozen = FrozenPolicy.load(exported_bundle())
    rng = np.random.default_rng(11)
    obs = rng.uniform(params.obs_low, params.obs_high, size=(300, params.obs_dim)).astype(
        np.float32
    )
    ref = SB3PolicyAllocator(model, vn, params.action_spec).propose(obs)
    got = frozen(obs)
    assert np.max(np.abs(got - ref)) <= PARITY_TOL
    assert np.allclose(got.sum(axis=1) <= 1.0 + 1e-12, True)


@pytest.mark.parametrize(
    ("mode", "long_only", "algo"),
    [
        ("budgets", True, "ppo"),
        ("tilt", True, "ppo"),
        ("weights", False, "ppo"),
        ("weights", True, "sac"),
        ("weights", True, "a2c"),
    ],
)
def test_other_modes_and_algorithms_export_within_tolerance(
    mode: str, long_only: bool, algo: str
) -> None:
    frozen = FrozenPolicy.load(untrained_bundle(mode, long_only, algo))
    par = frozen.manifest["parity"]
    assert par["max_abs_diff_proposal"] <= PARITY_TOL
    assert frozen.mode == mode
    obs = np.zeros((3, frozen.obs_dim), np.float32)
    out = frozen(obs)
    if mode == "budgets":
        assert out.shape == (3, 4)
        assert np.allclose(out.sum(axis=1), 1.0, atol=1e-12)
    elif mode == "tilt":  # the clipped action: tilts per symbol, then the gross head
        assert out.shape == (3, 7) and np.all(np.abs(out) <= 1.0)
        assert np.array_equal(out, np.clip(frozen.actions(obs).astype(np.float64), -1, 1))
    elif not long_only:
        assert (np.abs(out).sum(axis=1) <= 1.0 + 1e-12).all()  # max_gross of the config


def _small_model(algo: str = "ppo", **train: object):
    from allocgym.agents.train import build_model
    from allocgym.envs import PortfolioVecEnv, build_params

    cfg = config_from_dict(
        {
            "data": {
                "source": "synthetic",
                "synthetic": {"n_assets": 6, "n_days": 500, "seed": 5, "n_sectors": 3},
            },
            "env": {"split": "all"},
            "train": {
                "policy": "mlp",
                "algo": algo,
                "n_envs": 2,
                "device": "cpu",
                "batch_size": 64,
                **train,
            },
        }
    )
    params = build_params(small_market(), cfg, "all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, PortfolioVecEnv(params=params, n_envs=2, seed=0), params)
    return model, cfg


def test_parity_failure_raises_and_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import allocgym.agents.export as export

    class Skewed(TorchActionMap):
        def forward(self, action: th.Tensor) -> th.Tensor:
            return super().forward(action * 1.01)  # a subtly different action map

    monkeypatch.setattr(export, "TorchActionMap", Skewed)
    model, cfg = _small_model()
    out = workdir() / "skewed"
    with pytest.raises(ExportParityError, match="differ by"):
        export_model(model, None, cfg, out, market=small_market(), n_recorded=64, n_random=64)
    assert not out.exists() or not any(out.iterdir())


def test_recurrent_ppo_is_refused_with_a_clear_error() -> None:
    model, cfg = _small_model("recurrent_ppo", n_steps=32)
    with pytest.raises(ConfigError, match="RecurrentPPO cannot be exported"):
        export_model(
            model, None, cfg, workdir() / "rppo", market=small_market(), n_recorded=8, n_random=8
        )


def test_export_refuses_non_empty_folder_and_foreign_universe(tmp_path: Path) -> None:
    model, cfg = _small_model()
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        export_model(model, None, cfg, tmp_path, market=small_market(), n_recorded=8, n_random=8)
    from allocgym.data import synthetic

    other = synthetic(n_assets=5, n_days=500, seed=5, n_sectors=3)
    with pytest.raises(ConfigError, match="another universe"):
        export_model(model, None, cfg, tmp_path / "x", market=other, n_recorded=8, n_random=8)


def test_cli_export(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from allocgym.cli import app

    out = tmp_path / "cli-bundle"
    res = CliRunner().invoke(
        app,
        [
            "export",
            "--run",
            str(trained_run()),
            "--out",
            str(out),
            "--n-recorded",
            "128",
            "--n-random",
            "128",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "parity on 256 observations" in res.output
    # progress: each stage on its own line with the seconds since the start
    for stage in ("loading the market", "tracing the ONNX graph", "recording 128 parity",
                  "checking ONNX against SB3 on 256 observations", "writing the bundle"):  # fmt: skip
        assert stage in res.output, res.output
    assert "] loading the market and precomputing features" in res.output
    policy = FrozenPolicy.load(out)
    assert policy.sha256 in res.output


def test_cli_keygen_export_sign_and_serve_require_signature(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from allocgym.cli import app

    runner = CliRunner()
    key = tmp_path / "signer.pem"
    res = runner.invoke(app, ["keygen", "--out", str(key)])
    assert res.exit_code == 0, res.output
    assert key.is_file() and (tmp_path / "signer.pem.pub").is_file()
    out = tmp_path / "signed"
    args = ["export", "--run", str(trained_run()), "--out", str(out), "--n-recorded", "64",
            "--n-random", "64", "--sign", str(key)]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    policy = FrozenPolicy.load(out, public_key=tmp_path / "signer.pem.pub")
    assert f"signed the seal {policy.seal} with key {policy.signed_by}" in res.output
    # serve refuses an unsigned bundle before it binds anything
    res = runner.invoke(
        app,
        ["serve", "--policy", str(untrained_bundle()), "--require-signature",
         str(tmp_path / "signer.pem.pub"), "--port", "1"],
    )  # fmt: skip
    assert res.exit_code != 0
    assert "unsigned" in str(res.exception) + res.output
    # so do decide and audit replay
    pub = str(tmp_path / "signer.pem.pub")
    for cmd in (["decide"], ["audit", "replay", str(tmp_path / "none.jsonl")]):
        res = runner.invoke(
            app, [*cmd, "--policy", str(untrained_bundle()), "--require-signature", pub]
        )
        assert res.exit_code != 0 and "unsigned" in str(res.exception) + res.output, cmd
    # a key file that is not an Ed25519 private key stops the export before any work
    res = runner.invoke(app, [*args[:4], str(tmp_path / "x"), *args[5:9], "--sign", f"{key}.pub"])
    assert res.exit_code != 0 and not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("n_recorded", "n_random"), [(0, 0), (-5, 100), (100, -1), (10**11, 100), (100, 10**6 + 1)]
)
def test_export_refuses_a_parity_check_on_nothing(tmp_path, n_recorded, n_random) -> None:
    """A bundle checked on no observation (or a negative count, or one whose observations
    would not fit in memory) is refused before any work."""
    cfg = config_from_dict({})
    with pytest.raises(ConfigError, match=rf"n_recorded={n_recorded}, n_random={n_random}"):
        export_model(None, None, cfg, tmp_path / "b", n_recorded=n_recorded, n_random=n_random)
    assert not (tmp_path / "b").exists()


def test_a_moved_bundle_keeps_its_runs_ledger_and_checkpoint(tmp_path: Path) -> None:
    """Evaluated from a deploy folder, a bundle's DSR had fallen back to one trial (the
    ledger is looked for beside the bundle only) and its checkpoint read 'frozen': the
    manifest names the training run and checkpoint, and the run's ledger is used."""
    import shutil

    from allocgym.evaluation import evaluate_run

    moved = tmp_path / "deploy" / "a" / "b" / "bundle"
    shutil.copytree(exported_bundle(), moved)
    run = FrozenPolicy.load(moved).manifest["run"]
    # another study's ledger beside the copy: it must not judge this bundle's run (it had
    # been read first, and the run it does not list called killed)
    decoy = moved.parent / "trials.jsonl"
    decoy.write_text(
        '{"config_hash": "c", "seed": 0, "run_dir": "/elsewhere/r0", "status": "completed", '
        '"metrics": {"val_sharpe": 1.0}, "run_id": "0123456789abcdef"}\n'
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate_run(moved, baselines="none", market=sp500())
    # found (it holds this one run, so the note says the seeds stand in for its variance)
    assert res.dsr["ledger"] == str(Path(run["run_dir"]).parent / "trials.jsonl")
    assert "holds 1 completed trial(s)" in res.dsr["note"]
    assert "not in the ledger" not in res.dsr["note"]
    (entry,) = res.meta["checkpoints"].values()
    assert entry == {"run": run["run_dir"], "model": run["which"], "step": run["step"]}
