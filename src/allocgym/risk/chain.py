"""``RiskGateChain``: the fixed order in which the gates run (see the package docstring)."""

from __future__ import annotations

import dataclasses

import numpy as np

from allocgym.compiled.trade import forced_derisk, participation_cap
from allocgym.costs import CostModel
from allocgym.errors import GateConfigError, InvariantBreach
from allocgym.risk.codes import ReasonCode
from allocgym.risk.context import Bounds, GateContext, GateResult
from allocgym.risk.gates.registry import LimitTables, hard_gates, portfolio_bounds, signed_gates
from allocgym.risk.gates.strategy import attribute_approved, strategy_gate
from allocgym.risk.gates.trade import filled_weights, trade_limits
from allocgym.risk.inputs import Inputs, read_inputs
from allocgym.risk.invariants import check_invariants
from allocgym.risk.kernels import GATE_ROW, Trace, or_bits, reduce_only
from allocgym.risk.limits import RiskLimits
from allocgym.risk.refeasible import pin_untradable


class RiskGateChain:
    """The deterministic gate chain every allocator's proposal passes through.

    Parameters
    ----------
    limits : RiskLimits
    cost_model : CostModel, optional
        The cost model of the slippage-budget gate (defaults: ``CostModel()``).
    debug : bool
        Run :func:`check_invariants` after every ``apply`` and raise
        ``allocgym.errors.InvariantBreach`` on any breach.

    Notes
    -----
    ``apply`` is pure and deterministic (bit-identical output for identical input, no
    BLAS, no hashing), vectorised over portfolios and symbols, and permutation-equivariant
    in symbols up to float rounding. See the module docstring for the gate order.
    """

    def __init__(
        self, limits: RiskLimits, cost_model: CostModel | None = None, debug: bool = False
    ) -> None:
        if not isinstance(limits, RiskLimits):
            raise GateConfigError(
                f"RiskGateChain needs RiskLimits, got {type(limits).__name__}: "
                "build one with RiskLimits.from_config(cfg.risk)"
            )
        self.limits = limits
        self.cost_model = CostModel() if cost_model is None else cost_model
        self.debug = bool(debug)

    # -------------------------------------------------------------------- apply

    def apply(self, proposed: np.ndarray, ctx: GateContext) -> GateResult:
        """Gate proposed weights.

        Parameters
        ----------
        proposed : ndarray, shape (n_envs, n_assets)
            Proposed weights (signed fractions of equity); NaN/inf allowed (rejected).
        ctx : GateContext
            Current book, equity, market data, regime codes and flags.

        Returns
        -------
        GateResult
            ``approved`` satisfies every hard limit (and the trade limits unless the
            current book was outside the hard limits: ``FORCED_DERISK``); reason bitmasks;
            ``clipped`` has an entry (n_envs,) for every code in ``GATE_CODES`` (the
            ``FACTOR_CAP`` entry only while ``max_factor_exposure`` is set).

        Raises
        ------
        RequestError
            Shapes or dtypes that do not fit together (a caller bug).
        InvariantBreach
            In debug mode, when ``check_invariants`` finds a breach.
        """
        # NaN/inf inputs are expected (and coded): no floating-point warnings.
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            result = self._apply(proposed, ctx)
        if self.debug:
            report = check_invariants(result, ctx, self.limits, self.cost_model)
            if report.n_breaches:
                raise InvariantBreach(
                    f"{report.n_breaches} invariant breach(es) after RiskGateChain.apply "
                    "(a bug in allocgym): " + "; ".join(report.messages[:10])
                )
        return result

    def _apply(self, proposed: np.ndarray, ctx: GateContext) -> GateResult:
        x = read_inputs(proposed, ctx, self.limits)
        n, m = x.p.shape
        tables = self.limits.tables
        stacked, pcap = decision_bounds(x, self.limits, tables)
        # One trace over the stacked hard-gate pass below: the current books' rows (what a
        # forced de-risk removed), then the decisions' rows, which every gate codes. The
        # gates before that pass code ``trace``: ``both.touched`` is the hard gates' own.
        both = Trace(2 * n, m)
        trace = both.rows(slice(n, 2 * n))

        p, strategy_scale, strategy_budget = strategy_gate(x.p, x, self.limits, x.slot, trace)
        if x.any_bad_proposal:
            rows = x.bad_proposal
            p = np.where(rows[:, None], x.c, p)
            trace.sym[rows] |= int(ReasonCode.INVALID_INPUT)
            trace.port[rows] |= int(ReasonCode.INVALID_INPUT)
            trace.clip[GATE_ROW[ReasonCode.INVALID_INPUT]] += np.where(
                rows, np.abs(x.p - x.c).sum(axis=1), 0.0
            )
        held = p
        before = None
        if not x.all_tradable:
            held = np.where(x.tradable, p, x.c)
            trace.record(ReasonCode.NOT_TRADABLE, p, held, portfolio=False)
            before = trace.copy()

        # One pass of the hard gates over the current books (the forced de-risk: what
        # they change was outside the limits) and the proposals, stacked row-wise.
        gated = hard_gates(np.concatenate([x.c, held]), stacked, both)
        c_in, target = gated[:n], gated[n:]
        if both.touched:
            # FORCED_DERISK: the current books the hard gates moved back inside the limits
            # (a bad row's book is 0, which no gate changes). Coded now: the later gates
            # only OR bits in (and _flatten overwrites its rows after this).
            any_forced, sym, port, removed = forced_derisk(
                x.c, c_in, x.bad_row, both.sym, both.port, int(ReasonCode.FORCED_DERISK)
            )
            if any_forced:
                trace.sym, trace.port = sym, port
                trace.clip[GATE_ROW[ReasonCode.FORCED_DERISK]] += removed
        dec = stacked.take(slice(0, n))

        if x.any_reduce:
            r = reduce_only(target, c_in, x.reduce)
            trace.record(ReasonCode.REDUCE_ONLY, target, r, portfolio=False)
            target = signed_gates(r, dec, trace)

        filled = filled_weights(ctx.recent_fills, x)
        approved = trade_limits(c_in, target, dec, pcap, x, trace, tables, self.cost_model, filled)

        if before is not None:

            def from_current(rows: np.ndarray, book: np.ndarray) -> tuple[np.ndarray, Trace]:
                # The trade limits on the portfolios ``rows``' trade from their current
                # book, which is outside the limits there: no repair (it starts from a
                # feasible book), each portfolio alone.
                t = Trace(rows.size, m)
                out = trade_limits(
                    x.c[rows], book, dec.take(rows), pcap[rows], x.take(rows), t, tables,
                    self.cost_model, None if filled is None else filled[rows], repair=False,
                )  # fmt: skip
                return out, t

            approved = pin_untradable(approved, c_in, x, dec, trace, held, from_current, before)

        flat = None
        if x.any_killed or x.any_bad_row:
            flat = x.killed | x.bad_row
            approved = _flatten(approved, flat, x, trace)
        if strategy_scale is not None:
            if flat is not None or x.any_bad_proposal:
                dead = x.bad_proposal if flat is None else flat | x.bad_proposal
                strategy_scale = np.where(dead[:, None], 0.0, strategy_scale)
            if strategy_budget is not None and x.strategy is not None:
                # The later gates reshape the whole book: the family lines follow the final one.
                held = attribute_approved(approved, x.strategy, strategy_scale)
                strategy_budget = dataclasses.replace(strategy_budget, approved=held)

        clip = trace.clip
        return GateResult(
            approved=approved + 0.0,  # -0.0 -> +0.0: one byte pattern per value
            symbol_reasons=trace.sym,
            portfolio_reasons=trace.port,
            clipped={name: clip[row] for name, row in tables.clipped_rows},
            proposed=x.proposed.copy(),
            strategy_scale=strategy_scale,
            strategy_budget=strategy_budget,
        )


