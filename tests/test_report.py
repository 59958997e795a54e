"""Report files: markdown, self-contained HTML, results.json, non-trivial PNGs."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from allocgym import evaluation as ev
from allocgym.allocator import AllocationContext
from allocgym.config import load_config
from allocgym.data import load_market
from allocgym.report import format_value, jsonable, metrics_table, write_report

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
        Fixed(np.full(6, 1 / 6), "equal"),
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
                    "## Dashboard", "## Figures"):  # fmt: skip
        assert section in md, section
    header, rows = metrics_table(result)
    assert "| " + " | ".join(header) + " |" in md
    for row in rows:
        assert "| " + " | ".join(row) + " |" in md
    assert "**0 breaches**" in md
    assert "(plots/weights.png)" in md


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
