"""The paper's time-stepping scheme (5) for Nesterov's method, in its own parametrization.

    x'_n = x_n + sqrt(eta) v_n
    x_{n+1} = x'_n - eta grad f(x'_n)
    v_{n+1} = rho (v_n - sqrt(eta) grad f(x'_n)),          v_0 = 0

The parameters hold the look-ahead point x'_n, so the iterates equal `nag` with lr = eta,
momentum = rho. Give rho directly, or the strong-convexity/aiming constant mu, from which
rho = (1 - sqrt(mu eta)) / (1 + sqrt(mu eta)) (the theory's choice for a mu-strongly convex,
L-smooth f with eta <= 1/L; the loss then contracts like (1 - sqrt(mu eta))^n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from ..constraints import constrained, positive
from . import Hyperparameter, VelocityState, init_velocity, register

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class NAGScheme:
    eta: Hyperparameter = positive()
    rho: Optional[Hyperparameter] = constrained(lambda v: 0 <= v < 1, "null or a number in [0, 1)")
    mu: Optional[Hyperparameter] = constrained(lambda v: math.isfinite(v) and v > 0, "null or a finite number > 0")

    def config_error(self, key: str) -> str | None:
        if (self.rho is None) == (self.mu is None):
            return f"{key}: give exactly one of rho and mu (the other null)"
        if self.mu is not None and self.mu * self.eta >= 1:
            return f"{key}: mu * eta must be < 1, got {self.mu * self.eta:g}"
        return None

    @property
    def momentum(self) -> Hyperparameter:
        """rho as given, or derived from mu."""
        if self.rho is not None:
            return self.rho
        root = (self.mu * self.eta) ** 0.5
        return (1 - root) / (1 + root)


def step(hp: NAGScheme, params: Tensor, grad: Tensor, state: VelocityState) -> tuple[Tensor, VelocityState]:
    root_eta = hp.eta**0.5  # not math.sqrt: eta may be a stack's tensor
    x_next = params - hp.eta * grad
    velocity = hp.momentum * (state.velocity - root_eta * grad)
    return x_next + root_eta * velocity, VelocityState(velocity)


register("nag_scheme", NAGScheme, init_velocity, step)
