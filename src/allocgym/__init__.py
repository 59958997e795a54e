"""allocgym: a gymnasium portfolio environment with deterministic risk gates.

Sub-packages ``allocgym.envs``, ``allocgym.agents`` and ``allocgym.baselines`` live in the
repository's top-level ``envs/``, ``agents/`` and ``baselines/`` folders.
"""

__version__ = "0.1.0"
