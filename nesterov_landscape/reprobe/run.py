"""Re-probing finished jobs: each job's problem rebuilt from its stored config, its weights loaded and
checked, its probes run, and the results written to <job>/reprobe/<name>/, a folder of the tool's
own (manifest, claim, summary.json written last, one W&B run), never over the job's files.

A probe whose settings are the job's own runs as the job ran it (stacked with other runs, or
alone: summary.json's stacked_probes), so that it gives the job's numbers bit for bit; every other
probe runs stacked wherever the batched launcher would stack it: jobs of equal stack signatures
whose probe configs are equal."""

import contextlib
import dataclasses
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from .. import job_claim, job_files, weights
from ..config import Config, validate_values
from ..job import TRAINING_KEYS, finished_summary, probe_job, recorded_run, versions
from ..job_probes import ProbeRecords
from ..numerics.training import TrainResult
from ..problem import Problem, setup_problem
from ..stack import probe_weights, runs_within_memory, stack_signature
from .overrides import Overrides

log = logging.getLogger(__name__)

LOG_NAME = "reprobe.log"
JOB_TYPE = "probe"  # the W&B job type of a re-probe's run, in its job's group
COMPARED_VERSIONS = ("torch", "cpu")  # what changes float32 numbers in their last bits


class NotReprobed(ValueError):
    """A job that cannot be re-probed; the message is one line (the caller names the job's folder)."""


@dataclass
class Reprobe:
    """One job's re-probe, prepared and checked before any work."""

    job: Path
    name: str
    overrides: Overrides
    summary: dict[str, Any]  # the job's
    config: Config  # the job's, with the overrides
    resolved: dict[str, Any]
    problem: Problem
    stored: weights.Stored | None  # None for a diverged job: nothing to probe
    alone: frozenset[str]  # probes to run alone, as the job ran them with the same settings

    @property
    def folder(self) -> Path:
        return self.job / job_files.REPROBE_DIR / self.name

    @property
    def weights_sha256(self) -> str | None:
        return self.stored.sha256 if self.stored else None

    def version_note(self) -> str | None:
        """Where this machine's torch or CPU differs from the job's: float32 numbers may then differ."""
        theirs = self.summary.get("versions") or {}
        differing = [k for k in COMPARED_VERSIONS if theirs.get(k) != versions()[k]]
        if not differing:
            return None
        shown = ", ".join(f"{k} {theirs.get(k)!r} (here {versions()[k]!r})" for k in differing)
        return f"trained with {shown}: float32 numbers may differ from the job's in their last bits"


def prepare(job: Path, name: str, overrides: Overrides, cuda_available: bool) -> Reprobe:
    """The job's re-probe, or NotReprobed (or ConfigError, OverrideError, WeightsError) in one line."""
    summary = job_files.read_summary(job)
    if summary is None or not isinstance(summary.get("config"), dict):
        raise NotReprobed("not a job folder: no readable summary.json holding a config")
    if not job_files.finished(summary):
        raise NotReprobed(f"not a finished job (status {summary.get('status')}); run its command again to finish it")
    resolved = overrides.apply(summary["config"])
    config = validate_values(resolved, cuda_available)
    torch.set_num_threads(config.trainer.threads)  # the teacher's labels' last bits depend on the threads
    problem = setup_problem(config)
    stored = weights.load(job, problem) if summary["status"] == "completed" else None
    own, stacked = summary["config"].get("probe") or {}, summary.get("stacked_probes") or []
    alone = frozenset(n for n in config.probe if own.get(n) == resolved["probe"][n] and n not in stacked)
    return Reprobe(job, name, overrides, summary, config, resolved, problem, stored, alone)


def done(reprobe: Reprobe) -> dict[str, Any] | None:
    """The finished re-probe of the same config and the same weights in its folder (trainer.resume)."""
    if not reprobe.config.trainer.resume:
        return None
    summary = finished_summary(reprobe.folder, reprobe.resolved)
    probed = (summary or {}).get("reprobe") or {}
    return summary if summary is not None and probed.get("weights_sha256") == reprobe.weights_sha256 else None


def stale(reprobe: Reprobe) -> bool:
    """The folder holds a finished re-probe of other weights: its job was trained again since, so the
    re-probe describes weights that are gone and is replaced whatever its config."""
    summary = job_files.read_summary(reprobe.folder)
    probed = (summary or {}).get("reprobe") or {}
    return job_files.finished(summary) and probed.get("weights_sha256") != reprobe.weights_sha256


