"""Atomic checkpoints of a pytree (``.npz`` + ``os.replace``) with a fingerprint of the full
configuration that produced it.

A checkpoint holds the tree's leaves, a step counter, a trace (lists of numbers) and the
fingerprint: a SHA-256 over a JSON description of the configuration and the bytes of every array
it depends on (game parameters, initial parameters, PRNG key). Loading refuses, with a one-line
``ValueError`` naming the file, a checkpoint of another configuration, of another tree structure,
or one that cannot be read (truncated, corrupt).

Example::

    import jax.numpy as jnp
    from solvers.checkpoint import fingerprint, load_checkpoint, save_checkpoint
    fp = fingerprint({"lr": 0.1}, jnp.ones(3))
    save_checkpoint("/tmp/ck.npz", {"w": jnp.zeros(3)}, step=5, trace={"f": [1.0]}, fingerprint=fp)
    tree, step, trace = load_checkpoint("/tmp/ck.npz", {"w": jnp.zeros(3)}, fp)
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["fingerprint", "load_checkpoint", "save_checkpoint"]


class _Refused(ValueError):
    """A readable checkpoint of another run."""


def _leaf_bytes(x) -> bytes:
    if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    arr = np.asarray(x)
    return str(arr.dtype).encode() + str(arr.shape).encode() + arr.tobytes()


def fingerprint(config: dict, *trees) -> str:
    """SHA-256 of ``config`` (JSON, keys sorted; non-JSON values by ``repr``) and of every array
    leaf of ``trees``."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=repr).encode())
    for tree in trees:
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        h.update(str(treedef).encode())
        for leaf in leaves:
            h.update(_leaf_bytes(leaf))
    return h.hexdigest()


def save_checkpoint(path, tree, *, step: int, trace: dict, fingerprint: str) -> None:
    """Write ``tree`` (its leaves), ``step``, ``trace`` and ``fingerprint`` atomically to ``path``
    (a temporary file, ``fsync``, then ``os.replace``)."""
    path = os.fspath(path)
    leaves = jax.tree_util.tree_leaves(tree)
    arrays = {f"leaf_{i}": _as_numpy(x) for i, x in enumerate(leaves)}
    arrays.update({f"trace_{k}": np.asarray(v) for k, v in trace.items()})
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as fh:
        np.savez(fh, step=np.asarray(step), fingerprint=np.asarray(fingerprint), **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _as_numpy(x):
    if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(x))
    return np.asarray(x)


def load_checkpoint(path, like, fingerprint: str):
    """``(tree, step, trace)`` from ``path``, with ``like``'s structure and dtypes; raises
    ``ValueError`` naming ``path`` for another configuration or an unreadable file."""
    path = os.fspath(path)
    try:
        with np.load(path) as data:
            if str(data["fingerprint"]) != fingerprint:
                raise _Refused(
                    f"checkpoint {path} holds a run with other settings; use a new checkpoint "
                    "directory or the same settings"
                )
            leaves, treedef = jax.tree_util.tree_flatten(like)
            new = []
            for i, x in enumerate(leaves):
                arr = data[f"leaf_{i}"]
                if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                    new.append(jax.random.wrap_key_data(jnp.asarray(arr)))
                    continue
                if arr.shape != np.shape(x):
                    raise _Refused(f"checkpoint {path} does not match this run's parameters")
                new.append(jnp.asarray(arr, dtype=jnp.asarray(x).dtype))
            trace = {k[6:]: data[k].tolist() for k in data.files if k.startswith("trace_")}
            return jax.tree_util.tree_unflatten(treedef, new), int(data["step"]), trace
    except _Refused:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"checkpoint {path} cannot be read ({type(err).__name__}); delete it "
                         "or use a new checkpoint directory") from None  # fmt: skip
