"""Torch-free runtime: bundle verification, FrozenAllocator decisions, env parity, faults, audit."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_serving_support import (
    ENABLED,
    bar_clock,
    exported_bundle,
    fixed_clock,
    patient,
    reseal_bundle,
    small_market,
    sp500,
    untrained_bundle,
)

import allocgym.serving
from allocgym.errors import BundleError, ConfigError, GateConfigError
from allocgym.observability import AuditChainError, reason_names
from allocgym.risk import ReasonCode, check_invariants
from allocgym.serving import (
    DecisionRequest,
    DecisionService,
    FrozenAllocator,
    FrozenPolicy,
    decode_array,
    encode_array,
    replay_audit,
    request_from_market,
)
from allocgym.serving.allocator import serving_config
from allocgym.serving.schemas import StrategyBudget, trusted
from allocgym.serving.service import ArrayStoreError, IdempotencyConflict

T0 = 6000  # a bar of the S&P sample with a full history


@pytest.fixture(scope="module")
def bundle() -> Path:
    return exported_bundle()


@pytest.fixture(scope="module")
def policy(bundle: Path) -> FrozenPolicy:
    return FrozenPolicy.load(bundle)


def make_alloc(
    policy: FrozenPolicy, t: int = T0, environ: dict | None = None, **kw
) -> FrozenAllocator:
    env = ENABLED if environ is None else environ
    kw.setdefault("serving", patient(policy))
    return FrozenAllocator(policy, environ=env, clock=fixed_clock(bar_clock(sp500(), t)), **kw)


def make_request(alloc: FrozenAllocator, t: int = T0, rid: str = "r1", **kw) -> DecisionRequest:
    return request_from_market(sp500(), t, history=alloc.history, request_id=rid, **kw)


def held_book(alloc: FrozenAllocator, t: int = T0) -> np.ndarray:
    """Shares of a book at the allocator's own target one bar earlier (a realistic state)."""
    d = alloc.trace(make_request(alloc, t - 1, "seed"), now=bar_clock(sp500(), t - 1)).decision
    return np.asarray(d.target_qty)


# ----------------------------------------------------------------------------- import hygiene


def test_importing_serving_loads_neither_torch_sb3_gymnasium_nor_cvxpy() -> None:
    """The runtime needs none of them; cvxpy (1.2 s of a serving process's start) loads
    only where a bundle's tilt prior is a cvxpy allocator."""
    code = (
        "import sys, allocgym.serving, allocgym.serving.http, allocgym.serving.service; "
        "bad = [m for m in ('torch', 'stable_baselines3', 'sb3_contrib', 'gymnasium', "
        "'cvxpy') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "[]"


def test_a_tilt_bundle_over_a_prior_without_a_solver_does_not_load_cvxpy() -> None:
    """The baseline registry imports only the allocator it builds, and 1/N, inverse
    volatility and HRP solve nothing: such a tilt prior leaves cvxpy out of the process
    (every tilt bundle had loaded it with the whole registry)."""
    for prior in ("equal_weight", "hrp"):
        path = untrained_bundle("tilt", prior=prior)
        code = (
            "import sys; from allocgym.serving import FrozenAllocator; "
            f"a = FrozenAllocator.load({str(path)!r}, environ={{}}); "
            "print(type(a._prior).__name__, 'cvxpy' in sys.modules)"
        )
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.split()[-1] == "False", res.stdout


def test_serving_source_never_unpickles() -> None:
    pattern = re.compile(
        r"\bpickle\b|\bcloudpickle\b|\bdill\b|\bjoblib\b|torch\.load|allow_pickle\s*=\s*True|"
        r"\bnp\.load\(|\bnumpy\.load\(|^\s*import torch|^\s*from torch|marshal\.loads|shelve",
        re.MULTILINE,
    )
    root = Path(allocgym.serving.__file__).parent
    files = sorted(root.glob("*.py"))
    assert len(files) >= 6
    hits = {f.name: pattern.findall(f.read_text()) for f in files}
    assert {k: v for k, v in hits.items() if v} == {}


# ----------------------------------------------------------------------------- bundle checks


def _copy(bundle: Path, dst: Path) -> Path:
    shutil.copytree(bundle, dst)
    return dst


def _edit_manifest(d: Path, fn) -> None:
    m = json.loads((d / "manifest.json").read_text())
    fn(m)
    (d / "manifest.json").write_text(json.dumps(m))


def test_flipped_bit_in_model_is_refused(bundle: Path, tmp_path: Path) -> None:
    d = _copy(bundle, tmp_path / "b")
    raw = bytearray((d / "model.onnx").read_bytes())
    raw[len(raw) // 2] ^= 0x10
    (d / "model.onnx").write_bytes(bytes(raw))
    with pytest.raises(
        BundleError, match=r"sha256 .* the manifest says .* corrupted or was replaced"
    ):
        FrozenPolicy.load(d)


@pytest.mark.parametrize("declared", [None, "", "abc123", "0" * 64])
def test_a_missing_or_malformed_model_hash_is_refused(
    bundle: Path, tmp_path: Path, declared: str | None
) -> None:
    """No hash, an empty one, one of the wrong length, or a well-formed wrong one: the
    model file is never trusted without the digest the manifest declares."""
    d = _copy(bundle, tmp_path / "b")
    if declared is None:
        _edit_manifest(d, lambda m: m["model"].pop("sha256"))
    else:
        _edit_manifest(d, lambda m: m["model"].__setitem__("sha256", declared))
    with pytest.raises(BundleError, match=r"has sha256 [0-9a-f]{64}, the manifest says"):
        FrozenPolicy.load(d)


def test_manifest_paths_outside_the_bundle_are_refused(bundle: Path, tmp_path: Path) -> None:
    d = _copy(bundle, tmp_path / "b")
    shutil.copy(d / "model.onnx", tmp_path / "outside.onnx")
    _edit_manifest(d, lambda m: m["model"].__setitem__("file", "../outside.onnx"))
    with pytest.raises(BundleError, match="outside the bundle"):
        FrozenPolicy.load(d)
    _edit_manifest(d, lambda m: m["model"].__setitem__("file", "/etc/passwd"))
    with pytest.raises(BundleError, match="outside the bundle"):
        FrozenPolicy.load(d)
    d2 = _copy(bundle, tmp_path / "c")
    (d2 / "model.onnx").unlink()
    (d2 / "model.onnx").symlink_to(tmp_path / "outside.onnx")
    with pytest.raises(BundleError, match="symbolic link"):
        FrozenPolicy.load(d2)


def test_external_data_is_refused(bundle: Path, tmp_path: Path) -> None:
    import hashlib

    import onnx

    d = _copy(bundle, tmp_path / "b")
    model = onnx.load(str(d / "model.onnx"))
    onnx.save_model(
        model,
        str(d / "model.onnx"),
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    data = (d / "model.onnx").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    _edit_manifest(d, lambda m: m["model"].update(sha256=digest, bytes=len(data)))
    with pytest.raises(BundleError, match="external data"):
        FrozenPolicy.load(d)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.__setitem__("schema", "allocgym.bundle/0"), "manifest schema"),
        (lambda m: m["model"].__setitem__("opset", 18), "opset"),
        (lambda m: m["observation"].__setitem__("obs_dim", 7), "layout disagrees"),
        (lambda m: m["symbols"].__setitem__(0, m["symbols"][1]), "distinct"),
        (lambda m: m.pop("features"), "lacks keys"),
    ],
)
def test_manifest_inconsistencies_are_refused(
    bundle: Path, tmp_path: Path, edit, match: str
) -> None:
    d = _copy(bundle, tmp_path / "b")
    _edit_manifest(d, edit)
    with pytest.raises(BundleError, match=match):
        FrozenPolicy.load(d)


