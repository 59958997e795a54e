"""``allocgym bench serve``: production decision latency, in-process and over HTTP.

For each universe size N a synthetic market and an untrained default-config PPO policy
(the asset-set network unless the config says otherwise) are exported to a bundle
(parity-checked on 512 observations; ``allocgym export`` itself uses 10 240). Then, in
the same run:

- ``FrozenAllocator.decide`` p50/p99 on one request (a book at the allocator's own
  previous target, so the gates and bands see a realistic state), with the median time of
  each stage (validation, features, model, gates, execution);
- the bare ONNX call (``FrozenPolicy``) on the same observation: the reference, and the
  ratio decide / ONNX;
- ``DecisionService.decide`` (decide + Prometheus metrics + hash-chained audit append of
  the request and decision), a new request id each call;
- the streaming path: one bar applied to the ``MarketState`` (incremental features and
  regime) and an account decision on it (``FrozenAllocator.trace`` with the held
  window's features), p50/p99;
- an HTTP load test: ``allocgym serve`` in a subprocess on 127.0.0.1 (free port,
  ``TRADING_ALLOCATOR_ENABLED=true``, audit log in a temporary folder) and ``concurrency``
  client threads (httpx, keep-alive) in this process posting distinct requests until
  ``http_requests`` are done or ``http_seconds`` have passed; req/s, p50/p99 and non-200
  answers. With ``encoding = "account"`` (the default) the server is first fed the
  window's bars through ``POST /v1/bars`` and each request is an account request on the
  latest bar; ``b64`` and ``json`` send the stateless request with the whole history;
- a burst: ``burst`` connections opened at once, one request each (asyncio, one
  connection per request); how many were served (200) and shed (503).

The machine is shared and noisy: quote medians and ratios.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from allocgym.bench import latencies

__all__ = ["build_bundle", "http_load", "run"]


def build_bundle(n_assets: int, out_dir: Path, *, seed: int = 0) -> Path:
    """Export an untrained default-config PPO policy on a synthetic market of ``n_assets``."""
    from allocgym.agents.export import export_model
    from allocgym.agents.train import build_model
    from allocgym.config import config_from_dict
    from allocgym.data import synthetic
    from allocgym.envs import PortfolioVecEnv, build_params

    cfg = config_from_dict(
        {
            "data": {
                "source": "synthetic",
                "synthetic": {"n_assets": n_assets, "n_days": 400, "seed": seed},
            },
            "env": {"split": "all"},
            "train": {"n_envs": 2, "device": "cpu"},
        }
    )
    market = synthetic(n_assets=n_assets, n_days=400, seed=seed)
    params = build_params(market, cfg, "all")
    model = build_model(cfg, PortfolioVecEnv(params=params, n_envs=2, seed=seed), params)
    export_model(model, None, cfg, out_dir, market=market, n_recorded=256, n_random=256, seed=seed)
    return out_dir


def _requests(alloc: Any, market: Any) -> Any:
    """A request at the last bar whose book is the allocator's own previous target."""
    from allocgym.serving import request_from_market

    t = market.n_days - 1
    now = dt.datetime.now(dt.UTC)
    first = request_from_market(market, t, history=alloc.history, request_id="warm", timestamp=now)
    d = alloc.decide(first)
    shares = np.asarray(d.target_qty)
    p = market.close[t]
    equity = 1.0e6
    return request_from_market(
        market, t, history=alloc.history, request_id="bench-0", shares=shares,
        cash=equity - float(shares @ p), timestamp=now,
    )  # fmt: skip


