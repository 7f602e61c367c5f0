"""Any Hydra app's jobs on the batched launchers (a task function without app_task's mark): each
job composed by Hydra, numbered (hydra.job.id is its number, as with Hydra's basic launcher) and
run through Hydra's run_job, in the launching process, in worker processes or in array tasks.

In another process Hydra's global state (config store, resolvers, ...) is restored first, as
Hydra's joblib and submitit launchers do, and the task function travels by cloudpickle, which
also carries functions that pickle cannot name (a closure, a function of a script's __main__).
Hydra's plugin scan skips this module (its name starts with "_"), so its class stays the one the
launcher pickles."""

import signal
from dataclasses import dataclass
from typing import Any, Sequence

import cloudpickle
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from ._process_signals import signal_when_parent_dies


@dataclass
class HydraJobs:
    hydra_context: HydraContext
    config: DictConfig  # the sweep's config, as Hydra's launchers get it
    task_function: TaskFunction
    singleton_state: Any = None  # Hydra's global state (Singleton.get_state()), for another process

    def run(self, idx: int, overrides: Sequence[str]) -> JobReturn:
        """One job, as Hydra's basic launcher runs it."""
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = idx
            config.hydra.job.num = idx
        return run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )

    def run_elsewhere(self, jobs: Sequence[tuple[int, Sequence[str]]]) -> list[JobReturn]:
        """Jobs one after another in a process of their own (a SLURM array task)."""
        Singleton.set_state(self.singleton_state)
        setup_globals()
        return [self.run(idx, overrides) for idx, overrides in jobs]


WORKER_JOBS: HydraJobs | None = None  # set in worker processes only


def init_worker(pickled: bytes, launcher: int) -> None:
    """A worker process of the launching process's pool: the sweep's HydraJobs, cloudpickled. It
    gets SIGTERM when the launcher (pid `launcher`) dies, however it dies: the app's job ends as
    SIGTERM ends it anywhere (Python's default: at once, the worker with it, so that it does not
    outlive the sweep; an app that handles SIGTERM decides for itself)."""
    global WORKER_JOBS
    signal_when_parent_dies(signal.SIGTERM, launcher)
    WORKER_JOBS = cloudpickle.loads(pickled)
    Singleton.set_state(WORKER_JOBS.singleton_state)
    setup_globals()


def run_in_worker(idx: int, overrides: Sequence[str]) -> bytes:
    """The job's JobReturn, cloudpickled: restoring Hydra's state ran its plugin scan again, which
    made new classes of the plugins' config dataclasses, and pickle refuses the job's config that
    still holds the old ones (cloudpickle sends them by value, as joblib's workers do)."""
    assert WORKER_JOBS is not None
    return cloudpickle.dumps(WORKER_JOBS.run(idx, overrides))
