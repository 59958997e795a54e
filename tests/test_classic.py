"""Classic allocators: hand-computed cases, closed forms and optimality properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from allocgym.allocator import AllocationContext, Allocator
from allocgym.baselines.black_litterman import (
    BlackLitterman,
    black_litterman_posterior,
    view_matrices,
)
from allocgym.baselines.classic import (
    EqualWeight,
    FractionalKelly,
    InverseVolatility,
    MaximumSharpe,
    MinimumVariance,
    RegimeSwitch,
    estimate_covariance,
    kelly_weights,
    max_sharpe_weights,
    mean_variance_weights,
    min_variance_weights,
    project_box_simplex,
    weight_bounds,
)
from allocgym.baselines.cvar import MinimumCVaR, min_cvar_weights
from allocgym.baselines.risk_budgeting import (
    RiskBudgeting,
    risk_budget_weights,
    risk_contributions,
)
from allocgym.config import (
    BlackLittermanConfig,
    BLViewConfig,
    ClassicConfig,
    KellyConfig,
    MinCVaRConfig,
    RegimeSwitchConfig,
    RiskBudgetConfig,
    config_from_dict,
)
from allocgym.errors import ConfigError, Infeasible
from allocgym.measures import cvar
from allocgym.regime import regime_code

SLOW_SETTINGS = settings(deadline=None, max_examples=20)

NO_BOUND = 10.0
"""A long/short ``max_weight`` that never binds a fully invested book of these tests: the
cvxpy paths then reach the unconstrained closed forms' optimum."""


def _classic(**kw: object) -> ClassicConfig:
    """The ``classic`` section with every limit set (used as given): long-only and a
    ``max_weight`` of 1 (no bound below the budget) unless ``kw`` says otherwise."""
    return ClassicConfig(**{"long_only": True, "max_weight": 1.0, **kw})


def make_ctx(
    returns: np.ndarray,
    regime: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    symbols: tuple[str, ...] | None = None,
) -> AllocationContext:
    r = np.asarray(returns, float)
    if r.ndim == 2:
        r = r[None]
    n_envs, _, n = r.shape
    return AllocationContext(
        returns=r,
        current_weights=np.zeros((n_envs, n)),
        symbols=symbols or tuple(f"S{i}" for i in range(n)),
        sector_ids=np.zeros(n, dtype=np.int64),
        regime=np.full(n_envs, -1) if regime is None else np.asarray(regime),
        regime_confidence=np.ones(n_envs) if confidence is None else np.asarray(confidence),
    )


def alternating(sigmas: list[float], length: int = 100, drift: list[float] | None = None):
    """Returns with exact std ratios: column j is drift_j + sigma_j * (+1, -1, +1, ...)."""
    alt = np.where(np.arange(length) % 2 == 0, 1.0, -1.0)[:, None]
    d = np.zeros(len(sigmas)) if drift is None else np.asarray(drift)
    return d + alt * np.asarray(sigmas)


def random_returns(seed: int, n_obs: int = 300, n_assets: int = 6, df: float = 4.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(n_assets, n_assets)) * 0.3 + np.eye(n_assets)
    vols = rng.uniform(0.005, 0.03, n_assets)
    z = rng.standard_t(df, size=(n_obs, n_assets)) @ mix.T
    return 0.0003 + z / z.std(axis=0) * vols


def random_spd(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 2 * n))
    c = a @ a.T / (2 * n) + 0.05 * np.eye(n)
    d = rng.uniform(0.005, 0.03, n)
    return c * np.outer(d, d)


# ----------------------------------------------------------------------------- protocol


@pytest.mark.parametrize(
    "alloc",
    [
        EqualWeight(),
        InverseVolatility(),
        MinimumVariance(),
        MaximumSharpe(),
        FractionalKelly(),
        RegimeSwitch(),
        RiskBudgeting(),
        MinimumCVaR(),
        BlackLitterman(),
    ],
    ids=lambda a: a.name,
)
def test_protocol_shape_determinism_and_inactive_assets(alloc: Allocator) -> None:
    r = np.stack([random_returns(1), random_returns(2)])
    r[1, :, 3] = 0.0  # asset 3 untradable for the whole window in env 1
    ctx = make_ctx(r, regime=np.array([0, 2]), confidence=np.array([0.8, 0.9]))
    assert isinstance(alloc, Allocator)
    w1 = alloc.allocate(ctx)
    w2 = alloc.allocate(ctx)
    assert w1.shape == (2, 6) and w1.dtype == np.float64
    assert np.array_equal(w1, w2)
    assert np.isfinite(w1).all()
    assert w1[1, 3] == 0.0
    assert (w1 >= -1e-12).all()  # long-only by default
    assert (w1.sum(axis=1) <= 1 + 1e-9).all()


