"""Exact finite-N batched auction (the finite-N check of the mean-field
auction).

``N`` bidders with i.i.d. initial values ``s_i ~ mu0`` play a policy ``pi`` over the bid grid
(agent 0 may play its own policy, a deviator). Round ``h``, with ``I_h`` items left
(``I_0 = floor(alpha_max N)``, the mechanism sees ``r_h = I_h / N``)::

    a_i ~ pi_h(. | s_i)                                  (inactive agents bid 0, not counted)
    nu^N_h(b) = #{i active : a_i = b} / N                (empirical active bid distribution)
    alpha_h, p_h = mechanism(h, nu^N_h, r_h, theta)      (alpha_h clipped to [0, r_h])
    need_h = min(floor(alpha_h N), I_h)                  items offered
    c(b) = #{active bids at b},  above(b) = sum_{b' > b} c(b')
    bids with above(b) + c(b) <= need win;  at the threshold level b* (above(b*) < need <
    above(b*) + c(b*)) exactly need - above(b*) of the c(b*) tied bidders win, chosen uniformly
    at random; if demand is below need, every active bidder wins
    winners pay p_h(a_i), get u_h(v_i, p_h(a_i)) and become ⊥;  I_{h+1} = I_h - #winners
    then every agent moves by the value kernel w_h (skipped when single-minded)

so exactly ``min(need_h, #active)`` items are sold. ``floor(alpha_h N)`` is taken as
``floor(alpha_h N + 1e-7)`` so that a schedule such as ``0.6 / 3`` does not lose an item to
floating-point rounding. The per-capita revenue ``G_N = sum_h sum_{winners} p_h(a_i) / N``
converges to the mean-field ``g_rev`` of :func:`auctions.objectives.revenue`.

**Ties.** Every tied bidder draws a uniform 32-bit key; the ``k`` smallest keys win. The ``k``-th
smallest key is found without sorting by a radix select (for large N two passes of a 2^16-bin
histogram, high 16 bits then low 16 bits inside the selected bucket; for N < 2^15 four passes of
256 bins); bidders whose 32-bit keys
coincide exactly with the selected key (probability about ``T^2 / 2^33`` for ``T`` tied bidders
that any duplicate exists at all) are taken in index order (further radix passes over the agent
index). Work is ``O(N)`` per round.

**Bids** are drawn with Walker/Vose alias tables built once per call from the (fixed) policy:
one uniform ``u`` gives the column ``j = floor(u M)`` and the fraction ``f = u M - j``; the bid is
``j`` if ``f < prob[s, j]`` else ``alias[s, j]`` (two gathers per agent). Rounds are one
``lax.scan``, agents are vectorised and replicates are a ``lax.map`` over vmapped batches of about
``batch_elems`` agents. Any mechanism with the API ``mechanism(h, nu, r, theta) -> (alpha, pay)``
works, the neural one included. A :class:`~auctions.mixture.MarketMixture` (setting A3) is
simulated market by market (:func:`market_policies`, :func:`auction_sampler`).

Example::

    import jax
    from auctions import first_price_game, make
    from auctions.simulate import simulate_auction
    from solvers import solve_omd
    game = first_price_game(make("A1", num_values=10, num_bids=10, key=jax.random.key(0)).game)
    theta = {}
    res = solve_omd(game, theta, tau=1e-2, eta=1.0, iters=100)
    out = simulate_auction(game, res.policy, theta, n=10_000, reps=100, key=jax.random.key(0))
    out.revenue.mean()            # ~ auctions.objectives.revenue(game, theta, res.flow)
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from auctions.game import BatchedAuction, value_grid
from auctions.mixture import MarketMixture
from auctions.objectives import revenue as mean_field_revenue
from mfid.checks import check_key, check_theta
from mfid.finite import (
    DEFAULT_BATCH_ELEMS,
    check_count,
    check_policy,
    inverse_cdf,
    replicate_batch,
)
from mfid.flow import population_flow

__all__ = [
    "AuctionSample",
    "alias_tables",
    "allocate",
    "simulate_auction",
    "auction_deviation_gain",
    "auction_sampler",
    "market_policies",
]

_EPS_ITEMS = 1e-7


@struct.dataclass
class AuctionSample:
    """Output of :func:`simulate_auction`, one entry per replicate (leading axis ``R``).

    ``revenue (R,)`` per-capita revenue; ``welfare (R,)`` per-capita value of the winners;
    ``sold (R, H)`` items sold per round; ``offered (R, H)`` items offered ``min(need, I_h)``;
    ``nu (R, H, M)`` empirical active bid distributions; ``agent0_utility (R,)`` and
    ``agent0_log_prob (R,)`` agent 0's realised utility and sum of ``log pi(a|s)``.
    """

    revenue: jnp.ndarray
    welfare: jnp.ndarray
    sold: jnp.ndarray
    offered: jnp.ndarray
    nu: jnp.ndarray
    agent0_utility: jnp.ndarray
    agent0_log_prob: jnp.ndarray


def alias_tables(probs):
    """Walker/Vose alias tables of every row of ``probs (..., C)``: ``(prob, alias)``.

    Row ``x`` is sampled by ``j = floor(u C)``, ``f = u C - j``, ``k = j if f < prob[x, j] else
    alias[x, j]``, which draws ``k`` with probability ``probs[x, k]`` exactly (up to rounding).
    Built in NumPy (vectorised over rows, ``C`` steps) from a concrete array.
    """
    p = np.asarray(probs, dtype=np.float64)
    shape = p.shape
    C = shape[-1]
    p = p.reshape(-1, C)
    p = np.clip(p, 0.0, None)
    p = p / p.sum(-1, keepdims=True)
    rows = p.shape[0]
    scaled = p * C
    prob = np.ones_like(scaled)
    alias = np.tile(np.arange(C), (rows, 1))
    # Vose: pair one unfinished "small" (< 1) column with one unfinished "large" (>= 1) column
    # per row; the small one is finished, the large one loses what the small one lacked.
    done = np.zeros(p.shape, bool)
    r_idx = np.arange(rows)
    for _ in range(C):
        small = (scaled < 1.0) & ~done
        large = (scaled >= 1.0) & ~done
        act = small.any(-1) & large.any(-1)
        if not act.any():
            break
        r = r_idx[act]
        s_, l_ = np.argmax(small, -1)[act], np.argmax(large, -1)[act]
        prob[r, s_] = scaled[r, s_]
        alias[r, s_] = l_
        scaled[r, l_] -= 1.0 - scaled[r, s_]
        done[r, s_] = True
    return prob.reshape(shape), alias.reshape(shape).astype(np.int32)


def _alias_draw(prob, alias, rows, u):
    """Draw a column per agent from alias tables ``(X, C)`` at rows ``rows (N,)``."""
    C = prob.shape[-1]
    x = u * C
    j = jnp.clip(jnp.floor(x).astype(jnp.int32), 0, C - 1)
    f = x - j
    flat = rows * C + j
    keep = f < prob.reshape(-1)[flat]
    return jnp.where(keep, j, alias.reshape(-1)[flat])


def _radix_bits(n: int) -> int:
    """Bits per radix pass: 16 (two passes of 2^16 bins) for large ``n``, else 8 (four passes
    of 256 bins), so the histograms never dominate small populations."""
    return 16 if n >= (1 << 15) else 8


def _select_smallest(mask, keys, k, bits: int = 16):
    """Boolean ``(N,)``: the ``k`` entries of ``mask`` with the smallest uint32 ``keys``, exact
    duplicates taken in index order. Radix select on the pair ``(key, index)`` from the most
    significant digit: ``32 / bits`` passes over the key and ``ceil(log2 N / bits)`` over the
    index, each a ``2^bits``-bin histogram: ``O(N)`` work, no sort."""
    B = 1 << bits
    n = mask.shape[0]
    index = jnp.arange(n, dtype=jnp.uint32)
    index_bits = max(1, int(np.ceil(np.log2(max(n, 2)))))
    index_passes = -(-index_bits // bits)
    digits = [(keys, shift) for shift in range(32 - bits, -1, -bits)]
    digits += [(index, shift) for shift in range((index_passes - 1) * bits, -1, -bits)]
    won = jnp.zeros_like(mask)
    cur = mask
    for word, shift in digits:
        digit = ((word >> shift) & (B - 1)).astype(jnp.int32)
        hist = jnp.bincount(jnp.where(cur, digit, B), length=B + 1)[:B]
        cum = jnp.cumsum(hist)
        d = jnp.minimum(jnp.sum(cum < k), B - 1)  # first digit whose cumulative count >= k
        won = won | (cur & (digit < d))
        k = k - (cum[d] - hist[d])
        cur = cur & (digit == d)
    return won | (cur & (k > 0))


def allocate(bids, active, need, keys, num_bids: int, bits: int = 16):
    """Exact batched allocation of ``need`` items to the highest active bids.

    ``bids (N,)`` bid levels in ``0..M-1``, ``active (N,)`` bool, ``need`` items (integer),
    ``keys (N,)`` uint32 uniform tie-breaking keys, ``bits`` the radix digit width (8 or 16).
    Returns ``(won (N,) bool, full (M,) bool,
    tie_level, tie_winners)``: levels with ``full`` win entirely, ``tie_winners`` of the bidders
    at ``tie_level`` win (the smallest keys). Exactly ``min(need, #active)`` bidders win.

    Example::

        won = allocate(jnp.array([3, 1, 3, 2]), jnp.ones(4, bool), 2, keys, 4)[0]
        # both bids at level 3 win
    """
    M = num_bids
    counts = jnp.bincount(jnp.where(active, bids, M), length=M + 1)[:M]
    above = jnp.flip(jnp.cumsum(jnp.flip(counts))) - counts
    full = above + counts <= need
    tie = (above < need) & (above + counts > need)
    tie_level = jnp.argmax(tie)
    has_tie = jnp.any(tie)
    k = jnp.where(has_tie, need - above[tie_level], 0)
    tied = active & (bids == tie_level) & has_tie
    won = active & (full[bids] | _select_smallest(tied, keys, k, bits))
    return won, full, jnp.where(has_tie, tie_level, -1), k


def _one_auction(game, tables, theta, key, n: int, single_minded: bool):
    prob, alias, prob0, alias0, logpi, logpi0 = tables
    H, S, M = logpi.shape
    K = S - 1
    dtype = logpi.dtype
    k0, kr = jax.random.split(key)
    s = inverse_cdf(game.mu0.astype(dtype)[None, :], jnp.zeros(n, jnp.int32),
                    jax.random.uniform(k0, (n,), dtype))  # fmt: skip
    items0 = jnp.floor(game.alpha_max.astype(dtype) * n + _EPS_ITEMS).astype(jnp.int32)
    values = jnp.concatenate([value_grid(K, dtype), jnp.zeros(1, dtype)])
    w = None if single_minded else game.value_kernel.dense().astype(dtype)
    rows = 2 if single_minded else 3
    scale = jnp.asarray(2.0**-32, dtype)

    def step(carry, xs):
        s, items = carry
        h, kh = xs
        kb = jax.random.split(kh, rows)  # one (n,) draw per key: faster than one (rows, n) draw
        bits = [jax.random.bits(kb[i], (n,), jnp.uint32) for i in range(rows)]
        u = bits[0].astype(dtype) * scale
        row = h * S + s
        a = _alias_draw(prob, alias, row, u)
        a0 = _alias_draw(prob0, alias0, row[:1], u[:1])
        a = a.at[0].set(a0[0])
        active = s < K
        counts = jnp.bincount(jnp.where(active, a, M), length=M + 1)[:M]
        nu = counts.astype(dtype) / n
        r = items.astype(dtype) / n
        alpha, pay = game.mechanism(h, nu, r, theta)
        alpha = jnp.clip(alpha, 0.0, r)
        need = jnp.minimum(jnp.floor(alpha * n + _EPS_ITEMS).astype(jnp.int32), items)
        won, full, tie_level, k = allocate(a, active, need, bits[1], M, _radix_bits(n))
        won_counts = jnp.where(full, counts, 0) + jnp.where(jnp.arange(M) == tie_level, k, 0)
        won_counts = won_counts.astype(jnp.int32)
        revenue = jnp.sum(won_counts.astype(dtype) * pay) / n
        welfare = jnp.sum(jnp.where(won, values[s], 0.0)) / n
        sold = jnp.sum(won_counts).astype(jnp.int32)
        util0 = jnp.where(won[0], game.utility(h, values[s[0]], pay[a[0]]), 0.0)
        lp0 = logpi0[h, s[0], a[0]]
        z = jnp.where(won, K, s)
        if not single_minded:
            z = inverse_cdf(w, z, bits[2].astype(dtype) * scale)
        out = (revenue, welfare, sold, need, nu, util0, lp0)
        return (z, items - sold), out

    _, (rev, wel, sold, need, nu, u0, lp0) = lax.scan(
        step, (s, items0), (jnp.arange(H), jax.random.split(kr, H))
    )
    return rev.sum(), wel.sum(), sold, need, nu, u0.sum(), lp0.sum()


@partial(jax.jit, static_argnames=("n", "reps", "batch", "single_minded"))
def _simulate_auction(game, tables, theta, key, n: int, reps: int, batch: int, single_minded: bool):
    fn = lambda k: _one_auction(game, tables, theta, k, n, single_minded)  # noqa: E731
    out = lax.map(fn, jax.random.split(key, reps), batch_size=batch)
    return AuctionSample(*out)


def _tables(game, policy, deviator):
    H, S, M = policy.shape
    prob, alias = alias_tables(policy)
    pol0 = policy if deviator is None else deviator
    prob0, alias0 = alias_tables(pol0)
    dtype = policy.dtype
    logp = lambda p: jnp.log(jnp.where(p > 0, p, 1.0))  # noqa: E731
    return (
        jnp.asarray(prob.reshape(H * S, M), dtype),
        jnp.asarray(alias.reshape(H * S, M)),
        jnp.asarray(prob0.reshape(H * S, M), dtype),
        jnp.asarray(alias0.reshape(H * S, M)),
        logp(policy),
        logp(jnp.asarray(pol0, dtype)),
    )


def simulate_auction(
    game: BatchedAuction,
    policy,
    theta,
    n: int,
    reps: int,
    key,
    *,
    deviator=None,
    batch_elems: int = DEFAULT_BATCH_ELEMS,
) -> AuctionSample:
    """Simulate ``reps`` independent ``n``-bidder batched auctions (see module docstring).

    ``policy (H, K + 1, M)`` is played by every bidder (agent 0 plays ``deviator`` if given);
    ``theta`` the mechanism parameters; ``key`` a ``jax.random`` key. Compiled once per
    ``(n, reps, shapes)``; ``ValueError`` for bad ``n``, ``reps`` or policies.
    """
    if not isinstance(game, BatchedAuction):
        raise ValueError(f"game must be a BatchedAuction, got {type(game).__name__}")
    n = check_count(n, "n")
    reps = check_count(reps, "reps")
    batch_elems = check_count(batch_elems, "batch_elems")
    shape = (game.horizon, game.num_states, game.num_actions)
    policy = check_policy(policy, shape, "policy")
    if deviator is not None:
        deviator = check_policy(deviator, shape, "deviator").astype(policy.dtype)
    check_theta(theta)
    key = check_key(key)
    tables = _tables(game, policy, deviator)
    single = bool(game.value_kernel.single_minded)
    batch = replicate_batch(n + 4 * (1 << _radix_bits(n)), reps, batch_elems)
    return _simulate_auction(game, tables, theta, key, n, reps, batch, single)


def auction_deviation_gain(
    game: BatchedAuction,
    policy,
    theta,
    n: int,
    reps: int,
    key,
    *,
    deviator=None,
    batch_elems: int = DEFAULT_BATCH_ELEMS,
):
    """Gain of bidder 0 switching to ``deviator`` (default: the unregularised mean-field best
    response ``argmax q*`` to ``Lambda(pi)``) while ``n - 1`` bidders play ``policy``; common
    random numbers (same key for both runs). Returns ``(d (reps,), conforming AuctionSample)``
    with ``d_r = U^0_r(deviator) - U^0_r(pi)`` (realised utilities)."""
    from mfid.values import best_response

    shape = (game.horizon, game.num_states, game.num_actions)
    policy = check_policy(policy, shape, "policy")
    if deviator is None:
        deviator = best_response(game, policy, theta, jnp.zeros((), policy.dtype))
    conform = simulate_auction(game, policy, theta, n, reps, key, batch_elems=batch_elems)
    dev = simulate_auction(
        game, policy, theta, n, reps, key, deviator=deviator, batch_elems=batch_elems
    )
    return dev.agent0_utility - conform.agent0_utility, conform


def market_policies(game, policy):
    """``[(market game, its policy block (H, K + 1, M))]``: one entry for a
    :class:`~auctions.game.BatchedAuction`, ``D`` for a :class:`~auctions.mixture.MarketMixture`
    (market ``d`` owns the states ``d (K + 1) .. (d + 1)(K + 1) - 1``)."""
    if isinstance(game, BatchedAuction):
        return [(game, policy)]
    if isinstance(game, MarketMixture):
        S = game.market_states
        return [(game.market(d), policy[:, d * S : (d + 1) * S]) for d in range(game.num_markets)]
    raise ValueError(f"game must be a BatchedAuction or a MarketMixture, got {type(game).__name__}")


@jax.jit
def _mean_field_values(game, policy, deviator, theta):
    """``(g_rev, V(Lambda(pi), pi), V(Lambda(pi), deviator))`` at ``tau = 0`` in one program."""
    from mfid.approximation import policy_value_against

    L = population_flow(game, policy, theta)
    return (
        mean_field_revenue(game, theta, L),
        policy_value_against(game, policy, policy, theta),
        policy_value_against(game, deviator, policy, theta),
    )


def auction_sampler(game, policy, theta, *, deviator=None):
    """Sampler for :func:`mfid.approximation.gap_study`: per-capita revenue ``G_N`` and the
    paired deviation gains. Returns ``(sampler, g_rev, eps_MF)`` with ``g_rev`` the mean-field
    revenue of ``Lambda(pi)`` and ``eps_MF = V(Lambda(pi), deviator) - V(Lambda(pi), pi)`` at
    ``tau = 0`` (the unregularised exploitability for the default deviator).

    ``game`` is a :class:`~auctions.game.BatchedAuction` (value dynamics included: drift and
    re-entry move the sampled values by the value kernel) or a
    :class:`~auctions.mixture.MarketMixture`: then every replicate runs each of the ``D`` markets
    as its own ``n``-bidder auction (independent keys) and ``G_N`` and the gain are the means
    over the markets, as the mixture's mean-field objective is (each market with weight
    ``1/D``; equivalently a market drawn uniformly at random, stratified)."""
    from mfid.values import best_response

    shape = (game.horizon, game.num_states, game.num_actions)
    policy = check_policy(policy, shape, "policy")
    zero = jnp.zeros((), policy.dtype)
    if deviator is None:
        deviator = jax.jit(best_response)(game, policy, theta, zero)
    deviator = check_policy(deviator, shape, "deviator")
    g, v_pi, v_dev = _mean_field_values(game, policy, deviator, theta)
    g, eps = float(g), float(v_dev) - float(v_pi)

    markets = list(zip(market_policies(game, policy), market_policies(game, deviator), strict=True))

    def sampler(n, reps, key):
        revs, gains = [], []
        for d, ((mkt, pol), (_, dev)) in enumerate(markets):
            k = key if len(markets) == 1 else jax.random.fold_in(key, d)
            gain, sample = auction_deviation_gain(mkt, pol, theta, n, reps, k, deviator=dev)
            revs.append(sample.revenue)
            gains.append(gain)
        return sum(revs) / len(revs), sum(gains) / len(gains)

    return sampler, g, eps
