"""A user's own data: sectors for any source, limits that need missing metadata not applied,
splits that fit the data, sanity checks, delistings, and honest baseline rows.

The acceptance test writes real S&P 500 closes (skfolio's sample) as a wide CSV without
sectors, volume or benchmark, as a new user would, and checks 1/N against an equal-weight
book computed independently from the same file.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from allocgym.cli import app
from allocgym.config import DataConfig, RiskConfig, SplitConfig, config_from_dict
from allocgym.data import (
    NO_SECTOR,
    UNKNOWN_SECTOR,
    MarketData,
    from_csv,
    from_prices,
    large_moves,
    load_market,
    load_sectors,
    sector_cap_note,
    summary,
    synthetic,
    walk_forward_splits,
)
from allocgym.errors import ConfigError, DataError, DataWarning
from allocgym.execution import ExecutionParams, ExecutionPolicy, Triggers
from allocgym.risk import GateContext, ReasonCode, RiskGateChain, RiskLimits, check_invariants

LOOSE = DataConfig(min_history=2)


def _wide(n_days: int = 300, n_assets: int = 4, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0003, 0.01, (n_days, n_assets))
    px = 50.0 * np.exp(np.cumsum(r, axis=0))
    idx = pd.bdate_range("2016-01-04", periods=n_days)
    return pd.DataFrame(px, index=idx, columns=[f"S{i}" for i in range(n_assets)])


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return fn(*args, **kwargs)


# ----------------------------------------------------------------------------- sectors


def test_symbols_without_sector_have_no_sector_id() -> None:
    md = _quiet(from_prices, _wide(), cfg=LOOSE, sectors={"S0": "Tech", "S2": "Energy"})
    assert md.sectors == ("Tech", UNKNOWN_SECTOR, "Energy", UNKNOWN_SECTOR)
    assert md.sector_names == ("Energy", "Tech")
    assert md.sector_ids.tolist() == [1, NO_SECTOR, 0, NO_SECTOR]
    assert md.unsectored == ("S1", "S3")
    note = sector_cap_note(md)
    assert note is not None and "2 of 4 symbols (S1, S3)" in note and "--sectors" in note
    full = _quiet(from_prices, _wide(), cfg=LOOSE, sectors=dict.fromkeys(_wide().columns, "X"))
    assert sector_cap_note(full) is None and full.sector_ids.tolist() == [0, 0, 0, 0]


def _ctx(w_cur: np.ndarray, sector_ids: list[int]) -> GateContext:
    n = w_cur.shape[1]
    ones = np.ones((1, n))
    return GateContext(
        current_weights=w_cur, equity=np.array([1e6]), prices=100 * ones,
        adv_notional=1e12 * ones, volatility=0.01 * ones, spread_bps=ones,
        sector_ids=np.array(sector_ids), regime=np.array([-1]), tradable=ones > 0,
    )  # fmt: skip


def test_gates_and_execution_leave_names_without_sector_out_of_the_sector_cap() -> None:
    limits = RiskLimits(max_symbol_weight=0.25, max_sector_gross=0.3, max_turnover=5.0,
                        slippage_budget_bps=1e6)  # fmt: skip
    chain = RiskGateChain(limits)
    proposed = np.array([[0.2, 0.2, 0.2, 0.2]])
    ctx = _ctx(np.zeros((1, 4)), [NO_SECTOR, NO_SECTOR, 0, 0])
    res = chain.apply(proposed, ctx)
    # sector 0 holds 0.4 > 0.3: both names scaled by 0.3 / 0.4; the unsectored ones stay
    assert np.allclose(res.approved, [[0.2, 0.2, 0.15, 0.15]], rtol=0, atol=1e-15)
    assert res.symbol_reasons[0, 0] & ReasonCode.SECTOR_CAP == 0
    assert res.symbol_reasons[0, 2] & ReasonCode.SECTOR_CAP
    assert check_invariants(res, ctx, limits).n_breaches == 0
    # no name has a sector: no sector cap at all (gross 0.8 passes)
    none = chain.apply(proposed, _ctx(np.zeros((1, 4)), [NO_SECTOR] * 4))
    assert np.array_equal(none.approved, proposed)
    ex = ExecutionPolicy(ExecutionParams(), limits).apply(none, _ctx(np.zeros((1, 4)), [-1] * 4),
                                                          Triggers())  # fmt: skip
    assert np.allclose(ex.target_weights, proposed, atol=1e-4)
    # before, every name in one 'unknown' sector capped the whole book at 0.3
    one = chain.apply(proposed, _ctx(np.zeros((1, 4)), [0] * 4))
    assert np.abs(one.approved).sum() == pytest.approx(0.3, abs=1e-15)


def test_load_sectors_csv_yaml_mapping_and_refusals(tmp_path: Path) -> None:
    csv = tmp_path / "sectors.csv"
    csv.write_text("symbol,sector\nS0,Tech\n S1 , Energy\nS0,Tech\n")
    assert load_sectors(csv) == {"S0": "Tech", "S1": "Energy"}
    yml = tmp_path / "sectors.yaml"
    yml.write_text("S0: Tech\nS3: Health Care\n")
    assert load_sectors(yml) == {"S0": "Tech", "S3": "Health Care"}
    assert load_sectors({"S1": "X"}) == {"S1": "X"}
    with pytest.raises(DataError, match=r"does not exist: pass an existing CSV"):
        load_sectors(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("ticker,industry\nS0,Tech\n")
    with pytest.raises(DataError, match=r"header 'symbol,sector'"):
        load_sectors(bad)
    clash = tmp_path / "clash.csv"
    clash.write_text("symbol,sector\nS0,Tech\nS0,Energy\n")
    with pytest.raises(DataError, match=r"'S0' is listed with sectors 'Tech' and 'Energy'"):
        load_sectors(clash)
    lst = tmp_path / "list.yaml"
    lst.write_text("- S0\n- S1\n")
    with pytest.raises(DataError, match=r"must hold a mapping"):
        load_sectors(lst)
    nested = tmp_path / "nested.yaml"
    nested.write_text("S0: [Tech, Energy]\n")
    with pytest.raises(DataError, match=r"'S0' has sector \['Tech', 'Energy'\], a list"):
        load_sectors(nested)
    blank = tmp_path / "blank.csv"
    blank.write_text("symbol,sector\nS0,Tech\n,Energy\n")  # not a symbol named 'nan'
    with pytest.raises(DataError, match=r"a row has no symbol \(sector 'Energy'\)"):
        load_sectors(blank)
    with pytest.raises(DataError, match=r"a row has no symbol"):
        load_sectors({None: "Tech"})
    tickers = tmp_path / "tickers.csv"  # NA (National Bank of Canada) is a ticker, not NaN
    tickers.write_text("symbol,sector\nNA,Financials\nNULL,Tech\n")
    assert load_sectors(tickers) == {"NA": "Financials", "NULL": "Tech"}


def test_data_sectors_applies_to_every_source(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    _wide().to_csv(path)
    sec = tmp_path / "sec.csv"
    sec.write_text("symbol,sector\nS0,A\nS1,A\nS2,B\nS3,B\n")
    md = _quiet(load_market, DataConfig(source="csv", path=str(path), sectors=str(sec)))
    assert md.sectors == ("A", "A", "B", "B") and "sectors" not in md.defaulted
    synth = load_market(
        DataConfig(
            source="synthetic", sectors={"S000": "Only"}, synthetic={"n_assets": 3, "n_days": 300}
        )
    )
    assert synth.sectors == ("Only", UNKNOWN_SECTOR, UNKNOWN_SECTOR)
    sp = _quiet(load_market, DataConfig(sectors={"AAPL": "Tech"}))
    assert sp.sectors[sp.symbols.index("AAPL")] == "Tech"
    assert sp.sectors[sp.symbols.index("XOM")] == UNKNOWN_SECTOR
    # a sector for a symbol the data does not hold is named, not dropped silently
    with pytest.warns(DataWarning, match=r"names 1 symbol\(s\) the data does not hold \(S9\)"):
        load_market(DataConfig(source="csv", path=str(path), sectors={"S0": "A", "S9": "B"}))
    # without a sector file a wide CSV has none, and load_market says so
    with pytest.warns(DataWarning, match=r"sector cap inactive for all symbols"):
        plain = load_market(DataConfig(source="csv", path=str(path)))
    assert plain.sector_ids.tolist() == [NO_SECTOR] * 4


def test_data_info_says_the_sector_cap_is_inactive_and_prints_the_splits(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    _wide(n_days=800).to_csv(path)  # 2016-01-04 .. 2019-01: the default dates do not fit
    res = CliRunner().invoke(app, ["data", "info", str(path)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "sector cap: inactive for all symbols without a sector (pass --sectors FILE" in out
    assert "walk-forward splits by data.splits.fractions" in out
    assert "train: 2016-01-04..2017-11-03 (480 bars)" in out
    assert "do not fit the data" in out  # the note
    sec = tmp_path / "sec.yaml"
    sec.write_text("S0: A\nS1: A\nS2: B\nS3: B\n")
    res = CliRunner().invoke(app, ["data", "info", str(path), "--sectors", str(sec)])
    assert res.exit_code == 0, res.output
    assert "sector cap: inactive" not in res.output and "A (2), B (2)" in res.output


# ----------------------------------------------------------------------------- splits


def test_splits_by_fractions_when_the_dates_do_not_fit() -> None:
    # a file starting in 2014 with the default 2010/2014 dates: the old code refused it
    md = _quiet(from_prices, _wide(n_days=1000).set_axis(
        pd.bdate_range("2014-06-02", periods=1000)), cfg=LOOSE)  # fmt: skip
    sp = walk_forward_splits(md, SplitConfig())
    # 1000 bars, 60/15/25, embargo 5: train 0..599, validation 605..749, test 755..999
    assert [(s.start, s.stop) for s in sp.values()] == [(0, 600), (605, 750), (755, 1000)]
    assert {s.basis for s in sp.values()} == {"fractions"}
    info = summary(md, SplitConfig())
    assert info["split_basis"] == "fractions" and info["splits"][0].startswith("train: 2014-06-02")
    with pytest.raises(DataError, match=r"validation 145 bars .* < data.splits.min_split_bars=200"):
        walk_forward_splits(md, SplitConfig(min_split_bars=200))
    with pytest.raises(ConfigError, match=r"sum to 1"):
        config_from_dict({"data": {"splits": {"fractions": [0.5, 0.2, 0.2]}}})


# ----------------------------------------------------------------------------- sanity


def test_duplicate_symbol_columns_are_refused_with_their_names(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    df = _wide()
    df.insert(2, "S0", df["S0"], allow_duplicates=True)
    df.to_csv(path)
    with pytest.raises(DataError, match=r"duplicate symbol columns \['S0'\]"):
        from_csv(path, cfg=LOOSE)


def test_headerless_columns_and_absurd_prices_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    _wide().rename(columns={"S1": ""}).to_csv(path)
    with pytest.raises(DataError, match=r"column\(s\) without a header \(Unnamed: 2\)"):
        from_csv(path, cfg=LOOSE)
    huge = tmp_path / "huge.csv"
    df = _wide()
    df["S2"] *= 1e300
    df.to_csv(huge)
    with pytest.raises(DataError, match=r"close prices outside \[1e-08, 1e\+15\] currency: S2 at"):
        from_csv(huge, cfg=LOOSE)


def test_dates_in_another_format_are_refused_with_their_line(tmp_path: Path) -> None:
    df = _wide(n_days=30)
    text = df.to_csv(date_format="%Y-%m-%d").splitlines()
    # line 6 of the file (value 5): 2016-01-08 written month-first, as a spreadsheet might
    text[5] = "01/08/2016" + text[5][len("2016-01-08") :]
    wide = tmp_path / "mixed.csv"
    wide.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError) as err:
        from_csv(wide, cfg=LOOSE)
    msg = str(err.value)
    assert "value 5 ('01/08/2016', line 6 of a CSV" in msg and "%Y-%m-%d" in msg
    assert "YYYY-MM-DD" in msg and "format=" not in msg  # not pandas' advice on its own API
    # day-first dates read month-first from the first row: the first day over 12 is named
    text = ["date,S0,S1"] + [f"{d:02d}/03/2016,1.0,2.0" for d in range(1, 20)]
    dayfirst = tmp_path / "dayfirst.csv"
    dayfirst.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"value 13 \('13/03/2016', line 14 .* %m/%d/%Y .*\(7 "):
        from_csv(dayfirst, cfg=LOOSE)
    iso = tmp_path / "iso.csv"
    iso.write_text(
        "date,S0,S1\n"
        + "".join(f"2016-03-{d:02d}{' 00:00:00' if d % 2 else ''},1.0,2.0\n" for d in range(1, 20))
    )
    assert len(from_csv(iso, cfg=LOOSE).dates) == 19  # ISO in two spellings: unambiguous
    first = tmp_path / "first.csv"
    first.write_text("date,S0\nsoon,1.0\n2016-01-05,1.0\n")
    with pytest.raises(DataError, match="the first date 'soon' is not a date"):
        from_csv(first, cfg=LOOSE)


def test_large_moves_are_listed_with_dates_and_refused_when_bounded() -> None:
    df = _wide(n_days=200)
    day = df.index[50]
    df.loc[day, "S1"] *= 1000.0  # a one-bar spike: reverts the next bar
    df.loc[df.index[120] :, "S3"] *= 1000.0  # a level jump that stays
    with pytest.warns(DataWarning) as caught:
        md = from_prices(df, cfg=LOOSE)
    text = " ".join(str(w.message) for w in caught)
    r = df.pct_change()
    r1, r3 = r.loc[day, "S1"], r.iloc[120]["S3"]  # x1000 times the day's own move
    assert 900 < r1 < 1100 and 900 < r3 < 1100
    assert f"S1 {day:%Y-%m-%d} {r1:+.1%} (reverts on {df.index[51]:%Y-%m-%d})" in text
    assert f"S3 {df.index[120]:%Y-%m-%d} {r3:+.1%} (does not revert)" in text
    assert "2 one-bar move(s) beyond 50%" in text
    moves = large_moves(md)
    assert [(m.symbol, m.date) for m in moves] == [
        ("S1", f"{day:%Y-%m-%d}"), ("S3", f"{df.index[120]:%Y-%m-%d}"),
    ]  # fmt: skip
    strict = DataConfig(min_history=2, max_abs_return=0.5)
    with pytest.raises(DataError, match=r"2 one-bar move\(s\) beyond data.max_abs_return = 0.5"):
        _quiet(from_prices, df, cfg=strict)
    assert _quiet(from_prices, _wide(n_days=200), cfg=strict).n_days == 200


def test_split_sized_moves_are_named_inside_the_bound() -> None:
    df = _wide(n_days=200)
    two = df.index[60]
    # an unadjusted 2:1 split on a day the stock rose 0.2 %: -49.9 %, inside a 50 % bound
    df.loc[two:, "S0"] *= 0.5 * 1.002 / (df.loc[two, "S0"] / df.shift().loc[two, "S0"])
    three = df.index[90]  # a 1:10 reverse split, beyond the bound
    df.loc[three:, "S2"] *= 10.0
    r = df.pct_change()
    assert r.loc[two, "S0"] == pytest.approx(-0.499) and r.loc[three, "S2"] > 9.0
    with pytest.warns(DataWarning) as caught:
        md = from_prices(df, cfg=LOOSE)
    text = " ".join(str(w.message) for w in caught)
    assert "1 one-bar move(s) beyond 50%: S2" in text
    assert f"S2 {three:%Y-%m-%d} {r.loc[three, 'S2']:+.1%} (does not revert, the size" in text
    assert "1 one-bar move(s) the size of a stock split: S0" in text
    assert (
        f"S0 {two:%Y-%m-%d} -49.9% (does not revert, the size of an unadjusted 2:1 split)" in text
    )
    moves = large_moves(md)
    assert [(m.symbol, m.split) for m in moves] == [("S0", "2:1"), ("S2", "1:10")]
    # a bound refuses the reverse split only; the split inside it stays a warning
    strict = DataConfig(min_history=2, max_abs_return=0.5)
    with pytest.raises(DataError, match=r"1 one-bar move\(s\) beyond data.max_abs_return = 0.5 "):
        _quiet(from_prices, df, cfg=strict)
    df.loc[three:, "S2"] /= 10.0
    with pytest.warns(DataWarning) as caught:
        assert from_prices(df, cfg=strict).n_days == 200
    text = " ".join(str(w.message) for w in caught)
    assert "the size of a stock split: S0" in text and "set data.max_abs_return" not in text
    # 1 % off the ratio is still named; 2 % off is an ordinary -48 % move
    for rose, named in ((1.0099, True), (1.02, False)):
        moved = _wide(n_days=200)
        moved.loc[two:, "S0"] *= 0.5 * rose / (moved.loc[two, "S0"] / moved.shift().loc[two, "S0"])
        assert bool(_quiet(large_moves, _quiet(from_prices, moved, cfg=LOOSE))) is named


def test_trailing_nan_is_a_delisting(tmp_path: Path) -> None:
    df = _wide(n_days=300)
    df.iloc[200:, 2] = np.nan  # S2 delisted after bar 199
    md = _quiet(from_prices, df, cfg=LOOSE)
    assert md.last_price.tolist() == [299, 299, 199, 299]
    assert not md.tradable[200:, 2].any() and md.tradable[:200, 2].all()
    assert md.delisted[200:, 2].all() and not md.delisted[:200].any()
    assert summary(md)["delisted"] == {"S2": f"{df.index[199]:%Y-%m-%d}"}
    # every run from a file says so (a lagging feed looks the same)
    path = tmp_path / "p.csv"
    df.to_csv(path)
    cfg = DataConfig(source="csv", path=str(path), min_history=2)
    with pytest.warns(
        DataWarning,
        match=rf"1 symbol\(s\) .* delisted .*: S2 {df.index[199]:%Y-%m-%d}; if the feed only lags",
    ):
        load_market(cfg)
    df.iloc[100, 1] = np.nan  # a hole is still refused
    with pytest.raises(DataError, match=r"NaN close between two prices: S1"):
        _quiet(from_prices, df, cfg=LOOSE)


def test_a_delisted_position_is_closed_at_its_last_price() -> None:
    from allocgym.envs import core

    base = synthetic(n_assets=4, n_days=700, seed=3)
    close = base.close.copy()
    close[600:, 1] = np.nan
    md = MarketData(
        dates=base.dates, symbols=base.symbols, close=close, volume=base.volume,
        spread_bps=base.spread_bps, sectors=base.sectors, benchmark_returns=base.benchmark_returns,
        tradable=np.isfinite(close), name="delisting",
    )  # fmt: skip
    cfg = config_from_dict({"env": {"split": "all", "episode_length": 200}})
    params = core.EnvParams.from_config(md, cfg)
    state, _ = core.reset(params, core.seed_keys(np.zeros(1, np.int64)), start=np.array([590]))
    eq = 0.25  # equal weight every bar
    for _ in range(9):  # decisions at 590..598: fills up to bar 599, the last price
        res = core.step_proposed(params, state, np.full((1, 4), eq))
        state = res.state
    held = state.shares[0, 1]
    assert held > 0 and held == np.rint(held)
    cash_before, equity_before = state.cash[0], state.equity[0]
    res = core.step_proposed(params, state, np.full((1, 4), eq))  # decision 599, fill at 600
    after = res.state
    assert after.shares[0, 1] == 0.0  # closed
    # ... at its last price: the cash gained is held x close[599], less the other trades
    others = res.info["delta_qty"][0] * params.prices[600]
    cost = res.info["cost"][0] * (state.cash[0] + state.shares[0] @ params.prices[600])
    expected = (
        cash_before - others.sum() - cost + (held + res.info["delta_qty"][0, 1]) * close[599, 1]
    )
    assert after.cash[0] == pytest.approx(expected, rel=1e-12)
    marked = after.cash[0] + after.shares[0] @ params.prices[600]
    assert np.isfinite(after.equity[0]) and after.equity[0] == pytest.approx(marked, rel=1e-12)
    assert after.equity[0] == pytest.approx(equity_before, rel=0.05)  # no jump: one bar's move
    assert not params.tradable[600:, 1].any()
    res = core.step_proposed(params, after, np.full((1, 4), eq))  # later: never bought again
    assert res.state.shares[0, 1] == 0.0 and res.info["delta_qty"][0, 1] == 0.0


# ----------------------------------------------------------------------------- acceptance


@pytest.fixture(scope="module")
def user_csv(tmp_path_factory: pytest.TempPathFactory, sp500: MarketData) -> Path:
    """Real S&P 500 closes 2010-2022 as a user's wide CSV: no sectors, volume, benchmark."""
    keep = sp500.dates >= np.datetime64("2010-01-01")
    df = pd.DataFrame(sp500.close[keep], index=pd.DatetimeIndex(sp500.dates[keep]),
                      columns=list(sp500.symbols))  # fmt: skip
    df.index.name = "date"
    path = tmp_path_factory.mktemp("user") / "my_prices.csv"
    df.to_csv(path, float_format="%.6f")
    return path


