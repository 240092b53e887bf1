"""``mfid bench omd``: seconds per OMD iteration (after compilation) on growing beach bars."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

__all__ = ["register_bench", "run_bench_omd", "DEFAULT_SIZES"]

# (K, H): the two reference instances first, then larger ones.
DEFAULT_SIZES = ((100, 100), (1000, 10), (1000, 100), (10000, 10), (10000, 100))
# Per-iteration seconds of MFGLib's OMD (PyTorch) on this class of 2-core CPU, from the
# project's issue tracker; the target is 30x faster.
MFGLIB_REFERENCE = {(100, 100): 14e-3, (1000, 10): 270e-3}


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
    p.set_defaults(func=run_bench_omd)


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

    from mfid.beach_bar import BeachBar
    from solvers.omd import omd_update

    game = BeachBar.create(K, H)

    @jax.jit
    def run(g, z):
        step = lambda z, _: (omd_update(g, None, z, 0.1, 0.3), None)  # noqa: E731
        return jax.lax.scan(step, z, None, length=iters)[0]

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

    from mfid.progress import Progress

    if args.iters <= 0:
        raise ValueError(f"--iters must be positive, got {args.iters}")
    if args.repeats <= 0:
        raise ValueError(f"--repeats must be positive, got {args.repeats}")
    sizes = _parse_sizes(args.sizes)
    dtypes = [jnp.float32] + ([jnp.float64] if jax.config.jax_enable_x64 else [])
    rows = []
    with Progress(len(sizes) * len(dtypes), "bench omd") as bar:
        for K, H in sizes:
            for dt in dtypes:
                sec = time_omd(K, H, args.iters, args.repeats, dt)
                row = {"K": K, "H": H, "dtype": jnp.dtype(dt).name, "seconds_per_iter": sec}
                ref = MFGLIB_REFERENCE.get((K, H))
                if ref is not None:
                    row["mfglib_seconds_per_iter"] = ref
                    row["speedup_vs_mfglib"] = ref / sec
                rows.append(row)
                bar.update(K=K, H=H, ms=f"{1e3 * sec:.3f}")
    out = {
        "benchmark": "omd",
        "game": "beach-bar",
        "command": "mfid bench omd",
        "machine": f"{platform.processor() or platform.machine()}, {jax.devices()[0].platform}",
        "iters_per_call": args.iters,
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'K':>6} {'H':>5} {'dtype':>8} {'ms/iter':>10} {'vs MFGLib':>10}")
    for r in rows:
        sp = r.get("speedup_vs_mfglib")
        print(
            f"{r['K']:>6} {r['H']:>5} {r['dtype']:>8} {1e3 * r['seconds_per_iter']:>10.4f} "
            f"{(f'{sp:.0f}x' if sp else ''):>10}"
        )
    plot = args.plot or args.json.with_suffix(".png")
    _plot(rows, plot)
    print(f"wrote {args.json} and {plot}")
    return 0


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for dt in sorted({r["dtype"] for r in rows}):
        rs = [r for r in rows if r["dtype"] == dt]
        x = [r["K"] * r["H"] * 3 for r in rs]
        ax.loglog(x, [1e3 * r["seconds_per_iter"] for r in rs], "o-", label=f"mfid ({dt})")
    ref = [r for r in rows if "mfglib_seconds_per_iter" in r and r["dtype"] == rows[0]["dtype"]]
    if ref:
        ax.loglog(
            [r["K"] * r["H"] * 3 for r in ref],
            [1e3 * r["mfglib_seconds_per_iter"] for r in ref],
            "s",
            color="gray",
            label="MFGLib reference",
        )
    ax.set_xlabel("H x S x A (logits per iterate)")
    ax.set_ylabel("ms per OMD iteration")
    ax.set_title("OMD on beach bar")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
