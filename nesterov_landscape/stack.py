"""A stack: several jobs trained as one computation. Runs that differ only in values that keep
tensor shapes (seeds, data seed, label noise, optimizer scalars) share every matmul (bmm)."""

import copy
import dataclasses
import json
import time
from typing import Any, Callable

import torch

from . import limits
from .config import Config
from .numerics import small_gemm, training
from .numerics.training import TrainResult
from .probes import PROBES, checkpoint_every
from .problem import Problem, network_loss, setup_problem


def stack_signature(config: Config) -> str | None:
    """Jobs with equal signatures can train stacked; None for a job that must train alone
    (mini-batches, gradient noise or probes during training draw per-run randomness each step).
    Inside a stack, runs may differ in their seeds, label noise and optimizer scalars, in what
    they log and probe, and in trainer.resume, trainer.max_memory_gb and trainer.save_weights; nothing else."""
    if (
        config.data.batch_size not in (None, config.data.n_points)
        or config.trainer.noise != "none"
        or checkpoint_every(config.probe)
    ):
        return None
    fixed = dataclasses.asdict(config)
    for key in ("seed", "logger", "probe"):
        del fixed[key]
    for group, keys in (("data", ("seed", "label_noise")), ("trainer", ("resume", "max_memory_gb", "save_weights"))):
        for key in keys:
            del fixed[group][key]
    fixed["optimizer"] = {  # which scalars are set, not their values
        key: value if key == "name" else "null" if value is None else type(value).__name__
        for key, value in fixed["optimizer"].items()
    }
    return json.dumps(fixed, sort_keys=True, default=str)


