"""Value kernels and the structured transition kernel of the batched auction.

State layout: ``S = K + 1`` states, value levels ``v_k = k / K`` at indices ``0..K-1`` and the
inactive state ``⊥`` at the last index ``K``. A round's transition is "winner -> ⊥, loser keeps
its value" followed by the value kernel ``w_h(s' | z)``:

* values move by a row-stochastic drift matrix ``W (K, K)`` (``None``: identity,
  single-minded bidders keep their value);
* ``⊥`` regenerates with probability ``rho``: it draws a fresh value from ``g (K,)`` (the value
  part of ``mu0``, renormalised) and otherwise stays ``⊥``. A regenerated value is not drifted
  again in the same round.

With ``x(s) = sum_a L(s, a) (1 - p_win(a))`` the losers and ``b = sum_a L(⊥, a) +
sum_{s != ⊥, a} L(s, a) p_win(a)`` the inactive mass after the auction::

    push:  mu'(v) = (x W)(v) + rho b g(v),        mu'(⊥) = (1 - rho) b
    pull:  Vw(v)  = (W V_val)(v),                  Vw(⊥)  = rho g . V_val + (1 - rho) V(⊥)
           (P V)(s, a) = p_win(a) Vw(⊥) + (1 - p_win(a)) Vw(s)   (s != ⊥),   (P V)(⊥, a) = Vw(⊥)

Neither view forms the dense ``S x A x S`` array; :meth:`AuctionKernel.dense` does (for the
finite-N simulator and tests).

Example::

    import jax.numpy as jnp
    from auctions.kernels import AuctionKernel, ValueKernel
    vk = ValueKernel.create(num_values=10, rho=0.3, regen=jnp.full(10, 0.1), sigma=0.2)
    k = AuctionKernel(p_win=jnp.full(5, 0.5), value_kernel=vk)
    k.dense().shape   # (11, 5, 11)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mfid.kernel import Kernel

__all__ = ["ValueKernel", "AuctionKernel", "gaussian_drift"]


def gaussian_drift(num_values: int, sigma: float, dtype=None):
    """Row-stochastic Gaussian kernel on the value grid ``v_k = k/K``:
    ``W[k, l] ∝ exp(-(v_l - v_k)^2 / (2 sigma^2))``, each row normalised over the grid
    (mass that would leave ``[0, 1)`` is redistributed over the grid by the normalisation)."""
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    v = np.arange(num_values) / num_values
    W = np.exp(-((v[None, :] - v[:, None]) ** 2) / (2.0 * sigma**2))
    W /= W.sum(1, keepdims=True)
    return jnp.asarray(W, dtype or jnp.result_type(float))


@struct.dataclass
class ValueKernel:
    """Value kernel ``w_h``: drift ``W (K, K)`` or ``None`` (identity), regeneration probability
    ``rho`` from ``⊥`` to a fresh value drawn from ``regen (K,)``."""

    W: jnp.ndarray | None
    rho: jnp.ndarray
    regen: jnp.ndarray

    @classmethod
    def create(cls, num_values: int, *, rho: float = 0.0, regen=None, sigma: float | None = None):
        """The value kernel of ``num_values`` levels: Gaussian drift of width ``sigma`` (value
        units; ``None``: values stay), regeneration from ``⊥`` with probability ``rho`` in
        ``[0, 1]`` to a value drawn from ``regen (K,)`` (default uniform)."""
        if not (0.0 <= rho <= 1.0):
            raise ValueError(f"rho must lie in [0, 1], got {rho!r}")
        dtype = jnp.result_type(float)
        if regen is None:
            regen = np.full(num_values, 1.0 / num_values)
        regen = np.asarray(regen, dtype=np.float64)
        if regen.shape != (num_values,) or np.any(regen < 0) or not np.isclose(regen.sum(), 1.0):
            raise ValueError(f"regen must be a distribution over the {num_values} value levels")
        W = None if sigma is None else gaussian_drift(num_values, sigma, dtype)
        return cls(W, jnp.asarray(rho, dtype), jnp.asarray(regen, dtype))

    @property
    def single_minded(self) -> bool:
        """True when values never move and ⊥ never regenerates (checked on concrete ``rho``)."""
        return self.W is None and float(self.rho) == 0.0

    def push(self, x, b):
        """Push losers' value mass ``x (K,)`` and inactive mass ``b`` -> ``mu' (K + 1,)``."""
        xv = x if self.W is None else x @ self.W
        return jnp.concatenate([xv + self.rho * b * self.regen, ((1.0 - self.rho) * b)[None]])

    def pull(self, V):
        """Pull ``V (K + 1,)`` back through ``w``: ``Vw (K + 1,)``."""
        Vv = V[:-1]
        Vw = Vv if self.W is None else self.W @ Vv
        Vb = self.rho * (self.regen @ Vv) + (1.0 - self.rho) * V[-1]
        return jnp.concatenate([Vw, Vb[None]])

    def dense(self):
        """``w`` as an explicit ``(K + 1, K + 1)`` row-stochastic matrix."""
        K = self.regen.shape[0]
        return jax.vmap(self.pull, out_axes=1)(jnp.eye(K + 1, dtype=self.regen.dtype))


@struct.dataclass
class AuctionKernel(Kernel):
    """One round's transition: win with ``p_win (M,)`` -> ⊥, then the value kernel."""

    p_win: jnp.ndarray
    value_kernel: ValueKernel

    def push(self, L):
        act = L[:-1]
        lose = act @ (1.0 - self.p_win)
        b = jnp.sum(L[-1]) + jnp.sum(act @ self.p_win)
        return self.value_kernel.push(lose, b)

    def pull(self, V):
        Vw = self.value_kernel.pull(V)
        pw = self.p_win[None, :]
        act = pw * Vw[-1] + (1.0 - pw) * Vw[:-1, None]
        return jnp.concatenate([act, jnp.broadcast_to(Vw[-1], (1, pw.shape[1]))], axis=0)

    def dense(self):
        S = self.value_kernel.regen.shape[0] + 1
        return jax.vmap(self.pull, out_axes=-1)(jnp.eye(S, dtype=self.p_win.dtype))
