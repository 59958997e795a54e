"""``RiskLimits``: the configured limits as the gates read them.

A ``RiskLimits`` is a view of the frozen, validated ``RiskConfig`` (nothing is checked
twice) plus what the gates derive from it once: the regime multipliers per label and the
regime tilts per label and strategy family, clamped to ``[min_multiplier,
max_multiplier]``, the base budget per strategy family, and the registry's bound tables
(``tables``, one bound per limit and regime slot).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import numpy as np
from pydantic import ValidationError

from allocgym.config import RiskConfig
from allocgym.errors import GateConfigError, RequestError
from allocgym.intents import STRATEGY_FAMILIES
from allocgym.regime import REGIME_LABELS, regime_code
from allocgym.risk.gates.registry import N_LABELS, LimitTables

_MAPS = ("regime_budget_multipliers", "regime_capacity_multipliers")

T = TypeVar("T")


class _ConfigField(Generic[T]):
    """A ``RiskConfig`` field, read through the view."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: RiskLimits, owner: type | None = None) -> T:
        return getattr(obj.config, self.name)  # type: ignore[no-any-return]


MIN_MULTIPLIER = 1e-12
"""A clamped regime multiplier below this is 0: a limit scaled that small allows nothing
real, and subnormal bounds (e.g. a multiplier of 5e-324) turn the gates' scale ratios into
NaN."""


def clamp_multiplier(value: Any, lo: float, hi: float) -> Any:
    """A multiplier clamped to ``[lo, hi]``, read as 0 below ``MIN_MULTIPLIER`` (a
    subnormal multiplier would scale a limit to dust); elementwise on arrays."""
    clamped = np.minimum(np.maximum(value, lo), hi)
    return np.where(clamped < MIN_MULTIPLIER, 0.0, clamped)


def _clamp(value: float, lo: float, hi: float) -> float:
    return float(clamp_multiplier(value, lo, hi))


def _config(fields: Mapping[str, Any]) -> RiskConfig:
    """A validated ``RiskConfig`` from keyword fields; a regime map may also be given as a
    tuple with one multiplier per ``REGIME_LABELS`` entry."""
    data = dict(fields)
    for name in _MAPS:
        value = data.get(name)
        if isinstance(value, tuple | list):
            if len(value) != N_LABELS:
                raise GateConfigError(
                    f"RiskLimits.{name} = {value!r}: needs one multiplier per regime label "
                    f"{REGIME_LABELS}, or a mapping label -> multiplier"
                )
            data[name] = dict(zip(REGIME_LABELS, value, strict=True))
    try:
        return RiskConfig(**data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'risk'}: {e['msg']}" for e in err.errors()
        )
        raise GateConfigError(
            f"RiskLimits({', '.join(f'{k}={v!r}' for k, v in fields.items())}) is invalid "
            f"({problems}); fix the field in the risk section of the config (or its "
            "TRADING_ALLOCATOR_* variable)"
        ) from None


def _check_families(cfg: RiskConfig) -> None:
    """Refuse tilt labels outside ``REGIME_LABELS`` and families outside
    ``STRATEGY_FAMILIES`` (the strategy axis follows that order: other names never apply)."""
    labels = sorted(set(cfg.regime_strategy_tilts) - set(REGIME_LABELS))
    if labels:
        raise GateConfigError(
            f"risk.regime_strategy_tilts has label(s) {labels} that are not regime labels: "
            f"use {list(REGIME_LABELS)} (any other label leaves the budgets untilted)"
        )
    named = [("strategy_budgets", set(cfg.strategy_budgets))] + [
        (f"regime_strategy_tilts[{label!r}]", set(tilts))
        for label, tilts in cfg.regime_strategy_tilts.items()
    ]
    for where, families in named:
        unknown = sorted(families - set(STRATEGY_FAMILIES))
        if unknown:
            raise GateConfigError(
                f"risk.{where} names {unknown}, not strategy families: use "
                f"{list(STRATEGY_FAMILIES)}"
            )


