"""Sweeps of the revenue-design study: settings × methods × hyperparameters, seeds batched.

A *sweep spec* (a TOML file, flags, or a dict) names the settings, the methods, the seeds per
configuration and the hyperparameters; every combination is one *configuration*: one call of
:func:`auctions.study.run_revenue_design` with one setting and one method, whose seeds run as
one batched program. Keys other than ``setting(s)``, ``method(s)``, ``seeds`` are keyword
arguments of ``run_revenue_design`` (a new keyword of it works here without a code change) or
one of the CLI spellings in :data:`ALIASES` (``lr`` is ``learning_rate``); dashes and
underscores are the same. A TOML spec::

    settings = ["A1", "A2"]
    methods = ["amid", "zeroth-adam", "anneal"]
    seeds = 3                       # repetitions, batched

    [fixed]                         # every configuration
    steps = 30
    num-values = 20
    num-bids = 20

    [grid]                          # Cartesian product, for every method ...
    lr = [1e-4, 1e-3, 1e-2]

    [grid.zeroth-adam]              # ... except those with a table of their own, which
    lr = [1e-4, 1e-3, 1e-2]         #     replaces the common grid for that method
    u = [1e-3, 1e-2]

    [grid.anneal]
    sigma = [1e-3, 1e-2]

    [[runs]]                        # and/or explicit configurations (a list)
    setting = "A3"
    method = "amid"
    lr = 3e-3

Each configuration is identified by a hash of its *resolved* config (every keyword of
``run_revenue_design`` with its default filled in, the setting, the method, the seeds and the
float precision): its results live in ``OUT/runs/<hash>/`` (the run's full report from
:func:`mfid.report.auction.write_report`, with every seed's mechanism,
``run.json`` with the resolved config, and ``row.json``, written last). A configuration whose
``row.json`` exists is skipped, so a killed sweep, started again, only runs what is missing.
The sweep writes ``OUT/sweep.json`` and ``OUT/sweep.md`` (configuration × revenue at the
reported equilibrium ± std over seeds, its exploitability, time; then every method's best
configuration and its sensitivity to the hyperparameters) and ``OUT/sweep.png``.

Backends: ``local`` runs the configurations one after another in this process; ``ray`` runs
each configuration as one Ray task (``cpus``/``gpus`` per task) on the cluster at ``address``
(``"auto"``: an existing one) or on a local one started with ``num_cpus``, and records results
as they finish. Both run the same function (:func:`run_configuration`), so they give the same
numbers. Nothing here assumes a CPU: a task with ``gpus > 0`` runs where Ray gives it a GPU (a
fraction of one: JAX's memory preallocation is switched off for the task, so tasks share it).

Example::

    from mfid.cli.sweep_engine import expand, run_sweep
    spec = {"settings": ["A1"], "methods": ["amid"], "seeds": 2,
            "fixed": {"steps": 2, "num_values": 6, "num_bids": 6, "width": 8, "iters": 10,
                      "val_iters": 20},
            "grid": {"lr": [1e-3, 3e-3]}}
    table = run_sweep(spec, "/tmp/sweep")
    [(r["lr"], r["revenue"]) for r in table["rows"]]
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from auctions.study import LABELS, METHODS, run_revenue_design
from mfid.report.common import new_figure, stamp, write_json, write_text

__all__ = [
    "ALIASES",
    "BACKENDS",
    "SPEC_KEYS",
    "check_spec",
    "config_key",
    "expand",
    "load_spec",
    "run_configuration",
    "run_sweep",
    "tuning_summary",
]

BACKENDS = ("local", "ray")
# CLI / TOML spellings of run_revenue_design's keywords (flag of `mfid design auction` -> keyword)
ALIASES = {"lr": "learning_rate", "zo_lr": "zo_learning_rate"}
SPEC_KEYS = ("settings", "methods", "seeds", "fixed", "grid", "runs")
_NOT_SWEPT = ("methods", "callback")  # keywords of run_revenue_design a sweep sets itself


def _parameters() -> dict[str, inspect.Parameter]:
    params = inspect.signature(run_revenue_design).parameters
    return {k: p for k, p in params.items() if k not in _NOT_SWEPT and p.kind == p.KEYWORD_ONLY}


def _keyword(key: str, where: str) -> str:
    """The ``run_revenue_design`` keyword that the spec key ``key`` names."""
    name = str(key).replace("-", "_")
    name = ALIASES.get(name, name)
    if name not in _parameters():
        known = sorted(set(_parameters()) | set(ALIASES))
        raise ValueError(f"unknown key {key!r} in {where}: not a parameter of the revenue study "
                         f"(known: {', '.join(known)})")  # fmt: skip
    return name


def _display(name: str) -> str:
    """The short name of a keyword in tables (``learning_rate`` -> ``lr``)."""
    inverse = {v: k for k, v in ALIASES.items()}
    return inverse.get(name, name)


def load_spec(path) -> dict:
    """Read a TOML sweep spec (``ValueError`` naming the file when it cannot be read)."""
    from mfid.cli.config import read_toml

    spec = read_toml(path, "sweep spec")
    return check_spec(spec, where=str(Path(path)))


def _as_list(value, key: str, where: str) -> list:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{key!r} in {where} must be a non-empty list, got {value!r}")
    return list(value)


def check_spec(spec: Mapping, where: str = "the sweep spec") -> dict:
    """Normalise a spec (``setting``/``method`` may stand for the lists, a comma-separated
    string for a list; keys as keywords) and check it: ``ValueError`` naming the key."""
    spec = {str(k).replace("-", "_"): v for k, v in dict(spec).items()}
    for one, many in (("setting", "settings"), ("method", "methods")):
        if one in spec:
            if many in spec:
                raise ValueError(f"give {one!r} or {many!r} in {where}, not both")
            spec[many] = spec.pop(one)
    for key in spec:
        if key not in SPEC_KEYS:
            raise ValueError(f"unknown key {key!r} in {where} (expected {', '.join(SPEC_KEYS)}; "
                             "hyperparameters go in [fixed], [grid] or [[runs]])")  # fmt: skip
    out: dict[str, Any] = {}
    out["settings"] = [str(s) for s in _as_list(spec.get("settings", ["A1"]), "settings", where)]
    from auctions.settings import check_setting

    for i, s in enumerate(out["settings"]):
        try:
            out["settings"][i] = check_setting(s)
        except ValueError as err:
            raise ValueError(f"'settings' in {where}: {err}") from None
    out["methods"] = [
        str(m) for m in _as_list(spec.get("methods", list(METHODS)), "methods", where)
    ]
    for m in out["methods"]:
        if m not in METHODS:
            raise ValueError(f"'methods' in {where}: expected a subset of {METHODS}, got {m!r}")
    seeds = spec.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds <= 0:
        raise ValueError(f"'seeds' in {where} must be a positive integer, got {seeds!r}")
    out["seeds"] = seeds
    fixed = spec.get("fixed", {})
    if not isinstance(fixed, Mapping):
        raise ValueError(f"'fixed' in {where} must be a table of key = value")
    out["fixed"] = {_keyword(k, f"[fixed] of {where}"): v for k, v in fixed.items()}
    grid = spec.get("grid", {})
    if not isinstance(grid, Mapping):
        raise ValueError(f"'grid' in {where} must be a table of key = [values]")
    common, per_method = {}, {}
    for k, v in grid.items():
        if k == "*":  # an already checked spec: the common grid
            common.update({_keyword(kk, f"[grid] of {where}"): _as_list(vv, f"grid.{kk}", where)
                           for kk, vv in v.items()})  # fmt: skip
        elif isinstance(v, Mapping):
            if k not in METHODS:
                raise ValueError(f"[grid.{k}] in {where}: a method table must be named after one "
                                 f"of {METHODS}")  # fmt: skip
            per_method[k] = {
                _keyword(kk, f"[grid.{k}] of {where}"): _as_list(vv, f"grid.{k}.{kk}", where)
                for kk, vv in v.items()
            }
        else:
            common[_keyword(k, f"[grid] of {where}")] = _as_list(v, f"grid.{k}", where)
    out["grid"] = {"*": common, **per_method}
    runs = spec.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(r, Mapping) for r in runs):
        raise ValueError(f"'runs' in {where} must be a list of tables ([[runs]])")
    out["runs"] = []
    for i, r in enumerate(runs):
        r = {str(k).replace("-", "_"): v for k, v in r.items()}
        entry = {}
        for one in ("setting", "method"):
            if one in r:
                entry[one] = str(r.pop(one))
        if "setting" in entry:
            entry["setting"] = check_setting(entry["setting"])
        if entry.get("method", METHODS[0]) not in METHODS:
            raise ValueError(f"runs[{i}] in {where}: method must be one of {METHODS}")
        params = dict(r.pop("params", {}))  # an already checked spec
        params.update(r)
        entry["params"] = {_keyword(k, f"runs[{i}] of {where}"): v for k, v in params.items()}
        out["runs"].append(entry)
    return out


def _resolve(setting: str, method: str, seeds: int, params: Mapping, x64: bool) -> dict:
    """The full configuration of one call: every keyword with its default filled in."""
    full = {k: p.default for k, p in _parameters().items() if k != "seeds"}
    full.update(params)
    full.pop("seeds", None)
    return {"setting": setting, "method": method, "seeds": int(seeds), "x64": bool(x64),
            "params": dict(sorted(full.items()))}  # fmt: skip


def config_key(config: Mapping) -> str:
    """A short hash of a resolved configuration (canonical JSON; the key of its results)."""
    text = json.dumps(config, sort_keys=True, default=repr, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def expand(spec: Mapping, x64: bool | None = None) -> list[dict]:
    """Every configuration of a (checked) spec, in order: settings × methods × the method's
    grid, then the explicit ``runs``; each is ``{"key", "setting", "method", "seeds", "x64",
    "params", "swept"}`` (``swept``: the keywords the grid varies, for tables)."""
    spec = check_spec(spec)
    if x64 is None:
        import jax

        x64 = bool(jax.config.jax_enable_x64)
    out, seen = [], set()

    def add(setting, method, params, swept):
        cfg = _resolve(setting, method, spec["seeds"], params, x64)
        key = config_key(cfg)
        if key not in seen:
            seen.add(key)
            out.append({"key": key, **cfg, "swept": list(swept)})

    for setting in spec["settings"]:
        for method in spec["methods"]:
            grid = spec["grid"].get(method, spec["grid"]["*"])
            names = list(grid)
            for values in itertools.product(*(grid[n] for n in names)):
                add(
                    setting,
                    method,
                    {**spec["fixed"], **dict(zip(names, values, strict=True))},
                    names,
                )
    for r in spec["runs"]:
        for setting in [r["setting"]] if "setting" in r else spec["settings"]:
            for method in [r["method"]] if "method" in r else spec["methods"]:
                add(setting, method, {**spec["fixed"], **r["params"]}, list(r["params"]))
    return out


def run_configuration(config: Mapping):
    """Run one configuration (in this process or in a Ray worker) and return its
    :class:`~auctions.study.RevenueStudy` with every array as numpy, ready to pickle."""
    import jax

    jax.config.update("jax_enable_x64", bool(config["x64"]))
    t = time.perf_counter()
    study = run_revenue_design(config["setting"], methods=(config["method"],),
                               seeds=config["seeds"], **config["params"])  # fmt: skip
    wall = time.perf_counter() - t
    runs = {
        m: [dataclasses.replace(r, theta=jax.device_get(r.theta)) for r in rs]
        for m, rs in study.runs.items()
    }
    return dataclasses.replace(study, runs=runs), wall


# --------------------------------------------------------------------------- backends


def _local(todo: list[dict], **_) -> Iterator[tuple[dict, Any]]:
    for config in todo:
        yield config, run_configuration(config)


def _ray(todo: list[dict], *, address=None, num_cpus=None, cpus=1.0, gpus=0.0):
    try:
        import ray
    except ImportError:
        raise ValueError('backend "ray" needs Ray: pip install "mfid[ray]"') from None
    started = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, **kwargs)
        started = True
    options = {"num_cpus": cpus, "num_gpus": gpus}
    if 0 < gpus < 1:  # several tasks share a GPU: JAX must not preallocate most of its memory
        options["runtime_env"] = {"env_vars": {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}}
    task = ray.remote(**options)(run_configuration)
    pending = {task.remote(config): config for config in todo}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                config = pending.pop(ref)
                yield config, ray.get(ref)
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------- recording


def _flat_theta(runs) -> dict[str, np.ndarray]:
    import jax

    out = {}
    for r in runs:
        for path, leaf in jax.tree_util.tree_flatten_with_path(r.theta)[0]:
            name = jax.tree_util.keystr(path) or "theta"
            out[f"seed{r.seed}{name}"] = np.asarray(leaf)
    return out


def _row(config: Mapping, study, wall: float) -> dict:
    """The table row of a finished configuration, read from its study (numbers only)."""
    m = config["method"]
    eqs = [r.equilibrium for r in study.runs[m]]
    rev = np.array([e.revenue for e in eqs])
    meta = study.meta
    bound = meta.get("bound") if meta.get("bound_applies") else None
    per_step = [r.seconds_per_step for r in study.runs[m]]
    return {
        "key": config["key"],
        "setting": config["setting"],
        "method": m,
        "label": LABELS.get(m, m),
        "seeds": config["seeds"],
        "swept": {_display(k): config["params"].get(k) for k in config["swept"]},
        "params": config["params"],
        "revenue": float(rev.mean()),
        "revenue_std": float(rev.std()),
        "revenue_per_seed": rev.tolist(),
        "objective_value": float(np.mean([e.objective for e in eqs])),
        "exploitability": float(np.mean([e.exploitability for e in eqs])),
        "exploitability_max": float(np.max([e.exploitability for e in eqs])),
        "status": sorted({e.status for e in eqs}),
        "share_of_bound": float(rev.mean() / bound) if bound else None,
        "first_price": float(study.first_price.revenue),
        "bound": bound,
        "seconds": float(wall),
        "seconds_per_step": float(np.mean(per_step)),
        "design_steps": int(study.runs[m][0].steps),
    }


def _record(out: Path, config: Mapping, result, command: str) -> dict:
    from mfid.report.auction import write_report

    study, wall = result
    run_dir = out / "runs" / config["key"]
    write_report(study, run_dir, command)
    if not (run_dir / "mechanisms").is_dir():  # the report keeps the mechanisms; else we do
        np.savez(run_dir / "mechanism.npz", **_flat_theta(study.runs[config["method"]]))
    write_json(run_dir / "run.json", {k: v for k, v in config.items() if k != "swept"})
    row = _row(config, study, wall)
    write_json(run_dir / "row.json", row)  # last: marks the configuration as done
    return row


def _load_row(out: Path, key: str) -> dict | None:
    path = out / "runs" / key / "row.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _check_writable(out: Path) -> None:
    try:
        (out / "runs").mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"--out: cannot write to {out}: {err.strerror or err}") from None


def run_sweep(
    spec: Mapping,
    out,
    *,
    backend: str = "local",
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
    command: str = "mfid sweep",
    on_result: Callable[[dict, bool], None] | None = None,
    figure: bool = True,
) -> dict:
    """Run (or resume) the sweep ``spec`` into ``out`` and return its table (the content of
    ``sweep.json``). ``on_result(row, skipped)`` is called for every configuration, first for
    the ones found done (``skipped=True``), then as results arrive. ``sweep.json`` and
    ``sweep.md`` are rewritten after every result, so a killed sweep leaves a partial table;
    the figure is drawn at the end."""
    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {BACKENDS}, got {backend!r}")
    for name, v in (("cpus_per_run", cpus_per_run), ("gpus_per_run", gpus_per_run)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"--{name.replace('_', '-')} must be a number >= 0, got {v!r}")
    if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus <= 0):
        raise ValueError(f"--num-cpus must be a positive integer, got {num_cpus!r}")
    spec = check_spec(spec)
    out = Path(out)
    _check_writable(out)
    configs = expand(spec)
    rows: dict[str, dict] = {}
    todo = []
    for c in configs:
        row = _load_row(out, c["key"])
        if row is None:
            todo.append(c)
        else:
            rows[c["key"]] = row
    skipped = len(rows)
    t0 = time.perf_counter()

    def table(done: bool) -> dict:
        ordered = [rows[c["key"]] for c in configs if c["key"] in rows]
        return {
            "sweep": {k: v for k, v in spec.items()},
            "backend": backend,
            "configurations": len(configs),
            "finished": len(ordered),
            "skipped_as_done": skipped,
            "complete": done and len(ordered) == len(configs),
            "wall_seconds": time.perf_counter() - t0,
            "rows": ordered,
            "tuning": tuning_summary(ordered),
            **stamp(command),
        }

    def write(done: bool) -> dict:
        t = table(done)
        write_json(out / "sweep.json", t)
        write_text(out / "sweep.md", _markdown(t))
        return t

    for c in configs:
        if on_result is not None and c["key"] in rows:
            on_result(rows[c["key"]], True)
    run = _local if backend == "local" else _ray
    kw = dict(address=address, num_cpus=num_cpus, cpus=cpus_per_run, gpus=gpus_per_run)
    results = run(todo, **kw)
    try:
        for config, result in results:
            rows[config["key"]] = _record(out, config, result, command)
            write(False)
            if on_result is not None:
                on_result(rows[config["key"]], False)
    finally:
        results.close()  # a Ray backend cancels what is still pending
    final = write(True)
    if figure:
        _figure(final["rows"], out / "sweep.png")
    return final


# --------------------------------------------------------------------------- summaries


def tuning_summary(rows: Iterable[Mapping], near: float = 0.02) -> list[dict]:
    """Every (setting, method)'s best configuration and its sensitivity to the swept
    hyperparameters: best, median and worst mean revenue over its grid, the relative spread
    ``(best - worst) / |best|``, and the share of its grid within ``near`` (relative) of its own
    best and of the best of every method on that setting."""
    rows = list(rows)
    by: dict[tuple, list] = {}
    for r in rows:
        by.setdefault((r["setting"], r["method"]), []).append(r)
    top = {}
    for (s, _), rs in by.items():
        finite = [_num(r["revenue"]) for r in rs if math.isfinite(_num(r["revenue"]))]
        top[s] = max([top.get(s, -math.inf), *finite])
    out = []
    for (s, m), rs in by.items():
        rev = np.array([_num(r["revenue"]) for r in rs])  # a diverged run (NaN) counts as -inf
        rev = np.where(np.isfinite(rev), rev, -np.inf)
        best = rs[int(np.argmax(rev))]
        b = float(rev.max())
        scale = abs(b) if b else 1.0
        out.append({
            "setting": s, "method": m, "label": LABELS.get(m, m), "grid_points": len(rs),
            "best": best["swept"], "best_key": best["key"], "best_revenue": b,
            "best_revenue_std": best["revenue_std"], "best_exploitability": best["exploitability"],
            "best_share_of_bound": best.get("share_of_bound"),
            "median_revenue": float(np.median(rev)), "worst_revenue": float(rev.min()),
            "relative_spread": float((b - rev.min()) / scale),
            "share_near_own_best": float(np.mean(rev >= b - near * scale)),
            "share_near_overall_best": float(np.mean(rev >= top[s] - near * abs(top[s] or 1.0))),
            "near": near,
        })  # fmt: skip
    return out


def _num(x) -> float:
    """A number of a row (``None``: a non-finite value written as JSON null) as a float."""
    return math.nan if x is None else float(x)


def _fmt(x, spec=".4f") -> str:
    x = _num(x)
    return "—" if not math.isfinite(x) else format(x, spec)


def _flag(row: Mapping) -> str:
    """`` (not converged: …)`` for a row whose equilibria did not all reach the tolerance."""
    bad = [x for x in row.get("status", []) if x != "successful"]
    if not bad:
        return ""
    return f" (not converged: {', '.join(bad)}; max {_fmt(row.get('exploitability_max'), '.1e')})"


def _swept_text(swept: Mapping) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in swept.items()) or "—"  # fmt: skip


def _markdown(t: Mapping) -> str:
    rows = t["rows"]
    lines = [
        "# Sweep",
        "",
        f"{t['finished']} of {t['configurations']} configurations"
        f" ({t['skipped_as_done']} found done and skipped); backend `{t['backend']}`;"
        f" machine: {t['machine']['device']}, {t['machine']['cpu_count']} CPU cores.",
        "",
        f"Command: `{t['command']}`",
        "",
        "Revenue at each configuration's reported equilibrium (mean ± std over its seeds), the",
        "exploitability there (mean over seeds; flagged where a seed's equilibrium did not reach",
        "the tolerance), and the wall time of the configuration (all its seeds, compilation",
        "included). Each configuration's report: `runs/<key>/report.md`.",
        "",
        "| setting | method | hyperparameters | seeds | revenue | share of bound | exploitability"
        " | seconds | key |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        share = r.get("share_of_bound")
        lines.append(
            f"| {r['setting']} | {r['label']} | {_swept_text(r['swept'])} | {r['seeds']} | "
            f"{_fmt(r['revenue'])} ± {_fmt(r['revenue_std'])} | "
            f"{'—' if share is None else _fmt(100 * share, '.1f') + '%'} | "
            f"{_fmt(r['exploitability'], '.1e')}{_flag(r)} | {r['seconds']:.1f} | `{r['key']}` |"
        )
    tun = [x for x in t["tuning"]]
    if tun:
        near = tun[0]["near"]
        lines += [
            "",
            "## Each method's best and its sensitivity",
            "",
            "Over each method's grid: best, median and worst mean revenue; spread = (best − worst) /"
            f" best; the share of the grid within {100 * near:.0f}% of the method's own best and "
            "of the best of every method on the setting.",
            "",
            "| setting | method | grid points | best at | best revenue | median | worst | spread |"
            " near own best | near overall best |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for x in tun:
            lines.append(
                f"| {x['setting']} | {x['label']} | {x['grid_points']} | {_swept_text(x['best'])} |"
                f" {_fmt(x['best_revenue'])} ± {_fmt(x['best_revenue_std'])} |"
                f" {_fmt(x['median_revenue'])} | {_fmt(x['worst_revenue'])} |"
                f" {_fmt(100 * _num(x['relative_spread']), '.1f')}% |"
                f" {100 * x['share_near_own_best']:.0f}% |"
                f" {100 * x['share_near_overall_best']:.0f}% |"
            )
    return "\n".join(lines) + "\n"


def _figure(rows: list[Mapping], path: Path) -> None:
    """One panel per setting: mean revenue (± std over seeds) against the first swept
    hyperparameter, one line per method (and per value of the other swept ones)."""
    if not rows:
        return
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    fig = new_figure(figsize=(5.2 * len(settings), 4))
    axes = np.atleast_1d(fig.subplots(1, len(settings), squeeze=False)[0])
    for ax, s in zip(axes, settings, strict=True):
        lines: dict[str, list] = {}
        for r in rows:
            if r["setting"] != s:
                continue
            sw = dict(r["swept"])
            x_name = next((k for k, v in sw.items() if isinstance(v, (int, float))), None)
            x = sw.pop(x_name) if x_name else 0
            label = r["label"] + (f" ({_swept_text(sw)})" if sw else "")
            lines.setdefault(label, []).append(
                (x, _num(r["revenue"]), _num(r["revenue_std"]), x_name)
            )
        logx = True
        for label, pts in lines.items():
            pts.sort(key=lambda p: p[0])
            xs = np.array([p[0] for p in pts], float)
            ys = np.array([p[1] for p in pts])
            es = np.array([p[2] for p in pts])
            logx = logx and bool(np.all(xs > 0))
            ax.errorbar(xs, ys, yerr=es, marker="o", ms=3, capsize=2, label=label)
        names = {p[3] for pts in lines.values() for p in pts if p[3]}
        if logx:
            ax.set_xscale("log")
        bound = next((r.get("bound") for r in rows if r["setting"] == s and r.get("bound")), None)
        if bound:
            ax.axhline(bound, color="r", ls="--", lw=0.8, label="posted-price bound")
        fp = next((r.get("first_price") for r in rows if r["setting"] == s), None)
        if fp is not None:
            ax.axhline(fp, color="k", ls=":", lw=0.8, label="first price")
        ax.set(title=s, xlabel=" / ".join(sorted(names)) or "configuration",
               ylabel="revenue at the reported equilibrium")  # fmt: skip
        ax.legend(fontsize=6)
    fig.savefig(path, dpi=110)
