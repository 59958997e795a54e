"""``allocgym`` command line: thin shells over the library (no arithmetic here)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from allocgym.observability import ChainReport
    from allocgym.sweep import SweepResult

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
    typer.Option(
        "--config",
        "-c",
        exists=True,
        dir_okay=False,
        help="YAML config file; omitted = embedded defaults.",
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a config key, e.g. --set risk.max_gross=0.8 (repeatable). The value "
        "is YAML, so lists and mappings work too: --set 'KEY=[5, 21]' (e.g. "
        "features.momentum_horizons), --set 'KEY={high_volatility: 0.5}' (e.g. "
        "risk.regime_budget_multipliers; a mapping replaces the whole map).",
    ),
]
SectorsOpt = Annotated[
    Path | None,
    typer.Option(
        "--sectors",
        exists=True,
        dir_okay=False,
        help="Sector of each symbol: a CSV file with columns symbol,sector or a YAML mapping "
        "(sets data.sectors). Symbols left without a sector (none from this file, the long "
        "format's sector column or the S&P sample's GICS sectors) are exempt from the "
        "sector cap.",
    ),
]
FactorsOpt = Annotated[
    Path | None,
    typer.Option(
        "--factors",
        exists=True,
        dir_okay=False,
        help="Factor returns for the report's factor attribution: a CSV date,factor1,... of "
        "decimal per-bar returns with a row for every market date (sets data.factors). "
        "Without it the factors are the principal components of the trailing window.",
    ),
]


def _factors_override(factors: Path | None) -> list[str]:
    import json

    return [] if factors is None else [f"data.factors={json.dumps(str(factors))}"]


def _config(config: Path | None, overrides: list[str] | None, sectors: Path | None = None):
    from allocgym.config import load_config

    extra = list(overrides or [])
    if sectors is not None:
        import json

        extra.append(f"data.sectors={json.dumps(str(sectors))}")
    return load_config(config, extra)


# [cli:commands] -- each feature adds its commands below this line.


# [cli:evaluation] evaluate, baselines, promote and the quickstart main job.


class EvalSplit(StrEnum):
    """Splits ``allocgym evaluate`` can walk."""

    train = "train"
    validation = "validation"
    test = "test"
    all = "all"


QUICKSTART_CONFIG = Path("configs/train/ppo.yaml")
"""Config of ``allocgym quickstart`` when ``--config`` is not given (relative to the
repository root, where ``make demo`` runs): the same file as the README's train command,
so both train the same agent."""


def _progress(description: str):
    """Context manager yielding a ``progress(done, total)`` callback that drives a rich bar."""
    import contextlib

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    @contextlib.contextmanager
    def bar():
        cols = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*cols, transient=False) as prog:
            task = prog.add_task(description, total=None)

            def update(done: int, total: int) -> None:
                prog.update(task, completed=done, total=total)

            yield update

    return bar()


def _check_out_folder(out: Path | None) -> None:
    """Refuse an ``--out`` that is a file before any work (it had been found only when the
    report was written, after the whole backtest)."""
    from allocgym.errors import ConfigError

    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file: pass a folder for the report")


def _int_list(text: str | None) -> list[int] | None:
    from allocgym.errors import ConfigError

    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: give comma-separated integers, e.g. 0,1,2") from None
    if not seeds:
        raise ConfigError(
            f"--seeds {text!r} names no seed: give at least one, e.g. 0,1,2 (or leave the "
            "option out for the default)"
        )
    outside = [s for s in seeds if not 0 <= s < 2**32]
    if outside:  # refused now, not when training reaches that seed
        raise ConfigError(f"--seeds {text!r}: seeds {outside} are outside 0..2^32-1")
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ConfigError(f"--seeds {text!r} names seed(s) {twice} twice: list each seed once")
    return seeds


def _sizes(option: str, text: str, *, allow_empty: bool = False) -> tuple[int, ...]:
    """A benchmark's comma-separated sizes (positive integers)."""
    from allocgym.errors import ConfigError

    items = [s.strip() for s in text.split(",") if s.strip()]
    if (items or allow_empty) and all(i.isascii() and i.isdigit() and int(i) > 0 for i in items):
        return tuple(int(i) for i in items)
    raise ConfigError(f"{option} {text!r}: give comma-separated positive integers, e.g. 20,500")


def _cpu_ids(text: str) -> tuple[int, ...]:
    """``serve --cpus``: comma-separated CPU ids (0 and up)."""
    from allocgym.errors import ConfigError

    items = [s.strip() for s in text.split(",") if s.strip()]
    if items and all(i.isascii() and i.isdigit() for i in items):
        return tuple(int(i) for i in items)
    raise ConfigError(f"--cpus {text!r}: give comma-separated CPU ids, e.g. 0 or 2,3")


def _write_and_print(result, out: Path) -> dict:
    from rich.console import Console

    from allocgym.report import print_metrics_table, write_report

    paths = write_report(result, out)
    print_metrics_table(result)
    console = Console()
    breaches = sum(m["invariant_breaches"] for m in result.metrics.values())
    style = "green" if breaches == 0 else "bold red"
    console.print(f"invariant breaches (all allocators): {breaches}", style=style)
    console.print(
        f"DSR trials: {result.dsr['n_trials']} (expected max Sharpe of skill-less trials "
        f"{result.dsr['sr0_annual']:.2f} annualised)"
    )
    b = result.benchmark
    if b:
        console.print(
            f"benchmark ({b['name']}): ann. return {100 * b['ann_return']:.2f}%, Sharpe "
            f"{b['sharpe']:.2f}; the report lists each allocator's active return, tracking "
            "error and information ratio",
            markup=False,
        )
    for name, m in result.metrics.items():
        if m.get("fallback_flag"):
            stages = ", ".join(f"{k} {100 * v:.0f}%" for k, v in m["fallback"].items())
            console.print(
                f"warning: {name} was served by a fallback on {100 * m['fallback_share']:.0f}% "
                f"of its rebalances ({stages})",
                style="yellow",
                markup=False,
            )
    console.print(f"report: {paths['markdown']}  |  {paths['html']}  |  {paths['results']}")
    return paths


@app.command("evaluate")
def evaluate_cmd(
    run: Annotated[
        list[str],
        typer.Option(
            "--run",
            help="Training run, folder of seed_* runs, or frozen policy bundle (export). "
            "Repeat it, or give a quoted glob ('runs/ppo-seed*'), to evaluate separately "
            "trained seeds of one configuration together.",
        ),
    ],
    split: Annotated[
        EvalSplit | None,
        typer.Option(
            "--split",
            help="Split to walk (default evaluation.split); out of sample for the agents: not "
            "env.split, train.eval_split or all.",
        ),
    ] = None,
    baselines: Annotated[
        str | None,
        typer.Option(
            "--baselines",
            help="'all', 'none' or a comma list (hrp,qp,1/n,min_var,barbell,...); default "
            "evaluation.baselines.",
        ),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option("--seeds", help="Training seeds to include, e.g. 0,1,2 (default all)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Report folder (default: the run directory, or the folder several runs "
            "share; refused when that is the working directory or the filesystem root).",
        ),
    ] = None,
    overrides: SetOpt = None,
    address: AddressOpt = None,
    resources: Annotated[
        str | None,
        typer.Option(
            "--resources",
            help="Ray resources per evaluation task, e.g. cpu=1,gpu=0 (default cpu=1); with "
            "--address only.",
        ),
    ] = None,
    factors: FactorsOpt = None,
) -> None:
    """Backtest the agent(s) and baselines out of sample through the same env; write the report.

    With --address the agents and baselines are split into chunks walked in parallel as Ray
    tasks on the same market, config and split; the report is the serial one, bit for bit.
    """
    import os

    from allocgym.config import check_out_of_sample
    from allocgym.errors import ConfigError
    from allocgym.evaluation import evaluate_run, expand_run_paths, prepare_run

    seed_list = _int_list(seeds)
    _check_out_folder(out)
    overrides = [*(overrides or []), *_factors_override(factors)]
    runner_cm = _ray_run_allocators(address, resources, typer.echo)  # bad input fails here
    roots = [r.resolve() for r in expand_run_paths(run)]
    default_out = roots[0] if len(roots) == 1 else Path(os.path.commonpath(roots))
    several = len(roots) > 1
    if out is None and several and default_out in (Path(default_out.anchor), Path.cwd().resolve()):
        raise ConfigError(
            f"the run folders {[str(r) for r in roots[:3]]} share no folder but "
            f"{str(default_out)!r} for the report: pass --out DIR"
        )
    # Every run directory is checked (and the market loaded, its notes printed) before
    # the progress bar starts.
    cfg, _, _ = prepare_run(run, seeds=seed_list, overrides=list(overrides or []))
    check_out_of_sample(cfg, cfg.evaluation.split if split is None else split.value)
    market, notes = _load_market_with_notes(cfg)
    _print_notes(notes)
    label = "evaluating (bars walked)" if address is None else "evaluating (Ray tasks done)"
    with runner_cm as runner, _progress(label) as progress:
        result = evaluate_run(
            run, split=None if split is None else split.value, baselines=baselines,
            seeds=seed_list, overrides=list(overrides or []), progress=progress, market=market,
            runner=runner,
        )  # fmt: skip
    _write_and_print(result, out or default_out)


