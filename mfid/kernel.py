"""Transition kernels as linear operators.

A kernel for one round is the map ``P(s' | s, a)`` with three views:

* ``push(L)``  -> ``mu'(s') = sum_{s,a} L(s, a) P(s'|s, a)``   (population push-forward), shape ``(S,)``
* ``pull(V)``  -> ``(P V)(s, a) = sum_{s'} P(s'|s, a) V(s')``     (value pull-back), shape ``(S, A)``
* ``dense()``  -> ``P`` itself, shape ``(S, A, S)`` (sampling, validation, tests)

Games whose kernel is sparse (beach bar moves one step; auction winners drop out) return a
structured kernel so that an OMD iteration never forms the dense ``S x A x S`` array.
Kernels are pytrees, so a ``lax.scan`` over rounds can stack them.
"""

from __future__ import annotations

import abc

import jax.numpy as jnp
from flax import struct

__all__ = ["DenseKernel", "Kernel"]


class Kernel(abc.ABC):
    """Interface of a one-round transition kernel ``P(s' | s, a)``, in three views::

        push(L)  -> mu'(s')  = sum_{s,a} L(s, a) P(s'|s, a)     L (S, A) -> (S,)
        pull(V)  -> (P V)(s, a) = sum_{s'} P(s'|s, a) V(s')    V (S,) -> (S, A)
        dense()  -> P                                         (S, A, S)

    Structured kernels implement ``push``/``pull`` without forming ``P``."""

    @abc.abstractmethod
    def push(self, L):
        """Push-forward ``L (S, A) -> mu' (S,)``."""

    @abc.abstractmethod
    def pull(self, V):
        """Pull-back ``V (S,) -> (P V) (S, A)``."""

    @abc.abstractmethod
    def dense(self):
        """The explicit ``(S, A, S)`` array."""


@struct.dataclass
class DenseKernel(Kernel):
    """A kernel stored as an explicit array ``P[s, a, s']``."""

    P: jnp.ndarray

    def push(self, L):
        return jnp.einsum("sa,sat->t", L, self.P)

    def pull(self, V):
        return self.P @ V

    def dense(self):
        return self.P
