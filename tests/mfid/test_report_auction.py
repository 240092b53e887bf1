"""The auction revenue report's writer on hand-built studies (no equilibrium is solved): figures
stay at most MAX_FIGURE_PX wide for any horizon, the per-round table stays readable for long
horizons (every round saved), the words give the shares, thresholds and payments of the table,
and one seed never prints a spread."""

import csv
import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from auctions.game import AuctionRound
from auctions.study import Equilibrium, RevenueStudy, Run
from mfid.report.auction import MAX_FIGURE_PX, mechanism_table, write_report

CONFIG = {"steps": 3, "seeds": 1, "tau": 1e-3, "eta": 10.0, "iters": 10, "val_iters": 200,
          "val_tol": 1e-3, "learning_rate": 2e-3, "zo_learning_rate": 2e-3, "width": 8,
          "draws": None, "warm_start": False, "select": "converged", "keep": 3, "u": 0.05,
          "sigma": 0.1, "num_values": 6, "num_bids": 6, "precision": "float32"}  # fmt: skip


def _equilibrium(H, M, threshold, ratio, cap=0.8, revenue_scale=1.0):
    """Bidders spread evenly over the bid levels; levels >= ``threshold`` win surely and pay
    ``ratio`` x bid; every round sells the winners' mass."""
    bids = np.arange(M) / M
    nu = np.full((H, M), 1.0 / M)
    p_win = np.where(np.arange(M) >= threshold, 1.0, 0.0)[None].repeat(H, 0)
    payment = ratio * bids[None].repeat(H, 0)
    sold = (nu * p_win).sum(1) * cap / H
    remaining = cap - np.r_[0.0, np.cumsum(sold)[:-1]]
    revenue = revenue_scale * (nu * p_win * payment).sum(1)
    info = AuctionRound(alpha=sold.copy(), sold=sold, remaining=remaining, p_win=p_win,
                        payment=payment, nu=nu, revenue=revenue, welfare=revenue * 1.1)  # fmt: skip
    total = float(revenue.sum())
    return Equilibrium(revenue=total, objective=total, exploitability=1e-4, status="successful",
                       iterations=50, entropy_slack=0.0, info=info, flow=np.zeros((H, 2)))  # fmt: skip


def _study(H, M=6, seeds=1, bound=None):
    runs = []
    for seed in range(seeds):
        eq = _equilibrium(H, M, threshold=3, ratio=0.9, revenue_scale=1.0 + 0.01 * seed)
        runs.append(Run(
            method="amid", seed=seed, steps=3, evaluations=3,
            objective_trace=np.array([0.1, 0.12, 0.13]),
            exploitability_trace=np.array([0.2, 0.1, 0.05]),
            evaluation_trace=np.array([1, 2, 3]), seconds=1.0, seconds_per_step=0.1,
            compile_seconds=5.0, status="successful", selected="last",
            selected_surrogate=0.13, selected_step=2,
            candidates=({"candidate": "last", "step": 2, "surrogate": 0.13,
                         "value": eq.objective, "exploitability": 1e-4,
                         "status": "successful"},),
            theta={"w": np.zeros(3)}, equilibrium=eq,
        ))  # fmt: skip
    meta = {"description": f"H={H}, test setting", "horizon": H, "num_values": 6,
            "num_bids": M, "mechanism": "NeuralMechanism", "objective": "revenue",
            "bound_applies": bound is not None}  # fmt: skip
    if bound is not None:
        meta["bound"], meta["bound_price"] = bound, 0.5
    return RevenueStudy(
        setting="A1" if bound is not None else "A8", meta=meta, config={**CONFIG, "seeds": seeds},
        first_price=_equilibrium(H, M, threshold=1, ratio=1.0, revenue_scale=0.8),
        initial=_equilibrium(H, M, threshold=1, ratio=0.98), runs={"amid": runs}, seconds=2.0,
    )  # fmt: skip


@pytest.mark.parametrize("H, bound", [(100, None), (8, 0.25), (3, 0.25)])
def test_figures_stay_narrow_for_any_horizon(tmp_path, H, bound):
    s = write_report(_study(H, bound=bound), tmp_path / "r", command="mfid design auction")
    assert len(s["figures"]) == 5
    for f in s["figures"]:
        height, width = mpimg.imread(tmp_path / "r" / f).shape[:2]
        assert 300 <= width <= MAX_FIGURE_PX, (f, width)
        assert height <= 1200, (f, height)