@app.command("baselines")
def baselines_cmd(
    config: ConfigOpt = None,
    only: Annotated[
        str, typer.Option("--only", help="'all' or a comma list of baselines (hrp,qp,1/n,...).")
    ] = "all",
    split: Annotated[
        EvalSplit | None, typer.Option("--split", help="Split to walk (default evaluation.split).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the full report into this folder.")
    ] = None,
    sectors: SectorsOpt = None,
    factors: FactorsOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Backtest baselines through the env (gates, execution, costs) and print the metrics table."""
    from allocgym.errors import ConfigError
    from allocgym.evaluation import baseline_names, build_baselines, evaluate
    from allocgym.report import print_metrics_table

    _check_out_folder(out)
    cfg = _config(config, [*(overrides or []), *_factors_override(factors)], sectors)
    names = baseline_names(only)
    if not names:
        raise ConfigError(f"--only {only!r} names no baseline: use 'all' or e.g. hrp,qp")
    allocs = list(build_baselines(cfg, names).values())
    market, notes = _load_market_with_notes(cfg)
    _print_notes(notes)
    with _progress("backtesting baselines (bars walked)") as progress:
        result = evaluate(
            allocs, market, cfg, None if split is None else split.value, progress=progress
        )
    if out is not None:
        _write_and_print(result, out)
    else:
        print_metrics_table(result)


@app.command("promote")
def promote_cmd(
    candidate: Annotated[Path, typer.Option("--candidate", help="Candidate run directory.")],
    incumbent: Annotated[
        str,
        typer.Option("--incumbent", help="Incumbent run directory or baseline name (e.g. hrp)."),
    ],
    split: Annotated[
        EvalSplit | None,
        typer.Option(
            "--split",
            help="Split to walk (default evaluation.split); out of sample for the agents: not "
            "env.split, train.eval_split or all.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Decision JSON (default <candidate>/promotion.json)."),
    ] = None,
    attempts_log: Annotated[
        Path | None,
        typer.Option(
            "--attempts-log",
            help="Log of every promotion attempt (default evaluation.promotion.attempts_log, "
            "else promotions.jsonl beside the study's trials ledger, else in the candidate's "
            "parent folder): the significance check needs p <= max_p_value / "
            "max_candidates, and a candidate beyond the max_candidates declared for the same "
            "test bars (by this log), or under another max_candidates or max_p_value than the "
            "first attempt on them declared, is rejected.",
        ),
    ] = None,
    overrides: SetOpt = None,
) -> None:
    """Promotion gates: PROMOTE or REJECT with reasons; exit code 1 on REJECT. Every
    attempt is logged: candidates tried until one passes are selection on the test split,
    so the significance check is at max_p_value / max_candidates, the count declared by the
    first attempt on the test bars, and a candidate beyond it is rejected."""
    from rich.console import Console

    from allocgym.errors import ConfigError
    from allocgym.promotion import promote, write_promotion

    if Path(incumbent).exists() and Path(incumbent).resolve() == Path(candidate).resolve():
        raise ConfigError(f"--candidate and --incumbent are the same run {str(candidate)!r}")
    with _progress("promotion backtests (bars walked)") as progress:
        rep = promote(
            candidate, incumbent, split=None if split is None else split.value,
            overrides=list(overrides or []), progress=progress, attempts_log=attempts_log,
        )  # fmt: skip
    path = write_promotion(rep, out or candidate / "promotion.json")
    console = Console()
    ok = rep.decision.promoted
    console.print(
        f"{rep.decision.decision}: {candidate} vs {incumbent} ({rep.meta['split']} split "
        f"{rep.meta['start']}..{rep.meta['end']})",
        style="bold green" if ok else "bold red",
    )
    for c in rep.decision.checks:
        console.print(f"  [{'green' if c.passed else 'red'}]{'pass' if c.passed else 'FAIL'}[/] "
                      f"{c.name}: {c.detail}", highlight=False)  # fmt: skip
    console.print(f"participation-cap hits under stress: {rep.meta['participation_cap_hits']}")
    console.print(
        f"candidates tried on these test bars: {rep.meta['test_looks']} (this one included) of "
        f"max_candidates = {rep.meta['max_candidates']} declared; every attempt is logged in "
        f"{rep.meta['attempts_log']}",
        highlight=False,
    )
    console.print(f"decision written to {path}")
    if not ok:
        raise typer.Exit(code=1)


def _run_quickstart(
    config: Path | None,
    overrides: list[str] | None,
    timesteps: int | None,
    seeds: str | None,
    device: str | None,
    run_dir: Path | None,
    baselines: str,
    export: bool,
    sectors: Path | None = None,
) -> None:
    """The main job: train PPO on the bundled data, evaluate vs baselines, export, report."""
    import time

    from rich.console import Console

    from allocgym.agents import train
    from allocgym.data import walk_forward_splits
    from allocgym.errors import ConfigError
    from allocgym.evaluation import baseline_names, evaluate_run

    console = Console()
    if config is None:  # one source of truth: the README's train command uses this file too
        config = QUICKSTART_CONFIG
        if not config.is_file():
            raise ConfigError(
                f"quickstart's default config {str(config)!r} is missing: run it from the "
                "repository root or pass --config FILE"
            )
    console.print(f"config: {config}")
    extra = list(overrides or [])
    if timesteps is not None:
        extra.append(f"train.total_timesteps={timesteps}")
    if device is not None:
        extra.append(f"train.device={device}")
    if sectors is not None:
        import json

        extra.append(f"data.sectors={json.dumps(str(sectors))}")
    cfg = _config(config, extra)
    if cfg.train.torch_threads is None:
        # Small policy networks: one intra-op thread is many times faster on 2 busy cores.
        extra.append("train.torch_threads=1")
        cfg = _config(config, extra)
    seed_list = _int_list(seeds) or list(cfg.evaluation.train_seeds)
    baseline_names(baselines)  # a typo refused now, not after every seed has trained
    root = run_dir or Path("runs") / f"quickstart-{time.strftime('%Y%m%d-%H%M%S')}"
    taken = [root / f"seed_{s:03d}" for s in seed_list if (root / f"seed_{s:03d}").exists()]
    if taken:
        raise ConfigError(
            f"--run-dir {str(root)!r} already holds {[str(t) for t in taken]}: quickstart "
            "starts fresh runs; choose a new --run-dir (or continue one run with allocgym "
            "train --resume)"
        )
    market, notes = _load_market_with_notes(cfg)
    _print_market(market, notes, cfg)
    splits = walk_forward_splits(market, cfg.data.splits)
    console.print("walk-forward splits: " + "; ".join(s.describe(market) for s in splits.values()))
    t0 = time.perf_counter()
    for k, seed in enumerate(seed_list):
        console.rule(
            f"[bold]training {cfg.train.algo.upper()} seed {seed} ({k + 1}/{len(seed_list)}), "
            f"{cfg.train.total_timesteps:,} steps"
        )
        seed_cfg = _config(config, [*extra, f"train.seed={seed}"])
        res = train(seed_cfg, root / f"seed_{seed:03d}", market=market, progress=True)
        console.print(
            f"seed {seed}: {res.num_timesteps:,} steps on {res.device} in {res.wall_time_s:.0f} s "
            f"({res.fps:,.0f} fps)"
        )
    console.rule("[bold]evaluating against baselines (test split, same env, gates and costs)")
    with _progress("walking the test split") as progress:
        result = evaluate_run(root, baselines=baselines, market=market, progress=progress,
                              overrides=list(overrides or []))  # fmt: skip
    paths = _write_and_print(result, root)
    if export:
        from allocgym.agents.export import export_run

        console.rule(f"[bold]exporting the frozen policy (seed {seed_list[0]})")
        bundle = root / "frozen"
        policy = export_run(
            root / f"seed_{seed_list[0]:03d}", bundle, overwrite=True, progress=_stage_printer()
        )
        par = policy.manifest["parity"]
        console.print(
            f"frozen policy {policy.model_id}: {bundle} (sha256 {policy.sha256[:12]}..., parity "
            f"max |Δ| {par['max_abs_diff_proposal']:.1e} on {par['n_observations']:,} obs)"
        )
    console.rule("[bold]done")
    console.print(f"report:      {paths['html']}  (markdown {paths['markdown']})")
    console.print(f"results:     {paths['results']}")
    console.print(f"tensorboard: tensorboard --logdir {root}")
    console.print(f"total wall time {time.perf_counter() - t0:.0f} s")


# [cli:risk] risk reason codes and the gate benchmark.

risk_app = typer.Typer(help="Risk gates: reason codes.", no_args_is_help=True)
app.add_typer(risk_app, name="risk")


@risk_app.command("codes")
def risk_codes(
    write: Annotated[
        Path | None,
        typer.Option("--write", help="Write the table to this file (docs/reason_codes.md)."),
    ] = None,
) -> None:
    """Print (or write) the ReasonCode table generated from allocgym.risk."""
    from allocgym.risk import reason_code_table

    text = reason_code_table()
    if write is None:
        typer.echo(text, nl=False)
    else:
        write.write_text(text)
        typer.echo(f"wrote {write}")


QuickOpt = Annotated[
    bool, typer.Option(help="Tiny sizes (smoke test): replaces the sizes and counts above.")
]


@bench_app.command("stats")
def bench_stats(
    repeat: Annotated[
        int, typer.Option(min=1, help="Timed rounds, interleaved (medians reported).")
    ] = 7,
    quick: QuickOpt = False,
) -> None:
    """Paired Sharpe bootstrap vs arch's StationaryBootstrap, and the regime path vs a per-bar classify loop (wall and process CPU time)."""
    from allocgym.bench import print_table
    from allocgym.bench.stats import run

    print_table("allocgym bench stats (medians)", run(repeat=repeat, quick=quick))


@bench_app.command("gates")
def bench_gates(
    repeat: Annotated[
        int, typer.Option(min=1, help="Timed rounds per batch (medians reported).")
    ] = 7,
    n_latency: Annotated[
        int, typer.Option(min=1, help="Single decisions timed for p50/p99.")
    ] = 2000,
    quick: QuickOpt = False,
) -> None:
    """RiskGateChain: one-decision latency and batch throughput vs apply() per portfolio."""
    from allocgym import bench
    from allocgym.bench.gates import run

    bench.print_table(
        "RiskGateChain (medians; reference = apply() per portfolio in a loop; compile_s = "
        "compiling or loading the step kernels, before any timing)",
        run(repeat=repeat, n_latency=n_latency, quick=quick),
    )


# [cli:serving] export, decide, serve and the serving benchmark.


class WhichModel(StrEnum):
    """Model of a run directory to export."""

    best = "best"
    final = "final"
    latest = "latest"


PolicyOpt = Annotated[
    Path,
    typer.Option(
        "--policy",
        "-p",
        exists=True,
        file_okay=False,
        help="Bundle folder written by `allocgym export`.",
    ),
]
ServingSetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a serving key, e.g. --set serving.deadline_ms=20."),
]
RequireSignatureOpt = Annotated[
    Path | None,
    typer.Option(
        "--require-signature",
        metavar="PUBKEYFILE",
        help="Ed25519 public key (PEM): refuse a bundle that is unsigned or not signed by its "
        "private key (see export --sign).",
    ),
]


