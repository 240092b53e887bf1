"""``mfid bench escape-room``: episodes per second of the batched Escape Room sampler and seconds
per MetaGrad iteration.

* **Sampler**: :func:`mfid.games.escape_room.sample_episodes` with independent linear-softmax
  agents, ``--episodes`` episodes per call, for every ``n`` of ``--ns`` (``m = n // 2``); the
  median of ``--repeats`` timed calls after compilation.
* **MetaGrad**: one training iteration of :class:`solvers.metagrad.MetaGrad` (inner step,
  validation batch, meta-gradient, two Adam updates) as the loop runs it, for one seed and for
  ``--seeds`` seeds batched with ``vmap``: the median over ``--repeats`` chunks of
  ``--chunk`` iterations, divided by the chunk length; with the training episodes per second.

Like the design commands it runs pinned to one CPU core unless ``mfid --all-cores`` is given.
Writes ``--json`` (default ``results/bench_escape_room.json``) with the machine description.

Example::

    mfid bench escape-room --ns 5,10,100 --json /tmp/bench_er.json
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["register_bench", "run_bench_escape_room"]


def register_bench(sub) -> None:
    p = sub.add_parser("escape-room", help="Escape Room sampler and MetaGrad iteration speed")
    p.add_argument("--ns", default="5,10,100", help="agent counts n (default %(default)s)")
    p.add_argument("--episodes", type=int, default=4096, help="episodes per sampler call")
    p.add_argument("--batch", type=int, default=16, help="MetaGrad episodes per iteration")
    p.add_argument("--seeds", type=int, default=8, help="seeds of the batched MetaGrad timing")
    p.add_argument("--chunk", type=int, default=50, help="iterations per timed chunk")
    p.add_argument("--repeats", type=int, default=5, help="timed calls (median kept)")
    p.add_argument("--json", type=Path, default=Path("results/bench_escape_room.json"))
    p.set_defaults(single_core=True, func=run_bench_escape_room)


def _median_seconds(fn, repeats: int) -> tuple[float, float]:
    import jax
    import numpy as np

    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times))


def run_bench_escape_room(args) -> int:
    import jax

    from mfid.checks import check_count
    from mfid.cli.flags import counts
    from mfid.cli.paths import check_output_file
    from mfid.games.escape_room import EscapeRoom, sample_episodes
    from mfid.report.common import stamp, write_json
    from solvers.finite_design import init_state, train_chunk
    from solvers.metagrad import MetaGrad
    from solvers.pg_agents import AgentConfig, agent_logits, init_agents

    args.json = check_output_file(args.json, "--json")  # before any work

    for name in ("episodes", "batch", "seeds", "chunk", "repeats"):
        check_count(getattr(args, name), f"--{name}")
    try:
        ns = [check_count(v, "--ns", minimum=2) for v in counts(args.ns, "--ns")]
    except ValueError:
        raise ValueError(f"--ns must be a comma list of integers >= 2, got {args.ns!r}") from None
    agents = AgentConfig(batch=args.batch)
    rows = []
    for n in ns:
        game = EscapeRoom.create(n=n, m=max(1, n // 2))
        theta = init_agents(game, agents, jax.random.key(0))
        key = jax.random.key(1)
        med, best = _median_seconds(
            lambda game=game, theta=theta, key=key: sample_episodes(
                game, agent_logits, theta, key, args.episodes).welfare,
            args.repeats,
        )  # fmt: skip
        row = {"n": n, "m": game.m, "sampler_episodes": args.episodes,
               "sampler_seconds": med, "sampler_episodes_per_second": args.episodes / med,
               "sampler_best_episodes_per_second": args.episodes / best}  # fmt: skip
        designer = MetaGrad.create(game)
        for seeds in sorted({1, args.seeds}):
            keys = jax.random.split(jax.random.key(2), seeds)
            state = jax.vmap(lambda k, game=game, d=designer: init_state(game, d, agents, k))(keys)
            med, best = _median_seconds(
                lambda game=game, d=designer, state=state: train_chunk(game, d, agents, state,
                                                                  args.chunk)[0].iteration,
                args.repeats,
            )  # fmt: skip
            per_it = med / args.chunk
            row[f"metagrad_seconds_per_iteration_{seeds}_seeds"] = per_it
            row[f"metagrad_training_episodes_per_second_{seeds}_seeds"] = (
                seeds * args.batch / per_it
            )
        rows.append(row)
        print(f"n={n:4d}: sampler {row['sampler_episodes_per_second']:,.0f} episodes/s; MetaGrad "
              f"{1e3 * row['metagrad_seconds_per_iteration_1_seeds']:.2f} ms/iteration (1 seed), "
              f"{1e3 * row[f'metagrad_seconds_per_iteration_{args.seeds}_seeds']:.2f} ms "
              f"({args.seeds} seeds)")  # fmt: skip
    command = (f"mfid {'--all-cores ' if args.all_cores else ''}bench escape-room --ns {args.ns} "
               f"--episodes {args.episodes} --batch {args.batch} --seeds {args.seeds} "
               f"--chunk {args.chunk} --repeats {args.repeats}")  # fmt: skip
    out = {"benchmark": "escape room sampler and MetaGrad iteration", "rows": rows,
           "batch": args.batch, "chunk": args.chunk, **stamp(command)}  # fmt: skip
    write_json(args.json, out)
    print(f"wrote {args.json}")
    return 0
