"""Regression corpus of the hot path: gates, execution, costs, observation, env.

Every array each stage returns is recorded on fixed seeds, over batch sizes 1, 7, 64 and
universes of 1, 20 and 53 symbols (90 for the large-universe CVaR path), with corrupt
inputs, kill / reduce-only flags, strategy contributions, lot sizes and triggers, and env
rollouts in both action modes. Each corpus entry is checked two ways:

- **Bit-exact** (``DIGESTS``): sha256 of the name, dtype, shape and bytes of every output.
  Checked on the platform the digests were recorded on (``PLATFORM``: numpy version, machine
  and the CPU features numpy dispatches on, whose SIMD kernels may round differently
  elsewhere). There an optimisation that moves a single bit fails.
- **Portable** (``FINGERPRINTS``), checked on every platform: ``exact width:mix:size ...``.
  ``exact`` is a sha256 prefix over the names, dtypes and shapes, every integer, boolean
  and string value, and where the floats are NaN or infinite. The finite floats of each
  field (one output name, pooled over steps and list items) give ``A = sum |x|`` and
  ``S = sum w x`` with fixed random weights ``w`` in [-1, 1]; per float width,
  ``mix = sum S / A`` and ``size = sum log A`` over the fields with ``A > 0``. If every
  value moves by at most ``REL_TOL`` relative (1e-12 for float64; 1e-6 for float32, whose
  ulp is 6e-8), each field moves ``mix`` by at most ``2 * REL_TOL`` and ``size`` by at most
  ``REL_TOL``, so both are compared within ``2 * REL_TOL * n_fields``. A changed value
  shows as a moved ``mix`` (its own field's scale, not the largest field's) or ``size``.

Outputs that float dust decides today are compared bit-exactly only (see ``_DUST``). With
numpy's AVX-512 (and AVX2) kernels disabled through ``NPY_DISABLE_CPU_FEATURES``, 124 of
the 324 digests moved, every fingerprint held, and the largest float deviation was 0.09 %
of its limit; a change of 1e-9 relative in the spread cost moved every cost fingerprint.

The digests were recorded on the code *before* the hot-path optimisation (numpy-call
trimming in ``risk``, ``execution``, ``costs``, ``features.observation`` and
``envs/core``) and the optimised code reproduces them. The ``env/`` and ``obs/`` digests
were re-recorded after the regime model gained its hysteresis (an intended change of the
regime path); every gate, execution and cost digest came out unchanged. The ``env/``
digests were re-recorded again when execution began to snap a held whole-lot position
read back from the weights to its exact value (orders exact whole lots; equity moved by at
most 4e-16 relative); the other digests held. They were re-recorded once more when the
ex-ante CVaR became a compiled kernel that sums each scenario over the assets, and the
worst scenarios, sequentially instead of in numpy's pairwise / SIMD order: only ``cvar``,
``cvar_penalty`` and ``reward`` moved (at most 3e-17 absolute over 64-portfolio rollouts
at 20, 53 and 90 symbols); the gate, execution and cost kernels reproduce their digests.
The ``env/`` digests were re-recorded when the ``FACTOR_CAP`` code joined the columns of
``info["reason_counts"]`` (one more column, zero with the factor gate off); every other
array held.

The env entries also depend on the modules the env calls (actions, intents, features,
regime, measures, config defaults). After an intended change that moves bits, check it
separately, then regenerate both tables from the changed code:
``python tests/test_hotpath_regression.py`` prints them. The shortcut tests at the end
check the exact shortcuts of the optimised code against their definitions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from allocgym.config import config_from_dict
from allocgym.costs import CostModel, cost_terms, expected_cost
from allocgym.data import synthetic
from allocgym.execution import ExecutionParams, ExecutionPolicy, TriggerFlag, Triggers
from allocgym.features import FeatureBuilder
from allocgym.regime import RegimeModel
from allocgym.risk import GateContext, RiskGateChain, RiskLimits

BATCHES = (1, 7, 64)
UNIVERSES = (1, 20, 53)


# ----------------------------------------------------------------------------- recording

REL_TOL = {8: 1e-12, 4: 1e-6}
"""Relative change per float value (by width in bytes) a platform may show."""

# Fixed weights of the weighted sums (a seeded PCG64 stream is the same on every platform).
_WEIGHTS = np.random.default_rng(20240607).uniform(-1.0, 1.0, 1 << 20)
# Float sums are kept in units of 2**32 (an exact scaling) so that the corrupt inputs near
# the float64 maximum do not overflow them.
_SCALE = 2.0**-32
# Values pooled per field before one summing pass (numpy calls per output cost more).
_BATCH = 1 << 18


@dataclasses.dataclass(frozen=True)
class _Dust:
    """Outputs that float dust decides: left out of the portable fingerprint."""

    bits: dict[str, int]
    """Output name suffix -> integer bits masked out."""
    single_asset_fields: tuple[str, ...]
    """Float fields of a single-asset env rollout left out."""


_DUST = _Dust(
    # Execution raises ROUNDING_SCALED when lot rounding leaves the need above the room by
    # float dust (its ratio test has no slack): the orders then match to 1e-15 relative.
    bits={"trigger_flags": int(TriggerFlag.ROUNDING_SCALED)},
    # A single asset is its own benchmark: the regime's mean-reversion statistic is the
    # lag-1 autocorrelation of round-off residuals, and the confidence and the observation
    # carrying it follow the platform's rounding (0.27 apart with AVX-512 off).
    single_asset_fields=("obs0", "obs", "reset_obs", "info.regime_confidence"),
)


class _Recorder:
    """Records one corpus entry two ways: ``digest`` (bit-exact) and ``fingerprint()``
    (portable); see the module docstring."""

    def __init__(self, skip_floats: tuple[str, ...] = ()) -> None:
        self.sha = hashlib.sha256()
        self.exact = hashlib.sha256()
        self.skip_floats = skip_floats
        # float field -> [sum |x|, sum w x, bytes per value, values pending]
        self.sums: dict[str, list[float]] = {}
        self.pending: dict[str, list[np.ndarray]] = {}

    def add(self, name: str, value: Any) -> None:
        self.sha.update(name.encode())
        if value is None:
            self.sha.update(b"<None>")
            self.exact.update(f"{name}<None>".encode())
        elif isinstance(value, dict):
            for k in value:  # insertion order is part of the contract
                self.add(f"{name}.{k}", value[k])
        elif isinstance(value, list | tuple) and not isinstance(value, np.ndarray):
            for i, v in enumerate(value):
                self.add(f"{name}[{i}]", v)
        elif isinstance(value, np.ndarray) or np.isscalar(value):
            a = np.asarray(value)
            self.sha.update(f"{a.dtype.str}{a.shape}".encode())
            self.sha.update(np.ascontiguousarray(a).tobytes())
            self._portable(name, a)
        else:
            raise TypeError(f"{name}: cannot record a {type(value).__name__}; add a case")

    def add_dataclass(self, name: str, obj: Any) -> None:
        for f in dataclasses.fields(obj):
            self.add(f"{name}.{f.name}", getattr(obj, f.name))

    def add_json(self, name: str, obj: Any) -> None:
        """A JSON-able dict: its sorted text in the digest (as ``add`` records a string),
        its values in the fingerprint (float text is only as portable as the floats)."""
        self.sha.update(name.encode())
        text = np.asarray(json.dumps(obj, sort_keys=True))
        self.sha.update(f"{text.dtype.str}{text.shape}".encode())
        self.sha.update(text.tobytes())
        self._portable_json(name, obj)

    def _portable_json(self, name: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for k in sorted(obj):
                self._portable_json(f"{name}.{k}", obj[k])
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                self._portable_json(f"{name}[{i}]", v)
        elif obj is None:
            self.exact.update(f"{name}<None>".encode())
        else:
            self._portable(name, np.asarray(obj))

    def _portable(self, name: str, a: np.ndarray) -> None:
        kind = a.dtype.kind
        self.exact.update(f"{name}|{kind}{a.dtype.itemsize}|{a.shape}".encode())
        if kind in "biuU":
            for suffix, bits in _DUST.bits.items():
                if name.endswith(suffix):
                    a = a & ~bits
            little = a.astype(a.dtype.newbyteorder("<"), copy=False)
            self.exact.update(np.ascontiguousarray(little).tobytes())
        elif kind != "f":
            raise TypeError(f"{name}: no platform-independent form for dtype {a.dtype}")
        elif name not in self.skip_floats:
            field = re.sub(r"\[\d+\]", "", name) if "[" in name else name
            acc = self.sums.setdefault(field, [0.0, 0.0, a.dtype.itemsize, 0])
            self.pending.setdefault(field, []).append(a.astype(np.float64).ravel())  # a copy
            acc[3] += a.size
            if acc[3] >= _BATCH:
                self._flush(field)

    def _flush(self, field: str) -> None:
        x = np.concatenate(self.pending.pop(field))
        acc = self.sums[field]
        acc[3] = 0
        finite = np.isfinite(x)
        if not finite.all():
            # Where the NaNs and infinities are is discrete, so it is hashed exactly.
            cls = np.where(finite, 0, np.where(np.isnan(x), 1, np.where(x > 0, 2, 3)))
            self.exact.update(f"{field}!".encode() + cls.astype(np.uint8).tobytes())
            x = np.where(finite, x, 0.0)
        w = _WEIGHTS[: x.size] if x.size <= _WEIGHTS.size else np.resize(_WEIGHTS, x.size)
        # einsum, not BLAS: a threaded dot costs more CPU than it saves here.
        with np.errstate(over="ignore", invalid="ignore"):
            absolute = float(np.abs(x).sum()) * _SCALE
            weighted = float(np.einsum("i,i->", w, x)) * _SCALE
        if not (math.isfinite(absolute) and math.isfinite(weighted)):
            x = x * _SCALE  # values near the float64 maximum overflowed the sums
            absolute, weighted = float(np.abs(x).sum()), float(np.einsum("i,i->", w, x))
        acc[0] += absolute
        acc[1] += weighted

    @property
    def digest(self) -> str:
        return self.sha.hexdigest()

    def summary(self) -> tuple[str, dict[int, tuple[float, float, int]]]:
        """``exact`` (16 hex digits) and, per float width in bytes, (mix, size, fields)."""
        for field in list(self.pending):
            self._flush(field)
        floats: dict[int, tuple[float, float, int]] = {}
        for width in (8, 4):
            fields = [acc for acc in self.sums.values() if acc[2] == width and acc[0] > 0]
            if fields:
                mix = sum(weighted / absolute for absolute, weighted, _, _ in fields)
                size = sum(math.log(absolute) for absolute, _, _, _ in fields)
                floats[width] = (mix, size, len(fields))
        return self.exact.hexdigest()[:16], floats

    def fingerprint(self) -> str:
        exact, floats = self.summary()
        return " ".join([exact, *(f"{w}:{mix!r}:{size!r}" for w, (mix, size, _) in floats.items())])

    def portable_mismatch(self, stored: str) -> str | None:
        """Why this entry does not match its stored fingerprint, or ``None``."""
        exact, floats = self.summary()
        want_exact, *parts = stored.split()
        if exact != want_exact:
            return "names, shapes, integer/boolean values or NaN/inf positions changed"
        want = {int(w): (float(m), float(s)) for w, m, s in (p.split(":") for p in parts)}
        if floats.keys() != want.keys():
            return f"float widths {sorted(floats)} (recorded {sorted(want)})"
        for width, (mix, size, n_fields) in floats.items():
            limit = 2 * REL_TOL[width] * n_fields
            moved = max(abs(mix - want[width][0]), abs(size - want[width][1]))
            if moved > limit:
                return f"float{8 * width} summary moved by {moved:.3g} (limit {limit:.3g})"
        return None


def platform_key() -> str:
    """numpy version, machine and the CPU features numpy dispatches on."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # pragma: no cover - older numpy layout
        from numpy.core._multiarray_umath import __cpu_features__ as feats
    on = ",".join(sorted(k for k, v in feats.items() if v))
    raw = f"{np.__version__}|{platform.machine()}|{on}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- gate corpus

_LIMITS: dict[str, RiskLimits] = {
    "default": RiskLimits(),
    "longshort_beta": RiskLimits(
        long_only=False,
        max_symbol_weight=0.10,
        max_gross=1.5,
        max_net=0.5,
        max_sector_gross=0.5,
        beta_tolerance=0.3,
        max_turnover=0.5,
        max_participation=0.05,
        slippage_budget_bps=10.0,
    ),
    "notional_tight": RiskLimits(
        long_only=False,
        max_symbol_weight=0.2,
        max_symbol_notional=4e5,
        max_gross=1.2,
        max_net=0.3,
        max_gross_notional=2e6,
        max_sector_gross=0.45,
        max_turnover=0.2,
        max_participation=0.02,
        slippage_budget_bps=3.0,
        regime_budget_multipliers=(1.2, 0.9, 0.4, 0.7),
        regime_capacity_multipliers=(1.5, 1.0, 0.3, 0.0),
        default_budget_multiplier=0.8,
        default_capacity_multiplier=0.6,
    ),
    "longonly_beta_notional": RiskLimits(
        long_only=True,
        max_symbol_weight=0.15,
        max_symbol_notional=2e6,
        max_gross=0.9,
        max_gross_notional=5e7,
        beta_tolerance=0.8,
        max_sector_gross=0.35,
        max_strategy_contribution=0.3,
    ),
    "reduce_only": RiskLimits(long_only=False, reduce_only=True, max_net=0.4, max_gross=1.3),
    "kill": RiskLimits(kill_switch=True),
}


