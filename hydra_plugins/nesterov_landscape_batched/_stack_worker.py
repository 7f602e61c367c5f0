"""A worker's share of a batched sweep: train a stack of jobs as one computation, then give each job
its folder, .hydra/ files, log file, result files and W&B run, one after another.

Jobs arrive as plain data, validated once by the launcher (StackedJob): no Hydra composition and no
second check happens here. One job's failure is that job's alone: a stack that cannot be trained or
probed together falls back to training its jobs one by one. Ctrl-C or SIGTERM stops a stack with
each of its unfinished jobs recorded as interrupted; a worker whose launcher died stops so, and exits.

The launcher imports this module only when a sweep of this app launches: it brings torch and the
app, and Hydra's plugin scan skips modules whose name starts with "_"."""

import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml
from submitit.helpers import Checkpointable

from nesterov_landscape import job_claim, job_files
from nesterov_landscape.config import Config
from nesterov_landscape.interruption import SWEEP_PID_ENV, SweepProcessDied
from nesterov_landscape.job import error_text, finished_summary, run_claimed, versions
from nesterov_landscape.job_files import atomic_write_text, json_safe, write_json
from nesterov_landscape.stack import stack_signature, train_jobs
from nesterov_landscape.numerics.training import TrainResult

from ._process_signals import TaskSignals, signal_when_parent_dies
from .job_configs import Job

log = logging.getLogger(__name__)
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"

# (job index, how it ended: "completed", "failed", "interrupted" or "not run"; the job's status
# when completed (completed, diverged, skipped), else why)
Outcome = tuple[int, str, str]


@dataclass
class StackedJob(Job):
    """A job as the launcher hands it to a worker: its configs and folder (job_configs.Job), its
    values as the launcher validated them, and its summary.json as the launcher found it
    (job_files.summary_stamp; None where there was none): a later stamp means someone wrote it since."""

    config: Config
    summary_seen: job_files.SummaryStamp | None


class StackInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a stack: the outcome of each of its jobs (interrupted, or finished before).
    Still a KeyboardInterrupt to any code that does not look for the outcomes."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        super().__init__(outcomes)
        self.outcomes = outcomes


class WorkerInterrupts:
    """Ctrl-C and SIGTERM in a worker process (init_worker). A terminal sends SIGINT to the whole
    process group and the launching process forwards it when it got it alone, so a worker may get
    it twice, or while it waits for work: it stops the stack being trained once (one
    KeyboardInterrupt), never kills a waiting worker (which would print a traceback), and once the
    launching process has set `sweep_stopped` no stack starts.

    The launcher's death, however it dies, reaches the worker's main thread as SIGTERM, and again
    each second (signal_when_parent_dies: one that came while the worker held signals off, as it
    does while W&B's service starts or while it records interrupted jobs, is lost): the stack being
    trained stops the same way, and the worker then exits (run_stack), as does a worker waiting for
    work that will never come. Nothing is left running, and nothing is written after the stopped
    jobs' records."""

    def __init__(self, sweep_stopped: Any, launcher: int) -> None:
        self.sweep_stopped, self.launcher = sweep_stopped, launcher
        self.in_stack, self.raised = False, False
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.on_signal)
        # The one way the launcher's death reaches a job here: a job's own check of its sweep's
        # process (interruption.parent_watch, for joblib's workers) would stop it first, and this
        # SIGTERM would then interrupt it again while it closes its W&B run.
        os.environ.pop(SWEEP_PID_ENV, None)
        signal_when_parent_dies(signal.SIGTERM, launcher, again_every_s=1.0)

    @property
    def orphaned(self) -> bool:
        return os.getppid() != self.launcher  # re-parented: the launcher is gone

    def on_signal(self, signum: int, frame: Any) -> None:
        orphaned = self.orphaned
        if orphaned and not self.in_stack:
            exit_orphaned()
        if self.in_stack and not self.raised:
            self.raised = True
            raise SweepProcessDied(self.launcher) if orphaned else KeyboardInterrupt


def exit_orphaned() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):  # the next SIGTERM, a second later, must not cut this short
        signal.signal(signum, signal.SIG_IGN)
    log.warning("the launching process died: this worker stops (re-run the same command to finish the sweep)")
    logging.shutdown()
    os._exit(3)


WORKER_INTERRUPTS: WorkerInterrupts | None = None  # set in worker processes only


