"""VaR backtest: Kupiec and Christoffersen statistics by hand, breach counting, the walk's
point-in-time forecasts (no lookahead), and the report section."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import chi2

from allocgym import measures
from allocgym import var_backtest as vb
from allocgym.errors import ConfigError


def test_kupiec_by_hand() -> None:
    # 250 days, 5 breaches of a 99% VaR: LR = 2 [245 ln(0.98 / 0.99) + 5 ln(0.02 / 0.01)]
    lr = 2 * (245 * math.log(0.98 / 0.99) + 5 * math.log(2.0))
    assert lr == pytest.approx(1.95681, abs=1e-5)
    res = vb.kupiec_pof(5, 250, 0.99)
    assert res["lr"] == pytest.approx(lr, rel=1e-12)
    assert res["p_value"] == pytest.approx(chi2.sf(lr, 1), rel=1e-12)
    # no breach at all: LR = -2 * 250 ln(0.99)
    assert vb.kupiec_pof(0, 250, 0.99)["lr"] == pytest.approx(-500 * math.log(0.99), rel=1e-12)
    # exactly the expected rate: LR = 0, p = 1
    assert vb.kupiec_pof(10, 1000, 0.99) == {"lr": 0.0, "p_value": 1.0}
    with pytest.raises(ValueError):
        vb.kupiec_pof(3, 2, 0.99)


def test_christoffersen_by_hand() -> None:
    hits = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
    # transitions: 00: (0,1),(4,5),(5,6),(8,9) = 4; 01: (1,2),(6,7) = 2; 10: (3,4),(7,8) = 2;
    # 11: (2,3) = 1
    n00, n01, n10, n11 = 4, 2, 2, 1
    pi0, pi1, pi = n01 / (n00 + n01), n11 / (n10 + n11), (n01 + n11) / 9
    restricted = (n00 + n10) * math.log(1 - pi) + (n01 + n11) * math.log(pi)
    markov = (n00 * math.log(1 - pi0) + n01 * math.log(pi0) + n10 * math.log(1 - pi1)
              + n11 * math.log(pi1))  # fmt: skip
    res = vb.christoffersen_independence(hits)
    assert (res["n00"], res["n01"], res["n10"], res["n11"]) == (n00, n01, n10, n11)
    assert res["lr"] == pytest.approx(-2 * (restricted - markov), rel=1e-12)
    assert res["p_value"] == pytest.approx(chi2.sf(res["lr"], 1), rel=1e-12)
    # no breach: nothing to cluster (a plain 0.0: results.json once showed -0.0)
    lr = vb.christoffersen_independence(np.zeros(50, dtype=bool))["lr"]
    assert lr == 0.0 and math.copysign(1.0, lr) == 1.0


def test_breach_tests_count_losses_beyond_var() -> None:
    realized = np.array([-0.03, 0.01, -0.02, -0.021, 0.0])
    var = np.full(5, 0.02)
    res = vb.var_breach_tests(realized, var, 0.99)
    assert res["n_breaches"] == 2  # -0.03 and -0.021; -0.02 is not beyond the VaR
    assert res["n_obs"] == 5 and res["expected"] == pytest.approx(0.05)
    assert res["kupiec_p"] == pytest.approx(vb.kupiec_pof(2, 5, 0.99)["p_value"])
    assert res["cc_lr"] == pytest.approx(res["kupiec_lr"] + res["christoffersen_lr"])
    assert res["cc_p"] == pytest.approx(chi2.sf(res["cc_lr"], 2))


def _walk(returns: np.ndarray, bars: np.ndarray, held: np.ndarray) -> SimpleNamespace:
    """A walk whose book over bar ``bars[k] + 1`` is ``held[k]`` (``Backtest.held``)."""
    asset_pnl = held * returns[bars + 1]
    return SimpleNamespace(name="w", symbols=("a", "b"), bars=bars, held=held,
                           asset_pnl=asset_pnl)  # fmt: skip


def test_backtest_var_forecasts_use_the_past_only() -> None:
    rng = np.random.default_rng(2)
    r = rng.standard_t(4, (800, 2)) * 0.01
    bars = np.arange(150, 799)
    w = np.tile([0.6, 0.4], (bars.size, 1))
    w[10] = 0.0  # one all-cash bar
    window = 120
    res = vb.backtest_var(_walk(r, bars, w), r, window, 0.99)
    assert res["n_flat"] == 1 and res["n_short_history"] == 0
    keep = np.flatnonzero(np.abs(w).sum(1) > 0)
    k = keep[37]
    t = bars[k]
    scenarios = r[t - window + 1 : t + 1] @ w[k]
    realized = (w * r[bars + 1]).sum(1)[keep]
    for method, fn in (("historical", measures.var), ("evt", measures.evt_var),
                       ("gaussian", measures.gaussian_var)):  # fmt: skip
        forecast = vb.var_forecasts(
            np.stack([r[b - window + 1 : b + 1] @ w[j] for j, b in zip(keep, bars[keep], strict=True)]),
            0.99, method,
        )  # fmt: skip
        assert forecast[37] == pytest.approx(float(fn(scenarios, 0.99)), rel=1e-12)
        expected = vb.var_breach_tests(realized, forecast, 0.99)
        assert res[method]["n_breaches"] == expected["n_breaches"]
        assert res[method]["kupiec_p"] == pytest.approx(expected["kupiec_p"])
    # perturbing returns after the last decision's window leaves its forecast unchanged
    r2 = r.copy()
    r2[bars[-1] + 1 :] *= 5.0
    head = vb.backtest_var(_walk(r2, bars[:-1], w[:-1]), r2, window, 0.99)
    base = vb.backtest_var(_walk(r, bars[:-1], w[:-1]), r, window, 0.99)
    assert head["evt"]["mean_var"] == base["evt"]["mean_var"]
    # decisions whose window would start before bar 0 are left out and counted
    short = vb.backtest_var(_walk(r, bars, w), r, 200, 0.99)
    assert short["n_short_history"] == int(((bars < 199) & (np.abs(w).sum(1) > 0)).sum())
    assert short["historical"]["n_obs"] == keep.size - short["n_short_history"]
    # a window longer than the data: every step is left out, no error
    none = vb.backtest_var(_walk(r, bars, w), r, 1000, 0.99)
    assert none["evt"]["n_obs"] == 0 and math.isnan(none["evt"]["kupiec_p"])
    with pytest.raises(ConfigError):
        vb.backtest_var(_walk(r, bars, w), r, 1, 0.99)
    with pytest.raises(ConfigError, match="unknown"):
        vb.var_forecasts(np.zeros((2, 200)), 0.99, "garch")
