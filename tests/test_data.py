"""Market data: loaders, validation refusals, past-only views, synthetic generator, splits."""

from __future__ import annotations

import dataclasses
import io
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from allocgym.config import DataConfig, SplitConfig, SyntheticConfig
from allocgym.data import (
    SOURCES,
    SP500_SECTORS,
    SYNTHETIC_REGIMES,
    MarketData,
    Split,
    from_csv,
    from_parquet,
    from_prices,
    load_market,
    load_sp500,
    render_summary,
    split_note,
    summary,
    synthetic,
    synthetic_from_config,
    validate,
    walk_forward_splits,
)
from allocgym.errors import ConfigError, DataError

pytestmark = pytest.mark.filterwarnings("ignore:.*documented defaults:UserWarning")

LOOSE = DataConfig(min_history=2)


def wide(n: int = 6, symbols: tuple[str, ...] = ("A", "B", "C")) -> pd.DataFrame:
    """Prices rising 1% a bar, symbol k at level 100 * (k + 1)."""
    idx = pd.bdate_range("2020-01-01", periods=n)
    data = 100.0 * (1.0 + 0.01 * np.arange(n))[:, None] * np.arange(1, len(symbols) + 1)
    return pd.DataFrame(data, index=idx, columns=list(symbols))


def make(**overrides: object) -> MarketData:
    """A valid 4-bar, 2-symbol market built directly; fields replaced by ``overrides``."""
    close = np.array([[10.0, 20.0], [11.0, 20.0], [12.1, 22.0], [11.0, 22.0]])
    fields: dict[str, object] = {
        "dates": pd.bdate_range("2021-03-01", periods=4).to_numpy(),
        "symbols": ("X", "Y"),
        "close": close,
        "volume": np.full((4, 2), 1000.0),
        "spread_bps": np.full((4, 2), 5.0),
        "sectors": ("s1", "s2"),
        "benchmark_returns": np.zeros(4),
        "tradable": np.ones((4, 2), dtype=bool),
    }
    fields.update(overrides)
    return MarketData(**fields)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- from_prices


def test_from_prices_hand_values_and_defaults() -> None:
    idx = pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-06"])
    df = pd.DataFrame({"A": [100.0, 110.0, 99.0], "B": [50.0, 50.0, 55.0]}, index=idx)
    with pytest.warns(UserWarning, match="has no volume, spread_bps, sectors, benchmark_returns"):
        md = from_prices(df, cfg=LOOSE)
    assert md.symbols == ("A", "B")
    assert md.defaulted == ("volume", "spread_bps", "sectors", "benchmark_returns")
    assert md.sectors == ("unknown", "unknown")
    # returns A: +10%, -10%; B: 0%, +10% -> equal-weight benchmark 0, 5%, 0.
    np.testing.assert_allclose(md.returns, [[0, 0], [0.1, 0.0], [-0.1, 0.1]], atol=1e-15)
    np.testing.assert_allclose(md.benchmark_returns, [0.0, 0.05, 0.0], atol=1e-15)
    # default volume: constant traded notional 5e8 / close.
    np.testing.assert_allclose(md.volume[:, 0], 5e8 / np.array([100.0, 110.0, 99.0]))
    # spread proxy: 1 bar has no volatility -> cap; otherwise within [floor, cap].
    assert md.spread_bps[0, 0] == 50.0
    assert np.all((md.spread_bps >= 1.0) & (md.spread_bps <= 50.0))
    assert md.tradable.all()


def test_from_prices_given_fields_are_used_not_defaulted() -> None:
    df = wide()
    vol = pd.DataFrame(7.0, index=df.index, columns=df.columns)
    spread = pd.DataFrame(3.0, index=df.index, columns=df.columns)
    bench = pd.Series(np.linspace(10.0, 15.0, len(df)), index=df.index)
    md = from_prices(
        df, volume=vol, spread_bps=spread, sectors={"A": "tech", "B": "energy"},
        benchmark=bench, cfg=LOOSE,
    )  # fmt: skip
    assert md.defaulted == ()
    assert np.all(md.volume == 7.0) and np.all(md.spread_bps == 3.0)
    assert md.sectors == ("tech", "energy", "unknown")
    np.testing.assert_allclose(md.benchmark_returns[1:], np.diff(bench) / bench.to_numpy()[:-1])
    assert md.benchmark_returns[0] == 0.0


