"""Search spaces of ``allocgym sweep``: dotted config keys -> distributions, checked early.

A search-space file names config values by their dotted keys (``train.learning_rate``) and
gives each one distribution. :func:`load_space` refuses, before anything starts, a key
that is not a config value (naming the dotted key and the closest real one), a malformed
distribution, an unknown metric and a starting point outside the space;
:meth:`SearchSpace.check_against` refuses bounds or choices the config itself rejects.

File format (``configs/sweep/ppo.yaml``)::

    metric: sharpe                  # agent validation metric (see VALIDATION_METRICS)
    space:
      train.learning_rate: {loguniform: [1.0e-4, 3.0e-3]}
      train.n_epochs: {int: [3, 10]}            # bounds included
      train.gamma: {uniform: [0.8, 0.99]}
      train.asset_set.encoder: {choice: [[32, 32], [64, 64]]}
    points:                         # optional: configurations tried first
      - {train.learning_rate: 5.0e-4, ...}
    asha:                           # optional: ASHA early stopping
      grace_period: 20480           # steps before a trial can be stopped (default eval_freq)
      reduction_factor: 2           # keep the best 1/2 at each rung

This module imports neither Ray nor torch: the CLI validates a space before starting Ray.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from allocgym.config import AllocgymConfig, config_from_dict, load_yaml
from allocgym.errors import ConfigError

__all__ = [
    "ASHA_CLOCK_KEYS",
    "DISTRIBUTIONS",
    "FIXED_KEYS",
    "VALIDATION_METRICS",
    "Param",
    "SearchSpace",
    "load_space",
    "space_from_dict",
]

VALIDATION_METRICS: dict[str, str] = {
    "sharpe": "max",
    "total_return": "max",
    "reward": "max",
    "cvar": "min",
    "max_drawdown": "min",
    "turnover": "min",
    "costs": "min",
}
"""Agent validation metrics a sweep can optimise, with their direction (mean over the
validation episodes, as ``evaluations.jsonl`` holds them)."""

DISTRIBUTIONS: tuple[str, ...] = ("uniform", "loguniform", "int", "logint", "choice")
"""Distribution kinds of a search-space entry (``int`` / ``logint`` include both bounds)."""

ASHA_CLOCK_KEYS: tuple[str, ...] = ("train.total_timesteps", "train.eval_freq")
"""Config keys ASHA's rungs are measured in: not searchable with ``--scheduler asha``."""

FIXED_KEYS: dict[str, str] = {
    "data": "the market and its train/validation/test dates",
    "env.split": "the bars the agent trains on",
    "train.eval_split": "the bars its trials are scored on",
    "train.eval_episodes": "how many validation windows a trial's score averages",
    "env.episode_length": "the length of the validation windows a trial is scored on",
    "evaluation": "how the chosen agent is tested, not how it is trained",
}
"""Config keys (and sections) a search space cannot vary, with what they set: trials that
trained or were scored on different data, dates or validation windows would be ranked
against each other (a non-learning 1/N scored -0.087, -0.116 or -0.213 by the episode
length and count alone), and one trial could select on bars that are another's test
split."""

_SPACE_KEYS = ("metric", "space", "points", "asha")
_ASHA_KEYS = ("grace_period", "reduction_factor")


def _check_key(key: str) -> None:
    """Refuse a dotted key that is not a config value, or one of :data:`FIXED_KEYS` (the
    message names the key)."""
    parts = key.split(".")
    for fixed, what in FIXED_KEYS.items():
        if key == fixed or key.startswith(fixed + "."):
            raise ConfigError(
                f"search space key {key!r} cannot vary: {fixed} sets {what}, which every "
                "trial of a sweep must share; set it in the base config (--config / --set)"
            )
    model: type[BaseModel] = AllocgymConfig
    for depth, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            where = ".".join(parts[:depth]) or "the config"
            close = difflib.get_close_matches(part, list(fields), n=1)
            hint = f" (did you mean {'.'.join([*parts[:depth], close[0]])}?)" if close else ""
            raise ConfigError(
                f"search space key {key!r} is not a config key: {where} has no {part!r}{hint}"
            )
        annotation = fields[part].annotation
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        last = depth == len(parts) - 1
        if is_section and last:
            raise ConfigError(
                f"search space key {key!r} is a config section: name one of its values, e.g. "
                f"{key}.{next(iter(annotation.model_fields))}"
            )
        if not is_section:
            rest = parts[depth + 1 :]
            mapping = "Mapping" in str(annotation)
            if rest and not (mapping and len(rest) == 1):
                raise ConfigError(
                    f"search space key {key!r}: {'.'.join(parts[: depth + 1])} is a value, "
                    "not a section"
                )
            return
        model = annotation


