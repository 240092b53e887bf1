"""Online mirror descent for the entropy-regularised MF-NE (the mean-field OMD of Pérolat et al.,
"Scaling up mean field games with online mirror descent", JMLR 2022).

Iterates on logits ``zeta in R^{H x S x A}`` from ``zeta_0 = 0`` (the uniform policy)::

    zeta_{t+1} = (1 - eta tau) zeta_t + eta q^tau( Lambda(softmax zeta_t | theta), softmax zeta_t, theta )

Its fixed point ``zeta* = q^tau / tau`` gives the regularised MF-NE ``pi* = softmax(q^tau / tau)``
(Perolat et al., "Scaling up mean field games with online mirror descent", 2022). The T-step loop
is the one of :mod:`solvers.adjoint` (``Unrolled().steps(omd_step, ...)``).

In a game with an action mask (:attr:`mfid.MeanFieldGame.action_mask`, allowed actions ``A(s)``)
the softmax runs over ``A(s)`` and the logits of disallowed actions are held at 0 (they never
enter the policy), so the fixed point is ``pi*(.|s) = softmax over A(s) of q^tau(s, .) / tau``::

    zeta_{t+1}(s, a) = [a in A(s)] ((1 - eta tau) zeta_t(s, a) + eta q^tau(s, a))

Example::

    from mfid import BeachBar
    from solvers import solve_omd
    game = BeachBar.create(num_states=20, horizon=10)
    res = solve_omd(game, None, tau=0.1, eta=1.0, iters=500)
    print(res.exploitability, res.status_name)
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from flax import struct
from jax import lax

from mfid.checks import check_count, check_positive, check_theta
from mfid.flow import rollout
from mfid.game import MeanFieldGame
from mfid.values import best_response_values, evaluate_policy
from solvers.adjoint import Unrolled
from solvers.results import RESULTS, HasStatus, raise_for_status

__all__ = [
    "MASS_TOL",
    "mass_tolerance",
    "OMDResult",
    "check_omd_args",
    "equilibrium_diagnostics",
    "initial_logits",
    "omd_status",
    "omd_step",
    "omd_update",
    "policy_from_logits",
    "solve_omd",
    "solve_omd_batch",
]

MASS_TOL = 1e-6
"""Largest ``|sum_{s,a} L_h(s, a) - 1|`` a flow may have before its status is
``mass_not_conserved`` (in float64; lower precisions get :func:`mass_tolerance`)."""


def mass_tolerance(dtype, horizon: int, num_states: int, num_actions: int) -> float:
    """Tolerance of the mass check: ``max(MASS_TOL, 8 eps H sqrt(S A))`` with ``eps`` the
    machine epsilon of ``dtype``. Rounding alone moves the mass of a flow computed in float32 by
    about ``eps sqrt(S A)`` per round (a sum over ``S A`` cells) and the error accumulates over the
    ``H`` rounds, so a fixed ``1e-6`` would flag correct float32 flows of long horizons, while a
    kernel that creates mass is off by orders of magnitude more."""
    eps = float(jnp.finfo(dtype).eps)
    return max(MASS_TOL, 8.0 * eps * horizon * math.sqrt(num_states * num_actions))

_SATURATION = 1e3
_RESOLVABLE = 64  # a tolerance must exceed this many machine epsilons of the game's dtype


@struct.dataclass
class OMDResult(HasStatus):
    """Outcome of :func:`solve_omd`.

    ``policy``/``flow``/``logits``: ``(H, S, A)``; ``exploitability``: scalar at the returned
    policy; ``iterations``: OMD steps taken; ``status``: a :data:`solvers.results.RESULTS` code
    (``successful`` = converged to ``tol``; ``max_iterations``; ``nonfinite``; ``diverged``;
    ``mass_not_conserved``); ``mass_error``: ``max_h |sum L_h - 1|``; ``trace``: exploitability
    after every ``trace_every`` (or ``check_every``) steps, ``trace_iters`` the matching counts.
    """

    policy: jnp.ndarray
    flow: jnp.ndarray
    logits: jnp.ndarray
    exploitability: jnp.ndarray
    iterations: jnp.ndarray
    status: jnp.ndarray
    trace: jnp.ndarray
    trace_iters: jnp.ndarray
    mass_error: jnp.ndarray = 0.0

    @property
    def converged(self) -> bool:
        """``True`` when OMD reached its tolerance (status ``successful``)."""
        return int(self.status) == RESULTS.successful.code


def policy_from_logits(zeta, mask=None):
    """``(softmax(zeta), log_softmax(zeta))`` over the last axis with one ``exp`` per entry.

    ``mask`` (boolean, broadcastable to ``zeta``, ``True`` = allowed, at least one per row;
    e.g. :attr:`mfid.MeanFieldGame.action_mask` of shape ``(S, A)``): the softmax over the allowed
    entries only, probability exactly 0 elsewhere, where the log-probability is reported as 0
    (so ``pi log pi = 0`` there). Disallowed logits are never exponentiated (``jnp.where`` on both
    branches), so gradients are finite and zero w.r.t. disallowed logits. ``mask=None`` is the
    plain softmax."""
    if mask is None:
        shifted = zeta - lax.stop_gradient(jnp.max(zeta, axis=-1, keepdims=True))
        e = jnp.exp(shifted)
        total = jnp.sum(e, axis=-1, keepdims=True)
        return e / total, shifted - jnp.log(total)
    mask = jnp.broadcast_to(mask, zeta.shape)
    top = jnp.max(jnp.where(mask, zeta, -jnp.inf), axis=-1, keepdims=True)
    shifted = jnp.where(mask, zeta - lax.stop_gradient(top), 0.0)
    e = jnp.where(mask, jnp.exp(shifted), 0.0)
    total = jnp.sum(e, axis=-1, keepdims=True)
    return e / total, jnp.where(mask, shifted - jnp.log(total), 0.0)


def omd_update(game: MeanFieldGame, theta, zeta, tau, eta):
    """One OMD step ``zeta <- (1 - eta tau) zeta + eta q^tau(Lambda(pi), pi)``, ``pi = softmax(zeta)``.

    In a masked game the softmax runs over the allowed actions (:func:`policy_from_logits` with
    ``game.action_mask``) and the logits of disallowed actions are set to 0.
    Shapes: ``zeta (H, S, A)``; returns the new logits of the same shape.
    """
    mask = game.action_mask
    pi, logpi = policy_from_logits(zeta, mask)
    _, dyn = rollout(game, pi, theta)
    q, _ = evaluate_policy(dyn, pi, tau, logpi)
    new = (1.0 - eta * tau) * zeta + eta * q
    if mask is None:
        return new
    return jnp.where(jnp.broadcast_to(mask, new.shape), new, jnp.zeros((), new.dtype))


def omd_step(zeta, args):
    """:func:`omd_update` in the ``step(zeta, args)`` form of :mod:`solvers.adjoint`, with
    ``args = (game, theta, tau, eta)``."""
    game, theta, tau, eta = args
    return omd_update(game, theta, zeta, tau, eta)


def equilibrium_diagnostics(game: MeanFieldGame, dyn, pi, logpi, L, zeta, tau, eta):
    """Exploitability, fixed-point residual ``||Phi(zeta) - zeta||_inf = eta ||q - tau zeta||_inf``,
    mass error and logit saturation of the policy ``pi = softmax(zeta)`` whose flow ``L`` and
    round dynamics ``dyn`` are given (no second rollout).

    In a masked game ``pi`` and ``logpi`` are recomputed from ``zeta`` with the game's mask (a
    caller's plain softmax would give disallowed actions mass and entropy), the best response
    ranges over allowed actions and the residual is ``eta |q - tau zeta|`` on allowed entries and
    ``|zeta|`` on disallowed ones (which :func:`omd_update` sets to 0)."""
    mask = game.action_mask
    if mask is not None:
        pi, logpi = policy_from_logits(zeta, mask)
    q, V = evaluate_policy(dyn, pi, tau, logpi)
    _, Vstar = best_response_values(dyn, tau, game.num_states, pi.dtype, mask)
    mu0 = game.mu0.astype(V.dtype)
    expl = mu0 @ (Vstar[0] - V[0])
    if mask is None:
        fp = eta * jnp.max(jnp.abs(q - tau * zeta))
    else:
        allowed = jnp.broadcast_to(mask, zeta.shape)
        fp = jnp.max(jnp.where(allowed, eta * jnp.abs(q - tau * zeta), jnp.abs(zeta)))
    mass = jnp.max(jnp.abs(jnp.sum(L, axis=(1, 2)) - 1.0))
    saturated = (eta * tau > 2.0) | (
        tau * jnp.max(jnp.abs(zeta)) > _SATURATION * (jnp.max(jnp.abs(q)) + 1.0)
    )
    H, S, A = L.shape
    return {"exploitability": expl, "fixed_point_residual": fp, "mass_error": mass,
            "mass_tol": mass_tolerance(L.dtype, H, S, A), "saturated": saturated}  # fmt: skip


def omd_status(ok_code, diag, *finite_trees):
    """The status of an OMD outcome: ``nonfinite`` > ``diverged`` > ``mass_not_conserved`` >
    ``ok_code`` (``successful`` or ``max_iterations``)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(finite_trees)]
    leaves.append(jnp.isfinite(diag["exploitability"]))
    finite = jnp.all(jnp.stack(leaves))
    status = jnp.where(diag["mass_error"] > diag["mass_tol"], RESULTS.mass_not_conserved.code,
                       ok_code)  # fmt: skip
    status = jnp.where(diag["saturated"], RESULTS.diverged.code, status)
    return jnp.where(finite, status, RESULTS.nonfinite.code)


