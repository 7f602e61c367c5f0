"""Read one W&B group of online runs (one sweep) through the public wandb.Api into the same
tables the job folders give. wandb.Api cannot read offline runs: point the analysis at their folders."""

import json
import math
import tempfile
from pathlib import Path

import pandas as pd

from .load import NOT_METRICS, RESULTS, Sweep, flatten, job_status
from .wandb_log import JOB_TYPE

# W&B's step is the job's epoch (nesterov_landscape.wandb_run.log_history_row)
HISTORY_KEYS = {"_step": "epoch", "train/loss": "loss", "train/grad_norm": "grad_norm"}


def run_config(run) -> dict:
    """A W&B run's config keys (dotted) and values, without W&B's own (_wandb)."""
    return flatten({k: v for k, v in run.config.items() if not k.startswith("_")})


def run_row(run) -> dict:
    """What a job's W&B run (a wandb.apis.public.Run) says of it, as the row a job folder gives:
    config keys, status, error, metrics. The job records its status in the run's summary as in
    summary.json, and load.job_status counts it the same way; a run without one stopped before
    recording it (still running, or killed: missing) or failed (W&B's state `failed`, a non-zero exit)."""
    summary = dict(run.summary)
    recorded = summary.get("status") or ("failed" if run.state == "failed" else None)
    row = {**run_config(run), "status": job_status(recorded), "error": summary.get("error")}
    for key, value in summary.items():
        if key not in NOT_METRICS and not key.startswith("_") and isinstance(value, (int, float, str)):
            row[key] = value
    return row


def job_runs(runs) -> list:
    """The jobs' runs of a group: the analysis logs a run of its own there (wandb_log), which is no job."""
    return [run for run in runs if run.job_type != JOB_TYPE]


def load_wandb_group(path: str, group: str, timeout: float = 20) -> Sweep:
    """All job runs of `group` in the W&B project `path` (ENTITY/PROJECT), without the analysis's own
    runs; ConnectionError with one line when W&B cannot be reached or refuses."""
    import wandb

    try:
        api = wandb.Api(timeout=timeout)
        runs = job_runs(api.runs(path, filters={"group": group}))
    except Exception as error:  # wandb raises UsageError, CommError, HTTPError, ... for the same failure
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConnectionError(f"cannot read W&B runs of {path}, group {group}: {reason}") from None
    rows, histories, landscapes, problems, config_keys = [], {}, {}, [], {}
    for i, run in enumerate(runs):
        run_id = f"r{i:05d}"
        row = {"run_id": run_id, "job_dir": run.url, **run_row(run), "wandb_group": group}
        config_keys.update(dict.fromkeys(run_config(run)))
        rows.append(row)
        if row["status"] not in RESULTS:  # a run still running, or one without a result: no curves
            continue
        history = run.history(keys=list(HISTORY_KEYS), pandas=True, samples=1_000_000)
        if len(history):
            histories[run_id] = history.rename(columns=HISTORY_KEYS)[list(HISTORY_KEYS.values())]
        table = run.summary.get("landscape/table")
        if isinstance(table, dict) and "path" in table:
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    run.file(table["path"]).download(root=tmp)
                    data = json.loads((Path(tmp) / table["path"]).read_text())
                landscapes[run_id] = pd.DataFrame(data["data"], columns=data["columns"]).fillna(math.nan)
            except Exception as error:
                problems.append(f"cannot read the landscape table of {run.url}: {error}")
    return Sweep(
        runs=pd.DataFrame(rows),
        histories=histories,
        landscapes=landscapes,
        problems=problems,
        config_keys=list(config_keys),
    )
