"""``allocgym bench env``: environment throughput against a pandas-loop reference env.

Times, in one run and on the same synthetic market:

- ``PortfolioEnv`` (gymnasium, one portfolio): steps per second;
- ``PortfolioVecEnv`` at each ``n_envs``: portfolio-steps per second (``n_envs`` per call);
- ``PandasReferenceEnv``: a plain per-step DataFrame-lookup env written for this benchmark
  (the FinRL style: ``.loc`` on dates, pandas rolling statistics, a Python loop over
  portfolios), doing comparable work per portfolio-step: a trailing feature window,
  symbol / sector / gross caps, the cost model's linear and impact terms, an ex-ante
  historical CVaR of the book and a fill at the next bar.

Risk gates, execution, features and the CVaR reward are on in our envs (the defaults).
Medians over ``repeat`` rounds; ``x_pandas`` is our portfolio-steps/s over the
reference's, measured in the same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

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


def _bench_cfg() -> AllocgymConfig:
    return config_from_dict({"env": {"split": "all"}})


def run(
    n_assets: Sequence[int] = (20, 500),
    n_envs: Sequence[int] = (1, 64, 1024),
    *,
    n_days: int = 1200,
    steps: int = 20,
    repeat: int = 5,
    ref_steps: int = 20,
    seed: int = 0,
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

    Returns
    -------
    list of dict
        ``n_assets``, ``env``, ``n_envs``, ``ms_per_step`` (per call), ``portfolio_steps_per_s``
        and ``x_pandas`` (ratio to the reference's portfolio-steps/s, same run).
    """
    from allocgym.envs import EnvParams, PortfolioEnv, PortfolioVecEnv

    rows: list[dict[str, Any]] = []
    cfg = _bench_cfg()
    for n in n_assets:
        market = synthetic(n_assets=int(n), n_days=n_days, seed=seed)
        params = EnvParams.from_config(market, cfg)
        rng = np.random.default_rng(seed)
        dim = params.action_spec.action_dim

        ref = PandasReferenceEnv(market, cfg)
        ref_action = rng.uniform(-1, 1, dim)

        def ref_round(
            ref: PandasReferenceEnv = ref, a: np.ndarray = ref_action, start: int = params.lo
        ) -> None:
            ref.reset(start)
            for _ in range(ref_steps):
                ref.step(a)

        t_ref = float(np.median(time_calls(ref_round, repeat=repeat))) / ref_steps
        ref_rate = 1.0 / t_ref
        rows.append(_row(n, "pandas reference", 1, t_ref, ref_rate))

        env = PortfolioEnv.from_params(params)
        env.reset(seed=seed)
        single_action = rng.uniform(-1, 1, dim).astype(np.float32)

        def env_round(env: PortfolioEnv = env, a: np.ndarray = single_action) -> None:
            for _ in range(steps):
                _, _, term, trunc, _ = env.step(a)
                if term or trunc:
                    env.reset()

        t_env = float(np.median(time_calls(env_round, repeat=repeat))) / steps
        rows.append(_row(n, "PortfolioEnv", 1, t_env, 1.0 / t_env, ref_rate))

        for b in n_envs:
            vec = PortfolioVecEnv(params=params, n_envs=int(b), seed=seed)
            vec.reset()
            actions = rng.uniform(-1, 1, (int(b), dim)).astype(np.float32)
            k = max(2, min(steps, int(steps * 64 // max(int(b), 64) * 20 // max(int(n), 20))))

            def vec_round(vec: PortfolioVecEnv = vec, a: np.ndarray = actions, k: int = k) -> None:
                for _ in range(k):
                    vec.step(a)

            t_vec = float(np.median(time_calls(vec_round, repeat=repeat))) / k
            rows.append(_row(n, "PortfolioVecEnv", int(b), t_vec, int(b) / t_vec, ref_rate))
    return rows


def _row(
    n_assets: int, env: str, n_envs: int, t_call: float, rate: float, ref_rate: float | None = None
) -> dict[str, Any]:
    return {
        "n_assets": int(n_assets),
        "env": env,
        "n_envs": int(n_envs),
        "ms_per_step": 1e3 * t_call,
        "portfolio_steps_per_s": rate,
        "x_pandas": 1.0 if ref_rate is None else rate / ref_rate,
    }
