"""``mfid design social``: the social-gradient designer against the hypergradient designer (static
games) and against AMID (beach bar), side by side in one run.

Static games (``--game affine|cournot|routing``): the optimal incentive ``p* = -F(x^s)`` is
known (closed form for affine and Cournot, the marginal-cost tolls for routing). The command runs

* ``flow``: the social-gradient flow ``dp/dt = rate grad S(x*(p))``, projected explicit Euler
  with ``--flow-step`` (one equilibrium solve per step);
* ``two-timescale[<rule>]`` for every learning rule that applies (gradient play, best response,
  and mirror descent where actions are distributions: routing), with ``beta = ratio gamma``;
* ``hypergradient``: projected gradient descent on ``Phi(p) = S(x*(p))`` with implicit
  gradients;
* a sweep of ``beta / gamma`` (``--ratios``) for every rule: what happens when the planner is
  not slow.

Beach bar (``--game beach-bar``, the reference instance ``BEACH_BAR_DESIGN``): the mean-field
social-gradient designer (an additive tax on (round, spot, move) moved along ``grad_L`` of the
congestion while OMD runs) against AMID's price design (``solvers.design``, Adam, the settings
of ``mfid design beach-bar``). Both are judged at the converged equilibrium of their final
incentive (OMD from the uniform policy until the exploitability is ``<= --eval-tol``).
``ratio_to_amid`` = social-gradient congestion / AMID congestion. The auction settings are not
designed here: an additive (round, value, bid) incentive needs the bidders' private values and
its transfers are part of the revenue objective (see the report).

Writes ``report.md``, ``report.json`` and figures into ``--out`` (atomically). Exit code 1 when a
main method ends ``nonfinite`` (sweep entries may fail: that is what they show).

Example::

    mfid design social --game routing --out results/social/routing
    mfid design social --game beach-bar --out results/social/beach-bar
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

__all__ = ["register_design", "run_design_social"]

GAMES = ("affine", "cournot", "routing", "beach-bar")
_SAFE_BOX = {"affine": (-10.0, 10.0), "cournot": (-10.0, 10.0), "routing": (0.0, 4.0)}


def _floats(text: str) -> list[float]:
    try:
        out = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None
    if not out:
        raise argparse.ArgumentTypeError("expected at least one number")
    return out


def register_design(sub) -> None:
    p = sub.add_parser(
        "social",
        help="social-gradient incentive design vs hypergradients (static games) and AMID (beach bar)",
        description=(
            "Design incentives with the social-gradient method (only the planner's cost and the "
            "observed joint action) and compare it, in one run, with the hypergradient designer "
            "(static games) or AMID (beach bar)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--game", choices=GAMES, required=True, help="game to design")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    s = p.add_argument_group("static games (affine, cournot, routing)")
    s.add_argument("--players", type=int, default=5, help="decisions of the affine game")
    s.add_argument("--seed", type=int, default=0, help="PRNG seed of the affine game / AMID")
    s.add_argument("--rate", type=float, default=1.0, help="flow rate k")
    s.add_argument("--flow-step", type=float, default=0.5, help="explicit Euler step h")
    s.add_argument("--flow-steps", type=int, default=5000, help="most flow / hypergradient steps")
    s.add_argument("--lr", type=float, default=0.5, help="hypergradient learning rate (SGD)")
    s.add_argument("--gamma", type=float, default=0.2, help="agents' learning step")
    s.add_argument("--ratio", type=float, default=0.05, help="beta / gamma of the main runs")
    s.add_argument("--ratios", type=_floats, default=[0.05, 1.0, 3.0, 10.0],
                   help="beta / gamma sweep (comma-separated)")  # fmt: skip
    s.add_argument("--tt-steps", type=int, default=100_000, help="most two-timescale steps")
    s.add_argument("--tol", type=float, default=1e-11, help="stationarity tolerance")
    s.add_argument("--safe-lower", type=float, default=None,
                   help="safe box P_c lower bound (default: routing 0, others -10)")  # fmt: skip
    s.add_argument("--safe-upper", type=float, default=None,
                   help="safe box P_c upper bound (default: routing 4, others 10)")  # fmt: skip
    m = p.add_argument_group("beach bar (mean field)")
    m.add_argument("--beta", type=float, default=1.0, help="tax step of the social gradient")
    m.add_argument("--inner", type=int, default=10, help="OMD steps per tax step")
    m.add_argument("--mf-steps", type=int, default=100, help="tax steps")
    m.add_argument("--betas", type=_floats, default=[0.3, 1.0, 3.0, 10.0, 30.0],
                   help="tax-step sweep (comma-separated)")  # fmt: skip
    m.add_argument("--amid-steps", type=int, default=100, help="AMID design steps")
    m.add_argument("--amid-lr", type=float, default=0.2, help="AMID Adam learning rate")
    m.add_argument("--amid-iters", type=int, default=300, help="AMID OMD steps T per step")
    m.add_argument("--eval-tol", type=float, default=1e-9, help="exploitability of evaluations")
    m.add_argument("--eval-iters", type=int, default=5000, help="most OMD steps of evaluations")
    p.set_defaults(single_core=True, func=run_design_social)


def _command(args) -> str:
    """The command line that regenerates the report (options that differ from the defaults)."""
    parser = argparse.ArgumentParser()
    register_design(parser.add_subparsers())
    defaults = vars(parser.parse_args(["social", "--game", args.game, "--out", str(args.out)]))
    parts = [f"mfid design social --game {args.game}"]
    for name, value in vars(args).items():
        if name in ("func", "no_progress", "game", "out", "single_core") or name not in defaults:
            continue
        if value != defaults[name]:
            shown = ",".join(f"{v:g}" for v in value) if isinstance(value, list) else value
            parts.append(f"--{name.replace('_', '-')} {shown}")
    parts.append(f"--out {args.out}")
    return " ".join(parts)


def _check_args(args) -> None:
    """Bad values name their flag."""
    from mfid.checks import check_count, check_positive

    for flag in ("players", "flow_steps", "tt_steps", "inner", "mf_steps", "amid_steps",
                 "amid_iters", "eval_iters"):  # fmt: skip
        check_count(getattr(args, flag), "--" + flag.replace("_", "-"))
    for flag in ("rate", "flow_step", "lr", "gamma", "ratio", "beta", "amid_lr", "eval_tol"):
        check_positive(getattr(args, flag), "--" + flag.replace("_", "-"))
    check_positive(args.tol, "--tol", allow_zero=True)
    for flag in ("ratios", "betas"):
        for v in getattr(args, flag):
            check_positive(v, "--" + flag)
    lo, hi = args.safe_lower, args.safe_upper
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"--safe-lower must be <= --safe-upper, got {lo} > {hi}")


def _check_writable(out: Path) -> None:
    """Fail before any long computation when ``out``'s parent cannot hold the report."""
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{out.name}.probe."):
            pass
    except OSError as err:
        raise ValueError(f"--out: cannot write into {parent} ({err.strerror or err})") from None
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} exists and is not a directory")


