"""Limits a job is checked against before any work: the memory its arrays will take, the cores its
threads may use, the disk its kept weights will take; and what its training costs in arithmetic,
by which the batched launcher decides whether worker processes pay for their start.

The memory estimate follows what the code allocates: the data, the weights and optimizer state,
the activations of one forward and backward pass, the history rows, and each probe's arrays (its
module's `memory`, nesterov_landscape/probes/). It counts the job's own arrays, not the
interpreter, torch and W&B (about 300 MB per process). It was checked against the peak resident
memory of real jobs (docs/faults.md, "The memory estimate"); it errs on the high side.
"""

import math
import os
from dataclasses import dataclass
from typing import Any

from .numerics.mlp_shape import MLPShape
from .probes import PROBES

GB = 1e9
# Python objects per record, measured with tracemalloc (a dict of 3 floats is 272 bytes) plus
# its share of the CSV text written at the end.
HISTORY_ROW_BYTES = 400
# Saved activations per unit of one forward pass: autograd keeps each layer's output and its
# activation, its backward adds a gradient of each; a second derivative (the probes'
# autograd in t, Hessian-vector products) keeps the first backward's graph too.
TRAIN_ACTIVATION_COPIES = 4
# A compiled float32 stack may also keep each layer's input transposed (libxsmm's weight gradient,
# numerics/small_gemm.py); counted whether or not libxsmm is installed, so a limit never depends on it.
SMALL_GEMM_COPIES = 1
PROBE_ACTIVATION_COPIES = 6


def available_cores() -> int:
    """Cores this process may run on (a SLURM or taskset limit included), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class Part:
    name: str  # what allocates it, naming the keys that size it
    bytes: float


@dataclass(frozen=True)
class JobSize:
    """What sizes a job's arrays, as the probes' memory estimates see it."""

    shape: MLPShape
    n_points: int
    epochs: int
    precision: str  # trainer.precision

    def bytes_per_value(self, precision: str | None) -> int:
        """Of a probe's precision (null: the training precision)."""
        return 8 if (precision or self.precision) == "float64" else 4

    def activations(self) -> float:
        """Values one forward pass keeps per weight vector: each layer's output on every point."""
        return self.n_points * (self.shape.width * self.shape.depth + self.shape.output_dim)

    def probe_activations(self, weight_vectors: float, precision: str | None) -> float:
        """Bytes of the activations a probe's second derivatives keep for `weight_vectors` networks."""
        return PROBE_ACTIVATION_COPIES * self.bytes_per_value(precision) * weight_vectors * self.activations()


def job_size(config: Any) -> JobSize:
    """Of a validated Config."""
    d, m, trainer = config.data, config.model, config.trainer
    return JobSize(MLPShape(d.input_dim, m.width, m.depth, m.bias), d.n_points, trainer.epochs, trainer.precision)


def training_flop(config: Any) -> float:
    """Floating-point operations of the job's training: each epoch a forward and a backward pass over
    every point, about 6 per weight and point (each layer's product, and two in its backward)."""
    size = job_size(config)
    return 6.0 * size.epochs * size.n_points * size.shape.n_params


def memory_parts(config: Any) -> list[Part]:
    """The job's arrays by what allocates them, in bytes. `config` is a validated Config."""
    d, trainer, job = config.data, config.trainer, job_size(config)
    n_params, n = job.shape.n_params, d.n_points
    b = job.bytes_per_value(None)
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
            (TRAIN_ACTIVATION_COPIES + SMALL_GEMM_COPIES * (trainer.compile and trainer.precision == "float32"))
            * b
            * job.activations(),
        ),
        Part(
            "the history (trainer.epochs / trainer.log_every rows)",
            HISTORY_ROW_BYTES * (trainer.epochs // trainer.log_every + 2),
        ),
    ]
    for name, probe in config.probe.items():
        parts += [Part(what, size) for what, size in PROBES[name].memory(probe, job).items()]
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


# The weights file's header (nesterov_landscape/weights.py): the tensor's dtype and shape, the epoch
# and the hashes of the data and initial weights; measured about 400 bytes.
WEIGHTS_HEADER_BYTES = 1024


def weights_disk_bytes(config: Any) -> float:
    """The disk the job's kept weights take (trainer.save_weights), at most: 0 without them."""
    job = job_size(config)
    return job.shape.n_params * job.bytes_per_value(None) + WEIGHTS_HEADER_BYTES if config.trainer.save_weights else 0


def disk_error(config: Any, free_bytes: float) -> str | None:
    """A one-line refusal when the disk holding the job's folder has no room for its weights."""
    needed = weights_disk_bytes(config)
    if needed <= free_bytes:
        return None
    return (
        f"the job's final weights (trainer.save_weights=true) would need {needed / 1e6:.3g} MB on disk and its "
        f"folder's disk has {free_bytes / 1e6:.3g} MB free; free some space or set trainer.save_weights=false"
    )


def _amount(value: float) -> str:
    return f"about {value / GB:.3g} GB" if math.isfinite(value) else "unbounded memory"
