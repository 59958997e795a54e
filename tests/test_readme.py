"""The README's Python example runs as written (documented API cannot drift)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs() -> None:
    text = README.read_text()
    section = text[text.index("### Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "README has no python block under '### Python'"
    script = code.group(1) + (
        "\nobs, _ = env.reset(seed=0)\n"
        "assert obs.shape == env.observation_space.shape\n"
        "assert vec.reset().shape == (64, *env.observation_space.shape)\n"
        "print('readme-ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "readme-ok" in out.stdout
