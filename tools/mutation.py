"""Mutation score per module: ``make mutation`` (or ``python tools/mutation.py [MODULE ...]``).

For each module mutmut mutates one small thing at a time and runs the fast tests that cover
the mutated function; a mutant the tests do not notice "survives". The run happens in a
staging copy under ``build/mutation/<module>/``, never in the source tree, and that copy
lays the package out as one tree (``envs/``, ``agents/`` and ``baselines/`` placed under
``src/allocgym/``, as the installed package sees them) so the module paths mutmut derives
from file paths are the import paths the tests use.

The shared mutmut settings live in ``[tool.mutmut]`` of pyproject.toml; this script adds,
per module, the file(s) to mutate and the tests that judge them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
STAGING = ROOT / "build" / "mutation"
# Top-level folders that the package maps into ``allocgym`` (pyproject's package-dir).
MAPPED_PACKAGES = ("envs", "agents", "baselines")
# Besides the code and the tests, what the tests read from the checkout.
ALSO_COPY = ("configs", "docs", "README.md", "constraints.txt")


@dataclass(frozen=True)
class Module:
    """One module under mutation: the files mutmut changes and the tests that judge them."""

    name: str
    sources: tuple[str, ...]  # paths (files or package folders) in the staged layout
    tests: tuple[str, ...]


def _risk_sources() -> tuple[str, ...]:
    # The risk gates are either one module or a package of modules.
    return (
        ("src/allocgym/risk",)
        if (ROOT / "src/allocgym/risk").is_dir()
        else ("src/allocgym/risk.py",)
    )


def modules() -> dict[str, Module]:
    """The modules ``make mutation`` scores, in the order it runs them."""
    table = [
        Module("costs", ("src/allocgym/costs.py",), ("tests/test_costs.py",)),
        Module(
            "measures",
            ("src/allocgym/measures.py",),
            ("tests/test_measures.py", "tests/test_measures_evt.py"),
        ),
        Module(
            "serving/bundle",
            ("src/allocgym/serving/bundle.py",),
            ("tests/test_bundle.py", "tests/test_bundle_seal.py", "tests/test_serving.py"),
        ),
        Module(
            "serving/flags",
            ("src/allocgym/serving/flags.py",),
            ("tests/test_runtime_flags.py", "tests/test_risk.py", "tests/test_serving.py"),
        ),
        Module(
            "risk",
            _risk_sources(),
            (
                "tests/test_risk.py",
                "tests/test_risk_registry.py",
                "tests/test_family_budgets.py",
                "tests/test_symbol_capacity.py",
                "tests/test_factor_cap.py",
                "tests/test_ranges.py",
                "tests/test_risk_kernels.py",
                "tests/test_refeasible.py",
                "tests/test_invariants_checker.py",
                "tests/test_risk_inputs.py",
                "tests/test_gate_edges.py",
                "tests/test_hotpath_regression.py",
            ),
        ),
        Module(
            "execution",
            ("src/allocgym/execution.py",),
            (
                "tests/test_execution.py",
                "tests/test_execution_edges.py",
                "tests/test_symbol_capacity.py",
                "tests/test_factor_cap.py",
                "tests/test_hotpath_regression.py",
            ),
        ),
        Module(
            "envs/core",
            ("src/allocgym/envs/core.py",),
            (
                "tests/test_env_core.py",
                "tests/test_env_core_edges.py",
                "tests/test_env_accounting.py",
                "tests/test_env_context.py",
                "tests/test_env_tilt.py",
                "tests/test_user_data.py",
                "tests/test_dcc_feature.py",
                "tests/test_factor_cap.py",
            ),
        ),
    ]
    return {module.name: module for module in table}


def stage(module: Module, keep_results: bool = False) -> Path:
    """Lay out a staging copy of the current code and tests for ``module`` and return its
    folder: a fresh one, or with ``keep_results`` over an earlier run's, keeping mutmut's
    folder (its results; mutmut itself forgets those of the functions that changed)."""
    where = STAGING / module.name.replace("/", "_")
    for old in [where] if not keep_results else [where / "src", where / "tests"]:
        if old.exists():
            shutil.rmtree(old)
    if keep_results:
        # mutmut copies a file it does not mutate only when its copy is missing: drop them
        # so it copies the current ones (it regenerates a mutated file whose source is newer).
        mutated = [PurePosixPath(source) for source in module.sources]
        for copy in (where / "mutants" / "src").rglob("*"):
            # a mutated file x.py keeps its mutants and mutmut's x.py.meta beside it
            relative = copy.relative_to(where / "mutants").as_posix()
            source = PurePosixPath(relative.split(".py", 1)[0] + ".py")
            keep = "__pycache__" not in relative and any(
                source == m or source.is_relative_to(m) for m in mutated
            )
            if copy.is_file() and not keep:
                copy.unlink()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "src" / "allocgym", where / "src" / "allocgym", ignore=ignore)
    for package in MAPPED_PACKAGES:
        shutil.copytree(ROOT / package, where / "src" / "allocgym" / package, ignore=ignore)
    shutil.copytree(ROOT / "tests", where / "tests", ignore=ignore)
    for name in ALSO_COPY:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, where / name, ignore=ignore, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copy2(source, where / name)

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    settings = pyproject["tool"]["mutmut"]
    pytest_ini = pyproject["tool"]["pytest"]["ini_options"]
    only_mutate = [s if s.endswith(".py") else s.rstrip("/") + "/*" for s in module.sources]
    missing = [t for t in module.tests if not (ROOT / t).is_file()]
    if missing:
        raise SystemExit(
            f"mutation: the tests of {module.name} {missing} do not exist: update modules() "
            "in tools/mutation.py"
        )
    # The staged pyproject holds only what pytest and mutmut read. JSON's strings, lists and
    # booleans are valid TOML.
    lines = ["[tool.pytest.ini_options]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in pytest_ini.items()]
    lines += [
        "",
        "[tool.mutmut]",
        'source_paths = ["src"]',
        f"only_mutate = {json.dumps(only_mutate)}",
        f"pytest_add_cli_args_test_selection = {json.dumps(list(module.tests))}",
        f"also_copy = {json.dumps(list(ALSO_COPY))}",
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    (where / "pyproject.toml").write_text("\n".join(lines) + "\n", "utf-8")
    return where


# A systematic sample keeps the mutants whose number ends in one of the first k digits of this
# fixed order; mutmut numbers each function's mutants in source order, so the sample spreads
# over every function.
SAMPLE_DIGITS = "3705918264"


def sample_patterns(percent: int) -> list[str]:
    """mutmut name patterns selecting ``percent`` % of the mutants (a multiple of 10)."""
    return [f"*__mutmut_*{digit}" for digit in SAMPLE_DIGITS[: percent // 10]]


def in_sample(name: str, percent: int) -> bool:
    return name[-1] in SAMPLE_DIGITS[: percent // 10]


@dataclass
class Score:
    """The outcome of one module: mutants the tests detected, and the ones they missed."""

    module: str
    killed: int
    judged: int  # mutants the tests ran against (killed + survived + no covering test)
    generated: int  # every mutant of the module, judged or not
    survivors: list[tuple[str, str, str]]  # (mutant name, status, changed lines)

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.judged if self.judged else 0.0

    def interval(self) -> tuple[float, float]:
        """Wilson 95% interval of the score, for a sample of the mutants."""
        n, z = self.judged, 1.96
        if n == 0:
            return (0.0, 100.0)
        p = self.killed / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return (100.0 * (centre - half), 100.0 * (centre + half))


def score(module: Module, where: Path, percent: int = 100) -> Score:
    """Read mutmut's result files in ``where`` (one ``.meta`` per mutated source file).

    Only the ``percent`` sample counts (a mutant judged outside it, e.g. by an earlier full
    run, would bias the score towards the fast mutants mutmut runs first). A mutant not yet
    run (a stopped run) counts in ``generated`` only: it is neither killed nor survived.
    """
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    killed, judged, generated, survivors = 0, 0, 0, []
    mutants = where / "mutants"
    with contextlib.chdir(where):
        for meta in sorted(mutants.rglob("*.py.meta")):
            source = meta.relative_to(mutants).with_suffix("")  # src/allocgym/x.py
            data = json.loads(meta.read_text("utf-8"))
            for name, exit_code in sorted(data["exit_code_by_key"].items()):
                generated += 1
                if exit_code is None or not in_sample(name, percent):
                    continue
                status = status_by_exit_code[exit_code]
                judged += 1
                # A mutant that hangs the tests is detected as well.
                if status in ("killed", "timeout"):
                    killed += 1
                    continue
                diff = get_diff_for_mutant(name, path=source).splitlines()
                changed = [
                    line[1:].strip()
                    for line in diff
                    if line[:1] in "+-" and not line.startswith(("+++", "---"))
                ]
                survivors.append((name, status, "  ->  ".join(changed)))
    return Score(module.name, killed, judged, generated, survivors)


def pending(where: Path, percent: int, exit_codes: tuple[int | None, ...] = (None,)) -> list[str]:
    """Mutants of an earlier run in ``where`` in the sample whose mutmut exit code is one of
    ``exit_codes`` (None: not judged yet; 0: survived; 33: no test covered it)."""
    names = []
    for meta in sorted((where / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text("utf-8"))
        names += [
            name
            for name, exit_code in data["exit_code_by_key"].items()
            if exit_code in exit_codes and in_sample(name, percent)
        ]
    return names


def verdicts(where: Path) -> dict[str, tuple[int | None, str | None]]:
    """Every mutant's exit code in ``where`` with the hash of its function's source."""
    out = {}
    for meta in sorted((where / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text("utf-8"))
        hashes = data["hash_by_function_name"]
        for name, exit_code in data["exit_code_by_key"].items():
            function = name.partition("__mutmut_")[0].rpartition(".")[2]
            out[name] = (exit_code, hashes.get(function))
    return out


def restore(where: Path, before: dict[str, tuple[int | None, str | None]]) -> int:
    """Put back the earlier verdicts that mutmut dropped when the test list changed, for
    the mutants whose function is unchanged; returns how many. Sound when tests were only
    added: a mutant the earlier tests killed is still killed."""
    restored = 0
    for meta in sorted((where / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text("utf-8"))
        hashes = data["hash_by_function_name"]
        for name, exit_code in data["exit_code_by_key"].items():
            old_code, old_hash = before.get(name, (None, None))
            function = name.partition("__mutmut_")[0].rpartition(".")[2]
            if exit_code is None and old_code is not None and hashes.get(function) == old_hash:
                data["exit_code_by_key"][name] = old_code
                restored += 1
        meta.write_text(json.dumps(data, indent=4), "utf-8")
    return restored


def main(argv: list[str] | None = None) -> int:
    table = modules()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "modules", nargs="*", metavar="MODULE", help=f"any of {', '.join(table)} (default: all)"
    )
    parser.add_argument(
        "--max-children", type=int, default=1, help="mutmut worker processes (default 1)"
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=100,
        metavar="PERCENT",
        help="judge a systematic sample of PERCENT %% of the mutants (10, 20, ..., 100; "
        "default 100: all): those whose number ends in one of PERCENT/10 fixed digits; the "
        "score then carries a 95%% interval",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the staging copy of an earlier (stopped) run and judge only the mutants "
        "it left unjudged",
    )
    parser.add_argument(
        "--rejudge",
        action="store_true",
        help="after writing tests for the survivors: copy the current code and tests over an "
        "earlier run's staging copy (results of unchanged functions kept), judge its "
        "survivors again, then whatever is left unjudged",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.modules if name not in table]
    if unknown:
        parser.error(f"unknown module {unknown}: choose from {', '.join(table)}")
    if args.max_children < 1:
        parser.error(f"--max-children {args.max_children}: must be >= 1")
    if args.sample not in range(10, 101, 10):
        parser.error(f"--sample {args.sample}: must be one of 10, 20, ..., 100")
    if args.resume and args.rejudge:
        parser.error("--resume and --rejudge: choose one (--rejudge resumes as well)")

    def mutmut(where: Path, names: list[str]) -> int:
        command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children)]
        return subprocess.run([*command, *names], cwd=where, check=False).returncode

    scores, failed = [], []
    for name in args.modules or list(table):
        module = table[name]
        where = STAGING / module.name.replace("/", "_")
        earlier = (where / "mutants").is_dir()
        if (args.resume or args.rejudge) and not earlier:
            parser.error(f"--resume/--rejudge {name}: no earlier run in {where}")
        if args.rejudge:
            # Before refreshing: afterwards mutmut has forgotten the changed functions'.
            survivors = pending(where, args.sample, (0, 33))
            before = verdicts(where)
            stage(module, keep_results=True)
            rounds = [survivors, None]  # None: what is unjudged once those are done
        elif args.resume:
            rounds = [None]
        else:
            where = stage(module)
            rounds = [[] if args.sample == 100 else sample_patterns(args.sample)]
        print(f"== {name}: mutmut in {where.relative_to(ROOT)}", flush=True)
        code = 0
        for names in rounds:
            if names is None:
                names = pending(where, args.sample)
                if not names:
                    continue
            elif not names and (args.rejudge or args.resume):
                continue
            code = mutmut(where, names)
            if code != 0:
                break
            if args.rejudge:
                # mutmut forgets every verdict when the list of tests changes
                print(f"   {restore(where, before)} earlier verdicts kept", flush=True)
        if code != 0:
            # e.g. the unmutated tests fail: no score is better than a wrong one
            print(f"mutmut stopped on {name} (exit {code}): see its output above")
            failed.append(name)
            continue
        result = score(module, where, args.sample)
        scores.append(result)
        for mutant, status, change in result.survivors:
            print(f"  {status:>9}  {mutant}: {change}", flush=True)

    print("\nmodule            killed / judged  score   95% interval   judged of generated")
    for result in scores:
        low, high = result.interval()
        print(
            f"{result.module:<17} {result.killed:>6} / {result.judged:<6} {result.percent:5.1f}%"
            f"  {low:5.1f}-{high:5.1f}%   {result.judged} of {result.generated}"
        )
    for name in failed:
        print(f"{name:<17} not scored: mutmut stopped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
