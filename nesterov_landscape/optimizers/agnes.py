"""AGNES (Gupta, Siegel, Wojtowytsch, NeurIPS 2024; scheme (10) of the ICLR 2025 paper), with the
parameters holding the look-ahead point, gradient step eta (`correction`), extrapolation alpha (`lr`),
momentum rho:

    g = grad f(p) + weight_decay p
    p <- p - eta g
    v <- rho (v - g),          v_0 = 0
    p <- p + alpha v

alpha = eta is exactly NAG (torch SGD nesterov with lr = eta, momentum = rho). With `L` and `mu`
set, (eta, alpha, rho) come from the strongly convex formulas for gradient noise
E|g - grad f|^2 <= sigma^2 |grad f|^2:

    eta = 1 / (L (1 + sigma^2)),   alpha = eta (1 - sqrt(mu/L)) / (1 - sqrt(mu/L) + sigma^2),
    rho = (sqrt(L) (1 + sigma^2) - sqrt(mu)) / (sqrt(L) (1 + sigma^2) + sqrt(mu)).
"""

import math
from dataclasses import dataclass
from typing import Optional

from ..constraints import constrained, non_negative, positive, unit_interval
from . import register, with_weight_decay, zeros_like_state

_POSITIVE_OR_NULL = "null or a finite number > 0"


@dataclass
class AGNES:
    lr: float = positive()  # alpha
    correction: float = positive()  # eta
    momentum: float = unit_interval()  # rho
    weight_decay: float = non_negative()
    L: Optional[float] = constrained(lambda v: math.isfinite(v) and v > 0, _POSITIVE_OR_NULL)
    mu: Optional[float] = constrained(lambda v: math.isfinite(v) and v > 0, _POSITIVE_OR_NULL)
    sigma: float = non_negative()

    def config_error(self, key: str) -> str | None:
        if (self.L is None) != (self.mu is None):
            return f"{key}: give both L and mu (to derive lr, correction, momentum) or neither"
        if self.L is not None and self.mu > self.L:
            return f"{key}: mu must be <= L, got mu={self.mu:g}, L={self.L:g}"
        return None

    def __post_init__(self):
        if self.L is not None and self.mu is not None and self.mu <= self.L:
            self.lr, self.correction, self.momentum = agnes_parameters(self.L, self.mu, self.sigma)


def agnes_parameters(L: float, mu: float, sigma: float) -> tuple[float, float, float]:
    """(alpha, eta, rho) for a mu-strongly convex, L-smooth f with multiplicative noise sigma."""
    s2, q = sigma**2, math.sqrt(mu / L)
    eta = 1 / (L * (1 + s2))
    alpha = eta * (1 - q) / (1 - q + s2)
    rho = (math.sqrt(L) * (1 + s2) - math.sqrt(mu)) / (math.sqrt(L) * (1 + s2) + math.sqrt(mu))
    return alpha, eta, rho


def step(hp: AGNES, params, grad, state):
    (v,) = state
    grad = with_weight_decay(hp.weight_decay, params, grad)
    v = hp.momentum * (v - grad)
    return params - hp.correction * grad + hp.lr * v, (v,)


register("agnes", AGNES, zeros_like_state, step)
