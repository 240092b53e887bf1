"""Exact gradient modes of G_T: cross-mode agreement, finite differences, implicit validity,
memory scaling from XLA's memory analysis, no recompilation, argument errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfid import PMFG, BeachBar, congestion
from solvers.gradients import (
    NOT_CONVERGED,
    OK,
    _value_and_grad,
    design_objective,
    lower_value_and_grad,
    value_and_grad,
)

TAU, ETA = 0.1, 0.3


def bb_objective(theta, L):
    return congestion(L, 50.0)


def bb_game():
    return BeachBar.create(num_states=8, horizon=4, crowd=0.2)


def _random_pmfg(seed=0, S=4, A=3, H=3):
    rng = np.random.default_rng(seed)
    R0 = jnp.asarray(rng.normal(size=(H, S, A)))
    Plog = jnp.asarray(rng.normal(size=(H, S, A, S)))

    def reward(h, L, theta):
        mu = L.sum(-1)
        return R0[h] + theta["r"] - 0.5 * mu[:, None] + 0.3 * jnp.tanh(theta["c"]) * L

    def transition(h, L, theta):
        mu = L.sum(-1)
        return jax.nn.softmax(Plog[h] + theta["p"][:, :, None] * mu[None, None, :], axis=-1)

    mu0 = jnp.asarray(rng.dirichlet(np.ones(S)))
    game = PMFG.create(mu0, H, transition, reward, num_actions=A)
    theta = {
        "r": jnp.asarray(0.3 * rng.normal(size=(S, A))),
        "p": jnp.asarray(rng.normal(size=(S, A))),
        "c": jnp.asarray(0.5),
    }
    return game, theta


W = jnp.asarray(np.random.default_rng(7).normal(size=(3, 4, 3)))


def pmfg_objective(theta, L):
    return jnp.sum(W * L) + 0.5 * jnp.sum(L**2) + 0.05 * jnp.sum(theta["r"] ** 2)


def _flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(tree)])


def _rel(a, b):
    a, b = _flat(a), _flat(b)
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def _fd_directional(f, theta, direction, h=1e-5):
    plus = jax.tree_util.tree_map(lambda x, d: x + h * d, theta, direction)
    minus = jax.tree_util.tree_map(lambda x, d: x - h * d, theta, direction)
    return (float(f(plus)) - float(f(minus))) / (2 * h)


ITERS = 50  # not a multiple of the default AMID segment ceil(sqrt(50)) = 8: tests the remainder


def _check_cross_modes_and_fd(game, objective, theta, key):
    kw = dict(tau=TAU, eta=ETA, iters=ITERS)
    results = {m: value_and_grad(game, objective, theta, mode=m, **kw) for m in MODES}
    v0, g0, _ = results["unrolled"]
    assert float(jnp.abs(_flat(g0)).max()) > 1e-6  # a non-trivial gradient
    for name, (v, g, aux) in results.items():
        assert int(aux.status) == OK, name
        assert abs(float(v) - float(v0)) <= 1e-12 * abs(float(v0)), name
        assert _rel(g, g0) < 1e-10, name
    leaves, treedef = jax.tree_util.tree_flatten(theta)
    keys = jax.random.split(key, len(leaves))
    direction = treedef.unflatten(
        [jax.random.normal(k, jnp.shape(x)) for k, x in zip(keys, leaves, strict=True)]
    )
    fd = _fd_directional(
        lambda th: value_and_grad(game, objective, th, mode="unrolled", **kw)[0], theta, direction
    )
    exact = float(_flat(g0) @ _flat(direction))
    assert abs(fd - exact) <= 1e-6 * max(abs(exact), 1e-3), (fd, exact)
    return g0


MODES = ("unrolled", "amid", "reference")


def test_modes_agree_and_match_fd_on_beach_bar():
    game = bb_game()
    theta = jnp.asarray(np.random.default_rng(1).normal(size=8))
    g_ref = _check_cross_modes_and_fd(game, bb_objective, theta, jax.random.PRNGKey(0))
    # jax.grad through the public objective (checkpointed loop) gives the same gradient
    kw = dict(tau=TAU, eta=ETA, iters=ITERS, mode="amid")
    g = jax.grad(lambda th: design_objective(game, bb_objective, th, **kw))(theta)
    assert _rel(g, g_ref) < 1e-10


def test_modes_agree_and_match_fd_on_random_pmfg():
    game, theta = _random_pmfg()
    _check_cross_modes_and_fd(game, pmfg_objective, theta, jax.random.PRNGKey(1))


def test_implicit_matches_exact_modes_once_converged():
    # large tau and step: OMD contracts fast and reaches the fixed point within ITERS steps
    game = bb_game()
    theta = jnp.asarray(np.random.default_rng(3).normal(size=8))
    kw = dict(tau=1.0, eta=0.8, iters=ITERS)
    _, g_unr, _ = value_and_grad(game, bb_objective, theta, mode="unrolled", **kw)
    v, g_imp, aux = value_and_grad(game, bb_objective, theta, mode="implicit", **kw)
    assert int(aux.status) == OK
    assert float(aux.fixed_point_residual) < 1e-12
    assert float(aux.linear_residual) < 1e-10
    assert _rel(g_imp, g_unr) < 1e-8
    # the custom-VJP rule used by jax.grad through omd_logits(mode="implicit") agrees as well
    g_jax = jax.grad(lambda th: design_objective(game, bb_objective, th, mode="implicit", **kw))(
        theta
    )
    assert _rel(g_jax, g_imp) < 1e-9


def test_implicit_reports_and_refuses_before_convergence():
    game = bb_game()
    theta = jnp.asarray(np.random.default_rng(4).normal(size=8))
    kw = dict(tau=TAU, eta=ETA, iters=ITERS)
    with pytest.raises(ValueError, match="omd_not_converged"):
        value_and_grad(game, bb_objective, theta, mode="implicit", **kw)
    _, g_imp, aux = value_and_grad(game, bb_objective, theta, mode="implicit", check=False, **kw)
    assert int(aux.status) == NOT_CONVERGED
    assert float(aux.fixed_point_residual) > 1e-6
    # the refused gradient is really off for the 50-step objective
    _, g_unr, _ = value_and_grad(game, bb_objective, theta, mode="unrolled", **kw)
    assert _rel(g_imp, g_unr) > 1e-4


def _temp_bytes(mode, iters, game, theta):
    lowered, _ = lower_value_and_grad(
        game, bb_objective, theta, tau=TAU, eta=ETA, iters=iters, mode=mode
    )
    return lowered.compile().memory_analysis().temp_size_in_bytes


def test_memory_scaling_from_xla_memory_analysis():
    game = BeachBar.create(num_states=6, horizon=3)
    theta = jnp.zeros(6)
    mem = {m: [_temp_bytes(m, T, game, theta) for T in (100, 6400)] for m in ("unrolled", "amid")}
    mem["implicit"] = [_temp_bytes("implicit", T, game, theta) for T in (100, 6400)]
    ratio = {m: b / a for m, (a, b) in mem.items()}
    assert ratio["amid"] <= 12.0, mem
    assert 32.0 <= ratio["unrolled"] <= 80.0, mem  # T grows 64x
    assert ratio["implicit"] <= 1.05, mem
    assert mem["amid"][1] < mem["unrolled"][1] / 20


def test_second_call_with_new_values_does_not_recompile():
    game = bb_game()
    kw = dict(eta=ETA, iters=ITERS, mode="amid")
    value_and_grad(game, bb_objective, jnp.zeros(8), tau=TAU, **kw)
    n = _value_and_grad._cache_size()
    game2 = BeachBar.create(num_states=8, horizon=4, crowd=0.5, p_still=0.7)
    value_and_grad(game2, bb_objective, jnp.ones(8), tau=0.2, zeta0=jnp.ones((4, 8, 3)), **kw)
    assert _value_and_grad._cache_size() == n


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mode="adjoint"), "mode"),
        (dict(iters=0), "iters"),
        (dict(tau=-1.0), "tau"),
        (dict(eta=0.0), "eta"),
        (dict(segment=0), "segment"),
        (dict(zeta0=jnp.zeros((2, 2, 2))), "zeta0"),
        (dict(theta=jnp.full(8, jnp.nan)), "theta"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    args = dict(tau=TAU, eta=ETA, iters=5, mode="amid", theta=jnp.zeros(8))
    args.update(kwargs)
    theta = args.pop("theta")
    with pytest.raises(ValueError, match=match):
        value_and_grad(bb_game(), bb_objective, theta, **args)


def test_cli_bench_memory_writes_rows_and_figure(tmp_path):
    import json

    from mfid.cli import main

    path = tmp_path / "bench.json"
    argv = ["bench", "memory", "--T", "16,64", "--modes", "unrolled", "--repeats", "1"]
    assert main(argv + ["--json", str(path), "--no-progress"]) == 0
    rows = json.loads(path.read_text())["rows"]
    assert [(r["mode"], r["T"]) for r in rows] == [("unrolled", 16), ("unrolled", 64)]
    assert all(r["temp_bytes"] > 0 and r["seconds"] > 0 for r in rows)
    assert 2.0 < rows[1]["temp_bytes"] / rows[0]["temp_bytes"] < 6.0  # O(T): T grows 4x
    assert path.with_suffix(".png").stat().st_size > 1000
    assert main(["bench", "memory", "--game", "nope", "--json", str(path)]) == 2
