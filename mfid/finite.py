"""Generic N-agent sampler for any PMFG (finite-N validation of the mean-field model).

``N`` agents start from i.i.d. states ``s_i ~ mu0`` and play a policy ``pi``; agent 0 may play
its own policy ``pi^0`` (a deviator). In round ``h`` every agent's reward and transition use the
*empirical* state-action distribution of the ``N`` agents::

    a_i ~ pi_h(. | s_i)                       (agent 0: a_0 ~ pi^0_h(. | s_0))
    L^N_h(s, a) = #{i : (s_i, a_i) = (s, a)} / N
    r_{h,i} = R_{h,theta}(s_i, a_i, L^N_h),   s_i' ~ P_{h,theta}(. | s_i, a_i, L^N_h)

with the game's ``aggregate`` (e.g. remaining supply) carried from round to round exactly as in
:func:`mfid.flow.rollout`. Per replicate the sampler returns the empirical flow
``L^N (H, S, A)``, the per-capita return ``G_N = (1/N) sum_i sum_h r_{h,i}``, the per-capita
log-probability ``(1/N) sum_i sum_h log pi_h(a_i | s_i)`` (so that the entropy-regularised
return is ``value - tau * log_prob``) and the same two quantities for agent 0 alone.

As ``N -> infinity``, ``L^N_h -> Lambda(pi)_h`` and ``G_N -> mu0 . V^pi_0`` (``tau = 0``);
for games whose kernel does not depend on ``L``, ``E L^N_h = Lambda(pi)_h`` exactly.

Sampling is by inverse CDF with one uniform draw per agent and decision: the action of an agent
in state ``s`` with uniform ``u`` is ``#{k : F_pi(k | s) <= u}`` where ``F_pi`` is the cumulative
policy row, found by one ``searchsorted`` over the row-offset array ``s + F_pi(. | s)``
(``O(N log(S A))`` work and ``O(N)`` memory; next states likewise over ``(s, a) + F_P``).
Agents are vectorised, rounds are one ``lax.scan`` and replicates a ``lax.map`` in vmapped
batches whose size keeps about ``batch_elems`` agent-states in memory at a time, so ``N`` up to
``10^6`` runs in bounded memory. Common random numbers: two calls with the same key and the same
population policy share every uniform draw, which couples a deviating and a conforming run.

Beach bar: the crowd term ``-log mu^N_h(s)`` is finite for every *occupied* state (the agent
there makes ``mu^N_h(s) >= 1/N``), so every sampled reward is finite; the reward table of an
unoccupied state (floored at ``1e-30`` by the game) is never read.

Example::

    import jax
    from mfid import BeachBar
    from mfid.finite import simulate
    game = BeachBar.create(num_states=10, horizon=5)
    pi = jnp.full((5, 10, 3), 1 / 3)
    out = simulate(game, pi, None, n=1000, reps=64, key=jax.random.key(0))
    out.value.mean(), out.flow.mean(0)          # ~ policy_value(game, pi, None), ~ Lambda(pi)
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from mfid.game import MeanFieldGame, check_theta, is_concrete

__all__ = [
    "FiniteSample",
    "simulate",
    "deviation_gain",
    "check_policy",
    "check_count",
    "inverse_cdf",
    "replicate_batch",
]

DEFAULT_BATCH_ELEMS = 1 << 21


@struct.dataclass
class FiniteSample:
    """Output of :func:`simulate`, one entry per replicate (leading axis ``R``).

    ``flow (R, H, S, A)``: empirical state-action distributions ``L^N_h``;
    ``value (R,)``: per-capita return; ``log_prob (R,)``: per-capita sum of ``log pi(a|s)``;
    ``agent0_value``/``agent0_log_prob (R,)``: the same for agent 0 only.
    """

    flow: jnp.ndarray
    value: jnp.ndarray
    log_prob: jnp.ndarray
    agent0_value: jnp.ndarray
    agent0_log_prob: jnp.ndarray

    def regularised(self, tau):
        """Per-capita entropy-regularised return ``value - tau * log_prob`` per replicate."""
        return self.value - tau * self.log_prob

    def agent0_regularised(self, tau):
        """Agent 0's regularised return ``agent0_value - tau * agent0_log_prob``."""
        return self.agent0_value - tau * self.agent0_log_prob


