"""Typed, frozen configuration loaded once from YAML.

Every section is a pydantic model that rejects unknown keys and non-finite numbers.
``load_config`` reads an optional YAML file, applies ``--set a.b=value`` overrides and
returns an :class:`AllocgymConfig`; errors are :class:`~allocgym.errors.ConfigError` with
the dotted path of the key, the bad value and the rule it broke. Each section's owner
module turns it into the typed params it runs with (``RiskLimits.from_config`` ...).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from allocgym.errors import ConfigError

NonNeg = Annotated[float, Field(ge=0.0)]
Pos = Annotated[float, Field(gt=0.0)]
Frac = Annotated[float, Field(ge=0.0, le=1.0)]
PosInt = Annotated[int, Field(gt=0)]


class Section(BaseModel):
    """Base of every config section: frozen, unknown keys rejected, no NaN/inf."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ----------------------------------------------------------------------------- data


class SyntheticConfig(Section):
    """Seeded regime-switching generator (``allocgym.data.synthetic``)."""

    n_assets: PosInt = 20
    """Number of synthetic symbols."""
    n_days: PosInt = 2520
    """Number of daily bars."""
    seed: int = 0
    """Seed of the generator: same seed, identical data."""
    n_sectors: PosInt = 4
    """Symbols are assigned round-robin to this many sectors."""
    signal_strength: NonNeg = 0.0
    """Strength of a planted, regime-dependent predictable signal (0 = none)."""


class SplitConfig(Section):
    """Walk-forward date splits: train < validation < test, separated by an embargo."""

    train_end: str = "2010-12-31"
    """Last date (inclusive) of the training split."""
    validation_end: str = "2014-12-31"
    """Last date (inclusive) of the validation split; the test split follows."""
    embargo_days: Annotated[int, Field(ge=0)] = 5
    """Bars dropped at the start of validation and test so no window straddles a split."""
    n_folds: PosInt = 4
    """Number of rolling walk-forward folds for ``rolling_folds``."""

    @model_validator(mode="after")
    def _ordered(self) -> SplitConfig:
        if self.train_end >= self.validation_end:
            raise ValueError(
                f"train_end {self.train_end!r} must be before validation_end "
                f"{self.validation_end!r}"
            )
        return self


class DataConfig(Section):
    """Where market data comes from and how missing fields are filled."""

    source: Literal["sp500", "csv", "parquet", "synthetic"] = "sp500"
    """Data source: the bundled S&P 500 sample, a CSV/Parquet file, or the generator."""
    path: str | None = None
    """File path for ``csv`` / ``parquet`` sources."""
    min_history: PosInt = 252
    """Fewest rows a data set may have (validation refuses fewer)."""
    default_adv_notional: Pos = 5.0e8
    """ADV in currency used when a source has no volume (daily traded notional per symbol)."""
    default_spread_vol_mult: NonNeg = 0.05
    """Spread proxy when a source has no spread: spread_bps = mult * daily vol in bps."""
    spread_floor_bps: NonNeg = 1.0
    """Lower clamp of the spread proxy, in bps."""
    spread_cap_bps: Pos = 50.0
    """Upper clamp of the spread proxy, in bps."""
    splits: SplitConfig = SplitConfig()
    synthetic: SyntheticConfig = SyntheticConfig()

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.source in ("csv", "parquet") and not self.path:
            raise ValueError(f"source {self.source!r} needs data.path (set data.path=FILE)")
        if self.spread_floor_bps > self.spread_cap_bps:
            raise ValueError(
                f"spread_floor_bps {self.spread_floor_bps} > spread_cap_bps {self.spread_cap_bps}"
            )
        return self


# ----------------------------------------------------------------------------- costs


class CostConfig(Section):
    """Cost model: commission + half-spread + square-root impact k * sigma * sqrt(q / ADV)."""

    commission_bps: NonNeg = 1.0
    """Commission per unit traded notional, in bps."""
    spread_mult: NonNeg = 1.0
    """Multiplier on the half-spread charged (1 = pay half the quoted spread)."""
    impact_k: NonNeg = 0.1
    """Coefficient k of square-root market impact."""


