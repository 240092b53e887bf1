"""Mean-field mini-GTB: the small Gather-Trade-Build economy as a PMFG.

A continuum of agents with build skills drawn from a skill distribution plays the economy of
:mod:`mfid.games.gtb`. One round of the PMFG is one **tax period** (``H = 10`` rounds of
``period = 10`` steps): with ``p_gather = 1``, no scarcity and no market the economy is
deterministic given the actions, taxes and rebates fall only at period ends and the utility is
additive over steps, so an agent's choice within a period is exactly a *period plan*
``(n, m')`` of :data:`mfid.games.gtb.PLANS` (build ``n`` houses, end holding ``m'`` resources),
executed step by step in the finite economy by :func:`mfid.games.gtb.plan_action`.

**State** ``s = (k, m, j)``, flattened as ``(k * 3 + m) * G + j``:

* ``k``: skill type, ``K`` types with skills ``s_k`` and masses ``p_k`` (default: ``K``
  equal-mass quantile bins of the published skill distribution, each at its conditional mean skill,
  :func:`skill_types`; or any given skills and masses);
* ``m``: resources held, 0..2 (at most one wood and one stone, which is all plans ever hold;
  wood and stone are symmetric, so only their number matters);
* ``j``: the agent's *earnings* ``y`` (start coin plus own after-tax income) on the grid
  ``y_j = start_coin + j * grid_step``, ``j = 0..G-1``, up to ``start_coin + floor(H period / 3)
  max_k s_k`` (the most any agent can earn: a house takes at least three steps).

An agent's coin is ``C = y + A_h`` where ``A_h = sum_{h' < h} R_{h'}`` is the rebate received
so far, the same for every agent: a population aggregate carried by the game
(:meth:`GTBMeanField.initial_aggregate` = 0, ``Dynamics.aggregate = A_{h+1}``). ``mu0``: type
``k`` with mass ``p_k`` at ``m = 0``, ``y = start_coin``.

**Actions**: the 15 plans, index ``3 n + m'``. A plan is feasible from ``m`` iff
``2n - m + m' >= 0`` and ``3n - m + m' <= period``; an infeasible plan rests (no labour, no
income, ``m`` kept) and is penalised by ``-penalty`` (a soft action mask: at ``tau = 0.1`` and
``penalty = 100`` its equilibrium probability is below ``e^-900``; the finite economy's executor
rests on it too).

**Round** ``h`` with the population's state-action distribution ``L_h``, rates ``tau_b``::

    z(k, a)        = n s_k                                      period income (pre-tax)
    t(k, j, a)     = min(T(z), y_j + A_h + z)                   tax, capped at coin
    R_h            = sum_{s,a} L_h(s, a) t(s, a)                rebate: the mean tax (from L_h)
    y'             = y_j + z - t                                 next earnings (off-grid)
    r_h(s, a, L_h) = U(y' + A_h + R_h) - U(y_j + A_h) - kappa labour(m, a) - penalty [infeasible]

with ``U(C) = (C^(1 - eta) - 1) / (1 - eta)`` and ``labour = 2 (2n - m + m') + 10 n``. The next
state is ``(k, m', y')`` with ``y'`` *split* between its two neighbouring grid points
``y_lo <= y' < y_hi`` with masses ``(y_hi - y')/step`` and ``(y' - y_lo)/step`` (mean
preserving; :class:`GridKernel`). The reward depends on the population through the rebate;
with rates in ``[0, 1]`` the cap never binds (``T(z) <= z``), so the kernel does not depend on
``L``.

**Design**: ``theta`` = seven bracket rate logits, ``tau_b = sigmoid(theta_b)``
(``sigmoid=False``: ``theta`` are the rates themselves, e.g. for the free market ``0``). The
designer objective (:class:`ProductivityEquality`) is the mean-field limit of the per-capita
planner objective, productivity x equality / N, on the final coin distribution
``mu_H = push(L_{H-1})`` with coin ``y_j + A_H``::

    g(theta, L) = E[C] (1 - Gini),   Gini = E|C - C'| / (2 E[C])   =>   g = E[C] - E|C - C'| / 2

(:func:`mean_field_metrics` also gives the per-type labour, income, tax and coin). With the
brackets of :mod:`mfid.games.gtb` a period income is at most ``4 max s_k <= 120``, so the top three
brackets (from 160.725) are never reached: their rates have no effect.

Example::

    import jax.numpy as jnp
    from mfid.games.gtb_mf import GTBMeanField, ProductivityEquality
    from solvers import solve_omd
    game = GTBMeanField.create(num_types=4)
    theta = jnp.zeros(7)                                  # all rates 0.5
    res = solve_omd(game, theta, tau=0.1, eta=5.0, iters=2000, tol=1e-10)
    ProductivityEquality()(game, theta, res.flow)
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from mfid.checks import check_count, check_distribution, check_policy, check_positive
from mfid.finite import inverse_cdf, replicate_batch
from mfid.game import Dynamics, MeanFieldGame
from mfid.games.gtb import (
    BUILD_LABOUR,
    GATHER_LABOUR,
    MAX_HELD,
    PLANS,
    US_FEDERAL_BRACKETS,
    MiniGTB,
    economy_metrics,
    rollout_plans,
    skill_quantile,
    tax_schedule,
)
from mfid.kernel import Kernel

__all__ = [
    "GTBMeanField",
    "GridKernel",
    "MeanFieldMetrics",
    "MeanFieldPlanner",
    "ProductivityEquality",
    "SampledEconomy",
    "mean_field_metrics",
    "productivity_equality",
    "sample_economy",
    "skill_types",
]

NUM_HELD = MAX_HELD + 1


def skill_types(num_types: int, *, shape: float = 4.0, max_multiplier: float = 3.0,
                payment: float = 10.0):  # fmt: skip
    """``num_types`` equal-mass quantile bins ``[i/K, (i+1)/K)`` of the published skill
    distribution (:func:`mfid.games.gtb.skill_quantile`), each represented by its conditional
    mean skill (closed form). Returns ``(skills (K,), probs (K,))`` as numpy arrays.

    With ``x(u) = (1 - u)^(-1/a)`` the skill is ``payment ((M - 1) x(u) - (M - 2))`` below the
    clip point ``u* = 1 - 2^-a`` and ``payment M`` above it, and
    ``int (1 - u)^(-1/a) du = -(1 - u)^(1 - 1/a) / (1 - 1/a)``."""
    K = check_count(num_types, "num_types")
    a, M = float(shape), float(max_multiplier)
    if a <= 1:
        raise ValueError(f"shape must be > 1, got {shape!r}")
    ustar = 1.0 - 2.0**-a
    F = lambda u: -((1.0 - u) ** (1.0 - 1.0 / a)) / (1.0 - 1.0 / a)  # noqa: E731
    edges = np.linspace(0.0, 1.0, K + 1)
    skills = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        lo_c, hi_c = min(lo, ustar), min(hi, ustar)
        cont = (M - 1.0) * (F(hi_c) - F(lo_c)) - (M - 2.0) * (hi_c - lo_c)
        clip = M * max(0.0, hi - max(lo, ustar))
        skills.append(payment * (cont + clip) / (hi - lo))
    return np.asarray(skills), np.full(K, 1.0 / K)


def _plan_tables(period: int):
    """Static numpy tables over ``(m, a)``: feasibility, houses, next ``m``, labour."""
    plans = np.asarray(PLANS)
    n, m_end = plans[:, 0], plans[:, 1]
    m = np.arange(NUM_HELD)[:, None]
    gathers = 2 * n[None] - m + m_end[None]
    feas = (gathers >= 0) & (3 * n[None] - m + m_end[None] <= period)
    houses = np.where(feas, n[None], 0)
    m_next = np.where(feas, m_end[None], m)
    labour = np.where(feas, GATHER_LABOUR * gathers + BUILD_LABOUR * n[None], 0.0)
    return feas, houses, m_next, labour


def _expand(table, houses):
    """``(K, G, n)`` -> ``(K, 3, G, A)``: ``out[k, m, j, a] = table[k, j, houses[m, a]]``."""
    return table[:, :, houses].transpose(0, 2, 1, 3)


@struct.dataclass
class GridKernel(Kernel):
    """Each ``(s, a)`` sends mass ``w[s, a]`` to state ``lo[s, a]`` and ``1 - w[s, a]`` to
    ``lo[s, a] + 1`` (the next grid point of the same block): push is one scatter-add, pull
    one gather, never the dense ``S x A x S`` array."""

    lo: jnp.ndarray
    w: jnp.ndarray
    num_states: int = struct.field(pytree_node=False, default=1)

    def push(self, L):
        S = self.num_states
        mass_lo = (L * self.w).reshape(-1)
        mass_hi = (L * (1.0 - self.w)).reshape(-1)
        lo = self.lo.reshape(-1)
        mu = jnp.zeros(S, L.dtype).at[lo].add(mass_lo)
        return mu.at[lo + 1].add(mass_hi)

    def pull(self, V):
        return V[self.lo] * self.w + V[self.lo + 1] * (1.0 - self.w)

    def dense(self):
        S = self.num_states
        eye = jnp.eye(S, dtype=self.w.dtype)
        return self.w[..., None] * eye[self.lo] + (1.0 - self.w)[..., None] * eye[self.lo + 1]


@struct.dataclass
class GTBMeanField(MeanFieldGame):
    """Mean-field mini-GTB (see the module docstring); build it with :meth:`create`."""

    mu0: jnp.ndarray
    skills: jnp.ndarray
    type_probs: jnp.ndarray
    grid: jnp.ndarray
    brackets: jnp.ndarray
    eta: jnp.ndarray
    kappa: jnp.ndarray
    penalty: jnp.ndarray
    grid_step: float = struct.field(pytree_node=False, default=10.0)
    horizon: int = struct.field(pytree_node=False, default=10)
    period: int = struct.field(pytree_node=False, default=10)
    num_types: int = struct.field(pytree_node=False, default=4)
    num_grid: int = struct.field(pytree_node=False, default=2)
    num_actions: int = struct.field(pytree_node=False, default=len(PLANS))
    sigmoid: bool = struct.field(pytree_node=False, default=True)

    @classmethod
    def create(
        cls,
        num_types: int = 4,
        *,
        skills=None,
        type_probs=None,
        grid_step: float = 10.0,
        periods: int = 10,
        period: int = 10,
        eta: float = 0.23,
        kappa: float = 0.21,
        start_coin: float = 10.0,
        penalty: float = 100.0,
        brackets=US_FEDERAL_BRACKETS,
        sigmoid: bool = True,
    ) -> GTBMeanField:
        """``num_types`` quantile types of the published distribution (:func:`skill_types`),
        or explicit ``skills (K,)`` with ``type_probs (K,)`` (default equal masses)."""
        periods = check_count(periods, "periods")
        period = check_count(period, "period", 3)
        check_positive(grid_step, "grid_step")
        check_positive(start_coin, "start_coin")
        check_positive(kappa, "kappa", allow_zero=True)
        check_positive(penalty, "penalty", allow_zero=True)
        if not (0.0 <= float(eta) < 1.0):
            raise ValueError(f"eta must lie in [0, 1), got {eta!r}")
        if skills is None:
            skills, probs = skill_types(num_types)
            if type_probs is not None:
                raise ValueError("type_probs needs explicit skills")
        else:
            skills = np.asarray(skills, float)
            if skills.ndim != 1 or skills.size < 1:
                raise ValueError(f"skills must have shape (K,), got {skills.shape}")
            if not np.all(np.isfinite(skills)) or np.any(skills <= 0):
                raise ValueError("skills must be finite and > 0")
            probs = (
                np.full(skills.size, 1.0 / skills.size)
                if type_probs is None
                else np.asarray(type_probs, float)
            )
        check_distribution(probs, "type_probs")
        if probs.shape != skills.shape:
            raise ValueError(f"type_probs must have shape {skills.shape}, got {probs.shape}")
        b = np.asarray(brackets, float)
        if b.ndim != 1 or b.size < 1 or b[0] != 0 or np.any(np.diff(b) <= 0):
            raise ValueError("brackets must be increasing lower edges starting at 0")
        K = int(skills.size)
        top = float(start_coin) + (periods * period // 3) * float(skills.max())
        G = int(math.ceil((top - float(start_coin)) / float(grid_step) - 1e-9)) + 1
        G = max(G, 2)
        grid = float(start_coin) + float(grid_step) * np.arange(G)
        mu0 = np.zeros((K, NUM_HELD, G))
        mu0[:, 0, 0] = probs
        dtype = jnp.result_type(float)
        f = lambda x: jnp.asarray(x, dtype)  # noqa: E731
        return cls(
            f(mu0.reshape(-1)), f(skills), f(probs), f(grid), f(b), f(eta), f(kappa),
            f(penalty), float(grid_step), periods, period, K, G, len(PLANS), bool(sigmoid),
        )  # fmt: skip

    # ------------------------------------------------------------------ helpers

    @property
    def start_coin(self):
        return self.grid[0]

    def rates(self, theta):
        """Marginal rates ``(7,)``: ``sigmoid(theta)`` (or ``theta`` with ``sigmoid=False``)."""
        theta = jnp.asarray(theta)
        return jax.nn.sigmoid(theta) if self.sigmoid else theta

    def state_index(self, k, m, j):
        """Flat state index of type ``k``, held resources ``m``, grid point ``j``."""
        return (k * NUM_HELD + m) * self.num_grid + j

    def split(self, y):
        """Grid split of earnings ``y``: ``(lo, w_hi)`` with ``y ~ (1 - w_hi) y_lo + w_hi
        y_lo+1`` (``lo`` in ``0..G-2``; values outside the grid clip to its ends)."""
        G = self.num_grid
        x = (y - self.grid[0].astype(y.dtype)) / self.grid_step
        x = jnp.clip(x, 0.0, G - 1.0)
        lo = jnp.clip(jnp.floor(lax.stop_gradient(x)), 0, G - 2)
        return lo.astype(jnp.int32), x - lo

    def utility(self, coin):
        """``U(C) = (C^(1 - eta) - 1) / (1 - eta)`` (the coin part of the utility)."""
        eta = self.eta.astype(coin.dtype)
        return (jnp.maximum(coin, 1e-12) ** (1.0 - eta) - 1.0) / (1.0 - eta)

    def _round_tables(self, theta, agg, dtype):
        """Per ``(K, G, n)`` (houses ``n = 0..4``): income ``z``, tax ``t`` and next earnings
        ``y'``; with the static ``(3, A)`` tables (feasible, houses, next ``m``, labour)."""
        feas, houses, m_next, labour = _plan_tables(self.period)
        rates = self.rates(theta).astype(dtype)
        n = jnp.arange(houses.max() + 1, dtype=dtype)
        z = self.skills.astype(dtype)[:, None] * n[None]  # (K, n)
        T = tax_schedule(z, rates, self.brackets.astype(dtype))
        y = self.grid.astype(dtype)[None, :, None]
        zz = z[:, None, :]
        tax = jnp.minimum(T[:, None, :], y + agg + zz)  # (K, G, n): the cap never binds
        return zz, tax, y + zz - tax, (feas, houses, m_next, labour)

    def dynamics(self, h, L, theta, aggregate=()) -> Dynamics:
        dt = L.dtype
        K, G, A = self.num_types, self.num_grid, self.num_actions
        agg = jnp.asarray(aggregate, dt)
        _, tax, y_next, (feas, houses, m_next, labour) = self._round_tables(theta, agg, dt)
        Lr = L.reshape(K, NUM_HELD, G, A)
        expand = partial(_expand, houses=houses)
        rebate = jnp.sum(Lr * expand(tax))
        y = self.grid.astype(dt)
        gain = self.utility(y_next + agg + rebate) - self.utility(y + agg)[None, :, None]
        cost = self.kappa.astype(dt) * jnp.asarray(labour, dt) + self.penalty.astype(
            dt
        ) * jnp.asarray(~feas, dt)
        reward = expand(gain) - cost[None, :, None, :]
        lo, w_hi = self.split(y_next)  # (K, G, n)
        lo, w_hi = expand(lo), expand(w_hi)
        k = jnp.arange(K)[:, None, None, None]
        lo_flat = self.state_index(k, jnp.asarray(m_next)[None, :, None, :], lo)
        S = self.num_states
        kernel = GridKernel(lo_flat.reshape(S, A), (1.0 - w_hi).reshape(S, A), S)
        return Dynamics(reward.reshape(S, A), kernel, agg + rebate, rebate)

    def initial_aggregate(self, theta):
        return jnp.zeros((), self.dtype)

    def validate(self, theta=None) -> None:
        if theta is not None:
            theta = jnp.asarray(theta)
            if theta.shape != (self.brackets.shape[0],):
                raise ValueError(
                    f"theta must have shape ({self.brackets.shape[0]},) (one value per "
                    f"bracket), got {theta.shape}"
                )
            if not self.sigmoid and not isinstance(theta, jax.core.Tracer):
                r = np.asarray(theta)
                if np.any(r < 0) or np.any(r > 1) or not np.all(np.isfinite(r)):
                    raise ValueError(f"theta (rates) must lie in [0, 1], got {r.tolist()}")
        super().validate(theta)


