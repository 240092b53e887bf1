"""The batched-auction mean-field game (BA-MFG) as a PMFG (model and choices:
``auctions/README.md``).

States: ``S = K + 1`` — value levels ``v_k = k / K`` (indices ``0..K-1``) and the inactive state
``⊥`` (last index ``K``). Actions: ``M`` bid levels ``b_j = j / M``. ``⊥`` has a single allowed
action, bid 0 (index 0; :attr:`BatchedAuction.action_mask`): an inactive agent bids nothing,
collects no entropy, is not counted in ``nu``, never wins and gets reward 0. (With
``mask_inactive=False`` every action is allowed in ``⊥``; its uniform equilibrium policy then
earns a spurious entropy bonus ``tau log M`` per inactive round, which makes winning early more
attractive: on A1 with first price, ``tau = 1e-3``, the converged revenue is 0.1524 instead of
0.1481.)

Round ``h`` given ``L_h (S, M)``, the remaining supply ``r_h`` (the game's *aggregate*,
``r_0 = alpha_max``) and the mechanism parameters ``theta``::

    nu_h(a)        = sum_{s != ⊥} L_h(s, a)
    alpha_h, p_h   = mechanism(h, nu_h, r_h, theta)          (alpha_h <= r_h, 0 <= p_h(a) <= b_a)
    p_win(a)       = clip((alpha_h - sum_{a' > a} nu_h(a')) / nu_h(a), 0, 1)
    R_h(s, a)      = p_win(a) u_h(v_s, p_h(a))   (s != ⊥),   R_h(⊥, a) = 0
    sold_h         = sum_a nu_h(a) p_win(a) = min(alpha_h, sum_a nu_h(a))
    r_{h+1}        = r_h - sold_h

Remaining supply counts what was actually sold (offered but unsold items stay available), so
``sum_h sold_h <= alpha_max`` always; when demand exceeds the offer, ``sold_h = alpha_h`` and this
is the published ``r_h = alpha_max - sum_{h'<h} alpha_{h'}``. The transition is
:class:`auctions.kernels.AuctionKernel` (winner -> ⊥, loser keeps its value, then the value kernel).
Per-round quantities are exposed in ``Dynamics.info`` as an :class:`AuctionRound`;
:func:`auctions.objectives.auction_rounds` replays them from ``(theta, L)``.

Example::

    import jax
    from auctions import make
    from solvers import solve_omd
    st = make("A1", num_values=20, num_bids=20, width=16, key=jax.random.key(0))
    res = solve_omd(st.game, st.theta0, tau=1e-3, eta=10.0, iters=200)
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import struct

from auctions.kernels import AuctionKernel, ValueKernel
from auctions.utilities import Utility
from auctions.win import win_probability
from mfid.checks import check_distribution
from mfid.game import Dynamics, MeanFieldGame

__all__ = ["AuctionRound", "BatchedAuction", "inactive_mask", "value_grid"]


def inactive_mask(num_states: int, num_bids: int):
    """Allowed bids of the auction: all of them in the value states ``0..S-2``, only bid 0 in
    the inactive state ``⊥ = S - 1``; a constant ``(S, M)`` boolean array."""
    mask = np.ones((num_states, num_bids), bool)
    mask[-1, 1:] = False
    return jnp.asarray(mask)


def value_grid(num_values: int, dtype=None):
    """Value levels ``v_k = k / K``, ``k = 0..K-1``."""
    return jnp.arange(num_values, dtype=dtype or jnp.result_type(float)) / num_values


@struct.dataclass
class AuctionRound:
    """Per-round quantities: offered ``alpha``, ``sold`` mass, ``remaining`` supply ``r_h``
    before the round, ``p_win (M,)``, ``payment (M,)``, active bids ``nu (M,)``,
    ``revenue = sum_a nu(a) p_win(a) p_h(a)`` and ``welfare = sum_{s != ⊥, a} L(s, a) p_win(a) v_s``."""

    alpha: jnp.ndarray
    sold: jnp.ndarray
    remaining: jnp.ndarray
    p_win: jnp.ndarray
    payment: jnp.ndarray
    nu: jnp.ndarray
    revenue: jnp.ndarray
    welfare: jnp.ndarray


@struct.dataclass
class BatchedAuction(MeanFieldGame):
    """BA-MFG; build with :meth:`create`. ``theta`` of the game is the mechanism's ``theta``."""

    mu0: jnp.ndarray
    alpha_max: jnp.ndarray
    mechanism: Any
    utility: Utility
    value_kernel: ValueKernel
    horizon: int = struct.field(pytree_node=False, default=4)
    num_actions: int = struct.field(pytree_node=False, default=100)
    mask_inactive: bool = struct.field(pytree_node=False, default=True)

    @classmethod
    def create(
        cls,
        mu0_values,
        *,
        horizon: int,
        alpha_max: float,
        mechanism,
        num_bids: int | None = None,
        utility: Utility | None = None,
        rho: float = 0.0,
        sigma: float | None = None,
        mask_inactive: bool = True,
    ) -> BatchedAuction:
        """``mu0_values (K,)``: initial value distribution (all agents start active; ``⊥`` has
        mass 0). ``rho``: regeneration probability from ``⊥`` (fresh value from ``mu0_values``);
        ``sigma``: Gaussian value drift width in value units (``None``: no drift);
        ``mask_inactive``: ``⊥`` may only bid 0 (default; ``False`` allows every bid there)."""
        if not isinstance(horizon, (int, np.integer)) or horizon <= 0:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        mu0_values = np.asarray(mu0_values, dtype=np.float64)
        check_distribution(mu0_values, "mu0_values")
        K = mu0_values.shape[0]
        M = num_bids if num_bids is not None else mechanism.num_bids
        if not isinstance(M, (int, np.integer)) or M <= 0:
            raise ValueError(f"num_bids must be a positive integer, got {M!r}")
        if mechanism.num_bids != M or mechanism.horizon != horizon:
            raise ValueError(
                f"mechanism must have num_bids={M} and horizon={horizon}, "
                f"got {mechanism.num_bids} and {mechanism.horizon}"
            )
        if not (np.isfinite(alpha_max) and alpha_max > 0):
            raise ValueError(f"alpha_max must be a finite number > 0, got {alpha_max!r}")
        dtype = jnp.result_type(float)
        mu0 = jnp.asarray(np.concatenate([mu0_values, [0.0]]), dtype)
        vk = ValueKernel.create(K, rho=rho, regen=mu0_values, sigma=sigma)
        utility = Utility.create() if utility is None else utility
        return cls(mu0, jnp.asarray(alpha_max, dtype), mechanism, utility, vk, int(horizon), int(M),
                   bool(mask_inactive))  # fmt: skip

    @property
    def num_values(self) -> int:
        """Value levels ``K = S - 1`` (the inactive state ⊥ is the last state)."""
        return self.num_states - 1

    @property
    def action_mask(self):
        """``(S, M)`` boolean: every bid allowed in a value state, only bid 0 in ``⊥`` (``None``
        when ``mask_inactive=False``)."""
        return inactive_mask(self.num_states, self.num_actions) if self.mask_inactive else None

    @property
    def num_markets(self) -> int:
        """1 (a :class:`~auctions.mixture.MarketMixture` has ``D``)."""
        return 1

    def initial_aggregate(self, theta):
        return self.alpha_max

    def round(self, h, L, theta, remaining):
        """Everything about round ``h``: ``(reward (S, M), kernel, r_{h+1}, AuctionRound)``."""
        K = self.num_values
        nu = jnp.sum(L[:K], axis=0)
        alpha, pay = self.mechanism(h, nu, remaining, theta)
        alpha = jnp.clip(alpha, 0.0, remaining)
        pw = win_probability(nu, alpha)
        won = nu * pw
        sold = jnp.sum(won)
        values = value_grid(K, L.dtype)
        u = self.utility(h, values[:, None], pay[None, :])
        reward = jnp.concatenate([pw[None, :] * u, jnp.zeros((1, pay.shape[0]), L.dtype)])
        welfare = values @ (L[:K] @ pw)
        info = AuctionRound(alpha, sold, remaining, pw, pay, nu, jnp.sum(won * pay), welfare)
        r_next = jnp.maximum(remaining - sold, 0.0)  # no negative rounding residue
        return reward, AuctionKernel(pw, self.value_kernel), r_next, info

    def dynamics(self, h, L, theta, aggregate=()) -> Dynamics:
        reward, kernel, r_next, info = self.round(h, L, theta, aggregate)
        return Dynamics(reward, kernel, r_next, info)