def _gate_case(
    b: int, m: int, seed: int, limits: RiskLimits, *, strategies: bool, edge: bool
) -> tuple[np.ndarray, GateContext]:
    """A seeded proposal and context; books near/over the limits (some the chain's own
    output), untradable and illiquid names, and with ``edge`` corrupt inputs."""
    rng = np.random.default_rng(seed)
    n_sectors = max(1, m // 5)
    sector_ids = rng.permutation(np.arange(m) % n_sectors)
    ctx = GateContext(
        current_weights=np.zeros((b, m)),
        equity=np.exp(rng.uniform(np.log(1e5), np.log(1e8), b)),
        prices=rng.uniform(5.0, 500.0, (b, m)),
        adv_notional=np.exp(rng.uniform(np.log(1e5), np.log(1e10), (b, m))),
        volatility=rng.uniform(0.005, 0.05, (b, m)),
        spread_bps=rng.uniform(0.5, 40.0, (b, m)),
        sector_ids=sector_ids,
        regime=rng.integers(-1, 5, b),
        tradable=rng.random((b, m)) < 0.95,
        betas=rng.normal(1.0, 0.5, (b, m)),
        kill_switch=rng.random(b) < 0.05,
        reduce_only=rng.random(b) < 0.1,
    )
    scale = 3.0 / m
    first = rng.normal(0.3, 1.0, (b, m)) * scale
    warm = RiskGateChain(limits).apply(first, ctx).approved
    drift = 1.0 + rng.normal(0.0, 0.05, (b, m))
    pick = rng.random((b, 1))
    current = np.where(pick < 0.4, warm, np.where(pick < 0.8, warm * drift, 0.0))
    proposed = rng.normal(0.3, 1.0, (b, m)) * scale * rng.choice([0.2, 1.0, 4.0], (b, 1))
    same = rng.random(b) < 0.15  # resubmit the chain's own book
    proposed[same] = current[same]
    sw = None
    if strategies:
        parts = rng.dirichlet(np.ones(3), (b, m)).transpose(0, 2, 1)  # (b, 3, m)
        sw = parts * proposed[:, None, :] * rng.uniform(0.5, 2.0, (b, 3, 1))
        proposed = sw.sum(axis=1)
    if edge:
        adv = ctx.adv_notional.copy()
        vol = ctx.volatility.copy()
        prices = ctx.prices.copy()
        spread = ctx.spread_bps.copy()
        equity = ctx.equity.copy()
        adv[rng.random((b, m)) < 0.05] = 0.0
        vol[rng.random((b, m)) < 0.03] = np.nan
        prices[rng.random((b, m)) < 0.03] = -1.0
        spread[rng.random((b, m)) < 0.02] = np.inf
        specials = np.array([np.nan, np.inf, -np.inf, 1e308, -1e308, 5e-324, -0.0, 0.0])
        hit = rng.random((b, m)) < 0.04
        proposed = proposed.copy()
        proposed[hit] = rng.choice(specials, int(hit.sum()))
        current = current.copy()
        if b > 2:
            current[1, 0] = np.nan
            equity[2] = 0.0
        if sw is not None:
            sw = sw.copy()
            sw[rng.random((b, 3, m)) < 0.01] = np.nan
        ctx = dataclasses.replace(
            ctx, adv_notional=adv, volatility=vol, prices=prices, spread_bps=spread, equity=equity
        )
    ctx = dataclasses.replace(ctx, current_weights=current, strategy_weights=sw)
    if limits.beta_tolerance is None and rng.random() < 0.5:
        ctx = dataclasses.replace(ctx, betas=None)
    return proposed, ctx


def _gate_cases() -> Iterator[tuple[str, np.ndarray, GateContext, RiskLimits]]:
    seed = 100
    for b in BATCHES:
        for m in UNIVERSES:
            for name, limits in _LIMITS.items():
                for strategies, edge in ((False, False), (True, False), (False, True)):
                    seed += 1
                    p, ctx = _gate_case(b, m, seed, limits, strategies=strategies, edge=edge)
                    yield f"gate/{name}/b{b}/m{m}/s{int(strategies)}e{int(edge)}", p, ctx, limits


def _exec_params(rng: np.random.Generator, m: int, variant: int) -> ExecutionParams:
    if variant == 0:
        return ExecutionParams()
    if variant == 1:
        return ExecutionParams(
            name_drift_threshold=0.02, portfolio_drift_threshold=0.05, lot_size=100.0
        )
    return ExecutionParams(
        name_drift_threshold=rng.uniform(0.0, 0.03, m),
        portfolio_drift_threshold=0.03,
        lot_size=rng.choice([1.0, 10.0, 50.0, 0.5], m),
        scheduled_only=True,
    )


def _triggers(rng: np.random.Generator, b: int, m: int, variant: int) -> Triggers | None:
    if variant == 0:
        return None
    return Triggers(
        scheduled=rng.random(b) < 0.5,
        vol_ratio=rng.uniform(0.5, 2.5, b),
        spread_ratio=rng.uniform(0.5, 4.0, (b, m)) if variant == 2 else rng.uniform(0.5, 4.0, b),
        kill_switch=rng.random(b) < 0.05,
    )


def gate_and_execution_digests() -> dict[str, _Recorder]:
    out: dict[str, _Recorder] = {}
    for key, proposed, ctx, limits in _gate_cases():
        res = RiskGateChain(limits).apply(proposed, ctx)
        h = _Recorder()
        h.add_dataclass("gate", res)
        out[key] = h
        if "/e1" in key or not np.isfinite(ctx.current_weights).all():
            continue  # execution requires finite books (the gates replace bad ones)
        b, m = proposed.shape
        rng = np.random.default_rng(len(out))
        h = _Recorder()
        for variant in range(3):
            lim = None if variant == 1 else limits
            pol = ExecutionPolicy(_exec_params(rng, m, variant), lim)
            ex = pol.apply(res, ctx, _triggers(rng, b, m, variant))
            h.add_dataclass(f"exec{variant}", ex)
        out["exec/" + key[5:]] = h
    return out


# ----------------------------------------------------------------------------- costs, observation


def cost_digests() -> dict[str, _Recorder]:
    out: dict[str, _Recorder] = {}
    rng = np.random.default_rng(7)
    models = (CostModel(), CostModel(2.0, 0.5, 0.3), CostModel(0.0, 0.0, 0.0))
    for b in BATCHES:
        for m in UNIVERSES:
            trade = rng.normal(0, 0.05, (b, m))
            trade[rng.random((b, m)) < 0.2] = 0.0
            trade[rng.random((b, m)) < 0.02] = np.nan
            eq = np.exp(rng.uniform(10, 18, b))
            adv = np.exp(rng.uniform(10, 22, (b, m)))
            adv[rng.random((b, m)) < 0.1] = 0.0
            vol = rng.uniform(0, 0.05, (b, m))
            spread = rng.uniform(0, 30, (b, m))
            h = _Recorder()
            for i, cm in enumerate(models):
                h.add(f"ec{i}", expected_cost(trade, eq, adv, vol, spread, cm))
                h.add(f"ec_scalar{i}", expected_cost(trade, 1e6, adv[0], vol[0], spread[0], cm))
                h.add(f"ct{i}", cost_terms(trade, eq, adv, vol, spread, cm))
            out[f"cost/b{b}/m{m}"] = h
    return out


def observation_digests() -> dict[str, _Recorder]:
    cfg = config_from_dict({})
    market = synthetic(n_assets=9, n_days=420, seed=3, n_sectors=3)
    fb = FeatureBuilder(cfg.features, RegimeModel(cfg.regime))
    feats = fb.precompute(market)
    rng = np.random.default_rng(9)
    out: dict[str, _Recorder] = {}
    for b in BATCHES:
        rows = rng.integers(fb.history - 1, market.n_days, b)
        w = rng.normal(0, 0.5, (b, 9))
        w[rng.random((b, 9)) < 0.05] = 7.0
        dd = rng.uniform(-0.1, 1.2, b)
        cash = rng.normal(0, 4, b)
        h = _Recorder()
        h.add("rows", fb.observation(feats, w, dd, cash, rows=rows))
        h.add("take", fb.observation(feats.take(rows), w, dd, cash))
        h.add("list", fb.observation(feats.take(rows), w.tolist(), dd.tolist(), cash.tolist()))
        out[f"obs/b{b}"] = h
    return out


# ----------------------------------------------------------------------------- env rollouts

_ENV_VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "longshort": {
        "risk": {
            "long_only": False,
            "beta_tolerance": 0.5,
            "max_net": 0.6,
            "max_gross": 1.4,
            "max_symbol_notional": 3e5,
            "max_gross_notional": 1.5e6,
        },
        "env": {"cvar_mode": "realized", "turnover_weight": 0.01, "drawdown_weight": 0.05},
    },
    "kill_lots": {
        "env": {"drawdown_kill": 0.03, "initial_equity": 2e5},
        "execution": {"lot_size": 10.0, "scheduled_only": True, "schedule_every": 3},
    },
}


def _env_cfg(mode: str, variant: str) -> Any:
    over = _ENV_VARIANTS[variant]
    # Reward knobs pinned (not defaults) so that a default change does not move digests.
    env = {
        "split": "all",
        "episode_length": 60,
        "action_mode": mode,
        "cvar_weight": 0.5,
        "intervention_weight": 0.01,
        **over.get("env", {}),
    }
    return config_from_dict({**{k: v for k, v in over.items() if k != "env"}, "env": env})


def _rollout(params: Any, b: int, n_steps: int, seed: int) -> _Recorder:
    from allocgym.envs import core

    rng = np.random.default_rng(seed)
    state, obs = core.reset(params, core.seed_keys(np.arange(b) + seed))
    h = _Recorder(_DUST.single_asset_fields if params.n_assets == 1 else ())
    h.add("obs0", obs)
    dim = params.action_spec.action_dim
    for i in range(n_steps):
        action = rng.uniform(-1, 1, (b, dim)).astype(np.float32)
        if i % 37 == 5:
            action[0, 0] = np.nan
        res = core.step(params, state, action)
        h.add("obs", res.obs)
        h.add("reward", res.reward)
        h.add("terminated", res.terminated)
        h.add("truncated", res.truncated)
        h.add("info", res.info)
        h.add_dataclass("context", res.decision.context)
        h.add_dataclass("gate", res.decision.gate)
        h.add_dataclass("exec", res.decision.execution)
        h.add_dataclass("state", res.state)
        done = res.terminated | res.truncated
        if done.any():
            metrics = core.episode_metrics(params, res.state, np.flatnonzero(done))
            h.add_json("metrics", metrics)
        state, reset_obs = core.autoreset(params, res.state, done)
        h.add("reset_obs", reset_obs)
    h.add_dataclass("final", state)
    return h


def env_digests(n_steps: int = 200) -> dict[str, _Recorder]:
    from allocgym.envs import EnvParams

    out: dict[str, _Recorder] = {}
    markets = {m: synthetic(n_assets=m, n_days=420, seed=20 + m) for m in (*UNIVERSES, 90)}
    for mode in ("weights", "budgets"):
        for m in UNIVERSES:
            params = EnvParams.from_config(markets[m], _env_cfg(mode, "base"))
            for b in BATCHES:
                out[f"env/{mode}/base/b{b}/m{m}"] = _rollout(params, b, n_steps, seed=b * 100 + m)
        for variant in ("longshort", "kill_lots"):
            params = EnvParams.from_config(markets[20], _env_cfg(mode, variant))
            out[f"env/{mode}/{variant}/b7/m20"] = _rollout(params, 7, n_steps, seed=3)
        params = EnvParams.from_config(markets[90], _env_cfg(mode, "base"))
        out[f"env/{mode}/base/b7/m90"] = _rollout(params, 7, 60, seed=4)
    return out


def all_digests() -> dict[str, _Recorder]:
    return {
        **gate_and_execution_digests(),
        **cost_digests(),
        **observation_digests(),
        **env_digests(),
    }


# ----------------------------------------------------------------------------- recorded

