"""Read job folders into one table of runs plus per-run histories and landscapes.

The job's files are the source of truth. A job with no summary.json is `missing` (still running,
or killed); so is a finished one whose result files were deleted since. A job stopped by Ctrl-C or
by its sweep's death recorded `interrupted` (re-running finishes it) and counts as such (job_status).
A file that cannot be read, or holds a value of the wrong kind (a word where a number belongs), is
reported with its path, and its job counts as `missing`; one job's files never stop the analysis.
Only jobs with a result (completed or diverged) keep their history and landscape: a job still
running may be writing them.

A sweep's multirun.yaml says which jobs it asks for: a folder it does not ask for is left from an
earlier sweep into the same folder and is left out; a job it asks for without a folder is
`missing`. A sweep folder or multirun.yaml that cannot be read stops the analysis (UnreadableSweep).
"""

import hashlib
import json
import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException

from nesterov_landscape.job_files import REPROBE_DIR, WEIGHTS_FILE  # no torch: the job's own names
from nesterov_landscape.summary_schema import (  # no torch: the job's own schema
    DESCRIPTION,
    RADII_CONFIG_KEY,
    RESULTS,
    entry_error,
)

STATUSES = ("completed", "diverged", "failed", "interrupted", "missing")
UNFINISHED = ("running", "skipped")  # statuses that count as missing: re-running finishes them
NOT_METRICS = set(DESCRIPTION)  # summary.json entries that describe the job rather than measure it
# config entries chosen as a list (probe=[gradient_line,hessian]): a mapping from each chosen name
# to its settings. The selection itself is the config key `<entry>.name`, so that it can vary.
LIST_CHOICES = ("probe",)
# the sweepers whose jobs BasicSweeper.split_arguments lists (the app's default, batched, is one)
BASIC_SWEEPERS = (
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
    "hydra_plugins.nesterov_landscape_batched.batched_sweeper.BatchedSweeper",
)


def job_status(recorded: str | None) -> str:
    """The status a job counts as, from the one it recorded (summary.json's, or its W&B run's):
    one rule for both sources. None (nothing recorded: still running, or killed) is missing."""
    if recorded in STATUSES:
        return recorded
    return "missing" if recorded is None or recorded in UNFINISHED else "failed"


@dataclass
class Sweep:
    runs: pd.DataFrame  # one row per job: run_id, job_dir, status, config keys (dotted), metrics
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)  # run_id -> epoch, loss, grad_norm
    landscapes: dict[str, pd.DataFrame] = field(default_factory=dict)  # run_id -> t, phi, phi_dd, mu, ...
    problems: list[str] = field(default_factory=list)  # human-readable, with paths
    config_keys: list[str] = field(default_factory=list)


@dataclass
class Job:
    """One job folder as read: its row of the runs table, and what only the figures need."""

    row: dict[str, Any]  # job_dir, status, config keys (dotted), metrics
    config_keys: list[str]
    history: pd.DataFrame | None = None
    landscape: pd.DataFrame | None = None
    problems: list[str] = field(default_factory=list)
    overrides: frozenset[str] | None = None  # .hydra/overrides.yaml; None if unreadable


def choice_label(names: list[str]) -> str:
    """A list choice as one value: probe=[hessian,gradient_line] -> gradient_line+hessian, [] -> none.
    Sorted: the same probes run whatever their order."""
    return "+".join(sorted(map(str, names))) or "none"


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"width": 35}} -> {"model.width": 35}; lists become their string form; a list
    choice also gives its selection, {"probe": {"hessian": {...}}} -> {"probe.name": "hessian", ...}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if name in LIST_CHOICES and isinstance(value, dict):
            out[f"{name}.name"] = choice_label(list(value))
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value) if isinstance(value, list) else value
    return out


