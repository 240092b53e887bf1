"""The mini-GTB tax-design report (``mfid design gtb``): ``report.md``, ``report.json`` and the
figures, written from the plain report dictionary the command builds (reading only).

The dictionary holds, per method (``amid``, ``metagrad``, ``us_federal``, ``free_market``,
``flat``): ``rates`` (seven marginal rates), ``mean_field`` (productivity x equality per capita at
the converged equilibrium) with its ``exploitability``, ``sampled`` (the same in the finite
economy of ``sampled_n`` agents playing that equilibrium, mean over replicates) with
``sampled_stderr``, and ``details`` (equality, productivity, per-skill labour and income before
and after tax and rebate); plus the gap-vs-N study, the MetaGrad seeds and the stamp.

Example::

    from mfid.report.gtb import write_report
    write_report("results/gtb", report)           # report.md, report.json, *.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfid.report.common import atomic_dir, new_figure, write_json, write_text

__all__ = ["FIGURES", "METHOD_LABELS", "figures", "markdown", "write_report"]

METHOD_LABELS = {
    "amid": "AMID (mean field)",
    "metagrad": "MetaGrad (N = 4)",
    "us_federal": "US federal",
    "free_market": "free market",
    "flat": "best flat tax",
}
FIGURES = ("rates.png", "income_by_skill.png", "labour_by_skill.png", "metrics.png", "gap.png",
           "metagrad.png")  # fmt: skip
_COLOURS = {"amid": "tab:blue", "metagrad": "tab:purple", "us_federal": "tab:red",
            "free_market": "0.25", "flat": "tab:green"}  # fmt: skip


def _methods(report) -> list[str]:
    return [m for m in METHOD_LABELS if m in report["rates"]]


def figures(out, report: dict) -> list[str]:
    """Write the figures into ``out``; returns their file names (Agg canvas, no pyplot)."""
    out = Path(out)
    methods = _methods(report)
    written = []
    brackets = report["brackets"]
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(brackets, brackets[1:], strict=False)]
    labels.append(f"{brackets[-1]:g}+")

    fig = new_figure(figsize=(8, 3.8))
    ax = fig.subplots()
    w = 0.8 / max(len(methods), 1)
    x = np.arange(len(labels))
    for i, m in enumerate(methods):
        ax.bar(x + (i - (len(methods) - 1) / 2) * w, report["rates"][m], w,
               label=METHOD_LABELS[m], color=_COLOURS[m])  # fmt: skip
    top = report.get("max_period_income")
    if top is not None:
        reached = int(np.searchsorted(np.asarray(brackets), top, side="left"))
        ax.axvspan(reached - 0.5, len(labels) - 0.5, color="0.9", zorder=0,
                   label="never reached by a period income")  # fmt: skip
    ax.set_xticks(x, labels, rotation=20)
    ax.set_xlabel("bracket of period income (coin)")
    ax.set_ylabel("marginal rate")
    ax.set_ylim(0, 1)
    ax.set_title("marginal tax rates per method")
    ax.legend(fontsize=7, ncols=2)
    fig.savefig(out / "rates.png", dpi=120)
    written.append("rates.png")

    skills = np.asarray(report["skills"])
    fig = new_figure(figsize=(3.0 * len(methods), 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(methods), sharey=True))
    xs = np.arange(len(skills))
    for ax, m in zip(axes, methods, strict=True):
        d = report["details"][m]
        ax.bar(xs - 0.2, d["type_income"], 0.4, label="before tax", color="0.6")
        ax.bar(xs + 0.2, d["type_post"], 0.4, label="after tax and rebate", color=_COLOURS[m])
        ax.set_xticks(xs, [f"{s:.1f}" for s in skills])
        ax.set_xlabel("skill (coin per house)")
        ax.set_title(METHOD_LABELS[m], fontsize=9)
    axes[0].set_ylabel("income over the episode (coin)")
    axes[0].legend(fontsize=7)
    fig.savefig(out / "income_by_skill.png", dpi=120)
    written.append("income_by_skill.png")

    fig = new_figure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    for i, m in enumerate(methods):
        ax.bar(xs + (i - (len(methods) - 1) / 2) * w, report["details"][m]["type_labour"], w,
               label=METHOD_LABELS[m], color=_COLOURS[m])  # fmt: skip
    ax.set_xticks(xs, [f"{s:.1f}" for s in skills])
    ax.set_xlabel("skill (coin per house)")
    ax.set_ylabel("labour over the episode")
    ax.set_title("labour by skill (mean-field equilibrium)")
    ax.legend(fontsize=7)
    fig.savefig(out / "labour_by_skill.png", dpi=120)
    written.append("labour_by_skill.png")

    fig = new_figure(figsize=(11, 3.6))
    axes = fig.subplots(1, 3)
    xm = np.arange(len(methods))
    panels = [("per_capita_productivity", "productivity per capita (coin)"),
              ("equality", "equality 1 - Gini"), ("product", "productivity x equality / N")]  # fmt: skip
    for ax, (key, title) in zip(axes, panels, strict=True):
        mf = [report["details"][m]["mean_field"][key] for m in methods]
        sm = [report["details"][m]["sampled"][key] for m in methods]
        se = [report["details"][m]["sampled"][key + "_stderr"] for m in methods]
        ax.bar(xm, mf, 0.6, color=[_COLOURS[m] for m in methods], label="mean field")
        ax.errorbar(xm, sm, yerr=np.asarray(se, float) * 2, fmt="k.", capsize=3,
                    label=f"sampled N = {report['sampled_n']} (2 s.e.)")  # fmt: skip
        ax.set_xticks(xm, [METHOD_LABELS[m] for m in methods], rotation=30, fontsize=7)
        ax.set_title(title, fontsize=9)
        lo = min(min(mf), min(sm))
        ax.set_ylim(lo * 0.9 if key != "equality" else max(0.0, lo - 0.1), None)
    axes[0].legend(fontsize=7)
    fig.savefig(out / "metrics.png", dpi=120)
    written.append("metrics.png")

    gap = report.get("gap_study")
    if gap:
        fig = new_figure(figsize=(6.5, 3.8))
        ax = fig.subplots()
        for key, colour in (("per_capita_productivity", "tab:blue"), ("product", "tab:orange")):
            st = gap[key]
            ns = np.asarray([r["n"] for r in st["rows"]], float)
            bias = np.abs([r["gap"] for r in st["rows"]])
            se = np.asarray([r["stderr"] for r in st["rows"]], float)
            rmse = np.asarray([r["rmse"] for r in st["rows"]], float)
            ref = abs(st["mean_field"])
            ax.errorbar(ns, bias / ref, yerr=se / ref, fmt="o", color=colour, capsize=3,
                        label=f"|bias| / g, {key}")  # fmt: skip
            ax.plot(ns, rmse / ref, "--", color=colour,
                    label=f"RMSE / g (slope {st['rmse_exponent']:.2f})")  # fmt: skip
        ax.plot(ns, rmse[0] / ref * (ns / ns[0]) ** -0.5, ":", color="k", label="N^-1/2")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("agents N")
        ax.set_ylabel("relative error vs mean field")
        ax.set_title(f"finite economy vs mean field ({METHOD_LABELS[gap['method']]} tax)")
        ax.legend(fontsize=7)
        fig.savefig(out / "gap.png", dpi=120)
        written.append("gap.png")

    mg = report.get("metagrad")
    if mg:
        fig = new_figure(figsize=(7, 3.6))
        ax = fig.subplots()
        names = list(mg["per_seed"])
        seeds = len(mg["per_seed"][names[0]])
        wm = 0.8 / len(names)
        for i, name in enumerate(names):
            ax.bar(np.arange(seeds) + (i - (len(names) - 1) / 2) * wm, mg["per_seed"][name], wm,
                   label=METHOD_LABELS.get(name, name), color=_COLOURS.get(name, None))  # fmt: skip
        ax.set_xticks(np.arange(seeds), [f"seed {s}" for s in range(seeds)])
        ax.set_ylabel("productivity x equality / N")
        low = min(min(v) for v in mg["per_seed"].values())
        high = max(max(v) for v in mg["per_seed"].values())
        ax.set_ylim(0.9 * low, high + 0.25 * (high - 0.9 * low))
        ax.set_title(f"policy-gradient agents on the reference N = {mg.get('n', 4)} economy")
        ax.legend(fontsize=7, ncols=3, loc="upper center")
        fig.savefig(out / "metagrad.png", dpi=120)
        written.append("metagrad.png")
    return written


def _f(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


def markdown(report: dict) -> str:
    """The Markdown report."""
    methods = _methods(report)
    lines = [
        "# Mini-GTB: income-tax design in the mean field, checked on sampled agents",
        "",
        f"Regenerate: `{report['command']}`",
        "",
        "```",
        report.get("summary", ""),
        "```",
        "",
        "## Designers on one table",
        "",
        f"productivity x equality per capita (`E[C] (1 - Gini)`); mean field at the converged "
        f"equilibrium (OMD until exploitability <= {report['settings']['tol']:g}); sampled: the "
        f"finite economy of N = {report['sampled_n']} agents (types drawn from the mean-field "
        f"skill distribution, every agent playing the equilibrium, rebates from the N agents), "
        f"mean ± s.e. over {report['settings']['reps']} replicates (common random numbers across "
        "methods).",
        "",
        "| method | rates (brackets 1-7, %) | mean field | exploitability | sampled N | "
        "sampled N, grid coin | equality (MF) | productivity/capita (MF) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        d = report["details"][m]
        rates = "/".join(f"{100 * r:.1f}" for r in report["rates"][m])
        sm = d["sampled"]
        grid = (f"{_f(sm['grid_product'])} ± {_f(sm['grid_product_stderr'])}"
                if "grid_product" in sm else "n/a")  # fmt: skip
        lines.append(
            f"| {METHOD_LABELS[m]} | {rates} | {_f(report['mean_field'][m])} | "
            f"{report['exploitability'][m]:.1e} | {_f(report['sampled'][m])} ± "
            f"{_f(report['sampled_stderr'][m])} | {grid} | "
            f"{_f(d['mean_field']['equality'], 3)} | "
            f"{_f(d['mean_field']['per_capita_productivity'], 1)} |"
        )
    lines += ["", "Sampled: the finite economy's own (exact) coin; grid coin: the agents' "
              "mean-field grid state plus rebates, whose law the mean field describes exactly "
              "(the difference is the earnings grid's discretisation)."]  # fmt: skip
    paired = report.get("paired_differences")
    if paired:
        lines += ["", "Paired differences in the sampled economy (same replicates):", ""]
        for name, v in paired.items():
            lines.append(f"* {name}: {_f(v['mean'])} ± {_f(v['stderr'])} (z = {_f(v['z'], 1)})")
    mg = report.get("metagrad")
    if mg:
        lines += ["", "## MetaGrad on the reference N = 4 economy", "", mg.get("note", ""), "",
                  "| tax (agents learn by policy gradient) | productivity x equality, per seed "
                  "| mean ± s.e. |", "|---|---|---|"]  # fmt: skip
        for name, vals in mg["per_seed"].items():
            v = np.asarray(vals, float)
            se = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
            lines.append(f"| {METHOD_LABELS.get(name, name)} | "
                         f"{', '.join(_f(x, 1) for x in v)} | {_f(v.mean(), 1)} ± {_f(se, 1)} |")
        lines += ["", "MetaGrad's rates per seed (%): " + "; ".join(
            "/".join(f"{100 * r:.1f}" for r in rr) for rr in mg["rates_per_seed"])]  # fmt: skip
    gap = report.get("gap_study")
    if gap:
        lines += ["", f"## Finite economy vs mean field ({METHOD_LABELS[gap['method']]} tax)", "",
                  gap.get("note", ""), "",
                  "| N | per-capita productivity: gap ± s.e. | RMSE | product (exact coin): "
                  "gap ± s.e. | RMSE | product (grid coin): gap ± s.e. | RMSE |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        keys = [k for k in ("per_capita_productivity", "product", "grid_product") if k in gap]
        for rows in zip(*(gap[k]["rows"] for k in keys), strict=True):
            cells = " | ".join(f"{_f(r['gap'], 3)} ± {_f(r['stderr'], 3)} | {_f(r['rmse'], 3)}"
                               for r in rows)  # fmt: skip
            lines.append(f"| {rows[0]['n']} | {cells} |")
        for key in keys:
            st = gap[key]
            lines.append(f"\n{key}: mean field {_f(st['mean_field'], 3)}; fitted exponent of "
                         f"|bias| {_f(st['exponent'])} (95% CI {_f(st['exponent_ci'][0])}, "
                         f"{_f(st['exponent_ci'][1])}); of the RMSE {_f(st['rmse_exponent'])} "
                         f"(95% CI {_f(st['rmse_exponent_ci'][0])}, "
                         f"{_f(st['rmse_exponent_ci'][1])})")  # fmt: skip
        if "published" in gap:
            p = gap["published"]
            lines.append(f"\nWith skills drawn from the published continuous distribution "
                         f"(N = {p['n']}, each agent playing its quantile type's policy): product "
                         f"{_f(p['product'])} ± {_f(p['product_stderr'])}, per-capita "
                         f"productivity {_f(p['per_capita_productivity'])} ± "
                         f"{_f(p['per_capita_productivity_stderr'])}: the type quantisation "
                         "error of the mean-field model.")  # fmt: skip
    findings = report.get("findings")
    if findings:
        lines += ["", "## AI-Economist / MetaGrad findings in the small economy", ""]
        lines += [f"* {f}" for f in findings]
    amid = report.get("details", {}).get("amid", {})
    if "surrogate_minus_converged" in amid:
        lines += ["", f"AMID's surrogate G_T of the selected iterate minus the converged value of "
                  f"its rates: {amid['surrogate_minus_converged']:+.2e} (no profit from OMD's "
                  "transient)." if amid["surrogate_minus_converged"] <= 1e-6 else
                  f"AMID's surrogate G_T exceeds the converged value by "
                  f"{amid['surrogate_minus_converged']:.2e}: the design profits from OMD's "
                  "transient."]  # fmt: skip
    notes = report.get("notes")
    if notes:
        lines += ["", "## Model and settings", ""] + [f"* {n}" for n in notes]
    lines += ["", "Figures: " + ", ".join(f"`{f}`" for f in report.get("figures", [])), "",
              f"Versions: {report.get('versions')}; machine: {report.get('machine')}", ""]  # fmt: skip
    return "\n".join(lines)


def write_report(out, report: dict) -> list[str]:
    """Write ``report.json``, ``report.md`` and the figures into ``out`` (a temporary directory
    renamed into place: ``out`` is the whole new report or untouched). Returns the figures.
    Figures are drawn on matplotlib's Agg canvas (:func:`mfid.report.common.new_figure`), so
    no global backend is selected."""
    with atomic_dir(out) as tmp:
        names = figures(tmp, report)
        report = {**report, "figures": names}
        write_json(tmp / "report.json", report)
        write_text(tmp / "report.md", markdown(report))
    return names
