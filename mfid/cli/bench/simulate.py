"""``mfid bench simulate``: agent-rounds per second of the two finite-N simulators.

* generic sampler (:func:`mfid.finite.simulate`) on the beach bar K = 20, H = 10 at its
  regularised MF-NE (tau = 0.1);
* exact batched auction (:func:`auctions.simulate.simulate_auction`) on A1 (K = M = 100, H = 4,
  alpha_max = 0.8) with the fixed first-price mechanism at its MF-NE (tau = 1e-3, 500 OMD steps).

For every population size ``N`` the simulator is compiled and warmed up once, then timed
``--repeats`` times with fresh keys (best kept); throughput = ``N * reps * H / seconds``.
``reps`` is chosen so that ``N * reps`` is about ``--agents`` (at least 1 replicate). Writes
``results/bench_simulate.json``. Timings are wall-clock on the machine named in the JSON and
are noisy when other processes share the CPU (the load average is recorded).

Example::

    python -m mfid bench simulate --n 1000,100000,1000000
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

__all__ = ["register_bench", "run_bench_simulate", "DEFAULT_NS"]

DEFAULT_NS = "1000,10000,100000,1000000"


def register_bench(sub) -> None:
    p = sub.add_parser("simulate", help="agent-rounds per second of the finite-N simulators")
    p.add_argument("--n", default=DEFAULT_NS, help=f"comma-separated N list ({DEFAULT_NS})")
    p.add_argument(
        "--agents", type=int, default=4_000_000, help="agents per timed call, N * reps (4e6)"
    )
    p.add_argument("--repeats", type=int, default=3, help="timed calls per N (best is kept)")
    p.add_argument(
        "--json", type=Path, default=Path("results/bench_simulate.json"), help="output JSON path"
    )
    p.set_defaults(func=run_bench_simulate)


def _time(fn, repeats: int) -> float:
    fn(0)  # compile and warm up
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        fn(r + 1)
        best = min(best, time.perf_counter() - t0)
    return best


def run_bench_simulate(args) -> int:
    import jax

    from auctions.settings import first_price_game, make
    from auctions.simulate import simulate_auction
    from mfid.checks import check_count
    from mfid.cli.paths import check_output_file
    from mfid.cli.validate import parse_ns
    from mfid.finite import simulate
    from mfid.games.beach_bar import BeachBar
    from mfid.report.common import write_json
    from solvers.omd import solve_omd

    args.json = check_output_file(args.json, "--json")  # before any work

    ns = [check_count(n, "n") for n in parse_ns(args.n)]
    agents = check_count(args.agents, "agents")
    repeats = check_count(args.repeats, "repeats")

    bb = BeachBar.create(num_states=20, horizon=10)
    bb_pi = solve_omd(bb, None, tau=0.1, eta=0.3, iters=2000, tol=1e-10).policy
    preset = make("A1", key=jax.random.key(1000))
    a1 = first_price_game(preset.game)
    a1_pi = solve_omd(a1, {}, tau=1e-3, eta=10.0, iters=500).policy

    cases = {
        "generic_beach_bar": (
            bb.horizon,
            lambda n, reps, k: simulate(bb, bb_pi, None, n, reps, jax.random.key(k)).value,
        ),
        "auction_A1_first_price": (
            a1.horizon,
            lambda n, reps, k: simulate_auction(a1, a1_pi, {}, n, reps, jax.random.key(k)).revenue,
        ),
    }
    rows = []
    for name, (H, run) in cases.items():
        for n in ns:
            reps = max(1, agents // n)
            secs = _time(
                lambda k, n=n, reps=reps, run=run: run(n, reps, k).block_until_ready(), repeats
            )
            rate = n * reps * H / secs
            rows.append({"simulator": name, "n": n, "reps": reps, "horizon": H,
                         "seconds": secs, "agent_rounds_per_s": rate})  # fmt: skip
            print(
                f"{name:>24}  N={n:>8}  reps={reps:>5}  {secs:8.3f} s  {rate:10.3e} agent-rounds/s"
            )
    out = {
        "benchmark": "finite-N simulators, agent-rounds per second (compile excluded, best of "
        f"{repeats})",
        "command": f"python -m mfid bench simulate --n {','.join(map(str, ns))} "
        f"--agents {agents} --repeats {repeats}",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "load_average": list(os.getloadavg()),
            "x64": bool(jax.config.jax_enable_x64),
        },
        "rows": rows,
    }
    write_json(args.json, out)
    print(f"wrote {args.json}")
    return 0