def test_no_active_asset_gives_cash() -> None:
    ctx = make_ctx(np.zeros((50, 4)))
    for alloc in (EqualWeight(), MinimumVariance(), RiskBudgeting(), MinimumCVaR()):
        assert np.array_equal(alloc.allocate(ctx), np.zeros((1, 4))), alloc.name


# ----------------------------------------------------------------------------- 1/N, inverse vol


def test_equal_weight_hand_values() -> None:
    r = np.stack([random_returns(0, n_assets=4), random_returns(1, n_assets=4)])
    r[1, :, 2] = 0.0
    w = EqualWeight().allocate(make_ctx(r))
    assert np.allclose(w[0], 0.25, rtol=0, atol=1e-15)
    assert np.allclose(w[1], [1 / 3, 1 / 3, 0, 1 / 3], rtol=0, atol=1e-15)


def test_inverse_volatility_hand_values() -> None:
    r = alternating([0.01, 0.02, 0.04])
    alloc = InverseVolatility()
    w = alloc.allocate(make_ctx(r))
    assert np.allclose(w[0], [4 / 7, 2 / 7, 1 / 7], rtol=0, atol=1e-12)
    assert np.allclose(alloc.vol_[0] / alloc.vol_[0, 0], [1, 2, 4], atol=1e-12)


# ----------------------------------------------------------------------------- min variance


def test_min_variance_two_asset_closed_form() -> None:
    s1, s2, s12 = 0.04, 0.09, 0.006
    cov = np.array([[s1, s12], [s12, s2]])
    w1 = (s2 - s12) / (s1 + s2 - 2 * s12)  # = 0.084 / 0.118
    expected = np.array([w1, 1 - w1])
    assert np.allclose(min_variance_weights(cov), expected, atol=1e-14)
    bounded = min_variance_weights(cov, np.zeros(2), np.ones(2))
    assert np.allclose(bounded, expected, atol=1e-7)


def test_min_variance_long_only_binds() -> None:
    # sigma = (0.1, 0.2), rho = 0.9: unconstrained w1 = 0.022 / 0.014 > 1, so w2 < 0.
    cov = np.array([[0.01, 0.018], [0.018, 0.04]])
    assert min_variance_weights(cov)[1] < 0
    assert np.allclose(min_variance_weights(cov, np.zeros(2), np.ones(2)), [1, 0], atol=1e-8)


def test_min_variance_allocator_matches_closed_form_on_sample_cov() -> None:
    r = random_returns(3, n_assets=5)
    cov = np.cov(r.T)
    ctx = make_ctx(r)
    long_short = _classic(covariance="sample", long_only=False, max_weight=NO_BOUND)
    unc = MinimumVariance(long_short).allocate(ctx)
    x = np.linalg.solve(cov, np.ones(5))
    assert np.allclose(unc[0], x / x.sum(), atol=1e-7)
    lo = MinimumVariance(_classic(covariance="sample")).allocate(ctx)[0]
    ref = min_variance_weights(cov, np.zeros(5), np.ones(5))
    assert np.allclose(lo, ref, atol=1e-6)
    assert (lo >= 0).all() and abs(lo.sum() - 1) < 1e-12
    # Optimality: no random long-only portfolio has lower variance.
    rng = np.random.default_rng(0)
    trials = rng.dirichlet(np.ones(5), 2000)
    assert lo @ cov @ lo <= np.einsum("ki,ij,kj->k", trials, cov, trials).min() + 1e-12


