"""Design loop: beach-bar pricing lowers congestion at a near-equilibrium, the objective sense,
zeroth-order methods and their evaluation counts, checkpoint/resume, refusals, bad arguments."""

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import compiles

from mfid import BeachBar, Congestion
from solvers import Anneal, Exact, Implicit, TwoPoint, design, design_seeds

KW = dict(tau=0.1, eta=0.3, iters=150, val_iters=400, learning_rate=0.3, key=jax.random.key(0))
congestion_objective = Congestion(50.0)


@dataclasses.dataclass(frozen=True)
class NegCongestion:
    beta: float = 50.0

    def __call__(self, game, theta, L, info=()):
        return -Congestion(self.beta)(game, theta, L, info)


neg_congestion_objective = NegCongestion()


def game():
    return BeachBar.create(num_states=10, horizon=5, crowd=0.1)


def test_beach_bar_design_lowers_congestion_at_low_exploitability():
    with compiles() as names:
        res = design(game(), congestion_objective, jnp.zeros(10), maximize=False, steps=15, **KW)
    assert sum("_step_seeds" in n for n in names) == 1  # one compilation for the whole run
    assert res.status == "successful" and res.steps == 15 and res.resumed_from == 0
    assert res.final_value < res.initial_value - 0.02, (res.initial_value, res.final_value)
    assert res.final_exploitability < 0.02
    assert np.all(res.exploitability < 0.02)
    assert res.objective[-1] < res.objective[0]
    np.testing.assert_array_equal(res.evaluations, np.arange(1, 16))
    # the design raises prices near the bar (spot 5) relative to the far ends
    price = np.asarray(game().price(res.theta))
    assert price[5] > price[0] and price[5] > price[-1]
    # a second run with a new starting point reuses the compiled step
    with compiles() as names:
        design(game(), Congestion(50.0), jnp.ones(10), maximize=False, steps=2, **KW)
    assert not [n for n in names if "_step_seeds" in n]
    assert res.final.converged is False and res.final.exploitability < 0.02


def test_maximize_flips_the_sense():
    a = design(game(), congestion_objective, jnp.zeros(10), maximize=False, steps=3, **KW)
    b = design(game(), neg_congestion_objective, jnp.zeros(10), maximize=True, steps=3, **KW)
    np.testing.assert_allclose(np.asarray(a.theta), np.asarray(b.theta), rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.objective, -b.objective, rtol=1e-12)


class _Kill(Exception):
    pass


def test_killed_run_resumes_to_the_same_theta(tmp_path):
    steps = 7
    ckpt = tmp_path / "run"
    # the run under test, with its checkpoint directory; keyword overrides change its settings
    run = functools.partial(design, maximize=False, steps=steps, checkpoint_dir=ckpt)
    ref = design(game(), congestion_objective, jnp.zeros(10), maximize=False, steps=steps, **KW)

    def kill_after_step_4(step, metrics):
        if step == 4:
            raise _Kill

    with pytest.raises(_Kill):
        run(game(), congestion_objective, jnp.zeros(10), checkpoint_every=2,
            callback=kill_after_step_4, **KW)  # fmt: skip
    res = run(game(), congestion_objective, jnp.zeros(10), checkpoint_every=2, **KW)
    assert res.resumed_from == 4  # steps 0..3 were checkpointed, step 4 is recomputed
    np.testing.assert_array_equal(np.asarray(res.theta), np.asarray(ref.theta))
    np.testing.assert_array_equal(res.objective, ref.objective)
    np.testing.assert_array_equal(res.evaluations, ref.evaluations)
    # a finished run resumes to itself; other settings are refused
    again = run(game(), congestion_objective, jnp.zeros(10), **KW)
    assert again.resumed_from == steps
    np.testing.assert_array_equal(np.asarray(again.theta), np.asarray(ref.theta))
    for other in ({"tau": 0.2}, {"key": jax.random.key(1)}):
        with pytest.raises(ValueError, match="other settings"):
            run(game(), congestion_objective, jnp.zeros(10), **{**KW, **other})
    # the game's parameters and the objective are part of the fingerprint
    with pytest.raises(ValueError, match="other settings"):
        run(BeachBar.create(num_states=10, horizon=5, crowd=0.5), congestion_objective,
            jnp.zeros(10), **KW)  # fmt: skip
    with pytest.raises(ValueError, match="other settings"):
        run(game(), Congestion(10.0), jnp.zeros(10), **KW)
    # a corrupt checkpoint is refused with a one-line message naming it
    path = ckpt / "design_checkpoint.npz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot be read"):
        run(game(), congestion_objective, jnp.zeros(10), **KW)


