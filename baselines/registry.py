"""Registered baselines by name: one table that evaluation, training and the env share.

``build_baselines(cfg, names)`` builds allocators from ``cfg.baselines``; the names are
what ``--baselines`` and ``env.tilt_prior`` accept. The allocators are imported lazily
(several import cvxpy).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from allocgym.allocator import Allocator
from allocgym.config import AllocgymConfig, BaselinesConfig
from allocgym.errors import ConfigError

__all__ = ["ALL_BASELINES", "BASELINE_ALIASES", "baseline_names", "build_baselines"]


BASELINE_ALIASES: dict[str, str] = {
    "1/n": "equal_weight",
    "ew": "equal_weight",
    "inverse_vol": "inverse_volatility",
    "ivol": "inverse_volatility",
    "min_var": "min_variance",
    "minvar": "min_variance",
    "risk_parity": "risk_budgeting",
    "erc": "risk_budgeting",
    "kelly": "fractional_kelly",
    "bl": "black_litterman",
    "barbell": "cluster_barbell",
    "frp": "factor_risk_parity",
}
"""Short names accepted by ``--baselines`` for the registered baseline names."""


def _cls(module: str, name: str) -> Any:
    """``allocgym.baselines.<module>.<name>``, imported when a baseline is built (several
    import cvxpy, which a serving process with an HRP or 1/N prior does not need)."""
    return getattr(importlib.import_module(f"allocgym.baselines.{module}"), name)


_BUILDERS: dict[str, Callable[[BaselinesConfig], Allocator]] = {
    "equal_weight": lambda b: _cls("classic", "EqualWeight").from_config(b),
    "inverse_volatility": lambda b: _cls("classic", "InverseVolatility").from_config(b),
    "hrp": lambda b: _cls("hrp", "HRP").from_config(b.hrp),
    "qp": lambda b: _cls("qp", "QPAllocator").from_config(
        b.qp, hrp=_cls("hrp", "HRP").from_config(b.hrp)
    ),
    "greedy": lambda b: _cls("greedy", "GreedyRotation").from_config(b.greedy),
    "min_variance": lambda b: _cls("classic", "MinimumVariance").from_config(b),
    "max_sharpe": lambda b: _cls("classic", "MaximumSharpe").from_config(b),
    "risk_budgeting": lambda b: _cls("risk_budgeting", "RiskBudgeting").from_config(b),
    "min_cvar": lambda b: _cls("cvar", "MinimumCVaR").from_config(b),
    "black_litterman": lambda b: _cls("black_litterman", "BlackLitterman").from_config(b),
    "fractional_kelly": lambda b: _cls("classic", "FractionalKelly").from_config(b),
    "regime_switch": lambda b: _cls("classic", "RegimeSwitch").from_config(b),
    "cluster_barbell": lambda b: _cls("cluster_barbell", "ClusterBarbell").from_config(b),
    "pareto": lambda b: _cls("pareto", "ParetoAllocator").from_config(b),
    "factor_risk_parity": lambda b: _cls("factor_risk_parity", "FactorRiskParity").from_config(b),
    "engine": lambda b: _cls("engine", "OptimizationEngine").from_config(b),
}
"""Registered baselines by name, each built from the ``baselines`` section."""


ALL_BASELINES: tuple[str, ...] = (
    "equal_weight", "inverse_volatility", "hrp", "qp", "greedy", "min_variance",
    "max_sharpe", "risk_budgeting", "min_cvar", "black_litterman", "fractional_kelly",
    "regime_switch", "cluster_barbell", "pareto", "factor_risk_parity",
)  # fmt: skip
"""What ``all`` expands to (``engine`` is left out: it runs ``greedy`` by default)."""


def baseline_names(spec: str | Iterable[str] | None) -> tuple[str, ...]:
    """Resolve ``"all"``, ``"hrp,qp"``, aliases (``1/n``, ``barbell`` ...) to baseline names.

    Parameters
    ----------
    spec : str, iterable of str, or None
        Comma-separated text or names; ``None`` or ``"none"``/``""`` = no baselines.

    Returns
    -------
    tuple of str
        Registered names, in the order given, without duplicates.

    Raises
    ------
    ConfigError
        An unknown name (the message lists the known ones).
    """
    if spec is None:
        return ()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    known = set(ALL_BASELINES) | {"engine"}
    out: list[str] = []
    for raw in items:
        if not isinstance(raw, str):
            raise ConfigError(
                f"baseline {raw!r} is a {type(raw).__name__}: name baselines by text, e.g. "
                "['hrp', 'qp'] or 'hrp,qp'"
            )
        name = raw.strip().lower()
        if name in ("", "none"):
            continue
        expanded = ALL_BASELINES if name == "all" else (BASELINE_ALIASES.get(name, name),)
        for n in expanded:
            if n not in known:
                raise ConfigError(
                    f"baseline {raw.strip()!r} is unknown: use 'all' or a comma-separated list "
                    f"of {', '.join(sorted(known | set(BASELINE_ALIASES)))}"
                )
            if n not in out:
                out.append(n)
    return tuple(out)


def build_baselines(cfg: AllocgymConfig, names: Iterable[str] | str) -> dict[str, Allocator]:
    """Baseline allocators built from ``cfg.baselines``, keyed by name (see :func:`baseline_names`:
    a list of names or one comma-separated string).

    The limits a baseline shares with the risk gates come from ``cfg.risk``
    (``BaselinesConfig.within``): a baseline optimises inside the limits it is gated by.
    """
    section = cfg.baselines.within(cfg.risk)
    spec = names if isinstance(names, str) else list(names)  # "hrp" is a name, not 3 letters
    return {n: _BUILDERS[n](section) for n in baseline_names(spec)}
