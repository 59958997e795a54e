"""A report a portfolio manager can read: the benchmark and active metrics, colours that
single out the agents, 1/N, HRP, QP and the benchmark, the gate column split in two, the
evaluated checkpoint; and the HTML opened in a real headless browser."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tiny_configs import TINY_DATA

from allocgym.baselines.registry import build_baselines
from allocgym.config import load_config
from allocgym.data import load_market
from allocgym.evaluation import active_metrics, evaluate

TINY = [*TINY_DATA, "baselines.rebalance_every=5"]


def test_active_metrics_by_hand() -> None:
    r = np.array([0.01, -0.02, 0.03])
    b = np.array([0.0, -0.01, 0.01])
    got = active_metrics(r, b, periods_per_year=252)
    # active = [0.01, -0.01, 0.02]: mean 0.02/3, deviations [1/300, -5/300, 4/300]
    sd = math.sqrt(((1 / 300) ** 2 + (5 / 300) ** 2 + (4 / 300) ** 2) / 2)
    assert got["tracking_error"] == pytest.approx(sd * math.sqrt(252), rel=1e-12)
    assert got["information_ratio"] == pytest.approx((0.02 / 3) / sd * math.sqrt(252), rel=1e-12)
    grow_r = (1.01 * 0.98 * 1.03) ** (252 / 3) - 1
    grow_b = (1.0 * 0.99 * 1.01) ** (252 / 3) - 1
    assert got["active_return"] == pytest.approx(grow_r - grow_b, rel=1e-12)
    same = active_metrics(b, b)
    assert same["active_return"] == 0.0 and same["tracking_error"] == 0.0
    assert math.isnan(same["information_ratio"])


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from allocgym.report import write_report

    cfg = load_config(None, TINY)
    market = load_market(cfg.data)
    names = ["equal_weight", "hrp", "qp", "min_variance", "inverse_volatility", "max_sharpe"]
    result = evaluate(list(build_baselines(cfg, names).values()), market, cfg, "test")
    out = tmp_path_factory.mktemp("report")
    write_report(result, out)
    return out


def test_report_has_the_benchmark_the_gate_split_and_readable_colours(report_dir: Path) -> None:
    import json

    from allocgym.plots import BENCHMARK_STYLE, KEY_BASELINE_COLORS

    res = json.loads((report_dir / "results.json").read_text())
    bench = res["benchmark"]
    assert bench["name"].startswith("equal-weighted mean of the assets")  # synthetic data
    ew = res["metrics"]["equal_weight"]
    assert {"active_return", "tracking_error", "information_ratio"} <= set(ew)
    r = np.asarray(res["series"]["equal_weight"]["returns"])
    b = np.asarray(bench["returns"])
    assert len(b) == len(r) and bench["dates"] == res["series"]["equal_weight"]["dates"]
    assert ew["tracking_error"] == pytest.approx(np.std(r - b, ddof=1) * np.sqrt(252), rel=1e-9)
    md = (report_dir / "report.md").read_text()
    assert "## Against the benchmark: equal-weighted mean of the assets" in md
    assert "Gate cut: allocator-caused" in md and "Gate cut: regime overlay" in md
    assert "Gate interv." not in md
    # agents and key baselines stand out, the rest is faded
    from allocgym.evaluation import EvaluationResult  # noqa: F401  (type in _styles)
    from allocgym.plots import _styles

    fake = type("R", (), {})()
    fake.backtests = [
        type("B", (), {"name": n, "kind": "baseline"})()
        for n in ("equal_weight", "hrp", "qp", "min_variance")
    ]
    styles = _styles(fake)
    assert styles["hrp"]["color"] == KEY_BASELINE_COLORS["hrp"]
    assert styles["min_variance"]["alpha"] < 0.5 and styles["min_variance"]["linewidth"] < 1
    assert BENCHMARK_STYLE["linestyle"] == "--"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="the browser test needs Debian's chromium (make setup / .ci/run install it: "
    "apt-get install -y chromium)",
)
def test_html_report_renders_in_a_headless_browser(report_dir: Path, tmp_path: Path) -> None:
    """The HTML opens in chromium: the screenshot is not blank, every image decoded and
    every table has rows (checked by a script in the page, read back from the DOM)."""
    from PIL import Image

    html = (report_dir / "report.html").read_text()
    probe = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var tables = Array.from(document.querySelectorAll('table'));
  var empty = tables.filter(function (t) { return t.querySelectorAll('tbody tr').length === 0; });
  var div = document.createElement('div');
  div.id = 'probe';
  div.textContent = 'PROBE images=' + imgs.length + ' broken=' + broken.length +
                    ' tables=' + tables.length + ' empty=' + empty.length;
  document.body.appendChild(div);
});
</script>"""
    page = tmp_path / "report_probe.html"
    page.write_text(html.replace("</body>", probe + "</body>"))
    profile = tmp_path / "profile"
    flags = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
    ]  # fmt: skip
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
        env=env,
    )  # fmt: skip
    marker = '<div id="probe">'
    assert marker in dom.stdout, dom.stderr[-2000:]
    line = dom.stdout[dom.stdout.index(marker) + len(marker) :].split("<")[0]
    counts = dict(kv.split("=") for kv in line.split()[1:])
    assert int(counts["images"]) >= 4 and counts["broken"] == "0", line
    assert int(counts["tables"]) >= 5 and counts["empty"] == "0", line
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1300,2400", page.as_uri()],
        capture_output=True, text=True, timeout=120, env=env, check=True,
    )  # fmt: skip
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert img.shape == (2400, 1300)
    assert img.std() > 20.0  # text, tables and charts, not a blank page
    assert (img < 128).mean() > 0.01  # dark ink somewhere
    keep = os.environ.get("ALLOCGYM_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