@app.command("export")
def export_cmd(
    run: Annotated[
        Path,
        typer.Option(
            "--run", exists=True, file_okay=False, help="Training run directory (allocgym train)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write (new or empty).")],
    which: Annotated[
        WhichModel, typer.Option(help="best (falls back to final), final or latest checkpoint.")
    ] = WhichModel.best,
    n_recorded: Annotated[
        int,
        typer.Option(
            min=0,
            max=1_000_000,
            help="Parity observations from env rollouts (with --n-random at least 10000 in "
            "all, or a warning; 0 in all is refused).",
        ),
    ] = 5120,
    n_random: Annotated[
        int, typer.Option(min=0, max=1_000_000, help="Parity observations drawn at random.")
    ] = 5120,
    seed: Annotated[
        int, typer.Option(min=0, max=2**32 - 1, help="Seed of the parity observations.")
    ] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle in --out.")] = False,
    sign: Annotated[
        Path | None,
        typer.Option(
            "--sign",
            metavar="KEYFILE",
            help="Ed25519 private key (PEM, from `allocgym keygen`): write seal.sig, a "
            "signature over the bundle's seal that `serve --require-signature` checks.",
        ),
    ] = None,
) -> None:
    """Export a trained policy to model.onnx + manifest.json (parity-checked against SB3,
    sealed whole, optionally signed)."""
    from allocgym.agents.export import MIN_PARITY_OBS, export_run

    if 0 < n_recorded + n_random < MIN_PARITY_OBS:  # none at all: export_run refuses it
        typer.secho(
            f"warning: {n_recorded + n_random} parity observations < {MIN_PARITY_OBS}",
            fg=typer.colors.YELLOW,
            err=True,
        )
    policy = export_run(
        run, out, which=which.value, n_recorded=n_recorded, n_random=n_random, seed=seed,
        overwrite=overwrite, progress=_stage_printer(), sign_key=sign,
    )  # fmt: skip
    par = policy.manifest["parity"]
    typer.echo(
        f"exported {policy.model_id} to {out}: sha256 {policy.sha256}, "
        f"{len(policy.symbols)} symbols, {policy.mode} mode; parity on "
        f"{par['n_observations']:,} observations: max |Δ proposal| "
        f"{par['max_abs_diff_proposal']:.2e} (tolerance {par['tolerance']:g})"
    )
    if policy.signed_by is not None:
        typer.echo(f"signed the seal {policy.seal} with key {policy.signed_by}")


@app.command("keygen")
def keygen_cmd(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Private key file to write (PEM, owner-only); the public key goes to OUT.pub.",
        ),
    ],
) -> None:
    """Create an Ed25519 key pair for signing bundles (export --sign, serve --require-signature)."""
    from allocgym.serving.bundle import generate_signing_key

    public = out.with_name(out.name + ".pub")
    fingerprint = generate_signing_key(out, public)
    typer.echo(
        f"wrote {out} (private: keep it where exports run) and {public} (public: give it to "
        f"serve --require-signature); key {fingerprint}"
    )


def _stage_printer():
    """``progress(stage)`` callback printing each stage with the seconds since the start
    (long exports show where they are, in a terminal or a log file alike)."""
    import time

    t0 = time.perf_counter()

    def say(stage: str) -> None:
        typer.echo(f"[{time.perf_counter() - t0:6.1f} s] {stage}", err=True)

    return say


def _allocator(
    policy: Path,
    overrides: list[str] | None,
    public_key: Path | None = None,
    replaying: bool = False,
    **kwargs,
):
    from allocgym.serving import FrozenAllocator, FrozenPolicy
    from allocgym.serving.allocator import serving_config

    frozen = FrozenPolicy.load(policy, public_key=public_key)
    alloc = FrozenAllocator(frozen, serving=serving_config(frozen, overrides or []), **kwargs)
    if not replaying:  # a replay takes the switch from each record
        _note_disabled(alloc)
    return alloc


def _note_disabled(alloc) -> None:
    if not alloc.enabled:
        typer.secho(
            "note: TRADING_ALLOCATOR_ENABLED is not true: decisions use the defensive "
            "baseline (ALLOCATOR_DISABLED)",
            fg=typer.colors.YELLOW,
            err=True,
        )


@app.command("decide")
def decide_cmd(
    policy: PolicyOpt,
    state: Annotated[
        Path | None,
        typer.Option("--state", exists=True, dir_okay=False, help="DecisionRequest JSON file."),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option("--now", help="Server clock for the staleness check (ISO 8601); default now."),
    ] = None,
    write_example: Annotated[
        Path | None,
        typer.Option(
            "--write-example",
            help="Write a request for the last bar of the bundle's configured market to this "
            "file and exit. The request is dated at that bar: decide it with the --now the "
            "command prints (without it, an old bar is rejected as stale).",
        ),
    ] = None,
    overrides: ServingSetOpt = None,
    require_signature: RequireSignatureOpt = None,
) -> None:
    """Decide one request with a frozen bundle and print the Decision as JSON; exits 1 when
    the decision is rejected (its reason is in the JSON). Trading is off unless the
    environment sets TRADING_ALLOCATOR_ENABLED=true: otherwise the decision is 'disabled'
    (every weight 0), as in production."""
    import datetime as dt

    from allocgym.errors import ConfigError, RequestError

    if write_example is not None and (state is not None or now is not None):
        raise RequestError(
            "--write-example writes a request and exits: decide it in a second call, with "
            "--state and --now (drop them here)"
        )
    if write_example is not None and write_example.exists():
        raise ConfigError(
            f"--write-example {str(write_example)!r} exists: name a new file (it is not "
            "overwritten)"
        )
    clock = None
    if now is not None:
        try:
            fixed = dt.datetime.fromisoformat(now)
        except ValueError:
            raise RequestError(f"--now {now!r} is not an ISO 8601 time") from None
        if fixed.tzinfo is None:
            example = fixed.replace(tzinfo=dt.UTC).isoformat()
            raise RequestError(
                f"--now {now!r} has no UTC offset: write it with one, e.g. {example}"
            )
        clock = lambda: fixed  # noqa: E731
    alloc = _allocator(policy, overrides, public_key=require_signature, clock=clock)
    if write_example is not None:
        import warnings

        from allocgym.data import load_market
        from allocgym.serving import request_from_market

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            market = load_market(alloc.cfg.data)
        req = request_from_market(
            market, market.n_days - 1, history=alloc.history, request_id="example-1"
        )
        write_example.write_text(req.model_dump_json(indent=1) + "\n")
        stamp = req.timestamp.isoformat()
        typer.echo(
            f"wrote {write_example} (bar {market.n_days - 1}, {req.timestamp.date()}); the "
            f"request is dated {stamp}, so decide it with that clock (trading is off until "
            "TRADING_ALLOCATOR_ENABLED=true: without it the decision is 'disabled', all "
            "weights 0):\n"
            f"  TRADING_ALLOCATOR_ENABLED=true allocgym decide --policy {policy} "
            f"--state {write_example} --now {stamp}"
        )
        return
    if state is None:
        raise RequestError("pass --state FILE (a DecisionRequest JSON) or --write-example FILE")
    from pydantic import ValidationError

    from allocgym.serving import DecisionRequest

    try:
        req = DecisionRequest.model_validate_json(state.read_bytes())
    except ValidationError as err:
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": str(err)}
        where = ".".join(str(p) for p in first["loc"]) or "the request"
        raise RequestError(
            f"{state} is not a valid DecisionRequest ({err.error_count()} error(s); first: "
            f"{where}: {first['msg']}): write one with --write-example FILE"
        ) from None
    decision = alloc.decide(req)
    typer.echo(decision.model_dump_json(indent=2))
    if decision.status == "rejected":
        raise typer.Exit(1)


class DecisionWorker(StrEnum):
    """Where ``allocgym serve`` decides (``allocgym.serving.worker``)."""

    process = "process"
    thread = "thread"