def test_wide_csv_without_sectors_equal_weight_holds_full_gross(user_csv: Path) -> None:
    from allocgym.evaluation import build_baselines, evaluate

    # The regime overlay (a smaller gross in high-volatility regimes) is switched off, so
    # that "full gross" is the whole book on every bar; the overlay has its own test.
    cfg = config_from_dict(
        {
            "data": {"source": "csv", "path": str(user_csv)},
            "risk": {"regime_budget_multipliers": {}, "regime_capacity_multipliers": {}},
        }
    )
    market = _quiet(load_market, cfg.data)
    assert market.sector_ids.tolist() == [NO_SECTOR] * 20
    allocs = list(build_baselines(cfg, ["equal_weight", "hrp", "qp"]).values())
    result = evaluate(allocs, market, cfg, "test")
    ew = result.metrics["equal_weight"]
    assert ew["mean_gross"] > 0.98  # was 0.30: the 'unknown' sector capped the whole book
    assert ew["interventions"].get("SECTOR_CAP", 0) == 0
    # an equal-weight book computed independently from the same file, rebalanced daily
    px = pd.read_csv(user_csv, index_col=0, parse_dates=True)
    book = px.pct_change().mean(axis=1)
    bt = result.backtest("equal_weight")
    independent = book.loc[pd.DatetimeIndex(bt.dates)].std(ddof=1) * np.sqrt(252)
    assert ew["ann_volatility"] == pytest.approx(independent, rel=0.03)
    # QP optimises inside the same limits (no sector cap to make it infeasible): its own book
    qp = result.metrics["qp"]
    assert qp["fallback_share"] < 0.5 and not qp["fallback_flag"]
    assert qp["rebalances"] > 50 and qp["sources"].get("qp:CLARABEL", 0) > 0
    assert not np.allclose(bt.returns, 0.0)
    assert not np.allclose(result.backtest("qp").returns, result.backtest("hrp").returns)
    assert any("sector cap inactive for all symbols" in n for n in result.meta["data_notes"])


