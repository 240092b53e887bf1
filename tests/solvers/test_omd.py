"""OMD against an independently solved equilibrium, fixed-point identity, status and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import CONGESTION_TAU as TAU
from helpers import congestion_game, congestion_logit_equilibrium, no_recompile

from mfid import PMFG, BeachBar, exploitability, q_values
from solvers import omd_update, solve_omd


def test_omd_matches_scipy_logit_equilibrium():
    game = congestion_game()
    res = solve_omd(game, None, tau=TAU, eta=0.5, iters=2000)
    np.testing.assert_allclose(res.policy[0], congestion_logit_equilibrium(), atol=1e-8)
    assert abs(float(res.exploitability)) <= 1e-10
    assert res.status_name == "max_iterations"


def test_tolerance_variant_stops_early_and_reports_converged():
    game = congestion_game()
    res = solve_omd(game, None, tau=TAU, eta=0.5, iters=5000, tol=1e-12, check_every=7)
    assert res.converged
    assert int(res.iterations) < 5000
    assert float(res.trace[-1]) <= 1e-12 < float(res.trace[0])
    # exploitability is quadratic in the policy error: 1e-12 leaves ~1e-6 in the policy
    np.testing.assert_allclose(res.policy[0], congestion_logit_equilibrium(), atol=2e-6)


def test_beach_bar_converges_and_fixed_point_identity():
    game = BeachBar.create(20, 10)
    res = solve_omd(game, None, tau=0.1, eta=0.3, iters=1500, trace_every=100)
    assert float(res.exploitability) <= 1e-6
    assert res.trace.shape == (15,) and float(res.trace[-1]) <= float(res.trace[0])
    # fixed point: zeta = q^tau(Lambda(pi), pi) / tau, and one more step changes nothing
    q = q_values(game, res.policy, None, 0.1)
    np.testing.assert_allclose(res.logits, q / 0.1, rtol=1e-9, atol=1e-9)
    z1 = omd_update(game, None, res.logits, 0.1, 0.3)
    np.testing.assert_allclose(z1, res.logits, rtol=1e-10, atol=1e-9)


def test_small_tau_equilibrium_concentrates():
    """As tau falls the equilibrium becomes greedier: its entropy falls and the exploitability
    of that policy at tau = 0 (unregularised) shrinks with tau."""
    game = BeachBar.create(20, 10)
    ent, unreg = [], []
    for tau, eta in [(1.0, 0.3), (0.3, 0.3), (0.1, 0.3)]:
        res = solve_omd(game, None, tau=tau, eta=eta, iters=3000, tol=1e-10)
        assert res.converged
        p = res.policy
        ent.append(float(-(res.flow * jnp.log(p)).sum()))
        unreg.append(float(exploitability(game, p, None, 0.0)))
    assert ent[0] > ent[1] > ent[2]
    assert unreg[0] > unreg[1] > unreg[2] > 0


def test_divergence_is_reported_not_silent():
    game = congestion_game()
    res = solve_omd(game, None, tau=TAU, eta=1e305, iters=20)
    assert res.status_name == "nonfinite"


def test_second_call_with_new_values_does_not_recompile():
    game = BeachBar.create(12, 5)
    solve_omd(game, jnp.zeros(12), tau=0.1, eta=0.3, iters=10)
    with no_recompile("solve_fixed"):
        game2 = game.replace(mu0=jnp.linspace(1, 2, 12) / jnp.linspace(1, 2, 12).sum())
        solve_omd(game2, jnp.ones(12), tau=0.2, eta=0.1, iters=10)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(tau=-0.1), "tau"),
        (dict(eta=0.0), "eta"),
        (dict(eta=-1.0), "eta"),
        (dict(iters=0), "iters"),
        (dict(iters=2.5), "iters"),
        (dict(trace_every=-1), "trace_every"),
        (dict(tol=-1.0), "tol"),
        (dict(zeta0=jnp.zeros((1, 2, 2))), "zeta0"),
    ],
)
def test_bad_solver_arguments(kwargs, name):
    args = dict(tau=0.1, eta=0.3, iters=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        solve_omd(congestion_game(), None, **args)


def test_nan_theta_is_rejected():
    with pytest.raises(ValueError, match="theta"):
        solve_omd(BeachBar.create(5, 3), jnp.array([0.0, jnp.nan, 0, 0, 0]), iters=5)


def _ok_P():
    return np.full((2, 2, 2), 0.5)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: PMFG.create([0.5, 0.6], 2, _ok_P(), np.zeros((2, 2))), "mu0"),
        (lambda: PMFG.create([1.5, -0.5], 2, _ok_P(), np.zeros((2, 2))), "mu0"),
        (lambda: PMFG.create([[0.5, 0.5]], 2, _ok_P(), np.zeros((2, 2))), "mu0"),
        (
            lambda: PMFG.create([0.5, 0.5], 2, np.full((2, 2, 2), 0.4), np.zeros((2, 2))),
            "transition",
        ),
        (
            lambda: PMFG.create([0.5, 0.5], 2, np.array([[[1.5, -0.5]] * 2] * 2), np.zeros((2, 2))),
            "transition",
        ),
        (
            lambda: PMFG.create([0.5, 0.5], 2, np.full((2, 2, 3), 1 / 3), np.zeros((2, 2))),
            "transition",
        ),
        (lambda: PMFG.create([0.5, 0.5], 2, _ok_P(), np.array([[0, np.inf], [0, 0]])), "reward"),
        (lambda: PMFG.create([0.5, 0.5], 2, _ok_P(), np.zeros((2, 3))), "reward"),
        (lambda: PMFG.create([0.5, 0.5], 0, _ok_P(), np.zeros((2, 2))), "horizon"),
        (lambda: BeachBar.create(1, 3), "num_states"),
        (lambda: BeachBar.create(10, 3, p_still=1.5), "p_still"),
        (lambda: BeachBar.create(10, 3, bar=10), "bar"),
        (lambda: BeachBar.create(10, 3, crowd=-1.0), "crowd"),
        (lambda: BeachBar.create(4, 3, mu0=[0.5, 0.5]), "mu0"),
    ],
)
def test_bad_game_construction(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_callable_games_are_validated_when_solved():
    bad_rows = lambda h, L, theta: jnp.full((2, 2, 2), 0.3)  # noqa: E731
    game = PMFG.create([0.5, 0.5], 2, bad_rows, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="transition"):
        solve_omd(game, None, iters=3)
    nan_reward = lambda h, L, theta: jnp.log(L - 1.0)  # noqa: E731
    game = PMFG.create([0.5, 0.5], 2, _ok_P(), nan_reward)
    with pytest.raises(ValueError, match="reward"):
        solve_omd(game, None, iters=3)


@pytest.mark.parametrize("torus", [False, True])
def test_beach_bar_structured_kernel_matches_dense(torus):
    game = BeachBar.create(9, 4, p_still=0.3, torus=torus, bar=2)
    P = np.asarray(game.dense_kernel())
    np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-14)
    assert P.min() >= 0
    rng = np.random.default_rng(0)
    L = jnp.asarray(rng.dirichlet(np.ones(27)).reshape(9, 3))
    V = jnp.asarray(rng.normal(size=9))
    kern = game.dynamics(0, L, None).kernel
    np.testing.assert_allclose(kern.push(L), np.einsum("sa,sat->t", L, P), atol=1e-14)
    np.testing.assert_allclose(kern.pull(V), P @ np.asarray(V), atol=1e-14)
    # hand-checked entries: from spot 0 moving left stays at the edge (line) or wraps (torus)
    if torus:
        assert P[0, 0, 8] == pytest.approx(0.3) and P[0, 0, 7] == pytest.approx(0.35)
    else:
        assert P[0, 0, 0] == pytest.approx(0.3 + 0.35) and P[0, 0, 1] == pytest.approx(0.35)
    assert P[4, 2, 5] == pytest.approx(0.3) and P[4, 2, 6] == pytest.approx(0.35)


def test_beach_bar_reward_terms():
    game = BeachBar.create(10, 2, bar=5, crowd=2.0, p_max=3.0)
    L = jnp.full((10, 3), 1 / 30)
    theta = jnp.arange(10.0) - 5
    R = np.asarray(game.dynamics(0, L, theta).reward)
    s, a = 2, 2  # move right from spot 2
    expected = -abs(s - 5) / 10 - 1 / 10 - 2.0 * np.log(0.1) - 3.0 / (1 + np.exp(-(s - 5.0)))
    assert R[s, a] == pytest.approx(expected, rel=1e-12)
    assert jax.jit(lambda t: game.dynamics(0, L, t).reward)(theta)[s, a] == pytest.approx(expected)


def test_a_tolerance_the_dtype_cannot_resolve_is_refused():
    from mfid.tree import cast_floating

    game = cast_floating(BeachBar.create(6, 3), jnp.float32)
    with pytest.raises(ValueError, match="float32 can resolve"):
        solve_omd(game, None, tau=0.1, eta=0.3, iters=50, tol=1e-10)
    res = solve_omd(game, None, tau=0.1, eta=0.3, iters=2000, tol=1e-5)
    assert res.converged and abs(float(res.exploitability)) <= 1e-5
    # the float32 status holds in float64: the same policy's exploitability is within tolerance
    assert abs(float(exploitability(BeachBar.create(6, 3), jnp.asarray(res.policy, jnp.float64),
                                    None, 0.1))) <= 1e-5  # fmt: skip


def test_tol_inf_or_nan_is_refused():
    for tol in (float("inf"), float("nan"), -1.0):
        with pytest.raises(ValueError, match="tol"):
            solve_omd(BeachBar.create(6, 3), None, tau=0.1, eta=0.3, iters=5, tol=tol)


def test_batched_solves_match_one_at_a_time():
    from solvers import solve_omd_batch

    game = BeachBar.create(num_states=6, horizon=3)
    thetas = jnp.asarray(np.random.default_rng(0).normal(size=(3, 6)))
    kw = dict(tau=0.5, eta=0.5, iters=2000)
    batch = solve_omd_batch(game, thetas, tol=1e-10, **kw)
    for i, r in enumerate(batch):
        one = solve_omd(game, thetas[i], tol=1e-10, **kw)
        assert r.status_name == one.status_name == "successful"
        assert int(r.iterations) == int(one.iterations)
        assert float(jnp.abs(r.logits - one.logits).max()) < 1e-12
        assert abs(float(r.exploitability) - float(one.exploitability)) < 1e-14
        assert r.trace.shape == one.trace.shape
    # members stop at their own iteration: a hard one does not change an easy one's result
    slow = solve_omd_batch(game, jnp.stack([thetas[0], 30 * thetas[1]]), tol=1e-10, **kw)
    assert float(jnp.abs(slow[0].logits - batch[0].logits).max()) < 1e-12
    with pytest.raises(ValueError, match="tol"):
        solve_omd_batch(game, thetas, tol=1e-20, **kw)