class UnreadableSweep(ValueError):
    """A sweep folder or multirun.yaml that cannot be read: the whole analysis stops, naming it."""


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Job folders under a sweep (or the folder itself for a single job): those holding .hydra/.
    FileNotFoundError if there is no such folder, UnreadableSweep if it cannot be listed."""
    try:
        if (sweep_dir / ".hydra").is_dir():
            return [sweep_dir]
        with os.scandir(sweep_dir) as entries:
            folders = [Path(entry.path) for entry in entries if entry.is_dir()]
    except FileNotFoundError:
        raise FileNotFoundError(f"no such sweep folder: {sweep_dir}") from None
    except OSError as error:  # no permission, not a folder: the input's fault, named as such
        raise UnreadableSweep(f"cannot read the sweep folder {sweep_dir}: {error.strerror or error}") from None
    jobs = [folder for folder in folders if os.path.isdir(folder / ".hydra")]
    return sorted(jobs, key=lambda p: (len(p.name), p.name))


class InvalidFile(ValueError):
    """A job file that cannot be read or holds a wrong value; the message names the file."""


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def _read_csv(path: Path, required: list[str]) -> pd.DataFrame | None:
    """The CSV with every column numeric (empty cells are NaN), None if absent; else InvalidFile."""
    if not path.exists():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InvalidFile(f"unreadable {path}: {_first_line(error)}") from None
    if not set(required) <= set(frame.columns) or frame.empty:
        raise InvalidFile(f"unreadable {path}: expected columns {', '.join(required)} and at least one row")
    for column in frame.columns:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = numbers.isna() & frame[column].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise InvalidFile(
                f"invalid value {frame[column].iloc[row]!r} in column {column} of {path} (line {row + 2}): not a number"
            )
        frame[column] = numbers
    return frame


def _is_inside(name: Any) -> bool:
    """A path relative to the job folder that stays in it (summary.json's `files`)."""
    return isinstance(name, str) and bool(name) and not Path(name).is_absolute() and ".." not in Path(name).parts


def _read_summary(path: Path) -> dict[str, Any] | None:
    """summary.json checked: a status, a config that is a mapping, numbers where numbers belong."""
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidFile(f"unreadable {path}: {_first_line(error)}") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("status"), str):
        raise InvalidFile(f"unreadable {path}: not a job summary (an object with a status)")
    if not isinstance(summary.get("config", {}), dict):
        raise InvalidFile(f"invalid config in {path}: not a mapping")
    files = summary.get("files", [])
    if not isinstance(files, list) or not all(map(_is_inside, files)):
        raise InvalidFile(f"invalid files in {path}: expected a list of paths relative to the job folder")
    for key, value in summary.items():
        if (expected := entry_error(key, value)) is not None:
            raise InvalidFile(f"invalid value {value!r} for {key} in {path}: {expected}")
    return summary


def _read_config(job_dir: Path, summary: dict[str, Any] | None, problems: list[str]) -> dict[str, Any]:
    """The job's config: from its summary, else from .hydra/config.yaml; {} if neither is readable."""
    if summary and "config" in summary:
        return summary["config"]
    path = job_dir / ".hydra" / "config.yaml"
    try:
        config = _load_yaml(path)
    except (OSError, ValueError, yaml.YAMLError) as error:
        problems.append(f"unreadable {path}: {_first_line(error)}")
        return {}
    if not isinstance(config, dict):
        problems.append(f"unreadable {path}: not a mapping of config keys")
        return {}
    return config


def _read_overrides(job_dir: Path, problems: list[str]) -> frozenset[str] | None:
    """The job's overrides as Hydra wrote them, which say which job of its sweep it is."""
    path = job_dir / ".hydra" / "overrides.yaml"
    try:
        overrides = _load_yaml(path)
    except (OSError, ValueError, yaml.YAMLError) as error:
        problems.append(f"unreadable {path}: {_first_line(error)}")
        return None
    if not isinstance(overrides, list):
        problems.append(f"unreadable {path}: not a list of overrides")
        return None
    return frozenset(map(str, overrides))


def gone_result_files(job_dir: Path, summary: dict[str, Any]) -> list[str]:
    """The result files that the job wrote (summary.json's `files`; a summary from before that key:
    history.csv) and that are no longer there."""
    return [name for name in summary.get("files", ["history.csv"]) if not (job_dir / name).exists()]


def read_job(job_dir: Path, reprobe: str | None = None) -> Job:
    """One job's row (config flattened, summary metrics), its config keys, history, landscape, problems,
    overrides. Never raises: a job whose files are unreadable, invalid or gone is `missing`, with the reason.
    With `reprobe`, the summary and landscape are those of its re-probe of that name (<job>/reprobe/<name>/)."""
    problems: list[str] = []
    row: dict[str, Any] = {"job_dir": str(job_dir)}
    contents: dict[str, Any] = {}
    results = job_dir / REPROBE_DIR / reprobe if reprobe else job_dir

    def listed(name: str) -> bool:
        """A result file the job wrote: one its summary does not list is someone else's (a folder
        written with trainer.overwrite), not this job's result."""
        return name in (contents.get("summary") or {}).get("files", [name])

    readers = {
        "summary": lambda: _read_summary(results / "summary.json"),
        "history": lambda: _read_csv(job_dir / "history.csv", ["epoch", "loss"]),
        "landscape": lambda: (
            _read_csv(results / "landscape.csv", ["t", "phi", "phi_dd", "mu"]) if listed("landscape.csv") else None
        ),
    }
    for name, read in readers.items():
        try:
            contents[name] = read()
        except InvalidFile as error:
            problems.append(f"{error}; the job counts as missing")
        except Exception as error:  # whatever else a damaged folder holds: this job only, never the analysis
            problems.append(f"unreadable {name} of {job_dir}: {type(error).__name__}: {_first_line(error)}")
    if problems:  # one bad file makes the whole job missing: its other files may be as stale
        row["error"] = problems[0]
        contents = {}
    summary = contents.get("summary")
    flat_config = flatten(_read_config(job_dir, summary, problems))
    row.update(flat_config)
    if summary is None:
        row["status"] = "missing"
    else:
        status = summary["status"]
        row["status"] = job_status(status)
        row["error"] = summary.get("error")
        # the job's W&B group: the analysis run joins it (multirun_analysis.wandb_log)
        row["wandb_group"] = (summary.get("wandb") or {}).get("group")
        for key, value in summary.items():
            if key not in NOT_METRICS and (value is None or isinstance(value, (int, float, str))):
                row[key] = math.nan if value is None else value
        if row["status"] in RESULTS and (gone := gone_result_files(results, summary)):
            row["error"] = f"{results} is {status} but files it wrote are gone ({', '.join(gone)}); counted as missing"
            row["status"] = "missing"
            problems.append(row["error"])
        elif reprobe and row["status"] in RESULTS and not same_weights(job_dir, summary):
            row["error"] = f"{results} probed weights that {job_dir} no longer holds (trained again since); re-probe it"
            row["status"] = "missing"
            problems.append(row["error"])
    job = Job(row, list(flat_config), problems=problems, overrides=_read_overrides(job_dir, problems))
    if row["status"] in RESULTS:  # a job without a result may be writing its files right now
        job.history, job.landscape = contents.get("history"), contents.get("landscape")
    return job


