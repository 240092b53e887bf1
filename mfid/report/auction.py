"""The revenue report of an auction design study (``mfid design auction``): ``report.md``,
``report.json``, five figures and the saved mechanisms, written from an
:class:`auctions.study.RevenueStudy` (reading only: no equilibrium is solved here).

Every number the report calls a result is taken at an equilibrium solved to the study's
exploitability tolerance and printed beside its exploitability; the surrogate (revenue after
``T`` OMD steps from the uniform policy, which the optimiser follows) is shown only next to it,
so an optimiser that profits from OMD's transient shows up as a gap.

Example::

    from auctions.study import run_revenue_design
    from mfid.report.auction import write_report
    study = run_revenue_design("A1", methods=("amid",), steps=4, width=8, num_values=10,
                               num_bids=10, iters=20, val_iters=2000)
    write_report(study, "/tmp/a1", command="mfid design auction --setting A1 ...")
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from auctions.bound import max_entropy_slack
from auctions.saved import save_mechanism
from auctions.study import LABELS, RevenueStudy
from mfid.report.common import atomic_dir, machine_line, new_figure, stamp, write_json, write_text

__all__ = ["NO_BOUND", "mechanism_table", "summary", "write_report"]

NO_BOUND = {
    "A2": "values drift between rounds, so the static posted-price bound does not apply",
    "A3": "bidders re-enter after winning and the markets are a random mixture",
    "A4": "bidders are risk-averse (the bound is for risk-neutral bidders)",
    "A5": "bidders are risk-seeking (the bound is for risk-neutral bidders)",
    "A6": "bidders discount later rounds (hyperbolic), so the static bound does not apply",
    "A7": "bidders regenerate and values drift between rounds",
    "A8": "bidders regenerate and values drift between rounds",
    "A10": "winners regenerate (re-enter with a fresh value), so the static bound does not apply",
}
_MANY_ROUNDS = 8


def _per_market_mean(x):
    x = np.asarray(x)
    return x if x.ndim <= 2 else x.mean(axis=1)


def mechanism_table(eq, meta: dict) -> list[dict]:
    """Per round: offered and sold mass, remaining supply, the lowest winning bid, the winners'
    mean payment as a fraction of their bid, and the round's revenue (means over markets for a
    mixture)."""
    info = eq.info
    H, M = meta["horizon"], meta["num_bids"]
    bids = np.arange(M) / M
    nu, pw, pay = (_per_market_mean(getattr(info, k)) for k in ("nu", "p_win", "payment"))
    rows = []
    for h in range(H):
        won = nu[h] * pw[h]
        wins = np.nonzero(pw[h] > 1e-9)[0]
        paid = float(won @ pay[h])
        bid_mass = float(won @ bids)
        rows.append({
            "round": h,
            "offered": float(np.mean(info.alpha[h])),
            "sold": float(np.mean(info.sold[h])),
            "remaining_before": float(np.mean(info.remaining[h])),
            "lowest_winning_bid": float(bids[wins[0]]) if len(wins) else None,
            "payment_over_bid": paid / bid_mass if bid_mass > 0 else None,
            "revenue": float(np.mean(info.revenue[h])),
        })  # fmt: skip
    return rows


def _method_summary(result: RevenueStudy, m: str, bound) -> dict:
    rs = result.runs[m]
    rev = np.array([r.equilibrium.revenue for r in rs])
    fp = result.first_price.revenue
    out = {
        "label": LABELS[m],
        "seeds": len(rs),
        "revenue_mean": float(rev.mean()),
        "revenue_std": float(rev.std(ddof=1)) if len(rs) > 1 else None,
        "objective_mean": float(np.mean([r.equilibrium.objective for r in rs])),
        "exploitability_max": float(max(r.equilibrium.exploitability for r in rs)),
        "converged": all(r.equilibrium.status == "successful" for r in rs),
        "design_status": sorted({r.status for r in rs}),
        "gain_over_first_price": float(rev.mean() / fp - 1.0) if fp > 0 else None,
        "share_of_bound": float(rev.mean() / bound) if bound else None,
        "steps": rs[0].steps,
        "evaluations": rs[0].evaluations,
        "seconds": float(np.mean([r.seconds for r in rs])),
        "seconds_per_step": float(np.mean([r.seconds_per_step for r in rs])),
        "compile_seconds": float(np.mean([r.compile_seconds for r in rs])),
        "per_seed": [],
    }
    for r in rs:
        eq = r.equilibrium
        out["per_seed"].append({
            "seed": r.seed, "revenue": eq.revenue, "objective": eq.objective,
            "exploitability": eq.exploitability, "status": eq.status,
            "omd_iterations": eq.iterations, "selected": r.selected,
            "selected_step": r.selected_step, "surrogate": r.selected_surrogate,
            "surrogate_minus_converged": r.selected_surrogate - eq.objective,
            "surrogate_above_bound": bool(bound and result.meta["objective"] == "revenue"
                                          and r.selected_surrogate > bound),
            "candidates": list(r.candidates), "design_status": r.status,
        })  # fmt: skip
    return out


def summary(result: RevenueStudy) -> dict:
    """The report's numbers (the content of ``report.json``, without the stamp)."""
    meta = result.meta
    bound = meta.get("bound") if meta.get("bound_applies") else None
    methods = {m: _method_summary(result, m, bound) for m in result.runs}
    fp, init = result.first_price, result.initial
    all_conv = fp.status == "successful" and all(v["converged"] for v in methods.values())
    design_ok = all(v["design_status"] == ["successful"] for v in methods.values())
    s = {
        "setting": result.setting,
        "description": meta["description"],
        "mechanism": meta["mechanism"],
        "objective": meta["objective"],
        "units": "revenue per capita (per unit mass of bidders); values and bids on [0, 1)",
        "config": result.config,
        "first_price": {"revenue": fp.revenue, "objective": fp.objective,
                        "exploitability": fp.exploitability, "status": fp.status,
                        "omd_iterations": fp.iterations},
        "initial": {"revenue": init.revenue, "objective": init.objective,
                    "exploitability": init.exploitability, "status": init.status},
        "bound": bound,
        "bound_price": meta.get("bound_price") if bound else None,
        "bound_reason": None if bound else NO_BOUND.get(result.setting),
        "max_entropy_slack": (max_entropy_slack(result.config["tau"], meta["horizon"],
                                                meta["num_bids"]) if bound else None),
        "methods": methods,
        "status": "successful" if (all_conv and design_ok) else "flagged",
        "seconds": result.seconds,
        # flat views by method (sweeps and tables read these)
        "revenue": {m: v["revenue_mean"] for m, v in methods.items()},
        "revenue_std": {m: v["revenue_std"] for m, v in methods.items()},
        "exploitability": {m: v["exploitability_max"] for m, v in methods.items()},
        "share_of_bound": {m: v["share_of_bound"] for m, v in methods.items()} if bound else {},
        "seconds_per_method": {m: v["seconds"] for m, v in methods.items()},
    }  # fmt: skip
    best = max(methods, key=lambda m: methods[m]["objective_mean"])
    s["best_method"] = best
    s["mechanism_table"] = {"method": best, "seed": 0,
                            "rounds": mechanism_table(result.runs[best][0].equilibrium, meta)}
    return s


