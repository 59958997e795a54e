"""Walk-forward study: retrain the agent per fold, test every allocator on the same bars.

Each fold tests one calendar year. Its agent trains on every bar before the validation
years (expanding window), selects its checkpoint on the ``validation_years`` calendar
years just before the test year (an embargo of ``data.splits.embargo_days`` bars opens
validation and test), and never sees the test year. The agent's seeds and every baseline
then walk the test year through the same env, gates and costs
(:func:`allocgym.evaluation.evaluate_run`). The folds' out-of-sample returns are stitched
in time order into one series per allocator, on which the pooled statistics are computed:
the paired block-bootstrap Sharpe difference against 1/N and HRP, and the Deflated Sharpe
whose trials are the trainings the study recorded (the trials ledger, ``trials.jsonl`` in
the study folder), each fold a selection of its own: N is the most trials of one fold and
V the variance of their validation Sharpe ratios within each fold, pooled (flagged weak:
those trials are the seeds of one configuration). Every metric, test and the DSR's trial
set follow ``cfg.evaluation`` with the functions the per-fold evaluation uses, so
``study.json`` and the folds' ``results.json`` agree on the same series.

Layout of a study folder::

    study.json  study.md  study.html  study_equity.png  study_folds.png  trials.jsonl
    fold_2015/seed_000/ ...   (ordinary training runs; results.json and report.* per fold)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from allocgym import measures
from allocgym.baselines.registry import baseline_names
from allocgym.config import AllocgymConfig, EvaluationConfig, config_hash
from allocgym.data import MarketData, walk_forward_splits
from allocgym.errors import ConfigError
from allocgym.evaluation import (
    PAIRED_REFERENCES,
    Backtest,
    EvaluationResult,
    dsr_summary,
    dsr_trial_set,
    with_annualisation,
)
from allocgym.ledger import LEDGER_FILENAME, TrialsLedger
from allocgym.stats import paired_sharpe_differences, probabilistic_sharpe_ratio, sharpe_moments

__all__ = ["Fold", "StudyResult", "plan_folds", "run_study", "stitch"]


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: the split dates of its config.

    Attributes
    ----------
    name : str
        ``fold_<test year>``.
    test_year : int
    train_end, validation_end, test_end : str
        ISO dates (inclusive) for ``data.splits``.
    """

    name: str
    test_year: int
    train_end: str
    validation_end: str
    test_end: str

    def overrides(self) -> list[str]:
        """``--set`` overrides that give a config this fold's splits."""
        return [
            f"data.splits.train_end={self.train_end}",
            f"data.splits.validation_end={self.validation_end}",
            f"data.splits.test_end={self.test_end}",
        ]


def parse_years(text: str) -> list[int]:
    """``"2011..2022"`` or ``"2015,2018,2020"`` -> sorted list of years."""
    years: set[int] = set()
    try:
        for part in str(text).split(","):
            part = part.strip()
            if ".." in part:
                lo, hi = (int(x) for x in part.split(".."))
                if hi < lo:
                    raise ValueError
                years.update(range(lo, hi + 1))
            elif part:
                years.add(int(part))
    except ValueError:
        raise ConfigError(
            f"test years {text!r}: use a range like 2011..2022 or a list like 2015,2018"
        ) from None
    if not years:
        raise ConfigError(f"test years {text!r} name no year: use e.g. 2011..2022")
    return sorted(years)


