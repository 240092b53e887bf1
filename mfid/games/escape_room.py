"""Escape Room ER(n, m) (Yang et al., "Learning to incentivize other learning agents",
NeurIPS 2020) and the batched episode sampler of finite-agent games.

``n`` agents, threshold ``1 <= m < n``. Positions: 0 = lever, 1 = start, 2 = door; every agent
starts at 1. An action is the position to move to (3 actions, deterministic moves). In a step with
joint action ``a`` and positions ``x``::

    door open      <=>  #{i : a_i = 0} >= m                 (the lever choices of *this* step)
    r_i(x, a)       =  +10  if door open and a_i = 2
                        0   elif a_i = x_i                   (staying is free)
                       -1   otherwise                        (any move, incl. a failed exit)
    x'              =  a
    done            <=>  door open and some x'_i = 2,   or after ``horizon`` = 5 steps

Observation of agent ``i``: the one-hot positions of all agents, its own first and then the
others in index order (``3n`` numbers). The designer's input (:meth:`EscapeRoom.features`) is the
global state and the joint action, both one-hot in agent order (``6n`` numbers). The designer's
objective per episode is the welfare (sum of extrinsic rewards) minus the incentives paid; its
known optimum is ``10(n-m) - 2m`` (m agents pull the lever for an incentive of ``1 + eps``, the
others walk out; :attr:`EscapeRoom.optimum`) and the largest welfare is ``10(n-m) - m``.

**Finite-agent games.** The sampler :func:`sample_episodes` runs any *finite-agent game*: a
frozen pytree with static ``num_agents``, ``num_actions``, ``horizon``, ``obs_dim``,
``feature_dim`` and four pure functions::

    reset(key)                          -> state                      (any pytree)
    observe(state)                      -> obs (n, obs_dim)            (agent i's row is its view)
    features(state, actions)            -> (feature_dim,)             (the designer's input)
    step(state, actions, incentive, key)-> (state', rewards (n,), done (), welfare ())

``rewards`` are the extrinsic rewards, ``welfare`` the designer's extrinsic reward of the step
(here the sum of the rewards) and ``incentive (n,)`` what the designer pays each agent in that
step (Escape Room ignores it in its dynamics; a tax economy may fold it into the agents' coin).
Episodes are ``vmap``ped, steps ``lax.scan``ned; an episode that has ended keeps stepping with
``alive = False`` and every recorded reward and incentive masked to zero.

Example::

    import jax
    from mfid.games.escape_room import EscapeRoom, sample_episodes, uniform_policy
    game = EscapeRoom.create(n=5, m=2)
    ep = sample_episodes(game, uniform_policy, None, jax.random.key(0), num_episodes=1000)
    ep.welfare.sum(1).mean(), ep.alive.sum(1).mean()    # mean welfare, mean episode length
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from mfid.checks import check_count

__all__ = [
    "DOOR",
    "EXIT_REWARD",
    "EscapeRoom",
    "Episodes",
    "LEVER",
    "START",
    "discounted_returns",
    "episode_objective",
    "greedy_actions",
    "sample_episodes",
    "uniform_policy",
]

LEVER, START, DOOR = 0, 1, 2
EXIT_REWARD, MOVE_COST = 10.0, -1.0


@struct.dataclass
class EscapeRoom:
    """ER(n, m): ``n`` agents, door threshold ``m``, ``horizon`` steps (5 in the published game).

    Build it with :meth:`create`, which checks ``1 <= m < n`` (integers) and ``horizon >= 1``.
    """

    n: int = struct.field(pytree_node=False)
    m: int = struct.field(pytree_node=False)
    horizon: int = struct.field(pytree_node=False, default=5)

    num_actions = 3

    @classmethod
    def create(cls, n: int, m: int, horizon: int = 5) -> EscapeRoom:
        n = check_count(n, "n", minimum=2)
        m = check_count(m, "m", minimum=1)
        if m >= n:
            raise ValueError(f"m must be an integer with 1 <= m < n = {n}, got {m!r}")
        return cls(n, m, check_count(horizon, "horizon"))

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def num_agents(self) -> int:
        return self.n

    @property
    def obs_dim(self) -> int:
        return 3 * self.n

    @property
    def feature_dim(self) -> int:
        return 6 * self.n

    @property
    def optimum(self) -> float:
        """Supremum of the designer objective, ``10(n - m) - 2m``."""
        return EXIT_REWARD * (self.n - self.m) - 2.0 * self.m

    @property
    def max_welfare(self) -> float:
        """Largest sum of extrinsic rewards of an episode, ``10(n - m) - m``."""
        return EXIT_REWARD * (self.n - self.m) - 1.0 * self.m

    # -- the game as pure functions -------------------------------------------------------------
    def reset(self, key=None):
        """Every agent at the start (``key`` unused: the start is deterministic)."""
        return jnp.full((self.n,), START, jnp.int32)

    def observe(self, positions):
        """``(n, 3n)``: row ``i`` is ``onehot(x_i), onehot(x_j) for j != i`` in index order."""
        onehot = jax.nn.one_hot(positions, 3, dtype=jnp.result_type(float))
        return onehot[_observation_order(self.n)].reshape(self.n, 3 * self.n)

    def features(self, positions, actions):
        """The designer's input ``(6n,)``: one-hot positions then one-hot actions, agent order."""
        dtype = jnp.result_type(float)
        x = jax.nn.one_hot(positions, 3, dtype=dtype).reshape(-1)
        a = jax.nn.one_hot(actions, 3, dtype=dtype).reshape(-1)
        return jnp.concatenate([x, a])

    def door_open(self, actions):
        """``#{i : a_i = 0} >= m`` (works on any leading batch axes)."""
        return jnp.sum(actions == LEVER, axis=-1) >= self.m

    def rewards(self, positions, actions):
        """Extrinsic rewards ``(n,)`` (module docstring's table), in the order +10 / 0 / -1."""
        door = self.door_open(actions)[..., None]
        dtype = jnp.result_type(float)
        r = jnp.where(actions == positions, 0.0, MOVE_COST)
        return jnp.where(door & (actions == DOOR), EXIT_REWARD, r).astype(dtype)

    def step(self, positions, actions, incentive=None, key=None):
        """``(positions', rewards (n,), done, welfare)``; the incentive does not move anyone."""
        r = self.rewards(positions, actions)
        new = actions.astype(jnp.int32)
        done = self.door_open(actions) & jnp.any(new == DOOR)
        return new, r, done, jnp.sum(r)


