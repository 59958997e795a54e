"""Runtime flags of the production allocator: the ``TRADING_ALLOCATOR_*`` variables.

Read once when a :class:`~allocgym.serving.allocator.FrozenAllocator` is built:

- ``TRADING_ALLOCATOR_ENABLED`` (default ``false``): :func:`allocator_enabled`. When false
  the allocator passes the defensive baseline through the gates, coded
  ``ALLOCATOR_DISABLED``; the model is not called.
- ``TRADING_ALLOCATOR_DEFAULT_REGIME``, ``_REGIME_BUDGET_MULTIPLIERS``,
  ``_REGIME_CAPACITY_MULTIPLIERS``, ``_MAX_SYMBOL_PCT_EQUITY``, ``_MAX_SYMBOL_NOTIONAL``,
  ``_DEFAULT_BUDGET_MULTIPLIER``, ``_DEFAULT_CAPACITY_MULTIPLIER``, ``_MIN_MULTIPLIER``,
  ``_MAX_MULTIPLIER``: :func:`limits_from_env` overrides the bundle's risk section with
  them (the regime multipliers are clamped by ``allocgym.risk.RiskLimits``).
  :class:`RuntimeFlags` refuses overrides that would loosen the bundle's sealed limits
  (:func:`loosened`): the flags tighten, the bundle is the ceiling.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from allocgym.config import RiskConfig
from allocgym.errors import GateConfigError
from allocgym.regime import REGIME_LABELS

_MAPS = ("regime_budget_multipliers", "regime_capacity_multipliers")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


ENV_ENABLED = "TRADING_ALLOCATOR_ENABLED"
_ENV_PREFIX = "TRADING_ALLOCATOR_"
_ENV_FIELDS: dict[str, str] = {
    "TRADING_ALLOCATOR_DEFAULT_REGIME": "default_regime",
    "TRADING_ALLOCATOR_REGIME_BUDGET_MULTIPLIERS": "regime_budget_multipliers",
    "TRADING_ALLOCATOR_REGIME_CAPACITY_MULTIPLIERS": "regime_capacity_multipliers",
    "TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY": "max_symbol_weight",
    "TRADING_ALLOCATOR_MAX_SYMBOL_NOTIONAL": "max_symbol_notional",
    "TRADING_ALLOCATOR_DEFAULT_BUDGET_MULTIPLIER": "default_budget_multiplier",
    "TRADING_ALLOCATOR_DEFAULT_CAPACITY_MULTIPLIER": "default_capacity_multiplier",
    "TRADING_ALLOCATOR_MIN_MULTIPLIER": "min_multiplier",
    "TRADING_ALLOCATOR_MAX_MULTIPLIER": "max_multiplier",
}
#: Every ``TRADING_ALLOCATOR_*`` variable this package reads.
ENV_VARS: tuple[str, ...] = (ENV_ENABLED, *_ENV_FIELDS)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def allocator_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Parse ``TRADING_ALLOCATOR_ENABLED`` (default ``false``) for the serving layer.

    Accepts ``1/true/yes/on`` and ``0/false/no/off`` (any case); unset or empty = false.

    Raises
    ------
    GateConfigError
        For any other value.
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_ENABLED, "").strip().lower()
    if raw == "" or raw in _FALSE:
        return False
    if raw in _TRUE:
        return True
    raise GateConfigError(
        f"{ENV_ENABLED}={env.get(ENV_ENABLED)!r} is not a boolean: set it to true or false"
    )


def _env_number(var: str, raw: str, *, positive: bool) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        rule = "a finite number > 0" if positive else "a finite number >= 0"
        raise GateConfigError(f"{var}={raw!r} is not {rule}: fix or unset the variable")
    return value


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; a key given twice is refused (JSON keeps the last,
    silently)."""
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"label(s) {repeated} given more than once")
    return dict(pairs)


def _env_map(var: str, raw: str) -> dict[str, float]:
    try:
        data = json.loads(raw, object_pairs_hook=_no_repeats)
    except ValueError as err:
        if not isinstance(err, json.JSONDecodeError):
            raise GateConfigError(f"{var}={raw!r}: {err}; give each label once") from None
        raise GateConfigError(
            f"{var}={raw!r} is not valid JSON ({err.msg}): use a JSON object such as "
            '{"high_volatility": 0.5}'
        ) from None
    if not isinstance(data, dict):
        raise GateConfigError(
            f'{var}={raw!r} must be a JSON object label -> multiplier, e.g. {{"trend": 1.2}}'
        )
    out: dict[str, float] = {}
    for label, value in data.items():
        if label not in REGIME_LABELS:
            raise GateConfigError(
                f"{var} has label {label!r}, not a regime label: use one of "
                f"{list(REGIME_LABELS)}; other labels get the DEFAULT_*_MULTIPLIER"
            )
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            raise GateConfigError(f"{var}[{label!r}] = {value!r}: must be a finite number >= 0")
        out[label] = float(value)
    return out


