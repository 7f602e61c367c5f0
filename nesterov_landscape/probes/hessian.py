"""The Hessian at the trained weights: its top eigenvalues (Lanczos) and its trace (Hutchinson),
from Hessian-vector products (the math: numerics/spectrum.py).

It writes hessian.csv (rank, eigenvalue), logs it to W&B as the table hessian/table with a chart of
the eigenvalues by rank (its title gives the trace with its standard error), and gives the summary
the eigenvalues, the trace with its standard error, and phi''(0) along the unit gradient over the
largest eigenvalue."""

from dataclasses import dataclass
from typing import Any, Optional

from ..numerics.choices import PRECISIONS
from ..numerics.constraints import at_least, one_of, seed_value
from . import ProbeOutput, Table, WandbTable, register


@dataclass
class HessianConfig:
    top_k: int = at_least(1)
    lanczos_steps: int = at_least(1)
    trace_samples: int = at_least(1)
    precision: Optional[str] = one_of(*PRECISIONS)
    seed: Optional[int] = seed_value()

    def config_error(self, key: str) -> str | None:
        if self.top_k > self.lanczos_steps:
            return (
                f"{key}.top_k={self.top_k} is not allowed; it must be at most {key}.lanczos_steps={self.lanczos_steps} "
                "(Lanczos finds at most one eigenvalue per step)"
            )
        return None


def check(config: HessianConfig, job: Any) -> str | None:
    n_params = job.shape.n_params
    if config.top_k > n_params:
        return (
            f"probe.hessian.top_k={config.top_k} is not allowed; it must be at most the number of weights, {n_params}"
        )
    return None


def run(config: HessianConfig, at: Any) -> ProbeOutput:
    import torch

    from ..numerics.spectrum import directional_curvature, gradient_at, hessian_spectrum

    dtype = at.dtype(config.precision)
    loss = at.loss_in(dtype)
    weights = at.weights.to(dtype)
    generator = torch.Generator().manual_seed(config.seed if config.seed is not None else at.derived_seed("hessian"))
    spectrum = hessian_spectrum(loss, weights, config.top_k, config.lanczos_steps, config.trace_samples, generator)
    grad = gradient_at(loss, weights)
    gradient_curvature = directional_curvature(loss, weights, grad / grad.norm())
    out = {
        "hessian_precision": str(dtype).removeprefix("torch."),
        "hessian_lanczos_steps": spectrum.lanczos_steps,
        "hessian_trace": spectrum.trace,
        "hessian_trace_std_error": spectrum.trace_std_error,
        "hessian_lambda_max": spectrum.top_eigenvalues[0],
        "phi_dd_over_lambda_max": gradient_curvature / spectrum.top_eigenvalues[0],
    }
    out |= {f"hessian_eig_{i}": value for i, value in enumerate(spectrum.top_eigenvalues, start=1)}
    columns = ["rank", "eigenvalue"]
    rows = [[i, value] for i, value in enumerate(spectrum.top_eigenvalues, start=1)]
    title = f"top {len(rows)} Hessian eigenvalues; trace {spectrum.trace:.4g} ± {spectrum.trace_std_error:.2g}"
    return ProbeOutput(
        summary=out,
        files={"hessian.csv": Table(columns, rows)},
        wandb=[WandbTable(columns, rows, key="hessian", x="rank", plots={"eigenvalue": title})],
    )


def memory(config: HessianConfig, job: Any) -> dict[str, float]:
    """The Lanczos basis and its stacked copy; Rademacher vectors drawn as int64, shifted, then cast;
    one gradient graph kept for every Hessian-vector product."""
    n_params, pb = job.shape.n_params, job.bytes_per_value(config.precision)
    steps = min(config.lanczos_steps, n_params)
    return {
        "probe.hessian (lanczos_steps, trace_samples x weights)": 2 * steps * n_params * pb
        + config.trace_samples * n_params * (16 + pb)
        + job.probe_activations(1, config.precision)
    }


register("hessian", HessianConfig, run=run, files=("hessian.csv",), memory=memory, check=check)
