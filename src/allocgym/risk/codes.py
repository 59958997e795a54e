"""Reason codes: why a weight was changed or a decision coded, and the generated table.

Every change the risk gates, the execution policy or the serving layer make to a decision
is one bit of an int64 bitmask (``ReasonCode``); ``REASON_DOCS`` documents each bit and
``reason_code_table`` renders ``docs/reason_codes.md`` from them.
"""

from __future__ import annotations

from enum import IntFlag


class ReasonCode(IntFlag):
    """Why a weight was changed or a decision coded. Values are stable: never renumber."""

    NONE = 0
    KILL_SWITCH = 1 << 0
    REDUCE_ONLY = 1 << 1
    INVALID_INPUT = 1 << 2
    NOT_TRADABLE = 1 << 3
    LONG_ONLY = 1 << 4
    SYMBOL_CAP = 1 << 5
    SYMBOL_NOTIONAL_CAP = 1 << 6
    SECTOR_CAP = 1 << 7
    STRATEGY_CAP = 1 << 8
    BETA_LIMIT = 1 << 9
    GROSS_CAP = 1 << 10
    NET_CAP = 1 << 11
    NOTIONAL_CAP = 1 << 12
    TURNOVER_CAP = 1 << 13
    PARTICIPATION_CAP = 1 << 14
    SLIPPAGE_BUDGET = 1 << 15
    FORCED_DERISK = 1 << 16
    NO_TRADE_BAND = 1 << 17
    MODEL_FALLBACK = 1 << 18
    ALLOCATOR_DISABLED = 1 << 19
    STALE_INPUT = 1 << 20
    LOT_ROUNDING = 1 << 21
    FACTOR_CAP = 1 << 22
    SYMBOL_TURNOVER_CAP = 1 << 23
    SYMBOL_SLIPPAGE_BUDGET = 1 << 24


REASON_DOCS: dict[ReasonCode, str] = {
    ReasonCode.KILL_SWITCH: "Kill switch engaged: target is flat; supersedes every other rule.",
    ReasonCode.REDUCE_ONLY: "Reduce-only mode: an increase of |w| or a sign flip was refused.",
    ReasonCode.INVALID_INPUT: "Proposal or context was NaN/inf or otherwise invalid; the current (or flat) book is kept.",
    ReasonCode.NOT_TRADABLE: "Symbol is not tradable at this bar; its weight is held. On a portfolio: the held names break a hard limit that no trade can fix (a held name over its own cap, or a portfolio limit the tradable names cannot bring the book inside: they are then shrunk as a group, sold where their sum adds to the excess).",
    ReasonCode.LONG_ONLY: "Negative weight clipped to 0 under the long-only limit.",
    ReasonCode.SYMBOL_CAP: "|w_i| clipped to the per-symbol cap (pct equity x capacity multiplier).",
    ReasonCode.SYMBOL_NOTIONAL_CAP: "|w_i| x equity clipped to the per-symbol notional cap.",
    ReasonCode.SECTOR_CAP: "Sector gross scaled down to the per-sector cap.",
    ReasonCode.STRATEGY_CAP: "A strategy family's gross contribution scaled down to its budget: base budget x regime budget multiplier x regime tilt x capacity factor (spread, volatility, liquidity).",
    ReasonCode.BETA_LIMIT: "|beta^T w| brought inside the beta tolerance.",
    ReasonCode.GROSS_CAP: "Gross exposure scaled to max_gross x regime budget multiplier.",
    ReasonCode.NET_CAP: "|sum w| brought inside the net cap.",
    ReasonCode.NOTIONAL_CAP: "Gross notional scaled to the global notional cap.",
    ReasonCode.TURNOVER_CAP: "Trade scaled to the per-decision turnover ceiling, less what the bar's recent fills already traded.",
    ReasonCode.PARTICIPATION_CAP: "Trade in a symbol clipped to the participation cap (fraction of ADV x capacity multiplier), less what the bar's recent fills already traded in it.",
    ReasonCode.SLIPPAGE_BUDGET: "Trade scaled so expected slippage fits the per-decision budget.",
    ReasonCode.FORCED_DERISK: "Current book was outside hard limits: a reduce-only trade back inside was allowed past trade limits.",
    ReasonCode.NO_TRADE_BAND: "Execution: drift within the no-trade band, trade suppressed.",
    ReasonCode.MODEL_FALLBACK: "Model failed (error, NaN, deadline): the defensive fallback allocation was used.",
    ReasonCode.ALLOCATOR_DISABLED: "TRADING_ALLOCATOR_ENABLED is false: the defensive baseline was used.",
    ReasonCode.STALE_INPUT: (
        "Request timestamp older than max_staleness, or a streaming request naming a bar "
        "that is not the latest held: request rejected, book held."
    ),
    ReasonCode.FACTOR_CAP: "|B^T w|_k of some factor k above risk.max_factor_exposure: the whole book scaled until the largest factor exposure equals the cap.",
    ReasonCode.LOT_ROUNDING: "Execution: the order was rounded to whole lots (or scaled so the rounded book stays inside the limits); the held weight differs from the approved one.",
    ReasonCode.SYMBOL_TURNOVER_CAP: "Trade in a symbol clipped to the per-symbol turnover ceiling risk.max_symbol_turnover (x capacity multiplier), less what the bar's recent fills already traded in it.",
    ReasonCode.SYMBOL_SLIPPAGE_BUDGET: "Trade in a symbol scaled so its expected slippage fits the per-symbol budget risk.symbol_slippage_budget_bps (x capacity multiplier).",
}


