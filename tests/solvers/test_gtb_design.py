"""Tax design on the mean-field mini-GTB with the generic solvers: exact gradients of the
productivity x equality objective with respect to the seven marginal rates agree across adjoints
and with central finite differences; OMD converges; the design loop improves on US federal."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfid.games.gtb import US_FEDERAL_RATES
from mfid.games.gtb_mf import GTBMeanField, ProductivityEquality, mean_field_metrics
from solvers import design_objective, solve_omd
from solvers.adjoint import Checkpointed, Implicit, Reference, Unrolled

US = jnp.asarray(US_FEDERAL_RATES)
OBJ = ProductivityEquality()
KW = dict(tau=0.1, eta=5.0, iters=60)


def _game(**kw):
    # three skills so that period incomes (up to 4 x 26 = 104) reach the fourth bracket (84.2)
    return GTBMeanField.create(skills=[11.0, 16.0, 26.0], grid_step=40.0, **kw)


def test_gradients_agree_across_adjoints_and_with_central_differences():
    game = _game(sigmoid=False)  # theta are the rates themselves
    theta = US
    grads = {}
    for adj in (Checkpointed(), Implicit(), Reference()):
        g = jax.grad(lambda t, a=adj: design_objective(game, OBJ, t, adjoint=a, **KW))(theta)
        grads[type(adj).__name__] = np.asarray(g)
    ref = grads["Checkpointed"]
    assert np.all(np.isfinite(ref)) and np.max(np.abs(ref[:4])) > 1.0
    # no period income reaches the three top brackets: their rates have no effect
    np.testing.assert_array_equal(ref[4:], 0.0)
    scale = np.max(np.abs(ref))
    # the same T-step map differentiated by the hand-written recursion: rounding error only
    assert np.max(np.abs(grads["Reference"] - ref)) / scale < 1e-10
    # Implicit differentiates the fixed point; OMD has converged (residual < 1e-9), so they agree
    # (measured 8e-14)
    assert np.max(np.abs(grads["Implicit"] - ref)) / scale < 1e-10

    def f(t):
        return float(design_objective(game, OBJ, t, adjoint=Unrolled(), **KW))

    h = 1e-6
    fd = np.array([(f(theta.at[i].add(h)) - f(theta.at[i].add(-h))) / (2 * h) for i in range(4)])
    # measured: 1e-9 of the largest component (h = 1e-6)
    np.testing.assert_allclose(ref[:4], fd, rtol=1e-7, atol=1e-8 * scale)


def test_omd_converges_and_sigmoid_parameterisation_matches_rates():
    game = _game()
    logits = jnp.log(US / (1 - US))
    res = solve_omd(game, logits, tau=0.1, eta=5.0, iters=500, tol=1e-12)
    assert res.status_name in ("successful", "converged") and float(res.exploitability) <= 1e-12
    np.testing.assert_allclose(res.flow.sum((1, 2)), 1.0, atol=1e-12)
    rates_game = _game(sigmoid=False)
    res2 = solve_omd(rates_game, US, tau=0.1, eta=5.0, iters=500, tol=1e-12)
    np.testing.assert_allclose(res2.policy, res.policy, atol=1e-10)
    m1 = mean_field_metrics(game, logits, res.flow)
    m2 = mean_field_metrics(rates_game, US, res2.flow)
    assert float(m1.product) == pytest.approx(float(m2.product), rel=1e-10)
    # the mean-field economy loses productivity to taxes: free market > US federal here
    free = solve_omd(rates_game, jnp.zeros(7), tau=0.1, eta=5.0, iters=500, tol=1e-12)
    mf = mean_field_metrics(rates_game, jnp.zeros(7), free.flow)
    assert float(mf.per_capita_productivity) > float(m2.per_capita_productivity)


def test_cli_lists_defaults_and_refuses_unknown_methods(capsys):
    from mfid.cli import build_parser
    from mfid.cli.design.gtb import _parse_methods

    with pytest.raises(SystemExit):
        build_parser().parse_args(["design", "gtb", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--method", "--out", "--no-progress", "--steps", "--n", "--mg-seeds"):
        assert flag in text
    assert "(default: 1000)" in text and "(default: amid,metagrad,us-federal" in text
    assert _parse_methods("amid, flat,amid") == ["amid", "flat"]
    with pytest.raises(ValueError, match="--method"):
        _parse_methods("amid,saez")


def test_report_writer_strict_json_and_figures(tmp_path):
    import json

    from mfid.report.gtb import markdown, write_report

    methods = ["amid", "us_federal", "free_market"]
    detail = {
        "mean_field": {"product": 1.0, "equality": 0.5, "per_capita_productivity": 2.0},
        "sampled": {k: v for key in ("product", "equality", "per_capita_productivity")
                    for k, v in ((key, 1.0), (key + "_stderr", 0.1))},
        "type_income": [1.0, 2.0], "type_post": [1.5, 1.5], "type_labour": [3.0, 4.0],
    }  # fmt: skip
    report = {
        "command": "mfid design gtb --out x", "mean_field": {m: 1.0 for m in methods},
        "sampled": {m: 1.0 for m in methods}, "sampled_stderr": {m: float("nan") for m in methods},
        "sampled_n": 10, "rates": {m: [0.1] * 7 for m in methods},
        "exploitability": {m: 1e-12 for m in methods}, "brackets": [0, 9.7, 39.475, 84.2,
        160.725, 204.1, 510.3], "skills": [10.0, 20.0], "max_period_income": 80.0,
        "details": {m: detail for m in methods}, "settings": {"tol": 1e-10, "reps": 2},
    }  # fmt: skip
    out = tmp_path / "gtb"
    names = write_report(out, report)
    assert {"rates.png", "income_by_skill.png", "labour_by_skill.png", "metrics.png"} <= set(names)
    data = json.loads((out / "report.json").read_text())  # strict: NaN written as null
    assert data["sampled_stderr"]["amid"] is None and data["figures"] == names
    assert "| AMID (mean field) |" in (out / "report.md").read_text()
    assert "US federal" in markdown({**report, "figures": names})
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