def test_zeroth_order_methods_count_evaluations():
    zo = design(
        game(), congestion_objective, jnp.zeros(10), maximize=False, steps=4,
        estimator=TwoPoint(u=0.05, directions=2), **{**KW, "key": jax.random.key(3)},
    )  # fmt: skip
    np.testing.assert_array_equal(zo.evaluations, 5 * np.arange(1, 5))
    assert np.all(zo.grad_norm > 0)
    an = design(
        game(), congestion_objective, jnp.zeros(10), maximize=False, steps=6,
        estimator=Anneal(sigma=1.0), warm_start=False, **{**KW, "key": jax.random.key(4)},
    )  # fmt: skip
    np.testing.assert_array_equal(an.evaluations, 3 * np.arange(1, 7))
    # without warm start ANNEAL's accepted objective never increases
    assert np.all(np.diff(an.objective) <= 1e-15)


@pytest.mark.parametrize("method", ["amid", "zeroth-adam", "anneal"])
def test_float32_design_steps_follow_the_float64_run(method):
    """Mixed precision: float32 OMD and gradients, float64 parameters, optimiser state and
    evaluations. The float32 run follows the float64 one to float32 accuracy."""
    args = dict(maximize=False, steps=6, estimator=method, **{**KW, "key": jax.random.key(3)})
    ref = design(game(), congestion_objective, jnp.zeros(10), **args)
    low = design(game(), congestion_objective, jnp.zeros(10), precision="float32", **args)
    assert np.asarray(low.theta).dtype == np.float64
    np.testing.assert_allclose(low.objective, ref.objective, rtol=2e-5)
    np.testing.assert_allclose(np.asarray(low.theta), np.asarray(ref.theta), rtol=0, atol=1e-4)
    assert abs(low.final_value - ref.final_value) < 1e-5
    # asking for the game's own precision is the same run, bit for bit
    same = design(game(), congestion_objective, jnp.zeros(10), precision="float64", **args)
    np.testing.assert_array_equal(np.asarray(same.theta), np.asarray(ref.theta))


