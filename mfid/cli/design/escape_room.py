"""``mfid design escape-room``: incentive designers of Escape Room ER(n, m).

Three studies (``--study``):

* ``train`` (default): every method of ``--method`` (a comma list of ``metagrad``, ``dual-rl-d``
  (one run per discrete level set of ``--levels``), ``dual-rl-c``, ``none``, ``hand``) trains
  ``--seeds`` seeds at once (``vmap``) for ``--episodes`` episodes per seed with the same
  policy-gradient agents (:mod:`solvers.pg_agents`) and the one loop of
  :func:`solvers.finite_design.train`. Reported: the final *greedy* designer objective (welfare
  minus incentives paid, agents ``argmax``, designer at its mode) per seed, its mean and std, the
  best-response gain of every agent against that greedy play
  (:func:`solvers.finite_design.deviation_gains`: 0 = a Nash equilibrium of the incentivised
  game), the curves and the final behaviour. Writes ``report.md``, ``report.json`` and the
  figures ``objective.png``, ``incentives.png``, ``behaviour.png``.
* ``scaling``: ER(n, ceil(rho n)) for ``--ns`` x ``--rhos`` with the same methods: per-capita
  greedy objective against the per-capita optimum ``10(1 - rho) - 2 rho`` and the episodes until
  the mean over seeds first reaches ``--reach`` of the optimum. ``report.json``, ``report.md``,
  ``scaling.png``. With ``--checkpoint-dir`` every (n, rho, method) cell is checkpointed and its
  finished row stored, so an interrupted study resumes where it stopped.
* ``mean-field``: the mean-field room of :mod:`mfid.games.escape_room_mf` (door open iff the lever
  fraction is at least ``rho``, smooth door of width ``--kappa``) solved as an entropy-regularised
  MF-NE by OMD (to exploitability ``--tol``, reported) under the hand-coded incentive and under
  an incentive that makes pulling as good as leaving, from the uniform policy and from a
  pull-heavy start; then ER(n, ceil(rho n)) played by n agents sampling that policy for ``--mf-ns``
  (``--mf-reps`` replicates): the per-capita gap to the mean-field value with standard errors,
  the deviation gain of one agent switching to the mean-field best response, and the chance that
  an agent is pivotal. ``report.json``, ``report.md``, ``mean_field.png``.

A report directory is written to a temporary directory and renamed, so it is either complete or
untouched; the output (and checkpoint) paths are checked for writability before any work. The
exit status is 1 when a designer objective is not finite (a ``nonfinite`` status) or an
equilibrium misses its tolerance.

Example::

    mfid design escape-room --n 5 --m 2 --method metagrad,hand,none --episodes 20000 \\
        --seeds 8 --out results/escape_room/er_5_2
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

__all__ = [
    "METHODS",
    "make_designers",
    "mean_field_study",
    "register_design",
    "run_design_escape_room",
    "scaling_study",
    "train_methods",
]

METHODS = ("metagrad", "dual-rl-d", "dual-rl-c", "none", "hand")
LEVEL_SETS = ("small", "medium", "large")
EQUILIBRIUM_TOL = 1e-2  # a best-response gain below a hundredth of the move cost counts as none


def register_design(sub) -> None:
    p = sub.add_parser(
        "escape-room",
        help="incentive design in Escape Room ER(n, m): MetaGrad, dual-RL, hand-coded, none",
        description=(
            "Train incentive designers of ER(n, m) against independent policy-gradient agents "
            "(--study train), scale ER(n, rho n) with n (--study scaling), or compare the "
            "mean-field room with finite rooms (--study mean-field)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--study", choices=("train", "scaling", "mean-field"), default="train",
                   help="which study")  # fmt: skip
    p.add_argument("--n", type=int, default=5, help="agents n")
    p.add_argument("--m", type=int, default=2, help="door threshold m (1 <= m < n)")
    p.add_argument("--method", default="metagrad,dual-rl-d,dual-rl-c,none,hand",
                   help=f"comma list of {', '.join(METHODS)}")  # fmt: skip
    p.add_argument("--episodes", type=int, default=128000, help="training episodes per seed")
    p.add_argument("--seeds", type=int, default=8, help="seeds (run batched with vmap)")
    p.add_argument("--seed", type=int, default=0, help="base PRNG seed")
    p.add_argument("--eval-every", type=int, default=100,
                   help="iterations between greedy evaluations and checkpoints")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/escape_room/er_5_2"),
                   help="report directory")  # fmt: skip
    p.add_argument("--checkpoint-dir", type=Path, default=None,
                   help="checkpoint/resume directory (one subdirectory per method; scaling: "
                   "one per (n, rho) cell, with the finished rows)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("agents (independent linear-softmax REINFORCE learners)")
    g.add_argument("--batch", type=int, default=16, help="episodes per iteration")
    g.add_argument("--agent-lr", type=float, default=0.03, help="policy-gradient step alpha")
    g.add_argument("--entropy", type=float, default=0.3, help="initial entropy bonus beta")
    g.add_argument("--entropy-final", type=float, default=0.01,
                   help="entropy bonus after the decay")  # fmt: skip
    g.add_argument("--entropy-decay", type=int, default=64000,
                   help="training episodes of the linear entropy decay (0: constant)")  # fmt: skip
    g.add_argument("--discount", type=float, default=0.99, help="agents' discount gamma")
    g.add_argument("--init-scale", type=float, default=0.1, help="std of the initial weights")
    g = p.add_argument_group("MetaGrad")
    g.add_argument("--mg-lr", type=float, default=3e-3, help="Adam step of the meta-gradient")
    g.add_argument("--mg-cost-lr", type=float, default=3e-4,
                   help="Adam step of the separate incentive-cost optimiser")  # fmt: skip
    g.add_argument("--mg-cost-weight", type=float, default=None,
                   help="penalty weight instead of the separate cost optimiser")  # fmt: skip
    g.add_argument("--mg-hidden", default="64,32", help="incentive MLP widths")
    g.add_argument("--mg-init-bias", type=float, default=-2.0,
                   help="initial output bias (incentive 2 sigmoid(bias))")  # fmt: skip
    g = p.add_argument_group("dual-RL")
    g.add_argument("--levels", default="small,medium,large",
                   help="discrete level sets: small {0,1.1}, medium {0,1.1,2}, "
                   "large {0,0.5,1,1.5,2}")  # fmt: skip
    g.add_argument("--drl-lr", type=float, default=1e-3, help="designer's Adam step")
    g.add_argument("--drl-entropy", type=float, default=0.01, help="designer's entropy bonus")
    g = p.add_argument_group("hand-coded incentive")
    g.add_argument("--bonus", type=float, default=1.1,
                   help="1 + eps paid for the lever when at least m pull")  # fmt: skip
    g = p.add_argument_group("scaling study")
    g.add_argument("--ns", default="5,10,20,50,100", help="agent counts n")
    g.add_argument("--rhos", default="0.4,0.5", help="threshold fractions rho (m = ceil(rho n))")
    g.add_argument("--reach", type=float, default=0.9,
                   help="fraction of the optimum that counts as reached")  # fmt: skip
    g.add_argument("--large-n", type=int, default=0,
                   help="rooms with n >= this get --large-episodes and --large-seeds (0: none)")  # fmt: skip
    g.add_argument("--large-episodes", type=int, default=None,
                   help="training episodes per seed for n >= --large-n (default --episodes)")  # fmt: skip
    g.add_argument("--large-seeds", type=int, default=None,
                   help="seeds for n >= --large-n (default --seeds)")  # fmt: skip
    g = p.add_argument_group("mean-field study")
    g.add_argument("--tau", type=float, default=1.0, help="entropy temperature of the MF-NE")
    g.add_argument("--omd-eta", type=float, default=0.2, help="OMD step size")
    g.add_argument("--omd-iters", type=int, default=20000, help="OMD step budget")
    g.add_argument("--tol", type=float, default=1e-9, help="exploitability tolerance")
    g.add_argument("--kappa", type=float, default=0.02, help="width of the smooth door")
    g.add_argument("--eps", type=float, default=0.1, help="eps of the hand-coded 1 + eps")
    g.add_argument("--mf-ns", default="5,10,20,50,100,1000,10000", help="finite rooms n")
    g.add_argument("--mf-reps", type=int, default=1000, help="replicates per n")
    p.set_defaults(single_core=True, func=run_design_escape_room)


# -- helpers ----------------------------------------------------------------------------------
def _command(args) -> str:
    """The command line that regenerates the report (options that differ from the defaults)."""
    parser = argparse.ArgumentParser()
    register_design(parser.add_subparsers())
    defaults = vars(parser.parse_args(["escape-room"]))
    parts = ["mfid design escape-room"]
    if args.study == "train":
        parts.append(f"--n {args.n} --m {args.m}")
    for name, value in vars(args).items():
        skip = ("func", "no_progress", "out", "single_core", "checkpoint_dir", "n", "m")
        if name in defaults and name not in skip and value != defaults[name]:
            flag = f"--{name.replace('_', '-')}"
            parts.append(flag if value is True else f"{flag} {value}")
    parts.append(f"--out {args.out}")
    return " ".join(parts)


def _list(text: str, cast, flag: str) -> list:
    try:
        out = [cast(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{flag} must be a comma list, got {text!r}") from None
    if not out:
        raise ValueError(f"{flag} must not be empty")
    return out


def parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in str(text).split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"--method must be a comma list of {', '.join(METHODS)}, got {text!r}")
    return list(dict.fromkeys(methods))


def _check_writable(path: Path, flag: str) -> None:
    """Raise ``ValueError`` (naming ``flag``) unless a directory can be created at ``path``."""
    path = Path(path)
    parent = path if path.exists() else path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".write-test."):
            pass
    except OSError as err:
        raise ValueError(f"{flag} {path} is not writable ({err.strerror})") from None
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} exists and is not a directory")


def _check_args(args) -> None:
    from mfid.checks import check_count, check_positive

    for name in ("episodes", "seeds", "eval_every", "batch", "omd_iters", "mf_reps"):
        check_count(getattr(args, name), f"--{name.replace('_', '-')}")
    check_count(args.entropy_decay, "--entropy-decay", minimum=0)
    check_count(args.large_n, "--large-n", minimum=0)
    for name in ("large_episodes", "large_seeds"):
        if getattr(args, name) is not None:
            check_count(getattr(args, name), f"--{name.replace('_', '-')}")
    for name in ("agent_lr", "mg_lr", "drl_lr", "tau", "omd_eta", "kappa"):
        check_positive(getattr(args, name), f"--{name.replace('_', '-')}")
    for name in ("entropy", "entropy_final", "init_scale", "mg_cost_lr", "drl_entropy", "tol",
                 "eps"):  # fmt: skip
        check_positive(getattr(args, name), f"--{name.replace('_', '-')}", allow_zero=True)
    if args.mg_cost_weight is not None:
        check_positive(args.mg_cost_weight, "--mg-cost-weight", allow_zero=True)
    if not 0.0 <= args.discount <= 1.0:
        raise ValueError(f"--discount must lie in [0, 1], got {args.discount}")
    if not 0.0 < args.bonus <= 2.0:
        raise ValueError(f"--bonus must lie in (0, 2], got {args.bonus}")
    if not 0.0 < args.reach <= 1.0:
        raise ValueError(f"--reach must lie in (0, 1], got {args.reach}")


def make_designers(game, args, methods) -> list:
    """``[(name, designer)]`` for the methods (``dual-rl-d``: one per level set)."""
    from solvers.dual_rl import DISCRETE_LEVELS, DualRL
    from solvers.finite_design import HandIncentive, NoIncentive
    from solvers.metagrad import MetaGrad

    hidden = tuple(_list(args.mg_hidden, int, "--mg-hidden"))
    out = []
    for method in methods:
        if method == "metagrad":
            out.append(("metagrad", MetaGrad.create(
                game, hidden=hidden, learning_rate=args.mg_lr,
                cost_learning_rate=args.mg_cost_lr, cost_weight=args.mg_cost_weight,
                init_bias=args.mg_init_bias)))  # fmt: skip
        elif method == "dual-rl-d":
            for name in _list(args.levels, str, "--levels"):
                if name not in DISCRETE_LEVELS:
                    raise ValueError(f"--levels must be a comma list of {LEVEL_SETS}, got {name!r}")
                d = DualRL.create(game, levels=DISCRETE_LEVELS[name], learning_rate=args.drl_lr,
                                  entropy=args.drl_entropy)  # fmt: skip
                out.append((d.name, d))
        elif method == "dual-rl-c":
            d = DualRL.create(game, levels=None, learning_rate=args.drl_lr,
                              entropy=args.drl_entropy)  # fmt: skip
            out.append((d.name, d))
        elif method == "none":
            out.append(("none", NoIncentive()))
        elif method == "hand":
            out.append(("hand", HandIncentive(threshold=game.m, bonus=args.bonus)))
    return out


def _agents(args):
    from solvers.pg_agents import AgentConfig

    return AgentConfig(learning_rate=args.agent_lr, entropy=args.entropy, discount=args.discount,
                       batch=args.batch, init_scale=args.init_scale,
                       entropy_final=args.entropy_final,
                       entropy_decay=args.entropy_decay // args.batch)  # fmt: skip


def _iterations(args, episodes=None) -> int:
    """Iterations so that ``(iterations + 1) * batch`` covers ``episodes`` (default
    ``--episodes``), rounded up to a multiple of ``--eval-every`` (every chunk has the same
    length: one compilation)."""
    episodes = args.episodes if episodes is None else episodes
    needed = max(1, math.ceil(episodes / args.batch) - 1)
    return math.ceil(needed / args.eval_every) * args.eval_every


def train_methods(game, designers, agents, *, iterations, seeds, key, eval_every,
                  checkpoint_dir=None, progress=None, label=""):  # fmt: skip
    """Train every ``(name, designer)`` with the same agents, seeds and budget; returns
    ``{name: summary dict}`` (see :func:`_summary`)."""
    from solvers.finite_design import train

    out = {}
    for name, designer in designers:
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / name
        bar = None if progress is None else progress(iterations, f"{label}{name}")

        def callback(step, metrics, bar=bar):
            if bar is not None:
                bar.update(step - bar.n, obj=metrics["objective"], paid=metrics["paid"])

        res = train(game, designer, agents, iterations=iterations, key=key, seeds=seeds,
                    eval_every=eval_every, callback=callback, checkpoint_dir=ckpt,
                    keep_state=True)  # fmt: skip
        if bar is not None:
            bar.close()
        out[name] = _summary(game, designer, res)
    return out


def _summary(game, designer, res) -> dict:
    """Numbers of one method: final greedy objective per seed, best-response gains, curves,
    incentives paid per action over training, final behaviour."""
    import numpy as np

    from solvers.finite_design import deviation_gains, seed_state

    obj = np.asarray(res.final_objective, float)
    gains = np.stack([np.asarray(deviation_gains(game, designer, seed_state(res.state, k)))
                      for k in range(res.seeds)])  # fmt: skip
    behaviour = []
    for k in range(res.seeds):
        acts, alive = res.final_actions[k], res.final_alive[k]
        steps = int(alive.sum())
        first = acts[0]
        behaviour.append({
            "steps": steps,
            "lever": [int(i) for i in np.flatnonzero(first == 0)],
            "exit": [int(i) for i in np.flatnonzero(acts[steps - 1] == 2)],
            "actions": acts[:steps].tolist(),
            "paid": float(res.final_incentive[k].sum()),
        })  # fmt: skip
    curve = res.eval_objective
    return {
        "mean": float(obj.mean()),
        "std": float(obj.std(ddof=1)) if obj.size > 1 else 0.0,
        "stderr": float(obj.std(ddof=1) / np.sqrt(obj.size)) if obj.size > 1 else 0.0,
        "per_seed": obj.tolist(),
        "status": res.status,
        "seconds": res.seconds,
        "episodes": res.episodes,
        "iterations": res.iterations,
        "resumed_from": res.resumed_from,
        "deviation_gain": gains.max(1).tolist(),
        "equilibrium_seeds": int(np.sum(gains.max(1) <= EQUILIBRIUM_TOL)),
        "paid_final": res.eval_paid[-1].mean(0).tolist(),
        "behaviour": behaviour,
        "curve": {
            "episodes": res.eval_episodes.tolist(),
            "mean": curve.mean(1).tolist(),
            "std": curve.std(1).tolist(),
            "per_seed": curve.T.tolist(),
            "paid_by_action": res.eval_paid.mean(1).tolist(),
        },
    }


def _first_reach(curve: dict, target: float):
    for e, v in zip(curve["episodes"], curve["mean"], strict=True):
        if v >= target:
            return int(e)
    return None


# -- the studies -------------------------------------------------------------------------------
def _progress_factory(args):
    from mfid.cli.progress import Progress

    quiet = True if args.no_progress else None
    return lambda total, desc: Progress(total, desc, disable=quiet)


def _run_train(args, methods) -> int:
    import jax

    from mfid.games.escape_room import EscapeRoom
    from mfid.report.common import stamp
    from mfid.report.escape_room import write_train_report

    game = EscapeRoom.create(n=args.n, m=args.m)
    designers = make_designers(game, args, methods)
    agents = _agents(args)
    iterations = _iterations(args)
    t0 = time.perf_counter()
    results = train_methods(game, designers, agents, iterations=iterations, seeds=args.seeds,
                            key=jax.random.key(args.seed), eval_every=args.eval_every,
                            checkpoint_dir=args.checkpoint_dir,
                            progress=_progress_factory(args))  # fmt: skip
    report = {
        "n": game.n,
        "m": game.m,
        "optimum": game.optimum,
        "max_welfare": game.max_welfare,
        "episodes": (iterations + 1) * args.batch,
        "iterations": iterations,
        "seeds": args.seeds,
        "methods": results,
        "settings": _settings(args),
        "seconds": time.perf_counter() - t0,
        **stamp(_command(args)),
    }
    write_train_report(args.out, report)
    for name, r in results.items():
        print(f"{name:12s} {r['mean']:8.3f} +- {r['std']:.3f}  (equilibrium seeds "
              f"{r['equilibrium_seeds']}/{args.seeds}, {r['seconds']:.0f}s, {r['status']})")  # fmt: skip
    print(f"optimum {game.optimum:g}; {report['episodes']} episodes per seed; wrote {args.out}")
    return 0 if all(r["status"] == "ok" for r in results.values()) else 1


def _settings(args) -> dict:
    keys = ("batch", "agent_lr", "entropy", "entropy_final", "entropy_decay", "discount",
            "init_scale", "mg_lr", "mg_cost_lr",
            "mg_cost_weight", "mg_hidden", "mg_init_bias", "levels", "drl_lr", "drl_entropy",
            "bonus", "eval_every", "seed")  # fmt: skip
    return {k: getattr(args, k) for k in keys}


def _scaling_row(game, rho, name, summary) -> dict:
    """One (n, rho, method) cell of the scaling study, per capita (``episodes_to_reach`` is
    filled in by :func:`scaling_study` from the curve, so a stored cell serves any ``--reach``)."""
    n = game.n
    return {
        "n": n, "m": game.m, "rho": rho, "method": name, "optimum": game.optimum,
        "per_capita_optimum": game.optimum / n,
        "per_capita_mean": summary["mean"] / n, "per_capita_std": summary["std"] / n,
        "fraction_of_optimum": summary["mean"] / game.optimum,
        "equilibrium_seeds": summary["equilibrium_seeds"], "status": summary["status"],
        "seconds": summary["seconds"], "resumed_from": summary["resumed_from"],
        "per_seed": summary["per_seed"], "paid_final": summary["paid_final"],
        "curve": {k: summary["curve"][k] for k in ("episodes", "mean", "per_seed")},
    }  # fmt: skip


def _cell_config(args, game, rho, name, iterations, seeds) -> dict:
    """What a stored scaling cell must match to be reused (everything that changes its
    numbers)."""
    return {"n": game.n, "m": game.m, "rho": rho, "method": name, "iterations": iterations,
            "seeds": seeds, "settings": _settings(args)}  # fmt: skip


def _budget(args, n) -> tuple[int, int]:
    """``(iterations, seeds)`` of the rooms with ``n`` agents (``--large-*`` from ``--large-n``)."""
    if args.large_n and n >= args.large_n:
        episodes = args.episodes if args.large_episodes is None else args.large_episodes
        seeds = args.seeds if args.large_seeds is None else args.large_seeds
        return _iterations(args, episodes), seeds
    return _iterations(args), args.seeds


def scaling_study(args, methods, ns, rhos, progress=None, checkpoint_dir=None) -> dict:
    """ER(n, ceil(rho n)) for every ``n`` and ``rho``: per-capita greedy objective of every
    method against the per-capita optimum, and the episodes until the mean reaches ``--reach``
    of the optimum (``episodes_to_reach``; per seed: ``episodes_to_reach_per_seed``). Rooms
    with ``n >= --large-n`` train ``--large-seeds`` seeds for
    ``--large-episodes`` episodes (each row states its ``episodes`` and ``seeds``).

    With ``checkpoint_dir`` every (n, rho, method) cell keeps its training checkpoint in
    ``checkpoint_dir/rho<rho>_n<n>/<method>/`` and, once finished, its row in
    ``checkpoint_dir/rho<rho>_n<n>/<method>.json`` (written atomically, with the cell's
    configuration); a later call with the same settings reuses the finished rows and resumes the
    unfinished cell from its last checkpoint, so an interrupted study loses at most one chunk."""
    import json

    import jax

    from mfid.games.escape_room import EscapeRoom
    from mfid.games.escape_room_mf import threshold
    from mfid.report.common import clean_json, write_json

    agents = _agents(args)
    rows = []
    for rho in rhos:
        for n in ns:
            iterations, seeds = _budget(args, n)
            m = threshold(n, rho)
            game = EscapeRoom.create(n=n, m=m)
            cell = None if checkpoint_dir is None else Path(checkpoint_dir) / f"rho{rho}_n{n}"
            for name, designer in make_designers(game, args, methods):
                config = clean_json(_cell_config(args, game, rho, name, iterations, seeds))
                stored = None if cell is None else cell / f"{name}.json"
                row = None
                if stored is not None and stored.exists():
                    try:
                        saved = json.loads(stored.read_text())
                    except (OSError, ValueError):
                        saved = {}
                    if saved.get("config") == config:
                        row = saved["row"]
                if row is None:
                    res = train_methods(game, [(name, designer)], agents, iterations=iterations,
                                        seeds=seeds, key=jax.random.key(args.seed),
                                        eval_every=args.eval_every, checkpoint_dir=cell,
                                        progress=progress, label=f"n={n} rho={rho} ")  # fmt: skip
                    row = clean_json(_scaling_row(game, rho, name, res[name]))
                    if stored is not None:
                        write_json(stored, {"config": config, "row": row})
                row = dict(row, episodes=(iterations + 1) * args.batch, seeds=seeds)
                target = args.reach * game.optimum
                row["episodes_to_reach"] = _first_reach(row["curve"], target)
                row["episodes_to_reach_per_seed"] = [
                    _first_reach({"episodes": row["curve"]["episodes"], "mean": c}, target)
                    for c in row["curve"]["per_seed"]
                ]
                rows.append(row)
    return {"rows": rows, "episodes": (_iterations(args) + 1) * args.batch, "seeds": args.seeds,
            "large_n": args.large_n, "reach": args.reach}  # fmt: skip


def _run_scaling(args, methods) -> int:
    from mfid.report.common import stamp
    from mfid.report.escape_room import write_scaling_report

    ns = _list(args.ns, int, "--ns")
    rhos = _list(args.rhos, float, "--rhos")
    for rho in rhos:
        if not 0.0 < rho < 1.0:
            raise ValueError(f"--rhos must lie in (0, 1), got {rho}")
    t0 = time.perf_counter()
    data = scaling_study(
        args, methods, ns, rhos, progress=_progress_factory(args),
        checkpoint_dir=args.checkpoint_dir,
    )  # fmt: skip
    data.update(settings=_settings(args), seconds=time.perf_counter() - t0,
                **stamp(_command(args)))  # fmt: skip
    write_scaling_report(args.out, data)
    for r in data["rows"]:
        print(f"n={r['n']:4d} rho={r['rho']} {r['method']:10s} per-capita {r['per_capita_mean']:.3f}"
              f" / {r['per_capita_optimum']:.3f}  reach {r['episodes_to_reach']}")  # fmt: skip
    return 0 if all(r["status"] == "ok" for r in data["rows"]) else 1


def mean_field_study(args, progress=None) -> dict:
    """The mean-field room against finite rooms (module docstring, ``--study mean-field``)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from mfid.approximation import summarize
    from mfid.games.escape_room import EscapeRoom
    from mfid.games.escape_room_mf import (
        EscapeRoomMeanField,
        hand_incentive,
        pivotal_probability,
        sample_finite_room,
        threshold,
    )
    from mfid.values import best_response, exploitability
    from solvers import solve_omd

    rhos = _list(args.rhos, float, "--rhos")
    ns = sorted(set(_list(args.mf_ns, int, "--mf-ns")))
    incentives = {
        "hand": np.asarray(hand_incentive(args.eps)),
        "pull-as-exit": np.asarray([[10.0 + 1.0 + args.eps, 0.0, 0.0], [0.0, 0.0, 0.0]]),
    }
    out = {"rows": [], "equilibria": [], "failures": []}
    key = jax.random.key(args.seed)
    for rho in rhos:
        mf = EscapeRoomMeanField.create(rho=rho, kappa=args.kappa)
        for inc_name, theta in incentives.items():
            theta = jnp.asarray(theta)
            starts = {"uniform": None,
                      "pull": jnp.zeros((mf.horizon, 4, 3)).at[:, :3, 0].set(3.0)}  # fmt: skip
            for start, zeta0 in starts.items():
                res = solve_omd(mf.pmfg, theta, tau=args.tau, eta=args.omd_eta,
                                iters=args.omd_iters, tol=args.tol, zeta0=zeta0)  # fmt: skip
                g = float(mf.objective(theta, res.flow))
                br = best_response(mf.pmfg, res.policy, theta, 0.0)
                eps_mf = float(exploitability(mf.pmfg, res.policy, theta, 0.0))
                p_open = [float(mf.door_probability(L)) for L in res.flow]
                f0 = float(res.policy[0, 1, 0])
                eq = {"rho": rho, "incentive": inc_name, "start": start,
                      "status": res.status_name, "exploitability": float(res.exploitability),
                      "iterations": int(res.iterations), "per_capita_objective": g,
                      "per_capita_optimum": 10 * (1 - rho) - 2 * rho,
                      "door_open_probability": p_open, "lever_probability_round0": f0,
                      "policy_round0_start": np.asarray(res.policy[0, 1]).tolist(),
                      "unregularised_exploitability": eps_mf}  # fmt: skip
                out["equilibria"].append(eq)
                if res.status_name != "successful":
                    out["failures"].append(f"rho={rho} {inc_name} {start}: {res.status_name}")
                values, gains, opened, pivotal = [], [], [], []
                for n in ns:
                    m = threshold(n, rho)
                    if m >= n:
                        continue
                    key, sub = jax.random.split(key)
                    smp = sample_finite_room(EscapeRoom.create(n=n, m=m), res.policy, theta, sub,
                                             args.mf_reps, deviator=br)  # fmt: skip
                    values.append(np.asarray(smp.objective))
                    gains.append(np.asarray(smp.deviation_gain))
                    opened.append(float(np.mean(smp.opened)))
                    pivotal.append(pivotal_probability(n, m, f0))
                kept = [n for n in ns if threshold(n, rho) < n]
                study = summarize(kept, values, g, gains=gains, mean_field_deviation=eps_mf,
                                  setting=f"ER rho={rho} {inc_name} {start}")  # fmt: skip
                js = study.to_json()
                for row, op, pv in zip(js["rows"], opened, pivotal, strict=True):
                    row.update(door_opened=op, pivotal_probability=pv,
                               pivotal_probability_at_threshold=pivotal_probability(
                                   row["n"], threshold(row["n"], rho), rho))  # fmt: skip
                out["rows"].append({"rho": rho, "incentive": inc_name, "start": start,
                                    "mean_field": g, "study": js})  # fmt: skip
                if progress is not None:
                    progress(f"rho={rho} {inc_name} {start}: g={g:.3f} ({res.status_name})")
    return out