class RiskLimits:
    """Hard limits and trade limits enforced by ``RiskGateChain`` (weights: fractions of equity).

        Build one with :meth:`from_config` (the ``risk`` config section, used as is) or from
        ``RiskConfig`` fields as keywords (``RiskLimits(max_gross=1.5)``: validated by
        ``RiskConfig``, defaults for the rest; a regime map may be a tuple over
        ``REGIME_LABELS``). Every ``RiskConfig`` field reads through (see its documentation),
        except that the regime maps read as tuples over ``REGIME_LABELS`` (labels missing
        from the config map get the default multiplier) and every regime multiplier, the
        defaults included, is clamped to ``[min_multiplier, max_multiplier]`` (and read as 0
    below ``MIN_MULTIPLIER``): the semantics
        of the ``TRADING_ALLOCATOR_*`` runtime flags. A regime code outside
        ``REGIME_LABELS`` (``UNKNOWN_REGIME`` = -1) gets the default multiplier.

        Attributes
        ----------
        config : RiskConfig
            The limits as configured.
        tables : LimitTables
            The registry's bounds per regime slot (``allocgym.risk.gates.registry``).
        regime_budget_multipliers, regime_capacity_multipliers : tuple of float
            One clamped multiplier per ``REGIME_LABELS`` entry.
        default_budget_multiplier, default_capacity_multiplier : float
            Clamped multipliers for unknown regime codes.
        strategy_budgets : tuple of float
            Base budget per ``STRATEGY_FAMILIES`` entry (``max_strategy_contribution`` for
            a family missing from the config map).
        regime_strategy_tilts : tuple of tuple of float
            One row per ``REGIME_LABELS`` entry, one clamped tilt per family (1.0 where the
            config map has none); unknown regime codes get 1.0, clamped
            (:meth:`strategy_tilt`).

        Raises
        ------
        GateConfigError
            Fields ``RiskConfig`` rejects, a regime map or the tilt table naming a label
            outside ``REGIME_LABELS`` (it could never apply: regimes travel as codes into
            them), or a family outside ``STRATEGY_FAMILIES``.
    """

    __slots__ = (
        "config",
        "default_budget_multiplier",
        "default_capacity_multiplier",
        "regime_budget_multipliers",
        "regime_capacity_multipliers",
        "regime_strategy_tilts",
        "strategy_budgets",
        "tables",
    )

    max_symbol_weight: _ConfigField[float] = _ConfigField()
    max_symbol_notional: _ConfigField[float | None] = _ConfigField()
    max_gross: _ConfigField[float] = _ConfigField()
    max_net: _ConfigField[float] = _ConfigField()
    max_gross_notional: _ConfigField[float | None] = _ConfigField()
    max_sector_gross: _ConfigField[float] = _ConfigField()
    beta_tolerance: _ConfigField[float | None] = _ConfigField()
    max_factor_exposure: _ConfigField[float | None] = _ConfigField()
    long_only: _ConfigField[bool] = _ConfigField()
    max_strategy_contribution: _ConfigField[float] = _ConfigField()
    strategy_capacity_spread_bps: _ConfigField[float | None] = _ConfigField()
    strategy_capacity_volatility: _ConfigField[float | None] = _ConfigField()
    strategy_capacity_adv_to_equity: _ConfigField[float | None] = _ConfigField()
    max_turnover: _ConfigField[float] = _ConfigField()
    max_participation: _ConfigField[float] = _ConfigField()
    slippage_budget_bps: _ConfigField[float] = _ConfigField()
    max_symbol_turnover: _ConfigField[float | None] = _ConfigField()
    symbol_slippage_budget_bps: _ConfigField[float | None] = _ConfigField()
    default_regime: _ConfigField[str] = _ConfigField()
    min_multiplier: _ConfigField[float] = _ConfigField()
    max_multiplier: _ConfigField[float] = _ConfigField()
    kill_switch: _ConfigField[bool] = _ConfigField()
    reduce_only: _ConfigField[bool] = _ConfigField()

    config: RiskConfig
    tables: LimitTables
    regime_budget_multipliers: tuple[float, ...]
    regime_capacity_multipliers: tuple[float, ...]
    default_budget_multiplier: float
    default_capacity_multiplier: float
    strategy_budgets: tuple[float, ...]
    regime_strategy_tilts: tuple[tuple[float, ...], ...]

    def __init__(self, config: RiskConfig | None = None, **fields: Any) -> None:
        if config is not None and fields:
            raise GateConfigError(
                f"RiskLimits takes a RiskConfig or keyword fields, not both (got {sorted(fields)})"
            )
        cfg = _config(fields) if config is None else config
        for name in _MAPS:
            unknown = sorted(set(getattr(cfg, name)) - set(REGIME_LABELS))
            if unknown:
                raise GateConfigError(
                    f"risk.{name} has label(s) {unknown} that are not regime labels: use "
                    f"{list(REGIME_LABELS)}; any other label gets "
                    f"risk.default_{name.split('_')[1]}_multiplier"
                )
        _check_families(cfg)
        lo, hi = cfg.min_multiplier, cfg.max_multiplier
        set_ = object.__setattr__
        set_(self, "config", cfg)
        for kind in ("budget", "capacity"):
            default = getattr(cfg, f"default_{kind}_multiplier")
            per_label = getattr(cfg, f"regime_{kind}_multipliers")
            values = (float(per_label.get(label, default)) for label in REGIME_LABELS)
            set_(self, f"regime_{kind}_multipliers", tuple(_clamp(v, lo, hi) for v in values))
            set_(self, f"default_{kind}_multiplier", _clamp(default, lo, hi))
        base = cfg.max_strategy_contribution
        set_(self, "strategy_budgets", tuple(
            float(cfg.strategy_budgets.get(family, base)) for family in STRATEGY_FAMILIES
        ))  # fmt: skip
        tilts = cfg.regime_strategy_tilts
        set_(self, "regime_strategy_tilts", tuple(
            tuple(_clamp(tilts.get(label, {}).get(f, 1.0), lo, hi) for f in STRATEGY_FAMILIES)
            for label in REGIME_LABELS
        ))  # fmt: skip
        set_(self, "tables", LimitTables.build(self))

    @classmethod
    def from_config(cls, cfg: RiskConfig) -> RiskLimits:
        """The limits of the ``risk`` config section (validated there; used as is)."""
        return cls(cfg)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"RiskLimits is read-only (setting {name!r}): build another with "
            "RiskLimits.replace(...) or RiskLimits.from_config(...)"
        )

    @staticmethod
    def _lookup(per_label: tuple[float, ...], default: float, regime: np.ndarray) -> np.ndarray:
        codes = np.asarray(regime)
        if codes.dtype.kind not in "iu":
            raise RequestError(
                f"regime codes have dtype {codes.dtype}; pass integer codes into REGIME_LABELS "
                "(allocgym.regime.regime_code), -1 for an unknown label"
            )
        codes = codes.astype(np.int64)
        table = np.array((*per_label, default), dtype=np.float64)
        return table[np.where((codes >= 0) & (codes < N_LABELS), codes, N_LABELS)]

    def budget_multiplier(self, regime: np.ndarray) -> np.ndarray:
        """Clamped gross-budget multiplier per portfolio.

        Parameters
        ----------
        regime : ndarray of int, shape (n_envs,)
            Codes into ``REGIME_LABELS``; any other value uses the default multiplier.

        Returns
        -------
        ndarray, shape (n_envs,)
        """
        return self._lookup(self.regime_budget_multipliers, self.default_budget_multiplier, regime)

    def capacity_multiplier(self, regime: np.ndarray) -> np.ndarray:
        """Clamped symbol-capacity multiplier per portfolio (symbol caps, participation).

        Parameters
        ----------
        regime : ndarray of int, shape (n_envs,)

        Returns
        -------
        ndarray, shape (n_envs,)
        """
        return self._lookup(
            self.regime_capacity_multipliers, self.default_capacity_multiplier, regime
        )

    def strategy_tilt(self, regime: np.ndarray) -> np.ndarray:
        """Clamped regime tilt of every strategy family per portfolio.

        Parameters
        ----------
        regime : ndarray of int, shape (n_envs,)
            Codes into ``REGIME_LABELS``; any other value gets no tilt (1.0, clamped).

        Returns
        -------
        ndarray, shape (n_envs, len(STRATEGY_FAMILIES))
        """
        lo, hi = self.min_multiplier, self.max_multiplier
        columns = zip(*self.regime_strategy_tilts, strict=True)
        default = _clamp(1.0, lo, hi)
        return np.stack([self._lookup(col, default, regime) for col in columns], axis=1)

    @property
    def default_regime_code(self) -> int:
        """Code of ``default_regime`` (``UNKNOWN_REGIME`` when it is not a known label)."""
        return regime_code(self.default_regime)

    def regime_codes(self, regime: np.ndarray | None, n_envs: int) -> np.ndarray:
        """Regime codes to gate with: ``regime`` as given, or ``default_regime`` when ``None``.

        Returns
        -------
        ndarray of int64, shape (n_envs,)
        """
        if regime is None:
            return np.full(n_envs, self.default_regime_code, dtype=np.int64)
        return np.broadcast_to(np.asarray(regime, dtype=np.int64), (n_envs,)).copy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the effective limits, in ``RiskConfig`` field order (maps as
        ``label -> clamped multiplier``, default multipliers clamped, base budgets as
        ``family -> budget``, tilts as ``label -> family -> clamped tilt``)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in RiskConfig.model_fields}
        for name in _MAPS:
            out[name] = dict(zip(REGIME_LABELS, getattr(self, name), strict=True))
        out["strategy_budgets"] = dict(zip(STRATEGY_FAMILIES, self.strategy_budgets, strict=True))
        out["regime_strategy_tilts"] = {
            label: dict(zip(STRATEGY_FAMILIES, row, strict=True))
            for label, row in zip(REGIME_LABELS, self.regime_strategy_tilts, strict=True)
        }
        return out

    def replace(self, **changes: Any) -> RiskLimits:
        """A copy with ``changes`` (``RiskConfig`` fields) applied and validated."""
        return RiskLimits(**{**self.config.model_dump(), **changes})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RiskLimits):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        return f"RiskLimits({self.config!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (RiskLimits, (self.config,))