def _bar_times(n_bars: int) -> list[dt.datetime]:
    """Timestamps one second apart ending now: every bar is fresh for the staleness check."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return [now - dt.timedelta(seconds=n_bars - 1 - i) for i in range(n_bars)]


def _bars(market: Any, n_bars: int) -> list[dict[str, Any]]:
    """The last ``n_bars`` bars of ``market`` as ``Bar`` fields, timestamped now."""
    times = _bar_times(n_bars)
    first = market.n_days - n_bars
    out = []
    for i, ts in enumerate(times):
        t = first + i
        out.append(
            {
                "timestamp": ts.isoformat().replace("+00:00", "Z"),
                "previous": None if i == 0 else times[i - 1].isoformat().replace("+00:00", "Z"),
                "symbols": list(market.symbols),
                "close": market.close[t].tolist(),
                "volume": market.volume[t].tolist(),
                "spread_bps": market.spread_bps[t].tolist(),
                "tradable": market.tradable[t].tolist(),
                "benchmark_return": float(market.benchmark_returns[t]),
            }
        )
    return out


def _account(alloc: Any, market: Any, bar: str) -> dict[str, Any]:
    """An account on ``bar`` holding the allocator's own previous target (as ``_requests``)."""
    req = _requests(alloc, market)
    return {
        "request_id": "__RID__",
        "bar": bar,
        "equity": req.equity,
        "cash": req.cash,
        "buying_power": req.buying_power,
        "positions": dict(req.positions),
    }


def streaming(bundle: Path, market: Any, calls: int) -> dict[str, Any]:
    """Bar update and account-decision latencies (µs) on the streaming market state."""
    from allocgym.serving import FrozenAllocator
    from allocgym.serving.market import MarketState
    from allocgym.serving.schemas import AccountRequest, Bar

    alloc = FrozenAllocator.load(bundle, environ={"TRADING_ALLOCATOR_ENABLED": "true"})
    state = MarketState(alloc)
    bars = [Bar.model_validate(b) for b in _bars(market, market.n_days)]
    split = max(state.window_bars, market.n_days - 50)
    for b in bars[:split]:
        state.apply(b)
    feed = iter(bars[split:])
    bar_lat = latencies(lambda: state.apply(next(feed)), n=len(bars) - split - 5, warmup=5) * 1e6
    account = AccountRequest.model_validate(_account(alloc, market, bars[-1].timestamp.isoformat()))
    req = state.request(account)
    bar, held = account.bar, state.held
    tr = alloc.trace(req, bar=bar, held=held)
    assert tr.decision.status == "ok", tr.decision
    dec = latencies(lambda: alloc.trace(req, bar=bar, held=held), n=calls, warmup=50) * 1e6
    return {
        "bench": "streaming",
        "n_assets": market.n_assets,
        "bar_update_p50_us": _pct(bar_lat, 50),
        "bar_update_p99_us": _pct(bar_lat, 99),
        "decide_p50_us": _pct(dec, 50),
        "decide_p99_us": _pct(dec, 99),
        "window_bars": state.window_bars,
    }


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q))


def in_process(bundle: Path, market: Any, calls: int) -> dict[str, Any]:
    """decide / ONNX / service latencies (µs) on one bundle."""
    from allocgym.serving import DecisionService, FrozenAllocator

    alloc = FrozenAllocator.load(bundle, environ={"TRADING_ALLOCATOR_ENABLED": "true"})
    req = _requests(alloc, market)
    tr = alloc.trace(req)
    assert tr.decision.status == "ok", tr.decision.status
    obs = tr.observation
    stages: dict[str, list[float]] = {
        k: [] for k in ("validate", "features", "model", "gates", "execution")
    }

    def one() -> None:
        lat = alloc.decide(req).latency
        for k in stages:
            stages[k].append(getattr(lat, f"{k}_us"))

    dec = latencies(one, n=calls, warmup=50) * 1e6
    onnx = latencies(lambda: alloc.policy(obs), n=calls, warmup=50) * 1e6
    with tempfile.TemporaryDirectory() as tmp:
        svc = DecisionService(alloc, audit_log=Path(tmp) / "audit.jsonl", cache_size=16)
        counter = itertools.count()
        reqs = [req.model_copy(update={"request_id": f"svc-{i}"}) for i in range(calls + 50)]
        svc_lat = latencies(lambda: svc.decide(reqs[next(counter)]), n=calls, warmup=50) * 1e6
        assert svc.audit is not None
        svc.audit.close()  # anchors the head while the folder exists
    return {
        "bench": "in_process",
        "n_assets": market.n_assets,
        "decide_p50_us": _pct(dec, 50),
        "decide_p99_us": _pct(dec, 99),
        "onnx_p50_us": _pct(onnx, 50),
        "onnx_p99_us": _pct(onnx, 99),
        "decide/onnx_p50": _pct(dec, 50) / _pct(onnx, 50),
        **{f"{k}_p50_us": float(np.median(v)) for k, v in stages.items()},
        "service_p50_us": _pct(svc_lat, 50),
        "service_p99_us": _pct(svc_lat, 99),
    }


