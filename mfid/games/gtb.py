"""Gather-Trade-Build, small form (mini-GTB): the finite-agent economy.

The trade-off of the AI-Economist economy (Zheng et al., "The AI Economist", Science Advances
2022; ``ai-economist`` 1.7.1) without its grid world. ``N`` agents with build skills ``s_i``
(coin per house) play ``T = 100`` steps in tax periods of ``10`` steps. Per step an agent picks
one of four actions:

=====  ================  ======  ==================================================================
index  action            labour  effect
=====  ================  ======  ==================================================================
0      rest              0       nothing
1      gather wood       2       +1 wood with probability ``p_gather`` (move + collect)
2      gather stone      2       +1 stone with probability ``p_gather``
3      build             10      needs one wood and one stone; pays ``s_i`` coin (a build without
                                 the resources does nothing and costs no labour)
=====  ================  ======  ==================================================================

Utility (ai-economist defaults) and per-step reward, with ``C`` the coin (start 10) and ``Lambda``
the cumulative labour::

    u(C, Lambda) = (C^(1 - eta) - 1) / (1 - eta) - kappa Lambda,     eta = 0.23, kappa = 0.21
    r_t          = u(C_{t+1}, Lambda_{t+1}) - u(C_t, Lambda_t)

Tax: at the end of every period each agent's period income ``z`` (coin earned by building in the
period) is taxed by the bracketed schedule, collection capped at the agent's coin, and the total
is rebated equally to all agents::

    T(z)     = sum_b tau_b min(m_{b+1} - m_b, max(0, z - m_b))      (m_8 = +inf: top bracket open)
    t_i      = min(T(z_i), C_i),      C_i <- C_i - t_i + (1/N) sum_j t_j

with the US-federal brackets ``m = 0, 9.7, 39.475, 84.2, 160.725, 204.1, 510.3`` (ai-economist's
2018 brackets in thousands of dollars) and rates 10/12/22/24/32/35/37 %. Metrics on the final
coin ``c``::

    productivity = sum_i c_i,   Gini = sum_i sum_j |c_i - c_j| / (2 N sum_i c_i),
    equality     = 1 - N/(N-1) Gini,   planner objective = productivity x equality

(:func:`economy_metrics`; the per-capita productivity ``mean c`` lets ``N`` vary).

**Skills.** The reference ``N = 4`` skills 11.33, 13.27, 16.47, 22.25 are ai-economist's fixed
four skills: the means of the sorted rows of 100 000 draws of ``min(3, 2 X + 1) * 10`` for four
agents with ``numpy.random.seed(1)``, where ``X = numpy.random.pareto(4)`` is numpy's
*Lomax* (Pareto II) variate, ``P(X > x) = (1 + x)^-4`` on ``x >= 0``
(:func:`published_skill_means` reproduces them; with the classical Pareto ``1 + X`` every skill
would clip at 30). Other ``N`` draw i.i.d. skills from that distribution by inverse CDF
(:func:`sample_skills`, :func:`skill_quantile`); it has an atom of mass ``2^-4`` at 30.

**Options.** *Scarcity* (``scarcity=True``): wood and stone come from shared stocks of
``stock_capacity`` units each (full at the start); a gather succeeds only while units are left
(when more agents gather than units remain, a uniformly random subset of them gets the units) and
every missing unit regrows with probability ``regrow`` (0.01) per step. *Market maker*
(``market_price=p``): a build that lacks wood or stone buys each missing unit from a market maker
at the fixed price ``p`` coin (if the agent's coin covers it); purchases are not deductible from
taxable income. Without scarcity and with ``p_gather = 1`` the economy is deterministic given the
actions.

**Period plans.** Agents that decide once per period (the mean-field equilibrium's agents and the
policy-gradient agents of the MetaGrad designer) choose a *plan* ``(n, m')`` from :data:`PLANS`:
build ``n`` houses (0..4) and end the period holding ``m'`` resources (0..2) for the next one. A
plan is executed step by step by a fixed rule (build when holding wood and stone, else gather the
missing one; after the ``n`` builds, gather toward ``m'``; then rest). From ``m`` held resources a
plan is *feasible* iff ``2n - m + m' >= 0`` and ``3n - m + m' <= period`` (enough steps); an
infeasible plan rests the whole period. With ``p_gather = 1`` and no scarcity a feasible plan
builds exactly ``n`` houses at labour ``2 (2n - m + m') + 10 n`` (tested).

Everything is batched in JAX: :func:`simulate_plans` is one episode (``lax.scan`` over periods and
steps, agents vectorised); ``jax.vmap`` it over episodes (:func:`rollout_plans` does).

Example::

    import jax, jax.numpy as jnp
    from mfid.games.gtb import MiniGTB, US_FEDERAL_RATES, FixedPlan, rollout_plans
    econ = MiniGTB.create()                                   # the reference N = 4 economy
    keys = jax.random.split(jax.random.key(0), 8)
    out = rollout_plans(econ, jnp.asarray(US_FEDERAL_RATES), FixedPlan(4), (), keys)
    out.metrics.product                                       # (8,) productivity x equality
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from mfid.checks import check_count, check_positive, check_probability, is_concrete

__all__ = [
    "ACTIONS",
    "BUILD",
    "GATHER_STONE",
    "GATHER_WOOD",
    "PLANS",
    "REFERENCE_SKILLS",
    "REST",
    "US_FEDERAL_BRACKETS",
    "US_FEDERAL_RATES",
    "EconomyMetrics",
    "EconomyState",
    "EpisodeRecord",
    "FixedPlan",
    "MiniGTB",
    "PeriodObs",
    "check_rates",
    "collect_tax",
    "economy_metrics",
    "equality",
    "gini",
    "initial_state",
    "isoelastic_utility",
    "period_accounting",
    "plan_action",
    "plan_feasible",
    "plan_labour",
    "published_skill_means",
    "rollout_plans",
    "sample_skills",
    "settle_period",
    "simulate_plans",
    "skill_quantile",
    "step_economy",
    "tax_and_rebate",
    "tax_schedule",
]

REST, GATHER_WOOD, GATHER_STONE, BUILD = 0, 1, 2, 3
ACTIONS = ("rest", "gather_wood", "gather_stone", "build")
US_FEDERAL_BRACKETS = (0.0, 9.7, 39.475, 84.2, 160.725, 204.1, 510.3)
US_FEDERAL_RATES = (0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37)
REFERENCE_SKILLS = (11.33164062, 13.26711234, 16.47237295, 22.2496143)
"""ai-economist 1.7.1's fixed four skills (full precision of :func:`published_skill_means`)."""

