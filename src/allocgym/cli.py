"""``allocgym`` command line: thin shells over the library (no arithmetic here)."""

from __future__ import annotations

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


def main() -> None:
    """Console-script entry point."""
    from allocgym.errors import AllocgymError

    try:
        app()
    except AllocgymError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None
