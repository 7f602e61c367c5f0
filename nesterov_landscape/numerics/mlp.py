"""A fully connected network whose weights live in one flat vector.

Keeping all weights in one vector makes the optimizers one-line vector updates and makes the
landscape probes (w + t g for many t) a batch of parameter vectors: `forward` accepts weights
of shape (P,) for one network or (B, P) for B networks evaluated on the same inputs.
"""

import math

import torch
import torch.nn.functional as F

from . import small_gemm
from .choices import INITS
from .mlp_shape import MLPShape


def rational_tanh(z: torch.Tensor) -> torch.Tensor:
    """tanh as the float32 rational approximation of Eigen and XLA: an odd polynomial over an even
    one in z clamped to +-7.9053 (where float32 tanh is +-1). Compiled, it is about 3x faster than
    torch.tanh on one CPU thread; its relative error is at most 3.2e-7 (torch.tanh in float32:
    1.1e-7), so it is for float32 only."""
    z = z.clamp(-7.90531110763549805, 7.90531110763549805)
    z2 = z * z
    p = z2 * -2.76076847742355e-16 + 2.00018790482477e-13
    for c in (-8.60467152213735e-11, 5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04):
        p = z2 * p + c
    p = z * (z2 * p + 4.89352455891786e-03)
    q = z2 * 1.19825839466702e-06 + 1.18534705686654e-04
    q = z2 * q + 2.26843463243900e-03
    return p / (z2 * q + 4.89352518554385e-03)


class _RationalTanh(torch.autograd.Function):
    """rational_tanh with tanh's own derivative, 1 - tanh^2, from the saved output."""

    @staticmethod
    def forward(z: torch.Tensor) -> torch.Tensor:
        return rational_tanh(z)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "gelu": F.gelu,
    "softplus": F.softplus,
}
# Used in place of the exact activation only where asked (a compiled float32 stack).
FAST_ACTIVATIONS = {"tanh": _RationalTanh.apply}


def init_params(shape: MLPShape, init: str, generator: torch.Generator) -> torch.Tensor:
    """Flat float64 weights; `pytorch` matches torch.nn.Linear's default U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for weights and biases, the other schemes draw normal weights and zero biases."""
    chunks = []
    for fan_in, fan_out in shape.layers:
        if init == "pytorch":
            bound = 1 / math.sqrt(fan_in)
            weight = (torch.rand(fan_out * fan_in, generator=generator, dtype=torch.float64) * 2 - 1) * bound
            bias = (torch.rand(fan_out, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        elif init in ("xavier_normal", "lecun_normal"):
            var = 2 / (fan_in + fan_out) if init == "xavier_normal" else 1 / fan_in
            weight = torch.randn(fan_out * fan_in, generator=generator, dtype=torch.float64) * math.sqrt(var)
            bias = torch.zeros(fan_out, dtype=torch.float64)
        else:
            raise ValueError(f"unknown init {init!r}; allowed: {', '.join(INITS)}")
        chunks.append(weight)
        if shape.bias:
            chunks.append(bias)
    return torch.cat(chunks)


def forward(
    shape: MLPShape, activation: str, params: torch.Tensor, x: torch.Tensor, fast: bool = False
) -> torch.Tensor:
    """Network outputs for inputs x (n, input_dim) or (B, n, input_dim): shape (n,) for params (P,),
    (B, n) for params (B, P), with a last axis of output_dim where it is not 1. `fast` (a compiled
    float32 stack) uses FAST_ACTIVATIONS where there is one, and libxsmm's products where
    small_gemm.applies."""
    act = FAST_ACTIVATIONS.get(activation, ACTIVATIONS[activation]) if fast else ACTIVATIONS[activation]
    sizes = [
        n
        for fan_in, fan_out in shape.layers
        for n in ((fan_in * fan_out, fan_out) if shape.bias else (fan_in * fan_out,))
    ]
    # One split, not a slice per layer: its backward is one concatenation instead of a zero-filled
    # full-size gradient per slice.
    pieces = iter(params.split(sizes, dim=-1))
    if params.dim() == 1:
        h = x
        for i, (fan_in, fan_out) in enumerate(shape.layers):
            weight_t = next(pieces).view(fan_out, fan_in).t()
            h = torch.addmm(next(pieces), h, weight_t) if shape.bias else h @ weight_t
            h = act(h) if i < len(shape.layers) - 1 else h
        return h.squeeze(-1)
    # A stack of networks works on features x points, W h, not points x features, h W^T: the
    # points (100 in the paper) fill the CPU's vector registers better than a width of 35; the
    # stacked step measured 15% faster.
    h = x.expand(params.shape[0], *x.shape[-2:]).transpose(-1, -2)
    libxsmm = small_gemm.applies(fast, params)
    for i, (fan_in, fan_out) in enumerate(shape.layers):
        weight = next(pieces).unflatten(-1, (fan_out, fan_in))
        h = _stacked_map(weight, h, next(pieces).unsqueeze(-1) if shape.bias else None, libxsmm)
        h = act(h) if i < len(shape.layers) - 1 else h
    return h.transpose(-1, -2).squeeze(-1)


def _stacked_map(weight: torch.Tensor, h: torch.Tensor, bias: torch.Tensor | None, libxsmm: bool) -> torch.Tensor:
    """weight (B, out, in) @ h (B, in, n) + bias (B, out, 1), in a form that gives each network the
    same bits in a stack of any size B. A batched matmul does, except where one of out, in, n is 1: then it or
    one of its backward products (grad h = W^T g, grad W = g h^T) is a matrix-vector product, which
    MKL computes with another kernel for one network than for several. Those maps (the output
    layer, an input of one feature, one data point) are a broadcast product and a sum instead.
    `libxsmm`: the batched matmul and its backward products are libxsmm's (small_gemm)."""
    if 1 in (weight.shape[-2], weight.shape[-1], h.shape[-1]):
        product = (weight.unsqueeze(-1) * h.unsqueeze(-3)).sum(-2)
    elif libxsmm:
        product = small_gemm.stacked_product(weight, h)
    else:
        return weight @ h if bias is None else torch.baddbmm(bias, weight, h)
    return product if bias is None else product + bias
