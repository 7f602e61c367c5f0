"""Polyak's heavy ball, exactly as torch.optim.SGD(lr, momentum, nesterov=False).

b_{k+1} = rho b_k + g_k                    (b_0 = 0, g_k = grad L(p_k))
p_{k+1} = p_k - lr b_{k+1}
"""

from dataclasses import dataclass

from ..constraints import positive, unit_interval
from . import register, zeros_like_state


@dataclass
class HeavyBall:
    lr: float = positive()
    momentum: float = unit_interval()


def step(hp: HeavyBall, params, grad, state):
    (buf,) = state
    buf = hp.momentum * buf + grad
    return params - hp.lr * buf, (buf,)


register("heavy_ball", HeavyBall, zeros_like_state, step)
