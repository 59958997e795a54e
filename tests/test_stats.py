"""Sharpe statistics: stationary bootstrap, paired Sharpe tests (against arch), PSR and DSR."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocgym import measures
from allocgym import stats as sst
from allocgym.data import MarketData
from allocgym.errors import ConfigError, DataError


class ScriptedRng:
    """Stands in for ``np.random.Generator``: hands out fixed draws in the documented order."""

    def __init__(self, u: list[list[float]], starts: list[list[int]]) -> None:
        self.u, self.starts = np.array(u), np.array(starts, dtype=np.int64)

    def random(self, size: tuple[int, int]) -> np.ndarray:
        assert size == self.u.shape
        return self.u.copy()

    def integers(self, low: int, high: int, size: tuple[int, int], dtype: type) -> np.ndarray:
        assert (low, size) == (0, self.starts.shape)
        assert self.starts.max() < high
        return self.starts.copy()


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_indices_follow_hand_worked_blocks() -> None:
    """n = 5, mean_block = 2 (p = 0.5): a new block where u < 0.5, and always at position 0.

    Row 0: u = .9 .7 .1 .8 .3 -> blocks start at 0, 2, 4; starts 3, 0, 1, 4, 4:
    block 1 runs 3, 4; block 2 runs 1, 2; block 3 is 4            -> 3 4 1 2 4.
    Row 1: u = .6 .6 .6 .6 .6 -> one block from start 4, wrapping  -> 4 0 1 2 3.
    """
    rng = ScriptedRng(
        u=[[0.9, 0.7, 0.1, 0.8, 0.3], [0.6] * 5],
        starts=[[3, 0, 1, 4, 4], [4, 2, 2, 2, 2]],
    )
    idx = sst.stationary_bootstrap_indices(5, 2.0, 2, rng)  # type: ignore[arg-type]
    assert idx.tolist() == [[3, 4, 1, 2, 4], [4, 0, 1, 2, 3]]
    assert idx.dtype == np.int64


def test_mean_block_one_is_the_iid_bootstrap() -> None:
    """p = 1: every position starts a block, so the indices are the start draws."""
    rng = ScriptedRng(u=[[0.99, 0.5, 0.0]], starts=[[2, 2, 0]])
    assert sst.stationary_bootstrap_indices(3, 1.0, 1, rng).tolist() == [[2, 2, 0]]  # type: ignore[arg-type]


def test_block_lengths_are_geometric_with_the_mean_block() -> None:
    n, mean_block = 20_000, 21.0
    idx = sst.stationary_bootstrap_indices(n, mean_block, 10, np.random.default_rng(3))
    assert idx.shape == (10, n) and idx.min() >= 0 and idx.max() < n
    lengths = []
    for row in idx:
        # a block continues on the next bar (wrapping n-1 -> 0); a new one starts elsewhere
        breaks = np.flatnonzero(row[1:] != (row[:-1] + 1) % n) + 1
        edges = np.r_[0, breaks]
        lengths.append(np.diff(edges))  # completed blocks (the last, cut at n, left out)
    lengths = np.concatenate(lengths)
    # ~9,500 geometric lengths, sd ~20.5: the standard error of their mean is ~0.21
    assert lengths.mean() == pytest.approx(mean_block, abs=1.0)
    assert lengths.min() == 1
    # geometric: P(L = 1) = p = 1/21
    assert np.mean(lengths == 1) == pytest.approx(1 / 21, abs=0.01)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0, "mean_block": 2.0, "n_boot": 1}, "n = 0 bars"),
        ({"n": 5, "mean_block": 0.5, "n_boot": 1}, "mean_block = 0.5"),
        ({"n": 5, "mean_block": 2.0, "n_boot": 0}, "n_boot = 0"),
    ],
)
def test_bootstrap_indices_reject_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        sst.stationary_bootstrap_indices(rng=np.random.default_rng(0), **kwargs)


# ----------------------------------------------------------------------------- paired tests


def _two_series(n: int = 750, edge: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A common market factor plus idiosyncratic noise; ``a`` gets ``edge`` extra per bar."""
    rng = np.random.default_rng(11)
    market = rng.normal(0.0003, 0.01, n)
    a = market + rng.normal(edge, 0.004, n)
    b = market + rng.normal(0.0, 0.004, n)
    return a, b