@app.command("serve")
def serve_cmd(
    policy: PolicyOpt,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    audit_log: Annotated[
        Path, typer.Option("--audit-log", help="Hash-chained JSONL audit log (appended).")
    ] = Path("allocgym-audit.jsonl"),
    overrides: ServingSetOpt = None,
    require_signature: RequireSignatureOpt = None,
    admin_token_file: Annotated[
        Path | None,
        typer.Option(
            "--admin-token-file",
            help="File holding the bearer token of the admin endpoints: the kill switch and "
            "the bar feed POST /v1/bars (or set ALLOCGYM_ADMIN_TOKEN). Required to bind a "
            "non-loopback host; without it they answer loopback clients only (a request "
            "naming a proxy is refused; set the token behind a proxy).",
        ),
    ] = None,
    decide_token_file: Annotated[
        Path | None,
        typer.Option(
            "--decide-token-file",
            help="File holding a bearer token that POST /v1/decide then requires (or set "
            "ALLOCGYM_DECIDE_TOKEN).",
        ),
    ] = None,
    anchor_every: Annotated[
        int,
        typer.Option(
            "--anchor-every",
            min=1,
            help="Audit records between two anchors of the chain head (<log>.head; also "
            "written at start and shutdown). The log is synced to disk before each anchor: "
            "without --audit-fsync a power loss can drop the records since the last one, "
            "decisions already answered included.",
        ),
    ] = 100,
    audit_fsync: Annotated[
        bool,
        typer.Option(
            "--audit-fsync",
            help="Sync the audit log to disk after every record, before its decision is "
            "answered: an answered decision survives a power loss (and a retry of its "
            "request id after a restart is refused, not decided again), at one fsync per "
            "decision.",
        ),
    ] = False,
    audit_key_file: Annotated[
        Path | None,
        typer.Option(
            "--audit-key-file",
            help="File holding an HMAC key that signs the audit anchor (or set "
            "ALLOCGYM_AUDIT_KEY); verify with `allocgym audit verify --key-file`. An existing "
            "log written without a key is refused: sign it first with `allocgym audit anchor "
            "--key-file`.",
        ),
    ] = None,
    cpus: Annotated[
        str | None,
        typer.Option(
            "--cpus",
            help="Pin the server to these CPU ids, e.g. 0 (Linux); a decision process "
            "inherits them, so give it two (0,1). With --decision-worker thread it decides "
            "under one GIL and uses about one core; pinned to one, it served 1.15-1.17x the "
            "decisions per second on 2 cores (README, performance). Default: unpinned.",
        ),
    ] = None,
    decision_worker: Annotated[
        DecisionWorker,
        typer.Option(
            "--decision-worker",
            help="Where bars, decisions and kill-switch changes run, one at a time: "
            "'process', a decision process holding the market window, caches, kill switch "
            "and audit log, fed over a socket pair (the decisions get a GIL of their own: "
            "1.43-1.91x the decisions per second of 'thread' at 8 clients on 2 cores, "
            "README, performance), "
            "or 'thread', a worker thread of the HTTP process.",
        ),
    ] = DecisionWorker.process,
) -> None:
    """Serve a frozen bundle over HTTP: POST /v1/decide, /v1/bars (the streamed market
    state), /v1/kill-switch, GET /healthz, /metrics. The audit log is refused if it does
    not match its anchor (see `allocgym audit`)."""
    import contextlib

    from allocgym.errors import ConfigError
    from allocgym.observability import AUDIT_KEY_ENV
    from allocgym.serving.http import (
        ADMIN_TOKEN_ENV,
        DECIDE_TOKEN_ENV,
        check_bind,
        check_tokens,
        listening_socket,
        pin_cpus,
        read_token,
        serve,
    )
    from allocgym.serving.worker import ProcessWorker, ServiceSpec, ThreadWorker

    admin_token = read_token(ADMIN_TOKEN_ENV, admin_token_file)
    decide_token = read_token(DECIDE_TOKEN_ENV, decide_token_file)
    audit_key = read_token(AUDIT_KEY_ENV, audit_key_file, kind="key")
    check_tokens(admin_token, decide_token, audit_key)  # before anything is loaded or locked
    if audit_log.is_dir():
        raise ConfigError(
            f"--audit-log {str(audit_log)!r} is a folder: pass the log file's path, e.g. "
            f"{str(audit_log / 'audit.jsonl')!r}"
        )
    check_bind(host, admin_token)
    sock = listening_socket(host, port)  # an address in use: one line, nothing started
    with contextlib.closing(sock):
        if cpus is not None:
            pinned = pin_cpus(_cpu_ids(cpus))
            typer.echo(f"pinned to CPU {','.join(map(str, sorted(pinned)))}", err=True)
        spec = ServiceSpec(
            policy,
            overrides=tuple(overrides or ()),
            public_key=require_signature,
            audit_log=audit_log,
            anchor_every=anchor_every,
            audit_key=None if audit_key is None else audit_key.encode(),
            audit_fsync=audit_fsync,
        )
        if decision_worker is DecisionWorker.process:
            worker: ProcessWorker | ThreadWorker = ProcessWorker(spec)
        else:
            worker = ThreadWorker(spec.service())
        try:
            allocator = worker.allocator
            _note_disabled(allocator)
            if allocator.policy.signed_by is not None:
                typer.echo(
                    f"bundle signature verified (key {allocator.policy.signed_by})", err=True
                )
            records = worker.records
            where = f"process {worker.pid}" if isinstance(worker, ProcessWorker) else "thread"
            killed = allocator.operator_kill
            typer.echo(
                f"serving {allocator.policy.model_id} on http://{host}:{port} "
                f"(decision {where}; audit log {audit_log}, {records} records; kill switch "
                f"{'ENGAGED (restored at start, audited in the log); ' if killed else ''}"
                f"{'needs the admin token' if admin_token else 'loopback clients only'}; decide "
                f"{'needs the decide token' if decide_token else 'open'})",
                err=True,
            )
            serve(worker, host, port, admin_token=admin_token, decide_token=decide_token, sock=sock)
        finally:
            worker.stop()


# [cli:audit] verify, replay and adopt an audit log.

audit_app = typer.Typer(
    help="Audit logs: verify the chain and its anchor, replay the decisions, adopt a log.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")


AuditKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="File holding the anchor's HMAC key (or set ALLOCGYM_AUDIT_KEY): the anchor "
        "must be signed with it.",
    ),
]


def _audit_key(key_file: Path | None) -> bytes | None:
    from allocgym.observability import AUDIT_KEY_ENV
    from allocgym.serving.http import read_token

    key = read_token(AUDIT_KEY_ENV, key_file, kind="key")
    return None if key is None else key.encode()


def _exit_if_broken(log: Path, report: ChainReport) -> None:
    """Print a failed ``ChainReport`` as FAILED and exit 1 (the audit commands' verdict)."""
    if report.ok:
        return
    where = "head file" if report.bad_line == 0 else f"line {report.bad_line}"
    typer.secho(
        f"FAILED {log} {where}: {report.reason} ({report.n_records} records verified before it)",
        fg=typer.colors.RED,
        err=True,
    )
    raise typer.Exit(1)


@audit_app.command("verify")
def audit_verify(
    log: Annotated[Path, typer.Argument(help="The JSONL audit log (serve --audit-log).")],
    key_file: AuditKeyOpt = None,
    chain_only: Annotated[
        bool,
        typer.Option(
            "--chain-only",
            help="Check the hash chain without the anchor (<log>.head); by default a missing "
            "anchor is a failure.",
        ),
    ] = False,
) -> None:
    """Verify an audit log: every link of the hash chain, then truncation, deleted records
    and a recomputed chain against its anchored head. Exits 1 when it was tampered with.
    It may run beside the service writing the log (an unterminated last line is read
    again once before it counts as torn)."""
    import time

    from allocgym.observability import TORN_LINE, verify_log

    _audit_log_path(log, anchor=not chain_only)
    key = _audit_key(key_file)
    report = verify_log(log, raise_error=False, anchor=not chain_only, key=key)
    if report.reason == TORN_LINE:
        # only a last line can be unterminated: a record a running service is writing
        # ends within microseconds; a line torn by a crash stays torn
        time.sleep(0.2)
        report = verify_log(log, raise_error=False, anchor=not chain_only, key=key)
    _exit_if_broken(log, report)
    anchor = report.anchor
    covered = "no anchor checked"
    if anchor is not None:
        signature = "unsigned"
        if anchor.signed:
            signature = "HMAC verified" if key is not None else "signed, key not given"
        covered = f"anchor covers {anchor.n_records} (written {anchor.anchored_at}, {signature})"
    typer.echo(f"ok {log}: {report.n_records} records, head {report.head}; {covered}")


def _audit_log_path(log: Path, *, anchor: bool) -> None:
    """Refuse a path that is no audit log (a mistype, a folder) as an error, not as a
    verdict; a log deleted beside its anchor (<log>.head) is left to the anchor check."""
    if log.is_dir():
        raise IsADirectoryError(f"{str(log)!r} is a folder: pass the audit log file")
    if not log.exists() and not (anchor and Path(f"{log}.head").exists()):
        raise FileNotFoundError(f"no audit log at {str(log)!r}: pass the serve --audit-log file")


