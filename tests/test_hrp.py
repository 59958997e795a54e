"""HRP: skfolio golden parity (S&P sample and random data), hand-computed splits, bounds,
vectorised leaf order, allocate() over a batch, and (slow) the speed ratio to skfolio."""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy.spatial.distance import pdist
from skfolio.cluster import HierarchicalClustering, LinkageMethod
from skfolio.optimization import HierarchicalRiskParity
from skfolio.seriation import HierarchicalSeriation

from allocgym.allocator import AllocationContext, Allocator
from allocgym.baselines.hrp import HRP, LINKAGE_METHODS, leaf_order, recursive_bisection
from allocgym.config import HRPConfig
from allocgym.data import load_sp500
from allocgym.errors import DataError, Infeasible


def _skfolio(method: str, min_w: float = 0.0, max_w: float = 1.0) -> HierarchicalRiskParity:
    seriation = HierarchicalSeriation(
        hierarchical_clustering_estimator=HierarchicalClustering(
            linkage_method=LinkageMethod(method)
        ),
        optimal_ordering=False,
    )
    return HierarchicalRiskParity(
        min_weights=min_w, max_weights=max_w, seriation_estimator=seriation
    )


@pytest.fixture(scope="module")
def sp500_returns() -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = load_sp500()
    return np.asarray(md.returns[1:], dtype=np.float64)


def _random_returns(n_obs: int, n_assets: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_blocks = max(2, n_assets // 5)
    block = rng.integers(0, n_blocks, n_assets)
    factors = rng.normal(0, 0.01, (n_obs, n_blocks))
    return factors[:, block] + rng.normal(0, 0.01, (n_obs, n_assets)) * rng.uniform(
        0.5, 2, n_assets
    )


@pytest.mark.parametrize("method", LINKAGE_METHODS)
def test_matches_skfolio_on_sp500(sp500_returns: np.ndarray, method: str) -> None:
    for x in (sp500_returns, sp500_returns[-756:]):
        ref = _skfolio(method).fit(x).weights_
        ours = HRP(HRPConfig(linkage_method=method)).fit(x).weights_
        assert np.max(np.abs(ours - ref)) <= 1e-12


@pytest.mark.parametrize("method", LINKAGE_METHODS)
@pytest.mark.parametrize(("n_obs", "n_assets", "seed"), [(500, 7, 0), (300, 33, 1), (260, 64, 2)])
def test_matches_skfolio_on_random_data(method: str, n_obs: int, n_assets: int, seed: int) -> None:
    x = _random_returns(n_obs, n_assets, seed)
    ref = _skfolio(method).fit(x).weights_
    ours = HRP(HRPConfig(linkage_method=method)).fit(x).weights_
    assert np.max(np.abs(ours - ref)) <= 1e-12


@pytest.mark.parametrize(("min_w", "max_w"), [(0.03, 0.08), (0.0, 0.06), (0.045, 1.0)])
def test_bounds_match_skfolio(sp500_returns: np.ndarray, min_w: float, max_w: float) -> None:
    x = sp500_returns[-1000:]
    ref = _skfolio("ward", min_w, max_w).fit(x).weights_
    ours = HRP(HRPConfig(min_weight=min_w, max_weight=max_w)).fit(x).weights_
    assert np.max(np.abs(ours - ref)) <= 1e-12
    assert ours.min() >= min_w - 1e-12 and ours.max() <= max_w + 1e-12
    assert abs(ours.sum() - 1.0) <= 1e-12


def test_two_uncorrelated_assets_inverse_variance() -> None:
    # one split: alpha = 1 - 1 / (1 + 4) = 0.8
    w = recursive_bisection(np.diag([1.0, 4.0]), np.array([0, 1]))
    assert np.allclose(w, [0.8, 0.2], rtol=0, atol=1e-15)


def test_four_assets_hand_computed() -> None:
    # order [2, 0, 3, 1]; halves {2, 0} and {3, 1}, block-diagonal covariance.
    cov = np.diag([1.0, 2.0, 1.0, 2.0])
    cov[0, 2] = cov[2, 0] = 0.5
    # left half {2,0}: ivp = [1/1, 1/1]/2 -> var = (1 + 1 + 2*0.5) / 4 = 0.75
    # right half {3,1}: ivp = [1/2, 1/2]/1 -> [0.5, 0.5] -> var = 0.25*2 + 0.25*2 = 1.0
    alpha = 1 - 0.75 / 1.75
    # second level, each leaf pair: {2},{0} var 1,1 -> 0.5/0.5; {3},{1} var 2,2 -> 0.5/0.5
    w = recursive_bisection(cov, np.array([2, 0, 3, 1]))
    expected = np.array([alpha / 2, (1 - alpha) / 2, alpha / 2, (1 - alpha) / 2])
    assert np.allclose(w, expected, rtol=0, atol=1e-15)


def test_odd_split_puts_smaller_half_left() -> None:
    # n = 3: left half is order[:1], right half order[1:] (n // 2, like skfolio). With a
    # diagonal covariance HRP is inverse-variance whatever the split, so the pair {1, 2}
    # is correlated: the split then decides which half the correlated pair sits in.
    cov = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.5, 1.0]])
    w = recursive_bisection(cov, np.array([0, 1, 2]))
    # left {0}: var 1; right {1, 2}: ivp 1/2, 1/2 -> var (1 + 1 + 2 * 0.5) / 4 = 3/4
    # alpha = 1 - 1 / (1 + 3/4) = 3/7; the right 4/7 splits evenly between 1 and 2.
    # (The larger half left, {0, 1} | {2}, gives var 1/2 vs 1 and 1/3 each instead.)
    assert np.allclose(w, [3 / 7, 2 / 7, 2 / 7], rtol=0, atol=1e-15)
    # n = 5, order [4, 3, 2, 1, 0]: left {4, 3}, right {2, 1, 0} -> {2} | {1, 0}
    cov5 = np.diag([1.0, 1.0, 2.0, 1.0, 1.0])
    cov5[0, 1] = cov5[1, 0] = 0.5
    w5 = recursive_bisection(cov5, np.array([4, 3, 2, 1, 0]))
    # top: left {4, 3} var 1/2; right {2, 1, 0}: ivp (1/2, 1, 1) / (5/2) = (1/5, 2/5, 2/5),
    # var 1/25 * 2 + 4/25 * (1 + 1 + 2 * 0.5) = 2/25 + 12/25 = 14/25;
    # alpha = 1 - (1/2) / (1/2 + 14/25) = 28/53 to the left, 25/53 to the right.
    # left {4} | {3}: equal variances -> 14/53 each.
    # right {2} var 2 | {1, 0} var 3/4: alpha = 1 - 2 / (11/4) = 3/11 -> w2 = 25/53 * 3/11,
    # w1 = w0 = 25/53 * 8/11 / 2.
    a = 25 / 53
    expected = [a * 4 / 11, a * 4 / 11, a * 3 / 11, 14 / 53, 14 / 53]
    assert np.allclose(w5, expected, rtol=0, atol=1e-15)


