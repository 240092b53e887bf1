"""The design loop: optimise the mechanism/incentive ``theta`` through the OMD equilibrium.

Every step evaluates the T-step surrogate ``G_T(theta_k)`` (SPEC section 3) from the warm-start
logits ``zeta^(k)`` and moves ``theta`` with an optax optimiser (Adam by default)::

    loss_k            = -G_T(theta_k; zeta^(k))   if maximize  else  G_T(theta_k; zeta^(k))
    updates, state    = optimizer.update(d loss_k / d theta, state, theta_k)
    theta_{k+1}       = theta_k + updates
    zeta^(k+1)        = zeta_T(theta_k)           (warm start; zeros when warm_start=False)

``method`` is an exact gradient mode of :mod:`solvers.gradients` (``amid`` default, ``unrolled``,
``implicit``, ``reference``) or a zeroth-order baseline of :mod:`solvers.zeroth_order`
(``zeroth-sgd`` with ``optax.sgd``, ``zeroth-adam`` with ``optax.adam``, ``anneal``). One step is
one jitted call; the Python loop over steps drives the progress bar and the checkpoints and
never recompiles. The result records, per step, ``G_T(theta_k)``, the exploitability of
``softmax zeta_T(theta_k)`` and the cumulative number of objective evaluations (an exact
gradient counts as one evaluation; see :func:`solvers.zeroth_order.evaluations_per_step`), and
evaluates the initial and final ``theta`` with ``val_iters`` OMD steps from the uniform policy.

Checkpoints (``checkpoint_dir``) hold ``theta``, the optimiser state, the warm-start logits, the
RNG key, the step counter and the trace, written atomically (``.npz`` + ``os.replace``) every
``checkpoint_every`` steps and at the end; a call with the same ``checkpoint_dir`` resumes from
the last checkpoint and ends with the same ``theta`` as an uninterrupted run.

Example::

    from functools import partial
    import jax.numpy as jnp
    from mfid import BeachBar, congestion
    from solvers.design import design
    game = BeachBar.create(num_states=20, horizon=10)
    res = design(game, partial(congestion, beta=50.0), jnp.zeros(20), steps=50, tau=0.1,
                 eta=0.3, iters=300, maximize=False)
    print(res.initial_value, "->", res.final_value, res.final_exploitability)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mfid.checks import check_theta
from mfid.game import MeanFieldGame
from mfid.tree import cast_floating
from mfid.cli.progress import Progress
from solvers.gradients import (
    GRADIENT_MODES,
    GRADIENT_STATUS,
    NONFINITE,
    OK,
    _diagnostics,
    _outcome,
    _scan_steps,
    _value_and_grad,
    check_gradient_args,
)
from solvers.omd import solve_omd
from solvers.zeroth_order import (
    ZEROTH_ORDER_METHODS,
    anneal_step,
    evaluations_per_step,
    two_point_gradient,
)

__all__ = ["DESIGN_METHODS", "DesignResult", "design", "evaluate_design"]

DESIGN_METHODS = GRADIENT_MODES + ZEROTH_ORDER_METHODS
_CHECKPOINT = "design_checkpoint.npz"


@dataclasses.dataclass(frozen=True)
class DesignResult:
    """Outcome of :func:`design`.

    ``theta``: final parameters. Per-step traces (length ``steps``): ``objective`` =
    ``G_T(theta_k)`` (the designer's objective, not the loss), ``exploitability`` of
    ``softmax zeta_T(theta_k)``, ``grad_norm`` (norm of the step's gradient or estimate; 0 for
    ANNEAL), ``evaluations`` (cumulative objective evaluations). ``initial_*``/``final_*``:
    objective and exploitability at ``theta0`` / ``theta`` after ``val_iters`` OMD steps from the
    uniform policy. ``status``: ``"ok"`` or ``"nonfinite"`` (the loop stopped at a non-finite
    value). ``resumed_from``: the step a checkpoint restored (0 for a fresh run).
    ``selected``: ``"best"`` when ``theta`` is the best evaluated iterate (``keep_best``),
    ``"last"`` otherwise; ``best_value``: the best ``G_T`` seen during the run.
    """

    theta: Any
    objective: np.ndarray
    exploitability: np.ndarray
    grad_norm: np.ndarray
    evaluations: np.ndarray
    initial_value: float
    initial_exploitability: float
    final_value: float
    final_exploitability: float
    seconds: float
    method: str
    maximize: bool
    status: str
    resumed_from: int
    steps: int
    selected: str = "last"
    best_value: float = float("nan")

    @property
    def total_evaluations(self) -> int:
        return int(self.evaluations[-1]) if len(self.evaluations) else 0


@dataclasses.dataclass(frozen=True)
class _Config:
    """Static settings of one design step (hashable: a static argument of the jitted step)."""

    method: str
    iters: int
    segment: int | None
    maximize: bool
    warm_start: bool
    num_directions: int
    linear_tol: float
    linear_maxiter: int
    precision: str


def _tree_norm(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.sqrt(sum(jnp.vdot(x, x) for x in leaves)) if leaves else jnp.zeros(())


def _loss_value(game, objective, theta, zeta0, tau, eta, cfg: _Config):
    """``(G_T(theta), zeta_T)`` (used without derivatives by the zeroth-order methods)."""
    zT = _scan_steps(zeta0, game, theta, tau, eta, cfg.iters)
    return _outcome(game, objective, theta, zT), zT


@partial(jax.jit, static_argnames=("objective", "optimizer", "cfg"))
def _design_step(game, state, tau, eta, hyper, *, objective, optimizer, cfg: _Config):
    """One design step; ``state = (theta, opt_state, zeta, key, best_theta, best_value)``.
    Returns the new state and ``(objective, exploitability, grad_norm, status)`` at
    ``theta_k``; ``best_theta`` is the evaluated ``theta`` with the best ``G_T`` so far.
    ``game``, ``zeta``, ``tau``, ``eta`` and ``hyper`` are in the compute precision; ``theta``,
    the optimiser state and ``best_value`` stay in their own (master) precision: ``theta`` is
    cast down for every evaluation and the gradient cast back up before the update."""
    theta, opt_state, zeta, key, best_theta, best_value = state
    sign = -1.0 if cfg.maximize else 1.0
    key, sub = jax.random.split(key)
    fixed_point_tol, u, sigma = hyper
    low = partial(cast_floating, dtype=zeta.dtype)
    if cfg.method in GRADIENT_MODES:
        value, grad, aux = _value_and_grad(
            game,
            low(theta),
            zeta,
            tau,
            eta,
            fixed_point_tol,
            objective=objective,
            iters=cfg.iters,
            mode=cfg.method,
            segment=cfg.segment,
            linear_tol=cfg.linear_tol,
            linear_maxiter=cfg.linear_maxiter,
        )
        zT, expl, status = aux.logits, aux.exploitability, aux.status
        grad = jax.tree_util.tree_map(lambda g, t: sign * g.astype(t.dtype), grad, theta)
        updates, opt_state = optimizer.update(grad, opt_state, theta)
        new_theta = optax.apply_updates(theta, updates)
        gnorm = _tree_norm(grad)
    else:
        value, zT = _loss_value(game, objective, low(theta), zeta, tau, eta, cfg)

        def loss(th):
            out = _loss_value(game, objective, low(th), zeta, tau, eta, cfg)[0]
            return sign * out.astype(best_value.dtype)

        if cfg.method == "anneal":
            new_theta, _ = anneal_step(
                loss, theta, sign * value.astype(best_value.dtype), sub, sigma
            )
            gnorm = jnp.zeros((), value.dtype)
        else:
            grad = two_point_gradient(loss, theta, sub, u, cfg.num_directions)
            updates, opt_state = optimizer.update(grad, opt_state, theta)
            new_theta = optax.apply_updates(theta, updates)
            gnorm = _tree_norm(grad)
        expl, _ = _diagnostics(game, low(theta), zT, tau, eta)
        status = jnp.asarray(OK)
    value = value.astype(best_value.dtype)
    finite = jnp.isfinite(value) & jnp.all(
        jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(new_theta)])
    )
    status = jnp.where(finite, status, NONFINITE)
    new_zeta = zT if cfg.warm_start else jnp.zeros_like(zeta)
    better = sign * value < sign * best_value  # False for a NaN value
    best_theta = jax.tree_util.tree_map(lambda b, t: jnp.where(better, t, b), best_theta, theta)
    best_value = jnp.where(better, value, best_value)
    new_state = (new_theta, opt_state, new_zeta, key, best_theta, best_value)
    return new_state, (value, expl, gnorm, status)


@functools.lru_cache(maxsize=16)
def _default_optimizer(method: str, learning_rate: float):
    if method == "zeroth-sgd":
        return optax.sgd(learning_rate)
    return optax.adam(learning_rate)


def _compute_dtype(game: MeanFieldGame, precision):
    """The dtype of the design steps: the game's, or ``precision`` (checked)."""
    if precision is None:
        return jnp.dtype(game.dtype)
    if precision not in ("float32", "float64"):
        raise ValueError(f"precision must be 'float32', 'float64' or None, got {precision!r}")
    if precision == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("precision='float64' needs jax_enable_x64 (run without --x32)")
    return jnp.dtype(precision)


def evaluate_design(game: MeanFieldGame, objective: Callable, theta, *, tau, eta, iters: int):
    """Objective and exploitability at ``theta`` after ``iters`` OMD steps from the uniform
    policy: ``(value, exploitability, OMDResult)``."""
    res = solve_omd(game, theta, tau=tau, eta=eta, iters=iters)
    return float(objective(theta, res.flow)), float(res.exploitability), res


def _as_raw_key(key):
    if isinstance(key, (int, np.integer)):
        return jax.random.PRNGKey(int(key))
    key = jnp.asarray(key) if not hasattr(key, "dtype") else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    if key.dtype != jnp.uint32 or key.shape != (2,):
        raise ValueError(f"key must be an int seed or a PRNG key, got {key!r}")
    return key


def _fingerprint(cfg: _Config, tau, eta, fixed_point_tol, u, sigma, learning_rate, state) -> str:
    leaves = jax.tree_util.tree_leaves(state)
    shapes = [list(np.shape(x)) for x in leaves]
    return json.dumps(
        {
            **dataclasses.asdict(cfg),
            "tau": float(tau),
            "eta": float(eta),
            "fixed_point_tol": float(fixed_point_tol),
            "u": float(u),
            "sigma": float(sigma),
            "learning_rate": None if learning_rate is None else float(learning_rate),
            "state_shapes": shapes,
        },
        sort_keys=True,
    )


def _save_checkpoint(path: str, state, step: int, trace: dict, fingerprint: str) -> None:
    leaves = jax.tree_util.tree_leaves(state)
    arrays = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(leaves)}
    arrays.update({f"trace_{k}": np.asarray(v) for k, v in trace.items()})
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, step=np.asarray(step), fingerprint=np.asarray(fingerprint), **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _load_checkpoint(path: str, state, fingerprint: str):
    with np.load(path) as data:
        if str(data["fingerprint"]) != fingerprint:
            raise ValueError(
                f"checkpoint_dir holds a run with different settings ({path}); "
                "use a new checkpoint_dir or the same settings"
            )
        leaves, treedef = jax.tree_util.tree_flatten(state)
        new = [
            jnp.asarray(data[f"leaf_{i}"], dtype=jnp.asarray(x).dtype) for i, x in enumerate(leaves)
        ]
        trace = {k[6:]: list(data[k]) for k in data.files if k.startswith("trace_")}
        return jax.tree_util.tree_unflatten(treedef, new), int(data["step"]), trace


