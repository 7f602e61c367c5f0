import math

import pytest
import torch

from nesterov_landscape.numerics.optimizers import OPTIMIZERS

A = torch.tensor([1.0, 4.0], dtype=torch.float64)  # f(x) = 1/2 x^T diag(A) x, grad f = A x
X0 = torch.tensor([1.0, 1.0], dtype=torch.float64)

ADAM_P1 = (1 - 0.1 * 1 / (1 + 1e-8), 1 - 0.1 * 4 / (4 + 1e-8))
# Two iterations by hand with lr 0.1, momentum 0.5, from x0 = (1, 1), g0 = (1, 4):
HAND = {
    # b1 = g0; p1 = x0 - lr (g0 + rho b1) = (0.85, 0.4); g1 = (0.85, 1.6); b2 = rho b1 + g1 = (1.35, 3.6)
    # p2 = p1 - lr (g1 + rho b2) = (0.85 - 0.1525, 0.4 - 0.34)
    "nag": [(0.85, 0.4), (0.6975, 0.06)],
    # p1 = x0 - lr g0 = (0.9, 0.6); g1 = (0.9, 2.4); b2 = (1.4, 4.4); p2 = p1 - lr b2
    "heavy_ball": [(0.9, 0.6), (0.76, 0.16)],
    # p1 = (0.9, 0.6); p2 = p1 - lr (0.9, 2.4)
    "gd": [(0.9, 0.6), (0.81, 0.36)],
    # scheme (5), eta 0.1, rho 0.5: x1 = x'0 - eta g0 = (0.9, 0.6), v1 = rho (0 - sqrt(eta) g0),
    # x'1 = x1 + sqrt(eta) v1 = (0.9, 0.6) - 0.05 (1, 4): NAG's iterates
    "nag_scheme": [(0.85, 0.4), (0.6975, 0.06)],
    # alpha 0.05, eta 0.1, rho 0.5: v1 = rho (0 - g0) = (-0.5, -2); p1 = p0 - eta g0 + alpha v1 = (0.875, 0.5);
    # g1 = (0.875, 2); v2 = rho (v1 - g1) = (-0.6875, -2); p2 = p1 - eta g1 + alpha v2
    "agnes": [(0.875, 0.5), (0.875 - 0.0875 - 0.034375, 0.5 - 0.2 - 0.1)],
    # lr 0.1, betas (0.9, 0.999), eps 1e-8: step 1 moves each coordinate by lr g0 / (|g0| + eps); g1 = A p1;
    # m2 = 0.9 * 0.1 g0 + 0.1 g1, s2 = 0.999 * 0.001 g0^2 + 0.001 g1^2, bias corrections 0.19 and 0.001999
    "adam": [
        ADAM_P1,
        tuple(
            p
            - 0.1
            * ((0.09 * g0 + 0.1 * a * p) / 0.19)
            / (math.sqrt((0.000999 * g0**2 + 0.001 * (a * p) ** 2) / 0.001999) + 1e-8)
            for p, g0, a in zip(ADAM_P1, (1.0, 4.0), (1.0, 4.0))
        ),
    ],
}


def hyperparams(name: str, lr: float, momentum: float):
    """The optimizer's hyperparameters with step lr and momentum (AGNES: alpha = eta / 2)."""
    cls = OPTIMIZERS[name].hyperparams
    return {
        "nag": lambda: cls(lr=lr, momentum=momentum),
        "heavy_ball": lambda: cls(lr=lr, momentum=momentum),
        "gd": lambda: cls(lr=lr),
        "nag_scheme": lambda: cls(eta=lr, rho=momentum, mu=None),
        "agnes": lambda: cls(lr=lr / 2, correction=lr, momentum=momentum, weight_decay=0.0, L=None, mu=None, sigma=0.0),
        "adam": lambda: cls(lr=lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0),
    }[name]()


def iterate(name: str, lr: float, momentum: float, steps: int, x0=X0):
    opt = OPTIMIZERS[name]
    hp = hyperparams(name, lr, momentum)
    params, state, out = x0.clone(), opt.init(x0), []
    for _ in range(steps):
        params, state = opt.step(hp, params, A * params, state)
        out.append(params)
    return out


