"""QP: optimality against an independently built cvxpy reference, constraint satisfaction,
DPP re-solves, risk-model parity with allocgym.estimates, infeasibility diagnosis and the
fallback chain."""

from __future__ import annotations

import dataclasses
import warnings

import cvxpy as cp
import numpy as np
import pytest

from allocgym import estimates
from allocgym.allocator import AllocationContext
from allocgym.baselines import qp as qp_mod
from allocgym.baselines.hrp import HRP
from allocgym.baselines.qp import (
    QPAllocator,
    QPInputs,
    qp_objective,
    qp_violations,
    risk_sqrt,
)
from allocgym.config import HRPConfig, QPConfig, RiskConfig
from allocgym.errors import ConfigError, Infeasible, SolverFailed

TOL = 1e-7

LIMITS = {
    "per_name_cap": 0.10,
    "long_only": True,
    "max_gross": 1.5,
    "max_net": 1.0,
    "sector_cap": 0.30,
}
"""Every limit the QP shares with the risk gates, set: the section is used as given."""

NO_SECTOR_CAP = 1.5
"""A sector cap that cannot bind: a sector's gross is at most the 1.5 gross cap."""


def _qp(**kw: object) -> QPConfig:
    return QPConfig(**{**LIMITS, **kw})


def _returns(n_obs: int, n_assets: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0003, 0.01, (n_obs, 1))
    return market * rng.uniform(0.5, 1.5, n_assets) + rng.normal(0, 0.012, (n_obs, n_assets))


def _inputs(
    params: QPConfig, n_assets: int, seed: int, w_cur: np.ndarray | None = None
) -> QPInputs:
    rng = np.random.default_rng(seed + 100)
    x = _returns(252, n_assets, seed)
    if w_cur is None:
        w_cur = np.full(n_assets, 1.0 / n_assets)
    return QPInputs(
        z=rng.normal(0, 1, n_assets),
        w_cur=w_cur,
        costs=rng.uniform(0.0005, 0.003, n_assets),
        risk=risk_sqrt(x, params),
        betas=rng.uniform(0.4, 1.6, n_assets),
        scenarios=x[-params.cvar_scenarios :] if params.cvar_weight > 0 else None,
    )


def _reference(params: QPConfig, inputs: QPInputs, sector_ids: np.ndarray) -> float:
    """The same QP written plainly: full Sigma via quad_form, cp.abs everywhere, fresh build."""
    n = inputs.z.size
    sigma = inputs.risk.matrix()
    sigma = 0.5 * (sigma + sigma.T)
    w = cp.Variable(n)
    obj = (
        inputs.z @ w
        - params.lambda_risk * cp.quad_form(w, cp.psd_wrap(sigma))
        - params.gamma_cost * cp.sum(cp.multiply(inputs.costs, cp.abs(w - inputs.w_cur)))
    )
    if params.cvar_weight > 0:
        a = cp.Variable()
        losses = -inputs.scenarios @ w
        s = inputs.scenarios.shape[0]
        obj -= params.cvar_weight * (a + cp.sum(cp.pos(losses - a)) / ((1 - params.cvar_beta) * s))
    cons = [cp.sum(w) == params.budget if params.budget_equality else cp.sum(w) <= params.budget]
    cons.append(cp.abs(w) <= params.per_name_cap)
    if params.long_only:
        cons.append(w >= 0)
    if params.max_gross is not None:
        cons.append(cp.norm1(w) <= params.max_gross)
    if params.max_net is not None:
        cons.append(cp.abs(cp.sum(w)) <= params.max_net)
    if params.max_turnover is not None:
        cons.append(cp.norm1(w - inputs.w_cur) <= params.max_turnover)
    if params.max_turnover_per_name is not None:
        cons.append(cp.abs(w - inputs.w_cur) <= params.max_turnover_per_name)
    if params.beta_tolerance is not None:
        cons.append(cp.abs(inputs.betas @ w) <= params.beta_tolerance)
    if params.sector_cap is not None:
        for s in np.unique(sector_ids):
            cons.append(cp.norm1(w[np.flatnonzero(sector_ids == s)]) <= params.sector_cap)
    prob = cp.Problem(cp.Maximize(obj), cons)
    prob.solve(solver="CLARABEL")
    assert prob.status == cp.OPTIMAL
    return float(prob.value)


ALL_ON = {
    "max_turnover": 0.9,
    "max_turnover_per_name": 0.08,
    "beta_tolerance": 1.0,
    "sector_cap": 0.3,
    "max_gross": 1.5,
    "max_net": 1.0,
}

