"""One job's training problem from its validated config: data, network, initial weights, loss,
optimizer hyperparameters, schedule. Shared by single jobs and stacks of jobs, so both train on
exactly the same numbers."""

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .config import Config
from .numerics.data import TeacherData, make_teacher_data
from .numerics.mlp import MLPShape, forward, init_params
from .numerics.optimizers import OPTIMIZERS, Optimizer
from .numerics.seeds import derive_seed
from .numerics.training import (
    Schedule,
    TrainResult,
    mean_squared_error,
    minibatch_gradients,
    train,
    value_and_grad,
    with_gradient_noise,
)
from .probes import checkpoint_every


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


@dataclass
class Problem:
    config: Config
    device: torch.device
    dtype: torch.dtype  # training precision
    data: TeacherData  # float64, on the CPU
    shape: MLPShape
    init: torch.Tensor  # initial weights, float64, on the CPU
    data_seed: int
    model_seed: int

    @property
    def optimizer(self) -> Optimizer:
        return OPTIMIZERS[self.config.optimizer.name]

    def hyperparams(self) -> Any:
        return self.optimizer.hyperparams(**{k: v for k, v in vars(self.config.optimizer).items() if k != "name"})

    def loss_in(self, precision: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
        """The training loss in `precision`, for weights (P,) or (B, P)."""
        x, y = self.data.x.to(self.device, precision), self.data.y.to(self.device, precision)
        return lambda w: network_loss(self.config, self.shape, w, x, y)

    def schedule(self) -> Schedule:
        d, trainer = self.config.data, self.config.trainer
        minibatches = d.batch_size is not None and d.batch_size < d.n_points
        return Schedule(
            trainer.epochs,
            trainer.log_every,
            math.ceil(d.n_points / d.batch_size) if minibatches else 1,
            checkpoint_every(self.config.probe),
        )


def network_loss(
    config: Config, shape: MLPShape, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, fast: bool = False
) -> torch.Tensor:
    """The job's loss (config.loss) of the network with weights w on inputs x and labels y: one loss
    for w (P,), B losses for w (B, P) (x, y shared or one set per row); `fast` as in mlp.forward."""
    return mean_squared_error(config.loss, forward(shape, config.model.activation, w, x, fast), y)


def compiled(loss_fn: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor):
    """torch.compile(loss_fn), compiled now on `example` weights (forward and backward); returns
    it with the seconds compiling took, so that training time excludes them."""
    start = time.perf_counter()
    # Dynamo caches compiled code by the Python function's code, which every job (and stack) of a
    # process shares: past config.recompile_limit (8) jobs of one process it would silently run
    # eager. One job at a time is compiled in a process, so its caches start afresh.
    torch.compiler.reset()
    loss_fn = torch.compile(loss_fn, dynamic=False)
    weights = example.detach().clone().requires_grad_()
    torch.autograd.grad(loss_fn(weights).sum(), weights)
    return loss_fn, time.perf_counter() - start


def setup_problem(config: Config) -> Problem:
    device = resolve_device(config.trainer.device)
    if device.type == "cuda":  # full float32 unless the user asks otherwise
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    d, m = config.data, config.model
    data_seed = d.seed if d.seed is not None else derive_seed(config.seed, "data")
    model_seed = derive_seed(config.seed, "model")
    data = make_teacher_data(
        d.n_points,
        d.input_dim,
        d.input_dist,
        MLPShape(d.input_dim, d.teacher_width, d.teacher_depth),
        d.teacher_activation,
        d.labels,
        d.label_noise,
        torch.Generator().manual_seed(data_seed),
    )
    shape = MLPShape(d.input_dim, m.width, m.depth, m.bias)
    init = init_params(shape, m.init, torch.Generator().manual_seed(model_seed))
    return Problem(config, device, getattr(torch, config.trainer.precision), data, shape, init, data_seed, model_seed)


def gradient_estimate(problem: Problem):
    """The stochastic gradient (mini-batches and/or noise) the updates use, or None for the exact
    full-batch gradient."""
    config, dtype, device = problem.config, problem.dtype, problem.device
    d, trainer = config.data, config.trainer
    estimate = None
    if d.batch_size is not None and d.batch_size < d.n_points:
        x, y = problem.data.x.to(device, dtype), problem.data.y.to(device, dtype)
        estimate = minibatch_gradients(
            lambda w, indices: network_loss(config, problem.shape, w, x[indices], y[indices]),
            d.n_points,
            d.batch_size,
            torch.Generator().manual_seed(derive_seed(config.seed, "batches")),
        )
    if trainer.noise != "none":
        generator = torch.Generator(device=device).manual_seed(derive_seed(config.seed, "noise"))
        estimate = with_gradient_noise(
            estimate or value_and_grad(problem.loss_in(dtype)), trainer.noise, trainer.noise_sigma, generator
        )
    return estimate


def train_alone(
    problem: Problem,
    loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    on_record: Callable[[dict[str, float]], None] | None = None,
    on_checkpoint: Callable[[int, torch.Tensor], None] | None = None,
) -> TrainResult:
    """The job's own training run (not in a stack): its schedule and gradient estimates, the full
    loss loss_fn (by default problem.loss_in(problem.dtype)) for history rows and full-batch steps."""
    return train(
        value_and_grad(loss_fn or problem.loss_in(problem.dtype)),
        problem.init.to(problem.device, problem.dtype),
        problem.optimizer,
        problem.hyperparams(),
        problem.schedule(),
        gradient_estimate=gradient_estimate(problem),
        on_record=on_record,
        on_checkpoint=on_checkpoint,
    )
