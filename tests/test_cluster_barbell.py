"""Cluster barbell: barbell isolation, caps, regime scaling, layers, audit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from allocgym.allocator import AllocationContext, Allocator
from allocgym.baselines.cluster_barbell import (
    CRISIS,
    NORMAL,
    QUIET,
    ClusterBarbell,
    cluster_assets,
    intra_cluster_weights,
    n_sleeve_clusters,
)
from allocgym.config import BarbellConfig, config_from_dict
from allocgym.errors import ConfigError, DataError
from allocgym.estimates import ledoit_wolf
from allocgym.measures import cvar
from allocgym.regime import BARBELL_STATES, regime_code

K_PLANTED, PER = 12, 3


def planted(seed: int = 0, n_obs: int = 252, k: int = K_PLANTED, per: int = PER) -> np.ndarray:
    """Block returns: asset j loads on factor j // per (within-cluster rho ~ 0.8)."""
    rng = np.random.default_rng(seed)
    scale = np.linspace(0.006, 0.02, k)
    f = rng.normal(0.0, 1.0, (n_obs, k)) * scale
    eps = rng.normal(0.0, 1.0, (n_obs, k * per)) * np.repeat(scale, per) * 0.5
    return 0.0003 + np.repeat(f, per, axis=1) + eps


def make_ctx(
    returns: np.ndarray,
    regime: list[int] | None = None,
    confidence: list[float] | None = None,
    scores: np.ndarray | None = None,
    barbell: list[str] | None = None,
) -> AllocationContext:
    r = returns if returns.ndim == 3 else returns[None]
    n_envs, _, n = r.shape
    return AllocationContext(
        returns=r,
        current_weights=np.zeros((n_envs, n)),
        symbols=tuple(f"S{i:02d}" for i in range(n)),
        sector_ids=np.zeros(n, dtype=np.int64),
        regime=np.array(regime if regime is not None else [-1] * n_envs),
        regime_confidence=np.array(confidence if confidence is not None else [0.0] * n_envs),
        scores=scores,
        barbell=None if barbell is None else np.array([BARBELL_STATES.index(b) for b in barbell]),
    )


def cluster_scores(n_envs: int = 1) -> np.ndarray:
    """Alpha scores: cluster c's members score c (+ a small within-cluster spread)."""
    s = np.repeat(np.arange(K_PLANTED, dtype=float), PER) + np.tile([0.0, 0.1, 0.2], K_PLANTED)
    return np.tile(s, (n_envs, 1))


def check_invariants(alloc: ClusterBarbell, w: np.ndarray, cap: float = 0.25) -> None:
    for b in range(w.shape[0]):
        sleeve, core = set(alloc.sleeve_clusters_[b]), set(alloc.core_clusters_[b])
        k = int(alloc.n_clusters_[b])
        assert not sleeve & core  # zero overlap
        assert sleeve | core == set(range(k))
        assert (alloc.cluster_gross_[b] <= cap + 1e-12).all()
        assert np.allclose(alloc.cluster_gross_[b], alloc.cluster_net_[b], atol=0)
        labels = alloc.clusters_[b]
        gross = np.array([w[b, labels == c].sum() for c in range(k)])
        assert np.allclose(gross, alloc.cluster_gross_[b], atol=1e-15)
        assert (w[b] >= 0).all() and w[b].sum() <= 1 + 1e-12
        assert (w[b, labels < 0] == 0).all()


# ----------------------------------------------------------------------------- acceptance


