"""mfid: mean-field incentive and auction design on JAX.

Core model: parameterised mean-field games (:class:`PMFG`), the population flow, regularised
values, best responses and exploitability, ready games (:class:`BeachBar`, the finite-agent
games in :mod:`mfid.games`), finite-N sampling and the gap-vs-N study. Solvers live in the
sibling package ``solvers`` and the batched-auction game in ``auctions``.

The names below are imported on first use (so ``mfid --help`` and ``import mfid.cli`` do not
start JAX).

Example::

    import mfid
    game = mfid.BeachBar.create(num_states=6, horizon=3)
    mfid.__version__
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("mfid")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_EXPORTS = {
    "mfid.approximation": ("GapRow", "GapStudy", "fit_exponent", "game_sampler", "gap_study",
                           "summarize"),
    "mfid.games.beach_bar": ("BEACH_BAR_DESIGN", "BEACH_BAR_VALIDATE", "BeachBar", "Congestion",
                             "ShiftKernel", "congestion"),
    "mfid.finite": ("FiniteSample", "conditional_deviation_gain", "deviation_gain", "simulate"),
    "mfid.flow": ("population_flow", "rollout"),
    "mfid.game": ("PMFG", "Dynamics", "MeanFieldGame"),
    "mfid.kernel": ("DenseKernel", "Kernel"),
    "mfid.values": ("best_response", "best_response_values", "evaluate_policy", "exploitability",
                    "policy_value", "q_values", "soft_argmax", "soft_max"),
}  # fmt: skip
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}

__all__ = ["__version__", *sorted(_WHERE)]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mfid' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
