"""The registry of limits: each limit the gates enforce, declared once.

An entry (``LimitSpec``) names the limit's reason code, its ``RiskConfig`` field, how its
bound is formed per portfolio (unit, regime multiplier), what is measured against it, and
how a breach is repaired. ``LIMITS`` is in the chain's fixed order. Everything else reads
the registry:

- ``LimitTables.build`` turns the configured values into one bound per regime slot
  (``REGIME_LABELS`` order, then unknown codes), so a decision only looks bounds up;
- ``portfolio_bounds`` gives the ``Bounds`` of a batch (used by the chain and by the
  execution policy, which checks the same limits after lot rounding);
- ``hard_gates`` runs the hard limits' gates in registry order: one compiled kernel
  (``allocgym.compiled.gates``) runs those its ``GATES`` lists, row by row, then the gates
  an entry holds as a callable (the factor cap's) run; ``coupled_ok``,
  ``coupled_violations``, ``hard_ok`` and ``names_outside`` evaluate their measures, the
  same way (the kernel's ``measures``, then the entries' ``inside``);
- ``check_invariants`` walks the registry with its own, independent measure code.

The trade limits are applied together (``gates.trade.trade_limits``): the per-symbol ones
clip each symbol's trade, then the portfolio ones share one trade scale; the strategy cap runs before everything else
(``gates.strategy.strategy_gate``). Their entries carry the bound and the documentation.
The strategy cap's bound is per family: ``LimitTables`` holds the base budgets times the
regime budget multiplier and the regime tilt per slot, and the gate multiplies in each
family's capacity factor at the decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from allocgym.compiled import gates as compiled_gates
from allocgym.regime import REGIME_LABELS
from allocgym.risk.codes import GATE_CODES, ReasonCode
from allocgym.risk.context import Book, Bounds, SectorMap
from allocgym.risk.gates import portfolio
from allocgym.risk.kernels import ATOL, GATE_ROW, RTOL, Trace

if TYPE_CHECKING:
    from allocgym.risk.limits import RiskLimits

N_LABELS = len(REGIME_LABELS)

Stage = Literal["strategy", "hard", "trade"]
Unit = Literal["flag", "weight", "currency", "bps"]
Multiplier = Literal["budget", "capacity"] | None
#: A measure: which names (n, N) or portfolios (n,) are inside; ``None`` when off.
Measure = Callable[[Book, Bounds], "np.ndarray | None"]
Gate = Callable[[Book, Bounds, Trace], None]


@dataclass(frozen=True)
class LimitSpec:
    """One limit, declared once.

    Attributes
    ----------
    code : ReasonCode
        The code the gate records where it acts.
    field : str
        The ``RiskConfig`` / ``RiskLimits`` field holding the bound (``None`` = off; a
        strategy-level bound is a tuple, one entry per strategy family).
    stage : {"strategy", "hard", "trade"}
        Where the chain applies it: on strategy contributions, on the book, on the trade.
    level : {"symbol", "sector", "portfolio", "strategy"}
        What one measured value covers.
    unit : {"flag", "weight", "currency", "bps"}
        Unit of the configured value: a currency bound is divided by equity per
        portfolio, a bps bound by 1e4.
    multiplier : {"budget", "capacity"} or None
        The regime multiplier the bound is scaled by.
    measure : str
        What is compared with the bound.
    repair : str
        How the gate brings a breach back inside.
    inside, gate : callable, optional
        A hard limit's measure (which portfolios are inside, ``None`` when the limit is
        off) and gate when they run in Python, after the compiled kernel; ``None`` for a
        limit the kernel measures and gates (``allocgym.compiled.gates.GATES`` names
        those, in registry order). Every hard limit has the one or the other.
    """

    code: ReasonCode
    field: str
    stage: Stage
    level: Literal["symbol", "sector", "portfolio", "strategy"]
    unit: Unit
    multiplier: Multiplier
    measure: str
    repair: str
    inside: Measure | None = None
    gate: Gate | None = None


LIMITS: tuple[LimitSpec, ...] = (
    LimitSpec(
        code=ReasonCode.STRATEGY_CAP,
        field="strategy_budgets",
        stage="strategy",
        level="strategy",
        unit="weight",
        multiplier="budget",
        measure="gross contribution sum_i |s_k w_k,i| of each strategy family k, against its "
        "base budget x regime budget multiplier x regime tilt x capacity factor",
        repair="scale the family's contribution",
    ),
    LimitSpec(
        code=ReasonCode.LONG_ONLY,
        field="long_only",
        stage="hard",
        level="symbol",
        unit="flag",
        multiplier=None,
        measure="short weight max(-w_i, 0)",
        repair="clip to 0",
    ),
    LimitSpec(
        code=ReasonCode.SYMBOL_CAP,
        field="max_symbol_weight",
        stage="hard",
        level="symbol",
        unit="weight",
        multiplier="capacity",
        measure="|w_i|",
        repair="clip to the cap",
    ),
    LimitSpec(
        code=ReasonCode.SYMBOL_NOTIONAL_CAP,
        field="max_symbol_notional",
        stage="hard",
        level="symbol",
        unit="currency",
        multiplier="capacity",
        measure="|w_i| x equity",
        repair="clip to the cap",
    ),
    LimitSpec(
        code=ReasonCode.SECTOR_CAP,
        field="max_sector_gross",
        stage="hard",
        level="sector",
        unit="weight",
        multiplier=None,
        measure="sum |w_i| over each sector",
        repair="scale the sector",
    ),
    LimitSpec(
        code=ReasonCode.NET_CAP,
        field="max_net",
        stage="hard",
        level="portfolio",
        unit="weight",
        multiplier=None,
        measure="|sum w_i|",
        repair="scale the dominant side",
    ),
    LimitSpec(
        code=ReasonCode.BETA_LIMIT,
        field="beta_tolerance",
        stage="hard",
        level="portfolio",
        unit="weight",
        multiplier=None,
        measure="|beta^T w|",
        repair="scale the side carrying the excess beta, then the net uniformly",
    ),
    LimitSpec(
        code=ReasonCode.GROSS_CAP,
        field="max_gross",
        stage="hard",
        level="portfolio",
        unit="weight",
        multiplier="budget",
        measure="sum |w_i|",
        repair="scale the book",
    ),
    LimitSpec(
        code=ReasonCode.NOTIONAL_CAP,
        field="max_gross_notional",
        stage="hard",
        level="portfolio",
        unit="currency",
        multiplier=None,
        measure="sum |w_i| x equity",
        repair="scale the book",
    ),
    LimitSpec(
        code=ReasonCode.FACTOR_CAP,
        field="max_factor_exposure",
        stage="hard",
        level="portfolio",
        unit="weight",
        multiplier=None,
        measure="|(B^T w)_k| for every factor k (loadings B from GateContext.factor_loadings)",
        repair="scale the book by cap / max_k |(B^T w)_k| (the largest exposure ends at the cap)",
        inside=portfolio.factor_inside,
        gate=portfolio.factor_gate,
    ),
    LimitSpec(
        code=ReasonCode.PARTICIPATION_CAP,
        field="max_participation",
        stage="trade",
        level="symbol",
        unit="weight",
        multiplier="capacity",
        measure="(|dw_i| x equity + notional of the bar's recent fills in i) / ADV_i",
        repair="clip the trade in the symbol",
    ),
    LimitSpec(
        code=ReasonCode.SYMBOL_TURNOVER_CAP,
        field="max_symbol_turnover",
        stage="trade",
        level="symbol",
        unit="weight",
        multiplier="capacity",
        measure="|dw_i| + notional of the bar's recent fills in i / equity",
        repair="clip the trade in the symbol",
    ),
    LimitSpec(
        code=ReasonCode.SYMBOL_SLIPPAGE_BUDGET,
        field="symbol_slippage_budget_bps",
        stage="trade",
        level="symbol",
        unit="bps",
        multiplier="capacity",
        measure="expected cost of the trade in symbol i / equity",
        repair="scale the trade in the symbol (concave cost curve)",
    ),
    LimitSpec(
        code=ReasonCode.TURNOVER_CAP,
        field="max_turnover",
        stage="trade",
        level="portfolio",
        unit="weight",
        multiplier=None,
        measure="sum |dw_i| + notional of the bar's recent fills / equity",
        repair="scale the trade",
    ),
    LimitSpec(
        code=ReasonCode.SLIPPAGE_BUDGET,
        field="slippage_budget_bps",
        stage="trade",
        level="portfolio",
        unit="bps",
        multiplier=None,
        measure="expected cost of the trade / equity",
        repair="scale the trade (concave cost curve)",
    ),
)

#: The hard limits, in gate order.
HARD_LIMITS: tuple[LimitSpec, ...] = tuple(s for s in LIMITS if s.stage == "hard")
#: The hard limits that couple symbols (a portfolio-level measure).
COUPLED_LIMITS: tuple[LimitSpec, ...] = tuple(s for s in HARD_LIMITS if s.level != "symbol")


def spec(code: ReasonCode) -> LimitSpec:
    """The registry entry of ``code``."""
    for entry in LIMITS:
        if entry.code == code:
            return entry
    raise KeyError(f"{code!r} is not a limit in the registry")


# ----------------------------------------------------------------------------- bounds


@dataclass(frozen=True, eq=False)
class LimitTables:
    """Every registry bound per regime slot (``REGIME_LABELS`` order, then the slot of
    every other code): the limit x multiplier products a decision looks up.

    ``bound[code]`` is an array (n_labels + 1,) for a bound with a regime multiplier, a
    float for one without, ``None`` for a limit that is off (flags: ``None``); currency
    bounds are still in currency (divided by equity per portfolio), bps bounds are
    fractions of equity. A strategy-level bound is an array (n_labels + 1,
    n_families): base budget x regime multiplier x regime tilt.
    """

    budget: np.ndarray
    capacity: np.ndarray
    bound: Mapping[ReasonCode, Any]  # per-slot array, float, or None (see above)
    #: ``GateResult.clipped``'s entries: (name, ``Trace.clip`` row) of each gate code,
    #: without the optional limits that are off.
    clipped_rows: tuple[tuple[str, int], ...]

    @classmethod
    def build(cls, limits: RiskLimits) -> LimitTables:
        """Tables of ``limits``, one entry per registry limit."""
        slots = np.arange(N_LABELS + 1)
        codes = np.where(slots < N_LABELS, slots, -1)
        mult = {
            "budget": limits.budget_multiplier(codes),
            "capacity": limits.capacity_multiplier(codes),
        }
        bound: dict[ReasonCode, np.ndarray | float | None] = {}
        for entry in LIMITS:
            value = getattr(limits, entry.field)
            if entry.unit == "flag" or value is None:
                bound[entry.code] = None
                continue
            if entry.unit == "bps":
                value = value / 1e4
            if entry.level == "strategy":
                m = np.ones(N_LABELS + 1) if entry.multiplier is None else mult[entry.multiplier]
                tilt = limits.strategy_tilt(codes)
                bound[entry.code] = np.asarray(value)[None, :] * m[:, None] * tilt
                continue
            bound[entry.code] = (
                value if entry.multiplier is None else value * mult[entry.multiplier]
            )
        optional = (
            ReasonCode.FACTOR_CAP,
            ReasonCode.SYMBOL_TURNOVER_CAP,
            ReasonCode.SYMBOL_SLIPPAGE_BUDGET,
        )
        clipped_rows = tuple(
            (str(code.name), row)
            for row, code in enumerate(GATE_CODES)
            if code not in optional or bound[code] is not None
        )
        return cls(
            budget=mult["budget"],
            capacity=mult["capacity"],
            bound=bound,
            clipped_rows=clipped_rows,
        )

    def slot(self, regime: np.ndarray) -> np.ndarray:
        """Table slot of each regime code (unknown codes share the last slot)."""
        # Unsigned, a negative code is huge: one minimum sends it, and every code past the
        # labels, to the last slot.
        return np.minimum(regime.astype(np.uint64), N_LABELS).astype(np.int64)


def portfolio_bounds(
    limits: RiskLimits,
    slot: np.ndarray,
    equity: np.ndarray,
    sectors: SectorMap,
    betas: np.ndarray | None,
    loadings: np.ndarray | None = None,
) -> Bounds:
    """The hard limits of a batch in weight units.

    Parameters
    ----------
    limits : RiskLimits
        The limits; their ``tables`` give the bounds.
    slot : ndarray of int, shape (n,)
        Table slot of each portfolio's regime (``LimitTables.slot``).
    equity : ndarray, shape (n,)
        Equity in currency (currency bounds are divided by it).
    sectors : SectorMap
    betas : ndarray, shape (n, n_assets), optional
        Betas; ignored (``Bounds.betas`` is ``None``) without a beta limit.
    loadings : ndarray, shape (n, n_assets, n_factors), optional
        Factor loadings; ignored (``Bounds.loadings`` is ``None``) without a factor limit.
    """
    b = limits.tables.bound
    symbol_notional = b[ReasonCode.SYMBOL_NOTIONAL_CAP]
    gross_notional = b[ReasonCode.NOTIONAL_CAP]
    beta_tol = b[ReasonCode.BETA_LIMIT]
    factor_cap = b[ReasonCode.FACTOR_CAP]
    return Bounds(
        cap_pct=b[ReasonCode.SYMBOL_CAP][slot][:, None],
        cap_notional=(
            None if symbol_notional is None else (symbol_notional[slot] / equity)[:, None]
        ),
        sector_cap=b[ReasonCode.SECTOR_CAP],
        sectors=sectors,
        net_cap=b[ReasonCode.NET_CAP],
        betas=None if beta_tol is None else betas,
        beta_tol=0.0 if beta_tol is None else beta_tol,
        gross_cap=b[ReasonCode.GROSS_CAP][slot],
        notional_cap=None if gross_notional is None else gross_notional / equity,
        long_only=limits.long_only,
        loadings=None if factor_cap is None else loadings,
        factor_cap=0.0 if factor_cap is None else factor_cap,
    )


# ----------------------------------------------------------------------------- measures


def coupled_violations(
    w: np.ndarray, b: Bounds, codes: frozenset[ReasonCode] | None = None
) -> list[tuple[ReasonCode, np.ndarray]]:
    """Rows breaking each coupled (multi-symbol) hard limit that is on, in registry order.

    ``codes`` restricts the check to those limits (all when ``None``).
    """
    wanted = [e for e in COUPLED_LIMITS if codes is None or e.code in codes]
    run = _switched(b, sum(_kernel_bit(e.code) for e in wanted if e.inside is None))
    _, inside, _ = _measures(w, b, run)
    book = Book(w)
    out = []
    for entry in wanted:
        if entry.inside is None:
            if run & _kernel_bit(entry.code):
                out.append((entry.code, ~inside[:, _KERNEL_CODES.index(entry.code)]))
        else:
            rows = entry.inside(book, b)
            if rows is not None:
                out.append((entry.code, ~rows))
    return out


def coupled_ok(w: np.ndarray, b: Bounds, codes: frozenset[ReasonCode] | None = None) -> np.ndarray:
    """Rows satisfying every coupled hard limit (or those in ``codes``): the complement of
    the OR of :func:`coupled_violations` (it runs in every bisection step)."""
    if codes is None:
        return _all_ok(w, b, _COUPLED_RUN, _COUPLED_AFTER)
    wanted = [e for e in COUPLED_LIMITS if e.code in codes]
    run = sum(_kernel_bit(e.code) for e in wanted if e.inside is None)
    return _all_ok(w, b, run, tuple(e.inside for e in wanted if e.inside is not None))


def hard_ok(w: np.ndarray, b: Bounds) -> np.ndarray:
    """(n,) bool: ``w`` satisfies every hard limit."""
    return _all_ok(w, b, _HARD_RUN, _HARD_MEASURES_AFTER)


def names_outside(w: np.ndarray, b: Bounds) -> np.ndarray:
    """(n, N) bool: the names breaking a symbol-level hard limit."""
    return _measures(w, b, _switched(b, _SYMBOL_RUN))[2]


def hard_gates(w: np.ndarray, b: Bounds, trace: Trace) -> np.ndarray:
    """Every hard limit's gate in registry order; each keeps the limits before it, so the
    result is inside all of them."""
    return _run_gates(w, b, trace, _HARD_RUN, _HARD_AFTER)


def signed_gates(w: np.ndarray, b: Bounds, trace: Trace) -> np.ndarray:
    """The signed limits' gates alone (NET_CAP, BETA_LIMIT, FACTOR_CAP): they keep the
    others."""
    return _run_gates(w, b, trace, _SIGNED_RUN, _SIGNED_AFTER)


def _kernel_bit(code: ReasonCode) -> int:
    """The bit of ``run`` that turns the kernel's gate of ``code`` on."""
    return 1 << compiled_gates.GATES.index(code.name)


