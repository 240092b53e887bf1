"""Every module's ``Example::`` block runs (module docstrings of mfid, solvers, auctions).

Examples that write files write under /tmp. The top floor is exercised by the CLI tests instead:
CLI modules show shell commands, report writers and sweeps need a finished study."""

import ast
import pathlib
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _example(doc: str) -> str | None:
    if not doc or "Example::" not in doc:
        return None
    block = doc.split("Example::", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line.strip() and not line.startswith((" ", "\t")):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip() or None


def _modules():
    for path in sorted(ROOT.glob("*/**/*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in ("mfid", "solvers", "auctions"):
            continue
        if rel.parts[:2] in (("mfid", "cli"), ("mfid", "report")) or rel.name == "sweep.py":
            continue
        code = _example(ast.get_docstring(ast.parse(path.read_text())) or "")
        if code:
            yield pytest.param(code, id=str(rel))


@pytest.mark.parametrize("code", list(_modules()))
def test_module_example_runs(code):
    exec(compile(code, "<example>", "exec"), {"__name__": "__example__"})