def _set(tree: dict[str, Any], key: str, value: Any) -> None:
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


@dataclass(frozen=True)
class Param:
    """One searched config key.

    Attributes
    ----------
    key : str
        Dotted config key, e.g. ``train.learning_rate``.
    kind : {"uniform", "loguniform", "int", "logint", "choice"}
    low, high : float or None
        Bounds of the numeric kinds (both included for ``int`` / ``logint``).
    values : tuple or None
        Candidates of ``choice`` (any YAML values; lists such as network sizes too).
    """

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    values: tuple[Any, ...] | None = None

    @property
    def encoded(self) -> bool:
        """True when the choice values travel as JSON text (Optuna takes scalars only)."""
        return self.kind == "choice" and not all(_scalar(v) for v in self.values or ())

    def domain(self) -> Any:
        """The Ray Tune search domain."""
        from ray import tune

        if self.kind == "choice":
            assert self.values is not None
            vals = [json.dumps(v) for v in self.values] if self.encoded else list(self.values)
            return tune.choice(vals)
        assert self.low is not None and self.high is not None
        if self.kind == "uniform":
            return tune.uniform(self.low, self.high)
        if self.kind == "loguniform":
            return tune.loguniform(self.low, self.high)
        if self.kind == "int":  # Tune's randint excludes its upper bound
            return tune.randint(int(self.low), int(self.high) + 1)
        return tune.lograndint(int(self.low), int(self.high) + 1)

    def encode(self, value: Any) -> Any:
        """A config value as the search space carries it."""
        return json.dumps(value) if self.encoded else value

    def decode(self, value: Any) -> Any:
        """A sampled value as the config takes it."""
        if self.encoded:
            return json.loads(value)
        if self.kind in ("int", "logint"):
            return int(value)
        if self.kind in ("uniform", "loguniform"):
            return float(value)
        return value

    def candidates(self) -> list[Any]:
        """Values that must each give a valid config (bounds, every choice)."""
        if self.kind == "choice":
            return list(self.values or ())
        if self.kind in ("int", "logint"):
            return [int(self.low or 0), int(self.high or 0)]
        return [self.low, self.high]

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in (self.values or ())
        try:
            v = float(value)
        except (TypeError, ValueError):
            return False
        assert self.low is not None and self.high is not None
        if self.kind in ("int", "logint") and v != int(v):
            return False
        return self.low <= v <= self.high

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {self.kind: list(self.values or ())}
        return {self.kind: [self.low, self.high]}


