"""mfid design auction end to end on a small grid: the report's statuses and strict JSON, the
saved mechanism re-solved by mfid evaluate reproduces the reported revenue, a diverged run exits
1 with its report flagged, bad flags fail before any work."""

import json

import pytest

from mfid.cli import main

SMALL = ["--num-values", "6", "--num-bids", "5", "--width", "8", "--iters", "10",
         "--val-iters", "4000", "--tau", "0.05", "--eta", "1.0", "--no-progress"]  # fmt: skip


def test_design_then_evaluate_reproduces_the_revenue(tmp_path):
    out = tmp_path / "a1"
    rc = main(["design", "auction", "--setting", "a1", "--method", "amid", "--steps", "3",
               "--seeds", "1", "--out", str(out), *SMALL])  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    v = report["methods"]["amid"]
    assert rc == (0 if report["status"] == "successful" else 1)
    assert v["converged"] and v["exploitability_max"] <= 1e-9
    assert report["first_price"]["status"] == "successful"
    assert report["command"].endswith("--no-progress")
    text = (out / "report.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert (out / "report.md").read_text().startswith("# Revenue design — setting A1")
    ev = tmp_path / "ev.json"
    assert (
        main(["evaluate", "--mechanism", str(out / "mechanisms" / "amid"), "--json", str(ev)]) == 0
    )
    got = json.loads(ev.read_text())
    assert got["revenue"] == pytest.approx(v["revenue_mean"], abs=1e-9)


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--setting", "A11"], "setting"),
        (["--method", ""], "method"),
        (["--steps", "0"], "steps"),
        (["--eta", "-1"], "eta"),
        (["--lr", "-1"], "lr"),
        (["--val-tol", "nan"], "val-tol"),
    ],
)
def test_bad_flags_fail_before_any_work(flags, match, capsys):
    assert main(["design", "auction", *flags, "--out", "/tmp/never-written"]) == 2
    assert match in capsys.readouterr().err


def test_a_diverged_run_exits_1_and_its_report_says_so(tmp_path, capsys):
    # the flags of the run above but eta * tau > 2: every design step diverges; the same
    # compiled programs as the run above
    out = tmp_path / "a1"
    rc = main(["design", "auction", "--setting", "a1", "--method", "amid", "--steps", "3",
               "--seeds", "1", "--out", str(out), *SMALL, "--eta", "1e6"])  # fmt: skip
    assert rc == 1
    text = (out / "report.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    report = json.loads(text)
    assert report["status"] != "successful"
    assert set(report["methods"]["amid"]["design_status"]) <= {"diverged", "nonfinite"}
    assert "[FLAGGED]" in capsys.readouterr().out


def test_unwritable_out_fails_before_any_work(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["design", "auction", "--out", str(f)]) == 2
    assert "--out" in capsys.readouterr().err
