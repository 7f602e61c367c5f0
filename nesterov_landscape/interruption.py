"""A job stopped from outside rather than failing: Ctrl-C, SIGTERM (raised as Ctrl-C is:
hydra_plugins/nesterov_landscape_batched/_process_signals.py), or the death of the sweep process
that started it. Either way the job records status `interrupted`, closes its W&B run, and
re-running the same command finishes it."""

import os
import signal
import sys
from typing import Any, Callable

SWEEP_PID_ENV = "NESTEROV_LANDSCAPE_SWEEP_PID"  # set by callbacks.JobFolders.on_multirun_start


class SweepProcessDied(KeyboardInterrupt):
    """The sweep's process (pid `sweep_pid`), this job's parent, is gone (say killed with kill -9):
    a job in a worker would otherwise go on alone for as long as it takes. A KeyboardInterrupt, so
    that it stops the job wherever Ctrl-C would, and is handled the same way."""

    def __init__(self, sweep_pid: int) -> None:
        super().__init__(f"the sweep's process (pid {sweep_pid}) died")


def end_on_sigterm_leaving_jobs_to_stop() -> None:
    """For a sweep whose jobs run in child processes that watch it (joblib's workers, parent_watch):
    SIGTERM ends this process at once, and each running job stops at its next history row as it
    does when this process is killed. Raising in this process instead would make joblib kill its
    workers with SIGKILL before their jobs could record anything."""

    def end(signum: int, frame: Any) -> None:
        print(
            "\nterminated: each running job stops at its next history row (status interrupted); "
            "run the same command to finish the sweep",
            file=sys.stderr,
            flush=True,
        )
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, end)


def parent_watch() -> Callable[[], None]:
    """A check to call now and then during training: raises SweepProcessDied once the process
    that started this job's sweep has died. A no-op outside a sweep's worker process (a single run,
    or jobs that run in the sweep's own process): a job started from a shell keeps running when
    the shell exits, as with nohup."""
    sweep_pid = os.environ.get(SWEEP_PID_ENV)
    parent = os.getppid()
    if sweep_pid is None or str(parent) != sweep_pid:
        return lambda: None

    def check() -> None:
        if os.getppid() != parent:  # orphans are re-parented to init or a subreaper
            raise SweepProcessDied(parent)

    return check
