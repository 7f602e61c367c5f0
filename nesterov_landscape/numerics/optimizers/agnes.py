"""AGNES (Gupta, Siegel, Wojtowytsch, NeurIPS 2024; scheme (10) of the ICLR 2025 paper), with the
parameters holding the look-ahead point, gradient step eta (`correction`), extrapolation alpha (`lr`),
momentum rho:

    g = grad f(p) + weight_decay p
    p <- p - eta g
    v <- rho (v - g),          v_0 = 0
    p <- p + alpha v

alpha = eta is exactly NAG (torch SGD nesterov with lr = eta, momentum = rho). With `L` and `mu`
set, the update uses (alpha, eta, rho) from the strongly convex formulas for gradient noise
E|g - grad f|^2 <= sigma^2 |grad f|^2 in place of lr, correction and momentum:

    eta = 1 / (L (1 + sigma^2)),   alpha = eta (1 - sqrt(mu/L)) / (1 - sqrt(mu/L) + sigma^2),
    rho = (sqrt(L) (1 + sigma^2) - sqrt(mu)) / (sqrt(L) (1 + sigma^2) + sqrt(mu)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from ..constraints import constrained, non_negative, positive, unit_interval
from . import Hyperparameter, VelocityState, init_velocity, register, with_weight_decay

if TYPE_CHECKING:
    from torch import Tensor

_POSITIVE_OR_NULL = "null or a finite number > 0"


class Coefficients(NamedTuple):
    alpha: Hyperparameter  # extrapolation step
    eta: Hyperparameter  # gradient step
    rho: Hyperparameter  # momentum


@dataclass
class AGNES:
    lr: Hyperparameter = positive()  # alpha, unless L and mu are set
    correction: Hyperparameter = positive()  # eta, unless L and mu are set
    momentum: Hyperparameter = unit_interval()  # rho, unless L and mu are set
    weight_decay: Hyperparameter = non_negative()
    L: Optional[Hyperparameter] = constrained(lambda v: math.isfinite(v) and v > 0, _POSITIVE_OR_NULL)
    mu: Optional[Hyperparameter] = constrained(lambda v: math.isfinite(v) and v > 0, _POSITIVE_OR_NULL)
    sigma: Hyperparameter = non_negative()

    def config_error(self, key: str) -> str | None:
        if (self.L is None) != (self.mu is None):
            return f"{key}: give both L and mu (to derive lr, correction, momentum) or neither"
        if self.L is not None and self.mu > self.L:
            return f"{key}: mu must be <= L, got mu={self.mu:g}, L={self.L:g}"
        return None

    def coefficients(self) -> Coefficients:
        """(alpha, eta, rho) as the update uses them: derived from L, mu and sigma when L and mu are
        set, else lr, correction and momentum as given."""
        if self.L is None or self.mu is None:
            return Coefficients(self.lr, self.correction, self.momentum)
        return agnes_parameters(self.L, self.mu, self.sigma)

    def values_used(self) -> dict[str, Any]:
        """The fields, with lr, correction and momentum as the update uses them."""
        alpha, eta, rho = self.coefficients()
        return vars(self) | {"lr": alpha, "correction": eta, "momentum": rho}


def _sqrt(x: Hyperparameter) -> Hyperparameter:
    # math.sqrt is correctly rounded where x ** 0.5 (C's pow) may be off by one ulp
    return math.sqrt(x) if isinstance(x, (int, float)) else x.sqrt()


def agnes_parameters(L: Hyperparameter, mu: Hyperparameter, sigma: Hyperparameter) -> Coefficients:
    """(alpha, eta, rho) for a mu-strongly convex, L-smooth f with multiplicative noise sigma."""
    s2, q = sigma**2, _sqrt(mu / L)
    eta = 1 / (L * (1 + s2))
    alpha = eta * (1 - q) / (1 - q + s2)
    rho = (_sqrt(L) * (1 + s2) - _sqrt(mu)) / (_sqrt(L) * (1 + s2) + _sqrt(mu))
    return Coefficients(alpha, eta, rho)


def step(hp: AGNES, params: Tensor, grad: Tensor, state: VelocityState) -> tuple[Tensor, VelocityState]:
    alpha, eta, rho = hp.coefficients()
    grad = with_weight_decay(hp.weight_decay, params, grad)
    velocity = rho * (state.velocity - grad)
    return params - eta * grad + alpha * velocity, VelocityState(velocity)


register("agnes", AGNES, init_velocity, step)