class _BarCallback:
    """``callback(step, metrics)`` that advances the progress bar it is attached to. One instance
    is reused across runs (it is a static argument of the compiled loops: no recompilation)."""

    def __init__(self, every: int):
        self.every = every
        self.bar = None

    def __call__(self, k, metrics) -> None:
        if self.bar is not None:
            self.bar.update(self.every, obj=float(metrics["objective"]))


# --------------------------------------------------------------------------- static games


def _static_game(args):
    import jax

    from mfid.games.static import AffineGame, Cournot, Routing

    if args.game == "affine":
        return AffineGame.random(jax.random.key(args.seed), num_players=args.players)
    if args.game == "cournot":
        return Cournot.create()
    return Routing.create()


def _game_summary(game) -> dict:
    import dataclasses

    import numpy as np

    out = {"class": type(game).__name__}
    for f in dataclasses.fields(game):
        v = getattr(game, f.name)
        out[f.name] = np.asarray(v).tolist() if hasattr(v, "shape") else v
    if hasattr(game, "monotonicity"):
        out["monotonicity"] = game.monotonicity()
    return out


def _known_optimum(game):
    """``(x^s, p*, how)``: Newton on ``grad S = 0`` cross-checked against the game's closed form
    (affine, Cournot) or the marginal-cost tolls (routing)."""
    import numpy as np

    from solvers.social_gradient import optimal_incentive

    p_star, opt = optimal_incentive(game)
    if opt.status_name != "successful":
        raise ValueError(f"social optimum: Newton ended {opt.status_name}")
    x_s = np.asarray(opt.x)
    if hasattr(game, "marginal_cost_tolls"):
        ref = np.asarray(game.marginal_cost_tolls(opt.x))
        how = "marginal-cost tolls Delta^T (f^s l'(f^s)) at x^s = argmin S (Newton)"
    else:
        xs_closed = np.asarray(game.social_optimum())
        ref = -np.asarray(game.pseudo_gradient(xs_closed))
        how = "closed form p* = -F(x^s), x^s = argmin S solved in closed form"
    return x_s, np.asarray(p_star), ref, how


