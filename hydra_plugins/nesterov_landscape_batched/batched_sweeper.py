"""`hydra/sweeper=batched` (the app's default, with every launcher): Hydra's basic sweeper, with
what must hold before any job runs checked before anything is written, and failed jobs reported in
one line at the end instead of Hydra's traceback of the first.

Before anything is written: every job's values (a launcher that composes jobs itself checks them
its own way: Hydra's check composes every job, about 0.25 s each, and the batched launchers compose
once per set of group choices and apply each distinct value once), every job's folder (two jobs in
one folder would replace each other's results; job_folders.py), and the sweep's folder itself
(hydra.sweep.dir, with multirun.yaml). Refusals are one line and exit code 2."""

import logging
import sys
from dataclasses import dataclass
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import Iterator, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

# The module, not its names: Hydra's plugin scan executes every module here again, so a class
# imported by name before the scan would not be the one raised after it.
from . import job_folders

log = logging.getLogger(__name__)


@dataclass
class BatchedSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.nesterov_landscape_batched.batched_sweeper.BatchedSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="batched", node=BatchedSweeperConf, provider="nesterov_landscape"
)


class BatchedSweeper(BasicSweeper):
    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        batches = self.split_arguments(parser.parse_overrides([*self._parse_config(), *arguments]), self.max_batch_size)
        jobs = [job for batch in batches for job in batch]
        try:
            self._check(jobs)
            if len(self.invalid) < len(jobs):  # a sweep none of whose jobs can run leaves an earlier one's record
                self._write_sweep_folder()
        except job_folders.SweepRefused as refusal:
            _refuse(str(refusal))
        except ConfigCompositionException as error:  # a value or choice that Hydra rejects
            _refuse(f"{_one_line(error)}; nothing was run")
        returns, first = [], 0
        for batch in batches:
            returns.append(self._launch(batch, first))
            first += len(batch)
        _report_failures([r for batch in returns for r in batch])
        return returns

    def _check(self, jobs: Sequence[Sequence[str]]) -> None:
        self.invalid: dict[int, str] = {}  # job number -> why its values are not allowed
        if getattr(self.launcher, "composes_jobs", False):  # it fails invalid jobs itself, leaving no folder
            self.launcher.check_jobs(jobs)
            job_folders.check_job_folders(self.launcher.job_folders(jobs))
        else:
            job_id = partial(job_folders.launcher_job_id, self.launcher, str(self.config.hydra.job.name))
            composed = job_folders.composed_job_folders(self.hydra_context.config_loader, self.config, jobs, job_id)
            job_folders.check_job_folders(self._validated(composed))

    def _validated(self, jobs: Iterator[job_folders.JobFolder]) -> Iterator[job_folders.JobFolder]:
        """The valid jobs, each checked as the job checks itself (config.validate_values; CUDA's
        presence, which needs torch, is left to the job). Hydra's launchers make a job's folder
        before the job can refuse it, so an invalid job is not launched at all."""
        from nesterov_landscape.config import ConfigError, validate_values

        for job in jobs:
            try:
                validate_values(job.resolved(), cuda_available=True)
            except (ConfigError, OmegaConfBaseException) as error:  # OmegaConf's: an interpolation that fails
                self.invalid[job.idx] = str(error).splitlines()[0]
                continue
            yield job

    def _launch(self, batch: Sequence[Sequence[str]], first: int) -> list[JobReturn]:
        """The batch's jobs by the launcher, in runs of valid jobs (keeping their numbers); each
        invalid one fails here, with one line, as the batched launchers fail theirs."""
        returns: list[JobReturn] = []
        for valid, run in groupby(enumerate(batch, start=first), key=lambda job: job[0] not in self.invalid):
            run = list(run)
            if valid:
                returns += self.launcher.launch([overrides for _, overrides in run], initial_job_idx=run[0][0])
                continue
            for idx, overrides in run:
                log.error(f"job #{idx} ({' '.join(overrides)}): invalid config: {self.invalid[idx]}")
                error = RuntimeError(f"invalid config: {self.invalid[idx]}")
                returns.append(JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=error))
        return returns

    def _write_sweep_folder(self) -> None:
        """hydra.sweep.dir with multirun.yaml, as Hydra's sweep writes them, or one line saying why not
        (read-only, another user's, a name too long)."""
        folder = Path(str(self.config.hydra.sweep.dir))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, folder / "multirun.yaml")
        except OSError as error:
            raise job_folders.SweepRefused(
                f"cannot write the sweep's folder hydra.sweep.dir={folder}: {error.strerror or error}; nothing was run"
            ) from None


def _one_line(error: ConfigCompositionException) -> str:
    """Hydra's message in one line: its first, with the options of a missing config-group choice or
    the first line of OmegaConf's reason."""
    first = str(error).splitlines()[0]
    options = getattr(error, "options", None)
    if options:
        return f"{first}; allowed: {', '.join(options)}"
    return f"{first} ({str(error.__cause__).splitlines()[0]})" if error.__cause__ else first


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _report_failures(returns: list[JobReturn]) -> None:
    """Failed jobs logged their own errors as they failed; the sweep ends with one line and exit
    code 1 (Hydra would raise the first one's error again, with its traceback)."""
    failed = [(idx, r) for idx, r in enumerate(returns) if r.status == JobStatus.FAILED]
    if not failed:
        return
    idx, first = failed[0]
    error = first._return_value
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    more = f" and {len(failed) - 1} more (see above)" if len(failed) > 1 else ""
    print(
        f"error: {len(failed)} of {len(returns)} jobs failed: #{idx} ({' '.join(first.overrides)}): {reason}{more}",
        file=sys.stderr,
    )
    raise SystemExit(1)
