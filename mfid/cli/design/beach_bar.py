"""``mfid design beach-bar``: price the spots of a beach bar to lower congestion (SPEC section 5).

The designer sets ``theta = xi in R^K`` and charges ``price(s) = p_max sigmoid(xi_s)`` per round
spent at spot ``s``; it minimises the congestion ``sum_h logsumexp(beta mu_h) / beta`` of the
regularised equilibrium. Starting point ``xi = 0`` (a uniform price, which leaves the equilibrium
unchanged). Default instance and OMD settings (checked to converge: exploitability below 1e-9
after 300 steps from the uniform policy at every price the design visits)::

    K = 20 spots, H = 10 rounds, crowd aversion 0.1, p_still = 0.5, p_max = 1, beta = 50
    tau = 0.1, eta = 0.3, T = 300 OMD steps per design step (warm-started), T_val = 1000

Writes ``DIR/report.json`` (settings, objective and exploitability before/after, per-step trace,
prices) and the figures ``flow_before_after.png``, ``prices.png``, ``objective.png``.

Example::

    mfid design beach-bar --method amid --steps 100 --out results/beach_bar_design
"""

from __future__ import annotations

import json
import platform
from functools import partial
from pathlib import Path

__all__ = ["register_design", "run_design_beach_bar", "congestion_objective"]

METHODS = ("amid", "unrolled", "implicit", "reference", "zeroth-sgd", "zeroth-adam", "anneal")


def congestion_objective(theta, L, beta: float = 50.0):
    """Designer objective ``g(theta, L) = sum_h logsumexp(beta mu_h) / beta`` (minimised)."""
    from mfid.games.beach_bar import congestion

    return congestion(L, beta)


