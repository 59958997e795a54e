"""``FrozenAllocator``: the production decision path around a frozen policy.

``FeatureBuilder`` -> ``FrozenPolicy`` -> (``IntentAggregator`` in budgets mode) ->
``RiskGateChain`` -> ``ExecutionPolicy``, all imported from the core and built from the
bundle's own config, so a decision is made with exactly the features, gates, costs and
execution rules the policy was trained with. The steps mirror the environment's
(``allocgym.envs.core``) at the decision bar ``t``:

- features from the request's trailing windows (``FeatureBuilder.compute``, K = 1:
  bit-identical to the env's precomputed row);
- observation from the book: ``w = shares * p_t / equity``, drawdown
  ``1 - equity / peak``, cash ``cash / equity`` (the env's formulas);
- ``GateContext`` with ``p_t``, the features' ADV, volatility and betas, ``spread_t``,
  ``tradable_t`` and the regime code (model, request override or default, see
  ``ServingConfig.regime_source``);
- ``RiskGateChain.apply`` then ``ExecutionPolicy.apply`` (no extra triggers, as in the env);
- a bar between decisions (``env.decision_interval`` > 1): the request's ``hold_target``
  is the proposal (the model is not called), as the env's held bars propose their held
  target or drifted book (``execution.hold_rule``); ``Decision.working`` says whether a
  trade limit cut the decision short (``execution.next_working``).

Failure handling (the decision is always a checked allocation or a coded reject):

- bad input -> :class:`~allocgym.serving.schemas.Decision` with ``status = "rejected"``
  and a ``RejectInfo`` (``INVALID_INPUT`` or ``STALE_INPUT``): no new allocation, every
  order 0 (or, with the kill switch on, every position closed);
- model failure (exception, non-finite or mis-shaped output, deadline exceeded) -> the
  configured defensive allocation (hold the current book, or HRP on the request's
  returns) through the same gates, coded ``MODEL_FALLBACK``;
- ``TRADING_ALLOCATOR_ENABLED`` false -> the defensive allocation, coded
  ``ALLOCATOR_DISABLED`` (the model is not called);
- kill switch (request flag, operator switch or ``risk.kill_switch``) -> the gates
  flatten the book, every symbol ``KILL_SWITCH``; the model is not called.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from allocgym import compiled
from allocgym.actions import ActionSpec
from allocgym.allocator import AllocationContext
from allocgym.baselines.hrp import HRP
from allocgym.baselines.registry import build_baselines
from allocgym.config import AllocgymConfig, ServingConfig, config_from_dict, config_hash
from allocgym.costs import CostModel
from allocgym.data import simple_returns, traded_window
from allocgym.errors import (
    AllocgymError,
    BundleError,
    ConfigError,
    GateConfigError,
    InvariantBreach,
    RequestError,
)
from allocgym.execution import (
    ExecutionParams,
    ExecutionPolicy,
    ExecutionResult,
    Triggers,
    next_working,
    trigger_inputs,
)
from allocgym.features import FeatureBuilder, MarketFeatures
from allocgym.intents import STRATEGY_FAMILIES, IntentAggregator
from allocgym.observability import reason_names
from allocgym.ranges import RANGES, PhysicalRangeError, check_physical
from allocgym.regime import (
    BARBELL_STATES,
    REGIME_LABELS,
    UNKNOWN_REGIME,
    RegimeModel,
    regime_code,
)
from allocgym.risk import (
    GateContext,
    GateResult,
    ReasonCode,
    RiskGateChain,
    RiskLimits,
    bar_gate_context,
    fill_notional,
)
from allocgym.serving.bundle import FrozenPolicy
from allocgym.serving.flags import RuntimeFlags
from allocgym.serving.schemas import (
    Decision,
    DecisionRequest,
    FallbackInfo,
    Latency,
    ModelInfo,
    RegimeInfo,
    RejectInfo,
    StrategyBudget,
    trusted,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_FALLBACK = int(ReasonCode.MODEL_FALLBACK)
_DISABLED = int(ReasonCode.ALLOCATOR_DISABLED)
_KILL = int(ReasonCode.KILL_SWITCH)
_REASON_CACHE_MAX = 4096

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The server clock (timezone-aware UTC)."""
    return dt.datetime.now(dt.UTC)


def quantities(q: np.ndarray) -> list[int | float]:
    """Share quantities for the JSON response: whole numbers as ``int`` (exact; an order
    of whole lots reads ``57``, not ``57.000000000000014``), anything else as ``float``."""
    qty = np.asarray(q, dtype=np.float64)
    whole = (np.abs(qty) < 2.0**53) & (qty == np.rint(qty))  # NaN and inf fail the bound
    if whole.all():
        return qty.astype(np.int64).tolist()
    return [
        int(value) if is_whole else value
        for value, is_whole in zip(qty.tolist(), whole.tolist(), strict=True)
    ]


def _aware(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)


class _Reject(Exception):
    """Internal: a request that cannot be decided on (becomes a coded reject Decision)."""

    def __init__(self, code: str, detail: str, field: str | None, message: str) -> None:
        super().__init__(message)
        self.code, self.detail, self.field, self.message = code, detail, field, message


def _check_range(detail: str | None, range_name: str, values: Any, label: str, field: str) -> None:
    """``ranges.check_physical`` as a coded INVALID_INPUT reject of request ``field``.

    ``detail`` None: named after the failed rule (``non_finite``, ``non_positive_price``,
    ``negative_value`` or ``out_of_range``).
    """
    try:
        check_physical(range_name, values, label)
    except PhysicalRangeError as err:
        if detail is None:
            if not math.isfinite(err.value):
                detail = "non_finite"
            elif err.value <= 0 < err.range.low:
                detail = "non_positive_price"
            elif err.value < 0:
                detail = "negative_value"
            else:
                detail = "out_of_range"
        raise _Reject("INVALID_INPUT", detail, field, str(err)) from None


@dataclass(frozen=True, eq=False)
class _Inputs:
    """A validated request in the bundle's symbol order (K = 1 batches)."""

    close: np.ndarray  # (1, L, N)
    volume: np.ndarray
    spread: np.ndarray
    bench: np.ndarray  # (1, L)
    tradable: np.ndarray  # (1, L, N) bool
    shares: np.ndarray  # (1, N)
    equity: float
    cash: float
    peak: float
    intents: np.ndarray | None  # (1, n_strategies, N)
    intent_confidence: np.ndarray | None = None  # (1, n_strategies, N)
    intent_age: np.ndarray | None = None  # (1, n_strategies) bars
    intent_horizons: np.ndarray | None = None  # (n_strategies,) bars, 0 = the bundle's
    recent_fills: np.ndarray | None = None  # (1, N) notional the bar's fills traded
    hold: np.ndarray | None = None  # (1, N) the hold_target's weights; None: a decision
    hold_current: bool = False  # hold_target "current": the drifted book is proposed
    scheduled: bool = True  # a scheduled execution window (execution.scheduled_only)


@dataclass(frozen=True, eq=False)
class HeldBar:
    """What the streaming market state forms once per bar for every decision on it.

    Attributes
    ----------
    features : MarketFeatures
        Features at the bar (leading axis 1).
    triggers : Triggers
        Execution trigger inputs of the held window (:meth:`FrozenAllocator.triggers`).
    """

    features: MarketFeatures
    triggers: Triggers


