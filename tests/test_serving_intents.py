"""Served strategy intents with confidence and horizon: the request fields reach the
budgets-mode aggregation, and bad values are coded rejects."""

from __future__ import annotations

import numpy as np
import pytest
from test_serving_support import ENABLED, bar_clock, patient, small_market, untrained_bundle

from allocgym.intents import IntentAggregator
from allocgym.serving import FrozenAllocator, FrozenPolicy
from allocgym.serving.allocator import request_from_market


@pytest.fixture(scope="module")
def served() -> tuple[FrozenAllocator, object]:
    policy = FrozenPolicy.load(untrained_bundle("budgets"))
    return FrozenAllocator(policy, environ=ENABLED, serving=patient(policy)), small_market()


def _decide(served: tuple[FrozenAllocator, object], rid: str, **fields: object):
    alloc, market = served
    req = request_from_market(market, 400, history=alloc.history, request_id=rid)
    req = req.model_copy(update=fields)
    return alloc.trace(req, now=bar_clock(market, 400))


def test_request_confidence_and_horizon_reach_the_aggregator(served) -> None:
    """ "strategy intents with confidence and horizon": the served proposal is the
    aggregation of the policy's budgets over the request's intents weighted by their
    confidence, with the stale family decayed (bundle default ``decay``: a trend intent
    20 bars old with a 10-bar horizon counts 0.5 ** 1)."""
    alloc, _ = served
    n = alloc.n_assets
    trend, mean_rev, defensive = np.zeros(n), np.zeros(n), np.full(n, 0.5)
    trend[:2] = 0.5
    mean_rev[5] = 1.0
    conf = np.ones(n)
    conf[1] = 0.25
    base = {"strategy_intents": {"trend": trend, "mean_reversion": mean_rev,
                                 "defensive": defensive}}  # fmt: skip
    fresh = _decide(served, "i1", **base)
    weighted = _decide(served, "i2", **base, strategy_confidence={"trend": conf})
    stale = _decide(
        served, "i3", **base, strategy_confidence={"trend": conf},
        strategy_horizons={"trend": 10}, strategy_intent_age={"trend": 20},
    )  # fmt: skip
    # the model's budgets (the proposal output), one line per family and cash
    budgets = np.array([[line.budget for line in weighted.decision.budgets]])
    assert np.array_equal(budgets, [[line.budget for line in fresh.decision.budgets]])
    intents = np.stack([[trend, mean_rev, defensive]])
    c = np.ones_like(intents)
    c[0, 0] = conf
    agg = IntentAggregator(n_strategies=alloc.n_strategies)
    assert np.allclose(fresh.decision.proposed_weights, agg.aggregate(budgets, intents)[0][0])
    want = agg.aggregate(budgets, intents, c)[0][0]
    assert np.allclose(weighted.decision.proposed_weights, want, atol=1e-12)
    # trend's budget b0 is split 0.8 / 0.2 between the first two names instead of 0.5 / 0.5
    b0 = budgets[0, 0]
    assert want[0] - want[1] == pytest.approx(b0 * 0.6, abs=1e-12)
    age = np.array([[20.0, 0.0, 0.0]])
    want_stale = agg.aggregate(budgets, intents, c, age, np.array([10.0, 20.0, 63.0]))[0][0]
    assert np.allclose(stale.decision.proposed_weights, want_stale, atol=1e-12)
    trace = {b.strategy: b.proposed_gross for b in stale.decision.budgets}
    assert trace["trend"] == pytest.approx(0.5 * b0, abs=1e-12)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"strategy_confidence": {"trend": "bad"}}, "strategy_confidence.trend"),
        ({"strategy_confidence": {"defensive": "ones"}}, "strategy_confidence"),
        ({"strategy_horizons": {"trend": 0}}, "strategy_horizons"),
        ({"strategy_intent_age": {"trend": -1}}, "strategy_intent_age"),
    ],
)
def test_bad_confidence_or_horizon_is_a_coded_reject(served, fields, field) -> None:
    alloc, _ = served
    n = alloc.n_assets
    update = dict(fields)
    if update.get("strategy_confidence", {}).get("trend") == "bad":
        update["strategy_confidence"] = {"trend": np.full(n, 1.5)}
    if update.get("strategy_confidence", {}).get("defensive") == "ones":
        update["strategy_confidence"] = {"defensive": np.ones(n)}
    d = _decide(served, f"bad-{field}", strategy_intents={"trend": np.zeros(n)}, **update)
    assert d.decision.status == "rejected"
    assert d.decision.reject is not None and d.decision.reject.field == field


def test_families_a_request_leaves_out_keep_the_feature_intents(served) -> None:
    """Intents given for trend only replace trend's; mean reversion and defensive keep
    the FeatureBuilder's (they had been zeroed, their budgets silently going to cash)."""
    base = _decide(served, "keep-0")
    parts = np.asarray(base.context.strategy_weights)[0]
    n = parts.shape[1]
    flipped = -np.sign(parts[0]) * (parts[0] != 0.0)  # other trend intents, same size
    one = _decide(served, "keep-1", strategy_intents={"trend": flipped})
    got = np.asarray(one.context.strategy_weights)[0]
    np.testing.assert_array_equal(got[1:], parts[1:])  # the others exactly as before
    assert not np.array_equal(got[0], parts[0]) and got.shape == (parts.shape[0], n)
