"""Strategy families and IntentAggregator: hand-computed values and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from allocgym.config import FeatureConfig, RiskConfig
from allocgym.errors import RequestError
from allocgym.intents import (
    N_STRATEGIES,
    STRATEGY_FAMILIES,
    IntentAggregator,
    IntentParams,
    defensive_intent,
    mean_reversion_intent,
    strategy_gross,
    strategy_intents,
    trend_intent,
)


def test_families_and_horizons_from_config() -> None:
    assert STRATEGY_FAMILIES == ("trend", "mean_reversion", "defensive")
    assert N_STRATEGIES == 3
    p = IntentParams.from_config(FeatureConfig())
    assert p.horizons.tolist() == [63, 20, 63]
    assert p.horizons.dtype == np.int64
    p2 = IntentParams.from_config(
        FeatureConfig(momentum_horizons=(10, 40), zscore_window=15, ewma_window=30)
    )
    assert p2.horizons.tolist() == [40, 15, 30]


def test_trend_intent_hand_computed() -> None:
    z = np.array([[[1.0, 1.0, 0.0], [2.0, -1.0, 0.0], [3.0, 1.0, 0.0]]])  # (1, 3 horizons, 3)
    tradable = np.array([[True, True, True]])
    intent, conf = trend_intent(z, tradable)
    # asset 0: s = 2, all horizons agree; asset 1: s = 1/3, agreement |1 - 1 + 1| / 3.
    assert intent[0, 0] == pytest.approx(np.tanh(2.0), abs=1e-15)
    assert conf[0, 0] == pytest.approx(np.tanh(2.0), abs=1e-15)
    assert intent[0, 1] == pytest.approx(np.tanh(1.0 / 3.0), abs=1e-15)
    assert conf[0, 1] == pytest.approx(np.tanh(1.0 / 3.0) / 3.0, abs=1e-15)
    assert intent[0, 2] == 0.0
    assert conf[0, 2] == 0.0
    intent, conf = trend_intent(z, np.array([[False, True, True]]))
    assert intent[0, 0] == 0.0
    assert conf[0, 0] == 0.0


def test_mean_reversion_intent_hand_computed() -> None:
    z = np.array([[2.0, 2.0, -4.0, 1.0]])
    rho = np.array([[-0.5, 0.2, -0.9, 0.7]])
    intent, conf = mean_reversion_intent(z, rho, np.array([[True, True, True, False]]))
    t1, t2 = np.tanh(1.0), np.tanh(2.0)
    assert intent[0].tolist() == pytest.approx([-t1, -t1, t2, 0.0], abs=1e-15)
    # persistence clip(0.5 - rho, 0, 1): 1.0, 0.3, 1.0 (clipped from 1.4), untradable 0.
    assert conf[0].tolist() == pytest.approx([t1, 0.3 * t1, t2, 0.0], abs=1e-15)


def test_defensive_intent_hand_computed() -> None:
    vol = np.array([[0.01, 0.02, 0.04, 0.005]])
    med = np.array([0.02])
    intent, conf = defensive_intent(vol, med, np.array([[True, True, True, False]]))
    assert intent[0].tolist() == pytest.approx([2 / 3, 0.5, 1 / 3, 0.0], abs=1e-15)
    assert conf[0].tolist() == pytest.approx([0.75, 0.5, 0.0, 0.0], abs=1e-15)


def test_strategy_intents_stacks_in_family_order() -> None:
    rng = np.random.default_rng(0)
    k, n = 4, 6
    mom = rng.normal(size=(k, 3, n))
    z = rng.normal(size=(k, n))
    rho = rng.uniform(-1, 1, (k, n))
    vol = rng.uniform(0.005, 0.03, (k, n))
    med = np.median(vol, axis=1)
    tr = rng.random((k, n)) > 0.2
    si = strategy_intents(mom, z, rho, vol, med, tr, IntentParams(63, 20, 63))
    assert si.intents.shape == si.confidence.shape == (k, 3, n)
    assert np.array_equal(si.intents[:, 0], trend_intent(mom, tr)[0])
    assert np.array_equal(si.confidence[:, 1], mean_reversion_intent(z, rho, tr)[1])
    assert np.array_equal(si.intents[:, 2], defensive_intent(vol, med, tr)[0])
    assert si.horizons.tolist() == [63, 20, 63]
    assert ((si.confidence >= 0) & (si.confidence <= 1)).all()
    assert (np.abs(si.intents) <= 1).all()


_INTENTS = np.array([[[1.0, -1.0], [0.2, 0.6], [0.5, 0.5]]])  # (1, 3, 2)
_BUDGETS = np.array([[0.5, 0.3, 0.1, 0.1]])


def test_aggregate_long_short_hand_computed() -> None:
    w, contrib = IntentAggregator(long_only=False).aggregate(_BUDGETS, _INTENTS)
    # unit-gross intents: trend (0.5, -0.5), MR (0.25, 0.75), defensive (0.5, 0.5)
    expected_c = np.array([[[0.25, -0.25], [0.075, 0.225], [0.05, 0.05]]])
    assert np.allclose(contrib, expected_c, rtol=0, atol=1e-15)
    assert np.allclose(w, [[0.375, 0.025]], rtol=0, atol=1e-15)
    assert np.allclose(strategy_gross(contrib), [[0.5, 0.3, 0.1]], rtol=0, atol=1e-15)


def test_aggregate_long_only_clips_before_normalising() -> None:
    w, contrib = IntentAggregator(long_only=True).aggregate(_BUDGETS, _INTENTS)
    # trend's short leg is dropped, so its whole budget goes long asset 0.
    assert np.allclose(contrib[0, 0], [0.5, 0.0], rtol=0, atol=1e-15)
    assert np.allclose(w, [[0.625, 0.275]], rtol=0, atol=1e-15)
    assert (w >= 0).all()


def test_aggregate_family_without_intent_leaves_budget_in_cash() -> None:
    intents = _INTENTS.copy()
    intents[0, 1] = 0.0
    w, contrib = IntentAggregator(long_only=True).aggregate(_BUDGETS, intents)
    assert np.array_equal(contrib[0, 1], [0.0, 0.0])
    assert w.sum() == pytest.approx(1.0 - 0.1 - 0.3, abs=1e-15)
    # all-negative trend intent under long-only: nothing to hold.
    intents[0, 0] = [-1.0, -0.5]
    w, contrib = IntentAggregator(long_only=True).aggregate(_BUDGETS, intents)
    assert np.array_equal(contrib[0, 0], [0.0, 0.0])
    assert w.sum() == pytest.approx(0.1, abs=1e-15)


def test_aggregator_from_config() -> None:
    assert IntentAggregator.from_config(RiskConfig()).long_only is True
    assert IntentAggregator.from_config(RiskConfig(long_only=False)).long_only is False


@pytest.mark.parametrize(
    ("budgets", "intents", "match"),
    [
        (np.array([[0.5, 0.3, 0.1]]), _INTENTS, "budgets shape"),
        (_BUDGETS, _INTENTS[:, :2], "intents shape"),
        (np.array([[0.5, 0.3, 0.1, 0.2]]), _INTENTS, "sum to 1"),
        (np.array([[0.7, 0.3, 0.1, -0.1]]), _INTENTS, "negative"),
        (np.array([[np.nan, 0.3, 0.1, 0.6]]), _INTENTS, "NaN"),
    ],
)
def test_aggregate_rejects_bad_input(budgets: np.ndarray, intents: np.ndarray, match: str) -> None:
    with pytest.raises(RequestError, match=match):
        IntentAggregator(long_only=False).aggregate(budgets, intents)


def test_aggregate_accepts_float32_rounding() -> None:
    b = np.array([[0.25, 0.25, 0.25, 0.25]], dtype=np.float32) + np.float32(1e-8)
    w, _ = IntentAggregator().aggregate(b, _INTENTS)
    assert np.isfinite(w).all()


@settings(deadline=None, max_examples=60)
@given(
    raw=arrays(np.float64, (3, 4), elements=st.floats(0.0, 10.0)),
    intents=arrays(np.float64, (3, 3, 5), elements=st.floats(-2.0, 2.0)),
    long_only=st.booleans(),
)
def test_aggregate_invariants(raw: np.ndarray, intents: np.ndarray, long_only: bool) -> None:
    raw = raw + 1e-3
    budgets = raw / raw.sum(axis=1, keepdims=True)
    w, contrib = IntentAggregator(long_only=long_only).aggregate(budgets, intents)
    assert np.allclose(contrib.sum(axis=1), w, rtol=0, atol=1e-15)
    eff = np.maximum(intents, 0.0) if long_only else intents
    has = np.abs(eff).sum(axis=2) > 0
    gross = strategy_gross(contrib)
    assert np.allclose(gross[has], budgets[:, :3][has], rtol=1e-12, atol=1e-15)
    assert (gross[~has] == 0).all()
    assert (np.abs(w).sum(axis=1) <= 1.0 - budgets[:, 3] + 1e-12).all()
    if long_only:
        assert (w >= 0).all()
    # each row is aggregated on its own: a row's result does not depend on the batch
    w0, c0 = IntentAggregator(long_only=long_only).aggregate(budgets[1:2], intents[1:2])
    assert np.array_equal(w0, w[1:2])
    assert np.array_equal(c0, contrib[1:2])


# ------------------------------------------------------------ confidence and horizon


def test_aggregate_weights_intents_by_confidence() -> None:
    """ "strategy intents with confidence and horizon": inside a family an intent counts
    in proportion to intent x confidence; the budget stays the family's gross.

    Family 0: intents (0.5, 0.5), confidences (1.0, 0.25) -> (0.5, 0.125) / 0.625 =
    (0.8, 0.2) of budget 0.5 -> (0.4, 0.1). Family 1 has confidence 0: its budget stays
    in cash."""
    agg = IntentAggregator(long_only=True, n_strategies=2)
    b = np.array([[0.5, 0.3, 0.2]])
    x = np.array([[[0.5, 0.5], [1.0, 0.0]]])
    c = np.array([[[1.0, 0.25], [0.0, 0.0]]])
    w, contrib = agg.aggregate(b, x, confidence=c)
    assert np.allclose(w, [[0.4, 0.1]])
    assert np.allclose(contrib[0, 1], 0.0)
    plain, _ = agg.aggregate(b, x)
    assert np.allclose(plain, [[0.25 + 0.3, 0.25]])
    with pytest.raises(RequestError, match=r"in \[0, 1\]"):
        agg.aggregate(b, x, confidence=c * 5)


@pytest.mark.parametrize(
    ("rule", "factor"),
    [("drop", 0.0), ("decay", 0.5 ** (10 / 20))],
)
def test_aggregate_drops_or_decays_intents_past_their_horizon(rule: str, factor: float) -> None:
    """ "strategy intents with confidence and horizon": an intent no older than its
    family's horizon counts in full; past it, ``drop`` gives it weight 0 and ``decay``
    0.5 ** ((age - horizon) / horizon). The stale share stays in cash.

    Horizons (20, 5); ages (30, 5): family 0 is 10 bars past its horizon (factor
    0.5 ** 0.5 under decay), family 1 is exactly at its horizon (full weight)."""
    agg = IntentAggregator(long_only=True, n_strategies=2, stale_rule=rule)  # type: ignore[arg-type]
    b = np.array([[0.6, 0.4, 0.0]])
    x = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    w, contrib = agg.aggregate(b, x, age=np.array([[30, 5]]), horizons=np.array([20, 5]))
    assert np.allclose(w, [[0.6 * factor, 0.4]])
    assert np.allclose(strategy_gross(contrib), [[0.6 * factor, 0.4]])
    assert w.sum() <= 1.0 - 0.0 + 1e-12
    # Per-intent ages: only the stale symbol loses weight.
    x2 = np.array([[[0.5, 0.5], [0.0, 1.0]]])
    age2 = np.array([[[30, 0], [0, 0]]])
    w2, _ = agg.aggregate(b, x2, age=age2, horizons=np.array([20, 5]))
    assert np.allclose(w2, [[0.3 * factor, 0.3 + 0.4]])
    with pytest.raises(RequestError, match="come together"):
        agg.aggregate(b, x, age=np.array([[1, 1]]))
    with pytest.raises(RequestError, match="horizons"):
        agg.aggregate(b, x, age=np.array([[1, 1]]), horizons=np.array([0, 5]))


def test_stale_rule_from_config() -> None:
    from allocgym.config import IntentConfig

    assert IntentAggregator.from_config(RiskConfig()).stale_rule == "decay"
    agg = IntentAggregator.from_config(RiskConfig(), IntentConfig(stale_rule="drop"))
    assert agg.stale_rule == "drop"
    with pytest.raises(RequestError, match="stale_rule"):
        IntentAggregator(stale_rule="forget")  # type: ignore[arg-type]
