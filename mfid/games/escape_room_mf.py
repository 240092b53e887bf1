"""The mean-field reading of Escape Room (a modelling choice, documented here).

A continuum of agents plays ER with the threshold ``m = rho n``: in round ``h`` the door opens
when the *lever fraction* ``f_h`` of the agents still in the room is at least ``rho``. Chosen
reading, as a PMFG (:class:`mfid.PMFG`) with states ``0 lever, 1 start, 2 door, 3 out`` (``out``:
the episode has ended; one allowed action, reward 0), actions ``0, 1, 2`` (the position to move
to), horizon 5 and ``mu0 = start``::

    f_h       = sum_{s<3} L_h(s, 0) / sum_{s<3, a} L_h(s, a)
    p_h       = Phi((f_h - rho) / kappa)                  (door-open probability; Phi = normal cdf)
    r(s, a)   = p_h 10 [a = 2] - (1 - p_h [a = 2]) [a != s]     (+10 / 0 / -1, in this order)
              + p_h theta[0, a] + (1 - p_h) theta[1, a]          (incentive: open / closed row)
    P(out | s, a) = p_h,   P(a | s, a) = 1 - p_h                 (the door opens: the room empties)

The smooth door replaces the hard threshold ``1{f >= rho}`` (``kappa -> 0``), which makes the
reward and kernel discontinuous in the population and OMD ill-posed; it is also what a finite room
sees: with ``n`` agents playing a policy with lever probability ``f``, the door opens with
probability ``P(Bin(n, f) >= rho n) ~ Phi((f - rho) sqrt(n / (f (1 - f))))``, a smooth step of
width ``~ 1 / sqrt n``. ``theta (2, 3)`` is a per-action incentive paid when the door opens (row 0)
or stays shut (row 1); the hand-coded incentive of the finite game is
``[[1 + eps, 0, 0], [0, 0, 0]]``. In the finite game the incentive is a function of the joint
action (the door state is one), so the same ``theta`` is deployable there.

**What the limit removes: pivotality.** In ER(n, m) the ``m`` lever pullers are pivotal: one
fewer and the door stays shut, so a puller compares ``-1 + I`` with what it gets when it walks
away *and the door closes* (``-1`` or ``0``), and ``I = 1 + eps`` suffices. In the mean field no
agent moves ``f_h``, so a puller compares ``-1 + I`` with the exit's ``+10``: the door opens in
an equilibrium only if the incentive makes pulling about as good as leaving, ``I ~ 11``.
:func:`pivotal_probability` gives the chance that one agent is pivotal in the finite room when the
others play a policy with lever probability ``f``; it vanishes like ``1 / sqrt n`` at ``f = rho``
and exponentially fast elsewhere.

Example::

    import jax.numpy as jnp
    from mfid.games.escape_room_mf import EscapeRoomMeanField, hand_incentive
    from solvers import solve_omd
    game = EscapeRoomMeanField.create(rho=0.4)
    res = solve_omd(game.pmfg, hand_incentive(0.1), tau=0.5, eta=0.5, iters=4000, tol=1e-9)
    game.objective(hand_incentive(0.1), res.flow)       # per-capita welfare minus incentives
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax
from jax.scipy.stats import norm
from scipy.stats import binom

from mfid.checks import check_count, check_positive, check_probability
from mfid.game import PMFG
from mfid.games.escape_room import DOOR, EXIT_REWARD, LEVER, START, EscapeRoom

__all__ = [
    "OUT",
    "EscapeRoomMeanField",
    "FiniteRoomSample",
    "hand_incentive",
    "pivotal_probability",
    "sample_finite_room",
    "threshold",
]

OUT = 3
_AGENT_STEPS = 2_000_000  # agent-steps held in memory at once by the finite-room sampler


def hand_incentive(eps: float):
    """``theta`` of the hand-coded incentive: ``1 + eps`` for the lever when the door opens."""
    return jnp.asarray([[1.0 + eps, 0.0, 0.0], [0.0, 0.0, 0.0]], jnp.result_type(float))


def threshold(n: int, rho: float) -> int:
    """``m = ceil(rho n)`` (so that ``#lever >= m`` iff the lever fraction is ``>= rho``)."""
    return max(1, math.ceil(rho * n - 1e-9))


def pivotal_probability(n: int, m: int, f: float) -> float:
    """``P(#lever among the other n - 1 agents = m - 1)``: one agent's pull decides the door."""
    return float(binom.pmf(m - 1, n - 1, f))


@struct.dataclass
class EscapeRoomMeanField:
    """The mean-field Escape Room (module docstring); :meth:`create` builds it."""

    pmfg: PMFG
    rho: float = struct.field(pytree_node=False, default=0.4)
    kappa: float = struct.field(pytree_node=False, default=0.02)
    horizon: int = struct.field(pytree_node=False, default=5)

    @classmethod
    def create(cls, rho: float = 0.4, kappa: float = 0.02, horizon: int = 5):
        check_probability(rho, "rho")
        if not 0.0 < rho < 1.0:
            raise ValueError(f"rho must lie in (0, 1), got {rho!r}")
        check_positive(kappa, "kappa")
        horizon = check_count(horizon, "horizon")
        dtype = jnp.result_type(float)
        mu0 = jnp.zeros(4, dtype).at[START].set(1.0)
        mask = np.ones((4, 3), bool)
        mask[OUT] = [True, False, False]
        terms = partial(_terms, float(rho), float(kappa))
        pmfg = PMFG.create(
            mu0,
            horizon,
            transition=lambda h, L, theta: terms(L, theta)[3],
            reward=lambda h, L, theta: terms(L, theta)[0] + terms(L, theta)[1],
            num_actions=3,
            action_mask=mask,
        )
        return cls(pmfg, float(rho), float(kappa), horizon)

    def door_probability(self, L):
        """``p_h`` of one round's ``L (4, 3)``."""
        return _terms(self.rho, self.kappa, L, None)[2]

    def objective(self, theta, flow):
        """Per-capita designer objective ``sum_h sum_{s,a} L_h(s,a) (r_ext - paid)`` of a flow
        ``(H, 4, 3)``: expected welfare minus incentives per agent."""

        def one(L):
            ext, paid, _, _ = _terms(self.rho, self.kappa, L, theta)
            return jnp.sum(L * (ext - paid))

        return jnp.sum(jax.vmap(one)(flow))

    def paid(self, theta, flow):
        """Incentives paid per agent and action ``(3,)`` over the horizon."""

        def one(L):
            return jnp.sum(L * _terms(self.rho, self.kappa, L, theta)[1], axis=0)

        return jnp.sum(jax.vmap(one)(flow), axis=0)


def _terms(rho, kappa, L, theta):
    """``(extrinsic reward (4, 3), incentive (4, 3), p, kernel (4, 3, 4))`` at ``L``."""
    dtype = L.dtype
    alive = L[:OUT].sum()
    f = L[:OUT, LEVER].sum() / jnp.maximum(alive, 1e-300)
    p = norm.cdf((f - rho) / kappa).astype(dtype)
    pos = jnp.arange(4)[:, None]
    act = jnp.arange(3)[None, :]
    exits = (act == DOOR).astype(dtype)
    moved = (act != pos).astype(dtype)
    ext = p * EXIT_REWARD * exits - (1.0 - p * exits) * moved
    ext = ext.at[OUT].set(0.0)
    if theta is None:
        inc = jnp.zeros((4, 3), dtype)
    else:
        theta = jnp.asarray(theta, dtype)
        inc = jnp.broadcast_to(p * theta[0] + (1.0 - p) * theta[1], (4, 3)).at[OUT].set(0.0)
    to = jax.nn.one_hot(jnp.arange(3), 4, dtype=dtype)  # position a
    out = jax.nn.one_hot(OUT, 4, dtype=dtype)
    alive_rows = (1.0 - p) * to + p * out[None]  # (3, 4) for every alive state
    P = jnp.broadcast_to(alive_rows, (4, 3, 4))
    P = P.at[OUT].set(jnp.broadcast_to(out, (3, 4)))
    return ext, inc, p, P


@struct.dataclass
class FiniteRoomSample:
    """Replicates of ER(n, m) played by ``n`` agents sampling one policy: per-capita designer
    ``objective`` (welfare minus incentives), per-capita ``welfare``, whether the door opened
    (``opened``), and the ``deviation_gain`` of agent 0 playing ``deviator`` instead (common
    random numbers), each ``(reps,)``."""

    objective: jnp.ndarray
    welfare: jnp.ndarray
    opened: jnp.ndarray
    deviation_gain: jnp.ndarray


def sample_finite_room(game: EscapeRoom, policy, theta, key, reps: int, deviator=None):
    """``reps`` episodes of ``game`` with every agent drawing ``a ~ policy[h, x]`` (a policy
    ``(H, 4, 3)`` of the mean-field game, row ``x`` = the agent's position) and the incentive
    ``theta[open, a]`` paid per agent; agent 0 may play ``deviator`` (same shape) in a second,
    coupled run (the same uniforms). Jitted; rounds scanned, replicates ``lax.map``ped in vmapped
    batches of about two million agent-steps (``n`` up to ``10^5`` in bounded memory)."""
    reps = check_count(reps, "reps")
    policy = jnp.asarray(policy)
    deviator = policy if deviator is None else jnp.asarray(deviator)
    return _sample_room(game, policy, deviator, jnp.asarray(theta, policy.dtype), key, reps)


@partial(jax.jit, static_argnames=("reps",))
def _sample_room(game, policy, deviator, theta, key, reps):
    n = game.n

    def episode(key):
        u = jax.random.uniform(key, (game.horizon, n), policy.dtype)

        def run(first):
            def body(carry, xs):
                pos, alive, ret0 = carry
                h, u_h = xs
                rows = policy[h][pos]  # (n, 3)
                rows = rows.at[0].set(first[h][pos[0]])
                acts = jnp.sum(jnp.cumsum(rows, -1) < u_h[:, None], -1).clip(0, 2)
                acts = acts.astype(jnp.int32)
                new, r, done, welfare = game.step(pos, acts)
                opened = game.door_open(acts)
                paid = jnp.where(opened, theta[0][acts], theta[1][acts])
                live = alive.astype(r.dtype)
                out = (live * (welfare - paid.sum()), live * welfare, alive & opened)
                ret0 = ret0 + live * (r[0] + paid[0])
                new = jnp.where(alive, new, pos)
                return (new, alive & ~done, ret0), out

            init = (game.reset(), jnp.asarray(True), jnp.zeros((), policy.dtype))
            (_, _, ret0), (obj, wel, op) = lax.scan(body, init, (jnp.arange(game.horizon), u))
            return obj.sum() / n, wel.sum() / n, jnp.any(op), ret0

        obj, wel, opened, ret0 = run(policy)
        _, _, _, ret_dev = run(deviator)
        return obj, wel, opened, ret_dev - ret0

    batch = max(1, min(reps, _AGENT_STEPS // (n * game.horizon)))  # bounded memory in n
    out = lax.map(episode, jax.random.split(key, reps), batch_size=batch)
    return FiniteRoomSample(*out)
