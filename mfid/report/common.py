"""What every report and benchmark writer shares: the machine description, the reproducibility
stamp, strict JSON, atomic writes and matplotlib figures that touch no global backend.

Example::

    from mfid.report.common import stamp, write_json
    write_json("/tmp/x.json", {"value": 1.0, **stamp("mfid bench omd")})
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

__all__ = [
    "atomic_dir",
    "clean_json",
    "machine",
    "new_figure",
    "stamp",
    "versions",
    "write_json",
    "write_text",
]

_PACKAGES = ("mfid", "jax", "jaxlib", "flax", "optax", "numpy", "scipy", "matplotlib")


def machine() -> dict:
    """Platform, CPU count, cores this process may use, and JAX's device."""
    import jax

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    dev = jax.devices()[0]
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cores_used": cores,
        "device": f"{dev.platform} ({getattr(dev, 'device_kind', dev.platform)})",
        "devices": jax.local_device_count(),
    }


def machine_line() -> str:
    """One line: ``cpu (1 device), 2 CPU cores, 1 used``."""
    m = machine()
    return (f"{m['device']} x{m['devices']}, {m['cpu_count']} CPU cores, "
            f"{m['cores_used']} used")  # fmt: skip


def versions() -> dict:
    """Installed versions of mfid and its numerical dependencies."""
    out = {}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def stamp(command: str) -> dict:
    """The reproducibility stamp every JSON and report carries."""
    return {
        "command": command,
        "versions": versions(),
        "git_commit": _git_commit(),
        "machine": machine(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def clean_json(x):
    """``x`` with NaN/inf replaced by ``None`` and numpy scalars/arrays by Python values."""
    import numpy as np

    if isinstance(x, dict):
        return {str(k): clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return clean_json(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_text(path, text: str) -> None:
    """Write ``text`` atomically (temporary file in the same directory, then ``os.replace``)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, obj) -> None:
    """Strict JSON (no NaN/Infinity), sorted keys, written atomically."""
    write_text(path, json.dumps(clean_json(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


class atomic_dir:
    """Context manager: write a report into a fresh temporary directory beside ``out`` and, on
    success, replace ``out`` with it (``out`` is either fully the new report or untouched)."""

    def __init__(self, out):
        self.out = Path(out)

    def __enter__(self) -> Path:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}."))
        os.chmod(self.tmp, 0o777 & ~_umask())
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.out.exists():
            old = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.old."))
            os.replace(self.out, old / "x")
            os.replace(self.tmp, self.out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.out)


def new_figure(**kwargs):
    """A matplotlib ``Figure`` drawn with the Agg canvas (no pyplot, no global backend)."""
    from matplotlib.figure import Figure

    kwargs.setdefault("layout", "constrained")
    return Figure(**kwargs)