@settings(deadline=None, max_examples=60)
@given(
    n=st.integers(2, 60),
    seed=st.integers(0, 2**31 - 1),
    method=st.sampled_from(LINKAGE_METHODS),
)
def test_leaf_order_equals_scipy(n: int, seed: int, method: str) -> None:
    pts = np.random.default_rng(seed).normal(size=(n, 3))
    z = sch.linkage(pdist(pts), method=method)
    assert np.array_equal(leaf_order(z), sch.leaves_list(z))


def test_leaf_order_on_chained_tree() -> None:
    # points on a line with growing gaps: single linkage chains them (depth n - 1)
    pts = np.cumsum(np.arange(1, 200, dtype=float) ** 1.5)[:, None]
    z = sch.linkage(pdist(pts), method="single")
    assert np.array_equal(leaf_order(z), sch.leaves_list(z))


@settings(deadline=None, max_examples=40)
@given(
    n=st.integers(2, 25),
    seed=st.integers(0, 2**31 - 1),
    lo=st.floats(0.0, 0.04),
    hi=st.floats(0.1, 1.0),
)
def test_bounded_weights_are_valid(n: int, seed: int, lo: float, hi: float) -> None:
    x = _random_returns(80, n, seed)
    if n * lo > 1 or n * hi < 1:
        with pytest.raises(Infeasible):
            HRP(HRPConfig(min_weight=lo, max_weight=hi)).fit(x)
        return
    w = HRP(HRPConfig(min_weight=lo, max_weight=hi)).fit(x).weights_
    assert abs(w.sum() - 1.0) <= 1e-12
    assert w.min() >= lo - 1e-12
    assert w.max() <= hi + 1e-12


