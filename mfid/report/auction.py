"""The revenue report of an auction design study (``mfid design auction``): ``report.md``,
``report.json`` and five figures, written from an :class:`auctions.study.RevenueStudy` (reading
only: no equilibrium is solved here).

Example::

    from auctions.study import run_revenue_design
    from mfid.report.auction import write_report
    study = run_revenue_design("A1", methods=("amid",), steps=4, width=8, num_values=10,
                               num_bids=10, iters=20, val_iters=20)
    write_report(study, "/tmp/a1", command="mfid design auction --setting A1 ...")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from auctions.bound import max_entropy_slack
from auctions.study import LABELS, RevenueStudy
from mfid.report.common import atomic_dir, machine_line, new_figure, stamp, write_json, write_text

__all__ = ["summary", "write_report"]


def summary(result: RevenueStudy) -> dict:
    """The report's numbers (the content of ``report.json``)."""
    meta, runs = result.meta, result.runs
    bound = meta.get("bound") if meta.get("bound_applies") else None
    out = {
        "setting": result.setting,
        "description": meta["description"],
        "mechanism": meta["mechanism"],
        "objective": meta["objective"],
        "revenue": {},
        "revenue_std": {},
        "objective_value": {},
        "share_of_bound": {},
        "exploitability": {},
        "entropy_slack": {},
        "seconds": {},
        "seconds_per_step": {},
        "steps_per_second": {},
        "design_steps": {},
        "evaluations": {},
        "first_price": result.first_price.revenue,
        "first_price_exploitability": result.first_price.exploitability,
        "status": {},
        "compile_seconds": {},
        "initial_revenue": result.initial.revenue,
        "bound": bound,
        "bound_price": meta.get("bound_price") if bound is not None else None,
        "max_entropy_slack": None,
        "steps": result.config["steps"],
        **{k: v for k, v in result.config.items() if k != "steps"},
    }
    for m, rs in runs.items():
        rev = np.array([r.equilibrium.revenue for r in rs])
        out["revenue"][m] = float(rev.mean())
        out["revenue_std"][m] = float(rev.std())
        out["objective_value"][m] = float(np.mean([r.equilibrium.objective for r in rs]))
        out["exploitability"][m] = float(np.mean([r.equilibrium.exploitability for r in rs]))
        out["entropy_slack"][m] = float(np.mean([r.equilibrium.entropy_slack for r in rs]))
        out["seconds"][m] = float(np.mean([r.seconds for r in rs]))
        sps = float(np.mean([r.seconds_per_step for r in rs]))
        out["compile_seconds"][m] = float(np.mean([r.compile_seconds for r in rs]))
        out["status"][m] = sorted({r.status for r in rs})
        out["seconds_per_step"][m] = sps
        out["steps_per_second"][m] = 1.0 / sps
        out["design_steps"][m] = rs[0].steps
        out["evaluations"][m] = rs[0].evaluations
        if bound:
            out["share_of_bound"][m] = float(rev.mean() / bound)
    if bound:
        out["share_of_bound"]["first-price"] = out["first_price"] / bound
        H, M = meta["horizon"], meta["num_bids"]
        out["max_entropy_slack"] = max_entropy_slack(result.config["tau"], H, M)
    return out


