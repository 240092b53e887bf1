"""value_and_grad: memory scaling from XLA's memory analysis, statuses of a diverging or
mass-creating OMD, the objective sees the solver's game, no recompilation, argument errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import no_recompile

from auctions import make, revenue
from mfid import PMFG, BeachBar, Congestion
from solvers import Implicit, lower_value_and_grad, solve_omd, value_and_grad

TAU, ETA = 0.1, 0.3
OBJ = Congestion(50.0)


def bb_game():
    return BeachBar.create(num_states=8, horizon=4, crowd=0.2)


def _temp_bytes(adjoint, iters, game, theta):
    lowered, _ = lower_value_and_grad(
        game, OBJ, theta, tau=TAU, eta=ETA, iters=iters, adjoint=adjoint
    )
    return lowered.compile().memory_analysis().temp_size_in_bytes


def test_memory_scaling_from_xla_memory_analysis():
    game = BeachBar.create(num_states=6, horizon=3)
    theta = jnp.zeros(6)
    Ts = (100, 1600)  # T grows 16x
    mem = {m: [_temp_bytes(m, T, game, theta) for T in Ts] for m in ("unrolled", "amid")}
    mem["implicit"] = [_temp_bytes("implicit", T, game, theta) for T in Ts]
    ratio = {m: b / a for m, (a, b) in mem.items()}
    assert ratio["amid"] <= 6.0, mem  # ~ sqrt(16) = 4
    assert 10.0 <= ratio["unrolled"] <= 24.0, mem  # ~ 16
    assert ratio["implicit"] <= 1.05, mem
    assert mem["amid"][1] < mem["unrolled"][1] / 5


def test_objective_receives_the_solvers_game():
    # an objective that closed over game A would evaluate A's revenue on B's flow
    st = make("A1", num_values=6, num_bids=5, width=8, depth=1, key=jax.random.key(7))
    kw = dict(tau=0.05, eta=2.0, iters=25)
    gB = st.game.replace(alpha_max=jnp.asarray(0.5))
    vB = float(value_and_grad(gB, revenue, st.theta0, **kw)[0])
    vA = float(value_and_grad(st.game, revenue, st.theta0, **kw)[0])
    from mfid import population_flow
    from solvers import omd_logits, policy_from_logits

    z = jax.jit(lambda g, t: omd_logits(g, t, tau=0.05, eta=2.0, iters=25))(gB, st.theta0)
    L = population_flow(gB, policy_from_logits(z)[0], st.theta0)
    assert vB == pytest.approx(float(revenue(gB, st.theta0, L)), rel=1e-12)
    assert abs(vA - vB) > 1e-3


def test_diverging_omd_is_a_status_not_ok():
    game = BeachBar.create(num_states=6, horizon=4)
    _, g, aux = value_and_grad(game, OBJ, jnp.zeros(6), tau=0.1, eta=30.0, iters=200, throw=False)
    assert aux.status_name in ("diverged", "nonfinite")
    with pytest.raises(ValueError, match="diverged|nonfinite"):
        value_and_grad(game, OBJ, jnp.zeros(6), tau=0.1, eta=30.0, iters=200)
    res = solve_omd(game, None, tau=0.1, eta=1e6, iters=50)
    assert res.status_name in ("diverged", "nonfinite")


def test_mass_creation_is_a_status():
    # a callable kernel whose rows sum to 1.5 only where L_h(0, 0) lies in (0.1, 0.2): the
    # validation probes (L = mu0 x uniform, L(0, 0) = 0) pass; round 1 has L(0, 0) ~ 1/6
    S, A = 3, 2

    def transition(h, L, theta):
        base = jnp.full((S, A, S), 1.0 / S)
        return base * (1.0 + 0.5 * ((L[0, 0] > 0.1) & (L[0, 0] < 0.2)))

    game = PMFG.create(jnp.array([0.0, 0.5, 0.5]), 4, transition, jnp.zeros((S, A)), num_actions=A)
    res = solve_omd(game, None, tau=0.1, eta=0.5, iters=20)
    assert res.status_name == "mass_not_conserved"
    assert float(res.mass_error) == pytest.approx(0.5, rel=1e-9)


def test_second_call_with_new_values_does_not_recompile():
    game = bb_game()
    kw = dict(eta=ETA, iters=20)
    value_and_grad(game, OBJ, jnp.zeros(8), tau=TAU, **kw)
    game2 = BeachBar.create(num_states=8, horizon=4, crowd=0.5, p_still=0.7)
    with no_recompile("_value_and_grad"):
        value_and_grad(game2, Congestion(50.0), jnp.ones(8), tau=0.2, zeta0=jnp.ones((4, 8, 3)),
                       **kw)  # fmt: skip


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(adjoint="adjoint"), "adjoint"),
        (dict(iters=0), "iters"),
        (dict(iters=2.5), "iters"),
        (dict(tau=-1.0), "tau"),
        (dict(tau="0.1"), "tau"),
        (dict(eta=0.0), "eta"),
        (dict(eta=None), "eta"),
        (dict(zeta0=jnp.zeros((2, 2, 2))), "zeta0"),
        (dict(theta=jnp.full(8, jnp.nan)), "theta"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    args = dict(tau=TAU, eta=ETA, iters=5, theta=jnp.zeros(8))
    args.update(kwargs)
    theta = args.pop("theta")
    with pytest.raises(ValueError, match=match):
        value_and_grad(bb_game(), OBJ, theta, **args)


def test_bad_adjoint_settings_raise():
    from solvers import Checkpointed

    with pytest.raises(ValueError, match="segment"):
        Checkpointed(segment=0)
    with pytest.raises(ValueError, match="linear_tol"):
        Implicit(linear_tol=0.0)


def test_objective_returning_a_vector_raises():
    with pytest.raises(ValueError, match="scalar"):
        value_and_grad(bb_game(), lambda g, t, L, i: L.sum((1, 2)), jnp.zeros(8), tau=TAU,
                       eta=ETA, iters=3)  # fmt: skip


def test_reference_is_not_unrolled_in_disguise():
    # the Reference adjoint's backward pass is its own custom rule: forward mode is refused
    game = bb_game()
    with pytest.raises(TypeError):
        from solvers import Reference, design_objective

        jax.jvp(lambda t: design_objective(game, OBJ, t, tau=TAU, eta=ETA, iters=3,
                                           adjoint=Reference()), (jnp.zeros(8),), (jnp.ones(8),))  # fmt: skip
    assert np.isfinite(1.0)
