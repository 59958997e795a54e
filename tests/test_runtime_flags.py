"""The TRADING_ALLOCATOR_* runtime flags at their edges: which values each variable takes,
where they are read from, and that ``loosened`` names every limit a flag widens
(written from the survivors of a mutation run over ``serving/flags.py``)."""

from __future__ import annotations

import json
import warnings

import pytest

from allocgym.config import RiskConfig
from allocgym.errors import GateConfigError
from allocgym.regime import REGIME_LABELS
from allocgym.serving.flags import (
    ENV_ENABLED,
    RuntimeFlags,
    allocator_enabled,
    limits_from_env,
    loosened,
)

P = "TRADING_ALLOCATOR_"


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("MIN_MULTIPLIER", "min_multiplier"),
        ("DEFAULT_BUDGET_MULTIPLIER", "default_budget_multiplier"),
        ("DEFAULT_CAPACITY_MULTIPLIER", "default_capacity_multiplier"),
    ],
)
def test_a_multiplier_may_be_zero_not_negative_nor_infinite(name: str, field: str) -> None:
    """0 switches a multiplier's limits off (a valid tightening); below 0, NaN and inf are
    refused with the rule a multiplier follows."""
    assert getattr(limits_from_env(RiskConfig(), {P + name: "0"}), field) == 0.0
    for raw in ("-0.1", "nan", "inf", "-inf"):
        with pytest.raises(
            GateConfigError, match=rf"{P}{name}='{raw}' is not a finite number >= 0"
        ):
            limits_from_env(RiskConfig(), {P + name: raw})


@pytest.mark.parametrize("name", ["MAX_SYMBOL_PCT_EQUITY", "MAX_SYMBOL_NOTIONAL"])
def test_a_symbol_cap_must_be_positive(name: str) -> None:
    for raw in ("0", "-1"):
        with pytest.raises(GateConfigError, match=rf"{P}{name}='{raw}' is not a finite number > 0"):
            limits_from_env(RiskConfig(), {P + name: raw})


@pytest.mark.parametrize("raw", ["none", "NULL", "Off", " null "])
def test_every_spelling_of_no_notional_cap(raw: str) -> None:
    sealed = RiskConfig(max_symbol_notional=1e6)
    assert limits_from_env(sealed, {P + "MAX_SYMBOL_NOTIONAL": raw}).max_symbol_notional is None


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("-0.5", "-0.5"),
        ("NaN", "nan"),  # json.loads reads NaN and Infinity
        ("Infinity", "inf"),
        ("true", "True"),  # a bool is not a multiplier
        ('"0.5"', "'0.5'"),
    ],
)
def test_a_multiplier_map_entry_must_be_a_finite_number_at_least_zero(
    value: str, shown: str
) -> None:
    var = P + "REGIME_BUDGET_MULTIPLIERS"
    with pytest.raises(GateConfigError) as err:
        limits_from_env(RiskConfig(), {var: '{"trend": ' + value + "}"})
    assert str(err.value) == f"{var}['trend'] = {shown}: must be a finite number >= 0"


def test_a_multiplier_map_may_cut_a_regime_to_zero() -> None:
    var = P + "REGIME_CAPACITY_MULTIPLIERS"
    cfg = limits_from_env(RiskConfig(), {var: '{"high_volatility": 0}'})
    assert dict(cfg.regime_capacity_multipliers) == {"high_volatility": 0.0}


def test_a_bad_map_label_names_the_variable() -> None:
    var = P + "REGIME_CAPACITY_MULTIPLIERS"
    with pytest.raises(GateConfigError, match=rf"^{var} has label 'calm', not a regime label"):
        limits_from_env(RiskConfig(), {var: '{"calm": 1}'})


def test_flags_that_contradict_each_other_name_the_variables_and_the_rule() -> None:
    env = {P + "MIN_MULTIPLIER": "3", P + "MAX_MULTIPLIER": "1"}
    with pytest.raises(GateConfigError) as err:
        limits_from_env(RiskConfig(), env)
    assert str(err.value).startswith(
        f"TRADING_ALLOCATOR_* overrides {list(env)} give invalid risk limits "
        "(Value error, min_multiplier 3.0 > max_multiplier 1.0)"
    )


def test_without_a_mapping_the_process_environment_is_read(monkeypatch) -> None:
    monkeypatch.setenv(ENV_ENABLED, "yes")
    monkeypatch.setenv(P + "MAX_SYMBOL_PCT_EQUITY", "0.04")
    assert allocator_enabled() is True
    assert limits_from_env(RiskConfig()).max_symbol_weight == 0.04
    flags = RuntimeFlags.from_env(RiskConfig())
    assert flags.enabled and flags.risk.max_symbol_weight == 0.04
    assert flags.variables == {ENV_ENABLED: "yes", P + "MAX_SYMBOL_PCT_EQUITY": "0.04"}


def test_only_unknown_allocator_variables_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # HOME, PATH... are none of the allocator's business
        limits_from_env(RiskConfig(), {"HOME": "/root", "PATH": "/bin", ENV_ENABLED: "true"})
    with pytest.warns(UserWarning, match=r"\['TRADING_ALLOCATOR_MAX_GROSS'\]"):
        limits_from_env(RiskConfig(), {P + "MAX_GROSS": "0.5", "HOME": "/root"})