def _method_entry(res, p_star) -> dict:
    import numpy as np

    dist = float(np.linalg.norm(res.p - p_star)) if res.status != "nonfinite" else None
    keep = _thin(len(res.trace_iterations))
    trace_dist = np.linalg.norm(res.trace_p[keep] - p_star[None, :], axis=1)
    return {
        "objective": res.objective,
        "distance_to_optimum": dist,
        "equilibrium_solves": res.equilibrium_solves,
        "newton_iterations": res.newton_iterations,
        "agent_steps": res.agent_steps,
        "iterations": res.iterations,
        "stationarity": res.stationarity,
        "equilibrium_residual": res.equilibrium_residual,
        "status": res.status,
        "seconds": res.seconds,
        "p": res.p,
        "x": res.x,
        "settings": res.settings,
        "trace": {
            "iterations": res.trace_iterations[keep],
            "objective": res.trace_objective[keep],
            "distance_to_optimum": trace_dist,
        },
    }


def _thin(n: int, points: int = 300):
    """At most about ``points`` indices of a trace of length ``n``, log-spaced (first and last
    kept): the report's traces stay small and still draw on log axes."""
    import numpy as np

    if n <= points:
        return np.arange(n)
    idx = np.unique(np.geomspace(1, n, points).astype(int) - 1)
    return np.union1d(idx, [0, n - 1])


def _run_static(args, progress: bool) -> tuple[dict, bool]:
    import jax.numpy as jnp

    from mfid.cli.progress import Progress
    from solvers.social_gradient import (
        Box,
        hypergradient_descent,
        social_gradient_flow,
        two_timescale,
    )

    game = _static_game(args)
    n = game.num_players
    x_s, p_star, p_ref, how = _known_optimum(game)
    lo, hi = _SAFE_BOX[args.game]
    lo = lo if args.safe_lower is None else args.safe_lower
    hi = hi if args.safe_upper is None else args.safe_upper
    box = Box.create(lo, hi, n)
    p0 = jnp.zeros(n)
    rules = ["gradient", "best-response"] + (["mirror"] if game.mass is not None else [])
    every_flow, every_tt = 50, 1000
    cb_flow, cb_tt = _BarCallback(every_flow), _BarCallback(every_tt)
    methods, sweep = {}, {}

    def run(desc, total, cb, fn, warm: bool):
        """``fn(callback)``; with ``warm`` a first call compiles and the second is timed."""
        first = fn(cb if progress else None) if warm else None
        with Progress(total, desc, disable=None if progress else True) as bar:
            cb.bar = bar
            res = fn(cb if progress else None)
            cb.bar = None
        return res, (first.seconds if first is not None else None)

    def entry(res, first):
        return {**_method_entry(res, p_star), "seconds_first_call": first}

    flow = lambda cb: social_gradient_flow(  # noqa: E731
        game, p0, rate=args.rate, step=args.flow_step, steps=args.flow_steps, tol=args.tol,
        safe_set=box, callback=cb, callback_every=every_flow)  # fmt: skip
    methods["flow"] = entry(*run("flow", args.flow_steps, cb_flow, flow, True))
    for rule in rules:
        for ratio in sorted(set(args.ratios) | {args.ratio}):
            tt = lambda cb, rule=rule, ratio=ratio: two_timescale(  # noqa: E731
                game, p0, rule=rule, gamma=args.gamma, beta=ratio * args.gamma,
                steps=args.tt_steps, tol=args.tol, safe_set=box, callback=cb,
                callback_every=every_tt)  # fmt: skip
            main = ratio == args.ratio
            e = entry(*run(f"two-timescale[{rule}] beta/gamma={ratio:g}", args.tt_steps, cb_tt,
                           tt, main))  # fmt: skip
            if main:
                methods[f"two-timescale[{rule}]"] = e
            if ratio in args.ratios:
                sweep.setdefault(rule, {})[f"{ratio:g}"] = e
    hyper = lambda cb: hypergradient_descent(  # noqa: E731
        game, p0, learning_rate=args.lr, steps=args.flow_steps, tol=args.tol, safe_set=box,
        callback=cb, callback_every=every_flow)  # fmt: skip
    methods["hypergradient"] = entry(*run("hypergradient", args.flow_steps, cb_flow, hyper, True))
    failed = any(m["status"] == "nonfinite" for m in methods.values())
    result = {
        "game": {"name": args.game, **_game_summary(game)},
        "optimum": {
            "p_star": p_star,
            "x_star": x_s,
            "objective": float(game.social_cost(jnp.asarray(x_s))),
            "p_star_reference": p_ref,
            "reference": how,
            "reference_gap": float(abs(p_star - p_ref).max()),
        },
        "safe_set": {"kind": "box", "lower": lo, "upper": hi},
        "not_applicable": {} if game.mass is not None else {
            "two-timescale[mirror]": "mirror descent needs actions that are distributions "
                                     "(game.mass); this game's decisions lie in R^n"},
        "settings": {
            "rate": args.rate, "flow_step": args.flow_step, "flow_steps": args.flow_steps,
            "learning_rate": args.lr, "gamma": args.gamma, "ratio": args.ratio,
            "beta": args.ratio * args.gamma, "tt_steps": args.tt_steps, "tol": args.tol,
        },
        "methods": methods,
        "ratio_sweep": sweep,
        "status": "failed" if failed else "ok",
    }  # fmt: skip
    return result, failed