def test_regime_overlay_cuts_are_not_blamed_on_the_allocator(user_csv: Path) -> None:
    from allocgym.evaluation import build_baselines, evaluate

    cfg = config_from_dict({"data": {"source": "csv", "path": str(user_csv)}})
    market = _quiet(load_market, cfg.data)
    alloc = build_baselines(cfg, ["equal_weight"])["equal_weight"]
    result = evaluate([alloc], market, cfg, "test")
    m = result.metrics["equal_weight"]
    # 1/N at 5% per name breaks no per-name or gross limit by itself. At the default
    # multipliers the gates cut it only where its own book does: the first decisions
    # from cash (buying the whole book exceeds the turnover ceiling) and a fully invested
    # book whose costs pushed cash below 0 (net above 1: a sliver sold). The large cuts
    # are the high-volatility overlay's.
    bt = result.backtest("equal_weight")
    own = np.flatnonzero(bt.allocator_cut > 1e-9)
    allowed = ReasonCode.TURNOVER_CAP | ReasonCode.NET_CAP | ReasonCode.FORCED_DERISK
    allowed |= ReasonCode.NO_TRADE_BAND | ReasonCode.LOT_ROUNDING  # execution's, no cut
    assert all(bt.portfolio_reasons[k] & ~allowed == 0 for k in own)
    assert bt.allocator_cut[0] == pytest.approx(0.5)  # 1.0 wanted, turnover ceiling 0.5
    assert bt.allocator_cut[2:].max() < 0.005
    assert m["allocator_bars"] == own.size / bt.n_steps < 0.02
    assert 0.05 < m["overlay_bars"] < 1.0 and m["overlay_l1"] > 10 * m["allocator_l1"]
    assert np.allclose(bt.allocator_cut + bt.overlay_cut, bt.intervention, atol=1e-12)
    assert RiskConfig().regime_budget_multipliers["high_volatility"] == 0.6


