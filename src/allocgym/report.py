"""Evaluation reports: ``report.md``, self-contained ``report.html``, ``results.json``, PNGs.

:func:`write_report` turns an :class:`~allocgym.evaluation.EvaluationResult` into a folder::

    report.md        metrics table, seeds (mean ± std), DSR, interventions by reason,
                     invariant breaches, per-regime breakdown, attribution, dashboard
    report.html      the same content with every image embedded (base64): one file
    results.json     metrics, seed aggregates, DSR, dashboard and every return series
    backtests.npz    per-bar arrays of every backtest (``<name>/<field>`` keys)
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

from allocgym.evaluation import TABLE_METRICS, EvaluationResult
from allocgym.regime import REGIME_LABELS

__all__ = [
    "COLUMN_LABELS",
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
    "cvar": "CVaR95",
    "turnover": "Turnover/yr",
    "costs": "Costs",
    "gate_interventions": "Gate interv.",
    "invariant_breaches": "Breaches",
    "hhi": "HHI",
    "dsr": "DSR",
}
"""Header of each table metric."""

_PERCENT = {"ann_return", "ann_volatility", "max_drawdown", "cvar", "costs"}
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
    if key in _INT:
        return f"{v:.0f}" if v == round(v) else f"{v:.1f}"
    if key == "hhi":
        return f"{v:.3f}"
    return f"{v:.2f}"


def metrics_table(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of the metrics table (per allocator, then seed groups)."""
    header = ["Allocator", *[COLUMN_LABELS[k] for k in TABLE_METRICS]]
    rows = [
        [str(r["allocator"]), *[format_value(k, r[k]) for k in TABLE_METRICS]]
        for r in result.table()
    ]
    return header, rows