CASES = {
    "dense_long_only": (_qp(**ALL_ON), 30),
    "dense_long_short": (
        _qp(**{**ALL_ON, "long_only": False, "max_gross": 1.4, "beta_tolerance": 0.9}),
        30,
    ),
    "factor_long_only": (_qp(**ALL_ON, factor_min_assets=20, n_factors=5), 40),
    "factor_cvar_covariance": (
        _qp(
            **{**ALL_ON, "max_turnover": 1.2},
            factor_min_assets=20,
            n_factors=5,
            cvar_weight=0.5,
            cvar_scenarios=100,
            risk_model="covariance",
            lambda_risk=50.0,
        ),
        40,
    ),
    "dense_cvar_budget_le": (
        _qp(**ALL_ON, cvar_weight=2.0, cvar_scenarios=120, budget=0.8, budget_equality=False),
        25,
    ),
}


def test_unset_limits_take_the_default_risk_section() -> None:
    """A limit left unset (None) takes the ``risk`` value ("None = risk.max_symbol_weight"),
    and the budget is lowered to the gross and net caps; a section with every limit set
    keeps its limits, its budget lowered the same way; a limit looser than the risk one is
    refused."""
    p = QPAllocator(QPConfig(max_net=0.5)).params
    assert (p.per_name_cap, p.long_only, p.max_gross, p.max_net, p.sector_cap) == (
        0.10, True, 1.0, 0.5, 0.30,
    )  # fmt: skip
    assert p.beta_tolerance is None and p.budget == 0.5  # min(1, gross 1.0, net 0.5)
    given = _qp(max_net=0.3)
    used = QPAllocator(given).params
    assert used.budget == 0.3 and used.model_copy(update={"budget": 1.0}) == given
    assert QPAllocator(_qp()).params == _qp()  # nothing to lower: as given
    with pytest.raises(ConfigError, match=r"baselines.qp.max_gross = 1.5 is looser"):
        QPAllocator(QPConfig(max_gross=1.5))
    risk = RiskConfig(max_symbol_weight=0.2, max_gross=1.5, long_only=False)
    r = QPAllocator.from_config(QPConfig(), risk=risk).params
    assert (r.per_name_cap, r.long_only, r.max_gross, r.max_net, r.budget) == (
        0.2, False, 1.5, 1.0, 1.0,
    )  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference_and_satisfies_constraints(case: str) -> None:
    params, n = CASES[case]
    sector_ids = np.arange(n) % 5
    alloc = QPAllocator(params)
    first_problem = None
    for seed in range(3):
        inputs = _inputs(params, n, seed)
        w, info = alloc.solve(inputs, sector_ids)
        problem = alloc.problem_for(sector_ids, inputs)
        first_problem = first_problem or problem
        assert problem is first_problem  # built once, re-solved by setting values
        assert problem.problem.is_dpp()
        ref = _reference(params, inputs, sector_ids)
        ours = qp_objective(w, inputs, params)
        assert abs(ours - ref) <= 1e-6 * max(1.0, abs(ref))
        assert abs(info["objective"] - ours) <= 1e-12 * max(1.0, abs(ours))
        viol = qp_violations(w, inputs, params, sector_ids)
        assert set(viol) >= {"budget", "per_name_cap", "gross", "net", "turnover", "beta", "sector"}
        assert max(viol.values()) <= TOL
    assert first_problem is not None and first_problem.n_solves == 3


