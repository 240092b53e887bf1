"""Run configs (mfid.cli.config): a TOML file sets a design command's flags, explicit flags
override it, unknown keys and wrong types name the key and the file, the resolved config written
next to a report reads back to the same arguments and regenerates the same report."""

import json
import math
import tomllib

import pytest

from mfid.cli import build_parser, main
from mfid.cli.config import apply_config, resolved_config, to_toml


def _parse(argv, toml_text=None, tmp_path=None):
    parser = build_parser()
    if toml_text is not None:
        path = tmp_path / "run.toml"
        path.write_text(toml_text)
        apply_config(parser, argv, path)
    return parser.parse_args(argv)


def test_file_sets_flags_and_command_line_overrides(tmp_path):
    text = 'setting = "A2"\nsteps = 7\nval-iters = 33\nwarm_start = true\nmethod = ["amid", "anneal"]\n'
    argv = ["design", "auction", "--config", "x", "--steps", "9"]
    args = _parse(argv, text, tmp_path)
    assert args.setting == "A2"
    assert args.steps == 9  # the command line wins
    assert args.val_iters == 33 and args.warm_start is True
    assert args.method == "amid,anneal"  # an array for a comma-separated flag
    plain = _parse(["design", "auction"])
    assert plain.setting == "A1" and plain.steps != 7 and plain.warm_start is False


def test_global_flags_and_floats_from_ints(tmp_path):
    args = _parse(["design", "auction"], "x32 = true\nlr = 1\n", tmp_path)
    assert args.x32 is True and args.lr == 1.0 and isinstance(args.lr, float)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("bogus = 1\n", "'bogus'"),
        ("steps = 1.5\n", "'steps'"),
        ("steps = true\n", "'steps'"),
        ("warm-start = 1\n", "'warm-start'"),
        ('precision = "float16"\n', "'precision'"),
        ("[table]\nx = 1\n", "'table'"),
        ("steps = \n", "not valid TOML"),
    ],
)
def test_bad_config_names_key_and_file(tmp_path, text, needle):
    with pytest.raises(ValueError, match=needle) as err:
        _parse(["design", "auction"], text, tmp_path)
    assert "run.toml" in str(err.value)


def test_unknown_key_through_main_is_an_error(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text("not_a_flag = 3\n")
    assert main(["design", "auction", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not_a_flag" in err and str(path) in err


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        apply_config(build_parser(), ["design", "auction"], tmp_path / "absent.toml")


def test_toml_writer_round_trips():
    table = {"a": 1, "b": 2.5e-7, "c": "x \"y\" \\ z", "d": True, "e": [1.0, 2.0], "f": "A1",
             "g": math.inf, "h": -3, "i": 1e300}  # fmt: skip
    assert tomllib.loads(to_toml(table, ["a comment"])) == table


def test_resolved_config_reparses_to_the_same_arguments(tmp_path):
    args = _parse(["design", "auction", "--setting", "A3", "--steps", "5", "--warm-start"])
    path = tmp_path / "config.toml"
    path.write_text(to_toml(resolved_config(args)))
    again = _parse(["design", "auction"], path.read_text(), tmp_path)
    assert vars(again) == vars(args)


def test_design_run_writes_config_that_regenerates_it(tmp_path):
    out = tmp_path / "bb"
    argv = ["design", "beach-bar", "--steps", "2", "--iters", "10", "--val-iters", "10",
            "--num-states", "6", "--horizon", "3", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    config = tomllib.loads((out / "config.toml").read_text())
    assert config["steps"] == 2 and config["num_states"] == 6 and config["out"] == str(out)
    assert "jax" in (out / "config.toml").read_text().splitlines()[1]  # versions in the header
    first = json.loads((out / "report.json").read_text())
    assert main(["design", "beach-bar", "--config", str(out / "config.toml")]) == 0
    second = json.loads((out / "report.json").read_text())
    for key in ("objective_before", "objective_after", "prices", "settings"):
        assert first[key] == second[key]
    assert tomllib.loads((out / "config.toml").read_text()) == config