def _default_regime(var: str, raw: str) -> str:
    """The default regime label; one that is a regime label but for its case is refused (an
    unknown label is allowed, and gets the default multipliers: ``HIGH_VOLATILITY`` had
    silently left the high-volatility cuts off)."""
    near = [label for label in REGIME_LABELS if label.lower() == raw.lower() and label != raw]
    if near:
        raise GateConfigError(
            f"{var}={raw!r} is not the regime label {near[0]!r} (labels are lower case): "
            f"write {near[0]}, or a label outside {list(REGIME_LABELS)} for the default "
            "multipliers"
        )
    return raw


def limits_from_env(cfg: RiskConfig, environ: Mapping[str, str] | None = None) -> RiskConfig:
    """Override ``cfg`` with the ``TRADING_ALLOCATOR_*`` runtime flags.

    - ``TRADING_ALLOCATOR_DEFAULT_REGIME`` -> ``default_regime`` (a label)
    - ``TRADING_ALLOCATOR_REGIME_BUDGET_MULTIPLIERS`` -> ``regime_budget_multipliers`` (JSON
      object ``label -> multiplier``)
    - ``TRADING_ALLOCATOR_REGIME_CAPACITY_MULTIPLIERS`` -> ``regime_capacity_multipliers``
      (JSON object)
    - ``TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY`` -> ``max_symbol_weight`` (a fraction of
      equity in (0, 1], as the deployed allocators read it: ``0.10`` = 10 %; a value above 1,
      such as ``10`` meant as 10 %, is rejected)
    - ``TRADING_ALLOCATOR_MAX_SYMBOL_NOTIONAL`` -> ``max_symbol_notional`` (currency, > 0;
      ``none`` disables it)
    - ``TRADING_ALLOCATOR_DEFAULT_BUDGET_MULTIPLIER`` -> ``default_budget_multiplier``
    - ``TRADING_ALLOCATOR_DEFAULT_CAPACITY_MULTIPLIER`` -> ``default_capacity_multiplier``
    - ``TRADING_ALLOCATOR_MIN_MULTIPLIER`` / ``_MAX_MULTIPLIER`` -> ``min_multiplier`` /
      ``max_multiplier`` (the clamp of every regime multiplier)

    A JSON map replaces the config map (labels must be ``REGIME_LABELS``). Unset or empty
    variables leave the config value. ``TRADING_ALLOCATOR_ENABLED`` is read by
    :func:`allocator_enabled`. Other ``TRADING_ALLOCATOR_*`` names are ignored with a
    warning (they are usually typos).

    Parameters
    ----------
    cfg : RiskConfig
        The configured limits.
    environ : mapping of str to str, optional
        Environment to read; ``os.environ`` when omitted.

    Returns
    -------
    RiskConfig
        A validated copy with the overrides applied.

    Raises
    ------
    GateConfigError
        Naming the variable, the bad value and the fix.
    """
    env = os.environ if environ is None else environ
    updates: dict[str, Any] = {}
    used: list[str] = []
    for var, name in _ENV_FIELDS.items():
        raw = env.get(var)
        if raw is None or not raw.strip():
            continue
        raw = raw.strip()
        used.append(var)
        if name == "default_regime":
            updates[name] = _default_regime(var, raw)
        elif name in _MAPS:
            updates[name] = _env_map(var, raw)
        elif name == "max_symbol_notional" and raw.lower() in ("none", "null", "off"):
            updates[name] = None
        else:
            positive = name in ("max_symbol_weight", "max_symbol_notional")
            value = _env_number(var, raw, positive=positive)
            if name == "max_symbol_weight" and value > 1.0:
                # A percentage typed as a number (10 for 10 %) would be a 1000 % cap.
                raise GateConfigError(
                    f"{var}={raw!r} is above 1: it is a fraction of equity, not a "
                    "percentage (10% is 0.10); fix or unset the variable"
                )
            updates[name] = value
    unknown = sorted(k for k in env if k.startswith(_ENV_PREFIX) and k not in ENV_VARS)
    if unknown:
        warnings.warn(
            f"ignoring unknown environment variable(s) {unknown}; allocgym reads {list(ENV_VARS)}",
            stacklevel=2,
        )
    if not updates:
        return cfg
    data = cfg.model_dump()
    data.update(updates)
    try:
        return RiskConfig.model_validate(data)
    except ValidationError as err:
        msgs = "; ".join(e["msg"] for e in err.errors())
        raise GateConfigError(
            f"TRADING_ALLOCATOR_* overrides {used} give invalid risk limits ({msgs}): "
            "fix the variables (e.g. MIN_MULTIPLIER <= MAX_MULTIPLIER)"
        ) from None


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
        """Parse the flags from ``environ`` (``os.environ`` when omitted) over the sealed
        risk section ``risk``: they may tighten its limits, never loosen them.

        Raises
        ------
        GateConfigError
            A variable with a bad value, or flags that would loosen a sealed limit (the
            message names them and the fix).
        """
        env = os.environ if environ is None else environ
        variables = {k: str(env[k]) for k in ENV_VARS if k in env}
        flagged = limits_from_env(risk, env)
        looser = loosened(risk, flagged)
        if looser:
            set_vars = sorted(k for k in variables if k != ENV_ENABLED)
            raise GateConfigError(
                f"TRADING_ALLOCATOR_* variables {set_vars} loosen the bundle's sealed limits "
                f"({'; '.join(looser)}): runtime flags may only tighten them. Unset or lower "
                "the variables (a multiplier map replaces the bundle's whole map: name every "
                "regime), or re-export the bundle with the looser limits"
            )
        return cls(enabled=allocator_enabled(env), risk=flagged, variables=variables)