def stack_key(reprobe: Reprobe) -> str | None:
    """Re-probes with equal keys run their stacked probes as one computation; None: alone."""
    signature = stack_signature(reprobe.config) if reprobe.stored is not None else None
    if signature is None:
        return None
    probes = {n: dataclasses.asdict(c) for n, c in reprobe.config.probe.items() if n not in reprobe.alone}
    return json.dumps([signature, probes], sort_keys=True, default=str)


def stacks(reprobes: Sequence[Reprobe], runs_per_stack: int) -> Iterator[list[Reprobe]]:
    """Re-probes grouped by stack_key in their order, as the batched launcher groups jobs: at most
    runs_per_stack and what trainer.max_memory_gb allows."""
    filling: dict[str, list[Reprobe]] = defaultdict(list)
    limit: dict[str, int] = {}
    for reprobe in reprobes:
        key = stack_key(reprobe)
        if key is None:
            yield [reprobe]
            continue
        limit.setdefault(key, min(runs_per_stack, runs_within_memory(reprobe.config)))
        filling[key].append(reprobe)
        if len(filling[key]) == limit[key]:
            yield filling.pop(key)
    yield from filling.values()


def trained(reprobe: Reprobe) -> TrainResult | None:
    """The job's weights as its training left them (None for a diverged job)."""
    stored = reprobe.stored
    return None if stored is None else TrainResult(stored.weights.to(reprobe.problem.device), "completed", stored.epoch)


def stacked_results(stack: list[Reprobe]) -> list[TrainResult | None]:
    """Each re-probe's trained weights, with the probes its stack computes for all at once."""
    results = [trained(r) for r in stack]
    if stack_key(stack[0]) is not None:
        stacked = [{n: c for n, c in r.config.probe.items() if n not in r.alone} for r in stack]
        configs = [dataclasses.replace(r.config, probe=probes) for r, probes in zip(stack, stacked)]
        probe_weights(configs, [r.problem for r in stack], results)
    return results


def reprobe_job(reprobe: Reprobe, result: TrainResult | None) -> str:
    """Write one re-probe's folder; returns its status ("skipped" where another process holds it)."""
    try:
        claim = job_claim.acquire(reprobe.folder)
    except job_claim.FolderClaimed as error:
        log.warning("%s skipped: %s, which re-probes it", reprobe.job, error)
        return "skipped"
    try:
        if done(reprobe) is not None:  # finished by another process since it was prepared
            return "already done"
        overwrite = reprobe.config.trainer.overwrite or stale(reprobe)
        problem = job_files.folder_problem(reprobe.folder, reprobe.resolved, LOG_NAME, overwrite)
        if problem:
            raise NotReprobed(f"{problem}; choose another --name")
        job_files.record(reprobe.folder, LOG_NAME)
        job = reprobe.summary.get("job") or {}
        group = reprobe.config.logger.group or (reprobe.summary.get("wandb") or {}).get("group")
        name = f"{job.get('override_dirname') or reprobe.job.resolve().name}/{job_files.REPROBE_DIR}/{reprobe.name}"
        with logged_to(reprobe.folder / LOG_NAME):
            if (note := reprobe.version_note()) is not None:
                log.info(note)
            summary = recorded_run(
                reprobe.folder,
                reprobe.config,
                reprobe.resolved,
                job,
                group,
                name,
                JOB_TYPE,
                lambda wandb_run: reprobe_results(reprobe, result, wandb_run),
            )
    finally:
        claim.release()
    return summary["status"]


def reprobe_results(reprobe: Reprobe, result: TrainResult | None, wandb_run: Any) -> dict[str, Any]:
    """The summary's results: the job's training record as it is, and the probes' entries."""
    out = {k: v for k, v in reprobe.summary.items() if k in TRAINING_KEYS or k.startswith("final_")}
    out["reprobe"] = {
        "name": reprobe.name,
        "job": str(reprobe.job.resolve()),
        "overrides": list(reprobe.overrides.lines),
        "weights_sha256": reprobe.weights_sha256,
    }
    if result is not None:
        out |= probe_job(reprobe.problem, result, wandb_run, reprobe.folder, ProbeRecords())
    return out


@contextlib.contextmanager
def logged_to(path: Path):
    """The package's log lines, INFO and up, appended to the re-probe's log file meanwhile."""
    logger = logging.getLogger("nesterov_landscape")
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