# ----------------------------------------------------------------------------- risk


class RiskConfig(Section):
    """Hard limits and trade limits enforced by ``RiskGateChain`` (units: fractions of equity).

    The regime multiplier maps follow seed 001's ``TRADING_ALLOCATOR_*`` semantics: a label
    missing from a map uses the default multiplier, and every multiplier is clamped to
    ``[min_multiplier, max_multiplier]``.
    """

    max_symbol_weight: Pos = 0.10
    """Per-symbol cap on |w_i| as a fraction of equity (seed 002 ``per_name_cap``)."""
    max_symbol_notional: Pos | None = None
    """Per-symbol cap on |w_i| * equity in currency; ``None`` disables it."""
    max_gross: Pos = 1.0
    """Cap on sum |w_i|, before the regime budget multiplier."""
    max_net: NonNeg = 1.0
    """Cap on |sum w_i|."""
    max_gross_notional: Pos | None = None
    """Global cap on gross notional sum |w_i| * equity in currency; ``None`` disables it."""
    max_sector_gross: Pos = 0.30
    """Per-sector cap on sum |w_i| over the sector (seed 002 ``sector_cap``)."""
    beta_tolerance: NonNeg | None = None
    """Cap on |beta^T w|; ``None`` disables the beta gate."""
    long_only: bool = True
    """Refuse short positions."""
    max_strategy_contribution: Pos = 0.60
    """Cap on each strategy family's gross contribution (budgets action mode)."""
    max_turnover: Pos = 0.50
    """Turnover ceiling per decision, sum |w_new - w_cur| (L1)."""
    max_participation: Pos = 0.10
    """Trade size cap per symbol as a fraction of ADV notional, per decision."""
    slippage_budget_bps: Pos = 25.0
    """Expected-slippage budget per decision, in bps of equity."""
    default_regime: str = "neutral"
    """Regime label used when no regime context is provided."""
    regime_budget_multipliers: Mapping[str, float] = Field(
        default_factory=lambda: {"high_volatility": 0.6, "uncertain": 0.8}
    )
    """Regime label -> multiplier on the gross budget."""
    regime_capacity_multipliers: Mapping[str, float] = Field(
        default_factory=lambda: {"high_volatility": 0.5}
    )
    """Regime label -> multiplier on per-symbol capacity (symbol caps, participation)."""
    default_budget_multiplier: NonNeg = 1.0
    """Budget multiplier for labels missing from the map."""
    default_capacity_multiplier: NonNeg = 1.0
    """Capacity multiplier for labels missing from the map."""
    min_multiplier: NonNeg = 0.0
    """Lower clamp of every regime multiplier."""
    max_multiplier: NonNeg = 2.0
    """Upper clamp of every regime multiplier."""
    kill_switch: bool = False
    """Flatten everything, supersedes every other rule."""
    reduce_only: bool = False
    """Only reduce |w_i|; no increases, no sign flips."""

    @model_validator(mode="after")
    def _check(self) -> RiskConfig:
        if self.min_multiplier > self.max_multiplier:
            raise ValueError(
                f"min_multiplier {self.min_multiplier} > max_multiplier {self.max_multiplier}"
            )
        for name in ("regime_budget_multipliers", "regime_capacity_multipliers"):
            for label, value in getattr(self, name).items():
                if not math.isfinite(value) or value < 0:
                    raise ValueError(f"{name}[{label!r}] = {value}: must be finite and >= 0")
        return self


# ----------------------------------------------------------------------------- regime


