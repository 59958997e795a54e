"""A stand-in clock for benchmark tests: every timed interval lasts what the test scripted.

Benchmarks read ``time.perf_counter()`` (and ``time.process_time()``) once before and once
after each timed call. Replacing their module's ``time`` with a :class:`ScriptedClock`
makes the medians and ratios they report computable by hand, with no wall-time threshold.
"""

from __future__ import annotations

from collections.abc import Sequence


class _Intervals:
    def __init__(self, durations: Sequence[float]) -> None:
        self.durations = list(durations)
        self.now = 0.0
        self.started = False

    def __call__(self) -> float:
        if self.started:  # an end reading: the interval lasted the next scripted duration
            self.now += self.durations.pop(0)
        self.started = not self.started
        return self.now


class ScriptedClock:
    """``perf_counter`` times the intervals ``wall`` in order, ``process_time`` ``cpu``."""

    def __init__(self, wall: Sequence[float], cpu: Sequence[float] = ()) -> None:
        self.perf_counter = _Intervals(wall)
        self.process_time = _Intervals(cpu)

    @property
    def unused(self) -> int:
        """Scripted intervals no benchmark read (0 when it timed every promised round)."""
        return len(self.perf_counter.durations) + len(self.process_time.durations)
