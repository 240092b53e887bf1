"""docs/designing_your_own_auction.md: its Python blocks run in order as written, and the numbers
its comments quote hold (the designed reserves beat first price and stay below the bound)."""

import re
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "designing_your_own_auction.md"


def test_guide_runs_and_its_numbers_hold(capsys):
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    assert len(blocks) == 4, (
        "the guide has four python blocks (distribution, mechanism, baseline, design)"
    )
    ns = {"__name__": "__guide__"}
    for code in blocks:
        exec(compile(code, str(GUIDE), "exec"), ns)
    out = capsys.readouterr().out
    assert "first price 0.1478, bound 0.1689 at price 0.35" in out
    assert ns["eq"].status_name == "successful"
    res = ns["res"]
    assert res.status == "successful" and float(res.final.exploitability) <= 1e-8
    assert ns["fp_revenue"] < res.final_value <= float(ns["bound"])
    assert f"-> {res.final_value:.4f}" in out and "0.1500" in out
