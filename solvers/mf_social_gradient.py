"""The mean-field social-gradient designer (the mean-field analogue of
:mod:`solvers.social_gradient`).

The incentive is an additive tax ``p_h(s, a)`` on every (round, state, action) of a mean-field
game (:class:`AdditiveIncentive`: the reward becomes ``R_h(s, a, L_h) - p_h(s, a)``, the tax
convention of the static games; a negative entry is a subsidy). The designer minimises
``g(game, theta, L, info)`` of the population flow and knows only ``g`` and the current
population ``L``: it moves the tax along the social gradient ``grad_L g`` while the population
learns by OMD (fast) and the tax moves slowly::

    zeta <- K OMD steps at the tax p from the current zeta (warm start; zeta_0 = 0)
    L    =  Lambda(softmax zeta | p)
    G    =  grad_L g(game, theta, L, info)                       (H, S, A)
    G_h  <- G_h - mean_{s,a} G_h        (center=True; a tax constant over (s, a) in one round
                                         shifts every agent's reward equally: no effect)
    p    <- Pi(p + beta G)

No derivative of the equilibrium (or of OMD) is ever taken: the designer uses the objective's
gradient in ``L`` at the observed population, the mean-field counterpart of
``p <- p + beta grad S(x)`` (:func:`solvers.social_gradient.two_timescale`). With the beach bar's
congestion ``sum_h logsumexp(beta_c mu_h) / beta_c`` the centred gradient vanishes exactly when
every ``mu_h`` is uniform, the uniform-crowd minimum.

The loop is one jitted ``lax.scan`` over incentive steps; progress is reported only through
``callback(step, metrics)`` (``jax.debug.callback`` every ``callback_every`` steps).

Example::

    from mfid.games.beach_bar import BEACH_BAR_DESIGN as I
    from solvers.mf_social_gradient import mf_social_gradient
    res = mf_social_gradient(I.game(), I.objective(), tau=I.tau, eta=I.eta, beta=2.0,
                             inner=10, steps=300)
    print(res.objective[-1], res.omd_steps)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from mfid.checks import check_count, check_positive, check_theta
from mfid.flow import rollout
from mfid.game import Dynamics, MeanFieldGame
from mfid.values import exploitability
from solvers.omd import omd_update, policy_from_logits
from solvers.results import RESULTS

__all__ = ["AdditiveIncentive", "MFSocialGradientResult", "mf_social_gradient"]


@struct.dataclass
class AdditiveIncentive(MeanFieldGame):
    """``base`` with an additive tax on (round, state, action): its ``theta`` is ``p (H, S, A)``
    and its reward ``R_h(s, a, L_h) - p_h(s, a)``; the base game runs at ``base_theta``
    (kernels, aggregates and ``info`` unchanged).

    Example::

        game = AdditiveIncentive(BeachBar.create(20, 10, crowd=0.1))
        res = solve_omd(game, jnp.zeros((10, 20, 3)), tau=0.1, eta=0.3, iters=300)
    """

    base: Any
    base_theta: Any = None

    @property
    def mu0(self):
        return self.base.mu0

    @property
    def horizon(self) -> int:
        return self.base.horizon

    @property
    def num_actions(self) -> int:
        return self.base.num_actions

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape ``(H, S, A)`` of the tax."""
        return (self.horizon, self.num_states, self.num_actions)

    def initial_aggregate(self, theta):
        return self.base.initial_aggregate(self.base_theta)

    def dynamics(self, h, L, theta, aggregate=()) -> Dynamics:
        dyn = self.base.dynamics(h, L, self.base_theta, aggregate)
        return dyn.replace(reward=dyn.reward - theta[h].astype(dyn.reward.dtype))


@dataclasses.dataclass(frozen=True)
class MFSocialGradientResult:
    """Outcome of :func:`mf_social_gradient`.

    ``p (H, S, A)``: the final tax; ``logits``: OMD's final logits (warm start for an
    evaluation). Per incentive step (length ``steps``): ``objective`` = ``g`` at the current
    population (OMD's transient, not a converged value), ``exploitability`` of the current
    policy at the current tax, ``grad_norm`` of the (centred) social gradient. ``omd_steps``:
    OMD steps taken in all (``steps * inner``); ``status``: a
    :data:`~solvers.results.RESULTS` name; ``seconds``: wall time, compilation included.
    """

    p: np.ndarray
    logits: np.ndarray
    objective: np.ndarray
    exploitability: np.ndarray
    grad_norm: np.ndarray
    omd_steps: int
    status: str
    seconds: float
    settings: dict = dataclasses.field(default_factory=dict)


