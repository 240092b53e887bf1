"""The social-gradient design report (``mfid design social``): ``report.md``, ``report.json`` and
figures, written from the result dictionary the command assembles (reading only).

Static games: the planner's cost over iterations for the flow, every two-timescale learning rule
and the hypergradient method; ``||p - p*||`` over iterations; the ``beta / gamma`` sweep; the
incentive found beside ``p*``. Beach bar: the congestion over OMD steps for the mean-field social
gradient and AMID, the incentives found, the population flows, and the tax-step sweep.

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no global
backend). Everything is written into a temporary directory beside ``out`` that replaces ``out``
at the end; the JSON is strict (NaN and infinities become ``null``, the status says why).

Example::

    from mfid.report.social import write_report
    write_report("results/social/routing", result, command="mfid design social --game routing")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfid.report.common import atomic_dir, clean_json, new_figure, stamp, write_json, write_text

__all__ = ["write_report"]

_COLORS = {
    "flow": "tab:blue",
    "two-timescale[gradient]": "tab:orange",
    "two-timescale[best-response]": "tab:green",
    "two-timescale[mirror]": "tab:purple",
    "hypergradient": "tab:red",
}


def _positive(y, floor=1e-16):
    y = np.asarray(y, dtype=float)
    return np.where(np.isfinite(y), np.maximum(y, floor), np.nan)


def _static_figures(out: Path, r: dict) -> list[str]:
    methods, p_star = r["methods"], np.asarray(r["optimum"]["p_star"])
    s_star = r["optimum"]["objective"]
    figs = []

    fig = new_figure(figsize=(7, 4))
    ax = fig.subplots()
    for name, m in methods.items():
        t = m["trace"]
        it = np.asarray(t["iterations"], dtype=float) + 1
        ax.loglog(it, _positive(np.abs(np.asarray(t["objective"], dtype=float) - s_star)),
                  color=_COLORS.get(name), label=name)  # fmt: skip
    ax.set_xlabel("iteration (equilibrium solve or agent step)")
    ax.set_ylabel("|S - S(x^s)| (two-timescale: S at the agents' current play)")
    ax.set_title(f"{r['game']['name']}: planner's cost over iterations")
    ax.legend(fontsize=8)
    fig.savefig(out / "objective.png", dpi=120)
    figs.append("objective.png")

    fig = new_figure(figsize=(7, 4))
    ax = fig.subplots()
    for name, m in methods.items():
        t = m["trace"]
        it = np.asarray(t["iterations"], dtype=float) + 1
        ax.loglog(it, _positive(t["distance_to_optimum"]), color=_COLORS.get(name), label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("||p - p*||")
    ax.set_title(f"{r['game']['name']}: distance to the optimal incentive")
    ax.legend(fontsize=8)
    fig.savefig(out / "distance.png", dpi=120)
    figs.append("distance.png")

    sweep = r["ratio_sweep"]
    fig = new_figure(figsize=(4 * len(sweep), 3.6))
    axes = np.atleast_1d(fig.subplots(1, len(sweep), sharey=True))
    for ax, (rule, runs) in zip(axes, sweep.items(), strict=True):
        for ratio, m in runs.items():
            t = m["trace"]
            it = np.asarray(t["iterations"], dtype=float) + 1
            ax.loglog(it, _positive(t["distance_to_optimum"]),
                      label=f"beta/gamma={ratio} ({m['status']})")  # fmt: skip
        ax.set_title(f"two-timescale[{rule}]", fontsize=9)
        ax.set_xlabel("agent step")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("||p - p*||")
    fig.savefig(out / "ratio_sweep.png", dpi=120)
    figs.append("ratio_sweep.png")

    fig = new_figure(figsize=(9, 3.8))
    ax = fig.subplots()
    n = p_star.size
    names = list(methods)
    width = 0.8 / (len(names) + 1)
    idx = np.arange(n)
    ax.bar(idx, p_star, width, color="k", label="p* (known)")
    for j, name in enumerate(names):
        p = np.asarray(methods[name]["p"], dtype=float)
        ax.bar(idx + (j + 1) * width, p, width, color=_COLORS.get(name), label=name)
    ax.set_xticks(idx + 0.4 - width / 2, [f"p_{i}" for i in range(n)])
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("incentive (tax > 0, subsidy < 0)")
    ax.set_title(f"{r['game']['name']}: incentive found")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.savefig(out / "incentive.png", dpi=120)
    figs.append("incentive.png")
    return figs


def _beach_figures(out: Path, r: dict) -> list[str]:
    methods = r["methods"]
    lower = r["lower_bound_uniform_crowd"]
    figs = []
    fig = new_figure(figsize=(7, 4))
    ax = fig.subplots()
    for name, color in (("mf-social-gradient", "tab:green"), ("amid", "tab:blue")):
        m = methods[name]
        ax.semilogx(m["trace"]["omd_steps"], m["trace"]["objective"], color=color,
                    label=f"{name} (transient)")  # fmt: skip
        if m["objective"] is not None:
            ax.axhline(m["objective"], color=color, ls=":", label=f"{name}, converged")
    ax.axhline(lower, color="k", lw=0.8, ls="--", label="uniform-crowd minimum")
    ax.set_xlabel("OMD steps taken by the designer (forward)")
    ax.set_ylabel("congestion (minimised)")
    ax.set_title("beach bar: congestion against the designer's OMD steps")
    ax.legend(fontsize=8)
    fig.savefig(out / "objective.png", dpi=120)
    figs.append("objective.png")

    inc = r["incentives"]
    tax = np.asarray(inc["mf_social_gradient_tax"], dtype=float)  # (H, S, A)
    fig = new_figure(figsize=(11, 3.8))
    a0, a1 = fig.subplots(1, 2)
    im = a0.imshow(tax.mean(-1).T, origin="lower", aspect="auto", cmap="coolwarm",
                   vmin=-np.abs(tax).max(), vmax=np.abs(tax).max())  # fmt: skip
    a0.axhline(r["game"]["bar"], color="k", ls="--", lw=0.8)
    a0.set_xlabel("round h")
    a0.set_ylabel("spot s (dashed: bar)")
    a0.set_title("social-gradient tax p_h(s), mean over moves")
    fig.colorbar(im, ax=a0)
    a1.bar(np.arange(len(inc["amid_price"])), inc["amid_price"], color="tab:blue")
    a1.axvline(r["game"]["bar"], color="k", ls="--", lw=0.8)
    a1.set_xlabel("spot s")
    a1.set_ylabel("price p_max sigmoid(xi_s)")
    a1.set_title("AMID price per spot (every round)")
    fig.savefig(out / "incentive.png", dpi=120)
    figs.append("incentive.png")

    flows = r["flows"]
    vmax = max(float(np.max(v)) for v in flows.values())
    fig = new_figure(figsize=(12, 3.6))
    axes = fig.subplots(1, 3, sharey=True)
    for ax, (name, mu) in zip(axes, flows.items(), strict=True):
        im = ax.imshow(np.asarray(mu).T, origin="lower", aspect="auto", vmin=0, vmax=vmax)
        ax.axhline(r["game"]["bar"], color="w", ls="--", lw=0.8)
        ax.set_title(f"mu_h(s): {name}", fontsize=9)
        ax.set_xlabel("round h")
    axes[0].set_ylabel("spot s")
    fig.colorbar(im, ax=list(axes))
    fig.savefig(out / "flow.png", dpi=120)
    figs.append("flow.png")

    sweep = r["beta_sweep"]
    fig = new_figure(figsize=(6, 3.6))
    ax = fig.subplots()
    betas = [float(b) for b in sweep]
    vals = [np.nan if s["objective"] is None else s["objective"] for s in sweep.values()]
    ax.semilogx(betas, vals, "o-", color="tab:green", label="social gradient, converged")
    ax.axhline(lower, color="k", ls="--", lw=0.8, label="uniform-crowd minimum")
    if methods["amid"]["objective"] is not None:
        ax.axhline(methods["amid"]["objective"], color="tab:blue", ls=":", label="AMID")
    ax.set_xlabel("tax step beta (OMD steps per tax step fixed)")
    ax.set_ylabel("congestion at the converged equilibrium")
    ax.set_title("beach bar: what a fast planner does")
    ax.legend(fontsize=8)
    fig.savefig(out / "beta_sweep.png", dpi=120)
    figs.append("beta_sweep.png")
    return figs


def _f(x, fmt=".6g"):
    return "—" if x is None else format(x, fmt)


def _static_markdown(r: dict, figs: list[str]) -> str:
    g, opt = r["game"], r["optimum"]
    lines = [
        f"# Social-gradient incentive design: {g['name']}",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Game: `{g['class']}`, {len(opt['p_star'])} decisions"
        + (f", strong-monotonicity modulus {g['monotonicity']:.4g}" if "monotonicity" in g else "")
        + ".",
        f"Known optimum: p* = {np.round(np.asarray(opt['p_star']), 8).tolist()} "
        f"({opt['reference']}; gap to Newton's p* {opt['reference_gap']:.1e}); "
        f"S(x^s) = {opt['objective']:.10g}.",
        f"Safe set P_c: box [{r['safe_set']['lower']:g}, {r['safe_set']['upper']:g}]^n. "
        f"Settings: {r['settings']}.",
        "",
        "| method | status | objective S(x*(p)) | ‖p − p*‖ | equilibrium solves | agent steps "
        "| Newton iterations | seconds | seconds (1st call) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in r["methods"].items():
        lines.append(
            f"| {name} | {m['status']} | {_f(m['objective'], '.10g')} | "
            f"{_f(m['distance_to_optimum'], '.2e')} | {m['equilibrium_solves']} | "
            f"{m['agent_steps']} | {m['newton_iterations']} | {m['seconds']:.3f} | "
            f"{_f(m.get('seconds_first_call'), '.3f')} |"
        )
    for name, why in r.get("not_applicable", {}).items():
        lines.append(f"| {name} | not applicable: {why} | | | | | | | |")
    lines += [
        "",
        "Seconds are wall time on one core after compilation (the first call, which compiles, "
        "in the last column). Equilibrium solves are damped-Newton solves of F(x) + p = 0; the "
        "two-timescale scheme never solves one (its objective is reported at the exact "
        "equilibrium of its final p).",
        "",
        f"## beta / gamma sweep (gamma = {r['settings']['gamma']:g})",
        "",
        "| rule | beta/gamma | status | steps | ‖p − p*‖ | objective |",
        "|---|---|---|---|---|---|",
    ]
    for rule, runs in r["ratio_sweep"].items():
        for ratio, m in runs.items():
            lines.append(
                f"| {rule} | {ratio} | {m['status']} | {m['iterations']} | "
                f"{_f(m['distance_to_optimum'], '.2e')} | {_f(m['objective'], '.10g')} |"
            )
    lines += ["", "Figures: " + ", ".join(f"[{f}]({f})" for f in figs), ""]
    lines += [f"![{f}]({f})" for f in figs]
    lines += ["", f"Versions: {r['versions']}; machine: {r['machine']}.", ""]
    return "\n".join(lines)


def _beach_markdown(r: dict, figs: list[str]) -> str:
    g, m = r["game"], r["methods"]
    sg, am = m["mf-social-gradient"], m["amid"]
    lines = [
        "# Social-gradient incentive design: beach bar (mean field) against AMID",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Instance BEACH_BAR_DESIGN: K={g['num_states']}, H={g['horizon']}, crowd {g['crowd']}, "
        f"p_max {g['p_max']}, tau {g['tau']}, eta {g['eta']}; objective {r['objective']}. "
        f"Uniform-crowd minimum {r['lower_bound_uniform_crowd']:.6f}; without incentive "
        f"{_f(r['untaxed']['objective'])}.",
        "",
        "Social gradient: an additive tax p_h(s, a) in the reward (R − p), moved by "
        f"p ← p + β (∇_L g − round mean) after every {sg['settings']['inner']} OMD steps "
        f"(β = {sg['settings']['beta']:g}, {sg['settings']['steps']} tax steps); it never "
        "differentiates the equilibrium. AMID: per-spot prices p_max sigmoid(ξ_s), Adam on the "
        "checkpointed T-step gradient (the settings of `mfid design beach-bar`). Both are judged "
        "at the converged equilibrium of their final incentive (OMD from the uniform policy "
        f"until the exploitability is ≤ {r['settings']['eval_tol']:g}).",
        "",
        "| method | converged congestion | exploitability | OMD steps (design) | T-step "
        "equilibrium solves | seconds | seconds (1st call) | evaluation OMD steps | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in (("mf-social-gradient", sg), ("amid", am)):
        lines.append(
            f"| {name} | {_f(e['objective'], '.6f')} | {e['exploitability']:.1e} | "
            f"{e['omd_steps']} | {e['equilibrium_solves']} | {e['seconds']:.2f} | "
            f"{_f(e.get('seconds_first_call'), '.2f')} | {e['evaluation_omd_steps']} | "
            f"{e['status']} / {e['evaluation_status']} |"
        )
    ratio = r["ratio_to_amid"]
    lines += [
        "",
        f"**ratio_to_amid = {_f(ratio, '.6f')}** (social-gradient congestion / AMID "
        "congestion, both converged). OMD steps count the designer's forward steps; AMID's "
        "checkpointed gradient also recomputes every segment in its backward pass (about two "
        "more forward passes per step). Seconds are wall time on one core after compilation "
        "(the first, compiling call beside it); AMID's include its own evaluations of the "
        "initial and final prices. The social-gradient tax is centred in every round, so it "
        "mixes taxes (near the bar) and subsidies (far from it); at its converged equilibrium "
        f"the population pays {_f(sg.get('tax_collected'), '.2e')} in all (sum of L p).",
        "",
        "## Tax-step sweep (what a planner that is not slow does)",
        "",
        "| β | converged congestion | exploitability | max abs tax | status |",
        "|---|---|---|---|---|",
    ]
    for beta, s in r["beta_sweep"].items():
        lines.append(
            f"| {beta} | {_f(s['objective'], '.6f')} | {s['exploitability']:.1e} | "
            f"{s['max_abs_tax']:.3g} | {s['status']} / {s['evaluation_status']} |"
        )
    lines += [
        "",
        "## Auctions",
        "",
        "The auction settings are " + r["auction"],
        "",
        "Figures: " + ", ".join(f"[{f}]({f})" for f in figs),
        "",
    ]
    lines += [f"![{f}]({f})" for f in figs]
    lines += ["", f"Versions: {r['versions']}; machine: {r['machine']}.", ""]
    return "\n".join(lines)


def write_report(out, result: dict, *, command: str) -> dict:
    """Write ``report.json``, ``report.md`` and the figures of ``result`` into ``out``
    (atomically: a temporary directory beside ``out`` replaces it at the end); returns the
    report as written (strict JSON values)."""
    report = clean_json({**stamp(command), **result})
    beach = report["game"]["name"] == "beach-bar"
    with atomic_dir(out) as tmp:
        figs = _beach_figures(tmp, report) if beach else _static_figures(tmp, report)
        report["figures"] = figs
        write_json(tmp / "report.json", report)
        write_text(
            tmp / "report.md", (_beach_markdown if beach else _static_markdown)(report, figs)
        )
    return report