@pytest.mark.parametrize(
    ("state", "sleeve_frac"), [("QUIET", 0.15), ("NORMAL", 0.10), ("CRISIS", 0.05)]
)
def test_barbell_acceptance_explicit_state(state: str, sleeve_frac: float) -> None:
    alloc = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED))
    assert isinstance(alloc, Allocator)
    ctx = make_ctx(planted(), scores=cluster_scores())
    w = alloc.allocate(ctx, barbell_state=state)
    check_invariants(alloc, w)
    # The planted clusters are recovered, labelled by first member.
    assert np.array_equal(alloc.clusters_[0], np.repeat(np.arange(K_PLANTED), PER))
    # Top-5 clusters by alpha form the sleeve, best first, and are excluded from the core.
    assert alloc.sleeve_clusters_[0] == (11, 10, 9, 8, 7)
    assert alloc.core_clusters_[0] == (0, 1, 2, 3, 4, 5, 6)
    sleeve_assets = np.isin(alloc.clusters_[0], alloc.sleeve_clusters_[0])
    assert abs(w[0, sleeve_assets].sum() - sleeve_frac) <= 1e-15
    assert abs(alloc.sleeve_fraction_[0] - sleeve_frac) <= 1e-15
    # Sleeve split equally across its 5 clusters; the core holds the rest, fully invested.
    for c in alloc.sleeve_clusters_[0]:
        assert alloc.cluster_gross_[0][c] == pytest.approx(sleeve_frac / 5, abs=1e-16)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert alloc.barbell_state_[0] == BARBELL_STATES.index(state)


def test_context_barbell_state_drives_sleeve_fraction() -> None:
    """The regime model's state (ctx.barbell) sets the sleeve; labels no longer matter."""
    r = np.stack([planted(1)] * 4)
    labels = ["trend", "high_volatility", "uncertain", "neutral"]
    states = ["CRISIS", "QUIET", "NORMAL", "QUIET"]  # deliberately unlike any label mapping
    ctx = make_ctx(
        r, [regime_code(x) for x in labels], [0.9, 0.2, 0.5, 1.0], cluster_scores(4), states
    )
    alloc = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED))
    w = alloc.allocate(ctx)
    check_invariants(alloc, w)
    assert alloc.barbell_state_.tolist() == [CRISIS, QUIET, NORMAL, QUIET]
    assert np.allclose(alloc.sleeve_fraction_, [0.05, 0.15, 0.10, 0.15], atol=1e-15)
    assert [a["regime"] for a in alloc.audit_] == [*labels[:3], "unknown"]
    assert [a["state_source"] for a in alloc.audit_] == ["regime_model"] * 4
    assert [a["regime_score"] for a in alloc.audit_] == [0.9, 0.2, 0.5, 1.0]


def test_context_without_barbell_state_is_refused() -> None:
    alloc = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED))
    ctx = make_ctx(planted(1), [regime_code("trend")], [0.9], scores=cluster_scores())
    with pytest.raises(DataError, match=r"ctx.barbell is None.*allocation_context"):
        alloc.allocate(ctx)


def test_label_to_state_confidence_key_is_refused() -> None:
    # The barbell takes the regime model's barbell state; no label -> state threshold exists.
    with pytest.raises(
        ConfigError, match=r"unknown key 'baselines\.barbell\.quiet_min_confidence'"
    ):
        config_from_dict({"baselines": {"barbell": {"quiet_min_confidence": 0.6}}})
    assert not hasattr(BarbellConfig(), "quiet_min_confidence")


def test_explicit_state_codes_and_bad_state() -> None:
    alloc = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED))
    r = np.stack([planted(2)] * 2)
    alloc.allocate(make_ctx(r, scores=cluster_scores(2)), barbell_state=np.array([2, 0]))
    assert np.allclose(alloc.sleeve_fraction_, [0.05, 0.15], atol=1e-15)
    assert all(a["state_source"] == "explicit" and a["regime_score"] == 1.0 for a in alloc.audit_)
    with pytest.raises(ConfigError, match="CALM"):
        alloc.allocate(make_ctx(r), barbell_state="CALM")
    with pytest.raises(ConfigError, match="codes"):
        alloc.allocate(make_ctx(r), barbell_state=np.array([3, 0]))


# ----------------------------------------------------------------------------- layers