def same_weights(job_dir: Path, reprobe_summary: dict[str, Any]) -> bool:
    """The job still holds the weights its re-probe probed (none: a diverged job's)."""
    probed = (reprobe_summary.get("reprobe") or {}).get("weights_sha256")
    try:
        held = hashlib.sha256((job_dir / WEIGHTS_FILE).read_bytes()).hexdigest()
    except FileNotFoundError:
        held = None
    return probed == held


def _load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=yaml.CSafeLoader)


def _entry(tree: Any, dotted: str) -> Any:
    """tree["a"]["b"] for "a.b"; None where a level is missing or not a mapping."""
    for key in dotted.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def asked_jobs(sweep_dir: Path, problems: list[str]) -> list[list[str]] | None:
    """The override lists of the jobs that the sweep's multirun.yaml asks for, as Hydra's BasicSweeper
    expands them: the config's hydra.sweeper.params (a preset's axes) first, the command line's
    overrides replacing them by key. None where that cannot be known, and every job folder counts: no
    multirun.yaml (a single job, or folders gathered by hand), another sweeper, a sweep that needs
    Hydra's config loader (glob). UnreadableSweep for a multirun.yaml that is no Hydra sweep's."""
    path = sweep_dir / "multirun.yaml"
    try:
        config = _load_yaml(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise UnreadableSweep(f"cannot read {path}: {error.strerror or error}") from None
    except (ValueError, yaml.YAMLError) as error:  # UnicodeDecodeError is a ValueError
        raise UnreadableSweep(f"unreadable {path}: {_first_line(error)}") from None
    task, sweeper = _entry(config, "hydra.overrides.task"), _entry(config, "hydra.sweeper") or {}
    params = _entry(sweeper, "params") or {}
    overrides_listed = isinstance(task, list) and all(isinstance(o, str) for o in task)
    if not (overrides_listed and isinstance(sweeper, dict) and isinstance(params, dict)):
        raise UnreadableSweep(
            f"invalid {path}: expected Hydra's multirun config, with hydra.overrides.task a list of overrides "
            "and hydra.sweeper a mapping whose params are a mapping or null"
        )
    target = sweeper.get("_target_", BASIC_SWEEPERS[0])
    if target not in BASIC_SWEEPERS:
        problems.append(f"cannot tell which jobs {path} asks for: its sweeper {target} is not Hydra's basic one")
        return None
    arguments = [f"{key}={value}" for key, value in params.items()] + task
    try:
        return BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(arguments), None)[0]
    except OverrideParseException as error:  # Hydra ran these overrides: the file was changed since
        raise UnreadableSweep(f"invalid override in {path}: {_first_line(error)}") from None
    except HydraException as error:  # e.g. glob(), which needs the app's config groups
        problems.append(f"cannot tell which jobs {path} asks for: {_first_line(error)}")
        return None


