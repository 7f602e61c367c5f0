"""Limits a job is checked against before any work: probe grid sizes, the memory its arrays will
take, the cores its threads may use.

The memory estimate follows what the code allocates (see probes.py and job_probes.py): the data,
the weights and optimizer state, the activations of one forward and backward pass, the history
rows, and each probe's batched evaluations and results. It counts the job's own arrays, not the
interpreter, torch and W&B (about 300 MB per process). It was checked against the peak resident
memory of real jobs (docs/faults.md, "The memory estimate"); it errs on the high side.
"""

import math
import os
from dataclasses import dataclass
from typing import Any

from .mlp_shape import MLPShape

GB = 1e9
# Rows of weight vectors line_profiles evaluates per call (probes.line_profiles' `rows`).
PROBE_ROWS = 32
# Python objects per record, measured with tracemalloc (a dict of 3 floats is 272 bytes) plus
# its share of the CSV text written at the end.
HISTORY_ROW_BYTES = 400
# A gradient-line grid point kept for landscape.csv (a list of 9 floats, ~420 bytes, and its CSV
# text), plus, at each checkpoint, the column lists and the W&B table built from them.
LINE_POINT_BYTES = 800
LINE_CHECKPOINT_POINT_BYTES = 1000
RANDOM_POINT_BYTES = 800  # a landscape_random.csv row: a list of 7 floats and its CSV text
# Saved activations per unit of one forward pass: autograd keeps each layer's output and its
# activation, its backward adds a gradient of each; a second derivative (the probes'
# autograd in t, Hessian-vector products) keeps the first backward's graph too.
TRAIN_ACTIVATION_COPIES = 4
PROBE_ACTIVATION_COPIES = 6


def available_cores() -> int:
    """Cores this process may run on (a SLURM or taskset limit included), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def grid_points(t_min: float, t_max: float, t_step: float) -> float:
    """How many multiples of t_step lie in [t_min, t_max] (probes.t_grid), as a float: inf when
    the count itself overflows, so a huge grid is refused rather than crashing the count."""
    low, high = t_min / t_step, t_max / t_step
    if not (math.isfinite(low) and math.isfinite(high)) or high - low > 1e15:
        return math.inf
    return float(max(0, math.floor(high + 1e-9) - math.ceil(low - 1e-9) + 1))


@dataclass
class Part:
    name: str  # what allocates it, naming the keys that size it
    bytes: float


def _bytes_per_value(precision: str | None, default: str) -> int:
    return 8 if (precision or default) == "float64" else 4


def _activations(shape: MLPShape, points: float) -> float:
    """Values one forward pass keeps per weight vector: each layer's output on every point."""
    return points * (shape.width * shape.depth + shape.output_dim)


def memory_parts(config: Any) -> list[Part]:
    """The job's arrays by what allocates them, in bytes. `config` is a validated Config."""
    d, m, trainer = config.data, config.model, config.trainer
    shape = MLPShape(d.input_dim, m.width, m.depth, m.bias)
    n_params = shape.n_params
    b = _bytes_per_value(trainer.precision, "float32")
    n = d.n_points
    teacher = MLPShape(d.input_dim, d.teacher_width, d.teacher_depth)
    parts = [
        # x, y in float64, a copy in the training precision per loss function (training and
        # each probe), and the teacher's forward pass
        Part("the data (data.n_points x data.input_dim)", n * (d.input_dim + 1) * (8 + 4 * b) + 16 * n * teacher.width),
        # initial weights in float64; weights, gradient, optimizer state and update temporaries
        # (measured: about 56 bytes per float32 weight)
        Part("the weights (model.width, model.depth)", n_params * (8 + 12 * b)),
        Part(
            "training's activations (model.width x model.depth x data.n_points)",
            TRAIN_ACTIVATION_COPIES * b * _activations(shape, n),
        ),
        Part(
            "the history (trainer.epochs / trainer.log_every rows)",
            HISTORY_ROW_BYTES * (trainer.epochs // trainer.log_every + 2),
        ),
    ]
    for name, probe in config.probe.items():
        pb = _bytes_per_value(getattr(probe, "precision", None), trainer.precision)
        if name in ("gradient_line", "random_line"):
            points = grid_points(probe.t_min, probe.t_max, probe.t_step)
            lines = getattr(probe, "directions", 1)
            rows = lines * max(1, PROBE_ROWS // lines)  # weight vectors per batched call
            # each batched call's weights (w + t d: a product and a sum; the derivatives in t add
            # about as many), its activations, and directional_curvatures' Hessian-vector product
            # of all lines at once
            evaluations = (rows * 5 + lines * 4) * n_params * pb + PROBE_ACTIVATION_COPIES * pb * (
                rows + lines
            ) * _activations(shape, n)
            grid = points * (40 + 24 * pb * lines)  # the t grid and the profiles' tensors
            if name == "gradient_line":
                checkpoints = trainer.epochs // probe.every + 1 if probe.every else 1
                results = grid + points * (LINE_POINT_BYTES * checkpoints + LINE_CHECKPOINT_POINT_BYTES)
                what = f"{points:,.0f} points (t_min, t_max, t_step)" + (
                    f" at {checkpoints:,} checkpoints (every)" if probe.every else ""
                )
            else:
                results = grid + points * lines * RANDOM_POINT_BYTES
                evaluations += lines * n_params * (8 + pb)  # the directions
                what = f"{lines:,} directions x {points:,.0f} points (directions, t_min, t_max, t_step)"
            sizes = "model.width, model.depth, data.n_points"
            parts.append(Part(f"probe.{name}'s evaluations ({rows} weight vectors at a time; {sizes})", evaluations))
            parts.append(Part(f"probe.{name}'s grid of {what}", results))
        elif name == "hessian":
            steps = min(probe.lanczos_steps, n_params)
            # the Lanczos basis and its stacked copy; Rademacher vectors drawn as int64, shifted,
            # then cast; one gradient graph kept for every Hessian-vector product
            parts.append(
                Part(
                    "probe.hessian (lanczos_steps, trace_samples x weights)",
                    2 * steps * n_params * pb
                    + probe.trace_samples * n_params * (16 + pb)
                    + PROBE_ACTIVATION_COPIES * pb * _activations(shape, n),
                )
            )
    return parts


def memory_error(config: Any) -> str | None:
    """A one-line refusal when the estimated arrays exceed trainer.max_memory_gb, else None."""
    bound = config.trainer.max_memory_gb
    try:
        parts = memory_parts(config)
    except OverflowError:  # sizes beyond a float, e.g. model.width=10**400
        return f"the job's arrays would be too large to count, far more than trainer.max_memory_gb={bound:g}"
    total = sum(p.bytes for p in parts)
    if total <= bound * GB:
        return None
    largest = max(parts, key=lambda p: p.bytes)
    return (
        f"the job's arrays would need {_amount(total)}, more than trainer.max_memory_gb={bound:g}; "
        f"{largest.name} alone would need {_amount(largest.bytes)}. "
        "Make it smaller, or raise trainer.max_memory_gb if the machine has the memory"
    )


def _amount(value: float) -> str:
    return f"about {value / GB:.3g} GB" if math.isfinite(value) else "unbounded memory"
