"""Escape Room ER(n, m): reward table, termination, observations, the batched sampler,
and the designer optimum 10(n-m) - 2m by brute force over short horizons."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.stats import binom

from mfid.games.escape_room import (
    EscapeRoom,
    discounted_returns,
    episode_objective,
    sample_episodes,
    uniform_policy,
)

# -- an independent, plain-Python statement of the rules --------------------------------------


def ref_step(pos, act, m):
    """(new positions, rewards, door open, done) of one step, written from the game's rules."""
    door = sum(a == 0 for a in act) >= m
    rewards = []
    for x, a in zip(pos, act, strict=True):
        if door and a == 2:
            rewards.append(10.0)
        elif a == x:
            rewards.append(0.0)
        else:
            rewards.append(-1.0)
    new = tuple(act)
    return new, rewards, door, door and 2 in new


def ref_episode(plan, n, m):
    """Rewards per agent of an open-loop joint plan (a list of joint actions), stopping at
    termination; also the number of steps played."""
    pos, total, steps = (1,) * n, np.zeros(n), 0
    for act in plan:
        pos, r, _, done = ref_step(pos, act, m)
        total += r
        steps += 1
        if done:
            break
    return total, steps


def test_reference_cases_of_spec():
    game = EscapeRoom.create(n=5, m=2)
    x = game.reset()
    cases = [
        ((0, 0, 2, 2, 2), [-1, -1, 10, 10, 10], True, 28.0),
        ((0, 2, 2, 2, 2), [-1, -1, -1, -1, -1], False, -5.0),
        ((1, 1, 1, 1, 1), [0, 0, 0, 0, 0], False, 0.0),
    ]
    for act, rewards, done, welfare in cases:
        new, r, d, w = game.step(x, jnp.array(act))
        np.testing.assert_array_equal(np.asarray(r), rewards)
        assert bool(d) is done and float(w) == welfare
        np.testing.assert_array_equal(np.asarray(new), act)
    assert bool(game.door_open(jnp.array([0, 0, 2, 2, 2])))
    assert not bool(game.door_open(jnp.array([0, 2, 2, 2, 2])))


def test_reward_table_against_reference_for_every_position_action_and_door_state():
    game = EscapeRoom.create(n=4, m=2)
    rng = np.random.default_rng(0)
    for _ in range(300):
        pos = tuple(rng.integers(0, 3, 4))
        act = tuple(rng.integers(0, 3, 4))
        new, r, door, done = ref_step(pos, act, 2)
        got_new, got_r, got_done, got_w = game.step(jnp.array(pos), jnp.array(act))
        np.testing.assert_array_equal(np.asarray(got_r), r)
        assert bool(got_done) == done and float(got_w) == sum(r)
        np.testing.assert_array_equal(np.asarray(got_new), new)
    # the order of the rules: an agent *staying* at the door when it opens gets +10, not 0
    _, r, _, _ = game.step(jnp.array([0, 0, 2, 1]), jnp.array([0, 0, 2, 1]))
    np.testing.assert_array_equal(np.asarray(r), [0, 0, 10, 0])


def test_termination_needs_an_open_door_and_an_agent_arriving_at_it():
    game = EscapeRoom.create(n=3, m=2)
    x = game.reset()
    assert not bool(game.step(x, jnp.array([0, 0, 0]))[2])  # open, nobody at the door
    assert not bool(game.step(x, jnp.array([0, 2, 2]))[2])  # door goers, door closed
    assert bool(game.step(x, jnp.array([0, 0, 2]))[2])


