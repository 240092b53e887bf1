"""``mfid design <target>``: one module per target, each defining ``register_design(sub)``."""