MAX_BUILDS_PER_PERIOD = 4
MAX_HELD = 2
PLANS = tuple((n, m) for n in range(MAX_BUILDS_PER_PERIOD + 1) for m in range(MAX_HELD + 1))
"""Period plans ``(houses n, resources held at the end m')``; plan index ``3 n + m'``."""
GATHER_LABOUR = 2.0
BUILD_LABOUR = 10.0


# ----------------------------------------------------------------------------------------------
# Tax, utility and metrics (pure functions, vectorised over leading axes).


def tax_schedule(income, rates, brackets=US_FEDERAL_BRACKETS):
    """Bracketed tax ``T(z) = sum_b tau_b min(m_{b+1} - m_b, max(0, z - m_b))``.

    ``income`` any shape, ``rates (B,)``, ``brackets (B,)`` increasing lower edges (the top
    bracket is open). Returns an array of ``income``'s shape.

    Example::

        tax_schedule(50.0, jnp.asarray(US_FEDERAL_RATES))   # 0.97 + 3.573 + 2.3155 = 6.8585
    """
    z = jnp.asarray(income)
    rates = jnp.asarray(rates, jnp.result_type(z.dtype, float))
    m = jnp.asarray(brackets, rates.dtype)
    width = jnp.concatenate([m[1:] - m[:-1], jnp.full((1,), jnp.inf, m.dtype)])
    lead = (1,) * z.ndim
    amount = jnp.minimum(
        width.reshape(lead + (-1,)), jnp.maximum(0.0, z[..., None] - m.reshape(lead + (-1,)))
    )
    return jnp.sum(rates.reshape(lead + (-1,)) * amount, axis=-1)


