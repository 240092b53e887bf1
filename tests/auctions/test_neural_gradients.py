"""Gradients of revenue through OMD and the neural mechanism: cross-mode and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np

from auctions import make, revenue
from solvers.gradients import value_and_grad

SETTING = make("A1", num_values=6, num_bids=5, width=8, depth=1, key=jax.random.key(7))
GAME, THETA = SETTING.game, SETTING.theta0
OBJ = revenue
EPS = 1e-5
KW = dict(tau=0.05, eta=2.0, iters=25)


def flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def test_cross_mode_and_finite_differences():
    vals, grads = {}, {}
    for mode in ("unrolled", "amid", "reference"):
        v, g, aux = value_and_grad(GAME, OBJ, THETA, adjoint=mode, **KW)
        vals[mode], grads[mode] = float(v), flat(g)
    assert np.linalg.norm(grads["amid"]) > 1e-4
    for mode in ("amid", "reference"):
        np.testing.assert_allclose(vals[mode], vals["unrolled"], rtol=1e-13)
        np.testing.assert_allclose(grads[mode], grads["unrolled"], rtol=1e-9, atol=1e-13)
    # central finite differences along random directions in theta
    leaves, treedef = jax.tree.flatten(THETA)
    key = jax.random.key(0)
    for i in range(2):
        d = [
            jax.random.normal(jax.random.fold_in(key, 10 * i + j), x.shape)
            for j, x in enumerate(leaves)
        ]
        dirn = jax.tree.unflatten(treedef, d)
        plus = jax.tree.map(lambda x, y: x + EPS * y, THETA, dirn)
        minus = jax.tree.map(lambda x, y: x - EPS * y, THETA, dirn)
        fd = (
            float(value_and_grad(GAME, OBJ, plus, adjoint="amid", **KW)[0])
            - float(value_and_grad(GAME, OBJ, minus, adjoint="amid", **KW)[0])
        ) / (2 * EPS)
        np.testing.assert_allclose(grads["amid"] @ flat(dirn), fd, rtol=1e-6, atol=1e-10)


def test_forward_mode_agrees_with_reverse_mode():
    """jvp (forward mode) through the same OMD loop equals the reverse-mode gradient."""
    from mfid import rollout
    from solvers.gradients import omd_logits

    def G(theta):
        z = omd_logits(GAME, theta, tau=0.05, eta=2.0, iters=25, adjoint="unrolled")
        L, dyn = rollout(GAME, jax.nn.softmax(z, -1), theta)
        return OBJ(GAME, theta, L, dyn.info)

    _, g, _ = value_and_grad(GAME, OBJ, THETA, adjoint="amid", **KW)
    dirn = jax.tree.map(
        lambda x: jnp.cos(jnp.arange(x.size, dtype=x.dtype)).reshape(x.shape), THETA
    )
    _, jv = jax.jit(lambda t, d: jax.jvp(G, (t,), (d,)))(THETA, dirn)
    np.testing.assert_allclose(float(jv), flat(g) @ flat(dirn), rtol=1e-10)