def test_intra_cluster_hybrid_hand_values() -> None:
    # IV = (0.4, 0.4, 0.2); alpha ranks (1, 2, 3) / 6 -> 0.5 IV + 0.5 AR.
    w = intra_cluster_weights(
        np.array([0.01, 0.01, 0.02]), np.array([0.0, 1.0, 2.0]), np.zeros(3, int)
    )
    assert np.allclose(w, [0.2 + 1 / 12, 0.2 + 1 / 6, 0.1 + 0.25], atol=1e-15)
    # Two clusters, each sums to 1; h = 1 is pure inverse volatility.
    w2 = intra_cluster_weights(
        np.array([0.01, 0.02, 0.03, 0.01]), np.array([5.0, 1.0, 0.0, 0.0]), np.array([0, 0, 1, 1]),
        hybrid_weight=1.0,
    )  # fmt: skip
    assert np.allclose(w2, [2 / 3, 1 / 3, 0.25, 0.75], atol=1e-15)


def test_weights_within_clusters_follow_layer2() -> None:
    alloc = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED))
    w = alloc.allocate(make_ctx(planted(3), scores=cluster_scores()), barbell_state="NORMAL")
    labels = alloc.clusters_[0]
    for c in range(K_PLANTED):
        m = labels == c
        total = w[0, m].sum()
        if total > 0:
            assert np.allclose(w[0, m] / total, alloc.intra_weights_[0, m], atol=1e-13)


def test_layer1_min_var_is_optimal_under_cap() -> None:
    # lambda = 0: the core mix minimises cluster-portfolio variance on the capped simplex.
    r = planted(4)
    alloc = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED, fragility_weight=0.0))
    alloc.allocate(make_ctx(r, scores=cluster_scores()), barbell_state="QUIET")
    core = list(alloc.core_clusters_[0])
    x = np.asarray(alloc.audit_[0]["core_weights"]) / 0.85
    iv = np.zeros((r.shape[1], K_PLANTED))
    iv[np.arange(r.shape[1]), alloc.clusters_[0]] = alloc.intra_weights_[0]
    rc = r @ iv[:, core]
    cov = ledoit_wolf(rc)[0]
    cap = 0.25 / 0.85
    assert abs(x.sum() - 1) < 1e-12 and (x <= cap + 1e-15).all() and (x >= 0).all()
    rng = np.random.default_rng(0)
    trials = rng.dirichlet(np.ones(len(core)), 20_000)
    trials = trials[(trials <= cap).all(axis=1)]
    assert len(trials) > 100
    assert x @ cov @ x <= np.einsum("ki,ij,kj->k", trials, cov, trials).min() * (1 + 1e-6)


def test_fragility_penalty_moves_weight_off_high_cvar_clusters() -> None:
    r = planted(5)
    # Give core cluster 2 a fat left tail: a few crash days.
    r[[20, 90, 160, 230], 6:9] -= 0.06
    ctx = make_ctx(r, scores=cluster_scores())
    lam0 = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED, fragility_weight=0.0))
    lam5 = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED, fragility_weight=5.0))
    lam0.allocate(ctx, barbell_state="NORMAL")
    lam5.allocate(ctx, barbell_state="NORMAL")
    c_var = np.asarray(lam5.audit_[0]["cluster_cvar"])
    x0 = np.asarray(lam0.audit_[0]["core_weights"])
    x5 = np.asarray(lam5.audit_[0]["core_weights"])
    assert c_var.argmax() == lam5.core_clusters_[0].index(2)
    assert x5 @ c_var < x0 @ c_var - 1e-4  # the penalty is paid attention to
    assert x5[c_var.argmax()] < x0[c_var.argmax()]
    # The cluster CVaRs are measures.cvar of the layer-2 cluster return series.
    core = list(lam5.core_clusters_[0])
    iv = np.zeros((r.shape[1], K_PLANTED))
    iv[np.arange(r.shape[1]), lam5.clusters_[0]] = lam5.intra_weights_[0]
    assert np.allclose(c_var, cvar((r @ iv[:, core]).T, 0.95), atol=1e-15)


