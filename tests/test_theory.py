"""Rates from the theory (science.md) measured on quadratics through the real training loop."""

import math

import pytest
import torch

from nesterov_landscape.numerics.optimizers import OPTIMIZERS
from nesterov_landscape.numerics.optimizers.agnes import agnes_parameters
from nesterov_landscape.numerics.training import Schedule, train, value_and_grad, with_gradient_noise

L, MU, DIM = 1.0, 0.01, 10  # condition number kappa = 100
EIGENVALUES = torch.logspace(math.log10(MU), math.log10(L), DIM, dtype=torch.float64)
X0 = torch.ones(DIM, dtype=torch.float64)


def quadratic(w):
    return 0.5 * (EIGENVALUES * w * w).sum(-1)


def run(name, hp, steps):
    """`steps` epochs of the real single-run training loop (training.train, full batch, autograd gradients)
    from X0: the iterates x_0 .. x_steps (collected by its checkpoint hook) and the loss at every epoch."""
    params = []
    result = train(
        value_and_grad(quadratic),
        X0.clone(),
        OPTIMIZERS[name],
        hp,
        Schedule(steps, log_every=1, checkpoint_every=1),
        on_checkpoint=lambda epoch, p: params.append(p.detach().clone()),
    )
    assert result.status == "completed" and [row["epoch"] for row in result.history] == list(range(steps + 1))
    losses = torch.tensor([row["loss"] for row in result.history], dtype=torch.float64)
    return torch.stack([*params, result.params]), losses


def contraction_rate(xs, start, end):
    """Per-step factor by which the distance to the minimizer (0) shrinks between two steps."""
    return (xs[end].norm() / xs[start].norm()).item() ** (1 / (end - start))


def characteristic_roots(x, start, end):
    """A two-step method on a quadratic moves each eigen-coordinate by a fixed linear recurrence
    x_{n+1} = c1 x_n + c2 x_{n-1}; (c1, c2) fitted by least squares to the iterates n = start..end, and
    the roots of z^2 - c1 z - c2: the measured per-step factors of that coordinate."""
    n = torch.arange(start, end)
    (c1, c2) = torch.linalg.lstsq(torch.stack([x[n], x[n - 1]], 1), x[n + 1].unsqueeze(1)).solution.squeeze(1)
    return torch.linalg.eigvals(torch.tensor([[c1, c2], [1.0, 0.0]], dtype=torch.float64))


def steps_to(losses, eps):
    return int((losses <= eps * losses[0]).nonzero()[0])


def test_gd_contracts_at_one_minus_mu_eta():
    """The loss contracts by (1 - mu eta)^2 per step once the slowest direction dominates; the next one
    (eigenvalue 0.0167) adds about 1e-9 relative to the measured rate over epochs 1000 to 2000."""
    eta = 1 / L
    _, losses = run("gd", OPTIMIZERS["gd"].hyperparams(lr=eta), 2000)
    rate = (losses[2000] / losses[1000]).item() ** (1 / 2000)
    assert rate == pytest.approx(1 - MU * eta, rel=1e-8)


def test_nag_scheme_contracts_at_one_minus_sqrt_mu_eta():
    """With rho from (mu, eta) the slowest direction has the double root 1 - sqrt(mu eta) = 0.9: both
    measured roots of its recurrence have that modulus (to 1e-9) and coincide (to 1e-6: a double root
    splits like the square root of round-off). The distance to the minimizer then contracts like
    n (1 - sqrt(mu eta))^n: over epochs 1000 to 3000 the factor n adds 3^(1/2000) - 1 = 5.5e-4.
    Heavy ball with the same step and momentum has roots of modulus sqrt(rho) = 0.9045 (0.5% away)
    and fails both."""
    eta = 1 / L
    hp = OPTIMIZERS["nag_scheme"].hyperparams(eta=eta, rho=None, mu=MU)
    xs, _ = run("nag_scheme", hp, 3000)
    expected = 1 - math.sqrt(MU * eta)
    roots = characteristic_roots(xs[:, 0], 200, 400)  # coordinate 0 has the eigenvalue mu
    torch.testing.assert_close(roots.abs(), torch.full((2,), expected, dtype=torch.float64), rtol=1e-9, atol=0)
    assert (roots[0] - roots[1]).abs().item() < 1e-6
    assert contraction_rate(xs, 1000, 3000) == pytest.approx(expected * 3 ** (1 / 2000), rel=1e-4)


