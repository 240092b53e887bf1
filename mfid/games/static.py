"""Static games for incentive design: a game is its pseudo-gradient and the
planner's social cost.

``n`` scalar decisions ``x in R^n`` (player ``i`` controls ``x_i``) with private costs ``J_i(x)``.
A game is given by its *pseudo-gradient* and the planner's *social cost*::

    F(x) = (d J_i / d x_i (x))_i        (jittable, need not be symmetric)
    S(x)                                (the planner's cost; only S and the joint action x are
                                         what the social-gradient designer uses)

Incentives follow the tax convention: player ``i`` pays ``p_i x_i`` on top of ``J_i``, so the
equilibrium ``x*(p)`` of the incentivised game solves::

    F(x*(p)) + p = 0

When ``F`` is strongly monotone (``<F(x) - F(y), x - y> >= m ||x - y||^2``, ``m > 0``; for an
affine game: ``A + A^T`` positive definite) ``x*(p)`` is unique for every ``p``, the planner's
induced cost ``Phi(p) = S(x*(p))`` decreases along ``dp/dt = grad S(x*(p))``, and its unique
minimiser is ``p* = -F(x^s)``, ``x^s = argmin S`` (the incentive that makes the social optimum an
equilibrium). Solvers live in :mod:`solvers.social_gradient`; this module only defines games.

Ready games:

* :class:`AffineGame` — ``F(x) = A x + b``, ``S(x) = x^T Q x / 2 + c^T x``;
  :meth:`AffineGame.random` draws a strongly monotone game with a non-symmetric ``A``;
  :meth:`AffineGame.non_monotone` is the counterexample (Jacobian ``[[1, 10], [0, 1]]``,
  ``grad S = (1, 1)``) on which ``grad S`` is *not* a descent direction of ``Phi``.
* :class:`Cournot` — a Cournot oligopoly with linear inverse demand; the planner minimises
  minus total surplus; the optimal incentive is the output subsidy ``p*_i = -slope x^s_i``.
* :class:`Routing` — a nonatomic routing game (Braess network by default) with path tolls, an
  outside option and logit route choice; the optimal tolls are the marginal-cost tolls.

Games whose actions are distributions declare ``mass``: ``x >= 0`` are the masses on ``n``
options and ``mass - sum(x)`` rests on an outside option whose (reduced) cost is 0, so ``F`` is
the cost of each option *relative* to the outside option. Mirror descent on the simplex of that
mass is then a learning rule of the game (:func:`solvers.social_gradient.mirror_descent`).

Example::

    import jax
    from mfid.games.static import AffineGame
    game = AffineGame.random(jax.random.key(0), num_players=4)
    x = game.initial_action()
    game.pseudo_gradient(x), game.social_cost(x), game.social_gradient(x)
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mfid.checks import check_count, check_positive, is_concrete

__all__ = [
    "AffineGame",
    "BRAESS_INCIDENCE",
    "Cournot",
    "Routing",
    "StaticGame",
]


def _float(x, name: str, shape=None):
    """``x`` as a finite floating array (of ``shape`` when given), else ``ValueError``."""
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers, got {x!r}") from None
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return jnp.asarray(arr, jnp.result_type(float))


class StaticGame(abc.ABC):
    """Interface of a static game with ``n`` scalar decisions.

    Subclasses are frozen pytree dataclasses implementing :meth:`pseudo_gradient` ``F(x)`` and
    :meth:`social_cost` ``S(x)`` (both jittable, ``x`` of shape ``(n,)``). ``mass`` is ``None``
    for decisions in ``R^n``, or the total mass when the decisions are masses on options (see the
    module docstring)."""

    mass = None

    @property
    @abc.abstractmethod
    def num_players(self) -> int:
        """The number ``n`` of scalar decisions."""

    @abc.abstractmethod
    def pseudo_gradient(self, x):
        """``F(x) = (d J_i / d x_i)_i``, shape ``(n,)``."""

    @abc.abstractmethod
    def social_cost(self, x):
        """The planner's cost ``S(x)`` (scalar)."""

    def social_gradient(self, x):
        """``grad S(x)``, shape ``(n,)`` (automatic differentiation of :meth:`social_cost`)."""
        return jax.grad(self.social_cost)(x)

    @property
    def dtype(self):
        return jnp.result_type(float)

    def initial_action(self):
        """Where learning and equilibrium solves start by default (zeros; inside the simplex
        for games with ``mass``)."""
        return jnp.zeros(self.num_players, self.dtype)

    def check_action(self, x, name: str = "x"):
        """``x`` as a floating array of shape ``(n,)``, else ``ValueError`` naming ``name``."""
        x = jnp.asarray(x)
        if x.shape != (self.num_players,):
            raise ValueError(f"{name} must have shape ({self.num_players},), got {x.shape}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(self.dtype)
        if is_concrete(x) and not np.all(np.isfinite(np.asarray(x))):
            raise ValueError(f"{name} must be finite")
        return x


@struct.dataclass
class AffineGame(StaticGame):
    """Affine game with a quadratic social cost::

        F(x) = A x + b,        S(x) = x^T Q x / 2 + c^T x

    ``A (n, n)`` need not be symmetric; the game is strongly monotone iff ``A + A^T`` is positive
    definite (:meth:`monotonicity` gives the modulus ``lambda_min((A + A^T) / 2)``). ``Q`` is
    symmetric positive semi-definite; with ``Q`` positive definite the social optimum is
    ``x^s = -Q^{-1} c`` and the optimal incentive ``p* = -(A x^s + b)`` (:meth:`social_optimum`).
    Build with :meth:`create`, :meth:`random` or :meth:`non_monotone`.

    Example::

        game = AffineGame.create(A=[[2.0, 1.0], [-1.0, 2.0]], b=[1.0, 0.0], Q=[[1.0, 0.0], [0.0, 1.0]])
        game.pseudo_gradient(jnp.zeros(2))      # [1., 0.]
    """

    A: jnp.ndarray
    b: jnp.ndarray
    Q: jnp.ndarray
    c: jnp.ndarray

    @classmethod
    def create(cls, A, b=None, Q=None, c=None) -> AffineGame:
        A = _float(A, "A")
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise ValueError(f"A must be a non-empty square matrix, got shape {A.shape}")
        n = A.shape[0]
        b = jnp.zeros(n, A.dtype) if b is None else _float(b, "b", (n,))
        Q = jnp.eye(n, dtype=A.dtype) if Q is None else _float(Q, "Q", (n, n))
        c = jnp.zeros(n, A.dtype) if c is None else _float(c, "c", (n,))
        Qn = np.asarray(Q)
        if not np.allclose(Qn, Qn.T, atol=1e-12):
            raise ValueError("Q must be symmetric")
        if np.linalg.eigvalsh(Qn).min() < -1e-12:
            raise ValueError("Q must be positive semi-definite (S convex)")
        if abs(np.linalg.det(np.asarray(A))) < 1e-300:
            raise ValueError("A must be invertible (one equilibrium per incentive)")
        return cls(A, b, Q, c)

    @classmethod
    def random(
        cls,
        key,
        num_players: int = 5,
        *,
        monotonicity: float = 0.5,
        skew: float = 1.0,
        curvature: float = 0.5,
    ) -> AffineGame:
        """A random strongly monotone game with a non-symmetric Jacobian::

            A = m I + G G^T / n + skew (K - K^T) / sqrt(n),   Q = curvature I + W W^T / n

        with ``G, K, W`` standard normal, ``b, c`` standard normal: ``A + A^T >= 2 m I``
        (``m = monotonicity > 0``), ``A`` non-symmetric for ``skew > 0``, ``Q`` positive
        definite (``curvature > 0``).
        """
        n = check_count(num_players, "num_players")
        check_positive(monotonicity, "monotonicity")
        check_positive(skew, "skew", allow_zero=True)
        check_positive(curvature, "curvature")
        kg, kk, kw, kb, kc = jax.random.split(key, 5)
        dt = jnp.result_type(float)
        G = jax.random.normal(kg, (n, n), dt)
        K = jax.random.normal(kk, (n, n), dt)
        W = jax.random.normal(kw, (n, n), dt)
        A = monotonicity * jnp.eye(n, dtype=dt) + G @ G.T / n + skew * (K - K.T) / np.sqrt(n)
        Q = curvature * jnp.eye(n, dtype=dt) + W @ W.T / n
        Q = 0.5 * (Q + Q.T)
        return cls.create(A, jax.random.normal(kb, (n,), dt), Q, jax.random.normal(kc, (n,), dt))

    @classmethod
    def non_monotone(cls) -> AffineGame:
        """The counterexample: ``F(x) = [[1, 10], [0, 1]] x`` (``A + A^T`` has the
        eigenvalue ``-8``: not monotone) and the linear social cost ``S(x) = x_1 + x_2``
        (``grad S = (1, 1)``). Here ``<grad Phi(p), grad S> = +8 > 0`` at every ``p``: moving the
        incentive along ``grad S`` *raises* the planner's cost."""
        A = [[1.0, 10.0], [0.0, 1.0]]
        return cls.create(A, [0.0, 0.0], np.zeros((2, 2)), [1.0, 1.0])

    @property
    def num_players(self) -> int:
        return int(self.A.shape[0])

    def pseudo_gradient(self, x):
        return self.A @ x + self.b

    def social_cost(self, x):
        return 0.5 * x @ (self.Q @ x) + self.c @ x

    def social_gradient(self, x):
        return self.Q @ x + self.c

    def monotonicity(self) -> float:
        """Strong-monotonicity modulus ``lambda_min((A + A^T) / 2)`` (``<= 0``: not monotone)."""
        A = np.asarray(self.A)
        return float(np.linalg.eigvalsh(0.5 * (A + A.T)).min())

    def social_optimum(self):
        """Closed form ``x^s = -Q^{-1} c`` (``ValueError`` when ``Q`` is singular)."""
        if np.linalg.matrix_rank(np.asarray(self.Q)) < self.num_players:
            raise ValueError("Q is singular: S has no unique minimiser")
        return -jnp.linalg.solve(self.Q, self.c)


@struct.dataclass
class Cournot(StaticGame):
    """Cournot oligopoly: firm ``i`` sells ``x_i`` at the price ``P(X) = a - b X``,
    ``X = sum_i x_i``, with cost ``c_i x_i + d_i x_i^2 / 2``::

        J_i(x) = c_i x_i + d_i x_i^2 / 2 - x_i P(X)
        F_i(x) = c_i + d_i x_i - a + b X + b x_i                 (Jacobian b 11^T + diag(b + d))
        S(x)   = -(a X - b X^2 / 2) + sum_i (c_i x_i + d_i x_i^2 / 2)   (minus total surplus)

    Strongly monotone for ``b > 0``, ``d_i >= 0``. The social optimum prices at marginal cost
    (``a - b X^s = c_i + d_i x^s_i``); there ``F_i(x^s) = b x^s_i``, so the optimal incentive is
    the output subsidy ``p*_i = -b x^s_i`` (a negative tax). Quantities are decisions in ``R``:
    with ``a > c_i`` (checked) the equilibria and the optimum of the defaults are interior.

    Example::

        game = Cournot.create()           # 5 firms, a = 20, b = 1
        game.social_optimum()
    """

    intercept: jnp.ndarray
    slope: jnp.ndarray
    marginal_cost: jnp.ndarray
    quadratic_cost: jnp.ndarray

    @classmethod
    def create(
        cls,
        intercept: float = 20.0,
        slope: float = 1.0,
        marginal_cost=(1.0, 1.5, 2.0, 2.5, 3.0),
        quadratic_cost=(0.5, 0.5, 1.0, 1.0, 1.5),
    ) -> Cournot:
        check_positive(slope, "slope")
        a = _float(intercept, "intercept", ())
        c = _float(marginal_cost, "marginal_cost")
        if c.ndim != 1 or c.shape[0] == 0:
            raise ValueError(f"marginal_cost must be a non-empty vector, got shape {c.shape}")
        d = _float(quadratic_cost, "quadratic_cost", c.shape)
        if np.any(np.asarray(d) < 0):
            raise ValueError("quadratic_cost must be >= 0")
        if np.any(np.asarray(c) >= float(a)):
            raise ValueError("intercept must exceed every marginal_cost (positive output)")
        return cls(a, jnp.asarray(slope, a.dtype), c, d)

    @property
    def num_players(self) -> int:
        return int(self.marginal_cost.shape[0])

    def price(self, x):
        return self.intercept - self.slope * jnp.sum(x)

    def pseudo_gradient(self, x):
        c, d, b = self.marginal_cost, self.quadratic_cost, self.slope
        return c + d * x - self.price(x) + b * x

    def social_cost(self, x):
        X = jnp.sum(x)
        cost = jnp.sum(self.marginal_cost * x + 0.5 * self.quadratic_cost * x**2)
        return -(self.intercept * X - 0.5 * self.slope * X**2) + cost

    def social_optimum(self):
        """Closed form: ``(b 11^T + diag(d)) x^s = a - c``."""
        n = self.num_players
        M = self.slope * jnp.ones((n, n), self.dtype) + jnp.diag(self.quadratic_cost)
        return jnp.linalg.solve(M, self.intercept - self.marginal_cost)


BRAESS_INCIDENCE = np.array(
    [
        [1.0, 0.0, 1.0],  # edge 0: s -> v
        [0.0, 1.0, 0.0],  # edge 1: s -> w
        [1.0, 0.0, 0.0],  # edge 2: v -> t
        [0.0, 1.0, 1.0],  # edge 3: w -> t
        [0.0, 0.0, 1.0],  # edge 4: v -> w (the Braess link)
    ]
)
"""Edge-path incidence of the Braess network: paths ``s-v-t``, ``s-w-t``, ``s-v-w-t``."""


@struct.dataclass
class Routing(StaticGame):
    """Nonatomic routing with tolls, an outside option and logit route choice (stochastic user
    equilibrium).

    A population of mass ``demand`` chooses among ``n`` paths or stays out (outside option of
    cost ``outside_cost``). ``x (n,)`` are the path flows, ``x_0 = demand - sum(x)`` the mass
    that stays out, ``f = Delta x`` the edge flows (``Delta``: edge-path incidence, ``E x n``);
    edge ``e`` has the latency::

        l_e(f) = free_flow_e + linear_e f + power_e f |f|^(degree - 1)      (BPR-like, increasing)

    Travellers choose by a logit rule of dispersion ``tau > 0`` (Fisk's stochastic user
    equilibrium: the potential carries the entropy ``tau sum x log x``, which keeps every path
    and the outside option in use). A path's cost relative to staying out, and the planner's
    system cost (Yang's SUE system cost: latencies, the outside option and the entropy term)::

        F(x) = Delta^T l(Delta x) - outside_cost + tau (log x - log x_0)
        S(x) = sum_e f_e l_e(f_e) + outside_cost x_0 + tau (sum_i x_i log x_i + x_0 log x_0)

    so ``grad S(x) = F(x) + Delta^T (f l'(f))`` and the optimal path tolls are exactly the
    **marginal-cost tolls** (Yang 1999, "System-optimal stochastic traffic assignment")::

        p* = -F(x^s) = Delta^T (f^s l'(f^s)),   f^s = Delta x^s

    (:meth:`marginal_cost_tolls`; :meth:`edge_tolls` per edge). The game is a potential game,
    strongly monotone on the open simplex ``{x > 0, sum(x) < demand}``; outside it ``F`` and
    ``S`` are NaN (solvers report ``nonfinite``). Decisions are masses: ``mass = demand`` (see
    the module docstring), so mirror descent on the simplex applies.

    Example::

        game = Routing.create()           # the Braess network
        game.pseudo_gradient(game.initial_action())
    """

    incidence: jnp.ndarray
    free_flow: jnp.ndarray
    linear: jnp.ndarray
    power: jnp.ndarray
    outside_cost: jnp.ndarray
    demand: jnp.ndarray
    dispersion: jnp.ndarray
    degree: int = struct.field(pytree_node=False, default=4)

    @classmethod
    def create(
        cls,
        incidence=None,
        free_flow=(0.5, 1.5, 1.5, 0.5, 0.25),
        linear=(0.2, 0.5, 0.5, 0.2, 0.5),
        power=(0.005, 0.02, 0.02, 0.005, 0.0),
        *,
        degree: int = 4,
        outside_cost: float = 5.0,
        demand: float = 6.0,
        dispersion: float = 0.25,
    ) -> Routing:
        D = _float(BRAESS_INCIDENCE if incidence is None else incidence, "incidence")
        if D.ndim != 2 or 0 in D.shape:
            raise ValueError(f"incidence must be a non-empty (edges, paths) matrix, got {D.shape}")
        Dn = np.asarray(D)
        if not np.all((Dn == 0) | (Dn == 1)):
            raise ValueError("incidence must hold 0/1 entries")
        if np.linalg.matrix_rank(Dn) < Dn.shape[1]:
            raise ValueError("incidence must have full column rank (distinct path flows)")
        E = D.shape[0]
        a = _float(free_flow, "free_flow", (E,))
        b = _float(linear, "linear", (E,))
        c = _float(power, "power", (E,))
        if np.any(np.asarray(a) < 0):
            raise ValueError("free_flow must be >= 0")
        if np.any(np.asarray(b) < 0):
            raise ValueError("linear must be >= 0")
        if np.any(np.asarray(c) < 0):
            raise ValueError("power must be >= 0")
        degree = check_count(degree, "degree")
        check_positive(demand, "demand")
        check_positive(outside_cost, "outside_cost", allow_zero=True)
        check_positive(dispersion, "dispersion")
        f = lambda v: jnp.asarray(v, D.dtype)  # noqa: E731
        return cls(D, a, b, c, f(outside_cost), f(demand), f(dispersion), degree)

    @property
    def num_players(self) -> int:
        return int(self.incidence.shape[1])

    @property
    def mass(self):
        return self.demand

    def initial_action(self):
        """Every path and the outside option hold the same share of the demand."""
        n = self.num_players
        return jnp.full(n, 1.0 / (n + 1), self.dtype) * self.demand

    def outside(self, x):
        """Mass that stays out, ``x_0 = demand - sum(x)``."""
        return self.demand - jnp.sum(x)

    def edge_flow(self, x):
        return self.incidence @ x

    def latency(self, f):
        """Edge latencies ``l_e(f_e)``."""
        k = self.degree
        return self.free_flow + self.linear * f + self.power * f * jnp.abs(f) ** (k - 1)

    def latency_derivative(self, f):
        """``l'_e(f_e)``."""
        k = self.degree
        return self.linear + k * self.power * jnp.abs(f) ** (k - 1)

    def pseudo_gradient(self, x):
        path = self.incidence.T @ self.latency(self.edge_flow(x))
        return path - self.outside_cost + self.dispersion * (jnp.log(x) - jnp.log(self.outside(x)))

    def social_cost(self, x):
        f, x0 = self.edge_flow(x), self.outside(x)
        entropy = jnp.sum(x * jnp.log(x)) + x0 * jnp.log(x0)
        return jnp.sum(f * self.latency(f)) + self.outside_cost * x0 + self.dispersion * entropy

    def edge_tolls(self, x):
        """Marginal-cost (Pigouvian) tolls per edge, ``f_e l'_e(f_e)`` at ``f = Delta x``."""
        f = self.edge_flow(x)
        return f * self.latency_derivative(f)

    def marginal_cost_tolls(self, x):
        """Marginal-cost tolls per path, ``Delta^T (f l'(f))``: ``p*`` at ``x = x^s``."""
        return self.incidence.T @ self.edge_tolls(x)
