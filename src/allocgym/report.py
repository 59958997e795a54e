"""Evaluation reports: ``report.md``, self-contained ``report.html``, ``results.json``, PNGs.

:func:`write_report` turns an :class:`~allocgym.evaluation.EvaluationResult` into a folder::

    report.md        metrics table, seeds (mean ± std), paired Sharpe tests against 1/N,
                     HRP and the best baseline, PSR and DSR (trials and their source),
                     interventions by reason, invariant breaches, per-regime breakdown,
                     risk of the proposed vs held book per regime, the 99% VaR backtest
                     (historical, Gaussian, EVT), Pareto fronts, attribution, dashboard
    report.html      the same content with every image embedded (base64): one file
    results.json     metrics, seed aggregates, DSR, paired tests, regime risk, dashboard
                     and every return series
    backtests.npz    per-bar arrays of every backtest (``<name>/<field>`` keys)
    selection_audit.json  one record per rebalance of each allocator that selects names
                     (cluster barbell, greedy rotation); linked from the report
    plots/*.png      equity, drawdowns, weights (regime shaded), interventions, dashboard

The report is built once as a list of blocks (headings, paragraphs, tables, images) and
rendered to both Markdown and HTML, so the two always say the same thing. Numbers are
formatted here only; every value comes from the result.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from allocgym.evaluation import TABLE_METRICS, EvaluationResult, pooled_label
from allocgym.regime import REGIME_LABELS
from allocgym.stats import MIN_BLOCKS

__all__ = [
    "COLUMN_LABELS",
    "format_interval",
    "format_value",
    "jsonable",
    "metrics_table",
    "print_metrics_table",
    "write_report",
]

COLUMN_LABELS: dict[str, str] = {
    "ann_return": "Ann. return",
    "ann_volatility": "Ann. vol",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "max_drawdown": "Max DD",
    "calmar": "Calmar",
    "cvar": "CVaR",
    "turnover": "Turnover/yr",
    "costs": "Costs",
    "allocator_bars": "Gate cut: allocator-caused",
    "overlay_bars": "Gate cut: regime overlay",
    "gate_interventions": "Gate interv.",
    "invariant_breaches": "Breaches",
    "hhi": "HHI",
    "psr": "PSR",
    "dsr": "DSR",
}
"""Header of each table metric (``cvar`` gets its level: :func:`_cvar_label`)."""


def _cvar_label(result: EvaluationResult) -> str:
    """``CVaR95`` at ``evaluation.cvar_alpha = 0.95`` (``CVaR97.5`` at 0.975)."""
    return f"CVaR{100 * float(result.meta.get('cvar_alpha', 0.95)):g}"


_PERCENT = {"ann_return", "ann_volatility", "max_drawdown", "cvar", "costs"}
_SHARE = {"allocator_bars", "overlay_bars"}
_INT = {"gate_interventions", "invariant_breaches"}


def format_value(key: str, value: Any) -> str:
    """One table cell: percentages for returns/risk/costs, 2-3 decimals for ratios.

    A ``(mean, std)`` tuple renders as ``mean ± std``.
    """
    if isinstance(value, tuple):
        return f"{format_value(key, value[0])} ± {format_value(key, value[1])}"
    if value is None:
        return "n/a"
    v = float(value)
    if not math.isfinite(v):
        return "inf" if v > 0 else "-inf" if v < 0 else "n/a"
    if key in _PERCENT:
        return f"{100 * v:.2f}%"
    if key in _SHARE:
        return f"{100 * v:.0f}% of bars"
    if key in _INT:
        return f"{v:.0f}" if v == round(v) else f"{v:.1f}"
    if key == "hhi":
        return f"{v:.3f}"
    return f"{v:.2f}"


def format_interval(entry: dict[str, Any] | None) -> str:
    """A paired test's ``diff [ci_low, ci_high]`` (annualised Sharpe), ``n/a`` without one."""
    if not entry or entry.get("diff") is None or not math.isfinite(float(entry["diff"])):
        return "n/a"
    lo, hi = entry.get("ci_low"), entry.get("ci_high")
    diff = float(entry["diff"])
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{diff:+.2f} [n/a]"
    # two decimals, more while the interval's ends would print alike: a difference of
    # 0.004 with p 0.006 must not read +0.00 [+0.00, +0.01]
    places = 2
    while places < 4 and (abs(diff) < 10.0**-places or round(lo, places) == round(hi, places)):
        places += 1
    return f"{diff:+.{places}f} [{lo:+.{places}f}, {hi:+.{places}f}]"


def _format_p(entry: dict[str, Any] | None) -> str:
    """The p-value, marked ``†`` where the test gets no verdict (``unreliable``)."""
    p = None if not entry else entry.get("p_value")
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.3f}†" if entry and entry.get("verdict") == "unreliable" else f"{p:.3f}"


def _dsr_label(dsr: dict[str, Any]) -> str:
    """``DSR (N=12, ledger)``: the DSR column with its trial count and source."""
    source = dsr.get("source", "agent seeds")
    tags = {"ledger": "ledger", "agent seeds": "seeds, weak", "none": "no trials"}
    tag = tags.get(source, source)
    if source == "ledger" and dsr.get("weak"):
        tag = "ledger of seeds, weak"
    return f"DSR (N={dsr.get('n_trials')}, {tag})"


