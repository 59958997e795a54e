"""Report files: markdown, self-contained HTML, results.json, non-trivial PNGs."""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from dataclasses import replace
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from allocgym import evaluation as ev
from allocgym import report
from allocgym.allocator import AllocationContext
from allocgym.config import load_config
from allocgym.data import load_market
from allocgym.report import format_interval, format_value, jsonable, metrics_table, write_report

TINY = [
    "data.source=synthetic",
    "data.synthetic.n_assets=6",
    "data.synthetic.n_days=520",
    "data.synthetic.n_sectors=3",
    "data.synthetic.seed=5",
    "data.splits.train_end=2001-01-31",
    "data.splits.validation_end=2001-06-29",
    "baselines.lookback=126",
    "baselines.rebalance_every=5",
]


class Fixed:
    def __init__(self, w: np.ndarray, name: str) -> None:
        self.w, self.name = w, name

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        return np.broadcast_to(self.w, (ctx.n_envs, ctx.n_assets)).copy()


class Policy:
    """An 'agent' trading every bar: it alternates between two books (so it has signals)."""

    def __init__(self, n: int, seed: int) -> None:
        self.name, self.group, self.seed = f"toy_seed{seed}", "toy", seed
        self.k, self.n = 0, n

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.k += 1
        a = np.full((obs.shape[0], self.n), -1.0, np.float32)
        a[:, (self.k // 3) % (self.n - 1)] = 1.0
        a[:, (self.k // 5 + 2) % (self.n - 1)] = 0.8
        return a


@pytest.fixture(scope="module")
def written(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ev.EvaluationResult, dict[str, Path]]:
    cfg = load_config(None, TINY)
    market = load_market(cfg.data)
    params = ev.evaluation_params(market, cfg)
    dim = params.action_spec.shape[0]
    allocs = [
        Policy(dim, 0),
        Policy(dim, 1),
        Fixed(np.full(6, 1 / 6), "equal_weight"),  # plays 1/N in the paired tests
        *ev.build_baselines(cfg, ["hrp"]).values(),
    ]
    result = ev.evaluate(allocs, params=params)
    out = tmp_path_factory.mktemp("report")
    return result, write_report(result, out)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.mark.parametrize(
    ("name", "min_w", "min_h"),
    [
        ("equity", 1000, 500),
        ("drawdowns", 1000, 400),
        ("weights", 1000, 550),
        ("interventions", 1000, 400),
        ("dashboard", 1300, 450),
    ],
)
def test_images_exist_and_are_not_trivial(written, name: str, min_w: int, min_h: int) -> None:
    _, paths = written
    p = paths[name]
    assert p.is_file() and p.suffix == ".png"
    w, h = png_size(p)
    assert w >= min_w and h >= min_h, (w, h)
    assert p.stat().st_size > 20_000  # a blank figure of this size compresses to a few KB
    img = mpimg.imread(p)[..., :3]
    assert img.std() > 0.05  # real content, not a flat canvas
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50


def test_html_is_self_contained(written) -> None:
    _, paths = written
    text = paths["html"].read_text()
    assert text.count("data:image/png;base64,") == 5
    assert 'src="plots/' not in text and "<table>" in text
    assert "toy (mean ± std, 2 seeds)" in text


def test_markdown_has_every_section_and_the_table(written) -> None:
    result, paths = written
    md = paths["markdown"].read_text()
    for section in ("## Metrics", "## Agent seeds", "## Risk-gate interventions by reason code",
                    "## Invariant breaches", "## Per-regime breakdown", "## Performance attribution",
                    "## Dashboard", "## Figures",
                    "## Statistical tests: Sharpe differences against 1/N, HRP and the best baseline",
                    "## Risk by regime: proposed vs held book"):  # fmt: skip
        assert section in md, section
    assert f"| {' | '.join(HEADER)} |" in md
    for bt in result.backtests:
        assert f"\n| {bt.name} | " in md
    assert "\n| toy (mean ± std, 2 seeds) | " in md
    assert "**0 breaches**" in md
    assert "(plots/weights.png)" in md


HEADER = [
    "Allocator", "Ann. return", "Ann. vol", "Sharpe", "Sortino", "Max DD", "Calmar", "CVaR95",
    "Turnover/yr", "Costs", "Gate cut: allocator-caused", "Gate cut: regime overlay",
    "Breaches", "HHI", "PSR", "DSR (N=2, seeds, weak)", "ΔSharpe vs 1/N [90% CI]", "p vs 1/N",
]  # fmt: skip
"""The metrics table's header for the fixture: two agent seeds and 1/N walked."""


def test_metrics_table_rows_written_out_by_hand(written, tmp_path: Path) -> None:
    """A small fixed result (one seed, 1/N and the seed group, table metrics and paired
    tests set by hand): every cell as a reader sees it, in the table and the markdown."""
    result, _ = written
    agent = dict(ann_return=0.1234, ann_volatility=0.2, sharpe=0.617, sortino=0.9,
                 max_drawdown=0.15, calmar=0.8227, cvar=0.031, turnover=4.5, costs=0.0012,
                 allocator_bars=0.26, overlay_bars=0.0, invariant_breaches=0, hhi=0.25,
                 psr=0.9312, dsr=0.5)  # fmt: skip
    one_n = dict(ann_return=-0.02, ann_volatility=0.1, sharpe=-0.2, sortino=float("nan"),
                 max_drawdown=0.3, calmar=-0.0667, cvar=0.0251, turnover=0.25, costs=4e-5,
                 allocator_bars=0.0, overlay_bars=0.1, invariant_breaches=0, hhi=1 / 6,
                 psr=0.3, dsr=None)  # fmt: skip
    group = {k: {"mean": v, "std": 0.5 * v} for k, v in agent.items()}

    def vs_1n(diff: float, lo: float, hi: float, p: float, verdict: str) -> dict:
        return {"equal_weight": {"reference": "equal_weight", "diff": diff, "ci_low": lo,
                                 "ci_high": hi, "p_value": p, "verdict": verdict,
                                 "sharpe_a": 0.6}}  # fmt: skip

    small = replace(
        result,
        backtests=[result.backtest("toy_seed0"), result.backtest("equal_weight")],
        metrics={
            "toy_seed0": {**result.metrics["toy_seed0"], **agent},
            "equal_weight": {**result.metrics["equal_weight"], **one_n},
        },
        groups={"toy": {**result.groups["toy"], **group}},
        dsr={**result.dsr, "n_trials": 2, "source": "agent seeds"},
        paired={**result.paired, "level": 0.9, "rows": {
            "toy_seed0": vs_1n(0.1, -0.2, 0.4, 0.5, "indistinguishable"),
            "toy (pooled, 2 seeds)": vs_1n(0.5, 0.2, 0.8, 0.0123, "better"),
        }},
    )  # fmt: skip
    rows = [
        ["toy_seed0", "12.34%", "20.00%", "0.62", "0.90", "15.00%", "0.82", "3.10%", "4.50",
         "0.12%", "26% of bars", "0% of bars", "0", "0.250", "0.93", "0.50",
         "+0.10 [-0.20, +0.40]", "0.500"],
        ["equal_weight", "-2.00%", "10.00%", "-0.20", "n/a", "30.00%", "-0.07", "2.51%", "0.25",
         "0.00%", "0% of bars", "10% of bars", "0", "0.167", "0.30", "n/a", "n/a", "n/a"],
        ["toy (mean ± std, 2 seeds)", "12.34% ± 6.17%", "20.00% ± 10.00%", "0.62 ± 0.31",
         "0.90 ± 0.45", "15.00% ± 7.50%", "0.82 ± 0.41", "3.10% ± 1.55%", "4.50 ± 2.25",
         "0.12% ± 0.06%", "26% of bars ± 13% of bars", "0% of bars ± 0% of bars", "0 ± 0",
         "0.250 ± 0.125", "0.93 ± 0.47", "0.50 ± 0.25", "+0.50 [+0.20, +0.80]", "0.012"],
    ]  # fmt: skip
    assert metrics_table(small) == (HEADER, rows)
    md = write_report(small, tmp_path)["markdown"].read_text()
    for cells in (HEADER, *rows):
        assert f"| {' | '.join(cells)} |" in md


def test_results_json_is_strict_json_with_series(written) -> None:
    result, paths = written
    data = json.loads(paths["results"].read_text())  # allow_nan=False on write: strict JSON
    assert set(data["series"]) == {bt.name for bt in result.backtests}
    assert data["groups"]["toy"]["n_seeds"] == 2
    assert data["dashboard"]["allocator"] == "toy_seed0"
    arrays = np.load(paths["arrays"])
    assert np.array_equal(arrays["hrp/returns"], result.backtest("hrp").returns)
    assert arrays["toy_seed0/weights"].shape == (124, 6)


def test_dashboard_flags_one_lead_per_cluster_and_signals(written) -> None:
    result, _ = written
    db = result.dashboard
    assert db["allocator"] == "toy_seed0"
    leads = [a for a in db["assets"] if a["lead"]]
    assert len(leads) == len(db["clusters"]) >= 1
    for c in db["clusters"]:
        assert c["lead"] in c["members"]
        members = [a for a in db["assets"] if a["symbol"] in c["members"]]
        assert c["gross"] == pytest.approx(sum(abs(a["weight"]) for a in members))
    bt = result.backtest("toy_seed0")
    assert np.allclose([a["weight"] for a in db["assets"]], bt.weights[-1])
    assert {a["signal"] for a in db["assets"]} <= {"BUY", "SELL", "HOLD"}
    assert any(a["signal"] != "HOLD" for a in db["assets"])
    for a in db["assets"]:
        assert (a["signal"] == "BUY") == (a["trade"] > 0)


def test_format_and_jsonable() -> None:
    assert format_value("ann_return", 0.1234) == "12.34%"
    assert format_value("sharpe", (1.234, 0.05)) == "1.23 ± 0.05"
    assert format_value("hhi", 0.05) == "0.050"
    assert format_value("invariant_breaches", 0) == "0"
    assert format_value("calmar", math.inf) == "inf"
    assert format_value("sharpe", float("nan")) == "n/a"
    assert jsonable({"a": np.float64("nan"), "b": np.int64(3), "c": (np.bool_(True),)}) == {
        "a": None,
        "b": 3,
        "c": [True],
    }


def test_report_shows_paired_tests_psr_and_the_dsr_source(written) -> None:
    result, paths = written
    md = paths["markdown"].read_text()
    header, rows = metrics_table(result)
    # the DSR column names its trial count and source; the seeds alone are flagged weak
    assert "DSR (N=2, seeds, weak)" in header and "PSR" in header
    assert "ΔSharpe vs 1/N [90% CI]" in header and "p vs 1/N" in header
    tests = result.paired["rows"]
    for row in rows:
        if row[0] == "equal_weight":  # never tested against itself
            assert row[-2:] == ["n/a", "n/a"]
    seed0 = tests["toy_seed0"]["equal_weight"]
    dagger = "†" if seed0["verdict"] == "unreliable" else ""  # no verdict: not calibrated
    assert rows[0][-2:] == [format_interval(seed0), f"{seed0['p_value']:.3f}{dagger}"]
    # a seed group's row carries its pooled portfolio's test
    pooled = tests["toy (pooled, 2 seeds)"]["equal_weight"]
    assert rows[-1][0].startswith("toy (mean ± std") and rows[-1][-2] == format_interval(pooled)
    # every agent (and the pooled group) gets a sentence with its verdict against 1/N
    words = {
        "better": "**beats 1/N**",
        "worse": "is **worse than 1/N**",
        "indistinguishable": "is **not distinguishable from 1/N**",
        "unreliable": "is **not judged against 1/N**",  # these toy walks are short
    }
    for name in ("toy_seed0", "toy_seed1", "toy (pooled, 2 seeds)"):
        entry = tests[name]["equal_weight"]
        assert f"`{name}` {words[entry['verdict']]}" in md
        if entry["verdict"] == "unreliable":
            assert entry["note"] and entry["note"] in md
    assert "DSR trials: N = 2, from the agent seeds evaluated together: **weak**" in md
    data = json.loads(paths["results"].read_text())
    assert data["paired_tests"]["rows"]["toy_seed0"]["equal_weight"]["p_value"] == pytest.approx(
        seed0["p_value"]
    )
    assert data["dsr"]["source"] == "agent seeds" and data["dsr"]["weak"] is True
    assert set(data["regime_risk"]) == {bt.name for bt in result.backtests}


def test_verdicts_in_words(written, tmp_path: Path) -> None:
    """Hand-set intervals: one containing 0, one below 0, one above 0."""
    result, _ = written

    def entry(diff: float, lo: float, hi: float, verdict: str) -> dict:
        return {"reference": "equal_weight", "diff": diff, "ci_low": lo, "ci_high": hi,
                "p_value": 0.5, "verdict": verdict, "sharpe_a": 0.1}  # fmt: skip

    rows = {
        "toy_seed0": {"equal_weight": entry(0.1, -0.2, 0.4, "indistinguishable")},
        "toy_seed1": {"equal_weight": entry(-0.6, -0.9, -0.3, "worse")},
        "toy (pooled, 2 seeds)": {"equal_weight": entry(0.5, 0.2, 0.8, "better")},
    }
    paired = {**result.paired, "rows": rows}
    md = write_report(replace(result, paired=paired), tmp_path)["markdown"].read_text()
    assert (
        "`toy_seed0` is **not distinguishable from 1/N**: the interval contains 0 "
        "(ΔSharpe +0.10 [-0.20, +0.40], p = 0.500)."
    ) in md
    assert "`toy_seed1` is **worse than 1/N**: the interval lies below 0" in md
    assert "`toy (pooled, 2 seeds)` **beats 1/N**: the interval lies above 0" in md


def test_regime_risk_table_lists_agents_and_references(written) -> None:
    result, paths = written
    md = paths["markdown"].read_text()
    section = md.split("## Risk by regime: proposed vs held book")[1].split("## ")[0]
    for name in ("toy_seed0", "toy_seed1", "equal_weight", "hrp"):
        for label, x in result.regime_risk[name].items():
            assert f"| {name} | {label} | {x['fraction']:.0%} | " in section
    assert "Proposed CVaR95" in section and "NaN proposals" in section
    assert f"the {result.meta['risk_window']} bars up to the decision bar" in section


def test_factor_attribution_and_risk_diagnostics_sections(written) -> None:
    """Every allocator's factor row ends in its net return (factors + specific + costs),
    and the diagnostics row shows its gross budget use and 1 - breach rate as coverage."""
    result, paths = written
    md = paths["markdown"].read_text()
    section = md.split("## Factor attribution")[1].split("\n## ")[0]
    diag = md.split("## Risk diagnostics")[1].split("\n## ")[0]
    for bt in result.backtests:
        fa = result.factor_attribution[bt.name]
        np.testing.assert_allclose(
            fa["per_period"].sum(axis=1) + fa["specific"], bt.asset_pnl.sum(axis=1), atol=1e-15
        )
        row = next(line for line in section.splitlines() if line.startswith(f"| {bt.name} |"))
        assert row.endswith(f"| {100 * bt.returns.sum():+.2f}% |")
        d = result.diagnostics[bt.name]
        used = np.abs(bt.weights).sum(axis=1)  # risk.max_gross is 1 in the fixture
        line = next(x for x in diag.splitlines() if x.startswith(f"| {bt.name} |"))
        assert f"| {100 * used.mean():.1f}% / {100 * used.max():.1f}% |" in line
        hist = result.var_backtest[bt.name]["historical"]
        assert d["var_coverage"]["historical"] == pytest.approx(1.0 - hist["rate"])
        assert f"{100 * (1.0 - hist['rate']):.1f}%" in line
    assert "principal components of the trailing window" in section
    assert result.meta["factor_source"] == "pca"
    every = result.meta["factor_refit_every"]
    assert every == 21 and "Every 21 bars the factor model is fitted" in section


def test_the_words_state_the_decision_interval_and_what_the_var_backtest_left_out(
    written,
) -> None:
    result, paths = written
    md = paths["markdown"].read_text()
    assert result.meta["decision_interval"] == 1 and "Agents decide every bar from" in md
    every5 = dataclasses.replace(result, meta={**result.meta, "decision_interval": 5})
    words = " ".join(b.text for b in report._overview_blocks(every5) if b.kind == "p")
    assert "Agents decide every 5 bars from" in words
    vb = result.var_backtest.values()
    flat, short = sum(x["n_flat"] for x in vb), sum(x["n_short_history"] for x in vb)
    assert f"Left out: {flat} all-cash allocator-bars and {short} whose" in md


def test_user_factors_from_the_cli_drive_the_attribution(tmp_path: Path) -> None:
    """``allocgym baselines --factors FILE``: the report's attribution uses the file's
    factors (the benchmark and one equal-weighted portfolio per sector)."""
    import pandas as pd
    from typer.testing import CliRunner

    from allocgym.cli import app

    cfg = load_config(None, TINY)
    market = load_market(cfg.data)
    sectors = np.array(market.sectors)
    cols = {"bench": market.benchmark_returns}
    for s in sorted(set(sectors)):
        cols[f"sector_{s}"] = market.returns[:, sectors == s].mean(axis=1)
    frame = pd.DataFrame(cols)
    frame.insert(0, "date", [str(d)[:10] for d in market.dates])
    path = tmp_path / "factors.csv"
    frame.to_csv(path, index=False)
    args = ["baselines", "--only", "equal_weight", "--factors", str(path), "--out",
            str(tmp_path / "out")]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["meta"]["factor_source"] == "user"
    fa = saved["factor_attribution"]["equal_weight"]
    assert fa["factors"] == list(cols)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "user factors given with --factors" in md
    assert "| Allocator | bench | sector_" in md


def test_metrics_table_headers_follow_the_configured_levels(written) -> None:
    """The CVaR column and the paired interval carry the levels in force (97.5% CVaR, an
    80% interval), written exactly, not rounded to whole percents."""
    result, _ = written
    other = replace(
        result,
        meta={**result.meta, "cvar_alpha": 0.975},
        paired={**result.paired, "level": 0.8},
    )
    header, _ = metrics_table(other)
    assert "CVaR97.5" in header and "ΔSharpe vs 1/N [80% CI]" in header
    assert "CVaR95" not in header and "[90% CI]" not in " ".join(header)


def test_a_ledger_of_seeds_is_labelled_weak_in_the_header_and_the_words() -> None:
    from allocgym.report import _dsr_label, _dsr_source_words

    keyed = {"source": "ledger", "n_trials": 5, "ledger": "runs/trials.jsonl", "n_trial_sharpes": 5}
    assert _dsr_label({**keyed, "weak": False}) == "DSR (N=5, ledger)"
    assert _dsr_label({**keyed, "weak": True}) == "DSR (N=5, ledger of seeds, weak)"
    assert "**weak**" not in _dsr_source_words({**keyed, "weak": False})
    words = _dsr_source_words({**keyed, "weak": True})
    assert words.startswith("the trials recorded in the trials ledger `runs/trials.jsonl`")
    assert "**weak**, since those trials are the seeds of one configuration" in words


def test_intervals_keep_the_digits_a_small_difference_needs() -> None:
    assert format_interval({"diff": 0.123, "ci_low": -0.3, "ci_high": 0.51}) == (
        "+0.12 [-0.30, +0.51]"
    )
    # a significant but small difference does not print as +0.00 [+0.00, +0.01]
    assert format_interval({"diff": 0.0041, "ci_low": 0.0012, "ci_high": 0.0071}) == (
        "+0.004 [+0.001, +0.007]"
    )
    assert format_interval({"diff": 0.00041, "ci_low": 0.0002, "ci_high": 0.0006}) == (
        "+0.0004 [+0.0002, +0.0006]"
    )
    assert format_interval({"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0}) == (
        "+0.0000 [+0.0000, +0.0000]"
    )
    assert format_interval({"diff": 0.2, "ci_low": None, "ci_high": 0.1}) == "+0.20 [n/a]"
