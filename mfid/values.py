"""Entropy-regularised values, best response and exploitability (SPEC section 1).

For a fixed flow ``L`` and temperature ``tau >= 0``, by backward induction with ``V_H = 0``::

    q_h(s, a) = R_h(s, a, L_h) + sum_{s'} P_h(s'|s, a, L_h) V_{h+1}(s')
    V_h(s)    = sum_a pi_h(a|s) [ q_h(s, a) - tau log pi_h(a|s) ]

The best response to ``L`` is ``softmax(q*_h / tau)`` with ``V*_h = tau logsumexp(q*_h / tau)``
(``argmax`` and ``max`` at ``tau = 0``). Exploitability
``E(pi) = mu0 . (V*_0 - V^pi_0)`` is ``>= 0`` and vanishes exactly at the regularised MF-NE.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from mfid.flow import rollout, round_unroll
from mfid.game import Dynamics, MeanFieldGame

__all__ = [
    "soft_max",
    "soft_argmax",
    "evaluate_policy",
    "best_response_values",
    "q_values",
    "best_response",
    "policy_value",
    "exploitability",
]


def soft_max(q, tau):
    """``tau * logsumexp(q / tau)`` over the last axis; ``max`` at ``tau = 0``."""
    m = jnp.max(q, axis=-1)
    safe = jnp.where(tau > 0, tau, 1.0)
    lse = m + safe * jax.nn.logsumexp((q - m[..., None]) / safe, axis=-1)
    return jnp.where(tau > 0, lse, m)


def soft_argmax(q, tau):
    """``softmax(q / tau)`` over the last axis; one-hot ``argmax`` at ``tau = 0``."""
    safe = jnp.where(tau > 0, tau, 1.0)
    soft = jax.nn.softmax(q / safe, axis=-1)
    hard = jax.nn.one_hot(jnp.argmax(q, axis=-1), q.shape[-1], dtype=q.dtype)
    return jnp.where(tau > 0, soft, hard)


def _entropy_term(policy, log_policy):
    if log_policy is None:
        log_policy = jnp.log(jnp.where(policy > 0, policy, 1.0))
    return jnp.sum(jnp.where(policy > 0, policy * log_policy, 0.0), axis=-1)


def evaluate_policy(dyn: Dynamics, policy, tau, log_policy=None):
    """Backward induction for a fixed policy: ``q (H, S, A)`` and ``V (H, S)``."""
    S = policy.shape[1]

    def step(V_next, xs):
        d, pi_h, logpi_h = xs
        q = d.reward + d.kernel.pull(V_next)
        V = jnp.sum(pi_h * q, axis=-1) - tau * _entropy_term(pi_h, logpi_h)
        return V, (q, V)

    logpi = log_policy if log_policy is not None else jnp.log(jnp.where(policy > 0, policy, 1.0))
    xs = (dyn, policy, logpi)
    unroll = round_unroll(policy.shape[0])
    _, (q, V) = lax.scan(step, jnp.zeros(S, policy.dtype), xs, reverse=True, unroll=unroll)
    return q, V


def best_response_values(dyn: Dynamics, tau, num_states: int, dtype=jnp.float64):
    """Backward induction for the optimal regularised values: ``q* (H, S, A)``, ``V* (H, S)``."""

    def step(V_next, d):
        q = d.reward + d.kernel.pull(V_next)
        V = soft_max(q, tau)
        return V, (q, V)

    unroll = round_unroll(dyn.reward.shape[0])
    _, (q, V) = lax.scan(step, jnp.zeros(num_states, dtype), dyn, reverse=True, unroll=unroll)
    return q, V


def q_values(game: MeanFieldGame, policy, theta, tau=0.0):
    """Regularised ``q^tau`` of ``policy`` against its own flow ``Lambda(policy)``: ``(H, S, A)``."""
    _, dyn = rollout(game, policy, theta)
    return evaluate_policy(dyn, policy, tau)[0]


def best_response(game: MeanFieldGame, policy, theta, tau=0.0):
    """Best response to the flow ``Lambda(policy)``: ``softmax(q*/tau)``, shape ``(H, S, A)``."""
    _, dyn = rollout(game, policy, theta)
    q, _ = best_response_values(dyn, tau, game.num_states, policy.dtype)
    return soft_argmax(q, tau)


def policy_value(game: MeanFieldGame, policy, theta, tau=0.0):
    """Expected regularised return ``mu0 . V^pi_0`` of ``policy`` in its own flow."""
    _, dyn = rollout(game, policy, theta)
    _, V = evaluate_policy(dyn, policy, tau)
    return game.mu0.astype(V.dtype) @ V[0]


def exploitability(game: MeanFieldGame, policy, theta, tau=0.0):
    """``max_pi' V(Lambda(pi), pi') - V(Lambda(pi), pi)``, averaged over ``mu0``; ``>= 0``.

    Example::

        e = exploitability(game, jnp.full((H, S, A), 1 / A), theta, tau=0.1)
    """
    _, dyn = rollout(game, policy, theta)
    return _exploitability_from(game, dyn, policy, tau)


def _exploitability_from(game, dyn, policy, tau, log_policy=None):
    _, V = evaluate_policy(dyn, policy, tau, log_policy)
    _, Vstar = best_response_values(dyn, tau, game.num_states, policy.dtype)
    mu0 = game.mu0.astype(V.dtype)
    return mu0 @ (Vstar[0] - V[0])