@contextlib.contextmanager
def interrupts_held():
    """Ctrl-C and SIGTERM held off: while interrupted jobs are recorded (a second signal must not
    cut that short; SLURM sends SIGTERM to every process of a task, srun passes it on again), and
    while W&B's service starts (it inherits the setting and must outlive a Ctrl-C to close the runs
    of interrupted jobs)."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _write_hydra_files(job: StackedJob) -> None:
    """What Hydra's run_job saves in .hydra/, from the job's plain trees (C YAML: ~1 ms a job)."""
    folder = Path(job.output_dir) / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    for name, tree in (("config", job.task), ("hydra", {"hydra": job.hydra}), ("overrides", job.overrides)):
        text = yaml.dump(tree, Dumper=yaml.CSafeDumper, sort_keys=False)
        atomic_write_text(folder / f"{name}.yaml", text, root=Path(job.output_dir))


def _identity(job: StackedJob) -> dict[str, Any]:
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

    def __init__(self, job: StackedJob) -> None:
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


def _finish_job(job: StackedJob, trained: TrainResult | None) -> Outcome:
    folder = Path(job.output_dir)
    try:
        claim = job_claim.acquire(folder)  # before anything is written there
    except job_claim.FolderClaimed as error:
        log.warning("job #%d skipped: %s, which runs it; re-run the sweep after it ends", job.idx, error)
        return job.idx, "completed", "skipped"
    if job.config.trainer.resume and job_files.summary_stamp(folder) != job.summary_seen:
        # Another process wrote the job's summary since the launcher found no finished run there
        # (two sweeps into one folder): it may have finished the job, which must not run twice.
        claim.release()
        log.warning(
            "job #%d skipped: another process wrote %s since this sweep looked; re-run the sweep", job.idx, folder
        )
        return job.idx, "completed", "skipped"
    identity = _identity(job)
    problem = job_files.folder_problem(folder, job.resolved, identity["log_name"], job.config.trainer.overwrite)
    if problem:  # checked before this job's .hydra/ files would replace anything
        claim.release()
        log.error("job #%d: %s; set trainer.overwrite=true to write there anyway", job.idx, problem)
        return job.idx, "failed", f"{problem}; set trainer.overwrite=true to write there anyway"
    try:
        _write_hydra_files(job)
        with _JobLog(job):
            summary = run_claimed(job.config, job.resolved, identity, trained, claim, resume_checked=True)
    except Exception as error:
        log.exception("job #%d failed", job.idx)
        return job.idx, "failed", f"{type(error).__name__}: {error}"
    finally:
        claim.release()
    return job.idx, "completed", summary["status"]


def run_stack(jobs: Sequence[StackedJob]) -> list[Outcome]:
    """Run jobs that the launcher grouped by stack signature (or one job alone). In a worker, a
    stack handed over after the sweep was stopped does not start: its jobs are "not run"."""
    interrupts = WORKER_INTERRUPTS
    if interrupts is None:
        return _run_stack(jobs)
    interrupts.in_stack = True  # before looking at sweep_stopped: a Ctrl-C forwarded after it was set still stops us
    try:
        # A dead launcher may have queued a stack before it died, which a worker whose SIGTERM came
        # while it held signals off would take
        if interrupts.sweep_stopped.is_set() or interrupts.orphaned:
            return [(job.idx, "not run", "the sweep was interrupted") for job in jobs]
        return _run_stack(jobs)
    finally:
        interrupts.in_stack = False
        if interrupts.orphaned:  # its jobs are recorded; nobody is left to take their outcomes
            exit_orphaned()


def _run_stack(jobs: Sequence[StackedJob]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    try:
        torch.set_num_threads(jobs[0].config.trainer.threads)
        trained: list[TrainResult | None] = [None] * len(jobs)
        # A stack of one trains stacked too: a job's numbers do not depend on how the sweep was split
        if stack_signature(jobs[0].config) is not None:
            try:
                trained = train_jobs([job.config for job in jobs])
            except Exception as error:  # the jobs then train one by one, each failing on its own
                log.warning(
                    "stack of %d jobs failed (%s: %s); training them one by one",
                    len(jobs),
                    type(error).__name__,
                    error,
                )
        for i, job in enumerate(jobs):
            outcomes.append(_finish_job(job, trained[i]))
            trained[i] = None  # release the run's weights and history
    except KeyboardInterrupt as stop:
        with interrupts_held():
            ended = {outcome[0] for outcome in outcomes}
            outcomes += [_record_interrupted(job, error_text(stop)) for job in jobs if job.idx not in ended]
        raise StackInterrupted(outcomes) from None
    return outcomes


def _record_interrupted(job: StackedJob, error: str) -> Outcome:
    """A job of a stack that Ctrl-C or SIGTERM stopped: its folder records status interrupted, and the same
    command finishes it. A job stopped while its folder was being written already says so (with its
    W&B run closed, run_job); the others, stopped while their stack trained, get .hydra/, a log line
    and a summary.json of status interrupted, its error what stopped the stack (no W&B run: none was
    started)."""
    folder = Path(job.output_dir)
    try:
        claim = job_claim.acquire(folder)
    except job_claim.FolderClaimed:  # another process runs it
        return job.idx, "completed", "skipped"
    try:
        if not _recorded_interrupted(folder, job.resolved):
            overwrite = job.config.trainer.overwrite  # as _finish_job: nothing into a folder not ours
            problem = job_files.folder_problem(folder, job.resolved, _identity(job)["log_name"], overwrite)
            if problem:
                return job.idx, "interrupted", f"not recorded: {problem}"
            _write_hydra_files(job)
            job_files.remove_previous_attempt(folder)  # as run_job does first: the folder never mixes two attempts
            with _JobLog(job):
                log.info("interrupted while its stack trained; run the same command to finish it")
            summary = {
                "status": "interrupted",
                "error": error,
                "seed": job.config.seed,
                "config": job.resolved,
                "versions": dict(versions()),
                "job": _identity(job),
            }
            write_json(folder / "summary.json", summary)
    finally:
        claim.release()
    return job.idx, "interrupted", "interrupted"


def _recorded_interrupted(folder: Path, resolved: dict[str, Any]) -> bool:
    summary = job_files.read_summary(folder) or {}
    return summary.get("status") == "interrupted" and summary.get("config") == json_safe(resolved)


def written_outcome(job: StackedJob, why: str) -> tuple[str, str]:
    """How a job of an array task that ended without its result ended, as its folder says: the
    summary the task wrote there (not the one the launcher found) of a finished run, or of a run
    it recorded interrupted or failed. A job whose folder holds no such summary did not run: `why`."""
    folder = Path(job.output_dir)
    if job_files.summary_stamp(folder) == job.summary_seen:
        return "not run", why
    if (done := finished_summary(folder, job.resolved)) is not None:
        return "completed", done["status"]
    summary = job_files.read_summary(folder) or {}
    if summary.get("status") in ("interrupted", "failed") and summary.get("config") == json_safe(job.resolved):
        return summary["status"], str(summary.get("error"))
    return "not run", why


class ArrayTask(Checkpointable):
    """One SLURM array task: several stacks, one after another, as submitit runs it.

    SIGTERM (scancel, a requeue, the end of the time limit) stops the stack being trained, its
    unfinished jobs recorded interrupted, and the task exits without a result: a requeued task
    runs again, and the launcher reads what the jobs wrote. The time limit's warning stops it the
    same way, and the task then requeues itself (TaskSignals; Checkpointable's `checkpoint`: this
    task again, with the same stacks). Each run of the task first leaves out the jobs that an
    earlier run finished."""

    def __call__(self, stacks: Sequence[Sequence[StackedJob]]) -> list[Outcome]:
        init_worker()
        signals = TaskSignals()
        outcomes: list[Outcome] = []
        try:
            for stack in stacks:
                if left := _unfinished(stack, outcomes):
                    outcomes += run_stack(left)
        except KeyboardInterrupt as stop:
            stopped = getattr(stop, "outcomes", [])
            recorded = sum(status == "interrupted" for _, status, _ in stopped)
            log.warning(
                "array task stopped by %s: %d running jobs recorded status interrupted",
                signal.Signals(signals.caught or signal.SIGINT).name,
                recorded,
            )
            signals.requeue_if_warned()
            raise SystemExit(128 + (signals.caught or signal.SIGINT)) from None
        return outcomes


def _unfinished(stack: Sequence[StackedJob], outcomes: list[Outcome]) -> list[StackedJob]:
    """The jobs of the stack that an earlier run of this task (before a requeue) did not finish;
    the others' outcomes go to `outcomes`. A job that it stopped (its summary says interrupted) is
    this task's own to run again."""
    left = []
    for job in stack:
        folder = Path(job.output_dir)
        stamp = job_files.summary_stamp(folder)
        if stamp != job.summary_seen and finished_summary(folder, job.resolved) is not None:
            outcomes.append((job.idx, "completed", "already done"))
            continue
        job.summary_seen = stamp
        left.append(job)
    return left


def init_worker(sweep_stopped: Any = None, launcher: int | None = None) -> None:
    """A worker process prints warnings only; each job's log goes to its own file. In a worker of
    the launching process's pool (`sweep_stopped`, the launcher's pid), Ctrl-C, SIGTERM and the
    launcher's death as WorkerInterrupts says."""
    global WORKER_INTERRUPTS
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT, stream=sys.stderr)
    os.environ.setdefault("WANDB_SILENT", "true")
    if sweep_stopped is not None and launcher is not None:
        WORKER_INTERRUPTS = WorkerInterrupts(sweep_stopped, launcher)


def warm_up() -> None:
    """Start W&B's service now, not at the first job (about 0.5 s)."""
    import wandb

    with interrupts_held():
        wandb.setup()
