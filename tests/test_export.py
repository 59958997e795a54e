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


def test_exported_graph_matches_sb3_on_fresh_observations() -> None:
    from test_serving_support import sp500

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