def test_min_variance_max_weight_and_infeasible() -> None:
    r = random_returns(4, n_assets=5)
    w = MinimumVariance(_classic(max_weight=0.3)).allocate(make_ctx(r))
    assert w.max() <= 0.3 + 1e-12 and abs(w.sum() - 1) < 1e-12
    # 5 names x 0.1 < 1: the bound is raised to 1/5, the only fully invested book is 1/N
    w = MinimumVariance(_classic(max_weight=0.1)).allocate(make_ctx(r))
    assert np.allclose(w, 0.2, rtol=0, atol=1e-9)
    with pytest.raises(Infeasible, match="cannot sum to the budget"):
        project_box_simplex(np.zeros(5), np.zeros(5), np.full(5, 0.1))


def test_weight_bounds_raise_the_cap_only_for_a_fully_invested_budget() -> None:
    active = np.array([[True, True, True, False], [True, True, True, True]])
    lo, hi = weight_bounds(active, True, 0.3)
    assert np.array_equal(hi, [[0.3, 0.3, 0.3, 0.0], [0.3, 0.3, 0.3, 0.3]]) and (lo == 0).all()
    _, hi = weight_bounds(active, True, 0.3, total=1.0)
    # 3 active x 0.3 < 1: raised to 1/3; 4 active x 0.3 >= 1: kept
    assert np.allclose(hi, [[1 / 3, 1 / 3, 1 / 3, 0.0], [0.3, 0.3, 0.3, 0.3]], rtol=0, atol=0)


# ----------------------------------------------------------------------------- max Sharpe


def test_max_sharpe_closed_form_unconstrained() -> None:
    cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, 0.02], [0.0, 0.02, 0.0625]])
    mu = np.array([0.06, 0.08, 0.07])
    x = np.linalg.solve(cov, mu)
    w = max_sharpe_weights(mu, cov)
    assert w is not None
    assert np.allclose(w, x / x.sum(), atol=1e-14)
    # Interior solution: the long-only QP finds the same point.
    assert (x > 0).all()
    wb = max_sharpe_weights(mu, cov, np.zeros(3), np.ones(3))
    assert wb is not None and np.allclose(wb, w, atol=1e-6)


def test_max_sharpe_allocator_is_optimal_and_falls_back() -> None:
    r = random_returns(5, n_assets=5) + 0.0005
    ctx = make_ctx(r)
    alloc = MaximumSharpe(_classic(covariance="sample"))
    w = alloc.allocate(ctx)[0]
    mu, cov = r.mean(axis=0), np.cov(r.T)
    sharpe = (mu @ w) / np.sqrt(w @ cov @ w)
    trials = np.random.default_rng(1).dirichlet(np.ones(5), 3000)
    others = trials @ mu / np.sqrt(np.einsum("ki,ij,kj->k", trials, cov, trials))
    assert sharpe >= others.max() - 1e-9
    assert not alloc.fallback_[0]
    # All expected returns negative: long-only tangency undefined -> minimum variance.
    neg = make_ctx(r - 0.01)
    wf = alloc.allocate(neg)
    assert alloc.fallback_[0]
    ref = MinimumVariance(_classic(covariance="sample")).allocate(neg)
    assert np.allclose(wf, ref, atol=1e-8)


def test_risk_free_rate_from_config_is_per_bar() -> None:
    cfg = config_from_dict({"baselines": {"classic": {"risk_free_rate": 0.0504}}})
    assert cfg.baselines.classic.risk_free_per_bar == pytest.approx(2e-4, rel=1e-15)
    r = random_returns(6, n_assets=4)
    a0 = MaximumSharpe(_classic(covariance="sample"))
    a1 = MaximumSharpe(_classic(covariance="sample", risk_free_rate=0.0504))
    ctx = make_ctx(r)
    a0.allocate(ctx)
    a1.allocate(ctx)
    assert np.allclose(a1.mu_, a0.mu_ - 2e-4, atol=1e-15)


# ----------------------------------------------------------------------------- risk budgeting


def test_risk_parity_two_assets_is_inverse_vol() -> None:
    # Two assets: equal risk contributions iff w ∝ 1/sigma, whatever the correlation.
    for rho in (-0.5, 0.0, 0.7):
        cov = np.array([[0.01, rho * 0.02], [rho * 0.02, 0.04]])
        assert np.allclose(risk_budget_weights(cov), [2 / 3, 1 / 3], atol=1e-12)


