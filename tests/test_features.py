"""FeatureBuilder: layout, hand-computed values, bit identity compute == precompute, no lookahead."""

from __future__ import annotations

import json
import warnings
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocgym.config import FeatureConfig, RegimeConfig
from allocgym.data import MarketData, load_sp500, synthetic
from allocgym.errors import ConfigError, DataError
from allocgym.features import (
    FeatureBuilder,
    MarketFeatures,
    _pair_returns,
    alpha_scores,
)
from allocgym.intents import STRATEGY_FAMILIES
from allocgym.regime import REGIME_LABELS, RegimeModel

FLOAT_FIELDS = (
    "template",
    "asset",
    "market_globals",
    "volatility",
    "betas",
    "adv_notional",
    "momentum",
    "intents",
    "intent_confidence",
    "regime_confidence",
)
ALL_FIELDS = (*FLOAT_FIELDS, "regime", "barbell", "tradable", "valid")


@pytest.fixture(scope="module")
def builder() -> FeatureBuilder:
    return FeatureBuilder(FeatureConfig(), RegimeModel(RegimeConfig()))


@pytest.fixture(scope="module")
def sp500() -> MarketData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_sp500()


@pytest.fixture(scope="module")
def sp500_feats(builder: FeatureBuilder, sp500: MarketData) -> MarketFeatures:
    return builder.precompute(sp500)


def _windows(md: MarketData, ts: np.ndarray | list[int], length: int) -> tuple[np.ndarray, ...]:
    """Stacked trailing windows (K, length, N) ending at each t in ``ts``."""
    idx = np.asarray(ts)[:, None] + np.arange(-length + 1, 1)[None, :]
    return (
        md.close[idx],
        md.benchmark_returns[idx],
        md.volume[idx],
        md.spread_bps[idx],
        md.tradable[idx],
    )


def _assert_rows_equal(batch: MarketFeatures, full: MarketFeatures, ts: np.ndarray) -> None:
    for name in ALL_FIELDS:
        a, b = getattr(batch, name), getattr(full, name)[ts]
        assert np.array_equal(a, b), f"{name} differs at bars {ts}"
    assert np.array_equal(batch.horizons, full.horizons)


def _listed_late_market() -> MarketData:
    """Synthetic market where asset 2 lists at bar 320 and asset 4 halts on bars 400..470."""
    md = synthetic(6, 700, 5)
    close = md.close.copy()
    tradable = md.tradable.copy()
    close[:320, 2] = np.nan
    tradable[:320, 2] = False
    tradable[400:471, 4] = False
    return MarketData(
        dates=md.dates,
        symbols=md.symbols,
        close=close,
        volume=md.volume,
        spread_bps=md.spread_bps,
        sectors=md.sectors,
        benchmark_returns=md.benchmark_returns,
        tradable=tradable,
    )


def _perturb_after(md: MarketData, t: int, seed: int) -> MarketData:
    """Every input after bar t replaced by something else."""
    rng = np.random.default_rng(seed)
    close, volume, spread = md.close.copy(), md.volume.copy(), md.spread_bps.copy()
    bench, tradable = md.benchmark_returns.copy(), md.tradable.copy()
    tail = close[t + 1 :].shape
    close[t + 1 :] *= rng.uniform(0.5, 2.0, tail)
    volume[t + 1 :] *= rng.uniform(0.1, 10.0, tail)
    spread[t + 1 :] = rng.uniform(1.0, 100.0, tail)
    bench[t + 1 :] = rng.normal(0.0, 0.05, bench[t + 1 :].shape)
    tradable[t + 1 :] &= rng.random(tail) > 0.3
    return MarketData(
        dates=md.dates,
        symbols=md.symbols,
        close=close,
        volume=volume,
        spread_bps=spread,
        sectors=md.sectors,
        benchmark_returns=bench,
        tradable=tradable,
    )


# ---------------------------------------------------------------------------- layout


