"""Report figures (matplotlib, Agg backend): equity, drawdowns, weights, interventions, dashboard.

Every function draws from an :class:`~allocgym.evaluation.EvaluationResult` (or one of its
backtests) and writes one PNG; none computes a metric of its own (drawdowns come from
:func:`allocgym.measures.drawdowns`). Agents are drawn thick and first in the legend;
1/N, HRP and QP in their own strong colours; the benchmark as a dashed black line; every
other baseline thin and faded, so the few lines a reader compares stand out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from allocgym import measures
from allocgym.evaluation import GATE_REASON_NAMES
from allocgym.regime import REGIME_LABELS

if TYPE_CHECKING:
    from allocgym.evaluation import Backtest, EvaluationResult

__all__ = [
    "REGIME_COLORS",
    "plot_dashboard",
    "plot_drawdowns",
    "plot_equity",
    "plot_interventions",
    "plot_pareto_front",
    "plot_weights",
    "write_plots",
]

REGIME_COLORS: dict[str, str] = {
    "trend": "#2ca02c",
    "mean_reversion": "#1f77b4",
    "high_volatility": "#d62728",
    "uncertain": "#9a9a9a",
}
"""Shading colour of each regime label."""

_DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _date_axis(ax: Any) -> None:
    loc = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.grid(True, alpha=0.3, linewidth=0.6)


def _ordered(result: EvaluationResult) -> list[Backtest]:
    agents = [b for b in result.backtests if b.kind == "agent"]
    return agents + [b for b in result.backtests if b.kind != "agent"]


KEY_BASELINE_COLORS: dict[str, str] = {
    "equal_weight": "#1f77b4",  # blue
    "hrp": "#2ca02c",  # green
    "qp": "#9467bd",  # purple
}
"""Baselines drawn in strong colours (the references every agent is tested against)."""

AGENT_COLORS: tuple[str, ...] = ("#d62728", "#ff7f0e", "#8c564b", "#e377c2", "#bcbd22")
"""Agents: warm, saturated colours (red first), thick lines."""

BENCHMARK_STYLE: dict[str, Any] = {
    "color": "black", "linewidth": 1.6, "linestyle": "--", "zorder": 9,
}  # fmt: skip
"""The benchmark: dashed black."""

_FADED = ("#8c8c8c", "#a6a6a6", "#7a8a99", "#99897a", "#8a997a", "#9a7a99")


def _styles(result: EvaluationResult) -> dict[str, dict[str, Any]]:
    """Line style per backtest: agents warm and thick, the key baselines (1/N, HRP, QP) in
    strong colours, every other baseline thin, grey and faded."""
    agents = [b for b in result.backtests if b.kind == "agent"]
    base = [b for b in result.backtests if b.kind != "agent"]
    out: dict[str, dict[str, Any]] = {}
    for i, b in enumerate(agents):
        c = AGENT_COLORS[i % len(AGENT_COLORS)]
        out[b.name] = {"color": c, "linewidth": 2.4 if i == 0 else 1.8, "zorder": 20 - i}
    faded = 0
    for b in base:
        if b.name in KEY_BASELINE_COLORS:
            out[b.name] = {"color": KEY_BASELINE_COLORS[b.name], "linewidth": 1.7, "zorder": 8}
        else:
            out[b.name] = {"color": _FADED[faded % len(_FADED)], "linewidth": 0.9,
                           "alpha": 0.45, "zorder": 2}  # fmt: skip
            faded += 1
    return out


def _benchmark(result: EvaluationResult) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(dates, returns, label) of the benchmark series, or None."""
    b = result.benchmark
    if not b or not b.get("returns"):
        return None
    dates = np.array(b["dates"], dtype="datetime64[ns]")
    return dates, np.asarray(b["returns"], dtype=np.float64), f"{b['name']} (benchmark)"


