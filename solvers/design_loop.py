"""The design loop: optimise the mechanism/incentive ``theta`` through the OMD equilibrium.

Every step evaluates the T-step surrogate ``G_T(theta_k)`` from the warm-start
logits ``zeta^(k)`` and moves ``theta`` with an estimator (:mod:`solvers.estimators`) and an
optax optimiser::

    loss_k            = -G_T(theta_k; zeta^(k))   if maximize  else  G_T(theta_k; zeta^(k))
    theta_{k+1}       = estimator.update(loss, theta_k, ...)   (e.g. Adam on d loss_k / d theta)
    zeta^(k+1)        = zeta_T(theta_k)           (warm start; zeros when warm_start=False)

:func:`design_step` is one pure step ``DesignState -> DesignState`` (jitted; mapped over the
seeds by :func:`design_seeds`, so the seeds of a study run as one compiled program, split over
the local devices and ``vmap``-ped or ``lax.map``-ped on each). A
step whose evaluation or update is not ``successful`` (non-finite, diverged OMD, a refused
implicit gradient, ...) leaves the state where it was and records the status: a failed run stops
moving and says why. :func:`design` and :func:`design_seeds` drive the steps from Python (one
jitted call per step, never recompiled), report every step to ``callback(step, metrics)``,
checkpoint and resume (:mod:`solvers.checkpoint`; the fingerprint covers the game's parameters,
the objective, the estimator, the optimiser settings, ``theta0`` and the key), and return the
final mechanism's equilibrium after ``val_iters`` OMD steps from the uniform policy.

Options: ``backtrack=Backtracking()`` rejects a step whose surrogate is worse than the last
accepted one and retries it shorter; ``tau_start`` anneals the surrogate's temperature in stages
down to ``tau`` (continuation). ``G_T`` is the optimisation surrogate; a design's reported value
is its equilibrium's.

Example::

    import jax, jax.numpy as jnp
    from mfid import BeachBar, Congestion
    from solvers import design
    game = BeachBar.create(num_states=20, horizon=10, crowd=0.1)
    res = design(game, Congestion(50.0), jnp.zeros(20), maximize=False, steps=20, tau=0.1,
                 eta=0.3, iters=300, learning_rate=0.05, key=jax.random.key(0))
    print(res.initial_value, "->", res.final_value, res.final_exploitability, res.status)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mfid.checks import check_count, check_positive, check_theta
from mfid.game import MeanFieldGame
from mfid.tree import all_finite, cast_floating
from solvers.checkpoint import fingerprint, load_checkpoint, save_checkpoint
from solvers.estimators import AbstractEstimator, as_estimator
from solvers.gradients import _value_and_grad_traced, _value_traced, objective_at
from solvers.omd import OMDResult, check_omd_args, solve_omd, solve_omd_batch
from solvers.results import RESULTS, raise_for_status

__all__ = [
    "Backtracking",
    "DesignProblem",
    "DesignResult",
    "DesignState",
    "Optimizer",
    "design",
    "design_seeds",
    "design_step",
    "evaluate_design",
    "warmup_cosine",
]

_CHECKPOINT = "design_checkpoint.npz"
_TRACE_KEYS = ("objective", "exploitability", "grad_norm", "fixed_point_residual", "status",
               "seconds")  # fmt: skip


class DesignState(NamedTuple):
    """Loop state of the design (a pytree; a leading seed axis under :func:`design_seeds`)."""

    theta: Any  # parameters, in the master (default float) precision
    opt_state: Any  # optax state of the optimiser (``()`` for ANNEAL)
    zeta: jnp.ndarray  # warm-start logits (H, S, A), compute precision
    key: jnp.ndarray  # raw uint32 PRNG key data, shape (2,)
    top_thetas: Any  # the `keep` evaluated thetas with the best G_T so far (leading axis keep)
    top_values: jnp.ndarray  # their G_T, shape (keep,) (-inf / +inf where still empty)
    top_steps: jnp.ndarray  # the design steps they were evaluated at, shape (keep,)
    status: jnp.ndarray  # RESULTS code; anything but successful freezes the state
    step: jnp.ndarray  # steps taken
    anchor_theta: Any  # backtracking: the last accepted iterate ...
    anchor_value: jnp.ndarray  # ... its G_T ...
    anchor_step: Any  # ... and the step it proposed (new theta minus it)
    scale: jnp.ndarray  # backtracking: the factor applied to the proposed step


@dataclasses.dataclass(frozen=True)
class Backtracking:
    """Step rejection for the design loop (the same rule for every estimator).

    An iterate whose surrogate is worse than the last accepted iterate's by more than
    ``tolerance`` (relative) is rejected: the next iterate is the accepted one plus its proposed
    step scaled by ``shrink`` once more (no new gradient is needed); an accepted iterate
    proposes a new step and the scale grows by ``grow`` (at most 1)::

        accept:  anchor <- theta_k;  s <- min(1, grow s);  theta_{k+1} = theta_k + s d_k
        reject:                      s <- shrink s;        theta_{k+1} = anchor + s d_anchor

    where ``d_k = estimator.update(theta_k) - theta_k``. The rejected evaluation still counts
    in the budget and in the trace. Example::

        from solvers import Backtracking
        Backtracking(shrink=0.5, grow=1.5)
    """

    shrink: float = 0.5
    grow: float = 1.5
    tolerance: float = 0.0

    def __post_init__(self):
        if not 0.0 < self.shrink < 1.0:
            raise ValueError(f"shrink must be in (0, 1), got {self.shrink!r}")
        if not self.grow >= 1.0:
            raise ValueError(f"grow must be >= 1, got {self.grow!r}")
        check_positive(self.tolerance, "tolerance", allow_zero=True)


@dataclasses.dataclass(frozen=True)
class DesignProblem:
    """The static part of a design step (hashable: a static argument of the compiled step)."""

    objective: Callable
    estimator: AbstractEstimator
    optimizer: Any
    iters: int
    maximize: bool
    warm_start: bool
    backtrack: Backtracking | None = None


def design_step(problem: DesignProblem, game: MeanFieldGame, tau, eta, state: DesignState):
    """One design step at ``state.theta`` (see the module docstring); returns the new state and
    the step's metrics ``objective`` (``G_T(theta_k)``), ``exploitability`` (of
    ``softmax zeta_T``), ``grad_norm``, ``fixed_point_residual`` and ``status``. ``game``,
    ``tau``, ``eta`` and ``state.zeta`` are in the compute precision; ``theta``, the optimiser
    state and ``top_values`` in their own (master) precision."""
    sign = -1.0 if problem.maximize else 1.0
    key, sub = jax.random.split(state.key)
    mdtype = state.top_values.dtype
    low = partial(cast_floating, dtype=state.zeta.dtype)
    objective, iters = problem.objective, problem.iters

    def G(t):
        return _value_traced(game, low(t), state.zeta, tau, eta, objective, iters)

    theta = state.theta
    if problem.estimator.uses_gradient:
        value, grad, aux = _value_and_grad_traced(
            game, low(theta), state.zeta, tau, eta, objective, iters, problem.estimator.adjoint
        )
        loss_grad = jax.tree_util.tree_map(lambda g, t: (sign * g).astype(t.dtype), grad, theta)
    else:
        value, aux = G(theta)
        loss_grad = None
    value = value.astype(mdtype)
    loss = lambda t: sign * G(t)[0].astype(mdtype)  # noqa: E731
    new_theta, opt_state, gnorm = problem.estimator.update(
        loss, theta, sign * value, loss_grad, sub, problem.optimizer, state.opt_state
    )
    anchor = (state.anchor_theta, state.anchor_value, state.anchor_step, state.scale)
    bt = problem.backtrack
    if bt is not None:
        tree = jax.tree_util.tree_map
        d = tree(lambda n, t: n - t, new_theta, theta)
        a_theta, a_value, a_step, scale = anchor
        slack = bt.tolerance * jnp.abs(a_value)
        accept = ~jnp.isfinite(a_value) | (sign * value <= sign * a_value + slack)
        scale = jnp.where(accept, jnp.minimum(1.0, scale * bt.grow), scale * bt.shrink)
        pick = lambda a, b: tree(lambda x, y: jnp.where(accept, x, y), a, b)  # noqa: E731
        base, step = pick(theta, a_theta), pick(d, a_step)
        new_theta = tree(lambda b, s_: (b + scale.astype(b.dtype) * s_).astype(b.dtype), base,
                         step)  # fmt: skip
        opt_state = pick(opt_state, state.opt_state)
        anchor = (base, jnp.where(accept, value, a_value), step, scale.astype(state.scale.dtype))
    status = jnp.where(all_finite(new_theta), aux.status, RESULTS.nonfinite.code)
    ok = (state.status == RESULTS.successful.code) & (status == RESULTS.successful.code)
    worst = jnp.argmax(sign * state.top_values)  # the slot to replace
    better = ok & (sign * value < sign * state.top_values[worst])
    top_thetas = jax.tree_util.tree_map(
        lambda T, t: T.at[worst].set(jnp.where(better, t, T[worst])), state.top_thetas, theta
    )
    top_values = state.top_values.at[worst].set(jnp.where(better, value, state.top_values[worst]))
    top_steps = state.top_steps.at[worst].set(
        jnp.where(better, state.step, state.top_steps[worst]).astype(state.top_steps.dtype)
    )
    moved = DesignState(
        new_theta,
        opt_state,
        aux.logits if problem.warm_start else jnp.zeros_like(state.zeta),
        key,
        top_thetas,
        top_values,
        top_steps,
        state.status,
        state.step + 1,
        *anchor,
    )
    keep = jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), moved, state)
    new = keep._replace(
        status=jnp.where(state.status == RESULTS.successful.code, status, state.status),
        step=state.step + 1,
    )
    metrics = {
        "objective": value,
        "exploitability": aux.exploitability.astype(mdtype),
        "grad_norm": gnorm.astype(mdtype),
        "fixed_point_residual": aux.fixed_point_residual.astype(mdtype),
        "status": status,
    }
    return new, metrics


def _seed_devices(num: int) -> int:
    """How many local devices share ``num`` seeds: the largest count ``<= jax.local_device_count()``
    that divides ``num`` (each device runs the same number of seeds)."""
    return max(d for d in range(1, min(num, jax.local_device_count()) + 1) if num % d == 0)


@partial(jax.jit, static_argnums=(0, 5, 6))
def _step_seeds(problem, game, tau, eta, state, devices: int, batching: str):
    """:func:`design_step` over the leading seed axis of ``state``: the seeds are split evenly
    over ``devices`` local devices (``jax.shard_map``; on a CPU, host devices from
    ``--xla_force_host_platform_device_count``, one per core), and each device runs its seeds
    with ``batching``: ``"vmap"`` (one vectorised program, for accelerators) or ``"map"``
    (``lax.map``, the seeds one after another: on a CPU the vectorised program's per-seed
    matrix products are slower than plain ones, ``mfid bench design``). A device with one seed
    runs the plain, unbatched step."""

    def local(game, tau, eta, state):
        step = partial(design_step, problem, game, tau, eta)
        if jax.tree_util.tree_leaves(state)[0].shape[0] == 1:  # one seed: the plain program
            tree = jax.tree_util.tree_map
            return tree(lambda x: jnp.asarray(x)[None], step(tree(lambda x: x[0], state)))
        return jax.vmap(step)(state) if batching == "vmap" else jax.lax.map(step, state)

    if devices == 1:
        return local(game, tau, eta, state)
    mesh = jax.sharding.Mesh(np.asarray(jax.local_devices()[:devices]), ("seeds",))
    P = jax.sharding.PartitionSpec
    run = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P(), P("seeds")),
                        out_specs=P("seeds"), check_vma=False)  # fmt: skip
    return run(game, tau, eta, state)


@dataclasses.dataclass(frozen=True)
class DesignResult:
    """Outcome of :func:`design` (one seed).

    ``theta``: the returned parameters (chosen by ``select`` among the last iterate and the
    ``keep`` best evaluated iterates). Per-step traces (length ``steps``): ``objective`` = ``G_T(theta_k)`` (the
    surrogate, not the loss), ``exploitability`` of ``softmax zeta_T(theta_k)``, ``grad_norm``,
    ``fixed_point_residual``, ``step_status`` (RESULTS codes), ``step_seconds`` (wall time of
    each step; the first includes compilation), ``evaluations`` (cumulative objective
    evaluations). ``initial``/``final``: the :class:`~solvers.omd.OMDResult` equilibria of
    ``theta0`` / ``theta`` (``val_iters`` OMD steps from the uniform policy), with their objective
    values ``initial_value``/``final_value``. ``status``: a RESULTS name (``successful`` or why
    the run stopped moving), ``message`` its text. ``resumed_from``: the step a checkpoint
    restored. ``selected``: which candidate was returned (``"last"`` or ``"top-i"``, the
    ``i``-th best surrogate); ``selected_surrogate``, ``selected_step``: its ``G_T`` and the
    step it was evaluated at; ``best_value``: the best
    ``G_T`` seen. ``candidates``: every candidate with its surrogate ``G_T`` and, for
    ``select="converged"``, its converged ``value``, ``exploitability`` and ``status``.
    """

    theta: Any
    objective: np.ndarray
    exploitability: np.ndarray
    grad_norm: np.ndarray
    fixed_point_residual: np.ndarray
    step_status: np.ndarray
    step_seconds: np.ndarray
    evaluations: np.ndarray
    initial: OMDResult
    final: OMDResult
    initial_value: float
    final_value: float
    seconds: float
    method: str
    maximize: bool
    status: str
    message: str
    resumed_from: int
    steps: int
    selected: str
    best_value: float
    selected_surrogate: float = float("nan")
    selected_step: int = -1
    candidates: tuple = ()

    @property
    def initial_exploitability(self) -> float:
        """Exploitability of the equilibrium of ``theta0`` (``initial``)."""
        return float(self.initial.exploitability)

    @property
    def final_exploitability(self) -> float:
        """Exploitability of the equilibrium of the returned ``theta`` (``final``)."""
        return float(self.final.exploitability)

    @property
    def total_evaluations(self) -> int:
        """Objective evaluations of the whole run (the last entry of ``evaluations``)."""
        return int(self.evaluations[-1]) if len(self.evaluations) else 0

    @property
    def ok(self) -> bool:
        """``True`` when ``status`` is ``successful``."""
        return self.status == RESULTS.successful.name


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """An optax optimiser described by value (hashable, so a design step built from an equal
    description is the same compiled program): ``kind`` ``"adam"`` or ``"sgd"`` with a constant
    ``learning_rate``, or with ``schedule_steps`` a warm-up/cosine schedule peaking at it. Any
    ``optax.GradientTransformation`` may be passed to the design loop instead."""

    kind: str = "adam"
    learning_rate: float = 0.05
    schedule_steps: int | None = None

    def __post_init__(self):
        if self.kind not in ("adam", "sgd"):
            raise ValueError(f"optimizer kind must be 'adam' or 'sgd', got {self.kind!r}")
        check_positive(self.learning_rate, "learning_rate")
        if self.schedule_steps is not None:
            check_count(self.schedule_steps, "schedule_steps")

    def build(self) -> optax.GradientTransformation:
        """The ``optax.GradientTransformation`` this description stands for."""
        lr = self.learning_rate
        if self.schedule_steps is not None:
            n = self.schedule_steps
            lr = optax.warmup_cosine_decay_schedule(
                init_value=lr / 10, peak_value=lr, warmup_steps=max(1, n // 8),
                decay_steps=max(2, n), end_value=lr / 10,
            )  # fmt: skip
        return optax.adam(lr) if self.kind == "adam" else optax.sgd(lr)

    def init(self, params):
        """``optax`` state for ``params`` (as ``self.build().init``)."""
        return self.build().init(params)

    def update(self, updates, state, params=None):
        """``(updates, new_state)``, as ``self.build().update``."""
        return self.build().update(updates, state, params)


def warmup_cosine(peak: float, steps: int, *, sgd: bool = False) -> Optimizer:
    """Adam (``sgd=True``: SGD) with a warm-up/cosine schedule: ``peak / 10`` -> ``peak`` over
    the first eighth of the steps, cosine decay back to ``peak / 10`` at the end."""
    return Optimizer("sgd" if sgd else "adam", peak, steps)


def evaluate_design(game: MeanFieldGame, objective: Callable, theta, *, tau, eta, iters: int,
                    tol: float | None = None):  # fmt: skip
    """Objective and exploitability at ``theta``'s equilibrium (``iters`` OMD steps from the
    uniform policy, or until ``|exploitability| <= tol``): ``(value, exploitability, OMDResult)``."""
    res = solve_omd(game, theta, tau=tau, eta=eta, iters=iters, tol=tol)
    value = _objective_on(game, objective, theta, res.logits)
    return float(value), float(res.exploitability), res


@partial(jax.jit, static_argnums=(1,))
def _objective_jit(game, objective, theta, logits):
    return objective_at(game, objective, theta, logits)[0]


def _objective_on(game, objective, theta, logits):
    return _objective_jit(game, objective, theta, logits)


def _compute_dtype(game: MeanFieldGame, precision):
    if precision is None:
        return jnp.dtype(game.dtype)
    if precision not in ("float32", "float64"):
        raise ValueError(f"precision must be 'float32', 'float64' or None, got {precision!r}")
    if precision == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("precision='float64' needs jax_enable_x64 (run without --x32)")
    return jnp.dtype(precision)


def _raw_key(key):
    if key is None:
        raise ValueError("key must be a PRNG key or an int seed (it is required)")
    if isinstance(key, (bool, np.bool_)):
        raise ValueError(f"key must be a PRNG key or an int seed, got {key!r}")
    if isinstance(key, (int, np.integer)):
        return jax.random.key_data(jax.random.key(int(key)))
    if not hasattr(key, "dtype"):
        raise ValueError(f"key must be a PRNG key or an int seed, got {key!r}")
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    key = jnp.asarray(key)
    if key.dtype != jnp.uint32 or key.shape[-1:] != (2,):
        raise ValueError(f"key must be a PRNG key or an int seed, got {key!r}")
    return key


SELECT = ("last", "surrogate", "converged")


def _check_args(steps, val_iters, checkpoint_every, maximize, select, tau, eta, iters):
    if not isinstance(maximize, bool):
        raise ValueError(f"maximize must be True or False, got {maximize!r}")
    if select not in SELECT:
        raise ValueError(f"select must be one of {SELECT}, got {select!r}")
    check_count(steps, "steps")
    check_count(val_iters, "val_iters")
    check_count(checkpoint_every, "checkpoint_every")
    return check_omd_args(tau, eta, iters)


def design(game: MeanFieldGame, objective: Callable, theta0, *, key, maximize: bool,
           estimator: AbstractEstimator | str = "amid", **kwargs) -> DesignResult:  # fmt: skip
    """Optimise ``theta`` for ``steps`` steps from ``theta0`` (see the module docstring).

    ``objective(game, theta, L, info) -> scalar`` (hashable); ``maximize`` says whether it is
    maximised or minimised. ``estimator``: an estimator object (:class:`~solvers.Exact`,
    :class:`~solvers.TwoPoint`, :class:`~solvers.Anneal`) or a CLI name (``amid``, ``unrolled``,
    ``implicit``, ``reference``, ``zeroth-sgd``, ``zeroth-adam``, ``anneal``). ``key``: a PRNG
    key or int seed (required). Other keyword arguments: see :func:`design_seeds`.
    """
    check_theta(theta0, "theta0", floating=True)
    batch = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], theta0)
    keys = _raw_key(key)[None]
    return design_seeds(game, objective, batch, keys, maximize=maximize, estimator=estimator,
                        **kwargs)[0]  # fmt: skip


def design_seeds(
    game: MeanFieldGame,
    objective: Callable,
    thetas0,
    keys,
    *,
    maximize: bool,
    estimator: AbstractEstimator | str = "amid",
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 0.05,
    steps: int = 100,
    tau: float = 1e-3,
    eta: float = 10.0,
    iters: int = 400,
    tau_start: float | None = None,
    tau_steps: int | None = None,
    tau_stages: int = 3,
    val_iters: int = 500,
    warm_start: bool = True,
    backtrack: Backtracking | None = None,
    select: str = "last",
    keep: int = 3,
    val_tol: float | None = None,
    precision: str | None = None,
    batching: str | None = None,
    devices: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 10,
    callback: Callable[[int, dict], None] | None = None,
    throw: bool = True,
    config: dict | None = None,
) -> list[DesignResult]:
    """Design from every ``theta0`` of the stacked ``thetas0`` (leading seed axis) with the
    matching PRNG key of ``keys`` (stacked raw keys or typed keys) as one batched program.

    ``optimizer``: any optax transformation (default ``optax.adam(learning_rate)``; unused by
    ANNEAL). ``tau``, ``eta``, ``iters`` set the T-step surrogate; with ``tau_start`` the
    surrogate's temperature is annealed in stages (continuation in the entropy regularisation):
    step ``k`` uses ``tau_k = tau_start^(1 - f) tau^f`` with ``f = min(1, floor(k tau_stages /
    tau_steps) / tau_stages)`` (default ``tau_steps = steps // 2``), so the first ``tau_steps``
    steps run ``tau_stages`` temperatures from ``tau_start`` down and the rest run ``tau``; a new
    temperature is a new surrogate, so backtracking starts afresh with it. Every evaluation
    uses ``tau``. ``val_iters`` the evaluation
    of the initial and final ``theta`` (with ``val_tol``: OMD until ``|exploitability| <=
    val_tol``, at most ``val_iters`` steps; the status says whether it got there). ``select``:
    which parameters are returned, the same rule for every estimator: ``"last"`` iterate,
    the best ``"surrogate"`` ``G_T(theta_k)`` seen, or ``"converged"``: the last iterate and the
    ``keep`` best-surrogate iterates are each solved to ``val_tol`` and the best converged value
    wins (an optimiser that exploits OMD's transient shows up as a gap between the two). ``precision`` (``"float32"``/``"float64"``; default the game's dtype)
    is the precision of the design steps (mixed precision: ``theta``, the optimiser state and
    every evaluation stay in the game's dtype). The seeds are split evenly over ``devices`` local
    devices (default: as many as divide their number); ``batching`` is how each device runs its share: ``"vmap"``
    (vectorised) or ``"map"`` (one after another), by default ``"vmap"``. ``checkpoint_dir``: checkpoint every
    ``checkpoint_every`` steps and resume from it. ``callback(step, metrics)`` gets, after every
    step, per-seed lists of ``objective``, ``exploitability``, ``grad_norm``, ``status``,
    ``evaluations``. ``throw=True`` raises ``ValueError`` when a seed ends with a status other
    than ``successful``; ``throw=False`` reports it in ``DesignResult.status``. ``config``: extra
    settings that identify the run in the checkpoint fingerprint (e.g. a schedule's settings
    when a custom ``optimizer`` is given).
    """
    iters = _check_args(steps, val_iters, checkpoint_every, maximize, select, tau, eta, iters)
    if tau_start is not None:
        check_positive(tau_start, "tau_start")
        tau_steps = check_count(tau_steps if tau_steps is not None else max(1, steps // 2),
                                "tau_steps")  # fmt: skip
        tau_stages = check_count(tau_stages, "tau_stages")
    keep = check_count(keep, "keep")
    if val_tol is not None:
        check_positive(val_tol, "val_tol", allow_zero=True)
    if select == "converged" and val_tol is None:
        raise ValueError("select='converged' needs val_tol (the exploitability tolerance)")
    estimator = as_estimator(estimator)
    check_positive(learning_rate, "learning_rate")
    leaves = jax.tree_util.tree_leaves(thetas0)
    if not leaves:
        raise ValueError("theta0 must be a non-empty pytree of arrays")
    check_theta(thetas0, "theta0", floating=True)
    keys = _raw_key(keys)
    num = int(np.shape(leaves[0])[0])
    if keys.shape != (num, 2):
        raise ValueError(f"keys must hold one PRNG key per seed ({num}), got shape {keys.shape}")
    first = jax.tree_util.tree_map(lambda x: x[0], thetas0)
    game.validate(first)
    cdtype = _compute_dtype(game, precision)
    dtype = jnp.dtype(game.dtype)
    thetas = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), thetas0)
    opt = optimizer if optimizer is not None else Optimizer("adam", float(learning_rate))
    if not estimator.uses_optimizer:
        opt = None
    shape = (game.horizon, game.num_states, game.num_actions)
    worst = jnp.asarray(-jnp.inf if maximize else jnp.inf, dtype)

    def init(theta, key):
        opt_state = opt.init(theta) if opt is not None else ()
        tops = jax.tree_util.tree_map(lambda x: jnp.stack([x] * keep), theta)
        return DesignState(theta, opt_state, jnp.zeros(shape, cdtype), key, tops,
                           jnp.full((keep,), worst), jnp.zeros((keep,), jnp.int32),
                           jnp.asarray(RESULTS.successful.code), jnp.asarray(0),
                           theta, worst, jax.tree_util.tree_map(jnp.zeros_like, theta),
                           jnp.ones((), dtype))  # fmt: skip

    state = jax.vmap(init)(thetas, keys)
    step_game = game if cdtype == game.dtype else cast_floating(game, cdtype)
    batching = "vmap" if batching is None else batching
    if batching not in ("map", "vmap"):
        raise ValueError(f"batching must be 'map', 'vmap' or None, got {batching!r}")
    if devices is None:
        devices = _seed_devices(num)
    elif (check_count(devices, "devices") > jax.local_device_count()) or num % devices:
        raise ValueError(f"devices must divide the number of seeds ({num}) and be at most the "
                         f"local device count ({jax.local_device_count()}), got {devices}")  # fmt: skip
    tau_, eta_ = jnp.asarray(tau, cdtype), jnp.asarray(eta, cdtype)
    if backtrack is not None and not isinstance(backtrack, Backtracking):
        raise ValueError(f"backtrack must be a Backtracking or None, got {backtrack!r}")
    problem = DesignProblem(objective, estimator, opt, iters, maximize, bool(warm_start),
                            backtrack)  # fmt: skip
    evals = estimator.evaluations_per_step
    trace: dict[str, list] = {k: [] for k in _TRACE_KEYS}

    start, ckpt, fp = 0, None, None
    if checkpoint_dir is not None:
        os.makedirs(checkpoint_dir, exist_ok=True)
        ckpt = os.path.join(os.fspath(checkpoint_dir), _CHECKPOINT)
        settings = {
            "objective": repr(objective), "estimator": repr(estimator), "iters": iters,
            "tau": float(tau), "eta": float(eta), "maximize": maximize,
            "tau_start": tau_start, "tau_steps": tau_steps, "tau_stages": tau_stages,
            "warm_start": bool(warm_start), "select": select, "keep": keep,
            "backtrack": repr(backtrack),
            "val_tol": val_tol, "precision": cdtype.name,
            "optimizer": repr(opt) if isinstance(opt, Optimizer) else None,
            "val_iters": int(val_iters), "config": config or {},
        }  # fmt: skip
        fp = fingerprint(settings, game, thetas, keys)
        if os.path.exists(ckpt):
            state, start, loaded = load_checkpoint(ckpt, state, fp)
            trace.update({k: list(v) for k, v in loaded.items() if k in trace})
            if start > steps:
                raise ValueError(f"checkpoint {ckpt} holds {start} finished steps, more than "
                                 f"steps={steps}")  # fmt: skip

    def tau_at(k):
        f = min(1.0, (k * tau_stages // tau_steps) / tau_stages)
        return tau_start ** (1.0 - f) * float(tau) ** f

    t0 = time.perf_counter()
    seeds0 = [jax.tree_util.tree_map(lambda x, i=i: x[i], thetas) for i in range(num)]
    if val_tol is None:
        initial = [_evaluate(game, objective, t, tau, eta, val_iters) for t in seeds0]
    else:
        initial = _evaluate_many(game, objective, seeds0, tau, eta, val_iters, val_tol)
    for k in range(start, steps):
        ts = time.perf_counter()
        if tau_start is not None:
            tau_ = jnp.asarray(tau_at(k), cdtype)
            if k > 0 and tau_at(k) != tau_at(k - 1):  # a new surrogate: backtracking afresh
                state = state._replace(anchor_value=jnp.full_like(state.anchor_value, worst))
        state, metrics = _step_seeds(problem, step_game, tau_, eta_, state, devices, batching)
        metrics = jax.device_get(metrics)
        metrics["seconds"] = np.full(num, time.perf_counter() - ts)
        for name in _TRACE_KEYS:
            trace[name].append(np.asarray(metrics[name]).tolist())
        if ckpt is not None and ((k + 1) % checkpoint_every == 0 or k + 1 == steps):
            save_checkpoint(ckpt, state, step=k + 1, trace=trace, fingerprint=fp)
        if callback is not None:
            report = {n: np.asarray(metrics[n]).tolist() for n in _TRACE_KEYS if n != "seconds"}
            report["evaluations"] = (k + 1) * evals
            callback(k, report)
        if num == 1 and int(np.asarray(state.status)[0]) != RESULTS.successful.code:
            break
    state = jax.device_get(state)
    results = []
    for i in range(num):
        st = jax.tree_util.tree_map(lambda x, i=i: x[i], state)
        theta, final, selected, surrogate, cands, sel_step = _select(
            game, objective, st, select, maximize, tau, eta, val_iters, val_tol, trace, i
        )
        col = {n: np.asarray([row[i] for row in trace[n]]) for n in _TRACE_KEYS}
        code = int(st.status)
        res = DesignResult(
            theta=jax.tree_util.tree_map(jnp.asarray, theta),
            objective=col["objective"].astype(float),
            exploitability=col["exploitability"].astype(float),
            grad_norm=col["grad_norm"].astype(float),
            fixed_point_residual=col["fixed_point_residual"].astype(float),
            step_status=col["status"].astype(int),
            step_seconds=col["seconds"].astype(float),
            evaluations=evals * np.arange(1, len(trace["objective"]) + 1, dtype=np.int64),
            initial=initial[i][1],
            final=final[1],
            initial_value=initial[i][0],
            final_value=final[0],
            seconds=time.perf_counter() - t0,
            method=getattr(estimator, "name", type(estimator).__name__.lower()),
            maximize=maximize,
            status=RESULTS.name(code),
            message=RESULTS.message(code),
            resumed_from=start,
            steps=len(trace["objective"]),
            selected=selected,
            best_value=float(np.max(st.top_values) if maximize else np.min(st.top_values)),
            selected_surrogate=surrogate,
            selected_step=sel_step,
            candidates=tuple(cands),
        )
        if throw and code != RESULTS.successful.code:
            failed = int(np.argmax(res.step_status != RESULTS.successful.code))
            raise_for_status(code, f"design step {failed} ({res.method})")
        results.append(res)
    return results


def _evaluate(game, objective, theta, tau, eta, iters, tol=None):
    value, _, res = evaluate_design(game, objective, theta, tau=tau, eta=eta, iters=iters, tol=tol)
    return value, res


def _evaluate_many(game, objective, thetas, tau, eta, iters, tol):
    """``[(value, OMDResult)]`` of every parameter in ``thetas``, their equilibria solved to
    ``tol`` as one batched program (:func:`solvers.omd.solve_omd_batch`)."""
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *thetas)
    results = solve_omd_batch(game, stacked, tau=tau, eta=eta, iters=iters, tol=tol)
    return [(float(_objective_on(game, objective, th, r.logits)), r)
            for th, r in zip(thetas, results, strict=True)]  # fmt: skip


def _select(game, objective, st, select, maximize, tau, eta, val_iters, val_tol, trace, i):
    """``(theta, final OMDResult and value, selected name, its surrogate, candidates)``."""
    sign = 1.0 if maximize else -1.0
    objective_trace = [row[i] for row in trace["objective"]]
    last_surrogate = float(objective_trace[-1]) if objective_trace else float("nan")
    cands = [("last", st.theta, last_surrogate, len(objective_trace) - 1)]
    order = np.argsort(-sign * np.asarray(st.top_values))
    for rank, j in enumerate(order):
        if np.isfinite(float(st.top_values[j])):
            theta_j = jax.tree_util.tree_map(lambda x, j=j: x[j], st.top_thetas)
            cands.append((f"top-{rank + 1}", theta_j, float(st.top_values[j]),
                          int(st.top_steps[j])))  # fmt: skip
    if select == "last" or len(cands) == 1:
        chosen = cands[0]
    elif select == "surrogate":
        chosen = cands[1]
    else:
        chosen = None
    records = []
    if select == "converged":
        best = None
        solved = _evaluate_many(game, objective, [c[1] for c in cands], tau, eta, val_iters,
                                val_tol)  # fmt: skip
        for (name, th, sur, step), (value, res) in zip(cands, solved, strict=True):
            ok = res.converged and np.isfinite(value)
            records.append({"candidate": name, "step": step, "surrogate": sur, "value": value,
                            "exploitability": float(res.exploitability),
                            "status": res.status_name})  # fmt: skip
            key = (ok, sign * value if np.isfinite(value) else -np.inf)
            if best is None or key > best[0]:
                best = (key, (name, th, sur, step), (value, res))
        chosen = best[1]
        value, res = best[2]
    else:
        value, res = _evaluate(game, objective, chosen[1], tau, eta, val_iters, val_tol)
        records = [{"candidate": n, "step": k, "surrogate": s_} for n, _, s_, k in cands]
    name, theta, surrogate, step = chosen
    return theta, (value, res), name, surrogate, records, step
