"""Every SB3 pass-through hyperparameter of ``TrainConfig`` reaches the built model.

Each value is set away from its default; a knob that ``algo_kwargs`` / ``policy_spec`` /
``make_train_env`` dropped would leave SB3's own default and fail here.
"""

from __future__ import annotations

import pytest

from allocgym.agents.train import build_model, make_train_env
from allocgym.config import load_config
from allocgym.data import load_market
from allocgym.envs import build_params

TINY = [
    "data.source=synthetic",
    "data.synthetic.n_assets=4",
    "data.synthetic.n_days=720",
    "data.synthetic.n_sectors=2",
    "data.splits.train_end=2001-06-29",
    "data.splits.validation_end=2001-12-31",
    "train.n_envs=2",
    "train.n_steps=16",
    "train.batch_size=16",
    "train.policy=mlp",
    "train.net_arch=[8]",
]


def _model(*overrides: str):
    cfg = load_config(None, [*TINY, *overrides])
    params = build_params(load_market(cfg.data), cfg, "train")
    _, _, env, vn = make_train_env(cfg, params)
    return build_model(cfg, env, params), vn


def test_learn_writes_no_sb3_temp_folder(monkeypatch, tmp_path) -> None:
    # SB3 makes /tmp/SB3-<time> on every learn() of a model without a logger of its own.
    import tempfile

    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    model, _ = _model()
    model.learn(32)
    assert model.num_timesteps >= 32
    assert [p.name for p in tmp_path.glob("SB3-*")] == []


def test_ppo_hyperparameters_reach_the_model() -> None:
    model, vn = _model(
        "train.gae_lambda=0.8",
        "train.clip_range=0.3",
        "train.ent_coef=0.01",
        "train.vf_coef=0.7",
        "train.max_grad_norm=0.4",
        "train.target_kl=0.05",
        "train.activation=relu",
        "train.normalize_obs=true",
        "train.clip_obs=7.0",
    )
    assert model.gae_lambda == 0.8
    assert model.clip_range(1.0) == pytest.approx(0.3)
    assert model.ent_coef == 0.01 and model.vf_coef == 0.7
    assert model.max_grad_norm == 0.4 and model.target_kl == 0.05
    assert model.policy.activation_fn.__name__ == "ReLU"
    assert vn is not None and vn.clip_obs == 7.0


def test_sac_hyperparameters_reach_the_model() -> None:
    model, _ = _model(
        "train.algo=sac",
        "train.sac.train_freq=3",
        "train.sac.gradient_steps=2",
        "train.sac.ent_coef=0.2",
        "train.sac.buffer_size=500",
    )
    assert model.train_freq.frequency == 3 and model.gradient_steps == 2
    assert float(model.ent_coef) == 0.2 and model.buffer_size == 500


def test_recurrent_hyperparameters_reach_the_policy() -> None:
    model, _ = _model(
        "train.algo=recurrent_ppo",
        "train.recurrent.n_lstm_layers=2",
        "train.recurrent.shared_lstm=true",
    )
    assert model.policy.lstm_actor.num_layers == 2
    assert model.policy.shared_lstm and model.policy.lstm_critic is None
