"""Every runtime parameter object mirrors its configuration section field by field.

The frozen pydantic sections are the one declaration of each setting; the code reads them
directly except on the hot path, where a few ``*Params`` dataclasses (execution, costs,
regime, intents) are typed runtime views built by ``from_config``. For each view this checks
that (1) every field is accounted for: it has a same-named field in its section or is
listed in ``DERIVED`` with the section field(s) it comes from, (2) the view built from the
default configuration equals the view's own defaults (the two declarations of a default
cannot drift apart), and (3) changing a section field changes the view (the field is
actually read, not left at its default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from allocgym.baselines.registry import baseline_names, build_baselines
from allocgym.config import AllocgymConfig
from allocgym.costs import CostModel
from allocgym.errors import AllocgymError
from allocgym.execution import ExecutionParams
from allocgym.intents import IntentParams
from allocgym.regime import RegimeParams

# name -> (view class, section of the config, build the view from the whole config)
MIRRORS: dict[str, tuple[type, Callable[[AllocgymConfig], BaseModel], Callable[..., Any]]] = {
    "execution": (ExecutionParams, lambda c: c.execution, lambda c: ExecutionParams.from_config(c.execution)),
    "intents": (IntentParams, lambda c: c.features, lambda c: IntentParams.from_config(c.features)),
    "regime": (RegimeParams, lambda c: c.regime, lambda c: RegimeParams.from_config(c.regime)),
    "costs": (CostModel, lambda c: c.costs, lambda c: CostModel.from_config(c.costs)),
}  # fmt: skip

_CONSTANT = "a numerical constant of the method, not a setting"
DERIVED: dict[str, dict[str, str]] = {
    # view field -> where it comes from, when it is not the same-named section field as is
    "intents": {
        "trend_horizon": _CONSTANT,
        "mean_reversion_horizon": _CONSTANT,
        "defensive_horizon": _CONSTANT,
    },
}


def _fields(view: type) -> list[str]:
    return [f.name for f in dataclasses.fields(view) if f.init]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) or isinstance(b, dict):
        return dict(a or {}) == dict(b or {}) if (a is None) == (b is None) else False
    return bool(a == b)


@pytest.mark.parametrize("name", sorted(MIRRORS))
def test_every_view_field_has_its_section_field(name: str) -> None:
    view, section, _ = MIRRORS[name]
    fields = type(section(AllocgymConfig())).model_fields
    derived = DERIVED.get(name, {})
    missing = [f for f in _fields(view) if f not in fields and f not in derived]
    assert not missing, f"{view.__name__} fields without a config field: {missing}"


@pytest.mark.parametrize("name", sorted(MIRRORS))
def test_default_view_equals_the_default_section(name: str) -> None:
    view, section, build = MIRRORS[name]
    cfg = AllocgymConfig()
    built, sec = build(cfg), section(cfg)
    derived = DERIVED.get(name, {})
    shared = [f for f in _fields(view) if f in type(sec).model_fields and f not in derived]
    for field in shared:
        assert _same(getattr(built, field), getattr(sec, field)), (name, field)
    own_defaults = all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(view)
        if f.init
    )
    if own_defaults:  # the view's own defaults are the section's
        bare = view()
        for field in _fields(view):
            assert _same(getattr(bare, field), getattr(built, field)), (
                f"{view.__name__}().{field} = {getattr(bare, field)!r} but the default "
                f"config gives {getattr(built, field)!r}"
            )


def _perturbed(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1]
    if isinstance(value, float):
        return [value * 0.5 + 1e-3, value * 1.5 + 1e-3, value * 0.5]
    return []


@pytest.mark.parametrize("name", sorted(MIRRORS))
def test_each_numeric_section_field_reaches_the_view(name: str) -> None:
    view, section, build = MIRRORS[name]
    cfg = AllocgymConfig()
    sec = section(cfg)
    checked = 0
    derived = DERIVED.get(name, {})
    for field in _fields(view):
        if field not in type(sec).model_fields or field in derived:
            continue
        for value in _perturbed(getattr(sec, field)):
            try:  # through validation, so the perturbed value is a legal setting
                changed_sec = sec.model_validate({**sec.model_dump(), field: value})
            except ValueError:
                continue
            changed = _replace_section(cfg, section, changed_sec)
            try:
                built = build(changed)
            except AllocgymError:
                continue  # legal alone, refused in combination: try another value
            assert _same(getattr(built, field), value), (name, field, value)
            checked += 1
            break
    numeric = [f for f in _fields(view) if _perturbed(getattr(sec, f, None))]
    assert checked >= min(1, len(numeric)), f"no field of {name} could be perturbed"


def _replace_section(
    cfg: AllocgymConfig, section: Callable[[AllocgymConfig], BaseModel], new: BaseModel
) -> AllocgymConfig:
    """``cfg`` with the section ``section(cfg)`` replaced by ``new`` (found by identity)."""
    target = section(cfg)
    for top_name in type(cfg).model_fields:
        top = getattr(cfg, top_name)
        if top is target:
            return cfg.model_copy(update={top_name: new})
        if isinstance(top, BaseModel):
            for sub_name in type(top).model_fields:
                if getattr(top, sub_name) is target:
                    return cfg.model_copy(update={top_name: top.model_copy(update={sub_name: new})})
    raise AssertionError(f"section {type(target).__name__} not found in the config")


def test_the_baselines_read_their_config_sections_themselves() -> None:
    """No runtime view between a baseline and its configuration: every allocator the
    registry builds holds its ``baselines`` sub-sections, limits resolved against ``risk``."""
    cfg = AllocgymConfig()
    b = cfg.baselines.within(cfg.risk)
    allocs = build_baselines(cfg, baseline_names("all"))
    held = {
        ("qp", "params"): b.qp,
        ("min_variance", "params"): b.classic,
        ("max_sharpe", "params"): b.classic,
        ("min_cvar", "params"): b.classic,
        ("min_cvar", "cvar"): b.min_cvar,
        ("pareto", "params"): b.classic,
        ("pareto", "pareto"): b.pareto,
        ("risk_budgeting", "params"): b.classic,
        ("risk_budgeting", "budget"): b.risk_budget,
        ("black_litterman", "params"): b.classic,
        ("black_litterman", "bl"): b.black_litterman,
        ("fractional_kelly", "params"): b.classic,
        ("fractional_kelly", "kelly"): b.kelly,
        ("factor_risk_parity", "params"): b.classic,
        ("factor_risk_parity", "factors"): b.factor_model,
        ("cluster_barbell", "params"): b.barbell,
        ("regime_switch", "params"): b.regime_switch,
    }
    for (name, attr), section in held.items():
        got = getattr(allocs[name], attr)
        assert type(got) is type(section) and got == section, (name, attr, got)
    # the limits they run with are the risk section's (nothing left unset)
    assert (b.qp.per_name_cap, b.classic.max_weight, b.kelly.max_gross) == (
        cfg.risk.max_symbol_weight, cfg.risk.max_symbol_weight, cfg.risk.max_gross,
    )  # fmt: skip
