"""Hydra callbacks (registered in conf/config.yaml under hydra.callbacks) for what must happen
before Hydra writes anything: a single run's folder, and a sweep with no jobs.

Hydra writes .hydra/ and opens the job's log before the job's own code runs, so two single jobs
started in the same second would otherwise share (and overwrite) `outputs/<date>/<time>/`.
"""

import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from . import job_claim, job_files
from .interruption import SWEEP_PID_ENV, end_on_sigterm_leaving_jobs_to_stop

BASIC_SWEEPERS = (
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
    "hydra_plugins.nesterov_landscape_batched.batched_sweeper.BatchedSweeper",
)
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def fail(message: str) -> None:
    """One line and exit 2. SystemExit passes through Hydra, which turns a callback's other
    exceptions into warnings and goes on."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


class JobFolders(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check and claim the single run's folder before Hydra writes to it. The config is
        validated first, so a rejected one touches no folder. Given on the command line
        (hydra.run.dir=...), the folder is used as it is, unless another live process holds it or
        it holds what this tool did not write (job_files); the default outputs/<date>/<time>
        becomes outputs/<date>/<time>-1, -2, ... when a job started in the same second has it."""
        refuse_other_output_subdir(config)
        explicit = any(o.split("=", 1)[0].lstrip("+~") == "hydra.run.dir" for o in config.hydra.overrides.hydra)
        wanted = Path(str(config.hydra.run.dir))
        resolved = validated_job_config(config)
        if wanted.is_symlink():  # not followed: refused before anything is written through it
            fail(f"{wanted} is a symbolic link to {os.readlink(wanted)}; choose a folder, not a link")
        try:
            folder = wanted if explicit else job_claim.fresh_folder(wanted)
            claim = job_claim.acquire(folder)
        except job_claim.FolderClaimed as error:
            fail(f"{error}; wait for it to end or choose another hydra.run.dir")
        except OSError as error:
            fail(f"cannot create the job's folder {wanted}: {error.strerror or error}")
        log_name = f"{config.hydra.job.name}.log"
        try:
            problem = job_files.folder_problem(folder, resolved, log_name, resolved["trainer"]["overwrite"])
        except OSError as error:  # an unreadable manifest or wandb/: never let Hydra write on regardless
            problem = f"cannot check {folder}: {error.strerror or error}: {error.filename}"
        if problem:  # an existing folder: the job made nothing there
            claim.release()
            fail(f"{problem}; choose another hydra.run.dir, or set trainer.overwrite=true to write there anyway")
        job_files.record(folder, *job_files.HYDRA_FILES, log_name)  # Hydra writes them next, for this job
        if folder != wanted:
            claim.note = f"{wanted} holds a job started in the same second; this job runs in {folder}"
        with read_write(config.hydra.run):
            config.hydra.run.dir = str(folder)  # run_job makes this the job's output_dir
        job_claim.HELD[os.path.abspath(folder)] = claim

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # inherited by the processes the launcher starts for jobs (joblib's workers): a job whose
        # parent is this process stops when it dies (interruption.parent_watch)
        os.environ[SWEEP_PID_ENV] = str(os.getpid())
        if OmegaConf.select(config, "hydra.launcher._target_") == JOBLIB_LAUNCHER:
            end_on_sigterm_leaving_jobs_to_stop()
        refuse_other_output_subdir(config)
        if OmegaConf.select(config, "hydra.sweeper._target_") in BASIC_SWEEPERS:
            refuse_empty_sweep(config)


def refuse_other_output_subdir(config: DictConfig) -> None:
    """The job's ownership rules (job_files) know Hydra's files under .hydra/ only: another
    hydra.output_subdir would let Hydra overwrite a user's files there unchecked."""
    subdir = OmegaConf.select(config, "hydra.output_subdir")
    if subdir != ".hydra":
        fail(f"hydra.output_subdir={subdir} is not allowed; it must be .hydra, where the tool checks what Hydra writes")


def validated_job_config(config: DictConfig) -> dict[str, Any]:
    """The job's resolved config (without the hydra node), checked as the job checks it; a
    rejected config is one line and exit 2, before any folder is made."""
    from .config import ConfigError, validate_values

    HydraConfig.instance().set_config(config)  # for ${hydra:...} in the job's config; run_job sets it again
    task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    try:
        resolved = OmegaConf.to_container(task, resolve=True, throw_on_missing=True)
        cuda = resolved["trainer"]["device"] != "cpu" and cuda_available()
        validate_values(resolved, cuda_available=cuda)
    except ConfigError as error:
        fail(str(error))
    except Exception as error:  # Hydra would only warn about a callback's error and write the folder anyway
        fail(f"the config cannot be resolved: {(str(error).splitlines() or [type(error).__name__])[0]}")
    return resolved


def cuda_available() -> bool:
    import torch  # only for a job that may use CUDA: the CPU path starts without it

    return torch.cuda.is_available()


def refuse_empty_sweep(config: DictConfig) -> None:
    """A sweep such as seed=range(0,0) has no jobs: Hydra would launch none and exit 0, which
    looks like success. Parse the sweep as the basic sweeper will and refuse it before it starts."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    lines = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    try:
        overrides = OverridesParser.create().parse_overrides(lines)
        empty = [o.input_line for o in overrides if o.is_sweep_override() and not list(o.sweep_string_iterator())]
    except Exception:  # a syntax error or a sweep the basic sweeper refuses: it says so in its own words
        return
    if empty:
        fail(f"{empty[0]} gives no values, so the sweep has no jobs; nothing was run")
