"""The gradient-line probe against closed forms on quadratics, and autograd against finite differences."""

import math

import pytest
import torch

from nesterov_landscape.mlp import MLPShape, forward, init_params
from nesterov_landscape.probes import (
    directional_curvature,
    gradient_line,
    gradient_lines,
    hessian_spectrum,
    random_directions,
    random_lines,
)
from nesterov_landscape.probes import t_grid

GRID = t_grid(-1.0, 1.0, 0.01)


def quadratic(hessian: torch.Tensor, minimizer: torch.Tensor):
    """L(w) = 1/2 (w - w*)^T H (w - w*), for weights (P,) or (B, P)."""

    def loss(w):
        d = w - minimizer
        return 0.5 * ((d @ hessian) * d).sum(-1)

    return loss


@pytest.fixture
def problem():
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))
    eigenvalues = torch.tensor([0.5, 1.0, 2.0, 3.0, 5.0, 8.0], dtype=torch.float64)
    hessian = q @ torch.diag(eigenvalues) @ q.T
    minimizer = torch.randn(6, generator=gen, dtype=torch.float64)
    w = minimizer + 0.3 * torch.randn(6, generator=gen, dtype=torch.float64)
    return hessian, minimizer, w


def closed_form(hessian, minimizer, w):
    """phi(t) = L + t |grad L| + c t^2 / 2 with c = g^T H g along the unit gradient g."""
    grad = hessian @ (w - minimizer)
    g = grad / grad.norm()
    loss = 0.5 * (w - minimizer) @ grad
    return loss.item(), grad.norm().item(), (g @ hessian @ g).item()


