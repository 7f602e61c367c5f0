"""Reading a job's offline W&B runs back, as a user can: `wandb leet inspect` and the run's own files."""

import json
import math
import shutil
import subprocess
from pathlib import Path

from .helpers import ROOT


def wandb_cli() -> str:
    return shutil.which("wandb", path=str(ROOT / ".venv" / "bin")) or shutil.which("wandb")


def offline_runs(job_dir: Path) -> list[Path]:
    return sorted(job_dir.glob("wandb/offline-run-*"))


def run_dir(job_dir: Path, run_id: str) -> Path:
    (found,) = [path for path in offline_runs(job_dir) if path.name.endswith(f"-{run_id}")]
    return found


def records(run: Path) -> list[dict]:
    """Every record of the run's .wandb file (`wandb leet inspect --json`), one dict each."""
    command = [wandb_cli(), "leet", "inspect", "--json", str(run)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def overview(run: Path) -> dict:
    """State, name, config and summary of the run (`wandb leet inspect --summary --json`)."""
    out = subprocess.run(
        [wandb_cli(), "leet", "inspect", "--summary", "--json", str(run)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def history_rows(run_records: list[dict]) -> list[dict]:
    """The logged training rows (those with train/loss) of a run's records, in order; W&B's step
    (`_step`) is the epoch."""
    items = [r["history"]["item"] for r in run_records if r.get("type") == "history"]
    return [item for item in items if "train/loss" in item]


def run_record(run_records: list[dict]) -> dict:
    (record,) = [r["run"] for r in run_records if r.get("type") == "run"]
    return record


def same_number(a, b) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b
