"""MetaGrad, dual-RL and the finite-agent design loop: the inner step's dependence
on the designer parameters against central differences, the meta-gradient against central
differences of the designer's surrogate, the hand-coded incentive driving policy-gradient agents to
the optimum minus m eps, the dual-RL policies against scipy, best-response gains, checkpoints and
resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from scipy.stats import norm

from mfid.games.escape_room import EscapeRoom, sample_episodes
from solvers.dual_rl import DISCRETE_LEVELS, DualRL, decode_levels
from solvers.finite_design import (
    CHECKPOINT_NAME,
    HandIncentive,
    NoIncentive,
    deviation_gains,
    evaluate,
    init_state,
    seed_state,
    train,
    train_chunk,
)
from solvers.metagrad import MetaGrad, designer_surrogate, inner_step, meta_gradient
from solvers.pg_agents import AgentConfig, agent_logits, policy_log_probs

GAME = EscapeRoom.create(n=3, m=1)
AGENTS = AgentConfig(learning_rate=0.5, entropy=0.05, batch=8, init_scale=0.5)
DESIGNER = MetaGrad.create(GAME, hidden=(8,), init_bias=-0.5)  # shared: compiled once


def _setup(seed=0):
    return DESIGNER, init_state(GAME, DESIGNER, AGENTS, jax.random.key(seed))


def _direction(params, key):
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return tree.unflatten(
        [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)]
    )


def _shift(params, v, h):
    return jax.tree_util.tree_map(lambda p, d: p + h * d, params, v)


def test_inner_step_depends_on_designer_parameters_as_central_differences_say():
    designer, state = _setup()
    tau = state.episodes
    feats = jax.vmap(jax.vmap(GAME.features))(tau.state, tau.actions)
    params = state.designer.params
    v = _direction(params, jax.random.key(7))
    obs = jax.vmap(jax.vmap(GAME.observe))(tau.state)  # the observations the agents saw

    def updated_policy(p):
        theta_hat = inner_step(designer, GAME, AGENTS, state.agents, tau, feats, p)
        return jax.nn.softmax(
            jax.vmap(jax.vmap(agent_logits, (None, 0)), (None, 0))(theta_hat, obs)
        )

    both = jax.jit(lambda p: jax.jvp(updated_policy, (p,), (v,)))  # one compilation
    _, jvp = both(params)
    h = 1e-5
    fd = (both(_shift(params, v, h))[0] - both(_shift(params, v, -h))[0]) / (2 * h)
    assert float(jnp.max(jnp.abs(jvp))) > 1e-4  # the incentive really moves the policies
    np.testing.assert_allclose(np.asarray(jvp), np.asarray(fd), rtol=1e-6, atol=1e-9)


def test_inner_step_is_each_agents_own_reinforce_step():
    """theta_hat_i - theta_i = alpha grad_i sum_t log pi_i (G^i_t - mean_B G^i_t) + entropy term,
    checked against agent-by-agent gradients of agent i's own objective only."""
    designer, state = _setup(1)
    tau = state.episodes
    feats = jax.vmap(jax.vmap(GAME.features))(tau.state, tau.actions)
    paid = designer.paid(state.designer.params, tau, feats)
    theta_hat = inner_step(designer, GAME, AGENTS, state.agents, tau, feats, state.designer.params)
    rewards = np.asarray(tau.rewards + paid)
    alive = np.asarray(tau.alive)
    B, T, n = rewards.shape
    G = np.zeros_like(rewards)
    for t in reversed(range(T)):
        G[:, t] = rewards[:, t] + (AGENTS.discount * G[:, t + 1] if t + 1 < T else 0.0)
    G *= alive[..., None]
    base = (G * alive[..., None]).sum(0) / np.maximum(alive.sum(0), 1)[:, None]
    adv = (G - base) * alive[..., None]
    for i in range(n):

        def own(theta_i, i=i):
            theta = jax.tree_util.tree_map(lambda a, b: a.at[i].set(b), state.agents, theta_i)
            logp, ent = policy_log_probs(GAME, theta, tau)
            return jnp.sum(logp[..., i] * adv[..., i] + AGENTS.entropy * ent[..., i] * alive) / B

        theta_i = jax.tree_util.tree_map(lambda a, i=i: a[i], state.agents)
        grad = jax.grad(own)(theta_i)
        for key in ("w", "b"):
            want = theta_i[key] + AGENTS.learning_rate * grad[key]
            np.testing.assert_allclose(np.asarray(theta_hat[key][i]), np.asarray(want),
                                       rtol=1e-10, atol=1e-12)  # fmt: skip