def _figures(result: RevenueStudy, out: Path) -> list[str]:
    names = []
    runs, meta = result.runs, result.meta
    bound = meta.get("bound") if meta.get("bound_applies") else None
    # 1. objective over evaluations per method; 5. exploitability trace
    for key, fname, ylabel in (
        ("objective_trace", "revenue_over_steps.png", f"{meta['objective']} G_T (T-step)"),
        ("exploitability_trace", "exploitability.png", "exploitability of softmax zeta_T"),
    ):
        fig = new_figure(figsize=(6.5, 4))
        ax = fig.subplots()
        for m, rs in runs.items():
            n = min(len(getattr(r, key)) for r in rs)
            ys = np.stack([getattr(r, key)[:n] for r in rs])
            xs = rs[0].evaluation_trace[:n]
            ax.plot(xs, ys.mean(0), label=LABELS[m])
            if len(rs) > 1:
                ax.fill_between(xs, ys.min(0), ys.max(0), alpha=0.2)
        if key == "objective_trace":
            ax.axhline(result.first_price.revenue, color="k", ls=":", label="first price")
            if bound and meta["objective"] == "revenue":
                ax.axhline(bound, color="r", ls="--", label="posted-price bound")
        else:
            ax.set_yscale("log")
        ax.set(xlabel="objective evaluations", ylabel=ylabel, title=f"{result.setting}")
        ax.legend()
        fig.savefig(out / fname, dpi=110)
        names.append(fname)
    best_method = "amid" if "amid" in runs else next(iter(runs))
    r0 = runs[best_method][0]
    before, after = result.initial, r0.equilibrium
    H = meta["horizon"]
    M = meta["num_bids"]
    bids = np.arange(M) / M

    def per_market(x):
        return x if x.ndim == 2 else x.mean(1)  # mixtures: average over markets

    # 2. bid distribution per round before / after
    fig = new_figure(figsize=(3.2 * H, 3.2))
    axes = fig.subplots(1, H, sharey=True)
    axes = np.atleast_1d(axes)
    nb = per_market(
        before.info.nu.reshape(H, -1, M) if before.info.nu.ndim == 3 else before.info.nu
    )
    na = per_market(
        after.info.nu.reshape(H, -1, M) if after.info.nu.ndim == 3 else after.info.nu
    )
    nf = result.first_price.info.nu
    nf = nf.mean(1) if nf.ndim == 3 else nf
    for h in range(H):
        axes[h].plot(bids, nb[h], label="initial mechanism")
        axes[h].plot(bids, na[h], label=f"designed ({LABELS[best_method]})")
        axes[h].plot(bids, nf[h], ":", label="first price")
        axes[h].set(title=f"round {h}", xlabel="bid")
    axes[0].set_ylabel("active bid mass nu_h")
    axes[0].legend(fontsize=7)
    fig.savefig(out / "bid_distribution.png", dpi=110)
    names.append("bid_distribution.png")

    # 3. allocation per round
    fig = new_figure(figsize=(6, 4))
    ax = fig.subplots()
    hs = np.arange(H)
    for lab, eq, st in (
        ("initial", before, "o-"),
        ("designed", after, "s-"),
        ("first price", result.first_price, "^:"),
    ):
        a = eq.info.sold
        ax.plot(hs, a if a.ndim == 1 else a.mean(1), st, label=f"{lab} (sold)")
    ax.set(
        xlabel="round h",
        ylabel="allocated mass",
        title=f"{result.setting}: allocation per round",
    )
    ax.legend()
    fig.savefig(out / "allocation.png", dpi=110)
    names.append("allocation.png")

    # 4. payment rule per round (designed)
    fig = new_figure(figsize=(6, 4))
    ax = fig.subplots()
    pay = after.info.payment
    pay = pay if pay.ndim == 2 else pay.mean(1)
    for h in range(H):
        ax.plot(bids, pay[h], label=f"round {h}")
    ax.plot(bids, bids, "k:", label="bid (first price)")
    if bound:
        ax.axhline(meta["bound_price"], color="r", ls="--", lw=0.8, label="optimal posted price")
    ax.set(xlabel="bid", ylabel="payment of a winner", title="designed payment rule")
    ax.legend(fontsize=7)
    fig.savefig(out / "payment_rule.png", dpi=110)
    names.append("payment_rule.png")
    return names


def write_report(result: RevenueStudy, out, command: str) -> dict:
    """Write ``report.md``, ``report.json`` and the figures into ``out`` (atomically: the
    directory is either the complete new report or left as it was); return the summary."""
    s = summary(result)
    s.update(stamp(command))
    s["machine_line"] = machine_line()
    with atomic_dir(out) as tmp:
        figs = _figures(result, tmp)
        s["figures"] = figs
        write_json(tmp / "report.json", s)
        write_text(tmp / "report.md", _markdown(s, result, figs))
    return s


def _fmt(x, nd=4):
    return "—" if x is None else f"{x:.{nd}f}"


