"""Clock-time trading windows: which bars they mark, daily bars, and the walk they schedule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from allocgym.config import ScheduleConfig, config_from_dict
from allocgym.envs.context import window_bars
from allocgym.errors import ConfigError

DESIGN_WINDOWS = ("09:35", "10:30", "12:00", "14:30", "15:50")


def _five_minute_bars(n_days: int, start: str = "2024-01-02") -> np.ndarray:
    """Regular-session 5-minute bars (09:30..15:55 New York = 14:30..20:55 UTC in winter)."""
    days = pd.bdate_range(start, periods=n_days)
    stamps = [d + pd.Timedelta(hours=14, minutes=30 + 5 * k) for d in days for k in range(78)]
    return np.array(stamps, dtype="datetime64[ns]")


def test_window_bars_by_hand() -> None:
    """ "**Scheduled windows**: 09:35, 10:30, 12:00, 14:30, 15:50" (exchange time): each
    marks the first bar at or after it every day; a range marks the bars inside it.

    Bar k of a day is 09:30 + 5k New York: 09:35 is k=1, 10:30 k=12, 12:00 k=30, 14:30
    k=60, 15:50 k=76; the range 10:00-10:15 is k=6, 7, 8."""
    dates = _five_minute_bars(2)
    mask = window_bars(dates, ScheduleConfig(windows=DESIGN_WINDOWS))
    assert mask is not None
    expected = [k + 78 * d for d in range(2) for k in (1, 12, 30, 60, 76)]
    assert np.flatnonzero(mask).tolist() == expected
    ranged = window_bars(dates, ScheduleConfig(windows=("10:00-10:15",)))
    assert ranged is not None and np.flatnonzero(ranged[:78]).tolist() == [6, 7, 8]
    # Bars already in exchange time: the same bars.
    local = dates - np.timedelta64(5, "h")
    same = window_bars(
        local, ScheduleConfig(windows=DESIGN_WINDOWS, bar_timezone="America/New_York")
    )
    assert same is not None and np.array_equal(same, mask)
    # Sparse bars: a window between two bars marks the first bar after it.
    sparse = dates[::7]  # 09:30, 10:05, 10:40, ... : 09:35 -> 10:05, 10:30 -> 10:40
    first = window_bars(sparse, ScheduleConfig(windows=("09:35", "10:30")))
    assert first is not None and np.flatnonzero(first[:12]).tolist() == [1, 2]


def test_daily_bars_ignore_windows_with_a_note() -> None:
    """Daily bars carry no time of day: the windows are ignored, with a warning."""
    daily = pd.bdate_range("2024-01-02", periods=10).to_numpy(dtype="datetime64[ns]")
    with pytest.warns(UserWarning, match="ignored: the bars are daily"):
        assert window_bars(daily, ScheduleConfig(windows=DESIGN_WINDOWS)) is None
    assert window_bars(daily, ScheduleConfig()) is None


def test_bad_windows_are_refused() -> None:
    for bad, match in (("9:35", "HH:MM"), ("10:00-09:00", "after the start"),
                       ("25:00", "HH:MM")):  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            config_from_dict({"schedule": {"windows": [bad]}})
    with pytest.raises(ConfigError, match="IANA"):
        config_from_dict({"schedule": {"exchange_timezone": "Mars/Olympus"}})


def test_evaluation_rebalances_only_in_windows() -> None:
    """An evaluation walk on intraday bars re-optimises exactly at the window bars (its
    selection audit has one record per window bar of the walk)."""
    from allocgym.baselines.greedy import GreedyRotation
    from allocgym.data import synthetic_from_config
    from allocgym.evaluation import evaluation_params, run_allocators

    cfg = config_from_dict(
        {
            "data": {
                "source": "synthetic",
                "synthetic": {"n_assets": 6, "n_days": 720, "seed": 5},
                "splits": {"train_end": "2024-01-08", "validation_end": "2024-01-10"},
            },
            "baselines": {"lookback": 126, "rebalance_every": 5},
            "schedule": {"windows": list(DESIGN_WINDOWS)},
        }
    )
    md = synthetic_from_config(cfg.data.synthetic)
    md = dataclasses.replace(md, dates=_five_minute_bars(10)[: md.n_days])
    params = evaluation_params(md, cfg, "test")
    bt = run_allocators([GreedyRotation()], params=params)[0]
    mask = window_bars(md.dates, cfg.schedule)
    assert mask is not None
    walked = bt.bars  # decision bars of the walk
    assert [r["bar"] for r in bt.selection_audit] == walked[mask[walked]].tolist()
    assert len(bt.selection_audit) >= 10


class _DefensiveAgent:
    """A budgets-mode policy putting most of its budget on the defensive family."""

    name = "defensive_agent"

    def act(self, obs: np.ndarray) -> np.ndarray:
        a = np.full((np.atleast_2d(obs).shape[0], 4), -1.0, dtype=np.float32)
        a[:, 2] = 1.0
        return a


@pytest.mark.parametrize("first_hour", [10, 16], ids=["starts_in_a_window", "starts_outside"])
def test_a_budgets_agent_keeps_its_book_between_windows(first_hour: int) -> None:
    """Between windows a budgets agent holds its (drifted) book: the strategy cap does not
    cut it again with the last decision's family parts (it had sold the whole book one
    bar after each window), and a walk that starts outside a window holds cash until the
    first one (it had raised KeyError)."""
    from allocgym.data import synthetic
    from allocgym.envs import core
    from allocgym.evaluation import evaluation_params, run_allocator
    from allocgym.risk import ReasonCode

    md = synthetic(n_assets=6, n_days=500, seed=5, n_sectors=3)
    days = pd.bdate_range("2001-01-01", periods=500 // 7 + 2)
    stamps = [d + pd.Timedelta(hours=h) for d in days for h in range(10, 17)]
    lo = 301 if first_hour == 10 else 300  # bar 301 is 10:00, bar 300 16:00
    md = dataclasses.replace(md, dates=np.array(stamps[:500], dtype="datetime64[ns]"))
    cfg = config_from_dict({
        "env": {"split": "all", "action_mode": "budgets"},
        "schedule": {"windows": ["10:00"], "exchange_timezone": "UTC", "bar_timezone": "UTC"},
        "baselines": {"lookback": 60},
        "risk": {"strategy_budgets": {"trend": 0.3, "mean_reversion": 0.3, "defensive": 0.3},
                 "max_turnover": 100.0, "max_participation": 1e6, "slippage_budget_bps": 1e6,
                 "max_sector_gross": 10.0, "max_symbol_weight": 1.0, "max_gross": 10.0},
    })  # fmt: skip
    params = dataclasses.replace(evaluation_params(md, cfg, "all"), lo=lo)
    infos: list[dict] = []
    step = core.step_proposed

    def spy(*args, **kwargs):
        res = step(*args, **kwargs)
        infos.append(res.info)
        return res

    core.step_proposed = spy
    try:
        run_allocator(_DefensiveAgent(), params=params)
    finally:
        core.step_proposed = step
    cap = int(ReasonCode.STRATEGY_CAP)
    window = window_bars(md.dates, cfg.schedule)
    bars = lo + np.arange(len(infos))
    held = [i for i, t in enumerate(bars) if not window[t]][:20]
    assert held and any(window[bars])
    for i in held:
        assert not int(infos[i]["portfolio_reasons"][0]) & cap, bars[i]
        np.testing.assert_allclose(infos[i]["approved"][0], infos[i]["proposed"][0], atol=1e-12)
    gross = [np.abs(infos[i]["approved"][0]).sum() for i in held]
    if first_hour == 16:
        assert gross.pop(0) == 0.0  # cash until the first window
    assert min(gross) > 0.25  # the book bought at a window is held, not sold off
