"""Tests of the gap-vs-N study: exponent fit, bootstrap CI, exact finite-N references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from mfid import PMFG, BeachBar, population_flow
from mfid.approximation import (
    STOP_REASONS,
    adaptive_gap_study,
    adaptive_replicates,
    bootstrap_exponent,
    check_ns,
    fit_exponent,
    game_sampler,
    gap_study,
    next_batch,
    policy_value_against,
    summarize,
)
from mfid.finite import conditional_deviation_gain, deviation_gain
from mfid.values import best_response, exploitability


def test_fit_exponent_recovers_power_law_and_uses_weights():
    ns = np.array([10, 100, 1000, 10000])
    err = 3.0 * ns**-0.7
    slope, intercept = fit_exponent(ns, err, 0.1 * err)
    np.testing.assert_allclose([slope, intercept], [-0.7, np.log(3.0)], rtol=1e-12)
    # an outlier with a huge standard error barely moves the weighted fit ...
    bad = err.copy()
    bad[-1] *= 50
    se = 0.1 * err
    se[-1] = 100 * bad[-1]
    assert abs(fit_exponent(ns, bad, se)[0] + 0.7) < 1e-4
    # ... but moves the fit when it is claimed precise (the weights matter)
    assert abs(fit_exponent(ns, bad, 0.1 * bad)[0] + 0.7) > 0.3
    # vectorised over leading axes, nan with fewer than two usable points
    s = fit_exponent(ns, np.stack([err, 2 * err]), np.stack([se, se]))[0]
    assert s.shape == (2,)
    assert np.isnan(fit_exponent(ns, np.array([1.0, 0.0, 0.0, 0.0]), np.ones(4))[0])


def test_bootstrap_ci_covers_bias_and_rmse_exponents():
    """Synthetic G_N = g + 5/N + N(0, 1/N): bias exponent -1; pure noise: RMSE exponent -1/2."""
    rng = np.random.default_rng(0)
    ns = [10, 100, 1000, 10000, 100000]
    R = 400
    g = 2.0
    values = [g + 5.0 / n + rng.normal(0, 1 / np.sqrt(n), R) for n in ns]
    study = summarize(ns, values, g, n_boot=400, seed=1)
    lo, hi = study.exponent_ci
    assert lo < -1.0 < hi and hi - lo < 0.3
    assert abs(study.exponent + 1.0) < 0.1
    noise = [g + rng.normal(0, 1 / np.sqrt(n), R) for n in ns]
    study = summarize(ns, noise, g, n_boot=400, seed=2)
    lo, hi = study.rmse_exponent_ci
    assert lo < -0.5 < hi and abs(study.rmse_exponent + 0.5) < 0.05
    # with no bias, no gap is resolved for most N and the CI of the bias exponent is wide
    assert sum(r.resolved for r in study.rows) <= 2
    assert study.exponent_ci[1] - study.exponent_ci[0] > 0.3
    boot = bootstrap_exponent(ns, values, g, stat="rmse", n_boot=50)
    assert boot.shape == (50,)


def test_summarize_rows_match_numpy():
    rng = np.random.default_rng(3)
    ns = [5, 50]
    vals = [rng.normal(1.0, 0.2, 30), rng.normal(1.05, 0.1, 40)]
    gains = [rng.normal(0.1, 0.05, 30), rng.normal(0.2, 0.05, 40)]
    st = summarize(ns, vals, 1.05, gains=gains, mean_field_deviation=0.2, n_boot=20)
    for r, v, d in zip(st.rows, vals, gains, strict=True):
        assert r.value == pytest.approx(v.mean())
        assert r.gap == pytest.approx(v.mean() - 1.05)
        assert r.stderr == pytest.approx(v.std(ddof=1) / np.sqrt(v.size))
        assert r.rmse == pytest.approx(np.sqrt(np.mean((v - 1.05) ** 2)))
        assert r.deviation_gain == pytest.approx(d.mean())
        assert r.deviation_stderr == pytest.approx(d.std(ddof=1) / np.sqrt(d.size))
    js = st.to_json()
    assert set(js) >= {"setting", "mean_field", "rows", "exponent", "exponent_ci"}
    assert set(js["rows"][0]) >= {"n", "value", "gap", "stderr", "deviation_gain"}


def _exact_beach_bar_mean(game, policy, n):
    """E G_N for the beach bar: its kernel ignores L, so agents are independent and the count
    at spot s in round h is Binomial(n, mu_h(s)); the only nonlinear part of the per-capita
    return is -sum_s mu^N log mu^N, whose expectation is a finite binomial sum."""
    L = np.asarray(population_flow(game, policy, None))
    mu = L.sum(-1)
    base = np.asarray(game.base_reward())
    linear = float(np.sum(L * base[None]))
    k = np.arange(n + 1)
    f = np.where(k > 0, (k / n) * np.log(np.maximum(k, 1) / n), 0.0)
    crowd = sum(float(stats.binom.pmf(k, n, m) @ f) for m in mu.ravel())
    return linear - crowd


def test_beach_bar_sampler_matches_exact_finite_n_mean_and_conditional_gain():
    game = BeachBar.create(num_states=5, horizon=3)
    rng = np.random.default_rng(0)
    pi = rng.uniform(0.2, 1, (3, 5, 3))
    pi = jnp.asarray(pi / pi.sum(-1, keepdims=True))
    sampler, g, eps = game_sampler(game, pi, None)
    assert sampler.estimator == "conditional"
    assert eps == pytest.approx(float(exploitability(game, pi, None, 0.0)), rel=1e-10)
    for n in (4, 40):
        v, d = sampler(n, 800, jax.random.key(n))
        v = np.asarray(v)
        exact = _exact_beach_bar_mean(game, pi, n)
        assert abs(v.mean() - exact) < 4 * v.std(ddof=1) / np.sqrt(v.size)
        assert abs(exact - g) > 0.05  # the finite-N bias is real (the test has power)
        if n == 4:  # the conditional gain agrees with the plainly sampled one (z-test)
            br = best_response(game, pi, None, 0.0)
            ds, _ = deviation_gain(game, pi, None, n, 800, jax.random.key(100), deviator=br)
            d, ds = np.asarray(d), np.asarray(ds)
            se = np.sqrt(d.var(ddof=1) / d.size + ds.var(ddof=1) / ds.size)
            assert abs(d.mean() - ds.mean()) < 4 * se
            assert d.std() < 0.5 * ds.std()  # and has lower variance


def test_conditional_gain_single_agent_exact_and_rejects_coupled_kernels():
    game = BeachBar.create(num_states=4, horizon=3)
    pi = jnp.full((3, 4, 3), 1 / 3)
    br = best_response(game, pi, None, 0.0)
    d, base = conditional_deviation_gain(game, pi, None, 1, 3, jax.random.key(0), deviator=br)
    # one agent alone: mu^1 is a point mass, the crowd term vanishes; evaluate on the game
    # with crowd = 0 in its own mean field (rewards then do not depend on L)
    alone = BeachBar.create(num_states=4, horizon=3, crowd=0.0)
    want = float(
        policy_value_against(alone, br, pi, None) - policy_value_against(alone, pi, pi, None)
    )
    np.testing.assert_allclose(d, want, rtol=1e-12)
    # a kernel whose rows are the current state distribution mu = L.sum(-1)
    coupled = PMFG.create(
        jnp.array([0.5, 0.5]), 2, lambda h, L, th: jnp.broadcast_to(L.sum(-1), (2, 2, 2)),
        jnp.zeros((2, 2)), num_actions=2,
    )  # fmt: skip
    with pytest.raises(ValueError, match="does not depend on L"):
        conditional_deviation_gain(coupled, jnp.full((2, 2, 2), 0.5), None, 3, 2, jax.random.key(0))


def test_bad_arguments_raise():
    for bad in ([], [0, 10], [10, 10], [3.5], [True]):
        with pytest.raises(ValueError, match="n must"):
            check_ns(bad)
    assert check_ns([100, 10]) == [10, 100]
    with pytest.raises(ValueError, match="reps must"):
        gap_study(lambda n, r, k: (np.zeros(r), None), 0.0, [10], 1, jax.random.key(0))
    with pytest.raises(ValueError, match="level"):
        summarize([10], [np.ones(3)], 0.0, level=1.5)
    with pytest.raises(ValueError, match="stat"):
        bootstrap_exponent([10], [np.ones(3)], 0.0, stat="median")
    with pytest.raises(ValueError, match="one entry per"):
        summarize([10, 20], [np.ones(3)], 0.0)
    game = BeachBar.create(num_states=4, horizon=3)
    with pytest.raises(ValueError, match="estimator"):
        game_sampler(game, jnp.full((3, 4, 3), 1 / 3), None, estimator="exact")
    with pytest.raises(ValueError, match="policy"):
        game_sampler(game, jnp.full((3, 4, 2), 1 / 2), None)


def test_cli_rejects_bad_grid_and_reps(capsys):
    from mfid.cli import main

    assert main(["validate", "--setting", "beach-bar", "--n", "0,10"]) == 2
    assert "n must" in capsys.readouterr().err
    assert main(["validate", "--setting", "beach-bar", "--n", "10,x"]) == 2
    assert main(["validate", "--setting", "beach-bar", "--reps", "1"]) == 2
    assert "reps must" in capsys.readouterr().err


def test_next_batch_stops_for_each_reason_and_sizes_batches():
    g = 1.0
    # resolved: |gap| = 1 against se = 0.1 / sqrt(8)
    assert next_batch(np.full(8, 2.0) + 0.1 * np.arange(8), g, batch=8, max_reps=64,
                      target_se=0.0) == (0, "resolved")  # fmt: skip
    noise = np.tile([-1.0, 1.0], 8)  # mean exactly g, sd ~ 1.03, se ~ 0.26
    assert next_batch(g + noise, g, batch=8, max_reps=64, target_se=0.3) == (0, "target_se")
    assert next_batch(g + noise, g, batch=8, max_reps=16, target_se=0.0) == (0, "max_reps")
    assert next_batch([], g, batch=8, max_reps=64, target_se=0.1) == (8, None)
    # unresolved: the next batch aims at the projected need, at least `batch`, at most doubling
    # the total, a power-of-two multiple of `batch`, never past max_reps
    size, stop = next_batch(g + noise, g, batch=8, max_reps=1000, target_se=0.2)
    need = 1.2 * (noise.std(ddof=1) / 0.2) ** 2 - 16  # about 16.5 more
    assert stop is None and size == 16 and size >= min(need, 16)
    size, _ = next_batch(g + noise, g, batch=8, max_reps=1000, target_se=0.25)
    assert size == 8  # projected 1.2 * 17 - 16 ~ 4.4: one batch
    assert next_batch(g + noise, g, batch=8, max_reps=20, target_se=1e-3)[0] == 4


def _synthetic_sampler(calls):
    """G_N = g + 3/N + N(0, 1/N) per replicate, a deterministic function of the key."""

    def sampler(n, reps, key):
        calls.append((n, reps))
        z = np.asarray(jax.random.normal(key, (reps,)))
        return 2.0 + 3.0 / n + z / np.sqrt(n), None

    return sampler


def test_adaptive_study_rows_say_why_they_stopped_and_fit_only_resolved_rows():
    calls = []
    ns = [4, 16, 64, 1024, 4096]
    study = adaptive_gap_study(_synthetic_sampler(calls), 2.0, ns, jax.random.key(0), batch=8,
                               max_reps=512, target_se=2e-3, n_boot=200)  # fmt: skip
    rows = {r.n: r for r in study.rows}
    assert all(r.stop in STOP_REASONS for r in study.rows)
    assert all(r.resolved == (abs(r.gap) > 3 * r.stderr) for r in study.rows)
    assert rows[4].resolved and rows[4].reps == 8  # bias 0.75 against se 0.18: one batch
    # at N = 4096 the bias 7e-4 is below the target s.e. 2e-3: bounded, not resolved
    assert rows[4096].stop == "target_se" and not rows[4096].resolved
    assert rows[4096].stderr <= 2e-3 and rows[4096].gap_bound == pytest.approx(
        abs(rows[4096].gap) + 2 * rows[4096].stderr)  # fmt: skip
    assert max(r.reps for r in study.rows) <= 512
    # batch sizes: the first is `batch`, then power-of-two multiples of it (few compilations)
    assert all(reps % 8 == 0 for _, reps in calls)
    # the bias exponent is the fit on the resolved rows only; the RMSE fit uses every row
    keep = [r for r in study.rows if r.resolved]
    assert 2 <= len(keep) < len(ns)
    want = fit_exponent([r.n for r in keep], [abs(r.gap) for r in keep],
                        [r.stderr for r in keep])[0]  # fmt: skip
    assert study.exponent == pytest.approx(float(want), rel=1e-12)
    js = study.to_json()
    assert js["exponent_rows"] == [r.n for r in keep] and js["resolve_sigma"] == 3.0
    assert {"stop", "gap_bound", "reps", "resolved"} <= set(js["rows"][0])


def test_adaptive_study_resumes_from_a_partial_state_to_the_same_result():
    import copy

    ns = [8, 64, 512]
    kw = dict(batch=4, max_reps=256, target_se=1e-3, n_boot=50)
    full = adaptive_gap_study(_synthetic_sampler([]), 2.0, ns, jax.random.key(3), **kw)
    snapshots = []

    class Killed(Exception):
        pass

    def on_batch(n, entry, state):
        snapshots.append(copy.deepcopy(state))
        if n == 64 and entry["batches"] == 2 and entry["stop"] is None:
            raise Killed  # a run killed in the middle of N = 64

    with pytest.raises(Killed):
        adaptive_gap_study(_synthetic_sampler([]), 2.0, ns, jax.random.key(3), on_batch=on_batch,
                           **kw)  # fmt: skip
    state = snapshots[-1]
    assert state[8]["stop"] is not None and state[64]["stop"] is None
    calls = []
    resumed = adaptive_gap_study(_synthetic_sampler(calls), 2.0, ns, jax.random.key(3),
                                 state=state, **kw)  # fmt: skip
    assert resumed.to_json() == full.to_json()
    assert all(n != 8 for n, _ in calls)  # the finished row is reused, not re-simulated
    # adaptive_replicates with one batch is gap_study's draw (the same per-N key)
    e = adaptive_replicates(_synthetic_sampler([]), 8, jax.random.key(5), 2.0, batch=6,
                            max_reps=6, target_se=0.0)  # fmt: skip
    want = _synthetic_sampler([])(8, 6, jax.random.key(5))[0]
    np.testing.assert_array_equal(e["values"], want)
    assert e["stop"] in ("resolved", "max_reps") and e["batches"] == 1