def test_layout_n20(builder: FeatureBuilder) -> None:
    w = 20
    expected_asset = [
        *(f"ret_lag{j}" for j in range(w)),
        "ewma_vol",
        "mom_5",
        "mom_21",
        "mom_63",
        "mr_zscore",
        "intent_trend",
        "conf_trend",
        "intent_mean_reversion",
        "conf_mean_reversion",
        "intent_defensive",
        "conf_defensive",
        "beta",
        "log_adv_rel",
        "spread",
        "tradable",
        "weight",
    ]
    expected_global = [
        "regime_trend",
        "regime_mean_reversion",
        "regime_high_volatility",
        "regime_uncertain",
        "regime_confidence",
        "gross",
        "net",
        "drawdown",
        "cash",
    ]
    assert list(builder.asset_feature_names) == expected_asset
    assert list(builder.global_feature_names) == expected_global
    assert builder.n_asset_features == 36
    assert builder.n_global_features == 9
    lay = builder.layout(20)
    assert lay["obs_dim"] == 20 * 36 + 9 == 729 == builder.obs_dim(20)
    assert lay["history"] == builder.history == 301  # 300 regime returns + 1 close
    assert lay["windows"]["regime_returns"] == 300
    assert lay["asset_feature_names"] == expected_asset
    assert lay["strategy_families"] == list(STRATEGY_FAMILIES)
    assert lay["regime_labels"] == list(REGIME_LABELS)
    assert json.loads(json.dumps(lay)) == lay
    names = builder.observation_names([f"S{i}" for i in range(20)])
    assert len(names) == 729
    assert names[36] == "S1.ret_lag0"
    assert names[20 * 36 - 1] == "S19.weight"
    assert names[-1] == "cash"


def test_history_config(sp500: MarketData) -> None:
    regime = RegimeModel(RegimeConfig())
    with pytest.raises(ConfigError, match=r"features\.history = 100"):
        FeatureBuilder(FeatureConfig(history=100), regime)
    # A longer history (and longer windows) changes nothing: only the tail is read.
    long_b = FeatureBuilder(FeatureConfig(history=400), regime)
    short_b = FeatureBuilder(FeatureConfig(), regime)
    assert long_b.history == 400
    ts = [5000, 6000]
    a = long_b.compute(*_windows(sp500, ts, 400))
    b = short_b.compute(*_windows(sp500, ts, 301))
    for name in ALL_FIELDS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    # A regime model with a longer look-back raises the minimum history.
    long_regime = RegimeModel(RegimeConfig(vol_lookback=504))
    # vol windows + the hysteresis memory (29 bars: 28 before the decision bar) + 1 close
    assert FeatureBuilder(FeatureConfig(), long_regime).history == 504 + 21 - 1 + 28 + 1


def test_compute_rejects_bad_windows(builder: FeatureBuilder, sp500: MarketData) -> None:
    close, bench, vol, spread, tr = _windows(sp500, [4000], 301)
    with pytest.raises(DataError, match="history = 301"):
        builder.compute(close[:, 1:], bench[:, 1:], vol[:, 1:], spread[:, 1:], tr[:, 1:])
    with pytest.raises(DataError, match="spread_window"):
        builder.compute(close, bench, vol, spread[:, :, :5], tr)
    with pytest.raises(DataError, match="bench_window"):
        builder.compute(close, bench[:, :-1], vol, spread, tr)
    with pytest.raises(DataError, match="leading axis"):
        builder.compute(close[0], bench, vol, spread, tr)


# ---------------------------------------------------------------------------- values


def _ramp_market(n_days: int = 300) -> MarketData:
    """Three assets growing at constant log rates, constant notional, known spreads."""
    g = np.array([0.01, -0.005, 0.002])
    t = np.arange(n_days)[:, None]
    close = 100.0 * np.exp(g[None, :] * t)
    notional = np.array([1e6, 2e6, 4e6])
    bench = 0.01 * (-1.0) ** np.arange(n_days)
    bench[0] = 0.0
    return MarketData(
        dates=pd.bdate_range("2001-01-01", periods=n_days).to_numpy(),
        symbols=("A", "B", "C"),
        close=close,
        volume=notional[None, :] / close,
        spread_bps=np.tile([250.0, 20.0, 800.0], (n_days, 1)),
        sectors=("x", "x", "y"),
        benchmark_returns=bench,
        tradable=np.ones(close.shape, dtype=bool),
    )


