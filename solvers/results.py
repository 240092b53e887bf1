"""One results vocabulary for every solver and designer (modelled on optimistix's ``RESULTS``).

A status is a small integer code (a JAX array inside compiled code, so results stay pytrees that
``vmap`` and ``jit`` carry); :data:`RESULTS` names it and gives its message. Every entry point
follows one convention: ``throw=True`` raises ``ValueError`` with the message (and the context)
when the status is not ``successful``/``max_iterations``; ``throw=False`` only reports it.

==========================  ===================================================================
name                        meaning
==========================  ===================================================================
``successful``              converged (OMD with a tolerance), or a valid gradient / design step
``max_iterations``          the iteration budget ran out before the tolerance was reached (for
                            a fixed-``T`` solve: ``T`` steps were taken, nothing was checked)
``nonfinite``               a value, gradient or iterate became NaN or infinite
``diverged``                OMD diverged: ``eta * tau > 2`` or logits far beyond ``q / tau``
``omd_not_converged``       the implicit gradient needs a fixed point; the residual is too big
``linear_solve_failed``     the implicit adjoint's linear solve did not reach its tolerance
``mass_not_conserved``      the population flow gained or lost mass (a kernel row sum != 1)
``above_tolerance``         a converged-evaluation demanded a tolerance the solve did not reach
==========================  ===================================================================

Example::

    from solvers.results import RESULTS
    RESULTS.nonfinite.code, RESULTS.message(2)    # 2, 'a value, gradient or iterate ...'
"""

from __future__ import annotations

import dataclasses

__all__ = ["RESULTS", "HasStatus", "Result", "raise_for_status"]


@dataclasses.dataclass(frozen=True)
class Result:
    """One status: its integer ``code``, ``name`` and human-readable ``message``."""

    code: int
    name: str
    message: str

    def __int__(self) -> int:
        return self.code


class _Results:
    successful = Result(0, "successful", "successful")
    max_iterations = Result(
        1, "max_iterations", "the iteration budget ran out before the tolerance was reached"
    )
    nonfinite = Result(2, "nonfinite", "a value, gradient or iterate became NaN or infinite")
    diverged = Result(
        3,
        "diverged",
        "OMD diverged (eta * tau > 2, or logits far beyond q / tau): lower eta",
    )
    omd_not_converged = Result(
        4,
        "omd_not_converged",
        "the implicit gradient needs a converged OMD fixed point; its residual is above "
        "fixed_point_tol (increase iters or tau, or use the Checkpointed adjoint)",
    )
    linear_solve_failed = Result(
        5,
        "linear_solve_failed",
        "the implicit adjoint's linear solve did not reach linear_tol (I - d Phi is "
        "ill-conditioned: increase tau or maxiter, or use the Checkpointed adjoint)",
    )
    mass_not_conserved = Result(
        6,
        "mass_not_conserved",
        "the population flow does not keep total mass 1 (a transition row does not sum to 1)",
    )
    above_tolerance = Result(
        7,
        "above_tolerance",
        "the equilibrium was not solved to the requested exploitability tolerance",
    )

    def __init__(self):
        self._by_code = {r.code: r for r in vars(type(self)).values() if isinstance(r, Result)}

    def __iter__(self):
        return iter(sorted(self._by_code.values(), key=lambda r: r.code))

    def __getitem__(self, code) -> Result:
        return self._by_code[int(code)]

    def name(self, code) -> str:
        return self[code].name

    def message(self, code) -> str:
        return self[code].message

    def is_ok(self, code) -> bool:
        """``successful`` or ``max_iterations`` (a budget that ran out is not an error)."""
        return int(code) in (self.successful.code, self.max_iterations.code)


RESULTS = _Results()
"""The status codes of every solver and designer: ``RESULTS.successful``, ``max_iterations``,
``nonfinite``, ``diverged``, ... (a :class:`Result` each, with ``code``, ``name`` and
``message``); ``RESULTS.name(code)``, ``RESULTS.message(code)``, ``RESULTS.is_ok(code)``."""


class HasStatus:
    """Base of the result pytrees that carry an integer ``status`` field (a :data:`RESULTS`
    code): its name and message as properties."""

    @property
    def status_name(self) -> str:
        """The RESULTS name of ``status`` (``"successful"``, ``"max_iterations"``, ...)."""
        return RESULTS.name(self.status)

    @property
    def message(self) -> str:
        """The RESULTS message of ``status``: what happened, in a sentence."""
        return RESULTS.message(self.status)


def raise_for_status(code, context: str = "", *, allow_max_iterations: bool = True) -> None:
    """Raise ``ValueError`` with the status message (prefixed by ``context``) unless ``code`` is
    ``successful`` (or ``max_iterations`` when ``allow_max_iterations``)."""
    code = int(code)
    ok = (RESULTS.successful.code,) + (
        (RESULTS.max_iterations.code,) if allow_max_iterations else ()
    )
    if code not in ok:
        r = RESULTS[code]
        prefix = f"{context}: " if context else ""
        raise ValueError(f"{prefix}{r.name}: {r.message}")
