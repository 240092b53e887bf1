"""The batched-auction game: kernels, supply bookkeeping, payments, revenue two ways."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from auctions import (
    AuctionKernel,
    BatchedAuction,
    FirstPrice,
    FirstPriceReserve,
    MarketMixture,
    NeuralMechanism,
    PostedPrice,
    StaticMechanism,
    Utility,
    ValueKernel,
    allocated_mass,
    auction_rounds,
    bid_grid,
    efficiency,
    gaussian_drift,
    revenue,
    value_grid,
)
from mfid import rollout
from mfid.checks import check_kernel
from solvers import solve_omd

K, M, H = 8, 6, 3
_rollout = jax.jit(rollout)
_rounds = jax.jit(auction_rounds)


def random_policy(key, S=K + 1, scale=2.0):
    return jax.nn.softmax(scale * jax.random.normal(key, (H, S, M)), -1)


def mechanisms(key):
    neural = NeuralMechanism.create(M, H, width=16, depth=1, key=key)
    th_static = {
        "alloc": jax.random.normal(key, (H,)),
        "pay": jax.random.normal(jax.random.fold_in(key, 1), (H, M)),
    }
    return [
        (FirstPrice(M, H), {}),
        (FirstPriceReserve(M, H), {"reserve": jnp.asarray(0.37)}),
        (PostedPrice(M, H), {"price": jnp.asarray(0.41)}),
        (StaticMechanism(M, H), th_static),
        (neural, neural.init_theta()),
    ]


def make_game(mech, alpha_max=0.7, rho=0.0, sigma=None, utility=None):
    mu = np.arange(1, K + 1, dtype=float)
    return BatchedAuction.create(
        mu / mu.sum(),
        horizon=H,
        alpha_max=alpha_max,
        mechanism=mech,
        rho=rho,
        sigma=sigma,
        utility=utility,
    )


def test_kernel_push_pull_dense_agree():
    key = jax.random.key(1)
    vk = ValueKernel.create(K, rho=0.3, regen=np.full(K, 1 / K), sigma=0.2)
    k = AuctionKernel(jax.random.uniform(key, (M,)), vk)
    P = np.asarray(k.dense())
    check_kernel(P)
    L = jax.random.dirichlet(key, jnp.ones((K + 1) * M)).reshape(K + 1, M)
    V = jax.random.normal(key, (K + 1,))
    np.testing.assert_allclose(k.push(L), np.einsum("sa,sat->t", L, P), atol=1e-14)
    np.testing.assert_allclose(k.pull(V), P @ np.asarray(V), atol=1e-14)
    # explicit construction of the dense kernel, entry by entry
    W = np.asarray(gaussian_drift(K, 0.2))
    pw = np.asarray(k.p_win)
    g = np.full(K, 1 / K)
    Q = np.zeros((K + 1, M, K + 1))
    for s in range(K + 1):
        for a in range(M):
            pre = np.zeros(K + 1)
            if s < K:
                pre[K] += pw[a]
                pre[s] += 1 - pw[a]
            else:
                pre[K] = 1.0
            post = np.zeros(K + 1)
            post[:K] = pre[:K] @ W + 0.3 * pre[K] * g
            post[K] = 0.7 * pre[K]
            Q[s, a] = post
    np.testing.assert_allclose(P, Q, atol=1e-14)


def test_single_minded_identity_and_inactive_absorbing():
    vk = ValueKernel.create(K)
    w = np.asarray(vk.dense())
    np.testing.assert_allclose(w, np.eye(K + 1))


def _numpy_rounds(game, theta, pi):
    """An independent numpy forward pass of the batched auction: per round the flow
    ``L_h = mu_h pi_h``, the active bids ``nu_h``, the mechanism's ``(alpha_h, pay_h)`` at them,
    the mass sold per bid level (the ``alpha_h`` highest bids, a fractional tie at the threshold),
    then winners -> ⊥, losers keep their value, the value kernel (drift ``W``, re-entry ``rho``
    from ⊥ to ``regen``) and ``r_{h+1} = max(r_h - sold_h, 0)``."""
    vk = game.value_kernel
    W = np.eye(K) if vk.W is None else np.asarray(vk.W)
    rho, regen = float(vk.rho), np.asarray(vk.regen)
    mu, r = np.asarray(game.mu0), float(game.alpha_max)
    out = {name: [] for name in ("L", "nu", "alpha", "pay", "sold", "remaining")}
    for h in range(H):
        L = mu[:, None] * np.asarray(pi[h])
        nu = L[:K].sum(0)
        alpha, pay = game.mechanism(h, jnp.asarray(nu), jnp.asarray(r), theta)
        alpha = min(max(float(alpha), 0.0), r)
        above = np.append(np.cumsum(nu[::-1])[::-1][1:], 0.0)
        sold = np.minimum(np.maximum(alpha - above, 0.0), nu)
        won = L[:K] * (sold / nu)[None, :]  # nu > 0 at every level (softmax policies)
        b = L[K].sum() + won.sum()
        mu = np.append((L[:K] - won).sum(1) @ W + rho * b * regen, (1.0 - rho) * b)
        for name, x in (("L", L), ("nu", nu), ("alpha", alpha), ("pay", np.asarray(pay)),
                        ("sold", sold), ("remaining", r)):  # fmt: skip
            out[name].append(x)
        r = max(r - sold.sum(), 0.0)
    return {name: np.array(x) for name, x in out.items()}


def test_supply_bookkeeping_and_payments():
    key = jax.random.key(2)
    mechs = mechanisms(key)
    cases = [(m, a, (0.0, None)) for m in mechs for a in (0.3, 0.7, 1.4)]
    cases += [(m, a, (0.5, 0.2)) for m in (mechs[0], mechs[-1]) for a in (0.3, 1.4)]
    for i, ((mech, theta), alpha_max, (rho, sigma)) in enumerate(cases):
        game = make_game(mech, alpha_max, rho, sigma)
        pi = random_policy(jax.random.fold_in(key, i))
        L, dyn = _rollout(game, pi, theta)
        info = dyn.info
        ref = _numpy_rounds(game, theta, pi)
        np.testing.assert_allclose(L, ref["L"], atol=1e-14)
        np.testing.assert_allclose(info.nu, ref["nu"], atol=1e-14)
        np.testing.assert_allclose(info.alpha, ref["alpha"], atol=1e-14)
        np.testing.assert_allclose(info.remaining, ref["remaining"], atol=1e-14)
        np.testing.assert_allclose(info.payment, ref["pay"], atol=1e-14)
        # the mass sold per level: win probability x demand, the division-free threshold
        # allocation and the numpy recursion agree; the total is what the rollout reports
        sold = info.nu * info.p_win
        np.testing.assert_allclose(sold, ref["sold"], atol=1e-14)
        np.testing.assert_allclose(jax.vmap(allocated_mass)(info.nu, info.alpha), ref["sold"],
                                   atol=1e-14)  # fmt: skip
        np.testing.assert_allclose(info.sold, ref["sold"].sum(1), atol=1e-14)
        # the replay from (theta, L) reproduces the rollout's per-round quantities
        np.testing.assert_allclose(_rounds(game, theta, L).sold, info.sold, atol=1e-15)
        # supply: never more offered or sold than remains, nothing beyond alpha_max in total;
        # all that is offered sells while demand exceeds it, else the whole demand sells
        alpha, r, total = ref["alpha"], ref["remaining"], ref["sold"].sum(1)
        assert np.all(alpha <= r + 1e-15) and np.all(total <= r + 1e-15)
        assert total.sum() <= alpha_max + 1e-12
        demand = ref["nu"].sum(1)
        binding = demand > alpha
        np.testing.assert_allclose(total[binding], alpha[binding], rtol=1e-12, atol=1e-16)
        np.testing.assert_allclose(total[~binding], demand[~binding], rtol=1e-12)
        pay = ref["pay"]
        assert np.all(pay <= np.asarray(bid_grid(M)) + 1e-15) and np.all(pay >= -1e-15)
        np.testing.assert_allclose(L.sum((1, 2)), 1.0, atol=1e-12)


def test_neural_payment_rule_monotone_and_below_bid():
    """``pay(b_k) = sum_{j <= k} (b_j - b_{j-1}) sigmoid(o_j)`` and ``alpha = r sigmoid(o_alpha +
    beta_h)`` against a numpy cumulative sum of the network's raw outputs, plus the invariants."""
    key = jax.random.key(5)
    mech = NeuralMechanism.create(M, H, width=16, key=key, out_scale=3.0, pay_bias=0.0)
    theta = mech.init_theta()
    bids = np.arange(M) / M
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    for h in range(H):
        nu = jax.random.dirichlet(jax.random.fold_in(key, h), jnp.ones(M)) * 0.8
        alpha, pay = mech(h, nu, 0.6, theta)
        o_alpha, o = (np.asarray(x) for x in mech.outputs(h, nu, 0.6, theta))
        np.testing.assert_allclose(pay, np.cumsum(np.diff(bids, prepend=0.0) * sigmoid(o)),
                                   rtol=1e-13, atol=1e-16)  # fmt: skip
        frac = min(1.0 / (H - h), 0.95)
        beta = np.log(frac / (1.0 - frac))
        np.testing.assert_allclose(alpha, 0.6 * sigmoid(o_alpha + beta), rtol=1e-13)
        assert 0 <= float(alpha) <= 0.6
        assert np.all(np.diff(np.asarray(pay)) >= -1e-15)
        assert np.all(np.asarray(pay) <= np.asarray(bid_grid(M)) + 1e-15)
        assert len(np.unique(np.round(np.asarray(pay) / np.maximum(bid_grid(M), 1e-9), 6))) > 2


