"""One training loop for incentive designers of finite-agent games (Escape Room,
mini-GTB).

``n`` independent policy-gradient agents (:mod:`solvers.pg_agents`) play a finite-agent game
(the protocol of :mod:`mfid.games.escape_room`: ``reset / observe / features / step`` as pure
functions) while a *designer* pays each agent an incentive for the action it took, as a function
of the global state and the joint action. Every designer is a frozen pytree dataclass with three
pure methods, which is all the loop knows about it::

    init(game, agents, key)                        -> designer state (params, optimiser states)
    pay(dstate, features, actions, key, greedy)    -> (paid (n,), designer_action)
    iterate(game, agents, state, key)              -> (agents', dstate', episodes', metrics)

``iterate`` is one training iteration on ``agents.batch`` new episodes: the agents' learning step
and the designer's own update (MetaGrad differentiates through the former; dual-RL learns beside
it; the fixed designers do not learn). :class:`TrainState` carries the agents' parameters, the
designer state, the last batch of episodes (MetaGrad's pipelined validation trajectory), the
PRNG key data and the iteration counter.

:func:`train` runs ``iterations`` iterations for ``seeds`` independent seeds at once
(``jax.vmap`` over seeds) in chunks of ``eval_every`` iterations (one jitted ``lax.scan`` per
chunk, compiled once). After every chunk it evaluates every seed's agents and designer on one
*greedy* episode (agents ``argmax``, designer at its mode; the game is deterministic, so one
episode is exact), records the designer objective (welfare minus incentives paid) and the
incentives paid per action, calls ``callback(step, metrics)`` and writes a checkpoint. A
checkpoint (``checkpoint_dir/finite_design.npz``: the state, the trace and a fingerprint of the
whole configuration, written to a temporary file then ``os.replace``d) lets a later call with the
same arguments resume; the resumed run is bitwise equal to an uninterrupted one. A checkpoint of
another configuration, or one that cannot be read, is refused with a ``ValueError`` naming it.

Fixed designers (this module): :class:`NoIncentive` (the floor) and :class:`HandIncentive`
(Escape Room's reference: ``1 + eps`` for the lever when at least ``m`` agents pull it).
Learning designers: :class:`solvers.metagrad.MetaGrad`, :class:`solvers.dual_rl.DualRL`.

Example::

    import jax
    from mfid.games.escape_room import EscapeRoom
    from solvers.finite_design import HandIncentive, train
    from solvers.pg_agents import AgentConfig
    game = EscapeRoom.create(n=5, m=2)
    res = train(game, HandIncentive(threshold=2, bonus=1.5), AgentConfig(), iterations=500,
                key=jax.random.key(0), seeds=4)
    res.final_objective                     # greedy designer objective per seed
"""

from __future__ import annotations

import abc
import dataclasses
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct
from jax import lax

from mfid.checks import check_count
from mfid.games.escape_room import (
    LEVER,
    Episodes,
    discounted_returns,
    episode_objective,
    sample_episodes,
)
from mfid.tree import all_finite
from solvers.checkpoint import fingerprint, load_checkpoint, save_checkpoint
from solvers.pg_agents import AgentConfig, agent_logits, init_agents, pg_step

__all__ = [
    "CHECKPOINT_NAME",
    "Designer",
    "HandIncentive",
    "MLP",
    "NoIncentive",
    "TrainResult",
    "TrainState",
    "batch_metrics",
    "deviation_gains",
    "evaluate",
    "incentivised_pg_step",
    "init_mlp",
    "init_state",
    "seed_state",
    "train",
    "train_chunk",
]

CHECKPOINT_NAME = "finite_design.npz"


# -- designers --------------------------------------------------------------------------------
class Designer(abc.ABC):
    """Interface of a designer (see the module docstring). Subclasses are ``struct.dataclass``
    es whose fields are static hyperparameters, so that they are hashable jit arguments."""

    name = "designer"

    @abc.abstractmethod
    def init(self, game, agents: AgentConfig, key):
        """The designer's state (a pytree; ``()`` for fixed designers)."""

    @abc.abstractmethod
    def pay(self, dstate, features, actions, key, greedy):
        """``(paid (n,), designer_action)`` for one step of one episode."""

    def iterate(self, game, agents: AgentConfig, state: TrainState, key):
        """Default iteration of a designer that does not learn: one policy-gradient step of the
        agents on the last batch (sampled with their current parameters), then a new batch with
        the updated agents."""
        theta = incentivised_pg_step(game, agents, state.agents, state.episodes,
                                     step=state.iteration)  # fmt: skip
        episodes = sample_episodes(
            game, agent_logits, theta, key, agents.batch, self.pay, state.designer
        )
        return theta, state.designer, episodes, batch_metrics(episodes, game.num_actions)