def _final(game, theta, zeta, tau, eta):
    pi, logpi = policy_from_logits(zeta, game.action_mask)
    L, dyn = rollout(game, pi, theta)
    return pi, L, equilibrium_diagnostics(game, dyn, pi, logpi, L, zeta, tau, eta)


def _result(game, theta, zeta, tau, eta, iterations, ok_code, trace, trace_iters):
    pi, L, diag = _final(game, theta, zeta, tau, eta)
    status = omd_status(ok_code, diag, zeta)
    return OMDResult(pi, L, zeta, diag["exploitability"], iterations, status, trace, trace_iters,
                     diag["mass_error"])  # fmt: skip


@partial(jax.jit, static_argnames=("iters", "trace_every"))
def _solve_fixed(game, theta, zeta0, tau, eta, iters: int, trace_every: int):
    args = (game, theta, tau, eta)
    loop = Unrolled()
    if trace_every > 0:
        blocks, rest = divmod(iters, trace_every)

        def block(z, _):
            z = loop.steps(omd_step, z, args, trace_every)
            return z, _final(game, theta, z, tau, eta)[2]["exploitability"]

        zeta, trace = lax.scan(block, zeta0, None, length=blocks)
        zeta = loop.steps(omd_step, zeta, args, rest)
        trace_iters = trace_every * jnp.arange(1, blocks + 1)
    else:
        zeta = loop.steps(omd_step, zeta0, args, iters)
        trace = jnp.zeros((0,), zeta0.dtype)
        trace_iters = jnp.zeros((0,), jnp.int32)
    ok = jnp.asarray(RESULTS.max_iterations.code)
    return _result(game, theta, zeta, tau, eta, jnp.asarray(iters), ok, trace, trace_iters)