def test_no_sector_names_random_books_keep_every_invariant() -> None:
    rng = np.random.default_rng(7)
    limits = RiskLimits(max_symbol_weight=0.3, max_sector_gross=0.35, long_only=False,
                        max_turnover=5.0, slippage_budget_bps=1e6)  # fmt: skip
    chain = RiskGateChain(limits)
    policy = ExecutionPolicy(ExecutionParams(), limits)
    for _ in range(50):
        n, b = int(rng.integers(2, 9)), int(rng.integers(1, 6))
        ids = rng.integers(-1, 3, n)
        ones = np.ones((b, n))
        ctx = GateContext(
            current_weights=rng.normal(0, 0.1, (b, n)), equity=np.full(b, 1e6),
            prices=50 * ones, adv_notional=1e12 * ones, volatility=0.01 * ones,
            spread_bps=ones, sector_ids=ids, regime=rng.integers(-1, 4, b),
            tradable=rng.random((b, n)) > 0.1,
        )  # fmt: skip
        proposed = rng.normal(0, 0.3, (b, n))
        res = chain.apply(proposed, ctx)
        assert check_invariants(res, ctx, limits).n_breaches == 0
        # From cash with every name tradable, only the sector gate can code SECTOR_CAP (the
        # repairs of a held or untradable book code every name they move with the first
        # limit broken), and it never touches a name without a sector.
        fresh = replace(ctx, current_weights=np.zeros((b, n)), tradable=ones > 0)
        direct = chain.apply(proposed, fresh)
        assert not (direct.symbol_reasons[:, ids < 0] & ReasonCode.SECTOR_CAP).any()
        ex = policy.apply(res, ctx, Triggers())
        sector_gross = np.array(
            [[np.abs(ex.target_weights[i, ids == s]).sum() for s in range(3)] for i in range(b)]
        )
        cur = np.array(
            [[np.abs(ctx.current_weights[i, ids == s]).sum() for s in range(3)] for i in range(b)]
        )
        assert (sector_gross <= np.maximum(0.35, cur) + 1e-9).all()