def collect_tax(income, coin, rates, brackets=US_FEDERAL_BRACKETS):
    """Tax collected: ``min(T(z), C)`` (never more than the agent's coin, never negative)."""
    return jnp.minimum(tax_schedule(income, rates, brackets), jnp.maximum(coin, 0.0))


def tax_and_rebate(coin, income, rates, brackets=US_FEDERAL_BRACKETS):
    """Collect the period's taxes and rebate their total equally over the agents (last axis).

    Returns ``(new_coin, tax, rebate)``: ``new_coin = coin - tax + rebate``, ``tax`` per agent,
    ``rebate = mean(tax)`` (shape ``coin.shape[:-1]``). Total coin is conserved."""
    tax = collect_tax(income, coin, rates, brackets)
    rebate = jnp.mean(tax, axis=-1)
    return coin - tax + rebate[..., None], tax, rebate


def isoelastic_utility(coin, labour, eta=0.23, kappa=0.21):
    """``u = (C^(1 - eta) - 1) / (1 - eta) - kappa Lambda`` (``0 <= eta < 1``)."""
    coin = jnp.asarray(coin)
    return (jnp.maximum(coin, 0.0) ** (1.0 - eta) - 1.0) / (1.0 - eta) - kappa * labour


def gini(coin):
    """Gini coefficient over the last axis, ``sum_i sum_j |c_i - c_j| / (2 N sum_i c_i)``
    (0 when all coin is 0), by the sorted form ``sum_i sum_j |c_i - c_j| = 2 sum_i (2i - N - 1)
    c_(i)`` (``O(N log N)``)."""
    c = jnp.sort(jnp.asarray(coin), axis=-1)
    n = c.shape[-1]
    i = jnp.arange(1, n + 1, dtype=c.dtype).reshape((1,) * (c.ndim - 1) + (n,))
    pair = 2.0 * jnp.sum((2.0 * i - n - 1.0) * c, axis=-1)
    total = jnp.sum(c, axis=-1)
    return jnp.where(total > 0, pair / (2.0 * n * jnp.where(total > 0, total, 1.0)), 0.0)


def equality(coin):
    """``1 - N/(N-1) Gini`` over the last axis (1 for a single agent): 1 for equal coin, 0 when
    one agent holds everything."""
    n = jnp.shape(coin)[-1]
    return 1.0 - (n / (n - 1) if n > 1 else 0.0) * gini(coin)


class EconomyMetrics(NamedTuple):
    """Planner metrics of final coin: ``productivity = sum c``, ``equality``, ``product`` =
    productivity x equality, ``per_capita_productivity = mean c``, ``per_capita_product`` =
    product / N (the quantity whose mean-field limit is mean coin x (1 - Gini))."""

    productivity: jnp.ndarray
    equality: jnp.ndarray
    product: jnp.ndarray
    per_capita_productivity: jnp.ndarray
    per_capita_product: jnp.ndarray


def economy_metrics(coin) -> EconomyMetrics:
    """:class:`EconomyMetrics` of final coin ``(..., N)``."""
    coin = jnp.asarray(coin)
    n = coin.shape[-1]
    prod = jnp.sum(coin, axis=-1)
    eq = equality(coin)
    return EconomyMetrics(prod, eq, prod * eq, prod / n, prod * eq / n)


