"""Incentive design on static games: the social-gradient designer and the hypergradient designer
(Vasileiou, Zhang, Zhang 2026).

A static game (:mod:`mfid.games.static`) is its pseudo-gradient ``F`` and the planner's social
cost ``S``; under the tax ``p`` the agents settle at ``x*(p)`` with ``F(x*(p)) + p = 0`` and the
planner pays ``Phi(p) = S(x*(p))``. Three designers move ``p``; ``Pi`` is the projection onto a
compact safe set ``P_c`` (:class:`Box`, :class:`Ball`, or ``None`` for ``R^n``):

* **Social-gradient flow** ``dp/dt = k grad S(x*(p))``, integrated by projected explicit Euler
  with the step ``h`` (one equilibrium solve per step)::

      p_{j+1} = Pi( p_j + h k grad S(x*(p_j)) )

  For strongly monotone ``F``, ``grad S(x*(p))`` is a descent direction of ``Phi``:
  ``<grad Phi(p), grad S(x*(p))> = -grad S^T DF^{-1} grad S < 0`` (``DF + DF^T`` positive
  definite makes ``DF^{-1}`` positive definite too), and the flow's only rest point in the
  interior of ``P_c`` is ``p* = -F(x^s)``, ``x^s = argmin S``. On a non-monotone game the
  property can fail (:meth:`mfid.games.static.AffineGame.non_monotone`: the inner product is
  ``+8``). The planner needs only ``S`` and the observed joint action ``x*(p)``.

* **Two-timescale scheme**: the agents take one learning step, the planner one small step::

      x_{j+1} = rule(x_j, p_j; gamma)            (fast: gamma)
      p_{j+1} = Pi( p_j + beta grad S(x_j) )     (slow: beta << gamma)

  with a pluggable learning ``rule(game, x, p, gamma) -> x`` (:data:`LEARNING_RULES`): gradient
  play ``x - gamma (F(x) + p)``; damped best response ``x + gamma (BR(x, p) - x)`` (each
  coordinate's exact best response to the others, Jacobi style); entropic mirror descent on the
  simplex for games whose actions are distributions (``game.mass``). No equilibrium is ever
  solved. With ``beta / gamma`` small the pair tracks the flow; with a large ratio it can
  oscillate or diverge (the status says ``nonfinite``).

* **Hypergradient descent** (the information-rich comparison): ``grad Phi(p)`` by implicit
  differentiation through ``x*(p)`` (``jax.lax.custom_root``: ``dx*/dp = -DF(x*)^{-1}``, one
  linear solve with the game Jacobian), and an optax step (default ``optax.sgd``)::

      p_{j+1} = Pi( p_j + optax_update(grad Phi(p_j)) )

Equilibria ``x*(p)`` come from a damped Newton method (:func:`equilibrium`; dense Jacobians by
``jax.jacfwd``: these games have a handful of decisions) with a backtracking line search that
keeps the iterate where ``F`` is finite (the open simplex of a routing game). Every loop is one
jitted ``lax.while_loop``; progress is reported only through ``callback(step, metrics)``
(``jax.debug.callback`` every ``callback_every`` steps). Statuses use
:data:`solvers.results.RESULTS`: ``successful`` (converged to ``tol``), ``max_iterations``,
``nonfinite``.

Example::

    import jax
    import jax.numpy as jnp
    from mfid.games.static import AffineGame
    from solvers.social_gradient import social_gradient_flow, optimal_incentive
    game = AffineGame.random(jax.random.key(0), num_players=4)
    res = social_gradient_flow(game, jnp.zeros(4), step=0.3, steps=2000, tol=1e-11)
    p_star, _ = optimal_incentive(game)
    print(res.status, abs(res.p - p_star).max())
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax import lax

from mfid.checks import check_count, check_positive
from mfid.games.static import StaticGame
from solvers.results import RESULTS, HasStatus

__all__ = [
    "LEARNING_RULES",
    "Ball",
    "Box",
    "RootResult",
    "SocialDesignResult",
    "best_response",
    "descent_inner_product",
    "equilibrium",
    "equilibrium_map",
    "gradient_play",
    "hypergradient",
    "hypergradient_descent",
    "mirror_descent",
    "optimal_incentive",
    "planner_objective",
    "social_gradient_flow",
    "social_optimum",
    "two_timescale",
]

SUCCESSFUL = RESULTS.successful.code
MAX_ITERATIONS = RESULTS.max_iterations.code
NONFINITE = RESULTS.nonfinite.code

_BACKTRACK = 2.0 ** -jnp.arange(24)  # line-search step lengths 1, 1/2, ..., 2^-23


# --------------------------------------------------------------------------- root finding


@struct.dataclass
class RootResult(HasStatus):
    """A root of ``fun(x) = 0`` (an equilibrium ``F(x) + p = 0`` or a social optimum
    ``grad S(x) = 0``): ``x (n,)``, ``residual = ||fun(x)||_inf``, Newton ``iterations`` and a
    ``status`` code of :data:`solvers.results.RESULTS` (``successful``: residual ``<= tol``;
    ``max_iterations``: the budget ran out or the line search could not decrease the residual
    further; ``nonfinite``)."""

    x: jnp.ndarray
    residual: jnp.ndarray
    iterations: jnp.ndarray
    status: jnp.ndarray


def _newton(fun, x0, tol, max_iter: int) -> RootResult:
    """Damped Newton on ``fun(x) = 0``: ``dx = -J(x)^{-1} fun(x)``, the longest step
    ``2^-j dx`` whose residual is finite and decreases (Armijo, ``1e-4``)."""

    def norm(x):
        r = fun(x)
        return jnp.max(jnp.abs(r))

    def cond(state):
        _, r, k, stuck = state
        return (k < max_iter) & (r > tol) & jnp.isfinite(r) & ~stuck

    def body(state):
        x, r, k, _ = state
        J = jax.jacfwd(fun)(x)
        dx = -jnp.linalg.solve(J, fun(x))
        cand = jax.vmap(lambda t: norm(x + t * dx))(_BACKTRACK.astype(x.dtype))
        ok = jnp.isfinite(cand) & (cand <= (1.0 - 1e-4 * _BACKTRACK) * r)
        j = jnp.argmax(ok)
        found = jnp.any(ok) & jnp.all(jnp.isfinite(dx))
        x_new = jnp.where(found, x + _BACKTRACK[j].astype(x.dtype) * dx, x)
        return x_new, jnp.where(found, cand[j], r), k + 1, ~found

    r0 = norm(x0)
    x, r, k, _ = lax.while_loop(cond, body, (x0, r0, jnp.asarray(0), jnp.asarray(False)))
    finite = jnp.isfinite(r) & jnp.all(jnp.isfinite(x))
    status = jnp.where(~finite, NONFINITE, jnp.where(r <= tol, SUCCESSFUL, MAX_ITERATIONS))
    return RootResult(x, r, k, status)


def _dense_tangent_solve(g, y):
    """Solve the linear system ``g(z) = y`` (``g`` linear) with its dense Jacobian."""
    return jnp.linalg.solve(jax.jacfwd(g)(y), y)


def equilibrium_map(game: StaticGame, p, x0, tol=1e-12, max_iter: int = 50):
    """``(x*(p), RootResult)``, differentiable in ``p`` (and the game's parameters) by the
    implicit function theorem (``jax.lax.custom_root``)::

        F(x*(p)) + p = 0   =>   dx*/dp = -DF(x*)^{-1}

    ``x0`` is the warm start (not differentiated). Traceable; see :func:`equilibrium` for the
    checked entry point."""
    frozen_game, frozen_p = lax.stop_gradient((game, p))
    res = _newton(
        lambda x: frozen_game.pseudo_gradient(x) + frozen_p, lax.stop_gradient(x0), tol, max_iter
    )

    def f(x):
        return game.pseudo_gradient(x) + p

    # The root is found above without derivatives; custom_root attaches the implicit-function
    # derivative at it (its solve just returns the root it is given).
    x = lax.custom_root(f, res.x, lambda f, x: x, _dense_tangent_solve)
    return x, res


@partial(jax.jit, static_argnames=("max_iter",))
def _equilibrium(game, p, x0, tol, max_iter: int):
    return equilibrium_map(game, p, x0, tol, max_iter)[1]


def equilibrium(game: StaticGame, p, x0=None, *, tol: float = 1e-12, max_iter: int = 50):
    """The equilibrium ``x*(p)`` of the game under the tax ``p``: ``F(x) + p = 0`` by damped
    Newton from ``x0`` (default ``game.initial_action()``). Returns a :class:`RootResult`.

    Example::

        res = equilibrium(Cournot.create(), jnp.zeros(5))
        res.x, res.residual, res.status_name      # ..., ~1e-15, 'successful'
    """
    p = game.check_action(p, "p")
    x0 = game.initial_action() if x0 is None else game.check_action(x0, "x0")
    check_positive(tol, "tol")
    max_iter = check_count(max_iter, "max_iter")
    return _equilibrium(game, p, x0, jnp.asarray(tol, p.dtype), max_iter)


@partial(jax.jit, static_argnames=("max_iter",))
def _social_optimum(game, x0, tol, max_iter: int):
    return _newton(game.social_gradient, x0, tol, max_iter)


def social_optimum(game: StaticGame, x0=None, *, tol: float = 1e-12, max_iter: int = 100):
    """``x^s = argmin S`` by damped Newton on ``grad S(x) = 0`` (``S`` convex); a
    :class:`RootResult`."""
    x0 = game.initial_action() if x0 is None else game.check_action(x0, "x0")
    check_positive(tol, "tol")
    max_iter = check_count(max_iter, "max_iter")
    return _social_optimum(game, x0, jnp.asarray(tol, x0.dtype), max_iter)


def optimal_incentive(game: StaticGame, x0=None, *, tol: float = 1e-12, max_iter: int = 100):
    """``(p*, RootResult of x^s)`` with the optimal incentive ``p* = -F(x^s)``: the tax under
    which the social optimum is the equilibrium."""
    opt = social_optimum(game, x0, tol=tol, max_iter=max_iter)
    return -game.pseudo_gradient(opt.x), opt


def planner_objective(game: StaticGame, p, x0=None, tol=1e-12, max_iter: int = 50):
    """``Phi(p) = S(x*(p))`` (traceable and differentiable in ``p``)."""
    x0 = game.initial_action() if x0 is None else x0
    x, _ = equilibrium_map(game, p, x0, tol, max_iter)
    return game.social_cost(x)


@partial(jax.jit, static_argnames=("max_iter",))
def _hypergradient(game, p, x0, tol, max_iter: int):
    def phi(p):
        x, res = equilibrium_map(game, p, x0, tol, max_iter)
        return game.social_cost(x), res

    (value, res), grad = jax.value_and_grad(phi, has_aux=True)(p)
    return value, grad, res


def hypergradient(game: StaticGame, p, x0=None, *, tol: float = 1e-12, max_iter: int = 50):
    """``(Phi(p), grad Phi(p), RootResult)``: the planner's cost and its gradient by implicit
    differentiation, ``grad Phi(p) = -DF(x*)^{-T} grad S(x*)``."""
    p = game.check_action(p, "p")
    x0 = game.initial_action() if x0 is None else game.check_action(x0, "x0")
    check_positive(tol, "tol")
    max_iter = check_count(max_iter, "max_iter")
    return _hypergradient(game, p, x0, jnp.asarray(tol, p.dtype), max_iter)


def descent_inner_product(game: StaticGame, p, x0=None, *, tol: float = 1e-12):
    """``<grad Phi(p), grad S(x*(p))>``: negative where the social gradient is a descent
    direction of the planner's cost (every ``p`` of a strongly monotone game)."""
    _, grad, res = hypergradient(game, p, x0, tol=tol)
    return jnp.vdot(grad, game.social_gradient(res.x))


# --------------------------------------------------------------------------- learning rules


def gradient_play(game: StaticGame, x, p, gamma):
    """Gradient play: every player descends its own incentivised cost,
    ``x <- x - gamma (F(x) + p)``."""
    return x - gamma * (game.pseudo_gradient(x) + p)


def _coordinate_best_response(game, x, p, i, iters: int):
    """The root ``y`` of ``F_i(x_1, .., y, .., x_n) + p_i = 0`` (player ``i``'s best response
    when ``J_i`` is convex in ``x_i``) by damped scalar Newton from ``x_i``."""

    def fun(y):
        return (game.pseudo_gradient(x.at[i].set(y[0]))[i] + p[i])[None]

    tol = jnp.asarray(100 * jnp.finfo(x.dtype).eps, x.dtype)
    return _newton(fun, x[i][None], tol, iters).x[0]


def best_response(game: StaticGame, x, p, gamma, *, newton_iters: int = 20):
    """Damped (Jacobi) best response, ``x <- x + gamma (BR(x, p) - x)``: each player's exact best
    response to the others' current actions (``gamma = 1``: simultaneous best responses; an
    affine game's best response is one Newton step). Converges for small ``gamma`` on strongly
    monotone games (``diag(DF)^{-1} DF`` has eigenvalues with positive real parts)."""
    br = jax.vmap(lambda i: _coordinate_best_response(game, x, p, i, newton_iters))(
        jnp.arange(x.shape[0])
    )
    return x + gamma * (br - x)


def mirror_descent(game: StaticGame, x, p, gamma):
    """Entropic mirror descent on the simplex of mass ``m = game.mass`` (actions are
    distributions over the ``n`` options and the outside option of reduced cost 0)::

        y = (x, m - sum x),   y <- m softmax(log y - gamma (F(x) + p, 0))

    Its interior fixed points are exactly ``F(x) + p = 0``. Needs ``game.mass``."""
    if game.mass is None:
        raise ValueError(
            "rule: mirror descent needs a game whose actions are distributions (game.mass), "
            f"{type(game).__name__} has none"
        )
    m = game.mass
    y = jnp.concatenate([x, (m - jnp.sum(x))[None]])
    g = jnp.concatenate([game.pseudo_gradient(x) + p, jnp.zeros((1,), x.dtype)])
    return (m * jax.nn.softmax(jnp.log(y) - gamma * g))[:-1]


LEARNING_RULES: dict[str, Callable] = {
    "gradient": gradient_play,
    "best-response": best_response,
    "mirror": mirror_descent,
}
"""Agent learning rules by name, each ``rule(game, x, p, gamma) -> x``."""


def _rule(rule, game) -> Callable:
    if isinstance(rule, str):
        if rule not in LEARNING_RULES:
            raise ValueError(
                f"rule must be one of {tuple(LEARNING_RULES)} or a callable, got {rule!r}"
            )
        rule = LEARNING_RULES[rule]
    if not callable(rule):
        raise ValueError(f"rule must be one of {tuple(LEARNING_RULES)} or a callable, got {rule!r}")
    if rule is mirror_descent and game.mass is None:
        mirror_descent(game, game.initial_action(), game.initial_action(), 0.0)  # raises
    return rule


# --------------------------------------------------------------------------- safe sets


@struct.dataclass
class Box:
    """The box ``{p : lower <= p <= upper}`` (elementwise); ``project`` clips."""

    lower: jnp.ndarray
    upper: jnp.ndarray

    @classmethod
    def create(cls, lower, upper, num_players: int | None = None) -> Box:
        lo, hi = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        if num_players is not None:
            lo, hi = np.broadcast_to(lo, (num_players,)), np.broadcast_to(hi, (num_players,))
        if lo.shape != hi.shape:
            raise ValueError(f"lower and upper must have one shape, got {lo.shape} and {hi.shape}")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError("lower and upper must be finite (P_c is compact)")
        if np.any(lo > hi):
            raise ValueError("lower must be <= upper")
        dt = jnp.result_type(float)
        return cls(jnp.asarray(lo, dt), jnp.asarray(hi, dt))

    def project(self, p):
        return jnp.clip(p, self.lower, self.upper)


@struct.dataclass
class Ball:
    """The Euclidean ball ``{p : ||p - center|| <= radius}``; ``project`` rescales."""

    center: jnp.ndarray
    radius: jnp.ndarray

    @classmethod
    def create(cls, center, radius) -> Ball:
        c = np.asarray(center, dtype=float)
        if c.ndim != 1 or not np.all(np.isfinite(c)):
            raise ValueError("center must be a finite vector")
        check_positive(radius, "radius")
        dt = jnp.result_type(float)
        return cls(jnp.asarray(c, dt), jnp.asarray(radius, dt))

    def project(self, p):
        d = p - self.center
        n = jnp.sqrt(jnp.sum(d**2))
        return self.center + d * jnp.minimum(1.0, self.radius / jnp.maximum(n, 1e-300))


def _project(safe_set, p):
    return p if safe_set is None else safe_set.project(p)


def _check_safe_set(safe_set, n: int) -> None:
    if safe_set is None:
        return
    if not isinstance(safe_set, (Box, Ball)):
        raise ValueError(f"safe_set must be a Box, a Ball or None, got {type(safe_set).__name__}")
    shape = (safe_set.lower if isinstance(safe_set, Box) else safe_set.center).shape
    if shape != (n,):
        raise ValueError(f"safe_set must have dimension {n}, got shape {shape}")


# --------------------------------------------------------------------------- designers


@dataclasses.dataclass(frozen=True)
class SocialDesignResult:
    """Outcome of a static-game designer.

    ``p``: final incentive; ``x``: the exact equilibrium ``x*(p)`` (solved after the loop);
    ``objective``: ``S(x*(p))`` there. Traces (one entry per ``record_every`` iterations, the
    last iterate of each block): ``trace_iterations``, ``trace_objective`` (the planner's cost
    at the iterate: ``S(x*(p_j))`` for the flow and the hypergradient, ``S(x_j)`` of the
    agents' current play for the two-timescale scheme), ``trace_p`` (``(records, n)``).
    ``iterations``: steps taken; ``stationarity``: ``||p_{j+1} - p_j|| / step`` at the end;
    ``equilibrium_solves`` (two-timescale: 0), ``newton_iterations`` (all equilibrium solves
    together), ``agent_steps`` (two-timescale learning steps), ``status`` (a
    :data:`~solvers.results.RESULTS` name), ``seconds`` (wall time, compilation included).
    """

    method: str
    p: np.ndarray
    x: np.ndarray
    objective: float
    equilibrium_residual: float
    stationarity: float
    iterations: int
    equilibrium_solves: int
    newton_iterations: int
    agent_steps: int
    status: str
    seconds: float
    trace_iterations: np.ndarray
    trace_objective: np.ndarray
    trace_p: np.ndarray
    settings: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return RESULTS.is_ok(getattr(RESULTS, self.status).code)


def _maybe_callback(callback, every: int, k, metrics) -> None:
    if callback is None:
        return
    lax.cond(
        (k % every) == 0,
        lambda: jax.debug.callback(callback, k, metrics),
        lambda: None,
    )


def _records(steps: int, record_every: int, n: int, dtype):
    m = steps // record_every + 1
    return (
        jnp.full((m,), -1, jnp.int32),
        jnp.full((m,), jnp.nan, dtype),
        jnp.full((m, n), jnp.nan, dtype),
    )


def _record(rec, k, record_every: int, objective, p):
    it, obj, ps = rec
    j = k // record_every
    return it.at[j].set(k), obj.at[j].set(objective), ps.at[j].set(p)


def _status(stationarity, tol, finite):
    return jnp.where(~finite, NONFINITE, jnp.where(stationarity <= tol, SUCCESSFUL, MAX_ITERATIONS))


@partial(
    jax.jit,
    static_argnames=("steps", "eq_max_iter", "record_every", "callback", "callback_every"),
)
def _flow_loop(
    game,
    p0,
    x0,
    safe_set,
    scale,
    tol,
    eq_tol,
    *,
    steps,
    eq_max_iter,
    record_every,
    callback,
    callback_every,
):
    n = p0.shape[0]
    rec0 = _records(steps, record_every, n, p0.dtype)

    def cond(state):
        k, _, _, _, stat, finite, _ = state
        return (k < steps) & (stat > tol) & finite

    def body(state):
        k, p, x, newton, _, _, rec = state
        x, res = equilibrium_map(game, p, x, eq_tol, eq_max_iter)
        g = game.social_gradient(x)
        p_new = _project(safe_set, p + scale * g)
        stat = jnp.sqrt(jnp.sum((p_new - p) ** 2)) / scale
        value = game.social_cost(x)
        finite = (res.status != NONFINITE) & jnp.isfinite(value) & jnp.all(jnp.isfinite(p_new))
        rec = _record(rec, k, record_every, value, p)
        _maybe_callback(callback, callback_every, k, {"objective": value, "stationarity": stat})
        p_next = jnp.where(finite & (stat > tol), p_new, p)
        return k + 1, p_next, x, newton + res.iterations, stat, finite, rec

    state = (jnp.asarray(0), p0, x0, jnp.asarray(0), jnp.asarray(jnp.inf, p0.dtype), True, rec0)
    k, p, x, newton, stat, finite, rec = lax.while_loop(cond, body, state)
    return p, x, k, newton, stat, finite, rec


@partial(
    jax.jit,
    static_argnames=("rule", "steps", "record_every", "callback", "callback_every"),
)
def _two_timescale_loop(
    game,
    p0,
    x0,
    safe_set,
    gamma,
    beta,
    tol,
    *,
    rule,
    steps,
    record_every,
    callback,
    callback_every,
):
    n = p0.shape[0]
    rec0 = _records(steps, record_every, n, p0.dtype)

    def cond(state):
        k, _, _, stat, finite, _ = state
        return (k < steps) & (stat > tol) & finite

    def body(state):
        k, p, x, _, _, rec = state
        g = game.social_gradient(x)
        x_new = rule(game, x, p, gamma)
        p_new = _project(safe_set, p + beta * g)
        gap = jnp.max(jnp.abs(game.pseudo_gradient(x) + p))
        stat = jnp.maximum(jnp.sqrt(jnp.sum((p_new - p) ** 2)) / beta, gap)
        value = game.social_cost(x)
        finite = jnp.isfinite(stat) & jnp.isfinite(value)
        finite = finite & jnp.all(jnp.isfinite(x_new)) & jnp.all(jnp.isfinite(p_new))
        rec = _record(rec, k, record_every, value, p)
        _maybe_callback(
            callback,
            callback_every,
            k,
            {"objective": value, "stationarity": stat, "equilibrium_gap": gap},
        )
        move = finite & (stat > tol)
        return (
            k + 1,
            jnp.where(move, p_new, p),
            jnp.where(move, x_new, x),
            stat,
            finite,
            rec,
        )

    state = (jnp.asarray(0), p0, x0, jnp.asarray(jnp.inf, p0.dtype), True, rec0)
    k, p, x, stat, finite, rec = lax.while_loop(cond, body, state)
    return p, x, k, stat, finite, rec


@partial(
    jax.jit,
    static_argnames=(
        "optimizer",
        "steps",
        "eq_max_iter",
        "record_every",
        "callback",
        "callback_every",
    ),
)
def _hypergradient_loop(
    game,
    p0,
    x0,
    safe_set,
    scale,
    tol,
    eq_tol,
    *,
    optimizer,
    steps,
    eq_max_iter,
    record_every,
    callback,
    callback_every,
):
    n = p0.shape[0]
    rec0 = _records(steps, record_every, n, p0.dtype)

    def phi(p, x):
        x, res = equilibrium_map(game, p, x, eq_tol, eq_max_iter)
        return game.social_cost(x), (x, res)

    def cond(state):
        k, _, _, _, _, stat, finite, _ = state
        return (k < steps) & (stat > tol) & finite

    def body(state):
        k, p, x, opt_state, newton, _, _, rec = state
        (value, (x, res)), grad = jax.value_and_grad(phi, has_aux=True)(p, x)
        updates, new_opt_state = optimizer.update(grad, opt_state, p)
        p_new = _project(safe_set, optax.apply_updates(p, updates))
        stat = jnp.sqrt(jnp.sum((p_new - p) ** 2)) / scale
        finite = (res.status != NONFINITE) & jnp.isfinite(value) & jnp.all(jnp.isfinite(p_new))
        rec = _record(rec, k, record_every, value, p)
        _maybe_callback(
            callback,
            callback_every,
            k,
            {"objective": value, "stationarity": stat, "grad_norm": jnp.sqrt(jnp.sum(grad**2))},
        )
        move = finite & (stat > tol)
        opt_state = jax.tree_util.tree_map(
            lambda a, b: jnp.where(move, a, b), new_opt_state, opt_state
        )
        return (
            k + 1,
            jnp.where(move, p_new, p),
            x,
            opt_state,
            newton + res.iterations,
            stat,
            finite,
            rec,
        )

    state = (
        jnp.asarray(0),
        p0,
        x0,
        optimizer.init(p0),
        jnp.asarray(0),
        jnp.asarray(jnp.inf, p0.dtype),
        True,
        rec0,
    )
    k, p, x, _, newton, stat, finite, rec = lax.while_loop(cond, body, state)
    return p, x, k, newton, stat, finite, rec


def _prepare(game, p0, x0, safe_set, steps, tol, record_every, callback_every):
    if not isinstance(game, StaticGame):
        raise ValueError(f"game must be a StaticGame, got {type(game).__name__}")
    n = game.num_players
    p0 = game.check_action(p0, "p0")
    x0 = game.initial_action() if x0 is None else game.check_action(x0, "x0")
    _check_safe_set(safe_set, n)
    check_count(steps, "steps")
    check_positive(tol, "tol", allow_zero=True)
    check_count(record_every, "record_every")
    check_count(callback_every, "callback_every")
    return _project(safe_set, p0), x0


def _finish(
    method,
    game,
    p,
    x,
    k,
    newton,
    stat,
    finite,
    rec,
    eq_tol,
    eq_max_iter,
    t0,
    tol,
    agent_steps=0,
    solves=None,
    settings=None,
):
    """Solve the final equilibrium exactly, trim the traces, build the result."""
    it, obj, ps = (np.asarray(r) for r in rec)
    keep = it >= 0
    final = equilibrium(
        game, p, x if np.all(np.isfinite(np.asarray(x))) else None, tol=eq_tol, max_iter=eq_max_iter
    )
    finite = bool(finite) and final.status_name != "nonfinite"
    value = float(game.social_cost(final.x)) if finite else float("nan")
    status = RESULTS.name(_status(stat, tol, jnp.asarray(finite)))
    k = int(k)
    return SocialDesignResult(
        method=method,
        p=np.asarray(p),
        x=np.asarray(final.x),
        objective=value,
        equilibrium_residual=float(final.residual),
        stationarity=float(stat),
        iterations=k,
        equilibrium_solves=k if solves is None else solves,
        newton_iterations=int(newton),
        agent_steps=int(agent_steps),
        status=status,
        seconds=time.perf_counter() - t0,
        trace_iterations=it[keep],
        trace_objective=obj[keep],
        trace_p=ps[keep],
        settings=settings or {},
    )


def social_gradient_flow(
    game: StaticGame,
    p0,
    *,
    rate: float = 1.0,
    step: float = 0.1,
    steps: int = 10_000,
    tol: float = 1e-11,
    safe_set: Box | Ball | None = None,
    x0=None,
    eq_tol: float = 1e-12,
    eq_max_iter: int = 50,
    record_every: int = 1,
    callback: Callable[[Any, dict], None] | None = None,
    callback_every: int = 100,
) -> SocialDesignResult:
    """Integrate the social-gradient flow ``dp/dt = rate grad S(x*(p))`` by projected explicit
    Euler with step ``step``: ``p <- Pi(p + step rate grad S(x*(p)))`` from ``p0`` (projected
    onto ``safe_set`` first), each ``x*(p)`` solved by Newton warm-started at the previous one.
    Stops when ``||p_{j+1} - p_j|| / (step rate) <= tol`` (``successful``) or after ``steps``.

    Example::

        res = social_gradient_flow(Cournot.create(), jnp.zeros(5), step=0.5, steps=500)
        res.p, res.objective, res.equilibrium_solves
    """
    check_positive(rate, "rate")
    check_positive(step, "step")
    check_positive(eq_tol, "eq_tol")
    check_count(eq_max_iter, "eq_max_iter")
    p0, x0 = _prepare(game, p0, x0, safe_set, steps, tol, record_every, callback_every)
    t0 = time.perf_counter()
    dt = p0.dtype
    out = _flow_loop(
        game,
        p0,
        x0,
        safe_set,
        jnp.asarray(step * rate, dt),
        jnp.asarray(tol, dt),
        jnp.asarray(eq_tol, dt),
        steps=int(steps),
        eq_max_iter=int(eq_max_iter),
        record_every=int(record_every),
        callback=callback,
        callback_every=int(callback_every),
    )
    p, x, k, newton, stat, finite, rec = jax.block_until_ready(out)
    settings = {"rate": rate, "step": step, "steps": steps, "tol": tol}
    return _finish(
        "flow",
        game,
        p,
        x,
        k,
        newton,
        stat,
        finite,
        rec,
        eq_tol,
        eq_max_iter,
        t0,
        tol,
        settings=settings,
    )


def two_timescale(
    game: StaticGame,
    p0,
    x0=None,
    *,
    rule: str | Callable = "gradient",
    gamma: float = 0.1,
    beta: float = 0.005,
    steps: int = 50_000,
    tol: float = 1e-11,
    safe_set: Box | Ball | None = None,
    eq_tol: float = 1e-12,
    record_every: int = 10,
    callback: Callable[[Any, dict], None] | None = None,
    callback_every: int = 1000,
) -> SocialDesignResult:
    """The two-timescale scheme: agents ``x <- rule(game, x, p, gamma)``, planner
    ``p <- Pi(p + beta grad S(x))`` (both from the current ``x``), ``beta / gamma`` small.
    ``rule``: a name of :data:`LEARNING_RULES` (``gradient``, ``best-response``, ``mirror``) or
    any ``rule(game, x, p, gamma) -> x``. Stops when both the planner's step
    ``||p_{j+1} - p_j|| / beta`` and the agents' equilibrium gap ``||F(x) + p||_inf`` are
    ``<= tol`` (``successful``), after ``steps`` (``max_iterations``) or at a non-finite iterate
    (``nonfinite``: e.g. ``beta / gamma`` too large). No equilibrium is solved until the end
    (the reported objective is ``S`` at the exact ``x*(p)`` of the final ``p``).

    Example::

        game = Routing.create()
        res = two_timescale(game, jnp.zeros(3), rule="mirror", gamma=0.2, beta=0.01,
                            safe_set=Box.create(0.0, 4.0, 3))
    """
    rule_fn = _rule(rule, game)
    check_positive(gamma, "gamma")
    check_positive(beta, "beta")
    p0, x0 = _prepare(game, p0, x0, safe_set, steps, tol, record_every, callback_every)
    t0 = time.perf_counter()
    dt = p0.dtype
    out = _two_timescale_loop(
        game,
        p0,
        x0,
        safe_set,
        jnp.asarray(gamma, dt),
        jnp.asarray(beta, dt),
        jnp.asarray(tol, dt),
        rule=rule_fn,
        steps=int(steps),
        record_every=int(record_every),
        callback=callback,
        callback_every=int(callback_every),
    )
    p, x, k, stat, finite, rec = jax.block_until_ready(out)
    name = rule if isinstance(rule, str) else getattr(rule, "__name__", "custom")
    settings = {"rule": name, "gamma": gamma, "beta": beta, "steps": steps, "tol": tol}
    return _finish(
        f"two-timescale[{name}]",
        game,
        p,
        x,
        k,
        0,
        stat,
        finite,
        rec,
        eq_tol,
        50,
        t0,
        tol,
        agent_steps=int(k),
        solves=0,
        settings=settings,
    )


@functools.lru_cache(maxsize=32)
def _sgd(learning_rate: float) -> optax.GradientTransformation:
    """One ``optax.sgd`` per learning rate (a static argument: the same one never recompiles)."""
    return optax.sgd(learning_rate)


def hypergradient_descent(
    game: StaticGame,
    p0,
    *,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 0.1,
    steps: int = 10_000,
    tol: float = 1e-11,
    safe_set: Box | Ball | None = None,
    x0=None,
    eq_tol: float = 1e-12,
    eq_max_iter: int = 50,
    record_every: int = 1,
    callback: Callable[[Any, dict], None] | None = None,
    callback_every: int = 100,
) -> SocialDesignResult:
    """Minimise ``Phi(p) = S(x*(p))`` with exact hypergradients (implicit differentiation
    through the equilibrium, :func:`equilibrium_map`) and an optax optimiser (default
    ``optax.sgd(learning_rate)``), projecting onto ``safe_set`` after every step. Stops when
    ``||p_{j+1} - p_j|| / learning_rate <= tol`` or after ``steps``. Every step is one
    equilibrium solve and one linear solve with the game Jacobian."""
    check_positive(learning_rate, "learning_rate")
    check_positive(eq_tol, "eq_tol")
    check_count(eq_max_iter, "eq_max_iter")
    p0, x0 = _prepare(game, p0, x0, safe_set, steps, tol, record_every, callback_every)
    opt = _sgd(float(learning_rate)) if optimizer is None else optimizer
    t0 = time.perf_counter()
    dt = p0.dtype
    out = _hypergradient_loop(
        game,
        p0,
        x0,
        safe_set,
        jnp.asarray(learning_rate, dt),
        jnp.asarray(tol, dt),
        jnp.asarray(eq_tol, dt),
        optimizer=opt,
        steps=int(steps),
        eq_max_iter=int(eq_max_iter),
        record_every=int(record_every),
        callback=callback,
        callback_every=int(callback_every),
    )
    p, x, k, newton, stat, finite, rec = jax.block_until_ready(out)
    settings = {
        "learning_rate": learning_rate,
        "steps": steps,
        "tol": tol,
        "optimizer": "sgd" if optimizer is None else "custom",
    }
    return _finish(
        "hypergradient",
        game,
        p,
        x,
        k,
        newton,
        stat,
        finite,
        rec,
        eq_tol,
        eq_max_iter,
        t0,
        tol,
        settings=settings,
    )
