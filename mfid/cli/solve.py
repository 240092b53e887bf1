"""``mfid solve <game>``: compute a regularised mean-field equilibrium by OMD and summarise it."""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["register", "run_solve"]


def register(sub) -> None:
    p = sub.add_parser("solve", help="solve a game's regularised mean-field equilibrium by OMD")
    p.add_argument("game", choices=["beach-bar"], help="which game")
    p.add_argument("--num-states", type=int, default=20, help="number of spots K (default 20)")
    p.add_argument("--horizon", type=int, default=10, help="rounds H (default 10)")
    p.add_argument("--tau", type=float, default=0.1, help="entropy temperature (default 0.1)")
    p.add_argument("--eta", type=float, default=0.3, help="OMD step size (default 0.3)")
    p.add_argument("--iters", type=int, default=2000, help="maximum OMD iterations (default 2000)")
    p.add_argument(
        "--tol", type=float, default=1e-10, help="stop once exploitability <= tol (default 1e-10)"
    )
    p.add_argument("--p-still", type=float, default=0.5, help="probability of no slip (0.5)")
    p.add_argument("--crowd", type=float, default=1.0, help="crowd-aversion weight (1.0)")
    p.add_argument("--json", type=Path, default=None, help="write the summary as JSON here")
    p.set_defaults(func=run_solve)


FLAGS = {"num_states": "--num-states", "horizon": "--horizon", "p_still": "--p-still",
         "crowd": "--crowd", "tau": "--tau", "eta": "--eta", "iters": "--iters", "tol": "--tol"}  # fmt: skip


def run_solve(args) -> int:
    from mfid.cli._names import flag_names
    from mfid.cli.paths import check_output_file
    from mfid.games.beach_bar import BeachBar
    from mfid.report.common import write_json
    from solvers.omd import check_omd_args, solve_omd
    from solvers.results import RESULTS

    if args.json is not None:
        args.json = check_output_file(args.json, "--json")
    with flag_names(**FLAGS):
        game = BeachBar.create(args.num_states, args.horizon, p_still=args.p_still,
                               crowd=args.crowd)  # fmt: skip
        check_omd_args(args.tau, args.eta, args.iters)
        kw = dict(tau=args.tau, eta=args.eta, iters=args.iters, tol=args.tol)
        solve_omd(game, None, **kw).exploitability.block_until_ready()  # compile
    t0 = time.perf_counter()
    res = solve_omd(game, None, **kw)
    expl = float(res.exploitability)
    seconds = time.perf_counter() - t0
    params = {
        "states": args.num_states,
        "horizon": args.horizon,
        "bar": game.bar,
        "p_still": args.p_still,
        "crowd": args.crowd,
        "tau": args.tau,
        "eta": args.eta,
        "iters": args.iters,
        "tol": args.tol,
    }
    out = {
        "game": args.game,
        "params": params,
        "exploitability": expl,
        "iterations": int(res.iterations),
        "seconds": seconds,
        "status": res.status_name,
    }
    mu = res.flow.sum(-1)
    print(f"{args.game}: K={args.num_states} H={args.horizon} tau={args.tau} eta={args.eta}")
    print(f"  status          {res.status_name} after {int(res.iterations)} OMD iterations")
    print(f"  exploitability  {expl:.3e}")
    print(
        f"  time            {seconds:.3f} s ({1e3 * seconds / max(int(res.iterations), 1):.3f} ms/iter)"
    )
    print(
        f"  crowd at bar    {float(mu[-1, game.bar]):.4f} in the last round (uniform {1 / args.num_states:.4f})"
    )
    if res.status_name == "max_iterations" and args.tol is not None:
        print("  note            not converged: try a smaller --eta or more --iters")
    if not RESULTS.is_ok(res.status):
        print(f"  warning         {res.message}")
    if args.json is not None:
        write_json(args.json, out)  # strict JSON: a non-finite number is null beside the status
        print(f"  wrote           {args.json}")
    return 0 if RESULTS.is_ok(res.status) else 1
