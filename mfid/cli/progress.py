"""A small dependency-free progress bar writing to stderr.

On a terminal it draws ``desc  42% |#####     | 21/50 [00:03<00:04] key=value ...`` on one
line, redrawn in place with ``\\r``. When stderr is not a terminal (a log file, a batch job) it
prints that line as a heartbeat every ``heartbeat`` seconds (10 by default) from a background
thread, also while one long step (a compilation) runs, and a last line when it closes; a run
shorter than one heartbeat prints nothing, so tests stay clean. ``disable=True`` silences it.

Example::

    from mfid.cli.progress import Progress
    with Progress(total=50, desc="design") as bar:
        for step in range(50):
            bar.update(objective=0.123, expl=1e-4)
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # typing.Self is Python >= 3.11; annotations are not evaluated at runtime
    from typing import Self

__all__ = ["Progress"]


def _fmt_time(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _fmt_value(v: Any) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if isinstance(v, int) or (getattr(v, "dtype", None) is not None and v.dtype.kind in "iub"):
        return str(int(x))
    return f"{x:.4g}"


class Progress:
    """Progress bar over ``total`` units (``total=None``: a counter without a bar).

    ``update(n=1, **postfix)`` advances by ``n`` and shows the ``postfix`` values; redraws are
    limited to one every ``min_interval`` seconds (the last one is always drawn on ``close``).
    ``disable=None`` (default): the bar on a TTY, otherwise a heartbeat line every ``heartbeat``
    seconds (``heartbeat=None``: silent off a TTY); ``disable=False``: the bar on any stream;
    ``disable=True``: silent.
    """

    def __init__(
        self,
        total: int | None = None,
        desc: str = "",
        *,
        disable: bool | None = None,
        stream: TextIO | None = None,
        width: int = 24,
        min_interval: float = 0.1,
        heartbeat: float | None = 10.0,
    ):
        if total is not None and (not isinstance(total, int) or total < 0):
            raise ValueError(f"total must be a non-negative integer or None, got {total!r}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width!r}")
        self.total = total
        self.desc = desc
        if heartbeat is not None and not heartbeat > 0:
            raise ValueError(f"heartbeat must be > 0 seconds or None, got {heartbeat!r}")
        self.stream = sys.stderr if stream is None else stream
        self.heartbeat = None
        if disable is None:
            isatty = getattr(self.stream, "isatty", None)
            disable = not (callable(isatty) and isatty())
            if disable and heartbeat is not None:
                self.heartbeat = float(heartbeat)
        self.disable = bool(disable)
        self.width = int(width)
        self.min_interval = float(min_interval)
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self._start = time.monotonic()
        self._last_draw = -float("inf")
        self._last_len = 0
        self._closed = False
        self._beats = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if self.heartbeat is not None:
            threading.Thread(target=_beat, args=(weakref.ref(self), self._stop, self.heartbeat),
                             name="mfid-progress-heartbeat", daemon=True).start()  # fmt: skip

    def __enter__(self) -> Self:
        self._draw(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Advance by ``n`` units and replace the shown ``key=value`` pairs by ``postfix``."""
        self.n += n
        if postfix:
            self.postfix = postfix
        self._draw()

    def set_postfix(self, **postfix: Any) -> None:
        self.postfix = postfix
        self._draw()

    def render(self) -> str:
        """The current line (without ``\\r``)."""
        elapsed = time.monotonic() - self._start
        parts = [self.desc] if self.desc else []
        if self.total:
            frac = min(self.n / self.total, 1.0)
            filled = round(frac * self.width)
            rate = self.n / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.n) / rate if rate > 0 else 0.0
            parts.append(
                f"{100 * frac:3.0f}% |{'#' * filled}{' ' * (self.width - filled)}| "
                f"{self.n}/{self.total} [{_fmt_time(elapsed)}<{_fmt_time(eta)}]"
            )
        else:
            parts.append(f"{self.n} [{_fmt_time(elapsed)}]")
        if self.postfix:
            parts.append(" ".join(f"{k}={_fmt_value(v)}" for k, v in self.postfix.items()))
        return "  ".join(parts)

    def _draw(self, force: bool = False) -> None:
        if self.disable or self._closed:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        line = self.render()
        pad = " " * max(self._last_len - len(line), 0)
        self.stream.write("\r" + line + pad)
        self.stream.flush()
        self._last_len = len(line)

    def _write_line(self) -> bool:
        """One heartbeat: the current line, ended (no ``\\r`` in a log); ``False`` once the bar
        is closed."""
        with self._lock:
            if self._closed:
                return False
            self.stream.write(self.render() + "\n")
            self.stream.flush()
            self._beats += 1
            return True

    def close(self) -> None:
        """Draw the final state and end the line (heartbeat mode: a last line when any
        heartbeat was printed)."""
        self._stop.set()
        with self._lock:
            if self._closed:
                return
            if not self.disable:
                self._draw(force=True)
                self.stream.write("\n")
                self.stream.flush()
            elif self._beats:
                self.stream.write(self.render() + "\n")
                self.stream.flush()
            self._closed = True


def _beat(ref, stop: threading.Event, interval: float) -> None:
    """Heartbeat thread: the bar's line every ``interval`` seconds until it closes or is
    garbage-collected (it holds the bar only through the weak reference ``ref``)."""
    while not stop.wait(interval):
        bar = ref()
        if bar is None or bar._closed:
            return
        try:
            if not bar._write_line():
                return
        except (OSError, ValueError):  # the stream was closed under us
            return
        del bar
