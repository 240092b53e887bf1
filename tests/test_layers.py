"""DESIGN.md's layers, kept by a test: the core ``mfid`` imports neither ``solvers`` nor
``auctions``; ``solvers`` does not import ``auctions``; nothing but the top floor imports
``mfid.cli`` or ``mfid.report``; no module imports a private name of another module."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _imports():
    for path in sorted(ROOT.glob("*/**/*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in ("mfid", "solvers", "auctions"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield rel, a.name, []
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield rel, node.module, [a.name for a in node.names]


def _top_floor(rel) -> bool:
    return rel.parts[0] == "mfid" and len(rel.parts) > 1 and rel.parts[1] in (
        "cli", "report", "__main__.py",
    )  # fmt: skip


def test_layers():
    bad = []
    for rel, mod, _ in _imports():
        root = mod.split(".")[0]
        if rel.parts[0] == "mfid" and not _top_floor(rel) and root in ("solvers", "auctions"):
            bad.append(f"{rel}: the core imports {mod}")
        if rel.parts[0] == "solvers" and root == "auctions":
            bad.append(f"{rel}: solvers imports {mod}")
        if not _top_floor(rel) and (mod.startswith("mfid.cli") or mod.startswith("mfid.report")):
            bad.append(f"{rel}: imports the top floor {mod}")
        if rel.parts[0] == "mfid" and rel.parts[1:2] == ("report",) and mod.startswith("mfid.cli"):
            bad.append(f"{rel}: a report writer imports the CLI {mod}")
    assert not bad, "\n".join(bad)


def test_no_private_names_cross_packages():
    bad = []
    for rel, mod, names in _imports():
        own = rel.parts[0]
        if mod.split(".")[0] in ("mfid", "solvers", "auctions") and mod.split(".")[0] != own:
            bad += [f"{rel}: {mod}.{n}" for n in names if n.startswith("_")]
    assert not bad, "\n".join(bad)


def test_library_code_selects_no_matplotlib_backend():
    bad = [
        str(p.relative_to(ROOT))
        for p in ROOT.glob("*/**/*.py")
        if p.relative_to(ROOT).parts[0] in ("mfid", "solvers", "auctions")
        and "matplotlib.use(" in p.read_text()
    ]
    assert not bad, bad