PLATFORM = "e7c35e4313eda9af"
DIGESTS: dict[str, str] = {
    "gate/default/b1/m1/s0e0": "dd188aa3a3ac61d56f050e7a06616d35a38e40d19a08f014434160af5b85cb36",
    "exec/default/b1/m1/s0e0": "e22036a459b8a6316c4a9e45652f47ee86d02113597d419cc040e50a069b3ac3",
    "gate/default/b1/m1/s1e0": "aa1eaf1b6790fda72799d6c7718efac31e6a3a08ed725aed71c37371ea47d1d6",
    "exec/default/b1/m1/s1e0": "e5fa41bd8d83f386b9820a63cad81b932d236da524d3315dfd12c8c6782859b4",
    "gate/default/b1/m1/s0e1": "bad6c5e226c84f0c16acf0ecf2de10bcb83c26cf10a72a9cc4887b7be0a6d899",
    "exec/default/b1/m1/s0e1": "0089af54490bc5124e77a2c4ae8833616ef7f281536ad712c7b4d8c2c0018abf",
    "gate/longshort_beta/b1/m1/s0e0": "a81d27e3b02dc11de61473f38ba598528ccd489862b76f23843b04fd086447ad",
    "exec/longshort_beta/b1/m1/s0e0": "586b642f4c8f203c09c20e2b53e8000d31804d8882376a6831dcd14c4a3920b9",
    "gate/longshort_beta/b1/m1/s1e0": "057432f7bad83e4e304f0786e60561c5d572a3012fc8b61aaeb69e2c66362c77",
    "exec/longshort_beta/b1/m1/s1e0": "7fbe624d49b1becd88438e485df0be57ffa3d4abc108087cd336c4111edbc577",
    "gate/longshort_beta/b1/m1/s0e1": "f00465f5522a31576817e6c2b7486a779dccedfe141c9249de4c5d7a3b637866",
    "exec/longshort_beta/b1/m1/s0e1": "6a173959f450a00c5044c7b6d7270941594765144488b7740188330b0fc36e95",
    "gate/notional_tight/b1/m1/s0e0": "3732d1c6e7d3986a95e31b8f2d9f3c2c5b44e0406932ef9e182e26f49107df6f",
    "exec/notional_tight/b1/m1/s0e0": "6d81fdc3c841b43aeb94826b0cb60bfd852ed173cd0700658fc0334a6bf00287",
    "gate/notional_tight/b1/m1/s1e0": "02bc0a05e6e3fdc7e54c3aa123c0299dece5b30bfde13942c6134022c0c2a278",
    "exec/notional_tight/b1/m1/s1e0": "8a23c4fe01770e24916592b5b3f6619e262b1c85f90bf7e9337d6b16d1f070fd",
    "gate/notional_tight/b1/m1/s0e1": "dd99cd30507ae98e783b4a786f51457bd33e4451ff0400276a28edc18b95871d",
    "exec/notional_tight/b1/m1/s0e1": "6b27df1f4c38af9574bd176485ac23b0327cd72b29972396b9f25bd8bca6aa59",
    "gate/longonly_beta_notional/b1/m1/s0e0": "8a4ceab18e8b29705911b02d847c8fbfd99e1acbe9f2484a45237b1cd9426194",
    "exec/longonly_beta_notional/b1/m1/s0e0": "57f8a1caad5353fcba8cdfdfef739f33a61e793a85d05acc45c782d634e8386d",
    "gate/longonly_beta_notional/b1/m1/s1e0": "56a5ea73e8c73d3a06d1686dd0b3d7cf5e812a9167722274f9ebe060c25860cc",
    "exec/longonly_beta_notional/b1/m1/s1e0": "098e6bec86b5e7593c3366c1f360dace43b632dacd10ad983389581cd5aef140",
    "gate/longonly_beta_notional/b1/m1/s0e1": "d399be1f01f4d26afec1d689b3933cf8b90844419cb553a57ecfec1b2ad54b75",
    "exec/longonly_beta_notional/b1/m1/s0e1": "f5baa409839bd7566a9e0273f1e84b09d113fd453740d845b438902d1035dc1f",
    "gate/reduce_only/b1/m1/s0e0": "9c43e70892cc02bfa49e3bdbaeae9f590802df323e1f684551ec98ec5c23cee5",
    "exec/reduce_only/b1/m1/s0e0": "f15b1b0e708cd591ec1447c0dfaf23b9fcd1e8763c046a8b21d99f3c5d39e03e",
    "gate/reduce_only/b1/m1/s1e0": "08bab032686806c07007e086b7c5a85fc021a11788ee9d3997b12f1dc89a61ec",
    "exec/reduce_only/b1/m1/s1e0": "307be30b245a8cc4663ccbeb213706fbb6b98596f75ce7f2e2195d8eb2eeb7a6",
    "gate/reduce_only/b1/m1/s0e1": "708bef1bb5b10462355c1e6a1a0e5823ed1a1f87b59ecf4cf20942a3072be1ff",
    "exec/reduce_only/b1/m1/s0e1": "08ef0e994bce0e569efc49c1ac3c3604d09070d106817b41a6802e5c771c3554",
    "gate/kill/b1/m1/s0e0": "3ce13c98ec7a8eb2371b21aefcec221d9d83e003e808ece449467556941ef3ab",
    "exec/kill/b1/m1/s0e0": "a468aa0d097344ef5ffaf954865418ab4753f174e13d8d8f371d09ff14e68d4d",
    "gate/kill/b1/m1/s1e0": "132735766dce3890ce3ae3c3a31f401e57d386e1f33c54a069b6413a84cdff53",
    "exec/kill/b1/m1/s1e0": "dd7926f5a35311835f4114f2fd65e318a991095203445928e5ee107ff31b9f93",
    "gate/kill/b1/m1/s0e1": "8c3b250637a3d08d84cf41d5952ad79ad11c54191ba33468a323b0bc7171887e",
    "exec/kill/b1/m1/s0e1": "1020f75f1d9eabaab158e5c1159f18909c4507e00fba4d64b785b52e49cb89ae",
    "gate/default/b1/m20/s0e0": "c9c3a02670e28bcef026b918ebb747b9f53ff82013066f3a0867bc012d118c39",
    "exec/default/b1/m20/s0e0": "17994731018ae3659e91f1b5dc03ec2ce7aca0dba72a071910f185e3b434ce14",
    "gate/default/b1/m20/s1e0": "180ed151ae3ea365f52258a7dd19297e3ec4554eb2b9bee5e0732cf28efdf6ee",
    "exec/default/b1/m20/s1e0": "899e32bdb67bbfed1d601754611c44d8678d4fb4117ab18279eaa1b00c66410f",
    "gate/default/b1/m20/s0e1": "e0c3f5b59bfc283b13c50d4a7e41217037e8e87a15f26dd0bf504d6d9536fd1b",
    "exec/default/b1/m20/s0e1": "93f6f42d45848d33eb6c5b715a48a373a208d5f4c8128dcba482e69ac1a71b79",
    "gate/longshort_beta/b1/m20/s0e0": "0e8c44eacb366ca605c4f4c00c0926e8cb48bd6f115a3a88ebe471f264f22697",
    "exec/longshort_beta/b1/m20/s0e0": "b3104a26b7e1477a3a57ed18db4cc63756a8cbda326ab35b1f34eaaee3b9a0ae",
    "gate/longshort_beta/b1/m20/s1e0": "fc36eafe0b7384b80e58d253cb4e75c72546bda06a4ebbd9a5b801c39ef13dc6",
    "exec/longshort_beta/b1/m20/s1e0": "309cb23767ac58b5f99ec0b35a5ab7b1574d44e0738a9cbd2a5e0168b7b4da1c",
    "gate/longshort_beta/b1/m20/s0e1": "cd0295bc720b547dbd1260ec6ea34dad87f63fd1038c2b25434cf488d942ea42",
    "exec/longshort_beta/b1/m20/s0e1": "56f5bc414fe63c01ea4df1b931d7fb0d5d3f1e861cb010961912805046cbaab0",
    "gate/notional_tight/b1/m20/s0e0": "20dc6cff219a963171be8ecd22a098e13d26b5d0f1e2d9644eff23c32d82c73e",
    "exec/notional_tight/b1/m20/s0e0": "1766f08218b85f720a0b453d93cc8cdfb54b583713f9ba37bbdae548f7512947",
    "gate/notional_tight/b1/m20/s1e0": "a6d4b2320c07044d9a84d4cdfdf50d161d2ae4d3c392895adc136b38a4e70b5c",
    "exec/notional_tight/b1/m20/s1e0": "4f30e49fe96c7a2a3bd5722a41f329be416ff1c793448619346cec96b3697b39",
    "gate/notional_tight/b1/m20/s0e1": "9d15f9a3da7e5013efc769462c6895c96ce1f621c4d0fdd05b27ffc4c209841f",
    "exec/notional_tight/b1/m20/s0e1": "f6601005e386c9b55dbb206da70761f926685f5ef64d5d261230b2134d729e98",
    "gate/longonly_beta_notional/b1/m20/s0e0": "ae57eba8242b917764b7c61350dd6e6d903ae7e29ddbc00ba53fd3363e983be9",
    "exec/longonly_beta_notional/b1/m20/s0e0": "46bed610da615ad4f71f1465435034c1f1a6cf13d3fadd45ea6ac26d1c9fdbf7",
    "gate/longonly_beta_notional/b1/m20/s1e0": "04905dbfd7f7543bf59e130e1ae3b1ea34880d2827d5099e5b8758a93f32395e",
    "exec/longonly_beta_notional/b1/m20/s1e0": "3fe9fc87665ae05eb615965b7ca1792eaabcd02ddfcd316a16f9cee50da000ee",
    "gate/longonly_beta_notional/b1/m20/s0e1": "c2e63b8a26a327d5aff5f49abc8b24a54b07807ccda9ab0f0010bfd4b5891bd3",
    "exec/longonly_beta_notional/b1/m20/s0e1": "5c40f0918ceb7e8f7516dcf12cb10db57811af6780d3531bbadd87137bc0c774",
    "gate/reduce_only/b1/m20/s0e0": "8d40e79875ea4dde2a7ce671fa9adc02dfefc7392e0779e293045505cfa3bb14",
    "exec/reduce_only/b1/m20/s0e0": "f221c6b5f9d527dc6a34cf2954ad7df509eac94d53a26557a108d11f304cac02",
    "gate/reduce_only/b1/m20/s1e0": "69d783025ce09ed17f8f316403d94409fece0182594f9865153cb7b5c564d3eb",
    "exec/reduce_only/b1/m20/s1e0": "a74fbc5459dc9e002a559c7786444d160f6f95a3a5f5dbe7458aafabb76c63a3",
    "gate/reduce_only/b1/m20/s0e1": "87d22dbfe953680383d05f57440ef131fb401093b83f0dd39051ee45a3206319",
    "exec/reduce_only/b1/m20/s0e1": "3d9ec76a72b6f42dd8fec962476d09cb3e0826d9a263d6407fd914a25fb73e43",
    "gate/kill/b1/m20/s0e0": "1daedd4ed10ece7f73dab0c62de7eae31743535ea5e39776152ea38d26e564a9",
    "exec/kill/b1/m20/s0e0": "aa27c450e7126f5a9abb034eaa35da8f4d7283f8beeb444d0a83f3bf2d971095",
    "gate/kill/b1/m20/s1e0": "4ccf337693662fceca574b84b8d98436605205056a2d252b70c60d91fa600751",
    "exec/kill/b1/m20/s1e0": "574ffccfa1389fc8f845ddab851938af6e434c7196a7cf7ce48fafaa4b43f667",
    "gate/kill/b1/m20/s0e1": "7ad996673f80300715d4bb3bc471447dabe66cc31738b8ab6adb6ee3d3cada97",
    "exec/kill/b1/m20/s0e1": "d855e84ce267ed2d7220e18631565ef0f44acb3111b1674dc6801cc509b05b93",
    "gate/default/b1/m53/s0e0": "1f24d0d1e8bbb021aaf30dccba566bb2721f3d7e9b5f7597c1da696f2ca932cc",
    "exec/default/b1/m53/s0e0": "62b0be42382933781579e70fb266888889f90d404e12ff3e6d2be792d64c068f",
    "gate/default/b1/m53/s1e0": "183319d2354364b08940001825246edebc1cbe147bad37a97db93979f274baac",
    "exec/default/b1/m53/s1e0": "46273147394cd226e6367c4af7996370c8d35c630ffe36f746cfc995f06a6752",
    "gate/default/b1/m53/s0e1": "c5b3ebcdb53c9b3732ebb4b9c7eb3a9f2928af3ae0bc2c71507e9407930a5c9f",
    "exec/default/b1/m53/s0e1": "d8759ef1d93669f4a1760ff53a866ca97a089630dc7b535c20876a9f3d585c31",
    "gate/longshort_beta/b1/m53/s0e0": "72bf7b77d78d2890675be398c5cf9067323e51556f89b195fb5389b8955de219",
    "exec/longshort_beta/b1/m53/s0e0": "29eb482c54388eb8c53d19321c86e1f55d44ef972315710f7866d07f9728a775",
    "gate/longshort_beta/b1/m53/s1e0": "601b642baca337fb4853d3f15dea08f5c14844f2e3f201329445c1835bcae060",
    "exec/longshort_beta/b1/m53/s1e0": "5e2ff6f68595f58c6975ed138e4e656728b3cee2617997f9622474f879a85701",
    "gate/longshort_beta/b1/m53/s0e1": "fb34e6d6961294cadbb1eb437a7fdaa4e62abaa712d43724007fbfba0418004c",
    "exec/longshort_beta/b1/m53/s0e1": "d6a775f868068c9f3e07b069351af76afc6d1fdfb82f46fd2534caee776f58c0",
    "gate/notional_tight/b1/m53/s0e0": "1cf3ee6d548e7beda8acfb71eb8c0b8f3b5605ab0cc8f7c16eb63f2addf25dff",
    "exec/notional_tight/b1/m53/s0e0": "2c60b70eef24d5a3458aff1e9a356f28cd6f2c4930fd29b2495aeb53472e6aec",
    "gate/notional_tight/b1/m53/s1e0": "870b12e31b0545ecea4315121078768842818503dd411fec498dd9dbe0d9eda3",
    "exec/notional_tight/b1/m53/s1e0": "19e40b18ff99f459a7d8ed8c3a4fa518851f63ef3595b6f715de7742d884ed20",
    "gate/notional_tight/b1/m53/s0e1": "00f02a106d30fb4ace05c54b12fd614117eb37690a2185dc1ff600079972cb1e",
    "exec/notional_tight/b1/m53/s0e1": "6b7f750cc144fa067399b27de878b2647681a8e95e3dc3570d18dc15d844f015",
    "gate/longonly_beta_notional/b1/m53/s0e0": "27c19e66abd92a4840ba48ab61430d19b8e766c7445eac0f6fe0f3682f2833df",
    "exec/longonly_beta_notional/b1/m53/s0e0": "943cf863979e89eabf5198b7427f60e0c4e63d8a96f872bf24dfcd1c9c4b1433",
    "gate/longonly_beta_notional/b1/m53/s1e0": "ca3bdaf49e77b47c40ce41270aa94cbfff472390c4daa1ef4eb1542bdb5cfa7d",
    "exec/longonly_beta_notional/b1/m53/s1e0": "6fc04ab46a06d9cd2e6a06cc38a45febbf81388fec3715eb272dc17e3265d78a",
    "gate/longonly_beta_notional/b1/m53/s0e1": "37f1d78ebc54bc7fbbef5718435e36a154f9c8b7fa11d824dd25e67edbb7f9c3",
    "exec/longonly_beta_notional/b1/m53/s0e1": "0d3f501071dd008dcad6879c69cf9f7e16e1c3da207a2aef4659d7a5b7add7ce",
    "gate/reduce_only/b1/m53/s0e0": "6e39ec2541f779034bd44752a279c3a9271ecf57651cc7be306ddd4e2f0db824",
    "exec/reduce_only/b1/m53/s0e0": "a7f704a17a99d6d5b789e65f09290b6991461d2485189fed39459d55cec5a35b",
    "gate/reduce_only/b1/m53/s1e0": "a565547562ec3773503d8a50693095b16664deaae88496c9b82042b9a784cd79",
    "exec/reduce_only/b1/m53/s1e0": "9515339bb067bd57d1e048ecffc82581dbd6d9b9a7b0f0323449f0feef57f2e8",
    "gate/reduce_only/b1/m53/s0e1": "e3d9a490cb0714d36e1ee7f8738674b908a02efceb7a38b19338d25ac17229a2",
    "exec/reduce_only/b1/m53/s0e1": "0a3476167e4a64eabeba0ff5e5d6055f365a7a1748632f5f14e64f9319b47083",
    "gate/kill/b1/m53/s0e0": "4da65267232fdd499195bd37f4cbdaf9b5ac58461651bd956c62bccda922f4e0",
    "exec/kill/b1/m53/s0e0": "5440f2fbf1db2ba34685b81611b98db47311b2cbb3f2f2aac2781f4ff7c1f9cf",
    "gate/kill/b1/m53/s1e0": "786855409dde9ce7336d73eab8a7ca44f78695e9b9e50a21b9bbf040a94efc70",
    "exec/kill/b1/m53/s1e0": "0aaa821fdc682625869a4e6f758f897c767bb3596444d4a511cac96910ef34e4",
    "gate/kill/b1/m53/s0e1": "84ce70aac8a94c15b812c36d8de78f9575b68fb7eabdc8ffe14ffb30ee2a678a",
    "exec/kill/b1/m53/s0e1": "cbee6d16ceae0cda0e03cdde6ecb99e5d460cb618b8413fc0d0e2ba48e6c4ea7",
    "gate/default/b7/m1/s0e0": "e32a738f392689abb1d335b3183d1f2710453a70e2f15bf604ab0bb209494d8a",
    "exec/default/b7/m1/s0e0": "cc2342f3618d6b47b52a78f535f730b2e3e2d167c80e652c322701c91a006f14",
    "gate/default/b7/m1/s1e0": "d220226dae9596a1e4ed38910a3ec49aa7462ebb0d1f13ec7c19ebef70176323",
    "exec/default/b7/m1/s1e0": "b64541230997027297753d411ffe10ee592de38df20189898d639fcb6a4ee6a9",
    "gate/default/b7/m1/s0e1": "eaf6c9669b77d442881d8c2e1ebca95322ee739c314bc15c0096e39b32cf9ffb",
    "gate/longshort_beta/b7/m1/s0e0": "057347a37885e7b7dfeec0fdbc6db7f1ef09bf3591feef4b2a54731f301a8055",
    "exec/longshort_beta/b7/m1/s0e0": "7ce5547d8ee3ec5ca74c7f35fdb0ec8209e19b5423959c4bfae0c339032bc5d7",
    "gate/longshort_beta/b7/m1/s1e0": "3a423cd4c63f3030ce56f113ac8a52ebefff6080244bd535408b882d4b4b800e",
    "exec/longshort_beta/b7/m1/s1e0": "89cd04a8f98edc328826cffdd8f042f07188a63c6ff00de494b33fa7ce2f1ae0",
    "gate/longshort_beta/b7/m1/s0e1": "539c264a81b565e78e0e0740f9478ded47b393572d876ca3e2fe32845a7903ca",
    "gate/notional_tight/b7/m1/s0e0": "03a19f6858198b8160ad31a7f0ca35fd4d2e07e1078deee85d518f06aa791265",
    "exec/notional_tight/b7/m1/s0e0": "ecf771b7f1df93fc732417573f0417cc0adc14deaf59c9c54213f7a09ddf0667",
    "gate/notional_tight/b7/m1/s1e0": "fa5a0a7157046596a2d87f4a14527e8b17ca9aa0d0c63a96714f6e02c0e9fa56",
    "exec/notional_tight/b7/m1/s1e0": "c38d7fd82235e2fab5693e483f224110fc0d610f04e815433ec694a16b6f1f40",
    "gate/notional_tight/b7/m1/s0e1": "9539b529eb98b02d664eeb41749e5a8b85771b8e62fb8c837dfd734ffbc8b59d",
    "gate/longonly_beta_notional/b7/m1/s0e0": "f306014ffe769a746dd7e708e550e61171b6ada0bf62226b74282a0fa7876fdc",
    "exec/longonly_beta_notional/b7/m1/s0e0": "46d52444fb2f0120b9d8867135613cdd4bb9a4a51d130d347bc75e5f8034701e",
    "gate/longonly_beta_notional/b7/m1/s1e0": "e870e17864ca112d19af6b778e4038398e6ad7827cfc0c792314b35d77f2f0bc",
    "exec/longonly_beta_notional/b7/m1/s1e0": "5baa374e04a1a8ecb85a02a682953852c4fbbdd4b5629be3c7a1045a8c157470",
    "gate/longonly_beta_notional/b7/m1/s0e1": "7af21ef266246e92d912d2f6400ef21078f6a4fed0740298fc65d433d7acb3d7",
    "gate/reduce_only/b7/m1/s0e0": "1fb7647104090da2c5d1ef2155859c29b3b13aac6cedb544c1ab344d0a8e5f0b",
    "exec/reduce_only/b7/m1/s0e0": "d03dea623ec9c611bd934627bb1c53ab8766bbff1bf891511e4b292ae2b98eaf",
    "gate/reduce_only/b7/m1/s1e0": "3b955ead2d0bed94ddcc2366ed4d38b9aeaa7b1a3fabefa97e8d00d3158140e0",
    "exec/reduce_only/b7/m1/s1e0": "4151c238b4d95292071815c59a971051a9c5f15c27ef01acf43304ffea20bcdf",
    "gate/reduce_only/b7/m1/s0e1": "e98c5c2778530457693bc7584011c4c99ffeae30ef8776a07e08bac3e1719ca6",
    "gate/kill/b7/m1/s0e0": "e6dea3ad0e95b4c6333f7d9ff67f434bf0471e3f1299b379f06eb8e978bbd2ad",
    "exec/kill/b7/m1/s0e0": "45a3f9102a7cd20fa25356b52490e7fe99429d72506a2d9079b15aa2ca36bd58",
    "gate/kill/b7/m1/s1e0": "734a127f992812f2220bb147050dc8574a6cf4ebedf81774c6da900ace19b65f",
    "exec/kill/b7/m1/s1e0": "ce5e8bffe1108fc8aab572d64c3ff459dec63799815ef62a66e4ecd40ed21df3",
    "gate/kill/b7/m1/s0e1": "1640319a307a8588341aedbcd6ad4da648c352501c1badb6205a09d5dd994217",
    "gate/default/b7/m20/s0e0": "ad5911322961544de3ef60872ba906b8a6aff556acbbf77d084499028c43e21b",
    "exec/default/b7/m20/s0e0": "fd59e505c3384ffd88838da5aec766a00597d1be370c5c33126a6a6bccc5eb9d",
    "gate/default/b7/m20/s1e0": "7fdc63d7d137e577b900458b5f3a3f955854ed48bc4198c55f6d31ca100edac9",
    "exec/default/b7/m20/s1e0": "dbe68be4972d84d7083496eabe47f42d1f67fbabc2c03c004bf0fd23305129f2",
    "gate/default/b7/m20/s0e1": "432efc9f4cfcaec57fef5c580b485094b56ab3023294aad24690003441234efd",
    "gate/longshort_beta/b7/m20/s0e0": "427f7578242e728499eb2b7bcd6ee4b3f2b02cda7d5eab01d725a4b733525eca",
    "exec/longshort_beta/b7/m20/s0e0": "dee72154a9546b62ca566e39bdf02e8e8ddc98d749f69c0250e99c0e0b09e660",
    "gate/longshort_beta/b7/m20/s1e0": "e26332ef90b87d2259a74f464bf8b2bd7db5699543e516512278378e2382ad94",
    "exec/longshort_beta/b7/m20/s1e0": "97f0264be5efc70c63c42066e330fb50bc477970d8a6d61ebd28de2a2c062540",
    "gate/longshort_beta/b7/m20/s0e1": "23b38094729802d5c9464f55106fb64910b8877a0497c047a4d69699241b3f38",
    "gate/notional_tight/b7/m20/s0e0": "4646489997020673c5ef7de71f8d477a89d49366db8aa86b9ee9138cd356dc09",
    "exec/notional_tight/b7/m20/s0e0": "baa0f1c49d1271c3422f010f7618f95c4b368eb25ebf0bce26c19c0f88e0657b",
    "gate/notional_tight/b7/m20/s1e0": "682855d0c933ad5d69fb9d2b8b1ccfabc7828a4d06714fa1968d4ff330017736",
    "exec/notional_tight/b7/m20/s1e0": "f6477f74dca10728c010de83c9f15576de5db39c835c898c6956fe48bcca6185",
    "gate/notional_tight/b7/m20/s0e1": "1abd846a37c9460c2e25eb1eff04e3af214f3c1ff41ee808967307011b80862e",
    "gate/longonly_beta_notional/b7/m20/s0e0": "b27cbb6aa54d0f05ba238622f8d2e6ec19ae131af8615f7360a9a706b271cf3e",
    "exec/longonly_beta_notional/b7/m20/s0e0": "d5e0a8920ee974127bb83213f77570f7aae6a516de0e7ce4618e7b32f5b86207",
    "gate/longonly_beta_notional/b7/m20/s1e0": "93f09790c9ca589a249872c8714f71f4f12484e990fa0547b7496f34a36069cc",
    "exec/longonly_beta_notional/b7/m20/s1e0": "4b422ecef580802f317aca08beff0c08e37eac925264a822752ef8f167619828",
    "gate/longonly_beta_notional/b7/m20/s0e1": "b90e5e549bd283266f64d9727d79feadc30da57dcc1469220cd4bcaf0758a3fc",
    "gate/reduce_only/b7/m20/s0e0": "f9b3c0f80f32b3c1ee8229fd56d89c029fa9f769364308bfed8f040abb0639a8",
    "exec/reduce_only/b7/m20/s0e0": "0d186733d46283ed58558fbbe9e4335618558751f96a20a2d222f077af7eeff3",
    "gate/reduce_only/b7/m20/s1e0": "1480ce405dc0a5ce42966c3b1ad36d93d34cc049a8b3f510472b8f8f4879b494",
    "exec/reduce_only/b7/m20/s1e0": "9635ccd0cf43da230d07bed0fc617c99ff1cfbe52770b9642cb54e19e24fc07a",
    "gate/reduce_only/b7/m20/s0e1": "fa948c801a5f103cd3875f694f9ced7c855c134bc4df28225f0e3e95e5290829",
    "gate/kill/b7/m20/s0e0": "496d5a9e7425ec9733ea47c3520a57918a62db731e0edd51782b5f3dd6115581",
    "exec/kill/b7/m20/s0e0": "4569be428619fa275b9d70e52ed342617fd1475ae6881e133f4cf245707e650c",
    "gate/kill/b7/m20/s1e0": "9525d1e49d14aafce67541e222a8a02e02f7b80682489e0500217cf8bb53c4f9",
    "exec/kill/b7/m20/s1e0": "66adf4c362fb24936f9a2c239751ca9e5b7a72f55f78656dd5e598bc62108cd0",
    "gate/kill/b7/m20/s0e1": "5cf18a082335e61a7a640859016033a602a642c9d57bba7efe07506ff8f5ff32",
    "gate/default/b7/m53/s0e0": "9e6aaad2f61c0dfa61ca50fd96d7d3528998b0ed335b9922965cae6f6d70929a",
    "exec/default/b7/m53/s0e0": "27cb717a2e58eb40ca8659c9e93d79fecec15bbb192b5fcca1dea40d6f2c5b51",
    "gate/default/b7/m53/s1e0": "0820dfba2043e0951f8a8f7d0134682b863574d8cfa6c9e3a9977e4620457876",
    "exec/default/b7/m53/s1e0": "47eeefc70be37d42c8e257f3c4fbdc19dfd9726e8e5619e5787a451462543577",
    "gate/default/b7/m53/s0e1": "84d3837e4b5b42432884c6e58cf96769984049e680f202357f9e7c164f62ff8a",
    "gate/longshort_beta/b7/m53/s0e0": "ccd82f391b5270340ea681ad8c3eb3a8cfe020c7058a9bde7e764cde346d9e96",
    "exec/longshort_beta/b7/m53/s0e0": "039fb09f631c218b61fd536b551b4bc34c9e040561387a4af2566d520ed8ba49",
    "gate/longshort_beta/b7/m53/s1e0": "fd7f5bfb44c46af3607e38dd07c9479884dceb345910d3e12b547d3f0a254609",
    "exec/longshort_beta/b7/m53/s1e0": "17fdf0e5bc7f7a0f84442cc6f79c86e374ecf8f771c3bbf72d3b55be38323cf7",
    "gate/longshort_beta/b7/m53/s0e1": "70b9767b22f175b9079c3f1f37a69bbb3ec661ebab18d9ee919b3d0c5089ebde",
    "gate/notional_tight/b7/m53/s0e0": "70ed34a28b24487b0813ee370a2509c0dbaf5fdc53ce1aa3fa5b3c66b7a5d94c",
    "exec/notional_tight/b7/m53/s0e0": "27518c8a20c63e8c8004811f0de041d9e33bbbeca4ede93e37617d2239e9845d",
    "gate/notional_tight/b7/m53/s1e0": "f3355234506a5005a6ae905158b02fd78d0baa2ed2f1ae442f3a699c4c2063c3",
    "exec/notional_tight/b7/m53/s1e0": "635b9dab7e79e10f4d06fb738d97958e70cbc64db512f2ed242e080c762bc077",
    "gate/notional_tight/b7/m53/s0e1": "79fb012b3efdcbe175b9b3b345421bb066697415cb5788334a6e8d9a19537b6c",
    "gate/longonly_beta_notional/b7/m53/s0e0": "7385db40f7b53494cc0dfa40da4b61aa7c90a323b6e629dcb92285bede2d3f74",
    "exec/longonly_beta_notional/b7/m53/s0e0": "374b4d4a7d53b731a15592af8bf9d16627c43617c463d19d9c51026c0de0065b",
    "gate/longonly_beta_notional/b7/m53/s1e0": "1370afa2ad0570a4211effb3255fa97b538194b86fa5a0826021f8751f063c8e",
    "exec/longonly_beta_notional/b7/m53/s1e0": "552b6ec343a946f290265302dbc39dd6e2e465b0d27545268c56913e73ddb73f",
    "gate/longonly_beta_notional/b7/m53/s0e1": "5ee44d7556620a9c29a619258ed6b581964998b8b0d5fa5f8d328cc854ef75de",
    "gate/reduce_only/b7/m53/s0e0": "982ea68a5348568d59dbbb1592f12fe2690541e3d759d78036dcff79d2fbb031",
    "exec/reduce_only/b7/m53/s0e0": "185a4ecffc8b2f06ea24440de768021006e8da9d72dbfe9f362a352471fae18d",
    "gate/reduce_only/b7/m53/s1e0": "e1072b380e3b4529a3791ee247a33c3e73d707eb98fe6a2eeced19a00560f9bc",
    "exec/reduce_only/b7/m53/s1e0": "7a1f25ba0fce0caffa52b756456c61694553fab27d910fd2f7954066d579d1c4",
    "gate/reduce_only/b7/m53/s0e1": "682245d12071577346b77876f530d5836db54c0436535e4b4892fa10b1c56579",
    "gate/kill/b7/m53/s0e0": "4b3508a2ee751b68119af34faf595b11fdda5dc5759160328ba9a72aeaff7ab5",
    "exec/kill/b7/m53/s0e0": "f2fdff4183727b6fd09ce0b00713af9a089678e74d8e07433e4790c649fe2568",
    "gate/kill/b7/m53/s1e0": "36fc296cd1c2add141992360172f680cfb59123b0e655f78f6bbbcd3818fd94f",
    "exec/kill/b7/m53/s1e0": "e41868621a5f78ed3cf26cf951d8f910d8e3c60a1d30fb5ab30fa75d56c9cd90",
    "gate/kill/b7/m53/s0e1": "087d03cb77907a03259a945604fe84ac9ff2cfb3714586046090242619a296de",
    "gate/default/b64/m1/s0e0": "4b9f1b815d57485eb6afc6aec317f3b930af9dfd832be85cb3893b1273da15f2",
    "exec/default/b64/m1/s0e0": "e443c3e10dc44cdfea73d9c1ebf2cc1107940ac7e429d418d20dff88e48bdc37",
    "gate/default/b64/m1/s1e0": "08e984da2d72919e0646444bb0760c2e71ba16d169f9de2bfffe805a8c055362",
    "exec/default/b64/m1/s1e0": "da251244f2184cc48ab8735a5aab734a961f3a5d3a8e0f5140c4b0f0bb8d42f4",
    "gate/default/b64/m1/s0e1": "542f433b93395da0d03abfcbea7f6800f0c2f3d38b32a4b26a5ffc853c265dff",
    "gate/longshort_beta/b64/m1/s0e0": "f54fe52a6337af6f92e99d80f4c60c72bd775218e56a69505aab5d72ae4466cd",
    "exec/longshort_beta/b64/m1/s0e0": "5a958686bd519ec16d3d286cc491d16bf13460698d1f03409fa7954a5f33ba6f",
    "gate/longshort_beta/b64/m1/s1e0": "56e5c88f3cab35de2bf5b1db0a61ddbaab8e237f1554c706c4e5b8b49728b24a",
    "exec/longshort_beta/b64/m1/s1e0": "05787f15c2ae03fff0f3773cea06496954adb02fa153269048ed4da4a7eb29b2",
    "gate/longshort_beta/b64/m1/s0e1": "3e0c7bc419d15424b613ab110a4e4309cfa3f32d63e19a8612c59b0cdc29d49d",
    "gate/notional_tight/b64/m1/s0e0": "82b1fc679ef69f195cc670c4c08d2d4fcac12659187ea8876917be8c17c267f6",
    "exec/notional_tight/b64/m1/s0e0": "a277e3367729814700994636a0aed9ea9eeac7c1878f9c90bbb9d1b33559a2c3",
    "gate/notional_tight/b64/m1/s1e0": "77b5760bae4512956ef9ec92dbae505bcff394c95771b6e9dfbe657be3ec986e",
    "exec/notional_tight/b64/m1/s1e0": "95a12366b15fcf589b92583ef58ec29b419e00b5b4194731a4cc11bfb83eeb38",
    "gate/notional_tight/b64/m1/s0e1": "5338746fab4c419cdb073f7293d736c39104530c48de0ba0ee30e58e98d5d361",
    "gate/longonly_beta_notional/b64/m1/s0e0": "3fe3b3d797a1fe5d938df097fa3aa483eecae7f09e0416e0eeac676c368deed2",
    "exec/longonly_beta_notional/b64/m1/s0e0": "a6b3f2a96eedd14600a186af3b87032c73820dfe3aaf3d13c2ee6da2833dfde0",
    "gate/longonly_beta_notional/b64/m1/s1e0": "894fffdff93b76cb87efe6be5d2454c79c0af0cd0f03f93be1fb3d2071793a76",
    "exec/longonly_beta_notional/b64/m1/s1e0": "e6b6dedc2b37b85cdcccfca0b3f36c053743e55251b3c1ded09b16d1dba1de4f",
    "gate/longonly_beta_notional/b64/m1/s0e1": "45cdc50873b9ebe6a499c84c3132a9cef5eacf76013ad5c0d0409e916ca8e442",
    "gate/reduce_only/b64/m1/s0e0": "9c8ac2587d450dc91089f1ad0ebf19eeed3457ddc97dac1e579d8a567be02856",
    "exec/reduce_only/b64/m1/s0e0": "ded442b0a5688ec0b387daacf0ac4ef8f5b394ad9236ceeaa1b1859855732a7a",
    "gate/reduce_only/b64/m1/s1e0": "0ed87288bf0cc44eb865e71ca643d47e4b7fa593f56f02133f42c73331dc1db2",
    "exec/reduce_only/b64/m1/s1e0": "997df23ae47f62d7aefc356cc62b776a7182cf9f1166b97ba07042aed74f7806",
    "gate/reduce_only/b64/m1/s0e1": "d20dbe2618a74d402cb5ccb39a2eb2f460a367a21a2bba9939d5d86be5fcb6f9",
    "gate/kill/b64/m1/s0e0": "ed7400e432f804a2d156930ab67e41f85cb5c96541af409475d74cfe61eaed61",
    "exec/kill/b64/m1/s0e0": "0805619bb71bb81fa1ebc18ce7e74c981b3e846ce0c29830c42bb4a4d2a27a02",
    "gate/kill/b64/m1/s1e0": "2772d4fbc36e504d90d1c6d766592726bc2204cd668aab96d8375894d2758d63",
    "exec/kill/b64/m1/s1e0": "3ac1abb02d296ffee26f56e2f38474bfd9dd497389af232d20ed9138bf165a02",
    "gate/kill/b64/m1/s0e1": "8e796d44b16f82fe3d9fc58e7d1d73cbb29de467ba6f451b0e3c4043752d1c9a",
    "gate/default/b64/m20/s0e0": "7ae47b06153b71199844f4051491a5e26e786b228eab3d654837832048575214",
    "exec/default/b64/m20/s0e0": "9a80b9265abfa38a9273c4b6bb30a5f1844fff7efc80f3894adb2583f0ece606",
    "gate/default/b64/m20/s1e0": "02ddb734596ba38be53a1631d76c878142a9ea8be29339b65372bad421231e46",
    "exec/default/b64/m20/s1e0": "67ce14cb494870c6bea37007e370a408fdb50114435ea3cf8ca6889361709b32",
    "gate/default/b64/m20/s0e1": "f4824663c195ef03d2eebc9fa37ae7b8be4f48a7eaf0b964a878235396ecd8d2",
    "gate/longshort_beta/b64/m20/s0e0": "f0ae8799379ad57e2d318c529260df172a887c46abd113c1c8448a2c51d99927",
    "exec/longshort_beta/b64/m20/s0e0": "7faae1a115b9e65745498d300ff51462d73945962d519f8631b4661b1661ea0d",
    "gate/longshort_beta/b64/m20/s1e0": "7ad6ecd1df645c11c1532f7d2ae6425ce1942042b45683b480fb07ecbcda5e63",
    "exec/longshort_beta/b64/m20/s1e0": "2e464159c64aafd597247192bc484ca556ad54558f02e2c1201291550b728a1b",
    "gate/longshort_beta/b64/m20/s0e1": "20d02a3bef979cad28d6f79bbf195cbbfbe62afc2839dcec4a4103f1dd211314",
    "gate/notional_tight/b64/m20/s0e0": "29d29763a55f2e6318f29f751f2a3500ab9bf9eeaf98481f27449c1837a0549a",
    "exec/notional_tight/b64/m20/s0e0": "9a861cfd6e080d729094b9f461d468e474159dac4839b1b2bb5fc7db8aac1b68",
    "gate/notional_tight/b64/m20/s1e0": "37e5da4a005458f1dd7f567c11e69b0884a02541ace16b1b82a828f8b9109a62",
    "exec/notional_tight/b64/m20/s1e0": "901c66f553fd732fd28bcce5e646b32516c5b358f52a4ed05935fa42054aee28",
    "gate/notional_tight/b64/m20/s0e1": "ef2f07d3206d28c1d6a889c543276a96ae0dfa6184b3e492b7b7ab745bf66ae2",
    "gate/longonly_beta_notional/b64/m20/s0e0": "9c04e381d032400b14b6f2d77e25aa1b5b6b6a1615966617659a7b68379ed021",
    "exec/longonly_beta_notional/b64/m20/s0e0": "85ef5abc90193534f07532e0d9a9124a70343a82bf34c7e63c9792050f4d70f9",
    "gate/longonly_beta_notional/b64/m20/s1e0": "8677def7016d1a0f59a5a55150bce1402c60f734a2ec1eb3a2b38526dabc5998",
    "exec/longonly_beta_notional/b64/m20/s1e0": "7e28f0c106806509c9bfb9908684bef78f7d400b727fffbc94de89c4102b3437",
    "gate/longonly_beta_notional/b64/m20/s0e1": "b3246891a0c537a0ae6dee8ffa70eb7a4fda8fb66c2dd41381ff772f32370a45",
    "gate/reduce_only/b64/m20/s0e0": "23a47d126404d62e69d00303a0d1b8648ad839eb1c6c6d5a8f87131fb86f1dfe",
    "exec/reduce_only/b64/m20/s0e0": "5fa393645654f5077d77f0678e08abdde191a5eee7e10d356bd2d0e79dbd31fe",
    "gate/reduce_only/b64/m20/s1e0": "e9bbba55949fde4ff99c9b9b575f825dbd62ed5581c6fb681ed1b9dbd704b346",
    "exec/reduce_only/b64/m20/s1e0": "2c0f81a79c9b5bf8f4db157b00d810ffa5fac905700d786fee8aba9439ca75a5",
    "gate/reduce_only/b64/m20/s0e1": "c913917a4da620a9d91e258ccb255fe4c60842a28cc1c1b74fceea863db8b108",
    "gate/kill/b64/m20/s0e0": "02cf30f3100f5541ce84faeed8bd1650d60f1adc992d4734ec35e33f5415184d",
    "exec/kill/b64/m20/s0e0": "499371c5287fc0523f28e242e1c1709b3b4204a88ee00ba6fbe4508e1cfbed0d",
    "gate/kill/b64/m20/s1e0": "e9d463e689041e0067afc9183bb29781b3b24ec41dab627d2a22f01f539c192a",
    "exec/kill/b64/m20/s1e0": "8e6b80e4b0470f4e8b7bbce639c08aa6d5ac7f53a092087b7fde90e8b56071f4",
    "gate/kill/b64/m20/s0e1": "1f2d3b4c999362f1bc578097476559be340da0afd3fcabc9155d353d75f34821",
    "gate/default/b64/m53/s0e0": "f15393dfd76d6b20257ea5ffe40e35f08bd14405ca6a96f3291e4a3d70f88c82",
    "exec/default/b64/m53/s0e0": "9f3a57208d47bf9799ace5d4b7fbac6c68eb2a24c9b9f85c4438cc867ff83afb",
    "gate/default/b64/m53/s1e0": "218e2a9ad26cfc2b4d3dcb55b79794fb6254ca03849d4712af08e12fa0c5978d",
    "exec/default/b64/m53/s1e0": "dc4c0659c03421858be021cb5069877fa93e8a92156203e534174dc1f48d2196",
    "gate/default/b64/m53/s0e1": "477272aecfdf1ae387d84525f04576f8af49608377b020d0a58a0db0a186ad00",
    "gate/longshort_beta/b64/m53/s0e0": "93535edb4ce4397014c1e17050829003f4b87d355bd96742c1a2b2e4c3e2de97",
    "exec/longshort_beta/b64/m53/s0e0": "3376f91a38852781019d753af2f92b7d2d89011922a6d069c5e56683bcc60066",
    "gate/longshort_beta/b64/m53/s1e0": "83e1dcdb0eab416f8f3c41cefb8916ba8e32c2d97f96321edf6ff0dba1676fc6",
    "exec/longshort_beta/b64/m53/s1e0": "18e83900258cd45a684ea589cdc60deca1c2a6141235f15fe1bdbe7cae536baf",
    "gate/longshort_beta/b64/m53/s0e1": "dd746c7df57397a9b748132cd22121b8bf90b14fb4b0e89b854f79f7c873f27d",
    "gate/notional_tight/b64/m53/s0e0": "5b6de0b5d0cc1f6307d25547084120852a4e4b6592094be73eb48353b864896c",
    "exec/notional_tight/b64/m53/s0e0": "041204d26625827d1458d5f4a860e33e3e50ee4bcfe47c23968c1d6a7a17efb3",
    "gate/notional_tight/b64/m53/s1e0": "5a0734b7479238a1faffd1872263c4de3506cdff89cff53ae1484c7a148b2535",
    "exec/notional_tight/b64/m53/s1e0": "557b3b3fc6c7160d4da0ab08a80644bd7af028c62567e4f9afbc03e154daf86b",
    "gate/notional_tight/b64/m53/s0e1": "19fe1e578d3d0481ba9d4fdcc5a2889978e6b4d2baaaad372e4f72c7cd1ef1c4",
    "gate/longonly_beta_notional/b64/m53/s0e0": "c913f8f62ccc82023c77148493b8780c45dc8340612dabf6f3c4fdfb89fb00cd",
    "exec/longonly_beta_notional/b64/m53/s0e0": "2345f5843b4f07167a570cfff0b867c39e43e59272c5fe851e7164a90147383e",
    "gate/longonly_beta_notional/b64/m53/s1e0": "fb14f935918436b5b6e789951b28eaab20444192017500e085bc5507d48be701",
    "exec/longonly_beta_notional/b64/m53/s1e0": "527ccd49a6c835bdd4f811fe9e95800e71f9b6dbc7d1e5d9f5631f565d2748fb",
    "gate/longonly_beta_notional/b64/m53/s0e1": "688c5d660c5519388da3ccefe164987d823b9617e89fe453c78cc7b85c24303f",
    "gate/reduce_only/b64/m53/s0e0": "78cdbd84526c39a24f85264a98a4db816e62e6ab3b2cb20aeab52c32868f51ad",
    "exec/reduce_only/b64/m53/s0e0": "8a8e49d0de93a8f6e9e1d288c797420b12ce599b1621ba70625264cbd6379843",
    "gate/reduce_only/b64/m53/s1e0": "136d98f5614d06931c3222b8069fcf04d57befc4735a7b7a94f62181c5832785",
    "exec/reduce_only/b64/m53/s1e0": "b57e41b8aca31b33df960d3fd199f677b21980deb80365accb6a51a33df84473",
    "gate/reduce_only/b64/m53/s0e1": "9c1aed626797002fcf937d6b98787080001770b2c898255b72a3bcea6d4f3f02",
    "gate/kill/b64/m53/s0e0": "c773e15379153fd0fcd963b70756b550227419d89ef167a5e1836ec109a3d4bb",
    "exec/kill/b64/m53/s0e0": "56b5502dbceef8e8176962860dad84613ce4633634ec12f135e64c83dd51912d",
    "gate/kill/b64/m53/s1e0": "aa1c6bd4b0cc97bb89a4d47b1cec7b49431c5e101a57a38bcac674aaa05a83cb",
    "exec/kill/b64/m53/s1e0": "ad97fcb2a9350e8bb1eab343317f5a1baa463c97c8a628c1b25b9d6410b2f21b",
    "gate/kill/b64/m53/s0e1": "41d029b5138eafb383e6db13a0e800bae2b840e2c035d2a8cae1d9ad6292644a",
    "cost/b1/m1": "b2539b2383e3b33743a5de64216448e47392a2b9be9c40bd39d0f59d290d5a3b",
    "cost/b1/m20": "d51cec667cf0aa702fd43c2754cf19535689401f8c48f549c8a6aa8ea92e4866",
    "cost/b1/m53": "b1b8dc8ad53d73e516b335915b79abc160063dfaaa327a32db35b2d9de1e90d7",
    "cost/b7/m1": "18eedf3ad3b67359839bffe55d8f5c43dca77b0c9345d5498af759afa378b230",
    "cost/b7/m20": "17cb988a37587224f629607462aaf65ff617b4e263159a6fecb306c80cb976da",
    "cost/b7/m53": "f50b9a2b27e9fec93fdde2b45b0153de44cbe397f39a5281854513e06b5ab3d1",
    "cost/b64/m1": "f5ff0dac4be1b6fa3de5712a59267e0b06cbaa39662506bf0e76cf226e7bd815",
    "cost/b64/m20": "b169fd3d6981d00ba16a5b7b20801ca39be408b5dce4185a67cf785a34e61117",
    "cost/b64/m53": "552bd95c5c51cc1010ac0d07ec83185101eaadc6d9bcaa38878d2e8ef844ca0b",
    "obs/b1": "c343b2659d93865bb0b797f5cf8560207a6486d229ab530001b6280b5bdad9c8",
    "obs/b7": "54309be627afb179c2860c747ad23549fa797a4c7798b200292e28e0f0f16fab",
    "obs/b64": "23beba93dbf27231a5f763ab3522925ce9e407d399dbc7b119aa8a03c5ca5740",
    "env/weights/base/b1/m1": "944c735654597a69a53d19d58823b2ffaf84ef23988ff7fece81fb3b5b298192",
    "env/weights/base/b7/m1": "81a6836fda4cd4031d613fda1b45c92213fcaff03e2cdd76afc0555eb5ed240d",
    "env/weights/base/b64/m1": "a7c9221739fe291fc90f3715a0d9380f3fdc1adda20cc5b8249414c00897195d",
    "env/weights/base/b1/m20": "9e655852640c8952c18bb9273d7f677e9f8c98d372ee9c584fcf6e65ea775ff2",
    "env/weights/base/b7/m20": "66a105bda56d1a68fc980d86748fa3bc670ca7cab304b54691866535ad9c08de",
    "env/weights/base/b64/m20": "823bbae6ae8bc29c4aa9210b55df6e63285da061d27e464f2f1622dc6d6b3113",
    "env/weights/base/b1/m53": "24a25a9fe697934e00d351cba4d802e16e3ff84e938dd32336fc4a9e62e73c85",
    "env/weights/base/b7/m53": "2de2faff711430f974701135fdb06bc36bb3882c8ed23f4ec1244dfbd5fee2a7",
    "env/weights/base/b64/m53": "74e8ca4751267bc66f9e62c783a80eb096056e65031570917407b7349cd82cd2",
    "env/weights/longshort/b7/m20": "66697c89b7892a87610118c71f090161a0e14d4d895022700230e83858a40ccc",
    "env/weights/kill_lots/b7/m20": "40d288fc39bfed7c0864d03c6ec7311eb56676b874588592d9ff8008124a10fd",
    "env/weights/base/b7/m90": "de4403b49ffc09bc22dabfb0df90875e3a2f18a2c0767e0eb9d949482bf9618d",
    "env/budgets/base/b1/m1": "bf3cd85ea6e0ae7288ff2935339545199d2a7c587df5c000d934704a59c19b15",
    "env/budgets/base/b7/m1": "35dbf3f4e6ccda001a140b3b43e20a03c81c25ab96c34940fd651315ba6c562e",
    "env/budgets/base/b64/m1": "d9ab5b06f7875037e943bb1f4bf403ef9844e391276a427083feef7ac0fa296b",
    "env/budgets/base/b1/m20": "f6b3670b1bc59af85a7817f9824a8c14eca2dbab85ef8b5e59d157b31fbda0b0",
    "env/budgets/base/b7/m20": "fbcb80ddd380a06ffe81f36f04185d216e75c9c74e33a399113d643970286434",
    "env/budgets/base/b64/m20": "5eeb61cd622dede9ddc372b8c14c5318596712df4653f2b8191ad7d60c48be21",
    "env/budgets/base/b1/m53": "b580fb9192ca631c5934ce263ee3b429a99542ecfef11e486548a81878f4b02d",
    "env/budgets/base/b7/m53": "6ca9c1eaed8af786fb4a670d7ae43b5955f20fe997aa54345a41f22fa4e89abe",
    "env/budgets/base/b64/m53": "d78d952729a6c8bef95aef1247b564bb3c5f5e66b99578b378bc0e5cde6390f3",
    "env/budgets/longshort/b7/m20": "a02c974d806d77e7ea1933e7f47148b65851130d2fb082b017191c9054406149",
    "env/budgets/kill_lots/b7/m20": "f475915166c843af1ee3c9875253c16f1f1d2b2dec217a29f7a339ffb08b4382",
    "env/budgets/base/b7/m90": "78cbd4ed3393fd727b24d80a8b2d3c1cf8b6042a270ad9fe4256c1ffe0ed5b35",
}
FINGERPRINTS: dict[str, str] = {
    "gate/default/b1/m1/s0e0": "ffcbecc91df318e5 8:0.0:-46.269914926887914",
    "exec/default/b1/m1/s0e0": "8a5ae425103b48b0",
    "gate/default/b1/m1/s1e0": "c59accede0dda4bc 8:-1.1033100177708328:-88.45763017925273",
    "exec/default/b1/m1/s1e0": "e479009610b4b318 8:2.1973450510278996:-54.96186054850145",
    "gate/default/b1/m1/s0e1": "ffcedcc0d708a3c0 8:-2.9297934013705325:-97.27499088121677",
    "exec/default/b1/m1/s0e1": "d310b52306d1b5c7 8:-6.592035153083697:-167.42351836883742",
    "gate/longshort_beta/b1/m1/s0e0": "ffcedcc0d708a3c0 8:-2.9297934013705325:-91.38545506302763",
    "exec/longshort_beta/b1/m1/s0e0": "549637e3d687bd39 8:-5.859586802741064:-168.95335093860044",
    "gate/longshort_beta/b1/m1/s1e0": "255b7c1864347686 8:-3.2483193483519797:-123.1045230855845",
    "exec/longshort_beta/b1/m1/s1e0": "df2a3d3b61415eaf 8:-5.127138452398431:-159.06555010903017",
    "gate/longshort_beta/b1/m1/s0e1": "fc12daa8d194da14 8:0.0:-48.992852913806104",
    "exec/longshort_beta/b1/m1/s0e1": "6522ef6bdde4e7f9",
    "gate/notional_tight/b1/m1/s0e0": "ec6a7453a5b69ce8 8:-0.7324483503426331:-120.601510181609",
    "exec/notional_tight/b1/m1/s0e0": "41856c2eefccf16c 8:6.592035153083697:-165.72682207216525",
    "gate/notional_tight/b1/m1/s1e0": "1642fe5c021316d2 8:-2.496356525203542:-89.9459747400931",
    "exec/notional_tight/b1/m1/s1e0": "5ac7f35681a5a3ef",
    "gate/notional_tight/b1/m1/s0e1": "fa07067014535b9f 8:-0.7324483503426331:-126.13752915466057",
    "exec/notional_tight/b1/m1/s0e1": "383251bbaff8d37b 8:2.1973450510278996:-180.48512973267805",
    "gate/longonly_beta_notional/b1/m1/s0e0": "80faf2113e64cdd1 8:-2.9297934013705325:-93.69706151868118",
    "exec/longonly_beta_notional/b1/m1/s0e0": "a410d90d444addff 8:-4.394690102055798:-104.1480441015517",
    "gate/longonly_beta_notional/b1/m1/s1e0": "1642fe5c021316d2 8:-3.185724960623441:-115.26196060898542",
    "exec/longonly_beta_notional/b1/m1/s1e0": "6b0dfb034042a09d 8:-4.394690102055798:-120.20317044371981",
    "gate/longonly_beta_notional/b1/m1/s0e1": "ffcbecc91df318e5 8:0.0:-43.396558572909285",
    "exec/longonly_beta_notional/b1/m1/s0e1": "34be176efa8fe556",
    "gate/reduce_only/b1/m1/s0e0": "794cc12be1d320a4 8:-1.4648967006852662:-39.9178799269967",
    "exec/reduce_only/b1/m1/s0e0": "e0407ea9e2f214a9",
    "gate/reduce_only/b1/m1/s1e0": "0b18832f9035e695 8:-3.3763470527894275:-110.79118692517085",
    "exec/reduce_only/b1/m1/s1e0": "22898587ce15ef1f",
    "gate/reduce_only/b1/m1/s0e1": "8552c327c6cdb074 8:-2.1973450510278996:-74.05308979204621",
    "exec/reduce_only/b1/m1/s0e1": "9de5e79a2ccb33d5",
    "gate/kill/b1/m1/s0e0": "794cc12be1d320a4",
    "exec/kill/b1/m1/s0e0": "16eddad21f5631e1",
    "gate/kill/b1/m1/s1e0": "18317be1d0be9bf2 8:-1.4648967006852662:-47.12859099795755",
    "exec/kill/b1/m1/s1e0": "5ce96e9719dcd03f",
    "gate/kill/b1/m1/s0e1": "794cc12be1d320a4 8:-1.4648967006852662:-45.54883371328981",
    "exec/kill/b1/m1/s0e1": "61cac5e056ad0eef",
    "gate/default/b1/m20/s0e0": "d4bcc48125fe1fba 8:-2.2409555305780615:-123.16106616774223",
    "exec/default/b1/m20/s0e0": "f194861338943443 8:-0.5315736450742877:-161.13502830567745",
    "gate/default/b1/m20/s1e0": "d226b27d632d51a4 8:-3.89124174402128:-180.12036276055616",
    "exec/default/b1/m20/s1e0": "714f723782dd5a1d 8:-0.9137933437209235:-141.76472279973686",
    "gate/default/b1/m20/s0e1": "aa01fc86f8f390a7 8:-4.7953633975723235:-185.83758825726247",
    "exec/default/b1/m20/s0e1": "c646319ff07edb99 8:-2.4438528036552127:-138.3760554862497",
    "gate/longshort_beta/b1/m20/s0e0": "8b4adffcf8e920a8 8:-4.397786614057716:-188.44107654191453",
    "exec/longshort_beta/b1/m20/s0e0": "69de16082c9296c9 8:2.272383198854606:-130.97790474706042",
    "gate/longshort_beta/b1/m20/s1e0": "7f1ee50d6e3f4db5 8:-1.165949215529296:-66.90361011169432",
    "exec/longshort_beta/b1/m20/s1e0": "8dc3387e79a3aa9a",
    "gate/longshort_beta/b1/m20/s0e1": "10f99cffb37be42f 8:-1.7785881480420418:-95.92343373857952",
    "exec/longshort_beta/b1/m20/s0e1": "7c0e8caf06487a49 8:-0.5929066096062547:-146.18004968142142",
    "gate/notional_tight/b1/m20/s0e0": "150f40c2a681d53a",
    "exec/notional_tight/b1/m20/s0e0": "38b1c9bd95435bcd",
    "gate/notional_tight/b1/m20/s1e0": "d5fb26202d4493eb 8:-5.937849978493291:-230.9854447055653",
    "exec/notional_tight/b1/m20/s1e0": "a60ff55a2b2e78fa 8:-1.0909291112697734:-154.91333448579545",
    "gate/notional_tight/b1/m20/s0e1": "f965b1446fd177a0 8:-0.8970691449944047:276.76363990538925",
    "exec/notional_tight/b1/m20/s0e1": "f6592076cee9ed2c 8:-0.5964407584516005:-115.09429066965568",
    "gate/longonly_beta_notional/b1/m20/s0e0": "346be2987a875b80 8:-1.821445444658134:-121.49776518578032",
    "exec/longonly_beta_notional/b1/m20/s0e0": "090225ce0d7d3e82 8:0.9311111469405354:-163.1491398525701",
    "gate/longonly_beta_notional/b1/m20/s1e0": "4bfeeac9411cef65 8:-0.9348003646462413:-90.28323622751688",
    "exec/longonly_beta_notional/b1/m20/s1e0": "e7fe05d259fbc548 8:-0.22301017098913756:-154.3720109629313",
    "gate/longonly_beta_notional/b1/m20/s0e1": "b7526625d9dcda41 8:-1.0368770174645512:-96.9348657162556",
    "exec/longonly_beta_notional/b1/m20/s0e1": "1b71e72c80d74ae4 8:1.7255990080331365:-161.1099396338006",
    "gate/reduce_only/b1/m20/s0e0": "b2a8e6276564db54 8:-3.5532789881763787:-139.92872816658564",
    "exec/reduce_only/b1/m20/s0e0": "bb3d57313ce9c15a",
    "gate/reduce_only/b1/m20/s1e0": "4c5543539bfdb474 8:-2.492041402729709:-120.42122577157252",
    "exec/reduce_only/b1/m20/s1e0": "82b26b9ba46970fc",
    "gate/reduce_only/b1/m20/s0e1": "d1c7a844be5df2b7 8:-0.8299738342165771:-42.414782112421165",
    "exec/reduce_only/b1/m20/s0e1": "d7e60ff3e4a9193e",
    "gate/kill/b1/m20/s0e0": "e0cf41567f64cd8d 8:-0.7835392376782327:-46.09352031424129",
    "exec/kill/b1/m20/s0e0": "d8b6e9dbf257cd9e",
    "gate/kill/b1/m20/s1e0": "211084e516cdda38 8:-0.7760738403132045:-39.660758155120554",
    "exec/kill/b1/m20/s1e0": "e398c3b86aaaf7ef",
    "gate/kill/b1/m20/s0e1": "df2913fc9fe41528 8:-0.677116820279465:-40.33176461698393",
    "exec/kill/b1/m20/s0e1": "6f2838682b6c2905",
    "gate/default/b1/m53/s0e0": "386d03a555fd6189",
    "exec/default/b1/m53/s0e0": "78162295a75cf780",
    "gate/default/b1/m53/s1e0": "d672cb25904b0657 8:-5.389282460878459:-231.14928024165698",
    "exec/default/b1/m53/s1e0": "ff3fdde30481233d 8:-2.0332903068198327:-129.33611981942306",
    "gate/default/b1/m53/s0e1": "7b8b2da6eacc4280 8:-2.863730862850942:-148.2423299058324",
    "exec/default/b1/m53/s0e1": "3e0d492402ea225e 8:-0.8282129982330402:-133.47952317880393",
    "gate/longshort_beta/b1/m53/s0e0": "8f0d65a8c8f7736b 8:-4.405537212506259:-185.73758361747917",
    "exec/longshort_beta/b1/m53/s0e0": "2e79d4ef1c67b2fd 8:-0.6266017531131721:-130.01000280457558",
    "gate/longshort_beta/b1/m53/s1e0": "48b5b401d0162752 8:-6.0272626518226575:-257.963149778302",
    "exec/longshort_beta/b1/m53/s1e0": "03bedf0bd9b626e0 8:1.2275973555638222:-141.9952760389075",
    "gate/longshort_beta/b1/m53/s0e1": "74e354f8f2dc3e47 8:-0.8389464629978194:280.48314152317187",
    "exec/longshort_beta/b1/m53/s0e1": "3a433b82713af898 8:0.09904211414023331:-113.94030481498304",
    "gate/notional_tight/b1/m53/s0e0": "9d239b40f50edbc0 8:-2.8098672945722054:-124.46542663339471",
    "exec/notional_tight/b1/m53/s0e0": "c748b4d176fb5b1c",
    "gate/notional_tight/b1/m53/s1e0": "92eac8909231cdba 8:-2.5405601456231075:-111.10786344100829",
    "exec/notional_tight/b1/m53/s1e0": "928266ca3529047b",
    "gate/notional_tight/b1/m53/s0e1": "a2490ad1f52d81a3 8:-5.5235009324194815:851.7308558788903",
    "exec/notional_tight/b1/m53/s0e1": "cba5e7b1449d06ea 8:1.362636669367037:-164.92321125471182",
    "gate/longonly_beta_notional/b1/m53/s0e0": "aeb40e324869a599 8:-2.937705430255828:-147.87499291622123",
    "exec/longonly_beta_notional/b1/m53/s0e0": "019a91684c8a2c83 8:0.2469352400018528:-135.25518930415933",
    "gate/longonly_beta_notional/b1/m53/s1e0": "dde0b375cf98bd92 8:-3.2543555825769834:-168.00920075569672",
    "exec/longonly_beta_notional/b1/m53/s1e0": "fc3b036e14805ed7 8:0.03420057247432796:-138.39877174355334",
    "gate/longonly_beta_notional/b1/m53/s0e1": "dcb424066e8bff9e 8:-5.563586169297508:1170.6094826539586",
    "exec/longonly_beta_notional/b1/m53/s0e1": "f4320af091390d3e 8:1.6744239136629506:-129.65004803142133",
    "gate/reduce_only/b1/m53/s0e0": "27677af488ce4f81 8:-0.7883745574468127:-42.52981119413205",
    "exec/reduce_only/b1/m53/s0e0": "44587f850fb4911c",
    "gate/reduce_only/b1/m53/s1e0": "59f77b2547c5a3e4 8:-0.740819820463554:-45.50120608071116",
    "exec/reduce_only/b1/m53/s1e0": "b8287f56ffc0bb50",
    "gate/reduce_only/b1/m53/s0e1": "01b33e95c614f5ba 8:-0.6353876665599933:301.72377199233625",
    "exec/reduce_only/b1/m53/s0e1": "12b2ba36c604269a",
    "gate/kill/b1/m53/s0e0": "736579eb07a8ea5a 8:-0.5487312522070376:-39.8144901023291",
    "exec/kill/b1/m53/s0e0": "e51cc0f1a51d0f7d",
    "gate/kill/b1/m53/s1e0": "68da57ef57cc98a9 8:-0.682756803791027:-46.48030773042676",
    "exec/kill/b1/m53/s1e0": "3822cf95229bfe11",
    "gate/kill/b1/m53/s0e1": "f80718b1de98a3e2 8:-0.526156494581315:-45.915783991547336",
    "exec/kill/b1/m53/s0e1": "e5aa80cc69ff0f3d",
    "gate/default/b7/m1/s0e0": "05ea7b76d7ea02f0 8:-0.07358402275039488:-132.8748420279545",
    "exec/default/b7/m1/s0e0": "b12acc294cb01d01 8:-1.5586598526097306:-165.2562624339322",
    "gate/default/b7/m1/s1e0": "f03532c11d1aa7ff 8:-2.284840547054468:-151.86031931574234",
    "exec/default/b7/m1/s1e0": "db3ebb5a4cb7e110 8:-0.7489644106484563:-149.43423143148294",
    "gate/default/b7/m1/s0e1": "b1c881a17eb81b94 8:-1.4262435278348837:-110.11850464469072",
    "gate/longshort_beta/b7/m1/s0e0": "67851e4e020dd50d 8:-1.706524803535955:-115.26814167689679",
    "exec/longshort_beta/b7/m1/s0e0": "a1321bab7922fffc 8:-4.889113381380824:-155.6942141504817",
    "gate/longshort_beta/b7/m1/s1e0": "c87e15483ca0a794 8:-0.8032649948549461:-125.40344473889672",
    "exec/longshort_beta/b7/m1/s1e0": "11152f022745e6cf 8:0.545313803289548:-130.18444740610076",
    "gate/longshort_beta/b7/m1/s0e1": "db4835d8ada24cac 8:0.654367581142878:-137.52159303891702",
    "gate/notional_tight/b7/m1/s0e0": "8398aab46ba6a092 8:-0.23637426960815863:-151.5971094972137",
    "exec/notional_tight/b7/m1/s0e0": "a71e2a38bb330598 8:-0.587264317378724:-147.0900529439424",
    "gate/notional_tight/b7/m1/s1e0": "0f8d55506c368e47 8:-0.9953917029061407:-171.5577601005352",
    "exec/notional_tight/b7/m1/s1e0": "9a6553279cdc8397 8:2.1582888264282523:-162.65772674799848",
    "gate/notional_tight/b7/m1/s0e1": "274bd4da35c4bb97 8:-0.9656996423495312:893.5895974147095",
    "gate/longonly_beta_notional/b7/m1/s0e0": "4cabe8cfee2e94a1 8:-0.2332355284230677:-160.63671027549245",
    "exec/longonly_beta_notional/b7/m1/s0e0": "42d0ef3376662b9b 8:2.6546313090864055:-145.05592395199693",
    "gate/longonly_beta_notional/b7/m1/s1e0": "7270a64d4e9cd086 8:-0.2481716986599028:-170.96947628125758",
    "exec/longonly_beta_notional/b7/m1/s1e0": "7755ccc0d001e2da 8:-0.010103395789939296:-151.86319165605445",
    "gate/longonly_beta_notional/b7/m1/s0e1": "a21e76bbc3a60ba7 8:0.7114803574889068:219.49328309491227",
    "gate/reduce_only/b7/m1/s0e0": "af1d90cb07095b54 8:0.603707553567053:-62.09144528376865",
    "exec/reduce_only/b7/m1/s0e0": "05bf6223049865bf",
    "gate/reduce_only/b7/m1/s1e0": "e459c9bb73dee451 8:-1.1702199370424937:-121.51889734893481",
    "exec/reduce_only/b7/m1/s1e0": "71ce42f13f66caa3",
    "gate/reduce_only/b7/m1/s0e1": "866be40a26030c05 8:1.0173456116117556:-84.78219825961094",
    "gate/kill/b7/m1/s0e0": "b3a792b4b822c119 8:0.4346362591454662:-37.857482738522386",
    "exec/kill/b7/m1/s0e0": "eaeccb23963d64fc",
    "gate/kill/b7/m1/s1e0": "77a1e0455ab77844 8:0.27323541224442904:-39.159093878202526",
    "exec/kill/b7/m1/s1e0": "698b59073617254c",
    "gate/kill/b7/m1/s0e1": "fceeca7f2ecd8fdf 8:0.015515724913791093:-39.779268941709454",
    "gate/default/b7/m20/s0e0": "2bc00c2bdc1ecafb 8:1.193020394577173:-189.77738989499912",
    "exec/default/b7/m20/s0e0": "c81926dedc4cb5a1 8:-0.21605859296579433:-127.05311756094558",
    "gate/default/b7/m20/s1e0": "d46ef0b52ec4154b 8:3.368194431421676:-242.0188477151321",
    "exec/default/b7/m20/s1e0": "8340df12da5cac72 8:1.3938650712924656:-122.42730365089648",
    "gate/default/b7/m20/s0e1": "3f6e9afd24fb3368 8:-2.2641902169849466:1155.3888502697307",
    "gate/longshort_beta/b7/m20/s0e0": "8b790d97523e952e 8:-1.305028683648293:-192.97032572011594",
    "exec/longshort_beta/b7/m20/s0e0": "fbf9df455df76777 8:-0.13171026281920323:-120.49723168314199",
    "gate/longshort_beta/b7/m20/s1e0": "cc30d2dfb7de9163 8:-0.017068789858115357:-213.84940853772983",
    "exec/longshort_beta/b7/m20/s1e0": "8d48f62e08df5f53 8:-0.7103761890730714:-118.10704489872033",
    "gate/longshort_beta/b7/m20/s0e1": "e2b12b50bf88e9a6 8:1.797846972880925:1546.5348577902073",
    "gate/notional_tight/b7/m20/s0e0": "8b39eeb8f6b89044 8:0.271933843850246:-226.56180190543273",
    "exec/notional_tight/b7/m20/s0e0": "c8fa2077f94868c2 8:1.3071776599123854:-140.31371613523586",
    "gate/notional_tight/b7/m20/s1e0": "d7baef857aa37f07 8:-1.703233524980131:-286.9166940912865",
    "exec/notional_tight/b7/m20/s1e0": "561a224e820ba7c7 8:0.9854710576985394:-138.23906320689662",
    "gate/notional_tight/b7/m20/s0e1": "ae9693655bdbb2f3 8:-2.5035537751512345:182.57288823752995",
    "gate/longonly_beta_notional/b7/m20/s0e0": "7ef557eb07c06418 8:-0.9526640182575384:-285.6395562293319",
    "exec/longonly_beta_notional/b7/m20/s0e0": "4f615cfdac2412ec 8:0.414495244474857:-117.93154971016597",
    "gate/longonly_beta_notional/b7/m20/s1e0": "5e23b79d61ed19bc 8:-0.9094488592121114:-219.25391576630338",
    "exec/longonly_beta_notional/b7/m20/s1e0": "fed33b19536fa38b 8:-0.7272408708672292:-121.79969918278145",
    "gate/longonly_beta_notional/b7/m20/s0e1": "941ffc7a707f45e9 8:-0.008724387765397856:738.9221706833137",
    "gate/reduce_only/b7/m20/s0e0": "139725fa4b4d82e0 8:-0.16669666918242682:-128.91571303812452",
    "exec/reduce_only/b7/m20/s0e0": "fdd38e99932d9c53",
    "gate/reduce_only/b7/m20/s1e0": "124704fbe60a4bb6 8:0.18327562225859503:-196.65300606839185",
    "exec/reduce_only/b7/m20/s1e0": "6fe0c5798dfb9963",
    "gate/reduce_only/b7/m20/s0e1": "6184562c6341273e 8:-0.04946789152854131:189.5020965898625",
    "gate/kill/b7/m20/s0e0": "718ac4264c9164bf 8:-0.31877507748928935:-39.59108465761061",
    "exec/kill/b7/m20/s0e0": "6051b2edbab119cf",
    "gate/kill/b7/m20/s1e0": "d9440d70f058c1fc 8:-0.15265787276380677:-38.1495144207212",
    "exec/kill/b7/m20/s1e0": "00acff9aa3b4ccfa",
    "gate/kill/b7/m20/s0e1": "f98cd8fe7185f986 8:-0.63708961066876:1010.2225530354364",
    "gate/default/b7/m53/s0e0": "56284eed7fd49122 8:-2.986855502584061:-195.31335238780963",
    "exec/default/b7/m53/s0e0": "f6a7443566ebe542 8:-0.31112161668579447:-122.79593718603263",
    "gate/default/b7/m53/s1e0": "00bd36f679c00301 8:0.8644796065288736:-238.45894884490815",
    "exec/default/b7/m53/s1e0": "559ff1ffaa0681ab 8:0.16834399620090157:-118.65818311682945",
    "gate/default/b7/m53/s0e1": "a91d63d423a38db6 8:1.9984609224846268:1548.0272783680462",
    "gate/longshort_beta/b7/m53/s0e0": "671febfb6a28ebdd 8:-1.3519708021214807:-235.87726092852745",
    "exec/longshort_beta/b7/m53/s0e0": "0c7741c26eb3c184 8:1.5010367664794002:-123.25598833220259",
    "gate/longshort_beta/b7/m53/s1e0": "93da450e1162c576 8:-1.4504671808960852:-237.5835063313189",
    "exec/longshort_beta/b7/m53/s1e0": "1f773049db616e8b 8:-1.0706467185942512:-122.18754758634677",
    "gate/longshort_beta/b7/m53/s0e1": "1dd7e549bb215b8b 8:1.026641840887432:814.8142543201591",
    "gate/notional_tight/b7/m53/s0e0": "3a7fdb3fa09f5bee 8:2.159329383088972:-266.3073345126683",
    "exec/notional_tight/b7/m53/s0e0": "fe70b50c2e494737 8:-0.6452758900436805:-143.43781722855343",
    "gate/notional_tight/b7/m53/s1e0": "61a89e2d94699ce7 8:-0.9878503701073249:-281.8819159805399",
    "exec/notional_tight/b7/m53/s1e0": "16e4920cd4a3b1f5 8:0.29579278308227075:-140.1561844881157",
    "gate/notional_tight/b7/m53/s0e1": "d44d7e3e1c8f6a8d 8:-4.567663728082662:792.9826420433143",
    "gate/longonly_beta_notional/b7/m53/s0e0": "be77c128e3eb71fd 8:1.7081939917603541:-313.3445283587291",
    "exec/longonly_beta_notional/b7/m53/s0e0": "34632f1e64040836 8:0.37117931736064713:-119.94620633858706",
    "gate/longonly_beta_notional/b7/m53/s1e0": "c64b6b1a6c9943ff 8:1.1606065449171568:-197.42549788680031",
    "exec/longonly_beta_notional/b7/m53/s1e0": "11c42d21a9c60c51 8:0.4880207174827029:-121.69921296249571",
    "gate/longonly_beta_notional/b7/m53/s0e1": "7dfe3204b608a3fc 8:0.3093888240065995:1614.6231560435403",
    "gate/reduce_only/b7/m53/s0e0": "d6d629e5816d73bd 8:0.4241562610386794:-169.72436824699656",
    "exec/reduce_only/b7/m53/s0e0": "036621e10dc88154",
    "gate/reduce_only/b7/m53/s1e0": "f1dd10f4fa20d32c 8:-2.231971669326488:-167.5880975903172",
    "exec/reduce_only/b7/m53/s1e0": "032c07d0bee479c5",
    "gate/reduce_only/b7/m53/s0e1": "252343acbaf5a685 8:-3.0884155438435603:1218.303813945863",
    "gate/kill/b7/m53/s0e0": "73f155d3c4ea5cb0 8:0.03240529649940618:-36.94605485236308",
    "exec/kill/b7/m53/s0e0": "a8bfc8555f227109",
    "gate/kill/b7/m53/s1e0": "af1805f87c462127 8:-0.09559834786626982:-37.34967943718801",
    "exec/kill/b7/m53/s1e0": "cadc26ec8a20d541",
    "gate/kill/b7/m53/s0e1": "ed63ebab40ffba5d 8:0.3299428927950019:1012.7074596852244",
    "gate/default/b64/m1/s0e0": "d4931342f7354e9c 8:0.45838939042605387:-191.42180543418556",
    "exec/default/b64/m1/s0e0": "78275b34cd90a571 8:0.33197133188127825:-117.81816620800937",
    "gate/default/b64/m1/s1e0": "ebe44c3b4fb84d84 8:0.9008309305536473:-226.2214741983402",
    "exec/default/b64/m1/s1e0": "7164f9c0c3816fe3 8:1.4988111866978497:-129.52369870279782",
    "gate/default/b64/m1/s0e1": "de1ddb684616dcf0 8:-0.10647708742479196:837.7258641121402",
    "gate/longshort_beta/b64/m1/s0e0": "895ac35b09158d18 8:2.091316776880159:-164.1683457853761",
    "exec/longshort_beta/b64/m1/s0e0": "a2df8b9125f96ff2 8:0.15052333732672743:-123.23796153619638",
    "gate/longshort_beta/b64/m1/s1e0": "6f51fcc7b06915ff 8:-0.3238773033991212:-202.4798639931301",
    "exec/longshort_beta/b64/m1/s1e0": "8b1282f3524782cd 8:-0.09272258182866736:-122.18753495703068",
    "gate/longshort_beta/b64/m1/s0e1": "2626ffb040deb8a9 8:0.578545228953427:-185.0996641707937",
    "gate/notional_tight/b64/m1/s0e0": "2dca5519e154f7be 8:2.451064364851149:-236.61351054697607",
    "exec/notional_tight/b64/m1/s0e0": "c2a2ebc3324333a7 8:0.44107355988327357:-137.30287087986702",
    "gate/notional_tight/b64/m1/s1e0": "418e785eaf05f759 8:0.474512313444266:-276.8813496369824",
    "exec/notional_tight/b64/m1/s1e0": "62434ff68ea7f4af 8:2.5954553157244957:-130.08225325207093",
    "gate/notional_tight/b64/m1/s0e1": "c8149440e06d8e13 8:1.3571693878488655:1125.3836903326774",
    "gate/longonly_beta_notional/b64/m1/s0e0": "220c5a3cc186307f 8:0.5556502452142345:-211.49137885069595",
    "exec/longonly_beta_notional/b64/m1/s0e0": "491aad348bfaf264 8:-2.446536859628198:-125.060720644165",
    "gate/longonly_beta_notional/b64/m1/s1e0": "0b43dd5d8844027b 8:0.396849184625115:-228.1916130472241",
    "exec/longonly_beta_notional/b64/m1/s1e0": "ec97c192b6eb6e59 8:0.392838353960205:-122.98636367746505",
    "gate/longonly_beta_notional/b64/m1/s0e1": "217af3d976b772ed 8:1.2407137061268765:-233.34745504540948",
    "gate/reduce_only/b64/m1/s0e0": "caa4fffbc1b663c5 8:0.8184388911850904:-105.66883773011509",
    "exec/reduce_only/b64/m1/s0e0": "7eef76cda3fa1728",
    "gate/reduce_only/b64/m1/s1e0": "54472cfce5ae775d 8:0.9862449626528358:-129.95432624844125",
    "exec/reduce_only/b64/m1/s1e0": "b3d5e82e38316495",
    "gate/reduce_only/b64/m1/s0e1": "f903f8f2c17b3602 8:0.8380732596142596:1293.859524294759",
    "gate/kill/b64/m1/s0e0": "2137eabb12654987 8:0.2963707892350899:-33.71015082572355",
    "exec/kill/b64/m1/s0e0": "e3ae669b8c4becf9",
    "gate/kill/b64/m1/s1e0": "9a6018b7d6f1dd3e 8:0.359447138106665:-32.663439284322855",
    "exec/kill/b64/m1/s1e0": "a8d2e148a4327df5",
    "gate/kill/b64/m1/s0e1": "03e25f6e7998c9f0 8:-0.1476047563415008:1012.0143125046645",
    "gate/default/b64/m20/s0e0": "c4d36ae590a6a517 8:0.9454382317451641:-262.59756284734414",
    "exec/default/b64/m20/s0e0": "b2dd8d405c1f7312 8:0.5610160024658932:-102.81173797164344",
    "gate/default/b64/m20/s1e0": "5bbad5f3da6da9bd 8:-0.7666902814083386:-306.8635616231392",
    "exec/default/b64/m20/s1e0": "be91a7bdaa975857 8:0.3669124699135593:-98.85922804370789",
    "gate/default/b64/m20/s0e1": "ac7422f437c5cc67 8:0.6417079200236651:1791.5555273156824",
    "gate/longshort_beta/b64/m20/s0e0": "8b8884bec2f37f22 8:0.9429243064202304:-244.81353580578144",
    "exec/longshort_beta/b64/m20/s0e0": "6519cc6e10b02c0a 8:0.019774282732150157:-102.0661029868342",
    "gate/longshort_beta/b64/m20/s1e0": "1fc140e63384bcbd 8:-0.3756515196709974:-281.7890795756809",
    "exec/longshort_beta/b64/m20/s1e0": "297a11227cfe55c1 8:0.5438585623159741:-98.81174362936727",
    "gate/longshort_beta/b64/m20/s0e1": "94a1e241e70979bc 8:1.1950663518460747:1473.4672775556824",
    "gate/notional_tight/b64/m20/s0e0": "568f2c74cbf3c5b5 8:0.04371743145126566:-256.68756707357215",
    "exec/notional_tight/b64/m20/s0e0": "386ecd245cfa4584 8:0.5605681644443827:-117.35184179809258",
    "gate/notional_tight/b64/m20/s1e0": "de249f703e7dad98 8:1.5091869415320143:-358.14206148262514",
    "exec/notional_tight/b64/m20/s1e0": "a320f56800f37f0e 8:0.04167177989768241:-117.73285435815141",
    "gate/notional_tight/b64/m20/s0e1": "3ba1000b0d9f077d 8:1.325521037676033:1458.4576794059776",
    "gate/longonly_beta_notional/b64/m20/s0e0": "533fdd73ba05e868 8:1.658148170640798:-310.109470159855",
    "exec/longonly_beta_notional/b64/m20/s0e0": "8121abc50d8f0cc7 8:0.4244865075626344:-104.11034845571353",
    "gate/longonly_beta_notional/b64/m20/s1e0": "1911f88e1e8de739 8:0.8681928945045673:-341.8187447438234",
    "exec/longonly_beta_notional/b64/m20/s1e0": "b03386304aedfb1e 8:0.4473507634440871:-103.33363041382718",
    "gate/longonly_beta_notional/b64/m20/s0e1": "19ddf69282c4648f 8:-1.4857314715093513:2093.1620027269255",
    "gate/reduce_only/b64/m20/s0e0": "fff1f33db85a32e3 8:0.8944305485219904:-155.87995563798975",
    "exec/reduce_only/b64/m20/s0e0": "5f362af2e92c3d93",
    "gate/reduce_only/b64/m20/s1e0": "443ac8f02aa0ffd1 8:0.9829241309063487:-195.7633176472334",
    "exec/reduce_only/b64/m20/s1e0": "466a7b153fb2ecd3",
    "gate/reduce_only/b64/m20/s0e1": "3b2336c5de024a57 8:0.5153103143563164:1902.9898867514917",
    "gate/kill/b64/m20/s0e0": "dfe7361e295cac6b 8:0.02474182638564912:-33.90166753514647",
    "exec/kill/b64/m20/s0e0": "83db4cf9884664e8",
    "gate/kill/b64/m20/s1e0": "b3e27d61a7b1738d 8:0.05629910833764688:-32.6440854965077",
    "exec/kill/b64/m20/s1e0": "935fbcd14f47cabd",
    "gate/kill/b64/m20/s0e1": "14d244b1bf0768a3 8:-0.17814669744990416:1016.1197069030732",
    "gate/default/b64/m53/s0e0": "05b412eb702f4903 8:1.3031072883289097:-233.77003933162274",
    "exec/default/b64/m53/s0e0": "4b6e06c185945e84 8:-0.1324815532246004:-99.97245710785752",
    "gate/default/b64/m53/s1e0": "8aad585ec01ef540 8:1.446925081288863:-282.13413902296264",
    "exec/default/b64/m53/s1e0": "9dcb4446c06953de 8:1.2749481683107873:-101.83054498314712",
    "gate/default/b64/m53/s0e1": "c3d354e7bc1be2f8 8:0.12138700130373256:2121.000545720666",
    "gate/longshort_beta/b64/m53/s0e0": "10cde0ee714e7fe6 8:0.2943987198565704:-230.771839405216",
    "exec/longshort_beta/b64/m53/s0e0": "98dfc58978bb9630 8:-0.255062289710639:-99.87025531201962",
    "gate/longshort_beta/b64/m53/s1e0": "da29929a361891d2 8:0.3949081252370617:-255.44076165969142",
    "exec/longshort_beta/b64/m53/s1e0": "3c4384381c45cf9c 8:-0.758239867978033:-101.14401225352107",
    "gate/longshort_beta/b64/m53/s0e1": "b6528cb2db52ccea 8:1.3763034378804013:1828.206113469518",
    "gate/notional_tight/b64/m53/s0e0": "855e733781a1b8f6 8:-0.6415971343781182:-255.1734707784745",
    "exec/notional_tight/b64/m53/s0e0": "07368e02115e2985 8:-0.001155254337053718:-120.9063153665765",
    "gate/notional_tight/b64/m53/s1e0": "25134c8c1e9854bd 8:-0.07174330582560695:-273.2151589045302",
    "exec/notional_tight/b64/m53/s1e0": "2772c44f7e7274c8 8:-0.05660989457082616:-120.87718250841375",
    "gate/notional_tight/b64/m53/s0e1": "13bda13c1ea7c2ef 8:0.732054684176934:1805.6184635748082",
    "gate/longonly_beta_notional/b64/m53/s0e0": "f0e85dfec87183a8 8:1.0874347738065344:-277.0832566518857",
    "exec/longonly_beta_notional/b64/m53/s0e0": "8c131f878fdb8778 8:-0.48298992788105477:-102.25756317079461",
    "gate/longonly_beta_notional/b64/m53/s1e0": "599555901770cb32 8:-0.2044952759110523:-238.87000924834354",
    "exec/longonly_beta_notional/b64/m53/s1e0": "7782a9e68a8c7e41 8:-0.2907447057243437:-105.57814065295615",
    "gate/longonly_beta_notional/b64/m53/s0e1": "4c94c8a87cc4fd56 8:2.722826291324601:1728.5213905563764",
    "gate/reduce_only/b64/m53/s0e0": "ca2869fed183ea6d 8:0.09704346954577409:-151.79211190470582",
    "exec/reduce_only/b64/m53/s0e0": "fb346ee28498fa74",
    "gate/reduce_only/b64/m53/s1e0": "5d18615613c40b39 8:0.9554284485307326:-194.69654021094362",
    "exec/reduce_only/b64/m53/s1e0": "9e58c861f23fcdf4",
    "gate/reduce_only/b64/m53/s0e1": "acfc1cc62376121c 8:-0.9009352009994192:1566.088976370336",
    "gate/kill/b64/m53/s0e0": "803eb6ad5a0f753d 8:0.21676190445293853:-33.5671770579146",
    "exec/kill/b64/m53/s0e0": "72140053ca3b7fe1",
    "gate/kill/b64/m53/s1e0": "e862e849982beec1 8:-0.06470391081550401:-33.38493847679063",
    "exec/kill/b64/m53/s1e0": "782ca2549ac4f304",
    "gate/kill/b64/m53/s0e1": "8ae7e415f01156aa 8:0.12961066021696732:1018.2536132156771",
    "cost/b1/m1": "b37d57c046cbbc8e 8:-4.394485377085458:-232.4577444824819",
    "cost/b1/m20": "239aecce7540d084 8:0.9854150765841134:-166.60037593221557",
    "cost/b1/m53": "aeb8a3ced40cfe9c 8:0.7123509145509612:-165.76630896886735",
    "cost/b7/m1": "2bee5155346e59c7 8:-0.6709848787776969:-180.96300207906202",
    "cost/b7/m20": "a71139cca2c1dff7 8:0.08816938843855457:-161.3770329157929",
    "cost/b7/m53": "7e5af04e88c66ba1 8:-0.45612026947789497:-158.7082886090454",
    "cost/b64/m1": "0fd6d54036b2e7dc 8:-0.7388040304969166:-162.4672847957864",
    "cost/b64/m20": "7831107a85b5db52 8:-0.1429731918380529:-145.96012164243737",
    "cost/b64/m53": "cc18d53841b34a97 8:-0.1596661391298047:-141.0109662659623",
    "obs/b1": "d8dd3ebbf5a2b088 4:0.08274804624418915:-50.21961437437861",
    "obs/b7": "3f46acadbd07a292 4:0.06515677671339686:-44.28020729535106",
    "obs/b64": "c51ca612e9abfd24 4:-0.006366080951981035:-37.63016273213317",
    "env/weights/base/b1/m1": "4c82c93e9898be0b 8:-5.277282125853622:-1033.993752680084",
    "env/weights/base/b7/m1": "6accdaea0c9b1294 8:-1.3293918309635293:-923.8832480139139",
    "env/weights/base/b64/m1": "2ea7d57c58ff5f32 8:0.5419380755444082:-797.4815058230295",
    "env/weights/base/b1/m20": "83c9eade5cd4b371 8:-4.761043625054601:-1030.3024670820944 4:0.037309339753084744:-41.55223404682466",
    "env/weights/base/b7/m20": "0415a84902411128 8:-1.0298879732230468:-911.055203441012 4:0.01848996537792926:-35.70705111683377",
    "env/weights/base/b64/m20": "1fe9cdd8437f4383 8:0.20742623226933646:-775.7489611025909 4:0.0019480379813858902:-29.06530501796489",
    "env/weights/base/b1/m53": "cd20ad21baa24218 8:-3.4683441744268397:-1055.1525829658128 4:-0.02144187619552997:-38.641173721648784",
    "env/weights/base/b7/m53": "38a54361441340a7 8:-0.8906187827792909:-931.171128833484 4:0.011087529279574813:-32.88077669044711",
    "env/weights/base/b64/m53": "d041b936e2cdba71 8:0.2019699933836036:-792.033225142068 4:0.00440306401768233:-26.238131905971365",
    "env/weights/longshort/b7/m20": "39a4d168e0b92678 8:-0.5581441591061933:-1008.7410027243394 4:-0.0014590623123091563:-35.71578280818301",
    "env/weights/kill_lots/b7/m20": "f1161083a1d27ef3 8:-1.1221924418897553:-962.8054092103389 4:-0.0038988482104100786:-35.668543565320476",
    "env/weights/base/b7/m90": "87904115ed029c1b 8:-1.6819488171135142:-898.106485716313 4:0.00674422443200889:-33.4085476034487",
    "env/budgets/base/b1/m1": "542e85fccb00f545 8:-4.188662579275333:-1139.7284049799584",
    "env/budgets/base/b7/m1": "f154c29f43fe10c7 8:-1.8615515990816287:-1017.3804809055522",
    "env/budgets/base/b64/m1": "f5cee1fdca542ba3 8:0.4532489729228672:-877.0600851687698",
    "env/budgets/base/b1/m20": "b2bf29bde2e49da1 8:-5.32753078930424:-1144.3032827001246 4:0.037348589795033596:-41.5524102782168",
    "env/budgets/base/b7/m20": "00ef3c7632040e29 8:-0.9967139579402068:-1012.9194929050313 4:0.01844299276396805:-35.70739360053042",
    "env/budgets/base/b64/m20": "e139c564164c7fac 8:0.3710953034383647:-864.2284298725369 4:0.0019541029847407465:-29.065571379543258",
    "env/budgets/base/b1/m53": "5c5b8f94bce2645e 8:-3.7496682182319825:-1177.6426504833212 4:-0.02144052173896037:-38.641519648002124",
    "env/budgets/base/b7/m53": "3e5e7a4a1329aad0 8:-1.1317226635720572:-1041.4750417324688 4:0.011089555410198241:-32.88111144470545",
    "env/budgets/base/b64/m53": "2b9cf7ede8c0dd3c 8:0.05954548446337222:-888.3916344927164 4:0.004403805068644353:-26.238453489703993",
    "env/budgets/longshort/b7/m20": "931fd9553c277d1f 8:-0.8356644595725943:-1114.6062244438633 4:-0.0014668057463891643:-35.71653575280598",
    "env/budgets/kill_lots/b7/m20": "a6c7e0a3937da793 8:-0.8972488689380059:-1064.603585220866 4:0.002473432484590783:-35.62281014444467",
    "env/budgets/base/b7/m90": "367cf252655a57f1 8:-1.9490097193474332:-1013.060876751448 4:0.006763532056659155:-33.408744697261426",
}


