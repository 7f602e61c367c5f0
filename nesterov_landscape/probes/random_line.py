"""The gradient line's profile along random unit directions instead, for contrast: is the landscape
along the gradient special? At the trained weights (the math: numerics/lines.py).

It writes landscape_random.csv (one row per direction and grid point), logs the lines to W&B as the
table random_line/table with charts of phi and phi'', a line per direction and, with the gradient
line, the gradient line's for contrast, and gives the summary the median, minimum and maximum of
phi''(0) over the directions and, with the gradient line, its phi''(0) over their median."""

from dataclasses import dataclass
from typing import Any, Optional

from ..numerics.constraints import at_least, seed_value
from . import ProbeOutput, Table, WandbTable, gradient_line, register
from .line_grid import LineGridConfig, evaluations, grid_bytes

COLUMNS = ["direction", "t", "phi", "phi_d", "phi_dd", "phi_d_exact", "phi_dd_exact"]
# its W&B table: which line ("random <direction>", or "gradient"), t and the plotted columns
PLOTS = {"phi": "phi(t) = L(w + t d): random unit d and the gradient's", "phi_dd": "phi''(t), central differences"}
WANDB_COLUMNS = ["line", "t", *PLOTS]
POINT_BYTES = 900  # a landscape_random.csv row: a list of 7 floats and its CSV text; its W&B row


@dataclass
class RandomLineConfig(LineGridConfig):
    directions: int = at_least(1)
    seed: Optional[int] = seed_value()  # null: derived from the top-level seed


def run(config: RandomLineConfig, at: Any) -> ProbeOutput:
    import torch

    from ..numerics.lines import random_directions, random_lines

    dtype = at.dtype(config.precision)
    generator = torch.Generator().manual_seed(
        config.seed if config.seed is not None else at.derived_seed("random_line")
    )
    directions = random_directions(at.weights.numel(), config.directions, generator, dtype, at.weights.device)
    lines = random_lines(at.loss_in(dtype), at.weights.to(dtype), directions, config.grid(), config.h)
    rows = [
        [k, *row]
        for k, line in enumerate(lines)
        for row in zip(
            *(
                v.cpu().tolist()
                for v in (line.t, line.phi, line.phi_d, line.phi_dd, line.phi_d_exact, line.phi_dd_exact)
            )
        )
    ]
    curvatures = torch.tensor([line.phi_dd_exact_at_0 for line in lines], dtype=torch.float64)
    out = {
        "random_line_precision": str(dtype).removeprefix("torch."),
        "random_phi_dd_exact_at_0_median": curvatures.median().item(),
        "random_phi_dd_exact_at_0_min": curvatures.min().item(),
        "random_phi_dd_exact_at_0_max": curvatures.max().item(),
    }
    gradient_curvature = at.summary.get("phi_dd_exact_at_0")
    if gradient_curvature is not None:
        out["gradient_over_random_curvature"] = gradient_curvature / out["random_phi_dd_exact_at_0_median"]
    names = [f"random {k}" for k in range(len(lines))]
    plotted = [COLUMNS.index(name) for name in WANDB_COLUMNS[1:]]
    wandb_rows = [[names[row[0]], *(row[i] for i in plotted)] for row in rows] + gradient_rows(at.wandb)
    return ProbeOutput(
        summary=out,
        files={"landscape_random.csv": Table(COLUMNS, rows)},
        wandb=[WandbTable(WANDB_COLUMNS, wandb_rows, key="random_line", x="t", plots=PLOTS, line="line")],
    )


def gradient_rows(tables: list[WandbTable]) -> list[list]:
    """The gradient line's W&B rows at these weights (its probe ran before), as rows of line "gradient"."""
    for table in tables:
        if table.key == gradient_line.WANDB_KEY:
            plotted = [table.columns.index(name) for name in WANDB_COLUMNS[1:]]
            return [["gradient", *(row[i] for i in plotted)] for row in table.rows]
    return []


def memory(config: RandomLineConfig, job: Any) -> dict[str, float]:
    lines = config.directions
    points, grid = grid_bytes(config, job, lines)
    the_directions = lines * job.shape.n_params * (8 + job.bytes_per_value(config.precision))
    what = f"{lines:,} directions x {points:,.0f} points (directions, t_min, t_max, t_step)"
    return evaluations("random_line", config, job, lines, more=the_directions) | {
        f"probe.random_line's grid of {what}": grid + points * lines * POINT_BYTES
    }


register(
    "random_line",
    RandomLineConfig,
    run=run,
    files=("landscape_random.csv",),
    memory=memory,
    reads=("gradient_line",),
)
