"""Adam (Kingma & Ba), exactly as torch.optim.Adam(lr, betas, eps, weight_decay) (L2 added to the gradient):

g = grad f(p) + weight_decay p,   k = step count from 1
m <- b1 m + (1 - b1) g,   s <- b2 s + (1 - b2) g^2
p <- p - lr (m / (1 - b1^k)) / (sqrt(s / (1 - b2^k)) + eps)
"""

from dataclasses import dataclass

import torch

from ..constraints import non_negative, positive, unit_interval
from . import register, with_weight_decay


@dataclass
class Adam:
    lr: float = positive()
    beta1: float = unit_interval()
    beta2: float = unit_interval()
    eps: float = positive()
    weight_decay: float = non_negative()


def init(params):
    return (torch.zeros_like(params), torch.zeros_like(params), torch.zeros((), dtype=torch.int64))


def step(hp: Adam, params, grad, state):
    m, s, k = state
    k = k + 1
    grad = with_weight_decay(hp.weight_decay, params, grad)
    m = hp.beta1 * m + (1 - hp.beta1) * grad
    s = hp.beta2 * s + (1 - hp.beta2) * grad.square()
    bias1 = 1 - hp.beta1 ** k.item()
    root_bias2 = (1 - hp.beta2 ** k.item()) ** 0.5  # hyperparameters may be tensors, one per stacked run
    return params - hp.lr * (m / bias1) / (s.sqrt() / root_bias2 + hp.eps), (m, s, k)


register("adam", Adam, init, step)
