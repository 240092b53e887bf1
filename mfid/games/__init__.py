"""Ready games built on the core: beach bar (a Lipschitz PMFG) and the finite-agent games."""

from mfid.games.beach_bar import (
    BEACH_BAR_DESIGN,
    BEACH_BAR_VALIDATE,
    BeachBar,
    BeachBarInstance,
    Congestion,
    ShiftKernel,
    congestion,
)

__all__ = [
    "BEACH_BAR_DESIGN",
    "BEACH_BAR_VALIDATE",
    "BeachBar",
    "BeachBarInstance",
    "Congestion",
    "ShiftKernel",
    "congestion",
]
