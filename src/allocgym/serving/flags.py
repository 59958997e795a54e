"""Runtime flags of the production allocator: seed 001's ``TRADING_ALLOCATOR_*`` variables.

Read once when a :class:`~allocgym.serving.allocator.FrozenAllocator` is built, through
the risk module's loaders (one parser for the whole package):

- ``TRADING_ALLOCATOR_ENABLED`` (default ``false``): ``allocgym.risk.allocator_enabled``.
  When false the allocator passes the defensive baseline through the gates, coded
  ``ALLOCATOR_DISABLED``; the model is not called.
- ``TRADING_ALLOCATOR_DEFAULT_REGIME``, ``_REGIME_BUDGET_MULTIPLIERS``,
  ``_REGIME_CAPACITY_MULTIPLIERS``, ``_MAX_SYMBOL_PCT_EQUITY``, ``_MAX_SYMBOL_NOTIONAL``,
  ``_DEFAULT_BUDGET_MULTIPLIER``, ``_DEFAULT_CAPACITY_MULTIPLIER``, ``_MIN_MULTIPLIER``,
  ``_MAX_MULTIPLIER``: ``allocgym.risk.limits_from_env`` overrides the bundle's risk
  section with them (documented defaults and clamps live there).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from allocgym.config import RiskConfig
from allocgym.risk import ENV_VARS, allocator_enabled, limits_from_env


@dataclass(frozen=True)
class RuntimeFlags:
    """The effective runtime switches.

    Attributes
    ----------
    enabled : bool
        ``TRADING_ALLOCATOR_ENABLED``.
    risk : RiskConfig
        The bundle's risk section with the ``TRADING_ALLOCATOR_*`` overrides applied.
    variables : dict of str to str
        The ``TRADING_ALLOCATOR_*`` variables that were set (for audit and ``/healthz``).
    """

    enabled: bool
    risk: RiskConfig
    variables: dict[str, str]

    @classmethod
    def from_env(cls, risk: RiskConfig, environ: Mapping[str, str] | None = None) -> RuntimeFlags:
        """Parse the flags from ``environ`` (``os.environ`` when omitted).

        Raises
        ------
        GateConfigError
            A variable with a bad value (message names it and the fix).
        """
        env = os.environ if environ is None else environ
        return cls(
            enabled=allocator_enabled(env),
            risk=limits_from_env(risk, env),
            variables={k: str(env[k]) for k in ENV_VARS if k in env},
        )
