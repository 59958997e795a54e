"""Engine switching: one allocator that delegates to the greedy or the QP engine.

``switch_engine('qp' | 'greedy')`` changes the engine used from the next decision on, and
every decision records which engine (and, for the QP, which step of its fallback chain)
produced each portfolio's weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from allocgym.baselines.greedy import GreedyRotation
from allocgym.baselines.hrp import HRP
from allocgym.baselines.qp import QPAllocator
from allocgym.errors import ConfigError

if TYPE_CHECKING:
    from allocgym.allocator import AllocationContext
    from allocgym.config import BaselinesConfig

EngineName = Literal["greedy", "qp"]
ENGINES: tuple[str, ...] = ("greedy", "qp")

__all__ = ["ENGINES", "EngineDecision", "OptimizationEngine"]


@dataclass(frozen=True)
class EngineDecision:
    """Record of one :meth:`OptimizationEngine.allocate` call.

    Attributes
    ----------
    index : int
        0-based decision counter of the engine.
    engine : str
        ``"greedy"`` or ``"qp"``: the engine that was active.
    sources : tuple of str
        Per portfolio, what produced the weights: ``"greedy"``, ``"qp:<SOLVER>"``,
        ``"hrp"`` or ``"current_book"`` (the QP fallback chain).
    """

    index: int
    engine: str
    sources: tuple[str, ...]


class OptimizationEngine:
    """Allocator delegating to :class:`GreedyRotation` or :class:`QPAllocator`.

    Parameters
    ----------
    greedy : GreedyRotation
    qp : QPAllocator
    engine : {"greedy", "qp"}, default "greedy"
        Engine active at start.

    Attributes
    ----------
    decisions_ : list of EngineDecision
        One entry per :meth:`allocate` call, in order.
    switches_ : list of tuple (int, str, str)
        ``(decision index at the switch, from engine, to engine)``.
    source_ : list of str
        Per portfolio of the last call, what produced its weights (as in ``decisions_``):
        the evaluation counts the QP's fallbacks through the engine as it does for the QP.
        ``primary_source`` is the active engine's ordinary stage, so a walk that switches
        engines lists the other engine's rebalances among the fallback stages by name.
    """

    name = "engine"
    keeps_state = True  # its greedy engine's entries (see GreedyRotation.keeps_state)

    def __init__(
        self, greedy: GreedyRotation, qp: QPAllocator, engine: EngineName = "greedy"
    ) -> None:
        self.engines: dict[str, GreedyRotation | QPAllocator] = {"greedy": greedy, "qp": qp}
        self._check(engine)
        self.active_engine: str = engine
        self.decisions_: list[EngineDecision] = []
        self.switches_: list[tuple[int, str, str]] = []
        self.source_: list[str] = []

    @classmethod
    def from_config(cls, cfg: BaselinesConfig) -> OptimizationEngine:
        qp = QPAllocator.from_config(cfg.qp, hrp=HRP.from_config(cfg.hrp))
        return cls(GreedyRotation.from_config(cfg.greedy), qp, engine=cfg.engine)

    @staticmethod
    def _check(engine: str) -> None:
        if engine not in ENGINES:
            raise ConfigError(f"engine {engine!r} is unknown; use one of {ENGINES}.")

    def switch_engine(self, engine: EngineName) -> None:
        """Use ``engine`` from the next decision on (recorded in ``switches_``). Back to
        greedy, its entries start afresh from the book then held: it did not see the bars
        the QP decided (replaying them had raised once they outgrew the lookback)."""
        self._check(engine)
        if engine != self.active_engine:
            self.switches_.append((len(self.decisions_), self.active_engine, engine))
            self.active_engine = engine
            if engine == "greedy":
                greedy = self.engines["greedy"]
                assert isinstance(greedy, GreedyRotation)
                greedy.reset()

    @property
    def primary_source(self) -> str:
        """The active engine's ordinary stage: ``"greedy"`` or the QP's ``"qp:<SOLVER>"``."""
        engine = self.current
        return engine.primary_source if isinstance(engine, QPAllocator) else "greedy"

    def selection_records(self) -> list[dict[str, Any]] | None:
        """The greedy engine's selection records of the last call when it made it; None
        when the QP did (it selects no names)."""
        last = self.decisions_[-1] if self.decisions_ else None
        if last is None or last.engine != "greedy":
            return None
        greedy = self.engines["greedy"]
        assert isinstance(greedy, GreedyRotation)
        return greedy.selection_records()

    @property
    def current(self) -> GreedyRotation | QPAllocator:
        """The active engine object."""
        return self.engines[self.active_engine]

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        """Weights from the active engine, shape (ctx.n_envs, ctx.n_assets)."""
        engine = self.current
        weights = engine.allocate(ctx)
        if isinstance(engine, QPAllocator):
            sources = tuple(engine.source_)
        else:
            sources = ("greedy",) * ctx.n_envs
        self.decisions_.append(EngineDecision(len(self.decisions_), self.active_engine, sources))
        self.source_ = list(sources)
        return weights