class MeanFieldMetrics(NamedTuple):
    """Outcome of a mean-field flow (:func:`mean_field_metrics`).

    Scalars: ``per_capita_productivity = E[C]``, ``gini``, ``equality = 1 - Gini``,
    ``product = E[C] (1 - Gini)``, ``labour = E[Lambda]``, ``tax = E[sum_h t_h]``.
    Per type ``(K,)``: ``type_labour``, ``type_income`` (pre-tax income), ``type_tax``,
    ``type_post`` (income after tax and rebate), ``type_coin`` (mean final coin).
    ``rebate (H,)``: the rebate of every round; ``coin_grid (G,)`` and ``coin_mass (G,)``: the
    final coin distribution."""

    per_capita_productivity: jnp.ndarray
    gini: jnp.ndarray
    equality: jnp.ndarray
    product: jnp.ndarray
    labour: jnp.ndarray
    tax: jnp.ndarray
    type_labour: jnp.ndarray
    type_income: jnp.ndarray
    type_tax: jnp.ndarray
    type_post: jnp.ndarray
    type_coin: jnp.ndarray
    rebate: jnp.ndarray
    coin_grid: jnp.ndarray
    coin_mass: jnp.ndarray


def mean_field_metrics(game: GTBMeanField, theta, L) -> MeanFieldMetrics:
    """Metrics of the flow ``L (H, S, A)``: the rounds' rebates are recomputed from ``L`` (one
    ``lax.scan``) and the final distribution is the push-forward of ``L_{H-1}``."""
    dt = L.dtype
    K, G, A = game.num_types, game.num_grid, game.num_actions
    _, houses, _, labour = _plan_tables(game.period)

    def step(agg, xs):
        h, L_h = xs
        dyn = game.dynamics(h, L_h, theta, agg)
        z, tax, _, _ = game._round_tables(theta, agg, dt)
        Lr = L_h.reshape(K, NUM_HELD, G, A)
        z = jnp.broadcast_to(z, tax.shape)
        per_type = (
            jnp.sum(Lr * _expand(z, houses), (1, 2, 3)),
            jnp.sum(Lr * _expand(tax, houses), (1, 2, 3)),
        )
        return dyn.aggregate, (dyn.info, dyn.kernel, per_type)

    H = game.horizon
    agg0 = game.initial_aggregate(theta).astype(dt)
    A_H, (rebate, kernels, (inc, tax)) = lax.scan(step, agg0, (jnp.arange(H), L))
    last = jax.tree_util.tree_map(lambda x: x[-1], kernels)
    mu = last.push(L[-1]).reshape(K, NUM_HELD, G)
    probs = game.type_probs.astype(dt)
    coin = game.grid.astype(dt) + A_H
    mass = mu.sum((0, 1))
    mean = jnp.sum(mass * coin)
    mad = jnp.sum(mass[:, None] * mass[None, :] * jnp.abs(coin[:, None] - coin[None, :]))
    gini = mad / (2.0 * mean)
    Lr = L.reshape(H, K, NUM_HELD, G, A)
    lab = jnp.sum(Lr * jnp.asarray(labour, dt)[None, None, :, None, :], (0, 2, 3, 4))
    type_income = inc.sum(0) / probs
    type_tax = tax.sum(0) / probs
    rebates = rebate.sum()
    type_coin = jnp.sum(mu.sum(1) * coin[None], -1) / probs
    return MeanFieldMetrics(
        mean, gini, 1.0 - gini, mean - 0.5 * mad, jnp.sum(lab), jnp.sum(tax),
        lab / probs, type_income, type_tax, type_income - type_tax + rebates, type_coin,
        rebate, coin, mass,
    )  # fmt: skip