def test_benchmark_column_is_removed_from_symbols() -> None:
    df = wide(symbols=("A", "B", "SPX"))
    md = from_prices(df, benchmark="SPX", cfg=LOOSE)
    assert md.symbols == ("A", "B")
    np.testing.assert_allclose(md.benchmark_returns[1:], df["SPX"].pct_change().to_numpy()[1:])


def test_leading_nan_is_not_yet_listed() -> None:
    df = wide()
    df.iloc[:2, 1] = np.nan
    md = from_prices(df, cfg=LOOSE)
    assert md.tradable[:2, 1].tolist() == [False, False] and md.tradable[2:, 1].all()
    assert np.all(md.returns[:3, 1] == 0.0)  # no return until listed at both ends
    assert md.volume[0, 1] == 0.0
    info = summary(md)["missing"]["B"]
    assert info == {"first_date": "2020-01-03", "leading_nan": 2, "untradable": 2}
    # the equal-weight benchmark averages only the listed symbols at row 1 (A and C: +1%)
    assert md.benchmark_returns[1] == pytest.approx(0.01)


def test_from_prices_warning_names_defaults() -> None:
    with pytest.warns(UserWarning, match=r"volume = ADV notional 5e\+08 / close"):
        from_prices(wide(), cfg=LOOSE)


# ----------------------------------------------------------------------------- refusals


def test_refuses_unsorted_dates() -> None:
    df = wide().iloc[[0, 2, 1, 3, 4, 5]]
    with pytest.raises(
        DataError, match=r"not sorted: 2020-01-02 after 2020-01-03 \(row 2\).*sort_index"
    ):
        from_prices(df, cfg=LOOSE)


def test_refuses_duplicate_dates() -> None:
    df = wide().iloc[[0, 1, 1, 2, 3]]
    with pytest.raises(
        DataError, match=r"duplicate dates .*2020-01-02 \(rows 1, 2\).*one row per date"
    ):
        from_prices(df, cfg=LOOSE)


def test_refuses_duplicate_symbols() -> None:
    df = wide()
    df.columns = ["A", "B", "A"]
    with pytest.raises(DataError, match=r"duplicate symbols \['A'\]: give each column a unique"):
        from_prices(df, cfg=LOOSE)


@pytest.mark.parametrize("bad", [0.0, -5.0, np.inf, -np.inf])
def test_refuses_non_positive_or_infinite_prices(bad: float) -> None:
    df = wide()
    df.iloc[3, 1] = bad
    with pytest.raises(DataError, match=r"non-positive or infinite close prices: B at 2020-01-06"):
        from_prices(df, cfg=LOOSE)


def test_refuses_nan_after_listing() -> None:
    df = wide()
    df.iloc[0, 0] = np.nan  # leading: fine
    df.iloc[3, 2] = np.nan  # gap: refused
    df.iloc[4, 2] = np.nan
    with pytest.raises(
        DataError, match=r"NaN close between two prices: C at 2020-01-06, 2020-01-07.*ffill"
    ):
        from_prices(df, cfg=LOOSE)


def test_refuses_symbol_without_prices() -> None:
    df = wide()
    df["D"] = np.nan
    with pytest.raises(DataError, match=r"symbols \['D'\] have no prices at all: drop"):
        from_prices(df, cfg=LOOSE)


def test_refuses_negative_volume() -> None:
    df = wide()
    vol = pd.DataFrame(100.0, index=df.index, columns=df.columns)
    vol.iloc[2, 0] = -1.0
    with pytest.raises(DataError, match=r"negative volume: A at 2020-01-03 \(-1\)"):
        from_prices(df, volume=vol, cfg=LOOSE)


def test_refuses_missing_volume_where_priced() -> None:
    df = wide()
    vol = pd.DataFrame(100.0, index=df.index, columns=df.columns)
    vol.iloc[1, 2] = np.nan
    with pytest.raises(
        DataError, match=r"volume missing or infinite where a close exists: C at 2020-01-02"
    ):
        from_prices(df, volume=vol, cfg=LOOSE)