def test_max_sharpe_objective_and_fallback() -> None:
    r = planted(6)
    r[:, :9] += 0.001  # three core clusters with a clear positive mean
    params = BarbellConfig(n_clusters=K_PLANTED, objective="max_sharpe", fragility_weight=0.0)
    alloc = ClusterBarbell(params)
    w = alloc.allocate(make_ctx(r, scores=cluster_scores()), barbell_state="NORMAL")
    check_invariants(alloc, w)
    a = alloc.audit_[0]
    assert a["objective_used"] == "max_sharpe" and a["fallback"] is None
    core = list(alloc.core_clusters_[0])
    iv = np.zeros((r.shape[1], K_PLANTED))
    iv[np.arange(r.shape[1]), alloc.clusters_[0]] = alloc.intra_weights_[0]
    rc = r @ iv[:, core]
    cov, mu = ledoit_wolf(rc)[0], rc.mean(axis=0)
    x = np.asarray(a["core_weights"]) / 0.9
    cap = 0.25 / 0.9
    sharpe = mu @ x / math.sqrt(x @ cov @ x)
    trials = np.random.default_rng(1).dirichlet(np.ones(len(core)), 20_000)
    trials = trials[(trials <= cap).all(axis=1)]
    others = trials @ mu / np.sqrt(np.einsum("ki,ij,kj->k", trials, cov, trials))
    assert sharpe >= others.max() - 1e-6
    # Every cluster mean negative: falls back to min_var, and the audit says so.
    alloc.allocate(make_ctx(r - 0.01, scores=cluster_scores()), barbell_state="NORMAL")
    assert alloc.audit_[0]["objective_used"] == "min_var"
    assert "max_sharpe -> min_var" in alloc.audit_[0]["fallback"]


# ----------------------------------------------------------------------------- few clusters


@pytest.mark.parametrize(
    ("k", "expected"), [(1, 0), (2, 1), (4, 1), (5, 1), (6, 2), (8, 4), (9, 5), (10, 5), (40, 5)]
)
def test_n_sleeve_clusters_rule(k: int, expected: int) -> None:
    assert BarbellConfig().min_core == 4  # ceil(0.95 / 0.25)
    assert n_sleeve_clusters(k, 5, 4) == expected


def test_few_clusters_cap_bound_core_holds_cash() -> None:
    # 3 clusters: 1 sleeve cluster, 2 core clusters that can hold only 2 x 25%.
    r = planted(7, k=3)
    scores = np.repeat(np.arange(3.0), PER)[None]
    alloc = ClusterBarbell(BarbellConfig(n_clusters=3))
    w = alloc.allocate(make_ctx(r, scores=scores), barbell_state="QUIET")
    check_invariants(alloc, w)
    assert alloc.sleeve_clusters_[0] == (2,) and alloc.core_clusters_[0] == (0, 1)
    assert np.allclose(alloc.cluster_gross_[0], [0.25, 0.25, 0.15], atol=1e-15)
    a = alloc.audit_[0]
    assert a["core_cash"] == pytest.approx(0.35, abs=1e-15)
    assert "core_cap_shortfall" in a["active_constraints"]


def test_single_cluster_has_no_sleeve() -> None:
    r = planted(8, k=1, per=4)
    alloc = ClusterBarbell(BarbellConfig(n_clusters=1))
    w = alloc.allocate(make_ctx(r), barbell_state="QUIET")
    assert alloc.sleeve_clusters_[0] == () and alloc.core_clusters_[0] == (0,)
    assert w.sum() == pytest.approx(0.25, abs=1e-15)  # the cap holds; the rest is cash


def test_distance_threshold_cut_and_inactive_asset() -> None:
    r = planted(9)
    r[:, 5] = 0.0  # untradable all window
    alloc = ClusterBarbell(BarbellConfig(n_clusters=None, distance_threshold=0.5))
    w = alloc.allocate(make_ctx(r, scores=cluster_scores()), barbell_state="NORMAL")
    check_invariants(alloc, w)
    assert alloc.clusters_[0, 5] == -1 and w[0, 5] == 0.0
    assert alloc.n_clusters_[0] == K_PLANTED