# --------------------------------------------------------------------------- beach bar


def _run_beach_bar(args, progress: bool) -> tuple[dict, bool]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from mfid.cli.progress import Progress
    from mfid.games.beach_bar import BEACH_BAR_DESIGN as ref
    from solvers import design, solve_omd
    from solvers.mf_social_gradient import AdditiveIncentive, mf_social_gradient

    game, objective = ref.game(), ref.objective()
    K, H = game.num_states, game.horizon
    shape = (H, K, game.num_actions)
    taxed = AdditiveIncentive(game)

    def evaluate(g, theta):
        t = time.perf_counter()
        ev = solve_omd(g, theta, tau=ref.tau, eta=ref.eta, iters=args.eval_iters, tol=args.eval_tol)
        ev = jax.block_until_ready(ev)
        value = float(objective(game, None, ev.flow))
        return {
            "objective": value if np.isfinite(value) else None,
            "exploitability": float(ev.exploitability),
            "evaluation_omd_steps": int(ev.iterations),
            "evaluation_status": ev.status_name,
            "evaluation_seconds": time.perf_counter() - t,
        }, ev

    untaxed, ev0 = evaluate(taxed, jnp.zeros(shape))

    # Each designer runs twice: the first call compiles, the second is the one timed
    # (``seconds``; ``seconds_first_call`` keeps the first).
    every = 10
    cb = _BarCallback(every) if progress else None

    def sg_run():
        return mf_social_gradient(game, objective, tau=ref.tau, eta=ref.eta, beta=args.beta,
                                  inner=args.inner, steps=args.mf_steps, callback=cb,
                                  callback_every=every)  # fmt: skip

    sg_first = sg_run().seconds
    with Progress(args.mf_steps, "social gradient", disable=None if progress else True) as bar:
        if cb is not None:
            cb.bar = bar
        sg = sg_run()
    sg_eval, ev_sg = evaluate(taxed, jnp.asarray(sg.p))

    def am_run(bar=None):
        return design(
            game, objective, jnp.zeros(K), key=jax.random.key(args.seed), maximize=False,
            estimator="amid", learning_rate=args.amid_lr, steps=args.amid_steps, tau=ref.tau,
            eta=ref.eta, iters=args.amid_iters, val_iters=ref.val_iters, throw=False,
            callback=(lambda k, m: bar.update(obj=m["objective"][0])) if bar else None,
        )  # fmt: skip

    am_first = am_run().seconds
    with Progress(args.amid_steps, "AMID", disable=None if progress else True) as bar:
        am = am_run(bar if progress else None)
    am_eval, ev_am = evaluate(game, am.theta)

    sweep = {}
    for beta in args.betas:
        r = mf_social_gradient(game, objective, tau=ref.tau, eta=ref.eta, beta=beta,
                               inner=args.inner, steps=args.mf_steps)  # fmt: skip
        e, _ = evaluate(taxed, jnp.asarray(r.p))
        sweep[f"{beta:g}"] = {
            **e,
            "status": r.status,
            "seconds": r.seconds,
            "transient": r.objective,
            "max_abs_tax": float(abs(r.p).max()),
        }

    sg_ok = sg.status != "nonfinite" and sg_eval["objective"] is not None
    am_ok = am.status in ("successful", "max_iterations") and am_eval["objective"] is not None
    ratio = sg_eval["objective"] / am_eval["objective"] if sg_ok and am_ok else None
    lower = float(H * np.log(K * np.exp(ref.beta / K)) / ref.beta)
    methods = {
        "mf-social-gradient": {
            **sg_eval,
            "distance_to_optimum": None,
            "equilibrium_solves": 0,
            "tax_collected": float(np.sum(np.asarray(ev_sg.flow) * sg.p)),
            "omd_steps": sg.omd_steps,
            "seconds": sg.seconds,
            "seconds_first_call": sg_first,
            "status": sg.status,
            "settings": sg.settings,
            "trace": {"objective": sg.objective, "exploitability": sg.exploitability,
                      "omd_steps": args.inner * np.arange(1, args.mf_steps + 1)},
        },
        "amid": {
            **am_eval,
            "distance_to_optimum": None,
            "equilibrium_solves": int(am.steps),
            "omd_steps": int(am.steps) * args.amid_iters,
            "seconds": am.seconds,
            "seconds_first_call": am_first,
            "status": am.status,
            "settings": {"estimator": "amid", "optimizer": "adam", "learning_rate": args.amid_lr,
                         "steps": args.amid_steps, "iters": args.amid_iters,
                         "val_iters": ref.val_iters, "seed": args.seed, "warm_start": True},
            "trace": {"objective": am.objective, "exploitability": am.exploitability,
                      "omd_steps": args.amid_iters * np.arange(1, len(am.objective) + 1)},
        },
    }  # fmt: skip
    failed = not (sg_ok and am_ok)
    result = {
        "game": {"name": "beach-bar", "instance": "BEACH_BAR_DESIGN", "num_states": K,
                 "horizon": H, "crowd": ref.crowd, "p_still": ref.p_still, "p_max": ref.p_max,
                 "bar": game.bar, "beta": ref.beta, "tau": ref.tau, "eta": ref.eta},
        "objective": f"congestion sum_h logsumexp({ref.beta:g} mu_h)/{ref.beta:g} (minimised)",
        "lower_bound_uniform_crowd": lower,
        "untaxed": untaxed,
        "methods": methods,
        "ratio_to_amid": ratio,
        "beta_sweep": sweep,
        "incentives": {
            "mf_social_gradient_tax": sg.p,
            "amid_theta": np.asarray(am.theta),
            "amid_price": np.asarray(game.price(am.theta)),
        },
        "flows": {"untaxed": np.asarray(ev0.flow).sum(-1), "mf_social_gradient":
                  np.asarray(ev_sg.flow).sum(-1), "amid": np.asarray(ev_am.flow).sum(-1)},
        "settings": {"beta": args.beta, "inner": args.inner, "mf_steps": args.mf_steps,
                     "eval_tol": args.eval_tol, "eval_iters": args.eval_iters},
        "auction": (
            "not designed: an additive incentive on (round, value, bid) conditions on the "
            "bidders' private values, which the auctioneer does not observe (one on (round, bid) "
            "alone is a change of the payment rule, i.e. the mechanism AMID already designs). "
            "And the auction objective, revenue, is made of payments: a tax or subsidy on bids "
            "is itself a payment, so the method's premise (incentives are transfers outside the "
            "planner's cost, which depends on the joint action only) does not hold; moving the "
            "incentive along grad_L revenue would subsidise higher bids without the subsidy's "
            "cost entering the objective."
        ),
        "status": "failed" if failed else "ok",
    }  # fmt: skip
    return result, failed


