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

    import jax, jax.numpy as jnp
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

from mfid.checks import check_count, check_key, check_policy, check_theta
from mfid.game import MeanFieldGame
from mfid.tree import safe_log

__all__ = [
    "FiniteSample",
    "simulate",
    "deviation_gain",
    "conditional_deviation_gain",
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
    """Replicates simulated together so that about ``batch_elems`` agent slots are live: the
    largest divisor of ``reps`` not above ``batch_elems // n`` (so ``lax.map`` needs no separate
    remainder batch), or that bound itself when every such divisor is below half of it."""
    target = int(max(1, min(reps, batch_elems // max(n, 1))))
    best = max(d for d in range(1, target + 1) if reps % d == 0)
    return best if 2 * best >= target else target


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
        ka, ks = jax.random.split(kh)  # two (n,) draws: faster than one (2, n) draw on CPU
        u = (jax.random.uniform(ka, (n,), dtype), jax.random.uniform(ks, (n,), dtype))
        a = inverse_cdf(policy[h], s, u[0])
        a0 = inverse_cdf(policy0[h], s[:1], u[0][:1])
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
    logpi = safe_log(policy)
    logpi0 = safe_log(policy0)
    keys = jax.random.split(key, reps)
    fn = lambda k: _one_replicate(game, policy, policy0, logpi, logpi0, theta, k, n)  # noqa: E731
    L, v, lp, v0, lp0 = lax.map(fn, keys, batch_size=batch)
    return FiniteSample(L, v, lp, v0, lp0)


def _policy_shape(game: MeanFieldGame) -> tuple[int, int, int]:
    return (game.horizon, game.num_states, game.num_actions)


def _checked_sampling_args(game: MeanFieldGame, policy, theta, n, reps, batch_elems):
    """The validated ``(n, reps, batch_elems, policy)`` every finite-N sampler starts from
    (``ValueError`` naming the argument otherwise); ``theta`` is checked too."""
    n = check_count(n, "n")
    reps = check_count(reps, "reps")
    batch_elems = check_count(batch_elems, "batch_elems")
    policy = check_policy(policy, _policy_shape(game), "policy")
    check_theta(theta)
    return n, reps, batch_elems, policy


def _checked_deviator(game: MeanFieldGame, deviator, policy):
    """Agent 0's ``deviator`` policy, validated and cast to ``policy``'s dtype."""
    return check_policy(deviator, _policy_shape(game), "deviator").astype(policy.dtype)


def _mean_field_best_response(game: MeanFieldGame, policy, theta, tau):
    """The default deviator: the mean-field best response ``softmax(q*/tau)`` to
    ``Lambda(policy)``."""
    from mfid.values import best_response

    return best_response(game, policy, theta, jnp.asarray(tau, policy.dtype))


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
    ``(H, S, A)`` policy for agent 0, is given). ``key`` is a ``jax.random`` key (or an int
    seed). Compiled once
    per ``(n, reps, shapes)``.
    """
    n, reps, batch_elems, policy = _checked_sampling_args(game, policy, theta, n, reps, batch_elems)
    key = check_key(key)
    policy0 = policy if deviator is None else _checked_deviator(game, deviator, policy)
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
    if deviator is None:
        pol = check_policy(policy, _policy_shape(game), "policy")
        deviator = _mean_field_best_response(game, pol, theta, tau)
    conform = simulate(game, policy, theta, n, reps, key, batch_elems=batch_elems)
    dev = simulate(game, policy, theta, n, reps, key, deviator=deviator, batch_elems=batch_elems)
    return dev.agent0_regularised(tau) - conform.agent0_regularised(tau), conform


def _check_population_independent_kernel(game, theta, dtype):
    """``ValueError`` unless the game's kernel ignores ``L`` and it carries no aggregate."""
    if game.initial_aggregate(theta) != ():
        raise ValueError("game: the conditional estimator needs a game without an aggregate")
    S, A = game.num_states, game.num_actions
    L1 = game.mu0.astype(dtype)[:, None] * jnp.full((S, A), 1.0 / A, dtype)
    rng = np.random.default_rng(0)
    L2 = jnp.asarray(rng.dirichlet(np.ones(S * A)).reshape(S, A), dtype)
    dense = jax.jit(
        jax.vmap(lambda h, L: game.dynamics(h, L, theta).kernel.dense(), in_axes=(0, None))
    )
    hs = jnp.arange(game.horizon)
    if not np.allclose(dense(hs, L1), dense(hs, L2), atol=1e-12):
        raise ValueError(
            "game: the conditional estimator needs a kernel that does not depend on L "
            "(use deviation_gain instead)"
        )


def _others_counts(game, policy, theta, key, m: int):
    """Counts ``C_h (S, A)`` of ``m`` agents playing ``policy`` (kernel independent of ``L``)."""
    H, S, A = policy.shape
    dtype = policy.dtype
    k0, kr = jax.random.split(key)
    s = inverse_cdf(
        game.mu0.astype(dtype)[None, :],
        jnp.zeros(m, jnp.int32),
        jax.random.uniform(k0, (m,), dtype),
    )

    def step(s, xs):
        h, kh = xs
        ka, ks = jax.random.split(kh)
        u = (jax.random.uniform(ka, (m,), dtype), jax.random.uniform(ks, (m,), dtype))
        a = inverse_cdf(policy[h], s, u[0])
        idx = s * A + a
        C = jnp.bincount(idx, length=S * A).astype(dtype).reshape(S, A)
        dyn = game.dynamics(h, C / max(m, 1), theta)
        P = dyn.kernel.dense().astype(dtype).reshape(S * A, S)
        return inverse_cdf(P, idx, u[1]), C

    return lax.scan(step, s, (jnp.arange(H), jax.random.split(kr, H)))[1]


def _agent0_values(game, theta, counts, policies, logps, tau, n: int):
    """Exact expected regularised return of agent 0 for each policy in ``policies (P, H, S, A)``
    given the others' counts ``(H, S, A)``: backward induction with rewards at
    ``L = (C_h + e_{s,a}) / n``."""
    H, S, A = counts.shape
    dtype = counts.dtype
    eye = jnp.eye(S * A, dtype=dtype).reshape(S * A, S, A)

    def round_tables(h, C):
        def reward_at(e, sa):
            return game.dynamics(h, (C + e) / n, theta).reward.reshape(-1)[sa]

        R = jax.vmap(reward_at)(eye, jnp.arange(S * A)).reshape(S, A)
        P = game.dynamics(h, (C + eye[0]) / n, theta).kernel.dense()
        return R.astype(dtype), P.astype(dtype)

    R, P = jax.vmap(round_tables)(jnp.arange(H), counts)

    def values(pi, logpi):
        def step(V, xs):
            R_h, P_h, pi_h, lp_h = xs
            q = R_h + P_h @ V
            return jnp.sum(pi_h * (q - tau * jnp.where(pi_h > 0, lp_h, 0.0)), -1), None

        V0, _ = lax.scan(step, jnp.zeros(S, dtype), (R, P, pi, logpi), reverse=True)
        return game.mu0.astype(dtype) @ V0

    return jax.vmap(values)(policies, logps)


@partial(jax.jit, static_argnames=("n", "reps", "batch"))
def _conditional(game, policy, policy0, theta, key, tau, n: int, reps: int, batch: int):
    pols = jnp.stack([policy0, policy])
    logps = safe_log(pols)

    def one(k):
        counts = _others_counts(game, policy, theta, k, n - 1)
        v = _agent0_values(game, theta, counts, pols, logps, tau, n)
        return v[0] - v[1], v[1]

    return lax.map(one, jax.random.split(key, reps), batch_size=batch)


def conditional_deviation_gain(
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
    """Deviation gain of agent 0 with its own randomness integrated out (Rao-Blackwell).

    For games whose kernel does not depend on ``L`` (and without an aggregate) the other
    ``n - 1`` agents move independently of agent 0, so, given their counts ``C_h (S, A)``,
    agent 0's expected regularised return is an exact backward induction over its own state::

        q_h(s, a) = R_h(s, a, (C_h + e_{s,a}) / n) + sum_{s'} P_h(s'|s, a) V_{h+1}(s')
        V_h(s)    = sum_a pi^0_h(a|s) [q_h(s, a) - tau log pi^0_h(a|s)],     value = mu0 . V_0

    Per replicate ``d_r = value(deviator) - value(policy)`` on the same sampled counts, an
    unbiased estimator of the N-player gain whose variance comes only from the others'
    fluctuations. The reward tables cost ``O(H (S A)^2)`` per replicate (one evaluation of the
    game's reward per ``(s, a)`` and round), so this estimator is meant for small games such as
    the beach bar. ``deviator`` defaults to the mean-field best response at ``tau``. Returns
    ``(d (reps,), conforming value (reps,))``; ``ValueError`` for a game whose kernel depends on
    ``L`` (checked at two distributions) or that carries an aggregate.
    """
    n, reps, batch_elems, policy = _checked_sampling_args(game, policy, theta, n, reps, batch_elems)
    key = check_key(key)
    if deviator is None:
        deviator = _mean_field_best_response(game, policy, theta, tau)
    policy0 = _checked_deviator(game, deviator, policy)
    _check_population_independent_kernel(game, theta, policy.dtype)
    SA = game.num_states * game.num_actions
    batch = replicate_batch(n + game.horizon * SA * SA, reps, batch_elems)
    tau_ = jnp.asarray(tau, policy.dtype)
    return _conditional(game, policy, policy0, theta, key, tau_, n, reps, batch)
