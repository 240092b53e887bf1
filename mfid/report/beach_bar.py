"""The beach-bar pricing-design report (``mfid design beach-bar``): ``report.json`` and three
figures, written from a :class:`solvers.DesignResult` (reading only).

Example::

    from mfid.report.beach_bar import write_report
    write_report(out, game, result, settings={...}, command="mfid design beach-bar ...")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfid.report.common import atomic_dir, new_figure, stamp, write_json

__all__ = ["figures", "write_report"]


def figures(out: Path, game, flow0, flow1, price, trace, res) -> list[str]:
    """Write the three figures into ``out``; returns their file names."""
    mu0, mu1 = np.asarray(flow0).sum(-1), np.asarray(flow1).sum(-1)
    vmax = max(mu0.max(), mu1.max())
    fig = new_figure(figsize=(10, 4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, mu, title in ((axes[0], mu0, "before (uniform price)"), (axes[1], mu1, "after design")):
        im = ax.imshow(mu.T, origin="lower", aspect="auto", vmin=0, vmax=vmax, cmap="viridis")
        ax.axhline(game.bar, color="w", ls="--", lw=0.8)
        ax.set_xlabel("round h")
        ax.set_title(f"population mu_h(s), {title}")
    axes[0].set_ylabel("spot s (dashed: bar)")
    fig.colorbar(im, ax=axes, label="share of the population")
    fig.savefig(out / "flow_before_after.png", dpi=120)

    fig = new_figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.bar(np.arange(len(price)), price, color="tab:orange")
    ax.axvline(game.bar, color="k", ls="--", lw=0.8, label="bar")
    ax.set_xlabel("spot s")
    ax.set_ylabel("price p_max * sigmoid(xi_s)")
    ax.set_ylim(0, float(game.p_max))
    ax.set_title("designed prices over space")
    ax.legend()
    fig.savefig(out / "prices.png", dpi=120)

    steps = np.arange(1, len(trace["objective"]) + 1)
    fig = new_figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.plot(steps, trace["objective"], color="tab:blue", label="G_T (congestion)")
    ax.axhline(res.final_value, color="tab:blue", ls=":", label="final, T_val steps")
    ax.set_xlabel("design step")
    ax.set_ylabel("congestion (minimised)")
    ax2 = ax.twinx()
    ax2.semilogy(steps, np.maximum(trace["exploitability"], 1e-16), color="tab:red", lw=0.8)
    ax2.set_ylabel("exploitability", color="tab:red")
    ax.set_title(f"beach-bar pricing design ({res.method})")
    ax.legend(loc="upper right")
    fig.savefig(out / "objective.png", dpi=120)
    return ["flow_before_after.png", "prices.png", "objective.png"]


def write_report(out, game, res, *, settings: dict, beta: float, command: str) -> dict:
    """Write ``report.json`` and the figures of a beach-bar design ``res`` into ``out``
    (atomically); returns the report."""
    price = np.asarray(game.price(res.theta))
    trace = {
        "objective": res.objective.tolist(),
        "exploitability": res.exploitability.tolist(),
        "evaluations": res.evaluations.tolist(),
    }
    K, H = game.num_states, game.horizon
    report = {
        **stamp(command),
        "game": {"num_states": K, "horizon": H, "crowd": float(game.crowd),
                 "p_still": float(game.p_still), "p_max": float(game.p_max), "bar": game.bar},
        "objective": f"congestion: sum_h logsumexp(beta mu_h)/beta, beta={beta} (minimised)",
        "settings": settings,
        "objective_before": res.initial_value,
        "objective_after": res.final_value,
        "exploitability_before": res.initial_exploitability,
        "exploitability_after": res.final_exploitability,
        "status_before": res.initial.status_name,
        "status_after": res.final.status_name,
        "objective_lower_bound_uniform_crowd": float(H * np.log(K * np.exp(beta / K)) / beta),
        "status": res.status,
        "evaluations": res.total_evaluations,
        "seconds": res.seconds,
        "prices": price.tolist(),
        "theta": np.asarray(res.theta).tolist(),
        "trace": trace,
    }  # fmt: skip
    with atomic_dir(out) as tmp:
        report["figures"] = figures(tmp, game, res.initial.flow, res.final.flow, price, trace, res)
        write_json(tmp / "report.json", report)
    return report
