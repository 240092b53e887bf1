"""``mfid bench memory``: memory and time of one gradient of ``G_T`` per gradient mode.

For every mode (``unrolled``, ``amid``, ``implicit``, ``reference``) and every horizon ``T`` of
OMD steps it compiles :func:`solvers.gradients.value_and_grad` ahead of time and records XLA's
temporary memory (``compile().memory_analysis().temp_size_in_bytes``, deterministic) and the
best-of-``--repeats`` wall time of one compiled gradient call. With ``--H h1,h2,...`` it also
sweeps the game's horizon ``H`` at the fixed ``T = --T-fixed`` (the paper's memory/time vs
auction-horizon comparison). Output: ``{"rows": [{"mode", "T", "H", "temp_bytes", "seconds",
...}], ...}`` in JSON and a log-log figure.

Games come from :data:`GAMES`, a dict ``name -> factory``; ``factory(horizon)`` returns a
:class:`BenchGame` (game, designer objective, parameters, OMD settings) with the game's default
horizon when ``horizon`` is ``None``. To benchmark another game, add a factory to ``GAMES``.

Example::

    mfid bench memory --game beach-bar --T 100,400,1600,6400 --json results/bench_memory_beach-bar.json
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["register_bench", "run_bench_memory", "BenchGame", "GAMES", "measure"]

MODES = ("unrolled", "amid", "implicit", "reference")


@dataclasses.dataclass(frozen=True)
class BenchGame:
    """What the benchmark differentiates: ``objective(game, theta, L, info)`` at ``theta`` through OMD with
    ``tau``, ``eta`` on ``game``; ``description`` goes into the JSON."""

    game: Any
    objective: Callable
    theta: Any
    tau: float
    eta: float
    description: dict


def beach_bar(horizon: int | None = None) -> BenchGame:
    """The pricing design of ``mfid design beach-bar``: K=20 spots, crowd aversion 0.1,
    H=10 rounds by default, tau=0.1, eta=0.3, congestion with beta=50 at xi = 0."""
    import jax.numpy as jnp

    from mfid.games.beach_bar import BEACH_BAR_DESIGN, BeachBar

    ref = BEACH_BAR_DESIGN
    H = ref.horizon if horizon is None else horizon
    game = BeachBar.create(ref.num_states, H, crowd=ref.crowd)
    desc = {"name": "beach-bar", "num_states": ref.num_states, "horizon": H, "crowd": ref.crowd,
            "beta": ref.beta}  # fmt: skip
    return BenchGame(game, ref.objective(), jnp.zeros(ref.num_states), ref.tau, ref.eta, desc)


def auction_a1(horizon: int | None = None) -> BenchGame:
    """Setting A1 of the batched auction (K = M = 100, neural mechanism of width 256, revenue),
    H = 4 rounds by default, tau = 1e-3, eta = 10 (the paper's memory/time vs H table)."""
    import jax

    from auctions.objectives import revenue
    from auctions.settings import make

    st = make("A1", horizon=horizon, key=jax.random.key(1000))
    H = st.game.horizon
    desc = {"name": "A1", "num_values": 100, "num_bids": 100, "horizon": H, "width": 256}
    return BenchGame(st.game, revenue, st.theta0, 1e-3, 10.0, desc)


# name -> factory(horizon: int | None) -> BenchGame. Other games register here.
GAMES: dict[str, Callable[[int | None], BenchGame]] = {"beach-bar": beach_bar, "A1": auction_a1}


def register_bench(sub) -> None:
    p = sub.add_parser(
        "memory",
        help="XLA temporary memory and time of one gradient per mode and horizon T",
        description="Memory (XLA memory analysis) and time of one gradient of G_T per mode.",
    )
    p.add_argument(
        "--game", default="beach-bar", help=f"one of {sorted(GAMES)} (default %(default)s)"
    )
    p.add_argument("--T", default="100,400,1600,6400", help="OMD horizons T (default %(default)s)")
    p.add_argument("--modes", default=",".join(MODES), help="gradient modes (default %(default)s)")
    p.add_argument("--H", default=None, help="game horizons H to sweep at T = --T-fixed")
    p.add_argument(
        "--T-fixed", type=int, default=400, help="T of the H sweep (default %(default)s)"
    )
    p.add_argument("--repeats", type=int, default=3, help="timed calls per point (best kept)")
    p.add_argument(
        "--json", type=Path, default=None, help="default results/bench_memory_<game>.json"
    )
    p.add_argument("--plot", type=Path, default=None, help="figure (default: JSON path .png)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_bench_memory)


def _int_list(text: str, name: str) -> list[int]:
    from mfid.cli.flags import counts

    vals = counts(text, name)
    if not vals or any(v <= 0 for v in vals):
        raise ValueError(f"{name}: expected positive integers, got {text!r}")
    return vals


def _fits(temp_bytes: int, fraction: float = 0.5) -> bool:
    """Whether a compiled call's temporary memory fits in ``fraction`` of the free RAM (a call
    that does not is reported as ``did_not_fit`` instead of being run)."""
    import os

    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return True
    return temp_bytes <= fraction * free


def measure(bench: BenchGame, mode: str, T: int, repeats: int = 3) -> dict:
    """One row: XLA temporary bytes and best-of-``repeats`` seconds of one gradient."""
    from solvers import RESULTS, amid_segment, as_adjoint, lower_value_and_grad

    adjoint = as_adjoint(mode)
    lowered, args = lower_value_and_grad(
        bench.game, bench.objective, bench.theta, tau=bench.tau, eta=bench.eta, iters=T,
        adjoint=adjoint,
    )  # fmt: skip
    t0 = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    if not _fits(mem.temp_size_in_bytes):
        return {
            "mode": mode,
            "T": T,
            "H": int(bench.game.horizon),
            "temp_bytes": int(mem.temp_size_in_bytes),
            "seconds": None,
            "compile_seconds": compile_s,
            "segment": amid_segment(T) if mode == "amid" else None,
            "status": "did_not_fit",
            "fixed_point_residual": None,
        }
    out = compiled(*args)
    out[0].block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = compiled(*args)
        out[0].block_until_ready()
        best = min(best, time.perf_counter() - t0)
    aux = out[2]
    return {
        "mode": mode,
        "T": T,
        "H": int(bench.game.horizon),
        "temp_bytes": int(mem.temp_size_in_bytes),
        "seconds": best,
        "compile_seconds": compile_s,
        "segment": amid_segment(T) if mode == "amid" else None,
        "status": RESULTS.name(aux.status),
        "fixed_point_residual": float(aux.fixed_point_residual),
    }


def _figure(path: Path, rows: list[dict], x: str, title: str) -> None:
    import numpy as np

    from mfid.report.common import new_figure

    fig = new_figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    for mode in modes:
        rs = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r[x])
        xs = np.array([r[x] for r in rs], float)
        axes[0].loglog(xs, [r["temp_bytes"] / 2**20 for r in rs], "o-", label=mode)
        secs = [np.nan if r["seconds"] is None else r["seconds"] for r in rs]
        axes[1].loglog(xs, secs, "o-", label=mode)
    xs = np.array(sorted({r[x] for r in rows}), float)
    if len(xs) > 1 and x == "T":
        ref = [r for r in rows if r["mode"] == modes[0] and r[x] == xs[0]]
        y0 = ref[0]["temp_bytes"] / 2**20 if ref else 1.0
        axes[0].loglog(xs, y0 * xs / xs[0], "k:", lw=0.8, label="slope 1 (O(T))")
        axes[0].loglog(xs, y0 * np.sqrt(xs / xs[0]), "k--", lw=0.8, label="slope 1/2 (O(sqrt T))")
    label = "OMD steps T" if x == "T" else "game horizon H"
    axes[0].set(xlabel=label, ylabel="XLA temporary memory [MiB]", title="memory of one gradient")
    axes[1].set(xlabel=label, ylabel="seconds", title="time of one gradient (compiled)")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)


