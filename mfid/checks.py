"""Argument validators shared by every entry point (each raises ``ValueError`` naming the
argument and the allowed range).

Validators inspect values only when they are concrete (not JAX tracers): inside ``jit`` they
return their input unchanged, so the same code runs eagerly (checked) and traced (unchecked).

Example::

    from mfid.checks import check_count, check_positive, check_distribution
    n = check_count(5, "n")                      # 5
    tau = check_positive(0.1, "tau", allow_zero=True)
    check_distribution([0.5, 0.5], "mu0")
"""

from __future__ import annotations

import math
from numbers import Real

import jax
import numpy as np

__all__ = [
    "check_count",
    "check_distribution",
    "check_kernel",
    "check_key",
    "check_ns",
    "check_policy",
    "check_positive",
    "check_probability",
    "check_stochastic",
    "check_theta",
    "is_concrete",
]

DISTRIBUTION_ATOL = 1e-6


def is_concrete(*xs) -> bool:
    """True when no leaf of ``xs`` is a JAX tracer (safe to inspect values in Python)."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


def check_count(x, name: str, minimum: int = 1) -> int:
    """Return ``int(x)`` or raise ``ValueError`` unless ``x`` is an integer ``>= minimum``
    (``bool`` and floats such as ``2.7`` are refused)."""
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {x!r}")
    return int(x)


def _real(x, name: str) -> float:
    if isinstance(x, (bool, np.bool_)) or isinstance(x, (str, bytes)) or x is None:
        raise ValueError(f"{name} must be a real number, got {x!r}")
    if isinstance(x, Real):
        return float(x)
    arr = np.asarray(x)
    if arr.shape != () or arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a real number, got {x!r}")
    return float(arr)


def check_positive(x, name: str, *, allow_zero: bool = False, finite: bool = True):
    """Return ``x`` unchanged (a tracer passes through) after checking that it is a finite real
    number ``> 0`` (``>= 0`` with ``allow_zero``)."""
    if not is_concrete(x):
        return x
    v = _real(x, name)
    bad = math.isnan(v) or (finite and math.isinf(v)) or v < 0 or (v == 0 and not allow_zero)
    if bad:
        rng = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a {'finite ' if finite else ''}number {rng}, got {x!r}")
    return x


def check_probability(x, name: str):
    """Return ``x`` after checking that it is a real number in ``[0, 1]``."""
    if not is_concrete(x):
        return x
    v = _real(x, name)
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got {x!r}")
    return x


def check_distribution(mu, name: str, atol: float = DISTRIBUTION_ATOL) -> None:
    """Raise ``ValueError`` unless ``mu`` is a 1-D probability vector (finite, entries
    ``>= 0`` up to rounding ``1e-12``, summing to one within ``atol``)."""
    if not is_concrete(mu):
        return
    try:
        kind = np.asarray(mu).dtype.kind
        mu = np.asarray(mu, dtype=float)
    except (TypeError, ValueError):
        kind = "O"
    if kind not in "iuf":
        raise ValueError(f"{name} must be a 1-D probability vector of numbers") from None
    if mu.ndim != 1 or mu.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D probability vector, got shape {mu.shape}")
    if not np.all(np.isfinite(mu)):
        raise ValueError(f"{name} must be finite")
    if np.any(mu < -1e-12):
        raise ValueError(f"{name} must be non-negative (min {mu.min():.3g})")
    if abs(mu.sum() - 1.0) > atol:
        raise ValueError(f"{name} must sum to 1 (sums to {mu.sum():.6g})")


def check_stochastic(P, name: str, row: str, atol: float = DISTRIBUTION_ATOL) -> None:
    """Raise ``ValueError`` (naming ``name``) unless ``P`` is finite, non-negative and every row
    ``P[..., :]`` (described as ``row`` in the message) sums to one."""
    if not is_concrete(P):
        return
    P = np.asarray(P)
    if not np.all(np.isfinite(P)):
        raise ValueError(f"{name} must be finite")
    if np.any(P < -1e-12):
        raise ValueError(f"{name} must be non-negative (min {P.min():.3g})")
    rows = P.sum(-1)
    if not np.allclose(rows, 1.0, atol=atol, rtol=0.0):
        worst = float(np.abs(rows - 1).max())
        raise ValueError(f"{name}: every row {row} must sum to 1 (worst error {worst:.3g})")


def check_kernel(P, name: str = "transition", atol: float = DISTRIBUTION_ATOL) -> None:
    """Raise ``ValueError`` unless ``P[..., s']`` is a probability kernel (rows sum to one)."""
    check_stochastic(P, name, "P(.|s,a)", atol)


def check_policy(policy, shape, name: str = "policy", atol: float = DISTRIBUTION_ATOL):
    """Return ``policy`` as a floating array, or raise ``ValueError`` unless it has shape
    ``(H, S, A)``, is finite, non-negative and every row sums to one."""
    import jax.numpy as jnp

    policy = jnp.asarray(policy)
    if policy.shape != tuple(shape):
        raise ValueError(f"{name} must have shape (H, S, A) = {tuple(shape)}, got {policy.shape}")
    if not jnp.issubdtype(policy.dtype, jnp.floating):
        policy = policy.astype(jnp.result_type(float))
    check_stochastic(policy, name, "pi_h(.|s)", atol)
    return policy


def check_theta(theta, name: str = "theta", like=None, *, floating: bool = False) -> None:
    """Raise ``ValueError`` if a leaf of the parameter pytree is not a finite numeric array, or
    (with ``like``) if the tree structure or a leaf shape differs from ``like``'s. With
    ``floating=True`` (parameters that are differentiated or optimised) every leaf must be a real
    floating-point array."""
    if like is not None:
        s_got = jax.tree_util.tree_structure(theta)
        s_want = jax.tree_util.tree_structure(like)
        if s_got != s_want:
            raise ValueError(f"{name} must have the pytree structure {s_want}, got {s_got}")
        for got, want in zip(
            jax.tree_util.tree_leaves(theta), jax.tree_util.tree_leaves(like), strict=True
        ):
            if np.shape(got) != np.shape(want):
                raise ValueError(
                    f"{name}: a leaf has shape {np.shape(got)}, expected {np.shape(want)}"
                )
    if not is_concrete(theta):
        return
    for leaf in jax.tree_util.tree_leaves(theta):
        try:
            arr = np.asarray(leaf)
        except (TypeError, ValueError):
            raise ValueError(f"{name} leaves must be numeric arrays, got {leaf!r}") from None
        if arr.dtype.kind not in "fciub" and not jax.dtypes.issubdtype(
            arr.dtype, jax.dtypes.prng_key
        ):
            raise ValueError(f"{name} leaves must be numeric arrays, got dtype {arr.dtype}")
        if floating and arr.dtype.kind != "f":
            raise ValueError(
                f"{name} leaves must be real floating-point arrays (they are differentiated), "
                f"got dtype {arr.dtype}"
            )
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values")


def check_key(key, name: str = "key"):
    """A typed PRNG key from ``key``: a typed key (returned as it is), raw ``uint32`` key data
    of shape ``(..., 2)`` or an int seed; ``ValueError`` naming ``name`` for anything else
    (``None``, a bool, a float, a string)."""
    if isinstance(key, (bool, np.bool_)) or key is None or isinstance(key, (str, bytes, float)):
        raise ValueError(f"{name} must be a jax.random key or an int seed, got {key!r}")
    if isinstance(key, (int, np.integer)):
        return jax.random.key(int(key))
    if not is_concrete(key):
        return key
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return key
    arr = np.asarray(key) if dtype is not None else None
    if arr is None or arr.dtype != np.uint32 or arr.shape[-1:] != (2,):
        raise ValueError(f"{name} must be a jax.random key or an int seed, got {key!r}")
    return jax.random.wrap_key_data(key)


def check_ns(ns) -> list[int]:
    """The ``N`` grid as a sorted list of distinct integers ``>= 1`` (``ValueError`` otherwise)."""
    ns = list(ns)
    if not ns:
        raise ValueError("n must be a non-empty list of population sizes")
    out = [check_count(n, "n") for n in ns]
    if len(set(out)) != len(out):
        raise ValueError(f"n must not repeat population sizes, got {out}")
    return sorted(out)