def test_episodes_end_at_termination_or_after_five_steps():
    game = EscapeRoom.create(n=3, m=1)

    def pull_then_exit(params, obs):  # agent 0 pulls, the others walk to the door
        return jnp.array([[5.0, 0, 0], [0, 0, 5.0], [0, 0, 5.0]], obs.dtype)

    def everyone_stays(params, obs):
        return jnp.array([[0, 5.0, 0]] * 3, obs.dtype)

    ep = sample_episodes(game, pull_then_exit, None, jax.random.key(0), 4, greedy=True)
    np.testing.assert_array_equal(np.asarray(ep.alive), [[True, False, False, False, False]] * 4)
    np.testing.assert_array_equal(np.asarray(ep.rewards[:, 0]), [[-1, 10, 10]] * 4)
    assert np.all(np.asarray(ep.rewards[:, 1:]) == 0)
    ep = sample_episodes(game, everyone_stays, None, jax.random.key(0), 2, greedy=True)
    assert ep.alive.shape == (2, 5) and bool(jnp.all(ep.alive))


def test_observation_puts_own_position_first_then_the_others_in_index_order():
    game = EscapeRoom.create(n=4, m=1)
    pos = np.array([0, 1, 2, 1])
    obs = np.asarray(game.observe(jnp.array(pos)))
    assert obs.shape == (4, 12)
    eye = np.eye(3)
    for i in range(4):
        order = [i] + [j for j in range(4) if j != i]
        np.testing.assert_array_equal(obs[i], np.concatenate([eye[pos[j]] for j in order]))
    feats = np.asarray(game.features(jnp.array(pos), jnp.array([2, 2, 0, 1])))
    assert feats.shape == (24,) and feats.sum() == 8


@pytest.mark.parametrize(("n", "m"), [(5, 2), (100, 40)])
def test_uniform_policy_first_step_rewards_match_the_binomial_door_probability(n, m):
    """Exact mean of an agent's first-step reward under the uniform policy:
    E r = 10 P(a=2, open) - P(a != 1) + P(a=2, open), open ~ #lever among the others."""
    game = EscapeRoom.create(n=n, m=m)
    reps = 4000
    ep = sample_episodes(game, uniform_policy, None, jax.random.key(1), reps)
    r0 = np.asarray(ep.rewards[:, 0, :]).reshape(-1)
    p_open_given_door = 1 - binom.cdf(m - 1, n - 1, 1 / 3)  # the others supply >= m pulls
    exact = (10 + 1) * p_open_given_door / 3 - 2 / 3
    se = r0.reshape(reps, n).mean(1).std() / np.sqrt(reps)
    assert abs(r0.mean() - exact) < 4 * se
    p_open = 1 - binom.cdf(m - 1, n, 1 / 3)
    opened = np.asarray(game.door_open(ep.actions[:, 0]))
    assert abs(opened.mean() - p_open) < 4 * np.sqrt(p_open * (1 - p_open) / reps)


def test_sampler_is_reproducible_masks_finished_episodes_and_does_not_recompile():
    game = EscapeRoom.create(n=5, m=2)
    a = sample_episodes(game, uniform_policy, None, jax.random.key(3), 4000)  # compiled above
    b = sample_episodes(game, uniform_policy, None, jax.random.key(3), 4000)
    np.testing.assert_array_equal(np.asarray(a.actions), np.asarray(b.actions))
    alive = np.asarray(a.alive)
    assert np.all(alive[:, 0]) and np.all(alive[:, 1:] <= alive[:, :-1])
    dead = ~alive
    assert np.all(np.asarray(a.rewards)[dead] == 0) and np.all(np.asarray(a.welfare)[dead] == 0)
    np.testing.assert_allclose(np.asarray(episode_objective(a)), np.asarray(a.welfare).sum(1))
    from mfid.games.escape_room import _sample

    before = _sample._cache_size()
    sample_episodes(game, uniform_policy, None, jax.random.key(4), 4000)
    assert _sample._cache_size() == before


def test_discounted_returns_against_a_loop():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(3, 5, 2))
    alive = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    g = np.asarray(discounted_returns(jnp.asarray(r), jnp.asarray(alive), 0.9))
    for b in range(3):
        for t in range(5):
            want = sum(0.9 ** (s - t) * r[b, s] * alive[b, s] for s in range(t, 5))
            np.testing.assert_allclose(g[b, t], want * alive[b, t], atol=1e-12)


