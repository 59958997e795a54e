"""One builder of the small, calm ``GateContext`` the gate tests start from.

Every test of the risk gates needs a context in which nothing but the limit under test
binds: equity 1e6, prices 100, ADV notional 1e9 (participation never binds), volatility
0.02, spread 5 bps, one sector per symbol, every symbol tradable, regime code 0 and a flat
current book. A test overrides what it is about with keyword arguments.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from allocgym.risk import GateContext


def calm_context(n_envs: int = 1, n_assets: int = 4, **overrides: Any) -> GateContext:
    """The calm context of ``n_envs`` portfolios over ``n_assets`` symbols, with
    ``overrides`` replacing fields (``GateContext`` names)."""
    fields: dict[str, Any] = dict(
        current_weights=np.zeros((n_envs, n_assets)),
        equity=np.full(n_envs, 1.0e6),
        prices=np.full((n_envs, n_assets), 100.0),
        adv_notional=np.full((n_envs, n_assets), 1.0e9),
        volatility=np.full((n_envs, n_assets), 0.02),
        spread_bps=np.full((n_envs, n_assets), 5.0),
        sector_ids=np.arange(n_assets),
        regime=np.zeros(n_envs, dtype=np.int64),
        tradable=np.ones((n_envs, n_assets), dtype=bool),
    )
    fields.update(overrides)
    return GateContext(**fields)