def check_count(x, name: str, minimum: int = 1) -> int:
    """Return ``int(x)`` or raise ``ValueError`` unless ``x`` is an integer ``>= minimum``."""
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {x!r}")
    return int(x)


def check_policy(policy, shape, name: str = "policy", atol: float = 1e-6):
    """Return ``policy`` as an array, or raise ``ValueError`` unless it has shape ``(H, S, A)``,
    is finite, non-negative and every row sums to one."""
    policy = jnp.asarray(policy)
    if policy.shape != tuple(shape):
        raise ValueError(f"{name} must have shape (H, S, A) = {tuple(shape)}, got {policy.shape}")
    if not jnp.issubdtype(policy.dtype, jnp.floating):
        policy = policy.astype(jnp.result_type(float))
    if is_concrete(policy):
        p = np.asarray(policy)
        if not np.all(np.isfinite(p)):
            raise ValueError(f"{name} must be finite")
        if np.any(p < -atol):
            raise ValueError(f"{name} must be non-negative (min {p.min():.3g})")
        rows = p.sum(-1)
        if not np.allclose(rows, 1.0, atol=atol):
            worst = float(np.abs(rows - 1).max())
            raise ValueError(f"{name}: every row pi_h(.|s) must sum to 1 (worst error {worst:.3g})")
    return policy


def inverse_cdf(probs, rows, u):
    """Draw ``k ~ probs[rows_i, :]`` for every ``i`` by inverse CDF with uniforms ``u``.

    ``probs (R, C)`` rows are distributions, ``rows (N,)`` integer row indices, ``u (N,)`` in
    ``[0, 1)``. Returns ``k_i = #{k : F(k | rows_i) <= u_i}`` with ``F`` the cumulative row, via
    one ``searchsorted`` of ``rows_i + u_i`` in the increasing array ``r + F(. | r)``; zero-
    probability columns are never drawn. Work ``O(N log(R C))``, memory ``O(N + R C)``.
    """
    R, C = probs.shape
    cdf = jnp.cumsum(jnp.clip(probs, 0.0, None), axis=-1)
    cdf = cdf / cdf[:, -1:]
    cdf = cdf.at[:, -1].set(1.0)
    offsets = jnp.arange(R, dtype=cdf.dtype)[:, None] + cdf
    q = rows.astype(cdf.dtype) + u.astype(cdf.dtype)
    idx = jnp.searchsorted(offsets.reshape(-1), q, side="right")
    k = idx - rows * C
    return jnp.clip(k, 0, C - 1).astype(jnp.int32)