def test_identical_series_differ_by_zero_with_p_one() -> None:
    a, _ = _two_series()
    res = sst.paired_sharpe_difference(a, a, n_boot=500)
    assert res.diff == 0.0 and res.ci_low == 0.0 and res.ci_high == 0.0
    # every resampled difference is exactly 0 <= 0: p = (1 + 500) / (500 + 1)
    assert res.p_value == 1.0
    assert res.verdict == "indistinguishable" and res.n_valid == 500


def test_clearly_higher_sharpe_has_an_interval_above_zero() -> None:
    a, b = _two_series(edge=0.002)  # +0.5 daily Sharpe of edge on the noise: large
    res = sst.paired_sharpe_difference(a, b, n_boot=99, mean_block=10, seed=4)
    assert res.diff == pytest.approx(
        float(measures.sharpe_ratio(a)) - float(measures.sharpe_ratio(b)), rel=1e-12
    )
    assert res.ci_low > 0 and res.verdict == "better"
    # no resample at or below 0: the smallest p-value 99 draws allow, 1 / (99 + 1)
    assert res.p_value == pytest.approx(0.01)
    assert (res.n_boot, res.n_obs, res.mean_block, res.level) == (99, 750, 10.0, 0.9)


def test_swapping_the_series_mirrors_the_test() -> None:
    """Paired: a and b are resampled with the same indices, so (b, a) mirrors (a, b)."""
    a, b = _two_series(edge=0.0003)
    ab = sst.paired_sharpe_difference(a, b, n_boot=400, seed=2)
    ba = sst.paired_sharpe_difference(b, a, n_boot=400, seed=2)
    assert ba.diff == pytest.approx(-ab.diff, abs=1e-12)
    assert ba.ci_low == pytest.approx(-ab.ci_high, abs=1e-12)
    assert ba.ci_high == pytest.approx(-ab.ci_low, abs=1e-12)
    # P(d <= 0) + P(-d <= 0) counts every draw once (no ties): (1 + k) + (1 + 400 - k)
    assert ab.p_value + ba.p_value == pytest.approx(402 / 401)


def test_batched_pairs_equal_single_tests() -> None:
    a, b = _two_series(edge=0.0005)
    c = 0.5 * (a + b)
    many = sst.paired_sharpe_differences(np.stack([a, b, c]), [(0, 1), (2, 1)], n_boot=300)
    assert many[0] == sst.paired_sharpe_difference(a, b, n_boot=300)
    assert many[1] == sst.paired_sharpe_difference(c, b, n_boot=300)


def test_same_seed_same_result_and_a_worse_series() -> None:
    a, b = _two_series(edge=-0.002)
    r1 = sst.paired_sharpe_difference(a, b, n_boot=200, seed=9)
    assert r1 == sst.paired_sharpe_difference(a, b, n_boot=200, seed=9)
    assert r1.ci_high < 0 and r1.verdict == "worse" and r1.p_value > 0.99
    assert r1.to_dict()["verdict"] == "worse" and r1.to_dict()["level"] == pytest.approx(0.9)