def plan_folds(
    market: MarketData,
    *,
    test_years: Sequence[int] | None = None,
    n_folds: int | None = None,
    validation_years: int = 2,
    min_train_years: int = 3,
) -> list[Fold]:
    """Yearly expanding-window folds that fit the data.

    Parameters
    ----------
    market : MarketData
    test_years : sequence of int, optional
        Calendar years to test; default the last ``n_folds`` complete years of the data.
    n_folds : int, optional
        Number of folds when ``test_years`` is not given (default 4).
    validation_years : int
        Calendar years of validation just before each test year.
    min_train_years : int
        Calendar years of training data the first fold needs at least.

    Raises
    ------
    ConfigError
        A test year outside the data or without ``min_train_years + validation_years``
        years before it; both or neither of ``test_years`` / ``n_folds`` misuse.
    """
    years = market.dates.astype("datetime64[Y]").astype(int) + 1970
    first, last = int(years[0]), int(years[-1])
    complete_last = last if market.dates[-1] >= np.datetime64(f"{last}-12-20") else last - 1
    if validation_years < 1:
        raise ConfigError(f"validation_years = {validation_years}: need at least 1")
    if test_years is None:
        k = 4 if n_folds is None else int(n_folds)
        if k < 1:
            raise ConfigError(f"--folds {k}: need at least 1 fold")
        test_years = list(range(complete_last - k + 1, complete_last + 1))
    elif n_folds is not None:
        raise ConfigError("pass either --folds or --test-years, not both")
    earliest = first + min_train_years + validation_years
    if earliest > last:
        raise ConfigError(
            f"{market.name!r} covers {first}..{last}: a fold needs {min_train_years} "
            f"training and {validation_years} validation years before its test year, "
            f"{min_train_years + validation_years + 1} calendar years in all: use longer data "
            "or fewer --validation-years"
        )
    bad = [y for y in test_years if y < earliest or y > last]
    if bad:
        raise ConfigError(
            f"test years {bad} do not fit {market.name!r} ({first}..{last}): each needs "
            f"{min_train_years} training and {validation_years} validation years before it, "
            f"so use years in {earliest}..{last}"
        )
    return [
        Fold(
            name=f"fold_{y}",
            test_year=int(y),
            train_end=f"{y - validation_years - 1}-12-31",
            validation_end=f"{y - 1}-12-31",
            test_end=f"{y}-12-31",
        )
        for y in test_years
    ]


@dataclass(frozen=True)
class StudyResult:
    """What :func:`run_study` returns (and writes as ``study.json``).

    Attributes
    ----------
    folder : Path
    folds : list of dict
        Per fold: test year, bars, and per allocator Sharpe, annual return, volatility,
        max drawdown, CVaR, turnover per year (agents: each seed and the seed mean).
    pooled : dict
        Per allocator on the stitched out-of-sample returns: the same metrics, the paired
        tests against ``PAIRED_REFERENCES`` and the DSR; plus ``agent_beats_equal_weight``
        (folds where the seed-mean agent Sharpe beats 1/N's).
    trials : dict
        The DSR's trial set (:func:`allocgym.evaluation.dsr_trial_set`) as the evaluation
        reports it (:func:`allocgym.evaluation.dsr_summary`: ``n_trials`` (N), ``sr0``,
        ``source``, ``weak``, ``note``, the trials' Sharpe variance pooled within the
        ``n_selections`` folds, ...), the study's ledger path and its runs per status.
    settings : dict
        The ``evaluation`` settings behind every number: ``periods_per_year``,
        ``cvar_alpha`` and ``bootstrap`` (``mean_block``, ``n_boot``, ``alpha``, ``seed``).
    """

    folder: Path
    folds: list[dict[str, Any]]
    pooled: dict[str, Any]
    trials: dict[str, Any]
    settings: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "folds": self.folds, "pooled": self.pooled,
                "trials": self.trials, "settings": self.settings}  # fmt: skip


def _metrics(
    r: np.ndarray, turnover: np.ndarray | None, ecfg: EvaluationConfig
) -> dict[str, float]:
    """The study's columns of :func:`allocgym.evaluation.backtest_metrics`, computed the
    same way (``ecfg.periods_per_year``, ``ecfg.cvar_alpha``) on a bare return series."""
    ppy = float(ecfg.periods_per_year)
    out = {
        "sharpe": float(measures.sharpe_ratio(r, periods_per_year=ppy)),
        "ann_return": float(measures.annualized_return(r, ppy)),
        "volatility": float(measures.annualized_volatility(r, ppy)),
        "max_drawdown": float(measures.max_drawdown(r)),
        "cvar": float(measures.cvar(r, ecfg.cvar_alpha)),
    }
    if turnover is not None:
        out["turnover_per_year"] = float(turnover.mean() * ppy)
    return out


