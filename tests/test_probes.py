"""The gradient-line probe against closed forms on quadratics, and autograd against finite differences."""

import csv
import math

import pytest
import torch
import yaml

from nesterov_landscape.job_probes import ProbeRecords
from nesterov_landscape.numerics.lines import gradient_line, gradient_lines, random_directions, random_lines, t_grid
from nesterov_landscape.numerics.mlp import MLPShape, forward, init_params
from nesterov_landscape.numerics.spectrum import directional_curvature, hessian_spectrum
from nesterov_landscape.probes import Point
from nesterov_landscape.probes import hessian as hessian_probe
from nesterov_landscape.probes.gradient_line import columns, summary_entries
from nesterov_landscape.summary_schema import radius_key

from .helpers import CONF

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


@pytest.mark.parametrize("h", [0.01, 0.003])
def test_finite_differences_evaluate_only_the_points_off_the_grid(problem, h):
    """phi at t +- h and 0, +-h comes from the grid where it is on it: with h = t_step only the two
    points beyond the ends are evaluated besides the grid; with h = 0.003, 2 per grid point (those
    around 0 among them). Either way the differences are those of the closed form."""
    hessian, minimizer, w = problem
    loss, slope, curvature = closed_form(hessian, minimizer, w)
    rows = []

    def counting(weights):
        rows.append(1 if weights.dim() == 1 else weights.shape[0])
        return quadratic(hessian, minimizer)(weights)

    line = gradient_line(counting, w, GRID, h=h, inf_phi="zero", mu_cutoff=0.05, exact=False)
    gradient_and_curvature = 2  # the gradient at w, then one Hessian-vector product
    off_grid = 2 if h == 0.01 else 2 * len(GRID)
    assert sum(rows) == len(GRID) + off_grid + gradient_and_curvature
    torch.testing.assert_close(line.profile.phi_dd, torch.full_like(GRID, curvature), rtol=1e-8, atol=0)
    torch.testing.assert_close(line.profile.phi_d, slope + curvature * GRID, rtol=1e-10, atol=1e-10)
    assert line.profile.phi_dd_at_0 == pytest.approx(curvature, rel=1e-8)
    assert line.profile.phi_d_exact.isnan().all()


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
        for name, values in columns(lines[b]).items():
            torch.testing.assert_close(values, columns(alone)[name], rtol=1e-10, atol=1e-10, equal_nan=True)
        assert lines[b].profile.phi_dd_exact_at_0 == pytest.approx(alone.profile.phi_dd_exact_at_0, rel=1e-12)


# --- Summary scalars (the minima over |t| <= r that feed the analysis) against closed forms ---

H_STEP = 0.01


def grid_values():
    """The probe grid t = k * 0.01, k = -100..100, as plain Python floats (same arithmetic as t_grid)."""
    return [k * 0.01 for k in range(-100, 101)]


def test_summary_minima_on_a_quadratic(problem):
    """phi(t) = L + s t + c t^2 / 2: phi'' = c everywhere, mu(t) = c - 2 (L - inf phi) / t^2 rises with |t|,
    so its minimum over cutoff <= |t| <= r is at the smallest grid |t| >= cutoff (0.05 for a cutoff of
    0.045, which is not on the grid), and a radius below the cutoff has no mu at all (NaN)."""
    hessian, minimizer, w = problem
    loss, slope, curvature = closed_form(hessian, minimizer, w)
    radii = [0.03, 0.1, 0.5, 1.0]
    for inf_phi in ("zero", "grid_min"):
        line = gradient_line(quadratic(hessian, minimizer), w, GRID, h=H_STEP, inf_phi=inf_phi, mu_cutoff=0.045)
        scalars = summary_entries(line, radii)
        inf = 0.0 if inf_phi == "zero" else min(loss + slope * t + curvature * t * t / 2 for t in grid_values())
        assert scalars["inf_phi"] == pytest.approx(inf, rel=1e-12, abs=1e-15)
        assert scalars["probe_grad_norm"] == pytest.approx(slope, rel=1e-12)
        assert scalars["phi_dd_at_0"] == pytest.approx(curvature, rel=1e-9)
        assert scalars["phi_dd_exact_at_0"] == pytest.approx(curvature, rel=1e-12)
        for r in radii:
            assert scalars[f"phi_dd_min_{radius_key(r)}"] == pytest.approx(curvature, rel=1e-9)
        assert math.isnan(scalars["mu_min_0p03"]) and math.isnan(scalars["mu_exact_min_0p03"])
        expected_mu = curvature - 2 * (loss - inf) / 0.05**2
        for r in radii[1:]:
            assert scalars[f"mu_min_{radius_key(r)}"] == pytest.approx(expected_mu, rel=1e-8)
            assert scalars[f"mu_exact_min_{radius_key(r)}"] == pytest.approx(expected_mu, rel=1e-10)


