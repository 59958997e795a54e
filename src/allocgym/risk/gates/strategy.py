"""Strategy-level gate: each strategy family's gross contribution under its cap."""

from __future__ import annotations

import numpy as np

from allocgym.risk.codes import ReasonCode
from allocgym.risk.inputs import Inputs
from allocgym.risk.kernels import Trace, is_over


def strategy_gate(
    p: np.ndarray, x: Inputs, cap: float, trace: Trace
) -> tuple[np.ndarray, np.ndarray | None]:
    """STRATEGY_CAP: scale each strategy family whose gross contribution exceeds ``cap``."""
    if x.strategy is None or x.strategy_gross is None:
        return p, None
    gross = x.strategy_gross
    over = is_over(gross, cap, gross) | ~np.isfinite(gross)
    scale = np.where(over, cap / np.where(over, gross, 1.0), 1.0)
    if not over.any():
        return p, scale
    out = p + ((scale - 1.0)[:, :, None] * x.strategy).sum(axis=1)
    trace.record(ReasonCode.STRATEGY_CAP, p, out, portfolio=True)
    return out, scale