def print_metrics_table(result: EvaluationResult, title: str | None = None) -> None:
    """Print the metrics table with rich."""
    from rich.console import Console
    from rich.table import Table

    header, rows = metrics_table(result)
    m = result.meta
    table = Table(
        title=title
        or f"Out-of-sample metrics: {m.get('market', '')}, {m.get('split', '')} split "
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
    kind: str  # "h1", "h2", "p", "table", "img", "pre"
    text: str = ""
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    path: str = ""


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> _Block:
    return _Block("table", header=tuple(header), rows=tuple(tuple(str(c) for c in r) for r in rows))


def _blocks(result: EvaluationResult, images: dict[str, str]) -> list[_Block]:
    m = result.meta
    out: list[_Block] = [_Block("h1", "allocgym evaluation report")]
    out.append(
        _Block(
            "p",
            f"Market **{m.get('market', '')}** ({m.get('n_assets', '')} assets), "
            f"**{m.get('split', '')}** split {m.get('start', '')}..{m.get('end', '')} "
            f"({m.get('n_bars', '')} bars, out of sample), starting equity "
            f"{m.get('initial_equity', 0):,.0f}, action mode `{m.get('action_mode', '')}`, "
            f"config hash `{str(m.get('config_hash', ''))[:12]}`"
            + (f", run `{m['run_dir']}`" if m.get("run_dir") else "")
            + ".",
        )
    )
    out.append(
        _Block(
            "p",
            "Every allocator walked the whole split once, deterministically, from cash at the "
            "first tradable bar, through the same environment core: risk gates "
            "(`RiskGateChain`), execution policy (no-trade bands, lot rounding), fills at the "
            "next bar's close and the `allocgym.costs` cost model. Agents decide every bar "
            "from the env observation; baselines re-optimise every "
            f"{m.get('rebalance_every', '')} bars and hold their drifted book in between "
            "(a rebalance cut by a trade limit keeps trading towards its target). Returns are "
            "net of costs; metrics come from `allocgym.measures`.",
        )
    )
    out.append(_Block("h2", "Metrics"))
    header, rows = metrics_table(result)
    out.append(_table(header, rows))
    d = result.dsr
    out.append(
        _Block(
            "p",
            f"Turnover is the traded L1 weight per bar times {m.get('periods_per_year', 252):g}; "
            "costs are the summed fill costs (fraction of equity); HHI is the mean Herfindahl "
            "index of the held book; gate interventions count symbol-bars carrying a risk-gate "
            "reason code. DSR is the Deflated Sharpe Ratio (Bailey & López de Prado, 2014): "
            f"the probability that the Sharpe ratio is real after selecting among "
            f"N = {d.get('n_trials')} agent trials (seeds / configurations; baselines are "
            "benchmarks, not trials), i.e. against an expected maximum annualised Sharpe of "
            f"{d.get('sr0_annual', float('nan')):.2f} for skill-less trials, corrected for "
            "skewness and kurtosis. Walks run with the training-time drawdown kill off "
            f"(drawdown_kill = {m.get('drawdown_kill', 1.0):g}); a book wiped out to zero "
            "equity is frozen from that bar on and flagged.",
        )
    )
    if result.groups:
        out.append(_Block("h2", "Agent seeds"))
        for g, agg in result.groups.items():
            out.append(
                _Block(
                    "p",
                    f"`{g}`: {agg['n_seeds']} training seeds {agg['seeds']}; the table row "
                    "`(mean ± std)` aggregates them (std with ddof = 1).",
                )
            )
    # interventions
    out.append(_Block("h2", "Risk-gate interventions by reason code"))
    reasons = sorted({r for mm in result.metrics.values() for r in mm["interventions"]})
    out.append(
        _table(
            ["Allocator", *reasons, "Decisions changed"],
            [
                [
                    bt.name,
                    *[result.metrics[bt.name]["interventions"].get(r, 0) for r in reasons],
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
    breaches = {bt.name: result.metrics[bt.name]["invariant_breaches"] for bt in result.backtests}
    out.append(_Block("h2", "Invariant breaches"))
    if all(v == 0 for v in breaches.values()):
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
    # regimes
    out.append(_Block("h2", "Per-regime breakdown"))
    labels = [r for r in REGIME_LABELS if any(r in mm["regimes"] for mm in result.metrics.values())]
    rows_r = []
    for bt in result.backtests:
        reg = result.metrics[bt.name]["regimes"]
        cells = []
        for r in labels:
            x = reg.get(r)
            cells.append(
                "n/a"
                if x is None
                else f"{format_value('sharpe', x['sharpe'])} / {100 * x['ann_return']:.1f}%"
            )
        rows_r.append([bt.name, *cells])
    first = result.metrics[result.backtests[0].name]["regimes"]
    out.append(
        _table(
            [
                "Allocator",
                *[f"{r} ({first.get(r, {}).get('fraction', 0):.0%} of bars)" for r in labels],
            ],
            rows_r,
        )
    )
    out.append(
        _Block(
            "p",
            "Cells: annualised Sharpe / annualised return over the bars the regime model "
            "(causal, decided at each bar) assigned to each label.",
        )
    )
    # attribution
    prim = result.primary
    att = result.metrics[prim.name]["attribution"]
    out.append(_Block("h2", f"Performance attribution ({prim.name})"))
    assets = sorted(att["assets"].items(), key=lambda kv: -abs(kv[1]))
    out.append(
        _table(
            ["Asset", "Return contribution"],
            [[s, f"{100 * v:+.2f}%"] for s, v in assets]
            + [["costs", f"{100 * att['costs']:+.2f}%"]],
        )
    )
    out.append(
        _table(
            ["Strategy", "Return contribution"],
            [[s, f"{100 * v:+.2f}%"] for s, v in att["strategies"].items()],
        )
    )
    out.append(
        _Block(
            "p",
            "Contributions are sums of daily `w_t,i · r_t+1,i` (held book times price return); "
            "with costs they add up to the sum of daily net returns. Strategy families are "
            "attributed in `budgets` action mode (the families' shares of each traded asset); in "
            "`weights` mode the allocator is one strategy. These feed "
            "`strategy_pnl_contribution{strategy_id}`.",
        )
    )
    # dashboard
    db = result.dashboard
    if db:
        out.append(
            _Block("h2", f"Dashboard ({db.get('allocator', '')}, book at {db.get('date', '')})")
        )
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
    out.append(_Block("h2", "Figures"))
    captions = {
        "equity": "Equity curves (growth of 1, net of costs)",
        "drawdowns": "Drawdowns",
        "weights": f"{prim.name}: weights over time with the regime shaded",
        "interventions": f"{prim.name}: risk-gate interventions by reason code per month",
        "dashboard": "Dashboard: concentration per cluster and asset, latest BUY/SELL signals",
    }
    for key, rel in images.items():
        out.append(_Block("img", captions.get(key, key), path=rel))
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


def write_report(result: EvaluationResult, folder: str | Path) -> dict[str, Path]:
    """Write the report files into ``folder`` (created); returns name -> path.

    Keys: ``markdown``, ``html``, ``results``, ``arrays`` and one per figure
    (``equity``, ``drawdowns``, ``weights``, ``interventions``, ``dashboard``).
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
