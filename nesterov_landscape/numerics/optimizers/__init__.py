"""Optimizers as pure update rules on the flat weight vector, in the manner of optax.

Each module in this package registers its optimizers: a dataclass of hyperparameters (its fields are
the keys under `optimizer.` in the config), `init(params) -> state`, a NamedTuple of tensors, and
`step(hp, params, grad, state) -> (params, state)`, which returns new tensors and changes nothing.
Adding an optimizer is one module here plus `conf/optimizer/<name>.yaml` with its defaults.

A hyperparameter is a number in a job; in a stack of runs (stack.py) it is a (B, 1) tensor, one
value per run, where the runs' values differ, so the updates are written for either.

These modules do not import torch: they only do arithmetic on the tensors they are given, and
config.py builds the config schemas from their dataclasses, which `python -m nesterov_landscape
--help` needs without paying for torch.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

if TYPE_CHECKING:
    from torch import Tensor

    Hyperparameter = float | Tensor
else:
    # OmegaConf reads the dataclasses' annotations for the config schemas, which hold numbers only.
    Hyperparameter = float


@dataclass(frozen=True)
class Optimizer:
    name: str
    hyperparams: type
    init: Callable[[Tensor], NamedTuple]
    step: Callable[[Any, Tensor, Tensor, Any], tuple[Tensor, Any]]


OPTIMIZERS: dict[str, Optimizer] = {}


def register(name: str, hyperparams: type, init: Callable, step: Callable) -> None:
    OPTIMIZERS[name] = Optimizer(name, hyperparams, init, step)


def values_used(hyperparams: Any) -> dict[str, Any]:
    """The hyperparameters as the update uses them (summary.json records these): the fields, unless
    the dataclass derives some from others and says so with a `values_used` method (AGNES)."""
    return hyperparams.values_used() if hasattr(hyperparams, "values_used") else vars(hyperparams)


class VelocityState(NamedTuple):
    """The state of every momentum method here: one velocity, zero at the start."""

    velocity: Tensor


def init_velocity(params: Tensor) -> VelocityState:
    return VelocityState(params.new_zeros(params.shape))


def with_weight_decay(weight_decay: Hyperparameter, params: Tensor, grad: Tensor) -> Tensor:
    """grad + weight_decay * params; a weight decay that is the number 0 adds nothing."""
    if isinstance(weight_decay, (int, float)) and weight_decay == 0:
        return grad
    return grad + weight_decay * params


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
