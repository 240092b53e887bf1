"""Entropy-regularised values, best response and exploitability.

For a fixed flow ``L`` and temperature ``tau >= 0``, by backward induction with ``V_H = 0``::

    q_h(s, a) = R_h(s, a, L_h) + sum_{s'} P_h(s'|s, a, L_h) V_{h+1}(s')
    V_h(s)    = sum_a pi_h(a|s) [ q_h(s, a) - tau log pi_h(a|s) ]

The best response to ``L`` is ``softmax(q*_h / tau)`` with ``V*_h = tau logsumexp(q*_h / tau)``
(``argmax`` and ``max`` at ``tau = 0``). Exploitability
``E(pi) = mu0 . (V*_0 - V^pi_0)`` is ``>= 0`` and vanishes exactly at the regularised MF-NE.

**Action masks** (:attr:`mfid.MeanFieldGame.action_mask`): with allowed actions ``A(s)`` the
maximum, the softmax and the best response run over ``A(s)`` only, i.e. ``q`` of a disallowed
action counts as ``-inf``::

    V*_h(s) = tau log sum_{a in A(s)} exp(q*_h(s, a) / tau),   pi'_h(a|s) = 0 for a not in A(s)

A policy of a masked game puts zero mass on disallowed actions, so its entropy term
``sum_a pi log pi`` (``0 log 0 = 0``) counts allowed actions only and a state with one allowed
action contributes none. ``mask=None`` runs exactly the unmasked computation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from mfid.flow import rollout, round_unroll
from mfid.game import Dynamics, MeanFieldGame
from mfid.tree import safe_log, xlogx

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


def _masked_max(q, mask):
    """Row maximum over the allowed entries (every row has one)."""
    return jnp.max(jnp.where(mask, q, -jnp.inf), axis=-1)


def soft_max(q, tau, mask=None):
    """``tau * logsumexp(q / tau)`` over the last axis; ``max`` at ``tau = 0``.

    ``mask`` (boolean, broadcastable to ``q``; ``True`` = allowed, at least one per row): the
    maximum runs over allowed entries only (disallowed ``q`` counts as ``-inf``). Both branches
    of every ``jnp.where`` are finite, so gradients are NaN-free; gradients w.r.t. disallowed
    ``q`` are zero."""
    if mask is None:
        m = jnp.max(q, axis=-1)
        safe = jnp.where(tau > 0, tau, 1.0)
        lse = m + safe * jax.nn.logsumexp((q - m[..., None]) / safe, axis=-1)
        return jnp.where(tau > 0, lse, m)
    mask = jnp.broadcast_to(mask, q.shape)
    m = lax.stop_gradient(_masked_max(q, mask))
    safe = jnp.where(tau > 0, tau, 1.0)
    z = jnp.where(mask, (q - m[..., None]) / safe, 0.0)  # <= 0 where allowed
    total = jnp.sum(jnp.where(mask, jnp.exp(z), 0.0), axis=-1)
    lse = m + safe * jnp.log(total)
    hard = _masked_max(q, mask)
    return jnp.where(tau > 0, lse, hard)


def soft_argmax(q, tau, mask=None):
    """``softmax(q / tau)`` over the last axis; one-hot ``argmax`` at ``tau = 0``.

    ``mask`` (as in :func:`soft_max`): zero probability on disallowed entries, the softmax (or
    the argmax) taken over the allowed ones."""
    if mask is None:
        safe = jnp.where(tau > 0, tau, 1.0)
        soft = jax.nn.softmax(q / safe, axis=-1)
        hard = jax.nn.one_hot(jnp.argmax(q, axis=-1), q.shape[-1], dtype=q.dtype)
        return jnp.where(tau > 0, soft, hard)
    mask = jnp.broadcast_to(mask, q.shape)
    safe = jnp.where(tau > 0, tau, 1.0)
    m = lax.stop_gradient(_masked_max(q, mask))
    e = jnp.where(mask, jnp.exp(jnp.where(mask, (q - m[..., None]) / safe, 0.0)), 0.0)
    soft = e / jnp.sum(e, axis=-1, keepdims=True)
    best = jnp.argmax(jnp.where(mask, q, -jnp.inf), axis=-1)
    hard = jax.nn.one_hot(best, q.shape[-1], dtype=q.dtype)
    return jnp.where(tau > 0, soft, hard)


def _entropy_term(policy, log_policy):
    return jnp.sum(xlogx(policy, log_policy), axis=-1)


def evaluate_policy(dyn: Dynamics, policy, tau, log_policy=None):
    """Backward induction for a fixed policy: ``q (H, S, A)`` and ``V (H, S)``."""
    S = policy.shape[1]

    def step(V_next, xs):
        d, pi_h, logpi_h = xs
        q = d.reward + d.kernel.pull(V_next)
        V = jnp.sum(pi_h * q, axis=-1) - tau * _entropy_term(pi_h, logpi_h)
        return V, (q, V)

    logpi = log_policy if log_policy is not None else safe_log(policy)
    xs = (dyn, policy, logpi)
    unroll = round_unroll(policy.shape[0])
    _, (q, V) = lax.scan(step, jnp.zeros(S, policy.dtype), xs, reverse=True, unroll=unroll)
    return q, V


def best_response_values(dyn: Dynamics, tau, num_states: int, dtype=jnp.float64, mask=None):
    """Backward induction for the optimal regularised values: ``q* (H, S, A)``, ``V* (H, S)``;
    with an action ``mask (S, A)`` the maximum runs over allowed actions (:func:`soft_max`)."""

    def step(V_next, d):
        q = d.reward + d.kernel.pull(V_next)
        V = soft_max(q, tau, mask)
        return V, (q, V)

    unroll = round_unroll(dyn.reward.shape[0])
    _, (q, V) = lax.scan(step, jnp.zeros(num_states, dtype), dyn, reverse=True, unroll=unroll)
    return q, V


def q_values(game: MeanFieldGame, policy, theta, tau=0.0):
    """Regularised ``q^tau`` of ``policy`` against its own flow ``Lambda(policy)``: ``(H, S, A)``."""
    _, dyn = rollout(game, policy, theta)
    return evaluate_policy(dyn, policy, tau)[0]


def best_response(game: MeanFieldGame, policy, theta, tau=0.0):
    """Best response to the flow ``Lambda(policy)``: ``softmax(q*/tau)``, shape ``(H, S, A)``
    (over the allowed actions of a masked game)."""
    _, dyn = rollout(game, policy, theta)
    mask = game.action_mask
    q, _ = best_response_values(dyn, tau, game.num_states, policy.dtype, mask)
    return soft_argmax(q, tau, mask)


def policy_value(game: MeanFieldGame, policy, theta, tau=0.0):
    """Expected regularised return ``mu0 . V^pi_0`` of ``policy`` in its own flow."""
    _, dyn = rollout(game, policy, theta)
    _, V = evaluate_policy(dyn, policy, tau)
    return game.mu0.astype(V.dtype) @ V[0]


def exploitability(game: MeanFieldGame, policy, theta, tau=0.0):
    """``max_pi' V(Lambda(pi), pi') - V(Lambda(pi), pi)``, averaged over ``mu0``; ``>= 0``.

    In a masked game ``pi'`` ranges over policies on the allowed actions and ``pi`` must put
    zero mass on disallowed ones (as :func:`solvers.omd.policy_from_logits` with the mask does).

    Example::

        import jax.numpy as jnp
        from mfid import BeachBar, exploitability
        game = BeachBar.create(num_states=6, horizon=3)      # H, S, A = 3, 6, 3
        e = exploitability(game, jnp.full((3, 6, 3), 1 / 3), None, tau=0.1)   # the uniform policy
    """
    _, dyn = rollout(game, policy, theta)
    return _exploitability_from(game, dyn, policy, tau)


def _exploitability_from(game, dyn, policy, tau, log_policy=None):
    _, V = evaluate_policy(dyn, policy, tau, log_policy)
    _, Vstar = best_response_values(dyn, tau, game.num_states, policy.dtype, game.action_mask)
    mu0 = game.mu0.astype(V.dtype)
    return mu0 @ (Vstar[0] - V[0])