def productivity_equality(game: GTBMeanField, theta, L, info=()):
    """Designer objective ``g(game, theta, L, info) = E[C] (1 - Gini)`` of the final coin
    (maximised): the mean-field per-capita productivity x equality."""
    return mean_field_metrics(game, theta, L).product


@dataclasses.dataclass(frozen=True)
class ProductivityEquality:
    """Designer objective ``g(game, theta, L, info) = E[C] (1 - Gini) = E[C] - E|C - C'|/2``
    of the final coin distribution (maximised). Hashable by value (a static argument of a
    compiled design step)."""

    def __call__(self, game, theta, L, info=()):
        return productivity_equality(game, theta, L, info)


# ----------------------------------------------------------------------------------------------
# Finite economy played with the mean-field policy.


@struct.dataclass
class MeanFieldPlanner:
    """Plays a mean-field policy ``(H, S, A)`` of ``game`` in the finite economy
    (:func:`mfid.games.gtb.simulate_plans`).

    Carry per agent: type ``k``, grid index ``j`` and earnings at the last decision. Each agent
    keeps its own grid state exactly as the mean-field kernel moves it: at a period start its
    earnings have changed by ``Delta`` (its after-tax income), and ``j`` moves to the split of
    ``y_j + Delta`` drawn with the split's probabilities. The law of ``(k, m, j)`` along an
    agent's path is therefore the mean-field one (the kernel does not depend on ``L``), while its
    coin is exact."""

    game: GTBMeanField
    policy: jnp.ndarray

    def act(self, carry, obs, key):
        k, j, y_prev = carry
        ku, ka = jax.random.split(key)
        dt = self.policy.dtype
        n = k.shape[0]
        y = self.game.grid.astype(dt)[j] + (obs.earnings - y_prev)
        lo, w_hi = self.game.split(y)
        moved = lo + (jax.random.uniform(ku, (n,), dt) < w_hi).astype(jnp.int32)
        j = jnp.where(obs.period > 0, moved, j)
        s = self.game.state_index(k, jnp.minimum(obs.held, MAX_HELD), j)
        a = inverse_cdf(self.policy[obs.period], s, jax.random.uniform(ka, (n,), dt))
        return a, (k, j, obs.earnings)