def test_edited_config_or_feature_layout_is_refused(bundle: Path, tmp_path: Path) -> None:
    d = _copy(bundle, tmp_path / "b")
    _edit_manifest(d, lambda m: m["config"]["risk"].__setitem__("max_gross", 3.0))
    with pytest.raises(BundleError, match="manifest was edited"):
        FrozenAllocator(FrozenPolicy.load(d), environ=ENABLED)
    d2 = _copy(bundle, tmp_path / "c")
    # re-sealed, as a bundle written by another allocgym version would be
    reseal_bundle(d2, lambda m: m["features"].__setitem__("clip", 4.0))
    with pytest.raises(BundleError, match="different feature layout"):
        FrozenAllocator(FrozenPolicy.load(d2), environ=ENABLED)


def test_frozen_policy_is_deterministic(policy: FrozenPolicy) -> None:
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(64, policy.obs_dim)).astype(np.float32)
    a, b = policy(obs), policy(obs)
    assert a.dtype == np.float64 and a.shape == (64, 20)
    assert a.tobytes() == b.tobytes()
    assert policy._session.get_session_options().intra_op_num_threads == 1


# ----------------------------------------------------------------------------- env parity


def _env_parity(
    policy: FrozenPolicy, market, params_cfg, start: int, n_steps: int, seed: int
) -> int:
    """Step the env with the frozen policy's proposals; decide the same states in parallel.

    Weights mode goes through ``PortfolioEnv.step_proposed``; budgets mode through the
    env core with the env's own ``IntentAggregator`` (``PortfolioEnv`` maps actions, not
    budgets), exactly what ``core.step`` does after its action map.
    """
    from allocgym.envs import PortfolioEnv, build_params, core

    params = build_params(market, params_cfg, "all")
    env = PortfolioEnv(params=params)
    obs, _ = env.reset(seed=seed, options={"start": start})
    state = env.state
    alloc = FrozenAllocator(policy, environ=ENABLED, serving=patient(policy))
    checked = 0
    for k in range(n_steps):
        t = int(state.t[0])
        req = request_from_market(
            market, t, history=alloc.history, request_id=f"p{k}", shares=state.shares[0],
            cash=float(state.cash[0]), equity=float(state.equity[0]),
            peak_equity=float(state.peak[0]), kill_switch=bool(state.kill[0]),
        )  # fmt: skip
        tr = alloc.trace(req, now=bar_clock(market, t))
        assert tr.decision.status in ("ok", "killed"), tr.decision.reject
        assert np.array_equal(tr.observation[0], obs)  # features + book: same bits
        proposal = policy(obs[None])
        if policy.mode == "weights":
            obs, _, term, trunc, info = env.step_proposed(proposal[0])
            state = env.state
        elif policy.mode == "tilt":  # the graph returns the clipped action; the env tilts
            obs, _, term, trunc, info = env.step(proposal[0])
            state = env.state
        else:
            w, contrib = params.aggregator.aggregate(proposal, params.features.intents[state.t])
            res = core.step_proposed(params, state, w, contrib, proposal)
            obs, state, info = res.obs[0], res.state, {k: v[0] for k, v in res.info.items()}
            term, trunc = bool(res.terminated[0]), bool(res.truncated[0])
        d = tr.decision
        assert np.array_equal(np.asarray(d.approved_weights), info["approved"])
        assert np.array_equal(np.asarray(d.target_weights), info["target"])
        assert np.array_equal(np.asarray(d.target_delta_qty), info["delta_qty"])
        assert np.array_equal(np.asarray(d.reason_mask), info["symbol_reasons"])
        assert d.portfolio_reasons == reason_names(int(info["portfolio_reasons"]))
        checked += 1
        if term or trunc:
            break
    return checked


def test_env_and_frozen_paths_give_bit_identical_decisions_on_sp500(policy: FrozenPolicy) -> None:
    from allocgym.config import config_from_dict

    cfg = config_from_dict(policy.manifest["config"])
    assert _env_parity(policy, sp500(), cfg, start=T0, n_steps=25, seed=1) == 25


def test_env_parity_in_budgets_mode() -> None:
    from allocgym.config import config_from_dict

    policy = FrozenPolicy.load(untrained_bundle("budgets"))
    cfg = config_from_dict(policy.manifest["config"])
    market = small_market()
    assert _env_parity(policy, market, cfg, start=300, n_steps=15, seed=2) == 15


def test_env_parity_in_tilt_mode() -> None:
    """The runtime tilts the prior's book computed from the request's history exactly as
    the env tilts its precomputed prior table: bit-identical decisions."""
    from allocgym.config import config_from_dict

    policy = FrozenPolicy.load(untrained_bundle("tilt"))
    assert policy.manifest["tilt"] == {"prior": "equal_weight", "lookback": 252}
    assert policy.manifest["proposal"]["columns"][-1] == "gross"
    cfg = config_from_dict(policy.manifest["config"])
    market = small_market()
    assert _env_parity(policy, market, cfg, start=350, n_steps=15, seed=2) == 15


def test_env_parity_in_tilt_mode_with_a_prior_window_longer_than_the_features() -> None:
    """baselines.lookback 400 > the features' 301 bars: a decision reads 401 bars, a
    stateless request of 301 is refused (its prior had read 300 returns where the env's
    read 400, and approved weights differed by 0.005), and the full window is the env's."""
    from allocgym.config import config_from_dict

    policy = FrozenPolicy.load(untrained_bundle("tilt", prior="inverse_volatility", lookback=400))
    alloc = FrozenAllocator(policy, environ=ENABLED, serving=patient(policy))
    assert (alloc.history, alloc.feature_builder.history) == (401, 301)
    market = small_market()
    short = request_from_market(market, 450, history=301, request_id="short")
    d = alloc.trace(short, now=bar_clock(market, 450)).decision
    assert d.status == "rejected" and d.reject is not None
    assert (d.reject.detail, d.reject.field) == ("history_length", "close")
    assert "decisions read 401" in d.reject.message
    cfg = config_from_dict(policy.manifest["config"])
    assert _env_parity(policy, market, cfg, start=420, n_steps=10, seed=2) == 10


def test_hrp_fallback_holds_the_book_where_hrp_finds_nothing_to_allocate(
    policy: FrozenPolicy, monkeypatch
) -> None:
    """An all-cash HRP row (no variance in the window: a market-wide halt) is no fallback
    allocation: the book is held (it had been sold whole)."""
    alloc = make_alloc(policy, serving=patient(policy, "serving.fallback=hrp"), model=_raise)
    req = make_request(alloc, rid="hrp0", shares=held_book(alloc))
    assert alloc.trace(req).decision.fallback.kind == "hrp"
    monkeypatch.setattr(alloc._hrp, "allocate", lambda ctx: np.zeros((1, alloc.n_assets)))
    d = alloc.trace(make_request(alloc, rid="hrp1", shares=held_book(alloc))).decision
    assert d.status == "fallback" and d.fallback.kind == "hold"


def test_tilt_prior_failure_falls_back_with_its_cause(monkeypatch) -> None:
    from allocgym.errors import OptimizationError

    policy = FrozenPolicy.load(untrained_bundle("tilt"))
    market = small_market()
    alloc = FrozenAllocator(policy, environ=ENABLED, serving=patient(policy))

    def broken(ctx):
        raise OptimizationError("no prior today")

    monkeypatch.setattr(alloc._prior, "allocate", broken)
    req = request_from_market(market, 400, history=alloc.history, request_id="t1")
    tr = alloc.trace(req, now=bar_clock(market, 400))
    d = tr.decision
    assert d.fallback is not None and d.fallback.cause == "prior"
    assert "MODEL_FALLBACK" in d.portfolio_reasons
    # the model ran before the prior failed: its action is recorded, and a replay that
    # forces the recorded cause derives the same one (a review's repro: replay flagged it)
    assert tr.raw_action is not None
    forced = alloc.trace(req, now=bar_clock(market, 400), model_cause=("prior", "x"))
    assert forced.raw_action is not None and np.array_equal(forced.raw_action, tr.raw_action)


