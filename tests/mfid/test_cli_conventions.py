"""CLI conventions: ``mfid --version``, a parser that imports no JAX, defaults in every
``--help``, whole-number flags that accept ``1e5`` (command line and run configs), ``mfid list``
and the progress heartbeat off a terminal."""

import argparse
import importlib
import io
import subprocess
import sys
import time

import pytest

import mfid
from mfid.cli import build_parser, main
from mfid.cli.config import apply_config
from mfid.cli.flags import HelpFormatter, _parsers, count, counts
from mfid.cli.listing import GAMES, METHODS, _method_commands
from mfid.cli.progress import Progress


def test_version_flag_prints_the_package_version():
    out = subprocess.run([sys.executable, "-m", "mfid", "--version"], capture_output=True,
                         text=True, timeout=60, check=True)  # fmt: skip
    assert out.stdout.strip() == f"mfid {mfid.__version__}"
    assert mfid.__version__ and mfid.__version__ != "0+unknown"


def test_building_the_parser_imports_no_jax():
    code = (
        "import sys; import mfid.cli; p = mfid.cli.build_parser(); p.format_help(); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('jax', 'jaxlib', 'flax', 'optax', 'numpy', 'scipy', 'matplotlib')); print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_every_parser_shows_defaults_and_parses_whole_numbers_with_count():
    parser = build_parser()
    parsers = list(_parsers(parser))
    assert len(parsers) > 15  # root, groups and every command
    for p in parsers:
        assert p.formatter_class is HelpFormatter, p.prog
        p.format_help()  # every help renders
        for action in p._actions:
            assert action.type is not int, f"{p.prog} {action.option_strings}: type=int"
    by_prog = {p.prog: p for p in parsers}
    auction = by_prog["mfid design auction"].format_help()
    assert "(default: 400)" in auction  # --iters had no default in its help text
    assert "(default 0.001)" in auction and "(default: 0.001)" not in auction  # not twice
    solve = by_prog["mfid solve"].format_help()
    assert "(0.5)" in solve and "(default: 0.5)" not in solve


def test_count_accepts_integral_scientific_notation_and_rejects_the_rest():
    assert count("100") == 100 and count("1e5") == 100_000 and count("2.5e3") == 2500
    assert count("100_000") == 100_000 and count(" 7 ") == 7 and count(-3) == -3
    assert count("12345678901234567") == 12345678901234567  # no float rounding
    for bad in ("2.5", "1e-3", "abc", "", "nan", "inf", True):
        with pytest.raises(argparse.ArgumentTypeError):
            count(bad)
    assert counts("1e2, 1e3", "--n") == [100, 1000]
    with pytest.raises(ValueError, match="--n"):
        counts("10,2.5", "--n")


def test_a_count_flag_accepts_1e5_and_rejects_2_5_naming_the_flag(capsys):
    parser = build_parser()
    args = parser.parse_args(["design", "auction", "--steps", "1e5", "--num-values", "2e1"])
    assert args.steps == 100_000 and isinstance(args.steps, int) and args.num_values == 20
    assert parser.parse_args(["validate", "--setting", "a1", "--reps", "1e3"]).reps == 1000
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["design", "auction", "--steps", "2.5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --steps" in err and "'2.5'" in err and "whole number" in err


def test_run_configs_take_whole_numbers_as_count_flags(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("steps = 1e5\nseeds = 3\n")
    parser = build_parser()
    argv = ["design", "auction", "--config", str(path)]
    apply_config(parser, argv, path)
    args = parser.parse_args(argv)
    assert args.steps == 100_000 and args.seeds == 3
    path.write_text("steps = 2.5\n")
    with pytest.raises(ValueError, match=r"--steps expects a whole number, got 2\.5"):
        apply_config(build_parser(), argv, path)


def test_list_settings_games_and_methods(capsys):
    assert main(["list", "settings"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    for k in range(1, 11):
        assert f"A{k}" in names
    assert "beach-bar" in names and "alpha_max=5" in out  # A8's description
    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    for command, methods in _method_commands().items():
        assert f"mfid {command} --method:" in out
        for m in methods:
            assert METHODS.get(m), f"{m} ({command}) has no description"
    assert main(["list", "games"]) == 0
    out = capsys.readouterr().out
    for name, (path, _, _) in GAMES.items():
        assert name in out
        mod, _, attr = path.rpartition(".")
        assert hasattr(importlib.import_module(mod), attr), path


def test_progress_heartbeat_off_a_terminal():
    buf = io.StringIO()  # not a TTY
    with Progress(4, "demo", stream=buf, heartbeat=0.05) as bar:
        time.sleep(0.2)  # one long step: the heartbeat still prints
        bar.update(4, x=1)
    lines = buf.getvalue().splitlines()
    assert len(lines) >= 2 and "\r" not in buf.getvalue()
    assert lines[0].startswith("demo") and "0/4" in lines[0]
    assert "4/4" in lines[-1] and "x=1" in lines[-1]
    time.sleep(0.15)
    assert buf.getvalue().splitlines() == lines  # nothing after close
    quick = io.StringIO()
    with Progress(4, "quick", stream=quick) as bar:  # shorter than one heartbeat: silent
        bar.update(4)
    assert quick.getvalue() == ""
    silent = io.StringIO()
    with Progress(4, "off", stream=silent, disable=True, heartbeat=0.01):
        time.sleep(0.05)
    assert silent.getvalue() == ""
    with pytest.raises(ValueError, match="heartbeat"):
        Progress(4, heartbeat=0)
