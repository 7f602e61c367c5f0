"""The job: `task(cfg)`, the Hydra task function, wires a validated config to the numerics, the
job's files and W&B."""

import errno
import functools
import logging
import math
import os
import platform
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import hydra
import numpy as np
import torch
import wandb
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from . import job_claim
from .config import Config, ConfigError, validate
from .interruption import parent_watch
from . import job_files
from . import weights
from .job_files import write_csv, write_json
from .job_probes import ProbeRecords, history_entries, probe_checkpoint, probe_trained
from .numerics.optimizers import values_used
from .numerics.training import TrainResult
from .probes import Point
from .problem import Problem, compiled, setup_problem, train_alone
from .stack import stack_signature, train_problems
from .summary_schema import entry_error
from .limits import disk_error
from .wandb_run import define_metrics, group_name, log_file_artifact, log_history_row, start_run

log = logging.getLogger(__name__)


@functools.cache
def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "hydra": hydra.__version__,
        "wandb": wandb.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
    }


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo's on Linux, else what Python's platform says): float32
    results differ in their last bits, and so their magnitudes near a minimizer, from CPU to CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine()


def finished_summary(output_dir: Path, resolved: dict[str, Any]) -> dict[str, Any] | None:
    """The job folder's summary if it records a finished run (completed or diverged) of the same
    config whose files are all there: re-running a sweep into its folder then redoes only what did
    not finish (or lost a file)."""
    summary = job_files.read_summary(output_dir)
    if not job_files.finished(summary):
        return None
    if job_files.result_identity(summary.get("config") or {}) != job_files.result_identity(resolved):
        return None
    missing = job_files.missing_results(output_dir, summary)
    if missing:
        log.warning("%s: its finished run lacks %s; running it again", output_dir, ", ".join(missing))
        return None
    return summary


# W&B writes its run in a background process that reports no error when the disk fills, and a write
# that failed for lack of space leaves less free than one of its 32 KiB blocks: a job that ends with
# less than two blocks free counts its run as possibly cut short, and fails.
MIN_FREE_BYTES = 64 << 10


def require_free_space(folder: Path) -> None:
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    if free < MIN_FREE_BYTES:
        message = f"No space left on device ({free} bytes free): its W&B run may be cut short"
        raise OSError(errno.ENOSPC, message, str(folder))


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def job_identity() -> dict[str, Any]:
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    return {
        "output_dir": hc.runtime.output_dir,
        "multirun": multirun,
        "num": OmegaConf.select(hc, "job.num", default=None),
        "override_dirname": hc.job.override_dirname,
        "sweep_dir": hc.sweep.dir if multirun else None,
        "log_name": f"{hc.job.name}.log",
    }


def task(cfg: DictConfig) -> dict[str, Any]:
    """The Hydra task function: validate the job's config and run it in its Hydra output directory."""
    job = job_identity()
    output_dir = Path(job["output_dir"])
    claim = job_claim.held(output_dir)  # a single run's, taken before Hydra wrote to the folder
    if job["multirun"]:  # Hydra has written these for this job (a single run's callback recorded them)
        job_files.record(output_dir, *job_files.HYDRA_FILES, job["log_name"])
    try:
        config = validate(cfg, cuda_available=torch.cuda.is_available())
    except ConfigError:
        if claim is not None:
            claim.release()
        raise
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("hydra", None)
    return run_claimed(config, resolved, job, claim=claim)


def run_claimed(
    config: Config,
    resolved: dict[str, Any],
    job: dict[str, Any],
    trained: TrainResult | None = None,
    claim: job_claim.Claim | None = None,
    resume_checked: bool = False,
) -> dict[str, Any]:
    """run_job once the job holds its folder (job_claim). In a sweep, a job whose folder another
    live process holds is skipped with a warning, writes nothing, and returns status "skipped":
    that process runs it. A single run raises job_claim.FolderClaimed instead."""
    output_dir = Path(job["output_dir"])
    try:
        claim = claim or job_claim.acquire(output_dir)
    except job_claim.FolderClaimed as error:
        if not job["multirun"]:
            raise
        log.warning("skipping job %s: %s, which runs it; re-run the sweep after it ends", job["num"], error)
        return {"status": "skipped", "error": str(error)}
    if claim.note:
        log.warning(claim.note)
    try:
        return run_job(config, resolved, job, trained, resume_checked)
    finally:
        claim.release()