# Which layer sets each code, and at which level (for the generated table).
_GATE_SYMBOL = "risk gate, per symbol"
_GATE_PORTFOLIO = "risk gate, portfolio (and the symbols it changed)"
_REASON_SOURCE: dict[ReasonCode, str] = {
    ReasonCode.KILL_SWITCH: _GATE_PORTFOLIO,
    ReasonCode.REDUCE_ONLY: _GATE_SYMBOL,
    ReasonCode.INVALID_INPUT: _GATE_PORTFOLIO,
    ReasonCode.NOT_TRADABLE: _GATE_SYMBOL,
    ReasonCode.LONG_ONLY: _GATE_SYMBOL,
    ReasonCode.SYMBOL_CAP: _GATE_SYMBOL,
    ReasonCode.SYMBOL_NOTIONAL_CAP: _GATE_SYMBOL,
    ReasonCode.SECTOR_CAP: _GATE_PORTFOLIO,
    ReasonCode.STRATEGY_CAP: _GATE_PORTFOLIO,
    ReasonCode.BETA_LIMIT: _GATE_PORTFOLIO,
    ReasonCode.GROSS_CAP: _GATE_PORTFOLIO,
    ReasonCode.NET_CAP: _GATE_PORTFOLIO,
    ReasonCode.NOTIONAL_CAP: _GATE_PORTFOLIO,
    ReasonCode.TURNOVER_CAP: _GATE_PORTFOLIO,
    ReasonCode.PARTICIPATION_CAP: _GATE_SYMBOL,
    ReasonCode.SLIPPAGE_BUDGET: _GATE_PORTFOLIO,
    ReasonCode.FORCED_DERISK: _GATE_PORTFOLIO,
    ReasonCode.NO_TRADE_BAND: "execution policy, per symbol",
    ReasonCode.MODEL_FALLBACK: "serving, portfolio",
    ReasonCode.ALLOCATOR_DISABLED: "serving, portfolio",
    ReasonCode.STALE_INPUT: "serving, portfolio",
    ReasonCode.LOT_ROUNDING: "execution policy, per symbol",
    ReasonCode.FACTOR_CAP: _GATE_PORTFOLIO,
    ReasonCode.SYMBOL_TURNOVER_CAP: _GATE_SYMBOL,
    ReasonCode.SYMBOL_SLIPPAGE_BUDGET: _GATE_SYMBOL,
}

#: Codes the risk gates themselves emit; ``GateResult.clipped`` has one entry per code.
GATE_CODES: tuple[ReasonCode, ...] = (
    ReasonCode.INVALID_INPUT,
    ReasonCode.KILL_SWITCH,
    ReasonCode.STRATEGY_CAP,
    ReasonCode.NOT_TRADABLE,
    ReasonCode.LONG_ONLY,
    ReasonCode.SYMBOL_CAP,
    ReasonCode.SYMBOL_NOTIONAL_CAP,
    ReasonCode.SECTOR_CAP,
    ReasonCode.NET_CAP,
    ReasonCode.BETA_LIMIT,
    ReasonCode.GROSS_CAP,
    ReasonCode.NOTIONAL_CAP,
    ReasonCode.REDUCE_ONLY,
    ReasonCode.PARTICIPATION_CAP,
    ReasonCode.TURNOVER_CAP,
    ReasonCode.SLIPPAGE_BUDGET,
    ReasonCode.FORCED_DERISK,
    # Last, so that a result without the optional limits keeps the other entries' order:
    # ``GateResult.clipped`` has an entry for each of these only while its limit is on.
    ReasonCode.FACTOR_CAP,
    ReasonCode.SYMBOL_TURNOVER_CAP,
    ReasonCode.SYMBOL_SLIPPAGE_BUDGET,
)


GATE_NAMES: tuple[str, ...] = tuple(str(c.name) for c in GATE_CODES)


def _single_bit_codes() -> list[ReasonCode]:
    return sorted(
        (c for c in ReasonCode.__members__.values() if c.value and not c.value & (c.value - 1)),
        key=int,
    )


def reason_code_table() -> str:
    """Markdown document listing every ``ReasonCode`` (generated; ``docs/reason_codes.md``).

    Returns
    -------
    str
        Title, a note on how the file is generated, and one table row per code: bit,
        integer value, name, the layer that sets it and its documented meaning.
    """
    lines = [
        "# Reason codes",
        "",
        "<!-- Generated from allocgym.risk.ReasonCode and REASON_DOCS by",
        "     `allocgym risk codes --write docs/reason_codes.md`. Do not edit by hand:",
        "     tests/test_risk.py fails when this file is stale. -->",
        "",
        "Every change the risk gates, the execution policy or the serving layer make to a",
        "decision is recorded as bits of an int64 bitmask: per symbol",
        "(`GateResult.symbol_reasons`, shape `(n_envs, n_assets)`) and per portfolio",
        "(`GateResult.portfolio_reasons`, shape `(n_envs,)`). Several bits can be set at",
        "once. Values are stable and never renumbered; there is no `unknown` code.",
        "",
        "| bit | value | code | set by | meaning |",
        "|---:|---:|---|---|---|",
    ]
    for code in _single_bit_codes():
        doc = REASON_DOCS[code].replace("|", "\\|")
        lines.append(
            f"| {code.value.bit_length() - 1} | {code.value} | `{code.name}` | "
            f"{_REASON_SOURCE[code]} | {doc} |"
        )
    return "\n".join(lines) + "\n"


def decode_reasons(mask: int) -> tuple[str, ...]:
    """Names of the codes set in one bitmask value, lowest bit first (``()`` for 0)."""
    value = int(mask)
    return tuple(c.name for c in _single_bit_codes() if value & c.value and c.name)
