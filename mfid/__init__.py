"""mfid: mean-field incentive and auction design on JAX.

Core model: parameterised mean-field games (:class:`PMFG`), the population flow, regularised
values, best responses and exploitability, and ready games (:class:`BeachBar`). Solvers live in
the sibling package ``solvers`` and the batched-auction game in ``auctions``.
"""

from mfid.approximation import GapRow, GapStudy, fit_exponent, game_sampler, gap_study, summarize
from mfid.games.beach_bar import (
    BEACH_BAR_DESIGN,
    BEACH_BAR_VALIDATE,
    BeachBar,
    Congestion,
    ShiftKernel,
    congestion,
)
from mfid.finite import FiniteSample, conditional_deviation_gain, deviation_gain, simulate
from mfid.flow import population_flow, rollout
from mfid.game import PMFG, Dynamics, MeanFieldGame
from mfid.kernel import DenseKernel, Kernel
from mfid.values import (
    best_response,
    best_response_values,
    evaluate_policy,
    exploitability,
    policy_value,
    q_values,
    soft_argmax,
    soft_max,
)

__all__ = [
    "BEACH_BAR_DESIGN",
    "BEACH_BAR_VALIDATE",
    "BeachBar",
    "Congestion",
    "ShiftKernel",
    "congestion",
    "population_flow",
    "rollout",
    "Dynamics",
    "MeanFieldGame",
    "PMFG",
    "DenseKernel",
    "Kernel",
    "best_response",
    "best_response_values",
    "evaluate_policy",
    "exploitability",
    "policy_value",
    "q_values",
    "soft_argmax",
    "soft_max",
    "GapRow",
    "GapStudy",
    "fit_exponent",
    "game_sampler",
    "gap_study",
    "summarize",
    "FiniteSample",
    "conditional_deviation_gain",
    "deviation_gain",
    "simulate",
]