def _hourly(n_days: int) -> MarketData:
    """Two symbols, 24 hourly bars a day from 2020-01-01 09:00."""
    dates = pd.date_range("2020-01-01 09:00", periods=24 * n_days, freq="h").values
    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, (len(dates), 2)), 0))
    n = len(dates)
    return MarketData(
        dates=dates, symbols=("A", "B"), close=close, volume=np.ones((n, 2)),
        spread_bps=np.ones((n, 2)), sectors=("x", "y"), benchmark_returns=np.zeros(n),
        tradable=np.ones((n, 2), bool),
    )  # fmt: skip


def test_split_dates_include_the_whole_day() -> None:
    """``train_end = 2020-06-30`` keeps every bar of that day in train (the hourly bars
    after midnight had gone to validation)."""
    from allocgym.data import date_splits

    md = _hourly(400)
    cfg = SplitConfig(
        train_end="2020-06-30", validation_end="2020-09-30", embargo_days=0, min_split_bars=1
    )
    sp = date_splits(md, cfg)
    last_train, first_val = md.dates[sp["train"].stop - 1], md.dates[sp["validation"].start]
    assert str(last_train)[:19] == "2020-06-30T23:00:00"
    assert str(first_val)[:19] == "2020-07-01T00:00:00"
    assert str(md.dates[sp["validation"].stop - 1])[:19] == "2020-09-30T23:00:00"


def test_daily_factors_on_intraday_bars_are_refused(tmp_path: Path) -> None:
    from allocgym.data import load_factor_returns

    md = _hourly(5)
    path = tmp_path / "factors.csv"
    days = pd.date_range("2019-12-31", periods=8, freq="D")
    path.write_text("date,MKT\n" + "".join(f"{d.date()},0.01\n" for d in days))
    with pytest.raises(DataError, match=r"the market has 15 bars on 2020-01-01: .* daily market"):
        load_factor_returns(path, md)