@struct.dataclass
class NoIncentive(Designer):
    """Pays nothing: the agents learn on their extrinsic rewards alone."""

    name = "none"

    def init(self, game, agents, key):
        return ()

    def pay(self, dstate, features, actions, key, greedy):
        return jnp.zeros(actions.shape, jnp.result_type(float)), ()


@struct.dataclass
class HandIncentive(Designer):
    """Escape Room's hand-coded incentive: ``bonus = 1 + eps`` for the lever (action 0) when at
    least ``threshold`` agents pull it in that step, nothing otherwise."""

    threshold: int = struct.field(pytree_node=False, default=2)
    bonus: float = 1.1  # a pytree leaf: runs with other bonuses reuse the compiled loop
    name = "hand"

    def init(self, game, agents, key):
        return ()

    def pay(self, dstate, features, actions, key, greedy):
        lever = actions == LEVER
        opened = jnp.sum(lever) >= self.threshold
        return jnp.where(lever & opened, self.bonus, 0.0).astype(jnp.result_type(float)), ()


# -- small networks shared by the learning designers ------------------------------------------
class MLP(nnx.Module):
    """``din -> hidden... -> dout``, ReLU between layers; the output bias starts at
    ``out_bias`` and the output kernel is scaled by ``out_scale``."""

    def __init__(self, din, hidden, dout, rngs, out_bias=0.0, out_scale=1.0):
        dims = (din, *hidden)
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:], strict=True)]
        )
        kernel = nnx.initializers.variance_scaling(out_scale**2, "fan_in", "truncated_normal")
        self.out = nnx.Linear(dims[-1], dout, rngs=rngs, kernel_init=kernel,
                              bias_init=nnx.initializers.constant(out_bias))  # fmt: skip

    def __call__(self, x):
        for layer in self.layers:
            x = jax.nn.relu(layer(x))
        return self.out(x)


def init_mlp(key, din: int, hidden: tuple, dout: int, out_bias=0.0, out_scale=1.0):
    """``(graphdef, params)`` of an :class:`MLP`; ``params`` is a pure dict in the default float
    dtype, ``graphdef`` static (``nnx.merge(graphdef, params)(x)`` applies it). ``key`` may be
    traced (so the initialisation can be ``vmap``ped over seeds)."""
    net = MLP(din, tuple(hidden), dout, nnx.Rngs(params=key), out_bias, out_scale)
    graphdef, params = nnx.split(net)
    dtype = jnp.result_type(float)
    return graphdef, jax.tree_util.tree_map(
        lambda x: jnp.asarray(x, dtype), nnx.to_pure_dict(params)
    )


def mlp_graphdef(din: int, hidden: tuple, dout: int):
    """The static structure of an :class:`MLP` (no parameters are kept)."""
    return init_mlp(jax.random.key(0), din, hidden, dout)[0]


# -- the iteration pieces ---------------------------------------------------------------------
def incentivised_pg_step(game, agents: AgentConfig, theta, episodes: Episodes, paid=None,
                         step=0):  # fmt: skip
    """The agents' policy-gradient step (update number ``step``) on their returns of extrinsic
    reward plus ``paid`` (``(B, T, n)``; default: the incentives recorded in ``episodes``)."""
    paid = episodes.incentive if paid is None else paid
    returns = discounted_returns(episodes.rewards + paid, episodes.alive, agents.discount)
    return pg_step(game, agents, theta, episodes, returns, step)