def check_rates(rates, name: str = "rates", size: int = len(US_FEDERAL_RATES)):
    """Return ``rates`` as an array after checking shape ``(size,)`` and values in ``[0, 1]``."""
    arr = jnp.asarray(rates, jnp.result_type(float))
    if arr.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {arr.shape}")
    if is_concrete(arr):
        a = np.asarray(arr)
        if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
            raise ValueError(f"{name} must be finite marginal rates in [0, 1], got {a.tolist()}")
    return arr


# ----------------------------------------------------------------------------------------------
# Skills.


def skill_quantile(u, shape: float = 4.0, max_multiplier: float = 3.0, payment: float = 10.0):
    """Quantile function of the published skill ``payment * min(M, (M - 1) X + 1)``, ``X``
    Lomax(``shape``): ``X = (1 - u)^(-1/shape) - 1`` for ``u`` in ``[0, 1)``."""
    u = jnp.asarray(u)
    x = (1.0 - u) ** (-1.0 / shape) - 1.0
    return payment * jnp.minimum(max_multiplier, (max_multiplier - 1.0) * x + 1.0)


def sample_skills(key, n: int, *, shape: float = 4.0, max_multiplier: float = 3.0,
                  payment: float = 10.0):  # fmt: skip
    """``n`` i.i.d. skills from the published distribution (inverse CDF of uniforms)."""
    n = check_count(n, "n")
    u = jax.random.uniform(key, (n,), jnp.result_type(float))
    return skill_quantile(u, shape, max_multiplier, payment)


