"""Nesterov's accelerated gradient, exactly as torch.optim.SGD(lr, momentum, nesterov=True).

    b_{k+1} = rho b_k + g_k                    (b_0 = 0, g_k = grad L(p_k))
    p_{k+1} = p_k - lr (g_k + rho b_{k+1})

The parameters p hold the look-ahead point x' of the paper's scheme (5) with eta = lr:
x'_n = x_n + sqrt(eta) v_n, x_{n+1} = x'_n - eta grad f(x'_n), v_{n+1} = rho (v_n - sqrt(eta) grad f(x'_n)).
"""

from dataclasses import dataclass

from ..constraints import positive, unit_interval
from . import register, zeros_like_state


@dataclass
class NAG:
    lr: float = positive()
    momentum: float = unit_interval()


def step(hp: NAG, params, grad, state):
    (buf,) = state
    buf = hp.momentum * buf + grad
    return params - hp.lr * (grad + hp.momentum * buf), (buf,)


register("nag", NAG, zeros_like_state, step)
