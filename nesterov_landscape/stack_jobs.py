"""A worker's share of a batched sweep: train a stack of jobs as one computation, then give each job
its folder, .hydra/ files, log file, result files and W&B run, one after another.

Jobs arrive as plain data (their resolved config, the config and Hydra node as Hydra would save
them): no Hydra composition happens here. One job's failure is that job's alone: a stack that
cannot be trained or probed together falls back to training its jobs one by one."""

import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from .stack import train_jobs
from .config import ConfigError, validate_values
from .job_files import atomic_write_text
from . import job_claim, job_files
from .job import run_claimed

log = logging.getLogger(__name__)
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"

# (job index, "completed" or "failed", the job's status or the error)
Outcome = tuple[int, str, str]


def _write_hydra_files(job: Any) -> None:
    """What Hydra's run_job saves in .hydra/, from the job's plain trees (C YAML: ~1 ms a job)."""
    folder = Path(job.output_dir) / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    for name, tree in (("config", job.task), ("hydra", {"hydra": job.hydra}), ("overrides", job.overrides)):
        text = yaml.dump(tree, Dumper=yaml.CSafeDumper, sort_keys=False)
        atomic_write_text(folder / f"{name}.yaml", text, root=Path(job.output_dir))


def _identity(job: Any) -> dict[str, Any]:
    return {
        "output_dir": job.output_dir,
        "multirun": True,
        "num": job.idx,
        "override_dirname": job.hydra["job"]["override_dirname"],
        "sweep_dir": job.sweep_dir,
        "log_name": f"{job.hydra['job']['name']}.log",
    }


class _JobLog:
    """The job's log file, as Hydra's run_job keeps one; the console only gets warnings, so that
    thousands of jobs do not flood it."""

    def __init__(self, job: Any) -> None:
        self.logger = logging.getLogger("nesterov_landscape")
        path = Path(job.output_dir) / f"{job.hydra['job']['name']}.log"
        job_files.record(path.parent, path.name)
        self.file = logging.FileHandler(path, mode="a")
        self.file.setFormatter(logging.Formatter(LOG_FORMAT))
        self.console = logging.StreamHandler(sys.stderr)
        self.console.setLevel(logging.WARNING)
        self.console.setFormatter(logging.Formatter(f"job #{job.idx}: %(levelname)s %(message)s"))

    def __enter__(self) -> None:
        self.saved = self.logger.propagate, self.logger.level
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.file)
        self.logger.addHandler(self.console)

    def __exit__(self, *exc: Any) -> None:
        self.logger.removeHandler(self.file)
        self.logger.removeHandler(self.console)
        self.file.close()
        self.logger.propagate, self.logger.level = self.saved


def _finish_job(job: Any, config: Any, trained: Any) -> Outcome:
    folder = Path(job.output_dir)
    try:
        claim = job_claim.acquire(folder)  # before anything is written there
    except job_claim.FolderClaimed as error:
        log.warning("job #%d skipped: %s, which runs it; re-run the sweep after it ends", job.idx, error)
        return job.idx, "completed", "skipped"
    identity = _identity(job)
    problem = None if config.trainer.overwrite else job_files.folder_problem(folder, job.resolved, identity["log_name"])
    if problem:  # checked before this job's .hydra/ files would replace anything
        claim.release()
        log.error("job #%d: %s; set trainer.overwrite=true to write there anyway", job.idx, problem)
        return job.idx, "failed", f"{problem}; set trainer.overwrite=true to write there anyway"
    try:
        _write_hydra_files(job)
        with _JobLog(job):
            summary = run_claimed(config, job.resolved, identity, trained, claim)
    except Exception as error:
        log.exception("job #%d failed", job.idx)
        return job.idx, "failed", f"{type(error).__name__}: {error}"
    finally:
        claim.release()
    return job.idx, "completed", summary["status"]


def run_stack(jobs: Sequence[Any]) -> list[Outcome]:
    """Run jobs that the launcher grouped by stack signature (or one job alone)."""
    outcomes: list[Outcome] = []
    valid = []
    for job in jobs:
        try:
            valid.append((job, validate_values(job.resolved, cuda_available=torch.cuda.is_available())))
        except ConfigError as error:
            outcomes.append((job.idx, "failed", f"invalid config: {error}"))
    if not valid:
        return outcomes
    torch.set_num_threads(valid[0][1].trainer.threads)
    trained: list[Any] = [None] * len(valid)
    if len(valid) > 1:
        try:
            trained = train_jobs([config for _, config in valid])
        except Exception as error:  # the jobs then train one by one, each failing on its own
            log.warning(
                "stack of %d jobs failed (%s: %s); training them one by one", len(valid), type(error).__name__, error
            )
    for i, (job, config) in enumerate(valid):
        outcomes.append(_finish_job(job, config, trained[i]))
        trained[i] = None  # release the run's weights and history
    return outcomes


def run_stacks(stacks: Sequence[Sequence[Any]]) -> list[Outcome]:
    """One SLURM array task: several stacks, one after another."""
    init_worker()
    return [outcome for stack in stacks for outcome in run_stack(stack)]


def init_worker() -> None:
    """A worker process prints warnings only; each job's log goes to its own file."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT, stream=sys.stderr)
    os.environ.setdefault("WANDB_SILENT", "true")


def warm_up() -> None:
    """Start W&B's service now, not at the first job (about 0.5 s)."""
    import wandb

    wandb.setup()