def test_budget_trace_in_budgets_mode() -> None:
    policy = FrozenPolicy.load(untrained_bundle("budgets"))
    market = small_market()
    alloc = FrozenAllocator(policy, environ=ENABLED, serving=patient(policy))
    req = request_from_market(market, 400, history=alloc.history, request_id="b1")
    d = alloc.trace(req, now=bar_clock(market, 400)).decision
    names = [b.strategy for b in d.budgets]
    assert names == ["trend", "mean_reversion", "defensive", "cash"]
    assert sum(b.budget for b in d.budgets) == pytest.approx(1.0, abs=1e-12)
    for b in d.budgets[:3]:
        assert b.approved_gross <= b.cap + 1e-12
        assert b.utilization == pytest.approx(b.approved_gross / b.cap)
        assert b.cap <= b.regime_cap <= b.base_cap  # capacity and regime only tighten
    # the family lines are the approved book, family by family
    book_gross = sum(abs(w) for w in d.approved_weights)
    assert sum(b.approved_gross for b in d.budgets[:3]) == pytest.approx(book_gross, abs=1e-12)


def test_symbol_order_of_the_request_does_not_matter(policy: FrozenPolicy) -> None:
    alloc = make_alloc(policy)
    req = make_request(alloc, shares=held_book(alloc))
    perm = np.random.default_rng(0).permutation(20)
    data = {k: getattr(req, k) for k in ("close", "volume", "spread_bps", "tradable")}
    shuffled = req.model_copy(
        update={
            "symbols": [req.symbols[i] for i in perm],
            **{k: v[:, perm] for k, v in data.items()},
        }
    )
    a, b = alloc.decide(req), alloc.decide(shuffled)
    assert a.approved_weights == b.approved_weights and a.target_delta_qty == b.target_delta_qty


# ----------------------------------------------------------------------------- bad input


def _variants(req: DecisionRequest, history: int):
    close = req.close.copy()
    close[-1, 3] = np.nan
    yield "nan_close", {"close": close}, "non_finite"
    vol = req.volume.copy()
    vol[5, 0] = np.inf
    yield "inf_volume", {"volume": vol}, "non_finite"
    neg = req.close.copy()
    neg[-2, 7] = 0.0
    yield "zero_price", {"close": neg}, "non_positive_price"
    orig = list(req.symbols)
    syms = [*orig[:4], "ZZZZ", *orig[5:]]
    yield "unknown_symbol", {"symbols": syms}, "unknown_symbol"
    yield "missing_symbol", {"symbols": orig[:-1], "close": req.close[:, :-1], "volume": req.volume[:, :-1],
                             "spread_bps": req.spread_bps[:, :-1], "tradable": req.tradable[:, :-1]}, "missing_symbol"  # fmt: skip
    yield "duplicate", {"symbols": [*orig[:3], orig[2], *orig[4:]]}, "duplicate_symbol"
    short = {k: getattr(req, k)[-(history - 1):] for k in ("close", "volume", "spread_bps", "tradable")}  # fmt: skip
    yield "short_history", {**short, "benchmark_returns": req.benchmark_returns[-(history - 1):]}, "history_length"  # fmt: skip
    yield "bench_shape", {"benchmark_returns": req.benchmark_returns[1:]}, "shape"
    huge = req.benchmark_returns.copy()
    huge[-1] = 1e200  # had passed and overflowed the estimators with warnings only
    yield "bench_huge", {"benchmark_returns": huge}, "out_of_range"
    yield "nan_equity", {"equity": float("nan")}, "account"
    yield "zero_equity", {"equity": 0.0}, "account"
    yield "nan_position", {"positions": {"AAPL": float("nan")}}, "positions"
    yield "foreign_position", {"positions": {"TSLA": 10.0}}, "unknown_symbol"
    yield "stale", {"timestamp": req.timestamp - dt.timedelta(days=30)}, "stale"
    yield "future", {"timestamp": req.timestamp + dt.timedelta(days=2)}, "future_timestamp"


def test_bad_inputs_are_coded_rejects_never_crashes(policy: FrozenPolicy) -> None:
    alloc = make_alloc(policy)
    req = make_request(alloc, shares=held_book(alloc))
    seen = set()
    for name, update, detail in _variants(req, alloc.history):
        d = alloc.decide(req.model_copy(update=update))
        assert d.status == "rejected", name
        assert d.reject is not None and d.reject.detail == detail, (name, d.reject)
        code = "STALE_INPUT" if detail == "stale" else "INVALID_INPUT"
        assert d.reject.code == code and d.portfolio_reasons == [code]
        assert d.approved_weights is None  # no new (unchecked) allocation
        if d.target_delta_qty is not None:
            assert d.target_delta_qty == [0.0] * 20
        seen.add(detail)
    assert len(seen) == 12


def test_kill_switch_wins_even_on_rejected_input(policy: FrozenPolicy) -> None:
    alloc = make_alloc(policy)
    shares = held_book(alloc)
    req = make_request(alloc, shares=shares, kill_switch=True)
    d = alloc.decide(req.model_copy(update={"timestamp": req.timestamp - dt.timedelta(days=30)}))
    assert d.status == "rejected" and d.reject.code == "STALE_INPUT"
    assert d.target_delta_qty == (-shares).tolist() and d.target_qty == [0.0] * 20
    assert "KILL_SWITCH" in d.portfolio_reasons


def test_decision_json_validates_against_its_schema(policy: FrozenPolicy) -> None:
    from allocgym.serving import Decision

    alloc = make_alloc(policy)
    d = alloc.decide(make_request(alloc, shares=held_book(alloc)))
    assert d.status == "ok"
    again = Decision.model_validate_json(d.model_dump_json())
    assert again == d
    assert d.model.sha256 == policy.sha256 and d.model.model_id == policy.model_id
    assert d.regime is not None and d.regime.source == "model"
    lat = d.latency
    assert lat is not None
    stages = (lat.validate_us, lat.features_us, lat.model_us, lat.gates_us, lat.execution_us)
    # the stages are disjoint parts of the decision: each was timed and none exceeds the whole
    assert min(stages) > 0 and sum(stages) <= lat.total_us
    assert len(d.reasons) == 20 and all(isinstance(r, list) for r in d.reasons)
    assert d.budgets[0].strategy == "policy"


# ----------------------------------------------------------------------------- faults


class Boom(RuntimeError):
    pass


def _raise(obs: np.ndarray) -> np.ndarray:
    raise Boom("model crashed")


def _nan(obs: np.ndarray) -> np.ndarray:
    return np.full((1, 20), np.nan)


def _slow(obs: np.ndarray) -> np.ndarray:
    time.sleep(0.03)
    return np.full((1, 20), 0.05)


def _wrong_shape(obs: np.ndarray) -> np.ndarray:
    return np.zeros((1, 3))


@pytest.mark.parametrize("fallback", ["hold", "hrp"])
def test_model_faults_fall_back_inside_the_limits_and_are_counted(
    policy: FrozenPolicy, fallback: str
) -> None:
    faults = {"exception": _raise, "nan": _nan, "deadline": _slow, "bad_output": _wrong_shape}
    rng = np.random.default_rng(5)
    total = 0
    for cause, fn in faults.items():
        deadline = "10" if cause == "deadline" else "5000"
        serving = serving_config(
            policy, [f"serving.fallback={fallback}", f"serving.deadline_ms={deadline}"]
        )
        alloc = make_alloc(policy, serving=serving, model=fn)
        svc = DecisionService(alloc)
        base = held_book(alloc)
        for k in range(4):
            # books inside and (scaled up) outside the hard limits
            shares = base * rng.uniform(0.5, 4.0)
            req = make_request(alloc, rid=f"{cause}{k}", shares=shares)
            tr = alloc.trace(req)
            svc.metrics.observe_trace(tr, alloc, req)
            d = tr.decision
            assert d.status == "fallback" and d.fallback.cause == cause
            assert d.fallback.kind == fallback
            assert "MODEL_FALLBACK" in d.portfolio_reasons
            assert all("MODEL_FALLBACK" in r for r in d.reasons)
            report = check_invariants(tr.gate, tr.context, alloc.limits, alloc.cost_model)
            assert report.n_breaches == 0, report.messages
            total += 1
        text = svc.metrics.exposition().decode()
        assert f'allocator_fallback_total{{cause="{cause}"}} 4.0' in text
        assert 'allocator_decisions_total{status="fallback"} 4.0' in text
    assert total == 16


