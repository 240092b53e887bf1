"""Designer objectives of the batched auction (SPEC section 4), as ``objective(theta, L)``.

Every quantity is a function of the mechanism parameters and the flow: :func:`auction_rounds`
replays the mechanism on ``L (H, S, M)`` with one ``lax.scan`` over rounds (carrying the
remaining supply), which reproduces exactly the ``Dynamics.info`` of :func:`mfid.rollout`. So
the design loop's ``objective(theta, L)`` needs no policy::

    g_rev(theta, L) = sum_h sum_{s != ⊥, a} L_h(s, a) p_win,h(a) p_h(a)
    g_eff(theta, L) = sum_h sum_{s != ⊥, a} L_h(s, a) p_win,h(a) v_s
    g_mix           = w g_rev + (1 - w) g_eff

For a :class:`~auctions.mixture.MarketMixture` the values are averages over its markets.
The factories return plain functions; keep the returned object and pass the same one to every
design step (it is a static argument of the compiled gradient, a new one recompiles).

Example::

    obj = revenue_objective(game)
    obj(theta, L)                 # scalar
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from auctions.game import AuctionRound

__all__ = [
    "auction_rounds",
    "revenue",
    "efficiency",
    "revenue_objective",
    "efficiency_objective",
    "mixed_objective",
    "make_objective",
]


def auction_rounds(game, theta, L) -> AuctionRound:
    """Per-round :class:`~auctions.game.AuctionRound` stacked over rounds (leading axis ``H``;
    a mixture adds a market axis ``D`` after it)."""

    def step(r, xs):
        h, L_h = xs
        _, _, r_next, info = game.round(h, L_h, theta, r)
        return r_next, info

    r0 = jnp.asarray(game.initial_aggregate(theta), L.dtype)
    return lax.scan(step, r0, (jnp.arange(game.horizon), L))[1]


def revenue(game, theta, L):
    """``g_rev``: total expected payments per capita (mean over markets for a mixture)."""
    return jnp.sum(auction_rounds(game, theta, L).revenue) / game.num_markets


def efficiency(game, theta, L):
    """``g_eff``: total value of the winners per capita (mean over markets for a mixture)."""
    return jnp.sum(auction_rounds(game, theta, L).welfare) / game.num_markets


def revenue_objective(game):
    """``objective(theta, L) = g_rev``."""
    return lambda theta, L: revenue(game, theta, L)


def efficiency_objective(game):
    """``objective(theta, L) = g_eff``."""
    return lambda theta, L: efficiency(game, theta, L)


def mixed_objective(game, weight: float = 0.5):
    """``objective(theta, L) = weight g_rev + (1 - weight) g_eff``, ``weight`` in ``[0, 1]``."""
    if not (0.0 <= weight <= 1.0):
        raise ValueError(f"weight must lie in [0, 1], got {weight!r}")

    def objective(theta, L):
        info = auction_rounds(game, theta, L)
        rev, eff = jnp.sum(info.revenue), jnp.sum(info.welfare)
        return (weight * rev + (1.0 - weight) * eff) / game.num_markets

    return objective


def make_objective(game, name: str = "revenue", weight: float = 0.5):
    """Objective by name: ``revenue``, ``efficiency`` or ``mix`` (with ``weight``)."""
    if name == "revenue":
        return revenue_objective(game)
    if name == "efficiency":
        return efficiency_objective(game)
    if name == "mix":
        return mixed_objective(game, weight)
    raise ValueError(f"objective must be 'revenue', 'efficiency' or 'mix', got {name!r}")
