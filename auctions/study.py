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

With ``checkpoint_dir``, every method checkpoints its design run (all seeds) every
``checkpoint_every`` steps under ``checkpoint_dir/<method>/`` and, once evaluated, keeps its
finished runs there (``runs.npz``); a rerun with the same settings resumes the unfinished method
where it stopped and does not redo a finished one, ending bitwise equal to an uninterrupted run.
Each file carries a fingerprint of the full resolved configuration (setting, grid, every
hyperparameter, method, seeds, the game's arrays, the initial parameters and the keys); a file of
other settings, or one that cannot be read, is refused with a ``ValueError`` naming it.

This is the one module of ``auctions`` that imports ``solvers``.

Example::

    from auctions.study import run_revenue_design
    study = run_revenue_design("A1", methods=("amid",), steps=4, seeds=1, width=8,
                               num_values=10, num_bids=10, iters=20, val_iters=20)
    study.runs["amid"][0].equilibrium.revenue
"""

from __future__ import annotations

import dataclasses
import os
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
from solvers import Backtracking, as_estimator, design_seeds, solve_omd, warmup_cosine
from solvers.checkpoint import fingerprint, load_record, save_record
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
LEARNING_RATE = 2e-3  # peak of the warm-up/cosine schedule (auctions/README.md: A1 measurements)


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
    tau_start: float | None = None,
    tau_steps: int | None = None,
    tau_stages: int = 3,
    val_iters: int = 10000,
    val_tol: float = 1e-9,
    learning_rate: float = LEARNING_RATE,
    zo_learning_rate: float | None = None,
    width: int = 256,
    draws: int = 4,
    num_values: int = 100,
    num_bids: int = 100,
    warm_start: bool = False,
    backtrack: bool = False,
    select: str = "converged",
    keep: int = 3,
    u: float = 0.05,
    sigma: float = 0.1,
    precision: str | None = "float32",
    batching: str | None = None,
    callback: Callable[[str, int, dict], None] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 10,
) -> RevenueStudy:
    """Run the comparison (see the module docstring) and return a :class:`RevenueStudy`.

    Every reported mechanism is solved until its exploitability is ``<= val_tol`` (at most
    ``val_iters`` OMD steps; a run that does not get there keeps status ``max_iterations`` and
    the report flags it). ``select="converged"`` (default) chooses, for every method alike,
    among the last iterate and the ``keep`` best-surrogate iterates the one with the best
    converged value. ``warm_start=False`` (default) evaluates every surrogate ``G_T`` from the
    uniform policy. ``backtrack=True`` rejects and shortens, for every method alike, a step whose
    surrogate is worse than the last accepted one (:class:`solvers.Backtracking`); ``tau_start``
    lowers the surrogate's temperature in ``tau_stages`` stages from ``tau_start`` to ``tau`` over
    the first ``tau_steps`` steps (default half of them; :func:`solvers.design_seeds`). ``u`` and ``sigma`` are the zeroth-order radii (0-SGD/0-ADAM, ANNEAL). ``precision`` is
    the compute precision of the design steps; every reported number is evaluated in the default
    float dtype. ``batching`` (``"vmap"``/``"map"``) is how each device runs its seeds
    (:func:`solvers.design_seeds`: the seeds are split over the local devices). ``callback(method, step, metrics)`` reports progress. Time per step is the
    median wall time of the steps after the first (compilation excluded; ``compile_seconds`` is
    the first step's excess). ``checkpoint_dir``/``checkpoint_every``: checkpoint and resume (see
    the module docstring); a resumed run's timings cover only the steps it ran."""
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
    checkpoint_every = check_count(checkpoint_every, "checkpoint_every")
    config = {
        "steps": steps, "seeds": seeds, "tau": tau, "eta": eta, "iters": iters,
        "tau_start": tau_start, "val_iters": val_iters, "val_tol": val_tol, "learning_rate": learning_rate,
        "zo_learning_rate": zo_learning_rate if zo_learning_rate is not None else learning_rate,
        "width": width, "draws": draws if setting == "A3" else None, "warm_start": warm_start,
        "backtrack": bool(backtrack), "select": select, "keep": keep, "u": u, "sigma": sigma, "num_values": num_values, "num_bids": num_bids,
        "precision": precision or jnp.dtype(jnp.result_type(float)).name,
        **({} if batching in (None, "vmap") else {"batching": batching}),
        **({} if tau_start is None else {"tau_steps": tau_steps, "tau_stages": tau_stages}),
    }  # fmt: skip
    t_start = time.perf_counter()
    grid = dict(width=width, draws=draws, num_values=num_values, num_bids=num_bids)
    sts = [make(setting, key=jax.random.key(1000 + s), **grid) for s in range(seeds)]
    game = sts[0].game
    objective = make_objective(sts[0].objective, sts[0].mix_weight)
    meta = dict(sts[0].metadata)
    thetas0 = jax.tree.map(lambda *xs: jnp.stack(xs), *[s.theta0 for s in sts])
    keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in range(seeds)])
    theta0 = jax.tree.map(lambda x: x[0], thetas0)
    plans, finished = {}, {}
    for m in methods:  # settings, identity and (before any work) the finished runs kept on disk
        est = as_estimator(m, u=u, sigma=sigma)
        n = max(1, steps // est.evaluations_per_step)
        identity = {"setting": setting, "method": m, "estimator": repr(est), "design_steps": n,
                    "meta": repr(sorted(meta.items())), **config}  # fmt: skip
        ckpt = record = fprint = None
        if checkpoint_dir is not None:
            ckpt = os.path.join(os.fspath(checkpoint_dir), m)
            record = os.path.join(ckpt, _RUNS)
            fprint = fingerprint(identity, game, thetas0, keys)
            if os.path.exists(record):
                finished[m] = _load_runs(record, fprint, theta0)
        plans[m] = (est, n, identity, ckpt, record, fprint)
    fp_game = first_price_game(game)
    fp = solve_omd(fp_game, {}, tau=tau, eta=eta, iters=val_iters, tol=val_tol)
    first_price = equilibrium(fp_game, objective, {}, fp, tau)
    runs: dict[str, list[Run]] = {}
    initial = None
    for m in methods:
        est, n, identity, ckpt, record, fprint = plans[m]
        if m in finished:
            runs[m], init_m = finished[m]
            initial = initial if initial is not None else init_m
            if callback is not None:
                callback(m, n - 1, {"objective": [r.objective_trace[-1] for r in runs[m]]})
            continue
        lr = learning_rate if (m == "amid" or zo_learning_rate is None) else zo_learning_rate
        optimizer = warmup_cosine(lr, n, sgd=m == "zeroth-sgd") if est.uses_optimizer else None
        t = time.perf_counter()
        results = design_seeds(
            game, objective, thetas0, keys, maximize=True, estimator=est, optimizer=optimizer,
            steps=n, tau=tau, eta=eta, iters=iters, tau_start=tau_start, tau_steps=tau_steps,
            tau_stages=tau_stages, val_iters=val_iters, val_tol=val_tol,
            warm_start=warm_start, backtrack=Backtracking() if backtrack else None,
            select=select, keep=keep, precision=precision, batching=batching, throw=False,
            callback=None if callback is None else (lambda k, mt, m=m: callback(m, k, mt)),
            checkpoint_dir=ckpt, checkpoint_every=checkpoint_every, config=identity,
        )  # fmt: skip
        seconds = time.perf_counter() - t
        init_m = equilibrium(game, objective, theta0, results[0].initial, tau)
        initial = initial if initial is not None else init_m
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
        if record is not None:
            _save_runs(record, runs[m], init_m, fprint)
    return RevenueStudy(setting, meta, config, first_price, initial, runs,
                        time.perf_counter() - t_start)  # fmt: skip


_RUNS = "runs.npz"
_EQ_SCALARS = ("revenue", "objective", "exploitability", "status", "iterations", "entropy_slack")
_RUN_ARRAYS = ("objective_trace", "exploitability_trace", "evaluation_trace")
_RUN_SCALARS = ("method", "seed", "steps", "evaluations", "seconds", "seconds_per_step",
                "compile_seconds", "status", "selected", "selected_surrogate", "selected_step")  # fmt: skip


def _pack_equilibrium(eq: Equilibrium, prefix: str, arrays: dict) -> dict:
    for i, leaf in enumerate(jax.tree.leaves(eq.info)):
        arrays[f"{prefix}info_{i}"] = leaf
    arrays[f"{prefix}flow"] = eq.flow
    return {k: getattr(eq, k) for k in _EQ_SCALARS}


def _unpack_equilibrium(meta: dict, arrays: dict, prefix: str) -> Equilibrium:
    blank = AuctionRound(*[0] * len(dataclasses.fields(AuctionRound)))
    treedef = jax.tree.structure(blank)
    info = jax.tree.unflatten(treedef, [arrays[f"{prefix}info_{i}"]
                                        for i in range(treedef.num_leaves)])  # fmt: skip
    return Equilibrium(**meta, info=info, flow=arrays[f"{prefix}flow"])


def _save_runs(path: str, runs: list[Run], initial: Equilibrium, fp: str) -> None:
    """One method's finished runs (and the untrained mechanism's equilibrium) as a record."""
    arrays: dict = {}
    meta = {"initial": _pack_equilibrium(initial, "initial_", arrays), "runs": []}
    for i, r in enumerate(runs):
        p = f"run{i}_"
        for k in _RUN_ARRAYS:
            arrays[p + k] = getattr(r, k)
        for j, leaf in enumerate(jax.tree.leaves(r.theta)):
            arrays[f"{p}theta_{j}"] = leaf
        meta["runs"].append({
            **{k: getattr(r, k) for k in _RUN_SCALARS},
            "candidates": list(r.candidates),
            "equilibrium": _pack_equilibrium(r.equilibrium, p + "eq_", arrays),
        })  # fmt: skip
    save_record(path, arrays, meta, fingerprint=fp)


def _load_runs(path: str, fp: str, like_theta) -> tuple[list[Run], Equilibrium]:
    arrays, meta = load_record(path, fp)
    try:
        initial = _unpack_equilibrium(meta["initial"], arrays, "initial_")
        treedef = jax.tree.structure(like_theta)
        runs = []
        for i, rm in enumerate(meta["runs"]):
            p = f"run{i}_"
            theta = jax.tree.unflatten(treedef, [jnp.asarray(arrays[f"{p}theta_{j}"])
                                                 for j in range(treedef.num_leaves)])  # fmt: skip
            runs.append(Run(
                **{k: rm[k] for k in _RUN_SCALARS},
                **{k: arrays[p + k] for k in _RUN_ARRAYS},
                candidates=tuple(rm["candidates"]), theta=theta,
                equilibrium=_unpack_equilibrium(rm["equilibrium"], arrays, p + "eq_"),
            ))  # fmt: skip
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"checkpoint {path} cannot be read ({type(err).__name__}); delete it "
                         "or use a new checkpoint directory") from None  # fmt: skip
    return runs, initial
