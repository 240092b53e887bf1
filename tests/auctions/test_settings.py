"""Settings A1–A10: every preset's published parameters read back from the built game, the ⊥
mask, the first-price-like starting mechanism, and a solve per distinct game structure."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from auctions import (
    SETTINGS,
    MarketMixture,
    NeuralMechanism,
    StaticMechanism,
    bid_grid,
    efficiency,
    gaussian_drift,
    make,
    make_objective,
    revenue,
)
from solvers import solve_omd

K, M = 10, 6
GRID = dict(num_values=K, num_bids=M, width=8, depth=1, draws=2)

# The published settings (auctions/settings.py): H, alpha_max, mu0, rho, sigma, utility kind and
# parameter, objective
UNIFORM, GEOMETRIC = "uniform", "0.9^k"
PUBLISHED = {
    "A1": dict(H=4, alpha_max=0.8, mu0=UNIFORM, rho=0.0, sigma=None, utility=("linear", None)),
    "A2": dict(H=4, alpha_max=0.8, mu0=GEOMETRIC, rho=0.0, sigma=0.2, utility=("linear", None)),
    "A3": dict(H=5, alpha_max=None, mu0=None, rho=0.3, sigma=None, utility=("linear", None)),
    "A4": dict(H=4, alpha_max=0.8, mu0=UNIFORM, rho=0.0, sigma=None,
               utility=("risk_averse", ("beta", 1.0))),
    "A5": dict(H=4, alpha_max=0.8, mu0=UNIFORM, rho=0.0, sigma=None,
               utility=("risk_seeking", ("beta", 1.0))),
    "A6": dict(H=4, alpha_max=0.8, mu0=UNIFORM, rho=0.0, sigma=None,
               utility=("hyperbolic", ("lam", 1.0))),
    "A7": dict(H=6, alpha_max=0.8, mu0=GEOMETRIC, rho=1.0, sigma=0.2, utility=("linear", None)),
    "A8": dict(H=100, alpha_max=5.0, mu0=GEOMETRIC, rho=0.015, sigma=0.01,
               utility=("linear", None)),
    "A9": dict(H=4, alpha_max=0.8, mu0=UNIFORM, rho=0.0, sigma=None, utility=("linear", None)),
    "A10": dict(H=4, alpha_max=0.8, mu0=UNIFORM, rho=0.3, sigma=None, utility=("linear", None)),
}  # fmt: skip


def _expected_mu0(kind):
    if kind == UNIFORM:
        return np.full(K, 1.0 / K)
    w = 0.9 ** np.arange(K)
    return w / w.sum()


def _markets(game):
    """The game's markets as a list of BatchedAuction (one for a plain setting)."""
    if isinstance(game, MarketMixture):
        return [game.market(d) for d in range(game.num_markets)]
    return [game]


@pytest.mark.parametrize("name", SETTINGS)
def test_preset_parameters_match_the_spec(name):
    spec = PUBLISHED[name]
    st = make(name, key=jax.random.key(0), **GRID)
    game = st.game
    game.validate(st.theta0)
    assert game.horizon == spec["H"] and st.metadata["horizon"] == spec["H"]
    assert isinstance(game, MarketMixture) == (name == "A3")
    markets = _markets(game)
    for mkt in markets:
        mu = np.asarray(mkt.mu0)
        assert mu[-1] == 0.0  # everyone starts active
        vk = mkt.value_kernel
        np.testing.assert_allclose(float(vk.rho), spec["rho"], rtol=1e-15)
        np.testing.assert_allclose(vk.regen, mu[:-1], rtol=1e-14)  # re-entry draws from mu0
        if spec["sigma"] is None:
            assert vk.W is None
        else:
            np.testing.assert_allclose(vk.W, gaussian_drift(K, spec["sigma"]), rtol=1e-14)
        kind, param = spec["utility"]
        assert mkt.utility.kind == kind
        if param is not None:
            assert float(getattr(mkt.utility, param[0])) == param[1]
        if spec["mu0"] is not None:
            np.testing.assert_allclose(mu[:-1], _expected_mu0(spec["mu0"]), rtol=1e-14)
        if spec["alpha_max"] is not None:
            assert float(mkt.alpha_max) == spec["alpha_max"]
        # ⊥ (last state) may only bid 0; every value state may bid anything
        mask = np.asarray(mkt.action_mask)
        assert mask.shape == (K + 1, M)
        assert mask[:-1].all() and mask[-1, 0] and not mask[-1, 1:].any()
    if name == "A3":
        assert game.num_markets == 2
        alphas = np.array([float(m.alpha_max) for m in markets])
        assert np.all((alphas >= 0.6) & (alphas <= 1.2)) and alphas[0] != alphas[1]
        mus = np.array([np.asarray(m.mu0)[:-1] for m in markets])
        assert np.abs(mus[0] - mus[1]).max() > 1e-3  # random draws, not uniform
        assert np.abs(mus - 1.0 / K).max() > 1e-3
        np.testing.assert_allclose(st.metadata["alpha_max_draws"], alphas)
        np.testing.assert_array_equal(
            np.asarray(game.action_mask), np.concatenate([np.asarray(m.action_mask) for m in markets])
        )  # fmt: skip
    else:
        assert st.metadata["alpha_max"] == spec["alpha_max"]
    if name == "A10":
        assert isinstance(st.mechanism, StaticMechanism)
    else:
        assert isinstance(st.mechanism, NeuralMechanism)
    assert st.objective == ("mix" if name == "A9" else "revenue")
    assert st.metadata["bound_applies"] == (name in ("A1", "A9"))