def test_interval_matches_arch_stationary_bootstrap() -> None:
    """Cross-check: arch's StationaryBootstrap percentile interval on the same data.

    The idiosyncratic parts are AR(1) with phi = 0.9, so blocks matter: the block interval
    is over 3x as wide as the i.i.d. one, and a bootstrap that ignored the blocks would fail.
    Independent draws, so the endpoints agree within Monte-Carlo error: with 10,000
    resamples the 5 % / 95 % quantiles of a bootstrap distribution of sd ~1.6 have a
    standard error ~0.035 each, ~0.05 for the difference of two runs; 0.2 is 4 of those.
    """
    from arch.bootstrap import StationaryBootstrap
    from scipy.signal import lfilter

    rng = np.random.default_rng(11)
    n = 500
    market = rng.normal(0.0003, 0.01, n)
    a = market + lfilter([1.0], [1.0, -0.9], rng.normal(0.0001, 0.002, n))
    b = market + lfilter([1.0], [1.0, -0.9], rng.normal(0.0, 0.002, n))
    ours = sst.paired_sharpe_difference(a, b, mean_block=21, n_boot=10_000, alpha=0.10, seed=1)

    def sharpe_diff(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.array([float(measures.sharpe_ratio(x)) - float(measures.sharpe_ratio(y))])

    bs = StationaryBootstrap(21, a, b, seed=np.random.default_rng(12345))
    ci = bs.conf_int(sharpe_diff, reps=10_000, method="percentile", size=0.90).ravel()
    assert ours.ci_low == pytest.approx(ci[0], abs=0.2)
    assert ours.ci_high == pytest.approx(ci[1], abs=0.2)
    iid = sst.paired_sharpe_difference(a, b, mean_block=1, n_boot=2_000, seed=1)
    assert iid.ci_high - iid.ci_low < 0.5 * (ci[1] - ci[0])


def test_paired_test_rejects_bad_input() -> None:
    a, b = _two_series()
    with pytest.raises(DataError, match="returns_a has 750 bars and returns_b 749"):
        sst.paired_sharpe_difference(a, b[:-1])
    bad = a.copy()
    bad[[3, 7]] = np.nan
    with pytest.raises(DataError, match=r"returns_a holds 2 non-finite returns \(first at bar 3\)"):
        sst.paired_sharpe_difference(bad, b)
    with pytest.raises(DataError, match="at least 2 bars"):
        sst.paired_sharpe_difference(a[:1], b[:1])
    with pytest.raises(ConfigError, match=r"alpha = 1\.5"):
        sst.paired_sharpe_difference(a, b, alpha=1.5)
    with pytest.raises(ConfigError, match="mean_block = 0"):
        sst.paired_sharpe_difference(a, b, mean_block=0)


def test_flat_series_has_no_defined_difference() -> None:
    """Zero volatility: no Sharpe ratio, so no interval (not a fake 0)."""
    a, _ = _two_series()
    res = sst.paired_sharpe_difference(np.zeros_like(a), a, n_boot=50)
    assert math.isnan(res.diff) and math.isnan(res.p_value) and res.verdict == "undefined"
    assert res.n_valid == 50  # every resample of an all-cash series scores Sharpe 0


def test_short_series_get_no_verdict() -> None:
    """Fewer than MIN_BLOCKS mean blocks of bars: the wrap-around bootstrap narrows the
    interval (a block as long as the series is a rotation of it), so the verdict is
    withheld whatever the interval says; the numbers stay reported."""
    a, b = _two_series()
    a = a + 0.002  # a clear winner on any length
    for n, block, verdict in [(209, 21, "unreliable"), (210, 21, "better"), (63, 6, "better")]:
        res = sst.paired_sharpe_difference(a[:n], b[:n], mean_block=block, n_boot=200)
        assert res.verdict == verdict, (n, block, res)
        assert math.isfinite(res.p_value) and math.isfinite(res.ci_low)
        if verdict == "unreliable":
            assert res.note.startswith("209 bars hold fewer than 10 mean blocks of 21 bars")
            assert res.to_dict()["note"] == res.note
    three = sst.paired_sharpe_difference(a[:3], b[:3], n_boot=200)
    assert three.verdict == "unreliable"
    assert three.ci_high - three.ci_low < 1e-9  # every resample is a rotation of the series


def test_all_cash_resamples_score_zero_not_dropped() -> None:
    """A book in cash on most bars: the resamples where it is flat throughout have Sharpe
    0 (as a flat validation episode does), not left out in its favour."""
    rng = np.random.default_rng(3)
    ref = rng.normal(0.0008, 0.01, 252)
    agent = np.zeros(252)
    agent[:10] = rng.normal(0.003, 0.01, 10)
    res = sst.paired_sharpe_difference(agent, ref, n_boot=256, mean_block=5)
    assert res.n_valid == 256 and res.note == ""
    idx = sst.stationary_bootstrap_indices(252, 5, 256, np.random.default_rng(0))  # one chunk
    flat = (agent[idx] == 0).all(axis=1)
    assert flat.any()  # the case at hand
    sa = np.where(flat, 0.0, measures.sharpe_ratio(agent[idx], periods_per_year=252))
    d = sa - measures.sharpe_ratio(ref[idx], periods_per_year=252)
    assert res.p_value == (1 + np.count_nonzero(d <= 0)) / (d.size + 1)


# ----------------------------------------------------------------------------- PSR / DSR


def test_psr_against_hand_computed_values() -> None:
    """SR 0.1 per period, n = 101: z = 0.1 * sqrt(100) / sqrt(denominator).

    Normal returns (skew 0, kurtosis 3): denominator 1 + 2/4 * 0.01 = 1.005,
    z = 0.997509, Phi(z) = 0.840741. Skew -1, kurtosis 6: 1 + 0.1 + 5/4 * 0.01 = 1.1125,
    z = 0.948091, Phi(z) = 0.828458.
    """
    assert sst.probabilistic_sharpe_ratio(0.1, 101) == pytest.approx(0.840741, abs=1e-6)
    assert sst.probabilistic_sharpe_ratio(0.1, 101, -1.0, 6.0) == pytest.approx(0.828458, abs=1e-6)
    # against a benchmark equal to the Sharpe ratio itself: a coin flip
    assert sst.probabilistic_sharpe_ratio(0.1, 101, benchmark=0.1) == 0.5
    assert math.isnan(sst.probabilistic_sharpe_ratio(float("nan"), 10))
    assert math.isnan(sst.probabilistic_sharpe_ratio(0.1, 1))


def test_dsr_reproduces_bailey_lopez_de_prado_example() -> None:
    """Their numerical example: SR 2.5 (annual), 1250 days, skew -3, kurtosis 10, N = 100,
    V[SR] = 1/2 annualised: DSR = 0.9004."""
    v_daily = 0.5 / 250
    d = math.sqrt(v_daily / 2)  # two trials at a -/+ d have ddof=1 variance 2 d^2 = V
    sr0 = sst.expected_max_sharpe([0.0 - d, 0.0 + d], n_trials=100)
    assert sr0 * math.sqrt(250) == pytest.approx(1.7894, abs=1e-4)
    dsr = sst.probabilistic_sharpe_ratio(2.5 / math.sqrt(250), 1250, -3.0, 10.0, sr0)
    assert dsr == pytest.approx(0.9004, abs=1e-4)


def test_single_trial_dsr_is_the_psr() -> None:
    assert sst.expected_max_sharpe([0.1], n_trials=1) == 0.0
    assert sst.expected_max_sharpe([0.1, float("nan")], n_trials=5) == 0.0  # one finite Sharpe
    r = np.random.default_rng(0).normal(0.001, 0.01, 400)
    dsr, sr0 = sst.deflated_sharpe_ratio(r, [0.1], n_trials=1)
    sr, skew, kurt, n = sst.sharpe_moments(r)
    assert sr0 == 0.0 and n == 400
    assert dsr == sst.probabilistic_sharpe_ratio(sr, n, skew, kurt)


def test_the_trial_variance_pools_within_selections() -> None:
    """By hand: groups a (1, 3) and b (10, 14) give SS 2 + 8 over 1 + 1 degrees of freedom
    = 5; c's single trial and the NaN add nothing; one group is numpy's ddof=1 variance."""
    sharpes = [1.0, 3.0, 10.0, 14.0, 100.0, float("nan")]
    groups = ["a", "a", "b", "b", "c", "a"]
    assert sst.trial_sharpe_variance(sharpes, groups) == 5.0
    assert sst.trial_sharpe_variance(sharpes[:4]) == float(np.var(sharpes[:4], ddof=1))
    assert math.isnan(sst.trial_sharpe_variance([1.0, 2.0], ["a", "b"]))
    assert sst.expected_max_sharpe([1.0, 2.0], 10, ["a", "b"]) == 0.0  # V unknown
    # the grouped SR_0 is the ungrouped one of any two values whose variance is 5
    grouped = sst.expected_max_sharpe(sharpes, 8, groups)
    assert grouped == pytest.approx(sst.expected_max_sharpe([0.0, math.sqrt(10.0)], 8), rel=1e-14)
    with pytest.raises(ValueError, match="2 group labels for 3"):
        sst.trial_sharpe_variance([1.0, 2.0, 3.0], ["a", "b"])


@settings(deadline=None, max_examples=30)
@given(
    st.lists(st.floats(-0.2, 0.2), min_size=2, max_size=20),
    st.integers(2, 1000),
    st.integers(2, 1000),
)
def test_more_trials_raise_the_bar(sharpes: list[float], n1: int, n2: int) -> None:
    lo, hi = sorted((n1, n2))
    assert sst.expected_max_sharpe(sharpes, hi) >= sst.expected_max_sharpe(sharpes, lo) - 1e-15


def test_sharpe_moments_use_the_measures_sharpe() -> None:
    r = np.random.default_rng(4).normal(0.0005, 0.01, 300)
    assert sst.sharpe_moments(r)[0] == float(measures.sharpe_ratio(r, periods_per_year=1))
    flat = np.full(3, 0.5)  # zero volatility, positive mean: +inf as in allocgym.measures
    assert sst.sharpe_moments(flat)[0] == math.inf
    assert sst.sharpe_moments(flat)[1:3] == (0.0, 3.0)
    assert math.isnan(sst.probabilistic_sharpe_ratio(sst.sharpe_moments(flat)[0], 3))


@pytest.mark.filterwarnings("ignore::UserWarning")  # the bundled sample's data notes
def test_bench_stats_reports_interleaved_medians(
    monkeypatch: pytest.MonkeyPatch, sp500: MarketData
) -> None:
    """``allocgym bench stats --quick`` on scripted call times: rounds alternate which side
    goes first (ours, ref | ref, ours | ours, ref), each row reports the medians in its
    unit and the reference / ours ratios."""
    from scripted_clock import ScriptedClock

    import allocgym.bench.stats

    n_days = sp500.n_days
    # ours 3, 1, 1.5 (median 1.5, mean 1.83); ref 8, 4, 5 (median 5): wall, in call order
    wall = [3.0, 8.0, 4.0, 1.0, 1.5, 5.0]
    cpu = [1.0, 2.0, 2.0, 1.0, 1.0, 2.0]
    clock = ScriptedClock([w * 1e-3 for w in wall] * 2, [c * 1e-3 for c in cpu] * 2)
    monkeypatch.setattr(allocgym.bench.stats, "time", clock)
    rows = allocgym.bench.stats.run(quick=True)
    assert clock.unused == 0
    boot, regime = rows
    assert list(boot) == ["case", "size", "unit", "ours_wall", "ours_cpu", "ref_wall",
                          "ref_cpu", "speedup_wall", "speedup_cpu"]  # fmt: skip
    assert (boot["case"], boot["size"], boot["unit"]) == (
        "paired bootstrap", "300 bars x 100 resamples", "ms"
    )  # fmt: skip
    got = [boot[k] for k in ("ours_wall", "ref_wall", "speedup_wall", "ours_cpu", "ref_cpu")]
    assert got == pytest.approx([1.5, 5.0, 5.0 / 1.5, 1.0, 2.0], rel=1e-12)
    assert boot["speedup_cpu"] == pytest.approx(2.0, rel=1e-12)
    # the regime row is per bar: the path covers every bar of the sample, the reference 20
    assert (regime["case"], regime["size"], regime["unit"]) == (
        "regime, per bar", f"S&P {n_days} bars", "us"
    )  # fmt: skip
    ours, ref = 1.5e3 / n_days, 5.0e3 / 20
    assert regime["ours_wall"] == pytest.approx(ours, rel=1e-12)
    assert regime["ref_wall"] == pytest.approx(ref, rel=1e-12)
    assert regime["speedup_wall"] == pytest.approx(ref / ours, rel=1e-12)
    assert regime["speedup_cpu"] == pytest.approx((2e3 / 20) / (1e3 / n_days), rel=1e-12)
