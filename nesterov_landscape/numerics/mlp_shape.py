"""The network's shape: its linear maps and number of weights. Torch-free, so that the config checks
and the memory estimate (config.py, limits.py) need no torch; mlp.py builds the network on it."""

from dataclasses import dataclass


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