def test_revenue_two_ways_at_equilibrium():
    """Revenue from flows x payments (objective) equals the supply actually sold at each bid
    level (threshold allocation without the win-probability division) x its price; and the
    welfare identity revenue = winners' value - bidders' expected utility (linear utility)."""
    key = jax.random.key(3)
    for mech, theta in mechanisms(key):
        game = make_game(mech, 0.6, 0.3, 0.2)
        res = solve_omd(game, theta, tau=0.02, eta=1.0, iters=60)
        L = res.flow
        info = _rounds(game, theta, L)
        rev1 = revenue(game, theta, L)
        nu = L[:, :K].sum(1)
        sold = jax.vmap(allocated_mass)(nu, info.alpha)
        rev2 = jnp.sum(sold * info.payment)
        np.testing.assert_allclose(rev1, rev2, rtol=1e-12)
        np.testing.assert_allclose(
            jnp.sum(sold, 1),
            info.remaining - jnp.append(info.remaining[1:], info.remaining[-1] - info.sold[-1]),
            atol=1e-14,
        )
        _, dyn = _rollout(game, res.policy, theta)
        utility = jnp.sum(L * dyn.reward)
        np.testing.assert_allclose(efficiency(game, theta, L) - utility, rev1, rtol=1e-10)


def test_utilities_closed_forms():
    s, p = jnp.array([0.9, 0.3]), jnp.array([0.2, 0.5])
    x = np.asarray(s - p)
    np.testing.assert_allclose(
        Utility.create("risk_averse", beta=2.0)(0, s, p), (1 - np.exp(-2 * x)) / 2
    )
    np.testing.assert_allclose(
        Utility.create("risk_seeking", beta=2.0)(0, s, p), (np.exp(2 * x) - 1) / 2
    )
    np.testing.assert_allclose(Utility.create("hyperbolic", lam=0.5)(3, s, p), x / 2.5)
    np.testing.assert_allclose(Utility.create()(0, s, p), x)


