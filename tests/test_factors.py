"""Factor models: the PCA rule and sign fix, loadings recovered from a simulated factor
model, exposures, risk contributions, the effective number of factors, attribution that
adds up exactly, and user factor returns built from the bundled S&P 500 sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocgym.baselines.risk_budgeting import risk_contributions
from allocgym.data import load_factor_returns, load_sp500
from allocgym.errors import ConfigError, DataError
from allocgym.factors import (
    FactorReturns,
    book_effective_factors,
    effective_number,
    factor_attribution,
    factor_exposures,
    factor_models,
    pca_factors,
    portfolio_exposures,
    select_n_factors,
)

T, N = 2000, 20
FACTOR_SD = np.array([0.02, 0.01, 0.005])
NOISE_SD = 0.003


@pytest.fixture(scope="module")
def simulated() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns r = f B' + e of a 3-factor model, the factor returns f and the loadings B."""
    rng = np.random.default_rng(7)
    loadings = rng.normal(0.5, 0.4, (N, 3))
    f = rng.normal(0.0, FACTOR_SD, (T, 3))
    r = f @ loadings.T + rng.normal(0.0, NOISE_SD, (T, N))
    return r, f, loadings


def test_select_n_factors_rule_by_hand() -> None:
    lam = np.array([5.0, 3.0, 1.0, 0.5, 0.5])  # cumulative shares 0.5, 0.8, 0.9, 0.95, 1
    assert select_n_factors(lam, 0.5, 5) == 1
    assert select_n_factors(lam, 0.6, 5) == 2
    assert select_n_factors(lam, 0.85, 5) == 3
    assert select_n_factors(lam, 0.85, 2) == 2  # the cap
    assert select_n_factors(np.array([2.0, 0.0, 0.0]), 1.0, 5) == 1  # positive ones only
    assert select_n_factors(np.zeros(3), 0.6, 5) == 1
    with pytest.raises(ConfigError, match="variance_threshold"):
        select_n_factors(lam, 0.0, 5)
    with pytest.raises(ConfigError, match="max_factors"):
        select_n_factors(lam, 0.5, 0)


def test_user_factor_regression_recovers_the_loadings(simulated) -> None:
    """OLS slopes within 0.06 of the true loadings: the standard error of a slope is
    about NOISE_SD / (FACTOR_SD * sqrt(T)) <= 0.0134 for the weakest factor, so 0.06 is
    ~4.5 standard errors; the specific variance within 10% of NOISE_SD**2."""
    r, f, loadings = simulated
    model = factor_exposures(r, f, ("mkt", "size", "value"))
    assert model.names == ("mkt", "size", "value")
    assert np.abs(model.loadings - loadings).max() < 0.06
    np.testing.assert_allclose(model.specific_var, NOISE_SD**2, rtol=0.1)
    np.testing.assert_allclose(np.diag(model.factor_cov), FACTOR_SD**2, rtol=0.1)


