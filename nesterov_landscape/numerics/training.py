"""Training of a flat weight vector with a pure optimizer update rule: full-batch gradients, or
mini-batch and/or noisy gradient estimates."""

import copy
import math
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import torch

from .choices import LOSSES, NOISE_KINDS
from .optimizers import Optimizer

LossAndGrad = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def mean_squared_error(kind: str, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """half_mse = 1/2 mean (f - y)^2 (the paper's scale), mse = mean (f - y)^2; over the last axis."""
    mse = (prediction - target).square().mean(dim=-1)
    if kind == "half_mse":
        return mse / 2
    if kind == "mse":
        return mse
    raise ValueError(f"unknown loss {kind!r}; allowed: {', '.join(LOSSES)}")


def value_and_grad(loss_fn: Callable[[torch.Tensor], torch.Tensor]) -> LossAndGrad:
    """loss_fn's value and gradient at params (P,); for a stack (B, P) with B losses, the gradient
    of their sum, which is each run's own gradient."""

    def evaluate(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        params = params.detach().requires_grad_()
        loss = loss_fn(params)
        (grad,) = torch.autograd.grad(loss.sum() if loss.dim() else loss, params)
        return loss.detach(), grad

    return evaluate


def with_gradient_noise(loss_and_grad: LossAndGrad, kind: str, sigma: float, generator: torch.Generator) -> LossAndGrad:
    """Gradient estimates g = grad f + sigma xi |grad f|^m / sqrt(P), xi ~ N(0, I): additive (m = 0,
    E|g - grad f|^2 = sigma^2) or multiplicative (m = 1, E|g - grad f|^2 = sigma^2 |grad f|^2)."""
    if kind not in NOISE_KINDS[1:]:
        raise ValueError(f"unknown noise {kind!r}; allowed: {', '.join(NOISE_KINDS)}")

    def evaluate(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, grad = loss_and_grad(params)
        xi = torch.randn(grad.shape, generator=generator, dtype=grad.dtype, device=grad.device)
        scale = sigma if kind == "additive" else sigma * grad.norm()
        return loss, grad + scale * xi / math.sqrt(grad.numel())

    return evaluate


@dataclass
class TrainResult:
    params: torch.Tensor
    status: str  # "completed" or "diverged"
    epochs_run: int  # epochs completed
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # wall time of training; a stacked run's share of its stack's time
    stacked_with: int = 0  # other runs trained in the same stack
    compile_seconds: float = 0.0  # torch.compile time, outside `seconds`
    # probe name -> this run's result of the probe its stack computed for all its runs at once
    stacked_probes: dict[str, Any] = field(default_factory=dict)
    probe_seconds: float = 0.0  # this run's share of those stacked probes
    activation: str = ""  # the activation as trained, where it differs from model.activation's exact one
    products: str = "torch"  # whose batched products trained it: "torch" or "libxsmm <version>" (small_gemm)
    started_at: float = 0.0  # Unix time training started (a stack's start for each of its runs)


@dataclass(frozen=True)
class Schedule:
    """A run's clock: `epochs` epochs of `steps_per_epoch` updates, a history row every `log_every`
    epochs (and at the last), a checkpoint every `checkpoint_every` epochs (0: none)."""

    epochs: int
    log_every: int
    steps_per_epoch: int = 1
    checkpoint_every: int = 0


def train(
    loss_and_grad: LossAndGrad,
    params: torch.Tensor,
    optimizer: Optimizer,
    hyperparams: Any,
    schedule: Schedule,
    *,
    gradient_estimate: LossAndGrad | None = None,
    on_record: Callable[[dict[str, float]], None] | None = None,
    on_checkpoint: Callable[[int, torch.Tensor], None] | None = None,
) -> TrainResult:
    """Run schedule.epochs epochs from `params`.

    Without `gradient_estimate` an epoch is one update with the full gradient from loss_and_grad.
    With it (mini-batches, gradient noise) an epoch is schedule.steps_per_epoch updates with its
    estimates, and the full loss is evaluated only where recorded.

    History row `epoch = k` holds the full loss and gradient norm after k epochs, for k = 0,
    log_every, 2 log_every, ... and k = epochs. A non-finite loss stops training at once with
    status "diverged"; that row is recorded too. on_checkpoint(k, params) runs at every
    k = 0, checkpoint_every, ... below `epochs`.
    """
    epochs, log_every, checkpoint_every = schedule.epochs, schedule.log_every, schedule.checkpoint_every
    start, started_at = time.perf_counter(), time.time()
    state = optimizer.init(params)
    history: list[dict[str, float]] = []

    def record(epoch: int, loss: torch.Tensor, grad: torch.Tensor) -> bool:
        row = {"epoch": epoch, "loss": loss.item(), "grad_norm": grad.norm().item()}
        history.append(row)
        if on_record is not None:
            on_record(row)
        return math.isfinite(row["loss"])

    epoch = 0
    while True:
        recorded = epoch % log_every == 0 or epoch == epochs
        if gradient_estimate is None or recorded:
            loss, grad = loss_and_grad(params)
            finite = math.isfinite(loss.item())
            if (recorded or not finite) and not record(epoch, loss, grad):
                return TrainResult(
                    params.detach(), "diverged", epoch, history, time.perf_counter() - start, started_at=started_at
                )
        if checkpoint_every and on_checkpoint is not None and epoch % checkpoint_every == 0 and epoch < epochs:
            on_checkpoint(epoch, params)
        if epoch == epochs:
            return TrainResult(
                params.detach(), "completed", epoch, history, time.perf_counter() - start, started_at=started_at
            )
        for _ in range(schedule.steps_per_epoch):
            if gradient_estimate is not None:
                estimate_loss, grad = gradient_estimate(params)
                if not math.isfinite(estimate_loss.item()):
                    record(epoch, *loss_and_grad(params))
                    return TrainResult(
                        params.detach(), "diverged", epoch, history, time.perf_counter() - start, started_at=started_at
                    )
            params, state = optimizer.step(hyperparams, params, grad, state)
        epoch += 1


def minibatch_gradients(
    batch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    n_points: int,
    batch_size: int,
    generator: torch.Generator,
) -> LossAndGrad:
    """Gradients of batch_loss(params, indices) over successive mini-batches of a fresh random
    permutation per pass; ceil(n_points / batch_size) calls make one pass (one epoch)."""
    order, position = torch.empty(0, dtype=torch.long), n_points

    def evaluate(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal order, position
        if position >= n_points:
            order, position = torch.randperm(n_points, generator=generator), 0
        indices = order[position : position + batch_size]
        position += batch_size
        return value_and_grad(lambda w: batch_loss(w, indices))(params)

    return evaluate


def train_stack(
    loss_fn: Callable[..., torch.Tensor],
    params: torch.Tensor,
    data: tuple[torch.Tensor, ...],
    optimizer: Optimizer,
    hyperparams: Any,
    schedule: Schedule,
    compile: bool = False,
    on_record: Callable[[int, dict[str, float]], None] | None = None,
    compile_options: dict[str, Any] | None = None,
    runs_per_call: int | None = None,
) -> list[TrainResult]:
    """Full-batch training of B independent runs stacked in params (B, P); loss_fn(w, *data) maps
    them to B losses, where data holds the runs' tensors (B, ...), and hyperparams may hold (B, 1)
    tensors, one value per run. One update per epoch, no checkpoints.

    Each run's history and status are what `train` gives it alone: a run whose loss turns
    non-finite is recorded as diverged at that epoch and frozen; the others go on unaffected (the
    gradient of the summed loss is per run). Between history rows nothing is read back to the host
    (a GPU never waits): divergence is detected, dated and frozen on the device, and read at the next
    logging point, which also ends training once no run is left. A step (losses, gradients, update
    and the divergence bookkeeping) is one function; `compile` makes it one torch.compile'd graph
    (Inductor's `compile_options`), compiled by its first call, whose time goes to compile_seconds,
    not to seconds. `runs_per_call` (a divisor of B; None: B) steps the runs in chunks of that many,
    one call of the step each, with the same numbers. on_record(run, row) sees each history row as
    it is read."""
    epochs, log_every = schedule.epochs, schedule.log_every
    runs, device = params.shape[0], params.device

    if compile:  # torch.compile traces torch.func's gradient into the step's graph, not autograd.grad

        def summed_loss(w: torch.Tensor, data: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
            losses = loss_fn(w, *data)
            return losses.sum(), losses

        def losses_and_grads(params, data) -> tuple[torch.Tensor, torch.Tensor]:
            grads, (_, losses) = torch.func.grad_and_value(summed_loss, has_aux=True)(params, data)
            return losses, grads

    else:  # eager, autograd costs less per step than torch.func: a stack of one trained 2.8x faster

        def losses_and_grads(params, data) -> tuple[torch.Tensor, torch.Tensor]:
            return value_and_grad(lambda w: loss_fn(w, *data))(params)

    def step(params, state, active, diverged_at, epoch_now, data, hyperparams):
        losses, grads = losses_and_grads(params, data)
        newly = active & ~torch.isfinite(losses)
        diverged_at = torch.where(newly, epoch_now, diverged_at)
        active = active & ~newly
        stepped, state = optimizer.step(hyperparams, params, grads, state)
        params = torch.where(active.unsqueeze(1), stepped, params)
        return (params, state, active, diverged_at, epoch_now + 1), losses, grads

    if compile:
        torch.compiler.reset()  # see problem.compiled: each stack of a worker compiles its own step
        step = torch.compile(step, dynamic=False, options=compile_options)
    elif device.type == "cpu":
        step = _while_finite(step, losses_and_grads, optimizer)
    size = runs_per_call or runs
    if runs % size:
        raise ValueError(f"runs_per_call must divide the stack's {runs} runs, got {size}")
    chunks = [slice(first, first + size) for first in range(0, runs, size)]
    carries = [_initial_carry(params[rows].detach(), optimizer) for rows in chunks]
    inputs = [(tuple(d[rows] for d in data), _rows_of(hyperparams, rows)) for rows in chunks]
    histories: list[list[dict[str, float]]] = [[] for _ in range(runs)]
    logged_active = [True] * runs
    compile_seconds, epoch = 0.0, 0
    start, started_at = time.perf_counter(), time.time()
    while True:
        stepped = [step(*carry, *chunk_inputs) for carry, chunk_inputs in zip(carries, inputs)]
        if epoch == 0 and compile:
            compile_seconds = time.perf_counter() - start
        if epoch % log_every == 0 or epoch == epochs:  # the host reads rows only here
            losses = torch.cat([chunk_losses for _, chunk_losses, _ in stepped])
            grad_norms = torch.cat([chunk_grads.norm(dim=1) for _, _, chunk_grads in stepped])
            diverged_at = torch.cat([carry[3] for carry, _, _ in stepped])
            _read_rows(histories, logged_active, epoch, losses, grad_norms, diverged_at, on_record)
            if epoch == epochs or not any(logged_active):
                break  # the weights are those before this step; a run may diverge at the last epoch
        carries = [carry for carry, _, _ in stepped]
        epoch += 1
    share = (time.perf_counter() - start - compile_seconds) / runs
    final, at = torch.cat([carry[0] for carry in carries]), diverged_at.tolist()
    return [
        TrainResult(
            final[index],
            "completed" if at[index] < 0 else "diverged",
            epochs if at[index] < 0 else at[index],
            histories[index],
            share,
            runs - 1,
            compile_seconds / runs,
            started_at=started_at,
        )
        for index in range(runs)
    ]


def _initial_carry(params: torch.Tensor, optimizer: Optimizer) -> tuple:
    """A chunk's carry: weights, optimizer state, active flags, divergence epochs (-1: none), epoch."""
    runs, device = params.shape[0], params.device
    return (
        params,
        optimizer.init(params),
        torch.ones(runs, dtype=torch.bool, device=device),
        torch.full((runs,), -1, dtype=torch.long, device=device),
        torch.zeros((), dtype=torch.long, device=device),
    )


def _rows_of(hyperparams: Any, rows: slice) -> Any:
    """The hyperparameters of the runs `rows`: each (B, 1) tensor sliced, any other value as it is."""
    chunk = copy.copy(hyperparams)
    for hyperparameter in fields(hyperparams):
        value = getattr(hyperparams, hyperparameter.name)
        if isinstance(value, torch.Tensor):
            setattr(chunk, hyperparameter.name, value[rows])
    return chunk


def _while_finite(step, losses_and_grads, optimizer):
    """`step` for an eager stack on a CPU, where reading a value back costs nothing: while every
    run's loss is finite, the update alone, without the divergence bookkeeping (a twentieth of a
    stack of one's step); from the first non-finite loss on, `step`. The same numbers either way."""
    all_finite = True

    def step_while_finite(params, state, active, diverged_at, epoch_now, data, hyperparams):
        nonlocal all_finite
        if all_finite:
            losses, grads = losses_and_grads(params, data)
            if torch.isfinite(losses).all():
                stepped, state = optimizer.step(hyperparams, params, grads, state)
                return (stepped, state, active, diverged_at, epoch_now + 1), losses, grads
            all_finite = False
        return step(params, state, active, diverged_at, epoch_now, data, hyperparams)

    return step_while_finite


def _read_rows(histories, logged_active, epoch, losses, grad_norms, diverged_at, on_record) -> None:
    """History rows at logging point `epoch`: a run still going gets its row of this epoch; a run
    that diverged since the last logging point (this epoch included) gets the row of the epoch it
    diverged at. A diverged run's weights are frozen, so its loss and gradient norm now are those
    of that epoch."""
    at, loss, grad_norm = diverged_at.tolist(), losses.detach().tolist(), grad_norms.tolist()
    for index, history in enumerate(histories):
        if logged_active[index]:
            row_epoch = epoch if at[index] < 0 else at[index]
            history.append({"epoch": row_epoch, "loss": loss[index], "grad_norm": grad_norm[index]})
            logged_active[index] = at[index] < 0
            if on_record is not None:
                on_record(index, history[-1])
