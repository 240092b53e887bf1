"""Parameterised mean-field games (PMFG).

A PMFG is ``(S, A, H, mu0, P_{h,theta}, R_{h,theta})``: the kernel and the reward of a
representative agent in round ``h`` depend on the population's *state-action* distribution
``L_h in Delta(S x A)`` and on design parameters ``theta`` (any pytree)::

    P_{h,theta}(s' | s, a, L_h),   R_{h,theta}(s, a, L_h),   mu0 in Delta(S)

Every game implements one method, ``dynamics(h, L_h, theta, aggregate) -> Dynamics``, whose
``reward`` has shape ``(S, A)`` and whose ``kernel`` is a :class:`mfid.kernel.Kernel`
(push-forward / pull-back operator). ``h`` may be a traced integer: games are scanned over rounds.
Games whose rounds share a population-level state that is not a function of ``L_h`` alone (an
auction's remaining supply) carry it as ``aggregate``: :meth:`MeanFieldGame.initial_aggregate`
gives its value before round 0 and ``Dynamics.aggregate`` its value after each round.

**Action masks.** The actions allowed in state ``s`` may be a subset ``A(s)`` of ``A`` (at least
one per state): :attr:`MeanFieldGame.action_mask` is ``None`` (every action allowed) or a boolean
``(S, A)`` array with ``mask[s, a] = [a in A(s)]``. Policies of a masked game put zero
probability on disallowed actions; OMD's logits, the entropy, the best response and the
exploitability range over ``A(s)`` only (:func:`solvers.omd.policy_from_logits`,
:func:`mfid.values.soft_max`), so a state with a single allowed action contributes no entropy.
Rewards and kernel rows of disallowed actions are still computed (they are never played).

Example::

    import jax.numpy as jnp
    from mfid import PMFG
    P = jnp.full((2, 2, 2), 0.5)                      # any move is a coin flip
    game = PMFG.create(mu0=jnp.array([0.5, 0.5]), horizon=3, transition=P,
                       reward=lambda h, L, theta: -L.sum(1)[:, None] * jnp.ones((2, 2)))
    # state 1 may only play action 0:
    masked = PMFG.create(mu0=jnp.array([0.5, 0.5]), horizon=3, transition=P,
                         reward=jnp.zeros((2, 2)), action_mask=[[True, True], [True, False]])
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mfid.checks import check_count, check_distribution, check_kernel, is_concrete
from mfid.kernel import DenseKernel, Kernel

__all__ = ["Dynamics", "MeanFieldGame", "PMFG", "check_action_mask"]


@struct.dataclass
class Dynamics:
    """One round of a game (stackable over rounds by ``lax.scan``).

    ``reward (S, A)``; ``kernel`` the transition operator; ``aggregate`` the population-level
    state after the round (e.g. an auction's remaining supply; ``()`` for games without one);
    ``info`` any per-round quantities a game wants to expose (allocation, payments, ...).
    """

    reward: jnp.ndarray
    kernel: Kernel
    aggregate: Any = ()
    info: Any = ()


class MeanFieldGame(abc.ABC):
    """Interface of a PMFG. Subclasses are frozen pytree dataclasses with fields
    ``mu0`` (shape ``(S,)``), ``horizon`` and ``num_actions`` (static)."""

    mu0: jnp.ndarray
    horizon: int
    num_actions: int

    @property
    def num_states(self) -> int:
        """Number of states ``S`` (the length of ``mu0``)."""
        return int(self.mu0.shape[-1])

    @property
    def action_mask(self):
        """Allowed actions: ``None`` (all) or a boolean ``(S, A)`` array, ``True`` where allowed
        (see module docstring). Subclasses with state-dependent action sets override it."""
        return None

    @property
    def dtype(self):
        """The game's floating-point dtype (that of ``mu0``): OMD iterates in it."""
        return jnp.asarray(self.mu0).dtype

    @abc.abstractmethod
    def dynamics(self, h, L, theta, aggregate=()) -> Dynamics:
        """Reward and kernel of round ``h`` given the state-action distribution ``L (S, A)``
        and the population-level ``aggregate`` carried from the previous round."""

    def initial_aggregate(self, theta):
        """Population-level state before round 0 (``()`` for games without one)."""
        return ()

    def validate(self, theta=None) -> None:
        """Probe every round at three population distributions (``mu0 x uniform`` and two fixed
        mixtures of ``mu0`` with spread-out distributions) and raise ``ValueError`` on
        non-finite rewards, a kernel row that does not sum to one or negative transition mass.
        One probe serves every game and kernel (dense or structured); it is compiled once per
        game structure, so calling it before every solve costs no recompilation. A ``theta``
        whose pytree, shapes or dtypes the dynamics cannot take is refused here, naming
        ``theta``, before any solver traces it."""
        if not is_concrete(self, theta):
            return
        S, A = self.num_states, self.num_actions
        if self.action_mask is not None:
            check_action_mask(self.action_mask, S, A)
        try:
            reward, rows, mass, dense = _probe(self, theta)
        except (TypeError, ValueError) as err:  # raised while tracing the dynamics at theta
            raise ValueError(
                f"theta ({_describe(theta)}) does not fit {type(self).__name__}: its dynamics "
                f"fail on it ({type(err).__name__}: {_first_line(err)})"
            ) from None
        reward = np.asarray(reward)
        if reward.shape[2:] != (S, A):
            raise ValueError(f"reward must have shape (S, A) = {(S, A)}, got {reward.shape[2:]}")
        if not np.all(np.isfinite(reward)):
            raise ValueError("reward must be finite for every round, state and action (check theta)")
        if dense is not None:
            P = np.asarray(dense)
            if P.shape[-3:] != (S, A, S):
                raise ValueError(
                    f"transition must have shape (S, A, S) = {(S, A, S)}, got {P.shape[-3:]}"
                )
            check_kernel(P, "transition")
        rows = np.asarray(rows)
        if not np.all(np.isfinite(rows)) or not np.allclose(rows, 1.0, atol=1e-6, rtol=0.0):
            worst = float(np.nanmax(np.abs(rows - 1.0)))
            raise ValueError(
                f"transition: every kernel row P(.|s,a) must sum to 1 (worst error {worst:.3g})"
            )
        if np.any(np.asarray(mass) < -1e-9):
            raise ValueError("transition probabilities must be >= 0")


def _describe(theta) -> str:
    leaves = jax.tree_util.tree_leaves(theta)
    shapes = ", ".join(str(np.shape(x)) for x in leaves[:4]) + (", ..." if len(leaves) > 4 else "")
    return f"{type(theta).__name__} with {len(leaves)} leaves of shapes {shapes}"


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else ""


def _probe_points(game: MeanFieldGame):
    """Three state-action distributions: ``mu0 x uniform`` and two fixed mixtures of ``mu0``
    with a spread-out state distribution and non-uniform action rows (deterministic)."""
    S, A = game.num_states, game.num_actions
    dtype = game.mu0.dtype
    allowed = jnp.ones((S, A), dtype) if game.action_mask is None else game.action_mask.astype(dtype)
    out = []
    for k in range(3):
        if k == 0:
            mu, w = game.mu0, allowed
        else:
            i = jnp.arange(S * A, dtype=dtype).reshape(S, A)
            w = allowed * (0.2 + jnp.mod(0.618034 * (i + 7 * k), 1.0))
            spread = 0.2 + jnp.mod(0.381966 * (jnp.arange(S, dtype=dtype) + 3 * k), 1.0)
            mu = 0.5 * game.mu0 + 0.5 * spread / jnp.sum(spread)
        out.append(mu[:, None] * w / jnp.sum(w, axis=1, keepdims=True))
    return jnp.stack(out)


@jax.jit
def _probe(game: MeanFieldGame, theta):
    """Rewards, kernel row sums ``P 1`` and pushed mass of every round at every probe point
    (and the dense kernel for dense games)."""
    S = game.num_states
    agg = game.initial_aggregate(theta)
    Ls = _probe_points(game)

    def one(L, h):
        dyn = game.dynamics(h, L, theta, agg)
        return dyn.reward, dyn.kernel.pull(jnp.ones(S, L.dtype)), dyn.kernel.push(L), dyn.kernel

    hs = jnp.arange(game.horizon)
    reward, rows, mass, kernel = jax.vmap(lambda L: jax.vmap(lambda h: one(L, h))(hs))(Ls)
    return reward, rows, mass, kernel.P if isinstance(kernel, DenseKernel) else None


def check_action_mask(mask, num_states: int, num_actions: int, name: str = "action_mask"):
    """The mask as a boolean ``(S, A)`` array, or ``ValueError`` naming ``name`` unless it has
    shape ``(S, A)``, holds booleans (or 0/1) and allows at least one action in every state."""
    arr = np.asarray(mask)
    if arr.shape != (num_states, num_actions):
        raise ValueError(
            f"{name} must have shape (S, A) = {(num_states, num_actions)}, got {arr.shape}"
        )
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "iuf" or not np.all((arr == 0) | (arr == 1)):
            raise ValueError(f"{name} must be boolean (True = allowed), got dtype {arr.dtype}")
        arr = arr.astype(bool)
    empty = np.flatnonzero(~arr.any(axis=1))
    if empty.size:
        raise ValueError(
            f"{name} must allow at least one action in every state; states {empty.tolist()} "
            "allow none"
        )
    return jnp.asarray(arr)


def _as_fn(x, name: str, ndim: int):
    """A dense table (time-independent ``ndim`` axes or with a leading ``H`` axis) or a callable."""
    if callable(x):
        return None, x
    try:
        arr = jnp.asarray(x)
    except TypeError:
        raise ValueError(f"{name} must be an array of numbers or a callable") from None
    if not jnp.issubdtype(arr.dtype, jnp.number):
        raise ValueError(f"{name} must be an array of numbers or a callable, got {arr.dtype}")
    if arr.ndim not in (ndim, ndim + 1):
        raise ValueError(
            f"{name} must have {ndim} axes (or {ndim + 1} with a leading horizon axis)"
        )
    return arr, None


@struct.dataclass
class PMFG(MeanFieldGame):
    """A PMFG given by dense tables or by functions ``(h, L, theta) -> array``.

    ``transition``: ``P[s, a, s']`` of shape ``(S, A, S)`` / ``(H, S, A, S)`` or a callable.
    ``reward``: ``R[s, a]`` of shape ``(S, A)`` / ``(H, S, A)`` or a callable.
    ``action_mask``: ``None`` (all actions allowed) or a boolean ``(S, A)`` array of allowed
    actions (at least one per state). Use :meth:`PMFG.create`, which sorts tables from callables
    and validates the input.
    """

    mu0: jnp.ndarray
    P: Any = None
    R: Any = None
    horizon: int = struct.field(pytree_node=False, default=1)
    num_actions: int = struct.field(pytree_node=False, default=1)
    transition_fn: Callable | None = struct.field(pytree_node=False, default=None)
    reward_fn: Callable | None = struct.field(pytree_node=False, default=None)
    action_mask: Any = None

    @classmethod
    def create(
        cls,
        mu0,
        horizon: int,
        transition,
        reward,
        num_actions: int | None = None,
        action_mask=None,
    ):
        """A validated PMFG. ``mu0 (S,)``: the initial distribution. ``transition``: ``P[s, a, s']``
        of shape ``(S, A, S)`` or ``(H, S, A, S)``, or a callable ``(h, L, theta) -> (S, A, S)``.
        ``reward``: ``R[s, a]`` of shape ``(S, A)`` or ``(H, S, A)``, or a callable
        ``(h, L, theta) -> (S, A)``. ``num_actions``: ``A``, required when both are callables.
        ``action_mask``: ``None`` or a boolean ``(S, A)`` array of allowed actions. ``ValueError``
        for a ``mu0`` that is not a distribution, a kernel row that does not sum to 1, shapes that
        disagree, a non-finite reward or a state without an allowed action."""
        horizon = check_count(horizon, "horizon")
        check_distribution(mu0, "mu0")
        mu0 = jnp.asarray(mu0)
        P, tfn = _as_fn(transition, "transition", 3)
        R, rfn = _as_fn(reward, "reward", 2)
        S = mu0.shape[0]
        if num_actions is not None:
            num_actions = check_count(num_actions, "num_actions")
        if num_actions is None:
            for arr in (P, R):
                if arr is not None:
                    num_actions = int(arr.shape[-2] if arr is P else arr.shape[-1])
                    break
            else:
                raise ValueError("num_actions is required when transition and reward are callables")
        if P is not None:
            if P.shape[-3:] != (S, num_actions, S) or (P.ndim == 4 and P.shape[0] != horizon):
                raise ValueError(
                    f"transition must have shape (S, A, S) = {(S, num_actions, S)} "
                    f"or (H, S, A, S), got {P.shape}"
                )
            check_kernel(P, "transition")
        if R is not None:
            if R.shape[-2:] != (S, num_actions) or (R.ndim == 3 and R.shape[0] != horizon):
                raise ValueError(
                    f"reward must have shape (S, A) = {(S, num_actions)} or (H, S, A), got {R.shape}"
                )
            if not np.all(np.isfinite(np.asarray(R))):
                raise ValueError("reward must be finite")
        if action_mask is not None:
            action_mask = check_action_mask(action_mask, S, num_actions)
        return cls(mu0, P, R, int(horizon), int(num_actions), tfn, rfn, action_mask)

    def dynamics(self, h, L, theta, aggregate=()) -> Dynamics:
        if self.transition_fn is not None:
            P = self.transition_fn(h, L, theta)
        else:
            P = self.P[h] if self.P.ndim == 4 else self.P
        if self.reward_fn is not None:
            R = self.reward_fn(h, L, theta)
        else:
            R = self.R[h] if self.R.ndim == 3 else self.R
        return Dynamics(jnp.asarray(R, L.dtype), DenseKernel(jnp.asarray(P, L.dtype)))
