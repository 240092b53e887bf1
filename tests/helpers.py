"""Shared test helpers: finite differences, tree flattening, a no-recompile check."""

import contextlib
import logging

import jax
import numpy as np


def flat(tree):
    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree_util.tree_leaves(tree)])


def rel(a, b):
    a, b = flat(a), flat(b)
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def random_direction(key, tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [jax.random.normal(k, np.shape(x)) for k, x in zip(keys, leaves, strict=True)]
    )


def fd_directional(f, theta, direction, h=1e-5):
    """Central difference ``(f(theta + h d) - f(theta - h d)) / 2h``."""
    plus = jax.tree_util.tree_map(lambda x, d: x + h * d, theta, direction)
    minus = jax.tree_util.tree_map(lambda x, d: x - h * d, theta, direction)
    return (float(f(plus)) - float(f(minus))) / (2 * h)


@contextlib.contextmanager
def compiles():
    """Collect the names of the XLA compilations inside the block (from ``jax.log_compiles``)."""
    names: list[str] = []

    class _Handler(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if msg.startswith("Compiling "):
                names.append(msg.split(" ")[1])

    handler = _Handler(level=logging.DEBUG)
    logger = logging.getLogger("jax")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles():
            yield names
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


@contextlib.contextmanager
def no_recompile(*names):
    """Fail if any jitted function whose name contains one of ``names`` compiles in the block."""
    with compiles() as seen:
        yield
    hits = [n for n in seen if any(k in n for k in names)]
    assert not hits, f"recompiled: {hits}"