def _observation_order(n: int) -> np.ndarray:
    """``order[i] = [i, 0, .., i-1, i+1, .., n-1]``: agent i's view lists itself first."""
    idx = np.arange(n)
    others = np.stack([np.delete(idx, i) for i in range(n)])
    return np.concatenate([idx[:, None], others], axis=1)


class Episodes(NamedTuple):
    """A batch of ``B`` episodes of ``T = horizon`` steps of an ``n``-agent game.

    ``state``: the state *before* each step (leaves ``(B, T, ...)``); ``actions (B, T, n)``;
    ``rewards (B, T, n)`` extrinsic; ``incentive (B, T, n)`` paid by the designer;
    ``welfare (B, T)`` the designer's extrinsic reward; ``alive (B, T)`` whether step ``t`` was
    played (the episode had not ended before it); ``designer_action`` whatever the incentive
    function reported per step (e.g. a dual-RL designer's sampled action), leaves ``(B, T, ...)``.
    Rewards, incentives and welfare are zero where ``alive`` is False.
    """

    state: Any
    actions: jnp.ndarray
    rewards: jnp.ndarray
    incentive: jnp.ndarray
    welfare: jnp.ndarray
    alive: jnp.ndarray
    designer_action: Any


def uniform_policy(params, obs):
    """Logits ``(n, 3)`` of the uniform policy (``params`` unused)."""
    return jnp.zeros(obs.shape[:-1] + (3,), obs.dtype)


def greedy_actions(logits):
    """``argmax`` over the last axis (the first maximiser on ties)."""
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def _no_incentive(params, features, actions, key, greedy):
    return jnp.zeros(actions.shape, jnp.result_type(float)), ()


