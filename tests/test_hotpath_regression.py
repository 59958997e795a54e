"""Bit-exact regression corpus of the hot path: gates, execution, costs, observation, env.

The digests below were recorded on the code *before* the hot-path optimisation (numpy-call
trimming in ``risk``, ``execution``, ``costs``, ``features.observation`` and
``envs/core``) and the optimised code reproduces them. Every array each stage returns is
hashed (sha256 of dtype, shape and bytes) on fixed seeds, over batch sizes 1, 7, 64 and
universes of 1, 20 and 53 symbols (90 for the large-universe CVaR path), with corrupt
inputs, kill / reduce-only flags, strategy contributions, lot sizes and triggers, and
env rollouts in both action modes: an optimisation that moves a single bit fails here.

The env digests also depend on the modules the env calls (actions, intents, features,
regime, measures, config defaults). After an intended change that moves bits, check it
separately, then regenerate from the changed code: ``python tests/test_hotpath_regression.py``
prints the new table. The digests hold for the platform they were recorded on (numpy
version and the CPU features numpy dispatches on: its SIMD transcendental kernels may
differ by an ulp elsewhere); on another platform those tests skip. The shortcut tests at
the end check the exact shortcuts of the optimised code against their definitions and
run everywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from allocgym.config import config_from_dict
from allocgym.costs import CostModel, cost_terms, expected_cost
from allocgym.data import synthetic
from allocgym.execution import ExecutionParams, ExecutionPolicy, Triggers
from allocgym.features import FeatureBuilder
from allocgym.regime import RegimeModel
from allocgym.risk import GateContext, RiskGateChain, RiskLimits

BATCHES = (1, 7, 64)
UNIVERSES = (1, 20, 53)


# ----------------------------------------------------------------------------- hashing


class _Hasher:
    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def add(self, name: str, value: Any) -> None:
        self.h.update(name.encode())
        if value is None:
            self.h.update(b"<None>")
        elif isinstance(value, dict):
            for k in value:  # insertion order is part of the contract
                self.add(f"{name}.{k}", value[k])
        elif isinstance(value, list | tuple) and not isinstance(value, np.ndarray):
            for i, v in enumerate(value):
                self.add(f"{name}[{i}]", v)
        elif isinstance(value, np.ndarray) or np.isscalar(value):
            a = np.asarray(value)
            self.h.update(f"{a.dtype.str}{a.shape}".encode())
            self.h.update(np.ascontiguousarray(a).tobytes())
        else:
            self.h.update(repr(value).encode())

    def add_dataclass(self, name: str, obj: Any) -> None:
        for f in dataclasses.fields(obj):
            self.add(f"{name}.{f.name}", getattr(obj, f.name))

    def hexdigest(self) -> str:
        return self.h.hexdigest()


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


def gate_and_execution_digests() -> dict[str, str]:
    out: dict[str, str] = {}
    for key, proposed, ctx, limits in _gate_cases():
        res = RiskGateChain(limits).apply(proposed, ctx)
        h = _Hasher()
        h.add_dataclass("gate", res)
        out[key] = h.hexdigest()
        if "/e1" in key or not np.isfinite(ctx.current_weights).all():
            continue  # execution requires finite books (the gates replace bad ones)
        b, m = proposed.shape
        rng = np.random.default_rng(len(out))
        h = _Hasher()
        for variant in range(3):
            lim = None if variant == 1 else limits
            pol = ExecutionPolicy(_exec_params(rng, m, variant), lim)
            ex = pol.apply(res, ctx, _triggers(rng, b, m, variant))
            h.add_dataclass(f"exec{variant}", ex)
        out["exec/" + key[5:]] = h.hexdigest()
    return out


# ----------------------------------------------------------------------------- costs, observation


def cost_digests() -> dict[str, str]:
    out: dict[str, str] = {}
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
            h = _Hasher()
            for i, cm in enumerate(models):
                h.add(f"ec{i}", expected_cost(trade, eq, adv, vol, spread, cm))
                h.add(f"ec_scalar{i}", expected_cost(trade, 1e6, adv[0], vol[0], spread[0], cm))
                h.add(f"ct{i}", cost_terms(trade, eq, adv, vol, spread, cm))
            out[f"cost/b{b}/m{m}"] = h.hexdigest()
    return out


def observation_digests() -> dict[str, str]:
    cfg = config_from_dict({})
    market = synthetic(n_assets=9, n_days=420, seed=3, n_sectors=3)
    fb = FeatureBuilder(cfg.features, RegimeModel(cfg.regime))
    feats = fb.precompute(market)
    rng = np.random.default_rng(9)
    out: dict[str, str] = {}
    for b in BATCHES:
        rows = rng.integers(fb.history - 1, market.n_days, b)
        w = rng.normal(0, 0.5, (b, 9))
        w[rng.random((b, 9)) < 0.05] = 7.0
        dd = rng.uniform(-0.1, 1.2, b)
        cash = rng.normal(0, 4, b)
        h = _Hasher()
        h.add("rows", fb.observation(feats, w, dd, cash, rows=rows))
        h.add("take", fb.observation(feats.take(rows), w, dd, cash))
        h.add("list", fb.observation(feats.take(rows), w.tolist(), dd.tolist(), cash.tolist()))
        out[f"obs/b{b}"] = h.hexdigest()
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


def _rollout(params: Any, b: int, n_steps: int, seed: int) -> str:
    from allocgym.envs import core

    rng = np.random.default_rng(seed)
    state, obs = core.reset(params, core.seed_keys(np.arange(b) + seed))
    h = _Hasher()
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
            h.add("metrics", json.dumps(metrics, sort_keys=True))
        state, reset_obs = core.autoreset(params, res.state, done)
        h.add("reset_obs", reset_obs)
    h.add_dataclass("final", state)
    return h.hexdigest()


def env_digests(n_steps: int = 200) -> dict[str, str]:
    from allocgym.envs import EnvParams

    out: dict[str, str] = {}
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


def all_digests() -> dict[str, str]:
    return {
        **gate_and_execution_digests(),
        **cost_digests(),
        **observation_digests(),
        **env_digests(),
    }


# ----------------------------------------------------------------------------- recorded

PLATFORM = "f2e5f20eecb4b95c"
DIGESTS: dict[str, str] = {
    "gate/default/b1/m1/s0e0": "dd188aa3a3ac61d56f050e7a06616d35a38e40d19a08f014434160af5b85cb36",
    "exec/default/b1/m1/s0e0": "e22036a459b8a6316c4a9e45652f47ee86d02113597d419cc040e50a069b3ac3",
    "gate/default/b1/m1/s1e0": "aa1eaf1b6790fda72799d6c7718efac31e6a3a08ed725aed71c37371ea47d1d6",
    "exec/default/b1/m1/s1e0": "e5fa41bd8d83f386b9820a63cad81b932d236da524d3315dfd12c8c6782859b4",
    "gate/default/b1/m1/s0e1": "bad6c5e226c84f0c16acf0ecf2de10bcb83c26cf10a72a9cc4887b7be0a6d899",
    "exec/default/b1/m1/s0e1": "cc3650bd8a90d090709b1ad6dcee74883b6f5f20155b4f5e0132967a203a7c6a",
    "gate/longshort_beta/b1/m1/s0e0": "a81d27e3b02dc11de61473f38ba598528ccd489862b76f23843b04fd086447ad",
    "exec/longshort_beta/b1/m1/s0e0": "13d03f1f9b501c288f1c16d6a62058447e9c6daf97d7b8f49e4f9255678ef965",
    "gate/longshort_beta/b1/m1/s1e0": "057432f7bad83e4e304f0786e60561c5d572a3012fc8b61aaeb69e2c66362c77",
    "exec/longshort_beta/b1/m1/s1e0": "24c9fc216d46b520d1e20a70c4fedb68bebe57256a1162d6204f8945899636c3",
    "gate/longshort_beta/b1/m1/s0e1": "f00465f5522a31576817e6c2b7486a779dccedfe141c9249de4c5d7a3b637866",
    "exec/longshort_beta/b1/m1/s0e1": "6a173959f450a00c5044c7b6d7270941594765144488b7740188330b0fc36e95",
    "gate/notional_tight/b1/m1/s0e0": "3732d1c6e7d3986a95e31b8f2d9f3c2c5b44e0406932ef9e182e26f49107df6f",
    "exec/notional_tight/b1/m1/s0e0": "a5121a5f455ffdc0cae6ae0eeb57c7de89db9fd5e5cd2573220fa43eb3399d58",
    "gate/notional_tight/b1/m1/s1e0": "02bc0a05e6e3fdc7e54c3aa123c0299dece5b30bfde13942c6134022c0c2a278",
    "exec/notional_tight/b1/m1/s1e0": "8a23c4fe01770e24916592b5b3f6619e262b1c85f90bf7e9337d6b16d1f070fd",
    "gate/notional_tight/b1/m1/s0e1": "dd99cd30507ae98e783b4a786f51457bd33e4451ff0400276a28edc18b95871d",
    "exec/notional_tight/b1/m1/s0e1": "faab987d6262bd6885c672731d1d439bd4eeabb40c654c625bceffd8d54bdc0b",
    "gate/longonly_beta_notional/b1/m1/s0e0": "8a4ceab18e8b29705911b02d847c8fbfd99e1acbe9f2484a45237b1cd9426194",
    "exec/longonly_beta_notional/b1/m1/s0e0": "b26547e810060b2789f191e8da48c31d63aa8677fe1258addfdbea53d24eae48",
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
    "exec/default/b1/m20/s0e0": "f83083588444704b7b599fd99ffbd0bf636d458f8b6ec795c2cb1f77d032a55b",
    "gate/default/b1/m20/s1e0": "180ed151ae3ea365f52258a7dd19297e3ec4554eb2b9bee5e0732cf28efdf6ee",
    "exec/default/b1/m20/s1e0": "2c3bd9ba1b6310e18128c8908e146d379a3a00e2a4d773c7481bbe97da0cf993",
    "gate/default/b1/m20/s0e1": "e0c3f5b59bfc283b13c50d4a7e41217037e8e87a15f26dd0bf504d6d9536fd1b",
    "exec/default/b1/m20/s0e1": "cd2a47041c4837516c1e479b956c7df1efb6b92043f7daa95e76ae48ffd83285",
    "gate/longshort_beta/b1/m20/s0e0": "0e8c44eacb366ca605c4f4c00c0926e8cb48bd6f115a3a88ebe471f264f22697",
    "exec/longshort_beta/b1/m20/s0e0": "f37f9b267f3f957ce778c51a30c552dc55385c62d6d591ef88d7e9f9775d261b",
    "gate/longshort_beta/b1/m20/s1e0": "fc36eafe0b7384b80e58d253cb4e75c72546bda06a4ebbd9a5b801c39ef13dc6",
    "exec/longshort_beta/b1/m20/s1e0": "309cb23767ac58b5f99ec0b35a5ab7b1574d44e0738a9cbd2a5e0168b7b4da1c",
    "gate/longshort_beta/b1/m20/s0e1": "cd0295bc720b547dbd1260ec6ea34dad87f63fd1038c2b25434cf488d942ea42",
    "exec/longshort_beta/b1/m20/s0e1": "c994b744ddb7c14f0a5ff5e6505240169ca6d272b61b1026268d4e4775dcffe2",
    "gate/notional_tight/b1/m20/s0e0": "20dc6cff219a963171be8ecd22a098e13d26b5d0f1e2d9644eff23c32d82c73e",
    "exec/notional_tight/b1/m20/s0e0": "1766f08218b85f720a0b453d93cc8cdfb54b583713f9ba37bbdae548f7512947",
    "gate/notional_tight/b1/m20/s1e0": "a6d4b2320c07044d9a84d4cdfdf50d161d2ae4d3c392895adc136b38a4e70b5c",
    "exec/notional_tight/b1/m20/s1e0": "ace88808cd9913024dd1f1db081d339d2a4251bc55e9d0b4cf94b6107a23c1b8",
    "gate/notional_tight/b1/m20/s0e1": "9d15f9a3da7e5013efc769462c6895c96ce1f621c4d0fdd05b27ffc4c209841f",
    "exec/notional_tight/b1/m20/s0e1": "f6601005e386c9b55dbb206da70761f926685f5ef64d5d261230b2134d729e98",
    "gate/longonly_beta_notional/b1/m20/s0e0": "ae57eba8242b917764b7c61350dd6e6d903ae7e29ddbc00ba53fd3363e983be9",
    "exec/longonly_beta_notional/b1/m20/s0e0": "d0f7905836b829e409507ea9e55f5b193d543fdd0354b2e40143210f3b56ac2f",
    "gate/longonly_beta_notional/b1/m20/s1e0": "04905dbfd7f7543bf59e130e1ae3b1ea34880d2827d5099e5b8758a93f32395e",
    "exec/longonly_beta_notional/b1/m20/s1e0": "76f93d724e0209012c70a6aeafc2828dc9ae47ae1f4bae2afbd6bea85f7ef176",
    "gate/longonly_beta_notional/b1/m20/s0e1": "c2e63b8a26a327d5aff5f49abc8b24a54b07807ccda9ab0f0010bfd4b5891bd3",
    "exec/longonly_beta_notional/b1/m20/s0e1": "598785f0619b490bc96d5d83f8e4b96bdbf8e4720a9e1505d1b75cc21857f93b",
    "gate/reduce_only/b1/m20/s0e0": "8d40e79875ea4dde2a7ce671fa9adc02dfefc7392e0779e293045505cfa3bb14",
    "exec/reduce_only/b1/m20/s0e0": "f221c6b5f9d527dc6a34cf2954ad7df509eac94d53a26557a108d11f304cac02",
    "gate/reduce_only/b1/m20/s1e0": "69d783025ce09ed17f8f316403d94409fece0182594f9865153cb7b5c564d3eb",
    "exec/reduce_only/b1/m20/s1e0": "a74fbc5459dc9e002a559c7786444d160f6f95a3a5f5dbe7458aafabb76c63a3",
    "gate/reduce_only/b1/m20/s0e1": "a5247351ed17e5fbced450653ce1121c988f98ede7c96cf0cbe23572da7a2c3e",
    "exec/reduce_only/b1/m20/s0e1": "5c117c92ef3b6232ea5366b5c9d61155bec1af753ec8a8a5d76a63697bdde6d7",
    "gate/kill/b1/m20/s0e0": "2d0b2066953274445c5c9033f4009d2db65108c2fd1c630e6b09ae110d28514e",
    "exec/kill/b1/m20/s0e0": "5a5d68b6e761902f7d304a754ebc3f560e6eb6d304a74f1293c471a777aa1c2c",
    "gate/kill/b1/m20/s1e0": "4ccf337693662fceca574b84b8d98436605205056a2d252b70c60d91fa600751",
    "exec/kill/b1/m20/s1e0": "574ffccfa1389fc8f845ddab851938af6e434c7196a7cf7ce48fafaa4b43f667",
    "gate/kill/b1/m20/s0e1": "91fb68dd4eba420c9083336eeaf46272647868b55e33297c78674058293a0d67",
    "exec/kill/b1/m20/s0e1": "0e12e6e0b4dfa853467138d6af73f59224a31c5eeb88a3e9930f280bf25b875e",
    "gate/default/b1/m53/s0e0": "1f24d0d1e8bbb021aaf30dccba566bb2721f3d7e9b5f7597c1da696f2ca932cc",
    "exec/default/b1/m53/s0e0": "62b0be42382933781579e70fb266888889f90d404e12ff3e6d2be792d64c068f",
    "gate/default/b1/m53/s1e0": "183319d2354364b08940001825246edebc1cbe147bad37a97db93979f274baac",
    "exec/default/b1/m53/s1e0": "060cc5fc4f3beb2a93585ceb9e1d265138786521747e22a1b074576748fcd213",
    "gate/default/b1/m53/s0e1": "c5b3ebcdb53c9b3732ebb4b9c7eb3a9f2928af3ae0bc2c71507e9407930a5c9f",
    "exec/default/b1/m53/s0e1": "523c7c9fc2503494ed055f9e8e976d967da3ef7cf53ae2d935b448e89396f6b4",
    "gate/longshort_beta/b1/m53/s0e0": "72bf7b77d78d2890675be398c5cf9067323e51556f89b195fb5389b8955de219",
    "exec/longshort_beta/b1/m53/s0e0": "23c6f511585eda29693fadd911b95a1e96479846650cce9716a1d65002e605e4",
    "gate/longshort_beta/b1/m53/s1e0": "601b642baca337fb4853d3f15dea08f5c14844f2e3f201329445c1835bcae060",
    "exec/longshort_beta/b1/m53/s1e0": "58822c6d3644bb92e97c0b2c8399621e1676a6a1819d372adfc6041760d87e70",
    "gate/longshort_beta/b1/m53/s0e1": "fb34e6d6961294cadbb1eb437a7fdaa4e62abaa712d43724007fbfba0418004c",
    "exec/longshort_beta/b1/m53/s0e1": "d6a775f868068c9f3e07b069351af76afc6d1fdfb82f46fd2534caee776f58c0",
    "gate/notional_tight/b1/m53/s0e0": "1cf3ee6d548e7beda8acfb71eb8c0b8f3b5605ab0cc8f7c16eb63f2addf25dff",
    "exec/notional_tight/b1/m53/s0e0": "2c60b70eef24d5a3458aff1e9a356f28cd6f2c4930fd29b2495aeb53472e6aec",
    "gate/notional_tight/b1/m53/s1e0": "870b12e31b0545ecea4315121078768842818503dd411fec498dd9dbe0d9eda3",
    "exec/notional_tight/b1/m53/s1e0": "19e40b18ff99f459a7d8ed8c3a4fa518851f63ef3595b6f715de7742d884ed20",
    "gate/notional_tight/b1/m53/s0e1": "00f02a106d30fb4ace05c54b12fd614117eb37690a2185dc1ff600079972cb1e",
    "exec/notional_tight/b1/m53/s0e1": "1526c6bbc881fce1f02683d81331362f4059224a0964bf061e38377518da5a52",
    "gate/longonly_beta_notional/b1/m53/s0e0": "27c19e66abd92a4840ba48ab61430d19b8e766c7445eac0f6fe0f3682f2833df",
    "exec/longonly_beta_notional/b1/m53/s0e0": "a17c60afc71a4f9aebdde15aa90267f20437f2de6d07674542933a0a3875c4e5",
    "gate/longonly_beta_notional/b1/m53/s1e0": "ca3bdaf49e77b47c40ce41270aa94cbfff472390c4daa1ef4eb1542bdb5cfa7d",
    "exec/longonly_beta_notional/b1/m53/s1e0": "6348eea2f48e193ae1f71d461ca11d9cd597178c42cf288062f86a525cb8b0f6",
    "gate/longonly_beta_notional/b1/m53/s0e1": "37f1d78ebc54bc7fbbef5718435e36a154f9c8b7fa11d824dd25e67edbb7f9c3",
    "exec/longonly_beta_notional/b1/m53/s0e1": "56cd4c821a340ff222f6934ad5779778af9f584a7f3f7a6c3a9fa347c1216fca",
    "gate/reduce_only/b1/m53/s0e0": "32a79807fe68e26f861b9deeca3c3894fc0eceda6097096191a35ce61aaf63a2",
    "exec/reduce_only/b1/m53/s0e0": "0170a3a6fe3be7293c667734395129dfc0b9e543a986181501d8d99f6dbbc7a9",
    "gate/reduce_only/b1/m53/s1e0": "493b950c3773cdb75e6f9f341894127df0bdba335ae0c3ae6fceeeae14800369",
    "exec/reduce_only/b1/m53/s1e0": "9d8d03e1c3d0cd6589e0f8ee5a22b2881baba9626ffbc82247a0dde5fa3bc431",
    "gate/reduce_only/b1/m53/s0e1": "e3d9a490cb0714d36e1ee7f8738674b908a02efceb7a38b19338d25ac17229a2",
    "exec/reduce_only/b1/m53/s0e1": "0a3476167e4a64eabeba0ff5e5d6055f365a7a1748632f5f14e64f9319b47083",
    "gate/kill/b1/m53/s0e0": "991693206a9223027495fa3bb6f64dd2625d6e71b88d0c897ca39bb64a0a026c",
    "exec/kill/b1/m53/s0e0": "76e9655513d8f492c6a2cef9f8dea0850e59385cd409ebdba9b3ad3ee088cba2",
    "gate/kill/b1/m53/s1e0": "bdfd25d2ab1c43fcb2c809f806b0f5630ba847245742c109104b19cf264c2e68",
    "exec/kill/b1/m53/s1e0": "efa8791bec5a51e289c00ed666d26e2b0654520acbcdd5716e6deab709019fd9",
    "gate/kill/b1/m53/s0e1": "e1754e894f6ab2cc967725d4d3c556a4051fa88ba7eb507658fe4ceba007dd1d",
    "exec/kill/b1/m53/s0e1": "0170a3a6fe3be7293c667734395129dfc0b9e543a986181501d8d99f6dbbc7a9",
    "gate/default/b7/m1/s0e0": "e32a738f392689abb1d335b3183d1f2710453a70e2f15bf604ab0bb209494d8a",
    "exec/default/b7/m1/s0e0": "866386f9b2f47a153062e38d073f7e862170c424c54288b0690715154f9fdecf",
    "gate/default/b7/m1/s1e0": "d220226dae9596a1e4ed38910a3ec49aa7462ebb0d1f13ec7c19ebef70176323",
    "exec/default/b7/m1/s1e0": "a6892e418af107d97bd22bf59deb3e69710178171f17fb4d80b0f5eb18941538",
    "gate/default/b7/m1/s0e1": "bf1d0ad6323b6ae7650523014c455bb61e338216d22beb0b46981a9002cf37fe",
    "gate/longshort_beta/b7/m1/s0e0": "057347a37885e7b7dfeec0fdbc6db7f1ef09bf3591feef4b2a54731f301a8055",
    "exec/longshort_beta/b7/m1/s0e0": "15d8138a1cb9d546c9f8b86418edae4567b5421218210c3dea2f579251d9a8c4",
    "gate/longshort_beta/b7/m1/s1e0": "3a423cd4c63f3030ce56f113ac8a52ebefff6080244bd535408b882d4b4b800e",
    "exec/longshort_beta/b7/m1/s1e0": "592255c914ed50365ccb7145c2469746314b87d1827d13fcb412ab7ff22bb619",
    "gate/longshort_beta/b7/m1/s0e1": "539c264a81b565e78e0e0740f9478ded47b393572d876ca3e2fe32845a7903ca",
    "gate/notional_tight/b7/m1/s0e0": "03a19f6858198b8160ad31a7f0ca35fd4d2e07e1078deee85d518f06aa791265",
    "exec/notional_tight/b7/m1/s0e0": "03261145e14c107fa2b380fb05c5f0e689e040d15457b9b4f74bf29c10e7ce46",
    "gate/notional_tight/b7/m1/s1e0": "fa5a0a7157046596a2d87f4a14527e8b17ca9aa0d0c63a96714f6e02c0e9fa56",
    "exec/notional_tight/b7/m1/s1e0": "26626756efddcacb824e6c2eaeae0d9d064aacbeb4248a063800be27062e31fa",
    "gate/notional_tight/b7/m1/s0e1": "9539b529eb98b02d664eeb41749e5a8b85771b8e62fb8c837dfd734ffbc8b59d",
    "gate/longonly_beta_notional/b7/m1/s0e0": "83435894110d0c5af31027fbdd57751865a54b6c66b0edfb2a6c66108f1fdb18",
    "exec/longonly_beta_notional/b7/m1/s0e0": "f26dce32976459b083d66a72143a8287a4ec89b8757ae87d4bacaec5e8fa19e2",
    "gate/longonly_beta_notional/b7/m1/s1e0": "e870e17864ca112d19af6b778e4038398e6ad7827cfc0c792314b35d77f2f0bc",
    "exec/longonly_beta_notional/b7/m1/s1e0": "7bc93ee80a64268ba3404a921e30e82fa9dbee4f237a88151f9711d63209f9b9",
    "gate/longonly_beta_notional/b7/m1/s0e1": "7a4f56ad2cbebba5fda37f42bf7b03104fa271acd4b009fbead1b81404330bbe",
    "gate/reduce_only/b7/m1/s0e0": "1fb7647104090da2c5d1ef2155859c29b3b13aac6cedb544c1ab344d0a8e5f0b",
    "exec/reduce_only/b7/m1/s0e0": "d03dea623ec9c611bd934627bb1c53ab8766bbff1bf891511e4b292ae2b98eaf",
    "gate/reduce_only/b7/m1/s1e0": "3b955ead2d0bed94ddcc2366ed4d38b9aeaa7b1a3fabefa97e8d00d3158140e0",
    "exec/reduce_only/b7/m1/s1e0": "4151c238b4d95292071815c59a971051a9c5f15c27ef01acf43304ffea20bcdf",
    "gate/reduce_only/b7/m1/s0e1": "b968e2c0d1ce01703d2dff9e3b1491a97b229df59426b6ea71a69d6f14314f51",
    "gate/kill/b7/m1/s0e0": "e6dea3ad0e95b4c6333f7d9ff67f434bf0471e3f1299b379f06eb8e978bbd2ad",
    "exec/kill/b7/m1/s0e0": "45a3f9102a7cd20fa25356b52490e7fe99429d72506a2d9079b15aa2ca36bd58",
    "gate/kill/b7/m1/s1e0": "734a127f992812f2220bb147050dc8574a6cf4ebedf81774c6da900ace19b65f",
    "exec/kill/b7/m1/s1e0": "ce5e8bffe1108fc8aab572d64c3ff459dec63799815ef62a66e4ecd40ed21df3",
    "gate/kill/b7/m1/s0e1": "1640319a307a8588341aedbcd6ad4da648c352501c1badb6205a09d5dd994217",
    "gate/default/b7/m20/s0e0": "ad5911322961544de3ef60872ba906b8a6aff556acbbf77d084499028c43e21b",
    "exec/default/b7/m20/s0e0": "1e8fd5b4a956ed42ca21e880455dfdbf99abd872366822a8b19a50bddaa8540f",
    "gate/default/b7/m20/s1e0": "7fdc63d7d137e577b900458b5f3a3f955854ed48bc4198c55f6d31ca100edac9",
    "exec/default/b7/m20/s1e0": "c6cdcf07d7283fa2eae0971cb32bfc0f1d93aa7dd42461d1555eaeaae65d8154",
    "gate/default/b7/m20/s0e1": "d58c133c9709ca3d437924fd0bf45c59ef5a7fd4fdf35f0c9d6b83181fa1faf0",
    "gate/longshort_beta/b7/m20/s0e0": "427f7578242e728499eb2b7bcd6ee4b3f2b02cda7d5eab01d725a4b733525eca",
    "exec/longshort_beta/b7/m20/s0e0": "6c24504a92dd963e2d1250b27fa6cc1023e692a6fd1220e9f0b2f6a74f21ac58",
    "gate/longshort_beta/b7/m20/s1e0": "e26332ef90b87d2259a74f464bf8b2bd7db5699543e516512278378e2382ad94",
    "exec/longshort_beta/b7/m20/s1e0": "345724b7905b7201025082d49bc770aea66b8d98c3ac3f1b2d1057e1989a71dd",
    "gate/longshort_beta/b7/m20/s0e1": "c36666bbacfec89b7d2a3b8b923f5c4726b7b53cfc6f0ad559926e4dacab2ba1",
    "gate/notional_tight/b7/m20/s0e0": "4646489997020673c5ef7de71f8d477a89d49366db8aa86b9ee9138cd356dc09",
    "exec/notional_tight/b7/m20/s0e0": "bbe43b6247c8f6c6a9188fb655200e7599fb5c0df1a644f195549ee8ac1b75a3",
    "gate/notional_tight/b7/m20/s1e0": "682855d0c933ad5d69fb9d2b8b1ccfabc7828a4d06714fa1968d4ff330017736",
    "exec/notional_tight/b7/m20/s1e0": "1215dffcfded6675282503a994108da57a151b6ed7cabfc413830c55bb6d0d38",
    "gate/notional_tight/b7/m20/s0e1": "c7ebdad9d875b94ad5ee5febf0dce454580f35908d50762ece5e8d9175604b66",
    "gate/longonly_beta_notional/b7/m20/s0e0": "b27cbb6aa54d0f05ba238622f8d2e6ec19ae131af8615f7360a9a706b271cf3e",
    "exec/longonly_beta_notional/b7/m20/s0e0": "63f34c013a7f8426352a9c7cd01a6110a84b34f35b317ab1c41cffe6b7fd1ab3",
    "gate/longonly_beta_notional/b7/m20/s1e0": "93f09790c9ca589a249872c8714f71f4f12484e990fa0547b7496f34a36069cc",
    "exec/longonly_beta_notional/b7/m20/s1e0": "a249d1447251c18a41276056ef0633d12133427ce086468ade80d1ec85bc977f",
    "gate/longonly_beta_notional/b7/m20/s0e1": "957625d3282a749f411cc338effa574b0cdfe6470ea4e39f04fdc229976ca1ee",
    "gate/reduce_only/b7/m20/s0e0": "f9b3c0f80f32b3c1ee8229fd56d89c029fa9f769364308bfed8f040abb0639a8",
    "exec/reduce_only/b7/m20/s0e0": "0d186733d46283ed58558fbbe9e4335618558751f96a20a2d222f077af7eeff3",
    "gate/reduce_only/b7/m20/s1e0": "1480ce405dc0a5ce42966c3b1ad36d93d34cc049a8b3f510472b8f8f4879b494",
    "exec/reduce_only/b7/m20/s1e0": "9635ccd0cf43da230d07bed0fc617c99ff1cfbe52770b9642cb54e19e24fc07a",
    "gate/reduce_only/b7/m20/s0e1": "37f3a4a7a1fc85fa924c6ea20572d1c61e0cda1a38382942fc45ce3690f37210",
    "gate/kill/b7/m20/s0e0": "1e98cf024a1a3854d7638a3eaeb4dff751c6f123efcf4dae6ee71a3ef52239fc",
    "exec/kill/b7/m20/s0e0": "f72daab2d3973594c734a4b89aead88bcbca36d93eca0cb5a59c662d733e6585",
    "gate/kill/b7/m20/s1e0": "e8dde06c7eff6393e863ede2413eb34ed70c1619cda1a70c90f878d3261af46d",
    "exec/kill/b7/m20/s1e0": "fb82105a323b5a174aaf7eb68a7e4543f6ecc2564a2c54d430a3e50924131d1c",
    "gate/kill/b7/m20/s0e1": "d2cc7d683ccd35f1e543fafc68a9aa693c2880b607709a4d21e6e406955f8811",
    "gate/default/b7/m53/s0e0": "9e6aaad2f61c0dfa61ca50fd96d7d3528998b0ed335b9922965cae6f6d70929a",
    "exec/default/b7/m53/s0e0": "3f52eab00d4be0f8a2e3d648c075cd01188dbf0b3e56579a0ac7d2382dd9c71f",
    "gate/default/b7/m53/s1e0": "0820dfba2043e0951f8a8f7d0134682b863574d8cfa6c9e3a9977e4620457876",
    "exec/default/b7/m53/s1e0": "95f73a9b673657f07b59fd7fc728896b23faebacac99ad24043ff193e2b3940c",
    "gate/default/b7/m53/s0e1": "f79fee78bb0d407af82662afa9e1e4516b2b3c0230104d60fb7a6744d33fe9bc",
    "gate/longshort_beta/b7/m53/s0e0": "ccd82f391b5270340ea681ad8c3eb3a8cfe020c7058a9bde7e764cde346d9e96",
    "exec/longshort_beta/b7/m53/s0e0": "478f097308e3463824c48c67eaec9ad214d5217357ac901cd01596051a280c09",
    "gate/longshort_beta/b7/m53/s1e0": "fd7f5bfb44c46af3607e38dd07c9479884dceb345910d3e12b547d3f0a254609",
    "exec/longshort_beta/b7/m53/s1e0": "6f1d4e62cc782c355794b0362575d65e43ac715942a01d69f6de4d8828beadff",
    "gate/longshort_beta/b7/m53/s0e1": "ab5d8d15ded112ed1c172b7d1b7772db51a5ac1bcfdc4bce83bf13c3a0903336",
    "gate/notional_tight/b7/m53/s0e0": "869c6a223170fb1ef750cb49e278ba4180a21fde801fb9f4b447869f729ed6cc",
    "exec/notional_tight/b7/m53/s0e0": "e82d6cbf4658de147f8bf94186aa0290bbf24184c696b6948536dd4da5c2defe",
    "gate/notional_tight/b7/m53/s1e0": "f3355234506a5005a6ae905158b02fd78d0baa2ed2f1ae442f3a699c4c2063c3",
    "exec/notional_tight/b7/m53/s1e0": "7febfd4542868279f3ef80fa8afcf760dc7401e9a6063d5e8f5f92a517e682fa",
    "gate/notional_tight/b7/m53/s0e1": "5d3e28a73b3184ade894b54de633e44f659b69cc55f702b6f8d48c48a6f1498c",
    "gate/longonly_beta_notional/b7/m53/s0e0": "d4a1a7fa1f3c45d23b3caf2604a504ef6dfeb07d7f51031b77a0f6a116ba22bf",
    "exec/longonly_beta_notional/b7/m53/s0e0": "94feb755b1bfb11325ac264ad45a9a2ebf12ab89ff99d3ff30530742a39a4d4a",
    "gate/longonly_beta_notional/b7/m53/s1e0": "1370afa2ad0570a4211effb3255fa97b538194b86fa5a0826021f8751f063c8e",
    "exec/longonly_beta_notional/b7/m53/s1e0": "85d095107a12825aeefa9e46b82e42b3ee8f19712bb349245eb7932ee1eadc46",
    "gate/longonly_beta_notional/b7/m53/s0e1": "28db8a869c878d48479d9cce9d7971c134fc71891b0820b95a5d61e50a834b22",
    "gate/reduce_only/b7/m53/s0e0": "5129030a14b51ff5a115d29b0714526d39de6576c80c59d88bbe0330f24c4183",
    "exec/reduce_only/b7/m53/s0e0": "9250ac2e23a59414f98bfd73bd8970a443002238e870fd3ae6443a9ffc1a6099",
    "gate/reduce_only/b7/m53/s1e0": "e1072b380e3b4529a3791ee247a33c3e73d707eb98fe6a2eeced19a00560f9bc",
    "exec/reduce_only/b7/m53/s1e0": "7a1f25ba0fce0caffa52b756456c61694553fab27d910fd2f7954066d579d1c4",
    "gate/reduce_only/b7/m53/s0e1": "ebf8fc3d39fd8498c0d8255c3bc7a2247490f8f9df67dd0673335b05f34704c6",
    "gate/kill/b7/m53/s0e0": "9a3922b3b14cbf3a2ba05b5bd01d96248436e8fa846ae2432528bcc57e17a6a3",
    "exec/kill/b7/m53/s0e0": "fa53b34c5cd2748d44305d0ba673923ab54c03452bf98304de73e73b13ebea87",
    "gate/kill/b7/m53/s1e0": "533708cc11934e0518fcb05cd1ef98daaa8768a5d6aad863b306a08ca2c4ffef",
    "exec/kill/b7/m53/s1e0": "e9d927885a3ae5fb95fb5b99b366c566bf65e054a86ca0903dac6ceb734b4de3",
    "gate/kill/b7/m53/s0e1": "faaa2d30a122ee60f01b2d15a52b5b19f499b0013316011f3c80d9acafdffcdc",
    "gate/default/b64/m1/s0e0": "4b9f1b815d57485eb6afc6aec317f3b930af9dfd832be85cb3893b1273da15f2",
    "exec/default/b64/m1/s0e0": "41e7a858d0cfa5eb29f36268fab38cbdf0ec9e6e1affa7c820cec3a9e6ba8e69",
    "gate/default/b64/m1/s1e0": "08e984da2d72919e0646444bb0760c2e71ba16d169f9de2bfffe805a8c055362",
    "exec/default/b64/m1/s1e0": "c4ae7615e7a2795fbc1c7ac363743ff143d5c3b9ba295715467d5238b7ce1237",
    "gate/default/b64/m1/s0e1": "8e9f1a5d18eb24273ebe164f38bc90ed664b195625d927c75d6f81301297f96f",
    "gate/longshort_beta/b64/m1/s0e0": "3a2d094df48966c2ca8c3895207e590baf5cc967ca02ae0fb9acf6ecc38bb8a2",
    "exec/longshort_beta/b64/m1/s0e0": "e7d603c1c0253ff9c8a447a7ba1186452395141faf118cfbfd7a1ca717bcf48c",
    "gate/longshort_beta/b64/m1/s1e0": "56e5c88f3cab35de2bf5b1db0a61ddbaab8e237f1554c706c4e5b8b49728b24a",
    "exec/longshort_beta/b64/m1/s1e0": "5d639f95cc7f5628fae2f90b616682933205dd9c161b425f496859a6f3dbad8e",
    "gate/longshort_beta/b64/m1/s0e1": "7bd76ccbaa20f9f5cf77d77cfd044a4c44700a28e1c3ee8f7744a52ae905a1fc",
    "gate/notional_tight/b64/m1/s0e0": "82b1fc679ef69f195cc670c4c08d2d4fcac12659187ea8876917be8c17c267f6",
    "exec/notional_tight/b64/m1/s0e0": "b67954abc817a38d622859ed8e0f64e7796d54bf2674605f0758668ba7f196f2",
    "gate/notional_tight/b64/m1/s1e0": "77b5760bae4512956ef9ec92dbae505bcff394c95771b6e9dfbe657be3ec986e",
    "exec/notional_tight/b64/m1/s1e0": "e6ffdd6df6ed245c2a7cac2ab370c078a64b6fd1c3e447fb3ed4a872ed92d8bf",
    "gate/notional_tight/b64/m1/s0e1": "5338746fab4c419cdb073f7293d736c39104530c48de0ba0ee30e58e98d5d361",
    "gate/longonly_beta_notional/b64/m1/s0e0": "3fe3b3d797a1fe5d938df097fa3aa483eecae7f09e0416e0eeac676c368deed2",
    "exec/longonly_beta_notional/b64/m1/s0e0": "897c06745bf19f3968cac5c7b418f98d51a3e7234900129fe91d6a3af7e3859c",
    "gate/longonly_beta_notional/b64/m1/s1e0": "894fffdff93b76cb87efe6be5d2454c79c0af0cd0f03f93be1fb3d2071793a76",
    "exec/longonly_beta_notional/b64/m1/s1e0": "f89aa1c81f44e566af4914f282fee0fe69ec47e1d30b112b038a632c23de1ac9",
    "gate/longonly_beta_notional/b64/m1/s0e1": "e17cf407a8c1d0ecf516b16abdf3e966ca5e9fd0d28f9a53bd8d1ed608a95c0a",
    "gate/reduce_only/b64/m1/s0e0": "d28ed1a774b236950802068ffba8939e8a7b0c266645e3b79f6ada7e4e57728c",
    "exec/reduce_only/b64/m1/s0e0": "f365dedc7ae8ad4a39ad908bc834d94b30b92b4a5a6575822f3a4b09ee774ea7",
    "gate/reduce_only/b64/m1/s1e0": "5d35b7377f6dab978917e411000703968336ebb1506f3cca7da4a91cf48ef2a9",
    "exec/reduce_only/b64/m1/s1e0": "9c6be3cdb7f3039e2579e0752612ced0f4201fc00bba7a7f76155f09ffc77e7c",
    "gate/reduce_only/b64/m1/s0e1": "d20dbe2618a74d402cb5ccb39a2eb2f460a367a21a2bba9939d5d86be5fcb6f9",
    "gate/kill/b64/m1/s0e0": "a85a4eacb11182923f67dc08da5686e90649d98673d4887f100f6f3450342634",
    "exec/kill/b64/m1/s0e0": "0144d47de187efa7d96ade5746d1f0c36011fc28c550c2d8ebe882c28ef057ab",
    "gate/kill/b64/m1/s1e0": "f8b133d9b69e7a38159c2abbf9b0abd4a6370728129c96d1efe055228aaf9132",
    "exec/kill/b64/m1/s1e0": "01f1467130fde3d2df4b83fd348d9654f31691198f6a65d958965818c0f7ce2d",
    "gate/kill/b64/m1/s0e1": "5f169fd19c3686f63758a9d8160a0a564523aa1f069c857b3ab1193d4310f2d6",
    "gate/default/b64/m20/s0e0": "554b2de6f9fdab08809dba1e83516301220daec13d625d3a649380b0df401ae8",
    "exec/default/b64/m20/s0e0": "6a0ccf57807ad0a937e9f24f9c3686deccea0dddffdb098aeacc519f76084e45",
    "gate/default/b64/m20/s1e0": "c6c1102d5ca8e99f80800aae5c1b47bf62a16b711c61ec712a75b0f0e6502714",
    "exec/default/b64/m20/s1e0": "f0756e6a38dcb4bfd390203fee63f40f6e8a7b0f7469f562485aa2b33f76e655",
    "gate/default/b64/m20/s0e1": "625643f605cafae8188acef6b502f68651dddd8159862d33cbea3c8ca20e36b7",
    "gate/longshort_beta/b64/m20/s0e0": "c629daf3faee6bd92f6f30fa490c9d71dbc3787344f620a023718ff25838e86e",
    "exec/longshort_beta/b64/m20/s0e0": "fd048ca531a5aab2819c4ab8ca8b505565df0601b81e7ae5f9f531d56236e085",
    "gate/longshort_beta/b64/m20/s1e0": "3d74f8018b507f52baa49210ea3767fbf3bc1f30a799788d6159f2be085d98ca",
    "exec/longshort_beta/b64/m20/s1e0": "3ce1583aa9fb49bee440d718fdd0af76bac7e12a2f8c814cf0f214726a5d2570",
    "gate/longshort_beta/b64/m20/s0e1": "74ced45790d65d181d2ae566a6164bf7ae5ede85f50ec0e83f97030fd5e18034",
    "gate/notional_tight/b64/m20/s0e0": "1ea5f1f55218c6adf250961e65341f91eceb42f3d159c378c2c0f9ad62ad4258",
    "exec/notional_tight/b64/m20/s0e0": "b30f011ebeec800d86e285fba3c949596d192299ece27fdd892614388cbb9496",
    "gate/notional_tight/b64/m20/s1e0": "eaf9ca14ece7de6be5a7f39ecb1e9998c98bc1880af9fd7fd8728142da782402",
    "exec/notional_tight/b64/m20/s1e0": "af3264dea5c1528d7c35210e03f1385c7404553b7718dd4ef272bb27eed0962f",
    "gate/notional_tight/b64/m20/s0e1": "8ed8912bfdf5acdcba84726cc1b195a7762c3a07be4cc293eef4225266daf03b",
    "gate/longonly_beta_notional/b64/m20/s0e0": "24b040e6290d39c40287d396a337b8f6639bf4c4fbfb872f699531ad6528b66f",
    "exec/longonly_beta_notional/b64/m20/s0e0": "f44f1b359bde93cec05fdcbc972440546057168ebf84ec3a76da6c2e3912a115",
    "gate/longonly_beta_notional/b64/m20/s1e0": "05a5b28a53db6703e96d421346ca5cf1a502f524d9953dd8238cfa2426665bba",
    "exec/longonly_beta_notional/b64/m20/s1e0": "7b3f51bf121ba562efd133f6f62bb86f96de75d34c115f0ad13c6478c5ec5850",
    "gate/longonly_beta_notional/b64/m20/s0e1": "3a7bfc48de1f1b2a5822ec770a541afa839bec20f8bf7afef16ceb50120c5345",
    "gate/reduce_only/b64/m20/s0e0": "decf12477848143798d06056f39f56be9312b431cea7cf2a6e92d6a5d8de394d",
    "exec/reduce_only/b64/m20/s0e0": "11f4c33f7b55c4affc25ccd4e9ee41ed89eaed56ea0afb7b47478be1ff69d913",
    "gate/reduce_only/b64/m20/s1e0": "352f2f3205143603873507332493620333c82b667b7957362be5e7ad3cd8833d",
    "exec/reduce_only/b64/m20/s1e0": "d4c5b6ea1807a7a923daea75518b3fa5b530c53390d4ef6c47dd4149ff36fea4",
    "gate/reduce_only/b64/m20/s0e1": "31f14c24ead54558af9adaa76bc7a4a9fa079316e2016ad6fe3e7bcf35cef987",
    "gate/kill/b64/m20/s0e0": "d55c114d01044203d3b498efe4b3f6a3e424d630eb1e38f10f1f4c27b9a1edbf",
    "exec/kill/b64/m20/s0e0": "43700f122eab75c41fba14e12cb74396853b3ce9881f2e79075d4c7b7905c025",
    "gate/kill/b64/m20/s1e0": "d0838386e6f0474e957d0361d95980e6624aba4b4e704e07b0b5df104b4acd59",
    "exec/kill/b64/m20/s1e0": "5d31fbe828fa73088323b2a1c531ea8e53a5399357b104eb5557d2ea2a661ad3",
    "gate/kill/b64/m20/s0e1": "fa4e6b3a22dcf120f894deab544bcdf3a3db6b225d51461bb7cffd02054994f6",
    "gate/default/b64/m53/s0e0": "0fe25657cf7357df817c17248ce4ba700d843a5af2081806f87b30afa91ea525",
    "exec/default/b64/m53/s0e0": "7cb9dda01ffb211e6452d4cc25d9f9b6d0e692ded69dc889a435f45ca2079bca",
    "gate/default/b64/m53/s1e0": "891736f5359d4676b004d3d68b1650adb34b6b4aa60ab85c35897687dd9f3315",
    "exec/default/b64/m53/s1e0": "5cd671a3fd6111615d2f47e52cb0ec347cfb06d2bd45e59fd03a1aef670ca840",
    "gate/default/b64/m53/s0e1": "da43776f04ff483759af8d27573611bd4c543f844117cf3749d92d596fb56c12",
    "gate/longshort_beta/b64/m53/s0e0": "9d425793f6ff5fed30dec319973d25d4749fab90b8e47967ce5e898b965bc08f",
    "exec/longshort_beta/b64/m53/s0e0": "c7db1d3c1612699d4331615d844d2c263f3a32fea95bb4a245cdb8831d79a4b9",
    "gate/longshort_beta/b64/m53/s1e0": "8a56fccd4e6d3cd057a2360ef8c8cbaf0104a697f21e90954d227bf74240f792",
    "exec/longshort_beta/b64/m53/s1e0": "2b10fe436fd10bcc4d9bf894c6e946e82798369c2bda9ab584396e832fca452e",
    "gate/longshort_beta/b64/m53/s0e1": "b1110d37a3e3505b154b7d9b4a6d9c2ea37a03d3d62acd9883bd0df0a1f0a138",
    "gate/notional_tight/b64/m53/s0e0": "6a3593f6a9a629a606478eeae1db1d7d2ecad619a76ed43e70e827ee64a56f73",
    "exec/notional_tight/b64/m53/s0e0": "a874591d8b3c121ca3e05e100a454f6eebff876fcb40bc808970135fc40012de",
    "gate/notional_tight/b64/m53/s1e0": "c8bbf4f5c6ff92cc99705f37c4666e1307ef07350f6557566e5bfa9a9f030624",
    "exec/notional_tight/b64/m53/s1e0": "a4f8c8db8c16f97cd6f67aa588ff8a6b8c20d09205604927fe4f9776625fc229",
    "gate/notional_tight/b64/m53/s0e1": "e834c52815338493ac03aaa7b2ad601e9ced11798122b0d8773cbecb9befa477",
    "gate/longonly_beta_notional/b64/m53/s0e0": "6739e1f5465f87e5304d3b333dede755696ca34d3f80654a515fdd54c1db5c42",
    "exec/longonly_beta_notional/b64/m53/s0e0": "4bbfdabfb2dcef6719b3b1c95869ba8922da10ccd0866086f6d6f15dbbad5828",
    "gate/longonly_beta_notional/b64/m53/s1e0": "5bf17747c59fded35469302f1b2be9f82530cf8f1fc275c14ed713481e87d0f6",
    "exec/longonly_beta_notional/b64/m53/s1e0": "dd458e61fdc6898e5542f571014d8fd556d2baa8885c216b81726f3bf358f517",
    "gate/longonly_beta_notional/b64/m53/s0e1": "25bb9a34feda7dec180ab095b71bb44d44b9a3394a465c14106a1f2d34c9a80f",
    "gate/reduce_only/b64/m53/s0e0": "1a3a173ce950d94888ee6bf13e239803d88b07da1198490d5e5246ac889af38c",
    "exec/reduce_only/b64/m53/s0e0": "3bad8d45d59485f30dbdf5c4926bda09d5577bc56b9c8e8d7c535cebf994f8b0",
    "gate/reduce_only/b64/m53/s1e0": "336e5795e3b054f18e18751bce931cb5bb96df2bf932a33477d8dc06cabd6e4e",
    "exec/reduce_only/b64/m53/s1e0": "b59cc08f1001e11a44aa52bc67ac45bab6901462db2327dce409f0603163c353",
    "gate/reduce_only/b64/m53/s0e1": "f9ae6ca4956246b5f2f74e732bd4ad7b80796e1b8d16956b9d42067fd6922a2f",
    "gate/kill/b64/m53/s0e0": "0c37da32717d9aef03e8b306ad188778474fd1c0e297ef59c7d4b66ec602304d",
    "exec/kill/b64/m53/s0e0": "f663dd35c586ab19f881b78c9925260d7f36ca10f534fabcb1f57b046fc91be6",
    "gate/kill/b64/m53/s1e0": "e208d45e59dd3b52bf4375eb953731242a9646eaa5d46359a6c20b3f4c978f1a",
    "exec/kill/b64/m53/s1e0": "9ad76a4570128f0b116938663849e15789de2cc605f02abdb94f3b2735bd9abb",
    "gate/kill/b64/m53/s0e1": "20a69f8ffc3836f5bccaffc1d6735adf82865067f723f9bc8215dab8ce8c1819",
    "cost/b1/m1": "b2539b2383e3b33743a5de64216448e47392a2b9be9c40bd39d0f59d290d5a3b",
    "cost/b1/m20": "d51cec667cf0aa702fd43c2754cf19535689401f8c48f549c8a6aa8ea92e4866",
    "cost/b1/m53": "b1b8dc8ad53d73e516b335915b79abc160063dfaaa327a32db35b2d9de1e90d7",
    "cost/b7/m1": "18eedf3ad3b67359839bffe55d8f5c43dca77b0c9345d5498af759afa378b230",
    "cost/b7/m20": "17cb988a37587224f629607462aaf65ff617b4e263159a6fecb306c80cb976da",
    "cost/b7/m53": "f50b9a2b27e9fec93fdde2b45b0153de44cbe397f39a5281854513e06b5ab3d1",
    "cost/b64/m1": "f5ff0dac4be1b6fa3de5712a59267e0b06cbaa39662506bf0e76cf226e7bd815",
    "cost/b64/m20": "b169fd3d6981d00ba16a5b7b20801ca39be408b5dce4185a67cf785a34e61117",
    "cost/b64/m53": "552bd95c5c51cc1010ac0d07ec83185101eaadc6d9bcaa38878d2e8ef844ca0b",
    "obs/b1": "c85ddf8e38e7a3d5fbd768e3d2478dd6d22e95354b972006690728e0a0a3085a",
    "obs/b7": "94cd18147141109c670f08e984ba5646082af67fbcf779392f68ae239c73895e",
    "obs/b64": "7c5669bca0e7515173977cd00d00784d85e5bd7e93fd95fd0ebc432d3b822fcb",
    "env/weights/base/b1/m1": "b5a8d4e7e1c1d163c226289b718278a4bb0ac8ef850a2558b1bcc489bd87a1b0",
    "env/weights/base/b7/m1": "cc44fe9c6639b95f9669008f9108540cc17dc0ac4ae54ad1c5fcf09abf551ace",
    "env/weights/base/b64/m1": "4572a8f0b1999cc634d1e1bfa4326e63487f46ac9a5e28c0c90d9a08dd433f63",
    "env/weights/base/b1/m20": "3d802b3bae4a0a42a9ba5376e7bfeebcfdbb4dbc9aa4187ce4ef3b6166ef651e",
    "env/weights/base/b7/m20": "14181ebd424eb11d6b4274c84a589e12d58a26a3c4c9383951c9294241924d67",
    "env/weights/base/b64/m20": "87caa1ca7a486965bd55a471deec720f0b3e2576fd997f94a1902893ca848fde",
    "env/weights/base/b1/m53": "c0fed33d20e522322c4d9d3966297df3d6a45c81a65b97e49eaab88e9c2fe57f",
    "env/weights/base/b7/m53": "877fd1e6a90001760d906ad0a2edad60428f6a25efe4e74e07f6bfca83e3e310",
    "env/weights/base/b64/m53": "00176cde6c0519299e10795a052678221718037fd37c78f592a2a76797251be7",
    "env/weights/longshort/b7/m20": "1c3cc5351dffa38f96d4202da1d19292bd7e5d9d38931bed1c0ccee90a22b861",
    "env/weights/kill_lots/b7/m20": "f5726b44e89cf1af4f5987fdd2d6fbbd403ab52a84e7799fdd2aca8e8f683b96",
    "env/weights/base/b7/m90": "68887593c5704f3e102929d2e2cdbd9493fd7a11972b738e99216ff83b92f118",
    "env/budgets/base/b1/m1": "d83a4d2e0d569cbf0df71c6dc6ce5eec69cb9db94f1175ad460334b9f8e3d9f1",
    "env/budgets/base/b7/m1": "9eb8cbe7a4756bf8a40557fa0f24bb2c3e4d7b2658f86f61e91c0054586aa739",
    "env/budgets/base/b64/m1": "416c749c900a8b5f1793be35189259392006fbbd946677efbb14c3dc1b78f32e",
    "env/budgets/base/b1/m20": "5d4cdb4d737024770ff69e485624f0fc5f77c00cb1d6abdfdb164ef0df92b6f9",
    "env/budgets/base/b7/m20": "1b91f092858c8db7ac588c05259fa60c3b69f5a995d847b9b252230dba6f1a02",
    "env/budgets/base/b64/m20": "34b3556e1b9728972588fd8247057f712e3621ae44c6b8a81890f70930ae2419",
    "env/budgets/base/b1/m53": "f19a0ab58a26fd3dc451bb138804856830713220c972a47b328aa60fe1935057",
    "env/budgets/base/b7/m53": "64b2be12452e7e7b96326bf02fe245aaa487d1a30d3c94497198ce69b28ec14d",
    "env/budgets/base/b64/m53": "9091b52249aeceaa70fa3ac1a1252b86d4b410ffd8f0c105d71a2baa1636e143",
    "env/budgets/longshort/b7/m20": "9b4cac2cda6a1b2fda69de58a2ca54a06167cf6d7becff1f23c6e78fcc6268a2",
    "env/budgets/kill_lots/b7/m20": "a4af401f35ff5fc43b618653f93db105d4227e22bac775f1bcc03b91cbb56f57",
    "env/budgets/base/b7/m90": "28079dc785bb3f2431f3fb05a297ae73411bd84fa46a15e11ed11a054b7e0aaa",
}


def _check(group: Callable[[], dict[str, str]], prefix: str) -> None:
    if platform_key() != PLATFORM:
        pytest.skip(f"digests recorded on platform {PLATFORM}, this is {platform_key()}")
    got = group()
    want = {k: v for k, v in DIGESTS.items() if k.split("/")[0] in prefix.split(",")}
    assert set(got) == set(want), sorted(set(got) ^ set(want))[:10]
    bad = sorted(k for k in got if got[k] != want[k])
    assert not bad, f"{len(bad)} of {len(got)} outputs changed bits: {bad[:20]}"


def test_gates_and_execution_bit_identical() -> None:
    _check(gate_and_execution_digests, "gate,exec")


def test_costs_bit_identical() -> None:
    _check(cost_digests, "cost")


def test_observation_bit_identical() -> None:
    _check(observation_digests, "obs")


def test_env_rollouts_bit_identical() -> None:
    _check(env_digests, "env")


# ----------------------------------------------------------------------------- shortcuts
# The exact shortcuts the optimised hot path takes, checked against their definitions on
# inputs wider than the corpus (platform independent: these never skip).


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
    """Direct bit counts (small batches) and the table lookup (large) give the same."""
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
    digests = all_digests()
    print(f'PLATFORM = "{platform_key()}"')
    print("DIGESTS: dict[str, str] = {")
    for k, v in digests.items():
        print(f'    "{k}": "{v}",')
    print("}")
    sys.exit(0)