def _check(group: Callable[[], dict[str, _Recorder]], prefix: str) -> None:
    got = group()
    want = {k for k in DIGESTS if k.split("/")[0] in prefix.split(",")}
    assert set(got) == want, sorted(set(got) ^ want)
    assert want <= FINGERPRINTS.keys(), sorted(want - FINGERPRINTS.keys())
    moved = {k: why for k, rec in got.items() if (why := rec.portable_mismatch(FINGERPRINTS[k]))}
    assert not moved, f"{len(moved)} of {len(got)} fingerprints moved: {list(moved.items())[:10]}"
    if platform_key() == PLATFORM:
        bad = sorted(k for k, rec in got.items() if rec.digest != DIGESTS[k])
        assert not bad, f"{len(bad)} of {len(got)} outputs changed bits: {bad[:20]}"


def test_gates_and_execution_unchanged() -> None:
    _check(gate_and_execution_digests, "gate,exec")


def test_costs_unchanged() -> None:
    _check(cost_digests, "cost")


def test_observation_unchanged() -> None:
    _check(observation_digests, "obs")


def test_env_rollouts_unchanged() -> None:
    _check(env_digests, "env")


# ----------------------------------------------------------------------------- shortcuts
# The exact shortcuts the optimised hot path takes, checked against their definitions on
# inputs wider than the corpus.