def _episode(game, policy_fn, policy_params, incentive_fn, incentive_params, greedy, forced, key):
    key, k0 = jax.random.split(key)
    state0 = game.reset(k0)

    def body(carry, xs):
        state, alive = carry
        key_t, forced_t = xs
        k_act, k_inc, k_env = jax.random.split(key_t, 3)
        logits = policy_fn(policy_params, game.observe(state))
        if greedy:
            actions = greedy_actions(logits)
        else:
            actions = jax.random.categorical(k_act, logits, axis=-1).astype(jnp.int32)
        actions = jnp.where(forced_t >= 0, forced_t, actions).astype(jnp.int32)
        feats = game.features(state, actions)
        paid, d_action = incentive_fn(incentive_params, feats, actions, k_inc, greedy)
        new, r, done, welfare = game.step(state, actions, paid, k_env)
        mask = alive.astype(r.dtype)
        out = (state, actions, r * mask, paid * mask, welfare * mask, alive, d_action)
        new = jax.tree_util.tree_map(lambda a, b: jnp.where(alive, a, b), new, state)
        return (new, alive & ~done), out

    keys = jax.random.split(key, game.horizon)
    _, out = lax.scan(body, (state0, jnp.asarray(True)), (keys, forced))
    return Episodes(*out)


@partial(jax.jit, static_argnames=("policy_fn", "incentive_fn", "num_episodes", "greedy"))
def _sample(game, policy_fn, policy_params, key, num_episodes, incentive_fn, incentive_params,
            greedy, forced):  # fmt: skip
    run = partial(_episode, game, policy_fn, policy_params, incentive_fn, incentive_params, greedy,
                  forced)  # fmt: skip
    return jax.vmap(run)(jax.random.split(key, num_episodes))


def sample_episodes(
    game,
    policy_fn: Callable,
    policy_params,
    key,
    num_episodes: int,
    incentive_fn: Callable | None = None,
    incentive_params=None,
    greedy: bool = False,
    forced=None,
) -> Episodes:
    """``num_episodes`` episodes of a finite-agent game (jitted; episodes vmapped, steps scanned).

    ``policy_fn(policy_params, obs (n, obs_dim)) -> logits (n, A)``: the agents act
    ``a_i ~ softmax(logits_i)`` (``greedy=True``: ``argmax``). ``incentive_fn(incentive_params,
    features, actions, key, greedy) -> (paid (n,), designer_action)``: what the designer pays each
    agent for the joint action it sees (``None``: nothing). Both functions must be hashable
    (module-level functions or ``functools.partial`` of them); their parameters are pytrees.
    One key per episode is split from ``key``; the same key gives the same episodes.
    ``forced (T, n)`` (integers, ``-1`` = the agent's own choice) overrides actions: a deviating
    agent's open-loop plan, for instance.

    Inside another jitted function (a training iteration) this call is traced inline.
    """
    num_episodes = check_count(num_episodes, "num_episodes")
    if isinstance(key, int):
        raise ValueError("key must be a jax.random key, not an int seed")
    if incentive_fn is None:
        incentive_fn = _no_incentive
    if forced is None:
        forced = jnp.full((game.horizon, game.num_agents), -1, jnp.int32)
    return _sample(game, policy_fn, policy_params, key, num_episodes, incentive_fn,
                   incentive_params, bool(greedy), jnp.asarray(forced, jnp.int32))  # fmt: skip


def discounted_returns(rewards, alive, discount):
    """Reward-to-go ``G_t = sum_{t' >= t} discount^(t'-t) r_t'`` over axis 1 (time) of
    ``rewards (B, T, ...)``, zero where ``alive (B, T)`` is False."""

    def back(g, x):
        r, a = x
        g = r + discount * g
        return g, g

    mask = alive.reshape(alive.shape + (1,) * (rewards.ndim - alive.ndim)).astype(rewards.dtype)
    xs = (jnp.moveaxis(rewards * mask, 1, 0), jnp.moveaxis(mask, 1, 0))
    _, g = lax.scan(back, jnp.zeros_like(xs[0][0]), xs, reverse=True)
    return jnp.moveaxis(g, 0, 1) * mask


def episode_objective(episodes: Episodes):
    """The designer objective of each episode ``(B,)``: welfare minus incentives paid."""
    return episodes.welfare.sum(1) - episodes.incentive.sum((1, 2))
