"""``mfid list settings|games|methods``: what the other commands accept, one line each.

* ``settings``: the auction presets A1–A10 (:func:`auctions.settings.make`) and ``beach-bar``,
  the names ``--setting`` takes (``mfid design auction``, ``mfid validate``);
* ``games``: the ready games, each with the class that builds it and the command that uses it;
* ``methods``: the design methods and designers, with the commands whose ``--method`` takes them.

Example::

    mfid list settings
    mfid list methods
"""

from __future__ import annotations

__all__ = ["GAMES", "METHODS", "register"]

BEACH_BAR = "beach bar of mfid validate: K=20 spots, H=10 rounds, crowd aversion 1, tau=0.1"

GAMES = {
    "batched-auction": ("auctions.BatchedAuction",
                        "batched auction: bidders with values on [0, 1) bid for a supply sold "
                        "over H rounds (settings A1-A10)", "design auction, validate, sweep"),
    "beach-bar": ("mfid.BeachBar",
                  "agents pick a spot on a line near a bar and avoid crowds; a price per spot",
                  "solve, design beach-bar, design social, validate"),
    "escape-room": ("mfid.games.escape_room.EscapeRoom",
                    "ER(n, m): n agents, the door opens when m of them pull the lever",
                    "design escape-room"),
    "escape-room-mf": ("mfid.games.escape_room_mf.EscapeRoomMeanField",
                       "the mean-field Escape Room: a lever fraction rho opens the door",
                       "design escape-room --study mean-field"),
    "gtb": ("mfid.games.gtb.MiniGTB",
            "small Gather-Trade-Build economy: N agents gather, build and pay a bracketed income tax",
            "design gtb"),
    "gtb-mf": ("mfid.games.gtb_mf.GTBMeanField",
               "mean-field Gather-Trade-Build: a continuum of skills plans each tax period",
               "design gtb"),
    "affine": ("mfid.games.static.AffineGame",
               "static game with an affine pseudo-gradient F(x) = A x + b and a quadratic social cost",
               "design social --game affine"),
    "cournot": ("mfid.games.static.Cournot",
                "Cournot oligopoly with linear inverse demand; the planner maximises total surplus",
                "design social --game cournot"),
    "routing": ("mfid.games.static.Routing",
                "nonatomic routing (Braess network) with path tolls and logit route choice",
                "design social --game routing"),
}  # fmt: skip
"""Game name -> (class, one-line description, the commands that use it)."""

METHODS = {
    "amid": "exact gradient of the T-step objective, checkpointed adjoint (memory ~ sqrt T)",
    "unrolled": "exact gradient by reverse mode through every OMD step (memory ~ T)",
    "implicit": "implicit-function gradient at the OMD fixed point (matrix-free GMRES)",
    "reference": "hand-written adjoint of the OMD loop (a test oracle)",
    "zeroth-adam": "two-point zeroth-order gradient estimate, Adam steps",
    "zeroth-sgd": "two-point zeroth-order gradient estimate, SGD steps",
    "anneal": "ANNEAL random search: keep a random perturbation when it improves",
    "metagrad": "meta-gradient incentive designer (Yang et al., AAMAS 2022)",
    "dual-rl-d": "dual-RL designer with discrete incentive levels",
    "dual-rl-c": "dual-RL designer with continuous incentives",
    "hand": "the hand-coded incentive (lever pullers paid 1 + eps)",
    "none": "no incentive",
    "us-federal": "the US federal income-tax brackets",
    "free-market": "no tax",
    "flat": "the best flat tax rate on a grid",
}
"""Method name (as ``--method`` takes it) -> one-line description."""


def _method_commands() -> dict[str, tuple[str, ...]]:
    """Command -> the method names its ``--method`` accepts."""
    from auctions.study import METHODS as AUCTION_METHODS
    from mfid.cli.design import beach_bar, escape_room, gtb

    return {
        "design auction, sweep": tuple(AUCTION_METHODS),
        "design beach-bar": tuple(beach_bar.METHODS),
        "design escape-room": tuple(escape_room.METHODS),
        "design gtb": tuple(gtb.METHODS),
    }


def register(sub) -> None:
    p = sub.add_parser(
        "list",
        help="list the settings, games or design methods the commands accept",
        description="One line per setting, game or design method.",
    )
    p.add_argument("what", choices=("settings", "games", "methods"), help="what to list")
    p.set_defaults(func=run_list)


def _table(rows) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {text}" for name, text in rows)


def lines(what: str) -> str:
    """The text ``mfid list WHAT`` prints."""
    if what == "settings":
        from auctions.settings import SETTINGS, setting_description

        rows = [(name, setting_description(name)) for name in SETTINGS]
        rows.append(("beach-bar", BEACH_BAR))
        return _table(rows) + (
            "\n\nNames are case-insensitive (a1 = A1). mfid design auction "
            "takes A1..A10, mfid validate also beach-bar."
        )
    if what == "games":
        width = max(len(name) for name in GAMES)
        return "\n".join(f"{name:<{width}}  {text}\n{'':<{width}}  ({cls}; mfid {cmds})"
                         for name, (cls, text, cmds) in GAMES.items())  # fmt: skip
    if what == "methods":
        blocks = []
        for command, names in _method_commands().items():
            rows = [(name, METHODS.get(name, "")) for name in names]
            blocks.append(f"mfid {command} --method:\n" + _table(rows))
        return "\n\n".join(blocks)
    raise ValueError(f"what must be settings, games or methods, got {what!r}")


def run_list(args) -> int:
    print(lines(args.what))
    return 0