def test_fitted_attributes_and_config() -> None:
    x = _random_returns(200, 10, 7)
    model = HRP.from_config(HRPConfig(linkage_method="average", covariance="ledoit_wolf"))
    model.fit(x)
    assert model.params.linkage_method == "average"
    assert model.linkage_.shape == (9, 4)
    assert sorted(model.order_.tolist()) == list(range(10))
    assert model.covariance_.shape == (10, 10)
    assert np.array_equal(np.diag(model.distance_), np.zeros(10))
    # the distance is from the returns' Pearson correlation even with shrinkage
    assert np.allclose(
        model.distance_, np.sqrt(np.clip(0.5 * (1 - np.corrcoef(x.T)), 0, 1)) * (1 - np.eye(10))
    )
    # the covariance estimator is used by the bisection: different weights than sample
    sample = HRP(HRPConfig(linkage_method="average")).fit(x).weights_
    assert np.max(np.abs(sample - model.weights_)) > 1e-6


def test_covariance_distance_source() -> None:
    x = _random_returns(200, 10, 8)
    model = HRP(HRPConfig(covariance="ewma", halflife=20.0, distance_source="covariance")).fit(x)
    from allocgym import estimates

    corr = estimates.ewma_correlation(x, 20.0)
    assert np.allclose(model.distance_, estimates.correlation_distance(corr), rtol=0, atol=1e-15)


def test_allocate_batch_and_zero_variance_assets() -> None:
    x = _random_returns(120, 6, 9)
    y = _random_returns(120, 6, 10)
    y[:, 2] = 0.0  # untradable over the whole window
    ctx = AllocationContext(
        returns=np.stack([x, y]),
        current_weights=np.zeros((2, 6)),
        symbols=tuple("ABCDEF"),
        sector_ids=np.zeros(6, dtype=int),
        regime=np.zeros(2, dtype=int),
        regime_confidence=np.ones(2),
    )
    model = HRP()
    assert isinstance(model, Allocator)
    w = model.allocate(ctx)
    assert w.shape == (2, 6)
    assert np.allclose(w[0], HRP().fit(x).weights_, rtol=0, atol=0)
    assert w[1, 2] == 0.0
    keep = [0, 1, 3, 4, 5]
    assert np.allclose(w[1, keep], HRP().fit(y[:, keep]).weights_, rtol=0, atol=0)
    assert np.allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert model.active_[1].tolist() == [True, True, False, True, True, True]
    # one NaN is refused as the other baselines refuse it, not read as zero variance
    y[5, 3] = np.nan
    with pytest.raises(DataError, match=r"HRP: ctx.returns contains NaN/inf"):
        model.allocate(dataclasses.replace(ctx, returns=np.stack([x, y])))


def test_errors() -> None:
    with pytest.raises(ValidationError, match="linkage_method"):
        HRPConfig(linkage_method="centroid")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="min_weight <= max_weight"):
        HRPConfig(min_weight=0.5, max_weight=0.2)
    x = _random_returns(50, 4, 11)
    x[:, 1] = 0.0
    with pytest.raises(DataError, match=r"assets \[1\]"):
        HRP().fit(x)


@pytest.mark.slow
@pytest.mark.parametrize("n_assets", [20, 100, 500])
def test_at_least_15x_faster_than_skfolio(n_assets: int) -> None:
    from threadpoolctl import threadpool_limits

    x = _random_returns(1000, n_assets, 12)
    ours_t, ref_t = [], []
    # one BLAS thread for both: on a shared machine oversubscribed BLAS threads make
    # timings meaningless (interleaved rounds spread load changes over both)
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(15 if n_assets <= 100 else 5):
            start = time.perf_counter()
            for _ in range(5):
                HRP().fit(x)
            ours_t.append((time.perf_counter() - start) / 5)
            start = time.perf_counter()
            _skfolio("ward").fit(x)
            ref_t.append(time.perf_counter() - start)
    ratio = np.median(ref_t) / np.median(ours_t)
    assert ratio >= 15.0, f"HRP only {ratio:.1f}x faster than skfolio at N={n_assets}"
