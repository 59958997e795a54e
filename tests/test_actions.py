"""ActionSpec: hand-computed maps, bounds as properties, errors that name the fix."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from allocgym.actions import ActionSpec, softmax
from allocgym.config import config_from_dict
from allocgym.errors import ConfigError


def _spec(
    mode="weights", n_assets=3, n_strategies=3, long_only=True, scale=3.0, msw=0.1, gross=1.0
):
    return ActionSpec(mode, n_assets, n_strategies, long_only, scale, msw, gross)


def test_long_only_softmax_with_cash_by_hand():
    spec = _spec(n_assets=2, scale=3.0)
    w = spec.to_weights(np.array([[1.0, -1.0, 0.0]]))
    z = math.exp(3) + math.exp(-3) + 1.0
    assert w.shape == (1, 2)
    assert w.dtype == np.float64
    assert w[0, 0] == pytest.approx(math.exp(3) / z, rel=1e-14)
    assert w[0, 1] == pytest.approx(math.exp(-3) / z, rel=1e-14)
    # the dropped cash entry is what is missing to 1
    assert 1.0 - w.sum() == pytest.approx(1.0 / z, rel=1e-12)


def test_zero_action_is_equal_weight_with_cash():
    spec = _spec(n_assets=4)
    w = spec.to_weights(np.zeros((2, 5)))
    assert np.all(w == pytest.approx(0.2))


def test_actions_outside_box_are_clipped():
    spec = _spec(n_assets=2, scale=2.0)
    inside = spec.to_weights(np.array([[1.0, -1.0, 0.5]]))
    outside = spec.to_weights(np.array([[7.0, -9.0, 0.5]]))
    assert np.array_equal(inside, outside)


def test_long_short_bounded_by_hand():
    spec = _spec(n_assets=3, long_only=False, msw=0.1, gross=0.25)
    w = spec.to_weights(np.array([[1.0, -1.0, 0.5]]))
    assert np.allclose(w, [[0.1, -0.1, 0.05]], rtol=0, atol=1e-15)
    spec = _spec(n_assets=3, long_only=False, msw=0.1, gross=0.2)
    w = spec.to_weights(np.array([[1.0, -1.0, 0.5]]))
    # gross 0.25 scaled to 0.2: factor 0.8
    assert np.allclose(w, [[0.08, -0.08, 0.04]], rtol=0, atol=1e-15)
    assert spec.shape == (3,)


def test_budgets_softmax_by_hand():
    spec = _spec(mode="budgets", n_strategies=2, scale=1.0)
    b = spec.to_budgets(np.array([[0.0, 1.0, -1.0]]))
    z = 1.0 + math.e + math.exp(-1)
    assert np.allclose(b, [[1 / z, math.e / z, math.exp(-1) / z]], rtol=1e-14, atol=0)
    assert spec.shape == (3,)


def test_from_config_dims_and_bounds():
    cfg = config_from_dict({"env": {"logit_scale": 2.5}})
    spec = ActionSpec.from_config(cfg, 5, 3)
    assert spec.shape == (6,)
    assert spec.logit_scale == 2.5
    assert spec.low.dtype == np.float32 and spec.high.dtype == np.float32
    assert np.all(spec.low == -1) and np.all(spec.high == 1)
    cfg = config_from_dict({"risk": {"long_only": False}})
    assert ActionSpec.from_config(cfg, 5, 3).shape == (5,)
    cfg = config_from_dict({"env": {"action_mode": "budgets"}})
    spec = ActionSpec.from_config(cfg, 5, 3)
    assert spec.shape == (4,)
    assert spec.layout()["action_dim"] == 4


def test_errors_name_the_fix():
    spec = _spec(n_assets=3)
    with pytest.raises(ValueError, match=r"expected \(n_envs, 4\)"):
        spec.to_weights(np.zeros((1, 3)))
    with pytest.raises(ConfigError, match="to_weights"):
        spec.to_budgets(np.zeros((1, 4)))
    with pytest.raises(ConfigError, match="n_strategies"):
        _spec(mode="budgets", n_strategies=0)
    with pytest.raises(ConfigError, match="logit_scale"):
        _spec(scale=0.0)


def test_nan_passes_through_for_the_gates():
    spec = _spec(n_assets=2)
    w = spec.to_weights(np.array([[np.nan, 0.0, 0.0]]))
    assert np.isnan(w).any()


finite = st.floats(-5, 5, allow_nan=False, width=32)


@settings(deadline=None, max_examples=60)
@given(arrays(np.float32, (4, 7), elements=finite), st.floats(0.1, 10))
def test_long_only_weights_are_a_sub_simplex(a, scale):
    spec = _spec(n_assets=6, scale=scale)
    w = spec.to_weights(a)
    assert np.all(w >= 0)
    assert np.all(w.sum(axis=1) <= 1 + 1e-12)
    assert np.all(np.isfinite(w))


@settings(deadline=None, max_examples=60)
@given(arrays(np.float32, (4, 6), elements=finite), st.floats(0.01, 0.5), st.floats(0.05, 2.0))
def test_long_short_weights_respect_bounds(a, msw, gross):
    spec = _spec(n_assets=6, long_only=False, msw=msw, gross=gross)
    w = spec.to_weights(a)
    assert np.all(np.abs(w) <= msw * (1 + 1e-12))
    assert np.all(np.abs(w).sum(axis=1) <= gross * (1 + 1e-12))
    # scaling is down only: below the gross bound the map is exactly a * msw
    raw = np.clip(a.astype(np.float64), -1, 1) * msw
    small = np.abs(raw).sum(axis=1) <= gross
    assert np.array_equal(w[small], raw[small])


@settings(deadline=None, max_examples=40)
@given(arrays(np.float64, (3, 5), elements=st.floats(-50, 50)))
def test_softmax_sums_to_one(x):
    p = softmax(x)
    assert np.allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all(p >= 0)


def test_softmax_of_integer_logits_is_the_float_softmax() -> None:
    got = softmax(np.array([[1, 2, 3]]))
    assert got.dtype == np.float64
    assert np.array_equal(got, softmax(np.array([[1.0, 2.0, 3.0]])))