def test_meta_gradient_matches_central_differences_of_the_designer_surrogate():
    designer, state = _setup(2)
    key = jax.random.key(3)
    run = jax.jit(lambda th, ep, ds, k: meta_gradient(designer, GAME, AGENTS, th, ep, ds, k))
    theta_hat, (tau_hat, g_eta) = run(state.agents, state.episodes, state.designer, key)
    tau = state.episodes
    feats = jax.vmap(jax.vmap(GAME.features))(tau.state, tau.actions)

    @jax.jit
    def surrogate(p):
        th = inner_step(designer, GAME, AGENTS, state.agents, tau, feats, p)
        return designer_surrogate(designer, GAME, AGENTS, th, tau_hat)

    params = state.designer.params
    for s in range(3):
        v = _direction(params, jax.random.key(10 + s))
        h = 1e-5
        fd = (surrogate(_shift(params, v, h)) - surrogate(_shift(params, v, -h))) / (2 * h)
        got = sum(jnp.vdot(a, b) for a, b in zip(jax.tree_util.tree_leaves(g_eta),
                                                 jax.tree_util.tree_leaves(v), strict=True))  # fmt: skip
        assert abs(float(got) - float(fd)) <= 1e-6 * max(1.0, abs(float(fd)))
    assert float(jnp.abs(fd)) > 1e-6


def test_hand_coded_incentive_drives_pg_agents_to_the_optimum_minus_m_eps():
    """ER(3,1) from uniform policies: every seed's greedy play converges to one puller paid
    1 + eps and two exits, designer objective 10(n-m) - 2m - m eps = 17.5, a Nash equilibrium of
    the incentivised game."""
    eps = 0.5
    game = EscapeRoom.create(n=3, m=1)
    hand = HandIncentive(threshold=1, bonus=1.0 + eps)
    agents = AgentConfig(learning_rate=0.1, entropy=0.01, discount=0.7, batch=16)
    res = train(game, hand, agents, iterations=600, key=jax.random.key(0), seeds=4,
                eval_every=300, keep_state=True)  # fmt: skip
    np.testing.assert_allclose(res.final_objective, game.optimum - eps, atol=1e-9)
    np.testing.assert_array_equal((res.final_actions[:, 0] == 0).sum(1), [1] * 4)
    for k in range(4):
        assert np.all(np.asarray(deviation_gains(game, hand, seed_state(res.state, k))) <= 1e-9)


def test_hand_coded_incentive_holds_er_5_2_at_the_optimum_minus_m_eps_and_none_does_not():
    """ER(5,2) from policies where agents 0 and 1 lean to the lever: under the hand-coded
    incentive the learners settle on 26 - 2 eps = 25 (two paid pullers, three exits); without it
    the same learners abandon the lever and the door stays shut."""
    eps = 0.5
    game = EscapeRoom.create(n=5, m=2)
    agents = AgentConfig(learning_rate=0.03, entropy=0.01, discount=0.7, batch=16)
    lean = jnp.zeros((5, 3)).at[0, 0].set(2.0).at[1, 0].set(2.0)
    finals = {}
    for name, designer in (("hand", HandIncentive(threshold=2, bonus=1.0 + eps)),
                           ("none", HandIncentive(threshold=2, bonus=0.0))):  # fmt: skip
        state = jax.vmap(lambda k, d=designer: init_state(game, d, agents, k))(
            jax.random.split(jax.random.key(0), 4)
        )
        state = state._replace(agents={"w": state.agents["w"], "b": state.agents["b"] + lean[None]})
        for _ in range(3):
            state, _ = train_chunk(game, designer, agents, state, 100)
        ev = jax.vmap(lambda s, d=designer: evaluate(game, d, s))(state)
        finals[name] = np.asarray(ev["objective"])
        if name == "hand":
            np.testing.assert_array_equal(np.asarray(ev["actions"])[:, 0], [[0, 0, 2, 2, 2]] * 4)
    np.testing.assert_allclose(finals["hand"], game.optimum - 2 * eps, atol=1e-9)
    assert np.all(finals["none"] <= -4.0)