def runs_within_memory(config: Config) -> int:
    """How many runs of this config one stack may hold under trainer.max_memory_gb: each run brings
    its data, weights, optimizer state, activations and history; the stacked probe evaluates a
    bounded number of lines at a time, so it counts once."""
    parts = limits.memory_parts(config)
    per_run = sum(p.bytes for p in parts if not p.name.startswith("probe."))
    shared = sum(p.bytes for p in parts if p.name.startswith("probe."))
    return max(1, int((config.trainer.max_memory_gb * limits.GB - shared) // per_run))


def stacked_hyperparams(hyperparams: list[Any], device: torch.device, dtype: torch.dtype) -> Any:
    """One hyperparameter object for the stack: each number becomes a (B, 1) tensor of the runs'
    values, whether or not they differ. A run's update then does the same arithmetic in any stack;
    a plain number where the values agree would take Python's double arithmetic instead (pow, 1 - x,
    sqrt in Adam's bias correction, AGNES's and nag_scheme's coefficients), and a run's last bits
    would depend on the values of the runs it was stacked with."""
    stacked = copy.copy(hyperparams[0])
    for field in dataclasses.fields(stacked):
        values = [getattr(h, field.name) for h in hyperparams]
        if isinstance(values[0], float):
            setattr(stacked, field.name, torch.tensor(values, dtype=dtype, device=device).unsqueeze(1))
    return stacked


def fast_forms(config: Config) -> bool:
    """A compiled float32 stack trains with the fast tanh (mlp.rational_tanh) and, on the CPU, with
    libxsmm's products where they are built (small_gemm); the probes, float64 and eager stacks use
    torch.tanh and torch's products."""
    return config.trainer.compile and config.trainer.precision == "float32"


# A stack trained with libxsmm's products on one torch thread calls its step on chunks of its runs,
# so that more of what a step reads is still in the core's caches; each call costs about 0.13 ms of
# its own. Chunks of 8 to 17 runs measured faster than a whole 50-run stack, 10 the fastest
# (benchmarks/README.md). Chunks of one size only, so that a stack compiles one graph.
CHUNK_RUNS, CHUNK_SIZES = 10, range(8, 18)


def runs_per_call(runs: int, products: str) -> int:
    """The runs each call of a stack's step takes: with libxsmm's products and one torch thread
    (where chunks were measured), the divisor of `runs` in CHUNK_SIZES nearest CHUNK_RUNS; else all."""
    measured = products != "torch" and torch.get_num_threads() == 1
    sizes = [size for size in CHUNK_SIZES if runs % size == 0] if measured else []
    return min(sizes, key=lambda size: abs(size - CHUNK_RUNS)) if sizes else runs


def train_jobs(configs: list[Config]) -> list[TrainResult]:
    """Train jobs with equal stack signatures as one computation (train_problems)."""
    return train_problems([setup_problem(c) for c in configs])


def train_problems(
    problems: list[Problem], on_record: Callable[[int, dict[str, float]], None] | None = None
) -> list[TrainResult]:
    """Train problems with equal stack signatures as one computation; each gets the TrainResult its
    own job would compute, bit for bit in a stack of any size with one torch thread (mlp.forward's
    stacked form; docs/sweeps.md), so a job's numbers do not depend on how its sweep was split into
    stacks. A job trained alone is a stack of one (job.train_job). A probe that can run for a whole
    stack at once runs so too (probe_stacked). on_record(index, row) sees run `index`'s history rows
    as they are read."""
    first = problems[0]
    device, shape, config = first.device, first.shape, first.config
    x, y = stacked_data(problems)
    params = torch.stack([p.init for p in problems]).to(device, first.dtype)
    hyperparams = stacked_hyperparams([p.hyperparams() for p in problems], device, first.dtype)
    fast = fast_forms(config)
    build_start = time.perf_counter()
    products = small_gemm.name() if small_gemm.applies(fast, params) else "torch"  # builds the op before tracing
    build_seconds = time.perf_counter() - build_start
    results = training.train_stack(
        lambda w, x, y: network_loss(config, shape, w, x, y, fast),
        params,
        (x, y),
        first.optimizer,
        hyperparams,
        first.schedule(),
        config.trainer.compile,
        on_record,
        # the graph calls its kernels from C++: libxsmm's products, torch ops of this project's own,
        # cost 9% of the step more called from Inductor's Python wrapper
        {"cpp_wrapper": True} if products != "torch" else None,
        runs_per_call=runs_per_call(len(problems), products),
    )
    for result in results:
        result.activation = "rational_tanh" if fast and config.model.activation == "tanh" else config.model.activation
        result.products = products
        if fast:  # building the op, where this stack did, is compiling too
            result.compile_seconds += build_seconds / len(results)
    completed = [i for i, r in enumerate(results) if r.status == "completed"]
    if completed:
        index = torch.tensor(completed, device=device)
        probe_stacked([p.config for p in problems], [results[i] for i in completed], loss_rows(first, x, y), index)
    return results


def stacked_data(problems: list[Problem]) -> tuple[torch.Tensor, torch.Tensor]:
    """The runs' inputs (B, n, d) and labels (B, n), in their training precision and device."""
    first = problems[0]
    x = torch.stack([p.data.x for p in problems]).to(first.device, first.dtype)
    y = torch.stack([p.data.y for p in problems]).to(first.device, first.dtype)
    return x, y


def loss_rows(problem: Problem, x: torch.Tensor, y: torch.Tensor):
    """The stacked probes' loss: row r the loss of run runs[r] at weights w[r] (probes use torch.tanh)."""
    return lambda runs, w: network_loss(problem.config, problem.shape, w, x[runs], y[runs])


def probe_stacked(configs: list[Config], completed: list[TrainResult], loss_rows, index: torch.Tensor) -> None:
    """The probes that can run for the whole stack at once (a module's `stacked`) on its completed
    runs, where every job of the stack configures them alike; each run gets its result and its share
    of the time."""
    weights = torch.stack([result.params for result in completed])
    for name, probe in configs[0].probe.items():
        stacked = PROBES[name].stacked
        if stacked is None or any(c.probe.get(name) != probe for c in configs):
            continue
        start = time.perf_counter()
        computed = stacked(probe, lambda runs, w: loss_rows(index[runs], w), weights)
        if computed is None:
            continue
        share = (time.perf_counter() - start) / len(completed)
        for result, value in zip(completed, computed):
            result.stacked_probes[name] = value
            result.probe_seconds += share


def probe_weights(configs: list[Config], problems: list[Problem], results: list[TrainResult]) -> None:
    """probe_stacked for completed runs given by their weights (results[i].params), as their stack
    probes them after training: a re-probe's (nesterov_landscape/reprobe/)."""
    x, y = stacked_data(problems)
    index = torch.arange(len(results), device=x.device)
    probe_stacked(configs, results, loss_rows(problems[0], x, y), index)