@audit_app.command("anchor")
def audit_anchor(
    log: Annotated[Path, typer.Argument(help="The JSONL audit log (serve --audit-log).")],
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="File holding an HMAC key (or set ALLOCGYM_AUDIT_KEY) that signs the new "
            "anchor; needed when the present one is signed.",
        ),
    ] = None,
    cut_torn_tail: Annotated[
        bool,
        typer.Option(
            "--cut-torn-tail",
            help="First cut a last line without its newline (a crash while its record was "
            "written: its decision unanswered, or, without serve --audit-fsync, cut by a "
            "power loss after it was), past the anchored records only.",
        ),
    ] = False,
) -> None:
    """Adopt an audit log as it is: verify its whole chain, then write its anchor
    (<log>.head). For a log whose head file is missing, which serve refuses to continue
    (records cut from its end would not show), to start signing an unsigned log, or
    (--cut-torn-tail) after a crash cut its last line. An existing head must still match
    the log. Run it only after reviewing the log."""
    from allocgym.observability import adopt_log

    size = log.stat().st_size if log.is_file() else 0
    anchor = adopt_log(log, _audit_key(key_file), cut_torn_tail=cut_torn_tail)
    signature = "signed" if anchor.signed else "unsigned"
    cut = size - anchor.offset if cut_torn_tail and size > anchor.offset else 0
    note = f"; cut a torn last line of {cut} bytes" if cut else ""
    typer.echo(
        f"anchored {log}: {anchor.n_records} records, head {anchor.head} ({signature}){note}"
    )


@audit_app.command("replay")
def audit_replay(
    log: Annotated[Path, typer.Argument(help="The JSONL audit log (serve --audit-log).")],
    policy: PolicyOpt,
    overrides: ServingSetOpt = None,
    key_file: AuditKeyOpt = None,
    require_signature: RequireSignatureOpt = None,
) -> None:
    """Re-decide every record of an audit log with the bundle that served it and compare
    byte for byte each field its input determines (output, proposed and approved books,
    raw action, CVaR, kill state, regime) and its input hash. The log is only read: it
    may run beside the service.
    Serving settings (--set) and the TRADING_ALLOCATOR_* variables must be those the
    service ran with. Exits 1 when a record is not reproduced."""
    from allocgym.observability import read_entries, verify_log
    from allocgym.serving import replay_audit
    from allocgym.serving.flags import limits_from_env

    allocator = _allocator(policy, overrides, public_key=require_signature, replaying=True)
    _audit_log_path(log, anchor=True)
    key = _audit_key(key_file)
    chain = verify_log(log, raise_error=False, anchor=True, key=key, live=True)
    _exit_if_broken(log, chain)
    report = replay_audit(log, allocator, key=key, verified=chain.n_records)
    # Each decision record keeps the flags it was decided under; what matters is the
    # limits they give (the allocator switch is taken from each record).
    sealed, limits = allocator.policy.risk_config, allocator.flags.risk
    inputs = [(line, e["record"]["input"]) for line, e in read_entries(log, report.n_records)]
    models = {i["model_sha256"] for _, i in inputs if "model_sha256" in i}
    if models - {allocator.policy.sha256}:
        typer.secho(
            f"note: the log was decided by model(s) {sorted(m[:12] for m in models)}, this "
            f"bundle's is {allocator.policy.sha256[:12]}: replay with the bundle that "
            "served the log",
            fg=typer.colors.YELLOW,
            err=True,
        )
    other = [
        (line, recorded)
        for line, i in inputs
        if (recorded := i.get("flags")) is not None and limits_from_env(sealed, recorded) != limits
    ]
    if other:
        line, recorded = other[0]
        typer.secho(
            f"note: {len(other)} record(s) were decided under other limits than this "
            f"replay's TRADING_ALLOCATOR_* variables give (line {line}: {recorded}): set "
            "them as the service had",
            fg=typer.colors.YELLOW,
            err=True,
        )
    if not report.ok:
        shown = ", ".join(f"line {line} ({rid})" for line, rid in report.mismatches[:10])
        typer.secho(
            f"FAILED {log}: {report.n_reproduced} of {report.n_records} records reproduced; "
            f"differing: {shown}",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"ok {log}: {report.n_reproduced} of {report.n_records} records reproduced")


@bench_app.command("serve")
def bench_serve(
    n_assets: Annotated[str, typer.Option(help="Comma-separated universe sizes.")] = "20,500",
    calls: Annotated[
        int, typer.Option(min=1, help="In-process decide calls per size (p50/p99).")
    ] = 2000,
    http_assets: Annotated[
        str, typer.Option(help="Universe sizes of the HTTP load test ('' = none).")
    ] = "20",
    http_requests: Annotated[int, typer.Option(min=1, help="HTTP requests at most.")] = 4000,
    http_seconds: Annotated[
        float, typer.Option(min=0.1, help="HTTP load test time limit (s).")
    ] = 20.0,
    concurrency: Annotated[
        int,
        typer.Option(min=1, help="HTTP load test client connections (its served/s: the capacity)."),
    ] = 8,
    encoding: Annotated[
        str,
        typer.Option(
            help="HTTP requests: 'account' (bars streamed first, then account requests), or "
            "the stateless request with its history as 'b64' (exact, compact) or 'json' lists."
        ),
    ] = "account",
    overload_clients: Annotated[
        int,
        typer.Option(
            min=0,
            help="Client connections of the sustained overload test, each resending a shed "
            "request at once without waiting Retry-After (0 = none); its windows alternate "
            "with capacity windows at --concurrency.",
        ),
    ] = 64,
    overload_seconds: Annotated[
        float,
        typer.Option(
            min=0.1, help="Sustained overload test: seconds of overload (as many of capacity)."
        ),
    ] = 10.0,
    burst: Annotated[
        int, typer.Option(min=0, help="Connections of the HTTP burst, opened at once (0 = none).")
    ] = 1000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes fed the same bars, compared with one: the --concurrency "
            "connections load one server, then all of them, in alternating windows "
            "(--http-seconds of each; 1 = no comparison).",
        ),
    ] = 2,
    pin: Annotated[
        bool,
        typer.Option(
            help="Also start one server pinned to the first CPU this process may use "
            "(serve --cpus), deciding on a thread, and load it and an unpinned one in "
            "alternating windows: served/s, p99 and server CPU per request of each (Linux).",
        ),
    ] = True,
) -> None:
    """Decide latency in-process (and the bare ONNX call), then HTTP on loopback: a load
    test, a decision process against a worker thread, one server against several, one
    pinned to a CPU against one not, sustained overload and a burst."""
    from allocgym.bench import print_table
    from allocgym.bench.serve import run

    rows = run(
        _sizes("--n-assets", n_assets), calls=calls,
        http_assets=_sizes("--http-assets", http_assets, allow_empty=True),
        http_requests=http_requests,
        http_seconds=http_seconds, concurrency=concurrency, encoding=encoding,
        overload_clients=overload_clients, overload_seconds=overload_seconds,
        burst_connections=burst, workers=workers, pin=pin, progress=_stage_printer(),
    )  # fmt: skip
    for kind, title in (
        ("in_process", "FrozenAllocator.decide (stateless request) vs the bare ONNX call (µs)"),
        ("streaming", "Streaming market state: bar update, account decide (µs; goal p99 <= 250)"),
        ("http", "HTTP POST /v1/decide on 127.0.0.1 (goal >= 1000 req/s, p99 <= 20 ms, 0 errors)"),
        (
            "worker",
            "HTTP deciding on a thread of the HTTP process against a decision process "
            "(the default), the same clients, alternating windows",
        ),
        (
            "workers",
            "HTTP one server process (_1) against several fed the same bars (_k), the same "
            "clients spread over them: served_k/1 is what more processes would give",
        ),
        (
            "pinning",
            "HTTP one server pinned to a CPU (serve --cpus) against one unpinned, the same "
            "clients, alternating windows",
        ),
        (
            "overload",
            "HTTP sustained overload: a 503 is resent at once (goal: served/capacity >= 0.8, "
            "every 503 with Retry-After)",
        ),
        ("burst", "HTTP burst: connections opened at once (goal: not 0 served)"),
    ):
        section = [{k: v for k, v in r.items() if k != "bench"} for r in rows if r["bench"] == kind]
        if section:
            print_table(title, section)


# [cli:bench-env] environment throughput benchmark.


@bench_app.command("env")
def bench_env(
    n_assets: Annotated[str, typer.Option(help="Comma-separated universe sizes.")] = "20,500",
    n_envs: Annotated[str, typer.Option(help="Comma-separated PortfolioVecEnv batch sizes.")] = (
        "1,64,1024"
    ),
    steps: Annotated[
        int, typer.Option(min=2, help="Steps per timed round (fewer for big batches).")
    ] = 20,
    repeat: Annotated[
        int, typer.Option(min=1, help="Timed rounds per row (medians are reported).")
    ] = 5,
    n_days: Annotated[int, typer.Option(help="Bars of the synthetic market.")] = 1200,
) -> None:
    """PortfolioEnv steps/s and PortfolioVecEnv portfolio-steps/s vs a pandas-loop env."""
    from allocgym.bench import print_table
    from allocgym.bench.env import run

    rows = run(
        _sizes("--n-assets", n_assets),
        _sizes("--n-envs", n_envs),
        n_days=n_days,
        steps=steps,
        repeat=repeat,
        cpu_time=True,
        bare=True,
    )
    print_table(
        "Env throughput with gates, features and CVaR reward (medians; rates per CPU second; "
        "x_pandas / x_bare = ratio to the pandas reference / the bare numpy env, same run; "
        "compile_s = compiling or loading the step kernels, before any timing)",
        rows,
    )