def test_factor_form_used_automatically_above_threshold() -> None:
    params = _qp(factor_min_assets=30, n_factors=4)
    small, large = risk_sqrt(_returns(100, 29, 0), params), risk_sqrt(_returns(100, 30, 0), params)
    assert small.factors.shape == (29, 29) and not small.resid.any()
    assert large.factors.shape == (4, 30)
    # the factor model keeps the diagonal of Sigma exactly (unit diagonal: correlation)
    assert np.allclose(np.diag(large.matrix()), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cov_kind", ["sample", "ledoit_wolf", "ewma"])
@pytest.mark.parametrize("risk_model", ["correlation", "covariance"])
def test_dense_risk_model_equals_estimates(cov_kind: str, risk_model: str) -> None:
    x = _returns(120, 15, 3)
    params = _qp(covariance=cov_kind, risk_model=risk_model, halflife=30.0)  # type: ignore[arg-type]
    sigma = risk_sqrt(x, params).matrix()
    if cov_kind == "sample":
        expected = estimates.sample_covariance(x)
    elif cov_kind == "ledoit_wolf":
        expected = estimates.ledoit_wolf(x)[0]
    else:
        expected = estimates.ewma_covariance(x, 30.0)
    if risk_model == "correlation":
        expected = estimates.cov_to_corr(expected)
    assert np.max(np.abs(sigma - expected)) <= 1e-12 * np.abs(expected).max()


@pytest.mark.parametrize("cov_kind", ["sample", "ledoit_wolf", "ewma"])
def test_dense_risk_model_equals_estimates_beside_names_without_data(cov_kind: str) -> None:
    """Zero columns (names without a traded window) do not move the risk model of the
    others, exactly as in ``estimates`` (the QP's Ledoit-Wolf had kept them in its target)."""
    x = np.concatenate([_returns(120, 15, 3), np.zeros((120, 5))], axis=1)
    params = _qp(covariance=cov_kind, risk_model="covariance", halflife=30.0)  # type: ignore[arg-type]
    sigma = risk_sqrt(x, params).matrix()
    expected = estimates.estimate_covariance(x, cov_kind, 30.0)  # type: ignore[arg-type]
    assert np.max(np.abs(sigma - expected)) <= 1e-12 * np.abs(expected).max()
    assert not sigma[15:].any() and not sigma[:, 15:].any()


def test_risk_aversion_and_cost_knobs_are_used() -> None:
    n = 20
    sector_ids = np.arange(n) % 4
    base = _qp(sector_cap=NO_SECTOR_CAP)
    inputs = _inputs(base, n, 5)
    w0, _ = QPAllocator(base).solve(inputs, sector_ids)
    w_risk, _ = QPAllocator(base.model_copy(update={"lambda_risk": 100.0})).solve(
        inputs, sector_ids
    )
    sigma = inputs.risk.matrix()
    assert w_risk @ sigma @ w_risk < w0 @ sigma @ w0 - 1e-6
    # huge cost aversion: the feasible current book is kept
    w_cur = np.full(n, 1.0 / n)
    w_cost, _ = QPAllocator(base.model_copy(update={"gamma_cost": 1e6})).solve(inputs, sector_ids)
    assert np.max(np.abs(w_cost - w_cur)) <= 1e-6


def test_infeasible_names_the_constraint_groups() -> None:
    n = 20
    sector_ids = np.arange(n) % 4
    # 20 names capped at 0.04 hold at most 0.8 < sum w = 1
    params = _qp(per_name_cap=0.04)
    with pytest.raises(Infeasible) as err:
        QPAllocator(params).solve(_inputs(params, n, 0), sector_ids)
    msg = str(err.value)
    assert "[budget, per_name_cap]" in msg
    assert "baselines.qp.per_name_cap" in msg and "sum w == 1" in msg
    # a turnover cap from a cash book cannot reach the budget
    params = _qp(max_turnover=0.2)
    with pytest.raises(Infeasible, match=r"\[budget, turnover\]"):
        QPAllocator(params).solve(_inputs(params, n, 0, w_cur=np.zeros(n)), sector_ids)
    # four sectors capped at 0.2 hold at most 0.8 < 1
    params = _qp(sector_cap=0.2)
    with pytest.raises(Infeasible, match=r"\[budget, sector\]"):
        QPAllocator(params).solve(_inputs(params, n, 0), sector_ids)


def _ctx(n_envs: int, n: int, seed: int) -> AllocationContext:
    rng = np.random.default_rng(seed)
    return AllocationContext(
        returns=np.stack([_returns(150, n, seed + e) for e in range(n_envs)]),
        current_weights=np.full((n_envs, n), 0.5 / n),
        symbols=tuple(f"S{i}" for i in range(n)),
        sector_ids=np.arange(n) % 4,
        regime=np.zeros(n_envs, dtype=int),
        regime_confidence=np.ones(n_envs),
        scores=rng.normal(0, 1, (n_envs, n)),
    )


def test_allocate_solves_each_portfolio() -> None:
    ctx = _ctx(2, 15, 1)
    alloc = QPAllocator(_qp())
    w = alloc.allocate(ctx)
    assert w.shape == (2, 15)
    assert alloc.source_ == ["qp:CLARABEL", "qp:CLARABEL"]
    assert alloc.fallback_chain_ == [[("qp:CLARABEL", "optimal")]] * 2
    for e in range(2):
        w_e, info = QPAllocator(_qp()).solve(alloc.inputs_[e], ctx.sector_ids)
        assert abs(alloc.objective_[e] - info["objective"]) <= 1e-8 * abs(info["objective"])
        assert np.allclose(w[e], w_e, rtol=0, atol=1e-6)
        assert (
            max(qp_violations(w[e], alloc.inputs_[e], alloc.params, ctx.sector_ids).values()) <= TOL
        )


def test_solutions_sit_exactly_on_the_bounds_and_the_budget() -> None:
    """The solver's tolerance is snapped away: no long-only name below 0, none above the
    cap, the budget held (the gates would clip 1e-11 of dust and code it as a breach)."""
    alloc = QPAllocator(_qp())
    for seed in range(6):
        w = alloc.allocate(_ctx(3, 15, 10 * seed))
        assert alloc.source_ == ["qp:CLARABEL"] * 3
        assert w.min() >= 0.0 and w.max() <= alloc.params.per_name_cap
        np.testing.assert_allclose(w.sum(axis=1), alloc.params.budget, rtol=0, atol=1e-14)


def test_fallback_chain_infeasible_goes_to_hrp() -> None:
    ctx = _ctx(1, 12, 2)
    # 12 names capped at 0.05 hold at most 0.6 < sum w = 1: said once per universe size
    alloc = QPAllocator(_qp(per_name_cap=0.05))
    with pytest.warns(UserWarning, match=r"budget 1 needs more than 12 names x per-name cap "
                      r"0.05 = 0.6 can hold.*lower baselines.qp.budget"):  # fmt: skip
        w = alloc.allocate(ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alloc.allocate(ctx)
    chain = alloc.fallback_chain_[0]
    assert [step for step, _ in chain] == ["qp:CLARABEL", "qp:CLARABEL:accurate", "qp:SCS", "hrp"]
    assert chain[0][1].startswith("infeasible:") and "[budget, per_name_cap]" in chain[0][1]
    assert chain[1][1].startswith("skipped:") and chain[2][1].startswith("skipped:")
    assert chain[3] == ("hrp", "ok")
    assert alloc.source_ == ["hrp"]
    assert np.allclose(w[0], HRP().fit(ctx.returns[0]).weights_, rtol=0, atol=1e-15)
    assert np.isnan(alloc.objective_[0])


def test_fallback_chain_ends_with_current_book() -> None:
    ctx = _ctx(1, 12, 3)
    hrp = HRP(HRPConfig(max_weight=0.05))  # 12 * 0.05 < 1: HRP is infeasible too
    alloc = QPAllocator(_qp(per_name_cap=0.05), hrp=hrp)
    with pytest.warns(UserWarning, match="qp: budget 1 needs more than 12 names"):
        w = alloc.allocate(ctx)
    chain = alloc.fallback_chain_[0]
    assert [step for step, _ in chain] == [
        "qp:CLARABEL",
        "qp:CLARABEL:accurate",
        "qp:SCS",
        "hrp",
        "current_book",
    ]
    assert chain[3][1].startswith("failed:") and "max weights sum" in chain[3][1]
    assert alloc.source_ == ["current_book"]
    assert np.array_equal(w[0], ctx.current_weights[0])


def test_solver_failure_retries_accurate_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(qp_mod._SOLVER_OPTS, "CLARABEL", {"max_iter": 1})
    ctx = _ctx(1, 12, 4)
    alloc = QPAllocator(_qp())
    w = alloc.allocate(ctx)
    chain = alloc.fallback_chain_[0]
    assert chain[0][0] == "qp:CLARABEL" and chain[0][1].startswith("failed:")
    assert chain[1] == ("qp:CLARABEL:accurate", "optimal")
    assert alloc.source_ == ["qp:CLARABEL:accurate"]
    assert max(qp_violations(w[0], alloc.inputs_[0], alloc.params, ctx.sector_ids).values()) <= TOL


def test_solver_failure_falls_back_to_second_solver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(qp_mod._SOLVER_OPTS, "CLARABEL", {"max_iter": 1})
    monkeypatch.setitem(qp_mod._ACCURATE_OPTS, "CLARABEL", {"max_iter": 1})
    ctx = _ctx(1, 12, 4)
    alloc = QPAllocator(_qp())
    w = alloc.allocate(ctx)
    chain = alloc.fallback_chain_[0]
    assert chain[0][0] == "qp:CLARABEL" and chain[0][1].startswith("failed:")
    assert chain[1][0] == "qp:CLARABEL:accurate" and chain[1][1].startswith("failed:")
    assert chain[2] == ("qp:SCS", "optimal")
    assert alloc.source_ == ["qp:SCS"]
    inputs = alloc.inputs_[0]
    ref = _reference(alloc.params, inputs, ctx.sector_ids)
    assert abs(qp_objective(w[0], inputs, alloc.params) - ref) <= 1e-6 * max(1.0, abs(ref))


def test_solve_raises_solver_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(qp_mod._SOLVER_OPTS, "CLARABEL", {"max_iter": 1})
    params = _qp()
    with pytest.raises(SolverFailed, match="CLARABEL"):
        QPAllocator(params).solve(_inputs(params, 10, 0), np.zeros(10, dtype=int))


def test_betas_from_benchmark_when_context_has_none() -> None:
    ctx = _ctx(1, 10, 6)
    bench = ctx.returns[0].mean(axis=1)
    ctx = dataclasses.replace(ctx, benchmark_returns=bench[None, :])
    alloc = QPAllocator(_qp(beta_tolerance=1.0, sector_cap=NO_SECTOR_CAP))
    alloc.allocate(ctx)
    betas = alloc.inputs_[0].betas
    x = ctx.returns[0]
    expected = np.array([np.cov(x[:, i], bench)[0, 1] / np.var(bench, ddof=1) for i in range(10)])
    assert np.allclose(betas, expected, rtol=1e-12, atol=0)
    assert alloc.source_ == ["qp:CLARABEL"]


@pytest.mark.parametrize(("n_obs", "n_assets"), [(30, 50), (80, 20)])
def test_full_rank_factor_form_is_exact(n_obs: int, n_assets: int) -> None:
    x = _returns(n_obs, n_assets, 9)
    params = _qp(n_factors=min(n_obs, n_assets))
    dense = risk_sqrt(x, params, factor_form=False).matrix()
    factor = risk_sqrt(x, params, factor_form=True)
    assert factor.factor_form and factor.factors.shape == (min(n_obs, n_assets), n_assets)
    assert np.max(np.abs(factor.matrix() - dense)) <= 1e-10


def test_names_without_variance_are_frozen() -> None:
    ctx = _ctx(1, 12, 7)
    returns = ctx.returns.copy()
    returns[0, :, [3, 7]] = 0.0  # untradable over the window
    w_cur = np.full((1, 12), 0.05)
    w_cur[0, 3] = 0.0
    ctx = dataclasses.replace(ctx, returns=returns, current_weights=w_cur)
    params = _qp(risk_model="covariance", sector_cap=NO_SECTOR_CAP)
    alloc = QPAllocator(params)
    w = alloc.allocate(ctx)
    assert alloc.source_ == ["qp:CLARABEL"]
    assert alloc.inputs_[0].frozen is not None
    assert np.flatnonzero(alloc.inputs_[0].frozen).tolist() == [3, 7]
    # zero variance would make them "riskless"; frozen, they keep the current weight
    assert abs(w[0, 3]) <= 1e-9 and abs(w[0, 7] - 0.05) <= 1e-9
    viol = qp_violations(w[0], alloc.inputs_[0], params, ctx.sector_ids)
    assert viol["frozen"] <= TOL


def test_frozen_name_above_cap_is_reported() -> None:
    n = 10
    params = _qp(sector_cap=NO_SECTOR_CAP)
    base = _inputs(params, n, 1, w_cur=np.r_[0.3, np.full(n - 1, 0.7 / (n - 1))])
    inputs = dataclasses.replace(base, frozen=np.r_[True, np.zeros(n - 1, dtype=bool)])
    with pytest.raises(Infeasible, match=r"\[per_name_cap, frozen\]"):
        QPAllocator(params).solve(inputs, np.zeros(n, dtype=int))


def test_sp500_window_solves_within_constraints() -> None:
    import warnings

    from allocgym.allocator import Allocator
    from allocgym.data import load_sp500

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = load_sp500()
    t, lookback = md.n_days - 1, 252
    window = md.returns[t - lookback + 1 : t + 1]
    mom = window.sum(axis=0)
    ctx = AllocationContext(
        returns=window[None],
        current_weights=np.zeros((1, md.n_assets)),
        symbols=md.symbols,
        sector_ids=md.sector_ids,
        regime=np.zeros(1, dtype=int),
        regime_confidence=np.ones(1),
        scores=((mom - mom.mean()) / mom.std())[None],
        benchmark_returns=md.benchmark_returns[t - lookback + 1 : t + 1][None],
    )
    alloc = QPAllocator(_qp(beta_tolerance=1.5))
    assert isinstance(alloc, Allocator)
    w = alloc.allocate(ctx)
    assert alloc.source_ == ["qp:CLARABEL"]
    inputs = alloc.inputs_[0]
    assert max(qp_violations(w[0], inputs, alloc.params, md.sector_ids).values()) <= TOL
    ref = _reference(alloc.params, inputs, md.sector_ids)
    assert abs(qp_objective(w[0], inputs, alloc.params) - ref) <= 1e-6 * max(1.0, abs(ref))
