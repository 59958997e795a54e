"""The DCC-GARCH dynamic-correlation feature of the env (``features.correlation_model``):
point in time, equal to the filter run by hand, in the observation, refused by serving."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from allocgym.config import config_from_dict, config_hash
from allocgym.data import MarketData
from allocgym.dcc import DCCGarch
from allocgym.envs import EnvParams, core
from allocgym.errors import BundleError, ConfigError
from allocgym.features import dcc_mean_correlation

FIRST, FIT = 600, 400


@pytest.fixture(scope="module")
def series(sp500: MarketData) -> np.ndarray:
    return dcc_mean_correlation(sp500.returns, FIRST, FIT)


def test_each_bar_is_the_mean_off_diagonal_of_the_filtered_forecast(
    sp500: MarketData, series: np.ndarray
) -> None:
    """Fitted on the FIT bars before the first decision bar, then one update per bar: the
    value at bar t is the mean off-diagonal entry of R_{t+1} given returns up to t."""
    r = np.nan_to_num(sp500.returns)
    model = DCCGarch().fit(r[FIRST - FIT : FIRST])
    n = sp500.n_assets
    for t in range(FIRST, FIRST + 30):
        model.update(r[t])
        corr = model.correlation_
        expected = (corr.sum() - n) / (n * (n - 1))
        assert series[t] == expected
    assert (series[:FIRST] == 0.0).all()
    later = series[FIRST:]
    assert np.isfinite(later).all() and (np.abs(later) < 1.0).all()
    assert later.std() > 1e-3  # it moves with the market: dynamic, not a constant


def test_the_feature_is_point_in_time(sp500: MarketData, series: np.ndarray) -> None:
    """Returns after bar t (here: the future scrambled) do not move the value at bar t.

    Within 1e-8: the fit's matrix products may round differently in the last bit for the
    same numbers held at another memory address, and the likelihood optimiser carries that
    to about 1e-10 in the parameters (measured 2.4e-10 here)."""
    t = FIRST + 500
    future = sp500.returns.copy()
    future[t + 1 :] = np.random.default_rng(0).permutation(future[t + 1 :])
    again = dcc_mean_correlation(future, FIRST, FIT)
    np.testing.assert_allclose(again[: t + 1], series[: t + 1], rtol=0, atol=1e-8)
    assert np.abs(again[t + 1 :] - series[t + 1 :]).max() > 1e-4


def test_too_short_a_fit_window_is_refused(sp500: MarketData) -> None:
    with pytest.raises(ConfigError, match="at least 250 bars before the first decision bar 200"):
        dcc_mean_correlation(sp500.returns, 200, 1000)


def test_the_env_observes_the_dcc_correlation(sp500: MarketData) -> None:
    """The observation's mean_correlation slot holds the DCC series of this split (fitted
    before its first decision bar), not the EWMA estimate."""
    raw = {"env": {"split": "validation"}, "features": {"mean_correlation": True}}
    ewma = EnvParams.from_config(sp500, config_from_dict(raw))
    dcc_raw = {**raw, "features": {**raw["features"], "correlation_model": "dcc_garch"}}
    cfg = config_from_dict(dcc_raw)
    params = EnvParams.from_config(sp500, cfg)
    expected = dcc_mean_correlation(sp500.returns, params.lo, cfg.features.dcc_fit_bars)
    slot = params.feature_builder.obs_dim(sp500.n_assets) - 1
    state, obs = core.reset(params, core.seed_keys(np.arange(4)))
    bars = np.asarray(state.t)
    assert np.array_equal(obs[:, slot], expected[bars].astype(np.float32))
    assert not np.array_equal(obs[:, slot], ewma.features.template[bars, slot])


def test_serving_refuses_a_bundle_with_the_dcc_feature(tmp_path: Path) -> None:
    from test_serving_support import reseal_bundle, untrained_bundle

    from allocgym.serving.allocator import FrozenAllocator

    def dcc(m: dict) -> None:
        raw = m["config"]
        raw["features"] = {**raw["features"], "mean_correlation": True}
        raw["features"]["correlation_model"] = "dcc_garch"
        m["config_hash"] = config_hash(config_from_dict(raw))

    bundle = Path(shutil.copytree(untrained_bundle(), tmp_path / "bundle"))
    reseal_bundle(bundle, dcc)
    with pytest.raises(BundleError, match="correlation_model = 'dcc_garch'"):
        FrozenAllocator.load(bundle)
