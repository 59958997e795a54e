"""``allocgym bench env``: environment throughput against a pandas-loop reference env.

Times, in one run and on the same synthetic market:

- ``PortfolioEnv`` (gymnasium, one portfolio): steps per second;
- ``PortfolioVecEnv`` at each ``n_envs``: portfolio-steps per second (``n_envs`` per call);
- ``PandasReferenceEnv``: a plain per-step DataFrame-lookup env written for this benchmark
  (the FinRL style: ``.loc`` on dates, pandas rolling statistics, a Python loop over
  portfolios), doing comparable work per portfolio-step: a trailing feature window,
  symbol / sector / gross caps, the cost model's linear and impact terms, an ex-ante
  historical CVaR of the book and a fill at the next bar;
- ``BareVecEnv`` at each ``n_envs``: the floor of a batched numpy env: softmax weights,
  a linear cost, the fill and an observation of the same size, no gates, no features.

Risk gates, execution, features and the CVaR reward are on in our envs (the defaults).
Every env steps through the same kind of random actions, a new one each step
(``ACTION_POOL``).
Medians over ``repeat`` rounds of wall time, and of process CPU time with ``cpu_time``
(rates are then per CPU second). ``x_pandas`` and ``x_bare`` are our portfolio-steps/s
over the references', same run. The compiled step kernels are compiled (or loaded from
their disk cache) before any timing; ``compile_s`` is the seconds that took in this
process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from allocgym import compiled
from allocgym.bench import time_calls
from allocgym.config import AllocgymConfig, config_from_dict
from allocgym.data import MarketData, synthetic


class PandasReferenceEnv:
    """Naive per-step pandas env: what a straightforward DataFrame implementation costs.

    Parameters
    ----------
    market : MarketData
    cfg : AllocgymConfig
        Caps, costs and CVaR settings are read from it.
    """

    def __init__(self, market: MarketData, cfg: AllocgymConfig) -> None:
        idx = pd.DatetimeIndex(market.dates)
        cols = list(market.symbols)
        self.close = pd.DataFrame(market.close, index=idx, columns=cols)
        self.returns = self.close.pct_change().fillna(0.0)
        self.spread = pd.DataFrame(market.spread_bps, index=idx, columns=cols)
        self.adv = pd.DataFrame(market.volume * market.close, index=idx, columns=cols)
        self.sectors = pd.Series(market.sectors, index=cols)
        self.cfg = cfg
        self.history = 273
        self.i = self.history
        self.weights = pd.Series(0.0, index=cols)
        self.equity = cfg.env.initial_equity

    def reset(self, start: int) -> np.ndarray:
        self.i = int(start)
        self.weights = pd.Series(0.0, index=self.close.columns)
        self.equity = self.cfg.env.initial_equity
        return self._observation(self.close.index[self.i])

    def _observation(self, date: pd.Timestamp) -> np.ndarray:
        window = self.returns.loc[:date].iloc[-self.history :]
        vol = window.ewm(halflife=self.cfg.features.ewma_halflife).std().iloc[-1]
        mom = window.iloc[-63:].sum() / (vol * np.sqrt(63.0))
        lags = window.iloc[-self.cfg.features.window :] / vol
        feats = pd.concat([lags, mom.to_frame().T, vol.to_frame().T, self.weights.to_frame().T])
        return feats.to_numpy(dtype=np.float32).ravel()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        risk, costs, env = self.cfg.risk, self.cfg.costs, self.cfg.env
        date = self.close.index[self.i]
        logits = pd.Series(action[:-1] * env.logit_scale, index=self.close.columns)
        e = np.exp(logits - max(logits.max(), action[-1] * env.logit_scale))
        w = e / (e.sum() + np.exp(action[-1] * env.logit_scale - logits.max()))
        w = w.clip(upper=risk.max_symbol_weight)
        sector_gross = w.abs().groupby(self.sectors).sum()
        scale = (risk.max_sector_gross / sector_gross).clip(upper=1.0)
        w = w * self.sectors.map(scale)
        w = w * min(1.0, risk.max_gross / max(w.abs().sum(), 1e-12))
        window = self.returns.loc[:date].iloc[-env.cvar_window :]
        scen = window @ w
        k = max(1, int(np.ceil((1 - env.cvar_alpha) * len(scen))))
        cvar = -scen.nsmallest(k).mean()
        trade = (w - self.weights).abs()
        vol = self.returns.loc[:date].iloc[-63:].std()
        nxt = self.close.index[self.i + 1]
        rate = costs.commission_bps / 1e4 + costs.spread_mult * self.spread.loc[nxt] / 2e4
        impact = costs.impact_k * vol * np.sqrt(trade * self.equity / self.adv.loc[nxt])
        cost = float((trade * (rate + impact)).sum())
        growth = 1.0 + float((self.weights * self.returns.loc[nxt]).sum()) - cost
        self.equity *= growth
        self.weights = w
        self.i += 1
        reward = np.log(growth) - env.cvar_weight * cvar
        return self._observation(nxt), float(reward)


class BareVecEnv:
    """The least a batched numpy env does per step, with the observation size of ours.

    Softmax weights with cash, the portfolio return of the next bar, a linear cost on the
    traded weight and an observation of a precomputed feature row plus the weights; no
    gates, execution, impact cost or CVaR.

    Parameters
    ----------
    returns : ndarray, shape (n_bars, n_assets)
    obs_dim : int
        Observation size (at least ``n_assets``).
    n_envs : int
    cost_rate : float
        Cost per unit of traded weight.
    seed : int
    """

    def __init__(
        self, returns: np.ndarray, obs_dim: int, n_envs: int, cost_rate: float, seed: int = 0
    ) -> None:
        n_bars, n_assets = returns.shape
        rng = np.random.default_rng(seed)
        self.returns = returns
        self.features = rng.normal(size=(n_bars, obs_dim - n_assets)).astype(np.float32)
        self.cost_rate = cost_rate
        self.start = rng.integers(1, n_bars // 2, n_envs)
        self.t = self.start.copy()
        self.weights = np.zeros((n_envs, n_assets))
        self.equity = np.ones(n_envs)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = action - action.max(axis=1, keepdims=True)
        e = np.exp(logits)
        w = e[:, :-1] / e.sum(axis=1, keepdims=True)
        cost = self.cost_rate * np.abs(w - self.weights).sum(axis=1)
        t1 = self.t + 1
        growth = 1.0 + (w * self.returns[t1]).sum(axis=1) - cost
        self.equity *= growth
        self.weights = w
        self.t = np.where(t1 >= self.returns.shape[0] - 1, self.start, t1)
        obs = np.concatenate([self.features[self.t], w.astype(np.float32)], axis=1)
        return obs, np.log(growth)


def _time_rounds(fn: Any, repeat: int) -> tuple[float, float]:
    """Median wall and process CPU seconds of ``repeat`` calls (after one warm-up call)."""
    fn()
    wall, cpu = np.empty(repeat), np.empty(repeat)
    for r in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall[r], cpu[r] = time.perf_counter() - w0, time.process_time() - c0
    return float(np.median(wall)), float(np.median(cpu))


def _timed(fn: Any, per_round: int, *, repeat: int, cpu_time: bool) -> tuple[float, float | None]:
    """Median wall seconds per step of ``repeat`` rounds of ``fn`` (``per_round`` steps
    each), and with ``cpu_time`` the median process CPU seconds per step (else None)."""
    if cpu_time:
        wall, cpu = _time_rounds(fn, repeat)
        return wall / per_round, cpu / per_round
    return float(np.median(time_calls(fn, repeat=repeat))) / per_round, None


def _bench_cfg() -> AllocgymConfig:
    return config_from_dict({"env": {"split": "all"}})


ACTION_POOL = 8
"""Every timed env steps through a cycle of this many random actions (leading axis of its
``actions``): a new action each step, as in training. One fixed action let a book settle
on its target, so later steps traded little and the step looked cheaper than it is under
a learning policy."""


def _pandas_round(env: PandasReferenceEnv, actions: np.ndarray, start: int, n_steps: int) -> None:
    """One timed round of the pandas reference: a reset at ``start``, then ``n_steps``."""
    env.reset(start)
    for i in range(n_steps):
        env.step(actions[i % ACTION_POOL])


def _episode_round(env: Any, actions: np.ndarray, n_steps: int) -> None:
    """One timed round of a gymnasium env: ``n_steps`` steps, resetting at episode end."""
    for i in range(n_steps):
        _, _, term, trunc, _ = env.step(actions[i % ACTION_POOL])
        if term or trunc:
            env.reset()


def _batch_round(env: Any, actions: np.ndarray, n_steps: int) -> None:
    """One timed round of a batched env (ours or the bare one): ``n_steps`` steps."""
    for i in range(n_steps):
        env.step(actions[i % ACTION_POOL])


def _vec_steps(steps: int, n_envs: int, n_assets: int) -> int:
    """Steps per timed round of a batch: ``steps`` scaled down for large batches and
    universes, so that every round takes a comparable time, and at least 2."""
    return max(2, min(steps, int(steps * 64 // max(n_envs, 64) * 20 // max(n_assets, 20))))


def _interleaved(
    bare_round: Any, vec_round: Any, repeat: int, n_steps: int, cpu_time: bool
) -> tuple[tuple[float, float | None], tuple[float, float | None]]:
    """Median (wall, CPU or None) seconds per step of the bare and our batched env, each
    timed in ``repeat`` rounds interleaved with the other's, so the machine's load falls
    on both alike."""
    pairs = [(_time_rounds(bare_round, 1), _time_rounds(vec_round, 1)) for _ in range(repeat)]
    bare_times, vec_times = (
        (
            float(np.median(walls)) / n_steps,
            float(np.median(cpus)) / n_steps if cpu_time else None,
        )
        for walls, cpus in (zip(*rounds, strict=True) for rounds in zip(*pairs, strict=True))
    )
    return bare_times, vec_times


def _single_portfolio_times(
    market: MarketData,
    cfg: AllocgymConfig,
    params: Any,
    rng: np.random.Generator,
    seed: int,
    steps: int,
    ref_steps: int,
    timed: Any,
) -> tuple[tuple[float, float | None], tuple[float, float | None]]:
    """Per-step times (wall, CPU or None) of the pandas reference and of ``PortfolioEnv``,
    each on a cycle of ``ACTION_POOL`` random actions drawn from ``rng`` (in that order)."""
    from allocgym.envs import PortfolioEnv

    dim = params.action_spec.action_dim
    reference = PandasReferenceEnv(market, cfg)
    ref_actions = rng.uniform(-1, 1, (ACTION_POOL, dim))
    t_ref = timed(partial(_pandas_round, reference, ref_actions, params.lo, ref_steps), ref_steps)
    env = PortfolioEnv.from_params(params)
    env.reset(seed=seed)
    single_actions = rng.uniform(-1, 1, (ACTION_POOL, dim)).astype(np.float32)
    return t_ref, timed(partial(_episode_round, env, single_actions, steps), steps)


def run(
    n_assets: Sequence[int] = (20, 500),
    n_envs: Sequence[int] = (1, 64, 1024),
    *,
    n_days: int = 1200,
    steps: int = 20,
    repeat: int = 5,
    ref_steps: int = 20,
    seed: int = 0,
    cpu_time: bool = False,
    bare: bool = False,
) -> list[dict[str, Any]]:
    """Throughput rows: one per (n_assets, env, n_envs).

    Parameters
    ----------
    n_assets : sequence of int
        Universe sizes.
    n_envs : sequence of int
        Batch sizes of ``PortfolioVecEnv``.
    n_days : int
        Bars of the synthetic market.
    steps : int
        Steps per timed round (fewer, at least 2, for the largest batches).
    repeat : int
        Timed rounds; medians are reported.
    ref_steps : int
        Steps per timed round of the pandas reference.
    seed : int
    cpu_time : bool
        Also time process CPU time (rates are then per CPU second) and report the
        kernels' compile time.
    bare : bool
        Also time ``BareVecEnv`` at each ``n_envs``, in rounds interleaved with ours.

    Returns
    -------
    list of dict
        ``n_assets``, ``env``, ``n_envs``, ``ms_per_step`` (wall, per call),
        ``portfolio_steps_per_s`` and ``x_pandas`` (ratio to the reference's
        portfolio-steps/s, same run); with ``cpu_time`` also ``cpu_ms_per_step`` and
        ``compile_s``; with ``bare`` also ``x_bare`` (ratio to the bare env at the same
        ``n_envs``).
    """
    from allocgym.envs import EnvParams, PortfolioVecEnv

    compiled.warm_up()
    extra: dict[str, Any] = {}
    if cpu_time:
        extra["compile_s"] = compiled.compile_seconds()

    timed = partial(_timed, repeat=repeat, cpu_time=cpu_time)

    def row(n: int, env: str, batch: int, times: tuple[float, float | None], **ratios: Any) -> None:
        rows.append(_row(n, env, batch, *times, cpu_time=cpu_time, bare=bare, **ratios, **extra))

    rows: list[dict[str, Any]] = []
    cfg = _bench_cfg()
    cost_rate = cfg.costs.commission_bps / 1e4
    for n in n_assets:
        market = synthetic(n_assets=int(n), n_days=n_days, seed=seed)
        params = EnvParams.from_config(market, cfg)
        rng = np.random.default_rng(seed)
        dim = params.action_spec.action_dim
        t_ref, t_env = _single_portfolio_times(
            market, cfg, params, rng, seed, steps, ref_steps, timed
        )
        ref_rate = 1.0 / (t_ref[1] or t_ref[0])
        row(n, "pandas reference", 1, t_ref)
        row(n, "PortfolioEnv", 1, t_env, ref_rate=ref_rate)

        for batch in map(int, n_envs):
            vec = PortfolioVecEnv(params=params, n_envs=batch, seed=seed)
            vec.reset()
            actions = rng.uniform(-1, 1, (ACTION_POOL, batch, dim)).astype(np.float32)
            round_steps = _vec_steps(steps, batch, int(n))
            vec_round = partial(_batch_round, vec, actions, round_steps)
            if not bare:
                t_vec = timed(vec_round, round_steps)
                row(n, "PortfolioVecEnv", batch, t_vec, ref_rate=ref_rate)
                continue
            floor = BareVecEnv(market.returns, params.obs_dim, batch, cost_rate, seed=seed)
            floor_actions = rng.uniform(-1, 1, (ACTION_POOL, batch, int(n) + 1))
            bare_round = partial(_batch_round, floor, floor_actions, round_steps)
            t_bare, t_vec = _interleaved(bare_round, vec_round, repeat, round_steps, cpu_time)
            bare_rate = batch / (t_bare[1] or t_bare[0])
            row(n, "bare numpy env", batch, t_bare, ref_rate=ref_rate, bare_rate=bare_rate)
            row(n, "PortfolioVecEnv", batch, t_vec, ref_rate=ref_rate, bare_rate=bare_rate)
    return rows


def _row(
    n_assets: int,
    env: str,
    n_envs: int,
    wall: float,
    cpu: float | None,
    *,
    cpu_time: bool,
    bare: bool,
    ref_rate: float | None = None,
    bare_rate: float | None = None,
    compile_s: float | None = None,
) -> dict[str, Any]:
    rate = n_envs / (cpu if cpu is not None else wall)
    out: dict[str, Any] = {
        "n_assets": int(n_assets),
        "env": env,
        "n_envs": int(n_envs),
        "ms_per_step": 1e3 * wall,
    }
    if cpu_time:
        out["cpu_ms_per_step"] = 1e3 * float(cpu if cpu is not None else np.nan)
    out["portfolio_steps_per_s"] = rate
    out["x_pandas"] = 1.0 if ref_rate is None else rate / ref_rate
    if bare:
        out["x_bare"] = float("nan") if bare_rate is None else rate / bare_rate
    if cpu_time:
        out["compile_s"] = float("nan") if compile_s is None else compile_s
    return out
