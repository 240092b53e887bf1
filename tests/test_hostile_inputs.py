"""Hostile inputs: every way a user was found to get a traceback, a silently accepted bad value or
a broken run presented as a result, as input -> expected named ``ValueError``, status or exit
code. Cases already kept elsewhere are not repeated here: solver and gradient arguments
(tests/solvers/test_omd.py, test_gradients.py, test_design.py: ``tol=inf``, ``eta=30`` statuses,
mass creation, an objective returning a vector, checkpoint refusals of the design loop), the
auction flags, ``--method ''`` and a diverged auction run exiting 1 with its report flagged
(tests/mfid/test_cli_design_auction.py, where it shares that file's compiled programs), the
auction study's checkpoints (test_cli_design_auction_resume.py) and random games
(test_fuzz_pmfg.py)."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfid import PMFG, BeachBar, Congestion
from mfid.cli import main
from mfid.finite import simulate
from mfid.report.common import write_json
from solvers import design, solve_omd, value_and_grad

P2 = np.full((2, 2, 2), 0.5)
R2 = np.zeros((2, 2))


def _uniform(h, L, theta):
    return jnp.full((2, 2, 2), 0.5)


def _zero_reward(h, L, theta):
    return jnp.zeros((2, 2))


def _bb():
    return BeachBar.create(5, 3)


OMD = dict(tau=0.1, eta=0.3, iters=5)
OBJ = Congestion(50.0)


@pytest.mark.parametrize(
    "call, name",
    [
        # theta checked against what the game's dynamics take, before any solver traces it
        (lambda: solve_omd(_bb(), jnp.zeros(4), **OMD), "theta"),
        (lambda: solve_omd(_bb(), {"xi": jnp.zeros(5)}, **OMD), "theta"),
        (lambda: solve_omd(_bb(), [0.0] * 5, **OMD), "theta"),
        (lambda: value_and_grad(_bb(), OBJ, jnp.zeros(5, jnp.int32), **OMD), "theta"),
        (lambda: value_and_grad(_bb(), OBJ, jnp.zeros(5, jnp.complex64), **OMD), "theta"),
        (
            lambda: design(
                _bb(),
                OBJ,
                jnp.zeros(5, jnp.int32),
                key=0,
                maximize=False,
                steps=1,
                val_iters=5,
                **OMD,
            ),
            "theta0",
        ),  # fmt: skip
        # games: strings, rounding-size negative mass, bools and non-integers as counts
        (lambda: PMFG.create("uniform", 2, P2, R2), "mu0"),
        (lambda: PMFG.create(["0.5", "0.5"], 2, P2, R2), "mu0"),
        (lambda: PMFG.create([1 + 5e-7, -5e-7], 2, P2, R2), "mu0"),
        (lambda: PMFG.create([0.5, 0.5], 2, P2.astype(str), R2), "transition"),
        (lambda: PMFG.create([0.5, 0.5], True, P2, R2), "horizon"),
        (lambda: PMFG.create([0.5, 0.5], 2, _uniform, _zero_reward, num_actions=0), "num_actions"),
        (lambda: PMFG.create([0.5, 0.5], 2, _uniform, _zero_reward, num_actions=-1), "num_actions"),
        (
            lambda: PMFG.create([0.5, 0.5], 2, _uniform, _zero_reward, num_actions=2.5),
            "num_actions",
        ),
        (lambda: BeachBar.create(5, True), "horizon"),
        # solver hyperparameters of the wrong type
        (lambda: solve_omd(_bb(), None, tau=0.1, eta=None, iters=5), "eta"),
        (lambda: solve_omd(_bb(), None, tau="0.1", eta=0.3, iters=5), "tau"),
        (lambda: solve_omd(_bb(), None, tau=True, eta=0.3, iters=5), "tau"),
        # the objective's sharpness
        (lambda: Congestion(float("nan")), "beta"),
        (lambda: Congestion(0.0), "beta"),
        (lambda: Congestion(-1.0), "beta"),
    ],
)
def test_bad_api_input_is_a_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize("setting", ["A1", "A3"])
@pytest.mark.parametrize(
    "kwargs, name",
    [(dict(num_values=0), "num_values"), (dict(num_values=2.7), "num_values"),
     (dict(num_values=True), "num_values"), (dict(num_bids=0), "num_bids"),
     (dict(width=0), "width"), (dict(key=None), "key"), (dict(key=0), "key")],
)  # fmt: skip
def test_auction_settings_refuse_bad_grids_and_keys(setting, kwargs, name):
    from auctions.settings import make

    with pytest.raises(ValueError, match=name):
        make(setting, **{"key": jax.random.key(0), **kwargs})


def test_simulators_take_a_key_or_an_int_seed_and_refuse_anything_else():
    from auctions.settings import first_price_game, make
    from auctions.simulate import simulate_auction

    game = _bb()
    pi = solve_omd(game, None, **OMD).policy
    by_seed = simulate(game, pi, None, n=10, reps=2, key=3)
    by_key = simulate(game, pi, None, n=10, reps=2, key=jax.random.key(3))
    np.testing.assert_array_equal(np.asarray(by_seed.flow), np.asarray(by_key.flow))
    for key in (None, "0", 0.5, True):
        with pytest.raises(ValueError, match="key"):
            simulate(game, pi, None, n=10, reps=2, key=key)
    auction = first_price_game(make("A1", key=jax.random.key(0), num_values=4, num_bids=3).game)
    policy = np.full((auction.horizon, auction.num_states, auction.num_actions),
                     1.0 / auction.num_actions)  # fmt: skip
    with pytest.raises(ValueError, match="key"):
        simulate_auction(auction, policy, {}, n=10, reps=2, key=None)


def test_diverging_gradients_and_designs_are_statuses_not_successes():
    # the sizes and settings of the design beach-bar runs below (one compiled design step)
    game = BeachBar.create(num_states=4, horizon=2)
    _, grad, aux = value_and_grad(game, OBJ, jnp.zeros(4), tau=0.1, eta=1e6, iters=5,
                                  throw=False)  # fmt: skip
    assert aux.status_name in ("diverged", "nonfinite")
    res = design(game, OBJ, jnp.zeros(4), key=0, maximize=False, steps=2, tau=0.1, eta=30.0,
                 iters=5, val_iters=5, learning_rate=0.2, throw=False)  # fmt: skip
    assert res.status in ("diverged", "nonfinite") and not res.ok
    np.testing.assert_array_equal(np.asarray(res.theta), np.zeros(4))  # it did not move


def test_strict_json_writes_null_for_non_finite_numbers(tmp_path):
    write_json(tmp_path / "x.json", {"a": float("nan"), "b": [np.inf, 1.0], "c": np.float64(2)})
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [None, 1.0], "c": 2.0}


# ---- the command line: flags checked before any work (naming the flag), exit codes ----

BB = ["--all-cores", "design", "beach-bar", "--num-states", "4", "--horizon", "2", "--steps",
      "2", "--iters", "5", "--val-iters", "5", "--no-progress"]  # fmt: skip
SOLVE = ["solve", "beach-bar", "--num-states", "4", "--horizon", "2", "--iters", "2000"]


@pytest.mark.parametrize(
    "argv, flag",
    [
        ([*BB, "--beta", "nan"], "--beta"),
        ([*BB, "--beta", "0"], "--beta"),
        ([*BB, "--beta", "-1"], "--beta"),
        ([*BB, "--lr", "-1"], "--lr"),
        ([*BB, "--tau", "-1"], "--tau"),
        ([*BB, "--crowd", "nan"], "--crowd"),
        ([*BB, "--num-states", "1"], "--num-states"),
        ([*SOLVE, "--num-states", "1"], "--num-states"),
        ([*SOLVE, "--tau", "-1"], "--tau"),
        ([*SOLVE, "--eta", "0"], "--eta"),
        ([*SOLVE, "--p-still", "1.5"], "--p-still"),
    ],
)
def test_bad_flags_fail_before_any_work_naming_the_flag(argv, flag, tmp_path, capsys):
    assert main([*argv, *(["--out", str(tmp_path / "o")] if "design" in argv else [])]) == 2
    err = capsys.readouterr().err
    assert flag in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def _bad_paths(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    return {"missing dir": tmp_path / "no" / "such" / "x.json", "a directory": tmp_path,
            "under a file": f / "x.json"}  # fmt: skip


@pytest.mark.parametrize(
    "command",
    [
        SOLVE,
        ["bench", "omd", "--sizes", "4x2"],
        ["bench", "simulate"],
        ["bench", "memory"],
        ["bench", "design"],
        ["bench", "escape-room"],
        ["evaluate", "--mechanism", "results/A1/mechanisms/amid"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_bad_json_paths_fail_before_any_work_and_create_nothing(command, tmp_path, capsys):
    for what, path in _bad_paths(tmp_path).items():
        assert main(["--all-cores", *command, "--json", str(path)]) == 2, what
        err = capsys.readouterr().err
        assert "--json" in err and err.count("\n") == 1, (what, err)
    assert not (tmp_path / "no").exists()


def test_bad_output_dirs_and_programs_fail_before_any_work(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    js = str(tmp_path / "x.json")
    cases = [
        ([*BB, "--out", str(f)], "--out"),
        ([*BB, "--out", str(tmp_path / "o"), "--checkpoint-dir", str(f)], "--checkpoint-dir"),
        (["bench", "omd", "--sizes", "4x2", "--json", js, "--mfglib-python",
          str(tmp_path / "nonexistent")], "--mfglib-python"),
        (["bench", "omd", "--sizes", "4x2", "--json", js, "--plot", str(tmp_path)], "--plot"),
        (["bench", "memory", "--json", js, "--plot", str(f / "p.png")], "--plot"),
    ]  # fmt: skip
    for argv, flag in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert flag in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.json").exists()


def test_ctrl_c_ends_with_one_line_and_exit_code_130(monkeypatch, capsys):
    import mfid.cli.solve

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(mfid.cli.solve, "run_solve", interrupted)
    assert main(SOLVE) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err


def test_a_diverged_solve_exits_non_zero_with_strict_json(tmp_path, capsys):
    out = tmp_path / "x.json"
    assert main([*SOLVE, "--eta", "1e6", "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["status"] in ("diverged", "nonfinite")
    assert "NaN" not in out.read_text() and "Infinity" not in out.read_text()
    assert main([*SOLVE, "--tol", "1e-8", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["status"] == "successful"


def test_a_diverged_beach_bar_design_writes_its_flagged_report_and_exits_1(tmp_path, capsys):
    out, ck = tmp_path / "o", tmp_path / "ck"
    assert main([*BB, "--eta", "1e6", "--out", str(out)]) == 1
    text = (out / "report.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["status"] in ("diverged", "nonfinite")
    assert "warning" in capsys.readouterr().err
    # a checkpoint resumes only the run it belongs to: game, objective and seed are part of it
    assert main([*BB, "--out", str(out), "--checkpoint-dir", str(ck)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "successful" and math.isfinite(report["objective_after"])
    for flag, value in (("--crowd", "0.5"), ("--p-max", "2"), ("--beta", "10"), ("--seed", "1")):
        assert main([*BB, "--out", str(out), "--checkpoint-dir", str(ck), flag, value]) == 2
        err = capsys.readouterr().err
        assert "other settings" in err and str(ck) in err and err.count("\n") == 1, (flag, err)
    (ck / "design_checkpoint.npz").write_bytes(b"PK\x03\x04 not a zip")
    assert main([*BB, "--out", str(out), "--checkpoint-dir", str(ck)]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_a_report_directory_is_fully_the_new_run_or_untouched(tmp_path):
    from mfid.report.common import atomic_dir

    out = tmp_path / "report"
    with atomic_dir(out) as d:  # another command's report
        (d / "report.md").write_text("old")
        (d / "old_figure.png").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out) as d:  # killed after its first figure
        (d / "figure.png").write_text("new")
        raise RuntimeError
    assert sorted(p.name for p in out.iterdir()) == ["old_figure.png", "report.md"]
    with atomic_dir(out) as d:  # a complete re-run replaces it: nothing stale is left beside it
        (d / "report.md").write_text("new")
    assert [p.name for p in out.iterdir()] == ["report.md"]
    assert (out / "report.md").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temporary left behind


def test_x32_solve_refuses_a_tolerance_float32_cannot_resolve(capsys):
    try:
        assert main(["--x32", *SOLVE]) == 2  # the default --tol 1e-10
        err = capsys.readouterr().err
        assert "--tol" in err and "float32" in err and err.count("\n") == 1, err
    finally:
        jax.config.update("jax_enable_x64", True)
