"""Meta-gradient tax design on the finite mini-GTB economy (MetaGrad; Yang et al., "Adaptive
incentive design with multi-agent meta-gradient reinforcement learning", AAMAS 2022),
with policy-gradient agents.

The designer's parameters are the seven bracket-rate logits ``eta``, ``tau_b = sigmoid(eta_b)``.
``N`` agents (the reference ``N = 4`` economy by default) choose a period plan
(:data:`mfid.games.gtb.PLANS`) at every period start with their own linear-softmax policy on
their observation ``o = (one-hot period, one-hot held resources, coin / 100, 1)``, infeasible
plans masked out::

    pi_{theta_i}(a | o) = softmax(o W_i)_a  over the feasible plans,     W_i (F, 15)

and learn by REINFORCE on their own return, the sum of per-period utility changes
``r_{p,i} = u(C_{p+1}, Lambda_{p+1}) - u(C_p, Lambda_p)`` (:func:`mfid.games.gtb.period_accounting`:
coin after taxes and rebates, a differentiable function of ``eta`` for the recorded actions).
One iteration on the batch ``tau`` of ``B`` episodes of the current agents ``theta``::

    (1) theta_hat(eta) = theta + alpha grad_theta (1/B) sum_b sum_p sum_i
                           [log pi_{theta_i}(a | o) Adv^i_p(eta) + beta H(pi_{theta_i}(. | o))]
        Adv = (G - mean_B G) / std_B G  (G^i_p(eta): reward-to-go of agent i from period p)
    (2) tau_hat ~ theta_hat at the rates sigmoid(eta)        (validation batch)
    (3) eta <- Adam( grad_eta [ (1/B) sum_b sum_p sum_i log pi_{theta_hat_i(eta)}(a_hat | o_hat)
                                  (W_b - mean_B W)
                                + (1/B) sum_b W_b(eta; tau_hat) ] )
        W_b: the planner objective of episode b, productivity x equality / N of its final coin
    (4) theta <- theta_hat, tau <- tau_hat                   (pipelining)

The first term of (3) is MetaGrad's meta-gradient (through the agents' update (1)); the second
(``direct=True``) is the derivative of the planner objective with the validation actions held
fixed, which a tax has and a free per-action incentive does not: taxes and rebates move coin
between agents. ``designer_lr = 0`` freezes the tax: the same agents then learn under a fixed
schedule (the baselines). Iterations are one ``lax.scan`` per chunk, seeds a ``vmap``.

Why not :mod:`solvers.metagrad`: that designer's interface needs additive incentives (an
agent's return = extrinsic reward + what is paid) and a designer return of welfare minus
payments; the taxed utility ``u(C - t + R)`` is not additive, the designer's parameters are seven
rates rather than a network over (state, joint action), and its objective has the direct term.

Example::

    import jax
    from mfid.games.gtb import MiniGTB
    from solvers.gtb_metagrad import GTBMetaGrad, train_tax
    res = train_tax(GTBMetaGrad.create(MiniGTB.create()), iterations=200, seeds=2,
                    key=jax.random.key(0))
    res.rates, res.eval_product          # (2, 7), (2,)
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax import lax

from mfid.checks import check_count, check_positive
from mfid.games.gtb import (
    PLANS,
    US_FEDERAL_RATES,
    MiniGTB,
    economy_metrics,
    period_accounting,
    plan_feasible,
    rollout_plans,
)
from mfid.tree import xlogx

__all__ = ["GTBMetaGrad", "PGPlanner", "TaxTrainResult", "TaxTrainState", "plan_features",
           "rates_logits", "train_tax"]  # fmt: skip

NUM_PLANS = len(PLANS)


def rates_logits(rates):
    """``logit(rates)`` with rates clipped to ``[1e-6, 1 - 1e-6]`` (a start point for ``eta``)."""
    r = jnp.clip(jnp.asarray(rates, jnp.result_type(float)), 1e-6, 1 - 1e-6)
    return jnp.log(r / (1 - r))


def plan_features(obs, num_periods: int):
    """``(N, F)`` features of a :class:`mfid.games.gtb.PeriodObs` (also stacked ``(P, N, F)``):
    one-hot period, one-hot held resources (0..2), coin / 100, 1."""
    dt = obs.coin.dtype
    period = jnp.broadcast_to(jnp.asarray(obs.period)[..., None], obs.coin.shape)
    onehot_p = jax.nn.one_hot(period, num_periods, dtype=dt)
    onehot_m = jax.nn.one_hot(jnp.minimum(obs.held, 2), 3, dtype=dt)
    return jnp.concatenate(
        [onehot_p, onehot_m, (obs.coin / 100.0)[..., None], jnp.ones_like(obs.coin)[..., None]],
        axis=-1,
    )


def _masked_logits(w, feats, held, period: int):
    """Per-agent logits ``feats @ W_i`` with infeasible plans at ``-1e9``."""
    logits = jnp.einsum("...nf,nfa->...na", feats, w)
    feas = plan_feasible(jnp.arange(NUM_PLANS), held[..., None], period)
    return jnp.where(feas, logits, -1e9)


@struct.dataclass
class PGPlanner:
    """The agents' stochastic policy as a planner of :func:`mfid.games.gtb.simulate_plans`."""

    w: jnp.ndarray
    num_periods: int = struct.field(pytree_node=False, default=10)
    period: int = struct.field(pytree_node=False, default=10)

    def act(self, carry, obs, key):
        logits = _masked_logits(self.w, plan_features(obs, self.num_periods), obs.held,
                                self.period)  # fmt: skip
        return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32), carry


