"""Benchmarks behind ``allocgym bench ...``.

Each module times our code and a reference in the same run and reports medians and
ratios: the machine is noisy, so single timings are never quoted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table


def time_calls(
    fn: Callable[[], Any], *, repeat: int = 7, number: int = 1, warmup: int = 1
) -> np.ndarray:
    """Seconds per call for each of ``repeat`` rounds of ``number`` calls (after warm-up)."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeat)
    for r in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        out[r] = (time.perf_counter() - start) / number
    return out


def latencies(fn: Callable[[], Any], *, n: int = 1000, warmup: int = 50) -> np.ndarray:
    """Per-call latency in seconds of ``n`` single calls (for p50/p99)."""
    for _ in range(warmup):
        fn()
    out = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - start
    return out


def print_table(title: str, rows: Sequence[dict[str, Any]], console: Console | None = None) -> None:
    """Print benchmark rows (dicts with the same keys) as a rich table."""
    console = console or Console()
    if not rows:
        console.print(f"{title}: no rows")
        return
    table = Table(title=title)
    for key in rows[0]:
        table.add_column(str(key), justify="right")
    for row in rows:
        table.add_row(*(_fmt(v) for v in row.values()))
    console.print(table)


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        if v == 0 or 1e-3 <= abs(v) < 1e6:
            return f"{v:.4g}"
        return f"{v:.3e}"
    return str(v)