# [cli:train] training runs and their benchmark.


class Device(StrEnum):
    """Torch devices of ``allocgym train``."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@app.command("train")
def train_cmd(
    config: ConfigOpt = None,
    device: Annotated[
        Device | None,
        typer.Option(
            "--device",
            help="Torch device, sets train.device (default the config's: auto = cuda when "
            "a GPU is visible, else cpu).",
        ),
    ] = None,
    timesteps: Annotated[
        int | None,
        typer.Option(
            "--timesteps",
            help="Total env steps, 1 to 10^10 (sets train.total_timesteps; default the config's).",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            min=0,
            max=2**32 - 1,
            help="Seed, 0 to 2^32-1 (sets train.seed; default the config's, 0).",
        ),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option("--run-dir", help="Output folder; default runs/<algo>-<timestamp>."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run in --run-dir from its latest checkpoint, with the run's "
            "saved config.yaml (or, when --config is given, that file's: its "
            "train.total_timesteps then sets where training stops); --timesteps N extends "
            "a finished run to N steps.",
        ),
    ] = False,
    sectors: SectorsOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Train an SB3 agent (PPO, A2C, SAC, RecurrentPPO) on the environment's train split."""
    import json
    import time

    from allocgym.agents import load_run_config, train
    from allocgym.agents.train import latest_checkpoint
    from allocgym.errors import ConfigError

    extra = list(overrides or [])
    if sectors is not None:
        extra.append(f"data.sectors={json.dumps(str(sectors))}")
    for key, value in (("device", device), ("total_timesteps", timesteps), ("seed", seed)):
        if value is not None:
            extra.append(f"train.{key}={getattr(value, 'value', value)}")
    if resume and run_dir is None:
        raise ConfigError("--resume needs --run-dir: the run directory to continue")
    if resume and run_dir is not None and latest_checkpoint(run_dir) is None:
        raise ConfigError(
            f"--resume: {str(run_dir)!r} holds no checkpoint to continue (check the path; "
            "checkpoints are written every train.checkpoint_freq steps): drop --resume to "
            "start a new run there"
        )
    if resume and config is None and run_dir is not None and (run_dir / "config.yaml").is_file():
        cfg = load_run_config(run_dir, extra)
    else:
        cfg = _config(config, extra)
    if run_dir is None:
        run_dir = Path("runs") / f"{cfg.train.algo}-{time.strftime('%Y%m%d-%H%M%S')}"
    market, notes = _load_market_with_notes(cfg)
    _print_notes(notes)
    result = train(cfg, run_dir, resume=resume, progress=True, market=market)
    best = (
        "n/a"
        if result.best_score is None
        else f"{result.best_score:.3f} at step {result.best_step:,}"
    )
    if result.resumed_from is not None and result.resumed_from >= result.total_timesteps:
        typer.echo(
            f"{result.run_dir} had already trained {result.resumed_from:,} of "
            f"{result.total_timesteps:,} steps: nothing to do; pass --timesteps N (more than "
            f"{result.resumed_from:,}) to train further. Best validation Sharpe {best}"
        )
        return
    typer.echo(
        f"trained {result.algo} for {result.num_timesteps:,} steps on {result.device} in "
        f"{result.wall_time_s:.1f} s ({result.fps:,.0f} fps); best validation Sharpe {best}\n"
        f"run directory: {result.run_dir}  (tensorboard --logdir {result.run_dir / 'tb'})"
    )


@bench_app.command("train")
def bench_train(
    config: ConfigOpt = None,
    timesteps: Annotated[int, typer.Option(min=1, help="PPO steps per timed run.")] = 8192,
    repeat: Annotated[
        int, typer.Option(min=1, help="Timed runs per env (medians are reported).")
    ] = 3,
    n_envs: Annotated[str, typer.Option(help="Comma-separated n_envs values.")] = "16",
    device: Annotated[Device, typer.Option(help="Torch device.")] = Device.cpu,
    overrides: SetOpt = None,
) -> None:
    """PPO fps on PortfolioVecEnv vs a no-op VecEnv with identical spaces, interleaved in one
    run, in wall time and in process CPU time (steadier on a busy machine; set
    OMP_NUM_THREADS=1). *_min / *_max: the spread of the per-repeat env / no-op ratios."""
    from allocgym.bench import print_table
    from allocgym.bench.train import run

    cfg = _config(config, [*(overrides or []), f"train.device={device.value}"])
    rows = run(cfg, timesteps=timesteps, repeat=repeat, n_envs=_sizes("--n-envs", n_envs))
    print_table(
        "PPO training fps, wall and process CPU: PortfolioVecEnv vs no-op VecEnv (medians)", rows
    )


# [cli:bench-baselines] HRP / QP / greedy benchmark.


@bench_app.command("baselines")
def bench_baselines(
    hrp_sizes: Annotated[
        str, typer.Option(help="Comma-separated HRP universe sizes.")
    ] = "20,100,500",
    qp_sizes: Annotated[
        str, typer.Option(help="Comma-separated QP universe sizes.")
    ] = "50,300,1000",
    greedy_assets: Annotated[
        int, typer.Option(min=1, help="Universe size of the greedy benchmark.")
    ] = 5000,
    repeat: Annotated[
        int, typer.Option(min=1, help="Timed rounds (HRP) / re-solves (QP) per size.")
    ] = 7,
    cvar: Annotated[
        bool, typer.Option(help="Also time the QP with the CVaR fragility term.")
    ] = False,
    risk_models: Annotated[
        bool,
        typer.Option(help="Also time the DCC-GARCH fit and update and the Pareto front (N=100)."),
    ] = True,
) -> None:
    """HRP vs skfolio and PyPortfolioOpt, QP first solve / re-solve, greedy rotation at
    --greedy-assets names, DCC-GARCH and the Pareto front against their goals."""
    from rich.console import Console

    from allocgym.bench import print_table
    from allocgym.bench.baselines import run

    say = _stage_printer()
    rows = run(
        _sizes("--hrp-sizes", hrp_sizes), _sizes("--qp-sizes", qp_sizes), greedy_assets,
        repeat=repeat, cvar=cvar, progress=say,
    )  # fmt: skip
    if risk_models:
        from allocgym.bench import risk_models as rm

        say("DCC-GARCH fit and update, the Pareto front (N = 100)")
        rows += rm.run(repeat=max(3, min(repeat, 7)))
    titles = {
        "hrp": "HRP fit: ours vs skfolio / PyPortfolioOpt (Ward, same covariance; medians)",
        "qp": "QP (all constraints): first solve and median re-solve vs a fresh reference solve",
        "greedy": "Greedy top-K rotation (default thresholds) vs a Python loop (medians)",
        "risk_models": "DCC-GARCH and the Pareto front: medians (wall, process CPU) vs goals",
    }
    for bench, title in titles.items():
        section = [
            {k: v for k, v in r.items() if k != "bench"} for r in rows if r["bench"] == bench
        ]
        if section:
            print_table(title, section, console=Console(width=220))


# [cli:data] data info and the interim quickstart.


class DataSource(StrEnum):
    """Market data sources of ``allocgym data info``."""

    sp500 = "sp500"
    csv = "csv"
    parquet = "parquet"
    synthetic = "synthetic"


def _load_market_with_notes(cfg):
    """Load ``cfg.data``; the loader's warnings (defaulted fields, no sectors, large moves)
    come back as notes, each once, with a note when the splits come from fractions."""
    import warnings

    from allocgym.data import load_market, split_note
    from allocgym.errors import DataError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        market = load_market(cfg.data)
    notes = list(dict.fromkeys(str(w.message) for w in caught))
    try:
        note = split_note(market, cfg.data.splits)
    except DataError:
        note = None  # a refused split is reported by the command that needs it
    if note:
        notes.append(note)
    return market, notes


def _print_notes(notes: list[str]) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    for note in notes:
        console.print(f"note: {note}", style="yellow", markup=False, highlight=False)


def _print_market(market, notes: list[str], cfg=None) -> None:
    from rich.console import Console

    from allocgym.data import render_summary, summary

    console = Console()
    console.print(render_summary(summary(market, None if cfg is None else cfg.data.splits)))
    _print_notes(notes)