def test_no_incentive_pays_nothing_and_hand_pays_only_open_door_pullers():
    game = EscapeRoom.create(n=5, m=2)
    x = game.reset()
    for acts, want in (((0, 0, 2, 2, 2), [1.1, 1.1, 0, 0, 0]), ((0, 2, 2, 2, 2), [0] * 5)):
        a = jnp.array(acts)
        paid, _ = HandIncentive(threshold=2, bonus=1.1).pay((), game.features(x, a), a, None, True)
        np.testing.assert_allclose(np.asarray(paid), want)
        paid, _ = NoIncentive().pay((), game.features(x, a), a, None, True)
        assert float(jnp.sum(paid)) == 0.0


def test_metagrad_incentives_lie_in_the_open_interval_and_depend_on_the_joint_action():
    designer, state = _setup()
    x = GAME.reset()
    v1 = designer.values(state.designer.params, GAME.features(x, jnp.array([0, 2, 2])))
    v2 = designer.values(state.designer.params, GAME.features(x, jnp.array([1, 1, 1])))
    assert v1.shape == (3,) and bool(jnp.all((v1 > 0) & (v1 < 2)))
    assert float(jnp.max(jnp.abs(v1 - v2))) > 1e-6


def test_dual_rl_discrete_levels_decode_every_action_vector():
    levels = DISCRETE_LEVELS["large"]
    seen = set()
    for k in range(len(levels) ** 3):
        v = tuple(np.asarray(decode_levels(jnp.asarray(k), levels, 3)).tolist())
        digits = (k % 5, (k // 5) % 5, k // 25)
        assert v == tuple(levels[d] for d in digits)
        seen.add(v)
    assert len(seen) == 125


def test_dual_rl_log_probabilities_and_entropies_against_scipy():
    game = EscapeRoom.create(n=4, m=2)
    x, a = game.reset(), jnp.array([0, 2, 1, 2])
    f = game.features(x, a)
    cont = DualRL.create(game, levels=None, init_log_std=-0.3)
    st = cont.init(game, AGENTS, jax.random.key(0))
    paid, z = cont.pay(st, f, a, jax.random.key(1), False)
    mu = np.asarray(cont._out(st.params, f))
    std = np.exp(np.asarray(st.params["log_std"]))
    logp, ent = cont.log_prob_entropy(st.params, f, z)
    np.testing.assert_allclose(float(logp), norm.logpdf(np.asarray(z), mu, std).sum(), rtol=1e-12)
    np.testing.assert_allclose(float(ent), norm.entropy(mu, std).sum(), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(paid), 2 / (1 + np.exp(-np.asarray(z))), rtol=1e-12)
    greedy, _ = cont.pay(st, f, a, jax.random.key(1), True)
    np.testing.assert_allclose(np.asarray(greedy), 2 / (1 + np.exp(-mu)), rtol=1e-12)
    disc = DualRL.create(game, levels=DISCRETE_LEVELS["medium"])
    st = disc.init(game, AGENTS, jax.random.key(0))
    logits = np.asarray(disc._out(st.params, f))
    logq = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    logp, ent = disc.log_prob_entropy(st.params, f, jnp.asarray(5))
    np.testing.assert_allclose(float(logp), logq[5], rtol=1e-12)
    np.testing.assert_allclose(float(ent), -(np.exp(logq) * logq).sum(), rtol=1e-12)


def test_deviation_gains_against_enumeration_of_an_agents_plans():
    """Against everyone walking to the door (door shut): any agent gains 1 by staying put."""
    game = EscapeRoom.create(n=3, m=2)
    designer = NoIncentive()
    state = init_state(game, designer, AGENTS, jax.random.key(0))
    state = state._replace(agents={"w": jnp.zeros_like(state.agents["w"]),
                                   "b": jnp.tile(jnp.array([0.0, 0.0, 5.0]), (3, 1))})  # fmt: skip
    ev = evaluate(game, designer, state)
    np.testing.assert_array_equal(np.asarray(ev["actions"])[0], [2, 2, 2])
    np.testing.assert_allclose(np.asarray(deviation_gains(game, designer, state)), [1.0] * 3)


def _run(ckpt, designer=DESIGNER, iterations=20, callback=None):
    return train(GAME, designer, AGENTS, iterations=iterations, key=jax.random.key(5), seeds=2,
                 eval_every=10, checkpoint_dir=ckpt, callback=callback, keep_state=True)  # fmt: skip


def test_resume_from_a_checkpoint_is_bitwise_equal_to_an_uninterrupted_run(tmp_path):
    full = _run(None)

    class Stop(Exception):
        pass

    def stop(step, metrics):
        if step == 10:
            raise Stop

    with pytest.raises(Stop):
        _run(tmp_path, callback=stop)
    resumed = _run(tmp_path)
    assert resumed.resumed_from == 10
    leaves = zip(
        jax.tree_util.tree_leaves(full.state), jax.tree_util.tree_leaves(resumed.state), strict=True
    )
    for a, b in leaves:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(full.eval_objective, resumed.eval_objective)
    np.testing.assert_array_equal(full.eval_paid, resumed.eval_paid)


def test_mismatched_and_corrupt_checkpoints_are_refused_naming_the_file(tmp_path):
    _run(tmp_path, iterations=10)
    with pytest.raises(ValueError, match=CHECKPOINT_NAME):
        _run(tmp_path, iterations=20)  # another configuration
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=CHECKPOINT_NAME):
        _run(tmp_path, iterations=10)


def test_a_nonfinite_designer_objective_is_a_status():
    @struct.dataclass
    class Broken(NoIncentive):
        def pay(self, dstate, features, actions, key, greedy):
            return jnp.full(actions.shape, jnp.nan), ()

    res = train(GAME, Broken(), AGENTS, iterations=20, key=jax.random.key(0), eval_every=10)
    assert res.status == "nonfinite"


def test_a_second_run_of_the_same_configuration_does_not_recompile():
    _run(None, iterations=20)
    before = train_chunk._cache_size()
    _run(None, MetaGrad.create(GAME, hidden=(8,), init_bias=-0.5), iterations=20)  # an equal one
    assert train_chunk._cache_size() == before


def test_bad_configuration_is_refused_naming_the_argument():
    with pytest.raises(ValueError, match="learning_rate"):
        AgentConfig(learning_rate=0.0)
    with pytest.raises(ValueError, match="batch"):
        AgentConfig(batch=1)
    with pytest.raises(ValueError, match="iterations"):
        train(GAME, NoIncentive(), AGENTS, iterations=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="key"):
        train(GAME, NoIncentive(), AGENTS, iterations=5, key=0)
    with pytest.raises(ValueError, match="levels"):
        DualRL.create(GAME, levels=(0.0, 3.0))
    with pytest.raises(ValueError, match="num_episodes"):
        sample_episodes(GAME, agent_logits, None, jax.random.key(0), 0)


def test_scaling_study_reuses_finished_cells_and_retrains_changed_ones(tmp_path, monkeypatch):
    import argparse

    from mfid.cli.design import escape_room as cli

    parser = argparse.ArgumentParser()
    cli.register_design(parser.add_subparsers())
    args = parser.parse_args(["escape-room", "--episodes", "64", "--eval-every", "2",
                              "--seeds", "2", "--entropy-decay", "0"])  # fmt: skip
    first = cli.scaling_study(args, ["none", "hand"], [3], [0.5], checkpoint_dir=tmp_path)
    assert [(r["n"], r["m"], r["method"]) for r in first["rows"]] == [(3, 2, "none"),
                                                                       (3, 2, "hand")]  # fmt: skip
    assert (tmp_path / "rho0.5_n3" / "hand.json").exists()

    def no_training(*a, **k):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(cli, "train_methods", no_training)
    again = cli.scaling_study(args, ["none", "hand"], [3], [0.5], checkpoint_dir=tmp_path)
    assert again["rows"] == first["rows"]
    args.bonus = 1.5  # another configuration: the stored cell no longer matches
    with pytest.raises(AssertionError, match="trained again"):
        cli.scaling_study(args, ["hand"], [3], [0.5], checkpoint_dir=tmp_path)
    assert all(r["seeds"] == 2 and r["episodes"] == 80 for r in first["rows"])
    args = parser.parse_args(["escape-room", "--episodes", "64", "--eval-every", "2",
                              "--seeds", "3", "--large-n", "50", "--large-episodes", "32",
                              "--large-seeds", "2"])  # fmt: skip
    assert cli._budget(args, 20) == (4, 3)
    assert cli._budget(args, 50) == (2, 2)