def test_long_data_with_a_column_twice_in_another_case_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(
        "date,symbol,close,Close\n2020-01-02,A,10,99\n2020-01-03,A,10.5,99\n2020-01-06,A,11,99\n"
    )
    with pytest.raises(DataError, match=r"columns \['close'\] twice .* keep one"):
        from_csv(path, cfg=LOOSE)


def test_intraday_stamps_with_an_offset_warn_about_the_clock_windows(tmp_path: Path) -> None:
    """+09:00 stamps keep their wall time (09:00), which clock windows read in
    schedule.bar_timezone (UTC by default): said once, naming the setting. Daily stamps
    at midnight and UTC stamps are read as they are, without a word."""

    def write(stamps: list[str]) -> Path:
        path = tmp_path / "p.csv"
        rows = [f"{d},{100 + i},{50 + i}" for i, d in enumerate(stamps)]
        path.write_text("date,A,B\n" + "\n".join(rows) + "\n")
        return path

    days = pd.bdate_range("2020-01-06", periods=80)
    tokyo = [f"{d.date()}T{h:02d}:00:00+09:00" for d in days for h in (9, 10)]
    with pytest.warns(DataWarning, match=r"UTC offset \+0900 .* schedule.bar_timezone"):
        md = from_csv(write(tokyo), cfg=LOOSE)
    assert str(md.dates[0])[:19] == "2020-01-06T09:00:00"
    daily = [f"{d.date()}T00:00:00+09:00" for d in pd.bdate_range("2020-01-06", periods=160)]
    utc = [f"{d.date()}T{h:02d}:00:00Z" for d in days for h in (9, 10)]
    for stamps in (daily, utc):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            from_csv(write(stamps), cfg=LOOSE)
        assert not [w for w in caught if "UTC offset" in str(w.message)]


def test_a_long_file_with_a_misspelt_column_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("date,symbol,closee\n2020-01-02,A,10\n2020-01-03,A,10.5\n")
    with pytest.raises(DataError, match=r"lacks columns \['close'\] \(its columns: .*'closee'"):
        from_csv(path, cfg=LOOSE)
    path.write_text(
        "date,symbol,close,volumee\n"
        + "".join(
            f"{d.date()},A,{10 + i},5\n"
            for i, d in enumerate(pd.bdate_range("2020-01-02", periods=30))
        )
    )
    with pytest.warns(DataWarning, match=r"columns \['volumee'\] are not read"):
        from_csv(path, cfg=LOOSE)


def test_a_stray_intraday_row_in_a_daily_file_is_named(tmp_path: Path) -> None:
    df = _wide(n_days=300)
    stray = df.iloc[[10]].copy()
    stray.index = stray.index + pd.Timedelta(hours=12)
    df = pd.concat([df, stray]).sort_index()
    path = tmp_path / "p.csv"
    df.to_csv(path)
    cfg = DataConfig(source="csv", path=str(path), min_history=2)
    day = f"{df.index[10]:%Y-%m-%d}"
    with pytest.warns(DataWarning, match=rf"1 day\(s\) of a daily file .*: {day} \(2 bars\)"):
        load_market(cfg)


# ----------------------------------------------------------------------------- review fixes


def _long_rows(symbols: list[str], n_days: int = 30, sector: list[str] | None = None) -> str:
    rng = np.random.default_rng(1)
    lines = ["date,symbol,close" + (",sector" if sector else "")]
    for d in pd.bdate_range("2020-01-01", periods=n_days):
        for k, sym in enumerate(symbols):
            extra = f",{sector[k]}" if sector else ""
            lines.append(f"{d.date()},{sym},{100 + rng.normal():.4f}{extra}")
    return "\n".join(lines) + "\n"


def test_dates_outside_the_nanosecond_range_are_refused_not_wrapped(tmp_path: Path) -> None:
    """A typo'd year (0202 for 2020) or a sentinel (2300, 9999) had wrapped around to
    another century when the dates were cast to nanoseconds, and the sort check's int64
    difference overflowed: the file loaded as 1955..2020 or ended before it started."""
    for year, row in (("0202", 0), ("2300", 29), ("9999", 29)):
        df = _wide(30, 2)
        dates = [d.strftime("%Y-%m-%d") for d in df.index]
        dates[row] = f"{year}-01-01"
        path = tmp_path / f"y{year}.csv"
        df.set_axis(dates).rename_axis("date").to_csv(path)
        with pytest.raises(DataError, match=rf"date {year}-01-01 \(row {row}\) is outside"):
            _quiet(from_csv, path, cfg=LOOSE)
    far = np.array(["2100-01-01", "1700-01-01"], dtype="datetime64[ns]")
    with pytest.raises(DataError, match="not sorted: 1700-01-01 after 2100-01-01"):
        MarketData(dates=far, symbols=("A",), close=np.ones((2, 1)), volume=np.ones((2, 1)),
                   spread_bps=np.ones((2, 1)), sectors=("s",),
                   benchmark_returns=np.zeros(2), tradable=np.ones((2, 1), bool))  # fmt: skip
    md = _quiet(from_prices, _wide(300, 2), cfg=LOOSE)
    splits = walk_forward_splits(
        md, SplitConfig(train_end="2016-06-30", validation_end="2016-10-31", test_end="2300-01-01")
    )
    assert splits["test"].stop == md.n_days  # after every bar, not wrapped to 1715


def test_long_symbols_and_sectors_are_read_as_text(tmp_path: Path) -> None:
    """Ticker text stays as written (0005 had loaded as 5, TRUE as True, 1E3 as 1000.0,
    so a sector file matched nothing), and a sector label is trimmed (" Energy" had been
    a second sector with its own cap)."""
    path = tmp_path / "long.csv"
    path.write_text(_long_rows(["0005", "TRUE", "1E3"], sector=["Energy", " Energy", "Tech"]))
    md = _quiet(from_csv, path, cfg=LOOSE)
    assert md.symbols == ("0005", "TRUE", "1E3")
    assert md.sectors == ("Energy", "Energy", "Tech") and md.sector_ids.tolist() == [0, 0, 1]