def test_closed_form_values(builder: FeatureBuilder) -> None:
    md = _ramp_market()
    f = builder.compute(*_windows(md, [md.n_days - 1], builder.history))
    names = builder.market_asset_feature_names
    col = {name: i for i, name in enumerate(names)}
    a = f.asset[0].astype(np.float64)  # (3, n_features)
    g = np.array([0.01, -0.005, 0.002])
    sign = np.sign(g)
    # constant log returns: EWMA vol = |g|, every risk-scaled return = sign(g)
    assert np.allclose(f.volatility[0], np.abs(g), rtol=1e-12)
    for j in range(20):
        assert np.allclose(a[:, col[f"ret_lag{j}"]], sign, rtol=1e-6)
    assert np.allclose(a[:, col["ewma_vol"]], np.abs(g) * np.sqrt(252), rtol=1e-6)
    # momentum t-stat = h * g / (|g| sqrt(h)) = sign * sqrt(h), clipped at 5
    mom = np.array([np.sqrt(5), np.sqrt(21), 5.0])
    for h, m in zip((5, 21, 63), mom, strict=True):
        assert np.allclose(a[:, col[f"mom_{h}"]], sign * m, rtol=1e-6)
    # z-score of a linear log-price ramp over 20 bars: 9.5 / sqrt((20^2 - 1) / 12)
    z = 9.5 / np.sqrt(399.0 / 12.0)
    assert np.allclose(a[:, col["mr_zscore"]], sign * z, rtol=1e-6)
    s = sign * mom.mean()
    assert np.allclose(a[:, col["intent_trend"]], np.tanh(s), rtol=1e-6)
    assert np.allclose(a[:, col["conf_trend"]], np.abs(np.tanh(s)), rtol=1e-6)
    assert np.allclose(f.momentum[0], s, rtol=1e-12)
    # autocorrelation 1 -> mean-reversion confidence 0
    assert np.allclose(a[:, col["intent_mean_reversion"]], -np.tanh(sign * z / 2), rtol=1e-6)
    assert np.allclose(a[:, col["conf_mean_reversion"]], 0.0, atol=1e-6)
    # defensive: median vol 0.005
    assert np.allclose(a[:, col["intent_defensive"]], [1 / 3, 1 / 2, 5 / 7], rtol=1e-6)
    assert np.allclose(a[:, col["conf_defensive"]], [0.0, 0.5, 0.8], rtol=1e-6, atol=1e-7)
    # constant returns do not co-move with the benchmark
    assert np.allclose(f.betas[0], 0.0, atol=1e-9)
    # constant notional: ADV exact, log ratio to the median (2e6)
    assert np.allclose(f.adv_notional[0], [1e6, 2e6, 4e6], rtol=1e-12)
    assert np.allclose(a[:, col["log_adv_rel"]], [-np.log(2), 0.0, np.log(2)], atol=1e-6)
    assert np.allclose(a[:, col["spread"]], [2.5, 0.2, 5.0], rtol=1e-6)
    assert a[:, col["tradable"]].tolist() == [1.0, 1.0, 1.0]
    assert f.asset.dtype == np.float32


def _reference(md: MarketData, t: int, i: int, cfg: FeatureConfig) -> dict[str, float]:
    """Naive scalar-loop features of asset i at bar t (all bars tradable)."""
    c, b = md.close[:, i], md.benchmark_returns
    r = [c[s] / c[s - 1] - 1.0 for s in range(t - 99, t + 1)]  # last 100 returns
    x = [float(np.log1p(v)) for v in r]
    lam = 0.5 ** (1.0 / cfg.ewma_halflife)
    num = den = 0.0
    for lag in range(cfg.ewma_window):
        num += lam**lag * x[-1 - lag] ** 2
        den += lam**lag
    sigma = (num / den) ** 0.5
    out = {"sigma": sigma, "lag3": x[-4] / sigma}
    for h in cfg.momentum_horizons:
        out[f"mom_{h}"] = sum(x[-h:]) / (sigma * h**0.5)
    lp = [float(np.log(c[s])) for s in range(t - cfg.zscore_window + 1, t + 1)]
    mean = sum(lp) / len(lp)
    sd = (sum((v - mean) ** 2 for v in lp) / len(lp)) ** 0.5
    out["z"] = (lp[-1] - mean) / sd
    zw = cfg.zscore_window
    out["ac"] = sum(x[-k] * x[-k - 1] for k in range(1, zw + 1)) / sum(
        x[-k] ** 2 for k in range(1, zw + 1)
    )
    bw = cfg.beta_window
    rr, bb = r[-bw:], list(b[t - bw + 1 : t + 1])
    mr, mb = sum(rr) / bw, sum(bb) / bw
    out["beta"] = sum((p - mr) * (q - mb) for p, q in zip(rr, bb, strict=True)) / sum(
        (q - mb) ** 2 for q in bb
    )
    out["adv"] = sum(md.volume[s, i] * c[s] for s in range(t - 20, t + 1)) / 21
    return out