@SLOW_SETTINGS
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 25),
    raw=st.lists(st.floats(0.05, 5.0), min_size=25, max_size=25),
)
def test_risk_contributions_equal_budgets(seed: int, n: int, raw: list[float]) -> None:
    cov = random_spd(seed, n)
    b = np.asarray(raw[:n])
    b = b / b.sum()
    w = risk_budget_weights(cov, b)
    assert (w > 0).all() and abs(w.sum() - 1) < 1e-12
    assert np.abs(risk_contributions(w, cov) - b).max() <= 1e-6
    assert np.abs(risk_contributions(w, cov) - b).max() <= 1e-9


def test_risk_budget_batched_equals_single() -> None:
    covs = np.stack([random_spd(s, 7) for s in range(4)])
    b = np.arange(1, 8, dtype=float)
    batched = risk_budget_weights(covs, b)
    single = np.stack([risk_budget_weights(c, b) for c in covs])
    assert np.allclose(batched, single, atol=1e-13)


def test_risk_budgeting_allocator_with_user_budgets() -> None:
    r = random_returns(7, n_assets=5)
    r[:, 4] = 0.0  # inactive asset
    syms = ("A", "B", "C", "D", "E")
    alloc = RiskBudgeting(
        _classic(covariance="sample"), RiskBudgetConfig(budgets={"A": 2, "B": 1, "C": 1})
    )
    w = alloc.allocate(make_ctx(r, symbols=syms))[0]
    assert w[3] == 0.0 and w[4] == 0.0  # D unlisted -> budget 0; E inactive
    rc = risk_contributions(w, np.cov(r.T))
    assert np.abs(rc - [0.5, 0.25, 0.25, 0, 0]).max() <= 1e-6
    assert np.allclose(alloc.risk_contributions_[0], rc, atol=1e-12)
    with pytest.raises(ConfigError, match="ZZZ"):
        RiskBudgeting(budget=RiskBudgetConfig(budgets={"ZZZ": 1})).allocate(
            make_ctx(r, symbols=syms)
        )


def test_risk_budget_config_knob() -> None:
    cfg = config_from_dict({"baselines": {"risk_budget": {"budgets": {"S0": 3, "S1": 1}}}})
    alloc = RiskBudgeting.from_config(cfg.baselines)
    r = random_returns(8, n_assets=3)
    w = alloc.allocate(make_ctx(r))[0]
    assert w[2] == 0
    assert np.abs(alloc.risk_contributions_[0] - [0.75, 0.25, 0]).max() <= 1e-6


# ----------------------------------------------------------------------------- min CVaR


@SLOW_SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(2, 8))
def test_min_cvar_beats_min_variance_on_its_scenarios(seed: int, n: int) -> None:
    r = random_returns(seed, n_obs=250, n_assets=n, df=3.0)
    ctx = make_ctx(r)
    wc = MinimumCVaR(_classic(covariance="sample")).allocate(ctx)[0]
    wv = MinimumVariance(_classic(covariance="sample")).allocate(ctx)[0]
    we = np.full(n, 1 / n)
    c = cvar(r @ wc, 0.95)
    assert c <= cvar(r @ wv, 0.95) + 1e-9
    assert c <= cvar(r @ we, 0.95) + 1e-9
    for k in range(n):  # every single-asset portfolio is feasible too
        assert c <= cvar(r[:, k], 0.95) + 1e-9


def test_min_cvar_lp_value_and_window_knob() -> None:
    r = random_returns(11, n_obs=300, n_assets=4, df=3.0)
    alloc = MinimumCVaR(_classic(), MinCVaRConfig(alpha=0.9, window=200))
    w = alloc.allocate(make_ctx(r))[0]
    assert alloc.cvar_[0] == pytest.approx(cvar(r[-200:] @ w, 0.9), abs=1e-15)
    # Optimal on the last 200 bars at alpha 0.9, not on the whole window.
    w_full = min_cvar_weights(r, alpha=0.9)
    assert cvar(r[-200:] @ w, 0.9) <= cvar(r[-200:] @ w_full, 0.9) + 1e-9
    cfg = config_from_dict({"baselines": {"min_cvar": {"alpha": 0.9, "window": 200}}})
    assert MinimumCVaR.from_config(cfg.baselines).cvar == MinCVaRConfig(alpha=0.9, window=200)


# ----------------------------------------------------------------------------- Black–Litterman