def test_missing_value_words_and_unquoted_yaml_keys_are_refused_as_sectors(
    tmp_path: Path,
) -> None:
    """A sector '#N/A' (a spreadsheet lookup that found nothing) had become one capped
    sector shared by every such symbol; YAML reads ON, NO and 0005 as True, False, 5."""
    csv = tmp_path / "sectors.csv"
    csv.write_text("symbol,sector\nAAA,Energy\nBBB,#N/A\n")
    with pytest.raises(DataError, match=r"symbol 'BBB' has sector '#N/A', a missing-value word"):
        load_sectors(csv)
    yml = tmp_path / "sectors.yaml"
    yml.write_text("ON: Energy\n0005: Tech\n'NO': Tech\n")
    with pytest.raises(DataError, match=r"YAML read symbols as \[True, 5\], not text"):
        load_sectors(yml)
    yml.write_text("'ON': Energy\n'0005': Tech\n")
    assert load_sectors(yml) == {"ON": "Energy", "0005": "Tech"}


def test_price_field_columns_are_not_read_as_symbols(tmp_path: Path) -> None:
    """An OHLCV file of one stock had loaded as five symbols (volume traded as a stock);
    yfinance's (field, ticker) columns as symbols named "('Close', 'AAPL')"."""
    df = _wide(30, 1).rename(columns={"S0": "close"})
    for col in ("open", "high", "low", "volume"):
        df[col] = df["close"]
    with pytest.raises(DataError, match=r"price fields, not symbols.*'symbol' column"):
        _quiet(from_prices, df, cfg=LOOSE)
    two = pd.concat({"Close": _wide(30, 2), "Volume": _wide(30, 2)}, axis=1)
    with pytest.raises(DataError, match=r"columns on 2 levels.*df\['Close'\]"):
        _quiet(from_prices, two, cfg=LOOSE)
    assert _quiet(from_prices, two["Close"], cfg=LOOSE).symbols == ("S0", "S1")
    tickers = _wide(30, 3).set_axis(["LOW", "OPEN", "HD"], axis=1)  # Lowe's, Opendoor
    assert _quiet(from_prices, tickers, cfg=LOOSE).symbols == ("LOW", "OPEN", "HD")


def test_day_month_dates_that_read_both_ways_are_refused(tmp_path: Path) -> None:
    """Monthly d/m/Y dates on the 1st parse month first as twelve days of January; a day
    above 12 settles the order, and year-first ISO dates are never ambiguous."""
    months = pd.date_range("2000-01-01", periods=24, freq="MS")
    df = _wide(24, 2).set_axis(months.strftime("%d/%m/%Y")).rename_axis("date")
    path = tmp_path / "dmy.csv"
    df.to_csv(path)
    with pytest.raises(DataError, match=r"'01/01/2000' read both as month/day .* YYYY-MM-DD"):
        _quiet(from_csv, path, cfg=LOOSE)
    days = pd.bdate_range("2020-01-01", periods=30)
    for fmt in ("%m/%d/%Y", "%Y-%m-%d"):
        clear = _wide(30, 2).set_axis(days.strftime(fmt)).rename_axis("date")
        clear.to_csv(path)
        assert _quiet(from_csv, path, cfg=LOOSE).dates[13] == np.datetime64(days[13], "ns")


def test_out_of_range_spreads_and_intraday_stamps_in_messages() -> None:
    """A spread above 1e4 bps (a unit error; serving refuses it) is refused at load, and an
    intraday bar is named with its time (78 bars share a day)."""
    df = _wide(30, 2)
    with pytest.raises(DataError, match=r"spread_bps above 10000 bps: S1 at 2016-01-04 \(25000\)"):
        _quiet(from_prices, df, cfg=LOOSE, spread_bps=df * 0 + [1.0, 25000.0])
    bars = pd.date_range("2020-01-06 09:30", periods=30, freq="5min")
    intraday = df.set_axis(bars)
    intraday.iloc[10, 0] = -1.0
    with pytest.raises(DataError, match=r"S0 at 2020-01-06 10:20:00 \(-1\)"):
        _quiet(from_prices, intraday, cfg=LOOSE)


def test_extra_volume_columns_and_repeated_factor_columns_are_refused(tmp_path: Path) -> None:
    """A volume column of a misspelt symbol had been dropped without a word, and a repeated
    factor column renamed MKT.1 by pandas."""
    from allocgym.data import load_factor_returns

    df = _wide(30, 2)
    vol = (df * 0 + 1e6).assign(APPL=1e6)
    with pytest.raises(DataError, match=r"volume has columns \['APPL'\] that are not symbols"):
        _quiet(from_prices, df, cfg=LOOSE, volume=vol)
    md = _quiet(from_prices, df, cfg=LOOSE)
    path = tmp_path / "factors.csv"
    path.write_text("date,MKT,MKT\n" + "".join(f"{d.date()},0.01,0.02\n" for d in df.index))
    with pytest.raises(DataError, match=r"duplicate factor columns \['MKT'\]"):
        load_factor_returns(path, md)