def test_cost_scale_solver_equals_its_bisection() -> None:
    """The Newton + grid-check solver returns the defining bisection's bits, including
    infinite impact, zero linear or impact parts and budgets at the boundary."""
    from allocgym.risk import _bisect_cost_scale, _solve_cost_scale

    rng = np.random.default_rng(11)
    n = 4000
    linear = np.exp(rng.uniform(-40, 5, n)) * (rng.random(n) < 0.9)
    impact = np.exp(rng.uniform(-40, 5, n)) * (rng.random(n) < 0.9)
    impact[rng.random(n) < 0.02] = np.inf
    for budget in (1e-6, 2.5e-3, 0.3):
        over = (linear + impact) > budget * (1 + 1e-9)
        lin, imp = linear[over], impact[over]
        fast = _solve_cost_scale(lin, imp, budget)
        ref = _bisect_cost_scale(lin, imp, budget)
        assert lin.size > 100
        assert np.array_equal(fast.view(np.int64), ref.view(np.int64))
    assert _solve_cost_scale(np.zeros(0), np.zeros(0), 1e-3).shape == (0,)


def test_reason_counts_paths_agree() -> None:
    """The compiled bit counts equal a naive count, small batches and large."""
    from allocgym.envs import REASON_CODES
    from allocgym.envs.core import reason_counts

    rng = np.random.default_rng(12)
    bits = np.array([int(c) for c in REASON_CODES], dtype=np.int64)
    for b, m in ((1, 20), (7, 20), (64, 20), (300, 53), (50, 1)):
        r = (rng.random((b, m, bits.size)) < 0.2) @ bits
        naive = np.stack([((r & bit) != 0).sum(axis=1) for bit in bits], axis=1)
        got = reason_counts(r)
        assert got.dtype == np.int64
        assert np.array_equal(got, naive)


