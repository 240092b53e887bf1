"""mfid design auction killed (SIGKILL at a seeded random point of its second method's design
steps) and resumed from its --checkpoint-dir ends bitwise equal to an uninterrupted run; the
finished method is not redone; a checkpoint of other settings or a corrupt one is refused with one
line naming the file. (Resuming inside a method's steps is checked step by step in
tests/solvers/test_design.py; here it crosses processes.)

The subprocesses share a persistent compilation cache, so only the first one compiles."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mfid.cli import main

FLAGS = ["--all-cores", "design", "auction", "--setting", "A1", "--method", "amid,zeroth-adam",
         "--seeds", "2", "--steps", "60", "--num-values", "6", "--num-bids", "5", "--width", "8",
         "--iters", "10", "--val-iters", "4000", "--tau", "0.05", "--eta", "1.0",
         "--checkpoint-every", "1", "--no-progress"]  # fmt: skip
TIMING = {"seconds", "compile_seconds", "seconds_per_step", "seconds_per_method", "date",
          "command", "machine", "machine_line", "git_commit", "versions"}  # fmt: skip


def _env(cache):
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}  # fmt: skip


def _kill_after(cmd, env, path, delay, limit=400.0):
    """Start ``cmd``; once ``path`` exists, wait ``delay`` seconds and SIGKILL it."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.monotonic() + limit
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"run ended before {path} appeared: {proc.stderr.read().decode()}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"{path} did not appear within {limit} s")
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    return proc.returncode


def _strip(x):
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in TIMING}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def _bits(path):
    with np.load(path) as data:
        return {k: data[k].tobytes() + str(data[k].dtype).encode() for k in data.files}


def test_killed_and_resumed_equals_an_uninterrupted_run(tmp_path, capsys):
    rng = random.Random(16)
    env = _env(tmp_path / "jax-cache")
    ck = tmp_path / "ck"
    # the uninterrupted run (it also fills the compilation cache the others read)
    ref = subprocess.run([sys.executable, "-m", "mfid", *FLAGS, "--out", str(tmp_path / "ref")],
                         env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    cmd = [sys.executable, "-m", "mfid", *FLAGS, "--checkpoint-dir", str(ck), "--out",
           str(tmp_path / "run")]  # fmt: skip
    # killed during 0-ADAM's design steps (after AMID finished), then resumed to the end
    rc = _kill_after(cmd, env, ck / "zeroth-adam" / "design_checkpoint.npz", rng.uniform(0, 0.2))
    assert rc == -signal.SIGKILL and not (tmp_path / "run").exists()
    assert not (ck / "zeroth-adam" / "runs.npz").exists()  # killed before it finished
    finished = ck / "amid" / "runs.npz"
    stamp = finished.stat().st_mtime_ns
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr
    assert done.returncode == ref.returncode, (done.stderr, ref.stderr)
    assert finished.stat().st_mtime_ns == stamp  # the finished method was not redone
    got = json.loads((tmp_path / "run" / "report.json").read_text())
    want = json.loads((tmp_path / "ref" / "report.json").read_text())
    assert [r["revenue"] for r in got["methods"]["amid"]["per_seed"]] == [
        r["revenue"] for r in want["methods"]["amid"]["per_seed"]
    ]
    assert _strip(got) == _strip(want)
    for m in ("amid", "zeroth-adam"):
        params = f"mechanisms/{m}/params.npz"
        assert _bits(tmp_path / "run" / params) == _bits(tmp_path / "ref" / params)

    # the same checkpoint directory with other settings, or corrupt, is refused before any work
    for flag, value in (("--eta", "0.9"), ("--lr", "0.003"), ("--width", "6")):
        argv = [*FLAGS, "--checkpoint-dir", str(ck), "--out", str(tmp_path / "x")]
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(finished) in err and "other settings" in err
    finished.write_bytes(b"PK\x03\x04 truncated")
    assert main([*FLAGS, "--checkpoint-dir", str(ck), "--out",
                 str(tmp_path / "x")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(finished) in err and "cannot be read" in err
    assert not (tmp_path / "x").exists()


def test_checkpoint_dir_inside_out_and_unwritable_are_refused(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    for ck, out in ((f, tmp_path / "out"), (tmp_path / "out" / "ck", tmp_path / "out")):
        assert main([*FLAGS, "--checkpoint-dir", str(ck), "--out", str(out)]) == 2
        assert "--checkpoint-dir" in capsys.readouterr().err
    assert main([*FLAGS, "--checkpoint-every", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--checkpoint-every" in capsys.readouterr().err
