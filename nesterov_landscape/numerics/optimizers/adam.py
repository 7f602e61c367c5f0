"""Adam (Kingma & Ba), exactly as torch.optim.Adam(lr, betas, eps, weight_decay) (L2 added to the gradient):

g = grad f(p) + weight_decay p,   k = step count from 1
m <- b1 m + (1 - b1) g,   s <- b2 s + (1 - b2) g^2
p <- p - lr (m / (1 - b1^k)) / (sqrt(s / (1 - b2^k)) + eps)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from ..constraints import non_negative, positive, unit_interval
from . import Hyperparameter, register, with_weight_decay

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class Adam:
    lr: Hyperparameter = positive()
    beta1: Hyperparameter = unit_interval()
    beta2: Hyperparameter = unit_interval()
    eps: Hyperparameter = positive()
    weight_decay: Hyperparameter = non_negative()


class AdamState(NamedTuple):
    m: Tensor  # first moment
    s: Tensor  # second moment
    k: Tensor  # steps taken: an int64 scalar on the CPU, so reading it each step waits for no device


def init(params: Tensor) -> AdamState:
    return AdamState(
        params.new_zeros(params.shape), params.new_zeros(params.shape), params.new_zeros((), device="cpu").long()
    )


def step(hp: Adam, params: Tensor, grad: Tensor, state: AdamState) -> tuple[Tensor, AdamState]:
    k = state.k + 1
    grad = with_weight_decay(hp.weight_decay, params, grad)
    m = hp.beta1 * state.m + (1 - hp.beta1) * grad
    s = hp.beta2 * state.s + (1 - hp.beta2) * grad.square()
    bias1 = 1 - hp.beta1 ** k.item()
    root_bias2 = (1 - hp.beta2 ** k.item()) ** 0.5  # not math.sqrt: beta2 may be a stack's tensor
    return params - hp.lr * (m / bias1) / (s.sqrt() / root_bias2 + hp.eps), AdamState(m, s, k)


register("adam", Adam, init, step)