@settings(deadline=None, max_examples=15)
@given(
    seed=st.integers(0, 10_000),
    n_clusters=st.integers(1, 14),
    state=st.sampled_from(BARBELL_STATES),
    objective=st.sampled_from(["min_var", "max_sharpe"]),
)
def test_barbell_invariants_on_random_data(
    seed: int, n_clusters: int, state: str, objective: str
) -> None:
    rng = np.random.default_rng(seed)
    r = rng.standard_t(4, size=(200, 15)) * rng.uniform(0.005, 0.03, 15)
    r += rng.normal(size=(200, 1)) * 0.01 * rng.uniform(0, 1, 15)
    alloc = ClusterBarbell(BarbellConfig(n_clusters=n_clusters, objective=objective))
    w = alloc.allocate(make_ctx(r), barbell_state=state)
    check_invariants(alloc, w)
    k = int(alloc.n_clusters_[0])
    assert k <= n_clusters
    frac = BarbellConfig().sleeve_fractions[BARBELL_STATES.index(state)]
    # no name above the name cap; a cluster holds at most cap / its largest layer-2 weight
    cap = alloc.params.max_weight
    assert cap == 0.10 and w.max() <= cap + 1e-15
    labels, intra = alloc.clusters_[0], alloc.intra_weights_[0]
    holds = {c: min(0.25, cap / intra[labels == c].max()) for c in range(k)}
    if k >= 2:
        sleeve_cl = alloc.sleeve_clusters_[0]
        sleeve = np.isin(labels, sleeve_cl)
        share = frac / len(sleeve_cl)
        assert abs(w[0, sleeve].sum() - sum(min(share, holds[c]) for c in sleeve_cl)) <= 1e-14
        assert len(sleeve_cl) == n_sleeve_clusters(k, 5, 4)
        core_room = sum(holds[c] for c in alloc.core_clusters_[0])
        core = w[0, ~sleeve].sum()
        assert core == pytest.approx(min(1.0 - frac, core_room), abs=1e-9)


# ----------------------------------------------------------------------------- reporting


def test_lead_asset_is_best_trailing_performer() -> None:
    r = planted(10)
    r[-20:, 4] += 0.03  # cluster 1 (assets 3..5): asset 4 leads over the last 63 bars
    r[-20:, 30] += 0.03  # cluster 10 (assets 30..32): asset 30 leads
    alloc = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED))
    alloc.allocate(make_ctx(r, scores=cluster_scores()), barbell_state="NORMAL")
    leads = alloc.lead_assets_[0]
    assert len(leads) == K_PLANTED and leads[1] == 4 and leads[10] == 30
    growth = np.prod(1 + r[-63:], axis=0)
    for c, i in enumerate(leads):
        m = np.flatnonzero(alloc.clusters_[0] == c)
        assert i in m and growth[i] == growth[m].max()
    assert alloc.lead_mask_[0].sum() == K_PLANTED
    assert alloc.audit_[0]["lead_assets"][1] == "S04"


def test_momentum_alpha_without_scores_ranks_clusters() -> None:
    r = planted(11)
    r[:, 0:3] += 0.004  # cluster 0 has by far the best momentum
    alloc = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED))
    alloc.allocate(make_ctx(r), barbell_state="NORMAL")
    assert alloc.sleeve_clusters_[0][0] == 0
    assert 0 not in alloc.core_clusters_[0]


def test_selection_audit_json(tmp_path: Path) -> None:
    alloc = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED))
    ctx = make_ctx(planted(12), [regime_code("trend")], [0.8], cluster_scores(), ["QUIET"])
    alloc.allocate(ctx)
    path = alloc.write_selection_audit(tmp_path / "selection_audit.json")
    data = json.loads(path.read_text())
    p = data["portfolios"][0]
    assert data["allocator"] == "cluster_barbell" and data["params"]["cluster_cap"] == 0.25
    assert p["regime"] == "trend" and p["regime_score"] == 0.8 and p["barbell_state"] == "QUIET"
    assert p["active_constraints"][0] == "sleeve_fraction=0.15"
    caps = [c for c in p["active_constraints"] if c.startswith("cluster_cap:")]
    for c in caps:
        assert p["cluster_gross"][int(c.split(":")[1])] == pytest.approx(0.25, abs=1e-7)
    assert p["sleeve_clusters"] == list(alloc.sleeve_clusters_[0])


