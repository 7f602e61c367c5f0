"""Landscape probes at trained weights.

`gradient_line` is the probe of Figure 3 in Gupta & Wojtowytsch (ICLR 2025): along the unit
gradient g = grad L(w) / |grad L(w)|, phi(t) = L(w + t g), and

    phi''(t) ~ (phi(t+h) - 2 phi(t) + phi(t-h)) / h^2,     phi'(t) ~ (phi(t+h) - phi(t-h)) / (2h),
    mu(t)    = 2 (t phi'(t) - phi(t) + inf phi) / t^2       (strong-aiming estimate, |t| >= cutoff).

Beside the finite differences it gives the exact phi'(t), phi''(t) by automatic differentiation
in t and phi''(0) = g^T H g by a Hessian-vector product. All grid points are one batched call.
"""
import math
from dataclasses import dataclass

import torch

INF_PHI = ("zero", "grid_min")


@dataclass
class GradientLine:
    t: torch.Tensor
    phi: torch.Tensor
    phi_d: torch.Tensor  # central differences
    phi_dd: torch.Tensor  # central second differences
    mu: torch.Tensor  # from phi_d; NaN where |t| < cutoff
    phi_d_exact: torch.Tensor
    phi_dd_exact: torch.Tensor
    mu_exact: torch.Tensor  # from phi_d_exact
    grad_norm: float
    phi_dd_at_0: float  # finite differences with step h
    phi_dd_exact_at_0: float  # g^T H g
    inf_phi: float

    def columns(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in
                ("t", "phi", "phi_d", "phi_dd", "mu", "phi_d_exact", "phi_dd_exact", "mu_exact")}

    def scalars(self, radii: list[float]) -> dict[str, float]:
        """phi_dd_at_0, phi_dd_exact_at_0 and, for each radius r, the minima of phi'' and mu
        over |t| <= r (mu is NaN, so left out, below the cutoff), keyed e.g. phi_dd_min_0p1."""
        out = {"probe_grad_norm": self.grad_norm, "phi_dd_at_0": self.phi_dd_at_0,
               "phi_dd_exact_at_0": self.phi_dd_exact_at_0, "inf_phi": self.inf_phi}
        for r in radii:
            key = f"{r:g}".replace(".", "p")
            inside = self.t.abs() <= r + 1e-12
            out[f"phi_dd_min_{key}"] = _nanmin(self.phi_dd[inside])
            out[f"mu_min_{key}"] = _nanmin(self.mu[inside])
            out[f"mu_exact_min_{key}"] = _nanmin(self.mu_exact[inside])
        return out


def _nanmin(values: torch.Tensor) -> float:
    values = values[~values.isnan()]
    return values.min().item() if values.numel() else math.nan


def strong_aiming(t, phi, phi_d, inf_phi: float, keep: torch.Tensor) -> torch.Tensor:
    """mu(t) = 2 (t phi'(t) - phi(t) + inf phi) / t^2 where `keep`, NaN elsewhere."""
    mu = 2 * (t * phi_d - phi + inf_phi) / t.square()
    return torch.where(keep, mu, torch.full_like(mu, math.nan))


def beyond_cutoff(t: torch.Tensor, cutoff: float) -> torch.Tensor:
    return t.abs() >= cutoff - 1e-12


def directional_curvature(loss_fn, w: torch.Tensor, direction: torch.Tensor) -> float:
    """d^2/dt^2 L(w + t v) at t = 0, i.e. v^T H v, by a Hessian-vector product."""
    w = w.detach().requires_grad_()
    (grad,) = torch.autograd.grad(loss_fn(w), w, create_graph=True)
    (hv,) = torch.autograd.grad(grad @ direction, w)
    return (hv @ direction).item()


def gradient_line(loss_fn, w: torch.Tensor, t: torch.Tensor, h: float, inf_phi: str,
                  mu_cutoff: float) -> GradientLine | None:
    """Probe L along its normalized gradient at w. loss_fn maps weights (B, P) to losses (B,) and
    (P,) to a scalar; everything is computed in w's dtype. None if the gradient is zero or not finite."""
    if inf_phi not in INF_PHI:
        raise ValueError(f"unknown inf_phi {inf_phi!r}; allowed: {', '.join(INF_PHI)}")
    w = w.detach()
    w_var = w.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss_fn(w_var), w_var)
    grad_norm = grad.norm().item()
    if not math.isfinite(grad_norm) or grad_norm == 0:
        return None
    g = grad / grad_norm
    grid, t = t, t.to(w.dtype)

    def phi_of(ts: torch.Tensor) -> torch.Tensor:
        return loss_fn(w + ts.unsqueeze(-1) * g)

    t_var = t.clone().requires_grad_()
    phi = phi_of(t_var)
    (phi_d_exact,) = torch.autograd.grad(phi.sum(), t_var, create_graph=True)
    (phi_dd_exact,) = torch.autograd.grad(phi_d_exact.sum(), t_var)
    with torch.no_grad():
        phi = phi.detach()
        phi_d_exact = phi_d_exact.detach()
        zero = torch.zeros(1, dtype=w.dtype)
        shifted = phi_of(torch.cat([t + h, t - h, zero + h, zero, zero - h]))
        plus, minus, around_0 = shifted[: len(t)], shifted[len(t) : 2 * len(t)], shifted[2 * len(t) :]
        phi_d = (plus - minus) / (2 * h)
        phi_dd = (plus - 2 * phi + minus) / h**2
        phi_dd_at_0 = ((around_0[0] - 2 * around_0[1] + around_0[2]) / h**2).item()
    inf = 0.0 if inf_phi == "zero" else phi.min().item()
    keep = beyond_cutoff(grid, mu_cutoff).to(t.device)
    return GradientLine(
        t=grid, phi=phi, phi_d=phi_d, phi_dd=phi_dd, mu=strong_aiming(t, phi, phi_d, inf, keep),
        phi_d_exact=phi_d_exact, phi_dd_exact=phi_dd_exact,
        mu_exact=strong_aiming(t, phi, phi_d_exact, inf, keep),
        grad_norm=grad_norm, phi_dd_at_0=phi_dd_at_0,
        phi_dd_exact_at_0=directional_curvature(loss_fn, w, g), inf_phi=inf,
    )
