"""What the line probes (gradient_line, random_line) share: the t grid's keys and its rules, and
the memory of their batched evaluations. Not a probe: it registers none."""

import math
from dataclasses import dataclass
from typing import Any, Optional

from ..numerics.choices import PRECISIONS
from ..numerics.constraints import finite, one_of, positive

# Rows of weight vectors numerics.lines.line_profiles evaluates per call (its `rows`).
PROBE_ROWS = 32


def grid_points(t_min: float, t_max: float, t_step: float) -> float:
    """How many multiples of t_step lie in [t_min, t_max] (numerics.lines.t_grid), as a float: inf
    when the count itself overflows, so a huge grid is refused rather than crashing the count."""
    low, high = t_min / t_step, t_max / t_step
    if not (math.isfinite(low) and math.isfinite(high)) or high - low > 1e15:
        return math.inf
    return float(max(0, math.floor(high + 1e-9) - math.ceil(low - 1e-9) + 1))


@dataclass
class LineGridConfig:
    t_min: float = finite()
    t_max: float = finite()
    t_step: float = positive()
    h: float = positive()
    precision: Optional[str] = one_of(*PRECISIONS)  # null: the training precision

    def config_error(self, key: str) -> str | None:
        if not self.t_min < self.t_max:
            return f"{key}: t_min={self.t_min} must be < t_max={self.t_max}"
        if grid_points(self.t_min, self.t_max, self.t_step) == 0:
            return (
                f"{key}: no multiple of t_step={self.t_step:g} lies in [t_min, t_max] = "
                f"[{self.t_min:g}, {self.t_max:g}], so the grid is empty; widen the segment or reduce t_step"
            )
        return None

    def grid(self) -> Any:
        """The t grid, a float64 tensor (torch: imported by the probe's run)."""
        from ..numerics.lines import t_grid

        return t_grid(self.t_min, self.t_max, self.t_step)


def evaluations(name: str, config: LineGridConfig, job: Any, lines: int, more: float = 0.0) -> dict[str, float]:
    """The memory of `lines` lines evaluated together (and `more` bytes beside): each batched call's
    weights (w + t d: a product and a sum; the derivatives in t add about as many), its activations,
    and numerics.lines.directional_curvatures' Hessian-vector product of all lines at once."""
    pb = job.bytes_per_value(config.precision)
    rows = lines * max(1, PROBE_ROWS // lines)  # weight vectors per batched call
    total = (rows * 5 + lines * 4) * job.shape.n_params * pb + job.probe_activations(rows + lines, config.precision)
    sizes = "model.width, model.depth, data.n_points"
    return {f"probe.{name}'s evaluations ({rows} weight vectors at a time; {sizes})": total + more}


def grid_bytes(config: LineGridConfig, job: Any, lines: int) -> tuple[float, float]:
    """(the grid's points, the bytes of the t grid and the profiles' tensors)."""
    points = grid_points(config.t_min, config.t_max, config.t_step)
    return points, points * (40 + 24 * job.bytes_per_value(config.precision) * lines)
