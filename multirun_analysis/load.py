"""Read job folders into one table of runs plus per-run histories and landscapes.

The job's files are the source of truth. A job with no summary.json is `missing` (still running,
or killed); a file that cannot be parsed is reported with its path and skipped, never fatal.
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
# summary.json entries that describe the job rather than measure it
NOT_METRICS = {"config", "versions", "job", "wandb", "status", "error", "seed"}


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


def _read_csv(path: Path, required: list[str], problems: list[str]) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        problems.append(f"unreadable {path}: {str(error).splitlines()[0]}")
        return None
    if not set(required) <= set(frame.columns) or frame.empty:
        problems.append(f"unreadable {path}: expected columns {', '.join(required)} and at least one row")
        return None
    return frame


def read_job(job_dir: Path) -> tuple[dict[str, Any], list[str], pd.DataFrame | None, pd.DataFrame | None, list[str]]:
    """One job's row (config flattened, summary metrics), its config keys, history, landscape, problems."""
    problems: list[str] = []
    row: dict[str, Any] = {"job_dir": str(job_dir)}
    summary = None
    summary_path = job_dir / "summary.json"
    if summary_path.exists():
        try:
            summary = json.loads(summary_path.read_text())
            if not isinstance(summary, dict) or "status" not in summary:
                raise ValueError("no status")
        except (ValueError, UnicodeDecodeError) as error:
            problems.append(f"unreadable {summary_path}: {error}")
            summary = None
    config = summary.get("config") if summary else None
    if config is None:
        try:
            config = _load_yaml(job_dir / ".hydra" / "config.yaml")
        except (OSError, yaml.YAMLError) as error:
            problems.append(f"unreadable {job_dir / '.hydra' / 'config.yaml'}: {str(error).splitlines()[0]}")
            config = {}
    flat_config = flatten(config or {})
    row.update(flat_config)
    if summary is None:
        row["status"] = "missing"
    else:
        row["status"] = summary["status"] if summary["status"] in STATUSES else "failed"
        row["error"] = summary.get("error")
        # the job's W&B group: the analysis run joins it (multirun_analysis.wandb_log)
        row["wandb_group"] = (summary.get("wandb") or {}).get("group")
        for key, value in summary.items():
            if key not in NOT_METRICS and (value is None or isinstance(value, (int, float, str))):
                row[key] = math.nan if value is None else value
    history = _read_csv(job_dir / "history.csv", ["epoch", "loss"], problems)
    landscape = _read_csv(job_dir / "landscape.csv", ["t", "phi", "phi_dd", "mu"], problems)
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
            found.add(frozenset(_load_yaml(job / ".hydra" / "overrides.yaml") or []))
        except (OSError, yaml.YAMLError):
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
    results += [
        (unstarted_row(sweep, overrides, templates.get(sweep, {})), [], None, None, [])
        for sweep, jobs in jobs_of.items()
        for overrides in unstarted_jobs(sweep, jobs, problems)
    ]
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
