"""Statistics of Sharpe ratios: paired bootstrap tests, PSR and the Deflated Sharpe Ratio.

Pure functions over decimal simple returns (``0.01`` = 1 %), time on the last axis.

Paired Sharpe tests
-------------------
:func:`paired_sharpe_difference` compares two allocators walked over the same bars. The
Politis–Romano stationary bootstrap (:func:`stationary_bootstrap_indices`) resamples
blocks of consecutive bars, with geometric lengths of mean ``mean_block`` and wrap-around,
so volatility clustering and autocorrelation survive the resampling; both series are
resampled with the *same* indices (paired), so their common market moves cancel in the
difference. The interval is the bootstrap percentile interval of the annualised
``Sharpe(a) - Sharpe(b)``, the p-value the one-sided ``P(diff <= 0)`` of the bootstrap
distribution with the usual +1 correction, ``(1 + #{diff* <= 0}) / (n_valid + 1)``.
:mod:`arch.bootstrap` (``StationaryBootstrap``) is the reference the tests check the
interval against.

Probabilistic and Deflated Sharpe
---------------------------------
:func:`probabilistic_sharpe_ratio` (Bailey & López de Prado, 2012) and
:func:`deflated_sharpe_ratio` (2014) work with *per-period* (not annualised) Sharpe
ratios, and so does the variance of the trials' Sharpe ratios in
:func:`expected_max_sharpe`: convert annualised ones with ``SR / sqrt(periods_per_year)``
(variances with ``V / periods_per_year``) before use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from allocgym import measures
from allocgym.errors import ConfigError, DataError

__all__ = [
    "EULER_GAMMA",
    "SharpeDifference",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "paired_sharpe_difference",
    "paired_sharpe_differences",
    "probabilistic_sharpe_ratio",
    "sharpe_moments",
    "stationary_bootstrap_indices",
    "trial_sharpe_variance",
]

EULER_GAMMA = 0.5772156649015329
"""Euler–Mascheroni constant (expected maximum of Gaussian trials)."""

_DRAWS_PER_CHUNK = 256
"""Bootstrap draws resampled at once: bounds memory to 256 x n_obs per series."""

MIN_BLOCKS = 10
"""Fewest mean blocks a tested series must hold for a verdict. With wrap-around a block
as long as the series is a rotation of it (the same Sharpe ratio), so the interval
narrows as ``mean_block / n_obs`` grows: under the null (equal Sharpe ratios, iid,
correlation 0.5), p <= 0.05 came out 13 % of the time at 63 bars with 21-bar blocks (3
blocks). Above the cut the test is still somewhat anti-conservative in short samples:
7.1-8.1 % at 10-10.5 blocks (63 bars of 6, 126 of 12, 210 of 21), 6.2 % at 12, 6.8 % at
20 and 4.8 % at 48 blocks (1000 bars), with the 90 % interval excluding 0 15-16 % of the
time at the cut and 12 % at 48 blocks (reviews' simulations, 1500 replications)."""

MIN_VALID_SHARE = 0.95
"""Fewest resamples, as a share of those drawn, that must have a Sharpe difference for a
verdict: the left-out ones are not a random part of the distribution."""

# ----------------------------------------------------------------------------- bootstrap


def stationary_bootstrap_indices(
    n: int, mean_block: float, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Indices of ``n_boot`` Politis–Romano stationary bootstrap resamples of ``n`` bars.

    Each resample is a chain of blocks: position 0 starts a block, and every later
    position starts a new one with probability ``p = 1 / mean_block`` (so block lengths
    are geometric with mean ``mean_block``, the last one cut at ``n``); a block starts at
    a uniformly drawn bar and runs on consecutive bars, wrapping from ``n - 1`` to 0.
    ``mean_block = 1`` is the i.i.d. bootstrap. The same algorithm as
    ``arch.bootstrap.StationaryBootstrap``, vectorised over resamples.

    Parameters
    ----------
    n : int
        Bars in the series (>= 1).
    mean_block : float
        Mean block length in bars (>= 1), e.g. 21 for a month of daily bars.
    n_boot : int
        Resamples (>= 1).
    rng : numpy.random.Generator
        Draws, in this order: ``rng.random((n_boot, n))`` (new-block flags: ``u < p``),
        then ``rng.integers(0, n, (n_boot, n))`` (block starts).

    Returns
    -------
    ndarray of int64, shape (n_boot, n)
        Row ``b`` indexes the bars of resample ``b``.

    Raises
    ------
    ConfigError
        ``n`` or ``n_boot`` below 1, ``mean_block`` not finite or below 1.
    """
    if int(n) != n or n < 1:
        raise ConfigError(f"n = {n!r} bars: pass a series of at least 1 bar")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ConfigError(f"n_boot = {n_boot!r}: pass at least 1 resample (e.g. 2000)")
    if not (math.isfinite(mean_block) and mean_block >= 1.0):
        raise ConfigError(
            f"mean_block = {mean_block!r}: the mean block length must be finite and >= 1 "
            "bar (1 = i.i.d. bootstrap, 21 = about a month of daily bars)"
        )
    n, n_boot = int(n), int(n_boot)
    new_block = rng.random((n_boot, n)) < 1.0 / float(mean_block)
    new_block[:, 0] = True
    starts = rng.integers(0, n, size=(n_boot, n), dtype=np.int64)
    pos = np.arange(n, dtype=np.int64)
    # Position at which each bar's block began: the running max of new-block positions.
    block_pos = np.maximum.accumulate(np.where(new_block, pos, 0), axis=1)
    first_bar = np.take_along_axis(starts, block_pos, axis=1)
    return (first_bar + (pos - block_pos)) % n


def _checked_returns(returns: ArrayLike, names: Sequence[str] | None = None) -> np.ndarray:
    """``returns`` as float64 ``(n_series, n_obs)``; DataError on NaN/inf or < 2 bars."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2:
        raise DataError(f"returns have shape {r.shape}: pass (n_series, n_obs)")
    label = list(names) if names is not None else [f"series {i}" for i in range(r.shape[0])]
    if r.shape[1] < 2:
        raise DataError(f"{label} have {r.shape[1]} returns: a Sharpe ratio needs at least 2 bars")
    bad = ~np.isfinite(r)
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        raise DataError(
            f"{label[i]} holds {int(bad[i].sum())} non-finite returns (first at bar "
            f"{int(np.flatnonzero(bad[i])[0])}): drop or fill them before testing"
        )
    return r


@dataclass(frozen=True)
class SharpeDifference:
    """Paired bootstrap test of ``Sharpe(a) - Sharpe(b)`` (annualised).

    Attributes
    ----------
    diff : float
        Point estimate ``sharpe_a - sharpe_b`` on the observed series.
    sharpe_a, sharpe_b : float
        Annualised Sharpe ratios (``allocgym.measures.sharpe_ratio``).
    ci_low, ci_high : float
        ``(1 - alpha)`` bootstrap percentile interval of the difference.
    p_value : float
        One-sided p-value of H0: diff <= 0, ``(1 + #{diff* <= 0}) / (n_valid + 1)``.
    alpha : float
        1 minus the interval's coverage (0.10 -> a 90 % interval).
    n_boot : int
        Resamples drawn.
    n_valid : int
        Resamples whose difference is finite (a resample in which a series is flat at a
        non-zero return has no Sharpe ratio; one all in cash has 0); the interval and
        p-value use only these.
    mean_block : float
        Mean block length, bars.
    n_obs : int
        Bars of each series.
    seed : int
        Seed of the resampling ``np.random.Generator``.
    """

    diff: float
    sharpe_a: float
    sharpe_b: float
    ci_low: float
    ci_high: float
    p_value: float
    alpha: float
    n_boot: int
    n_valid: int
    mean_block: float
    n_obs: int
    seed: int

    @property
    def level(self) -> float:
        """Coverage of the interval, ``1 - alpha``."""
        return 1.0 - self.alpha

    @property
    def note(self) -> str:
        """Why the interval and p-value cannot be read as calibrated ("" when they can):
        fewer than :data:`MIN_BLOCKS` mean blocks of bars, or fewer than
        :data:`MIN_VALID_SHARE` of the resamples with a Sharpe difference."""
        if self.n_obs < MIN_BLOCKS * self.mean_block:
            return (
                f"{self.n_obs} bars hold fewer than {MIN_BLOCKS} mean blocks of "
                f"{self.mean_block:g} bars, so the bootstrap interval is too narrow: test "
                "on more bars (a smaller evaluation.bootstrap.mean_block models less of the "
                "returns' dependence, and short tests stay somewhat too permissive)"
            )
        if self.n_valid < MIN_VALID_SHARE * self.n_boot:
            return (
                f"only {self.n_valid} of {self.n_boot} resamples had a Sharpe difference "
                "(a series flat at a non-zero return on the others)"
            )
        return ""

    @property
    def verdict(self) -> str:
        """``"better"`` (interval above 0), ``"worse"`` (below 0), ``"indistinguishable"``
        (contains 0), ``"undefined"`` (no finite interval) or ``"unreliable"`` (a finite
        interval that cannot be read as calibrated: :attr:`note` says why)."""
        if not (math.isfinite(self.ci_low) and math.isfinite(self.ci_high)):
            return "undefined"
        if self.note:
            return "unreliable"
        if self.ci_low > 0.0:
            return "better"
        if self.ci_high < 0.0:
            return "worse"
        return "indistinguishable"

    def to_dict(self) -> dict[str, Any]:
        """Fields plus ``level``, ``verdict`` and ``note`` (for ``results.json``)."""
        return {**asdict(self), "level": self.level, "verdict": self.verdict, "note": self.note}


def _bootstrap_sharpes(
    returns: np.ndarray,
    mean_block: float,
    n_boot: int,
    rng: np.random.Generator,
    periods_per_year: float,
) -> np.ndarray:
    """Annualised Sharpe of every series on every resample, shape (n_series, n_boot).

    Resamples are drawn in chunks of ``_DRAWS_PER_CHUNK``; every series uses the same
    indices (the pairing). A resample in which a series is all zeros (in cash) has
    Sharpe 0, as a flat validation episode does: left out as undefined, those resamples,
    where a mostly flat book did worst, would favour it.
    """
    n_series, n_obs = returns.shape
    out = np.empty((n_series, n_boot))
    done = 0
    while done < n_boot:
        k = min(_DRAWS_PER_CHUNK, n_boot - done)
        idx = stationary_bootstrap_indices(n_obs, mean_block, k, rng)
        for s in range(n_series):
            drawn = returns[s][idx]
            with np.errstate(divide="ignore", invalid="ignore"):
                sharpe = measures.sharpe_ratio(drawn, periods_per_year=periods_per_year)
            out[s, done : done + k] = np.where((drawn == 0.0).all(axis=1), 0.0, sharpe)
        done += k
    return out


def _check_test_params(mean_block: float, n_boot: int, alpha: float) -> None:
    if int(n_boot) != n_boot or n_boot < 1:
        raise ConfigError(f"n_boot = {n_boot!r}: pass at least 1 resample (e.g. 2000)")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha = {alpha!r} must lie in (0, 1): 0.10 gives a 90 % interval")
    if not (math.isfinite(mean_block) and mean_block >= 1.0):
        raise ConfigError(f"mean_block = {mean_block!r}: the mean block length must be >= 1 bar")


def paired_sharpe_differences(
    returns: ArrayLike,
    pairs: Sequence[tuple[int, int]],
    *,
    mean_block: float = 21,
    n_boot: int = 2000,
    alpha: float = 0.10,
    seed: int = 0,
    periods_per_year: float = 252,
    names: Sequence[str] | None = None,
) -> list[SharpeDifference]:
    """:func:`paired_sharpe_difference` for many pairs of series over the same bars.

    Every series is resampled once with the same indices, so each pair's result equals
    ``paired_sharpe_difference(returns[a], returns[b], ...)`` with the same settings.

    Parameters
    ----------
    returns : array_like, shape (n_series, n_obs)
        Decimal simple returns, one row per series, over the same bars.
    pairs : sequence of (int, int)
        Row indices ``(a, b)``: the test of ``Sharpe(a) - Sharpe(b)``.
    mean_block, n_boot, alpha, seed, periods_per_year
        See :func:`paired_sharpe_difference`.
    names : sequence of str, optional
        Row labels used in error messages.

    Returns
    -------
    list of SharpeDifference
        In the order of ``pairs``.

    Raises
    ------
    DataError
        Non-finite returns, fewer than 2 bars, or a pair index out of range.
    ConfigError
        ``mean_block < 1``, ``n_boot < 1`` or ``alpha`` outside (0, 1).
    """
    r = _checked_returns(returns, names)
    _check_test_params(mean_block, n_boot, alpha)
    n_series, n_obs = r.shape
    for a, b in pairs:
        if not (0 <= a < n_series and 0 <= b < n_series):
            raise DataError(f"pair ({a}, {b}) is out of range for {n_series} series")
    used = sorted({i for pair in pairs for i in pair})
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        point = np.asarray(measures.sharpe_ratio(r, periods_per_year=periods_per_year))
    boot = _bootstrap_sharpes(r[used], mean_block, n_boot, rng, periods_per_year)
    draws = dict(zip(used, boot, strict=True))
    out: list[SharpeDifference] = []
    for a, b in pairs:
        with np.errstate(invalid="ignore"):
            d = draws[a] - draws[b]
        d = d[np.isfinite(d)]
        diff = float(point[a] - point[b])
        if d.size and math.isfinite(diff):
            lo, hi = np.quantile(d, [alpha / 2.0, 1.0 - alpha / 2.0])
            p = (1.0 + np.count_nonzero(d <= 0.0)) / (d.size + 1.0)
        else:
            lo = hi = p = float("nan")
        result = SharpeDifference(
            diff=diff, sharpe_a=float(point[a]), sharpe_b=float(point[b]),
            ci_low=float(lo), ci_high=float(hi), p_value=float(p), alpha=float(alpha),
            n_boot=int(n_boot), n_valid=int(d.size), mean_block=float(mean_block),
            n_obs=int(n_obs), seed=int(seed),
        )  # fmt: skip
        out.append(result)
    return out


def paired_sharpe_difference(
    returns_a: ArrayLike,
    returns_b: ArrayLike,
    *,
    mean_block: float = 21,
    n_boot: int = 2000,
    alpha: float = 0.10,
    seed: int = 0,
    periods_per_year: float = 252,
) -> SharpeDifference:
    """Paired stationary-bootstrap test of annualised ``Sharpe(a) - Sharpe(b)``.

    Both series are resampled with the same block indices
    (:func:`stationary_bootstrap_indices`); the interval is the bootstrap percentile
    interval and the p-value the one-sided share of resampled differences ``<= 0`` with the
    +1 correction. A resample in which a series is all zeros (in cash) scores Sharpe 0;
    one whose difference is still not finite (a series flat at a non-zero return) is left
    out and counted (``n_boot - n_valid``). The verdict is ``"unreliable"`` on fewer than
    :data:`MIN_BLOCKS` mean blocks of bars or :data:`MIN_VALID_SHARE` valid resamples.

    Parameters
    ----------
    returns_a, returns_b : array_like, shape (n_obs,)
        Decimal simple returns over the same bars (e.g. an agent and 1/N).
    mean_block : float
        Mean block length in bars (21: about a month of daily bars).
    n_boot : int
        Resamples.
    alpha : float
        1 minus the interval's coverage (0.10: a 90 % interval).
    seed : int
        Seed of the ``np.random.Generator``: same seed, same result.
    periods_per_year : float
        Annualisation of the Sharpe ratios (252 for daily bars).

    Returns
    -------
    SharpeDifference

    Raises
    ------
    DataError
        Series of different lengths, non-finite returns, or fewer than 2 bars.
    ConfigError
        ``mean_block < 1``, ``n_boot < 1`` or ``alpha`` outside (0, 1).
    """
    a = np.asarray(returns_a, dtype=np.float64)
    b = np.asarray(returns_b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise DataError(
            f"returns_a {a.shape} and returns_b {b.shape}: pass two 1-D series (n_obs,)"
        )
    if a.shape != b.shape:
        raise DataError(
            f"returns_a has {a.shape[0]} bars and returns_b {b.shape[0]}: a paired test needs "
            "the two series over the same bars (align them on their dates first)"
        )
    return paired_sharpe_differences(
        np.stack([a, b]), [(0, 1)], mean_block=mean_block, n_boot=n_boot, alpha=alpha,
        seed=seed, periods_per_year=periods_per_year, names=("returns_a", "returns_b"),
    )[0]  # fmt: skip


# ----------------------------------------------------------------------------- PSR / DSR


def sharpe_moments(returns: ArrayLike) -> tuple[float, float, float, int]:
    """Per-period Sharpe ratio, skewness, Pearson kurtosis and length of a return series.

    The Sharpe ratio is ``allocgym.measures.sharpe_ratio`` with ``periods_per_year = 1``
    (NaN below 2 returns, +-inf for zero volatility with a non-zero mean; the PSR treats
    both as undefined). Skewness 0 and kurtosis 3 stand in where they are undefined.

    Parameters
    ----------
    returns : array_like, shape (n_steps,)
        Decimal simple returns.

    Returns
    -------
    sharpe, skew, kurtosis : float
    n_obs : int
    """
    r = np.asarray(returns, dtype=np.float64)
    n = r.shape[-1]
    sd = float(measures.sample_std(r)) if n > 1 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        sr = float(measures.sharpe_ratio(r, periods_per_year=1))
    skew = float(sps.skew(r, bias=True)) if n > 2 and sd > 0 else 0.0
    kurt = float(sps.kurtosis(r, fisher=False, bias=True)) if n > 3 and sd > 0 else 3.0
    return sr, skew, kurt, n


def probabilistic_sharpe_ratio(
    sharpe: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0, benchmark: float = 0.0
) -> float:
    """Probabilistic Sharpe Ratio ``P(SR* > benchmark)`` (Bailey & López de Prado, 2012).

    ``Phi((SR - SR_b) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))`` with per-period
    (not annualised) Sharpe ratios, skewness ``g3`` and Pearson kurtosis ``g4`` (3 for a
    normal distribution).

    Parameters
    ----------
    sharpe : float
        Observed per-period Sharpe ratio.
    n_obs : int
        Number of return observations.
    skew, kurtosis : float
        Of the returns (kurtosis not in excess).
    benchmark : float
        Per-period Sharpe ratio to beat.

    Returns
    -------
    float
        Probability in [0, 1]; NaN for fewer than 2 observations or a NaN Sharpe.
    """
    if n_obs < 2 or not math.isfinite(sharpe):
        return float("nan")
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if denom <= 0:
        return float("nan")
    z = (sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom)
    return float(sps.norm.cdf(z))


def trial_sharpe_variance(
    trial_sharpes: Sequence[float], groups: Sequence[Any] | None = None
) -> float:
    """Variance ``V`` (ddof = 1) of the trials' Sharpe ratios, as :func:`expected_max_sharpe`
    uses it.

    Parameters
    ----------
    trial_sharpes : sequence of float
        Per-period Sharpe ratios of the trials (non-finite ones are ignored).
    groups : sequence, optional
        One label per Sharpe ratio: the selection problem it belongs to (trials scored on
        the same data). ``V`` is then the pooled within-group variance,
        ``sum_k sum_i (SR_ki - mean_k)^2 / sum_k (n_k - 1)``: the spread of trials on the
        same data, without the differences between the groups' data (of a walk-forward
        study's folds, different years). A group of one adds nothing to it.

    Returns
    -------
    float
        NaN when no group holds 2 finite ratios.
    """
    sr = np.asarray(trial_sharpes, dtype=np.float64)
    if groups is None:
        labels = np.zeros(sr.size, dtype=np.int64)
    else:
        if len(groups) != sr.size:
            raise ValueError(f"{len(groups)} group labels for {sr.size} trial Sharpe ratios")
        index: dict[Any, int] = {}
        labels = np.array([index.setdefault(g, len(index)) for g in groups], dtype=np.int64)
    finite = np.isfinite(sr)
    sr, labels = sr[finite], labels[finite]
    ss, dof = 0.0, 0
    for k in np.unique(labels):
        x = sr[labels == k]
        if x.size >= 2:
            ss += float(np.sum((x - x.mean()) ** 2))
            dof += x.size - 1
    return ss / dof if dof else float("nan")


def expected_max_sharpe(
    trial_sharpes: Sequence[float], n_trials: int, groups: Sequence[Any] | None = None
) -> float:
    """Expected maximum per-period Sharpe of ``n_trials`` skill-less trials (DSR's ``SR_0``).

    ``sqrt(V) ((1 - g) Z(1 - 1/N) + g Z(1 - 1/(N e)))``, with ``V`` the variance (ddof=1)
    of the trials' per-period Sharpe ratios (:func:`trial_sharpe_variance`; pooled within
    ``groups`` when given), ``g`` the Euler–Mascheroni constant and ``Z`` the standard
    normal quantile (Bailey & López de Prado, 2014, eq. 2). 0 for a single trial or when
    ``V`` is unknown (fewer than 2 finite trial Sharpe ratios in every group).

    Parameters
    ----------
    trial_sharpes : sequence of float
        Per-period Sharpe ratios of the trials (non-finite ones are ignored).
    n_trials : int
        Number of trials ``N`` (may exceed ``len(trial_sharpes)``).
    groups : sequence, optional
        One selection-problem label per Sharpe ratio (see :func:`trial_sharpe_variance`).
    """
    v = trial_sharpe_variance(trial_sharpes, groups)
    if n_trials < 2 or not math.isfinite(v):
        return 0.0
    z1 = sps.norm.ppf(1.0 - 1.0 / n_trials)
    z2 = sps.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(v) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe_ratio(
    returns: ArrayLike, trial_sharpes: Sequence[float], n_trials: int | None = None
) -> tuple[float, float]:
    """Deflated Sharpe Ratio of a return series (Bailey & López de Prado, 2014).

    The PSR of ``returns`` against ``SR_0 = expected_max_sharpe(trial_sharpes, N)``: the
    probability that the true Sharpe ratio is positive after correcting for selecting the
    best of ``N`` trials and for non-normal returns.

    Parameters
    ----------
    returns : array_like, shape (n_steps,)
        Simple per-period returns.
    trial_sharpes : sequence of float
        Per-period Sharpe ratios of all trials (this one included).
    n_trials : int, optional
        Number of trials ``N``; default ``len(trial_sharpes)``.

    Returns
    -------
    dsr : float
        In [0, 1].
    sr0 : float
        The per-period Sharpe threshold ``SR_0``.
    """
    n_tr = len(trial_sharpes) if n_trials is None else int(n_trials)
    sr0 = expected_max_sharpe(trial_sharpes, n_tr)
    sr, skew, kurt, n = sharpe_moments(returns)
    return probabilistic_sharpe_ratio(sr, n, skew, kurt, sr0), sr0
