"""Saved mechanisms: the parameters and everything needed to rebuild a designed mechanism.

A saved mechanism is a directory with ``mechanism.json`` (format version, the setting and the
keyword arguments of :func:`auctions.settings.make` that rebuild its game and network
structure, the design method and seed, and the equilibrium settings ``tau``/``eta``/``tol``
under which it was reported) and ``params.npz`` (the parameter leaves, keyed by their pytree
path). :func:`load_mechanism` rebuilds the setting and returns the saved parameters in its
structure, so ``revenue(game, theta, ...)`` at the re-solved equilibrium reproduces the report.

Example::

    import jax
    from auctions import make
    from auctions.saved import load_mechanism, save_mechanism
    st = make("A1", num_values=6, num_bids=5, width=8, key=jax.random.key(0))
    save_mechanism("/tmp/mech", setting="A1", make_kwargs={"num_values": 6, "num_bids": 5,
                   "width": 8, "seed": 0}, theta=st.theta0, method="initial", seed=0,
                   equilibrium={"tau": 1e-3, "eta": 10.0, "tol": 1e-9, "max_iters": 10000})
    setting, theta, meta = load_mechanism("/tmp/mech")
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from auctions.settings import make

__all__ = ["FORMAT", "load_mechanism", "save_mechanism"]

FORMAT = "mfid-mechanism/1"
_MAKE_KEYS = ("num_values", "num_bids", "width", "depth", "draws", "seed")


def _paths(tree):
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(p) for p, _ in flat], [x for _, x in flat]


def save_mechanism(path, *, setting: str, make_kwargs: dict, theta, method: str, seed: int,
                   equilibrium: dict, extra: dict | None = None) -> Path:  # fmt: skip
    """Write ``mechanism.json`` and ``params.npz`` into the directory ``path`` (created).
    ``make_kwargs``: the :func:`~auctions.settings.make` arguments (``seed`` is the network key's
    seed, ``jax.random.key(seed)``); ``equilibrium``: ``tau``, ``eta``, ``tol``, ``max_iters``."""
    bad = set(make_kwargs) - set(_MAKE_KEYS)
    if bad:
        raise ValueError(f"make_kwargs has unknown keys {sorted(bad)}; allowed {_MAKE_KEYS}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    names, leaves = _paths(theta)
    arrays = {f"p{i}": np.asarray(x) for i, x in enumerate(leaves)}
    tmp = path / ".params.npz.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path / "params.npz")
    meta = {
        "format": FORMAT,
        "setting": setting,
        "make": dict(make_kwargs),
        "method": method,
        "seed": int(seed),
        "equilibrium": dict(equilibrium),
        "leaves": names,
        **(extra or {}),
    }
    (path / "mechanism.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def load_mechanism(path):
    """``(setting, theta, meta)``: the rebuilt :class:`~auctions.settings.Setting`, the saved
    parameters in its structure and the ``mechanism.json`` content. Raises ``ValueError``
    naming the directory when it is not a saved mechanism or does not match its setting."""
    path = Path(path)
    try:
        meta = json.loads((path / "mechanism.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"--mechanism {path} is not a saved mechanism (mechanism.json: "
                         f"{type(err).__name__})") from None  # fmt: skip
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown mechanism format {meta.get('format')!r}")
    kw = dict(meta["make"])
    seed = kw.pop("seed", 0)
    setting = make(meta["setting"], key=jax.random.key(int(seed)), **kw)
    names, like = _paths(setting.theta0)
    if names != meta["leaves"]:
        raise ValueError(f"{path}: the saved parameters do not match setting {meta['setting']}")
    try:
        with np.load(path / "params.npz") as data:
            leaves = [jnp.asarray(data[f"p{i}"], dtype=jnp.asarray(x).dtype)
                      for i, x in enumerate(like)]  # fmt: skip
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path}/params.npz cannot be read ({type(err).__name__})") from None
    for got, want in zip(leaves, like, strict=True):
        if got.shape != jnp.shape(want):
            raise ValueError(f"{path}: a saved parameter has shape {got.shape}, expected "
                             f"{jnp.shape(want)}")  # fmt: skip
    theta = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(setting.theta0), leaves)
    return setting, theta, meta
