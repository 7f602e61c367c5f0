"""The loss along lines through given weights, the math of the line probes. Plain torch on a loss
function that maps weights (P,) to a scalar and a batch of weights (B, P) to B losses, so perturbed
weights are evaluated in batched calls of at most `rows` weight vectors (32 by default).

The gradient line is the probe of Figure 3 in Gupta & Wojtowytsch (ICLR 2025): along the unit
gradient g = grad L(w) / |grad L(w)|, phi(t) = L(w + t g), and

    phi''(t) ~ (phi(t+h) - 2 phi(t) + phi(t-h)) / h^2,     phi'(t) ~ (phi(t+h) - phi(t-h)) / (2h),
    mu(t)    = 2 (t phi'(t) - phi(t) + inf phi) / t^2       (strong-aiming estimate, |t| >= cutoff).

Beside the finite differences every line gives phi''(0) = d^T H d by a Hessian-vector product and,
where asked (`exact`), the exact phi'(t), phi''(t) by automatic differentiation in t. Random lines
do the same along random unit directions.
"""

import math
from dataclasses import dataclass

import torch

from .choices import INF_PHI


def t_grid(t_min: float, t_max: float, t_step: float) -> torch.Tensor:
    """The multiples of t_step in [t_min, t_max], so t = 0 is on the grid whenever in range."""
    ks = torch.arange(math.ceil(t_min / t_step - 1e-9), math.floor(t_max / t_step + 1e-9) + 1)
    return ks.to(torch.float64) * t_step


@dataclass
class LineProfile:
    """phi(t) = L(w + t d) on a grid, with finite-difference and exact derivatives."""

    t: torch.Tensor  # the float64 grid
    phi: torch.Tensor
    phi_d: torch.Tensor  # central differences
    phi_dd: torch.Tensor  # central second differences
    phi_d_exact: torch.Tensor
    phi_dd_exact: torch.Tensor
    phi_dd_at_0: float  # finite differences with step h
    phi_dd_exact_at_0: float  # d^T H d


