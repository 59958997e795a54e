"""Hyperparameter sweeps on Ray Tune: Optuna search, ASHA early stopping, one trials ledger.

``run_sweep`` trains one configuration per trial with :func:`allocgym.agents.train` (each
trial an ordinary run directory: config, TensorBoard, checkpoints, ``best/``) on a local
Ray or a cluster (:mod:`allocgym.distributed`). The objective is a validation metric of
the agent (default the Sharpe ratio), read from the validation runs training already makes
(``evaluations.jsonl``), never from the test split: the value of the metric at the run's
best checkpoint so far, the model the run would deliver. Each validation run is reported
to Tune as it happens, so ASHA can stop weak trials at its rungs (steps ``grace_period x
reduction_factor^k``).

Every trial lands in the sweep's trials ledger (``trials.jsonl``, :mod:`allocgym.ledger`):
completed and failed trials are recorded by training itself, trials that ASHA stopped by
the driver when the scheduler stops them, so each trial has exactly one line and the
Deflated Sharpe of a model picked from the sweep counts them all.

Layout of a sweep folder::

    sweep.json          the base config, the search space and the options (for --resume)
    trials.jsonl        the trials ledger
    trials/<trial id>/  one training run per trial
    tune/               Ray Tune's experiment state (what --resume restores)
    progress.json       counts by status and the best trial so far, rewritten as it goes
    results.csv, results.md   one row per trial, best first
    best_config.yaml    the best completed trial's resolved config (loads with --config),
                        with evaluation.trials_ledger set to this ledger

The search space and its file format: :mod:`allocgym.search_space`.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ray import tune
from stable_baselines3.common.callbacks import BaseCallback

from allocgym.config import AllocgymConfig, config_from_dict, config_hash
from allocgym.distributed import TrialResources, ray_runtime
from allocgym.errors import ConfigError
from allocgym.ledger import (
    EVALUATIONS_KEY,
    LEDGER_FILENAME,
    SHARPE_KEY,
    TrialsLedger,
    configuration_id,
    market_fingerprint,
    n_evaluations,
    read_evaluations,
    run_id_of,
    selection_key,
)
from allocgym.search_space import VALIDATION_METRICS, SearchSpace, space_from_dict

__all__ = [
    "OBJECTIVE",
    "SweepOptions",
    "SweepResult",
    "ValidationReporter",
    "format_cell",
    "run_sweep",
]

OBJECTIVE = "objective"
"""Name of the reported metric Tune optimises."""


# ----------------------------------------------------------------------------- trial side


def _finite_or(value: Any, fallback: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return fallback
    return v if math.isfinite(v) else fallback


class ValidationReporter(BaseCallback):
    """SB3 callback: report each validation run of a trial to Ray Tune.

    Training's :class:`~allocgym.agents.train.ValidationCallback` appends one record per
    validation run to ``evaluations.jsonl`` and keeps the best one in ``best/eval.json``;
    at each rollout start (after it) this callback reports new records through ``report``.
    When Tune's scheduler stops the trial, ``report`` raises ``SystemExit`` in the training
    thread; it becomes :class:`~allocgym.agents.train.StopTraining`, which ends training
    without a ledger line (the driver records the trial as ``stopped``).

    The end-of-training validation is not reported here but by the trial once ``train``
    has returned and recorded it, so a stop decision at the last rung cannot cut it short.

    Parameters
    ----------
    run_dir : Path
    total_timesteps : int
    metric : str
        Key of :data:`VALIDATION_METRICS`.
    report : callable
        ``report(metrics)``, e.g. ``ray.tune.report``.
    """

    def __init__(
        self,
        run_dir: Path,
        total_timesteps: int,
        metric: str,
        report: Callable[[dict[str, Any]], None],
    ) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.total = int(total_timesteps)
        self.metric = metric
        self.report = report
        self._seen = 0
        self._size = -1

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        from allocgym.agents.train import StopTraining

        path = self.run_dir / "evaluations.jsonl"
        size = path.stat().st_size if path.is_file() else 0
        if size == self._size:
            return
        self._size = size
        records = read_evaluations(self.run_dir)
        fresh = records[self._seen :]
        self._seen = len(records)
        fresh = [r for r in fresh if int(r["step"]) < self.total]
        if not fresh:
            return
        try:
            self.report(trial_metrics(self.run_dir, self.total, self.metric, fresh[-1]))
        except SystemExit:
            step = fresh[-1]["step"]
            raise StopTraining(f"stopped by the sweep's scheduler at step {step}") from None


def trial_metrics(
    run_dir: Path, total: int, metric: str, latest: Mapping[str, Any]
) -> dict[str, Any]:
    """What a trial reports after a validation run.

    ``objective`` is ``metric`` at the run's best checkpoint so far (``best/eval.json``,
    chosen on the validation Sharpe by training), ``val_sharpe`` that checkpoint's Sharpe
    ratio (the ledger's value), ``val_sharpe_last`` the latest run's. Non-finite values
    report as the worst value of their direction (-inf for a maximised metric).
    """
    best_path = Path(run_dir) / "best" / "eval.json"
    best = json.loads(best_path.read_text()) if best_path.is_file() else latest
    worst = -math.inf if VALIDATION_METRICS[metric] == "max" else math.inf
    return {
        OBJECTIVE: _finite_or(best["agent"].get(metric), worst),
        SHARPE_KEY: _finite_or(best.get("score"), -math.inf),
        "val_sharpe_last": _finite_or(latest.get("score"), -math.inf),
        "best_step": int(best["step"]),
        "num_timesteps": int(latest["step"]),
        "total_timesteps": int(total),
    }


@dataclass(frozen=True)
class TrialSpec:
    """What every trial needs besides its sampled values (sent to the workers once).

    Attributes
    ----------
    base : dict
        The base config as a tree (``model_dump(mode="json")``).
    space : SearchSpace
    folder : str
        Absolute sweep folder.
    market_id : str
        :func:`allocgym.ledger.market_fingerprint` of the market every trial trains on
        (with a trial's config, its ledger record's ``selection_key``).
    """

    base: dict[str, Any]
    space: SearchSpace
    folder: str
    market_id: str

    @property
    def ledger(self) -> Path:
        return Path(self.folder) / LEDGER_FILENAME

    def run_dir(self, trial_id: str) -> Path:
        return Path(self.folder) / "trials" / trial_id


def _summary(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "train_summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _recorded(ledger: Path, run_dir: Path) -> bool:
    return any(r.run_dir == str(run_dir) for r in TrialsLedger(ledger).read())


def run_trial(sample: dict[str, Any], spec: TrialSpec, market: Any) -> None:
    """The Tune trainable: train one sampled configuration in its run directory.

    A trial restarted by ``--resume`` continues from its newest checkpoint; one that had
    finished is not trained again (and gets its ledger line if the kill came before it).
    """
    from allocgym.agents.train import StopTraining, train

    trial_id = tune.get_context().get_trial_id()
    run_dir = spec.run_dir(trial_id)
    cfg = spec.space.apply(spec.base, sample)
    total = int(cfg.train.total_timesteps)
    summary = _summary(run_dir)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if summary is None or int(summary["num_timesteps"]) < total:
        reporter = ValidationReporter(run_dir, total, spec.space.metric, tune.report)
        try:
            train(cfg, run_dir, resume=True, market=market, ledger=spec.ledger,
                  callbacks=[reporter])  # fmt: skip
        except StopTraining:
            # Tune ends a stopped trial's thread with SystemExit from report(); hand it back
            # (returning would make Tune wait on a final report nobody collects).
            raise SystemExit(0) from None
        summary = _summary(run_dir)
        assert summary is not None
    elif not _recorded(spec.ledger, run_dir):
        TrialsLedger(spec.ledger).append(
            {
                "config_hash": config_hash(cfg),
                "seed": int(cfg.train.seed),
                "run_dir": str(run_dir),
                "status": "completed",
                "note": "recorded when the sweep resumed",
                "selection_key": selection_key(cfg, spec.market_id),
                "run_id": run_id_of(run_dir),
                "config_id": configuration_id(cfg),
                "metrics": {
                    SHARPE_KEY: summary["best_score"],
                    "best_step": summary["best_step"],
                    "num_timesteps": summary["num_timesteps"],
                    EVALUATIONS_KEY: n_evaluations(run_dir),
                },
            }
        )
    records = read_evaluations(run_dir)
    metrics = trial_metrics(run_dir, total, spec.space.metric, records[-1])
    metrics["num_timesteps"] = int(summary["num_timesteps"])
    metrics["wall_s"] = time.perf_counter() - wall0  # this attempt's training, for the table
    metrics["cpu_s"] = time.process_time() - cpu0
    tune.report(metrics)


# ----------------------------------------------------------------------------- driver side


class SweepProgress(tune.Callback):
    """Driver-side Tune callback: progress lines, ``progress.json``, ledger lines of stopped
    trials (and of failed ones that training could not record, e.g. a lost worker)."""

    def __init__(self, spec: TrialSpec, n_trials: int, echo: Callable[[str], None]) -> None:
        self.spec = spec
        self.n_trials = int(n_trials)
        self.echo = echo

    def __getstate__(self) -> dict[str, Any]:
        # Tune saves its callbacks with the experiment; a console is not picklable, and a
        # resumed sweep prints through its own
        return {"spec": self.spec, "n_trials": self.n_trials}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.echo = _echo

    def _name(self, trial: Any) -> str:
        return str(trial.trial_id)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        shown = ", ".join(
            f"{k}={_short(v)}" for k, v in self.spec.space.values(trial.config).items()
        )
        self.echo(f"start {self._name(trial)}: {shown}")
        self._write_progress(trials)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.echo(
            f"  {self._name(trial)} step {result.get('num_timesteps', 0):,}/"
            f"{result.get('total_timesteps', 0):,}: validation Sharpe "
            f"{result.get('val_sharpe_last', math.nan):+.3f}, {self.spec.space.metric} at best "
            f"{result.get(OBJECTIVE, math.nan):+.4g}"
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        done = int(last.get("num_timesteps", 0)) >= int(last.get("total_timesteps", 1))
        if done:
            self.echo(f"completed {self._name(trial)}: {self.spec.space.metric} "
                      f"{last.get(OBJECTIVE, math.nan):+.4g}")  # fmt: skip
        else:
            step = int(last.get("num_timesteps", 0))
            self._record(trial, "stopped", last, f"stopped by ASHA at step {step}")
            self.echo(f"stopped {self._name(trial)} at step {step:,} (ASHA)")
        self._write_progress(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = _trial_error(trial)
        self._record(trial, "failed", trial.last_result or {}, error)
        self.echo(f"failed {self._name(trial)}: {error}")
        self._write_progress(trials)

    def _record(self, trial: Any, status: str, last: Mapping[str, Any], note: str) -> None:
        run_dir = self.spec.run_dir(trial.trial_id)
        if _recorded(self.spec.ledger, run_dir):
            return  # training recorded it (completed or failed with its exception)
        metrics: dict[str, Any] = {}
        if SHARPE_KEY in last:
            metrics = {SHARPE_KEY: _finite_or(last[SHARPE_KEY], math.nan),
                       "num_timesteps": int(last.get("num_timesteps", 0)),
                       EVALUATIONS_KEY: n_evaluations(run_dir)}  # fmt: skip
        try:
            cfg = self.spec.space.apply(self.spec.base, trial.config)
            digest, seed, config_id = config_hash(cfg), int(cfg.train.seed), configuration_id(cfg)
            # a sweep started by an older version resumes with its pickled spec, unkeyed
            market_id = getattr(self.spec, "market_id", None)
            key = "" if market_id is None else selection_key(cfg, market_id)
        except ConfigError:
            digest, seed = "invalid-config", int(self.spec.base.get("train", {}).get("seed", 0))
            key, config_id = "", ""
        TrialsLedger(self.spec.ledger).append({"config_hash": digest, "seed": seed,
                                               "run_dir": str(run_dir), "status": status,
                                               "metrics": metrics, "note": note[:500],
                                               "selection_key": key, "config_id": config_id,
                                               "run_id": run_id_of(run_dir)})  # fmt: skip

    def _write_progress(self, trials: list) -> None:
        counts = {s: 0 for s in ("pending", "running", "completed", "stopped", "failed")}
        for rec in TrialsLedger(self.spec.ledger).read():
            counts[rec.status] += 1
        recorded = {r.run_dir for r in TrialsLedger(self.spec.ledger).read()}
        counts["running"] = sum(
            t.status == "RUNNING" and str(self.spec.run_dir(t.trial_id)) not in recorded
            for t in trials
        )
        counts["pending"] = max(self.n_trials - sum(counts.values()), 0)
        best = _best_row(_rows(self.spec, trials_from_tune=trials))
        out = {"trials": self.n_trials, **counts,
               "best": None if best is None else {"trial": best["trial"],
                                                  self.spec.space.metric: best[OBJECTIVE]},
               "updated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}  # fmt: skip
        path = Path(self.spec.folder) / "progress.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(out, indent=2, default=str) + "\n")
        os.replace(tmp, path)


def _echo(message: str) -> None:
    print(message, flush=True)


def _trial_error(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    text = ""
    if path and Path(path).is_file():
        text = Path(path).read_text()
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "the trial raised (see its error.txt in tune/)")[:400]


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if not isinstance(value, str) else value


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)


@dataclass(frozen=True)
class SweepOptions:
    """How a sweep runs.

    Attributes
    ----------
    trials : int
        Trials to run (``num_samples``).
    search : {"optuna", "random"}
        Optuna's TPE sampler, or independent random draws.
    scheduler : {"asha", "none"}
        ASHA early stopping on the validation reports, or every trial to the end.
    seed : int
        Seed of the search (which configurations are drawn).
    resources : TrialResources
        Ray resources per trial.
    max_concurrent : int or None
        Trials running at once; None = as many as the resources allow.
    """

    trials: int = 16
    search: str = "optuna"
    scheduler: str = "asha"
    seed: int = 0
    resources: TrialResources = field(default_factory=TrialResources)
    max_concurrent: int | None = None

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"--trials {self.trials}: need at least 1")
        if self.search not in ("optuna", "random"):
            raise ConfigError(f"--search {self.search!r}: use optuna or random")
        if self.scheduler not in ("asha", "none"):
            raise ConfigError(f"--scheduler {self.scheduler!r}: use asha or none")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ConfigError(f"--max-concurrent {self.max_concurrent}: need at least 1")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["resources"] = self.resources.as_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepOptions:
        data = dict(data)
        data["resources"] = TrialResources(**data.get("resources", {}))
        return cls(**data)


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` returns.

    Attributes
    ----------
    folder : Path
    rows : list of dict
        One per trial, best first: trial, status, objective, val_sharpe, steps, the
        searched values, run_dir, note.
    best : dict or None
        The best completed trial's row (None when no trial completed with a finite value).
    best_config : Path or None
        ``best_config.yaml`` (None with no best trial).
    finished : bool
        False when the sweep was interrupted (trials left unrecorded): resume it.
    counts : dict of str to int
        Ledger records per status.
    abandoned : list of str
        Trial folders Tune did not restore after an interruption (killed before the sweep
        saved that they existed): not trials, not in the ledger; their configurations are
        drawn again.
    wall_s : float
        Seconds of the whole call, Ray start and stop included.
    ray_start_s : float
        Seconds to start or join Ray.
    """

    folder: Path
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_config: Path | None
    finished: bool
    counts: dict[str, int]
    abandoned: list[str]
    wall_s: float
    ray_start_s: float


def _searcher(space: SearchSpace, options: SweepOptions) -> Any:
    points = space.encoded_points() or None
    if options.search == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(points_to_evaluate=points, random_state=options.seed)
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(points_to_evaluate=points, seed=options.seed)


def _scheduler(space: SearchSpace, options: SweepOptions, cfg: AllocgymConfig) -> Any:
    if options.scheduler == "none":
        return None
    from ray.tune.schedulers import AsyncHyperBandScheduler

    total = int(cfg.train.total_timesteps)
    if cfg.train.eval_freq <= 0:
        raise ConfigError(
            "--scheduler asha stops trials on their validation runs but train.eval_freq = 0 "
            "runs none: set train.eval_freq (e.g. a tenth of train.total_timesteps) or pass "
            "--scheduler none"
        )
    grace = int(space.grace_period or cfg.train.eval_freq)
    if grace > total:
        raise ConfigError(
            f"ASHA grace period {grace:,} steps exceeds train.total_timesteps = {total:,}: "
            "lower asha.grace_period / train.eval_freq or pass --scheduler none"
        )
    return AsyncHyperBandScheduler(time_attr="num_timesteps", max_t=total, grace_period=grace,
                                   reduction_factor=space.reduction_factor,
                                   stop_last_trials=False)  # fmt: skip


def _check_new(
    folder: Path, cfg: AllocgymConfig, space: SearchSpace, options: SweepOptions
) -> None:
    """Refuse a new sweep's folder, config, space or ASHA setup before Ray starts."""
    if (folder / "sweep.json").is_file():
        raise ConfigError(
            f"{str(folder)!r} already holds a sweep: pass --resume to continue it or pick a "
            "new --run-dir"
        )
    if cfg.train.eval_split == "test":
        raise ConfigError(
            "train.eval_split = 'test': a sweep selects on its objective, which must never "
            "read the test split; use validation"
        )
    space.check_against(cfg.model_dump(mode="json"), options.scheduler)
    _scheduler(space, options, cfg)


def _write_spec(
    folder: Path, cfg: AllocgymConfig, space: SearchSpace, options: SweepOptions
) -> None:
    """``sweep.json``: what ``--resume`` restarts with (written once Ray is up)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"config": cfg.model_dump(mode="json"), "space": space.to_dict(),
            "options": options.to_dict()}  # fmt: skip
    (folder / "sweep.json").write_text(json.dumps(spec, indent=2) + "\n")


def _resume_spec(
    folder: Path,
    cfg: AllocgymConfig | None,
    space: SearchSpace | None,
    options: SweepOptions | None,
) -> tuple[AllocgymConfig, SearchSpace, SweepOptions]:
    """The config, space and options a sweep started with; refuse different ones."""
    path = folder / "sweep.json"
    if not path.is_file():
        raise ConfigError(
            f"{str(folder)!r} holds no sweep to resume (no sweep.json): drop --resume to start "
            "one there"
        )
    saved = json.loads(path.read_text())
    saved_cfg = config_from_dict(saved["config"])
    saved_space = space_from_dict(saved["space"], source=str(path))
    saved_options = SweepOptions.from_dict(saved["options"])
    for what, given, kept in (("config", cfg, saved_cfg), ("search space", space, saved_space),
                              ("options", options, saved_options)):  # fmt: skip
        same = (
            config_hash(given) == config_hash(kept)
            if isinstance(given, AllocgymConfig)
            else given == kept
        )
        if given is not None and not same:
            raise ConfigError(
                f"the sweep in {str(folder)!r} started with another {what}: resume it without "
                "--config / --space / --set / sweep options (it keeps its own), or start a new "
                "--run-dir"
            )
    return saved_cfg, saved_space, saved_options


def _quiet_tune() -> None:
    """Process settings of a sweep: progress from :class:`SweepProgress` only, frequent
    saves of the trial list, and no Optuna chatter."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # progress comes from SweepProgress only
    # Tune saves which trials exist every 10 s by default; a trial started and killed in
    # between is not restored by --resume (its folder is reported as abandoned). Save often.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A restored Optuna searcher sees a resumed trial's reports again; it keeps the first.
    warnings.filterwarnings("ignore", message="The reported value is ignored because")


def _tuner(
    trainable: Any,
    spec: TrialSpec,
    cfg: AllocgymConfig,
    space: SearchSpace,
    options: SweepOptions,
    *,
    resume: bool,
    say: Callable[[str], None],
) -> tune.Tuner:
    """The Tuner of the sweep in ``spec.folder``: restored (unfinished trials continue)
    when resuming one Tune saved, else a new one."""
    folder = Path(spec.folder)
    tune_path = folder / "tune"
    if resume and tune.Tuner.can_restore(str(tune_path)):
        say(f"resuming the sweep in {folder}")
        tuner = tune.Tuner.restore(str(tune_path), trainable, resume_unfinished=True,
                                   resume_errored=False, restart_errored=False,
                                   param_space=space.param_space())  # fmt: skip
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=space.param_space(),
            tune_config=tune.TuneConfig(
                metric=OBJECTIVE,
                mode=space.mode,
                search_alg=_searcher(space, options),
                scheduler=_scheduler(space, options, cfg),
                num_samples=options.trials,
                max_concurrent_trials=options.max_concurrent,
                reuse_actors=True,
                trial_dirname_creator=_trial_dirname,
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=str(folder),
                verbose=0,
                callbacks=[SweepProgress(spec, options.trials, say)],
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
    return tuner


def run_sweep(
    cfg: AllocgymConfig | None,
    space: SearchSpace | None,
    folder: str | Path,
    *,
    options: SweepOptions | None = None,
    address: str = "local",
    num_cpus: int | None = None,
    resume: bool = False,
    market: Any = None,
    echo: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run (or resume) a sweep; write its folder (see the module docstring).

    Parameters
    ----------
    cfg : AllocgymConfig or None
        Base config of every trial (the space's keys are replaced per trial); None only
        with ``resume`` (the sweep's own is used).
    space : SearchSpace or None
        None only with ``resume``.
    folder : path
        Sweep folder (new, or the one to resume).
    options : SweepOptions, optional
        Default ``SweepOptions()``; with ``resume``, the sweep's own.
    address : str
        ``local``, ``auto`` or ``HOST:PORT`` (:mod:`allocgym.distributed`).
    num_cpus : int, optional
        CPUs of a local Ray (default: all of this machine's).
    resume : bool
        Continue the sweep in ``folder`` with the config, space and options it started
        with (given ones must equal them); unfinished trials continue from their newest
        checkpoint.
    market : MarketData, optional
        Default ``load_market(cfg.data)``.
    echo : callable, optional
        Progress lines (default ``print``).

    Raises
    ------
    ConfigError
        A space the config cannot take, a folder that holds a sweep (without ``resume``)
        or none (with it), a resumed sweep given a different config, space or options.
    ClusterError
        Ray cannot be reached, or a trial needs more than the cluster has.
    """
    t0 = time.perf_counter()
    folder = Path(folder).resolve()
    say = echo or _echo
    if resume:
        cfg, space, options = _resume_spec(folder, cfg, space, options)
    else:
        if cfg is None or space is None:
            raise ConfigError("a new sweep needs a config and a search space (--space FILE)")
        options = options or SweepOptions()
        _check_new(folder, cfg, space, options)
    _quiet_tune()
    with ray_runtime(address, num_cpus=num_cpus) as rt:
        rt.check_fits(options.resources)
        if not resume:
            _write_spec(folder, cfg, space, options)
        say(rt.describe())
        if market is None:
            from allocgym.data import load_market

            market = load_market(cfg.data)
        spec = TrialSpec(
            cfg.model_dump(mode="json"), space, str(folder), market_fingerprint(market)
        )
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, spec=spec, market=market),
            options.resources.as_dict(),
        )
        tuner = _tuner(trainable, spec, cfg, space, options, resume=resume, say=say)
        say(
            f"sweep: {options.trials} trials ({options.search} search, scheduler "
            f"{options.scheduler}, {options.resources.cpu:g} CPU / {options.resources.gpu:g} GPU "
            f"each), objective: validation {space.metric} ({space.mode}) -> {folder}"
        )
        grid = tuner.fit()
        ray_start_s = rt.start_s
    rows = _rows(spec, result_grid=grid)
    return _finish(spec, rows, time.perf_counter() - t0, ray_start_s)


def _rows(
    spec: TrialSpec, *, result_grid: Any = None, trials_from_tune: Sequence[Any] | None = None
) -> list[dict[str, Any]]:
    """One row per trial: Tune's last report joined with the trial's ledger line."""
    ledger = {r.run_dir: r for r in TrialsLedger(spec.ledger).read()}
    entries: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    if result_grid is not None:
        for res in result_grid:
            trial_id = Path(res.path).name
            entries.append((trial_id, dict(res.config or {}), dict(res.metrics or {})))
    for trial in trials_from_tune or ():
        entries.append((str(trial.trial_id), dict(trial.config), dict(trial.last_result or {})))
    rows: list[dict[str, Any]] = []
    for trial_id, config, last in entries:
        run_dir = spec.run_dir(trial_id)
        rec = ledger.get(str(run_dir))
        status = rec.status if rec is not None else "unfinished"
        objective = last.get(OBJECTIVE)
        rows.append({
            "trial": trial_id,
            "status": status,
            OBJECTIVE: None if objective is None else _finite_or(objective, math.nan),
            SHARPE_KEY: None if rec is None else rec.metrics.get(SHARPE_KEY),
            "steps": last.get("num_timesteps"),
            "cpu_s": last.get("cpu_s"),
            **spec.space.values(config),
            "run_dir": str(run_dir),
            "note": "" if rec is None else rec.note,
        })  # fmt: skip
    sign = 1.0 if spec.space.mode == "max" else -1.0

    def order(row: dict[str, Any]) -> tuple[int, float]:
        value = row[OBJECTIVE]
        ok = value is not None and math.isfinite(value)
        return (0 if ok else 1, -sign * value if ok else 0.0)

    return sorted(rows, key=order)


def _best_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    for row in rows:
        value = row[OBJECTIVE]
        if row["status"] == "completed" and value is not None and math.isfinite(value):
            return row
    return None


def _finish(
    spec: TrialSpec, rows: list[dict[str, Any]], wall_s: float, ray_start_s: float
) -> SweepResult:
    folder = Path(spec.folder)
    keys = [
        "trial",
        "status",
        OBJECTIVE,
        SHARPE_KEY,
        "steps",
        "cpu_s",
        *spec.space.keys,
        "run_dir",
        "note",
    ]
    with (folder / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: format_cell(row.get(k)) for k in keys})
    metric = spec.space.metric
    head = ["rank", "trial", "status", f"{metric} ({spec.space.mode})", "val Sharpe", "steps",
            *spec.space.keys]  # fmt: skip
    lines = [
        "# Sweep results",
        "",
        f"Objective: validation {metric} of the agent at each trial's best checkpoint "
        f"({spec.space.mode}imised); val Sharpe is the trials ledger's value. Best first.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for k, row in enumerate(rows, start=1):
        cells = [str(k), row["trial"], row["status"], format_cell(row[OBJECTIVE]), format_cell(row[SHARPE_KEY]),
                 format_cell(row["steps"]), *(format_cell(row.get(key)) for key in spec.space.keys)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    known = {row["run_dir"] for row in rows}
    abandoned = sorted(str(p) for p in (folder / "trials").glob("*") if str(p) not in known)
    if abandoned:
        lines += ["", f"Abandoned by an interruption (not trials, not in the ledger): "
                  f"{', '.join(Path(a).name for a in abandoned)}."]  # fmt: skip
    (folder / "results.md").write_text("\n".join(lines) + "\n")
    counts = TrialsLedger(spec.ledger).counts()
    finished = all(row["status"] != "unfinished" for row in rows)
    best = _best_row(rows)
    best_path: Path | None = None
    if best is not None:
        best_path = folder / "best_config.yaml"
        src = Path(best["run_dir"]) / "config.yaml"
        score = f"validation {metric} {best[OBJECTIVE]:.4g}"
        if metric != "sharpe":
            score += f", validation Sharpe {format_cell(best[SHARPE_KEY])}"
        header = (
            f"# Best of {len(rows)} sweep trials ({folder}): trial {best['trial']}, {score}.\n"
            f"#   allocgym train --config {best_path}\n"
        )
        # the winner's trials are the sweep's: its retraining and its DSR use this ledger
        best_cfg = yaml.safe_load(src.read_text())
        best_cfg.setdefault("evaluation", {})["trials_ledger"] = str(Path(spec.ledger).resolve())
        best_path.write_text(header + yaml.safe_dump(best_cfg, sort_keys=False))
    return SweepResult(
        folder, rows, best, best_path, finished, counts, abandoned, wall_s, ray_start_s
    )


def format_cell(value: Any) -> str:
    """A table cell: 4 significant digits, '-' for None / non-finite, JSON for lists."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "-"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return str(value)
