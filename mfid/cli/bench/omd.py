"""``mfid bench omd``: seconds per OMD iteration (after compilation) on growing beach bars."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

__all__ = ["register_bench", "run_bench_omd", "DEFAULT_SIZES"]

# (K, H): the two reference instances first, then larger ones.
DEFAULT_SIZES = ((100, 100), (1000, 10), (1000, 100), (10000, 10), (10000, 100))
# Published per-iteration seconds of MFGLib's OMD (PyTorch) on a 2-core CPU; the target is 30x
# faster. With --mfglib-python the same instances are also timed side by side in this run.
MFGLIB_REFERENCE = {(100, 100): 14e-3, (1000, 10): 270e-3}

# Timed in a separate interpreter that has MFGLib (and PyTorch) installed. MFGLib's beach bar
# with horizon T has T + 1 stages and the same slip noise; one OMD step = flow + Q of the policy.
_MFGLIB_SCRIPT = """
import json, sys, time
import torch
from mfglib.env import Environment
from mfglib.alg import OnlineMirrorDescent
torch.set_num_threads(2)
out = []
for K, H, iters in json.loads(sys.argv[1]):
    env = Environment.beach_bar(T=H - 1, n=K, bar_loc=K // 2, p_still=0.5)
    alg = OnlineMirrorDescent(alpha=1.0)
    pi0 = torch.ones((env.T + 1,) + env.S + env.A) / env.n_actions
    state = alg.step_next_state(alg.init_state(env, pi0), None, None)
    t0 = time.perf_counter()
    for _ in range(iters):
        state = alg.step_next_state(state, None, None)
    out.append([K, H, (time.perf_counter() - t0) / iters])
print(json.dumps(out))
"""


def register_bench(sub) -> None:
    p = sub.add_parser("omd", help="time OMD iterations on beach bars of growing size")
    p.add_argument(
        "--sizes",
        default=",".join(f"{k}x{h}" for k, h in DEFAULT_SIZES),
        help="comma-separated KxH list (default %(default)s)",
    )
    p.add_argument("--iters", type=int, default=200, help="OMD iterations per timed call")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per size (best is kept)")
    p.add_argument(
        "--json", type=Path, default=Path("results/bench_omd.json"), help="output JSON path"
    )
    p.add_argument("--plot", type=Path, default=None, help="figure path (default: next to JSON)")
    p.add_argument(
        "--mfglib-python",
        default=None,
        help="python of a separate environment with mfglib installed: time MFGLib's OMD on the "
        "reference instances in the same run",
    )
    p.add_argument("--mfglib-iters", type=int, default=3, help="MFGLib iterations per instance")
    p.set_defaults(func=run_bench_omd)


def _runnable(python: str) -> bool:
    import shutil

    return shutil.which(python) is not None


def time_mfglib(python: str, sizes, iters: int) -> dict:
    """Seconds per OMD iteration of MFGLib on the given ``(K, H)`` beach bars."""
    import subprocess

    job = json.dumps([[k, h, iters] for k, h in sizes])
    proc = subprocess.run(
        [python, "-c", _MFGLIB_SCRIPT, job], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ValueError(f"--mfglib-python: MFGLib timing failed: {proc.stderr.strip()[-400:]}")
    return {(k, h): sec for k, h, sec in json.loads(proc.stdout.strip().splitlines()[-1])}


def _parse_sizes(text: str):
    sizes = []
    for item in text.split(","):
        try:
            k, h = (int(x) for x in item.lower().split("x"))
        except ValueError:
            raise ValueError(f"--sizes: expected KxH items such as 100x100, got {item!r}") from None
        if k < 2 or h < 1:
            raise ValueError(f"--sizes: K must be >= 2 and H >= 1, got {item!r}")
        sizes.append((k, h))
    return sizes


def time_omd(K: int, H: int, iters: int, repeats: int, dtype) -> float:
    """Best-of-``repeats`` seconds per OMD iteration of one jitted ``iters``-step scan."""
    import jax
    import jax.numpy as jnp

    from mfid.games.beach_bar import BeachBar
    from solvers import Unrolled, omd_step

    game = BeachBar.create(K, H)

    @jax.jit
    def run(g, z):
        args = (g, None, jnp.asarray(0.1, z.dtype), jnp.asarray(0.3, z.dtype))
        return Unrolled().steps(omd_step, z, args, iters)

    z = jnp.zeros((H, K, 3), dtype)
    run(game, z).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(game, z).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return best / iters


def run_bench_omd(args) -> int:
    import jax
    import jax.numpy as jnp

    from mfid.cli.progress import Progress

    if args.iters <= 0:
        raise ValueError(f"--iters must be positive, got {args.iters}")
    if args.repeats <= 0:
        raise ValueError(f"--repeats must be positive, got {args.repeats}")
    sizes = _parse_sizes(args.sizes)
    from mfid.cli.paths import check_output_file
    from mfid.report.common import write_json

    args.json = check_output_file(args.json, "--json")  # before any work
    plot = check_output_file(args.plot or args.json.with_suffix(".png"), "--plot")
    if args.mfglib_python and not _runnable(args.mfglib_python):
        raise ValueError(f"--mfglib-python {args.mfglib_python}: not an executable python")
    measured = {}
    if args.mfglib_python:
        measured = time_mfglib(args.mfglib_python, sorted(MFGLIB_REFERENCE), args.mfglib_iters)
    dtypes = [jnp.float32] + ([jnp.float64] if jax.config.jax_enable_x64 else [])
    rows = []
    with Progress(len(sizes) * len(dtypes), "bench omd") as bar:
        for K, H in sizes:
            for dt in dtypes:
                sec = time_omd(K, H, args.iters, args.repeats, dt)
                row = {"K": K, "H": H, "dtype": jnp.dtype(dt).name, "seconds_per_iter": sec}
                ref = MFGLIB_REFERENCE.get((K, H))
                if ref is not None:
                    row["mfglib_published_seconds_per_iter"] = ref
                    row["speedup_vs_mfglib_published"] = ref / sec
                if (K, H) in measured:
                    row["mfglib_measured_seconds_per_iter"] = measured[(K, H)]
                    row["speedup_vs_mfglib_measured"] = measured[(K, H)] / sec
                rows.append(row)
                bar.update(K=K, H=H, ms=f"{1e3 * sec:.3f}")
    out = {
        "benchmark": "omd",
        "game": "beach-bar",
        "command": "mfid bench omd",
        "machine": f"{platform.processor() or platform.machine()}, {jax.devices()[0].platform}",
        "iters_per_call": args.iters,
        "mfglib": "published per-iteration times; measured in this run where present"
        + (f" ({args.mfglib_iters} MFGLib iterations each)" if measured else ""),
        "rows": rows,
    }
    write_json(args.json, out)
    print(f"{'K':>6} {'H':>5} {'dtype':>8} {'ms/iter':>10} {'vs MFGLib':>10} {'(measured)':>10}")
    for r in rows:
        sp = r.get("speedup_vs_mfglib_published")
        sm = r.get("speedup_vs_mfglib_measured")
        print(
            f"{r['K']:>6} {r['H']:>5} {r['dtype']:>8} {1e3 * r['seconds_per_iter']:>10.4f} "
            f"{(f'{sp:.0f}x' if sp else ''):>10} {(f'{sm:.0f}x' if sm else ''):>10}"
        )
    _plot(rows, plot)
    print(f"wrote {args.json} and {plot}")
    return 0


def _plot(rows, path: Path) -> None:
    from mfid.report.common import new_figure

    sizes = list(dict.fromkeys((r["K"], r["H"]) for r in rows))
    labels = [f"K={k}\nH={h}" for k, h in sizes]
    series = [
        (
            f"mfid ({dt})",
            {(r["K"], r["H"]): r["seconds_per_iter"] for r in rows if r["dtype"] == dt},
        )
        for dt in sorted({r["dtype"] for r in rows})
    ]
    for key, label in [
        ("mfglib_published_seconds_per_iter", "MFGLib (published)"),
        ("mfglib_measured_seconds_per_iter", "MFGLib (this run)"),
    ]:
        vals = {(r["K"], r["H"]): r[key] for r in rows if key in r}
        if vals:
            series.append((label, vals))
    fig = new_figure(figsize=(7, 4), layout=None)
    ax = fig.subplots()
    width = 0.8 / len(series)
    for j, (label, vals) in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * width for i, sz in enumerate(sizes) if sz in vals]
        ys = [1e3 * vals[sz] for sz in sizes if sz in vals]
        ax.bar(xs, ys, width, label=label)
    ax.set_yscale("log")
    ax.set_xticks(range(len(sizes)), labels)
    ax.set_xlabel("beach bar instance (A = 3 actions)")
    ax.set_ylabel("ms per OMD iteration")
    ax.set_title("OMD on beach bar")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