@pytest.mark.parametrize(
    ("n", "m", "msg"),
    [(5, 5, "m must"), (5, 6, "m must"), (5, 0, "m must"), (1, 1, "n must"),
     (5.0, 2, "n must"), (5, 2.5, "m must"), (True, 1, "n must")],
)  # fmt: skip
def test_bad_sizes_are_refused_naming_the_argument(n, m, msg):
    with pytest.raises(ValueError, match=msg):
        EscapeRoom.create(n=n, m=m)


# -- the designer optimum by brute force ------------------------------------------------------


def min_incentive(plan, n, m, cap=2.0):
    """Smallest total incentive that makes the open-loop joint ``plan`` a Nash equilibrium when
    the designer pays per (step, action) on the plan's path and nothing off it (an LP over the
    on-path payments ``I[t, k]`` in ``[0, cap]``). Returns ``(total paid, extrinsic welfare)``
    or ``(None, welfare)`` when no payment within the cap works."""
    horizon = len(plan)
    on_path, steps = ref_episode(plan, n, m)
    used = sorted({(t, plan[t][i]) for t in range(steps) for i in range(n)})
    index = {v: j for j, v in enumerate(used)}
    a_ub, b_ub = [], []
    for i in range(n):
        for dev in itertools.product(range(3), repeat=horizon):
            if list(dev) == [plan[t][i] for t in range(horizon)]:
                continue
            first = next(t for t in range(horizon) if dev[t] != plan[t][i])
            if first >= steps:
                continue  # deviating after the episode ended changes nothing
            joint = [list(a) for a in plan]
            for t in range(horizon):
                joint[t][i] = dev[t]
            dev_ret, _ = ref_episode([tuple(a) for a in joint], n, m)
            row = np.zeros(len(used))
            for t in range(first, steps):  # payments the deviator gives up
                row[index[(t, plan[t][i])]] -= 1.0
            a_ub.append(row)
            b_ub.append(on_path[i] - dev_ret[i])
    cost = np.zeros(len(used))
    for t in range(steps):
        for i in range(n):
            cost[index[(t, plan[t][i])]] += 1.0
    res = linprog(cost, A_ub=np.array(a_ub), b_ub=np.array(b_ub), bounds=[(0, cap)] * len(used))
    return (res.fun if res.status == 0 else None), on_path.sum()


def brute_force_optimum(n, m, horizon, symmetric=True):
    """Max over open-loop joint plans (agents exchangeable: one plan per multiset of per-agent
    plans) of welfare minus the least equilibrium incentive."""
    per_agent = list(itertools.product(range(3), repeat=horizon))
    combos = itertools.combinations_with_replacement(range(len(per_agent)), n)
    best = -np.inf
    for combo in combos:
        plans = [per_agent[c] for c in combo]
        plan = [tuple(p[t] for p in plans) for t in range(horizon)]
        paid, welfare = min_incentive(plan, n, m)
        if paid is not None:
            best = max(best, welfare - paid)
    return best


def test_optimum_26_for_er_5_2_by_brute_force_over_two_steps():
    game = EscapeRoom.create(n=5, m=2)
    assert game.optimum == 26.0 and game.max_welfare == 28.0
    assert brute_force_optimum(5, 2, horizon=1) == pytest.approx(26.0)
    assert brute_force_optimum(5, 2, horizon=2) == pytest.approx(26.0)


def test_optimum_40_for_er_10_5_by_brute_force_over_one_step_with_symmetry():
    game = EscapeRoom.create(n=10, m=5)
    assert game.optimum == 40.0 and game.max_welfare == 45.0
    assert brute_force_optimum(10, 5, horizon=1) == pytest.approx(40.0)


