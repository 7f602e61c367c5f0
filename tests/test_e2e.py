"""Real sweeps through `python -m nesterov_landscape --multirun`, as a user runs them."""

import csv
import json
import os
import math
import shutil
import subprocess
import sys
import time

import pytest

from .helpers import ROOT, TINY, run_cli
from .wandb_offline import history_rows, offline_runs, records, run_record

pytestmark = pytest.mark.slow


def read_history(path):
    with path.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def wandb_history(job_dir):
    """The history logged to the job's offline W&B run, read back with `wandb leet inspect --json`."""
    (run_dir,) = job_dir.glob("wandb/offline-run-*")
    wandb_cli = shutil.which("wandb", path=str(ROOT / ".venv" / "bin")) or shutil.which("wandb")
    out = subprocess.run(
        [wandb_cli, "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True, check=True
    ).stdout
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [r["history"]["item"] for r in records if r.get("type") == "history"]


def test_multirun_of_two_seeds(tmp_path):
    """The sweep folder as Hydra makes it by default (relative to the working directory): the jobs' W&B
    runs share the group named after it, multirun_2026-11-26_10-00-00 (docs/wandb.md), and each run is named by
    its job's overrides (sorted, as Hydra's override_dirname; hydra.sweep.dir left out)."""
    sweep = tmp_path / "multirun" / "2026-11-26" / "10-00-00"
    result = run_cli(*TINY, "seed=0,1", "hydra.sweep.dir=multirun/2026-11-26/10-00-00", "--multirun", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summaries = [json.loads((sweep / str(n) / "summary.json").read_text()) for n in (0, 1)]
    assert [s["seed"] for s in summaries] == [0, 1]
    assert summaries[0]["final_loss"] != summaries[1]["final_loss"]
    assert [s["wandb"]["group"] for s in summaries] == ["multirun_2026-11-26_10-00-00"] * 2
    for n in (0, 1):
        job = sweep / str(n)
        assert (job / ".hydra" / "config.yaml").exists() and (job / "nesterov_landscape.log").exists()
        (run,) = offline_runs(job)
        run_records = records(run)
        assert run_record(run_records)["run_group"] == "multirun_2026-11-26_10-00-00"
        assert run_record(run_records)["display_name"] == ",".join(sorted([*TINY, f"seed={n}"]))
        history = read_history(job / "history.csv")
        logged = history_rows(run_records)
        assert [row["_step"] for row in logged] == [row["epoch"] for row in history]
        assert [row["train/loss"] for row in logged] == [row["loss"] for row in history]
        assert [row["train/grad_norm"] for row in logged] == [row["grad_norm"] for row in history]


def test_a_diverging_job_does_not_stop_the_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        *TINY, "trainer.epochs=200", "optimizer.lr=10,0.005", f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    statuses = [json.loads((sweep / str(n) / "summary.json").read_text())["status"] for n in (0, 1)]
    assert statuses == ["diverged", "completed"]


def test_an_invalid_job_leaves_nothing_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(*TINY, "optimizer.lr=-1,0.005", f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path)
    assert result.returncode == 1  # the failed job is reported at the end, in one line (no traceback)
    assert "Traceback" not in result.stderr
    job = f"#0 ({' '.join(TINY)} optimizer.lr=-1)"
    bad_value = "optimizer.lr=-1.0 is not allowed; it must be a finite number > 0"
    assert f"][HYDRA] job {job}: invalid config: {bad_value}\n" in result.stdout  # checked before the sweep starts
    assert result.stderr.strip().splitlines()[-1] == f"error: 1 of 2 jobs failed: {job}: invalid config: {bad_value}"
    assert not (sweep / "0").exists()
    assert json.loads((sweep / "1" / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize(
    "env,reason",
    [
        ({}, "no credentials"),  # never reaches wandb's account prompt nor the server
        # an unreachable server: wandb gives up after logger.init_timeout (timed in benchmarks/wandb_fallback.py),
        # asking whether the job's run exists to resume it (resume="allow")
        ({"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}, "Failed to get resume status"),
    ],
)
def test_online_without_network_falls_back_to_offline(env, reason, tmp_path):
    result = run_cli(
        *TINY, "logger.mode=online", "logger.init_timeout=5", f"hydra.run.dir={tmp_path / 'job'}", cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "job" / "nesterov_landscape.log").read_text().splitlines()
    (warning,) = [line for line in log if "WARNING" in line]
    assert f"W&B online mode failed ({reason}" in warning and "logging offline" in warning
    summary = json.loads((tmp_path / "job" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["wandb"]["mode"] == "offline"
    assert [row["train/loss"] for row in wandb_history(tmp_path / "job") if "train/loss" in row] == [
        row["loss"] for row in read_history(tmp_path / "job" / "history.csv")
    ]


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a terminal")
def test_progress_bar_in_a_terminal_only(tmp_path):
    args = " ".join([*TINY, "trainer.epochs=300", "probe=none", "logger.mode=disabled"])
    command = f"stty cols 120 rows 40; {sys.executable} -m nesterov_landscape {args} hydra.run.dir={tmp_path / 'tty'}"
    in_terminal = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert in_terminal.returncode == 0
    assert "300/300" in in_terminal.stdout and "loss=" in in_terminal.stdout
    piped = run_cli(
        *TINY,
        "trainer.epochs=300",
        "probe=none",
        "logger.mode=disabled",
        f"hydra.run.dir={tmp_path / 'pipe'}",
        cwd=tmp_path,
    )
    assert "300/300" not in piped.stderr + piped.stdout and "\r" not in piped.stderr


def test_paper_preset_reproduces_the_published_final_losses(tmp_path):
    """Figure 3: five seeds of the paper's setup, final losses in [1e-12, 1e-9] (at least 4 of 5)."""
    sweep = tmp_path / "sweep"
    result = run_cli(
        "experiment=gupta2025_fig3",
        "seed=0,1,2,3,4",
        "logger.mode=disabled",
        f"hydra.sweep.dir={sweep}",
        "--multirun",
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    losses = [json.loads((sweep / str(n) / "summary.json").read_text())["final_loss"] for n in range(5)]
    assert sum(1e-12 <= loss <= 1e-9 for loss in losses) >= 4, losses
    assert all(math.isfinite(loss) for loss in losses)


def test_a_killed_sweep_resumes_without_redoing_finished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        sys.executable,
        "-m",
        "nesterov_landscape",
        *TINY,
        "trainer.epochs=30000",
        "trainer.log_every=1000",
        "probe=none",
        "seed=0,1,2",
        f"hydra.sweep.dir={sweep}",
        "--multirun",
    ]
    env = {**os.environ, "WANDB_SILENT": "true"}
    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (sweep / "0" / "summary.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    while not (sweep / "1").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # job 1 is training now
    first.kill()
    first.wait()
    assert (sweep / "0" / "summary.json").exists()
    assert not (sweep / "1" / "summary.json").exists()  # a killed job leaves no summary
    finished_before = (sweep / "0" / "summary.json").read_text()
    second = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "skipping it" in (sweep / "0" / "nesterov_landscape.log").read_text()
    assert (sweep / "0" / "summary.json").read_text() == finished_before
    for n in (1, 2):
        assert json.loads((sweep / str(n) / "summary.json").read_text())["status"] == "completed"