def test_mixture_is_average_of_markets():
    key = jax.random.key(4)
    mech = NeuralMechanism.create(M, H, width=16, depth=1, key=key)
    theta = mech.init_theta()
    games = [make_game(mech, a, 0.3) for a in (0.5, 0.9)]
    mix = MarketMixture.stack(games)
    mix.validate(theta)
    pi = random_policy(key, S=2 * (K + 1))
    L, dyn = rollout(mix, pi, theta)
    revs = []
    for d, g in enumerate(games):
        Ld, _ = rollout(g, pi[:, d * (K + 1) : (d + 1) * (K + 1)], theta)
        np.testing.assert_allclose(L[:, d * (K + 1) : (d + 1) * (K + 1)] * 2, Ld, atol=1e-14)
        revs.append(revenue(g, theta, Ld))
    np.testing.assert_allclose(revenue(mix, theta, L), np.mean(revs), rtol=1e-12)
    k0 = jax.tree.map(lambda x: x[0], dyn.kernel)
    P = np.asarray(k0.dense())
    check_kernel(P)
    np.testing.assert_allclose(k0.push(L[0]), np.einsum("sa,sat->t", L[0], P), atol=1e-14)
    V = jax.random.normal(key, (P.shape[0],))
    np.testing.assert_allclose(k0.pull(V), P @ np.asarray(V), atol=1e-14)


