"""The tiny synthetic market and PPO settings (``--set`` overrides) that the pipeline,
evaluation and CLI tests run on: 6 assets in 3 sectors over 720 business days, split so
that train, validation and test each hold about a year, and a PPO small enough to train
in seconds."""

from __future__ import annotations

TINY_DATA = [
    "data.source=synthetic",
    "data.synthetic.n_assets=6",
    "data.synthetic.n_days=720",
    "data.synthetic.n_sectors=3",
    "data.synthetic.seed=5",
    "data.splits.train_end=2001-06-29",
    "data.splits.validation_end=2001-12-31",
    "baselines.lookback=126",
]
TINY_PPO = [
    "train.n_envs=2",
    "train.n_steps=32",
    "train.batch_size=32",
    "train.policy=mlp",
    "train.net_arch=[16]",
]
TINY = [*TINY_DATA, "baselines.rebalance_every=5", *TINY_PPO]
"""The evaluation tests' config: 6 synthetic assets, 720 bars; the test split has 194 bars
(193 decisions)."""