class TaxTrainState(NamedTuple):
    """Loop state of one seed: agents' weights ``w (N, F, 15)``, rate logits ``eta (7,)``, the
    designer's Adam state, the last batch of episodes (``records``) and the PRNG key data."""

    w: jnp.ndarray
    eta: jnp.ndarray
    opt: Any
    records: Any
    key: jnp.ndarray


@struct.dataclass
class GTBMetaGrad:
    """MetaGrad tax designer on a finite economy (module docstring); :meth:`create` checks the
    arguments. ``designer_lr = 0``: a fixed tax (the agents still learn)."""

    econ: MiniGTB
    agent_lr: float = struct.field(pytree_node=False, default=0.1)
    entropy: float = struct.field(pytree_node=False, default=0.01)
    designer_lr: float = struct.field(pytree_node=False, default=0.05)
    batch: int = struct.field(pytree_node=False, default=32)
    init_scale: float = struct.field(pytree_node=False, default=0.01)
    direct: bool = struct.field(pytree_node=False, default=True)

    @classmethod
    def create(cls, econ: MiniGTB, *, agent_lr: float = 0.1, entropy: float = 0.01,
               designer_lr: float = 0.05, batch: int = 32, init_scale: float = 0.01,
               direct: bool = True) -> GTBMetaGrad:  # fmt: skip
        check_positive(agent_lr, "agent_lr")
        check_positive(entropy, "entropy", allow_zero=True)
        check_positive(designer_lr, "designer_lr", allow_zero=True)
        check_count(batch, "batch", 2)
        check_positive(init_scale, "init_scale", allow_zero=True)
        if float(econ.p_gather) != 1.0 or econ.scarcity:
            raise ValueError("econ: the plan-level agents need p_gather = 1 and no scarcity")
        return cls(econ, float(agent_lr), float(entropy), float(designer_lr), int(batch),
                   float(init_scale), bool(direct))  # fmt: skip

    @property
    def num_features(self) -> int:
        return self.econ.num_periods + 3 + 2

    # -- pieces ---------------------------------------------------------------------------
    def sample(self, w, eta, key):
        """``batch`` episodes of the agents ``w`` at the rates ``sigmoid(eta)``."""
        planner = PGPlanner(w, self.econ.num_periods, self.econ.period)
        keys = jax.random.split(key, self.batch)
        return rollout_plans(self.econ, jax.nn.sigmoid(eta), planner, (), keys)

    def log_probs(self, w, records):
        """``(log pi(a | o) (B, P, N), entropy (B, P, N))`` of the recorded plans."""
        feats = plan_features(records.obs, self.econ.num_periods)
        logits = _masked_logits(w, feats, records.obs.held, self.econ.period)
        logp = jax.nn.log_softmax(logits, axis=-1)
        taken = jnp.take_along_axis(logp, records.plans[..., None], axis=-1)[..., 0]
        p = jnp.exp(logp)
        entropy = -jnp.sum(xlogx(p, logp), axis=-1)
        return taken, entropy

    def returns(self, eta, records):
        """Per-period rewards ``(B, P, N)`` recomputed at ``sigmoid(eta)``, and the final coin."""
        fn = lambda r: period_accounting(self.econ, jax.nn.sigmoid(eta), r.income, r.spend,  # noqa: E731
                                         r.labour)  # fmt: skip
        coin, _, _, reward = jax.vmap(fn)(records)
        return reward, coin

    def agent_step(self, w, eta, records):
        """``theta_hat(eta)``: one policy-gradient step of every agent (step (1))."""
        reward, _ = self.returns(eta, records)
        togo = jnp.cumsum(reward[:, ::-1], axis=1)[:, ::-1]
        adv = (togo - togo.mean(0, keepdims=True)) / lax.stop_gradient(
            togo.std(0, keepdims=True) + 1e-6
        )

        def objective(w):
            logp, ent = self.log_probs(w, records)
            return jnp.sum(logp * adv + self.entropy * ent) / self.batch

        return w + self.agent_lr * jax.grad(objective)(w)

    def designer_objective(self, eta, records):
        """Mean planner objective (productivity x equality / N) of ``records`` at ``eta``."""
        _, coin = self.returns(eta, records)
        return jnp.mean(economy_metrics(coin).per_capita_product)

    def iterate(self, state: TaxTrainState):
        key, k_val = jax.random.split(jax.random.wrap_key_data(state.key))
        w_hat, pullback = jax.vjp(lambda e: self.agent_step(state.w, e, state.records), state.eta)
        val = self.sample(lax.stop_gradient(w_hat), state.eta, k_val)
        welfare = val.metrics.per_capita_product
        adv = welfare - welfare.mean()

        def surrogate(w):
            logp, _ = self.log_probs(w, val)
            return jnp.sum(logp.sum((1, 2)) * adv) / self.batch

        (g_eta,) = pullback(jax.grad(surrogate)(w_hat))
        if self.direct:
            g_eta = g_eta + jax.grad(self.designer_objective)(state.eta, val)
        opt = optax.adam(self.designer_lr)
        upd, opt_state = opt.update(-g_eta, state.opt, state.eta)
        eta = optax.apply_updates(state.eta, upd) if self.designer_lr > 0 else state.eta
        new = TaxTrainState(lax.stop_gradient(w_hat), eta, opt_state, val, jax.random.key_data(key))
        return new, {"welfare": welfare.mean(), "product": val.metrics.product.mean()}

    def init(self, eta0, key) -> TaxTrainState:
        k_w, k_ep, k_loop = jax.random.split(key, 3)
        n, F = self.econ.num_agents, self.num_features
        w = self.init_scale * jax.random.normal(k_w, (n, F, NUM_PLANS), self.econ.skills.dtype)
        eta0 = jnp.asarray(eta0, w.dtype)
        records = self.sample(w, eta0, k_ep)
        return TaxTrainState(w, eta0, optax.adam(self.designer_lr).init(eta0), records,
                             jax.random.key_data(k_loop))  # fmt: skip

    def evaluate(self, state: TaxTrainState, key, episodes: int = 256):
        """Planner metrics of the agents' stochastic policies at the current rates, averaged
        over ``episodes`` fresh episodes."""
        planner = PGPlanner(state.w, self.econ.num_periods, self.econ.period)
        keys = jax.random.split(key, episodes)
        rec = rollout_plans(self.econ, jax.nn.sigmoid(state.eta), planner, (), keys)
        m = rec.metrics
        return {
            "per_capita_product": m.per_capita_product.mean(),
            "product": m.product.mean(),
            "equality": m.equality.mean(),
            "per_capita_productivity": m.per_capita_productivity.mean(),
            "labour": rec.total_labour.mean(0),
            "coin": rec.coin.mean(0),
        }


