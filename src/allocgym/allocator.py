"""The ``Allocator`` protocol: every baseline, the SB3 policy wrapper and the frozen policy
turn a past-only ``AllocationContext`` into proposed weights ``(n_envs, n_assets)``.

Evaluation runs any Allocator through the same environment, gates and costs. Agents are
allocators too: a :class:`PolicyAllocator` reads the env's observation from the context,
asks its policy for actions and maps them to weights with the env's ``ActionSpec``
(:func:`action_proposal`, the map ``allocgym.envs.core.propose`` applies in training).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from allocgym.actions import ActionSpec
from allocgym.errors import ConfigError, DataError
from allocgym.intents import IntentAggregator


@dataclass(frozen=True)
class AllocationContext:
    """What an allocator may see at bar t (data up to and including t only).

    Attributes
    ----------
    returns : ndarray, shape (n_envs, lookback, n_assets)
        Simple returns of the trailing ``lookback`` bars, the last row being bar t.
    current_weights : ndarray, shape (n_envs, n_assets)
        Book before this decision, as signed fractions of equity.
    symbols : tuple of str
    sector_ids : ndarray of int, shape (n_assets,)
    regime : ndarray of int, shape (n_envs,)
        Codes into ``allocgym.regime.REGIME_LABELS`` (-1 unknown).
    regime_confidence : ndarray, shape (n_envs,)
    scores : ndarray, shape (n_envs, n_assets), optional
        Alpha z-scores (risk-scaled, cross-sectionally standardised) at bar t.
    betas : ndarray, shape (n_envs, n_assets), optional
        Betas to the benchmark at bar t.
    costs : ndarray, shape (n_envs, n_assets), optional
        Expected cost per unit of weight traded (decimal fraction of traded notional).
    benchmark_returns : ndarray, shape (n_envs, lookback), optional
    t : ndarray of int, shape (n_envs,), optional
        Bar index of each portfolio (for allocators that rebalance on a schedule).
    barbell : ndarray of int, shape (n_envs,), optional
        The regime model's barbell state, codes into ``allocgym.regime.BARBELL_STATES``.
    observation : ndarray of float32, shape (n_envs, obs_dim), optional
        The env's observation at bar t (``FeatureBuilder`` layout: features, book,
        drawdown, cash), exactly what the env feeds an agent; what a
        :class:`PolicyAllocator` acts on.
    prior_weights : ndarray, shape (n_envs, n_assets), optional
        The tilt prior's book at bar t (``tilt`` action mode: an agent's tilts apply to it).
    intents : ndarray, shape (n_envs, n_strategies, n_assets), optional
        Strategy-family intents at bar t (``budgets`` action mode: an agent's budgets are
        netted over them).
    adv_notional : ndarray, shape (n_envs, n_assets), optional
        Average daily traded notional at bar t (currency; the liquidity filters).
    spread_bps : ndarray, shape (n_envs, n_assets), optional
        Quoted spread at bar t in bps.
    """

    returns: np.ndarray
    current_weights: np.ndarray
    symbols: tuple[str, ...]
    sector_ids: np.ndarray
    regime: np.ndarray
    regime_confidence: np.ndarray
    scores: np.ndarray | None = None
    betas: np.ndarray | None = None
    costs: np.ndarray | None = None
    benchmark_returns: np.ndarray | None = None
    t: np.ndarray | None = None
    barbell: np.ndarray | None = None
    observation: np.ndarray | None = None
    prior_weights: np.ndarray | None = None
    intents: np.ndarray | None = None
    adv_notional: np.ndarray | None = None
    spread_bps: np.ndarray | None = None

    @property
    def n_envs(self) -> int:
        return int(self.current_weights.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self.current_weights.shape[1])


@runtime_checkable
class Allocator(Protocol):
    """Maps a context to proposed weights; the risk gates decide what is approved."""

    name: str

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Proposed weights, shape (ctx.n_envs, ctx.n_assets), float64."""
        ...


