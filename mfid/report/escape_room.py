"""Report writers of ``mfid design escape-room``: markdown, strict JSON and figures.

Every writer fills a fresh temporary directory and renames it onto ``out``
(:class:`mfid.report.common.atomic_dir`), so a report directory is either complete or untouched.
Figures are drawn on Agg canvases (:func:`mfid.report.common.new_figure`); no global matplotlib
backend is selected.

Example::

    from mfid.report.escape_room import write_train_report
    write_train_report("/tmp/er", report)      # report: the dict built by the CLI
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfid.report.common import atomic_dir, new_figure, write_json, write_text

__all__ = ["write_mean_field_report", "write_scaling_report", "write_train_report"]

ACTIONS = ("lever", "stay/start", "door")
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
           "tab:gray", "tab:olive")  # fmt: skip


def _fmt(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


# -- train ------------------------------------------------------------------------------------
def write_train_report(out, report: dict) -> list[str]:
    """``report.json``, ``report.md``, ``objective.png``, ``incentives.png``, ``behaviour.png``."""
    with atomic_dir(out) as tmp:
        figures = [_objective_figure(tmp, report), _incentive_figure(tmp, report),
                   _behaviour_figure(tmp, report)]  # fmt: skip
        write_json(tmp / "report.json", {**report, "figures": figures})
        write_text(tmp / "report.md", _train_markdown(report, figures))
    return figures


def _objective_figure(tmp: Path, report: dict) -> str:
    fig = new_figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for (name, r), color in zip(report["methods"].items(), _COLORS * 3, strict=False):
        c = r["curve"]
        x = np.asarray(c["episodes"])
        per_seed = np.asarray(c["per_seed"])
        mean = per_seed.mean(0)
        ax.plot(x, mean, color=color, label=f"{name} ({r['mean']:.1f})")
        ax.fill_between(x, per_seed.min(0), per_seed.max(0), color=color, alpha=0.15, lw=0)
    ax.axhline(report["optimum"], color="k", ls="--", lw=1,
               label=f"optimum 10(n-m)-2m = {report['optimum']:g}")  # fmt: skip
    ax.axhline(report["max_welfare"], color="k", ls=":", lw=0.8,
               label=f"max welfare {report['max_welfare']:g}")  # fmt: skip
    ax.set_xlabel("training episodes per seed")
    ax.set_ylabel("greedy designer objective")
    ax.set_title(f"ER({report['n']},{report['m']}): mean over {report['seeds']} seeds "
                 "(band: min..max)")  # fmt: skip
    lows = [min(r["curve"]["mean"]) for r in report["methods"].values()]
    ax.set_ylim(min([-10.0, *lows]) - 2.0, report["max_welfare"] * 1.1)
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(tmp / "objective.png", dpi=120)
    return "objective.png"


def _incentive_figure(tmp: Path, report: dict) -> str:
    fig = new_figure(figsize=(10, 3.4))
    axes = fig.subplots(1, 3, sharey=True)
    for (name, r), color in zip(report["methods"].items(), _COLORS * 3, strict=False):
        c = r["curve"]
        paid = np.asarray(c["paid_by_action"])  # (C+1, A)
        for a, ax in enumerate(axes):
            ax.plot(c["episodes"], paid[:, a], color=color, label=name)
    for a, ax in enumerate(axes):
        ax.set_title(f"paid for '{ACTIONS[a]}'")
        ax.set_xlabel("training episodes per seed")
    axes[0].axhline(report["m"] * 1.0, color="k", ls=":", lw=0.8, label="m x 1")
    axes[0].set_ylabel("incentive per greedy episode (mean over seeds)")
    axes[0].legend(fontsize=7)
    fig.savefig(tmp / "incentives.png", dpi=120)
    return "incentives.png"


def _behaviour_figure(tmp: Path, report: dict) -> str:
    from matplotlib.colors import ListedColormap

    methods = list(report["methods"].items())
    fig = new_figure(figsize=(max(6, 0.5 * report["n"] + 3), 1.0 + 0.9 * len(methods)))
    axes = fig.subplots(len(methods), 1, squeeze=False)[:, 0]
    cmap = ListedColormap(["tab:blue", "lightgray", "tab:green"])
    for ax, (name, r) in zip(axes, methods, strict=True):
        first = np.array([b["actions"][0] for b in r["behaviour"]])  # (K, n)
        ax.imshow(first, cmap=cmap, vmin=0, vmax=2, aspect="auto")
        for k, (b, v) in enumerate(zip(r["behaviour"], r["per_seed"], strict=True)):
            ax.text(first.shape[1] - 0.4, k, f" {v:.1f} ({b['steps']} st.)", va="center",
                    fontsize=6, clip_on=False)  # fmt: skip
        ax.set_yticks(range(first.shape[0]))
        ax.set_yticklabels([f"s{k}" for k in range(first.shape[0])], fontsize=5)
        ax.set_xticks(range(first.shape[1]))
        ax.set_xticklabels(range(first.shape[1]), fontsize=6)
        ax.set_ylabel(name, fontsize=7, rotation=0, ha="right")
    axes[0].set_title("final greedy play, first step: blue = lever, gray = stay, green = door "
                      "(right: objective, steps)", fontsize=8)  # fmt: skip
    axes[-1].set_xlabel("agent")
    fig.savefig(tmp / "behaviour.png", dpi=120)
    return "behaviour.png"


def _train_markdown(report: dict, figures) -> str:
    n, m = report["n"], report["m"]
    lines = [
        f"# Escape Room ER({n},{m}): incentive designers",
        "",
        f"Optimum of the designer objective `10(n-m) - 2m = {report['optimum']:g}` (largest "
        f"welfare {report['max_welfare']:g}). {report['seeds']} seeds (batched), "
        f"{report['episodes']} training episodes per seed ({report['iterations']} iterations of "
        f"{report['settings']['batch']} episodes), the same independent policy-gradient agents "
        "for every method. Objective: welfare minus incentives paid on one greedy episode "
        "(agents `argmax`, designer at its mode) after training.",
        "",
        "| method | mean | std | per seed | equilibrium seeds | final paid (lever, stay, door) "
        "| seconds (this run) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in report["methods"].items():
        seeds = ", ".join(f"{v:.1f}" for v in r["per_seed"])
        paid = ", ".join(f"{v:.2f}" for v in r["paid_final"])
        lines.append(f"| {name} | {r['mean']:.2f} | {r['std']:.2f} | {seeds} | "
                     f"{r['equilibrium_seeds']}/{len(r['per_seed'])} | {paid} | "
                     f"{r['seconds']:.0f} |")  # fmt: skip
    lines += [
        "",
        "*Equilibrium seeds*: seeds whose final greedy play is a Nash equilibrium of the "
        "incentivised game up to 0.01 (no agent gains more than 0.01 by any open-loop deviation "
        "against the others' greedy policies and the designer's incentive; the gains per seed are "
        "`deviation_gain` in report.json). A designer objective above the optimum "
        f"{report['optimum']:g} is only possible out of equilibrium: the lever pullers are paid "
        "less than the 1 their move costs and keep pulling because policy-gradient learners with "
        "near-deterministic policies unlearn slowly.",
        "",
        "Regenerate with:",
        "",
        f"    {report['command']}",
        "",
        f"Machine: {report['machine']['device']}, {report['machine']['cpu_count']} CPU cores "
        f"({report['machine']['cores_used']} used); total {report['seconds']:.0f} s. A run resumed "
        "from checkpoints reports the seconds of the resumed part only (`resumed_from` in "
        "report.json).",
        "",
    ]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


# -- scaling ----------------------------------------------------------------------------------
def write_scaling_report(out, data: dict) -> list[str]:
    """``report.json``, ``report.md``, ``scaling.png`` (objective and episodes to reach against n)
    and ``curves.png`` (training curves per method and n) of the scaling study."""
    with atomic_dir(out) as tmp:
        figures = [_scaling_figure(tmp, data), _scaling_curves_figure(tmp, data)]
        write_json(tmp / "report.json", {**data, "figures": figures})
        write_text(tmp / "report.md", _scaling_markdown(data, figures))
    return figures


def _scaling_keys(rows):
    methods = list(dict.fromkeys(r["method"] for r in rows))
    rhos = sorted({r["rho"] for r in rows})
    ns = sorted({r["n"] for r in rows})
    return methods, rhos, ns


def _n_axis(ax, ns) -> None:
    ax.set_xscale("log")
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.minorticks_off()
    ax.set_xlabel("agents n (m = ceil(rho n))")


_STYLES = ("-", "--", ":", "-.")


def _scaling_figure(tmp: Path, data: dict) -> str:
    rows = data["rows"]
    methods, rhos, ns = _scaling_keys(rows)
    fig = new_figure(figsize=(11, 5.0))
    ax1, ax2 = fig.subplots(1, 2)
    budget = {r["n"]: r.get("episodes", data["episodes"]) for r in rows}
    for method, color in zip(methods, _COLORS * 3, strict=False):
        for rho, ls in zip(rhos, _STYLES * 3, strict=False):
            sel = sorted((r for r in rows if r["method"] == method and r["rho"] == rho),
                         key=lambda r: r["n"])  # fmt: skip
            x = [r["n"] for r in sel]
            ax1.errorbar(x, [r["fraction_of_optimum"] for r in sel],
                         yerr=[r["per_capita_std"] / r["per_capita_optimum"] for r in sel],
                         color=color, ls=ls, marker="o", ms=3, capsize=2,
                         label=f"{method}, rho={rho}")  # fmt: skip
            per_seed = [(r["n"], e) for r in sel for e in r.get("episodes_to_reach_per_seed", [])
                        if e]  # fmt: skip
            if per_seed:
                ax2.plot(*zip(*per_seed, strict=True), color=color, ls="none", marker="x", ms=4,
                         alpha=0.6)  # fmt: skip
            reached = [(r["n"], r["episodes_to_reach"]) for r in sel if r["episodes_to_reach"]]
            if reached:
                ax2.plot(*zip(*reached, strict=True), color=color, ls=ls, marker="o", ms=4,
                         label=f"{method}, rho={rho}")  # fmt: skip
    ax1.axhline(1.0, color="k", lw=0.8, ls="--", label="optimum")
    ax1.axhline(0.0, color="gray", lw=0.6)
    _n_axis(ax1, ns)
    ax1.set_ylabel("greedy objective / optimum 10(n-m) - 2m")
    ax1.set_title("final greedy objective (mean +- std over seeds)", fontsize=10)
    fig.legend(*ax1.get_legend_handles_labels(), loc="outside lower center", ncol=5, fontsize=7)
    _n_axis(ax2, ns)
    ax2.set_yscale("log")
    ax2.set_ylim(100, max(budget.values()) * 1.5)
    ax2.plot(ns, [budget[n] for n in ns], color="k", ls="none", marker="_", ms=16,
             label="budget (episodes per seed)")  # fmt: skip
    ax2.set_ylabel("training episodes per seed")
    ax2.set_title(f"episodes until {data['reach']:.0%} of the optimum (line: seed mean, x: seeds)",
                  fontsize=10)  # fmt: skip
    missing = sorted({r["method"] for r in rows} - {
        r["method"] for r in rows
        if r["episodes_to_reach"] or any(r.get("episodes_to_reach_per_seed", []))})  # fmt: skip
    if missing:
        ax2.text(0.02, 0.02, "never reached at any n: " + ", ".join(missing),
                 transform=ax2.transAxes, fontsize=7, va="bottom")  # fmt: skip
    ax2.legend(fontsize=6, loc="lower right")
    fig.savefig(tmp / "scaling.png", dpi=120)
    return "scaling.png"


def _scaling_curves_figure(tmp: Path, data: dict) -> str:
    import matplotlib

    rows = data["rows"]
    methods, rhos, ns = _scaling_keys(rows)
    fig = new_figure(figsize=(3.2 * len(methods) + 0.6, 3.6))
    axes = fig.subplots(1, len(methods), sharey=True, squeeze=False)[0]
    cmap = matplotlib.colormaps["viridis"]
    colors = {n: cmap(i / max(1, len(ns) - 1) * 0.9) for i, n in enumerate(ns)}
    for ax, method in zip(axes, methods, strict=True):
        for r in rows:
            if r["method"] != method:
                continue
            c = r["curve"]
            ls = _STYLES[rhos.index(r["rho"]) % len(_STYLES)]
            ax.plot(c["episodes"], np.asarray(c["mean"]) / r["optimum"], color=colors[r["n"]],
                    ls=ls, lw=1.2, label=f"n={r['n']}" if r["rho"] == rhos[0] else None)  # fmt: skip
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.axhline(data["reach"], color="gray", lw=0.6, ls=":")
        ax.axhline(0.0, color="gray", lw=0.6)
        ax.set_title(method, fontsize=10)
        ax.set_xlabel("training episodes per seed")
    axes[0].set_ylabel("greedy objective / optimum (seed mean)")
    styles = ", ".join(f"{'solid' if i == 0 else _STYLES[i]} rho={rho}"
                       for i, rho in enumerate(rhos))  # fmt: skip
    axes[0].legend(fontsize=7, title=styles, title_fontsize=6)
    fig.suptitle(f"training curves (dotted gray: {data['reach']:.0%} of the optimum)", fontsize=10)
    fig.savefig(tmp / "curves.png", dpi=120)
    return "curves.png"


def _budget_line(data: dict) -> str:
    budgets = sorted({(r["n"], r.get("seeds", data["seeds"]), r.get("episodes", data["episodes"]))
                      for r in data["rows"]})  # fmt: skip
    kinds = list(dict.fromkeys((k, e) for _, k, e in budgets))
    parts = []
    for k, e in kinds:
        ns = ", ".join(str(n) for n, k2, e2 in budgets if (k2, e2) == (k, e))
        parts.append(f"n = {ns}: {k} seeds, {e} training episodes per seed")
    return "; ".join(parts) + "."


def _scaling_markdown(data: dict, figures) -> str:
    lines = [
        "# Escape Room ER(n, rho n): scaling of the designers",
        "",
        f"{_budget_line(data)} `reach`: training episodes until the mean over seeds of the greedy "
        f"objective first reaches {data['reach']:.0%} of the optimum (n/a: never within the "
        "budget); per seed: the same for each seed's objective (-: never).",
        "",
        "Per-capita optimum: `(10(n-m) - 2m) / n` with `m = ceil(rho n)` (equal to "
        "`10(1-rho) - 2 rho` when `rho n` is an integer). Objective per seed: the greedy designer "
        "objective of the whole room (welfare minus incentives paid).",
        "",
        "| rho | n | m | method | episodes | per-capita objective | per-capita optimum | "
        "fraction | reach | reach per seed | objective per seed | equilibrium seeds | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(data["rows"], key=lambda r: (r["rho"], r["method"], r["n"])):
        seeds = ", ".join(f"{v:.1f}" for v in r["per_seed"])
        reach = ", ".join(str(e or "-") for e in r.get("episodes_to_reach_per_seed", []))
        lines.append(f"| {r['rho']} | {r['n']} | {r['m']} | {r['method']} | "
                     f"{r.get('episodes', data['episodes'])} | {r['per_capita_mean']:.3f} +- {r['per_capita_std']:.3f} | "
                     f"{r['per_capita_optimum']:.3f} | {r['fraction_of_optimum']:.3f} | "
                     f"{r['episodes_to_reach'] or 'n/a'} | {reach} | {seeds} | "
                     f"{r['equilibrium_seeds']}/{len(r['per_seed'])} | "
                     f"{r.get('seconds', 0.0):.0f} |")  # fmt: skip
    lines += ["", "Regenerate with:", "", f"    {data['command']}", "",
              f"Total {data['seconds']:.0f} s (a resumed study counts the resumed part only; "
              "`seconds` per row is the training of that cell).", ""]  # fmt: skip
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


# -- mean field -------------------------------------------------------------------------------
def write_mean_field_report(out, data: dict) -> list[str]:
    """``report.json``, ``report.md`` and ``mean_field.png`` of the mean-field study."""
    with atomic_dir(out) as tmp:
        fig = new_figure(figsize=(10, 3.8))
        ax1, ax2 = fig.subplots(1, 2)
        for row, color in zip(data["rows"], _COLORS * 4, strict=False):
            js = row["study"]
            ns = [r["n"] for r in js["rows"]]
            label = f"rho={row['rho']} {row['incentive']} ({row['start']})"
            ax1.errorbar(ns, [r["gap"] for r in js["rows"]],
                         yerr=[2 * r["stderr"] for r in js["rows"]], color=color, marker="o",
                         ms=3, label=label)  # fmt: skip
            ax2.plot(ns, [r["pivotal_probability_at_threshold"] for r in js["rows"]],
                     color=color, ls=":", lw=0.8)  # fmt: skip
            ax2.plot(ns, [max(r["pivotal_probability"], 1e-300) for r in js["rows"]],
                     color=color, marker="o", ms=3, label=label)  # fmt: skip
        ax1.axhline(0.0, color="k", lw=0.8)
        ax1.set_xscale("log")
        ax1.set_xlabel("agents n")
        ax1.set_ylabel("per-capita E G_n - g (+- 2 s.e.)")
        ax1.set_title("finite room playing the MF-NE policy")
        ax1.legend(fontsize=6)
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_ylim(1e-12, 1.5)
        ax2.set_xlabel("agents n")
        ax2.set_ylabel("P(one agent is pivotal)")
        ax2.set_title("pivotality (dotted: lever probability = rho)")
        fig.savefig(tmp / "mean_field.png", dpi=120)
        write_json(tmp / "report.json", {**data, "figures": ["mean_field.png"]})
        write_text(tmp / "report.md", _mean_field_markdown(data))
    return ["mean_field.png"]


def _mean_field_markdown(data: dict) -> str:
    s = data["settings"]
    lines = [
        "# Escape Room: the mean-field room against finite rooms",
        "",
        f"Entropy-regularised MF-NE by OMD (tau = {s['tau']}, eta = {s['omd_eta']}, smooth door "
        f"width kappa = {s['kappa']}), judged at exploitability <= {s['tol']}. Incentives: "
        f"`hand` pays 1 + {s['eps']} for the lever when the door opens; `pull-as-exit` pays "
        f"{11 + s['eps']:g} (pulling as good as leaving).",
        "",
        "| rho | incentive | start | status | exploitability | lever prob. (round 0) | "
        "door open (round 0) | per-capita objective | per-capita finite optimum |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in data["equilibria"]:
        lines.append(f"| {e['rho']} | {e['incentive']} | {e['start']} | {e['status']} | "
                     f"{e['exploitability']:.1e} | {e['lever_probability_round0']:.3f} | "
                     f"{e['door_open_probability'][0]:.3f} | {e['per_capita_objective']:.3f} | "
                     f"{e['per_capita_optimum']:.3f} |")  # fmt: skip
    lines += ["", "Finite rooms ER(n, ceil(rho n)) with every agent sampling the MF-NE policy "
              f"({s['mf_reps']} replicates per n): per-capita gap `E G_n - g` with its standard "
              "error, the door-open frequency, the gain of one agent switching to the mean-field "
              "best response, and the probability that an agent is pivotal.", ""]  # fmt: skip
    for row in data["rows"]:
        js = row["study"]
        lines += [f"**rho = {row['rho']}, {row['incentive']}, start {row['start']}** "
                  f"(g = {row['mean_field']:.4f}, bias exponent {_fmt(js['exponent'])})", "",
                  "| n | E G_n | gap | stderr | door opened | deviation gain | P(pivotal) |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in js["rows"]:
            lines.append(f"| {r['n']} | {r['value']:.4f} | {r['gap']:.4f} | {r['stderr']:.4f} | "
                         f"{r['door_opened']:.3f} | {_fmt(r['deviation_gain'], 4)} | "
                         f"{r['pivotal_probability']:.2e} |")  # fmt: skip
        lines.append("")
    lines += ["Regenerate with:", "", f"    {data['command']}", "",
              "![mean field](mean_field.png)"]  # fmt: skip
    return "\n".join(lines) + "\n"