@pytest.mark.parametrize("name", SETTINGS)
def test_initial_mechanism_is_close_to_first_price(name):
    """alpha_h ≈ r_h / (H - h) (capped at 0.95 in the last round) and payments ≈ 0.98 of the bid
    in every round, whatever the horizon (A8: H = 100)."""
    st = make(name, key=jax.random.key(0), **GRID)
    H = st.game.horizon
    mech, theta = st.mechanism, st.theta0
    mu = np.asarray(_markets(st.game)[0].mu0)[:-1]
    nu = jnp.asarray(mu.sum() * np.full(M, 1.0 / M) * 0.7)
    r = 0.5
    alpha, pay = jax.jit(jax.vmap(lambda h: mech(h, nu, r, theta)))(jnp.arange(H))
    want = np.minimum(1.0 / (H - np.arange(H)), 0.95)
    np.testing.assert_allclose(np.asarray(alpha) / r, want, rtol=0.05)
    bids = np.asarray(bid_grid(M))
    frac = np.asarray(pay)[:, 1:] / bids[1:]
    assert np.all(frac > 0.97) and np.all(frac <= 1.0)


@pytest.mark.parametrize("name", ["A1", "A3", "A9"])  # one solve per distinct game structure
def test_preset_solves(name):
    st = make(name, key=jax.random.key(0), **GRID)
    res = solve_omd(st.game, st.theta0, tau=0.05, eta=2.0, iters=30)
    assert res.status_name != "nonfinite"
    value = float(make_objective(st.objective, st.mix_weight)(st.game, st.theta0, res.flow))
    assert np.isfinite(value) and value > 0
    rev = float(revenue(st.game, st.theta0, res.flow))
    eff = float(efficiency(st.game, st.theta0, res.flow))
    assert eff > rev > 0
    if name == "A9":  # the objective is 0.5 revenue + 0.5 efficiency
        assert st.mix_weight == 0.5
        np.testing.assert_allclose(value, 0.5 * rev + 0.5 * eff, rtol=1e-13)
    else:
        np.testing.assert_allclose(value, rev, rtol=1e-15)
    # the equilibrium policy of ⊥ is bid 0
    S = st.game.num_states // st.game.num_markets
    for d in range(st.game.num_markets):
        np.testing.assert_array_equal(np.asarray(res.policy)[:, (d + 1) * S - 1, 0], 1.0)


def test_a1_bound_and_a3_draws_follow_the_draws_key():
    st = make("A1", key=jax.random.key(0))
    assert st.metadata["bound"] == pytest.approx(0.25) and st.metadata["bound_price"] == 0.5
    kw = dict(num_values=6, num_bids=5, width=8)
    a = make("A3", key=jax.random.key(1), **kw).metadata
    b = make("A3", key=jax.random.key(2), **kw).metadata
    c = make("A3", key=jax.random.key(1), draws_key=jax.random.key(5), **kw).metadata
    # every network seed sees the same batch of markets; another draws_key draws another batch
    assert a["alpha_max_draws"] == b["alpha_max_draws"] != c["alpha_max_draws"]
    with pytest.raises(ValueError, match="setting"):
        make("A11", key=jax.random.key(0))
    assert make("a1", key=jax.random.key(0), **kw).name == "A1"
