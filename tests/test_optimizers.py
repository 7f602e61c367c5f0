import math

import pytest
import torch

from nesterov_landscape.optimizers import OPTIMIZERS

A = torch.tensor([1.0, 4.0], dtype=torch.float64)  # f(x) = 1/2 x^T diag(A) x, grad f = A x
X0 = torch.tensor([1.0, 1.0], dtype=torch.float64)

# Two iterations by hand with lr 0.1, momentum 0.5, from x0 = (1, 1), g0 = (1, 4):
HAND = {
    # b1 = g0; p1 = x0 - lr (g0 + rho b1) = (0.85, 0.4); g1 = (0.85, 1.6); b2 = rho b1 + g1 = (1.35, 3.6)
    # p2 = p1 - lr (g1 + rho b2) = (0.85 - 0.1525, 0.4 - 0.34)
    "nag": [(0.85, 0.4), (0.6975, 0.06)],
    # p1 = x0 - lr g0 = (0.9, 0.6); g1 = (0.9, 2.4); b2 = (1.4, 4.4); p2 = p1 - lr b2
    "heavy_ball": [(0.9, 0.6), (0.76, 0.16)],
    # p1 = (0.9, 0.6); p2 = p1 - lr (0.9, 2.4)
    "gd": [(0.9, 0.6), (0.81, 0.36)],
}


def hyperparams(name: str, lr: float, momentum: float):
    cls = OPTIMIZERS[name].hyperparams
    fields = cls.__dataclass_fields__
    return cls(**{k: v for k, v in {"lr": lr, "momentum": momentum}.items() if k in fields})


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
        torch.testing.assert_close(step, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-15)


@pytest.mark.parametrize("name,torch_kwargs", [
    ("nag", {"momentum": 0.9, "nesterov": True}),
    ("heavy_ball", {"momentum": 0.9}),
    ("gd", {}),
])
def test_matches_torch_sgd_for_many_steps(name, torch_kwargs):
    ours = iterate(name, lr=0.05, momentum=0.9, steps=60)
    p = torch.nn.Parameter(X0.clone())
    sgd = torch.optim.SGD([p], lr=0.05, **torch_kwargs)
    for step in ours:
        sgd.zero_grad()
        (0.5 * (A * p * p).sum()).backward()
        sgd.step()
        torch.testing.assert_close(step, p.detach(), rtol=1e-13, atol=1e-15)


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
