"""Algorithms on mean-field games: the OMD equilibrium solver, the exact gradient modes of the
T-step design objective (unrolled, amid, implicit, reference adjoint), zeroth-order baselines and
the design loop."""

from solvers.design import DESIGN_METHODS, DesignResult, design, evaluate_design
from solvers.gradients import (
    GRADIENT_MODES,
    GradientAux,
    design_objective,
    lower_value_and_grad,
    omd_logits,
    value_and_grad,
)
from solvers.omd import STATUS_NAMES, OMDResult, check_omd_args, omd_update, solve_omd
from solvers.zeroth_order import anneal_step, sphere_direction, two_point_gradient

__all__ = [
    "DESIGN_METHODS",
    "GRADIENT_MODES",
    "STATUS_NAMES",
    "DesignResult",
    "GradientAux",
    "OMDResult",
    "anneal_step",
    "check_omd_args",
    "design",
    "design_objective",
    "evaluate_design",
    "lower_value_and_grad",
    "omd_logits",
    "omd_update",
    "solve_omd",
    "sphere_direction",
    "two_point_gradient",
    "value_and_grad",
]
