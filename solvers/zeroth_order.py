"""Zeroth-order baselines for design: two-point gradient estimates and ANNEAL.

Two-point estimator with smoothing radius ``u > 0`` on the flattened parameter ``theta in R^D``,
``z`` uniform on the unit sphere ``S^{D-1}`` (averaged over ``num_directions`` independent z)::

    g_u(theta) = D / (2u) * ( f(theta + u z) - f(theta - u z) ) * z

It is an unbiased estimate of the gradient of the ball-smoothed objective
``f_u(theta) = E_{v ~ U(B^D)} f(theta + u v)`` (Flaxman, Kalai and McMahan 2005; Nesterov and
Spokoiny 2017); for a quadratic ``f_u = f + const``, so it is unbiased for ``grad f`` itself.
0-SGD and 0-ADAM feed it to ``optax.sgd`` / ``optax.adam``; each estimate costs
``2 * num_directions`` evaluations of ``f``.

ANNEAL (random search that keeps the best point) with ``n ~ N(0, I_D)`` and radius ``sigma``::

    theta <- argmin { f(theta), f(theta + sigma n), f(theta - sigma n) }

costs two new evaluations per step. Both routines *minimise* ``f``; pass ``-G`` to maximise.

Example::

    import jax, jax.numpy as jnp
    from solvers.zeroth_order import two_point_gradient
    f = lambda x: jnp.sum(x ** 2)
    g = two_point_gradient(f, jnp.ones(3), jax.random.PRNGKey(0), u=1e-3, num_directions=8)
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from mfid.checks import check_count

__all__ = ["anneal_step", "sphere_direction", "two_point_gradient"]


def sphere_direction(key, theta):
    """A direction ``z`` uniform on the unit sphere of the flattened ``theta``, as a pytree like
    ``theta`` (a normalised standard normal vector)."""
    flat, unravel = ravel_pytree(theta)
    n = jax.random.normal(key, flat.shape, flat.dtype)
    return unravel(n / jnp.linalg.norm(n))


def two_point_gradient(f: Callable, theta, key, u, num_directions: int = 1):
    """Two-point estimate ``D/(2u) (f(theta + u z) - f(theta - u z)) z`` of ``grad f_u(theta)``,
    averaged over ``num_directions`` directions ``z`` uniform on the unit sphere; a pytree like
    ``theta``. ``f`` maps a pytree like ``theta`` to a scalar and must be traceable (the
    directions are evaluated with ``jax.vmap``). Costs ``2 * num_directions`` evaluations."""
    num_directions = check_count(num_directions, "num_directions")
    flat, unravel = ravel_pytree(theta)
    D = flat.size

    def one(k):
        z = ravel_pytree(sphere_direction(k, theta))[0]
        diff = f(unravel(flat + u * z)) - f(unravel(flat - u * z))
        return (D / (2.0 * u)) * diff * z

    g = jnp.mean(jax.vmap(one)(jax.random.split(key, num_directions)), axis=0)
    return unravel(g)


def anneal_step(f: Callable, theta, value, key, sigma):
    """One ANNEAL step: the best of ``theta`` (whose value ``f(theta)`` is given as ``value``),
    ``theta + sigma n`` and ``theta - sigma n`` with ``n ~ N(0, I)``. Returns
    ``(theta_new, f(theta_new))``; costs two evaluations of ``f``."""
    flat, unravel = ravel_pytree(theta)
    n = jax.random.normal(key, flat.shape, flat.dtype)
    cands = jnp.stack([flat + sigma * n, flat - sigma * n])
    vals = jax.vmap(lambda x: f(unravel(x)))(cands)
    i = jnp.argmin(vals)
    better = vals[i] < value
    return unravel(jnp.where(better, cands[i], flat)), jnp.where(better, vals[i], value)
