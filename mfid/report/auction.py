"""The revenue report of an auction design study (``mfid design auction``): ``report.md``,
``report.json``, five figures and the saved mechanisms, written from an
:class:`auctions.study.RevenueStudy` (reading only: no equilibrium is solved here).

``report.md`` opens with a paragraph in words (what was designed, what it sells per round as a
share of the population and of the capacity, which bids win and what winners pay, how it
compares with first price and the bound, and how far to trust it). Figures stay at most
``MAX_FIGURE_PX`` wide for any horizon: per-round panels are small multiples up to 8 rounds and
heat maps (round × bid level) beyond; the per-round table lists every round up to 12 and a
sample beyond (every round is in ``report.json`` and ``mechanisms/<method>/rounds.csv``).

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
import math
import textwrap
from pathlib import Path

import numpy as np

from auctions.bound import max_entropy_slack
from auctions.saved import save_mechanism
from auctions.study import LABELS, RevenueStudy
from mfid.report.common import atomic_dir, machine_line, new_figure, stamp, write_json, write_text

__all__ = ["MAX_FIGURE_PX", "NO_BOUND", "mechanism_table", "summary", "write_report"]

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


MAX_FIGURE_PX = 1600
"""The widest figure the report writes, in pixels, whatever the horizon."""
_DPI = 110
_MANY_ROUNDS = 8  # above it, per-round panels become heat maps (round x bid level)
_GRID_COLS = 4  # small multiples: at most this many rounds per row
_TABLE_ROUNDS = 12  # report.md lists every round up to this horizon and a sample beyond it
_WINS = 1e-9  # a bid level wins when its win probability is above this
_SURE = 0.999  # ... and wins surely above this
_MECHANISM_WORDS = {
    "NeuralMechanism": "neural mechanism (a network that decides, in every round, how many items "
    "to offer and what each winning bid pays, never more than the bid)",
    "StaticMechanism": "static mechanism (a share of the remaining supply to offer and a "
    "fraction of the bid to charge, per round and bid level)",
}


def _per_market_mean(x):
    x = np.asarray(x)
    return x if x.ndim <= 2 else x.mean(axis=1)


def _per_round(x, H: int) -> np.ndarray:
    """A per-round quantity ``(H,)`` or ``(H, D)`` as ``(H,)`` (mean over markets)."""
    return np.asarray(x, dtype=float).reshape(H, -1).mean(1)


def _thresholds(eq, M: int) -> np.ndarray:
    """The lowest winning bid of every round (NaN where no bid wins)."""
    pw = _per_market_mean(eq.info.p_win)
    out = np.full(pw.shape[0], np.nan)
    for h, row in enumerate(pw):
        wins = np.nonzero(row > _WINS)[0]
        if len(wins):
            out[h] = wins[0] / M
    return out


def mechanism_table(eq, meta: dict) -> list[dict]:
    """Per round: offered and sold mass (items per capita), sold as a share of the capacity,
    remaining supply before the round, the lowest winning bid and its win probability, the
    winners' mean payment as a fraction of their bid, the mean price per item sold and the
    round's revenue (means over markets for a mixture)."""
    info = eq.info
    H, M = meta["horizon"], meta["num_bids"]
    bids = np.arange(M) / M
    nu, pw, pay = (_per_market_mean(getattr(info, k)) for k in ("nu", "p_win", "payment"))
    alpha, sold, rem, rev = (_per_round(getattr(info, k), H)
                             for k in ("alpha", "sold", "remaining", "revenue"))  # fmt: skip
    cap = float(rem[0])
    rows = []
    for h in range(H):
        won = nu[h] * pw[h]
        wins = np.nonzero(pw[h] > _WINS)[0]
        paid = float(won @ pay[h])
        bid_mass = float(won @ bids)
        rows.append({
            "round": h,
            "offered": float(alpha[h]),
            "sold": float(sold[h]),
            "sold_share_of_capacity": float(sold[h] / cap) if cap > 0 else None,
            "remaining_before": float(rem[h]),
            "lowest_winning_bid": float(bids[wins[0]]) if len(wins) else None,
            "lowest_winning_bid_win_probability": float(pw[h, wins[0]]) if len(wins) else None,
            "payment_over_bid": paid / bid_mass if bid_mass > 0 else None,
            "price_per_item": float(rev[h] / sold[h]) if sold[h] > 1e-12 else None,
            "revenue": float(rev[h]),
        })  # fmt: skip
    return rows


def _efficiency(eq, H: int) -> float:
    return float(_per_round(eq.info.welfare, H).sum())


