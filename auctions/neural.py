"""Neural batched-auction mechanism, a residual MLP in flax ``nnx``.

Input ``x = (one_hot(h, H), nu_h (M,), r_h)``; the network ::

    z_0 = relu(W_in x + c_in)
    z_{l+1} = z_l + W_{l,2} relu(W_{l,1} z_l + c_{l,1}) + c_{l,2}       (l < depth)
    (o_alpha, o_1..o_M) = W_out z_depth + c_out

gives the mechanism ::

    alpha_h = r_h sigmoid(o_alpha + beta_h)                      (never above r_h)
    pay_h(b_k) = sum_{j <= k} (b_j - b_{j-1}) sigmoid(o_j),  b_{-1} = 0

The payment rule is non-decreasing in the bid (every increment is >= 0) and never above it
(every increment is at most ``b_j - b_{j-1}``). Width 256 by default.

**Starting point** (a choice, documented here). ``beta_h`` is a fixed per-round offset, the
logit of the first-price schedule ``r_h / (H - h)`` (the remaining supply spread evenly over
the remaining rounds, capped at 0.95 in the last round as in
:class:`~auctions.mechanisms.StaticMechanism`)::

    beta_h = logit(min(1 / (H - h), 0.95))          (schedule="even"; schedule="none": 0)

so a network whose allocation output is 0 *is* the first-price schedule and the network learns
the deviation from it. The output layer starts small (kernel scaled by ``out_scale = 0.1``:
outputs vary by about 0.01 across inputs at width 256) with biases ``alloc_bias = 0`` and
``pay_bias = 4``, so the initial mechanism offers ``alpha_h ≈ r_h / (H - h)`` in every round and
charges ``sigmoid(4) ≈ 0.98`` of the bid: close to first price in every setting, whatever its
horizon. (Without the offset, ``alpha_h = r_h / 2`` in every round: on A8, with H = 100, that
sells the whole supply in the first rounds for almost nothing.)

``theta`` is a plain nested dict of arrays (the ``nnx`` state as a pure dict); the network
structure (``nnx.GraphDef``) is a static field, so the mechanism is a pytree usable inside OMD
and ``theta`` is what the design loop optimises. ``init_theta`` uses the ``nnx`` initialisers
with the output layer scaled by ``out_scale`` and biases ``alloc_bias`` and ``pay_bias``.

Example::

    import jax, jax.numpy as jnp
    from auctions.neural import NeuralMechanism
    mech = NeuralMechanism.create(num_bids=100, horizon=4, width=256, key=jax.random.key(0))
    theta = mech.init_theta()
    alpha, pay = mech(0, jnp.full(100, 0.01), 0.8, theta)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx, struct

from auctions.mechanisms import bid_grid

__all__ = ["NeuralMechanism", "ResidualMLP", "SCHEDULES", "schedule_logits"]

SCHEDULES = ("even", "none")
_LAST_ROUND_CAP = 0.95


def schedule_logits(horizon: int, schedule: str = "even", dtype=None):
    """The per-round allocation offsets ``beta (H,)`` (module docstring): ``logit(min(1 / (H - h),
    0.95))`` for ``"even"``, zeros for ``"none"``."""
    dtype = dtype or jnp.result_type(float)
    if schedule == "none":
        return jnp.zeros((horizon,), dtype)
    frac = jnp.minimum(1.0 / (horizon - jnp.arange(horizon, dtype=dtype)), _LAST_ROUND_CAP)
    return jnp.log(frac) - jnp.log1p(-frac)


def _dense(din: int, dout: int, rngs: nnx.Rngs) -> nnx.Einsum:
    """``y = W x + c`` with the kernel stored as ``W (dout, din)`` (LeCun-normal in ``din``, zero
    bias). This layout makes the weight cotangent ``c x^T`` of every call a contiguous
    ``(dout, din)`` update, which the design gradient accumulates once per round and OMD step."""
    return nnx.Einsum(
        "...i,oi->...o",
        (dout, din),
        (dout,),
        kernel_init=nnx.initializers.lecun_normal(in_axis=-1, out_axis=-2),
        rngs=rngs,
    )


class ResidualMLP(nnx.Module):
    """``din -> width -> [residual block] x depth -> dout`` with ReLU activations."""

    def __init__(self, din: int, dout: int, width: int, depth: int, rngs: nnx.Rngs):
        self.inp = _dense(din, width, rngs)
        self.blocks = nnx.List(
            [
                nnx.List([_dense(width, width, rngs), _dense(width, width, rngs)])
                for _ in range(depth)
            ]
        )
        self.out = _dense(width, dout, rngs)

    def __call__(self, x):
        z = jax.nn.relu(self.inp(x))
        for lin1, lin2 in self.blocks:
            z = z + lin2(jax.nn.relu(lin1(z)))
        return self.out(z)


@struct.dataclass
class NeuralMechanism:
    """Residual-MLP mechanism. With ``o = MLP(one_hot(h, H), nu_h (M,), r_h)`` (``M + 1``
    outputs)::

        alpha_h    = r_h sigmoid(o_alpha + beta_h),   beta_h = logit(min(1 / (H - h), 0.95))
        pay_h(b_k) = sum_{j <= k} (b_j - b_{j-1}) sigmoid(o_j),   b_{-1} = 0

    so ``0 <= alpha_h <= r_h`` and the payment is non-decreasing in the bid and never above it.
    ``theta`` is the network's parameters as a plain nested dict. Build it with :meth:`create`."""

    theta0: Any
    graphdef: Any = struct.field(pytree_node=False, default=None)
    num_bids: int = struct.field(pytree_node=False, default=100)
    horizon: int = struct.field(pytree_node=False, default=4)
    width: int = struct.field(pytree_node=False, default=256)
    schedule: str = struct.field(pytree_node=False, default="even")

    @classmethod
    def create(
        cls,
        num_bids: int = 100,
        horizon: int = 4,
        *,
        width: int = 256,
        depth: int = 2,
        key=None,
        out_scale: float = 0.1,
        alloc_bias: float = 0.0,
        pay_bias: float = 4.0,
        schedule: str = "even",
    ) -> NeuralMechanism:
        """A mechanism for ``num_bids`` bid levels ``M`` and ``horizon`` rounds ``H``, with its
        initial parameters (:meth:`init_theta`).

        ``width`` and ``depth``: the residual MLP
        ``(H + M + 1) -> width -> [residual block] x depth -> (M + 1)``; ``key``: the PRNG key of
        the initialisation (default ``jax.random.key(0)``). The start is close to first price: the
        output layer's kernel is scaled by ``out_scale``, its biases are ``alloc_bias`` (allocation)
        and ``pay_bias`` (payments, ``sigmoid(4) ≈ 0.98`` of the bid), and ``schedule="even"`` adds
        the per-round offset ``beta_h`` so that a zero allocation output offers ``r_h / (H - h)``
        (``"none"``: no offset). ``ValueError`` for a size that is not a positive integer or an
        unknown ``schedule``.

        Example::

            import jax
            from auctions import NeuralMechanism
            mech = NeuralMechanism.create(num_bids=20, horizon=3, width=16, key=jax.random.key(1))
            theta = mech.init_theta()   # {"inp": ..., "blocks": ..., "out": ...}"""
        for name, v in (("num_bids", num_bids), ("horizon", horizon), ("width", width)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be an integer >= 0, got {depth!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        key = jax.random.key(0) if key is None else key
        seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
        net = ResidualMLP(horizon + num_bids + 1, num_bids + 1, width, depth, nnx.Rngs(seed))
        graphdef, state = nnx.split(net)
        theta0 = jax.tree.map(jnp.asarray, nnx.to_pure_dict(state))
        dtype = jnp.result_type(float)
        theta0 = jax.tree.map(lambda x: x.astype(dtype), theta0)
        bias = jnp.concatenate(
            [jnp.full((1,), alloc_bias, dtype), jnp.full((num_bids,), pay_bias, dtype)]
        )
        theta0["out"] = {"kernel": theta0["out"]["kernel"] * out_scale, "bias": bias}
        return cls(theta0, graphdef, num_bids, horizon, width, schedule)

    def init_theta(self, key=None):
        """The initial parameters that :meth:`create` built (``key`` is ignored: the key given to
        :meth:`create` fixed them)."""
        return self.theta0

    def outputs(self, h, nu, r, theta):
        """Raw network outputs ``(o_alpha, o (M,))``."""
        x = jnp.concatenate(
            [
                jax.nn.one_hot(h, self.horizon, dtype=nu.dtype),
                nu,
                jnp.reshape(r, (1,)).astype(nu.dtype),
            ]
        )
        net = nnx.merge(self.graphdef, theta)
        o = net(x)
        return o[0], o[1:]

    def __call__(self, h, nu, r, theta):
        o_alpha, o = self.outputs(h, nu, r, theta)
        bids = bid_grid(self.num_bids, nu.dtype)
        steps = jnp.diff(bids, prepend=0.0)
        M = self.num_bids
        pay = jnp.tri(M, M, dtype=o.dtype) @ (steps * jax.nn.sigmoid(o))  # cumulative sum
        beta = schedule_logits(self.horizon, self.schedule, o.dtype)[h]
        return r * jax.nn.sigmoid(o_alpha + beta), pay