@pytest.mark.parametrize("t", [300, 1234, 2000])
def test_matches_naive_reference_loop(builder: FeatureBuilder, t: int) -> None:
    md = synthetic(5, 2100, 11)
    f = builder.compute(*_windows(md, [t], builder.history))
    col = {name: i for i, name in enumerate(builder.market_asset_feature_names)}
    for i in range(5):
        ref = _reference(md, t, i, builder.cfg)
        assert f.volatility[0, i] == pytest.approx(ref["sigma"], rel=1e-12)
        assert f.asset[0, i, col["ret_lag3"]] == pytest.approx(
            np.clip(ref["lag3"], -5, 5), rel=1e-6
        )
        for h in (5, 21, 63):
            expect = np.clip(ref[f"mom_{h}"], -5, 5)
            assert f.asset[0, i, col[f"mom_{h}"]] == pytest.approx(expect, rel=1e-6, abs=1e-6)
        assert f.asset[0, i, col["mr_zscore"]] == pytest.approx(ref["z"], rel=1e-6, abs=1e-6)
        assert f.betas[0, i] == pytest.approx(ref["beta"], rel=1e-10)
        assert f.adv_notional[0, i] == pytest.approx(ref["adv"], rel=1e-12)
        conf_mr = f.intent_confidence[0, 1, i]
        z = np.clip(ref["z"], -5, 5)
        expect = abs(np.tanh(z / 2)) * np.clip(0.5 - ref["ac"], 0, 1)
        assert conf_mr == pytest.approx(expect, rel=1e-9, abs=1e-12)


def test_late_listing_and_halts() -> None:
    md = _listed_late_market()
    b = FeatureBuilder(FeatureConfig(), RegimeModel(RegimeConfig()))
    f = b.precompute(md)
    col = {name: i for i, name in enumerate(b.market_asset_feature_names)}
    # before listing: no valid return -> cross-sectional median of the others' vols
    for t in (300, 310, 320):
        others = np.delete(f.volatility[t], 2)
        assert f.volatility[t, 2] == np.median(others)
        assert f.tradable[t, 2] == (t >= 320)
    # not tradable -> intents, confidences and the tradable flag are 0
    assert np.array_equal(f.intents[300, :, 2], np.zeros(3))
    assert np.array_equal(f.intent_confidence[430, :, 4], np.zeros(3))
    assert f.asset[430, 4, col["tradable"]] == 0.0
    assert f.asset[430, 0, col["tradable"]] == 1.0
    # halted asset: returns into halted bars are excluded, so its vol is unaffected by them
    assert np.isfinite(f.volatility[300:]).all()
    assert (f.volatility[300:] > 0).all()
    for t in (300, 321, 330, 405, 471, 472, 699):
        g = b.compute(*_windows(md, [t], b.history))
        _assert_rows_equal(g, f, np.array([t]))


def test_returns_match_market_returns(sp500: MarketData) -> None:
    md = _listed_late_market()
    for m in (md, sp500):
        r, _ = _pair_returns(m.close[:-1], m.close[1:], m.tradable[:-1], m.tradable[1:])
        assert np.array_equal(r, m.returns[1:])
    _, v = _pair_returns(md.close[:-1], md.close[1:], md.tradable[:-1], md.tradable[1:])
    assert not v[:320, 2].any()  # v[s] is the return into bar s + 1
    assert v[320, 2]
    assert not v[399:470, 4].any()


def test_regime_matches_regime_path(
    builder: FeatureBuilder, sp500: MarketData, sp500_feats: MarketFeatures
) -> None:
    path = builder.regime.path(sp500)
    ok = sp500_feats.valid
    assert ok.sum() == sp500.n_days - builder.history + 1
    assert np.array_equal(sp500_feats.regime[ok], path.labels[ok])
    assert np.array_equal(sp500_feats.regime_confidence[ok], path.confidence[ok])
    onehot = sp500_feats.market_globals[ok, :4]
    assert np.array_equal(onehot.argmax(axis=1), path.labels[ok])
    assert np.array_equal(onehot.sum(axis=1), np.ones(ok.sum(), np.float32))


# ---------------------------------------------------------------------------- bit identity


