"""Social-gradient and hypergradient designers on static games, and the mean-field
social-gradient designer, against closed forms, independent solves and finite differences
(float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize, root

from mfid.games.beach_bar import BEACH_BAR_DESIGN
from mfid.games.static import AffineGame, Cournot, Routing
from solvers.mf_social_gradient import AdditiveIncentive, mf_social_gradient
from solvers.omd import solve_omd
from solvers.social_gradient import (
    Ball,
    Box,
    _flow_loop,
    descent_inner_product,
    equilibrium,
    hypergradient,
    hypergradient_descent,
    optimal_incentive,
    social_gradient_flow,
    two_timescale,
)

STEPS = 60_000  # one compiled two-timescale loop per rule for every test


def _affine(seed=0, n=5):
    return AffineGame.random(jax.random.key(seed), num_players=n)


def _affine_closed_form(game):
    """x^s = -Q^{-1} c and p* = -(A x^s + b), with numpy."""
    A, b, Q, c = (np.asarray(v) for v in (game.A, game.b, game.Q, game.c))
    xs = -np.linalg.solve(Q, c)
    return xs, -(A @ xs + b)


def _routing_reference(game):
    """x^s by scipy (BFGS on S with the analytic gradient) and the marginal-cost path tolls."""
    S = lambda x: float(game.social_cost(jnp.asarray(x)))  # noqa: E731
    dS = lambda x: np.asarray(game.social_gradient(jnp.asarray(x)))  # noqa: E731
    opt = minimize(S, np.ones(3), jac=dS, method="BFGS", options={"gtol": 1e-13})
    D = np.asarray(game.incidence)
    f = D @ opt.x
    b, c = np.asarray(game.linear), np.asarray(game.power)
    return opt.x, D.T @ (f * (b + 4 * c * f**3))


def test_equilibrium_solves_the_incentivised_game():
    game = _affine()
    A, b = np.asarray(game.A), np.asarray(game.b)
    p = np.random.default_rng(0).normal(size=5)
    res = equilibrium(game, jnp.asarray(p))
    assert res.status_name == "successful" and int(res.iterations) == 1  # affine: one Newton step
    assert np.allclose(res.x, np.linalg.solve(A, -(b + p)), atol=1e-13)
    routing = Routing.create()
    p = np.array([2.0, 0.0, 3.0])
    res = equilibrium(routing, jnp.asarray(p))
    F = lambda x: np.asarray(routing.pseudo_gradient(jnp.asarray(x))) + p  # noqa: E731
    ref = root(F, np.asarray(routing.initial_action()), tol=1e-14)
    assert res.status_name == "successful" and float(res.residual) <= 1e-12
    assert np.allclose(res.x, ref.x, atol=1e-10)
    bad = equilibrium(routing, jnp.asarray(p), x0=jnp.array([-1.0, 1.0, 1.0]))
    assert bad.status_name == "nonfinite"  # outside the simplex F is NaN: said, not hidden


def test_hypergradient_matches_closed_form_and_finite_differences():
    game = _affine(1)
    A, Q, c = np.asarray(game.A), np.asarray(game.Q), np.asarray(game.c)
    p = np.random.default_rng(1).normal(size=5)
    value, grad, res = hypergradient(game, jnp.asarray(p))
    x = np.asarray(res.x)
    assert np.allclose(grad, -np.linalg.solve(A.T, Q @ x + c), atol=1e-12)

    def phi(game, q):
        return float(game.social_cost(equilibrium(game, jnp.asarray(q)).x))

    for g, q in ((game, p), (Routing.create(), np.array([1.0, 0.5, 2.0]))):
        _, grad, _ = hypergradient(g, jnp.asarray(q))
        h = 1e-5
        fd = [(phi(g, q + h * e) - phi(g, q - h * e)) / (2 * h) for e in np.eye(q.size)]
        assert np.allclose(grad, fd, rtol=1e-7, atol=1e-8)


def test_social_gradient_is_a_descent_direction_on_strongly_monotone_games():
    rng = np.random.default_rng(2)
    for seed in range(3):
        game = _affine(seed, n=4)
        A, Q, c = np.asarray(game.A), np.asarray(game.Q), np.asarray(game.c)
        for _ in range(5):
            p = 3.0 * rng.normal(size=4)
            ip = float(descent_inner_product(game, jnp.asarray(p)))
            x = np.linalg.solve(A, -(np.asarray(game.b) + p))
            g = Q @ x + c
            assert ip == pytest.approx(-g @ np.linalg.solve(A, g), rel=1e-10)
            assert ip < 0


def test_descent_property_fails_on_the_non_monotone_example():
    """Documented behaviour: with DF = [[1, 10], [0, 1]] and grad S = (1, 1),
    <grad Phi, grad S> = -(1, 1) DF^{-1} (1, 1)^T = +8 at every p: the social gradient raises
    the planner's cost."""
    game = AffineGame.non_monotone()
    for p in np.random.default_rng(3).normal(size=(5, 2)):
        assert float(descent_inner_product(game, jnp.asarray(p))) == pytest.approx(8.0)