@dataclass(frozen=True, eq=False)
class DecisionTrace:
    """Everything one decision computed (for metrics, audit and parity tests).

    Attributes
    ----------
    decision : Decision
    now : datetime
        Server clock used for the staleness check (part of the audit input).
    model_cause : str or None
        Why the model's output was not used (``exception``, ``nan``, ``deadline``,
        ``bad_output``), None when it was used or not called.
    model_message : str
        The failure's message ("" when ``model_cause`` is None).
    observation : ndarray of float32, shape (1, obs_dim), or None
    context : GateContext or None
    gate : GateResult or None
        Gate output with the serving codes OR-ed in.
    execution : ExecutionResult or None
    latency_s : float
    raw_action : ndarray of float32, shape (1, action_dim), or None
        The actor's action before the action map made it a proposal (the bundle's
        ``action`` output; None when the model was not called, failed, or is not the
        bundle's).
    """

    decision: Decision
    now: dt.datetime
    model_cause: str | None
    model_message: str
    observation: np.ndarray | None
    context: GateContext | None
    gate: GateResult | None
    execution: ExecutionResult | None
    latency_s: float
    enabled: bool
    operator_kill: bool
    raw_action: np.ndarray | None = None


def _bundle_config(manifest: dict[str, Any]) -> AllocgymConfig:
    """The bundle's config, checked against its sealed hash and validated by this allocgym.

    The hash is of the config as the manifest stores it, so a bundle exported by an
    earlier allocgym loads with the fields added since at their defaults (for a runtime
    setting like ``serving.shed_delay_ms``, or a limit that was off by construction)."""
    stored = config_hash(manifest["config"])
    if stored != manifest["config_hash"]:
        raise BundleError(
            f"bundle config hashes to {stored}, the manifest says "
            f"{manifest['config_hash']}: the manifest was edited; re-export the bundle"
        )
    try:
        return config_from_dict(manifest["config"])
    except AllocgymError as err:
        raise BundleError(f"bundle config does not validate in this allocgym: {err}") from None


def _bundle_features(policy: FrozenPolicy, cfg: AllocgymConfig, n_assets: int) -> FeatureBuilder:
    """The bundle's ``FeatureBuilder``, once its features are known to be servable: no
    filter or factor-model state the serving path lacks, and the layout and observation
    size the bundle was trained with."""
    if cfg.features.mean_correlation and cfg.features.correlation_model == "dcc_garch":
        raise BundleError(
            "the bundle observes the DCC-GARCH mean correlation (features."
            "correlation_model = 'dcc_garch'), which the env filters forward from its fit; "
            "the serving path holds no filter state: retrain with correlation_model = "
            "'ewma' to serve"
        )
    builder = FeatureBuilder(cfg.features, RegimeModel(cfg.regime))
    trained = policy.manifest["features"]
    layout = json.loads(json.dumps(builder.layout(n_assets)))
    if layout != trained:
        diff = sorted(k for k in layout.keys() | trained.keys() if layout.get(k) != trained.get(k))
        raise BundleError(
            f"this allocgym builds a different feature layout than the bundle was trained "
            f"with (keys {diff}): serve it with the allocgym version that exported it, "
            "or retrain and re-export"
        )
    if cfg.features.factor_exposures:
        raise BundleError(
            f"the bundle observes factor exposures (features.factor_exposures = "
            f"{cfg.features.factor_exposures}), which need the env's per-bar factor "
            "loadings; the serving path fits no factor model: retrain with "
            "features.factor_exposures = 0 to serve"
        )
    if policy.obs_dim != builder.obs_dim(n_assets):
        raise BundleError(
            f"bundle obs_dim {policy.obs_dim} != FeatureBuilder obs_dim {builder.obs_dim(n_assets)}"
        )
    return builder


def _check_servable_limits(limits: RiskLimits) -> None:
    """Refuse limits the serving path cannot enforce or whose notional caps are unphysical."""
    if limits.max_factor_exposure is not None:
        # The env fits its factor loadings per bar in its precompute; the serving path
        # fits no factor model, so the limit could not apply: refuse, never skip it.
        raise GateConfigError(
            f"risk.max_factor_exposure = {limits.max_factor_exposure} is set in the "
            "bundle, but the serving path has no factor loadings to enforce it: export "
            "the bundle with risk.max_factor_exposure null to serve it"
        )
    for cap_name in ("max_symbol_notional", "max_gross_notional"):
        cap = getattr(limits, cap_name)
        if cap is not None:
            try:
                check_physical("notional_cap", cap, f"risk.{cap_name}")
            except PhysicalRangeError as err:
                raise GateConfigError(str(err)) from None


def _with_serving_codes(
    gate: GateResult, kill: bool, enabled: bool, cause: str | None
) -> GateResult:
    """``gate`` with the serving reason OR-ed in: ``ALLOCATOR_DISABLED`` (allocator off)
    or ``MODEL_FALLBACK`` (model output not used) on every symbol and the portfolio;
    under the kill switch, ``ALLOCATOR_DISABLED`` on the portfolio alone when the
    allocator is off too."""
    code = 0
    if not kill and cause is not None:
        code = _DISABLED if cause == "disabled" else _FALLBACK
    elif kill and not enabled:
        code = _DISABLED
    if not code:
        return gate
    symbol_code = code if not kill else 0
    return dataclasses.replace(
        gate,
        symbol_reasons=gate.symbol_reasons | symbol_code,
        portfolio_reasons=gate.portfolio_reasons | code,
    )


def _latency(t0: float, t1: float, t2: float, t3: float, t4: float, t5: float) -> Latency:
    """Stage latencies (µs) from the clock readings at the start, after validation,
    features, model, gates and execution."""
    return trusted(
        Latency,
        total_us=(t5 - t0) * 1e6,
        validate_us=(t1 - t0) * 1e6,
        features_us=(t2 - t1) * 1e6,
        model_us=(t3 - t2) * 1e6,
        gates_us=(t4 - t3) * 1e6,
        execution_us=(t5 - t4) * 1e6,
    )


def _status(kill: bool, cause: str | None) -> str:
    """A decided request's status: ``killed``, ``disabled``, ``fallback`` or ``ok``."""
    if kill:
        return "killed"
    if cause == "disabled":
        return "disabled"
    if cause is not None:
        return "fallback"
    return "ok"


