"""Momentum SGD exactly as torch.optim.SGD(lr, momentum, nesterov) computes it: Polyak's heavy ball
(nesterov=False) and Nesterov's accelerated gradient (nesterov=True). With g_k = grad L(p_k),
rho = momentum and the velocity b_0 = 0, both take

    b_{k+1} = rho b_k + g_k

and then

    heavy_ball:  p_{k+1} = p_k - lr b_{k+1}
    nag:         p_{k+1} = p_k - lr (g_k + rho b_{k+1})

nag's parameters p hold the look-ahead point x' of the paper's scheme (5) with eta = lr:
x'_n = x_n + sqrt(eta) v_n, x_{n+1} = x'_n - eta grad f(x'_n), v_{n+1} = rho (v_n - sqrt(eta) grad f(x'_n)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..constraints import positive, unit_interval
from . import Hyperparameter, VelocityState, init_velocity, register

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class Momentum:
    lr: Hyperparameter = positive()
    momentum: Hyperparameter = unit_interval()


def _velocity(hp: Momentum, grad: Tensor, state: VelocityState) -> Tensor:
    """b_{k+1} = rho b_k + g_k"""
    return hp.momentum * state.velocity + grad


def heavy_ball_step(hp: Momentum, params: Tensor, grad: Tensor, state: VelocityState) -> tuple[Tensor, VelocityState]:
    """p_{k+1} = p_k - lr b_{k+1}"""
    velocity = _velocity(hp, grad, state)
    return params - hp.lr * velocity, VelocityState(velocity)


def nag_step(hp: Momentum, params: Tensor, grad: Tensor, state: VelocityState) -> tuple[Tensor, VelocityState]:
    """p_{k+1} = p_k - lr (g_k + rho b_{k+1})"""
    velocity = _velocity(hp, grad, state)
    return params - hp.lr * (grad + hp.momentum * velocity), VelocityState(velocity)


register("heavy_ball", Momentum, init_velocity, heavy_ball_step)
register("nag", Momentum, init_velocity, nag_step)
