"""Meta-gradient incentive design (MetaGrad; Yang et al., AAMAS 2022).

The designer's incentive network maps the global state and the joint action (the game's
``features(state, actions)``) to one incentive per action in ``(0, c)`` (``c = max_incentive``,
2 in Escape Room); agent ``i`` receives the value of the action it took::

    I_eta(s, a) = c * sigmoid(MLP_eta(features(s, a)))  in (0, c)^A,     paid_i = I_eta(s, a)[a_i]

One iteration on the trajectory ``tau`` of the current agents ``theta`` (a batch of ``B`` episodes)::

    (1) theta_hat_i(eta) = theta_i + alpha grad_{theta_i} J_i(theta_i; tau, G^i(eta))
        (each agent's policy-gradient step, :func:`solvers.pg_agents.pg_step`, on its return
        G^i_t(eta) = sum_{t'>=t} gamma^(t'-t) (r^i_t' + paid_i,t'(eta)); a pure function of eta)
    (2) tau_hat ~ the updated agents theta_hat (and the incentives I_eta): validation trajectory
    (3) eta <- Adam( grad_eta (1/B) sum_b sum_t sum_i log pi_{theta_hat_i(eta)}(a_hat | o_hat)
                                                          (G^D_t - mean_B G^D_t) )
        with the designer's return G^D_t = sum_{t'>=t} gamma_D^(t'-t) (welfare_t' - paid_t')
        on tau_hat (``cost_in_return=False``: welfare only, as published); the derivative goes
        through step (1) by ``jax.vjp`` of theta_hat(eta)
    (4) incentive cost, a separate optimiser as published: eta <- Adam_cost( -grad_eta
        (1/B) sum_b sum_t sum_i paid_i,t(eta) on tau )   (both gradients taken at the same eta)
    (5) pipelining: theta <- theta_hat, tau <- tau_hat

So ``B`` new episodes per iteration. The loop, seeds, greedy evaluation, progress and checkpoints
are :func:`solvers.finite_design.train`'s.

**Reusing the designer on another finite-agent game.** MetaGrad needs only the game protocol of
:mod:`mfid.games.escape_room` (``reset / observe / features / step``, sizes ``num_agents``,
``num_actions``, ``obs_dim``, ``feature_dim``, ``horizon``) and an *additive* incentive: the
agents' return is extrinsic reward plus ``paid``, and the designer's per-step reward is the game's
``welfare`` minus the incentives paid. A game whose incentive is not a free per-action payment
(e.g. a tax schedule applied to incomes, with rebates) subclasses :class:`MetaGrad` and overrides
:meth:`MetaGrad.paid` (``(params, episodes, features) -> (B, T, n)``, differentiable in
``params``) and :meth:`MetaGrad.pay` (one step during sampling); ``cost_learning_rate = 0``
switches the cost optimiser off for budget-balanced schemes. The trajectory is data: only the
rewards' dependence on ``eta`` is differentiated, not the states' (the published estimator).

Example::

    import jax
    from mfid.games.escape_room import EscapeRoom
    from solvers.finite_design import train
    from solvers.metagrad import MetaGrad
    from solvers.pg_agents import AgentConfig
    game = EscapeRoom.create(n=5, m=2)
    res = train(game, MetaGrad.create(game), AgentConfig(), iterations=2000,
                key=jax.random.key(0), seeds=8)
    res.final_objective.mean()          # greedy designer objective (optimum 26)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from mfid.checks import check_positive
from mfid.games.escape_room import Episodes, discounted_returns, sample_episodes
from solvers.finite_design import Designer, batch_metrics, incentivised_pg_step, init_mlp
from solvers.pg_agents import AgentConfig, advantages, agent_logits, policy_log_probs

__all__ = ["MetaGrad", "MetaGradState", "designer_surrogate", "inner_step", "meta_gradient"]


class MetaGradState(NamedTuple):
    """Incentive-network parameters and the two Adam states (incentive, cost)."""

    params: Any
    opt: Any
    cost_opt: Any


@struct.dataclass
class MetaGrad(Designer):
    """The MetaGrad designer (module docstring); build it with :meth:`create`."""

    graphdef: Any = struct.field(pytree_node=False, default=None)
    hidden: tuple = struct.field(pytree_node=False, default=(64, 32))
    learning_rate: float = struct.field(pytree_node=False, default=3e-3)
    cost_learning_rate: float = struct.field(pytree_node=False, default=3e-4)
    discount: float = struct.field(pytree_node=False, default=0.99)
    init_bias: float = struct.field(pytree_node=False, default=-2.0)
    max_incentive: float = struct.field(pytree_node=False, default=2.0)
    cost_in_return: bool = struct.field(pytree_node=False, default=True)
    cost_weight: float | None = struct.field(pytree_node=False, default=None)
    optimizer: str = struct.field(pytree_node=False, default="adam")
    name = "metagrad"

    @classmethod
    def create(
        cls,
        game,
        *,
        hidden: tuple = (64, 32),
        learning_rate: float = 3e-3,
        cost_learning_rate: float = 3e-4,
        discount: float = 0.99,
        init_bias: float = -2.0,
        max_incentive: float = 2.0,
        cost_in_return: bool = True,
        cost_weight: float | None = None,
        optimizer: str = "adam",
    ) -> MetaGrad:
        """``hidden`` widths of the incentive MLP; Adam learning rates of the meta-gradient and
        of the cost; the designer's ``discount``; ``init_bias`` the initial output bias (initial
        incentives about ``max_incentive * sigmoid(init_bias)``)."""
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must be a non-empty tuple of positive widths, got {hidden}")
        check_positive(learning_rate, "learning_rate")
        check_positive(cost_learning_rate, "cost_learning_rate", allow_zero=True)
        check_positive(max_incentive, "max_incentive")
        if not 0.0 <= discount <= 1.0:
            raise ValueError(f"discount must lie in [0, 1], got {discount!r}")
        graphdef, _ = init_mlp(jax.random.key(0), game.feature_dim, hidden, game.num_actions)
        return cls(graphdef, hidden, float(learning_rate), float(cost_learning_rate),
                   float(discount), float(init_bias), float(max_incentive),
                   bool(cost_in_return),
                   None if cost_weight is None else float(cost_weight), optimizer)  # fmt: skip

    # -- the incentive function ---------------------------------------------------------------
    def _optimisers(self):
        make = {"adam": optax.adam, "sgd": optax.sgd}[self.optimizer]
        return make(self.learning_rate), make(self.cost_learning_rate)

    def init(self, game, agents: AgentConfig, key) -> MetaGradState:
        _, params = init_mlp(
            key, game.feature_dim, self.hidden, game.num_actions, self.init_bias, 1.0
        )
        opt, cost_opt = self._optimisers()
        return MetaGradState(params, opt.init(params), cost_opt.init(params))

    def values(self, params, features):
        """Incentive per action ``(..., A)`` in ``(0, max_incentive)`` for ``features (..., F)``."""
        net = nnx.merge(self.graphdef, params)
        return self.max_incentive * jax.nn.sigmoid(net(features))

    def pay(self, dstate: MetaGradState, features, actions, key, greedy):
        return self.values(dstate.params, features)[actions], ()

    def paid(self, params, episodes: Episodes, features):
        """``paid_{b,t,i}(eta)`` ``(B, T, n)`` on recorded episodes (zero where not alive)."""
        v = self.values(params, features)
        taken = jnp.take_along_axis(v, episodes.actions, axis=-1)
        return taken * episodes.alive[..., None].astype(taken.dtype)

    # -- one iteration ------------------------------------------------------------------------
    def iterate(self, game, agents: AgentConfig, state, key):
        tau, dstate = state.episodes, state.designer
        feats = _features(game, tau)
        theta_hat, meta_grad = meta_gradient(self, game, agents, state.agents, tau, dstate, key,
                                             step=state.iteration)  # fmt: skip
        tau_hat, g_eta = meta_grad
        g_cost = jax.grad(lambda p: jnp.sum(self.paid(p, tau, feats)) / agents.batch)(dstate.params)
        opt, cost_opt = self._optimisers()
        if self.cost_weight is None:  # two optimisers, as published
            neg = jax.tree_util.tree_map(jnp.negative, g_eta)
            upd, opt_state = opt.update(neg, dstate.opt, dstate.params)
            cupd, cost_state = cost_opt.update(g_cost, dstate.cost_opt, dstate.params)
            params = optax.apply_updates(optax.apply_updates(dstate.params, upd), cupd)
        else:  # one optimiser on the penalised objective
            g = jax.tree_util.tree_map(lambda a, b: self.cost_weight * b - a, g_eta, g_cost)
            upd, opt_state = opt.update(g, dstate.opt, dstate.params)
            params, cost_state = optax.apply_updates(dstate.params, upd), dstate.cost_opt
        new = MetaGradState(params, opt_state, cost_state)
        metrics = batch_metrics(tau_hat, game.num_actions)
        return theta_hat, new, tau_hat, metrics


def meta_gradient(designer: MetaGrad, game, agents: AgentConfig, theta, tau, dstate, key,
                  step=0):  # fmt: skip
    """Steps (1)-(3) of the module docstring: ``(theta_hat, (tau_hat, grad_eta S))`` where
    ``S(eta) = designer_surrogate(theta_hat(eta), tau_hat)`` with the validation trajectory
    ``tau_hat`` (sampled from ``theta_hat`` with ``key``) held fixed."""
    feats = _features(game, tau)
    theta_hat, pullback = jax.vjp(
        lambda p: inner_step(designer, game, agents, theta, tau, feats, p, step), dstate.params
    )
    theta_hat = jax.lax.stop_gradient(theta_hat)
    tau_hat = sample_episodes(
        game, agent_logits, theta_hat, key, agents.batch, designer.pay, dstate
    )
    g_theta = jax.grad(designer_surrogate, argnums=3)(designer, game, agents, theta_hat, tau_hat)
    (g_eta,) = pullback(g_theta)
    return theta_hat, (tau_hat, g_eta)


def _features(game, episodes: Episodes):
    return jax.vmap(jax.vmap(game.features))(episodes.state, episodes.actions)


def inner_step(designer: MetaGrad, game, agents: AgentConfig, theta, tau, features, params,
               step=0):  # fmt: skip
    """``theta_hat(eta)``: every agent's policy-gradient step (update number ``step``) on ``tau``
    with the incentives of ``params`` (step (1) of the module docstring); differentiable in
    ``params``."""
    paid = designer.paid(params, tau, features)
    return incentivised_pg_step(game, agents, theta, tau, paid, step)


def designer_surrogate(designer: MetaGrad, game, agents: AgentConfig, theta_hat, tau_hat):
    """``(1/B) sum_b sum_t sum_i log pi_{theta_hat_i}(a_hat | o_hat) (G^D_t - mean_B G^D_t)``:
    the designer's policy-gradient surrogate on the validation trajectory (step (3))."""
    reward = tau_hat.welfare
    if designer.cost_in_return:
        reward = reward - tau_hat.incentive.sum(-1)
    g = discounted_returns(reward, tau_hat.alive, designer.discount)
    adv = advantages(g, tau_hat.alive, agents.baseline)
    logp, _ = policy_log_probs(game, theta_hat, tau_hat)
    return jnp.sum(logp.sum(-1) * adv) / tau_hat.actions.shape[0]
