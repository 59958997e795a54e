"""Promotion gates: may a candidate allocator replace the incumbent?

:func:`promotion_decision` is a pure function over metric dicts (the output of
:func:`allocgym.evaluation.backtest_metrics`); :func:`promote` runs the backtests it needs
through :func:`allocgym.evaluation.run_allocators` and calls it. The candidate is
**promoted** only when every check passes; otherwise it is **rejected** with the failing
checks as reasons. The checks, thresholds from :class:`~allocgym.config.PromotionConfig`:

1. *Risk-adjusted performance, out of sample*: Sharpe above the incumbent's by more than
   ``min_sharpe_improvement`` and, while ``max_p_value`` is set, significantly so (the
   paired stationary-bootstrap test of the Sharpe difference on the same bars; a point
   difference inside the noise is no improvement) at ``max_p_value / max_candidates``,
   the candidates declared for these test bars (Bonferroni), and no more candidates
   tried on them than declared (trying candidates until one passes is selection on the
   test split; the attempts log below counts them); each ``secondary_metrics`` entry no worse than the
   incumbent's by more than ``secondary_tolerance`` (relative; Sortino / Calmar higher is
   better, CVaR / max drawdown lower is better); optionally DSR >= ``min_dsr``, deflated by
   the study's trials ledger (else by the candidate's seeds, flagged weak, as is a ledger
   of one configuration's seeds; the incumbent is never a trial).
2. *Concentration*: mean HHI at most ``1 + max_concentration_increase`` times the
   incumbent's (and below ``max_concentration_abs`` when set).
3. *Invariants*: 0 post-risk invariant breaches.
4. *Capacity stress*: at each ``stress_multipliers`` equity multiple (10x, 100x: the
   participation, slippage and notional limits bind harder), 0 invariant breaches, an
   annualised return at most ``stress_max_return_drop`` below the unstressed run and
   annualised costs at most ``stress_max_cost_increase`` above it.

Every attempt is recorded, promoted or not, in the attempts log (``promotions.jsonl``
beside the study's trials ledger, else in the candidate's parent folder, or
``evaluation.promotion.attempts_log``): the test bars (market, split, first and last
date, keyed by the bars' own data: bars added after them change nothing), the candidate
(each run's ``run_id`` and the sha256 of the model evaluated), the configuration, the
incumbent, the threshold, the p-value and the decision. An attempt is a new candidate
unless those runs, models, configuration and incumbent were tried on the same bars before
(a resumed run, a re-drawn bootstrap, other costs or another incumbent are new ones). The
first attempt on a set of bars fixes ``max_candidates`` and ``max_p_value`` for them: a
count raised after looking would test the k-th candidate at ``max_p_value / k``, which
lets ``K`` null candidates pass with probability about ``max_p_value`` times the K-th
harmonic number, and a threshold chosen after looking tests nothing. The log is
read and appended under one lock; candidates promoted from folders that do not share the
log are not counted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from allocgym.config import AllocgymConfig, PromotionConfig, check_out_of_sample
from allocgym.errors import ConfigError, DataError
from allocgym.ledger import (
    TrialsLedger,
    locked_append,
    market_fingerprint,
    run_id_of,
    selection_key,
)

__all__ = [
    "PROMOTIONS_FILENAME",
    "Check",
    "PromotionDecision",
    "PromotionReport",
    "promote",
    "promotion_decision",
]

PROMOTIONS_FILENAME = "promotions.jsonl"
"""The attempts log of :func:`promote` (see the module docstring)."""

_HIGHER_BETTER = {"sharpe", "sortino", "calmar"}
_LOWER_BETTER = {"cvar", "max_drawdown"}


@dataclass(frozen=True)
class Check:
    """One promotion check: its name, the verdict and the numbers behind it."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class PromotionDecision:
    """``PROMOTE`` when every check passed, else ``REJECT``.

    Attributes
    ----------
    decision : {"PROMOTE", "REJECT"}
    checks : tuple of Check
        Every check, in evaluation order.
    """

    decision: Literal["PROMOTE", "REJECT"]
    checks: tuple[Check, ...]

    @property
    def promoted(self) -> bool:
        return self.decision == "PROMOTE"

    @property
    def reasons(self) -> list[str]:
        """Failing checks (``name: detail``), or every check when promoted."""
        failed = [c for c in self.checks if not c.passed]
        return [f"{c.name}: {c.detail}" for c in (failed or list(self.checks))]

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reasons": self.reasons,
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks
            ],
        }


