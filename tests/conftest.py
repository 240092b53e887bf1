import os
import sys
import tempfile

# One persistent XLA compilation cache for the whole run: the test workers, the CLI subprocesses,
# the notebook kernels and the Ray workers compile many of the same programs (they inherit this).
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"mfid-tests-xla-{os.getuid()}")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # cache every program
# Test programs are tiny and compiled once: compile time, not run time, is what a test waits
# for, and the backend's optimisation passes are most of it (about half on the auction game);
# XLA's older loop emitters compile the small fusions faster than its fusion emitters (the
# beach-bar adjoint cross-check: 15 s against 24 s from a cold cache).
_FAST_COMPILE = ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
                 " --xla_cpu_use_fusion_emitters=false")  # fmt: skip


def _xla_accepts(flags: str) -> bool:
    """Whether this jaxlib starts with ``flags`` (XLA aborts on a flag it does not know)."""
    import subprocess

    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    code = "import jax.numpy as jnp; jnp.zeros(1).block_until_ready()"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True).returncode == 0


if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):  # once per run:
    flags = (os.environ.get("XLA_FLAGS", "") + " " + _FAST_COMPILE).strip()  # workers inherit
    if _xla_accepts(flags):
        os.environ["XLA_FLAGS"] = flags

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

sys.path.insert(0, os.path.dirname(__file__))  # tests/helpers.py


import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Free every module's compiled XLA programs when it ends: one process compiles thousands
    of programs over the suite, and their code mappings would otherwise accumulate."""
    yield
    jax.clear_caches()
    gc.collect()


try:  # property tests (tests/test_fuzz_pmfg.py): a fixed, derandomized profile in CI
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "mfid",
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "mfid"))
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass


@pytest.fixture(autouse=True)
def _restore_cpu_affinity():
    """A design command run in-process pins its process to one core (mfid.cli); give the test
    process its cores back afterwards, so parallel test workers do not all end up on core 0."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    yield
    if cores is not None and os.sched_getaffinity(0) != cores:
        os.sched_setaffinity(0, cores)