def line_profiles(
    loss_rows,
    w: torch.Tensor,
    directions: torch.Tensor,
    t: torch.Tensor,
    h: float,
    rows: int = 32,
    exact: bool = True,
) -> list[LineProfile]:
    """phi_b(t) = L_b(w_b + t d_b) for B lines at once (w, directions: (B, P)); loss_rows(runs,
    weights) gives row r the loss of run runs[r]. With `exact`, the grid gets exact t-derivatives
    (autograd in t: each phi(t_i) depends on t_i alone; NaN without); t +- h and 0, +-h give the
    finite differences. Calls of about `rows` weight vectors keep the working set in cache
    (measured faster than one call), and groups of at most `rows` lines keep memory bounded
    whatever the number of lines."""
    lines, n_params = w.shape
    if lines > rows:
        return [
            profile
            for start in range(0, lines, rows)
            for profile in line_profiles(
                lambda runs, weights, start=start: loss_rows(runs + start, weights),
                w[start : start + rows],
                directions[start : start + rows],
                t,
                h,
                rows,
                exact,
            )
        ]
    runs = torch.arange(lines, device=w.device)
    grid, t = t, t.to(device=w.device, dtype=w.dtype)
    points = max(1, rows // lines)

    def phi_of(ts: torch.Tensor) -> torch.Tensor:  # ts: (points,) -> (B, points)
        weights = w.unsqueeze(1) + ts.unsqueeze(-1) * directions.unsqueeze(1)
        return loss_rows(runs.repeat_interleave(ts.shape[-1]), weights.reshape(-1, n_params)).view(lines, -1)

    phi, phi_d_exact, phi_dd_exact = [], [], []
    for part in t.split(points):
        part = part.expand(lines, -1).clone()
        if not exact:
            with torch.no_grad():
                phi.append(phi_of(part))
            continue
        part.requires_grad_()
        values = phi_of(part)
        (first,) = torch.autograd.grad(values.sum(), part, create_graph=True)
        (second,) = torch.autograd.grad(first.sum(), part)
        phi.append(values.detach())
        phi_d_exact.append(first.detach())
        phi_dd_exact.append(second)
    phi = torch.cat(phi, 1)
    if exact:
        phi_d_exact, phi_dd_exact = torch.cat(phi_d_exact, 1), torch.cat(phi_dd_exact, 1)
    else:
        phi_d_exact = phi_dd_exact = torch.full_like(phi, math.nan)

    # Finite differences need phi at t +- h and at 0, +-h; most of those points are on the grid
    # already (all but two when h is a multiple of t_step, as by default): only the others are
    # evaluated. Points are matched on a 1e-6 h lattice, far below any t_step in use.
    def lattice(ts: torch.Tensor) -> torch.Tensor:
        return torch.round(ts / (h * 1e-6)).long()

    needed = torch.cat([grid + h, grid - h, torch.tensor([h, 0.0, -h], dtype=grid.dtype, device=grid.device)])
    grid_keys, needed_keys = lattice(grid), lattice(needed)
    off_grid = ~torch.isin(needed_keys, grid_keys)
    extra_keys, inverse = needed_keys[off_grid].unique(return_inverse=True)
    extra_t = torch.empty(len(extra_keys), dtype=grid.dtype).scatter_(0, inverse, needed[off_grid])
    extra_t = extra_t.to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        extra = [phi_of(part) for part in extra_t.split(points)]
    keys, order = torch.cat([grid_keys, extra_keys]).sort()
    values = torch.cat([phi, *extra], 1)[:, order.to(w.device)]
    shifted = values[:, torch.searchsorted(keys, needed_keys).to(w.device)]
    n = len(t)
    plus, minus, around_0 = shifted[:, :n], shifted[:, n : 2 * n], shifted[:, 2 * n :]
    phi_dd_at_0 = ((around_0[:, 0] - 2 * around_0[:, 1] + around_0[:, 2]) / h**2).tolist()
    curvatures = directional_curvatures(loss_rows, w, directions).tolist()
    return [
        LineProfile(
            t=grid,
            phi=phi[b],
            phi_d=(plus[b] - minus[b]) / (2 * h),
            phi_dd=(plus[b] - 2 * phi[b] + minus[b]) / h**2,
            phi_d_exact=phi_d_exact[b],
            phi_dd_exact=phi_dd_exact[b],
            phi_dd_at_0=phi_dd_at_0[b],
            phi_dd_exact_at_0=curvatures[b],
        )
        for b in range(lines)
    ]


def directional_curvatures(loss_rows, w: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """d_b^T H_b d_b for B runs at once, by one Hessian-vector product of the summed losses."""
    runs = torch.arange(w.shape[0], device=w.device)
    weights = w.detach().clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss_rows(runs, weights).sum(), weights, create_graph=True)
    (hv,) = torch.autograd.grad((grad * directions).sum(), weights)
    return (hv * directions).sum(1)


def minimum_within(t: torch.Tensor, values: torch.Tensor, radius: float) -> float:
    """The minimum of values over |t| <= radius, NaNs left out (mu is NaN below its cutoff); NaN
    where none is left."""
    inside = values[t.abs() <= radius + 1e-12]
    inside = inside[~inside.isnan()]
    return inside.min().item() if inside.numel() else math.nan


def strong_aiming(t, phi, phi_d, inf_phi: float, keep: torch.Tensor) -> torch.Tensor:
    """mu(t) = 2 (t phi'(t) - phi(t) + inf phi) / t^2 where `keep`, NaN elsewhere."""
    mu = 2 * (t * phi_d - phi + inf_phi) / t.square()
    return torch.where(keep, mu, torch.full_like(mu, math.nan))


def beyond_cutoff(t: torch.Tensor, cutoff: float) -> torch.Tensor:
    return t.abs() >= cutoff - 1e-12


@dataclass
class GradientLine:
    profile: LineProfile
    mu: torch.Tensor  # from phi_d; NaN where |t| < cutoff
    mu_exact: torch.Tensor  # from phi_d_exact
    grad_norm: float
    inf_phi: float


def gradient_lines(
    loss_rows, w: torch.Tensor, t: torch.Tensor, h: float, inf_phi: str, mu_cutoff: float, exact: bool = True
) -> list[GradientLine | None]:
    """Probe B runs (w: (B, P); loss_rows as for line_profiles) along their normalized gradients,
    in w's dtype; None for a run whose gradient is zero or not finite."""
    if inf_phi not in INF_PHI:
        raise ValueError(f"unknown inf_phi {inf_phi!r}; allowed: {', '.join(INF_PHI)}")
    runs = torch.arange(w.shape[0], device=w.device)
    weights = w.detach().clone().requires_grad_()
    (grads,) = torch.autograd.grad(loss_rows(runs, weights).sum(), weights)
    norms = grads.norm(dim=1)
    valid = [b for b, norm in enumerate(norms.tolist()) if math.isfinite(norm) and norm > 0]
    out: list[GradientLine | None] = [None] * w.shape[0]
    if not valid:
        return out
    index = torch.tensor(valid, device=w.device)
    directions = grads[index] / norms[index].unsqueeze(1)
    profiles = line_profiles(
        lambda r, weights: loss_rows(index[r], weights), w.detach()[index], directions, t, h, exact=exact
    )
    keep = beyond_cutoff(t, mu_cutoff).to(w.device)
    t_w = t.to(device=w.device, dtype=w.dtype)
    for b, line in zip(valid, profiles):
        inf = 0.0 if inf_phi == "zero" else line.phi.min().item()
        out[b] = GradientLine(
            profile=line,
            mu=strong_aiming(t_w, line.phi, line.phi_d, inf, keep),
            mu_exact=strong_aiming(t_w, line.phi, line.phi_d_exact, inf, keep),
            grad_norm=norms[b].item(),
            inf_phi=inf,
        )
    return out


def gradient_line(
    loss_fn, w: torch.Tensor, t: torch.Tensor, h: float, inf_phi: str, mu_cutoff: float, exact: bool = True
) -> GradientLine | None:
    """Probe L along its normalized gradient at w (P,), for a loss_fn of weights (P,) or (B, P)."""
    return gradient_lines(lambda runs, weights: loss_fn(weights), w.unsqueeze(0), t, h, inf_phi, mu_cutoff, exact)[0]


def random_directions(n_params: int, k: int, generator: torch.Generator, dtype, device) -> torch.Tensor:
    """k independent uniformly random unit vectors (normalized Gaussians), shape (k, P)."""
    d = torch.randn(k, n_params, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    return d / d.norm(dim=1, keepdim=True)


def random_lines(loss_fn, w: torch.Tensor, directions: torch.Tensor, t: torch.Tensor, h: float) -> list[LineProfile]:
    """Profiles along each row of directions (k, P) from the same weights w (P,)."""
    k = directions.shape[0]
    return line_profiles(lambda runs, weights: loss_fn(weights), w.detach().expand(k, -1), directions, t, h)
