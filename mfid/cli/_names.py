"""Errors of the library retold in the command's words: a ``ValueError`` that names a Python
parameter (``num_states must be ...``) is re-raised naming the flag (``--num-states must be
...``), so a user reads what to change on the command line.

Example::

    from mfid.cli._names import flag_names
    with flag_names(num_states="--num-states"):
        BeachBar.create(1, 3)        # ValueError: --num-states must be an integer >= 2, got 1
"""

from __future__ import annotations

import re
from contextlib import contextmanager

__all__ = ["flag_names"]


@contextmanager
def flag_names(**flags: str):
    """Within the block, a ``ValueError`` whose message names a parameter of ``flags`` (as a
    whole word, not already a flag) is re-raised with the flag in its place."""
    try:
        yield
    except ValueError as err:
        text = str(err)
        for name, flag in flags.items():
            text = re.sub(rf"(?<![\w-]){re.escape(name)}\b", flag, text)
        if text == str(err):
            raise
        raise ValueError(text) from None