def test_flow_reaches_the_optimal_incentive_on_affine_and_routing_games():
    game = _affine()
    _, p_star = _affine_closed_form(game)
    res = social_gradient_flow(game, jnp.zeros(5), step=0.5, steps=5000, tol=1e-11)
    assert res.status == "successful"
    assert np.abs(res.p - p_star).max() < 1e-8
    assert res.equilibrium_solves == res.iterations and res.agent_steps == 0
    assert np.all(np.diff(res.trace_objective) <= 1e-12)  # Phi decreases along the flow

    routing = Routing.create()
    _, tolls = _routing_reference(routing)
    box = Box.create(0.0, 4.0, 3)
    res = social_gradient_flow(routing, jnp.zeros(3), step=0.5, steps=5000, safe_set=box)
    assert res.status == "successful"
    assert np.abs(res.p - tolls).max() < 1e-8  # the marginal-cost tolls


def test_two_timescale_converges_for_every_learning_rule_with_small_ratio():
    game = _affine()
    _, p_star = _affine_closed_form(game)
    for rule, gamma in (("gradient", 0.2), ("best-response", 0.5)):
        res = two_timescale(game, jnp.zeros(5), rule=rule, gamma=gamma, beta=0.05 * gamma,
                            steps=STEPS)  # fmt: skip
        assert res.status == "successful", rule
        assert np.abs(res.p - p_star).max() < 1e-8, rule
        assert res.equilibrium_solves == 0 and res.agent_steps == res.iterations
    routing = Routing.create()
    _, tolls = _routing_reference(routing)
    box = Box.create(0.0, 4.0, 3)
    for rule, gamma in (("gradient", 0.2), ("best-response", 0.5), ("mirror", 0.2)):
        res = two_timescale(routing, jnp.zeros(3), rule=rule, gamma=gamma, beta=0.05 * gamma,
                            steps=STEPS, safe_set=box)  # fmt: skip
        assert res.status == "successful", rule
        assert np.abs(res.p - tolls).max() < 1e-8, rule


def test_two_timescale_with_a_large_ratio_fails_and_says_so():
    """Documented behaviour: gradient play with beta / gamma = 10 on the affine game diverges
    (status nonfinite, the objective is reported as NaN, never as a number)."""
    game = _affine(1, n=4)
    res = two_timescale(game, jnp.zeros(4), rule="gradient", gamma=0.2, beta=2.0, steps=STEPS)
    assert res.status == "nonfinite"
    assert not np.isfinite(res.objective)
    assert not res.ok


def test_hypergradient_descent_reaches_the_optimum():
    game = _affine()
    _, p_star = _affine_closed_form(game)
    res = hypergradient_descent(game, jnp.zeros(5), learning_rate=0.5, steps=5000, tol=1e-11)
    assert res.status == "successful"
    assert np.abs(res.p - p_star).max() < 1e-8
    assert res.equilibrium_solves == res.iterations


def test_projection_onto_the_safe_set_and_constrained_stationarity():
    box = Box.create([-1.0, 0.0], [1.0, 2.0])
    assert np.allclose(box.project(jnp.array([3.0, -1.0])), [1.0, 0.0])
    ball = Ball.create([0.0, 0.0], 2.0)
    assert np.allclose(ball.project(jnp.array([3.0, 4.0])), [1.2, 1.6])
    assert np.allclose(ball.project(jnp.array([0.3, 0.4])), [0.3, 0.4])
    game = _affine()
    _, p_star = _affine_closed_form(game)
    lo = np.minimum(p_star, 0.0) + 0.5 * np.abs(p_star)  # p* lies outside this box
    box = Box.create(lo - 10.0 * (p_star > 0), lo + 10.0 * (p_star <= 0))
    res = social_gradient_flow(game, jnp.zeros(5), step=0.5, steps=5000, safe_set=box)
    assert res.status == "successful"
    assert np.all(res.p >= np.asarray(box.lower) - 1e-15)
    assert np.all(res.p <= np.asarray(box.upper) + 1e-15)
    g = np.asarray(game.social_gradient(jnp.asarray(res.x)))
    at_upper = np.isclose(res.p, np.asarray(box.upper))
    at_lower = np.isclose(res.p, np.asarray(box.lower))
    assert np.any(at_upper | at_lower)
    assert np.all(g[at_upper] > 0) and np.all(g[at_lower] < 0)  # the flow pushes outward
    assert np.all(np.abs(g[~(at_upper | at_lower)]) < 1e-9)


def test_flow_compiles_once_and_reports_through_the_callback():
    game = _affine()
    social_gradient_flow(game, jnp.zeros(5), step=0.5, steps=5000)
    before = _flow_loop._cache_size()
    seen = []
    res = social_gradient_flow(game, jnp.ones(5), step=0.3, steps=5000)
    assert _flow_loop._cache_size() == before  # new p0 and step: no recompilation
    res = social_gradient_flow(game, jnp.ones(5), step=0.3, steps=5000,
                               callback=lambda k, m: seen.append(int(k)), callback_every=50)  # fmt: skip
    jax.effects_barrier()
    assert seen == list(range(0, res.iterations, 50))