@pytest.mark.parametrize("name", list(HAND))
def test_first_two_iterations_by_hand(name):
    got = iterate(name, lr=0.1, momentum=0.5, steps=2)
    for step, expected in zip(got, HAND[name]):
        torch.testing.assert_close(step, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "name,torch_optimizer",
    [
        ("nag", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
        ("heavy_ball", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
        ("gd", lambda p: torch.optim.SGD(p, lr=0.05)),
        ("nag_scheme", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
        ("adam", lambda p: torch.optim.Adam(p, lr=0.05)),
    ],
)
def test_matches_torch_optim_for_many_steps(name, torch_optimizer):
    ours = iterate(name, lr=0.05, momentum=0.9, steps=60)
    p = torch.nn.Parameter(X0.clone())
    reference = torch_optimizer([p])
    for step in ours:
        reference.zero_grad()
        (0.5 * (A * p * p).sum()).backward()
        reference.step()
        torch.testing.assert_close(step, p.detach(), rtol=1e-12, atol=1e-14)


def test_nag_scheme_with_mu_uses_the_theory_momentum():
    hp = OPTIMIZERS["nag_scheme"].hyperparams(eta=0.01, rho=None, mu=4.0)  # sqrt(mu eta) = 0.2
    assert hp.momentum == pytest.approx(0.8 / 1.2, rel=1e-15)


def test_agnes_with_alpha_equal_eta_is_nag():
    agnes = OPTIMIZERS["agnes"]
    hp = agnes.hyperparams(lr=0.05, correction=0.05, momentum=0.9, weight_decay=0.0, L=None, mu=None, sigma=0.0)
    params, state = X0.clone(), agnes.init(X0)
    for expected in iterate("nag", lr=0.05, momentum=0.9, steps=100):
        params, state = agnes.step(hp, params, A * params, state)
        torch.testing.assert_close(params, expected, rtol=1e-11, atol=1e-14)


def test_agnes_parameters_from_constants():
    # L = 4, mu = 1, sigma = 1: eta = 1/8; sqrt(mu/L) = 1/2: alpha = eta (1/2) / (3/2) = 1/24;
    # rho = (2 * 2 - 1) / (2 * 2 + 1) = 3/5
    hp = OPTIMIZERS["agnes"].hyperparams(
        lr=1.0, correction=1.0, momentum=0.0, weight_decay=0.0, L=4.0, mu=1.0, sigma=1.0
    )
    assert hp.coefficients() == pytest.approx((1 / 24, 1 / 8, 3 / 5), rel=1e-15)
    assert (hp.lr, hp.correction, hp.momentum) == (1.0, 1.0, 0.0)  # the values given stay as given


def test_nag_is_the_papers_scheme_5():
    """x'_n = x_n + sqrt(eta) v_n, x_{n+1} = x'_n - eta grad f(x'_n), v_{n+1} = rho (v_n - sqrt(eta) grad f(x'_n)):
    the look-ahead points x'_n are NAG's parameters."""
    eta, rho = 0.05, 0.8
    x, v = X0.clone(), torch.zeros(2, dtype=torch.float64)
    lookahead = []
    for _ in range(30):
        x_prime = x + math.sqrt(eta) * v
        grad = A * x_prime
        x, v = x_prime - eta * grad, rho * (v - math.sqrt(eta) * grad)
        lookahead.append(x + math.sqrt(eta) * v)  # the next look-ahead point
    for ours, scheme in zip(iterate("nag", eta, rho, 30), lookahead):
        torch.testing.assert_close(ours, scheme, rtol=1e-12, atol=1e-14)


def test_step_is_pure():
    opt = OPTIMIZERS["nag"]
    params = X0.clone()
    state = opt.init(params)
    before = (params.clone(), state[0].clone())
    opt.step(hyperparams("nag", 0.1, 0.5), params, A * params, state)
    assert torch.equal(params, before[0]) and torch.equal(state[0], before[1])


def test_agnes_weight_decay_by_hand():
    """alpha 0.05, eta 0.1, rho 0.5, weight decay 0.5 from x0 = (1, 1): g0 = A x0 + 0.5 x0 = (1.5, 4.5);
    v1 = -rho g0 = (-0.75, -2.25); p1 = x0 - eta g0 + alpha v1 = (0.8125, 0.4375); g1 = (1.21875, 1.96875);
    v2 = rho (v1 - g1) = (-0.984375, -2.109375); p2 = p1 - eta g1 + alpha v2 = (0.64140625, 0.13515625)."""
    agnes = OPTIMIZERS["agnes"]
    hp = agnes.hyperparams(lr=0.05, correction=0.1, momentum=0.5, weight_decay=0.5, L=None, mu=None, sigma=0.0)
    params, state = X0.clone(), agnes.init(X0)
    for expected in [(0.8125, 0.4375), (0.64140625, 0.13515625)]:
        params, state = agnes.step(hp, params, A * params, state)
        torch.testing.assert_close(params, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "name,hp,torch_optimizer",
    [
        # AGNES with alpha = eta is NAG, and its weight decay is torch's L2 term added to the gradient
        (
            "agnes",
            dict(lr=0.05, correction=0.05, momentum=0.9, weight_decay=0.3, L=None, mu=None, sigma=0.0),
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.3),
        ),
        (
            "adam",
            dict(lr=0.05, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.3),
            lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3),
        ),
    ],
)
def test_weight_decay_matches_torch_optim_for_many_steps(name, hp, torch_optimizer):
    opt = OPTIMIZERS[name]
    hyper = opt.hyperparams(**hp)
    params, state = X0.clone(), opt.init(X0)
    p = torch.nn.Parameter(X0.clone())
    reference = torch_optimizer([p])
    for _ in range(60):
        params, state = opt.step(hyper, params, A * params, state)
        reference.zero_grad()
        (0.5 * (A * p * p).sum()).backward()
        reference.step()
        torch.testing.assert_close(params, p.detach(), rtol=1e-12, atol=1e-14)
    assert params.norm() < 0.5  # it moved: 60 steps towards the minimizer at 0
