"""The gradient line, the probe of Figure 3 (Gupta & Wojtowytsch, ICLR 2025): phi(t) = L(w + t g)
along the unit gradient g, its derivatives and the strong-aiming estimate mu(t) on a grid of t
(the math: numerics/lines.py). At the trained weights, and every `every` epochs during training.

It writes landscape.csv (one row per grid point and probed epoch), logs the grid to W&B as the
table landscape/table with charts of phi, phi'' and mu, a line per probed epoch (the checkpoints
overlaid), and gives the summary phi''(0) two ways and,
for each radius r, the minima of phi'', mu and mu_exact over |t| <= r (phi_dd_min_0p1 for r = 0.1).
"""

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from ..numerics.choices import INF_PHI
from ..numerics.constraints import constrained, non_negative, one_of
from ..summary_schema import radius_key
from . import ProbeOutput, Table, WandbTable, register
from .line_grid import LineGridConfig, evaluations, grid_bytes

log = logging.getLogger(__name__)

# landscape.csv's columns after the epoch
COLUMNS = ("t", "phi", "phi_d", "phi_dd", "mu", "phi_d_exact", "phi_dd_exact", "mu_exact")
WANDB_KEY = "landscape"  # its W&B table, landscape/table: the epoch, t and the plotted columns
PLOTS = {"phi": "phi(t) = L(w + t g)", "phi_dd": "phi''(t), central differences", "mu": "strong-aiming mu(t)"}
# A grid point kept for landscape.csv (a list of 9 floats, ~420 bytes, and its CSV text) and for
# the W&B table (a list of the same floats, ~100 bytes), plus the column lists of the one probed now.
POINT_BYTES = 900
CHECKPOINT_POINT_BYTES = 1000


@dataclass
class GradientLineConfig(LineGridConfig):
    inf_phi: str = one_of(*INF_PHI)
    mu_cutoff: float = non_negative()
    radii: list[float] = constrained(
        lambda v: len(v) > 0 and all(0 < r < math.inf for r in v), "a non-empty list of finite numbers > 0"
    )
    every: int = constrained(lambda v: v >= 0, "an integer >= 0 (0: only after training)")
    exact: bool = field()  # exact t-derivatives on the grid beside the finite differences

    def config_error(self, key: str) -> str | None:
        reach = max(abs(self.t_min), abs(self.t_max))
        beyond = [r for r in self.radii if r > reach]
        if beyond and not super().config_error(key):  # the minimum over |t| <= r would be the grid's minimum
            return (
                f"{key}.radii={self.radii} is not allowed; each radius must be at most max(|t_min|, |t_max|) = "
                f"{reach:g}, the grid's reach (widen t_min/t_max or drop {beyond[0]:g})"
            )
        return super().config_error(key)


def columns(line: Any) -> dict[str, Any]:
    """A numerics.lines.GradientLine's tensors by landscape.csv's column names."""
    p = line.profile
    values = (p.t, p.phi, p.phi_d, p.phi_dd, line.mu, p.phi_d_exact, p.phi_dd_exact, line.mu_exact)
    return dict(zip(COLUMNS, values, strict=True))


def summary_entries(line: Any, radii: list[float]) -> dict[str, float]:
    """phi_dd_at_0, phi_dd_exact_at_0 and, for each radius r, the minima of phi'' and mu over
    |t| <= r (mu is NaN, so left out, below the cutoff), keyed e.g. phi_dd_min_0p1."""
    from ..numerics.lines import minimum_within

    p = line.profile
    out = {
        "probe_grad_norm": line.grad_norm,
        "phi_dd_at_0": p.phi_dd_at_0,
        "phi_dd_exact_at_0": p.phi_dd_exact_at_0,
        "inf_phi": line.inf_phi,
    }
    for r in radii:
        out[f"phi_dd_min_{radius_key(r)}"] = minimum_within(p.t, p.phi_dd, r)
        out[f"mu_min_{radius_key(r)}"] = minimum_within(p.t, line.mu, r)
        out[f"mu_exact_min_{radius_key(r)}"] = minimum_within(p.t, line.mu_exact, r)
    return out


def run(config: GradientLineConfig, at: Any) -> ProbeOutput:
    from ..numerics.lines import gradient_line

    dtype = at.dtype(config.precision)
    line = at.stacked or gradient_line(
        at.loss_in(dtype),
        at.weights.to(dtype),
        config.grid(),
        config.h,
        config.inf_phi,
        config.mu_cutoff,
        config.exact,
    )
    out: dict[str, Any] = {"probe_precision": str(dtype).removeprefix("torch.")}
    if line is None:
        log.warning("gradient_line probe at epoch %d skipped: the gradient is zero or not finite", at.epoch)
        return ProbeOutput(summary=out | {"probe_status": "skipped: zero or non-finite gradient"})
    grid = {name: values.cpu().tolist() for name, values in columns(line).items()}
    plotted = ["t", *PLOTS]
    return ProbeOutput(
        summary=out | {"probe_status": "completed"} | summary_entries(line, config.radii),
        files={"landscape.csv": Table(["epoch", *COLUMNS], [[at.epoch, *row] for row in zip(*grid.values())])},
        wandb=[
            WandbTable(
                ["epoch", *plotted],
                [[at.epoch, *row] for row in zip(*(grid[k] for k in plotted))],
                key=WANDB_KEY,
                x="t",
                plots=PLOTS,
                line="epoch",
            )
        ],
    )


def stacked(config: GradientLineConfig, loss_rows: Any, weights: Any) -> list[Any] | None:
    """The gradient lines of a stack's runs at once, where the probe runs in the training precision."""
    from ..numerics.lines import gradient_lines

    if config.precision not in (None, str(weights.dtype).removeprefix("torch.")):
        return None
    return gradient_lines(loss_rows, weights, config.grid(), config.h, config.inf_phi, config.mu_cutoff, config.exact)


def memory(config: GradientLineConfig, job: Any) -> dict[str, float]:
    points, grid = grid_bytes(config, job, lines=1)
    checkpoints = job.epochs // config.every + 1 if config.every else 1
    results = grid + points * (POINT_BYTES * checkpoints + CHECKPOINT_POINT_BYTES)
    what = f"{points:,.0f} points (t_min, t_max, t_step)" + (
        f" at {checkpoints:,} checkpoints (every)" if config.every else ""
    )
    return evaluations("gradient_line", config, job, lines=1) | {f"probe.gradient_line's grid of {what}": results}


register(
    "gradient_line",
    GradientLineConfig,
    run=run,
    files=("landscape.csv",),
    every=lambda config: config.every,
    memory=memory,
    stacked=stacked,
)
