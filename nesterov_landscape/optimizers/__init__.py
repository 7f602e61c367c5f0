"""Optimizers as pure update rules on the flat weight vector.

Each module in this package registers one optimizer: a dataclass of hyperparameters (its fields
are the keys under `optimizer.` in the config), `init(params) -> state` and
`step(hp, params, grad, state) -> (params, state)`, which returns new tensors and changes nothing.
Adding an optimizer is one module here plus `conf/optimizer/<name>.yaml` with its defaults.
"""

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

import torch

State = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Optimizer:
    name: str
    hyperparams: type
    init: Callable[[torch.Tensor], State]
    step: Callable[[Any, torch.Tensor, torch.Tensor, State], tuple[torch.Tensor, State]]


OPTIMIZERS: dict[str, Optimizer] = {}


def register(name: str, hyperparams: type, init: Callable, step: Callable) -> None:
    OPTIMIZERS[name] = Optimizer(name, hyperparams, init, step)


def zeros_like_state(params: torch.Tensor) -> State:
    """One zero velocity buffer, the state of every momentum method here."""
    return (torch.zeros_like(params),)


def with_weight_decay(weight_decay, params: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """grad + weight_decay * params; weight_decay is a number, or a (B, 1) tensor in a stack."""
    if isinstance(weight_decay, torch.Tensor) or weight_decay:
        return grad + weight_decay * params
    return grad


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