def _num(m: Mapping[str, Any], key: str) -> float:
    v = m.get(key)
    try:
        return float(v) if v is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _compare(metric: str, cand: float, inc: float, tol: float) -> tuple[bool, str]:
    """Secondary metric no worse than the incumbent's by more than ``tol`` (relative)."""
    if not (math.isfinite(cand) and math.isfinite(inc)):
        if metric in _HIGHER_BETTER and cand == math.inf:
            return True, f"{metric} {cand} vs incumbent {inc:.4g}"
        return False, f"{metric} not finite (candidate {cand}, incumbent {inc})"
    if metric in _HIGHER_BETTER:
        bound = inc - tol * abs(inc)
        return cand >= bound, f"{metric} {cand:.4g} vs incumbent {inc:.4g} (floor {bound:.4g})"
    if metric in _LOWER_BETTER:
        bound = inc + tol * abs(inc)
        return cand <= bound, f"{metric} {cand:.4g} vs incumbent {inc:.4g} (ceiling {bound:.4g})"
    raise ConfigError(
        f"secondary metric {metric!r}: use one of {sorted(_HIGHER_BETTER | _LOWER_BETTER)}"
    )


def promotion_decision(
    candidate: Mapping[str, Any],
    incumbent: Mapping[str, Any],
    stress: Mapping[float, Mapping[str, Any]],
    cfg: PromotionConfig | None = None,
    multipliers: Sequence[float] = (10.0, 100.0),
) -> PromotionDecision:
    """Decide PROMOTE or REJECT from metric dicts (pure; no I/O, no backtests).

    Parameters
    ----------
    candidate, incumbent : mapping
        Out-of-sample metrics (``sharpe``, the ``secondary_metrics``, ``hhi``,
        ``invariant_breaches``, ``ann_return``, ``costs_annual``, ``dsr``; the
        candidate's ``paired_p_value``, ``test_looks``, the distinct candidates tried
        on its test bars, this one included (1 when absent), and ``declared_candidates``
        and ``declared_p_value``, the ``max_candidates`` and ``max_p_value`` the first
        attempt on them declared (``cfg``'s when absent).
    stress : mapping of float to mapping
        The candidate's metrics at each equity multiple; a missing multiple fails.
    cfg : PromotionConfig, optional
    multipliers : sequence of float
        Equity multiples the capacity stress must pass.

    Returns
    -------
    PromotionDecision
    """
    rules = cfg or PromotionConfig()
    breaches = _num(candidate, "invariant_breaches")
    checks = [
        *_risk_adjusted_checks(candidate, incumbent, rules),
        _concentration_check(candidate, incumbent, rules),
        Check("invariants", breaches == 0, f"{breaches:g} post-risk invariant breaches (need 0)"),
        *_capacity_checks(candidate, stress, multipliers, rules),
    ]
    decision: Literal["PROMOTE", "REJECT"] = (
        "PROMOTE" if all(check.passed for check in checks) else "REJECT"
    )
    return PromotionDecision(decision, tuple(checks))


