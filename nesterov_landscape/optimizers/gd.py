"""Plain gradient descent, torch.optim.SGD(lr) without momentum.

p_{k+1} = p_k - lr g_k                     (g_k = grad L(p_k))
"""

from dataclasses import dataclass

from ..constraints import positive
from . import register


@dataclass
class GD:
    lr: float = positive()


def init(params):
    return ()


def step(hp: GD, params, grad, state):
    return params - hp.lr * grad, state


register("gd", GD, init, step)
