"""Deterministic risk gates: ``RiskLimits``, ``ReasonCode``, ``RiskGateChain``, invariants.

``RiskGateChain.apply(proposed, ctx)`` turns proposed weights ``(n_envs, n_assets)`` into
approved weights that satisfy every hard limit, in one vectorised pass (no Python loop
over portfolios or symbols). Per portfolio, in this fixed order:

1. **Validity.** A portfolio whose current book, equity (or betas, with the beta gate on;
   or factor loadings, with the factor gate on) is not finite is approved flat (``INVALID_INPUT``): the gates never trade from a book
   they cannot read. A symbol whose price, ADV, volatility or spread is non-finite or
   negative (price <= 0) is treated as not tradable. A proposal (or strategy
   contribution) with any non-finite entry is replaced by the current book
   (``INVALID_INPUT``); NaN/inf never pass through.
2. **Kill switch** (config flag OR per-portfolio flag): flat, every symbol ``KILL_SWITCH``;
   supersedes everything else.
3. **Forced de-risk.** The hard-limit gates are applied to the *current* book. If they
   change it (a market move or a tighter regime multiplier left it outside the limits),
   the reduce-only move back inside is exempt from the trade limits and coded
   ``FORCED_DERISK``; the rest of the decision trades from the de-risked book.
4. **Proposal gates:** ``STRATEGY_CAP`` (scales strategy contributions), ``NOT_TRADABLE``
   (hold), then the hard-limit gates ``LONG_ONLY``, ``SYMBOL_CAP``, ``SYMBOL_NOTIONAL_CAP``
   (both x capacity multiplier), ``SECTOR_CAP``, ``NET_CAP`` (scales the dominant side),
   ``BETA_LIMIT`` (scales the side carrying the excess beta), ``GROSS_CAP`` (x budget
   multiplier), ``NOTIONAL_CAP`` and ``FACTOR_CAP`` (``|(B^T w)_k|`` per factor: scales the
   whole book, optional). Every later gate only shrinks weights toward zero in
   a way that keeps the earlier limits, so the target is inside all of them.
5. ``REDUCE_ONLY``: no ``|w_i|`` increase, no sign flip (net/beta/factor re-checked after).
6. **Trade limits** on the trade from the (de-risked) current book, per symbol first:
   ``PARTICIPATION_CAP`` (clip to ``max_participation x ADV x capacity multiplier``),
   ``SYMBOL_TURNOVER_CAP`` and ``SYMBOL_SLIPPAGE_BUDGET`` (optional, both x capacity
   multiplier: the failing symbol's trade is clipped, the others are untouched), then
   ``TURNOVER_CAP`` and ``SLIPPAGE_BUDGET`` (common trade scale; the slippage scales solve
   the concave cost curve of :func:`allocgym.costs.expected_cost` by bisection). Fills
   already executed in the bar (``GateContext.recent_fills``) use up participation and
   turnover room, portfolio-wide and per symbol.
7. **Re-feasibility.** Clipping single symbols moves the book off the segment between two
   feasible books, so sector/net/beta/gross/notional/factor are re-checked and, where
   broken, repaired by the better (closer to the target) of: scaling the whole trade, or
   keeping the clipped trades and scaling the others. Both scales are found in closed form
   (net, beta, factor exposures) or by bisection (sector, gross, notional): the limits are convex and the
   starting book is feasible. The binding limit's code is recorded.
8. **Held names.** A non-tradable weight is never moved (execution could not move it):
   where a gate moved one, it is put back (``NOT_TRADABLE``) and the portfolio limits are
   met by the tradable names alone (``pin_untradable``): from a book inside the limits
   toward the pinned approved book; where the held names break a limit (no such book),
   the proposal itself as the trade limits pass it from the current book, or else the
   pinned approved book, where it fits (the tradable names can hedge a held name's net
   or beta). A held name's own excess over its symbol caps (a cap that shrank under it)
   counts against no book and codes the portfolio ``NOT_TRADABLE``. Where no book fits
   (a portfolio limit the tradable names cannot bring the book inside), the current
   book shrunk toward the limits is kept (the tradable names scaled as a group: sold
   where their sum adds to the held names' excess, kept where it offsets it;
   ``NOT_TRADABLE``), and the proposal's sales from it, or else the hard gates' repair
   of it, are taken where they fit (the chain gating it again finds the same book). Kill switch
   and unreadable books are still approved flat.

Limits are compared with a relative float tolerance of 1e-12 (a value within it counts as
at the limit), so the chain is idempotent: its own output, fed back with the current book
equal to it, is approved unchanged. ``check_invariants`` is an independent checker.

Layout: every limit is declared once in ``gates.registry.LIMITS`` (code, config field,
bound per portfolio with its regime multiplier, measure, repair); ``limits`` holds
``RiskLimits`` (a view of ``RiskConfig`` with the registry's bound tables); ``context``
the context, result, bounds and the one ``GateContext`` builder; ``inputs`` the input
validation; ``allocgym.compiled.gates`` the hard gates and their measures (one kernel),
``gates.portfolio`` the factor cap, ``gates.strategy`` and ``gates.trade`` the strategy and
trade limits; ``refeasible`` the repairs back inside; ``chain`` the fixed order;
``invariants`` the checker; ``kernels`` the shared tolerance and row reductions; ``codes``
the reason codes. The ``TRADING_ALLOCATOR_*`` runtime flags are read by
``allocgym.serving.flags``.
"""

from allocgym.risk.chain import RiskGateChain
from allocgym.risk.codes import (
    GATE_CODES,
    REASON_DOCS,
    ReasonCode,
    decode_reasons,
    reason_code_table,
)
from allocgym.risk.context import Fill, GateContext, GateResult, bar_gate_context, fill_notional
from allocgym.risk.invariants import InvariantReport, check_invariants

# The hot-path regression tests pin these kernels under their earlier private names.
from allocgym.risk.kernels import all_below as _below  # noqa: F401
from allocgym.risk.kernels import bisect_cost_scale as _bisect_cost_scale  # noqa: F401
from allocgym.risk.kernels import is_inside as _inside  # noqa: F401
from allocgym.risk.kernels import rows_all as _rows_all  # noqa: F401
from allocgym.risk.kernels import rows_any as _rows_any  # noqa: F401
from allocgym.risk.kernels import solve_cost_scale as _solve_cost_scale  # noqa: F401
from allocgym.risk.limits import RiskLimits

__all__ = [
    "GATE_CODES",
    "REASON_DOCS",
    "Fill",
    "GateContext",
    "GateResult",
    "InvariantReport",
    "ReasonCode",
    "RiskGateChain",
    "RiskLimits",
    "bar_gate_context",
    "check_invariants",
    "decode_reasons",
    "fill_notional",
    "reason_code_table",
]
