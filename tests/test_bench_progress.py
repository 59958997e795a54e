"""Long benchmarks say what they are doing: ``bench baselines`` had printed nothing for the
54 s of its default run."""

from __future__ import annotations

from allocgym.bench.baselines import run


def test_bench_baselines_reports_each_stage_as_it_starts() -> None:
    stages: list[str] = []
    rows = run((5,), (20,), 20, repeat=1, cvar=True, progress=stages.append)
    assert stages == [
        "HRP at N = 5 (ours, skfolio, PyPortfolioOpt)",
        "QP at N = 20",
        "QP with the CVaR term",
        "greedy rotation at 20 names",
    ]
    assert {r["bench"] for r in rows} == {"hrp", "qp", "greedy"}
