"""CLI behaviour and plumbing: ``mfid design beach-bar`` writes its report, figures and the
command that regenerates them; design commands pin the process to one core unless --all-cores
is given."""

import json
import os
import shlex
import subprocess
import sys

import pytest

from mfid.cli import build_parser, main

_linux_only = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only"
)


def test_design_beach_bar_writes_report_figures_and_the_regenerating_command(tmp_path):
    from matplotlib.image import imread

    out = tmp_path / "bb"
    argv = ["design", "beach-bar", "--steps", "3", "--num-states", "10", "--horizon", "5"]
    argv += ["--iters", "150", "--val-iters", "400", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    stamp = {"command", "versions", "git_commit", "machine", "date"}
    results = {"game", "objective", "settings", "objective_before", "objective_after",
               "exploitability_before", "exploitability_after", "status_before", "status_after",
               "objective_lower_bound_uniform_crowd", "status", "evaluations", "seconds",
               "prices", "theta", "trace", "figures"}  # fmt: skip
    assert stamp | results <= set(report)
    assert report["game"]["num_states"] == 10 and report["game"]["horizon"] == 5
    assert report["settings"] == {"method": "amid", "steps": 3, "tau": 0.1, "eta": 0.3,
                                  "iters": 150, "val_iters": 400, "learning_rate": 0.2,
                                  "warm_start": True, "seed": 0}  # fmt: skip
    assert set(report["trace"]) == {"objective", "exploitability", "evaluations"}
    assert all(len(v) == 3 for v in report["trace"].values())
    assert report["objective_after"] < report["objective_before"]
    assert report["exploitability_after"] < 0.02
    assert len(report["prices"]) == 10 and all(0.0 <= p <= 1.0 for p in report["prices"])
    # the recorded command parses back to the arguments of this run (the progress bar aside)
    words = shlex.split(report["command"])
    assert words[:3] == ["mfid", "design", "beach-bar"]
    parser = build_parser()
    again, want = vars(parser.parse_args(words[1:])), vars(parser.parse_args(argv))
    assert again.pop("no_progress") is False and want.pop("no_progress") is True
    assert again == want
    # the figures it names are the files it wrote, each a non-blank RGB(A) image
    assert report["figures"] == ["flow_before_after.png", "prices.png", "objective.png"]
    assert {"report.json", *report["figures"]} <= {p.name for p in out.iterdir()}
    for name in report["figures"]:
        img = imread(out / name)
        assert img.ndim == 3 and img.shape[2] in (3, 4) and img.shape[0] > 100 and img.std() > 0
    assert main(["design", "beach-bar", "--steps", "0", "--out", str(out)]) == 2


def test_design_commands_ask_for_one_core_and_others_do_not():
    parser = build_parser()
    assert parser.parse_args(["design", "auction"]).single_core is True
    assert parser.parse_args(["design", "beach-bar"]).single_core is True
    assert parser.parse_args(["bench", "design"]).single_core is True
    assert not getattr(parser.parse_args(["bench", "omd"]), "single_core", False)
    assert parser.parse_args(["--all-cores", "design", "auction"]).all_cores is True


@_linux_only
def test_devices_split_the_cpu_into_host_devices_on_as_many_cores():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs a process allowed on 2 CPU cores")
    code = (
        "import os; from mfid.cli import setup_devices; before = sorted(os.sched_getaffinity(0)); "
        "setup_devices(2, pin=True); import jax; "
        "assert jax.local_device_count() == 2, jax.devices(); "
        "assert sorted(os.sched_getaffinity(0)) == before[:2], os.sched_getaffinity(0); "
        "print(os.environ['XLA_FLAGS'])"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_backend_optimization_level=0 "
           "--xla_force_host_platform_device_count=5"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["--xla_backend_optimization_level=0",
                                  "--xla_force_host_platform_device_count=2"]  # fmt: skip


def test_devices_is_checked(capsys):
    from mfid.cli import main

    assert main(["--devices", "0", "bench", "design"]) == 2
    assert "--devices must be a positive integer" in capsys.readouterr().err
    assert main(["--devices", "100000", "bench", "design"]) == 2
    assert "--devices 100000" in capsys.readouterr().err


@_linux_only
def test_pin_to_one_core_restricts_the_process_to_its_first_allowed_core():
    code = (
        "import os; from mfid.cli import pin_to_one_core; before = os.sched_getaffinity(0); "
        "core = pin_to_one_core(); after = os.sched_getaffinity(0); "
        "assert after == {min(before)} == {core}, (before, after, core); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
