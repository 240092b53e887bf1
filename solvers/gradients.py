"""The T-step design objective and its exact gradients (SPEC section 3, AMID).

The designer's surrogate objective after ``T`` OMD steps from ``zeta_0`` is::

    Phi(zeta, theta) = (1 - eta tau) zeta + eta q^tau(Lambda(softmax zeta | theta), softmax zeta, theta)
    zeta_{t+1}       = Phi(zeta_t, theta),                 t = 0 .. T-1
    G_T(theta)       = g(theta, Lambda(softmax zeta_T(theta) | theta))

``g(theta, L) -> scalar`` is the designer objective on the flow ``L (H, S, A)``; this module never
decides whether it is maximised or minimised (the design loop takes ``maximize=``). The forward
loop is written once (:func:`omd_logits`); ``mode`` only picks how it is differentiated:

================  ==========  ==============================================================
mode              memory      how
================  ==========  ==============================================================
``unrolled``      O(T)        reverse mode through one ``lax.scan`` of ``Phi``
``amid``          O(sqrt T)   two-level scan: segments of ``segment = ceil(sqrt T)`` steps
                              (configurable; the last one may be shorter) wrapped in
                              ``jax.checkpoint``; only segment starts are stored, each
                              segment is recomputed in the backward pass keeping its
                              iterates, and each step is rematerialised for its adjoint
                              (time stays O(T): about three forward passes in all)
``implicit``      O(1)        implicit function theorem at the fixed point ``zeta* = Phi(zeta*)``:
                              ``(I - d_zeta Phi)^T lam = d_zeta G``, solved matrix-free with
                              GMRES, then ``grad = d_theta G + lam^T d_theta Phi``
``reference``     O(T)        the hand-written adjoint recursion (test oracle): store
                              ``zeta_0..zeta_{T-1}``, ``lam <- d_zeta G``, for ``t = T-1..0``:
                              ``grad += lam^T d_theta Phi(zeta_t)``,
                              ``lam <- lam^T d_zeta Phi(zeta_t)`` (one ``jax.vjp`` per step)
================  ==========  ==============================================================

``unrolled``, ``amid`` and ``reference`` differentiate the same T-step map and agree to rounding
error. ``implicit`` differentiates the limit ``T -> infinity``; it matches them only when OMD has
converged (and ``I - d_zeta Phi`` is well conditioned: the spectral radius of ``d_zeta q^tau``
below ``tau``), so :func:`value_and_grad` reports the fixed-point residual
``||Phi(zeta_T) - zeta_T||_inf`` and the relative residual of the linear solve and refuses
(``ValueError``, or ``status`` when ``check=False``) when either is above its tolerance.

Example::

    import jax.numpy as jnp
    from mfid import BeachBar, congestion
    from solvers.gradients import value_and_grad
    game = BeachBar.create(num_states=20, horizon=10)
    obj = lambda theta, L: congestion(L, 50.0)
    xi = jnp.zeros(20)
    G, dG, aux = value_and_grad(game, obj, xi, tau=0.1, eta=0.3, iters=400, mode="amid")
    print(G, aux.exploitability)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax
from jax.scipy.sparse.linalg import gmres

from mfid.flow import rollout
from mfid.checks import check_theta
from mfid.game import MeanFieldGame
from mfid.values import _exploitability_from
from solvers.omd import check_omd_args, initial_logits, omd_update

__all__ = [
    "GRADIENT_MODES",
    "GRADIENT_STATUS",
    "GradientAux",
    "amid_segment",
    "check_gradient_args",
    "design_objective",
    "lower_value_and_grad",
    "omd_logits",
    "value_and_grad",
]

GRADIENT_MODES = ("unrolled", "amid", "implicit", "reference")
OK, NOT_CONVERGED, LINEAR_SOLVE_FAILED, NONFINITE = 0, 1, 2, 3
GRADIENT_STATUS = {
    OK: "ok",
    NOT_CONVERGED: "omd_not_converged",
    LINEAR_SOLVE_FAILED: "linear_solve_failed",
    NONFINITE: "nonfinite",
}


@struct.dataclass
class GradientAux:
    """Diagnostics returned by :func:`value_and_grad`.

    ``logits``: ``zeta_T (H, S, A)`` (use it to warm-start the next call); ``exploitability``: of
    ``softmax zeta_T`` at ``theta``; ``fixed_point_residual``: ``||Phi(zeta_T) - zeta_T||_inf``;
    ``linear_residual``: ``||A lam - b|| / ||b||`` of the adjoint solve (``implicit`` only, else
    0); ``status``: 0 ok, 1 OMD not converged (implicit), 2 linear solve failed (implicit),
    3 non-finite value or gradient.
    """

    logits: jnp.ndarray
    exploitability: jnp.ndarray
    fixed_point_residual: jnp.ndarray
    linear_residual: jnp.ndarray
    status: jnp.ndarray

    @property
    def status_name(self) -> str:
        return GRADIENT_STATUS[int(self.status)]


def amid_segment(iters: int, segment: int | None = None) -> int:
    """Segment length of the checkpointed scan: ``segment`` or ``ceil(sqrt(iters))``."""
    if segment is None:
        return max(1, math.isqrt(iters - 1) + 1) if iters > 1 else 1
    return int(segment)


def check_gradient_args(tau, eta, iters, mode, segment=None) -> None:
    """Raise ``ValueError`` for an unknown ``mode``, bad OMD settings or a bad ``segment``."""
    if mode not in GRADIENT_MODES:
        raise ValueError(f"mode must be one of {GRADIENT_MODES}, got {mode!r}")
    check_omd_args(tau, eta, iters)
    if segment is not None and (
        not isinstance(segment, (int, np.integer)) or isinstance(segment, bool) or segment <= 0
    ):
        raise ValueError(f"segment must be a positive integer or None, got {segment!r}")


# --------------------------------------------------------------------------------------------
# The forward loop (written once) and its loop primitives.


def _scan_steps(zeta, game, theta, tau, eta, n: int, remat_step: bool = False):
    """``n`` OMD steps in one ``lax.scan``; with ``remat_step`` each step is wrapped in
    ``jax.checkpoint`` saving nothing, so differentiating the scan stores only the iterates."""
    if n == 0:
        return zeta
    update = lambda z: omd_update(game, theta, z, tau, eta)
    if remat_step:
        update = jax.checkpoint(update, policy=jax.checkpoint_policies.nothing_saveable)
    return lax.scan(lambda z, _: (update(z), None), zeta, None, length=n)[0]


def _amid_steps(zeta, game, theta, tau, eta, n: int, segment: int):
    """``n`` OMD steps as ``n // segment`` checkpointed segments plus one shorter remainder.

    In the backward pass a segment is recomputed from its stored start, keeping only its
    iterates, and each step is recomputed once more when its adjoint is taken: no per-step
    intermediates are ever stored (one extra forward pass, which on CPU costs less than
    writing and reading them back)."""
    n_seg, rest = divmod(n, segment)
    seg_fn = jax.checkpoint(partial(_scan_steps, remat_step=True), static_argnums=(5,))
    if n_seg:
        body = lambda z, _: (seg_fn(z, game, theta, tau, eta, segment), None)
        zeta = lax.scan(body, zeta, None, length=n_seg)[0]
    if rest:
        zeta = seg_fn(zeta, game, theta, tau, eta, rest)
    return zeta


def _gmres_solve(matvec, b, tol: float, maxiter: int):
    """Matrix-free GMRES on a pytree right-hand side; returns the solution and the relative
    residual ``||A x - b|| / ||b||``."""
    n = sum(x.size for x in jax.tree_util.tree_leaves(b))
    restart = int(min(n, 50))
    x, _ = gmres(matvec, b, tol=tol, atol=0.0, restart=restart, maxiter=maxiter)
    r = jax.tree_util.tree_map(jnp.subtract, matvec(x), b)
    norm = lambda t: jnp.sqrt(sum(jnp.vdot(u, u) for u in jax.tree_util.tree_leaves(t)))
    tiny = jnp.finfo(jax.tree_util.tree_leaves(b)[0].dtype).tiny
    return x, norm(r) / jnp.maximum(norm(b), tiny)


@partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _implicit_steps(zeta, game, theta, tau, eta, n: int, linear_tol: float, linear_maxiter: int):
    """``n`` OMD steps whose derivative is the implicit-function-theorem derivative of the fixed
    point ``zeta* = Phi(zeta*, theta)``: for a cotangent ``v`` of ``zeta_T``, solve
    ``(I - d_zeta Phi)^T lam = v`` with GMRES and return ``lam^T d_(game, theta, tau, eta) Phi``
    (zero for ``zeta0``, which the fixed point does not depend on)."""
    return _scan_steps(zeta, game, theta, tau, eta, n)


def _implicit_fwd(zeta, game, theta, tau, eta, n, linear_tol, linear_maxiter):
    zT = _scan_steps(zeta, game, theta, tau, eta, n)
    return zT, (zT, game, theta, tau, eta, jnp.zeros_like(zeta))


def _implicit_bwd(n, linear_tol, linear_maxiter, res, v):
    zT, game, theta, tau, eta, zero = res
    _, vjp = jax.vjp(
        lambda g, th, ta, et, z: omd_update(g, th, z, ta, et), game, theta, tau, eta, zT
    )
    lam, _ = _gmres_solve(lambda x: x - vjp(x)[4], v, linear_tol, linear_maxiter)
    d_game, d_theta, d_tau, d_eta, _ = vjp(lam)
    return zero, d_game, d_theta, d_tau, d_eta


_implicit_steps.defvjp(_implicit_fwd, _implicit_bwd)


def omd_logits(
    game: MeanFieldGame,
    theta,
    zeta0=None,
    *,
    tau,
    eta,
    iters: int,
    mode: str = "amid",
    segment: int | None = None,
    linear_tol: float = 1e-12,
    linear_maxiter: int = 20,
):
    """``zeta_T``: ``iters`` OMD steps from ``zeta0`` (default zeros), shape ``(H, S, A)``.

    The value does not depend on ``mode``; the mode picks what ``jax.grad`` does through it:
    ``unrolled`` (plain scan), ``amid`` (checkpointed two-level scan, segment ``segment`` or
    ``ceil(sqrt(iters))``), ``implicit`` (fixed-point derivative by a ``jax.custom_vjp`` rule; valid
    only when OMD has converged, and it does not propagate derivatives to ``zeta0``). For
    ``reference`` the forward pass is the plain scan; its hand-written backward pass lives in
    :func:`value_and_grad`. Call it inside ``jax.jit``.
    """
    if zeta0 is None:
        zeta0 = jnp.zeros((game.horizon, game.num_states, game.num_actions), game.dtype)
    if mode in ("unrolled", "reference"):
        return _scan_steps(zeta0, game, theta, tau, eta, iters)
    if mode == "amid":
        return _amid_steps(zeta0, game, theta, tau, eta, iters, amid_segment(iters, segment))
    if mode == "implicit":
        return _implicit_steps(zeta0, game, theta, tau, eta, iters, linear_tol, linear_maxiter)
    raise ValueError(f"mode must be one of {GRADIENT_MODES}, got {mode!r}")


def _outcome(game, objective, theta, zeta):
    """``g(theta, Lambda(softmax zeta | theta))`` (the objective at given logits)."""
    logpi = jax.nn.log_softmax(zeta, axis=-1)
    L, _ = rollout(game, jnp.exp(logpi), theta)
    return objective(theta, L)


def _diagnostics(game, theta, zeta, tau, eta):
    logpi = jax.nn.log_softmax(zeta, axis=-1)
    pi = jnp.exp(logpi)
    _, dyn = rollout(game, pi, theta)
    expl = _exploitability_from(game, dyn, pi, tau, logpi)
    fp = jnp.max(jnp.abs(omd_update(game, theta, zeta, tau, eta) - zeta))
    return expl, fp


def _tree_add(a, b):
    return jax.tree_util.tree_map(jnp.add, a, b)


def _all_finite(*trees) -> jnp.ndarray:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(trees)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


@partial(
    jax.jit,
    static_argnames=("objective", "iters", "mode", "segment", "linear_tol", "linear_maxiter"),
)
def _value_and_grad(
    game,
    theta,
    zeta0,
    tau,
    eta,
    fixed_point_tol,
    *,
    objective,
    iters: int,
    mode: str,
    segment: int | None,
    linear_tol: float,
    linear_maxiter: int,
):
    lin_res = jnp.zeros((), zeta0.dtype)
    if mode in ("unrolled", "amid"):

        def G(th):
            z = omd_logits(
                game, th, zeta0, tau=tau, eta=eta, iters=iters, mode=mode, segment=segment
            )
            return _outcome(game, objective, th, z), z

        (value, zT), grad = jax.value_and_grad(G, has_aux=True)(theta)
    elif mode == "reference":

        def fwd(z, _):
            return omd_update(game, theta, z, tau, eta), z

        zT, zs = lax.scan(fwd, zeta0, None, length=iters)
        value, (g_theta, lam) = jax.value_and_grad(
            lambda th, z: _outcome(game, objective, th, z), argnums=(0, 1)
        )(theta, zT)

        def bwd(carry, z_t):
            lam, acc = carry
            _, vjp = jax.vjp(lambda th, z: omd_update(game, th, z, tau, eta), theta, z_t)
            d_theta, d_zeta = vjp(lam)
            return (d_zeta, _tree_add(acc, d_theta)), None

        (_, grad), _ = lax.scan(bwd, (lam, g_theta), zs, reverse=True)
    else:  # implicit
        zT = _scan_steps(zeta0, game, theta, tau, eta, iters)
        value, (g_theta, v) = jax.value_and_grad(
            lambda th, z: _outcome(game, objective, th, z), argnums=(0, 1)
        )(theta, zT)
        _, vjp = jax.vjp(lambda th, z: omd_update(game, th, z, tau, eta), theta, zT)
        lam, lin_res = _gmres_solve(lambda x: x - vjp(x)[1], v, linear_tol, linear_maxiter)
        grad = _tree_add(g_theta, vjp(lam)[0])
    expl, fp = _diagnostics(game, theta, zT, tau, eta)
    finite = _all_finite(value, grad, zT, expl)
    if mode == "implicit":
        status = jnp.where(
            fp > fixed_point_tol,
            NOT_CONVERGED,
            jnp.where(lin_res > 100.0 * linear_tol, LINEAR_SOLVE_FAILED, OK),
        )
    else:
        status = jnp.asarray(OK)
    status = jnp.where(finite, status, NONFINITE)
    return value, grad, GradientAux(zT, expl, fp, lin_res, status)


def _prepare(game, theta, zeta0, tau, eta, iters, mode, segment):
    check_gradient_args(tau, eta, iters, mode, segment)
    check_theta(theta)
    game.validate(theta)
    zeta0 = initial_logits(game, zeta0)
    return zeta0, jnp.asarray(tau, zeta0.dtype), jnp.asarray(eta, zeta0.dtype)


def value_and_grad(
    game: MeanFieldGame,
    objective: Callable,
    theta,
    *,
    tau,
    eta,
    iters: int,
    mode: str = "amid",
    zeta0=None,
    segment: int | None = None,
    fixed_point_tol: float = 1e-9,
    linear_tol: float = 1e-11,
    linear_maxiter: int = 40,
    check: bool = True,
):
    """``(G_T(theta), dG_T/dtheta, GradientAux)`` in one jitted call.

    ``objective(theta, L) -> scalar`` must be hashable (a module-level function or a
    ``functools.partial`` kept by the caller: it is a static argument of the compiled function).
    ``zeta0`` warm-starts OMD (treated as a constant). ``mode`` is one of :data:`GRADIENT_MODES`.
    For ``implicit`` the adjoint system is solved by restarted GMRES to relative tolerance
    ``linear_tol`` (at most ``linear_maxiter`` restarts); the result is refused when
    ``||Phi(zeta_T) - zeta_T||_inf > fixed_point_tol`` or the solve residual exceeds
    ``100 * linear_tol``. With ``check=True`` a status other than ``ok`` raises ``ValueError``
    (naming the residuals); with ``check=False`` it is only reported in ``aux.status``.
    Calling again with new values of ``theta``, ``zeta0``, ``tau``, ``eta`` or the game's arrays
    does not recompile.
    """
    zeta0, tau_, eta_ = _prepare(game, theta, zeta0, tau, eta, iters, mode, segment)
    if not (float(fixed_point_tol) >= 0):
        raise ValueError(f"fixed_point_tol must be >= 0, got {fixed_point_tol!r}")
    if not (float(linear_tol) > 0):
        raise ValueError(f"linear_tol must be > 0, got {linear_tol!r}")
    value, grad, aux = _value_and_grad(
        game,
        theta,
        zeta0,
        tau_,
        eta_,
        jnp.asarray(fixed_point_tol, zeta0.dtype),
        objective=objective,
        iters=int(iters),
        mode=mode,
        segment=segment,
        linear_tol=float(linear_tol),
        linear_maxiter=int(linear_maxiter),
    )
    if check and int(aux.status) != OK:
        raise ValueError(
            f"{mode} gradient refused: {aux.status_name} (fixed-point residual "
            f"{float(aux.fixed_point_residual):.3g} vs fixed_point_tol {fixed_point_tol:.3g}, "
            f"linear-solve residual {float(aux.linear_residual):.3g}); increase iters or tau, "
            f"or use mode='amid'"
        )
    return value, grad, aux


def lower_value_and_grad(
    game: MeanFieldGame,
    objective: Callable,
    theta,
    *,
    tau,
    eta,
    iters: int,
    mode: str = "amid",
    zeta0=None,
    segment: int | None = None,
    fixed_point_tol: float = 1e-9,
    linear_tol: float = 1e-11,
    linear_maxiter: int = 40,
):
    """Ahead-of-time lowering of :func:`value_and_grad` (same arguments): ``(lowered, args)``
    where ``compiled = lowered.compile()`` is called as ``compiled(*args) -> (value, grad, aux)``
    and ``compiled.memory_analysis().temp_size_in_bytes`` is XLA's temporary memory."""
    zeta0, tau_, eta_ = _prepare(game, theta, zeta0, tau, eta, iters, mode, segment)
    args = (game, theta, zeta0, tau_, eta_, jnp.asarray(fixed_point_tol, zeta0.dtype))
    lowered = _value_and_grad.lower(
        *args,
        objective=objective,
        iters=int(iters),
        mode=mode,
        segment=segment,
        linear_tol=float(linear_tol),
        linear_maxiter=int(linear_maxiter),
    )
    return lowered, args


@partial(jax.jit, static_argnames=("objective", "iters", "mode", "segment"))
def _objective(game, theta, zeta0, tau, eta, *, objective, iters, mode, segment):
    z = omd_logits(game, theta, zeta0, tau=tau, eta=eta, iters=iters, mode=mode, segment=segment)
    return _outcome(game, objective, theta, z)


def design_objective(
    game: MeanFieldGame,
    objective: Callable,
    theta,
    *,
    tau,
    eta,
    iters: int,
    mode: str = "amid",
    zeta0=None,
    segment: int | None = None,
):
    """``G_T(theta) = g(theta, Lambda(softmax zeta_T(theta) | theta))`` (jitted).

    Differentiable with ``jax.grad`` in the ``unrolled``, ``amid`` and ``implicit`` modes (the
    ``reference`` mode is differentiated only by :func:`value_and_grad`). Inside a traced
    function use :func:`omd_logits` directly.
    """
    zeta0, tau_, eta_ = _prepare(game, theta, zeta0, tau, eta, iters, mode, segment)
    return _objective(
        game,
        theta,
        zeta0,
        tau_,
        eta_,
        objective=objective,
        iters=int(iters),
        mode=mode,
        segment=segment,
    )