def _markdown(s: dict, result: RevenueStudy, figs: list[str]) -> str:
    meta = result.meta
    bound = s["bound"]
    lines = [
        f"# Revenue design report — setting {s['setting']}",
        "",
        f"Regenerate with: `{s['command']}`",
        "",
        "## Setting",
        "",
        f"- {s['description']} (K = {meta['num_values']} value levels + ⊥, M = {meta['num_bids']} bids, H = {meta['horizon']}).",
        f"- Mechanism designed: {s['mechanism']} (width {s['width']}); objective: {s['objective']}.",
        f"- Equilibrium: entropy-regularised MF-NE by OMD, tau = {s['tau']}, eta = {s['eta']}; "
        f"design surrogate G_T with T = {s['iters']} "
        f"({'warm-started' if s['warm_start'] else 'from the uniform policy at every step'}), "
        "final numbers re-evaluated "
        f"with T_val = {s['val_iters']} OMD steps from the uniform policy. Design steps compute in "
        f"{s.get('precision', 'float64')}; every reported number is evaluated in "
        f"{s.get('eval_precision', 'float64')}.",
        f"- Equal budgets: {s['steps']} objective evaluations per method and seed "
        f"(an exact AMID gradient step counts 1, a zeroth-order step 3); seeds: {s['seeds']} "
        "(network initialisation and optimiser randomness).",
        f"- Optimiser: Adam (SGD for 0-SGD) with a warm-up/cosine schedule peaking at "
        f"{s['learning_rate']} (AMID) and {s['zo_learning_rate']} (zeroth order), from and back "
        "to a tenth of the peak; ANNEAL: radius 0.1.",
        "- Reported mechanism: "
        + (
            "for every method, the one with the best surrogate G_T seen during its run."
            if s.get("keep_best")
            else "the last iterate of every run (ANNEAL's is its best by construction)."
        ),
    ]
    if s.get("draws"):
        lines.append(
            f"- A3: a fixed batch of {s['draws']} draws of (mu0, alpha_max), alpha_max = "
            f"{', '.join(f'{a:.3f}' for a in meta['alpha_max_draws'])}; revenue is the batch mean."
        )
    if bound is not None:
        lines += [
            f"- Revenue bound (best posted price on the grid, SPEC §4): B = {bound:.4f} at price "
            f"{s['bound_price']:.2f}. A tau-regularised equilibrium may exceed B by at most "
            f"tau × (flow entropy) ≤ tau H log M = {s['max_entropy_slack']:.4f} (see `auctions/bound.py`).",
        ]
    lines += ["", "## Results", ""]
    head = "| method | revenue (mean ± std) |"
    sep = "|---|---|"
    if s["objective"] != "revenue":
        head += f" {s['objective']} objective |"
        sep += "---|"
    if bound is not None:
        head += " share of bound | entropy slack |"
        sep += "---|---|"
    head += " exploitability | design steps | evaluations | time [s] | s/step |"
    sep += "---|---|---|---|---|"
    lines += [head, sep]
    for m in result.runs:
        row = f"| {LABELS[m]} | {s['revenue'][m]:.4f} ± {s['revenue_std'][m]:.4f} |"
        if s["objective"] != "revenue":
            row += f" {s['objective_value'][m]:.4f} |"
        if bound is not None:
            row += f" {100 * s['share_of_bound'][m]:.1f}% | {s['entropy_slack'][m]:.4f} |"
        row += (
            f" {s['exploitability'][m]:.2e} | {s['design_steps'][m]} | {s['evaluations'][m]} |"
            f" {s['seconds'][m]:.1f} | {s['seconds_per_step'][m]:.3f} |"
        )
        lines.append(row)
    row = f"| first price (no design) | {s['first_price']:.4f} |"
    if s["objective"] != "revenue":
        row += " — |"
    if bound is not None:
        row += f" {100 * s['share_of_bound']['first-price']:.1f}% | — |"
    row += f" {s['first_price_exploitability']:.2e} | — | — | — | — |"
    lines.append(row)
    if s["initial_revenue"] is not None:
        lines += ["", f"Revenue of the initial (untrained) mechanism: {s['initial_revenue']:.4f}."]
    lines += [
        "",
        f"Machine: {s['machine_line']}; times are wall clock on a shared machine.",
        "",
        "## Figures",
        "",
    ]
    captions = {
        "revenue_over_steps.png": "Objective G_T over objective evaluations per method (mean, min–max band over seeds).",
        "exploitability.png": "Exploitability of the T-step equilibrium at every design step.",
        "bid_distribution.png": "Equilibrium active bid distribution per round, before and after design (seed 0).",
        "allocation.png": "Mass allocated per round (seed 0).",
        "payment_rule.png": "Designed payment rule per round (seed 0).",
    }
    for f in figs:
        lines += [f"![{f}]({f})", "", captions.get(f, ""), ""]
    return "\n".join(lines)