def test_bit_identity_sp500(
    builder: FeatureBuilder, sp500: MarketData, sp500_feats: MarketFeatures
) -> None:
    h = builder.history
    rng = np.random.default_rng(1)
    ts = np.r_[h - 1, h, sp500.n_days - 1, rng.integers(h - 1, sp500.n_days, 40)]
    for t in ts:  # K = 1, the serving path
        _assert_rows_equal(builder.compute(*_windows(sp500, [t], h)), sp500_feats, np.array([t]))
    # one batch of K windows, and windows longer than the history
    _assert_rows_equal(builder.compute(*_windows(sp500, ts, h)), sp500_feats, ts)
    _assert_rows_equal(builder.compute(*_windows(sp500, ts[3:9], h + 37)), sp500_feats, ts[3:9])
    # memory layout of the inputs does not matter (Fortran order, strided views)
    t = int(ts[4])
    view = (
        sp500.close[None, t - h + 1 : t + 1],
        sp500.benchmark_returns[None, t - h + 1 : t + 1],
        sp500.volume[None, t - h + 1 : t + 1],
        sp500.spread_bps[None, t - h + 1 : t + 1],
        sp500.tradable[None, t - h + 1 : t + 1],
    )
    _assert_rows_equal(builder.compute(*view), sp500_feats, np.array([t]))
    fortran = tuple(np.asfortranarray(x) for x in _windows(sp500, [t], h))
    _assert_rows_equal(builder.compute(*fortran), sp500_feats, np.array([t]))
    assert not sp500_feats.valid[: h - 1].any()
    assert sp500_feats.valid[h - 1 :].all()


@pytest.mark.parametrize(("n_assets", "seed"), [(20, 0), (1, 1), (7, 2)])
def test_bit_identity_synthetic(builder: FeatureBuilder, n_assets: int, seed: int) -> None:
    md = synthetic(n_assets, 900, seed)
    full = builder.precompute(md)
    h = builder.history
    ts = np.r_[h - 1, np.random.default_rng(seed).integers(h - 1, md.n_days, 25)]
    for t in ts:
        _assert_rows_equal(builder.compute(*_windows(md, [t], h)), full, np.array([t]))
    _assert_rows_equal(builder.compute(*_windows(md, ts, h)), full, ts)
    # chunking does not change a bit
    tiny = builder.precompute(md, chunk_bytes=1)
    for name in ALL_FIELDS:
        assert np.array_equal(
            getattr(tiny, name), getattr(full, name), equal_nan=name in FLOAT_FIELDS
        )


@settings(deadline=None, max_examples=8)
@given(
    seed=st.integers(0, 10_000),
    n_assets=st.integers(1, 6),
    picks=st.lists(st.integers(300, 399), min_size=1, max_size=6),
)
def test_bit_identity_property(seed: int, n_assets: int, picks: list[int]) -> None:
    b = FeatureBuilder(
        FeatureConfig(window=7, momentum_horizons=(3, 30), ewma_halflife=4.0),
        RegimeModel(RegimeConfig()),
    )
    md = synthetic(n_assets, 400, seed, signal_strength=0.5)
    full = b.precompute(md)
    ts = np.array(picks)
    _assert_rows_equal(b.compute(*_windows(md, ts, b.history)), full, ts)


# ---------------------------------------------------------------------------- lookahead


@pytest.mark.parametrize("t", [400, 777])
def test_no_lookahead_synthetic(builder: FeatureBuilder, t: int) -> None:
    md = synthetic(8, 1000, 3)
    base = builder.precompute(md)
    pert = builder.precompute(_perturb_after(md, t, seed=t))
    rows = np.arange(t + 1)
    for name in ALL_FIELDS:
        a, b = getattr(base, name)[rows], getattr(pert, name)[rows]
        assert np.array_equal(a, b, equal_nan=name in FLOAT_FIELDS), name
    # the perturbation is visible right after t
    assert not np.array_equal(base.asset[t + 1], pert.asset[t + 1])


def test_no_lookahead_sp500(
    builder: FeatureBuilder, sp500: MarketData, sp500_feats: MarketFeatures
) -> None:
    t = 6000
    md = sp500.rows(0, t + 300)
    pert = builder.precompute(_perturb_after(md, t, seed=9))
    rows = np.arange(t + 1)
    for name in ALL_FIELDS:
        a, b = getattr(sp500_feats, name)[rows], getattr(pert, name)[rows]
        assert np.array_equal(a, b, equal_nan=name in FLOAT_FIELDS), name
    assert not np.array_equal(sp500_feats.asset[t + 1], pert.asset[t + 1])