def register_design(sub) -> None:
    p = sub.add_parser(
        "beach-bar",
        help="price beach spots to lower congestion at the regularised equilibrium",
        description=(
            "Minimise the congestion sum_h logsumexp(beta mu_h)/beta of the beach-bar equilibrium "
            "with prices p_max*sigmoid(xi) per spot. Defaults (K=20, H=10, crowd 0.1, tau=0.1, "
            "eta=0.3, T=300, T_val=1000) converge: exploitability < 1e-9."
        ),
    )
    p.add_argument("--method", choices=METHODS, default="amid", help="gradient mode or baseline")
    p.add_argument("--steps", type=int, default=100, help="design steps (default %(default)s)")
    p.add_argument("--out", type=Path, default=Path("results/beach_bar_design"), help="output dir")
    p.add_argument("--num-states", type=int, default=20, help="spots K (default %(default)s)")
    p.add_argument("--horizon", type=int, default=10, help="rounds H (default %(default)s)")
    p.add_argument("--crowd", type=float, default=0.1, help="crowd aversion (default %(default)s)")
    p.add_argument("--p-max", type=float, default=1.0, help="largest price (default %(default)s)")
    p.add_argument("--beta", type=float, default=50.0, help="smooth-max sharpness")
    p.add_argument("--tau", type=float, default=0.1, help="entropy temperature")
    p.add_argument("--eta", type=float, default=0.3, help="OMD step size")
    p.add_argument("--iters", type=int, default=300, help="OMD steps T per design step")
    p.add_argument("--val-iters", type=int, default=1000, help="OMD steps T_val for evaluation")
    p.add_argument("--lr", type=float, default=0.2, help="learning rate of Adam (SGD: 0-SGD)")
    p.add_argument("--u", type=float, default=0.05, help="smoothing radius (zeroth-*)")
    p.add_argument("--directions", type=int, default=4, help="directions per estimate (zeroth-*)")
    p.add_argument("--sigma", type=float, default=0.3, help="ANNEAL radius")
    p.add_argument(
        "--fixed-point-tol",
        type=float,
        default=1e-9,
        help="implicit: refuse when max|Phi(zeta_T) - zeta_T| exceeds it (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.add_argument("--checkpoint-dir", type=Path, default=None, help="checkpoint/resume directory")
    p.add_argument("--checkpoint-every", type=int, default=10, help="steps between checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(single_core=True, func=run_design_beach_bar)


def _figures(out: Path, game, flow0, flow1, price, trace, res) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    mu0, mu1 = np.asarray(flow0).sum(-1), np.asarray(flow1).sum(-1)
    vmax = max(mu0.max(), mu1.max())
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True, constrained_layout=True)
    for ax, mu, title in ((axes[0], mu0, "before (uniform price)"), (axes[1], mu1, "after design")):
        im = ax.imshow(mu.T, origin="lower", aspect="auto", vmin=0, vmax=vmax, cmap="viridis")
        ax.axhline(game.bar, color="w", ls="--", lw=0.8)
        ax.set_xlabel("round h")
        ax.set_title(f"population mu_h(s), {title}")
    axes[0].set_ylabel("spot s (dashed: bar)")
    fig.colorbar(im, ax=axes, label="share of the population")
    fig.savefig(out / "flow_before_after.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    ax.bar(np.arange(len(price)), price, color="tab:orange")
    ax.axvline(game.bar, color="k", ls="--", lw=0.8, label="bar")
    ax.set_xlabel("spot s")
    ax.set_ylabel("price p_max * sigmoid(xi_s)")
    ax.set_ylim(0, float(game.p_max))
    ax.set_title("designed prices over space")
    ax.legend()
    fig.savefig(out / "prices.png", dpi=120)
    plt.close(fig)

    steps = np.arange(1, len(trace["objective"]) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
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
    plt.close(fig)
    return ["flow_before_after.png", "prices.png", "objective.png"]


def _command(args) -> str:
    """The command line that regenerates the report (options that differ from the defaults)."""
    import argparse

    parser = argparse.ArgumentParser()
    register_design(parser.add_subparsers())
    defaults = vars(parser.parse_args(["beach-bar"]))
    parts = ["mfid design beach-bar"]
    for name, value in vars(args).items():
        if name in defaults and name not in ("func", "no_progress") and value != defaults[name]:
            parts.append(f"--{name.replace('_', '-')} {value}")
    if "out" in defaults and args.out == defaults["out"]:
        parts.append(f"--out {args.out}")
    return " ".join(parts)


def run_design_beach_bar(args) -> int:
    import jax.numpy as jnp
    import numpy as np

    from mfid.games.beach_bar import BeachBar
    from solvers.design import design, evaluate_design

    if args.steps <= 0:
        raise ValueError(f"--steps must be a positive integer, got {args.steps}")
    game = BeachBar.create(args.num_states, args.horizon, crowd=args.crowd, p_max=args.p_max)
    objective = partial(congestion_objective, beta=float(args.beta))
    theta0 = jnp.zeros(args.num_states)
    res = design(
        game,
        objective,
        theta0,
        maximize=False,
        method=args.method,
        learning_rate=args.lr,
        steps=args.steps,
        tau=args.tau,
        eta=args.eta,
        iters=args.iters,
        val_iters=args.val_iters,
        key=args.seed,
        u=args.u,
        num_directions=args.directions,
        sigma=args.sigma,
        fixed_point_tol=args.fixed_point_tol,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=args.checkpoint_every,
        progress=False if args.no_progress else None,
    )
    kw = dict(tau=args.tau, eta=args.eta, iters=args.val_iters)
    _, _, before = evaluate_design(game, objective, theta0, **kw)
    _, _, after = evaluate_design(game, objective, res.theta, **kw)
    price = np.asarray(game.price(res.theta))
    trace = {
        "objective": res.objective.tolist(),
        "exploitability": res.exploitability.tolist(),
        "evaluations": res.evaluations.tolist(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(out, game, before.flow, after.flow, price, trace, res)
    report = {
        "command": _command(args),
        "game": {
            "num_states": args.num_states,
            "horizon": args.horizon,
            "crowd": args.crowd,
            "p_still": float(game.p_still),
            "p_max": args.p_max,
            "bar": game.bar,
        },
        "objective": f"congestion: sum_h logsumexp(beta mu_h)/beta, beta={args.beta} (minimised)",
        "settings": {
            "method": args.method,
            "steps": args.steps,
            "tau": args.tau,
            "eta": args.eta,
            "iters": args.iters,
            "val_iters": args.val_iters,
            "learning_rate": args.lr,
            "warm_start": True,
            "seed": args.seed,
            **({"u": args.u, "directions": args.directions} if "zeroth" in args.method else {}),
            **({"sigma": args.sigma} if args.method == "anneal" else {}),
        },
        "objective_before": res.initial_value,
        "objective_after": res.final_value,
        "exploitability_before": res.initial_exploitability,
        "exploitability_after": res.final_exploitability,
        "objective_lower_bound_uniform_crowd": float(
            args.horizon
            * jnp.log(args.num_states * jnp.exp(args.beta / args.num_states))
            / args.beta
        ),
        "status": res.status,
        "evaluations": res.total_evaluations,
        "seconds": res.seconds,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "prices": price.tolist(),
        "theta": np.asarray(res.theta).tolist(),
        "trace": trace,
        "figures": figures,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"congestion {res.initial_value:.6f} -> {res.final_value:.6f} "
        f"(exploitability {res.final_exploitability:.2e}, {res.steps} steps, "
        f"{res.seconds:.1f}s); wrote {out / 'report.json'}"
    )
    return 0