def test_a_flag_between_the_sealed_limit_and_the_default_is_refused() -> None:
    """The sealed bundle is the ceiling, not the package defaults: a 0.08 symbol cap
    tightens the default 0.10 but loosens a bundle sealed at 0.05."""
    sealed = RiskConfig(max_symbol_weight=0.05)
    with pytest.raises(GateConfigError, match=r"SYMBOL_CAP in trend 0.08 > sealed 0.05"):
        RuntimeFlags.from_env(sealed, {P + "MAX_SYMBOL_PCT_EQUITY": "0.08"})
    assert RuntimeFlags.from_env(sealed, {P + "MAX_SYMBOL_PCT_EQUITY": "0.04"}).risk == (
        sealed.model_copy(update={"max_symbol_weight": 0.04})
    )


def test_loosened_names_every_widened_limit_and_counts_the_regimes() -> None:
    sealed = RiskConfig(max_symbol_notional=1e6)
    # a removed cap does not end the comparison: the capacity multiplier's limits after it
    capacity = {
        **sealed.regime_capacity_multipliers,
        "trend": 1.5,
    }  # the map replaces the sealed one
    env = {
        P + "MAX_SYMBOL_NOTIONAL": "off",
        P + "REGIME_CAPACITY_MULTIPLIERS": json.dumps(capacity),
    }
    lines = loosened(sealed, limits_from_env(sealed, env))
    assert "SYMBOL_NOTIONAL_CAP removed (sealed up to 1e+06)" in lines
    assert "PARTICIPATION_CAP in trend 0.15 > sealed 0.1" in lines
    # one line per limit: the first regime it widens, and how many more
    every = json.dumps(dict.fromkeys(REGIME_LABELS, 2.0))
    wide = loosened(
        RiskConfig(), limits_from_env(RiskConfig(), {P + "REGIME_CAPACITY_MULTIPLIERS": every})
    )
    assert (
        wide[0] == f"capacity multiplier in trend 2 > sealed 1 (and {len(REGIME_LABELS) - 1} more)"
    )
    # a map without high_volatility drops its sealed 0.5: two regimes widen
    two = loosened(
        RiskConfig(),
        limits_from_env(RiskConfig(), {P + "REGIME_CAPACITY_MULTIPLIERS": '{"trend": 1.5}'}),
    )
    assert two[0] == "capacity multiplier in trend 1.5 > sealed 1 (and 1 more)"


def test_a_bad_switch_value_is_quoted_back() -> None:
    with pytest.raises(
        GateConfigError, match=r"^TRADING_ALLOCATOR_ENABLED='maybe' is not a boolean"
    ):
        allocator_enabled({ENV_ENABLED: "maybe"})


def test_a_wider_clamp_of_the_strategy_capacity_factor_is_refused() -> None:
    """With a strategy capacity reference sealed, MAX_MULTIPLIER 10 would have lifted a
    family's budget 5x on cheap names (the factor is clamped by it), and MIN_MULTIPLIER 1
    floored every factor at 1: both widen the sealed budgets and are refused; a narrower
    clamp is taken. Without a reference the clamp bounds only the tables, checked there."""
    sealed = RiskConfig(
        strategy_budgets={"trend": 0.1, "mean_reversion": 0.1, "defensive": 0.1},
        strategy_capacity_spread_bps=50.0,
    )
    for var, value in (("MAX_MULTIPLIER", "10"), ("MIN_MULTIPLIER", "1")):
        key = var.lower()
        with pytest.raises(GateConfigError, match=rf"{key} .* > sealed .*capacity factor"):
            RuntimeFlags.from_env(sealed, {P + var: value})
    narrower = RuntimeFlags.from_env(sealed, {P + "MAX_MULTIPLIER": "1.5"})
    assert narrower.risk.max_multiplier == 1.5
    plain = RiskConfig(strategy_budgets=sealed.strategy_budgets)
    assert not any("capacity factor" in line for line in loosened(
        plain, plain.model_copy(update={"max_multiplier": 10.0})
    ))  # fmt: skip


def test_a_default_regime_in_the_wrong_case_and_a_repeated_map_label_are_refused() -> None:
    """``HIGH_VOLATILITY`` had been read as an unknown label (multipliers 1, not 0.6 / 0.5)
    and a label given twice in a JSON map had silently kept the last value."""
    with pytest.raises(GateConfigError, match=r"is not the regime label 'high_volatility'"):
        limits_from_env(RiskConfig(), {P + "DEFAULT_REGIME": "HIGH_VOLATILITY"})
    assert limits_from_env(RiskConfig(), {P + "DEFAULT_REGIME": "neutral"}).default_regime == (
        "neutral"
    )  # a label outside REGIME_LABELS: the default multipliers, as documented
    raw = '{"high_volatility": 0.3, "high_volatility": 0.55}'
    with pytest.raises(GateConfigError, match=r"\['high_volatility'\] given more than once"):
        limits_from_env(RiskConfig(), {P + "REGIME_BUDGET_MULTIPLIERS": raw})
