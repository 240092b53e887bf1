"""How a design step moves ``theta``: the estimator objects of :func:`solvers.design`.

Every estimator sees the loss ``f(theta) = -G_T(theta)`` (maximising) or ``G_T(theta)`` from the
step's warm-start logits, the loss and, for :class:`Exact`, its gradient at the current
``theta``; it returns the new ``theta`` and optimiser state. ``evaluations_per_step`` counts the
objective evaluations of one step, including the evaluation at the current ``theta`` that the
design trace records (an exact gradient counts as one), so studies can give every method the
same budget.

==============  =====================  ===========================================================
estimator       evaluations per step   update
==============  =====================  ===========================================================
``Exact``       1                      ``optimizer`` on ``d f / d theta`` through the ``adjoint``
``TwoPoint``    ``2 directions + 1``   ``optimizer`` on ``D/(2u) (f(theta+uz) - f(theta-uz)) z``
``Anneal``      3                      ``theta <- argmin {f(theta), f(theta + sigma n), f(theta - sigma n)}``
==============  =====================  ===========================================================

Example::

    from solvers import Checkpointed, Exact, TwoPoint, Anneal
    Exact(Checkpointed()).evaluations_per_step, TwoPoint(u=0.05).evaluations_per_step   # 1, 3
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import jax.numpy as jnp
import optax

from mfid.checks import check_count, check_positive
from mfid.tree import tree_norm
from solvers.adjoint import AbstractAdjoint, Checkpointed, as_adjoint
from solvers.zeroth_order import anneal_step, two_point_gradient

__all__ = ["AbstractEstimator", "Anneal", "ESTIMATORS", "Exact", "TwoPoint", "as_estimator"]


class AbstractEstimator(abc.ABC):
    """A design-step estimator: from the loss ``f(theta)`` (``-G_T(theta)`` when maximising) it
    computes the new ``theta`` (:meth:`update`)::

        Exact      theta <- optimizer(d f / d theta)                        (through the adjoint)
        TwoPoint   theta <- optimizer(D / (2u) (f(theta + u z) - f(theta - u z)) z), |z| = 1
        Anneal     theta <- argmin {f(theta), f(theta + sigma n), f(theta - sigma n)}
    """

    uses_gradient: ClassVar[bool] = False
    uses_optimizer: ClassVar[bool] = True

    @property
    @abc.abstractmethod
    def evaluations_per_step(self) -> int:
        """Objective evaluations of one step, the evaluation at the current ``theta`` included
        (an exact gradient counts as one)."""

    @abc.abstractmethod
    def update(self, loss, theta, loss_value, loss_grad, key, optimizer, opt_state):
        """``(new_theta, new_opt_state, norm of the step's gradient or estimate)``."""


@dataclasses.dataclass(frozen=True)
class Exact(AbstractEstimator):
    """The exact gradient of ``G_T`` through the ``adjoint`` (default :class:`Checkpointed`, AMID)."""

    adjoint: AbstractAdjoint = Checkpointed()
    uses_gradient: ClassVar[bool] = True

    def __post_init__(self):
        object.__setattr__(self, "adjoint", as_adjoint(self.adjoint))

    @property
    def evaluations_per_step(self) -> int:
        return 1

    @property
    def name(self) -> str:
        """The adjoint's CLI name (``"amid"``, ``"unrolled"``, ...)."""
        return self.adjoint.name

    def update(self, loss, theta, loss_value, loss_grad, key, optimizer, opt_state):
        updates, opt_state = optimizer.update(loss_grad, opt_state, theta)
        return optax.apply_updates(theta, updates), opt_state, tree_norm(loss_grad)


@dataclasses.dataclass(frozen=True)
class TwoPoint(AbstractEstimator):
    """The two-point zeroth-order estimate with radius ``u`` over ``directions`` directions
    (:func:`solvers.zeroth_order.two_point_gradient`), fed to the optimiser (0-SGD, 0-ADAM)."""

    u: float = 0.05
    directions: int = 1

    def __post_init__(self):
        check_positive(self.u, "u")
        check_count(self.directions, "directions")

    @property
    def evaluations_per_step(self) -> int:
        return 2 * self.directions + 1

    def update(self, loss, theta, loss_value, loss_grad, key, optimizer, opt_state):
        g = two_point_gradient(loss, theta, key, self.u, self.directions)
        updates, opt_state = optimizer.update(g, opt_state, theta)
        return optax.apply_updates(theta, updates), opt_state, tree_norm(g)


@dataclasses.dataclass(frozen=True)
class Anneal(AbstractEstimator):
    """ANNEAL random search with radius ``sigma`` (:func:`solvers.zeroth_order.anneal_step`);
    it needs no optimiser."""

    sigma: float = 0.1
    uses_optimizer: ClassVar[bool] = False

    def __post_init__(self):
        check_positive(self.sigma, "sigma")

    @property
    def evaluations_per_step(self) -> int:
        return 3

    def update(self, loss, theta, loss_value, loss_grad, key, optimizer, opt_state):
        new_theta, _ = anneal_step(loss, theta, loss_value, key, self.sigma)
        return new_theta, opt_state, jnp.zeros((), loss_value.dtype)


ESTIMATORS = ("amid", "unrolled", "implicit", "reference", "zeroth-sgd", "zeroth-adam", "anneal")
"""CLI names of the design methods (an adjoint name means ``Exact(adjoint)``)."""


def as_estimator(method, *, u: float = 0.05, directions: int = 1, sigma: float = 0.1):
    """An estimator object, or one built from its CLI name: an adjoint name (``amid``,
    ``unrolled``, ``implicit``, ``reference``) is :class:`Exact`, ``zeroth-sgd`` and
    ``zeroth-adam`` are :class:`TwoPoint` (with ``u``, ``directions``), ``anneal`` is
    :class:`Anneal` (with ``sigma``)."""
    if isinstance(method, AbstractEstimator):
        return method
    if method in ("zeroth-sgd", "zeroth-adam"):
        return TwoPoint(u=u, directions=directions)
    if method == "anneal":
        return Anneal(sigma=sigma)
    if method in ESTIMATORS:
        return Exact(as_adjoint(method))
    raise ValueError(f"method must be an estimator or one of {ESTIMATORS}, got {method!r}")
