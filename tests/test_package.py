"""Packaging (one namespace, wheel contents) and the CLI shell (data info, quickstart, --help)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from allocgym.cli import app, main
from allocgym.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200", "NO_COLOR": "1"}
runner = CliRunner()


def test_subpackages_import_into_one_namespace() -> None:
    import allocgym
    import allocgym.agents
    import allocgym.baselines
    import allocgym.envs

    assert Path(allocgym.envs.__file__).parent.name == "envs"
    assert Path(allocgym.agents.__file__).parent.name == "agents"
    assert Path(allocgym.baselines.__file__).parent.name == "baselines"
    assert (Path(allocgym.__file__).parent / "py.typed").is_file()


def test_wheel_contains_every_subpackage_and_imports(tmp_path: Path) -> None:
    src = tmp_path / "src_tree"
    src.mkdir()
    # Build from a copy so the shared working tree gets no build/ or egg-info litter.
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("envs", "agents", "baselines"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    shutil.copytree(ROOT / "src" / "allocgym", src / "src" / "allocgym", ignore=ignore)
    out = tmp_path / "dist"
    # --skip-dependency-check: setuptools >= 70.1 builds wheels without the `wheel` package.
    cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--skip-dependency-check"]
    proc = subprocess.run(
        [*cmd, "--outdir", str(out), str(src)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = out.glob("allocgym-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "allocgym/__init__.py",
        "allocgym/py.typed",
        "allocgym/envs/__init__.py",
        "allocgym/agents/__init__.py",
        "allocgym/baselines/__init__.py",
        "allocgym/bench/__init__.py",
        "allocgym/data.py",
        "allocgym/measures.py",
    ):
        assert required in names, f"{required} missing from {wheel.name}"
    # A pure-Python wheel unpacked onto sys.path is an install: import from it, not the repo.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import allocgym, allocgym.envs, allocgym.agents, allocgym.baselines;"
        "print(allocgym.__file__); print(allocgym.envs.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr
    files = proc.stdout.split()
    assert all(Path(f).is_relative_to(site) for f in files), files


# ----------------------------------------------------------------------------- CLI


def test_data_info_synthetic() -> None:
    result = runner.invoke(
        app,
        ["data", "info", "--source", "synthetic", "--set", "data.synthetic.n_days=300"],
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    assert "20 symbols, 300 rows, 2000-01-03..2001-02-23" in result.output
    assert "defaulted fields: none" in result.output
    assert "true regimes (bars): calm_trend" in result.output
    assert "S000" in result.output and "sector_3" in result.output


def test_data_info_sp500() -> None:
    result = runner.invoke(app, ["data", "info", "--source", "sp500"], env=WIDE)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "20 symbols, 8313 rows, 1990-01-02..2022-12-28" in out
    assert "defaulted fields: volume, spread_bps" in out
    assert "note: S&P 500 sample has no volume, spread_bps" in out
    assert "AAPL" in out and "Information Technology" in out


def test_data_info_csv_path(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    idx = pd.bdate_range("2021-01-01", periods=260)
    prices = pd.DataFrame({"AAA": np.linspace(10, 20, 260), "BBB": 5.0}, index=idx)
    prices.iloc[:10, 1] = np.nan
    path = tmp_path / "px.csv"
    prices.rename_axis("date").to_csv(path)
    result = runner.invoke(app, ["data", "info", str(path)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "2 symbols, 260 rows, 2021-01-01..2021-12-30" in result.output
    assert "defaulted fields: volume, spread_bps, sectors, benchmark_returns" in result.output
    assert "missing closes: 10 cells" in result.output


@pytest.mark.slow
def test_quickstart_end_to_end_on_the_real_data(tmp_path: Path) -> None:
    """The main job exactly as ``make demo`` runs it (default budget), into a temp dir."""
    run = tmp_path / "qs"
    result = runner.invoke(app, ["quickstart", "--run-dir", str(run)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "20 symbols, 8313 rows, 1990-01-02..2022-12-28" in result.output
    assert "train: 1990-01-02..2010-12-31" in result.output
    assert "test: 2015-01-09..2022-12-28" in result.output
    for name in ("report.md", "report.html", "results.json"):
        assert (run / name).stat().st_size > 1000


def test_cli_errors_are_reported_not_raised(monkeypatch, capsys) -> None:
    result = runner.invoke(app, ["data", "info", "--source", "csv"], env=WIDE)
    assert isinstance(result.exception, ConfigError)
    monkeypatch.setattr(sys, "argv", ["allocgym", "data", "info", "--source", "csv"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "error: invalid configuration" in capsys.readouterr().err


def _commands(group, path: tuple[str, ...] = ()):
    # typer vendors click, so walk the tree by duck typing rather than click's classes.
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*path, name))


def test_every_command_help_describes_every_option() -> None:
    root = typer.main.get_command(app)
    assert hasattr(root, "commands")
    top = runner.invoke(app, ["--help"], env=WIDE)
    assert top.exit_code == 0
    for name in root.commands:
        assert name in top.output
    commands = list(_commands(root))
    assert {("data", "info"), ("quickstart",)} <= {path for path, _ in commands}
    for path, cmd in commands:
        result = runner.invoke(app, [*path, "--help"], env=WIDE)
        where = " ".join(path)
        assert result.exit_code == 0, f"{where}: {result.output}"
        assert (cmd.help or "").strip(), f"`allocgym {where}` has no help text"
        for param in cmd.params:
            if getattr(param, "hidden", False):
                continue
            assert (getattr(param, "help", None) or "").strip(), (
                f"`allocgym {where}`: {param.name} has no help text"
            )
            if param.param_type_name == "option":
                for opt in param.opts:
                    assert opt in result.output, f"`allocgym {where} --help` does not list {opt}"
            else:
                assert str(param.name).lower() in result.output.lower()
