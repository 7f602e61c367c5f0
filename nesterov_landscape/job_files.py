"""The job's own result files, each written atomically (temp file in the same folder + rename),
so a killed job never leaves a file that looks complete."""

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

# What a job writes besides Hydra's .hydra/ and log, and its W&B run under wandb/.
RESULT_FILES = ("summary.json", "history.csv", "landscape.csv", "landscape_random.csv", "hessian.csv")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def json_safe(value: Any) -> Any:
    """Non-finite floats become null: strict JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


def write_csv(path: Path, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def remove_previous_attempt(job_dir: Path) -> None:
    """A job that starts again in its folder (after a kill, Ctrl-C, a failure, or a changed config)
    first removes what the earlier attempt wrote, so the folder never mixes two attempts' files.
    Called only by the folder's claimant (job_claim)."""
    earlier = [job_dir / name for name in RESULT_FILES] + list(job_dir.glob(".*.tmp-*"))  # tmp: a kill mid-write
    for path in earlier:
        if path.is_file():  # only files the job writes; anything else in the way fails the job later, recorded
            path.unlink(missing_ok=True)