def run_job(
    config: Config,
    resolved: dict[str, Any],
    job: dict[str, Any],
    trained: TrainResult | None = None,
    resume_checked: bool = False,
):
    """Train the student on teacher data, probe the landscape, write summary.json, history.csv,
    the final weights, the probes' files and one W&B run into job["output_dir"]; return the summary.

    A diverging run is a result (status "diverged"), not an error. `trained` is this job's result
    when the batched launcher trained it stacked with others; `resume_checked`: the caller has
    found no finished run of this config in the folder (trainer.resume), as the batched launcher does."""
    output_dir = Path(job["output_dir"])
    if trained is None:
        torch.set_num_threads(config.trainer.threads)
    if config.trainer.resume and not resume_checked and (done := finished_summary(output_dir, resolved)) is not None:
        log.info(
            "%s already holds a %s run of this config; skipping it (trainer.resume=false reruns)",
            output_dir,
            done["status"],
        )
        return done
    problem = job_files.folder_problem(output_dir, resolved, job["log_name"], config.trainer.overwrite)
    if problem:
        raise ConfigError(f"{problem}; set trainer.overwrite=true to write there anyway")
    group = config.logger.group or (group_name(job["sweep_dir"]) if job["multirun"] else None)
    summary = recorded_run(
        output_dir,
        config,
        resolved,
        job,
        group,
        job["override_dirname"] or None,
        config.logger.job_type,
        lambda wandb_run: run_experiment(config, output_dir, wandb_run, trained),
    )
    log.info(
        "%s: final loss %.3e after %d epochs; files in %s",
        summary["status"],
        summary["final_loss"],
        summary["epochs_run"],
        output_dir,
    )
    return summary


