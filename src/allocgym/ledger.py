"""The trials ledger: every configuration trained, for the Deflated Sharpe Ratio.

A *trial* is one configuration trained and scored on the validation split: each run of a
sweep or study, each seed of ``allocgym train`` / ``quickstart``, every run that shares a
study directory. All of them are recorded when they end (``completed``, ``failed`` or
``stopped`` early by a pruner), whichever turned out best, and never selected after the
fact: the Deflated Sharpe Ratio deflates the chosen run's Sharpe ratio by how many
candidates it was chosen from (``N``) and how much their Sharpe ratios varied (``V``), so
a ledger that lists only the winners makes the DSR meaningless.

The ledger is a ``trials.jsonl`` file, one JSON object per line (:class:`TrialRecord`).
Each append is one ``write`` on a file opened with ``O_APPEND`` under an exclusive
``flock``, so concurrent writers (sweep workers on one machine) never interleave lines.

One run, one trial
------------------
A run is identified by its directory (``run_dir``, made absolute on append) and its
``run_id``, a random id a fresh start writes into the directory (:func:`new_run_id`) and
resumes keep: a directory emptied and trained again is a new trial. A line written before
run directories were stored absolute names its run relative to where training ran; an
absolute ``run_dir`` that ends with it is the same run. A run can be recorded more than
once: training it again with ``resume`` (to extend it, or with nothing
left to train) appends another line, and so does a failed attempt that a later one
completes. The file keeps every line (:meth:`TrialsLedger.history`); every count and
statistic reads one record per run (:meth:`TrialsLedger.read`), the run's last, except
that a ``failed`` record does not replace a ``completed`` or ``stopped`` one: a resumed
run that crashes still has the validation score it was a candidate with.

Which trials count
------------------
``n_trials`` (``N``) counts ``completed`` and ``stopped`` runs: a stopped trial was a
candidate rejected on its validation score, which is selection. A ``failed`` trial counts
when it had been scored before its exception (its record carries the best validation
score so far, and its ``best/`` model can be evaluated); one that failed before any score
was never a candidate. The Sharpe ratios whose variance
gives ``V`` are the ``val_sharpe`` of the completed trials (:meth:`TrialsLedger.trial_sharpes`):
annualised with each record's ``periods_per_year``, as the training-time validation
reports them. Each is the best of the run's validation runs (``n_evaluations``, one per
``train.eval_freq`` steps): ``N`` counts runs, not those checkpoints, so when they are
many the DSR says so (:meth:`TrialsLedger.most_evaluations`).

Comparable trials
-----------------
One ledger can hold runs of several selection problems: ``allocgym train`` records every
``--run-dir runs/X`` in ``runs/trials.jsonl``, whatever market or split it trained on.
Validation Sharpe ratios measured on different data are no candidates of one choice, so
each record carries a :func:`selection_key`: a digest of the market's data, the date
splits, the training split and the validation split (the validation Sharpe is annualised
with the fixed 252 of the env's episode metrics, which ``periods_per_year`` records, so
no evaluation setting enters it). A ledger opened with a ``selection_key`` reads only the
runs of that key (:meth:`TrialsLedger.read`) and counts the others it leaves out
(:meth:`TrialsLedger.selection_counts`). Records written before keys existed have none
(``''``): they still count, and the counts name them, since they usually are the
evaluated run's own older trials. Read without a key, a ledger of several keys (a
walk-forward study's folds) is several selections: the DSR takes ``N`` as the most trials
of one and ``V`` pooled within them (:func:`allocgym.evaluation.dsr_trial_set`).

Seeds or configurations
-----------------------
Each record also carries a ``config_id`` (:func:`configuration_id`: the config without
its seed, where the run ran and how it is evaluated). When every trial of each selection
shares one, the trials are the seeds of one configuration: their spread is training
noise and the configurations tried before are not among them, so the DSR flags its trial
set weak (:meth:`TrialsLedger.one_configuration`). Records written before ids existed
have none (``''``: unknown, never flagged).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from allocgym.errors import ConfigError, DataError

if TYPE_CHECKING:
    from allocgym.config import AllocgymConfig
    from allocgym.data import MarketData

try:  # POSIX; elsewhere O_APPEND alone keeps each single write whole on local disks
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LEDGER_FILENAME",
    "TRIAL_STATUSES",
    "TrialRecord",
    "TrialsLedger",
    "check_same_data",
    "check_symbols",
    "check_unseen_bars",
    "configuration_id",
    "find_ledger",
    "locked_append",
    "market_fingerprint",
    "n_evaluations",
    "new_run_id",
    "read_evaluations",
    "read_run_data",
    "run_data",
    "run_id_of",
    "scored_metrics",
    "selection_key",
    "write_run_data",
]

LEDGER_FILENAME = "trials.jsonl"
"""File name of a study's ledger (in the study directory, beside or above its runs)."""