def test_hold_fallback_proposes_the_current_book(policy: FrozenPolicy) -> None:
    alloc = make_alloc(policy, model=_raise)
    d = alloc.decide(make_request(alloc, shares=held_book(alloc)))
    assert d.proposed_weights == d.current_weights


def test_disabled_allocator_uses_the_defensive_baseline_without_calling_the_model(
    policy: FrozenPolicy,
) -> None:
    alloc = make_alloc(policy, environ={}, model=_raise)  # ENABLED defaults to false
    assert alloc.enabled is False
    d = alloc.decide(make_request(alloc, shares=held_book(alloc)))
    assert d.status == "disabled" and d.fallback.cause == "disabled"
    assert (
        "ALLOCATOR_DISABLED" in d.portfolio_reasons and "MODEL_FALLBACK" not in d.portfolio_reasons
    )
    assert d.proposed_weights == d.current_weights


def test_kill_switch_always_wins(policy: FrozenPolicy) -> None:
    shares = held_book(make_alloc(policy))
    assert np.abs(shares).sum() > 0 and np.array_equal(shares, np.rint(shares))
    for environ, model in ((ENABLED, None), (ENABLED, _raise), ({}, None)):
        alloc = make_alloc(policy, environ=environ, model=model)
        d = alloc.decide(make_request(alloc, shares=shares, kill_switch=True))
        assert d.status == "killed"
        assert d.target_weights == [0.0] * 20 and d.target_qty == [0] * 20
        # the close-out is exactly minus the held quantity, whole shares as JSON integers
        assert d.target_delta_qty == [-int(q) for q in shares]
        assert all(type(q) is int for q in d.target_delta_qty)
        assert '"target_delta_qty":[' + ",".join(str(-int(q)) for q in shares) in (
            d.model_dump_json()
        )
        assert all("KILL_SWITCH" in r for r in d.reasons)
    alloc = make_alloc(policy)
    alloc.operator_kill = True
    assert alloc.decide(make_request(alloc)).status == "killed"


def test_an_engaged_kill_switch_survives_a_restart(policy: FrozenPolicy, tmp_path: Path) -> None:
    """The operator kill switch is kept beside the audit log: a service started again on
    the log is still killed (and audits that), a released one starts released, and an
    unreadable record stops the start instead of guessing."""
    log = tmp_path / "audit.jsonl"
    first = DecisionService(make_alloc(policy), audit_log=log)
    first.set_kill_switch(True, reason="desk halt", actor="ops")
    first.audit.close()
    second = DecisionService(make_alloc(policy), audit_log=log)
    assert second.allocator.operator_kill
    assert second.allocator.decide(make_request(second.allocator)).status == "killed"
    restored = json.loads(log.read_text().splitlines()[-1])["record"]["input"]
    assert restored["kind"] == "kill_switch" and restored["engaged"] is True
    assert "desk halt" in restored["reason"] and restored["actor"] == "restart (ops)"
    kept = json.loads((tmp_path / "audit.jsonl.kill").read_text())
    assert (kept["engaged"], kept["reason"], kept["actor"]) == (True, "desk halt", "ops")
    second.audit.close()  # restarted again: the operator's reason, not a nested one
    second = DecisionService(make_alloc(policy), audit_log=log)
    again = json.loads(log.read_text().splitlines()[-1])["record"]["input"]
    assert again["reason"] == restored["reason"] and again["actor"] == "restart (ops)"
    second.set_kill_switch(False, reason="resume", actor="ops")
    second.audit.close()
    third = DecisionService(make_alloc(policy), audit_log=log)
    assert not third.allocator.operator_kill
    third.audit.close()
    (tmp_path / "audit.jsonl.kill").write_text("{not json")
    with pytest.raises(
        ConfigError, match=r"audit.jsonl.kill' is unreadable .* POST /v1/kill-switch"
    ):
        DecisionService(make_alloc(policy), audit_log=log)


def test_a_lost_kill_file_does_not_release_the_switch(policy: FrozenPolicy, tmp_path: Path) -> None:
    """Without ``<log>.kill`` the log's last switch record decides: engaged there, the
    restarted service is killed; released there (or never switched), it is not."""
    log = tmp_path / "audit.jsonl"
    kill_file = tmp_path / "audit.jsonl.kill"
    svc = DecisionService(make_alloc(policy), audit_log=log)
    assert not svc.allocator.operator_kill  # a log without switch records
    svc.set_kill_switch(True, reason="desk halt", actor="ops")
    svc.decide(make_request(svc.allocator))  # a decision record after the switch's
    svc.audit.close()
    kill_file.unlink()
    again = DecisionService(make_alloc(policy), audit_log=log)
    assert again.allocator.operator_kill
    restored = json.loads(log.read_text().splitlines()[-1])["record"]["input"]
    assert restored["engaged"] is True and "desk halt" in restored["reason"]
    assert json.loads(kill_file.read_text())["engaged"] is True  # kept again
    again.set_kill_switch(False, reason="resume", actor="ops")
    again.audit.close()
    kill_file.unlink()
    third = DecisionService(make_alloc(policy), audit_log=log)
    assert not third.allocator.operator_kill
    third.audit.close()