@partial(jax.jit, static_argnames=("iters", "check_every"))
def _solve_tol(game, theta, zeta0, tau, eta, tol, iters: int, check_every: int):
    n_checks = math.ceil(iters / check_every)
    trace0 = jnp.full((n_checks,), jnp.inf, zeta0.dtype)
    args = (game, theta, tau, eta)

    def expl_at(z):
        return _final(game, theta, z, tau, eta)[2]["exploitability"]

    def cond(state):
        _, t, e, k, _ = state
        return (t < iters) & (jnp.abs(e) > tol) & jnp.isfinite(e)

    def body(state):
        z, t, _, k, trace = state
        n = jnp.minimum(check_every, iters - t)
        z = Unrolled().steps(omd_step, z, args, n)
        e = expl_at(z)
        return z, t + n, e, k + 1, trace.at[k].set(e)

    zeta, t, e, k, trace = lax.while_loop(cond, body, (zeta0, 0, expl_at(zeta0), 0, trace0))
    ok = jnp.where(jnp.abs(e) <= tol, RESULTS.successful.code, RESULTS.max_iterations.code)
    trace_iters = jnp.minimum(check_every * jnp.arange(1, n_checks + 1), iters)
    return _result(game, theta, zeta, tau, eta, t, ok, trace, trace_iters), k


def initial_logits(game: MeanFieldGame, zeta0=None):
    """OMD's starting logits: zeros (the uniform policy) or ``zeta0`` checked for shape
    ``(H, S, A)``, in the game's dtype (:attr:`mfid.MeanFieldGame.dtype`)."""
    dtype = game.dtype
    shape = (game.horizon, game.num_states, game.num_actions)
    if zeta0 is None:
        return jnp.zeros(shape, dtype)
    zeta0 = jnp.asarray(zeta0, dtype)
    if zeta0.shape != shape:
        raise ValueError(f"zeta0 must have shape (H, S, A) = {shape}, got {zeta0.shape}")
    return zeta0


def check_omd_args(tau, eta, iters, name_prefix: str = "") -> int:
    """Raise ``ValueError`` for ``tau < 0``, ``eta <= 0`` or a non-positive iteration count;
    returns ``iters`` as an int."""
    p = name_prefix
    check_positive(tau, f"{p}tau", allow_zero=True)
    check_positive(eta, f"{p}eta")
    return check_count(iters, f"{p}iters")