RUN_ID_FILENAME = "run_id.txt"
"""The file in a run directory that holds its ``run_id``."""

TRIAL_STATUSES: tuple[str, ...] = ("completed", "failed", "stopped")
"""Allowed ``TrialRecord.status`` values."""

SHARPE_KEY = "val_sharpe"
"""Metric holding a trial's annualised validation Sharpe ratio."""

EVALUATIONS_KEY = "n_evaluations"
"""Metric holding how many validation runs (checkpoints) a trial's ``val_sharpe`` is the
best of."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class TrialRecord:
    """One trained configuration (one line of ``trials.jsonl``).

    Attributes
    ----------
    config_hash : str
        ``allocgym.config.config_hash`` of the run's resolved config.
    seed : int
        Training seed.
    run_dir : str
        The run directory, the run's identity in the ledger (made absolute by
        :meth:`TrialsLedger.append`).
    status : {"completed", "failed", "stopped"}
    metrics : dict of str to float or None
        Validation metrics; ``val_sharpe`` (annualised validation Sharpe ratio) is required
        for a completed trial. None stands for a non-finite value.
    periods_per_year : float
        Annualisation of ``val_sharpe`` (252 for daily bars).
    started_at, finished_at : str
        ISO 8601 timestamps of the training ('' when unknown).
    recorded_at : str
        ISO 8601 time of the append (set by :meth:`TrialsLedger.append` when empty).
    note : str
        Free text, e.g. the exception of a failed trial.
    selection_key : str
        :func:`selection_key` of the run: only trials of one key are compared ('' in
        records written before keys existed).
    run_id : str
        :func:`run_id_of` the run directory: with ``run_dir``, the run's identity ('' in
        records written before run ids existed, and for runs that never started).
    config_id : str
        :func:`configuration_id` of the run's config: runs of one ``config_id`` are seeds
        of one configuration ('' in records written before it existed: unknown).
    """

    config_hash: str
    seed: int
    run_dir: str
    status: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    periods_per_year: float = 252.0
    started_at: str = ""
    finished_at: str = ""
    recorded_at: str = ""
    note: str = ""
    selection_key: str = ""
    run_id: str = ""
    config_id: str = ""

    def __post_init__(self) -> None:
        if self.status not in TRIAL_STATUSES:
            raise ConfigError(
                f"trial status {self.status!r} is unknown: use one of {list(TRIAL_STATUSES)}"
            )
        if not (isinstance(self.config_hash, str) and self.config_hash):
            raise ConfigError(
                f"trial config_hash {self.config_hash!r}: pass allocgym.config.config_hash(cfg)"
            )
        if not isinstance(self.config_id, str):
            raise ConfigError(
                f"trial config_id {self.config_id!r}: pass allocgym.ledger.configuration_id(cfg)"
            )
        if not isinstance(self.selection_key, str):
            raise ConfigError(
                f"trial selection_key {self.selection_key!r}: pass "
                "allocgym.ledger.selection_key(cfg, market_fingerprint(market))"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"trial seed {self.seed!r} must be an int")
        if not (math.isfinite(self.periods_per_year) and self.periods_per_year > 0):
            raise ConfigError(
                f"trial periods_per_year = {self.periods_per_year!r} must be finite and > 0 "
                "(252 for daily bars)"
            )
        clean: dict[str, float | None] = {}
        for key, value in dict(self.metrics or {}).items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float | np.number)
            ):
                raise ConfigError(f"trial metric {key} = {value!r} must be a number or None")
            v = None if value is None else float(value)
            clean[str(key)] = v if v is None or math.isfinite(v) else None
        object.__setattr__(self, "metrics", clean)
        if self.status == "completed" and SHARPE_KEY not in clean:
            raise ConfigError(
                f"completed trial {self.run_dir!r} has no metrics[{SHARPE_KEY!r}]: record its "
                "annualised validation Sharpe ratio (None if it is not finite)"
            )

    @property
    def val_sharpe(self) -> float:
        """Annualised validation Sharpe ratio, NaN when missing or non-finite."""
        v = self.metrics.get(SHARPE_KEY)
        return float("nan") if v is None else float(v)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        """A record from one parsed line; unknown keys are rejected."""
        known = {f for f in cls.__dataclass_fields__}
        extra = sorted(set(data) - known)
        if extra:
            raise ConfigError(f"unknown keys {extra}: a trial record has {sorted(known)}")
        missing = sorted({"config_hash", "seed", "run_dir", "status"} - set(data))
        if missing:
            raise ConfigError(f"missing keys {missing}")
        return cls(**dict(data))


class TrialsLedger:
    """Append-only ``trials.jsonl`` of a study (see the module docstring).

    Parameters
    ----------
    path : path
        The ledger file, or a directory holding ``trials.jsonl``. Created on the first
        :meth:`append`; a missing file reads as an empty ledger.
    selection_key : str, optional
        Read only the runs of this :func:`selection_key` (and those recorded without
        one); None reads every run.
    """

    def __init__(self, path: str | Path, selection_key: str | None = None) -> None:
        p = Path(path)
        self.path = p / LEDGER_FILENAME if p.is_dir() else p
        self.selection_key = selection_key

    def __repr__(self) -> str:
        key = "" if self.selection_key is None else f", selection_key={self.selection_key!r}"
        return f"TrialsLedger({str(self.path)!r}{key})"

    def append(self, record: TrialRecord | Mapping[str, Any]) -> TrialRecord:
        """Append one record as one line; safe with concurrent writers.

        Returns
        -------
        TrialRecord
            The record written: ``run_dir`` absolute, ``recorded_at`` filled in when it
            was empty.
        """
        rec = record if isinstance(record, TrialRecord) else TrialRecord.from_dict(record)
        # one spelling per directory ("runs/x", "./runs/x", "/home/u/runs/x"), so that
        # the run counts once in read()
        rec = TrialRecord(**{**asdict(rec), "run_dir": os.path.abspath(rec.run_dir),
                             "recorded_at": rec.recorded_at or _now()})  # fmt: skip
        with locked_append(self.path) as append:
            append(asdict(rec))
        return rec

    def read(self) -> list[TrialRecord]:
        """One record per run: its last, unless that failed after a scored one.

        A ``failed`` record does not replace a ``completed`` or ``stopped`` record of the
        same ``run_dir`` (see the module docstring). With a ``selection_key``, only the runs
        of that key or of none. Runs come in the order of their first line; [] when the
        file does not exist.

        Raises
        ------
        DataError
            A line that is not a valid record (the message gives the file and line number).
        """
        return [r for r in self._runs() if self._selects(r)]

    def _runs(self) -> list[TrialRecord]:
        # a replaced value keeps the key's first position
        runs: dict[tuple[str, str], TrialRecord] = {}
        for rec in self.history():
            key = _run_key(rec, runs)
            prior = runs.get(key)
            if rec.status != "failed" or prior is None or prior.status == "failed":
                runs[key] = rec
        return list(runs.values())

    def unrecorded(self, run_dirs: Sequence[str | Path]) -> list[str]:
        """The run directories in ``run_dirs`` whose ``run_id`` no line of the ledger
        names: runs killed before they could record themselves (SIGKILL, the
        out-of-memory killer, a lost machine). A run without one (trained before run ids
        existed) is not listed: its folder, reached by another path or named relative to
        another working directory, cannot be matched for sure."""
        ids = {rec.run_id for rec in self.history()}
        out = []
        for d in run_dirs:
            run_id = run_id_of(d)
            if run_id and run_id not in ids:
                out.append(str(d))
        return out

    def _selects(self, rec: TrialRecord) -> bool:
        return self.selection_key is None or rec.selection_key in ("", self.selection_key)

    def selection_counts(self) -> dict[str, int]:
        """Trials (completed and stopped runs) by how :meth:`read` treats their key.

        Returns
        -------
        dict of str to int
            ``left_out``: trials of another selection key, which :meth:`read` skips;
            ``unkeyed``: trials recorded without a key, which it counts (both 0 without a
            ``selection_key``: every trial counts).
        """
        if self.selection_key is None:
            return {"left_out": 0, "unkeyed": 0}
        trials = [r for r in self._runs() if _candidate(r)]
        return {
            "left_out": sum(not self._selects(r) for r in trials),
            "unkeyed": sum(r.selection_key == "" for r in trials),
        }

    def history(self) -> list[TrialRecord]:
        """Every line, in file order: a run recorded again appears again.

        Raises
        ------
        DataError
            A line that is not a valid record (the message gives the file and line number).
        """
        if not self.path.is_file():
            return []
        out: list[TrialRecord] = []
        with self.path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    if not isinstance(data, dict):
                        raise ConfigError(f"a JSON {type(data).__name__}, not an object")
                    out.append(TrialRecord.from_dict(data))
                except (ValueError, TypeError) as err:  # JSONDecodeError, ConfigError too
                    raise DataError(
                        f"{self.path}:{lineno}: not a valid trial record ({err}); repair or "
                        "delete that line (the other lines are kept)"
                    ) from None
        return out

    def trial_sharpes(self, per_period: bool = False) -> np.ndarray:
        """Validation Sharpe ratios of the completed runs with a finite one (one per run).

        Parameters
        ----------
        per_period : bool
            Divide each by ``sqrt(periods_per_year)`` of its record: per-period Sharpe
            ratios, the unit of the Deflated Sharpe Ratio.

        Returns
        -------
        ndarray, shape (n_completed_finite,)
            Annualised (default) or per-period.
        """
        return self.scored_trials(per_period)[0]

    def scored_trials(self, per_period: bool = False) -> tuple[np.ndarray, list[str]]:
        """:meth:`trial_sharpes` and, for each, its run's ``selection_key`` ('' = none)."""
        scored = [
            (r.val_sharpe / (math.sqrt(r.periods_per_year) if per_period else 1.0), r.selection_key)
            for r in self.read()
            if r.status == "completed"
        ]
        keep = [(s, k) for s, k in scored if math.isfinite(s)]
        return np.asarray([s for s, _ in keep], dtype=np.float64), [k for _, k in keep]

    def one_configuration(self) -> bool:
        """Whether each selection read holds the trials (completed and stopped runs) of one
        configuration only, its seeds: then their spread is training noise, not a choice
        between configurations. The unkeyed trials belong to every selection, as the DSR
        counts them. False when there are none, or a trial's ``config_id`` is unknown (a
        record written before it existed)."""
        trials = self._candidates()
        if self.selection_key is not None:  # one selection, its unkeyed trials included
            groups = [{r.config_id for r in trials}]
        else:  # each key's, with the unkeyed trials, which count in every selection
            unkeyed = {r.config_id for r in trials if not r.selection_key}
            keys = {r.selection_key for r in trials if r.selection_key}
            groups = [
                {r.config_id for r in trials if r.selection_key == k} | unkeyed for k in keys
            ] or [unkeyed]
        return bool(trials) and all(len(g) == 1 and "" not in g for g in groups)

    def most_evaluations(self) -> int:
        """The most validation runs any trial's ``val_sharpe`` was chosen among (0 when no
        trial recorded :data:`EVALUATIONS_KEY`)."""
        counts = [r.metrics.get(EVALUATIONS_KEY) for r in self._candidates()]
        return int(max((c for c in counts if c is not None), default=0))

    def trials_per_key(self) -> dict[str, int]:
        """Trials (completed and stopped runs) per ``selection_key`` read ('' = none), in
        the order of each key's first run."""
        out: dict[str, int] = {}
        for r in self._candidates():
            out[r.selection_key] = out.get(r.selection_key, 0) + 1
        return out

    def _candidates(self) -> list[TrialRecord]:
        """The trials :meth:`read` gives: completed and stopped runs, and failed ones that
        had been scored (the candidates)."""
        return [r for r in self.read() if _candidate(r)]

    @property
    def n_trials(self) -> int:
        """Trials ``N``: the candidates (a run that failed before any score never was one)."""
        return len(self._candidates())

    def counts(self) -> dict[str, int]:
        """Runs per status, as :meth:`read` gives them (every status present, 0 included)."""
        recs = self.read()
        return {s: sum(r.status == s for r in recs) for s in TRIAL_STATUSES}


