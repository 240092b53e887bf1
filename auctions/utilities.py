"""Bidder utilities of the batched auction.

A winner with value ``s`` paying ``p`` in round ``h`` gets ``u_h(s, p)``; a loser gets 0::

    linear          u = s - p
    risk_averse     u = (1 - exp(-beta (s - p))) / beta
    risk_seeking    u = (exp(beta (s - p)) - 1) / beta
    hyperbolic      u = (s - p) / (1 + lam h)

Example::

    import jax.numpy as jnp
    from auctions.utilities import Utility
    u = Utility.create("risk_averse", beta=1.0)
    u(0, jnp.array([0.5]), jnp.array([0.2]))
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import struct

__all__ = ["Utility", "UTILITY_KINDS"]

UTILITY_KINDS = ("linear", "risk_averse", "risk_seeking", "hyperbolic")
"""The utility kinds :meth:`Utility.create` accepts."""


@struct.dataclass
class Utility:
    """Utility ``u_h(s, p)`` of a winner with value ``s`` paying ``p`` in round ``h`` (a loser
    gets 0)::

        linear          u = s - p
        risk_averse     u = (1 - exp(-beta (s - p))) / beta
        risk_seeking    u = (exp(beta (s - p)) - 1) / beta
        hyperbolic      u = (s - p) / (1 + lam h)

    Build it with :meth:`create`."""

    beta: jnp.ndarray
    lam: jnp.ndarray
    kind: str = struct.field(pytree_node=False, default="linear")

    @classmethod
    def create(cls, kind: str = "linear", *, beta: float = 1.0, lam: float = 1.0) -> Utility:
        """The utility ``kind`` (one of :data:`UTILITY_KINDS`) with risk parameter ``beta > 0`` and
        discount ``lam >= 0``; ``ValueError`` naming the argument otherwise."""
        if kind not in UTILITY_KINDS:
            raise ValueError(f"kind must be one of {UTILITY_KINDS}, got {kind!r}")
        if not (np.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
        if not (np.isfinite(lam) and lam >= 0):
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
        dtype = jnp.result_type(float)
        return cls(jnp.asarray(beta, dtype), jnp.asarray(lam, dtype), kind)

    @property
    def risk_neutral(self) -> bool:
        """True for the linear utility (the revenue bound needs it)."""
        return self.kind == "linear"

    def __call__(self, h, s, p):
        x = s - p
        if self.kind == "linear":
            return x
        if self.kind == "risk_averse":
            return -jnp.expm1(-self.beta * x) / self.beta
        if self.kind == "risk_seeking":
            return jnp.expm1(self.beta * x) / self.beta
        return x / (1.0 + self.lam * h)
