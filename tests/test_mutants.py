"""A fixed sample of mutants that the tests must keep killing.

Each case writes one small, plausible bug into a copy of the package in a temporary folder
and runs, in a subprocess against that copy, the tests that should notice it; the case
fails if those tests pass, i.e. when the suite stops catching the bug, and then puts the
file back. The copy is checked once unmutated (it imports from itself and its tests pass),
so a kill is the mutation's doing. The source tree itself is only read. Textual mutation
also reaches the compiled (numba) kernels, which mutmut cannot. The full run is
``make mutation`` (README, "Mutation testing").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Top-level folders that pyproject maps into the ``allocgym`` package.
MAPPED_PACKAGES = ("envs", "agents", "baselines")


@dataclass(frozen=True)
class Mutant:
    """Replace ``original`` (present exactly once in ``path``) by ``mutated``."""

    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]


COSTS = "src/allocgym/costs.py"
KERNELS = "src/allocgym/compiled/cost.py"
MEASURES = "src/allocgym/measures.py"
BUNDLE = "src/allocgym/serving/bundle.py"
COST_TESTS = "tests/test_costs.py::"
MEASURE_TESTS = "tests/test_measures.py::"
EVT_TESTS = "tests/test_measures_evt.py::"

MUTANTS = {
    # A manifest without a model hash would let any model file load.
    "bundle_skips_a_missing_model_hash": Mutant(
        BUNDLE,
        "if digest != declared:",
        "if declared and digest != declared:",
        ("tests/test_serving.py::test_a_missing_or_malformed_model_hash_is_refused",),
    ),
    # Without the guard, k = 0 (or sigma = 0) against ADV = 0 prices 0 * inf = NaN.
    "costs_drops_the_zero_impact_guard": Mutant(
        KERNELS,
        "    if coef == 0.0:\n        return a * rate, 0.0\n",
        "",
        (COST_TESTS + "test_zero_impact_with_zero_adv_is_the_linear_cost_by_hand",),
    ),
    "costs_charges_the_full_spread": Mutant(
        KERNELS, "rate /= 2e4", "rate /= 1e4", (COST_TESTS + "test_half_spread_alone_by_hand",)
    ),
    "costs_keeps_float32_volatility": Mutant(
        COSTS,
        "vol = np.asarray(volatility, dtype=np.float64)",
        "vol = np.asarray(volatility)",
        (COST_TESTS + "test_float32_inputs_are_priced_in_float64",),
    ),
    "measures_population_volatility": Mutant(
        MEASURES,
        "sd = np.std(r, axis=-1, ddof=1)",
        "sd = np.std(r, axis=-1, ddof=0)",
        (MEASURE_TESTS + "test_annualized_volatility_hand",),
    ),
    "measures_drawdown_ignores_the_initial_peak": Mutant(
        MEASURES,
        "peak = np.maximum(np.maximum.accumulate(wealth, axis=-1), 1.0)",
        "peak = np.maximum.accumulate(wealth, axis=-1)",
        (MEASURE_TESTS + "test_max_drawdown_and_calmar_hand",),
    ),
    "measures_zero_return_counts_as_a_hit": Mutant(
        MEASURES,
        "out = np.mean(r > 0, axis=-1)",
        "out = np.mean(r >= 0, axis=-1)",
        (MEASURE_TESTS + "test_hit_rate_hand",),
    ),
    "measures_exponential_tail_sign": Mutant(
        MEASURES,
        "growth = np.where(xi == 0, -log_p, np.expm1(-xi * log_p) / xi)",
        "growth = np.where(xi == 0, log_p, np.expm1(-xi * log_p) / xi)",
        (EVT_TESTS + "test_evt_quantile_at_xi_zero_is_the_exponential_tail",),
    ),
    "measures_herfindahl_sums_the_whole_batch": Mutant(
        MEASURES,
        "gross = np.sum(np.abs(w), axis=-1)",
        "gross = np.sum(np.abs(w))",
        (MEASURE_TESTS + "test_batched_herfindahl_and_turnover_by_hand",),
    ),
}
# Loading the bundle these tests refuse needs a trained policy (about half a minute).
SLOW = {"bundle_skips_a_missing_model_hash"}


def _copy_package(dst: Path) -> Path:
    """The package as installed (mapped folders inside ``allocgym``), tests and pyproject."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "src" / "allocgym", dst / "src" / "allocgym", ignore=ignore)
    for package in MAPPED_PACKAGES:
        shutil.copytree(ROOT / package, dst / "src" / "allocgym" / package, ignore=ignore)
    shutil.copytree(ROOT / "tests", dst / "tests", ignore=ignore)
    shutil.copytree(ROOT / "configs", dst / "configs", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def _run(copy: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, ahead of the editable install's finder.
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=600
    )


def _pytest(copy: Path, tests: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return _run(
        copy, ["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow", *tests]
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy for every case (numba's cache beside it is reused): it imports from itself
    and, unmutated, passes the fast sample's tests."""
    copy = _copy_package(tmp_path_factory.mktemp("workspace"))
    code = "import allocgym, allocgym.envs; print(allocgym.__file__); print(allocgym.envs.__file__)"
    where = _run(copy, ["-c", code])
    assert where.returncode == 0, where.stderr
    files = where.stdout.split()
    assert len(files) == 2 and all(Path(f).is_relative_to(copy) for f in files), where.stdout
    fast = sorted({t for name, mutant in MUTANTS.items() if name not in SLOW for t in mutant.tests})
    baseline = _pytest(copy, tuple(fast))
    assert baseline.returncode == 0, baseline.stdout[-3000:] + baseline.stderr[-3000:]
    return copy


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in MUTANTS],
)
def test_the_suite_kills_the_mutant(name: str, workspace: Path) -> None:
    mutant = MUTANTS[name]
    if name in SLOW:  # its tests are not in the shared unmutated run
        baseline = _pytest(workspace, mutant.tests)
        assert baseline.returncode == 0, baseline.stdout[-3000:]
    real = (ROOT / mutant.path).read_text("utf-8")
    assert real.count(mutant.original) == 1, (
        f"{mutant.path} no longer holds {mutant.original!r} exactly once: update this sample"
    )
    target = workspace / mutant.path
    kept = target.stat()
    target.write_text(real.replace(mutant.original, mutant.mutated), "utf-8")
    try:
        result = _pytest(workspace, mutant.tests)
    finally:
        # The same text and time stamp: numba's cache of the file stays valid.
        target.write_text(real, "utf-8")
        os.utime(target, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    # Exit status 1: tests ran and failed (not a collection or usage error).
    assert result.returncode == 1, (
        f"the mutant {name} survived {list(mutant.tests)}:\n" + result.stdout[-3000:]
    )
    assert (ROOT / mutant.path).read_text("utf-8") == real
