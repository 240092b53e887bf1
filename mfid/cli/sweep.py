"""``mfid sweep``: a grid (or list) of revenue-design configurations, resumable, on one machine
or on a Ray cluster (see :mod:`mfid.cli.sweep_engine` for the spec and what is written).

The spec comes from a TOML file, from flags, or from both (flags override the file's
``settings``/``methods``/``seeds``, ``--set`` adds to its ``[fixed]`` table and ``--grid`` to its
common ``[grid]``). Every configuration's seeds run as one batched program; configurations run
one after another in this process (``--backend local``, default) or as one Ray task each
(``--backend ray``; ``pip install "mfid[ray]"``; ``--address auto`` joins a running cluster,
otherwise a local one with ``--num-cpus`` CPUs is started; ``--cpus-per-run`` /
``--gpus-per-run`` are each task's request). Run again, a sweep skips every configuration whose
results are in ``--out`` already. The sweep does not pin itself to one core (Ray's workers would
inherit the pin).

Examples::

    mfid sweep results/tuning/A1.toml --out results/tuning/A1
    mfid sweep --settings A1,A2 --methods amid,anneal --seeds 2 --set steps=30 \\
        --set num-values=20 --set num-bids=20 --grid lr=1e-3,3e-3 --out /tmp/sweep
    mfid sweep results/tuning/A1.toml --backend ray --address auto --gpus-per-run 0.25
"""

from __future__ import annotations

import shlex
import sys
import tomllib
from pathlib import Path

__all__ = ["register", "run_sweep_command"]


def register(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a grid of auction-design configurations (local or on Ray), resumable",
        description="Settings x methods x seeds x hyperparameters of the revenue-design study; "
        "writes OUT/sweep.json, OUT/sweep.md, OUT/sweep.png and every run's report.",
    )
    p.add_argument("spec", nargs="?", type=Path, default=None,
                   help="TOML sweep spec (see mfid.cli.sweep_engine); flags below add to or override it")  # fmt: skip
    p.add_argument("--settings", default=None, help="comma-separated settings (e.g. A1,A2)")
    p.add_argument("--methods", default=None,
                   help="comma-separated subset of amid, zeroth-adam, zeroth-sgd, anneal")  # fmt: skip
    p.add_argument("--seeds", type=int, default=None, help="seeds per configuration (batched)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a fixed keyword of every configuration (repeatable), e.g. steps=30")  # fmt: skip
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a swept keyword (repeatable), e.g. lr=1e-4,1e-3,1e-2")  # fmt: skip
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default results/sweeps/<spec name>)")  # fmt: skip
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: this process, one configuration after another (default); ray: one "
                   "Ray task per configuration")  # fmt: skip
    p.add_argument("--address", default=None,
                   help="Ray: address of a running cluster ('auto' finds it); default: start a "
                   "local one")  # fmt: skip
    p.add_argument("--num-cpus", type=int, default=None,
                   help="Ray: CPUs of the local cluster it starts (default: all)")  # fmt: skip
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray: CPUs per configuration")
    p.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray: GPUs per configuration")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_sweep_command)


def _value(text: str, flag: str):
    """A flag value as TOML reads it (``30`` int, ``1e-3`` float, ``true``, ``"x"``), a bare
    word as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        try:
            return float(text)  # e.g. ".5", "5." (numbers TOML does not read)
        except ValueError:
            pass
        if any(c in text for c in "\"'[]{}="):
            raise ValueError(f"{flag}: cannot read the value {text!r}") from None
        return text


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def build_spec(args) -> dict:
    """The sweep spec of the command line: the file (if any), then the flags."""
    from mfid.cli.sweep_engine import load_spec

    spec = load_spec(args.spec) if args.spec is not None else {"fixed": {}, "grid": {"*": {}}}
    if args.settings is not None:
        spec["settings"] = args.settings
    if args.methods is not None:
        spec["methods"] = args.methods
    if args.seeds is not None:
        spec["seeds"] = args.seeds
    fixed = dict(spec.get("fixed", {}))
    for k, v in _pairs(args.set, "--set").items():
        fixed[k] = _value(v, f"--set {k}")
    spec["fixed"] = fixed
    grid = {k: dict(v) for k, v in spec.get("grid", {}).items()}
    common = grid.setdefault("*", {})
    for k, v in _pairs(args.grid, "--grid").items():
        common[k] = [_value(x.strip(), f"--grid {k}") for x in v.split(",") if x.strip()]
    spec["grid"] = grid
    return spec


def run_sweep_command(args) -> int:
    from mfid.cli.progress import Progress
    from mfid.cli.sweep_engine import check_spec, expand, run_sweep

    spec = check_spec(build_spec(args), where=str(args.spec) if args.spec else "the flags")
    out = args.out
    if out is None:
        out = Path("results/sweeps") / (args.spec.stem if args.spec is not None else "sweep")
    total = len(expand(spec, x64=not args.x32))
    command = "mfid " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with Progress(total, f"sweep[{args.backend}]", disable=args.no_progress or None) as bar:

        def on_result(row, skipped):
            bar.update(setting=row["setting"], method=row["method"], revenue=row["revenue"],
                       **({"skipped": 1} if skipped else {"s": row["seconds"]}))  # fmt: skip

        table = run_sweep(spec, out, backend=args.backend, address=args.address,
                          num_cpus=args.num_cpus, cpus_per_run=args.cpus_per_run,
                          gpus_per_run=args.gpus_per_run, command=command,
                          on_result=on_result)  # fmt: skip
    for x in table["tuning"]:
        print(f"{x['setting']} {x['label']:7s} best {x['best_revenue']:.4f} at "
              f"{', '.join(f'{k}={v}' for k, v in x['best'].items()) or '-'} "
              f"(spread {100 * x['relative_spread']:.1f}% over {x['grid_points']} points)")  # fmt: skip
    print(f"{table['finished']}/{table['configurations']} configurations "
          f"({table['skipped_as_done']} skipped as done); table: {out}/sweep.md")  # fmt: skip
    return 0
