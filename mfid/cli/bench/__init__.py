"""``mfid bench <target>``: one module per target, each defining ``register_bench(sub)``."""