def batch_metrics(episodes: Episodes, num_actions: int) -> dict:
    """Per-episode means over a batch: designer ``objective``, ``welfare``, ``paid``,
    ``paid_by_action (A,)`` and episode ``length``."""
    onehot = jax.nn.one_hot(episodes.actions, num_actions, dtype=episodes.incentive.dtype)
    by_action = jnp.einsum("btn,btna->a", episodes.incentive, onehot) / episodes.actions.shape[0]
    return {
        "objective": jnp.mean(episode_objective(episodes)),
        "welfare": jnp.mean(episodes.welfare.sum(1)),
        "paid": jnp.mean(episodes.incentive.sum((1, 2))),
        "paid_by_action": by_action,
        "length": jnp.mean(episodes.alive.sum(1).astype(episodes.welfare.dtype)),
    }


class TrainState(NamedTuple):
    """Loop state of one seed (a leading seed axis when vmapped)."""

    agents: Any
    designer: Any
    episodes: Episodes
    key: jnp.ndarray  # raw uint32 key data
    iteration: jnp.ndarray


def init_state(game, designer: Designer, agents: AgentConfig, key) -> TrainState:
    """Initial agents (``init_scale`` weights), designer state and a first batch of episodes."""
    k_agents, k_designer, k_episodes, k_loop = jax.random.split(key, 4)
    theta = init_agents(game, agents, k_agents)
    dstate = designer.init(game, agents, k_designer)
    episodes = sample_episodes(
        game, agent_logits, theta, k_episodes, agents.batch, designer.pay, dstate
    )
    return TrainState(theta, dstate, episodes, jax.random.key_data(k_loop), jnp.asarray(0))


def _iterate(game, designer, agents, state: TrainState):
    key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    theta, dstate, episodes, metrics = designer.iterate(game, agents, state, sub)
    new = TrainState(theta, dstate, episodes, jax.random.key_data(key), state.iteration + 1)
    return new, metrics


@partial(jax.jit, static_argnames=("length",))
def train_chunk(game, designer, agents, state, length: int):
    """``length`` iterations of every seed of a vmapped :class:`TrainState` (one jitted
    ``lax.scan``); returns the new state and the metrics averaged over the chunk."""

    def one_seed(st):
        return lax.scan(lambda s, _: _iterate(game, designer, agents, s), st, None, length=length)

    state, metrics = jax.vmap(one_seed)(state)
    return state, jax.tree_util.tree_map(lambda x: jnp.mean(x, axis=1), metrics)


@jax.jit
def _init_states(game, designer, agents, keys):
    return jax.vmap(lambda k: init_state(game, designer, agents, k))(keys)


def evaluate(game, designer: Designer, state: TrainState) -> dict:
    """One greedy episode of one seed: ``objective``, ``welfare``, ``paid_by_action (A,)``,
    ``actions (T, n)``, ``alive (T,)``, ``incentive (T, n)``."""
    key = jax.random.wrap_key_data(state.key)
    ep = sample_episodes(
        game, agent_logits, state.agents, key, 1, designer.pay, state.designer, greedy=True
    )
    m = batch_metrics(ep, game.num_actions)
    return {
        "objective": m["objective"],
        "welfare": m["welfare"],
        "paid_by_action": m["paid_by_action"],
        "actions": ep.actions[0],
        "alive": ep.alive[0],
        "incentive": ep.incentive[0],
        "finite": all_finite(state.agents, state.designer),
    }


@jax.jit
def _evaluate_seeds(game, designer, state):
    return jax.vmap(lambda s: evaluate(game, designer, s))(state)


MAX_PLANS = 4096


def deviation_gains(game, designer: Designer, state: TrainState):
    """Best-response gain ``(n,)`` of every agent against the greedy play of one seed.

    The others play their greedy policies and the designer its greedy incentive; agent ``i``
    may play any open-loop plan of ``A^T`` actions (everything else being deterministic, the
    best plan is a best response). ``gain_i = max_plan R_i(plan) - R_i(greedy)`` with ``R_i`` its
    incentivised return. All gains 0: the greedy play is a Nash equilibrium of the incentivised
    game. ``ValueError`` when ``A^T`` exceeds ``MAX_PLANS``."""
    A, T = game.num_actions, game.horizon
    if A**T > MAX_PLANS:
        raise ValueError(f"{A}^{T} open-loop plans exceed MAX_PLANS = {MAX_PLANS}")
    return _deviation_gains(game, designer, state)