def plot_equity(result: EvaluationResult, path: str | Path) -> Path:
    """Growth of 1 (equity over starting equity) of every allocator, log scale."""
    fig, ax = plt.subplots(figsize=(11, 5.5))
    styles = _styles(result)
    lowest, highest = 1.0, 1.0
    for bt in _ordered(result):
        if bt.n_steps == 0:
            continue
        growth = np.concatenate([[1.0], bt.equity / bt.initial_equity])
        ax.plot(_from_start(result, bt.dates), growth, label=bt.name, **styles[bt.name])
        lowest, highest = min(lowest, growth.min()), max(highest, growth.max())
        if bt.wiped_out_at is not None:
            when = bt.dates[bt.wiped_out_at]
            ax.axvline(when, color=styles[bt.name].get("color", "black"), ls=":", lw=1)
            ax.annotate(f"{bt.name} wiped out", (when, 1.0), fontsize=7, rotation=90,
                        va="bottom", ha="right")  # fmt: skip
    bench = _benchmark(result)
    if bench is not None:
        b_dates, b_ret, b_label = bench
        growth = np.concatenate([[1.0], np.cumprod(1.0 + b_ret)])
        ax.plot(_from_start(result, b_dates), growth, label=b_label, **BENCHMARK_STYLE)
    # log scale only pays off over a wide range, and cannot show a book at or below 0
    if lowest > 0.0 and highest / lowest > 4.0:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.2g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.2g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        scale = "log scale, "
    else:
        scale = ""
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    _date_axis(ax)
    ax.set_ylabel(f"growth of 1 ({scale}net of costs)")
    ax.set_title(_title(result, "Equity curves"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _save(fig, Path(path))


def _from_start(result: EvaluationResult, dates: np.ndarray) -> np.ndarray:
    """``dates`` (of the bars each step fills on) after the bar the walk starts on: the
    growth of 1 before the first fill."""
    start = result.meta.get("walk_start")
    first = dates[0] - np.timedelta64(1, "D") if start is None else np.datetime64(start, "ns")
    return np.concatenate([[first], dates])


def plot_drawdowns(result: EvaluationResult, path: str | Path) -> Path:
    """Drawdown from the running peak of every allocator (``measures.drawdowns``)."""
    fig, ax = plt.subplots(figsize=(11, 4.5))
    styles = _styles(result)
    for bt in _ordered(result):
        if bt.n_steps == 0:
            continue
        ax.plot(bt.dates, -100.0 * measures.drawdowns(bt.returns), label=bt.name, **styles[bt.name])
    bench = _benchmark(result)
    if bench is not None:
        b_dates, b_ret, b_label = bench
        ax.plot(b_dates, -100.0 * measures.drawdowns(b_ret), label=b_label, **BENCHMARK_STYLE)
    _date_axis(ax)
    ax.set_ylabel("drawdown (%)")
    ax.set_title(_title(result, "Drawdowns"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _save(fig, Path(path))


def _regime_spans(ax: Any, bt: Backtest, alpha: float) -> None:
    """Shade each bar's regime over the axes' full height (one mesh, bar-edge aligned)."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    if bt.n_steps == 0:
        return
    x = mdates.date2num(bt.dates)
    mid = (x[1:] + x[:-1]) / 2.0
    first = x[0] - (x[1] - x[0]) / 2.0 if x.size > 1 else x[0] - 0.5
    last = x[-1] + (x[-1] - x[-2]) / 2.0 if x.size > 1 else x[-1] + 0.5
    edges = np.concatenate([[first], mid, [last]])
    cmap = ListedColormap([REGIME_COLORS[r] for r in REGIME_LABELS])
    norm = BoundaryNorm(np.arange(len(REGIME_LABELS) + 1) - 0.5, cmap.N)
    codes = np.ma.masked_less(bt.regime.astype(float)[None, :], 0)
    ax.pcolormesh(edges, [0.0, 1.0], codes, cmap=cmap, norm=norm, alpha=alpha,
                  transform=ax.get_xaxis_transform(), zorder=0, linewidth=0,
                  antialiased=False, rasterized=True)  # fmt: skip


def plot_weights(bt: Backtest, path: str | Path, max_named: int = 20) -> Path:
    """Stacked area of the held book (and cash) over time, with the regime shaded.

    The ``max_named - 1`` largest average positions are drawn individually, the rest
    summed as ``other``; cash (``1 - sum w``, long-only books) is the white top layer.
    """
    fig, (strip, ax) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [1, 12], "hspace": 0.04}
    )
    w = np.clip(bt.weights, 0.0, None)
    order = np.argsort(-w.mean(axis=0), kind="stable")
    keep = order[: max_named - 1] if w.shape[1] > max_named else order
    layers = [w[:, i] for i in keep]
    labels = [bt.symbols[i] for i in keep]
    rest = np.setdiff1d(np.arange(w.shape[1]), keep)
    if rest.size:
        layers.append(w[:, rest].sum(axis=1))
        labels.append(f"other ({rest.size})")
    cmap = plt.get_cmap("tab20b")  # kept apart from the regime colours
    colors = [cmap(i % 20) for i in range(len(layers))]
    _regime_spans(ax, bt, 0.18)
    ax.stackplot(bt.dates, np.vstack(layers), labels=labels, colors=colors, alpha=0.9, linewidth=0)
    ax.set_ylim(0, max(1.0, float(w.sum(axis=1).max()) * 1.02))
    ax.set_ylabel("weight (fraction of equity); unfilled = cash")
    _date_axis(ax)
    _regime_spans(strip, bt, 0.9)
    strip.set_yticks([])
    strip.set_ylabel("regime", rotation=0, ha="right", va="center", fontsize=8)
    strip.set_title(f"{bt.name}: held book over time ({bt.split} split)")
    handles, names = ax.get_legend_handles_labels()
    regime_handles = [Patch(color=REGIME_COLORS[r], alpha=0.6, label=r) for r in REGIME_LABELS]
    ax.legend(handles[::-1] + regime_handles, names[::-1] + list(REGIME_LABELS),
              loc="upper left", bbox_to_anchor=(1.01, 1.08), fontsize=7, frameon=False,
              ncol=1)  # fmt: skip
    return _save(fig, Path(path))


def _month_index(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    months = dates.astype("datetime64[M]")
    uniq, inv = np.unique(months, return_inverse=True)
    return uniq, inv


def plot_interventions(bt: Backtest, path: str | Path) -> Path:
    """Gate interventions by reason code per month (symbols carrying each code, summed)."""
    cols = [i for i, n in enumerate(bt.reason_names) if n in GATE_REASON_NAMES]
    counts = bt.reason_counts[:, cols]
    names = [bt.reason_names[i] for i in cols]
    used = counts.sum(axis=0) > 0
    fig, ax = plt.subplots(figsize=(11, 4.5))
    if bt.n_steps and used.any():
        months, inv = _month_index(bt.dates)
        monthly = np.zeros((months.size, counts.shape[1]))
        np.add.at(monthly, inv, counts)
        x = months.astype("datetime64[D]") + np.timedelta64(14, "D")
        bottom = np.zeros(months.size)
        cmap = plt.get_cmap("tab20")
        for j in np.flatnonzero(used):
            ax.bar(x, monthly[:, j], width=25, bottom=bottom, label=names[j], color=cmap(j % 20),
                   linewidth=0)  # fmt: skip
            bottom += monthly[:, j]
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no gate interventions", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
    _date_axis(ax)
    ax.set_ylabel("symbol-bars per month")
    ax.set_title(f"{bt.name}: risk-gate interventions by reason code")
    return _save(fig, Path(path))


def plot_dashboard(dashboard: dict[str, Any], path: str | Path) -> Path:
    """Cluster dashboard: concentration bars per cluster and per asset, latest signals.

    Lead assets (best cumulative return of their cluster) are marked with a star.
    """
    clusters = dashboard.get("clusters", [])
    # assets grouped by cluster (then largest weight first) so the colours form blocks
    assets = sorted(dashboard.get("assets", []), key=lambda a: (a["cluster"], -a["weight"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, max(4.5, 0.28 * len(assets) + 1.5)),
                             gridspec_kw={"width_ratios": [1.1, 1, 1], "wspace": 0.45})  # fmt: skip
    cmap = plt.get_cmap("tab10")
    # (a) clusters
    ax = axes[0]
    if clusters:
        y = np.arange(len(clusters))
        gross = [c["gross"] * 100 for c in clusters]
        ax.barh(y, gross, color=[cmap(c["id"] % 10) for c in clusters])
        labels = [
            f"C{c['id']} ★{c['lead']}"
            + (f" +{len(c['members']) - 1}" if len(c["members"]) > 1 else "")
            for c in clusters
        ]
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        cap = dashboard.get("cluster_cap")
        if cap is not None:
            ax.axvline(
                cap * 100, color="red", linestyle="--", linewidth=1, label=f"cluster cap {cap:.0%}"
            )
            ax.legend(fontsize=8, loc="lower right")
        for yi, g in zip(y, gross, strict=True):
            ax.text(g, yi, f" {g:.1f}%", va="center", fontsize=7)
    ax.set_xlabel("gross weight (% of equity)")
    ax.set_title("Concentration per cluster", fontsize=10)
    # (b) assets
    ax = axes[1]
    if assets:
        y = np.arange(len(assets))
        ax.barh(y, [a["weight"] * 100 for a in assets],
                color=[cmap(a["cluster"] % 10) if a["cluster"] >= 0 else "grey" for a in assets])  # fmt: skip
        ax.set_yticks(y, [("★ " if a["lead"] else "") + a["symbol"] for a in assets], fontsize=8)
        ax.invert_yaxis()
        cap = dashboard.get("symbol_cap")
        if cap is not None:
            ax.axvline(
                cap * 100, color="red", linestyle="--", linewidth=1, label=f"symbol cap {cap:.0%}"
            )
            ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("weight (% of equity)")
    ax.set_title("Concentration per asset (colour = cluster)", fontsize=10)
    # (c) signals
    ax = axes[2]
    if assets:
        y = np.arange(len(assets))
        tr = np.array([a["trade"] * 100 for a in assets])
        colors = ["#2ca02c" if v > 0 else "#d62728" if v < 0 else "lightgrey" for v in tr]
        ax.barh(y, tr, color=colors)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(y, [f"{'★ ' if a['lead'] else ''}{a['symbol']} {a['signal']}" for a in assets],
                      fontsize=8)  # fmt: skip
        ax.invert_yaxis()
    ax.set_xlabel("traded weight (% of equity)")
    ax.set_title(f"Latest rebalancing signals ({dashboard.get('signal_date', '')})", fontsize=10)
    fig.suptitle(
        f"{dashboard.get('allocator', '')} dashboard, book at {dashboard.get('date', '')}  "
        "(★ = lead asset of its cluster; BUY green, SELL red)",
        fontsize=11,
    )
    return _save(fig, Path(path))


def plot_pareto_front(
    name: str, front: dict[str, Any], path: str | Path, periods_per_year: float = 252.0
) -> Path:
    """The Pareto allocator's last front: annualised expected return (per-bar mean times
    ``periods_per_year``) against CVaR, coloured by the drawdown proxy, the chosen point
    and the CVaR target marked."""
    pts = np.asarray(front["points"], dtype=np.float64)  # columns: return, CVaR, DD, cost
    ann = 100 * periods_per_year
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    order = np.argsort(pts[:, 1])
    ax.plot(100 * pts[order, 1], ann * pts[order, 0], color="#bbbbbb", lw=1, zorder=1)
    sc = ax.scatter(100 * pts[:, 1], ann * pts[:, 0], c=100 * pts[:, 2], cmap="viridis",
                    s=30 + 4e4 * pts[:, 3], zorder=2, edgecolors="black", linewidths=0.4)  # fmt: skip
    k = int(front["chosen"])
    ax.scatter([100 * pts[k, 1]], [ann * pts[k, 0]], marker="*", s=320, color="#d62728",
               edgecolors="black", zorder=3, label="chosen point")  # fmt: skip
    ax.axvline(100 * float(front["cvar_target"]), color="#d62728", ls="--", lw=1,
               label="CVaR target")  # fmt: skip
    fig.colorbar(sc, ax=ax, label="drawdown proxy (%)")
    ax.set_xlabel(f"CVaR{100 * float(front.get('alpha', 0.95)):g}, one bar (%)")
    ax.set_ylabel(f"expected return (% per year, x{periods_per_year:g})")
    when = f" at {front['date']}" if front.get("date") else ""
    ax.set_title(f"{name}: Pareto front of the last rebalance{when}")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, Path(path))


def _title(result: EvaluationResult, what: str) -> str:
    m = result.meta
    return f"{what}: {m.get('market', '')}, {m.get('split', '')} split, net of costs"


def write_plots(result: EvaluationResult, folder: str | Path) -> dict[str, Path]:
    """Write every report figure into ``folder``; returns name -> path."""
    d = Path(folder)
    prim = result.primary
    out = {
        "equity": plot_equity(result, d / "equity.png"),
        "drawdowns": plot_drawdowns(result, d / "drawdowns.png"),
        "weights": plot_weights(prim, d / "weights.png"),
        "interventions": plot_interventions(prim, d / "interventions.png"),
    }
    if result.dashboard:
        out["dashboard"] = plot_dashboard(result.dashboard, d / "dashboard.png")
    for name, front in result.pareto_fronts.items():
        out[f"pareto_front_{name}"] = plot_pareto_front(
            name, front, d / f"pareto_{name}.png", result.meta.get("periods_per_year", 252.0)
        )
    return out
