"""``mfid bench sweep``: the same small sweep on the ``local`` and the ``ray`` backend, and the
throughput of batched seeds against one seed at a time, in one run.

1. *Backends*: ``--configs`` configurations of ``--setting`` (AMID at learning rates spread over
   ``1e-3 … 1e-2``; every learning rate is a separate compiled design step, as in a real tuning
   sweep) × ``--seeds`` seeds, run by :func:`mfid.cli.sweep_engine.run_sweep` into fresh directories, first
   on a local Ray cluster started here with ``--num-cpus`` CPUs (one CPU per task), then on the
   ``local`` backend in this process. Both start cold (neither has compiled anything before).
   Reported: wall times, Ray's cluster start, and Ray's overhead = its wall time (start
   included) minus the local wall time (negative when its parallel tasks win), and the wall
   time minus the tasks' own compute divided over the workers (scheduling and transfer).
2. *Batched seeds*: ``configs × seeds`` runs of one configuration as one batched program
   (``seeds = configs × seeds``) against the same number of one-seed calls, both after a
   warm-up call (compiled), in runs per hour.

Writes ``--json`` (default ``results/bench_sweep.json``) with the machine, the load average
before and after, and a note when the machine was loaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

__all__ = ["register_bench", "run_bench_sweep"]


def register_bench(sub) -> None:
    p = sub.add_parser("sweep", help="one sweep on the local and the ray backend; batched seeds")
    p.add_argument("--setting", default="A1", help="auction setting (default %(default)s)")
    p.add_argument("--configs", type=int, default=4, help="configurations (default %(default)s)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per configuration (default 2)")
    p.add_argument("--steps", type=int, default=30, help="AMID steps per run (default 30)")
    p.add_argument("--size", type=int, default=20, help="value and bid levels (default 20)")
    p.add_argument("--width", type=int, default=32, help="network width (default 32)")
    p.add_argument("--iters", type=int, default=100, help="OMD steps T (default 100)")
    p.add_argument("--val-iters", type=int, default=2000, help="most OMD steps of evaluations")
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    p.add_argument("--json", type=Path, default=Path("results/bench_sweep.json"))
    p.set_defaults(func=run_bench_sweep)


def run_bench_sweep(args) -> int:
    import jax
    import numpy as np

    from auctions.settings import check_setting
    from auctions.study import run_revenue_design
    from mfid.cli.sweep_engine import run_sweep
    from mfid.report.common import stamp, write_json

    setting = check_setting(args.setting)
    for name in ("configs", "seeds", "steps", "size", "width", "iters", "val_iters", "num_cpus"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer")
    try:
        import ray
    except ImportError:
        raise ValueError('mfid bench sweep needs Ray: pip install "mfid[ray]"') from None
    from mfid.cli.paths import check_output_file

    args.json = check_output_file(args.json, "--json")
    fixed = {"steps": args.steps, "num_values": args.size, "num_bids": args.size,
             "width": args.width, "iters": args.iters, "val_iters": args.val_iters}  # fmt: skip
    lrs = [float(x) for x in np.geomspace(1e-3, 1e-2, args.configs)]
    spec = {"settings": [setting], "methods": ["amid"], "seeds": args.seeds, "fixed": fixed,
            "grid": {"lr": lrs}}  # fmt: skip
    runs = args.configs * args.seeds
    load_before = list(os.getloadavg())
    scratch = Path(tempfile.mkdtemp(prefix="mfid-bench-sweep-"))
    try:
        t = time.perf_counter()
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t
        try:
            t = time.perf_counter()
            ray_table = run_sweep(spec, scratch / "ray", backend="ray", figure=False)
            ray_wall = time.perf_counter() - t
        finally:
            ray.shutdown()
        t = time.perf_counter()
        local_table = run_sweep(spec, scratch / "local", backend="local", figure=False)
        local_wall = time.perf_counter() - t
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    same = [r["revenue_per_seed"] for r in ray_table["rows"]] == [
        r["revenue_per_seed"] for r in local_table["rows"]
    ]
    task_seconds = sum(r["seconds"] for r in ray_table["rows"])
    workers = min(args.num_cpus, args.configs)

    # batched seeds against one seed at a time (compiled: after one warm-up call each)
    kw = dict(methods=("amid",), learning_rate=lrs[0], **fixed)
    run_revenue_design(setting, seeds=runs, **kw)
    t = time.perf_counter()
    run_revenue_design(setting, seeds=runs, **kw)
    batched = time.perf_counter() - t
    run_revenue_design(setting, seeds=1, **kw)
    t = time.perf_counter()
    for _ in range(runs):
        run_revenue_design(setting, seeds=1, **kw)
    single = time.perf_counter() - t
    load_after = list(os.getloadavg())

    command = (f"mfid bench sweep --setting {setting} --configs {args.configs} --seeds "
               f"{args.seeds} --steps {args.steps} --size {args.size} --width {args.width} "
               f"--iters {args.iters} --val-iters {args.val_iters} --num-cpus {args.num_cpus}")  # fmt: skip
    out = {
        "benchmark": "sweep backends and batched seeds",
        **stamp(command),
        "setting": setting,
        "sweep": {
            "configurations": args.configs,
            "seeds": args.seeds,
            "runs": runs,
            "learning_rates": lrs,
            **fixed,
        },  # fmt: skip
        "local_wall_seconds": local_wall,
        "ray_start_seconds": ray_start,
        "ray_wall_seconds": ray_wall,
        "ray_num_cpus": args.num_cpus,
        "ray_task_seconds_sum": task_seconds,
        "ray_overhead_seconds": ray_start + ray_wall - local_wall,
        "ray_scheduling_overhead_seconds": ray_wall - task_seconds / workers,
        "ray_equals_local": same,
        "runs_per_hour_local": 3600 * runs / local_wall,
        "runs_per_hour_ray": 3600 * runs / (ray_start + ray_wall),
        "batched_seconds": batched,
        "one_at_a_time_seconds": single,
        "runs_per_hour_batched": 3600 * runs / batched,
        "runs_per_hour_one_at_a_time": 3600 * runs / single,
        "batched_speedup": single / batched,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "device": jax.devices()[0].platform,
    }
    if max(load_before[0], load_after[0]) > 3:
        out["note"] = (f"the machine was loaded by other jobs (1-minute load average "
                       f"{load_before[0]:.1f} before, {load_after[0]:.1f} after, on "
                       f"{os.cpu_count()} CPUs): absolute times are inflated, ratios less so")  # fmt: skip
    write_json(args.json, out)
    print(f"{runs}-run sweep: local {local_wall:.1f} s, ray {ray_wall:.1f} s (+{ray_start:.1f} s "
          f"cluster start; overhead {out['ray_overhead_seconds']:+.1f} s; same numbers: {same})")  # fmt: skip
    print(f"batched seeds: {out['runs_per_hour_batched']:.0f} runs/h against "
          f"{out['runs_per_hour_one_at_a_time']:.0f} runs/h one at a time "
          f"({out['batched_speedup']:.1f}x)")  # fmt: skip
    print(f"wrote {args.json}")
    return 0
