"""Sweeps through a real SLURM cluster on this machine (sbatch, sacct, scancel, scontrol): the one
`.ci/slurm-cluster start` runs, with accounting, as clusters have it. Without that cluster these
tests skip and say how to start it; where REQUIRE_SLURM_CLUSTER=1 (.ci/run sets it) they fail."""

import os
import subprocess
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from .helpers import ROOT, TINY, run_analysis, run_cli, start_cli
from .test_faults import LONG, assert_one_finished_run_per_job, offline_runs, summary, training, wait_for, wandb_state

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# float64 with few epochs: stacking only reassociates sums inside the batched matmuls
RTOL = 1e-10
# Two stacks in one array task: two jobs of 20 epochs, then two of 20,000 (seconds of training,
# longer than the cluster's KillWait), the moment the tests strike.
TWO_STACKS = [*LONG, "trainer.epochs=20,20000", "seed=0,1", "hydra/launcher=batched_slurm"]
ONE_TASK = ["hydra.launcher.runs_per_task=4", "hydra.launcher.runs_per_stack=2"]


@pytest.fixture(autouse=True)
def slurm_cluster(monkeypatch):
    """The cluster's slurm.conf in SLURM_CONF, where sbatch, sacct and the sweeps find it."""
    status = subprocess.run(["bash", ROOT / ".ci" / "slurm-cluster", "status"], capture_output=True, text=True)
    if status.returncode != 0:
        if os.environ.get("REQUIRE_SLURM_CLUSTER") == "1":
            pytest.fail(status.stderr.strip())
        pytest.skip(status.stderr.strip())
    monkeypatch.setenv("SLURM_CONF", status.stdout.strip().removeprefix("SLURM_CONF="))


def sweep_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """A sweep, and the check of issue 18: with accounting, submitit's polls of sacct raise no warning."""
    result = run_cli(*args, "--multirun", cwd=cwd)
    assert "Bypassing sacct error" not in result.stdout + result.stderr, result.stderr
    return result


def submitted(sweep: Path) -> list[str]:
    """The SLURM job ids the sweep submitted, oldest first (submitit's folder per job)."""
    return sorted((p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit()), key=int)


def attempts(job_id: str) -> list[dict]:
    """sacct's record of every array task of `job_id`, each run of a requeued task included."""
    command = ["sacct", "-X", "--duplicates", "-n", "--parsable2", "-o", "JobID,State,Start,End", "-j", job_id]
    lines = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()
    return [dict(zip(("task", "state", "start", "end"), line.split("|"))) for line in lines]


def ended(job_id: str, tasks: int) -> list[dict]:
    """The record once every task has ended: slurmctld hands it to slurmdbd a moment after."""
    wait_for(lambda: [a["state"] for a in attempts(job_id)][-tasks:] == ["COMPLETED"] * tasks, 30, "sacct")
    return attempts(job_id)


def wandb_ids(jobs: list[Path]) -> list[str]:
    return [summary(job)["wandb"]["id"] for job in jobs]


