"""The Hessian at given weights through Hessian-vector products: its top eigenvalues (Lanczos), its
trace (Hutchinson) and its quadratic form along a direction. Plain torch on a loss function of
weights (P,)."""

import math
from dataclasses import dataclass

import torch


def gradient_at(loss_fn, w: torch.Tensor) -> torch.Tensor:
    w_var = w.detach().clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss_fn(w_var), w_var)
    return grad


def directional_curvature(loss_fn, w: torch.Tensor, direction: torch.Tensor) -> float:
    """d^2/dt^2 L(w + t v) at t = 0, i.e. v^T H v, by a Hessian-vector product."""
    return (hessian_vector_product(loss_fn, w)(direction) @ direction).item()


def hessian_vector_product(loss_fn, w: torch.Tensor):
    """v -> H v at w, reusing one gradient graph for many products."""
    w = w.detach().clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss_fn(w), w, create_graph=True)

    def product(v: torch.Tensor) -> torch.Tensor:
        # grad of <grad, v> rather than grad_outputs=v: the latter imports sympy (0.3 s) on first use
        (hv,) = torch.autograd.grad(grad @ v, w, retain_graph=True)
        return hv

    return product


@dataclass
class HessianSpectrum:
    top_eigenvalues: list[float]  # largest first
    trace: float  # Hutchinson estimate
    trace_std_error: float
    lanczos_steps: int


def lanczos_top_eigenvalues(
    hvp, n_params: int, k: int, steps: int, generator: torch.Generator, dtype, device
) -> tuple[list[float], int]:
    """The k largest eigenvalues of the symmetric operator hvp by Lanczos with full
    reorthogonalization; exact once steps reaches the operator's rank."""
    steps = min(steps, n_params)
    q = torch.randn(n_params, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    basis = [q / q.norm()]
    alphas, betas = [], []
    for j in range(steps):
        v = hvp(basis[j])
        alpha = v @ basis[j]
        alphas.append(alpha)
        Q = torch.stack(basis)
        v = v - Q.T @ (Q @ v)
        v = v - Q.T @ (Q @ v)  # twice is enough (Kahan): keeps the basis orthogonal to round-off
        beta = v.norm()
        if j == steps - 1 or beta <= 1e-10 * abs(alpha).clamp(min=1e-30):
            break
        betas.append(beta)
        basis.append(v / beta)
    m = len(alphas)
    tridiagonal = torch.diag(torch.stack(alphas))
    if m > 1:
        off = torch.stack(betas[: m - 1])
        tridiagonal = tridiagonal + torch.diag(off, 1) + torch.diag(off, -1)
    ritz = torch.linalg.eigvalsh(tridiagonal.to(torch.float64))
    return ritz.flip(0)[:k].tolist(), m


def hutchinson_trace(
    hvp, n_params: int, samples: int, generator: torch.Generator, dtype, device
) -> tuple[float, float]:
    """tr H ~ mean of z^T H z over Rademacher z; returns (estimate, its standard error)."""
    z = (torch.randint(0, 2, (samples, n_params), generator=generator) * 2 - 1).to(device=device, dtype=dtype)
    quadratic_forms = torch.stack([zi @ hvp(zi) for zi in z]).to(torch.float64)
    error = quadratic_forms.std().item() / math.sqrt(samples) if samples > 1 else math.nan
    return quadratic_forms.mean().item(), error


def hessian_spectrum(
    loss_fn, w: torch.Tensor, k: int, lanczos_steps: int, trace_samples: int, generator: torch.Generator
) -> HessianSpectrum:
    hvp = hessian_vector_product(loss_fn, w)
    top, steps = lanczos_top_eigenvalues(hvp, w.numel(), k, lanczos_steps, generator, w.dtype, w.device)
    trace, error = hutchinson_trace(hvp, w.numel(), trace_samples, generator, w.dtype, w.device)
    return HessianSpectrum(top_eigenvalues=top, trace=trace, trace_std_error=error, lanczos_steps=steps)