def split_by_multirun_yaml(
    sweep_dir: Path, jobs: list[Job], asked: list[list[str]], problems: list[str]
) -> tuple[list[Job], list[list[str]]]:
    """(the job folders that multirun.yaml asks for, the asked-for jobs without a folder). A folder it
    does not ask for is left from an earlier sweep into the same sweep folder (Hydra numbers each
    sweep's jobs from 0): it is reported and left out. One whose overrides are unreadable is kept."""
    asked_by_overrides = {frozenset(overrides): overrides for overrides in asked}
    asked_values = set().union(*asked_by_overrides)  # every key=value that some asked-for job uses
    kept, found = [], set()
    for job in jobs:
        if job.overrides is None or job.overrides in asked_by_overrides:
            kept.append(job)
            found.add(job.overrides)
            continue
        unasked = sorted(job.overrides - asked_values) or sorted(job.overrides)
        problems.append(
            f"stale job folder {job.row['job_dir']}: not one of the {len(asked_by_overrides)} jobs that "
            f"{sweep_dir / 'multirun.yaml'} asks for (its overrides include {' '.join(unasked)}; left from "
            "an earlier sweep into this folder?); left out of the tables"
        )
    return kept, [overrides for key, overrides in asked_by_overrides.items() if key not in found]


def listed_radii(runs: pd.DataFrame) -> Counter:
    """How many runs list each radius of the gradient line's per-radius entries, from their configs."""
    listed = runs[RADII_CONFIG_KEY].dropna() if RADII_CONFIG_KEY in runs else []
    return Counter(float(r) for text in listed for r in set(yaml.safe_load(str(text)) or []))


def list_choice_label(value: str) -> str:
    """A list choice's override value as flatten labels it: [hessian,gradient_line] -> gradient_line+hessian;
    a single option (hessian, none) is its own label."""
    names = yaml.safe_load(value)
    return choice_label(names) if isinstance(names, list) else value


def unstarted_row(sweep_dir: Path, overrides: list[str], template: dict[str, Any]) -> dict[str, Any]:
    """A job that never started: the config of a started job of the same sweep, with its overrides.
    A group choice such as optimizer=adam sets optimizer.name and leaves that group's other keys unknown."""
    row: dict[str, Any] = {
        **template,
        "job_dir": f"{sweep_dir} (not started: {' '.join(overrides)})",
        "status": "missing",
    }
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if f"{key}.name" in template:
            row = {k: v for k, v in row.items() if not k.startswith(f"{key}.")}
            row[f"{key}.name"] = list_choice_label(value) if key in LIST_CHOICES else value
        elif "/" not in key and not any(k.startswith(f"{key}.") for k in template):
            row[key] = yaml.safe_load(value)
    return row


def unstarted_job(sweep_dir: Path, overrides: list[str], template: dict[str, Any]) -> Job:
    row = unstarted_row(sweep_dir, overrides, template)
    # its config keys: with no started job to copy, those its overrides set, so that two
    # unstarted jobs differ in them and are not taken for duplicates of each other
    return Job(row, [k for k in row if k not in ("job_dir", "status")])


def sweep_jobs(sweep_dir: Path, jobs: list[Job], asked: list[list[str]] | None, problems: list[str]) -> list[Job]:
    """The sweep's jobs for the tables: its job folders, less those its multirun.yaml does not ask
    for, plus one `missing` job for each that it asks for and that has no folder."""
    if asked is None:
        return jobs
    kept, unstarted = split_by_multirun_yaml(sweep_dir, jobs, asked, problems)
    template = {k: kept[0].row[k] for k in kept[0].config_keys} if kept else {}
    return kept + [unstarted_job(sweep_dir, overrides, template) for overrides in unstarted]


def load_sweeps(sweep_dirs: list[Path], workers: int = 8, reprobe: str | None = None) -> Sweep:
    """All jobs of the given sweep folders, files read in parallel, each once. Each sweep folder and
    multirun.yaml is read before any job's files: one that cannot be read stops the analysis. With
    `reprobe`, each job's results are those of its re-probe of that name (read_job)."""
    problems: list[str] = []
    folders = {Path(sweep): find_job_dirs(Path(sweep)) for sweep in sweep_dirs}
    asked = {sweep: asked_jobs(sweep, problems) for sweep in folders}
    problems += [f"no job folders (with .hydra/) under {sweep}" for sweep, jobs in folders.items() if not jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        read = {sweep: list(pool.map(partial(read_job, reprobe=reprobe), jobs)) for sweep, jobs in folders.items()}
    jobs = [job for sweep, found in read.items() for job in sweep_jobs(sweep, found, asked[sweep], problems)]
    problems += [problem for job in jobs for problem in job.problems]
    rows, histories, landscapes = [], {}, {}
    config_keys: dict[str, None] = {}
    for i, job in enumerate(jobs):
        run_id = f"r{i:05d}"
        job.row["run_id"] = run_id
        rows.append(job.row)
        config_keys.update(dict.fromkeys(job.config_keys))
        if job.history is not None:
            histories[run_id] = job.history
        if job.landscape is not None:
            landscapes[run_id] = job.landscape
    return Sweep(
        runs=pd.DataFrame(rows),
        histories=histories,
        landscapes=landscapes,
        problems=problems,
        config_keys=list(config_keys),
    )
