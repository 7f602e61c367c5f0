"""Every job of a sweep in a folder of its own that it may write, checked before any job runs (and
before Hydra writes a job's .hydra/ files): two jobs that resolve to one folder (say
hydra.sweep.subdir=lr${optimizer.lr} over seeds) would each wipe the other's results, and a folder
that holds files this tool did not write, or a finished run of another config, is refused unless
the job sets trainer.overwrite=true (nesterov_landscape.job_files says what counts).

The batched launchers know each job's folder from their own derivation (job_configs.py); for Hydra's
launchers the sweeper composes each job as they will (which is also Hydra's own check of the values).
A job's config is resolved only where its folder exists: a new sweep's check costs a stat per job."""

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write


class SweepRefused(Exception):
    """A sweep that must not start; the message is one line."""


@dataclass
class JobFolder:
    idx: int
    overrides: Sequence[str]
    folder: str  # absolute
    subdir: str  # hydra.sweep.subdir as given (unresolved), for messages
    log_name: str  # the job's log file, <hydra.job.name>.log
    resolved: Callable[[], dict[str, Any]]  # the job's resolved config (summary.json's), derived when asked


def check_job_folders(jobs: Iterable[JobFolder]) -> None:
    """Raise SweepRefused at the first two jobs that resolve to one folder, or the first job whose
    folder it may not write."""
    owners: dict[str, tuple[int, Sequence[str]]] = {}  # folder -> its job (not the JobFolder: it holds a config)
    for job in jobs:
        # the real path: two names that lead to one folder (through a link) are one folder
        idx, overrides = owners.setdefault(os.path.realpath(job.folder), (job.idx, job.overrides))
        if idx != job.idx:
            raise SweepRefused(
                f"jobs #{idx} ({' '.join(overrides)}) and #{job.idx} ({' '.join(job.overrides)}) "
                f"both resolve to the folder {job.folder}, where each would replace the other's results: "
                f"hydra.sweep.subdir={job.subdir} must name a different folder for every job "
                "(keep ${hydra.job.num} in it, say); nothing was run"
            )
        problem = _folder_problem(job)
        if problem:
            raise SweepRefused(
                f"job #{job.idx} ({' '.join(job.overrides)}): {problem}; set trainer.overwrite=true to write there "
                "anyway; nothing was run"
            )


def _folder_problem(job: JobFolder) -> str | None:
    from nesterov_landscape import job_files  # the app, not at plugin discovery

    if not os.path.lexists(job.folder):  # a new folder (lexists: a dangling link is in the way too)
        return None
    resolved = job.resolved()
    return job_files.folder_problem(Path(job.folder), resolved, job.log_name, resolved["trainer"]["overwrite"])


def launcher_job_id(launcher: Any, job_name: str, idx: int) -> str:
    """hydra.job.id as the launcher will set it: joblib's is "<job name>_<n>"; submitit's is the
    cluster's job id, unknown before submission, so a placeholder that names no folder on disk (a
    folder named by it is new, one per job); the basic launcher's is n."""
    module = type(launcher).__module__
    if module.startswith("hydra_plugins.hydra_joblib_launcher"):
        return f"{job_name}_{idx}"
    if module.startswith("hydra_plugins.hydra_submitit_launcher"):
        return f"<submitit job id of job {idx}>"
    return str(idx)


def composed_job_folders(
    loader: Any, master: DictConfig, job_overrides: Sequence[Sequence[str]], job_id: Callable[[int], str]
) -> Iterator[JobFolder]:
    """Each job's folder as Hydra's launchers and run_job make it: its composition (Hydra's error
    for a bad value), job number and id, then hydra.sweep.dir/hydra.sweep.subdir resolved."""
    saved = HydraConfig.instance().cfg
    try:
        for idx, overrides in enumerate(job_overrides):
            config = loader.load_sweep_config(master, list(overrides))
            with open_dict(config):
                config.hydra.job.num, config.hydra.job.id = idx, job_id(idx)
            HydraConfig.instance().set_config(config)
            folder = os.path.abspath(os.path.join(str(config.hydra.sweep.dir), str(config.hydra.sweep.subdir)))
            with read_write(config.hydra):
                config.hydra.runtime.output_dir = folder  # as run_job sets it, for the job's own ${hydra:...}
            subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False)["subdir"]
            log_name = f"{config.hydra.job.name}.log"
            yield JobFolder(idx, overrides, folder, subdir, log_name, partial(_resolved, config))
    finally:
        HydraConfig.instance().cfg = saved


def _resolved(config: DictConfig) -> dict[str, Any]:
    """The job's config without its Hydra node, resolved as the job resolves it (summary.json's)."""
    HydraConfig.instance().set_config(config)
    task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    return OmegaConf.to_container(task, resolve=True)
