"""Dual-RL designers (the baseline of Yang et al., AAMAS 2022).

The designer is itself a reinforcement-learning agent on the agents' timescale: in every step it
observes what MetaGrad's incentive network sees (the global state and the joint action, the
game's ``features``), *samples* an incentive action from its own policy, pays it, and learns by
REINFORCE on its own return (welfare minus the incentives paid) with an entropy bonus. It does
not differentiate through the agents' learning; each iteration is one agents' policy-gradient
step and one designer policy-gradient step on the same ``B`` episodes.

* **Discrete** (``levels = (l_1, .., l_d)``, e.g. ``(0, 1.1)``, ``(0, 1.1, 2)``,
  ``(0, 0.5, 1, 1.5, 2)``): one categorical choice among the ``d^A`` per-action level vectors
  ``k -> (levels[k_0], .., levels[k_{A-1}])`` with ``k = sum_j k_j d^j``; agent ``i`` receives the
  level of its action. Greedy: the most likely ``k``.
* **Continuous** (``levels=None``): one incentive per *agent* in ``(0, c)^n``,
  ``paid = c sigmoid(z)`` with ``z ~ N(mu(features), diag(exp(2 log_std)))`` (``log_std`` a free
  parameter vector). Greedy: ``z = mu``.

Per step the designer's policy-gradient objective on a batch (``G^D_t`` its reward-to-go with
discount ``gamma_D``, baseline the batch mean)::

    L(phi) = (1/B) sum_b sum_t alive_bt [ log pi_phi(k_bt | f_bt) (G^D_bt - mean_B G^D_t)
                                          + beta_D H(pi_phi(. | f_bt)) ],     phi <- Adam(grad L)

Example::

    import jax
    from mfid.games.escape_room import EscapeRoom
    from solvers.dual_rl import DualRL
    from solvers.finite_design import train
    from solvers.pg_agents import AgentConfig
    game = EscapeRoom.create(n=5, m=2)
    res = train(game, DualRL.create(game, levels=(0.0, 1.1)), AgentConfig(), iterations=500,
                key=jax.random.key(0), seeds=4)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from mfid.checks import check_positive
from mfid.games.escape_room import discounted_returns, sample_episodes
from solvers.finite_design import Designer, batch_metrics, incentivised_pg_step, init_mlp
from solvers.pg_agents import AgentConfig, advantages, agent_logits

__all__ = ["DISCRETE_LEVELS", "DualRL", "DualRLState", "decode_levels"]

DISCRETE_LEVELS = {
    "small": (0.0, 1.1),
    "medium": (0.0, 1.1, 2.0),
    "large": (0.0, 0.5, 1.0, 1.5, 2.0),
}


class DualRLState(NamedTuple):
    """Policy-network parameters (``{"net": ..., "log_std": (n,)}`` when continuous) and the
    Adam state."""

    params: Any
    opt: Any


def decode_levels(k, levels: tuple, num_actions: int):
    """The per-action incentive vector ``(A,)`` of the discrete designer action ``k``."""
    d = len(levels)
    digits = (k // (d ** jnp.arange(num_actions))) % d
    return jnp.asarray(levels, jnp.result_type(float))[digits]


@struct.dataclass
class DualRL(Designer):
    """A dual-RL designer (module docstring); build it with :meth:`create`."""

    graphdef: Any = struct.field(pytree_node=False, default=None)
    levels: tuple | None = struct.field(pytree_node=False, default=(0.0, 1.1))
    num_agents: int = struct.field(pytree_node=False, default=1)
    num_actions: int = struct.field(pytree_node=False, default=3)
    hidden: tuple = struct.field(pytree_node=False, default=(64, 32))
    learning_rate: float = struct.field(pytree_node=False, default=1e-3)
    entropy: float = struct.field(pytree_node=False, default=0.01)
    discount: float = struct.field(pytree_node=False, default=0.99)
    init_log_std: float = struct.field(pytree_node=False, default=0.0)
    max_incentive: float = struct.field(pytree_node=False, default=2.0)

    @property
    def name(self) -> str:
        return "dual-rl-c" if self.levels is None else f"dual-rl-d{len(self.levels)}"

    @classmethod
    def create(
        cls,
        game,
        *,
        levels: tuple | None = (0.0, 1.1),
        hidden: tuple = (64, 32),
        learning_rate: float = 1e-3,
        entropy: float = 0.01,
        discount: float = 0.99,
        init_log_std: float = 0.0,
        max_incentive: float = 2.0,
    ) -> DualRL:
        """``levels``: the discrete incentive levels (``None``: continuous in ``(0,
        max_incentive)^n``); ``hidden`` the policy MLP; Adam ``learning_rate``; ``entropy`` bonus;
        the designer's ``discount``; ``init_log_std`` of the continuous policy."""
        if levels is not None:
            levels = tuple(float(x) for x in levels)
            if len(levels) < 2 or any(not (0.0 <= x <= max_incentive) for x in levels):
                raise ValueError(
                    f"levels must hold >= 2 incentives in [0, {max_incentive}], got {levels}"
                )
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must be a non-empty tuple of positive widths, got {hidden}")
        check_positive(learning_rate, "learning_rate")
        check_positive(entropy, "entropy", allow_zero=True)
        check_positive(max_incentive, "max_incentive")
        if not 0.0 <= discount <= 1.0:
            raise ValueError(f"discount must lie in [0, 1], got {discount!r}")
        dout = game.num_agents if levels is None else len(levels) ** game.num_actions
        graphdef, _ = init_mlp(jax.random.key(0), game.feature_dim, hidden, dout)
        return cls(graphdef, levels, game.num_agents, game.num_actions, hidden,
                   float(learning_rate), float(entropy), float(discount), float(init_log_std),
                   float(max_incentive))  # fmt: skip

    def _dout(self) -> int:
        return self.num_agents if self.levels is None else len(self.levels) ** self.num_actions

    def init(self, game, agents: AgentConfig, key) -> DualRLState:
        _, net = init_mlp(key, game.feature_dim, self.hidden, self._dout(), 0.0, 0.1)
        params = {"net": net}
        if self.levels is None:
            params["log_std"] = jnp.full(
                (self.num_agents,), self.init_log_std, jnp.result_type(float)
            )
        return DualRLState(params, optax.adam(self.learning_rate).init(params))

    def _out(self, params, features):
        return nnx.merge(self.graphdef, params["net"])(features)

    def pay(self, dstate: DualRLState, features, actions, key, greedy):
        out = self._out(dstate.params, features)
        if self.levels is None:
            std = jnp.exp(dstate.params["log_std"])
            z = out if greedy else out + std * jax.random.normal(key, out.shape, out.dtype)
            return self.max_incentive * jax.nn.sigmoid(z), z
        k = jnp.argmax(out) if greedy else jax.random.categorical(key, out)
        return decode_levels(k, self.levels, self.num_actions)[actions], k

    def log_prob_entropy(self, params, features, action):
        """``(log pi(action | features), entropy of pi(. | features))`` of one step."""
        out = self._out(params, features)
        if self.levels is None:
            log_std = params["log_std"]
            z = (action - out) * jnp.exp(-log_std)
            logp = jnp.sum(-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi))
            return logp, jnp.sum(log_std + 0.5 * math.log(2 * math.pi * math.e))
        logits = jax.nn.log_softmax(out)
        return logits[action], -jnp.sum(jnp.exp(logits) * logits)

    def objective(self, params, game, episodes):
        """The designer's REINFORCE objective ``L(phi)`` (module docstring) on a batch."""
        feats = jax.vmap(jax.vmap(game.features))(episodes.state, episodes.actions)
        lp = jax.vmap(jax.vmap(self.log_prob_entropy, (None, 0, 0)), (None, 0, 0))
        logp, ent = lp(params, feats, episodes.designer_action)
        reward = episodes.welfare - episodes.incentive.sum(-1)
        g = discounted_returns(reward, episodes.alive, self.discount)
        adv = advantages(g, episodes.alive, True)
        mask = episodes.alive.astype(logp.dtype)
        return jnp.sum(logp * adv + self.entropy * ent * mask) / episodes.actions.shape[0]

    def iterate(self, game, agents: AgentConfig, state, key):
        ep, dstate = state.episodes, state.designer
        theta = incentivised_pg_step(game, agents, state.agents, ep, step=state.iteration)
        grads = jax.grad(self.objective)(dstate.params, game, ep)
        opt = optax.adam(self.learning_rate)
        neg = jax.tree_util.tree_map(jnp.negative, grads)
        upd, opt_state = opt.update(neg, dstate.opt, dstate.params)
        new = DualRLState(optax.apply_updates(dstate.params, upd), opt_state)
        episodes = sample_episodes(game, agent_logits, theta, key, agents.batch, self.pay, new)
        return theta, new, episodes, batch_metrics(episodes, game.num_actions)