def run_design_social(args) -> int:
    _check_args(args)
    out = Path(args.out)
    _check_writable(out)
    progress = not args.no_progress  # a bar on a terminal, a heartbeat line in a log
    t0 = time.perf_counter()
    if args.game == "beach-bar":
        result, failed = _run_beach_bar(args, progress)
    else:
        result, failed = _run_static(args, progress)
    result["total_seconds"] = time.perf_counter() - t0
    result["single_core"] = not getattr(args, "all_cores", False)
    result["cores_used"] = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    )

    from mfid.report.social import write_report

    report = write_report(out, result, command=_command(args))
    for name, m in report["methods"].items():
        obj = "null" if m["objective"] is None else f"{m['objective']:.10g}"
        dist = m.get("distance_to_optimum")
        extra = f"  |p-p*| {dist:.2e}" if dist is not None else ""
        if "exploitability" in m:
            extra += f"  exploitability {m['exploitability']:.1e}  OMD steps {m['omd_steps']}"
        print(f"{name:32s} {m['status']:15s} objective {obj}{extra}  {m['seconds']:.2f}s")
    if report.get("ratio_to_amid") is not None:
        print(f"ratio_to_amid {report['ratio_to_amid']:.6f}")
    print(f"wrote {out / 'report.md'}")
    return 1 if failed else 0
