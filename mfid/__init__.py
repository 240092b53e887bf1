"""mfid: mean-field incentive and auction design on JAX.

Core model: parameterised mean-field games (:class:`PMFG`), the population flow, regularised
values, best responses and exploitability, and ready games (:class:`BeachBar`). Solvers live in
the sibling package ``solvers`` and the batched-auction game in ``auctions``.
"""

from mfid.approximation import GapRow, GapStudy, fit_exponent, game_sampler, gap_study, summarize
from mfid.beach_bar import BeachBar, ShiftKernel, congestion
from mfid.finite import FiniteSample, conditional_deviation_gain, deviation_gain, simulate
from mfid.flow import population_flow, rollout
from mfid.game import PMFG, Dynamics, MeanFieldGame, check_theta, is_concrete
from mfid.kernel import DenseKernel, Kernel, check_kernel
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
    "BeachBar",
    "ShiftKernel",
    "congestion",
    "population_flow",
    "rollout",
    "Dynamics",
    "MeanFieldGame",
    "PMFG",
    "check_theta",
    "is_concrete",
    "DenseKernel",
    "Kernel",
    "check_kernel",
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
