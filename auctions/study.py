"""The revenue-design study (``mfid design auction``): methods × seeds at equal budgets.

For a setting (:mod:`auctions.settings`), :func:`run_revenue_design` runs every method with the
design loop of :mod:`solvers.design_loop`, all seeds of a method as one batched program
(:func:`solvers.design_seeds`; the seed draws the network initialisation and the optimiser's
random numbers). Budgets are equal in objective evaluations: an exact gradient step counts one,
a zeroth-order step ``estimator.evaluations_per_step`` (3 for 0-SGD/0-ADAM with one direction and
for ANNEAL), so a zeroth-order method gets ``steps // 3`` steps. Every mechanism is evaluated at
its equilibrium after ``val_iters`` OMD steps from the uniform policy (the :class:`DesignResult`'s
``final``), the first-price baseline and the untrained mechanism likewise; the study returns
numbers only (:class:`RevenueStudy`); :mod:`mfid.report.auction` writes them.

This is the one module of ``auctions`` that imports ``solvers``.

Example::

    from auctions.study import run_revenue_design
    study = run_revenue_design("A1", methods=("amid",), steps=4, seeds=1, width=8,
                               num_values=10, num_bids=10, iters=20, val_iters=20)
    study.runs["amid"][0].equilibrium.revenue
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from auctions.bound import entropy_slack
from auctions.game import AuctionRound
from auctions.objectives import make_objective
from auctions.settings import check_setting, first_price_game, make
from mfid.checks import check_count, check_positive
from solvers import as_estimator, design_seeds, solve_omd, warmup_cosine
from solvers.gradients import objective_at

__all__ = [
    "LABELS",
    "LEARNING_RATE",
    "METHODS",
    "Equilibrium",
    "RevenueStudy",
    "Run",
    "equilibrium",
    "run_revenue_design",
]

METHODS = ("amid", "zeroth-adam", "zeroth-sgd", "anneal")
LABELS = {"amid": "AMID", "zeroth-adam": "0-ADAM", "zeroth-sgd": "0-SGD", "anneal": "ANNEAL"}
LEARNING_RATE = 2e-3  # peak of the warm-up/cosine schedule (results/A1/NOTES.md: the sweep)


@dataclasses.dataclass(frozen=True)
class Equilibrium:
    """A mechanism's equilibrium: ``revenue`` and ``objective`` (the setting's designer
    objective) per capita, ``exploitability``, ``status`` (RESULTS name), ``iterations``, the
    entropy slack, the per-round :class:`~auctions.game.AuctionRound` (numpy) and the flow."""

    revenue: float
    objective: float
    exploitability: float
    status: str
    iterations: int
    entropy_slack: float
    info: AuctionRound
    flow: np.ndarray


@dataclasses.dataclass(frozen=True)
class Run:
    """One method × seed: its design traces, cost and the chosen mechanism's equilibrium."""

    method: str
    seed: int
    steps: int
    evaluations: int
    objective_trace: np.ndarray
    exploitability_trace: np.ndarray
    evaluation_trace: np.ndarray
    seconds: float
    seconds_per_step: float
    compile_seconds: float
    status: str
    selected: str
    selected_surrogate: float
    selected_step: int
    candidates: tuple
    theta: Any
    equilibrium: Equilibrium


@dataclasses.dataclass(frozen=True)
class RevenueStudy:
    """Everything a revenue report needs: the setting's metadata and config, the first-price
    baseline, the untrained mechanism and the runs per method."""

    setting: str
    meta: dict
    config: dict
    first_price: Equilibrium
    initial: Equilibrium
    runs: dict[str, list[Run]]
    seconds: float


_objective_at = jax.jit(objective_at, static_argnums=(1,))


def equilibrium(game, objective: Callable, theta, res, tau) -> Equilibrium:
    """The :class:`Equilibrium` record of an :class:`~solvers.OMDResult` (one rollout of its
    policy reads the rounds; no re-solve)."""
    value, (_, _, L, dyn) = _objective_at(game, objective, theta, res.logits)
    info = jax.tree.map(np.asarray, dyn.info)
    return Equilibrium(
        revenue=float(np.sum(info.revenue) / game.num_markets),
        objective=float(value),
        exploitability=float(res.exploitability),
        status=res.status_name,
        iterations=int(res.iterations),
        entropy_slack=float(entropy_slack(L, tau)),
        info=info,
        flow=np.asarray(L),
    )


