"""Beach bar, a Lipschitz PMFG, and its pricing-design variant.

States ``0..K-1`` on a line, a bar at ``bar`` (default ``K // 2``). Actions move ``-1, 0, +1``
(action indices 0, 1, 2). After the intended move the agent stays on the target with
probability ``p_still`` and otherwise slips one more step left or right (``(1 - p_still) / 2``
each). At the ends of the line mass that would leave the line stays on the end spot
(``torus=True`` wraps around instead). The reward of round ``h`` is::

    r_h(s, a) = - |s - bar| / K - |a| / K - crowd * log mu_h(s) - price(s)

with ``mu_h(s) = sum_a L_h(s, a)`` floored at ``1e-30`` before the log. ``mu0`` is uniform unless
given. Design variant: ``theta = xi in R^K`` sets the price ``price(s) = p_max sigmoid(xi_s)``
(``theta=None``: no price). The designer minimises the congestion objective
``sum_h logsumexp(beta mu_h) / beta`` (:func:`congestion`), a smooth maximum of the crowd.

Example::

    from mfid import BeachBar
    from solvers import solve_omd
    game = BeachBar.create(num_states=20, horizon=10)
    res = solve_omd(game, tau=0.1, eta=1.0, iters=300)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from mfid.checks import check_count, check_distribution, check_positive, check_probability
from mfid.game import Dynamics, MeanFieldGame
from mfid.kernel import Kernel

__all__ = [
    "BEACH_BAR_DESIGN",
    "BEACH_BAR_VALIDATE",
    "BeachBar",
    "BeachBarInstance",
    "Congestion",
    "MOVES",
    "ShiftKernel",
    "congestion",
]

MOVES = (-1, 0, 1)


def _push_shift(x, d: int, torus: bool):
    """``y[s + d] += x[s]`` with clipping at the ends (or wrapping on a torus)."""
    if d == 0:
        return x
    if torus:
        return jnp.roll(x, d)
    zero = jnp.zeros((1,), x.dtype)
    if d > 0:
        y = jnp.concatenate([zero, x[:-1]])
        return y.at[-1].add(x[-1])
    y = jnp.concatenate([x[1:], zero])
    return y.at[0].add(x[0])


def _pull_shift(V, d: int, torus: bool):
    """``y[s] = V[s + d]`` with clipping at the ends (or wrapping on a torus)."""
    if d == 0:
        return V
    if torus:
        return jnp.roll(V, -d)
    if d > 0:
        return jnp.concatenate([V[1:], V[-1:]])
    return jnp.concatenate([V[:1], V[:-1]])


@struct.dataclass
class ShiftKernel(Kernel):
    """Move by the action, then slip one step with probability ``1 - p_still``."""

    p_still: jnp.ndarray
    num_states: int = struct.field(pytree_node=False, default=2)
    torus: bool = struct.field(pytree_node=False, default=False)

    def _noise_push(self, m):
        slip = 0.5 * (1.0 - self.p_still)
        return self.p_still * m + slip * (
            _push_shift(m, -1, self.torus) + _push_shift(m, 1, self.torus)
        )

    def push(self, L):
        m = sum(_push_shift(L[:, i], d, self.torus) for i, d in enumerate(MOVES))
        return self._noise_push(m)

    def pull(self, V):
        slip = 0.5 * (1.0 - self.p_still)
        Vn = self.p_still * V + slip * (
            _pull_shift(V, -1, self.torus) + _pull_shift(V, 1, self.torus)
        )
        return jnp.stack([_pull_shift(Vn, d, self.torus) for d in MOVES], axis=-1)

    def dense(self):
        eye = jnp.eye(self.num_states, dtype=self.p_still.dtype)
        return jax.vmap(self.pull, out_axes=-1)(eye)


@struct.dataclass
class BeachBar(MeanFieldGame):
    """Beach-bar PMFG: ``K`` spots on a line, a bar at spot ``bar``; actions move ``-1, 0, +1``,
    then the agent slips one more step with probability ``1 - p_still``. Reward of round ``h``::

        r_h(s, a) = - |s - bar| / K - |a| / K - crowd * log mu_h(s) - price(s)
        price(s)  = p_max sigmoid(theta_s)          (theta=None: no price)

    with ``mu_h(s) = sum_a L_h(s, a)``. Build it with :meth:`BeachBar.create` (validates the
    parameters)."""

    mu0: jnp.ndarray
    p_still: jnp.ndarray
    crowd: jnp.ndarray
    p_max: jnp.ndarray
    horizon: int = struct.field(pytree_node=False, default=10)
    bar: int = struct.field(pytree_node=False, default=0)
    torus: bool = struct.field(pytree_node=False, default=False)
    num_actions: int = struct.field(pytree_node=False, default=3)

    @classmethod
    def create(
        cls,
        num_states: int = 20,
        horizon: int = 10,
        *,
        bar: int | None = None,
        p_still: float = 0.5,
        crowd: float = 1.0,
        p_max: float = 1.0,
        torus: bool = False,
        mu0=None,
    ) -> BeachBar:
        """``num_states`` spots ``K >= 2`` and ``horizon`` rounds ``H``; the bar at spot ``bar``
        (default ``K // 2``); ``p_still`` the probability of no slip; ``crowd`` the weight of
        ``-log mu_h(s)``; ``p_max`` the largest price; ``torus`` wraps the line around; ``mu0 (K,)``
        the initial distribution (default uniform). ``ValueError`` naming the argument when one is
        out of range."""
        num_states = check_count(num_states, "num_states", 2)
        horizon = check_count(horizon, "horizon")
        bar = num_states // 2 if bar is None else check_count(bar, "bar", 0)
        if not (0 <= bar < num_states):
            raise ValueError(f"bar must lie in [0, num_states), got {bar!r}")
        check_probability(p_still, "p_still")
        check_positive(crowd, "crowd", allow_zero=True)
        check_positive(p_max, "p_max", allow_zero=True)
        dtype = jnp.result_type(float)
        mu0 = (
            jnp.full(num_states, 1.0 / num_states, dtype)
            if mu0 is None
            else jnp.asarray(mu0, dtype)
        )
        check_distribution(mu0, "mu0")
        if mu0.shape != (num_states,):
            raise ValueError(f"mu0 must have shape ({num_states},), got {mu0.shape}")
        f = lambda x: jnp.asarray(x, dtype)  # noqa: E731
        return cls(mu0, f(p_still), f(crowd), f(p_max), int(horizon), int(bar), bool(torus), 3)

    def price(self, theta):
        """Price per spot ``p_max * sigmoid(theta)`` (zeros for ``theta=None``)."""
        if theta is None:
            return jnp.zeros(self.num_states, self.mu0.dtype)
        return self.p_max * jax.nn.sigmoid(theta)

    def base_reward(self, dtype=None):
        """Distance and move-cost part of the reward, ``(S, A)``."""
        K = self.num_states
        s = jnp.arange(K, dtype=dtype or self.mu0.dtype)
        dist = jnp.abs(s - self.bar) / K
        move = jnp.abs(jnp.asarray(MOVES, s.dtype)) / K
        return -dist[:, None] - move[None, :]

    def dynamics(self, h, L, theta, aggregate=()) -> Dynamics:
        mu = L.sum(-1)
        crowd = self.crowd.astype(L.dtype) * jnp.log(jnp.maximum(mu, 1e-30))
        reward = (
            self.base_reward(L.dtype) - crowd[:, None] - self.price(theta).astype(L.dtype)[:, None]
        )
        return Dynamics(
            reward, ShiftKernel(self.p_still.astype(L.dtype), self.num_states, self.torus)
        )

    def dense_kernel(self):
        """The explicit kernel ``P[s, a, s']`` (tests and sampling)."""
        return ShiftKernel(self.p_still, self.num_states, self.torus).dense()


def congestion(flow, beta: float = 50.0):
    """Smooth maximum of the crowd: ``sum_h logsumexp(beta mu_h) / beta`` with ``mu_h = L_h.sum(-1)``."""
    mu = flow.sum(-1)
    return jnp.sum(jax.nn.logsumexp(beta * mu, axis=-1)) / beta


@dataclasses.dataclass(frozen=True)
class Congestion:
    """Designer objective ``g(game, theta, L, info) = sum_h logsumexp(beta mu_h) / beta``
    (minimised): a smooth maximum of the crowd, ``beta > 0``. Hashable by value, so a new
    ``Congestion(50.0)`` is the same static argument of a compiled design step."""

    beta: float = 50.0

    def __post_init__(self):
        check_positive(self.beta, "beta")

    def __call__(self, game, theta, L, info=()):
        return congestion(L, self.beta)


@dataclasses.dataclass(frozen=True)
class BeachBarInstance:
    """A named beach-bar instance with the OMD settings that solve it (checked to converge:
    exploitability below 1e-9 after ``iters`` steps from the uniform policy at every price the
    design visits)."""

    num_states: int = 20
    horizon: int = 10
    crowd: float = 0.1
    p_still: float = 0.5
    p_max: float = 1.0
    beta: float = 50.0
    tau: float = 0.1
    eta: float = 0.3
    iters: int = 300
    val_iters: int = 1000

    def game(self) -> BeachBar:
        return BeachBar.create(
            self.num_states, self.horizon, crowd=self.crowd, p_still=self.p_still, p_max=self.p_max
        )

    def objective(self) -> Congestion:
        return Congestion(self.beta)


BEACH_BAR_DESIGN = BeachBarInstance()
"""The pricing-design reference: K=20, H=10, crowd 0.1, p_max 1, beta 50, tau 0.1, eta 0.3."""
BEACH_BAR_VALIDATE = BeachBarInstance(crowd=1.0)
"""The finite-N validation reference: as :data:`BEACH_BAR_DESIGN` with crowd aversion 1."""
