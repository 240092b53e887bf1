"""``mfid validate``: every setting A1–A10 (any case) and the beach bar are accepted;
a small-grid run of the mixture (A3, re-entry) writes a study whose mean-field value is the
independently solved equilibrium's revenue, and the sampled finite-N revenue of the mixture
converges to it. ``--mechanism DIR`` validates a saved mechanism at the equilibrium
``mfid evaluate`` solves (the same revenue), with adaptive replicates and a checkpoint that a
second run reuses to the same JSON. (Value drift in the finite-N auction:
tests/auctions/test_simulate.py.)"""

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
    argv = ["validate", "--setting", name, "--n", "20,40", "--reps", "3", "--max-reps", "6",
            "--boot", "20",
            "--mechanism", mechanism, "--tol", "1e-6", "--iters", "600", "--no-progress",
            "--json", str(out), *TINY]  # fmt: skip
    assert main(argv) == 0
    study = json.loads(out.read_text())
    canon = name.upper()
    assert study["setting"] == canon
    assert [r["n"] for r in study["rows"]] == [20, 40]
    assert all(3 <= r["reps"] <= 6 for r in study["rows"])
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


def _saved_tiny_mechanism(path, seed=0):
    """A tiny A1 neural mechanism saved as mfid design auction saves one (perturbed initial
    parameters, so it is not the preset's theta0)."""
    from auctions.saved import save_mechanism

    st = make("A1", key=jax.random.key(7), num_values=5, num_bids=5, width=8)
    leaves, tree = jax.tree_util.tree_flatten(st.theta0)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [x + 0.1 * jax.random.normal(k, x.shape, x.dtype)
             for x, k in zip(leaves, keys, strict=True)]  # fmt: skip
    theta = jax.tree_util.tree_unflatten(tree, noisy)
    return save_mechanism(
        path, setting="A1", make_kwargs={"num_values": 5, "num_bids": 5, "width": 8, "seed": 7},
        theta=theta, method="amid", seed=0,
        equilibrium={"tau": 1e-2, "eta": 5.0, "tol": 1e-8, "max_iters": 3000},
    )  # fmt: skip


def test_validate_saved_mechanism_at_evaluate_equilibrium_and_checkpoint_resume(tmp_path, capsys):
    mech = _saved_tiny_mechanism(tmp_path / "mechanisms" / "amid")
    ev = tmp_path / "evaluate.json"
    assert main(["evaluate", "--mechanism", str(mech), "--json", str(ev)]) == 0
    capsys.readouterr()
    ck, out1, out2 = tmp_path / "ck.json", tmp_path / "a.json", tmp_path / "b.json"
    argv = ["validate", "--mechanism", str(mech), "--n", "4,1e2", "--reps", "4",
            "--max-reps", "8", "--boot", "30", "--checkpoint", str(ck), "--no-progress"]  # fmt: skip
    assert main([*argv, "--json", str(out1), "--plot", str(tmp_path / "a.png")]) == 0
    first = capsys.readouterr().out
    study = json.loads(out1.read_text())
    # g is the revenue mfid evaluate prints for the same saved mechanism, to the last bit
    assert study["mean_field"] == json.loads(ev.read_text())["revenue"]
    assert study["setting"] == "A1" and study["meta"]["mechanism_method"] == "amid"
    assert study["meta"]["omd_status"] == "successful"
    assert "--mechanism" in study["meta"]["command"] and "--n 4,100" in study["meta"]["command"]
    rows = study["rows"]
    assert [r["n"] for r in rows] == [4, 100]
    assert all(r["stop"] in ("resolved", "target_se", "max_reps") for r in rows)
    assert all(4 <= r["reps"] <= 8 and r["resolved"] == (abs(r["gap"]) > 3 * r["stderr"])
               for r in rows)  # fmt: skip
    assert rows[0]["resolved"]  # 4 bidders and 3 items: a large finite-N gap
    assert (tmp_path / "a.png").stat().st_size > 0 and "resuming" not in first
    # the second run reuses every row from the checkpoint and writes the identical JSON
    assert main([*argv, "--json", str(out2)]) == 0
    assert "resuming from" in capsys.readouterr().out
    assert out2.read_bytes() == out1.read_bytes()
    # another configuration, a corrupt file: refused with one line, exit code 2
    assert main([*argv[:-1], "--seed", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds a validation run with other settings" in err and "\n" not in err
    ck.write_text(ck.read_text()[:40])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot be read" in err and "\n" not in err


def test_mechanism_flag_takes_a_directory_and_checks_it(tmp_path, capsys):
    mech = _saved_tiny_mechanism(tmp_path / "amid")
    parser = build_parser()
    assert parser.parse_args(["validate", "--mechanism", str(mech)]).mechanism == str(mech)
    assert parser.parse_args(["validate", "--setting", "A1"]).mechanism == "first-price"
    with pytest.raises(SystemExit):
        parser.parse_args(["validate", "--setting", "A1", "--mechanism", str(tmp_path)])
    assert "saved mechanism directory" in capsys.readouterr().err
    with pytest.raises(ValueError, match="does not match the saved mechanism"):
        build_setting("A2", str(mech))
    with pytest.raises(ValueError, match="--num-bids 7 does not match"):
        build_setting(None, str(mech), num_bids=7)
    with pytest.raises(ValueError, match="--setting is required"):
        build_setting(None, "first-price")
