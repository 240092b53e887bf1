"""Every module's ``Example::`` block runs (module docstrings of mfid, solvers, auctions); every
public name of the three packages (their ``__all__``) and every public method of their classes
has a docstring, and the examples in those docstrings run.

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
        if rel.parts[:2] in (("mfid", "cli"), ("mfid", "report")):
            continue
        code = _example(ast.get_docstring(ast.parse(path.read_text())) or "")
        if code:
            yield pytest.param(code, id=str(rel))


@pytest.mark.parametrize("code", list(_modules()))
def test_module_example_runs(code):
    exec(compile(code, "<example>", "exec"), {"__name__": "__example__"})


# --------------------------------------------------------------------------- public names

PACKAGES = ("mfid", "solvers", "auctions")


def _public():
    import importlib

    for pkg in PACKAGES:
        mod = importlib.import_module(pkg)
        for name in mod.__all__:
            if name != "__version__":
                yield pkg, name, getattr(mod, name)


def _own_doc(obj) -> str:
    """The object's own docstring ('' for a class whose ``__doc__`` is the dataclass default
    ``Name(field, ...)`` or inherited)."""
    import inspect

    if isinstance(obj, type):
        doc = obj.__dict__.get("__doc__") or ""
        return "" if doc.startswith(f"{obj.__name__}(") else inspect.cleandoc(doc)
    return inspect.cleandoc(getattr(obj, "__doc__", None) or "")


def _attribute_docstrings(pkg: str) -> dict[str, str]:
    """Module-level ``NAME = ...`` followed by a string literal (the attribute docstring that
    pdoc shows), over every module of ``pkg``."""
    out = {}
    for path in sorted((ROOT / pkg).rglob("*.py")):
        body = ast.parse(path.read_text()).body
        for node, nxt in zip(body, body[1:], strict=False):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])  # fmt: skip
            doc = (nxt.value.value if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                   and isinstance(nxt.value.value, str) else None)  # fmt: skip
            for t in targets:
                if isinstance(t, ast.Name) and doc and doc.strip():
                    out[t.id] = doc
    return out


def _methods(cls):
    """``(name, function or property)`` of the public methods and properties that ``cls`` itself
    defines in this repository's packages."""
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        fn = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
        fn = fn.fget if isinstance(fn, property) else fn
        if callable(fn) and getattr(fn, "__module__", "").split(".")[0] in PACKAGES:
            yield name, fn


def _method_doc(cls, name, fn) -> str:
    """The method's docstring, or the one of the base-class method it overrides (pdoc shows it)."""
    if (fn.__doc__ or "").strip():
        return fn.__doc__
    for base in cls.__mro__[1:]:
        if name in vars(base):
            attr = vars(base)[name]
            attr = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
            attr = attr.fget if isinstance(attr, property) else attr
            if (getattr(attr, "__doc__", None) or "").strip():
                return attr.__doc__
    return ""


def test_every_public_name_has_a_docstring():
    attribute_docs = {}
    for pkg in PACKAGES:
        attribute_docs.update(_attribute_docstrings(pkg))
    missing = []
    for pkg, name, obj in _public():
        if isinstance(obj, type) or callable(obj):
            ok = bool(_own_doc(obj))
        else:  # a constant: its attribute docstring where it is defined
            ok = name in attribute_docs
        if not ok:
            missing.append(f"{pkg}.{name}")
    assert not missing, f"public names without a docstring: {missing}"


def test_every_public_method_has_a_docstring():
    missing = []
    for pkg, name, obj in _public():
        if isinstance(obj, type):
            missing += [
                f"{pkg}.{name}.{m}" for m, fn in _methods(obj) if not _method_doc(obj, m, fn)
            ]
    assert not missing, f"public methods without a docstring: {missing}"


def _public_examples():
    seen = set()
    for pkg, name, obj in _public():
        items = [(f"{pkg}.{name}", obj)]
        if isinstance(obj, type):
            items += [(f"{pkg}.{name}.{m}", fn) for m, fn in _methods(obj)]
        for label, item in items:
            code = _example(_own_doc(item))
            if code and id(item) not in seen:
                seen.add(id(item))
                yield pytest.param(code, id=label)


@pytest.mark.parametrize("code", list(_public_examples()))
def test_public_example_runs(code):
    exec(compile(code, "<example>", "exec"), {"__name__": "__example__"})
