"""Reference settings A1–A10 of the batched auction (the model: ``auctions/README.md``), as
named presets.

``make(name, **overrides) -> Setting`` returns the game, the mechanism, the default parameters
``theta0`` and metadata. All settings use ``K = M = 100`` (``S = K + 1`` with ``⊥`` last).

======  =====================================================================================
A1      H=4, mu0 uniform, alpha_max=0.8, single-minded, linear utility (revenue bound applies)
A2      A1 with mu0(v_k) ∝ 0.9^k and Gaussian value drift sigma=0.2
A3      H=5, mu0 random, alpha_max ~ U[0.6, 1.2] observed, re-entry (regeneration) rho=0.3
A4      A1 with risk-averse utility, beta=1
A5      A1 with risk-seeking utility, beta=1
A6      A1 with hyperbolic discounting, lam=1
A7      H=6, mu0 ∝ 0.9^k, regeneration rho=1, drift sigma=0.2
A8      H=100, mu0 ∝ 0.9^k, alpha_max=5, regeneration rho=0.015, drift sigma=0.01
A9      A1 with the revenue/efficiency mix (weight 0.5 on revenue)
A10     A1 with the static mechanism and regeneration rho=0.3
======  =====================================================================================

Choices the published description leaves open (documented here and in ``metadata["choices"]``):

* Mechanism: the neural mechanism (width 256, two residual blocks) everywhere except A10
  (static); ``theta0`` is its initialisation (seeded by ``key``). Both start close to first
  price: ``alpha_h ≈ r_h / (H - h)`` in every round and payments ``≈ 0.98`` of the bid (see
  :mod:`auctions.neural` and :class:`~auctions.mechanisms.StaticMechanism`).
* A3: ``mu0_d = Dirichlet(1, ..., 1)`` over the value levels and ``alpha_max^d ~ U[0.6, 1.2]``,
  a fixed batch of ``draws`` (default 4) from ``key`` (default ``jax.random.key(3)``), combined
  in a :class:`~auctions.mixture.MarketMixture`; the mechanism observes ``alpha_max`` through
  ``r_0`` and never sees ``mu0_d``; objectives average over the batch.
* Where a setting does not name ``alpha_max`` (A2, A4–A7, A9, A10) it is A1's 0.8. A8's ``mu0``
  is ``∝ 0.9^k`` as published (like A2 and A7).
* Drift ``sigma`` is in value units (the grid spans ``[0, 1)``), rows renormalised on the grid.
* Regeneration draws the new value from the setting's ``mu0``.
* A9's mix weight is 0.5.
* Revenue bound: applies to A1 (risk-neutral, single-minded, no dynamics); A9 shares A1's
  model so the bound applies to its revenue term, but its objective is the mix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from auctions.bound import posted_price_bound
from auctions.game import BatchedAuction
from auctions.mechanisms import FirstPrice, StaticMechanism
from auctions.mixture import MarketMixture
from auctions.neural import NeuralMechanism
from auctions.utilities import Utility
from mfid.checks import check_count

__all__ = [
    "SETTINGS",
    "Setting",
    "check_setting",
    "first_price_game",
    "geometric_mu0",
    "make",
    "setting_description",
    "with_mechanism",
]

SETTINGS = ("A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9", "A10")
"""The names of the reference settings :func:`make` builds (the table above)."""


@dataclass
class Setting:
    """A named preset: ``game``, ``mechanism``, ``theta0``, ``objective`` name
    (``revenue``/``mix``), ``mix_weight`` and ``metadata`` (description, choices,
    ``bound_applies``, ``bound``/``bound_price`` where it applies)."""

    name: str
    game: Any
    mechanism: Any
    theta0: Any
    objective: str = "revenue"
    mix_weight: float = 0.5
    metadata: dict = field(default_factory=dict)


def geometric_mu0(num_values: int, ratio: float = 0.9):
    """``mu0(v_k) ∝ ratio^k``."""
    w = ratio ** np.arange(num_values)
    return w / w.sum()


_DESCRIPTIONS = {
    "A1": "H=4, mu0 uniform, alpha_max=0.8, single-minded, linear utility",
    "A2": "as A1 with mu0 ∝ 0.9^k and Gaussian value drift sigma=0.2",
    "A3": "H=5, mu0 random (unknown to the mechanism), alpha_max ~ U[0.6,1.2] observed, re-entry w.p. 0.3",
    "A4": "as A1 with risk-averse utility (beta=1)",
    "A5": "as A1 with risk-seeking utility (beta=1)",
    "A6": "as A1 with hyperbolic discounting (lam=1)",
    "A7": "H=6, mu0 ∝ 0.9^k, regeneration w.p. 1, drift sigma=0.2",
    "A8": "H=100, mu0 ∝ 0.9^k, alpha_max=5, regeneration w.p. 0.015, drift sigma=0.01",
    "A9": "as A1 with the revenue/efficiency mix (weight 0.5)",
    "A10": "static mechanism, regeneration w.p. 0.3 (otherwise A1)",
}


def setting_description(name) -> str:
    """The one-line description of setting ``name`` (any case), as ``mfid list settings`` prints
    it and ``make(name).metadata["description"]`` holds it; ``ValueError`` for an unknown name.

    Example::

        from auctions import setting_description
        setting_description("a1")  # 'H=4, mu0 uniform, alpha_max=0.8, ...'
    """
    return _DESCRIPTIONS[check_setting(name)]


def make(
    name: str,
    *,
    num_values: int = 100,
    num_bids: int = 100,
    width: int = 256,
    depth: int = 2,
    key,
    draws: int = 4,
    draws_key=None,
    horizon: int | None = None,
) -> Setting:
    """Build setting ``name`` (``A1``..``A10``, any case). ``key`` (a PRNG key, required) seeds
    the network initialisation. ``num_values``/``num_bids`` shrink the grids (tests),
    ``horizon`` overrides H (the memory benchmark). A3's fixed batch of ``draws`` markets is
    drawn from ``draws_key`` (default: the setting's own draw key, the same batch for every
    network seed, so every design and the first-price baseline see the same markets)."""
    name = check_setting(name)
    draws = check_count(draws, "draws")
    K = check_count(num_values, "num_values")
    M = check_count(num_bids, "num_bids")
    if key is None or not hasattr(key, "dtype"):
        raise ValueError(f"key must be a PRNG key (jax.random.key(seed)), got {key!r}")
    k_net = jax.random.split(key)[0]
    k_draw = jax.random.split(jax.random.key(3))[1] if draws_key is None else draws_key
    uniform = np.full(K, 1.0 / K)
    cfg = dict(H=4, mu0=uniform, alpha_max=0.8, utility=Utility.create(), rho=0.0, sigma=None)
    objective = "revenue"
    if name == "A2":
        cfg.update(mu0=geometric_mu0(K), sigma=0.2)
    elif name == "A3":
        cfg.update(H=5, rho=0.3)
    elif name == "A4":
        cfg.update(utility=Utility.create("risk_averse", beta=1.0))
    elif name == "A5":
        cfg.update(utility=Utility.create("risk_seeking", beta=1.0))
    elif name == "A6":
        cfg.update(utility=Utility.create("hyperbolic", lam=1.0))
    elif name == "A7":
        cfg.update(H=6, mu0=geometric_mu0(K), rho=1.0, sigma=0.2)
    elif name == "A8":
        cfg.update(H=100, mu0=geometric_mu0(K), alpha_max=5.0, rho=0.015, sigma=0.01)
    elif name == "A9":
        objective = "mix"
    elif name == "A10":
        cfg.update(rho=0.3)
    H = int(horizon) if horizon is not None else cfg["H"]
    if name == "A10":
        mech = StaticMechanism(M, H)
    else:
        mech = NeuralMechanism.create(M, H, width=width, depth=depth, key=k_net)

    def build(mu0, alpha_max):
        return BatchedAuction.create(
            mu0,
            horizon=H,
            alpha_max=alpha_max,
            mechanism=mech,
            utility=cfg["utility"],
            rho=cfg["rho"],
            sigma=cfg["sigma"],
        )

    meta = {
        "description": _DESCRIPTIONS[name],
        "horizon": H,
        "num_values": K,
        "num_bids": M,
        "mechanism": type(mech).__name__,
        "objective": objective,
        "bound_applies": name in ("A1", "A9"),
        "choices": __doc__.split("Choices the published description leaves open")[1].strip(),
    }
    if name == "A3":
        ks = jax.random.split(k_draw, 2)
        mus = np.array(jax.random.dirichlet(ks[0], np.ones(K), (draws,)), dtype=np.float64)
        mus /= mus.sum(1, keepdims=True)
        alphas = np.asarray(jax.random.uniform(ks[1], (draws,), minval=0.6, maxval=1.2))
        game = MarketMixture.stack([build(m, float(a)) for m, a in zip(mus, alphas, strict=True)])
        meta["alpha_max_draws"] = [float(a) for a in alphas]
    else:
        game = build(cfg["mu0"], cfg["alpha_max"])
        meta["alpha_max"] = cfg["alpha_max"]
    if meta["bound_applies"]:
        meta["bound"], meta["bound_price"] = posted_price_bound(cfg["mu0"], cfg["alpha_max"])
    return Setting(name, game, mech, mech.init_theta(), objective, 0.5, meta)


def check_setting(name) -> str:
    """The canonical setting name (``a1`` -> ``A1``) or ``ValueError``."""
    canon = str(name).upper() if isinstance(name, str) else name
    if canon not in SETTINGS:
        raise ValueError(f"setting must be one of {', '.join(SETTINGS)}, got {name!r}")
    return canon


def with_mechanism(game, mechanism):
    """The same market(s) with another mechanism (a single ``replace`` on a stacked mixture)."""
    if isinstance(game, MarketMixture):
        return game.replace(markets=game.markets.replace(mechanism=mechanism))
    return game.replace(mechanism=mechanism)


def first_price_game(game):
    """The same market(s) with the first-price mechanism (``alpha_h = r_h / (H - h)``)."""
    return with_mechanism(game, FirstPrice(game.num_actions, game.horizon))
