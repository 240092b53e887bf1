"""Settings A1–A10: every preset builds, validates and solves on small grids; their choices."""

import jax
import numpy as np
import pytest

from auctions import SETTINGS, MarketMixture, NeuralMechanism, StaticMechanism, make, make_objective
from solvers import solve_omd


@pytest.mark.parametrize("name", SETTINGS)
def test_preset_builds_and_solves(name):
    st = make(name, num_values=6, num_bids=5, width=8, depth=1, draws=2, key=jax.random.key(0))
    game = st.game
    game.validate(st.theta0)
    H = {"A3": 5, "A7": 6, "A8": 100}.get(name, 4)
    assert game.horizon == H
    if name == "A3":
        assert isinstance(game, MarketMixture) and game.num_markets == 2
        a = np.asarray(game.markets.alpha_max)
        assert np.all((a >= 0.6) & (a <= 1.2))
        assert np.asarray(game.markets.value_kernel.rho)[0] == pytest.approx(0.3)
    if name == "A10":
        assert isinstance(st.mechanism, StaticMechanism)
    else:
        assert isinstance(st.mechanism, NeuralMechanism)
    assert st.metadata["bound_applies"] == (name in ("A1", "A9"))
    if name in ("A1", "A3", "A9"):  # one solve per distinct game structure / objective
        res = solve_omd(game, st.theta0, tau=0.05, eta=2.0, iters=30)
        assert res.status_name != "nonfinite"
        value = float(make_objective(st.objective, st.mix_weight)(game, st.theta0, res.flow))
        assert np.isfinite(value) and value >= 0


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