def test_refuses_negative_spread() -> None:
    with pytest.raises(DataError, match=r"negative spread_bps: Y at 2021-03-02"):
        make(spread_bps=np.array([[5.0, 5.0], [5.0, -1.0], [5.0, 5.0], [5.0, 5.0]]))


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("volume", np.ones((3, 2)), r"volume has shape \(3, 2\), close has \(4, 2\)"),
        ("spread_bps", np.ones((4, 3)), r"spread_bps has shape \(4, 3\)"),
        ("tradable", np.ones((4,), dtype=bool), r"tradable has shape \(4,\)"),
        ("dates", pd.bdate_range("2021-03-01", periods=5).to_numpy(), r"dates has shape \(5,\)"),
        ("benchmark_returns", np.zeros(3), r"benchmark_returns has shape \(3,\)"),
        ("symbols", ("X",), r"1 symbols / 2 sectors for 2 columns"),
        ("close", np.ones(4), r"close must be 2-D"),
        ("regimes", np.zeros(3, dtype=np.int8), r"regimes has shape \(3,\)"),
    ],
)
def test_refuses_shape_mismatch(field: str, value: object, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        make(**{field: value})


def test_refuses_misaligned_frames() -> None:
    df = wide()
    vol = pd.DataFrame(1.0, index=df.index[:-1], columns=df.columns)
    with pytest.raises(DataError, match=r"volume has 5 dates, close has 6"):
        from_prices(df, volume=vol, cfg=LOOSE)
    vol = pd.DataFrame(1.0, index=df.index, columns=["A", "B"])
    with pytest.raises(DataError, match=r"volume lacks symbols \['C'\]"):
        from_prices(df, volume=vol, cfg=LOOSE)
    bench = pd.Series(1.0, index=df.index[1:])
    with pytest.raises(DataError, match=r"benchmark dates differ .*missing: 2020-01-01"):
        from_prices(df, benchmark=bench, cfg=LOOSE)


def test_refuses_fewer_rows_than_min_history() -> None:
    with pytest.raises(
        DataError, match=r"6 rows \(2020-01-01..2020-01-08\), fewer than min_history=252"
    ):
        from_prices(wide())  # DataConfig() default min_history = 252
    md = from_prices(wide(), min_history=6)
    assert md.n_days == 6
    with pytest.raises(DataError, match=r"fewer than min_history=7: load a longer history"):
        validate(md, 7)
    cfg = DataConfig(source="synthetic", synthetic=SyntheticConfig(n_days=100))
    with pytest.raises(DataError, match=r"100 rows .* fewer than min_history=252"):
        load_market(cfg)


def test_refuses_tradable_without_price_and_bad_benchmark() -> None:
    close = np.array([[np.nan, 20.0], [11.0, 20.0], [12.0, 22.0], [11.0, 22.0]])
    with pytest.raises(DataError, match=r"tradable is True without a close price: X at 2021-03-01"):
        make(close=close)
    rng = r"benchmark returns outside the benchmark simple return range \(-1, 10\] fraction"
    with pytest.raises(DataError, match=rf"{rng}: 2021-03-03 \(nan\)"):
        make(benchmark_returns=np.array([0.0, 0.1, np.nan, 0.0]))
    with pytest.raises(DataError, match=rf"{rng}: 2021-03-02 \(-1\)"):
        make(benchmark_returns=np.array([0.0, -1.0, 0.0, 0.0]))
    # a benchmark in percent: the serving range refuses it on the training path too
    with pytest.raises(DataError, match=rf"{rng}: 2021-03-03 \(12\).*0.12 for 12 %"):
        make(benchmark_returns=np.array([0.0, 0.5, 12.0, 0.0]))
    assert make(benchmark_returns=np.array([0.0, -0.99, 10.0, 0.0])).n_days == 4
    # the equal-weight default is the closes' mean: a jump there is the move check's
    jump = np.array([[1.0, 1.0], [12.0, 12.0], [12.0, 12.0], [12.0, 12.0]])
    derived = np.array([0.0, 11.0, 0.0, 0.0])
    md = make(close=jump, benchmark_returns=derived, defaulted=("benchmark_returns",))
    assert md.benchmark_returns[1] == 11.0
    with pytest.raises(DataError, match=rf"{rng}: 2021-03-02 \(11\)"):
        make(close=jump, benchmark_returns=derived)
    # a benchmark that only claims to be the default is checked as given (review)
    with pytest.raises(DataError, match=rf"{rng}: 2021-03-03 \(12\)"):
        make(benchmark_returns=np.array([0.0, 0.1, 12.0, 0.0]), defaulted=("benchmark_returns",))


def test_refuses_non_numeric_and_non_dates() -> None:
    df = wide()
    df["B"] = "x"
    with pytest.raises(DataError, match=r"close columns \['B'\] are not numeric"):
        from_prices(df, cfg=LOOSE)
    df = wide()
    df["B"] = df["B"].astype(object)
    df.iloc[2, 1] = "12,5"  # the first cell that is no number is named, with its date
    with pytest.raises(DataError, match=rf"the first, B on {df.index[2]:%Y-%m-%d}, is '12,5'"):
        from_prices(df, cfg=LOOSE)
    twice = wide()
    twice["C"] = twice["C"].astype(object)
    twice.iloc[2, 2] = "x"
    twice.columns = ["A", "B", "A"]  # the text column's name stands twice: still a DataError
    with pytest.raises(DataError, match=r"columns \['A'\] are not numeric .* is 'x'"):
        from_prices(twice, cfg=LOOSE)
    df = wide()
    df.index = ["a", "b", "c", "d", "e", "f"]
    with pytest.raises(DataError, match=r"index: the first date 'a' is not a date"):
        from_prices(df, cfg=LOOSE)
    # a frame whose dates were left in a column: its row numbers are not dates
    with pytest.raises(DataError, match=r"index holds numbers \(int64, the first 0\), not dates"):
        from_prices(wide().reset_index(drop=True), cfg=LOOSE)
    df = wide()
    df["B"] = True  # True is not a price of 1.0
    with pytest.raises(DataError, match=r"columns \['B'\] are not numeric \(text or true/false"):
        from_prices(df, cfg=LOOSE)
    df = wide()
    df.index = df.index.tz_localize("Asia/Tokyo")  # the Tokyo calendar day, not UTC's
    assert from_prices(df, cfg=LOOSE).dates[0] == np.datetime64("2020-01-01")
    df.index = [f"2020-01-0{d}T00:00:00{'+09:00' if d % 2 else '-05:00'}" for d in range(1, 7)]
    with pytest.raises(DataError, match="index mixes UTC offsets"):
        from_prices(df, cfg=LOOSE)
    with pytest.raises(DataError, match=r"symbols \['B'\] map to no sector \(None or NaN\)"):
        from_prices(wide(), sectors={"A": "x", "B": None}, cfg=LOOSE)  # not a sector 'None'
    for bad in (1.5, -3, True):  # not truncated to 1 or taken as no minimum
        with pytest.raises(DataError, match=r"min_history = .*: pass a whole number of bars"):
            from_prices(wide(), min_history=bad)
    for one in ("abc", "tech"):  # whatever its length: not one sector per letter
        with pytest.raises(DataError, match=rf"sectors='{one}' is one string"):
            from_prices(wide(), sectors=one, cfg=LOOSE)
    with pytest.raises(DataError, match=r"symbols \['B'\] have no sector \(None or NaN\)"):
        from_prices(wide(), sectors=["x", np.nan, "y"], cfg=LOOSE)
    df = wide().rename(columns=lambda c: f" {c} ")  # a header written "date, A, B, C"
    assert from_prices(df, cfg=LOOSE).symbols == ("A", "B", "C")


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("dates", np.arange(4), r"dates are numbers \(int64\)"),
        ("dates", np.array(["2500-01-0" + str(d) for d in range(1, 5)], dtype="datetime64[D]"),
         r"2500-01-01 \(row 0\) is outside 1678-01-01..2261-12-31"),
        ("tradable", np.full((4, 2), np.nan), r"tradable has dtype float64 with values other"),
        ("tradable", np.full((4, 2), "yes"), r"tradable has dtype <U3: pass True/False"),
        ("regimes", np.full(4, 300), r"regime codes 0..2 .* values 300..300"),
        ("regimes", np.full(4, 1.7), r"regime codes 0..2 .* got dtype float64"),
    ],
)  # fmt: skip
def test_market_fields_are_refused_not_cast(field: str, value: object, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        make(**{field: value})
    assert make(tradable=np.ones((4, 2), dtype=np.int64)).tradable.dtype == bool  # 0/1 read


# ----------------------------------------------------------------------------- long / files


def long_frame(df: pd.DataFrame) -> pd.DataFrame:
    rows = df.rename_axis("date").reset_index().melt("date", var_name="symbol", value_name="close")
    rows = rows.dropna(subset=["close"])
    rows["open"] = rows["close"] * 0.99
    rows["high"] = rows["close"] * 1.01
    rows["low"] = rows["close"] * 0.98
    rows["volume"] = 1000.0 + np.arange(len(rows))
    rows["spread_bps"] = 4.0
    return rows.sample(frac=1.0, random_state=0)  # row order must not matter


def test_long_rows_without_a_symbol_are_refused_and_symbols_stripped() -> None:
    rows = long_frame(wide())
    rows["symbol"] = rows["symbol"].map(lambda v: f" {v}")  # ' A' is A
    assert from_prices(rows, cfg=LOOSE).symbols == ("A", "B", "C")
    rows.loc[rows.index[3], "symbol"] = None  # not a symbol named 'None'
    with pytest.raises(DataError, match=r"row 4 has no symbol"):
        from_prices(rows, cfg=LOOSE)


def test_a_long_csv_keeps_tickers_that_pandas_reads_as_missing(tmp_path) -> None:
    rows = long_frame(wide()).replace({"symbol": {"A": "NA", "B": "NULL"}})
    rows.to_csv(tmp_path / "long.csv", index=False)
    md = from_csv(tmp_path / "long.csv", cfg=LOOSE)
    assert md.symbols == ("NA", "NULL", "C")  # not refused as rows without a symbol


def test_long_ohlcv_matches_wide() -> None:
    df = wide()
    df.iloc[:2, 2] = np.nan
    rows = long_frame(df)
    rows["sector"] = rows["symbol"].map({"A": "tech", "B": "tech", "C": "energy"})
    md = from_prices(rows, cfg=LOOSE)
    order = list(md.symbols)
    assert sorted(order) == ["A", "B", "C"]
    expected = df[order].to_numpy()
    np.testing.assert_array_equal(np.isnan(md.close), np.isnan(expected))
    np.testing.assert_allclose(md.close[~np.isnan(expected)], expected[~np.isnan(expected)])
    assert md.defaulted == ("benchmark_returns",)
    assert md.sectors == tuple({"A": "tech", "B": "tech", "C": "energy"}[s] for s in order)
    assert np.all(md.spread_bps[md.tradable] == 4.0)
    vol = rows.pivot(index="date", columns="symbol", values="volume")[order].to_numpy()
    np.testing.assert_allclose(md.volume[md.tradable], vol[md.tradable])
    assert np.all(md.volume[~md.tradable] == 0.0)


def test_long_refusals() -> None:
    rows = long_frame(wide())
    dup = pd.concat([rows, rows.iloc[[0]]])
    first = rows.iloc[0]
    pattern = rf"duplicate \(date, symbol\) rows .*{first['date']:%Y-%m-%d} {first['symbol']}"
    with pytest.raises(DataError, match=pattern):
        from_prices(dup, cfg=LOOSE)
    with pytest.raises(DataError, match=r"lacks columns \['date'\]"):
        from_prices(rows.drop(columns="date"), cfg=LOOSE)
    gap = rows[~((rows["symbol"] == "A") & (rows["date"] == pd.Timestamp("2020-01-03")))]
    with pytest.raises(DataError, match=r"NaN close between two prices: A at 2020-01-03"):
        from_prices(gap, cfg=LOOSE)


def test_csv_and_parquet_roundtrip(tmp_path) -> None:
    df = wide()
    df.iloc[:1, 1] = np.nan
    df.rename_axis("date").to_csv(tmp_path / "wide.csv")
    long_frame(df).to_csv(tmp_path / "long.csv", index=False)
    df.to_parquet(tmp_path / "wide.parquet")
    df.rename_axis("date").reset_index().to_parquet(tmp_path / "wide_col.parquet")
    long_frame(df).to_parquet(tmp_path / "long.parquet")
    ref = from_prices(df, cfg=LOOSE)
    for md in (
        from_csv(tmp_path / "wide.csv", cfg=LOOSE),
        from_csv(tmp_path / "long.csv", cfg=LOOSE),
        from_parquet(tmp_path / "wide.parquet", cfg=LOOSE),
        from_parquet(tmp_path / "wide_col.parquet", cfg=LOOSE),
        from_parquet(tmp_path / "long.parquet", cfg=LOOSE),
    ):
        cols = [ref.symbols.index(s) for s in md.symbols]
        np.testing.assert_array_equal(md.dates, ref.dates)
        np.testing.assert_allclose(md.close, ref.close[:, cols])
        np.testing.assert_array_equal(md.tradable, ref.tradable[:, cols])
    assert from_csv(tmp_path / "wide.csv", cfg=LOOSE).name == "wide"
    md = load_market(DataConfig(source="csv", path=str(tmp_path / "wide.csv"), min_history=6))
    assert md.n_days == 6
    with pytest.raises(DataError, match=r"fewer than min_history=252"):
        load_market(DataConfig(source="parquet", path=str(tmp_path / "wide.parquet")))
    with pytest.raises(DataError, match=r"CSV file .*nope.csv' does not exist"):
        from_csv(tmp_path / "nope.csv")
    pd.DataFrame({"x": [1.0]}).to_parquet(tmp_path / "nodate.parquet")
    with pytest.raises(DataError, match=r"neither dates as its index nor a 'date' column"):
        from_parquet(tmp_path / "nodate.parquet")


# ----------------------------------------------------------------------------- S&P 500


def test_sp500_sample(sp500: MarketData) -> None:
    assert sp500.n_assets == 20 and sp500.n_days == 8313
    assert str(sp500.dates[0])[:10] == "1990-01-02" and str(sp500.dates[-1])[:10] == "2022-12-28"
    assert sp500.defaulted == ("volume", "spread_bps")
    assert sp500.sectors == tuple(SP500_SECTORS[s] for s in sp500.symbols)
    assert sp500.tradable.all() and sp500.benchmark_returns[0] == 0.0
    from skfolio.datasets import load_sp500_index

    index = load_sp500_index().iloc[:, 0].to_numpy()
    assert sp500.benchmark_returns[100] == index[100] / index[99] - 1.0
    np.testing.assert_allclose(sp500.volume * sp500.close, 5e8)


def test_sp500_warns_about_defaults() -> None:
    with pytest.warns(UserWarning, match=r"S&P 500 sample has no volume, spread_bps"):
        md = load_sp500(DataConfig(default_adv_notional=1e6))
    np.testing.assert_allclose(md.volume * md.close, 1e6)


def test_sp500_summary_and_rendering(sp500: MarketData) -> None:
    info = summary(sp500)
    assert info["n_symbols"] == 20 and info["rows"] == 8313
    assert (info["start"], info["end"]) == ("1990-01-02", "2022-12-28")
    assert info["defaulted"] == ["volume", "spread_bps"]
    assert info["missing_cells"] == 0 and info["regimes"] is None
    assert info["sector_counts"]["Health Care"] == 5
    buf = io.StringIO()
    Console(file=buf, width=120).print(render_summary(info))
    text = buf.getvalue()
    assert "20 symbols, 8313 rows, 1990-01-02..2022-12-28" in text
    assert "defaulted fields: volume, spread_bps" in text
    assert all(s in text for s in sp500.symbols)


# ----------------------------------------------------------------------------- views


def test_window_cannot_see_past_t(sp500: MarketData) -> None:
    t = 1234
    w = sp500.window(t)
    assert w.n_days == t + 1 and w.dates[-1] == sp500.dates[t]
    for name in (
        "close",
        "volume",
        "spread_bps",
        "tradable",
        "benchmark_returns",
        "returns",
    ):
        assert getattr(w, name).shape[0] == t + 1
        np.testing.assert_array_equal(getattr(w, name), getattr(sp500, name)[: t + 1])
    with pytest.raises(IndexError):
        sp500.window(sp500.n_days)
    with pytest.raises(IndexError):
        sp500.window(-1)
    with pytest.raises(DataError, match=r"has no rows \(columns \['A', 'B'\]\)"):
        from_prices(pd.DataFrame(columns=["A", "B"]), cfg=LOOSE)  # not "columns not numeric"
    for bad in (2.7, "3", True):  # not truncated or parsed into a bar
        with pytest.raises(TypeError, match=r"a bar is a whole number"):
            sp500.window(bad)
    with pytest.raises(IndexError):
        sp500.rows(5, 5)


@settings(max_examples=25, deadline=None)
@given(t=st.integers(0, 199), bump=st.floats(0.5, 2.0))
def test_window_unchanged_by_future_data(t: int, bump: float) -> None:
    md = synthetic(n_assets=3, n_days=200, seed=1)
    close = md.close.copy()
    close[t + 1 :] *= bump  # perturb the future only
    volume = md.volume.copy()
    volume[t + 1 :] *= 3.0
    other = dataclasses.replace(md, close=close, volume=volume)
    a, b = md.window(t), other.window(t)
    for name in ("close", "volume", "returns", "benchmark_returns", "regimes"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # Computed from scratch on the view, causal quantities equal the full series' prefix.
    np.testing.assert_array_equal(a.returns, md.returns[: t + 1])


def test_market_is_immutable() -> None:
    close = np.array([[10.0, 20.0], [11.0, 20.0], [12.1, 22.0], [11.0, 22.0]])
    md = make(close=close)
    close[0, 0] = 99.0  # the caller's array is copied
    assert md.close[0, 0] == 10.0
    with pytest.raises(ValueError, match="read-only"):
        md.close[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        md.window(2).volume[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        md.close = close  # type: ignore[misc]


def test_rows_and_index_of(small_synth: MarketData) -> None:
    part = small_synth.rows(100, 200)
    assert part.n_days == 100 and part.dates[0] == small_synth.dates[100]
    assert part.benchmark_returns[0] == small_synth.benchmark_returns[100]
    assert np.all(part.returns[0] == 0.0)  # returns restart inside a view
    np.testing.assert_array_equal(part.returns[1:], small_synth.returns[101:200])
    assert small_synth.index_of(small_synth.dates[42]) == 42
    assert small_synth.index_of("2100-01-01") == small_synth.n_days - 1
    with pytest.raises(DataError, match="before the first bar"):
        small_synth.index_of("1999-01-01")


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic() -> None:
    a, b = synthetic(5, 300, seed=3), synthetic(5, 300, seed=3)
    for name in ("close", "volume", "spread_bps", "benchmark_returns", "regimes", "dates"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    c = synthetic(5, 300, seed=4)
    assert not np.array_equal(a.close, c.close)
    assert not np.array_equal(a.volume, c.volume)
    cfg = SyntheticConfig(n_assets=5, n_days=300, seed=3)
    assert np.array_equal(synthetic_from_config(cfg).close, a.close)


def test_synthetic_regime_path() -> None:
    md = synthetic(n_assets=10, n_days=2520, seed=0)
    assert md.regimes is not None
    assert md.regimes.shape == (2520,) and md.regimes.dtype == np.int8
    assert set(np.unique(md.regimes)) == {0, 1, 2}
    assert summary(md)["regimes"] == {
        name: int((md.regimes == k).sum()) for k, name in enumerate(SYNTHETIC_REGIMES)
    }
    # The regimes differ the way they are documented to.
    r, reg = md.benchmark_returns[1:], md.regimes[1:]
    vol = {k: r[reg == k].std() for k in range(3)}
    assert vol[2] > 2.0 * vol[0]  # high_vol_crash vs calm_trend
    assert r[reg == 0].mean() > 0 > r[reg == 2].mean()
    spread = {k: md.spread_bps[md.regimes == k].mean() for k in range(3)}
    assert spread[2] > 2.0 * spread[0]
    assert md.window(99).regimes is not None
    np.testing.assert_array_equal(md.window(99).regimes, md.regimes[:100])


def test_small_synth_fixture(small_synth: MarketData) -> None:
    assert small_synth.close.shape == (500, 6)
    assert small_synth.regimes is not None and set(np.unique(small_synth.regimes)) == {0, 1, 2}
    validate(small_synth, 500)


def test_load_market_dispatch() -> None:
    cfg = DataConfig(source="synthetic", synthetic=SyntheticConfig(n_assets=3, n_days=260, seed=2))
    md = load_market(cfg)
    assert md.n_assets == 3 and md.n_days == 260
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert load_market(DataConfig()).name == "sp500"


def test_load_market_refuses_an_unknown_source() -> None:
    # Validation rejects it at load time; a copy with update= skips validation, and the
    # loader must not hand back the synthetic market in its place.
    assert SOURCES == ("sp500", "csv", "parquet", "synthetic")
    cfg = DataConfig().model_copy(update={"source": "yahoo"})
    with pytest.raises(ConfigError, match=r"data.source = 'yahoo'.*sp500, csv, parquet, synthetic"):
        load_market(cfg)


# ----------------------------------------------------------------------------- splits


def test_sp500_default_splits(sp500: MarketData) -> None:
    splits = walk_forward_splits(sp500, SplitConfig())
    assert list(splits) == ["train", "validation", "test"]
    day = {
        k: (str(sp500.dates[s.start])[:10], str(sp500.dates[s.stop - 1])[:10])
        for k, s in splits.items()
    }
    assert day["train"] == ("1990-01-02", "2010-12-31")
    # validation/test start after 5 embargo bars: the 6th trading day of 2011 / 2015.
    assert day["validation"] == ("2011-01-10", "2014-12-31")
    assert day["test"] == ("2015-01-09", "2022-12-28")
    assert splits["validation"].start - splits["train"].stop == 5
    assert splits["test"].start - splits["validation"].stop == 5
    assert splits["test"].stop == sp500.n_days
    sets = [set(sp500.dates[s.slice]) for s in splits.values()]
    assert not (sets[0] & sets[1]) and not (sets[1] & sets[2]) and not (sets[0] & sets[2])
    assert splits["train"].describe(sp500) == "train: 1990-01-02..2010-12-31 (5295 bars)"


@settings(max_examples=30, deadline=None)
@given(
    train_days=st.integers(50, 700),
    val_days=st.integers(1, 400),
    embargo=st.integers(0, 30),
)
def test_splits_are_disjoint_and_embargoed(train_days: int, val_days: int, embargo: int) -> None:
    md = synthetic(n_assets=2, n_days=1200, seed=0)
    dates = pd.DatetimeIndex(md.dates)
    train_end = dates[0] + pd.Timedelta(days=train_days)
    val_end = train_end + pd.Timedelta(days=val_days)
    cfg = SplitConfig(
        train_end=f"{train_end:%Y-%m-%d}", validation_end=f"{val_end:%Y-%m-%d}",
        embargo_days=embargo, min_split_bars=1,
    )  # fmt: skip
    # 1200 bars: the dates fit or the 60/15/25 fractions replace them; neither is empty
    splits = walk_forward_splits(md, cfg)
    tr, va, te = splits["train"], splits["validation"], splits["test"]
    assert va.start == tr.stop + embargo and te.start == va.stop + embargo
    assert tr.stop <= va.start and va.stop <= te.start  # no bar in two splits
    if tr.basis == "dates":
        assert dates[tr.stop - 1] <= train_end < dates[tr.stop]
        assert dates[va.stop - 1] <= val_end
    else:  # the dates leave a split empty: 60/15/25 of the bars
        assert tr.basis == va.basis == te.basis == "fractions"
        assert (tr.stop, va.stop) == (720, 900)


def test_split_refusals(small_synth: MarketData) -> None:
    # 500 bars ending in 2001: the default dates do not fit, fractions give 300/75/125 bars
    # less the embargo: validation 70 bars, test 120 bars.
    splits = walk_forward_splits(small_synth, SplitConfig())
    assert [(s.start, s.stop, s.basis) for s in splits.values()] == [
        (0, 300, "fractions"), (305, 375, "fractions"), (380, 500, "fractions"),
    ]  # fmt: skip
    note = split_note(small_synth, SplitConfig())
    assert note is not None and "do not fit the data" in note and "60/15/25 %" in note
    assert (
        split_note(small_synth, SplitConfig(train_end="2000-06-30", validation_end="2000-12-29"))
        is None
    )
    # too short: refused with the numbers
    with pytest.raises(
        DataError, match=r"validation 70 bars of .*500 bars.* < data.splits.min_split_bars=100"
    ):
        walk_forward_splits(small_synth, SplitConfig(min_split_bars=100))
    # the walk-forward study sets test_end: dates outside the data are refused, not replaced
    with pytest.raises(DataError, match=r"validation split is empty for .*data.splits.train_end"):
        walk_forward_splits(
            small_synth, SplitConfig(validation_end="2013-12-31", test_end="2014-12-31")
        )
    with pytest.raises(DataError, match=r"empty or negative"):
        Split("x", 5, 5)
    assert len(Split("x", 2, 7)) == 5


def test_market_arrays_are_c_contiguous_whatever_the_input_layout() -> None:
    """A per-bar gather (``take`` of rows) first copies a whole table that is not
    C-contiguous: the S&P 500 sample's pandas-built (column-major) arrays made the env
    step twice as slow as on a numpy market. Every array is stored C-contiguous, with the
    same values."""
    md = synthetic(n_assets=5, n_days=300, seed=0)
    columns = ("close", "volume", "spread_bps", "tradable")
    fortran = dataclasses.replace(
        md, _cache={}, **{name: np.asfortranarray(getattr(md, name)) for name in columns}
    )
    assert not np.asfortranarray(md.close).flags.c_contiguous  # the input really was F
    for name in (*columns, "returns", "benchmark_returns", "dates"):
        got = getattr(fortran, name)
        assert got.flags.c_contiguous and not got.flags.writeable, name
        assert np.array_equal(got, getattr(md, name), equal_nan=name != "dates"), name
    sp = load_sp500()
    assert all(getattr(sp, name).flags.c_contiguous for name in (*columns, "returns"))
