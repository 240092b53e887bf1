"""``mfid validate --setting A1..A10|beach-bar``: finite-N validation of a mean-field equilibrium.

For every ``N`` of the grid, ``R`` replicates of the ``N``-agent game are simulated with every
agent playing the regularised MF-NE ``pi`` (OMD): the per-capita objective ``G_N`` is compared with
its mean-field value ``g`` and the decay exponent of ``|E G_N - g|`` is fitted (weighted log-log
least squares, bootstrap CI; :mod:`mfid.approximation`). The N-player exploitability is the gain of
agent 0 switching to the unregularised mean-field best response: for the beach bar with agent 0's
own randomness integrated out exactly (:func:`mfid.finite.conditional_deviation_gain`; the kernel
does not depend on ``L``), for the auctions by paired simulation with common random numbers.

* ``beach-bar``: K = 20 spots, H = 10, tau = 0.1 (OMD eta = 0.3); ``G_N`` = average return of the
  agents, ``g = mu0 . V^pi_0`` (tau = 0); sampler :func:`mfid.finite.simulate`.
* ``A1`` .. ``A10`` (any case): the batched-auction preset of :func:`auctions.settings.make`
  (``K = M = 100`` by default; ``--num-values``, ``--num-bids``, ``--width`` shrink it) with the
  first-price mechanism (default) or, with ``--mechanism initial``, the preset's own mechanism
  at its initial parameters (neural; static for A10; ``neural`` is accepted as the old name of
  ``initial``). OMD with tau = 1e-3, eta = 10 until the exploitability is at most ``--tol``
  (default 1e-9, at most ``--iters`` = 5000 steps; an unconverged equilibrium is reported as
  such); ``G_N`` = per-capita revenue, ``g = g_rev``; sampler
  :func:`auctions.simulate.auction_sampler` (exact finite-N batched auction; value drift and
  re-entry move the sampled values by the value kernel). A3's mixture of markets runs every
  market as its own N-bidder auction and averages ``G_N`` over the markets, as its mean-field
  revenue does. A9's designer objective is a revenue/efficiency mix; the validation checks its
  revenue.

Writes ``{"setting", "mean_field", "rows": [{"n", "value", "gap", "stderr", "deviation_gain",
"deviation_stderr", ...}], "exponent", "exponent_ci", ...}`` and a log-log figure with the fitted
line and a ``1/sqrt N`` reference.

Example::

    python -m mfid validate --setting beach-bar --n 10,100,1000 --reps 50 --json out.json
    python -m mfid validate --setting a3 --n 100,1000 --reps 20 --num-values 20 --num-bids 20
"""

from __future__ import annotations

import json
import time
from pathlib import Path

__all__ = ["register", "run_validate", "build_setting", "plot_study", "DEFAULT_NS"]

DEFAULT_NS = "10,30,100,300,1000,3000,10000,30000,100000"
AUCTION_SETTINGS = ("A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9", "A10")
SETTINGS = AUCTION_SETTINGS + ("beach-bar",)
MECHANISMS = ("first-price", "initial", "neural")


def check_validate_setting(name) -> str:
    """The canonical setting name (``a3`` -> ``A3``, ``Beach-Bar`` -> ``beach-bar``) or a
    ``ValueError`` listing the choices."""
    text = str(name).strip()
    for canon in SETTINGS:
        if text.lower() == canon.lower():
            return canon
    raise ValueError(f"setting must be one of {', '.join(SETTINGS)} (any case), got {name!r}")


