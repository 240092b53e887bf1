"""Tests of the exact finite-N batched auction against brute force and the mean field."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import no_recompile
from scipy import stats

from auctions import BatchedAuction, FirstPrice, NeuralMechanism
from auctions.objectives import revenue
from auctions.simulate import (
    _radix_bits,
    _select_smallest,
    _simulate_auction,
    _tables,
    alias_tables,
    allocate,
    auction_deviation_gain,
    simulate_auction,
)
from mfid import population_flow

K, M, H = 6, 5, 3


def _game(mechanism=None, alpha_max=0.8, horizon=H):
    mech = FirstPrice(M, horizon) if mechanism is None else mechanism
    return BatchedAuction.create(
        np.full(K, 1.0 / K), horizon=horizon, alpha_max=alpha_max, mechanism=mech
    )


def _policy(seed, horizon=H):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.1, 1.0, (horizon, K + 1, M))
    return jnp.asarray(p / p.sum(-1, keepdims=True))


def _keys(seed, shape):
    return jax.random.bits(jax.random.key(seed), shape, jnp.uint32)


def test_allocate_hand_built_bids_exact_count_and_uniform_ties():
    bids = jnp.array([2, 4, 2, 1, 2, 3, 2, 0, 4])
    active = jnp.array([1, 1, 1, 1, 1, 1, 1, 1, 0], bool)  # the last bidder is inactive
    need = 4  # bid 4 (one active), bid 3 (one) win; 2 of the four bids at 2 win
    won, full, level, k = allocate(bids, active, need, _keys(0, (9,)), M)
    assert int(won.sum()) == 4 and int(level) == 2 and int(k) == 2
    assert bool(won[1]) and bool(won[5]) and not bool(won[8]) and not bool(won[3])
    np.testing.assert_array_equal(full, [False, False, False, True, True])
    # uniform tie-breaking: every 2-subset of the tied bidders {0, 2, 4, 6} equally likely
    draws = 12000
    keys = _keys(1, (draws, 9))
    # lax.map in batches: every allocation holds two 2^16-bin histograms
    wins = jax.lax.map(lambda kk: allocate(bids, active, need, kk, M, 8)[0], keys, batch_size=500)
    wins = np.asarray(wins)
    assert np.all(wins.sum(1) == 4)
    tied = [0, 2, 4, 6]
    subsets = {c: i for i, c in enumerate(itertools.combinations(tied, 2))}
    idx = [
        subsets[tuple(np.flatnonzero(w[tied]).tolist() and np.array(tied)[w[tied]])] for w in wins
    ]
    counts = np.bincount(idx, minlength=6)
    assert stats.chisquare(counts).pvalue > 1e-3
    # marginal: each tied bidder wins with probability k / T = 1/2
    marg = wins[:, tied].mean(0)
    assert np.all(np.abs(marg - 0.5) < 4 * np.sqrt(0.25 / draws))


def test_allocate_demand_below_supply_and_boundary():
    bids = jnp.array([1, 3, 0, 3])
    active = jnp.array([1, 1, 0, 1], bool)
    won = allocate(bids, active, 10, _keys(2, (4,)), M)[0]
    np.testing.assert_array_equal(won, [True, True, False, True])  # inactive never wins
    won, _, level, _ = allocate(bids, active, 2, _keys(3, (4,)), M)
    np.testing.assert_array_equal(won, [False, True, False, True])  # threshold on a boundary
    assert int(level) == -1
    won = allocate(bids, active, 0, _keys(4, (4,)), M)[0]
    assert not bool(won.any())


def test_radix_select_matches_sorting_with_duplicate_keys():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = 200
        # keys from a small set with shared high bits to force duplicates in both passes
        keys = (rng.integers(0, 3, n) << 16 | rng.integers(0, 4, n)).astype(np.uint32)
        if trial % 2:
            keys = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
        mask = rng.random(n) < 0.6
        k = int(rng.integers(0, mask.sum() + 1))
        bits = 8 if trial % 4 < 2 else 16
        got = np.asarray(_select_smallest(jnp.asarray(mask), jnp.asarray(keys), k, bits))
        order = np.lexsort((np.arange(n), keys))  # by key, then index
        order = order[mask[order]]
        want = np.zeros(n, bool)
        want[order[:k]] = True
        np.testing.assert_array_equal(got, want)


def test_alias_tables_reproduce_rows():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=(7, 9)) * (rng.random((7, 9)) < 0.6)
    p[:, 0] += 1e-3
    p /= p.sum(-1, keepdims=True)
    prob, alias = alias_tables(p)
    rebuilt = prob / 9.0
    for r in range(7):
        np.add.at(rebuilt[r], alias[r], (1.0 - prob[r]) / 9.0)
    np.testing.assert_allclose(rebuilt, p, atol=1e-14)


def test_exact_item_counts_per_round():
    game, n = _game(), 50
    out = simulate_auction(game, _policy(0), {}, n, 40, jax.random.key(0))
    # I_0 = floor(0.8 * 50) = 40 and alpha_h = r_h / (H - h): floor(40/3), floor(27/2), 14
    # items are offered and all sell (every active bidder bids; demand allows)
    np.testing.assert_array_equal(np.asarray(out.offered), np.tile([13, 13, 14], (40, 1)))
    np.testing.assert_array_equal(out.sold, out.offered)
    # empirical active mass decreases by exactly the items sold
    np.testing.assert_allclose(np.asarray(out.nu).sum(-1)[:, 1], (n - 13) / n, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2])
def test_small_n_revenue_matches_brute_force(n):
    """N = 1: floor(0.8) = 0 items, revenue 0. N = 2: one item; with alpha_h = r_h / (H - h)
    only the last round offers floor(0.5 * 2 / 1) = 1 item, won by the higher bid (ties at
    random, both pay the same bid), so E revenue = E max(b_1, b_2) over i.i.d. last-round bids."""
    game, pi = _game(), _policy(1)
    reps = 20000
    out = simulate_auction(game, pi, {}, n, reps, jax.random.key(n))
    if n == 1:
        np.testing.assert_array_equal(out.revenue, 0.0)
        return
    q = np.asarray(pi[H - 1, :K]).mean(0)  # last-round bid distribution (uniform values)
    F = np.cumsum(q)
    grid = np.arange(M) / M
    exact = float(np.sum(grid * (F**2 - np.concatenate([[0.0], F[:-1]]) ** 2))) / n
    v = np.asarray(out.revenue)
    se = v.std(ddof=1) / np.sqrt(reps)
    assert abs(v.mean() - exact) < 4 * se
    np.testing.assert_array_equal(np.asarray(out.sold), np.tile([0, 0, 1], (reps, 1)))
    # power: the N = 2 revenue is far from the mean-field revenue
    g = float(revenue(game, {}, population_flow(game, pi, {})))
    assert abs(exact - g) > 8 * se


def test_revenue_converges_to_mean_field():
    game, pi = _game(), _policy(2)
    g = float(revenue(game, {}, population_flow(game, pi, {})))
    n, reps = 4000, 64
    out = simulate_auction(game, pi, {}, n, reps, jax.random.key(5))
    v = np.asarray(out.revenue)
    se = v.std(ddof=1) / np.sqrt(reps)
    assert abs(v.mean() - g) < 4 * se + 2.0 / n
    # power: the small-N revenue is visibly different from the mean field
    assert (
        abs(float(np.mean(simulate_auction(game, pi, {}, 2, 2000, jax.random.key(6)).revenue)) - g)
        > 0.05
    )


def test_neural_mechanism_converges_to_mean_field():
    """The neural mechanism fed the empirical ``nu^N`` of each round: the per-capita revenue
    converges to the mean-field revenue of the same network (z-test), which is far from the
    first-price one (the network's payments and allocation matter)."""
    mech = NeuralMechanism.create(M, H, width=8, depth=1, key=jax.random.key(0), out_scale=3.0,
                                  pay_bias=0.0)  # fmt: skip
    game, pi = _game(mech), _policy(4)
    theta = mech.init_theta()
    g = float(revenue(game, theta, population_flow(game, pi, theta)))
    n, reps = 4000, 64
    out = simulate_auction(game, pi, theta, n, reps, jax.random.key(1))
    v = np.asarray(out.revenue)
    se = v.std(ddof=1) / np.sqrt(reps)
    assert abs(v.mean() - g) < 4 * se + 2.0 / n
    assert np.all(np.asarray(out.sold) <= np.asarray(out.offered))
    assert np.asarray(out.sold).sum(1).max() <= int(0.8 * n)
    # power: the first-price mean-field revenue of the same population is far away
    g_fp = float(revenue(_game(), {}, population_flow(_game(), pi, {})))
    assert abs(g_fp - g) > 20 * se
    # plumbing check, not a statistical one: with common random numbers a deviator that plays
    # the population's policy reproduces the conforming run exactly
    d, _ = auction_deviation_gain(game, pi, theta, 300, 16, jax.random.key(2), deviator=pi)
    np.testing.assert_array_equal(d, 0.0)


def test_no_recompile_on_second_call():
    game, pi = _game(), _policy(0)
    simulate_auction(game, pi, {}, 50, 40, jax.random.key(0)).revenue.block_until_ready()
    with no_recompile("simulate_auction"):
        simulate_auction(game, pi, {}, 50, 40, jax.random.key(9)).revenue.block_until_ready()


def test_memory_is_bounded_at_a_million_bidders():
    """At N = 10^6 the replicates run one at a time (lax.map over 2^21-slot batches): XLA's
    temporary memory does not grow with the number of replicates and stays near the few
    N-sized arrays of one round (compiled only, not run)."""
    from mfid.finite import DEFAULT_BATCH_ELEMS, replicate_batch

    game, pi = _game(), _policy(0)
    tables = _tables(game, pi, None)
    n = 10**6
    temp = {}
    for reps in (1, 64):
        batch = replicate_batch(n + 4 * (1 << _radix_bits(n)), reps, DEFAULT_BATCH_ELEMS)
        assert batch == 1
        c = _simulate_auction.lower(game, tables, {}, jax.random.key(0), n, reps, batch, True)
        temp[reps] = c.compile().memory_analysis().temp_size_in_bytes
    assert temp[64] <= temp[1] * 1.01 + 4096
    assert temp[1] < 120 * n  # about 70 bytes per bidder


def test_bad_arguments_raise():
    game, pi = _game(), _policy(0)
    key = jax.random.key(0)
    for bad in (0, -1, 1.5, False):
        with pytest.raises(ValueError, match="n must"):
            simulate_auction(game, pi, {}, bad, 4, key)
        with pytest.raises(ValueError, match="reps must"):
            simulate_auction(game, pi, {}, 4, bad, key)
    with pytest.raises(ValueError, match="policy must have shape"):
        simulate_auction(game, pi[:, :K], {}, 4, 4, key)
    with pytest.raises(ValueError, match="sum to 1"):
        simulate_auction(game, 2 * pi, {}, 4, 4, key)
    with pytest.raises(ValueError, match="deviator"):
        simulate_auction(game, pi, {}, 4, 4, key, deviator=pi[:1])
    with pytest.raises(ValueError, match="BatchedAuction"):
        simulate_auction(object(), pi, {}, 4, 4, key)


def test_value_drift_and_re_entry_converge_to_mean_field():
    """Gaussian drift and regeneration from ⊥ move the sampled values by the value kernel; ⊥
    plays its one allowed bid (0); the per-capita revenue still converges to the mean field."""
    mu = np.arange(1, K + 1, dtype=float)
    game = BatchedAuction.create(mu / mu.sum(), horizon=H, alpha_max=0.6,
                                 mechanism=FirstPrice(M, H), rho=0.4, sigma=0.2)  # fmt: skip
    assert not game.value_kernel.single_minded
    pi = np.array(_policy(7))
    pi[:, K] = np.eye(M)[0]  # the masked ⊥ row
    pi = jnp.asarray(pi)
    g = float(revenue(game, {}, population_flow(game, pi, {})))
    n, reps = 4000, 32
    out = simulate_auction(game, pi, {}, n, reps, jax.random.key(8))
    v = np.asarray(out.revenue)
    se = v.std(ddof=1) / np.sqrt(reps)
    assert abs(v.mean() - g) < 4 * se + 2.0 / n, (v.mean(), g, se)
    # re-entry: more items are sold than the initially active population could absorb in a
    # single-minded market with these bids (winners come back and win again)
    single = BatchedAuction.create(mu / mu.sum(), horizon=H, alpha_max=0.6,
                                   mechanism=FirstPrice(M, H))  # fmt: skip
    g1 = float(revenue(single, {}, population_flow(single, pi, {})))
    assert abs(g - g1) > 10 * se