def test_implicit_design_refuses_an_unconverged_equilibrium():
    with pytest.raises(ValueError, match="omd_not_converged"):
        design(
            game(), congestion_objective, jnp.zeros(10), maximize=False, steps=2,
            estimator=Exact(Implicit()), **KW,
        )  # fmt: skip
    res = design(game(), congestion_objective, jnp.zeros(10), maximize=False, steps=3,
                 estimator="implicit", throw=False, **KW)  # fmt: skip
    assert res.status == "omd_not_converged" and res.steps == 1
    np.testing.assert_array_equal(np.asarray(res.theta), np.zeros(10))  # it did not move


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(estimator="newton"), "method"),
        (dict(key=None), "key"),
        (dict(steps=0), "steps"),
        (dict(maximize="no"), "maximize"),
        (dict(checkpoint_every=0), "checkpoint_every"),
        (dict(estimator=lambda: TwoPoint(u=0.0)), "u"),
        (dict(estimator=lambda: TwoPoint(directions=0)), "directions"),
        (dict(theta0=jnp.full(10, jnp.inf)), "theta0"),
        (dict(eta=-1.0), "eta"),
        (dict(precision="float16"), "precision"),
        (dict(batching="pmap"), "batching"),
        (dict(devices=0), "devices"),
        (dict(devices=2), "devices must divide"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        args = dict(maximize=False, steps=2, **KW)
        args.update({k: v() if callable(v) and k == "estimator" else v for k, v in kwargs.items()})
        theta0 = args.pop("theta0", jnp.zeros(10))
        design(game(), congestion_objective, theta0, **args)


def test_keep_best_returns_the_best_evaluated_iterate():
    from solvers import design_objective

    kw = {**KW, "learning_rate": 3.0, "warm_start": False}  # large steps overshoot
    last = design(game(), congestion_objective, jnp.zeros(10), maximize=False, steps=8, **kw)
    best = design(
        game(), congestion_objective, jnp.zeros(10), maximize=False, steps=8, select="surrogate",
        **kw,
    )  # fmt: skip
    np.testing.assert_array_equal(last.objective, best.objective)  # same trajectory
    assert last.selected == "last" and best.selected == "top-1"
    k = int(np.argmin(best.objective))
    assert best.best_value == pytest.approx(best.objective[k], rel=1e-12)
    assert best.objective[-1] > best.objective[k]  # the last iterate is not the best one
    g_t = design_objective(game(), congestion_objective, best.theta, tau=0.1, eta=0.3, iters=150)
    # (the step starts from the uniform policy without warm start)
    assert float(g_t) == pytest.approx(best.best_value, rel=1e-12)
    assert best.final_value < last.final_value
    # select="converged" solves the last iterate and the keep best ones to val_tol
    conv = design(game(), congestion_objective, jnp.zeros(10), maximize=False, steps=8,
                  select="converged", val_tol=1e-10, **{**kw, "val_iters": 5000})  # fmt: skip
    assert [c["candidate"] for c in conv.candidates] == ["last", "top-1", "top-2", "top-3"]
    assert all(c["status"] == "successful" and c["exploitability"] <= 1e-10
               for c in conv.candidates)  # fmt: skip
    assert conv.final_value == pytest.approx(min(c["value"] for c in conv.candidates), rel=1e-12)
    assert conv.final.converged and float(conv.final.exploitability) <= 1e-10


@pytest.mark.parametrize("batching", ["vmap", "map"])
def test_seeds_batched_in_one_program_equal_one_at_a_time(batching):
    thetas = jnp.stack([jnp.zeros(10), 0.3 * jnp.ones(10), -0.2 * jnp.ones(10)])
    keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in range(3)])
    kw = {k: v for k, v in KW.items() if k != "key"}
    with compiles() as names:
        batch = design_seeds(game(), congestion_objective, thetas, keys, maximize=False, steps=4,
                             batching=batching, **kw)  # fmt: skip
    assert sum("_step_seeds" in n for n in names) == 1
    for s in range(3):
        one = design(game(), congestion_objective, thetas[s], maximize=False, steps=4,
                     **{**kw, "key": jax.random.key(s)})  # fmt: skip
        np.testing.assert_allclose(np.asarray(batch[s].theta), np.asarray(one.theta), rtol=0,
                                   atol=1e-12)  # fmt: skip
        np.testing.assert_allclose(batch[s].objective, one.objective, rtol=1e-12)
        assert batch[s].final_value == pytest.approx(one.final_value, rel=1e-12)


_TWO_DEVICES = """
import os
os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=2"
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
from mfid import BeachBar, Congestion
from solvers import design_seeds
assert jax.local_device_count() == 2
game = BeachBar.create(num_states=10, horizon=5, crowd=0.1)
thetas = jnp.stack([0.1 * s * jnp.ones(10) for s in range(4)])
keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in range(4)])
kw = dict(maximize=False, steps=2, tau=0.1, eta=0.3, iters=50, val_iters=100, learning_rate=0.3)
runs = {(b, d): design_seeds(game, Congestion(50.0), thetas, keys, batching=b, devices=d, **kw)
        for b, d in (("vmap", 1), ("map", 2))}
ref = runs["vmap", 1]
for (b, d), rs in runs.items():
    for r, q in zip(rs, ref):
        np.testing.assert_allclose(np.asarray(r.theta), np.asarray(q.theta), rtol=0, atol=1e-12)
        np.testing.assert_allclose(r.objective, q.objective, rtol=1e-12)
try:
    design_seeds(game, Congestion(50.0), thetas[:3], keys[:3], devices=2, **kw)
except ValueError as err:
    assert "devices must divide the number of seeds (3)" in str(err), err
else:
    raise AssertionError("devices=2 with 3 seeds was accepted")
print("ok")
"""


