"""Streaming market state: bars one at a time, features and regime updated incrementally
and equal to the batch ``FeatureBuilder`` bit for bit, account-only decisions equal to the
stateless request on the same window, bar idempotency and refusals."""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from test_serving_support import ENABLED, exported_bundle, patient, sp500

from allocgym.regime import RegimeModel, RegimeStream
from allocgym.serving import DecisionService, FrozenAllocator, FrozenPolicy, replay_audit
from allocgym.serving.market import MarketState
from allocgym.serving.schemas import AccountRequest, Bar, Decision
from allocgym.serving.service import ex_ante_cvar

MARKET_FIELDS_COMPARED = (
    "template", "volatility", "betas", "adv_notional", "momentum", "intents",
    "intent_confidence", "regime", "regime_confidence", "barbell", "tradable", "valid",
)  # fmt: skip
"""The per-bar fields of ``MarketFeatures``; ``horizons`` (one per family) and
``n_market_asset_features`` are compared whole."""


def _ts(market: object, t: int) -> dt.datetime:
    day = str(np.datetime_as_string(market.dates[t], unit="D"))  # type: ignore[attr-defined]
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)


def _bar(market: object, t: int, **change: object) -> Bar:
    m = market
    fields = {
        "timestamp": _ts(m, t),
        "previous": None if t == 0 else _ts(m, t - 1),
        "symbols": list(m.symbols),  # type: ignore[attr-defined]
        "close": m.close[t],  # type: ignore[attr-defined]
        "volume": m.volume[t],  # type: ignore[attr-defined]
        "spread_bps": m.spread_bps[t],  # type: ignore[attr-defined]
        "tradable": m.tradable[t],  # type: ignore[attr-defined]
        "benchmark_return": float(m.benchmark_returns[t]),  # type: ignore[attr-defined]
    }
    return Bar.model_validate(fields | change)


@cache
def _policy() -> FrozenPolicy:
    return FrozenPolicy.load(exported_bundle())


