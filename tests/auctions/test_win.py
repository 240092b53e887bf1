"""Win probability against brute-force finite-N tie-breaking and the finite-N auction's own
allocation, conventions and gradients."""

import itertools
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from auctions import allocated_mass, win_probability
from auctions.simulate import allocate


def brute_force_win(counts, items):
    """Exact win frequency per bid level: ``items`` go to the highest of the agents' bids, ties
    at the threshold broken by a uniformly random order (all orders enumerated)."""
    agents = [a for a, c in enumerate(counts) for _ in range(c)]
    wins = [Fraction(0)] * len(counts)
    perms = list(itertools.permutations(range(len(agents))))
    for perm in perms:  # a uniformly random priority among all agents
        order = sorted(range(len(agents)), key=lambda i: (-agents[i], perm[i]))
        for i in order[:items]:
            wins[agents[i]] += Fraction(1, len(perms))
    return [w / c if c else Fraction(0) for w, c in zip(wins, counts, strict=True)]


@pytest.mark.parametrize(
    "counts,items",
    [((2, 3, 1, 0), 2), ((1, 2, 2, 1), 4), ((0, 3, 2, 2), 1), ((2, 0, 3, 1), 6), ((2, 1, 2), 2)],
)
def test_matches_finite_n_enumeration(counts, items):
    N = 7  # one agent of the 7 is inactive when sum(counts) = 6: nu is a sub-probability
    nu = jnp.asarray(counts, jnp.float64) / N
    p = np.asarray(win_probability(nu, items / N))
    exact = [float(x) for x in brute_force_win(counts, items)]
    np.testing.assert_allclose(
        p[np.asarray(counts) > 0], np.asarray(exact)[np.asarray(counts) > 0], atol=1e-14
    )


@pytest.mark.parametrize("N", [10, 40, 160, 640])
def test_large_n_limit_with_floor(N):
    """``floor(alpha N)`` items among ``round(N nu)`` agents per level, allocated by the finite-N
    auction (:func:`auctions.simulate.allocate`: agents in random order, random tie keys): the
    per-level win frequency approaches the mean-field win probability like ``1 / N``, and every
    bidder tied at the threshold wins equally often."""
    nu = np.array([0.1, 0.25, 0.15, 0.3, 0.2])
    alpha = 0.43
    counts = np.round(nu * N).astype(int)
    items = int(np.floor(alpha * N))
    bids = np.random.default_rng(N).permutation(np.repeat(np.arange(nu.size), counts))
    reps = 64
    keys = jax.random.bits(jax.random.key(N), (reps, bids.size), jnp.uint32)
    active = jnp.ones(bids.size, bool)
    run = jax.jit(jax.vmap(lambda k: allocate(jnp.asarray(bids), active, items, k, nu.size, 8)[0]))
    won = np.asarray(run(keys))
    assert np.all(won.sum(1) == items)
    freq = np.array([won[:, bids == b].mean() for b in range(nu.size)])
    mf = np.asarray(win_probability(jnp.asarray(nu), alpha))
    assert np.max(np.abs(freq - mf)) <= 1.0 / (N * nu.min()) + 1e-12
    if N == 640:
        assert np.max(np.abs(freq - mf)) < 0.02
    # the threshold level: each tied bidder's own win frequency over the replicates is k / c
    tie = int(np.flatnonzero((freq > 0) & (freq < 1))[0])
    per_agent = won[:, bids == tie].mean(0)
    p = freq[tie]
    assert np.all(np.abs(per_agent - p) < 5 * np.sqrt(p * (1 - p) / reps))


def test_zero_mass_conventions():
    nu = jnp.array([0.2, 0.0, 0.0, 0.1])
    # bid 2 has no mass and alpha exceeds the mass above it -> x/0 = +inf -> 1
    # bid 1 and bid 0: alpha - above = 0.15 - 0.1 = 0.05 > 0 -> bid 1 wins (x/0), bid 0 gets 0.25
    p = win_probability(nu, 0.15)
    np.testing.assert_allclose(p, [0.25, 1.0, 1.0, 1.0])
    # alpha exactly equal to the mass above an empty level: 0/0 = 0
    p = win_probability(nu, 0.1)
    np.testing.assert_allclose(p, [0.0, 0.0, 0.0, 1.0])
    assert float(win_probability(jnp.zeros(3), 0.0)[0]) == 0.0


