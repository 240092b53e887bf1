"""Run configs: any ``mfid design …`` run given as a TOML file whose keys are its flags.

``mfid design auction --config run.toml`` reads ``run.toml`` (stdlib :mod:`tomllib`): a flat
table whose keys are the command's long flags, with dashes or underscores (``val-iters`` or
``val_iters``), and whose values are TOML scalars of the flag's type (a store-true flag takes
``true``/``false``; a comma-separated flag such as ``--method`` also takes an array of
strings). The file only sets *defaults*: a flag given on the command line overrides it. The
global flags ``x32``, ``all-cores`` and ``devices`` may appear too. An unknown key, or a value of the wrong
type or outside the flag's choices, is a ``ValueError`` naming the key and the file.

After a design command has written its report, the CLI writes the full resolved configuration
(every flag of the run, defaults included) into the report directory as ``config.toml``
(:func:`write_config`), with the package versions and the git commit as comments (the report's
stamp holds them too), so::

    mfid design auction --config results/A1/config.toml

regenerates ``results/A1`` from its directory alone.

Example ``run.toml``::

    setting = "A2"
    method = ["amid", "anneal"]
    steps = 60
    val-iters = 800
    warm-start = false
"""

from __future__ import annotations

import argparse
import math
import tomllib
from pathlib import Path
from typing import Any

from mfid.cli.flags import count

__all__ = ["apply_config", "chosen_parsers", "config_path", "load_config", "report_dir",
           "resolved_config", "to_toml", "write_config", "written_since"]  # fmt: skip

# Namespace entries that are not flags of a run (the command's plumbing or its display).
_NOT_CONFIG = {"func", "single_core", "run_config", "config", "command", "target", "no_progress",
               "argv"}  # fmt: skip


def config_path(argv: list[str]) -> str | None:
    """The value of ``--config PATH`` / ``--config=PATH`` in ``argv`` (the last one), or
    ``None``."""
    found = None
    for i, tok in enumerate(argv):
        if tok == "--":
            break
        if tok == "--config" and i + 1 < len(argv):
            found = argv[i + 1]
        elif tok.startswith("--config="):
            found = tok.split("=", 1)[1]
    return found


