"""Trained agents are scored out of sample only: a split they were trained or selected on,
or 'all', is refused whether it comes from the config or from --split; baselines may walk
any split, and the report says when that is in sample."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from test_evaluation import make_untrained_run
from tiny_configs import TINY
from typer.testing import CliRunner

from allocgym import evaluation as ev
from allocgym.config import AllocgymConfig, check_out_of_sample, in_sample_reason, load_config
from allocgym.data import MarketData
from allocgym.errors import ConfigError
from allocgym.promotion import promote
from allocgym.report import print_metrics_table, write_report


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, eval_cfg: AllocgymConfig, eval_market: MarketData
) -> Path:
    return make_untrained_run(tmp_path_factory.mktemp("oos") / "run", eval_cfg, eval_market)


class Flat:
    """A bare policy: the evaluation walks it as an agent."""

    name = "flat"

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.zeros((obs.shape[0], self.dim), np.float32)


def test_in_sample_reason_names_the_overlapping_key(eval_cfg: AllocgymConfig) -> None:
    assert in_sample_reason(eval_cfg, "test") is None
    assert (
        in_sample_reason(eval_cfg, "train")
        == "split 'train' overlaps env.split = 'train' (training)"
    )
    assert in_sample_reason(eval_cfg, "validation") == (
        "split 'validation' overlaps train.eval_split = 'validation' (model selection)"
    )
    assert (
        in_sample_reason(eval_cfg, "all") == "split 'all' overlaps env.split = 'train' (training)"
    )
    every_bar = load_config(None, [*TINY, "env.split=all"])  # a valid config (baselines)
    assert in_sample_reason(every_bar, "test") == (
        "split 'test' overlaps env.split = 'all' (training)"
    )
    # A config on its own (it may serve baselines over every bar): exact names only.
    assert in_sample_reason(every_bar, "test", agents=False) is None
    assert in_sample_reason(eval_cfg, "all", agents=False) is None


def test_the_refusal_gives_a_fix_that_works(eval_cfg: AllocgymConfig) -> None:
    """Another split where one is out of sample; retraining where none is (env.split = all
    overlaps every split, the test split too)."""
    with pytest.raises(ConfigError, match=r"use --split test \(evaluation.split = test\)"):
        check_out_of_sample(eval_cfg, "validation")
    every_bar = load_config(None, [*TINY, "env.split=all"])
    with pytest.raises(ConfigError) as info:
        check_out_of_sample(every_bar, "test")
    assert "train with env.split = train" in str(info.value)
    assert "use --split test" not in str(info.value)


@pytest.mark.parametrize(
    ("split", "key"), [("validation", "train.eval_split = 'validation'"), ("train", "env.split")]
)
def test_cli_evaluate_refuses_an_in_sample_split(run: Path, split: str, key: str) -> None:
    from allocgym.cli import app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(
            app, ["evaluate", "--run", str(run), "--split", split, "--baselines", "1/n"]
        )
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError), res.output
    msg = str(res.exception)
    assert msg.startswith(f"split {split!r} overlaps {key}") and "use --split test" in msg
    assert "evaluate baselines only" in msg
    assert not (run / "report.md").exists()
    assert "evaluating" not in res.output  # refused before the progress bar starts


def test_evaluation_split_all_is_refused_with_agents(run: Path, eval_market: MarketData) -> None:
    with pytest.raises(ConfigError, match=r"^split 'all' overlaps env.split = 'train'"):
        ev.evaluate_run(
            run, baselines="1/n", market=eval_market, overrides=["evaluation.split=all"]
        )


def test_a_bare_policy_is_an_agent_too(eval_cfg: AllocgymConfig, eval_market: MarketData) -> None:
    params = ev.evaluation_params(eval_market, eval_cfg, "validation")
    with pytest.raises(ConfigError, match=r"^split 'validation' overlaps train.eval_split"):
        ev.evaluate([Flat(params.action_spec.shape[0])], params=params)


def test_promote_refuses_an_in_sample_split_or_incumbent(
    run: Path, tmp_path: Path, eval_market: MarketData
) -> None:
    with pytest.raises(ConfigError, match=r"^split 'validation' overlaps train.eval_split"):
        promote(run, "hrp", split="validation")
    # An incumbent trained on every bar has no out-of-sample split.
    every_bar = load_config(None, [*TINY, "env.split=all"])
    incumbent = make_untrained_run(tmp_path / "inc", every_bar, eval_market)
    with pytest.raises(ConfigError, match=r"^split 'test' overlaps env.split = 'all'"):
        promote(run, incumbent)


def test_baselines_walk_any_split_and_the_report_says_in_sample(
    tmp_path: Path,
    eval_cfg: AllocgymConfig,
    eval_market: MarketData,
    capsys: pytest.CaptureFixture[str],
) -> None:
    baselines = list(ev.build_baselines(eval_cfg, ["1/n"]).values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inside = ev.evaluate(baselines, eval_market, eval_cfg, "validation")
        held_out = ev.evaluate(baselines, eval_market, eval_cfg, "test")
    assert inside.meta["split"] == "validation"
    assert inside.meta["in_sample"] == (
        "split 'validation' overlaps train.eval_split = 'validation' (model selection)"
    )
    assert held_out.meta["in_sample"] is None
    text = write_report(inside, tmp_path)["markdown"].read_text()
    assert "bars, in sample: split 'validation' overlaps train.eval_split" in text
    assert "bars, out of sample" not in text
    print_metrics_table(inside)
    print_metrics_table(held_out)
    titles = [ln.strip() for ln in capsys.readouterr().out.splitlines() if "-sample metrics" in ln]
    assert [t.split(":")[0] for t in titles] == ["In-sample metrics", "Out-of-sample metrics"]


def test_the_test_split_is_still_evaluated(run: Path, eval_market: MarketData) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ev.evaluate_run(run, baselines="1/n", market=eval_market)
    assert res.meta["split"] == "test" and res.meta["in_sample"] is None
    assert [bt.kind for bt in res.backtests] == ["agent", "baseline"]
