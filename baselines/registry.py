"""Registered baselines by name: one table that evaluation, training and the env share.

``build_baselines(cfg, names)`` builds allocators from ``cfg.baselines``; the names are
what ``--baselines`` and ``env.tilt_prior`` accept. The allocators are imported lazily
(several import cvxpy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

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


def _builders() -> dict[str, Callable[[BaselinesConfig], Allocator]]:
    """Registered baselines (imported lazily: the baselines import cvxpy)."""
    from allocgym.baselines.black_litterman import BlackLitterman
    from allocgym.baselines.classic import (
        EqualWeight,
        FractionalKelly,
        InverseVolatility,
        MaximumSharpe,
        MinimumVariance,
        RegimeSwitch,
    )
    from allocgym.baselines.cluster_barbell import ClusterBarbell
    from allocgym.baselines.cvar import MinimumCVaR
    from allocgym.baselines.engine import OptimizationEngine
    from allocgym.baselines.factor_risk_parity import FactorRiskParity
    from allocgym.baselines.greedy import GreedyRotation
    from allocgym.baselines.hrp import HRP
    from allocgym.baselines.pareto import ParetoAllocator
    from allocgym.baselines.qp import QPAllocator
    from allocgym.baselines.risk_budgeting import RiskBudgeting

    return {
        "equal_weight": EqualWeight.from_config,
        "inverse_volatility": InverseVolatility.from_config,
        "hrp": lambda b: HRP.from_config(b.hrp),
        "qp": lambda b: QPAllocator.from_config(b.qp, hrp=HRP.from_config(b.hrp)),
        "greedy": lambda b: GreedyRotation.from_config(b.greedy),
        "min_variance": MinimumVariance.from_config,
        "max_sharpe": MaximumSharpe.from_config,
        "risk_budgeting": RiskBudgeting.from_config,
        "min_cvar": MinimumCVaR.from_config,
        "black_litterman": BlackLitterman.from_config,
        "fractional_kelly": FractionalKelly.from_config,
        "regime_switch": RegimeSwitch.from_config,
        "cluster_barbell": ClusterBarbell.from_config,
        "pareto": ParetoAllocator.from_config,
        "factor_risk_parity": FactorRiskParity.from_config,
        "engine": OptimizationEngine.from_config,
    }


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
    builders = _builders()
    section = cfg.baselines.within(cfg.risk)
    spec = names if isinstance(names, str) else list(names)  # "hrp" is a name, not 3 letters
    return {n: builders[n](section) for n in baseline_names(spec)}
