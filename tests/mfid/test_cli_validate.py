"""``mfid validate --setting``: every setting A1–A10 (any case) and the beach bar are accepted;
a small-grid run of the mixture (A3, re-entry) writes a study whose mean-field value is the
independently solved equilibrium's revenue, and the sampled finite-N revenue of the mixture
converges to it. (Value drift in the finite-N auction: tests/auctions/test_simulate.py.)"""

import json

import jax
import numpy as np
import pytest

from auctions import first_price_game, make, revenue
from auctions.simulate import auction_sampler
from mfid import population_flow
from mfid.cli import build_parser, main
from mfid.cli.validate import SETTINGS, build_setting, check_validate_setting
from solvers import solve_omd

TINY = ["--num-values", "5", "--num-bids", "5", "--width", "8"]


def test_every_setting_is_accepted_in_any_case(capsys):
    parser = build_parser()
    names = [f"A{i}" for i in range(1, 11)] + ["beach-bar"]
    assert set(SETTINGS) == set(names)
    for name in names:
        for text in (name, name.lower(), name.upper(), name.title()):
            assert parser.parse_args(["validate", "--setting", text]).setting == name
            assert check_validate_setting(text) == name
    with pytest.raises(SystemExit):
        parser.parse_args(["validate", "--setting", "A11"])
    assert "A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, beach-bar" in capsys.readouterr().err
    with pytest.raises(ValueError, match="mechanism must be one of"):
        build_setting("A1", "posted")


@pytest.mark.parametrize("name, mechanism", [("a3", "first-price")])
def test_validate_runs_on_a_small_grid(tmp_path, name, mechanism):
    out = tmp_path / "study.json"
    argv = ["validate", "--setting", name, "--n", "20,40", "--reps", "3", "--boot", "20",
            "--mechanism", mechanism, "--tol", "1e-6", "--iters", "600", "--no-progress",
            "--json", str(out), *TINY]  # fmt: skip
    assert main(argv) == 0
    study = json.loads(out.read_text())
    canon = name.upper()
    assert study["setting"] == canon
    assert [r["n"] for r in study["rows"]] == [20, 40]
    assert all(np.isfinite(r["value"]) and np.isfinite(r["deviation_gain"]) for r in study["rows"])
    meta = study["meta"]
    assert f"--setting {canon}" in meta["command"] and "--num-values 5" in meta["command"]
    assert meta["markets"] == (4 if canon == "A3" else 1)
    # the mean-field value is the revenue of the equilibrium solved here independently
    st = make(canon, key=jax.random.key(1000), num_values=5, num_bids=5, width=8)
    game, theta = (first_price_game(st.game), {}) if mechanism == "first-price" else (
        st.game, st.theta0)  # fmt: skip
    res = solve_omd(game, theta, tau=1e-3, eta=10.0, iters=600, tol=1e-6)
    np.testing.assert_allclose(study["mean_field"], float(revenue(game, theta, res.flow)),
                               rtol=1e-9)  # fmt: skip
    assert meta["omd_status"] == res.status_name
    np.testing.assert_allclose(meta["exploitability"], float(res.exploitability), rtol=1e-6)


def test_mixture_sampler_is_the_mean_over_markets_and_converges():
    st = make("A3", key=jax.random.key(1000), num_values=5, num_bids=5, width=8, draws=2)
    game = first_price_game(st.game)
    res = solve_omd(game, {}, tau=1e-2, eta=10.0, iters=500)
    sampler, g, eps = auction_sampler(game, res.policy, {})
    # the mean-field value is the mean of the markets' own revenues
    S = game.market_states
    market_revenue = jax.jit(lambda m, pi: revenue(m, {}, population_flow(m, pi, {})))
    per_market = [
        float(market_revenue(game.market(d), res.policy[:, d * S : (d + 1) * S])) for d in range(2)
    ]
    np.testing.assert_allclose(g, np.mean(per_market), rtol=1e-12)
    values, gains = sampler(5000, 6, jax.random.key(0))
    se = float(np.std(values, ddof=1) / np.sqrt(6))
    assert abs(float(np.mean(values)) - g) < 4 * se + 1e-3, (float(np.mean(values)), g, se)
    assert np.all(np.isfinite(np.asarray(gains)))
