"""The settings table of results/README.md: read from the reports, written between its markers,
text around them kept."""

import json

import pytest

from mfid.cli import main
from mfid.report.summary import BEGIN, END, collect


def _report(setting, objective="revenue", bound=0.25, converged=True):
    def method(v):
        return {"revenue_mean": v, "objective_mean": v + 0.01, "revenue_std": 0.001, "seeds": 2,
                "share_of_bound": None if bound is None else v / bound,
                "gain_over_first_price": v / 0.15 - 1, "exploitability_max": 5e-10,
                "converged": converged}  # fmt: skip

    return {"setting": setting, "objective": objective, "bound": bound, "bound_reason":
            None if bound else "value drift", "best_method": "amid",
            "first_price": {"revenue": 0.15, "objective": 0.16, "exploitability": 8e-10},
            "methods": {"amid": method(0.24), "anneal": method(0.2)},
            "config": {"seeds": 2, "steps": 100, "num_values": 100}}  # fmt: skip


def test_table_rows_in_setting_order_with_shares_gains_and_flags(tmp_path):
    for name, kw in [("A10", dict(bound=None)), ("A2", dict(bound=None, converged=False)),
                     ("A9", dict(objective="mix")), ("A1", {})]:  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(_report(name, **kw)))
    assert [r["setting"] for r in collect(tmp_path)] == ["A1", "A2", "A9", "A10"]
    (tmp_path / "README.md").write_text(f"# Results\n\nintro\n\n{BEGIN}\nstale table\n{END}\n\nafter\n")
    assert main(["summarize", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# Results\n\nintro\n") and text.rstrip().endswith("after")
    assert "stale table" not in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if "](A" in line}
    assert "**0.2400** ± 0.0010 (96.0 % of B" in rows["[A1](A1/report.md)"]
    assert "+60.0 % vs FP" in rows["[A2](A2/report.md)"] and "unconverged" in rows["[A2](A2/report.md)"]
    assert "none (value drift)" in rows["[A2](A2/report.md)"]
    # A9's own objective (the mix), not its revenue, is compared with first price's
    assert "**0.2500** (+56.2 % vs FP" in rows["[A9](A9/report.md)"]
    assert "0.1600 (ε" in rows["[A9](A9/report.md)"]
    # the best *converged* method is bold: A2's are all unconverged
    assert "**0.2400**" not in rows["[A2](A2/report.md)"]


def test_no_reports_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="results_dir"):
        from mfid.report.summary import write_summary

        write_summary(tmp_path)
