"""Independent policy-gradient learners for finite-agent games (the agents of
the incentive designers in :mod:`solvers.finite_design`).

Agent ``i`` has its own parameters ``theta_i = (W_i, b_i)`` (no sharing; stacked along a leading
agent axis and ``vmap``ped) and a linear-softmax policy on its observation ``o_i``::

    pi_{theta_i}(a | o_i) = softmax(o_i W_i + b_i)_a,       W_i (obs_dim, A),  b_i (A,)

It learns by REINFORCE with an entropy bonus on its own (incentivised) return. On a batch of
``B`` episodes, with returns ``G^i_t`` (reward-to-go, discount ``gamma``) and the batch-mean
baseline ``b^i_t = mean_B G^i_t`` (over the episodes still alive at ``t``)::

    J_i(theta_i) = (1/B) sum_b sum_t alive_bt [ log pi_i(a_bti | o_bti) (G^i_bt - b^i_t)
                                                + beta H(pi_i(. | o_bti)) ]
    theta_i     <- theta_i + alpha grad_{theta_i} J_i               (optax.sgd, learning rate alpha)

The entropy coefficient may decay linearly from ``entropy`` to ``entropy_final`` over the first
``entropy_decay`` updates (``beta_k = entropy_final + (entropy - entropy_final) max(0, 1 -
k / entropy_decay)``; ``entropy_decay = 0``: constant): exploration while the agents coordinate,
then nearly deterministic play. The update is a pure, differentiable function of the returns, so a designer may differentiate the
updated parameters with respect to whatever shaped the returns (:mod:`solvers.metagrad`).
Evaluation episodes are greedy (``argmax`` of the logits).

Example::

    import jax
    from mfid.games.escape_room import EscapeRoom, sample_episodes, discounted_returns
    from solvers.pg_agents import AgentConfig, agent_logits, init_agents, pg_step
    game = EscapeRoom.create(n=5, m=2)
    cfg = AgentConfig()
    theta = init_agents(game, cfg, jax.random.key(0))
    ep = sample_episodes(game, agent_logits, theta, jax.random.key(1), cfg.batch)
    theta = pg_step(game, cfg, theta, ep, discounted_returns(ep.rewards, ep.alive, cfg.discount))
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct

from mfid.checks import check_count, check_positive, check_probability

__all__ = [
    "AgentConfig",
    "agent_logits",
    "advantages",
    "init_agents",
    "pg_objective",
    "pg_step",
    "policy_log_probs",
]


@struct.dataclass
class AgentConfig:
    """Settings of the learners (all static): ``learning_rate`` alpha, ``entropy`` beta (and its
    schedule ``entropy_final``, ``entropy_decay``), ``discount`` gamma, ``batch`` B episodes per
    update, ``init_scale`` (std of the initial weights; biases start at 0) and ``baseline``
    (subtract the batch-mean return)."""

    learning_rate: float = struct.field(pytree_node=False, default=0.03)
    entropy: float = struct.field(pytree_node=False, default=0.1)
    discount: float = struct.field(pytree_node=False, default=0.99)
    batch: int = struct.field(pytree_node=False, default=16)
    init_scale: float = struct.field(pytree_node=False, default=0.1)
    baseline: bool = struct.field(pytree_node=False, default=True)
    entropy_final: float | None = struct.field(pytree_node=False, default=None)
    entropy_decay: int = struct.field(pytree_node=False, default=0)

    def entropy_at(self, step):
        """The entropy coefficient of update ``step`` (may be traced)."""
        if self.entropy_decay <= 0 or self.entropy_final is None:
            return self.entropy
        frac = jnp.clip(1.0 - step / self.entropy_decay, 0.0, 1.0)
        return self.entropy_final + (self.entropy - self.entropy_final) * frac

    def __post_init__(self):
        check_positive(self.learning_rate, "learning_rate")
        check_positive(self.entropy, "entropy", allow_zero=True)
        if self.entropy_final is not None:
            check_positive(self.entropy_final, "entropy_final", allow_zero=True)
        check_count(self.entropy_decay, "entropy_decay", minimum=0)
        check_probability(self.discount, "discount")
        check_count(self.batch, "batch", minimum=2 if self.baseline else 1)
        check_positive(self.init_scale, "init_scale", allow_zero=True)


def init_agents(game, cfg: AgentConfig, key):
    """Parameters of ``n`` independent agents: ``{"w": (n, obs_dim, A), "b": (n, A)}``."""
    n, d, A = game.num_agents, game.obs_dim, game.num_actions
    dtype = jnp.result_type(float)
    w = cfg.init_scale * jax.random.normal(key, (n, d, A), dtype)
    return {"w": w, "b": jnp.zeros((n, A), dtype)}


def _one_agent(theta_i, obs_i):
    return obs_i @ theta_i["w"] + theta_i["b"]


def agent_logits(theta, obs):
    """Logits ``(n, A)`` of every agent on its own observation row of ``obs (n, obs_dim)``."""
    return jax.vmap(_one_agent)(theta, obs)


def policy_log_probs(game, theta, episodes):
    """``(log pi_i(a_bti | o_bti) (B, T, n), entropy (B, T, n))`` of the recorded actions."""
    obs = jax.vmap(jax.vmap(game.observe))(episodes.state)
    logp = jax.nn.log_softmax(jax.vmap(jax.vmap(agent_logits, (None, 0)), (None, 0))(theta, obs))
    taken = jnp.take_along_axis(logp, episodes.actions[..., None], axis=-1)[..., 0]
    entropy = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
    return taken, entropy


def advantages(returns, alive, baseline: bool = True):
    """``returns - mean over the alive episodes`` (per step and agent), zero where not alive.

    ``returns`` has shape ``(B, T, ...)`` and ``alive`` ``(B, T)``."""
    mask = alive.reshape(alive.shape + (1,) * (returns.ndim - alive.ndim)).astype(returns.dtype)
    if not baseline:
        return returns * mask
    count = jnp.maximum(mask.sum(0), 1.0)
    return (returns - ((returns * mask).sum(0) / count)[None]) * mask


def pg_objective(game, cfg: AgentConfig, theta, episodes, returns, step=0):
    """``sum_i J_i(theta_i)`` (the module docstring) at update ``step`` (the entropy schedule);
    its gradient in ``theta_i`` is agent i's.

    The advantages do not depend on ``theta``, so the gradient in ``theta`` is linear in
    ``returns`` and stays differentiable in whatever the returns depend on."""
    logp, entropy = policy_log_probs(game, theta, episodes)
    adv = advantages(returns, episodes.alive, cfg.baseline)
    mask = episodes.alive[..., None].astype(logp.dtype)
    batch = episodes.actions.shape[0]
    return jnp.sum(logp * adv + cfg.entropy_at(step) * entropy * mask) / batch


def pg_step(game, cfg: AgentConfig, theta, episodes, returns, step=0):
    """One policy-gradient ascent step of every agent (``optax.sgd``) at update ``step``,
    differentiable in ``returns (B, T, n)`` (agent i's incentivised reward-to-go)."""
    grads = jax.grad(pg_objective, argnums=2)(game, cfg, theta, episodes, returns, step)
    opt = optax.sgd(cfg.learning_rate)
    updates, _ = opt.update(jax.tree_util.tree_map(jnp.negative, grads), opt.init(theta))
    return optax.apply_updates(theta, updates)
