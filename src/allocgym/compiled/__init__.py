"""Compiled (numba) kernels of the step: the ex-ante CVaR, the cost model, execution's
order planning (drift, triggers, lot rounding and exposure checks) and its result, the
risk chain (input scan, hard gates and their measures, trade limits), the fill, marking
and scoring of the env step, and its reason summary.

Each kernel is the only implementation of its computation; the numpy modules call it
through a thin wrapper that converts the inputs. Every kernel is compiled for one
signature of read-only, any-layout arrays (a C-contiguous, a strided and a broadcast
input all use it), so the set of machine code is fixed and :func:`warm_up` compiles all
of it. Compiled code is cached on disk beside this module (``cache=True``): later
processes load it instead of compiling it (``allocgym bench env`` reports the seconds).

Elementwise kernels use the same float operations in the same order as the numpy
formulas they replaced, row sums (the fill cost, execution's drift and exposures) follow
numpy's pairwise order and sector sums ``np.bincount``'s, so their results are
bit-identical; the step's ex-ante CVaR sums in a fixed sequential order (documented on
:func:`allocgym.compiled.cvar.row_cvar`).
"""

from allocgym.compiled._base import KERNELS, compile_seconds, warm_up
from allocgym.compiled.cost import cost_terms
from allocgym.compiled.cvar import book_cvar
from allocgym.compiled.env import reason_summary
from allocgym.compiled.execution import (
    exposure_refs,
    order_result,
    plan_orders,
    round_and_check,
)
from allocgym.compiled.gates import GATES, hard_gates, measures
from allocgym.compiled.step import fill_and_mark, score, write_book
from allocgym.compiled.trade import (
    forced_derisk,
    participation_cap,
    scan_inputs,
    strategy_scale,
    trade_measures,
)

__all__ = [
    "GATES",
    "KERNELS",
    "book_cvar",
    "compile_seconds",
    "cost_terms",
    "exposure_refs",
    "fill_and_mark",
    "forced_derisk",
    "hard_gates",
    "measures",
    "order_result",
    "participation_cap",
    "plan_orders",
    "reason_summary",
    "round_and_check",
    "scan_inputs",
    "score",
    "strategy_scale",
    "trade_measures",
    "warm_up",
    "write_book",
]
