"""``mfid bench design``: seconds per revenue-design step on an auction setting.

A step is exactly what ``mfid design auction`` runs per iteration (``solvers.design_seeds``
with the report's settings): ``G_T(theta)`` and its gradient through ``T`` OMD iterations from
the uniform policy, the Adam update and the best-iterate bookkeeping. Every gradient mode and
compute precision is timed side by side in one run, after compilation, as the median of
``--repeats`` consecutive steps (best step also reported). Several seeds run as one program in
each ``--batching`` (``vmap``: vectorised; ``map``: one after another) on one device and, when
``mfid --devices N`` splits the CPU into host devices, also spread over them. Like the design
commands, the benchmark runs pinned to one CPU core (``N`` cores with ``--devices N``) unless
``mfid --all-cores`` is given.
"""

from __future__ import annotations

import os
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
    p.add_argument("--seeds", default="1,4", help="seed counts batched in one program (default %(default)s)")
    p.add_argument(
        "--batching",
        default="vmap,map",
        help="how a device runs several seeds: vmap, map (default %(default)s)",
    )
    p.add_argument("--iters", type=int, default=400, help="OMD iterations T (default 400)")
    p.add_argument("--width", type=int, default=256, help="network width (default 256)")
    p.add_argument("--repeats", type=int, default=10, help="timed steps per row (median kept)")
    p.add_argument("--json", type=Path, default=Path("results/bench_design.json"))
    p.set_defaults(single_core=True, func=run_bench_design)


def run_bench_design(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from auctions.objectives import make_objective
    from auctions.settings import check_setting, make
    from auctions.study import LEARNING_RATE
    from mfid.cli.flags import counts
    from mfid.cli.paths import check_output_file
    from mfid.cli.progress import Progress
    from mfid.report.common import stamp, write_json
    from solvers import design_seeds, warmup_cosine

    args.json = check_output_file(args.json, "--json")  # before any work
    setting = check_setting(args.setting)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in ("amid", "unrolled", "reference"):
            raise ValueError(f"--modes: expected unrolled, amid or reference, got {m!r}")
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    for p in precisions:
        if p not in ("float32", "float64"):
            raise ValueError(f"--precisions: expected float32 or float64, got {p!r}")
    batchings = [b.strip() for b in args.batching.split(",") if b.strip()]
    if not batchings or any(b not in ("vmap", "map") for b in batchings):
        raise ValueError(f"--batching: expected a list of vmap, map, got {args.batching!r}")
    seed_counts = counts(args.seeds, "--seeds")
    if not seed_counts or min(seed_counts) <= 0:
        raise ValueError(f"--seeds must be a comma-separated list of positive integers, got {args.seeds!r}")
    for name in ("iters", "width", "repeats"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name} must be a positive integer")
    sts = [make(setting, width=args.width, key=jax.random.key(1000 + s))
           for s in range(max(seed_counts))]  # fmt: skip
    game = sts[0].game
    objective = make_objective(sts[0].objective, sts[0].mix_weight)
    steps = args.repeats + 1
    local = jax.local_device_count()
    configs = []  # (seeds, batching, devices); one seed runs the plain step
    for n in seed_counts:
        if n == 1:
            configs.append((1, "none", 1))
            continue
        for b in batchings:
            configs += [(n, b, d) for d in sorted({1, local}) if n % d == 0]
    rows = []
    total = len(modes) * len(precisions) * len(configs) * steps
    with Progress(total, "bench design") as bar:
        for mode in modes:
            for precision in precisions:
                for n, batching, devices in configs:
                    thetas = jax.tree.map(lambda *xs: jnp.stack(xs), *[s.theta0 for s in sts[:n]])
                    keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in range(n)])
                    res = design_seeds(
                        game, objective, thetas, keys, maximize=True, estimator=mode,
                        steps=steps, iters=args.iters, optimizer=warmup_cosine(LEARNING_RATE, steps),
                        warm_start=False, select="surrogate", keep=1, precision=precision, throw=False,
                        batching=None if n == 1 else batching, devices=devices,
                        callback=lambda k, m, mode=mode: bar.update(mode=mode),
                    )  # fmt: skip
                    dt = res[0].step_seconds[1:]
                    rows.append({
                        "mode": mode, "precision": precision, "seeds": n, "batching": batching,
                        "devices": devices,
                        "seconds_per_step": float(np.median(dt)),
                        "seconds_per_step_per_seed": float(np.median(dt)) / n,
                        "best_seconds_per_step": float(np.min(dt)),
                        "first_step_seconds": float(res[0].step_seconds[0]),
                        "minutes_for_1000_steps": 1000 * float(np.median(dt)) / 60,
                        "objective_last": [float(r.objective[-1]) for r in res],
                    })  # fmt: skip
    for r in rows:
        one = [q for q in rows if (q["mode"], q["precision"], q["seeds"]) == (r["mode"], r["precision"], 1)]
        r["time_vs_one_seed"] = r["seconds_per_step"] / one[0]["seconds_per_step"] if one else None
    flags = "--all-cores " if args.all_cores else ""
    flags += f"--devices {args.devices} " if args.devices != 1 else ""
    command = (f"mfid {flags}bench design --setting "
               f"{setting} --modes {args.modes} --precisions {args.precisions} --seeds "
               f"{args.seeds} --batching {args.batching} --iters {args.iters} --width "
               f"{args.width} --repeats {args.repeats}")  # fmt: skip
    out = {"benchmark": "design step", **stamp(command), "setting": setting, "iters": args.iters,
           "width": args.width, "devices": local, "load_average": list(os.getloadavg()), "rows": rows}  # fmt: skip
    write_json(args.json, out)
    for r in rows:
        print(
            f"{setting} {r['mode']:9s} {r['precision']} x{r['seeds']} seeds "
            f"({r['batching']}, {r['devices']} device{'s' if r['devices'] > 1 else ''}): "
            f"{r['seconds_per_step']:.3f} s/step ({r['time_vs_one_seed']:.2f}x one seed)"
        )
    print(f"wrote {args.json}")
    return 0
