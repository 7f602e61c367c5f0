"""`hydra/launcher=batched`: the same --multirun, with the jobs that differ only in shape-keeping
values (seeds, lr, momentum, ...) trained in stacks (one computation each), spread over worker
processes (`hydra/launcher=batched_slurm`: over SLURM array tasks). Every job still gets its own
folder, .hydra/ files, log, result files and W&B run.

The launcher decides how jobs run and nothing else: job configs come from job_configs.py (Hydra's
composition, once per set of group choices), the work of a stack from _stack_worker.py. Torch and
the app are imported only when a sweep of the app launches: Hydra imports every plugin to discover
it. Any other app's jobs (app_task.py says how they are told apart) run through Hydra's run_job
(_hydra_jobs.py), in the same worker processes or array tasks."""

import contextlib
import logging
import math
import multiprocessing
import os
import signal
import sys
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from ._process_signals import sigterm_stops
from .app_task import is_app_task
from .job_configs import JobConfigs
from .job_folders import JobFolder

if TYPE_CHECKING:  # imported when a sweep launches (the stack worker brings torch and the app)
    from ._hydra_jobs import HydraJobs
    from ._stack_worker import StackedJob

log = logging.getLogger(__name__)


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.nesterov_landscape_batched.batched_launcher.BatchedLauncher"
    # runs per stack, at most: on a CPU a stack's cost per run stops falling at a few
    # dozen runs while its memory keeps growing; a GPU wants thousands (hydra.launcher.runs_per_stack=10000)
    runs_per_stack: int = 128
    n_jobs: Optional[int] = None  # worker processes; null: one per core; 1: in the launching process


@dataclass
class BatchedSlurmLauncherConf:
    _target_: str = "hydra_plugins.nesterov_landscape_batched.batched_launcher.BatchedSlurmLauncher"
    runs_per_stack: int = 128
    runs_per_task: int = 1000  # runs per array task: whole stacks, at least one
    cluster: str = "slurm"  # slurm | local (submitit's local executor: the same tasks as processes here)
    submitit_folder: str = "${hydra.sweep.dir}/.submitit/%j"
    timeout_min: int = 60
    # seconds before timeout_min ends that SLURM warns a task (submitit's signal, SIGUSR2): its running
    # jobs record status interrupted and the task requeues itself; SLURM sends it up to a minute late
    signal_delay_s: int = 90
    wait: bool = True  # false: submit the array tasks and return; the same command later finishes the rest
    cpus_per_task: int = 1
    mem_gb: int = 4
    gpus_per_node: Optional[int] = None
    partition: Optional[str] = None
    array_parallelism: int = 256
    setup: list[str] = field(default_factory=list)  # shell lines run before each task (module load ...)
    additional_parameters: dict[str, Any] = field(default_factory=dict)  # any other sbatch option


ConfigStore.instance().store(
    group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="nesterov_landscape"
)
ConfigStore.instance().store(
    group="hydra/launcher", name="batched_slurm", node=BatchedSlurmLauncherConf, provider="nesterov_landscape"
)


