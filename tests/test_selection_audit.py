"""The selection audit: every run of an allocator that selects names writes one record per
rebalance into ``selection_audit.json`` beside the report, and the report links it."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

from tiny_configs import TINY_DATA
from typer.testing import CliRunner

TINY = [*TINY_DATA, "baselines.rebalance_every=5"]


def test_baselines_cli_writes_one_record_per_rebalance(tmp_path: Path) -> None:
    """ "**Audit Trace**: Every optimization run is logged in `selection_audit.json`,
    documenting the regime score and active constraints." The cluster barbell's records
    carry the regime score, active constraints, clusters, sleeve and lead assets; greedy
    rotation's the selected and exited names with the exit reason. An allocator that does
    not select names (1/N) has none."""
    from allocgym.cli import app

    sets = [x for item in TINY for x in ("--set", item)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(
            app, ["baselines", "--only", "greedy,cluster_barbell,1/n", "--out", str(tmp_path),
                  *sets],
        )  # fmt: skip
    assert res.exit_code == 0, res.output
    audit = json.loads((tmp_path / "selection_audit.json").read_text())
    series = json.loads((tmp_path / "results.json").read_text())["series"]
    assert sorted(audit) == ["cluster_barbell", "greedy"]
    for name, records in audit.items():
        n_steps = len(series[name]["returns"])
        assert len(records) == math.ceil(n_steps / 5), name  # rebalance_every = 5
        bars = [r["bar"] for r in records]
        assert bars == sorted(bars) and len(set(bars)) == len(bars)
        assert all(b - bars[0] == 5 * k for k, b in enumerate(bars))
    for rec in audit["cluster_barbell"]:
        assert {"regime_score", "active_constraints", "clusters", "sleeve_clusters",
                "lead_assets", "barbell_state"} <= set(rec)  # fmt: skip
        members = sorted(s for c in rec["clusters"] for s in c)
        assert len(members) == len(set(members)) and set(rec["lead_assets"]) <= set(members)
    held: set[str] = set()
    for rec in audit["greedy"]:
        assert set(rec["selected"]) <= set(rec["held"])
        assert set(rec["exited"]) <= held  # only names held before can exit
        assert set(rec["exited"].values()) <= {"cut", "rotated_out", "atr_exit", "dead_money"}
        held = set(rec["held"])
    assert any(rec["selected"] for rec in audit["greedy"])
    md = (tmp_path / "report.md").read_text()
    assert "## Selection audit" in md and "[selection_audit.json](selection_audit.json)" in md
    assert 'href="selection_audit.json"' in (tmp_path / "report.html").read_text()