@contextlib.contextmanager
def _server(bundle: Path, audit: Path) -> Iterator[str]:
    import httpx

    from allocgym.serving.http import free_port

    port = free_port()
    cmd = [
        sys.executable, "-c", "from allocgym.cli import main; main()", "serve",
        "--policy", str(bundle), "--host", "127.0.0.1", "--port", str(port),
        "--audit-log", str(audit),
    ]  # fmt: skip
    env = {**os.environ, "TRADING_ALLOCATOR_ENABLED": "true"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120.0
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"allocgym serve exited with {proc.returncode}: {err[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("allocgym serve did not come up within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _seed(url: str, market: Any, n_bars: int) -> str:
    """Post the last ``n_bars`` bars to ``url``; the latest bar's timestamp."""
    import httpx

    bars = _bars(market, n_bars)
    with httpx.Client(base_url=url, timeout=30.0) as c:
        for b in bars:
            ack = c.post("/v1/bars", json=b).json()
            if ack["status"] != "applied":
                raise RuntimeError(f"bar {b['timestamp']} not applied: {ack}")
    if not ack["ready"]:
        raise RuntimeError(f"the server is not ready after {n_bars} bars: {ack}")
    return str(bars[-1]["timestamp"])


def burst(url: str, template: bytes, connections: int) -> dict[str, Any]:
    """``connections`` requests sent at once, each on its own connection."""
    import asyncio

    import httpx

    async def go() -> list[str]:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as c:

            async def one(i: int) -> str:
                body = template.replace(b"__RID__", f"b{i:09d}".encode())
                try:
                    r = await c.post(
                        "/v1/decide", content=body, headers={"content-type": "application/json"}
                    )
                    return str(r.status_code)
                except httpx.HTTPError as err:
                    return type(err).__name__

            return await asyncio.gather(*(one(i) for i in range(connections)))

    start = time.perf_counter()
    answers = asyncio.run(go())
    wall = time.perf_counter() - start
    codes = {k: answers.count(k) for k in sorted(set(answers))}
    return {
        "connections": connections,
        "served": codes.get("200", 0),
        "shed_503": codes.get("503", 0),
        "other": connections - codes.get("200", 0) - codes.get("503", 0),
        "wall_s": wall,
        "served_per_s": codes.get("200", 0) / wall if wall > 0 else 0.0,
        "codes": ",".join(f"{k}:{v}" for k, v in codes.items()),
    }


def _body_template(req: Any, encoding: str) -> bytes:
    if encoding == "b64":
        data = req.to_audit()
    elif encoding == "json":
        data = json.loads(req.model_dump_json())
    else:
        raise ValueError(f"encoding {encoding!r}: use 'account', 'b64' or 'json'")
    data["request_id"] = "__RID__"
    return json.dumps(data, separators=(",", ":")).encode()


def http_load(
    url: str, template: bytes, *, requests: int, seconds: float, concurrency: int, warmup: int = 50
) -> dict[str, Any]:
    """Post distinct requests from ``concurrency`` threads; latency, throughput, errors."""
    import httpx

    total = requests + warmup
    bodies = [template.replace(b"__RID__", f"h{i:09d}".encode()) for i in range(total)]
    with httpx.Client(base_url=url, timeout=30.0) as c:
        for b in bodies[:warmup]:
            c.post("/v1/decide", content=b, headers={"content-type": "application/json"})
    counter = itertools.count(warmup)
    lat: list[float] = []
    codes: dict[str, int] = {}
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker() -> None:
        mine: list[float] = []
        mine_codes: dict[str, int] = {}
        with httpx.Client(base_url=url, timeout=30.0) as c:
            while time.perf_counter() < stop:
                i = next(counter)
                if i >= total:
                    break
                t0 = time.perf_counter()
                try:
                    r = c.post(
                        "/v1/decide",
                        content=bodies[i],
                        headers={"content-type": "application/json"},
                    )
                    key = str(r.status_code)
                except httpx.HTTPError as err:
                    key = type(err).__name__
                mine.append(time.perf_counter() - t0)
                mine_codes[key] = mine_codes.get(key, 0) + 1
        with lock:
            lat.extend(mine)
            for k, v in mine_codes.items():
                codes[k] = codes.get(k, 0) + v

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - start
    arr = np.array(lat) * 1e3
    n = int(arr.size)
    errors = n - codes.get("200", 0)
    return {
        "requests": n,
        "wall_s": wall,
        "req_per_s": n / wall if wall > 0 else 0.0,
        "p50_ms": _pct(arr, 50) if n else float("nan"),
        "p99_ms": _pct(arr, 99) if n else float("nan"),
        "errors": errors,
        "codes": ",".join(f"{k}:{v}" for k, v in sorted(codes.items())),
        "body_kb": len(bodies[0]) / 1024,
    }


def run(
    n_assets: tuple[int, ...] = (20, 500),
    *,
    calls: int = 2000,
    http_assets: tuple[int, ...] = (20,),
    http_requests: int = 4000,
    http_seconds: float = 20.0,
    concurrency: int = 8,
    encoding: str = "account",
    burst_connections: int = 1000,
) -> list[dict[str, Any]]:
    """Benchmark rows: ``bench`` = ``in_process`` and ``streaming`` (one per size),
    ``http`` and ``burst`` (``burst_connections`` 0: no burst)."""
    from allocgym.data import synthetic
    from allocgym.serving import FrozenAllocator

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in sorted(set(n_assets) | set(http_assets)):
            bundle = build_bundle(n, Path(tmp) / f"bundle-{n}")
            market = synthetic(n_assets=n, n_days=400, seed=0)
            if n in n_assets:
                rows.append(in_process(bundle, market, calls))
                rows.append(streaming(bundle, market, calls))
            if n in http_assets:
                alloc = FrozenAllocator.load(bundle, environ={"TRADING_ALLOCATOR_ENABLED": "true"})
                with _server(bundle, Path(tmp) / f"audit-{n}.jsonl") as url:
                    if encoding == "account":
                        from allocgym.serving.market import MarketState

                        latest = _seed(url, market, MarketState(alloc).window_bars)
                        account = _account(alloc, market, latest)
                        template = json.dumps(account, separators=(",", ":")).encode()
                    else:
                        template = _body_template(_requests(alloc, market), encoding)
                    res = http_load(
                        url, template, requests=http_requests, seconds=http_seconds,
                        concurrency=concurrency,
                    )  # fmt: skip
                    rows.append(
                        {
                            "bench": "http",
                            "n_assets": n,
                            "encoding": encoding,
                            "clients": concurrency,
                            **res,
                        }
                    )
                    if burst_connections:
                        rows.append(
                            {
                                "bench": "burst",
                                "n_assets": n,
                                "encoding": encoding,
                                **burst(url, template, burst_connections),
                            }
                        )
    return rows
