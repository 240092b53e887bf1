"""Saved mechanisms: save -> load -> the same revenue at the re-solved equilibrium; bad
directories are refused with a message naming them."""

import jax
import jax.numpy as jnp
import pytest

from auctions import make, revenue
from auctions.saved import load_mechanism, save_mechanism
from solvers import solve_omd

KW = dict(num_values=6, num_bids=5, width=8)
EQ = {"tau": 0.05, "eta": 1.0, "tol": 1e-10, "max_iters": 5000}


def test_save_load_round_trip_gives_the_same_revenue(tmp_path):
    st = make("A1", key=jax.random.key(1003), **KW)
    theta = jax.tree.map(lambda x: x + 0.1 * jnp.cos(jnp.arange(x.size).reshape(x.shape)),
                         st.theta0)  # fmt: skip
    res = solve_omd(st.game, theta, tau=EQ["tau"], eta=EQ["eta"], iters=EQ["max_iters"],
                    tol=EQ["tol"])  # fmt: skip
    assert res.converged
    rev = float(revenue(st.game, theta, res.flow))
    d = save_mechanism(tmp_path / "m", setting="A1", make_kwargs={**KW, "seed": 1003},
                       theta=theta, method="test", seed=3, equilibrium=EQ)  # fmt: skip
    setting, loaded, meta = load_mechanism(d)
    assert meta["method"] == "test" and meta["equilibrium"] == EQ
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(theta), strict=True):
        assert jnp.array_equal(a, b)
    res2 = solve_omd(setting.game, loaded, tau=EQ["tau"], eta=EQ["eta"], iters=EQ["max_iters"],
                     tol=EQ["tol"])  # fmt: skip
    assert float(revenue(setting.game, loaded, res2.flow)) == pytest.approx(rev, abs=1e-12)


def test_bad_directories_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not a saved mechanism"):
        load_mechanism(tmp_path)
    st = make("A1", key=jax.random.key(0), **KW)
    d = save_mechanism(tmp_path / "m", setting="A1", make_kwargs={**KW, "seed": 0},
                       theta=st.theta0, method="x", seed=0, equilibrium=EQ)  # fmt: skip
    (d / "params.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot be read"):
        load_mechanism(d)
