"""The factor-exposure limit (``FACTOR_CAP``): hand-computed repairs, input handling, the
limit off, and an env rollout on the S&P 500 sample with the limit on."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from gate_books import FREE, LOOSE, calm_context

from allocgym.config import config_from_dict
from allocgym.data import MarketData
from allocgym.envs import EnvParams, core
from allocgym.errors import GateConfigError, RequestError
from allocgym.factors import pca_factors
from allocgym.features import factor_loading_table
from allocgym.risk import GateContext, ReasonCode, RiskGateChain, RiskLimits, check_invariants

R = ReasonCode


def ctx(m: int, **kw: Any) -> GateContext:
    return calm_context(1, m, **kw)


def run(cap: float | None, proposed: Any, c: GateContext, **kw: Any):
    lim = RiskLimits(**{**LOOSE, **kw}, max_factor_exposure=cap)
    res = RiskGateChain(lim, FREE, debug=True).apply(np.atleast_2d(proposed), c)
    assert check_invariants(res, c, lim, FREE).n_breaches == 0
    return res


def test_two_assets_one_factor_over_the_cap_is_scaled_to_exactly_the_cap():
    # exposure 1.0 x 0.4 + 0.5 x 0.2 = 0.5 > 0.3: the book is scaled by 0.3 / 0.5 = 0.6
    loadings = np.array([[[1.0], [0.5]]])
    res = run(0.3, [0.4, 0.2], ctx(2, factor_loadings=loadings))
    assert res.approved[0] == pytest.approx([0.24, 0.12], rel=1e-15)
    assert 1.0 * res.approved[0, 0] + 0.5 * res.approved[0, 1] == pytest.approx(0.3, rel=1e-15)
    assert res.portfolio_reasons[0] == int(R.FACTOR_CAP)
    assert res.symbol_reasons[0].tolist() == [int(R.FACTOR_CAP)] * 2
    assert res.clipped["FACTOR_CAP"][0] == pytest.approx(0.6 - 0.36, rel=1e-12)


def test_a_short_exposure_is_capped_in_magnitude():
    # loadings (1, -1): exposure 0.1 + 0.3 = 0.4 > 0.2, scale 0.5
    res = run(0.2, [0.1, -0.3], ctx(2, factor_loadings=np.array([[1.0], [-1.0]])))
    assert res.approved[0] == pytest.approx([0.05, -0.15], rel=1e-15)


def test_the_largest_of_several_factors_sets_the_scale():
    # exposures (0.6, 0.3) against 0.4: scale 2/3; factor 1 ends at 0.2, inside
    loadings = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    res = run(0.4, [0.3, 0.3, 0.3], ctx(3, factor_loadings=loadings))
    exposure = loadings.T @ res.approved[0]
    assert exposure == pytest.approx([0.4, 0.2], rel=1e-14)
    assert res.approved[0] == pytest.approx([0.2, 0.2, 0.2], rel=1e-14)


def test_a_book_inside_the_cap_passes_bit_for_bit():
    loadings = np.array([[[1.0], [0.5]]])
    res = run(0.5, [0.25, 0.5], ctx(2, factor_loadings=loadings))  # exactly at the cap
    assert np.array_equal(res.approved, [[0.25, 0.5]])
    assert not res.portfolio_reasons.any() and not res.symbol_reasons.any()


def test_a_current_book_over_the_cap_is_forced_back_inside():
    loadings = np.array([[1.0], [1.0]])
    c = ctx(2, factor_loadings=loadings, current_weights=np.array([[0.3, 0.3]]))
    res = run(0.4, [0.3, 0.3], c, max_turnover=0.01)
    assert res.portfolio_reasons[0] & int(R.FORCED_DERISK)
    assert res.approved[0] == pytest.approx([0.2, 0.2], rel=1e-14)


def test_a_held_untradable_name_is_kept_and_the_tradable_ones_meet_the_cap():
    loadings = np.array([[1.0], [1.0], [1.0]])
    c = ctx(
        3,
        factor_loadings=loadings,
        current_weights=np.array([[0.1, 0.0, 0.0]]),
        tradable=np.array([[False, True, True]]),
    )
    res = run(0.3, [0.4, 0.2, 0.2], c)
    assert res.approved[0, 0] == 0.1  # held: execution cannot move it
    assert (loadings.T @ res.approved[0])[0] == pytest.approx(0.3, rel=1e-12)


def test_cap_set_without_loadings_or_with_misshaped_ones_is_refused():
    with pytest.raises(RequestError, match="factor_loadings is None"):
        run(0.3, [0.4, 0.2], ctx(2))
    with pytest.raises(RequestError, match=r"factor_loadings has shape \(3, 1\)"):
        run(0.3, [0.4, 0.2], ctx(2, factor_loadings=np.ones((3, 1))))
    lim = RiskLimits(**LOOSE, max_factor_exposure=0.3)
    res = RiskGateChain(lim).apply(np.array([[0.1, 0.1]]), ctx(2, factor_loadings=np.ones((2, 1))))
    with pytest.raises(RequestError, match="factor_loadings is None"):
        check_invariants(res, ctx(2), lim)


def test_a_corrupt_loading_makes_the_portfolio_unreadable():
    loadings = np.array([[[1.0], [np.nan]], [[1.0], [0.5]]])
    c = dataclasses.replace(
        ctx(2, factor_loadings=loadings),
        current_weights=np.zeros((2, 2)),
        equity=np.full(2, 1e6),
        regime=np.zeros(2, dtype=np.int64),
    )
    res = run(0.3, np.array([[0.4, 0.2], [0.4, 0.2]]), c)
    assert res.approved[0].tolist() == [0.0, 0.0]
    assert res.portfolio_reasons[0] & int(R.INVALID_INPUT)
    assert res.approved[1] == pytest.approx([0.24, 0.12], rel=1e-15)


def test_with_the_cap_off_loadings_are_ignored_and_no_factor_entry_is_reported():
    loadings = np.array([[[1.0], [0.5]]])
    off = run(None, [0.4, 0.2], ctx(2))
    given = run(None, [0.4, 0.2], ctx(2, factor_loadings=loadings))
    assert np.array_equal(off.approved, given.approved)
    assert np.array_equal(off.approved, [[0.4, 0.2]])
    assert "FACTOR_CAP" not in off.clipped
    on = run(0.3, [0.4, 0.2], ctx(2, factor_loadings=loadings))
    assert list(on.clipped)[:-1] == list(off.clipped)  # the factor entry comes last


def test_context_rows_keep_a_shared_loading_matrix():
    # (n_assets, n_factors) shared by every portfolio, with n_assets == n_envs
    c = dataclasses.replace(
        ctx(2, factor_loadings=np.array([[1.0], [0.5]])),
        current_weights=np.zeros((2, 2)),
        equity=np.full(2, 1e6),
        regime=np.zeros(2, dtype=np.int64),
    )
    assert c.rows(np.array([1])).factor_loadings.shape == (2, 1)
    per_row = dataclasses.replace(c, factor_loadings=np.ones((2, 2, 1)))
    assert per_row.rows(np.array([1])).factor_loadings.shape == (1, 2, 1)


def test_loading_table_rows_are_point_in_time_pca_fits(sp500: MarketData):
    r = sp500.returns[:400]
    table = factor_loading_table(r, 63, 0.6, 3)
    assert table.shape == (400, sp500.n_assets, 3)
    assert not table[:3].any()  # fewer than 3 returns: no factors
    for t in (3, 100, 399):
        model = pca_factors(r[max(1, t - 62) : t + 1], 0.6, 3)
        # BLAS rounding may differ with the window's memory alignment: float dust apart
        np.testing.assert_allclose(table[t, :, : model.n_factors], model.loadings, atol=1e-12)
        assert not table[t, :, model.n_factors :].any()
    # nothing after bar t is read
    moved = r.copy()
    moved[201:] *= 3.0
    np.testing.assert_allclose(
        factor_loading_table(moved, 63, 0.6, 3)[:201], table[:201], atol=1e-12
    )


def test_env_rollout_with_the_cap_on_has_no_breach_and_exposures_under_the_cap(
    sp500: MarketData,
):
    cap = 0.12
    cfg = config_from_dict(
        {
            "env": {"split": "all", "episode_length": 60},
            "risk": {"max_factor_exposure": cap, "max_symbol_weight": 0.3, "max_sector_gross": 1.0},
        }
    )
    params = EnvParams.from_config(sp500, cfg)
    assert params.factor_loadings is not None
    assert params.factor_loadings.shape[:2] == (sp500.n_days, sp500.n_assets)
    rng = np.random.default_rng(3)
    b = 8
    state, _ = core.reset(params, core.seed_keys(np.arange(b)))
    capped = 0
    for _ in range(60):
        action = rng.uniform(-1, 1, (b, params.action_spec.action_dim)).astype(np.float32)
        res = core.step(params, state, action)
        gate, context = res.decision.gate, res.decision.context
        report = check_invariants(gate, context, params.limits, params.cost_model)
        assert report.n_breaches == 0, report.messages[:5]
        exposure = np.einsum("nmk,nm->nk", context.factor_loadings, gate.approved)
        assert np.abs(exposure).max() <= cap * (1 + 1e-9)
        capped += int(((gate.portfolio_reasons & int(R.FACTOR_CAP)) != 0).sum())
        done = res.terminated | res.truncated
        state, _ = core.autoreset(params, res.state, done) if done.any() else (res.state, None)
    assert capped > 0  # the cap bound: the check above is not vacuous


def test_serving_refuses_a_bundle_with_the_factor_cap():
    from test_serving_support import untrained_bundle

    from allocgym.serving.allocator import FrozenAllocator
    from allocgym.serving.bundle import FrozenPolicy

    policy = FrozenPolicy.load(untrained_bundle())
    FrozenAllocator(policy)  # the bundle itself serves
    capped = policy.risk_config.model_copy(update={"max_factor_exposure": 0.2})
    with pytest.raises(GateConfigError, match=r"max_factor_exposure = 0\.2 is set in the bundle"):
        FrozenAllocator(dataclasses.replace(policy, risk_config=capped))


# ----------------------------------------------------------------------------- the optional
# dynamic-correlation feature


def _builders():
    from allocgym.config import FeatureConfig, RegimeConfig
    from allocgym.features import FeatureBuilder
    from allocgym.regime import RegimeModel

    off = FeatureBuilder(FeatureConfig(), RegimeModel(RegimeConfig()))
    on = FeatureBuilder(FeatureConfig(mean_correlation=True), RegimeModel(RegimeConfig()))
    return off, on


def test_mean_correlation_is_the_mean_off_diagonal_ewma_correlation(sp500: MarketData):
    off, on = _builders()
    market = sp500.rows(0, 1300)
    feats_off, feats_on = off.precompute(market), on.precompute(market)
    # off: the layout ends with the step-time globals; on: one slot more, the rest equal
    assert off.global_feature_names[-1] == "cash"
    assert on.global_feature_names[-1] == "mean_correlation"
    assert on.obs_dim(20) == off.obs_dim(20) + 1
    np.testing.assert_array_equal(feats_on.template[:, :-1], feats_off.template)
    low, high = on.observation_bounds(20)
    assert (low[-1], high[-1]) == (-1.0, 1.0)

    t, e = 1200, on.cfg.ewma_window
    assert market.tradable[t - e : t + 1].all()  # every name traded: the identity is exact
    x = np.log1p(market.returns[t - e + 1 : t + 1])
    decay = 0.5 ** (1.0 / on.cfg.ewma_halflife)
    w = decay ** np.arange(e - 1, -1, -1)
    cov = (w[:, None, None] * x[:, :, None] * x[:, None, :]).sum(axis=0) / w.sum()
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    n = corr.shape[0]
    expected = (corr.sum() - n) / (n * (n - 1))
    assert float(feats_on.template[t, -1]) == pytest.approx(expected, rel=1e-6)  # float32 slot

    h = on.history
    one = on.compute(
        market.close[None, t - h + 1 : t + 1],
        market.benchmark_returns[None, t - h + 1 : t + 1],
        market.volume[None, t - h + 1 : t + 1],
        market.spread_bps[None, t - h + 1 : t + 1],
        market.tradable[None, t - h + 1 : t + 1],
    )
    assert np.array_equal(one.template[0], feats_on.template[t])  # serving path: same bits


def test_env_observation_carries_the_mean_correlation(sp500: MarketData):
    cfg = config_from_dict(
        {"env": {"split": "all", "episode_length": 20}, "features": {"mean_correlation": True}}
    )
    params = EnvParams.from_config(sp500, cfg)
    state, obs = core.reset(params, core.seed_keys(np.arange(4)))
    assert obs.shape == (4, params.obs_dim)
    np.testing.assert_array_equal(obs[:, -1], params.features.template[state.t, -1])
    assert np.all((obs[:, -1] >= -1.0) & (obs[:, -1] <= 1.0))


def test_env_observation_carries_the_book_factor_exposures(sp500: MarketData):
    k = 3
    cfg = config_from_dict(
        {
            "env": {"split": "all", "episode_length": 20},
            "features": {"factor_exposures": k, "mean_correlation": True},
        }
    )
    params = EnvParams.from_config(sp500, cfg)
    names = params.feature_builder.global_feature_names
    assert names[-k - 1 :] == ("mean_correlation", "factor_exposure_1", "factor_exposure_2",
                               "factor_exposure_3")  # fmt: skip
    assert params.factor_loadings is not None and params.limits.max_factor_exposure is None
    state, obs = core.reset(params, core.seed_keys(np.arange(4)))
    assert not obs[:, -k:].any()  # all cash: no exposure
    np.testing.assert_array_equal(obs[:, -k - 1], params.features.template[state.t, -k - 1])
    rng = np.random.default_rng(0)
    for _ in range(5):
        action = rng.uniform(-1, 1, (4, params.action_spec.action_dim)).astype(np.float32)
        res = core.step(params, state, action)
        t1, w = res.state.t, res.info["weights"]
        expected = np.einsum("nmk,nm->nk", params.factor_loadings[t1][:, :, :k], w)
        np.testing.assert_allclose(res.obs[:, -k:], expected, rtol=1e-6, atol=1e-7)
        state = res.state
    assert np.abs(res.obs[:, -k:]).max() > 0  # a held book has exposures


def test_more_observed_factors_than_the_model_keeps_is_refused(sp500: MarketData):
    from allocgym.errors import ConfigError

    cfg = config_from_dict(
        {"env": {"split": "all"}, "features": {"factor_exposures": 6}}  # max_factors = 5
    )
    with pytest.raises(ConfigError, match=r"features\.factor_exposures = 6"):
        EnvParams.from_config(sp500, cfg)


def test_lot_rounding_keeps_the_executed_book_under_the_factor_cap(sp500: MarketData):
    """With 100-share lots, rounding an approved book at the cap may not lift a factor
    exposure over it: execution checks the cap like the other portfolio limits (before it
    did, a rollout's executed exposure reached 0.120131 at a 0.12 cap)."""
    cap = 0.12
    cfg = config_from_dict(
        {
            "env": {"split": "all", "episode_length": 40, "initial_equity": 2.0e5},
            "execution": {"lot_size": 100.0},
            "risk": {"max_factor_exposure": cap, "max_symbol_weight": 0.3, "max_sector_gross": 1.0},
        }
    )
    params = EnvParams.from_config(sp500, cfg)
    rng = np.random.default_rng(5)
    b = 8
    state, _ = core.reset(params, core.seed_keys(np.arange(b)))
    rounded = 0
    for _ in range(40):
        action = rng.uniform(-1, 1, (b, params.action_spec.action_dim)).astype(np.float32)
        res = core.step(params, state, action)
        execution, context = res.decision.execution, res.decision.context
        exposure = np.einsum("nmk,nm->nk", context.factor_loadings, execution.target_weights)
        approved = np.einsum("nmk,nm->nk", context.factor_loadings, res.decision.gate.approved)
        ceiling = np.maximum(np.abs(approved), cap) + 1e-9
        assert (np.abs(exposure) <= ceiling).all()
        rounded += int(((execution.portfolio_reasons & int(R.LOT_ROUNDING)) != 0).sum())
        done = res.terminated | res.truncated
        state, _ = core.autoreset(params, res.state, done) if done.any() else (res.state, None)
    assert rounded > 0  # lots were rounded: the check above is not vacuous