def _fmt(x, nd=4):
    return "—" if x is None else f"{x:.{nd}f}"


def _rev_cell(v) -> str:
    if v["seeds"] == 1:
        return f"{v['revenue_mean']:.4f} (1 seed)"
    per = ", ".join(f"{p['revenue']:.4f}" for p in v["per_seed"])
    return f"{v['revenue_mean']:.4f} ± {v['revenue_std']:.4f} ({per})"


def _words(s: dict) -> str:
    best = s["best_method"]
    v = s["methods"][best]
    rounds = s["mechanism_table"]["rounds"]
    H = len(rounds)
    cap = s["config"].get("alpha_max")
    fp = s["first_price"]["revenue"]
    sold = sum(r["sold"] for r in rounds)
    per_round = ", ".join(f"{r['sold']:.3f}" for r in rounds[:8]) + (" …" if H > 8 else "")
    thresholds = [r["lowest_winning_bid"] for r in rounds if r["lowest_winning_bid"] is not None]
    ratios = [r["payment_over_bid"] for r in rounds if r["payment_over_bid"] is not None]
    conv = "converged" if v["converged"] else "NOT converged to the tolerance (flagged)"
    text = (
        f"We designed a {s['mechanism']} for setting {s['setting']} ({s['description']}), "
        f"maximising {s['objective']}. The best method, {v['label']}, earns "
        f"{v['revenue_mean']:.4f} per capita at its equilibrium "
        f"(exploitability at most {v['exploitability_max']:.1e}, {conv}; {v['seeds']} "
        f"seed{'s' if v['seeds'] > 1 else ''})"
    )
    if s["bound"]:
        text += f", {100 * v['share_of_bound']:.1f} % of the posted-price revenue bound {s['bound']:.4f}"
    if fp > 0:
        text += f", {100 * (v['revenue_mean'] / fp - 1):+.1f} % against first price ({fp:.4f})"
    text += (
        f". Its mechanism (seed 0) sells {sold:.3f} of the population over {H} rounds "
        f"(per round {per_round}"
        + (f"; capacity {cap}" if cap else "")
        + ")"
    )
    if thresholds:
        text += (f"; the lowest winning bid ranges from {min(thresholds):.2f} to "
                 f"{max(thresholds):.2f}")  # fmt: skip
    if ratios:
        text += f", and winners pay on average {np.mean(ratios):.2f} × their bid"
    return text + "."