def test_black_litterman_one_asset_hand_values() -> None:
    # sigma² = 0.04, delta = 2.5 -> pi = 0.1; tau sigma² = 0.002 = omega -> mu = (0.1 + q) / 2.
    pi, mu, cov_post = black_litterman_posterior(
        np.array([[0.04]]), np.array([1.0]), [[1.0]], [0.2], [[0.002]], tau=0.05
    )
    assert pi[0] == pytest.approx(0.1, abs=1e-15)
    assert mu[0] == pytest.approx(0.15, abs=1e-15)
    assert cov_post[0, 0] == pytest.approx(0.04 + 1 / (500 + 500), abs=1e-15)


def test_black_litterman_matches_textbook_inverse_form() -> None:
    cov = random_spd(3, 5)
    wm = np.array([0.3, 0.2, 0.2, 0.2, 0.1])
    P = np.array([[1.0, -1.0, 0, 0, 0], [0, 0, 1.0, 0, 0]])
    Q = np.array([0.0005, 0.001])
    omega = np.diag([1e-7, 4e-7])
    tau, delta = 0.05, 3.0
    pi, mu, cov_post = black_litterman_posterior(cov, wm, P, Q, omega, tau, delta)
    ts_inv = np.linalg.inv(tau * cov)
    om_inv = np.linalg.inv(omega)
    m = np.linalg.inv(ts_inv + P.T @ om_inv @ P)
    assert np.allclose(pi, delta * cov @ wm, rtol=1e-14, atol=0)
    assert np.allclose(mu, m @ (ts_inv @ pi + P.T @ om_inv @ Q), rtol=1e-9, atol=1e-15)
    assert np.allclose(cov_post, cov + m, rtol=1e-9, atol=1e-15)
    # Default omega is He–Litterman's diag(P tau Sigma P').
    _, mu_d, _ = black_litterman_posterior(cov, wm, P, Q, None, tau, delta)
    _, mu_e, _ = black_litterman_posterior(
        cov, wm, P, Q, np.diag(np.diag(P @ (tau * cov) @ P.T)), tau, delta
    )
    assert np.array_equal(mu_d, mu_e)


def test_black_litterman_no_views_blends_prior_and_min_variance() -> None:
    # No views: mu = pi, Sigma_BL = (1 + tau) Sigma, so the budget-constrained mean-variance
    # weights are w_prior / (1 + tau) + tau / (1 + tau) * w_minvar.
    r = random_returns(12, n_assets=4)
    tau = 0.05
    alloc = BlackLitterman(
        _classic(covariance="sample", long_only=False, max_weight=NO_BOUND),
        BlackLittermanConfig(tau=tau),
    )
    w = alloc.allocate(make_ctx(r))[0]
    cov = np.cov(r.T)
    wmv = np.linalg.solve(cov, np.ones(4))
    wmv /= wmv.sum()
    expected = np.full(4, 0.25) / (1 + tau) + tau / (1 + tau) * wmv
    assert np.allclose(w, expected, atol=1e-7)
    assert np.allclose(alloc.mu_[0], alloc.pi_[0], atol=0)


def test_black_litterman_view_tilts_and_config_units() -> None:
    r = random_returns(13, n_assets=4)
    syms = ("A", "B", "C", "D")
    base = BlackLitterman(_classic(covariance="sample")).allocate(make_ctx(r, symbols=syms))
    cfg = config_from_dict(
        {
            "risk": {"max_symbol_weight": 1.0, "max_sector_gross": 1.0},
            "baselines": {
                "classic": {"covariance": "sample"},
                "black_litterman": {
                    "views": [{"assets": {"C": 1.0}, "expected_return": 0.252, "variance": 0.0}]
                },
            },
        }
    )
    alloc = BlackLitterman.from_config(cfg.baselines.within(cfg.risk))
    _, q, omega = view_matrices(alloc.bl.views, syms, alloc.params.periods_per_year)
    assert q[0] == pytest.approx(0.001, rel=1e-14) and omega is not None and omega[0] == 0.0
    tilted = alloc.allocate(make_ctx(r, symbols=syms))
    assert alloc.mu_[0, 2] == pytest.approx(0.001, abs=1e-15)  # a certain view is met
    assert tilted[0, 2] > base[0, 2] + 0.05
    assert abs(tilted.sum() - 1) < 1e-12 and (tilted >= 0).all()
    with pytest.raises(ConfigError, match="'X'"):
        view = BLViewConfig(assets={"X": 1.0}, expected_return=0.0)
        BlackLitterman(bl=BlackLittermanConfig(views=(view,))).allocate(make_ctx(r, symbols=syms))