# ---------------------------------------------------------------------------- observation


def test_observation_refuses_book_values_that_do_not_match_the_books(
    builder: FeatureBuilder, sp500: MarketData, sp500_feats: MarketFeatures
) -> None:
    """One drawdown and one cash fraction per book: anything else is refused, never read
    past its end."""
    f = sp500_feats.take(np.full(4, builder.history))
    w = np.zeros((4, sp500.n_assets))
    with pytest.raises(DataError, match=r"drawdown has shape \(1,\).*shape \(4,\)"):
        builder.observation(f, w, np.array([0.5]), np.zeros(4))
    with pytest.raises(DataError, match=r"cash has shape \(\).*shape \(4,\)"):
        builder.observation(f, w, np.zeros(4), 0.2)


def test_observation_layout_and_bounds(
    builder: FeatureBuilder, sp500: MarketData, sp500_feats: MarketFeatures
) -> None:
    rng = np.random.default_rng(2)
    ts = rng.integers(builder.history - 1, sp500.n_days, 64)
    f = sp500_feats.take(ts)
    n = sp500.n_assets
    w = rng.uniform(-0.2, 0.3, (64, n))
    dd = rng.uniform(0, 0.5, 64)
    cash = 1.0 - w.sum(axis=1)
    obs = builder.observation(f, w, dd, cash)
    fa, g = builder.n_asset_features, builder.n_global_features
    assert obs.dtype == np.float32
    assert obs.shape == (64, builder.obs_dim(n))
    per_asset = obs[:, : n * fa].reshape(64, n, fa)
    assert np.array_equal(per_asset[:, :, :-1], f.asset)
    assert np.array_equal(per_asset[:, :, -1], w.astype(np.float32))
    glob = obs[:, n * fa :]
    assert glob.shape == (64, g)
    assert np.array_equal(glob[:, :5], f.market_globals)
    assert np.array_equal(glob[:, 5], np.abs(w).sum(axis=1).astype(np.float32))
    assert np.array_equal(glob[:, 6], w.sum(axis=1).astype(np.float32))
    assert np.array_equal(glob[:, 7], dd.astype(np.float32))
    assert np.array_equal(glob[:, 8], cash.astype(np.float32))
    low, high = builder.observation_bounds(n)
    assert ((obs >= low) & (obs <= high)).all()
    # every market row of the whole sample lies inside the bounds too
    valid = sp500_feats.valid
    full = builder.observation(
        sp500_feats.take(np.flatnonzero(valid)),
        np.zeros((valid.sum(), n)),
        np.zeros(valid.sum()),
        np.ones(valid.sum()),
    )
    assert np.isfinite(full).all()
    assert ((full >= low) & (full <= high)).all()
    # the observation of a row does not depend on the batch it is built in
    one = builder.observation(sp500_feats.take(ts[5]), w[5:6], dd[5:6], cash[5:6])
    assert np.array_equal(one, obs[5:6])
    # gathering rows inside observation is the same as take() first
    assert np.array_equal(builder.observation(sp500_feats, w, dd, cash, rows=ts), obs)
    # the book's sums given by the caller (the env step) are the ones it would compute...
    sums = {"gross": np.abs(w).sum(axis=1), "net": w.sum(axis=1)}
    assert np.array_equal(builder.observation(f, w, dd, cash, **sums), obs)
    # ... and they are what it writes: not recomputed from the weights
    given = builder.observation(f, w, dd, cash, gross=np.full(64, 0.5), net=np.full(64, -0.25))
    assert (given[:, n * fa + 5] == 0.5).all() and (given[:, n * fa + 6] == -0.25).all()
    book_sums = [n * fa + 5, n * fa + 6]
    assert np.array_equal(np.delete(given, book_sums, axis=1), np.delete(obs, book_sums, axis=1))
    # step-time slots are clipped into their bounds
    big = builder.observation(f, np.full((64, n), 0.9), np.full(64, 2.0), np.full(64, -17.0))
    assert (big[:, fa - 1 : n * fa : fa] == np.float32(0.9)).all()
    assert (big[:, n * fa + 5] == 5.0).all()
    assert (big[:, n * fa + 7] == 1.0).all()
    assert (big[:, n * fa + 8] == -5.0).all()


