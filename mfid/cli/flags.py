"""Conventions shared by every ``mfid`` command: whole-number flags and the help layout.

:func:`count` parses a whole-number flag and accepts scientific notation that is a whole number
(``100``, ``1e5``, ``2.5e3``, ``100_000``); ``2.5`` or ``abc`` are refused, and argparse puts
the flag's name in front of the message (``argument --steps: expected a whole number ...``).
:class:`HelpFormatter` shows every option's default in ``--help`` and keeps the paragraphs of a
description. :func:`apply_conventions` gives every parser and subparser of a command tree that
formatter and turns every ``type=int`` flag into a :func:`count` flag, so a command module
writes ``type=int`` and still accepts ``1e5``.

Example::

    import argparse
    from mfid.cli.flags import apply_conventions, count
    parser = argparse.ArgumentParser(prog="demo")
    parser.add_argument("--steps", type=int, default=100, help="design steps")
    apply_conventions(parser)
    assert parser.parse_args(["--steps", "1e5"]).steps == 100_000
    assert count("2.5e3") == 2500
"""

from __future__ import annotations

import argparse
import re
import textwrap
from decimal import Decimal, InvalidOperation

__all__ = ["HelpFormatter", "apply_conventions", "count", "counts"]


def count(text) -> int:
    """A whole number from ``text``: an integer literal, or a decimal or scientific literal
    whose value is a whole number (``"1e5"`` -> ``100000``). ``argparse.ArgumentTypeError``
    otherwise (argparse reports it with the flag's name)."""
    if isinstance(text, bool):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if isinstance(text, int):
        return text
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value != value.to_integral_value():
        raise argparse.ArgumentTypeError(
            f"expected a whole number such as 100 or 1e5, got {str(text)!r}"
        )
    return int(value)


def counts(text, flag: str) -> list[int]:
    """A comma-separated list of whole numbers (``"1e2,1e3"`` -> ``[100, 1000]``), or a
    ``ValueError`` naming ``flag``."""
    out = []
    for item in str(text).split(","):
        if not item.strip():
            continue
        try:
            out.append(count(item))
        except argparse.ArgumentTypeError as err:
            raise ValueError(f"{flag}: {err}") from None
    return out


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with every option's default, and descriptions that keep their paragraphs.

    A default is added as ``(default: X)`` unless the help text already names one (it contains
    ``default`` or ends with the default in parentheses, ``"rounds H (10)"``), the flag is a
    switch, or the default is ``None`` or empty (an unset optional flag).
    Paragraphs of a description or epilog (separated by blank lines) are refilled one by one;
    an indented line is kept as written (an example command)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text.lower()
            or action.default is None
            or action.default is argparse.SUPPRESS
            or isinstance(action.default, bool)
            or (isinstance(action.default, (list, tuple)) and not action.default)
            or action.nargs == 0
            or not (action.option_strings or action.nargs in (argparse.OPTIONAL, "*"))
            or _ends_with_default(text, action.default)
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = re.split(r"\n\s*\n", textwrap.dedent(text).strip("\n"))
        out = []
        for para in paragraphs:
            if para.startswith((" ", "\t")):
                out.append(textwrap.indent(para, indent))
            else:
                para = self._whitespace_matcher.sub(" ", para).strip()
                out.append(textwrap.fill(para, width, initial_indent=indent,
                                         subsequent_indent=indent))  # fmt: skip
        return "\n\n".join(out)


def _ends_with_default(text: str, default) -> bool:
    """Whether ``text`` ends with ``(X)`` where ``X`` is ``default`` written out (``4e6`` for
    4000000 counts)."""
    m = re.search(r"\(([^()]*)\)\s*$", text)
    if not m:
        return False
    shown = m.group(1).strip()
    if shown == str(default):
        return True
    try:
        return float(shown) == float(default)
    except (TypeError, ValueError):
        return False


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield from _parsers(sub)


def apply_conventions(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give ``parser`` and every subparser below it :class:`HelpFormatter`, and parse every
    ``type=int`` flag with :func:`count`. Returns ``parser``."""
    for p in _parsers(parser):
        p.formatter_class = HelpFormatter
        for action in p._actions:
            if action.type is int:
                action.type = count
    return parser