def test_long_horizon_table_is_a_sample_and_every_round_is_saved(tmp_path):
    write_report(_study(100), tmp_path / "r", command="mfid design auction")
    md = (tmp_path / "r" / "report.md").read_text()
    table = md.split("round by round")[1].split("Saved mechanisms")[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("| round")]
    assert 10 <= len(rows) <= 14  # a sample plus the totals row
    assert rows[0].startswith("| 0 |") and "| 99 |" in table and "**all 100**" in rows[-1]
    assert "rounds.csv" in table
    with open(tmp_path / "r" / "mechanisms" / "amid" / "rounds.csv") as fh:
        saved = list(csv.DictReader(fh))
    assert [int(r["round"]) for r in saved] == list(range(100))
    got = json.loads((tmp_path / "r" / "report.json").read_text())
    assert len(got["mechanism_table"]["rounds"]) == 100


def test_words_state_the_shares_thresholds_and_payments(tmp_path):
    study = _study(4, bound=0.25)
    write_report(study, tmp_path / "r", command="mfid design auction")
    md = (tmp_path / "r" / "report.md").read_text()
    first = md.split("\n\n")[1]
    rows = mechanism_table(study.runs["amid"][0].equilibrium, study.meta)
    sold = sum(r["sold"] for r in rows)
    # levels 3..5 of 6 win: half the population, spread over 4 rounds of a capacity of 0.8
    assert sold == pytest.approx(0.4)
    assert f"sells {sold:.3f} items per capita, 50.0 % of the capacity of 0.8" in first
    assert "bids of at least 0.50 win in every round" in first  # designed
    assert "bids of at least 0.17 win in every round" in first  # first price
    assert "Winners pay 0.90 × their bid" in first
    assert "of the revenue bound 0.2500" in first and "against first price" in first
    assert "1 seed" in first and "exploitability" in first
    assert "±" not in md and "⊥" not in md
    assert "(1 seed)" in md and "*surrogate*, G_T: the revenue after T = 10 OMD steps" in md


def test_no_bound_says_why_and_two_seeds_give_mean_and_spread(tmp_path):
    write_report(_study(4, seeds=2), tmp_path / "r", command="mfid design auction")
    md = (tmp_path / "r" / "report.md").read_text()
    first = md.split("\n\n")[1]
    assert "No revenue bound is shown: bidders regenerate" in first
    assert "2 seeds" in first and "±" in first
    got = json.loads((tmp_path / "r" / "report.json").read_text())
    per = [p["revenue"] for p in got["methods"]["amid"]["per_seed"]]
    assert f"{per[0]:.4f}, {per[1]:.4f}" in md


def test_best_method_is_the_best_converged_one(tmp_path):
    import dataclasses

    study = _study(4, bound=0.25)
    amid = study.runs["amid"][0]
    eq = _equilibrium(4, 6, threshold=2, ratio=0.9)  # sells more at the same ratio: higher
    assert eq.revenue > amid.equilibrium.revenue
    eq = dataclasses.replace(eq, status="max_iterations", exploitability=5e-2)
    anneal = dataclasses.replace(amid, method="anneal", equilibrium=eq)
    study = dataclasses.replace(study, runs={"amid": [amid], "anneal": [anneal]})
    s = write_report(study, tmp_path / "r", command="mfid design auction")
    assert s["best_method"] == "amid" and s["mechanism_table"]["method"] == "amid"
    first = (tmp_path / "r" / "report.md").read_text().split("\n\n")[1]
    assert "The best method, AMID (of AMID, ANNEAL; ANNEAL scored higher, but not all of its " \
           "equilibria reached the tolerance, so that is not a result)" in first
    # with every method unconverged the best value is named (and the report is flagged)
    study = dataclasses.replace(
        study, runs={"amid": [dataclasses.replace(amid, equilibrium=dataclasses.replace(
            amid.equilibrium, status="max_iterations"))], "anneal": [anneal]})  # fmt: skip
    s = write_report(study, tmp_path / "r2", command="mfid design auction")
    assert s["best_method"] == "anneal" and s["status"] == "flagged"
