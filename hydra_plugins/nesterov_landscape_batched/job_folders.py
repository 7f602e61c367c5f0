"""Every job of a sweep in a folder of its own, checked before any job runs: two jobs that resolve to
one folder (say hydra.sweep.subdir=lr${optimizer.lr} over seeds) would each wipe the other's results.

The batched launchers know each job's folder from their own derivation (job_configs.py); for Hydra's
launchers the sweeper composes each job as they will (which is also Hydra's own check of the values)."""

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict


class SweepRefused(Exception):
    """A sweep that must not start; the message is one line."""


@dataclass
class JobFolder:
    idx: int
    overrides: Sequence[str]
    folder: str  # absolute
    subdir: str  # hydra.sweep.subdir as given (unresolved), for messages


def check_job_folders(jobs: Iterable[JobFolder]) -> None:
    """Raise SweepRefused at the first two jobs that resolve to the same folder."""
    owners: dict[str, JobFolder] = {}
    for job in jobs:
        first = owners.setdefault(job.folder, job)
        if first is not job:
            raise SweepRefused(
                f"jobs #{first.idx} ({' '.join(first.overrides)}) and #{job.idx} ({' '.join(job.overrides)}) "
                f"both resolve to the folder {job.folder}, where each would replace the other's results: "
                f"hydra.sweep.subdir={job.subdir} must name a different folder for every job "
                "(keep ${hydra.job.num} in it, say); nothing was run"
            )


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
            subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False)["subdir"]
            yield JobFolder(idx, overrides, folder, subdir)
    finally:
        HydraConfig.instance().cfg = saved
