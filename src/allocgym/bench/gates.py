"""``allocgym bench gates``: RiskGateChain latency and batch throughput.

Rows (medians; the machine is noisy):

- ``single``: one decision, ``n_envs = 1``, ``n_assets = 20``: p50 / p99 latency of
  ``apply``; ``single+debug``: the same with ``debug=True`` (the independent invariant
  checker on every call);
- ``batch``: ``n_envs = 1024`` with ``n_assets = 20`` and ``500``: portfolio-decisions per
  second of one vectorised ``apply``, against the reference measured in the same run:
  ``apply`` called once per portfolio in a Python loop (``ref_decisions_per_s``, what a
  non-vectorised caller pays); ``speedup`` is the ratio.

``compile_s`` (every row): seconds this process spent compiling the step kernels, or
loading them from their disk cache, before any timing.

The batch is realistic and makes every stage work: books at and near the limits (half of
them the chain's own output), proposals that break symbol, sector, gross, turnover,
participation and slippage limits, illiquid names, untradable names, a few NaN
proposals, reduce-only and killed portfolios, mixed regimes.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from allocgym import compiled
from allocgym.bench import latencies, time_calls
from allocgym.costs import CostModel
from allocgym.risk import GateContext, RiskGateChain, RiskLimits


def make_batch(
    n_envs: int, n_assets: int, seed: int = 0
) -> tuple[np.ndarray, GateContext, RiskLimits, CostModel]:
    """A seeded benchmark batch: (proposed, context, limits, cost model)."""
    rng = np.random.default_rng(seed)
    limits = RiskLimits(
        long_only=False,
        max_symbol_weight=0.10,
        max_gross=1.5,
        max_net=0.5,
        max_sector_gross=0.5,
        beta_tolerance=0.3,
        max_turnover=0.5,
        max_participation=0.05,
        slippage_budget_bps=10.0,
    )
    cost = CostModel()
    n_sectors = max(1, n_assets // 5)
    ctx = GateContext(
        current_weights=np.zeros((n_envs, n_assets)),
        equity=np.exp(rng.uniform(np.log(1e6), np.log(1e8), n_envs)),
        prices=rng.uniform(10.0, 500.0, (n_envs, n_assets)),
        adv_notional=np.exp(rng.uniform(np.log(1e6), np.log(1e10), (n_envs, n_assets))),
        volatility=rng.uniform(0.005, 0.04, (n_envs, n_assets)),
        spread_bps=rng.uniform(1.0, 30.0, (n_envs, n_assets)),
        sector_ids=np.arange(n_assets) % n_sectors,
        regime=rng.integers(-1, 4, n_envs),
        tradable=rng.random((n_envs, n_assets)) < 0.98,
        betas=rng.normal(1.0, 0.4, (n_envs, n_assets)),
        kill_switch=rng.random(n_envs) < 0.01,
        reduce_only=rng.random(n_envs) < 0.05,
    )
    scale = 3.0 / n_assets
    first = rng.normal(0.3, 1.0, (n_envs, n_assets)) * scale
    warm = RiskGateChain(limits, cost).apply(first, ctx).approved
    drift = 1.0 + rng.normal(0.0, 0.03, (n_envs, n_assets))  # a market move off the limits
    current = np.where(rng.random((n_envs, 1)) < 0.5, warm, warm * drift)
    ctx = dataclasses.replace(ctx, current_weights=current)
    proposed = rng.normal(0.3, 1.0, (n_envs, n_assets)) * scale
    proposed[rng.random(n_envs) < 0.01, 0] = np.nan
    return proposed, ctx, limits, cost


def _row(case: str, n_envs: int, n_assets: int, **values: Any) -> dict[str, Any]:
    keys = ("p50_us", "p99_us", "decisions_per_s", "ref_decisions_per_s", "speedup")
    return (
        {"case": case, "n_envs": n_envs, "n_assets": n_assets}
        | {k: values.get(k, "") for k in keys}
        | {"compile_s": compiled.compile_seconds()}
    )


def run(repeat: int = 7, n_latency: int = 2000, quick: bool = False) -> list[dict[str, Any]]:
    """Time the gate chain; returns one dict per row (see the module docstring).

    Parameters
    ----------
    repeat : int
        Timed rounds per batch measurement (medians are reported).
    n_latency : int
        Single decisions timed for the latency percentiles.
    quick : bool
        Tiny sizes for a smoke test (the numbers are then meaningless).
    """
    n_envs = 16 if quick else 1024
    sizes = (20, 50) if quick else (20, 500)
    if quick:
        repeat, n_latency = 2, 20
    compiled.warm_up()  # compile time is reported apart, never inside a timed call
    rows: list[dict[str, Any]] = []

    proposed, ctx, limits, cost = make_batch(1, 20, seed=1)
    for debug in (False, True):
        chain = RiskGateChain(limits, cost, debug=debug)
        lat = latencies(lambda chain=chain: chain.apply(proposed, ctx), n=n_latency)
        p50, p99 = np.percentile(lat, [50, 99])
        rows.append(
            _row(
                "single+debug" if debug else "single",
                1,
                20,
                p50_us=p50 * 1e6,
                p99_us=p99 * 1e6,
                decisions_per_s=1.0 / p50,
            )
        )

    for n_assets in sizes:
        proposed, ctx, limits, cost = make_batch(n_envs, n_assets, seed=2)
        chain = RiskGateChain(limits, cost)
        batch = functools.partial(chain.apply, proposed, ctx)
        batch_s = float(np.median(time_calls(batch, repeat=repeat)))
        singles = [
            (proposed[i : i + 1], _slice(ctx, i)) for i in range(n_envs)
        ]  # sliced outside the timing

        def loop(singles=singles, chain=chain) -> None:
            for p, c in singles:
                chain.apply(p, c)

        loop_s = float(np.median(time_calls(loop, repeat=max(1, repeat // 2))))
        rows.append(
            _row(
                "batch",
                n_envs,
                n_assets,
                decisions_per_s=n_envs / batch_s,
                ref_decisions_per_s=n_envs / loop_s,
                speedup=loop_s / batch_s,
            )
        )
    return rows


def _slice(ctx: GateContext, i: int) -> GateContext:
    """Portfolio ``i`` of a batched context as a batch of one."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(ctx):
        value = getattr(ctx, f.name)
        if f.name == "sector_ids" or value is None:
            out[f.name] = value
        else:
            out[f.name] = np.asarray(value)[i : i + 1]
    return GateContext(**out)
