"""Plain gradient descent, torch.optim.SGD(lr) without momentum.

p_{k+1} = p_k - lr g_k                     (g_k = grad L(p_k))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from ..constraints import positive
from . import Hyperparameter, register

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class GD:
    lr: Hyperparameter = positive()


class GDState(NamedTuple):
    """Gradient descent keeps nothing between steps."""


def init(params: Tensor) -> GDState:
    return GDState()


def step(hp: GD, params: Tensor, grad: Tensor, state: GDState) -> tuple[Tensor, GDState]:
    return params - hp.lr * grad, state


register("gd", GD, init, step)
