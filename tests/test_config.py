"""Typed config: unknown keys, range rules, --set overrides, hashing, run metadata, defaults file."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from allocgym.config import (
    AllocgymConfig,
    SplitConfig,
    config_from_dict,
    config_hash,
    load_config,
    write_run_metadata,
)
from allocgym.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_YAML = ROOT / "configs" / "default.yaml"
HEADER = (
    "# Every allocgym configuration key with its default, generated from AllocgymConfig().\n"
    "# Regenerate after changing a default or adding a key:\n"
    "#   ALLOCGYM_WRITE_DEFAULTS=1 .venv/bin/python -m pytest tests/test_config.py -k default_yaml\n"
)


def default_yaml_text() -> str:
    return HEADER + yaml.safe_dump(AllocgymConfig().model_dump(mode="json"), sort_keys=False)


def test_default_yaml_holds_every_key_with_its_default() -> None:
    if os.environ.get("ALLOCGYM_WRITE_DEFAULTS") == "1":
        DEFAULT_YAML.write_text(default_yaml_text())
    assert load_config(DEFAULT_YAML) == AllocgymConfig(), (
        "configs/default.yaml is stale: regenerate it (see its header)"
    )
    tree = yaml.safe_load(DEFAULT_YAML.read_text())
    assert tree == AllocgymConfig().model_dump(mode="json"), (
        "configs/default.yaml misses or adds keys: regenerate it (see its header)"
    )


@pytest.mark.parametrize(
    ("tree", "path"),
    [
        ({"risk": {"max_gros": 1.0}}, "risk.max_gros"),
        ({"data": {"splits": {"train_start": "1990-01-01"}}}, "data.splits.train_start"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_unknown_keys_rejected_with_dotted_path(tree: dict, path: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"unknown key '{path}': remove it or check its spelling"
    ):
        config_from_dict(tree)


def test_unknown_key_in_yaml_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("env:\n  episode_lenght: 10\n")
    with pytest.raises(ConfigError, match=r"unknown key 'env.episode_lenght'"):
        load_config(f)


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        (
            "risk.max_symbol_weight=-0.1",
            r"risk.max_symbol_weight = -0.1 rejected: .*greater than 0",
        ),
        ("risk.max_gross=0", r"risk.max_gross = 0 rejected: .*greater than 0"),
        (
            "costs.commission_bps=-1",
            r"costs.commission_bps = -1 rejected: .*greater than or equal to 0",
        ),
        ("costs.impact_k=.nan", r"costs.impact_k = nan rejected: .*finite number"),
        ("risk.max_gross=.inf", r"risk.max_gross = inf rejected: .*finite number"),
        ("env.cvar_alpha=1.0", r"env.cvar_alpha = 1.0 rejected: .*less than 1"),
        ("risk.min_multiplier=3", r"min_multiplier 3.0 > max_multiplier 2.0"),
        ("regime.quiet_stress=0.95", r"quiet_stress 0.95 > crisis_stress 0.75"),
        ("data.spread_floor_bps=60", r"spread_floor_bps 60.0 > spread_cap_bps 50.0"),
        (
            "data.splits.train_end=2020-01-01",
            r"train_end '2020-01-01' must be before validation_end",
        ),
        (
            "data.splits.train_end='2010-13-45'",
            r"train_end '2010-13-45' is not a date: use YYYY-MM-DD",
        ),
        ("data.source=csv", r"source 'csv' needs data.path"),
        ("train.n_envs=0", r"train.n_envs = 0 rejected: .*greater than 0"),
    ],
)
def test_out_of_range_rejected_with_value_and_rule(override: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, [override])


def test_set_overrides_parse_types() -> None:
    cfg = load_config(
        None,
        [
            "train.n_envs=8",
            "risk.long_only=false",
            "risk.max_gross=0.8",
            "data.source=synthetic",
            "risk.max_symbol_notional=250000",
            "data.splits.embargo_days=10",
            "risk.regime_budget_multipliers={high_volatility: 0.5}",
        ],
    )
    assert cfg.train.n_envs == 8 and isinstance(cfg.train.n_envs, int)
    assert cfg.risk.long_only is False
    assert cfg.risk.max_gross == 0.8
    assert cfg.data.source == "synthetic"
    assert cfg.risk.max_symbol_notional == 250000.0
    assert cfg.data.splits.embargo_days == 10
    assert dict(cfg.risk.regime_budget_multipliers) == {"high_volatility": 0.5}
    # an override wins over the file, a later override over an earlier one
    assert load_config(DEFAULT_YAML, ["train.seed=3", "train.seed=4"]).train.seed == 4
    assert load_config(None, ["risk.max_symbol_notional=null"]).risk.max_symbol_notional is None


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("risk.max_gross", r"not of the form a.b=value"),
        ("=3", r"not of the form a.b=value"),
        ("train.seed.x=1", r"train.seed = \{'x': 1\} rejected: .*valid integer"),
    ],
)
def test_malformed_overrides(override: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, [override])
    with pytest.raises(ConfigError, match=r"'seed' is a value, not a section"):
        load_config(DEFAULT_YAML, ["train.seed.x=1"])  # the file holds train.seed


def test_split_dates_accept_yaml_dates() -> None:
    # --set parses an unquoted 2017-03-31 as a date; the split config stores ISO text.
    cfg = load_config(
        None, ["data.splits.validation_end=2017-03-31", "data.splits.train_end=2012-06-30"]
    )
    assert (cfg.data.splits.train_end, cfg.data.splits.validation_end) == (
        "2012-06-30",
        "2017-03-31",
    )
    assert SplitConfig(train_end=datetime.date(2001, 2, 3)).train_end == "2001-02-03"


def test_missing_or_non_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist: pass an existing YAML"):
        load_config(tmp_path / "absent.yaml")
    f = tmp_path / "list.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"must hold a mapping at the top level"):
        load_config(f)


def test_config_is_frozen() -> None:
    cfg = AllocgymConfig()
    with pytest.raises(ValueError, match="frozen"):
        cfg.risk.max_gross = 0.5  # type: ignore[misc]


def test_hash_stable_and_value_sensitive() -> None:
    base = config_hash(AllocgymConfig())
    # a lowercase sha256 hex digest of the canonical JSON (sorted keys, no spaces)
    assert re.fullmatch(r"[0-9a-f]{64}", base), base
    blob = json.dumps(
        AllocgymConfig().model_dump(mode="json"), sort_keys=True, separators=(",", ":")
    )
    assert base == hashlib.sha256(blob.encode()).hexdigest()
    assert config_hash(load_config(None)) == base
    assert config_hash(load_config(DEFAULT_YAML)) == base
    assert config_hash(load_config(None, ["risk.max_gross=1.0"])) == base  # same value, same hash
    changed = config_hash(load_config(None, ["risk.max_gross=0.9"]))
    assert changed != base
    assert config_hash(load_config(None, ["train.seed=1"])) not in (base, changed)


def test_write_run_metadata(tmp_path: Path) -> None:
    cfg = load_config(None, ["train.seed=7", "risk.max_gross=0.75"])
    run = tmp_path / "runs" / "r1"
    digest = write_run_metadata(run, cfg)
    assert sorted(p.name for p in run.iterdir()) == [
        "config.yaml",
        "config_hash.txt",
        "versions.json",
    ]
    assert (run / "config_hash.txt").read_text().strip() == digest == config_hash(cfg)
    reloaded = load_config(run / "config.yaml")
    assert reloaded == cfg and config_hash(reloaded) == digest
    versions = json.loads((run / "versions.json").read_text())
    import numpy

    assert versions["numpy"] == numpy.__version__
    assert {"python", "allocgym", "torch", "skfolio"} <= set(versions)


@pytest.mark.parametrize("key", ["env.split", "train.eval_split"])
def test_reported_split_must_stay_out_of_sample(key: str) -> None:
    with pytest.raises(ConfigError, match="out of sample"):
        load_config(overrides=[f"{key}=test"])
    assert load_config(overrides=[f"{key}=test", "evaluation.split=all"])  # no held-out split


def test_a_data_path_needs_a_file_source(tmp_path) -> None:
    """A user's file named without data.source=csv was silently replaced by the S&P sample.
    New input is refused; a saved config (a run, a bundle) that kept such a path loads, and
    loading its market notes the path as ignored."""
    from allocgym.config import DataConfig
    from allocgym.data import load_market
    from allocgym.errors import DataWarning

    with pytest.raises(ConfigError, match=r"data.path='my.csv' is set but data.source='sp500'"):
        load_config(None, ["data.path=my.csv"])
    with pytest.raises(ConfigError, match=r"data.source='synthetic' reads no file"):
        load_config(None, ["data.source=synthetic", "data.path=my.csv"])
    assert load_config(None, ["data.source=parquet", "data.path=p.parquet"]).data.path
    saved = config_from_dict({"data": {"source": "synthetic", "path": "old.csv"}})
    assert saved.data.path == "old.csv"
    small = DataConfig(source="synthetic", path="old.csv", synthetic={"n_assets": 2, "n_days": 300})
    with pytest.warns(DataWarning, match=r"data.path='old.csv' is ignored"):
        load_market(small)


@pytest.mark.parametrize("key", ["train.seed", "data.synthetic.seed", "evaluation.bootstrap.seed"])
@pytest.mark.parametrize("value", [-1, 2**32])
def test_seeds_are_refused_outside_what_numpy_and_torch_take(key: str, value: int) -> None:
    """A negative or 2**32 seed passed validation and failed later with an internal message."""
    with pytest.raises(ConfigError, match=rf"{key} = {value} rejected"):
        load_config(None, [f"{key}={value}"])
    assert load_config(None, [f"{key}={2**32 - 1}"]) is not None


@pytest.mark.parametrize(
    "item", ["risk.max_gross=true", "train.n_envs=false", "train.device=true", "data.path=true"]
)
def test_true_or_false_is_refused_where_a_number_or_text_is_expected(item: str) -> None:
    """pydantic reads true as 1: --set risk.max_gross=true became a 1.0 gross cap."""
    key, _, value = item.partition("=")
    with pytest.raises(ConfigError, match=rf"{key.split('.')[-1]} = {value}: a true/false"):
        load_config(None, [item])
    assert load_config(None, ["risk.kill_switch=true"]).risk.kill_switch is True


def test_a_key_written_twice_in_a_yaml_file_is_refused(tmp_path) -> None:
    """yaml.safe_load keeps the last of two 'risk:' blocks silently."""
    path = tmp_path / "twice.yaml"
    path.write_text("risk:\n  max_gross: 0.8\ntrain:\n  n_envs: 4\nrisk:\n  max_net: 0.5\n")
    with pytest.raises(ConfigError, match=r"line 5, column 1 \(key 'risk' appears twice"):
        load_config(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("risk:\n  max_gross: 0.8\n  max_gross: 0.9\n")
    with pytest.raises(ConfigError, match=r"key 'max_gross' appears twice"):
        load_config(nested)


def test_text_is_refused_where_true_or_false_is_expected() -> None:
    """pydantic reads the text "false" as false: a quoted kill switch must not pass as one."""
    with pytest.raises(ConfigError, match=r"kill_switch = 'false': text where this setting"):
        load_config(None, ['risk.kill_switch="false"'])


def test_yaml_merge_keys_still_load_and_odd_keys_get_a_clean_error(tmp_path) -> None:
    path = tmp_path / "merged.yaml"
    path.write_text("base: &b {max_gross: 0.8, max_net: 0.5}\nrisk:\n  <<: *b\n  max_gross: 0.7\n")
    from allocgym.config import load_yaml

    assert load_yaml(path.read_text())["risk"] == {"max_gross": 0.7, "max_net": 0.5}
    with pytest.raises(yaml.YAMLError, match="unhashable"):
        load_yaml("? [a, b]\n: 1\n")


def test_train_seeds_are_listed_once() -> None:
    with pytest.raises(ConfigError, match=r"train_seeds \[0, 1, 0\] name \[0\] twice"):
        load_config(None, ["evaluation.train_seeds=[0,1,0]"])


def test_text_is_refused_for_an_optional_switch() -> None:
    with pytest.raises(ConfigError, match=r"long_only = 'false': text where this setting"):
        load_config(None, ['baselines.qp.long_only="false"'])
    assert load_config(None, ["baselines.qp.long_only=true"]).baselines.qp.long_only is True