_KERNEL_CODES = tuple(ReasonCode[name] for name in compiled_gates.GATES)
_BITS = np.array([int(code) for code in _KERNEL_CODES], dtype=np.int64)
_ROWS = np.array([GATE_ROW[code] for code in _KERNEL_CODES], dtype=np.int64)
_BITS.flags.writeable = _ROWS.flags.writeable = False
_SIGNED = (ReasonCode.NET_CAP, ReasonCode.BETA_LIMIT, ReasonCode.FACTOR_CAP)
_HARD_RUN = sum(_kernel_bit(entry.code) for entry in HARD_LIMITS if entry.gate is None)
_HARD_AFTER = tuple(entry.gate for entry in HARD_LIMITS if entry.gate is not None)
_HARD_MEASURES_AFTER = tuple(e.inside for e in HARD_LIMITS if e.inside is not None)
_COUPLED_RUN = sum(_kernel_bit(e.code) for e in COUPLED_LIMITS if e.inside is None)
_COUPLED_AFTER = tuple(e.inside for e in COUPLED_LIMITS if e.inside is not None)
_SYMBOL_RUN = sum(_kernel_bit(e.code) for e in HARD_LIMITS if e.level == "symbol")
_SIGNED_RUN = sum(_kernel_bit(code) for code in _SIGNED if spec(code).gate is None)
_SIGNED_AFTER = tuple(spec(code).gate for code in _SIGNED if spec(code).gate is not None)
_LONG_ONLY = _kernel_bit(ReasonCode.LONG_ONLY)
_SYMBOL_NOTIONAL = _kernel_bit(ReasonCode.SYMBOL_NOTIONAL_CAP)
_BETA = _kernel_bit(ReasonCode.BETA_LIMIT)
_NOTIONAL = _kernel_bit(ReasonCode.NOTIONAL_CAP)


