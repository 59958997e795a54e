"""``allocgym bench baselines`` (risk models): DCC-GARCH and the Pareto front vs references.

* **DCC-GARCH fit** at ``n_assets`` on ``n_obs`` bars of a simulated DCC process: our
  two-stage fit against the univariate stage alone done by ``arch`` (one
  ``arch_model(...).fit`` per asset, the same model), interleaved; the worst parameter
  difference to arch's fits (both on the same returns, scaled to percent so that arch's
  optimiser converges).
* **Per-bar update**: :func:`allocgym.dcc.dcc_update` (``O(N^2)``) against re-filtering the
  window to the new bar from scratch (what a model without a streaming state does).
* **Pareto front** of ``n_points`` points at ``n_assets`` on 252 scenarios: our traced
  front (one DPP problem, HiGHS hot-started along the front) against solving the same
  problem point by point through cvxpy's own HiGHS interface; the worst objective
  difference between the two fronts.

Each row reports medians of wall and process CPU time (BLAS capped at one thread by the
caller) and the goal beside them.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["GOALS", "bench_dcc", "bench_pareto", "run"]

GOALS: dict[str, float] = {"dcc_fit_s": 2.0, "dcc_update_ms": 1.0, "pareto_front_s": 0.5}
"""Benchmark goals: DCC fit (N = 100, 2000 bars), per-bar update, 20-point front (N = 100)."""


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def _dcc_returns(n_obs: int, n_assets: int, seed: int) -> np.ndarray:
    from allocgym.dcc import simulate_dcc

    rng = np.random.default_rng(seed)
    load = rng.uniform(0.3, 0.8, n_assets)
    qbar = np.outer(load, load)
    np.fill_diagonal(qbar, 1.0)
    omega = rng.uniform(1e-6, 4e-6, n_assets)
    alpha = rng.uniform(0.04, 0.1, n_assets)
    beta = 0.97 - alpha - rng.uniform(0.0, 0.05, n_assets)
    return simulate_dcc(n_obs, omega, alpha, beta, 0.04, 0.93, qbar, rng)


def _arch_fits(x: np.ndarray) -> np.ndarray:
    from arch import arch_model

    e = 100.0 * (x - x.mean(axis=0))
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(e.shape[1]):
            res = arch_model(e[:, i], mean="Zero", vol="GARCH", p=1, q=1, rescale=False).fit(
                disp="off"
            )
            out.append(res.params.to_numpy())
    return np.array(out)  # omega (percent^2), alpha, beta


def bench_dcc(n_assets: int = 100, n_obs: int = 2000, repeat: int = 3) -> list[dict[str, Any]]:
    """DCC-GARCH fit and per-bar update timings (medians) with the goals beside them."""
    from allocgym.dcc import DCCGarch, dcc_q_forecast, dcc_update, garch11_variance

    x = _dcc_returns(n_obs + 1, n_assets, seed=n_assets)
    window, new_bar = x[:-1], x[-1]
    fit_wall, fit_cpu, arch_wall, arch_cpu = [], [], [], []
    model = None
    arch_params = None
    for _ in range(repeat):  # interleaved: load changes hit both alike
        w, c, model = _timed(lambda: DCCGarch().fit(window))
        fit_wall.append(w)
        fit_cpu.append(c)
        w, c, arch_params = _timed(lambda: _arch_fits(window))
        arch_wall.append(w)
        arch_cpu.append(c)
    assert model is not None and arch_params is not None
    g = model.params_.garch
    ours = np.column_stack([g.omega * 1e4, g.alpha, g.beta])
    rows = [
        {
            "what": f"DCC-GARCH fit, N={n_assets}, {n_obs} bars",
            "ours": f"{np.median(fit_wall):.3f} s",
            "ours_cpu": f"{np.median(fit_cpu):.3f} s",
            "goal": f"<= {GOALS['dcc_fit_s']:g} s",
            "reference": "arch, univariate stage only",
            "ref": f"{np.median(arch_wall):.3f} s",
            "ref_cpu": f"{np.median(arch_cpu):.3f} s",
            "check": f"max|d alpha,beta| vs arch {np.max(np.abs(ours[:, 1:] - arch_params[:, 1:])):.1e}"
            f"; a={model.params_.a:.3f} b={model.params_.b:.3f} (true 0.040, 0.930)",
        }
    ]
    p, state = model.params_, model.state_
    e = window - p.garch.mu
    z_hist = e / np.sqrt(garch11_variance(e, p.garch.omega, p.garch.alpha, p.garch.beta))

    def refilter() -> np.ndarray:
        z_new = (new_bar - p.garch.mu) / np.sqrt(state.sigma2)
        return dcc_q_forecast(np.vstack([z_hist, z_new[None, :]]), p.qbar, p.a, p.b)

    upd_wall, upd_cpu, ref_wall, ref_cpu = [], [], [], []
    for _ in range(max(repeat, 3)):
        w, c, _ = _timed(lambda: [dcc_update(state, p, new_bar) for _ in range(1000)])
        upd_wall.append(w / 1000)
        upd_cpu.append(c / 1000)
        w, c, _ = _timed(lambda: [refilter() for _ in range(20)])
        ref_wall.append(w / 20)
        ref_cpu.append(c / 20)
    same = np.allclose(dcc_update(state, p, new_bar).q, refilter(), rtol=1e-10, atol=1e-12)
    rows.append(
        {
            "what": f"DCC per-bar update, N={n_assets}",
            "ours": f"{1e3 * np.median(upd_wall):.3f} ms",
            "ours_cpu": f"{1e3 * np.median(upd_cpu):.3f} ms",
            "goal": f"<= {GOALS['dcc_update_ms']:g} ms",
            "reference": f"re-filter {n_obs} bars",
            "ref": f"{1e3 * np.median(ref_wall):.3f} ms",
            "ref_cpu": f"{1e3 * np.median(ref_cpu):.3f} ms",
            "check": f"same Q as the re-filter: {same}",
        }
    )
    return rows


def bench_pareto(
    n_assets: int = 100, n_points: int = 20, n_scenarios: int = 252, repeat: int = 3
) -> list[dict[str, Any]]:
    """The Pareto front (medians) against point-by-point cvxpy solves of the same problem."""
    import cvxpy as cp

    from allocgym.baselines.pareto import ParetoProblem, pareto_front
    from allocgym.config import ParetoConfig

    rng = np.random.default_rng(n_assets)
    market = rng.normal(0.0003, 0.01, (n_scenarios, 1))
    r = market * rng.uniform(0.5, 1.5, n_assets) + rng.normal(
        0.0002, 0.012, (n_scenarios, n_assets)
    )
    lo, hi = np.zeros(n_assets), np.full(n_assets, 0.05)
    costs = rng.uniform(0.0005, 0.003, n_assets)
    params = ParetoConfig(n_points=n_points)
    prob = ParetoProblem(n_scenarios, n_assets, params.alpha)
    ref_prob = ParetoProblem(n_scenarios, n_assets, params.alpha)
    ours_w, ours_c, ref_w, ref_c = [], [], [], []
    front = ref = None
    reference_solver = "HIGHS" if "HIGHS" in cp.installed_solvers() else "CLARABEL"

    def ours() -> Any:
        return pareto_front(r, lo, hi, params, costs=costs, problem=prob)

    def reference() -> Any:
        # cvxpy's own solve per point (no hot start): the plain way to trace the same front
        return pareto_front(
            r, lo, hi, params, costs=costs, solver=reference_solver, hot_start=False,
            problem=ref_prob,
        )  # fmt: skip

    ours()  # build / compile once, like a rebalance after the first
    reference()
    for _ in range(repeat):
        w, c, front = _timed(ours)
        ours_w.append(w)
        ours_c.append(c)
        w, c, ref = _timed(reference)
        ref_w.append(w)
        ref_c.append(c)
    assert front is not None and ref is not None
    gap = float(np.max(np.abs(front.objectives[:, :2] - ref.objectives[:, :2])))
    return [
        {
            "what": f"Pareto front, {n_points} points, N={n_assets}, {n_scenarios} scenarios",
            "ours": f"{np.median(ours_w):.3f} s",
            "ours_cpu": f"{np.median(ours_c):.3f} s",
            "goal": f"<= {GOALS['pareto_front_s']:g} s",
            "reference": f"cvxpy solve per point ({reference_solver})",
            "ref": f"{np.median(ref_w):.3f} s",
            "ref_cpu": f"{np.median(ref_c):.3f} s",
            "check": f"{len(front.objectives)} points; max|d return, CVaR| vs ref {gap:.1e}",
        }
    ]


def run(repeat: int = 3, n_assets: int = 100, blas_threads: int | None = 1) -> list[dict[str, Any]]:
    """DCC-GARCH and Pareto rows (``bench`` key ``risk_models``), plus the machine load.

    ``blas_threads`` caps BLAS threads for ours and the references alike (``None``: the
    library default).
    """
    from threadpoolctl import threadpool_limits

    if blas_threads is not None:
        with threadpool_limits(limits=blas_threads, user_api="blas"):
            return run(repeat, n_assets, blas_threads=None)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = bench_dcc(n_assets, repeat=repeat) + bench_pareto(n_assets, repeat=repeat)
    for row in rows:
        row["load_1min"] = f"{load:.1f}/{os.cpu_count()}"
    return [{"bench": "risk_models", **r} for r in rows]