def stitch(per_fold: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate each allocator's returns over the folds (allocators in every fold)."""
    names = [n for n in per_fold[0] if all(n in f for f in per_fold)]
    return {n: np.concatenate([f[n] for f in per_fold]) for n in names}


def _train_folds(
    market: MarketData,
    folds: Sequence[Fold],
    seeds: Sequence[int],
    root: Path,
    ledger: TrialsLedger,
    config_overrides: Sequence[str],
    base_config: Path | None,
    say: Callable[[str], None],
    train_many: Callable[[list[tuple[AllocgymConfig, Path]], MarketData, Path], None] | None,
) -> None:
    """Train every (fold, seed) run not yet trained under ``root``, recording each in the
    ledger; an interrupted one continues from its latest checkpoint.

    Refuses, before any training starts, a fold with an empty split and every run under
    ``root`` trained (or begun) with another config than this study asks for, or begun
    past its step count: the study would report that model under this config.
    """
    from allocgym.agents import RESUME_FREE_KEYS, REUSE_FREE_KEYS, run_config_changes, shortening
    from allocgym.config import load_config

    jobs: list[tuple[AllocgymConfig, Path]] = []
    refused: list[str] = []
    for fold in folds:
        fold_cfg = load_config(base_config, [*config_overrides, *fold.overrides()])
        walk_forward_splits(market, fold_cfg.data.splits)  # refuse empty splits up front
        for seed in seeds:
            seed_cfg = load_config(
                base_config, [*config_overrides, *fold.overrides(), f"train.seed={seed}"]
            )
            run_dir = root / fold.name / f"seed_{seed:03d}"
            finished = (run_dir / "train_summary.json").is_file()
            if (run_dir / "config.yaml").is_file():
                # a finished run must be this config; an interrupted one may still extend
                # its step count (train's resume check), not shorten it
                changed = run_config_changes(
                    run_dir, seed_cfg, REUSE_FREE_KEYS if finished else RESUME_FREE_KEYS
                )
                shorter = "" if finished else shortening(run_dir, seed_cfg)
                if shorter:
                    changed.append(shorter)
                if changed:
                    state = "trained" if finished else "begun"
                    refused.append(
                        f"{run_dir.relative_to(root)} ({state}: {', '.join(changed[:3])})"
                    )
            if not finished:
                jobs.append((seed_cfg, run_dir))
    if refused:
        raise ConfigError(
            f"{len(refused)} run(s) under {str(root)!r} were trained with another config than "
            f"this study asks for: {'; '.join(refused[:4])}{' ...' if len(refused) > 4 else ''}. "
            "Use a new --run-dir (or run the study as it was started); deleting those run "
            "directories trains them again, but their lines stay in the study's trials ledger "
            "as trials of the other config"
        )
    if train_many is None:
        from allocgym.agents import train

        for k, (job_cfg, run_dir) in enumerate(jobs):
            say(f"training {run_dir.parent.name}/{run_dir.name} ({k + 1}/{len(jobs)})")
            train(job_cfg, run_dir, market=market, ledger=ledger.path, resume=True)
    else:
        train_many(jobs, market, ledger.path)


@dataclass
class _FoldOutcomes:
    """Out-of-sample series and metrics of every evaluated fold, in fold order.

    ``returns`` and ``turnover`` map each allocator (and each agent group's
    ``"<group> (seed mean)"`` portfolio) to its per-bar series; ``group_members`` lists the
    seed runs of each agent group; ``agents`` holds every fold's agent backtests (the
    trained runs the DSR's trial set counts).
    """

    returns: list[dict[str, np.ndarray]]
    turnover: list[dict[str, np.ndarray]]
    rows: list[dict[str, Any]]
    dates: list[np.ndarray]
    group_members: dict[str, list[str]]
    agents: list[Backtest]


def _evaluate_folds(
    market: MarketData,
    folds: Sequence[Fold],
    root: Path,
    ledger: TrialsLedger,
    baselines: str | Sequence[str] | None,
    config_overrides: Sequence[str],
    ecfg: EvaluationConfig,
    say: Callable[[str], None],
    seeds: Sequence[int],
) -> _FoldOutcomes:
    """Evaluate each fold's trained ``seeds`` (not other seeds' runs an earlier start left
    in the folder) and baselines on its test year; writes each fold's report in its
    folder."""
    from allocgym.evaluation import evaluate_run

    outcomes = _FoldOutcomes([], [], [], [], {}, [])
    group_members = outcomes.group_members
    for fold in folds:
        say(f"evaluating {fold.name} (test {fold.test_year})")
        res = evaluate_run(root / fold.name, baselines=baselines, market=market, ledger=ledger.path,
                           overrides=[*config_overrides, *fold.overrides()],
                           seeds=seeds)  # fmt: skip
        _write_fold(res, root / fold.name)
        rets = {bt.name: bt.returns for bt in res.backtests}
        outcomes.dates.append(res.backtests[0].dates)
        turns = {bt.name: bt.turnover for bt in res.backtests}
        for bt in res.backtests:
            if bt.kind == "agent":
                outcomes.agents.append(bt)
                group_members.setdefault(bt.group, [])
                if bt.name not in group_members[bt.group]:
                    group_members[bt.group].append(bt.name)
        for group, names in group_members.items():  # the seed-averaged portfolio
            rets[f"{group} (seed mean)"] = np.mean([rets[n] for n in names], axis=0)
            turns[f"{group} (seed mean)"] = np.mean([turns[n] for n in names], axis=0)
        outcomes.returns.append(rets)
        outcomes.turnover.append(turns)
        outcomes.rows.append(
            {
                "fold": fold.name,
                "test_year": fold.test_year,
                "train_end": fold.train_end,
                "validation_end": fold.validation_end,
                "n_bars": int(res.backtests[0].n_steps),
                "metrics": {n: _metrics(rets[n], turns[n], ecfg) for n in rets},
            }
        )
    return outcomes


def _pool(
    stitched: dict[str, np.ndarray],
    stitched_turnover: dict[str, np.ndarray],
    fold_rows: list[dict[str, Any]],
    sr0: float,
    ecfg: EvaluationConfig,
) -> dict[str, Any]:
    """Per allocator on the stitched returns: metrics, paired tests against
    ``PAIRED_REFERENCES`` and DSR; plus the folds where each seed-mean agent beat 1/N.

    The paired tests are :func:`allocgym.stats.paired_sharpe_differences` with
    ``ecfg.bootstrap`` (one set of resampled indices for every series) and each DSR the PSR
    against the trials' ``sr0`` (per period), as in :func:`allocgym.evaluation.summarize`.
    """
    index = {name: i for i, name in enumerate(stitched)}
    pairs = [(a, ref) for a in index for ref in PAIRED_REFERENCES if ref in index and ref != a]
    tests = []
    if pairs:
        b = ecfg.bootstrap
        tests = paired_sharpe_differences(
            np.stack(list(stitched.values())), [(index[a], index[ref]) for a, ref in pairs],
            mean_block=b.mean_block, n_boot=b.n_boot, alpha=b.alpha, seed=b.seed,
            periods_per_year=float(ecfg.periods_per_year), names=list(index),
        )  # fmt: skip
    pooled: dict[str, Any] = {}
    for name, r in stitched.items():
        entry: dict[str, Any] = _metrics(r, stitched_turnover.get(name), ecfg)
        entry["paired"] = {
            ref: res.to_dict() for (a, ref), res in zip(pairs, tests, strict=True) if a == name
        }
        sr, skew, kurt, n_obs = sharpe_moments(r)
        entry["dsr"] = probabilistic_sharpe_ratio(sr, n_obs, skew, kurt, sr0)
        pooled[name] = entry
    seed_means = [n for n in stitched if n.endswith("(seed mean)")]
    wins = {}
    for name in seed_means:
        won = [
            row["metrics"][name]["sharpe"] > row["metrics"]["equal_weight"]["sharpe"]
            for row in fold_rows
            if "equal_weight" in row["metrics"]
        ]
        wins[name] = {"folds_won": int(sum(won)), "folds": len(won)}
    pooled["agent_beats_equal_weight"] = wins
    return pooled


def _summarize(
    outcomes: _FoldOutcomes, ledger: TrialsLedger, ecfg: EvaluationConfig
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """The stitched returns, ``StudyResult.pooled`` and ``StudyResult.trials``.

    The DSR's trials are :func:`allocgym.evaluation.dsr_trial_set` of the ledger and every
    fold's agents, the rule the folds' evaluations use. The stitched series spans every
    fold, so it reads the study's whole ledger (no selection key), where a fold's
    evaluation reads the trials of its own fold's splits. Each fold is a selection of its
    own, on its own validation years: ``N`` is the most trials of one fold and ``V`` the
    variance of the validation Sharpe ratios within each fold, pooled, so the years'
    differences do not pass for selection (``n_selections`` folds). Those trials are the
    seeds of the one configuration the study trains, so the set is flagged weak
    (:data:`allocgym.evaluation.ONE_CONFIGURATION`).
    """
    stitched = stitch(outcomes.returns)
    ecfg = with_annualisation(ecfg, np.concatenate(outcomes.dates))
    ts = dsr_trial_set(outcomes.agents, ecfg, ledger)
    pooled = _pool(stitched, stitch(outcomes.turnover), outcomes.rows, ts.sr0, ecfg)
    trials = {**dsr_summary(ts, float(ecfg.periods_per_year)), "ledger": str(ledger.path),
              "counts": ledger.counts()}  # fmt: skip
    return stitched, pooled, trials


def _settings(ecfg: EvaluationConfig) -> dict[str, Any]:
    """``StudyResult.settings``: the evaluation settings behind the study's numbers."""
    return {
        "periods_per_year": ecfg.periods_per_year,
        "cvar_alpha": float(ecfg.cvar_alpha),
        "bootstrap": ecfg.bootstrap.model_dump(),
    }


def run_study(
    cfg: AllocgymConfig,
    market: MarketData,
    folds: Sequence[Fold],
    seeds: Sequence[int],
    folder: str | Path,
    *,
    baselines: str | Sequence[str] | None = None,
    config_overrides: Sequence[str] = (),
    base_config: Path | None = None,
    progress: Callable[[str], None] | None = None,
    train_many: Callable[[list[tuple[AllocgymConfig, Path]], MarketData, Path], None] | None = None,
) -> StudyResult:
    """Train, evaluate and stitch every fold; write ``study.json`` / ``.md`` / ``.html``.

    Parameters
    ----------
    cfg : AllocgymConfig
        The study's config (its ``data.splits`` dates are replaced per fold); its
        ``evaluation`` section (periods per year, CVaR level, bootstrap, ``dsr_trials``)
        gives the pooled numbers as it gives the folds' evaluations.
    market : MarketData
    folds : sequence of Fold
    seeds : sequence of int
        Training seeds per fold.
    folder : path
        Study folder (must not hold a finished study).
    baselines : str or sequence of str, optional
        Default ``cfg.evaluation.baselines``. The paired references (``PAIRED_REFERENCES``:
        1/N and HRP) are always evaluated: the study's intervals are against them.
    config_overrides : sequence of str
        The ``--set`` overrides behind ``cfg`` (re-applied per fold).
    base_config : Path, optional
        The ``--config`` file behind ``cfg``.
    progress : callable, optional
        ``progress(message)`` per training and evaluation.
    train_many : callable, optional
        ``train_many(jobs, market, ledger)`` trains ``[(cfg, run_dir), ...]`` and records
        each in the ledger file (e.g. on Ray); default one after another with
        ``allocgym.agents.train``.
    """

    root = Path(folder)
    if (root / "study.json").exists():
        raise ConfigError(f"{str(root)!r} already holds a study: pick a new --run-dir")
    root.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _msg: None)
    if not seeds:
        raise ConfigError("a study needs at least one seed: pass --seeds 0,1,2")
    # resolved (and an unknown name refused) before anything trains
    named = baseline_names(cfg.evaluation.baselines if baselines is None else baselines)
    added = [ref for ref in PAIRED_REFERENCES if ref not in named]
    if added:
        say(f"baselines: {', '.join(added)} added (the study's paired references)")
    baselines = (*added, *named)

    ecfg = with_annualisation(cfg.evaluation, market.dates)
    ledger = TrialsLedger(root / LEDGER_FILENAME)
    _train_folds(market, folds, seeds, root, ledger, config_overrides, base_config, say, train_many)
    outcomes = _evaluate_folds(
        market, folds, root, ledger, baselines, config_overrides, ecfg, say, seeds
    )

    stitched, pooled, trials = _summarize(outcomes, ledger, ecfg)
    result = StudyResult(root, outcomes.rows, pooled, trials, _settings(ecfg))
    meta = {
        "agents": sorted({n for names in outcomes.group_members.values() for n in names}),
        "config_hash": config_hash(cfg),
        "seeds": list(seeds),
        "folds": [f.__dict__ for f in folds],
        "overrides": list(config_overrides),
        "config": str(base_config) if base_config else None,
    }
    write_study(result, stitched, np.concatenate(outcomes.dates), meta)
    return result


def _write_fold(res: EvaluationResult, folder: Path) -> None:
    from allocgym.report import write_report

    write_report(res, folder)


def fmt(x: float | None, spec: str = ".2f") -> str:
    """A number for a table; '-' for None or NaN."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


# ----------------------------------------------------------------------------- report

_KEY_ROWS = ("equal_weight", "hrp", "qp")


def _ordered_names(stitched: dict[str, np.ndarray], agents: set[str]) -> list[str]:
    """Seed means, then the agents' seeds, then 1/N, HRP, QP, then the other baselines."""
    means = [n for n in stitched if n.endswith("(seed mean)")]
    seeds = [n for n in stitched if n in agents]
    key = [n for n in _KEY_ROWS if n in stitched]
    rest = [n for n in stitched if n not in means and n not in key and n not in seeds]
    return [*means, *seeds, *key, *rest]


def _tables(
    result: StudyResult, names: list[str]
) -> tuple[list[str], list[list[str]], list[list[str]], list[str]]:
    settings = result.settings
    level = f"{100 * (1.0 - settings['bootstrap']['alpha']):g}%"
    header = ["allocator", "Sharpe", "ann. return", "vol", "max DD",
              f"CVaR{100 * settings['cvar_alpha']:g}", "turnover/yr",
              f"ΔSharpe vs 1/N [{level} CI]", "p",
              "DSR (weak)" if result.trials.get("weak") else "DSR"]  # fmt: skip
    rows = []
    for n in names:
        m = result.pooled[n]
        pe = m["paired"].get("equal_weight")
        ci = "-" if pe is None else f"{pe['diff']:+.2f} [{pe['ci_low']:+.2f}, {pe['ci_high']:+.2f}]"
        rows.append([n, fmt(m["sharpe"]), fmt(100 * m["ann_return"], ".1f") + "%",
                     fmt(100 * m["volatility"], ".1f") + "%",
                     fmt(100 * m["max_drawdown"], ".1f") + "%", fmt(100 * m["cvar"], ".2f") + "%",
                     fmt(m.get("turnover_per_year"), ".1f"), ci,
                     "-" if pe is None else fmt(pe["p_value"], ".3f"), fmt(m["dsr"])])  # fmt: skip
    fold_header = ["test year", *names]
    fold_rows = [
        [str(f["test_year"]), *(fmt(f["metrics"][n]["sharpe"]) for n in names)]
        for f in result.folds
    ]
    words = []
    for n in names:
        if not n.endswith("(seed mean)"):
            continue
        pe = result.pooled[n]["paired"].get("equal_weight")
        won = result.pooled["agent_beats_equal_weight"].get(n, {})
        if pe is not None:
            verdict = {
                "better": f"beats 1/N (the {level} interval of the Sharpe difference is above 0)",
                "worse": f"is worse than 1/N (the {level} interval is below 0)",
                "indistinguishable": f"is not distinguishable from 1/N (the {level} interval "
                "contains 0)",
                "undefined": "cannot be compared with 1/N (no finite interval)",
                "unreliable": f"is not judged against 1/N ({pe.get('note', '')})",
            }[pe["verdict"]]
            words.append(
                f"{n} {verdict}: ΔSharpe {pe['diff']:+.2f}, p = {pe['p_value']:.3f}; it beat "
                f"1/N in {won.get('folds_won', 0)} of {won.get('folds', 0)} yearly folds."
            )
    return header, rows, [fold_header, *fold_rows], words


def _plot_study(
    result: StudyResult, stitched: dict[str, np.ndarray], dates: np.ndarray, names: list[str]
) -> None:
    """``study_equity.png`` (stitched equity, fold boundaries) and ``study_folds.png``
    (Sharpe per test year) of the seed means and the key baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = result.folder
    show = [n for n in names if n.endswith("(seed mean)") or n in _KEY_ROWS]
    colors = {"equal_weight": "tab:orange", "hrp": "tab:green", "qp": "tab:purple"}
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for n in names:
        if n not in show:
            ax.plot(dates, np.cumprod(1.0 + stitched[n]), color="0.82", lw=0.7)
    for n in show:
        agent = "seed mean" in n
        ax.plot(dates, np.cumprod(1.0 + stitched[n]), label=n, lw=2.2 if agent else 1.2,
                color="tab:blue" if agent else colors.get(n), ls="-" if agent else "--")  # fmt: skip
    for f in result.folds[1:]:
        ax.axvline(np.datetime64(f"{f['test_year']}-01-01"), color="0.6", ls=":", lw=0.8)
    ax.set_title("Stitched out-of-sample equity (one test year per fold; grey: other baselines)")
    ax.set_xlabel("date")
    ax.set_ylabel("growth of 1")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(root / "study_equity.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(10, 4))
    years = [f["test_year"] for f in result.folds]
    width = 0.8 / max(len(show), 1)
    for k, n in enumerate(show):
        ax.bar(np.arange(len(years)) + k * width, [f["metrics"][n]["sharpe"] for f in result.folds],
               width, label=n)  # fmt: skip
    ax.set_xticks(np.arange(len(years)) + 0.4 - width / 2, [str(y) for y in years])
    ax.axhline(0, color="k", lw=0.6)
    ax.set_title("Sharpe ratio per test year")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(root / "study_folds.png", dpi=110)
    plt.close(fig)


def _md_table(header: list[str], body: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def _html_table(header: list[str], body: list[list[str]]) -> str:
    """An HTML table."""
    head = "".join(f"<th>{c}</th>" for c in header)
    trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>"


def _study_markdown(
    intro: str, words: list[str], pooled_table: list[list[str]], folds_table: list[list[str]]
) -> str:
    """``study.md``: the intro, the verdicts, both tables (header row first) and the plots."""
    md = [
        "# Walk-forward study",
        "",
        intro,
        "",
        *[f"- {w}" for w in words],
        "",
        "## Pooled out-of-sample (stitched folds)",
        "",
        _md_table(pooled_table[0], pooled_table[1:]),
        "",
        "## Sharpe per test year",
        "",
        _md_table(folds_table[0], folds_table[1:]),
        "",
        "![equity](study_equity.png)",
        "",
        "![folds](study_folds.png)",
        "",
    ]
    return "\n".join(md)


def _study_html(
    root: Path,
    intro: str,
    words: list[str],
    pooled_table: list[list[str]],
    folds_table: list[list[str]],
) -> str:
    """``study.html``: :func:`_study_markdown`'s content, self-contained (the PNGs in
    ``root`` inlined)."""
    import base64

    def img(name: str) -> str:
        data = base64.b64encode((root / name).read_bytes()).decode()
        return f'<img alt="{name}" src="data:image/png;base64,{data}">'

    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Walk-forward study</title>"
        f"<style>{style}</style></head><body><h1>Walk-forward study</h1><p>{intro}</p><ul>"
        + "".join(f"<li>{w}</li>" for w in words)
        + "</ul><h2>Pooled out-of-sample (stitched folds)</h2>"
        + _html_table(pooled_table[0], pooled_table[1:])
        + "<h2>Sharpe per test year</h2>"
        + _html_table(folds_table[0], folds_table[1:])
        + img("study_equity.png")
        + img("study_folds.png")
        + "</body></html>"
    )


def write_study(
    result: StudyResult, stitched: dict[str, np.ndarray], dates: np.ndarray, meta: dict[str, Any]
) -> None:
    """``study.json``, ``study.md``, ``study.html`` and two PNG plots in the study folder."""
    from allocgym.report import jsonable

    root = result.folder
    names = _ordered_names(stitched, set(meta["agents"]))
    (root / "study.json").write_text(
        json.dumps(jsonable({**result.to_json(), "meta": meta}), indent=2) + "\n"
    )
    _plot_study(result, stitched, dates, names)
    header, rows, folds_table, words = _tables(result, names)
    trials = result.trials
    source = {
        "ledger": "the study's trials ledger (its completed and stopped trainings)",
        "agent seeds": "the agent seeds evaluated (weak: they miss the configurations "
        "tried before)",
        "none": "no trained agent",
    }[trials["source"]]
    note = trials["note"]
    note = f" {note[:1].upper()}{note[1:]}." if note else ""
    intro = (
        f"Walk-forward study: {len(result.folds)} yearly folds "
        f"({result.folds[0]['test_year']}..{result.folds[-1]['test_year']}), seeds "
        f"{meta['seeds']}; each fold trains on the past, selects on the validation years just "
        "before its test year and never sees it. Out-of-sample returns are stitched across "
        f"folds. DSR trials: N = {trials['n_trials']} from {source}.{note}"
    )
    pooled_table = [header, *rows]
    (root / "study.md").write_text(_study_markdown(intro, words, pooled_table, folds_table))
    (root / "study.html").write_text(_study_html(root, intro, words, pooled_table, folds_table))