@jax.jit
def _deviation_gains(game, designer, state):
    n, A, T = game.num_agents, game.num_actions, game.horizon
    grid = jnp.meshgrid(*[jnp.arange(A, dtype=jnp.int32)] * T, indexing="ij")
    plans = jnp.stack(grid, -1).reshape(-1, T)
    key = jax.random.wrap_key_data(state.key)

    def ret(forced):
        ep = sample_episodes(game, agent_logits, state.agents, key, 1, designer.pay,
                             state.designer, greedy=True, forced=forced)  # fmt: skip
        return (ep.rewards + ep.incentive)[0].sum(0)  # (n,)

    base = ret(jnp.full((T, n), -1, jnp.int32))

    def best(i):
        forced = jnp.full((plans.shape[0], T, n), -1, jnp.int32).at[:, :, i].set(plans)
        return jnp.max(jax.lax.map(ret, forced)[:, i])

    return jax.vmap(best)(jnp.arange(n)) - base


def seed_state(state: TrainState, k: int) -> TrainState:
    """Seed ``k`` of a vmapped :class:`TrainState`."""
    return jax.tree_util.tree_map(lambda x: x[k], state)


# -- results, checkpoints and the loop --------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train` (numpy arrays; ``K`` seeds, ``C`` chunks).

    ``eval_iterations (C+1,)`` and ``eval_episodes (C+1,)``: training iterations / episodes per
    seed at each greedy evaluation (the first before training). ``eval_objective (C+1, K)``,
    ``eval_welfare (C+1, K)``, ``eval_paid (C+1, K, A)``: greedy designer objective, welfare and
    incentives paid per action. ``sample_objective (C, K)``: mean designer objective of the
    training episodes of each chunk. ``final_*``: the last greedy episode (``actions (K, T, n)``,
    ``alive (K, T)``, ``incentive (K, T, n)``). ``status``: ``"ok"`` or ``"nonfinite"`` (a
    non-finite parameter or objective; the run stops at the first such chunk).
    """

    method: str
    iterations: int
    batch: int
    seeds: int
    eval_iterations: np.ndarray
    eval_episodes: np.ndarray
    eval_objective: np.ndarray
    eval_welfare: np.ndarray
    eval_paid: np.ndarray
    sample_objective: np.ndarray
    final_objective: np.ndarray
    final_actions: np.ndarray
    final_alive: np.ndarray
    final_incentive: np.ndarray
    status: str
    seconds: float
    resumed_from: int
    state: Any = None

    @property
    def episodes(self) -> int:
        """Training episodes per seed (the initial batch included)."""
        return int(self.eval_episodes[-1])


def _describe(obj) -> dict:
    """JSON-able description of a dataclass configuration (the static network structure
    ``graphdef`` is implied by the other fields and left out)."""
    out = {"type": type(obj).__name__}
    for f in dataclasses.fields(obj):
        if f.name != "graphdef":
            v = getattr(obj, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


_TRACE = ("eval_objective", "eval_welfare", "eval_paid", "sample_objective")


def _key_data(key):
    if isinstance(key, (int, np.integer)) or key is None:
        raise ValueError("key must be a jax.random key (e.g. jax.random.key(0)), got an int/None")
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    if key.dtype == jnp.uint32 and key.shape == (2,):
        return key
    raise ValueError(f"key must be a jax.random key, got {key!r}")


def train(
    game,
    designer: Designer,
    agents: AgentConfig,
    *,
    iterations: int,
    key,
    seeds: int = 1,
    eval_every: int = 50,
    callback: Callable[[int, dict], None] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    keep_state: bool = False,
) -> TrainResult:
    """Train ``seeds`` independent runs of ``designer`` with ``agents`` on ``game``.

    ``iterations`` training iterations of ``agents.batch`` episodes each (per seed); greedy
    evaluation, ``callback(step, metrics)`` and a checkpoint every ``eval_every`` iterations
    (``metrics``: ``objective`` / ``objective_std`` over seeds of the greedy designer objective,
    ``sampled`` the mean objective of the chunk's training episodes, ``paid`` the greedy
    incentives, ``episodes`` per seed so far). Seed ``k`` starts from ``jax.random.split(key,
    seeds)[k]``. ``keep_state=True`` puts the final :class:`TrainState` (seed axis first) in the
    result. See the module docstring for checkpoints and resume.
    """
    iterations = check_count(iterations, "iterations")
    seeds = check_count(seeds, "seeds")
    eval_every = check_count(eval_every, "eval_every")
    if not isinstance(designer, Designer):
        raise ValueError(f"designer must be a Designer, got {type(designer).__name__}")
    if not isinstance(agents, AgentConfig):
        raise ValueError(f"agents must be an AgentConfig, got {type(agents).__name__}")
    key_data = _key_data(key)
    t0 = time.perf_counter()
    keys = jax.random.split(jax.random.wrap_key_data(key_data), seeds)
    state = _init_states(game, designer, agents, keys)
    sizes = [eval_every] * (iterations // eval_every)
    if iterations % eval_every:
        sizes.append(iterations % eval_every)
    trace = {k: [] for k in _TRACE}
    done_chunks = 0
    path = None
    if checkpoint_dir is not None:
        os.makedirs(checkpoint_dir, exist_ok=True)
        path = os.path.join(os.fspath(checkpoint_dir), CHECKPOINT_NAME)
        config = {
            "game": _describe(game),
            "designer": _describe(designer),
            "agents": _describe(agents),
            "iterations": iterations,
            "eval_every": eval_every,
            "seeds": seeds,
        }
        fp = fingerprint(config, key_data, state)
        if os.path.exists(path):
            state, done_chunks, stored = load_checkpoint(path, state, fp)
            trace = {k: [np.asarray(v) for v in stored.get(k, [])] for k in _TRACE}
    resumed_from = int(sum(sizes[:done_chunks]))

    def record_eval(ev):
        trace["eval_objective"].append(np.asarray(ev["objective"]))
        trace["eval_welfare"].append(np.asarray(ev["welfare"]))
        trace["eval_paid"].append(np.asarray(ev["paid_by_action"]))

    ev = _evaluate_seeds(game, designer, state)
    if done_chunks == 0:
        trace = {k: [] for k in _TRACE}
        record_eval(ev)
    status = "ok"
    for c in range(done_chunks, len(sizes)):
        state, metrics = train_chunk(game, designer, agents, state, sizes[c])
        ev = _evaluate_seeds(game, designer, state)
        record_eval(ev)
        trace["sample_objective"].append(np.asarray(metrics["objective"]))
        finite = bool(np.all(ev["finite"])) and bool(np.all(np.isfinite(ev["objective"])))
        step = int(sum(sizes[: c + 1]))
        if path is not None:
            save_checkpoint(path, state, step=c + 1, fingerprint=fp,
                            trace={k: np.asarray(v) for k, v in trace.items()})  # fmt: skip
        if callback is not None:
            obj = np.asarray(ev["objective"])
            callback(
                step,
                {
                    "objective": float(np.mean(obj)),
                    "objective_std": float(np.std(obj)),
                    "sampled": float(np.mean(metrics["objective"])),
                    "paid": float(np.mean(np.sum(ev["paid_by_action"], -1))),
                    "episodes": (step + 1) * agents.batch,
                },
            )
        if not finite:
            status = "nonfinite"
            sizes = sizes[: c + 1]
            break
    if not np.all(np.isfinite(np.asarray(ev["objective"]))):
        status = "nonfinite"
    its = np.concatenate([[0], np.cumsum(sizes)]).astype(int)[: len(trace["eval_objective"])]
    return TrainResult(
        method=designer.name,
        iterations=int(its[-1]),
        batch=agents.batch,
        seeds=seeds,
        eval_iterations=its,
        eval_episodes=(its + 1) * agents.batch,
        eval_objective=np.stack(trace["eval_objective"]),
        eval_welfare=np.stack(trace["eval_welfare"]),
        eval_paid=np.stack(trace["eval_paid"]),
        sample_objective=np.stack(trace["sample_objective"])
        if trace["sample_objective"]
        else np.zeros((0, seeds)),
        final_objective=np.asarray(ev["objective"]),
        final_actions=np.asarray(ev["actions"]),
        final_alive=np.asarray(ev["alive"]),
        final_incentive=np.asarray(ev["incentive"]),
        status=status,
        seconds=time.perf_counter() - t0,
        resumed_from=resumed_from,
        state=state if keep_state else None,
    )
