"""Algorithms on mean-field games: the OMD equilibrium solver (more in later modules)."""

from solvers.omd import STATUS_NAMES, OMDResult, check_omd_args, omd_update, solve_omd

__all__ = ["STATUS_NAMES", "OMDResult", "check_omd_args", "omd_update", "solve_omd"]
