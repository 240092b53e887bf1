"""The settings table of ``results/README.md``: one row per revenue setting (every
``<dir>/A*/report.json`` written by ``mfid design auction``), one column group per method, each
cell the converged revenue per capita (mean over seeds), its share of the revenue bound where
one applies (else its gain over first price) and the largest exploitability of its equilibria.

``mfid summarize`` writes it between the markers ``<!-- settings-table -->`` and
``<!-- /settings-table -->`` of ``<dir>/README.md`` (text outside the markers is kept).

Example::

    from mfid.report.summary import settings_table
    settings_table([])   # the header of an empty table
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mfid.report.common import write_text

__all__ = ["collect", "settings_table", "write_summary"]

BEGIN, END = "<!-- settings-table -->", "<!-- /settings-table -->"
METHODS = ("amid", "zeroth-adam", "zeroth-sgd", "anneal")
LABELS = {"amid": "AMID", "zeroth-adam": "0-ADAM", "zeroth-sgd": "0-SGD", "anneal": "ANNEAL"}


def _setting_order(name: str):
    m = re.fullmatch(r"A(\d+)", name)
    return (0, int(m.group(1))) if m else (1, name)


def collect(results_dir) -> list[dict]:
    """Every revenue report under ``results_dir`` (``A*/report.json``), in setting order."""
    root = Path(results_dir)
    reports = []
    for path in root.glob("A*/report.json"):
        rep = json.loads(path.read_text())
        if "methods" in rep and "first_price" in rep:
            rep["_dir"] = path.parent.name
            reports.append(rep)
    return sorted(reports, key=lambda r: _setting_order(r["setting"]))


def _value(rep: dict, m: dict) -> float:
    return m["revenue_mean"] if rep.get("objective") == "revenue" else m["objective_mean"]


def _best(rep: dict) -> str | None:
    """The method with the best value among those whose equilibria all converged."""
    ok = {k: _value(rep, m) for k, m in rep["methods"].items() if m.get("converged")}
    return max(ok, key=ok.get) if ok else None


def _cell(rep: dict, method: str) -> str:
    m = rep["methods"].get(method)
    if m is None:
        return "—"
    revenue = rep.get("objective") == "revenue"
    value = _value(rep, m)
    seeds = m.get("seeds", 1)
    spread = f" ± {m['revenue_std']:.4f}" if seeds > 1 and revenue else ""
    if revenue and rep.get("bound") is not None and m.get("share_of_bound") is not None:
        rel = f"{100 * m['share_of_bound']:.1f} % of B"
    elif revenue:
        rel = f"{100 * m['gain_over_first_price']:+.1f} % vs FP"
    else:  # the setting's own objective against first price's
        rel = f"{100 * (value / rep['first_price']['objective'] - 1):+.1f} % vs FP"
    flag = "" if m.get("converged") else " **unconverged**"
    best = "**" if _best(rep) == method else ""
    return (f"{best}{value:.4f}{best}{spread} ({rel}; ε ≤ {m['exploitability_max']:.0e})"
            f"{flag}")  # fmt: skip


def settings_table(reports: list[dict]) -> str:
    """The Markdown table (see the module docstring)."""
    head = ["setting", "objective", "first price", *[LABELS[m] for m in METHODS], "bound B",
            "seeds, steps, K = M"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rep in reports:
        fp = rep["first_price"]
        fp_value = fp["revenue"] if rep.get("objective") == "revenue" else fp["objective"]
        fp_flag = "" if fp.get("status", "successful") == "successful" else " **unconverged**"
        cfg = rep.get("config", {})
        bound = f"{rep['bound']:.4f}" if rep.get("bound") is not None else "none"
        if rep.get("bound") is None and rep.get("bound_reason"):
            bound += f" ({rep['bound_reason']})"
        row = [
            f"[{rep['setting']}]({rep['_dir']}/report.md)",
            rep.get("objective", "revenue"),
            f"{fp_value:.4f} (ε ≤ {fp['exploitability']:.0e}){fp_flag}",
            *[_cell(rep, m) for m in METHODS],
            bound,
            f"{cfg.get('seeds', '?')}, {cfg.get('steps', '?')}, {cfg.get('num_values', '?')}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write_summary(results_dir, readme=None) -> Path:
    """Write the table into ``readme`` (default ``results_dir/README.md``) between the markers,
    appending a marked section when the file has none; returns the path."""
    root = Path(results_dir)
    path = Path(readme) if readme is not None else root / "README.md"
    reports = collect(root)
    if not reports:
        raise ValueError(f"results_dir {root} holds no revenue report (A*/report.json)")
    block = (
        f"{BEGIN}\n"
        "Converged revenue per capita (mean ± std over seeds) at each mechanism's equilibrium, "
        "its share of the revenue bound B where one applies (else its gain over first price) "
        "and the largest exploitability ε of its equilibria; in bold the best method among those "
        "whose equilibria all reached the tolerance (an unconverged value is not a result). "
        "Regenerate with `mfid summarize " + str(root) + "`.\n\n"
        + settings_table(reports)
        + f"{END}"
    )
    text = path.read_text() if path.exists() else "# Results\n\n"
    if BEGIN in text and END in text:
        pre, rest = text.split(BEGIN, 1)
        post = rest.split(END, 1)[1]
        text = pre + block + post
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    write_text(path, text)
    return path
