"""``mfid validate``: finite-N validation of a mean-field equilibrium, of a preset
(``--setting A1..A10|beach-bar``) or of a saved, designed mechanism (``--mechanism DIR``).

For every ``N`` of the grid, replicates of the ``N``-agent game are simulated with every agent
playing the regularised MF-NE ``pi`` (OMD): the per-capita objective ``G_N`` is compared with its
mean-field value ``g``; the exponents of the bias ``|E G_N - g|`` and of the RMSE
``sqrt(E (G_N - g)^2)`` are fitted (weighted log-log least squares, bootstrap CIs;
:mod:`mfid.approximation`). The N-player exploitability is the gain of agent 0 switching to the
unregularised mean-field best response: for the beach bar with agent 0's own randomness
integrated out exactly (:func:`mfid.finite.conditional_deviation_gain`; the kernel does not
depend on ``L``), for the auctions by paired simulation with common random numbers.

**Adaptive replicates** (:func:`mfid.approximation.adaptive_gap_study`). At every ``N`` a first
batch of ``--reps`` replicates is drawn, then batches are added (sized from the projected need,
at most doubling the total) until the gap is *resolved* (``|gap| > --sigma`` standard errors,
default 3), or its standard error is at most ``--target-se`` times ``|g|`` (the target is
relative to the mean-field value, so one default serves a revenue of 0.24 and a return of 27;
default 2e-5), or ``--max-reps`` replicates are drawn. Every row says which (``stop``) and
whether it is resolved; an unresolved row reports the bound ``|E G_N - g| < |gap| + 2 se``, is
drawn as an open marker with an arrow and is left out of the bias fit (the RMSE fit uses every
row). The simulator holds one batch of agents at a time (:func:`auctions.simulate.simulate_auction`
vmaps about ``2^21`` agent slots and maps over the rest), so memory stays bounded at
``N = 10^6``. On a terminal a progress bar shows the current ``N``, replicates, gap and s.e.;
in a log it prints that line every 10 s.

**Checkpoint** (``--checkpoint PATH``): after every batch the replicates drawn so far are written
atomically (temporary file, ``fsync``, ``os.replace``) as JSON with a SHA-256 fingerprint of
everything that determines them (setting, the saved mechanism's file digests, grids,
tolerance, replicate rule, seed, float width) and the mean-field value. A rerun with the same
settings reuses the finished rows, continues a partial one where it stopped (batch ``b`` at
``N`` always uses ``fold_in(key_N, b)``) and writes the same JSON; a checkpoint of other settings,
of another equilibrium or one that cannot be read is refused with a one-line message. The
JSON holds no wall-clock time of this run except the sampling seconds recorded per row.

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
* ``--mechanism DIR``: a mechanism saved by ``mfid design auction --out OUT`` in
  ``OUT/mechanisms/<method>`` (:func:`auctions.saved.load_mechanism`). Its setting, grid, network
  and equilibrium settings (tau, eta, tol, max_iters) are the saved ones (``--setting`` and the
  grid flags may be left out; given, they must match); the equilibrium is solved as
  ``mfid evaluate --mechanism DIR`` solves it and ``g`` is exactly the revenue it prints. In the
  finite auction the designed (neural) mechanism sees the empirical bid distribution
  ``nu^N_h`` of the ``N`` sampled bidders and the remaining supply ``I_h / N``.

Writes ``{"setting", "mean_field", "rows": [{"n", "reps", "value", "gap", "stderr", "rmse",
"resolved", "gap_bound", "stop", "deviation_gain", ...}], "exponent", "exponent_ci",
"rmse_exponent", "rmse_exponent_ci", "meta", ...}`` and a log-log figure.

Example::

    mfid validate --setting beach-bar --n 10,100,1000 --reps 50 --json out.json
    mfid validate --setting a3 --n 100,1000 --reps 20 --num-values 20 --num-bids 20
    mfid validate --mechanism results/A1/mechanisms/amid --n 1e2,1e4,1e6 \\
        --checkpoint /tmp/amid.ckpt.json --json amid.json --plot amid.png
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


def _mechanism_arg(text: str) -> str:
    """``first-price``, ``initial`` (``neural``) or a saved mechanism directory (kept as text)."""
    import argparse

    try:
        return check_mechanism(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def check_mechanism(mechanism) -> str:
    """``mechanism`` as given when it is one of :data:`MECHANISMS` or a directory holding a
    ``mechanism.json`` (:func:`auctions.saved.load_mechanism`); ``ValueError`` otherwise."""
    text = str(mechanism)
    if text in MECHANISMS or (Path(text) / "mechanism.json").is_file():
        return text
    raise ValueError(
        f"mechanism must be one of {', '.join(MECHANISMS)} or a saved mechanism directory "
        f"(with mechanism.json, written by mfid design auction --out), got {text!r}"
    )


def register(sub) -> None:
    p = sub.add_parser(
        "validate",
        help="finite-N validation: gap vs N, exponents, N-player gain",
        description="Simulate the exact N-agent game at the mean-field equilibrium for every N of "
        "the grid, adding replicates in batches until the gap G_N - g is resolved, its standard "
        "error reaches --target-se or --max-reps replicates are drawn; fit the exponents of the "
        "bias and the RMSE. --mechanism DIR validates a saved (designed) mechanism.",
    )
    p.add_argument(
        "--setting",
        default=None,
        type=_setting_arg,
        metavar="{A1..A10,beach-bar}",
        help="which setting (any case); required unless --mechanism is a saved mechanism "
        "directory, whose setting it must then match",
    )
    p.add_argument("--n", default=DEFAULT_NS, help=f"comma-separated N grid ({DEFAULT_NS})")
    p.add_argument("--reps", type=int, default=32,
                   help="replicates of the first batch at every N, and the unit of the added "
                   "batches (32)")  # fmt: skip
    p.add_argument("--max-reps", type=int, default=4096, help="most replicates per N (4096)")
    p.add_argument("--target-se", type=float, default=2e-5,
                   help="stop adding replicates at an N once the standard error of its gap is "
                   "at most this times |g| (relative to the mean-field value; 2e-5)")  # fmt: skip
    p.add_argument("--sigma", type=float, default=3.0,
                   help="a gap is resolved when |gap| > sigma standard errors; replicates stop "
                   "there (3)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument(
        "--mechanism",
        default="first-price",
        type=_mechanism_arg,
        metavar="{first-price,initial,DIR}",
        help="auction mechanism: first-price (default), the preset's initial mechanism, or a "
        "saved mechanism directory (OUT/mechanisms/<method> of mfid design auction --out OUT)",
    )
    p.add_argument("--num-values", type=int, default=None,
                   help="auction value levels K (100; a saved mechanism's own)")  # fmt: skip
    p.add_argument("--num-bids", type=int, default=None,
                   help="auction bid levels M (100; a saved mechanism's own)")  # fmt: skip
    p.add_argument("--width", type=int, default=None,
                   help="neural mechanism width (256; a saved mechanism's own)")  # fmt: skip
    p.add_argument("--tol", type=float, default=None,
                   help="auction OMD exploitability tolerance (1e-9; a saved mechanism's own)")  # fmt: skip
    p.add_argument("--iters", type=int, default=None,
                   help="auction OMD step cap (5000; a saved mechanism's own)")  # fmt: skip
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="JSON checkpoint of the replicates drawn so far (written after every "
                   "batch); a rerun with the same settings resumes from it")  # fmt: skip
    p.add_argument("--json", type=Path, default=None, help="write the study as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="write the log-log figure here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_validate)


def parse_ns(text: str) -> list[int]:
    """The ``--n`` grid: comma-separated whole numbers (``1e3`` counts)."""
    from mfid.cli.flags import counts

    return counts(text, "--n")


def _saved_mechanism(mechanism, name, num_values, num_bids, width, tol, iters):
    """The saved mechanism ``mechanism`` (a directory): ``(setting, theta, meta, name, K, M,
    width, tol, iters, tau, eta)``, the grid flags checked against the saved ones."""
    from auctions.saved import load_mechanism

    setting, theta, saved = load_mechanism(mechanism)
    canon = check_validate_setting(saved["setting"])
    if name is not None and check_validate_setting(name) != canon:
        raise ValueError(f"--setting {name} does not match the saved mechanism {mechanism}, "
                         f"a mechanism of setting {canon}")  # fmt: skip
    have = {k: int(saved["make"].get(k, d))
            for k, d in (("num_values", 100), ("num_bids", 100), ("width", 256))}  # fmt: skip
    for flag, val in (("num_values", num_values), ("num_bids", num_bids), ("width", width)):
        if val is not None and int(val) != have[flag]:
            raise ValueError(f"--{flag.replace('_', '-')} {val} does not match the saved mechanism "
                             f"{mechanism} ({have[flag]}); leave it out")  # fmt: skip
    eqs = saved["equilibrium"]
    tol = eqs["tol"] if tol is None else tol
    iters = eqs["max_iters"] if iters is None else iters
    return (setting, theta, saved, canon, have["num_values"], have["num_bids"], have["width"],
            tol, iters, float(eqs["tau"]), float(eqs["eta"]))  # fmt: skip


def build_setting(
    name: str | None,
    mechanism: str = "first-price",
    *,
    num_values: int | None = None,
    num_bids: int | None = None,
    width: int | None = None,
    tol: float | None = None,
    iters: int | None = None,
):
    """``(sampler, g, eps_mf, meta)`` for a setting name (see module docstring); for an auction
    setting the ``mechanism`` is ``first-price`` (parameter-free), ``initial`` (``neural``: the
    preset's mechanism at its initial parameters ``theta0``) on a ``num_values x num_bids`` grid
    (100 x 100, width 256 by default) with its equilibrium solved by OMD to exploitability
    ``tol`` (1e-9, at most ``iters`` = 5000 steps), or a saved mechanism directory: its setting,
    grid, parameters and equilibrium settings (``tau``, ``eta``, ``tol``, ``max_iters``) as
    saved, the equilibrium solved as ``mfid evaluate`` solves it, and ``g`` its revenue
    (``name`` may then be ``None``; given, it must match). ``meta["setting"]`` is the setting."""
    import jax.numpy as jnp

    from mfid.checks import check_count, check_positive
    from solvers.omd import solve_omd

    mechanism = check_mechanism(mechanism)
    saved = None
    if mechanism not in MECHANISMS:
        (st, theta, saved, name, num_values, num_bids, width, tol, iters, tau,
         eta) = _saved_mechanism(mechanism, name, num_values, num_bids, width, tol, iters)  # fmt: skip
    elif name is None:
        raise ValueError("--setting is required unless --mechanism is a saved mechanism directory")
    name = check_validate_setting(name)
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

        num_values = check_count(100 if num_values is None else num_values, "num_values")
        num_bids = check_count(100 if num_bids is None else num_bids, "num_bids")
        width = check_count(256 if width is None else width, "width")
        iters = check_count(5000 if iters is None else iters, "iters")
        tol = 1e-9 if tol is None else tol
        check_positive(tol, "tol", allow_zero=True)
        if saved is not None:
            game = st.game
            mech_name = f"saved {saved['method']} mechanism {mechanism}"
        else:
            tau, eta = 1e-3, 10.0
            st = make(name, key=jax.random.key(1000), num_values=num_values,
                      num_bids=num_bids, width=width)  # fmt: skip
            if mechanism == "first-price":
                game, theta = first_price_game(st.game), {}
                mech_name = "first-price"
            else:
                game, theta = st.game, st.theta0
                mech_name = f"initial {st.metadata['mechanism']}"
        res = solve_omd(game, theta, tau=tau, eta=eta, iters=iters, tol=tol)
        sampler, g, eps = auction_sampler(game, res.policy, theta)
        estimator = "sampled"
        meta = {
            "game": f"{name} ({st.metadata['description']}), K = {num_values}, "
            f"M = {num_bids}, mechanism {mech_name}",
            "objective": "per-capita revenue (1/N) sum_h sum_{winners} p_h(bid)"
            + (", mean over the markets" if game.num_markets > 1 else ""),
            "mean_field_objective": "g_rev = sum_h sum_a nu_h(a) p_win(a) p_h(a)",
            "revenue_bound": st.metadata.get("bound"),
            "omd_tolerance": tol,
            "omd_max_iterations": iters,
            "markets": int(game.num_markets),
        }
        if saved is not None:
            from auctions.objectives import make_objective
            from auctions.study import equilibrium

            # g is the revenue exactly as mfid evaluate computes it at this equilibrium
            objective = make_objective(st.objective, st.mix_weight)
            eq = equilibrium(game, objective, theta, res, tau)
            if abs(eq.revenue - g) > 1e-12 * max(1.0, abs(g)):
                raise RuntimeError(f"mean-field revenue {g!r} of the sampler differs from the "
                                   f"equilibrium revenue {eq.revenue!r}")  # fmt: skip
            g = eq.revenue
            meta.update(
                mechanism_dir=str(mechanism),
                mechanism_method=saved["method"],
                mechanism_seed=saved["seed"],
                reported_revenue=saved.get("reported", {}).get("revenue"),
            )
    meta.update(
        setting=name,
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


def _fit_line(ns, err, se, slope):
    """The weighted least-squares line ``exp(c) N^slope`` through ``err`` (weights
    ``err^2 / se^2``) evaluated at ``ns``."""
    import numpy as np

    w = (err / se) ** 2
    c = np.sum(w * (np.log(err) - slope * np.log(ns))) / np.sum(w)
    return np.exp(c) * ns**slope


def plot_study(study, path: Path, title: str | None = None) -> None:
    """Log-log figure. Left: the bias ``|E G_N - g|`` (filled, +- 1 s.e.) at resolved ``N``,
    the bound ``|gap| + 2 se`` (open marker, arrow down) at unresolved ones, the RMSE, both
    fitted power laws with their bootstrap CIs, and ``1/sqrt N`` and ``1/N`` reference lines
    (through the middle of the RMSE and of the resolved bias points). Right: the N-player
    deviation gain of agent 0 against its mean-field value."""
    import numpy as np

    from mfid.report.common import new_figure

    rows = study.rows
    n = np.array([r.n for r in rows], float)
    gap = np.abs([r.gap for r in rows])
    se = np.array([r.stderr for r in rows])
    rmse = np.array([r.rmse for r in rows])
    bound = np.array([r.gap_bound for r in rows])
    res = np.array([r.resolved for r in rows], bool)
    fig = new_figure(figsize=(12, 4.6), layout=None)
    axes = fig.subplots(1, 2)
    ax = axes[0]
    sig = f"{study.resolve_sigma:g}"
    if res.any():
        ax.errorbar(n[res], gap[res], yerr=se[res], fmt="o", color="C0", capsize=3,
                    label=rf"bias $|E\,G_N - g|$, resolved ($>{sig}$ s.e.; $\pm$1 s.e.)")  # fmt: skip
    if (~res).any():
        ax.errorbar(n[~res], bound[~res], yerr=0.35 * bound[~res], uplims=True, fmt="o",
                    mfc="none", color="C0", capsize=3,
                    label=r"unresolved: bound $|gap| + 2$ s.e. (not fitted)")  # fmt: skip
    ax.plot(n, rmse, "s", color="C1", label=r"RMSE $\sqrt{E(G_N - g)^2}$")
    if np.isfinite(study.exponent) and res.sum() >= 2:
        lo, hi = study.exponent_ci
        ax.plot(n[res], _fit_line(n[res], gap[res], se[res], study.exponent), "-", color="C0",
                label=rf"bias fit $N^{{{study.exponent:.2f}}}$ [{lo:.2f}, {hi:.2f}]")  # fmt: skip
    if np.isfinite(study.rmse_exponent):
        rse = np.array([max(r.rmse, 1e-300) for r in rows]) / np.sqrt(
            2 * np.array([r.reps for r in rows])
        )
        lo, hi = study.rmse_exponent_ci
        ax.plot(n, _fit_line(n, rmse, rse, study.rmse_exponent), "-", color="C1",
                label=rf"RMSE fit $N^{{{study.rmse_exponent:.2f}}}$ [{lo:.2f}, {hi:.2f}]")  # fmt: skip
    c = np.exp(np.mean(np.log(rmse) + 0.5 * np.log(n)))
    ax.plot(n, c / np.sqrt(n), "k--", lw=1, label=r"$1/\sqrt{N}$ reference")
    if res.any():
        c = np.exp(np.mean(np.log(gap[res]) + np.log(n[res])))
        ax.plot(n, c / n, "k:", lw=1, label=r"$1/N$ reference")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N")
    ax.set_ylabel(r"error of $G_N$: bias $|E\,G_N - g|$, RMSE")
    ax.set_title(title or f"{study.setting}: G_N vs mean field g = {study.mean_field:.6g}",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=7.5)
    ax = axes[1]
    dg = np.array([r.deviation_gain for r in rows])
    dse = np.array([r.deviation_stderr for r in rows])
    if np.all(np.isfinite(dg)):
        ax.errorbar(n, dg, yerr=dse, fmt="o", capsize=3, label=r"N-player gain $\epsilon_N$")
        ax.axhline(study.mean_field_deviation, color="C1", label=r"mean-field $E^0(\pi)$")
        ax.set_xscale("log")
        ax.set_xlabel("N")
        ax.set_ylabel("deviation gain of agent 0")
        ax.set_title("gain of agent 0 switching to the mean-field best response", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


CHECKPOINT_FORMAT = "mfid-validate-checkpoint/1"


def _file_digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_config(args, ns: list[int]) -> dict:
    """Everything that determines the replicates of a run (the checkpoint's fingerprint): the
    setting, the mechanism (a saved one by the SHA-256 of its files, not its path), the grids,
    the equilibrium tolerance, the replicate rule, the seed and the float width."""
    import jax

    mech = args.mechanism
    if mech not in MECHANISMS:
        d = Path(mech)
        mech = {f: _file_digest(d / f) for f in ("mechanism.json", "params.npz")}
    return {
        "format": CHECKPOINT_FORMAT,
        "setting": args.setting,
        "mechanism": mech,
        "num_values": args.num_values,
        "num_bids": args.num_bids,
        "width": args.width,
        "tol": args.tol,
        "iters": args.iters,
        "n": ns,
        "reps": args.reps,
        "max_reps": args.max_reps,
        "target_se": args.target_se,
        "sigma": args.sigma,
        "seed": args.seed,
        "x64": bool(jax.config.jax_enable_x64),
    }


def load_validate_checkpoint(path: Path, fp: str) -> tuple[dict, float | None]:
    """``(state, g)`` from the checkpoint at ``path`` (``({}, None)`` when there is none);
    ``ValueError`` (one line, naming the file) for a checkpoint of other settings or one that
    cannot be read."""
    if not path.exists():
        return {}, None
    try:
        data = json.loads(path.read_text())
        fmt, got = data["format"], data["fingerprint"]
        rows = {int(n): dict(e) for n, e in data["rows"].items()}
        for e in rows.values():
            if not isinstance(e["values"], list) or e["batches"] < 0:
                raise TypeError("rows")
        g = float(data["mean_field"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"checkpoint {path} cannot be read ({type(err).__name__}); delete it "
                         "or use another --checkpoint") from None  # fmt: skip
    if fmt != CHECKPOINT_FORMAT or got != fp:
        raise ValueError(f"checkpoint {path} holds a validation run with other settings; use "
                         "another --checkpoint or the same settings")  # fmt: skip
    return rows, g


def save_validate_checkpoint(path: Path, fp: str, g: float, state: dict) -> None:
    """Write the checkpoint atomically (a temporary file, ``fsync``, ``os.replace``)."""
    import os

    data = {"format": CHECKPOINT_FORMAT, "fingerprint": fp, "mean_field": g,
            "rows": {str(n): state[n] for n in sorted(state)}}  # fmt: skip
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(data) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _command(args, ns) -> str:
    parts = ["mfid validate"]
    if args.setting is not None:
        parts.append(f"--setting {args.setting}")
    parts.append(f"--mechanism {args.mechanism}")
    parts.append(f"--n {','.join(map(str, ns))}")
    parts.append(f"--reps {args.reps} --max-reps {args.max_reps} --target-se {args.target_se:g} "
                 f"--sigma {args.sigma:g} --seed {args.seed} --boot {args.boot}")  # fmt: skip
    for flag in ("num_values", "num_bids", "width", "iters"):
        if getattr(args, flag) is not None:
            parts.append(f"--{flag.replace('_', '-')} {getattr(args, flag)}")
    if args.tol is not None:
        parts.append(f"--tol {args.tol:g}")
    return " ".join(parts)


def run_validate(args) -> int:
    import resource

    import jax

    from mfid.approximation import adaptive_gap_study
    from mfid.checks import check_count, check_ns, check_positive
    from mfid.cli.paths import check_output_file
    from mfid.cli.progress import Progress
    from solvers.checkpoint import fingerprint

    ns = check_ns(parse_ns(args.n))
    reps = check_count(args.reps, "reps", minimum=2)
    max_reps = check_count(args.max_reps, "max_reps", minimum=reps)
    boot = check_count(args.boot, "boot")
    check_positive(args.target_se, "target_se", allow_zero=True)
    check_positive(args.sigma, "sigma")
    args.mechanism = check_mechanism(args.mechanism)
    if args.setting is None and args.mechanism in MECHANISMS:
        raise ValueError("--setting is required unless --mechanism is a saved mechanism directory")
    for flag in ("json", "plot"):
        if getattr(args, flag) is not None and getattr(args, flag).is_dir():
            raise ValueError(f"--{flag} {getattr(args, flag)} is a directory")
    if args.checkpoint is not None:
        check_output_file(args.checkpoint, "--checkpoint")
    fp = fingerprint(run_config(args, ns))
    state, g_saved = ({}, None)
    if args.checkpoint is not None:
        state, g_saved = load_validate_checkpoint(args.checkpoint, fp)
    t0 = time.perf_counter()
    sampler, g, eps, meta = build_setting(
        args.setting, args.mechanism, num_values=args.num_values, num_bids=args.num_bids,
        width=args.width, tol=args.tol, iters=args.iters,
    )  # fmt: skip
    setting = meta["setting"]
    t1 = time.perf_counter()
    if g_saved is not None and g_saved != g:
        raise ValueError(f"checkpoint {args.checkpoint} was made at another equilibrium (g = "
                         f"{g_saved!r}, now {g!r}); delete it or use another --checkpoint")  # fmt: skip
    reused = sum(1 for n in ns if state.get(n, {}).get("stop") is not None)
    target = args.target_se * (abs(g) if g != 0 else 1.0)
    print(f"{setting}: mean field g = {g:.10g}, mean-field deviation gain {eps:.4g}; equilibrium "
          f"exploitability {meta['exploitability']:.2e} ({meta['omd_status']}, "
          f"{meta['omd_iterations']} OMD steps, {t1 - t0:.1f} s)")  # fmt: skip
    if reused or state:
        print(f"  resuming from {args.checkpoint}: {reused} finished N, "
              f"{len(state) - reused} partial")  # fmt: skip
    with Progress(len(ns), f"validate {setting}", disable=args.no_progress or None) as bar:
        bar.update(reused)

        def on_batch(n, entry, st):
            if args.checkpoint is not None:
                save_validate_checkpoint(args.checkpoint, fp, g, st)
            import numpy as np

            v = np.asarray(entry["values"])
            se = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
            post = dict(N=n, reps=v.size, gap=float(v.mean() - g), se=float(se))
            if entry["stop"] is not None:
                bar.update(1, **post, stop=entry["stop"])
            else:
                bar.set_postfix(**post)

        study = adaptive_gap_study(
            sampler, g, ns, jax.random.key(args.seed), batch=reps, max_reps=max_reps,
            target_se=target, sigma=args.sigma, mean_field_deviation=eps, setting=setting,
            n_boot=boot, state=state, on_batch=on_batch,
        )  # fmt: skip
    t2 = time.perf_counter()
    sim_seconds = sum(float(state[n]["seconds"]) for n in ns)
    print(f"  replicates until |gap| > {args.sigma:g} s.e. (resolved), s.e. <= {target:.3g} "
          f"(= {args.target_se:g} |g|) or {max_reps} replicates")  # fmt: skip
    print(f"  {'N':>8} {'reps':>6} {'G_N':>12} {'gap':>11} {'stderr':>9} {'rmse':>9} "
          f"{'dev gain':>10} {'s.e.':>9}  stop")  # fmt: skip
    for r in study.rows:
        flag = "resolved" if r.resolved else f"unresolved: |E G_N - g| < {r.gap_bound:.2e}"
        print(
            f"  {r.n:>8} {r.reps:>6} {r.value:>12.7g} {r.gap:>11.3e} {r.stderr:>9.2e} "
            f"{r.rmse:>9.2e} {r.deviation_gain:>10.3e} {r.deviation_stderr:>9.2e}  "
            f"{r.stop:<9} {flag}"
        )
    lo, hi = study.exponent_ci
    print(f"  exponent of |E G_N - g| (resolved N): {study.exponent:.3f}  95% CI "
          f"[{lo:.3f}, {hi:.3f}]")  # fmt: skip
    lo, hi = study.rmse_exponent_ci
    print(f"  exponent of RMSE:        {study.rmse_exponent:.3f}  95% CI [{lo:.3f}, {hi:.3f}]")
    lo, hi = study.deviation_exponent_ci
    print(
        f"  exponent of |eps_N - E0|: {study.deviation_exponent:.3f}  95% CI [{lo:.3f}, {hi:.3f}]"
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  time: equilibrium {t1 - t0:.1f} s, simulation {t2 - t1:.1f} s this run "
          f"({sim_seconds:.1f} s of sampling over all runs); peak memory {rss:.0f} MiB")  # fmt: skip
    out = study.to_json()
    for row in out["rows"]:
        e = state[row["n"]]
        row["batches"] = int(e["batches"])
        row["seconds"] = float(e["seconds"])
    out["meta"] = dict(
        meta,
        replicates={
            "first_batch": reps,
            "max_reps": max_reps,
            "target_se_relative": args.target_se,
            "target_se": target,
            "sigma": args.sigma,
            "rule": "batches until |gap| > sigma se (resolved), se <= target_se "
            "(bounded: |E G_N - g| < |gap| + 2 se) or max_reps (mfid.approximation."
            "next_batch)",
        },  # fmt: skip
        seed=args.seed,
        bootstrap=boot,
        seconds_simulation=sim_seconds,
        command=_command(args, ns),
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"  wrote {args.json}")
    if args.plot is not None:
        title = f"{setting} {meta.get('mechanism_method', args.mechanism)}: G_N vs g = {g:.6g}"
        plot_study(study, args.plot, title)
        print(f"  wrote {args.plot}")
    return 0