def run_bench_memory(args) -> int:
    from mfid.cli.progress import Progress

    if args.game not in GAMES:
        raise ValueError(f"--game must be one of {sorted(GAMES)}, got {args.game!r}")
    Ts = _int_list(args.T, "--T")
    Hs = _int_list(args.H, "--H") if args.H else []
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"--modes: expected a subset of {MODES}, got {args.modes!r}")
    if args.repeats <= 0 or args.T_fixed <= 0:
        raise ValueError("--repeats and --T-fixed must be positive")
    from mfid.cli.paths import check_output_file
    from mfid.report.common import write_json

    path = check_output_file(args.json or Path(f"results/bench_memory_{args.game}.json"), "--json")
    plot = check_output_file(args.plot or path.with_suffix(".png"), "--plot")  # before any work
    factory = GAMES[args.game]
    bench = factory(None)
    rows, h_rows = [], []
    total = len(modes) * (len(Ts) + len(Hs))
    with Progress(
        total, f"bench memory [{args.game}]", disable=True if args.no_progress else None
    ) as bar:
        for mode in modes:
            for T in Ts:
                rows.append(measure(bench, mode, T, args.repeats))
                bar.update(mode=mode, T=T, MiB=rows[-1]["temp_bytes"] / 2**20)
        for H in Hs:
            bench_h = factory(H)
            for mode in modes:
                h_rows.append(measure(bench_h, mode, args.T_fixed, args.repeats))
                bar.update(mode=mode, H=H, MiB=h_rows[-1]["temp_bytes"] / 2**20)
    cmd = f"mfid bench memory --game {args.game} --T {args.T} --modes {','.join(modes)}"
    if Hs:
        cmd += f" --H {args.H} --T-fixed {args.T_fixed}"
    report = {
        "command": cmd + f" --json {path}",
        "game": bench.description,
        "tau": bench.tau,
        "eta": bench.eta,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "note": "temp_bytes: XLA compiled temporary memory (deterministic); seconds: best of "
        f"{args.repeats} compiled calls on this machine (noisy when shared)",
        "rows": rows,
    }
    if Hs:
        report["h_sweep"] = {"T": args.T_fixed, "rows": h_rows}
    write_json(path, report)
    _figure(plot, rows, "T", f"gradient of G_T on {args.game}: memory and time vs T")
    figures = [str(plot)]
    if Hs:
        plot_h = plot.with_name(plot.stem + "_H.png")
        _figure(plot_h, h_rows, "H", f"{args.game}: memory and time vs H at T = {args.T_fixed}")
        figures.append(str(plot_h))
    for r in rows:
        print(
            f"{r['mode']:>9} T={r['T']:>5}  temp {r['temp_bytes'] / 2**20:9.2f} MiB  "
            + ("did not fit" if r["seconds"] is None else f"{r['seconds']:.4f} s")
        )
    print(f"wrote {path} and {', '.join(figures)}")
    return 0
