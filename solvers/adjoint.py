"""How the T-step OMD loop is differentiated: adjoint objects (in the style of diffrax's and
optimistix's adjoints). The loop is written once, as ``steps(step, zeta0, args, n)``: ``n``
applications of a module-level ``step(zeta, args) -> zeta`` (OMD's :func:`solvers.omd.omd_step`
with ``args = (game, theta, tau, eta)``); each adjoint picks the loop primitive and so what
``jax.grad`` does through it.

==================  ==========  ==================================================================
adjoint             memory      how ``jax.grad`` goes through ``zeta_T``
==================  ==========  ==================================================================
``Unrolled``        O(T)        reverse mode through one ``lax.scan`` (``remat=True`` rematerialises
                                each step: only the iterates are stored)
``Checkpointed``    O(sqrt T)   AMID: ``n // segment`` segments of ``segment = ceil(sqrt T)`` steps
                                under ``jax.checkpoint`` (only segment starts stored; a segment is
                                recomputed in the backward pass, each step rematerialised for its
                                adjoint: time stays O(T), about three forward passes)
``Implicit``        O(1)        implicit function theorem at the fixed point ``zeta* = Phi(zeta*)``:
                                ``(I - d_zeta Phi)^T lam = v`` by matrix-free GMRES, then
                                ``lam^T d_args Phi``; valid only at a converged fixed point
``Reference``       O(T)        the hand-written recursion (a test oracle): store ``zeta_0..T-1``,
                                ``lam <- v``; for ``t = T-1..0``: ``grad += lam^T d_args Phi(zeta_t)``,
                                ``lam <- lam^T d_zeta Phi(zeta_t)``
==================  ==========  ==================================================================

``Unrolled``, ``Checkpointed`` and ``Reference`` differentiate the same T-step map and agree to
rounding error; ``Implicit`` differentiates the limit ``T -> infinity``. ``Implicit`` and
``Reference`` are ``jax.custom_vjp`` rules: forward-mode (``jax.jvp``) through them raises.
Through ``jax.grad``, ``Implicit`` refuses an unconverged fixed point or a failed linear solve
loudly (``throw=True``: the computation raises with the residuals) or poisons the gradient with
NaN (``throw=False``); :func:`solvers.gradients.value_and_grad` reports both residuals in its
status on every path.

References: Griewank and Walther, "Algorithm 799: revolve" (2000) for checkpointing; Christianson,
"Reverse accumulation and attractive fixed points" (1994) for the implicit adjoint.

Example::

    import jax, jax.numpy as jnp
    from solvers.adjoint import Checkpointed, Unrolled
    step = lambda z, a: 0.5 * z + a          # a contraction with fixed point 2a
    f = lambda a, adj: jnp.sum(adj.steps(step, jnp.zeros(3), a, 16))
    g1 = jax.grad(f)(jnp.ones(3), Checkpointed())
    g2 = jax.grad(f)(jnp.ones(3), Unrolled())
    assert jnp.allclose(g1, g2)
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from functools import partial
from typing import ClassVar

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.sparse.linalg import gmres

from mfid.checks import check_count, check_positive
from mfid.tree import tree_norm

__all__ = [
    "ADJOINTS",
    "AbstractAdjoint",
    "Checkpointed",
    "Implicit",
    "Reference",
    "Unrolled",
    "amid_segment",
    "as_adjoint",
]


def amid_segment(iters: int, segment: int | None = None) -> int:
    """Segment length of the checkpointed scan: ``segment`` or ``ceil(sqrt(iters))``."""
    if segment is None:
        return max(1, math.isqrt(iters - 1) + 1) if iters > 1 else 1
    return int(segment)


class AbstractAdjoint(abc.ABC):
    """An adjoint: ``steps(step, zeta0, args, n)`` runs the loop; ``vjp`` returns ``zeta_T`` and a
    pullback ``v -> (d_args, stats)`` (``stats``: the adjoint's residuals, reported as a status)."""

    name: ClassVar[str]

    @abc.abstractmethod
    def steps(self, step: Callable, zeta0, args, n):
        """``n`` applications of ``step`` from ``zeta0``."""

    def vjp(self, step: Callable, zeta0, args, n: int):
        """``(zeta_T, pullback)`` with ``pullback(v) = (v^T d zeta_T / d args, stats)``."""
        zT, f = jax.vjp(lambda a: self.steps(step, zeta0, a, n), args)
        return zT, lambda v: (f(v)[0], {})


@dataclasses.dataclass(frozen=True)
class Unrolled(AbstractAdjoint):
    """Reverse mode through one ``lax.scan`` (O(T) memory). ``n`` may be a traced integer for
    forward-only use (then a ``fori_loop``); ``remat=True`` wraps each step in
    ``jax.checkpoint`` saving nothing, so differentiating stores only the iterates."""

    remat: bool = False
    name: ClassVar[str] = "unrolled"

    def steps(self, step, zeta0, args, n):
        f = step
        if self.remat:
            f = jax.checkpoint(step, policy=jax.checkpoint_policies.nothing_saveable)
        if not isinstance(n, int):
            return lax.fori_loop(0, n, lambda _, z: f(z, args), zeta0)
        if n == 0:
            return zeta0
        return lax.scan(lambda z, _: (f(z, args), None), zeta0, None, length=n)[0]


@dataclasses.dataclass(frozen=True)
class Checkpointed(AbstractAdjoint):
    """AMID: O(sqrt T) memory with segments of ``segment`` steps (default ``ceil(sqrt T)``; the
    last one may be shorter) under ``jax.checkpoint``."""

    segment: int | None = None
    name: ClassVar[str] = "amid"

    def __post_init__(self):
        if self.segment is not None:
            check_count(self.segment, "segment")

    def steps(self, step, zeta0, args, n):
        seg = amid_segment(n, self.segment)
        n_seg, rest = divmod(n, seg)
        inner = Unrolled(remat=True)
        block = jax.checkpoint(lambda z, a, k: inner.steps(step, z, a, k), static_argnums=(2,))
        zeta = zeta0
        if n_seg:
            zeta = lax.scan(lambda z, _: (block(z, args, seg), None), zeta, None, length=n_seg)[0]
        if rest:
            zeta = block(zeta, args, rest)
        return zeta


def _gmres_solve(matvec, b, tol: float, maxiter: int):
    """Matrix-free GMRES on a pytree right-hand side; returns the solution and the relative
    residual ``||A x - b|| / ||b||``."""
    n = sum(x.size for x in jax.tree_util.tree_leaves(b))
    x, _ = gmres(matvec, b, tol=tol, atol=0.0, restart=int(min(n, 50)), maxiter=maxiter)
    r = jax.tree_util.tree_map(jnp.subtract, matvec(x), b)
    tiny = jnp.finfo(jax.tree_util.tree_leaves(b)[0].dtype).tiny
    return x, tree_norm(r) / jnp.maximum(tree_norm(b), tiny)


def _refuse(bad, fp, lin):
    if bad:
        raise ValueError(
            f"Implicit adjoint refused: fixed-point residual {float(fp):.3g}, linear-solve "
            f"residual {float(lin):.3g} (OMD has not converged or I - d Phi is ill-conditioned: "
            "increase iters or tau, or use the Checkpointed adjoint)"
        )


@dataclasses.dataclass(frozen=True)
class Implicit(AbstractAdjoint):
    """Implicit-function-theorem adjoint at the fixed point (O(1) memory in T).

    ``linear_tol``: relative tolerance of the GMRES solve of ``(I - d_zeta Phi)^T lam = v``
    (at most ``maxiter`` restarts); the gradient is refused when the fixed-point residual
    ``||Phi(zeta_T) - zeta_T||_inf`` exceeds ``fixed_point_tol`` or the solve's residual exceeds
    ``100 * linear_tol``. Derivatives with respect to ``zeta0`` are zero (the fixed point does not
    depend on it)."""

    linear_tol: float = 1e-11
    maxiter: int = 40
    fixed_point_tol: float = 1e-9
    throw: bool = True
    name: ClassVar[str] = "implicit"

    def __post_init__(self):
        check_positive(self.linear_tol, "linear_tol")
        check_count(self.maxiter, "maxiter")
        check_positive(self.fixed_point_tol, "fixed_point_tol", allow_zero=True)

    def pullback(self, step, zT, args, v):
        """``(lam^T d_args Phi(zeta_T), stats)`` with ``lam`` the adjoint solve's solution."""
        fz, vjp = jax.vjp(step, zT, args)
        lam, lin = _gmres_solve(lambda x: x - vjp(x)[0], v, self.linear_tol, self.maxiter)
        fp = jnp.max(jnp.abs(fz - zT))
        return vjp(lam)[1], {"linear_residual": lin, "fixed_point_residual": fp}

    def refused(self, stats):
        """True where the fixed point or the linear solve fails its tolerance (NaN counts)."""
        fp, lin = stats["fixed_point_residual"], stats["linear_residual"]
        return ~(fp <= self.fixed_point_tol) | ~(lin <= 100.0 * self.linear_tol)

    def steps(self, step, zeta0, args, n):
        return _implicit_steps(step, n, self, zeta0, args)

    def vjp(self, step, zeta0, args, n):
        zT = Unrolled().steps(step, zeta0, args, n)
        return zT, partial(self.pullback, step, zT, args)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _implicit_steps(step, n, adjoint, zeta0, args):
    return Unrolled().steps(step, zeta0, args, n)


def _implicit_fwd(step, n, adjoint, zeta0, args):
    zT = Unrolled().steps(step, zeta0, args, n)
    return zT, (zT, args, jnp.zeros_like(zeta0))


def _implicit_bwd(step, n, adjoint, res, v):
    zT, args, zero = res
    d_args, stats = adjoint.pullback(step, zT, args, v)
    bad = adjoint.refused(stats)
    if adjoint.throw:
        jax.debug.callback(
            _refuse, bad, stats["fixed_point_residual"], stats["linear_residual"]
        )
    nan = jnp.asarray(jnp.nan, zT.dtype)
    d_args = jax.tree_util.tree_map(
        lambda x: x if x.dtype == jax.dtypes.float0 else jnp.where(bad, nan.astype(x.dtype), x),
        d_args,
    )
    return zero, d_args


_implicit_steps.defvjp(_implicit_fwd, _implicit_bwd)


def _tree_add(a, b):
    return jax.tree_util.tree_map(
        lambda x, y: x if x.dtype == jax.dtypes.float0 else x + y, a, b
    )


@dataclasses.dataclass(frozen=True)
class Reference(AbstractAdjoint):
    """The hand-written adjoint recursion (AMID's Algorithm 1 with every iterate stored): a test
    oracle for the other adjoints, reached through ``jax.grad`` by a ``jax.custom_vjp`` rule."""

    name: ClassVar[str] = "reference"

    def steps(self, step, zeta0, args, n):
        if n == 0:
            return zeta0
        return _reference_steps(step, n, zeta0, args)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _reference_steps(step, n, zeta0, args):
    return Unrolled().steps(step, zeta0, args, n)


def _reference_fwd(step, n, zeta0, args):
    zT, zs = lax.scan(lambda z, _: (step(z, args), z), zeta0, None, length=n)
    return zT, (zs, args)


def _reference_bwd(step, n, res, v):
    zs, args = res

    def back(z_t, lam):
        _, vjp = jax.vjp(step, z_t, args)
        return vjp(lam)

    lam, acc = back(zs[-1], v)

    def body(carry, z_t):
        lam, acc = carry
        d_z, d_a = back(z_t, lam)
        return (d_z, _tree_add(acc, d_a)), None

    (lam, acc), _ = lax.scan(body, (lam, acc), zs[:-1], reverse=True)
    return lam, acc


_reference_steps.defvjp(_reference_fwd, _reference_bwd)


ADJOINTS = {
    "unrolled": Unrolled,
    "amid": Checkpointed,
    "checkpointed": Checkpointed,
    "implicit": Implicit,
    "reference": Reference,
}
"""CLI names of the adjoints (``amid`` is :class:`Checkpointed`)."""


def as_adjoint(adjoint) -> AbstractAdjoint:
    """An adjoint object, or one built from its CLI name (``"amid"``, ``"unrolled"``, ...)."""
    if isinstance(adjoint, AbstractAdjoint):
        return adjoint
    if isinstance(adjoint, str) and adjoint in ADJOINTS:
        return ADJOINTS[adjoint]()
    raise ValueError(
        f"adjoint must be an adjoint object or one of {tuple(ADJOINTS)}, got {adjoint!r}"
    )