def solve_omd(
    game: MeanFieldGame,
    theta=None,
    *,
    tau: float = 1e-3,
    eta: float = 10.0,
    iters: int = 400,
    tol: float | None = None,
    check_every: int = 10,
    trace_every: int = 0,
    zeta0=None,
    throw: bool = False,
) -> OMDResult:
    """Run OMD on ``game`` at parameters ``theta``.

    With ``tol=None`` it takes exactly ``iters`` steps (one ``lax.scan``; status
    ``max_iterations``) and records the exploitability every ``trace_every`` steps if
    ``trace_every > 0``. With a tolerance it stops as soon as ``|exploitability|`` (checked every
    ``check_every`` steps) is ``<= tol`` (status ``successful``), or after ``iters`` steps
    (``max_iterations``). ``zeta0`` warm-starts the logits (default zeros: the uniform policy).
    Non-finite iterates, divergence and a flow that does not conserve mass are reported in the
    status; ``throw=True`` raises ``ValueError`` for them (and for an unreached ``tol``).
    """
    iters = check_omd_args(tau, eta, iters)
    trace_every = check_count(trace_every, "trace_every", 0)
    check_every = check_count(check_every, "check_every")
    if tol is not None:
        check_positive(tol, "tol", allow_zero=True)
    check_theta(theta)
    game.validate(theta)
    zeta0 = initial_logits(game, zeta0)
    dtype = zeta0.dtype
    if tol is not None and float(tol) < _RESOLVABLE * float(jnp.finfo(dtype).eps):
        raise ValueError(
            f"tol={tol:g} is below what {jnp.dtype(dtype).name} can resolve (exploitability is "
            f"computed to about {_RESOLVABLE * float(jnp.finfo(dtype).eps):.1e}): compute in "
            "float64 or raise tol"
        )
    tau_ = jnp.asarray(tau, dtype)
    eta_ = jnp.asarray(eta, dtype)
    if tol is None:
        res = _solve_fixed(game, theta, zeta0, tau_, eta_, iters, trace_every)
    else:
        res, k = _solve_tol(game, theta, zeta0, tau_, eta_, jnp.asarray(tol, dtype), iters,
                            check_every)  # fmt: skip
        k = int(k)
        res = res.replace(trace=res.trace[:k], trace_iters=res.trace_iters[:k])
    if throw:
        raise_for_status(res.status, "solve_omd", allow_max_iterations=tol is None)
    return res


_solve_tol_batch = jax.jit(
    jax.vmap(_solve_tol.__wrapped__, in_axes=(None, 0, None, None, None, None, None, None)),
    static_argnames=("iters", "check_every"),
)


def solve_omd_batch(
    game: MeanFieldGame,
    thetas,
    *,
    tau: float = 1e-3,
    eta: float = 10.0,
    iters: int = 400,
    tol: float,
    check_every: int = 10,
) -> list[OMDResult]:
    """:func:`solve_omd` to tolerance ``tol`` at every parameter of the stacked ``thetas``
    (leading axis) as one batched program: each member stops at its own iteration (its state is
    frozen once it converged), so result ``i`` is ``solve_omd(game, thetas[i], ..., tol=tol)``
    up to floating-point reassociation. One OMD step costs about as much for a batch as for one
    member on a CPU (the step is a chain of small kernels), so solving ``n`` equilibria this way
    is up to ``n`` times faster than one after another.

    Example::

        import jax.numpy as jnp
        from mfid import BeachBar
        from solvers import solve_omd_batch
        game = BeachBar.create(num_states=6, horizon=3)
        rs = solve_omd_batch(game, jnp.zeros((2, 6)), tau=0.5, eta=0.5, iters=2000, tol=1e-10)
        [r.status_name for r in rs]   # ['successful', 'successful']
    """
    iters = check_omd_args(tau, eta, iters)
    check_every = check_count(check_every, "check_every")
    check_positive(tol, "tol", allow_zero=True)
    check_theta(thetas, "thetas")
    leaves = jax.tree_util.tree_leaves(thetas)
    if not leaves:
        raise ValueError("thetas must be a non-empty pytree of stacked arrays")
    num = int(jnp.shape(leaves[0])[0])
    first = jax.tree_util.tree_map(lambda x: x[0], thetas)
    game.validate(first)
    zeta0 = initial_logits(game)
    dtype = zeta0.dtype
    if float(tol) < _RESOLVABLE * float(jnp.finfo(dtype).eps):
        raise ValueError(
            f"tol={tol:g} is below what {jnp.dtype(dtype).name} can resolve: compute in "
            "float64 or raise tol"
        )
    thetas = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), thetas)
    res, k = _solve_tol_batch(game, thetas, zeta0, jnp.asarray(tau, dtype),
                              jnp.asarray(eta, dtype), jnp.asarray(tol, dtype), iters,
                              check_every)  # fmt: skip
    res, k = jax.device_get((res, k))
    out = []
    for i in range(num):
        r = jax.tree_util.tree_map(lambda x, i=i: jnp.asarray(x[i]), res)
        ki = int(k[i])
        out.append(r.replace(trace=r.trace[:ki], trace_iters=r.trace_iters[:ki]))
    return out
