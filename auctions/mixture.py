"""Several independent batched-auction markets as one PMFG (a fixed batch of random draws).

Setting A3 draws the value distribution ``mu0`` and the supply ``alpha_max`` at random; the
mechanism must work across draws. :class:`MarketMixture` puts ``D`` draws side by side: state
``(d, s)`` at index ``d * S + s``, initial mass ``mu0_d(s) / D``; markets never exchange agents
and each market runs its own auction (its own ``nu_h`` renormalised to its population, its own
remaining supply ``r_h^d``, ``r_0^d = alpha_max^d`` — this is how the mechanism *observes*
``alpha_max``; it never sees ``mu0_d``). Objectives average over markets, so a design on the
mixture maximises the mean revenue over the batch of draws::

    L_h = (1/D) (L_h^1, ..., L_h^D),   revenue = (1/D) sum_d revenue_d

Example::

    import numpy as np
    from auctions import BatchedAuction, FirstPrice, MarketMixture
    mech = FirstPrice(num_bids=10, horizon=5)
    draws = [(np.full(10, 0.1), 0.8), (np.linspace(1, 2, 10) / 15.0, 1.1)]
    games = [BatchedAuction.create(mu, horizon=5, alpha_max=a, mechanism=mech) for mu, a in draws]
    mix = MarketMixture.stack(games)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from auctions.game import inactive_mask
from mfid.game import Dynamics, MeanFieldGame
from mfid.kernel import Kernel

__all__ = ["MarketMixture", "MixtureKernel"]


@struct.dataclass
class MixtureKernel(Kernel):
    """Block-diagonal kernel of ``D`` markets (a stacked market kernel with leading axis ``D``)."""

    kernels: Any
    num_markets: int = struct.field(pytree_node=False, default=1)

    def push(self, L):
        D = self.num_markets
        Ld = L.reshape(D, -1, L.shape[-1])
        return jax.vmap(lambda k, x: k.push(x))(self.kernels, Ld).reshape(-1)

    def pull(self, V):
        D = self.num_markets
        out = jax.vmap(lambda k, v: k.pull(v))(self.kernels, V.reshape(D, -1))
        return out.reshape(-1, out.shape[-1])

    def dense(self):
        blocks = jax.vmap(lambda k: k.dense())(self.kernels)  # (D, S, A, S)
        D, S, A, _ = blocks.shape
        P = jnp.zeros((D, S, A, D, S), blocks.dtype)
        P = P.at[jnp.arange(D), :, :, jnp.arange(D), :].set(blocks)
        return P.reshape(D * S, A, D * S)


@struct.dataclass
class MarketMixture(MeanFieldGame):
    """``D`` independent auction markets sharing one mechanism, as one PMFG: state ``(d, s)`` at
    index ``d * S + s``, initial mass ``mu0_d(s) / D``; each market runs its own auction (its own
    ``nu_h`` and remaining supply ``r_h^d``, ``r_0^d = alpha_max^d``) and objectives average::

        L_h = (1/D) (L_h^1, ..., L_h^D),   revenue = (1/D) sum_d revenue_d

    Build it with :meth:`stack`."""

    markets: Any  # a BatchedAuction whose array leaves have a leading axis D
    mu0: jnp.ndarray
    horizon: int = struct.field(pytree_node=False, default=1)
    num_actions: int = struct.field(pytree_node=False, default=1)
    num_markets: int = struct.field(pytree_node=False, default=1)

    @classmethod
    def stack(cls, games) -> MarketMixture:
        """The mixture of the markets ``games`` (:class:`~auctions.BatchedAuction` with equal
        horizon, bid and value grids): their pytrees stacked on a leading axis ``D``,
        ``mu0 = (mu0_1, ..., mu0_D) / D``."""
        games = list(games)
        if not games:
            raise ValueError("games must be a non-empty list of BatchedAuction markets")
        g0 = games[0]
        for g in games[1:]:
            if (g.horizon, g.num_actions, g.num_states) != (
                g0.horizon,
                g0.num_actions,
                g0.num_states,
            ):
                raise ValueError("games must share horizon, num_actions and num_states")
        markets = jax.tree.map(lambda *xs: jnp.stack(xs), *games)
        D = len(games)
        mu0 = jnp.concatenate([g.mu0 for g in games]) / D
        return cls(markets, mu0, g0.horizon, g0.num_actions, D)

    @property
    def mechanism(self):
        """The mechanism the markets share."""
        return self.markets.mechanism

    @property
    def action_mask(self):
        """The markets' masks stacked: ``(D S, M)``, bid 0 only in every market's ``⊥``
        (``None`` when the markets allow every bid in ``⊥``)."""
        if not self.markets.mask_inactive:
            return None
        return jnp.tile(inactive_mask(self.market_states, self.num_actions), (self.num_markets, 1))

    @property
    def market_states(self) -> int:
        """States of one market, ``S = K + 1`` (the mixture has ``D S``)."""
        return self.num_states // self.num_markets

    def market(self, d: int):
        """Market ``d`` as a stand-alone :class:`BatchedAuction`."""
        return jax.tree.map(lambda x: x[d], self.markets)

    def initial_aggregate(self, theta):
        return self.markets.alpha_max

    def round(self, h, L, theta, remaining):
        """Round ``h`` of every market: reward ``(D S, A)``, block kernel, ``r_{h+1} (D,)`` and
        the per-market :class:`AuctionRound` (leaves with a leading axis ``D``)."""
        D = self.num_markets
        Ld = L.reshape(D, -1, L.shape[-1]) * D

        def one(game, L_d, r_d):
            return game.round(h, L_d, theta, r_d)

        in_axes = (jax.tree.map(lambda _: 0, self.markets), 0, 0)
        reward, kernel, r_next, info = jax.vmap(one, in_axes=in_axes)(self.markets, Ld, remaining)
        return reward.reshape(-1, reward.shape[-1]), MixtureKernel(kernel, D), r_next, info

    def dynamics(self, h, L, theta, aggregate=()) -> Dynamics:
        reward, kernel, r_next, info = self.round(h, L, theta, aggregate)
        return Dynamics(reward, kernel, r_next, info)