def _risk_adjusted_checks(
    candidate: Mapping[str, Any], incumbent: Mapping[str, Any], rules: PromotionConfig
) -> list[Check]:
    """Sharpe must beat the incumbent's by ``min_sharpe_improvement``; each secondary
    metric must not be worse beyond ``secondary_tolerance``; the DSR must reach
    ``min_dsr`` when set."""
    cand_sharpe, inc_sharpe = _num(candidate, "sharpe"), _num(incumbent, "sharpe")
    need = inc_sharpe + rules.min_sharpe_improvement
    ok = math.isfinite(cand_sharpe) and math.isfinite(inc_sharpe) and cand_sharpe > need
    checks = [
        Check(
            "risk_adjusted.sharpe",
            ok,
            f"Sharpe {cand_sharpe:.4g} vs incumbent {inc_sharpe:.4g}: must exceed {need:.4g} "
            f"(+{rules.min_sharpe_improvement:g})",
        )
    ]
    if rules.max_p_value is not None:
        p = _num(candidate, "paired_p_value")
        need = rules.max_p_value / rules.max_candidates
        detail = (
            f"paired bootstrap p-value {p:.4g} that the Sharpe difference "
            f"{_num(candidate, 'paired_diff'):+.4g} (interval "
            f"[{_num(candidate, 'paired_low'):.4g}, {_num(candidate, 'paired_high'):.4g}]) "
            f"is above 0: need <= {need:.4g}"
        )
        if rules.max_candidates > 1:
            detail += (
                f" ({rules.max_p_value:g} over the {rules.max_candidates} candidates declared)"
            )
        if candidate.get("paired_note"):
            detail += f" ({candidate['paired_note']})"
        checks.append(Check("risk_adjusted.significance", math.isfinite(p) and p <= need, detail))
    checks.append(_candidates_check(candidate, rules))
    for metric in rules.secondary_metrics:
        passed, detail = _compare(
            metric, _num(candidate, metric), _num(incumbent, metric), rules.secondary_tolerance
        )
        checks.append(Check(f"risk_adjusted.{metric}", passed, detail))
    if rules.min_dsr is not None:
        dsr = _num(candidate, "dsr")
        weak = ", weak: the configurations tried before are not counted"
        checks.append(
            Check(
                "risk_adjusted.dsr",
                math.isfinite(dsr) and dsr >= rules.min_dsr,
                f"Deflated Sharpe {dsr:.4g} (need >= {rules.min_dsr:g}): N = "
                f"{candidate.get('dsr_trials', '?')} trials ({candidate.get('dsr_source', '?')}"
                f"{weak if candidate.get('dsr_weak') else ''})",
            )
        )
    return checks


def _candidates_check(candidate: Mapping[str, Any], rules: PromotionConfig) -> Check:
    """No more candidates tried on the test bars than ``max_candidates``, under the
    ``max_candidates`` and ``max_p_value`` the first attempt on them declared (checked
    with the significance test off too: a threshold chosen after looking tests nothing)."""
    looks = candidate.get("test_looks", 1)
    declared = candidate.get("declared_candidates", rules.max_candidates)
    for name, value in (("test_looks", looks), ("declared_candidates", declared)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"candidate {name} = {value!r}: give a count, an int >= 1 (test_looks: the "
                "candidates tried on the test bars, this one included), or leave it out"
            )
    declared_p = candidate.get("declared_p_value", rules.max_p_value)
    detail = (
        f"{looks} candidate(s) tried on these test bars, this one included, of "
        f"max_candidates = {rules.max_candidates}"
    )
    bound = declared == rules.max_candidates and declared_p == rules.max_p_value
    if not bound:
        detail += (
            f"; the first attempt on these bars declared max_candidates = {declared} and "
            f"max_p_value = {declared_p}, and those bind (chosen after looking, they would "
            "test a candidate at a threshold its first look already showed it passes)"
        )
    return Check("risk_adjusted.candidates", looks <= rules.max_candidates and bound, detail)