def test_quadratic_curvature_and_strong_aiming(problem):
    hessian, minimizer, w = problem
    loss, slope, curvature = closed_form(hessian, minimizer, w)
    line = gradient_line(quadratic(hessian, minimizer), w, GRID, h=0.01, inf_phi="zero", mu_cutoff=0.05)
    t = GRID
    torch.testing.assert_close(line.profile.phi, loss + slope * t + curvature * t**2 / 2, rtol=1e-12, atol=1e-12)
    # Central differences are exact on quadratics up to rounding.
    torch.testing.assert_close(line.profile.phi_dd, torch.full_like(t, curvature), rtol=1e-9, atol=0)
    torch.testing.assert_close(line.profile.phi_dd_exact, torch.full_like(t, curvature), rtol=1e-12, atol=0)
    torch.testing.assert_close(line.profile.phi_d, slope + curvature * t, rtol=1e-10, atol=1e-10)
    assert line.profile.phi_dd_at_0 == pytest.approx(curvature, rel=1e-9)
    assert line.profile.phi_dd_exact_at_0 == pytest.approx(curvature, rel=1e-12)
    # mu(t) = 2 (t phi' - phi) / t^2 = c - 2 L / t^2 with inf phi = 0, NaN inside the cutoff.
    keep = t.abs() >= 0.05 - 1e-12
    assert line.mu[~keep].isnan().all() and line.mu_exact[~keep].isnan().all()
    expected_mu = curvature - 2 * loss / t[keep] ** 2
    torch.testing.assert_close(line.mu[keep], expected_mu, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(line.mu_exact[keep], expected_mu, rtol=1e-10, atol=1e-10)


def test_strong_aiming_constant_at_the_minimizer_line(problem):
    """At w = w* + v/2 with v an eigenvector, the probe line runs through the minimizer:
    phi(t) = lam/2 (1/2 + t)^2, inf phi = 0 (at t = -1/2, on the grid), so mu(t) = lam (1 - 1/(4 t^2)),
    which tends to lam, the quadratic's strong-aiming constant along that line, as |t| grows."""
    hessian, minimizer, _ = problem
    eigenvalues, vectors = torch.linalg.eigh(hessian)
    w = minimizer + 0.5 * vectors[:, 2]  # gradient is lambda * 0.5 * v: the line passes through w*
    line = gradient_line(quadratic(hessian, minimizer), w, GRID, h=0.01, inf_phi="grid_min", mu_cutoff=0.01)
    lam = eigenvalues[2].item()
    t = GRID[GRID.abs() >= 0.01]
    torch.testing.assert_close(line.mu_exact[GRID.abs() >= 0.01], lam * (1 - 0.25 / t**2), rtol=1e-10, atol=1e-10)
    assert line.inf_phi == pytest.approx(0.0, abs=1e-14)
    assert line.profile.phi_dd_exact_at_0 == pytest.approx(lam, rel=1e-12)


def test_grid_min_shifts_mu(problem):
    hessian, minimizer, w = problem
    loss, slope, curvature = closed_form(hessian, minimizer, w)
    line = gradient_line(quadratic(hessian, minimizer), w, GRID, h=0.01, inf_phi="grid_min", mu_cutoff=0.01)
    phi_on_grid = loss + slope * GRID + curvature * GRID**2 / 2
    inf_phi = phi_on_grid.min().item()
    assert line.inf_phi == pytest.approx(inf_phi, rel=1e-12)
    keep = GRID.abs() >= 0.01
    torch.testing.assert_close(
        line.mu_exact[keep], curvature - 2 * (loss - inf_phi) / GRID[keep] ** 2, rtol=1e-10, atol=1e-10
    )


def mlp_loss(dtype=torch.float64):
    shape = MLPShape(input_dim=4, width=10, depth=3)
    gen = torch.Generator().manual_seed(3)
    params = init_params(shape, "pytorch", gen).to(dtype)
    x = torch.randn(20, 4, generator=gen, dtype=torch.float64).to(dtype)
    y = torch.randn(20, generator=gen, dtype=torch.float64).to(dtype)
    return (lambda w: 0.5 * (forward(shape, "tanh", w, x) - y).square().mean(-1)), params


def test_finite_difference_curvature_agrees_with_hessian_vector_product():
    loss, w = mlp_loss()
    line = gradient_line(loss, w, GRID, h=0.01, inf_phi="zero", mu_cutoff=0.01)
    # Central second differences with h = 0.01 carry an O(h^2) error: 1e-4 relative, as science.md measured.
    assert line.profile.phi_dd_at_0 == pytest.approx(line.profile.phi_dd_exact_at_0, rel=1e-4)
    torch.testing.assert_close(line.profile.phi_dd, line.profile.phi_dd_exact, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(line.profile.phi_d, line.profile.phi_d_exact, rtol=1e-3, atol=1e-6)


def test_hessian_vector_product_against_gradient_differences():
    loss, w = mlp_loss()
    v = torch.randn(w.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    v /= v.norm()

    def grad_at(p):
        p = p.clone().requires_grad_()
        return torch.autograd.grad(loss(p), p)[0]

    eps = 1e-5
    fd = ((grad_at(w + eps * v) - grad_at(w - eps * v)) / (2 * eps)) @ v
    assert directional_curvature(loss, w, v) == pytest.approx(fd.item(), rel=1e-7)


def test_probe_precision_follows_the_weights():
    loss32, w32 = mlp_loss(torch.float32)
    line = gradient_line(loss32, w32, GRID, h=0.01, inf_phi="zero", mu_cutoff=0.01)
    assert line.profile.phi.dtype == torch.float32 and line.profile.t.dtype == torch.float64


def test_zero_gradient_skips_the_probe():
    hessian = torch.eye(3, dtype=torch.float64)
    minimizer = torch.zeros(3, dtype=torch.float64)
    assert gradient_line(quadratic(hessian, minimizer), minimizer, GRID, 0.01, "zero", 0.01) is None


def test_t_grid_holds_zero_and_the_endpoints():
    assert len(GRID) == 201
    assert GRID[0].item() == -1.0 and GRID[-1].item() == 1.0 and GRID[100].item() == 0.0
    assert math.isclose(t_grid(-0.25, 0.5, 0.1)[0].item(), -0.2)


def test_lanczos_recovers_a_known_spectrum():
    gen = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(20, 20, generator=gen, dtype=torch.float64))
    eigenvalues = torch.linspace(0.1, 10.0, 20, dtype=torch.float64) ** 2
    hessian = q @ torch.diag(eigenvalues) @ q.T
    w = torch.randn(20, generator=gen, dtype=torch.float64)
    spectrum = hessian_spectrum(
        quadratic(hessian, torch.zeros(20, dtype=torch.float64)),
        w,
        k=5,
        lanczos_steps=30,
        trace_samples=2000,
        generator=torch.Generator().manual_seed(2),
    )
    expected = eigenvalues.flip(0)[:5]
    torch.testing.assert_close(torch.tensor(spectrum.top_eigenvalues, dtype=torch.float64), expected, rtol=1e-6, atol=0)
    # Hutchinson: unbiased, checked within 4 standard errors of the exact trace
    assert abs(spectrum.trace - eigenvalues.sum().item()) < 4 * spectrum.trace_std_error
    assert spectrum.trace_std_error < 0.05 * eigenvalues.sum().item()


def test_random_lines_have_the_quadratic_form_as_curvature(problem):
    hessian, minimizer, w = problem
    directions = random_directions(6, 3, torch.Generator().manual_seed(0), torch.float64, "cpu")
    assert torch.allclose(directions.norm(dim=1), torch.ones(3, dtype=torch.float64))
    for d, line in zip(directions, random_lines(quadratic(hessian, minimizer), w, directions, GRID, h=0.01)):
        curvature = (d @ hessian @ d).item()
        torch.testing.assert_close(line.phi_dd_exact, torch.full_like(GRID, curvature), rtol=1e-12, atol=0)
        assert line.phi_dd_at_0 == pytest.approx(curvature, rel=1e-8)


def test_stacked_gradient_lines_equal_one_at_a_time():
    """Three quadratics with different Hessians probed in one call give what each gives alone."""
    gen = torch.Generator().manual_seed(4)
    hessians = []
    for scale in (1.0, 2.0, 5.0):
        q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))
        hessians.append(q @ torch.diag(scale * torch.linspace(0.5, 3.0, 6, dtype=torch.float64)) @ q.T)
    hessians = torch.stack(hessians)
    minimizers = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    w = minimizers + 0.2 * torch.randn(3, 6, generator=gen, dtype=torch.float64)
    w[1] = minimizers[1]  # zero gradient: no probe for this run

    def loss_rows(runs, weights):
        d = weights - minimizers[runs]
        return 0.5 * (torch.einsum("ri,rij,rj->r", d, hessians[runs], d))

    lines = gradient_lines(loss_rows, w, GRID, 0.01, "zero", 0.01)
    assert lines[1] is None
    for b in (0, 2):
        alone = gradient_line(quadratic(hessians[b], minimizers[b]), w[b], GRID, 0.01, "zero", 0.01)
        for name, values in lines[b].columns().items():
            torch.testing.assert_close(values, alone.columns()[name], rtol=1e-10, atol=1e-10, equal_nan=True)
        assert lines[b].profile.phi_dd_exact_at_0 == pytest.approx(alone.profile.phi_dd_exact_at_0, rel=1e-12)
