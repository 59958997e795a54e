"""Risk estimates: hand-computed values, sklearn / numpy parity, batch axis, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.covariance import LedoitWolf

from allocgym import estimates as est
from allocgym.errors import DataError

RETURNS = np.array([[0.01, 0.02], [0.03, 0.00], [-0.01, 0.04]])


def test_sample_covariance_hand_computed() -> None:
    # means 0.01, 0.02; deviations [0, 0], [0.02, -0.02], [-0.02, 0.02]; divisor 2
    cov = est.sample_covariance(RETURNS)
    expected = np.array([[0.0004, -0.0004], [-0.0004, 0.0004]])
    assert np.allclose(cov, expected, rtol=0, atol=1e-18)
    cov0 = est.sample_covariance(RETURNS, ddof=0)
    assert np.allclose(cov0, expected * 2 / 3, rtol=0, atol=1e-18)


def test_sample_covariance_bit_identical_to_numpy() -> None:
    x = np.random.default_rng(1).normal(0, 0.01, (300, 40))
    assert np.array_equal(est.sample_covariance(x), np.cov(x.T))
    corr = est.cov_to_corr(est.sample_covariance(x))
    off = ~np.eye(40, dtype=bool)
    assert np.array_equal(corr[off], np.corrcoef(x.T)[off])


@pytest.mark.parametrize("shape", [(60, 5), (40, 80), (500, 3), (10, 10)])
def test_ledoit_wolf_matches_sklearn(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(0, 0.01, shape) + rng.normal(0, 0.005, (shape[0], 1))
    x *= rng.uniform(0.5, 2.0, shape[1])
    ref = LedoitWolf().fit(x)
    cov, shrink = est.ledoit_wolf(x)
    assert abs(float(shrink) - ref.shrinkage_) <= 1e-12
    assert np.max(np.abs(cov - ref.covariance_)) <= 1e-12 * np.max(np.abs(ref.covariance_))


def test_ledoit_wolf_leaves_constant_columns_out() -> None:
    """Names without a traded window (all-zero columns) are as if absent: the active
    block is sklearn's on the active names alone, in a batch beside a window without
    them; the zero columns stay 0 (they had pulled the shrinkage target and intensity)."""
    rng = np.random.default_rng(7)
    x = rng.normal(0, 0.01, (60, 30)) + rng.normal(0, 0.005, (60, 1))
    padded = np.concatenate([x, np.zeros((60, 48))], axis=1)
    ref = LedoitWolf().fit(x)
    full = np.concatenate([x, x * 1.5, x[:, :18] * 0.5], axis=1) + rng.normal(0, 1e-3, (60, 78))
    cov, shrink = est.ledoit_wolf(np.stack([padded, full]))
    assert abs(float(shrink[0]) - ref.shrinkage_) <= 1e-12
    assert np.max(np.abs(cov[0, :30, :30] - ref.covariance_)) <= 1e-12 * ref.covariance_.max()
    assert not cov[0, 30:].any() and not cov[0, :, 30:].any()
    assert abs(float(shrink[1]) - LedoitWolf().fit(full).shrinkage_) <= 1e-12


def test_ledoit_wolf_assume_centered_matches_sklearn() -> None:
    x = np.random.default_rng(3).normal(0.001, 0.02, (50, 8))
    ref = LedoitWolf(assume_centered=True).fit(x)
    cov, shrink = est.ledoit_wolf(x, assume_centered=True)
    assert abs(float(shrink) - ref.shrinkage_) <= 1e-12
    assert np.max(np.abs(cov - ref.covariance_)) <= 1e-15


def test_batch_axis_equals_single_windows() -> None:
    x = np.random.default_rng(4).normal(0, 0.01, (3, 50, 6))
    cov, shrink = est.ledoit_wolf(x)
    ewma = est.ewma_covariance(x, 10.0)
    samp = est.sample_covariance(x)
    for e in range(3):
        c1, s1 = est.ledoit_wolf(x[e])
        assert np.allclose(cov[e], c1, rtol=1e-13, atol=0)
        assert abs(shrink[e] - float(s1)) <= 1e-14
        assert np.allclose(ewma[e], est.ewma_covariance(x[e], 10.0), rtol=1e-13, atol=0)
        assert np.allclose(samp[e], np.cov(x[e].T), rtol=1e-13, atol=0)


def test_ewma_weights_hand_computed() -> None:
    w = est.ewma_weights(3, 1.0)
    assert np.allclose(w, np.array([0.25, 0.5, 1.0]) / 1.75, rtol=0, atol=1e-16)
    w2 = est.ewma_weights(4, 2.0)
    # newest / one bar older = 2 ** (1 / halflife)
    assert np.isclose(w2[-1] / w2[-2], 2**0.5, rtol=1e-15)


def test_ewma_covariance_hand_computed() -> None:
    # halflife 1, 2 obs: weights [1/3, 2/3]; zero-mean (RiskMetrics) variant
    x = np.array([[0.03, 0.0], [0.0, 0.06]])
    cov = est.ewma_covariance(x, 1.0, demean=False)
    expected = np.array([[0.0009 / 3, 0.0], [0.0, 2 * 0.0036 / 3]])
    assert np.allclose(cov, expected, rtol=0, atol=1e-18)
    # demeaned: mean = [0.01, 0.04]; deviations [0.02, -0.04], [-0.01, 0.02]
    cov_d = est.ewma_covariance(x, 1.0)
    var0 = (0.02**2) / 3 + 2 * (0.01**2) / 3
    cov01 = (0.02 * -0.04) / 3 + 2 * (-0.01 * 0.02) / 3
    assert np.isclose(cov_d[0, 0], var0, rtol=1e-13)
    assert np.isclose(cov_d[0, 1], cov01, rtol=1e-13)


def test_ewma_long_halflife_tends_to_ml_covariance() -> None:
    x = np.random.default_rng(5).normal(0, 0.01, (100, 4))
    cov = est.ewma_covariance(x, 1e9)
    assert np.allclose(cov, est.sample_covariance(x, ddof=0), rtol=1e-6, atol=0)


def test_ewma_correlation_tracks_recent_regime() -> None:
    # first half: anti-correlated; recent half: perfectly correlated
    rng = np.random.default_rng(6)
    a = rng.normal(0, 0.01, 200)
    x = np.column_stack([a, np.r_[-a[:100], a[100:]]])
    corr = est.ewma_correlation(x, 5.0)
    assert corr[0, 1] > 0.99
    assert est.cov_to_corr(est.sample_covariance(x))[0, 1] < 0.5


def test_cov_to_corr_and_distance_hand_computed() -> None:
    corr = est.cov_to_corr(np.array([[4.0, 2.0, 0.0], [2.0, 9.0, 0.0], [0.0, 0.0, 0.0]]))
    assert np.isclose(corr[0, 1], 1 / 3, rtol=1e-15)
    assert np.array_equal(np.diag(corr), np.ones(3))
    assert corr[2, 0] == 0.0 and corr[0, 2] == 0.0
    dist = est.correlation_distance(np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.5], [0.0, 0.5, 1.0]]))
    assert dist[0, 1] == 1.0
    assert np.isclose(dist[0, 2], np.sqrt(0.5), rtol=1e-15)
    assert np.isclose(dist[1, 2], 0.5, rtol=1e-15)
    assert np.array_equal(np.diag(dist), np.zeros(3))


def test_bad_inputs_raise_data_error() -> None:
    with pytest.raises(DataError, match="n_obs, n_assets"):
        est.sample_covariance(np.zeros(5))
    with pytest.raises(DataError, match="NaN"):
        est.ledoit_wolf(np.array([[0.0, np.nan], [0.1, 0.2]]))
    with pytest.raises(DataError, match="halflife"):
        est.ewma_covariance(RETURNS, 0.0)
    with pytest.raises(DataError, match="negative variance"):
        est.cov_to_corr(np.array([[-1.0, 0.0], [0.0, 1.0]]))


@settings(deadline=None, max_examples=40)
@given(
    n_obs=st.integers(3, 40),
    n_assets=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
    halflife=st.floats(0.5, 100.0),
)
def test_estimates_are_symmetric_psd(n_obs: int, n_assets: int, seed: int, halflife: float) -> None:
    x = np.random.default_rng(seed).normal(0, 0.02, (n_obs, n_assets))
    cov, shrink = est.ledoit_wolf(x)
    assert 0.0 <= float(shrink) <= 1.0
    for c in (cov, est.sample_covariance(x), est.ewma_covariance(x, halflife)):
        assert np.allclose(c, c.T, rtol=0, atol=1e-18)
        assert np.linalg.eigvalsh(c).min() >= -1e-12 * max(1.0, np.abs(c).max())
        corr = est.cov_to_corr(c)
        assert np.all(np.abs(corr) <= 1.0)
        d = est.correlation_distance(corr)
        assert np.all((d >= 0) & (d <= 1))