def action_proposal(
    spec: ActionSpec, actions: np.ndarray, ctx: AllocationContext
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Proposed weights of a batch of actions at the context's bars: the env's action map.

    ``weights`` mode: ``spec.to_weights``; ``tilt``: ``spec.to_tilted`` on
    ``ctx.prior_weights``; ``budgets``: ``spec.to_budgets`` netted over ``ctx.intents`` by
    the ``IntentAggregator`` (a row with a non-finite budget becomes a NaN proposal, which
    the gates code INVALID_INPUT, with the contributions of an all-cash budget).

    Parameters
    ----------
    spec : ActionSpec
    actions : ndarray, shape (ctx.n_envs, spec.action_dim)
    ctx : AllocationContext

    Returns
    -------
    weights : ndarray, shape (ctx.n_envs, ctx.n_assets)
    budgets : ndarray, shape (ctx.n_envs, n_strategies + 1), or None
        ``budgets`` mode only.
    contributions : ndarray, shape (ctx.n_envs, n_strategies, n_assets), or None
        Each family's part of the weights (``budgets`` mode only; the STRATEGY_CAP input).
    """
    if spec.mode == "weights":
        return spec.to_weights(actions), None, None
    if spec.mode == "tilt":
        if ctx.prior_weights is None:
            raise ConfigError(
                "tilt-mode actions need the prior's book: build the context with "
                "allocgym.envs.context.allocation_context (it sets prior_weights)"
            )
        return spec.to_tilted(actions, ctx.prior_weights), None, None
    if ctx.intents is None:
        raise ConfigError(
            "budgets-mode actions need the strategy intents: build the context with "
            "allocgym.envs.context.allocation_context (it sets intents)"
        )
    aggregator = IntentAggregator(long_only=spec.long_only, n_strategies=spec.n_strategies)
    budgets = spec.to_budgets(actions)
    finite = np.isfinite(budgets).all(axis=1)
    if finite.all():
        weights, contributions = aggregator.aggregate(budgets, ctx.intents)
        return weights, budgets, contributions
    cash_only = np.zeros_like(budgets)
    cash_only[:, -1] = 1.0
    safe = np.where(finite[:, None], budgets, cash_only)
    weights, contributions = aggregator.aggregate(safe, ctx.intents)
    return np.where(finite[:, None], weights, np.nan), budgets, contributions


class PolicyAllocator(ABC):
    """An agent as an :class:`Allocator`: a policy acting on the env's observation.

    :meth:`allocate` asks :meth:`act` for actions on ``ctx.observation`` and maps them
    with ``action_spec`` (:func:`action_proposal`), so an agent walked by evaluation
    proposes exactly what the training env would make of its actions. Subclasses set
    ``name`` and ``action_spec`` and implement :meth:`act`.

    Attributes
    ----------
    budgets_, contributions_ : ndarray or None
        ``budgets`` mode: the strategy budgets ``(n, n_strategies + 1)`` and per-family
        contributions ``(n, n_strategies, n_assets)`` of the last :meth:`allocate` call
        (evaluation passes them to the STRATEGY_CAP gate); None in the other modes.
    """

    name: str
    action_spec: ActionSpec | None
    budgets_: np.ndarray | None = None
    contributions_: np.ndarray | None = None

    @abstractmethod
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions in the ``ActionSpec`` Box, shape (n_envs, action_dim), from raw
        observations (n_envs, obs_dim)."""

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Proposed weights, shape (ctx.n_envs, ctx.n_assets), float64."""
        if self.action_spec is None:
            raise ConfigError(
                f"{type(self).__name__} {self.name!r} has no ActionSpec: pass "
                "action_spec=params.action_spec (the env's action map)"
            )
        if ctx.observation is None:
            raise ConfigError(
                f"{type(self).__name__} {self.name!r} acts on the env's observation but the "
                "context has none: build it with allocgym.envs.context.allocation_context("
                "..., observation=obs)"
            )
        weights, self.budgets_, self.contributions_ = action_proposal(
            self.action_spec, self.act(ctx.observation), ctx
        )
        return weights


BOOK_KEPT = "book kept (error)"
"""Fallback stage of a rebalance where the allocator raised ``OptimizationError``: the
evaluation keeps the current book."""


def source_of(allocator: object, row: int) -> str:
    """The stage that produced row ``row`` of an allocator's last ``allocate`` call.

    An allocator with a fallback chain records, per portfolio of its last call, the stage
    that produced the weights in ``source_`` (a list of str) and names its ordinary stage
    in ``primary_source`` (e.g. the QP: ``"qp:CLARABEL"``, then ``"qp:CLARABEL:accurate"``,
    ``"qp:SCS"``, ``"hrp"``, ``"current_book"``). Any other allocator has one stage: its
    ``name``.
    """
    sources = getattr(allocator, "source_", None)
    if isinstance(sources, list | tuple) and 0 <= row < len(sources):
        return str(sources[row])
    return str(getattr(allocator, "primary_source", getattr(allocator, "name", "allocate")))


def primary_source_of(allocator: object) -> str:
    """The stage of an allocator's ordinary (non-fallback) call (see :func:`source_of`)."""
    return str(getattr(allocator, "primary_source", getattr(allocator, "name", "allocate")))


def context_returns(ctx: AllocationContext, who: str) -> np.ndarray:
    """``ctx.returns`` as float64 after checking shape (n_envs, lookback >= 2, n_assets)."""
    r = np.asarray(ctx.returns, dtype=np.float64)
    if r.ndim != 3 or r.shape[0] != ctx.n_envs or r.shape[2] != ctx.n_assets:
        raise DataError(
            f"{who}: ctx.returns must have shape (n_envs, lookback, n_assets) = "
            f"({ctx.n_envs}, L, {ctx.n_assets}); got {r.shape}"
        )
    if r.shape[1] < 2:
        raise DataError(f"{who}: ctx.returns has {r.shape[1]} bars; pass a lookback >= 2")
    if not np.isfinite(r).all():
        raise DataError(f"{who}: ctx.returns contains NaN/inf; fill untradable bars with 0")
    return r
