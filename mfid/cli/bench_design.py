"""``mfid bench design``: seconds per revenue-design step on an auction setting.

One step is what ``solvers.design`` does per iteration with an exact mode: ``G_T(theta)`` and
its gradient through ``T`` OMD iterations (``solvers.value_and_grad``), plus the Adam update.
Modes are timed side by side in one run, after compilation, best of ``--repeats``.
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
    p.add_argument("--iters", type=int, default=400, help="OMD iterations T (default 400)")
    p.add_argument("--width", type=int, default=256, help="network width (default 256)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per mode (best is kept)")
    p.add_argument(
        "--json", type=Path, default=None, help="default results/bench_design_<dtype>.json"
    )
    p.set_defaults(func=run_bench_design)


def run_bench_design(args) -> int:
    import jax
    import jax.numpy as jnp
    import optax

    from auctions.objectives import make_objective
    from auctions.settings import SETTINGS, make
    from mfid.progress import Progress
    from solvers.gradients import GRADIENT_MODES, value_and_grad

    if args.setting not in SETTINGS:
        raise ValueError(f"--setting must be one of {SETTINGS}, got {args.setting!r}")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in GRADIENT_MODES or m == "implicit":
            raise ValueError(f"--modes: expected unrolled, amid or reference, got {m!r}")
    for name in ("iters", "width", "repeats"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name} must be a positive integer")
    st = make(args.setting, width=args.width)
    objective = make_objective(st.game, st.objective, st.mix_weight)
    opt = optax.adam(1e-3)
    dtype = jnp.dtype(jnp.result_type(float)).name

    def step(theta, opt_state, mode):
        value, grad, _ = value_and_grad(
            st.game, objective, theta, tau=1e-3, eta=10.0, iters=args.iters, mode=mode
        )
        grad = jax.tree_util.tree_map(jnp.negative, grad)
        updates, opt_state = opt.update(grad, opt_state, theta)
        return optax.apply_updates(theta, updates), opt_state, value

    rows = []
    with Progress(len(modes) * (args.repeats + 1), "bench design") as bar:
        for mode in modes:
            theta, opt_state = st.theta0, opt.init(st.theta0)
            t0 = time.perf_counter()
            theta, opt_state, value = step(theta, opt_state, mode)
            jax.block_until_ready(theta)
            first = time.perf_counter() - t0
            bar.update(mode=mode)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                theta, opt_state, value = step(theta, opt_state, mode)
                jax.block_until_ready(theta)
                times.append(time.perf_counter() - t0)
                bar.update(mode=mode, s=f"{times[-1]:.3f}")
            best = min(times)
            rows.append(
                {
                    "mode": mode,
                    "seconds_per_step": best,
                    "median_seconds_per_step": sorted(times)[len(times) // 2],
                    "first_call_seconds": first,
                    "minutes_for_1000_steps": 1000 * best / 60,
                }
            )
    out = {
        "benchmark": "design step",
        "command": f"mfid {'--x32 ' if dtype == 'float32' else ''}bench design --setting "
        f"{args.setting} --modes {args.modes} --iters {args.iters} --width {args.width}",
        "setting": args.setting,
        "iters": args.iters,
        "width": args.width,
        "dtype": dtype,
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "backend": jax.devices()[0].platform,
            "load_average": list(os.getloadavg()),
        },
        "rows": rows,
    }
    path = args.json or Path(f"results/bench_design_{dtype}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    for r in rows:
        print(
            f"{args.setting} {r['mode']:9s} {dtype}: {r['seconds_per_step']:.3f} s/step "
            f"(1000 steps: {r['minutes_for_1000_steps']:.1f} min)"
        )
    print(f"wrote {path}")
    return 0