def recorded_run(
    output_dir: Path,
    config: Config,
    resolved: dict[str, Any],
    job: dict[str, Any],
    group: str | None,
    name: str | None,
    job_type: str,
    results: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """What a job and a re-probe (nesterov_landscape/reprobe/) share, in a folder its caller holds:
    the earlier attempt's files removed, one W&B run, `results(wandb_run)` (the summary's results),
    and summary.json written last; a failure or Ctrl-C is recorded in both and raised again."""
    # chosen here, so the manifest can name the run before W&B makes it
    run_id = wandb_run_id(output_dir, resolved, config.logger.mode)
    job_files.remove_previous_attempt(output_dir)  # never mix its files or W&B runs with an earlier attempt's
    job_files.record(output_dir, job_files.wandb_run_entry(run_id))
    wandb_run, wandb_mode = start_run(
        config.logger.mode,
        config.logger.init_timeout,
        dir=str(output_dir),
        project=config.logger.project,
        entity=config.logger.entity,
        group=group,
        job_type=job_type,
        tags=list(config.logger.tags),
        name=name,
        config=resolved,
        id=run_id,
    )
    define_metrics(wandb_run)
    summary: dict[str, Any] = {
        "status": "running",
        "seed": config.seed,
        "config": resolved,
        "versions": dict(versions()),
        "job": job,
        "wandb": {"mode": wandb_mode, "id": wandb_run.id, "group": group},
    }
    finished_run = False
    try:
        summary.update(results(wandb_run))
        for key, value in summary.items():  # what the analysis would refuse: a probe's mistake
            if (expected := entry_error(key, value)) is not None:
                raise ValueError(f"summary entry {key}={value!r}: {expected} (nesterov_landscape/summary_schema.py)")
        wandb_run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
        wandb_run.finish()
        finished_run = True
        require_free_space(output_dir)
        summary["files"] = sorted({*job_files.written_results(output_dir), "summary.json"})
        write_json(output_dir / "summary.json", summary)  # last: it marks the job finished
    except BaseException as error:
        # Ctrl-C (or the sweep's process dying) is not a failure of the job: re-running finishes it
        interrupted = isinstance(error, KeyboardInterrupt)
        summary.update(status="interrupted" if interrupted else "failed", error=error_text(error))
        try:
            write_json(output_dir / "summary.json", summary)
        except OSError as write_error:  # the disk that failed the job may refuse this too: the log says it
            log.error("could not record the job's failure in summary.json: %s", write_error)
        if not finished_run:
            # the status in the run's summary too: W&B's own state says "failed" for any non-zero exit
            try:
                wandb_run.summary.update({"status": summary["status"], "error": summary["error"]})
                wandb_run.finish(exit_code=130 if interrupted else 1)
            except Exception as close_error:  # its service died too: SLURM's SIGTERM reaches every process of a task
                log.error("could not close the job's W&B run: %s", error_text(close_error))
        raise
    return summary


def wandb_run_id(output_dir: Path, resolved: dict[str, Any], mode: str) -> str:
    """Online, the W&B run id of the folder's earlier attempt when that attempt was cut short (killed,
    failed, interrupted) running the same config: the re-run resumes that run on the server and
    finishes it instead of leaving it crashed beside a new one. A new id otherwise: a finished result
    run again is a new result, another config is another run, and offline a resume does nothing but
    share a name with the killed attempt's W&B process, which may outlive its job and write into the
    folder of that name (seen: a re-run's offline run left without its .wandb file)."""
    summary = job_files.read_summary(output_dir)
    same_attempt = summary is None or (
        not job_files.finished(summary)
        and job_files.result_identity(summary.get("config") or {}) == job_files.result_identity(resolved)
    )
    earlier = job_files.recorded_wandb_run_ids(output_dir)
    return earlier[-1] if mode == "online" and same_attempt and earlier else uuid.uuid4().hex[:8]


def run_experiment(
    config: Config, output_dir: Path, wandb_run: Any, trained: TrainResult | None = None
) -> dict[str, Any]:
    """Everything after set-up: training (or the result of training this job in a stack,
    `trained`), history.csv, probes and their files. Returns the summary's results."""
    problem = setup_problem(config)
    disk = os.statvfs(output_dir)
    if (no_room := disk_error(config, disk.f_bavail * disk.f_frsize)) is not None:  # before hours of training
        raise OSError(errno.ENOSPC, no_room, str(output_dir))
    records = ProbeRecords()  # the probes' rows at checkpoints, then at the end
    result = train_job(problem, wandb_run, trained, records)
    columns = list(result.history[0])
    write_csv(output_dir / "history.csv", columns, ([r.get(c) for c in columns] for r in result.history))
    out = training_results(problem, result)
    if result.status == "completed":
        if config.trainer.save_weights:
            keep_weights(problem, result, wandb_run, output_dir)
        out |= probe_job(problem, result, wandb_run, output_dir, records)
    return out


def keep_weights(problem: Problem, result: TrainResult, wandb_run: Any, output_dir: Path) -> None:
    """The final weights in the job folder (weights.py), and as a W&B artifact if logger.log_weights."""
    weights.save(output_dir, result.params, result.epochs_run, problem)
    if problem.config.logger.log_weights:
        path, metadata = output_dir / job_files.WEIGHTS_FILE, {"epoch": result.epochs_run}
        log_file_artifact(wandb_run, path, f"weights-{wandb_run.id}", "weights", metadata)


def train_job(problem: Problem, wandb_run: Any, trained: TrainResult | None, records: ProbeRecords) -> TrainResult:
    """Train the job alone, or take its result from its stack (`trained`); either way each history
    row goes to W&B, the log and a progress bar as it comes."""
    config, probes = problem.config, problem.config.probe
    epochs = config.trainer.epochs
    log_stride = max(config.trainer.log_every, epochs // 10)
    bar = tqdm(total=epochs, unit="epoch", disable=not sys.stderr.isatty() or trained is not None, dynamic_ncols=True)
    check_parent = parent_watch()

    def on_record(row: dict[str, float]) -> None:
        check_parent()
        row.update(history_entries(probes, row))
        log_history_row(wandb_run, row)
        bar.update(row["epoch"] - bar.n)
        bar.set_postfix(loss=f"{row['loss']:.3e}", refresh=False)
        if row["epoch"] % log_stride == 0 or row["epoch"] == epochs or not math.isfinite(row["loss"]):
            log.info("epoch %d: loss %.3e, grad norm %.3e", row["epoch"], row["loss"], row["grad_norm"])

    def on_checkpoint(epoch: int, weights: torch.Tensor) -> None:
        probe_checkpoint(probes, Point(weights, epoch, problem.loss_in, problem.dtype, config.seed), records)

    if trained is not None:
        log.info("trained in a stack with %d other jobs of the same shape", trained.stacked_with)
        for row in trained.history:
            on_record(row)
        bar.close()
        return trained
    log.info(
        "training %s (%d weights, %s, %s) with %s for %d epochs",
        config.model.name,
        problem.shape.n_params,
        config.trainer.precision,
        problem.device,
        config.optimizer.name,
        epochs,
    )
    with logging_redirect_tqdm():  # log lines print above the bar, not through it
        if stack_signature(config) is not None:  # as a stack of one: the numbers it gets in any stack
            (result,) = train_problems([problem], lambda index, row: on_record(row))
        else:  # mini-batches, gradient noise or checkpoints: its own loop
            loss_fn, compile_seconds = problem.loss_in(problem.dtype), 0.0
            if config.trainer.compile:
                loss_fn, compile_seconds = compiled(loss_fn, problem.init.to(problem.device, problem.dtype))
            result = train_alone(problem, loss_fn, on_record, on_checkpoint)
            result.compile_seconds = compile_seconds
    bar.close()
    if config.trainer.compile:
        log.info("compiled in %.1f s", result.compile_seconds)
    return result


# training_results' entries besides the history's final_<entry>: what a re-probe's summary repeats
TRAINING_KEYS = (
    "status",
    "final_loss",
    "final_grad_norm",
    "epochs_run",
    "diverged_at_epoch",
    "data_seed",
    "model_seed",
    "n_params",
    "raw_label_std",
    "precision",
    "device",
    "gpu",
    "threads",
    "train_started_at",
    "train_seconds",
    "compile_seconds",
    "stacked_with",
    "trained_activation",
    "trained_products",
    "optimizer_hyperparams",
    "steps_per_epoch",
)


def training_results(problem: Problem, result: TrainResult) -> dict[str, Any]:
    """The summary's record of the training (TRAINING_KEYS and final_<entry>): outcome, seeds,
    precision, device, time, hyperparameters."""
    config, device = problem.config, problem.device
    out: dict[str, Any] = {
        "status": result.status,
        "final_loss": result.history[-1]["loss"],
        "final_grad_norm": result.history[-1]["grad_norm"],
        "epochs_run": result.epochs_run,
        "diverged_at_epoch": result.epochs_run if result.status == "diverged" else None,
        "data_seed": problem.data_seed,
        "model_seed": problem.model_seed,
        "n_params": problem.shape.n_params,
        "raw_label_std": problem.data.raw_label_std,
        "precision": config.trainer.precision,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "train_started_at": result.started_at,
        "train_seconds": result.seconds,
        "compile_seconds": result.compile_seconds,
        "stacked_with": result.stacked_with,
        "trained_activation": result.activation or config.model.activation,
        "trained_products": result.products,
        "optimizer_hyperparams": values_used(problem.hyperparams()),
        "steps_per_epoch": problem.schedule().steps_per_epoch,
    }
    # the entries probes add to history rows (a probe's `history`), as they ended
    out |= {f"final_{k}": v for k, v in result.history[-1].items() if k not in ("epoch", "loss", "grad_norm")}
    return out


def probe_job(
    problem: Problem, result: TrainResult, wandb_run: Any, output_dir: Path, records: ProbeRecords
) -> dict[str, Any]:
    """The selected probes at the final weights (some may come computed by the stack); their
    files, W&B tables and summary entries."""
    start = time.perf_counter()
    at = Point(result.params, result.epochs_run, problem.loss_in, problem.dtype, problem.config.seed)
    out = probe_trained(problem.config.probe, at, result.stacked_probes, records)
    records.write(output_dir)
    records.log(wandb_run)
    out["probe_seconds"] = time.perf_counter() - start + result.probe_seconds
    out["stacked_probes"] = sorted(result.stacked_probes)  # how a re-probe reproduces them (reprobe/)
    return out