def test_bad_arguments_raise_value_errors_naming_them():
    game = _affine()
    with pytest.raises(ValueError, match="rule: mirror descent needs"):
        two_timescale(game, jnp.zeros(5), rule="mirror")
    with pytest.raises(ValueError, match="rule must be one of"):
        two_timescale(game, jnp.zeros(5), rule="fictitious")
    with pytest.raises(ValueError, match="p0 must have shape"):
        social_gradient_flow(game, jnp.zeros(3))
    with pytest.raises(ValueError, match="step"):
        social_gradient_flow(game, jnp.zeros(5), step=-1.0)
    with pytest.raises(ValueError, match="beta"):
        two_timescale(game, jnp.zeros(5), beta=0.0)
    with pytest.raises(ValueError, match="steps"):
        hypergradient_descent(game, jnp.zeros(5), steps=0)
    with pytest.raises(ValueError, match="safe_set must have dimension"):
        social_gradient_flow(game, jnp.zeros(5), safe_set=Box.create(0.0, 1.0, 3))
    with pytest.raises(ValueError, match="radius"):
        Ball.create([0.0], 0.0)
    with pytest.raises(ValueError, match="lower must be <= upper"):
        Box.create(1.0, 0.0)


def test_optimal_incentive_matches_the_closed_forms():
    game = _affine(2)
    xs, p_star = _affine_closed_form(game)
    p, opt = optimal_incentive(game)
    assert opt.status_name == "successful"
    assert np.allclose(opt.x, xs, atol=1e-12) and np.allclose(p, p_star, atol=1e-12)
    cournot = Cournot.create()
    c, d = np.array([1.0, 1.5, 2.0, 2.5, 3.0]), np.array([0.5, 0.5, 1.0, 1.0, 1.5])
    xs = np.linalg.solve(np.ones((5, 5)) + np.diag(d), 20.0 - c)  # price = marginal cost
    p, opt = optimal_incentive(cournot)
    assert np.allclose(opt.x, xs, atol=1e-12)
    assert np.allclose(p, -1.0 * xs, atol=1e-12)  # the output subsidy p* = -b x^s


# --------------------------------------------------------------------------- mean field

REF = BEACH_BAR_DESIGN  # K = 20, H = 10, crowd 0.1, beta 50, tau 0.1, eta 0.3
K, H = REF.num_states, REF.horizon
EVAL_ITERS = 5000  # one compiled OMD solve for every evaluation
AMID_CONGESTION = 1.09915  # AMID's converged beach-bar design (results/beach_bar_design)


def test_additive_incentive_adds_a_tax_and_round_constants_do_not_matter():
    bar = REF.game()
    game = AdditiveIncentive(bar)
    L = jnp.full((K, 3), 1.0 / (3 * K))
    p = jnp.asarray(np.random.default_rng(4).normal(size=(H, K, 3)))
    base = bar.dynamics(2, L, None)
    taxed = game.dynamics(2, L, p)
    assert np.allclose(taxed.reward, base.reward - p[2])
    # a tax constant over (s, a) within each round leaves the equilibrium unchanged
    shift = jnp.linspace(-1.0, 2.0, H)[:, None, None] * jnp.ones((H, K, 3))
    kw = dict(tau=0.1, eta=0.3, iters=EVAL_ITERS, tol=1e-12)
    a = solve_omd(game, p, **kw)
    b = solve_omd(game, p + shift, **kw)
    assert a.status_name == b.status_name == "successful"
    assert np.allclose(a.policy, b.policy, atol=1e-10)


def test_mf_social_gradient_reaches_the_uniform_crowd_minimum():
    bar, objective = REF.game(), REF.objective()
    lower_bound = H * np.log(K * np.exp(REF.beta / K)) / REF.beta  # every mu_h uniform
    kw = dict(tau=REF.tau, eta=REF.eta)
    untaxed = solve_omd(AdditiveIncentive(bar), jnp.zeros((H, K, 3)), iters=EVAL_ITERS, tol=1e-9,
                        **kw)  # fmt: skip
    start = float(objective(bar, None, untaxed.flow))
    res = mf_social_gradient(bar, objective, beta=1.0, inner=10, steps=100, **kw)
    assert res.omd_steps == 1000 and res.status == "max_iterations"
    ev = solve_omd(AdditiveIncentive(bar), jnp.asarray(res.p), iters=EVAL_ITERS, tol=1e-9, **kw)
    value = float(objective(bar, None, ev.flow))
    assert ev.status_name == "successful" and float(ev.exploitability) <= 1e-9
    assert start - lower_bound > 0.2  # without a tax the crowd gathers at the bar
    assert value - lower_bound < 1e-4 * (start - lower_bound)
    assert value <= 1.01 * AMID_CONGESTION  # within 1 % of AMID's converged design
    with pytest.raises(ValueError, match="p0 must have shape"):
        mf_social_gradient(bar, objective, jnp.zeros((H, K)), beta=1.0, **kw)
    with pytest.raises(ValueError, match="beta"):
        mf_social_gradient(bar, objective, beta=0.0, **kw)
