"""Zeroth-order estimators: unbiasedness for the smoothed objective (statistical, fixed seed),
sphere directions, ANNEAL's keep-the-best rule, evaluation counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solvers import Anneal, Exact, TwoPoint, as_estimator
from solvers.zeroth_order import anneal_step, sphere_direction, two_point_gradient

D = 5
RNG = np.random.default_rng(0)
M = RNG.normal(size=(D, D))
A = jnp.asarray(M @ M.T + np.eye(D))
B = jnp.asarray(RNG.normal(size=D))
N_DIRS = 40_000  # standard error of the mean ~ 1/200 of the per-direction spread


def quadratic(x):
    return 0.5 * x @ A @ x + B @ x


def cubic(x):
    return jnp.sum(x**3)


def _mean_and_stderr(f, x, u, key):
    """Mean of the two-point estimator over N_DIRS directions and its standard error."""
    keys = jax.random.split(key, N_DIRS)
    samples = jax.vmap(lambda k: two_point_gradient(f, x, k, u, 1))(keys)
    mean = np.asarray(samples.mean(0))
    return mean, np.asarray(samples.std(0)) / np.sqrt(N_DIRS)


def test_two_point_estimator_is_unbiased_on_a_quadratic():
    # For a quadratic the ball-smoothed objective differs by a constant: E[g_u] = grad f exactly.
    x = jnp.asarray(RNG.normal(size=D))
    mean, se = _mean_and_stderr(quadratic, x, 0.3, jax.random.PRNGKey(1))
    exact = np.asarray(A @ x + B)
    # tolerance: 5 standard errors per coordinate (fixed seed; a wrong D/(2u) scale is off by
    # a factor, i.e. by hundreds of standard errors)
    assert np.all(np.abs(mean - exact) <= 5 * se), (mean, exact, se)
    assert np.all(5 * se < 0.1 * np.abs(exact).max())


def test_two_point_estimator_targets_the_smoothed_gradient():
    # f(x) = sum x^3: grad f_u(x) = 3 x^2 + 3 u^2 / (D + 2) (ball smoothing, E[v_i^2] = 1/(D+2))
    x = jnp.asarray(RNG.normal(size=D))
    u = 1.0
    mean, se = _mean_and_stderr(cubic, x, u, jax.random.PRNGKey(2))
    smoothed = 3 * np.asarray(x) ** 2 + 3 * u**2 / (D + 2)
    assert np.all(np.abs(mean - smoothed) <= 5 * se), (mean, smoothed, se)
    # the shift 3u^2/(D+2) = 0.43 is many standard errors away from the unsmoothed gradient
    assert np.all(np.abs(mean - 3 * np.asarray(x) ** 2) > 5 * se)


def test_two_point_gradient_on_pytrees_averages_directions():
    theta = {"a": jnp.ones(2), "b": jnp.asarray([[0.5, -1.0]])}

    def f(t):
        return jnp.sum(t["a"] ** 2) + 3.0 * jnp.sum(t["b"])

    g = two_point_gradient(f, theta, jax.random.PRNGKey(3), u=1e-4, num_directions=20_000)
    assert jax.tree_util.tree_structure(g) == jax.tree_util.tree_structure(theta)
    np.testing.assert_allclose(np.asarray(g["a"]), [2.0, 2.0], atol=0.15)
    np.testing.assert_allclose(np.asarray(g["b"]), [[3.0, 3.0]], atol=0.15)


def test_sphere_direction_has_unit_norm():
    theta = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}
    z = sphere_direction(jax.random.PRNGKey(4), theta)
    norm = np.sqrt(sum(float(jnp.sum(v**2)) for v in jax.tree_util.tree_leaves(z)))
    assert abs(norm - 1.0) < 1e-12


def test_anneal_keeps_the_best_point():
    key = jax.random.PRNGKey(5)
    x = jnp.asarray(RNG.normal(size=D))
    sigma = 0.5
    n = jax.random.normal(key, (D,), x.dtype)
    cands = [x, x + sigma * n, x - sigma * n]
    best = min(cands, key=lambda c: float(quadratic(c)))
    new, val = anneal_step(quadratic, x, quadratic(x), key, sigma)
    np.testing.assert_allclose(np.asarray(new), np.asarray(best), rtol=0, atol=1e-14)
    assert abs(float(val) - float(quadratic(best))) < 1e-12
    # a run of steps never increases the objective and makes progress
    step = jax.jit(lambda t, v, k: anneal_step(quadratic, t, v, k, 0.3))
    t, v = x, quadratic(x)
    values = [float(v)]
    for k in jax.random.split(jax.random.PRNGKey(6), 200):
        t, v = step(t, v, k)
        values.append(float(v))
    assert np.all(np.diff(values) <= 0)
    x_star = -np.linalg.solve(np.asarray(A), np.asarray(B))
    f_star = float(quadratic(jnp.asarray(x_star)))
    assert values[-1] - f_star < 0.1 * (values[0] - f_star)


def test_evaluation_counts_and_bad_arguments():
    assert as_estimator("zeroth-sgd", directions=4).evaluations_per_step == 9
    assert TwoPoint(directions=1).evaluations_per_step == 3
    assert Anneal().evaluations_per_step == 3
    assert Exact().evaluations_per_step == 1
    with pytest.raises(ValueError, match="method"):
        as_estimator("newton")
    with pytest.raises(ValueError, match="num_directions"):
        two_point_gradient(quadratic, jnp.zeros(D), jax.random.PRNGKey(0), 0.1, 0)
