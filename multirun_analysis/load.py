"""Read job folders into one table of runs plus per-run histories and landscapes.

The job's files are the source of truth. A job with no summary.json is `missing` (still running,
or killed); so is one whose run was interrupted (Ctrl-C: re-running finishes it). A file that
cannot be read, or holds a value of the wrong kind (a word where a number belongs), is reported
with its path, and its job counts as `missing`; one job's files never stop the analysis.
"""

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

STATUSES = ("completed", "diverged", "failed", "missing")
UNFINISHED = ("interrupted", "running", "skipped")  # statuses that count as missing: re-running finishes them
# summary.json entries that describe the job rather than measure it
NOT_METRICS = {"config", "versions", "job", "wandb", "status", "error", "seed"}
# summary.json entries whose values are words (also any *_status, *precision); every other scalar
# entry must be a number or null. A new word-valued summary entry belongs here.
TEXT_KEYS = {"error", "device", "gpu", "trained_activation"}


def is_text_key(key: str) -> bool:
    return key in TEXT_KEYS or key.endswith(("_status", "precision"))


@dataclass
class Sweep:
    runs: pd.DataFrame  # one row per job: run_id, job_dir, status, config keys (dotted), metrics
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)  # run_id -> epoch, loss, grad_norm
    landscapes: dict[str, pd.DataFrame] = field(default_factory=dict)  # run_id -> t, phi, phi_dd, mu, ...
    problems: list[str] = field(default_factory=list)  # human-readable, with paths
    config_keys: list[str] = field(default_factory=list)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"width": 35}} -> {"model.width": 35}; lists become their string form."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value) if isinstance(value, list) else value
    return out


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Job folders under a sweep (or the folder itself for a single job): those holding .hydra/."""
    if (sweep_dir / ".hydra").is_dir():
        return [sweep_dir]
    return sorted((p.parent for p in sweep_dir.glob("*/.hydra")), key=lambda p: (len(p.name), p.name))


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
    for key, value in summary.items():
        if key in NOT_METRICS or isinstance(value, (dict, list)):
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (value is None or number or (is_text_key(key) and isinstance(value, str))):
            raise InvalidFile(f"invalid value {value!r} for {key} in {path}: expected a number or null")
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


def read_job(job_dir: Path) -> tuple[dict[str, Any], list[str], pd.DataFrame | None, pd.DataFrame | None, list[str]]:
    """One job's row (config flattened, summary metrics), its config keys, history, landscape, problems.
    Never raises: a job whose files are unreadable or invalid is `missing`, with the reason."""
    problems: list[str] = []
    row: dict[str, Any] = {"job_dir": str(job_dir)}
    readers = {
        "summary": lambda: _read_summary(job_dir / "summary.json"),
        "history": lambda: _read_csv(job_dir / "history.csv", ["epoch", "loss"]),
        "landscape": lambda: _read_csv(job_dir / "landscape.csv", ["t", "phi", "phi_dd", "mu"]),
    }
    files: dict[str, Any] = {}
    for name, read in readers.items():
        try:
            files[name] = read()
        except InvalidFile as error:
            problems.append(f"{error}; the job counts as missing")
        except Exception as error:  # whatever else a damaged folder holds: this job only, never the analysis
            problems.append(f"unreadable {name} of {job_dir}: {type(error).__name__}: {_first_line(error)}")
    if problems:  # one bad file makes the whole job missing: its other files may be as stale
        row["error"] = problems[0]
        files = {}
    summary, history, landscape = files.get("summary"), files.get("history"), files.get("landscape")
    flat_config = flatten(_read_config(job_dir, summary, problems))
    row.update(flat_config)
    if summary is None:
        row["status"] = "missing"
    else:
        status = summary["status"]
        row["status"] = status if status in STATUSES else "missing" if status in UNFINISHED else "failed"
        row["error"] = summary.get("error")
        # the job's W&B group: the analysis run joins it (multirun_analysis.wandb_log)
        row["wandb_group"] = (summary.get("wandb") or {}).get("group")
        for key, value in summary.items():
            if key not in NOT_METRICS and (value is None or isinstance(value, (int, float, str))):
                row[key] = math.nan if value is None else value
    return row, list(flat_config), history, landscape, problems


def _load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=yaml.CSafeLoader)


def unstarted_jobs(sweep_dir: Path, job_dirs: list[Path], problems: list[str]) -> list[list[str]]:
    """The override lists of the jobs that the sweep's multirun.yaml asks for but that have no folder
    yet (a sweep still running, or killed). As Hydra's BasicSweeper does: the config's
    hydra.sweeper.params (a preset's axes) first, the command line's overrides replacing them by key."""
    try:
        hydra_config = _load_yaml(sweep_dir / "multirun.yaml")["hydra"]
        params = (hydra_config.get("sweeper") or {}).get("params") or {}
        arguments = [f"{key}={value}" for key, value in params.items()] + hydra_config["overrides"]["task"]
        expected = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(arguments), None)[0]
    except FileNotFoundError:
        return []
    except Exception as error:  # a truncated file or a sweep syntax only another sweeper knows
        problems.append(f"cannot list the expected jobs from {sweep_dir / 'multirun.yaml'}: {error}")
        return []
    found = set()
    for job in job_dirs:
        try:
            overrides = _load_yaml(job / ".hydra" / "overrides.yaml") or []
            found.add(frozenset(str(o) for o in overrides) if isinstance(overrides, list) else frozenset())
        except (OSError, ValueError, yaml.YAMLError):
            pass
    return [job for job in expected if frozenset(job) not in found]


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
            row[f"{key}.name"] = value
        elif "/" not in key and not any(k.startswith(f"{key}.") for k in template):
            row[key] = yaml.safe_load(value)
    return row


def load_sweeps(sweep_dirs: list[Path], workers: int = 8) -> Sweep:
    """All jobs of the given sweep folders, files read in parallel, each once."""
    jobs_of = {Path(sweep): find_job_dirs(Path(sweep)) for sweep in sweep_dirs}
    job_dirs = [job for jobs in jobs_of.values() for job in jobs]
    problems = [f"no job folders (with .hydra/) under {sweep}" for sweep, jobs in jobs_of.items() if not jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(read_job, job_dirs))
    templates: dict[Path, dict[str, Any]] = {}
    for job, (row, keys, *_rest) in zip(job_dirs, results):
        templates.setdefault(job.parent, {k: row[k] for k in keys})
    for sweep, jobs in jobs_of.items():
        for overrides in unstarted_jobs(sweep, jobs, problems):
            row = unstarted_row(sweep, overrides, templates.get(sweep, {}))
            # its config keys: with no started job to copy, those its overrides set, so that two
            # unstarted jobs differ in them and are not taken for duplicates of each other
            keys = [k for k in row if k not in ("job_dir", "status")]
            results.append((row, keys, None, None, []))
    rows, histories, landscapes = [], {}, {}
    config_keys: dict[str, None] = {}
    for i, (row, keys, history, landscape, job_problems) in enumerate(results):
        run_id = f"r{i:05d}"
        row["run_id"] = run_id
        rows.append(row)
        problems.extend(job_problems)
        config_keys.update(dict.fromkeys(keys))
        if history is not None:
            histories[run_id] = history
        if landscape is not None:
            landscapes[run_id] = landscape
    runs = pd.DataFrame(rows)
    return Sweep(
        runs=runs, histories=histories, landscapes=landscapes, problems=problems, config_keys=list(config_keys)
    )
