"""``mfid bench design``: seconds per revenue-design step on an auction setting.

A step is exactly what ``mfid design auction`` runs per iteration (``solvers.design.design``
with the report's settings): ``G_T(theta)`` and its gradient through ``T`` OMD iterations from
the uniform policy, the Adam update and the best-iterate bookkeeping. Every gradient mode and
compute precision is timed side by side in one run, after compilation, as the median of
``--repeats`` consecutive steps (best step also reported). Like the design commands, the
benchmark runs pinned to one CPU core unless ``mfid --all-cores`` is given.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

__all__ = ["register_bench", "run_bench_design"]


def register_bench(sub) -> None:
    p = sub.add_parser("design", help="seconds per AMID revenue-design step on an auction setting")
    p.add_argument("--setting", default="A1", help="auction setting (default %(default)s)")
    p.add_argument("--modes", default="amid,unrolled", help="gradient modes (default %(default)s)")
    p.add_argument(
        "--precisions",
        default="float32,float64",
        help="compute precisions of the design steps (default %(default)s)",
    )
    p.add_argument("--iters", type=int, default=400, help="OMD iterations T (default 400)")
    p.add_argument("--width", type=int, default=256, help="network width (default 256)")
    p.add_argument("--repeats", type=int, default=10, help="timed steps per row (median kept)")
    p.add_argument("--json", type=Path, default=Path("results/bench_design.json"))
    p.set_defaults(single_core=True, func=run_bench_design)


def run_bench_design(args) -> int:
    import jax
    import numpy as np

    from auctions.objectives import make_objective
    from auctions.report import LEARNING_RATE, design_optimizer
    from auctions.settings import SETTINGS, make
    from mfid.cli.progress import Progress
    from solvers.design import design
    from solvers.gradients import GRADIENT_MODES

    if args.setting not in SETTINGS:
        raise ValueError(f"--setting must be one of {SETTINGS}, got {args.setting!r}")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in GRADIENT_MODES or m == "implicit":
            raise ValueError(f"--modes: expected unrolled, amid or reference, got {m!r}")
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    for p in precisions:
        if p not in ("float32", "float64"):
            raise ValueError(f"--precisions: expected float32 or float64, got {p!r}")
    for name in ("iters", "width", "repeats"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name} must be a positive integer")
    st = make(args.setting, width=args.width)
    objective = make_objective(st.game, st.objective, st.mix_weight)
    steps = args.repeats + 1
    rows = []
    with Progress(len(modes) * len(precisions) * steps, "bench design") as bar:
        for mode in modes:
            for precision in precisions:
                stamps: list[float] = []

                def tick(k, metrics, stamps=stamps, mode=mode, precision=precision):
                    stamps.append(time.perf_counter())
                    bar.update(mode=mode, precision=precision)

                t0 = time.perf_counter()
                res = design(
                    st.game,
                    objective,
                    st.theta0,
                    maximize=True,
                    method=mode,
                    steps=steps,
                    iters=args.iters,
                    optimizer=design_optimizer(mode, LEARNING_RATE, steps),
                    warm_start=False,
                    keep_best=True,
                    precision=precision,
                    progress=False,
                    callback=tick,
                )
                dt = np.diff(stamps)
                rows.append(
                    {
                        "mode": mode,
                        "precision": precision,
                        "seconds_per_step": float(np.median(dt)),
                        "best_seconds_per_step": float(np.min(dt)),
                        "first_step_seconds": stamps[0] - t0,
                        "minutes_for_1000_steps": 1000 * float(np.median(dt)) / 60,
                        "objective_last": float(res.objective[-1]),
                    }
                )
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    out = {
        "benchmark": "design step",
        "command": f"mfid {'--all-cores ' if args.all_cores else ''}bench design --setting "
        f"{args.setting} --modes {args.modes} --precisions {args.precisions} "
        f"--iters {args.iters} --width {args.width} --repeats {args.repeats}",
        "setting": args.setting,
        "iters": args.iters,
        "width": args.width,
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "cores_used": cpus,
            "backend": jax.devices()[0].platform,
            "load_average": list(os.getloadavg()),
        },
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    for r in rows:
        print(
            f"{args.setting} {r['mode']:9s} {r['precision']}: {r['seconds_per_step']:.3f} s/step "
            f"(1000 steps: {r['minutes_for_1000_steps']:.1f} min)"
        )
    print(f"wrote {args.json}")
    return 0
