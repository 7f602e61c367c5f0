"""SIGTERM, the launcher's death and the time limit's warning, for any Hydra app's jobs on the
batched launchers and for this app's own entry point. Standard library only (submitit when a task
asks for it): the launchers import it before they know the app.

SIGTERM is what scancel, a requeue, the end of a SLURM time limit, `kill` and a shutdown send
before they kill; Python's default is to die at once, which leaves a job with no summary and its
W&B run open. Raised as KeyboardInterrupt("SIGTERM"), it stops a job wherever Ctrl-C would, and
is handled the same way."""

import contextlib
import os
import signal
import threading
import time
from typing import Any, Iterator


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


def signal_when_parent_dies(signum: int, parent: int, again_every_s: float | None = None) -> None:
    """Send `signum` to this process's main thread once its parent (pid `parent`) has died, however
    it died, kill -9 included: a thread watches for this process's re-parenting (every 0.1 s). With
    `again_every_s`, the signal comes again at that interval for as long as this process lives,
    for a process that may hold it off (SIG_IGN drops it) and whose handler takes repeats.

    Not Linux's PR_SET_PDEATHSIG: the kernel sends that when the *thread* that started the process
    exits, to any thread of it. A launcher's threads die one by one, so the first signal could come
    while the launcher still looked alive, and the second while the main thread still ran the
    first's handler: the handler was not run again, and a worker waiting for work waited for ever."""
    main = threading.main_thread().ident
    assert main is not None

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.1)
        signal.pthread_kill(main, signum)  # the main thread, so that a blocking wait is interrupted
        while again_every_s is not None:
            time.sleep(again_every_s)
            signal.pthread_kill(main, signum)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


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
