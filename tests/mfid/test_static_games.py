"""Static games of mfid.games.static against hand-written costs, finite differences and closed
forms (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from mfid.games.static import BRAESS_INCIDENCE, AffineGame, Cournot, Routing


def _fd_grad(f, x, h=1e-6):
    x = np.asarray(x, float)
    out = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        out[i] = (f(x + e) - f(x - e)) / (2 * h)
    return out


def test_random_affine_game_is_strongly_monotone_and_not_symmetric():
    for seed in range(5):
        game = AffineGame.random(jax.random.key(seed), num_players=6, monotonicity=0.3)
        A = np.asarray(game.A)
        assert np.linalg.eigvalsh(A + A.T).min() >= 2 * 0.3 - 1e-12
        assert game.monotonicity() == pytest.approx(np.linalg.eigvalsh((A + A.T) / 2).min())
        assert np.abs(A - A.T).max() > 0.1
        Q = np.asarray(game.Q)
        assert np.allclose(Q, Q.T) and np.linalg.eigvalsh(Q).min() > 0
        x = np.random.default_rng(seed).normal(size=6)
        assert np.allclose(game.pseudo_gradient(jnp.asarray(x)), A @ x + np.asarray(game.b))
        c = np.asarray(game.c)
        S = lambda y, Q=Q, c=c: 0.5 * y @ Q @ y + c @ y  # noqa: E731
        assert np.allclose(game.social_gradient(jnp.asarray(x)), _fd_grad(S, x), atol=1e-7)
        assert np.allclose(game.social_optimum(), np.linalg.solve(Q, -c))


def test_non_monotone_example_is_spec_counterexample():
    game = AffineGame.non_monotone()
    assert np.array_equal(np.asarray(game.A), [[1.0, 10.0], [0.0, 1.0]])
    assert game.monotonicity() == pytest.approx(-4.0)  # eigenvalues of [[1, 5], [5, 1]]: -4, 6
    for x in ([0.0, 0.0], [3.0, -2.0]):
        assert np.allclose(game.social_gradient(jnp.asarray(x)), [1.0, 1.0])
    with pytest.raises(ValueError, match="Q is singular"):
        game.social_optimum()


def test_cournot_pseudo_gradient_is_each_firms_marginal_cost():
    game = Cournot.create()
    a, b = 20.0, 1.0
    c = np.array([1.0, 1.5, 2.0, 2.5, 3.0])
    d = np.array([0.5, 0.5, 1.0, 1.0, 1.5])

    def J(i, x):  # firm i's cost: production cost minus revenue
        return c[i] * x[i] + 0.5 * d[i] * x[i] ** 2 - x[i] * (a - b * x.sum())

    x = np.array([1.0, 2.0, 0.5, 1.5, 3.0])
    F = np.asarray(game.pseudo_gradient(jnp.asarray(x)))
    for i in range(5):
        e = np.eye(5)[i] * 1e-6
        assert F[i] == pytest.approx((J(i, x + e) - J(i, x - e)) / 2e-6, abs=1e-7)
    surplus = lambda y: a * y.sum() - 0.5 * b * y.sum() ** 2 - (c @ y + 0.5 * d @ y**2)  # noqa: E731
    assert float(game.social_cost(jnp.asarray(x))) == pytest.approx(-surplus(x))
    xs = np.asarray(game.social_optimum())
    # price equals every firm's marginal cost at the optimum, and F(x^s) = b x^s
    assert np.allclose(a - b * xs.sum(), c + d * xs)
    assert np.allclose(game.pseudo_gradient(jnp.asarray(xs)), b * xs)
    assert np.all(xs > 0)


def _routing_reference(game):
    """Hand-written latencies, potential and system cost of the default routing game."""
    D = BRAESS_INCIDENCE
    a = np.array([0.5, 1.5, 1.5, 0.5, 0.25])
    b = np.array([0.2, 0.5, 0.5, 0.2, 0.5])
    c = np.array([0.005, 0.02, 0.02, 0.005, 0.0])
    omega, m, tau = 5.0, 6.0, 0.25

    def ent(x):
        x0 = m - x.sum()
        return np.sum(x * np.log(x)) + x0 * np.log(x0)

    def potential(x):  # Beckmann potential + logit entropy + outside option
        f = D @ x
        return np.sum(a * f + b * f**2 / 2 + c * f**5 / 5) - omega * x.sum() + tau * ent(x)

    def system_cost(x):
        f = D @ x
        return np.sum(f * (a + b * f + c * f**4)) + omega * (m - x.sum()) + tau * ent(x)

    def mc_tolls(x):
        f = D @ x
        return D.T @ (f * (b + 4 * c * f**3))

    return potential, system_cost, mc_tolls


def test_routing_game_against_hand_written_potential_and_marginal_cost_tolls():
    game = Routing.create()
    potential, system_cost, mc_tolls = _routing_reference(game)
    x = np.array([1.2, 0.8, 1.5])
    F = np.asarray(game.pseudo_gradient(jnp.asarray(x)))
    assert np.allclose(F, _fd_grad(potential, x), atol=1e-7)
    assert float(game.social_cost(jnp.asarray(x))) == pytest.approx(system_cost(x), rel=1e-13)
    grad_S = np.asarray(game.social_gradient(jnp.asarray(x)))
    assert np.allclose(grad_S, _fd_grad(system_cost, x), atol=1e-7)
    assert np.allclose(grad_S, F + mc_tolls(x))  # grad S = F + marginal-cost tolls
    opt = minimize(system_cost, np.ones(3), jac=lambda y: _fd_grad(system_cost, y, 1e-7),
                   method="BFGS", options={"gtol": 1e-10})  # fmt: skip
    xs = opt.x
    assert np.all(xs > 0) and xs.sum() < 6.0
    p_star = -np.asarray(game.pseudo_gradient(jnp.asarray(xs)))
    assert np.allclose(p_star, mc_tolls(xs), atol=1e-6)
    assert np.allclose(game.marginal_cost_tolls(jnp.asarray(xs)), mc_tolls(xs))
    assert np.allclose(game.incidence.T @ game.edge_tolls(jnp.asarray(xs)), mc_tolls(xs))
    assert float(game.mass) == 6.0
    x0 = np.asarray(game.initial_action())
    assert np.allclose(x0, 1.5) and 6.0 - x0.sum() == pytest.approx(1.5)
    assert not np.isfinite(np.asarray(game.pseudo_gradient(jnp.array([-0.1, 1.0, 1.0])))).all()


def test_bad_input_raises_value_error_naming_the_argument():
    with pytest.raises(ValueError, match="A must be a non-empty square"):
        AffineGame.create([[1.0, 2.0]])
    with pytest.raises(ValueError, match="Q must be symmetric"):
        AffineGame.create(np.eye(2), Q=[[1.0, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="Q must be positive semi-definite"):
        AffineGame.create(np.eye(2), Q=-np.eye(2))
    with pytest.raises(ValueError, match="b must have shape"):
        AffineGame.create(np.eye(2), b=[1.0])
    with pytest.raises(ValueError, match="A must be finite"):
        AffineGame.create([[np.nan, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="num_players"):
        AffineGame.random(jax.random.key(0), num_players=0)
    with pytest.raises(ValueError, match="monotonicity"):
        AffineGame.random(jax.random.key(0), monotonicity=0.0)
    with pytest.raises(ValueError, match="intercept must exceed"):
        Cournot.create(intercept=2.0)
    with pytest.raises(ValueError, match="slope"):
        Cournot.create(slope=-1.0)
    with pytest.raises(ValueError, match="quadratic_cost must have shape"):
        Cournot.create(quadratic_cost=(1.0, 1.0))
    with pytest.raises(ValueError, match="full column rank"):
        Routing.create(incidence=[[1.0, 1.0], [1.0, 1.0]], free_flow=(1.0, 1.0),
                       linear=(1.0, 1.0), power=(0.0, 0.0))  # fmt: skip
    with pytest.raises(ValueError, match="dispersion"):
        Routing.create(dispersion=0.0)
    with pytest.raises(ValueError, match="free_flow must have shape"):
        Routing.create(free_flow=(1.0,))
    with pytest.raises(ValueError, match="p must have shape"):
        Cournot.create().check_action(jnp.zeros(3), "p")
    with pytest.raises(ValueError, match="x0 must be finite"):
        Cournot.create().check_action(jnp.full(5, jnp.nan), "x0")