def published_skill_means(n: int = 4, draws: int = 100_000, seed: int = 1, *,
                          shape: float = 4.0, max_multiplier: float = 3.0,
                          payment: float = 10.0) -> np.ndarray:  # fmt: skip
    """ai-economist's fixed skills: the means of the sorted rows of ``draws x n`` draws of
    ``min(M, (M - 1) X + 1) * payment`` with ``numpy.random.seed(seed)`` and
    ``X = numpy.random.pareto(shape)`` (numpy's Lomax convention). ``n = 4`` gives
    :data:`REFERENCE_SKILLS`."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        x = np.random.pareto(shape, size=(draws, n))
    finally:
        np.random.set_state(state)
    clipped = np.minimum(max_multiplier, (max_multiplier - 1.0) * x + 1.0)
    return np.sort(clipped, axis=1).mean(axis=0) * payment


# ----------------------------------------------------------------------------------------------
# The economy.


@struct.dataclass
class MiniGTB:
    """A finite mini-GTB economy; build it with :meth:`MiniGTB.create` (validates arguments).

    ``skills (N,)``; ``brackets (B,)``; scalars ``eta``, ``kappa``, ``start_coin``, ``p_gather``,
    ``regrow``, ``market_price`` (``inf``: no market); static ``steps``, ``period``,
    ``scarcity``, ``stock_capacity``.
    """

    skills: jnp.ndarray
    brackets: jnp.ndarray
    eta: jnp.ndarray
    kappa: jnp.ndarray
    start_coin: jnp.ndarray
    p_gather: jnp.ndarray
    regrow: jnp.ndarray
    market_price: jnp.ndarray
    steps: int = struct.field(pytree_node=False, default=100)
    period: int = struct.field(pytree_node=False, default=10)
    scarcity: bool = struct.field(pytree_node=False, default=False)
    stock_capacity: int = struct.field(pytree_node=False, default=0)

    @classmethod
    def create(
        cls,
        skills=None,
        *,
        n: int | None = None,
        key=None,
        eta: float = 0.23,
        kappa: float = 0.21,
        start_coin: float = 10.0,
        p_gather: float = 1.0,
        steps: int = 100,
        period: int = 10,
        brackets=US_FEDERAL_BRACKETS,
        scarcity: bool = False,
        stock_capacity: int | None = None,
        regrow: float = 0.01,
        market_price: float | None = None,
    ) -> MiniGTB:
        """``skills`` (an ``(N,)`` array), or ``n`` agents with skills drawn by ``key`` from the
        published distribution, or neither: the reference four skills. ``stock_capacity``
        (scarcity only) defaults to ``3 N`` units of each resource."""
        dtype = jnp.result_type(float)
        if skills is not None and n is not None:
            raise ValueError("give skills or n (with key), not both")
        if skills is None and n is None:
            skills = jnp.asarray(REFERENCE_SKILLS, dtype)
        elif skills is None:
            n = check_count(n, "n", 2)
            if key is None:
                raise ValueError("key is required to draw the skills of n agents")
            skills = sample_skills(key, n)
        skills = jnp.asarray(skills, dtype)
        if skills.ndim != 1 or skills.shape[0] < 2:
            raise ValueError(f"skills must have shape (N,) with N >= 2, got {skills.shape}")
        if not np.all(np.isfinite(np.asarray(skills))) or np.any(np.asarray(skills) <= 0):
            raise ValueError("skills must be finite and > 0")
        if not (0.0 <= float(eta) < 1.0):
            raise ValueError(f"eta must lie in [0, 1), got {eta!r}")
        check_positive(kappa, "kappa", allow_zero=True)
        check_positive(start_coin, "start_coin")
        check_probability(p_gather, "p_gather")
        check_probability(regrow, "regrow")
        steps = check_count(steps, "steps")
        period = check_count(period, "period")
        if steps % period:
            raise ValueError(f"steps must be a multiple of period, got {steps} and {period}")
        b = np.asarray(brackets, float)
        if b.ndim != 1 or b.size < 1 or b[0] != 0 or np.any(np.diff(b) <= 0):
            raise ValueError("brackets must be increasing lower edges starting at 0")
        if market_price is not None:
            check_positive(market_price, "market_price")
        N = int(skills.shape[0])
        if stock_capacity is None:
            stock_capacity = 3 * N
        stock_capacity = check_count(stock_capacity, "stock_capacity", 0)
        f = lambda x: jnp.asarray(x, dtype)  # noqa: E731
        price = jnp.inf if market_price is None else market_price
        return cls(
            skills, f(b), f(eta), f(kappa), f(start_coin), f(p_gather), f(regrow), f(price),
            steps, period, bool(scarcity), stock_capacity,
        )  # fmt: skip

    @property
    def num_agents(self) -> int:
        return int(self.skills.shape[-1])

    @property
    def num_periods(self) -> int:
        return self.steps // self.period

    def utility(self, coin, labour):
        return isoelastic_utility(coin, labour, self.eta, self.kappa)


class EconomyState(NamedTuple):
    """State of one episode: per-agent ``coin``, ``wood``, ``stone`` (ints), ``labour``
    (cumulative), ``income`` (coin earned by building in the current period), ``spend`` (coin
    paid to the market maker in the current period), ``rebates`` (total rebates received);
    shared ``stock (2,)`` of wood and stone (scarcity only)."""

    coin: jnp.ndarray
    wood: jnp.ndarray
    stone: jnp.ndarray
    labour: jnp.ndarray
    income: jnp.ndarray
    spend: jnp.ndarray
    rebates: jnp.ndarray
    stock: jnp.ndarray


def initial_state(econ: MiniGTB) -> EconomyState:
    """Start of an episode: ``start_coin`` each, empty inventories, full stocks."""
    n = econ.num_agents
    dt = econ.skills.dtype
    zero = jnp.zeros(n, dt)
    izero = jnp.zeros(n, jnp.int32)
    stock = jnp.full((2,), econ.stock_capacity, jnp.int32)
    return EconomyState(zero + econ.start_coin, izero, izero, zero, zero, zero, zero, stock)


def _allocate(want, stock, key):
    """``want (N,)`` bool; a uniformly random subset of at most ``stock`` wanting agents."""
    prio = jnp.where(want, jax.random.uniform(key, want.shape), 2.0)
    rank = jnp.argsort(jnp.argsort(prio))
    return want & (rank < stock)


def step_economy(econ: MiniGTB, state: EconomyState, actions, key):
    """One step for all agents (no tax: see :func:`settle_period`). ``actions (N,)`` in 0..3.

    Returns ``(new_state, built (N,) bool)``."""
    kw, ks, kaw, kas, krw, krs = jax.random.split(key, 6)
    n = econ.num_agents
    dt = state.coin.dtype
    gw, gs = actions == GATHER_WOOD, actions == GATHER_STONE
    okw = gw & (jax.random.uniform(kw, (n,), dt) < econ.p_gather)
    oks = gs & (jax.random.uniform(ks, (n,), dt) < econ.p_gather)
    stock = state.stock
    if econ.scarcity:
        okw = _allocate(okw, stock[0], kaw)
        oks = _allocate(oks, stock[1], kas)
        stock = stock - jnp.stack([okw.sum(), oks.sum()]).astype(stock.dtype)
    wood = state.wood + okw.astype(jnp.int32)
    stone = state.stone + oks.astype(jnp.int32)
    b = actions == BUILD
    miss_w, miss_s = wood < 1, stone < 1
    cost = econ.market_price * (miss_w.astype(dt) + miss_s.astype(dt))
    has = ~miss_w & ~miss_s
    buy = b & ~has & jnp.isfinite(econ.market_price) & (state.coin >= cost)
    built = b & (has | buy)
    cost = jnp.where(buy, cost, 0.0)
    wood = wood - (built & ~miss_w).astype(jnp.int32)
    stone = stone - (built & ~miss_s).astype(jnp.int32)
    pay = jnp.where(built, econ.skills, 0.0)
    labour = (
        state.labour
        + GATHER_LABOUR * (gw | gs).astype(dt)
        + BUILD_LABOUR * built.astype(dt)
    )
    if econ.scarcity:
        cap = econ.stock_capacity
        grow = jnp.stack(
            [
                jax.random.binomial(krw, (cap - stock[0]).astype(dt), econ.regrow),
                jax.random.binomial(krs, (cap - stock[1]).astype(dt), econ.regrow),
            ]
        )
        stock = stock + grow.astype(stock.dtype)
    new = state._replace(
        coin=state.coin + pay - cost,
        wood=wood,
        stone=stone,
        labour=labour,
        income=state.income + pay,
        spend=state.spend + cost,
        stock=stock,
    )
    return new, built


def settle_period(econ: MiniGTB, state: EconomyState, rates):
    """End of a tax period: collect ``min(T(income), coin)`` from every agent, rebate the mean,
    reset the period income. Returns ``(new_state, tax (N,), rebate)``."""
    coin, tax, rebate = tax_and_rebate(state.coin, state.income, rates, econ.brackets)
    zero = jnp.zeros_like(state.income)
    new = state._replace(coin=coin, income=zero, spend=zero, rebates=state.rebates + rebate)
    return new, tax, rebate


# ----------------------------------------------------------------------------------------------
# Period plans.


def _plan_table():
    return np.asarray(PLANS, np.int32)


def plan_feasible(plan, held, period: int = 10):
    """Whether plan index ``plan`` is feasible from ``held`` resources: ``2n - m + m' >= 0`` and
    ``3n - m + m' <= period`` (broadcasting)."""
    plan, held = jnp.broadcast_arrays(plan, held)
    tab = jnp.asarray(_plan_table())
    n, m_end = tab[plan, 0], tab[plan, 1]
    gathers = 2 * n - held + m_end
    return (gathers >= 0) & (3 * n - held + m_end <= period)


