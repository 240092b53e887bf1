"""Algorithms on mean-field games: the OMD equilibrium solver, the adjoints that differentiate
the T-step design objective (Unrolled, Checkpointed = AMID, Implicit, Reference), the design
estimators (exact, two-point zeroth order, ANNEAL), the design loop and its checkpoints, and one
results vocabulary."""

from solvers.adjoint import (
    ADJOINTS,
    AbstractAdjoint,
    Checkpointed,
    Implicit,
    Reference,
    Unrolled,
    amid_segment,
    as_adjoint,
)
from solvers.design_loop import (
    Backtracking,
    DesignProblem,
    DesignResult,
    DesignState,
    Optimizer,
    design,
    design_seeds,
    design_step,
    evaluate_design,
    warmup_cosine,
)
from solvers.estimators import ESTIMATORS, AbstractEstimator, Anneal, Exact, TwoPoint, as_estimator
from solvers.gradients import (
    GradientAux,
    design_objective,
    lower_value_and_grad,
    objective_at,
    omd_logits,
    value_and_grad,
)
from solvers.omd import (
    OMDResult,
    initial_logits,
    omd_step,
    omd_update,
    policy_from_logits,
    solve_omd,
    solve_omd_batch,
)
from solvers.results import RESULTS, raise_for_status
from solvers.zeroth_order import anneal_step, sphere_direction, two_point_gradient

__all__ = [
    "ADJOINTS",
    "ESTIMATORS",
    "RESULTS",
    "AbstractAdjoint",
    "AbstractEstimator",
    "Anneal",
    "Checkpointed",
    "Backtracking",
    "DesignProblem",
    "DesignResult",
    "DesignState",
    "Exact",
    "GradientAux",
    "Implicit",
    "OMDResult",
    "Optimizer",
    "Reference",
    "TwoPoint",
    "Unrolled",
    "amid_segment",
    "anneal_step",
    "as_adjoint",
    "as_estimator",
    "design",
    "design_objective",
    "design_seeds",
    "design_step",
    "evaluate_design",
    "initial_logits",
    "lower_value_and_grad",
    "objective_at",
    "omd_logits",
    "omd_step",
    "omd_update",
    "policy_from_logits",
    "raise_for_status",
    "solve_omd",
    "solve_omd_batch",
    "sphere_direction",
    "two_point_gradient",
    "value_and_grad",
    "warmup_cosine",
]