def test_take(sp500_feats: MarketFeatures) -> None:
    idx = np.array([4000, 300, 4000])
    f = sp500_feats.take(idx)
    for fld in fields(MarketFeatures):
        if fld.name in ("horizons", "n_market_asset_features"):
            assert np.array_equal(getattr(f, fld.name), getattr(sp500_feats, fld.name))
        else:
            assert np.array_equal(getattr(f, fld.name), getattr(sp500_feats, fld.name)[idx])
    assert f.n_rows == 3
    assert f.n_assets == 20
    assert sp500_feats.take(5).n_rows == 1


def test_alpha_scores(sp500_feats: MarketFeatures) -> None:
    f = sp500_feats.take(np.arange(300, 8000, 97))
    s = alpha_scores(f)
    assert s.shape == (f.n_rows, 20)
    assert np.allclose(s.mean(axis=1), 0.0, atol=1e-12)
    assert np.allclose(s.std(axis=1), 1.0, rtol=1e-12)
    # hand example: momentum (1, 2, 3, 100) with the last asset untradable
    hand = MarketFeatures(
        **{
            **{fld.name: getattr(f.take(0), fld.name) for fld in fields(MarketFeatures)},
            "momentum": np.array([[1.0, 2.0, 3.0, 100.0]]),
            "tradable": np.array([[True, True, True, False]]),
        }
    )
    z = np.sqrt(1.5)  # (3 - 2) / sqrt(2 / 3)
    assert np.allclose(alpha_scores(hand), [[-z, 0.0, z, 0.0]], rtol=1e-15)
    # zero dispersion -> zeros
    flat = MarketFeatures(
        **{
            **{fld.name: getattr(hand, fld.name) for fld in fields(MarketFeatures)},
            "momentum": np.array([[2.0, 2.0, 2.0, 2.0]]),
        }
    )
    assert np.array_equal(alpha_scores(flat), np.zeros((1, 4)))


def test_feature_ranges_sp500(sp500_feats: MarketFeatures) -> None:
    ok = sp500_feats.valid
    conf = sp500_feats.intent_confidence[ok]
    assert ((conf >= 0) & (conf <= 1)).all()
    assert (np.abs(sp500_feats.intents[ok]) <= 1).all()
    assert (sp500_feats.intents[ok][:, 2] >= 0).all()
    assert (sp500_feats.volatility[ok] >= 1e-4).all()
    # every family takes both views at some bar (trend and MR are not constant)
    assert (sp500_feats.intents[ok][:, 0] > 0).any() and (sp500_feats.intents[ok][:, 0] < 0).any()
    assert (sp500_feats.intents[ok][:, 1] > 0).any() and (sp500_feats.intents[ok][:, 1] < 0).any()


def test_a_late_listing_gets_the_same_features_from_a_placeholder_price() -> None:
    """The env reads NaN closes before a listing; a served bar must carry a finite
    placeholder with tradable false. Whatever the placeholder, the window computation
    equals the batch one bit for bit on the listing's first bars (the mean-reversion
    z-score had read the placeholder for zscore_window - 1 bars)."""
    base = synthetic(n_assets=4, n_days=700, seed=1)
    close, volume, spread = base.close.copy(), base.volume.copy(), base.spread_bps.copy()
    listing = 600
    close[:listing, 3], volume[:listing, 3], spread[:listing, 3] = np.nan, 0.0, 0.0
    tradable = np.isfinite(close)
    md = MarketData(
        dates=base.dates, symbols=base.symbols, close=close, volume=volume, spread_bps=spread,
        sectors=base.sectors, benchmark_returns=base.benchmark_returns, tradable=tradable,
    )  # fmt: skip
    fb = FeatureBuilder(FeatureConfig(), RegimeModel(RegimeConfig()))
    batch = fb.precompute(md)
    for placeholder in (close[listing, 3], 1.0):
        served = close.copy()
        served[:listing, 3] = placeholder
        for t in range(listing, listing + fb.cfg.zscore_window + 2):
            lo = t - fb.history + 1
            got = fb.compute(
                served[None, lo : t + 1], md.benchmark_returns[None, lo : t + 1],
                volume[None, lo : t + 1], spread[None, lo : t + 1], tradable[None, lo : t + 1],
            )  # fmt: skip
            assert got.asset[0].tobytes() == batch.asset[t].tobytes(), (placeholder, t)