def plan_labour(plan, held, period: int = 10):
    """Labour of plan ``plan`` from ``held`` resources: ``2 (2n - m + m') + 10 n`` when
    feasible, 0 otherwise (float)."""
    plan, held = jnp.broadcast_arrays(plan, held)
    tab = jnp.asarray(_plan_table())
    n, m_end = tab[plan, 0], tab[plan, 1]
    lab = GATHER_LABOUR * (2 * n - held + m_end) + BUILD_LABOUR * n
    return jnp.where(plan_feasible(plan, held, period), lab, 0.0)


def _held(wood, stone):
    return jnp.minimum(wood, 1) + jnp.minimum(stone, 1)


def plan_action(plan, feasible, built, wood, stone):
    """The step action of the plan executor: build while houses remain and both resources are
    held, else gather the missing one (wood first); after the ``n`` builds gather toward ``m'``;
    then rest. Infeasible plans rest."""
    tab = jnp.asarray(_plan_table())
    n, m_end = tab[plan, 0], tab[plan, 1]
    missing = jnp.where(wood < 1, GATHER_WOOD, GATHER_STONE)
    both = (wood >= 1) & (stone >= 1)
    building = jnp.where(both, BUILD, missing)
    topping = jnp.where(_held(wood, stone) < m_end, missing, REST)
    act = jnp.where(built < n, building, topping)
    return jnp.where(feasible, act, REST).astype(jnp.int32)


