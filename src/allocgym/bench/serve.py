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
  window's features), p50/p99, alone and through ``DecisionService.decide_account``
  (the request built from the held state, metrics, P&L attribution, audit append);
- an HTTP load test: ``allocgym serve`` (deciding in its decision process, the default)
  in a subprocess on 127.0.0.1 (free port,
  ``TRADING_ALLOCATOR_ENABLED=true``, audit log in a temporary folder) and ``concurrency``
  keep-alive client connections in this process posting distinct requests until
  ``http_requests`` are answered or ``http_seconds`` have passed; req/s, served/s (200
  answers: the capacity), p50/p99 and non-200 answers. With ``encoding = "account"`` (the
  default) the server is first fed the window's bars through ``POST /v1/bars`` and each
  request is an account request on the latest bar; ``b64`` and ``json`` send the
  stateless request with the whole history;
- a decision process against a worker thread (``worker``): the first server against one
  started with ``serve --decision-worker thread``, holding the same state, loaded by the
  same ``concurrency`` connections in alternating windows (as ``workers``, ``http_seconds``
  of each kind in all); served/s of each and the process over the thread (with its lowest
  and highest round), p99, 503s and each server's CPU time per answered request (its
  decision process included);
- one server process against several (``workers``): as many ``allocgym serve`` processes,
  each on its own port with its own audit log (a log has one writer) and fed the same
  bars, so one account request is valid on all; the same ``concurrency`` connections
  load the first server alone, then all of them (connection i to server i mod K), in
  alternating windows (three of each kind, ``http_seconds`` of each kind in all, each
  after requests one at a time to settle the admission estimate); served/s of K servers
  over one's (with its lowest and highest round), each server's share, p99 and 503s.
  The other HTTP rows load the first server alone;
