"""Output paths checked before any work (a bad ``--out`` fails in a second, not after the run).

Example::

    from mfid.cli.paths import check_output_dir, check_output_file
    check_output_dir("/tmp/report", "--out")
    check_output_file("/tmp/x.json", "--json")
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["check_output_dir", "check_output_file"]


def _probe_dir(d: Path, flag: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".mfid-write-test.")
    except OSError as err:
        raise ValueError(f"{flag} {d}: not writable ({err.strerror})") from None
    os.close(fd)
    os.unlink(tmp)


def check_output_dir(path, flag: str) -> Path:
    """``path`` as a ``Path`` after checking that it is (or can be created as) a writable
    directory; nothing is created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} exists and is not a directory")
    parent = path if path.exists() else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {path}: {parent} is not a directory")
    _probe_dir(parent, flag)
    return path


def check_output_file(path, flag: str) -> Path:
    """``path`` as a ``Path`` after checking that its directory exists and is writable and
    that it is not a directory."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory")
    if not path.parent.exists():
        raise ValueError(f"{flag} {path}: directory {path.parent} does not exist")
    _probe_dir(path.parent, flag)
    return path