X0_QUARTIC, OFFSET = 0.3, 0.01


def quartic_line_problem():
    """L(w) = f(u_0 . (w - c)) + 1/2 sum_i lam_i (u_i . (w - c))^2 with f(x) = OFFSET + x^2/2 - x^4/4 and an
    orthonormal basis u. At w = c + X0 u_0 the gradient is f'(X0) u_0 (f'(0.3) > 0), so along the unit
    gradient phi(t) = f(X0 + t): phi'' = 1 - 3 (X0 + t)^2 turns negative for t > 0.28."""
    gen = torch.Generator().manual_seed(7)
    basis, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))
    lam = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    center = torch.randn(5, generator=gen, dtype=torch.float64)

    def loss(w):
        u = (w - center) @ basis  # coordinates in the basis u (the columns of `basis`)
        x = u[..., 0]
        return OFFSET + x**2 / 2 - x**4 / 4 + 0.5 * (lam * u * u).sum(-1)

    return loss, center + X0_QUARTIC * basis[:, 0]


def f(x):
    return OFFSET + x**2 / 2 - x**4 / 4


def f_d(x):
    return x - x**3


def test_summary_minima_on_a_quartic_profile():
    """Central differences of a quartic are exact up to known terms: phi''_h = phi'' + h^2/12 phi'''' =
    phi'' - h^2/2 and phi'_h = phi' + h^2/6 phi''' = phi' - h^2 (X0 + t). The minima of phi'' over
    |t| <= r sit at t = r, 1 - 3 (X0 + r)^2; mu(t) = 2 (t phi'(t) - phi(t) + inf phi) / t^2 is evaluated
    on the grid from these formulas with cutoff 0.2, where its minimum can depend on the radius (with
    inf phi = OFFSET: -1.72 at t = 0.2 for r = 0.5, -2.06 at t = 1 for r = 1), and inf phi is 0 or the grid
    minimum f(0) = OFFSET (at t = -0.3, on the grid)."""
    loss, w = quartic_line_problem()
    cutoff, radii = 0.2, [0.1, 0.5, 1.0]
    ts = grid_values()
    for inf_phi, inf in (("zero", 0.0), ("grid_min", OFFSET)):
        line = gradient_line(loss, w, GRID, h=H_STEP, inf_phi=inf_phi, mu_cutoff=cutoff)
        scalars = summary_entries(line, radii)
        assert scalars["inf_phi"] == pytest.approx(inf, abs=1e-15)
        assert scalars["probe_grad_norm"] == pytest.approx(f_d(X0_QUARTIC), rel=1e-12)
        assert scalars["phi_dd_exact_at_0"] == pytest.approx(1 - 3 * X0_QUARTIC**2, rel=1e-12)
        assert scalars["phi_dd_at_0"] == pytest.approx(1 - 3 * X0_QUARTIC**2 - H_STEP**2 / 2, rel=1e-9)
        for r in radii:
            key = radius_key(r)
            phi_dd_min = 1 - 3 * (X0_QUARTIC + r) ** 2 - H_STEP**2 / 2
            assert scalars[f"phi_dd_min_{key}"] == pytest.approx(phi_dd_min, rel=1e-9)
            kept = [t for t in ts if cutoff <= abs(t) <= r + 1e-12]
            if not kept:
                assert math.isnan(scalars[f"mu_min_{key}"]) and math.isnan(scalars[f"mu_exact_min_{key}"])
                continue
            exact = min(2 * (t * f_d(X0_QUARTIC + t) - f(X0_QUARTIC + t) + inf) / t**2 for t in kept)
            central = min(
                2 * (t * (f_d(X0_QUARTIC + t) - H_STEP**2 * (X0_QUARTIC + t)) - f(X0_QUARTIC + t) + inf) / t**2
                for t in kept
            )
            assert scalars[f"mu_exact_min_{key}"] == pytest.approx(exact, rel=1e-10)
            assert scalars[f"mu_min_{key}"] == pytest.approx(central, rel=1e-8)
        if inf_phi == "grid_min":  # the minimum moves from the cutoff to the end of the segment as r grows
            assert scalars["mu_exact_min_0p5"] == pytest.approx(2 * (0.2 * f_d(0.5) - f(0.5) + inf) / 0.04, rel=1e-10)
            assert scalars["mu_exact_min_1"] == pytest.approx(2 * (f_d(1.3) - f(1.3) + inf), rel=1e-10)