- one server pinned to a CPU (``allocgym serve --cpus``, the first CPU this process may
  use) against the unpinned one, both deciding on a thread (``pin``; a decision process
  inherits its HTTP process's CPUs, so one CPU would take its second core away): the
  same ``concurrency`` connections load each alone in alternating windows (as
  ``workers``, ``http_seconds`` of each kind in all);
  served/s of each and the pinned over the unpinned (with its lowest and highest round),
  p99, 503s and each server's CPU time per answered request (read from ``/proc``);
- sustained overload, interleaved with the capacity it is judged against: five times 30
  requests one at a time (the server's estimate of its decision time settles), a capacity
  window (``concurrency`` connections, as the load test), then an overload window
  (``overload_clients`` connections, each resending a shed request as soon as its 503
  arrives, not waiting ``Retry-After``: the worst case for the server), ``overload_seconds``
  of each kind of window in all; served/s and shed/s, served/s over the capacity (goal >= 0.8, with its
  lowest and highest round), p50/p99 of the served requests and the 503s without
  ``Retry-After``;
- a burst: ``burst`` connections opened at once, one request each; how many were served
  (200) and shed (503).

All load runs on one asyncio event loop in this process over bare HTTP/1.1 streams parsed
by httptools (about 60 µs of client CPU per request; httpx threads took about 700 µs), so
the clients take little of the CPU the server needs; each row reports the load
generator's CPU time and its share of the wall time (near 1: the generator is the
bottleneck, not the server). Request ids never repeat, so no answer comes from the
server's idempotency cache.

The machine is shared and noisy: quote medians and ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools
import numpy as np

from allocgym.bench import latencies
from allocgym.errors import ConfigError

__all__ = ["build_bundle", "burst", "http_load", "overload", "run", "scale_out"]


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
    """Bar update and account-decision latencies (µs) on the streaming market state, the
    decision alone (``FrozenAllocator.trace``) and served (``DecisionService``)."""
    from allocgym.serving import DecisionService, FrozenAllocator
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
    # What a served account decision costs in process: the same decision through
    # DecisionService (held-state request, metrics, P&L attribution, audit append)
    with tempfile.TemporaryDirectory() as tmp:
        svc = DecisionService(alloc, audit_log=Path(tmp) / "audit.jsonl", cache_size=16)
        for b in bars[-state.window_bars :]:
            svc.apply_bar(b)
        first = svc.decide_account(account.model_copy(update={"request_id": "svc-check"}))
        assert first.status == "ok", first.status
        accounts = [
            account.model_copy(update={"request_id": f"svc-{i}"}) for i in range(calls + 50)
        ]
        counter = itertools.count()
        svc_lat = (
            latencies(lambda: svc.decide_account(accounts[next(counter)]), n=calls, warmup=50) * 1e6
        )
        assert svc.audit is not None
        svc.audit.close()  # anchors the head while the folder exists
    return {
        "bench": "streaming",
        "n_assets": market.n_assets,
        "bar_update_p50_us": _pct(bar_lat, 50),
        "bar_update_p99_us": _pct(bar_lat, 99),
        "decide_p50_us": _pct(dec, 50),
        "decide_p99_us": _pct(dec, 99),
        "service_p50_us": _pct(svc_lat, 50),
        "service_p99_us": _pct(svc_lat, 99),
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


@dataclass(frozen=True)
class _Served:
    """An ``allocgym serve`` process the bench started: its url and pid."""

    url: str
    pid: int

    def cpu_s(self) -> float:
        """CPU time so far, user and system, of the process and of its live children (the
        decision process) (NaN without Linux's /proc)."""
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
            return sum(_cpu_s(pid) for pid in (self.pid, *map(int, children)))
        except OSError:
            return math.nan


def _cpu_s(pid: int) -> float:
    """A process's CPU time so far, user and system (OSError without its /proc entry)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _server(
    bundle: Path, audit: Path, cpu: int | None = None, worker: str = "process"
) -> Iterator[_Served]:
    """``allocgym serve --decision-worker worker`` on a free loopback port (``serve --cpus
    cpu`` when given)."""
    import httpx

    from allocgym.serving.http import free_port

    port = free_port()
    cmd = [
        sys.executable, "-c", "from allocgym.cli import main; main()", "serve",
        "--policy", str(bundle), "--host", "127.0.0.1", "--port", str(port),
        "--audit-log", str(audit), "--decision-worker", worker,
        *(() if cpu is None else ("--cpus", str(cpu))),
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
        yield _Served(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _seed(urls: Sequence[str], bars: list[dict[str, Any]]) -> str:
    """Post ``bars`` to every server in ``urls``; the latest bar's timestamp.

    The same list goes to each (``_bars`` stamps its bars with the time of the call), so
    every server holds the same window and one account request is valid on all of them.
    """
    import httpx

    for url in urls:
        with httpx.Client(base_url=url, timeout=30.0) as c:
            for b in bars:
                ack = c.post("/v1/bars", json=b).json()
                if ack["status"] != "applied":
                    raise RuntimeError(f"bar {b['timestamp']} not applied on {url}: {ack}")
        if not ack["ready"]:
            raise RuntimeError(f"{url} is not ready after {len(bars)} bars: {ack}")
    return str(bars[-1]["timestamp"])


def _body_template(req: Any, encoding: str) -> bytes:
    if encoding == "b64":
        data = req.to_audit()
    elif encoding == "json":
        data = json.loads(req.model_dump_json())
    else:
        raise ValueError(f"encoding {encoding!r}: use 'account', 'b64' or 'json'")
    data["request_id"] = "__RID__"
    return json.dumps(data, separators=(",", ":")).encode()


# Client side of a request: no load test waits longer for one answer.
_TIMEOUT_S = 30.0


class _Answer:
    """httptools callbacks for one response: whether it sent ``Retry-After`` or
    ``Connection: close``, and its end."""

    __slots__ = ("closes", "complete", "retry_after")

    def __init__(self) -> None:
        self.closes = False
        self.complete = False
        self.retry_after = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"retry-after":
            self.retry_after = True
        elif name == b"connection":
            self.closes = value.lower() == b"close"

    def on_message_complete(self) -> None:
        self.complete = True


class _Connection:
    """One keep-alive HTTP/1.1 connection posting to ``/v1/decide``, opened on first use.

    A bare asyncio stream whose answers httptools parses: about 60 µs of client CPU per
    request where httpx threads took about 700 µs, so that 64 clients in one process load
    the server rather than themselves.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.head = (
            f"POST /v1/decide HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[str, bool]:
        """``(status code or transport error name, whether Retry-After was sent)``."""
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                if self.reader is None or self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                self.writer.write(self.head + b"%d\r\n\r\n" % len(body) + body)
                while not answer.complete:
                    data = await self.reader.read(65536)
                    if not data:
                        raise ConnectionResetError("the server closed the connection")
                    parser.feed_data(data)
        except (OSError, httptools.HttpParserError) as err:  # TimeoutError is an OSError
            self.close()
            return type(err).__name__, False
        if answer.closes:  # HTTP/1.1 keeps the connection open unless the server says not
            self.close()
        return str(parser.get_status_code()), answer.retry_after

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# Request ids differ between calls (the pid and a call count in each): a repeated id would
# be answered from the server's idempotency cache instead of being decided.
_CALLS = itertools.count()


def _bodies(template: bytes, kind: str) -> Iterator[bytes]:
    """``template`` with a new request id each time."""
    prefix = f"{kind}{os.getpid()}.{next(_CALLS)}-"
    for i in itertools.count():
        yield template.replace(b"__RID__", f"{prefix}{i:09d}".encode())


@dataclass
class _Tally:
    """What the clients of one or more load windows got back.

    ``served_by`` counts the 200 answers of each server (by url). ``cpu_s`` is the CPU
    time of the thread running the clients: the load generator's whole cost (an
    in-process server runs on other threads).
    """

    codes: Counter[str] = field(default_factory=Counter)
    served_by: Counter[str] = field(default_factory=Counter)
    latency_s: list[float] = field(default_factory=list)
    served_s: list[float] = field(default_factory=list)
    no_retry_after: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def add(self, url: str, code: str, latency: float, retry_after: bool) -> None:
        self.codes[code] += 1
        self.latency_s.append(latency)
        if code == "200":
            self.served_by[url] += 1
            self.served_s.append(latency)
        elif code == "503" and not retry_after:
            self.no_retry_after += 1

    def merge(self, other: _Tally) -> None:
        self.codes.update(other.codes)
        self.served_by.update(other.served_by)
        self.latency_s += other.latency_s
        self.served_s += other.served_s
        self.no_retry_after += other.no_retry_after
        self.wall_s += other.wall_s
        self.cpu_s += other.cpu_s

    def per_s(self, code: str) -> float:
        return self.codes[code] / self.wall_s if self.wall_s > 0 else 0.0

    def loadgen(self) -> dict[str, float]:
        share = self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0
        return {"loadgen_cpu_s": self.cpu_s, "loadgen_cpu/wall": share}


def _codes(codes: Counter[str]) -> str:
    return ",".join(f"{k}:{v}" for k, v in sorted(codes.items()))


def _ms(latency_s: list[float], q: float) -> float:
    return _pct(np.array(latency_s) * 1e3, q) if latency_s else float("nan")


def _window(
    urls: str | Sequence[str],
    bodies: Iterator[bytes],
    *,
    clients: int,
    seconds: float,
    requests: int | None = None,
    resend: bool = False,
) -> _Tally:
    """``clients`` keep-alive connections on one event loop in this thread, each posting
    one request after the other until ``seconds`` have passed or ``requests`` were sent in
    all; with ``resend`` a shed request (503) is sent again at once, under the same id.
    Given several ``urls``, client ``i`` posts to ``urls[i % len(urls)]``."""
    servers = [urls] if isinstance(urls, str) else list(urls)
    tally = _Tally()
    budget = itertools.count()
    limit = sys.maxsize if requests is None else requests

    async def client(url: str, stop: float) -> None:
        conn = _Connection(url)
        body = None
        while time.perf_counter() < stop:
            if body is None:
                if next(budget) >= limit:
                    break
                body = next(bodies)
            t0 = time.perf_counter()
            code, retry_after = await conn.post(body)
            tally.add(url, code, time.perf_counter() - t0, retry_after)
            if not (resend and code == "503"):
                body = None
        conn.close()

    async def together() -> None:
        stop = time.perf_counter() + seconds
        await asyncio.gather(*(client(servers[i % len(servers)], stop) for i in range(clients)))

    cpu, start = time.thread_time(), time.perf_counter()
    asyncio.run(together())
    tally.wall_s, tally.cpu_s = time.perf_counter() - start, time.thread_time() - cpu
    return tally


def http_load(
    url: str, template: bytes, *, requests: int, seconds: float, concurrency: int, warmup: int = 50
) -> dict[str, Any]:
    """Post distinct requests from ``concurrency`` keep-alive connections until ``requests``
    are answered or ``seconds`` have passed (after ``warmup`` one at a time); latency of
    every answer, throughput, errors."""
    bodies = _bodies(template, "h")
    _window(url, bodies, clients=1, seconds=math.inf, requests=warmup)
    tally = _window(url, bodies, clients=concurrency, seconds=seconds, requests=requests)
    n = len(tally.latency_s)
    return {
        "requests": n,
        "wall_s": tally.wall_s,
        "req_per_s": n / tally.wall_s if tally.wall_s > 0 else 0.0,
        "served_per_s": tally.per_s("200"),
        "p50_ms": _ms(tally.latency_s, 50),
        "p99_ms": _ms(tally.latency_s, 99),
        "errors": n - tally.codes["200"],
        "codes": _codes(tally.codes),
        "body_kb": len(template) / 1024,
        **tally.loadgen(),
    }


def overload(
    url: str,
    template: bytes,
    *,
    clients: int,
    concurrency: int,
    seconds: float,
    rounds: int = 5,
    settle: int = 30,
) -> dict[str, Any]:
    """Sustained overload against the capacity, interleaved.

    ``rounds`` times: ``settle`` requests one at a time, a capacity window (``concurrency``
    connections as in :func:`http_load`), then an overload window (``clients``
    connections, each resending a shed request under the same id as soon as its 503
    arrives, without waiting ``Retry-After``: the worst case for the server), each window
    ``seconds / rounds`` long. Alternating them lets a change in the machine's load hit
    both alike. The server admits by a moving average of its recent decision time (weight
    0.1 per decision), which an overload window inflates; without the settling requests
    (30 leave 0.9**30 = 4% of it) a capacity window would start shedding and understate
    the capacity.

    Returns
    -------
    dict
        Over the overload windows (``wall_s`` in all): the served and shed requests and
        their rates, p50/p99 of the served ones (ms), the 503s without ``Retry-After``
        (goal 0) and the load generator's CPU share; over the capacity windows: the served
        and shed requests and ``capacity_per_s`` (served/s); ``served/capacity`` (goal
        >= 0.8) with its lowest and highest round (of those whose capacity window served);
        ``other``: answers neither 200 nor 503 and transport errors in all three.
    """
    if clients < 1 or concurrency < 1 or rounds < 1 or settle < 0 or not seconds > 0:
        raise ValueError(
            f"overload with clients={clients}, concurrency={concurrency}, rounds={rounds}, "
            f"settle={settle}, seconds={seconds}: use at least 1 client and round, settle >= 0 "
            "and a positive time"
        )
    settle_bodies = _bodies(template, "s")
    capacity_bodies, overload_bodies = _bodies(template, "c"), _bodies(template, "o")
    settling, capacity, overloaded = _Tally(), _Tally(), _Tally()
    ratios = []
    for _ in range(rounds):
        settling.merge(_window(url, settle_bodies, clients=1, seconds=math.inf, requests=settle))
        cap = _window(url, capacity_bodies, clients=concurrency, seconds=seconds / rounds)
        over = _window(url, overload_bodies, clients=clients, seconds=seconds / rounds, resend=True)
        if cap.codes["200"]:
            ratios.append(over.per_s("200") / cap.per_s("200"))
        capacity.merge(cap)
        overloaded.merge(over)
    served, shed = overloaded.codes["200"], overloaded.codes["503"]
    capacity_per_s = capacity.per_s("200")
    answers = overloaded.codes + capacity.codes + settling.codes
    return {
        "clients": clients,
        "wall_s": overloaded.wall_s,
        "served": served,
        "shed_503": shed,
        "other": answers.total() - answers["200"] - answers["503"],
        "served_per_s": overloaded.per_s("200"),
        "shed_per_s": overloaded.per_s("503"),
        "cap_served": capacity.codes["200"],
        "cap_shed": capacity.codes["503"],
        "capacity_per_s": capacity_per_s,
        "served/capacity": overloaded.per_s("200") / capacity_per_s if capacity_per_s else math.nan,
        "ratio_min": min(ratios, default=math.nan),
        "ratio_max": max(ratios, default=math.nan),
        "p50_ms": _ms(overloaded.served_s, 50),
        "p99_ms": _ms(overloaded.served_s, 99),
        "no_retry_after": overloaded.no_retry_after,
        "loadgen_cpu/wall": overloaded.loadgen()["loadgen_cpu/wall"],
    }


def _alternate(
    kinds: Sequence[Sequence[str]],
    template: bytes,
    *,
    concurrency: int,
    seconds: float,
    rounds: int,
    settle: int,
    cpu: Sequence[Callable[[], float]] | None = None,
) -> tuple[list[_Tally], list[float], _Tally, list[float]]:
    """Windows of each kind of server set in turn, ``rounds`` times.

    Each window: ``settle`` requests one at a time to each of its servers (they bring a
    server's admission estimate down after the window before, as in :func:`overload`),
    then ``concurrency`` connections spread over them (connection ``i`` to server
    ``i % k``) for ``seconds / rounds``. The clients are the same in every kind of window,
    so the differences are the servers'; alternating lets a change in the machine's load
    hit every kind alike.

    Returns
    -------
    tuple
        Each kind's tally of its windows; per round, served/s of the last kind over the
        first (the rounds whose first window served); the settling requests' tally; and,
        given ``cpu`` (per kind, a reading of its server's CPU seconds), each kind's
        server CPU time over its windows (0.0 without).
    """
    settle_bodies, window_bodies = _bodies(template, "s"), _bodies(template, "w")
    settling, tallies = _Tally(), [_Tally() for _ in kinds]
    spent, ratios = [0.0] * len(kinds), []
    for _ in range(rounds):
        got = []
        for k, targets in enumerate(kinds):
            for url in targets:
                settling.merge(
                    _window(url, settle_bodies, clients=1, seconds=math.inf, requests=settle)
                )
            before = cpu[k]() if cpu is not None else 0.0
            got.append(
                _window(targets, window_bodies, clients=concurrency, seconds=seconds / rounds)
            )
            if cpu is not None:
                spent[k] += cpu[k]() - before
        if got[0].codes["200"]:
            ratios.append(got[-1].per_s("200") / got[0].per_s("200"))
        for tally, window in zip(tallies, got, strict=True):
            tally.merge(window)
    return tallies, ratios, settling, spent


def scale_out(
    urls: Sequence[str],
    template: bytes,
    *,
    concurrency: int,
    seconds: float,
    rounds: int = 3,
    settle: int = 30,
) -> dict[str, Any]:
    """Capacity of one server against ``len(urls)`` servers that hold the same state,
    interleaved (:func:`_alternate`: the first server alone, then all of them, ``rounds``
    times, each window ``seconds / rounds`` long).

    Returns
    -------
    dict
        ``workers`` (the servers) and ``clients``; per kind of window (``_1``: the first
        server alone, ``_k``: all of them) the wall time in all, the served (200) and shed
        (503) requests, served/s and p99 of the served requests (ms); ``served_k/1``:
        served/s of all the servers over one's, with its lowest and highest round (of those
        whose one-server window served); ``served_by_server``: each server's 200 answers in
        the ``_k`` windows; ``other``: answers neither 200 nor 503 and transport errors,
        settling included; the load generator's CPU share in the ``_k`` windows, the busier
        kind (near 1: the generator, not the servers, sets the rate).
    """
    n_servers = len(urls)
    if n_servers < 2 or concurrency < n_servers or rounds < 1 or settle < 0 or not seconds > 0:
        raise ValueError(
            f"scale_out over {n_servers} servers with concurrency={concurrency}, "
            f"rounds={rounds}, settle={settle}, seconds={seconds}: use at least 2 servers, a "
            "client per server, 1 round, settle >= 0 and a positive time"
        )
    (alone, spread), ratios, settling, _ = _alternate(
        [urls[:1], urls], template, concurrency=concurrency, seconds=seconds, rounds=rounds,
        settle=settle,
    )  # fmt: skip
    answers = settling.codes + alone.codes + spread.codes
    served_per_s_1, served_per_s_k = alone.per_s("200"), spread.per_s("200")
    return {
        "workers": n_servers,
        "clients": concurrency,
        "wall_s_1": alone.wall_s,
        "wall_s_k": spread.wall_s,
        "served_1": alone.codes["200"],
        "served_k": spread.codes["200"],
        "served_per_s_1": served_per_s_1,
        "served_per_s_k": served_per_s_k,
        "served_k/1": served_per_s_k / served_per_s_1 if served_per_s_1 else math.nan,
        "ratio_min": min(ratios, default=math.nan),
        "ratio_max": max(ratios, default=math.nan),
        "served_by_server": ",".join(str(spread.served_by[url]) for url in urls),
        "shed_1": alone.codes["503"],
        "shed_k": spread.codes["503"],
        "other": answers.total() - answers["200"] - answers["503"],
        "p99_ms_1": _ms(alone.served_s, 99),
        "p99_ms_k": _ms(spread.served_s, 99),
        "loadgen_cpu/wall": spread.loadgen()["loadgen_cpu/wall"],
    }


def compare(
    first: _Served,
    second: _Served,
    names: tuple[str, str],
    template: bytes,
    *,
    concurrency: int,
    seconds: float,
    rounds: int = 3,
    settle: int = 30,
) -> dict[str, Any]:
    """Two servers holding the same state, loaded by the same clients in alternating
    windows (:func:`_alternate`, ``first`` first): a server pinned to a CPU against an
    unpinned one (``pinning``), or a decision process against a worker thread (``worker``).

    Returns
    -------
    dict
        Per server (suffixed with its name in ``names``): served/s, p99 of the served
        requests (ms), 503s, and the server's CPU time per answered request (ms, its
        decision process included; NaN without /proc); ``<second>/<first>``: served/s of
        the second over the first, with its lowest and highest round; ``other`` as
        :func:`scale_out`.
    """
    (a, b), ratios, settling, (cpu_a, cpu_b) = _alternate(
        [[first.url], [second.url]], template, concurrency=concurrency, seconds=seconds,
        rounds=rounds, settle=settle, cpu=[first.cpu_s, second.cpu_s],
    )  # fmt: skip
    answers = settling.codes + a.codes + b.codes
    row: dict[str, Any] = {"clients": concurrency}
    for name, tally, cpu_s in ((names[0], a, cpu_a), (names[1], b, cpu_b)):
        answered = tally.codes.total()
        row |= {
            f"served_per_s_{name}": tally.per_s("200"),
            f"p99_ms_{name}": _ms(tally.served_s, 99),
            f"shed_{name}": tally.codes["503"],
            f"cpu_ms/request_{name}": cpu_s / answered * 1e3 if answered else math.nan,
        }
    served_first = row[f"served_per_s_{names[0]}"]
    ratio = row[f"served_per_s_{names[1]}"] / served_first if served_first else math.nan
    return row | {
        f"{names[1]}/{names[0]}": ratio,
        "ratio_min": min(ratios, default=math.nan),
        "ratio_max": max(ratios, default=math.nan),
        "other": answers.total() - answers["200"] - answers["503"],
        "loadgen_cpu/wall": b.loadgen()["loadgen_cpu/wall"],
    }


def burst(url: str, template: bytes, connections: int) -> dict[str, Any]:
    """``connections`` requests sent at once, each on its own connection."""
    # Every client takes its one request before the first await, so none takes two.
    tally = _window(
        url, _bodies(template, "b"), clients=connections, seconds=math.inf, requests=connections
    )
    served, shed = tally.codes["200"], tally.codes["503"]
    return {
        "connections": connections,
        "served": served,
        "shed_503": shed,
        "other": connections - served - shed,
        "wall_s": tally.wall_s,
        "served_per_s": tally.per_s("200"),
        "codes": _codes(tally.codes),
        **tally.loadgen(),
    }


def _http_rows(
    bundle: Path,
    market: Any,
    audit: Path,
    *,
    encoding: str,
    requests: int,
    seconds: float,
    concurrency: int,
    overload_clients: int,
    overload_seconds: float,
    burst_connections: int,
    workers: int,
    pin: int | None,
) -> list[dict[str, Any]]:
    """The ``http``, ``worker``, ``workers`` (``workers`` > 1), ``pinning`` (``pin``
    given), ``overload`` and ``burst`` rows against one served bundle: ``workers`` server
    processes, each with its decision process and its own audit log (one writer per log),
    plus one deciding on a thread (``serve --decision-worker thread``) and, with ``pin``,
    one more on a thread pinned to that CPU, all fed the same bars. ``worker``: the thread
    server against the first; ``pinning``: the pinned against the thread server (a
    decision process on the same CPU as its HTTP process would lose its second core); the
    other rows load the first alone."""
    from allocgym.serving import FrozenAllocator

    alloc = FrozenAllocator.load(bundle, environ={"TRADING_ALLOCATOR_ENABLED": "true"})
    audits = [audit] + [audit.with_stem(f"{audit.stem}-{i}") for i in range(1, workers)]
    with contextlib.ExitStack() as servers:
        served = [servers.enter_context(_server(bundle, log)) for log in audits]
        log = audit.with_stem(f"{audit.stem}-thread")
        thread = servers.enter_context(_server(bundle, log, worker="thread"))
        pinned = None
        if pin is not None:
            log = audit.with_stem(f"{audit.stem}-pinned")
            pinned = servers.enter_context(_server(bundle, log, cpu=pin, worker="thread"))
        urls = [s.url for s in served]
        url = urls[0]
        if encoding == "account":
            from allocgym.serving.market import MarketState

            feed = [*urls, thread.url] + ([] if pinned is None else [pinned.url])
            latest = _seed(feed, _bars(market, MarketState(alloc).window_bars))
            account = _account(alloc, market, latest)
            template = json.dumps(account, separators=(",", ":")).encode()
        else:
            template = _body_template(_requests(alloc, market), encoding)
        label = {"n_assets": market.n_assets, "encoding": encoding}
        load = http_load(url, template, requests=requests, seconds=seconds, concurrency=concurrency)
        rows = [{"bench": "http", **label, "clients": concurrency, **load}]
        names = ("thread", "process")
        pair = compare(thread, served[0], names, template, concurrency=concurrency, seconds=seconds)
        rows.append({"bench": "worker", **label, **pair})
        if workers > 1:
            several = scale_out(urls, template, concurrency=concurrency, seconds=seconds)
            rows.append({"bench": "workers", **label, **several})
        if pinned is not None:
            one_cpu = compare(
                thread, pinned, ("free", "pinned"), template, concurrency=concurrency,
                seconds=seconds,
            )  # fmt: skip
            rows.append({"bench": "pinning", **label, "cpu": pin, **one_cpu})
        if overload_clients:
            overloaded = overload(
                url, template, clients=overload_clients, concurrency=concurrency,
                seconds=overload_seconds,
            )  # fmt: skip
            rows.append({"bench": "overload", **label, **overloaded})
        if burst_connections:
            rows.append({"bench": "burst", **label, **burst(url, template, burst_connections)})
    return rows


def _first_cpu() -> int | None:
    """The lowest CPU this process may run on (None where affinity is not supported)."""
    return min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def run(
    n_assets: tuple[int, ...] = (20, 500),
    *,
    calls: int = 2000,
    http_assets: tuple[int, ...] = (20,),
    http_requests: int = 4000,
    http_seconds: float = 20.0,
    concurrency: int = 8,
    encoding: str = "account",
    overload_clients: int = 64,
    overload_seconds: float = 10.0,
    burst_connections: int = 1000,
    workers: int = 2,
    pin: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Benchmark rows (``progress(stage)`` called as each size's stages start): ``bench`` = ``in_process`` and ``streaming`` (one per size), then
    per HTTP size ``http``, ``worker`` (a decision process against a worker thread, in
    alternating windows), ``workers`` (one server against ``workers`` of them, each kind
    of window ``http_seconds`` in all; ``workers`` 1: none), ``overload``
    (``overload_clients`` 0: none), ``burst`` (``burst_connections`` 0: none) and, with
    ``pin`` (where the platform pins processes), ``pinning``: one more server pinned to the
    first CPU this process may use against the unpinned one, both deciding on a thread,
    in alternating windows."""
    if workers < 1:
        raise ConfigError(f"workers={workers}: use 1 (one server) or more")
    if encoding not in ("account", "b64", "json"):
        raise ConfigError(f"encoding {encoding!r}: use 'account', 'b64' or 'json'")
    if workers > 1 and concurrency < workers:  # refused now, not after the other rows ran
        raise ConfigError(
            f"workers={workers} needs concurrency >= {workers} (got {concurrency}): one "
            "client connection per server at least"
        )
    from allocgym.data import synthetic

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        say = progress or (lambda stage: None)
        for n in sorted(set(n_assets) | set(http_assets)):
            say(f"N = {n}: building a bundle")
            bundle = build_bundle(n, Path(tmp) / f"bundle-{n}")
            market = synthetic(n_assets=n, n_days=400, seed=0)
            if n in n_assets:
                say(f"N = {n}: in-process decisions ({calls} calls) and streaming bars")
                rows.append(in_process(bundle, market, calls))
                rows.append(streaming(bundle, market, calls))
            if n in http_assets:
                say(f"N = {n}: HTTP rows (servers, load windows, overload, burst)")
                rows += _http_rows(
                    bundle, market, Path(tmp) / f"audit-{n}.jsonl", encoding=encoding,
                    requests=http_requests, seconds=http_seconds, concurrency=concurrency,
                    overload_clients=overload_clients, overload_seconds=overload_seconds,
                    burst_connections=burst_connections, workers=workers,
                    pin=_first_cpu() if pin else None,
                )  # fmt: skip
    return rows
