"""Tests of the generic N-agent sampler against exact references (float64, fixed seeds)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import no_recompile
from scipy import stats

from mfid import PMFG, BeachBar, policy_value, population_flow
from mfid.finite import deviation_gain, inverse_cdf, simulate

S, A, H = 3, 2, 3


def _random_policy(seed, shape):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.2, 1.0, shape)
    return jnp.asarray(p / p.sum(-1, keepdims=True))


def _fixed_game():
    """An L-independent game: agents are independent, so counts are exactly multinomial."""
    rng = np.random.default_rng(1)
    P = rng.uniform(0.1, 1.0, (H, S, A, S))
    P /= P.sum(-1, keepdims=True)
    R = rng.normal(size=(H, S, A))
    return PMFG.create(jnp.array([0.5, 0.3, 0.2]), H, jnp.asarray(P), jnp.asarray(R))


def _coupled_game():
    """Kernel and reward depend on the state-action distribution L (a congestion game)."""
    rng = np.random.default_rng(2)
    base = rng.uniform(0.1, 1.0, (S, A, S))
    base /= base.sum(-1, keepdims=True)
    Rb = jnp.asarray(rng.normal(size=(S, A)))
    base = jnp.asarray(base)

    def transition(h, L, theta):
        w = 0.5 * L  # crowded (s, a) pairs push agents towards state 0
        P = (1 - w)[..., None] * base + w[..., None] * jnp.eye(S)[0][None, None, :]
        return P

    def reward(h, L, theta):
        return Rb - 2.0 * L - L.sum(-1, keepdims=True)

    return PMFG.create(jnp.array([0.6, 0.1, 0.3]), H, transition, reward, num_actions=A)


def _brute_force_value(game, policy, n):
    """Exact per-capita return of the n-agent game by enumerating joint states and actions."""
    pi = np.asarray(policy)
    mu0 = np.asarray(game.mu0)
    joint = {s: np.prod([mu0[x] for x in s]) for s in itertools.product(range(S), repeat=n)}
    total = 0.0
    for h in range(H):
        nxt = {s: 0.0 for s in joint}
        for s, ps in joint.items():
            if ps == 0:
                continue
            for a in itertools.product(range(A), repeat=n):
                pa = ps * np.prod([pi[h, s[i], a[i]] for i in range(n)])
                L = np.zeros((S, A))
                for i in range(n):
                    L[s[i], a[i]] += 1.0 / n
                dyn = game.dynamics(h, jnp.asarray(L), None)
                R, P = np.asarray(dyn.reward), np.asarray(dyn.kernel.dense())
                total += pa * np.mean([R[s[i], a[i]] for i in range(n)])
                for s2 in nxt:
                    nxt[s2] += pa * np.prod([P[s[i], a[i], s2[i]] for i in range(n)])
        joint = nxt
    return total


def test_inverse_cdf_matches_distribution():
    probs = jnp.array([[0.2, 0.0, 0.8], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    rows = jnp.repeat(jnp.arange(3), 20000)
    k = inverse_cdf(probs, rows, jax.random.uniform(jax.random.key(0), rows.shape))
    counts = np.zeros((3, 3))
    np.add.at(counts, (np.asarray(rows), np.asarray(k)), 1)
    assert counts[0, 1] == 0 and counts[1, 2] == 0 and counts[2, :2].sum() == 0
    for r in range(2):
        pos = np.asarray(probs[r]) > 0
        chi2 = stats.chisquare(counts[r, pos], 20000 * np.asarray(probs[r])[pos])
        assert chi2.pvalue > 1e-3


def test_mean_flow_matches_population_flow_chi2():
    """Pooled counts of an L-independent game are Multinomial(N R, Lambda(pi)_h): Pearson chi^2."""
    game = _fixed_game()
    pi = _random_policy(0, (H, S, A))
    n, reps = 50, 400
    out = simulate(game, pi, None, n, reps, jax.random.key(42))
    L = np.asarray(population_flow(game, pi, None))
    counts = np.asarray(out.flow).sum(0) * n  # (H, S, A) pooled counts
    for h in range(H):
        expected = L[h].ravel() * n * reps
        test = stats.chisquare(counts[h].ravel(), expected)
        assert test.pvalue > 1e-3, (h, test)
    # per-capita return: z-test against the exact mean-field value (exact for this game)
    g = float(policy_value(game, pi, None, 0.0))
    v = np.asarray(out.value)
    assert abs(v.mean() - g) < 4 * v.std(ddof=1) / np.sqrt(reps)
    # the z-test has power: a wrong reference is rejected
    assert abs(v.mean() - (g + 0.05)) > 4 * v.std(ddof=1) / np.sqrt(reps)


def test_coupled_game_flow_converges_to_mean_field():
    game = _coupled_game()
    pi = _random_policy(3, (H, S, A))
    L = np.asarray(population_flow(game, pi, None))
    out = simulate(game, pi, None, 20000, 64, jax.random.key(7))
    mean = np.asarray(out.flow).mean(0)
    se = np.asarray(out.flow).std(0, ddof=1) / np.sqrt(64)
    # bias is O(1/N) = 5e-5, far below 5 standard errors (~1e-3)
    assert np.all(np.abs(mean - L) < 5 * se + 1e-4)
    g = float(policy_value(game, pi, None, 0.0))
    v = np.asarray(out.value)
    assert abs(v.mean() - g) < 5 * v.std(ddof=1) / 8 + 1e-3


@pytest.mark.parametrize("n", [1, 2])
def test_small_n_matches_brute_force(n):
    game = _coupled_game()
    pi = _random_policy(5, (H, S, A))
    exact = _brute_force_value(game, pi, n)
    reps = 20000
    out = simulate(game, pi, None, n, reps, jax.random.key(11 + n))
    v = np.asarray(out.value)
    se = v.std(ddof=1) / np.sqrt(reps)
    assert abs(v.mean() - exact) < 4 * se
    # the finite-N value differs from the mean-field one for small N (the test can fail)
    g = float(policy_value(game, pi, None, 0.0))
    assert abs(exact - g) > 8 * se
    if n == 1:  # agent 0 is the whole population
        np.testing.assert_allclose(out.agent0_value, out.value, rtol=1e-12)


def test_deviation_gain_exact_when_decoupled():
    game = _fixed_game()
    pi = _random_policy(0, (H, S, A))
    reps = 400
    # plumbing check, not a statistical one: with common random numbers a deviator that plays
    # the population's policy reproduces the conforming run exactly
    d, _ = deviation_gain(game, pi, None, 50, reps, jax.random.key(0), deviator=pi)
    np.testing.assert_array_equal(d, 0.0)
    # in an L-independent game agent 0 is independent: E d = V^{pi0} - V^{pi} exactly
    pi0 = jnp.asarray(np.eye(A)[np.asarray(jnp.argmax(game.R, -1))])  # greedy in the reward
    d, _ = deviation_gain(game, pi, None, 50, reps, jax.random.key(1), deviator=pi0)
    expected = float(policy_value(game, pi0, None, 0.0) - policy_value(game, pi, None, 0.0))
    se = float(np.std(d, ddof=1) / np.sqrt(reps))
    assert abs(float(np.mean(d)) - expected) < 4 * se
    assert abs(expected) > 8 * se


def test_beach_bar_occupied_rewards_finite_and_best_response_gains():
    game = BeachBar.create(num_states=6, horizon=4)
    pi = jnp.full((4, 6, 3), 1 / 3)
    d, out = deviation_gain(game, pi, None, 3, 256, jax.random.key(1))
    assert np.all(np.isfinite(out.value)) and np.all(np.isfinite(out.agent0_value))
    assert np.any(np.asarray(out.flow).sum(-1) == 0)  # some spots are empty
    se = float(np.std(d, ddof=1) / 16)
    assert float(np.mean(d)) > 4 * se  # the uniform policy is exploitable


def test_no_recompile_on_second_call():
    game = _fixed_game()
    pi = _random_policy(0, (H, S, A))
    simulate(game, pi, None, 7, 5, jax.random.key(0)).value.block_until_ready()
    with no_recompile("simulate"):
        simulate(game, pi, None, 7, 5, jax.random.key(1)).value.block_until_ready()


def test_bad_arguments_raise():
    game = _fixed_game()
    pi = _random_policy(0, (H, S, A))
    key = jax.random.key(0)
    for bad in (0, -3, 2.5, True, "10"):
        with pytest.raises(ValueError, match="n must"):
            simulate(game, pi, None, bad, 4, key)
        with pytest.raises(ValueError, match="reps must"):
            simulate(game, pi, None, 4, bad, key)
    with pytest.raises(ValueError, match="policy must have shape"):
        simulate(game, pi[:, :, :1], None, 4, 4, key)
    with pytest.raises(ValueError, match="sum to 1"):
        simulate(game, pi * 0.5, None, 4, 4, key)
    with pytest.raises(ValueError, match="non-negative"):
        simulate(game, pi.at[0, 0].set(jnp.array([1.5, -0.5])), None, 4, 4, key)
    with pytest.raises(ValueError, match="finite"):
        simulate(game, pi.at[0, 0, 0].set(jnp.nan), None, 4, 4, key)
    with pytest.raises(ValueError, match="deviator"):
        simulate(game, pi, None, 4, 4, key, deviator=pi[:2])
