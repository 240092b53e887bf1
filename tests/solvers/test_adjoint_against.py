"""Every adjoint against every other, central finite differences and ``check_grads``, on three
games (beach bar, a random L-dependent PMFG, a tiny A1 auction), plus grad-of-vmap; the custom-VJP
adjoints refuse forward mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fd_directional, flat, random_direction, random_pmfg, rel
from jax.test_util import check_grads

from auctions import make, revenue
from mfid import BeachBar, Congestion
from solvers import (
    Checkpointed,
    Implicit,
    Reference,
    Unrolled,
    design_objective,
    omd_logits,
    value_and_grad,
)
from solvers.gradients import objective_at

ITERS = 50  # not a multiple of the default segment ceil(sqrt(50)) = 8: the remainder is tested
ADJOINTS = (Unrolled(), Checkpointed(), Checkpointed(segment=7), Reference())


_W = jnp.asarray(np.random.default_rng(7).normal(size=(3, 4, 3)))


def pmfg_objective(game, theta, L, info):
    return jnp.sum(_W * L) + 0.5 * jnp.sum(L**2) + 0.05 * jnp.sum(theta["r"] ** 2)


def _beach_bar():
    game = BeachBar.create(num_states=8, horizon=4, crowd=0.2)
    theta = jnp.asarray(np.random.default_rng(1).normal(size=8))
    return game, Congestion(50.0), theta, 0.1, 0.3


def _pmfg():
    game, theta = random_pmfg()
    return game, pmfg_objective, theta, 0.1, 0.3


def _tiny_a1():
    st = make("A1", num_values=6, num_bids=5, width=8, depth=1, key=jax.random.key(7))
    return st.game, revenue, st.theta0, 0.05, 2.0


GAMES = {"beach_bar": _beach_bar, "random_pmfg": _pmfg, "tiny_a1": _tiny_a1}


@pytest.mark.parametrize("name", GAMES)
def test_adjoints_agree_and_match_finite_differences(name):
    game, objective, theta, tau, eta = GAMES[name]()
    kw = dict(tau=tau, eta=eta, iters=ITERS)
    # every adjoint class on every game; the segment remainder (segment=7) on the beach bar
    adjoints = ADJOINTS if name == "beach_bar" else ADJOINTS[:2] + ADJOINTS[3:]
    results = [value_and_grad(game, objective, theta, adjoint=a, **kw) for a in adjoints]
    v0, g0, _ = results[0]
    assert np.abs(flat(g0)).max() > 1e-6  # a non-trivial gradient
    for adj, (v, g, aux) in zip(adjoints, results, strict=True):
        assert aux.status_name == "successful", (adj, aux.status_name)
        assert abs(float(v) - float(v0)) <= 1e-12 * abs(float(v0)), adj
        assert rel(g, g0) < 1e-10, adj
        if (name == "beach_bar" and adj is not ADJOINTS[2]) or adj is ADJOINTS[1]:
            # jax.grad through the public objective reaches the same adjoint (every adjoint class
            # on one game, AMID on all three: each is one more compiled program)
            gj = jax.grad(
                lambda th, adj=adj: design_objective(game, objective, th, adjoint=adj, **kw)
            )(theta)
            assert rel(gj, g0) < 1e-10, adj
    d = random_direction(jax.random.key(0), theta)
    fd = fd_directional(lambda th: value_and_grad(game, objective, th, **kw)[0], theta, d)
    exact = float(flat(g0) @ flat(d))
    assert abs(fd - exact) <= 1e-6 * max(abs(exact), 1e-3), (fd, exact)


def _traced_objective(game, objective, tau, eta, adjoint, iters=20):
    def G(theta):
        z = omd_logits(game, theta, tau=tau, eta=eta, iters=iters, adjoint=adjoint)
        return objective_at(game, objective, theta, z)[0]

    return G


@pytest.mark.parametrize("adjoint", [Unrolled(), Checkpointed(), Reference()])
def test_check_grads_reverse_mode(adjoint):
    game, objective, theta, tau, eta = _beach_bar()
    G = jax.jit(_traced_objective(game, objective, jnp.asarray(tau), jnp.asarray(eta), adjoint))
    check_grads(G, (theta,), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)


def test_grad_of_vmap_and_vmap_of_grad():
    game, objective, theta, tau, eta = _beach_bar()
    thetas = jnp.stack([theta, 0.5 * theta, -theta])
    for adjoint in (Checkpointed(), Reference()):
        G = _traced_objective(game, objective, tau, eta, adjoint)
        grad = jax.jit(jax.grad(G))
        one = jnp.stack([grad(t) for t in thetas])
        assert rel(jax.jit(jax.vmap(jax.grad(G)))(thetas), one) < 1e-12
        total = lambda ts, G=G: jnp.sum(jax.vmap(G)(ts))
        assert rel(jax.jit(jax.grad(total))(thetas), one) < 1e-12


def test_implicit_matches_exact_adjoints_once_converged():
    game, objective, theta, _, _ = _beach_bar()
    kw = dict(tau=1.0, eta=0.8, iters=ITERS)  # OMD contracts fast: converged within ITERS steps
    _, g_unr, _ = value_and_grad(game, objective, theta, adjoint=Unrolled(), **kw)
    _, g_imp, aux = value_and_grad(game, objective, theta, adjoint=Implicit(), **kw)
    assert aux.status_name == "successful"
    assert float(aux.fixed_point_residual) < 1e-12
    assert float(aux.linear_residual) < 1e-10
    assert rel(g_imp, g_unr) < 1e-8
    g_jax = jax.grad(lambda th: design_objective(game, objective, th, adjoint=Implicit(), **kw))(
        theta
    )
    assert rel(g_jax, g_imp) < 1e-12


def test_implicit_refuses_an_unconverged_fixed_point_on_every_path():
    game, objective, theta, tau, eta = _beach_bar()
    kw = dict(tau=tau, eta=eta, iters=ITERS)
    with pytest.raises(ValueError, match="omd_not_converged"):
        value_and_grad(game, objective, theta, adjoint=Implicit(), **kw)
    _, g_imp, aux = value_and_grad(game, objective, theta, adjoint=Implicit(), throw=False, **kw)
    assert aux.status_name == "omd_not_converged"
    assert float(aux.fixed_point_residual) > 1e-6
    _, g_unr, _ = value_and_grad(game, objective, theta, adjoint=Unrolled(), **kw)
    assert rel(g_imp, g_unr) > 1e-4  # the refused gradient is really off
    # through jax.grad: loud by default, NaN with throw=False
    with pytest.raises(Exception, match="Implicit adjoint refused"):
        jax.block_until_ready(
            jax.grad(lambda th: design_objective(game, objective, th, adjoint=Implicit(), **kw))(
                theta
            )
        )
    quiet = Implicit(throw=False)
    g = jax.grad(lambda th: design_objective(game, objective, th, adjoint=quiet, **kw))(theta)
    assert np.all(np.isnan(np.asarray(g)))


@pytest.mark.parametrize("adjoint", [Implicit(), Reference()])
def test_custom_vjp_adjoints_refuse_forward_mode(adjoint):
    game, objective, theta, tau, eta = _beach_bar()
    G = _traced_objective(game, objective, tau, eta, adjoint)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(G, (theta,), (theta,))
