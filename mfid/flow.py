"""Population flow ``Lambda(pi | theta)``.

    L_0(s, a)      = mu0(s) pi_0(a|s)
    L_{h+1}(s', a') = sum_{s,a} L_h(s, a) P_{h,theta}(s'|s, a, L_h) pi_{h+1}(a'|s')

One ``lax.scan`` over rounds; the kernel acts as a push-forward operator, so sparse games never
form the dense ``S x A x S`` array.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from mfid.game import Dynamics, MeanFieldGame

__all__ = ["population_flow", "rollout", "round_unroll"]

# Games with few rounds (auctions: H = 4..6) are unrolled completely: XLA then fuses across
# rounds, which removes most of the per-round loop overhead of these small kernels.
_FULL_UNROLL_MAX_ROUNDS = 8


def round_unroll(horizon: int) -> int:
    """How many rounds a scan over ``horizon`` rounds unrolls per loop iteration."""
    return horizon if horizon <= _FULL_UNROLL_MAX_ROUNDS else 1


def rollout(game: MeanFieldGame, policy, theta) -> tuple[jnp.ndarray, Dynamics]:
    """Flow ``L`` of shape ``(H, S, A)`` and the per-round dynamics stacked over rounds
    (the game's ``aggregate`` is carried from round to round).

    ``policy`` has shape ``(H, S, A)`` (rows are distributions over actions).
    """
    H = game.horizon

    def step(carry, xs):
        mu, agg = carry
        h, pi_h = xs
        L = mu[:, None] * pi_h
        dyn = game.dynamics(h, L, theta, agg)
        return (dyn.kernel.push(L), dyn.aggregate), (L, dyn)

    mu0 = game.mu0.astype(policy.dtype)
    carry0 = (mu0, game.initial_aggregate(theta))
    _, (L, dyn) = lax.scan(step, carry0, (jnp.arange(H), policy), unroll=round_unroll(H))
    return L, dyn


def population_flow(game: MeanFieldGame, policy, theta) -> jnp.ndarray:
    """State-action distributions ``L_h`` of every round, shape ``(H, S, A)``.

    Example::

        import jax.numpy as jnp
        from mfid import BeachBar, population_flow
        game = BeachBar.create(num_states=6, horizon=3)      # H, S, A = 3, 6, 3
        L = population_flow(game, jnp.full((3, 6, 3), 1 / 3), None)
        assert jnp.allclose(L.sum((1, 2)), 1.0)
    """
    return rollout(game, policy, theta)[0]