def _concentration_check(
    candidate: Mapping[str, Any], incumbent: Mapping[str, Any], rules: PromotionConfig
) -> Check:
    """Mean HHI at most ``max_concentration_increase`` above the incumbent's (and at most
    ``max_concentration_abs`` when set)."""
    cand_hhi, inc_hhi = _num(candidate, "hhi"), _num(incumbent, "hhi")
    ceiling = inc_hhi * (1.0 + rules.max_concentration_increase)
    ok = math.isfinite(cand_hhi) and math.isfinite(inc_hhi) and cand_hhi <= ceiling
    detail = (
        f"mean HHI {cand_hhi:.4g} vs incumbent {inc_hhi:.4g}: at most {ceiling:.4g} "
        f"(+{rules.max_concentration_increase:.0%})"
    )
    if rules.max_concentration_abs is not None:
        ok = ok and cand_hhi <= rules.max_concentration_abs
        detail += f" and at most {rules.max_concentration_abs:g}"
    return Check("concentration", ok, detail)


def _capacity_checks(
    candidate: Mapping[str, Any],
    stress: Mapping[float, Mapping[str, Any]],
    multipliers: Sequence[float],
    rules: PromotionConfig,
) -> list[Check]:
    """Per equity multiple: a stress run exists, has no invariant breach, and loses at
    most ``stress_max_return_drop`` of return and adds at most ``stress_max_cost_increase``
    of annual costs against the unstressed candidate."""
    base_ret, base_cost = _num(candidate, "ann_return"), _num(candidate, "costs_annual")
    checks: list[Check] = []
    for m in multipliers:
        tag = f"capacity_stress.{m:g}x"
        stressed = _stress_for(stress, m)
        if stressed is None:
            checks.append(Check(tag, False, f"no stress run at {m:g}x equity"))
            continue
        breaches = _num(stressed, "invariant_breaches")
        checks.append(
            Check(f"{tag}.invariants", breaches == 0, f"{breaches:g} invariant breaches (need 0)")
        )
        drop = base_ret - _num(stressed, "ann_return")
        checks.append(
            Check(
                f"{tag}.return",
                math.isfinite(drop) and drop <= rules.stress_max_return_drop,
                f"annualised return {_num(stressed, 'ann_return'):.4g} vs {base_ret:.4g} "
                f"unstressed: drop {drop:.4g} (at most {rules.stress_max_return_drop:g})",
            )
        )
        rise = _num(stressed, "costs_annual") - base_cost
        checks.append(
            Check(
                f"{tag}.costs",
                math.isfinite(rise) and rise <= rules.stress_max_cost_increase,
                f"annual costs {_num(stressed, 'costs_annual'):.4g} vs {base_cost:.4g} "
                f"unstressed: increase {rise:.4g} (at most {rules.stress_max_cost_increase:g})",
            )
        )
    return checks


def _stress_for(stress: Mapping[Any, Mapping[str, Any]], m: float) -> Mapping[str, Any] | None:
    for k, v in stress.items():
        if math.isclose(float(k), float(m)):
            return v
    return None


# ----------------------------------------------------------------------------- orchestration