def _markdown(s: dict, figs: list[str]) -> str:
    c = s["config"]
    bound = s["bound"]
    lines = [f"# Revenue design — setting {s['setting']}", "", _words(s), ""]
    lines += [
        f"Regenerate with: `{s['command']}`", "",
        "## How to read it", "",
        f"- Units: {s['units']}.",
        f"- Every revenue below is taken at the mechanism's equilibrium, solved by OMD until its "
        f"exploitability is at most {c['val_tol']:g} (at most {c['val_iters']} OMD steps; "
        f"entropy temperature tau = {c['tau']}, step eta = {c['eta']}). The exploitability is "
        "printed beside it.",
        f"- The optimiser follows a *surrogate*: the revenue after T = {c['iters']} OMD steps from "
        "the uniform policy. It is used for gradients only; the tables show it next to the "
        "converged value, so a method that profits from OMD's transient shows up as a gap.",
        f"- Every method gets the same budget of {c['steps']} objective evaluations per seed (an "
        "exact gradient step counts 1, a zeroth-order step 3). Reported mechanism: "
        + {"converged": f"for every method, the best converged value among the last iterate and "
                        f"the {c['keep']} best-surrogate iterates.",
           "surrogate": "the best surrogate iterate of every run.",
           "last": "the last iterate of every run."}[c["select"]],
        f"- Optimiser: Adam (SGD for 0-SGD) with a warm-up/cosine schedule peaking at "
        f"{c['learning_rate']} (AMID) and {c['zo_learning_rate']} (zeroth order); two-point "
        f"radius u = {c['u']}; ANNEAL radius {c['sigma']}. Design steps compute in "
        f"{c['precision']}; every reported number in float64.",
    ]  # fmt: skip
    if bound:
        lines.append(
            f"- Revenue bound: the best posted price on the grid, B = {bound:.4f} at price "
            f"{s['bound_price']:.2f} (no mechanism beats it for risk-neutral single-minded "
            f"bidders). An entropy-regularised equilibrium may exceed it by at most tau × the "
            f"flow's entropy <= tau H log M = {s['max_entropy_slack']:.4f}."
        )
    else:
        lines.append(f"- No revenue bound is shown: {s['bound_reason'] or 'none applies'}.")
    lines += ["", "## Results", ""]
    obj = s["objective"]
    head = "| method | revenue per capita | exploitability | converged | surrogate of the chosen |"
    sep = "|---|---|---|---|---|"
    if obj != "revenue":
        head += f" {obj} objective |"
        sep += "---|"
    head += (" share of bound |" if bound else "") + " vs first price | steps | s/step | compile s |"
    sep += ("---|" if bound else "") + "---|---|---|---|"
    lines += [head, sep]
    for m, v in s["methods"].items():
        sur = np.mean([p["surrogate"] for p in v["per_seed"]])
        gap = np.mean([p["surrogate_minus_converged"] for p in v["per_seed"]])
        row = (f"| {v['label']} | {_rev_cell(v)} | {v['exploitability_max']:.1e} | "
               f"{'yes' if v['converged'] else '**no**'} | {sur:.4f} (gap {gap:+.4f}) |")  # fmt: skip
        if obj != "revenue":
            row += f" {v['objective_mean']:.4f} |"
        if bound:
            row += f" {100 * v['share_of_bound']:.1f} % |"
        g = v["gain_over_first_price"]
        row += (f" {'—' if g is None else f'{100 * g:+.1f} %'} | {v['steps']} | "
                f"{v['seconds_per_step']:.3f} | {v['compile_seconds']:.1f} |")  # fmt: skip
        lines.append(row)
    fp = s["first_price"]
    row = (f"| first price (no design) | {fp['revenue']:.4f} | {fp['exploitability']:.1e} | "
           f"{'yes' if fp['status'] == 'successful' else '**no**'} | — |")  # fmt: skip
    if obj != "revenue":
        row += f" {fp['objective']:.4f} |"
    if bound:
        row += f" {100 * fp['revenue'] / bound:.1f} % |"
    row += " — | — | — | — |"
    lines.append(row)
    lines += ["", f"The untrained mechanism earns {s['initial']['revenue']:.4f} "
                  f"(exploitability {s['initial']['exploitability']:.1e})."]  # fmt: skip
    flags = [
        f"{v['label']} seed {p['seed']}: surrogate {p['surrogate']:.4f} above the bound"
        for v in s["methods"].values() for p in v["per_seed"] if p["surrogate_above_bound"]
    ]
    if flags:
        lines += ["", "**Surrogate above the bound** (the optimiser exploited OMD's transient; "
                      "the converged value is what counts): " + "; ".join(flags) + "."]  # fmt: skip
    if s["status"] != "successful":
        lines += ["", "**Flagged:** not every equilibrium reached the tolerance, or a design run "
                      "stopped early; see `report.json` (per-seed `status`)."]  # fmt: skip
    t = s["mechanism_table"]
    lines += ["", f"## The designed mechanism ({s['methods'][t['method']]['label']}, seed 0)", "",
              "| round | offered | sold | remaining before | lowest winning bid | payment / bid "
              "| revenue |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in t["rounds"]:
        lines.append(
            f"| {r['round']} | {r['offered']:.4f} | {r['sold']:.4f} | {r['remaining_before']:.4f} "
            f"| {_fmt(r['lowest_winning_bid'], 2)} | {_fmt(r['payment_over_bid'], 3)} | "
            f"{r['revenue']:.4f} |"
        )
    lines += ["", "Saved mechanisms (parameters, settings and per-round tables): "
                  "`mechanisms/<method>/`; re-solve one with "
                  "`mfid evaluate --mechanism <dir>/mechanisms/<method>`.", ""]  # fmt: skip
    lines += [f"Machine: {s['machine_line']}; wall-clock times on a shared machine, "
              f"compilation excluded from s/step. mfid {s['versions'].get('mfid')}, "
              f"jax {s['versions'].get('jax')}, {s['date']}.", "", "## Figures", ""]  # fmt: skip
    captions = {
        "revenue_over_steps.png": "Surrogate revenue over objective evaluations per method "
        "(mean, min–max band over seeds); markers: the chosen mechanism's surrogate and its "
        "converged value.",
        "exploitability.png": "Exploitability of the T-step surrogate equilibrium at every design "
        "step (it is not the reported equilibrium's, which is solved to the tolerance).",
        "bid_distribution.png": "Equilibrium bid distribution of the active bidders per round: "
        "untrained, designed and first price.",
        "allocation.png": "Items sold per round (share of the population), remaining supply and "
        "capacity.",
        "payment_rule.png": "Designed payment per winning bid and round; the lowest winning bid "
        "per round; the posted-price payment where a bound applies.",
    }
    for f in figs:
        lines += [f"![{f}]({f})", "", captions.get(f, ""), ""]
    return "\n".join(lines)


def _rounds_grid(fig, H):
    n = min(H, _MANY_ROUNDS)
    return fig.subplots(1, n, sharey=True, squeeze=False)[0]


def _figures(result: RevenueStudy, s: dict, out: Path) -> list[str]:
    runs, meta = result.runs, result.meta
    setting = result.setting
    bound = s["bound"]
    names = []
    H, M = meta["horizon"], meta["num_bids"]
    bids = np.arange(M) / M
    # 1. surrogate over evaluations, chosen/converged marked; 2. exploitability
    for key, fname, ylabel in (
        ("objective_trace", "revenue_over_steps.png", f"surrogate {meta['objective']} (per capita)"),
        ("exploitability_trace", "exploitability.png", "exploitability of the surrogate"),
    ):
        fig = new_figure(figsize=(7, 4.2))
        ax = fig.subplots()
        for i, (m, rs) in enumerate(runs.items()):
            color = f"C{i}"
            n = min(len(getattr(r, key)) for r in rs)
            ys = np.stack([getattr(r, key)[:n] for r in rs])
            xs = rs[0].evaluation_trace[:n]
            ax.plot(xs, ys.mean(0), color=color, label=LABELS[m])
            if len(rs) > 1:
                ax.fill_between(xs, ys.min(0), ys.max(0), color=color, alpha=0.2)
            if key == "objective_trace":
                for r in rs:
                    k = r.selected_step
                    if 0 <= k < len(r.evaluation_trace):
                        x = r.evaluation_trace[k]
                        ax.plot([x], [r.selected_surrogate], "o", color=color, mfc="none")
                        ax.plot([x], [r.equilibrium.objective], "*", color=color, ms=9)
        if key == "objective_trace":
            ax.axhline(result.first_price.objective, color="k", ls=":", label="first price")
            if bound and meta["objective"] == "revenue":
                ax.axhline(bound, color="r", ls="--", label="posted-price bound")
            ax.plot([], [], "ko", mfc="none", label="chosen: surrogate")
            ax.plot([], [], "k*", label="chosen: converged")
        else:
            ax.set_yscale("log")
        ax.set(xlabel="objective evaluations", ylabel=ylabel,
               title=f"{setting}: {'design progress' if key == 'objective_trace' else 'surrogate exploitability'}")  # fmt: skip
        ax.legend(fontsize=8)
        fig.savefig(out / fname, dpi=110)
        names.append(fname)
    best = s["best_method"]
    before, after, first = result.initial, runs[best][0].equilibrium, result.first_price
    nu = {k: _per_market_mean(e.info.nu) for k, e in
          (("untrained", before), (f"designed ({LABELS[best]})", after), ("first price", first))}  # fmt: skip
    # 3. bid distribution: small multiples for short horizons, heat maps for long ones
    if H <= _MANY_ROUNDS:
        fig = new_figure(figsize=(2.8 * H + 1, 3.2))
        axes = _rounds_grid(fig, H)
        for h in range(H):
            for (lab, x), st in zip(nu.items(), ("-", "-", ":"), strict=True):
                axes[h].plot(bids, x[h], st, label=lab)
            axes[h].set(title=f"round {h}", xlabel="bid")
        axes[0].set_ylabel("mass of active bidders")
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{setting}: equilibrium bids per round")
    else:
        fig = new_figure(figsize=(12, 3.8))
        axes = fig.subplots(1, 3, sharey=True)
        vmax = max(float(x.max()) for x in nu.values())
        for ax, (lab, x) in zip(axes, nu.items(), strict=True):
            im = ax.imshow(x.T, origin="lower", aspect="auto", extent=(-0.5, H - 0.5, 0, 1),
                           vmin=0, vmax=vmax, cmap="viridis")  # fmt: skip
            ax.set(title=lab, xlabel="round")
        axes[0].set_ylabel("bid")
        fig.colorbar(im, ax=axes, label="mass of active bidders")
        fig.suptitle(f"{setting}: equilibrium bids per round")
    fig.savefig(out / "bid_distribution.png", dpi=110)
    names.append("bid_distribution.png")
    # 4. allocation, remaining supply and capacity
    fig = new_figure(figsize=(7, 4))
    ax = fig.subplots()
    hs = np.arange(H)
    width = 0.4
    for off, (lab, eq) in zip((-width / 2, width / 2), (("designed", after), ("first price", first)),
                              strict=True):  # fmt: skip
        sold = _per_market_mean(eq.info.sold).reshape(H, -1).mean(1)
        ax.bar(hs + off, sold, width, label=f"{lab}: sold")
    rem = _per_market_mean(after.info.remaining).reshape(H, -1).mean(1)
    ax.plot(hs, rem, "k.-", label="designed: remaining supply before the round")
    cap = float(np.mean(after.info.remaining[0]))
    ax.axhline(cap, color="r", ls="--", lw=0.8, label=f"capacity {cap:.2f}")
    ax.set(xlabel="round", ylabel="share of the population", title=f"{setting}: items per round")
    if H <= 20:
        ax.set_xticks(hs)
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    fig.savefig(out / "allocation.png", dpi=110)
    names.append("allocation.png")
    # 5. payment rule with the winning threshold and the posted-price comparison
    pay = _per_market_mean(after.info.payment)
    pw = _per_market_mean(after.info.p_win)
    if H <= _MANY_ROUNDS:
        fig = new_figure(figsize=(2.8 * H + 1, 3.2))
        axes = _rounds_grid(fig, H)
        for h in range(H):
            ax = axes[h]
            ax.plot(bids, pay[h], label="designed payment")
            ax.plot(bids, bids, "k:", lw=0.8, label="bid (first price pays it)")
            wins = np.nonzero(pw[h] > 1e-9)[0]
            if len(wins):
                ax.axvline(bids[wins[0]], color="g", ls="--", lw=0.8, label="lowest winning bid")
            if bound:
                p = s["bound_price"]
                ax.plot(bids, np.where(bids >= p, p, np.nan), "r-", lw=0.8, label=f"posted price {p:.2f}")
            ax.set(title=f"round {h}", xlabel="bid")
        axes[0].set_ylabel("payment of a winner")
        axes[0].legend(fontsize=7)
    else:
        fig = new_figure(figsize=(8, 4))
        ax = fig.subplots()
        im = ax.imshow(np.where(pw > 1e-9, pay, np.nan).T, origin="lower", aspect="auto",
                       extent=(-0.5, H - 0.5, 0, 1), cmap="magma")  # fmt: skip
        fig.colorbar(im, ax=ax, label="payment of a winner (blank: bid does not win)")
        ax.set(xlabel="round", ylabel="bid")
    fig.suptitle(f"{setting}: designed payment rule")
    fig.savefig(out / "payment_rule.png", dpi=110)
    names.append("payment_rule.png")
    return names


def _write_mechanisms(result: RevenueStudy, root: Path) -> dict:
    """``mechanisms/<method>/``: parameters, settings and the per-round table of seed 0's
    chosen mechanism of every method."""
    c, meta = result.config, result.meta
    saved = {}
    for m, rs in result.runs.items():
        r = rs[0]
        d = root / "mechanisms" / m
        make_kwargs = {"num_values": c["num_values"], "num_bids": c["num_bids"],
                       "width": c["width"], "seed": 1000 + r.seed}  # fmt: skip
        if result.setting == "A3":
            make_kwargs["draws"] = c["draws"]
        eq = r.equilibrium
        save_mechanism(
            d, setting=result.setting, make_kwargs=make_kwargs, theta=r.theta, method=m,
            seed=r.seed,
            equilibrium={"tau": c["tau"], "eta": c["eta"], "tol": c["val_tol"],
                         "max_iters": c["val_iters"]},
            extra={"reported": {"revenue": eq.revenue, "objective": eq.objective,
                                "exploitability": eq.exploitability, "status": eq.status}},
        )  # fmt: skip
        write_table(d, eq, meta)
        saved[m] = str(d.relative_to(root))
    return saved


def write_table(d: Path, eq, meta: dict) -> None:
    """``table.csv`` (one row per round and bid level) and ``equilibrium.npz`` (the per-round
    arrays and the flow) of an equilibrium."""
    info = eq.info
    nu, pw, pay = (_per_market_mean(getattr(info, k)) for k in ("nu", "p_win", "payment"))
    H, M = meta["horizon"], meta["num_bids"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["round", "bid", "active_bid_mass", "win_probability", "payment",
                "offered", "sold", "remaining_before"])  # fmt: skip
    for h in range(H):
        for a in range(M):
            w.writerow([h, f"{a / M:.6g}", f"{nu[h, a]:.10g}", f"{pw[h, a]:.10g}",
                        f"{pay[h, a]:.10g}", f"{float(np.mean(info.alpha[h])):.10g}",
                        f"{float(np.mean(info.sold[h])):.10g}",
                        f"{float(np.mean(info.remaining[h])):.10g}"])  # fmt: skip
    write_text(d / "table.csv", buf.getvalue())
    np.savez(d / "equilibrium.npz", flow=eq.flow, nu=info.nu, p_win=info.p_win,
             payment=info.payment, alpha=info.alpha, sold=info.sold, remaining=info.remaining)


def write_report(result: RevenueStudy, out, command: str) -> dict:
    """Write ``report.md``, ``report.json``, the figures and ``mechanisms/`` into ``out``
    (atomically: the directory is either the complete new report or left as it was); return
    the report's JSON content."""
    s = summary(result)
    s.update(stamp(command))
    s["machine_line"] = machine_line()
    with atomic_dir(out) as tmp:
        s["figures"] = _figures(result, s, tmp)
        s["mechanisms"] = _write_mechanisms(result, tmp)
        write_json(tmp / "report.json", s)
        write_text(tmp / "report.md", _markdown(s, s["figures"]))
    return s
