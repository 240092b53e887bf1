"""A small dependency-free progress bar writing to stderr.

It draws ``desc  42% |#####     | 21/50 [00:03<00:04] key=value ...`` on one line, redrawn in
place with ``\\r``. It is silent when stderr is not a terminal or when ``disable=True``, so logs
and tests stay clean.

Example::

    from mfid.cli.progress import Progress
    with Progress(total=50, desc="design") as bar:
        for step in range(50):
            bar.update(objective=0.123, expl=1e-4)
"""

from __future__ import annotations

import sys
import time
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
    ``disable=None`` (default) means: enabled exactly when ``stream`` is a TTY.
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
    ):
        if total is not None and (not isinstance(total, int) or total < 0):
            raise ValueError(f"total must be a non-negative integer or None, got {total!r}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width!r}")
        self.total = total
        self.desc = desc
        self.stream = sys.stderr if stream is None else stream
        if disable is None:
            isatty = getattr(self.stream, "isatty", None)
            disable = not (callable(isatty) and isatty())
        self.disable = bool(disable)
        self.width = int(width)
        self.min_interval = float(min_interval)
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self._start = time.monotonic()
        self._last_draw = -float("inf")
        self._last_len = 0
        self._closed = False

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

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self._closed:
            return
        if not self.disable:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
        self._closed = True
