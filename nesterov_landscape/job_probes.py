"""The probes of a job: run each selected probe on the job's loss, write its files, log it to W&B,
and return its summary scalars. The numerics are in probes.py."""

import logging
import math
from pathlib import Path
from typing import Any

import torch

from . import probes
from .config import GradientLineConfig, HessianConfig, RandomLineConfig
from .job_files import write_csv
from .problem import derive_seed
from .probes import t_grid

log = logging.getLogger(__name__)


def pl_ratio(loss: float, grad_norm: float, inf_loss: float) -> float:
    """|grad L|^2 / (2 (L - inf L)): bounded below by mu wherever L satisfies a mu-PL inequality."""
    gap = loss - inf_loss
    return grad_norm**2 / (2 * gap) if gap > 0 else math.nan


def probe_precision(precision: str | None, train_dtype: torch.dtype) -> torch.dtype:
    return getattr(torch, precision) if precision else train_dtype


def probe_gradient_line(
    probe: GradientLineConfig,
    loss_in,
    params: torch.Tensor,
    train_dtype: torch.dtype,
    epoch: int,
    landscape_rows: list[list[float]],
    precomputed: probes.GradientLine | None = None,
) -> dict[str, Any]:
    """The gradient-line probe at `params` (after `epoch` epochs), or its `precomputed` result from
    a batched stack: appends its grid to landscape_rows, returns the summary scalars."""
    dtype = probe_precision(probe.precision, train_dtype)
    line = precomputed or probes.gradient_line(
        loss_in(dtype),
        params.to(dtype),
        t_grid(probe.t_min, probe.t_max, probe.t_step),
        probe.h,
        probe.inf_phi,
        probe.mu_cutoff,
        probe.exact,
    )
    out: dict[str, Any] = {"probe_precision": str(dtype).removeprefix("torch.")}
    if line is None:
        log.warning("gradient_line probe at epoch %d skipped: the gradient is zero or not finite", epoch)
        return out | {"probe_status": "skipped: zero or non-finite gradient"}
    columns = {name: values.cpu().tolist() for name, values in line.columns().items()}
    landscape_rows.extend([epoch, *row] for row in zip(*columns.values()))
    return out | {"probe_status": "completed"} | line.scalars(probe.radii)


def probe_random_lines(
    probe: RandomLineConfig,
    loss_in,
    params: torch.Tensor,
    train_dtype: torch.dtype,
    seed: int,
    output_dir: Path,
    gradient_curvature: float | None,
) -> dict[str, Any]:
    """phi'' along random unit directions, for contrast with the gradient direction."""
    dtype = probe_precision(probe.precision, train_dtype)
    generator = torch.Generator().manual_seed(
        probe.seed if probe.seed is not None else derive_seed(seed, "random_line")
    )
    directions = probes.random_directions(params.numel(), probe.directions, generator, dtype, params.device)
    lines = probes.random_lines(
        loss_in(dtype), params.to(dtype), directions, t_grid(probe.t_min, probe.t_max, probe.t_step), probe.h
    )
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
    write_csv(
        output_dir / "landscape_random.csv",
        ["direction", "t", "phi", "phi_d", "phi_dd", "phi_d_exact", "phi_dd_exact"],
        rows,
    )
    curvatures = torch.tensor([line.phi_dd_exact_at_0 for line in lines], dtype=torch.float64)
    out = {
        "random_line_precision": str(dtype).removeprefix("torch."),
        "random_phi_dd_exact_at_0_median": curvatures.median().item(),
        "random_phi_dd_exact_at_0_min": curvatures.min().item(),
        "random_phi_dd_exact_at_0_max": curvatures.max().item(),
    }
    if gradient_curvature is not None:
        out["gradient_over_random_curvature"] = gradient_curvature / out["random_phi_dd_exact_at_0_median"]
    return out


def probe_hessian(
    probe: HessianConfig, loss_in, params: torch.Tensor, train_dtype: torch.dtype, seed: int, output_dir: Path
) -> dict[str, Any]:
    dtype = probe_precision(probe.precision, train_dtype)
    loss = loss_in(dtype)
    weights = params.to(dtype)
    generator = torch.Generator().manual_seed(probe.seed if probe.seed is not None else derive_seed(seed, "hessian"))
    spectrum = probes.hessian_spectrum(loss, weights, probe.top_k, probe.lanczos_steps, probe.trace_samples, generator)
    write_csv(output_dir / "hessian.csv", ["rank", "eigenvalue"], enumerate(spectrum.top_eigenvalues, start=1))
    grad = probes.gradient_at(loss, weights)
    gradient_curvature = probes.directional_curvature(loss, weights, grad / grad.norm())
    out = {
        "hessian_precision": str(dtype).removeprefix("torch."),
        "hessian_lanczos_steps": spectrum.lanczos_steps,
        "hessian_trace": spectrum.trace,
        "hessian_trace_std_error": spectrum.trace_std_error,
        "hessian_lambda_max": spectrum.top_eigenvalues[0],
        "phi_dd_over_lambda_max": gradient_curvature / spectrum.top_eigenvalues[0],
    }
    out |= {f"hessian_eig_{i}": value for i, value in enumerate(spectrum.top_eigenvalues, start=1)}
    return out
