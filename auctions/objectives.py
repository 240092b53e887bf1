"""Designer objectives of the batched auction (``auctions/README.md``), as
``g(game, theta, L, info)``.

The solvers pass the per-round :class:`~auctions.game.AuctionRound` records that the rollout
built (``info``, stacked over rounds; a mixture adds a market axis), so an objective never
re-simulates the rounds::

    g_rev(theta, L) = sum_h sum_{s != inactive, a} L_h(s, a) p_win,h(a) p_h(a)
    g_eff(theta, L) = sum_h sum_{s != inactive, a} L_h(s, a) p_win,h(a) v_s
    g_mix           = w g_rev + (1 - w) g_eff

All are per capita (per unit mass of bidders); for a :class:`~auctions.mixture.MarketMixture`
they are averages over its markets. Called without ``info`` they replay the rounds from
``(theta, L)`` with :func:`auction_rounds` (one ``lax.scan``). :class:`Mix` is a frozen dataclass,
hashable by value: ``Mix(0.5)`` built twice is the same static argument of a compiled step.

Example::

    import jax
    from auctions import make, revenue
    from solvers import solve_omd
    st = make("A1", num_values=10, num_bids=10, width=8, key=jax.random.key(0))
    res = solve_omd(st.game, st.theta0, tau=1e-2, eta=1.0, iters=50)
    revenue(st.game, st.theta0, res.flow)        # per-capita revenue (replays the rounds)
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from jax import lax

from auctions.game import AuctionRound
from mfid.checks import check_probability

__all__ = ["OBJECTIVES", "Mix", "auction_rounds", "efficiency", "make_objective", "revenue"]


def auction_rounds(game, theta, L) -> AuctionRound:
    """Per-round :class:`~auctions.game.AuctionRound` stacked over rounds (leading axis ``H``;
    a mixture adds a market axis ``D`` after it), replayed from ``(theta, L)``."""

    def step(r, xs):
        h, L_h = xs
        dyn = game.dynamics(h, L_h, theta, r)
        return dyn.aggregate, dyn.info

    r0 = jnp.asarray(game.initial_aggregate(theta), L.dtype)
    return lax.scan(step, r0, (jnp.arange(game.horizon), L))[1]


def _rounds(game, theta, L, info):
    return info if isinstance(info, AuctionRound) else auction_rounds(game, theta, L)


def revenue(game, theta, L, info=None):
    """``g_rev``: total expected payments per capita (mean over markets for a mixture)."""
    return jnp.sum(_rounds(game, theta, L, info).revenue) / game.num_markets


def efficiency(game, theta, L, info=None):
    """``g_eff``: total value of the winners per capita (mean over markets for a mixture)."""
    return jnp.sum(_rounds(game, theta, L, info).welfare) / game.num_markets


@dataclasses.dataclass(frozen=True)
class Mix:
    """``g = weight g_rev + (1 - weight) g_eff``, ``weight`` in ``[0, 1]``."""

    weight: float = 0.5

    def __post_init__(self):
        check_probability(self.weight, "weight")

    def __call__(self, game, theta, L, info=None):
        rounds = _rounds(game, theta, L, info)
        rev, eff = jnp.sum(rounds.revenue), jnp.sum(rounds.welfare)
        return (self.weight * rev + (1.0 - self.weight) * eff) / game.num_markets


OBJECTIVES = ("revenue", "efficiency", "mix")
"""The objective names :func:`make_objective` accepts."""


def make_objective(name: str = "revenue", weight: float = 0.5):
    """Objective by name: ``revenue``, ``efficiency`` or ``mix`` (``Mix(weight)``)."""
    if name == "revenue":
        return revenue
    if name == "efficiency":
        return efficiency
    if name == "mix":
        return Mix(weight)
    raise ValueError(f"objective must be one of {OBJECTIVES}, got {name!r}")