class FrozenAllocator:
    """Decisions from a frozen policy bundle through the core features, gates and execution.

    Parameters
    ----------
    policy : FrozenPolicy
        A loaded bundle (:meth:`FrozenPolicy.load`).
    serving : ServingConfig, optional
        Runtime settings; default the bundle config's ``serving`` section.
    environ : mapping, optional
        Where ``TRADING_ALLOCATOR_*`` are read (``os.environ`` when omitted).
    clock : callable, optional
        Returns the current time (aware datetime); default UTC now.
    model : callable, optional
        Replaces the bundle's ONNX call ``obs (1, obs_dim) float32 -> proposal`` (fault
        injection in tests; the bundle is still loaded and verified).
    debug : bool
        Run ``check_invariants`` inside the gate chain on every decision.

    Raises
    ------
    BundleError
        The bundle's config does not hash to its manifest hash, this allocgym builds a
        different feature or action layout than the bundle was trained with, or the bundle
        observes factor exposures (``features.factor_exposures``).
    GateConfigError
        A bad ``TRADING_ALLOCATOR_*`` value, a notional cap outside its physical range
        (``allocgym.ranges``), or a factor-exposure limit (``risk.max_factor_exposure``:
        serving has no factor loadings to enforce it with).
    """

    def __init__(
        self,
        policy: FrozenPolicy,
        *,
        serving: ServingConfig | None = None,
        environ: Any = None,
        clock: Clock | None = None,
        model: Callable[[np.ndarray], np.ndarray] | None = None,
        debug: bool = False,
    ) -> None:
        policy.check_unchanged()
        manifest = policy.manifest
        cfg = _bundle_config(manifest)
        self.policy = policy
        self.cfg: AllocgymConfig = cfg
        self.serving = serving if serving is not None else cfg.serving
        self.symbols: tuple[str, ...] = tuple(policy.symbols)
        self.n_assets = len(self.symbols)
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self.sector_ids = np.asarray(manifest["sector_ids"], dtype=np.int64)
        self.feature_builder = _bundle_features(policy, cfg, self.n_assets)
        # every window a decision reads: the features', the tilt prior's and the HRP
        # fallback's returns (lookback + 1 closes), the execution triggers' and the audit
        # CVaR's; a shorter stateless request had given the prior a shorter window than
        # the env's
        self.history = max(
            int(self.feature_builder.history),
            int(cfg.baselines.lookback) + 1,
            int(cfg.execution.vol_long_window) + 1,
            int(cfg.execution.spread_window),
            int(cfg.env.cvar_window) + 1,
        )
        # The gates enforce the sealed manifest's limits and cost model (checked at load to
        # be what the config derives), with the runtime flags on top.
        self.flags = RuntimeFlags.from_env(policy.risk_config, environ)
        if "TRADING_ALLOCATOR_DEFAULT_REGIME" in self.flags.variables and (
            self.serving.regime_source == "model"
        ):
            warnings.warn(
                "TRADING_ALLOCATOR_DEFAULT_REGIME is set but serving.regime_source is 'model': "
                "the regime model labels every decision, so the default regime is never used; "
                "set serving.regime_source=request to use it when a request names no regime",
                UserWarning,
                stacklevel=2,
            )
        self.limits = RiskLimits.from_config(self.flags.risk)
        _check_servable_limits(self.limits)
        # The limits' (budget, capacity) multipliers by regime code, read once: a code
        # outside the labels takes the unknown regime's, as in the limits' own lookup.
        codes = np.arange(UNKNOWN_REGIME, len(REGIME_LABELS))
        self._regime_multipliers: dict[int, tuple[float, float]] = dict(
            zip(
                codes.tolist(),
                zip(
                    self.limits.budget_multiplier(codes).tolist(),
                    self.limits.capacity_multiplier(codes).tolist(),
                    strict=True,
                ),
                strict=True,
            )
        )
        self.cost_model = CostModel.from_config(policy.cost_config)
        self.gates = RiskGateChain(self.limits, self.cost_model, debug=debug)
        self.execution = ExecutionPolicy(ExecutionParams.from_config(cfg.execution), self.limits)
        self.mode = policy.mode
        self.aggregator = (
            IntentAggregator.from_config(self.flags.risk, cfg.intents)
            if self.mode == "budgets"
            else None
        )
        self.n_strategies = int(manifest["action"]["n_strategies"])
        # tilt mode: the env's own map applied to the prior allocator's book at the request
        self.action_spec = ActionSpec.from_config(cfg, self.n_assets, self.n_strategies)
        self._prior = (
            build_baselines(cfg, [cfg.env.tilt_prior])[cfg.env.tilt_prior]
            if self.mode == "tilt"
            else None
        )
        self._clock: Clock = clock or utc_now
        self._model = model if model is not None else policy
        self._hrp = HRP.from_config(cfg.baselines.hrp)
        self._hrp_lookback = int(cfg.baselines.lookback)
        self._model_info = trusted(
            ModelInfo,
            model_id=policy.model_id,
            sha256=policy.sha256,
            config_hash=policy.config_hash,
            mode=self.mode,
        )
        self._reason_cache: dict[int, list[str]] = {}
        self.operator_kill = False
        # Compile (or load from the disk cache) the step kernels now, not in the first decision.
        compiled.warm_up()

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        public_key: str | Path | Ed25519PublicKey | None = None,
        **kwargs: Any,
    ) -> FrozenAllocator:
        """``FrozenAllocator(FrozenPolicy.load(path, public_key=public_key), **kwargs)``:
        with ``public_key`` (an Ed25519 public key or its PEM file) the bundle must carry
        a valid signature by its private key (``allocgym export --sign``)."""
        return cls(FrozenPolicy.load(path, public_key=public_key), **kwargs)

    @property
    def enabled(self) -> bool:
        """``TRADING_ALLOCATOR_ENABLED`` as read at construction."""
        return self.flags.enabled

    def now(self) -> dt.datetime:
        """The server clock the staleness checks read (timezone-aware)."""
        return self._clock()

    # ------------------------------------------------------------------ public
    def decide(self, request: DecisionRequest) -> Decision:
        """One decision (see the module docstring); never raises on bad input."""
        return self.trace(request).decision

    def trace(
        self,
        request: DecisionRequest,
        *,
        now: dt.datetime | None = None,
        model_cause: tuple[str, str] | None = None,
        operator_kill: bool | None = None,
        enabled: bool | None = None,
        bar: dt.datetime | None = None,
        held: HeldBar | None = None,
    ) -> DecisionTrace:
        """Decide and return every intermediate (the service and the tests use this).

        Parameters
        ----------
        request : DecisionRequest
        now : datetime, optional
            Clock reading to use (default: the allocator's clock).
        model_cause : (str, str), optional
            Force the model outcome ``(cause, message)`` (audit replay: reproduce a
            recorded fallback without calling the model).
        operator_kill : bool, optional
            Operator kill switch state (default: ``self.operator_kill``).
        enabled : bool, optional
            Override ``TRADING_ALLOCATOR_ENABLED`` (audit replay).
        bar : datetime, optional
            The bar an account request on the streaming market state names; ``request``
            then holds the service's window, ending at its latest bar. A different bar is
            a coded reject: STALE_INPUT ``bar_not_latest`` (older) or INVALID_INPUT
            ``bar_not_held`` (not received).
        held : HeldBar, optional
            What the streaming market state formed once for ``request``'s window (its
            features and execution trigger inputs, bit-identical to what this decision
            would form); its arrays were range-checked when the bars arrived.
        """
        t0 = time.perf_counter()
        now = _aware(now) if now is not None else self._clock()
        kill_op = self.operator_kill if operator_kill is None else bool(operator_kill)
        allocator_on = self.flags.enabled if enabled is None else bool(enabled)
        try:
            if bar is not None:
                self._check_bar(request, _aware(bar))
            inputs = self._validate(request, now, market_checked=held is not None)
            t1 = time.perf_counter()
            return self._decide(
                request, inputs, now, t0, t1, kill_op, allocator_on, model_cause, held
            )
        except _Reject as rej:
            return self._rejected(request, rej, now, t0, kill_op, allocator_on)
        except InvariantBreach:
            raise  # only raised in debug mode: a gate bug must surface in tests
        except Exception as err:  # the core raised on inputs that passed validation
            rej = _Reject(
                "INVALID_INPUT",
                "internal_error",
                None,
                f"{type(err).__name__}: {err}"[:500],
            )
            return self._rejected(request, rej, now, t0, kill_op, allocator_on)

    def triggers(self, close: np.ndarray, tradable: np.ndarray, spread: np.ndarray) -> Triggers:
        """Execution trigger inputs of windows ``(1, L, N)`` ending at the decision bar."""
        params = self.execution.params
        lv = params.vol_long_window
        returns = simple_returns(close[0], tradable[0])[None, -lv:]
        return trigger_inputs(
            returns, spread[:, -params.spread_window :], params, tradable=tradable[:, -lv:]
        )

    # ------------------------------------------------------------------ validation
    def _check_bar(self, req: DecisionRequest, bar: dt.datetime) -> None:
        """The named bar must be the held window's last bar, and the window long enough."""
        held = int(req.close.shape[0])
        latest = _aware(req.timestamp)
        if held and bar < latest:
            raise _Reject(
                "STALE_INPUT",
                "bar_not_latest",
                "bar",
                f"bar {bar.isoformat()} is not the latest bar held ({latest.isoformat()}): "
                "decide on the latest bar",
            )
        if not held or bar > latest:
            last = latest.isoformat() if held else "none"
            raise _Reject(
                "INVALID_INPUT",
                "bar_not_held",
                "bar",
                f"bar {bar.isoformat()} has not been received (latest held: {last}): "
                "POST it to /v1/bars first",
            )
        if held < self.history:
            raise _Reject(
                "INVALID_INPUT",
                "history_length",
                "bar",
                f"the service holds {held} bars (the latest {latest.isoformat()}), decisions "
                f"need {self.history}: POST the next {self.history - held} to /v1/bars as "
                "they come, or restart the service and POST the last "
                f"{self.history} bars oldest first (the first with previous null), then the "
                "live feed",
            )

    @staticmethod
    def _check_market(req: DecisionRequest) -> None:
        """The history arrays' physical ranges (min and max per array keep this cheap)."""
        close = req.close
        for range_name, field, arr in (
            ("price", "close", close),
            ("volume", "volume", req.volume),
            ("spread_bps", "spread_bps", req.spread_bps),
        ):
            _check_range(None, range_name, arr, field, field)
        bench = req.benchmark_returns
        _check_range(None, "benchmark_return", bench, "benchmark_returns", "benchmark_returns")
        _check_range(None, "adv_notional", req.volume * close, "volume x close", "volume")

    def _validate(
        self, req: DecisionRequest, now: dt.datetime, market_checked: bool = False
    ) -> _Inputs:
        """The request checked field by field and put in the bundle's symbol order.

        Raises ``_Reject`` at the first failed check. ``market_checked``: the history
        arrays are a held window, whose bars passed the range checks when they arrived.
        """
        order = self._symbol_order(req.symbols)
        self._check_timestamp(req, now)
        self._check_shapes(req)
        # Every value finite and inside its physical range (the gates' float tolerances
        # assume physical magnitudes).
        if not market_checked:
            self._check_market(req)
        peak = self._check_account(req)
        shares = self._positions(req)
        fills = self._recent_fills(req, now)
        self._check_regime(req)
        intents = self._intents(req, order)
        confidence, age, horizons = self._intent_terms(req, self.n_assets, order)
        hold = self._hold_target(req)
        close = req.close
        tradable = np.ones(close.shape, dtype=bool) if req.tradable is None else req.tradable

        def columns(a: np.ndarray) -> np.ndarray:
            return (a if order is None else a[:, order])[None]

        return _Inputs(
            close=columns(close),
            volume=columns(req.volume),
            spread=columns(req.spread_bps),
            bench=req.benchmark_returns[None],
            tradable=columns(tradable),
            shares=shares,
            equity=float(req.equity),
            cash=float(req.cash),
            peak=float(max(peak, req.equity)),
            intents=intents,
            intent_confidence=confidence,
            intent_age=age,
            intent_horizons=horizons,
            recent_fills=fills,
            hold=hold,
            hold_current=req.hold_target == "current",
            scheduled=req.scheduled,
        )

    def _hold_target(self, req: DecisionRequest) -> np.ndarray | None:
        """The ``hold_target`` weights (1, N) in the bundle's order (None when not given
        or ``"current"``), each checked; refused in budgets mode."""
        target = req.hold_target
        if target is None:
            return None
        if self.mode == "budgets":
            raise _Reject(
                "INVALID_INPUT",
                "hold_target",
                "hold_target",
                "a budgets-mode bundle decides on every bar (its env.decision_interval is "
                "1): leave hold_target out",
            )
        if target == "current":
            return None
        weights = np.zeros((1, self.n_assets))
        for sym, w in target.items():
            j = self._column(sym, "hold_target", "hold_target weight of")
            if not math.isfinite(w):
                raise _Reject(
                    "INVALID_INPUT",
                    "non_finite",
                    f"hold_target.{sym}",
                    f"hold_target weight of {sym!r} is {w!r}: send the last decision's "
                    "proposed_weights",
                )
            weights[0, j] = w
        return weights

    def _symbol_order(self, symbols: list[str]) -> np.ndarray | None:
        """Check the request names exactly the bundle's symbols, in any order; the index
        that puts request columns in the bundle's order (None when they already are)."""
        if tuple(symbols) == self.symbols:
            return None
        n_assets = self.n_assets
        if len(set(symbols)) != len(symbols):
            repeated = sorted({sym for sym in symbols if symbols.count(sym) > 1})[:5]
            raise _Reject(
                "INVALID_INPUT", "duplicate_symbol", "symbols", f"symbols repeated: {repeated}"
            )
        unknown = [sym for sym in symbols if sym not in self._index]
        if unknown:
            raise _Reject(
                "INVALID_INPUT",
                "unknown_symbol",
                "symbols",
                f"symbols {unknown[:5]} are not in the bundle's universe "
                f"({n_assets} symbols, model {self.policy.model_id}): the policy was trained on "
                "another universe",
            )
        if len(symbols) != n_assets:
            given = set(symbols)
            missing = [sym for sym in self.symbols if sym not in given]
            raise _Reject(
                "INVALID_INPUT",
                "missing_symbol",
                "symbols",
                f"symbols {missing[:5]} of the bundle's universe are missing: send all {n_assets}",
            )
        column = {sym: i for i, sym in enumerate(symbols)}
        return np.array([column[sym] for sym in self.symbols])

    def _check_timestamp(self, req: DecisionRequest, now: dt.datetime) -> None:
        """The request's timestamp is neither stale nor ahead of the server clock ``now``."""
        serving = self.serving
        timestamp = _aware(req.timestamp)
        age = (now - timestamp).total_seconds()
        if age > serving.max_staleness_s:
            raise _Reject(
                "STALE_INPUT",
                "stale",
                "timestamp",
                f"timestamp {timestamp.isoformat()} is {age:.0f} s old, more than "
                f"serving.max_staleness_s = {serving.max_staleness_s:g}",
            )
        if -age > serving.max_future_skew_s:
            raise _Reject(
                "INVALID_INPUT",
                "future_timestamp",
                "timestamp",
                f"timestamp {timestamp.isoformat()} is {-age:.0f} s ahead of the server clock "
                f"(limit serving.max_future_skew_s = {serving.max_future_skew_s:g}): "
                "check the clocks",
            )

    def _check_shapes(self, req: DecisionRequest) -> None:
        """The history arrays are aligned ``(L, N)`` windows (and ``(L,)`` benchmark
        returns) of a length between the features' history and ``serving.max_history_bars``."""
        close = req.close
        length = int(close.shape[0])
        if close.shape[1] != self.n_assets:
            raise _Reject(
                "INVALID_INPUT",
                "shape",
                "close",
                f"close has {close.shape[1]} columns, symbols {self.n_assets}",
            )
        if length < self.history:
            raise _Reject(
                "INVALID_INPUT",
                "history_length",
                "close",
                f"history holds {length} bars, the bundle's decisions read {self.history}: "
                f"send the last {self.history} bars (or more)",
            )
        if length > self.serving.max_history_bars:
            raise _Reject(
                "INVALID_INPUT",
                "history_length",
                "close",
                f"history holds {length} bars, more than serving.max_history_bars = "
                f"{self.serving.max_history_bars}: send the last {self.history}",
            )
        for name, arr in (
            ("volume", req.volume),
            ("spread_bps", req.spread_bps),
            ("tradable", req.tradable),
        ):
            if arr is not None and arr.shape != close.shape:
                raise _Reject(
                    "INVALID_INPUT",
                    "shape",
                    name,
                    f"{name} has shape {arr.shape}, close {close.shape}: align them",
                )
        if req.benchmark_returns.shape != (length,):
            raise _Reject(
                "INVALID_INPUT",
                "shape",
                "benchmark_returns",
                f"benchmark_returns has shape {req.benchmark_returns.shape}, expected ({length},)",
            )

    @staticmethod
    def _check_account(req: DecisionRequest) -> float:
        """The account values' physical ranges; the peak equity (the equity when not given)."""
        peak = req.equity if req.peak_equity is None else req.peak_equity
        for field, value in (
            ("equity", req.equity),
            ("cash", req.cash),
            ("buying_power", req.buying_power),
            ("peak_equity", peak),
        ):
            _check_range("account", field, value, field, field)
        return peak

    def _positions(self, req: DecisionRequest) -> np.ndarray:
        """Shares held, shape (1, n_assets) in the bundle's order, each position checked."""
        shares = np.zeros((1, self.n_assets))
        # One array comparison for the usual, valid book; the per-position walk below
        # runs only to name the first bad entry.
        columns = list(map(self._index.get, req.positions))
        qty = np.fromiter(req.positions.values(), np.float64, len(columns))
        bounds = RANGES["position"]
        if None not in columns and ((qty >= bounds.low) & (qty <= bounds.high)).all():
            shares[0].put(columns, qty)  # cheaper than fancy indexing with a list
            return shares
        for sym, qty in req.positions.items():
            j = self._column(sym, "positions", "position in")
            _check_range("positions", "position", qty, f"positions.{sym}", "positions")
            shares[0, j] = qty
        return shares

    def _column(self, sym: str, field: str, what: str) -> int:
        """The bundle column of ``sym``; an unknown symbol is a coded reject of ``field``."""
        j = self._index.get(sym)
        if j is None:
            raise _Reject(
                "INVALID_INPUT",
                "unknown_symbol",
                field,
                f"{what} {sym!r}, not in the bundle's universe",
            )
        return j

    @staticmethod
    def _check_regime(req: DecisionRequest) -> None:
        """A regime override's confidence lies in [0, 1]."""
        if req.regime is not None:
            confidence = req.regime.confidence
            if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
                raise _Reject(
                    "INVALID_INPUT",
                    "regime",
                    "regime.confidence",
                    f"regime confidence {confidence!r} not in [0, 1]",
                )

    def _intents(self, req: DecisionRequest, order: np.ndarray | None) -> np.ndarray | None:
        """Validated strategy intents (1, n_strategies, N) in the bundle's order, NaN for a
        family not given (budgets mode; None when not given or not in budgets mode, whose
        families are still checked)."""
        if req.strategy_intents is None:
            return None
        unknown = sorted(set(req.strategy_intents) - set(STRATEGY_FAMILIES))
        if unknown:
            raise _Reject(
                "INVALID_INPUT",
                "intents",
                "strategy_intents",
                f"unknown strategy families {unknown}: use {list(STRATEGY_FAMILIES)}",
            )
        if self.mode != "budgets":
            return None
        n_assets = self.n_assets
        # NaN: a family the request leaves out keeps the FeatureBuilder's intents
        intents = np.full((1, self.n_strategies, n_assets), np.nan)
        for k, family in enumerate(STRATEGY_FAMILIES[: self.n_strategies]):
            given = req.strategy_intents.get(family)
            if given is None:
                continue
            if (
                given.shape != (n_assets,)
                or not np.isfinite(given).all()
                or (np.abs(given) > 1).any()
            ):
                raise _Reject(
                    "INVALID_INPUT",
                    "intents",
                    f"strategy_intents.{family}",
                    f"intents of {family!r} must be {n_assets} finite values in [-1, 1]",
                )
            intents[0, k] = given if order is None else given[order]
        return intents

    def _recent_fills(self, req: DecisionRequest, now: dt.datetime) -> np.ndarray | None:
        """Notional the request's fills already traded per bundle symbol, (1, N); ``None``
        without fills. A fill of a symbol outside the bundle or outside the bar (before the
        request's timestamp, or after the clock plus ``serving.max_future_skew_s``) is a
        coded INVALID_INPUT reject naming the fill and the value."""
        if not req.recent_fills:
            return None
        latest = now + dt.timedelta(seconds=self.serving.max_future_skew_s)
        fills = [fill.record() for fill in req.recent_fills]
        try:
            notional = fill_notional(fills, self.symbols, _aware(req.timestamp), latest)
        except RequestError as err:
            raise _Reject("INVALID_INPUT", "recent_fills", "recent_fills", str(err)) from None
        return notional[None]

    def _intent_terms(
        self, req: DecisionRequest, n_assets: int, order: np.ndarray | None
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Validated confidence (1, S, N), age (1, S) and horizons (S,) of the request's
        intents (None where not given; budgets mode only)."""
        if not (req.strategy_confidence or req.strategy_horizons or req.strategy_intent_age):
            return None, None, None
        given = set(req.strategy_intents or {})
        for field in ("strategy_confidence", "strategy_horizons", "strategy_intent_age"):
            orphans = sorted(set(getattr(req, field) or {}) - given)
            if orphans:
                raise _Reject(
                    "INVALID_INPUT",
                    "intents",
                    field,
                    f"{field} for families {orphans} without strategy_intents: "
                    "give their intents too",
                )
        if self.mode != "budgets" or not given:
            return None, None, None
        families = STRATEGY_FAMILIES[: self.n_strategies]
        confidence = age = horizons = None
        if req.strategy_confidence:
            confidence = np.ones((1, self.n_strategies, n_assets))
            for k, family in enumerate(families):
                family_confidence = req.strategy_confidence.get(family)
                if family_confidence is None:
                    continue
                if family_confidence.shape != (n_assets,) or not (
                    np.isfinite(family_confidence).all()
                    and (family_confidence >= 0).all()
                    and (family_confidence <= 1).all()
                ):
                    raise _Reject(
                        "INVALID_INPUT",
                        "intents",
                        f"strategy_confidence.{family}",
                        f"confidence of {family!r} must be {n_assets} finite values in [0, 1]",
                    )
                confidence[0, k] = family_confidence if order is None else family_confidence[order]
        if req.strategy_intent_age or req.strategy_horizons:
            given_ages = req.strategy_intent_age or {}
            given_horizons = req.strategy_horizons or {}
            age = np.zeros((1, self.n_strategies))
            horizons = np.zeros(self.n_strategies)
            for k, family in enumerate(families):
                age_bars = given_ages.get(family, 0)
                horizon = given_horizons.get(family, 0)
                if age_bars < 0 or (family in given_horizons and horizon < 1):
                    raise _Reject(
                        "INVALID_INPUT",
                        "intents",
                        "strategy_intent_age" if age_bars < 0 else "strategy_horizons",
                        f"{family!r}: intent age {age_bars} must be >= 0 bars and its "
                        f"horizon {horizon} >= 1",
                    )
                age[0, k], horizons[k] = age_bars, horizon
        return confidence, age, horizons

    # ------------------------------------------------------------------ decision
    def defensive(self, x: _Inputs, w_cur: np.ndarray) -> tuple[np.ndarray, str]:
        """The configured defensive proposal (1, N) and its kind (``hold`` or ``hrp``).

        HRP runs on the request's simple returns (the last ``baselines.lookback`` of
        them); if it cannot (e.g. no variance: an all-cash row, a market-wide halt) the
        current book is held.
        """
        if self.serving.fallback == "hrp":
            try:
                weights = self._hrp.allocate(self._context(x, w_cur))
                if np.isfinite(weights).all() and weights.any():
                    return weights, "hrp"
            except AllocgymError:
                pass
        return w_cur.copy(), "hold"

    def _context(self, x: _Inputs, w_cur: np.ndarray) -> AllocationContext:
        """Past-only context of the request: the last ``baselines.lookback`` simple returns
        (0 where a symbol was not tradable, as ``MarketData.returns``) and the book."""
        window = simple_returns(x.close[0], x.tradable[0])[1:][-self._hrp_lookback :]
        return AllocationContext(
            returns=traded_window(window, x.tradable[0][-(len(window) + 1) :])[None],
            current_weights=w_cur,
            symbols=self.symbols,
            sector_ids=self.sector_ids,
            regime=np.array([-1]),
            regime_confidence=np.zeros(1),
        )

    def _tilted(self, out: np.ndarray, x: _Inputs, w_cur: np.ndarray) -> np.ndarray | None:
        """Tilt-mode proposal: the model's tilts applied to the prior's book (None when
        the prior fails, which the caller answers with the defensive allocation)."""
        assert self._prior is not None
        try:
            prior = np.asarray(self._prior.allocate(self._context(x, w_cur)), dtype=np.float64)
        except AllocgymError:
            return None
        if not np.isfinite(prior).all():
            return None
        return self.action_spec.to_tilted(out, prior)

    def _call_model(
        self, obs: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray | None, str | None, str]:
        """(the proposal output, the actor's raw action, the failure cause, its message);
        the outputs are None when the call failed. A model other than the bundle's (the
        constructor's ``model``) gives no raw action."""
        start = time.perf_counter()
        try:
            if self._model is self.policy:
                raw, proposal = self.policy.outputs(obs)
            else:
                raw, proposal = None, self._model(obs)
            out = np.asarray(proposal, dtype=np.float64)
        except Exception as err:  # any model failure falls back; the cause is recorded
            return None, None, "exception", f"{type(err).__name__}: {err}"[:300]
        elapsed_ms = (time.perf_counter() - start) * 1e3
        if elapsed_ms > self.serving.deadline_ms:
            # no elapsed time in the message: the audited output must replay byte for byte
            return (
                None,
                None,
                "deadline",
                f"model call exceeded serving.deadline_ms = {self.serving.deadline_ms:g}",
            )
        if out.shape != (1, self.policy.n_out):
            return (
                None,
                None,
                "bad_output",
                f"model output shape {out.shape}, expected (1, {self.policy.n_out})",
            )
        if not np.isfinite(out).all():
            return None, None, "nan", "model output contains NaN or inf"
        return out, raw, None, ""

    def _decide(
        self,
        req: DecisionRequest,
        x: _Inputs,
        now: dt.datetime,
        t0: float,
        t1: float,
        kill_op: bool,
        enabled: bool,
        forced_cause: tuple[str, str] | None,
        held: HeldBar | None = None,
    ) -> DecisionTrace:
        """Features, proposal, gates and execution on the validated request ``x``.

        ``t0`` and ``t1`` are the clock readings at the start and after validation; the
        stages between the later readings are timed here.
        """
        builder = self.feature_builder
        if held is not None:
            feats = held.features
        else:
            feats = builder.compute(x.close, x.bench, x.volume, x.spread, x.tradable)
        prices = x.close[:, -1]
        equity = np.array([x.equity])
        # float arithmetic on the account scalars: the same IEEE results as on arrays
        w_cur = x.shares * prices / x.equity
        drawdown = np.array([1.0 - x.equity / x.peak])
        cash = np.array([x.cash / x.equity])
        obs = builder.observation(feats, w_cur, drawdown, cash)
        regime = self._regime(req, feats)
        kill = bool(req.kill_switch or kill_op or self.limits.kill_switch)
        t2 = time.perf_counter()

        proposal, budgets, contrib, raw_action, kind, cause, message = self._propose(
            x, feats, obs, w_cur, kill, enabled, forced_cause
        )
        t3 = time.perf_counter()

        ctx = bar_gate_context(
            x.shares,
            equity,
            prices,
            x.spread[:, -1],
            x.tradable[:, -1],
            feats,
            self.sector_ids,
            regime=np.array([regime.code], dtype=np.int64),
            kill_switch=np.array([kill]),
            reduce_only=np.array([bool(req.reduce_only)]),
            strategy_weights=contrib,
            recent_fills=x.recent_fills,
        )
        gate = _with_serving_codes(self.gates.apply(proposal, ctx), kill, enabled, cause)
        t4 = time.perf_counter()
        # The env's vol-spike / spread-blowout triggers, from the request's windows; a
        # production request is a scheduled decision window by construction.
        triggers = (
            held.triggers if held is not None else self.triggers(x.close, x.tradable, x.spread)
        )
        if not x.scheduled:
            triggers = dataclasses.replace(triggers, scheduled=np.array([False]))
        ex = self.execution.apply(gate, ctx, triggers)
        t5 = time.perf_counter()

        fallback = None
        if cause is not None and not kill:
            fallback = trusted(FallbackInfo, kind=kind, cause=cause, message=message)
        # the env's rule for a policy decision: a new one, or a held target still worked
        # towards, stays working while a trade limit cuts it short; a held drifted book does
        # not. A hold the kill switch or a disabled allocator overrode was not honoured.
        status = _status(kill, cause)
        hold = (x.hold is not None or x.hold_current) and status == "ok"
        working = status == "ok" and bool(
            next_working(
                np.array([not hold]), np.array([hold and x.hold is not None]),
                gate.portfolio_reasons, ex.reasons,
            )[0]
        )  # fmt: skip
        decision = self._decision(
            req,
            now,
            status=status,
            proposal=proposal,
            w_cur=w_cur,
            gate=gate,
            ex=ex,
            budgets=self._budgets(proposal, gate, budgets, contrib, regime.budget_multiplier),
            regime=regime,
            fallback=fallback,
            latency=_latency(t0, t1, t2, t3, t4, t5),
            hold=hold,
            working=working,
        )
        model_failed = cause not in (None, "disabled") and not kill
        return DecisionTrace(
            decision=decision,
            now=now,
            model_cause=cause if model_failed else None,
            model_message=message if model_failed else "",
            observation=obs,
            context=ctx,
            gate=gate,
            execution=ex,
            latency_s=t5 - t0,
            enabled=enabled,
            operator_kill=kill_op,
            raw_action=raw_action,
        )

    def _propose(
        self,
        x: _Inputs,
        feats: MarketFeatures,
        obs: np.ndarray,
        w_cur: np.ndarray,
        kill: bool,
        enabled: bool,
        forced_cause: tuple[str, str] | None,
    ) -> tuple[
        np.ndarray,
        np.ndarray | None,
        np.ndarray | None,
        np.ndarray | None,
        str | None,
        str | None,
        str,
    ]:
        """The proposal (1, N) for the gates and how it was formed.

        The current book under the kill switch (the gates flatten it); the defensive
        allocation when the allocator is disabled; the request's ``hold_target`` (or the
        current book for ``"current"``) on a held bar; the defensive allocation when the
        model fails (or ``forced_cause`` says it did) or the tilt prior fails; else the
        model's weights, tilts on the prior's book, or budgets aggregated over the
        strategy intents.

        Returns
        -------
        proposal : ndarray, shape (1, N)
        budgets : ndarray, shape (1, n_strategies + 1), or None
            The model's strategy and cash budgets (budgets mode).
        contrib : ndarray, shape (1, n_strategies, N), or None
            Each strategy's weights in the proposal (budgets mode).
        raw_action : ndarray, shape (1, action_dim), or None
            The actor's action before the action map (None when the model was not
            called, failed, or is not the bundle's).
        kind : str or None
            The defensive allocation's kind (``hold`` or ``hrp``) when one was used.
        cause, message : str or None, str
            Why the model's output was not used (``disabled``, ``prior`` or a model
            failure cause) and its message; None and "" when it was used or under the
            kill switch.
        """
        if kill:
            return w_cur.copy(), None, None, None, None, None, ""
        if not enabled:
            proposal, kind = self.defensive(x, w_cur)
            return (
                proposal,
                None,
                None,
                None,
                kind,
                "disabled",
                "TRADING_ALLOCATOR_ENABLED is false",
            )
        if x.hold_current:
            return w_cur.copy(), None, None, None, None, None, ""
        if x.hold is not None:
            return x.hold, None, None, None, None, None, ""
        if forced_cause is not None:
            out, raw_action, (cause, message) = None, None, forced_cause
            if cause == "prior" and self._model is self.policy:
                # the model ran before the tilt prior failed: its action was recorded
                raw_action = self.policy.outputs(obs)[0]
        else:
            out, raw_action, cause, message = self._call_model(obs)
        tilted = None if out is None or self.mode != "tilt" else self._tilted(out, x, w_cur)
        if out is not None and self.mode == "tilt" and tilted is None:
            out, cause, message = None, "prior", "the tilt prior allocator failed"
        if out is None:
            proposal, kind = self.defensive(x, w_cur)
            return proposal, None, None, raw_action, kind, cause, message
        if tilted is not None:
            return tilted, None, None, raw_action, None, cause, message
        if self.mode == "weights":
            return out, None, None, raw_action, None, cause, message
        intents = feats.intents
        if x.intents is not None:
            intents = np.where(np.isnan(x.intents), feats.intents, x.intents)
        assert self.aggregator is not None
        horizons = None
        if x.intent_horizons is not None:  # 0 = the bundle's horizon of the family
            horizons = np.where(x.intent_horizons > 0, x.intent_horizons, feats.horizons)
        proposal, contrib = self.aggregator.aggregate(
            out, intents, x.intent_confidence, x.intent_age, horizons
        )
        return proposal, out, contrib, raw_action, None, cause, message

    def _decision(
        self,
        req: DecisionRequest,
        now: dt.datetime,
        *,
        status: str,
        proposal: np.ndarray,
        w_cur: np.ndarray,
        gate: GateResult,
        ex: ExecutionResult,
        budgets: list[StrategyBudget],
        regime: RegimeInfo,
        fallback: FallbackInfo | None,
        latency: Latency,
        hold: bool,
        working: bool,
    ) -> Decision:
        """The response of a decided (not rejected) request."""
        n_assets = self.n_assets
        target = ex.target_weights[0]
        masks = ex.reasons[0].tolist()
        # the orders and the quantities held after them, converted in one pass
        qty = quantities(np.concatenate((ex.delta_qty[0], ex.target_qty[0])))
        return trusted(
            Decision,
            request_id=req.request_id,
            status=status,
            timestamp=_aware(req.timestamp).isoformat(),
            decided_at=now.isoformat(),
            symbols=list(self.symbols),
            target_weights=target.tolist(),
            target_delta_qty=qty[:n_assets],
            target_qty=qty[n_assets:],
            approved_weights=gate.approved[0].tolist(),
            proposed_weights=np.asarray(proposal[0], dtype=np.float64).tolist(),
            current_weights=w_cur[0].tolist(),
            reasons=list(map(self._names, masks)),
            reason_mask=masks,
            portfolio_reasons=self._names(int(ex.portfolio_reasons[0])),
            budgets=budgets,
            regime=regime,
            model=self._model_info,
            fallback=fallback,
            reject=None,
            gross_exposure=float(np.abs(target).sum()),
            net_exposure=float(target.sum()),
            latency=latency,
            hold=hold,
            working=working,
            schema_version="allocgym.decision/1",
        )

    def _regime(self, req: DecisionRequest, feats: Any) -> RegimeInfo:
        """The decision's regime: the request's override, the model's or the default
        (``serving.regime_source``), with its budget and capacity multipliers."""
        barbell = BARBELL_STATES[int(feats.barbell[0])]
        if req.regime is not None:
            label, confidence, source = req.regime.label, float(req.regime.confidence), "request"
            code = regime_code(label)
        elif self.serving.regime_source == "model":
            code = int(feats.regime[0])
            label, confidence = REGIME_LABELS[code], float(feats.regime_confidence[0])
            source = "model"
        else:
            label = self.limits.default_regime
            code, confidence, source = regime_code(label), 0.0, "default"
        multipliers = self._regime_multipliers
        budget_mult, capacity_mult = multipliers.get(code, multipliers[UNKNOWN_REGIME])
        return trusted(
            RegimeInfo,
            label=label,
            code=code,
            confidence=confidence,
            source=source,
            barbell=barbell,
            budget_multiplier=budget_mult,
            capacity_multiplier=capacity_mult,
        )

    def _budgets(
        self,
        proposal: np.ndarray,
        gate: GateResult,
        budgets: np.ndarray | None,
        contrib: np.ndarray | None,
        budget_mult: float,
    ) -> list[StrategyBudget]:
        if budgets is None or contrib is None:
            gross = float(np.abs(gate.approved[0]).sum())
            cap = self.limits.max_gross * budget_mult
            return [
                trusted(
                    StrategyBudget,
                    strategy="policy",
                    budget=float(proposal[0].sum()),
                    proposed_gross=float(np.abs(proposal[0]).sum()),
                    approved_gross=gross,
                    base_cap=None,
                    regime_cap=None,
                    cap=cap,
                    utilization=gross / cap if cap > 0 else None,
                )
            ]
        # budgets mode: each family's budget as the gates built it (base -> regime ->
        # capacity) and the share of the approved book attributed to it
        trace = gate.strategy_budget
        assert trace is not None  # the strategy stage runs whenever contributions are given
        out = []
        for k in range(self.n_strategies):
            cap = float(trace.capacity[0, k])
            approved = float(trace.approved[0, k])
            out.append(
                trusted(
                    StrategyBudget,
                    strategy=STRATEGY_FAMILIES[k],
                    budget=float(budgets[0, k]),
                    proposed_gross=float(trace.proposed[0, k]),
                    approved_gross=approved,
                    base_cap=float(trace.base[0, k]),
                    regime_cap=float(trace.regime[0, k]),
                    cap=cap,
                    utilization=approved / cap if cap > 0 else None,
                )
            )
        out.append(
            trusted(
                StrategyBudget,
                strategy="cash",
                budget=float(budgets[0, -1]),
                proposed_gross=0.0,
                approved_gross=0.0,
                base_cap=None,
                regime_cap=None,
                cap=None,
                utilization=None,
            )
        )
        return out

    def _names(self, mask: int) -> list[str]:
        names = self._reason_cache.get(mask)
        if names is None:
            names = reason_names(mask)
            if len(self._reason_cache) < _REASON_CACHE_MAX:
                self._reason_cache[mask] = names
        return list(names)

    # ------------------------------------------------------------------ rejects
    def _rejected(
        self,
        req: DecisionRequest,
        rej: _Reject,
        now: dt.datetime,
        t0: float,
        kill_op: bool,
        enabled: bool,
    ) -> DecisionTrace:
        n_assets = self.n_assets
        kill = bool(req.kill_switch or kill_op or self.limits.kill_switch)
        shares = self._readable_shares(req, skip_unknown=kill)
        code = int(ReasonCode[rej.code])
        portfolio_code = code | (_KILL if kill else 0)
        if shares is None:
            delta = target_qty = target_w = None
            reasons = None
        elif kill:
            delta = quantities(-shares)
            target_qty = [0] * n_assets
            target_w = [0.0] * n_assets
            reasons = [portfolio_code] * n_assets
        else:
            delta = [0] * n_assets
            target_qty = quantities(shares)
            target_w = None
            reasons = [code] * n_assets
        total = (time.perf_counter() - t0) * 1e6
        latency = trusted(
            Latency,
            total_us=total,
            validate_us=total,
            features_us=0.0,
            model_us=0.0,
            gates_us=0.0,
            execution_us=0.0,
        )
        decision = trusted(
            Decision,
            request_id=req.request_id,
            status="rejected",
            timestamp=_aware(req.timestamp).isoformat(),
            decided_at=now.isoformat(),
            symbols=list(self.symbols),
            target_weights=target_w,
            target_delta_qty=delta,
            target_qty=target_qty,
            approved_weights=None,
            proposed_weights=None,
            current_weights=None,
            reasons=None if reasons is None else [self._names(m) for m in reasons],
            reason_mask=reasons,
            portfolio_reasons=self._names(portfolio_code),
            budgets=[],
            regime=None,
            model=self._model_info,
            fallback=None,
            reject=trusted(
                RejectInfo, code=rej.code, detail=rej.detail, field=rej.field, message=rej.message
            ),
            gross_exposure=0.0 if kill and shares is not None else None,
            net_exposure=0.0 if kill and shares is not None else None,
            latency=latency,
            hold=False,
            working=None,
            schema_version="allocgym.decision/1",
        )
        return DecisionTrace(
            decision=decision,
            now=now,
            model_cause=None,
            model_message="",
            observation=None,
            context=None,
            gate=None,
            execution=None,
            latency_s=total / 1e6,
            enabled=enabled,
            operator_kill=kill_op,
        )

    def _readable_shares(self, req: DecisionRequest, *, skip_unknown: bool) -> np.ndarray | None:
        """Positions in the bundle's order; None when a quantity is not finite, or a
        symbol is outside the universe unless ``skip_unknown``. Under the kill switch the
        unknown symbols are skipped (the reject names them; no column trades them): the
        positions it can read are still closed, the kill switch wins over one unreadable
        entry. Without it the reject keeps its answer (no targets), as logs replay it."""
        shares = np.zeros(self.n_assets)
        for sym, qty in req.positions.items():
            j = self._index.get(sym)
            if j is None:
                if skip_unknown:
                    continue
                return None
            if not math.isfinite(qty):
                return None
            shares[j] = qty
        return shares

    # ------------------------------------------------------------------ helpers
    def describe(self) -> dict[str, Any]:
        """Model, flags and settings (``/healthz``)."""
        return {
            **self.policy.describe(),
            "enabled": self.enabled,
            "kill_switch": bool(self.operator_kill or self.limits.kill_switch),
            "history": self.history,
            "symbols": list(self.symbols),
            "fallback": self.serving.fallback,
            "regime_source": self.serving.regime_source,
            "flags": dict(self.flags.variables),
        }


def request_from_market(
    market: Any,
    t: int,
    *,
    history: int,
    request_id: str,
    shares: np.ndarray | None = None,
    cash: float | None = None,
    equity: float | None = None,
    peak_equity: float | None = None,
    buying_power: float | None = None,
    kill_switch: bool = False,
    reduce_only: bool = False,
    timestamp: dt.datetime | None = None,
    hold_target: dict[str, float] | str | None = None,
    scheduled: bool = True,
) -> DecisionRequest:
    """A request for bar ``t`` of a ``MarketData`` (the last ``history`` bars up to ``t``).

    Parameters
    ----------
    market : MarketData
    t : int
        Decision bar (data up to and including ``t``).
    history : int
        Bars to send (``FrozenAllocator.history`` or more).
    request_id : str
    shares : ndarray, shape (n_assets,), optional
        Positions in shares (default none).
    cash, equity, peak_equity, buying_power : float, optional
        Default: all cash, ``equity = cash + shares . p_t``, peak = equity,
        buying power = cash.
    kill_switch, reduce_only : bool
    timestamp : datetime, optional
        Default: the bar's date at 00:00 UTC.
    hold_target : dict or "current", optional
        A held bar's proposal (``DecisionRequest.hold_target``).
    scheduled : bool
        Whether the bar is a scheduled execution window (``DecisionRequest.scheduled``).
    """
    first = int(t) - int(history) + 1
    if first < 0:
        raise ValueError(f"bar {t} has only {t + 1} bars of history, {history} needed")
    window = slice(first, int(t) + 1)
    qty = np.zeros(market.n_assets) if shares is None else np.asarray(shares, dtype=np.float64)
    p = market.close[int(t)]
    if cash is None:
        cash = 1.0e6 if equity is None else float(equity - (qty * p).sum())
    if equity is None:
        equity = float(cash + (qty * p).sum())
    if timestamp is None:
        day = np.datetime_as_string(market.dates[int(t)], unit="D")
        timestamp = dt.datetime.fromisoformat(str(day)).replace(tzinfo=dt.UTC)
    return DecisionRequest(
        request_id=request_id,
        timestamp=timestamp,
        symbols=list(market.symbols),
        equity=float(equity),
        cash=float(cash),
        buying_power=float(cash if buying_power is None else buying_power),
        peak_equity=None if peak_equity is None else float(peak_equity),
        positions={
            sym: float(position)
            for sym, position in zip(market.symbols, qty.tolist(), strict=True)
            if position != 0.0
        },
        close=np.ascontiguousarray(market.close[window]),
        volume=np.ascontiguousarray(market.volume[window]),
        spread_bps=np.ascontiguousarray(market.spread_bps[window]),
        benchmark_returns=np.ascontiguousarray(market.benchmark_returns[window]),
        tradable=np.ascontiguousarray(market.tradable[window]),
        kill_switch=kill_switch,
        reduce_only=reduce_only,
        hold_target=hold_target,
        scheduled=scheduled,
    )


def serving_config(
    policy: FrozenPolicy, overrides: list[str] | tuple[str, ...] = ()
) -> ServingConfig:
    """The bundle's ``serving`` section with ``serving.key=value`` overrides applied.

    Raises
    ------
    ConfigError
        An override outside ``serving.*`` (the rest of the config is frozen in the
        bundle; runtime risk changes go through ``TRADING_ALLOCATOR_*``) or a bad value.
    """
    bad = [o for o in overrides if not o.strip().startswith("serving.")]
    if bad:
        raise ConfigError(
            f"overrides {bad} are not serving.* keys: the bundle's features, gates and costs "
            "are frozen (re-export to change them; use TRADING_ALLOCATOR_* for runtime limits)"
        )
    base = {"serving": policy.manifest["config"].get("serving", {})}
    return config_from_dict(base, list(overrides)).serving
