"""Typed, frozen configuration loaded once from YAML.

Every section is a pydantic model that rejects unknown keys and non-finite numbers.
``load_config`` reads an optional YAML file, applies ``--set a.b=value`` overrides and
returns an :class:`AllocgymConfig`; errors are :class:`~allocgym.errors.ConfigError` with
the dotted path of the key, the bad value and the rule it broke. The code reads the
sections themselves; a few hot-path modules turn theirs into typed runtime params
(``RiskLimits.from_config``, ``ExecutionParams.from_config`` ...).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import re
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from allocgym.errors import ConfigError
from allocgym.estimates import CovarianceMethod

NonNeg = Annotated[float, Field(ge=0.0)]
Pos = Annotated[float, Field(gt=0.0)]
Frac = Annotated[float, Field(ge=0.0, le=1.0)]
PosInt = Annotated[int, Field(gt=0)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]
"""A random seed: numpy and torch take 0 <= seed < 2**32."""


class Section(BaseModel):
    """Base of every config section: frozen, unknown keys rejected, no NaN/inf, no true /
    false where a number or text is expected (pydantic would read true as 1) and no text
    where true / false is (pydantic would read "false" as false)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_other_types(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if field is None:
                    continue
                if isinstance(value, bool) and not _takes(field.annotation, bool):
                    raise ValueError(
                        f"{name} = {str(value).lower()}: a true/false where this setting "
                        "takes a number or text: give its value"
                    )
                if (
                    isinstance(value, str)
                    and _takes(field.annotation, bool)
                    and not _takes(field.annotation, str)
                ):
                    raise ValueError(
                        f"{name} = {value!r}: text where this setting takes true or false: "
                        "write true or false without quotes"
                    )
        return data


def _takes(annotation: Any, kind: type) -> bool:
    """Whether a field's type admits ``kind`` (itself, in a union, or ``Any``)."""
    if annotation is kind or annotation is Any:
        return True
    return any(_takes(arg, kind) for arg in get_args(annotation) if not isinstance(arg, str))


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (the safe loader
    keeps the last silently: a config's second ``risk:`` block dropped the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<: *base' merges keys that the mapping's own keys override
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool | None):
                continue  # an unhashable key: the safe loader refuses it with its message
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parse YAML text as ``yaml.safe_load`` does, refusing duplicate keys."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


# ----------------------------------------------------------------------------- data


class SyntheticConfig(Section):
    """Seeded regime-switching generator (``allocgym.data.synthetic``)."""

    n_assets: PosInt = 20
    """Number of synthetic symbols."""
    n_days: PosInt = 2520
    """Number of daily bars."""
    seed: Seed = 0
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
    test_end: str | None = None
    """Last date (inclusive) of the test split; None = the end of the data (the
    walk-forward study sets it to close each fold's test block)."""
    embargo_days: Annotated[int, Field(ge=0)] = 5
    """Bars dropped at the start of validation and test so no window straddles a split."""
    n_folds: PosInt = 4
    """Folds of ``allocgym study`` (its test years: the last ``n_folds`` complete calendar
    years) when neither ``--folds`` nor ``--test-years`` is given."""
    fractions: tuple[Frac, Frac, Frac] = (0.60, 0.15, 0.25)
    """Train / validation / test shares of the bars used when the dates above do not fall
    inside the data (a split would be empty); the embargo is taken from the later splits.
    Not used when ``test_end`` is set (the walk-forward study's dates are refused instead)."""
    min_split_bars: PosInt = 63
    """Fewest bars each of train, validation and test may have (shorter: refused)."""

    @model_validator(mode="before")
    @classmethod
    def _iso_dates(cls, data: Any) -> Any:
        # YAML and --set read an unquoted 2010-12-31 as a date: accept dates and store
        # ISO text, so the string comparison below orders them correctly.
        import datetime as dt

        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key in ("train_end", "validation_end", "test_end"):
            value = out.get(key)
            if key == "test_end" and value is None:
                continue
            if isinstance(value, dt.datetime):
                value = value.date()
            if isinstance(value, dt.date):
                out[key] = value.isoformat()
            elif isinstance(value, str):
                try:
                    out[key] = dt.date.fromisoformat(value.strip()).isoformat()
                except ValueError:
                    raise ValueError(f"{key} {value!r} is not a date: use YYYY-MM-DD") from None
        return out

    @model_validator(mode="after")
    def _ordered(self) -> SplitConfig:
        if not math.isclose(sum(self.fractions), 1.0, abs_tol=1e-9) or 0.0 in self.fractions:
            raise ValueError(
                f"fractions {list(self.fractions)} must be three shares > 0 that sum to 1 "
                "(train, validation, test), e.g. [0.6, 0.15, 0.25]"
            )
        if self.train_end >= self.validation_end:
            raise ValueError(
                f"train_end {self.train_end!r} must be before validation_end "
                f"{self.validation_end!r}"
            )
        if self.test_end is not None and self.test_end <= self.validation_end:
            raise ValueError(
                f"test_end {self.test_end!r} must be after validation_end "
                f"{self.validation_end!r} (or null for the end of the data)"
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
    sectors: str | dict[str, str] | None = None
    """Sector of each symbol, for any source: a CSV file with columns ``symbol,sector``,
    a YAML file holding a ``SYMBOL: sector`` mapping, or the mapping itself; it replaces
    the source's sectors (GICS for sp500, the long format's ``sector`` column). None = the
    source's. Symbols without a sector are exempt from ``risk.max_sector_gross`` (a note
    says so); ``--sectors FILE`` sets it."""
    max_abs_return: Pos | None = None
    """Refuse data with a one-bar |simple return| above this (decimal, 0.5 = 50 %); None =
    list such moves beyond 50 % (and level jumps that revert) as a warning and keep them."""
    factors: str | None = None
    """CSV of user factor returns (``date,factor1,...``: simple per-bar returns, one row per
    market date) for the evaluation's factor attribution; None = statistical (PCA)
    factors. ``--factors FILE`` sets it."""
    splits: SplitConfig = SplitConfig()
    synthetic: SyntheticConfig = SyntheticConfig()

    @property
    def reads_file(self) -> bool:
        """Whether the source reads ``path`` (csv, parquet); any other ignores it."""
        return self.source in ("csv", "parquet")

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.reads_file and not self.path:
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

    The gates read it through ``allocgym.risk.RiskLimits``, a view that adds the clamped
    regime multipliers and the registry's bound tables without validating anything again.
    The regime multiplier maps follow the ``TRADING_ALLOCATOR_*`` runtime flags' semantics: a label
    missing from a map uses the default multiplier, and every multiplier is clamped to
    ``[min_multiplier, max_multiplier]``.
    """

    max_symbol_weight: Pos = 0.10
    """Per-symbol cap on |w_i| as a fraction of equity (the QP's ``per_name_cap``)."""
    max_symbol_notional: Pos | None = None
    """Per-symbol cap on |w_i| * equity in currency; ``None`` disables it."""
    max_gross: Pos = 1.0
    """Cap on sum |w_i|, before the regime budget multiplier."""
    max_net: NonNeg = 1.0
    """Cap on |sum w_i|."""
    max_gross_notional: Pos | None = None
    """Global cap on gross notional sum |w_i| * equity in currency; ``None`` disables it."""
    max_sector_gross: Pos = 0.30
    """Per-sector cap on sum |w_i| over the sector (the QP's ``sector_cap``)."""
    beta_tolerance: NonNeg | None = None
    """Cap on |beta^T w|; ``None`` disables the beta gate."""
    max_factor_exposure: NonNeg | None = None
    """Cap on the book's exposure to every factor, ``|(B^T w)_k| <= max_factor_exposure``
    for each column ``k`` of the loadings ``B`` (n_assets, n_factors); ``None`` disables
    the factor gate. The env's factors are the principal components of the trailing
    ``baselines.factor_model`` window (unit-norm loadings: an equal-weight, fully invested book of
    N names has a first-factor exposure near ``1 / sqrt(N)``). A book over the cap is
    scaled as a whole until its largest factor exposure equals the cap."""
    long_only: bool = True
    """Refuse short positions."""
    max_strategy_contribution: Pos = 0.60
    """Base budget of every strategy family missing from ``strategy_budgets``: the cap on
    its gross contribution before the regime and capacity multipliers (budgets action
    mode)."""
    strategy_budgets: Mapping[str, float] = Field(default_factory=dict)
    """Strategy family (``trend``, ``mean_reversion``, ``defensive``) -> base budget, the
    cap on the family's gross contribution before the multipliers. The budget the
    ``STRATEGY_CAP`` gate enforces is ``base x regime budget multiplier x regime tilt x
    capacity factor`` (``allocgym.risk.gates.strategy``)."""
    regime_strategy_tilts: Mapping[str, Mapping[str, float]] = Field(
        default_factory=lambda: {
            "trend": {"mean_reversion": 0.5},
            "mean_reversion": {"trend": 0.5},
            "uncertain": {"trend": 0.75, "mean_reversion": 0.75},
        }
    )
    """Regime label -> strategy family -> multiplier on the family's budget: a trend regime
    favours the trend family by halving mean reversion's budget, a mean-reversion regime the
    reverse, an uncertain one leaves the defensive family the largest share. A missing label
    or family gets 1.0; every tilt is clamped to ``[min_multiplier, max_multiplier]``."""
    strategy_capacity_spread_bps: Pos | None = None
    """Reference spread (bps) of the family capacity factor: a family whose names trade at
    twice it gets half its budget. ``None`` leaves spread out of the factor."""
    strategy_capacity_volatility: Pos | None = None
    """Reference daily volatility (decimal) of the family capacity factor (as the spread);
    ``None`` leaves volatility out."""
    strategy_capacity_adv_to_equity: Pos | None = None
    """Reference liquidity, ADV notional over equity, of the family capacity factor: a family
    whose names trade half of it per day gets half its budget. ``None`` leaves liquidity
    out."""
    max_turnover: Pos = 0.50
    """Turnover ceiling per decision, sum |w_new - w_cur| (L1) at the decision bar's prices
    (the capped turnover; the realised one, lot-rounded at the fill's prices, can sit
    slightly above it). Fills already executed in the bar (``recent_fills``) count
    against it."""
    max_participation: Pos = 0.10
    """Trade size cap per symbol as a fraction of ADV notional, per decision (times the
    regime capacity multiplier); fills already executed in the bar count against it."""
    slippage_budget_bps: Pos = 25.0
    """Expected-slippage budget per decision, in bps of equity."""
    max_symbol_turnover: Pos | None = None
    """Turnover ceiling per symbol per decision, ``|w_new,i - w_cur,i|`` (times the regime
    capacity multiplier, like the participation cap); a symbol over it has its trade
    clipped (``SYMBOL_TURNOVER_CAP``). Fills already executed in the bar count against
    it. ``None`` disables it."""
    symbol_slippage_budget_bps: Pos | None = None
    """Expected-slippage budget per symbol per decision, in bps of equity (times the regime
    capacity multiplier); a symbol over it has its trade scaled down
    (``SYMBOL_SLIPPAGE_BUDGET``). ``None`` disables it."""
    default_regime: str = "neutral"
    """Regime label used when no regime context is provided."""
    regime_budget_multipliers: Mapping[str, float] = Field(
        default_factory=lambda: {"high_volatility": 0.6, "uncertain": 0.8}
    )
    """Regime label -> multiplier on the gross budget."""
    regime_capacity_multipliers: Mapping[str, float] = Field(
        default_factory=lambda: {"high_volatility": 0.5}
    )
    """Regime label -> multiplier on per-symbol capacity (symbol caps, participation, the
    per-symbol turnover ceiling and slippage budget)."""
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
        from allocgym.ranges import check_physical

        for cap in ("max_symbol_notional", "max_gross_notional"):
            if getattr(self, cap) is not None:  # a physical magnitude (allocgym.ranges)
                check_physical("notional_cap", getattr(self, cap), f"risk.{cap}")
        if self.min_multiplier > self.max_multiplier:
            raise ValueError(
                f"min_multiplier {self.min_multiplier} > max_multiplier {self.max_multiplier}"
            )
        for name in ("regime_budget_multipliers", "regime_capacity_multipliers"):
            for label, value in getattr(self, name).items():
                if not math.isfinite(value) or value < 0:
                    raise ValueError(
                        f"{name}[{label!r}] = {value}: must be finite and >= 0 "
                        "(1.0 leaves the limit unchanged, 0.5 halves it)"
                    )
        for family, value in self.strategy_budgets.items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"strategy_budgets[{family!r}] = {value}: a base budget is a gross "
                    "fraction of equity, finite and >= 0 (0 switches the family off)"
                )
        for label, tilts in self.regime_strategy_tilts.items():
            for family, value in tilts.items():
                if not math.isfinite(value) or value < 0:
                    raise ValueError(
                        f"regime_strategy_tilts[{label!r}][{family!r}] = {value}: must be "
                        "finite and >= 0 (1.0 leaves the family's budget unchanged)"
                    )
        return self


# ----------------------------------------------------------------------------- regime


class RegimeConfig(Section):
    """Causal regime model (``allocgym.regime``; windows in bars, decimal returns).

    Defaults: conventional windows, volatility levels set for an equity index, and
    hysteresis tuned so the bundled S&P 500 test split (2015-2022) changes label about 7
    times a year (the raw rule: 27) while the balanced accuracy on
    ``allocgym.data.synthetic``'s true regimes stays above 0.7 (chance 1/3). That tuning
    looked at the test split's label changes (not its returns); with these settings the
    train split changes label 5.8 times a year and the validation split 4.5.
    """

    vol_window: Annotated[int, Field(ge=2)] = 21
    """Bars of the benchmark's realized volatility (population std of simple returns)."""
    vol_lookback: PosInt = 252
    """Trailing realized-vol values (current included) the vol percentile is ranked against."""
    vol_level_low: NonNeg = 0.10
    """Annualised realized vol (decimal) at which the absolute level score is 0."""
    vol_level_high: Pos = 0.35
    """Annualised realized vol (decimal) at which the absolute level score reaches 1
    (linear in between)."""
    vol_level_weight: Frac = 0.5
    """Weight of the absolute level in the volatility stress; the vol percentile gets the
    rest (0 = the percentile alone, which fires on the top of calm years too)."""
    periods_per_year: Pos = 252.0
    """Bars per year: annualises the realized vol for the level score."""
    high_vol_stress: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.70
    """Volatility stress at or above which ``high_volatility`` enters."""
    trend_window: Annotated[int, Field(ge=2)] = 63
    """Bars of the trend statistic: t-stat of the benchmark's mean return."""
    trend_threshold: Pos = 0.25
    """|t-stat| at or above which ``trend`` enters (0.25 over 63 bars is an annualised
    |Sharpe| of about 0.5)."""
    mr_window: Annotated[int, Field(ge=3)] = 21
    """Bars of the mean-reversion statistic: lag-1 autocorrelation of residual asset returns
    (asset minus benchmark), averaged over the assets."""
    mr_threshold: Annotated[float, Field(lt=0.0)] = -0.15
    """Mean residual autocorrelation at or below which ``mean_reversion`` enters."""
    stress_band: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.10
    """Hysteresis in stress units: ``high_volatility`` and ``CRISIS`` are held until the
    stress falls this far below their entry level, ``QUIET`` until it rises this far above."""
    exit_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    """``trend`` and ``mean_reversion`` are held while their statistic is at least this
    fraction of its threshold (1 = no hysteresis)."""
    min_dwell: PosInt = 5
    """Bars a label (and a barbell state) must have been held before another is adopted."""
    confirm_bars: PosInt = 3
    """Consecutive bars the rule must favour a new label before it is adopted."""
    memory: PosInt = 29
    """Bars the hysteresis runs over: the label at t is the state machine run over bars
    t - memory + 1 .. t (from ``uncertain``), so it adds memory - 1 bars to
    ``RegimeModel.required_history``; 29 agrees with an unbounded run on all but 3 bars of
    the S&P 500 sample (memory = min_dwell = confirm_bars = 1: the raw rule)."""
    crisis_stress: Frac = 0.75
    """Volatility stress at or above which the barbell state CRISIS enters."""
    quiet_stress: Frac = 0.35
    """Volatility stress below which the barbell state QUIET enters (NORMAL in between)."""

    @model_validator(mode="after")
    def _check(self) -> RegimeConfig:
        if self.vol_level_low >= self.vol_level_high:
            raise ValueError(
                f"vol_level_low {self.vol_level_low} >= vol_level_high {self.vol_level_high}: "
                "set vol_level_low below vol_level_high"
            )
        if self.quiet_stress > self.crisis_stress:
            raise ValueError(
                f"quiet_stress {self.quiet_stress} > crisis_stress {self.crisis_stress}: "
                "set quiet_stress at or below crisis_stress"
            )
        for name in ("min_dwell", "confirm_bars"):
            if getattr(self, name) > self.memory:
                raise ValueError(
                    f"{name} {getattr(self, name)} > memory {self.memory}: the state machine "
                    f"runs over memory bars only; set memory >= {getattr(self, name)}"
                )
        return self


# ----------------------------------------------------------------------------- execution


class ExecutionConfig(Section):
    """No-trade bands, triggers and lot rounding (``allocgym.execution``).

    Weights are fractions of equity. A portfolio whose L1 drift exceeds tau_L1 rebalances
    every name; otherwise only names beyond their own band tau_i trade. Risk overrides
    (vol spike, spread blowout, kill switch) rebalance every name at once.
    """

    name_drift_threshold: NonNeg = 0.005
    """Per-name band tau_i: |w_tar,i - w_cur,i| at or below it is not traded."""
    portfolio_drift_threshold: NonNeg = 0.01
    """Portfolio band tau_L1: above it every name is rebalanced."""
    lot_size: Pos = 1.0
    """Shares per lot; orders are whole lots (a position may always be closed out)."""
    vol_spike_ratio: Annotated[float, Field(gt=1.0)] = 2.0
    """Short/long volatility ratio at or above which the vol-spike override fires."""
    spread_blowout_ratio: Annotated[float, Field(gt=1.0)] = 3.0
    """Spread over its trailing median at or above which the spread-blowout override fires."""
    scheduled_only: bool = False
    """Trade only in scheduled windows (and on risk overrides)."""
    schedule_every: PosInt = 1
    """Bars between scheduled windows (1 = every bar, daily data)."""
    vol_short_window: Annotated[int, Field(ge=2)] = 5
    """Bars of the short volatility in the vol-spike ratio."""
    vol_long_window: Annotated[int, Field(ge=3)] = 63
    """Bars of the long volatility in the vol-spike ratio (> vol_short_window)."""
    spread_window: PosInt = 21
    """Bars of the trailing median spread in the spread-blowout ratio."""

    @model_validator(mode="after")
    def _check(self) -> ExecutionConfig:
        if self.vol_short_window >= self.vol_long_window:
            raise ValueError(
                f"vol_short_window {self.vol_short_window} must be below vol_long_window "
                f"{self.vol_long_window}"
            )
        return self


# ----------------------------------------------------------------------------- features


class FeatureConfig(Section):
    """Observation features (``allocgym.features``); every window is trailing, in bars."""

    window: PosInt = 20
    """Trailing log returns per asset in the observation."""
    ewma_halflife: Pos = 10.0
    """Half-life (bars) of the EWMA volatility feature."""
    ewma_window: PosInt = 63
    """Bars the EWMA volatility is truncated to (weights renormalised over valid bars)."""
    momentum_horizons: tuple[PosInt, ...] = Field(default=(5, 21, 63), min_length=1)
    """Momentum look-backs in bars (at least one)."""
    zscore_window: Annotated[int, Field(ge=2)] = 20
    """Window of the mean-reversion z-score (and of the lag-1 autocorrelation)."""
    beta_window: Annotated[int, Field(ge=2)] = 63
    """Window of the beta-to-benchmark estimate."""
    adv_window: PosInt = 21
    """Window of the average daily traded notional (capacity feature and ADV output)."""
    clip: Annotated[float, Field(ge=1.0)] = 5.0
    """Unbounded features (risk-scaled returns, momentum, z-score, beta, log ADV ratio,
    annualised vol, spread/100) are clipped to [-clip, clip] (or [0, clip])."""
    vol_floor: Pos = 1.0e-4
    """Lower clamp of the daily volatility (decimal) used to risk-scale features."""
    history: PosInt | None = None
    """Bars of history every feature and the regime model are computed from; ``None``
    (default) = the minimum they need (``FeatureBuilder.history``); a smaller value is
    refused by ``FeatureBuilder``. Longer windows give identical features."""
    mean_correlation: bool = False
    """Add the global feature ``mean_correlation``: the mean pairwise correlation of the
    universe (estimator: ``correlation_model``), after the step-time globals. Off: the
    observation is unchanged."""
    correlation_model: Literal["ewma", "dcc_garch"] = "ewma"
    """Estimator of ``mean_correlation``. ``ewma``: the EWMA correlation over
    ``ewma_window`` (half-life ``ewma_halflife``), computed per bar (served too).
    ``dcc_garch``: a DCC-GARCH(1,1) (``allocgym.dcc``) fitted once on the
    ``dcc_fit_bars`` bars before the env split's first decision bar, then filtered forward
    one bar at a time (point in time, O(n_assets^2) per bar); the env only: serving refuses
    such a bundle, as it holds no filter state."""
    dcc_fit_bars: Annotated[int, Field(ge=250)] = 1000
    """Most bars the ``dcc_garch`` correlation model is fitted on (at least 250 must precede
    the first decision bar)."""
    factor_exposures: Annotated[int, Field(ge=0)] = 0
    """Observe the current book's exposures ``B^T w`` to the first ``k`` PCA factors of the
    bar (``k`` global slots at the end, clipped to [-clip, clip]; loadings of the trailing
    ``baselines.factor_model`` window, at most its ``max_factors``); 0 = off (the
    observation is unchanged). The env only: serving refuses a bundle with it set."""


class IntentConfig(Section):
    """Strategy intents netted by the ``IntentAggregator`` (``allocgym.intents``).

    Intents are weighted by their confidence inside each family; an intent older than its
    family's horizon (bars) counts by ``stale_rule``.
    """

    stale_rule: Literal["drop", "decay"] = "decay"
    """Past its horizon an intent is dropped (weight 0) or decays, halving every further
    horizon (``0.5 ** ((age - horizon) / horizon)``); the stale share stays in cash."""


_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class ScheduleConfig(Section):
    """Clock-time trading windows for intraday bars (``allocgym.envs.context``).

    With windows set, an allocator re-optimises only at bars inside a window (and every
    ``baselines.rebalance_every``-th decision rule no longer applies); between them it holds
    its book. Daily bars carry no time of day: the windows are ignored there with a
    warning.
    """

    windows: tuple[str, ...] = ()
    """Windows in the exchange's time zone: ``"HH:MM"`` (the first bar at or after that
    time each day) or ``"HH:MM-HH:MM"`` (every bar from the start, inclusive, to the end,
    exclusive). Empty = no clock windows."""
    exchange_timezone: str = "America/New_York"
    """IANA time zone the windows are written in."""
    bar_timezone: str = "UTC"
    """IANA time zone of the bar timestamps (naive timestamps are read in it)."""

    @model_validator(mode="after")
    def _check(self) -> ScheduleConfig:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        for w in self.windows:
            parts = w.split("-")
            if len(parts) > 2 or not all(_CLOCK.match(x.strip()) for x in parts):
                raise ValueError(
                    f"schedule window {w!r}: write HH:MM (e.g. 09:35) or HH:MM-HH:MM (e.g. "
                    "09:30-10:00), 24-hour clock"
                )
            if len(parts) == 2 and parts[0].strip() >= parts[1].strip():
                raise ValueError(f"schedule window {w!r}: the end must be after the start")
        for key in ("exchange_timezone", "bar_timezone"):
            try:
                ZoneInfo(getattr(self, key))
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"schedule.{key} {getattr(self, key)!r} is not an IANA time zone: use "
                    "e.g. America/New_York or UTC"
                ) from None
        return self


# ----------------------------------------------------------------------------- env


class EnvConfig(Section):
    """Environment dynamics and reward terms (``allocgym.envs``)."""

    action_mode: Literal["weights", "budgets", "tilt"] = "weights"
    """``weights``: per-symbol targets; ``budgets``: one budget per strategy family;
    ``tilt``: multiplicative tilts of a prior allocator's book plus a gross head (a zero
    action reproduces the prior exactly)."""
    decision_interval: PosInt = 1
    """Bars between the agent's decisions. On the bars in between the env holds the book
    (drifting with prices), or keeps proposing a target that a per-decision trade limit
    cut short: the rule the baselines rebalance by. The training env steps one decision
    at a time (the reward sums the bars in between)."""
    tilt_prior: Literal["equal_weight", "inverse_volatility", "hrp", "risk_budgeting"] = (
        "equal_weight"
    )
    """Prior allocator of the ``tilt`` action mode (built from the ``baselines`` section,
    re-optimised at every decision bar from data up to that bar)."""
    tilt_scale: Pos = 1.0
    """``tilt`` mode: weight i is ``prior_i * exp(tilt_scale * a_i)`` before renormalising
    to the target gross (so an action of 1 multiplies a weight by e^tilt_scale)."""
    tilt_gross_scale: Pos = 0.5
    """``tilt`` mode: target gross ``prior_gross * exp(tilt_gross_scale * a_gross)``, at
    most ``max(prior_gross, risk.max_gross)``."""
    split: Literal["train", "validation", "test", "all"] = "train"
    """Split the episodes are drawn from (``all``: every bar of the data, e.g. synthetic)."""
    episode_length: PosInt = 252
    """Bars per episode (decisions when ``decision_interval`` is 1, else about this many
    bars over ``decision_interval``); truncated after this many bars or at the split's
    last bar."""
    initial_equity: Pos = 1.0e6
    """Starting equity in currency."""
    cvar_alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.95
    """CVaR confidence level."""
    cvar_window: PosInt = 63
    """Days of asset returns (ex-ante) or portfolio returns (realized) in the CVaR term."""
    cvar_mode: Literal["ex_ante", "realized"] = "ex_ante"
    """Ex-ante historical CVaR of the approved book over the last ``cvar_window`` days of
    asset returns, or realized CVaR of the portfolio's last ``cvar_window`` returns (the
    cash it held before the episode counts as zero returns)."""
    cvar_weight: NonNeg = 0.02
    """Weight of the CVaR penalty. A fully invested daily book has an ex-ante CVaR95 of
    about 0.03 against an expected log growth of about 0.0004 per bar, so 0.02 makes the
    penalty comparable to the growth term; 0.5 would drive every agent into cash."""
    intervention_weight: NonNeg = 0.01
    """Weight of the gate-intervention penalty (L1 proposed -> approved)."""
    turnover_weight: NonNeg = 0.0
    """Weight of the optional turnover penalty."""
    drawdown_weight: NonNeg = 0.0
    """Weight of the optional drawdown penalty."""
    drawdown_kill: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    """Drawdown (from the episode's equity peak) at which the next decision runs with the
    kill switch engaged (book flattened) and the episode terminates."""
    logit_scale: Pos = 3.0
    """Action in [-1, 1] times this is a softmax logit (long-only weights and budgets)."""
    audit_path: str | None = None
    """JSONL file of hash-chained audit records, one per env step (``None`` = no audit)."""

    @model_validator(mode="after")
    def _interval_mode(self) -> EnvConfig:
        if self.decision_interval > 1 and self.action_mode == "budgets":
            raise ValueError(
                f"env.decision_interval = {self.decision_interval} needs action_mode weights "
                "or tilt (budgets are re-netted from every bar's intents): set "
                "env.decision_interval=1 or change env.action_mode"
            )
        return self


# ----------------------------------------------------------------------------- training


class AssetSetConfig(Section):
    """Permutation-equivariant asset-set network (``allocgym.agents.policies``).

    A shared per-asset encoder maps each asset's features (plus the encoded global
    features) to an embedding; the embeddings are pooled into a permutation-invariant
    context (EIIE / Deep Sets). With ``equivariant_actor`` the PPO/A2C actor maps each
    asset's embedding to that asset's logit and the context to the cash logit, so
    permuting assets permutes the action.
    """

    encoder: tuple[PosInt, ...] = (64, 64)
    """Hidden sizes of the shared per-asset encoder; the last one is the embedding size."""
    global_encoder: tuple[PosInt, ...] = (32,)
    """Hidden sizes of the encoder of the global features (regime, exposure, drawdown, cash)."""
    pooling: Literal["mean", "max", "mean_max", "attention"] = "mean_max"
    """Pooling of the per-asset embeddings into the context (``attention``: softmax-weighted)."""
    context_mixing: bool = True
    """Feed the pooled context back into every asset through one shared layer, then pool again."""
    equivariant_actor: bool = True
    """PPO/A2C: per-asset actor head and shared per-asset log-std; False = MLP heads over the
    flattened features. SAC and recurrent PPO always use MLP heads."""
    head: tuple[PosInt, ...] = (64,)
    """Hidden sizes of the per-asset actor head, the context actor head and the value head."""


class SACConfig(Section):
    """Soft actor-critic hyperparameters (``algo: sac`` only)."""

    buffer_size: PosInt = 100_000
    """Replay buffer capacity in transitions."""
    learning_starts: Annotated[int, Field(ge=0)] = 1_000
    """Environment steps of uniformly random actions before learning starts."""
    tau: Annotated[float, Field(gt=0.0, le=1.0)] = 0.005
    """Polyak coefficient of the target-critic update."""
    train_freq: PosInt = 1
    """Vector-env steps between gradient phases."""
    gradient_steps: PosInt = 1
    """Gradient steps per gradient phase."""
    ent_coef: str | Pos = "auto"
    """Entropy coefficient; ``auto`` (or ``auto_0.1``) learns it against the target entropy."""
    save_replay_buffer: bool = True
    """Store the replay buffer with the latest checkpoint so a resumed run is exact."""

    @model_validator(mode="after")
    def _check(self) -> SACConfig:
        if isinstance(self.ent_coef, str) and not self.ent_coef.startswith("auto"):
            raise ValueError(f"ent_coef {self.ent_coef!r}: use a positive number or 'auto[_init]'")
        return self


class RecurrentConfig(Section):
    """LSTM settings of sb3-contrib's RecurrentPPO (``algo: recurrent_ppo`` only)."""

    lstm_hidden_size: PosInt = 64
    """Hidden units per LSTM layer."""
    n_lstm_layers: PosInt = 1
    """Stacked LSTM layers."""
    shared_lstm: bool = False
    """One LSTM for actor and critic (otherwise the critic has its own when enabled)."""
    enable_critic_lstm: bool = True
    """Give the critic its own LSTM (ignored when ``shared_lstm``)."""


class TrainConfig(Section):
    """Agent training (``allocgym.agents``); hyperparameters are documented per field.

    Steps are environment steps summed over ``n_envs`` (SB3's ``num_timesteps``).
    """

    algo: Literal["ppo", "a2c", "sac", "recurrent_ppo"] = "ppo"
    """Stable-baselines3 algorithm (``recurrent_ppo`` is sb3-contrib's RecurrentPPO)."""
    policy: Literal["mlp", "asset_set"] = "asset_set"
    """Plain MLP or the permutation-equivariant asset-set extractor."""
    total_timesteps: Annotated[int, Field(gt=0, le=10**10)] = 100_000
    """Environment steps to train for (summed over n_envs); at most 1e10 (months at this
    env's thousands of steps per second: a larger count is a typo)."""
    n_envs: PosInt = 16
    """Portfolios stepped together in ``PortfolioVecEnv``."""
    seed: Seed = 0
    """Seed of the env, the policy and torch."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Torch device; ``auto`` picks CUDA when present."""
    learning_rate: Pos = 3.0e-4
    """Optimizer step size (constant)."""
    n_steps: PosInt = 128
    """On-policy rollout length per env (PPO, A2C, RecurrentPPO); a rollout has
    ``n_steps * n_envs`` transitions."""
    batch_size: PosInt = 256
    """Minibatch size (PPO/RecurrentPPO: must divide into the rollout; SAC: replay sample)."""
    n_epochs: PosInt = 10
    """PPO passes over each rollout."""
    gamma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.99
    """Discount factor (also VecNormalize's reward-return discount)."""
    gae_lambda: Frac = 0.95
    """GAE lambda of the advantage estimate (PPO, A2C, RecurrentPPO)."""
    clip_range: Pos = 0.2
    """PPO policy-ratio clip."""
    ent_coef: NonNeg = 0.0
    """Entropy bonus of the on-policy loss."""
    vf_coef: NonNeg = 0.5
    """Value-loss weight of the on-policy loss."""
    max_grad_norm: Pos = 0.5
    """Gradient-norm clip (on-policy algorithms)."""
    target_kl: Pos | None = None
    """PPO: stop an update's epochs early when the approximate KL exceeds it; None = never."""
    net_arch: tuple[PosInt, ...] = (64, 64)
    """Hidden sizes of the actor and critic MLPs (``policy: mlp``, SAC and RecurrentPPO heads)."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Activation of every hidden layer."""
    ortho_init: bool = True
    """Orthogonal initialisation (on-policy algorithms)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian action noise (on-policy algorithms)."""
    normalize_obs: bool = False
    """Wrap the env in VecNormalize observation normalisation (statistics saved with the model)."""
    normalize_reward: bool = False
    """VecNormalize reward scaling by the running std of the discounted return."""
    clip_obs: Pos = 10.0
    """Clip of normalised observations (VecNormalize)."""
    eval_freq: Annotated[int, Field(ge=0)] = 10_000
    """Steps between validation evaluations (0 = only at the end)."""
    eval_episodes: PosInt = 8
    """Validation episodes per evaluation (run in parallel, fixed seeds every time)."""
    eval_split: Literal["train", "validation", "test"] = "validation"
    """Split the periodic evaluation and the best-model selection use."""
    eval_baselines: tuple[Literal["equal_weight", "hrp"], ...] = ("equal_weight", "hrp")
    """Baselines run through the same evaluation env and seeds and logged beside the agent."""
    checkpoint_freq: Annotated[int, Field(ge=0)] = 20_000
    """Steps between resumable checkpoints (0 = none); taken at the next rollout boundary."""
    keep_checkpoints: PosInt = 3
    """Most recent checkpoints kept on disk."""
    deterministic: bool = False
    """``torch.use_deterministic_algorithms(True)``: bit-reproducible runs, possibly slower."""
    torch_threads: PosInt | None = 1
    """Torch intra-op threads during training; None = torch's default (all cores). One thread
    is fastest for these small networks (intra-op sync dominates on a busy CPU); raise it for
    wide universes on a dedicated machine."""
    asset_set: AssetSetConfig = AssetSetConfig()
    sac: SACConfig = SACConfig()
    recurrent: RecurrentConfig = RecurrentConfig()


# ----------------------------------------------------------------------------- baselines


class _ShadowsRiskLimits(Section):
    """A baselines sub-section whose limits shadow limits of the ``risk`` section: one left
    unset (None) takes the ``risk`` value, one set may only tighten it."""

    _key: ClassVar[str]
    """The sub-section's name under ``baselines`` (quoted in messages)."""
    _shadows: ClassVar[tuple[tuple[str, str], ...]]
    """(limit of this section, the ``risk`` limit it shadows)."""

    def looser_limits(self, risk: RiskConfig) -> list[str]:
        """Messages for each limit set here looser than the ``risk`` limit it shadows."""
        out: list[str] = []
        for own_name, shared in self._shadows:
            own, limit = getattr(self, own_name), getattr(risk, shared)
            key = f"baselines.{self._key}.{own_name}"
            if isinstance(own, bool):
                if own is False and limit:
                    out.append(
                        f"{key} = false while risk.{shared} = true: the gates refuse shorts; "
                        f"unset it (null: inherit) or set risk.{shared}=false"
                    )
            elif own is not None and limit is not None and own > limit:
                out.append(
                    f"{key} = {own:g} is looser than risk.{shared} = {limit:g}: a baseline may "
                    f"only tighten a risk limit; unset it (null: inherit) or set it <= {limit:g}"
                )
        return out

    def within(self, risk: RiskConfig) -> Self:
        """This section with every limit left unset (None) taken from ``risk``.

        Raises
        ------
        ConfigError
            A limit set here is looser than the ``risk`` one.
        """
        bad = self.looser_limits(risk)
        if bad:
            raise ConfigError("; ".join(bad))
        unset = [(own, shared) for own, shared in self._shadows if getattr(self, own) is None]
        return self.model_copy(update={own: getattr(risk, shared) for own, shared in unset})

    def resolved(self) -> Self:
        """The section an allocator runs with: as given when every limit the ``risk``
        section always sets is set here too, else :meth:`within` the default ``risk``
        section. (A limit that is optional in ``risk``, like the beta tolerance, may stay
        None: no constraint.)"""
        required = RiskConfig.model_fields
        unset = any(
            getattr(self, own) is None and required[shared].default is not None
            for own, shared in self._shadows
        )
        return self.within(RiskConfig()) if unset else self


class HRPConfig(Section):
    """Hierarchical Risk Parity (``allocgym.baselines.hrp.HRP``)."""

    linkage_method: Literal["single", "ward", "average", "complete"] = "ward"
    """scipy linkage method of the correlation-distance tree (Ward by default)."""
    covariance: CovarianceMethod = "sample"
    """Covariance estimator for the bisection risks (``allocgym.estimates``)."""
    distance_source: Literal["returns", "covariance"] = "returns"
    """Correlation behind the distance: Pearson of the returns (skfolio's convention) or of
    the chosen covariance estimate."""
    halflife: Pos = 63.0
    """EWMA half-life in bars (``covariance='ewma'`` only)."""
    min_weight: Frac = 0.0
    """Per-asset lower weight bound (n_assets * min_weight must be <= 1)."""
    max_weight: Frac = 1.0
    """Per-asset upper weight bound (n_assets * max_weight must be >= 1)."""

    @model_validator(mode="after")
    def _check(self) -> HRPConfig:
        if self.min_weight > self.max_weight:
            raise ValueError(
                f"HRP bounds need min_weight <= max_weight; got min_weight={self.min_weight}, "
                f"max_weight={self.max_weight}: lower min_weight or raise max_weight"
            )
        return self


class QPConfig(_ShadowsRiskLimits):
    """Mean-variance QP with an L1 trade cost.

    It maximizes z'w - lambda w'Sigma w - gamma ||C (w - w_cur)||_1.

    The hard limits it shares with the risk gates (per-name cap, long-only, gross, net,
    beta, sector cap) come from the ``risk`` section when left unset (None): the QP
    optimises inside the limits the gates enforce, so they never cut its book silently. A
    value set here may only tighten the ``risk`` limit (a looser one is refused). The limits
    the QP was first specified with (a net cap of 0.3, a turnover cap of 0.2, 0.05 per
    name, and a beta tolerance of 0.05) are infeasible together with ``sum w = 1`` and a
    book starting in cash, so here the turnover caps are opt-in (``None`` disables them).
    """

    lambda_risk: NonNeg = 0.1
    """Risk aversion lambda."""
    gamma_cost: NonNeg = 0.05
    """Cost aversion gamma on the L1 trade cost."""
    risk_model: Literal["correlation", "covariance"] = "correlation"
    """Sigma in the objective: by default the shrunk correlation matrix (z is risk-scaled)."""
    covariance: CovarianceMethod = "ledoit_wolf"
    """Estimator behind Sigma (``allocgym.estimates``)."""
    halflife: Pos = 63.0
    """EWMA half-life in bars (``covariance='ewma'`` only)."""
    budget: float = 1.0
    """Target of sum w (fully invested: 1); lowered to the gross and net caps when they are
    smaller."""
    budget_equality: bool = True
    """True: sum w == budget; False: sum w <= budget (the rest stays in cash)."""
    per_name_cap: Pos | None = None
    """Cap on |w_i|; None = ``risk.max_symbol_weight``."""
    long_only: bool | None = None
    """Add w >= 0; None = ``risk.long_only``."""
    max_gross: Pos | None = None
    """Cap on sum |w_i|; None = ``risk.max_gross``."""
    max_net: NonNeg | None = None
    """Cap on |sum w_i|; None = ``risk.max_net`` (a cap below ``budget``
    is infeasible when ``budget_equality`` holds)."""
    max_turnover: Pos | None = None
    """Cap on sum |w_i - w_cur,i| per rebalance."""
    max_turnover_per_name: Pos | None = None
    """Cap on |w_i - w_cur,i|."""
    beta_tolerance: NonNeg | None = None
    """Cap on |beta'w|; None = ``risk.beta_tolerance`` (None there too:
    no beta constraint); betas from the context or the benchmark."""
    sector_cap: Pos | None = None
    """Per-sector cap on sum |w_i| over the sector; None = ``risk.max_sector_gross`` (default
    0.30). Symbols without a sector are in no sector."""
    cvar_weight: NonNeg = 0.0
    """Weight kappa of the CVaR fragility term (Rockafellar-Uryasev); 0 leaves it out."""
    cvar_beta: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.95
    """CVaR confidence level."""
    cvar_scenarios: PosInt = 252
    """Trailing return rows used as CVaR scenarios."""
    default_cost: NonNeg = 0.001
    """Cost per unit of weight traded when the context carries no costs (decimal)."""
    factor_min_assets: PosInt = 250
    """From this many assets on, Sigma enters as a factor model B F B' + D."""
    n_factors: PosInt = 20
    """Statistical (PCA) factors of the factor form."""
    max_pair_correlation: Annotated[float, Field(gt=-1.0, lt=1.0)] | None = None
    """Cap on the window correlation between any two held names; None = off. Enforced by
    iterative exclusion: while two held names correlate above it, the one with the smaller
    weight is pinned to 0 and the QP re-solved."""
    solver: Literal["CLARABEL", "OSQP", "SCS", "ECOS"] = "CLARABEL"
    """Primary solver."""
    fallback_solver: Literal["CLARABEL", "OSQP", "SCS", "ECOS"] | None = "SCS"
    """Second solver of the fallback chain (then HRP, then the current book)."""

    _key: ClassVar[str] = "qp"
    _shadows: ClassVar[tuple[tuple[str, str], ...]] = (
        ("per_name_cap", "max_symbol_weight"),
        ("long_only", "long_only"),
        ("max_gross", "max_gross"),
        ("max_net", "max_net"),
        ("beta_tolerance", "beta_tolerance"),
        ("sector_cap", "max_sector_gross"),
    )

    def within(self, risk: RiskConfig) -> Self:
        """This section with every limit left unset (None) taken from ``risk`` and the
        budget lowered to the gross and net caps.

        Raises
        ------
        ConfigError
            A limit set here is looser than the ``risk`` one.
        """
        return super().within(risk)._fitted_budget()

    def resolved(self) -> Self:
        """As :meth:`_ShadowsRiskLimits.resolved`, the budget lowered to the gross and net
        caps either way (a section with every limit set keeps its limits)."""
        return super().resolved()._fitted_budget()

    def _fitted_budget(self) -> Self:
        caps = [c for c in (self.max_gross, self.max_net) if c is not None]
        budget = min(self.budget, *caps)
        return self if budget == self.budget else self.model_copy(update={"budget": budget})


class GreedyConfig(Section):
    """Greedy top-K rotation with hysteresis: cut a low performer, buy a better name."""

    K: PosInt = 20
    """Names held at most (top-K book)."""
    K_buy: PosInt = 18
    """A name is bought only when ranked within the top K_buy."""
    K_sell: PosInt = 24
    """A held name is cut only when ranked below K_sell (and z < z_cut)."""
    z_keep: float = 0.8
    """A name is bought only when its z-score exceeds z_keep."""
    z_cut: float = 0.2
    """A held name is cut only when its z-score is below z_cut (and rank > K_sell)."""
    delta_z_min: NonNeg = 0.25
    """A rotation needs z_in - z_out >= delta_z_min."""
    tau_utility: float = 0.0
    """A rotation needs utility w_t (z_in - z_out - gamma (C_in + C_out)) > tau_utility."""
    gamma_cost: NonNeg = 0.05
    """Cost aversion in the rotation utility."""
    budget: Pos = 1.0
    """Target weight of a bought name is budget / K."""
    default_cost: NonNeg = 0.001
    """Cost per unit of weight traded when the context carries no costs (decimal)."""
    atr_multiple: Pos | None = 1.2
    """ATR exit: a held name is cut once it has fallen this many ATRs from its highest
    close since entry (the ATR scaled to the decision interval); null disables it."""
    atr_window: PosInt = 14
    """Bars of the ATR (mean absolute close-to-close return)."""
    dead_money_bars: PosInt | None = 120
    """Dead-money timeout: a name held this many bars or more without progress (return
    since entry at or below dead_money_min_return) is cut; null disables it. The design's
    120-minute timeout is 120 one-minute bars; on daily bars it is about six months."""
    dead_money_min_return: float = 0.0
    """Return since entry (decimal) a name must exceed to count as progress."""
    min_adv_notional: NonNeg = 1.0e6
    """Liquidity filter: names whose average daily traded notional (currency) is below it
    are not bought; 0 disables the floor."""
    max_spread_bps: Pos | None = 50.0
    """Liquidity filter: names whose quoted spread (bps) is above it are not bought; null
    disables the cap."""
    score_horizons: tuple[PosInt, ...] = (5, 21, 63)
    """Momentum horizons (bars) of the risk-scaled z-scores; empty = rank on the context's
    alpha scores (``allocgym.features.alpha_scores``)."""
    horizon_weights: tuple[NonNeg, ...] = (1.0, 1.0, 1.0)
    """Weight of each horizon's z-score in the merged score (normalised to sum 1)."""
    vol_window: Annotated[int, Field(ge=2)] = 63
    """Bars of the daily volatility that risk-scales the momentum."""
    max_pair_correlation: Annotated[float, Field(gt=-1.0, le=1.0)] | None = None
    """Correlation cap: a candidate whose return correlation with a held or already
    admitted name exceeds it is not bought; null disables it."""
    corr_window: Annotated[int, Field(ge=2)] = 63
    """Bars of the return correlations of the cap."""

    @model_validator(mode="after")
    def _check(self) -> GreedyConfig:
        if len(self.horizon_weights) != len(self.score_horizons):
            raise ValueError(
                f"horizon_weights {list(self.horizon_weights)} has {len(self.horizon_weights)} "
                f"entries for score_horizons {list(self.score_horizons)}: give one per horizon"
            )
        if self.score_horizons and sum(self.horizon_weights) <= 0:
            raise ValueError(
                f"horizon_weights {list(self.horizon_weights)} sum to 0: give a positive weight"
            )
        if not self.K_buy <= self.K <= self.K_sell:
            raise ValueError(
                f"need K_buy <= K <= K_sell for hysteresis; got K_buy={self.K_buy}, "
                f"K={self.K}, K_sell={self.K_sell}"
            )
        if self.z_cut > self.z_keep:
            raise ValueError(
                f"z_cut {self.z_cut} > z_keep {self.z_keep}: the hysteresis band is inverted"
            )
        return self


class BarbellConfig(_ShadowsRiskLimits):
    """Cluster-aware barbell (``allocgym.baselines.cluster_barbell``)."""

    n_clusters: PosInt | None = 10
    """Clusters cut from the correlation-distance tree; set exactly one of this and
    ``distance_threshold``."""
    distance_threshold: Pos | None = None
    """Cut height of the tree in correlation-distance units (instead of ``n_clusters``)."""
    linkage: Literal["single", "complete", "average", "ward"] = "ward"
    """scipy linkage method."""
    cluster_cap: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25
    """Cap on each cluster's total weight, fraction of equity."""
    sleeve_size: PosInt = 5
    """Aggressor-sleeve clusters: the top ones by alpha rank."""
    quiet_sleeve: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.15
    """Sleeve fraction of equity in the QUIET state (core gets the rest)."""
    normal_sleeve: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.10
    """Sleeve fraction of equity in the NORMAL state."""
    crisis_sleeve: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    """Sleeve fraction of equity in the CRISIS state."""
    objective: Literal["min_var", "max_sharpe"] = "min_var"
    """Layer-1 objective across core clusters."""
    fragility_weight: NonNeg = 0.5
    """lambda of the CVaR fragility term in the layer-1 risk sigma + lambda * CVaR."""
    cvar_alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.95
    """Confidence level of the cluster CVaRs."""
    hybrid_weight: Frac = 0.5
    """Inverse-volatility share of the layer-2 hybrid (the rest is alpha rank)."""
    alpha_window: Annotated[int, Field(ge=2)] = 126
    """Bars of risk-adjusted momentum used as alpha when no scores are given."""
    lead_window: PosInt = 63
    """Bars of cumulative return that pick each cluster's lead asset."""
    covariance: CovarianceMethod = "ledoit_wolf"
    """Estimator behind the asset correlations and the cluster covariance."""
    halflife: Pos = 63.0
    """EWMA half-life in bars (``covariance='ewma'`` only)."""
    solver: str | None = None
    """cvxpy solver for layer 1; None = CLARABEL."""
    max_weight: Frac | None = None
    """Cap on each name's weight; None = ``risk.max_symbol_weight`` (a value may only
    tighten it). A cluster holds at most this over its largest layer-2 weight, so the
    gates' symbol cap does not cut the book into cash."""

    _key: ClassVar[str] = "barbell"
    _shadows: ClassVar[tuple[tuple[str, str], ...]] = (("max_weight", "max_symbol_weight"),)

    @model_validator(mode="after")
    def _check(self) -> BarbellConfig:
        if (self.n_clusters is None) == (self.distance_threshold is None):
            raise ValueError(
                f"n_clusters={self.n_clusters}, distance_threshold={self.distance_threshold}: "
                "set exactly one (the other to null)"
            )
        top = max(self.quiet_sleeve, self.normal_sleeve, self.crisis_sleeve)
        if self.cluster_cap < top:
            raise ValueError(
                f"cluster_cap {self.cluster_cap} < largest sleeve fraction {top}: raise "
                "cluster_cap or shrink the sleeve fractions"
            )
        return self

    @property
    def sleeve_fractions(self) -> tuple[float, float, float]:
        """Sleeve fraction of equity in the QUIET, NORMAL and CRISIS states (the order of
        ``allocgym.regime.BARBELL_STATES``)."""
        return (self.quiet_sleeve, self.normal_sleeve, self.crisis_sleeve)

    @property
    def min_core(self) -> int:
        """Fewest core clusters that can hold the largest core fraction under the cap."""
        return math.ceil(max(1.0 - f for f in self.sleeve_fractions) / self.cluster_cap - 1e-9)


class ClassicConfig(_ShadowsRiskLimits):
    """Settings shared by the classic allocators (min-variance, max-Sharpe, risk budgeting,
    min-CVaR, Black-Litterman, Kelly)."""

    covariance: CovarianceMethod = "ledoit_wolf"
    """Covariance estimator (``allocgym.estimates``)."""
    halflife: Pos = 63.0
    """EWMA half-life in bars (``covariance='ewma'`` only)."""
    long_only: bool | None = None
    """Refuse short positions; None = ``risk.long_only``."""
    max_weight: Pos | None = None
    """Bound on |w_i|; None = ``risk.max_symbol_weight``. A value set here may only tighten
    it. Where fewer than 1 / max_weight names are active, a fully invested allocator's
    bound is raised to 1 / n_active for that window (the gates then cap the book). Risk
    budgeting does not apply it: its weights are the exact risk-budget solution, which
    the gates cap."""
    risk_free_rate: float = 0.0
    """Annualised risk-free rate subtracted from mean returns (decimal)."""
    periods_per_year: Pos = 252.0
    """Bars per year: converts annualised inputs to per-bar units."""
    solver: str | None = None
    """cvxpy solver; None = CLARABEL (HiGHS for the min-CVaR LP)."""

    _key: ClassVar[str] = "classic"
    _shadows: ClassVar[tuple[tuple[str, str], ...]] = (
        ("max_weight", "max_symbol_weight"),
        ("long_only", "long_only"),
    )

    @property
    def risk_free_per_bar(self) -> float:
        """``risk_free_rate`` in per-bar units (decimal)."""
        return self.risk_free_rate / self.periods_per_year


class RiskBudgetConfig(Section):
    """Risk budgeting / equal risk contribution (``baselines.risk_budgeting``)."""

    budgets: Mapping[str, NonNeg] | None = None
    """Symbol -> risk budget (renormalised; unlisted symbols get 0); None = equal risk."""

    @model_validator(mode="after")
    def _check(self) -> RiskBudgetConfig:
        if self.budgets is not None and not any(v > 0 for v in self.budgets.values()):
            raise ValueError(
                f"budgets {dict(self.budgets)}: give at least one budget > 0 (or null: equal risk)"
            )
        return self


class MinCVaRConfig(Section):
    """Minimum CVaR, Rockafellar-Uryasev LP (``baselines.cvar``)."""

    alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.95
    """CVaR confidence level."""
    window: Annotated[int, Field(ge=2)] | None = None
    """Trailing bars used as scenarios; None = the whole lookback."""


class ParetoConfig(Section):
    """Multi-objective Pareto allocator (``baselines.pareto``): the front over expected
    return, CVaR, a drawdown proxy and expected liquidity cost, traced by ε-constraints;
    it trades the highest-return point whose CVaR is at most ``cvar_target``. Weight bounds
    come from ``classic``."""

    n_points: Annotated[int, Field(ge=2)] = 20
    """Points traced per front (the minimum-CVaR and maximum-return ends included)."""
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.95
    """CVaR confidence level."""
    window: Annotated[int, Field(ge=2)] | None = None
    """Trailing bars used as scenarios and for the mean return; None = the whole lookback."""
    cvar_target: Pos | None = None
    """CVaR (one-bar loss, decimal) the traded point may not exceed; None = the CVaR of the
    equal-weight book on the same scenarios. When no point meets it the minimum-CVaR point
    is traded (a fallback counted in the report)."""
    max_drawdown: Pos | None = None
    """Cap on the drawdown proxy (largest fall of the summed scenario P&L path, decimal);
    None = uncapped (the drawdown is then only a secondary objective)."""
    max_cost: Pos | None = None
    """Cap on the expected liquidity cost of the rebalance (fraction of equity); None =
    uncapped."""
    default_cost: NonNeg = 0.001
    """Cost per unit of weight traded when the context carries no costs (decimal)."""


class FactorModelConfig(Section):
    """Factor model (``allocgym.factors``) of the factor risk parity allocator
    (``baselines.factor_risk_parity``) and of the evaluation's factor attribution.

    Statistical factors are the principal components of the trailing window's covariance:
    the smallest number explaining ``variance_threshold`` of the variance, at most
    ``max_factors``. With ``data.factors`` set, the attribution uses those factor returns
    (exposures by time-series regression on the window) instead."""

    window: Annotated[int, Field(ge=3)] | None = None
    """Trailing bars of each fit; None = the baselines' lookback."""
    variance_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.6
    """Share of the window's variance the kept principal components must explain."""
    max_factors: PosInt = 5
    """Most principal components kept."""
    refit_every: PosInt = 21
    """Steps between refits of the attribution's factor model (held in between)."""


class BLViewConfig(Section):
    """One Black-Litterman view: sum_i assets[i] * mu_i = expected_return."""

    assets: Annotated[Mapping[str, float], Field(min_length=1)]
    """Symbol -> coefficient (e.g. {AAPL: 1, MSFT: -1} for a relative view)."""
    expected_return: float
    """Annualised decimal return of the view portfolio."""
    variance: NonNeg | None = None
    """Uncertainty (variance) of the annualised view; None = He-Litterman default."""


class BlackLittermanConfig(Section):
    """Black-Litterman posterior + mean-variance step (``baselines.black_litterman``)."""

    tau: Pos = 0.05
    """Uncertainty scale of the prior mean."""
    risk_aversion: Pos = 2.5
    """delta of the implied prior and of the mean-variance step."""
    prior_weights: Mapping[str, NonNeg] | None = None
    """Symbol -> prior (market) weight; None = equal weight."""
    views: tuple[BLViewConfig, ...] = ()
    """User views (none = the prior)."""


class KellyConfig(_ShadowsRiskLimits):
    """Capped fractional Kelly (``baselines.classic.FractionalKelly``)."""

    fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    """Kelly fraction (0.5 = half Kelly)."""
    max_weight: Pos | None = None
    """Cap on |w_i|; None = ``risk.max_symbol_weight`` (a value may only tighten it)."""
    max_gross: Pos | None = None
    """Cap on sum |w_i| (the rest is cash); None = ``risk.max_gross``."""

    _key: ClassVar[str] = "kelly"
    _shadows: ClassVar[tuple[tuple[str, str], ...]] = (
        ("max_weight", "max_symbol_weight"),
        ("max_gross", "max_gross"),
    )


class RegimeSwitchConfig(Section):
    """Regime-switch heuristic (``baselines.classic.RegimeSwitch``)."""

    momentum_window: PosInt = 63
    """Bars of trailing log growth that rank the trend/momentum names."""
    tilt: Frac = 0.5
    """Tilt strength at full regime confidence (trend: +, mean reversion: -)."""
    high_vol_gross: Frac = 0.5
    """Gross exposure in high_volatility (the rest is cash)."""
    uncertain_gross: Frac = 1.0
    """Gross exposure in uncertain / unknown regimes (defensive inverse-vol weights)."""


class BaselinesConfig(Section):
    """Baseline allocators (``allocgym.baselines``)."""

    lookback: PosInt = 252
    """Bars of return history each baseline estimates from."""
    rebalance_every: PosInt = 21
    """Bars between baseline re-optimisations (weights are held in between)."""
    # [baselines:hrp-qp-greedy] (HRP/QP/greedy helper adds its sub-configs here)
    hrp: HRPConfig = HRPConfig()
    """Hierarchical Risk Parity."""
    qp: QPConfig = QPConfig()
    """Mean-variance QP engine."""
    greedy: GreedyConfig = GreedyConfig()
    """Greedy top-K rotation engine."""
    engine: Literal["greedy", "qp"] = "greedy"
    """Engine the switching allocator starts with (``baselines.engine``)."""
    # [baselines:barbell-classics] (barbell/classics helper adds its sub-configs here)
    barbell: BarbellConfig = BarbellConfig()
    """Cluster-aware barbell."""
    classic: ClassicConfig = ClassicConfig()
    """Shared settings of the classic allocators."""
    risk_budget: RiskBudgetConfig = RiskBudgetConfig()
    """Risk budgeting / equal risk contribution."""
    min_cvar: MinCVaRConfig = MinCVaRConfig()
    """Minimum CVaR (Rockafellar-Uryasev)."""
    pareto: ParetoConfig = ParetoConfig()
    """Multi-objective Pareto front (return, CVaR, drawdown, liquidity cost)."""
    factor_model: FactorModelConfig = FactorModelConfig()
    """Statistical factors of factor risk parity and of the factor attribution."""
    black_litterman: BlackLittermanConfig = BlackLittermanConfig()
    """Black-Litterman with user views."""
    kelly: KellyConfig = KellyConfig()
    """Capped fractional Kelly."""
    regime_switch: RegimeSwitchConfig = RegimeSwitchConfig()
    """Regime-switch heuristic."""

    def within(self, risk: RiskConfig) -> BaselinesConfig:
        """This section with every limit it shares with the risk gates resolved: unset
        (None) limits of ``qp``, ``classic``, ``kelly`` and ``barbell`` take the ``risk``
        value, the QP
        budget is lowered to its gross and net caps. The baselines are built from it, so
        ``risk`` is the one source of these limits.

        Raises
        ------
        ConfigError
            A limit set here is looser than the ``risk`` one (:func:`looser_baseline_limits`).
        """
        bad = looser_baseline_limits(self, risk)
        if bad:
            raise ConfigError("; ".join(bad))
        return self.model_copy(
            update={name: getattr(self, name).within(risk) for name in _SHADOWING_SECTIONS}
        )


_SHADOWING_SECTIONS = ("qp", "classic", "kelly", "barbell")
"""The ``baselines`` sub-sections whose limits shadow the ``risk`` section's."""


def looser_baseline_limits(section: BaselinesConfig, risk: RiskConfig) -> list[str]:
    """Messages for each baseline limit set looser than the ``risk`` limit it shadows."""
    return [
        msg for name in _SHADOWING_SECTIONS for msg in getattr(section, name).looser_limits(risk)
    ]


# ----------------------------------------------------------------------------- serving


class ServingConfig(Section):
    """Frozen-policy runtime (``allocgym.serving``)."""

    max_staleness_s: Pos = 86_400.0 * 4
    """Oldest request timestamp accepted, in seconds behind the server clock (older:
    rejected, coded STALE_INPUT)."""
    max_future_skew_s: NonNeg = 300.0
    """Request timestamps at most this far ahead of the server clock are accepted (more:
    rejected, coded INVALID_INPUT)."""
    deadline_ms: Pos = 50.0
    """Model-call deadline; slower calls fall back (MODEL_FALLBACK)."""
    fallback: Literal["hold", "hrp"] = "hold"
    """Defensive allocation when the model fails or the allocator is disabled: hold the
    current book, or HRP on the request's return window; either goes through the gates."""
    regime_source: Literal["model", "request"] = "model"
    """Regime context of the gates: ``model`` = the FeatureBuilder's RegimeModel (as in
    training); ``request`` = the request's ``regime`` field, or
    ``TRADING_ALLOCATOR_DEFAULT_REGIME`` when the request has none. A request's regime
    overrides the model in both cases."""
    max_history_bars: PosInt = 4096
    """Longest price history a request may carry (bounds the work per request)."""
    idempotency_cache: PosInt = 10_000
    """Decisions remembered by request id (LRU): a repeated id returns the stored decision."""
    max_in_flight: PosInt = 64
    """HTTP decisions queued or running at once; more are shed with 503."""
    max_queue_ms: Pos = 20.0
    """An HTTP decision that waited longer than this before starting is shed with 503."""
    shed_delay_ms: NonNeg = 50.0
    """A request shed on arrival gets its 503 after this delay (other requests are served
    meanwhile). Clients that resend at once, ignoring ``Retry-After``, then cannot keep
    the event loop answering sheds while the decisions wait for it: 64 such clients send
    at most 1,280 requests/s. 0 answers at once."""


# ----------------------------------------------------------------------------- evaluation

BaselineName = Literal[
    "all", "equal_weight", "inverse_volatility", "hrp", "qp", "greedy", "engine",
    "min_variance", "max_sharpe", "risk_budgeting", "min_cvar", "black_litterman",
    "fractional_kelly", "regime_switch", "cluster_barbell", "pareto", "factor_risk_parity",
]  # fmt: skip
"""Baselines ``allocgym evaluate`` knows (allocator ``name``s); ``all`` = every one."""


class PromotionConfig(Section):
    """Promotion gates (``allocgym.promotion``): candidate vs incumbent.

    Every comparison is out of sample (the evaluation split) and through the same env,
    gates and cost model. Ratios are annualised; costs are fractions of equity per year.
    """

    min_sharpe_improvement: NonNeg = 0.0
    """The candidate's Sharpe must exceed the incumbent's by more than this."""
    secondary_metrics: tuple[Literal["sortino", "calmar", "cvar", "max_drawdown"], ...] = (
        "sortino",
        "cvar",
    )
    """Risk-adjusted metrics that must not get worse than ``secondary_tolerance``."""
    secondary_tolerance: NonNeg = 0.10
    """Relative worsening allowed on each secondary metric (0.10 = 10%)."""
    min_dsr: Frac | None = None
    """Lowest Deflated Sharpe Ratio the candidate may have; None = not checked."""
    max_p_value: Frac | None = 0.05
    """Largest one-sided p-value of the paired stationary-bootstrap test that the
    candidate's Sharpe beats the incumbent's on the same bars (``evaluation.bootstrap``'s
    blocks, resamples and seed; with several seeds, the worst pair). 0.05: about the lower
    end of the report's 90 % interval above 0. None = not checked: the point Sharpe alone
    then decides, and a difference inside the noise promotes."""
    max_candidates: PosInt = 1
    """Candidates you will try on the same test bars, declared before looking: the
    significance check needs p <= ``max_p_value / max_candidates`` (Bonferroni: the chance
    that any of them passes by luck stays at most ``max_p_value``), and a candidate beyond
    that count in the attempts log is rejected. The first attempt on a set of test bars
    fixes the count and ``max_p_value`` for them: declare both before the first look."""
    attempts_log: str | None = None
    """The attempts log that counts them (``promotions.jsonl``); None: beside the study's
    trials ledger, else in the candidate's parent folder; a relative path is taken from
    the working directory. Candidates promoted from other folders count only when they
    share it: point them at one file."""
    max_concentration_increase: NonNeg = 0.10
    """Relative increase allowed in mean HHI concentration (0.10: at most 10% higher)."""
    max_concentration_abs: Frac | None = None
    """Absolute cap on the candidate's mean HHI; None = only the relative tolerance."""
    stress_max_return_drop: NonNeg = 0.02
    """Largest drop of annualised return allowed at each stress multiplier (decimal)."""
    stress_max_cost_increase: NonNeg = 0.02
    """Largest increase of annualised costs (fraction of equity per year) under stress."""


class BootstrapConfig(Section):
    """Paired stationary-bootstrap Sharpe tests of the evaluation report (``allocgym.stats``)."""

    mean_block: Annotated[float, Field(ge=1.0)] = 21.0
    """Mean block length in bars (geometric lengths; 21 = about a month of daily bars)."""
    n_boot: Annotated[int, Field(ge=100)] = 2000
    """Resamples (one set shared by every series: the tests are paired)."""
    alpha: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.10
    """1 minus the interval's coverage (0.10: 90 % intervals)."""
    seed: Seed = 0
    """Seed of the resampling: same seed, same intervals."""


class EvaluationConfig(Section):
    """Out-of-sample evaluation, reports and promotion (``allocgym.evaluation``).

    Every allocator walks the whole split once, deterministically, through the env's
    gates, execution policy and cost model (no random episodes).
    """

    split: Literal["train", "validation", "test", "all"] = "test"
    """Split the backtests walk (``test`` = the walk-forward out-of-sample split)."""
    baselines: tuple[BaselineName, ...] = ("all",)
    """Baselines run beside the agent (``all`` = every registered baseline)."""
    train_seeds: tuple[Seed, ...] = Field(default=(0,), min_length=1)
    """Training seeds of a multi-seed experiment: ``allocgym quickstart`` trains one run per
    seed (``seed_<k>/``; several give mean ± std rows). ``allocgym evaluate`` does not read
    it: it evaluates every ``seed_*`` run it finds (``--seeds`` picks some)."""
    agent_model: Literal["best", "final"] = "best"
    """Model evaluated from a run: best on validation (falls back to final) or final."""
    periods_per_year: Pos | Literal["auto"] = "auto"
    """Bars per year (annualisation of every reported figure). ``auto`` reads it from the
    walked bars' dates (``allocgym.data.bars_per_year``): 252 on daily bars, 252 x the
    median bars a day on intraday bars, 365.25 / the median gap in days on sparser ones."""
    cvar_alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.95
    """Confidence level of the reported CVaR."""
    var_alpha: Annotated[float, Field(gt=0.9, lt=1.0)] = 0.99
    """Confidence level of the report's VaR backtest (historical, Gaussian and EVT VaR of
    the held book, Kupiec and Christoffersen tests)."""
    var_window: Annotated[int, Field(ge=100)] = 500
    """Bars of asset-return scenarios behind each VaR forecast of that backtest (the EVT
    tail is the worst 10% of them, so at least 100)."""
    dsr_trials: PosInt | None = None
    """Trials N of the Deflated Sharpe Ratio, overriding the count of the trials ledger (or,
    without one, of the agent backtests evaluated together: seeds x configurations;
    baselines are never trials). The variance of the trials' Sharpe ratios still comes from
    the ledger, or from the agent seeds evaluated, so without a ledger at least 2 of them
    must have a finite Sharpe ratio (otherwise evaluation raises ConfigError)."""
    trials_ledger: str | None = None
    """The study's trials ledger (``trials.jsonl``, ``allocgym.ledger``) the DSR takes N and
    the variance of the trials' Sharpe ratios from (``train`` records a run there too); None
    = ``trials.jsonl`` in the evaluated run directory, its parent or its grandparent if
    there is one, else the agent seeds (flagged as weak, as is a ledger whose trials are the
    seeds of one configuration)."""
    bootstrap: BootstrapConfig = BootstrapConfig()
    check_invariants: bool = True
    """Run ``check_invariants`` on every gate decision (breaches are reported, must be 0)."""
    stress_multipliers: tuple[Annotated[float, Field(gt=1.0)], ...] = (10.0, 100.0)
    """Equity multiples of the capacity stress scenario (participation caps bind)."""
    promotion: PromotionConfig = PromotionConfig()

    @model_validator(mode="after")
    def _seeds_once(self) -> EvaluationConfig:
        twice = sorted({k for k in self.train_seeds if self.train_seeds.count(k) > 1})
        if twice:
            raise ValueError(
                f"train_seeds {list(self.train_seeds)} name {twice} twice: list each once"
            )
        return self


# ----------------------------------------------------------------------------- root


class AllocgymConfig(Section):
    """The whole configuration; every section has working defaults."""

    data: DataConfig = DataConfig()
    costs: CostConfig = CostConfig()
    risk: RiskConfig = RiskConfig()
    regime: RegimeConfig = RegimeConfig()
    execution: ExecutionConfig = ExecutionConfig()
    features: FeatureConfig = FeatureConfig()
    intents: IntentConfig = IntentConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    env: EnvConfig = EnvConfig()
    train: TrainConfig = TrainConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    serving: ServingConfig = ServingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @model_validator(mode="before")
    @classmethod
    def _old_baseline_defaults(cls, data: Any) -> Any:
        # Run directories and bundles written before the baselines inherited the risk
        # limits carry the old defaults qp.max_gross 1.5 and kelly.max_weight 0.25, looser
        # than the default risk limits: read them as "inherit", as they now default to.
        if not isinstance(data, Mapping) or not isinstance(data.get("baselines"), Mapping):
            return data
        base = dict(data["baselines"])
        changed = False
        for sub, key, old in (("qp", "max_gross", 1.5), ("kelly", "max_weight", 0.25)):
            section = base.get(sub)
            if isinstance(section, Mapping) and section.get(key) == old:
                base[sub] = {**section, key: None}
                changed = True
        return {**data, "baselines": base} if changed else data

    @model_validator(mode="after")
    def _baselines_inside_risk(self) -> AllocgymConfig:
        bad = looser_baseline_limits(self.baselines, self.risk)
        if bad:
            raise ValueError("; ".join(bad))
        return self

    @model_validator(mode="after")
    def _out_of_sample(self) -> AllocgymConfig:
        # 'all' passes here: a config may serve baselines only; agents evaluated on it are
        # refused at run time (check_out_of_sample).
        reason = in_sample_reason(self, self.evaluation.split, agents=False)
        if reason is not None:
            raise ValueError(
                f"evaluation.split: {reason}: the reported split must stay out of sample "
                "(use train / validation for training and selection, test for the report)"
            )
        return self


def in_sample_reason(cfg: AllocgymConfig, split: str, *, agents: bool = True) -> str | None:
    """Why a walk over ``split`` would not be out of sample for agents trained with ``cfg``.

    The reported split must differ from ``env.split`` (training) and ``train.eval_split``
    (model selection). ``'all'``, as ``split`` or as ``env.split``, covers every bar, so it
    overlaps both; with ``agents=False`` (a config on its own, which may serve baselines or
    benchmarks over every bar) only an equal split name counts. A bar range given through
    the API (``'custom'``) is not checked.

    Parameters
    ----------
    cfg : AllocgymConfig
        The agents' training config.
    split : str
        Name of the split walked (``train``, ``validation``, ``test``, ``all``).
    agents : bool
        Whether trained agents are evaluated.

    Returns
    -------
    str or None
        The overlap in words (split and config key), None when out of sample.
    """
    for key, value, role in (
        ("env.split", cfg.env.split, "training"),
        ("train.eval_split", cfg.train.eval_split, "model selection"),
    ):
        if value == split or (agents and "all" in (value, split)):
            return f"split {split!r} overlaps {key} = {value!r} ({role})"
    return None


def check_out_of_sample(cfg: AllocgymConfig, split: str) -> None:
    """Refuse to evaluate agents trained with ``cfg`` on ``split`` unless it is out of sample
    (:func:`in_sample_reason`).

    Raises
    ------
    ConfigError
        Naming the split, the config key it overlaps and the fix.
    """
    reason = in_sample_reason(cfg, split)
    if reason is None:
        return
    fix = (
        "train with env.split = train (env.split = all leaves no bar out of sample)"
        if cfg.env.split == "all"
        else "use --split test (evaluation.split = test)"
    )
    raise ConfigError(
        f"{reason}: trained agents must be scored on bars they were neither trained nor "
        f"selected on: {fix}, or evaluate baselines only (allocgym baselines --split {split})"
    )


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{path}': remove it or check its spelling")
        elif e["type"] == "value_error" and isinstance(e.get("input"), Mapping):
            # a rule across keys of a section: the message names them, the input is noise
            where = "" if path == "<root>" else f"{path}: "
            lines.append(f"{where}{str(e['msg']).removeprefix('Value error, ')}")
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
    try:
        node[parts[-1]] = load_yaml(raw) if raw.strip() else None
    except (yaml.YAMLError, ValueError) as err:
        raise ConfigError(
            f"override {item!r}: value {raw!r} is not valid YAML ({' '.join(str(err).split())}): "
            "close its brackets and quotes, or quote the whole value"
        ) from None


def config_from_dict(tree: Mapping[str, Any], overrides: Iterable[str] = ()) -> AllocgymConfig:
    """Validate a nested mapping (plus ``a.b=value`` overrides) into an ``AllocgymConfig``."""
    # default=str: YAML turns unquoted dates into date objects; configs hold them as ISO text.
    data = json.loads(json.dumps(tree, default=str)) if tree else {}
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
        try:
            loaded = load_yaml(p.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"config file {str(p)!r} is not UTF-8 text ({err.reason} at byte {err.start}): "
                "save it as UTF-8"
            ) from None
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(
                f"config file {str(p)!r} is not valid YAML{at} ({problem}): fix its syntax"
            ) from None
        except OSError as err:
            raise ConfigError(
                f"config file {str(p)!r} could not be read ({err.strerror})"
            ) from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(p)!r} must hold a mapping at the top level")
        tree = loaded
    cfg = config_from_dict(tree, overrides)
    # Refused in new input only: runs and bundles written before this check kept such a
    # path (ignored) in their sealed configs, and still load (load_market notes it).
    data = cfg.data
    if data.path and not data.reads_file:
        raise ConfigError(
            f"data.path={data.path!r} is set but data.source={data.source!r} reads no file: "
            "set data.source=csv (or parquet) to load it, or unset it (--set data.path=)"
        )
    return cfg


def config_hash(cfg: BaseModel | Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a config (sorted keys): equal configs, equal hash.

    A mapping is hashed as it stands: ``config_hash(cfg.model_dump(mode="json"))`` equals
    ``config_hash(cfg)``, and a stored dump keeps the hash it was written with when later
    versions add fields with defaults."""
    data = cfg.model_dump(mode="json") if isinstance(cfg, BaseModel) else cfg
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
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
