"""The T-step design objective and its exact gradients (AMID).

The designer's surrogate objective after ``T`` OMD steps from ``zeta_0`` is::

    Phi(zeta, theta) = (1 - eta tau) zeta + eta q^tau(Lambda(softmax zeta | theta), softmax zeta, theta)
    zeta_{t+1}       = Phi(zeta_t, theta),                 t = 0 .. T-1
    G_T(theta)       = g(game, theta, L, info),   (L, info) = Lambda(softmax zeta_T(theta) | theta)

``g(game, theta, L, info) -> scalar`` is the designer objective on the flow ``L (H, S, A)`` and
the per-round ``info`` the game's rollout built (an auction's allocation and payments); it must
be hashable (a module-level function or a frozen dataclass: it is a static argument of the
compiled gradient). This module never decides whether it is maximised or minimised. The loop is
:mod:`solvers.adjoint`'s; the ``adjoint`` (:class:`~solvers.adjoint.Checkpointed` = AMID by
default, ``Unrolled``, ``Implicit``, ``Reference``) says how it is differentiated.

:func:`value_and_grad` reports, for every adjoint, the exploitability of ``softmax zeta_T``, the
fixed-point residual ``||Phi(zeta_T) - zeta_T||_inf`` and the flow's mass error, and for
``Implicit`` the linear solve's relative residual, in one :data:`solvers.results.RESULTS` status
(``throw=True`` raises on a status that is not ``successful``).

Example::

    import jax.numpy as jnp
    from mfid import BeachBar, Congestion
    from solvers import Checkpointed, value_and_grad
    game = BeachBar.create(num_states=20, horizon=10)
    G, dG, aux = value_and_grad(game, Congestion(50.0), jnp.zeros(20), tau=0.1, eta=0.3,
                                iters=400, adjoint=Checkpointed())
    print(G, aux.exploitability, aux.status_name)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from flax import struct

from mfid.checks import check_theta
from mfid.flow import rollout
from mfid.game import MeanFieldGame
from mfid.tree import all_finite
from solvers.adjoint import AbstractAdjoint, Checkpointed, Implicit, Unrolled, as_adjoint
from solvers.omd import (
    check_omd_args,
    equilibrium_diagnostics,
    initial_logits,
    omd_status,
    omd_step,
    policy_from_logits,
)
from solvers.results import RESULTS, HasStatus, raise_for_status

__all__ = [
    "GradientAux",
    "design_objective",
    "lower_value_and_grad",
    "objective_at",
    "omd_logits",
    "value_and_grad",
]


@struct.dataclass
class GradientAux(HasStatus):
    """Diagnostics of :func:`value_and_grad`.

    ``logits``: ``zeta_T (H, S, A)`` (use it to warm-start the next call); ``exploitability``: of
    ``softmax zeta_T`` at ``theta``; ``fixed_point_residual``: ``||Phi(zeta_T) - zeta_T||_inf``;
    ``linear_residual``: ``||A lam - b|| / ||b||`` of the adjoint solve (``Implicit`` only, else
    0); ``mass_error``: ``max_h |sum L_h - 1|``; ``status``: a :data:`solvers.results.RESULTS`
    code (``successful``, ``nonfinite``, ``diverged``, ``mass_not_conserved``,
    ``omd_not_converged``, ``linear_solve_failed``).
    """

    logits: jnp.ndarray
    exploitability: jnp.ndarray
    fixed_point_residual: jnp.ndarray
    linear_residual: jnp.ndarray
    mass_error: jnp.ndarray
    status: jnp.ndarray


def omd_logits(game: MeanFieldGame, theta, zeta0=None, *, tau, eta, iters: int,
               adjoint: AbstractAdjoint = Checkpointed()):  # fmt: skip
    """``zeta_T``: ``iters`` OMD steps from ``zeta0`` (default zeros), shape ``(H, S, A)``;
    ``jax.grad`` through it is the ``adjoint``'s. Call it inside ``jax.jit``."""
    adjoint = as_adjoint(adjoint)
    return adjoint.steps(omd_step, initial_logits(game, zeta0), (game, theta, tau, eta), iters)