def run_revenue_design(
    setting: str,
    *,
    methods=METHODS,
    steps: int = 100,
    seeds: int = 1,
    tau: float = 1e-3,
    eta: float = 10.0,
    iters: int = 400,
    val_iters: int = 10000,
    val_tol: float = 1e-9,
    learning_rate: float = LEARNING_RATE,
    zo_learning_rate: float | None = None,
    width: int = 256,
    draws: int = 4,
    num_values: int = 100,
    num_bids: int = 100,
    warm_start: bool = False,
    select: str = "converged",
    keep: int = 3,
    u: float = 0.05,
    sigma: float = 0.1,
    precision: str | None = "float32",
    callback: Callable[[str, int, dict], None] | None = None,
) -> RevenueStudy:
    """Run the comparison (see the module docstring) and return a :class:`RevenueStudy`.

    Every reported mechanism is solved until its exploitability is ``<= val_tol`` (at most
    ``val_iters`` OMD steps; a run that does not get there keeps status ``max_iterations`` and
    the report flags it). ``select="converged"`` (default) chooses, for every method alike,
    among the last iterate and the ``keep`` best-surrogate iterates the one with the best
    converged value. ``warm_start=False`` (default) evaluates every surrogate ``G_T`` from the
    uniform policy. ``u`` and ``sigma`` are the zeroth-order radii (0-SGD/0-ADAM, ANNEAL). ``precision`` is
    the compute precision of the design steps; every reported number is evaluated in the default
    float dtype. ``callback(method, step, metrics)`` reports progress. Time per step is the
    median wall time of the steps after the first (compilation excluded; ``compile_seconds`` is
    the first step's excess)."""
    setting = check_setting(setting)
    methods = tuple(methods)
    if not methods:
        raise ValueError("methods must name at least one method")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {m!r}")
    steps = check_count(steps, "steps")
    seeds = check_count(seeds, "seeds")
    check_positive(learning_rate, "learning_rate")
    if zo_learning_rate is not None:
        check_positive(zo_learning_rate, "zo_learning_rate")
    t_start = time.perf_counter()
    grid = dict(width=width, draws=draws, num_values=num_values, num_bids=num_bids)
    sts = [make(setting, key=jax.random.key(1000 + s), **grid) for s in range(seeds)]
    game = sts[0].game
    objective = make_objective(sts[0].objective, sts[0].mix_weight)
    meta = dict(sts[0].metadata)
    fp_game = first_price_game(game)
    fp = solve_omd(fp_game, {}, tau=tau, eta=eta, iters=val_iters, tol=val_tol)
    first_price = equilibrium(fp_game, objective, {}, fp, tau)
    thetas0 = jax.tree.map(lambda *xs: jnp.stack(xs), *[s.theta0 for s in sts])
    runs: dict[str, list[Run]] = {}
    initial = None
    for m in methods:
        est = as_estimator(m, u=u, sigma=sigma)
        n = max(1, steps // est.evaluations_per_step)
        lr = learning_rate if (m == "amid" or zo_learning_rate is None) else zo_learning_rate
        optimizer = warmup_cosine(lr, n, sgd=m == "zeroth-sgd") if est.uses_optimizer else None
        keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in range(seeds)])
        t = time.perf_counter()
        results = design_seeds(
            game, objective, thetas0, keys, maximize=True, estimator=est, optimizer=optimizer,
            steps=n, tau=tau, eta=eta, iters=iters, val_iters=val_iters, val_tol=val_tol,
            warm_start=warm_start, select=select, keep=keep, precision=precision, throw=False,
            callback=None if callback is None else (lambda k, mt, m=m: callback(m, k, mt)),
        )  # fmt: skip
        seconds = time.perf_counter() - t
        if initial is None:
            theta0 = jax.tree.map(lambda x: x[0], thetas0)
            initial = equilibrium(game, objective, theta0, results[0].initial, tau)
        runs[m] = []
        for s, res in enumerate(results):
            later = res.step_seconds[1:]
            per_step = float(np.median(later)) if len(later) else float(res.step_seconds[0])
            runs[m].append(
                Run(
                    method=m, seed=s, steps=res.steps, evaluations=res.total_evaluations,
                    objective_trace=res.objective, exploitability_trace=res.exploitability,
                    evaluation_trace=res.evaluations, seconds=seconds / seeds,
                    seconds_per_step=per_step,
                    compile_seconds=max(0.0, float(res.step_seconds[0]) - per_step),
                    status=res.status, selected=res.selected,
                    selected_surrogate=res.selected_surrogate,
                    selected_step=res.selected_step, candidates=res.candidates,
                    theta=res.theta,
                    equilibrium=equilibrium(game, objective, res.theta, res.final, tau),
                )
            )  # fmt: skip
    config = {
        "steps": steps, "seeds": seeds, "tau": tau, "eta": eta, "iters": iters,
        "val_iters": val_iters, "val_tol": val_tol, "learning_rate": learning_rate,
        "zo_learning_rate": zo_learning_rate if zo_learning_rate is not None else learning_rate,
        "width": width, "draws": draws if setting == "A3" else None, "warm_start": warm_start,
        "select": select, "keep": keep, "u": u, "sigma": sigma, "num_values": num_values, "num_bids": num_bids,
        "precision": precision or jnp.dtype(jnp.result_type(float)).name,
    }  # fmt: skip
    return RevenueStudy(setting, meta, config, first_price, initial, runs,
                        time.perf_counter() - t_start)  # fmt: skip