class _Clock:
    """A server clock the test moves to each bar (requests at that bar are fresh)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def _allocator(clock: _Clock | None = None) -> FrozenAllocator:
    pol = _policy()
    return FrozenAllocator(pol, environ=ENABLED, serving=patient(pol), clock=clock)


def test_regime_stream_equals_the_batch_path_at_every_bar() -> None:
    market = sp500()
    model = RegimeModel()
    path = model.path(market)
    stream = RegimeStream(model)
    r, b = market.returns, market.benchmark_returns
    need = stream.returns_needed
    for t in range(market.n_days):
        lo = max(0, t + 1 - need)
        got = stream.update(r[lo : t + 1], b[lo : t + 1])
        for name in ("labels", "confidence", "barbell", "raw_labels", "vol_stress"):
            assert getattr(got, name)[0].tobytes() == getattr(path, name)[t].tobytes(), (t, name)
    assert len(set(path.labels[model.required_history :].tolist())) > 1  # not one label


def test_incremental_features_equal_the_batch_feature_builder_on_the_whole_sample() -> None:
    """Every bar of the S&P 500 sample streamed one at a time: the features at each bar
    (the observation template, the gates' inputs, intents and regime) have the bits of
    ``FeatureBuilder.precompute``; the window stays bounded."""
    market = sp500()
    alloc = _allocator()
    batch = alloc.feature_builder.precompute(market)
    state = MarketState(alloc)
    for t in range(market.n_days):
        assert state.apply(_bar(market, t)) == "applied"
        assert state.ready == (t + 1 >= alloc.history)
        if not state.ready:
            assert state.held is None
            continue
        assert state.held is not None
        held = state.held.features
        assert np.array_equal(held.horizons, batch.horizons)
        assert held.n_market_asset_features == batch.n_market_asset_features
        for name in MARKET_FIELDS_COMPARED:
            got, want = getattr(state.held.features, name)[0], getattr(batch, name)[t]
            assert got.tobytes() == want.tobytes(), (t, name)
    assert state.bars_held == state.window_bars < market.n_days
    window = state.window()
    assert np.array_equal(window["close"], market.close[-state.window_bars :])
    assert np.array_equal(window["tradable"], market.tradable[-state.window_bars :])


def test_streaming_decisions_equal_the_stateless_path_and_replay(tmp_path: Path) -> None:
    """Account requests on the streamed S&P 500 sample decide exactly as the stateless
    request over the same window (every field but latency and the clock reading), with a
    book that follows the decisions; the audit log replays byte for byte."""
    market = sp500()
    clock = _Clock()
    service = DecisionService(_allocator(clock), audit_log=tmp_path / "audit.jsonl")
    stateless = _allocator(clock)
    state = service.market
    shares = np.zeros(market.n_assets)
    compared = 0
    cvars: list[dict] = []
    for t in range(market.n_days):
        clock.now = _ts(market, t) + dt.timedelta(hours=1)  # a live feed: a bar is not ahead
        assert service.apply_bar(_bar(market, t)).status == "applied"
        if not state.ready or t % 97:
            continue
        account = AccountRequest(
            request_id=f"s-{t}",
            bar=_ts(market, t),
            equity=1.0e6,
            cash=1.0e6 - float(shares @ market.close[t]),
            buying_power=1.0e6,
            positions={s: float(q) for s, q in zip(market.symbols, shares, strict=True) if q},
        )
        streamed = Decision.model_validate_json(service.decide_account(account).body)
        full = state.request(account)
        assert full.close.shape[0] == state.window_bars
        direct = stateless.trace(full).decision
        cvars.append(ex_ante_cvar(stateless, full, np.asarray(direct.approved_weights)))
        assert streamed.model_dump(exclude={"latency"}) == direct.model_dump(exclude={"latency"})
        assert streamed.status == "ok"
        shares = np.asarray(streamed.target_qty, dtype=np.float64)
        compared += 1
        decided_window = state.window_sha256
    assert compared > 50
    assert service.audit is not None
    records = list(service.audit.records())
    assert [r["cvar"] for r in records] == cvars  # the held scenarios are the window's
    assert records[-1]["input"]["window_sha256"] == decided_window != state.window_sha256
    assert records[-1]["input"]["bar"] == _ts(market, t - t % 97).isoformat()
    report = replay_audit(tmp_path / "audit.jsonl", _allocator())
    assert report.ok and report.n_reproduced == report.n_records == compared, report.mismatches


def test_bars_are_idempotent_and_refused_out_of_order_gapped_or_conflicting() -> None:
    market = sp500()
    state = MarketState(_allocator())
    for t in range(5):
        state.apply(_bar(market, t))
    before = state.window_sha256

    def refused(bar: Bar, code: str) -> None:
        ack = state.ack(bar)
        assert (ack.status, ack.code) == ("refused", code), ack
        assert state.window_sha256 == before and state.bars_held == 5
        assert ack.message

    again = state.ack(_bar(market, 4))
    assert (again.status, again.code, again.bars_held) == ("replay", None, 5)
    assert state.ack(_bar(market, 2)).status == "replay"  # any held bar, not only the last
    # the same instant with another UTC offset, a -0.0 for a 0.0: the same bar
    tokyo = _ts(market, 4).astimezone(dt.timezone(dt.timedelta(hours=9)))
    assert state.ack(_bar(market, 4, timestamp=tokyo)).status == "replay"
    refused(_bar(market, 4, close=market.close[4] * 1.01), "bar_conflict")
    refused(_bar(market, 6), "bar_gap")  # bar 5 is missing
    refused(_bar(market, 5, previous=None), "bar_gap")
    early = _ts(market, 0) - dt.timedelta(days=3)
    refused(_bar(market, 0, timestamp=early, previous=None), "bar_out_of_order")
    refused(
        _bar(market, 5, close=np.where(np.arange(20) == 3, -1.0, market.close[5])), "bar_invalid"
    )
    refused(_bar(market, 5, spread_bps=market.spread_bps[5] + np.nan), "bar_invalid")
    refused(_bar(market, 5, benchmark_return=-1.0), "bar_invalid")
    for huge in (10.5, 1e200):  # 1e200 had been applied and overflowed the estimators
        refused(_bar(market, 5, benchmark_return=huge), "bar_invalid")
        assert (
            "range (-1, 10] fraction" in state.ack(_bar(market, 5, benchmark_return=huge)).message
        )
    refused(_bar(market, 5, symbols=["ZZZZ", *market.symbols[1:]]), "bar_invalid")
    # a review's repros: a bad value named by its symbol (a feed has no use for its
    # position), a name without a price told what to send, a repeated symbol named, and
    # an RFC 3339 instant no datetime holds refused, not a 500
    sym = market.symbols[3]
    ack = state.ack(_bar(market, 5, close=np.where(np.arange(20) == 3, -1.0, market.close[5])))
    assert f"(symbol {sym!r})" in ack.message and "stand-in" not in ack.message
    ack = state.ack(_bar(market, 5, close=np.where(np.arange(20) == 3, np.nan, market.close[5])))
    assert f"(symbol {sym!r})" in ack.message and "stand-in close" in ack.message
    twice = [*market.symbols[:-1], market.symbols[0]]
    assert f"repeated [{market.symbols[0]!r}]" in state.ack(_bar(market, 5, symbols=twice)).message
    for odd in ("9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"):
        stamp = dt.datetime.fromisoformat(odd)
        refused(_bar(market, 5, timestamp=stamp), "bar_invalid")
        assert (
            "outside the representable range" in state.ack(_bar(market, 5, timestamp=stamp)).message
        )
    # a bar from the future would refuse every real bar after it until a restart
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    refused(_bar(market, 5, timestamp=future), "bar_invalid")
    assert "ahead of the server clock" in state.ack(_bar(market, 5, timestamp=future)).message
    assert state.ack(_bar(market, 5, benchmark_return=0.0)).status == "applied"
    assert state.ack(_bar(market, 5, benchmark_return=-0.0)).status == "replay"
    assert state.bars_held == 6 and state.latest == _ts(market, 5)
    # the symbols may come in any order: the state keeps the bundle's
    order = np.arange(20)[::-1]
    shuffled = _bar(
        market, 6, symbols=[market.symbols[i] for i in order], close=market.close[6][order],
        volume=market.volume[6][order], spread_bps=market.spread_bps[6][order],
        tradable=market.tradable[6][order],
    )  # fmt: skip
    assert state.ack(shuffled).status == "applied"
    assert np.array_equal(state.window()["close"][-1], market.close[6])


def test_an_account_request_must_name_the_latest_bar_held() -> None:
    market = sp500()
    clock = _Clock()
    service = DecisionService(_allocator(clock))
    h = service.allocator.history
    account = {"equity": 1.0e6, "cash": 1.0e6, "buying_power": 1.0e6}

    messages: dict[str, str] = {}

    def reject(rid: str, bar: dt.datetime) -> tuple[str, str]:
        d = Decision.model_validate_json(
            service.decide_account(AccountRequest(request_id=rid, bar=bar, **account)).body
        )
        assert d.status == "rejected" and d.reject is not None
        messages[rid] = d.reject.message
        return d.reject.code, d.reject.detail

    assert reject("none", _ts(market, 0)) == ("INVALID_INPUT", "bar_not_held")
    for t in range(h + 1):
        clock.now = _ts(market, t) + dt.timedelta(hours=1)
        service.apply_bar(_bar(market, t))
        if t == h - 2:
            assert reject("short", _ts(market, h - 2)) == ("INVALID_INPUT", "history_length")
            # what the service accepts: the next bars, or history replayed from a restart
            # (bars before the first held are refused out of order; a review's repro)
            assert "POST the next 1 to /v1/bars" in messages["short"]
            assert (
                f"restart the service and POST the last {h} bars oldest first"
                in (messages["short"])
            )
    assert reject("old", _ts(market, h - 1)) == ("STALE_INPUT", "bar_not_latest")
    assert reject("future", _ts(market, h + 1)) == ("INVALID_INPUT", "bar_not_held")
    ok = service.decide_account(AccountRequest(request_id="ok", bar=_ts(market, h), **account))
    assert ok.status == "ok"


def test_an_account_request_at_20_symbols_is_under_4_kb() -> None:
    """The whole account: every symbol held (full float precision), a regime override,
    intents of every strategy family, the flags and ids at their longest."""
    market = sp500()
    rng = np.random.default_rng(0)
    body = {
        "request_id": "r" * 128,
        "account_id": "a" * 128,
        "bar": "2024-05-01T20:00:00+00:00",
        "equity": 1234567.8912345678,
        "cash": -23456.789012345678,
        "buying_power": 987654.32109876543,
        "peak_equity": 1300000.1234567891,
        "positions": {s: float(rng.normal() * 1e4) for s in market.symbols},
        "regime": {"label": "high_volatility", "confidence": 0.8765432109876543},
        "strategy_intents": {
            fam: np.round(rng.uniform(-1, 1, 20), 4).tolist()
            for fam in ("trend", "mean_reversion", "defensive")
        },
        "kill_switch": False,
        "reduce_only": True,
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    AccountRequest.model_validate_json(raw)
    assert len(raw) <= 4096, len(raw)


def test_window_bars_below_what_a_decision_reads_is_refused() -> None:
    alloc = _allocator()
    with pytest.raises(ValueError, match="window_bars = 10 is below"):
        MarketState(alloc, window_bars=10)
    assert MarketState(alloc, window_bars=400).window_bars == 400


def test_the_audit_cvar_is_the_env_step_cvar_bit_for_bit() -> None:
    """One kernel computes a book's ex-ante CVaR for the env and for the audit: the env
    (``cvar_mode = ex_ante``) deciding at bar t reports in ``info["cvar"]`` the bits that
    ``ex_ante_cvar`` gives for the stateless request at t and the env's approved book.
    (numpy's product and ``measures.cvar`` differ from it in the last bits on about 4 books
    in 10, so twelve bars catch a second implementation.)"""
    from allocgym.config import config_from_dict
    from allocgym.envs import EnvParams, core
    from allocgym.serving import request_from_market

    market = sp500()
    alloc = _allocator()
    tree = alloc.cfg.model_dump(mode="json")
    tree["env"]["cvar_mode"] = "ex_ante"
    params = EnvParams.from_config(market, config_from_dict(tree), split="all")
    rng = np.random.default_rng(5)
    checked = 0
    for t in np.linspace(params.lo, market.n_days - 2, 12).astype(int).tolist():
        state, _ = core.reset(params, core.seed_keys([0]), start=np.array([t]))
        book = rng.dirichlet(np.ones(market.n_assets))[None, :] * 0.9
        info = core.step_proposed(params, state, book).info
        approved = np.asarray(info["approved"][0], dtype=np.float64)
        request = request_from_market(
            market, t, history=alloc.history, request_id=f"cvar-{t}", timestamp=_ts(market, t)
        )
        got = ex_ante_cvar(alloc, request, approved)["value"]
        assert np.isfinite(got) and got > 0.0
        assert np.float64(got).tobytes() == np.float64(info["cvar"][0]).tobytes(), t
        checked += 1
    assert checked == 12


@pytest.mark.parametrize("history", [None, 40])
def test_ex_ante_cvar_is_the_last_window_of_the_full_history_returns(
    history: int | None,
) -> None:
    """The audit record's CVaR: the book applied to the last ``cvar_window`` close-to-close
    returns of the whole history (a return where either end is not tradable is 0), with
    the request's columns put in the bundle's symbol order; a history shorter than the
    window uses all of it (row 0 is a 0 return)."""
    from allocgym.measures import cvar
    from allocgym.serving import request_from_market

    market = sp500()
    alloc = _allocator()
    t = market.n_days - 5
    req = request_from_market(
        market, t, history=history or alloc.history, request_id="cvar", timestamp=_ts(market, t)
    )
    perm = np.arange(market.n_assets)[::-1]
    permuted = req.model_copy(
        update={
            "symbols": [req.symbols[i] for i in perm],
            "close": req.close[:, perm],
            "tradable": req.tradable[:, perm],
        }
    )
    tradable = req.tradable.copy()
    tradable[-3, 0] = False  # one symbol halted two bars before the decision
    halted = req.model_copy(update={"tradable": tradable})
    weights = np.linspace(0.01, 0.05, market.n_assets)
    w = alloc.cfg.env.cvar_window
    for request, mask in ((req, req.tradable), (permuted, req.tradable), (halted, tradable)):
        c = req.close
        r = np.zeros_like(c)
        r[1:] = np.where(mask[1:] & mask[:-1], c[1:] / c[:-1] - 1.0, 0.0)
        window = r[-w:]
        got = ex_ante_cvar(alloc, request, weights)
        assert got["window"] == min(w, c.shape[0]) == window.shape[0]
        # to 1e-12, not bit for bit: the kernel sums each scenario over the assets in
        # order, numpy's product in its own order
        want = float(cvar(window @ weights, alloc.cfg.env.cvar_alpha))
        assert got["value"] == pytest.approx(want, rel=1e-12, abs=0.0)
        assert got["alpha"] == alloc.cfg.env.cvar_alpha