class PeriodObs(NamedTuple):
    """What a planning agent sees at the start of period ``period``: its ``skill``, ``wood``,
    ``stone``, ``held = min(wood, 1) + min(stone, 1)``, ``coin``, ``earnings`` (coin minus the
    rebates received: start coin plus own after-tax income), cumulative ``labour``, and the
    ``tax`` it paid and the ``rebate`` of the last period (0 in period 0)."""

    period: jnp.ndarray
    skill: jnp.ndarray
    wood: jnp.ndarray
    stone: jnp.ndarray
    held: jnp.ndarray
    coin: jnp.ndarray
    earnings: jnp.ndarray
    labour: jnp.ndarray
    tax: jnp.ndarray
    rebate: jnp.ndarray


class EpisodeRecord(NamedTuple):
    """One episode played with period plans (leading axis ``P`` = periods where per period).

    ``obs``: :class:`PeriodObs` stacked over periods; ``plans``, ``builds`` (houses built),
    ``labour`` (labour in the period), ``income`` (pre-tax), ``spend``, ``tax`` ``(P, N)``;
    ``rebate (P,)``; ``reward (P, N)`` the utility change over the period (sum of the step
    rewards); ``coin``/``total_labour (N,)`` at the end; ``metrics``: :class:`EconomyMetrics`;
    ``carry``: the policy's carry after its last decision.
    """

    obs: PeriodObs
    plans: jnp.ndarray
    builds: jnp.ndarray
    labour: jnp.ndarray
    income: jnp.ndarray
    spend: jnp.ndarray
    tax: jnp.ndarray
    rebate: jnp.ndarray
    reward: jnp.ndarray
    coin: jnp.ndarray
    total_labour: jnp.ndarray
    metrics: EconomyMetrics
    carry: Any = ()


@struct.dataclass
class FixedPlan:
    """A planning policy that always picks plan index ``plan`` (e.g. 4 = ``(1, 1)``); no carry.
    Any policy is a pytree with ``act(carry, obs, key) -> (plans (N,), carry)``."""

    plan: int = struct.field(pytree_node=False, default=4)

    def act(self, carry, obs: PeriodObs, key):
        return jnp.full(obs.skill.shape, self.plan, jnp.int32), carry


