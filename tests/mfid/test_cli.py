"""CLI plumbing: design commands pin the process to one core unless --all-cores is given."""

import os
import subprocess
import sys

import pytest

from mfid.cli import build_parser

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only"
)


def test_design_commands_ask_for_one_core_and_others_do_not():
    parser = build_parser()
    assert parser.parse_args(["design", "auction"]).single_core is True
    assert parser.parse_args(["design", "beach-bar"]).single_core is True
    assert parser.parse_args(["bench", "design"]).single_core is True
    assert not getattr(parser.parse_args(["bench", "omd"]), "single_core", False)
    assert parser.parse_args(["--all-cores", "design", "auction"]).all_cores is True


def test_pin_to_one_core_restricts_the_process_to_its_first_allowed_core():
    code = (
        "import os; from mfid.cli import pin_to_one_core; before = os.sched_getaffinity(0); "
        "core = pin_to_one_core(); after = os.sched_getaffinity(0); "
        "assert after == {min(before)} == {core}, (before, after, core); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