def test_largest_welfare_by_brute_force():
    best = max(
        ref_episode(list(zip(*plans, strict=True)), 5, 2)[0].sum()
        for plans in itertools.product(itertools.product(range(3), repeat=2), repeat=5)
    )
    assert best == 28.0


# -- the mean-field room ----------------------------------------------------------------------


def test_mean_field_room_rewards_kernel_and_door_against_a_hand_computation():
    from scipy.stats import norm as normal

    from mfid.games.escape_room_mf import OUT, EscapeRoomMeanField, hand_incentive

    mf = EscapeRoomMeanField.create(rho=0.4, kappa=0.05)
    L = jnp.zeros((4, 3)).at[1].set(jnp.array([0.3, 0.2, 0.3])).at[OUT, 0].set(0.2)
    theta = hand_incentive(0.1)
    p = normal.cdf((0.3 / 0.8 - 0.4) / 0.05)  # lever fraction among the agents still inside
    assert float(mf.door_probability(L)) == pytest.approx(p, rel=1e-12)
    dyn = mf.pmfg.dynamics(0, L, theta)
    R, P = np.asarray(dyn.reward), np.asarray(dyn.kernel.P)
    assert R[1, 0] == pytest.approx(-1 + 1.1 * p)  # lever: move cost, paid when it opens
    assert R[1, 1] == pytest.approx(0.0)  # stay at the start
    assert R[1, 2] == pytest.approx(10 * p - (1 - p))  # door: +10 if open, else a failed move
    assert R[2, 2] == pytest.approx(10 * p)  # already at the door: staying is free
    assert np.all(R[OUT] == 0)
    np.testing.assert_allclose(P.sum(-1), 1.0)
    assert P[1, 2, 2] == pytest.approx(1 - p) and P[1, 2, OUT] == pytest.approx(p)
    assert P[OUT, 0, OUT] == 1.0


def test_finite_room_sampler_follows_the_game_rules_and_the_binomial_door():
    from mfid.games.escape_room_mf import hand_incentive, pivotal_probability, sample_finite_room

    game = EscapeRoom.create(n=5, m=2)
    theta = hand_incentive(0.1)
    stay = np.zeros((5, 4, 3))
    stay[:, [0, 1, 2], [0, 1, 2]] = 1.0  # stay where you are (at the lever: keep pulling)
    # everyone walks to the door and nobody pulls: one failed move each; staying put saves it
    walk = np.zeros((5, 4, 3))
    walk[:, :, 2] = 1.0
    smp = sample_finite_room(game, walk, theta, jax.random.key(1), 8, deviator=stay)
    np.testing.assert_allclose(np.asarray(smp.objective), -1.0)  # -5 / 5 per capita
    np.testing.assert_allclose(np.asarray(smp.deviation_gain), 1.0)
    # uniform first step, then everyone stays: only step 0 can open the door
    policy = stay.copy()
    policy[0] = 1 / 3
    reps = 4000
    smp = sample_finite_room(game, policy, theta, jax.random.key(2), reps)
    p_open = 1 - binom.cdf(1, 5, 1 / 3)
    opened = np.asarray(smp.opened)
    assert abs(opened.mean() - p_open) < 4 * np.sqrt(p_open * (1 - p_open) / reps)
    exact = 0.0  # enumerate the first joint action; afterwards everyone repeats it (stays)
    for act in itertools.product(range(3), repeat=5):
        pos, total = (1,) * 5, 0.0
        for _ in range(5):
            pos, r, door, done = ref_step(pos, act, 2)
            total += sum(r) - (1.1 * act.count(0) if door else 0.0)
            if done:
                break
        exact += total / 5 / 3**5
    obj = np.asarray(smp.objective)
    assert abs(obj.mean() - exact) < 4 * obj.std() / np.sqrt(reps)
    assert pivotal_probability(5, 2, 1 / 3) == pytest.approx(binom.pmf(1, 4, 1 / 3))