def _switched(b: Bounds, run: int) -> int:
    """``run`` without the kernel gates whose limit is off in ``b``."""
    if not b.long_only:
        run &= ~_LONG_ONLY
    if b.cap_notional is None:
        run &= ~_SYMBOL_NOTIONAL
    if b.betas is None:
        run &= ~_BETA
    if b.notional_cap is None:
        run &= ~_NOTIONAL
    return run


def _bound_arrays(w: np.ndarray, b: Bounds) -> tuple[Any, ...]:
    """The kernel's bound arguments (a limit that is off: a stand-in, never read)."""
    cap_pct = b.cap_pct[:, 0]
    cap_notional, betas, notional_cap = b.cap_notional, b.betas, b.notional_cap
    return (
        cap_pct,
        cap_pct if cap_notional is None else cap_notional[:, 0],
        float(b.sector_cap),
        b.sectors.ids,
        b.sectors.n,
        float(b.net_cap),
        w if betas is None else betas,
        float(b.beta_tol),
        b.gross_cap,
        b.gross_cap if notional_cap is None else notional_cap,
    )


def _measures(w: np.ndarray, b: Bounds, run: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``compiled.gates.measures`` of the kernel gates ``run`` (already switched)."""
    return compiled_gates.measures(w, run, *_bound_arrays(w, b), RTOL, ATOL)


def _all_ok(w: np.ndarray, b: Bounds, run: int, after: tuple[Measure, ...]) -> np.ndarray:
    """Rows inside the kernel limits of ``run`` that are on and the Python measures
    ``after``."""
    ok = _measures(w, b, _switched(b, run))[0]
    if after:
        book = Book(w)
        for measure in after:
            inside = measure(book, b)
            if inside is not None:
                ok &= inside
    return ok


def _run_gates(
    w: np.ndarray, b: Bounds, trace: Trace, run: int, after: tuple[Gate, ...]
) -> np.ndarray:
    """The kernel's gates of ``run`` that are on in ``b``, then the Python gates ``after``."""
    out, touched = compiled_gates.hard_gates(
        w, _switched(b, run), _BITS, _ROWS, *_bound_arrays(w, b), RTOL, ATOL, trace.sym,
        trace.port, trace.clip,
    )  # fmt: skip
    trace.touched |= touched
    if after:
        book = Book(out)
        for gate in after:
            gate(book, b, trace)
        out = book.w
    return out
