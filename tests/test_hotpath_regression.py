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
array held. The bit-exact table was recorded on this project's 2-core machine (the
``PLATFORM`` before it was another) when a flattened row (kill switch) stopped coding
``NOT_TRADABLE`` on a name execution sells anyway (flagged tradable at a valid price, its
ADV, volatility or spread unusable): 19 gate / execution fingerprints moved, only by that
bit in ``symbol_reasons`` (approved books and every float unchanged). The ``env/``
digests were re-recorded when ``info["portfolio_reasons"]`` became execution's codes (the
gates' and execution's, ``NO_TRADE_BAND`` and ``LOT_ROUNDING`` added), as serving reports
them: every other array held. They were re-recorded when ``info["cancelled"]`` (orders not
filled at ``t + 1``) joined the info: without that key all 324 digests reproduce. The
bit-exact table was re-recorded on another 2-core machine (this ``PLATFORM``; the previous
table's gate, execution and cost digests reproduce there for 193 of 288) when a held name
that alone breaks a limit stopped closing every tradable name (``pin_untradable``): four
gate fingerprints moved. In ``gate/default/b64/m20/s0e1`` two of 64 portfolios had been
liquidated (gross 0.05 and 0.10, the held names alone) and now keep an in-limit book
(gross 0.14 and 0.59); in the three ``m1`` cases the approved books held and a held
name that the proposal kept at its current weight lost the symbol-cap and forced de-risk
bits and amounts (nothing moved it; the portfolio codes held). 0 invariant breaches before
and after; every other fingerprint held. Five ``exec/`` digests were re-recorded when a
forced short rounded flat came to hold +0.0 shares instead of -0.0 (the weight was +0.0
already) and forced lot rounding stopped snapping past the approved target (a 1000
notional cap had held 1000.01): 116 ``target_qty`` / ``delta_qty`` entries changed the
sign of a zero, every value and every other array held, every fingerprint held; so did
``env/budgets/longshort/b7/m20`` (``exec.target_qty`` on 6 of 200 steps, the sign of a
zero only).

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
        elif dataclasses.is_dataclass(value):
            self.add_dataclass(name, value)
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

PLATFORM = "f2e5f20eecb4b95c"
DIGESTS: dict[str, str] = {
    "gate/default/b1/m1/s0e0": "76a6b720d7e058d113044c00a56ed6698e27ba056e1ecc4191a5aa79d696f6e2",
    "exec/default/b1/m1/s0e0": "e22036a459b8a6316c4a9e45652f47ee86d02113597d419cc040e50a069b3ac3",
    "gate/default/b1/m1/s1e0": "7bafc51bc27901682e13e6212d85630342bca37b0aaf0eaaf8237225ae3a064e",
    "exec/default/b1/m1/s1e0": "e5fa41bd8d83f386b9820a63cad81b932d236da524d3315dfd12c8c6782859b4",
    "gate/default/b1/m1/s0e1": "7d4418b3a9ddf03c5dc9bd88431215d487e4ec0b6ddedde567deac97b00ad2f0",
    "exec/default/b1/m1/s0e1": "0089af54490bc5124e77a2c4ae8833616ef7f281536ad712c7b4d8c2c0018abf",
    "gate/longshort_beta/b1/m1/s0e0": "cec1650741ee305058422b200f7914d3fbb351a93d713bc29e35459c9f7fd492",
    "exec/longshort_beta/b1/m1/s0e0": "586b642f4c8f203c09c20e2b53e8000d31804d8882376a6831dcd14c4a3920b9",
    "gate/longshort_beta/b1/m1/s1e0": "bd13a59859e72c6026f4ecbddbe776e8ea486de0bce3a66056650f6771d7985d",
    "exec/longshort_beta/b1/m1/s1e0": "7fbe624d49b1becd88438e485df0be57ffa3d4abc108087cd336c4111edbc577",
    "gate/longshort_beta/b1/m1/s0e1": "1f1fb496fd08900cbb61fc9b4279c40d6334d48d347bc158adb454484116483e",
    "exec/longshort_beta/b1/m1/s0e1": "6a173959f450a00c5044c7b6d7270941594765144488b7740188330b0fc36e95",
    "gate/notional_tight/b1/m1/s0e0": "c3bf38a9e6fdafc2cfd0280b10e47af7dfd529d5937706084411fc43d01ead3c",
    "exec/notional_tight/b1/m1/s0e0": "6d81fdc3c841b43aeb94826b0cb60bfd852ed173cd0700658fc0334a6bf00287",
    "gate/notional_tight/b1/m1/s1e0": "b4736529a8bd9356881089c76ef38733469c3276fa06d8b50c4edf920d6f5472",
    "exec/notional_tight/b1/m1/s1e0": "8a23c4fe01770e24916592b5b3f6619e262b1c85f90bf7e9337d6b16d1f070fd",
    "gate/notional_tight/b1/m1/s0e1": "785270ac6d56dea7161af1ba1ec17a47173ec14bc7f4281f7e9281c02347b8ac",
    "exec/notional_tight/b1/m1/s0e1": "6b27df1f4c38af9574bd176485ac23b0327cd72b29972396b9f25bd8bca6aa59",
    "gate/longonly_beta_notional/b1/m1/s0e0": "33f9fcce6661141488420efabefb424dfb41b1935e333d9c43bc3613a0ba89b7",
    "exec/longonly_beta_notional/b1/m1/s0e0": "57f8a1caad5353fcba8cdfdfef739f33a61e793a85d05acc45c782d634e8386d",
    "gate/longonly_beta_notional/b1/m1/s1e0": "162501fb712452a121e94be89733350673740c441b26ce7a23e6cb4d63f47843",
    "exec/longonly_beta_notional/b1/m1/s1e0": "098e6bec86b5e7593c3366c1f360dace43b632dacd10ad983389581cd5aef140",
    "gate/longonly_beta_notional/b1/m1/s0e1": "008695415e0aa2e426e93a30735e931a1bb031c1535ff7b6d928ac339cf96e25",
    "exec/longonly_beta_notional/b1/m1/s0e1": "f5baa409839bd7566a9e0273f1e84b09d113fd453740d845b438902d1035dc1f",
    "gate/reduce_only/b1/m1/s0e0": "77f73e81a3b966428282d5f708ab85612c4f629a5c87d8fec0580be0dfe92050",
    "exec/reduce_only/b1/m1/s0e0": "f15b1b0e708cd591ec1447c0dfaf23b9fcd1e8763c046a8b21d99f3c5d39e03e",
    "gate/reduce_only/b1/m1/s1e0": "a659e87d4b3e2b903574650e6584b2a7697850caf96cf035934779823966c995",
    "exec/reduce_only/b1/m1/s1e0": "307be30b245a8cc4663ccbeb213706fbb6b98596f75ce7f2e2195d8eb2eeb7a6",
    "gate/reduce_only/b1/m1/s0e1": "55fc9dc0b0bf73f68175b39ff75224ac1e148b8969e346f13f23d530b86351cd",
    "exec/reduce_only/b1/m1/s0e1": "08ef0e994bce0e569efc49c1ac3c3604d09070d106817b41a6802e5c771c3554",
    "gate/kill/b1/m1/s0e0": "b62e3e006a066d7f3e80eefb080b98db65f2f0680ab5e36f81e499723199049d",
    "exec/kill/b1/m1/s0e0": "a468aa0d097344ef5ffaf954865418ab4753f174e13d8d8f371d09ff14e68d4d",
    "gate/kill/b1/m1/s1e0": "24fef2456e76e13d45173a4a3b272db1d1cdeb633da152162ac496ee6250a626",
    "exec/kill/b1/m1/s1e0": "dd7926f5a35311835f4114f2fd65e318a991095203445928e5ee107ff31b9f93",
    "gate/kill/b1/m1/s0e1": "507207693810702bc1f87943af58a21227ac8c2326eadba6f9ef00577ebe0493",
    "exec/kill/b1/m1/s0e1": "1020f75f1d9eabaab158e5c1159f18909c4507e00fba4d64b785b52e49cb89ae",
    "gate/default/b1/m20/s0e0": "33fc493e4d06d0058fcea7b41cd793565ca6b22066e4e27265ebd4052a6e834e",
    "exec/default/b1/m20/s0e0": "17994731018ae3659e91f1b5dc03ec2ce7aca0dba72a071910f185e3b434ce14",
    "gate/default/b1/m20/s1e0": "fc165f8f89b99bda9679c32dcb59e722d215908a07d4cb630538d2d356d3160d",
    "exec/default/b1/m20/s1e0": "2b3782e086c5a57ca3a2d2ce295dfafee3f37db4b4dadef5f2d5704b407933e6",
    "gate/default/b1/m20/s0e1": "9f13949a48eee18ea6dfe05bc5173061a12349898a59762cd335592c012300bc",
    "exec/default/b1/m20/s0e1": "93f6f42d45848d33eb6c5b715a48a373a208d5f4c8128dcba482e69ac1a71b79",
    "gate/longshort_beta/b1/m20/s0e0": "644ee9dc9fc31b7db8d616bb6e6fec8f4954d032cd40259986652e81cdfd3b46",
    "exec/longshort_beta/b1/m20/s0e0": "b3104a26b7e1477a3a57ed18db4cc63756a8cbda326ab35b1f34eaaee3b9a0ae",
    "gate/longshort_beta/b1/m20/s1e0": "9a13ac5af608b34b6d8d25069df3c4c9f2fd38969b11d62aa44079db7ca104cd",
    "exec/longshort_beta/b1/m20/s1e0": "309cb23767ac58b5f99ec0b35a5ab7b1574d44e0738a9cbd2a5e0168b7b4da1c",
    "gate/longshort_beta/b1/m20/s0e1": "361418a5863664716d6f3d70ffb919611fb6d1ffb1204282c7b2f3e45ecf1a30",
    "exec/longshort_beta/b1/m20/s0e1": "56f5bc414fe63c01ea4df1b931d7fb0d5d3f1e861cb010961912805046cbaab0",
    "gate/notional_tight/b1/m20/s0e0": "b4af9188bc0c02be9a28f5de8707f4b31d5e4fd4cbb8b68dd8f3b5ad0c892d63",
    "exec/notional_tight/b1/m20/s0e0": "1766f08218b85f720a0b453d93cc8cdfb54b583713f9ba37bbdae548f7512947",
    "gate/notional_tight/b1/m20/s1e0": "be3e11d29d82c012091591f67f9900649bf3c0c907f29ff4835fc2a398b92835",
    "exec/notional_tight/b1/m20/s1e0": "4ec60fc01a4533f81f4142a10ac76e0f73c264e9221dd9aef4eea7bb70089e85",
    "gate/notional_tight/b1/m20/s0e1": "2fe5b0cb4a7bc175820151d504f019800bd430683ae8f4948e446ed72d6791ed",
    "exec/notional_tight/b1/m20/s0e1": "f6601005e386c9b55dbb206da70761f926685f5ef64d5d261230b2134d729e98",
    "gate/longonly_beta_notional/b1/m20/s0e0": "ea7b05b41a33e8a945a9bc8453670507bdfebec9b592f0322361cd87bc477f97",
    "exec/longonly_beta_notional/b1/m20/s0e0": "46bed610da615ad4f71f1465435034c1f1a6cf13d3fadd45ea6ac26d1c9fdbf7",
    "gate/longonly_beta_notional/b1/m20/s1e0": "c43320032fd92d2ed961187d4c373b6be085c588eb014d5c574739852394ac41",
    "exec/longonly_beta_notional/b1/m20/s1e0": "3fe9fc87665ae05eb615965b7ca1792eaabcd02ddfcd316a16f9cee50da000ee",
    "gate/longonly_beta_notional/b1/m20/s0e1": "555d83994bd1124be3ca9e46770333f88e1362788c2cf35dc15181729758538c",
    "exec/longonly_beta_notional/b1/m20/s0e1": "5c40f0918ceb7e8f7516dcf12cb10db57811af6780d3531bbadd87137bc0c774",
    "gate/reduce_only/b1/m20/s0e0": "5061592cda75553f9b0d1a688e524ae20a10b418bd5ea924a8a0a4c9527ea49f",
    "exec/reduce_only/b1/m20/s0e0": "f221c6b5f9d527dc6a34cf2954ad7df509eac94d53a26557a108d11f304cac02",
    "gate/reduce_only/b1/m20/s1e0": "15b337eaeee093d081f83caece018d79c90c099d2a31842b857c8f5e4d3ee263",
    "exec/reduce_only/b1/m20/s1e0": "653bd6d427e90a0210f8c8dc759af67271bb01fc5f023ce5837da13e9e16dd9a",
    "gate/reduce_only/b1/m20/s0e1": "5c5891a793fdbba6785be843ff12c33030e33727ec57d484c4f37034a28c10fb",
    "exec/reduce_only/b1/m20/s0e1": "3d9ec76a72b6f42dd8fec962476d09cb3e0826d9a263d6407fd914a25fb73e43",
    "gate/kill/b1/m20/s0e0": "5b0232dc73cf12d03cfd67067964e063547081871d6609b2382a25437bba54e7",
    "exec/kill/b1/m20/s0e0": "aa27c450e7126f5a9abb034eaa35da8f4d7283f8beeb444d0a83f3bf2d971095",
    "gate/kill/b1/m20/s1e0": "15b245a07fb2451ee7bf832743386640b2a53c5a331b4c2a20edd978890ddc75",
    "exec/kill/b1/m20/s1e0": "574ffccfa1389fc8f845ddab851938af6e434c7196a7cf7ce48fafaa4b43f667",
    "gate/kill/b1/m20/s0e1": "0943e3a3eb82df38984690f27a7730f68b666ee039a2b3010484a119bca5f3ae",
    "exec/kill/b1/m20/s0e1": "0e12e6e0b4dfa853467138d6af73f59224a31c5eeb88a3e9930f280bf25b875e",
    "gate/default/b1/m53/s0e0": "ca4c5f3da36bbeffc4cba574ef11ef8faa065e9c19a3980d2786b9a166abe8fb",
    "exec/default/b1/m53/s0e0": "62b0be42382933781579e70fb266888889f90d404e12ff3e6d2be792d64c068f",
    "gate/default/b1/m53/s1e0": "c84e2c1b5753606ff366b176734382850e5e259e989f9cbf0681828e7b90c2e6",
    "exec/default/b1/m53/s1e0": "9859f3ec8288a3597cc2d03daa4fbe89f9d7c004a9591afcfe6af6c3ac82ed3a",
    "gate/default/b1/m53/s0e1": "9005a69780f3687f0982cbabba6f00565da9636060dce8536c7f6c0773e6f288",
    "exec/default/b1/m53/s0e1": "d8759ef1d93669f4a1760ff53a866ca97a089630dc7b535c20876a9f3d585c31",
    "gate/longshort_beta/b1/m53/s0e0": "1ddc7bd4a703ea3564c348a3c173af92ae25f5c65cc39b7f37429c52ecba401d",
    "exec/longshort_beta/b1/m53/s0e0": "29eb482c54388eb8c53d19321c86e1f55d44ef972315710f7866d07f9728a775",
    "gate/longshort_beta/b1/m53/s1e0": "b6e221a79ebd27b2493a6ee5a0d5eea3a05eeff5529291a1e1916da7df43e362",
    "exec/longshort_beta/b1/m53/s1e0": "1ef265973155bc9b1f29a8eb226b3ac85f7e77f088c3cd9cc487da10f5dd7d07",
    "gate/longshort_beta/b1/m53/s0e1": "40ad2f6ebac52cc27ef2ee693acd19e95beb7cfd547fe3c09b206fd2e74b1a5f",
    "exec/longshort_beta/b1/m53/s0e1": "d6a775f868068c9f3e07b069351af76afc6d1fdfb82f46fd2534caee776f58c0",
    "gate/notional_tight/b1/m53/s0e0": "20bb97ffc2a6289c83797b2a31df14a18bfb3882a4c04f72116e4e6c83b60a61",
    "exec/notional_tight/b1/m53/s0e0": "2c60b70eef24d5a3458aff1e9a356f28cd6f2c4930fd29b2495aeb53472e6aec",
    "gate/notional_tight/b1/m53/s1e0": "3d020515128aee39538640bdc5a8392f4da29303e7e29f8f67fc4096c5615f46",
    "exec/notional_tight/b1/m53/s1e0": "19e40b18ff99f459a7d8ed8c3a4fa518851f63ef3595b6f715de7742d884ed20",
    "gate/notional_tight/b1/m53/s0e1": "52dee7bf2ea1ba7a0e4de9623f844799d0d52ad6077051f23b76ba511dfcf238",
    "exec/notional_tight/b1/m53/s0e1": "f6d6f67ae15d8b978ac144e71fb87a093299458bd2f3c7e8b786291c00e6623a",
    "gate/longonly_beta_notional/b1/m53/s0e0": "36828a9ab4eefb1481ff554f78e0327e23c4e84044f560c1bc88a2f3bb02718b",
    "exec/longonly_beta_notional/b1/m53/s0e0": "943cf863979e89eabf5198b7427f60e0c4e63d8a96f872bf24dfcd1c9c4b1433",
    "gate/longonly_beta_notional/b1/m53/s1e0": "853e23cddf178d20ec9c4a68393fd240e26307ef961c500c24b90e1052e3e1d1",
    "exec/longonly_beta_notional/b1/m53/s1e0": "6fc04ab46a06d9cd2e6a06cc38a45febbf81388fec3715eb272dc17e3265d78a",
    "gate/longonly_beta_notional/b1/m53/s0e1": "8429367b78c594263fce7aa2ac06e4bd7dc268e04382868628c4b09f8cc36760",
    "exec/longonly_beta_notional/b1/m53/s0e1": "0d3f501071dd008dcad6879c69cf9f7e16e1c3da207a2aef4659d7a5b7add7ce",
    "gate/reduce_only/b1/m53/s0e0": "d44f56232930e0b57f2692bb8e0e0233fcc457c7ab9c09bc4dde7242b9cd10b6",
    "exec/reduce_only/b1/m53/s0e0": "a7f704a17a99d6d5b789e65f09290b6991461d2485189fed39459d55cec5a35b",
    "gate/reduce_only/b1/m53/s1e0": "20243fad93e77b02ce410881a67ccf84cab476a577d22b670dfb5c741ec76982",
    "exec/reduce_only/b1/m53/s1e0": "9515339bb067bd57d1e048ecffc82581dbd6d9b9a7b0f0323449f0feef57f2e8",
    "gate/reduce_only/b1/m53/s0e1": "9e29daab0c838bae6fa6182458b746e3237cdc0847c4caf23843070c364e4547",
    "exec/reduce_only/b1/m53/s0e1": "0a3476167e4a64eabeba0ff5e5d6055f365a7a1748632f5f14e64f9319b47083",
    "gate/kill/b1/m53/s0e0": "4420e2b05276c9e42018e95f6b58b5bf3ececc87e62f1cbe240be265ffa480be",
    "exec/kill/b1/m53/s0e0": "5440f2fbf1db2ba34685b81611b98db47311b2cbb3f2f2aac2781f4ff7c1f9cf",
    "gate/kill/b1/m53/s1e0": "683bdc51d034db0fa270d61cf4a48330cce0a70e1a2fd6c7e7fb212d1d631f08",
    "exec/kill/b1/m53/s1e0": "0aaa821fdc682625869a4e6f758f897c767bb3596444d4a511cac96910ef34e4",
    "gate/kill/b1/m53/s0e1": "941a215a1ca037165249ae9c45588349be7d6bf1de527abf9f808c29c1c34e3c",
    "exec/kill/b1/m53/s0e1": "c5bd8742a511a862f4e5ad421391de68d114fdedd4286d8d1236af4495fbab75",
    "gate/default/b7/m1/s0e0": "10f1612c99ccd5bf18313745da1ae3b38ddf68333157ac9fe95240f9de24c387",
    "exec/default/b7/m1/s0e0": "cc2342f3618d6b47b52a78f535f730b2e3e2d167c80e652c322701c91a006f14",
    "gate/default/b7/m1/s1e0": "2cf00c2eddf2411d786d427ce987efbb09ae3dfa07fc433f24cc413edd7254f4",
    "exec/default/b7/m1/s1e0": "b64541230997027297753d411ffe10ee592de38df20189898d639fcb6a4ee6a9",
    "gate/default/b7/m1/s0e1": "ba1282e565a51fcfabc75659ecf045c5b4c72b7acb158a404e8da83d5ca863c9",
    "gate/longshort_beta/b7/m1/s0e0": "bc8f1969de47379bb3630e6a80d2b02279fce1298c232a81dc62a173a0bfa5a9",
    "exec/longshort_beta/b7/m1/s0e0": "7ce5547d8ee3ec5ca74c7f35fdb0ec8209e19b5423959c4bfae0c339032bc5d7",
    "gate/longshort_beta/b7/m1/s1e0": "81b7feb291775652d527a66cc84e859fee1d823c51b1f2d2666151bd85156d61",
    "exec/longshort_beta/b7/m1/s1e0": "89cd04a8f98edc328826cffdd8f042f07188a63c6ff00de494b33fa7ce2f1ae0",
    "gate/longshort_beta/b7/m1/s0e1": "ab062b27f87c65535796abfeb29ddca0c1f5d9e55bf0fd3f8f664028c853e0ff",
    "gate/notional_tight/b7/m1/s0e0": "6f940d2167aeefd5c3a897ae7254975c4ab934c688f7b28b931fc4b05fe45584",
    "exec/notional_tight/b7/m1/s0e0": "ecf771b7f1df93fc732417573f0417cc0adc14deaf59c9c54213f7a09ddf0667",
    "gate/notional_tight/b7/m1/s1e0": "63437aea6f290cbea6631fb5f97b255deec73568000a5b7acc04390b165d4d80",
    "exec/notional_tight/b7/m1/s1e0": "c38d7fd82235e2fab5693e483f224110fc0d610f04e815433ec694a16b6f1f40",
    "gate/notional_tight/b7/m1/s0e1": "f69b19d2bf5ed4ccbe1ce8f31925f6a11fab85c034c34f17a038008b6dfbcfbf",
    "gate/longonly_beta_notional/b7/m1/s0e0": "3ca978c9e5d914f21be9f35babe2a76b4f20a111de5caac40e49809865b05cbd",
    "exec/longonly_beta_notional/b7/m1/s0e0": "46d52444fb2f0120b9d8867135613cdd4bb9a4a51d130d347bc75e5f8034701e",
    "gate/longonly_beta_notional/b7/m1/s1e0": "b1fd9c7163b99f294c92ca13711e6a17f4aadf33fc27edfdd213866edf1d3841",
    "exec/longonly_beta_notional/b7/m1/s1e0": "bdd4f1cabdfaea27ccafb09e064e5d670a7eadce5f1048d469888d7838dee25b",
    "gate/longonly_beta_notional/b7/m1/s0e1": "cdfd788cc8c42337446fd813413a062a028094fe96253b69698eab568f6ac3c3",
    "gate/reduce_only/b7/m1/s0e0": "e4d0a3c36a48994021907c392923383b56d93d94b33e4dd5dfebbe094c256f38",
    "exec/reduce_only/b7/m1/s0e0": "d03dea623ec9c611bd934627bb1c53ab8766bbff1bf891511e4b292ae2b98eaf",
    "gate/reduce_only/b7/m1/s1e0": "0fc5e421fb407ff76575018c2f7881b60d45484a61369605c039c78c1a8c4311",
    "exec/reduce_only/b7/m1/s1e0": "4151c238b4d95292071815c59a971051a9c5f15c27ef01acf43304ffea20bcdf",
    "gate/reduce_only/b7/m1/s0e1": "126e1a9e229e53e8e70687f11c4ca3d7aeb7eac03d2e981779157a5b499479e3",
    "gate/kill/b7/m1/s0e0": "d2c2502f6b7bf9327f0e79a87e65f06e794d873dc0fcd69ae257916fb94df18e",
    "exec/kill/b7/m1/s0e0": "45a3f9102a7cd20fa25356b52490e7fe99429d72506a2d9079b15aa2ca36bd58",
    "gate/kill/b7/m1/s1e0": "e849ec6602dc0d80a5309438986fcc40df67ddaa8d83ee6ca1c5571e32a7299b",
    "exec/kill/b7/m1/s1e0": "ce5e8bffe1108fc8aab572d64c3ff459dec63799815ef62a66e4ecd40ed21df3",
    "gate/kill/b7/m1/s0e1": "9eadf2cc6ce910c9c011b0c5059e427b23c87b111a5ee89877d8f617ae7703ae",
    "gate/default/b7/m20/s0e0": "b6cabe45b8eef1ef590d853ed3d21709f9ec9163ec48fea81218a908f7fb350e",
    "exec/default/b7/m20/s0e0": "fd59e505c3384ffd88838da5aec766a00597d1be370c5c33126a6a6bccc5eb9d",
    "gate/default/b7/m20/s1e0": "922dfca9821350d5db5699b7870da1b549848c0e8e674820b098edba4ef5786e",
    "exec/default/b7/m20/s1e0": "88a0fae3eab3ea027b8a0356332472c9807050c9518fb9069aafa1b35010acb0",
    "gate/default/b7/m20/s0e1": "6ba475df50d822d8559c36d8f118a0e0255379d46399de01220441c3c626697a",
    "gate/longshort_beta/b7/m20/s0e0": "141407e1128978813ad3f11e1a3821737afc9c736c95ca7b045566a826e12c43",
    "exec/longshort_beta/b7/m20/s0e0": "dee72154a9546b62ca566e39bdf02e8e8ddc98d749f69c0250e99c0e0b09e660",
    "gate/longshort_beta/b7/m20/s1e0": "62447d33019c474c4d921040758ec595e4b246d47d463847682df65969766bda",
    "exec/longshort_beta/b7/m20/s1e0": "c3492cd2277a5a2945ac1ef12f76d1f2ad565e1d66b233744bed856b47e6aef1",
    "gate/longshort_beta/b7/m20/s0e1": "ccdcf2e311b3f5c890f571afb5a8fa86fa1a57156de17d4803750ffcb022c662",
    "gate/notional_tight/b7/m20/s0e0": "fc820f236c4ed3b6125937c53310cfd074818eba5deaccde920093d62f6eee5b",
    "exec/notional_tight/b7/m20/s0e0": "baa0f1c49d1271c3422f010f7618f95c4b368eb25ebf0bce26c19c0f88e0657b",
    "gate/notional_tight/b7/m20/s1e0": "9d95f5c9dac770225bf89de221c9fb5abdf6f4740b5121f33e8d56d6c39de737",
    "exec/notional_tight/b7/m20/s1e0": "29861b9259be3616cff3e345f1db8fdfe6a19c4c367ad0d5798ed0e202dc0cc3",
    "gate/notional_tight/b7/m20/s0e1": "8da197d65f1820955d9d895efa89628c23347fa861d7543caf90646ffd42d073",
    "gate/longonly_beta_notional/b7/m20/s0e0": "91135ed9d1d1c680c912628959b0fe255d63de4f4594d2232a9ca752bceb0a12",
    "exec/longonly_beta_notional/b7/m20/s0e0": "d5e0a8920ee974127bb83213f77570f7aae6a516de0e7ce4618e7b32f5b86207",
    "gate/longonly_beta_notional/b7/m20/s1e0": "e36106a6e0a29d8d17f577119797661eda32b1da0bd36e5cb336e0d6b1458b89",
    "exec/longonly_beta_notional/b7/m20/s1e0": "dd15b066e89509a1d0430d58d0d98b789bca5ca9c207ece9577218eda82d44b4",
    "gate/longonly_beta_notional/b7/m20/s0e1": "6e8b1f3be1c3943d6091c91935d9deba1d4e88eefbb379fdfe5b221438968182",
    "gate/reduce_only/b7/m20/s0e0": "241c69c1ed8826f5c4361f657b9c75de1d0539d1242842317c770f4eb0d8c749",
    "exec/reduce_only/b7/m20/s0e0": "0d186733d46283ed58558fbbe9e4335618558751f96a20a2d222f077af7eeff3",
    "gate/reduce_only/b7/m20/s1e0": "8ad3e9ea884ec7c8c45dfe43064fb5ae2f844879f42196b8ec0fdc1c7b4f10be",
    "exec/reduce_only/b7/m20/s1e0": "71a0554353f70d7a4c707fe6ba8f927723b4ef6d2d1f1f10f3ef9a8728f7e055",
    "gate/reduce_only/b7/m20/s0e1": "c05402fe831bbb9c615fd0cde29c3cb797db43ba658a7ae65c5d3bf9ae7f0ee2",
    "gate/kill/b7/m20/s0e0": "489f55c1c3d1f289f2a62bf6eb44a3b094161f2aa6c7e09c564f60a4427d091f",
    "exec/kill/b7/m20/s0e0": "4569be428619fa275b9d70e52ed342617fd1475ae6881e133f4cf245707e650c",
    "gate/kill/b7/m20/s1e0": "df439d7df065b0141bd7182b04783409b6964822522cff6634b68dc8a4f9789a",
    "exec/kill/b7/m20/s1e0": "66adf4c362fb24936f9a2c239751ca9e5b7a72f55f78656dd5e598bc62108cd0",
    "gate/kill/b7/m20/s0e1": "69556bdadb569d5290bed821dde8057b4810ec4fd01029649082bdf12bdc44a7",
    "gate/default/b7/m53/s0e0": "64b3aaf8a6f6f3923dad13f5def0d73c0313590af5f649b115712d727b0d1386",
    "exec/default/b7/m53/s0e0": "27cb717a2e58eb40ca8659c9e93d79fecec15bbb192b5fcca1dea40d6f2c5b51",
    "gate/default/b7/m53/s1e0": "7ea256f2c35588eafd1d2309a997ab519ecc09f9ee8d5249d60fd010288706e2",
    "exec/default/b7/m53/s1e0": "c4e15a6a1656e17e0e5a0a652c2472835a30f19e5588bdbfec4baebeb5f7f76b",
    "gate/default/b7/m53/s0e1": "3cc4b59f51eaca07c9ba99ddab006294d1b3dcab25c452dbd100e627e233aa9e",
    "gate/longshort_beta/b7/m53/s0e0": "0079b0048505f149f3845f8accb7a29c0fd4c6e7fb41d3e53f83eb75c60a67af",
    "exec/longshort_beta/b7/m53/s0e0": "d64a603833e2ee57b4b1849cc2866d574fba8d990e97d8a2d2585cc5e46f8e49",
    "gate/longshort_beta/b7/m53/s1e0": "61788fe39ec5c6c97b4580ec560e8c651af64e275d0da94b9e552c440fe925a9",
    "exec/longshort_beta/b7/m53/s1e0": "7a7dbf24835a6d1103429b6dd8f01dfd8bf8e158b45af44f7db051f1d4fdd617",
    "gate/longshort_beta/b7/m53/s0e1": "56d9f7dadbf0c71277c32e6d229a4e3cdb54924cb2cef1203cc04d713ee5116f",
    "gate/notional_tight/b7/m53/s0e0": "9e5bd88a30b1c8f37eadb482c2e646adaf27157eb475c165372d7328b0d71967",
    "exec/notional_tight/b7/m53/s0e0": "27518c8a20c63e8c8004811f0de041d9e33bbbeca4ede93e37617d2239e9845d",
    "gate/notional_tight/b7/m53/s1e0": "57a445408f9b3f1d67c3c0387059265ec25e9c3643419464d762184d9d1a0bc1",
    "exec/notional_tight/b7/m53/s1e0": "0a03b533f2a966ca7269166b683d0b44c1d9cd3e61cdcc49326edd9409c350c0",
    "gate/notional_tight/b7/m53/s0e1": "ff792fbaaef60c6d9eebfa512906483ed01b95d5aba49f23b8f171efef315fb8",
    "gate/longonly_beta_notional/b7/m53/s0e0": "5718ae7da902ded4caa65f347b88511b08b34478daf016e5620cb8991b4e3094",
    "exec/longonly_beta_notional/b7/m53/s0e0": "374b4d4a7d53b731a15592af8bf9d16627c43617c463d19d9c51026c0de0065b",
    "gate/longonly_beta_notional/b7/m53/s1e0": "e47b75125912ce91ba065132187bfa5ffa0bec3009109e74664f49bbb2f2f4fd",
    "exec/longonly_beta_notional/b7/m53/s1e0": "a92b79b01ac62338baf66918a5758e295d82ecd51de706707826be2a3e1e396b",
    "gate/longonly_beta_notional/b7/m53/s0e1": "097a4b987303891cfc59344184062f8d9cf31f1062a31161107557681fb26a0f",
    "gate/reduce_only/b7/m53/s0e0": "b26c312864290be6fad1c8e856b85f4c6bf33105cc03474b62f6ef4076bf71f4",
    "exec/reduce_only/b7/m53/s0e0": "185a4ecffc8b2f06ea24440de768021006e8da9d72dbfe9f362a352471fae18d",
    "gate/reduce_only/b7/m53/s1e0": "1517ff0651e325fad91e537ed01d6ed29a48759f72f30d6e1fd77dcaa815c0fe",
    "exec/reduce_only/b7/m53/s1e0": "8eb5aaee4074566adec709bfb2c4eb4d40183ca283227d3930357442fa10715e",
    "gate/reduce_only/b7/m53/s0e1": "9561d2d8b694c844da11b474c2facca7a512882e074a1f855bc0ff5a894396ce",
    "gate/kill/b7/m53/s0e0": "bbcf9fcc3ffb8cfc9d9d32e62f2702651aca8916ac1db0aa027b7e31709698bb",
    "exec/kill/b7/m53/s0e0": "f2fdff4183727b6fd09ce0b00713af9a089678e74d8e07433e4790c649fe2568",
    "gate/kill/b7/m53/s1e0": "98738ea0b750fb71719eb5a3a3c077b5e340a72baab0be687d3ac5a5b6adb259",
    "exec/kill/b7/m53/s1e0": "e41868621a5f78ed3cf26cf951d8f910d8e3c60a1d30fb5ab30fa75d56c9cd90",
    "gate/kill/b7/m53/s0e1": "31b6d207eabde738af3a709d252319d6cd67102f12ce7b8af9c217f850fafbe8",
    "gate/default/b64/m1/s0e0": "872c269473b274afc8fd763961bf435572edd9b7bd4193b02a501f83c23c2747",
    "exec/default/b64/m1/s0e0": "e443c3e10dc44cdfea73d9c1ebf2cc1107940ac7e429d418d20dff88e48bdc37",
    "gate/default/b64/m1/s1e0": "89e3348785d295b9ac49d03e3016f4c5860524e2d4117f951bec5806d9a4754f",
    "exec/default/b64/m1/s1e0": "6ff9e4c6b0ade404a39c5c6ddd6b301db7bd41bf939494c74520d897fcb71b4c",
    "gate/default/b64/m1/s0e1": "74ff0d9f5e642fe5b90ff41b06e3d99b4dd8e6214d695bd0601c1d8d49e0cfb1",
    "gate/longshort_beta/b64/m1/s0e0": "a23644bc63f8062e243efadfa953ed4820b726bdf53f2635c8b1fda972066a16",
    "exec/longshort_beta/b64/m1/s0e0": "5a958686bd519ec16d3d286cc491d16bf13460698d1f03409fa7954a5f33ba6f",
    "gate/longshort_beta/b64/m1/s1e0": "a14197bdea8fd11b749a57ec2b0a3dc6a6e5f0727ef91ae38cebaaf5b0b9ecf3",
    "exec/longshort_beta/b64/m1/s1e0": "05787f15c2ae03fff0f3773cea06496954adb02fa153269048ed4da4a7eb29b2",
    "gate/longshort_beta/b64/m1/s0e1": "451e014981011ed1d0ca43fa92d2b0a5ad151bdc2e733ee84ea5487c581f3816",
    "gate/notional_tight/b64/m1/s0e0": "8b0fc280bbbf2c7ea230242ece9deac21a46d1494e27fb018cccbd50aa7d4b09",
    "exec/notional_tight/b64/m1/s0e0": "a277e3367729814700994636a0aed9ea9eeac7c1878f9c90bbb9d1b33559a2c3",
    "gate/notional_tight/b64/m1/s1e0": "7ee051e207730effdda0d2e431e8df9e4941b5a52372deac5f4d159257a9c6e0",
    "exec/notional_tight/b64/m1/s1e0": "ed5311ca6a2a130426895606b2f21e6f1b90349fd8394f364ccb5c28f52f6754",
    "gate/notional_tight/b64/m1/s0e1": "f05d8431c98009efc549af6128e33539fff9b3c7c4d4522e6ad942f372b73c1b",
    "gate/longonly_beta_notional/b64/m1/s0e0": "1549000334cdcfacf8a1ebd2da17f89b9d7c134cd1281a8cc6781a127229b036",
    "exec/longonly_beta_notional/b64/m1/s0e0": "a6b3f2a96eedd14600a186af3b87032c73820dfe3aaf3d13c2ee6da2833dfde0",
    "gate/longonly_beta_notional/b64/m1/s1e0": "528f5a10cfe66cf1be805bf6873ff3a80545c4f6ad283fa89e384449ccb7f7c6",
    "exec/longonly_beta_notional/b64/m1/s1e0": "9f34d988dce23ec471a3cebf804e5c1d7c9693763c303190da44045f9334fabc",
    "gate/longonly_beta_notional/b64/m1/s0e1": "464e923604ed124a78debcad13dfd2fdd71db743f65f7785544118ae8d7f82d6",
    "gate/reduce_only/b64/m1/s0e0": "94afcfa23bc89b1b3ebfa5793cb8341cc7854a034b4e63c34d1e5c701bde1008",
    "exec/reduce_only/b64/m1/s0e0": "ded442b0a5688ec0b387daacf0ac4ef8f5b394ad9236ceeaa1b1859855732a7a",
    "gate/reduce_only/b64/m1/s1e0": "1720a2a47b5ddecd1a889b71d564f0e69a7e310fbcf83b4d966bf3f863a373db",
    "exec/reduce_only/b64/m1/s1e0": "7007b5ad6302ef9cabbc7a6a37f66843d6830300249ae93538d625319b748e7b",
    "gate/reduce_only/b64/m1/s0e1": "511f9aaa4edc2496a2ef3ea2f9911c29e7beeedbb75498ba80b3bb93674ae285",
    "gate/kill/b64/m1/s0e0": "b04c1b8b3a1fba008faf9c57337b48bce794f93b0da2648bcf355d49ae5902dc",
    "exec/kill/b64/m1/s0e0": "0805619bb71bb81fa1ebc18ce7e74c981b3e846ce0c29830c42bb4a4d2a27a02",
    "gate/kill/b64/m1/s1e0": "f0aed787e0cf4b2b846779e0b44295dd5f6700a2c9467f15d7891ecb60581f47",
    "exec/kill/b64/m1/s1e0": "3ac1abb02d296ffee26f56e2f38474bfd9dd497389af232d20ed9138bf165a02",
    "gate/kill/b64/m1/s0e1": "83b5f7b34e4ab0f341efbe0c6d788b7bcf48ae678ece1fcec9d54a67ec65f3fd",
    "gate/default/b64/m20/s0e0": "8911b1e8984879fd3f63b328439f8231eec95a71249296b137ad9014e04b2766",
    "exec/default/b64/m20/s0e0": "9a80b9265abfa38a9273c4b6bb30a5f1844fff7efc80f3894adb2583f0ece606",
    "gate/default/b64/m20/s1e0": "54681834a3602c0e4f2988d57b17e60d1c95e6025b50cb762d2ace6405f159fd",
    "exec/default/b64/m20/s1e0": "723456bcb59412f9b910a828bd9639919ced39fb714746384ad3f257cf7d1f86",
    "gate/default/b64/m20/s0e1": "076693f6e32c84bcb36cc8d8933e3cc942d568d384beda7760dac6e1cf3a2d0c",
    "gate/longshort_beta/b64/m20/s0e0": "a027e93e71da62e8b8ef9a1d258a85d6041ab788a51e4816077890b0f4f184c2",
    "exec/longshort_beta/b64/m20/s0e0": "7faae1a115b9e65745498d300ff51462d73945962d519f8631b4661b1661ea0d",
    "gate/longshort_beta/b64/m20/s1e0": "e789c94e00a601e089f42426ea3f28009494d6111660320ba55176fd33e0fcda",
    "exec/longshort_beta/b64/m20/s1e0": "114e29fa125d9e2a917cfde4088158ea59ddb55c4ebf1afb42979ce53b88a58c",
    "gate/longshort_beta/b64/m20/s0e1": "7fb1ea513a9866046e4486cb2434d9a3d8b9dc2851c3a143ffb4d22bbc128fe4",
    "gate/notional_tight/b64/m20/s0e0": "267295483cfe77fc6279e8dac90d951017dbd6ae97a0f5617c48edb106a7e5df",
    "exec/notional_tight/b64/m20/s0e0": "9a861cfd6e080d729094b9f461d468e474159dac4839b1b2bb5fc7db8aac1b68",
    "gate/notional_tight/b64/m20/s1e0": "0427debcdcc9b6a670ec4d6a62f9209d698c2b987990b621f122639211696a63",
    "exec/notional_tight/b64/m20/s1e0": "6996863327fafc362584d497c0d6ca70be5d1e7ef192695b3d3c0f8730f1cd54",
    "gate/notional_tight/b64/m20/s0e1": "8ef3627326d04ac8d67b7c54f2461bfe43b3721bc135017cd5c0f8d9f90f831f",
    "gate/longonly_beta_notional/b64/m20/s0e0": "62edd7763e4b2dd5fe7ee3bb6eabe38db2e6e12fb7f4e9c8b34eed21892af90f",
    "exec/longonly_beta_notional/b64/m20/s0e0": "85ef5abc90193534f07532e0d9a9124a70343a82bf34c7e63c9792050f4d70f9",
    "gate/longonly_beta_notional/b64/m20/s1e0": "7757455ddaff1ccd8237287abcfa434666a96a884053fd9f0faf64b886c1b5bd",
    "exec/longonly_beta_notional/b64/m20/s1e0": "8dea271be0260273270b77f0c91204f1106d12bc863520c9046f410c23eceae5",
    "gate/longonly_beta_notional/b64/m20/s0e1": "4232ed0df490711bbaf2491a1f06e46606bd5dcc652e26f8da9268bb1ae33143",
    "gate/reduce_only/b64/m20/s0e0": "8973664c3eeb6e73a8957f81bc60837ce9ad92468f464ae5805af31a2326eb4c",
    "exec/reduce_only/b64/m20/s0e0": "5fa393645654f5077d77f0678e08abdde191a5eee7e10d356bd2d0e79dbd31fe",
    "gate/reduce_only/b64/m20/s1e0": "e75fc6a266cff534e278e4c991606ec7d6bb59247f7dca68866dfa046c723380",
    "exec/reduce_only/b64/m20/s1e0": "47f12db402998c1f976f85d7bb398257b09f521cff73612b4301bb9181cb03a6",
    "gate/reduce_only/b64/m20/s0e1": "a9e88bc87067d2243b80a629a9f81df4fa2a618588cab6b85a6fd0956d16eb6f",
    "gate/kill/b64/m20/s0e0": "07fe9fe39d8b4f10e2416f036e16bb0ca5aa1141b75e36d26ba43ede6dbdf1bd",
    "exec/kill/b64/m20/s0e0": "499371c5287fc0523f28e242e1c1709b3b4204a88ee00ba6fbe4508e1cfbed0d",
    "gate/kill/b64/m20/s1e0": "2594e5234256be54a8ca0d9d25bd5c7dbe2e1a08bf6c8614d0a2bac8b1a671fe",
    "exec/kill/b64/m20/s1e0": "8e6b80e4b0470f4e8b7bbce639c08aa6d5ac7f53a092087b7fde90e8b56071f4",
    "gate/kill/b64/m20/s0e1": "c6310c69462fe6f75b321ed9f60efebb27695415b63b9ba230a32dd34beb3b90",
    "gate/default/b64/m53/s0e0": "4f85077e2d088e10ed944d7c879db62f182c752d6e066d33afea00963c0f4f04",
    "exec/default/b64/m53/s0e0": "9f3a57208d47bf9799ace5d4b7fbac6c68eb2a24c9b9f85c4438cc867ff83afb",
    "gate/default/b64/m53/s1e0": "c129874c34936f20a37371fad56c59f7c3d8440d5ee4ae93624f64d215eef21d",
    "exec/default/b64/m53/s1e0": "f50a1160e3e3a9ba7643f87b5f12c05f18717d315e69b1c4585988ad66c769dd",
    "gate/default/b64/m53/s0e1": "68bdd474ec4e9df730a745d208907dc225c5e997c3c8246dc306bde94bc8dec0",
    "gate/longshort_beta/b64/m53/s0e0": "ec9561426c81f351e45c8a24bf9bf71353cb10639e792ff58bf13e447311ccae",
    "exec/longshort_beta/b64/m53/s0e0": "60c5420b45a882c7402d9f9548330592e315c38db8e2fd42a459a6ba6c180c4b",
    "gate/longshort_beta/b64/m53/s1e0": "74c77fab3ddca99441f1cb02a76970b964c74db62765223d7a83395d351730f8",
    "exec/longshort_beta/b64/m53/s1e0": "b52d584300032ca654ac848d0008f666820a604f33f484fbbf992cc6a46a7fb5",
    "gate/longshort_beta/b64/m53/s0e1": "504cd9a5445ef5eebab319fecfdab301c165266ed3e1fe5fa8fc4be1c4cba2e7",
    "gate/notional_tight/b64/m53/s0e0": "7de9c8e3e79a752bc20e27871bd8b796450ca34edb45334812b0e91ec6f29174",
    "exec/notional_tight/b64/m53/s0e0": "04af46f13e126f95b5cd0b388a608e19bbe22bf34d415e8a4aec5cbb403f99e3",
    "gate/notional_tight/b64/m53/s1e0": "eeebd29170604942bb1bbab79cd432575d986d57ab71cf3b2277a301ae77371e",
    "exec/notional_tight/b64/m53/s1e0": "37cbf7a8e6856de809e2a1e75540fb51a27f02bb7db96456c0c592254282f7df",
    "gate/notional_tight/b64/m53/s0e1": "8f2a59554a6df96dee32fdc5d17898e28155d65af261d37c0de5ef2b428e5223",
    "gate/longonly_beta_notional/b64/m53/s0e0": "86528d025b21077820e4f20f12a1cb611c9d3966426c66d0454c7f181adcfbf4",
    "exec/longonly_beta_notional/b64/m53/s0e0": "2345f5843b4f07167a570cfff0b867c39e43e59272c5fe851e7164a90147383e",
    "gate/longonly_beta_notional/b64/m53/s1e0": "7b2ade916802a782e699951ae075d901e420e801b4a46618475de63321a0ccb5",
    "exec/longonly_beta_notional/b64/m53/s1e0": "1e7c4354c1dc72e9daa841ece0171d95d0a1d9a3db8bfeb2b861683bdad3cf7b",
    "gate/longonly_beta_notional/b64/m53/s0e1": "b22407f96af02102f90bbb7b0fa41eaa5b6120be217eec204d425b18c2ea1f0a",
    "gate/reduce_only/b64/m53/s0e0": "c445d55fe3b9d63859c30c73cb1c4d15d73d09942c5d48149719df5f01041367",
    "exec/reduce_only/b64/m53/s0e0": "8a8e49d0de93a8f6e9e1d288c797420b12ce599b1621ba70625264cbd6379843",
    "gate/reduce_only/b64/m53/s1e0": "7a4e6cb4e7d2389c32ec814495ee093a5483476bded8e0228106198c84db3fd6",
    "exec/reduce_only/b64/m53/s1e0": "524ad3384fc378e82d2adf2e3c9ae70e5b679a4fb19be760bdee2bc7414da1e2",
    "gate/reduce_only/b64/m53/s0e1": "89689669283a545ee7529e1c3d3dc60db676ba9c74daa6a071f631d029fc3d9c",
    "gate/kill/b64/m53/s0e0": "89796132f3aeeca83816bf3d990aa2ef25beaa8f8a92e977843c5255a7fdccf1",
    "exec/kill/b64/m53/s0e0": "56b5502dbceef8e8176962860dad84613ce4633634ec12f135e64c83dd51912d",
    "gate/kill/b64/m53/s1e0": "b8e366ec142d0a5f45122522c1c38309cadf92fae225004c4564c1e2b5579c0d",
    "exec/kill/b64/m53/s1e0": "ad97fcb2a9350e8bb1eab343317f5a1baa463c97c8a628c1b25b9d6410b2f21b",
    "gate/kill/b64/m53/s0e1": "1eb23b4bbc25ab34f7f4be2bc306381d1555ddb8d813d49a1909174bd5906d34",
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
    "env/weights/base/b1/m1": "06e31564135f44ae8f923ac57be8ec7ef6e8c369e528678198d0420274fc904a",
    "env/weights/base/b7/m1": "58b80b8dfc5af4d65bdbae197d394b6841b5c74dedca955698c875627663d0f3",
    "env/weights/base/b64/m1": "e3fb4f0bea6dc4dee7cc70472f479b09ac9e399f2454aae97f73a7fc0a9694d0",
    "env/weights/base/b1/m20": "91ef589b38010c6495147b6564c44f6c8e179cd480697be40b33bace91af2a65",
    "env/weights/base/b7/m20": "9325388f843739af28f9b912a6d102181df6971e0cd956c30d2f211339da5462",
    "env/weights/base/b64/m20": "ae497dff4ffd101f299cfe8e6dc420bbb5ac528d44356522f108a1063bc6bd60",
    "env/weights/base/b1/m53": "a7e41eafe9fc9d2473041d9f2b42879ca097cd6b2d27da80b8965a43beb949cd",
    "env/weights/base/b7/m53": "16705fbca20604e102756b318a4cd05bf10507ef70c931dafb00b3f17c8084d5",
    "env/weights/base/b64/m53": "79e2444f037d4a49e2dff5b3334a042f4028b6507177cd414b9d20d94692aba2",
    "env/weights/longshort/b7/m20": "25053888c406858cb4ab02c303b6409026e99c9fe5ad09d50c358042e98766b5",
    "env/weights/kill_lots/b7/m20": "7b4473ce53dfdfefae4df2c9c8ba40b435beb01d636f08cf56b1a86456af1a18",
    "env/weights/base/b7/m90": "17f5e4a4f1bf85664b18a9cd3ba37bf4946a41771e37ad0e3a48de0113c2348f",
    "env/budgets/base/b1/m1": "ffdbd107fa58af8e2608be2de2af399a243b24086b366e595fa43d3e61fc9b7d",
    "env/budgets/base/b7/m1": "405a733046626f82bf49bc17447bb7e24fd759aa5438c31d8033310af91485ce",
    "env/budgets/base/b64/m1": "7f3a452234ca3a11e2766882423099c14db56027ba5e7616d0e7af70b3527c26",
    "env/budgets/base/b1/m20": "8f61a00e52bc10291305215c0f7d10eba40ec1b901e000aea9531b68ea60101f",
    "env/budgets/base/b7/m20": "22fca02df498c6377f69bba998ddb89d4e234848ed96d31219f9db71ddcf456b",
    "env/budgets/base/b64/m20": "8adf07b38532d2e16f8c4a6dbd2c17361cb333a14a106abee9714b213b66bd54",
    "env/budgets/base/b1/m53": "0848b2c91fff2e1e511271c28d366382d58cf5ae19ff4d2b1e8ee592f6340af7",
    "env/budgets/base/b7/m53": "fbc6318b3b2877f5a77ef57349976a651a684d41a5a245fe59f834da22dde58a",
    "env/budgets/base/b64/m53": "1e1e75dc9332a4ceba644afbdd61dc18b45a90a95eaf12ddd60c9f66c46209e3",
    "env/budgets/longshort/b7/m20": "0c47ef823b84494f4d05faef46c2cc5622a68b4ef89ed06c1fa22b074a9fb4d2",
    "env/budgets/kill_lots/b7/m20": "05262542f9265283919f7ee8933b853a3219b298eac67d7f82cb2168a350b9d1",
    "env/budgets/base/b7/m90": "78181cf5ffd8b5b2bf4d63de5535955efbcbd558cb0f74ffb7bfe077fcad3339",
}
FINGERPRINTS: dict[str, str] = {
    "gate/default/b1/m1/s0e0": "bbe04628eb8fa2a5 8:0.0:-46.269914926887914",
    "exec/default/b1/m1/s0e0": "8a5ae425103b48b0",
    "gate/default/b1/m1/s1e0": "af5d024e27c57fdd 8:-2.188469492062487:-176.3071908846997",
    "exec/default/b1/m1/s1e0": "e479009610b4b318 8:2.1973450510278996:-54.96186054850145",
    "gate/default/b1/m1/s0e1": "062cb984bf15a450 8:-2.9297934013705325:-97.27499088121677",
    "exec/default/b1/m1/s0e1": "d310b52306d1b5c7 8:-6.592035153083697:-167.42351836883742",
    "gate/longshort_beta/b1/m1/s0e0": "062cb984bf15a450 8:-2.9297934013705325:-91.38545506302763",
    "exec/longshort_beta/b1/m1/s0e0": "549637e3d687bd39 8:-5.859586802741064:-168.95335093860044",
    "gate/longshort_beta/b1/m1/s1e0": "003497cc38b6108c 8:-4.54638511457468:-240.2106956043616",
    "exec/longshort_beta/b1/m1/s1e0": "df2a3d3b61415eaf 8:-5.127138452398431:-159.06555010903017",
    "gate/longshort_beta/b1/m1/s0e1": "84269fe8cbdae255 8:0.0:-48.992852913806104",
    "exec/longshort_beta/b1/m1/s0e1": "6522ef6bdde4e7f9",
    "gate/notional_tight/b1/m1/s0e0": "1a1f2e62a437ea7a 8:-0.7324483503426331:-120.601510181609",
    "exec/notional_tight/b1/m1/s0e0": "41856c2eefccf16c 8:6.592035153083697:-165.72682207216525",
    "gate/notional_tight/b1/m1/s1e0": "d37c97ce03f474d3 8:-3.8401659929451015:-176.9857842863922",
    "exec/notional_tight/b1/m1/s1e0": "5ac7f35681a5a3ef",
    "gate/notional_tight/b1/m1/s0e1": "ef73e05ddd640980 8:-0.7324483503426331:-126.13752915466057",
    "exec/notional_tight/b1/m1/s0e1": "383251bbaff8d37b 8:2.1973450510278996:-180.48512973267805",
    "gate/longonly_beta_notional/b1/m1/s0e0": "737c2464527215ec 8:-2.9297934013705325:-93.69706151868118",
    "exec/longonly_beta_notional/b1/m1/s0e0": "a410d90d444addff 8:-4.394690102055798:-104.1480441015517",
    "gate/longonly_beta_notional/b1/m1/s1e0": "d37c97ce03f474d3 8:-5.121233849559096:-229.87272968156387",
    "exec/longonly_beta_notional/b1/m1/s1e0": "6b0dfb034042a09d 8:-4.394690102055798:-120.20317044371981",
    "gate/longonly_beta_notional/b1/m1/s0e1": "bbe04628eb8fa2a5 8:0.0:-43.396558572909285",
    "exec/longonly_beta_notional/b1/m1/s0e1": "34be176efa8fe556",
    "gate/reduce_only/b1/m1/s0e0": "792ff9fdfdce4cb5 8:-1.4648967006852662:-39.9178799269967",
    "exec/reduce_only/b1/m1/s0e0": "e0407ea9e2f214a9",
    "gate/reduce_only/b1/m1/s1e0": "10787ec593dc9ac7 8:-4.311494124920053:-197.0265557238823",
    "exec/reduce_only/b1/m1/s1e0": "22898587ce15ef1f",
    "gate/reduce_only/b1/m1/s0e1": "0ba7409699ac60a5 8:-2.1973450510278996:-74.05308979204621",
    "exec/reduce_only/b1/m1/s0e1": "9de5e79a2ccb33d5",
    "gate/kill/b1/m1/s0e0": "792ff9fdfdce4cb5",
    "exec/kill/b1/m1/s0e0": "16eddad21f5631e1",
    "gate/kill/b1/m1/s1e0": "fd5954b917ad57dd 8:-2.9768282861883235:-135.4716558359847",
    "exec/kill/b1/m1/s1e0": "5ce96e9719dcd03f",
    "gate/kill/b1/m1/s0e1": "792ff9fdfdce4cb5 8:-1.4648967006852662:-45.54883371328981",
    "exec/kill/b1/m1/s0e1": "61cac5e056ad0eef",
    "gate/default/b1/m20/s0e0": "48ae0ec0d5066a3f 8:-2.2409555305780615:-123.16106616774223",
    "exec/default/b1/m20/s0e0": "f194861338943443 8:-0.5315736450742877:-161.13502830567745",
    "gate/default/b1/m20/s1e0": "9975064ec22bedd8 8:-5.112469691148554:-290.1982416179854",
    "exec/default/b1/m20/s1e0": "2c003e4fa7edd2d2 8:-0.8208257898840923:-142.2122162739777",
    "gate/default/b1/m20/s0e1": "d5ae947cd660a105 8:-4.7953633975723235:-185.83758825726247",
    "exec/default/b1/m20/s0e1": "c646319ff07edb99 8:-2.4438528036552127:-138.3760554862497",
    "gate/longshort_beta/b1/m20/s0e0": "7af36d8300228b0d 8:-4.397786614057716:-188.44107654191453",
    "exec/longshort_beta/b1/m20/s0e0": "69de16082c9296c9 8:2.272383198854606:-130.97790474706042",
    "gate/longshort_beta/b1/m20/s1e0": "09de2e1dac876113 8:-2.3788272058555515:-155.4040659781811",
    "exec/longshort_beta/b1/m20/s1e0": "8dc3387e79a3aa9a",
    "gate/longshort_beta/b1/m20/s0e1": "a76b8ea74406eb31 8:-1.7785881480420418:-95.92343373857952",
    "exec/longshort_beta/b1/m20/s0e1": "7c0e8caf06487a49 8:-0.5929066096062547:-146.18004968142142",
    "gate/notional_tight/b1/m20/s0e0": "28ab54e28292c548",
    "exec/notional_tight/b1/m20/s0e0": "38b1c9bd95435bcd",
    "gate/notional_tight/b1/m20/s1e0": "cd51801767fc7c5c 8:-6.711570646201234:-317.7312576607122",
    "exec/notional_tight/b1/m20/s1e0": "ae626c46bf233b35 8:-1.011013770799676:-154.78660371676432",
    "gate/notional_tight/b1/m20/s0e1": "88f082de689c3ad9 8:-0.8970691449944047:276.76363990538925",
    "exec/notional_tight/b1/m20/s0e1": "f6592076cee9ed2c 8:-0.5964407584516005:-115.09429066965568",
    "gate/longonly_beta_notional/b1/m20/s0e0": "bbfde1c01e7ca2cb 8:-1.821445444658134:-121.49776518578032",
    "exec/longonly_beta_notional/b1/m20/s0e0": "090225ce0d7d3e82 8:0.9311111469405354:-163.1491398525701",
    "gate/longonly_beta_notional/b1/m20/s1e0": "7745eb015a02c71b 8:-3.0248567865284692:-202.91043572336005",
    "exec/longonly_beta_notional/b1/m20/s1e0": "e7fe05d259fbc548 8:-0.22301017098913756:-154.3720109629313",
    "gate/longonly_beta_notional/b1/m20/s0e1": "cd15383f9e01c6f1 8:-1.0368770174645512:-96.9348657162556",
    "exec/longonly_beta_notional/b1/m20/s0e1": "1b71e72c80d74ae4 8:1.7255990080331365:-161.1099396338006",
    "gate/reduce_only/b1/m20/s0e0": "b7bec3d05d2dc665 8:-3.5532789881763787:-139.92872816658564",
    "exec/reduce_only/b1/m20/s0e0": "bb3d57313ce9c15a",
    "gate/reduce_only/b1/m20/s1e0": "7c8de03269d756f0 8:-4.517826854796517:-233.71431155204235",
    "exec/reduce_only/b1/m20/s1e0": "fcf36206d80c7e4c",
    "gate/reduce_only/b1/m20/s0e1": "68828390313eac0e 8:-0.8299738342165771:-42.414782112421165",
    "exec/reduce_only/b1/m20/s0e1": "d7e60ff3e4a9193e",
    "gate/kill/b1/m20/s0e0": "d6445dca3b6e19b7 8:-0.7835392376782327:-46.09352031424129",
    "exec/kill/b1/m20/s0e0": "d8b6e9dbf257cd9e",
    "gate/kill/b1/m20/s1e0": "d61ae447091eb797 8:-2.1234680970460396:-124.26990657172922",
    "exec/kill/b1/m20/s1e0": "e398c3b86aaaf7ef",
    "gate/kill/b1/m20/s0e1": "caec15aade3720ad 8:-0.677116820279465:-40.33176461698393",
    "exec/kill/b1/m20/s0e1": "057351059c40ef15",
    "gate/default/b1/m53/s0e0": "359b69d0c0f54b73",
    "exec/default/b1/m53/s0e0": "78162295a75cf780",
    "gate/default/b1/m53/s1e0": "116433d699295052 8:-6.26704007403412:-321.31051446934197",
    "exec/default/b1/m53/s1e0": "8106bedd4c1cf362 8:-2.4414990178364664:-129.04526066511664",
    "gate/default/b1/m53/s0e1": "3176c7104738a3de 8:-2.863730862850942:-148.2423299058324",
    "exec/default/b1/m53/s0e1": "3e0d492402ea225e 8:-0.8282129982330402:-133.47952317880393",
    "gate/longshort_beta/b1/m53/s0e0": "1c41defdb71bd024 8:-4.405537212506259:-185.73758361747917",
    "exec/longshort_beta/b1/m53/s0e0": "2e79d4ef1c67b2fd 8:-0.6266017531131721:-130.01000280457558",
    "gate/longshort_beta/b1/m53/s1e0": "0c99b081915eeb3c 8:-6.912590501913113:-349.09902505620175",
    "exec/longshort_beta/b1/m53/s1e0": "183324ef0765f682 8:0.9583705441191008:-142.31119404222238",
    "gate/longshort_beta/b1/m53/s0e1": "6ddc804102136f8f 8:-0.8389464629978194:280.48314152317187",
    "exec/longshort_beta/b1/m53/s0e1": "3a433b82713af898 8:0.09904211414023331:-113.94030481498304",
    "gate/notional_tight/b1/m53/s0e0": "32781a14808dd17e 8:-2.8098672945722054:-124.46542663339471",
    "exec/notional_tight/b1/m53/s0e0": "c748b4d176fb5b1c",
    "gate/notional_tight/b1/m53/s1e0": "7c55e03f1b637885 8:-3.7207891686050463:-198.74387275847766",
    "exec/notional_tight/b1/m53/s1e0": "928266ca3529047b",
    "gate/notional_tight/b1/m53/s0e1": "32663ae1da16abdf 8:-5.5235009324194815:851.7308558788903",
    "exec/notional_tight/b1/m53/s0e1": "cba5e7b1449d06ea 8:1.362636669367037:-164.92321125471182",
    "gate/longonly_beta_notional/b1/m53/s0e0": "b1c6e9a207b088fb 8:-2.937705430255828:-147.87499291622123",
    "exec/longonly_beta_notional/b1/m53/s0e0": "019a91684c8a2c83 8:0.2469352400018528:-135.25518930415933",
    "gate/longonly_beta_notional/b1/m53/s1e0": "395adeaef38acf25 8:-4.960141726109729:-280.8081899198318",
    "exec/longonly_beta_notional/b1/m53/s1e0": "fc3b036e14805ed7 8:0.03420057247432796:-138.39877174355334",
    "gate/longonly_beta_notional/b1/m53/s0e1": "8136aa6a33b93ba0 8:-5.563586169297508:1170.6094826539586",
    "exec/longonly_beta_notional/b1/m53/s0e1": "f4320af091390d3e 8:1.6744239136629506:-129.65004803142133",
    "gate/reduce_only/b1/m53/s0e0": "3cb69c4c89804594 8:-0.7883745574468127:-42.52981119413205",
    "exec/reduce_only/b1/m53/s0e0": "44587f850fb4911c",
    "gate/reduce_only/b1/m53/s1e0": "feecb500f73d0411 8:-1.9318478051861077:-133.03057846011512",
    "exec/reduce_only/b1/m53/s1e0": "b8287f56ffc0bb50",
    "gate/reduce_only/b1/m53/s0e1": "7b2c3706a9572518 8:-0.6353876665599933:301.72377199233625",
    "exec/reduce_only/b1/m53/s0e1": "12b2ba36c604269a",
    "gate/kill/b1/m53/s0e0": "97ee4cba2951caf0 8:-0.5487312522070376:-39.8144901023291",
    "exec/kill/b1/m53/s0e0": "e51cc0f1a51d0f7d",
    "gate/kill/b1/m53/s1e0": "ea288fbef43b5424 8:-1.9625986139737077:-134.86387404827644",
    "exec/kill/b1/m53/s1e0": "3822cf95229bfe11",
    "gate/kill/b1/m53/s0e1": "df68a97dd68c3c1e 8:-0.526156494581315:-45.915783991547336",
    "exec/kill/b1/m53/s0e1": "9950473cf7851d9f",
    "gate/default/b7/m1/s0e0": "362bd6efb1ab2dc2 8:-0.07358402275039488:-132.8748420279545",
    "exec/default/b7/m1/s0e0": "b12acc294cb01d01 8:-1.5586598526097306:-165.2562624339322",
    "gate/default/b7/m1/s1e0": "e6975a9e2f001f32 8:-2.703216393733848:-252.57330792351945",
    "exec/default/b7/m1/s1e0": "db3ebb5a4cb7e110 8:-0.7489644106484563:-149.43423143148294",
    "gate/default/b7/m1/s0e1": "d0d6eb6b0c42fbb1 8:-1.4262435278348837:-110.11850464469072",
    "gate/longshort_beta/b7/m1/s0e0": "c125d193ca71e60e 8:-1.706524803535955:-115.26814167689679",
    "exec/longshort_beta/b7/m1/s0e0": "a1321bab7922fffc 8:-4.889113381380824:-155.6942141504817",
    "gate/longshort_beta/b7/m1/s1e0": "7b8a4e22fc0153f4 8:-1.3965983274052858:-227.2440249725403",
    "exec/longshort_beta/b7/m1/s1e0": "11152f022745e6cf 8:0.545313803289548:-130.18444740610076",
    "gate/longshort_beta/b7/m1/s0e1": "0751e3a8e5a6a172 8:0.654367581142878:-137.52159303891702",
    "gate/notional_tight/b7/m1/s0e0": "e82e22789138b691 8:-0.23637426960815863:-151.5971094972137",
    "exec/notional_tight/b7/m1/s0e0": "a71e2a38bb330598 8:-0.587264317378724:-147.0900529439424",
    "gate/notional_tight/b7/m1/s1e0": "be3ab08180061ef2 8:-2.080643527556913:-274.4635043491913",
    "exec/notional_tight/b7/m1/s1e0": "9a6553279cdc8397 8:2.1582888264282523:-162.65772674799848",
    "gate/notional_tight/b7/m1/s0e1": "0181e4b0f46a9af7 8:-0.9656996423495312:893.5895974147095",
    "gate/longonly_beta_notional/b7/m1/s0e0": "b1bdcb912c2694e3 8:-0.2332355284230677:-160.63671027549245",
    "exec/longonly_beta_notional/b7/m1/s0e0": "42d0ef3376662b9b 8:2.6546313090864055:-145.05592395199693",
    "gate/longonly_beta_notional/b7/m1/s1e0": "6db48c3ac8073c86 8:-0.28110311329687837:-275.5429346821767",
    "exec/longonly_beta_notional/b7/m1/s1e0": "6fd1bcc0894f5ec3 8:-0.010103395789939296:-151.86319165605445",
    "gate/longonly_beta_notional/b7/m1/s0e1": "039164c7f957dd31 8:0.7114803574889068:219.49328309491227",
    "gate/reduce_only/b7/m1/s0e0": "bc19eebdca51ce08 8:0.603707553567053:-62.09144528376865",
    "exec/reduce_only/b7/m1/s0e0": "05bf6223049865bf",
    "gate/reduce_only/b7/m1/s1e0": "6f3528195c4de1ae 8:-1.442218529943993:-199.81528124557747",
    "exec/reduce_only/b7/m1/s1e0": "71ce42f13f66caa3",
    "gate/reduce_only/b7/m1/s0e1": "45db5f5414b36273 8:1.0173456116117556:-84.78219825961094",
    "gate/kill/b7/m1/s0e0": "99b3fd7b7a3a1b1a 8:0.4346362591454662:-37.857482738522386",
    "exec/kill/b7/m1/s0e0": "eaeccb23963d64fc",
    "gate/kill/b7/m1/s1e0": "5876c2ea7e02fca5 8:-0.1944043521121418:-118.33933509699133",
    "exec/kill/b7/m1/s1e0": "698b59073617254c",
    "gate/kill/b7/m1/s0e1": "b36ab2eb2296637a 8:0.015515724913791093:-39.779268941709454",
    "gate/default/b7/m20/s0e0": "1d8b1bcd77b5e121 8:1.193020394577173:-189.77738989499912",
    "exec/default/b7/m20/s0e0": "c81926dedc4cb5a1 8:-0.21605859296579433:-127.05311756094558",
    "gate/default/b7/m20/s1e0": "e24548680a701cd2 8:3.1687307608781854:-342.776119116913",
    "exec/default/b7/m20/s1e0": "17d8f7e84c0e5653 8:1.3890017047862981:-122.4865439246014",
    "gate/default/b7/m20/s0e1": "933546e29911f7bf 8:-2.2641902169849466:1155.3888502697307",
    "gate/longshort_beta/b7/m20/s0e0": "d04c3f239608eae1 8:-1.305028683648293:-192.97032572011594",
    "exec/longshort_beta/b7/m20/s0e0": "fbf9df455df76777 8:-0.13171026281920323:-120.49723168314199",
    "gate/longshort_beta/b7/m20/s1e0": "12bcc8fe6528bc33 8:-1.285263607507771:-315.14987833446946",
    "exec/longshort_beta/b7/m20/s1e0": "c1835111eac8613b 8:-0.7125136479258062:-118.12955457067562",
    "gate/longshort_beta/b7/m20/s0e1": "74b25fc207ee3c90 8:1.797846972880925:1546.5348577902073",
    "gate/notional_tight/b7/m20/s0e0": "2795f18da0e912c0 8:0.271933843850246:-226.56180190543273",
    "exec/notional_tight/b7/m20/s0e0": "c8fa2077f94868c2 8:1.3071776599123854:-140.31371613523586",
    "gate/notional_tight/b7/m20/s1e0": "742ad14a85a4103c 8:-2.1881144356326723:-391.81548414679327",
    "exec/notional_tight/b7/m20/s1e0": "cdd789696e144c53 8:0.9040341241590082:-138.23803940165038",
    "gate/notional_tight/b7/m20/s0e1": "3128ec452391ca83 8:-2.5035537751512345:182.57288823752995",
    "gate/longonly_beta_notional/b7/m20/s0e0": "c8fca546cfc6b02c 8:-0.9526640182575384:-285.6395562293319",
    "exec/longonly_beta_notional/b7/m20/s0e0": "4f615cfdac2412ec 8:0.414495244474857:-117.93154971016597",
    "gate/longonly_beta_notional/b7/m20/s1e0": "b1d445aaf1ac7941 8:-1.5118300317516096:-321.9189950510861",
    "exec/longonly_beta_notional/b7/m20/s1e0": "67d6195743191c7e 8:-0.9578002762803017:-121.99067435660086",
    "gate/longonly_beta_notional/b7/m20/s0e1": "38931ffbef86e2ab 8:-0.008724387765397856:738.9221706833137",
    "gate/reduce_only/b7/m20/s0e0": "8afa43320864f44b 8:-0.16669666918242682:-128.91571303812452",
    "exec/reduce_only/b7/m20/s0e0": "fdd38e99932d9c53",
    "gate/reduce_only/b7/m20/s1e0": "8a34515e77d7cd2e 8:0.355379985225932:-252.57155835002797",
    "exec/reduce_only/b7/m20/s1e0": "131aac539a163a2b",
    "gate/reduce_only/b7/m20/s0e1": "50e5250a880f571c 8:-0.04946789152854131:189.5020965898625",
    "gate/kill/b7/m20/s0e0": "3818a7856ae2af9c 8:-0.31877507748928935:-39.59108465761061",
    "exec/kill/b7/m20/s0e0": "6051b2edbab119cf",
    "gate/kill/b7/m20/s1e0": "d6b627dca9777707 8:-0.5684766655758974:-116.49595848381502",
    "exec/kill/b7/m20/s1e0": "00acff9aa3b4ccfa",
    "gate/kill/b7/m20/s0e1": "c33fd1f1478e0ebb 8:-0.63708961066876:1010.2225530354364",
    "gate/default/b7/m53/s0e0": "58f8e03c60a4790c 8:-2.986855502584061:-195.31335238780963",
    "exec/default/b7/m53/s0e0": "f6a7443566ebe542 8:-0.31112161668579447:-122.79593718603263",
    "gate/default/b7/m53/s1e0": "36dce66ec36f9a15 8:-0.32257648504957903:-341.8371492721931",
    "exec/default/b7/m53/s1e0": "a00d9da0534a7179 8:0.15893118621536245:-118.7045432556038",
    "gate/default/b7/m53/s0e1": "5875a7e187c68a6f 8:1.9984609224846268:1548.0272783680462",
    "gate/longshort_beta/b7/m53/s0e0": "0fe369538eee8f7e 8:-1.3519708021214807:-235.87726092852745",
    "exec/longshort_beta/b7/m53/s0e0": "0c7741c26eb3c184 8:1.5010367664794002:-123.25598833220259",
    "gate/longshort_beta/b7/m53/s1e0": "a9dc113c6502b11f 8:-1.8910772903893853:-342.565816516837",
    "exec/longshort_beta/b7/m53/s1e0": "4b931deb0ed408c5 8:-1.0811456027968926:-122.20177175134235",
    "gate/longshort_beta/b7/m53/s0e1": "068a8e08a6b74ce2 8:1.026641840887432:814.8142543201591",
    "gate/notional_tight/b7/m53/s0e0": "b98e53aed6ccaa7c 8:2.159329383088972:-266.3073345126683",
    "exec/notional_tight/b7/m53/s0e0": "fe70b50c2e494737 8:-0.6452758900436805:-143.43781722855343",
    "gate/notional_tight/b7/m53/s1e0": "335e755004309fde 8:-2.1553450945662354:-359.59734979764175",
    "exec/notional_tight/b7/m53/s1e0": "95888a1f4b734b3f 8:0.2745997395373717:-140.12682286786418",
    "gate/notional_tight/b7/m53/s0e1": "d58b595b84192d66 8:-4.567663728082662:792.9826420433143",
    "gate/longonly_beta_notional/b7/m53/s0e0": "55d8352164d241c3 8:1.7081939917603541:-313.3445283587291",
    "exec/longonly_beta_notional/b7/m53/s0e0": "34632f1e64040836 8:0.37117931736064713:-119.94620633858706",
    "gate/longonly_beta_notional/b7/m53/s1e0": "193e26d46bf64ec5 8:-0.516124686603316:-275.8114109182432",
    "exec/longonly_beta_notional/b7/m53/s1e0": "81467e8b3a89cd0a 8:0.3754506447504514:-123.48599276573556",
    "gate/longonly_beta_notional/b7/m53/s0e1": "f6ce31a17ac19a3d 8:0.3093888240065995:1614.6231560435403",
    "gate/reduce_only/b7/m53/s0e0": "92ffc941a2fe543d 8:0.4241562610386794:-169.72436824699656",
    "exec/reduce_only/b7/m53/s0e0": "036621e10dc88154",
    "gate/reduce_only/b7/m53/s1e0": "c6522e80d6c2a096 8:-2.700664154820845:-248.63534154077612",
    "exec/reduce_only/b7/m53/s1e0": "cde39473d7775665",
    "gate/reduce_only/b7/m53/s0e1": "5e5978319eb9918e 8:-3.0884155438435603:1218.303813945863",
    "gate/kill/b7/m53/s0e0": "ee512d1c3d2bf801 8:0.03240529649940618:-36.94605485236308",
    "exec/kill/b7/m53/s0e0": "a8bfc8555f227109",
    "gate/kill/b7/m53/s1e0": "c536f4a27d8d2e8d 8:-0.49683330337421827:-115.41184515029289",
    "exec/kill/b7/m53/s1e0": "cadc26ec8a20d541",
    "gate/kill/b7/m53/s0e1": "3df7259530e6200e 8:0.3299428927950019:1012.7074596852244",
    "gate/default/b64/m1/s0e0": "2f2ee15416a0c19b 8:0.45838939042605387:-191.42180543418556",
    "exec/default/b64/m1/s0e0": "78275b34cd90a571 8:0.33197133188127825:-117.81816620800937",
    "gate/default/b64/m1/s1e0": "dad517821c3423e6 8:1.0368316660899934:-317.6817165997004",
    "exec/default/b64/m1/s1e0": "85ff7d362056709b 8:1.4988111866978497:-129.52369870279782",
    "gate/default/b64/m1/s0e1": "0b61755a949804d0 8:0.15228504162778095:837.1022783832277",
    "gate/longshort_beta/b64/m1/s0e0": "e4644d0f52f41d82 8:2.091316776880159:-164.1683457853761",
    "exec/longshort_beta/b64/m1/s0e0": "a2df8b9125f96ff2 8:0.15052333732672743:-123.23796153619638",
    "gate/longshort_beta/b64/m1/s1e0": "211d0236d52f67dc 8:0.07622317398948114:-292.7829097937639",
    "exec/longshort_beta/b64/m1/s1e0": "8b1282f3524782cd 8:-0.09272258182866736:-122.18753495703068",
    "gate/longshort_beta/b64/m1/s0e1": "7acf6935133597ea 8:0.5393458111592071:-185.16041180101303",
    "gate/notional_tight/b64/m1/s0e0": "04dbe3c67d18e3b2 8:2.451064364851149:-236.61351054697607",
    "exec/notional_tight/b64/m1/s0e0": "c2a2ebc3324333a7 8:0.44107355988327357:-137.30287087986702",
    "gate/notional_tight/b64/m1/s1e0": "f651a511d08327b4 8:0.6159982524421745:-368.30132809501964",
    "exec/notional_tight/b64/m1/s1e0": "21b5097c56ab1fd2 8:2.5954553157244957:-130.08225325207093",
    "gate/notional_tight/b64/m1/s0e1": "33d0baf9c69ee3d2 8:1.3571693878488655:1125.3836903326774",
    "gate/longonly_beta_notional/b64/m1/s0e0": "8c6727958cca0730 8:0.5556502452142345:-211.49137885069595",
    "exec/longonly_beta_notional/b64/m1/s0e0": "491aad348bfaf264 8:-2.446536859628198:-125.060720644165",
    "gate/longonly_beta_notional/b64/m1/s1e0": "ea00876bc296825c 8:0.5024598180875997:-320.97209525294295",
    "exec/longonly_beta_notional/b64/m1/s1e0": "ed44b76481ab2bb0 8:0.392838353960205:-122.98636367746505",
    "gate/longonly_beta_notional/b64/m1/s0e1": "83c8722e894bd00b 8:1.2133345822199844:-233.53911970341136",
    "gate/reduce_only/b64/m1/s0e0": "1cfaec1bb15dd2fd 8:0.8184388911850904:-105.66883773011509",
    "exec/reduce_only/b64/m1/s0e0": "7eef76cda3fa1728",
    "gate/reduce_only/b64/m1/s1e0": "76a2dad7a9cf5962 8:1.1313968388805442:-199.66013090116368",
    "exec/reduce_only/b64/m1/s1e0": "5fff180efd8af8cc",
    "gate/reduce_only/b64/m1/s0e1": "b5a70940ecaa2bb0 8:0.8380732596142596:1293.859524294759",
    "gate/kill/b64/m1/s0e0": "b5e0b3c10b97736e 8:0.2963707892350899:-33.71015082572355",
    "exec/kill/b64/m1/s0e0": "e3ae669b8c4becf9",
    "gate/kill/b64/m1/s1e0": "846f75e232071fdd 8:0.4577584827035959:-101.72284054401099",
    "exec/kill/b64/m1/s1e0": "a8d2e148a4327df5",
    "gate/kill/b64/m1/s0e1": "b2a20307bde3ee1d 8:-0.1476047563415008:1012.0143125046645",
    "gate/default/b64/m20/s0e0": "fcecc09776c6c167 8:0.9454382317451641:-262.59756284734414",
    "exec/default/b64/m20/s0e0": "b2dd8d405c1f7312 8:0.5610160024658932:-102.81173797164344",
    "gate/default/b64/m20/s1e0": "f31f61046502fef5 8:-0.5923668984876925:-398.8493012335561",
    "exec/default/b64/m20/s1e0": "2a28d645f650c4ea 8:0.3944512808005632:-99.06199223893364",
    "gate/default/b64/m20/s0e1": "0f376464c0872f5a 8:0.6470253502320473:1791.581357495143",
    "gate/longshort_beta/b64/m20/s0e0": "f1ff1733c319ebc5 8:0.9429243064202304:-244.81353580578144",
    "exec/longshort_beta/b64/m20/s0e0": "6519cc6e10b02c0a 8:0.019774282732150157:-102.0661029868342",
    "gate/longshort_beta/b64/m20/s1e0": "f6e7d9d984255b46 8:-0.046595146870841125:-347.0599880462663",
    "exec/longshort_beta/b64/m20/s1e0": "bd64438b653a9b66 8:0.46004158565018577:-98.95188944844006",
    "gate/longshort_beta/b64/m20/s0e1": "149664caede04b9c 8:1.1950663518460747:1473.4672775556824",
    "gate/notional_tight/b64/m20/s0e0": "8cbc88870a079622 8:0.04371743145126566:-256.68756707357215",
    "exec/notional_tight/b64/m20/s0e0": "386ecd245cfa4584 8:0.5605681644443827:-117.35184179809258",
    "gate/notional_tight/b64/m20/s1e0": "b3b915d2686a5c99 8:1.230000815528602:-450.5290634078385",
    "exec/notional_tight/b64/m20/s1e0": "d66ad1bcea189ed5 8:0.00504078867161847:-117.67154977945363",
    "gate/notional_tight/b64/m20/s0e1": "7981fb945f74bd05 8:1.325521037676033:1458.4576794059776",
    "gate/longonly_beta_notional/b64/m20/s0e0": "83adc3789ee55b25 8:1.658148170640798:-310.109470159855",
    "exec/longonly_beta_notional/b64/m20/s0e0": "8121abc50d8f0cc7 8:0.4244865075626344:-104.11034845571353",
    "gate/longonly_beta_notional/b64/m20/s1e0": "e14d0ed4acb7c93f 8:-0.6058092657290725:-383.8339493099969",
    "exec/longonly_beta_notional/b64/m20/s1e0": "ba051df49c72994b 8:0.39389591935468793:-103.96248251302325",
    "gate/longonly_beta_notional/b64/m20/s0e1": "cdd5752a6fcaee05 8:-1.4857314715093513:2093.1620027269255",
    "gate/reduce_only/b64/m20/s0e0": "49d490697776d21b 8:0.8944305485219904:-155.87995563798975",
    "exec/reduce_only/b64/m20/s0e0": "5f362af2e92c3d93",
    "gate/reduce_only/b64/m20/s1e0": "c181b98269d2beaf 8:0.6322455360782273:-243.18596950886263",
    "exec/reduce_only/b64/m20/s1e0": "a8e06b7744a2d423",
    "gate/reduce_only/b64/m20/s0e1": "5c4b0702857a1e1e 8:0.5153103143563164:1902.9898867514917",
    "gate/kill/b64/m20/s0e0": "d2377e2fd81ada28 8:0.02474182638564912:-33.90166753514647",
    "exec/kill/b64/m20/s0e0": "83db4cf9884664e8",
    "gate/kill/b64/m20/s1e0": "753172187e9002bf 8:0.0902555631713845:-101.55565230538872",
    "exec/kill/b64/m20/s1e0": "935fbcd14f47cabd",
    "gate/kill/b64/m20/s0e1": "c90a6797ef9ae34d 8:-0.17814669744990416:1016.1197069030732",
    "gate/default/b64/m53/s0e0": "1674e5dfdfe8fd0c 8:1.3031072883289097:-233.77003933162274",
    "exec/default/b64/m53/s0e0": "4b6e06c185945e84 8:-0.1324815532246004:-99.97245710785752",
    "gate/default/b64/m53/s1e0": "5338ba27931fa8e6 8:1.2384379513028723:-374.17058430417717",
    "exec/default/b64/m53/s1e0": "c27a59f3c67775b9 8:1.2468313159306044:-101.80109837646563",
    "gate/default/b64/m53/s0e1": "c66c13a16addf2a5 8:0.12138700130373256:2121.000545720666",
    "gate/longshort_beta/b64/m53/s0e0": "041499292fb82a42 8:0.2943987198565704:-230.771839405216",
    "exec/longshort_beta/b64/m53/s0e0": "98dfc58978bb9630 8:-0.255062289710639:-99.87025531201962",
    "gate/longshort_beta/b64/m53/s1e0": "a73f71268d793ea0 8:0.7007600535396818:-347.72301201683405",
    "exec/longshort_beta/b64/m53/s1e0": "42d06cb7d6cbe261 8:-0.7628381553834627:-101.23536227986088",
    "gate/longshort_beta/b64/m53/s0e1": "cbb5af99768ff5bd 8:1.3763034378804013:1828.206113469518",
    "gate/notional_tight/b64/m53/s0e0": "9eaf1670fdeb30df 8:-0.6415971343781182:-255.1734707784745",
    "exec/notional_tight/b64/m53/s0e0": "07368e02115e2985 8:-0.001155254337053718:-120.9063153665765",
    "gate/notional_tight/b64/m53/s1e0": "c4b0985807587c88 8:0.19732869440490738:-365.29214479714415",
    "exec/notional_tight/b64/m53/s1e0": "822f72e7decfb67a 8:0.010927724999680297:-120.84333942733855",
    "gate/notional_tight/b64/m53/s0e1": "8f1e882f34c0c5d1 8:0.732054684176934:1805.6184635748082",
    "gate/longonly_beta_notional/b64/m53/s0e0": "2dbd45bbf966260e 8:1.0874347738065344:-277.0832566518857",
    "exec/longonly_beta_notional/b64/m53/s0e0": "8c131f878fdb8778 8:-0.48298992788105477:-102.25756317079461",
    "gate/longonly_beta_notional/b64/m53/s1e0": "52c7ec33199d1d91 8:-0.2742589961048164:-308.3229472094577",
    "exec/longonly_beta_notional/b64/m53/s1e0": "3e989e8b8d98a547 8:-0.2853698264968196:-106.08154641192152",
    "gate/longonly_beta_notional/b64/m53/s0e1": "570c85a2208938c1 8:2.722826291324601:1728.5213905563764",
    "gate/reduce_only/b64/m53/s0e0": "1d3cae65635b085a 8:0.09704346954577409:-151.79211190470582",
    "exec/reduce_only/b64/m53/s0e0": "fb346ee28498fa74",
    "gate/reduce_only/b64/m53/s1e0": "5edc2537d5bea0f9 8:1.1828064591815433:-267.6645596215357",
    "exec/reduce_only/b64/m53/s1e0": "a9b8efc75ebf03e2",
    "gate/reduce_only/b64/m53/s0e1": "c9d707f468a8f5ab 8:-0.9009352009994192:1566.088976370336",
    "gate/kill/b64/m53/s0e0": "02a1484ce11bd397 8:0.21676190445293853:-33.5671770579146",
    "exec/kill/b64/m53/s0e0": "72140053ca3b7fe1",
    "gate/kill/b64/m53/s1e0": "fe92caa469829091 8:0.08535604946811513:-102.8546678662042",
    "exec/kill/b64/m53/s1e0": "782ca2549ac4f304",
    "gate/kill/b64/m53/s0e1": "69f36d036ad70026 8:0.12961066021696732:1018.2536132156771",
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
    "env/weights/base/b1/m1": "d7bf77c8db876bb4 8:-5.27728212585363:-1033.993752680084",
    "env/weights/base/b7/m1": "e856e155cbbcbdfa 8:-1.3293918309635246:-923.8832480139139",
    "env/weights/base/b64/m1": "a2ae82080ef3f8b8 8:0.5419380755444076:-797.4815058230295",
    "env/weights/base/b1/m20": "1dd339fc6184cefe 8:-4.761043625054597:-1030.3024670820944 4:0.037309339753084744:-41.55223404682466",
    "env/weights/base/b7/m20": "14aaa6c1af7a5649 8:-1.0298879732230461:-911.055203441012 4:0.01848996537792926:-35.70705111683377",
    "env/weights/base/b64/m20": "3a7a6546d4937942 8:0.20742623226933712:-775.7489611025909 4:0.0019480379813858902:-29.06530501796489",
    "env/weights/base/b1/m53": "64e603fcdfab8dd6 8:-3.4683441744268375:-1055.1525829658128 4:-0.02144187619552997:-38.641173721648784",
    "env/weights/base/b7/m53": "c048444559835df6 8:-0.8906187827792895:-931.171128833484 4:0.011087529279574813:-32.88077669044711",
    "env/weights/base/b64/m53": "84e8ed9bd25d5b2e 8:0.201969993383604:-792.0332251420681 4:0.00440306401768233:-26.238131905971365",
    "env/weights/longshort/b7/m20": "1b75d9b620946fb6 8:-0.5581441591061831:-1008.7410027243394 4:-0.0014590623123091563:-35.71578280818301",
    "env/weights/kill_lots/b7/m20": "3db215e4898d15f0 8:-1.1221924418897486:-962.8054092103389 4:-0.0038988482104100786:-35.668543565320476",
    "env/weights/base/b7/m90": "dc47652da1db43b1 8:-1.6819488171135126:-898.106485716313 4:0.00674422443200889:-33.4085476034487",
    "env/budgets/base/b1/m1": "4226ec5907333b82 8:-4.347657692455046:-1225.3193636378364",
    "env/budgets/base/b7/m1": "44b80e1252be14fc 8:-1.8153003967331416:-1093.0870878600035",
    "env/budgets/base/b64/m1": "e0ab050509cb5084 8:0.46811991638644784:-941.7178460980467",
    "env/budgets/base/b1/m20": "a04f748c9ce67031 8:-5.455091517182161:-1231.6163442843558 4:0.03734614070736259:-41.55258291169768",
    "env/budgets/base/b7/m20": "ef1c25c43f3a0e46 8:-1.171574355927536:-1090.2559800669042 4:0.018442192660178408:-35.7075670448386",
    "env/budgets/base/b64/m20": "8d4698849bb7efe3 8:0.404341244451058:-930.6114495786317 4:0.0019541052400663134:-29.06575059729837",
    "env/budgets/base/b1/m53": "aea4955598569d40 8:-4.266823711148088:-1267.0397247080477 4:-0.021437171317308122:-38.64162346217383",
    "env/budgets/base/b7/m53": "78b35e9538778ca9 8:-1.0166246389034774:-1120.1601438769776 4:0.011092621898156928:-32.88120966299324",
    "env/budgets/base/b64/m53": "ca4cc368e670368f 8:0.02599419164129753:-955.940758811434 4:0.004404955038069045:-26.238549636179947",
    "env/budgets/longshort/b7/m20": "7e03039bf9c92f17 8:-0.9960009233380789:-1191.5008632887261 4:-0.0014728677064248762:-35.71671023565692",
    "env/budgets/kill_lots/b7/m20": "8b2e9d562f981116 8:-1.2349734615243255:-1142.2519695319213 4:-0.0028526618529594603:-35.668459837514966",
    "env/budgets/base/b7/m90": "18525aeb07c17a83 8:-1.9500095329405038:-1098.9326032235147 4:0.0067672057771874065:-33.40879756480722",
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
    from allocgym.compiled.env import reason_summary
    from allocgym.envs import REASON_CODES

    rng = np.random.default_rng(12)
    bits = np.array([int(c) for c in REASON_CODES], dtype=np.int64)
    for b, m in ((1, 20), (7, 20), (64, 20), (300, 53), (50, 1)):
        r = (rng.random((b, m, bits.size)) < 0.2) @ bits
        naive = np.stack([((r & bit) != 0).sum(axis=1) for bit in bits], axis=1)
        index = np.array([int(bit).bit_length() - 1 for bit in bits], dtype=np.int64)
        got = reason_summary(r, np.zeros(b, np.int64), index, 0)[0]
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