def _param(key: str, spec: Any) -> Param:
    _check_key(key)
    if not (isinstance(spec, Mapping) and len(spec) == 1):
        raise ConfigError(
            f"search space {key}: {spec!r} is not one distribution; write e.g. "
            f"{{loguniform: [1.0e-4, 1.0e-3]}} or {{choice: [a, b]}} (kinds: {list(DISTRIBUTIONS)})"
        )
    ((kind, arg),) = spec.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(
            f"search space {key}: unknown distribution {kind!r}: use one of {list(DISTRIBUTIONS)}"
        )
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            raise ConfigError(f"search space {key}: choice needs a non-empty list of values")
        return Param(key, kind, values=tuple(arg))
    if not (isinstance(arg, list) and len(arg) == 2):
        raise ConfigError(f"search space {key}: {kind} needs [low, high], got {arg!r}")
    try:
        low, high = float(arg[0]), float(arg[1])
    except (TypeError, ValueError):
        raise ConfigError(f"search space {key}: bounds {arg!r} are not numbers") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"search space {key}: need finite low < high, got {arg!r}")
    if kind in ("int", "logint") and (low != int(low) or high != int(high)):
        raise ConfigError(f"search space {key}: {kind} bounds must be integers, got {arg!r}")
    if kind.startswith("log") and low <= 0:
        raise ConfigError(f"search space {key}: {kind} needs low > 0, got {arg!r}")
    return Param(key, kind, low=low, high=high)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space (see the module docstring for the file format).

    Attributes
    ----------
    params : tuple of Param
    metric : str
        Agent validation metric to optimise (a key of :data:`VALIDATION_METRICS`).
    points : tuple of dict
        Configurations (dotted key -> value, every searched key) tried first.
    grace_period : int or None
        Steps before ASHA may stop a trial; None = the base config's ``train.eval_freq``.
    reduction_factor : float
        ASHA keeps the best ``1 / reduction_factor`` of the trials at each rung.
    """

    params: tuple[Param, ...]
    metric: str = "sharpe"
    points: tuple[dict[str, Any], ...] = ()
    grace_period: int | None = None
    reduction_factor: float = 2.0

    @property
    def mode(self) -> str:
        """``max`` or ``min``: the direction of :attr:`metric`."""
        return VALIDATION_METRICS[self.metric]

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def param_space(self) -> dict[str, Any]:
        """``{dotted key: Tune domain}``."""
        return {p.key: p.domain() for p in self.params}

    def encoded_points(self) -> list[dict[str, Any]]:
        by_key = {p.key: p for p in self.params}
        return [{k: by_key[k].encode(v) for k, v in pt.items()} for pt in self.points]

    def apply(self, base: Mapping[str, Any], sample: Mapping[str, Any]) -> AllocgymConfig:
        """The config of one trial: ``base`` (a config tree) with the sampled values."""
        tree = copy.deepcopy(dict(base))
        for p in self.params:
            if p.key in sample:
                _set(tree, p.key, p.decode(sample[p.key]))
        return config_from_dict(tree)

    def values(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Decoded values of a sample (for tables)."""
        return {p.key: p.decode(sample[p.key]) for p in self.params if p.key in sample}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric,
                               "space": {p.key: p.to_dict() for p in self.params}}  # fmt: skip
        if self.points:
            out["points"] = [dict(p) for p in self.points]
        asha: dict[str, Any] = {"reduction_factor": self.reduction_factor}
        if self.grace_period is not None:
            asha["grace_period"] = self.grace_period
        out["asha"] = asha
        return out

    def check_against(self, base: Mapping[str, Any], scheduler: str) -> None:
        """Refuse values the base config cannot take, before anything starts.

        Each bound and each choice is applied alone to ``base``; a value pydantic rejects is
        named with its key. With ASHA, the keys its rungs are measured in cannot vary.
        """
        if scheduler == "asha":
            clock = [k for k in self.keys if k in ASHA_CLOCK_KEYS]
            if clock:
                raise ConfigError(
                    f"search space key {clock[0]!r} sets the steps ASHA's rungs are measured "
                    "in: remove it from the space or pass --scheduler none"
                )
        for p in self.params:
            for value in p.candidates():
                tree = copy.deepcopy(dict(base))
                _set(tree, p.key, value)
                try:
                    config_from_dict(tree)
                except ConfigError as err:
                    detail = " ".join(str(err).split("\n")[1:]).strip() or str(err)
                    raise ConfigError(
                        f"search space {p.key} = {value!r} is rejected by the config: {detail}"
                    ) from None


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file.

    Raises
    ------
    ConfigError
        Missing file, unknown top-level or ASHA key, a key that is not a config key (named
        in dotted form), a malformed distribution, an unknown metric, a point outside the
        space.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"search space file {str(p)!r} does not exist: pass an existing YAML")
    data = load_yaml(p.read_text()) or {}
    return space_from_dict(data, source=str(p))


def space_from_dict(data: Any, source: str = "search space") -> SearchSpace:
    """:func:`load_space` on parsed YAML."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping with a 'space' key")
    extra = sorted(set(data) - set(_SPACE_KEYS))
    if extra:
        raise ConfigError(f"{source}: unknown keys {extra}; a search space has {list(_SPACE_KEYS)}")
    raw = data.get("space")
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            f"{source}: 'space' must map dotted config keys to distributions, e.g. "
            "train.learning_rate: {loguniform: [1.0e-4, 1.0e-3]}"
        )
    params = tuple(_param(str(k), v) for k, v in raw.items())
    metric = str(data.get("metric", "sharpe"))
    if metric not in VALIDATION_METRICS:
        raise ConfigError(
            f"{source}: metric {metric!r} is not a validation metric: use one of "
            f"{list(VALIDATION_METRICS)}"
        )
    by_key = {p.key: p for p in params}
    points: list[dict[str, Any]] = []
    for k, pt in enumerate(data.get("points") or []):
        if not isinstance(pt, Mapping) or set(pt) != set(by_key):
            raise ConfigError(
                f"{source}: points[{k}] must give a value for every searched key {sorted(by_key)}"
            )
        for key, value in pt.items():
            if not by_key[key].contains(value):
                raise ConfigError(
                    f"{source}: points[{k}] {key} = {value!r} is outside its distribution "
                    f"{by_key[key].to_dict()}"
                )
        points.append(dict(pt))
    asha = data.get("asha") or {}
    if not isinstance(asha, Mapping) or set(asha) - set(_ASHA_KEYS):
        raise ConfigError(f"{source}: 'asha' takes {list(_ASHA_KEYS)}")
    grace = asha.get("grace_period")
    if grace is not None and (not isinstance(grace, int) or grace < 1):
        raise ConfigError(f"{source}: asha.grace_period = {grace!r} must be a positive integer")
    rf = float(asha.get("reduction_factor", 2.0))
    if not rf > 1:
        raise ConfigError(f"{source}: asha.reduction_factor = {rf!r} must be > 1")
    return SearchSpace(params, metric, tuple(points), grace, rf)
