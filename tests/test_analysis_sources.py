"""Where the analysis reads jobs from: the newest sweep under multirun/ when none is named, and one
rule for a job's status whether it is read from its folder or from its W&B run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from wandb.apis.public import Run

from multirun_analysis.load import load_sweeps
from multirun_analysis.report import write_report
from multirun_analysis.wandb_source import job_runs, run_row

from .helpers import TINY, run_analysis, run_cli
from .synthetic import completed_summary, decaying_history, job_config, write_job, write_multirun_yaml
from .wandb_offline import offline_runs, overview, records, run_record

# A job long enough to be caught training; its log has a line at epoch 800 (a tenth of the epochs).
LONG = [*TINY, "trainer.epochs=8000", "trainer.log_every=100", "probe=none"]


@pytest.mark.slow
def test_the_analysis_without_a_sweep_finds_the_newest_sweep_named_directly_under_multirun(tmp_path):
    """`python -m nesterov_landscape ... hydra.sweep.dir=multirun/my-sweep --multirun`, then `python -m
    multirun_analysis` with no argument: it analyses my-sweep, not an older sweep whose folder name
    (a later date, one level deeper) sorts after it."""
    older = tmp_path / "multirun" / "2099-01-01" / "00-00-00"
    write_multirun_yaml(older, ["seed=0"])
    write_job(older / "0", job_config(8, 0), ["seed=0"], completed_summary(1e-10, 1.0, 1.0), decaying_history(1 / 100))
    os.utime(older / "multirun.yaml", (0, 0))
    swept = run_cli(*TINY, "seed=0,1", "hydra.sweep.dir=multirun/my-sweep", "--multirun", cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr
    result = run_analysis("--wandb-mode", "disabled", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "report: multirun/my-sweep/analysis/report.md" in result.stdout
    runs = pd.read_csv(tmp_path / "multirun" / "my-sweep" / "analysis" / "runs.csv")
    assert sorted(runs["seed"]) == [0, 1] and (runs["status"] == "completed").all()
    assert not (older / "analysis").exists()


def test_interrupted_jobs_are_counted_as_interrupted_in_the_tables_and_the_report(tmp_path):
    sweep = tmp_path / "sweep"
    write_multirun_yaml(sweep, ["seed=0,1,2"])
    write_job(sweep / "0", job_config(8, 0), ["seed=0"], completed_summary(1e-10, 1.0, 1.0), decaying_history(1 / 100))
    for seed in (1, 2):
        summary = {"status": "interrupted", "error": "KeyboardInterrupt"}
        write_job(sweep / str(seed), job_config(8, seed), [f"seed={seed}"], summary)
    write_report(load_sweeps([sweep]), tmp_path / "out")
    (row,) = pd.read_csv(tmp_path / "out" / "summary.csv").to_dict("records")
    assert [row[s] for s in ("runs", "completed", "failed", "interrupted", "missing")] == [3, 1, 0, 2, 0]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "3 runs: 1 completed, 0 diverged, 0 failed, 2 interrupted, 0 missing;" in report
    assert f"- interrupted: `{sweep / '1'}` (KeyboardInterrupt)" in report


def interrupt_while_training(job: Path, cwd: Path) -> None:
    """A real job stopped by Ctrl-C (SIGINT) once it has logged a tenth of its training."""
    command = [sys.executable, "-m", "nesterov_landscape", *LONG, f"hydra.run.dir={job}"]
    process = subprocess.Popen(
        command, cwd=cwd, env={**os.environ, "WANDB_SILENT": "true"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    log, deadline = job / "nesterov_landscape.log", time.monotonic() + 120
    while not (log.exists() and "epoch 800:" in log.read_text()):
        assert process.poll() is None and time.monotonic() < deadline, "the job ended before it could be interrupted"
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, process.stderr.read()


def public_run(folder: Path) -> Run:
    """The offline W&B run in `folder` as wandb.Api hands it out once `wandb sync` has uploaded it: a
    wandb.apis.public.Run made from the run's own records (`wandb leet inspect`): the run record (job
    type, config as the job passed it) and the overview (the summary, and the state the server shows:
    finished, or failed for a non-zero exit code)."""
    (run_dir,) = offline_runs(folder)
    seen, started = overview(run_dir), run_record(records(run_dir))
    attrs = {
        "name": seen["run_id"],
        "state": seen["state"],
        "jobType": started["job_type"],
        "config": started["config"]["update"],
        "summaryMetrics": seen["summary"],
    }
    return Run(None, "offline", seen["project"], seen["run_id"], attrs=attrs)


@pytest.mark.slow
def test_a_job_counts_alike_read_from_its_folder_or_its_wandb_run(tmp_path, monkeypatch):
    """A completed and an interrupted job, real ones with their real offline W&B runs, and the analysis
    of them: the folders and the W&B runs give each job the same status and error (interrupted, not
    failed or missing), and the analysis's own run in W&B is no job."""
    completed, interrupted = jobs = [tmp_path / "completed", tmp_path / "interrupted"]
    finished = run_cli(*TINY, f"hydra.run.dir={completed}", cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    interrupt_while_training(interrupted, tmp_path)
    analysed = run_analysis(*map(str, jobs), "--out", str(tmp_path / "analysis"), cwd=tmp_path)
    assert analysed.returncode == 0, analysed.stderr
    from_folders = pd.read_csv(tmp_path / "analysis" / "runs.csv").set_index("job_dir")
    assert list(from_folders["status"]) == ["completed", "interrupted"]
    counts = pd.read_csv(tmp_path / "analysis" / "summary.csv")[["completed", "failed", "interrupted", "missing"]]
    assert list(counts.sum()) == [1, 0, 1, 0]

    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))  # where a public Run keeps its downloads
    runs = [public_run(folder) for folder in [*jobs, tmp_path / "analysis"]]
    assert [run.state for run in runs] == ["finished", "failed", "finished"]  # W&B's own: exit codes 0, 130, 0
    assert job_runs(runs) == runs[:2]
    for folder, run in zip(jobs, runs):
        row = run_row(run)
        assert row["status"] == from_folders.at[str(folder), "status"]
        assert row["model.width"] == 8 and row["probe.name"] == ("none" if folder == interrupted else "gradient_line")
    assert run_row(runs[1])["error"] == from_folders.at[str(interrupted), "error"] == "KeyboardInterrupt"
    assert run_row(runs[0])["final_loss"] == from_folders.at[str(completed), "final_loss"]