def test_mean_variance_bounded_matches_closed_form_when_interior() -> None:
    cov = random_spd(5, 4)
    mu = np.full(4, 3e-4) + 1e-5 * np.arange(4)
    w = mean_variance_weights(mu, cov, 2.5)
    assert (w > 0).all()
    wb = mean_variance_weights(mu, cov, 2.5, np.zeros(4), np.ones(4))
    assert np.allclose(wb, w, atol=1e-6)


# ----------------------------------------------------------------------------- Kelly


def test_kelly_hand_values() -> None:
    cov1 = np.array([[1e-4]])
    # Full Kelly mu / sigma² = 1; half Kelly 0.5.
    assert kelly_weights(np.array([1e-4]), cov1, 0.5, 1.0, 1.0)[0] == pytest.approx(0.5, abs=1e-6)
    # Full Kelly 1 capped at max_weight 0.3.
    assert kelly_weights(np.array([1e-4]), cov1, 1.0, 0.3, 1.0)[0] == pytest.approx(0.3, abs=1e-7)
    # Negative edge, long-only: no position.
    assert kelly_weights(np.array([-1e-4]), cov1, 1.0, 1.0, 1.0)[0] == pytest.approx(0, abs=1e-8)
    # Two uncorrelated assets, half Kelly (1.0, 0.5) exceeds gross 1: w1 - w2 = 0.5 on the
    # gross boundary -> (0.75, 0.25).
    cov2 = np.diag([1e-4, 1e-4])
    w = kelly_weights(np.array([2e-4, 1e-4]), cov2, 0.5, 1.0, 1.0)
    assert np.allclose(w, [0.75, 0.25], atol=1e-6)
    assert np.abs(w).sum() <= 1.0 + 1e-12


def test_kelly_allocator_caps_and_config() -> None:
    r = random_returns(14, n_assets=5) + 0.002
    cfg = config_from_dict(
        {
            "risk": {"max_symbol_weight": 0.2},
            "baselines": {"kelly": {"fraction": 0.25, "max_weight": 0.15}},
        }
    )
    alloc = FractionalKelly.from_config(cfg.baselines.within(cfg.risk))
    assert alloc.kelly == KellyConfig(fraction=0.25, max_weight=0.15, max_gross=1.0)
    assert alloc.params.max_weight == 0.2  # the classic cap is inherited from risk
    with pytest.raises(ConfigError, match=r"kelly.max_weight = 0.15 is looser than risk"):
        config_from_dict({"baselines": {"kelly": {"max_weight": 0.15}}})
    w = alloc.allocate(make_ctx(r))[0]
    assert w.max() <= 0.15 + 1e-12 and np.abs(w).sum() <= 1 + 1e-12
    loose = FractionalKelly(
        _classic(long_only=False), KellyConfig(fraction=0.001, max_weight=1.0, max_gross=10.0)
    )
    wl = loose.allocate(make_ctx(r))[0]
    # Nothing binds at 0.1% Kelly with shorts allowed: w = f Sigma^-1 mu on the estimate.
    mu, cov = loose.mu_[0], loose.cov_[0]
    expected = 0.001 * np.linalg.solve(cov, mu)
    assert np.abs(expected).max() < 1.0 and np.abs(expected).sum() < 10.0
    assert np.allclose(wl, expected, atol=1e-6)


# ----------------------------------------------------------------------------- regime switch


