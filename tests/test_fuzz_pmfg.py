"""Property test (hypothesis): random small PMFGs — valid and hostile tables, callables that
create mass away from the validation probes, bad hyperparameters and parameters — through
``PMFG.create`` -> ``solve_omd`` -> ``value_and_grad`` -> two ``design`` steps. Every outcome is a
``ValueError`` naming its argument, or a result whose status tells the truth: under
``successful``/``max_iterations`` every number is finite, the flow keeps mass 1, the
exploitability is not negative beyond rounding and (with a tolerance) is re-evaluated within it.

The example count and seed come from the ``mfid`` hypothesis profile (tests/conftest.py); the
outcome counts by category are printed at the end (``pytest -s``)."""

from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mfid import PMFG
from mfid.values import exploitability
from solvers import design, solve_omd, value_and_grad
from solvers.results import RESULTS

OUTCOMES: Counter = Counter()
ARGUMENTS = ("mu0", "transition", "reward", "horizon", "num_actions", "action_mask", "theta",
             "tau", "eta", "iters", "tol", "key", "steps")  # fmt: skip
OK = (RESULTS.successful.name, RESULTS.max_iterations.name)
S_CHOICES, A, H, ITERS = (3,), 2, 3, 12  # one shape: every example reuses the compiled programs


def congestion(game, theta, L, info):
    """The objective: the population's crowding ``sum L^2`` (module level: hashable)."""
    return jnp.sum(L**2)


def theta_reward(h, L, theta):
    """``R[s, a] = theta[s] [a = 0] - L[s, a]``: the parameter pays action 0, crowding costs."""
    S = L.shape[0]
    pay = jnp.broadcast_to(theta[:, None], (S, A)) * (jnp.arange(A) == 0)[None, :]
    return pay - L


def leaky_transition(h, L, theta):
    """Uniform rows, scaled by 1.5 where state 0 holds a third of the population (within 1e-3):
    after round 0 it always does (the rows are uniform), at the validation probes (``mu0`` and
    mixtures with it) only by chance: mass created away from the probes."""
    S = L.shape[0]
    leak = jnp.abs(jnp.sum(L[0]) - 1.0 / S) < 1e-3
    return jnp.full((S, A, S), 1.0 / S) * (1.0 + 0.5 * leak)


BAD = {  # one hostile value per argument (an example corrupts at most one)
    "mu0": ["negative", "off", "nan", "str"],
    "transition": ["rows1.5", "negative", "nan", "str"],
    "kernel": ["leaky"],
    "mask": ["empty", "shape"],
    "theta": ["shape", "nan", "int", "dict", "str", "none"],
    "tau": [-1.0, float("nan"), "0.1", None, True],
    "eta": [0.0, -1.0, float("inf"), None],
    "iters": [0, 2.7, True, None],
    "tol": [float("inf"), float("nan"), -1.0],
}


@st.composite
def cases(draw):
    bad = draw(st.sampled_from([None] * 8 + sorted(BAD)))
    how = draw(st.sampled_from(BAD[bad])) if bad else None
    S = draw(st.sampled_from(S_CHOICES))
    w = np.asarray(draw(st.lists(st.floats(0.05, 1.0), min_size=S, max_size=S)))
    mu0 = w / w.sum()
    if bad == "mu0":
        mu0 = {"negative": np.r_[mu0[:-1] + 5e-7 / (S - 1), -5e-7], "off": mu0 * 1.01,
               "nan": np.r_[np.nan, mu0[1:]], "str": "uniform"}[how]  # fmt: skip
    rows = np.asarray(draw(st.lists(st.floats(0.01, 1.0), min_size=S * A * S,
                                    max_size=S * A * S))).reshape(S, A, S)  # fmt: skip
    P = rows / rows.sum(-1, keepdims=True)
    if bad == "transition":
        P = P.copy()
        if how == "rows1.5":
            P = P * 1.5
        elif how == "negative":
            P[0, 0, 0], P[0, 0, -1] = P[0, 0, 0] + P[0, 0, -1] + 0.1, -0.1
        elif how == "nan":
            P[0, 0, 0] = np.nan
        elif how == "str":
            P = P.astype(str)
    transition = leaky_transition if bad == "kernel" else P
    scale = draw(st.sampled_from([1.0, 1.0, 1e3, 1e30]))
    R = scale * np.asarray(draw(st.lists(st.floats(-1, 1), min_size=S * A, max_size=S * A)))
    reward = theta_reward if draw(st.booleans()) else R.reshape(S, A)
    mask = None
    if bad == "mask" or draw(st.integers(0, 3)) == 0:
        mask = np.ones((S, A), bool)
        mask[0, 1] = False
        if how == "empty":
            mask[0, 0] = False
        elif how == "shape":
            mask = mask[:, :1]
    theta = np.asarray(draw(st.lists(st.floats(-2, 2), min_size=S, max_size=S)))
    if bad == "theta":
        theta = {"shape": np.zeros(S + 1), "nan": np.full(S, np.nan), "int": np.zeros(S, np.int32),
                 "dict": {"w": np.zeros(S)}, "str": "0.1", "none": None}[how]  # fmt: skip
    tau = draw(st.sampled_from([1e-3, 0.1, 1.0, 5.0, 0.0])) if bad != "tau" else how
    eta = draw(st.sampled_from([0.3, 1.0, 3.0, 30.0, 1e6])) if bad != "eta" else how
    iters = ITERS if bad != "iters" else how
    tol = draw(st.sampled_from([None, 1e-8, 1e-3])) if bad != "tol" else how
    return dict(mu0=mu0, transition=transition, reward=reward, mask=mask, theta=theta,
                tau=tau, eta=eta, iters=iters, tol=tol, scale=scale, bad=bad)  # fmt: skip


