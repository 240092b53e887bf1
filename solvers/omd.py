"""Online mirror descent for the entropy-regularised MF-NE (SPEC section 2).

Iterates on logits ``zeta in R^{H x S x A}`` from ``zeta_0 = 0`` (the uniform policy)::

    zeta_{t+1} = (1 - eta tau) zeta_t + eta q^tau( Lambda(softmax zeta_t | theta), softmax zeta_t, theta )

Its fixed point ``zeta* = q^tau / tau`` gives the regularised MF-NE ``pi* = softmax(q^tau / tau)``
(Perolat et al., "Scaling up mean field games with online mirror descent", 2022).

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
import numpy as np
from flax import struct
from jax import lax

from mfid.flow import rollout
from mfid.checks import check_theta, is_concrete
from mfid.game import MeanFieldGame
from mfid.values import _exploitability_from, evaluate_policy

__all__ = [
    "STATUS_NAMES",
    "OMDResult",
    "check_omd_args",
    "initial_logits",
    "omd_update",
    "policy_from_logits",
    "solve_omd",
]

CONVERGED, MAX_ITERATIONS, NONFINITE = 0, 1, 2
STATUS_NAMES = {CONVERGED: "converged", MAX_ITERATIONS: "max_iterations", NONFINITE: "nonfinite"}


@struct.dataclass
class OMDResult:
    """Outcome of :func:`solve_omd`.

    ``policy``/``flow``/``logits``: ``(H, S, A)``; ``exploitability``: scalar at the returned
    policy; ``iterations``: OMD steps taken; ``status``: 0 converged, 1 max-iterations,
    2 non-finite; ``trace``: exploitability after every ``trace_every`` (or ``check_every``)
    steps, ``trace_iters`` the matching iteration counts.
    """

    policy: jnp.ndarray
    flow: jnp.ndarray
    logits: jnp.ndarray
    exploitability: jnp.ndarray
    iterations: jnp.ndarray
    status: jnp.ndarray
    trace: jnp.ndarray
    trace_iters: jnp.ndarray

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[int(self.status)]

    @property
    def converged(self) -> bool:
        return int(self.status) == CONVERGED


def policy_from_logits(zeta):
    """``(softmax(zeta), log_softmax(zeta))`` over the last axis with one ``exp`` per entry."""
    shifted = zeta - lax.stop_gradient(jnp.max(zeta, axis=-1, keepdims=True))
    e = jnp.exp(shifted)
    total = jnp.sum(e, axis=-1, keepdims=True)
    return e / total, shifted - jnp.log(total)


def omd_update(game: MeanFieldGame, theta, zeta, tau, eta):
    """One OMD step ``zeta <- (1 - eta tau) zeta + eta q^tau(Lambda(pi), pi)``, ``pi = softmax(zeta)``.

    Shapes: ``zeta (H, S, A)``; returns the new logits of the same shape.
    """
    pi, logpi = policy_from_logits(zeta)
    _, dyn = rollout(game, pi, theta)
    q, _ = evaluate_policy(dyn, pi, tau, logpi)
    return (1.0 - eta * tau) * zeta + eta * q


def _final(game, theta, zeta, tau):
    pi, logpi = policy_from_logits(zeta)
    L, dyn = rollout(game, pi, theta)
    return pi, L, _exploitability_from(game, dyn, pi, tau, logpi)


def _steps(game, theta, zeta, tau, eta, n: int):
    if n == 0:
        return zeta
    return lax.scan(
        lambda z, _: (omd_update(game, theta, z, tau, eta), None), zeta, None, length=n
    )[0]


@partial(jax.jit, static_argnames=("iters", "trace_every"))
def _solve_fixed(game, theta, zeta0, tau, eta, iters: int, trace_every: int):
    if trace_every > 0:
        blocks, rest = divmod(iters, trace_every)

        def block(z, _):
            z = _steps(game, theta, z, tau, eta, trace_every)
            return z, _final(game, theta, z, tau)[2]

        zeta, trace = lax.scan(block, zeta0, None, length=blocks)
        zeta = _steps(game, theta, zeta, tau, eta, rest)
        trace_iters = trace_every * jnp.arange(1, blocks + 1)
    else:
        zeta = _steps(game, theta, zeta0, tau, eta, iters)
        trace = jnp.zeros((0,), zeta0.dtype)
        trace_iters = jnp.zeros((0,), jnp.int32)
    pi, L, expl = _final(game, theta, zeta, tau)
    finite = jnp.all(jnp.isfinite(zeta)) & jnp.isfinite(expl)
    status = jnp.where(finite, MAX_ITERATIONS, NONFINITE)
    return OMDResult(pi, L, zeta, expl, jnp.asarray(iters), status, trace, trace_iters)


@partial(jax.jit, static_argnames=("iters", "check_every"))
def _solve_tol(game, theta, zeta0, tau, eta, tol, iters: int, check_every: int):
    n_checks = math.ceil(iters / check_every)
    trace0 = jnp.full((n_checks,), jnp.inf, zeta0.dtype)

    def cond(state):
        _, t, e, k, _ = state
        return (t < iters) & (e > tol) & jnp.isfinite(e)

    def body(state):
        z, t, _, k, trace = state
        n = jnp.minimum(check_every, iters - t)
        z = lax.fori_loop(0, n, lambda _, z: omd_update(game, theta, z, tau, eta), z)
        e = _final(game, theta, z, tau)[2]
        return z, t + n, e, k + 1, trace.at[k].set(e)

    e0 = _final(game, theta, zeta0, tau)[2]
    zeta, t, _, k, trace = lax.while_loop(cond, body, (zeta0, 0, e0, 0, trace0))
    pi, L, expl = _final(game, theta, zeta, tau)
    finite = jnp.all(jnp.isfinite(zeta)) & jnp.isfinite(expl)
    status = jnp.where(~finite, NONFINITE, jnp.where(expl <= tol, CONVERGED, MAX_ITERATIONS))
    trace_iters = jnp.minimum(check_every * jnp.arange(1, n_checks + 1), iters)
    return OMDResult(pi, L, zeta, expl, t, status, trace, trace_iters), k


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


def check_omd_args(tau, eta, iters, name_prefix: str = "") -> None:
    """Raise ``ValueError`` for ``tau < 0``, ``eta <= 0`` or a non-positive iteration count."""
    p = name_prefix
    if is_concrete(tau) and not (np.isfinite(float(tau)) and float(tau) >= 0):
        raise ValueError(f"{p}tau must be a finite number >= 0, got {tau!r}")
    if is_concrete(eta) and not (np.isfinite(float(eta)) and float(eta) > 0):
        raise ValueError(f"{p}eta must be a finite number > 0, got {eta!r}")
    if not isinstance(iters, (int, np.integer)) or isinstance(iters, bool) or iters <= 0:
        raise ValueError(f"{p}iters must be a positive integer, got {iters!r}")


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
) -> OMDResult:
    """Run OMD on ``game`` at parameters ``theta``.

    With ``tol=None`` it takes exactly ``iters`` steps (one ``lax.scan``) and records the
    exploitability every ``trace_every`` steps if ``trace_every > 0``. With a tolerance it stops
    as soon as the exploitability (checked every ``check_every`` steps) is ``<= tol``, or after
    ``iters`` steps. ``zeta0`` warm-starts the logits (default zeros: the uniform policy).
    The status reports ``nonfinite`` if the iterate or its exploitability stops being finite.
    """
    check_omd_args(tau, eta, iters)
    if not isinstance(trace_every, (int, np.integer)) or trace_every < 0:
        raise ValueError(f"trace_every must be an integer >= 0, got {trace_every!r}")
    if not isinstance(check_every, (int, np.integer)) or check_every <= 0:
        raise ValueError(f"check_every must be a positive integer, got {check_every!r}")
    if tol is not None and not (float(tol) >= 0):
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    check_theta(theta)
    game.validate(theta)
    zeta0 = initial_logits(game, zeta0)
    dtype = zeta0.dtype
    tau_ = jnp.asarray(tau, dtype)
    eta_ = jnp.asarray(eta, dtype)
    if tol is None:
        return _solve_fixed(game, theta, zeta0, tau_, eta_, int(iters), int(trace_every))
    res, k = _solve_tol(
        game, theta, zeta0, tau_, eta_, jnp.asarray(tol, dtype), int(iters), int(check_every)
    )
    k = int(k)
    return res.replace(trace=res.trace[:k], trace_iters=res.trace_iters[:k])