def test_a_batched_slurm_sweep_gives_what_the_local_batched_launcher_gives(tmp_path):
    sweep = [*TINY, "trainer.precision=float64", "seed=0,1,2", "optimizer.lr=0.005,0.01"]
    slurm = ["hydra/launcher=batched_slurm", *ONE_TASK, "hydra.launcher.array_parallelism=1"]
    results = {}
    for name, launcher in (("local", ["hydra/launcher=batched"]), ("slurm", slurm)):
        result = sweep_cli(*sweep, *launcher, f"hydra.sweep.dir={tmp_path / name}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        results[name] = [summary(tmp_path / name / str(n)) for n in range(6)]
    for local, slurm in zip(results["local"], results["slurm"]):
        assert slurm["config"] == local["config"] and slurm["status"] == local["status"] == "completed"
        assert slurm["final_loss"] == pytest.approx(local["final_loss"], rel=RTOL)
        assert slurm["final_grad_norm"] == pytest.approx(local["final_grad_norm"], rel=RTOL)
    assert [s["stacked_with"] for s in results["slurm"]] == [1] * 6  # stacks of 2 (runs_per_stack)
    assert_one_finished_run_per_job([tmp_path / "slurm" / str(n) for n in range(6)])
    (job_id,) = submitted(tmp_path / "slurm")
    first, second = ended(job_id, 2)  # 6 runs, 4 a task (whole stacks)
    assert (first["task"], second["task"]) == (f"{job_id}_0", f"{job_id}_1")
    start, end = (datetime.fromisoformat(second["start"]), datetime.fromisoformat(first["end"]))
    assert start >= end  # array_parallelism=1: one task at a time


def test_the_slurm_launcher_runs_one_task_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    result = sweep_cli(*TINY, "seed=0,1", "hydra/launcher=slurm", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = [sweep / "0", sweep / "1"]
    assert [summary(job)["seed"] for job in jobs] == [0, 1]
    assert_one_finished_run_per_job(jobs)
    (job_id,) = submitted(sweep)
    assert [a["task"] for a in ended(job_id, 2)] == [f"{job_id}_0", f"{job_id}_1"]


@pytest.mark.guards("lost", "duplicated")
def test_a_cancelled_task_then_the_same_command_runs_only_its_unfinished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = [*TWO_STACKS, *ONE_TASK, f"hydra.sweep.dir={sweep}"]
    short, long = [sweep / "0", sweep / "1"], [sweep / "2", sweep / "3"]
    first = start_cli(*args, "--multirun", cwd=tmp_path, log=tmp_path / "first.log")
    try:
        wait_for(lambda: all((job / "summary.json").exists() for job in short), what="the short stack")
        (cancelled,) = submitted(sweep)
        subprocess.run(["scancel", cancelled], check=True)  # the long stack trains
        assert first.wait(timeout=120) != 0
    finally:
        if first.poll() is None:
            first.kill()
    # the task had no result: the launcher read what each job wrote, so finished jobs count as such
    output = (tmp_path / "first.log").read_text()
    assert "4 jobs in " in output and "s: 2 completed, 2 interrupted" in output, output
    assert [a["state"].split()[0] for a in attempts(cancelled)] == ["CANCELLED"]  # "CANCELLED by <uid>"
    assert all(summary(job)["status"] == "interrupted" for job in long)  # scancel's SIGTERM, handled
    finished = wandb_ids(short)
    again = sweep_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    output = again.stdout + again.stderr
    assert "4 jobs in " in output and "s: 2 already done, 2 completed" in output, output
    assert wandb_ids(short) == finished  # not run again
    assert_one_finished_run_per_job(short + long)
    assert [a["task"] for a in ended(submitted(sweep)[-1], 1)] == [submitted(sweep)[-1]]


def test_without_accounting_a_cancelled_task_is_seen_to_end(tmp_path, monkeypatch):
    """Issue 18: where sacct does not answer, submitit never learns that a task ended without a
    result, and the launcher waited for ever. Here the launcher's slurm.conf names no accounting
    storage, as on such a cluster: its sacct says "Slurm accounting storage is disabled"."""
    conf = Path(os.environ["SLURM_CONF"]).read_text().splitlines()
    without = [line for line in conf if not line.startswith(("AccountingStorage", "JobAcctGather"))]
    (tmp_path / "slurm.conf").write_text("\n".join(without) + "\n")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    sweep = tmp_path / "sweep"
    log = tmp_path / "sweep.log"
    process = start_cli(*TWO_STACKS, *ONE_TASK, f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path, log=log)
    try:
        wait_for(lambda: all((sweep / str(n) / "summary.json").exists() for n in (0, 1)), what="the short stack")
        subprocess.run(["scancel", *submitted(sweep)], check=True)  # the long stack trains
        assert process.wait(timeout=60) == 1, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert "Slurm accounting storage is disabled" in output  # sacct, quoted by submitit's warnings
    assert "4 jobs in " in output and "s: 2 completed, 2 interrupted" in output, output


# How a running task is sent back to the queue: by hand, or by the warning of its time limit, which
# submitit asks for with sbatch --signal=USR2@<signal_delay_s> and SLURM sends to every process of the
# task; the task then requeues itself through submitit's checkpoint. The test sends that signal itself,
# as SLURM does (scancel --signal): SLURM looks at time limits every 30 s or so (here the warning came
# 2 to 27 s after it was due), and waiting for it would double the test's time.
REQUEUES = {"scontrol requeue": ["scontrol", "requeue"], "time limit's warning": ["scancel", "--signal=USR2"]}


@pytest.mark.parametrize("requeue", REQUEUES)
@pytest.mark.guards("lost", "duplicated")
def test_a_task_requeued_in_the_middle_of_a_stack_records_its_jobs_interrupted_runs_again_and_finishes(
    requeue, tmp_path
):
    sweep = tmp_path / "sweep"
    short, long = [sweep / "0", sweep / "1"], [sweep / "2", sweep / "3"]
    log = tmp_path / "sweep.log"
    process = start_cli(*TWO_STACKS, *ONE_TASK, f"hydra.sweep.dir={sweep}", "--multirun", cwd=tmp_path, log=log)
    try:
        wait_for(lambda: all((job / "summary.json").exists() for job in short), what="the short stack")
        (task,) = submitted(sweep)
        finished = wandb_ids(short)
        subprocess.run([*REQUEUES[requeue], task], check=True)  # the long stack trains
        wait_for(lambda: all((job / "summary.json").exists() for job in long), 30, "the long stack to stop")
        assert [summary(job)["status"] for job in long] == ["interrupted"] * 2
        assert process.wait(timeout=180) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert "4 jobs in " in output and "s: 2 already done, 2 completed" in output, output
    assert "Bypassing sacct error" not in output, output
    assert [a["state"] for a in ended(task, 1)] == ["REQUEUED", "COMPLETED"]
    assert wandb_ids(short) == finished  # the second run left them out: it trained only the long stack
    assert_one_finished_run_per_job(short + long)
    if requeue == "time limit's warning":
        script = (sweep / ".submitit" / task / f"{task}_submission.sh").read_text()
        assert "#SBATCH --signal=USR2@90\n" in script and "#SBATCH --time=60\n" in script, script
        assert "Calling checkpoint method" in (sweep / ".submitit" / task / f"{task}_0_log.out").read_text()


@pytest.mark.guards("lost", "duplicated")
def test_a_slurm_launcher_job_warned_of_its_time_limit_records_interrupted_and_its_task_requeues_itself(tmp_path):
    """hydra/launcher=slurm: the job closes its W&B run as interrupted (the warning leaves W&B's
    service alone), then hydra-submitit-launcher's checkpoint requeues the task, which runs the job again."""
    sweep = tmp_path / "sweep"
    job = sweep / "0"
    log = tmp_path / "sweep.log"
    args = [*LONG, "trainer.epochs=16000", "seed=0", "hydra/launcher=slurm", f"hydra.sweep.dir={sweep}", "--multirun"]
    process = start_cli(*args, cwd=tmp_path, log=log)
    try:
        wait_for(lambda: training(job, 1600), what="the job to train")
        (task,) = submitted(sweep)
        subprocess.run([*REQUEUES["time limit's warning"], task], check=True)
        wait_for(lambda: (job / "summary.json").exists(), 30, "the job to stop")
        interrupted = summary(job)
        assert interrupted["status"] == "interrupted" and interrupted["error"] == "KeyboardInterrupt: SIGUSR2"
        assert wandb_state(offline_runs(job)[0]) == "failed (exit code 130)"
        assert process.wait(timeout=180) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert "Calling checkpoint method" in (sweep / ".submitit" / task / f"{task}_0_log.out").read_text()
    assert [a["state"] for a in ended(task, 1)] == ["REQUEUED", "COMPLETED"]
    assert_one_finished_run_per_job([job])


def test_submit_and_return_then_the_analysis_counts_unfinished_jobs_missing_and_the_same_command_finishes(tmp_path):
    sweep = tmp_path / "sweep"
    args = [*LONG, "trainer.epochs=20000", "seed=0,1", "hydra/launcher=batched_slurm", "hydra.launcher.wait=false"]
    args.append(f"hydra.sweep.dir={sweep}")
    result = sweep_cli(*args, cwd=tmp_path)
    output = result.stdout + result.stderr
    (job_id,) = submitted(sweep)
    assert result.returncode == 0 and "2 jobs in " in output and "s: 2 submitted" in output, output
    assert f"squeue -j {job_id}" in output and "run the same command" in output, output
    analysis = run_analysis(str(sweep), "--out", str(tmp_path / "while-running"), cwd=tmp_path)
    assert analysis.returncode == 0, analysis.stderr
    runs = pd.read_csv(tmp_path / "while-running" / "runs.csv")
    assert list(runs["status"]) == ["missing", "missing"]  # their tasks have not started training yet
    ended(job_id, 1)
    assert_one_finished_run_per_job([sweep / "0", sweep / "1"])
    again = sweep_cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and "s: 2 already done" in again.stdout + again.stderr, again.stderr
    assert submitted(sweep) == [job_id]  # nothing submitted again