def design(
    game: MeanFieldGame,
    objective: Callable,
    theta0,
    *,
    maximize: bool,
    method: str = "amid",
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 0.05,
    steps: int = 100,
    tau: float = 1e-3,
    eta: float = 10.0,
    iters: int = 400,
    val_iters: int = 500,
    warm_start: bool = True,
    segment: int | None = None,
    key=0,
    u: float = 0.05,
    num_directions: int = 1,
    sigma: float = 0.1,
    fixed_point_tol: float = 1e-9,
    linear_tol: float = 1e-11,
    linear_maxiter: int = 40,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 10,
    progress: bool | None = None,
    callback: Callable[[int, dict], None] | None = None,
    keep_best: bool = False,
    precision: str | None = None,
) -> DesignResult:
    """Optimise ``theta`` for ``steps`` steps (see the module docstring for the update).

    ``objective(theta, L) -> scalar`` is the designer objective on the flow ``L (H, S, A)``;
    ``maximize`` says whether it is maximised or minimised. ``optimizer`` is any optax
    transformation (default ``optax.adam(learning_rate)``; ``optax.sgd`` for ``zeroth-sgd``).
    ``tau``, ``eta``, ``iters`` set the T-step surrogate, ``val_iters`` the evaluation of the
    initial and final ``theta``. Zeroth-order settings: smoothing radius ``u`` and
    ``num_directions`` (``zeroth-*``), radius ``sigma`` (``anneal``). ``progress``: show the
    progress bar (``None``: only on a terminal). ``key``: int seed or PRNG
    key. ``callback(step, metrics)`` is called after every step (``metrics``: objective,
    exploitability, grad_norm, evaluations). The ``implicit`` method raises ``ValueError`` at
    the first step where OMD has not converged to ``fixed_point_tol``. ``keep_best=True``
    returns (and evaluates) the ``theta_k`` with the best ``G_T(theta_k)`` seen during the run
    instead of the last iterate, as ANNEAL does by construction; the choice survives
    checkpoint/resume. ``precision`` (``"float32"`` or ``"float64"``; default: the game's dtype)
    is the precision of the OMD iterations and gradients inside the design steps (mixed
    precision: ``theta`` and the optimiser state stay in the default float dtype, and the initial
    and final evaluations always run in the game's own dtype).
    """
    if method not in DESIGN_METHODS:
        raise ValueError(f"method must be one of {DESIGN_METHODS}, got {method!r}")
    if not isinstance(maximize, bool):
        raise ValueError(f"maximize must be True or False, got {maximize!r}")  # noqa: TRY004
    if not isinstance(keep_best, bool):
        raise ValueError(f"keep_best must be True or False, got {keep_best!r}")
    for name, val in (
        ("steps", steps),
        ("val_iters", val_iters),
        ("checkpoint_every", checkpoint_every),
    ):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val <= 0:
            raise ValueError(f"{name} must be a positive integer, got {val!r}")
    if not isinstance(num_directions, int) or num_directions <= 0:
        raise ValueError(f"num_directions must be a positive integer, got {num_directions!r}")
    for name, val in (
        ("learning_rate", learning_rate),
        ("u", u),
        ("sigma", sigma),
        ("linear_tol", linear_tol),
    ):
        if not (np.isfinite(float(val)) and float(val) > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {val!r}")
    if not float(fixed_point_tol) >= 0:
        raise ValueError(f"fixed_point_tol must be >= 0, got {fixed_point_tol!r}")
    check_gradient_args(tau, eta, iters, "amid", segment)
    if theta0 is None or not jax.tree_util.tree_leaves(theta0):
        raise ValueError("theta0 must be a non-empty pytree of arrays")
    check_theta(theta0, "theta0")
    game.validate(theta0)
    cdtype = _compute_dtype(game, precision)

    dtype = jnp.result_type(float)
    theta = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), theta0)
    opt = optimizer if optimizer is not None else _default_optimizer(method, float(learning_rate))
    cfg = _Config(
        method,
        int(iters),
        segment,
        maximize,
        bool(warm_start),
        int(num_directions),
        float(linear_tol),
        int(linear_maxiter),
        cdtype.name,
    )
    shape = (game.horizon, game.num_states, game.num_actions)
    worst = jnp.asarray(-jnp.inf if maximize else jnp.inf, dtype)
    state = (theta, opt.init(theta), jnp.zeros(shape, cdtype), _as_raw_key(key), theta, worst)
    step_game = game if cdtype == game.dtype else cast_floating(game, cdtype)
    tau_, eta_ = jnp.asarray(tau, cdtype), jnp.asarray(eta, cdtype)
    hyper = tuple(jnp.asarray(x, cdtype) for x in (fixed_point_tol, u, sigma))
    evals_step = 1 if method in GRADIENT_MODES else evaluations_per_step(method, num_directions)

    trace: dict[str, list] = {
        "objective": [],
        "exploitability": [],
        "grad_norm": [],
        "evaluations": [],
    }
    start, ckpt = 0, None
    if checkpoint_dir is not None:
        os.makedirs(checkpoint_dir, exist_ok=True)
        ckpt = os.path.join(os.fspath(checkpoint_dir), _CHECKPOINT)
        lr = None if optimizer is not None else learning_rate
        fp = _fingerprint(cfg, tau, eta, fixed_point_tol, u, sigma, lr, state)
        if os.path.exists(ckpt):
            state, start, loaded = _load_checkpoint(ckpt, state, fp)
            trace.update({k: list(v) for k, v in loaded.items()})
            if start > steps:
                raise ValueError(
                    f"checkpoint_dir holds {start} finished steps, more than steps={steps}"
                )

    t0 = time.perf_counter()
    init_value, init_expl, _ = evaluate_design(
        game, objective, theta, tau=tau, eta=eta, iters=val_iters
    )
    status = "ok"
    step_fn = partial(_design_step, objective=objective, optimizer=opt, cfg=cfg)
    with Progress(
        steps, f"design[{method}]", disable=None if progress is None else not progress
    ) as bar:
        bar.update(start)
        for k in range(start, steps):
            new_state, (value, expl, gnorm, st) = step_fn(step_game, state, tau_, eta_, hyper)
            st = int(st)
            if st == NONFINITE:
                status = "nonfinite"
                break
            if st != OK:
                raise ValueError(
                    f"step {k}: {method} gradient refused ({GRADIENT_STATUS[st]}); OMD with "
                    f"iters={iters}, tau={tau}, eta={eta} does not reach fixed_point_tol="
                    f"{fixed_point_tol:g}: increase iters or use method='amid'"
                )
            state = new_state
            prev = trace["evaluations"][-1] if trace["evaluations"] else 0
            metrics = {
                "objective": float(value),
                "exploitability": float(expl),
                "grad_norm": float(gnorm),
                "evaluations": int(prev) + evals_step,
            }
            for name, v in metrics.items():
                trace[name].append(v)
            bar.update(obj=metrics["objective"], expl=metrics["exploitability"])
            if ckpt is not None and ((k + 1) % checkpoint_every == 0 or k + 1 == steps):
                _save_checkpoint(ckpt, state, k + 1, trace, fp)
            if callback is not None:
                callback(k, metrics)
    theta = state[4] if keep_best and np.isfinite(float(state[5])) else state[0]
    final_value, final_expl, _ = evaluate_design(
        game, objective, theta, tau=tau, eta=eta, iters=val_iters
    )
    return DesignResult(
        theta=theta,
        objective=np.asarray(trace["objective"], dtype=float),
        exploitability=np.asarray(trace["exploitability"], dtype=float),
        grad_norm=np.asarray(trace["grad_norm"], dtype=float),
        evaluations=np.asarray(trace["evaluations"], dtype=np.int64),
        initial_value=init_value,
        initial_exploitability=init_expl,
        final_value=final_value,
        final_exploitability=final_expl,
        seconds=time.perf_counter() - t0,
        method=method,
        maximize=maximize,
        status=status,
        resumed_from=start,
        steps=len(trace["objective"]),
        selected="best" if theta is state[4] else "last",
        best_value=float(state[5]),
    )
