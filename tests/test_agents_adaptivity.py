"""The agent's own regime adaptivity: on a synthetic market with a planted crash regime, a
trained tilt-mode agent proposes a much smaller book in the crash than in the calm trend,
before any gate and with the regime multipliers switched off (so the gates cannot be what
cuts the gross)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from allocgym import evaluation as ev
from allocgym.agents import load_agent, train
from allocgym.agents.allocator import SB3PolicyAllocator
from allocgym.config import config_from_dict
from allocgym.data import SYNTHETIC_REGIMES, load_market

FLAT = {"trend": 1.0, "mean_reversion": 1.0, "high_volatility": 1.0, "uncertain": 1.0}


@pytest.mark.slow
def test_trained_agent_cuts_its_proposed_gross_in_the_crash(tmp_path) -> None:
    cfg = config_from_dict(
        {
            "data": {
                "source": "synthetic",
                "synthetic": {"n_assets": 8, "n_days": 2520, "seed": 11, "n_sectors": 8},
                "splits": {"train_end": "2006-12-31", "validation_end": "2008-06-30"},
            },
            "risk": {
                "regime_budget_multipliers": FLAT,
                "regime_capacity_multipliers": FLAT,
                "max_symbol_weight": 0.25,
                "max_sector_gross": 1.0,
            },
            "env": {
                "action_mode": "tilt",
                "decision_interval": 5,
                "tilt_gross_scale": 2.0,
                "episode_length": 126,
            },
            "train": {
                "total_timesteps": 40960,
                "n_envs": 16,
                "n_steps": 64,
                "batch_size": 256,
                "n_epochs": 5,
                "learning_rate": 5e-4,
                "gamma": 0.9,
                "log_std_init": -1.0,
                "normalize_reward": True,
                "eval_freq": 0,
                "checkpoint_freq": 0,
                "device": "cpu",
                "seed": 0,
            },
        }
    )
    market = load_market(cfg.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(cfg, tmp_path / "run", market=market)
        model, vn, _ = load_agent(tmp_path / "run", "final")
        params = ev.evaluation_params(market, cfg, "all")
        agent = SB3PolicyAllocator(model, vn, params.action_spec, name="ppo")
        (bt,) = ev.run_allocators([agent], params=params)
    true = market.regimes[bt.bars]
    gross = np.abs(bt.proposed).sum(axis=1)  # before the gates
    calm = gross[true == SYNTHETIC_REGIMES.index("calm_trend")].mean()
    crash = gross[true == SYNTHETIC_REGIMES.index("high_vol_crash")].mean()
    # measured 0.515 (calm 0.81, crash 0.42) with this seed; an untrained agent proposes
    # the prior's full book in every regime (ratio 1.0)
    assert crash <= 0.6 * calm, (calm, crash)
