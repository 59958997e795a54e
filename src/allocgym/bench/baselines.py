"""``allocgym bench baselines``: HRP, QP and greedy against references timed in the same run.

* HRP vs skfolio's ``HierarchicalRiskParity`` and PyPortfolioOpt's ``HRPOpt`` (same
  linkage, no optimal leaf ordering, sample covariance): median fit time, speed-up and
  max |weight difference|.
* QP: first solve (problem build + DPP compilation + solve) and the median re-solve over a
  rolling window (new Sigma, scores and current book each step, all constraints on),
  against a freshly built constant cvxpy problem of the same model solved from scratch;
  worst relative objective gap and worst constraint violation. ``resolve_cpu_ms`` is the
  process CPU time of a re-solve (BLAS capped at one thread): on a loaded machine it is
  closer to what a quiet machine's wall clock would show than ``resolve_ms``.
* Greedy top-K at 5000 names vs a plain Python loop of the same rules.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np

from allocgym.baselines.greedy import GreedyCode, greedy_rotation
from allocgym.baselines.hrp import HRP
from allocgym.baselines.qp import (
    QPAllocator,
    QPInputs,
    qp_objective,
    qp_violations,
    risk_sqrt,
)
from allocgym.bench import time_calls
from allocgym.config import GreedyConfig, HRPConfig, QPConfig

__all__ = ["bench_greedy", "bench_hrp", "bench_qp", "run"]


def _hrp_returns(n_obs: int, n_assets: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_blocks = max(2, n_assets // 5)
    block = rng.integers(0, n_blocks, n_assets)
    factors = rng.normal(0, 0.01, (n_obs, n_blocks))
    return factors[:, block] + rng.normal(0, 0.01, (n_obs, n_assets)) * rng.uniform(
        0.5, 2, n_assets
    )


def bench_hrp(
    sizes: tuple[int, ...] = (20, 100, 500), n_obs: int = 1000, repeat: int = 7
) -> list[dict[str, Any]]:
    """HRP fit time and weight agreement vs skfolio and PyPortfolioOpt (Ward linkage)."""
    import pandas as pd
    from pypfopt import HRPOpt
    from skfolio.cluster import HierarchicalClustering, LinkageMethod
    from skfolio.optimization import HierarchicalRiskParity
    from skfolio.seriation import HierarchicalSeriation

    rows = []
    for n in sizes:
        x = _hrp_returns(n_obs, n, seed=n)
        frame = pd.DataFrame(x, columns=[f"A{i:04d}" for i in range(n)])

        def ours(x: np.ndarray = x) -> np.ndarray:
            return HRP(HRPConfig(linkage_method="ward")).fit(x).weights_

        def skfolio(x: np.ndarray = x) -> np.ndarray:
            seriation = HierarchicalSeriation(
                hierarchical_clustering_estimator=HierarchicalClustering(
                    linkage_method=LinkageMethod.WARD
                ),
                optimal_ordering=False,
            )
            return HierarchicalRiskParity(seriation_estimator=seriation).fit(x).weights_

        def pypfopt(frame: pd.DataFrame = frame) -> np.ndarray:
            weights = HRPOpt(returns=frame).optimize(linkage_method="ward")
            return np.array([weights[c] for c in frame.columns])

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w_ours, w_sk, w_pp = ours(), skfolio(), pypfopt()
            # interleave so that load changes hit all three alike
            t_ours, t_sk, t_pp = [], [], []
            for _ in range(repeat):
                t_ours.append(float(np.median(time_calls(ours, repeat=3, warmup=0))))
                t_sk.append(float(time_calls(skfolio, repeat=1, warmup=0)[0]))
                t_pp.append(float(time_calls(pypfopt, repeat=1, warmup=0)[0]))
        m_ours, m_sk, m_pp = np.median(t_ours), np.median(t_sk), np.median(t_pp)
        rows.append(
            {
                "n_assets": n,
                "ours_ms": 1e3 * m_ours,
                "skfolio_ms": 1e3 * m_sk,
                "pypfopt_ms": 1e3 * m_pp,
                "x_vs_skfolio": m_sk / m_ours,
                "x_vs_pypfopt": m_pp / m_ours,
                "max|dw|_skfolio": float(np.max(np.abs(w_ours - w_sk))),
                "max|dw|_pypfopt": float(np.max(np.abs(w_ours - w_pp))),
            }
        )
    return rows


def _qp_params(cvar: bool) -> QPConfig:
    return QPConfig(
        per_name_cap=0.10,
        long_only=True,
        max_turnover=0.5,
        max_turnover_per_name=0.05,
        beta_tolerance=1.0,
        sector_cap=0.3,
        max_gross=1.5,
        max_net=1.0,
        cvar_weight=0.5 if cvar else 0.0,
        cvar_scenarios=252,
    )


def _reference_solve(params: QPConfig, inputs: QPInputs, sector_ids: np.ndarray) -> float:
    """A fresh constant cvxpy problem of the same model (no Parameters), solved from scratch."""
    n = inputs.z.size
    w = cp.Variable(n)
    g, d = inputs.risk.factors, inputs.risk.resid
    risk = cp.sum_squares(g @ w) + cp.sum_squares(cp.multiply(np.sqrt(d), w))
    obj = (
        inputs.z @ w
        - params.lambda_risk * risk
        - params.gamma_cost * cp.sum(cp.multiply(inputs.costs, cp.abs(w - inputs.w_cur)))
    )
    if params.cvar_weight > 0 and inputs.scenarios is not None:
        a = cp.Variable()
        s = inputs.scenarios.shape[0]
        obj -= params.cvar_weight * (
            a + cp.sum(cp.pos(-inputs.scenarios @ w - a)) / ((1 - params.cvar_beta) * s)
        )
    cons = [
        cp.sum(w) == params.budget,
        cp.abs(w) <= params.per_name_cap,
        w >= 0,
        cp.norm1(w) <= params.max_gross,
        cp.abs(cp.sum(w)) <= params.max_net,
        cp.norm1(w - inputs.w_cur) <= params.max_turnover,
        cp.abs(w - inputs.w_cur) <= params.max_turnover_per_name,
        cp.abs(inputs.betas @ w) <= params.beta_tolerance,
    ]
    onehot = np.zeros((int(sector_ids.max()) + 1, n))
    onehot[sector_ids, np.arange(n)] = 1.0
    cons.append(onehot @ cp.abs(w) <= params.sector_cap)
    prob = cp.Problem(cp.Maximize(obj), cons)
    prob.solve(solver="CLARABEL")
    return float(prob.value)


def bench_qp(
    sizes: tuple[int, ...] = (50, 300, 1000), n_obs: int = 252, steps: int = 7, cvar: bool = False
) -> list[dict[str, Any]]:
    """QP first solve and re-solves over a rolling window, all constraints on."""
    rows = []
    params = _qp_params(cvar)
    for n in sizes:
        rng = np.random.default_rng(n)
        total = n_obs + steps + 1
        market = rng.normal(0.0003, 0.01, (total, 1))
        x = market * rng.uniform(0.5, 1.5, n) + rng.normal(0, 0.012, (total, n))
        sector_ids = np.arange(n) % 11
        betas = rng.uniform(0.4, 1.6, n)
        alloc = QPAllocator(params)
        w_cur = np.full(n, 1.0 / n)
        first_ms = est_ms = 0.0
        resolve, resolve_cpu, reference, gaps, viols = [], [], [], [], []
        for step in range(steps + 1):
            window = x[step : step + n_obs]
            t0 = time.perf_counter()
            risk = risk_sqrt(window, params)
            est = time.perf_counter() - t0
            inputs = QPInputs(
                z=rng.normal(0, 1, n),
                w_cur=w_cur,
                costs=rng.uniform(0.0005, 0.003, n),
                risk=risk,
                betas=betas,
                scenarios=window if cvar else None,
            )
            t0, c0 = time.perf_counter(), time.process_time()
            w, _ = alloc.solve(inputs, sector_ids)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            t0 = time.perf_counter()
            ref = _reference_solve(params, inputs, sector_ids)
            ref_t = time.perf_counter() - t0
            if step == 0:
                first_ms = 1e3 * elapsed
            else:
                resolve.append(elapsed)
                resolve_cpu.append(cpu)
                est_ms += 1e3 * est / steps
                reference.append(ref_t)
            gaps.append(abs(qp_objective(w, inputs, params) - ref) / max(1.0, abs(ref)))
            viols.append(max(qp_violations(w, inputs, params, sector_ids).values()))
            w_cur = w
        m_resolve, m_ref = float(np.median(resolve)), float(np.median(reference))
        rows.append(
            {
                "n_assets": n,
                "form": "factor" if inputs.risk.factor_form else "dense",
                "cvar": cvar,
                "first_ms": first_ms,
                "resolve_ms": 1e3 * m_resolve,
                "resolve_cpu_ms": 1e3 * float(np.median(resolve_cpu)),
                "fresh_ref_ms": 1e3 * m_ref,
                "x_vs_fresh": m_ref / m_resolve,
                "risk_model_ms": est_ms,
                "max_rel_obj_gap": float(max(gaps)),
                "max_violation": float(max(viols)),
            }
        )
    return rows


def _naive_greedy(z: np.ndarray, w: np.ndarray, c: np.ndarray, p: GreedyConfig) -> np.ndarray:
    """The greedy rules as a plain Python loop (reference for timing and agreement)."""
    n = z.size
    zz = [(-math.inf if math.isnan(v) else float(v)) for v in z]
    order = sorted(range(n), key=lambda i: (-zz[i], i))
    rank = {i: r + 1 for r, i in enumerate(order)}
    codes = np.zeros(n, dtype=np.int64)
    kept = set()
    for i in range(n):
        if w[i] < 0 or (w[i] > 0 and rank[i] > p.K_sell and zz[i] < p.z_cut):
            codes[i] = GreedyCode.CUT
        elif w[i] > 0:
            codes[i] = GreedyCode.HOLD
            kept.add(i)
    free = max(p.K - len(kept), 0)
    cands = [i for i in order if w[i] == 0 and rank[i] <= p.K_buy and zz[i] > p.z_keep]
    wt = p.budget / p.K
    for i in cands[:free]:
        codes[i] = GreedyCode.BUY
    weak = [i for i in reversed(order) if i in kept]
    for j_in, j_out in zip(cands[free:], weak, strict=False):
        util = (
            zz[j_in] * wt
            - zz[j_out] * w[j_out]
            - p.gamma_cost * (c[j_in] * wt + c[j_out] * w[j_out])
        )
        if zz[j_in] - zz[j_out] >= p.delta_z_min and util > p.tau_utility:
            codes[j_in] = codes[j_out] = GreedyCode.ROTATE
    return codes


def bench_greedy(n_assets: int = 5000, repeat: int = 51) -> list[dict[str, Any]]:
    """Greedy top-K at ``n_assets`` names (default thresholds) vs a Python loop."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1, (1, n_assets))
    w = np.zeros((1, n_assets))
    w[0, rng.choice(n_assets, 20, replace=False)] = 0.05
    c = np.full((1, n_assets), 0.001)
    p = GreedyConfig()
    ours = time_calls(lambda: greedy_rotation(z, w, c, p), repeat=repeat)
    ref = time_calls(lambda: _naive_greedy(z[0], w[0], c[0], p), repeat=max(3, repeat // 10))
    same = bool(
        np.array_equal(greedy_rotation(z, w, c, p).codes[0], _naive_greedy(z[0], w[0], c[0], p))
    )
    return [
        {
            "n_assets": n_assets,
            "ours_ms": 1e3 * float(np.median(ours)),
            "p90_ms": 1e3 * float(np.quantile(ours, 0.9)),
            "python_loop_ms": 1e3 * float(np.median(ref)),
            "x_vs_loop": float(np.median(ref) / np.median(ours)),
            "same_codes": same,
        }
    ]


def run(
    hrp_sizes: tuple[int, ...] = (20, 100, 500),
    qp_sizes: tuple[int, ...] = (50, 300, 1000),
    greedy_assets: int = 5000,
    repeat: int = 7,
    cvar: bool = False,
    blas_threads: int | None = 1,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """All three benchmarks; each row carries a ``bench`` key (``hrp`` / ``qp`` / ``greedy``).

    ``blas_threads`` caps BLAS threads for ours and the references alike (on a shared,
    loaded machine multi-threaded BLAS oversubscribes and timings become meaningless);
    ``None`` leaves the library default. ``progress(stage)`` is called as each starts.
    """
    from threadpoolctl import threadpool_limits

    if blas_threads is not None:
        with threadpool_limits(limits=blas_threads, user_api="blas"):
            return run(
                hrp_sizes, qp_sizes, greedy_assets, repeat, cvar, blas_threads=None,
                progress=progress,
            )  # fmt: skip
    say = progress or (lambda stage: None)
    rows: list[dict[str, Any]] = []
    say(f"HRP at N = {', '.join(map(str, hrp_sizes))} (ours, skfolio, PyPortfolioOpt)")
    rows += [{"bench": "hrp", **r} for r in bench_hrp(hrp_sizes, repeat=repeat)]
    say(f"QP at N = {', '.join(map(str, qp_sizes))}")
    rows += [{"bench": "qp", **r} for r in bench_qp(qp_sizes, steps=repeat)]
    if cvar:
        say("QP with the CVaR term")
        rows += [{"bench": "qp", **r} for r in bench_qp(qp_sizes, steps=repeat, cvar=True)]
    say(f"greedy rotation at {greedy_assets} names")
    rows += [{"bench": "greedy", **r} for r in bench_greedy(greedy_assets, repeat=max(repeat, 51))]
    return rows