class RegimeConfig(Section):
    """Causal regime model thresholds (``allocgym.regime``)."""

    vol_window: PosInt = 21
    """Bars of realized volatility."""
    vol_lookback: PosInt = 252
    """Trailing bars the volatility percentile is ranked against."""
    high_vol_percentile: Frac = 0.80
    """Percentile above which the regime is ``high_volatility``."""
    trend_window: PosInt = 63
    """Bars of the trend-strength statistic."""
    trend_threshold: NonNeg = 0.30
    """Trend strength (|mean| / std of returns, annualised-free) above which it is ``trend``."""
    mr_window: PosInt = 63
    """Bars of the mean-reversion statistic (lag-1 autocorrelation)."""
    mr_threshold: float = -0.05
    """Autocorrelation below which the regime is ``mean_reversion``."""
    crisis_percentile: Frac = 0.90
    """Volatility percentile mapped to barbell state CRISIS (QUIET below ``quiet_percentile``)."""
    quiet_percentile: Frac = 0.40
    """Volatility percentile below which the barbell state is QUIET."""

    @model_validator(mode="after")
    def _check(self) -> RegimeConfig:
        if self.quiet_percentile > self.crisis_percentile:
            raise ValueError(
                f"quiet_percentile {self.quiet_percentile} > crisis_percentile "
                f"{self.crisis_percentile}"
            )
        return self


# ----------------------------------------------------------------------------- execution


class ExecutionConfig(Section):
    """No-trade bands, triggers and lot rounding (seed 002)."""

    name_drift_threshold: NonNeg = 0.005
    """Per-name band tau_i: |w_tar,i - w_cur,i| at or below it is not traded."""
    portfolio_drift_threshold: NonNeg = 0.01
    """Portfolio band tau_L1: L1 drift at or below it trades nothing."""
    lot_size: Pos = 1.0
    """Shares per lot; quantities are rounded to whole lots."""
    vol_spike_ratio: Pos = 2.0
    """Short/long volatility ratio that fires the vol-spike risk override."""
    spread_blowout_ratio: Pos = 3.0
    """Spread / its trailing median that fires the spread-blowout override."""
    scheduled_only: bool = False
    """Trade only at scheduled windows (every bar is a window for daily data)."""


# ----------------------------------------------------------------------------- features


class FeatureConfig(Section):
    """Observation features (``allocgym.features``)."""

    window: PosInt = 20
    """Trailing log returns per asset in the observation."""
    ewma_halflife: Pos = 10.0
    """Half-life (bars) of the EWMA volatility feature."""
    momentum_horizons: tuple[PosInt, ...] = (5, 21, 63)
    """Momentum look-backs in bars."""
    zscore_window: PosInt = 20
    """Window of the mean-reversion z-score."""
    beta_window: PosInt = 63
    """Window of the beta-to-benchmark estimate."""
    history: PosInt = 320
    """Bars of history every feature and the regime model are computed from."""


# ----------------------------------------------------------------------------- env


class EnvConfig(Section):
    """Environment dynamics and reward terms (``allocgym.envs``)."""

    action_mode: Literal["weights", "budgets"] = "weights"
    """``weights``: per-symbol targets; ``budgets``: one budget per strategy family."""
    split: Literal["train", "validation", "test"] = "train"
    """Split the episodes are drawn from."""
    episode_length: PosInt = 252
    """Bars per episode (truncated at the end)."""
    initial_equity: Pos = 1.0e6
    """Starting equity in currency."""
    cvar_alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.95
    """CVaR confidence level."""
    cvar_window: PosInt = 63
    """Days of asset returns (ex-ante) or portfolio returns (realized) in the CVaR term."""
    cvar_mode: Literal["ex_ante", "realized"] = "ex_ante"
    """Ex-ante scenario CVaR of the approved book, or realized rolling portfolio CVaR."""
    cvar_weight: NonNeg = 0.5
    """Weight of the CVaR penalty."""
    intervention_weight: NonNeg = 0.01
    """Weight of the gate-intervention penalty (L1 proposed -> approved)."""
    turnover_weight: NonNeg = 0.0
    """Weight of the optional turnover penalty."""
    drawdown_weight: NonNeg = 0.0
    """Weight of the optional drawdown penalty."""
    drawdown_kill: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    """Drawdown that terminates the episode with the kill switch engaged."""


# ----------------------------------------------------------------------------- training


