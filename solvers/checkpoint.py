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

A *record* (:func:`save_record` / :func:`load_record`) is the finished counterpart: named arrays
and a JSON description of a completed piece of work (e.g. one method of a study with its
evaluated equilibria), refused in the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["fingerprint", "load_checkpoint", "load_record", "save_checkpoint", "save_record"]


class _Refused(ValueError):
    """A readable checkpoint of another run."""


def _leaf_bytes(x) -> bytes:
    if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    arr = np.asarray(x)
    return str(arr.dtype).encode() + str(arr.shape).encode() + arr.tobytes()


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _stable(text: str) -> bytes:
    """``text`` without the memory addresses that ``repr`` of a function or object carries (a
    flax module's tree structure holds functions), so a fingerprint is the same in every
    process."""
    return _ADDRESS.sub("", text).encode()


def fingerprint(config: dict, *trees) -> str:
    """SHA-256 of ``config`` (JSON, keys sorted; non-JSON values by ``repr``), the structure of
    every tree and every array leaf of ``trees``; the same in every process (memory addresses
    in a ``repr`` are ignored)."""
    h = hashlib.sha256(_stable(json.dumps(config, sort_keys=True, default=repr)))
    for tree in trees:
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        h.update(_stable(str(treedef)))
        for leaf in leaves:
            h.update(_leaf_bytes(leaf))
    return h.hexdigest()


def _write_npz(path: str, **arrays) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_checkpoint(path, tree, *, step: int, trace: dict, fingerprint: str) -> None:
    """Write ``tree`` (its leaves), ``step``, ``trace`` and ``fingerprint`` atomically to ``path``
    (a temporary file, ``fsync``, then ``os.replace``)."""
    path = os.fspath(path)
    leaves = jax.tree_util.tree_leaves(tree)
    arrays = {f"leaf_{i}": _as_numpy(x) for i, x in enumerate(leaves)}
    arrays.update({f"trace_{k}": np.asarray(v) for k, v in trace.items()})
    _write_npz(path, step=np.asarray(step), fingerprint=np.asarray(fingerprint), **arrays)


def save_record(path, arrays: dict, meta: dict, *, fingerprint: str) -> None:
    """Write the named ``arrays`` (names must not start with ``_``), the JSON-able ``meta``
    (floats round-trip exactly; NaN/inf allowed) and ``fingerprint`` atomically to ``path``."""
    path = os.fspath(path)
    if any(k.startswith("_") for k in arrays):
        raise ValueError("record array names must not start with '_'")
    data = {k: _as_numpy(v) for k, v in arrays.items()}
    _write_npz(path, _fingerprint=np.asarray(fingerprint), _meta=np.asarray(json.dumps(meta)),
               **data)  # fmt: skip


def _as_numpy(x):
    if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(x))
    return np.asarray(x)


def _other_settings(path: str) -> _Refused:
    return _Refused(f"checkpoint {path} holds a run with other settings; use a new checkpoint "
                    "directory or the same settings")  # fmt: skip


def _unreadable(path: str, err: Exception) -> ValueError:
    return ValueError(f"checkpoint {path} cannot be read ({type(err).__name__}); delete it "
                      "or use a new checkpoint directory")  # fmt: skip


_READ_ERRORS = (ValueError, TypeError, OSError, EOFError, KeyError, IndexError,
                zipfile.BadZipFile)  # fmt: skip


def load_record(path, fingerprint: str) -> tuple[dict, dict]:
    """``(arrays, meta)`` of a record written by :func:`save_record`; raises ``ValueError``
    naming ``path`` for another configuration or an unreadable file."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["_fingerprint"]) != fingerprint:
                raise _other_settings(path)
            meta = json.loads(str(data["_meta"]))
            arrays = {k: data[k] for k in data.files if not k.startswith("_")}
        if not isinstance(meta, dict):
            raise TypeError("meta is not a JSON object")
        return arrays, meta
    except _Refused:
        raise
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from None


def load_checkpoint(path, like, fingerprint: str):
    """``(tree, step, trace)`` from ``path``, with ``like``'s structure and dtypes; raises
    ``ValueError`` naming ``path`` for another configuration or an unreadable file."""
    path = os.fspath(path)
    try:
        with np.load(path) as data:
            if str(data["fingerprint"]) != fingerprint:
                raise _other_settings(path)
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
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from None