class Progress:
    """Jobs done of N, rate and time left: a bar on a terminal, a log line a minute otherwise."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.total, self.start, self.last_line = total, time.perf_counter(), 0.0
        self.counts: dict[str, int] = defaultdict(int)
        self.bar = tqdm(total=total, unit="job", dynamic_ncols=True, disable=not sys.stderr.isatty())

    def done(self, kind: str, n: int = 1) -> None:
        self.counts[kind] += n
        self.bar.update(n)
        self.bar.set_postfix({k: v for k, v in sorted(self.counts.items())}, refresh=False)
        now = time.perf_counter()
        if self.bar.disable and now - self.last_line > 60:
            self.last_line = now
            finished = sum(self.counts.values())
            rate = finished / (now - self.start)
            left = (self.total - finished) / rate if rate else math.inf
            log.info(f"{finished}/{self.total} jobs done, {rate:.2f} jobs/s, about {left:.0f} s left")

    def close(self) -> None:
        self.bar.close()
        counts = ", ".join(f"{v} {k}" for k, v in sorted(self.counts.items()))
        log.info(f"{self.total} jobs in {time.perf_counter() - self.start:.1f} s: {counts}")


class BatchedLauncher(Launcher):
    def __init__(self, runs_per_stack: int = 128, n_jobs: Optional[int] = None) -> None:
        super().__init__()
        if runs_per_stack < 1:
            raise ValueError(
                f"hydra.launcher.runs_per_stack={runs_per_stack} is not allowed; it must be an integer >= 1"
            )
        if n_jobs is not None and n_jobs < 1:
            raise ValueError(f"hydra.launcher.n_jobs={n_jobs} is not allowed; it must be null or an integer >= 1")
        self.runs_per_stack = runs_per_stack
        self.n_jobs = n_jobs  # null: one worker per core
        self.workers = 1  # of this launch: n_jobs, at most one per job
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None
        self.pool: Optional[ProcessPoolExecutor] = None
        self.sweep_stopped: Any = None  # a multiprocessing Event the workers read: set by Ctrl-C
        self.stopping = False  # Ctrl-C reached this process while workers ran stacks
        self.job_configs: Optional[JobConfigs] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    @property
    def composes_jobs(self) -> bool:
        """Read by the sweeper: this launcher composes the app's jobs itself and checks every value
        first (check_jobs); any other app's jobs Hydra's run_job composes."""
        return is_app_task(self.task_function)

    def check_jobs(self, job_overrides: Sequence[Sequence[str]]) -> None:
        assert self.hydra_context is not None and self.config is not None
        setup_globals()
        self.job_configs = JobConfigs(self.hydra_context, self.config)
        self.job_configs.check(job_overrides)

    def job_folders(self, job_overrides: Sequence[Sequence[str]]) -> Iterator[JobFolder]:
        """Each job's folder as the launch will derive it (jobs numbered from 0: the whole sweep)."""
        for idx, overrides in enumerate(job_overrides):
            yield self.job_configs.job_folder(idx, overrides)

    def _start_workers(self) -> None:
        from ._stack_worker import init_worker, interrupts_held, warm_up

        if self.workers > 1 and self.pool is None:
            context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch and threads
            self.sweep_stopped = context.Event()
            # The workers start with Ctrl-C and SIGTERM ignored (SIG_IGN survives exec) until init_worker
            # handles them: a Ctrl-C while they import would print their tracebacks.
            with interrupts_held():
                self.pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=init_worker,
                    initargs=(self.sweep_stopped, os.getpid()),
                )
                for _ in range(self.workers):  # each submission starts a worker
                    self.pool.submit(warm_up)

    def _stop_workers(self, cancel: bool = False) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=cancel)
            self.pool = None

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        with sigterm_stops():  # SIGTERM stops the sweep as Ctrl-C does, whatever the app
            return self._launch(job_overrides, initial_job_idx)

    def _launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs = list(enumerate(job_overrides, start=initial_job_idx))
        self.workers = self._workers(len(jobs))
        if not self.composes_jobs:
            from ._hydra_jobs import HydraJobs

            log.info(f"Launching {len(jobs)} jobs on {self._where()}, each through Hydra's run_job")
            assert self.hydra_context is not None and self.task_function is not None
            return self._run_hydra_jobs(HydraJobs(self.hydra_context, self.config, self.task_function), jobs)
        if self.job_configs is None:  # Hydra's basic sweeper launches without checking first
            self.check_jobs(job_overrides)
        why = ""
        if self.n_jobs is None and self.workers > 1 and not self._workers_pay(jobs):
            self.workers = 1
            why = f" (too little training to pay for workers; hydra.launcher.n_jobs={self._cores()} starts them)"
        log.info(f"Launching {len(jobs)} jobs, stacked, on {self._where()}{why}")
        self.progress = Progress(len(jobs))
        self.returns: dict[int, JobReturn] = {}
        self.job_name = str(self.config.hydra.job.name)
        try:
            self._run(self._stacks(jobs))
        finally:
            for idx, overrides in jobs:
                if idx not in self.returns:  # never started: the pool broke or the sweep was interrupted
                    self._record(idx, overrides, "not run", "not run")
            self.progress.close()
        return [self.returns.pop(idx) for idx, _ in jobs]

    def _run_hydra_jobs(self, hydra_jobs: "HydraJobs", jobs: list[tuple[int, Sequence[str]]]) -> list[JobReturn]:
        """Another app's jobs, each through Hydra's run_job: in this process as Hydra's basic
        launcher runs them, or spread over the worker processes."""
        if self.workers == 1:
            returns = []
            for idx, overrides in jobs:
                returns.append(hydra_jobs.run(idx, overrides))
                configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)  # run_job set the job's
            return returns
        import cloudpickle

        from ._hydra_jobs import init_worker, run_in_worker

        pickled = cloudpickle.dumps(replace(hydra_jobs, singleton_state=Singleton.get_state()))
        context = multiprocessing.get_context("spawn")
        initargs = (pickled, os.getpid())
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=init_worker, initargs=initargs)
        try:
            futures = [pool.submit(run_in_worker, idx, overrides) for idx, overrides in jobs]
            return [cloudpickle.loads(future.result()) for future in futures]
        finally:
            pool.shutdown(cancel_futures=True)

    def _cores(self) -> int:
        return len(os.sched_getaffinity(0))

    def _workers(self, n_jobs: int) -> int:
        """hydra.launcher.n_jobs worker processes (null: one per core), at most one per job: a
        worker costs a process start and about 0.3 GB, and a sweep's stacks are not known before
        they stream, so its jobs are the bound known up front. One worker: this process."""
        cores = self._cores()
        if self.n_jobs is not None and self.n_jobs > cores:
            log.warning(
                f"hydra.launcher.n_jobs={self.n_jobs} is more than the {cores} cores this process may use "
                "(os.sched_getaffinity); its workers share them"
            )
        return max(1, min(self.n_jobs or cores, n_jobs))

    def _where(self) -> str:
        return "this process" if self.workers == 1 else f"{self.workers} worker processes"

    def _workers_pay(self, jobs: list[tuple[int, Sequence[str]]]) -> bool:
        """Whether the sweep's training is worth starting self.workers worker processes for (n_jobs
        null). A worker imports torch, the app and W&B and starts W&B's service before it trains,
        seconds in which this process would have trained about WORKER_START_FLOP, and its stacks
        are smaller; with k workers each doing 1/k of the work, they pay once the sweep's training
        exceeds WORKER_START_FLOP k / (k - 1). The training is estimated (limits.training_flop) from
        up to 64 jobs spread over the sweep, so that a 10,000-job sweep starts at once."""
        from nesterov_landscape import limits
        from nesterov_landscape.config import ConfigError, validate_values

        sample = jobs[:: max(1, len(jobs) // 64)]
        flop = []
        for idx, overrides in sample:
            try:  # a job that is invalid fails later, when its stack forms; here it costs nothing
                config = validate_values(self.job_configs.job(idx, overrides).resolved, cuda_available=True)
            except ConfigError:
                continue
            flop.append(limits.training_flop(config))
        total = sum(flop) / len(flop) * len(jobs) if flop else 0.0
        return total > WORKER_START_FLOP * self.workers / (self.workers - 1)

    def _stack_size(self, n_jobs: int) -> int:
        return max(1, min(self.runs_per_stack, math.ceil(n_jobs / self.workers)))

    def _cuda_available(self) -> bool:
        """Whether the machine that trains has CUDA (trainer.device=cuda is refused otherwise): here, this one."""
        import torch

        return torch.cuda.is_available()

    def _stacks(self, jobs: list[tuple[int, Sequence[str]]]) -> Iterator[list["StackedJob"]]:
        """Stacks of jobs with equal signatures, streamed as they fill so the first trains at once.
        A stack holds at most runs_per_stack runs, about N / workers so that every worker gets one,
        and no more than trainer.max_memory_gb allows. Each job is validated here, once, and its
        summary read once (trainer.resume): the workers take both as they are."""
        from nesterov_landscape import job_files
        from nesterov_landscape.config import ConfigError, validate_values
        from nesterov_landscape.job import finished_summary
        from nesterov_landscape.stack import runs_within_memory, stack_signature

        from ._stack_worker import StackedJob

        size = self._stack_size(len(jobs))
        filling: dict[str, list["StackedJob"]] = defaultdict(list)
        limit: dict[str, int] = {}  # runs per stack, by signature
        cuda = self._cuda_available()
        for idx, overrides in jobs:
            job = self.job_configs.job(idx, overrides)
            try:
                config = validate_values(job.resolved, cuda_available=cuda)
            except ConfigError as error:  # this job alone fails; it leaves no folder
                log.error(f"job #{idx} ({' '.join(overrides)}): invalid config: {error}")
                self._record(idx, overrides, "failed", f"invalid config: {error}")
                continue
            seen = job_files.summary_stamp(Path(job.output_dir))  # before reading it: a later write shows
            if config.trainer.resume:
                if finished_summary(Path(job.output_dir), job.resolved):
                    self._record(idx, overrides, "completed", "already done")
                    continue
            stacked = StackedJob(**vars(job), config=config, summary_seen=seen)
            signature = stack_signature(config)
            if signature is None:
                yield [stacked]
                continue
            if signature not in limit:
                limit[signature] = min(size, runs_within_memory(config))
            filling[signature].append(stacked)
            if len(filling[signature]) == limit[signature]:
                yield filling.pop(signature)
        yield from filling.values()

    def _run(self, stacks: Iterator[list["StackedJob"]]) -> None:
        if self.workers == 1:
            self._run_here(stacks)
        else:
            self._run_in_workers(stacks)

    def _run_here(self, stacks: Iterator[list["StackedJob"]]) -> None:
        """Stacks one after another in this process; Ctrl-C stops the stack being trained."""
        from ._stack_worker import StackInterrupted, run_stack

        try:
            for stack in stacks:
                try:
                    self._collect(stack, run_stack(stack))
                except StackInterrupted as stop:
                    self._collect(stack, stop.outcomes)
                    raise
        except KeyboardInterrupt:
            raise self._interrupted() from None

    def _run_in_workers(self, stacks: Iterator[list["StackedJob"]]) -> None:
        """Stacks streamed to the worker processes. Ctrl-C or SIGTERM here only sets a flag, looked at
        between steps (an exception could strike inside the pool's own bookkeeping): the workers stop
        their stacks, start no other, and this process collects what each job recorded."""
        from ._stack_worker import run_stack

        self._start_workers()
        running: dict[Future, list["StackedJob"]] = {}
        previous = {signum: signal.signal(signum, self._stop) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            for stack in stacks:
                while len(running) >= 2 * self.workers and not self.stopping:  # bound what waits in memory
                    self._settle(running)
                if self.stopping:
                    break
                running[self.pool.submit(run_stack, stack)] = stack
            while running and not self.stopping:
                self._settle(running)
            if self.stopping:
                self._wind_down(running)
                raise self._interrupted()
        except BaseException:
            self._stop_workers(cancel=True)
            raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self._stop_workers()

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _wind_down(self, running: dict[Future, list["StackedJob"]]) -> None:
        """After Ctrl-C or SIGTERM: no stack starts (sweep_stopped), the workers' running stacks stop
        (they got the terminal's SIGINT; forwarded here as SIGINT for a signal sent to this process
        alone), stacks not yet handed over are dropped, and each job's outcome is collected."""
        self.sweep_stopped.set()
        for worker in multiprocessing.active_children():
            with contextlib.suppress(ProcessLookupError):  # it may have just ended
                os.kill(worker.pid, signal.SIGINT)
        for future in [f for f in running if f.cancel()]:
            running.pop(future)
        while running:
            self._settle(running)

    def _interrupted(self) -> KeyboardInterrupt:
        stopped = self.progress.counts["interrupted"]
        return KeyboardInterrupt(
            f"{stopped} running job{'s' * (stopped != 1)} recorded status interrupted; "
            "run the same command to finish the sweep"
        )

    def _settle(self, running: dict[Future, list["StackedJob"]]) -> None:
        """Collect the stacks that finished; a new pool replaces one that broke."""
        from ._stack_worker import StackInterrupted

        done, _ = wait(running, timeout=1, return_when=FIRST_COMPLETED)  # wakes to look at self.stopping
        broken = False
        for future in done:
            stack = running.pop(future)
            try:
                self._collect(stack, future.result())
            except StackInterrupted as stop:  # a Ctrl-C that reached the worker alone stops the sweep too
                self._collect(stack, stop.outcomes)
                self.stopping = True
            except KeyboardInterrupt:  # Ctrl-C before the stack began: its jobs did not start
                self.stopping = True
            except BrokenProcessPool:
                broken = True
                for job in stack:
                    self._record(job.idx, job.overrides, "failed", "its worker process died (killed or out of memory)")
            except Exception as error:  # the stack's own failure: its jobs failed, the sweep goes on
                for job in stack:
                    self._record(job.idx, job.overrides, "failed", f"{type(error).__name__}: {error}")
        if broken:  # every stack on the dead pool is lost; the jobs still to come get a new one
            for future, stack in list(running.items()):
                running.pop(future)
                for job in stack:
                    self._record(job.idx, job.overrides, "failed", "its worker pool broke")
            log.error("a worker process died; its jobs failed. Re-run the same command to finish them.")
            self.pool.shutdown(wait=False)
            self.pool = None
            if not self.stopping:
                self._start_workers()

    def _collect(self, stack: list["StackedJob"], outcomes: list[tuple[int, str, str]]) -> None:
        overrides = {job.idx: job.overrides for job in stack}
        for idx, status, detail in outcomes:
            if status == "failed":
                log.error(f"job #{idx} ({' '.join(overrides[idx])}) failed: {detail}")
            self._record(idx, overrides[idx], status, detail)

    def _record(self, idx: int, overrides: Sequence[str], status: str, detail: str) -> None:
        """A small JobReturn (no configs): a sweep of 10,000 jobs keeps 10,000 of them. `status` is
        how the job ended (_stack_worker.Outcome); the progress counts a completed job by its own status."""
        completed = status == "completed"
        self.returns[idx] = JobReturn(
            overrides=list(overrides),
            working_dir=os.getcwd(),
            task_name=self.job_name,
            status=JobStatus.COMPLETED if completed else JobStatus.FAILED,
            _return_value=detail if completed else RuntimeError(detail),
        )
        self.progress.done(detail if completed else status)


class BatchedSlurmLauncher(BatchedLauncher):
    """The batched launcher over SLURM through submitit: one array task per chunk of whole stacks.
    Re-running the same command skips finished jobs (trainer.resume), so it finishes only the rest."""

    def __init__(
        self,
        runs_per_stack: int = 128,
        runs_per_task: int = 1000,
        cluster: str = "slurm",
        wait: bool = True,
        **params: Any,
    ) -> None:
        super().__init__(runs_per_stack=runs_per_stack, n_jobs=1)
        if cluster not in ("slurm", "local"):
            raise ValueError(f"hydra.launcher.cluster={cluster} is not allowed; it must be slurm or local")
        if runs_per_task < 1:
            raise ValueError(f"hydra.launcher.runs_per_task={runs_per_task} is not allowed; it must be an integer >= 1")
        self.runs_per_task, self.cluster, self.wait = runs_per_task, cluster, wait
        self.params = {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in params.items()}

    def _stack_size(self, n_jobs: int) -> int:
        return min(self.runs_per_stack, self.runs_per_task)

    def _cuda_available(self) -> bool:
        """On SLURM the node that trains is not this one: trainer.device=cuda is the user's to match
        with gpus_per_node (a node without CUDA fails the job as it builds its tensors)."""
        return self.cluster == "slurm" or super()._cuda_available()

    def _where(self) -> str:
        return f"SLURM array tasks ({self.cluster})"

    def _executor(self) -> Any:
        import submitit

        params = dict(self.params)
        executor = submitit.AutoExecutor(folder=params.pop("submitit_folder"), cluster=self.cluster)
        slurm = {
            "slurm_partition": params.pop("partition"),
            "slurm_array_parallelism": params.pop("array_parallelism"),
            "slurm_setup": params.pop("setup"),
            "slurm_additional_parameters": params.pop("additional_parameters"),
            "slurm_signal_delay_s": params.pop("signal_delay_s"),
        }
        executor.update_parameters(**params, **(slurm if self.cluster == "slurm" else {}))
        return executor

    def _run_hydra_jobs(self, hydra_jobs: "HydraJobs", jobs: list[tuple[int, Sequence[str]]]) -> list[JobReturn]:
        """Another app's jobs in array tasks of up to runs_per_task jobs, each through Hydra's run_job."""
        tasks = [jobs[i : i + self.runs_per_task] for i in range(0, len(jobs), self.runs_per_task)]
        elsewhere = replace(hydra_jobs, singleton_state=Singleton.get_state())
        submitted = self._executor().map_array(elsewhere.run_elsewhere, tasks)
        if not self.wait:
            self._say_submitted(submitted, len(jobs))
            return [self._submitted_return(overrides) for _, overrides in jobs]
        return [job_return for task in submitted for job_return in task.result()]

    def _say_submitted(self, submitted: list[Any], n_jobs: int) -> None:
        """hydra.launcher.wait=false: how to follow the tasks, and how to finish what they leave."""
        array = submitted[0].job_id.split("_")[0]
        log.info(
            f"submitted {n_jobs} jobs in {len(submitted)} array tasks (SLURM job {array}) and returning "
            f"(hydra.launcher.wait=false): follow them with `squeue -j {array}`; each job writes its folder "
            f"under {self.config.hydra.sweep.dir} as it finishes. Once they have ended, run the same command: "
            "it runs only the jobs that did not finish"
        )

    def _submitted_return(self, overrides: Sequence[str]) -> JobReturn:
        """A job handed to SLURM and not waited for: launched, which is all Hydra asks of a launcher."""
        return JobReturn(
            overrides=list(overrides),
            working_dir=os.getcwd(),
            task_name=str(self.config.hydra.job.name),
            status=JobStatus.COMPLETED,
            _return_value="submitted",
        )

    def _run(self, stacks: Iterator[list["StackedJob"]]) -> None:
        from ._stack_worker import ArrayTask

        tasks: list[list[list["StackedJob"]]] = []
        for stack in stacks:
            if not tasks or sum(map(len, tasks[-1])) + len(stack) > self.runs_per_task:
                tasks.append([])
            tasks[-1].append(stack)
        if not tasks:
            return
        submitted = self._executor().map_array(ArrayTask(), tasks)
        if not self.wait:
            self._say_submitted(submitted, sum(len(stack) for task in tasks for stack in task))
            for task in tasks:
                for job in (job for stack in task for job in stack):
                    self._record(job.idx, job.overrides, "completed", "submitted")
            return
        log.info(f"submitted {len(submitted)} array tasks, job {submitted[0].job_id.split('_')[0]}")
        for task, stacks_of_task in zip(submitted, tasks):
            self._collect_task(task, [job for stack in stacks_of_task for job in stack])

    def _collect_task(self, task: Any, jobs: list["StackedJob"]) -> None:
        """The outcomes of a task's jobs: its result, or, where it has none (cancelled, killed, out of
        time or memory, failed), what each job wrote in its folder: a job finished before the task
        died is completed, not failed. A task that ended without a result is not waited for
        (submitit would wait 15 s for a result file that a slow file system might show late)."""
        from ._stack_worker import written_outcome

        self._wait_for(task)
        state = task.state.split()[0]  # sacct's, e.g. "CANCELLED by 0"; UNKNOWN where sacct does not answer
        if task.paths.result_pickle.exists() or state == "COMPLETED":
            try:
                self._collect(jobs, task.result())
                return
            except Exception as error:  # the task failed: what its jobs wrote says how far it came
                lines = str(error).strip().splitlines()
                why = f"array task {task.job_id} failed: {lines[-1] if lines else type(error).__name__}"
        else:
            why = f"array task {task.job_id} ended{'' if state == 'UNKNOWN' else ' ' + state}, without a result"
        for job in jobs:
            if job.idx not in self.returns:
                self._record(job.idx, job.overrides, *written_outcome(job, why))

    def _wait_for(self, task: Any) -> None:
        """Until the task has ended. submitit learns that from sacct, or from its result file: on a
        cluster without accounting sacct does not answer, the state stays UNKNOWN, and a task that
        ended without a result would be waited for for ever. There squeue, which the scheduler
        itself answers, says whether the task is still queued or running."""
        asked = time.monotonic()
        while not task.done():
            if self.cluster == "slurm" and time.monotonic() - asked > SQUEUE_EVERY_S and task.state == "UNKNOWN":
                if not _queued(task.job_id):
                    return
                asked = time.monotonic()
            time.sleep(1)  # as submitit's own wait


# The training a worker's start costs, in floating-point operations: measured on this project's
# 2-core machines (docs/sweeps.md), the paper preset's 5 seeds x 3,000 epochs (1.1e11) took as long
# on two workers as in one process, and 8 x 4,000 (2.3e11) 1.3x less time on two
WORKER_START_FLOP = 7.5e10

SQUEUE_EVERY_S = 5  # where sacct does not answer, how often _wait_for asks squeue instead

# submitit's states of a task that has not ended (sacct's and squeue's names)
NOT_ENDED = {"READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED", "CONFIGURING"}


def _queued(job_id: str) -> bool:
    """Whether SLURM still lists the task as queued or running: squeue lists an ended task with no
    state, and calls its id invalid a few minutes (MinJobAge) later; any other error says nothing."""
    import subprocess

    answer = subprocess.run(["squeue", "-h", "-o", "%T", "-j", job_id], capture_output=True, text=True)
    if answer.returncode != 0:
        return "Invalid job id" not in answer.stderr
    return answer.stdout.strip() in NOT_ENDED