@pytest.mark.parametrize(
    ("label", "conf", "expected"),
    [
        ("trend", 1.0, [6 / 7, 1 / 7]),
        ("mean_reversion", 1.0, [0.4, 0.6]),
        ("trend", 0.0, [2 / 3, 1 / 3]),
        ("high_volatility", 1.0, [1 / 3, 1 / 6]),
        ("uncertain", 0.5, [2 / 3, 1 / 3]),
        ("neutral", 0.5, [2 / 3, 1 / 3]),  # unknown label: defensive baseline
    ],
)
def test_regime_switch_hand_values(label: str, conf: float, expected: list[float]) -> None:
    # vols 1:2 -> base (2/3, 1/3); asset 0 has the better momentum. tilt 0.5:
    # trend: base * (1.5, 0.5) = (1, 1/6) -> (6/7, 1/7); reversal: (1/3, 1/2) -> (0.4, 0.6).
    r = alternating([0.01, 0.02], drift=[0.001, -0.001])
    ctx = make_ctx(r, regime=np.array([regime_code(label)]), confidence=np.array([conf]))
    alloc = RegimeSwitch(RegimeSwitchConfig(tilt=0.5, high_vol_gross=0.5))
    w = alloc.allocate(ctx)[0]
    assert np.allclose(w, expected, atol=1e-12)


def test_regime_switch_config_knobs() -> None:
    cfg = config_from_dict({"baselines": {"regime_switch": {"high_vol_gross": 0.3, "tilt": 1}}})
    alloc = RegimeSwitch.from_config(cfg.baselines)
    r = alternating([0.01, 0.02], drift=[0.001, -0.001])
    hv = alloc.allocate(make_ctx(r, regime=np.array([2]), confidence=np.array([1.0])))
    assert hv.sum() == pytest.approx(0.3, abs=1e-15)
    tr = alloc.allocate(make_ctx(r, regime=np.array([0]), confidence=np.array([1.0])))
    assert np.allclose(tr, [[1.0, 0.0]], atol=1e-15)  # tilt 1: the loser gets 0


# ----------------------------------------------------------------------------- helpers


@SLOW_SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(2, 12), total=st.floats(0.2, 1.0))
def test_project_box_simplex_is_the_projection(seed: int, n: int, total: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    upper = np.full(n, max(total / n * 1.5, 0.05))
    if upper.sum() < total:
        upper[:] = total
    w = project_box_simplex(x, np.zeros(n), upper, total)
    assert abs(w.sum() - total) <= 1e-12 and (w >= 0).all() and (w <= upper).all()
    # KKT: w = clip(x - tau) for one tau, i.e. x - w is constant where 0 < w < upper.
    free = (w > 1e-12) & (w < upper - 1e-12)
    if free.sum() >= 2:
        assert np.ptp((x - w)[free]) <= 1e-10


def test_estimate_covariance_methods_and_bad_method() -> None:
    r = random_returns(15, n_assets=3)
    assert np.allclose(estimate_covariance(r, "sample"), np.cov(r.T), atol=1e-18)
    assert estimate_covariance(r, "ewma", 20.0).shape == (3, 3)
    with pytest.raises(ConfigError, match="unknown"):
        estimate_covariance(r, "bogus")  # type: ignore[arg-type]


def test_param_validation_messages() -> None:
    with pytest.raises(ValidationError, match="max_weight"):
        ClassicConfig(max_weight=-1.0)
    with pytest.raises(ValidationError, match="fraction"):
        KellyConfig(fraction=1.5)
    with pytest.raises(ValidationError, match="tilt"):
        RegimeSwitchConfig(tilt=2.0)
    with pytest.raises(ValidationError, match="alpha"):
        MinCVaRConfig(alpha=1.0)
    with pytest.raises(ValidationError, match="budgets"):
        RiskBudgetConfig(budgets={"A": -1.0})
    with pytest.raises(ValidationError, match="at least one budget > 0"):
        RiskBudgetConfig(budgets={"A": 0.0, "B": 0.0})
    with pytest.raises(ValidationError, match="assets"):
        BLViewConfig(assets={}, expected_return=0.01)


def test_unset_limits_take_the_default_risk_section() -> None:
    """``long_only`` and ``max_weight`` left unset take the ``risk`` values ("None =
    risk.max_symbol_weight"), the default section when the allocator is built directly; a
    long/short book the default (long-only) risk section forbids is refused."""
    p = MinimumVariance(ClassicConfig(covariance="sample")).params
    assert (p.long_only, p.max_weight, p.covariance) == (True, 0.10, "sample")
    assert FractionalKelly().kelly == KellyConfig(max_weight=0.10, max_gross=1.0)
    with pytest.raises(ConfigError, match=r"classic.long_only = false while risk.long_only"):
        MinimumVariance(ClassicConfig(long_only=False))