def _method_summary(result: RevenueStudy, m: str, bound) -> dict:
    rs = result.runs[m]
    H = result.meta["horizon"]
    rev = np.array([r.equilibrium.revenue for r in rs])
    fp = result.first_price.revenue
    out = {
        "label": LABELS[m],
        "seeds": len(rs),
        "revenue_mean": float(rev.mean()),
        "revenue_std": float(rev.std(ddof=1)) if len(rs) > 1 else None,
        "objective_mean": float(np.mean([r.equilibrium.objective for r in rs])),
        "efficiency_mean": float(np.mean([_efficiency(r.equilibrium, H) for r in rs])),
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


def best_method(methods: dict) -> str:
    """The method with the best mean objective among those whose equilibria all reached the
    tolerance (an unconverged value is not a result); among all methods if none did."""
    pool = [m for m, v in methods.items() if v["converged"]] or list(methods)
    return max(pool, key=lambda m: methods[m]["objective_mean"])


def summary(result: RevenueStudy) -> dict:
    """The report's numbers (the content of ``report.json``, without the stamp)."""
    meta = result.meta
    H = meta["horizon"]
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
        "mix_weight": meta.get("mix_weight", 0.5) if meta["objective"] == "mix" else None,
        "horizon": H,
        "capacity": float(_per_round(fp.info.remaining, H)[0]),
        "markets": int(np.asarray(fp.info.sold).reshape(H, -1).shape[1]),
        "units": "revenue and efficiency per capita (per unit mass of bidders); offered, sold "
                 "and remaining supply in items per capita; values and bids on [0, 1)",
        "config": result.config,
        "first_price": {"revenue": fp.revenue, "objective": fp.objective,
                        "efficiency": _efficiency(fp, H),
                        "exploitability": fp.exploitability, "status": fp.status,
                        "omd_iterations": fp.iterations},
        "initial": {"revenue": init.revenue, "objective": init.objective,
                    "exploitability": init.exploitability, "status": init.status},
        "bound": bound,
        "bound_price": meta.get("bound_price") if bound else None,
        "bound_reason": None if bound else NO_BOUND.get(result.setting),
        "max_entropy_slack": (max_entropy_slack(result.config["tau"], H,
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
    best = best_method(methods)
    s["best_method"] = best
    s["mechanism_table"] = {
        "method": best,
        "seed": result.runs[best][0].seed,
        "rounds": mechanism_table(result.runs[best][0].equilibrium, meta),
    }
    s["first_price_table"] = mechanism_table(fp, meta)
    return s


def _fmt(x, nd=4):
    return "—" if x is None else f"{x:.{nd}f}"


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def _gain(x, ref) -> str:
    return f"{100 * (x / ref - 1):+.1f} %" if ref > 0 else "—"


def _rev_cell(v) -> str:
    if v["seeds"] == 1:
        return f"{v['revenue_mean']:.4f} (1 seed)"
    per = ", ".join(f"{p['revenue']:.4f}" for p in v["per_seed"])
    return f"{v['revenue_mean']:.4f} ± {v['revenue_std']:.4f} ({per})"


def _num(x: float) -> str:
    """Four decimals, or two significant digits for a small nonzero value."""
    return f"{x:.2g}" if 0 < abs(x) < 1e-3 else f"{x:.4f}"


def _series(values, fmt) -> str:
    """Every value for a short horizon; the range and median for a long one."""
    if len(values) <= _TABLE_ROUNDS:
        return ", ".join(fmt(x) for x in values)
    a = np.asarray(values, dtype=float)
    return f"between {fmt(a.min())} and {fmt(a.max())} (median {fmt(float(np.median(a)))})"


def _of_rounds(n: int, H: int) -> str:
    return "every round" if n == H else f"{n} of the {H} rounds"


def _who_wins(rounds) -> str:
    """Which bids win, in words, from a mechanism table."""
    H = len(rounds)
    thr = [r["lowest_winning_bid"] for r in rounds]
    if all(t is None for t in thr):
        return "no bid wins in any round"
    known = [t for t in thr if t is not None]
    partial = sum(
        r["lowest_winning_bid"] is not None and r["lowest_winning_bid_win_probability"] < _SURE
        for r in rounds
    )
    if all(t == 0.0 for t in thr):
        if partial == H:
            return ("every bid above 0 wins in every round, and a bid of 0 only with some chance "
                    "(the supply runs out among the zero bids)")  # fmt: skip
        text = "every bid wins in every round"
        if partial:
            text += (f", except that in {_of_rounds(partial, H)} a bid of 0 wins only with "
                     "some chance (the supply runs out among the zero bids)")  # fmt: skip
        return text
    if len(set(known)) == 1 and len(known) == H:
        text = f"bids of at least {known[0]:.2f} win in every round"
    elif H <= _TABLE_ROUNDS:
        text = ("bids of at least " + ", ".join("—" if t is None else f"{t:.2f}" for t in thr)
                + " win in rounds " + (f"0–{H - 1}" if H > 1 else "0"))  # fmt: skip
    else:
        text = (f"the lowest winning bid moves between {min(known):.2f} and {max(known):.2f} "
                "over the rounds")  # fmt: skip
    if len(known) < H:
        text += f" (no bid wins in {H - len(known)} of the {H} rounds)"
    if partial:
        text += (f"; in {_of_rounds(partial, H)} the lowest winning bid wins only with some "
                 "chance (the supply runs out among the bidders who bid it)")  # fmt: skip
    return text


def _objective_words(s: dict) -> str:
    obj = s["objective"]
    if obj == "revenue":
        return "revenue (the winners' expected payments per capita)"
    if obj == "efficiency":
        return "efficiency (the winners' total value per capita)"
    w = s.get("mix_weight") or 0.5
    return (f"the mix {w:g} × revenue + {1 - w:g} × efficiency (efficiency: the winners' total "
            "value per capita)")  # fmt: skip


def _words(s: dict) -> str:
    """The report's first paragraph: what was designed, what it does, how it compares and how
    far to trust it."""
    best = s["best_method"]
    v = s["methods"][best]
    t = s["mechanism_table"]
    rounds, fp_rounds = t["rounds"], s["first_price_table"]
    H, cap, obj, c = len(rounds), s["capacity"], s["objective"], s["config"]
    fp = s["first_price"]
    mech = _MECHANISM_WORDS.get(s["mechanism"], f"{s['mechanism']} mechanism")
    others = [x["label"] for m, x in s["methods"].items() if m != best]
    out = [f"**What was designed.** A {mech} for setting {s['setting']} ({s['description']}; "
           f"{H} rounds, values and bids on [0, 1)), chosen to maximise {_objective_words(s)}."]  # fmt: skip
    higher = [x["label"] for m, x in s["methods"].items() if m != best and not x["converged"]
              and x["objective_mean"] > v["objective_mean"]]  # fmt: skip
    among = ", ".join([v["label"], *others])
    if higher and v["converged"]:
        among += (f"; {', '.join(higher)} scored higher, but not all of "
                  f"{'its' if len(higher) == 1 else 'their'} equilibria reached the tolerance, "
                  "so that is not a result")  # fmt: skip
    res = (f"**Result.** The best method, {v['label']}"
           + (f" (of {among})" if others else "")
           + f", earns {_num(v['revenue_mean'])} per capita (per unit mass of bidders) at the "
           "mechanism's equilibrium")  # fmt: skip
    if v["seeds"] > 1:
        res += f" (mean of {v['seeds']} seeds)"
    comps = []
    if s["bound"]:
        comps.append(f"{_pct(v['share_of_bound'])} of the revenue bound {s['bound']:.4f} (what "
                     f"the best single posted price, {s['bound_price']:.2f}, earns; no mechanism "
                     "earns more from these bidders)")  # fmt: skip
    if fp["revenue"] > 0:
        comps.append(f"{_gain(v['revenue_mean'], fp['revenue'])} against first price "
                     f"({_num(fp['revenue'])})")  # fmt: skip
    else:
        comps.append(f"first price earns {fp['revenue']:.4f}")
    res += ": " + " and ".join(comps) + "."
    if obj != "revenue":
        res += (f" Its own objective, {obj}, is {v['objective_mean']:.4f} against first "
                f"price's {fp['objective']:.4f} ({_gain(v['objective_mean'], fp['objective'])}; "
                f"efficiency {v['efficiency_mean']:.4f} against {fp['efficiency']:.4f}).")  # fmt: skip
    if not s["bound"]:
        res += (
            f" No revenue bound is shown: {s['bound_reason'] or 'none is known for this setting'}."
        )
    out.append(res)
    sold = [r["sold"] for r in rounds]
    total, fp_total = sum(sold), sum(r["sold"] for r in fp_rounds)
    mixture = f"; means over its {s['markets']} markets" if s.get("markets", 1) > 1 else ""
    does = f"**What it does** (seed {t['seed']}{mixture}). Over the {H} rounds it sells {total:.3f} items per capita"
    if cap > 0:
        does += f", {_pct(total / cap)} of the capacity of {cap:.3g} items per capita"
    does += f" (first price sells {fp_total:.3f}); per round it sells " + _series(
        sold, lambda x: f"{x:.3f}"
    )
    does += " of the population"
    if cap > 0 and H <= _TABLE_ROUNDS:
        does += " (" + _series([x / cap for x in sold], _pct) + " of the capacity)"
    elif cap > 0:
        does += f" ({100 * min(sold) / cap:.1f}–{_pct(max(sold) / cap)} of the capacity)"
    does += (
        f". The highest bids win: {_who_wins(rounds)}; under first price, {_who_wins(fp_rounds)}."
    )
    ratios = [r["payment_over_bid"] for r in rounds if r["payment_over_bid"] is not None]
    revenue = sum(r["revenue"] for r in rounds)
    if ratios:
        lo, hi = min(ratios), max(ratios)
        pays = f"{lo:.2f}" if hi - lo < 0.005 else f"between {lo:.2f} and {hi:.2f}"
        does += f" Winners pay {pays} × their bid (first price: their whole bid)"
        if total > 1e-12 and fp_total > 1e-12:
            fp_rev = sum(r["revenue"] for r in fp_rounds)
            does += (f", on average {_num(revenue / total)} per item (first price: "
                     f"{_num(fp_rev / fp_total)})")  # fmt: skip
        does += "."
    out.append(does)
    gap = float(np.mean([p["surrogate_minus_converged"] for p in v["per_seed"]]))
    trust = ("**How far to trust it.** Every equilibrium is solved until its exploitability (what "
             "one bidder could gain per capita by changing its bids) is at most "
             f"{c['val_tol']:g}: the designed mechanism's is {v['exploitability_max']:.1e}"
             + ("" if v["converged"] else " — NOT converged, treat its numbers as provisional")
             + f", first price's {fp['exploitability']:.1e}"
             + ("" if fp["status"] == "successful" else " (NOT converged)") + ".")  # fmt: skip
    if v["seeds"] == 1:
        trust += " 1 seed: the spread over seeds (network initialisations) is not measured."
    else:
        per = ", ".join(f"{p['revenue']:.4f}" for p in v["per_seed"])
        trust += (f" {v['seeds']} seeds: revenue {v['revenue_mean']:.4f} ± {v['revenue_std']:.4f} "
                  f"(std over seeds; per seed {per}).")  # fmt: skip
    conv = float(np.mean([p["objective"] for p in v["per_seed"]]))
    trust += (f" The optimiser followed a surrogate, the {obj} after T = {c['iters']} OMD steps; "
              f"for the chosen mechanism it is {gap:+.4f} from the converged value")  # fmt: skip
    if abs(gap) > max(0.05 * abs(conv), 1e-3):
        trust += (" — a large gap: the design step followed the solver's transient, not the "
                  "equilibrium, so a longer T may design a better mechanism")  # fmt: skip
    trust += "."
    if any(st != "successful" for st in v["design_status"]):
        trust += f" The design run stopped early ({', '.join(v['design_status'])})."
    out.append(trust)
    return " ".join(out)


def _sample_rounds(H: int) -> list[int]:
    """Every round up to ``_TABLE_ROUNDS``; otherwise every ``ceil(H / 10)``-th round with round
    1 and the last."""
    if H <= _TABLE_ROUNDS:
        return list(range(H))
    return sorted({1, H - 1, *range(0, H, math.ceil(H / 10))})


def _winning_bid_cell(r) -> str:
    t, p = r["lowest_winning_bid"], r["lowest_winning_bid_win_probability"]
    if t is None:
        return "none"
    return f"{t:.2f}" if p >= _SURE else f"{t:.2f} ({100 * p:.0f} % chance)"


def _round_table(s: dict) -> list[str]:
    t = s["mechanism_table"]
    rounds = t["rounds"]
    H, cap = len(rounds), s["capacity"]
    shown = _sample_rounds(H)
    lines = ["| round | offered | sold | sold / capacity | remaining before | lowest winning bid "
             "| payment / bid | price per item | revenue |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for h in shown:
        r = rounds[h]
        lines.append(
            f"| {h} | {r['offered']:.4f} | {r['sold']:.4f} | {_pct(r['sold_share_of_capacity'])} "
            f"| {r['remaining_before']:.4f} | {_winning_bid_cell(r)} | "
            f"{_fmt(r['payment_over_bid'], 3)} | {_fmt(r['price_per_item'], 3)} | "
            f"{r['revenue']:.4f} |"
        )
    sold = sum(r["sold"] for r in rounds)
    rev = sum(r["revenue"] for r in rounds)
    lines.append(f"| **all {H}** | — | **{sold:.4f}** | **{_pct(sold / cap if cap > 0 else None)}** "
                 f"| — | — | — | {_fmt(rev / sold if sold > 1e-12 else None, 3)} | **{rev:.4f}** |")  # fmt: skip
    note = (
        "Offered, sold and remaining supply: items per capita (per unit mass of bidders); "
        "bids on [0, 1); payment / bid: the winners' mean payment over their mean bid; price "
        "per item: revenue / sold; revenue per capita."
    )
    if len(shown) < H:
        note += (f" A sample of {len(shown)} of the {H} rounds is shown; every round is in "
                 f"`report.json` (`mechanism_table`) and `mechanisms/{t['method']}/rounds.csv`.")  # fmt: skip
    return [*lines, "", note]


def _markdown(s: dict, figs: list[str]) -> str:
    c = s["config"]
    bound = s["bound"]
    obj = s["objective"]
    lines = [f"# Revenue design — setting {s['setting']}", "", _words(s), ""]
    lines += [
        f"Regenerate with: `{s['command']}`", "",
        "## How to read it", "",
        f"- Units: {s['units']}.",
        f"- Every revenue below is taken at the mechanism's equilibrium, solved by OMD (online "
        f"mirror descent on the bidders' policies) until its exploitability — what one bidder "
        f"could gain per capita by changing its bids — is at most {c['val_tol']:g} (at most "
        f"{c['val_iters']} OMD steps; entropy temperature tau = {c['tau']}, step eta = "
        f"{c['eta']}). The exploitability is printed beside it.",
        f"- The optimiser follows a *surrogate*, G_T: the {obj} after T = {c['iters']} OMD steps "
        "from uniform bids. It is used for gradients only; the tables show it next to the "
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
    if c.get("backtrack"):
        lines.append("- Step rejection: a step whose surrogate is worse than the last accepted "
                     "one is retried from it with half the step, for every method alike.")  # fmt: skip
    if c.get("tau_start") is not None:
        lines.append(f"- Temperature continuation: the surrogate's tau falls in stages from "
                     f"{c['tau_start']} to {c['tau']} over the first half of the steps.")  # fmt: skip
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
    head = (
        "| method | revenue per capita | exploitability | converged | surrogate G_T of the chosen |"
    )
    sep = "|---|---|---|---|---|"
    if obj != "revenue":
        head += f" {obj} objective | {obj} vs first price |"
        sep += "---|---|"
    head += (" revenue / bound |" if bound else "") + " revenue vs first price |"
    head += " steps | s/step | compile s |"
    sep += ("---|" if bound else "") + "---|---|---|---|"
    lines += [head, sep]
    fp = s["first_price"]
    for v in s["methods"].values():
        sur = np.mean([p["surrogate"] for p in v["per_seed"]])
        gap = np.mean([p["surrogate_minus_converged"] for p in v["per_seed"]])
        row = (f"| {v['label']} | {_rev_cell(v)} | {v['exploitability_max']:.1e} | "
               f"{'yes' if v['converged'] else '**no**'} | {sur:.4f} (gap {gap:+.4f}) |")  # fmt: skip
        if obj != "revenue":
            row += f" {v['objective_mean']:.4f} | {_gain(v['objective_mean'], fp['objective'])} |"
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
        row += f" {fp['objective']:.4f} | — |"
    if bound:
        row += f" {100 * fp['revenue'] / bound:.1f} % |"
    row += " — | — | — | — |"
    lines.append(row)
    spread = (
        "; with several seeds: mean ± std over seeds, then the per-seed values"
        if any(v["seeds"] > 1 for v in s["methods"].values())
        else ""
    )
    lines += ["", f"Revenue per capita{spread}. s/step: median wall time of a design step, "
                  "compilation excluded; compile s: the first step's extra time (compilation)."]  # fmt: skip
    lines += ["", f"The untrained mechanism earns {s['initial']['revenue']:.4f} "
                  f"(exploitability {s['initial']['exploitability']:.1e})."]  # fmt: skip
    flags = [
        f"{v['label']} seed {p['seed']}: surrogate {p['surrogate']:.4f} above the bound"
        for v in s["methods"].values()
        for p in v["per_seed"]
        if p["surrogate_above_bound"]
    ]
    if flags:
        lines += ["", "**Surrogate above the bound** (the optimiser exploited OMD's transient; "
                      "the converged value is what counts): " + "; ".join(flags) + "."]  # fmt: skip
    if s["status"] != "successful":
        lines += ["", "**Flagged:** not every equilibrium reached the tolerance, or a design run "
                      "stopped early; see `report.json` (per-seed `status`)."]  # fmt: skip
    t = s["mechanism_table"]
    lines += ["", f"## The designed mechanism ({s['methods'][t['method']]['label']}, seed "
                  f"{t['seed']}), round by round", "", *_round_table(s)]  # fmt: skip
    lines += ["", "Saved mechanisms (parameters, settings and per-round tables): "
                  "`mechanisms/<method>/`; re-solve one with "
                  "`mfid evaluate --mechanism <dir>/mechanisms/<method>`.", ""]  # fmt: skip
    lines += [f"Machine: {s['machine_line']}; wall-clock times on a shared machine, "
              f"compilation excluded from s/step. mfid {s['versions'].get('mfid')}, "
              f"jax {s['versions'].get('jax')}, {s['date']}.", "", "## Figures", ""]  # fmt: skip
    long = s["horizon"] > _MANY_ROUNDS
    captions = {
        "revenue_over_steps.png": f"The surrogate G_T ({obj} after T = {c['iters']} OMD steps) "
        "over the objective evaluations spent, per method (mean; band: min–max over seeds). "
        "Dotted vertical line: the chosen iterate; circle: its surrogate; star: its converged "
        "value; crosses: the converged values of the other candidates. Horizontal lines: first "
        "price at its equilibrium" + (" and the revenue bound." if bound and obj == "revenue" else "."),
        "exploitability.png": "Exploitability of the T-step surrogate equilibrium at every design "
        "step (it is not the reported equilibrium's, which is solved to the tolerance).",
        "bid_distribution.png": (
            "Equilibrium bid distribution per round as heat maps (colour: share of the round's "
            "active bidders at each bid level; each column sums to 1) for the untrained, designed "
            "and first-price mechanisms; dashed: the lowest winning bid."
            if long else
            "Equilibrium bid distribution of the active bidders per round (mass per capita at each "
            "bid level): untrained, designed and first price; dashed: the designed mechanism's "
            "lowest winning bid."),
        "allocation.png": "Top: items sold per round as a share of the population (right axis: "
        "of the capacity), designed and first price. Bottom: the remaining supply before each "
        "round, the items the designed mechanism offers, and the capacity.",
        "payment_rule.png": (
            "Left: what a winning bid pays, per round and bid level (blank: the bid does not win); "
            "dashed: the lowest winning bid. Right: per round, the lowest winning bid (designed "
            "and first price) and the winners' mean payment / bid"
            + (", with the posted price of the bound." if bound else ".")
            if long else
            "Per round: what a winning bid pays under the designed mechanism, against its bid "
            "(what first price charges); grey: bids that do not win"
            + ("; red: the posted price of the bound (bids at or above it win and pay it)." if bound else ".")),
    }  # fmt: skip
    for f in figs:
        lines += [f"![{f}]({f})", "", captions.get(f, ""), ""]
    return "\n".join(lines)


def _title(fig, s: dict, what: str) -> None:
    desc = textwrap.shorten(s["description"], 110, placeholder=" …")
    fig.suptitle(f"{s['setting']}: {what}\n{desc}", fontsize=10)


def _integer_rounds(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _grid_shape(H: int) -> tuple[int, int]:
    ncols = min(H, _GRID_COLS)
    return math.ceil(H / ncols), ncols


def _round_grid(H: int):
    """A figure of small multiples, one panel per round, at most ``_GRID_COLS`` a row."""
    nrows, ncols = _grid_shape(H)
    fig = new_figure(figsize=(3.2 * ncols + 0.9, 2.4 * nrows + 1.5))
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax in axes[H:]:
        ax.set_visible(False)
    for h, ax in enumerate(axes[:H]):
        if h + ncols >= H:  # the lowest panel of its column
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("bid")
    return fig, axes[:H], ncols


def _fig_legend(fig, ax, ncols: int = 4) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=8, frameon=False)


def _threshold_steps(ax, thr, H: int, **kw) -> None:
    """The lowest winning bid per round as a step line over the heat map's round cells."""
    ax.step(np.arange(H + 1) - 0.5, np.r_[thr, thr[-1]], where="post", **kw)


def _progress_figures(result: RevenueStudy, s: dict, out: Path) -> list[str]:
    from matplotlib.lines import Line2D

    runs, meta, c = result.runs, result.meta, result.config
    obj, bound = meta["objective"], s["bound"]
    names = []
    # 1. the surrogate over evaluations: the chosen iterate, its surrogate and converged value
    fig = new_figure(figsize=(8, 5))
    ax = fig.subplots()
    for i, (m, rs) in enumerate(runs.items()):
        color = f"C{i}"
        n = min(len(r.objective_trace) for r in rs)
        ys = np.stack([np.asarray(r.objective_trace[:n], dtype=float) for r in rs])
        xs = np.asarray(rs[0].evaluation_trace[:n])
        ax.plot(xs, ys.mean(0), color=color, label=f"{LABELS[m]}: surrogate G_T")
        if len(rs) > 1:
            ax.fill_between(xs, ys.min(0), ys.max(0), color=color, alpha=0.2)
        for r in rs:
            trace = np.asarray(r.evaluation_trace)
            for cand in r.candidates:
                k, val = (
                    (cand.get("step", -1), cand.get("value"))
                    if isinstance(cand, dict)
                    else (-1, None)
                )
                if val is not None and 0 <= k < len(trace):
                    ax.plot([trace[k]], [val], "x", color=color, ms=6, alpha=0.8)
            k = r.selected_step
            if 0 <= k < len(trace):
                x = trace[k]
                ax.axvline(x, color=color, ls=":", lw=0.9)
                ax.plot([x], [r.selected_surrogate], "o", color=color, mfc="none", ms=8)
                ax.plot([x], [r.equilibrium.objective], "*", color=color, ms=12)
    ax.axhline(result.first_price.objective, color="k", ls=":",
               label=f"first price at equilibrium ({result.first_price.objective:.4f})")  # fmt: skip
    if bound and obj == "revenue":
        ax.axhline(bound, color="r", ls="--", label=f"revenue bound ({bound:.4f})")
    handles, labels = ax.get_legend_handles_labels()
    proxies = [
        (Line2D([], [], color="0.3", ls=":", lw=0.9), "chosen iterate"),
        (Line2D([], [], color="0.3", marker="o", mfc="none", ls=""), "chosen: its surrogate G_T"),
        (Line2D([], [], color="0.3", marker="*", ms=10, ls=""), "chosen: its converged value"),
        (Line2D([], [], color="0.3", marker="x", ls=""), "other candidates: converged value"),
    ]
    fig.legend(handles + [h for h, _ in proxies], labels + [lab for _, lab in proxies],
               loc="outside lower center", ncols=3, fontsize=8, frameon=False)  # fmt: skip
    _integer_rounds(ax)
    ax.set(xlabel="objective evaluations spent", ylabel=f"{obj} per capita")
    _title(fig, s, f"design progress (surrogate G_T: {obj} after T = {c['iters']} OMD steps)")
    fig.savefig(out / "revenue_over_steps.png", dpi=_DPI)
    names.append("revenue_over_steps.png")
    # 2. exploitability of the surrogate's T-step policy
    fig = new_figure(figsize=(8, 4.4))
    ax = fig.subplots()
    lo, hi = np.inf, 0.0
    for i, (m, rs) in enumerate(runs.items()):
        n = min(len(r.exploitability_trace) for r in rs)
        ys = np.stack([np.asarray(r.exploitability_trace[:n], dtype=float) for r in rs])
        xs = np.asarray(rs[0].evaluation_trace[:n])
        ax.plot(xs, ys.mean(0), color=f"C{i}", label=LABELS[m])
        if len(rs) > 1:
            ax.fill_between(xs, ys.min(0), ys.max(0), color=f"C{i}", alpha=0.2)
        pos = ys[ys > 0]
        if pos.size:
            lo, hi = min(lo, float(pos.min())), max(hi, float(pos.max()))
    if hi > 0 and hi / lo > 10:
        ax.set_yscale("log")
    else:
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    _integer_rounds(ax)
    ax.set(xlabel="objective evaluations spent", ylabel="exploitability (per capita)")
    ax.legend(fontsize=8)
    _title(fig, s, f"exploitability of the surrogate's policy after T = {c['iters']} OMD steps")
    fig.savefig(out / "exploitability.png", dpi=_DPI)
    names.append("exploitability.png")
    return names


def _bid_figure(result: RevenueStudy, s: dict, out: Path) -> str:
    H, M = result.meta["horizon"], result.meta["num_bids"]
    bids = np.arange(M) / M
    best = s["best_method"]
    designed = result.runs[best][0].equilibrium
    eqs = {"untrained (start of the design)": result.initial,
           f"designed ({LABELS[best]})": designed, "first price": result.first_price}  # fmt: skip
    nu = {k: _per_market_mean(e.info.nu) for k, e in eqs.items()}
    if H <= _MANY_ROUNDS:
        fig, axes, _ = _round_grid(H)
        thr = _thresholds(designed, M)
        for h, ax in enumerate(axes):
            for (lab, x), st in zip(nu.items(), ("--", "-", ":"), strict=True):
                ax.plot(bids, x[h], st, color={"--": "0.45", "-": "C1", ":": "C2"}[st],
                        zorder=3 if st == "--" else 2, label=lab)  # fmt: skip
            if np.isfinite(thr[h]):
                ax.axvline(
                    thr[h], color="C1", ls="--", lw=0.8, label="designed: lowest winning bid"
                )
            ax.set_title(f"round {h}", fontsize=9)
        for ax in axes[:: _grid_shape(H)[1]]:
            ax.set_ylabel("mass of active bidders")
        _fig_legend(fig, axes[0])
        _title(fig, s, "equilibrium bids per round (mass per capita at each bid level)")
    else:
        fig = new_figure(figsize=(13, 4.6))
        axes = fig.subplots(1, 3, sharey=True)
        share = {}
        for k, x in nu.items():
            tot = x.sum(1, keepdims=True)
            share[k] = np.divide(x, tot, out=np.zeros_like(x, dtype=float), where=tot > 0)
        vmax = max(float(x.max()) for x in share.values()) or 1.0
        for ax, (lab, x), eq in zip(axes, share.items(), eqs.values(), strict=True):
            im = ax.imshow(x.T, origin="lower", aspect="auto", extent=(-0.5, H - 0.5, 0, 1),
                           vmin=0, vmax=vmax, cmap="viridis", interpolation="nearest")  # fmt: skip
            _threshold_steps(ax, _thresholds(eq, M), H, color="w", ls="--", lw=1.0,
                             label="lowest winning bid")  # fmt: skip
            ax.set(title=lab, xlabel="round")
            _integer_rounds(ax)
        axes[0].set_ylabel("bid")
        axes[0].legend(loc="upper right", fontsize=8)
        fig.colorbar(im, ax=axes, label="share of the round's active bidders")
        _title(fig, s, "equilibrium bid distribution per round (each column sums to 1)")
    fig.savefig(out / "bid_distribution.png", dpi=_DPI)
    return "bid_distribution.png"


def _allocation_figure(result: RevenueStudy, s: dict, out: Path) -> str:
    H = result.meta["horizon"]
    best = s["best_method"]
    designed, first = result.runs[best][0].equilibrium, result.first_price
    cap = s["capacity"]
    hs = np.arange(H)
    fig = new_figure(figsize=(8.5, 6.2))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for i, (lab, eq) in enumerate(((f"designed ({LABELS[best]})", designed),
                                   ("first price", first))):  # fmt: skip
        sold = _per_round(eq.info.sold, H)
        if H <= 20:
            top.bar(hs + (i - 0.5) * 0.4, sold, 0.4, color=f"C{i}", label=f"{lab}: sold")
        else:
            top.step(hs, sold, where="mid", color=f"C{i}", label=f"{lab}: sold")
        rem = _per_round(eq.info.remaining, H)
        bottom.plot(hs, rem, ".-" if H <= 20 else "-", color=f"C{i}",
                    label=f"{lab}: remaining supply before the round")  # fmt: skip
    offered = _per_round(designed.info.alpha, H)
    bottom.plot(hs, offered, "x:" if H <= 20 else ":", color="C0", label="designed: offered")
    bottom.axhline(cap, color="r", ls="--", lw=0.9, label=f"capacity ({cap:.3g})")
    top.set(ylabel="sold (share of the population)", ylim=(0, None))
    if cap > 0:
        sec = top.secondary_yaxis("right", functions=(lambda x: 100 * x / cap,
                                                       lambda y: y * cap / 100))  # fmt: skip
        sec.set_ylabel("% of the capacity")
    bottom.set(xlabel="round", ylabel="items per capita", ylim=(0, None))
    handles, labels = (sum(x, []) for x in zip(top.get_legend_handles_labels(),
                                               bottom.get_legend_handles_labels(), strict=True))  # fmt: skip
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    if H <= 20:
        bottom.set_xticks(hs)
    else:
        _integer_rounds(bottom)
    _title(fig, s, "items sold per round and the remaining supply")
    fig.savefig(out / "allocation.png", dpi=_DPI)
    return "allocation.png"


def _payment_figure(result: RevenueStudy, s: dict, out: Path) -> str:
    H, M = result.meta["horizon"], result.meta["num_bids"]
    bids = np.arange(M) / M
    best = s["best_method"]
    designed = result.runs[best][0].equilibrium
    pay = _per_market_mean(designed.info.payment)
    pw = _per_market_mean(designed.info.p_win)
    thr, thr_fp = _thresholds(designed, M), _thresholds(result.first_price, M)
    price = s["bound_price"] if s["bound"] else None
    if H <= _MANY_ROUNDS:
        fig, axes, ncols = _round_grid(H)
        for h, ax in enumerate(axes):
            if np.isfinite(thr[h]) and thr[h] > 0:
                ax.axvspan(0, thr[h] - 0.5 / M, color="0.85", label="bids that do not win")
            ax.plot(bids, bids, "k:", lw=0.9, label="the bid (what first price charges)")
            ax.plot(bids, pay[h], "C1", label=f"designed ({LABELS[best]}): payment of a winner")
            if price is not None:
                ax.step(bids, np.where(bids >= price - 1e-12, price, 0.0), where="post", color="r",
                        lw=0.9, label=f"posted price {price:.2f} (the bound's)")  # fmt: skip
            ax.set_title(f"round {h}: bids ≥ {thr[h]:.2f} win" if np.isfinite(thr[h])
                         else f"round {h}: no bid wins", fontsize=9)  # fmt: skip
        for ax in axes[::ncols]:
            ax.set_ylabel("payment of a winner")
        _fig_legend(fig, axes[0], ncols=2)
    else:
        fig = new_figure(figsize=(13, 4.6))
        left, right = fig.subplots(1, 2, width_ratios=(1.5, 1))
        im = left.imshow(np.where(pw > _WINS, pay, np.nan).T, origin="lower", aspect="auto",
                         extent=(-0.5, H - 0.5, 0, 1), cmap="magma", vmin=0,
                         interpolation="nearest")  # fmt: skip
        _threshold_steps(left, thr, H, color="c", ls="--", lw=1.0, label="lowest winning bid")
        if price is not None:
            left.axhline(price, color="r", lw=0.9, label=f"posted price {price:.2f}")
        fig.colorbar(im, ax=left, label="payment of a winner (blank: the bid does not win)")
        left.set(xlabel="round", ylabel="bid", title=f"designed ({LABELS[best]})")
        left.legend(loc="upper right", fontsize=8)
        hs = np.arange(H)
        ratio = [r["payment_over_bid"] for r in s["mechanism_table"]["rounds"]]
        right.plot(hs, thr, "C1-", label="designed: lowest winning bid")
        right.plot(hs, thr_fp, "k:", label="first price: lowest winning bid")
        right.plot(hs, [np.nan if x is None else x for x in ratio], "C0-",
                   label="designed: winners' payment / bid")  # fmt: skip
        if price is not None:
            right.axhline(price, color="r", lw=0.9, label=f"posted price {price:.2f} (the bound's)")
        right.set(xlabel="round", ylabel="bid level, or payment / bid", ylim=(-0.02, 1.02),
                  title="who wins and what winners pay")  # fmt: skip
        right.legend(fontsize=8)
        _integer_rounds(left)
        _integer_rounds(right)
    _title(fig, s, "payment rule: which bids win and what they pay")
    fig.savefig(out / "payment_rule.png", dpi=_DPI)
    return "payment_rule.png"


def _figures(result: RevenueStudy, s: dict, out: Path) -> list[str]:
    """The five figures, each at most ``MAX_FIGURE_PX`` wide for any horizon."""
    return [*_progress_figures(result, s, out), _bid_figure(result, s, out),
            _allocation_figure(result, s, out), _payment_figure(result, s, out)]  # fmt: skip


def _write_mechanisms(result: RevenueStudy, root: Path) -> dict:
    """``mechanisms/<method>/``: parameters, settings and the per-round tables of seed 0's
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
        write_rounds(d, eq, meta)
        saved[m] = str(d.relative_to(root))
    return saved


def write_rounds(d: Path, eq, meta: dict) -> None:
    """``rounds.csv``: the per-round table (:func:`mechanism_table`) of an equilibrium, one row
    per round (empty cell: no bid wins)."""
    rows = mechanism_table(eq, meta)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if x is None else (x if isinstance(x, int) else f"{x:.10g}")
                    for k, x in r.items()})  # fmt: skip
    write_text(d / "rounds.csv", buf.getvalue())


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
    np.savez(
        d / "equilibrium.npz",
        flow=eq.flow,
        nu=info.nu,
        p_win=info.p_win,
        payment=info.payment,
        alpha=info.alpha,
        sold=info.sold,
        remaining=info.remaining,
    )


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
