"""The small, calm ``GateContext`` the gate tests start from, and limits and costs loose
enough that only the limit under test binds.

Every test of the risk gates needs a context in which nothing but the limit under test
binds: equity 1e6, prices 100, ADV notional 1e9 (participation never binds), volatility
0.02, spread 5 bps, one sector per symbol, every symbol tradable, regime code 0 and a flat
current book. A test overrides what it is about with keyword arguments.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from allocgym.costs import CostModel
from allocgym.risk import GateContext, GateResult

# Limits loose enough that only the limit under test can bind (RiskLimits keywords).
LOOSE = dict(
    max_symbol_weight=1.0,
    max_gross=10.0,
    max_net=10.0,
    max_sector_gross=10.0,
    long_only=False,
    max_strategy_contribution=10.0,
    max_turnover=100.0,
    max_participation=1e6,
    slippage_budget_bps=1e6,
    regime_budget_multipliers=(1.0, 1.0, 1.0, 1.0),
    regime_capacity_multipliers=(1.0, 1.0, 1.0, 1.0),
)
FREE = CostModel(commission_bps=0.0, spread_mult=0.0, impact_k=0.0)
"""No commission, spread or impact: costs never bind."""

# The env tests' ``risk`` config section: loose enough that no gate binds unless a test
# tightens one (RiskConfig keys).
ENV_RISK = {
    "max_symbol_weight": 1.0,
    "max_gross": 1.0,
    "max_sector_gross": 1.0,
    "max_turnover": 2.0,
    "max_participation": 1.0,
    "slippage_budget_bps": 1000.0,
    "regime_budget_multipliers": {},
    "regime_capacity_multipliers": {},
}


def gate_result(weights: Any, sym: Any = None, port: Any = None) -> GateResult:
    """The gates' output for ``weights`` (approved as proposed), with optional codes: what
    the execution tests hand to ``ExecutionPolicy``."""
    a = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    return GateResult(
        approved=a,
        symbol_reasons=np.zeros(a.shape, np.int64) if sym is None else np.atleast_2d(sym),
        portfolio_reasons=np.zeros(a.shape[0], np.int64) if port is None else np.asarray(port),
        clipped={},
        proposed=a.copy(),
    )


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
