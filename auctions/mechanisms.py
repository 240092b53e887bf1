"""Batched-auction mechanisms: first-price, first-price with reserve, posted
price and the static parameterised mechanism. The neural mechanism is in :mod:`auctions.neural`.

**Mechanism API** (stable; the game, the objectives and the finite-N simulator use only this)::

    alpha_h, pay_h = mechanism(h, nu_h, r_h, theta)

* ``h`` round index (may be traced), ``nu_h (M,)`` active bid distribution (sub-probability over
  the bid grid ``b_j = j / M``), ``r_h`` remaining supply (scalar), ``theta`` the parameter pytree
  (``None`` / ``{}`` for parameter-free mechanisms);
* ``alpha_h`` the mass offered this round, ``0 <= alpha_h <= r_h``; the ``alpha_h`` highest bids
  win (fractional tie at the threshold, :func:`auctions.win_probability`);
* ``pay_h (M,)`` the payment of a *winning* bid at each bid level, ``0 <= pay_h(b) <= b``.

Mechanisms are frozen pytree dataclasses with static ``num_bids`` and ``horizon``;
``init_theta(key)`` returns the default parameters. Every mechanism is differentiable in
``theta`` (eligibility at a reserve or posted price is piecewise linear in the price: the bid
cell just below the price is eligible with the fraction ``clip((b - price) M + 1, 0, 1)``, which
the fractional tie turns into exactly that win probability).

Per-round schedule of the first-price family (choice documented here): the remaining supply is
spread evenly over the remaining rounds, ``alpha_h = r_h / (H - h)``, which is ``alpha_max / H``
in every round when all offered items sell; unsold items roll over to later rounds.

Example::

    import jax.numpy as jnp
    from auctions.mechanisms import FirstPrice
    fp = FirstPrice(num_bids=100, horizon=4)
    nu = jnp.full(100, 0.01)                  # active bid mass per bid level
    alpha, pay = fp(0, nu, 0.8, None)     # alpha = 0.2, pay = bid grid
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

__all__ = [
    "bid_grid",
    "eligibility",
    "FirstPrice",
    "FirstPriceReserve",
    "PostedPrice",
    "StaticMechanism",
]


def bid_grid(num_bids: int, dtype=None):
    """Bid levels ``b_j = j / M``, ``j = 0..M-1``."""
    return jnp.arange(num_bids, dtype=dtype or jnp.result_type(float)) / num_bids


def eligibility(bids, price):
    """Piecewise-linear eligibility of bids at a reserve / posted ``price``:
    ``clip((b - price) M + 1, 0, 1)`` (1 for ``b >= price``, 0 for ``b <= price - 1/M``)."""
    M = bids.shape[-1]
    return jnp.clip((bids - price) * M + 1.0, 0.0, 1.0)


def _eligible_demand(nu, bids, price):
    """``D_h = sum_b nu_h(b) e(b)``: the bid mass eligible at ``price`` (:func:`eligibility`)."""
    return jnp.sum(nu * eligibility(bids, price))


def _even_schedule(h, r, horizon: int):
    return r / (horizon - h)


@struct.dataclass
class FirstPrice:
    """First-price batched auction: ``alpha_h = r_h / (H - h)``, winners pay their bid.
    Parameter-free (``theta`` is ignored)."""

    num_bids: int = struct.field(pytree_node=False, default=100)
    horizon: int = struct.field(pytree_node=False, default=4)

    def init_theta(self, key=None):
        """``{}``: first price has no parameters."""
        return {}

    def __call__(self, h, nu, r, theta):
        bids = bid_grid(self.num_bids, nu.dtype)
        return _even_schedule(h, r, self.horizon), bids


@struct.dataclass
class FirstPriceReserve:
    """First price with a reserve ``theta = {"reserve": rho}``::

        alpha_h = min(r_h / (H - h), D_h),   D_h = sum_b nu_h(b) e(b),   pay_h(b) = b

    with the eligibility ``e(b) = clip((b - rho) M + 1, 0, 1)`` of :func:`eligibility`. The
    reserve acts only through the offered mass ``alpha_h``; the winners are the ``alpha_h``
    highest bids (fractional tie, :func:`auctions.win_probability`) and every winner pays its
    own bid. So bids ``b >= rho`` win as in first price with schedule ``r_h / (H - h)``, bids
    ``b <= rho - 1/M`` never win, and the one bid cell just below the reserve,
    ``rho - 1/M < b < rho``, wins *partially*: with probability ``e(b) = (b - rho) M + 1`` when
    the schedule exceeds the eligible demand (``alpha_h = D_h``), with less (the tie's share of
    what the cells above leave, at most ``e(b)``) when it binds — and, when it wins, pays its
    bid ``b``, which is below the reserve. A reserve on the grid (``rho = j / M``) has no partial
    cell. This keeps the revenue piecewise linear (differentiable almost everywhere) in
    ``rho``."""

    num_bids: int = struct.field(pytree_node=False, default=100)
    horizon: int = struct.field(pytree_node=False, default=4)
    reserve0: float = struct.field(pytree_node=False, default=0.3)

    def init_theta(self, key=None):
        """``{"reserve": reserve0}`` (a scalar)."""
        return {"reserve": jnp.asarray(self.reserve0, jnp.result_type(float))}

    def __call__(self, h, nu, r, theta):
        bids = bid_grid(self.num_bids, nu.dtype)
        demand = _eligible_demand(nu, bids, theta["reserve"])
        return jnp.minimum(_even_schedule(h, r, self.horizon), demand), bids


@struct.dataclass
class PostedPrice:
    """Posted price ``theta = {"price": p}`` in every round::

        alpha_h = min(r_h, D_h),   D_h = sum_b nu_h(b) e(b),   pay_h(b) = min(p, b)

    with the eligibility ``e(b) = clip((b - p) M + 1, 0, 1)`` of :func:`eligibility`. While the
    remaining supply covers the eligible demand (``r_h >= D_h``) every bid ``b >= p`` wins and
    pays ``p``, bids ``b <= p - 1/M`` never win, and the one bid cell just below the price,
    ``p - 1/M < b < p``, wins *partially*, with probability ``e(b) = (b - p) M + 1``, and pays
    its bid ``b`` (below ``p``). When supply binds (``r_h < D_h``), all of it is sold in this
    round to the ``r_h`` highest bids (fractional tie at the threshold, as in every mechanism),
    not rationed at random among the eligible bidders; winners at or above ``p`` still pay
    ``p``. A price on the grid (``p = j / M``) has no partial cell."""

    num_bids: int = struct.field(pytree_node=False, default=100)
    horizon: int = struct.field(pytree_node=False, default=4)
    price0: float = struct.field(pytree_node=False, default=0.5)

    def init_theta(self, key=None):
        """``{"price": price0}`` (a scalar)."""
        return {"price": jnp.asarray(self.price0, jnp.result_type(float))}

    def __call__(self, h, nu, r, theta):
        bids = bid_grid(self.num_bids, nu.dtype)
        price = theta["price"]
        demand = _eligible_demand(nu, bids, price)
        return jnp.minimum(r, demand), jnp.minimum(price, bids)


@struct.dataclass
class StaticMechanism:
    """Static parameterised mechanism, ``theta = {"alloc": (H,), "pay": (H, M)}`` logits::

        alpha_h = r_h sigmoid(alloc_h),     pay_h(b) = b sigmoid(pay_{h, b})

    (a per-round allocation fraction of the remaining supply and a per-bid payment fraction of
    the bid). ``init_theta`` starts at the first-price schedule ``alpha_h = r_h / (H - h)``
    (capped at 0.95 of ``r_h``) with payment fraction ``sigmoid(4) ≈ 0.98``."""

    num_bids: int = struct.field(pytree_node=False, default=100)
    horizon: int = struct.field(pytree_node=False, default=4)

    def init_theta(self, key=None):
        """The first-price-like start: ``alloc_h = logit(min(1 / (H - h), 0.95))`` (it offers
        ``r_h / (H - h)``) and ``pay = 4`` (it charges ``sigmoid(4) ≈ 0.98`` of the bid);
        ``{"alloc": (H,), "pay": (H, M)}``."""
        dtype = jnp.result_type(float)
        H = self.horizon
        frac = jnp.minimum(1.0 / (H - jnp.arange(H, dtype=dtype)), 0.95)
        return {
            "alloc": jnp.log(frac) - jnp.log1p(-frac),
            "pay": jnp.full((H, self.num_bids), 4.0, dtype),
        }

    def __call__(self, h, nu, r, theta):
        bids = bid_grid(self.num_bids, nu.dtype)
        alpha = r * jax.nn.sigmoid(theta["alloc"][h])
        return alpha, bids * jax.nn.sigmoid(theta["pay"][h])