def replicate_batch(n: int, reps: int, batch_elems: int = DEFAULT_BATCH_ELEMS) -> int:
    """Replicates simulated together so that about ``batch_elems`` agent slots are live."""
    return int(max(1, min(reps, batch_elems // max(n, 1))))


def _one_replicate(game, policy, policy0, logpi, logpi0, theta, key, n: int):
    H, S, A = policy.shape
    dtype = policy.dtype
    k0, kr = jax.random.split(key)
    mu0 = game.mu0.astype(dtype)[None, :]
    s = inverse_cdf(mu0, jnp.zeros(n, jnp.int32), jax.random.uniform(k0, (n,), dtype))
    agg0 = game.initial_aggregate(theta)

    def step(carry, xs):
        s, agg = carry
        h, kh = xs
        u = jax.random.uniform(kh, (2, n), dtype)
        a = inverse_cdf(policy[h], s, u[0])
        a0 = inverse_cdf(policy0[h], s[:1], u[0, :1])
        a = a.at[0].set(a0[0])
        idx = s * A + a
        L = jnp.bincount(idx, length=S * A).astype(dtype).reshape(S, A) / n
        dyn = game.dynamics(h, L, theta, agg)
        reward = dyn.reward.astype(dtype)
        value = jnp.sum(L * reward)
        lp_table = jnp.where(policy[h] > 0, logpi[h], 0.0)
        log_prob = jnp.sum(L * lp_table) - lp_table[s[0], a[0]] / n + logpi0[h, s[0], a[0]] / n
        P = dyn.kernel.dense().astype(dtype).reshape(S * A, S)
        s_next = inverse_cdf(P, idx, u[1])
        out = (L, value, log_prob, reward[s[0], a[0]], logpi0[h, s[0], a[0]])
        return (s_next, dyn.aggregate), out

    _, (L, v, lp, v0, lp0) = lax.scan(step, (s, agg0), (jnp.arange(H), jax.random.split(kr, H)))
    return L, v.sum(), lp.sum(), v0.sum(), lp0.sum()


@partial(jax.jit, static_argnames=("n", "reps", "batch"))
def _simulate(game, policy, policy0, theta, key, n: int, reps: int, batch: int):
    logpi = jnp.log(jnp.where(policy > 0, policy, 1.0))
    logpi0 = jnp.log(jnp.where(policy0 > 0, policy0, 1.0))
    keys = jax.random.split(key, reps)
    fn = lambda k: _one_replicate(game, policy, policy0, logpi, logpi0, theta, k, n)  # noqa: E731
    L, v, lp, v0, lp0 = lax.map(fn, keys, batch_size=batch)
    return FiniteSample(L, v, lp, v0, lp0)


def simulate(
    game: MeanFieldGame,
    policy,
    theta,
    n: int,
    reps: int,
    key,
    *,
    deviator=None,
    batch_elems: int = DEFAULT_BATCH_ELEMS,
) -> FiniteSample:
    """Simulate ``reps`` independent ``n``-agent plays of ``game`` (see module docstring).

    ``policy (H, S, A)`` is played by agents ``1..n-1`` (and by agent 0 unless ``deviator``, an
    ``(H, S, A)`` policy for agent 0, is given). ``key`` is a ``jax.random`` key. Compiled once
    per ``(n, reps, shapes)``.
    """
    n = check_count(n, "n")
    reps = check_count(reps, "reps")
    batch_elems = check_count(batch_elems, "batch_elems")
    shape = (game.horizon, game.num_states, game.num_actions)
    policy = check_policy(policy, shape, "policy")
    policy0 = policy if deviator is None else check_policy(deviator, shape, "deviator")
    policy0 = policy0.astype(policy.dtype)
    check_theta(theta)
    batch = replicate_batch(n, reps, batch_elems)
    return _simulate(game, policy, policy0, theta, key, n, reps, batch)


def deviation_gain(
    game: MeanFieldGame,
    policy,
    theta,
    n: int,
    reps: int,
    key,
    *,
    tau: float = 0.0,
    deviator=None,
    batch_elems: int = DEFAULT_BATCH_ELEMS,
):
    """N-player exploitability of ``policy``: gain of agent 0 switching to ``deviator``.

    ``deviator`` defaults to the mean-field best response ``softmax(q*/tau)`` to
    ``Lambda(policy)`` (:func:`mfid.values.best_response`). Per replicate, with common random
    numbers (the same key for both runs, so the other ``n - 1`` agents draw the same uniforms)::

        d_r = [R^0_r(deviator) - tau logprob^0_r(deviator)] - [R^0_r(pi) - tau logprob^0_r(pi)]

    Returns ``(d (reps,), sample)``: the paired gains and the :class:`FiniteSample` of the
    conforming run (everyone plays ``policy``), which also gives ``G_N``. ``d.mean()`` estimates ``eps_N``, the N-player counterpart of the
    mean-field exploitability; its standard error is ``d.std(ddof=1) / sqrt(reps)``.
    """
    from mfid.values import best_response

    if deviator is None:
        shape = (game.horizon, game.num_states, game.num_actions)
        pol = check_policy(policy, shape, "policy")
        deviator = best_response(game, pol, theta, jnp.asarray(tau, pol.dtype))
    conform = simulate(game, policy, theta, n, reps, key, batch_elems=batch_elems)
    dev = simulate(game, policy, theta, n, reps, key, deviator=deviator, batch_elems=batch_elems)
    return dev.agent0_regularised(tau) - conform.agent0_regularised(tau), conform
