"""Small pytree and numerics helpers used across packages.

Example::

    import jax.numpy as jnp
    from mfid.tree import tree_norm, all_finite, safe_log
    tree_norm({"a": jnp.ones(4)})        # 2.0
    all_finite({"a": jnp.ones(4)})       # True
    safe_log(jnp.array([0.0, 1.0]))      # [0., 0.]: log where p > 0, 0 elsewhere
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["all_finite", "cast_floating", "safe_log", "tree_norm", "xlogx"]


def cast_floating(tree, dtype):
    """``tree`` with every floating-point array leaf cast to ``dtype`` (other leaves kept).

    Used to run a game and its parameters in another precision, e.g.
    ``cast_floating((game, theta), jnp.float32)`` for float32 design gradients."""
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")

    def cast(x):
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
            return jnp.asarray(x).astype(dtype)
        return x

    return jax.tree_util.tree_map(cast, tree)


def tree_norm(tree):
    """Euclidean norm of all leaves of ``tree`` together (0 for an empty tree)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.zeros(())
    return jnp.sqrt(sum(jnp.vdot(x, x).real for x in leaves))


def all_finite(*trees):
    """Scalar boolean: every floating leaf of ``trees`` is finite."""
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree_util.tree_leaves(trees)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def safe_log(p):
    """``log p`` where ``p > 0`` and ``0`` elsewhere (finite gradients at ``p = 0``)."""
    return jnp.log(jnp.where(p > 0, p, 1.0))


def xlogx(p, log_p=None):
    """``p log p`` with ``0 log 0 = 0``; ``log_p`` may be given when it is already known."""
    log_p = safe_log(p) if log_p is None else log_p
    return jnp.where(p > 0, p * log_p, 0.0)