def test_seeds_split_over_two_host_devices_equal_one_device():
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}
    out = subprocess.run([sys.executable, "-c", _TWO_DEVICES], capture_output=True, text=True,
                         env=env)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


@pytest.mark.parametrize("tau_start", [None, 0.4])
def test_backtracking_follows_a_hand_written_reference(tau_start):
    """Step rejection (and the staged temperature continuation) against the rule written out
    with optax and value_and_grad: the same surrogate trace and final theta; with a step too
    large for the problem it rejects, and a new temperature restarts the comparison."""
    import optax

    from solvers import Backtracking, value_and_grad

    bt = Backtracking(shrink=0.5, grow=1.5)
    kw = {k: v for k, v in KW.items() if k not in ("learning_rate", "val_iters", "key", "tau")}
    lr, steps, tau, stages, tau_steps = 3.0, 12, KW["tau"], 2, 6
    res = design(game(), congestion_objective, jnp.zeros(10), maximize=False, steps=steps,
                 learning_rate=lr, backtrack=bt, warm_start=False, val_iters=50, tau=tau,
                 tau_start=tau_start, tau_steps=tau_steps, tau_stages=stages,
                 key=jax.random.key(0), **kw)  # fmt: skip

    def tau_at(k):  # stages of tau_steps / stages steps, geometric from tau_start to tau
        if tau_start is None:
            return tau
        f = min(1.0, (k * stages // tau_steps) / stages)
        return tau_start ** (1 - f) * tau**f

    opt = optax.adam(lr)
    theta, state = jnp.zeros(10), opt.init(jnp.zeros(10))
    anchor, a_value, a_step, scale = theta, np.inf, jnp.zeros(10), 1.0
    values, rejected = [], 0
    for k in range(steps):
        if k > 0 and tau_at(k) != tau_at(k - 1):
            a_value = np.inf
        v, g, _ = value_and_grad(game(), congestion_objective, theta, tau=tau_at(k), **kw)
        values.append(float(v))
        if float(v) <= a_value:
            upd, state = opt.update(g, state, theta)
            anchor, a_value, a_step = theta, float(v), upd
            scale = min(1.0, scale * 1.5)
        else:
            scale, rejected = scale * 0.5, rejected + 1
        theta = anchor + scale * a_step
    assert rejected >= 2
    np.testing.assert_allclose(res.objective, values, rtol=1e-10, atol=1e-12)
    assert res.selected == "last"
    np.testing.assert_allclose(np.asarray(res.theta), np.asarray(theta), rtol=1e-9, atol=1e-12)
    if tau_start is not None:  # three temperatures: 0.4, 0.2, then 0.1
        assert len({round(tau_at(k), 12) for k in range(steps)}) == 3


def test_backtracking_is_checked():
    from solvers import Backtracking

    for kw, name in (({"shrink": 1.0}, "shrink"), ({"grow": 0.5}, "grow"),
                     ({"tolerance": -1.0}, "tolerance")):  # fmt: skip
        with pytest.raises(ValueError, match=name):
            Backtracking(**kw)
    with pytest.raises(ValueError, match="tau_start"):
        design(game(), congestion_objective, jnp.zeros(10), maximize=False, steps=2,
               tau_start=-1.0, **KW)  # fmt: skip
    with pytest.raises(ValueError, match="backtrack"):
        design(game(), congestion_objective, jnp.zeros(10), maximize=False, steps=2,
               backtrack=0.5, **KW)  # fmt: skip
