"""``allocgym bench stats``: the paired Sharpe bootstrap and the regime path.

Rows (medians over ``repeat`` interleaved rounds; wall and process CPU time side by side,
since a short call escapes the time-slicing a long one suffers on a shared machine):

- ``paired bootstrap``: ``allocgym.stats.paired_sharpe_difference`` on two correlated
  daily series against the reference in the same run: ``arch.bootstrap.StationaryBootstrap``
  with the same mean block and resample count, applying the Sharpe difference to each
  resample (arch's documented ``apply`` loop);
- ``regime path``: ``RegimeModel.path`` over the bundled S&P 500 sample, per bar, against
  the naive reference: ``RegimeModel.classify`` called once per bar on its trailing window
  (what a per-bar caller pays; both give identical bits).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from allocgym.measures import sharpe_ratio
from allocgym.stats import paired_sharpe_difference


def _clock(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall and process CPU seconds of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def _interleaved(
    ours: Callable[[], Any], ref: Callable[[], Any], repeat: int
) -> tuple[np.ndarray, np.ndarray]:
    """(repeat, 2) wall and CPU seconds of ours and ref, alternating which goes first."""
    ours(), ref()  # warm-up
    wall = np.empty((repeat, 2))
    cpu = np.empty((repeat, 2))
    for r in range(repeat):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for k in order:
            wall[r, k], cpu[r, k] = _clock(ours if k == 0 else ref)
    return wall, cpu


def _row(case: str, size: str, unit: str, wall: np.ndarray, cpu: np.ndarray) -> dict[str, Any]:
    """Medians in ``unit`` (``ms`` or ``us``) and the reference / ours ratios."""
    scale = {"ms": 1e3, "us": 1e6}[unit]
    w, c = np.median(wall, axis=0) * scale, np.median(cpu, axis=0) * scale
    return {
        "case": case,
        "size": size,
        "unit": unit,
        "ours_wall": w[0],
        "ours_cpu": c[0],
        "ref_wall": w[1],
        "ref_cpu": c[1],
        "speedup_wall": w[1] / w[0],
        "speedup_cpu": c[1] / c[0],
    }


def bench_bootstrap(n_obs: int, n_boot: int, repeat: int) -> dict[str, Any]:
    from arch.bootstrap import StationaryBootstrap

    rng = np.random.default_rng(0)
    common = rng.normal(0.0004, 0.01, n_obs)
    a = common + rng.normal(0.0001, 0.003, n_obs)
    b = common + rng.normal(0.0, 0.003, n_obs)

    def ours() -> None:
        paired_sharpe_difference(a, b, mean_block=21, n_boot=n_boot, seed=1)

    def ref() -> None:
        bs = StationaryBootstrap(21, a, b, seed=1)
        bs.apply(lambda x, y: np.array([sharpe_ratio(x) - sharpe_ratio(y)]), n_boot)

    wall, cpu = _interleaved(ours, ref, repeat)
    return _row("paired bootstrap", f"{n_obs} bars x {n_boot} resamples", "ms", wall, cpu)


def bench_regime(n_bars: int, repeat: int) -> dict[str, Any]:
    from numpy.lib.stride_tricks import sliding_window_view

    from allocgym.data import load_sp500
    from allocgym.regime import RegimeModel

    market = load_sp500()
    model = RegimeModel()
    h = model.required_history
    r, rb = market.returns, market.benchmark_returns
    bars = np.arange(market.n_days - n_bars, market.n_days)
    win_a = sliding_window_view(r, h, axis=0).transpose(0, 2, 1)
    win_b = sliding_window_view(rb, h)

    def ours() -> None:
        model.path_from_returns(r, rb)

    def ref() -> None:
        for t in bars:
            model.classify(win_a[t - h + 1][None], win_b[t - h + 1][None])

    wall, cpu = _interleaved(ours, ref, repeat)
    # per bar: the path covers every bar of the sample, the reference n_bars of them
    wall = wall / np.array([market.n_days, n_bars])
    cpu = cpu / np.array([market.n_days, n_bars])
    return _row("regime, per bar", f"S&P {market.n_days} bars", "us", wall, cpu)


def run(repeat: int = 7, quick: bool = False) -> list[dict[str, Any]]:
    """Benchmark rows (see the module docstring)."""
    if quick:
        return [bench_bootstrap(300, 100, 3), bench_regime(20, 3)]
    return [bench_bootstrap(2000, 2000, repeat), bench_regime(400, repeat)]
