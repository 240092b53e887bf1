"""Flow, regularised values and exploitability against brute-force trajectory enumeration."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import brute_force_flow_and_value, coupled_pmfg
from scipy.optimize import minimize

from mfid import best_response, exploitability, policy_value, population_flow, q_values

S, A, H = 3, 2, 3


def _game(seed=0):
    """A small game whose kernel and reward both depend on the state-action distribution."""
    return coupled_pmfg(seed, S, A, H)


def _random_policy(seed):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.dirichlet(np.ones(A), size=(H, S)))


@pytest.mark.parametrize("tau", [0.0, 0.3])
def test_flow_values_and_exploitability_match_enumeration(tau):
    game, theta = _game()
    pi = _random_policy(1)
    L_bf, value = brute_force_flow_and_value(game, theta, pi, tau)
    L = population_flow(game, pi, theta)
    np.testing.assert_allclose(L, L_bf, rtol=1e-12, atol=1e-14)
    v_pi = value(np.asarray(pi))
    np.testing.assert_allclose(policy_value(game, pi, theta, tau), v_pi, rtol=1e-11)

    if tau == 0.0:
        # best response: maximum over every deterministic Markov policy (A^(S H) of them)
        best = -np.inf
        for choice in itertools.product(range(A), repeat=S * H):
            pol = np.eye(A)[np.array(choice).reshape(H, S)]
            best = max(best, value(pol))
    else:
        # regularised best response: maximise over softmax policies numerically
        def neg(logits):
            z = logits.reshape(H, S, A)
            pol = np.exp(z - z.max(-1, keepdims=True))
            return -value(pol / pol.sum(-1, keepdims=True))

        opt = minimize(neg, np.zeros(H * S * A), method="BFGS", options={"gtol": 1e-10})
        best = -opt.fun
    np.testing.assert_allclose(exploitability(game, pi, theta, tau), best - v_pi, atol=1e-8)
    br = best_response(game, pi, theta, tau)
    # the best response attains the maximum against the same (fixed) flow
    np.testing.assert_allclose(value(np.asarray(br)), best, atol=1e-8)


def test_q_values_match_enumeration():
    game, theta = _game(3)
    pi = _random_policy(4)
    tau = 0.2
    _, value = brute_force_flow_and_value(game, theta, pi, tau)
    q = q_values(game, pi, theta, tau)
    for h in range(H):
        for s_ in range(S):
            for a in range(A):
                np.testing.assert_allclose(
                    q[h, s_, a], value.q(np.asarray(pi), h, s_, a), rtol=1e-11
                )


def test_mass_and_nonnegative_exploitability_for_random_policies():
    game, theta = _game(5)
    flow = jax.jit(population_flow)
    expl = jax.jit(exploitability)
    for seed in range(5):
        pi = _random_policy(10 + seed)
        L = flow(game, pi, theta)
        np.testing.assert_allclose(L.sum((1, 2)), 1.0, atol=1e-14)
        assert float(L.min()) >= 0
        for tau in (0.0, 0.1, 1.0):
            assert float(expl(game, pi, theta, tau)) >= -1e-12


def test_flow_is_jittable_and_differentiable():
    game, theta = _game(6)
    pi = _random_policy(7)
    f = jax.jit(lambda t: policy_value(game, pi, t, 0.1))
    g = jax.grad(lambda t: policy_value(game, pi, t, 0.1))(theta)
    eps = 1e-6
    fd = (f(theta + eps) - f(theta - eps)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-7)