def test_mlp_curvature_at_zero_three_ways_and_a_dense_hessian():
    """phi''(0) along the unit gradient of an MLP: g^T H g with H from torch.autograd.functional.hessian;
    the Hessian-vector product and autograd in t equal it to round-off; the central difference with
    h = 0.01 differs by its leading error term h^2/12 phi''''(0) (phi'''' by autograd in t) up to O(h^4)."""
    loss, w = mlp_loss()
    line = gradient_line(loss, w, GRID, h=H_STEP, inf_phi="zero", mu_cutoff=0.01)
    dense = torch.autograd.functional.hessian(loss, w)
    w_var = w.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(w_var), w_var)
    g = grad / grad.norm()
    reference = (g @ dense @ g).item()
    at_0 = GRID.abs().argmin()
    assert line.profile.phi_dd_exact_at_0 == pytest.approx(reference, rel=1e-12)
    assert line.profile.phi_dd_exact[at_0].item() == pytest.approx(reference, rel=1e-10)
    t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    derivative = loss(w + t * g)
    for _ in range(4):
        (derivative,) = torch.autograd.grad(derivative, t, create_graph=True)
    fourth = derivative.item()
    truncation = H_STEP**2 / 12 * fourth
    assert abs(truncation) > 1e-7 * abs(reference)  # the error term is visible above round-off
    assert line.profile.phi_dd_at_0 - reference == pytest.approx(truncation, rel=1e-2)
    # the grid's own phi''(t = 0) is the same central difference
    assert line.profile.phi_dd[at_0].item() == pytest.approx(line.profile.phi_dd_at_0, rel=1e-9)


@pytest.fixture
def one_thread():
    """One torch thread, as every job runs: the dense Hessian's 1,121 small backward passes take about a
    second on one thread and can take a minute with two threads on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_hessian_probe_with_default_lanczos_steps_against_a_dense_hessian(tmp_path, one_thread):
    """probe=[hessian] with its defaults (60 Lanczos steps, 100 trace samples) on an MLP with 1,121
    weights, far more than 60: the top eigenvalues equal those of the dense Hessian
    (torch.autograd.functional.hessian) both ways, phi''(0) / lambda_max equals g^T H g / lambda_max,
    the trace lies within 3 standard errors of tr H, and the standard error is the one Rademacher
    vectors give, sqrt(2 (|H|_F^2 - sum_i H_ii^2) / 100)."""
    shape = MLPShape(input_dim=12, width=20, depth=3)
    gen = torch.Generator().manual_seed(3)
    params = init_params(shape, "pytorch", gen)
    x = torch.randn(100, 12, generator=gen, dtype=torch.float64)
    y = torch.randn(100, generator=gen, dtype=torch.float64)

    def loss_in(dtype):
        return lambda w: 0.5 * (forward(shape, "tanh", w, x.to(dtype)) - y.to(dtype)).square().mean(-1)

    defaults = yaml.safe_load((CONF / "probe" / "hessian.yaml").read_text())["hessian"]
    assert defaults["lanczos_steps"] == 60 and shape.n_params == 1121
    at = Point(params, epoch=0, loss_in=loss_in, train_dtype=torch.float64, seed=0)
    output = hessian_probe.run(hessian_probe.HessianConfig(**defaults), at)
    records = ProbeRecords()
    records.add("hessian", output)
    records.write(tmp_path)
    out = output.summary
    dense = torch.autograd.functional.hessian(loss_in(torch.float64), params)
    eigenvalues = torch.linalg.eigvalsh(dense).flip(0)
    assert out["hessian_lanczos_steps"] == 60
    for i in range(defaults["top_k"]):
        assert out[f"hessian_eig_{i + 1}"] == pytest.approx(eigenvalues[i].item(), rel=1e-9)
    assert out["hessian_lambda_max"] == pytest.approx(eigenvalues[0].item(), rel=1e-12)
    with (tmp_path / "hessian.csv").open() as f_csv:
        on_disk = [float(row["eigenvalue"]) for row in csv.DictReader(f_csv)]
    torch.testing.assert_close(torch.tensor(on_disk, dtype=torch.float64), eigenvalues[:5], rtol=1e-9, atol=0)
    w_var = params.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss_in(torch.float64)(w_var), w_var)
    g = grad / grad.norm()
    assert out["phi_dd_over_lambda_max"] == pytest.approx((g @ dense @ g).item() / eigenvalues[0].item(), rel=1e-10)
    trace = dense.trace().item()
    assert abs(out["hessian_trace"] - trace) < 3 * out["hessian_trace_std_error"]
    expected_error = math.sqrt(2 * (dense.square().sum() - dense.diag().square().sum()).item() / 100)
    assert out["hessian_trace_std_error"] == pytest.approx(expected_error, rel=0.3)
