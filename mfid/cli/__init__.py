"""The ``mfid`` command line.

Every module in this package that defines ``register(subparsers)`` adds a top-level command;
a module of ``mfid/cli/bench/`` or ``mfid/cli/design/`` that defines
``register_<group>(subparsers)`` adds a target to the command group ``mfid bench <target>`` or
``mfid design <target>``.
Commands run in float64 unless ``--x32`` is given. Commands that set ``single_core`` (the design
commands and ``bench design``) pin the process to one CPU core unless ``--all-cores`` is given:
an OMD step is a chain of small kernels, and XLA's CPU runtime spreading such a chain over
several cores costs more in cross-core traffic than it gains (about 15-20% per AMID design step
on a 2-core machine). ``mfid --devices N`` splits the CPU into ``N`` host devices pinned to
``N`` cores (XLA's ``--xla_force_host_platform_device_count``): a design of several seeds then
runs its seeds on the devices side by side (:func:`solvers.design_seeds`).

Conventions every command follows (:mod:`mfid.cli.flags`): ``--help`` shows each option's
default; whole-number flags accept scientific notation (``--steps 1e5``); ``mfid --version``
prints the version. Building the parser imports no JAX (command modules import it in their run
functions), so ``mfid --help`` answers at once. Long runs draw a progress bar on a terminal and
print a progress line every 10 s to a log (:mod:`mfid.cli.progress`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import time

__all__ = ["main", "build_parser", "command_line"]


def _modules():
    """Every command module: ``mfid/cli/*.py`` and the group packages ``mfid/cli/design/``,
    ``mfid/cli/bench/`` (a module there defines ``register_<group>``)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in ("progress", "config", "flags", "paths",
                                                          "sweep_engine"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if info.ispkg:
            for sub in sorted(pkgutil.iter_modules(mod.__path__), key=lambda m: m.name):
                if not sub.name.startswith("_"):
                    yield importlib.import_module(f"{mod.__name__}.{sub.name}")
        else:
            yield mod


def build_parser() -> argparse.ArgumentParser:
    """The ``mfid`` parser with every command and group target (no JAX is imported)."""
    from mfid import __version__
    from mfid.cli.flags import HelpFormatter, apply_conventions

    parser = argparse.ArgumentParser(
        prog="mfid",
        description="Mean-field incentive and auction design on JAX.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mfid {__version__}")
    parser.add_argument("--x32", action="store_true", help="compute in float32 (default float64)")
    parser.add_argument(
        "--all-cores",
        action="store_true",
        help="let design commands use every CPU core (default: one core, which runs their "
        "small OMD kernels faster)",
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=1,
        help="split the CPU into this many host devices, one core each; design commands run "
        "their seeds on them side by side",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    groups = {
        "bench": sub.add_parser(
            "bench", help="benchmarks that write JSON and figures under results/"
        ),
        "design": sub.add_parser("design", help="optimise an incentive or mechanism and report it"),
    }
    group_subs = {
        name: p.add_subparsers(dest="target", required=True) for name, p in groups.items()
    }
    for mod in _modules():
        if hasattr(mod, "register"):
            mod.register(sub)
        for name, gsub in group_subs.items():
            if hasattr(mod, f"register_{name}"):
                getattr(mod, f"register_{name}")(gsub)
    for p in group_subs["design"].choices.values():  # run configs (mfid.cli.config)
        p.add_argument(
            "--config",
            metavar="TOML",
            default=None,
            help="read the run's flags from a TOML file (flags given here override it)",
        )
        p.set_defaults(run_config=True)
    return apply_conventions(parser)


def pin_to_one_core() -> int | None:
    """Restrict this process (and the threads it starts from now on, e.g. XLA's thread pool)
    to the first CPU core it may use; returns that core, or ``None`` where unsupported."""
    cores = pin_to_cores(1)
    return None if cores is None else cores[0]


def pin_to_cores(n: int) -> list[int] | None:
    """Restrict this process to the first ``n`` CPU cores it may use (``ValueError`` naming
    ``--devices`` when it may use fewer); returns them, or ``None`` where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if n > len(allowed):
        raise ValueError(f"--devices {n}: this process may use only {len(allowed)} CPU cores")
    os.sched_setaffinity(0, set(allowed[:n]))
    return allowed[:n]


def setup_devices(n: int, *, pin: bool) -> None:
    """Make XLA's CPU backend present ``n`` host devices and, with ``pin``, restrict the
    process to ``n`` cores (call before JAX starts its CPU client); ``ValueError`` naming
    ``--devices`` for a count below 1 or above the cores the process may use."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--devices must be a positive integer, got {n}")
    if pin:
        pin_to_cores(n)
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]  # fmt: skip
    if n > 1:
        flags.append(f"--xla_force_host_platform_device_count={n}")
    os.environ["XLA_FLAGS"] = " ".join(flags)


def main(argv=None) -> int:
    from mfid.cli import config

    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = build_parser()
    path = config.config_path(argv)
    if path is not None and config.chosen_parsers(parser, argv)[-1].get_default("run_config"):
        try:
            config.apply_config(parser, argv, path)
        except ValueError as err:
            print(f"mfid: error: {err}", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    args.argv = list(argv)
    try:  # before JAX starts its CPU client and thread pool
        pin = (args.devices > 1 or getattr(args, "single_core", False)) and not args.all_cores
        setup_devices(args.devices, pin=pin)
    except ValueError as err:
        print(f"mfid: error: {err}", file=sys.stderr)
        return 2
    import jax

    jax.config.update("jax_enable_x64", not args.x32)
    try:
        start = time.time()
        rc = int(args.func(args) or 0)
        out = config.report_dir(args) if getattr(args, "run_config", False) else None
        if config.written_since(out, start):  # also a flagged report (exit code 1)
            config.write_config(out, args)  # after the report: its writer replaces the directory
        return rc
    except ValueError as err:
        print(f"mfid: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mfid: interrupted (checkpointed runs resume from their --checkpoint-dir)",
              file=sys.stderr)  # fmt: skip
        return 130


def command_line(args) -> str:
    """The command that regenerates a run: ``mfid`` and the arguments it was given."""
    import shlex

    return "mfid " + " ".join(shlex.quote(a) for a in getattr(args, "argv", sys.argv[1:]))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