def _setting_arg(text: str) -> str:
    import argparse

    try:
        return check_validate_setting(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def register(sub) -> None:
    p = sub.add_parser("validate", help="finite-N validation: gap vs N, exponent, N-player gain")
    p.add_argument(
        "--setting",
        required=True,
        type=_setting_arg,
        metavar="{A1..A10,beach-bar}",
        help="which setting (any case)",
    )
    p.add_argument("--n", default=DEFAULT_NS, help=f"comma-separated N grid ({DEFAULT_NS})")
    p.add_argument("--reps", type=int, default=100, help="replicates per N (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument(
        "--mechanism",
        default="first-price",
        choices=MECHANISMS,
        help="auction mechanism: first-price (default) or the preset's initial mechanism",
    )
    p.add_argument("--num-values", type=int, default=100, help="auction value levels K (100)")
    p.add_argument("--num-bids", type=int, default=100, help="auction bid levels M (100)")
    p.add_argument("--width", type=int, default=256, help="neural mechanism width (256)")
    p.add_argument("--tol", type=float, default=1e-9, help="auction OMD tolerance (1e-9)")
    p.add_argument("--iters", type=int, default=5000, help="auction OMD step cap (5000)")
    p.add_argument("--json", type=Path, default=None, help="write the study as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="write the log-log figure here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_validate)


def parse_ns(text: str) -> list[int]:
    """The ``--n`` grid: comma-separated whole numbers (``1e3`` counts)."""
    from mfid.cli.flags import counts

    return counts(text, "--n")


def build_setting(
    name: str,
    mechanism: str = "first-price",
    *,
    num_values: int = 100,
    num_bids: int = 100,
    width: int = 256,
    tol: float = 1e-9,
    iters: int = 5000,
):
    """``(sampler, g, eps_mf, meta)`` for a setting name (see module docstring); for an auction
    setting the ``mechanism`` is ``first-price`` (parameter-free) or ``initial`` (``neural``: the
    preset's mechanism at its initial parameters ``theta0``), on a ``num_values x num_bids``
    grid, its equilibrium solved by OMD to exploitability ``tol`` (at most ``iters`` steps)."""
    import jax.numpy as jnp

    from mfid.checks import check_count, check_positive
    from solvers.omd import solve_omd

    name = check_validate_setting(name)
    if mechanism not in MECHANISMS:
        raise ValueError(f"mechanism must be one of {MECHANISMS}, got {mechanism!r}")
    if name == "beach-bar":
        from mfid.approximation import game_sampler
        from mfid.games.beach_bar import BeachBar

        game = BeachBar.create(num_states=20, horizon=10)
        tau, eta, iters = 0.1, 0.3, 2000
        res = solve_omd(game, None, tau=tau, eta=eta, iters=iters, tol=1e-10)
        sampler, g, eps = game_sampler(game, res.policy, None)
        estimator = sampler.estimator
        meta = {
            "game": "BeachBar(num_states=20, horizon=10, p_still=0.5, crowd=1)",
            "objective": "per-capita return (1/N) sum_i sum_h r_h(s_i, a_i, L^N_h)",
            "mean_field_objective": "mu0 . V^pi_0 at tau = 0 in the flow Lambda(pi)",
        }
    else:
        import jax

        from auctions.settings import first_price_game, make
        from auctions.simulate import auction_sampler

        num_values = check_count(num_values, "num_values")
        num_bids = check_count(num_bids, "num_bids")
        width = check_count(width, "width")
        iters = check_count(iters, "iters")
        check_positive(tol, "tol", allow_zero=True)
        preset = make(name, key=jax.random.key(1000), num_values=num_values,
                      num_bids=num_bids, width=width)  # fmt: skip
        if mechanism == "first-price":
            game = first_price_game(preset.game)
            theta = {}
            mech_name = "first-price"
        else:
            game, theta = preset.game, preset.theta0
            mech_name = f"initial {preset.metadata['mechanism']}"
        tau, eta = 1e-3, 10.0
        res = solve_omd(game, theta, tau=tau, eta=eta, iters=iters, tol=tol)
        sampler, g, eps = auction_sampler(game, res.policy, theta)
        estimator = "sampled"
        meta = {
            "game": f"{name} ({preset.metadata['description']}), K = {num_values}, "
            f"M = {num_bids}, mechanism {mech_name}",
            "objective": "per-capita revenue (1/N) sum_h sum_{winners} p_h(bid)"
            + (", mean over the markets" if game.num_markets > 1 else ""),
            "mean_field_objective": "g_rev = sum_h sum_a nu_h(a) p_win(a) p_h(a)",
            "revenue_bound": preset.metadata.get("bound"),
            "omd_tolerance": tol,
            "markets": int(game.num_markets),
        }
    meta.update(
        tau=tau,
        eta=eta,
        omd_iterations=int(res.iterations),
        exploitability=float(res.exploitability),
        omd_status=res.status_name,
        deviator="unregularised mean-field best response argmax q* (agent 0)",
        deviation_estimator=estimator,
        entropy=float(-jnp.sum(res.flow * jnp.log(jnp.where(res.policy > 0, res.policy, 1.0)))),
    )
    return sampler, g, eps, meta


def plot_study(study, path: Path) -> None:
    """Log-log figure: |gap| with error bars, RMSE, fitted line, 1/sqrt(N) reference; and the
    deviation gain ``|eps_N - eps_MF|``."""
    import numpy as np

    from mfid.report.common import new_figure

    rows = study.rows
    n = np.array([r.n for r in rows], float)
    gap = np.abs([r.gap for r in rows])
    se = np.array([r.stderr for r in rows])
    rmse = np.array([r.rmse for r in rows])
    fig = new_figure(figsize=(11, 4.2), layout=None)
    axes = fig.subplots(1, 2)
    ax = axes[0]
    ax.errorbar(n, gap, yerr=se, fmt="o", capsize=3, label=r"$|E\,G_N - g|$ ($\pm$ 1 s.e.)")
    ax.plot(n, rmse, "s", mfc="none", label=r"RMSE of $G_N - g$")
    ok = np.isfinite(study.exponent)
    if ok:
        w = (gap / se) ** 2
        x = np.log(n)
        c = np.sum(w * (np.log(gap) - study.exponent * x)) / np.sum(w)
        lo, hi = study.exponent_ci
        ax.plot(
            n, np.exp(c) * n**study.exponent, "-",
            label=rf"fit $N^{{{study.exponent:.2f}}}$ [{lo:.2f}, {hi:.2f}]",
        )  # fmt: skip
    ax.plot(n, rmse[0] * np.sqrt(n[0] / n), "k--", lw=1, label=r"$1/\sqrt{N}$ reference")
    ax.plot(n, rmse[0] * (n[0] / n), "k:", lw=1, label=r"$1/N$ reference")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N")
    ax.set_ylabel("objective gap")
    ax.set_title(f"{study.setting}: G_N vs mean field g = {study.mean_field:.5g}")
    ax.legend(fontsize=8)
    ax = axes[1]
    dg = np.array([r.deviation_gain for r in rows])
    dse = np.array([r.deviation_stderr for r in rows])
    if np.all(np.isfinite(dg)):
        ax.errorbar(n, dg, yerr=dse, fmt="o", capsize=3, label=r"N-player gain $\epsilon_N$")
        ax.axhline(study.mean_field_deviation, color="C1", label=r"mean-field $E^0(\pi)$")
        ax.set_xscale("log")
        ax.set_xlabel("N")
        ax.set_ylabel("deviation gain of agent 0")
        ax.set_title("gain of agent 0 switching to the mean-field best response")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def run_validate(args) -> int:
    import jax

    from mfid.approximation import gap_study
    from mfid.checks import check_count, check_ns
    from mfid.cli.progress import Progress

    ns = check_ns(parse_ns(args.n))
    reps = check_count(args.reps, "reps", minimum=2)
    boot = check_count(args.boot, "boot")
    t0 = time.perf_counter()
    sampler, g, eps, meta = build_setting(
        args.setting, args.mechanism, num_values=args.num_values, num_bids=args.num_bids,
        width=args.width, tol=args.tol, iters=args.iters,
    )  # fmt: skip
    t1 = time.perf_counter()
    with Progress(len(ns), f"validate {args.setting}", disable=args.no_progress or None) as bar:
        study = gap_study(
            sampler, g, ns, reps, jax.random.key(args.seed),
            mean_field_deviation=eps, setting=args.setting, n_boot=boot,
            callback=lambda i, m: bar.update(**m),
        )  # fmt: skip
    t2 = time.perf_counter()
    print(f"{args.setting}: mean field g = {g:.6g}, mean-field deviation gain {eps:.4g}")
    print(f"  equilibrium: exploitability {meta['exploitability']:.2e} ({meta['omd_status']})")
    print(
        f"  {'N':>8} {'G_N':>12} {'gap':>11} {'stderr':>9} {'rmse':>9} {'dev gain':>10} {'s.e.':>9}"
    )
    for r in study.rows:
        flag = "" if r.resolved else "  (gap not resolved)"
        print(
            f"  {r.n:>8} {r.value:>12.6g} {r.gap:>11.3e} {r.stderr:>9.2e} {r.rmse:>9.2e}"
            f" {r.deviation_gain:>10.3e} {r.deviation_stderr:>9.2e}{flag}"
        )
    lo, hi = study.exponent_ci
    print(f"  exponent of |E G_N - g|: {study.exponent:.3f}  95% CI [{lo:.3f}, {hi:.3f}]")
    lo, hi = study.rmse_exponent_ci
    print(f"  exponent of RMSE:        {study.rmse_exponent:.3f}  95% CI [{lo:.3f}, {hi:.3f}]")
    lo, hi = study.deviation_exponent_ci
    print(
        f"  exponent of |eps_N - E0|: {study.deviation_exponent:.3f}  95% CI [{lo:.3f}, {hi:.3f}]"
    )
    print(f"  time: equilibrium {t1 - t0:.1f} s, simulation {t2 - t1:.1f} s")
    out = study.to_json()
    out["meta"] = dict(
        meta,
        reps=reps,
        seed=args.seed,
        bootstrap=boot,
        seconds_equilibrium=t1 - t0,
        seconds_simulation=t2 - t1,
        command=(
            f"python -m mfid validate --setting {args.setting} --n {','.join(map(str, ns))} "
            f"--reps {reps} --seed {args.seed}"
            + (
                f" --mechanism {args.mechanism} --num-values {args.num_values} --num-bids "
                f"{args.num_bids} --width {args.width} --tol {args.tol:g} --iters {args.iters}"
                if args.setting != "beach-bar"
                else ""
            )
        ),
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"  wrote {args.json}")
    if args.plot is not None:
        plot_study(study, args.plot)
        print(f"  wrote {args.plot}")
    return 0
