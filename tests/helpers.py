"""Shared test helpers: finite differences, tree flattening, a no-recompile check, brute-force
trajectory enumeration, random L-dependent PMFGs, a route-choice game and its logit
equilibrium solved by scipy."""

import contextlib
import itertools
import logging

import jax
import jax.numpy as jnp
import numpy as np


def flat(tree):
    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree_util.tree_leaves(tree)])


def rel(a, b):
    a, b = flat(a), flat(b)
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def random_direction(key, tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [jax.random.normal(k, np.shape(x)) for k, x in zip(keys, leaves, strict=True)]
    )


def fd_directional(f, theta, direction, h=1e-5):
    """Central difference ``(f(theta + h d) - f(theta - h d)) / 2h``."""
    plus = jax.tree_util.tree_map(lambda x, d: x + h * d, theta, direction)
    minus = jax.tree_util.tree_map(lambda x, d: x - h * d, theta, direction)
    return (float(f(plus)) - float(f(minus))) / (2 * h)


@contextlib.contextmanager
def compiles():
    """Collect the names of the XLA compilations inside the block (from ``jax.log_compiles``)."""
    names: list[str] = []

    class _Handler(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if msg.startswith("Compiling "):
                names.append(msg.split(" ")[1])

    handler = _Handler(level=logging.DEBUG)
    logger = logging.getLogger("jax")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles():
            yield names
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


@contextlib.contextmanager
def no_recompile(*names):
    """Fail if any jitted function whose name contains one of ``names`` compiles in the block."""
    with compiles() as seen:
        yield
    hits = [n for n in seen if any(k in n for k in names)]
    assert not hits, f"recompiled: {hits}"


def brute_force_flow_and_value(game, theta, pi, tau):
    """Enumerate every trajectory ``(s_0, a_0, ..., s_{H-1}, a_{H-1})`` of a small dense-kernel
    game in numpy. Returns ``(L, value)``: the flow ``L (H, S, A)`` of ``pi``, round by round from
    the trajectory distribution, and ``value(pol)``, the regularised return of any policy against
    that fixed flow (``0 log 0 = 0``, so actions a policy never plays carry no entropy);
    ``value.q(pol, h, s, a)`` is the return of playing ``a`` in ``s`` at round ``h`` and ``pol``
    afterwards."""
    H, S, A = game.horizon, game.num_states, game.num_actions
    pi = np.asarray(pi)
    mu0 = np.asarray(game.mu0)
    P, R, L = [], [], np.zeros((H, S, A))
    for h in range(H):
        for path in itertools.product(*[range(S), range(A)] * h, range(S), range(A)):
            p = mu0[path[0]]
            for k in range(h):
                s, a, s2 = path[2 * k], path[2 * k + 1], path[2 * k + 2]
                p *= pi[k, s, a] * P[k][s, a, s2]
            L[h, path[-2], path[-1]] += p * pi[h, path[-2], path[-1]]
        dyn = game.dynamics(h, jnp.asarray(L[h]), theta)
        P.append(np.asarray(dyn.kernel.P))
        R.append(np.asarray(dyn.reward))
    paths = np.array(list(itertools.product(*[range(S), range(A)] * H)))
    st, ac = paths[:, 0::2], paths[:, 1::2]
    rew = sum(R[k][st[:, k], ac[:, k]] for k in range(H))
    trans = np.prod([P[k][st[:, k], ac[:, k], st[:, k + 1]] for k in range(H - 1)], axis=0)
    start = mu0[st[:, 0]] * trans

    def safe_log(x):
        return np.log(np.where(x > 0, x, 1.0))

    def value(pol):
        probs = np.stack([np.asarray(pol)[k, st[:, k], ac[:, k]] for k in range(H)], axis=1)
        p = start * probs.prod(1)
        ent = tau * safe_log(probs).sum(1)
        return float(np.sum(p * (rew - ent)))

    def q(pol, h, s, a):
        pol = np.asarray(pol)
        total = 0.0
        for path in itertools.product(*[range(S), range(A)] * (H - 1 - h)):
            p, ret, prev = 1.0, R[h][s, a], (s, a)
            for k in range(h + 1, H):
                s2, a2 = path[2 * (k - h - 1)], path[2 * (k - h - 1) + 1]
                p *= P[k - 1][prev[0], prev[1], s2] * pol[k, s2, a2]
                ret += R[k][s2, a2] - tau * safe_log(pol[k, s2, a2])
                prev = (s2, a2)
            total += p * ret
        return total

    value.q = q
    return L, value


def coupled_pmfg(seed=0, S=3, A=2, H=3, action_mask=None):
    """A small dense PMFG whose kernel and reward both depend on the state-action distribution
    (an ``L``-dependent mixing weight in ``[0.1, 0.6]`` between two kernels, a bilinear reward);
    returns ``(game, theta)`` with the scalar ``theta = 0.7``."""
    from mfid import PMFG

    rng = np.random.default_rng(seed)
    base = rng.dirichlet(np.ones(S), size=(H, S, A))
    push = rng.dirichlet(np.ones(S), size=(S, A))
    R0 = rng.normal(size=(H, S, A))
    C = rng.normal(size=(S, A, S, A))

    def transition(h, L, theta):
        w = 0.5 * L.sum() * jnp.tanh(L[0, 0] * 4.0) + 0.1
        return (1 - w) * jnp.asarray(base)[h] + w * jnp.asarray(push)

    def reward(h, L, theta):
        return jnp.asarray(R0)[h] + jnp.einsum("sakb,kb->sa", C, L) + theta * L.sum(1)[:, None]

    mu0 = rng.dirichlet(np.ones(S))
    game = PMFG.create(mu0, H, transition, reward, num_actions=A, action_mask=action_mask)
    return game, 0.7


def random_pmfg(seed=0, S=4, A=3, H=3, action_mask=None):
    """A random PMFG whose reward and kernel both depend on ``L`` and on every leaf of
    ``theta = {"r" (S, A), "p" (S, A), "c" ()}``; returns ``(game, theta)``."""
    from mfid import PMFG

    rng = np.random.default_rng(seed)
    R0 = jnp.asarray(rng.normal(size=(H, S, A)))
    Plog = jnp.asarray(rng.normal(size=(H, S, A, S)))

    def reward(h, L, theta):
        mu = L.sum(-1)
        return R0[h] + theta["r"] - 0.5 * mu[:, None] + 0.3 * jnp.tanh(theta["c"]) * L

    def transition(h, L, theta):
        mu = L.sum(-1)
        return jax.nn.softmax(Plog[h] + theta["p"][:, :, None] * mu[None, None, :], axis=-1)

    mu0 = jnp.asarray(rng.dirichlet(np.ones(S)))
    game = PMFG.create(mu0, H, transition, reward, num_actions=A, action_mask=action_mask)
    theta = {
        "r": jnp.asarray(0.3 * rng.normal(size=(S, A))),
        "p": jnp.asarray(rng.normal(size=(S, A))),
        "c": jnp.asarray(0.5),
    }
    return game, theta


# One round, two types, three routes; a route's payoff c[s, a] falls with its total load.
CONGESTION_C = np.array([[1.0, 0.6, 0.2], [0.1, 0.9, 0.5]])
CONGESTION_KAPPA, CONGESTION_TAU = 2.0, 0.25
CONGESTION_MU0 = np.array([0.4, 0.6])


def softmax_np(z, mask=None):
    """Softmax over the last axis in numpy, over the entries ``mask`` allows (``None``: all)."""
    if mask is not None:
        z = np.where(mask, z, -np.inf)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def congestion_game(mask=None):
    """The route-choice game: reward ``c[s, a] - kappa m(a)``, ``m(a) = sum_s L(s, a)``;
    ``mask`` an optional ``(2, 3)`` action mask."""
    from mfid import PMFG

    def reward(h, L, theta):
        return jnp.asarray(CONGESTION_C) - CONGESTION_KAPPA * L.sum(0)[None, :]

    return PMFG.create(CONGESTION_MU0, 1, np.full((2, 3, 2), 0.5), reward, action_mask=mask)


def congestion_logit_equilibrium(mask=None):
    """Its logit equilibrium from scipy: ``pi(.|s) = softmax over A(s) of (c_s - kappa m) / tau``
    with ``m(a) = sum_s mu0(s) pi(a|s)``, solved by ``scipy.optimize.root``."""
    from scipy.optimize import root

    def policy(m):
        return softmax_np((CONGESTION_C - CONGESTION_KAPPA * m[None, :]) / CONGESTION_TAU, mask)

    def residual(m):
        return CONGESTION_MU0 @ policy(m) - m

    sol = root(residual, np.full(3, 1 / 3), tol=1e-14)
    assert np.abs(residual(sol.x)).max() < 1e-14
    return policy(sol.x)
