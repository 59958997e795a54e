"""The env step's glue around the compiled kernels: the one-pass reason summary (the
reason counts of ``info`` and the trade-limit cut of ``next_working``) against a naive
loop, the action maps' in-place arithmetic (the caller's action untouched, the values
of the textbook formulas), and the step's info wiring (one reward array, the counts
and ``working`` of the same pass)."""

from __future__ import annotations

import numpy as np
import pytest
from gate_books import ENV_RISK

from allocgym.actions import ActionSpec, softmax
from allocgym.compiled.env import reason_summary
from allocgym.config import config_from_dict
from allocgym.data import synthetic
from allocgym.envs import EnvParams, core
from allocgym.execution import next_working
from allocgym.risk import ReasonCode


def _naive_summary(
    symbols: np.ndarray, portfolio: np.ndarray, bits: np.ndarray, mask: int
) -> tuple[np.ndarray, np.ndarray]:
    counts = np.zeros((symbols.shape[0], bits.size), dtype=np.int64)
    bound = np.zeros(symbols.shape[0], dtype=bool)
    for b in range(symbols.shape[0]):
        seen = int(portfolio[b])
        for r in symbols[b].tolist():
            seen |= r
            for k, bit in enumerate(bits.tolist()):
                counts[b, k] += (r >> bit) & 1
        bound[b] = (seen & mask) != 0
    return counts, bound


def test_reason_summary_equals_a_naive_loop():
    """Counts per (portfolio, code) and the mask test on the portfolio's and its symbols'
    bits, on random codes including bits outside ``bits`` (ignored by the counts) and
    portfolios without any code."""
    rng = np.random.default_rng(3)
    codes = np.array([int(c) for c in core.REASON_CODES], dtype=np.int64)
    symbols = np.zeros((40, 7), dtype=np.int64)
    for _ in range(3):
        symbols |= np.where(rng.random(symbols.shape) < 0.4, rng.choice(codes, symbols.shape), 0)
    symbols[:, 0] |= np.int64(1) << 62  # a bit no code uses
    symbols[5] = 0
    portfolio = np.where(rng.random(40) < 0.3, rng.choice(codes, 40), 0).astype(np.int64)
    bits = np.array([int(c).bit_length() - 1 for c in core.REASON_CODES], dtype=np.int64)
    counts, bound = reason_summary(symbols, portfolio, bits, core.TRADE_LIMITS)
    ref_counts, ref_bound = _naive_summary(symbols, portfolio, bits, core.TRADE_LIMITS)
    assert np.array_equal(counts, ref_counts)
    assert np.array_equal(bound, ref_bound)
    assert bound.any() and not bound.all()
    # no columns: the mask test alone
    none, bound_only = reason_summary(symbols, portfolio, np.zeros(0, np.int64), core.TRADE_LIMITS)
    assert none.shape == (40, 0) and np.array_equal(bound_only, ref_bound)
    # the env's wrapper reads the same pass
    assert np.array_equal(next_working(None, np.zeros(40, bool), portfolio, symbols), ref_bound)


@pytest.mark.parametrize("long_only", [True, False])
def test_weights_map_leaves_the_action_alone_and_equals_the_formula(long_only):
    """The map scales a fresh clipped copy in place: a float64 action (which ``asarray``
    does not copy) is unchanged, and the weights are the textbook formulas."""
    spec = ActionSpec("weights", 4, 0, long_only, 3.0, 0.4, 1.0)
    action = np.array([[0.5, -2.0, 1.5, 0.0, 0.25], [1.0, 1.0, 1.0, 1.0, -1.0]], dtype=np.float64)[
        :, : spec.action_dim
    ]
    before = action.copy()
    w = spec.to_weights(action)
    assert np.array_equal(action, before)
    a = np.clip(before, -1.0, 1.0)
    if long_only:
        e = np.exp(3.0 * a - (3.0 * a).max(axis=1, keepdims=True))
        expected = (e / e.sum(axis=1, keepdims=True))[:, :4]
    else:
        raw = 0.4 * a
        expected = raw / np.maximum(np.abs(raw).sum(axis=1, keepdims=True), 1.0)
    np.testing.assert_allclose(w, expected, rtol=1e-15, atol=0)


def test_budgets_map_and_softmax_leave_their_inputs_alone():
    spec = ActionSpec("budgets", 4, 3, True, 3.0, 0.4, 1.0)
    action = np.array([[0.2, -0.4, 2.0, np.nan]])
    before = action.copy()
    budgets = spec.to_budgets(action)
    assert np.array_equal(action, before, equal_nan=True)
    assert np.isnan(budgets).all()  # a NaN action gives NaN budgets (the gates code it)
    logits = np.array([[1.0, 2.0, 3.0]])
    p = softmax(logits)
    assert np.array_equal(logits, [[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(p[0], np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum())


def test_step_info_wiring():
    """``reward`` is ``info["reward"]`` (one array), the info's reason counts are those of
    its symbol reasons, and ``working`` is ``next_working`` of the same decision."""
    cfg = config_from_dict(
        {"env": {"split": "all", "episode_length": 8}, "risk": {**ENV_RISK, "max_turnover": 0.05}}
    )
    params = EnvParams.from_config(synthetic(n_assets=6, n_days=500, seed=2), cfg)
    state, _ = core.reset(params, core.seed_keys(np.arange(5)))
    rng = np.random.default_rng(0)
    for _ in range(3):
        res = core.step(params, state, rng.uniform(-1, 1, (5, params.action_spec.action_dim)))
        info = res.info
        assert res.reward is info["reward"]
        bits = np.array([int(c).bit_length() - 1 for c in core.REASON_CODES], dtype=np.int64)
        sym_only = _naive_summary(info["symbol_reasons"], 0 * info["portfolio_reasons"], bits, 0)
        assert np.array_equal(info["reason_counts"], sym_only[0])
        working = next_working(
            None, state.working, info["portfolio_reasons"], info["symbol_reasons"]
        )
        assert np.array_equal(res.state.working, working)
        state = res.state
    turnover = int(ReasonCode.TURNOVER_CAP)
    assert (info["portfolio_reasons"] & turnover).any()  # the cut is exercised
    assert res.state.working.any()