def test_a_halt_leaves_the_zscore_undefined_for_its_window() -> None:
    """One halted bar (flag off, the price carried): the mean-reversion z-score is 0 on
    the zscore_window bars whose window holds it (it reads a price nobody traded at), and
    every other feature and bar is unchanged."""
    base = synthetic(n_assets=4, n_days=700, seed=1)
    tradable = base.tradable.copy()
    tradable[600, 2] = False
    halted = MarketData(
        dates=base.dates, symbols=base.symbols, close=base.close, volume=base.volume,
        spread_bps=base.spread_bps, sectors=base.sectors,
        benchmark_returns=base.benchmark_returns, tradable=tradable,
    )  # fmt: skip
    fb = FeatureBuilder(FeatureConfig(), RegimeModel(RegimeConfig()))
    z = fb.market_asset_feature_names.index("mr_zscore")
    before, after = fb.precompute(base).asset, fb.precompute(halted).asset
    window = fb.cfg.zscore_window
    assert (after[600 : 600 + window, 2, z] == 0.0).all()
    assert (before[600 : 600 + window, 2, z] != 0.0).any()
    same = {"equal_nan": True}  # the warm-up rows are NaN
    assert np.array_equal(after[:600, 2, z], before[:600, 2, z], **same)
    assert np.array_equal(after[600 + window :, 2, z], before[600 + window :, 2, z], **same)
    others = [0, 1, 3]
    assert np.array_equal(after[:, others, z], before[:, others, z], **same)


# ----------------------------------------------------------------------------- flat series


def _market_of(close: np.ndarray, bench: np.ndarray) -> MarketData:
    """A market of these closes and benchmark returns (volume 1e6, spread 5 bps)."""
    n_days, n = close.shape
    return MarketData(
        dates=pd.bdate_range("2001-01-01", periods=n_days).to_numpy(dtype="datetime64[ns]"),
        symbols=tuple(f"S{i}" for i in range(n)), close=close,
        volume=np.full(close.shape, 1e6), spread_bps=np.full(close.shape, 5.0),
        sectors=("x",) * n, benchmark_returns=bench, tradable=np.ones(close.shape, bool),
    )  # fmt: skip


def test_series_flat_up_to_rounding_have_no_ratio(builder: FeatureBuilder) -> None:
    """A constant benchmark return (a cash-like benchmark, 5% a year) has no variance, and
    a flat price no z-score: their means round by an ulp, which had left every deviation
    a tiny non-zero number, and the ratios read betas of -15, a trend t-statistic of 1e16
    (the regime labelled trend with confidence 1) and z-scores of +-1."""
    n_days = builder.history + 5
    rng = np.random.default_rng(0)
    moving = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_days, 4)), axis=0))
    cash = np.r_[0.0, np.full(n_days - 1, 0.05 / 252)]
    md = _market_of(moving, cash)
    f = builder.precompute(md)
    t = n_days - 1
    assert f.betas[t].tolist() == [0.0] * 4
    path = builder.regime.path_from_returns(md.returns, cash)
    assert path.trend_tstat[t] == 0.0 and REGIME_LABELS[f.regime[t]] != "trend"
    prices = np.tile([50.0, 123.456, 1234.5678, 0.37], (n_days, 1))
    flat = builder.precompute(_market_of(prices, cash))
    z = builder.market_asset_feature_names.index("mr_zscore")
    assert flat.asset[t, :, z].tolist() == [0.0] * 4
    assert np.abs(flat.intents[t, 1]).max() == 0.0  # no mean-reversion intent either


def test_a_return_that_rounds_to_minus_one_keeps_the_features_finite(
    builder: FeatureBuilder,
) -> None:
    """A close falling from 1e9 to 2e-8 (both inside the served price range) rounds its
    simple return to -1, whose log had made the volatility infinite and the lags,
    momentum and intents NaN for an EWMA window."""
    n_days = builder.history + 5
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_days, 3)), axis=0))
    close[n_days - 4, 0] = 1e9
    close[n_days - 3 :, 0] = 2e-8
    bench = np.r_[0.0, rng.normal(0, 0.01, n_days - 1)]
    md = _market_of(close, bench)
    assert md.returns[n_days - 3, 0] == -1.0
    f = builder.precompute(md)
    for name in ("template", "volatility", "momentum", "intents", "intent_confidence"):
        assert np.isfinite(getattr(f, name)[n_days - 3 :]).all(), name