def test_row_reductions_equal_numpy() -> None:
    from allocgym.risk import _rows_all, _rows_any

    rng = np.random.default_rng(13)
    for n, k in ((1, 20), (127, 20), (128, 20), (1024, 64), (1024, 65), (300, 1), (200, 0)):
        for p in (0.0, 0.01, 0.5, 0.99, 1.0):
            m = rng.random((n, k)) < p
            assert np.array_equal(_rows_any(m), m.any(axis=1))
            assert np.array_equal(_rows_all(m), m.all(axis=1))


def test_plain_comparison_implies_tolerance_test() -> None:
    """``value <= limit`` everywhere (the shortcut) implies the tolerance test passes."""
    from allocgym.risk import _below, _inside

    rng = np.random.default_rng(14)
    specials = np.array([0.0, 5e-324, 1e-300, 1e-12, 0.1, 1.0, 1e150, np.inf])
    limit = np.concatenate([specials, np.exp(rng.uniform(-700, 700, 2000))])
    value = limit * rng.uniform(0.0, 1.0, limit.size)
    value[: specials.size] = specials  # value == limit exactly
    assert _below(value, limit)
    assert _inside(value, limit, value).all()


if __name__ == "__main__":  # regenerate (only from code known to be right)
    records = all_digests()
    print(f'PLATFORM = "{platform_key()}"')
    print("DIGESTS: dict[str, str] = {")
    for k, rec in records.items():
        print(f'    "{k}": "{rec.digest}",')
    print("}")
    print("FINGERPRINTS: dict[str, str] = {")
    for k, rec in records.items():
        print(f'    "{k}": "{rec.fingerprint()}",')
    print("}")
    sys.exit(0)