def simulate_plans(econ: MiniGTB, rates, policy, carry, key) -> EpisodeRecord:
    """One episode in which every agent picks a plan at each period start
    (``policy.act(carry, obs, key) -> (plans, carry)``) executed step by step by
    :func:`plan_action`; taxes settled at every period end. Periods and steps are one nested
    ``lax.scan``; vmap over episodes (see :func:`rollout_plans`)."""
    rates = jnp.asarray(rates, econ.skills.dtype)
    n = econ.num_agents
    dt = econ.skills.dtype
    P, L = econ.num_periods, econ.period

    def period(c, xs):
        state, pcarry, last_tax, last_rebate = c
        p, kp = xs
        ka, ks = jax.random.split(kp)
        held = _held(state.wood, state.stone)
        obs = PeriodObs(
            p, econ.skills, state.wood, state.stone, held, state.coin,
            state.coin - state.rebates, state.labour, last_tax, last_rebate,
        )  # fmt: skip
        plans, pcarry = policy.act(pcarry, obs, ka)
        plans = plans.astype(jnp.int32)
        feasible = plan_feasible(plans, held, L)
        u0 = econ.utility(state.coin, state.labour)

        def step(sc, k):
            st, built = sc
            a = plan_action(plans, feasible, built, st.wood, st.stone)
            st, b = step_economy(econ, st, a, k)
            return (st, built + b.astype(jnp.int32)), None

        lab0 = state.labour
        (state, built), _ = lax.scan(
            step, (state, jnp.zeros(n, jnp.int32)), jax.random.split(ks, L)
        )
        income, spend = state.income, state.spend
        state, tax, rebate = settle_period(econ, state, rates)
        reward = econ.utility(state.coin, state.labour) - u0
        out = (obs, plans, built, state.labour - lab0, income, spend, tax, rebate, reward)
        return (state, pcarry, tax, rebate), out

    c0 = (initial_state(econ), carry, jnp.zeros(n, dt), jnp.zeros((), dt))
    (state, pcarry, _, _), out = lax.scan(period, c0, (jnp.arange(P), jax.random.split(key, P)))
    obs, plans, builds, labour, income, spend, tax, rebate, reward = out
    return EpisodeRecord(
        obs, plans, builds, labour, income, spend, tax, rebate, reward, state.coin,
        state.labour, economy_metrics(state.coin), pcarry,
    )  # fmt: skip


@jax.jit
def rollout_plans(econ: MiniGTB, rates, policy, carry, keys, skills=None) -> EpisodeRecord:
    """:func:`simulate_plans` vmapped over ``keys (E,)`` and the leading axis of ``carry``
    (``()`` for carry-free policies) and, if given, of ``skills (E, N)`` (a fresh population per
    episode). Every output gains a leading episode axis."""

    def one(k, c, s):
        e = econ if s is None else econ.replace(skills=s)
        return simulate_plans(e, rates, policy, c, k)

    return jax.vmap(one)(keys, carry, skills)


def period_accounting(econ: MiniGTB, rates, income, spend, labour, skills=None):
    """Coin, taxes, rebates and per-period utility changes of recorded period outcomes as a
    differentiable function of ``rates`` (the actions are data): ``income``, ``spend``,
    ``labour`` ``(P, N)`` per period. Returns ``(coin (N,), tax (P, N), rebate (P,),
    reward (P, N))``; on a record of :func:`simulate_plans` it reproduces its coin, taxes and
    rewards (tested)."""
    rates = jnp.asarray(rates)
    dt = jnp.result_type(rates.dtype, econ.skills.dtype)
    n = econ.num_agents if skills is None else skills.shape[-1]
    coin0 = jnp.full((n,), econ.start_coin, dt)

    def step(c, xs):
        coin, lab = c
        z, sp, lb = xs
        before = econ.utility(coin, lab)
        new, tax, rebate = tax_and_rebate(coin + z - sp, z, rates, econ.brackets)
        lab = lab + lb
        return (new, lab), (tax, rebate, econ.utility(new, lab) - before)

    (coin, _), (tax, rebate, reward) = lax.scan(
        step, (coin0, jnp.zeros((n,), dt)), (income, spend, labour)
    )
    return coin, tax, rebate, reward