def test_parquet_dates_stored_as_text_or_dates_index_load(tmp_path: Path) -> None:
    """A wide frame whose index holds the dates as text or ``datetime.date`` (not a
    DatetimeIndex) had been refused for having "neither a DatetimeIndex nor a 'date'
    column"; a long frame stored with its dates as the index had lacked 'date'. Row
    numbers as the index are still refused."""
    from allocgym.data import from_parquet

    df = _wide(30, 2)
    for name, index in (("text", df.index.strftime("%Y-%m-%d")), ("date", df.index.date)):
        path = tmp_path / f"{name}.parquet"
        df.set_axis(index).to_parquet(path)
        assert _quiet(from_parquet, path, cfg=LOOSE).dates[5] == np.datetime64(df.index[5], "ns")
    long = df.rename_axis("date").reset_index().melt("date", var_name="symbol", value_name="close")
    long.set_index("date").to_parquet(tmp_path / "long.parquet")
    assert _quiet(from_parquet, tmp_path / "long.parquet", cfg=LOOSE).symbols == ("S0", "S1")
    df.reset_index(drop=True).to_parquet(tmp_path / "rows.parquet")
    with pytest.raises(DataError, match="its index is row numbers"):
        _quiet(from_parquet, tmp_path / "rows.parquet", cfg=LOOSE)


def test_a_ticker_column_and_a_misaligned_benchmark_name_the_fix() -> None:
    """A long file whose symbol column is called 'ticker' had been read as wide (its
    errors named non-numeric columns, then unsorted dates); a benchmark with an extra date
    or its dates reordered had said "missing: none"; a one-column benchmark frame had
    raised a bare ValueError."""
    df = _wide(30, 2)
    long = df.rename_axis("date").reset_index().melt("date", var_name="ticker", value_name="close")
    with pytest.raises(DataError, match=r"column 'ticker'.*called 'symbol'"):
        _quiet(from_prices, long.set_index("date"), cfg=LOOSE)
    bench = df.iloc[:, 0] * 2
    with pytest.raises(DataError, match=r"the same dates in another order"):
        _quiet(from_prices, df, cfg=LOOSE, benchmark=bench.iloc[::-1])
    extra = pd.concat([bench, pd.Series([1.0], index=[pd.Timestamp("2030-01-01")])])
    with pytest.raises(DataError, match=r"missing: none; not price dates: 2030-01-01"):
        _quiet(from_prices, df, cfg=LOOSE, benchmark=extra)
    one = _quiet(from_prices, df, cfg=LOOSE, benchmark=bench.to_frame())
    assert one.benchmark_returns[1] == pytest.approx(bench.iloc[1] / bench.iloc[0] - 1, rel=1e-15)


def test_long_rows_stamped_at_different_times_per_symbol_are_refused(tmp_path: Path) -> None:
    """AAA stamped at the date and BBB at 16:00 had been refused as NaN holes with the fix
    'forward-fill', which doubled the bars."""
    days = pd.bdate_range("2020-01-01", periods=30)
    lines = ["date,symbol,close"]
    for d in days:
        lines += [f"{d.date()},AAA,100", f"{d.date()} 16:00,BBB,50"]
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"different times of day \(AAA at 00:00:00, BBB at 16:00"):
        _quiet(from_csv, path, cfg=LOOSE)


def test_review_regressions_of_the_data_fixes(tmp_path: Path) -> None:
    """A benchmark column may stand in the volume frame; a symbol below 5e-7 with the
    default volume loads (a derived volume above 1e15 is no unit error); a long CSV's
    sector #N/A is refused, not read as no sector; a long Parquet indexed by (date,
    symbol), or by unnamed dates, loads."""
    from allocgym.data import from_parquet

    df = _wide(300, 2).assign(SPY=_wide(300, 1).iloc[:, 0].to_numpy())
    md = _quiet(from_prices, df, cfg=LOOSE, benchmark="SPY", volume=df * 0 + 1e6)
    assert md.symbols == ("S0", "S1")
    tiny = _wide(300, 2) * [1.0, 1e-8]
    assert _quiet(from_prices, tiny, cfg=LOOSE).volume[0, 1] > 1e15
    path = tmp_path / "long.csv"
    path.write_text(_long_rows(["AAA", "BBB"], sector=["Energy", "#N/A"]))
    with pytest.raises(DataError, match=r"symbol 'BBB' has sector '#N/A'"):
        _quiet(from_csv, path, cfg=LOOSE)
    long = _wide(30, 2).rename_axis("date").reset_index()
    long = long.melt("date", var_name="symbol", value_name="close")
    for name, frame in (
        ("multi", long.set_index(["date", "symbol"])),
        ("unnamed", long.set_index("date").rename_axis(None)),
    ):
        frame.to_parquet(tmp_path / f"{name}.parquet")
        assert _quiet(from_parquet, tmp_path / f"{name}.parquet", cfg=LOOSE).n_assets == 2


def test_symbols_that_differ_only_in_case_are_refused(tmp_path: Path) -> None:
    """A ticker written two ways: in a wide file the stock counted twice (1/N and every
    estimator), in a long file where a vendor changed its case mid-file it was delisted
    (closed at no cost) and listed again; only a generic delisting warning said so."""
    wide_path = tmp_path / "wide.csv"
    df = _wide(300, 3)
    df.insert(3, "s0", df["S0"])
    df.to_csv(wide_path)
    with pytest.raises(DataError, match=r"differ only in letter case: \[\['S0', 's0'\]\]"):
        _quiet(from_csv, wide_path, cfg=LOOSE)
    long_path = tmp_path / "long.csv"
    first, second = _long_rows(["AAA", "BBB"], n_days=40), _long_rows(["aaa", "BBB"], n_days=80)
    rows = first.splitlines() + [
        line for line in second.splitlines()[1:] if line[:10] > first.splitlines()[-1][:10]
    ]
    long_path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"\[\['AAA', 'aaa'\]\].*write each ticker one way"):
        _quiet(from_csv, long_path, cfg=LOOSE)
    kelvin = _wide(300, 2).rename(columns={"S0": "K", "S1": "\u212a"})  # KELVIN SIGN
    with pytest.raises(DataError, match=r"\[\['K', \"'\\\\u212a'\"\]\]"):
        _quiet(from_prices, kelvin, cfg=LOOSE)
