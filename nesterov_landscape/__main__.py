"""`python -m nesterov_landscape [overrides] [--multirun]`: one job, or a sweep with --multirun."""

import logging
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from hydra_plugins.nesterov_landscape_batched._process_signals import TaskSignals, in_submitit_task, stop_on_sigterm
from hydra_plugins.nesterov_landscape_batched.app_task import app_task

from .config import ConfigError, register_configs
from .interruption import SweepProcessDied
from .job_claim import FolderClaimed

log = logging.getLogger("nesterov_landscape")
register_configs()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@app_task  # the batched launchers run this app's jobs in stacks, without calling main
def main(cfg: DictConfig) -> None:
    # Imported here, not at the top: the job brings torch and W&B (seconds), which --help and --cfg do not need.
    from .job import task

    # SIGTERM as Ctrl-C here too, for a job in a process of its own (a joblib worker, a SLURM task;
    # there the time limit's warning too, after which the task requeues itself)
    signals = TaskSignals() if in_submitit_task() else None
    if signals is None:
        stop_on_sigterm()
    try:
        task(cfg)
    except ConfigError as error:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            log.error("invalid config: %s", error)
            raise
        # One line and a non-zero exit instead of Hydra's traceback for a single job.
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except FolderClaimed as error:  # a single run's hydra.run.dir, taken since the job started
        print(f"error: {error}; wait for it to end or choose another hydra.run.dir", file=sys.stderr)
        sys.exit(2)
    except OSError as error:  # a full disk, a folder it may not write: the job recorded it as failed
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        where = f": {error.filename}" if error.filename else ""
        print(f"error: {error.strerror or error}{where}; the job failed", file=sys.stderr)
        sys.exit(1)
    except SweepProcessDied as error:
        # A worker process of a killed sweep: nothing is left to return the result to.
        log.error("%s: stopped this job (status interrupted); re-run the sweep to finish it", error)
        logging.shutdown()
        os._exit(3)
    except KeyboardInterrupt:
        if signals is not None:
            signals.requeue_if_warned()
        hc = HydraConfig.get()
        again = "the same command" if hc.mode == RunMode.MULTIRUN else f"it with hydra.run.dir={hc.runtime.output_dir}"
        # On a line of its own: Ctrl-C may land in the middle of a log line or the progress bar
        print(
            f"\ninterrupted: {hc.runtime.output_dir} stopped (status interrupted); run {again} to finish it",
            file=sys.stderr,
        )
        sys.exit(130)
    except Exception:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            # Hydra keeps a failed job's error for the end of the sweep, which reports it in one line
            # (batched_sweeper): its traceback, a bug's, is logged here as it fails, in the job's log too.
            log.exception("job failed")
        raise


if __name__ == "__main__":
    stop_on_sigterm()  # SIGTERM stops a job, or the jobs this process runs, as Ctrl-C does
    try:
        main()
    except KeyboardInterrupt as interrupt:  # Ctrl-C outside a job: while Hydra starts, or in a launcher
        print(f"\ninterrupted{f': {interrupt}' if str(interrupt) else ''}", file=sys.stderr)
        sys.exit(130)
    except ValueError as error:
        # Hydra's checks of the command line (say --cfg with --multirun) raise before any job; a job's
        # own errors reach here only with HYDRA_FULL_ERROR=1, which asks for their tracebacks.
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
