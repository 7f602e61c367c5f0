"""Read one W&B group of online runs (one sweep) through the public wandb.Api into the same
tables the job folders give. Offline runs cannot be read this way: point the analysis at their folders."""

import json
import math
import tempfile
from pathlib import Path

import pandas as pd

from .load import NOT_METRICS, RESULTS, STATUSES, Sweep, flatten

# W&B's step is the job's epoch (nesterov_landscape.wandb_run.log_history_row)
HISTORY_KEYS = {"_step": "epoch", "train/loss": "loss", "train/grad_norm": "grad_norm"}


def load_wandb_group(path: str, group: str, timeout: float = 20) -> Sweep:
    """All runs of `group` in the W&B project `path` (ENTITY/PROJECT); ConnectionError with one
    line when W&B cannot be reached or refuses."""
    import wandb

    try:
        api = wandb.Api(timeout=timeout)
        runs = list(api.runs(path, filters={"group": group}))
    except Exception as error:  # wandb raises UsageError, CommError, HTTPError, ... for the same failure
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConnectionError(f"cannot read W&B runs of {path}, group {group}: {reason}") from None
    rows, histories, landscapes, problems, config_keys = [], {}, {}, [], {}
    for i, run in enumerate(runs):
        run_id = f"r{i:05d}"
        config = flatten({k: v for k, v in run.config.items() if not k.startswith("_")})
        config_keys.update(dict.fromkeys(config))
        summary = dict(run.summary)
        status = summary.get("status", "missing" if run.state == "running" else "failed")
        row = {
            "run_id": run_id,
            "job_dir": run.url,
            **config,
            "status": status if status in STATUSES else "failed",
            "wandb_group": group,
        }
        for key, value in summary.items():
            if key not in NOT_METRICS and not key.startswith("_") and isinstance(value, (int, float, str)):
                row[key] = value
        rows.append(row)
        if row["status"] not in RESULTS:  # a run still running, or one without a result: no curves
            continue
        history = run.history(keys=list(HISTORY_KEYS), pandas=True, samples=1_000_000)
        if len(history):
            histories[run_id] = history.rename(columns=HISTORY_KEYS)[list(HISTORY_KEYS.values())]
        table = summary.get("landscape/table")
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
