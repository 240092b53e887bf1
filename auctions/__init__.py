"""The batched-auction mean-field game: model, mechanisms, settings A1–A10, revenue bound and
designer objectives. The model, its choices and what a design is judged by are described in
``auctions/README.md``.

Mechanism API (stable, used by the finite-N simulator)::

    alpha_h, pay_h = mechanism(h, nu_h, r_h, theta)

See :mod:`auctions.mechanisms`. Public building blocks for simulators:
:func:`win_probability`, :func:`allocated_mass`, :class:`ValueKernel` (``push``/``pull``/
``dense``), :class:`AuctionKernel`, :class:`Utility`.
"""

from auctions.bound import entropy_slack, max_entropy_slack, myerson_bound, posted_price_bound
from auctions.game import AuctionRound, BatchedAuction, value_grid
from auctions.kernels import AuctionKernel, ValueKernel, gaussian_drift
from auctions.mechanisms import (
    FirstPrice,
    FirstPriceReserve,
    PostedPrice,
    StaticMechanism,
    bid_grid,
    eligibility,
)
from auctions.mixture import MarketMixture, MixtureKernel
from auctions.neural import NeuralMechanism, ResidualMLP
from auctions.objectives import OBJECTIVES, Mix, auction_rounds, efficiency, make_objective, revenue
from auctions.settings import (
    SETTINGS,
    Setting,
    check_setting,
    first_price_game,
    geometric_mu0,
    make,
    setting_description,
    with_mechanism,
)
from auctions.utilities import UTILITY_KINDS, Utility
from auctions.win import allocated_mass, mass_above, win_probability

__all__ = [
    "entropy_slack",
    "max_entropy_slack",
    "myerson_bound",
    "posted_price_bound",
    "AuctionRound",
    "BatchedAuction",
    "value_grid",
    "AuctionKernel",
    "ValueKernel",
    "gaussian_drift",
    "FirstPrice",
    "FirstPriceReserve",
    "PostedPrice",
    "StaticMechanism",
    "bid_grid",
    "eligibility",
    "MarketMixture",
    "MixtureKernel",
    "NeuralMechanism",
    "ResidualMLP",
    "OBJECTIVES",
    "Mix",
    "auction_rounds",
    "efficiency",
    "make_objective",
    "revenue",
    "SETTINGS",
    "Setting",
    "geometric_mu0",
    "make",
    "check_setting",
    "first_price_game",
    "setting_description",
    "with_mechanism",
    "UTILITY_KINDS",
    "Utility",
    "allocated_mass",
    "mass_above",
    "win_probability",
]