def objective_at(game: MeanFieldGame, objective: Callable, theta, zeta):
    """``g(game, theta, L, info)`` at the policy ``softmax zeta``, and ``(pi, logpi, L, dyn)``
    (the rollout that built ``L`` and ``info = dyn.info``, for diagnostics without a second
    rollout)."""
    pi, logpi = policy_from_logits(zeta, game.action_mask)
    L, dyn = rollout(game, pi, theta)
    value = objective(game, theta, L, dyn.info)
    if jnp.ndim(value) != 0:
        raise ValueError(f"objective must return a scalar, got shape {jnp.shape(value)}")
    return value, (pi, logpi, L, dyn)


def _value_and_grad_traced(game, theta, zeta0, tau, eta, objective, iters, adjoint):
    """The traced core of :func:`value_and_grad` (also the exact estimator of the design loop)."""
    zT, pullback = adjoint.vjp(omd_step, zeta0, (game, theta, tau, eta), iters)
    (value, (pi, logpi, L, dyn)), (g_theta, v) = jax.value_and_grad(
        lambda th, z: objective_at(game, objective, th, z), argnums=(0, 1), has_aux=True
    )(theta, zT)
    (_, d_theta, _, _), stats = pullback(v)
    grad = jax.tree_util.tree_map(jnp.add, g_theta, d_theta)
    diag = equilibrium_diagnostics(game, jax.lax.stop_gradient(dyn), pi, logpi, L, zT, tau, eta)
    lin = stats.get("linear_residual", jnp.zeros((), zT.dtype))
    status = jnp.asarray(RESULTS.successful.code)
    if isinstance(adjoint, Implicit):
        fp_bad = ~(stats["fixed_point_residual"] <= adjoint.fixed_point_tol)
        status = jnp.where(
            fp_bad,
            RESULTS.omd_not_converged.code,
            jnp.where(~(lin <= 100.0 * adjoint.linear_tol), RESULTS.linear_solve_failed.code,
                      status),
        )  # fmt: skip
    status = omd_status(status, diag, zT)
    status = jnp.where(all_finite(value, grad), status, RESULTS.nonfinite.code)
    aux = GradientAux(zT, diag["exploitability"], diag["fixed_point_residual"], lin,
                      diag["mass_error"], status)  # fmt: skip
    return value, grad, aux


def _value_traced(game, theta, zeta0, tau, eta, objective, iters):
    """``G_T(theta)`` and its :class:`GradientAux` without derivatives (zeroth-order methods)."""
    zT = Unrolled().steps(omd_step, zeta0, (game, theta, tau, eta), iters)
    value, (pi, logpi, L, dyn) = objective_at(game, objective, theta, zT)
    diag = equilibrium_diagnostics(game, dyn, pi, logpi, L, zT, tau, eta)
    status = omd_status(jnp.asarray(RESULTS.successful.code), diag, zT)
    status = jnp.where(jnp.isfinite(value), status, RESULTS.nonfinite.code)
    aux = GradientAux(zT, diag["exploitability"], diag["fixed_point_residual"],
                      jnp.zeros((), zT.dtype), diag["mass_error"], status)  # fmt: skip
    return value, aux


_value_and_grad = jax.jit(_value_and_grad_traced, static_argnames=("objective", "iters", "adjoint"))


def _prepare(game, theta, zeta0, tau, eta, iters, adjoint):
    iters = check_omd_args(tau, eta, iters)
    adjoint = as_adjoint(adjoint)
    check_theta(theta, floating=True)
    game.validate(theta)
    zeta0 = initial_logits(game, zeta0)
    tau_, eta_ = jnp.asarray(tau, zeta0.dtype), jnp.asarray(eta, zeta0.dtype)
    return zeta0, tau_, eta_, iters, adjoint


