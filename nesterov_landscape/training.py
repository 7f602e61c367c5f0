"""Full-batch training of a flat weight vector with a pure optimizer update rule."""
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .optimizers import Optimizer

LOSSES = ("half_mse", "mse")


def mean_squared_error(kind: str, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """half_mse = 1/2 mean (f - y)^2 (the paper's scale), mse = mean (f - y)^2; over the last axis."""
    mse = (prediction - target).square().mean(dim=-1)
    if kind == "half_mse":
        return mse / 2
    if kind == "mse":
        return mse
    raise ValueError(f"unknown loss {kind!r}; allowed: {', '.join(LOSSES)}")


def value_and_grad(loss_fn: Callable[[torch.Tensor], torch.Tensor], params: torch.Tensor):
    params = params.detach().requires_grad_()
    loss = loss_fn(params)
    (grad,) = torch.autograd.grad(loss, params)
    return loss.detach(), grad


@dataclass
class TrainResult:
    params: torch.Tensor
    status: str  # "completed" or "diverged"
    epochs_run: int  # optimizer updates applied
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train_full_batch(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    params: torch.Tensor,
    optimizer: Optimizer,
    hyperparams: Any,
    epochs: int,
    log_every: int,
    on_record: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Run `epochs` optimizer updates from `params`.

    History row `epoch = k` holds the loss and gradient norm at the weights after k updates, for
    k = 0, log_every, 2 log_every, ... and k = epochs. A non-finite loss stops training at once
    with status "diverged"; that row is recorded too.
    """
    start = time.perf_counter()
    state = optimizer.init(params)
    history: list[dict[str, float]] = []
    status = "completed"
    epoch = 0
    while True:
        loss, grad = value_and_grad(loss_fn, params)
        loss_value = loss.item()
        finite = math.isfinite(loss_value)
        if not finite or epoch % log_every == 0 or epoch == epochs:
            row = {"epoch": epoch, "loss": loss_value, "grad_norm": grad.norm().item()}
            history.append(row)
            if on_record is not None:
                on_record(row)
        if not finite:
            status = "diverged"
            break
        if epoch == epochs:
            break
        params, state = optimizer.step(hyperparams, params, grad, state)
        epoch += 1
    return TrainResult(params.detach(), status, epoch, history, time.perf_counter() - start)
