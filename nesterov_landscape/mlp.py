"""A fully connected network whose weights live in one flat vector.

Keeping all weights in one vector makes the optimizers one-line vector updates and makes the
landscape probes (w + t g for many t) a batch of parameter vectors: `forward` accepts weights
of shape (P,) for one network or (B, P) for B networks evaluated on the same inputs.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "gelu": F.gelu,
    "softplus": F.softplus,
}
INITS = ("pytorch", "xavier_normal", "lecun_normal")


@dataclass(frozen=True)
class MLPShape:
    """`depth` hidden layers of `width` units: depth + 1 linear maps from input_dim to output_dim."""

    input_dim: int
    width: int
    depth: int
    bias: bool = True
    output_dim: int = 1

    @property
    def layers(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of each linear map."""
        sizes = [self.input_dim] + [self.width] * self.depth + [self.output_dim]
        return list(zip(sizes[:-1], sizes[1:]))

    @property
    def n_params(self) -> int:
        return sum(fan_in * fan_out + (fan_out if self.bias else 0) for fan_in, fan_out in self.layers)


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


def forward(shape: MLPShape, activation: str, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Network outputs for inputs x (n, input_dim) or (B, n, input_dim): shape (n,) for params (P,),
    (B, n) for params (B, P)."""
    act = ACTIVATIONS[activation]
    sizes = [
        n
        for fan_in, fan_out in shape.layers
        for n in ((fan_in * fan_out, fan_out) if shape.bias else (fan_in * fan_out,))
    ]
    # One split, not a slice per layer: its backward is one concatenation instead of a zero-filled
    # full-size gradient per slice.
    pieces = iter(params.split(sizes, dim=-1))
    batched = params.dim() == 2
    h = x.expand(params.shape[0], *x.shape[-2:]) if batched else x
    last = len(shape.layers) - 1
    for i, (fan_in, fan_out) in enumerate(shape.layers):
        weight_t = next(pieces).unflatten(-1, (fan_out, fan_in)).transpose(-1, -2)
        if shape.bias:
            bias = next(pieces).unsqueeze(-2)
            h = torch.baddbmm(bias, h, weight_t) if batched else torch.addmm(bias, h, weight_t)
        else:
            h = h @ weight_t
        if i < last:
            h = act(h)
    return h.squeeze(-1)
