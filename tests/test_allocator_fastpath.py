"""The frozen allocator's vectorised response fields against hand-computed answers."""

from __future__ import annotations

import json

import numpy as np
from test_serving_support import ENABLED, bar_clock, patient, small_market, untrained_bundle

from allocgym.regime import REGIME_LABELS
from allocgym.serving import FrozenAllocator, FrozenPolicy, RegimeOverride, request_from_market
from allocgym.serving.allocator import quantities


def test_whole_quantities_are_ints_and_the_rest_stay_floats() -> None:
    whole = quantities(np.array([57.0, -3.0, -0.0, 0.0, 2.0**53 - 1]))
    assert whole == [57, -3, 0, 0, 2**53 - 1]
    assert all(type(q) is int for q in whole)
    mixed = quantities(np.array([57.0, 0.5, -0.0, np.nan, np.inf, 2.0**53, -(2.0**60)]))
    assert [type(q) for q in mixed] == [int, float, int, float, float, float, float]
    assert (
        json.dumps(mixed)
        == "[57, 0.5, 0, NaN, Infinity, 9007199254740992.0, -1.152921504606847e+18]"
    )
    assert quantities(np.zeros(0)) == []


def test_every_regime_code_gets_the_limits_multipliers() -> None:
    """The decision's regime multipliers are the limits' own lookup for every label, and
    the unknown regime's for a label outside them."""
    env = {
        **ENABLED,
        # tighter than the bundle's (a map replaces the bundle's whole map)
        "TRADING_ALLOCATOR_REGIME_BUDGET_MULTIPLIERS": (
            '{"trend": 0.9, "high_volatility": 0.25, "uncertain": 0.8}'
        ),
        "TRADING_ALLOCATOR_REGIME_CAPACITY_MULTIPLIERS": (
            '{"mean_reversion": 0.5, "high_volatility": 0.5}'
        ),
    }
    policy = FrozenPolicy.load(untrained_bundle())
    market = small_market()
    alloc = FrozenAllocator(policy, environ=env, serving=patient(policy))
    request = request_from_market(market, 400, history=alloc.history, request_id="g1")
    seen = set()
    for code, label in [*enumerate(REGIME_LABELS), (-1, "not_a_regime")]:
        override = RegimeOverride(label=label, confidence=0.5)
        regime = alloc.trace(
            request.model_copy(update={"regime": override}), now=bar_clock(market, 400)
        ).decision.regime
        codes = np.array([code])
        assert regime.code == code
        assert regime.budget_multiplier == alloc.limits.budget_multiplier(codes)[0]
        assert regime.capacity_multiplier == alloc.limits.capacity_multiplier(codes)[0]
        seen.add((regime.budget_multiplier, regime.capacity_multiplier))
    assert len(seen) >= 3  # the flags make the labels differ: the lookup is not a constant