def metrics_table(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of the metrics table (per allocator, then seed groups).

    The DSR header carries its trial count and source; when 1/N (``equal_weight``) was
    walked, two columns give each row's paired Sharpe test against it (a seed group's row:
    its pooled portfolio's).
    """
    header = [
        "Allocator",
        *[
            _dsr_label(result.dsr)
            if k == "dsr"
            else _cvar_label(result)
            if k == "cvar"
            else COLUMN_LABELS[k]
            for k in TABLE_METRICS
        ],
    ]
    # table() lists the backtests, then one row per seed group
    keys = [bt.name for bt in result.backtests] + [
        pooled_label(g, agg["n_seeds"]) for g, agg in result.groups.items()
    ]
    tests = result.paired.get("rows", {})
    vs_1n = any("equal_weight" in row for row in tests.values())
    if vs_1n:
        level = result.paired.get("level", 0.9)
        header += [f"ΔSharpe vs 1/N [{100 * level:g}% CI]", "p vs 1/N"]
    rows = []
    for key, r in zip(keys, result.table(), strict=True):
        cells = [str(r["allocator"]), *[format_value(k, r[k]) for k in TABLE_METRICS]]
        if vs_1n:
            entry = tests.get(key, {}).get("equal_weight")
            cells += [format_interval(entry), _format_p(entry)]
        rows.append(cells)
    return header, rows


def print_metrics_table(result: EvaluationResult, title: str | None = None) -> None:
    """Print the metrics table with rich."""
    from rich.console import Console
    from rich.table import Table

    header, rows = metrics_table(result)
    m = result.meta
    table = Table(
        title=title
        or f"{'In' if m.get('in_sample') else 'Out-of'}-sample metrics: {m.get('market', '')}, "
        f"{m.get('split', '')} split "
        f"({m.get('start', '')}..{m.get('end', '')}), net of costs",
        header_style="bold",
    )
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
    groups = {f"{g} (mean" for g in result.groups}
    for row in rows:
        style = "bold" if any(row[0].startswith(g) for g in groups) else None
        table.add_row(*row, style=style)
    console = Console()
    Console(width=max(console.width, 200)).print(table)  # never squeeze the columns


# ----------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class _Block:
    kind: str  # "h1", "h2", "p", "table", "img", "pre", "link"
    text: str = ""
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    path: str = ""


def _bars(n: Any) -> str:
    """'bar' for 1, else 'N bars' (a count from the result's meta)."""
    return "bar" if int(n) == 1 else f"{int(n)} bars"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> _Block:
    return _Block("table", header=tuple(header), rows=tuple(tuple(str(c) for c in r) for r in rows))


def _blocks(result: EvaluationResult, images: dict[str, str]) -> list[_Block]:
    """The report's sections in reading order, format-free (``_md`` and ``_html`` render them)."""
    return [
        *_overview_blocks(result),
        *_metrics_blocks(result),
        *_seed_blocks(result),
        *_benchmark_blocks(result),
        *_fallback_blocks(result),
        *_paired_blocks(result),
        *_intervention_blocks(result),
        *_invariant_blocks(result),
        *_regime_breakdown_blocks(result),
        *_regime_risk_blocks(result),
        *_var_backtest_blocks(result),
        *_pareto_blocks(result),
        *_factor_attribution_blocks(result),
        *_diagnostics_blocks(result),
        *_performance_attribution_blocks(result),
        *_dashboard_blocks(result),
        *_figure_blocks(result, images),
    ]


def _sample_note(meta: dict[str, Any]) -> str:
    """Out of sample, or in sample and why (baselines may walk the training splits)."""
    reason = meta.get("in_sample")
    return f"in sample: {reason}" if reason else "out of sample"


def _overview_blocks(result: EvaluationResult) -> list[_Block]:
    """Title, the run's market and split, how every allocator was walked, data notes and
    the evaluated checkpoints."""
    meta = result.meta
    out: list[_Block] = [_Block("h1", "allocgym evaluation report")]
    out.append(
        _Block(
            "p",
            f"Market **{meta.get('market', '')}** ({meta.get('n_assets', '')} assets), "
            f"**{meta.get('split', '')}** split {meta.get('start', '')}..{meta.get('end', '')} "
            f"({meta.get('n_bars', '')} bars, {_sample_note(meta)}), starting equity "
            f"{meta.get('initial_equity', 0):,.0f}, action mode `{meta.get('action_mode', '')}`, "
            f"config hash `{str(meta.get('config_hash', ''))[:12]}`"
            + (f", run `{meta['run_dir']}`" if meta.get("run_dir") else "")
            + ".",
        )
    )
    out.append(
        _Block(
            "p",
            "Every allocator walked the whole split once, deterministically, from cash at the "
            "first tradable bar, through the same environment core: risk gates "
            "(`RiskGateChain`), execution policy (no-trade bands, lot rounding), fills at the "
            "next bar's close and the `allocgym.costs` cost model. Agents decide every "
            f"{_bars(meta.get('decision_interval', 1))} from the env observation (the "
            "env's decision interval, as in training); baselines re-optimise every "
            f"{meta.get('rebalance_every', '')} bars and hold their drifted book in between "
            "(a rebalance cut by a trade limit keeps trading towards its target). Returns are "
            "net of costs; metrics come from `allocgym.measures`.",
        )
    )
    notes = list(meta.get("data_notes") or [])
    if notes:
        out.append(_Block("p", "**Data notes:** " + " ".join(f"{n}." for n in notes)))
    checkpoints = meta.get("checkpoints") or {}
    if checkpoints:
        out.append(
            _Block(
                "p",
                "Evaluated checkpoints: "
                + "; ".join(
                    f"`{name}`: {c.get('model')} model"
                    + (f" at step {c['step']:,}" if c.get("step") is not None else "")
                    + f" of `{c.get('run')}`"
                    for name, c in checkpoints.items()
                )
                + ".",
            )
        )
    return out


def _metrics_blocks(result: EvaluationResult) -> list[_Block]:
    """The metrics table and what its columns measure."""
    meta, dsr = result.meta, result.dsr
    out: list[_Block] = [_Block("h2", "Metrics")]
    header, rows = metrics_table(result)
    out.append(_table(header, rows))
    out.append(
        _Block(
            "p",
            f"Turnover is the traded L1 weight per bar times {meta.get('periods_per_year', 252):g}; "
            "costs are the summed fill costs (fraction of equity); HHI is the mean Herfindahl "
            "index of the held book. 'Gate cut: allocator-caused' is the share of decisions "
            "where the risk gates changed the proposal at the default regime multipliers (the "
            "allocator proposed a book outside a limit, or a trade limit bound); 'Gate cut: "
            "regime overlay' the share where the regime multipliers (smaller gross and "
            "capacity in high-volatility and uncertain regimes) cut the book further. PSR is "
            "the Probabilistic Sharpe Ratio (the probability that the true "
            "Sharpe ratio is above 0); DSR is the Deflated Sharpe Ratio (Bailey & López de "
            "Prado, 2014): the probability that the Sharpe ratio is real after selecting among "
            f"N = {dsr.get('n_trials')} trials ({_dsr_source_words(dsr)}; baselines are "
            "benchmarks, not trials), i.e. against an expected maximum annualised Sharpe of "
            f"{dsr.get('sr0_annual', float('nan')):.2f} for skill-less trials, corrected for "
            "skewness and kurtosis. Walks run with the training-time drawdown kill off "
            f"(drawdown_kill = {meta.get('drawdown_kill', 1.0):g}); a book wiped out to zero "
            "equity is frozen from that bar on and flagged.",
        )
    )
    return out


def _seed_blocks(result: EvaluationResult) -> list[_Block]:
    """Each agent seed group: its training seeds and how its table row aggregates them."""
    if not result.groups:
        return []
    out = [_Block("h2", "Agent seeds")]
    for group, agg in result.groups.items():
        out.append(
            _Block(
                "p",
                f"`{group}`: {agg['n_seeds']} training seeds {agg['seeds']}; the table row "
                "`(mean ± std)` aggregates them (std with ddof = 1).",
            )
        )
    return out


def _intervention_blocks(result: EvaluationResult) -> list[_Block]:
    """Risk-gate interventions per allocator by reason code."""
    out = [_Block("h2", "Risk-gate interventions by reason code")]
    reasons = sorted({code for x in result.metrics.values() for code in x["interventions"]})
    out.append(
        _table(
            ["Allocator", *reasons, "Decisions changed"],
            [
                [
                    bt.name,
                    *[result.metrics[bt.name]["interventions"].get(code, 0) for code in reasons],
                    result.metrics[bt.name]["decisions_intervened"],
                ]
                for bt in result.backtests
            ],
        )
    )
    out.append(
        _Block(
            "p",
            "Counts are symbol-bars carrying each code (`NO_TRADE_BAND` is the execution "
            "policy suppressing a small trade, not a gate). 'Decisions changed' counts bars "
            "where the approved book differs from the proposal.",
        )
    )
    return out


def _invariant_blocks(result: EvaluationResult) -> list[_Block]:
    """The invariant check of every gate decision: none, or the breaches found."""
    breaches = {bt.name: result.metrics[bt.name]["invariant_breaches"] for bt in result.backtests}
    out = [_Block("h2", "Invariant breaches")]
    if all(count == 0 for count in breaches.values()):
        out.append(
            _Block(
                "p",
                "`check_invariants` verified every gate decision of every allocator: **0 "
                "breaches**.",
            )
        )
    else:
        out.append(_Block("p", "**Breaches found (each one is a bug):**"))
        lines = [
            f"{bt.name}: {msg}" for bt in result.backtests for msg in bt.invariant_messages[:10]
        ]
        out.append(_Block("pre", "\n".join(lines)))
    return out


def _regime_breakdown_blocks(result: EvaluationResult) -> list[_Block]:
    """Sharpe and return per allocator over the bars of each regime label."""
    out = [_Block("h2", "Per-regime breakdown")]
    labels = [
        label
        for label in REGIME_LABELS
        if any(label in x["regimes"] for x in result.metrics.values())
    ]
    rows = []
    for bt in result.backtests:
        by_regime = result.metrics[bt.name]["regimes"]
        cells = []
        for label in labels:
            stats = by_regime.get(label)
            cells.append(
                "n/a"
                if stats is None
                else f"{format_value('sharpe', stats['sharpe'])} / {100 * stats['ann_return']:.1f}%"
            )
        rows.append([bt.name, *cells])
    first_regimes = result.metrics[result.backtests[0].name]["regimes"]
    out.append(
        _table(
            [
                "Allocator",
                *[
                    f"{label} ({first_regimes.get(label, {}).get('fraction', 0):.0%} of bars)"
                    for label in labels
                ],
            ],
            rows,
        )
    )
    out.append(
        _Block(
            "p",
            "Cells: annualised Sharpe / annualised return over the bars the regime model "
            "(causal, decided at each bar) assigned to each label.",
        )
    )
    return out


def _performance_attribution_blocks(result: EvaluationResult) -> list[_Block]:
    """The primary allocator's return split by asset (with costs) and by strategy."""
    primary = result.primary
    attribution = result.metrics[primary.name]["attribution"]
    out = [_Block("h2", f"Performance attribution ({primary.name})")]
    assets = sorted(attribution["assets"].items(), key=lambda kv: -abs(kv[1]))
    out.append(
        _table(
            ["Asset", "Return contribution"],
            [[s, f"{100 * v:+.2f}%"] for s, v in assets]
            + [["costs", f"{100 * attribution['costs']:+.2f}%"]],
        )
    )
    out.append(
        _table(
            ["Strategy", "Return contribution"],
            [[s, f"{100 * v:+.2f}%"] for s, v in attribution["strategies"].items()],
        )
    )
    out.append(
        _Block(
            "p",
            "Contributions are sums of daily `w_t,i · r_t+1,i` (held book times price return); "
            "with costs they add up to the sum of daily net returns. Strategy families are "
            "attributed in `budgets` action mode (the families' shares of each traded asset); in "
            "`weights` mode the allocator is one strategy. The served allocator's metric "
            "`allocator_strategy_pnl_contribution_currency{strategy_id}` attributes the same "
            "way, in currency.",
        )
    )
    return out


def _dashboard_blocks(result: EvaluationResult) -> list[_Block]:
    """Cluster concentration and the latest rebalancing signals, when a dashboard was built."""
    db = result.dashboard
    if not db:
        return []
    out = [_Block("h2", f"Dashboard ({db.get('allocator', '')}, book at {db.get('date', '')})")]
    out.append(
        _table(
            ["Cluster", "Members", "Gross", "Net", "Lead asset"],
            [
                [
                    f"C{c['id']}",
                    ", ".join(c["members"]),
                    f"{100 * c['gross']:.1f}%",
                    f"{100 * c['net']:.1f}%",
                    f"★ {c['lead']}",
                ]
                for c in db["clusters"]
            ],
        )
    )
    signals = [a for a in db["assets"] if a["signal"] != "HOLD"]
    out.append(
        _Block(
            "p",
            f"Latest rebalancing signals ({db.get('signal_date', '') or 'no trade'}); "
            "★ marks each cluster's lead asset (best cumulative return over "
            f"{db.get('lead_window', '')} bars), flagged for primary implementation.",
        )
    )
    out.append(
        _table(
            ["Asset", "Signal", "Traded weight", "Weight after", "Cluster", "Lead"],
            [
                [
                    a["symbol"],
                    a["signal"],
                    f"{100 * a['trade']:+.2f}%",
                    f"{100 * a['weight']:.2f}%",
                    f"C{a['cluster']}",
                    "★" if a["lead"] else "",
                ]
                for a in (signals or db["assets"])
            ],
        )
    )
    return out


def _figure_blocks(result: EvaluationResult, images: dict[str, str]) -> list[_Block]:
    """The figures with their captions (``images``: figure key to relative path)."""
    primary = result.primary
    out = [_Block("h2", "Figures")]
    captions = {
        "equity": "Equity curves (growth of 1, net of costs)",
        "drawdowns": "Drawdowns",
        "weights": f"{primary.name}: weights over time with the regime shaded",
        "interventions": f"{primary.name}: risk-gate interventions by reason code per month",
        "dashboard": "Dashboard: concentration per cluster and asset, latest BUY/SELL signals",
        **{
            f"pareto_front_{name}": f"{name}: Pareto front of the last rebalance (return vs "
            "CVaR, colour: drawdown proxy, size: liquidity cost; ★ the traded point)"
            for name in result.pareto_fronts
        },
    }
    for key, rel in images.items():
        out.append(_Block("img", captions.get(key, key), path=rel))
    return out


def _benchmark_blocks(result: EvaluationResult) -> list[_Block]:
    """The benchmark's own metrics, and each allocator's active return, tracking error
    and information ratio against it."""
    b = result.benchmark
    if not b:
        return []
    rows = [
        [
            f"{b['name']} (benchmark)",
            format_value("ann_return", b["ann_return"]),
            format_value("ann_volatility", b["ann_volatility"]),
            format_value("sharpe", b["sharpe"]),
            format_value("max_drawdown", b["max_drawdown"]),
            "", "", "",
        ]
    ]  # fmt: skip
    for bt in result.backtests:
        x = result.metrics[bt.name]
        if "tracking_error" not in x:
            continue
        rows.append(
            [
                bt.name,
                format_value("ann_return", x["ann_return"]),
                format_value("ann_volatility", x["ann_volatility"]),
                format_value("sharpe", x["sharpe"]),
                format_value("max_drawdown", x["max_drawdown"]),
                f"{100 * x['active_return']:+.2f}%",
                format_value("ann_volatility", x["tracking_error"]),
                format_value("sharpe", x["information_ratio"]),
            ]
        )
    header = ["Allocator", "Ann. return", "Ann. vol", "Sharpe", "Max DD", "Active return",
              "Tracking error", "Information ratio"]  # fmt: skip
    return [
        _Block("h2", f"Against the benchmark: {b['name']}"),
        _table(header, rows),
        _Block(
            "p",
            "Active return is the annualised return minus the benchmark's over the same bars; "
            "tracking error the annualised standard deviation of the daily return "
            "differences; the information ratio their annualised mean over that standard "
            "deviation. The benchmark is drawn as a dashed black line in the figures.",
        ),
    ]


def _fallback_blocks(result: EvaluationResult) -> list[_Block]:
    """Per baseline: rebalances by the stage that produced the weights, flagged when a
    fallback served more than half of them."""
    rows, flags = [], []
    for bt in result.backtests:
        x = result.metrics[bt.name]
        if bt.kind != "baseline" or not x.get("rebalances"):
            continue
        fb = x.get("fallback") or {}
        stages = ", ".join(f"{k} {100 * v:.0f}%" for k, v in fb.items()) or "none"
        flag = "**yes**" if x.get("fallback_flag") else ""
        rows.append(
            [bt.name, str(x["rebalances"]), str(bt.primary_source), stages,
             f"{100 * x['fallback_share']:.0f}%", flag]
        )  # fmt: skip
        if x.get("fallback_flag"):
            flags.append(
                f"`{bt.name}` was served by a fallback on {100 * x['fallback_share']:.0f}% of "
                f"its rebalances ({stages}): its row mostly shows the fallback's book, not "
                f"{bt.name}'s"
            )
    if not rows:
        return []
    header = ["Allocator", "Rebalances", "Primary stage", "Fallback stages (share)",
              "Served by fallback", "Flag (> 50%)"]  # fmt: skip
    out = [
        _Block("h2", "Fallbacks"),
        _table(header, rows),
        _Block(
            "p",
            "An allocator with a fallback chain (the QP: a second solver setting, a second "
            "solver, HRP, the current book; max-Sharpe: minimum variance) records which stage "
            "produced each rebalance; 'book kept (error)' is a rebalance where the allocator "
            "raised and the book was held.",
        ),
    ]
    if flags:
        out.append(_Block("p", "**Flagged:** " + "; ".join(flags) + "."))
    return out


def _dsr_source_words(d: dict[str, Any]) -> str:
    """Where the DSR's trials came from, in words."""
    source = d.get("source")
    if source == "ledger":
        words = (
            f"the trials recorded in the trials ledger `{d.get('ledger')}`; Sharpe variance "
            f"of its {d.get('n_trial_sharpes')} completed trials' validation Sharpe ratios"
        )
        if d.get("weak"):
            words += (
                ": **weak**, since those trials are the seeds of one configuration, which "
                "leave out every configuration tried before; record those runs in the ledger"
            )
        return words
    if source == "none":
        return "none (no agent was evaluated and no trials ledger was found)"
    return (
        "the agent seeds evaluated together: **weak**, since they leave out every "
        "configuration tried before; record the study's runs in a trials.jsonl ledger"
    )


_VERDICT_WORDS = {
    "better": "**beats {ref}**: the interval lies above 0",
    "worse": "is **worse than {ref}**: the interval lies below 0",
    "indistinguishable": "is **not distinguishable from {ref}**: the interval contains 0",
    "unreliable": "is **not judged against {ref}**: {note}",
}


def _paired_blocks(result: EvaluationResult) -> list[_Block]:
    """Paired Sharpe tests table, verdicts against 1/N, and the DSR's trials."""
    pt = result.paired
    tests = pt.get("rows", {})
    if not tests:
        return []
    level = float(pt.get("level", 0.9))
    ci = f"[{100 * level:g}% CI]"
    title = "Statistical tests: Sharpe differences against 1/N, HRP and the best baseline"
    out = [_Block("h2", title)]
    names = [bt.name for bt in result.backtests] + list(pt.get("pooled", {}))
    rows = []
    for name in names:
        row = tests.get(name, {})
        m = result.metrics.get(name, {})  # a pooled row has no metrics: its Sharpe from a test
        sharpe = m.get("sharpe", next((e["sharpe_a"] for e in row.values()), None))
        best = row.get("best_baseline")
        rows.append(
            [
                name,
                format_value("sharpe", sharpe),
                format_value("psr", m.get("psr")),
                format_value("dsr", m.get("dsr")),
                format_interval(row.get("equal_weight")),
                _format_p(row.get("equal_weight")),
                format_interval(row.get("hrp")),
                _format_p(row.get("hrp")),
                best["reference"] if best else "n/a",
                format_interval(best),
                _format_p(best),
            ]
        )
    header = ["Allocator", "Sharpe", "PSR", _dsr_label(result.dsr), f"ΔSharpe vs 1/N {ci}",
              "p", f"ΔSharpe vs HRP {ci}", "p", "Best other baseline", f"ΔSharpe vs best {ci}",
              "p"]  # fmt: skip
    out.append(_table(header, rows))
    out.append(
        _Block(
            "p",
            "ΔSharpe is the annualised Sharpe ratio of the row minus the reference's over the "
            f"same bars, with a {100 * level:g}% percentile interval from a paired stationary "
            f"bootstrap ({pt.get('n_boot')} resamples, blocks of mean length "
            f"{pt.get('mean_block', 0):g} bars, seed {pt.get('seed')}: both series resampled "
            "with the same blocks, so common market moves cancel); p is the one-sided "
            "p-value of 'no better than the reference' († on fewer than "
            f"{MIN_BLOCKS} mean blocks of bars: not calibrated, no verdict). A pooled row is "
            "the seeds' returns "
            "averaged bar by bar (a book rebalanced to equal capital per seed every bar); in "
            "the metrics "
            "table a seed group's 1/N columns are its pooled row's.",
        )
    )
    words = []
    for name in names:
        if name in result.metrics and result.metrics[name]["kind"] != "agent":
            continue
        entry = tests.get(name, {}).get("equal_weight")
        if entry is None:
            continue
        verdict = _VERDICT_WORDS.get(entry["verdict"])
        if verdict is None:
            words.append(f"`{name}`: no Sharpe difference against 1/N can be estimated.")
            continue
        words.append(
            f"`{name}` {verdict.format(ref='1/N', note=entry.get('note', ''))} "
            f"(ΔSharpe {format_interval(entry)}, "
            f"p = {_format_p(entry)})."
        )
    if words:
        out.append(_Block("p", " ".join(words)))
    elif not any("equal_weight" in row for row in tests.values()):
        text = "1/N (`equal_weight`) was not walked: add it to the baselines to test against it."
        out.append(_Block("p", text))
    d = result.dsr
    note = f" {d['note']}." if d.get("note") else ""
    out.append(
        _Block(
            "p",
            f"DSR trials: N = {d.get('n_trials')}, from {_dsr_source_words(d)}; expected "
            f"maximum annualised Sharpe of skill-less trials {d.get('sr0_annual', float('nan')):.2f}."
            + note,
        )
    )
    return out


def _regime_risk_blocks(result: EvaluationResult) -> list[_Block]:
    """Ex-ante risk of the proposed vs the held book per regime (agents and references)."""
    rr = result.regime_risk
    if not rr:
        return []
    shown = [
        bt.name
        for bt in result.backtests
        if bt.name in rr and (bt.kind == "agent" or bt.name in ("equal_weight", "hrp"))
    ]
    if not shown:
        return []
    cvar = _cvar_label(result)

    def gross(v: float) -> str:
        return f"{100 * v:.1f}%" if math.isfinite(v) else "n/a"

    rows = []
    for name in shown:
        for label, x in rr[name].items():
            rows.append(
                [
                    name,
                    label,
                    f"{x['fraction']:.0%}",
                    gross(x["proposed_gross"]),
                    gross(x["held_gross"]),
                    format_value("ann_volatility", x["proposed_volatility"]),
                    format_value("ann_volatility", x["held_volatility"]),
                    format_value("cvar", x["proposed_cvar"]),
                    format_value("cvar", x["held_cvar"]),
                    str(x["nan_proposals"]),
                ]
            )
    nan_total = sum(x["nan_proposals"] for name in shown for x in rr[name].values())
    header = ["Allocator", "Regime", "Share of bars", "Proposed gross", "Held gross",
              "Proposed vol", "Held vol", f"Proposed {cvar}", f"Held {cvar}",
              "NaN proposals"]  # fmt: skip
    return [
        _Block("h2", "Risk by regime: proposed vs held book"),
        _table(header, rows),
        _Block(
            "p",
            "Means over the bars of each regime. Both books are priced on the same scenarios: "
            f"the asset returns of the {result.meta.get('risk_window', '')} bars up to the "
            "decision bar (ex-ante; volatility annualised, CVaR a one-bar loss). The proposed "
            "book is the allocator's wish, the held book what the gates approved and the fill "
            "executed: the gap is what the risk gates took off. Proposals holding a NaN are "
            f"left out of the proposed means and counted ({nan_total} here).",
        ),
    ]


_VAR_LABELS = {"historical": "Hist.", "gaussian": "Gauss.", "evt": "EVT"}


def _var_backtest_blocks(result: EvaluationResult) -> list[_Block]:
    """Out-of-sample VaR breaches of the held book with Kupiec and Christoffersen tests."""
    vb = result.var_backtest
    if not vb:
        return []
    first = next(iter(vb.values()))
    level = f"{100 * float(first['alpha']):g}%"

    def p(x: float) -> str:
        return f"{x:.3f}" if math.isfinite(x) else "n/a"

    header = ["Allocator", "Forecasts", "Expected breaches"]
    for m in ("historical", "gaussian", "evt"):
        header += [f"{_VAR_LABELS[m]} breaches", f"{_VAR_LABELS[m]} p (Kupiec / Christ.)"]
    rows = []
    for bt in result.backtests:
        x = vb.get(bt.name)
        if x is None:
            continue
        h = x["historical"]
        row = [bt.name, str(h["n_obs"]), f"{h['expected']:.1f}"]
        for m in ("historical", "gaussian", "evt"):
            t = x[m]
            row += [str(t["n_breaches"]), f"{p(t['kupiec_p'])} / {p(t['christoffersen_p'])}"]
        rows.append(row)
    flat = sum(x["n_flat"] for x in vb.values())
    short = sum(x["n_short_history"] for x in vb.values())
    return [
        _Block("h2", f"VaR backtest ({level}, out of sample)"),
        _table(header, rows),
        _Block(
            "p",
            f"At each bar the {level} one-bar VaR of the book held over the next bar (filled at "
            "the previous decision, the book the P&L is made of) is forecast from the "
            f"asset returns of the {first['window']} bars up to the decision (nothing later) "
            "in three ways: historical (empirical quantile of the scenario P&L), Gaussian "
            "(normal with the scenarios' mean and volatility) and EVT (a generalised Pareto "
            "tail fitted to the worst 10% of the scenarios, peaks over threshold). A breach "
            "is a realized market return of that book over the next bar (before fill costs) "
            "below minus the VaR. Kupiec's test asks whether the breach rate equals "
            f"{100 - 100 * float(first['alpha']):g}%, Christoffersen's whether breaches "
            "cluster (a first-order Markov chain against independence); a p-value below 0.05 "
            f"rejects the model. Left out: {flat} all-cash allocator-bars and {short} whose "
            f"{first['window']}-bar window would reach before the data's first bar.",
        ),
    ]


def _pareto_blocks(result: EvaluationResult) -> list[_Block]:
    """The Pareto allocator's last front as a table, with the choice rule and fallbacks."""
    out: list[_Block] = []
    ppy = result.meta.get("periods_per_year", 252.0)
    for name, front in result.pareto_fronts.items():
        pts = front["points"]
        chosen = int(front["chosen"])
        rows = [
            [
                f"{i + 1}" + (" ★" if i == chosen else ""),
                f"{100 * ppy * r:.1f}%",
                f"{100 * c:.2f}%",
                f"{100 * d:.1f}%",
                f"{100 * k:.3f}%",
            ]
            for i, (r, c, d, k) in enumerate(pts)
        ]
        when = f" ({front['date']})" if front.get("date") else ""
        sources = result.backtest(name).rebalance_sources
        missed = int(sources.get("pareto:min_cvar", 0))
        out += [
            _Block("h2", f"Pareto front: {name}, last rebalance{when}"),
            _table(
                [
                    "Point",
                    f"Exp. return (x{ppy:g})",
                    f"CVaR{100 * float(front['alpha']):g}",
                    "Drawdown proxy",
                    "Liquidity cost",
                ],
                rows,
            ),
            _Block(
                "p",
                f"{len(pts)} non-dominated points of {front['n_solved']} traced by "
                "ε-constraints (maximum expected return under evenly spaced CVaR caps, from "
                "the minimum-CVaR book to the maximum-return book; drawdown and cost as "
                "secondary objectives), all on the trailing window's scenarios. ★ is the "
                "point traded: the highest expected return with CVaR at most "
                f"{100 * float(front['cvar_target']):.2f}%"
                + (
                    ""
                    if front.get("target_met", True)
                    else " (no point met it: the minimum-CVaR point was traded)"
                )
                + f". Rebalances where no point met the target: {missed}.",
            ),
        ]
    return out


def _factor_attribution_blocks(result: EvaluationResult) -> list[_Block]:
    """Each allocator's market return split into factor contributions and a specific part."""
    fa = result.factor_attribution
    if not fa:
        return []
    names = next(iter(fa.values()))["factors"]
    header = ["Allocator", *names, "Specific", "Market return", "Costs", "Net return"]
    rows = []
    for bt in result.backtests:
        x = fa.get(bt.name)
        if x is None:
            continue
        tot = x["total"]
        market = sum(tot[n] for n in names) + tot["specific"]
        rows.append(
            [bt.name]
            + [f"{100 * tot[n]:+.2f}%" for n in names]
            + [f"{100 * tot['specific']:+.2f}%", f"{100 * market:+.2f}%"]
            + [f"{100 * x['costs']:+.2f}%", f"{100 * (market + x['costs']):+.2f}%"]
        )
    m = result.meta
    if m.get("factor_source") == "user":
        how = (
            "the user factors given with --factors (data.factors); each asset's exposures "
            "are the slopes of a time-series regression, with intercept, of its returns on "
            "the factor returns"
        )
    else:
        how = (
            "the principal components of the trailing window's covariance (the fewest "
            "explaining the configured share of variance, baselines.factor_model), signs "
            "fixed so each component's loadings sum to a positive number; PCj columns are 0 "
            "on bars where fewer components were kept"
        )
    exposures = [
        [bt.name, *(f"{fa[bt.name]['mean_exposure'].get(n, 0.0):+.3f}" for n in names)]
        for bt in result.backtests
        if bt.name in fa
    ]
    return [
        _Block("h2", "Factor attribution"),
        _table(header, rows),
        _Block(
            "p",
            "Summed per-bar contributions (simple returns, not compounded). Every "
            f"{_bars(m.get('factor_refit_every', 1))} the factor model is fitted on the "
            f"{m.get('factor_window', '')} bars up to the decision (nothing later; held "
            "in between) with "
            f"{how}. A factor's contribution is the held book's exposure to it times the "
            "factor's return over the next bar; the specific part is the rest of the book's "
            "market return, so factors + specific = market return exactly, and market "
            "return + costs = the net return. The per-bar split is in results.json "
            "(factor_attribution).",
        ),
        _Block("p", "Mean factor exposure of the held book (B'w):"),
        _table(["Allocator", *names], exposures),
    ]


def _diagnostics_blocks(result: EvaluationResult) -> list[_Block]:
    """Risk-budget utilisation, the effective number of factors and the VaR coverage."""
    dg = result.diagnostics
    if not dg:
        return []

    def pct(x: float) -> str:
        return f"{100 * x:.1f}%" if math.isfinite(x) else "n/a"

    alpha = next((d["var_alpha"] for d in dg.values() if "var_alpha" in d), None)
    header = ["Allocator", "Gross budget used (mean / max)", "Effective factors"]
    if alpha is not None:
        header += [f"{100 * alpha:g}% VaR coverage ({_VAR_LABELS[v]})" for v in _VAR_LABELS]
    rows = []
    families: list[list[str]] = []
    for bt in result.backtests:
        d = dg.get(bt.name)
        if d is None:
            continue
        total = d["risk_budget"]["total"]
        enf = float(d.get("effective_factors", float("nan")))
        row = [
            bt.name,
            f"{pct(total['mean'])} / {pct(total['max'])}",
            f"{enf:.2f}" if math.isfinite(enf) else "n/a",
        ]
        if alpha is not None:
            cov = d.get("var_coverage", {})
            row += [pct(float(cov.get(v, float("nan")))) for v in _VAR_LABELS]
        rows.append(row)
        for fam, u in d["risk_budget"]["families"].items():
            families.append([bt.name, fam, f"{pct(u['mean'])} / {pct(u['max'])}"])
    universe = result.meta.get("universe_effective_factors")
    uni = (
        f" The universe itself has {universe:.2f} effective factors (the same entropy over "
        "the normalised eigenvalues of the window covariance, mean over bars)."
        if isinstance(universe, float) and math.isfinite(universe)
        else ""
    )
    out = [
        _Block("h2", "Risk diagnostics"),
        _table(header, rows),
        _Block(
            "p",
            "Gross budget used: the held book's gross exposure over the gross cap "
            "(risk.max_gross, before the regime multiplier), mean and peak over the bars "
            "(the cap binds at the decision bar's prices and the book is measured at the "
            "fill's, so the peak can sit slightly above 100%). "
            "Effective factors: a diversification score, exp of the entropy of the book's "
            "variance shares over the principal components of the trailing window (1 = one "
            "factor carries all the risk, N = spread evenly over N), mean over invested bars."
            + uni
            + (
                f" VaR coverage: the share of out-of-sample bars whose loss stayed within the "
                f"forecast {100 * alpha:g}% VaR (ideal {100 * alpha:g}%; the breach tests are "
                "in the VaR backtest section)."
                if alpha is not None
                else ""
            ),
        ),
    ]
    if families:
        out += [
            _Block("p", "Strategy-family budgets used (the family's share of the approved book "
                   "over its budget: base x regime multiplier x tilt x capacity factor, "
                   "mean / max):"),
            _table(["Allocator", "Family", "Budget used"], families),
        ]  # fmt: skip
    return out


def _md(blocks: list[_Block]) -> str:
    lines: list[str] = []
    for b in blocks:
        if b.kind == "h1":
            lines += [f"# {b.text}", ""]
        elif b.kind == "h2":
            lines += [f"## {b.text}", ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "pre":
            lines += ["```", b.text, "```", ""]
        elif b.kind == "table":
            lines.append("| " + " | ".join(b.header) + " |")
            lines.append(
                "|" + "|".join("---" if i == 0 else "---:" for i in range(len(b.header))) + "|"
            )
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in b.rows]
            lines.append("")
        elif b.kind == "img":
            lines += [f"![{b.text}]({b.path})", ""]
        elif b.kind == "link":
            lines += [f"[{b.text}]({b.path})", ""]
    return "\n".join(lines)


def _inline_md(text: str) -> str:
    """Escape, then render ``**bold**`` and ```code``` spans."""
    out = html.escape(text)
    parts = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1250px;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:0.6em 0 1.2em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f0f0f0} tr:nth-child(even){background:#fafafa}
code{background:#f3f3f3;padding:0 3px;border-radius:3px}
img{max-width:100%;border:1px solid #ddd;margin:0.3em 0 1.5em}
figcaption{font-size:13px;color:#555}
"""


def _html(blocks: list[_Block], folder: Path) -> str:
    body: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{_inline_md(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline_md(b.text)}</p>")
        elif b.kind == "pre":
            body.append(f"<pre>{html.escape(b.text)}</pre>")
        elif b.kind == "table":
            head = "".join(f"<th>{_inline_md(h)}</th>" for h in b.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline_md(c)}</td>" for c in r) + "</tr>" for r in b.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "link":
            body.append(f'<p><a href="{html.escape(b.path)}">{html.escape(b.text)}</a></p>')
        elif b.kind == "img":
            data = base64.b64encode((folder / b.path).read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{html.escape(b.text)}" src="data:image/png;base64,{data}"/>'
                f"<figcaption>{html.escape(b.text)}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>allocgym evaluation report'
        f"</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


# ----------------------------------------------------------------------------- files


def jsonable(x: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays converted, non-finite floats as None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.bool_ | bool):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, Path):
        return str(x)
    return x


def _selection_blocks(audit: dict[str, list[dict[str, Any]]]) -> list[_Block]:
    """The report's section linking ``selection_audit.json``."""
    counts = ", ".join(f"`{name}` {len(recs)}" for name, recs in audit.items())
    return [
        _Block("h2", "Selection audit"),
        _Block(
            "p",
            "One record per rebalance of each allocator that selects names: the cluster "
            "barbell's regime score, barbell state, active constraints, clusters, sleeve and "
            "lead assets; greedy rotation's selected and exited names with the exit reason. "
            "Each is the allocator's decision before the gates and the fill (the weights "
            f"chart shows what was held). Rebalances recorded: {counts}.",
        ),
        _Block("link", "selection_audit.json", path="selection_audit.json"),
    ]


def write_report(result: EvaluationResult, folder: str | Path) -> dict[str, Path]:
    """Write the report files into ``folder`` (created); returns name -> path.

    Keys: ``markdown``, ``html``, ``results``, ``arrays``, ``selection_audit`` (when an
    allocator selects names) and one per figure (``equity``, ``drawdowns``, ``weights``,
    ``interventions``, ``dashboard``).
    """
    from allocgym.plots import write_plots

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    if result.backtests and result.primary.n_steps:  # results built without evaluate()
        prim = result.primary
        result.meta.setdefault("start", str(prim.dates[0])[:10])
        result.meta.setdefault("end", str(prim.dates[-1])[:10])
        result.meta.setdefault("n_bars", prim.n_steps)
    plots = write_plots(result, d / "plots")
    images = {k: str(p.relative_to(d)) for k, p in plots.items()}
    blocks = _blocks(result, images)
    paths: dict[str, Path] = {}
    audit = {bt.name: bt.selection_audit for bt in result.backtests if bt.selection_audit}
    if audit:
        paths["selection_audit"] = d / "selection_audit.json"
        paths["selection_audit"].write_text(json.dumps(jsonable(audit), indent=1) + "\n")
        blocks += _selection_blocks(audit)
    paths["markdown"] = d / "report.md"
    paths["markdown"].write_text(_md(blocks))
    paths["html"] = d / "report.html"
    paths["html"].write_text(_html(blocks, d))
    paths["results"] = d / "results.json"
    payload = jsonable(result.to_json())
    payload["table"] = jsonable(result.table())
    paths["results"].write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n")
    paths["arrays"] = d / "backtests.npz"
    arrays = {
        f"{bt.name}/{k}": (v.astype("datetime64[ns]").astype(np.int64) if k == "dates" else v)
        for bt in result.backtests
        for k, v in bt.arrays().items()
    }
    np.savez_compressed(paths["arrays"], **arrays)
    paths.update(plots)
    return paths