def _named(err: ValueError) -> str:
    text = str(err)
    names = [a for a in ARGUMENTS if a in text]
    assert names, f"a ValueError that names no argument: {text!r}"
    assert "\n" not in text.strip(), text
    return names[0]


def _finite(*trees) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree.leaves(trees))


def _check_flow(L, status):
    mass = np.abs(np.asarray(L).sum(axis=(1, 2)) - 1.0).max()
    if status in OK:
        assert mass <= 1e-6, f"status {status} with a flow of mass error {mass:.3g}"


def _ignorable(c) -> bool:
    """A parameter the game never reads (dense reward) may be ``None`` or any finite numbers."""
    theta = c["theta"]
    return (
        c["bad"] == "theta"
        and not callable(c["reward"])
        and not isinstance(theta, str)
        and _finite(theta)
    )


def _leaky(c) -> bool:
    """A mass-creating kernel may pass validation (the status must then tell)."""
    return c["transition"] is leaky_transition


def _run(c):
    """One case through the pipeline; returns the outcome's category."""
    stage = "create"
    try:
        game = PMFG.create(c["mu0"], H, c["transition"], c["reward"], num_actions=A,
                           action_mask=c["mask"])  # fmt: skip
        stage = "solve"
        kw = dict(tau=c["tau"], eta=c["eta"], iters=c["iters"])
        res = solve_omd(game, c["theta"], tol=c["tol"], **kw)
        assert c["bad"] is None or _ignorable(c) or _leaky(c), (
            f"accepted {c['bad']}={c[c['bad']]!r}"
        )
        status = res.status_name
        rounding = 1e-9 * (1.0 + c["scale"])
        if status in OK:
            assert _finite(res.policy, res.flow, res.logits, res.exploitability), status
            assert float(res.exploitability) >= -rounding, float(res.exploitability)
        _check_flow(res.flow, status)
        if status == RESULTS.successful.name:
            assert c["tol"] is not None and abs(float(res.exploitability)) <= c["tol"]
            again = float(exploitability(game, res.policy, c["theta"], float(c["tau"])))
            assert abs(again) <= c["tol"] + rounding, (again, c["tol"])
        stage = "gradient"
        value, grad, aux = value_and_grad(game, congestion, c["theta"], throw=False, **kw)
        grad_status = aux.status_name
        if grad_status == RESULTS.successful.name:
            assert _finite(value, grad, aux.exploitability, aux.fixed_point_residual)
        stage = "design"
        d = design(game, congestion, c["theta"], key=0, maximize=False, steps=2,
                   val_iters=c["iters"], throw=False, **kw)  # fmt: skip
    except ValueError as err:
        if stage != "create":
            assert c["bad"] is not None, f"valid input refused at {stage}: {err}"
        if stage in ("gradient", "design"):  # refused after a solve accepted it: the parameter
            assert c["bad"] == "theta", (stage, err)
        return f"{stage} refused ({_named(err)})"
    if d.status == RESULTS.successful.name:
        assert _finite(d.theta, d.objective, d.grad_norm)
    if d.final.status_name in OK:
        assert _finite(d.final_value, d.final.flow, d.final.exploitability)
    _check_flow(d.final.flow, d.final.status_name)
    return f"solve {status} / gradient {grad_status} / design {d.status}"


@given(cases())
def test_every_outcome_is_a_named_error_or_an_honest_status(c):
    try:
        OUTCOMES[_run(c)] += 1
    except TypeError as err:  # pragma: no cover - the failure the test exists to catch
        pytest.fail(f"TypeError: {err}")


def test_print_outcome_counts():
    """The fuzz summary (run after the property test in this file)."""
    total = sum(OUTCOMES.values())
    print(f"\nfuzz: {total} examples")
    for k, v in sorted(OUTCOMES.items(), key=lambda kv: -kv[1]):
        print(f"  {v:3d}  {k}")