@partial(
    jax.jit,
    static_argnames=("objective", "inner", "steps", "center", "callback", "callback_every"),
)
def _mf_loop(
    game,
    p0,
    zeta0,
    lower,
    upper,
    tau,
    eta,
    beta,
    *,
    objective,
    inner,
    steps,
    center,
    callback,
    callback_every,
):
    def omd(z, p):
        return lax.fori_loop(0, inner, lambda _, z: omd_update(game, p, z, tau, eta), z)

    def step(carry, k):
        p, zeta = carry
        zeta = omd(zeta, p)
        pi, _ = policy_from_logits(zeta)
        L, dyn = rollout(game, pi, p)
        value, G = jax.value_and_grad(lambda L: objective(game.base, game.base_theta, L, dyn.info))(
            L
        )
        if center:
            G = G - jnp.mean(G, axis=(1, 2), keepdims=True)
        p_new = jnp.clip(p + beta * G, lower, upper)
        expl = exploitability(game, pi, p, tau)
        gnorm = jnp.sqrt(jnp.sum(G**2))
        if callback is not None:
            lax.cond(
                (k % callback_every) == 0,
                lambda: jax.debug.callback(
                    callback, k, {"objective": value, "exploitability": expl, "grad_norm": gnorm}
                ),
                lambda: None,
            )
        return (p_new, zeta), (value, expl, gnorm)

    (p, zeta), trace = lax.scan(step, (p0, zeta0), jnp.arange(steps))
    return p, zeta, trace


def mf_social_gradient(
    game: MeanFieldGame,
    objective: Callable,
    p0=None,
    *,
    base_theta=None,
    tau: float,
    eta: float,
    beta: float,
    inner: int = 10,
    steps: int = 300,
    center: bool = True,
    bound: float | None = None,
    zeta0=None,
    callback: Callable[[Any, dict], None] | None = None,
    callback_every: int = 10,
) -> MFSocialGradientResult:
    """Run the mean-field social-gradient designer (module docstring) on ``game`` at
    ``base_theta``, minimising ``objective(game, base_theta, L, info)`` (a module-level function
    or a frozen dataclass such as :class:`mfid.games.beach_bar.Congestion`; it is a static
    argument of the compiled loop).

    ``p0``: initial tax ``(H, S, A)`` (zeros); ``tau``, ``eta``: OMD; ``beta``: incentive step;
    ``inner``: OMD steps per incentive step; ``steps``: incentive steps; ``center``: remove each
    round's mean from the social gradient; ``bound``: the safe set ``P_c = [-bound, bound]^(H S A)``
    (``None``: unbounded); ``zeta0``: OMD's initial logits (zeros, the uniform policy). The
    returned ``objective`` trace is OMD's transient; evaluate the final tax at a converged
    equilibrium (``solve_omd(AdditiveIncentive(game, base_theta), res.p, tol=...)``) to report
    it.
    """
    if not isinstance(game, MeanFieldGame):
        raise ValueError(f"game must be a MeanFieldGame, got {type(game).__name__}")
    if not callable(objective):
        raise ValueError("objective must be callable as objective(game, theta, L, info)")
    check_positive(tau, "tau", allow_zero=True)
    check_positive(eta, "eta")
    check_positive(beta, "beta")
    inner = check_count(inner, "inner")
    steps = check_count(steps, "steps")
    callback_every = check_count(callback_every, "callback_every")
    if not isinstance(center, bool):
        raise ValueError(f"center must be True or False, got {center!r}")
    wgame = AdditiveIncentive(game, base_theta)
    shape = wgame.shape
    dtype = game.dtype
    p0 = jnp.zeros(shape, dtype) if p0 is None else jnp.asarray(p0, dtype)
    if p0.shape != shape:
        raise ValueError(f"p0 must have shape (H, S, A) = {shape}, got {p0.shape}")
    check_theta(p0, "p0")
    zeta0 = jnp.zeros(shape, dtype) if zeta0 is None else jnp.asarray(zeta0, dtype)
    if zeta0.shape != shape:
        raise ValueError(f"zeta0 must have shape (H, S, A) = {shape}, got {zeta0.shape}")
    if bound is None:
        lower, upper = -jnp.inf, jnp.inf
    else:
        check_positive(bound, "bound")
        lower, upper = -float(bound), float(bound)
    wgame.validate(p0)
    f = lambda v: jnp.asarray(v, dtype)  # noqa: E731
    t0 = time.perf_counter()
    p, zeta, (value, expl, gnorm) = _mf_loop(
        wgame, jnp.clip(p0, lower, upper), zeta0, f(lower), f(upper), f(tau), f(eta), f(beta),
        objective=objective, inner=inner, steps=steps, center=center, callback=callback,
        callback_every=callback_every,
    )  # fmt: skip
    p, zeta, value, expl, gnorm = jax.block_until_ready((p, zeta, value, expl, gnorm))
    seconds = time.perf_counter() - t0
    finite = bool(np.all(np.isfinite(np.asarray(p))) and np.all(np.isfinite(np.asarray(value))))
    status = RESULTS.max_iterations.name if finite else RESULTS.nonfinite.name
    settings = {"tau": tau, "eta": eta, "beta": beta, "inner": inner, "steps": steps,
                "center": center, "bound": bound}  # fmt: skip
    return MFSocialGradientResult(
        p=np.asarray(p),
        logits=np.asarray(zeta),
        objective=np.asarray(value),
        exploitability=np.asarray(expl),
        grad_norm=np.asarray(gnorm),
        omd_steps=steps * inner,
        status=status,
        seconds=seconds,
        settings=settings,
    )
