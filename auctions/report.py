"""Revenue design runs and their reports (``mfid design auction``).

For a setting (:mod:`auctions.settings`) :func:`run_revenue_design` runs, for every method and
seed, the design loop of :mod:`solvers.design` on the setting's mechanism (the seed draws the
network initialisation and the optimiser's random numbers), with the same number of objective
evaluations per method: an exact gradient step counts one evaluation, a zeroth-order step
``evaluations_per_step(method)`` (3 for 0-SGD/0-ADAM with one direction and for ANNEAL), so a
zeroth-order method gets ``steps // 3`` steps. Every final mechanism is evaluated with
``val_iters`` OMD steps from the uniform policy; the report gives its revenue (mean ± std over
seeds), share of the revenue bound where one applies (:func:`auctions.bound.posted_price_bound`,
with the entropy slack of :mod:`auctions.bound`), the exploitability of the final equilibrium,
wall-clock time, and the first-price baseline. :func:`write_report` writes ``report.md``,
``report.json`` and the figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from auctions.bound import entropy_slack, max_entropy_slack
from auctions.mechanisms import FirstPrice
from auctions.mixture import MarketMixture
from auctions.objectives import auction_rounds, make_objective, revenue
from auctions.settings import make
from solvers.design import design
from solvers.omd import solve_omd
from solvers.zeroth_order import evaluations_per_step

__all__ = [
    "LEARNING_RATE",
    "METHODS",
    "design_optimizer",
    "first_price_game",
    "run_revenue_design",
    "write_report",
]

METHODS = ("amid", "zeroth-adam", "zeroth-sgd", "anneal")
LEARNING_RATE = 2e-3  # peak of the warm-up/cosine schedule (results/A1/NOTES.md: the sweep)
LABELS = {"amid": "AMID", "zeroth-adam": "0-ADAM", "zeroth-sgd": "0-SGD", "anneal": "ANNEAL"}


def first_price_game(game):
    """The same market(s) with the first-price mechanism (``alpha_h = r_h / (H - h)``)."""
    if isinstance(game, MarketMixture):
        D = game.num_markets
        fp = FirstPrice(game.num_actions, game.horizon)
        markets = [game.market(d).replace(mechanism=fp) for d in range(D)]
        return MarketMixture.stack(markets)
    return game.replace(mechanism=FirstPrice(game.num_actions, game.horizon))


def design_optimizer(method: str, peak: float, steps: int):
    """Adam (SGD for 0-SGD) with a warm-up/cosine schedule: ``peak / 10`` -> ``peak`` over the
    first eighth of the steps, cosine decay back to ``peak / 10`` at the end (the same schedule
    for every gradient-based method)."""
    sched = optax.warmup_cosine_decay_schedule(
        init_value=peak / 10,
        peak_value=peak,
        warmup_steps=max(1, steps // 8),
        decay_steps=max(2, steps),
        end_value=peak / 10,
    )
    return optax.sgd(sched) if method == "zeroth-sgd" else optax.adam(sched)


def _equilibrium(game, theta, tau, eta, iters):
    res = solve_omd(game, theta, tau=tau, eta=eta, iters=iters)
    info = jax.jit(auction_rounds)(game, theta, res.flow)
    return {
        "revenue": float(revenue(game, theta, res.flow)),
        "exploitability": float(res.exploitability),
        "entropy_slack": float(entropy_slack(res.flow, tau)),
        "info": jax.tree.map(np.asarray, info),
        "flow": np.asarray(res.flow),
    }


def run_revenue_design(
    setting: str,
    *,
    methods=METHODS,
    steps: int = 100,
    seeds: int = 1,
    tau: float = 1e-3,
    eta: float = 10.0,
    iters: int = 400,
    val_iters: int = 500,
    learning_rate: float = LEARNING_RATE,
    zo_learning_rate: float | None = None,
    width: int = 256,
    draws: int = 4,
    warm_start: bool = False,
    keep_best: bool = True,
    precision: str | None = "float32",
    progress: bool | None = None,
) -> dict:
    """Run the comparison; returns a dict with everything :func:`write_report` needs.

    ``warm_start=False`` (default) evaluates every surrogate ``G_T`` from the uniform policy,
    exactly like the final ``T_val`` evaluation; warm-starting OMD from the previous step's
    logits is faster to converge but can track a different equilibrium of the same mechanism
    than the one reached from the uniform policy (the mechanism reacts to the bid distribution),
    which makes the design trace and the final evaluation disagree. ``keep_best=True`` (default)
    keeps, for every method alike, the mechanism with the best surrogate ``G_T`` seen during its
    run (ANNEAL does so by construction; Adam can step over a sharp drop of the equilibrium
    revenue late in a run). ``precision`` is the compute precision of the design steps
    (``solvers.design.design``; ``None``: the default float dtype); the first-price baseline and
    every reported number are evaluated in the default float dtype. Time per step is the median
    wall time between consecutive steps (compilation excluded)."""
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {m!r}")
    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(seeds, int) or seeds <= 0:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    base = make(setting, width=width, draws=draws)
    meta = dict(base.metadata)
    fp_game = first_price_game(base.game)
    t0 = time.perf_counter()
    fp = _equilibrium(fp_game, {}, tau, eta, val_iters)
    fp["seconds"] = time.perf_counter() - t0
    runs: dict[str, list] = {m: [] for m in methods}
    for seed in range(seeds):
        st = make(setting, width=width, draws=draws, key=jax.random.key(1000 + seed))
        objective = make_objective(st.game, st.objective, st.mix_weight)
        before = _equilibrium(st.game, st.theta0, tau, eta, val_iters) if seed == 0 else None
        for m in methods:
            n = steps if m == "amid" else max(1, steps // evaluations_per_step(m))
            lr = learning_rate if (m == "amid" or zo_learning_rate is None) else zo_learning_rate
            optimizer = None if m == "anneal" else design_optimizer(m, lr, n)
            stamps: list[float] = []
            t = time.perf_counter()
            res = design(
                st.game,
                objective,
                st.theta0,
                maximize=True,
                method=m,
                steps=n,
                tau=tau,
                eta=eta,
                iters=iters,
                val_iters=val_iters,
                learning_rate=lr,
                optimizer=optimizer,
                key=seed,
                warm_start=warm_start,
                keep_best=keep_best,
                precision=precision,
                progress=progress,
                callback=lambda k, metrics, stamps=stamps: stamps.append(time.perf_counter()),
            )
            seconds = time.perf_counter() - t
            per_step = float(np.median(np.diff(stamps))) if len(stamps) > 2 else seconds / n
            after = _equilibrium(st.game, res.theta, tau, eta, val_iters)
            runs[m].append(
                {
                    "seed": seed,
                    "steps": n,
                    "evaluations": res.total_evaluations,
                    "objective_trace": np.asarray(res.objective),
                    "evaluation_trace": np.asarray(res.evaluations),
                    "exploitability_trace": np.asarray(res.exploitability),
                    "final_objective": float(res.final_value),
                    "seconds": seconds,
                    "seconds_per_step": per_step,
                    "status": res.status,
                    "after": after,
                    "before": before,
                    "theta": res.theta,
                    "mechanism": st.mechanism,
                    "game": st.game,
                }
            )
    return {
        "setting": setting,
        "meta": meta,
        "first_price": fp,
        "runs": runs,
        "config": {
            "steps": steps,
            "seeds": seeds,
            "tau": tau,
            "eta": eta,
            "iters": iters,
            "val_iters": val_iters,
            "learning_rate": learning_rate,
            "zo_learning_rate": zo_learning_rate if zo_learning_rate is not None else learning_rate,
            "width": width,
            "draws": draws if setting == "A3" else None,
            "warm_start": warm_start,
            "keep_best": keep_best,
            "precision": precision or jnp.dtype(jnp.result_type(float)).name,
        },
    }


def _summary(result: dict) -> dict:
    meta, runs = result["meta"], result["runs"]
    bound = meta.get("bound") if meta.get("bound_applies") else None
    out = {
        "setting": result["setting"],
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
        "first_price": result["first_price"]["revenue"],
        "first_price_exploitability": result["first_price"]["exploitability"],
        "initial_revenue": None,
        "bound": bound,
        "bound_price": meta.get("bound_price") if bound is not None else None,
        "max_entropy_slack": None,
        "steps": result["config"]["steps"],
        **{k: v for k, v in result["config"].items() if k != "steps"},
    }
    for m, rs in runs.items():
        rev = np.array([r["after"]["revenue"] for r in rs])
        out["revenue"][m] = float(rev.mean())
        out["revenue_std"][m] = float(rev.std())
        out["objective_value"][m] = float(np.mean([r["final_objective"] for r in rs]))
        out["exploitability"][m] = float(np.mean([r["after"]["exploitability"] for r in rs]))
        out["entropy_slack"][m] = float(np.mean([r["after"]["entropy_slack"] for r in rs]))
        out["seconds"][m] = float(np.mean([r["seconds"] for r in rs]))
        sps = float(np.mean([r["seconds_per_step"] for r in rs]))
        out["seconds_per_step"][m] = sps
        out["steps_per_second"][m] = 1.0 / sps
        out["design_steps"][m] = rs[0]["steps"]
        out["evaluations"][m] = rs[0]["evaluations"]
        if bound:
            out["share_of_bound"][m] = float(rev.mean() / bound)
        if rs[0]["before"] is not None and out["initial_revenue"] is None:
            out["initial_revenue"] = rs[0]["before"]["revenue"]
    if bound:
        out["share_of_bound"]["first-price"] = out["first_price"] / bound
        H, M = meta["horizon"], meta["num_bids"]
        out["max_entropy_slack"] = max_entropy_slack(result["config"]["tau"], H, M)
    return out


def _figures(result: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    runs, meta = result["runs"], result["meta"]
    bound = meta.get("bound") if meta.get("bound_applies") else None
    # 1. objective over evaluations per method; 5. exploitability trace
    for key, fname, ylabel in (
        ("objective_trace", "revenue_over_steps.png", f"{meta['objective']} G_T (T-step)"),
        ("exploitability_trace", "exploitability.png", "exploitability of softmax zeta_T"),
    ):
        fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
        for m, rs in runs.items():
            n = min(len(r[key]) for r in rs)
            ys = np.stack([r[key][:n] for r in rs])
            xs = rs[0]["evaluation_trace"][:n]
            ax.plot(xs, ys.mean(0), label=LABELS[m])
            if len(rs) > 1:
                ax.fill_between(xs, ys.min(0), ys.max(0), alpha=0.2)
        if key == "objective_trace":
            ax.axhline(result["first_price"]["revenue"], color="k", ls=":", label="first price")
            if bound and meta["objective"] == "revenue":
                ax.axhline(bound, color="r", ls="--", label="posted-price bound")
        else:
            ax.set_yscale("log")
        ax.set(xlabel="objective evaluations", ylabel=ylabel, title=f"{result['setting']}")
        ax.legend()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        names.append(fname)
    best_method = "amid" if "amid" in runs else next(iter(runs))
    r0 = runs[best_method][0]
    before, after = r0["before"], r0["after"]
    H = meta["horizon"]
    M = meta["num_bids"]
    bids = np.arange(M) / M

    def per_market(x):
        return x if x.ndim == 2 else x.mean(1)  # mixtures: average over markets

    # 2. bid distribution per round before / after
    fig, axes = plt.subplots(1, H, figsize=(3.2 * H, 3.2), sharey=True, constrained_layout=True)
    axes = np.atleast_1d(axes)
    nb = per_market(
        before["info"].nu.reshape(H, -1, M) if before["info"].nu.ndim == 3 else before["info"].nu
    )
    na = per_market(
        after["info"].nu.reshape(H, -1, M) if after["info"].nu.ndim == 3 else after["info"].nu
    )
    nf = result["first_price"]["info"].nu
    nf = nf.mean(1) if nf.ndim == 3 else nf
    for h in range(H):
        axes[h].plot(bids, nb[h], label="initial mechanism")
        axes[h].plot(bids, na[h], label=f"designed ({LABELS[best_method]})")
        axes[h].plot(bids, nf[h], ":", label="first price")
        axes[h].set(title=f"round {h}", xlabel="bid")
    axes[0].set_ylabel("active bid mass nu_h")
    axes[0].legend(fontsize=7)
    fig.savefig(out / "bid_distribution.png", dpi=110)
    plt.close(fig)
    names.append("bid_distribution.png")

    # 3. allocation per round
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    hs = np.arange(H)
    for lab, eq, st in (
        ("initial", before, "o-"),
        ("designed", after, "s-"),
        ("first price", result["first_price"], "^:"),
    ):
        a = eq["info"].sold
        ax.plot(hs, a if a.ndim == 1 else a.mean(1), st, label=f"{lab} (sold)")
    ax.set(
        xlabel="round h",
        ylabel="allocated mass",
        title=f"{result['setting']}: allocation per round",
    )
    ax.legend()
    fig.savefig(out / "allocation.png", dpi=110)
    plt.close(fig)
    names.append("allocation.png")

    # 4. payment rule per round (designed)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    pay = after["info"].payment
    pay = pay if pay.ndim == 2 else pay.mean(1)
    for h in range(H):
        ax.plot(bids, pay[h], label=f"round {h}")
    ax.plot(bids, bids, "k:", label="bid (first price)")
    if bound:
        ax.axhline(meta["bound_price"], color="r", ls="--", lw=0.8, label="optimal posted price")
    ax.set(xlabel="bid", ylabel="payment of a winner", title="designed payment rule")
    ax.legend(fontsize=7)
    fig.savefig(out / "payment_rule.png", dpi=110)
    plt.close(fig)
    names.append("payment_rule.png")
    return names


def write_report(result: dict, out, command: str) -> dict:
    """Write ``report.md``, ``report.json`` and the figures into ``out``; return the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = _summary(result)
    summary["command"] = command
    summary["eval_precision"] = jnp.dtype(jnp.result_type(float)).name
    summary["machine"] = (
        f"{jax.devices()[0].platform} ({jax.local_device_count()} device), {_cpus()} CPU cores, "
        f"{_cores_used()} used"
    )
    figs = _figures(result, out)
    summary["figures"] = figs
    (out / "report.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (out / "report.md").write_text(_markdown(summary, result, figs))
    return summary


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def _cores_used() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else _cpus()


def _fmt(x, nd=4):
    return "—" if x is None else f"{x:.{nd}f}"


def _markdown(s: dict, result: dict, figs: list[str]) -> str:
    meta = result["meta"]
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
    for m in result["runs"]:
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
        f"Machine: {s['machine']}; times are wall clock on a shared machine.",
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
