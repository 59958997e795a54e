"""Asset-set networks: permutation symmetry, hand-computed pooling, layout from the env, ONNX."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3 import PPO

from allocgym.agents.policies import (
    AssetPool,
    AssetSetActorCriticPolicy,
    AssetSetExtractor,
    DeterministicActor,
    ObsLayout,
    action_layout_for,
)
from allocgym.agents.train import obs_layout, policy_spec
from allocgym.config import AllocgymConfig
from allocgym.data import synthetic
from allocgym.envs import build_params
from allocgym.errors import ConfigError

N, F, G = 5, 4, 3
LAYOUT = ObsLayout(N, F, G)
OBS_SPACE = gym.spaces.Box(-5.0, 5.0, (LAYOUT.obs_dim,), np.float32)


def _obs(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, LAYOUT.obs_dim)).astype(np.float32)


def _policy(
    action_layout: str, action_dim: int, pooling: str = "mean_max"
) -> AssetSetActorCriticPolicy:
    th.manual_seed(0)
    return AssetSetActorCriticPolicy(
        OBS_SPACE,
        gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32),
        lambda _: 3e-4,
        features_extractor_kwargs={
            "n_assets": N,
            "n_asset_features": F,
            "n_global_features": G,
            "encoder": [16, 8],
            "global_encoder": [4],
            "pooling": pooling,
        },
        head=[8],
        action_layout=action_layout,
        ortho_init=False,  # random (not near-zero) action weights make the check meaningful
        log_std_init=-0.5,
    )


def test_layout_permutation_index_by_hand() -> None:
    lay = ObsLayout(n_assets=3, n_asset_features=2, n_global_features=1)
    assert lay.obs_dim == 7
    # assets reordered (2, 0, 1): columns of asset 2 first, the global column stays last
    assert lay.permutation_index(np.array([2, 0, 1])).tolist() == [4, 5, 0, 1, 2, 3, 6]
    with pytest.raises(ConfigError, match="observation length 8"):
        lay.check(8)


def test_pooling_by_hand() -> None:
    h = th.tensor([[[1.0, -2.0], [3.0, 4.0], [-1.0, 0.0]]])  # (B=1, N=3, E=2)
    assert th.equal(AssetPool(2, "mean")(h), th.tensor([[1.0, 2.0 / 3.0]]))
    assert th.equal(AssetPool(2, "max")(h), th.tensor([[3.0, 4.0]]))
    assert th.equal(AssetPool(2, "mean_max")(h), th.tensor([[1.0, 2.0 / 3.0, 3.0, 4.0]]))
    att = AssetPool(2, "attention")
    assert att.score is not None
    with th.no_grad():  # equal scores: attention is the mean
        att.score.weight.zero_()
        att.score.bias.zero_()
    assert th.allclose(att(h), th.tensor([[1.0, 2.0 / 3.0]]))
    with pytest.raises(ConfigError, match="pooling"):
        AssetPool(2, "sum")  # type: ignore[arg-type]


@settings(max_examples=12, deadline=None)
@given(
    perm=st.permutations(list(range(N))),
    pooling=st.sampled_from(["mean", "max", "mean_max", "attention"]),
    mixing=st.booleans(),
)
def test_extractor_is_permutation_equivariant(perm: list[int], pooling: str, mixing: bool) -> None:
    th.manual_seed(1)
    ext = AssetSetExtractor(
        OBS_SPACE, N, F, G, encoder=[16, 8], pooling=pooling, context_mixing=mixing
    )
    obs = _obs(6, 2)
    p = np.array(perm)
    with th.no_grad():
        h, ctx = ext.embed(th.as_tensor(obs))
        h_p, ctx_p = ext.embed(th.as_tensor(obs[:, LAYOUT.permutation_index(p)]))
    assert h.shape == (6, N, 8)
    assert th.allclose(h_p, h[:, p, :], atol=1e-6)  # embeddings follow the assets
    assert th.allclose(ctx_p, ctx, atol=1e-6)  # the context does not depend on the order
    assert ext.features_dim == N * 8 + ctx.shape[1]


@settings(max_examples=8, deadline=None)
@given(perm=st.permutations(list(range(N))), pooling=st.sampled_from(["mean_max", "attention"]))
def test_actor_is_permutation_equivariant_with_cash(perm: list[int], pooling: str) -> None:
    policy = _policy("asset_cash", N + 1, pooling)
    obs = _obs(7, 3)
    p = np.array(perm)
    obs_p = obs[:, LAYOUT.permutation_index(p)]
    with th.no_grad():
        mean = policy.get_distribution(th.as_tensor(obs)).distribution.mean
        mean_p = policy.get_distribution(th.as_tensor(obs_p)).distribution.mean
        v = policy.predict_values(th.as_tensor(obs))
        v_p = policy.predict_values(th.as_tensor(obs_p))
        actions = th.as_tensor(
            np.random.default_rng(4).uniform(-1, 1, (7, N + 1)), dtype=th.float32
        )
        actions_p = th.cat([actions[:, p], actions[:, N:]], dim=1)
        _, logp, ent = policy.evaluate_actions(th.as_tensor(obs), actions)
        _, logp_p, ent_p = policy.evaluate_actions(th.as_tensor(obs_p), actions_p)
    assert mean.abs().max() > 1e-3  # a non-trivial actor
    assert th.allclose(mean_p[:, :N], mean[:, p], atol=1e-6)  # asset logits follow the assets
    assert th.allclose(mean_p[:, N], mean[:, N], atol=1e-6)  # the cash logit is invariant
    assert th.allclose(v_p, v, atol=1e-6)
    assert th.allclose(logp_p, logp, atol=1e-5)  # the whole distribution is equivariant
    assert th.allclose(ent_p, ent, atol=1e-6)
    assert policy.full_log_std().shape == (N + 1,)
    assert th.equal(policy.full_log_std()[:N], th.full((N,), -0.5))


def test_long_short_and_budget_heads() -> None:
    p = np.array([4, 2, 0, 1, 3])
    obs = _obs(5, 5)
    obs_p = obs[:, LAYOUT.permutation_index(p)]
    long_short = _policy("asset", N)
    budgets = _policy("context", 4)  # 3 strategy families + cash
    with th.no_grad():
        ls = long_short.get_distribution(th.as_tensor(obs)).distribution.mean
        ls_p = long_short.get_distribution(th.as_tensor(obs_p)).distribution.mean
        b = budgets.get_distribution(th.as_tensor(obs)).distribution.mean
        b_p = budgets.get_distribution(th.as_tensor(obs_p)).distribution.mean
    assert ls.shape == (5, N)
    assert th.allclose(ls_p, ls[:, p], atol=1e-6)
    assert b.shape == (5, 4)
    assert th.allclose(b_p, b, atol=1e-6)  # budgets do not depend on the asset order
    with pytest.raises(ConfigError, match="needs 6 actions"):
        _policy("asset_cash", 4)


def test_action_layout_for_modes() -> None:
    assert action_layout_for("weights", True) == "asset_cash"
    assert action_layout_for("weights", False) == "asset"
    assert action_layout_for("budgets", True) == "context"


def test_layout_and_policy_come_from_the_env() -> None:
    market = synthetic(n_assets=4, n_days=700, seed=2)
    cfg = AllocgymConfig()
    params = build_params(market, cfg, "all")
    lay = obs_layout(params)
    fb_layout = params.feature_builder.layout(4)
    assert (lay.n_assets, lay.n_asset_features, lay.n_global_features) == (
        fb_layout["n_assets"],
        fb_layout["n_asset_features"],
        fb_layout["n_global_features"],
    )
    assert lay.obs_dim == params.obs_dim == fb_layout["obs_dim"]
    policy, kwargs = policy_spec(cfg, params)
    assert policy is AssetSetActorCriticPolicy
    assert kwargs["action_layout"] == "asset_cash"
    assert kwargs["features_extractor_kwargs"]["n_asset_features"] == fb_layout["n_asset_features"]


def test_deterministic_actor_matches_predict_and_exports_to_onnx(tmp_path) -> None:
    policy = _policy("asset_cash", N + 1)
    with th.no_grad():  # push some means outside the Box so the clip is exercised
        policy.action_net.ctx_out.bias.fill_(3.0)
    obs = _obs(9, 6)
    expected, _ = policy.predict(obs, deterministic=True)
    actor = DeterministicActor(policy).eval()
    with th.no_grad():
        got = actor(th.as_tensor(obs)).numpy()
    assert np.array_equal(got, expected)
    assert (got[:, N] == 1.0).all()
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "actor.onnx"
    with pytest.warns(DeprecationWarning):  # legacy TorchScript exporter (no onnxscript needed)
        th.onnx.export(
            actor,
            (th.as_tensor(obs),),
            str(path),
            input_names=["obs"],
            output_names=["action"],
            dynamic_axes={"obs": {0: "batch"}},
            dynamo=False,
            opset_version=17,
        )
    out = ort.InferenceSession(str(path)).run(None, {"obs": obs})[0]
    assert np.abs(out - expected).max() <= 1e-5


def test_policy_trains_saves_and_reloads(tmp_path) -> None:
    class Dummy(gym.Env):
        observation_space = OBS_SPACE
        action_space = gym.spaces.Box(-1.0, 1.0, (N + 1,), np.float32)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), float(action[0]), False, False, {}

    model = PPO(
        AssetSetActorCriticPolicy,
        Dummy(),
        n_steps=32,
        batch_size=16,
        n_epochs=1,
        seed=0,
        policy_kwargs={
            "features_extractor_kwargs": {
                "n_assets": N,
                "n_asset_features": F,
                "n_global_features": G,
            },
            "head": [8],
        },
    )
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(64)
    after = model.policy.state_dict()
    assert any(not th.equal(before[k], after[k]) for k in before)  # the optimizer saw every part
    assert not th.equal(before["log_std"], after["log_std"])
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip")
    obs = _obs(4, 7)
    assert np.array_equal(
        loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
    )