def test_errors():
    mech = FirstPrice(M, H)
    with pytest.raises(ValueError, match="alpha_max"):
        make_game(mech, alpha_max=-1.0)
    with pytest.raises(ValueError, match="mu0_values"):
        BatchedAuction.create(np.ones(K), horizon=H, alpha_max=0.5, mechanism=mech)
    with pytest.raises(ValueError, match="mechanism"):
        BatchedAuction.create(np.full(K, 1 / K), horizon=H + 1, alpha_max=0.5, mechanism=mech)
    with pytest.raises(ValueError, match="rho"):
        make_game(mech, rho=1.5)
    with pytest.raises(ValueError, match="kind"):
        Utility.create("cubic")
    game = make_game(StaticMechanism(M, H))
    with pytest.raises(ValueError, match="reward"):
        game.validate({"alloc": jnp.zeros(H), "pay": jnp.full((H, M), jnp.nan)})
    assert value_grid(4)[-1] == 0.75


def test_inactive_state_bids_zero_and_collects_no_entropy():
    """⊥ has one allowed action (bid 0): its equilibrium policy is [1, 0, ..., 0] and, with
    single-minded bidders (⊥ absorbing, reward 0), V_h(⊥) = 0. Without the mask its uniform
    policy collects tau log M per remaining round, V_h(⊥) = (H - h) tau log M, the bonus that
    made winning early more attractive."""
    from mfid.values import evaluate_policy, exploitability

    tau = 0.05
    masked = make_game(FirstPrice(M, H))
    mask = np.asarray(masked.action_mask)
    assert (
        mask.shape == (K + 1, M)
        and mask[:K].all()
        and mask[K].tolist() == [True] + [False] * (M - 1)
    )
    for game in (masked, masked.replace(mask_inactive=False)):
        res = solve_omd(game, {}, tau=tau, eta=1.0, iters=300)
        _, dyn = _rollout(game, res.policy, {})
        _, V = evaluate_policy(dyn, res.policy, tau)
        pi_bot, V_bot = np.asarray(res.policy)[:, K], np.asarray(V)[:, K]
        if game.mask_inactive:
            np.testing.assert_array_equal(pi_bot, np.eye(M)[np.zeros(H, int)])
            np.testing.assert_array_equal(V_bot, 0.0)
        else:
            assert game.action_mask is None
            np.testing.assert_allclose(pi_bot, 1.0 / M, rtol=1e-13)
            np.testing.assert_allclose(V_bot, (H - np.arange(H)) * tau * np.log(M), rtol=1e-12)
        e = float(exploitability(game, res.policy, {}, tau))
        assert -1e-12 <= e <= 1e-6, e
