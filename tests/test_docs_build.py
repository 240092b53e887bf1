"""The API reference builds with pdoc (``pdoc -o docs/api mfid solvers auctions``, see
docs/README.md) and its pages hold the public names of the three packages."""

import warnings

import pytest


def test_api_reference_builds(tmp_path):
    pytest.importorskip(
        "pdoc", reason="pdoc is not installed (pip install -e '.[test]' installs it)"
    )
    import pdoc
    import pdoc.render

    pdoc.render.configure(docformat="restructuredtext", show_source=False, search=True)
    with warnings.catch_warnings():  # pdoc warns about annotations it cannot resolve
        warnings.simplefilter("ignore")
        pdoc.pdoc("mfid", "solvers", "auctions", output_directory=tmp_path)
    pages = {p.name: p.read_text() for p in tmp_path.glob("*.html")}
    assert {"index.html", "mfid.html", "solvers.html", "auctions.html"} <= set(pages)
    import auctions
    import mfid
    import solvers

    for pkg in (mfid, solvers, auctions):
        page = pages[f"{pkg.__name__}.html"]
        missing = [n for n in pkg.__all__ if n != "__version__" and f'id="{n}"' not in page]
        assert not missing, f"{pkg.__name__}: not in the reference: {missing}"
    assert 'id="NeuralMechanism.create"' in pages["auctions.html"]
    assert "close to first price" in pages["auctions.html"]  # NeuralMechanism.create's docstring