def test_determinism_and_batch_equals_single() -> None:
    r = np.stack([planted(13), planted(14)])
    ctx = make_ctx(r, [0, 2], [0.9, 0.9], cluster_scores(2), ["QUIET", "CRISIS"])
    a = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED))
    w1, w2 = a.allocate(ctx), a.allocate(ctx)
    assert np.array_equal(w1, w2)
    single = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED)).allocate(
        make_ctx(r[1], [2], [0.9], cluster_scores(1), ["CRISIS"])
    )
    assert np.array_equal(w1[1], single[0])


# ----------------------------------------------------------------------------- config


def test_from_config_and_validation() -> None:
    cfg = config_from_dict(
        {
            "baselines": {
                "barbell": {
                    "n_clusters": 8,
                    "quiet_sleeve": 0.2,
                    "objective": "max_sharpe",
                    "linkage": "average",
                    "cluster_cap": 0.3,
                }
            }
        }
    )
    p = ClusterBarbell.from_config(cfg.baselines).params
    assert p.n_clusters == 8 and p.sleeve_fractions == (0.2, 0.10, 0.05)
    assert p.objective == "max_sharpe" and p.linkage == "average" and p.cluster_cap == 0.3
    assert p.min_core == 4  # ceil(0.95 / 0.3)
    with pytest.raises(ConfigError, match="exactly one"):
        config_from_dict({"baselines": {"barbell": {"distance_threshold": 0.5}}})
    with pytest.raises(ValidationError, match="exactly one"):
        BarbellConfig(n_clusters=None)
    with pytest.raises(ValidationError, match="cluster_cap"):
        BarbellConfig(cluster_cap=0.1, quiet_sleeve=0.15, normal_sleeve=0.1, crisis_sleeve=0.05)
    with pytest.raises(ValidationError, match="linkage"):
        BarbellConfig(linkage="median")  # type: ignore[arg-type]


def test_cluster_assets_labels_by_first_member() -> None:
    d = np.full((4, 4), 0.9)
    d[0, 2] = d[2, 0] = d[1, 3] = d[3, 1] = 0.1
    np.fill_diagonal(d, 0.0)
    assert cluster_assets(d, "average", 2).tolist() == [0, 1, 0, 1]


def test_scores_shape_checked_and_nan_scores_rank_last() -> None:
    alloc = ClusterBarbell(BarbellConfig(n_clusters=K_PLANTED))
    r = planted(15)
    with pytest.raises(DataError, match="scores"):
        alloc.allocate(make_ctx(r, scores=np.zeros((1, 5))), barbell_state="NORMAL")
    s = cluster_scores()
    s[0, 33:36] = np.nan  # the best cluster (11) loses its scores
    alloc.allocate(make_ctx(r, scores=s), barbell_state="NORMAL")
    assert alloc.sleeve_clusters_[0] == (10, 9, 8, 7, 6)
    assert alloc.cluster_alpha_[0].argmin() == 11


def test_explicit_state_overrides_the_context_barbell_state() -> None:
    """``AllocationContext.barbell`` sets the state; an explicit ``barbell_state`` wins."""
    import dataclasses

    from allocgym.regime import BARBELL_STATES

    rng = np.random.default_rng(7)
    returns = rng.normal(0.0005, 0.01, (1, 300, 30))
    base = AllocationContext(
        returns=returns,
        current_weights=np.zeros((1, 30)),
        symbols=tuple(f"S{i}" for i in range(30)),
        sector_ids=np.zeros(30, dtype=np.int64),
        regime=np.array([2]),  # high_volatility would map to CRISIS
        regime_confidence=np.array([1.0]),
    )
    quiet = dataclasses.replace(base, barbell=np.array([BARBELL_STATES.index("QUIET")]))
    alloc = ClusterBarbell()
    alloc.allocate(quiet)
    assert alloc.sleeve_fraction_[0] == pytest.approx(0.15, abs=1e-15)
    assert alloc.audit_[0]["state_source"] == "regime_model"
    alloc.allocate(quiet, barbell_state="CRISIS")
    assert alloc.sleeve_fraction_[0] == pytest.approx(0.05, abs=1e-15)
    assert alloc.audit_[0]["state_source"] == "explicit"
    with pytest.raises(DataError, match="no barbell state"):
        alloc.allocate(base)
