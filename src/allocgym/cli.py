"""``allocgym`` command line: thin shells over the library (no arithmetic here)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="allocgym: RL allocation environment with deterministic risk gates, baselines, "
    "SB3 agents and a frozen ONNX policy.",
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(help="Inspect market data sources.", no_args_is_help=True)
bench_app = typer.Typer(
    help="Benchmarks: medians and ratios against a reference measured in the same run.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file; omitted = embedded defaults."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set risk.max_gross=0.8 (repeatable)."),
]


def _config(config: Path | None, overrides: list[str] | None):
    from allocgym.config import load_config

    return load_config(config, overrides or [])


# [cli:commands] -- each feature adds its commands below this line.


# [cli:data] data info and the interim quickstart (issue 2).


class DataSource(StrEnum):
    """Market data sources of ``allocgym data info``."""

    sp500 = "sp500"
    csv = "csv"
    parquet = "parquet"
    synthetic = "synthetic"


def _load_market_with_notes(cfg):
    """Load ``cfg.data``; the loader's default-fill warnings come back as notes."""
    import warnings

    from allocgym.data import load_market

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        market = load_market(cfg.data)
    return market, [str(w.message) for w in caught]


def _print_market(market, notes: list[str]) -> None:
    from rich.console import Console

    from allocgym.data import render_summary, summary

    console = Console()
    console.print(render_summary(summary(market)))
    for note in notes:
        console.print(f"note: {note}", style="yellow", markup=False)


@data_app.command("info")
def data_info(
    path: Annotated[
        Path | None,
        typer.Argument(help="CSV or Parquet file for --source csv|parquet (sets data.path)."),
    ] = None,
    source: Annotated[
        DataSource | None,
        typer.Option(
            "--source",
            "-s",
            help="Data source (sets data.source); default: the config's, else csv/parquet "
            "from PATH's suffix when PATH is given.",
        ),
    ] = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Load and validate a market; print symbols, date range, rows, missing data and defaulted fields."""
    import json

    extra = list(overrides or [])
    if source is None and path is not None:
        is_parquet = path.suffix.lower() in (".parquet", ".pq")
        source = DataSource.parquet if is_parquet else DataSource.csv
    if source is not None:
        extra.append(f"data.source={source.value}")
    if path is not None:
        extra.append(f"data.path={json.dumps(str(path))}")
    market, notes = _load_market_with_notes(_config(config, extra))
    _print_market(market, notes)


@app.command("quickstart")
def quickstart(config: ConfigOpt = None, overrides: SetOpt = None) -> None:
    """Main job (interim): load the configured market (default: the bundled S&P 500 sample), validate it, print its summary and walk-forward splits."""
    from allocgym.data import walk_forward_splits
    from allocgym.errors import DataError

    cfg = _config(config, overrides)
    market, notes = _load_market_with_notes(cfg)
    _print_market(market, notes)
    try:
        splits = walk_forward_splits(market, cfg.data.splits)
    except DataError as err:
        typer.echo(f"splits: {err}")
        return
    typer.echo(f"walk-forward splits (embargo {cfg.data.splits.embargo_days} bars):")
    for split in splits.values():
        typer.echo(f"  {split.describe(market)}")


def main() -> None:
    """Console-script entry point."""
    from allocgym.errors import AllocgymError

    try:
        app()
    except AllocgymError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None