def _run_mean_field(args) -> int:
    from mfid.report.common import stamp
    from mfid.report.escape_room import write_mean_field_report

    t0 = time.perf_counter()
    data = mean_field_study(args, progress=None if args.no_progress else print)
    data.update(settings={k: getattr(args, k) for k in ("tau", "omd_eta", "omd_iters", "tol",
                                                         "kappa", "eps", "mf_ns", "mf_reps",
                                                         "rhos", "seed")},
                seconds=time.perf_counter() - t0, **stamp(_command(args)))  # fmt: skip
    write_mean_field_report(args.out, data)
    for f in data["failures"]:
        print(f"not converged: {f}")
    print(f"wrote {args.out}")
    return 1 if data["failures"] else 0


def run_design_escape_room(args) -> int:
    _check_args(args)
    _check_writable(args.out, "--out")
    if args.checkpoint_dir is not None:
        _check_writable(args.checkpoint_dir, "--checkpoint-dir")
    if args.study == "mean-field":
        return _run_mean_field(args)
    methods = parse_methods(args.method)
    if args.study == "scaling":
        return _run_scaling(args, methods)
    from mfid.games.escape_room import EscapeRoom

    try:
        EscapeRoom.create(n=args.n, m=args.m)  # --n / --m checked before any work
    except ValueError as err:
        raise ValueError(f"--{err}") from None
    return _run_train(args, methods)
