"""Causal regime model: ``(label, confidence)`` per bar from data up to and including t.

Labels are integer codes into ``REGIME_LABELS``; ``UNKNOWN_REGIME`` (-1) stands for a label
the runtime does not know (seed 001's default regime ``neutral`` among them), which the
risk gates map to the default multipliers.
"""

from __future__ import annotations

REGIME_LABELS: tuple[str, ...] = ("trend", "mean_reversion", "high_volatility", "uncertain")
UNKNOWN_REGIME: int = -1
BARBELL_STATES: tuple[str, ...] = ("QUIET", "NORMAL", "CRISIS")


def regime_code(label: str) -> int:
    """Integer code of a regime label; unknown labels map to ``UNKNOWN_REGIME``."""
    try:
        return REGIME_LABELS.index(label)
    except ValueError:
        return UNKNOWN_REGIME