def _run_key(rec: TrialRecord, runs: Mapping[tuple[str, str], Any]) -> tuple[str, str]:
    """``(run_dir, run_id)`` of ``rec``, or the key of an earlier line that named the same
    run by a relative path (written before run directories were stored absolute)."""
    key = (rec.run_dir, rec.run_id)
    if key in runs or not os.path.isabs(rec.run_dir):
        return key
    for old_dir, old_id in runs:
        if (
            old_id == rec.run_id
            and not os.path.isabs(old_dir)
            and rec.run_dir.endswith(os.sep + os.path.normpath(old_dir))
        ):
            return old_dir, old_id
    return key


def new_run_id(run_dir: str | Path) -> str:
    """Write a fresh random ``run_id`` into ``run_dir`` (a training run's fresh start)."""
    run_id = os.urandom(8).hex()
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_ID_FILENAME).write_text(run_id + "\n")
    return run_id


def read_evaluations(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records of ``run_dir/evaluations.jsonl`` (one per validation run), oldest first;
    [] without one."""
    path = Path(run_dir) / "evaluations.jsonl"
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def n_evaluations(run_dir: str | os.PathLike[str]) -> int:
    """Validation runs recorded in ``run_dir/evaluations.jsonl``: the checkpoints its best
    model was chosen among (a resume trims the runs after its checkpoint); 0 without one."""
    return len(read_evaluations(run_dir))


def scored_metrics(run_dir: str | os.PathLike[str]) -> dict[str, float | None]:
    """The ledger metrics of a run that failed after validation scored it: the best finite
    ``score`` of ``run_dir/evaluations.jsonl`` (what ``best/`` holds; None when none was
    finite) and the number of validation runs; {} when none ran (never a candidate)."""
    records = read_evaluations(run_dir)
    if not records:
        return {}
    scores = [rec.get("score") for rec in records]
    finite = [float(x) for x in scores if x is not None and math.isfinite(x)]
    return {SHARPE_KEY: max(finite) if finite else None, EVALUATIONS_KEY: len(records)}


def _candidate(rec: TrialRecord) -> bool:
    """A trial of the DSR: completed, stopped, or failed after it was scored."""
    return rec.status in ("completed", "stopped") or SHARPE_KEY in rec.metrics


def run_id_of(run_dir: str | Path) -> str:
    """The ``run_id`` a fresh start wrote into ``run_dir`` ('' when there is none)."""
    try:
        return (Path(run_dir) / RUN_ID_FILENAME).read_text().strip()
    except OSError:
        return ""


def market_fingerprint(market: MarketData) -> str:
    """sha256 of a market's symbols, bar dates and close prices.

    The data a validation Sharpe ratio is measured on, whatever file or path it was
    loaded from (a run evaluated from another working directory keeps its key).
    """
    digest = hashlib.sha256(json.dumps(list(market.symbols)).encode())
    digest.update(np.ascontiguousarray(market.dates).tobytes())
    digest.update(np.ascontiguousarray(market.close).tobytes())
    return digest.hexdigest()


OUTSIDE_CONFIGURATION: tuple[str, ...] = (
    "train.seed",
    "train.device",
    "train.torch_threads",
    "train.checkpoint_freq",
    "train.keep_checkpoints",
    "train.sac.save_replay_buffer",
    "env.audit_path",
    "evaluation",
    "serving",
)
"""Config keys (and whole sections) that :func:`configuration_id` leaves out: the seed,
where and how a run ran and was saved, and how it is evaluated and served, none of which
changes what it learns."""


def configuration_id(cfg: AllocgymConfig) -> str:
    """The configuration of a run without its seed (:data:`OUTSIDE_CONFIGURATION`), as a
    short digest: runs of one id are seeds of one configuration.

    Returns
    -------
    str
        16 hex digits.
    """
    tree = cfg.model_dump(mode="json")
    for key in OUTSIDE_CONFIGURATION:
        *parents, name = key.split(".")
        node = tree
        for part in parents:
            node = node[part]
        node.pop(name)
    blob = json.dumps(tree, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def selection_key(cfg: AllocgymConfig, market_id: str) -> str:
    """What makes the validation Sharpe ratios of two runs comparable, as a short digest.

    Runs of one key were scored on the same data and validation split, so choosing
    among them is one selection, the one the Deflated Sharpe Ratio deflates.

    Parameters
    ----------
    cfg : AllocgymConfig
        The run's config: ``data.splits``, ``env.split`` and ``train.eval_split`` enter.
    market_id : str
        :func:`market_fingerprint` of the market the run trained on.

    Returns
    -------
    str
        16 hex digits.
    """
    payload = {
        "market": market_id,
        "splits": cfg.data.splits.model_dump(mode="json"),
        "env_split": cfg.env.split,
        "eval_split": cfg.train.eval_split,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


RUN_DATA_FILENAME = "data.json"
"""The file in a run directory that records the data it trained on (:func:`run_data`)."""


def run_data(cfg: AllocgymConfig, market: MarketData) -> dict[str, Any]:
    """What a run learns from: the market's :func:`market_fingerprint`, symbols and dates,
    and the first and last date of the splits it trains on (``env.split``) and is selected
    on (``train.eval_split``), the ``seen`` bars no out-of-sample report may include."""
    from allocgym.data import walk_forward_splits

    splits = walk_forward_splits(market, cfg.data.splits)
    seen = {}
    for name in dict.fromkeys((cfg.env.split, cfg.train.eval_split)):
        bars = (0, market.n_days) if name == "all" else (splits[name].start, splits[name].stop)
        seen[name] = [_when(market, bars[0]), _when(market, bars[1] - 1)]
    return {
        "market": market_fingerprint(market),
        "symbols": list(market.symbols),
        "first_date": _when(market, 0),
        "last_date": _when(market, market.n_days - 1),
        "n_bars": int(market.n_days),
        "seen": seen,
    }


def _when(market: MarketData, bar: int) -> str:
    """Bar ``bar``'s date (with its time when it has one): ISO 8601, sortable as text."""
    text = str(np.datetime_as_string(market.dates[bar], unit="s"))
    return text.removesuffix("T00:00:00")


def write_run_data(run_dir: str | Path, cfg: AllocgymConfig, market: MarketData) -> None:
    """Record :func:`run_data` in ``run_dir`` (a fresh training start)."""
    path = Path(run_dir) / RUN_DATA_FILENAME
    path.write_text(json.dumps(run_data(cfg, market), indent=2) + "\n")


def read_run_data(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's :func:`run_data` record; None for a run trained before it existed."""
    path = Path(run_dir) / RUN_DATA_FILENAME
    return json.loads(path.read_text()) if path.is_file() else None


def _data_changes(record: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """What differs between two :func:`run_data` records, in words."""
    changes = []
    gone = [s for s in record["symbols"] if s not in now["symbols"]]
    new = [s for s in now["symbols"] if s not in record["symbols"]]
    if gone or new:
        changes.append(f"symbols {gone} gone, {new} new")
    elif record["symbols"] != now["symbols"]:
        changes.append("the symbols are in another order")
    span = ("first_date", "last_date", "n_bars")
    if any(record[k] != now[k] for k in span):
        changes.append(
            f"bars {record['first_date']}..{record['last_date']} ({record['n_bars']}) now "
            f"{now['first_date']}..{now['last_date']} ({now['n_bars']})"
        )
    return "; ".join(changes) or "the same symbols and dates, other prices"


def check_same_data(
    run_dir: str | Path, cfg: AllocgymConfig, market: MarketData, what: str
) -> None:
    """Refuse ``what`` (e.g. "cannot resume") when the market is not the one the run
    recorded at its start (a run without a record passes).

    Raises
    ------
    ConfigError
        Naming what changed.
    """
    record = read_run_data(run_dir)
    if record is None:
        return
    now = run_data(cfg, market)
    if now["market"] != record["market"]:
        raise ConfigError(
            f"{what} {str(run_dir)!r}: the data is not what the run trained on "
            f"({_data_changes(record, now)}; fingerprint {record['market'][:12]} now "
            f"{now['market'][:12]}): restore the data its config.yaml names, or train a new run"
        )


def check_symbols(record: Mapping[str, Any] | None, market: MarketData, what: str) -> None:
    """Refuse a market whose symbols are not those of the :func:`run_data` ``record``
    (None: a run or bundle older than the record passes).

    Raises
    ------
    ConfigError
    """
    if record is not None and list(market.symbols) != list(record["symbols"]):
        raise ConfigError(
            f"{what} trained on symbols {record['symbols']}, the data has "
            f"{list(market.symbols)}: use the universe it trained on"
        )


def check_unseen_bars(
    record: Mapping[str, Any] | None, market: MarketData, start: int, stop: int, what: str
) -> None:
    """Refuse to report bars ``start..stop-1`` of ``market`` for a policy whose
    :func:`run_data` ``record`` says it trained or was selected on some of them, or that
    trained on other symbols (None: a run or bundle older than the record passes).

    Raises
    ------
    ConfigError
    """
    if record is None:
        return
    check_symbols(record, market, what)
    first, last = _when(market, start), _when(market, stop - 1)
    for name, (lo, hi) in record["seen"].items():
        if np.datetime64(first) <= np.datetime64(hi) and np.datetime64(lo) <= np.datetime64(last):
            raise ConfigError(
                f"{what} trained or was selected on its {name} split {lo}..{hi}, which "
                f"overlaps the bars evaluated here, {first}..{last}: the data or its splits "
                "changed since training (fraction splits move when bars are added); set "
                "data.splits dates after its last seen bar, or evaluate it on its own data"
            )


@contextlib.contextmanager
def locked_append(path: str | Path) -> Iterator[Callable[[Mapping[str, Any]], None]]:
    """An append of one JSON line (sorted keys) to ``path``, each in one ``write``, under
    an exclusive ``flock`` held for the block: concurrent writers never interleave lines,
    and what the block reads of the file stays true until it ends."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield functools.partial(_write_line, fd)
    finally:
        os.close(fd)  # closing releases the lock


def _write_line(fd: int, obj: Mapping[str, Any]) -> None:
    view = memoryview((json.dumps(obj, sort_keys=True, allow_nan=False) + "\n").encode())
    while view:  # a regular file takes it in one write; loop in case it does not
        view = view[os.write(fd, view) :]


def find_ledger(run_dir: str | Path) -> Path | None:
    """``trials.jsonl`` in ``run_dir``, its parent (a quickstart or study directory) or its
    grandparent (a sweep's ``trials/<id>/``, a study fold's ``seed_<k>/``), else None."""
    root = Path(run_dir).resolve()  # Path(".").parent is ".": a relative run missed its parent
    for folder in (root, root.parent, root.parent.parent):
        candidate = folder / LEDGER_FILENAME
        if candidate.is_file():
            return candidate
    return None