@partial(jax.jit, static_argnames=("length",))
def _chunk(designer: GTBMetaGrad, states, length: int):
    def one(st):
        return lax.scan(lambda s, _: designer.iterate(s), st, None, length=length)

    states, metrics = jax.vmap(one)(states)
    return states, metrics


@jax.jit
def _init(designer: GTBMetaGrad, eta0, keys):
    return jax.vmap(lambda e, k: designer.init(e, k))(eta0, keys)


@partial(jax.jit, static_argnames=("episodes",))
def _evaluate(designer: GTBMetaGrad, states, keys, episodes: int):
    return jax.vmap(lambda s, k: designer.evaluate(s, k, episodes))(states, keys)


@dataclasses.dataclass(frozen=True)
class TaxTrainResult:
    """Outcome of :func:`train_tax` for ``K`` seeds (numpy): final ``rates (K, 7)``; the
    planner objective per capita of the training batches ``trace (iterations, K)`` and of the
    rates ``rates_trace (chunks + 1, K, 7)``; the evaluation of the final agents and rates
    (``eval_*``, ``(K,)`` or ``(K, N)``); ``status`` ``"ok"`` or ``"nonfinite"``."""

    rates: np.ndarray
    trace: np.ndarray
    rates_trace: np.ndarray
    eval_per_capita_product: np.ndarray
    eval_product: np.ndarray
    eval_equality: np.ndarray
    eval_per_capita_productivity: np.ndarray
    eval_labour: np.ndarray
    eval_coin: np.ndarray
    iterations: int
    status: str


