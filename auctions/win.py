"""Mean-field win probability of a bid in a batched auction.

The ``alpha`` highest bids of the active bid distribution ``nu`` win; the threshold bid level is
rationed by a fractional tie::

    above(a) = sum_{a' > a} nu(a')
    p_win(a) = clip( (alpha - above(a)) / nu(a), 0, 1 ),   x / 0 = +inf for x > 0,  0 / 0 = 0

so that the allocated mass per bid is ``sold(a) = nu(a) p_win(a) = clip(alpha - above(a), 0, nu(a))``
and the total ``sum_a sold(a) = min(alpha, sum_a nu(a))``. This is the ``N -> inf`` limit of
"``floor(alpha N)`` items to the highest of N bids, ties at the threshold broken uniformly at
random" (checked against brute-force enumeration in ``tests/auctions/test_win.py``).

The division is taken only inside the tie (``0 <= alpha - above(a) < nu(a)``), with
``jnp.where`` on both operands, so gradients are finite everywhere — also for denormal ``nu(a)``
from an underflowed softmax; bid levels with ``nu(a) <= sqrt(tiny)`` (``1.5e-154`` in float64)
are treated as empty (win iff ``alpha > above(a)``).

**Derivative at a cell boundary.** ``p_win`` is piecewise linear in ``alpha`` (and in ``nu``);
where the threshold falls exactly on the boundary between two bid cells (``alpha = above(a)``
for a non-empty level ``a``: the cell above is just full, cell ``a`` just empty) the derivative
is the **right derivative in alpha** (the one of increasing ``alpha``, i.e. of increasing
``alpha - above(a)``): cell ``a`` counts as inside the tie there (its value ``0 / nu(a) = 0`` is
unchanged), the full cell above as full. Then ``d p_win(a) / d alpha = 1 / nu(a)`` and the sold
mass ``sum_a nu(a) p_win(a) = min(alpha, sum nu)`` has its true slope 1, matching forward
differences ``(f(alpha + h) - f(alpha)) / h`` (and central differences of the sold mass, whose
left and right slopes agree); the left derivative would put that slope on the cell above
instead.

Example::

    import jax.numpy as jnp
    from auctions.win import win_probability
    nu = jnp.array([0.2, 0.3, 0.1])          # bids 0, 1/3, 2/3 (ascending)
    win_probability(nu, 0.25)                # -> [0, 0.5, 1]
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["mass_above", "win_probability", "allocated_mass"]


def mass_above(nu):
    """``above(a) = sum_{a' > a} nu(a')`` for bids sorted ascending; shape of ``nu``."""
    M = nu.shape[-1]
    # One matrix product with the strictly lower-triangular ones matrix T[a', a] = [a' > a]:
    # a single kernel, where a cumulative sum compiles to several passes on CPU.
    return nu @ jnp.tri(M, M, -1, dtype=nu.dtype)


def win_probability(nu, alpha):
    """Win probability ``p_win (M,)`` of each bid level given active bids ``nu (M,)`` and the
    served mass ``alpha`` (scalar), with the conventions ``x/0 = +inf`` (x > 0), ``0/0 = 0``;
    at a cell boundary the derivative is the right derivative in ``alpha`` (module docstring)."""
    nu = jnp.asarray(nu)
    num = alpha - mass_above(nu)
    # Divide only strictly inside the tie (0 < num < nu, nu not negligible): the clipped
    # branches are constants, so no 0 * inf appears in the backward pass even for denormal nu.
    # num = 0 counts as inside (value 0, slope 1/nu): the right derivative at a cell boundary.
    tiny = jnp.sqrt(jnp.finfo(nu.dtype).tiny)
    inside = (num >= 0) & (num < nu) & (nu > tiny)
    ratio = jnp.where(inside, num, 0.0) / jnp.where(inside, nu, 1.0)
    full = (num > 0) & ~inside
    return jnp.where(inside, ratio, jnp.where(full, 1.0, 0.0).astype(nu.dtype))


def allocated_mass(nu, alpha):
    """Mass sold at each bid level, ``clip(alpha - above(a), 0, nu(a))`` — computed directly,
    without the division of :func:`win_probability` (an independent check of it)."""
    nu = jnp.asarray(nu)
    return jnp.clip(alpha - mass_above(nu), 0.0, nu)
