"""SIGTERM, the launcher's death and the time limit's warning, for any Hydra app's jobs on the
batched launchers and for this app's own entry point. Standard library only (submitit when a task
asks for it): the launchers import it before they know the app.

SIGTERM is what scancel, a requeue, the end of a SLURM time limit, `kill` and a shutdown send
before they kill; Python's default is to die at once, which leaves a job with no summary and its
W&B run open. Raised as KeyboardInterrupt("SIGTERM"), it stops a job wherever Ctrl-C would, and
is handled the same way."""

import contextlib
import ctypes
import os
import signal
import sys
import threading
from typing import Any, Iterator

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_on_sigterm() -> None:
    """From now on SIGTERM raises KeyboardInterrupt("SIGTERM") in this process. Only the main
    thread may set a handler: elsewhere (a job run in a thread) this does nothing."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """stop_on_sigterm for a while (a launch, whatever the app), then SIGTERM's handler as it was."""
    previous = signal.getsignal(signal.SIGTERM)
    stop_on_sigterm()
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def signal_when_parent_dies(signum: int, parent: int) -> None:
    """Ask the kernel to send `signum` to this process when its parent (pid `parent`) dies, however
    it dies, kill -9 included (Linux's PR_SET_PDEATHSIG; elsewhere nothing). "Parent" is the thread
    that started this process: call it only in processes that a long-lived thread started (the
    batched launcher's workers: its main thread)."""
    if not sys.platform.startswith("linux"):
        return
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the request: nothing would come
        os.kill(os.getpid(), signum)


class TaskSignals:
    """In a submitit task (a SLURM array task): SIGTERM, and the time limit's warning (submitit's
    preemption signal: SIGUSR2, unless SUBMITIT_PREEMPT_SIGNAL says otherwise), which submitit asks
    SLURM to send `signal_delay_s` before the end. The first to come raises KeyboardInterrupt once,
    so that the running jobs record status interrupted; `requeue_if_warned` then hands the warning to
    submitit's own handler, which calls the task's checkpoint (the same task again), requeues it
    and exits. submitit's own SIGTERM handler only logs the signal: the task would train on."""

    def __init__(self) -> None:
        from submitit import JobEnvironment

        self.warning = JobEnvironment._usr_sig()  # submitit's own reading of SUBMITIT_PREEMPT_SIGNAL
        self.submitit_handler = signal.getsignal(self.warning)
        self.caught: int | None = None
        for signum in (signal.SIGTERM, self.warning):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.caught is None:
            self.caught = signum
            _interrupt(signum, frame)

    def requeue_if_warned(self) -> None:
        """After the interrupted jobs are recorded: the warned task requeues itself (and exits)."""
        if self.caught == self.warning and callable(self.submitit_handler):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # what the requeue sends this task
            self.submitit_handler(self.warning, None)  # checkpoint, scontrol requeue, exit


def in_submitit_task() -> bool:
    return "SUBMITIT_EXECUTOR" in os.environ  # set by submitit's task scripts