def test_nag_needs_about_sqrt_kappa_fewer_steps_than_gd():
    kappa, eps = L / MU, 1e-10
    _, gd_losses = run("gd", OPTIMIZERS["gd"].hyperparams(lr=1 / L), 5000)
    _, nag_losses = run("nag_scheme", OPTIMIZERS["nag_scheme"].hyperparams(eta=1 / L, rho=None, mu=MU), 5000)
    gd, nag = steps_to(gd_losses, eps), steps_to(nag_losses, eps)
    # GD needs about kappa log(1/eps), NAG about sqrt(kappa) log(1/eps), up to constant factors (the
    # loss is quadratic in the distance; the slow direction starts with a small share of the loss)
    log_eps = math.log(1 / eps)
    assert kappa * log_eps / 4 < gd < kappa * log_eps
    assert math.sqrt(kappa) * log_eps / 4 < nag < 2 * math.sqrt(kappa) * log_eps
    assert math.sqrt(kappa) / 3 < gd / nag < 3 * math.sqrt(kappa)


def noisy_losses(name, sigma, seed, steps=1000):
    """The loss at epochs 0, steps / 2 and steps of the real training loop with multiplicative gradient noise."""
    generator = torch.Generator().manual_seed(seed)
    estimate = with_gradient_noise(value_and_grad(quadratic), "multiplicative", sigma, generator)
    if name == "agnes":
        alpha, eta, rho = agnes_parameters(L, MU, sigma)
        hp = OPTIMIZERS["agnes"].hyperparams(
            lr=alpha, correction=eta, momentum=rho, weight_decay=0.0, L=None, mu=None, sigma=0.0
        )
    else:
        root = math.sqrt(MU / L)
        hp = OPTIMIZERS["nag"].hyperparams(lr=1 / L, momentum=(1 - root) / (1 + root))
    result = train(
        value_and_grad(quadratic), X0, OPTIMIZERS[name], hp, Schedule(steps, steps // 2), gradient_estimate=estimate
    )
    assert [row["epoch"] for row in result.history] == [0, steps // 2, steps]
    return [row["loss"] for row in result.history]


def test_agnes_converges_under_multiplicative_noise_where_nag_diverges():
    """sigma = 1.5: AGNES with its (L, mu, sigma) formulas converges below 1e-20 on every seed; NAG with the
    step 1/L and the theory momentum, as tuned for the noiseless problem, diverges: on every seed its
    loss grows by more than 20 decades over the first 500 steps and by 10 more over the next 500
    (measured: 1.2 at the start, 1e25 to 1e33 at 500, 1e47 to 1e63 at 1000)."""
    sigma = 1.5
    for seed in range(5):
        start, _, end = noisy_losses("agnes", sigma, seed)
        assert end < 1e-20 * start, seed
        start, middle, end = noisy_losses("nag", sigma, seed)
        assert middle > 1e20 * start and end > 1e10 * middle, seed


# |g - grad f|^2 = scale^2 |xi|^2 / P with xi ~ N(0, I_P): mean scale^2, relative std sqrt(2 / P); the mean of
# SAMPLES draws is checked within 3 of its standard errors, 3 sqrt(2 / P / SAMPLES) = 2.1% relative.
SAMPLES = 4000
THREE_STANDARD_ERRORS = 3 * math.sqrt(2 / DIM / SAMPLES)


def test_multiplicative_noise_has_the_stated_size():
    generator = torch.Generator().manual_seed(0)
    estimate = with_gradient_noise(value_and_grad(quadratic), "multiplicative", 2.0, generator)
    exact = EIGENVALUES * X0
    errors = torch.stack([(estimate(X0)[1] - exact).square().sum() for _ in range(SAMPLES)])
    assert errors.mean().item() == pytest.approx(4.0 * exact.square().sum().item(), rel=THREE_STANDARD_ERRORS)


def test_additive_noise_has_the_stated_size():
    generator = torch.Generator().manual_seed(0)
    estimate = with_gradient_noise(value_and_grad(quadratic), "additive", 0.3, generator)
    errors = torch.stack([(estimate(X0)[1] - EIGENVALUES * X0).square().sum() for _ in range(SAMPLES)])
    assert errors.mean().item() == pytest.approx(0.09, rel=THREE_STANDARD_ERRORS)