class SampledEconomy(NamedTuple):
    """Per-replicate outcomes of :func:`sample_economy` (shape ``(reps,)`` each):
    ``per_capita_productivity`` (mean final coin), ``per_capita_product`` (productivity x
    equality / N on the exact coin), ``grid_product`` (the same on the agents' grid coin
    ``y_j + rebates``, the quantity whose law the mean field describes), ``equality``,
    ``labour`` and ``tax`` per capita, and ``type_coin``/``type_labour``/``type_income``
    ``(reps, K)`` per-type means (``nan`` for a type absent from a replicate)."""

    per_capita_productivity: jnp.ndarray
    per_capita_product: jnp.ndarray
    grid_product: jnp.ndarray
    equality: jnp.ndarray
    labour: jnp.ndarray
    tax: jnp.ndarray
    type_coin: jnp.ndarray
    type_labour: jnp.ndarray
    type_income: jnp.ndarray


def _economy(game: GTBMeanField, n: int) -> MiniGTB:
    return MiniGTB.create(
        jnp.ones(n),
        eta=float(game.eta),
        kappa=float(game.kappa),
        start_coin=float(game.grid[0]),
        steps=game.horizon * game.period,
        period=game.period,
        brackets=np.asarray(game.brackets),
    )


@partial(jax.jit, static_argnames=("n", "reps", "batch", "published"))
def _sample(game, econ, rates, policy, key, n: int, reps: int, batch: int, published: bool):
    planner = MeanFieldPlanner(game, policy)
    K = game.num_types
    dt = policy.dtype

    def one(k):
        kt, ke, kf = jax.random.split(k, 3)
        if published:
            u = jax.random.uniform(kt, (n,), dt)
            types = jnp.minimum(jnp.floor(u * K), K - 1).astype(jnp.int32)
            skills = skill_quantile(u).astype(dt)
        else:
            u = jax.random.uniform(kt, (n,), dt)
            types = inverse_cdf(game.type_probs.astype(dt)[None], jnp.zeros(n, jnp.int32), u)
            skills = game.skills.astype(dt)[types]
        carry = (types, jnp.zeros(n, jnp.int32), jnp.full((n,), game.grid[0], dt))
        rec = rollout_plans(econ, rates, planner, _lead(carry), ke[None], skills[None])
        rec = jax.tree_util.tree_map(lambda x: x[0], rec)
        k_, j, y_prev = rec.carry
        rebates = rec.rebate.sum()
        y = game.grid.astype(dt)[j] + (rec.coin - rebates - y_prev)
        lo, w_hi = game.split(y)
        jf = lo + (jax.random.uniform(kf, (n,), dt) < w_hi).astype(jnp.int32)
        grid_coin = game.grid.astype(dt)[jf] + rebates
        m = rec.metrics
        onehot = jax.nn.one_hot(types, K, dtype=dt)
        count = onehot.sum(0)
        per_type = lambda v: (onehot * v[:, None]).sum(0) / count  # noqa: E731
        return SampledEconomy(
            m.per_capita_productivity, m.per_capita_product,
            economy_metrics(grid_coin).per_capita_product, m.equality,
            rec.total_labour.mean(), rec.tax.sum(0).mean(), per_type(rec.coin),
            per_type(rec.total_labour), per_type(rec.income.sum(0)),
        )  # fmt: skip

    return lax.map(one, jax.random.split(key, reps), batch_size=batch)


