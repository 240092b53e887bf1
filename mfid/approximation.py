"""Gap-vs-N study: how fast does the finite-N objective approach its mean-field value?

For a grid of population sizes ``N`` and ``R`` independent replicates per ``N``, a *sampler*
returns the per-capita objective ``G_N^{(r)}`` of each replicate (and, optionally, the paired
deviation gain ``d_N^{(r)}`` of one agent switching to its mean-field best response). The study
compares them with the mean-field value ``g``::

    bias_N  = mean_r G_N^{(r)} - g                     (reported as "gap"; stderr s_N / sqrt(R))
    rmse_N  = sqrt( mean_r (G_N^{(r)} - g)^2 )          (includes the O(1/sqrt N) fluctuation)
    eps_N   = mean_r d_N^{(r)}                          (N-player exploitability of the policy)

and fits decay exponents ``|bias_N| ~ c N^beta`` by weighted least squares of ``log |bias_N|``
on ``log N``. The weights are the inverse delta-method variances of ``log |bias_N|``::

    Var(log |bias_N|) ~= stderr_N^2 / bias_N^2,      w_N = bias_N^2 / stderr_N^2

so rows where the gap is not resolved (``|bias_N| <~ 2 stderr_N``: the log of the absolute value
of noise) get little weight. The confidence interval of ``beta`` is a percentile bootstrap over
replicates (resample the ``R`` replicates within every ``N``, recompute the gaps, their standard
errors, the weights and the fit). The same fit is made for ``rmse_N`` (delta-method variance
``Var((G-g)^2) / (4 R rmse^2)``) and for ``|eps_N - eps_MF|`` when a mean-field deviation gain is
given. A smooth functional of the empirical measure has bias ``O(1/N)`` (``beta = -1``) and
fluctuation ``O(1/sqrt N)`` (RMSE ``beta = -1/2``).

:func:`adaptive_gap_study` draws the replicates in batches instead of a fixed ``R``
(:func:`next_batch`): at every ``N`` until the gap is resolved (``|bias_N| > sigma stderr_N``,
``sigma = 3``), or ``stderr_N`` reaches a target, or a cap; each row records why it stopped, an
unresolved row the bound ``|E G_N - g| < |bias_N| + 2 stderr_N``, and the bias exponent is then
fitted on the resolved rows only. Its state (the replicates per ``N``) can be saved after every
batch and passed back to resume an interrupted study to the same result.

Example::

    import jax, jax.numpy as jnp
    from mfid import BeachBar
    from mfid.approximation import game_sampler, gap_study
    game = BeachBar.create(num_states=10, horizon=5)
    pi = jnp.full((5, 10, 3), 1 / 3)
    sampler, g, eps = game_sampler(game, pi, None)
    study = gap_study(sampler, g, [10, 100, 1000], reps=50, key=jax.random.key(0),
                      mean_field_deviation=eps)
    study.exponent, study.exponent_ci
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mfid.checks import check_count, check_ns, check_policy
from mfid.finite import deviation_gain
from mfid.game import MeanFieldGame

__all__ = [
    "GapRow",
    "GapStudy",
    "fit_exponent",
    "bootstrap_exponent",
    "summarize",
    "gap_study",
    "adaptive_gap_study",
    "adaptive_replicates",
    "next_batch",
    "game_sampler",
    "check_ns",
]


@dataclasses.dataclass(frozen=True)
class GapRow:
    """One population size: mean ``value`` of ``G_N``, ``gap = value - g`` and its ``stderr``,
    ``rmse`` of ``G_N - g``, deviation gain ``eps_N`` and its stderr (``nan`` when not
    estimated), ``resolved`` = ``|gap| > sigma stderr`` (``sigma = 2`` unless the study says
    otherwise), ``reps`` replicates; ``gap_bound = |gap| + 2 stderr`` (an upper bound on the bias
    ``|E G_N - g|`` at about 97.5 %, the point drawn for an unresolved row) and ``stop``, why the
    replicates stopped (``"fixed"``: a fixed ``R``; adaptive: ``"resolved"``, ``"target_se"``,
    ``"max_reps"``, see :func:`adaptive_replicates`)."""

    n: int
    value: float
    gap: float
    stderr: float
    rmse: float
    deviation_gain: float
    deviation_stderr: float
    resolved: bool
    reps: int
    gap_bound: float = float("nan")
    stop: str = "fixed"


@dataclasses.dataclass(frozen=True)
class GapStudy:
    """Result of :func:`gap_study` / :func:`summarize`. Exponents are slopes of ``log`` error
    on ``log N`` (``-0.5`` means ``1/sqrt N``); CIs are bootstrap percentile intervals.
    ``resolve_sigma``: a row is resolved when ``|gap| > resolve_sigma * stderr``;
    ``fit_resolved_only``: the bias exponent is fitted on the resolved rows only."""

    setting: str
    mean_field: float
    mean_field_deviation: float
    rows: tuple
    exponent: float
    exponent_ci: tuple
    rmse_exponent: float
    rmse_exponent_ci: tuple
    deviation_exponent: float
    deviation_exponent_ci: tuple
    level: float
    resolve_sigma: float = 2.0
    fit_resolved_only: bool = False

    def to_json(self) -> dict:
        """Plain-JSON dict (``nan`` as ``None``)."""

        def clean(x):
            if isinstance(x, float) and not np.isfinite(x):
                return None
            if isinstance(x, (tuple, list)):
                return [clean(v) for v in x]
            return x

        return {
            "setting": self.setting,
            "mean_field": clean(self.mean_field),
            "mean_field_deviation_gain": clean(self.mean_field_deviation),
            "rows": [{k: clean(v) for k, v in dataclasses.asdict(r).items()} for r in self.rows],
            "exponent": clean(self.exponent),
            "exponent_ci": clean(self.exponent_ci),
            "exponent_of": "mean bias |E G_N - g| (weighted log-log least squares"
            + (", resolved rows only)" if self.fit_resolved_only else ")"),
            "exponent_rows": [r.n for r in self.rows if r.resolved or not self.fit_resolved_only],
            "rmse_exponent": clean(self.rmse_exponent),
            "rmse_exponent_ci": clean(self.rmse_exponent_ci),
            "deviation_exponent": clean(self.deviation_exponent),
            "deviation_exponent_ci": clean(self.deviation_exponent_ci),
            "ci_level": self.level,
            "resolve_sigma": self.resolve_sigma,
        }


def fit_exponent(ns, err, stderr):
    """Weighted least squares of ``log err`` on ``log N`` with weights ``err^2 / stderr^2``.

    Vectorised over leading axes of ``err``/``stderr`` (shape ``(..., len(ns))``). Returns
    ``(slope, intercept)``; points with ``err <= 0`` or non-finite weight are dropped, and the
    slope is ``nan`` when fewer than two points remain.
    """
    x = np.log(np.asarray(ns, dtype=np.float64))
    err = np.asarray(err, dtype=np.float64)
    se = np.asarray(stderr, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(err)
        w = (err / se) ** 2
    ok = (err > 0) & np.isfinite(y) & np.isfinite(w) & (w > 0)
    w = np.where(ok, w, 0.0)
    y = np.where(ok, y, 0.0)
    sw = w.sum(-1)
    npts = ok.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        xm = (w * x).sum(-1) / sw
        ym = (w * y).sum(-1) / sw
        sxx = (w * (x - xm[..., None]) ** 2).sum(-1)
        sxy = (w * (x - xm[..., None]) * (y - ym[..., None])).sum(-1)
        slope = sxy / sxx
    slope = np.where(npts >= 2, slope, np.nan)
    return slope, ym - slope * xm


_BOOT_ELEMS = 1 << 22


def _stats(samples, g):
    """Bias, its stderr, RMSE and its delta-method stderr for samples ``(..., R)``."""
    R = samples.shape[-1]
    dev = samples - g
    bias = dev.mean(-1)
    se = samples.std(-1, ddof=1) / np.sqrt(R) if R > 1 else np.full(bias.shape, np.nan)
    sq = dev**2
    msq = sq.mean(-1)
    rmse = np.sqrt(msq)
    with np.errstate(divide="ignore", invalid="ignore"):
        se_msq = sq.std(-1, ddof=1) / np.sqrt(R) if R > 1 else np.full(bias.shape, np.nan)
        se_rmse = se_msq / (2.0 * rmse)
    return bias, se, rmse, se_rmse


def bootstrap_exponent(ns, samples, g, *, stat: str = "bias", n_boot: int = 1000, seed=0):
    """Bootstrap distribution of the fitted exponent: ``n_boot`` slopes.

    ``samples``: list (one per ``N``) of arrays of replicates; ``stat``: ``"bias"`` (fit
    ``|mean - g|``) or ``"rmse"``. Replicates are resampled with replacement within every ``N``.
    """
    if stat not in ("bias", "rmse"):
        raise ValueError(f"stat must be 'bias' or 'rmse', got {stat!r}")
    n_boot = check_count(n_boot, "n_boot")
    rng = np.random.default_rng(seed)
    errs, ses = [], []
    for x in samples:
        x = np.asarray(x, dtype=np.float64)
        R = x.shape[0]
        # resample in chunks of at most _BOOT_ELEMS values, so memory stays bounded for large R
        chunk = max(1, min(n_boot, _BOOT_ELEMS // max(R, 1)))
        parts = []
        for start in range(0, n_boot, chunk):
            idx = rng.integers(0, R, size=(min(chunk, n_boot - start), R))
            parts.append(_stats(x[idx], g))
        bias, se, rmse, se_rmse = (np.concatenate(p) for p in zip(*parts, strict=True))
        errs.append(np.abs(bias) if stat == "bias" else rmse)
        ses.append(se if stat == "bias" else se_rmse)
    return fit_exponent(ns, np.stack(errs, -1), np.stack(ses, -1))[0]


def _fit_with_ci(ns, samples, g, stat, n_boot, level, seed):
    if len(ns) < 2:
        return float("nan"), (float("nan"), float("nan"))
    bias, se, rmse, se_rmse = zip(
        *(_stats(np.asarray(x, np.float64), g) for x in samples), strict=True
    )
    err = np.abs(bias) if stat == "bias" else np.asarray(rmse)
    s = np.asarray(se) if stat == "bias" else np.asarray(se_rmse)
    slope = float(fit_exponent(ns, err, s)[0])
    boot = bootstrap_exponent(ns, samples, g, stat=stat, n_boot=n_boot, seed=seed)
    boot = boot[np.isfinite(boot)]
    if boot.size == 0 or not np.isfinite(slope):
        return slope, (float("nan"), float("nan"))
    q = (1.0 - level) / 2.0
    return slope, (float(np.quantile(boot, q)), float(np.quantile(boot, 1.0 - q)))


def summarize(
    ns: Sequence[int],
    values: Sequence,
    g: float,
    *,
    gains: Sequence | None = None,
    mean_field_deviation: float | None = None,
    setting: str = "",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    resolve_sigma: float = 2.0,
    fit_resolved_only: bool = False,
    stops: Sequence[str] | None = None,
) -> GapStudy:
    """Build a :class:`GapStudy` from replicate samples: ``values[i]`` are the ``G_N`` of
    ``ns[i]`` (shape ``(R_i,)``), ``gains[i]`` the paired deviation gains (optional).

    A row is resolved when ``|gap| > resolve_sigma * stderr``. With ``fit_resolved_only`` the
    bias exponent and its bootstrap CI use the resolved rows only (an unresolved row's
    ``|gap|`` is the absolute value of noise; it is reported as the bound ``gap_bound``); the
    RMSE is estimated to a relative precision of about ``1 / sqrt(2 R)`` at every ``N`` and its
    fit always uses every row. ``stops[i]`` is stored as the row's ``stop`` (default
    ``"fixed"``)."""
    if len(values) != len(ns) or (gains is not None and len(gains) != len(ns)):
        raise ValueError("values (and gains) must have one entry per population size")
    if stops is not None and len(stops) != len(ns):
        raise ValueError("stops must have one entry per population size")
    if not (0.0 < level < 1.0):
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    if not (np.isfinite(resolve_sigma) and resolve_sigma > 0):
        raise ValueError(f"resolve_sigma must be positive, got {resolve_sigma!r}")
    g = float(g)
    rows = []
    for i, n in enumerate(ns):
        v = np.asarray(values[i], dtype=np.float64)
        bias, se, rmse, _ = _stats(v, g)
        if gains is not None:
            d = np.asarray(gains[i], dtype=np.float64)
            dg = float(d.mean())
            dse = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
        else:
            dg = dse = float("nan")
        rows.append(
            GapRow(
                int(n), float(v.mean()), float(bias), float(se), float(rmse), dg, dse,
                bool(abs(bias) > resolve_sigma * se), int(v.size), float(abs(bias) + 2 * se),
                "fixed" if stops is None else str(stops[i]),
            )
        )  # fmt: skip
    keep = [i for i, r in enumerate(rows) if r.resolved or not fit_resolved_only]
    exp, ci = _fit_with_ci([ns[i] for i in keep], [values[i] for i in keep], g, "bias",
                           n_boot, level, seed)  # fmt: skip
    rexp, rci = _fit_with_ci(ns, values, g, "rmse", n_boot, level, seed + 1)
    eps = float("nan") if mean_field_deviation is None else float(mean_field_deviation)
    if gains is not None and np.isfinite(eps):
        dexp, dci = _fit_with_ci(ns, gains, eps, "bias", n_boot, level, seed + 2)
    else:
        dexp, dci = float("nan"), (float("nan"), float("nan"))
    return GapStudy(setting, g, eps, tuple(rows), exp, ci, rexp, rci, dexp, dci, level,
                    float(resolve_sigma), bool(fit_resolved_only))  # fmt: skip


def gap_study(
    sampler: Callable,
    g: float,
    ns: Sequence[int],
    reps: int,
    key,
    *,
    mean_field_deviation: float | None = None,
    setting: str = "",
    n_boot: int = 1000,
    level: float = 0.95,
    callback: Callable[[int, dict], None] | None = None,
) -> GapStudy:
    """Run ``sampler(n, reps, key) -> (values (reps,), gains (reps,) or None)`` for every ``n``
    in ``ns`` (independent keys) and summarise (see module docstring and :func:`summarize`).
    ``callback(i, {"N": n, "gap": mean - g})`` is called after each population size."""
    ns = check_ns(ns)
    reps = check_count(reps, "reps", minimum=2)
    values, gains = [], []
    keys = jax.random.split(key, len(ns))
    for i, (n, k) in enumerate(zip(ns, keys, strict=True)):
        v, d = sampler(n, reps, k)
        values.append(np.asarray(v, dtype=np.float64))
        gains.append(None if d is None else np.asarray(d, dtype=np.float64))
        if callback is not None:
            callback(i, {"N": n, "gap": float(values[-1].mean() - g)})
    if any(d is None for d in gains):
        gains = None
    return summarize(
        ns, values, g, gains=gains, mean_field_deviation=mean_field_deviation,
        setting=setting, n_boot=n_boot, level=level,
    )  # fmt: skip


STOP_REASONS = ("resolved", "target_se", "max_reps")


def next_batch(values, g: float, *, batch: int, max_reps: int, target_se: float,
               sigma: float = 3.0) -> tuple[int, str | None]:  # fmt: skip
    """The adaptive replicate rule: ``(size of the next batch, None)``, or ``(0, reason)`` when
    the replicates ``values`` of ``G_N`` drawn so far suffice. With ``R`` replicates, ``gap`` their
    mean minus ``g``, ``s`` their standard deviation and ``se = s / sqrt R``, it stops when::

        |gap| > sigma se      "resolved"   (the bias is measured)
        se <= target_se       "target_se"  (|E G_N - g| <~ |gap| + 2 se is bounded)
        R >= max_reps         "max_reps"   (neither; the row says it is unresolved)

    tested in this order. Otherwise the next batch aims at the projected total
    ``1.2 min((s / target_se)^2, (sigma s / gap)^2)``: at least ``batch``, at most ``R`` (the
    total at most doubles, so a noisy early projection cannot overshoot far), rounded up to
    ``batch * 2^j`` (few distinct batch sizes: each is one compilation of the sampler) and
    never past ``max_reps``. The first batch is ``batch``. ``target_se`` is absolute here
    (the CLI scales it by ``|g|``). Stopping on resolution makes the reported ``|gap|`` of a
    resolved row slightly optimistic (a sequential test); with ``sigma = 3`` this is small
    against its standard error."""
    v = np.asarray(values, dtype=np.float64)
    R = v.size
    if R < 2:  # no spread yet: a first (or completing) batch
        return max(2 - R, min(batch, max_reps - R)), None
    gap = float(v.mean() - g)
    sd = float(v.std(ddof=1))
    se = sd / np.sqrt(R)
    if abs(gap) > sigma * se:
        return 0, "resolved"
    if se <= target_se:
        return 0, "target_se"
    if R >= max_reps:
        return 0, "max_reps"
    with np.errstate(divide="ignore"):
        need_se = (sd / target_se) ** 2 if target_se > 0 else np.inf
        need_res = (sigma * sd / abs(gap)) ** 2 if gap != 0 else np.inf
    want = 1.2 * min(need_se, need_res)
    size = int(np.clip(np.ceil(want) - R if np.isfinite(want) else R, batch, max(R, batch)))
    size = batch * (1 << int(np.ceil(np.log2(size / batch))))
    return int(min(size, max_reps - R)), None


def adaptive_replicates(
    sampler: Callable,
    n: int,
    key,
    g: float,
    *,
    batch: int,
    max_reps: int,
    target_se: float,
    sigma: float = 3.0,
    entry: dict | None = None,
    on_batch: Callable[[dict], None] | None = None,
) -> dict:
    """Replicates of ``G_N`` at one ``n`` in batches until :func:`next_batch` stops.

    Batch ``b`` calls ``sampler(n, size_b, key_b)`` with ``key_0 = key`` and
    ``key_b = fold_in(key, b)``, so a single batch is :func:`gap_study`'s draw and a run resumed
    from ``entry`` (the dict this function returns and updates: ``values``, ``gains`` (lists or
    ``None``), ``batches``, ``seconds``, ``stop``) continues exactly as the uninterrupted run
    would. ``on_batch(entry)`` is called after every batch and once when the stop is decided
    (to checkpoint it or report progress). Memory is that of one batch of the sampler plus the ``R`` stored numbers."""
    import time

    entry = {"values": [], "gains": [], "batches": 0, "seconds": 0.0, "stop": None,
             **(entry or {})}  # fmt: skip
    while entry["stop"] is None:
        size, stop = next_batch(entry["values"], g, batch=batch, max_reps=max_reps,
                                target_se=target_se, sigma=sigma)  # fmt: skip
        if stop is not None:
            entry["stop"] = stop
            if on_batch is not None:
                on_batch(entry)
            break
        b = entry["batches"]
        k = key if b == 0 else jax.random.fold_in(key, b)
        t0 = time.perf_counter()
        v, d = sampler(n, size, k)
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        entry["values"] = list(entry["values"]) + v.tolist()
        if d is None or entry["gains"] is None:
            entry["gains"] = None
        else:
            entry["gains"] = list(entry["gains"]) + np.asarray(d, np.float64).reshape(-1).tolist()
        entry["batches"] = b + 1
        entry["seconds"] = float(entry["seconds"]) + time.perf_counter() - t0
        if on_batch is not None:
            on_batch(entry)
    return entry


def adaptive_gap_study(
    sampler: Callable,
    g: float,
    ns: Sequence[int],
    key,
    *,
    batch: int = 32,
    max_reps: int = 4096,
    target_se: float = 0.0,
    sigma: float = 3.0,
    mean_field_deviation: float | None = None,
    setting: str = "",
    n_boot: int = 1000,
    level: float = 0.95,
    state: dict | None = None,
    on_batch: Callable[[int, dict, dict], None] | None = None,
) -> GapStudy:
    """:func:`gap_study` with adaptive replicates: every ``n`` runs :func:`adaptive_replicates`
    (``sampler(n, reps, key)`` as in :func:`gap_study`, the same per-``n`` keys) until its gap is
    resolved (``|gap| > sigma se``), its standard error is at most ``target_se`` (absolute) or
    ``max_reps`` replicates are drawn; rows say which (``stop``), a row is resolved at
    ``sigma`` and the bias exponent is fitted on the resolved rows only.

    ``state`` maps ``n`` to the entries of :func:`adaptive_replicates` (it is filled in place;
    an entry with a ``stop`` is reused as it is, a partial one is continued), so a caller that
    saves ``state`` in ``on_batch(n, entry, state)`` can resume an interrupted study and get the
    same result. Example::

        import jax, jax.numpy as jnp
        from mfid import BeachBar
        from mfid.approximation import adaptive_gap_study, game_sampler
        game = BeachBar.create(num_states=10, horizon=5)
        sampler, g, eps = game_sampler(game, jnp.full((5, 10, 3), 1 / 3), None)
        state = {}
        study = adaptive_gap_study(sampler, g, [10, 100], jax.random.key(0), batch=8,
                                   max_reps=64, target_se=1e-3 * abs(g), state=state)
        [(r.n, r.reps, r.stop) for r in study.rows]   # e.g. [(10, 8, 'resolved'), ...]
    """
    ns = check_ns(ns)
    batch = check_count(batch, "batch", minimum=2)
    max_reps = check_count(max_reps, "max_reps", minimum=batch)
    if not (np.isfinite(target_se) and target_se >= 0):
        raise ValueError(f"target_se must be a finite number >= 0, got {target_se!r}")
    state = {} if state is None else state
    keys = jax.random.split(key, len(ns))
    for n, k in zip(ns, keys, strict=True):
        hook = None if on_batch is None else (lambda e, n=n: on_batch(n, e, state))  # noqa: E731

        def record(e, n=n, hook=hook):
            state[n] = e
            if hook is not None:
                hook(e)

        state[n] = adaptive_replicates(
            sampler, n, k, g, batch=batch, max_reps=max_reps, target_se=target_se, sigma=sigma,
            entry=state.get(n), on_batch=record,
        )  # fmt: skip
    entries = [state[n] for n in ns]
    gains = [e["gains"] for e in entries]
    if any(d is None for d in gains):
        gains = None
    return summarize(
        ns, [np.asarray(e["values"]) for e in entries], g, gains=gains,
        mean_field_deviation=mean_field_deviation, setting=setting, n_boot=n_boot, level=level,
        resolve_sigma=sigma, fit_resolved_only=True, stops=[e["stop"] for e in entries],
    )  # fmt: skip


def game_sampler(game: MeanFieldGame, policy, theta, *, deviator=None, estimator: str = "auto"):
    """Sampler for :func:`gap_study` on any PMFG via :mod:`mfid.finite`.

    ``G_N`` is the per-capita (unregularised) return ``(1/N) sum_i sum_h r_{h,i}``, whose
    mean-field value is ``g = mu0 . V^pi_0`` at ``tau = 0``. The deviation gain is that of agent 0
    playing ``deviator`` (default: the *unregularised* best response ``argmax q*`` to
    ``Lambda(pi)``; at a regularised equilibrium the regularised best response is ``pi`` itself,
    so its gain is zero by construction); its mean-field value is
    ``eps_MF = V(Lambda(pi), deviator) - V(Lambda(pi), pi)`` at ``tau = 0`` (the unregularised
    exploitability ``E^0(pi)`` for the default deviator). ``estimator``: ``"conditional"``
    (:func:`mfid.finite.conditional_deviation_gain`, agent 0's randomness integrated out; needs a
    kernel independent of ``L``), ``"sampled"`` (:func:`mfid.finite.deviation_gain`, common random
    numbers) or ``"auto"`` (conditional when the game allows it). Returns ``(sampler, g, eps_MF)``.
    """
    from mfid.finite import (
        _check_population_independent_kernel,
        conditional_deviation_gain,
        simulate,
    )
    from mfid.values import best_response, policy_value

    if estimator not in ("auto", "sampled", "conditional"):
        raise ValueError(f"estimator must be 'auto', 'sampled' or 'conditional', got {estimator!r}")
    shape = (game.horizon, game.num_states, game.num_actions)
    policy = check_policy(policy, shape, "policy")
    zero = jnp.zeros((), policy.dtype)
    if deviator is None:
        deviator = best_response(game, policy, theta, zero)
    deviator = check_policy(deviator, shape, "deviator")
    g = float(policy_value(game, policy, theta, zero))
    eps = float(policy_value_against(game, deviator, policy, theta)) - g
    if estimator == "auto":
        try:
            _check_population_independent_kernel(game, theta, policy.dtype)
            estimator = "conditional"
        except ValueError:
            estimator = "sampled"

    def sampler(n, reps, key):
        if estimator == "conditional":
            k1, k2 = jax.random.split(key)
            values = simulate(game, policy, theta, n, reps, k1).value
            d, _ = conditional_deviation_gain(game, policy, theta, n, reps, k2, deviator=deviator)
            return values, d
        d, sample = deviation_gain(game, policy, theta, n, reps, key, deviator=deviator)
        return sample.value, d

    sampler.estimator = estimator
    return sampler, g, eps


def policy_value_against(game: MeanFieldGame, policy, population, theta):
    """Unregularised value ``mu0 . V^{policy}_0`` of one agent playing ``policy`` in the flow
    ``Lambda(population)`` of everyone else (``tau = 0``)."""
    from mfid.flow import rollout
    from mfid.values import evaluate_policy

    _, dyn = rollout(game, population, theta)
    _, V = evaluate_policy(dyn, policy, jnp.zeros((), policy.dtype))
    return game.mu0.astype(V.dtype) @ V[0]
