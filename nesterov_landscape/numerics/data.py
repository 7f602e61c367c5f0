"""Teacher-student regression data: random inputs labelled by a randomly initialized MLP."""

from dataclasses import dataclass

import torch

from .choices import INPUT_DISTS, LABELS
from .mlp import MLPShape, forward, init_params


@dataclass(frozen=True)
class TeacherData:
    x: torch.Tensor  # (n, input_dim), float64
    y: torch.Tensor  # (n,), float64
    raw_label_std: float  # std of the teacher's outputs before any standardization


def make_teacher_data(
    n_points: int,
    input_dim: int,
    input_dist: str,
    teacher: MLPShape,
    teacher_activation: str,
    labels: str,
    label_noise: float,
    generator: torch.Generator,
) -> TeacherData:
    """Draw x (standard normal or uniform on [-1, 1]^d), a teacher with PyTorch's default init,
    y = teacher(x), standardized to zero mean and unit std if asked, plus label_noise * N(0, 1).

    Everything is drawn in float64 so runs in different precisions see the same data."""
    if input_dist == "normal":
        x = torch.randn(n_points, input_dim, generator=generator, dtype=torch.float64)
    elif input_dist == "uniform":
        x = torch.rand(n_points, input_dim, generator=generator, dtype=torch.float64) * 2 - 1
    else:
        raise ValueError(f"unknown input_dist {input_dist!r}; allowed: {', '.join(INPUT_DISTS)}")
    teacher_params = init_params(teacher, "pytorch", generator)
    y = forward(teacher, teacher_activation, teacher_params, x)
    raw_std = y.std(correction=0).item()
    if labels == "standardize":
        y = (y - y.mean()) / y.std(correction=0)
    elif labels != "raw":
        raise ValueError(f"unknown labels {labels!r}; allowed: {', '.join(LABELS)}")
    if label_noise > 0:
        y = y + label_noise * torch.randn(n_points, generator=generator, dtype=torch.float64)
    return TeacherData(x=x, y=y, raw_label_std=raw_std)
