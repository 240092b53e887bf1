"""``mfid design auction``: revenue design of a batched-auction mechanism, with a report.

Runs AMID and the zeroth-order baselines (0-ADAM, 0-SGD, ANNEAL) at equal numbers of objective
evaluations on one of the settings A1–A10 (see :mod:`auctions.settings`), evaluates every final
mechanism with ``--val-iters`` OMD steps, and writes ``DIR/report.md``, ``DIR/report.json`` and
figures (see :mod:`auctions.study` and :mod:`mfid.report.auction`).

Example::

    python -m mfid design auction --setting A1 --steps 60 --seeds 2 --out results/A1

With ``--checkpoint-dir DIR`` every method's design run is checkpointed every
``--checkpoint-every`` steps and its finished runs kept; the same command run again resumes
(bitwise equal to an uninterrupted run) and refuses, naming the file, a checkpoint of other
settings or one it cannot read.
"""

from __future__ import annotations

import sys

__all__ = ["register_design", "run_design_auction"]


def register_design(sub) -> None:
    p = sub.add_parser(
        "auction",
        help="design a batched-auction mechanism for revenue and write a report",
        description="Revenue design of the neural (or static) mechanism on a setting A1–A10.",
    )
    p.add_argument("--setting", default="A1", help="A1..A10 (default %(default)s)")
    p.add_argument(
        "--method",
        default="amid,zeroth-adam,zeroth-sgd,anneal",
        help="comma-separated subset of amid, zeroth-adam, zeroth-sgd, anneal (default: all)",
    )
    p.add_argument(
        "--steps", type=int, default=100, help="objective evaluations per method (AMID steps)"
    )
    p.add_argument("--seeds", type=int, default=1, help="seeds per method (default %(default)s)")
    p.add_argument("--out", default=None,
                   help="output directory, replaced atomically (default mfid-out/<setting>)")  # fmt: skip
    p.add_argument("--iters", type=int, default=400, help="OMD steps T of the design surrogate")
    p.add_argument(
        "--val-iters", type=int, default=10000,
        help="most OMD steps of an evaluation at the equilibrium (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--tau", type=float, default=1e-3, help="entropy regularisation (default %(default)s)"
    )
    p.add_argument("--eta", type=float, default=10.0, help="OMD step size (default %(default)s)")
    p.add_argument(
        "--lr",
        type=float,
        default=2e-3,  # auctions.study.LEARNING_RATE
        help="peak Adam learning rate (default %(default)s)",
    )
    p.add_argument(
        "--zo-lr",
        type=float,
        default=None,
        help="learning rate of the zeroth-order methods (default --lr)",
    )
    p.add_argument("--width", type=int, default=256, help="width of the neural mechanism")
    p.add_argument("--num-values", type=int, default=100, help="value levels K (default 100)")
    p.add_argument("--num-bids", type=int, default=100, help="bid levels M (default 100)")
    p.add_argument("--draws", type=int, default=4, help="A3: number of (mu0, alpha_max) draws")
    p.add_argument(
        "--warm-start",
        action="store_true",
        help="warm-start OMD from the previous design step (default: from the uniform policy)",
    )
    p.add_argument(
        "--select",
        choices=("converged", "surrogate", "last"),
        default="converged",
        help="which mechanism of a run is reported, the same rule for every method: the best "
        "converged value among the last iterate and the --keep best surrogates (default), the "
        "best surrogate G_T, or the last iterate",
    )
    p.add_argument(
        "--backtrack", action="store_true",
        help="reject a design step whose surrogate is worse than the last accepted one and retry "
        "it shorter (solvers.Backtracking; default: off)",
    )  # fmt: skip
    p.add_argument(
        "--tau-start", type=float, default=None,
        help="anneal the surrogate's temperature in stages from this value down to --tau over "
        "the first half of the steps (default: no annealing)",
    )  # fmt: skip
    p.add_argument("--keep", type=int, default=3, help="best-surrogate candidates kept per run")
    p.add_argument(
        "--val-tol", type=float, default=1e-9,
        help="exploitability tolerance of every reported equilibrium (default %(default)s)",
    )  # fmt: skip
    p.add_argument("--u", type=float, default=0.05, help="0-SGD/0-ADAM smoothing radius")
    p.add_argument("--sigma", type=float, default=0.1, help="ANNEAL radius")
    p.add_argument(
        "--precision",
        choices=("float32", "float64"),
        default="float32",
        help="compute precision of the design steps (default %(default)s; reported numbers are "
        "always evaluated in float64, or float32 under --x32)",
    )
    p.add_argument(
        "--batching",
        choices=("vmap", "map"),
        default="vmap",
        help="how a device runs several seeds: one vectorised program (vmap) or one after another "
        "(map; faster on a CPU split by mfid --devices N)",
    )
    p.add_argument(
        "--checkpoint-dir", default=None,
        help="checkpoint every method's design run here and resume from it: rerunning the same "
        "command continues where it stopped and does not redo finished methods",
    )  # fmt: skip
    p.add_argument("--checkpoint-every", type=int, default=10,
                   help="design steps between checkpoints (default %(default)s)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(single_core=True, func=run_design_auction)


def run_design_auction(args) -> int:
    from auctions.settings import check_setting
    from auctions.study import METHODS, run_revenue_design
    from mfid.cli.progress import Progress
    from mfid.report.auction import write_report

    try:
        args.setting = check_setting(args.setting)
    except ValueError as err:
        raise ValueError(f"--{err}") from None
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"--method must be a comma-separated subset of {METHODS}, got {m!r}")
    if not methods:
        raise ValueError(f"--method must name at least one of {METHODS}")
    for name in (
        "steps",
        "seeds",
        "iters",
        "val_iters",
        "width",
        "draws",
        "keep",
        "num_values",
        "num_bids",
        "checkpoint_every",
    ):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer")
    for name in ("tau", "eta", "lr", "zo_lr", "val_tol", "u", "sigma", "tau_start"):
        v = getattr(args, name)
        if v is not None and not (v == v and abs(v) != float("inf") and v >= 0):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")
    for name in ("eta", "lr", "zo_lr", "u", "sigma", "tau_start"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {v}")
    from mfid.cli.paths import check_output_dir

    out = check_output_dir(args.out or f"mfid-out/{args.setting}", "--out")
    ckpt = None
    if args.checkpoint_dir is not None:
        ckpt = check_output_dir(args.checkpoint_dir, "--checkpoint-dir")
        inside = ckpt.resolve()
        if inside == out.resolve() or out.resolve() in inside.parents:
            raise ValueError(f"--checkpoint-dir {ckpt} must not lie inside --out {out} (the "
                             "report replaces that directory)")  # fmt: skip
    done: dict[str, int] = {}

    def progress(m, k, metrics):
        bar.update(k - done.get(m, -1), method=m, G_T=max(metrics["objective"]))
        done[m] = k

    budget = sum(args.steps if m == "amid" else max(1, args.steps // 3) for m in methods)
    with Progress(budget, f"design {args.setting}", disable=args.no_progress or None) as bar:
        result = run_revenue_design(
            args.setting,
            methods=tuple(methods),
            steps=args.steps,
            seeds=args.seeds,
            tau=args.tau,
            eta=args.eta,
            iters=args.iters,
            val_iters=args.val_iters,
            learning_rate=args.lr,
            zo_learning_rate=args.zo_lr,
            width=args.width,
            draws=args.draws,
            num_values=args.num_values,
            num_bids=args.num_bids,
            warm_start=args.warm_start,
            backtrack=args.backtrack,
            tau_start=args.tau_start,
            select=args.select,
            keep=args.keep,
            val_tol=args.val_tol,
            u=args.u,
            sigma=args.sigma,
            precision=None if args.x32 else args.precision,
            batching=args.batching,
            callback=progress,
            checkpoint_dir=ckpt,
            checkpoint_every=args.checkpoint_every,
        )
    from mfid.cli import command_line

    command = command_line(args)
    s = write_report(result, out, command)
    for m in methods:
        v = s["methods"][m]
        share = v["share_of_bound"]
        extra = f", {100 * share:.1f}% of bound" if share is not None else ""
        std = "" if v["revenue_std"] is None else f" ± {v['revenue_std']:.4f}"
        flag = "" if v["converged"] and v["design_status"] == ["successful"] else "  [FLAGGED]"
        print(
            f"{m}: revenue {v['revenue_mean']:.4f}{std} per capita{extra}, exploitability "
            f"{v['exploitability_max']:.1e}, {v['seconds_per_step']:.3f} s/step{flag}"
        )
    fp = s["first_price"]
    print(f"first price: {fp['revenue']:.4f} (exploitability {fp['exploitability']:.1e}); "
          f"report: {out}/report.md")  # fmt: skip
    if s["status"] != "successful":
        print("mfid: warning: not every equilibrium reached --val-tol or a run stopped early; "
              "the report flags it", file=sys.stderr)  # fmt: skip
        return 1
    return 0
