"""Action masks: a masked PMFG against brute-force enumeration, the masked
softmax / soft maximum against numpy, OMD against scipy's solution of the masked logit fixed
point, and gradients through a masked game by every adjoint against finite differences."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import CONGESTION_TAU as TAU
from helpers import (
    brute_force_flow_and_value,
    congestion_game,
    congestion_logit_equilibrium,
    coupled_pmfg,
    fd_directional,
    flat,
    random_direction,
    random_pmfg,
    rel,
    softmax_np,
)
from scipy.optimize import minimize

import mfid
from mfid import soft_argmax, soft_max
from mfid.finite import simulate
from solvers import Checkpointed, Implicit, Reference, Unrolled, omd_logits, solve_omd
from solvers.omd import omd_update, policy_from_logits

# jitted once per game (eager dispatch of these small scans is slow)
best_response = jax.jit(mfid.best_response)
exploitability = jax.jit(mfid.exploitability)
policy_value = jax.jit(mfid.policy_value)
population_flow = jax.jit(mfid.population_flow)
q_values = jax.jit(mfid.q_values)

S, A, H = 3, 3, 3
# state 0 may play {0, 2}, state 1 only {1} (no entropy), state 2 everything
MASK = np.array([[True, False, True], [False, True, False], [True, True, True]])


def _game(seed=0, mask=MASK):
    """A small game whose kernel and reward both depend on the state-action distribution."""
    return coupled_pmfg(seed, S, A, H, action_mask=mask)


def _masked_policy(seed, mask=MASK):
    rng = np.random.default_rng(seed)
    pi = rng.dirichlet(np.ones(A), size=(H, S)) * mask
    return jnp.asarray(pi / pi.sum(-1, keepdims=True))


@pytest.mark.parametrize("tau", [0.0, 0.3])
def test_masked_values_best_response_and_exploitability_match_enumeration(tau):
    game, theta = _game()
    pi = _masked_policy(1)
    L_bf, value = brute_force_flow_and_value(game, theta, pi, tau)
    np.testing.assert_allclose(population_flow(game, pi, theta), L_bf, rtol=1e-12, atol=1e-14)
    v_pi = value(pi)
    np.testing.assert_allclose(policy_value(game, pi, theta, tau), v_pi, rtol=1e-11)
    if tau == 0.0:
        # every deterministic Markov policy on the allowed actions: (2 * 1 * 3)^H of them
        allowed = [np.flatnonzero(MASK[s]) for s in range(S)]
        best = -np.inf
        for choice in itertools.product(*[allowed[s] for _ in range(H) for s in range(S)]):
            best = max(best, value(np.eye(A)[np.array(choice).reshape(H, S)]))
    else:
        # maximise over softmax policies whose parameters live on the allowed actions only
        idx = np.nonzero(np.broadcast_to(MASK, (H, S, A)))

        def neg(x):
            z = np.zeros((H, S, A))
            z[idx] = x
            return -value(softmax_np(z, MASK))

        opt = minimize(neg, np.zeros(len(idx[0])), method="BFGS", options={"gtol": 1e-10})
        best = -opt.fun
    e = float(exploitability(game, pi, theta, tau))
    np.testing.assert_allclose(e, best - v_pi, atol=1e-8)
    assert e > 1e-3  # the random policy is far from a best response
    br = np.asarray(best_response(game, pi, theta, tau))
    assert np.all(br[:, ~MASK] == 0.0)
    np.testing.assert_allclose(br.sum(-1), 1.0, atol=1e-14)
    np.testing.assert_allclose(value(br), best, atol=1e-8)
    # the unmasked game's best response is strictly better: the mask binds
    free, _ = _game(mask=None)
    assert float(exploitability(free, pi, theta, tau)) > e + 1e-3


def test_single_allowed_action_has_no_entropy():
    game, theta = _game(2)
    pi = _masked_policy(3)
    tau = 0.5
    q = q_values(game, pi, theta, tau)
    _, value = brute_force_flow_and_value(game, theta, pi, tau)
    # V_h(1) = q_h(1, 1): state 1 has one action, hence pi = 1 there and no entropy bonus
    from mfid.flow import rollout
    from mfid.values import evaluate_policy

    _, dyn = rollout(game, pi, theta)
    _, V = evaluate_policy(dyn, pi, tau)
    np.testing.assert_array_equal(np.asarray(V[:, 1]), np.asarray(q[:, 1, 1]))
    # state 0: V = sum_a pi (q - tau log pi) over the two allowed actions only
    p0 = np.asarray(pi[:, 0, [0, 2]])
    v0 = np.sum(p0 * (np.asarray(q[:, 0, [0, 2]]) - tau * np.log(p0)), -1)
    np.testing.assert_allclose(V[:, 0], v0, rtol=1e-13)


def test_masked_softmax_and_soft_max_against_numpy_with_finite_gradients():
    rng = np.random.default_rng(0)
    mask = np.array([[True, False, True, False], [False, False, True, False], [True] * 4])
    z = rng.normal(size=(2, 3, 4)) * 3
    z[:, ~mask] = 1e4  # huge disallowed logits: never exponentiated
    pi, logpi = policy_from_logits(jnp.asarray(z), jnp.asarray(mask))
    ref = softmax_np(z, mask)
    np.testing.assert_allclose(pi, ref, rtol=1e-13, atol=0)
    assert np.all(np.asarray(pi)[:, ~mask] == 0.0) and np.all(np.asarray(logpi)[:, ~mask] == 0.0)
    np.testing.assert_allclose(np.asarray(logpi)[:, mask], np.log(ref[:, mask]), rtol=1e-13)
    w = jnp.asarray(rng.normal(size=z.shape))

    def f(x):
        p, lp = policy_from_logits(x, jnp.asarray(mask))
        return jnp.sum(w * p) + jnp.sum(p * lp)

    g = np.asarray(jax.grad(f)(jnp.asarray(z)))
    assert np.all(np.isfinite(g)) and np.all(g[:, ~mask] == 0.0)
    d = np.where(mask, rng.normal(size=z.shape), 0.0)
    fd = fd_directional(f, jnp.asarray(z), jnp.asarray(d), h=1e-6)
    np.testing.assert_allclose(np.sum(g * d), fd, rtol=1e-7)
    # the unmasked call is the plain softmax
    np.testing.assert_allclose(policy_from_logits(jnp.asarray(z))[0], jax.nn.softmax(z, -1))

    q = rng.normal(size=(3, 4))
    q[~mask] = 1e6
    for tau in (0.0, 0.2):
        qm = np.where(mask, q, -np.inf)
        m = qm.max(-1)
        want = m if tau == 0 else m + tau * np.log(np.exp((qm - m[:, None]) / tau).sum(-1))
        np.testing.assert_allclose(soft_max(jnp.asarray(q), tau, jnp.asarray(mask)), want,
                                   rtol=1e-14)  # fmt: skip
        p = np.asarray(soft_argmax(jnp.asarray(q), tau, jnp.asarray(mask)))
        want_p = np.eye(4)[qm.argmax(-1)] if tau == 0 else softmax_np(q / tau, mask)
        np.testing.assert_allclose(p, want_p, rtol=1e-13, atol=0)
        gq = np.asarray(jax.grad(lambda x, t=tau: jnp.sum(soft_max(x, t, jnp.asarray(mask))))(q))
        assert np.all(np.isfinite(gq)) and np.all(gq[~mask] == 0.0)
        np.testing.assert_allclose(gq.sum(-1), 1.0, rtol=1e-13)


def test_all_true_mask_equals_the_unmasked_game():
    game, theta = _game(4, mask=None)
    full, _ = _game(4, mask=np.ones((S, A), bool))
    pi = jnp.asarray(np.random.default_rng(5).dirichlet(np.ones(A), size=(H, S)))
    tau = 0.3
    np.testing.assert_allclose(exploitability(full, pi, theta, tau),
                               exploitability(game, pi, theta, tau), rtol=1e-13)  # fmt: skip
    np.testing.assert_allclose(best_response(full, pi, theta, tau),
                               best_response(game, pi, theta, tau), rtol=1e-12, atol=1e-15)  # fmt: skip
    z = jnp.asarray(np.random.default_rng(6).normal(size=(H, S, A)))
    step = jax.jit(omd_update)
    np.testing.assert_allclose(step(full, theta, z, 0.3, 0.5), step(game, theta, z, 0.3, 0.5),
                               rtol=1e-13)  # fmt: skip


@pytest.mark.parametrize(
    "mask, match",
    [
        (np.ones((S, A + 1), bool), r"action_mask must have shape \(S, A\) = \(3, 3\)"),
        (np.array([[1, 1, 0], [0, 0, 0], [1, 1, 1]], bool), r"states \[1\] allow none"),
        (np.full((S, A), 0.5), "action_mask must be boolean"),
    ],
)
def test_bad_masks_are_refused(mask, match):
    with pytest.raises(ValueError, match=match):
        _game(mask=mask)


# ---- OMD against scipy's masked logit equilibrium -------------------------------------------

CMASK = np.array([[True, True, False], [False, True, True]])  # type 0: routes 0, 1; type 1: 1, 2


def test_omd_converges_to_the_masked_logit_equilibrium():
    game = congestion_game(CMASK)
    res = solve_omd(game, None, tau=TAU, eta=0.5, iters=2000)
    assert abs(float(res.exploitability)) <= 1e-12
    want = congestion_logit_equilibrium(CMASK)
    np.testing.assert_allclose(res.policy[0], want, atol=1e-9)
    assert np.all(np.asarray(res.policy)[0][~CMASK] == 0.0)
    assert np.all(np.asarray(res.logits)[0][~CMASK] == 0.0)  # disallowed logits held at 0
    # fixed point: allowed logits are q / tau, one more step changes nothing
    q = q_values(game, res.policy, None, TAU)
    np.testing.assert_allclose(np.asarray(res.logits)[0][CMASK], np.asarray(q)[0][CMASK] / TAU,
                               rtol=1e-9)  # fmt: skip
    # the unmasked equilibrium is a different one (the mask binds)
    free = solve_omd(congestion_game(), None, tau=TAU, eta=0.5, iters=2000)
    assert np.abs(np.asarray(free.policy[0]) - want).max() > 0.05


def test_masked_sampler_never_plays_a_disallowed_action():
    game, theta = _game(7)
    pi = _masked_policy(8)
    out = simulate(game, pi, theta, n=2000, reps=8, key=jax.random.key(0))
    flow = np.asarray(out.flow)
    assert np.all(flow[:, :, ~MASK] == 0.0)
    L = np.asarray(population_flow(game, pi, theta))
    assert np.abs(flow.mean(0) - L).max() < 0.03  # 16 000 agent draws per round


# ---- gradients through a masked game ----------------------------------------------------------


_W = jnp.asarray(np.random.default_rng(7).normal(size=(H, S, A)))


def _G(game, iters, adjoint):
    """``G_T(theta)`` at ``(tau, eta)``: ``g(L)``, ``L`` the flow of the masked policy of
    ``zeta_T``; jitted (``tau`` and ``eta`` traced, so one compilation serves both tests)."""

    def G(theta, tau, eta):
        z = omd_logits(game, theta, tau=tau, eta=eta, iters=iters, adjoint=adjoint)
        L = population_flow(game, policy_from_logits(z, game.action_mask)[0], theta)
        return jnp.sum(_W * L) + 0.5 * jnp.sum(L**2) + 0.05 * jnp.sum(theta["r"] ** 2)

    return jax.jit(G), jax.jit(jax.grad(G))


ITERS = 27  # not a multiple of the AMID segment ceil(sqrt 27) = 6
_GAME, _THETA = random_pmfg(S=S, A=A, H=H, action_mask=MASK)
_UNROLLED = _G(_GAME, ITERS, Unrolled())


def test_masked_gradients_agree_across_adjoints_and_with_finite_differences():
    theta, tau, eta = _THETA, 0.1, 0.3
    G, grad = _UNROLLED
    g0 = grad(theta, tau, eta)
    assert np.abs(flat(g0)).max() > 1e-3
    # disallowed actions are never played: their reward shift acts only through the penalty
    np.testing.assert_allclose(np.asarray(g0["r"])[~MASK], 0.1 * np.asarray(theta["r"])[~MASK],
                               rtol=1e-12)  # fmt: skip
    for adj in (Checkpointed(), Reference()):
        g = _G(_GAME, ITERS, adj)[1](theta, tau, eta)
        assert np.all(np.isfinite(flat(g)))
        assert rel(g, g0) < 1e-10, adj
    d = random_direction(jax.random.key(0), theta)
    fd = fd_directional(lambda th: G(th, tau, eta), theta, d)
    exact = float(flat(g0) @ flat(d))
    assert abs(fd - exact) <= 1e-6 * max(abs(exact), 1e-3), (fd, exact)


def test_masked_implicit_gradient_matches_unrolled_once_converged():
    tau, eta = 1.0, 0.8  # OMD contracts fast: converged within ITERS steps
    g_imp = _G(_GAME, ITERS, Implicit())[1](_THETA, tau, eta)
    g_unr = _UNROLLED[1](_THETA, tau, eta)
    assert np.all(np.isfinite(flat(g_imp)))
    assert rel(g_imp, g_unr) < 1e-8