@dataclass
class PromotionReport:
    """What :func:`promote` decided, and the metrics it decided on.

    Attributes
    ----------
    decision : PromotionDecision
    candidate : dict
        Candidate metrics (mean over seeds for several seeds; breaches summed).
    incumbent : dict
    stress : dict of float to dict
        Candidate metrics at each equity multiple.
    meta : dict
        Candidate / incumbent identity, split, dates, stress multiples and ``dsr``: the
        candidate's DSR trial set (``n_trials``, ``source`` ledger or agent seeds, ``weak``,
        ``sr0_annual``, ``ledger``, ``note``).
    """

    decision: PromotionDecision
    candidate: dict[str, Any]
    incumbent: dict[str, Any]
    stress: dict[float, dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        keys = ("sharpe", "sortino", "calmar", "cvar", "max_drawdown", "ann_return",
                "costs_annual", "hhi", "invariant_breaches", "dsr", "gate_interventions")  # fmt: skip

        def pick(m: Mapping[str, Any]) -> dict[str, Any]:
            return {k: m.get(k) for k in keys if k in m}

        return {
            **self.decision.to_json(),
            "candidate": pick(self.candidate),
            "incumbent": pick(self.incumbent),
            "stress": {f"{k:g}x": pick(v) for k, v in self.stress.items()},
            "meta": self.meta,
        }


_SUMMED = ("invariant_breaches", "gate_interventions", "allocator_errors")


def _aggregate(metrics: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean of numeric metrics over seeds; breaches and counts summed."""
    if len(metrics) == 1:
        return dict(metrics[0])
    out: dict[str, Any] = {"seeds": [m.get("seed") for m in metrics]}
    for key, value in metrics[0].items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        vals = np.array([float(m[key]) for m in metrics])
        out[key] = float(vals.sum()) if key in _SUMMED else float(vals.mean())
    return out


def _same_market(a: AllocgymConfig, b: AllocgymConfig) -> None:
    for section in ("data", "risk", "costs", "execution"):
        if getattr(a, section) != getattr(b, section):
            raise ConfigError(
                f"candidate and incumbent runs differ in their '{section}' config: promotion "
                "compares allocators on identical data, limits and costs; retrain one of them "
                "with the other's section or compare against a baseline"
            )


def promote(
    candidate: str | Path,
    incumbent: str | Path,
    *,
    split: str | None = None,
    overrides: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    ledger: TrialsLedger | str | Path | None = None,
    attempts_log: str | Path | None = None,
) -> PromotionReport:
    """Backtest candidate and incumbent out of sample (plus the capacity stress) and decide.

    Parameters
    ----------
    candidate : path
        Run directory of the candidate agent (``seed_*`` runs allowed: metrics are averaged
        over seeds, breaches summed).
    incumbent : path or str
        Run directory of the incumbent agent, or a baseline name (``hrp``, ``1/n`` ...).
    split : str, optional
        Default ``cfg.evaluation.split`` of the candidate's config; it must be out of
        sample for both agents (:func:`allocgym.config.check_out_of_sample`).
    overrides : sequence of str
        ``a.b=value`` overrides of the candidate's config (e.g.
        ``evaluation.promotion.max_concentration_increase=0.2``).
    progress : callable, optional
        ``progress(done, total)`` per bar.
    ledger : TrialsLedger or path, optional
        The study's trials ledger the candidate's DSR is deflated by; default as
        :func:`allocgym.evaluation.evaluate_run` (:func:`allocgym.evaluation.study_ledger`).
        The incumbent is no trial of the candidate's.
    attempts_log : path, optional
        Where this attempt is recorded and earlier ones counted (default
        ``evaluation.promotion.attempts_log``, else ``promotions.jsonl`` beside the study's
        trials ledger, else in the candidate's parent folder; see the module docstring).

    Raises
    ------
    ConfigError
        An in-sample split, an incumbent trained on other data, limits or costs, or an
        incumbent that is neither a run directory nor one baseline.
    """
    from allocgym import evaluation as ev
    from allocgym.data import load_market
    from allocgym.report import jsonable

    runs = ev.find_agent_runs(candidate)
    cfg = ev.run_config(runs, overrides)
    e = cfg.evaluation
    split_name = e.split if split is None else split
    check_out_of_sample(cfg, split_name)
    inc_runs, inc_cfg, inc_baseline = _incumbent(cfg, incumbent, split_name)
    study = ev.study_ledger(cfg, Path(candidate)) if ledger is None else ledger
    if attempts_log is None and e.promotion.attempts_log is not None:
        attempts_log = e.promotion.attempts_log
    log = Path(attempts_log) if attempts_log is not None else _attempts_log(study, candidate)
    _read_attempts(log)  # a malformed log fails now, not after the backtests
    market = load_market(cfg.data)
    e = ev.with_annualisation(e, market.dates)
    params = ev.evaluation_params(market, cfg, split_name)
    mults = [1.0, *[float(m) for m in e.stress_multipliers]]
    allocs: list[Any] = []
    scales: list[float] = []
    for m in mults:
        for pol in ev.load_policies(runs, params, e.agent_model):
            if m != 1.0:
                pol.name = f"{pol.name}@{m:g}x"
            allocs.append(pol)
            scales.append(m)
    ev.check_policies_unseen(allocs, params)
    allocs.extend(ev.build_baselines(cfg, inc_baseline).values())
    scales.extend([1.0] * len(inc_baseline))
    bts = ev.run_allocators(allocs, params=params, equity_scales=scales, progress=progress)
    n_cand = len(runs)
    cand_bts, inc_bts = bts[:n_cand], bts[len(mults) * n_cand :]
    if inc_cfg is not None:
        inc_params = ev.evaluation_params(market, inc_cfg, params.split)
        inc_pols = ev.load_policies(inc_runs, inc_params, e.agent_model)
        ev.check_policies_unseen(inc_pols, inc_params)
        inc_bts = ev.run_allocators(inc_pols, params=inc_params)
    # The candidate's backtests alone: an incumbent agent is no trial of the candidate's.
    fingerprint = market_fingerprint(market)
    summary = ev.summarize(cand_bts, e, ledger=study, selection_key=selection_key(cfg, fingerprint))
    dsr = {k: summary.dsr[k] for k in ("n_trials", "source", "weak", "sr0_annual", "ledger",
                                       "note")}  # fmt: skip
    cand_m = _aggregate([summary.metrics[bt.name] for bt in cand_bts])
    cand_m.update(dsr_trials=dsr["n_trials"], dsr_source=dsr["source"], dsr_weak=dsr["weak"])
    inc_m = _aggregate([ev.backtest_metrics(bt, e) for bt in inc_bts])
    cand_m.update(_paired_test(cand_bts, inc_bts, e))
    first = cand_bts[0]
    bars = {
        "bars": _bars_id(market, params.split),
        "split": params.split.name,
        "start": str(first.dates[0])[:10] if first.n_steps else "",
        "end": str(first.dates[-1])[:10] if first.n_steps else "",
    }
    attempt = _attempt_id(runs, cfg, e.agent_model, inc_runs or str(incumbent))
    stress: dict[float, dict[str, Any]] = {}
    hits: dict[str, int] = {}
    for j, m in enumerate(mults[1:], start=1):
        chunk = [ev.backtest_metrics(bt, e) for bt in bts[j * n_cand : (j + 1) * n_cand]]
        stress[m] = _aggregate(chunk)
        hits[f"{m:g}x"] = sum(int(x["interventions"].get("PARTICIPATION_CAP", 0)) for x in chunk)
    rules = e.promotion
    with _locked(log) as (records, append):
        earlier = [rec for rec in records if all(rec.get(k) == v for k, v in bars.items())]
        looks = len({rec["attempt"] for rec in earlier} | {attempt})
        cand_m["test_looks"] = looks
        # the count and threshold the first attempt on these bars declared bind every
        # later one: raised after looking, the k-th candidate is tested at max_p_value / k
        first_rec = earlier[0] if earlier else {}
        cand_m["declared_candidates"] = first_rec.get("max_candidates", rules.max_candidates)
        cand_m["declared_p_value"] = first_rec.get("max_p_value", rules.max_p_value)
        decision = promotion_decision(cand_m, inc_m, stress, rules, e.stress_multipliers)
        append(
            {
                **bars,
                "attempt": attempt,
                "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "candidate": str(Path(candidate).resolve()),
                "runs": [str(path.resolve()) for _, path in runs],
                "incumbent": str(
                    Path(incumbent).resolve() if Path(incumbent).is_dir() else incumbent
                ),
                "overrides": list(overrides),
                "max_p_value": rules.max_p_value,
                "max_candidates": rules.max_candidates,
                "paired_p_value": jsonable(cand_m.get("paired_p_value")),  # NaN: null
                "test_looks": looks,
                "decision": decision.decision,
            }
        )
    meta = {
        "candidate": str(candidate),
        "incumbent": str(incumbent),
        "split": bars["split"],
        "start": bars["start"],
        "end": bars["end"],
        "stress_multipliers": list(e.stress_multipliers),
        "dsr": dsr,
        "participation_cap_hits": hits,
        "test_looks": looks,
        "max_candidates": rules.max_candidates,
        "max_p_value": rules.max_p_value,
        "attempts_log": str(log),
    }
    return PromotionReport(decision, cand_m, inc_m, stress, meta)


def _attempts_log(study: TrialsLedger | str | Path | None, candidate: str | Path) -> Path:
    """``promotions.jsonl`` beside the study's trials ledger, else in the candidate's
    parent folder (where its sibling candidates are)."""
    if isinstance(study, TrialsLedger):
        folder = study.path.parent
    elif study is not None:
        folder = Path(study) if Path(study).is_dir() else Path(study).parent
    else:
        folder = Path(candidate).resolve().parent
    return folder / PROMOTIONS_FILENAME


def _attempt_id(
    runs: Sequence[tuple[int | None, Path]],
    cfg: AllocgymConfig,
    which: str,
    incumbent: Sequence[tuple[int | None, Path]] | str,
) -> str:
    """What makes an attempt a new one: the candidate's runs and models (:func:`_models`),
    the whole configuration after the overrides (costs, limits, evaluation: anything that
    can move the verdict, but the declared count and threshold, which the first attempt
    binds, and the log's place) and the incumbent (its runs and models, or the baseline)."""
    h = hashlib.sha256(_models(runs, which).encode())
    settings = cfg.model_dump(mode="json")
    for key in ("max_candidates", "max_p_value", "attempts_log"):
        settings["evaluation"]["promotion"].pop(key, None)
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update((incumbent if isinstance(incumbent, str) else _models(incumbent, which)).encode())
    return h.hexdigest()[:32]


def _models(runs: Sequence[tuple[int | None, Path]], which: str) -> str:
    """Each run's ``run_id`` (its resolved path without one) and the sha256 of the model
    evaluated (``which``, else ``final``, as :func:`allocgym.evaluation.load_policies`)."""
    out = []
    for _, path in sorted(runs, key=lambda r: str(r[1].resolve())):
        kind = which if (path / which / "model.zip").is_file() else "final"
        model = path / kind / "model.zip"
        digest = hashlib.sha256(model.read_bytes()).hexdigest() if model.is_file() else ""
        out.append(f"{run_id_of(path) or path.resolve()}:{kind}:{digest};")
    return "".join(out)


def _bars_id(market: Any, split: Any) -> str:
    """sha256 of the test bars themselves (symbols, dates and closes of ``split``): new
    bars after them (a data refresh) leave it unchanged."""
    h = hashlib.sha256(json.dumps(list(market.symbols)).encode())
    rows = slice(split.start, split.stop)
    h.update(np.ascontiguousarray(market.dates[rows]).astype("datetime64[ns]").tobytes())
    h.update(np.ascontiguousarray(market.close[rows], dtype=np.float64).tobytes())
    return h.hexdigest()[:32]


def _read_attempts(log: Path) -> list[dict[str, Any]]:
    """The records of the attempts log ([] without one).

    Raises
    ------
    DataError
        A line that is not a record of an attempt (the file and line named).
    """
    try:
        text = log.read_text()
    except FileNotFoundError:
        return []
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or not isinstance(rec.get("attempt"), str):
                raise ValueError("no attempt id")
        except ValueError as err:
            raise DataError(
                f"{str(log)!r} line {number} is not a promotion attempt ({err}): the log "
                "counts the candidates tried on the test bars; remove the line only if you "
                "know it was no attempt, or point evaluation.promotion.attempts_log elsewhere"
            ) from None
        out.append(rec)
    return out


@contextlib.contextmanager
def _locked(log: Path) -> Iterator[tuple[list[dict[str, Any]], Callable[[dict[str, Any]], None]]]:
    """The log's records and an append, under one lock: two promotions at once count
    each other."""
    with locked_append(log) as append:
        yield _read_attempts(log), append


def _paired_test(cand_bts: Sequence[Any], inc_bts: Sequence[Any], e: Any) -> dict[str, Any]:
    """The paired Sharpe test of every candidate seed against every incumbent walk on
    their common bars; the pair with the largest p-value speaks for the candidate (a
    seed that does not beat the incumbent is not hidden by one that does; a pair without
    a test, NaN, too few common bars or an unreliable verdict, fails the candidate)."""
    from allocgym.stats import paired_sharpe_difference

    boot, worst = e.bootstrap, None
    for c in cand_bts:
        for i in inc_bts:
            _, ci, ii = np.intersect1d(c.bars, i.bars, return_indices=True)
            if ci.size < 2:  # no test is a failed test, not a skipped seed
                return {"paired_p_value": math.nan, "paired_note": f"{c.name} shares "
                        f"{ci.size} bars with {i.name}: no paired test"}  # fmt: skip
            res = paired_sharpe_difference(
                c.returns[ci], i.returns[ii], mean_block=boot.mean_block, n_boot=boot.n_boot,
                alpha=boot.alpha, seed=boot.seed, periods_per_year=float(e.periods_per_year),
            )  # fmt: skip
            if res.verdict == "unreliable":  # a p-value that is not calibrated tests nothing
                return {"paired_p_value": math.nan, "paired_diff": res.diff,
                        "paired_low": res.ci_low, "paired_high": res.ci_high,
                        "paired_note": f"{c.name} against {i.name}: {res.note}"}  # fmt: skip
            # NaN (no Sharpe ratio) is the worst a pair can give, whatever comes after it
            if worst is None or not (res.p_value <= worst.p_value or math.isnan(worst.p_value)):
                worst = res
    if worst is None:
        return {"paired_p_value": math.nan, "paired_note": "no walks to pair"}
    return {
        "paired_p_value": worst.p_value, "paired_diff": worst.diff,
        "paired_low": worst.ci_low, "paired_high": worst.ci_high,
    }  # fmt: skip


def _incumbent(
    cfg: AllocgymConfig, incumbent: str | Path, split: str
) -> tuple[list[tuple[int | None, Path]], AllocgymConfig | None, tuple[str, ...]]:
    """The incumbent as ``(runs, config, ())`` for a run directory, checked against the
    candidate's market and ``split`` before any backtest, or ``([], None, (name,))`` for a
    baseline."""
    from allocgym import evaluation as ev

    if not Path(incumbent).is_dir():
        from allocgym.baselines.registry import ALL_BASELINES, BASELINE_ALIASES

        try:
            names = ev.baseline_names(str(incumbent))
        except ConfigError:
            names = ()
        if len(names) != 1:
            known = ", ".join(sorted({*ALL_BASELINES, "engine", *BASELINE_ALIASES}))
            raise ConfigError(
                f"incumbent {str(incumbent)!r} is neither a run directory (no such folder) "
                f"nor one baseline name: pass a trained run's folder or one of {known}"
            )
        return [], None, names
    inc_runs = ev.find_agent_runs(incumbent)
    inc_cfg = ev.run_config(inc_runs)
    _same_market(cfg, inc_cfg)
    check_out_of_sample(inc_cfg, split)
    return inc_runs, inc_cfg, ()


def write_promotion(report: PromotionReport, path: str | Path) -> Path:
    """Write ``report.to_json()`` (``promotion.json``)."""
    from allocgym.report import jsonable

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(jsonable(report.to_json()), indent=2, allow_nan=False) + "\n")
    return p