def test_allocated_mass_equals_alpha_when_demand_exceeds_supply():
    key = jax.random.key(0)
    for i in range(20):
        nu = jax.random.dirichlet(jax.random.fold_in(key, i), jnp.ones(12)) * 0.9
        for alpha in (0.05, 0.3, 0.89):
            sold = nu * win_probability(nu, alpha)
            np.testing.assert_allclose(sold.sum(), alpha, rtol=1e-12)
            np.testing.assert_allclose(sold, allocated_mass(nu, alpha), atol=1e-15)
        sold = nu * win_probability(nu, 1.5)  # supply exceeds demand: everyone wins
        np.testing.assert_allclose(sold.sum(), nu.sum(), rtol=1e-12)


def test_gradient_finite_for_denormal_mass_and_matches_fd():
    nu = jnp.array([3e-320, 0.2, 1e-310, 0.3])
    g = jax.grad(lambda n, a: jnp.sum(win_probability(n, a) * jnp.arange(4.0)), argnums=(0, 1))
    gn, ga = g(nu, 0.35)
    assert np.all(np.isfinite(gn)) and np.isfinite(ga)
    # interior of the tie: d p/d alpha = 1 / nu at the threshold level (bid 1, nu = 0.2)
    nu = jnp.array([0.1, 0.2, 0.15, 0.3])
    f = lambda a: win_probability(nu, a)[1]  # noqa: E731
    np.testing.assert_allclose(jax.grad(f)(0.5), 1 / 0.2, rtol=1e-12)
    eps = 1e-6
    fd = jax.jacfwd(win_probability)(nu, 0.5)
    num = np.stack(
        [
            (win_probability(nu.at[i].add(eps), 0.5) - win_probability(nu.at[i].add(-eps), 0.5))
            / (2 * eps)
            for i in range(4)
        ],
        axis=1,
    )
    np.testing.assert_allclose(fd, num, atol=1e-6)


def test_derivative_at_a_cell_boundary_is_the_right_derivative():
    """alpha = 0.2 with ten cells of mass 0.1: the threshold sits exactly on the boundary between
    cell 8 (just full) and cell 7 (just empty). The sold mass min(alpha, 1) has slope 1 on both
    sides; per cell, the derivative is the right one (forward differences)."""
    nu = jnp.full(10, 0.1)
    alpha = 0.2
    sold = lambda a: jnp.sum(nu * win_probability(nu, a))  # noqa: E731
    h = 1e-7
    central = (float(sold(alpha + h)) - float(sold(alpha - h))) / (2 * h)
    np.testing.assert_allclose(float(jax.grad(sold)(alpha)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(central, 1.0, rtol=1e-6)
    # per cell: the forward difference (right derivative) is matched, the backward one is not
    jac = np.asarray(jax.jacfwd(win_probability, argnums=1)(nu, alpha))
    np.testing.assert_array_equal(jac, jax.jacrev(win_probability, argnums=1)(nu, alpha))
    p0 = np.asarray(win_probability(nu, alpha))
    forward = (np.asarray(win_probability(nu, alpha + h)) - p0) / h
    backward = (p0 - np.asarray(win_probability(nu, alpha - h))) / h
    np.testing.assert_allclose(jac, forward, atol=1e-6)
    np.testing.assert_allclose(jac[7], 10.0, rtol=1e-12)  # cell 7 starts to fill: 1 / nu
    assert np.abs(jac - backward).max() > 9.0  # the left derivative is on cell 8 instead
    np.testing.assert_allclose(backward[8], 10.0, rtol=1e-6)
    # the value is unchanged: cells 8 and 9 win, cell 7 gets nothing
    np.testing.assert_array_equal(p0, [0.0] * 8 + [1.0, 1.0])
    # at alpha = 0 the top cell starts to fill; an empty top cell passes the slope down
    np.testing.assert_allclose(jax.grad(sold)(0.0), 1.0, rtol=1e-12)
    nu2 = jnp.array([0.3, 0.2, 0.0])
    sold2 = lambda a: jnp.sum(nu2 * win_probability(nu2, a))  # noqa: E731
    np.testing.assert_allclose(jax.grad(sold2)(0.0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(jax.grad(sold2)(0.2), 1.0, rtol=1e-12)
    np.testing.assert_allclose(jax.grad(sold2)(0.5), 0.0, atol=0)  # demand exhausted