@data_app.command("info")
def data_info(
    path: Annotated[
        Path | None,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="CSV or Parquet file for --source csv|parquet (sets data.path).",
        ),
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
    sectors: SectorsOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Load and validate a market; print symbols, date range, rows, missing data, defaulted fields, sectors (and whether the sector cap applies) and the walk-forward splits."""
    import json

    extra = list(overrides or [])
    if source is None and path is not None:
        is_parquet = path.suffix.lower() in (".parquet", ".pq")
        source = DataSource.parquet if is_parquet else DataSource.csv
    if source is not None:
        extra.append(f"data.source={source.value}")
    if path is not None:
        extra.append(f"data.path={json.dumps(str(path))}")
    cfg = _config(config, extra, sectors)
    market, notes = _load_market_with_notes(cfg)
    _print_market(market, notes, cfg)


class RegimeSplit(StrEnum):
    """Bar ranges ``allocgym regime`` can describe (``all``: every bar of the data)."""

    all = "all"
    train = "train"
    validation = "validation"
    test = "test"


@app.command("regime")
def regime_cmd(
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    source: Annotated[
        DataSource | None,
        typer.Option(
            "--source",
            "-s",
            help="Data source (sets data.source; csv/parquet also need --set data.path=FILE); "
            "default: the config's.",
        ),
    ] = None,
    split: Annotated[
        RegimeSplit,
        typer.Option(
            "--split", help="Bars to describe: a walk-forward split of data.splits, or all."
        ),
    ] = RegimeSplit.all,
    sectors: SectorsOpt = None,
) -> None:
    """Run the regime model over a market; print per calendar year the share of each label and barbell state and the label changes, then flips per year and the median run length."""
    from rich.console import Console

    from allocgym.data import walk_forward_splits
    from allocgym.regime import RegimeModel, render_summary

    extra = list(overrides or [])
    if source is not None:
        extra.append(f"data.source={source.value}")
    cfg = _config(config, extra, sectors)
    market, notes = _load_market_with_notes(cfg)
    # The model runs over the whole market, so a split's first bars have their history.
    model = RegimeModel(cfg.regime)
    state = model.path(market)
    start, stop = 0, market.n_days
    if split is not RegimeSplit.all:
        chosen = walk_forward_splits(market, cfg.data.splits)[split.value]
        start, stop = chosen.start, chosen.stop
    console = Console()
    console.print(render_summary(model.summarize(state, market.dates, start, stop)))
    _print_notes(notes)


@app.command("quickstart")
def quickstart(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            exists=True,
            dir_okay=False,
            help="YAML config file; default configs/train/ppo.yaml of the repository (run "
            "from its root).",
        ),
    ] = None,
    overrides: SetOpt = None,
    timesteps: Annotated[
        int | None,
        typer.Option(
            "--timesteps", help="PPO steps per seed (default: train.total_timesteps of the config)."
        ),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds", help="Training seeds, e.g. 0,1,2 (default evaluation.train_seeds)."
        ),
    ] = None,
    device: Annotated[
        Device | None, typer.Option("--device", help="Torch device (default train.device: auto).")
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option("--run-dir", help="Output folder; default runs/quickstart-<timestamp>."),
    ] = None,
    baselines: Annotated[
        str, typer.Option("--baselines", help="Baselines to compare ('all' or a comma list).")
    ] = "all",
    export: Annotated[
        bool,
        typer.Option("--export/--no-export", help="Export the first seed's frozen ONNX policy."),
    ] = True,
    sectors: SectorsOpt = None,
) -> None:
    """Main job: train PPO on the bundled S&P 500 sample with configs/train/ppo.yaml (default --config), evaluate it against every baseline on the test split, export the frozen policy, print the table and the report / TensorBoard paths."""
    _run_quickstart(
        config, overrides, timesteps, seeds, None if device is None else device.value, run_dir,
        baselines, export, sectors,
    )  # fmt: skip


@app.command("study")
def study_cmd(
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            min=1,
            help="Test the last K complete calendar years (default data.splits.n_folds: 4).",
        ),
    ] = None,
    test_years: Annotated[
        str | None,
        typer.Option("--test-years", help="Test years instead of --folds, e.g. 2011..2022."),
    ] = None,
    validation_years: Annotated[
        int,
        typer.Option(
            "--validation-years",
            min=1,
            help="Calendar years just before each test year used for model selection.",
        ),
    ] = 2,
    seeds: Annotated[
        str, typer.Option("--seeds", help="Training seeds per fold, e.g. 0,1,2,3,4.")
    ] = "0,1,2",
    timesteps: Annotated[
        int | None,
        typer.Option(
            "--timesteps",
            help="Training steps per (fold, seed), 1 to 10^10 (sets train.total_timesteps; "
            "default the config's).",
        ),
    ] = None,
    baselines: Annotated[
        str,
        typer.Option(
            "--baselines",
            help="Baselines to compare ('all' or a comma list); 1/N and HRP, the references of "
            "the paired intervals, are always included.",
        ),
    ] = "all",
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            help="Study folder; default runs/study-<timestamp>. The same command continues an "
            "interrupted study there (finished runs kept, unfinished ones resumed); a run "
            "trained with another config is refused, and a finished study too.",
        ),
    ] = None,
    address: AddressOpt = None,
    resources: ResourcesOpt = None,
) -> None:
    """Walk-forward study: per yearly fold, train the agent on the past (validation = the years just before the test year), test it and every baseline on the same bars, stitch the out-of-sample returns, and write study.md / study.html / study.json with paired bootstrap intervals against 1/N and HRP."""
    import time

    from rich.console import Console

    console = Console()
    if address is not None:  # a malformed address fails before anything loads
        from allocgym.distributed import parse_address

        parse_address(address)
    extra = list(overrides or [])
    if timesteps is not None:
        extra.append(f"train.total_timesteps={timesteps}")
    cfg = _config(config, extra)
    # Ray first: an unreachable cluster is refused in seconds, before the data loads
    with _ray_train_many(address, resources, cfg, console.print) as train_many:
        from allocgym.study import parse_years, plan_folds, run_study

        years = None if test_years is None else parse_years(test_years)  # before the data
        market, notes = _load_market_with_notes(cfg)
        _print_market(market, notes, cfg)
        if folds is None and years is None:
            folds = cfg.data.splits.n_folds
        plan = plan_folds(
            market, test_years=years, n_folds=folds, validation_years=validation_years
        )
        seed_list = _int_list(seeds) or [0]
        root = run_dir or Path("runs") / f"study-{time.strftime('%Y%m%d-%H%M%S')}"
        console.print(
            f"{len(plan)} folds (test years {plan[0].test_year}..{plan[-1].test_year}) x "
            f"{len(seed_list)} seeds, {cfg.train.total_timesteps:,} steps each -> {root}"
        )
        result = run_study(cfg, market, plan, seed_list, root, baselines=baselines,
                           config_overrides=extra, base_config=config,
                           progress=lambda msg: console.print(msg), train_many=train_many)  # fmt: skip
    for name, won in result.pooled["agent_beats_equal_weight"].items():
        pe = result.pooled[name]["paired"]["equal_weight"]
        console.print(
            f"{name}: pooled Sharpe {result.pooled[name]['sharpe']:.2f} vs 1/N "
            f"{result.pooled['equal_weight']['sharpe']:.2f}, ΔSharpe {pe['diff']:+.2f} "
            f"[{pe['ci_low']:+.2f}, {pe['ci_high']:+.2f}] ({100 * pe['level']:g}%), "
            f"p = {pe['p_value']:.3f}"
            + (f" (not judged: {pe['note']})" if pe.get("verdict") == "unreliable" else "")
            + f"; beat 1/N in {won['folds_won']}/{won['folds']} folds"
        )
    console.print(f"study: {root / 'study.html'}  |  {root / 'study.md'}  |  {root / 'study.json'}")


# [cli:distributed] Ray: sweeps, studies on a cluster and the sweep benchmark.

AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Where to run on Ray: local (start Ray on this machine, sized to it), auto (the "
        "Ray cluster running on this machine) or HOST:PORT of a Ray head (docs/cluster.md).",
    ),
]
ResourcesOpt = Annotated[
    str | None,
    typer.Option(
        "--resources",
        help="Ray resources per training job, e.g. cpu=1,gpu=0.25 (default cpu=1; gpu 0.25 "
        "when training runs on cuda (sweep's --device, or --set train.device=cuda), else 0).",
    ),
]


def _ray_train_many(address: str | None, resources: str | None, cfg, echo):
    """Context: None (train in this process) without an address, else Ray's train_many."""
    import contextlib

    if address is None:
        if resources is not None:
            from allocgym.errors import ConfigError

            raise ConfigError(
                "--resources applies to Ray jobs: pass --address local (or a cluster)"
            )
        return contextlib.nullcontext(None)

    @contextlib.contextmanager
    def runner():
        from allocgym.distributed import RayTrainMany, parse_resources, ray_runtime

        res = parse_resources(resources, cfg.train.device)
        with ray_runtime(address) as rt:
            rt.check_fits(res)
            echo(rt.describe())
            yield RayTrainMany(res, progress=echo)

    return runner()


def _ray_run_allocators(address: str | None, resources: str | None, echo):
    """Context: None (walk in this process) without an address, else Ray's evaluation
    runner. A malformed address or resources string is refused on the call, before the
    context is entered; an unreachable address when it is entered."""
    import contextlib

    if address is None:
        if resources is not None:
            from allocgym.errors import ConfigError

            raise ConfigError(
                "--resources applies to Ray tasks: pass --address local (or a cluster)"
            )
        return contextlib.nullcontext(None)
    from allocgym.distributed import RayRunAllocators, parse_address, parse_resources, ray_runtime

    addr = parse_address(address)
    res = parse_resources(resources, "auto")  # evaluation loads agents on the CPU

    @contextlib.contextmanager
    def runner():
        with ray_runtime(addr) as rt:
            rt.check_fits(res)
            echo(rt.describe())
            yield RayRunAllocators(res, progress=echo)

    return runner()


class SearchAlgo(StrEnum):
    """Search algorithms of ``allocgym sweep``."""

    optuna = "optuna"
    random = "random"


class SchedulerName(StrEnum):
    """Trial schedulers of ``allocgym sweep``."""

    asha = "asha"
    none = "none"


@app.command("sweep")
def sweep_cmd(
    config: ConfigOpt = None,
    space: Annotated[
        Path | None,
        typer.Option(
            "--space",
            help="Search space YAML (e.g. configs/sweep/ppo.yaml); required unless --resume.",
        ),
    ] = None,
    overrides: SetOpt = None,
    trials: Annotated[int | None, typer.Option("--trials", help="Trials (default 16).")] = None,
    search: Annotated[
        SearchAlgo | None,
        typer.Option("--search", help="optuna (TPE, default) or random draws."),
    ] = None,
    scheduler: Annotated[
        SchedulerName | None,
        typer.Option(
            "--scheduler", help="asha (stop weak trials at validation rungs, default) or none."
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the search (default 0)."),
    ] = None,
    max_concurrent: Annotated[
        int | None,
        typer.Option("--max-concurrent", help="Trials at once (default: as resources allow)."),
    ] = None,
    address: AddressOpt = None,
    resources: ResourcesOpt = None,
    device: Annotated[
        Device | None,
        typer.Option(
            "--device",
            help="Torch device, sets train.device (default the config's: auto = cuda when "
            "a GPU is visible, else cpu).",
        ),
    ] = None,
    timesteps: Annotated[
        int | None,
        typer.Option(
            "--timesteps",
            help="Steps per trial, 1 to 10^10 (sets train.total_timesteps; default the config's).",
        ),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option("--run-dir", help="Sweep folder; default runs/sweep-<timestamp>."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the interrupted sweep in --run-dir (ASHA's rungs start empty: "
            "Ray Tune does not restore the scheduler's state).",
        ),
    ] = False,
) -> None:
    """Hyperparameter sweep on Ray Tune: Optuna search over a space of config keys, ASHA early stopping on the validation runs, every trial an ordinary run directory and a line of the sweep's trials ledger; writes results.md / results.csv and best_config.yaml (train it with --config)."""
    import time

    from rich.console import Console

    from allocgym.distributed import parse_address, parse_resources, require_tune

    console = Console()
    parse_address(address or "local")  # a malformed address fails before anything loads
    require_tune()
    extra = list(overrides or [])
    for key, value in (("device", device), ("total_timesteps", timesteps)):
        if value is not None:
            extra.append(f"train.{key}={getattr(value, 'value', value)}")
    given = {"--trials": trials, "--search": search, "--scheduler": scheduler, "--seed": seed,
             "--max-concurrent": max_concurrent, "--resources": resources}  # fmt: skip
    _check_sweep_flags(resume, run_dir, space, given)
    cfg = space_obj = options = None
    if config is not None or extra:
        cfg = _config(config, extra)
    if space is not None:
        from allocgym.search_space import load_space

        space_obj = load_space(space)
    if not resume:
        from allocgym.sweep import SweepOptions

        cfg = cfg or _config(None, [])
        options = SweepOptions(
            trials=16 if trials is None else trials,
            search=(search or SearchAlgo.optuna).value,
            scheduler=(scheduler or SchedulerName.asha).value,
            seed=0 if seed is None else seed,
            resources=parse_resources(resources, cfg.train.device),
            max_concurrent=max_concurrent,
        )
    folder = run_dir or Path("runs") / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    from allocgym.sweep import run_sweep

    result = run_sweep(cfg, space_obj, folder, options=options, address=address or "local",
                       resume=resume, echo=lambda msg: console.print(msg, markup=False,
                                                                     highlight=False))  # fmt: skip
    _print_sweep(console, result)
    if not result.finished:
        raise typer.Exit(code=130)


def _check_sweep_flags(
    resume: bool, run_dir: Path | None, space: Path | None, given: dict[str, object]
) -> None:
    """Refuse ``sweep`` flags that do not fit together (``given``: the sweep options passed).

    Raises
    ------
    ConfigError
        ``--resume`` without ``--run-dir`` or with a sweep option; a new sweep without
        ``--space``.
    """
    from allocgym.errors import ConfigError

    if resume:
        if run_dir is None:
            raise ConfigError("--resume needs --run-dir: the sweep folder to continue")
        fixed = [k for k, v in given.items() if v is not None]
        if fixed:
            raise ConfigError(
                f"--resume continues a sweep with the options it started with: drop {fixed[0]}"
            )
    elif space is None:
        raise ConfigError("--space is required: a search space YAML, e.g. configs/sweep/ppo.yaml")


def _print_sweep(console: Console, result: SweepResult) -> None:
    """Print a finished or interrupted sweep: its top 10 trials, where its ledger and
    results are, abandoned trial folders, the best config and how to resume it."""
    from rich.table import Table

    from allocgym.sweep import OBJECTIVE, format_cell

    hidden = ("run_dir", "note", "cpu_s")  # in results.csv
    shown = [k for k in (result.rows[0] if result.rows else {}) if k not in hidden]
    table = Table(title=f"sweep: {len(result.rows)} trials, best first (top 10)")
    for key in shown:
        table.add_column(key, justify="right")
    for row in result.rows[:10]:
        table.add_row(*(format_cell(row.get(k)) for k in shown))
    console.print(table)
    counts = ", ".join(f"{n} {s}" for s, n in result.counts.items())
    console.print(f"trials ledger: {result.folder / 'trials.jsonl'} ({counts})")
    console.print(f"results: {result.folder / 'results.md'}  |  {result.folder / 'results.csv'}")
    if result.abandoned:
        console.print(
            f"{len(result.abandoned)} trial folder(s) abandoned by an interruption (not trials): "
            + ", ".join(result.abandoned),
            style="yellow",
        )
    if result.best_config is not None:
        best = result.best
        assert best is not None
        console.print(
            f"best: trial {best['trial']} ({best[OBJECTIVE]:.4g}); train it with "
            f"allocgym train --config {result.best_config}"
        )
    if not result.finished:
        console.print(
            f"the sweep was interrupted: resume it with allocgym sweep --run-dir {result.folder} "
            "--resume",
            style="yellow",
        )


@bench_app.command("sweep")
def bench_sweep(
    trials: Annotated[int, typer.Option(min=1, help="Trials per timed sweep.")] = 4,
    timesteps: Annotated[int, typer.Option(min=1, help="PPO steps per trial.")] = 32768,
    repeat: Annotated[int, typer.Option(min=1, help="Timed rounds (medians are reported).")] = 3,
    num_cpus: Annotated[int, typer.Option(min=1, help="CPUs of the local Ray.")] = 2,
    quick: QuickOpt = False,
) -> None:
    """Sweep trials per hour: the same trials one after another in this process vs a sweep on a local Ray with --num-cpus CPUs (and with 1 CPU: Ray's overhead per trial), interleaved rounds, medians, CPU time beside wall time."""
    from allocgym.bench import print_table
    from allocgym.bench.sweep import run
    from allocgym.distributed import require_tune

    require_tune()
    if quick:
        trials, timesteps, repeat = 2, 256, 1
    rows, notes = run(trials=trials, timesteps=timesteps, repeat=repeat, num_cpus=num_cpus)
    print_table(f"sweep of {trials} PPO trials x {timesteps:,} steps (medians of {repeat})", rows)
    for note in notes:
        typer.echo(note)


def _plain_warnings() -> None:
    """Show warnings as one plain line each, once per message: ``note: ...`` for data
    caveats (``DataWarning``), ``warning: ...`` otherwise (no source path)."""
    import sys
    import warnings

    from allocgym.errors import DataWarning

    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = str(message)
        if text in seen:
            return
        seen.add(text)
        label = "note" if issubclass(category, DataWarning) else "warning"
        print(f"{label}: {text}", file=file or sys.stderr)

    warnings.showwarning = show


def error_line(err: BaseException) -> str | None:
    """The one line a user sees for an error ``main`` handles (None: not one of them).

    The project's own errors carry their fix; the common ones from outside (a YAML syntax
    error, a missing or unreadable file, a file that is not UTF-8, a rejected value) get
    one here.
    """
    import yaml
    from pydantic import ValidationError

    from allocgym.errors import AllocgymError

    if isinstance(err, AllocgymError):
        return f"error: {err}"
    if isinstance(err, yaml.YAMLError):
        return f"error: invalid YAML ({' '.join(str(err).split())}): fix the file's syntax"
    if isinstance(err, UnicodeDecodeError):
        return (
            f"error: a file is not UTF-8 text ({err.reason} at byte {err.start}): save it as UTF-8"
        )
    if isinstance(err, OSError) and err.filename is None and err.strerror is None:
        return f"error: {err}"  # raised with its own message and fix
    what = err.filename or err if isinstance(err, OSError) else err
    if isinstance(err, FileNotFoundError):
        return f"error: {what}: no such file or directory: check the path"
    if isinstance(err, PermissionError):
        return f"error: {what}: permission denied: check the file's permissions"
    if isinstance(err, IsADirectoryError):
        return f"error: {what}: is a folder: pass a file"
    if isinstance(err, NotADirectoryError):
        return f"error: {what}: a file stands where a folder is needed: pass a folder"
    if isinstance(err, OSError):
        return f"error: {err.filename or ''} {err.strerror or err}: check the path".strip()
    if isinstance(err, ValidationError):
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": str(err)}
        where = ".".join(str(p) for p in first["loc"]) or "input"
        return f"error: {where}: {first['msg']} ({err.error_count()} error(s)): fix the value"
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    if isinstance(err, MemoryError):
        return (
            "error: out of memory (MemoryError): reduce the data or batch sizes (n_days, "
            "n_assets, --n-envs) or run on a machine with more memory"
        )
    return None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: no traceback reaches the user for the errors above;
    each prints one line naming the fix and exits with status 2 (130 when interrupted)."""
    _plain_warnings()
    try:
        app(args=argv)
    except (Exception, KeyboardInterrupt) as err:
        line = error_line(err)
        if line is None:
            raise
        typer.secho(line, fg=typer.colors.RED, err=True)
        raise SystemExit(130 if isinstance(err, KeyboardInterrupt) else 2) from None