def _flatten(approved: np.ndarray, flat: np.ndarray, x: Inputs, trace: Trace) -> np.ndarray:
    """Approve an empty book for the ``flat`` rows (kill switch, unreadable input), with
    KILL_SWITCH / INVALID_INPUT as their only reasons and the whole proposal as clipped."""
    approved = np.where(flat[:, None], 0.0, approved)
    invalid = np.where(x.bad_row | x.bad_proposal, int(ReasonCode.INVALID_INPUT), 0)
    code = np.where(x.killed, int(ReasonCode.KILL_SWITCH), 0) | invalid
    trace.sym = np.where(flat[:, None], code[:, None], trace.sym)
    if not x.all_tradable:
        # approved flat, but execution cannot move these: it keeps them
        or_bits(trace.sym, int(ReasonCode.NOT_TRADABLE), flat[:, None] & x.held)
    trace.port = np.where(flat, code, trace.port)
    removed = np.abs(x.p).sum(axis=1)
    trace.clip[:, flat] = 0.0
    trace.clip[GATE_ROW[ReasonCode.KILL_SWITCH]] = np.where(x.killed, removed, 0.0)
    trace.clip[GATE_ROW[ReasonCode.INVALID_INPUT]] += np.where(x.bad_row & ~x.killed, removed, 0.0)
    return approved


def decision_bounds(
    x: Inputs, limits: RiskLimits, tables: LimitTables
) -> tuple[Bounds, np.ndarray]:
    """Bounds for the current books and the proposals stacked row-wise (rows ``0..n-1``
    then again; ``take(slice(0, n))`` gives one batch's) and the participation cap (n, N)."""
    slot = x.slot
    stacked = portfolio_bounds(
        limits,
        np.concatenate([slot, slot]),
        np.concatenate([x.equity, x.equity]),
        x.sectors,
        None if x.betas is None else np.concatenate([x.betas, x.betas]),
        None if x.loadings is None else np.concatenate([x.loadings, x.loadings]),
    )
    pcap = participation_cap(
        x.adv,
        x.equity,
        tables.bound[ReasonCode.PARTICIPATION_CAP],
        tables.capacity,
        slot,
        x.tradable,
        x.all_tradable,
    )
    return stacked, pcap
