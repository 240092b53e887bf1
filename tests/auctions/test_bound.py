"""Revenue bound: closed form, LP reference (scipy), and equilibrium revenue within the slack."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linprog

from auctions import (
    BatchedAuction,
    FirstPrice,
    PostedPrice,
    entropy_slack,
    max_entropy_slack,
    myerson_bound,
    posted_price_bound,
    revenue,
)
from solvers import solve_omd


def test_uniform_closed_form():
    B, p = posted_price_bound(np.full(100, 0.01), 0.8)
    np.testing.assert_allclose([B, p], [0.25, 0.5], atol=1e-15)  # max_k (k/100)(100-k)/100
    B, p = posted_price_bound(np.full(100, 0.01), 0.3)  # capacity binds: price 0.7
    np.testing.assert_allclose([B, p], [0.7 * 0.3, 0.7], atol=1e-15)


def lp_bound(mu, alpha_max):
    """Myerson's programme over monotone allocations, solved by scipy's LP solver."""
    K = len(mu)
    v = np.arange(K) / K
    above = np.cumsum(mu[::-1])[::-1] - mu
    phi = mu * v - above / K
    A_ub = [mu]
    b_ub = [alpha_max]
    for k in range(K - 1):  # x_k <= x_{k+1}
        row = np.zeros(K)
        row[k], row[k + 1] = 1, -1
        A_ub.append(row)
        b_ub.append(0.0)
    res = linprog(-phi, A_ub=np.array(A_ub), b_ub=b_ub, bounds=[(0, 1)] * K, method="highs")
    return -res.fun


def test_myerson_lp_matches_scipy_and_dominates_posted_price():
    rng = np.random.default_rng(0)
    for _ in range(6):
        mu = rng.dirichlet(np.ones(12))
        for a in (0.2, 0.5, 1.0):
            lp = lp_bound(mu, a)
            np.testing.assert_allclose(myerson_bound(mu, a), lp, atol=1e-10)
            assert posted_price_bound(mu, a)[0] <= lp + 1e-12
    mu = np.full(100, 0.01)
    np.testing.assert_allclose(myerson_bound(mu, 0.8), posted_price_bound(mu, 0.8)[0], atol=1e-12)


def test_equilibrium_revenue_within_entropy_slack():
    """Small A1-like game (risk-neutral, single-minded): the regularised equilibrium revenue of
    first price and of a posted price (at, above and below the optimal price) never exceeds the
    bound by more than tau x flow entropy; the posted price at p* comes close to the bound."""
    K = M = 20
    H, alpha_max, tau = 3, 0.8, 0.01
    mu = np.full(K, 1 / K)
    B, p_star = posted_price_bound(mu, alpha_max)
    for mech, theta in [
        (FirstPrice(M, H), {}),
        (PostedPrice(M, H), {"price": jnp.asarray(p_star)}),
        (PostedPrice(M, H), {"price": jnp.asarray(p_star - 0.1)}),
        (PostedPrice(M, H), {"price": jnp.asarray(p_star + 0.12)}),
    ]:
        game = BatchedAuction.create(mu, horizon=H, alpha_max=alpha_max, mechanism=mech)
        res = solve_omd(game, theta, tau=tau, eta=3.0, iters=600)
        assert float(res.exploitability) < 1e-6
        rev = float(revenue(game, theta, res.flow))
        slack = float(entropy_slack(res.flow, tau))
        assert 0 < slack <= max_entropy_slack(tau, H, M) + 1e-12
        assert rev <= B + slack + 1e-9, (rev, B, slack)
    assert rev < B  # the too-high price loses revenue
    game = BatchedAuction.create(mu, horizon=H, alpha_max=alpha_max, mechanism=PostedPrice(M, H))
    theta = {"price": jnp.asarray(p_star)}
    res = solve_omd(game, theta, tau=tau, eta=3.0, iters=600)
    assert float(revenue(game, theta, res.flow)) > 0.9 * B


def test_entropy_slack_of_uniform_policy():
    L = jnp.full((2, 3, 4), 1 / 12)
    np.testing.assert_allclose(entropy_slack(L, 0.5), 0.5 * 2 * np.log(4), rtol=1e-14)
    assert jax.numpy.isfinite(entropy_slack(L.at[0, 0].set(0.0), 1.0))