def read_toml(path, what: str) -> dict[str, Any]:
    """The TOML table in ``path``; ``ValueError`` starting with ``what`` and naming the file when
    it cannot be read or is not valid TOML."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as err:
        raise ValueError(f"{what}: cannot read {path}: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{what}: {path} is not valid TOML: {err}") from None


def load_config(path) -> dict[str, Any]:
    """The table of a TOML run config (``ValueError`` naming the file when it cannot be read,
    is not valid TOML, or holds a nested table)."""
    path = Path(path)
    table = read_toml(path, "--config")
    for key, value in table.items():
        if isinstance(value, dict):
            raise ValueError(f"--config: key {key!r} in {path} is a table; a run config is a "
                             "flat table of flag = value")  # fmt: skip
    return table


def chosen_parsers(parser: argparse.ArgumentParser, argv: list[str]):
    """The chain of parsers that ``argv`` selects: the root, then each chosen subcommand
    (``mfid design auction`` -> ``[root, design, auction]``). A subcommand is the first token
    of ``argv`` that names one of the current parser's subcommands."""
    chain = [parser]
    rest = list(argv)
    while True:
        subs = [a for a in chain[-1]._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return chain
        for i, tok in enumerate(rest):
            if tok in subs[0].choices:
                chain.append(subs[0].choices[tok])
                rest = rest[i + 1 :]
                break
        else:
            return chain


def _flag_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every optional flag of ``parser`` by its destination name (underscores)."""
    out = {}
    for a in parser._actions:
        if not a.option_strings or a.dest in (argparse.SUPPRESS, "help", "config"):
            continue
        out[a.dest] = a
        for opt in a.option_strings:
            if opt.startswith("--"):
                out[opt[2:].replace("-", "_")] = a
    return out


def _convert(action: argparse.Action, key: str, value: Any, path) -> Any:
    """``value`` from the file as the flag's value, or a ``ValueError`` naming ``key``."""
    where = f"key {key!r} in {path}"
    flag = next((o for o in action.option_strings if o.startswith("--")), action.dest)
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ValueError(f"{where}: {flag} is a switch; expected true or false, got {value!r}")
        return value
    if isinstance(value, bool):
        raise ValueError(f"{where}: {flag} takes a value, not {value!r}")
    if isinstance(value, list):
        if action.nargs in (None, "?") and action.type is None:
            if not all(isinstance(v, (str, int, float)) for v in value):
                raise ValueError(f"{where}: expected an array of scalars, got {value!r}")
            value = ",".join(str(v) for v in value)  # a comma-separated flag
        elif action.nargs in (None, "?"):
            return value  # a flag whose type parses a list (e.g. "0.1,0.3") given as an array
        else:
            return [_convert_one(action, where, flag, v) for v in value]
    return _convert_one(action, where, flag, value)


def _convert_one(action, where, flag, value):
    typ = action.type
    try:
        if isinstance(value, str) and callable(typ):
            value = typ(value)
        elif typ is count:  # a whole-number flag: 60 or 1e5, not 2.5
            value = count(value)
        elif typ is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            value = int(value)
        elif typ is float:
            value = float(value)
        elif typ is not None and isinstance(value, (int, float)) and typ in (Path, str):
            raise ValueError
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        kind = "a whole number" if typ is count else getattr(typ, "__name__", typ)
        raise ValueError(f"{where}: {flag} expects {kind}, got "
                         f"{value!r}") from None  # fmt: skip
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{where}: {flag} must be one of {sorted(action.choices)}, got {value!r}")
    return value


def apply_config(parser: argparse.ArgumentParser, argv: list[str], path) -> None:
    """Set the defaults of the parsers that ``argv`` selects from the run config at ``path``
    (a later parse of ``argv`` then lets explicit flags override the file). A required flag
    that the file supplies is no longer required on the command line."""
    table = load_config(path)
    chain = chosen_parsers(parser, argv)
    leaf = chain[-1]
    scopes = [(p, _flag_actions(p)) for p in reversed(chain)]  # the subcommand's flags first
    for key, value in table.items():
        name = key.replace("-", "_")
        for p, actions in scopes:
            if name in actions:
                action = actions[name]
                p.set_defaults(**{action.dest: _convert(action, key, value, path)})
                action.required = False
                break
        else:
            cmd = leaf.prog
            raise ValueError(f"--config: unknown key {key!r} in {path} (not a flag of '{cmd}')")


def resolved_config(args: argparse.Namespace) -> dict[str, Any]:
    """The run's every flag (defaults included), without the command's plumbing; ``None``
    values (an unset optional flag) are left out, since TOML has no null and leaving them out
    reproduces them."""
    out = {}
    for name, value in sorted(vars(args).items()):
        if name in _NOT_CONFIG or value is None or callable(value):
            continue
        out[name] = str(value) if isinstance(value, Path) else value
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        body = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                .replace("\t", "\\t").replace("\r", "\\r"))  # fmt: skip
        return f'"{body}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Path):
        return _toml_value(str(value))
    if hasattr(value, "item"):  # numpy scalar
        return _toml_value(value.item())
    raise ValueError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def to_toml(table: dict[str, Any], header: list[str] | None = None) -> str:
    """A flat table of scalars, strings and arrays as TOML text (``header``: comment lines).
    Nested tables are written as ``[name]`` sections, one level deep."""
    lines = [f"# {h}" for h in header or []]
    flat = {k: v for k, v in table.items() if not isinstance(v, dict)}
    for k, v in flat.items():
        lines.append(f"{_key(k)} = {_toml_value(v)}")
    for k, v in table.items():
        if isinstance(v, dict):
            lines += ["", f"[{_key(k)}]"]
            for kk, vv in v.items():
                if isinstance(vv, dict):
                    raise ValueError(f"cannot write a table nested twice ({k}.{kk}) to TOML")
                lines.append(f"{_key(kk)} = {_toml_value(vv)}")
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    bare = k and all(c.isalnum() or c in "-_" for c in k) and k.isascii()
    return k if bare else _toml_value(k)


def write_config(out, args: argparse.Namespace, command: str | None = None) -> Path:
    """Write ``out/config.toml``: the resolved configuration of the run ``args``, headed by the
    command it belongs to, the package versions and the git commit (comments). Returns the
    path."""
    from mfid.report.common import stamp, write_text

    out = Path(out)
    st = stamp(command or "")
    verb = " ".join(x for x in (getattr(args, "command", None), getattr(args, "target", None)) if x)
    versions = ", ".join(f"{k} {v}" for k, v in st["versions"].items() if v)
    header = [
        f"resolved config of `mfid {verb}`; regenerate with: mfid {verb} --config {out / 'config.toml'}",
        f"versions: {versions}",
        f"git commit: {st['git_commit']}; date: {st['date']}",
    ]
    table = resolved_config(args)
    if "out" in vars(args):
        table["out"] = str(out)  # the directory it was written to, also where --out was unset
    path = out / "config.toml"
    write_text(path, to_toml(dict(sorted(table.items())), header))
    return path


def report_dir(args: argparse.Namespace) -> Path | None:
    """The report directory of a finished design run: ``--out``, else the documented default of
    a command whose ``--out`` defaults to nothing (``mfid design auction``:
    ``mfid-out/<setting>``). A command that assigns the directory it chose to ``args.out``
    needs no entry here."""
    out = getattr(args, "out", None)
    if (
        out is None
        and getattr(args, "target", None) == "auction"
        and getattr(args, "setting", None)
    ):
        out = Path("mfid-out") / args.setting
    return None if out is None else Path(out)


def written_since(out: Path | None, start: float) -> bool:
    """Whether ``out`` is a directory that was (re)written at or after ``start`` (a time from
    :func:`time.time`): the run wrote its report there, even when it exits flagged."""
    try:
        return out is not None and out.is_dir() and out.stat().st_mtime >= start - 1.0
    except OSError:
        return False
