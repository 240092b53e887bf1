"""``mfid evaluate --mechanism DIR``: reload a saved mechanism, re-solve its equilibrium to the
tolerance and print its revenue, exploitability and per-round table.

Example::

    mfid evaluate --mechanism results/A1/mechanisms/amid --json /tmp/amid.json
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["register", "run_evaluate"]


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="re-solve a saved mechanism's equilibrium and print its revenue and table",
        description="Reload DIR (written by mfid design auction under mechanisms/<method>), solve "
        "its equilibrium by OMD until the exploitability is at most --tol and print revenue, "
        "exploitability and the per-round table. Exit code 1 when the tolerance is not reached.",
    )
    p.add_argument("--mechanism", type=Path, required=True, help="saved mechanism directory")
    p.add_argument("--tol", type=float, default=None,
                   help="exploitability tolerance (default: the one it was reported at)")  # fmt: skip
    p.add_argument("--max-iters", type=int, default=None,
                   help="most OMD steps (default: the one it was reported with)")  # fmt: skip
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
    from auctions.saved import load_mechanism
    from auctions.study import equilibrium
    from mfid.report.auction import mechanism_table
    from mfid.report.common import stamp, write_json
    from solvers import solve_omd

    if args.json is not None:
        from mfid.cli.paths import check_output_file

        args.json = check_output_file(args.json, "--json")
    setting, theta, meta = load_mechanism(args.mechanism)
    eqs = meta["equilibrium"]
    tol = eqs["tol"] if args.tol is None else args.tol
    iters = eqs["max_iters"] if args.max_iters is None else args.max_iters
    from auctions.objectives import make_objective

    objective = make_objective(setting.objective, setting.mix_weight)
    res = solve_omd(setting.game, theta, tau=eqs["tau"], eta=eqs["eta"], iters=iters, tol=tol)
    eq = equilibrium(setting.game, objective, theta, res, eqs["tau"])
    rows = mechanism_table(eq, setting.metadata)
    print(f"{meta['setting']} {meta['method']} (seed {meta['seed']}): revenue {eq.revenue:.10f} "
          f"per capita, exploitability {eq.exploitability:.2e} ({eq.status}, "
          f"{eq.iterations} OMD steps, tol {tol:g})")  # fmt: skip
    if setting.objective != "revenue":
        print(f"  {setting.objective} objective {eq.objective:.10f}")
    rep = meta.get("reported", {})
    if "revenue" in rep:
        print(f"  reported revenue {rep['revenue']:.10f} (difference "
              f"{eq.revenue - rep['revenue']:+.2e})")  # fmt: skip
    print(f"  {'round':>5} {'offered':>8} {'sold':>8} {'remaining':>9} {'min win bid':>11} "
          f"{'pay/bid':>8} {'revenue':>8}")  # fmt: skip
    for r in rows:
        mwb = "-" if r["lowest_winning_bid"] is None else f"{r['lowest_winning_bid']:.2f}"
        pb = "-" if r["payment_over_bid"] is None else f"{r['payment_over_bid']:.3f}"
        print(f"  {r['round']:>5} {r['offered']:>8.4f} {r['sold']:>8.4f} "
              f"{r['remaining_before']:>9.4f} {mwb:>11} {pb:>8} {r['revenue']:>8.4f}")  # fmt: skip
    if args.json is not None:
        command = "mfid " + " ".join(sys.argv[1:]) if sys.argv[1:] else "mfid evaluate"
        write_json(args.json, {**stamp(command), "mechanism": str(args.mechanism),
                               "setting": meta["setting"], "method": meta["method"],
                               "revenue": eq.revenue, "objective": eq.objective,
                               "exploitability": eq.exploitability, "status": eq.status,
                               "omd_iterations": eq.iterations, "tol": tol, "rounds": rows})  # fmt: skip
    return 0 if eq.status == "successful" else 1