def _lead(tree):
    return jax.tree_util.tree_map(lambda x: x[None], tree)


def sample_economy(
    game: GTBMeanField,
    theta,
    policy,
    n: int,
    reps: int,
    key,
    *,
    skills: str = "types",
    batch_elems: int = 1 << 20,
) -> SampledEconomy:
    """``reps`` finite economies of ``n`` agents, every agent playing the mean-field policy
    ``policy (H, S, A)`` of ``game`` at ``theta`` (:class:`MeanFieldPlanner`); taxes and
    rebates are those of the ``n`` agents. ``skills="types"``: each agent's type is drawn from
    the game's type distribution and it has that type's skill (the finite economy whose
    ``N -> infinity`` limit is the mean field); ``"published"``: skills drawn from the published
    continuous distribution, each agent playing the policy of its quantile bin (needs the
    default equal-mass types) — the gap then also measures the type quantisation."""
    n = check_count(n, "n", 2)
    reps = check_count(reps, "reps")
    if skills not in ("types", "published"):
        raise ValueError(f"skills must be 'types' or 'published', got {skills!r}")
    shape = (game.horizon, game.num_states, game.num_actions)
    policy = check_policy(policy, shape, "policy")
    if skills == "published":
        ref, _ = skill_types(game.num_types)
        if game.skills.shape != ref.shape or not np.allclose(np.asarray(game.skills), ref):
            raise ValueError("skills='published' needs the default quantile types")
    rates = game.rates(jnp.asarray(theta, policy.dtype))
    batch = replicate_batch(n * game.period, reps, batch_elems)
    return _sample(
        game, _economy(game, n), rates, policy, key, n, reps, batch, skills == "published"
    )