def value_and_grad(
    game: MeanFieldGame,
    objective: Callable,
    theta,
    *,
    tau,
    eta,
    iters: int,
    adjoint: AbstractAdjoint | str = Checkpointed(),
    zeta0=None,
    throw: bool = True,
):
    """``(G_T(theta), dG_T/dtheta, GradientAux)`` in one jitted call.

    ``objective(game, theta, L, info) -> scalar`` (hashable). ``zeta0`` warm-starts OMD (treated
    as a constant). ``adjoint``: an adjoint object or its CLI name (``"amid"``, ``"unrolled"``,
    ``"implicit"``, ``"reference"``). With ``throw=True`` a status other than ``successful``
    raises ``ValueError`` naming the residuals; with ``throw=False`` it is only reported in
    ``aux.status``. Calling again with new values of ``theta``, ``zeta0``, ``tau``, ``eta`` or the
    game's arrays does not recompile.
    """
    zeta0, tau_, eta_, iters, adjoint = _prepare(game, theta, zeta0, tau, eta, iters, adjoint)
    value, grad, aux = _value_and_grad(game, theta, zeta0, tau_, eta_, objective=objective,
                                       iters=iters, adjoint=adjoint)  # fmt: skip
    if throw and int(aux.status) != RESULTS.successful.code:
        raise_for_status(
            aux.status,
            f"{adjoint.name} gradient refused (fixed-point residual "
            f"{float(aux.fixed_point_residual):.3g}, linear-solve residual "
            f"{float(aux.linear_residual):.3g}, exploitability {float(aux.exploitability):.3g})",
            allow_max_iterations=False,
        )
    return value, grad, aux


def lower_value_and_grad(game: MeanFieldGame, objective: Callable, theta, *, tau, eta,
                         iters: int, adjoint: AbstractAdjoint | str = Checkpointed(),
                         zeta0=None):  # fmt: skip
    """Ahead-of-time lowering of :func:`value_and_grad` (same arguments): ``(lowered, args)``
    where ``compiled = lowered.compile()`` is called as ``compiled(*args) -> (value, grad, aux)``
    and ``compiled.memory_analysis().temp_size_in_bytes`` is XLA's temporary memory."""
    zeta0, tau_, eta_, iters, adjoint = _prepare(game, theta, zeta0, tau, eta, iters, adjoint)
    args = (game, theta, zeta0, tau_, eta_)
    lowered = _value_and_grad.lower(*args, objective=objective, iters=iters, adjoint=adjoint)
    return lowered, args


@partial(jax.jit, static_argnames=("objective", "iters", "adjoint"))
def _objective(game, theta, zeta0, tau, eta, *, objective, iters, adjoint):
    z = adjoint.steps(omd_step, zeta0, (game, theta, tau, eta), iters)
    return objective_at(game, objective, theta, z)[0]


def design_objective(game: MeanFieldGame, objective: Callable, theta, *, tau, eta, iters: int,
                     adjoint: AbstractAdjoint | str = Checkpointed(), zeta0=None):  # fmt: skip
    """``G_T(theta) = g(game, theta, Lambda(softmax zeta_T(theta) | theta))`` (jitted).

    ``jax.grad`` through it is the ``adjoint``'s gradient for every adjoint: ``Reference`` runs
    the hand-written recursion, ``Implicit`` the fixed-point rule, which refuses an unconverged
    OMD (it raises; with ``Implicit(throw=False)`` the gradient is NaN). Forward mode
    (``jax.jvp``) is refused by ``Implicit`` and ``Reference``.
    """
    zeta0, tau_, eta_, iters, adjoint = _prepare(game, theta, zeta0, tau, eta, iters, adjoint)
    return _objective(game, theta, zeta0, tau_, eta_, objective=objective, iters=iters,
                      adjoint=adjoint)  # fmt: skip