def test_pca_spans_the_true_loadings_and_fixes_signs(simulated) -> None:
    """With 3 components PCA spans the true loadings (relative residual of projecting B on
    the components < 3%); the rule at 93% keeps exactly 3 (the components explain 91.5%,
    94.2%, 94.6% cumulatively); every component's loadings sum
    to a positive number, and a sign flip of the data does not change the result."""
    r, _, loadings = simulated
    model = pca_factors(r, variance_threshold=0.93, max_factors=10)
    assert model.n_factors == 3
    v = model.loadings
    residual = loadings - v @ (v.T @ loadings)
    assert np.linalg.norm(residual) / np.linalg.norm(loadings) < 0.03
    assert (v.sum(axis=0) > 0).all()
    np.testing.assert_allclose(v.T @ v, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(pca_factors(-r, 0.93, 10).loadings, v, atol=1e-12)
    # exposures by regression on the components' own returns are the loadings themselves
    again = factor_exposures(r, r @ v)
    np.testing.assert_allclose(again.loadings, v, atol=1e-10)
    np.testing.assert_allclose(np.diag(model.factor_cov), model.eigenvalues[:3])
    with pytest.raises(ConfigError, match="n_factors"):
        pca_factors(r, n_factors=N + 1)


def test_exposures_and_factor_risk_contributions_by_hand() -> None:
    b = np.array([[1.0, 0.0], [0.5, 1.0], [0.0, 2.0]])
    w = np.array([[0.2, 0.4, 0.4], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(portfolio_exposures(b, w), [[0.4, 1.2], [1.0, 0.0]])
    f = np.array([[0.04, 0.01], [0.01, 0.09]])
    y = np.array([0.5, 1.0])
    fy = f @ y  # [0.03, 0.095]
    expected = y * fy / (y @ fy)
    np.testing.assert_allclose(risk_contributions(y, f), expected)
    assert risk_contributions(y, f).sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(risk_contributions(np.zeros(2), f), 0.0)


def test_effective_number_of_factors() -> None:
    assert effective_number(np.ones(4)) == pytest.approx(4.0)
    assert effective_number(np.array([3.0, 0.0, 0.0])) == pytest.approx(1.0)
    p = np.array([0.5, 0.25, 0.25])
    assert effective_number(p) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert np.isnan(effective_number(np.zeros(3)))
    # a diagonal covariance: inverse-volatility weights spread the variance evenly
    cov = np.diag([0.04, 0.01, 0.0025])
    w = 1.0 / np.sqrt(np.diag(cov))
    assert book_effective_factors(w / w.sum(), cov) == pytest.approx(3.0)
    assert book_effective_factors(np.array([1.0, 0.0, 0.0]), cov) == pytest.approx(1.0)


def _walk(r: np.ndarray, n_steps: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    bars = np.arange(r.shape[0] - n_steps - 1, r.shape[0] - 1)
    w = rng.dirichlet(np.ones(r.shape[1]), n_steps)
    w[3] = 0.0  # an all-cash step
    return bars, w, w * r[bars + 1]


def test_attribution_adds_up_exactly_with_pca_factors(simulated) -> None:
    r, _, _ = simulated
    bars, w, pnl = _walk(r, 300, 1)
    models = factor_models(r, bars, 250, variance_threshold=0.93, max_factors=4, refit_every=7)
    fa = factor_attribution(w, pnl, models)
    assert fa["factors"][:3] == ["PC1", "PC2", "PC3"]
    total = fa["per_period"].sum(axis=1) + fa["specific"]
    np.testing.assert_allclose(total, pnl.sum(axis=1), rtol=0, atol=1e-15)
    assert sum(fa["total"].values()) == pytest.approx(pnl.sum(), abs=1e-12)
    # the components carry almost all of a diversified book's return variance on this data
    assert fa["specific"].var() < 0.05 * pnl.sum(axis=1).var()
    assert 1.0 <= fa["effective_factors"] <= N


def test_attribution_with_user_factors_leaves_no_specific_part_without_noise(simulated) -> None:
    """Returns exactly f B': the regression recovers B, the contributions are exactly
    (B'w)_j f_j and the specific part is 0."""
    _, f, loadings = simulated
    r = f @ loadings.T
    r[0] = 0.0
    fr = FactorReturns(("mkt", "size", "value"), np.vstack([np.zeros(3), f[1:]]))
    bars, w, pnl = _walk(r, 200, 2)
    models = factor_models(r, bars, 120, factors=fr, refit_every=1)
    fa = factor_attribution(w, pnl, models)
    np.testing.assert_allclose(fa["specific"], 0.0, atol=1e-14)
    expected = (w @ loadings) * f[bars + 1]
    np.testing.assert_allclose(fa["per_period"], expected, atol=1e-14)
    assert set(fa["total"]) == {"mkt", "size", "value", "specific"}


def test_factor_models_refuse_bad_input(simulated) -> None:
    r, _, _ = simulated
    with pytest.raises(ConfigError, match="window"):
        factor_models(r, np.array([100]), 2)
    with pytest.raises(DataError, match="bars must be in"):
        factor_models(r, np.array([T - 1]), 50)
    with pytest.raises(DataError, match="load_factor_returns"):
        factor_models(r, np.array([100]), 50, factors=FactorReturns(("x",), np.zeros((5, 1))))


# ----------------------------------------------------------------------------- S&P factors


def _sp500_factor_frame() -> tuple[pd.DataFrame, np.ndarray]:
    """The index and one equal-weighted portfolio per GICS sector of the bundled sample."""
    market = load_sp500()
    r = market.returns
    sectors = np.array(market.sectors)
    cols = {"index": market.benchmark_returns}
    for s in sorted(set(sectors)):
        cols[s.replace(" ", "_")] = r[:, sectors == s].mean(axis=1)
    frame = pd.DataFrame(cols)
    frame.insert(0, "date", pd.to_datetime(market.dates).strftime("%Y-%m-%d"))
    return frame, market


def test_sp500_index_and_sector_factors_load_and_align(tmp_path: Path) -> None:
    frame, market = _sp500_factor_frame()
    path = tmp_path / "factors.csv"
    # rows shuffled, plus a date the market does not have: alignment is by date
    extra = frame.iloc[[0]].assign(date="1989-12-29")
    pd.concat([frame.sample(frac=1.0, random_state=3), extra]).to_csv(path, index=False)
    fr = load_factor_returns(path, market)
    assert fr.names == tuple(frame.columns[1:])
    assert fr.returns.shape == (market.n_days, frame.shape[1] - 1)
    np.testing.assert_array_equal(fr.returns[0], 0.0)
    np.testing.assert_allclose(fr.returns[1:], frame.iloc[1:, 1:].to_numpy(), rtol=0, atol=0)
    # the index factor explains most of every stock's variance over a year
    bars = np.arange(4000, 4100)
    models = factor_models(market.returns, bars, 252, factors=fr, refit_every=21)
    assert models.loadings.shape == (100, market.n_assets, len(fr.names))
    assert np.isfinite(models.loadings).all()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(index=10), "no row for 1 market date"),
        (lambda f: f.assign(index=f["index"].astype(object).where(f.index != 5, "abc")),
         "'index' on 1990-01-09 is 'abc', not a finite number"),
        (lambda f: f.assign(index=f["index"].where(f.index != 6, 2.5)),
         "is 2.5, a one-bar return of 100 % or more: give decimal returns"),
        (lambda f: pd.concat([f, f.iloc[[7]]]), "appears more than once"),
        (lambda f: f.assign(date=f["date"].where(f.index != 8, "not-a-day")),
         "value 9 ('not-a-day', line 10 of a CSV"),
        (lambda f: f.rename(columns={"date": "day"}), "give a header 'date,<factor>,...'"),
        (lambda f: f[["date"]], "no factor column"),
    ],
)  # fmt: skip
def test_bad_factor_files_are_refused_with_the_value_and_the_fix(
    tmp_path: Path, edit, message: str
) -> None:
    frame, market = _sp500_factor_frame()
    path = tmp_path / "factors.csv"
    edit(frame).to_csv(path, index=False)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_factor_returns(path, market)
    with pytest.raises(DataError, match="does not exist"):
        load_factor_returns(tmp_path / "missing.csv", market)