def loosened(sealed: RiskConfig, flagged: RiskConfig) -> list[str]:
    """What the runtime flags' limits ``flagged`` allow beyond the ``sealed`` ones, one
    line per limit: any bound of the limit registry (``LimitTables.bound``: every cap
    times its regime multiplier or tilt, after the clamp) or multiplier higher in some
    regime, a limit removed, or a default regime whose bounds are higher; with a strategy
    capacity reference set, a higher clamp of the capacity factor (``max_multiplier`` or
    ``min_multiplier``: the factor follows the market, so the tables cannot show it)."""
    from allocgym.intents import STRATEGY_FAMILIES
    from allocgym.risk import RiskLimits

    was, now = RiskLimits.from_config(sealed), RiskLimits.from_config(flagged)
    before_tables, after_tables = was.tables, now.tables
    slots = [*REGIME_LABELS, "unknown"]  # the tables' slots
    default = (
        int(before_tables.slot(np.array([was.default_regime_code]))[0]),
        int(after_tables.slot(np.array([now.default_regime_code]))[0]),
    )
    rows: list[tuple[str, Any, Any]] = [
        ("budget multiplier", before_tables.budget, after_tables.budget),
        ("capacity multiplier", before_tables.capacity, after_tables.capacity),
    ]
    rows += [
        (code.name, bound, after_tables.bound[code]) for code, bound in before_tables.bound.items()
    ]
    out = []
    capacity_refs = (
        sealed.strategy_capacity_spread_bps,
        sealed.strategy_capacity_volatility,
        sealed.strategy_capacity_adv_to_equity,
    )
    if any(ref is not None for ref in capacity_refs):
        for key in ("max_multiplier", "min_multiplier"):
            b, a = float(getattr(sealed, key)), float(getattr(flagged, key))
            if a > b:
                out.append(f"{key} {a:g} > sealed {b:g} (it clamps the strategy capacity factor)")
    for name, before, after in rows:
        if before is None:
            continue  # a limit the bundle leaves off: turning it on tightens
        if after is None:
            out.append(f"{name} removed (sealed up to {float(np.max(before)):g})")
            continue
        b, a = np.broadcast_arrays(np.asarray(before, float), np.asarray(after, float))
        if not a.ndim:  # a bound without a regime multiplier
            if a > b:
                out.append(f"{name} {a:g} > sealed {b:g}")
            continue
        over = np.argwhere(a > b)
        if over.size:
            at = tuple(over[0])
            where = f" in {slots[at[0]]}"
            if len(at) == 2:
                where += f" for {STRATEGY_FAMILIES[at[1]]}"
            more = f" (and {len(over) - 1} more)" if len(over) > 1 else ""
            out.append(f"{name}{where} {a[at]:g} > sealed {b[at]:g}{more}")
        elif np.any(a[default[1]] > b[default[0]]):
            out.append(
                f"{name} of the default regime {now.default_regime!r} is above that of "
                f"the sealed default {was.default_regime!r}"
            )
    return out