class TrainConfig(Section):
    """Agent training (``allocgym.agents``); hyperparameters are documented per field."""

    algo: Literal["ppo", "a2c", "sac", "recurrent_ppo"] = "ppo"
    """Stable-baselines3 algorithm."""
    policy: Literal["mlp", "asset_set"] = "asset_set"
    """Plain MLP or the permutation-equivariant asset-set extractor."""
    total_timesteps: PosInt = 100_000
    """Environment steps to train for (summed over n_envs)."""
    n_envs: PosInt = 16
    """Portfolios stepped together in ``PortfolioVecEnv``."""
    seed: int = 0
    """Seed of the env, the policy and torch."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Torch device; ``auto`` picks CUDA when present."""


# ----------------------------------------------------------------------------- baselines


class BaselinesConfig(Section):
    """Baseline allocators (``allocgym.baselines``)."""

    lookback: PosInt = 252
    """Bars of return history each baseline estimates from."""
    rebalance_every: PosInt = 21
    """Bars between baseline re-optimisations (weights are held in between)."""
    # [baselines:hrp-qp-greedy] (HRP/QP/greedy helper adds its sub-configs here)
    # [baselines:barbell-classics] (barbell/classics helper adds its sub-configs here)


# ----------------------------------------------------------------------------- serving


class ServingConfig(Section):
    """Frozen-policy runtime (``allocgym.serving``)."""

    max_staleness_s: Pos = 86_400.0 * 4
    """Oldest request timestamp accepted, in seconds behind the server clock."""
    deadline_ms: Pos = 50.0
    """Model-call deadline; slower calls fall back (MODEL_FALLBACK)."""
    fallback: Literal["hold", "hrp"] = "hold"
    """Defensive allocation when the model fails or the allocator is disabled."""


# ----------------------------------------------------------------------------- root


class AllocgymConfig(Section):
    """The whole configuration; every section has working defaults."""

    data: DataConfig = DataConfig()
    costs: CostConfig = CostConfig()
    risk: RiskConfig = RiskConfig()
    regime: RegimeConfig = RegimeConfig()
    execution: ExecutionConfig = ExecutionConfig()
    features: FeatureConfig = FeatureConfig()
    env: EnvConfig = EnvConfig()
    train: TrainConfig = TrainConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    serving: ServingConfig = ServingConfig()


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{path}': remove it or check its spelling")
        else:
            lines.append(f"{path} = {e.get('input')!r} rejected: {e['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _apply_override(tree: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not of the form a.b=value")
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None


def config_from_dict(tree: Mapping[str, Any], overrides: Iterable[str] = ()) -> AllocgymConfig:
    """Validate a nested mapping (plus ``a.b=value`` overrides) into an ``AllocgymConfig``."""
    data = json.loads(json.dumps(tree)) if tree else {}
    for item in overrides:
        _apply_override(data, item)
    try:
        return AllocgymConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err)) from None


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> AllocgymConfig:
    """Load YAML at ``path`` (or the embedded defaults when ``None``) and apply overrides."""
    tree: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist: pass an existing YAML")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(p)!r} must hold a mapping at the top level")
        tree = loaded
    return config_from_dict(tree, overrides)


def config_hash(cfg: BaseModel) -> str:
    """sha256 of the canonical JSON of a config (sorted keys): equal configs, equal hash."""
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


_VERSIONED = (
    "allocgym", "numpy", "pandas", "scipy", "cvxpy", "gymnasium", "stable-baselines3",
    "sb3-contrib", "torch", "onnx", "onnxruntime", "skfolio", "pydantic",
)  # fmt: skip


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a run's results depend on."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_run_metadata(run_dir: str | Path, cfg: AllocgymConfig) -> str:
    """Write ``config.yaml``, ``config_hash.txt`` and ``versions.json`` into ``run_dir``.

    Returns the config hash.
    """
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    digest = config_hash(cfg)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    (d / "config_hash.txt").write_text(digest + "\n")
    (d / "versions.json").write_text(json.dumps(package_versions(), indent=2) + "\n")
    return digest