def train_tax(designer: GTBMetaGrad, *, iterations: int, seeds: int, key, eta0=None,
              chunk: int = 100, eval_episodes: int = 256,
              callback=None) -> TaxTrainResult:  # fmt: skip
    """Train ``seeds`` independent runs (agents and, unless ``designer_lr = 0``, the tax) for
    ``iterations`` iterations from rate logits ``eta0`` (default: US federal), in jitted chunks
    of ``chunk`` iterations; ``callback(done, metrics)`` after every chunk. Then evaluate the
    final agents at the final rates on ``eval_episodes`` episodes per seed."""
    iterations = check_count(iterations, "iterations")
    seeds = check_count(seeds, "seeds")
    chunk = check_count(chunk, "chunk")
    eta0 = rates_logits(US_FEDERAL_RATES) if eta0 is None else jnp.asarray(eta0)
    if eta0.shape != (7,):
        raise ValueError(f"eta0 must have shape (7,), got {eta0.shape}")
    k_init, k_eval = jax.random.split(key)
    states = _init(designer, jnp.broadcast_to(eta0, (seeds, 7)), jax.random.split(k_init, seeds))
    traces, rates = [], [np.asarray(jax.nn.sigmoid(states.eta))]
    done = 0
    status = "ok"
    while done < iterations:
        n = min(chunk, iterations - done)
        states, metrics = _chunk(designer, states, n)
        done += n
        traces.append(np.asarray(metrics["welfare"]).T)
        rates.append(np.asarray(jax.nn.sigmoid(states.eta)))
        if not (np.all(np.isfinite(traces[-1])) and np.all(np.isfinite(np.asarray(states.w)))):
            status = "nonfinite"
            break
        if callback is not None:
            callback(done, {"welfare": traces[-1][-1].tolist(), "rates": rates[-1].tolist()})
    ev = _evaluate(designer, states, jax.random.split(k_eval, seeds), int(eval_episodes))
    ev = jax.device_get(ev)
    return TaxTrainResult(
        rates[-1], np.concatenate(traces, 0), np.stack(rates), np.asarray(ev["per_capita_product"]),
        np.asarray(ev["product"]), np.asarray(ev["equality"]),
        np.asarray(ev["per_capita_productivity"]), np.asarray(ev["labour"]),
        np.asarray(ev["coin"]), done, status,
    )  # fmt: skip
