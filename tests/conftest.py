"""Shared fixtures: the real S&P 500 sample, a small synthetic market (both immutable) and
the evaluation tests' tiny config and market (``eval_cfg``, ``eval_market``:
``tiny_configs.TINY``)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from tiny_configs import TINY

from allocgym.config import AllocgymConfig, load_config
from allocgym.data import MarketData, load_market, load_sp500, synthetic


@pytest.fixture(autouse=True, scope="session")
def _sb3_logdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests that build an SB3 model themselves (not through ``build_model``) would leave
    an empty ``/tmp/SB3-<time>`` folder per ``learn``: SB3 honours ``SB3_LOGDIR``."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def sp500() -> MarketData:
    """skfolio's S&P 500 sample (20 symbols, 8313 bars), default-fill warning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_sp500()


@pytest.fixture(scope="session")
def small_synth() -> MarketData:
    """Seeded synthetic market: 6 symbols in 3 sectors, 500 bars, all three true regimes present (seed 5)."""
    return synthetic(n_assets=6, n_days=500, seed=5, n_sectors=3)


@pytest.fixture(scope="module")
def eval_cfg() -> AllocgymConfig:
    return load_config(None, TINY)


@pytest.fixture(scope="module")
def eval_market(eval_cfg: AllocgymConfig) -> MarketData:
    return load_market(eval_cfg.data)