def test_an_edited_kill_file_does_not_release_the_switch(
    policy: FrozenPolicy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A release writes its audit record before ``<log>.kill``: a file that says released
    under an engaged last switch record was edited (a review's repro). The switch stays
    engaged, the start says why, and the restore is audited; a genuine release and a
    file engaged after a crash mid-release both still restart as recorded."""
    log = tmp_path / "audit.jsonl"
    kill_file = tmp_path / "audit.jsonl.kill"
    svc = DecisionService(make_alloc(policy), audit_log=log)
    svc.set_kill_switch(True, reason="risk breach", actor="ops")
    svc.decide(make_request(svc.allocator))
    svc.audit.close()
    kill_file.write_text(json.dumps({"engaged": False, "at": "", "reason": "", "actor": ""}))
    with caplog.at_level("WARNING", logger="allocgym.serving.service"):
        again = DecisionService(make_alloc(policy), audit_log=log)
    assert again.allocator.operator_kill
    assert "the file was edited; trading stays stopped" in caplog.text
    restored = json.loads(log.read_text().splitlines()[-1])["record"]["input"]
    assert restored["engaged"] is True and "risk breach" in restored["reason"]
    assert json.loads(kill_file.read_text())["engaged"] is True
    again.set_kill_switch(False, reason="resume", actor="ops")
    # the release record is synced and anchored before the file says released (a power
    # loss could otherwise keep the file and lose the record: a review's repro)
    from allocgym.observability import read_anchor

    assert read_anchor(log).n_records == len(log.read_text().splitlines())
    again.audit.close()
    third = DecisionService(make_alloc(policy), audit_log=log)
    assert not third.allocator.operator_kill
    third.audit.close()
    # released in the log, the file still engaged (a crash between the two): engaged
    kill_file.write_text(json.dumps({"engaged": True, "at": "", "reason": "x", "actor": "y"}))
    fourth = DecisionService(make_alloc(policy), audit_log=log)
    assert fourth.allocator.operator_kill
    fourth.audit.close()


def test_a_release_that_cannot_be_audited_leaves_trading_stopped(
    policy: FrozenPolicy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "audit.jsonl"
    svc = DecisionService(make_alloc(policy), audit_log=log)
    svc.set_kill_switch(True, reason="desk halt", actor="ops")
    n = len(log.read_text().splitlines())

    def full_disk(record: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(svc.audit, "append", full_disk)
    with pytest.raises(OSError, match="No space"):
        svc.set_kill_switch(False, reason="resume", actor="ops")
    assert svc.allocator.operator_kill
    assert svc.allocator.decide(make_request(svc.allocator)).status == "killed"
    assert json.loads((tmp_path / "audit.jsonl.kill").read_text())["engaged"] is True
    assert len(log.read_text().splitlines()) == n
    # an engage that cannot be audited still stops trading
    svc2 = DecisionService(make_alloc(policy), audit_log=tmp_path / "other.jsonl")
    monkeypatch.setattr(svc2.audit, "append", full_disk)
    with pytest.raises(OSError):
        svc2.set_kill_switch(True, reason="drill", actor="ops")
    assert svc2.allocator.operator_kill


def test_orders_are_exact_whole_lots(policy: FrozenPolicy) -> None:
    alloc = make_alloc(policy)
    shares = held_book(alloc)
    d = alloc.decide(make_request(alloc, shares=shares))
    assert d.status == "ok"
    delta, target = np.asarray(d.target_delta_qty), np.asarray(d.target_qty)
    assert np.array_equal(delta, np.rint(delta)) and np.array_equal(target, np.rint(target))
    assert np.array_equal(target, shares + delta)  # exact, no float dust
    assert all(type(q) is int for q in (*d.target_delta_qty, *d.target_qty))


# ----------------------------------------------------------------------------- flags


def test_runtime_flags_tighten_the_limits(policy: FrozenPolicy) -> None:
    env = {**ENABLED, "TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY": "0.03"}
    alloc = make_alloc(policy, environ=env)
    assert alloc.limits.max_symbol_weight == 0.03
    d = alloc.decide(make_request(alloc))
    assert max(np.abs(d.approved_weights)) <= 0.03 + 1e-12
    assert alloc.describe()["flags"]["TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY"] == "0.03"


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY": "1.0"}, "SYMBOL_CAP in trend 1 > sealed 0.1"),
        ({"TRADING_ALLOCATOR_MAX_SYMBOL_NOTIONAL": "none"}, None),
        (
            {"TRADING_ALLOCATOR_REGIME_CAPACITY_MULTIPLIERS": '{"trend": 2.0}'},
            "capacity multiplier in trend 2 > sealed 1",
        ),
        (
            {"TRADING_ALLOCATOR_DEFAULT_BUDGET_MULTIPLIER": "1.5"},
            "budget multiplier in unknown 1.5 > sealed 1",
        ),
        (
            {"TRADING_ALLOCATOR_REGIME_BUDGET_MULTIPLIERS": '{"trend": 1.0}'},
            "budget multiplier in high_volatility 1 > sealed 0.6",  # the map replaces the sealed one
        ),
    ],
)
def test_runtime_flags_cannot_loosen_the_sealed_limits(
    policy: FrozenPolicy, variables: dict[str, str], named: str | None
) -> None:
    """The bundle's sealed limits are the ceiling: whoever sets the environment can tighten
    them, never widen them."""
    sealed = policy.risk_config
    if named is None:  # removing a notional cap loosens only when the bundle has one
        assert sealed.max_symbol_notional is None
        assert (
            make_alloc(policy, environ={**ENABLED, **variables}).limits.max_symbol_notional is None
        )
        return
    with pytest.raises(GateConfigError, match="loosen the bundle's sealed limits") as err:
        make_alloc(policy, environ={**ENABLED, **variables})
    assert named in str(err.value) and next(iter(variables)) in str(err.value)


def test_loosened_compares_every_registry_bound() -> None:
    """The strategy tilts (clamped by MIN/MAX_MULTIPLIER), a removed notional cap and the
    default regime's bounds count too; tightening is not loosening."""
    from allocgym.config import RiskConfig
    from allocgym.serving.flags import limits_from_env, loosened

    def after(sealed: RiskConfig, **variables: str) -> list[str]:
        env = {f"TRADING_ALLOCATOR_{k.upper()}": v for k, v in variables.items()}
        return loosened(sealed, limits_from_env(sealed, env))

    tilted = RiskConfig(max_multiplier=1.0, regime_strategy_tilts={"trend": {"trend": 1.8}})
    assert after(tilted, max_multiplier="2.0") == [
        "STRATEGY_CAP in trend for trend 1.08 > sealed 0.6"
    ]
    capped = RiskConfig(max_symbol_notional=1e6)
    assert after(capped, max_symbol_notional="none") == [
        "SYMBOL_NOTIONAL_CAP removed (sealed up to 1e+06)"
    ]
    assert after(capped, max_symbol_notional="2e6")[0].startswith("SYMBOL_NOTIONAL_CAP in ")
    calm = RiskConfig(default_regime="high_volatility")
    lines = after(calm, default_regime="trend")
    assert "GROSS_CAP of the default regime 'trend' is above that of the sealed default" in (
        "\n".join(lines)
    )
    assert after(RiskConfig(), max_symbol_pct_equity="0.05", max_multiplier="1.0") == []
    # a bound without a regime multiplier (no flag reaches one today)
    assert loosened(RiskConfig(max_net=0.5), RiskConfig(max_net=1.0)) == ["NET_CAP 1 > sealed 0.5"]
    assert after(RiskConfig(), default_regime="high_volatility") == []


def test_regime_multiplier_flags_with_a_regime_override(policy: FrozenPolicy) -> None:
    from allocgym.serving import RegimeOverride

    # the map replaces the bundle's: the other regimes keep their sealed multipliers
    budgets = {**policy.risk_config.regime_budget_multipliers, "high_volatility": 0.25}
    env = {**ENABLED, "TRADING_ALLOCATOR_REGIME_BUDGET_MULTIPLIERS": json.dumps(budgets)}
    alloc = make_alloc(policy, environ=env)
    req = make_request(alloc).model_copy(
        update={"regime": RegimeOverride(label="high_volatility", confidence=0.9)}
    )
    d = alloc.decide(req)
    assert d.regime.source == "request" and d.regime.budget_multiplier == 0.25
    assert sum(np.abs(d.approved_weights)) <= 0.25 * alloc.limits.max_gross + 1e-12


def test_default_regime_flag_when_regime_comes_from_requests(policy: FrozenPolicy) -> None:
    serving = serving_config(policy, ["serving.regime_source=request"])
    env = {**ENABLED, "TRADING_ALLOCATOR_DEFAULT_REGIME": "uncertain"}
    with warnings.catch_warnings():  # the flag acts here: no warning
        warnings.simplefilter("error", UserWarning)
        alloc = make_alloc(policy, environ=env, serving=serving)
        make_alloc(policy, environ=ENABLED)  # the flag unset: none either
    d = alloc.decide(make_request(alloc))
    assert (d.regime.label, d.regime.code, d.regime.source) == ("uncertain", 3, "default")
    alloc2 = make_alloc(policy, serving=serving)  # the trading allocator's default label 'neutral'
    d2 = alloc2.decide(make_request(alloc2))
    assert (d2.regime.label, d2.regime.code) == ("neutral", -1)
    # with the model's regime the flag would never act: said at startup
    with pytest.warns(UserWarning, match="DEFAULT_REGIME is set but serving.regime_source is"):
        make_alloc(policy, environ=env)


def test_bad_flag_values_fail_at_startup(policy: FrozenPolicy) -> None:
    with pytest.raises(GateConfigError, match="TRADING_ALLOCATOR_ENABLED"):
        make_alloc(policy, environ={"TRADING_ALLOCATOR_ENABLED": "maybe"})
    with pytest.raises(GateConfigError, match="MIN_MULTIPLIER"):
        make_alloc(
            policy,
            environ={
                "TRADING_ALLOCATOR_MIN_MULTIPLIER": "3",
                "TRADING_ALLOCATOR_MAX_MULTIPLIER": "1",
            },
        )


def test_serving_overrides_are_limited_to_the_serving_section(policy: FrozenPolicy) -> None:
    assert serving_config(policy, ["serving.deadline_ms=5"]).deadline_ms == 5.0
    with pytest.raises(ConfigError, match="not serving"):
        serving_config(policy, ["risk.max_gross=2"])


def test_reduce_only_never_increases_a_position(policy: FrozenPolicy) -> None:
    alloc = make_alloc(policy)
    shares = held_book(alloc) * 0.5
    d = alloc.decide(make_request(alloc, shares=shares, reduce_only=True))
    assert (np.abs(d.target_qty) <= np.abs(shares) + 1e-9).all()


# ----------------------------------------------------------------------------- service


def test_idempotency_and_conflicts(policy: FrozenPolicy, tmp_path: Path) -> None:
    alloc = make_alloc(policy)
    svc = DecisionService(alloc, audit_log=tmp_path / "a.jsonl", cache_size=2)
    req = make_request(alloc, rid="same")
    first = svc.decide(req)
    again = svc.decide(req)
    assert again.cached and again.body == first.body
    assert len(svc.audit) == 1  # not decided (nor audited) twice
    with pytest.raises(IdempotencyConflict, match="different"):
        svc.decide(req.model_copy(update={"equity": req.equity * 2}))
    for i in range(3):  # the LRU forgets the oldest id
        svc.decide(make_request(alloc, rid=f"other{i}"))
    assert not svc.decide(req).cached


def test_audit_log_replays_byte_for_byte_and_detects_tampering(
    policy: FrozenPolicy, tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    alloc = make_alloc(policy, model=None)
    svc = DecisionService(alloc, audit_log=log)
    shares = held_book(alloc)
    svc.decide(make_request(alloc, rid="ok", shares=shares))
    svc.decide(
        make_request(alloc, rid="stale").model_copy(
            update={"timestamp": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)}
        )
    )
    svc.set_kill_switch(True, reason="test", actor="pytest")
    svc.decide(make_request(alloc, rid="killed", shares=shares))
    svc.set_kill_switch(False)
    slow = make_alloc(
        policy, model=_slow, serving=serving_config(policy, ["serving.deadline_ms=5"])
    )
    svc_slow = DecisionService(slow, audit_log=svc.audit)  # same chain
    svc_slow.decide(make_request(slow, rid="deadline", shares=shares))
    assert len(svc.audit) == 6
    assert svc.audit.verify().ok
    # another process, later: no clock
    fresh = FrozenAllocator(policy, environ=ENABLED, serving=patient(policy))
    report = replay_audit(log, fresh)
    assert report.ok and report.n_reproduced == 6, report
    statuses = [
        json.loads(line)["record"]["output"].get("status") for line in log.read_text().splitlines()
    ]
    assert statuses == ["ok", "rejected", None, "killed", None, "fallback"]
    arrays = sorted((tmp_path / "audit.jsonl.arrays").glob("*.bin"))
    assert len(arrays) == 5  # close, volume, spread, benchmark, tradable: shared by all records
    raw = bytearray(arrays[0].read_bytes())
    raw[3] ^= 1
    arrays[0].write_bytes(bytes(raw))
    with pytest.raises(ArrayStoreError, match="modified"):
        replay_audit(log, fresh)
    text = log.read_bytes()
    log.write_bytes(text.replace(b'"status":"ok"', b'"status":"ko"', 1))
    with pytest.raises(AuditChainError, match="line 1"):
        replay_audit(log, fresh)


def test_array_files_are_synced_and_a_broken_one_is_written_again(
    policy: FrozenPolicy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new array file is synced (with its folder) before the log its records are in,
    at the log's own syncs, not on every decision (a review measured 8 fsyncs per
    stateless decision when each put synced), and a file a crash left empty is written
    again after a restart, not trusted by its name (a review's repro: anchored records
    stopped replaying after a simulated power loss)."""
    from allocgym.serving.service import ArrayStore

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    a = np.arange(12.0).reshape(3, 4)
    store = ArrayStore(tmp_path / "arrays")
    ref = store.put(a)
    assert not synced
    store.sync()
    assert len(synced) == 2  # the file, then the folder's entry
    store.sync()
    assert len(synced) == 2  # nothing new
    (blob,) = (tmp_path / "arrays").glob("*.bin")
    blob.write_bytes(b"")  # lost with the power
    with pytest.raises(ArrayStoreError, match="modified"):
        store.get(ref)
    assert store.put(a) == ref and blob.read_bytes() == b""  # this process knows the digest
    restarted = ArrayStore(tmp_path / "arrays")
    assert restarted.put(a) == ref
    np.testing.assert_array_equal(restarted.get(ref), a)
    synced.clear()
    again = ArrayStore(tmp_path / "arrays")
    assert again.put(a) == ref and not synced  # intact: kept, not written again
    again.sync()  # but synced once: a killed process may have left it in the page cache
    assert len(synced) == 2
    # a service's arrays are synced before its log at the anchor, not at each decision
    log = tmp_path / "audit.jsonl"
    svc = DecisionService(make_alloc(policy), audit_log=log)
    synced.clear()
    svc.decide(make_request(svc.allocator))
    assert not synced  # no fsync on the decision path without --audit-fsync
    svc.audit.close()
    arrays = len(list((tmp_path / "audit.jsonl.arrays").glob("*.bin")))
    assert arrays and len(synced) >= arrays + 2  # the arrays, their folder, then the log


def test_audit_log_with_inline_arrays_replays(policy: FrozenPolicy, tmp_path: Path) -> None:
    log = tmp_path / "inline.jsonl"
    alloc = make_alloc(policy)
    svc = DecisionService(alloc, audit_log=log, inline_arrays=True)
    svc.decide(make_request(alloc, rid="i1", shares=held_book(alloc)))
    assert not (tmp_path / "inline.jsonl.arrays").exists()
    assert '"b64"' in log.read_text()
    assert replay_audit(log, FrozenAllocator(policy, environ=ENABLED, serving=patient(policy))).ok


# ----------------------------------------------------------------------------- schema details


@settings(deadline=None, max_examples=50)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(0, 6), st.integers(1, 5)),
        elements=st.floats(allow_nan=True, allow_infinity=True),
    )
)
def test_array_encoding_is_exact(a: np.ndarray) -> None:
    b = decode_array(json.loads(json.dumps(encode_array(a))))
    assert b.shape == a.shape and b.tobytes() == a.tobytes()


def test_array_encoding_rejects_inconsistent_payloads() -> None:
    enc = encode_array(np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError, match="bytes"):
        decode_array({**enc, "shape": [2, 4]})
    with pytest.raises(ValueError, match="dtype"):
        decode_array({**enc, "dtype": "O"})
    with pytest.raises(ValueError, match="base64"):
        decode_array({**enc, "b64": "***"})


def test_array_encoding_codes_and_bytes() -> None:
    """Booleans stay |b1, any integer becomes <i8, anything else <f8, whatever the byte
    order or layout; b64 is standard base64 of the little-endian C-order bytes."""
    cases = [
        (np.array([[True, False], [False, True]]).T, "|b1", np.bool_),
        (np.arange(6, dtype=">i4").reshape(2, 3)[:, ::2], "<i8", "<i8"),
        (np.arange(4, dtype=np.uint16), "<i8", "<i8"),
        (np.linspace(-1, 1, 6, dtype=">f8").reshape(3, 2).T, "<f8", "<f8"),
        (np.array([0.1, 2.5], dtype=np.float32), "<f8", "<f8"),
    ]
    for a, code, dtype in cases:
        enc = encode_array(a)
        want = np.ascontiguousarray(a, dtype=dtype).tobytes()
        assert enc == {
            "dtype": code,
            "shape": list(a.shape),
            "b64": base64.b64encode(want).decode(),
        }


def test_trusted_builds_what_model_construct_builds() -> None:
    values = dict(
        strategy="cash", budget=0.25, proposed_gross=0.0, approved_gross=0.0,
        base_cap=None, regime_cap=None, cap=None, utilization=None,
    )  # fmt: skip
    built, constructed = trusted(StrategyBudget, **values), StrategyBudget.model_construct(**values)
    assert built == constructed and list(vars(built)) == list(vars(constructed))
    assert built.model_fields_set == constructed.model_fields_set == set(values)
    assert built.model_dump_json() == constructed.model_dump_json()
    with pytest.raises(KeyError, match="regime_cap"):
        trusted(StrategyBudget, **{k: v for k, v in values.items() if k != "regime_cap"})
    with pytest.raises(KeyError, match="utilisation"):  # a misspelt field is not dropped
        trusted(StrategyBudget, **values, utilisation=0.5)


def test_request_accepts_lists_and_encoded_arrays_identically(policy: FrozenPolicy) -> None:
    alloc = make_alloc(policy)
    req = make_request(alloc)
    from_lists = DecisionRequest.model_validate_json(req.model_dump_json())
    from_b64 = DecisionRequest.model_validate(req.to_audit())
    for name in ("close", "volume", "spread_bps", "benchmark_returns", "tradable"):
        assert getattr(from_lists, name).tobytes() == getattr(req, name).tobytes()
        assert getattr(from_b64, name).tobytes() == getattr(req, name).tobytes()
    with pytest.raises(ValueError, match="rectangular"):
        DecisionRequest.model_validate(
            {**json.loads(req.model_dump_json()), "close": [[1.0, 2.0], [3.0]]}
        )


def test_cli_decide_prints_the_decision(bundle: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from allocgym.cli import app

    alloc = make_alloc(FrozenPolicy.load(bundle))
    state = tmp_path / "state.json"
    state.write_text(make_request(alloc, rid="cli-1").model_dump_json())
    now = bar_clock(sp500(), T0).isoformat()
    res = CliRunner().invoke(
        app, ["decide", "--policy", str(bundle), "--state", str(state), "--now", now], env=ENABLED
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["request_id"] == "cli-1" and out["status"] == "ok"
    stale = CliRunner().invoke(
        app, ["decide", "--policy", str(bundle), "--state", str(state)], env=ENABLED
    )
    assert stale.exit_code == 1 and json.loads(stale.stdout)["reject"]["code"] == "STALE_INPUT"


def test_cli_write_example_prints_the_now_that_decides_it(bundle: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from allocgym.cli import app

    state = tmp_path / "example.json"
    res = CliRunner().invoke(
        app, ["decide", "--policy", str(bundle), "--write-example", str(state)]
    )
    assert res.exit_code == 0, res.output
    command = res.output.strip().splitlines()[-1].split()
    # the printed command turns trading on, or it would decide 'disabled'
    assert command[:3] == ["TRADING_ALLOCATOR_ENABLED=true", "allocgym", "decide"]
    assert "--now" in command
    now = command[command.index("--now") + 1]
    name, value = command[0].split("=")
    ok = CliRunner().invoke(app, command[2:], env={name: value})
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["status"] == "ok"
    assert now == json.loads(state.read_text())["timestamp"].replace("Z", "+00:00")


def test_reason_codes_used_by_serving_exist() -> None:
    assert {c.name for c in ReasonCode} >= {
        "MODEL_FALLBACK",
        "ALLOCATOR_DISABLED",
        "STALE_INPUT",
        "INVALID_INPUT",
    }


def test_a_request_id_decided_before_a_restart_is_not_decided_again(
    policy: FrozenPolicy, tmp_path: Path
) -> None:
    """A client retrying across a restart must not get a second decision (two orders for
    one request): the ids of the log's last decisions answer 409, naming the record."""
    from allocgym.serving.service import IdempotencyConflict

    log = tmp_path / "audit.jsonl"
    first = DecisionService(make_alloc(policy), audit_log=log)
    req = make_request(first.allocator)
    assert first.decide(req).status == "ok"
    first.audit.close()
    again = DecisionService(make_alloc(policy), audit_log=log)
    with pytest.raises(IdempotencyConflict, match=r"decided before the service restarted "
                       r"\(audit record seq 0\)"):  # fmt: skip
        again.decide(req)
    fresh = req.model_copy(update={"request_id": "after-restart"})
    assert again.decide(fresh).status == "ok"
    again.audit.close()


def test_recent_decision_ids_reads_the_log_from_its_end(tmp_path: Path) -> None:
    from allocgym.observability import AuditLog
    from allocgym.serving.service import recent_decision_ids

    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        for i in range(10):  # 300 KB records: lines cross the 1 MB blocks read
            log.append({"request_id": f"r{i}", "input": {"kind": "decision", "pad": "x" * 300_000}})
            log.append({"request_id": f"kill-{i}", "input": {"kind": "kill_switch"}})
    assert recent_decision_ids(path, 3) == {"r9": 18, "r8": 16, "r7": 14}
    assert recent_decision_ids(path, 100) == {f"r{i}": 2 * i for i in range(9, -1, -1)}
    assert recent_decision_ids(tmp_path / "none.jsonl", 5) == {}


def test_the_kill_switch_wins_over_a_stored_trading_decision(policy: FrozenPolicy) -> None:
    from allocgym.serving.service import IdempotencyConflict

    svc = DecisionService(make_alloc(policy))
    req = make_request(svc.allocator)
    assert svc.decide(req).status == "ok"
    svc.set_kill_switch(True, reason="drill", actor="ops")
    with pytest.raises(IdempotencyConflict, match="before the kill switch was engaged"):
        svc.decide(req)  # a retry would have been handed its trading target
    killed = svc.decide(req.model_copy(update={"request_id": "new-id"}))
    assert killed.status == "killed"
    assert svc.decide(req.model_copy(update={"request_id": "new-id"})).cached  # killed: kept
    svc.set_kill_switch(False, reason="resume", actor="ops")
    again = svc.decide(req)
    assert again.cached and again.status == "ok"


def test_the_kill_switch_wins_over_a_stored_disabled_decision_that_trades() -> None:
    """A disabled allocator still trades (here the HRP fallback buys a book from cash):
    a retry of that decision under the kill switch had been handed its orders back; a
    stored decision without orders is still served."""
    from allocgym.serving.service import IdempotencyConflict

    policy = FrozenPolicy.load(untrained_bundle("weights"))
    market = small_market()
    off = FrozenAllocator(
        policy, environ={}, serving=patient(policy, "serving.fallback=hrp"),
        clock=fixed_clock(bar_clock(market, 400)),
    )  # fmt: skip
    svc = DecisionService(off)
    buys = request_from_market(market, 400, history=off.history, request_id="buys")
    first = json.loads(svc.decide(buys).body)
    assert first["status"] == "disabled" and any(first["target_delta_qty"])
    idle = buys.model_copy(update={"request_id": "idle", "reduce_only": True})
    assert not any(json.loads(svc.decide(idle).body)["target_delta_qty"])
    svc.set_kill_switch(True, reason="drill", actor="ops")
    with pytest.raises(IdempotencyConflict, match="before the kill switch was engaged"):
        svc.decide(buys)
    assert svc.decide(idle).cached


# ----------------------------------------------------------------------------- held bars


def _hold_walk(policy: FrozenPolicy, market, start: int, n_bars: int) -> list[str]:
    """Walk the env core bar by bar at ``env.decision_interval`` (``hold_rule`` between
    decisions, as ``core.step`` does) and ask serving for every bar: a decision on due
    bars, else ``hold_target`` = the last response's ``proposed_weights`` while it said
    ``working``, or ``"current"``; with ``execution.scheduled_only``, ``scheduled`` =
    the env's schedule. Every bar's proposal, approved book, orders, codes and
    ``working`` equal the env's bit for bit; returns the kind of each bar."""
    from allocgym.config import config_from_dict
    from allocgym.envs import build_params, core
    from allocgym.execution import hold_rule

    cfg = config_from_dict(policy.manifest["config"])
    params = build_params(market, cfg, "all")
    every = cfg.execution.schedule_every if cfg.execution.scheduled_only else 1
    state, obs = core.reset(params, core.seed_keys([3]), start=np.array([start]))
    alloc = FrozenAllocator(policy, environ=ENABLED, serving=patient(policy))
    last, kinds = None, []
    for k in range(n_bars):
        t = int(state.t[0])
        due = bool(core.due_for_decision(params, state)[0])
        if due:
            hold, kind = None, "decision"
        elif last.working:
            hold, kind = dict(zip(last.symbols, last.proposed_weights, strict=True)), "target"
        else:
            hold, kind = "current", "current"
        req = request_from_market(
            market, t, history=alloc.history, request_id=f"h{k}", shares=state.shares[0],
            cash=float(state.cash[0]), equity=float(state.equity[0]),
            peak_equity=float(state.peak[0]), hold_target=hold, scheduled=t % every == 0,
        )  # fmt: skip
        tr = alloc.trace(req, now=bar_clock(market, t))
        d = tr.decision
        assert (d.status, d.hold) == ("ok", not due), (k, d.reject)
        fresh = np.zeros((1, market.n_assets))
        if due:
            assert np.array_equal(tr.observation, obs)
            fresh = policy(obs)  # weights; in tilt mode the clipped action, tilted here
            if policy.mode == "tilt":
                fresh = core.action_weights(params, state.t, fresh)
        proposed = hold_rule(
            np.array([due]), fresh, state.held, state.working, core.current_weights(params, state)
        )
        res = core.step_proposed(params, state, proposed, due=np.array([due]))
        info = {key: v[0] for key, v in res.info.items()}
        assert np.array_equal(np.asarray(d.proposed_weights), proposed[0])
        assert np.array_equal(np.asarray(d.approved_weights), info["approved"])
        assert np.array_equal(np.asarray(d.target_weights), info["target"])
        assert np.array_equal(np.asarray(d.target_delta_qty), info["delta_qty"])
        assert np.array_equal(np.asarray(d.reason_mask), info["symbol_reasons"])
        assert d.working == bool(res.state.working[0]), k
        state, obs, last = res.state, res.obs, d
        kinds.append(kind)
        if res.terminated[0] or res.truncated[0]:
            break
    return kinds


@pytest.mark.parametrize(("mode", "schedule"), [("weights", None), ("tilt", None), ("weights", 2)])
def test_hold_requests_replay_the_envs_held_bars(mode: str, schedule: int | None) -> None:
    """``env.decision_interval = 3`` with a 0.1 turnover cap: a decision the cap cuts
    short stays ``working``, and the held bars' ``hold_target`` requests (the proposal
    again, or the drifted book) trade exactly as the env's held bars do; also with
    ``execution.scheduled_only`` every 2 bars, the requests saying which bars are
    scheduled (serving had treated every bar as one: 5 of 24 bars differed)."""
    bundle = untrained_bundle(mode, interval=3, max_turnover=0.1, schedule_every=schedule)
    policy = FrozenPolicy.load(bundle)
    kinds = _hold_walk(policy, small_market(), start=340, n_bars=30)
    assert len(kinds) == 30
    assert {"decision", "target", "current"} <= set(kinds), kinds


def test_hold_requests_do_not_call_the_model_and_are_checked() -> None:
    """A held bar is decided without the model (a failing model changes nothing there);
    an unknown symbol, a non-finite weight and a budgets-mode bundle are coded
    INVALID_INPUT rejects naming the field."""
    policy = FrozenPolicy.load(untrained_bundle("weights"))
    market = small_market()

    def broken(obs: np.ndarray) -> np.ndarray:
        raise RuntimeError("the model must not be called on a held bar")

    alloc = FrozenAllocator(policy, environ=ENABLED, serving=patient(policy), model=broken)
    target = {sym: 0.1 for sym in market.symbols}

    def ask(hold: object, a: FrozenAllocator = alloc) -> object:
        req = request_from_market(market, 400, history=a.history, request_id="h", hold_target=hold)
        return a.trace(req, now=bar_clock(market, 400)).decision

    d = ask(target)
    assert (d.status, d.hold, d.fallback) == ("ok", True, None)
    assert d.proposed_weights == [0.1] * market.n_assets
    assert ask("current").proposed_weights == [0.0] * market.n_assets  # an all-cash book
    assert ask(None).status == "fallback"  # a decision does call it
    for hold, field in (({"NOPE": 0.1}, "hold_target"), ({market.symbols[1]: np.nan}, None)):
        d = ask(hold)
        assert d.status == "rejected" and d.reject is not None and d.working is None
        assert d.reject.code == "INVALID_INPUT"
        assert d.reject.field == (field or f"hold_target.{market.symbols[1]}")
    # a hold the allocator could not honour: disabled, the defensive book is no target
    off = FrozenAllocator(policy, environ={}, serving=patient(policy), model=broken)
    d = ask(target, off)
    assert (d.status, d.hold, d.working) == ("disabled", False, False)
    budgets = FrozenPolicy.load(untrained_bundle("budgets"))
    b = FrozenAllocator(budgets, environ=ENABLED, serving=patient(budgets))
    d = ask("current", b)
    assert d.status == "rejected" and "budgets-mode" in d.reject.message


# ----------------------------------------------------------------------------- audit replay


def test_client_maps_shaped_like_audit_markers_replay(tmp_path: Path) -> None:
    """Positions keyed dtype / shape / sha256 (an array reference's keys) and a family map
    keyed ``$float`` (the non-finite float marker) are coded rejects, audited as sent: the
    replay had read them as a reference and a float and stopped at the record."""
    policy = FrozenPolicy.load(untrained_bundle("weights"))
    market = small_market()
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=patient(policy), clock=fixed_clock(bar_clock(market, 400))
    )
    svc = DecisionService(alloc, audit_log=tmp_path / "audit.jsonl")
    base = request_from_market(market, 400, history=alloc.history, request_id="r0")
    odd = (
        {"positions": {"dtype": 1.0, "shape": 2.0, "sha256": 3.0}},
        {"strategy_horizons": {"$float": 5}},
        {"strategy_intents": {"$float": np.zeros(market.n_assets)}},
    )
    for k, change in enumerate(odd):
        req = DecisionRequest.model_validate(
            base.model_dump() | change | {"request_id": f"odd-{k}"}
        )
        assert json.loads(svc.decide(req).body)["status"] == "rejected"
    assert svc.decide(base).status == "ok"
    report = replay_audit(tmp_path / "audit.jsonl", FrozenAllocator(policy, environ=ENABLED))
    assert report.ok and report.n_records == 4, report.mismatches


def test_a_flat_feed_audits_each_decision_with_its_own_window(tmp_path: Path) -> None:
    """Bars that leave the held window's bytes unchanged (a flat feed) make new window
    arrays under the same digest: the per-bar array references had been looked up by the
    ids of the previous bar's freed arrays, and records named other fields' arrays."""
    from allocgym.serving.schemas import AccountRequest, Bar

    policy = FrozenPolicy.load(untrained_bundle("weights"))
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    clock = {"now": start}
    alloc = FrozenAllocator(
        policy, environ=ENABLED, serving=patient(policy), clock=lambda: clock["now"]
    )
    svc = DecisionService(alloc, audit_log=tmp_path / "audit.jsonl")
    n, held = len(alloc.symbols), svc.market.window_bars
    prev = None
    for k in range(held + 12):
        at = start + dt.timedelta(days=k)
        clock["now"] = at + dt.timedelta(hours=1)
        bar = Bar(
            timestamp=at, previous=prev, symbols=list(alloc.symbols), close=np.full(n, 100.0),
            volume=np.full(n, 1e6), spread_bps=np.full(n, 5.0), benchmark_return=0.0,
        )  # fmt: skip
        assert svc.apply_bar(bar).status == "applied"
        prev = at
        if k >= held:
            account = AccountRequest(
                request_id=f"a{k}", bar=at, equity=1e6, cash=1e6, buying_power=1e6
            )
            assert svc.decide_account(account).status == "ok"
    report = replay_audit(tmp_path / "audit.jsonl", FrozenAllocator(policy, environ=ENABLED))
    assert report.ok and report.n_records == 12, report.mismatches
