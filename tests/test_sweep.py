"""Sweeps (mfid.cli.sweep_engine, mfid sweep): the spec expands to the right configurations and rejects
bad keys; a killed sweep, restarted, skips what finished and ends with the same table; the Ray
backend on a real local cluster (2 CPUs) gives the same numbers as the local backend. One
module-scoped local sweep is shared (its compiled programs are reused by the tests after it)."""

import json

import pytest

from mfid.cli import main
from mfid.cli.sweep_engine import check_spec, config_key, expand, run_sweep

SPEC = {
    "settings": ["A1"],
    "methods": ["amid"],
    "seeds": 2,
    "fixed": {
        "steps": 2,
        "num-values": 6,
        "num-bids": 6,
        "width": 8,
        "iters": 10,
        "val_iters": 30,
        "precision": "float64",
    },  # fmt: skip
    "grid": {"tau": [1e-3, 2e-3]},  # traced, not static: both share one compiled design step
}
NUMBERS = ("revenue", "revenue_std", "revenue_per_seed", "exploitability", "objective_value")


def _numbers(table):
    return [(r["key"], *[r[k] for k in NUMBERS]) for r in table["rows"]]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    return out, run_sweep(SPEC, out)


def test_expand_grid_per_method_tables_and_runs():
    spec = {
        "settings": "A1,A2", "methods": ["amid", "zeroth-adam", "anneal"], "seeds": 3,
        "fixed": {"steps": 6},
        "grid": {"lr": [1e-3, 1e-2], "zeroth-adam": {"lr": [1e-3], "u": [1e-3, 1e-2, 3e-2]},
                 "anneal": {"sigma": [1e-6, 1e-2]}},
        "runs": [{"setting": "A3", "method": "amid", "lr": 5e-3}],
    }  # fmt: skip
    configs = expand(spec, x64=True)
    per = {(s, m): 0 for s in ("A1", "A2", "A3") for m in ("amid", "zeroth-adam", "anneal")}
    for c in configs:
        per[(c["setting"], c["method"])] += 1
        assert c["seeds"] == 3 and c["params"]["steps"] == 6
    assert (
        per[("A1", "amid")] == 2 and per[("A2", "zeroth-adam")] == 3 and per[("A1", "anneal")] == 2
    )
    assert per[("A3", "amid")] == 1 and per[("A3", "anneal")] == 0
    a3 = next(c for c in configs if c["setting"] == "A3")
    assert a3["params"]["learning_rate"] == 5e-3 and a3["swept"] == ["learning_rate"]
    zo = [c for c in configs if c["method"] == "zeroth-adam"]
    assert {c["params"]["u"] for c in zo} == {1e-3, 1e-2, 3e-2}
    assert len({c["key"] for c in configs}) == len(configs)


def test_key_is_a_hash_of_the_resolved_config():
    a = expand(SPEC, x64=True)[0]
    b = expand({**SPEC, "fixed": {**SPEC["fixed"], "eta": 10.0}}, x64=True)[0]  # eta's default
    assert a["key"] == b["key"]  # the same resolved config
    c = expand({**SPEC, "seeds": 3}, x64=True)[0]
    d = expand(SPEC, x64=False)[0]
    assert len({a["key"], c["key"], d["key"]}) == 3
    assert a["key"] == config_key(
        {k: a[k] for k in ("setting", "method", "seeds", "x64", "params")}
    )


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"fixed": {"learning_rat": 1e-3}}, "'learning_rat'"),
        ({"grid": {"bogus": [1, 2]}}, "'bogus'"),
        ({"grid": {"zeroth-adm": {"u": [1e-3]}}}, "zeroth-adm"),
        ({"methods": ["amid", "newton"]}, "'newton'"),
        ({"settings": ["A11"]}, "settings"),
        ({"seeds": 0}, "'seeds'"),
        ({"grid": {"lr": []}}, "grid.lr"),
        ({"gird": {}}, "'gird'"),
    ],
)
def test_bad_specs_name_the_key(spec, needle):
    with pytest.raises(ValueError, match=needle):
        check_spec(spec, where="spec.toml")


def test_bad_backend_and_unwritable_out(tmp_path):
    with pytest.raises(ValueError, match="backend"):
        run_sweep(SPEC, tmp_path, backend="slurm")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="--out"):
        run_sweep(SPEC, blocker / "sub")


def test_local_sweep_writes_table_reports_and_figure(local):
    out, table = local
    assert table["complete"] and table["finished"] == 2 and table["skipped_as_done"] == 0
    assert [r["swept"] for r in table["rows"]] == [{"tau": 1e-3}, {"tau": 2e-3}]
    for r in table["rows"]:
        assert len(r["revenue_per_seed"]) == 2 and 0 < r["revenue"] < r["bound"]
        assert (out / "runs" / r["key"] / "report.md").is_file()
        assert json.loads((out / "runs" / r["key"] / "row.json").read_text()) == r
    assert (out / "sweep.png").is_file() and "| A1 | AMID | tau=0.001 |" in (
        out / "sweep.md"
    ).read_text()
    json.loads((out / "sweep.json").read_text())  # strict JSON
    assert {x["method"] for x in table["tuning"]} == {"amid"}


class _Killed(Exception):
    pass


def test_killed_sweep_resumes_and_ends_with_the_same_table(local, tmp_path):
    def kill_after_first(row, skipped):
        raise _Killed(row["key"])

    with pytest.raises(_Killed) as first:
        run_sweep(SPEC, tmp_path, on_result=kill_after_first)
    done = json.loads((tmp_path / "sweep.json").read_text())
    assert done["finished"] == 1 and not done["complete"]
    seen = []
    table = run_sweep(
        SPEC, tmp_path, on_result=lambda row, skipped: seen.append((row["key"], skipped))
    )
    assert table["skipped_as_done"] == 1 and table["complete"]
    assert seen[0] == (str(first.value), True) and [s for _, s in seen] == [True, False]
    assert _numbers(table) == _numbers(local[1])


def test_cli_sweep_from_a_file_skips_what_is_done(local, tmp_path, capsys):
    out, table = local
    spec = tmp_path / "s.toml"
    spec.write_text(
        'settings = ["A1"]\nmethods = ["amid"]\nseeds = 2\n[fixed]\nsteps = 2\nnum-values = 6\n'
        "num-bids = 6\nwidth = 8\niters = 10\nval_iters = 30\n[grid]\ntau = [1e-3]\n"
    )
    argv = ["sweep", str(spec), "--grid", "tau=0.001,0.002", "--set", "precision=float64",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "2/2 configurations (2 skipped as done)" in capsys.readouterr().out
    again = json.loads((out / "sweep.json").read_text())
    assert _numbers(again) == _numbers(table)
    assert main(["sweep", str(spec), "--set", "nonsense=1", "--out", str(out)]) == 2


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason='the Ray backend needs Ray: pip install "mfid[ray]"')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # Ray starts its processes
def test_ray_backend_matches_local(ray_cluster, local, tmp_path):
    rows = []
    one = {**SPEC, "grid": {"tau": [2e-3]}}  # one task: each Ray worker compiles its own programs
    table = run_sweep(one, tmp_path, backend="ray", on_result=lambda r, s: rows.append(r))
    assert table["complete"] and table["backend"] == "ray" and len(rows) == 1
    assert ray_cluster.cluster_resources()["CPU"] == 2
    assert _numbers(table) == _numbers(local[1])[1:]
