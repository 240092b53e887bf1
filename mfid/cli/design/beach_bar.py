"""``mfid design beach-bar``: price the spots of a beach bar to lower congestion.

The designer sets ``theta = xi in R^K`` and charges ``price(s) = p_max sigmoid(xi_s)`` per round
spent at spot ``s``; it minimises the congestion ``sum_h logsumexp(beta mu_h) / beta`` of the
regularised equilibrium. Starting point ``xi = 0`` (a uniform price, which leaves the equilibrium
unchanged). Default instance and OMD settings (checked to converge: exploitability below 1e-9
after 300 steps from the uniform policy at every price the design visits)::

    K = 20 spots, H = 10 rounds, crowd aversion 0.1, p_still = 0.5, p_max = 1, beta = 50
    tau = 0.1, eta = 0.3, T = 300 OMD steps per design step (warm-started), T_val = 1000

Writes ``DIR/report.json`` (settings, objective and exploitability before/after, per-step trace,
prices) and the figures ``flow_before_after.png``, ``prices.png``, ``objective.png``.

Example::

    mfid design beach-bar --method amid --steps 100 --out results/beach_bar_design
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["register_design", "run_design_beach_bar"]

METHODS = ("amid", "unrolled", "implicit", "reference", "zeroth-sgd", "zeroth-adam", "anneal")


def register_design(sub) -> None:
    p = sub.add_parser(
        "beach-bar",
        help="price beach spots to lower congestion at the regularised equilibrium",
        description=(
            "Minimise the congestion sum_h logsumexp(beta mu_h)/beta of the beach-bar equilibrium "
            "with prices p_max*sigmoid(xi) per spot. Defaults (K=20, H=10, crowd 0.1, tau=0.1, "
            "eta=0.3, T=300, T_val=1000) converge: exploitability < 1e-9."
        ),
    )
    p.add_argument("--method", choices=METHODS, default="amid", help="gradient mode or baseline")
    p.add_argument("--steps", type=int, default=100, help="design steps (default %(default)s)")
    p.add_argument("--out", type=Path, default=Path("results/beach_bar_design"), help="output dir")
    p.add_argument("--num-states", type=int, default=20, help="spots K (default %(default)s)")
    p.add_argument("--horizon", type=int, default=10, help="rounds H (default %(default)s)")
    p.add_argument("--crowd", type=float, default=0.1, help="crowd aversion (default %(default)s)")
    p.add_argument("--p-max", type=float, default=1.0, help="largest price (default %(default)s)")
    p.add_argument("--beta", type=float, default=50.0, help="smooth-max sharpness")
    p.add_argument("--tau", type=float, default=0.1, help="entropy temperature")
    p.add_argument("--eta", type=float, default=0.3, help="OMD step size")
    p.add_argument("--iters", type=int, default=300, help="OMD steps T per design step")
    p.add_argument("--val-iters", type=int, default=1000, help="OMD steps T_val for evaluation")
    p.add_argument("--lr", type=float, default=0.2, help="learning rate of Adam (SGD: 0-SGD)")
    p.add_argument("--u", type=float, default=0.05, help="smoothing radius (zeroth-*)")
    p.add_argument("--directions", type=int, default=4, help="directions per estimate (zeroth-*)")
    p.add_argument("--sigma", type=float, default=0.3, help="ANNEAL radius")
    p.add_argument(
        "--fixed-point-tol",
        type=float,
        default=1e-9,
        help="implicit: refuse when max|Phi(zeta_T) - zeta_T| exceeds it (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.add_argument("--checkpoint-dir", type=Path, default=None, help="checkpoint/resume directory")
    p.add_argument("--checkpoint-every", type=int, default=10, help="steps between checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(single_core=True, func=run_design_beach_bar)


def _command(args) -> str:
    """The command line that regenerates the report (options that differ from the defaults)."""
    import argparse

    parser = argparse.ArgumentParser()
    register_design(parser.add_subparsers())
    defaults = vars(parser.parse_args(["beach-bar"]))
    parts = ["mfid design beach-bar"]
    for name, value in vars(args).items():
        if name in defaults and name not in ("func", "no_progress") and value != defaults[name]:
            parts.append(f"--{name.replace('_', '-')} {value}")
    if "out" in defaults and args.out == defaults["out"]:
        parts.append(f"--out {args.out}")
    return " ".join(parts)


def run_design_beach_bar(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from mfid.checks import check_count, check_positive
    from mfid.cli._names import flag_names
    from mfid.cli.paths import check_output_dir
    from mfid.cli.progress import Progress
    from mfid.games.beach_bar import BeachBar, Congestion
    from mfid.report.beach_bar import write_report
    from solvers import as_estimator, design
    from solvers.omd import check_omd_args
    from solvers.results import RESULTS

    flags = {n: f"--{n.replace('_', '-')}" for n in (
        "steps", "num_states", "horizon", "crowd", "p_max", "beta", "tau", "eta", "iters",
        "val_iters", "u", "directions", "sigma", "fixed_point_tol", "checkpoint_every")}  # fmt: skip
    flags.update(learning_rate="--lr", seed="--seed")
    with flag_names(**flags):  # every flag checked before any work, errors naming the flag
        check_count(args.steps, "steps")
        check_count(args.val_iters, "val_iters")
        check_count(args.checkpoint_every, "checkpoint_every")
        check_positive(args.lr, "learning_rate")
        check_omd_args(args.tau, args.eta, args.iters)
        game = BeachBar.create(args.num_states, args.horizon, crowd=args.crowd, p_max=args.p_max)
        objective = Congestion(float(args.beta))
        estimator = as_estimator(args.method, u=args.u, directions=args.directions,
                                 sigma=args.sigma)  # fmt: skip
        if args.method == "implicit":
            from solvers import Exact, Implicit

            estimator = Exact(Implicit(fixed_point_tol=args.fixed_point_tol))
    out = check_output_dir(args.out, "--out")
    if args.checkpoint_dir is not None:
        check_output_dir(args.checkpoint_dir, "--checkpoint-dir")
    theta0 = jnp.zeros(args.num_states)
    optimizer = None
    if args.method == "zeroth-sgd":
        from solvers import Optimizer

        optimizer = Optimizer("sgd", args.lr)
    with Progress(args.steps, f"design[{args.method}]", disable=args.no_progress or None) as bar:
        res = design(
            game, objective, theta0, maximize=False, estimator=estimator, optimizer=optimizer,
            learning_rate=args.lr, steps=args.steps, tau=args.tau, eta=args.eta,
            iters=args.iters, val_iters=args.val_iters, key=jax.random.key(args.seed),
            checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
            callback=lambda k, m: bar.update(obj=m["objective"][0], expl=m["exploitability"][0]),
            throw=False,
        )  # fmt: skip
    settings = {
        "method": args.method, "steps": args.steps, "tau": args.tau, "eta": args.eta,
        "iters": args.iters, "val_iters": args.val_iters, "learning_rate": args.lr,
        "warm_start": True, "seed": args.seed,
        **({"u": args.u, "directions": args.directions} if "zeroth" in args.method else {}),
        **({"sigma": args.sigma} if args.method == "anneal" else {}),
    }  # fmt: skip
    write_report(out, game, res, settings=settings, beta=float(args.beta), command=_command(args))
    print(
        f"congestion {res.initial_value:.6f} -> {res.final_value:.6f} "
        f"(exploitability {res.final_exploitability:.2e}, {res.steps} steps, "
        f"{res.seconds:.1f}s); wrote {out / 'report.json'}"
    )
    honest = res.ok and RESULTS.is_ok(res.final.status) and np.isfinite(res.final_value)
    if not honest:
        print(f"mfid: warning: the design ended with status {res.status} and its final "
              f"equilibrium with {res.final.status_name} ({res.message}); the report flags it",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0
