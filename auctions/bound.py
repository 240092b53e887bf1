"""Revenue bound of the batched auction and its entropy-regularisation slack.

For risk-neutral single-minded bidders without value dynamics (setting A1) no mechanism beats
the best posted price in the mean-field limit (Myerson 1981; Riley and Zeckhauser 1983)::

    B = max_p  p mu0({v >= p})   subject to   mu0({v >= p}) <= alpha_max

computed exactly on the grid: on ``(v_{k-1}, v_k]`` demand is constant, so the best price in it
is ``v_k`` and the maximum runs over the value levels (plus ``p = 0``).

**Entropy slack.** OMD computes the *regularised* equilibrium (``tau > 0``), where bidders
maximise ``U + tau Ent``. Its revenue can exceed ``B`` slightly. With ``V_tau(v)`` a type's
regularised value, ``x(v)`` its probability of winning and ``E(v)`` the entropy it accumulates
(all rounds, ``⊥`` included), a type ``v`` can mimic type ``v'`` exactly (no value dynamics), so
``V_tau(v_k) >= V_tau(v_{k-1}) + (v_k - v_{k-1}) x(v_{k-1})`` and ``x`` is non-decreasing;
payments are ``t(v) = v x(v) + tau E(v) - V_tau(v)`` and ``V_tau(0) >= 0`` (bid 0: pay nothing).
Myerson's virtual-value argument then gives::

    revenue <= B + tau * sum_h sum_s mu_h(s) Ent(pi_h(.|s))  <=  B + tau H log M

:func:`entropy_slack` computes the middle term from an equilibrium flow (exact for that
equilibrium); the right-hand side is the a-priori bound (``0.0184`` for ``tau = 1e-3``, ``H = 4``,
``M = 100``).

Example::

    import numpy as np
    from auctions.bound import posted_price_bound
    B, p = posted_price_bound(np.full(100, 0.01), alpha_max=0.8)   # A1: B = 0.25 at p = 0.5
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mfid.tree import safe_log

__all__ = ["posted_price_bound", "myerson_bound", "entropy_slack", "max_entropy_slack"]


def posted_price_bound(mu0_values, alpha_max: float) -> tuple[float, float]:
    """``(B, p*)``: best grid posted-price revenue with demand at most ``alpha_max``
    (``mu0_values (K,)`` over ``v_k = k / K``). Computed in numpy float64 (exact on the grid)."""
    mu = np.asarray(mu0_values, dtype=np.float64)
    if mu.ndim != 1 or np.any(mu < 0) or not np.isclose(mu.sum(), 1.0):
        raise ValueError("mu0_values must be a probability vector over the value levels")
    if not (np.isfinite(alpha_max) and alpha_max > 0):
        raise ValueError(f"alpha_max must be a finite number > 0, got {alpha_max!r}")
    K = mu.shape[0]
    v = np.arange(K) / K
    demand = np.cumsum(mu[::-1])[::-1]  # mu0({v >= v_k})
    rev = np.where(demand <= alpha_max + 1e-12, v * demand, -np.inf)
    k = int(np.argmax(rev))
    if not np.isfinite(rev[k]):
        return 0.0, 1.0
    return float(rev[k]), float(v[k])


def myerson_bound(mu0_values, alpha_max: float) -> float:
    """Myerson's bound with capacity as a linear programme over monotone interim allocations
    ``x_k in [0, 1]``, ``sum_k mu_k x_k <= alpha_max``: maximise ``sum_k x_k phi_k`` with the
    discrete virtual surplus ``phi_k = mu_k v_k - (v_{k+1} - v_k) mu0({v > v_k})``. The extreme
    points are feasible thresholds ``1{k >= k0}`` (value ``v_k0 D(v_k0)``) and, where the capacity
    binds, mixtures of two thresholds with total demand exactly ``alpha_max``; all are
    enumerated. It equals :func:`posted_price_bound` whenever the capacity does not bind at the
    optimum (A1) and is never below it."""
    mu = np.asarray(mu0_values, dtype=np.float64)
    K = mu.shape[0]
    v = np.arange(K + 1) / K
    demand = np.append(np.cumsum(mu[::-1])[::-1], 0.0)  # D(v_k), k = 0..K (D(v_K) = 0)
    value = v * demand  # sum_{j >= k} phi_j
    feasible = demand <= alpha_max + 1e-12
    best = float(np.max(np.where(feasible, value, 0.0)))
    hi, lo = ~feasible[:, None], feasible[None, :]  # pairs k1 (infeasible) < k2 (feasible)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = (alpha_max - demand[None, :]) / (demand[:, None] - demand[None, :])
        mix = lam * value[:, None] + (1.0 - lam) * value[None, :]
    ok = hi & lo & (demand[:, None] > demand[None, :])
    if np.any(ok):
        best = max(best, float(np.max(mix[ok])))
    return best


def entropy_slack(L, tau) -> jnp.ndarray:
    """``tau sum_h sum_s mu_h(s) Ent(pi_h(.|s))`` from a flow ``L (H, S, A)``, where
    ``pi_h(a|s) = L_h(s, a) / mu_h(s)`` (states with ``mu_h(s) = 0`` contribute 0)."""
    mu = jnp.sum(L, axis=-1, keepdims=True)
    pi = jnp.where(mu > 0, L / jnp.where(mu > 0, mu, 1.0), 0.0)
    return -tau * jnp.sum(L * safe_log(pi))


def max_entropy_slack(tau: float, horizon: int, num_bids: int) -> float:
    """A-priori slack ``tau H log M``."""
    return float(tau * horizon * np.log(num_bids))
