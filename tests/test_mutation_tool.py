"""``tools/mutation.py``: the systematic sample, the score's Wilson interval, and the
verdicts ``--rejudge`` keeps (read from and written to mutmut's ``.meta`` files)."""

from __future__ import annotations

import fnmatch
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import mutation


def test_sample_patterns_select_what_in_sample_counts() -> None:
    """The mutmut patterns of a 20% sample match exactly the names ``in_sample`` keeps:
    numbers ending in 3 or 7 (the first two digits of the fixed order)."""
    names = [f"allocgym.risk.kernels.x_f__mutmut_{i}" for i in range(1, 41)]
    patterns = mutation.sample_patterns(20)
    assert patterns == ["*__mutmut_*3", "*__mutmut_*7"]
    matched = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]
    assert matched == [n for n in names if mutation.in_sample(n, 20)]
    assert [int(n.rsplit("_", 1)[1]) for n in matched] == [3, 7, 13, 17, 23, 27, 33, 37]
    assert all(mutation.in_sample(n, 100) for n in names)


def test_wilson_interval_by_hand() -> None:
    """90 of 100 killed: centre (0.9 + 1.96²/200) / (1 + 1.96²/100) = 0.88520, half width
    1.96·sqrt(0.0009 + 1.96²/40000) / 1.038416 = 0.05957: 82.56% to 94.48%."""
    low, high = mutation.Score("m", 90, 100, 500, []).interval()
    assert low == pytest.approx(82.56, abs=0.01) and high == pytest.approx(94.48, abs=0.01)
    assert mutation.Score("m", 0, 0, 10, []).interval() == (0.0, 100.0)


def _meta(where: Path, codes: dict[str, int | None], hashes: dict[str, str]) -> Path:
    meta = where / "mutants" / "src" / "allocgym" / "x.py.meta"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes, "hash_by_function_name": hashes}))
    return meta


def test_rejudge_keeps_verdicts_of_unchanged_functions_only(tmp_path: Path) -> None:
    """After mutmut's reset, ``restore`` puts back an earlier verdict where the mutant is
    unjudged and its function's hash is unchanged; ``pending`` lists the sample's
    unjudged and surviving mutants."""
    f3, f7, g3 = "allocgym.x.x_f__mutmut_3", "allocgym.x.x_f__mutmut_7", "allocgym.x.x_g__mutmut_3"
    _meta(tmp_path, {f3: 1, f7: 0, g3: 1}, {"x_f": "a", "x_g": "b"})
    before = mutation.verdicts(tmp_path)
    assert mutation.pending(tmp_path, 20, (0, 33)) == [f7]
    # mutmut forgot everything; g changed, f7 was judged again and is killed now
    meta = _meta(tmp_path, {f3: None, f7: 1, g3: None}, {"x_f": "a", "x_g": "changed"})
    assert mutation.restore(tmp_path, before) == 1
    assert json.loads(meta.read_text())["exit_code_by_key"] == {f3: 1, f7: 1, g3: None}
    assert mutation.pending(tmp_path, 20) == [g3]
